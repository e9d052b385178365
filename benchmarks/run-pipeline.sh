#!/usr/bin/env bash
# Pipeline bubble of issue 6: 2 stages of an 8-block and a 24-block CoLM (vocab 512, d_model 128, T 64, global batch 16), one thread
# and one core per stage, in-memory links, GPipe and 1F1B with m = 2, 4, 8 micro-batches: measured bubble vs
# (p-1)/(m+p-1), compute and wait per stage, activation memory per stage with and without recomputation.
#   benchmarks/run-pipeline.sh [STEPS=12] [ROUNDS=3]   -> benchmarks/results/pipeline.json + a markdown table on stdout
# (each round runs every configuration once; the table shows the median round per configuration)
# Run on a quiet machine: the two stage threads need one free core each.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/benchmarks/bench-build.sh"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive java -Xmx2g --add-modules=jdk.incubator.vector \
  -Dorg.bytedeco.javacpp.cachedir="$ROOT/target/work/javacpp" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  -cp "$CP" io.catena.bench.PipelineBench "${1:-12}" "$ROOT/benchmarks/results/pipeline.json" "${2:-3}"
