#!/usr/bin/env bash
# Catena vs PyTorch on the reference CoLM (issue: chain-model performance targets).
# Alternates the two engines ROUNDS times on this machine and reports medians and ratios.
#   benchmarks/run-reference.sh [ROUNDS=3]      -> benchmarks/results/reference.json + a markdown table
# Needs: Java 17 + Maven, Debian's python3-torch (+ libopenblas0-openmp for the peer's best setting).
# Run on a quiet machine: 2 cores oversubscribed collapse both engines.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-3}"
OUT="$ROOT/benchmarks/results"
source "$ROOT/benchmarks/bench-build.sh"
# Both engines as a user's host runs them by default: without an OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE this machine's
# environment may carry (BENCH_KEEP_OPENBLAS_ENV=1 keeps them). Catena picks its kernel itself (NativeSetup); the peer
# gets the same kernel through CATENA_HOST_CORETYPE (bench-build.sh), so neither runs a generic fallback.
CLEAN=(env)
[[ "${BENCH_KEEP_OPENBLAS_ENV:-0}" == 1 ]] || CLEAN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
JAVA=("${CLEAN[@]}" "${BENCH_JVM[@]}" -cp "$CP" io.catena.bench.TrainBench)
PY=("${CLEAN[@]}" /usr/bin/python3 "$ROOT/benchmarks/python/bench_train.py")
echo "host: $(java -cp "$CP" io.catena.model.kernel.HostCpu | tr '\n' ';')" >&2
: > "$OUT/raw.jsonl"
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r/$ROUNDS: catena train" >&2
  "${JAVA[@]}" --mode train --steps 30 --warmup 5 2>/dev/null | grep '^{' | sed 's/^{/{"run":"catena-train",/' >> "$OUT/raw.jsonl"
  echo "round $r/$ROUNDS: pytorch train" >&2
  "${PY[@]}" --steps 30 --warmup 5 --threads 2 2>/dev/null | grep '^{' | sed 's/^{/{"run":"torch-train",/' >> "$OUT/raw.jsonl"
  echo "round $r/$ROUNDS: chain linear (both)" >&2
  "${JAVA[@]}" --mode chain-linear 2>/dev/null | grep '^{' | sed 's/^{/{"run":"catena-chain-linear",/' >> "$OUT/raw.jsonl"
  "${PY[@]}" --chain-linear-bench --threads 2 2>/dev/null | grep '^{' | sed 's/^{/{"run":"torch-chain-linear",/' >> "$OUT/raw.jsonl"
done
/usr/bin/python3 - "$OUT" <<'PYEOF'
import json, sys, statistics, platform, subprocess, datetime
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/raw.jsonl") if l.strip()]
def med(run, key):
    v = [r[key] for r in rows if r["run"] == run and key in r and r[key] is not None]
    return statistics.median(v) if v else None
def pick(run, *keys):
    for k in keys:
        m = med(run, k)
        if m is not None:
            return m
    return None
cat_tps = med("catena-train", "tokens_per_s")
torch_tps = pick("torch-train", "tokens_per_s_clean", "tokens_per_s")
cat_rss = med("catena-train", "peak_rss_mb")
torch_rss = pick("torch-train", "peak_rss_mb", "peak_rss_MB")
cl = med("catena-chain-linear", "chain_over_dense")
res = {
    "date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z",
    "cpu": subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip(),
    "cores": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
    "catena_tokens_per_s": cat_tps, "torch_tokens_per_s": torch_tps,
    "throughput_ratio_catena_over_torch": cat_tps / torch_tps if cat_tps and torch_tps else None,
    "catena_ms_per_step": med("catena-train", "ms_per_step_median"),
    "catena_gemm_ms_per_step": med("catena-train", "gemm_ms_per_step_median"),
    "catena_peak_rss_mb": cat_rss, "torch_peak_rss_mb": torch_rss,
    "rss_ratio_catena_over_torch": cat_rss / torch_rss if cat_rss and torch_rss else None,
    "catena_mfu_vs_measured_gemm_peak": med("catena-train", "mfu_vs_measured_gemm_peak"),
    "gemm_peak_gflops": med("catena-train", "gemm_peak_gflops"),
    "catena_mfu_vs_nd4j_matmul_peak": med("catena-train", "mfu_vs_nd4j_matmul_peak"),
    "nd4j_matmul_peak_gflops": med("catena-train", "nd4j_matmul_peak_gflops"),
    "chain_linear_over_dense": cl,
    "catena_native": next((r.get("native") for r in rows if r["run"] == "catena-train"), None),
    "catena_gemm_engine_gflops": med("catena-train", "gemm_peak_gflops"),
    "torch_openblas_kernel": next((r.get("blas", {}).get("openblas_corename") for r in rows if r["run"] == "torch-train"), None),
    "torch_gemm_peak_gflops": med("torch-train", "gemm_peak_gflops"),
    "catena_chain_linear_ms": med("catena-chain-linear", "chain_linear_ms"),
    "catena_dense_linear_ms": med("catena-chain-linear", "dense_linear_ms"),
    "rounds": len([r for r in rows if r["run"] == "catena-train"]),
    "torch_runs": [r for r in rows if r["run"].startswith("torch")][:2],
}
json.dump(res, open(f"{out}/reference.json", "w"), indent=2)
f = lambda x, d=2: "n/a" if x is None else f"{x:.{d}f}"
print(f"| metric | Catena | PyTorch | ratio | target |")
print(f"|---|---|---|---|---|")
print(f"| training tokens/s (median of {res['rounds']}) | {f(cat_tps,0)} | {f(torch_tps,0)} | {f(res['throughput_ratio_catena_over_torch'])}x | >= 1.2x |")
print(f"| peak RSS MB | {f(cat_rss,0)} | {f(torch_rss,0)} | {f(res['rss_ratio_catena_over_torch'])}x | <= 1.5x |")
print(f"| MFU vs measured GEMM peak ({f(res['gemm_peak_gflops'],0)} GFLOP/s) | {f(res['catena_mfu_vs_measured_gemm_peak'])} | | | reported |")
print(f"| MFU vs ND4J matmul peak ({f(res['nd4j_matmul_peak_gflops'],0)} GFLOP/s) | {f(res['catena_mfu_vs_nd4j_matmul_peak'])} | | | reported |")
nat = res["catena_native"] or {}
print(f"| GEMM kernel / measured 2048^3 GFLOP/s | {nat.get('gemm_engine')} {nat.get('openblas_core')} / {f(res['catena_gemm_engine_gflops'],0)} | {res['torch_openblas_kernel']} / {f(res['torch_gemm_peak_gflops'],0)} | | both at the host's best |")
print(f"| chain linear C={{1,1,1,1}} fwd+bwd / dense (1024x1024, 2048 rows) | {f(res['catena_chain_linear_ms'])} / {f(res['catena_dense_linear_ms'])} ms | | {f(cl)}x | <= 0.7x |")
PYEOF
