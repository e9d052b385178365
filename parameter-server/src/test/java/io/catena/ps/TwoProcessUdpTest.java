package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import java.io.IOException;
import java.net.DatagramSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The standalone server ({@code catena ps}) in a child JVM over UDP loopback, three BSP workers in this
 * JVM: parameters equal chain-model's AdamW on the averaged gradient; then the server is killed with
 * SIGKILL, a new one restores from the last snapshot, and the workers reconnect and continue exactly.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class TwoProcessUdpTest {
    private static final int WORKERS = 3;

    @Test
    void shouldTrainOverUdpAcrossProcessesAndSurviveAKilledServer() throws Exception {
        Path dir = PsTestSupport.testDir("udp2p");
        Path recipe = Files.writeString(dir.resolve("recipe.properties"), String.join("\n", "vocab_size = 17", "head_dim = 4",
                "chains = 1,1", "layers = 1", "ffn_mult = 2", "seed = 7", "lr = 1e-2", "min_lr = 1e-3", "warmup_steps = 2",
                "steps = 20", "clip_norm = 1.0", ""));
        Path secret = Files.writeString(dir.resolve("secret"), "udp-test-secret-0123456789\n");
        int port;
        try (DatagramSocket s = new DatagramSocket(0)) {
            port = s.getLocalPort();
        }
        String channel = "aeron:udp?endpoint=127.0.0.1:" + port;
        String root = dir.resolve("ckpt").toUri().toString();
        Path conf = Files.writeString(dir.resolve("ps.properties"), String.join("\n",
                Configuration.JOB_NAME_PROP + " = udp-job",
                Configuration.SECRET_FILE_PROP + " = " + secret,
                Configuration.AERON_DIR_PROP + " = " + dir.resolve("ps-aeron"),
                Configuration.TERM_LENGTH_PROP + " = 1m",
                Configuration.CHANNEL_PROP + " = " + channel,
                Configuration.CHUNK_BYTES_PROP + " = 512",
                Configuration.WORKERS_PROP + " = " + WORKERS,
                Configuration.RECIPE_PROP + " = " + recipe,
                Configuration.SNAPSHOT_URI_PROP + " = " + root,
                Configuration.SNAPSHOT_INTERVAL_PROP + " = 1",
                Configuration.METRICS_INTERVAL_PROP + " = 0", ""));

        Recipe r = Recipe.load(recipe);
        TrainSettings ts = r.trainSettings();
        ColmConfig cfg = r.modelConfig(2);
        Params p0 = new Params(new ParamLayout(cfg), DataType.FLOAT);
        p0.initialize(ts.seed(), 0);
        TrainingState init = new TrainingState(cfg, p0, null, null, 0, 0, 0, 0, Map.of());

        Process first = null;
        Process second = null;
        List<ParameterServerClient> clients = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(WORKERS);
        try {
            first = startServer(conf, dir.resolve("ps-1.log"), null);
            for (int w = 0; w < WORKERS; w++) {
                clients.add(ParameterServerClient.connect(new ParameterServerClient.Context().jobName("udp-job")
                        .secretFile(secret.toString()).aeronDirectoryName(dir.resolve("client-aeron").toString())
                        .termLength(1024 * 1024).channel(channel).responseHost("127.0.0.1").workerId(w)
                        .connectTimeoutMs(20_000).requestTimeoutMs(4_000)));
            }
            assertEquals(0.0, PsTestSupport.maxAbsDiff(init.params(), runSteps(pool, clients, 1, 3)),
                    "sanity: workers pulled");
            Params expected3 = PsTestSupport.reference(init, WORKERS, 3, ts.adamW(), ts.schedule());
            Params pulled3 = pullOnce(clients.get(0));
            double d = PsTestSupport.maxAbsDiff(expected3, pulled3);
            assertTrue(d < 1e-6, "over UDP the server differs from chain-model's AdamW by " + d);

            CheckpointStore store = new CheckpointStore();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!latestIsStep(store, root, 3)) {
                assertTrue(System.nanoTime() < deadline, "no snapshot of version 3 appeared under " + root);
                Thread.sleep(50);
            }
            first.destroyForcibly();
            assertTrue(first.waitFor(30, TimeUnit.SECONDS));

            second = startServer(conf, dir.resolve("ps-2.log"), root);
            Params expected4 = PsTestSupport.reference(init, WORKERS, 4, ts.adamW(), ts.schedule());
            Params pulled4 = runSteps(pool, clients, 4, 4);
            double d4 = PsTestSupport.maxAbsDiff(expected4, pulled4);
            assertTrue(d4 < 1e-6, "after kill and restore the parameters differ from the uninterrupted reference by " + d4);
        } finally {
            pool.shutdownNow();
            for (ParameterServerClient c : clients) {
                c.close();
            }
            for (Process p : new Process[] {first, second}) {
                if (p != null && p.isAlive()) {
                    p.destroy();
                    if (!p.waitFor(20, TimeUnit.SECONDS)) {
                        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                    }
                }
            }
        }
    }

    private static boolean latestIsStep(CheckpointStore store, String root, long step) {
        try {
            return store.resolve(root).endsWith(String.format("step-%08d", step));
        } catch (RuntimeException e) {
            return false;
        }
    }

    private static Params pullOnce(ParameterServerClient c) {
        Params p = new Params(c.layout(), DataType.FLOAT);
        c.pull(0, p, 10_000);
        return p;
    }

    /** Every worker pulls, then runs steps from..to under BSP; returns worker 0's parameters before the first step. */
    private static Params runSteps(ExecutorService pool, List<ParameterServerClient> clients, long from, long to) throws Exception {
        List<Future<Params>> fs = new ArrayList<>();
        for (int w = 0; w < clients.size(); w++) {
            ParameterServerClient c = clients.get(w);
            int worker = w;
            fs.add(pool.submit(() -> {
                Params p = new Params(c.layout(), DataType.FLOAT);
                ParameterServerClient.PullResult r = c.pull(from - 1, p, 10_000);
                assertEquals(from - 1, r.version(), "worker " + worker + " resumes at the snapshot's version");
                Params first = new Params(c.layout(), DataType.FLOAT);
                first.copyFrom(p);
                for (long step = from; step <= to; step++) {
                    c.push(step, r.version(), PsTestSupport.gradient(c.layout(), worker, step));
                    r = c.pull(step, p, 20_000);
                }
                return from == 1 ? first : p;
            }));
        }
        Params out = null;
        for (Future<Params> f : fs) {
            Params p = f.get(120, TimeUnit.SECONDS);
            out = out == null ? p : out;
        }
        return out;
    }

    private static Process startServer(Path conf, Path log, String restore) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules=jdk.incubator.vector", "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED", "-Xmx256m",
                "-XX:+UseSerialGC"));
        String cache = System.getProperty("org.bytedeco.javacpp.cachedir");
        if (cache != null) {
            cmd.add("-Dorg.bytedeco.javacpp.cachedir=" + cache);
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), ParameterServerMain.class.getName(), "--conf",
                conf.toString()));
        if (restore != null) {
            cmd.addAll(List.of("--restore", restore));
        }
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (true) {
            String out = Files.exists(log) ? Files.readString(log) : "";
            if (out.contains("catena ps: job")) {
                return p;
            }
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new AssertionError("standalone server did not start (exit " + (p.isAlive() ? "none" : p.exitValue())
                        + "); its output:\n" + out);
            }
            Thread.sleep(100);
        }
    }
}
