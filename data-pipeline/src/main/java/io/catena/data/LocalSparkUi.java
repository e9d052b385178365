package io.catena.data;

import java.util.Locale;
import java.util.Map;
import org.apache.spark.SparkConf;

/**
 * Keeps a local run's Spark web UI off the network. Spark binds its UI to {@code SPARK_LOCAL_IP} when that is
 * set and to every interface otherwise ({@code spark.driver.bindAddress} does not apply to the UI), so a
 * {@code local[N]} run on a laptop or a shared host would serve job details on {@code *:4040}. For a local
 * master: with {@code SPARK_LOCAL_IP} on loopback (bin/catena exports 127.0.0.1 for local runs) the UI stays on
 * loopback; otherwise it is switched off, unless the user set {@code spark.ui.enabled} themselves. Cluster
 * masters are left alone (their UI is the cluster's business).
 */
public final class LocalSparkUi {
    private LocalSparkUi() {
    }

    /** Applies the rule to {@code conf} (its master already set); returns the one line to log, or null when nothing changed. */
    public static String apply(SparkConf conf, Map<String, String> env) {
        String master = conf.get("spark.master", "");
        if (!master.toLowerCase(Locale.ROOT).startsWith("local") || conf.contains("spark.ui.enabled")) {
            return null;
        }
        String ip = env.get("SPARK_LOCAL_IP");
        if (ip != null && (ip.startsWith("127.") || ip.equals("::1") || ip.equalsIgnoreCase("localhost"))) {
            return null; // the UI binds to loopback
        }
        conf.set("spark.ui.enabled", "false");
        return "Spark UI off for this local run (it would listen on all interfaces" + (ip == null ? "" : ", SPARK_LOCAL_IP=" + ip)
                + "); to watch it on this machine set SPARK_LOCAL_IP=127.0.0.1 (bin/catena does), or pass "
                + "--conf spark.ui.enabled=true to serve it on every interface";
    }
}
