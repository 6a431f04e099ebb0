#!/usr/bin/env bash
# Test infrastructure (never installed for users): a dockerd with normal bridge networking and
# iptables, inside a network namespace of the test's own, so minikube's docker network, its
# node's address and every published port stay in that namespace and no traffic leaves it.
#   tests/infra/netns-dockerd.sh start DIR [NETNS]   # prints the DOCKER_HOST to use
#   tests/infra/netns-dockerd.sh stop DIR [NETNS]    # stops it, removes its containers' mounts and the namespace
# Run clients in the namespace with `nsenter --net=/run/netns/NETNS ...` (not `ip netns exec`,
# which remounts /sys and hides the cgroup mounts dockerd needs).
# The default OCI runtime is runc-nosysres (this folder): this machine's capability bounding set
# lacks CAP_SYS_RESOURCE, without which `docker run --privileged` fails with plain runc.
set -euo pipefail

cmd=${1:?usage: $0 start|stop DIR [NETNS]}
dir=${2:?usage: $0 start|stop DIR [NETNS]}
netns=${3:-kube-face-mk}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KUBE_FACE_CACHE:-$HOME/.cache/kube-face}
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
docker_cli=$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || command -v docker)
answers() { [ -S "$sock" ] && "$docker_cli" -H "unix://$sock" version >/dev/null 2>&1; }

# The wrapper, built once into the cache (a static Go binary: it also runs inside the node).
wrapper() {
  local src="$here/runc-nosysres" out="$cache/test-infra/runc-nosysres"
  local key; key=$(cat "$src/go.mod" "$src/main.go" | sha256sum | cut -c1-16)
  if [ ! -x "$out" ] || [ "$(cat "$out.stamp" 2>/dev/null)" != "$key" ]; then
    mkdir -p "$(dirname "$out")"
    (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath go build -ldflags '-s -w' -o "$out.tmp" .)
    mv -f "$out.tmp" "$out"; printf '%s' "$key" > "$out.stamp"
  fi
  echo "$out"
}

case $cmd in
  start)
    mkdir -p "$dir"
    [ -e "/run/netns/$netns" ] || ip netns add "$netns"
    ip -n "$netns" link set lo up
    w=$(wrapper)
    if ! answers; then
      nohup nsenter --net="/run/netns/$netns" nice -n 10 dockerd --host "unix://$sock" \
        --data-root "$dir/data" --exec-root "$dir/run" --pidfile "$pidfile" \
        --cgroup-parent "/$netns" --add-runtime "nosysres=$w" --default-runtime nosysres \
        --log-level warn >>"$dir/dockerd.log" 2>&1 </dev/null &
      for _ in $(seq 1 300); do answers && break; sleep 0.1; done
      answers || { echo "netns-dockerd.sh: dockerd did not answer; log:" >&2; tail -n 20 "$dir/dockerd.log" >&2; exit 1; }
    fi
    echo "unix://$sock"
    ;;
  stop)
    if answers; then
      ids=$("$docker_cli" -H "unix://$sock" ps -aq)
      # shellcheck disable=SC2086
      [ -z "$ids" ] || "$docker_cli" -H "unix://$sock" rm -f $ids >/dev/null 2>&1 || true
    fi
    if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    # Mounts left under this daemon's roots (overlay layers, its netns files), deepest first.
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    [ -e "/run/netns/$netns" ] && ip netns delete "$netns"
    rmdir "/sys/fs/cgroup/"*"/$netns" 2>/dev/null || true
    ;;
  *) echo "usage: $0 start|stop DIR [NETNS]" >&2; exit 2 ;;
esac
