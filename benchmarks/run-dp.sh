#!/usr/bin/env bash
# Data parallelism overhead (spark-trainer issue): the reference CoLM trained by `catena train --dp 2`
# (Spark local[2], one core per worker task, embedded Aeron parameter server, BSP) against
# `catena train-local` with 2 threads, same recipe, data and global batch.
#   benchmarks/run-dp.sh [STEPS=40]   -> benchmarks/results/dp.json + a markdown line
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEPS="${1:-40}"
W="$ROOT/target/work/dp-bench"
rm -rf "$W" && mkdir -p "$W" "$ROOT/benchmarks/results"
RECIPE="$ROOT/cluster-conf/recipes/reference.properties"
COMMON=(--recipe "$RECIPE" --data builtin:genesis --steps "$STEPS" --set log_every=5 --set eval_every=0 --set ckpt_every=0)

echo "train-local, 2 threads" >&2
"$ROOT/bin/catena" train-local "${COMMON[@]}" --out "$W/local" --metrics "$W/local.jsonl" > "$W/local.log" 2>&1
echo "train --dp 2, local[2], one core per worker (OMP_NUM_THREADS=1, kernel threads 1)" >&2
OMP_NUM_THREADS=1 "$ROOT/bin/catena" train "${COMMON[@]}" --dp 2 --master 'local[2]' --kernel-threads 1 \
    --out "$W/dp" --metrics "$W/dp.jsonl" > "$W/dp.log" 2>&1

/usr/bin/python3 - "$W" "$ROOT/benchmarks/results/dp.json" <<'PYEOF'
import json, sys, statistics
w, out = sys.argv[1], sys.argv[2]
def rows(f):
    return [json.loads(l) for l in open(f) if l.strip() and json.loads(l).get("kind") == "train"]
loc, dp = rows(f"{w}/local.jsonl"), rows(f"{w}/dp.jsonl")
# skip the first window of each (JIT warm-up, Spark stage start)
lt = statistics.median(r["tok_per_s"] for r in loc[1:])
dt = statistics.median(r["tok_per_s"] for r in dp[1:])
sf = statistics.median(r["sync_fraction"] for r in dp[1:])
res = {"local_tokens_per_s": lt, "dp2_tokens_per_s": dt, "ratio_dp2_over_local": dt / lt,
       "dp2_sync_fraction_median": sf, "windows_local": len(loc) - 1, "windows_dp": len(dp) - 1,
       "final_loss_local": loc[-1]["loss"], "final_loss_dp2": dp[-1]["loss"]}
json.dump(res, open(out, "w"), indent=2)
print(f"| dp=2 (local[2], 1 core/worker) vs train-local (2 threads) | {dt:.0f} vs {lt:.0f} tok/s | "
      f"{dt/lt:.2f}x | PS sync {100*sf:.0f}% of a step | target >= 0.85x |")
PYEOF
