#!/usr/bin/env bash
# The engine micro-measurements behind sessions 4 and 5, one section at a time or all:
#   benchmarks/run-micro.sh [all|gemm|handoff|ab-gemm|engines] [ROUNDS=6]
# (all of the first three -> results/micro.jsonl; one alone -> results/micro-<section>.jsonl)
#   gemm     ND4J matmul (oneDNN) vs OpenBLAS cblas_sgemm on the reference step's GEMM shapes  -> results/micro.jsonl
#   handoff  the fixed cost of one Parallel.forRows split against an executor's                 -> results/micro.jsonl
#   ab-gemm  a paired A/B of whole reference steps in one process, consecutive steps alternating
#            OpenBLAS's own threads and ND4J's matmul                                          -> results/micro.jsonl
#   engines  the split GEMM (slabs on the kernel team, OpenBLAS single-threaded) against OpenBLAS's own threads:
#            whole reference steps and the chain-linear benchmark (TrainBench --mode all), the two alternating
#            processes for ROUNDS rounds (not one process: OpenBLAS's workers spin on after each GEMM, into the
#            next step, which is the very cost the split removes)                               -> results/engines.jsonl
# Run on a quiet machine (2 threads each).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHAT="${1:-all}"
ROUNDS="${2:-6}"
OUT="$ROOT/benchmarks/results"
source "$ROOT/benchmarks/bench-build.sh"
JAVA=("${BENCH_JVM[@]}" -cp "$CP")
if [[ "$WHAT" == all || "$WHAT" == gemm || "$WHAT" == handoff || "$WHAT" == ab-gemm ]]; then
  { [[ "$WHAT" == all || "$WHAT" == gemm ]] && "${JAVA[@]}" io.catena.bench.MicroBench gemm
    [[ "$WHAT" == all || "$WHAT" == handoff ]] && "${JAVA[@]}" io.catena.bench.MicroBench handoff
    [[ "$WHAT" == all || "$WHAT" == ab-gemm ]] && "${JAVA[@]}" io.catena.bench.TrainBench --mode ab-gemm --ab openblas,nd4j --steps 60 --warmup 6 \
      | sed 's/^{/{"case":"ab-gemm",/'
    true
  } 2>/dev/null | grep '^{' | tee "$OUT/micro$([[ "$WHAT" == all ]] || echo "-$WHAT").jsonl"
fi
if [[ "$WHAT" == all || "$WHAT" == engines ]]; then
  : > "$OUT/engines.jsonl"
  for r in $(seq 1 "$ROUNDS"); do
    for g in split openblas; do
      echo "round $r/$ROUNDS: -Dcatena.gemm=$g" >&2
      "${JAVA[@]}" -Dcatena.gemm="$g" io.catena.bench.TrainBench --mode all --steps 30 --warmup 5 2>/dev/null | grep '^{' \
        | sed "s/^{/{\"case\":\"engines\",\"round\":$r,/" >> "$OUT/engines.jsonl"
    done
  done
  /usr/bin/python3 - "$OUT/engines.jsonl" <<'PYEOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["round"], {})[r["gemm_engine"]] = r
def med(engine, key):
    return statistics.median(r[key] for r in rows if r["gemm_engine"] == engine)
print("| engine | step ms (median of per-run medians) | GEMM ms | chain linear / dense |")
print("|---|---|---|---|")
for e in ("SPLIT", "OPENBLAS_THREADS"):
    print(f"| {e} | {med(e, 'ms_per_step_median'):.1f} | {med(e, 'gemm_ms_per_step_median'):.1f} | {med(e, 'chain_over_dense'):.3f} |")
ratios = [v["SPLIT"]["ms_per_step_median"] / v["OPENBLAS_THREADS"]["ms_per_step_median"] for v in by.values() if len(v) == 2]
print(f"split / openblas step time per round: {', '.join(f'{x:.3f}' for x in ratios)}; median {statistics.median(ratios):.3f}")
print("chain linear / dense per round, split: " + ", ".join(f"{v['SPLIT']['chain_over_dense']:.3f}" for v in by.values() if "SPLIT" in v))
print("chain linear / dense per round, openblas: " + ", ".join(f"{v['OPENBLAS_THREADS']['chain_over_dense']:.3f}" for v in by.values() if "OPENBLAS_THREADS" in v))
PYEOF
fi
