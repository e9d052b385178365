#!/usr/bin/env bash
# Attention cores A/B (issue 15): the tiled core (online softmax, default) against the materialized one
# ([T, T] probabilities per layer), chains {4,4}, d 512, 6 layers, 4096 tokens per step, at T = 128 and 1024.
#   benchmarks/run-attention.sh [ROUNDS=2]      -> benchmarks/results/attention.jsonl
# Per round and T: one process with both models, steps alternating between them (the paired ratio is the figure
# to read on a shared VM), then one process per core for its peak RSS. PEER=1 also runs the PyTorch peer
# (bench_train.py, the same model) at both T for context.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-2}"
OUT="$ROOT/benchmarks/results/attention.jsonl"
source "$ROOT/benchmarks/bench-build.sh"
CLEAN=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
# both models of a T=1024 A/B hold ~3 GB off-heap: lift JavaCPP's default cap (the -Xmx)
JAVA=("${CLEAN[@]}" "${BENCH_JVM[@]}" -Xmx3g -Dorg.bytedeco.javacpp.maxbytes=8g -Dorg.bytedeco.javacpp.maxphysicalbytes=12g
      -Dcatena.profile=true -cp "$CP" io.catena.bench.AttentionBench)
echo "host: $(java -cp "$CP" io.catena.model.kernel.HostCpu | tr '\n' ';')" >&2
: > "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for T in 1024 128; do
    steps=$(( T == 1024 ? 10 : 20 ))
    echo "round $r/$ROUNDS T=$T: paired A/B" >&2
    "${JAVA[@]}" --seq "$T" --steps "$steps" --warmup 2 --cores tiled,materialized 2>/dev/null | grep '^{' \
      | sed "s/^{/{\"run\":\"ab\",\"round\":$r,/" >> "$OUT"
    for core in tiled materialized; do
      echo "round $r/$ROUNDS T=$T: $core alone (peak RSS)" >&2
      "${JAVA[@]}" --seq "$T" --steps 3 --warmup 1 --cores "$core" 2>/dev/null | grep '^{' \
        | sed "s/^{/{\"run\":\"rss-$core\",\"round\":$r,/" >> "$OUT"
    done
    if [[ "${PEER:-0}" == 1 ]]; then
      echo "round $r/$ROUNDS T=$T: pytorch peer" >&2
      "${CLEAN[@]}" /usr/bin/python3 "$ROOT/benchmarks/python/bench_train.py" --steps 5 --warmup 2 --threads 2 \
        --batch $(( 4096 / T )) --seq "$T" \
        --config "{\"chains\":[4,4],\"layers\":6,\"max_seq_len\":$T}" 2>/dev/null | grep '^{' \
        | sed "s/^{/{\"run\":\"torch\",\"round\":$r,\"seq\":$T,/" >> "$OUT"
    fi
  done
done
/usr/bin/python3 - "$OUT" <<'PYEOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| T | tiled ms/step | materialized ms/step | paired ratio tiled/materialized (per round) | activation MB tiled / materialized | peak RSS MB tiled / materialized | attention core fwd+bwd ms tiled / materialized |")
print("|---|---|---|---|---|---|---|")
for T in (128, 1024):
    ab = [r for r in rows if r["run"] == "ab" and r["seq"] == T]
    if not ab:
        continue
    med = lambda k: statistics.median(r[k] for r in ab)
    rss = lambda c: statistics.median(r["peak_rss_mb"] for r in rows if r["run"] == "rss-" + c and r["seq"] == T)
    core = lambda c: statistics.median(r[c + "_phase_ms_per_step"]["att.fwd.core"] + r[c + "_phase_ms_per_step"]["att.bwd.core"] for r in ab)
    ratios = ", ".join(f'{r["tiled_over_materialized_paired_median"]:.3f}' for r in ab)
    print(f'| {T} | {med("tiled_ms_per_step_median"):.0f} | {med("materialized_ms_per_step_median"):.0f} | {ratios} | '
          f'{ab[0]["tiled_activation_mb"]:.0f} / {ab[0]["materialized_activation_mb"]:.0f} | {rss("tiled"):.0f} / {rss("materialized"):.0f} | '
          f'{core("tiled"):.0f} / {core("materialized"):.0f} |')
for r in rows:
    if r["run"] == "torch":
        print(f'torch T={r["seq"]}: {r.get("tokens_per_s_clean") or r.get("tokens_per_s")} tok/s, peak RSS {r.get("peak_rss_mb") or r.get("peak_rss_MB")} MB')
PYEOF
