#!/usr/bin/env bash
# AES-256-GCM seal/open per core by provider (issue 16: the parameter server's crypto floor). One thread, 1 MiB frames
# with a 72-byte header as associated data, direct buffers, best of the rounds after the JIT warm-up:
#   the JDK's SunJCE on this java; the same on every other JDK under /usr/lib/jvm; Conscrypt (BoringSSL) and the Amazon
#   Corretto Crypto Provider (AWS-LC), fetched from Maven Central for this run only (Catena does not depend on them).
#   benchmarks/run-aead.sh          -> benchmarks/results/aead.jsonl
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/benchmarks/bench-build.sh"
OUT="$ROOT/benchmarks/results/aead.jsonl"
: > "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
JAR="$ROOT/benchmarks/target/benchmarks-0.1.0-SNAPSHOT.jar"
run() { "$@" | tee -a "$OUT"; }
run java -cp "$JAR" io.catena.bench.ps.AeadProviders SunJCE
for jdk in /usr/lib/jvm/*/bin/java; do
  [[ "$(readlink -f "$jdk")" == "$(readlink -f "$(command -v java)")" ]] && continue
  run "$jdk" -cp "$JAR" io.catena.bench.ps.AeadProviders SunJCE || true
done
M2="${MAVEN_REPO:-$HOME/.m2/repository}"
fetch() { mvn -B -q ${MVN_FLAGS:-} dependency:get -Dtransitive=false -Dartifact="$1" >/dev/null 2>&1 || echo "could not fetch $1" >&2; }
fetch org.conscrypt:conscrypt-openjdk-uber:2.5.2
fetch software.amazon.cryptools:AmazonCorrettoCryptoProvider:2.5.0:jar:linux-x86_64
CONSCRYPT="$M2/org/conscrypt/conscrypt-openjdk-uber/2.5.2/conscrypt-openjdk-uber-2.5.2.jar"
ACCP="$M2/software/amazon/cryptools/AmazonCorrettoCryptoProvider/2.5.0/AmazonCorrettoCryptoProvider-2.5.0-linux-x86_64.jar"
[[ -r "$CONSCRYPT" ]] && run java -cp "$JAR:$CONSCRYPT" io.catena.bench.ps.AeadProviders Conscrypt || true
[[ -r "$ACCP" ]] && run java -cp "$JAR:$ACCP" io.catena.bench.ps.AeadProviders ACCP || true
