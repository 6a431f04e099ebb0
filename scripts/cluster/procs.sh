# Process helpers shared by up.sh, node-up.sh, down.sh and node-down.sh (sourced, not run).
# The caller sets RUN (pid files), LOGS (log files, for start), TIMEOUT (seconds, for wait_for)
# and OURS (a folder every one of its processes names on its command line, for stop), and
# defines log().

# alive NAME: the process started as NAME still runs.
alive() { local p; p=$(cat "$RUN/$1.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

# start NAME BINARY ARGS...: background it in its own session, pid file, log file.
start() {
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! > "$RUN/$name.pid"
  log "started $name (pid $!)"
}

# wait_for WHAT PROCESS COMMAND...: poll until the command succeeds; fail at once if
# PROCESS (a name started above, or "-") has exited, or when the timeout passes.
wait_for() {
  local what=$1 proc=$2; shift 2
  local deadline=$(( $(date +%s) + TIMEOUT )) t=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if [ "$proc" != - ] && ! alive "$proc"; then log "$proc exited while waiting for $what"; return 1; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then log "timed out after ${TIMEOUT}s waiting for $what"; return 1; fi
    sleep 1
  done
  log "$what: ok after $(( $(date +%s) - t ))s"
}

# A pid is ours only if the process is still one of ours: its command line names OURS (every
# component gets a path inside it). This guards against pid reuse.
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF -- "$OURS/"; }

# stop NAME: SIGTERM the process of NAME's pid file (if it is still ours), SIGKILL after 10 s.
stop() {
  local name=$1 f="$RUN/$1.pid" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 10s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$f"
}

# dump_logs LINES: the last LINES lines of every log in LOGS, on stderr (for a failed start).
dump_logs() {
  local f; for f in "$LOGS"/*.log; do
    [ -f "$f" ] || continue
    echo "---- $f" >&2; tail -n "$1" "$f" >&2
  done
}
