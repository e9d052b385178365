#!/usr/bin/env bash
# Does growth pay? (issue 17, finding 7.) The tiny recipe's shape trained from scratch as {2,2,2} against {2,2} grown
# to {2,2,2}, on the same token stream (same seed, same batches per step), local trainer, byte tokenizer:
#   train: java.base's .java files of a JDK src.zip (license headers stripped), 9 in 10 files by a hash of the path
#   val:   the other files (held out: code the model never saw), 64 batches of 16 x 64 tokens, full model (k = 3)
# FLOPs: matmul FLOPs of every training step, counted from the chain layout (chain-model FlopCount; a frozen chain's
# backward is skipped and not counted; evaluation not counted). The ratio is against the first scratch run.
#   benchmarks/run-growth.sh [RUN ...]      -> benchmarks/results/growth.jsonl (or $OUT) + a markdown table on stdout
# Default runs: the baseline at its tuned LR (3e-3; 2e-3 and 5e-3 measured worse), the baseline cut to 0.6x its FLOPs,
# growth within 0.6x with the growth recipe's defaults (copy init, growth_warmup_steps 30, growth_lr_rewarm 1.0 capped
# at 3x the share of the run left) at lr 3e-3 (after step 400 and 600) and with the small phase at lr 5e-3 (after 600),
# and the {2,2} model alone for the whole budget (grown at its last step, so no grown step: the {2,2,2} model's logits
# are the {2,2}'s); a RUN is "scratch lr=.. steps=.." or
# "grow lr=.. steps=.. at=.. [freeze=..] [warm=..] [rewarm=..] [init=copy|random|auto] [newlr=..]" (GrowthBench's javadoc).
#   SRC_ZIP  the JDK source zip [/usr/lib/jvm/openjdk-17/lib/src.zip (Debian openjdk-17-source), else the first
#            readable lib/src.zip under /usr/lib/jvm]; its SHA-256 is printed with the table
# About 8 minutes on 2 idle cores (runs that share a small phase train it once). Deterministic: the same build and src.zip give the
# same losses to the printed digits.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/benchmarks/bench-build.sh"
SRC_ZIP="${SRC_ZIP:-/usr/lib/jvm/openjdk-17/lib/src.zip}"
if [[ ! -r "$SRC_ZIP" ]]; then
  SRC_ZIP="$(find -L /usr/lib/jvm -path '*/lib/src.zip' -readable 2>/dev/null | sort | head -1)"
fi
[[ -r "$SRC_ZIP" ]] || { echo "no JDK src.zip found; install openjdk-17-source or set SRC_ZIP" >&2; exit 1; }
if [[ $# -eq 0 ]]; then
  set -- "scratch lr=3e-3 steps=600" \
         "scratch lr=3e-3 steps=360" \
         "grow lr=3e-3 steps=552 at=400 warm=30 rewarm=1" \
         "grow lr=3e-3 steps=648 at=600 warm=30 rewarm=1" \
         "grow lr=5e-3 steps=648 at=600 warm=30 rewarm=1" \
         "grow lr=5e-3 steps=694 at=694"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "src.zip: $SRC_ZIP sha256 $(sha256sum "$(readlink -f "$SRC_ZIP")" | cut -c1-16)..."
OUT="${OUT:-$ROOT/benchmarks/results/growth.jsonl}"
: > "$OUT"
"${BENCH_JVM[@]}" -cp "$CP" io.catena.bench.GrowthBench --src-zip "$SRC_ZIP" --out "$OUT" --set chains=2,2,2 "$@" | grep -v '^RESULT '
