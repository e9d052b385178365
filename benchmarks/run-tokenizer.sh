#!/usr/bin/env bash
# Tokenizer benchmark of issue 3 (data-pipeline): our byte-level BPE vs HuggingFace tokenizers (Rust, via DJL)
# on the JDK 17 source corpus, plus end-to-end `catena prepare` on Spark local[2]. See RESULTS-tokenizer.md.
#
#   benchmarks/run-tokenizer.sh            -> benchmarks/results/tokenizer-*.json (+ .log) and a summary on stdout
#
# Environment knobs (defaults in brackets):
#   SRC_ZIP     JDK 17 src.zip [/usr/lib/jvm/openjdk-17/lib/src.zip; if absent, Debian's openjdk-17-source .deb is
#               downloaded with `apt-get download` and unpacked under target/work (no install, so the installed JDK
#               is never upgraded under running JVMs); APT_INSTALL=1 runs `apt-get install -y openjdk-17-source` instead]
#   VOCAB [8192]  TRAIN_MB [24]  MEASURE_MB [32]  ROUNDS [5]  WARMUP [1]   encode benchmark
#   PREPARE_MB [0 = whole corpus]  PREPARE_RUNS ["train load"]  PREPARE_XMX [3g]   prepare benchmark (train:VOCAB / tokenizer.json)
#   SKIP_BUILD=1  use the jars already built;  SKIP_ENCODE=1  keep results/tokenizer-encode.json;  MVN_FLAGS (e.g. -o)
# Run on a quiet machine; the figures are single-thread (encode) and 2-core (prepare).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/work/tokenizer-bench"
OUT="$ROOT/benchmarks/results"
VOCAB="${VOCAB:-8192}"; TRAIN_MB="${TRAIN_MB:-24}"; MEASURE_MB="${MEASURE_MB:-32}"
ROUNDS="${ROUNDS:-5}"; WARMUP="${WARMUP:-1}"; PREPARE_MB="${PREPARE_MB:-0}"; PREPARE_RUNS="${PREPARE_RUNS:-train load}"
PREPARE_XMX="${PREPARE_XMX:-3g}"
mkdir -p "$WORK" "$OUT" "$ROOT/target/work/djl"

# 1. the corpus
SRC_ZIP="${SRC_ZIP:-/usr/lib/jvm/openjdk-17/lib/src.zip}"
PKG_VERSION=""
if [[ ! -f "$SRC_ZIP" ]]; then
  if [[ "${APT_INSTALL:-0}" == 1 ]]; then
    echo "installing openjdk-17-source (apt may upgrade the installed openjdk-17 to the same version)" >&2
    apt-get install -y openjdk-17-source >&2
  else
    DEB_DIR="$WORK/deb"; mkdir -p "$DEB_DIR"
    if ! ls "$DEB_DIR"/openjdk-17-source_*.deb >/dev/null 2>&1; then
      (cd "$DEB_DIR" && (apt-get download openjdk-17-source || (apt-get update >&2 && apt-get download openjdk-17-source))) >&2
    fi
    DEB="$(ls "$DEB_DIR"/openjdk-17-source_*.deb | head -1)"
    dpkg-deb -x "$DEB" "$DEB_DIR/root"
    PKG_VERSION="$(dpkg-deb -f "$DEB" Version) (downloaded $(basename "$DEB"), not installed)"
    SRC_ZIP="$(find "$DEB_DIR/root" -name src.zip | head -1)"
  fi
fi
[[ -n "$PKG_VERSION" ]] || PKG_VERSION="$(dpkg-query -W -f='${Version}' openjdk-17-source 2>/dev/null || echo unknown) (installed)"
[[ -f "$SRC_ZIP" ]] || { echo "no src.zip found at $SRC_ZIP" >&2; exit 1; }
echo "corpus: $SRC_ZIP  openjdk-17-source $PKG_VERSION  sha256 $(sha256sum "$SRC_ZIP" | cut -d' ' -f1)" >&2

# 2. build
source "$ROOT/benchmarks/bench-build.sh"
# Spark's own Java 17 launcher flags (org.apache.spark.launcher.JavaModuleOptions), as in data-pipeline/pom.xml
SPARK_OPTS="$(sed -n 's:.*<spark.java.options>\(.*\)</spark.java.options>.*:\1:p' "$ROOT/data-pipeline/pom.xml")"
export TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 SPARK_LOCAL_IP=127.0.0.1
JAVA=(java -Djava.io.tmpdir="$WORK" -DDJL_CACHE_DIR="$ROOT/target/work/djl" -DENGINE_CACHE_DIR="$ROOT/target/work/djl"
      -Dai.djl.offline=true -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.bytedeco.javacpp.cachedir="$ROOT/target/work/javacpp")
BENCH=io.catena.bench.tokenizer.TokenizerBench

# 3. encode: ours vs HuggingFace, one thread, same tokenizer.json
if [[ "${SKIP_ENCODE:-0}" != 1 ]]; then
  echo "encode benchmark (vocab $VOCAB, train $TRAIN_MB MB, measure $MEASURE_MB MB, $ROUNDS rounds)" >&2
  "${JAVA[@]}" -Xms2g -Xmx2g -cp "$CP" $BENCH encode --src-zip "$SRC_ZIP" --work "$WORK" --vocab "$VOCAB" \
    --train-mb "$TRAIN_MB" --measure-mb "$MEASURE_MB" --rounds "$ROUNDS" --warmup "$WARMUP" \
    --out "$OUT/tokenizer-encode.json" 2> >(tee "$OUT/tokenizer-encode.log" >&2) > /dev/null
fi

# 4. prepare end to end, Spark local[2], each run in a fresh JVM (its peak RSS is the executor's: local mode)
for run in $PREPARE_RUNS; do
  if [[ $run == train ]]; then TOK="train:$VOCAB"; else TOK="$WORK/tokenizer-jdk17-$VOCAB.json"; fi
  echo "prepare benchmark ($run: --tokenizer $TOK, ${PREPARE_MB:-0} MB, 0 = all)" >&2
  "${JAVA[@]}" -Xmx"$PREPARE_XMX" $SPARK_OPTS -Dorg.slf4j.simpleLogger.log.io.catena=info -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$CP" $BENCH prepare --src-zip "$SRC_ZIP" --work "$WORK" --tokenizer "$TOK" \
    --mb "$PREPARE_MB" --master 'local[2]' --out "$OUT/tokenizer-prepare-$run.json" \
    2> "$OUT/tokenizer-prepare-$run.log" > /dev/null
  rm -rf "$WORK"/dataset-* "$WORK"/spark-local
done

# 5. summary
/usr/bin/python3 - "$OUT" "$PKG_VERSION" $PREPARE_RUNS <<'PYEOF'
import json, sys, os
out, pkg, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
e = json.load(open(f"{out}/tokenizer-encode.json"))
c = e["corpus"]
print(f"machine: {e['cpu']}, {e['cores']} cores; {e['java']}; DJL tokenizers {e['djl_tokenizers']} ({e['hf_tokenizers_native']})")
print(f"corpus: openjdk-17-source {pkg}; src.zip sha256 {c['src_zip_sha256']}; {c['java_files']} files, "
      f"{c['stripped_mb']:.1f} MB after stripping license headers")
t = e["tokenizer"]
print(f"tokenizer: vocab {t['vocab_size']} ({t['merges']} merges) trained on {t['train_mb']:.1f} MB in {t['bpe_train_s']:.1f} s; "
      f"measured on {e['measured']['mb']:.1f} MB of val ({e['measured']['files']} files), {e['bytes_per_token']:.2f} bytes/token")
i = e["identity"]
print(f"identity: {i['documents_with_different_ids']} of {i['documents']} documents differ "
      f"({i['tokens_compared']} tokens compared), {i['decode_round_trip_failures']} decode failures")
print("\n| engine (1 thread) | MB/s wall (median) | MB/s CPU (median) |\n|---|---|---|")
for k, v in e["engines"].items():
    print(f"| {k} | {v['mb_per_s_wall_median']:.2f} | {v['mb_per_s_cpu_median']:.2f} |")
r = e["ratios"]
print(f"\nratio catena / hf-djl: {r['catena_over_hf-djl_wall']:.1f}x wall, {r['catena_over_hf-djl_cpu']:.1f}x CPU; "
      f"catena / hf-ids: {r['catena_over_hf-ids_wall']:.1f}x wall, {r['catena_over_hf-ids_cpu']:.1f}x CPU (target >= 1.0x)")
for run in runs:
    p = f"{out}/tokenizer-prepare-{run}.json"
    if os.path.exists(p):
        j = json.load(open(p))
        print(f"prepare ({j['tokenizer']}): {j['input']['text_mb']:.1f} MB in {j['job_wall_s']:.1f} s = "
              f"{j['text_mb_per_s']:.2f} MB/s on {j['master']} ({j['text_mb_per_s_per_core']:.2f} MB/s per core); "
              f"peak RSS {j['peak_rss_mb']:.0f} MB, peak heap {j['peak_heap_mb']:.0f} MB of {j['max_heap_mb']:.0f}")
PYEOF
