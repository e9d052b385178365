#!/usr/bin/env bash
# Session 4's engine micro-measurements: ND4J matmul (oneDNN) vs OpenBLAS cblas_sgemm on the reference step's GEMM
# shapes, the fixed cost of one Parallel.forRows split against an executor's, and a paired A/B of whole training steps
# of the reference model (consecutive steps alternate OpenBLAS and ND4J's matmul).  -> benchmarks/results/micro.jsonl
#   benchmarks/run-micro.sh
# Run on a quiet machine (2 threads each).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$ROOT/benchmarks/results" "$ROOT/target/work/javacpp"
(cd "$ROOT" && mvn -B -q -pl benchmarks -am package -DskipTests)
CP="$ROOT/benchmarks/target/benchmarks-0.1.0-SNAPSHOT.jar:$(cat "$ROOT/benchmarks/target/classpath.txt")"
JAVA=(env OMP_WAIT_POLICY=passive java --add-modules=jdk.incubator.vector -Xmx2g -Dorg.bytedeco.javacpp.cachedir="$ROOT/target/work/javacpp"
      -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$CP")
{ "${JAVA[@]}" io.catena.bench.MicroBench gemm; "${JAVA[@]}" io.catena.bench.MicroBench handoff
  "${JAVA[@]}" io.catena.bench.TrainBench --mode ab-gemm --steps 60 --warmup 6 | sed 's/^{/{"case":"ab-gemm",/'
} 2>/dev/null | grep '^{' | tee "$ROOT/benchmarks/results/micro.jsonl"
