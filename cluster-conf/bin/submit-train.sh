#!/usr/bin/env bash
# spark-submit of io.catena.trainer.TrainJob (`catena train` on a cluster) without a Spark distribution. See --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="usage: cluster-conf/bin/submit-train.sh [--master URL] [--properties-file FILE] [--conf KEY=VALUE]... [--timeout SECONDS]
                                      [--] <TrainJob options: --data URI --recipe FILE|builtin:NAME --out URI [--dp N] ...>
  Submits io.catena.trainer.TrainJob from the app jar (spark-trainer/target/spark-trainer-0.1.0-SNAPSHOT-app.jar, built
  when missing) in client mode: the driver, with the embedded parameter server, runs in this process.
  --master            default \$CATENA_MASTER, else spark://127.0.0.1:7077 (cluster-conf/bin/start-standalone.sh);
                      spark://127.0.0.1:*, localhost and local[N] masters keep every JVM on loopback (SPARK_LOCAL_IP)
  --properties-file   default cluster-conf/spark-defaults.conf; also spark-defaults-local.conf, -yarn.conf, -k8s.conf
                      (YARN and Kubernetes need CATENA_SPARK_HOME=<a Spark 4.1.3 distribution>: the Maven jars lack them)
  --conf              any Spark key, over the file's value (e.g. spark.executor.cores=1); spark.catena.<option> too
  --timeout           kill the job after this many seconds (exit status 124); default 0: none
  Everything else (or all after --) goes to TrainJob; \`submit-train.sh -- --help\` prints its options.
  The same with a Spark 4.1.3 distribution:
    \$SPARK_HOME/bin/spark-submit --master URL --properties-file cluster-conf/spark-defaults.conf [--conf K=V]... \\
      --class io.catena.trainer.TrainJob spark-trainer/target/spark-trainer-0.1.0-SNAPSHOT-app.jar <TrainJob options>
  Example (after start-standalone.sh; a 1-core worker per task):
    cluster-conf/bin/submit-train.sh --conf spark.executor.cores=1 --conf spark.task.cpus=1 --conf spark.executor.memory=1g \\
      -- --data file:///tmp/genesis-bpe --recipe cluster-conf/recipes/tiny.properties --out file:///tmp/ckpt-standalone --dp 2"

catena_submit "$USAGE" io.catena.trainer.TrainJob "$@"
