#!/usr/bin/env bash
# Data parallelism overhead (spark-trainer issue): the reference CoLM trained by `catena train --dp 2`
# (Spark local[2], one core per worker task, embedded Aeron parameter server, BSP) against
# `catena train-local` with 2 threads, same recipe, data and global batch.
# Steady state: the windows of the first WARMUP steps (JIT, Spark stage start) are excluded on both sides. The JIT
# matters here: the JDK's AES-GCM runs its Java GHASH until C2 has compiled the whole call chain, which on 2 cores busy
# with training takes ~20-40 s of the run (-XX:+PrintCompilation shows GHASH::update reaching tier 4 only then).
# Pairs: the baseline's speed swings from one process to the next on a shared VM (7.0k-11.0k tok/s seen in session 10,
# steady within each run), so PAIRS local/dp pairs run back to back, alternating which side goes first, and the result
# is the median of the per-pair ratios (each pair's two runs are minutes apart, not tens of minutes).
#   benchmarks/run-dp.sh [STEPS=100] [WARMUP=30] [PAIRS=3]   -> benchmarks/results/dp.json + a markdown line
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STEPS="${1:-100}"
WARMUP="${2:-30}"
PAIRS="${3:-3}"
W="$ROOT/target/work/dp-bench"
rm -rf "$W" && mkdir -p "$W" "$ROOT/benchmarks/results"
RECIPE="$ROOT/cluster-conf/recipes/reference.properties"
COMMON=(--recipe "$RECIPE" --data builtin:genesis --steps "$STEPS" --set log_every=5 --set eval_every=0 --set ckpt_every=0)

local_run() {
  echo "pair $1: train-local, 2 threads" >&2
  "$ROOT/bin/catena" train-local "${COMMON[@]}" --out "$W/local-$1" --metrics "$W/local-$1.jsonl" > "$W/local-$1.log" 2>&1
}
dp_run() {
  echo "pair $1: train --dp 2, local[2], one core per worker (OMP_NUM_THREADS=1, kernel threads 1)" >&2
  OMP_NUM_THREADS=1 "$ROOT/bin/catena" train "${COMMON[@]}" --dp 2 --master 'local[2]' --kernel-threads 1 \
      --out "$W/dp-$1" --metrics "$W/dp-$1.jsonl" > "$W/dp-$1.log" 2>&1
}
for ((p = 1; p <= PAIRS; p++)); do
  if (( p % 2 == 1 )); then local_run "$p"; dp_run "$p"; else dp_run "$p"; local_run "$p"; fi
done

/usr/bin/python3 - "$W" "$ROOT/benchmarks/results/dp.json" "$WARMUP" "$PAIRS" <<'PYEOF'
import json, sys, statistics
w, out, warmup, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def rows(f):
    r = [json.loads(l) for l in open(f) if l.strip() and json.loads(l).get("kind") == "train"]
    # windows ending after the warm-up steps (at least one window is always skipped)
    return [x for x in r if x["step"] > max(warmup, r[0]["step"])]
per = []
for p in range(1, pairs + 1):
    loc, dp = rows(f"{w}/local-{p}.jsonl"), rows(f"{w}/dp-{p}.jsonl")
    lt = statistics.median(r["tok_per_s"] for r in loc)
    dt = statistics.median(r["tok_per_s"] for r in dp)
    per.append({"pair": p, "first": "local" if p % 2 == 1 else "dp", "local_tokens_per_s": lt, "dp2_tokens_per_s": dt,
                "ratio_dp2_over_local": dt / lt, "dp2_sync_fraction_median": statistics.median(r["sync_fraction"] for r in dp),
                "windows_tok_per_s_local": [round(r["tok_per_s"]) for r in loc], "windows_tok_per_s_dp2": [round(r["tok_per_s"]) for r in dp],
                "final_loss_local": loc[-1]["loss"], "final_loss_dp2": dp[-1]["loss"]})
ratio = statistics.median(x["ratio_dp2_over_local"] for x in per)
sf = statistics.median(x["dp2_sync_fraction_median"] for x in per)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {"cpu": cpu, "load_avg_end": open("/proc/loadavg").read().split()[:3], "warmup_steps_excluded": warmup, 
       "pairs": per, "ratio_dp2_over_local_median_of_pairs": ratio, "dp2_sync_fraction_median": sf,
       "local_tokens_per_s_range": [min(x["local_tokens_per_s"] for x in per), max(x["local_tokens_per_s"] for x in per)],
       "dp2_tokens_per_s_range": [min(x["dp2_tokens_per_s"] for x in per), max(x["dp2_tokens_per_s"] for x in per)]}
json.dump(res, open(out, "w"), indent=2)
pr = ", ".join(f"{x['ratio_dp2_over_local']:.2f}x" for x in per)
print(f"| dp=2 (local[2], 1 core/worker) vs train-local (2 threads), {pairs} pairs | dp {res['dp2_tokens_per_s_range'][0]:.0f}-"
      f"{res['dp2_tokens_per_s_range'][1]:.0f} vs local {res['local_tokens_per_s_range'][0]:.0f}-{res['local_tokens_per_s_range'][1]:.0f} tok/s | "
      f"pairs {pr}, median {ratio:.2f}x | PS sync {100*sf:.0f}% of a step | target >= 0.9x |")
PYEOF
