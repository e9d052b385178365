package io.catena.trainer;

import org.apache.spark.SparkConf;

/** The Spark settings every Catena driver ({@code catena train}, {@code retrain}) starts with unless the user set them. */
final class DriverConf {
    private DriverConf() {
    }

    /**
     * App name, master ({@code --master}, else {@code local[localSlots]}), a barrier stage larger than the cluster's slots
     * failing within ~30 s instead of Spark's 10-minute default, the job's metrics (CatenaMetricsSource) as Prometheus
     * text on the UI ({@code <ui>/metrics/prometheus}), and a local run's UI kept on loopback (the line to print, if any,
     * goes to stderr prefixed with {@code command}).
     */
    static SparkConf apply(SparkConf conf, String command, String master, int localSlots) {
        conf.setIfMissing("spark.app.name", command);
        if (master != null) {
            conf.setMaster(master);
        }
        conf.setIfMissing("spark.master", "local[" + localSlots + "]");
        conf.setIfMissing("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "2s");
        conf.setIfMissing("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", "15");
        conf.setIfMissing("spark.metrics.conf.*.sink.prometheusServlet.class", "org.apache.spark.metrics.sink.PrometheusServlet");
        conf.setIfMissing("spark.metrics.conf.*.sink.prometheusServlet.path", "/metrics/prometheus");
        String ui = io.catena.data.LocalSparkUi.apply(conf, System.getenv());
        if (ui != null) {
            System.err.println(command + ": " + ui);
        }
        return conf;
    }
}
