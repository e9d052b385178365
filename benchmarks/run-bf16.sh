#!/usr/bin/env bash
# precision = bf16 against fp32 (issue 15 items 2 and 4), on this machine's CPU:
#   benchmarks/run-bf16.sh [PAIRS=20]   -> benchmarks/results/bf16.jsonl + a summary on stdout
# 1. step time, paired in one process: consecutive training steps of one model alternate fp32 and bf16 (Bf16Bench),
#    for the reference model (d 256, T 128, B 16) and a wider one (d 768, T 512, B 4); medians of both and the median
#    of the paired bf16/fp32 ratios, with the load average at the end of each run;
# 2. correctness: the tiny recipe, 400 steps on builtin:genesis, in fp32 and in bf16 (steps interleaved), and the final
#    validation loss of each (evaluated in fp32).
# Needs a CPU with AVX512_BF16 or AMX-BF16 and oneDNN (Debian: libdnnl2); Bf16Bench names what is missing otherwise.
# fp32 runs OpenBLAS's host kernel (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from the environment are dropped, as in
# run-reference.sh; BENCH_KEEP_OPENBLAS_ENV=1 keeps them). Run on a quiet machine; the ratios are paired, the times not.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PAIRS="${1:-20}"
OUT="$ROOT/benchmarks/results/bf16.jsonl"
source "$ROOT/benchmarks/bench-build.sh"
CLEAN=(env)
[[ "${BENCH_KEEP_OPENBLAS_ENV:-0}" == 1 ]] || CLEAN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
JAVA=("${CLEAN[@]}" "${BENCH_JVM[@]}" -Xmx3g -cp "$CP" io.catena.bench.Bf16Bench)
echo "host: $(java -cp "$CP" io.catena.model.kernel.HostCpu | tr '\n' ';')" >&2
: > "$OUT"
"${JAVA[@]}" --config reference --steps "$PAIRS" --warmup 4 --out "$OUT" 2>/dev/null | grep '^{' >&2
"${JAVA[@]}" --config wide --steps "$(( PAIRS / 2 > 4 ? PAIRS / 2 : 4 ))" --warmup 2 --out "$OUT" 2>/dev/null | grep '^{' >&2
"${JAVA[@]}" --mode converge --steps 400 --out "$OUT" 2>/dev/null | grep '^{' >&2
/usr/bin/python3 - "$OUT" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("mode") == "converge":
        print(f"tiny recipe {r['steps']} steps: val loss fp32 {r['fp32_val_loss_per_scale'][-1]:.4f}, bf16 "
              f"{r['bf16_val_loss_per_scale'][-1]:.4f} (bf16/fp32 {r['bf16_over_fp32_val_loss_full_model']:.4f}); load {r['load_average']}")
    else:
        print(f"{r['config']}: fp32 {r['fp32_ms_median']:.1f} ms/step, bf16 {r['bf16_ms_median']:.1f}; paired bf16/fp32 median "
              f"{r['bf16_over_fp32_paired_median']:.3f} (q1-q3 {r['bf16_over_fp32_paired_q1_q3'][0]:.3f}-{r['bf16_over_fp32_paired_q1_q3'][1]:.3f}, "
              f"{r['pairs']} pairs); GEMM ms fp32 {r['fp32_gemm_ms_median']:.1f} bf16 {r['bf16_gemm_ms_median']:.1f}; "
              f"cpu {r['native']['cpu']}, fp32 OpenBLAS {r['native']['openblas_core']}; {r['bf16']}; load {r['load_average']}")
PYEOF
