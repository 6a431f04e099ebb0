#!/usr/bin/env bash
# One command: build what is missing, start a real cluster, run the project's real
# playbooks (site.yml, rolling_update.yml) against it with the checks, and tear it all down
# (also on failure or Ctrl-C).
#
#   scripts/cluster/e2e.sh --stage 1   # control plane + kwok fake nodes (CI, always)
#   scripts/cluster/e2e.sh --stage 2   # + a real kubelet/containerd node running the project's images
#
# Stage 1: site.yml (cluster_provider=existing) is accepted object by object by the real API
# server, every Deployment becomes available on the fake nodes, the CronJob is batch/v1, the
# Secret holds the generated keys; a second site.yml reports changed=0; rolling_update.yml rolls
# the receiver to a new tag while a sampler reads pods and availability through the API
# (pods <= replicas + maxSurge, available >= replicas - maxUnavailable); a never-ready tag is
# detected, rolled back with k8s_rollback, the playbook fails saying so, and the receiver is back
# on the previous tag.
# Stage 2: the images are built by the container_images role in a local dockerd, saved and
# imported into the real node's containerd; site.yml deploys with the MariaDB/NSQ stand-ins,
# every pod becomes Ready, the shared smoke test passes through the NodePorts on 127.0.0.1, and
# rolling_update.yml rolls the receiver while its client posts, with zero failed requests.
#
# Environment: KUBE_FACE_E2E_DIR (state dir, default a new /tmp/kube-face-e2e.XXXX),
# KUBE_FACE_E2E_KEEP=1 (leave the cluster up at the end, for debugging), KUBE_FACE_CACHE.
# Logs go to .artifacts/cluster-e2e-stage<N>/ (playbook output, cluster logs on failure).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/cluster"
STAGE=1
while [ $# -gt 0 ]; do
  case $1 in
    --stage) STAGE=${2:-}; shift 2 ;;
    --stage=*) STAGE=${1#*=}; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (use --stage 1|2)" >&2; exit 2 ;;
  esac
done
case $STAGE in 1|2) ;; *) echo "--stage must be 1 or 2, got '$STAGE'" >&2; exit 2 ;; esac

T0=$(date +%s)
log() { printf '[e2e %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

ART="$ROOT/.artifacts/cluster-e2e-stage$STAGE"
rm -rf "$ART"; mkdir -p "$ART"
# WORK holds this run's files; the cluster's state dir (up.sh/down.sh) is WORK/cluster.
WORK=${KUBE_FACE_E2E_DIR:-$(mktemp -d /tmp/kube-face-e2e.XXXXXX)}
mkdir -p "$WORK"
export KUBE_FACE_CLUSTER_DIR="$WORK/cluster"
STATE=$KUBE_FACE_CLUSTER_DIR
PY="$ROOT/.venv/bin/python"
PLAYBOOK="$ROOT/.venv/bin/ansible-playbook"
NS=face
SAMPLER_PID=""
PROVISIONER_PID=""
DOCKERD_STARTED=0

# Loopback ports nobody uses now, so a developer's cluster on the defaults is left alone.
# (Stage 2's kubelet and NodePorts keep their fixed ports: node-up.sh checks they are free.)
read -r KUBE_FACE_ETCD_PORT KUBE_FACE_ETCD_PEER_PORT KUBE_FACE_APISERVER_PORT \
  KUBE_FACE_KCM_PORT KUBE_FACE_SCHEDULER_PORT KUBE_FACE_KWOK_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
export KUBE_FACE_ETCD_PORT KUBE_FACE_ETCD_PEER_PORT KUBE_FACE_APISERVER_PORT \
  KUBE_FACE_KCM_PORT KUBE_FACE_SCHEDULER_PORT KUBE_FACE_KWOK_PORT

cleanup() {
  local rc=$?
  set +e
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  [ -n "$PROVISIONER_PID" ] && kill "$PROVISIONER_PID" 2>/dev/null
  if [ "$rc" != 0 ] && [ -d "$STATE" ]; then
    mkdir -p "$ART/cluster-logs"
    cp -r "$STATE/logs/." "$ART/cluster-logs/" 2>/dev/null
    [ -d "$STATE/node/logs" ] && cp -r "$STATE/node/logs" "$ART/cluster-logs/node" 2>/dev/null
    if [ -n "${KUBECONFIG:-}" ] && [ -x "${KUBECTL_BIN:-}" ]; then
      "$KUBECTL_BIN" get all,events -n "$NS" -o wide > "$ART/cluster-state.txt" 2>&1
    fi
  fi
  if [ "${KUBE_FACE_E2E_KEEP:-0}" = 1 ]; then
    log "KUBE_FACE_E2E_KEEP=1: cluster left up; stop it with KUBE_FACE_CLUSTER_DIR=$STATE $HERE/down.sh; rm -rf $WORK"
  else
    log "tearing down"
    "$HERE/down.sh" >>"$ART/down.log" 2>&1 || log "down.sh failed, see $ART/down.log"
    rm -rf "$WORK/images" "$WORK/kube-face-images" "$WORK/sampler.stop" "$WORK/stage2-vars.json"
    rmdir "$WORK" 2>/dev/null
    if [ "$DOCKERD_STARTED" = 1 ]; then
      "$ROOT/scripts/images/dockerd.sh" stop >>"$ART/down.log" 2>&1 || log "dockerd.sh stop failed"
    fi
  fi
  if [ "$rc" = 0 ]; then log "PASSED stage $STAGE in $(( $(date +%s) - T0 )) s"
  else log "FAILED stage $STAGE (rc $rc) after $(( $(date +%s) - T0 )) s; logs in $ART"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Build what is missing -------------------------------------------------------------------
log "building what is missing (stage $STAGE)"
if [ "$STAGE" = 2 ]; then BIN=$("$HERE/build.sh" --node 2>"$ART/build.log" | tail -n 1)
else BIN=$("$HERE/build.sh" 2>"$ART/build.log" | tail -n 1); fi
[ -x "$BIN/kubectl" ] || { tail -n 30 "$ART/build.log" >&2; die "build.sh gave no kubectl in '$BIN'"; }
export KUBE_FACE_BIN=$BIN KUBECTL_BIN="$BIN/kubectl"
log "binaries ready: $BIN"

if [ "$STAGE" = 2 ]; then
  # The project's images, built by the container_images role in a local dockerd, then saved
  # as docker-archive tars that node-up.sh imports into the node's containerd.
  log "building the images (container_images role, local dockerd)"
  if [ -z "${DOCKER_HOST:-}" ]; then
    # Stopped at the end only if this run started it (tests/images shares the daemon).
    "$ROOT/scripts/images/dockerd.sh" status >/dev/null 2>&1 || DOCKERD_STARTED=1
    DOCKER_HOST=$("$ROOT/scripts/images/dockerd.sh" start 2>"$ART/dockerd.log")
    export DOCKER_HOST
  fi
  "$PLAYBOOK" -i localhost, "$ROOT/tests/images/build_images.yml" >"$ART/build_images.log" 2>&1 \
    || { tail -n 40 "$ART/build_images.log" >&2; die "building the images failed"; }
  VERSION=$(awk '/^kube_face_version:/ {gsub(/"/, "", $2); print $2}' "$ROOT/playbooks/group_vars/all/main.yml")
  mkdir -p "$WORK/images"
  # The rolling update's new tag is the same image under another name (pullPolicy Never: the
  # node has only what is imported).
  docker tag "kube-face:$VERSION" "kube-face:$VERSION-e2e"
  tars=""
  for imgs in "kube-face:$VERSION kube-face:$VERSION-e2e" "kube-face-face:$VERSION" \
              "kube-face-mariadb-standin:$VERSION" "kube-face-nsq-standin:v1.3.0"; do
    t="$WORK/images/${imgs%% *}.tar"; t=${t//:/_}
    # shellcheck disable=SC2086  # one tar may hold several tags
    docker save -o "$t" $imgs || die "docker save $imgs failed (is it built?)"
    tars="$tars $t"
  done
  export KUBE_FACE_NODE_IMAGES=$tars
  log "images saved: $(du -shc $tars | tail -n 1 | cut -f1)"
fi

# --- Start the cluster ----------------------------------------------------------------------
log "starting the cluster in $STATE (API on 127.0.0.1:$KUBE_FACE_APISERVER_PORT)"
if [ "$STAGE" = 2 ]; then
  export KUBE_FACE_FAKE_NODES=0
  env_line=$("$HERE/up.sh" 2>"$ART/up.log") || { tail -n 30 "$ART/up.log" >&2; die "up.sh failed"; }
  eval "$env_line"
  "$HERE/node-up.sh" >"$ART/node-up.log" 2>&1 || { tail -n 40 "$ART/node-up.log" >&2; die "node-up.sh failed"; }
  # kwok's fake provisioner gives hostPath PVs that the kubelet creates root-owned 0755, where
  # non-root MySQL/nsqd cannot write (fsGroup does not apply to hostPath). Real provisioners give
  # a writable volume (minikube's hostpath provisioner makes its dirs 0777): do what it does.
  ( while sleep 0.5; do
      "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" get pv \
        -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null |
      while read -r d; do
        case $d in "$STATE/volumes/"*) mkdir -p "$d" && chmod 0777 "$d" ;; esac
      done
    done ) &
  PROVISIONER_PID=$!
else
  env_line=$("$HERE/up.sh" 2>"$ART/up.log") || { tail -n 30 "$ART/up.log" >&2; die "up.sh failed"; }
  eval "$env_line"
fi
[ -f "${KUBECONFIG:-}" ] || { tail -n 30 "$ART/up.log" >&2; die "up.sh gave no kubeconfig"; }
KUBECTL=("$BIN/kubectl" --kubeconfig "$KUBECONFIG")
log "cluster up: $("${KUBECTL[@]}" get nodes --no-headers | wc -l) node(s)"

# --- The playbooks --------------------------------------------------------------------------
# The images are never built into this cluster (stage 1 pulls nothing; stage 2 imports them).
EXTRA=(-e k8s_common_cluster_provider=existing -e "kube_face_kubeconfig=$KUBECONFIG"
       -e "k8s_common_manifest_dir=$STATE/manifests" -e k8s_cluster_build_images=false)
if [ "$STAGE" = 1 ]; then
  # Fake nodes run nothing: no smoke test, and no client posting during the rollout.
  EXTRA+=(-e k8s_common_smoke_test=false)
  ROLL_EXTRA=(-e k8s_rollout_post=false)
else
  IMAGES_DIR="$WORK/kube-face-images"
  mkdir -p "$IMAGES_DIR"
  # The node is this machine: hostPath folders are host folders, filled with the sample photos
  # (local_samples, as k8s_cluster does for minikube) for the smoke test.
  EXTRA+=(-e "k8s_common_images_node_dir=$IMAGES_DIR" -e "k8s_cluster_images_host_dir=$IMAGES_DIR"
          -e "k8s_mysql_image=kube-face-mariadb-standin:$VERSION" -e "k8s_nsq_image=kube-face-nsq-standin:v1.3.0"
          -e k8s_common_image_pull_policy=Never -e "@$WORK/stage2-vars.json")
  # One 2-core node: the defaults (face service 2 x 1 CPU requested) do not fit beside the rest.
  cat >"$WORK/stage2-vars.json" <<'EOF'
{"k8s_face_min_replicas": 1, "k8s_processor_min_replicas": 1,
 "k8s_face_resources": {"requests": {"cpu": "200m", "memory": "768Mi"},
                        "limits": {"cpu": "2", "memory": "1536Mi"}}}
EOF
  ROLL_EXTRA=()
fi

# site.yml, recording the PLAY RECAP's changed count in $CHANGED.
run_site() {
  local name=$1; shift
  local t=$(date +%s)
  if ! "$PLAYBOOK" "$ROOT/site.yml" "${EXTRA[@]}" "$@" >"$ART/$name.log" 2>&1; then
    tail -n 60 "$ART/$name.log" >&2
    die "$name: site.yml failed (full output: $ART/$name.log)"
  fi
  CHANGED=$(awk '/^localhost +:/ { for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) { sub("changed=", "", $i); print $i } }' \
            "$ART/$name.log" | tail -n 1)
  log "$name: site.yml passed in $(( $(date +%s) - t )) s, changed=$CHANGED"
}

if [ "$STAGE" = 2 ]; then
  # The sample photos the local target uses (scripts/sample_images.py, as local_samples runs it),
  # in the host folders the pods mount; uid 10001 must be able to reach them.
  log "putting the sample photos in $IMAGES_DIR"
  chmod 755 "$WORK"
  "$PY" "$ROOT/scripts/sample_images.py" --known "$IMAGES_DIR/known_people" \
    --unknown "$IMAGES_DIR/unknown_people" >"$ART/samples.log" 2>&1 || { tail -n 20 "$ART/samples.log" >&2; die "samples failed"; }
  chmod -R a+rX "$IMAGES_DIR"
fi

log "site.yml, first run"
run_site site-1
[ "$CHANGED" -gt 0 ] || die "the first site.yml run changed nothing: it did not deploy"

# Every object the roles rendered exists on the server (the Secret is applied from memory only).
rendered=$("$PY" -c '
import pathlib, sys, yaml
n = 0
for f in pathlib.Path(sys.argv[1]).rglob("*.yaml"):
    n += sum(1 for d in yaml.safe_load_all(f.read_text()) if d)
print(n)' "$STATE/manifests")
found=$("${KUBECTL[@]}" get -R -f "$STATE/manifests" -o name | wc -l)
[ "$rendered" -gt 0 ] && [ "$found" = "$rendered" ] || die "rendered $rendered objects, the API server has $found"
log "all $found rendered objects exist on the API server"

# Every Deployment available with all its replicas.
"${KUBECTL[@]}" -n "$NS" wait --for=condition=Available deployment --all --timeout=300s >/dev/null \
  || die "a Deployment is not Available"
bad=$("${KUBECTL[@]}" -n "$NS" get deployments -o go-template='{{range .items}}{{if ne (or .status.availableReplicas 0) .spec.replicas}}{{.metadata.name}} {{end}}{{end}}')
[ -z "$bad" ] || die "Deployments without all replicas available: $bad"
log "Deployments available: $("${KUBECTL[@]}" -n "$NS" get deployments -o go-template='{{range .items}}{{.metadata.name}}={{.status.availableReplicas}}/{{.spec.replicas}} {{end}}')"

# The CronJob, through the batch/v1 API.
"${KUBECTL[@]}" -n "$NS" get cronjobs.v1.batch retry -o name >/dev/null || die "CronJob retry (batch/v1) missing"
log "CronJob batch/v1 retry exists (schedule $("${KUBECTL[@]}" -n "$NS" get cronjobs.v1.batch retry -o jsonpath='{.spec.schedule}'))"

# The Secret holds the generated keys (names and lengths only: values are never printed).
keys=$("${KUBECTL[@]}" -n "$NS" get secret kube-face-secret \
       -o go-template='{{range $k, $v := .data}}{{$k}}:{{len $v}} {{end}}')
for k in mysql-root-password mysql-password mysql-userpassword; do
  [[ " $keys" =~ \ $k:([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 16 ] \
    || die "Secret kube-face-secret lacks a generated $k (keys: ${keys//:[0-9]*/})"
done
log "Secret kube-face-secret holds: $keys(base64 lengths)"

if [ "$STAGE" = 2 ]; then
  notready=$("${KUBECTL[@]}" -n "$NS" get pods -o json | "$PY" -c '
import json, sys
for p in json.load(sys.stdin)["items"]:
    if p["status"].get("phase") == "Succeeded":
        continue  # the enrolment Job, done
    ready = [c for c in p["status"].get("conditions", []) if c["type"] == "Ready"]
    if not ready or ready[0]["status"] != "True":
        print(p["metadata"]["name"], p["status"].get("phase"), end=" ")')
  [ -z "$notready" ] || die "pods not Ready: $notready"
  log "every pod Ready: $("${KUBECTL[@]}" -n "$NS" get pods --no-headers | awk '{print $1"="$2"/"$3}' | tr '\n' ' ')"
  grep -q 'TASK \[smoke_test : Smoke test | Check every image' "$ART/site-1.log" || die "the smoke test did not run"
fi

log "site.yml, second run (must change nothing)"
run_site site-2
[ "$CHANGED" = 0 ] || die "the second site.yml run reported changed=$CHANGED (expected 0)"

# --- Rolling update, sampled ----------------------------------------------------------------
FROM=$("${KUBECTL[@]}" -n "$NS" get deployment receiver -o jsonpath='{.spec.template.spec.containers[0].image}')
NEW_TAG=${FROM##*:}-e2e
TO=${FROM%:*}:$NEW_TAG
log "rolling_update.yml: receiver $FROM -> $TO, sampling pods through the API"
"$PY" "$HERE/rollout_sampler.py" sample --kubeconfig "$KUBECONFIG" --namespace "$NS" --deployment receiver \
  --out "$ART/rollout-samples.jsonl" --stop-file "$WORK/sampler.stop" --interval 0.2 &
SAMPLER_PID=$!
sleep 2
t=$(date +%s)
if ! "$PLAYBOOK" "$ROOT/rolling_update.yml" "${EXTRA[@]}" "${ROLL_EXTRA[@]}" -e "rolling_update_tag=$NEW_TAG" \
     >"$ART/rolling-update.log" 2>&1; then
  tail -n 40 "$ART/rolling-update.log" >&2
  die "rolling_update.yml to $NEW_TAG failed"
fi
ROLL_S=$(( $(date +%s) - t ))
sleep 2
touch "$WORK/sampler.stop"; wait "$SAMPLER_PID" || true; SAMPLER_PID=""
summary=$("$PY" "$HERE/rollout_sampler.py" check --out "$ART/rollout-samples.jsonl" --to-image "$TO") \
  || die "rollout bounds violated: $summary"
log "rolled in $ROLL_S s; samples: $summary"
if [ "$STAGE" = 2 ]; then
  counts=$(grep -o '[0-9]* requests during the rollout, [0-9]* failed' "$ART/rolling-update.log" | tail -n 1)
  [ -n "$counts" ] || die "no request counts in the rolling update's output"
  log "client during the rollout: $counts"
fi

# --- A rollout that never becomes ready: detected, rolled back, a clear failure -------------
BROKEN_TAG=${FROM##*:}-never-ready
log "rolling_update.yml to $BROKEN_TAG (must fail and roll back), sampling again"
rm -f "$WORK/sampler.stop"
"$PY" "$HERE/rollout_sampler.py" sample --kubeconfig "$KUBECONFIG" --namespace "$NS" --deployment receiver \
  --out "$ART/rollback-samples.jsonl" --stop-file "$WORK/sampler.stop" --interval 0.2 &
SAMPLER_PID=$!
sleep 2
t=$(date +%s)
if "$PLAYBOOK" "$ROOT/rolling_update.yml" "${EXTRA[@]}" "${ROLL_EXTRA[@]}" -e "rolling_update_tag=$BROKEN_TAG" \
     -e k8s_rollout_timeout=45 -e k8s_rollout_poll_delay=2 >"$ART/rolling-update-broken.log" 2>&1; then
  die "rolling_update.yml to a never-ready tag succeeded"
fi
BROKEN_S=$(( $(date +%s) - t ))
sleep 2
touch "$WORK/sampler.stop"; wait "$SAMPLER_PID" || true; SAMPLER_PID=""
want="The rollout of receiver to tag $BROKEN_TAG failed"
grep -qF "$want" "$ART/rolling-update-broken.log" || { tail -n 30 "$ART/rolling-update-broken.log" >&2; die "no '$want' in the output"; }
grep -qF "It was rolled back with k8s_rollback to the previous revision" "$ART/rolling-update-broken.log" \
  || die "the failure does not say it was rolled back"
now=$("${KUBECTL[@]}" -n "$NS" get deployment receiver -o jsonpath='{.spec.template.spec.containers[0].image}')
[ "$now" = "$TO" ] || die "after the rollback the receiver runs $now, not $TO"
"${KUBECTL[@]}" -n "$NS" rollout status deployment/receiver --timeout=120s >/dev/null || die "receiver not rolled out after the rollback"
# The broken pods never counted as available, and the old ones stayed: same bounds, ending on $TO.
summary=$("$PY" "$HERE/rollout_sampler.py" check --out "$ART/rollback-samples.jsonl" --to-image "$TO") \
  || die "bounds violated during the broken rollout and its rollback: $summary"
log "never-ready tag detected and rolled back in $BROKEN_S s: receiver on $now again; samples: $summary"
log "message: $(grep -oF "$want" "$ART/rolling-update-broken.log" | head -n 1)"
if [ "$STAGE" = 2 ]; then
  # The client posted through the broken rollout and the rollback too: the old pods kept serving.
  read -r ok failed < <(awk '/^ *requests:/ {r = 1} r && /^ *failed:/ {f = $2} r && /^ *ok:/ {o = $2}
                             END {print o + 0, f + 0}' "$ART/rolling-update-broken.log")
  log "client during the broken rollout and the rollback: $ok ok, $failed failed"
  [ "$ok" -gt 0 ] && [ "$failed" = 0 ] || die "requests failed during the broken rollout: $failed (ok $ok)"
fi
