#!/usr/bin/env bash
# Issue 15: precision=bf16 vs fp32 step time on builtin:small's architecture (d 768, 4 layers as the curve) at T 1024 and 2048, 4096 tokens/step
# (paired: the order alternates per round; one process per cell; 1 warm-up + 3 timed steps, median).
#   benchmarks/run-bf16-small.sh > benchmarks/results/bf16-small.jsonl
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/benchmarks/bench-build.sh"
CLEAN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
JAVA=("${CLEAN[@]}" "${BENCH_JVM[@]}" -Dorg.bytedeco.javacpp.maxbytes=8g -Dorg.bytedeco.javacpp.maxphysicalbytes=12g -cp "$CP" io.catena.bench.CostCurveBench --recipe builtin:small)
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2; do
 for T in 1024 2048; do
  for p in fp32 bf16; do
   [[ $r == 2 ]] && { [[ $p == fp32 ]] && p=bf16 || p=fp32; }
   load="$(cut -d' ' -f1 /proc/loadavg)"
   line="$("${JAVA[@]}" --set "head_dim=96;layers=4;precision=$p" --seq "$T" --tokens 4096 --steps 3 --warmup 1 2>/dev/null | tail -1)"
   echo "{\"round\":$r,\"seq\":$T,\"precision\":\"$p\",\"load1_before\":$load,\"result\":$line}"
  done
 done
done
