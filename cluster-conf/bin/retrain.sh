#!/usr/bin/env bash
# spark-submit of io.catena.trainer.RetrainJob (`catena retrain`: incremental prepare of a lake's new partitions, then
# training resumed on the new manifest version) without a Spark distribution. See --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="usage: cluster-conf/bin/retrain.sh [--master URL] [--properties-file FILE] [--conf KEY=VALUE]... [--timeout SECONDS]
                                 [--] <RetrainJob options: --lake URI --ckpt URI --recipe FILE|builtin:NAME [--steps N] [--dp N] ...>
  Submits io.catena.trainer.RetrainJob from the app jar (spark-trainer/target/spark-trainer-0.1.0-SNAPSHOT-app.jar, built
  when missing) in client mode. Exit status: 0 done or nothing new, 2 bad input, 1 failure (124 after --timeout).
  Runs on one --ckpt must not overlap: schedule it with flock(1) or max_active_runs=1 (cluster-conf/schedulers/).
  --master            default \$CATENA_MASTER, else spark://127.0.0.1:7077 (cluster-conf/bin/start-standalone.sh);
                      spark://127.0.0.1:*, localhost and local[N] masters keep every JVM on loopback (SPARK_LOCAL_IP)
  --properties-file   default cluster-conf/spark-defaults.conf; also spark-defaults-local.conf, -yarn.conf, -k8s.conf
                      (YARN and Kubernetes need CATENA_SPARK_HOME=<a Spark 4.1.3 distribution>: the Maven jars lack them)
  --conf              any Spark key, over the file's value; spark.catena.retrain.<option> too
  --timeout           kill the job after this many seconds; default 0: none
  Everything else (or all after --) goes to RetrainJob; \`retrain.sh -- --help\` prints its options.
  The same with a Spark 4.1.3 distribution:
    \$SPARK_HOME/bin/spark-submit --master URL --properties-file cluster-conf/spark-defaults.conf [--conf K=V]... \\
      --class io.catena.trainer.RetrainJob spark-trainer/target/spark-trainer-0.1.0-SNAPSHOT-app.jar <RetrainJob options>
  Example (after start-standalone.sh):
    cluster-conf/bin/retrain.sh --conf spark.executor.cores=1 --conf spark.task.cpus=1 --conf spark.executor.memory=1g -- \\
      --lake file:///data/lake --ckpt file:///data/ckpt --recipe cluster-conf/recipes/tiny.properties --steps 200 --dp 2"

catena_submit "$USAGE" io.catena.trainer.RetrainJob "$@"
