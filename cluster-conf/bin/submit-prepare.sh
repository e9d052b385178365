#!/usr/bin/env bash
# spark-submit of io.catena.data.Prepare (`catena prepare` on a cluster) without a Spark distribution. See --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

USAGE="usage: cluster-conf/bin/submit-prepare.sh [--master URL] [--properties-file FILE] [--conf KEY=VALUE]... [--timeout SECONDS]
                                        [--] <Prepare options: --input URI[,URI] --format text|jsonl|parquet --out URI ...>
  Submits io.catena.data.Prepare (normalise, dedup, byte-level BPE, token shards + manifest.json) from the app jar
  (spark-trainer/target/spark-trainer-0.1.0-SNAPSHOT-app.jar, built when missing) in client mode.
  --master            default \$CATENA_MASTER, else spark://127.0.0.1:7077 (cluster-conf/bin/start-standalone.sh);
                      spark://127.0.0.1:*, localhost and local[N] masters keep every JVM on loopback (SPARK_LOCAL_IP)
  --properties-file   default cluster-conf/spark-defaults.conf; also spark-defaults-local.conf, -yarn.conf, -k8s.conf
                      (YARN and Kubernetes need CATENA_SPARK_HOME=<a Spark 4.1.3 distribution>: the Maven jars lack them)
  --conf              any Spark key, over the file's value (e.g. spark.executor.cores=1)
  --timeout           kill the job after this many seconds (exit status 124); default 0: none (Prepare's own --timeout
                      cancels the Spark job itself)
  Everything else (or all after --) goes to Prepare; \`submit-prepare.sh -- --help\` prints its options. Input and output
  URIs must be readable/writable from every executor (file:// only works when all workers share the path, as on one host).
  The same with a Spark 4.1.3 distribution:
    \$SPARK_HOME/bin/spark-submit --master URL --properties-file cluster-conf/spark-defaults.conf [--conf K=V]... \\
      --class io.catena.data.Prepare spark-trainer/target/spark-trainer-0.1.0-SNAPSHOT-app.jar <Prepare options>
  Example (after start-standalone.sh):
    cluster-conf/bin/submit-prepare.sh --conf spark.executor.cores=1 --conf spark.executor.memory=1g -- \\
      --input file://\$PWD/chain-model/src/main/resources/io/catena/corpus/genesis.txt --format text \\
      --out file:///tmp/genesis-bpe --tokenizer train:512 --seq-len 64"

catena_submit "$USAGE" io.catena.data.Prepare "$@"
