#!/usr/bin/env bash
# Peak RSS per pipeline stage with and without --recompute (issue 6): a standalone cluster of two 1-core Workers on
# 127.0.0.1 (cluster-conf/bin scripts, Spark's Maven jars), `catena train --pp 2` of the reference recipe on the bundled
# text, GPipe with 8 micro-batches (the most activations in flight), each stage in its own executor JVM; every task
# reports its JVM's VmHWM in its worker summary. Same run twice, without and with recomputation.
#   benchmarks/run-pipeline-rss.sh [STEPS=10]   -> benchmarks/results/pipeline-rss.json + a markdown table
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEPS="${1:-10}"
RUN="$ROOT/target/pipeline-rss"
BIN="$ROOT/cluster-conf/bin"
rm -rf "$RUN" && mkdir -p "$RUN" "$ROOT/benchmarks/results"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MP="$(free_port)"; WP="$(free_port)"
"$BIN/start-standalone.sh" --workers 2 --cores 1 --memory 3g --master-port "$MP" --webui-port "$WP" --run-dir "$RUN/cluster" >&2
trap '"$BIN/stop-standalone.sh" --run-dir "$RUN/cluster" >&2 || true' EXIT
for mode in plain recompute; do
  extra=(); [[ "$mode" == recompute ]] && extra=(--recompute)
  "$BIN/submit-train.sh" --master "spark://127.0.0.1:$MP" --conf spark.executor.cores=1 --conf spark.task.cpus=1 \
      --conf spark.executor.memory=2g --conf spark.driver.memory=2g --timeout 900 -- \
      --data builtin:genesis --recipe "$ROOT/cluster-conf/recipes/reference.properties" --out "file://$RUN/ckpt-$mode" \
      --dp 1 --pp 2 --schedule gpipe --micro-batches 8 --steps "$STEPS" --eval-every 0 --set log_every=5 "${extra[@]}" \
      > "$RUN/$mode.log" 2>&1
  grep -q "done: step $STEPS" "$RUN/$mode.log" || { echo "run $mode failed, see $RUN/$mode.log" >&2; exit 1; }
done
/usr/bin/python3 - "$RUN" "$ROOT/benchmarks/results/pipeline-rss.json" <<'PYEOF'
import json, re, sys
run, out = sys.argv[1], sys.argv[2]
res = {}
for mode in ("plain", "recompute"):
    stages = {}
    for line in open(f"{run}/{mode}.log"):
        m = re.search(r"worker summary: (\{.*\})", line)
        if m:
            s = json.loads(m.group(1))
            stages[s["stage"]] = s
    res[mode] = {str(k): {"peak_rss_mb": v["peak_rss_mb"], "compute_s": v["stage_compute_s"], "wait_s": v["stage_wait_s"],
                          "seconds": v["seconds"]} for k, v in sorted(stages.items())}
json.dump(res, open(out, "w"), indent=2)
print("| stage | peak RSS without / with --recompute (MB) | stage compute s without / with | stage wait s without / with |")
print("|---|---|---|---|")
for st in sorted(res["plain"]):
    a, b = res["plain"][st], res["recompute"][st]
    print(f"| {st} | {a['peak_rss_mb']:.0f} / {b['peak_rss_mb']:.0f} | {a['compute_s']:.1f} / {b['compute_s']:.1f} | "
          f"{a['wait_s']:.1f} / {b['wait_s']:.1f} |")
PYEOF
