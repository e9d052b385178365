# Sourced by the benchmarks/run-*.sh scripts that run Java: builds the benchmarks jar (SKIP_BUILD=1 skips the build,
# MVN_FLAGS adds Maven flags) and sets CP to its class path and BENCH_JVM to the engine benchmarks' JVM command:
# passive OpenMP wait as bin/catena and the tests use (libgomp's spinning steals the cores the Java kernels need),
# the JavaCPP cache under target/. Needs ROOT, the checkout's root.
mkdir -p "$ROOT/benchmarks/results" "$ROOT/target/work/javacpp"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && mvn -B -q ${MVN_FLAGS:-} -pl benchmarks -am package -DskipTests)
fi
# target/classpath.txt holds Maven-repository jars only (relocatable); the module jars come from this checkout
CP="$ROOT/benchmarks/target/benchmarks-0.1.0-SNAPSHOT.jar:$ROOT/chain-model/target/chain-model-0.1.0-SNAPSHOT.jar"
CP="$CP:$ROOT/data-pipeline/target/data-pipeline-0.1.0-SNAPSHOT.jar:$ROOT/parameter-server/target/parameter-server-0.1.0-SNAPSHOT.jar"
CP="$CP:$(cat "$ROOT/benchmarks/target/classpath.txt")"
BENCH_JVM=(env OMP_WAIT_POLICY=passive java --add-modules=jdk.incubator.vector -Xmx2g
           -Dorg.bytedeco.javacpp.cachedir="$ROOT/target/work/javacpp" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
# The OpenBLAS kernel Catena's detection chooses for this CPU (HostCpu), for the PyTorch peer: both engines run
# the host's best kernel (bench_train.py --coretype auto reads it). Empty where OpenBLAS's own detection stays.
export CATENA_HOST_CORETYPE="$(java -cp "$CP" io.catena.model.kernel.HostCpu --openblas-coretype 2>/dev/null || true)"
