#!/usr/bin/env bash
# Parameter-server benchmark of issues 4 and 16: a BSP push+pull round of a ~64 MB parameter vector with 2 workers,
# ParameterServer/ParameterServerClient vs raw Aeron publications/subscriptions moving the same frames on the same
# channels and the same MediaDriver, alternating in one JVM; over IPC and over UDP on 127.0.0.1. See RESULTS-ps.md.
#
#   benchmarks/run-ps.sh            -> benchmarks/results/ps.json (+ ps.log) and a summary on stdout
#
# Environment knobs (defaults in brackets):
#   MB [64]  WORKERS [2]  TRANSPORTS [ipc,udp]  TERM_LENGTH [16m]  CHUNK [1m]  IDLE [backoff]
#   WARMUP [2]  BLOCKS [6]  PER_BLOCK [2]  BUDGET_S [60]  (measuring time per transport; the run stays < ~3 min)
#   HEAP [1g]  SKIP_BUILD=1 use the jars already built;  MVN_FLAGS (e.g. -o)
# The Aeron directory lives under target/ps-bench (a disk file system, not /dev/shm): 8 publications of
# 3 x TERM_LENGTH per transport (~400 MiB at 16m) plus the receivers' images; it is deleted at the end.
# Run on a quiet machine: PS and raw alternate, so load hits both, but a loaded 2-core box still adds noise.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/benchmarks/results"
WORK="$ROOT/target/ps-bench"
mkdir -p "$OUT"
source "$ROOT/benchmarks/bench-build.sh"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "/dev/shm: $(df -h /dev/shm | tail -1 | awk '{print $4 " free of " $2}'); aeron dir $WORK: $(df -h "$ROOT/target" | tail -1 | awk '{print $4 " free"}')" >&2

# --add-exports: Aeron 1.51 (DESIGN.md); HEAP also caps ND4J's off-heap (javacpp maxbytes defaults to -Xmx):
# the server holds params, m, v, W staging vectors and one BSP slot, each worker params + gradients, ~1 GB at 64 MB.
java --add-modules=jdk.incubator.vector --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED \
  -Xms"${HEAP:-1g}" -Xmx"${HEAP:-1g}" -Dorg.bytedeco.javacpp.maxbytes=3g -Dorg.bytedeco.javacpp.maxphysicalbytes=5g \
  -Dorg.bytedeco.javacpp.cachedir="$ROOT/target/work/javacpp" -Djava.io.tmpdir="$ROOT/target" \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  -cp "$CP" io.catena.bench.ps.PsBench --dir "$WORK" --out "$OUT/ps.json" \
  --mb "${MB:-64}" --workers "${WORKERS:-2}" --transports "${TRANSPORTS:-ipc,udp}" --term "${TERM_LENGTH:-16m}" \
  --chunk "${CHUNK:-1m}" --idle "${IDLE:-backoff}" --warmup "${WARMUP:-2}" --blocks "${BLOCKS:-6}" \
  --per-block "${PER_BLOCK:-2}" --budget-s "${BUDGET_S:-60}" 2> >(tee "$OUT/ps.log" >&2) > /dev/null
rm -rf "$WORK"

/usr/bin/python3 - "$OUT/ps.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
m = j["machine"]; md = j["model"]; s = j["settings"]
print(f"machine: {m['cpu']}, {m['nproc']} cores; {m['java']}; Aeron {m['aeron']}; load {j['loadavg_start']} -> {j['loadavg_end']}")
print(f"vector: {md['parameters']} floats = {md['vector_mib']:.1f} MiB; {s['workers']} workers, bsp; term {s['term_length']}, "
      f"idle {s['idle_strategy']}; wall {j['wall_s']:.0f} s")
print("\n| transport | side | rounds | round p50 ms | round p99 ms | GB/s (p50) | CPU ms/round | ratio PS/raw |\n|---|---|---|---|---|---|---|---|")
for t, r in j["transports"].items():
    for side in ("ps", "raw"):
        x = r[side]
        ratio = f"{r['ratio_ps_over_raw_throughput']:.2f}x" if side == "ps" else ""
        cpu = sum(x['cpu_ms_per_round_by_thread'].values())
        print(f"| {t} | {side} | {x['rounds']} | {x['round_ms_p50']:.0f} | {x['round_ms_p99']:.0f} | {x['gb_per_s_median']:.2f} | {cpu:.0f} | {ratio} |")
c = j["components"]
print(f"\nsingle-thread rates: AES-GCM seal {c['aes_gcm_seal_gb_per_s']:.2f} GB/s, open {c['aes_gcm_open_gb_per_s']:.2f} GB/s, "
      f"HMAC-SHA256 {c['hmac_sha256_gb_per_s']:.2f} GB/s, copy {c['copy_gb_per_s']:.2f} GB/s, "
      f"scalar add {c['scalar_add_gb_per_s']:.2f} GB/s, AdamW step {c['adamw_step_ms']:.0f} ms")
PYEOF
