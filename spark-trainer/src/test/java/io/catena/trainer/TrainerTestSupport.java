package io.catena.trainer;

import io.catena.model.Params;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

/** One Spark local[4] context (dp x pp = 4 tasks at once) for the whole test JVM (127.0.0.1), recipes, runs and comparisons. */
final class TrainerTestSupport {
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static JavaSparkContext jsc;

    private TrainerTestSupport() {
    }

    static synchronized JavaSparkContext spark() {
        if (jsc == null) {
            SparkConf conf = new SparkConf().setMaster("local[4]").setAppName("spark-trainer-tests")
                    .set("spark.driver.host", "127.0.0.1")
                    .set("spark.driver.bindAddress", "127.0.0.1")
                    .set("spark.ui.enabled", "false")
                    .set("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "1s")
                    .set("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", "2")
                    .set("spark.driver.memory", "1g");
            jsc = new JavaSparkContext(conf);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> jsc.stop()));
        }
        return jsc;
    }

    /** a followed by b (command lines built from a common base). */
    static String[] concat(String[] a, String... b) {
        String[] all = new String[a.length + b.length];
        System.arraycopy(a, 0, all, 0, a.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    static Path testDir(String name) {
        Path p = Path.of(System.getProperty("catena.trainer.test.dir", "target/trainer-test"))
                .resolve(name + "-" + ProcessHandle.current().pid() + "-" + SEQ.incrementAndGet()).toAbsolutePath();
        try {
            Files.createDirectories(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return p;
    }

    /** A tiny CoLM (2 chains of 1 head of width 8, one layer) on bytes: each step takes milliseconds. */
    static Path recipe(Path dir, long steps, String... extra) {
        List<String> lines = new ArrayList<>(List.of(
                "head_dim = 8", "chains = 1,1", "layers = 1", "ffn_mult = 2", "variant = colm", "activation = gelu",
                "norm = layernorm", "bias = true", "batch_size = 4", "seq_len = 16", "steps = " + steps, "lr = 3e-3",
                "min_lr = 3e-4", "warmup_steps = 5", "weight_decay = 0.1", "clip_norm = 1.0", "seed = 7", "eval_every = 0",
                "eval_batches = 2", "log_every = 10", "ckpt_every = 0", "val_fraction = 0.05"));
        lines.addAll(List.of(extra));
        Path f = dir.resolve("recipe.properties");
        try {
            Files.write(f, lines, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return f;
    }

    /** Runs catena train on the shared context with these arguments; output goes to the test log and the returned buffer. */
    static TrainResult train(ByteArrayOutputStream log, String... args) {
        TrainOptions o = TrainOptions.parse(args, k -> null);
        PrintStream ps = new PrintStream(new TeeStream(log, System.out), true, StandardCharsets.UTF_8);
        return new TrainJob(spark(), o, ps).run();
    }

    static double maxAbsDiff(Params a, Params b) {
        if (a.layout().size() != b.layout().size()) {
            throw new AssertionError("parameter counts differ: " + a.layout().size() + " vs " + b.layout().size());
        }
        double d = 0;
        for (int i = 0; i < a.layout().size(); i++) {
            d = Math.max(d, Math.abs(a.buf().get(i) - b.buf().get(i)));
        }
        return d;
    }

    static final class TeeStream extends java.io.OutputStream {
        private final java.io.OutputStream a;
        private final java.io.OutputStream b;

        TeeStream(java.io.OutputStream a, java.io.OutputStream b) {
            this.a = a;
            this.b = b;
        }

        @Override
        public synchronized void write(int x) throws IOException {
            a.write(x);
            b.write(x);
        }

        @Override
        public synchronized void write(byte[] buf, int off, int len) throws IOException {
            a.write(buf, off, len);
            b.write(buf, off, len);
        }
    }
}
