#!/usr/bin/env bash
# A Spark standalone cluster on this host (127.0.0.1 only) from Spark's Maven jars: one Master and N Workers, each a
# background JVM with a pid file and a log under the run directory. Returns when the Master is up and every Worker has
# registered with it. See --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="usage: cluster-conf/bin/start-standalone.sh [--workers N] [--cores C] [--memory SIZE] [--master-port PORT]
                                          [--webui-port PORT] [--run-dir DIR] [--timeout SECONDS]
  Starts org.apache.spark.deploy.master.Master and N org.apache.spark.deploy.worker.Worker JVMs on 127.0.0.1 from the jars
  in spark-trainer/target/spark-home/jars (built with the app jar when missing), as \$SPARK_HOME/sbin/start-master.sh and
  start-worker.sh would, and waits until the Master is up and every Worker registered.
  --workers      Workers to start (default 2); a --dp N training run needs N free task slots
  --cores        cores each Worker offers (default 1); an executor needs spark.executor.cores of them
  --memory       memory each Worker offers to executors (default 2g); an executor takes spark.executor.memory
  --master-port  the Master's port (default 7077): submit with --master spark://127.0.0.1:PORT
  --webui-port   the Master's web UI (default 8080); Workers' UIs take the next ports
  --run-dir      pid files (master.pid, worker-N.pid), logs/ and the Workers' work-N/ dirs (default \$CATENA_RUN_DIR,
                 else target/standalone under the Catena checkout); stop-standalone.sh takes the same --run-dir
  --timeout      seconds to wait for the Master and for each Worker (default 120)
  Environment: SPARK_DAEMON_MEMORY (heap of the Master and Worker JVMs, default 512m), SPARK_DAEMON_JAVA_OPTS,
  CATENA_SPARK_HOME, JAVA_HOME. With a Spark distribution instead:
    \$SPARK_HOME/sbin/start-master.sh --host 127.0.0.1 --port 7077
    \$SPARK_HOME/sbin/start-worker.sh spark://127.0.0.1:7077 --host 127.0.0.1 --cores 1 --memory 2g   (once per Worker,
    with SPARK_WORKER_INSTANCES=2 for two)"

workers=2
cores=1
memory=2g
master_port=7077
webui_port=8080
run_dir="${CATENA_RUN_DIR:-$CATENA_ROOT/target/standalone}"
timeout_s=120
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) catena_need_value "$1" $#; workers="$2"; shift 2 ;;
    --cores) catena_need_value "$1" $#; cores="$2"; shift 2 ;;
    --memory) catena_need_value "$1" $#; memory="$2"; shift 2 ;;
    --master-port) catena_need_value "$1" $#; master_port="$2"; shift 2 ;;
    --webui-port) catena_need_value "$1" $#; webui_port="$2"; shift 2 ;;
    --run-dir) catena_need_value "$1" $#; run_dir="$2"; shift 2 ;;
    --timeout) catena_need_value "$1" $#; timeout_s="$2"; shift 2 ;;
    -h|--help) echo "$USAGE"; exit 0 ;;
    *) catena_die "unknown option '$1'
$USAGE" ;;
  esac
done
for pair in "--workers=$workers" "--cores=$cores" "--master-port=$master_port" "--webui-port=$webui_port" "--timeout=$timeout_s"; do
  [[ "${pair#*=}" =~ ^[1-9][0-9]*$ ]] || catena_die "${pair%%=*} must be a positive whole number, got '${pair#*=}'"
done
[[ "$master_port" -le 65535 && "$webui_port" -le 65535 ]] || catena_die "ports must be 1..65535, got $master_port and $webui_port"
[[ "$memory" =~ ^[0-9]+[mMgG]$ ]] || catena_die "--memory must look like 1536m or 2g, got '$memory'"

mkdir -p "$run_dir/logs"
run_dir="$(cd "$run_dir" && pwd)"
master_url="spark://127.0.0.1:$master_port"

# a cluster of this run dir that is still up: refuse (two Masters would fight over the pid files)
for f in "$run_dir"/master.pid "$run_dir"/worker-*.pid; do
  [[ -f "$f" ]] || continue
  pid="$(cat "$f")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && grep -qa "org.apache.spark.deploy" "/proc/$pid/cmdline" 2>/dev/null; then
    catena_die "a cluster from $run_dir is running ($(basename "$f" .pid), pid $pid); stop it first: cluster-conf/bin/stop-standalone.sh --run-dir $run_dir"
  fi
  rm -f "$f"   # stale: its process is gone
done

port_taken() {
  # something accepts TCP connections on 127.0.0.1:$1
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}
for p in "$master_port:--master-port" "$webui_port:--webui-port"; do
  if port_taken "${p%%:*}"; then
    owner="$(ss -ltnpH "sport = :${p%%:*}" 2>/dev/null | sed -n 's/.*users:((\(.*\)))$/\1/p' | head -1 || true)"
    catena_die "port ${p%%:*} on 127.0.0.1 is taken${owner:+ (by $owner)}, but the Master needs it (${p##*:}); stop what listens there (an earlier cluster: cluster-conf/bin/stop-standalone.sh --run-dir DIR) or pass another ${p##*:}"
  fi
done

catena_ensure_built

# every JVM of the cluster binds and advertises loopback; the Workers' executors inherit it (and OMP_WAIT_POLICY)
export SPARK_LOCAL_IP=127.0.0.1
export SPARK_DAEMON_MEMORY="${SPARK_DAEMON_MEMORY:-512m}"
export SPARK_HOME="$CATENA_SPARK_HOME"

started=()
cleanup_on_failure() {
  local rc=$?
  if [[ $rc -ne 0 && ${#started[@]} -gt 0 ]]; then
    echo "$(basename "$0"): stopping what was started (${started[*]})" >&2
    "$(dirname "${BASH_SOURCE[0]}")/stop-standalone.sh" --run-dir "$run_dir" --timeout 30 >&2 || true
  fi
  exit $rc
}
trap cleanup_on_failure EXIT

# launch NAME CLASS ARGS...: starts one daemon in the background, pid file NAME.pid, log logs/NAME.log
launch() {
  local name="$1"
  shift
  catena_spark_command "$@"
  nohup "${CATENA_CMD[@]}" >"$run_dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run_dir/$name.pid"
  started+=("$name")
}

# wait_for_log NAME TEXT: until logs/NAME.log contains TEXT; fails when the daemon exits or after --timeout seconds
wait_for_log() {
  local name="$1" text="$2" pid log deadline
  pid="$(cat "$run_dir/$name.pid")"
  log="$run_dir/logs/$name.log"
  deadline=$((SECONDS + timeout_s))
  until grep -qF "$text" "$log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      catena_die "$name (pid $pid) exited before logging '$text'; the end of $log:
$(tail -n 30 "$log" 2>/dev/null)"
    fi
    if [[ $SECONDS -ge $deadline ]]; then
      catena_die "$name (pid $pid) did not log '$text' within $timeout_s s (raise --timeout on a slow host); the end of $log:
$(tail -n 30 "$log" 2>/dev/null)"
    fi
    sleep 0.5
  done
}

launch master org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$master_port" --webui-port "$webui_port"
wait_for_log master "I have been elected leader"
# Spark moves to the next port when its port is taken (a race with the check above): the Workers must not follow it
grep -qF "Starting Spark master at $master_url" "$run_dir/logs/master.log" \
  || catena_die "the Master did not bind $master_url (port taken meanwhile?); see $run_dir/logs/master.log:
$(grep -F "Starting Spark master" "$run_dir/logs/master.log" || tail -n 20 "$run_dir/logs/master.log")"
echo "$master_url" >"$run_dir/master.url"

for i in $(seq 1 "$workers"); do
  mkdir -p "$run_dir/work-$i"
  launch "worker-$i" org.apache.spark.deploy.worker.Worker "$master_url" --host 127.0.0.1 --cores "$cores" --memory "$memory" \
    --webui-port $((webui_port + i)) --work-dir "$run_dir/work-$i"
done
for i in $(seq 1 "$workers"); do
  wait_for_log "worker-$i" "Successfully registered with master $master_url"
done

trap - EXIT
echo "standalone cluster up: $master_url (web UI http://127.0.0.1:$webui_port), $workers worker(s) x $cores core(s) x $memory"
echo "  pids and logs: $run_dir (master.pid, worker-N.pid, logs/); stop: cluster-conf/bin/stop-standalone.sh --run-dir $run_dir"
