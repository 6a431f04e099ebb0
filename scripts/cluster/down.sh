#!/usr/bin/env bash
# Stop the cluster that up.sh started (by its pid files only) and remove its state.
# KUBE_FACE_CLUSTER_DIR picks the state dir (default /tmp/kube-face-cluster);
# KUBE_FACE_KEEP_STATE=1 stops the processes but keeps the state dir (logs).
set -euo pipefail

STATE=${KUBE_FACE_CLUSTER_DIR:-/tmp/kube-face-cluster}
RUN="$STATE/run"
log() { printf '[down %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

OURS=$STATE
# shellcheck source=scripts/cluster/procs.sh
source "$(dirname "${BASH_SOURCE[0]}")/procs.sh"  # stop

if [ -d "$STATE" ] && [ ! -f "$STATE/.kube-face-cluster" ] && [ -n "$(ls -A "$STATE")" ]; then
  log "refusing: $STATE is not empty and has no .kube-face-cluster marker (not made by up.sh)"
  exit 1
fi
if [ -d "$STATE/node" ]; then
  # Stage 2's real node first: it needs the API server to deregister and holds mounts.
  KUBE_FACE_CLUSTER_DIR="$STATE" "$(dirname "${BASH_SOURCE[0]}")/node-down.sh"
fi
if [ -d "$STATE" ]; then
  # Reverse start order: the API clients first (together), then the apiserver, etcd last.
  for name in kwok kube-scheduler kube-controller-manager; do stop "$name" & done
  wait
  stop kube-apiserver
  stop etcd
  if [ "${KUBE_FACE_KEEP_STATE:-0}" = 1 ]; then
    log "kept $STATE"
  else
    rm -rf "$STATE"
    log "removed $STATE"
  fi
else
  log "nothing to do: $STATE does not exist"
fi
