#!/usr/bin/env bash
# Runs Debian's dockerd in the background (no systemd needed) for the image builds
# and tests: no default bridge and no iptables rules (containers use --network host on loopback),
# its own data root, exec root and socket under the cache, so it never meets another engine and
# its image layers survive between runs.
#   scripts/images/dockerd.sh start    # idempotent; prints the DOCKER_HOST to use
#   scripts/images/dockerd.sh stop     # stops the daemon this script started (layers are kept)
#   scripts/images/dockerd.sh status   # exit 0 when it answers
set -euo pipefail

cache=${KUBE_FACE_CACHE:-$HOME/.cache/kube-face}
dir=$cache/docker
sock=$dir/docker.sock
pidfile=$dir/run/dockerd.pid
host=unix://$sock
# The client packaged with the daemon (Debian's docker.io); another docker on PATH may be newer.
docker_cli=$( [ -x /usr/bin/docker ] && echo /usr/bin/docker || command -v docker || true)

answers() { [ -S "$sock" ] && "$docker_cli" -H "$host" version >/dev/null 2>&1; }

case "${1:-start}" in
  start)
    command -v dockerd >/dev/null || {
      echo "dockerd.sh: dockerd not found (apt-get install docker.io)" >&2; exit 1; }
    if ! answers; then
      mkdir -p "$dir/data" "$dir/run"
      # A stale pid file from a killed daemon would make dockerd refuse to start.
      if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then rm -f "$pidfile"; fi
      # nice: builds and containers inherit it, and the machine's cores are shared.
      nohup nice -n 10 dockerd --host "$host" --data-root "$dir/data" --exec-root "$dir/run" \
        --pidfile "$pidfile" --bridge=none --iptables=false --ip-masq=false \
        --userland-proxy=false --log-level=warn >>"$dir/dockerd.log" 2>&1 </dev/null &
      for _ in $(seq 1 300); do answers && break; sleep 0.1; done
      answers || { echo "dockerd.sh: dockerd did not answer on $sock; last log lines:" >&2
                   tail -n 20 "$dir/dockerd.log" >&2; exit 1; }
    fi
    echo "$host"
    ;;
  stop)
    if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # dockerd leaves its default network namespace bind-mounted: unmount it, so that the cache
    # folder can be deleted (only mounts under this daemon's own exec root).
    if ! answers; then
      awk -v d="$dir/run/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | while read -r m; do
        umount "$m" 2>/dev/null || true
      done
    fi
    ;;
  status)
    answers
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2; exit 2
    ;;
esac
