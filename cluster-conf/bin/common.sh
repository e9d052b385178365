# Sourced by the scripts beside it (start-standalone.sh, stop-standalone.sh, submit-*.sh, retrain.sh); not run alone.
#
# They need no Spark distribution: Spark's own jars come from Maven (spark-trainer's package phase copies them into
# spark-trainer/target/spark-home/jars, a SPARK_HOME with nothing but jars/), and every JVM is started the way
# $SPARK_HOME/bin/spark-class starts it: Spark's launcher (org.apache.spark.launcher.Main) builds the java command,
# with Spark's Java 17 module flags, SPARK_DAEMON_MEMORY for daemons, and for spark-submit the driver's memory and
# java options from the properties file; the script then runs that command.
#
# Environment: CATENA_SPARK_HOME (default spark-trainer/target/spark-home, which has Spark core and SQL only: for
# --master yarn or k8s://... point it at a Spark 4.1.3 / Scala 2.13 distribution with those modules), JAVA_HOME (else java
# on the PATH), MVN (default mvn), CATENA_NO_BUILD=1 (never build: fail if the jars are missing).

CATENA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CATENA_APP_JAR="$CATENA_ROOT/spark-trainer/target/spark-trainer-0.1.0-SNAPSHOT-app.jar"
CATENA_SPARK_HOME="${CATENA_SPARK_HOME:-$CATENA_ROOT/spark-trainer/target/spark-home}"
CATENA_JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
# Spark's launcher needs the Scala version of the jars when SPARK_HOME is not a Spark build tree
export SPARK_SCALA_VERSION="${SPARK_SCALA_VERSION:-2.13}"
# ND4J's OpenMP threads must not spin between GEMMs (Catena's Java kernels need those cores next: 2x step time otherwise);
# every JVM these scripts start inherits it, so do the executors a Worker started by start-standalone.sh forks
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

catena_die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# catena_need_value OPTION ARGC: fails unless the option at hand has a value after it
catena_need_value() {
  [[ "$2" -ge 2 ]] || catena_die "$1 needs a value (see --help)"
}

# Builds the app jar and the Maven SPARK_HOME when missing or older than the sources (like bin/catena).
catena_ensure_built() {
  local missing=() stale=""
  [[ -f "$CATENA_APP_JAR" ]] || missing+=("$CATENA_APP_JAR")
  compgen -G "$CATENA_SPARK_HOME/jars/spark-core_*.jar" >/dev/null || missing+=("$CATENA_SPARK_HOME/jars/spark-core_*.jar")
  if [[ ${#missing[@]} -eq 0 ]]; then
    stale="$(find "$CATENA_ROOT/pom.xml" "$CATENA_ROOT"/{chain-model,data-pipeline,parameter-server,spark-trainer}/pom.xml \
      "$CATENA_ROOT"/{chain-model,data-pipeline,parameter-server,spark-trainer}/src/main "$CATENA_ROOT/cluster-conf/recipes" \
      -newer "$CATENA_APP_JAR" -type f -print -quit 2>/dev/null || true)"
  fi
  if [[ ${#missing[@]} -eq 0 && -z "$stale" ]]; then
    return 0
  fi
  local build="mvn -B -q -pl spark-trainer -am package -DskipTests"
  if [[ "${CATENA_NO_BUILD:-}" == 1 ]]; then
    if [[ ${#missing[@]} -gt 0 ]]; then
      catena_die "missing ${missing[*]}; build them with (cd $CATENA_ROOT && $build), or unset CATENA_NO_BUILD so this script builds them"
    fi
    echo "$(basename "$0"): warning: $stale is newer than $CATENA_APP_JAR (CATENA_NO_BUILD=1: not rebuilding)" >&2
    return 0
  fi
  echo "$(basename "$0"): building the app jar and Spark's jars ($build; the first run downloads dependencies)..." >&2
  (cd "$CATENA_ROOT" && ${MVN:-mvn} -B -q -pl spark-trainer -am package -DskipTests) >&2 \
    || catena_die "the build failed (its output is above); fix it, or run it by hand: (cd $CATENA_ROOT && $build)"
  [[ -f "$CATENA_APP_JAR" ]] || catena_die "the build finished but $CATENA_APP_JAR is missing"
}

# catena_spark_command CLASS [ARGS...]: sets the array CATENA_CMD to the java command that $SPARK_HOME/bin/spark-class
# would run for CLASS (what Spark's launcher prints: a NUL, a newline, then the arguments, each ended by a NUL).
catena_spark_command() {
  local out rc=0
  out="$(mktemp "${TMPDIR:-/tmp}/catena-launch.XXXXXX")"
  SPARK_HOME="$CATENA_SPARK_HOME" "$CATENA_JAVA" -Xmx128m -cp "$CATENA_SPARK_HOME/jars/*" org.apache.spark.launcher.Main "$@" \
    >"$out" || rc=$?
  if [[ $rc -ne 0 ]]; then
    rm -f "$out"
    catena_die "Spark's launcher (org.apache.spark.launcher.Main, jars in $CATENA_SPARK_HOME/jars) exited with $rc for: $*"
  fi
  mapfile -d '' -t CATENA_CMD <"$out"
  rm -f "$out"
  [[ ${#CATENA_CMD[@]} -ge 2 ]] || catena_die "Spark's launcher printed no command for: $*"
  CATENA_CMD=("${CATENA_CMD[@]:1}")
  CATENA_CMD[0]="${CATENA_CMD[0]#$'\n'}"
}

# catena_submit SCRIPT_USAGE MAIN_CLASS [script options] [--] [job options]: spark-submit of the app jar, run in the
# foreground (the script's process becomes the driver JVM unless --timeout wraps it).
catena_submit() {
  local usage="$1" cls="$2"
  shift 2
  local master="${CATENA_MASTER:-spark://127.0.0.1:7077}" props="$CATENA_ROOT/cluster-conf/spark-defaults.conf" timeout=0
  local -a conf=() app=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --master) catena_need_value "$1" $#; master="$2"; shift 2 ;;
      --properties-file) catena_need_value "$1" $#; props="$2"; shift 2 ;;
      --conf) catena_need_value "$1" $#; conf+=(--conf "$2"); shift 2 ;;
      --timeout) catena_need_value "$1" $#; timeout="$2"; shift 2 ;;
      -h|--help) echo "$usage"; exit 0 ;;
      --) shift; app+=("$@"); break ;;
      *) app+=("$1"); shift ;;
    esac
  done
  [[ -f "$props" ]] || catena_die "--properties-file $props does not exist; the variants are in $CATENA_ROOT/cluster-conf/spark-defaults*.conf"
  [[ "$timeout" =~ ^[0-9]+$ ]] || catena_die "--timeout must be a whole number of seconds (0 = none), got '$timeout'"
  case "$master" in
    # a cluster on this host only: every JVM binds and advertises loopback (SPARK_LOCAL_IP), nothing listens outside
    spark://127.0.0.1:*|spark://localhost:*|local|local\[*) export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" ;;
  esac
  catena_ensure_built
  # a local event-log directory named in the properties must exist before the driver starts (Spark refuses otherwise)
  local evdir
  evdir="$(sed -n 's|^spark\.eventLog\.dir[[:space:]]*file://\(/[^[:space:]]*\).*|\1|p' "$props" | tail -1)"
  [[ -z "$evdir" ]] || mkdir -p "$evdir"
  # the driver's console logging: Catena's progress at INFO, Spark/Hadoop/Aeron at WARN (the launcher passes
  # SPARK_SUBMIT_OPTS to the driver JVM, as spark-submit does)
  export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:+$SPARK_SUBMIT_OPTS }-Dlog4j2.configurationFile=$CATENA_ROOT/cluster-conf/log4j2.properties"
  catena_spark_command org.apache.spark.deploy.SparkSubmit --master "$master" --properties-file "$props" "${conf[@]}" \
    --class "$cls" "$CATENA_APP_JAR" "${app[@]}"
  echo "$(basename "$0"): spark-submit --master $master --properties-file $props ${conf[*]} --class $cls $CATENA_APP_JAR ${app[*]}" >&2
  if [[ "$timeout" -gt 0 ]]; then
    exec timeout --kill-after=30 "$timeout" "${CATENA_CMD[@]}"
  fi
  exec "${CATENA_CMD[@]}"
}
