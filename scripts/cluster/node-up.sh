#!/usr/bin/env bash
# Stage 2: add one REAL node to the control plane that up.sh started:
# containerd (Debian's, with runc and the CNI plugins), a kubelet and kube-proxy
# built by build.sh, all inside a network namespace made here, so the pod network,
# the bridge, kube-proxy's iptables rules and every pod stay out of the host's
# network namespace. The host namespace only gets loopback listeners (socat relays):
#   host 127.0.0.1:$API_PORT        <- node ns 127.0.0.1:$API_PORT   (kubelet, kube-proxy -> API)
#   host 127.0.0.1:$KUBELET_PORT    -> node ns 127.0.0.1:$KUBELET_PORT (API -> kubelet: logs, exec, port-forward)
#   host 127.0.0.1:P                -> node ns 127.0.0.1:P for each P in KUBE_FACE_NODE_PORTS (Service NodePorts)
#   node ns $POD_GW:$API_PORT        -> host 127.0.0.1:$API_PORT (pods -> Service "kubernetes" 10.96.0.1:443,
#                                     whose EndpointSlice node-up.sh writes: the API server reconciles none)
# The relays cross namespaces through unix sockets in the state dir, not through any
# interface. The node is named 127.0.0.1: a kubelet refuses a loopback --node-ip, but
# an IP given as --hostname-override becomes the InternalIP unchecked, and the API
# server must dial a loopback address (the relay) for logs/exec/port-forward.
# Idempotent; stop with node-down.sh (down.sh calls it too).
#
# Environment (all optional; the stage-1 ones as in up.sh):
#   KUBE_FACE_CLUSTER_DIR   state dir of up.sh (default /tmp/kube-face-cluster); the node lives in ./node
#   KUBE_FACE_APISERVER_PORT  API port of up.sh (default 26443)
#   KUBE_FACE_NODE_NETNS    network namespace name (default kube-face-node)
#   KUBE_FACE_KUBELET_PORT  kubelet port, relayed to the host's loopback (default 20250)
#   KUBE_FACE_NODE_PORTS    NodePorts relayed to the host's 127.0.0.1 (default "30080 30800 30881")
#   KUBE_FACE_POD_CIDR      pod subnet of the bridge inside the namespace (default 10.245.0.0/24)
#   KUBE_FACE_NODE_IMAGES   extra image tars (docker-archive or OCI) to import into containerd
#   KUBE_FACE_NODE_DNS      1 (default): CoreDNS in kube-system as Service kube-dns 10.96.0.10; 0: none
#   KUBE_FACE_UP_TIMEOUT    seconds to wait for each step (default 300)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${KUBE_FACE_CLUSTER_DIR:-/tmp/kube-face-cluster}
# shellcheck source=scripts/cluster/procs.sh
source "$HERE/procs.sh"  # alive, start, wait_for, stop, dump_logs
API_PORT=${KUBE_FACE_APISERVER_PORT:-26443}
NETNS=${KUBE_FACE_NODE_NETNS:-kube-face-node}
KUBELET_PORT=${KUBE_FACE_KUBELET_PORT:-20250}
NODE_PORTS=${KUBE_FACE_NODE_PORTS:-30080 30800 30881}
POD_CIDR=${KUBE_FACE_POD_CIDR:-10.245.0.0/24}
POD_GW=${POD_CIDR%.*}.1              # the bridge's address: the pods' gateway
POD_PREFIX=${POD_CIDR#*/}
NODE_DNS=${KUBE_FACE_NODE_DNS:-1}
DNS_IP=10.96.0.10                    # inside up.sh's service range 10.96.0.0/16
COREDNS_VERSION=${KUBE_FACE_COREDNS_VERSION:-v1.14.7}   # as build.sh
COREDNS_IMAGE=${KUBE_FACE_COREDNS_IMAGE:-kube-face.local/coredns:${COREDNS_VERSION#v}}
TIMEOUT=${KUBE_FACE_UP_TIMEOUT:-300}
PAUSE_IMAGE=${KUBE_FACE_PAUSE_IMAGE:-kube-face.local/pause:3.10}
NODE_NAME=127.0.0.1
HOST=127.0.0.1
# Ports that exist only inside the node namespace (no clash with the host's).
KUBELET_HEALTHZ_PORT=10248 PROXY_HEALTHZ_PORT=10256 PROXY_METRICS_PORT=10249
TUNABLES="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
CGROUP_ROOT=/$NETNS                 # one cgroup root per node (two state dirs, two nodes)
BRIDGE=kfbr0

PKI="$STATE/pki" NODE="$STATE/node"
RUN="$NODE/run" LOGS="$NODE/logs" NPKI="$NODE/pki"
NSPATH="/var/run/netns/$NETNS"
log() { printf '[node-up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
T0=$(date +%s)

[ "$(id -u)" = 0 ] || { log "must run as root (containerd, kubelet, network namespaces)"; exit 1; }

# ----------------------------------------------------------- packages, binaries
need_pkgs=()
for tool in containerd:containerd ctr:containerd containerd-shim-runc-v2:containerd runc:runc \
            socat:socat nsenter:util-linux ip:iproute2 iptables:iptables; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_pkgs+=("${tool#*:}")
done
[ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages from node-packages.txt (missing: ${need_pkgs[*]})"
  DEBIAN_FRONTEND=noninteractive nice apt-get install -y --no-install-recommends \
    $(grep -v '^#' "$HERE/node-packages.txt") >&2
fi

BIN=$(KUBE_FACE_CLUSTER_NODE=real "$HERE/build.sh" | tail -n 1)
IMAGES="$BIN/../images"
for b in kubelet kube-proxy kubectl; do
  [ -x "$BIN/$b" ] || { log "missing $BIN/$b (run KUBE_FACE_CLUSTER_NODE=real scripts/cluster/build.sh)"; exit 1; }
done
KUBECTL=("$BIN/kubectl" --kubeconfig "$STATE/kubeconfig")

lcurl() { curl --noproxy '*' -fsS --max-time 5 "$@"; }
api_ready() {
  lcurl --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://$HOST:$API_PORT/readyz" >/dev/null 2>&1
}
in_ns() { nsenter --net="$NSPATH" "$@"; }

if ! api_ready; then
  log "control plane not up in $STATE: starting it with up.sh"
  "$HERE/up.sh" >/dev/null
fi
api_ready || { log "API server on $HOST:$API_PORT is not ready"; exit 1; }

node_ready() {
  [ "$("${KUBECTL[@]}" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
if alive containerd && alive kubelet && alive kube-proxy && alive relay-api-host && node_ready; then
  log "node $NODE_NAME already up in $NODE"
  exit 0
fi
if [ -e "$NODE" ] || [ -e "$NSPATH" ]; then
  log "stale node state: cleaning it with node-down.sh first"
  KUBE_FACE_CLUSTER_DIR="$STATE" KUBE_FACE_NODE_NETNS="$NETNS" "$HERE/node-down.sh"
fi
for p in "$KUBELET_PORT" $NODE_PORTS; do
  if ss -Hltn "sport = :$p" | grep -q .; then
    log "port $p on this machine is already in use; set KUBE_FACE_KUBELET_PORT / KUBE_FACE_NODE_PORTS"; exit 1
  fi
done

mkdir -p "$RUN" "$LOGS" "$NPKI" "$NODE/cni/net.d" "$NODE/cni/ipam" "$NODE/pod-logs" "$NODE/kubelet"
chmod 700 "$NODE" "$NPKI"
echo "made by scripts/cluster/node-up.sh; removed by node-down.sh" > "$NODE/.kube-face-node"
echo "$NETNS" > "$NODE/netns"

on_error() {
  local rc=$?
  log "FAILED (exit $rc); last log lines:"
  dump_logs 20
  log "stopping the node (state kept in $NODE; node-down.sh removes it)"
  KUBE_FACE_CLUSTER_DIR="$STATE" KUBE_FACE_NODE_NETNS="$NETNS" KUBE_FACE_KEEP_STATE=1 "$HERE/node-down.sh" || true
  exit "$rc"
}
trap on_error ERR

# ---------------------------------------------------------- network namespace
ip netns add "$NETNS"
in_ns ip link set lo up
# The bridge exists before the first pod so that the pods' API relay can bind its address;
# the CNI bridge plugin adopts it.
in_ns ip link add "$BRIDGE" type bridge
in_ns ip addr add "$POD_GW/$POD_PREFIX" dev "$BRIDGE"
in_ns ip link set "$BRIDGE" up
# Forwarding inside the namespace only (pod <-> service DNAT <-> pod).
in_ns sysctl -qw net.ipv4.ip_forward=1
log "network namespace $NETNS: lo and the bridge $BRIDGE ($POD_GW/$POD_PREFIX), no route out"

# -------------------------------------------------------------- kernel tunables
# The kubelet sets vm.overcommit_memory=1, vm.panic_on_oom=0, kernel.panic=10,
# kernel.panic_on_oops=1 and kernel.keys.root_max{keys,bytes} machine-wide (no way to skip
# it short of failing on a mismatch); remember the values so node-down.sh restores them.
for k in $TUNABLES; do echo "$k=$(sysctl -n "$k")"; done > "$NODE/sysctl.saved"

# ---------------------------------------------------------------- certificates
log "node certificates (signed by the stage-1 CA)"
(
  cd "$NPKI"
  ossl() { openssl "$@" 2>>"$LOGS/pki.log"; }
  sign() {
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
    ossl req -new -key "$1.key" -out "$1.csr" -subj "$2"
    printf '%b\n' "$3" > "$1.ext"
    ossl x509 -req -in "$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAserial "$NPKI/ca.srl" -CAcreateserial \
      -days 3650 -out "$1.crt" -extfile "$1.ext"
    rm -f "$1.csr" "$1.ext"
  }
  client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth"
  sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$client"
  sign kube-proxy "/CN=system:kube-proxy" "$client"
  sign kubelet-serving "/CN=$NODE_NAME" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost"
  chmod 600 ./*.key
)
kubeconfig() {
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kube-face-cluster
  cluster:
    server: https://$HOST:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $NPKI/$3.crt
    client-key: $NPKI/$3.key
contexts:
- name: kube-face-cluster
  context: {cluster: kube-face-cluster, user: $2}
current-context: kube-face-cluster
EOF
  chmod 600 "$1"
}
kubeconfig "$NODE/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet
kubeconfig "$NODE/kube-proxy.kubeconfig" system:kube-proxy kube-proxy

# ---------------------------------------------------------------------- relays
# API into the namespace; kubelet and NodePorts out of it. unix sockets in $RUN.
start relay-api-host socat "UNIX-LISTEN:$RUN/api.sock,fork,unlink-early,mode=600" "TCP:$HOST:$API_PORT"
start relay-api-ns nsenter --net="$NSPATH" socat "TCP-LISTEN:$API_PORT,bind=$HOST,fork,reuseaddr" "UNIX-CONNECT:$RUN/api.sock"
start relay-api-pods nsenter --net="$NSPATH" socat "TCP-LISTEN:$API_PORT,bind=$POD_GW,fork,reuseaddr" "UNIX-CONNECT:$RUN/api.sock"
start relay-kubelet-ns nsenter --net="$NSPATH" socat "UNIX-LISTEN:$RUN/kubelet.sock,fork,unlink-early,mode=600" "TCP:$HOST:$KUBELET_PORT"
start relay-kubelet-host socat "TCP-LISTEN:$KUBELET_PORT,bind=$HOST,fork,reuseaddr" "UNIX-CONNECT:$RUN/kubelet.sock"
for p in $NODE_PORTS; do
  start "relay-nodeport-$p-ns" nsenter --net="$NSPATH" socat "UNIX-LISTEN:$RUN/nodeport-$p.sock,fork,unlink-early,mode=600" "TCP:$HOST:$p"
  start "relay-nodeport-$p-host" socat "TCP-LISTEN:$p,bind=$HOST,fork,reuseaddr" "UNIX-CONNECT:$RUN/nodeport-$p.sock"
done
ns_api_ready() {
  in_ns curl --noproxy '*' -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$HOST:$API_PORT/readyz"
}
wait_for "API server reachable inside $NETNS" relay-api-ns ns_api_ready

# ------------------------------------------------------------------ containerd
cat > "$NODE/containerd.toml" <<EOF
# Written by scripts/cluster/node-up.sh: a private containerd (own root, state, socket).
version = 2
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$RUN/containerd.sock"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The sandbox cannot lower oom_score_adj: clamp container values to containerd's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$NODE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni/net.d"
    max_conf_num = 1
EOF
# Bridge inside the namespace; no masquerade (nothing leaves the namespace); the
# default route points pods at the bridge, where kube-proxy's rules live.
cat > "$NODE/cni/net.d/10-kube-face.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kube-face",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE/cni/ipam"
      }
    }
  ]
}
EOF
start containerd nsenter --net="$NSPATH" containerd --config "$NODE/containerd.toml" --log-level warn
CTR=(ctr --address "$RUN/containerd.sock" -n k8s.io)
wait_for "containerd" containerd "${CTR[@]}" version
t=$(date +%s)
tars=("$IMAGES/pause.tar" "$IMAGES/hello.tar")
[ "$NODE_DNS" = 1 ] && tars+=("$IMAGES/coredns.tar")
for tar in "${tars[@]}" ${KUBE_FACE_NODE_IMAGES:-}; do
  "${CTR[@]}" images import "$tar" >&2
done
log "images imported in $(( $(date +%s) - t ))s: $("${CTR[@]}" images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# --------------------------------------------------------------------- kubelet
# cgroup v1 with the cgroupfs driver; every pod below $CGROUP_ROOT in each hierarchy.
for h in /sys/fs/cgroup/*/; do
  case "$h" in */unified/) continue ;; esac
  mkdir -p "$h${CGROUP_ROOT#/}"
  if [ -f "$h/cpuset.cpus" ]; then
    cat "$h/cpuset.cpus" > "$h${CGROUP_ROOT#/}/cpuset.cpus"
    cat "$h/cpuset.mems" > "$h${CGROUP_ROOT#/}/cpuset.mems"
  fi
done
# The kubelet links container logs into /var/log/containers (fixed path, not configurable):
# remember whether it existed, node-down.sh removes our links (and the dir if we made it).
[ -d /var/log/containers ] || touch "$NODE/made-var-log-containers"
echo "nameserver 127.0.0.1" > "$NODE/resolv.conf"   # pods' DNS stays in their own netns
cat > "$NODE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $HOST
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: $HOST
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $NPKI/kubelet-serving.crt
tlsPrivateKeyFile: $NPKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$RUN/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
# The sandbox cannot lower oom_score_adj (-999 by default): leave the kubelet's alone.
oomScoreAdj: 0
podLogsDir: $NODE/pod-logs
resolvConf: $NODE/resolv.conf
clusterDomain: cluster.local
$([ "$NODE_DNS" = 1 ] && echo "clusterDNS: [$DNS_IP]")
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 5%, imagefs.available: 5%}
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
EOF
start kubelet nsenter --net="$NSPATH" "$BIN/kubelet" --config "$NODE/kubelet.yaml" \
  --kubeconfig "$NODE/kubelet.kubeconfig" --root-dir "$NODE/kubelet" \
  --hostname-override "$NODE_NAME" --v 2
kubelet_ok() { in_ns curl --noproxy '*' -fsS --max-time 5 "http://$HOST:$KUBELET_HEALTHZ_PORT/healthz"; }
wait_for "kubelet /healthz" kubelet kubelet_ok
wait_for "node $NODE_NAME Ready" kubelet node_ready

# ------------------------------------------------------------------ kube-proxy
cat > "$NODE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $NODE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $HOST
healthzBindAddress: $HOST:$PROXY_HEALTHZ_PORT
metricsBindAddress: $HOST:$PROXY_METRICS_PORT
# Every local address of the node namespace (lo and the bridge): the relays reach NodePorts on 127.0.0.1.
nodePortAddresses: ["0.0.0.0/0"]
iptables: {localhostNodePorts: true, masqueradeAll: false}
# 0: leave the machine-wide conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy nsenter --net="$NSPATH" "$BIN/kube-proxy" --config "$NODE/kube-proxy.yaml" --v 2
proxy_ok() { in_ns curl --noproxy '*' -fsS --max-time 5 "http://$HOST:$PROXY_HEALTHZ_PORT/healthz"; }
wait_for "kube-proxy /healthz" kube-proxy proxy_ok

# ------------------------------------------- in-cluster API (Service kubernetes)
# up.sh runs the API server with --endpoint-reconciler-type none (it advertises 127.0.0.1,
# which Endpoints may not hold): point the Service at the pods' relay on the bridge.
"${KUBECTL[@]}" apply -f - >&2 <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes-kube-face-node
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: kube-face-node-up
addressType: IPv4
endpoints: [{addresses: ["$POD_GW"], conditions: {ready: true}}]
ports: [{name: https, port: $API_PORT, protocol: TCP}]
EOF

# --------------------------------------------------------------------- CoreDNS
if [ "$NODE_DNS" = 1 ]; then
  "${KUBECTL[@]}" apply -f - >&2 <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
# No forward plugin: names outside the cluster get no answer instead of a query to
# a resolver outside the namespace.
# ttl/cache 5 s, not 30: tests delete and recreate same-named Services within seconds,
# and a cached address of a deleted Service leads nowhere.
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      nodeSelector: {kubernetes.io/hostname: "$NODE_NAME"}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10, failureThreshold: 5}
        resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {memory: 128Mi}}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
EOF
  dns_ready() { "${KUBECTL[@]}" -n kube-system rollout status deployment/coredns --timeout=5s; }
  wait_for "CoreDNS Ready (Service kube-dns $DNS_IP)" kubelet dns_ready
fi

trap - ERR
"${KUBECTL[@]}" get node "$NODE_NAME" -o wide >&2
log "node $NODE_NAME up in $(( $(date +%s) - T0 ))s; state and logs in $NODE"
