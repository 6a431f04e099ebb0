#!/usr/bin/env bash
# Smoke check of the real node of node-up.sh (stage 2), with the built kubectl:
#  1. node 127.0.0.1 is Ready and runs containerd (a real kubelet, not kwok);
#  2. a Deployment of 2 replicas of the locally built hello image (readiness probe
#     on /healthz: the kubelet probes the pod IP inside the node namespace) rolls out;
#  3. its NodePort answers on the host's 127.0.0.1 (relay -> kube-proxy -> pod), and
#     both replicas are reached;
#  4. pod -> Service ClusterIP -> pod inside the namespace (kubectl exec), pod -> the
#     in-cluster API (Service kubernetes), and with CoreDNS the same by DNS name;
#  5. kubectl logs and kubectl port-forward on 127.0.0.1 (API server -> kubelet relay);
#  6. a pod whose readiness probe fails stays Running but not Ready;
#  7. a rolling update of hello (maxUnavailable 0, preStop sleep) while a client sends
#     requests through the NodePort without pause: every request must succeed.
# Deletes its namespace at the end. Exit status 0 only when every check passed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${KUBE_FACE_CLUSTER_DIR:-/tmp/kube-face-cluster}
if [ -n "${KUBE_FACE_BIN:-}" ]; then BIN=$KUBE_FACE_BIN
else BIN=$(KUBE_FACE_CLUSTER_NODE=real "$HERE/build.sh" 2>/dev/null | tail -n 1); fi
NS=${KUBE_FACE_SELFCHECK_NS:-kube-face-node-selfcheck}
NODE_PORT=${KUBE_FACE_SELFCHECK_NODE_PORT:-30080}   # must be one of node-up.sh's KUBE_FACE_NODE_PORTS
PF_PORT=${KUBE_FACE_SELFCHECK_PF_PORT:-28080}
IMAGE=${KUBE_FACE_HELLO_IMAGE:-kube-face.local/hello:1.0}
NODE_NAME=127.0.0.1
K=("$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" --context kube-face-cluster)
log() { printf '[node-selfcheck %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }
lget() { curl --noproxy '*' -fsS --max-time 5 "$@"; }
PF_PID=
cleanup() {
  [ -n "$PF_PID" ] && kill "$PF_PID" 2>/dev/null || true
  "${K[@]}" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

runtime=$("${K[@]}" get node "$NODE_NAME" -o jsonpath='{.status.nodeInfo.containerRuntimeVersion}')
ready=$("${K[@]}" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
[ "$ready" = True ] || fail "node $NODE_NAME is not Ready (run scripts/cluster/node-up.sh)"
case "$runtime" in containerd://*) ;; *) fail "node $NODE_NAME runtime is '$runtime', want containerd" ;; esac
log "OK: node $NODE_NAME Ready, kubelet $("${K[@]}" get node "$NODE_NAME" -o jsonpath='{.status.nodeInfo.kubeletVersion}'), $runtime"

"${K[@]}" delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
"${K[@]}" create namespace "$NS" >/dev/null
for _ in $(seq 1 60); do "${K[@]}" -n "$NS" get sa default >/dev/null 2>&1 && break; sleep 1; done

t0=$(date +%s)
"${K[@]}" apply -n "$NS" -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      nodeSelector: {kubernetes.io/hostname: "$NODE_NAME"}
      containers:
      - name: hello
        image: $IMAGE
        imagePullPolicy: Never
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
        # Keep serving while kube-proxy drops the endpoint (the image has no shell: sleep action).
        lifecycle: {preStop: {sleep: {seconds: 3}}}
        resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  type: NodePort
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080, nodePort: $NODE_PORT}]
---
apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  nodeSelector: {kubernetes.io/hostname: "$NODE_NAME"}
  containers:
  - name: hello
    image: $IMAGE
    imagePullPolicy: Never
    readinessProbe: {httpGet: {path: /healthz, port: 9999}, periodSeconds: 2}   # nothing listens on 9999
EOF
"${K[@]}" -n "$NS" rollout status deployment/hello --timeout=120s
log "OK: deployment hello 2/2 Ready on the real node in $(( $(date +%s) - t0 ))s"
"${K[@]}" -n "$NS" get pods -o wide

# NodePort through the host relay; kube-proxy balances, so both pods answer within a few tries.
# kube-proxy programs the rules a moment after the endpoints turn ready: wait for the first answer.
t1=$(date +%s)
for _ in $(seq 1 60); do lget "http://127.0.0.1:$NODE_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
log "NodePort answered $(( $(date +%s) - t1 ))s after the rollout"
seen=""
for _ in $(seq 1 40); do
  body=$(lget "http://127.0.0.1:$NODE_PORT/") || fail "NodePort $NODE_PORT on 127.0.0.1 did not answer"
  pod=$(sed -n 's/^hello from \([^ ]*\) .*/\1/p' <<<"$body")
  case " $seen " in *" $pod "*) ;; *) seen="$seen $pod" ;; esac
  [ "$(wc -w <<<"$seen")" -ge 2 ] && break
done
[ "$(wc -w <<<"$seen")" -ge 2 ] || fail "NodePort reached only:$seen"
log "OK: NodePort 127.0.0.1:$NODE_PORT reached both pods:$seen"

cip=$("${K[@]}" -n "$NS" get svc hello -o jsonpath='{.spec.clusterIP}')
out=$("${K[@]}" -n "$NS" exec deploy/hello -- /hello get "http://$cip/" 2>&1) || fail "pod -> ClusterIP $cip failed: $out"
log "OK: pod -> Service ClusterIP $cip: $out"

out=$("${K[@]}" -n "$NS" exec deploy/hello -- /hello get https://10.96.0.1/readyz 2>&1) \
  || fail "pod -> Service kubernetes (10.96.0.1:443) failed: $out"
log "OK: pod -> in-cluster API https://10.96.0.1/readyz: $out"

if "${K[@]}" -n kube-system get service kube-dns >/dev/null 2>&1; then
  out=$("${K[@]}" -n "$NS" exec deploy/hello -- /hello get "http://hello.$NS.svc.cluster.local/" 2>&1) \
    || fail "pod -> http://hello.$NS.svc.cluster.local (CoreDNS) failed: $out"
  log "OK: CoreDNS: pod -> hello.$NS.svc.cluster.local: $out"
  out=$("${K[@]}" -n "$NS" exec deploy/hello -- /hello get https://kubernetes.default.svc/readyz 2>&1) \
    || fail "pod -> https://kubernetes.default.svc failed: $out"
  log "OK: CoreDNS: pod -> https://kubernetes.default.svc/readyz: $out"
else
  log "SKIP: no Service kube-dns (node-up.sh with KUBE_FACE_NODE_DNS=0)"
fi

"${K[@]}" -n "$NS" logs deploy/hello | grep -q 'hello listening' || fail "kubectl logs did not show the server's start line"
log "OK: kubectl logs"

"${K[@]}" -n "$NS" port-forward --address 127.0.0.1 deploy/hello "$PF_PORT:8080" >/dev/null 2>&1 &
PF_PID=$!
out=""
for _ in $(seq 1 20); do out=$(lget "http://127.0.0.1:$PF_PORT/" 2>/dev/null) && break; sleep 0.5; done
[ -n "$out" ] || fail "port-forward on 127.0.0.1:$PF_PORT did not answer"
log "OK: kubectl port-forward 127.0.0.1:$PF_PORT: $out"

phase=$("${K[@]}" -n "$NS" get pod unready -o jsonpath='{.status.phase}')
rd=$("${K[@]}" -n "$NS" get pod unready -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
[ "$phase" = Running ] && [ "$rd" = False ] || fail "pod unready: phase=$phase Ready=$rd, want Running/False"
msg=""
for _ in $(seq 1 30); do
  msg=$("${K[@]}" -n "$NS" get events --field-selector involvedObject.name=unready,reason=Unhealthy \
    -o jsonpath='{.items[0].message}' 2>/dev/null) && [ -n "$msg" ] && break
  sleep 1
done
[ -n "$msg" ] || fail "no Unhealthy event from the kubelet for pod unready"
log "OK: pod with a failing readiness probe is Running and not Ready: $msg"

# Rolling update under load through the NodePort relay.
load() {
  local ok=0 bad=0
  while [ ! -f "$1.stop" ]; do
    if lget "http://127.0.0.1:$NODE_PORT/" >/dev/null 2>>"$1.err"; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  echo "$ok $bad" > "$1"
}
lf=$(mktemp); rm -f "$lf"
load "$lf" &
LOAD_PID=$!
sleep 2
t0=$(date +%s)
"${K[@]}" -n "$NS" set env deployment/hello ROLLED=1 >/dev/null
"${K[@]}" -n "$NS" rollout status deployment/hello --timeout=120s >/dev/null
sleep 2
touch "$lf.stop"; wait "$LOAD_PID"
read -r ok bad < "$lf"
log "rolling update took $(( $(date +%s) - t0 ))s; requests during it: $ok ok, $bad failed"
[ "$bad" = 0 ] || { head -5 "$lf.err"; rm -f "$lf" "$lf.stop" "$lf.err"; fail "$bad requests failed during the rolling update"; }
[ "$ok" -gt 20 ] || fail "only $ok requests during the rolling update: the load loop did not run"
rm -f "$lf" "$lf.stop" "$lf.err"
log "OK: rolling update with zero failed requests through NodePort $NODE_PORT"
log "all checks passed"
