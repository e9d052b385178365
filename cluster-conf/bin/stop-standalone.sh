#!/usr/bin/env bash
# Stops the cluster start-standalone.sh started: the Workers (and any executor JVMs they forked), then the Master, each by
# its pid file; waits until they are gone. Idempotent: with nothing running it says so and exits 0. See --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="usage: cluster-conf/bin/stop-standalone.sh [--run-dir DIR] [--timeout SECONDS]
  Sends SIGTERM to every process named by DIR/worker-*.pid, their executor JVMs, then DIR/master.pid; waits up to
  --timeout seconds (default 30) for each and then sends SIGKILL. A pid file whose process is gone, or is no longer a
  Spark daemon (the pid was reused), is just removed. Deletes the app jars the Workers copied into DIR/work-N/ (200+ MB
  per executor) and keeps the executors' logs there. Exit status 0 when nothing of the cluster runs any more.
  --run-dir  as given to start-standalone.sh (default \$CATENA_RUN_DIR, else target/standalone under the Catena checkout)
  With a Spark distribution instead: \$SPARK_HOME/sbin/stop-worker.sh; \$SPARK_HOME/sbin/stop-master.sh"

run_dir="${CATENA_RUN_DIR:-$CATENA_ROOT/target/standalone}"
timeout_s=30
while [[ $# -gt 0 ]]; do
  case "$1" in
    --run-dir) catena_need_value "$1" $#; run_dir="$2"; shift 2 ;;
    --timeout) catena_need_value "$1" $#; timeout_s="$2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) catena_die "unknown option '$1'
$USAGE" ;;
  esac
done
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || catena_die "--timeout must be a positive whole number, got '$timeout_s'"
if [[ ! -d "$run_dir" ]]; then
  echo "nothing to stop: no run dir $run_dir"
  exit 0
fi

# alive PID: the process exists and is not a zombie
alive() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z ]]
}

# stop_pid PID WHAT: SIGTERM, wait up to --timeout, then SIGKILL and wait 10 s more; fails if it survives
stop_pid() {
  local pid="$1" what="$2" deadline
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout_s))
  while alive "$pid" && [[ $SECONDS -lt $deadline ]]; do sleep 0.2; done
  if alive "$pid"; then
    echo "$(basename "$0"): $what (pid $pid) still runs $timeout_s s after SIGTERM: sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && [[ $SECONDS -lt $deadline ]]; do sleep 0.2; done
  fi
  if alive "$pid"; then
    echo "$(basename "$0"): $what (pid $pid) survived SIGKILL" >&2
    return 1
  fi
}

failed=0
stopped=0
shopt -s nullglob
for f in "$run_dir"/worker-*.pid "$run_dir"/master.pid; do
  [[ -f "$f" ]] || continue
  name="$(basename "$f" .pid)"
  pid="$(cat "$f")"
  case "$name" in
    master) cls=org.apache.spark.deploy.master.Master ;;
    *) cls=org.apache.spark.deploy.worker.Worker ;;
  esac
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! alive "$pid"; then
    echo "$name: not running (stale $f removed)"
    rm -f "$f"
    continue
  fi
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$cls"; then
    echo "$name: pid $pid is no longer $cls (pid reused): left alone, $f removed"
    rm -f "$f"
    continue
  fi
  # a Worker's executors (CoarseGrainedExecutorBackend JVMs it forked): the Worker kills them on SIGTERM; any that
  # outlive it are stopped here too
  children=()
  if [[ "$name" != master ]]; then
    mapfile -t children < <(ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ')
  fi
  if stop_pid "$pid" "$name"; then
    echo "$name: stopped (pid $pid)"
    rm -f "$f"
    stopped=$((stopped + 1))
  else
    failed=1
  fi
  for c in "${children[@]}"; do
    [[ -n "$c" ]] && alive "$c" && { stop_pid "$c" "executor of $name" || failed=1; }
  done
done
[[ $stopped -gt 0 ]] || echo "nothing was running from $run_dir"

# the Workers copied the app jar into work-N/app-*/N/ for every executor: drop those copies, keep the executors' logs
for w in "$run_dir"/work-*; do
  find "$w" -name '*.jar' -type f -delete 2>/dev/null || true
done
if [[ $failed -ne 0 ]]; then
  catena_die "some processes of the cluster in $run_dir did not stop (see above); their pid files are kept"
fi
rm -f "$run_dir/master.url"
