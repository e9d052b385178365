#!/usr/bin/env bash
# Data parallelism overhead (spark-trainer issue): the reference CoLM trained by `catena train --dp 2`
# (Spark local[2], one core per worker task, embedded Aeron parameter server, BSP) against
# `catena train-local` with 2 threads, same recipe, data and global batch.
# Steady state: the windows of the first WARMUP steps (JIT, Spark stage start) are excluded on both sides. The JIT
# matters here: the JDK's AES-GCM runs its Java GHASH until C2 has compiled the whole call chain, which on 2 cores busy
# with training takes ~20-40 s of the run (-XX:+PrintCompilation shows GHASH::update reaching tier 4 only then).
#   benchmarks/run-dp.sh [STEPS=100] [WARMUP=30]   -> benchmarks/results/dp.json + a markdown line
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEPS="${1:-100}"
WARMUP="${2:-30}"
W="$ROOT/target/work/dp-bench"
rm -rf "$W" && mkdir -p "$W" "$ROOT/benchmarks/results"
RECIPE="$ROOT/cluster-conf/recipes/reference.properties"
COMMON=(--recipe "$RECIPE" --data builtin:genesis --steps "$STEPS" --set log_every=5 --set eval_every=0 --set ckpt_every=0)

echo "train-local, 2 threads" >&2
"$ROOT/bin/catena" train-local "${COMMON[@]}" --out "$W/local" --metrics "$W/local.jsonl" > "$W/local.log" 2>&1
echo "train --dp 2, local[2], one core per worker (OMP_NUM_THREADS=1, kernel threads 1)" >&2
OMP_NUM_THREADS=1 "$ROOT/bin/catena" train "${COMMON[@]}" --dp 2 --master 'local[2]' --kernel-threads 1 \
    --out "$W/dp" --metrics "$W/dp.jsonl" > "$W/dp.log" 2>&1

/usr/bin/python3 - "$W" "$ROOT/benchmarks/results/dp.json" "$WARMUP" <<'PYEOF'
import json, sys, statistics
w, out, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(f):
    r = [json.loads(l) for l in open(f) if l.strip() and json.loads(l).get("kind") == "train"]
    # windows ending after the warm-up steps (at least one window is always skipped)
    return [x for x in r if x["step"] > max(warmup, r[0]["step"])]
loc, dp = rows(f"{w}/local.jsonl"), rows(f"{w}/dp.jsonl")
lt = statistics.median(r["tok_per_s"] for r in loc)
dt = statistics.median(r["tok_per_s"] for r in dp)
sf = statistics.median(r["sync_fraction"] for r in dp)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {"cpu": cpu, "load_avg_end": open("/proc/loadavg").read().split()[:3], "local_tokens_per_s": lt, "dp2_tokens_per_s": dt, "ratio_dp2_over_local": dt / lt,
       "dp2_sync_fraction_median": sf, "warmup_steps_excluded": warmup, "windows_local": len(loc), "windows_dp": len(dp),
       "windows_tok_per_s_local": [round(r["tok_per_s"]) for r in loc], "windows_tok_per_s_dp2": [round(r["tok_per_s"]) for r in dp],
       "final_loss_local": loc[-1]["loss"], "final_loss_dp2": dp[-1]["loss"]}
json.dump(res, open(out, "w"), indent=2)
print(f"| dp=2 (local[2], 1 core/worker) vs train-local (2 threads) | {dt:.0f} vs {lt:.0f} tok/s | "
      f"{dt/lt:.2f}x | PS sync {100*sf:.0f}% of a step | target >= 0.9x |")
PYEOF
