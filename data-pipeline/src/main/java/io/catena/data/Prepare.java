package io.catena.data;

import io.catena.data.prepare.PrepareJob;
import io.catena.data.prepare.PrepareOptions;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;

/**
 * Entry point of {@code catena prepare} and of
 * {@code spark-submit --class io.catena.data.Prepare data-pipeline.jar ...}. Run with {@code --help}
 * for the options. Exit status: 0 success (including "nothing new"), 2 bad command line, 1 failure.
 */
public final class Prepare {

    private Prepare() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI and returns the exit status (for tests and embedding). */
    public static int run(String... args) {
        PrepareOptions o;
        try {
            o = PrepareOptions.parse(args);
        } catch (PrepareOptions.UsageException e) {
            System.err.println("catena prepare: " + e.getMessage());
            return 2;
        }
        if (o == null) {
            System.out.println(PrepareOptions.USAGE);
            return 0;
        }
        SparkConf conf = new SparkConf().setAppName("catena-prepare");
        if (o.master() != null) {
            conf.setMaster(o.master());
        } else if (!conf.contains("spark.master")) {
            conf.setMaster("local[2]");
        }
        String ui = LocalSparkUi.apply(conf, System.getenv());
        if (ui != null) {
            System.err.println("catena prepare: " + ui);
        }
        boolean own = SparkSession.getActiveSession().isEmpty() && SparkSession.getDefaultSession().isEmpty();
        SparkSession spark = SparkSession.builder().config(conf).getOrCreate();
        try {
            PrepareJob.Result r = PrepareJob.run(spark, o);
            System.out.println(r.message());
            return 0;
        } catch (IllegalArgumentException e) { // bad input: a missing or empty --input, an --out that holds a dataset, ...
            System.err.println("catena prepare: " + e.getMessage());
            return 2;
        } catch (RuntimeException | java.io.IOException e) {
            System.err.println("catena prepare failed: " + e.getMessage());
            e.printStackTrace(System.err);
            return 1;
        } finally {
            if (own) {
                spark.stop();
            }
        }
    }
}
