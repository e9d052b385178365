#!/usr/bin/env bash
# Catena's default native path against every hand-forced one on this host (issue: fast by default on every CPU).
# Alternates the configurations ROUNDS times (reference model, TrainBench --mode train) and reports each one's median
# tokens/s and its ratio to the best; the target is default >= 0.9x the best.
#   benchmarks/run-native-paths.sh [ROUNDS=3]    -> benchmarks/results/native-paths.jsonl + a markdown table
# Every run starts without the environment's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (a new user's host has none).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-3}"
OUT="$ROOT/benchmarks/results"
source "$ROOT/benchmarks/bench-build.sh"
HOSTCORE="${CATENA_HOST_CORETYPE:-}"
# name|JVM flags (the default first; the forced kernels cover every AVX level; nd4j = oneDNN GEMMs; generic = the
# non-AVX-512 ND4J build)
CONFIGS=("default|"
         "kernel=Cooperlake|-Dcatena.openblas.coretype=Cooperlake"
         "kernel=SkylakeX|-Dcatena.openblas.coretype=SkylakeX"
         "kernel=Haswell|-Dcatena.openblas.coretype=Haswell"
         "kernel=Prescott|-Dcatena.openblas.coretype=Prescott"
         "gemm=nd4j|-Dcatena.gemm=nd4j"
         "build=generic-x86|-Dorg.bytedeco.javacpp.platform.extension=-onednn")
: > "$OUT/native-paths.jsonl"
echo "host: $(java -cp "$CP" io.catena.model.kernel.HostCpu | tr '\n' ';')" >&2
for r in $(seq 1 "$ROUNDS"); do
  for c in "${CONFIGS[@]}"; do
    name="${c%%|*}"; flags="${c#*|}"
    echo "round $r/$ROUNDS: $name" >&2
    # shellcheck disable=SC2086
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "${BENCH_JVM[@]}" $flags -cp "$CP" io.catena.bench.TrainBench \
      --mode train --steps 30 --warmup 5 2>/dev/null | grep '^{' | sed "s/^{/{\"path\":\"$name\",/" >> "$OUT/native-paths.jsonl"
  done
done
/usr/bin/python3 - "$OUT" "$HOSTCORE" <<'PYEOF'
import json, sys, statistics, subprocess
out, hostcore = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(f"{out}/native-paths.jsonl") if l.strip()]
names = list(dict.fromkeys(r["path"] for r in rows))
med = {n: statistics.median(r["tokens_per_s"] for r in rows if r["path"] == n) for n in names}
best = max(med.values())
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
print(f"CPU: {cpu}; kernel chosen by Catena: {hostcore or '(OpenBLAS detection)'}; rounds: {len(rows) // len(names)}")
print("| configuration | OpenBLAS kernel | GEMM engine | ND4J build | GEMM GFLOP/s (2048^3) | tokens/s (median) | vs best |")
print("|---|---|---|---|---|---|---|")
for n in names:
    rs = [r for r in rows if r["path"] == n]
    nat = rs[0].get("native", {})
    g = statistics.median(r["gemm_peak_gflops"] for r in rs)
    print(f"| {n} | {nat.get('openblas_core')} | {nat.get('gemm_engine')} | {nat.get('nd4j_natives')} | {g:.0f} | {med[n]:.0f} | {med[n] / best:.2f}x |")
print(f"\ndefault / best: {med['default'] / best:.2f}x (target >= 0.90x)")
PYEOF
