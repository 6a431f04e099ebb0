#!/usr/bin/env bash
# Stop the real node that node-up.sh started and remove what it made: the Node object
# (while the API is still up), kube-proxy, kubelet, every pod container, containerd,
# the relays (by their pid files only), the mounts under the node dir, the cgroups
# under /$NETNS, the network namespace, and the node dir. Restores the kernel
# tunables the kubelet changed. KUBE_FACE_KEEP_STATE=1 keeps the node dir (logs).
set -euo pipefail

STATE=${KUBE_FACE_CLUSTER_DIR:-/tmp/kube-face-cluster}
NODE="$STATE/node" RUN="$STATE/node/run"
NETNS=${KUBE_FACE_NODE_NETNS:-$(cat "$NODE/netns" 2>/dev/null || echo kube-face-node)}
NODE_NAME=127.0.0.1
CGROUP_ROOT=$NETNS
log() { printf '[node-down %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -d "$NODE" ] && [ ! -f "$NODE/.kube-face-node" ] && [ -n "$(ls -A "$NODE")" ]; then
  log "refusing: $NODE is not empty and has no .kube-face-node marker (not made by node-up.sh)"
  exit 1
fi

OURS=$NODE
# shellcheck source=scripts/cluster/procs.sh
source "$(dirname "${BASH_SOURCE[0]}")/procs.sh"  # stop

if [ -d "$NODE" ]; then
  # Node object first, while the API (and its relay) is up; pods bound to it go with it.
  kc="$STATE/kubeconfig"
  bin=${KUBE_FACE_BIN:-${KUBE_FACE_CACHE:-$HOME/.cache/kube-face}/k8s/${KUBE_FACE_K8S_VERSION:-v1.34.12}/bin}
  if [ -f "$kc" ] && [ -x "$bin/kubectl" ]; then
    "$bin/kubectl" --kubeconfig "$kc" --request-timeout 5s \
      delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    # What node-up.sh put into the cluster for the node: the API's EndpointSlice, CoreDNS.
    "$bin/kubectl" --kubeconfig "$kc" --request-timeout 5s -n default \
      delete endpointslice kubernetes-kube-face-node --ignore-not-found >/dev/null 2>&1 || true
    "$bin/kubectl" --kubeconfig "$kc" --request-timeout 5s -n kube-system \
      delete deployment/coredns service/kube-dns configmap/coredns serviceaccount/coredns --ignore-not-found >/dev/null 2>&1 || true
  fi
  stop kube-proxy
  stop kubelet
  # Kill every container while containerd still knows them (the kubelet does not stop pods on exit).
  if [ -S "$RUN/containerd.sock" ]; then
    ctr=(ctr --address "$RUN/containerd.sock" -n k8s.io --timeout 10s)
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 1
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do "${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true; done
    for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  # Shims outlive containerd; they are ours when their command line names our socket.
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $RUN/containerd.sock" || true); do
    ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  for f in "$RUN"/relay-*.pid; do [ -f "$f" ] && stop "$(basename "$f" .pid)" & done
  wait
  # Mounts under the node dir (overlay rootfs, shm, netns, tokens), deepest first.
  awk -v p="$NODE/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
  # Empty cgroups below /$NETNS, deepest first (processes are gone by now).
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$CGROUP_ROOT" ] || continue
    find "$h$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || log "could not remove all of $h$CGROUP_ROOT"
  done
  for l in /var/log/containers/*.log; do
    [ -L "$l" ] && case "$(readlink "$l")" in "$NODE/"*) rm -f "$l" ;; esac
  done
  [ -f "$NODE/made-var-log-containers" ] && rmdir /var/log/containers 2>/dev/null || true
  if [ -f "$NODE/sysctl.saved" ]; then
    mapfile -t v < "$NODE/sysctl.saved"
    sysctl -qw "${v[@]}" || true
    log "restored ${v[*]}"
  fi
fi
if [ -e "/var/run/netns/$NETNS" ]; then
  ip netns del "$NETNS" && log "removed network namespace $NETNS"
fi
if [ -d "$NODE" ]; then
  if [ "${KUBE_FACE_KEEP_STATE:-0}" = 1 ]; then log "kept $NODE"
  else rm -rf "$NODE"; log "removed $NODE"; fi
fi
