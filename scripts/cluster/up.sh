#!/usr/bin/env bash
# Start a real Kubernetes control plane on 127.0.0.1 with kwok fake nodes:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler (built by
# build.sh) and kwok managing KUBE_FACE_FAKE_NODES fake nodes.
# Writes $KUBE_FACE_CLUSTER_DIR/kubeconfig (context kube-face-cluster) and waits
# until the API is ready and every node is Ready. Idempotent: when the cluster in
# the state dir is already up it only prints its kubeconfig. Stop with down.sh.
#
# Environment (all optional):
#   KUBE_FACE_CLUSTER_DIR   state dir: pki, data, logs, pids (default /tmp/kube-face-cluster)
#   KUBE_FACE_BIN           use binaries from here instead of running build.sh
#   KUBE_FACE_FAKE_NODES    number of kwok nodes (default 3)
#   KUBE_FACE_ETCD_PORT / _ETCD_PEER_PORT / _APISERVER_PORT / _KCM_PORT / _SCHEDULER_PORT / _KWOK_PORT
#                           loopback ports (defaults 22379 22380 26443 20257 20259 20247)
#   KUBE_FACE_UP_TIMEOUT    seconds to wait for each step (default 300)
#   KUBE_FACE_STORAGE_CLASS name of the default StorageClass that kwok fakes (default standard)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${KUBE_FACE_CLUSTER_DIR:-/tmp/kube-face-cluster}
# shellcheck source=scripts/cluster/procs.sh
source "$HERE/procs.sh"  # alive, start, wait_for, stop, dump_logs
NODES=${KUBE_FACE_FAKE_NODES:-3}
ETCD_PORT=${KUBE_FACE_ETCD_PORT:-22379}
ETCD_PEER_PORT=${KUBE_FACE_ETCD_PEER_PORT:-22380}
API_PORT=${KUBE_FACE_APISERVER_PORT:-26443}
KCM_PORT=${KUBE_FACE_KCM_PORT:-20257}
SCHED_PORT=${KUBE_FACE_SCHEDULER_PORT:-20259}
KWOK_PORT=${KUBE_FACE_KWOK_PORT:-20247}
TIMEOUT=${KUBE_FACE_UP_TIMEOUT:-300}
STORAGE_CLASS=${KUBE_FACE_STORAGE_CLASS:-standard}
HOST=127.0.0.1                       # network rule: everything binds to loopback only
SERVICE_CIDR=10.96.0.0/16            # virtual: nothing routes it in stage 1
POD_CIDR=10.244.0.0/16               # fake pod IPs handed out by kwok; no traffic is sent

PKI="$STATE/pki" RUN="$STATE/run" LOGS="$STATE/logs"
KUBECONFIG_OUT="$STATE/kubeconfig"
log() { printf '[up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
T0=$(date +%s)

if [ -n "${KUBE_FACE_BIN:-}" ]; then BIN=$KUBE_FACE_BIN
else BIN=$("$HERE/build.sh" | tail -n 1); fi
SHARE="$BIN/../kwok-stages"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [ -x "$BIN/$b" ] || { log "missing $BIN/$b (run scripts/cluster/build.sh)"; exit 1; }
done
[ -f "$SHARE/pod-ready.yaml" ] || { log "missing kwok stages in $SHARE (run scripts/cluster/build.sh)"; exit 1; }
KUBECTL=("$BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT")

# curl to loopback only, never through a proxy.
lcurl() { curl --noproxy '*' -fsS --max-time 5 "$@"; }
api_ready() {
  lcurl --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$HOST:$API_PORT/readyz" >/dev/null 2>&1
}

# Already up? Then nothing to do.
if alive etcd && alive kube-apiserver && alive kube-controller-manager && alive kube-scheduler && alive kwok && api_ready; then
  log "cluster already up in $STATE"
  echo "export KUBECONFIG=$KUBECONFIG_OUT"
  exit 0
fi
if [ -e "$STATE" ]; then
  log "stale state in $STATE: cleaning it with down.sh first"
  KUBE_FACE_CLUSTER_DIR="$STATE" "$HERE/down.sh"
fi

PORTS="$ETCD_PORT $ETCD_PEER_PORT $API_PORT $KCM_PORT $SCHED_PORT $KWOK_PORT"
if [ "$(printf '%s\n' $PORTS | sort -u | wc -l)" -ne 6 ]; then
  log "the six ports must differ: $PORTS"; exit 1
fi
for p in $PORTS; do
  if ss -Hltn "sport = :$p" | grep -q .; then
    log "port $p on this machine is already in use; set KUBE_FACE_*_PORT to free ones"; exit 1
  fi
done

mkdir -p "$PKI" "$RUN" "$LOGS" "$STATE/etcd"
chmod 700 "$STATE" "$STATE/etcd" "$PKI"
echo "made by scripts/cluster/up.sh; removed by down.sh" > "$STATE/.kube-face-cluster"

on_error() {
  local rc=$?
  log "FAILED (exit $rc); last log lines:"
  dump_logs 15
  log "stopping what was started (logs stay in $LOGS; down.sh removes them)"
  KUBE_FACE_CLUSTER_DIR="$STATE" KUBE_FACE_KEEP_STATE=1 "$HERE/down.sh" || true
  exit "$rc"
}
trap on_error ERR

# ------------------------------------------------------------------ certificates
log "generating certificates and service-account keys in $PKI"
(
  cd "$PKI"
  ossl() { openssl "$@" 2>>"$LOGS/pki.log"; }
  newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
  newkey ca.key
  ossl req -x509 -new -key ca.key -out ca.crt -days 3650 -subj "/CN=kube-face-cluster-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  # sign NAME SUBJECT EXTENSIONS
  sign() {
    newkey "$1.key"
    ossl req -new -key "$1.key" -out "$1.csr" -subj "$2"
    printf '%b\n' "$3" > "$1.ext"
    ossl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out "$1.crt" -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
  }
  client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth"
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign admin "/O=system:masters/CN=kube-face-admin" "$client"
  sign controller-manager "/CN=system:kube-controller-manager" "$client"
  sign scheduler "/CN=system:kube-scheduler" "$client"
  sign kwok "/O=system:masters/CN=kwok-controller" "$client"
  # The API server's client identity towards real kubelets (stage 2: logs, exec, port-forward).
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  # Front-proxy (aggregation layer) CA and client: lets aggregated APIs such as
  # metrics-server work, and silences "missing requestheader-client-ca-file".
  newkey front-proxy-ca.key
  ossl req -x509 -new -key front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -subj "/CN=kube-face-front-proxy-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  newkey front-proxy-client.key
  ossl req -new -key front-proxy-client.key -out front-proxy-client.csr -subj "/CN=front-proxy-client"
  printf '%b\n' "$client" > front-proxy-client.ext
  ossl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial \
    -days 3650 -out front-proxy-client.crt -extfile front-proxy-client.ext
  rm -f front-proxy-client.csr front-proxy-client.ext
  newkey sa.key
  ossl pkey -in sa.key -pubout -out sa.pub
  chmod 600 ./*.key
)

# kubeconfig FILE USER CERT-BASENAME
kubeconfig() {
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kube-face-cluster
  cluster:
    server: https://$HOST:$API_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$3.crt")
    client-key-data: $(base64 -w0 "$PKI/$3.key")
contexts:
- name: kube-face-cluster
  context:
    cluster: kube-face-cluster
    user: $2
current-context: kube-face-cluster
EOF
  chmod 600 "$1"
}
kubeconfig "$KUBECONFIG_OUT" kube-face-admin admin
kubeconfig "$STATE/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
kubeconfig "$STATE/scheduler.kubeconfig" system:kube-scheduler scheduler
kubeconfig "$STATE/kwok.kubeconfig" kwok-controller kwok

# ------------------------------------------------------------------------- etcd
start etcd "$BIN/etcd" --name kube-face --data-dir "$STATE/etcd" \
  --listen-client-urls "http://$HOST:$ETCD_PORT" --advertise-client-urls "http://$HOST:$ETCD_PORT" \
  --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
  --initial-cluster "kube-face=http://$HOST:$ETCD_PEER_PORT" --initial-cluster-state new \
  --listen-metrics-urls "" --unsafe-no-fsync --log-level warn --quota-backend-bytes 2147483648
etcd_ok() { lcurl "http://$HOST:$ETCD_PORT/health" | grep -q '"health":"true"'; }
wait_for "etcd health" etcd etcd_ok

# ---------------------------------------------------------------- kube-apiserver
# Default admission plugins; --endpoint-reconciler-type=none because Endpoints may
# not hold loopback addresses and the apiserver advertises 127.0.0.1.
start kube-apiserver "$BIN/kube-apiserver" \
  --bind-address "$HOST" --advertise-address "$HOST" --secure-port "$API_PORT" \
  --etcd-servers "http://$HOST:$ETCD_PORT" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --authorization-mode Node,RBAC --allow-privileged=true \
  --endpoint-reconciler-type none --profiling=false
wait_for "kube-apiserver /readyz" kube-apiserver api_ready

# ------------------------------------------------- controller-manager, scheduler
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --bind-address "$HOST" --secure-port "$KCM_PORT" --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --cluster-name kube-face --profiling=false
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
  --bind-address "$HOST" --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false

# ------------------------------------------------------------------------- kwok
# Upstream's default stages (what kwokctl loads), with one addition to pod-ready:
# a pod whose annotation kube-face.test/never-ready exists, or one of whose container
# images contains "never-ready", stays not Ready: that is how a broken rollout is
# simulated on fake nodes (kwok never pulls images).
# The volume stages fake a dynamic provisioner: a PVC of the default StorageClass
# ($STORAGE_CLASS, named like minikube's) gets a PV and is Bound at once.
{
  for f in node-initialize node-heartbeat-with-lease pod-complete pod-delete \
           pv-bind pv-delete pvc-provision pvc-delete; do
    # Volumes of the fake provisioner are hostPath dirs: a real kubelet (stage 2) really
    # uses them, so they live in the state dir (down.sh removes them), not in /tmp.
    sed -e "s/'kwok-volume'/'$STORAGE_CLASS'/" -e "s#/tmp/kwok-local-path-provisioner/#$STATE/volumes/#" "$SHARE/$f.yaml"
    echo "---"
  done
  awk '
    { print }
    /^    matchExpressions:/ && !done {
      print "    - key: \x27.metadata.annotations[\"kube-face.test/never-ready\"]\x27"
      print "      operator: \x27DoesNotExist\x27"
      print "    - key: \x27.spec.containers.[].image | select(contains(\"never-ready\"))\x27"
      print "      operator: \x27DoesNotExist\x27"
      done = 1
    }' "$SHARE/pod-ready.yaml"
} > "$STATE/kwok.yaml"
start kwok "$BIN/kwok" --config "$STATE/kwok.yaml" --kubeconfig "$STATE/kwok.kubeconfig" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --cidr "$POD_CIDR" --node-ip "$HOST" --node-lease-duration-seconds 40 \
  --server-address "$HOST:$KWOK_PORT"

kcm_ok() { lcurl -k "https://$HOST:$KCM_PORT/healthz" | grep -q ok; }
sched_ok() { lcurl -k "https://$HOST:$SCHED_PORT/healthz" | grep -q ok; }
kwok_ok() { lcurl "http://$HOST:$KWOK_PORT/healthz" | grep -q ok; }
wait_for "kube-controller-manager /healthz" kube-controller-manager kcm_ok
wait_for "kube-scheduler /healthz" kube-scheduler sched_ok
wait_for "kwok /healthz" kwok kwok_ok

# Default StorageClass served by kwok's volume stages.
sed "s/name: kwok-volume/name: $STORAGE_CLASS/" "$SHARE/storage-class.yaml" | "${KUBECTL[@]}" apply -f - >&2

# ------------------------------------------------------------------- fake nodes
log "creating $NODES kwok fake nodes"
# KUBE_FACE_FAKE_NODES=0 (stage 2: only the real node of node-up.sh) creates none.
[ "$NODES" -gt 0 ] && for i in $(seq 1 "$NODES"); do
  cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-node-$i
---
EOF
done | "${KUBECTL[@]}" apply -f - >&2
nodes_ready() {
  [ "$("${KUBECTL[@]}" get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')" -ge "$NODES" ]
}
wait_for "$NODES nodes Ready" kwok nodes_ready
# Pods need the namespace's default ServiceAccount (made by the controller manager).
wait_for "default ServiceAccount" kube-controller-manager "${KUBECTL[@]}" -n default get serviceaccount default

trap - ERR
"${KUBECTL[@]}" get nodes >&2
log "cluster up in $(( $(date +%s) - T0 ))s; state and logs in $STATE"
echo "export KUBECONFIG=$KUBECONFIG_OUT"
