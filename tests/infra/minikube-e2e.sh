#!/usr/bin/env bash
# Test infrastructure: the default path as a user runs it, offline, on a real minikube with the
# docker driver. Builds the offline kit (scripts/airgap/kit.sh), starts a dockerd in a network
# namespace of its own (netns-dockerd.sh: nothing leaves it), installs the kit into a fresh HOME,
# then, inside that namespace:
#   ansible-playbook site.yml -e @airgap.yml   (+ this machine's test settings, below)
# and checks: every Deployment available and pod Ready, the smoke test through `minikube ip` and
# the NodePorts; the cluster tests on that deployment (tests/cluster/test_policies.py: every
# NetworkPolicy both ways; test_killed_midstream.py: pods deleted mid-stream, nothing lost); a
# second run with changed=0; backup.yml, teardown.yml deleting the data, a fresh site.yml and
# restore.yml bringing every row back; rolling_update.yml building and rolling a new tag while a
# client posts (0 failed requests); a never-ready tag rolled back with k8s_rollback;
# playbooks/scale.yml; teardown.yml keeping and then deleting the data; and `minikube delete`
# leaving no container, network, volume or process behind.
#
# Test settings, beyond airgap.yml (this machine, not the product):
#   - the node image is the kit's plus runc-nosysres, set as the node's docker runtime: this
#     sandbox's capability bounding set lacks CAP_SYS_RESOURCE (see runc-nosysres/main.go);
#   - 2 CPUs and smaller requests (a 2-core machine);
#   - the kit's NetworkPolicy CNI instead of Calico, whose images cannot be built here
#     (KUBE_FACE_E2E_NETPOL=0: minikube's bridge, which enforces no policy; the policy test is
#     then left out);
#   - --force: CI runs as root, and minikube's docker driver refuses root without it;
#   - MySQL and NSQ are the local stand-ins (the official images cannot be pulled here), built by
#     tests/images/build_images.yml and handed to minikube's image cache.
# Environment: KUBE_FACE_CACHE; KUBE_FACE_E2E_KILL_STEPS (the pods deleted mid-stream, in order;
# default all five; "none" leaves the test out); KUBE_FACE_E2E_KEEP=1 leaves the cluster running at the end (or
# where it failed); KUBE_FACE_E2E_STOP_AFTER=deploy stops with success after the first site.yml
# and its checks and keeps the cluster, for other tests (see tests/infra/README.md).
# A kept cluster is described by .artifacts/minikube-e2e/cluster.env and removed by
#   tests/infra/minikube-e2e.sh down [ENV_FILE]
# Logs: .artifacts/minikube-e2e/
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
INFRA="$ROOT/tests/infra"
T0=$(date +%s)
log() { printf '[mk-e2e %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

ART="$ROOT/.artifacts/minikube-e2e"
SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"

# down [ENV_FILE]: remove a kept cluster: its minikube profile, the namespace's dockerd and the
# namespace, and put back the kernel tunables.
if [ "${1:-}" = down ]; then
  env_file=${2:-$ART/cluster.env}
  [ -f "$env_file" ] || die "no $env_file: nothing kept"
  declare -A E=()
  while IFS= read -r line; do E[${line%%=*}]=${line#*=}; done < "$env_file"
  nsenter --net="/run/netns/${E[NETNS]}" env HOME="${E[HOME]}" DOCKER_HOST="${E[DOCKER_HOST]}" \
    "${E[HOME]}/.local/bin/minikube" delete --profile "${E[PROFILE]}" >&2 || log "minikube delete failed"
  "$INFRA/netns-dockerd.sh" stop "${E[WORK]}/docker" "${E[NETNS]}" >&2
  for kv in ${E[SYSCTLS]}; do sysctl -qw "$kv"; done
  rm -rf "${E[WORK]}" "$env_file"
  log "removed the kept cluster (netns ${E[NETNS]})"
  exit 0
fi
[ "${KUBE_FACE_E2E_STOP_AFTER:-}" = deploy ] && KUBE_FACE_E2E_KEEP=1

rm -rf "$ART"; mkdir -p "$ART"
WORK=$(mktemp -d /tmp/kube-face-mk.XXXXXX)
chmod 755 "$WORK"
NETNS=kf-mk-$$
PY="$ROOT/.venv/bin/python"
PLAYBOOK="$ROOT/.venv/bin/ansible-playbook"
export KUBE_FACE_CACHE=${KUBE_FACE_CACHE:-$HOME/.cache/kube-face}
NS=face
PROFILE=kube-face-cluster
VERSION=$(awk '/^kube_face_version:/ {gsub(/"/, "", $2); print $2}' "$ROOT/playbooks/group_vars/all/main.yml")
declare -A SAVED=()
for s in $SYSCTLS; do SAVED[$s]=$(sysctl -n "$s"); done
DOCKERD_STARTED=0

# Everything the user would run, in the namespace, with the test's HOME.
HOME_T="$WORK/home"
mkdir -p "$HOME_T"
# Without this machine's REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE: requests lets them override the
# CA that community.docker sets for minikube's engine (DOCKER_CERT_PATH/ca.pem), and the image
# build then fails TLS verification.
inns() {
  nsenter --net="/run/netns/$NETNS" env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE HOME="$HOME_T" DOCKER_HOST="$NS_DOCKER" \
    PATH="$HOME_T/.local/bin:$PATH" KUBE_FACE_CACHE="$KUBE_FACE_CACHE" ANSIBLE_FORCE_COLOR=0 DOCKER_BUILDKIT=0 \
    ANSIBLE_ASYNC_DIR="$HOME_T/.ansible_async" "$@"
}
kubectl() { inns "$HOME_T/.local/bin/kubectl" --context "$PROFILE" "$@"; }
minikube() { inns "$HOME_T/.local/bin/minikube" "$@"; }

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ -n "${NS_DOCKER:-}" ]; then
    kubectl get all,events -A -o wide > "$ART/cluster-state.txt" 2>&1
    minikube logs --profile "$PROFILE" > "$ART/minikube-logs.txt" 2>&1
  fi
  if [ "${KUBE_FACE_E2E_KEEP:-0}" = 1 ] && [ -f "$ART/cluster.env" ]; then
    log "left running (netns $NETNS, HOME $HOME_T): $INFRA/minikube-e2e.sh down removes it"
  else
    [ -n "${NS_DOCKER:-}" ] && minikube delete --profile "$PROFILE" >>"$ART/down.log" 2>&1
    "$INFRA/netns-dockerd.sh" stop "$WORK/docker" "$NETNS" >>"$ART/down.log" 2>&1
    if [ "$DOCKERD_STARTED" = 1 ] && flock -xn "$ENGINE_LOCK"; then
      "$ROOT/scripts/images/dockerd.sh" stop >>"$ART/down.log" 2>&1
    fi
    rm -rf "$WORK" "$ART/cluster.env"
    # The node's kubelet sets these machine-wide; put them back.
    for s in $SYSCTLS; do sysctl -qw "$s=${SAVED[$s]}"; done
  fi
  if [ "$rc" = 0 ]; then log "PASSED in $(( $(date +%s) - T0 )) s"
  else log "FAILED (rc $rc) after $(( $(date +%s) - T0 )) s; logs in $ART"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- The kit and the images --------------------------------------------------------------------
t=$(date +%s)
"$ROOT/scripts/airgap/kit.sh" build >"$ART/kit-build.log" 2>&1 || { tail -n 30 "$ART/kit-build.log" >&2; die "kit.sh build failed"; }
log "kit built in $(( $(date +%s) - t )) s"

# The project's images as CI builds them (wheels, base images, the MySQL/NSQ stand-ins), in the
# images test's engine (it has the network); the stand-ins go to minikube's image cache.
t=$(date +%s)
if [ -z "${DOCKER_HOST:-}" ]; then
  # Each user of that engine holds a shared lock (as tests/images does): the last one stops it.
  mkdir -p "$KUBE_FACE_CACHE/docker"
  exec {ENGINE_LOCK}>"$KUBE_FACE_CACHE/docker/users.lock"
  flock -s "$ENGINE_LOCK"
  "$ROOT/scripts/images/dockerd.sh" status >/dev/null 2>&1 || DOCKERD_STARTED=1
  DOCKER_HOST=$("$ROOT/scripts/images/dockerd.sh" start 2>"$ART/dockerd.log"); export DOCKER_HOST
fi
"$PLAYBOOK" -i localhost, "$ROOT/tests/images/build_images.yml" >"$ART/build_images.log" 2>&1 \
  || { tail -n 40 "$ART/build_images.log" >&2; die "building the images failed"; }
STANDINS=("kube-face-mariadb-standin:$VERSION" "kube-face-nsq-standin:v1.3.0")
mkdir -p "$WORK/standins"
for i in "${STANDINS[@]}"; do docker save -o "$WORK/standins/${i//:/_}" "$i" || die "docker save $i"; done
# The sample photos come from pip-downloaded files cached under KUBE_FACE_CACHE: fill the cache
# here (network), so that site.yml's local_samples finds them offline.
"$PY" "$ROOT/scripts/sample_images.py" --known "$WORK/samples/known" --unknown "$WORK/samples/unknown" \
  >"$ART/samples.log" 2>&1 || { tail -n 20 "$ART/samples.log" >&2; die "sample photos failed"; }
log "images built and saved, sample photos cached in $(( $(date +%s) - t )) s"
# The images engine is not needed any more: stop it if this run started it and nobody else uses it.
if [ -n "${ENGINE_LOCK:-}" ]; then
  if [ "$DOCKERD_STARTED" = 1 ] && flock -xn "$ENGINE_LOCK"; then
    "$ROOT/scripts/images/dockerd.sh" stop >>"$ART/dockerd.log" 2>&1
  fi
  exec {ENGINE_LOCK}>&-
fi
DOCKERD_STARTED=0
unset DOCKER_HOST

# --- The namespace, its dockerd, the kit installed ---------------------------------------------
t=$(date +%s)
NS_DOCKER=$("$INFRA/netns-dockerd.sh" start "$WORK/docker" "$NETNS" 2>"$ART/netns-dockerd.log") \
  || { cat "$ART/netns-dockerd.log" >&2; die "netns dockerd did not start"; }
inns "$ROOT/scripts/airgap/kit.sh" install >"$ART/kit-install.log" 2>&1 || { tail -n 20 "$ART/kit-install.log" >&2; die "kit.sh install failed"; }
for i in "${STANDINS[@]}"; do
  inns "$ROOT/scripts/airgap/kit.sh" cache-image "$i" "$WORK/standins/${i//:/_}" >>"$ART/kit-install.log" 2>&1 \
    || die "kit.sh cache-image $i"
done
# The test node image: the kit's, plus the runtime this sandbox needs (see the header).
mkdir -p "$WORK/nodeimg"
cp "$KUBE_FACE_CACHE/test-infra/runc-nosysres" "$WORK/nodeimg/"
printf 'FROM kube-face.local/kicbase:v1.37.0\nCOPY runc-nosysres /usr/local/bin/runc-nosysres\n' > "$WORK/nodeimg/Dockerfile"
inns docker build -q --network none -t kube-face.test/kicbase-nosysres:v1.37.0 "$WORK/nodeimg" >/dev/null || die "test node image"
log "namespace $NETNS with its dockerd, kit installed in $(( $(date +%s) - t )) s"
# What another test needs to reach the cluster, and what `minikube-e2e.sh down` removes.
cat > "$ART/cluster.env" <<EOF
NETNS=$NETNS
HOME=$HOME_T
PROFILE=$PROFILE
NAMESPACE=$NS
DOCKER_HOST=$NS_DOCKER
WORK=$WORK
SYSCTLS=$(for s in $SYSCTLS; do printf '%s=%s ' "$s" "${SAVED[$s]}"; done)
EOF

cat > "$WORK/ci-vars.yml" <<EOF
k8s_cluster_minikube_base_image: kube-face.test/kicbase-nosysres:v1.37.0
k8s_cluster_minikube_start_args: ["--preload=false", "--force", "--docker-opt=add-runtime=nosysres=/usr/local/bin/runc-nosysres",
                                  "--docker-opt=default-runtime=nosysres"]
k8s_cluster_minikube_cpus: 2
k8s_cluster_minikube_memory: 6144
k8s_mysql_image: kube-face-mariadb-standin:$VERSION
k8s_nsq_image: kube-face-nsq-standin:v1.3.0
k8s_face_min_replicas: 1
k8s_processor_min_replicas: 1
k8s_face_resources: {requests: {cpu: 200m, memory: 768Mi}, limits: {cpu: "2", memory: 1536Mi}}
EOF
NETPOL=${KUBE_FACE_E2E_NETPOL:-1}
[ "$NETPOL" = 1 ] && echo "k8s_cluster_minikube_cni: $HOME_T/.minikube/kube-face/netpol-cni.yaml" >> "$WORK/ci-vars.yml"
cat >> "$WORK/ci-vars.yml" <<EOF
# Ansible's template and copy modules (and async_status, hence ANSIBLE_ASYNC_DIR above) expand
# "~" to the user's home from the password database (/root here), not HOME: the test's HOME is
# another folder, so name it.
k8s_common_manifest_dir: $HOME_T/.cache/kube-face/manifests/$PROFILE/$NS
k8s_common_tls_dir: $HOME_T/.kube-face/$PROFILE/$NS/tls
EOF
VARS=(-e @"$ROOT/airgap.yml" -e @"$WORK/ci-vars.yml")

# site.yml as the user runs it, recording the PLAY RECAP's changed count in $CHANGED.
run_site() {
  local name=$1; shift
  local t; t=$(date +%s)
  inns "$PLAYBOOK" "$ROOT/site.yml" "${VARS[@]}" "$@" >"$ART/$name.log" 2>&1 \
    || { tail -n 60 "$ART/$name.log" >&2; die "$name: site.yml failed (full output: $ART/$name.log)"; }
  CHANGED=$(awk '/^localhost +:/ { for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) { sub("changed=", "", $i); print $i } }' \
            "$ART/$name.log" | tail -n 1)
  log "$name: site.yml passed in $(( $(date +%s) - t )) s, changed=$CHANGED"
}

# --- site.yml --------------------------------------------------------------------------------
cd "$ROOT"
log "site.yml, first run (starts minikube)"
run_site site-1
grep -q 'TASK \[k8s_cluster : Cluster | Start minikube\]' "$ART/site-1.log" || die "minikube was not started by site.yml"
log "minikube $(minikube version --short 2>/dev/null), node $(minikube ip --profile "$PROFILE"), driver docker, Kubernetes $(kubectl version -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
kubectl -n "$NS" wait --for=condition=Available deployment --all --timeout=300s >/dev/null || die "a Deployment is not Available"
log "Deployments: $(kubectl -n "$NS" get deployments -o go-template='{{range .items}}{{.metadata.name}}={{.status.availableReplicas}}/{{.spec.replicas}} {{end}}')"
notready=$(kubectl -n "$NS" get pods -o json | "$PY" -c '
import json, sys
for p in json.load(sys.stdin)["items"]:
    if p["status"].get("phase") == "Succeeded":
        continue
    ready = [c for c in p["status"].get("conditions", []) if c["type"] == "Ready"]
    if not ready or ready[0]["status"] != "True":
        print(p["metadata"]["name"], p["status"].get("phase"), end=" ")')
[ -z "$notready" ] || die "pods not Ready: $notready"
grep -q 'TASK \[smoke_test : Smoke test | Check every image' "$ART/site-1.log" || die "the smoke test did not run"
grep -q 'Cluster | Build the images with the images role' "$ART/site-1.log" || die "the images were not built by site.yml"
log "every pod Ready; smoke test passed through $(grep -oE 'https?://[0-9.]+:30800' "$ART/site-1.log" | head -n 1)"
kubectl top nodes >/dev/null 2>&1 && log "metrics-server answers (kubectl top nodes)" || log "metrics-server: no metrics yet"
if [ "${KUBE_FACE_E2E_STOP_AFTER:-}" = deploy ]; then
  log "KUBE_FACE_E2E_STOP_AFTER=deploy: deployed, kept for other tests ($ART/cluster.env)"
  exit 0
fi

# --- The cluster tests, on this deployment -------------------------------------------------------
KILL_STEPS=${KUBE_FACE_E2E_KILL_STEPS:-face,processor,nsqd-0,mysql-0,receiver}
CLUSTER_TESTS=()
[ "$NETPOL" = 1 ] && CLUSTER_TESTS+=(tests/cluster/test_policies.py)
[ "$KILL_STEPS" != none ] && CLUSTER_TESTS+=(tests/cluster/test_killed_midstream.py)
if [ "${#CLUSTER_TESTS[@]}" -gt 0 ]; then
  t=$(date +%s)
  log "cluster tests: ${CLUSTER_TESTS[*]} (pods deleted: $KILL_STEPS)"
  KUBE_FACE_CLUSTER_TESTS=1 KUBE_FACE_CLUSTER_ENV="$ART/cluster.env" KUBE_FACE_KILL_STEPS="$KILL_STEPS" \
    "$PY" -m pytest -p no:cacheprovider -q -s "${CLUSTER_TESTS[@]}" >"$ART/cluster-tests.log" 2>&1 \
    || { tail -n 60 "$ART/cluster-tests.log" >&2; die "cluster tests failed (full output: $ART/cluster-tests.log)"; }
  sed -n '/^step  /,/ images posted in /p' "$ART/cluster-tests.log" >&2
  log "cluster tests passed in $(( $(date +%s) - t )) s: $(tail -n 1 "$ART/cluster-tests.log")"
fi

log "site.yml, second run (must change nothing)"
run_site site-2
[ "$CHANGED" = 0 ] || die "the second site.yml run reported changed=$CHANGED (expected 0)"

# --- Backup, teardown deleting the data, a fresh deployment, restore -----------------------------
DB=$(awk '/^kube_face_db_name:/ {print $2}' "$ROOT/playbooks/group_vars/all/main.yml")
# Every row of every table as mysqldump prints it (no date, rows one per line in key order): what
# the restore must bring back, byte for byte. The password stays in the pod.
db_dump() {
  kubectl -n "$NS" exec mysql-0 -c mysql -- sh -c "MYSQL_PWD=\"\$MYSQL_ROOT_PASSWORD\" exec mysqldump \
    --user=root --single-transaction --compact --skip-extended-insert --order-by-primary $DB"
}
count_images() { grep -c '^INSERT INTO `images`' || true; }
t=$(date +%s)
before=$(db_dump) || die "mysqldump in mysql-0 failed"
images=$(count_images <<<"$before")
[ "$images" -gt 0 ] || die "no images in the database to back up"
inns "$PLAYBOOK" "$ROOT/playbooks/backup.yml" "${VARS[@]}" -e "kube_face_backup_dir=$WORK/backups" \
  -e kube_face_backup_photos=true >"$ART/backup.log" 2>&1 || { tail -n 30 "$ART/backup.log" >&2; die "backup.yml failed"; }
backups=("$WORK"/backups/kube-face-kubernetes-*.tar.gz)
[ "${#backups[@]}" = 1 ] && [ -f "${backups[0]}" ] || die "expected one backup file, found: ${backups[*]}"
BACKUP=${backups[0]}
[ "$(stat -c %a "$BACKUP")" = 600 ] || die "$BACKUP is not mode 0600"
tar -tzf "$BACKUP" | grep -qx './database.sql' || die "no database.sql in $BACKUP"
photos=$(tar -tzf "$BACKUP" | grep -c '/known_people/.' || true)
[ "$photos" -gt 0 ] || die "no known people's photos in $BACKUP"
inns "$PLAYBOOK" "$ROOT/teardown.yml" "${VARS[@]}" -e kube_face_k8s_delete_data=true >"$ART/teardown-before-restore.log" 2>&1 \
  || { tail -n 30 "$ART/teardown-before-restore.log" >&2; die "teardown.yml (delete data) failed"; }
kubectl get namespace "$NS" >/dev/null 2>&1 && die "namespace $NS left after teardown with delete_data"
run_site site-fresh -e k8s_common_smoke_test=false
[ "$(db_dump | count_images)" = 0 ] || die "the fresh deployment already holds images"
inns "$PLAYBOOK" "$ROOT/playbooks/restore.yml" "${VARS[@]}" -e "backup=$BACKUP" >"$ART/restore.log" 2>&1 \
  || { tail -n 30 "$ART/restore.log" >&2; die "restore.yml failed"; }
after=$(db_dump) || die "mysqldump after the restore failed"
if [ "$before" != "$after" ]; then
  diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >"$ART/restore.diff" || true
  die "the restored database differs from the backed-up one ($ART/restore.diff)"
fi
# What the admin sees: the frontend, logged in, over HTTPS verified by the deployment's CA.
inns "$PY" "$INFRA/frontend_shows.py" "$ART/cluster.env" "$HOME_T/.kube-face/$PROFILE/$NS/tls/ca.crt" \
  >"$ART/restore-frontend.log" 2>&1 || { cat "$ART/restore-frontend.log" >&2; die "the frontend does not show the restored images"; }
log "backup.yml ($images images, $photos photos), teardown deleting the data, site.yml, restore.yml: every row back, $(cat "$ART/restore-frontend.log") ($(( $(date +%s) - t )) s)"

# --- Rolling update: built from the checkout into minikube's engine, then rolled --------------
NEW_TAG=$VERSION-e2e
t=$(date +%s)
inns "$PLAYBOOK" "$ROOT/rolling_update.yml" "${VARS[@]}" -e "rolling_update_tag=$NEW_TAG" >"$ART/rolling-update.log" 2>&1 \
  || { tail -n 40 "$ART/rolling-update.log" >&2; die "rolling_update.yml to $NEW_TAG failed"; }
now=$(kubectl -n "$NS" get deployment receiver -o jsonpath='{.spec.template.spec.containers[0].image}')
[ "${now##*:}" = "$NEW_TAG" ] || die "after the rolling update the receiver runs $now"
counts=$(grep -o '[0-9]* requests during the rollout, [0-9]* failed' "$ART/rolling-update.log" | tail -n 1)
[ -n "$counts" ] || die "no request counts in the rolling update's output"
log "rolled the receiver to $now in $(( $(date +%s) - t )) s (tag built by the playbook); client: $counts"

# --- A tag that never becomes ready (not built: it exists nowhere) -----------------------------
BROKEN_TAG=$VERSION-never-ready
t=$(date +%s)
if inns "$PLAYBOOK" "$ROOT/rolling_update.yml" "${VARS[@]}" -e "rolling_update_tag=$BROKEN_TAG" \
     -e k8s_cluster_build_images=false -e k8s_rollout_timeout=60 -e k8s_rollout_poll_delay=2 \
     >"$ART/rolling-update-broken.log" 2>&1; then
  die "rolling_update.yml to a never-ready tag succeeded"
fi
grep -qF "It was rolled back with k8s_rollback to the previous revision" "$ART/rolling-update-broken.log" \
  || { tail -n 30 "$ART/rolling-update-broken.log" >&2; die "the failure does not say it was rolled back"; }
now=$(kubectl -n "$NS" get deployment receiver -o jsonpath='{.spec.template.spec.containers[0].image}')
[ "${now##*:}" = "$NEW_TAG" ] || die "after the rollback the receiver runs $now"
kubectl -n "$NS" rollout status deployment/receiver --timeout=120s >/dev/null || die "receiver not rolled out after the rollback"
log "never-ready tag rolled back in $(( $(date +%s) - t )) s: receiver on $now again"

# --- scale.yml --------------------------------------------------------------------------------
inns "$PLAYBOOK" "$ROOT/playbooks/scale.yml" "${VARS[@]}" -e '{"scale": {"receiver": 3}}' >"$ART/scale.log" 2>&1 \
  || { tail -n 30 "$ART/scale.log" >&2; die "scale.yml failed"; }
kubectl -n "$NS" rollout status deployment/receiver --timeout=180s >/dev/null || die "receiver did not scale"
[ "$(kubectl -n "$NS" get deployment receiver -o jsonpath='{.status.readyReplicas}')" = 3 ] || die "receiver is not at 3 ready replicas"
log "scale.yml: receiver at 3 ready replicas"

# --- teardown.yml both ways, then minikube delete ----------------------------------------------
inns "$PLAYBOOK" "$ROOT/teardown.yml" "${VARS[@]}" >"$ART/teardown-keep.log" 2>&1 \
  || { tail -n 30 "$ART/teardown-keep.log" >&2; die "teardown.yml (keep data) failed"; }
[ -z "$(kubectl -n "$NS" get deployments,statefulsets,services -o name)" ] || die "workloads left after teardown"
pvcs=$(kubectl -n "$NS" get pvc -o name | wc -l)
[ "$pvcs" -gt 0 ] && kubectl -n "$NS" get secret kube-face-secret -o name >/dev/null || die "teardown did not keep the data ($pvcs PVCs)"
log "teardown.yml kept the data: $pvcs PVCs and the Secret"
inns "$PLAYBOOK" "$ROOT/teardown.yml" "${VARS[@]}" -e kube_face_k8s_delete_data=true >"$ART/teardown-data.log" 2>&1 \
  || { tail -n 30 "$ART/teardown-data.log" >&2; die "teardown.yml (delete data) failed"; }
kubectl get namespace "$NS" >/dev/null 2>&1 && die "namespace $NS left after teardown with delete_data"
log "teardown.yml -e kube_face_k8s_delete_data=true removed the namespace"

minikube delete --profile "$PROFILE" >"$ART/minikube-delete.log" 2>&1 || die "minikube delete failed"
left=$(inns docker ps -aq | wc -l); nets=$(inns docker network ls -q --filter "name=$PROFILE" | wc -l)
vols=$(inns docker volume ls -q | wc -l)
procs=$(pgrep -f "$HOME_T/.minikube" | wc -l || true)
[ "$left$nets$vols$procs" = 0000 ] || die "after minikube delete: $left containers, $nets networks, $vols volumes, $procs processes"
log "minikube delete left nothing: 0 containers, networks, volumes, processes"
