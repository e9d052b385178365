"""Airflow DAG: daily `catena retrain` through spark-submit (SparkSubmitOperator).

Each run prepares the lake's new partitions (lake/date=YYYY-MM-DD/part-*) into the dataset as the next manifest
version and resumes training from the latest checkpoint on it for STEPS more steps (io.catena.trainer.RetrainJob).
A run with nothing new is a no-op that exits 0, so retries and manual re-runs are safe. max_active_runs=1: two
retrains on the same checkpoint must never overlap.

Needs apache-airflow-providers-apache-spark and a Spark connection (conn id "spark_default": host spark://master,
yarn or k8s://..., deploy mode client, so the driver can read the recipe file below). Copy this file into the DAGs
folder and adjust CATENA_HOME and the URIs.
"""
import re
from datetime import datetime, timedelta
from pathlib import Path

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

CATENA_HOME = Path("/opt/catena")
APP_JAR = CATENA_HOME / "spark-trainer/target/spark-trainer-0.1.0-SNAPSHOT-app.jar"
RECIPE = CATENA_HOME / "cluster-conf/recipes/tiny.properties"
LAKE = "hdfs:///lake/corpus"
CKPT = "hdfs:///ckpt/corpus"
STEPS = 200
DP = 2


def spark_defaults(path):
    """cluster-conf/spark-defaults.conf as a dict (JVM flags, executor sizing, barrier settings).

    Java properties syntax as Spark reads it: `key value` or `key=value`, `#` comments, and a trailing backslash
    continuing a value on the next line (the JVM flag lists use it)."""
    conf = {}
    logical = ""
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1]
            continue
        logical += line
        key, value = (re.split(r"[\s=:]+", logical, maxsplit=1) + [""])[:2]
        conf[key] = value.strip()
        logical = ""
    return conf


with DAG(
    dag_id="catena_retrain",
    schedule="15 2 * * *",  # daily, after the day's partition has landed
    start_date=datetime(2026, 11, 1),
    catchup=False,  # one run consumes every partition that landed since the last one
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=15)},
    tags=["catena"],
) as dag:
    SparkSubmitOperator(
        task_id="retrain",
        conn_id="spark_default",
        application=str(APP_JAR),
        java_class="io.catena.trainer.RetrainJob",
        name="catena-retrain",
        conf=spark_defaults(CATENA_HOME / "cluster-conf/spark-defaults.conf"),
        application_args=[
            "--lake", LAKE,
            "--ckpt", CKPT,
            "--recipe", str(RECIPE),
            "--steps", str(STEPS),
            "--dp", str(DP),
        ],
    )
