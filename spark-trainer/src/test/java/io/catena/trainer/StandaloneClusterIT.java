package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The quickstart of cluster-conf/README.md, run the way a user runs it: {@code cluster-conf/bin/start-standalone.sh}
 * starts a Master and two one-core Workers on 127.0.0.1 from Spark's Maven jars, {@code submit-prepare.sh} turns
 * Genesis into BPE shards on that cluster, {@code submit-train.sh} trains the tiny recipe with dp=2 on them (two
 * executor JVMs, the parameter server on the driver over UDP loopback), and {@code stop-standalone.sh} stops every
 * process. The only differences from the README's commands: free ports instead of 7077/8080 (other builds may run
 * on this host), the JavaCPP cache of the build instead of /var/tmp (through spark.*.extraJavaOptions, which add to
 * the defaultJavaOptions of spark-defaults.conf), and {@code --fail-at 1:4:exit} plus a smaller Aeron term: rank 1
 * halts its executor JVM at step 4, and the stage must run again on a new executor and finish at the right step.
 */
@Timeout(value = 720, unit = TimeUnit.SECONDS)
class StandaloneClusterIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final List<Process> scripts = new ArrayList<>();
    private Path runDir;
    private Path logs;

    private static String prop(String name) {
        String v = System.getProperty(name);
        if (v == null) {
            throw new IllegalStateException("system property " + name + " is not set; run this test through Maven failsafe");
        }
        return v;
    }

    private static Path root() {
        return Path.of(prop("catena.it.root")).toAbsolutePath().normalize();
    }

    /** Whatever a failed run left: the cluster (through the script users have), then any script still running. */
    @AfterEach
    void stopEverything() throws Exception {
        if (runDir != null && logs != null && Files.exists(runDir.resolve("master.pid"))) {
            run("stop-standalone.sh (after the test)", 90, "stop-standalone.sh", "--run-dir", runDir.toString(), "--timeout", "30");
        }
        for (Process p : scripts) {
            if (p.isAlive()) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
        scripts.clear();
    }

    /** The result of one script: exit status, its output (stdout and stderr), its pid. */
    private record Run(int rc, String out, long pid, Path log) {
    }

    /** Runs cluster-conf/bin/SCRIPT with ARGS from the checkout's root; fails after timeoutSeconds. */
    private Run run(String what, long timeoutSeconds, String script, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(root().resolve("cluster-conf/bin").resolve(script).toString()));
        cmd.addAll(List.of(args));
        Path log = logs.resolve(script.replace(".sh", "") + "-" + scripts.size() + ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(root().toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
        Map<String, String> env = pb.environment();
        env.put("JAVA_HOME", System.getProperty("java.home"));
        env.put("CATENA_SPARK_HOME", Path.of(prop("catena.it.spark.home")).toAbsolutePath().toString());
        env.put("CATENA_NO_BUILD", "1"); // test exactly what Maven just packaged; never nest a build
        env.put("SPARK_DAEMON_MEMORY", "384m");
        env.put("OMP_WAIT_POLICY", "passive");
        env.remove("SPARK_HOME");
        env.remove("SPARK_CONF_DIR");
        env.remove("CATENA_MASTER");
        Process p = pb.start();
        scripts.add(p);
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError(what + " did not finish within " + timeoutSeconds + " s: " + cmd + "\n" + tail(log));
        }
        return new Run(p.exitValue(), Files.readString(log, StandardCharsets.ISO_8859_1), p.pid(), log);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static String tail(Path log) throws IOException {
        if (!Files.exists(log)) {
            return "(no log " + log + ")";
        }
        List<String> lines = Files.readAllLines(log, StandardCharsets.ISO_8859_1);
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 60), lines.size()));
    }

    /** Running and not a zombie (the daemons' parent is gone, so init reaps them a moment after they exit). */
    private static boolean running(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"), StandardCharsets.ISO_8859_1);
            return !stat.substring(stat.lastIndexOf(')') + 2).startsWith("Z");
        } catch (IOException e) {
            return false;
        }
    }

    private long pidOf(String pidFile) throws IOException {
        Path f = runDir.resolve(pidFile);
        assertTrue(Files.isRegularFile(f), "start-standalone.sh wrote no " + f);
        return Long.parseLong(Files.readString(f).trim());
    }

    @Test
    void shouldRunTheQuickstartScriptsAndSurviveALostExecutorOnARealStandaloneCluster() throws Exception {
        Path root = root();
        Path appJar = Path.of(prop("catena.it.app.jar")).toAbsolutePath();
        assertTrue(Files.isRegularFile(appJar), "app jar " + appJar + " missing: failsafe runs after package");
        runDir = Path.of(prop("catena.it.dir")).toAbsolutePath().resolve("run-" + ProcessHandle.current().pid());
        logs = runDir.resolve("it-logs");
        Files.createDirectories(logs);

        // a taken master port is refused before anything starts, naming the port and the option to change
        try (ServerSocket busy = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Path otherRun = runDir.resolve("busy");
            Run r = run("start-standalone.sh on a taken port", 60, "start-standalone.sh", "--run-dir", otherRun.toString(),
                    "--master-port", String.valueOf(busy.getLocalPort()), "--webui-port", String.valueOf(freePort()));
            assertEquals(1, r.rc(), r.out());
            assertTrue(r.out().contains("port " + busy.getLocalPort() + " on 127.0.0.1 is taken") && r.out().contains("--master-port"),
                    r.out());
            assertFalse(Files.exists(otherRun.resolve("master.pid")), "nothing may start when the port is taken");
        }

        // 1. the cluster
        int masterPort = freePort();
        String master = "spark://127.0.0.1:" + masterPort;
        Run start = run("start-standalone.sh", 240, "start-standalone.sh", "--run-dir", runDir.toString(), "--workers", "2",
                "--cores", "1", "--memory", "1536m", "--master-port", String.valueOf(masterPort), "--webui-port",
                String.valueOf(freePort()), "--timeout", "120");
        assertEquals(0, start.rc(), "start-standalone.sh failed:\n" + start.out());
        assertTrue(start.out().contains("standalone cluster up: " + master), start.out());
        List<Long> daemons = List.of(pidOf("master.pid"), pidOf("worker-1.pid"), pidOf("worker-2.pid"));
        for (long pid : daemons) {
            assertTrue(running(pid), "daemon " + pid + " is not running after start-standalone.sh:\n" + start.out());
        }
        assertTrue(Files.readString(runDir.resolve("logs/worker-2.log")).contains("Successfully registered with master " + master));

        // spark-defaults.conf sizes executors for real machines; the quickstart's one-core workers take one-core executors
        String cache = "-Dorg.bytedeco.javacpp.cachedir=" + prop("catena.it.javacpp") + " -Djava.io.tmpdir=" + runDir;
        List<String> submit = List.of("--master", master, "--conf", "spark.executor.cores=1", "--conf", "spark.task.cpus=1",
                "--conf", "spark.executor.memory=1g", "--conf", "spark.driver.memory=1g",
                "--conf", "spark.driver.extraJavaOptions=" + cache, "--conf", "spark.executor.extraJavaOptions=" + cache);

        // 2. prepare: Genesis -> byte-level BPE (512) shards of 65-token windows, on the cluster's executors
        Path genesis = root.resolve("chain-model/src/main/resources/io/catena/corpus/genesis.txt");
        Path data = runDir.resolve("genesis-bpe");
        List<String> prep = new ArrayList<>(submit);
        prep.addAll(List.of("--", "--input", genesis.toUri().toString(), "--format", "text", "--out", data.toUri().toString(),
                "--tokenizer", "train:512", "--seq-len", "64"));
        Run p = run("submit-prepare.sh", 300, "submit-prepare.sh", prep.toArray(String[]::new));
        assertEquals(0, p.rc(), "submit-prepare.sh failed:\n" + tail(p.log()));
        assertTrue(p.out().contains("wrote dataset version 1"), tail(p.log()));
        JsonNode manifest = JSON.readTree(data.resolve("manifest.json").toFile());
        assertEquals(64, manifest.path("seqLen").asInt(), "manifest seqLen");
        assertEquals(512, manifest.path("tokenizer").path("vocabSize").asInt(), "manifest tokenizer");
        assertTrue(manifest.path("shards").size() >= 2, "train and val shards expected: " + manifest.path("shards"));

        // 3. train: tiny recipe, dp=2 on the prepared manifest, 10 steps, eval at 5; rank 1 halts its executor at step 4
        Path out = runDir.resolve("ckpt");
        List<String> train = new ArrayList<>(submit);
        train.addAll(List.of("--conf", "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures=30", "--",
                "--data", data.toUri().toString(), "--recipe", "cluster-conf/recipes/tiny.properties", "--out", out.toUri().toString(),
                "--dp", "2", "--steps", "10", "--eval-every", "5", "--fail-at", "1:4:exit", "--term-length", "1048576"));
        Run t = run("submit-train.sh", 360, "submit-train.sh", train.toArray(String[]::new));
        Path dlog = t.log();
        String log = t.out();
        assertEquals(0, t.rc(), "submit-train.sh failed:\n" + tail(dlog));
        assertTrue(log.contains("done: step 10"), tail(dlog));
        assertTrue(log.contains("eval step 5 |"), "rank 0's periodic eval is missing:\n" + tail(dlog));
        assertTrue(log.contains("vocab=512"), "the job did not train on the prepared BPE shards:\n" + tail(dlog));

        // the checkpoint: latest -> step 10, the BPE vocabulary, dp 2
        assertTrue(Files.exists(out.resolve("latest")), "no checkpoint under " + out);
        Path step = out.resolve(Files.readString(out.resolve("latest")).trim());
        JsonNode model = JSON.readTree(step.resolve("model.json").toFile());
        assertEquals(10, model.path("trainer").path("step").asInt(), "checkpoint step: " + model.path("trainer"));
        assertEquals(512, model.path("config").path("vocab_size").asInt(), "checkpoint vocab: " + model.path("config"));
        assertEquals(2, model.path("info").path("dp").asInt(), "checkpoint dp: " + model.path("info"));

        // the metrics: a train line at step 10 with finite losses for both scales, evals at 5 and 10, the restart
        List<JsonNode> metrics = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve("metrics.jsonl"), StandardCharsets.UTF_8)) {
            metrics.add(JSON.readTree(line));
        }
        JsonNode last = metrics.stream().filter(m -> m.path("kind").asText().equals("train") && m.path("step").asInt() == 10).findFirst()
                .orElseThrow(() -> new AssertionError("no train metrics at step 10 in " + out.resolve("metrics.jsonl")));
        assertEquals(2, last.path("loss").size(), "one loss per scale: " + last);
        last.path("loss").forEach(l -> assertTrue(Double.isFinite(l.asDouble()) && l.asDouble() > 0 && l.asDouble() < 10, "loss " + last));
        assertEquals(List.of(5, 10), metrics.stream().filter(m -> m.path("kind").asText().equals("eval")).map(m -> m.path("step").asInt())
                .toList(), "eval steps");
        assertTrue(metrics.stream().anyMatch(m -> m.path("kind").asText().equals("restart")), "no restart in the metrics");

        // dp=2 ran in two executor JVMs, neither of them the driver (submit-train.sh execs the driver: same pid)
        List<Long> run1 = pids(log, 1, dlog);
        assertNotEquals(run1.get(0), run1.get(1), "both tasks ran in one JVM: " + run1);
        assertFalse(run1.contains(t.pid()), "a task ran in the driver JVM");
        // rank 1's executor JVM was halted at step 4: the stage ran again, rank 1 in a new executor JVM
        assertTrue(log.contains("stage run 1 failed"), tail(dlog));
        List<Long> run2 = pids(log, 2, dlog);
        assertNotEquals(run1.get(1), run2.get(1), "rank 1 must run in a new executor after its JVM died");
        assertFalse(running(run1.get(1)), "the halted executor " + run1.get(1) + " is still alive");

        // 3b. pipeline parallelism across the two executor JVMs: --pp 2 (stage 0 and stage 1 linked over Aeron UDP);
        // stage 1's executor JVM halts before step 6: stage 0 must notice (link wait + cancellation), the stage
        // runs again on a new executor, and the run ends where the same run without the fault ends
        Path ppOut = runDir.resolve("ckpt-pp");
        List<String> pp = new ArrayList<>(submit);
        pp.addAll(List.of("--conf", "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures=30", "--",
                "--data", data.toUri().toString(), "--recipe", "cluster-conf/recipes/tiny.properties", "--out", ppOut.toUri().toString(),
                "--dp", "1", "--pp", "2", "--schedule", "gpipe", "--steps", "10", "--fail-at", "1:6:exit", "--term-length", "1048576"));
        Run ppRun = run("submit-train.sh --pp 2", 360, "submit-train.sh", pp.toArray(String[]::new));
        String ppLog = ppRun.out();
        assertEquals(0, ppRun.rc(), "submit-train.sh --pp 2 failed:\n" + tail(ppRun.log()));
        assertTrue(ppLog.contains("done: step 10") && ppLog.contains("dp 1 x pp 2"), tail(ppRun.log()));
        assertTrue(ppLog.contains("stage run 1 failed"), "the halted stage-1 executor must fail the stage:\n" + tail(ppRun.log()));
        List<Long> pp1 = pids(ppLog, 1, ppRun.log());
        List<Long> pp2 = pids(ppLog, 2, ppRun.log());
        assertNotEquals(pp1.get(0), pp1.get(1), "the two stages ran in one JVM: " + pp1);
        assertNotEquals(pp1.get(1), pp2.get(1), "stage 1 must run in a new executor after its JVM died");
        JsonNode ppModel = JSON.readTree(ppOut.resolve(Files.readString(ppOut.resolve("latest")).trim()).resolve("model.json").toFile());
        assertEquals(10, ppModel.path("trainer").path("step").asInt(), "pp checkpoint step: " + ppModel.path("trainer"));
        assertEquals(2, ppModel.path("info").path("pp").asInt(), "pp checkpoint info: " + ppModel.path("info"));

        // 4. stop: every daemon and executor is gone, the pid files too; a second stop is a no-op
        Run stop = run("stop-standalone.sh", 120, "stop-standalone.sh", "--run-dir", runDir.toString(), "--timeout", "60");
        assertEquals(0, stop.rc(), "stop-standalone.sh failed:\n" + stop.out());
        List<Long> all = new ArrayList<>(daemons);
        all.addAll(run1);
        all.addAll(run2);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20); // init reaps the exited daemons
        while (all.stream().anyMatch(StandaloneClusterIT::running) && System.nanoTime() < deadline) {
            Thread.sleep(200);
        }
        for (long pid : all) {
            assertFalse(running(pid), "pid " + pid + " still runs after stop-standalone.sh:\n" + stop.out());
        }
        try (Stream<Path> s = Files.list(runDir)) {
            assertEquals(List.of(), s.filter(f -> f.toString().endsWith(".pid")).toList(), "pid files left after stop");
        }
        try (Stream<Path> s = Files.walk(runDir)) {
            assertEquals(List.of(), s.filter(f -> f.toString().endsWith(".jar")).toList(), "app jar copies left in the work dirs");
        }
        Run again = run("stop-standalone.sh (again)", 60, "stop-standalone.sh", "--run-dir", runDir.toString());
        assertEquals(0, again.rc(), again.out());
        assertTrue(again.out().contains("nothing was running"), again.out());

        // the halted executor could not remove its embedded Aeron driver's directory (/dev/shm): do it for it
        deleteTree(Path.of(aeronDir(log, 1, 1)));
    }

    /** The executor pids of each rank from the driver's "stage run N: [...]" line. */
    private static List<Long> pids(String log, int run, Path dlog) throws Exception {
        Matcher em = Pattern.compile("stage run " + run + ": (\\[.*])").matcher(log);
        assertTrue(em.find(), "no endpoints line for stage run " + run + ":\n" + tail(dlog));
        List<Long> pids = new ArrayList<>();
        for (String e : em.group(1).substring(1, em.group(1).length() - 1).split("(?<=}),\\s*")) {
            pids.add(((Number) JSON.readValue(e, Map.class).get("pid")).longValue());
        }
        assertEquals(2, pids.size());
        return pids;
    }

    private static String aeronDir(String log, int run, int rank) throws Exception {
        Matcher em = Pattern.compile("stage run " + run + ": (\\[.*])").matcher(log);
        assertTrue(em.find());
        String e = em.group(1).substring(1, em.group(1).length() - 1).split("(?<=}),\\s*")[rank];
        return String.valueOf(JSON.readValue(e, Map.class).get("aeron_dir"));
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            s.sorted(Comparator.reverseOrder()).forEach(x -> x.toFile().delete());
        }
    }
}
