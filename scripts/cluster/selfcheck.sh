#!/usr/bin/env bash
# Smoke check of a cluster started by up.sh, with the built kubectl:
#  1. server version is the one we built;
#  2. a Deployment of 2 replicas in a fresh namespace becomes Available on kwok nodes;
#  3. a batch/v1 CronJob is accepted (server-side validation and admission);
#  4. a PVC without a storageClassName is Bound (kwok's fake provisioner);
#  5. the never-ready hook: a Deployment whose image contains "never-ready" gets
#     scheduled pods that never become Ready, and rollout status times out.
# Deletes its namespace at the end. Exit status 0 only when every check passed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${KUBE_FACE_CLUSTER_DIR:-/tmp/kube-face-cluster}
if [ -n "${KUBE_FACE_BIN:-}" ]; then BIN=$KUBE_FACE_BIN
else BIN=$("$HERE/build.sh" 2>/dev/null | tail -n 1); fi
NS=${KUBE_FACE_SELFCHECK_NS:-kube-face-selfcheck}
K=("$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" --context kube-face-cluster)
log() { printf '[selfcheck %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

server=$("${K[@]}" get --raw /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
log "server: kube-apiserver $server"
[ -n "$server" ] || fail "no server version"
"${K[@]}" get nodes -o wide

"${K[@]}" delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
"${K[@]}" create namespace "$NS"
# Pods need the namespace's default ServiceAccount, which the controller manager creates.
for _ in $(seq 1 60); do "${K[@]}" -n "$NS" get sa default >/dev/null 2>&1 && break; sleep 1; done

"${K[@]}" apply -n "$NS" -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  labels: {app.kubernetes.io/name: hello}
spec:
  replicas: 2
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels: {app.kubernetes.io/name: hello}
  template:
    metadata:
      labels: {app.kubernetes.io/name: hello}
    spec:
      containers:
      - name: hello
        image: registry.example/kube-face/hello:1.0
        ports: [{containerPort: 8000}]
        resources:
          requests: {cpu: 10m, memory: 16Mi}
          limits: {cpu: 100m, memory: 64Mi}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: retry
spec:
  schedule: "*/5 * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: retry
            image: registry.example/kube-face/retry:1.0
            args: ["retry"]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 1Gi}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  replicas: 1
  progressDeadlineSeconds: 10
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
      - name: broken
        image: registry.example/kube-face/hello:never-ready
EOF

"${K[@]}" -n "$NS" rollout status deployment/hello --timeout=120s
avail=$("${K[@]}" -n "$NS" get deployment hello -o jsonpath='{.status.availableReplicas}')
[ "$avail" = 2 ] || fail "deployment hello has $avail available replicas, want 2"
"${K[@]}" -n "$NS" wait --for=condition=Available deployment/hello --timeout=30s
"${K[@]}" -n "$NS" get pods -o wide
log "OK: deployment hello Available with 2/2 replicas on kwok nodes"

"${K[@]}" -n "$NS" get cronjob retry -o jsonpath='{.apiVersion} {.kind} {.metadata.name} schedule={.spec.schedule}{"\n"}' \
  | grep -q '^batch/v1 CronJob retry' || fail "cronjob retry not found as batch/v1"
log "OK: batch/v1 CronJob retry accepted"

"${K[@]}" -n "$NS" wait --for=jsonpath='{.status.phase}'=Bound pvc/data --timeout=60s >/dev/null \
  || fail "PVC data (default StorageClass) was not Bound"
log "OK: PVC bound through the default StorageClass $("${K[@]}" -n "$NS" get pvc data -o jsonpath='{.spec.storageClassName}')"

if "${K[@]}" -n "$NS" rollout status deployment/broken --timeout=30s >/dev/null 2>&1; then
  fail "deployment broken (image never-ready) became available: the kwok never-ready hook does not work"
fi
node=$("${K[@]}" -n "$NS" get pods -l app=broken -o jsonpath='{.items[0].spec.nodeName}')
[ -n "$node" ] || fail "broken pod was not scheduled"
reason=$("${K[@]}" -n "$NS" get deployment broken -o jsonpath='{.status.conditions[?(@.type=="Progressing")].reason}')
log "OK: never-ready pod scheduled on $node and not Ready; Progressing reason: ${reason:-<none yet>}"

"${K[@]}" delete namespace "$NS" --wait=false >/dev/null
log "all checks passed"
