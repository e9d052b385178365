package io.catena.data.reader;

import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import scala.Tuple2;

/**
 * The {@code spark.hadoop.*} settings of the running Spark application (its {@link SparkEnv}, on the driver and on every
 * executor), copied into a Hadoop {@link Configuration} as Spark does for its own jobs: without them a reader that makes
 * its own {@code new Configuration()} inside a task sees only core-site.xml, and an {@code s3a://} dataset whose endpoint
 * and credentials come from {@code --conf spark.hadoop.fs.s3a.*} could not be opened. Only ever called where Spark is on
 * the class path ({@link #sparkPresent()}); {@code catena train-local} and {@code eval} run without Spark.
 */
final class SparkHadoopSettings {
    private static final String PREFIX = "spark.hadoop.";

    private SparkHadoopSettings() {
    }

    static boolean sparkPresent() {
        try {
            Class.forName("org.apache.spark.SparkEnv", false, SparkHadoopSettings.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    /** Adds the running application's spark.hadoop.* settings to conf (none when no Spark application runs here). */
    static Configuration apply(Configuration conf) {
        SparkEnv env = SparkEnv.get();
        if (env == null) {
            return conf;
        }
        SparkConf sc = env.conf();
        for (Tuple2<String, String> kv : sc.getAllWithPrefix(PREFIX)) {
            conf.set(kv._1(), kv._2(), "spark.hadoop.* of the Spark application");
        }
        return conf;
    }
}
