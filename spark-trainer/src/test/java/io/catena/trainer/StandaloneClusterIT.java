package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
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
 * The real thing: a standalone Master and two Workers (one core each) started from Spark's Maven jars on
 * 127.0.0.1, the shaded app jar submitted through {@code SparkSubmit} in client mode, dp=2 across two
 * executor JVMs, the parameter server on the driver over UDP loopback.
 */
@Timeout(value = 420, unit = TimeUnit.SECONDS)
class StandaloneClusterIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final List<Process> processes = new ArrayList<>();

    @AfterEach
    void stopCluster() throws Exception {
        for (int i = processes.size() - 1; i >= 0; i--) {
            Process p = processes.get(i);
            p.descendants().forEach(ProcessHandle::destroy);
            p.destroy();
            if (!p.waitFor(15, TimeUnit.SECONDS)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
        processes.clear();
    }

    private static String prop(String name) {
        String v = System.getProperty(name);
        if (v == null) {
            throw new IllegalStateException("system property " + name + " is not set; run this test through Maven failsafe");
        }
        return v;
    }

    private Process start(List<String> cmd, Map<String, String> env, Path log) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().putAll(env);
        Process p = pb.start();
        processes.add(p);
        return p;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void waitFor(String what, Path log, String text, Process p, long seconds) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            if (Files.exists(log) && Files.readString(log, StandardCharsets.UTF_8).contains(text)) {
                return;
            }
            if (!p.isAlive()) {
                throw new AssertionError(what + " exited with " + p.exitValue() + " before logging '" + text + "':\n" + tail(log));
            }
            Thread.sleep(200);
        }
        throw new AssertionError(what + " did not log '" + text + "' within " + seconds + " s:\n" + tail(log));
    }

    private static String tail(Path log) throws IOException {
        if (!Files.exists(log)) {
            return "(no log)";
        }
        List<String> lines = Files.readAllLines(log, StandardCharsets.ISO_8859_1);
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 60), lines.size()));
    }

    @Test
    void shouldTrainWithTwoExecutorJvmsAndSurviveALostExecutorOnARealStandaloneCluster() throws Exception {
        Path sparkHome = Path.of(prop("catena.it.spark.home")).toAbsolutePath();
        Path appJar = Path.of(prop("catena.it.app.jar")).toAbsolutePath();
        assertTrue(Files.isRegularFile(appJar), "app jar " + appJar + " missing: failsafe runs after package");
        Path dir = Path.of(prop("catena.it.dir")).toAbsolutePath().resolve("run-" + ProcessHandle.current().pid());
        Files.createDirectories(dir);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String cp = sparkHome.resolve("jars") + File.separator + "*";
        List<String> sparkOpts = Arrays.stream(prop("catena.it.spark.java.options").trim().split("\\s+")).toList();
        String catenaJvm = "--add-modules=jdk.incubator.vector --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED "
                + "-Dorg.bytedeco.javacpp.cachedir=" + prop("catena.it.javacpp") + " -Djava.io.tmpdir=" + dir
                + " -Dcatena.kernel.threads=1";
        Map<String, String> env = Map.of("SPARK_HOME", sparkHome.toString(), "SPARK_SCALA_VERSION", "2.13", "SPARK_LOCAL_IP", "127.0.0.1",
                "JAVA_HOME", System.getProperty("java.home"));

        int masterPort = freePort();
        String master = "spark://127.0.0.1:" + masterPort;
        List<String> mcmd = new ArrayList<>(List.of(java, "-Xmx384m"));
        mcmd.addAll(sparkOpts);
        mcmd.addAll(List.of("-cp", cp, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
                String.valueOf(masterPort), "--webui-port", String.valueOf(freePort())));
        Path mlog = dir.resolve("master.log");
        Process m = start(mcmd, env, mlog);
        waitFor("the Master", mlog, "I have been elected leader", m, 90);

        for (int w = 0; w < 2; w++) {
            List<String> wcmd = new ArrayList<>(List.of(java, "-Xmx384m"));
            wcmd.addAll(sparkOpts);
            wcmd.addAll(List.of("-cp", cp, "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--cores", "1",
                    "--memory", "1536m", "--webui-port", String.valueOf(freePort()), "--work-dir", dir.resolve("work-" + w).toString()));
            Path wlog = dir.resolve("worker-" + w + ".log");
            Process wp = start(wcmd, env, wlog);
            waitFor("worker " + w, wlog, "Successfully registered with master", wp, 90);
        }

        Path recipe = TrainerTestSupport.recipe(dir, 10);
        Path out = dir.resolve("ckpt");
        List<String> submit = new ArrayList<>(List.of(java, "-Xmx1g"));
        submit.addAll(sparkOpts);
        submit.addAll(Arrays.asList(catenaJvm.split(" ")));
        submit.addAll(List.of("-cp", cp, "org.apache.spark.deploy.SparkSubmit", "--master", master, "--deploy-mode", "client",
                "--class", "io.catena.trainer.TrainJob",
                "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
                "--conf", "spark.ui.enabled=false", "--conf", "spark.executor.cores=1", "--conf", "spark.task.cpus=1",
                "--conf", "spark.cores.max=2", "--conf", "spark.executor.memory=1g",
                "--conf", "spark.executor.extraJavaOptions=" + catenaJvm,
                "--conf", "spark.scheduler.barrier.maxConcurrentTasksCheck.interval=2s",
                "--conf", "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures=30",
                "--conf", "spark.catena.term-length=1048576",
                appJar.toString(),
                "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out", out.toString(), "--dp", "2", "--eval-every", "5",
                "--fail-at", "1:4:exit"));
        Path dlog = dir.resolve("driver.log");
        Process d = start(submit, env, dlog);
        boolean exited = d.waitFor(300, TimeUnit.SECONDS);
        String log = Files.readString(dlog, StandardCharsets.ISO_8859_1);
        assertTrue(exited, "spark-submit did not finish within 300 s:\n" + tail(dlog));
        assertEquals(0, d.exitValue(), "spark-submit failed:\n" + tail(dlog));
        assertTrue(log.contains("done: step 10"), tail(dlog));
        assertTrue(log.contains("eval step 5 |"), "rank 0's periodic eval is missing:\n" + tail(dlog));
        assertTrue(Files.exists(out.resolve("latest")), "no checkpoint under " + out);

        // dp=2 ran in two executor JVMs, neither of them the driver
        List<Long> run1 = pids(log, 1, dlog);
        assertNotEquals(run1.get(0), run1.get(1), "both tasks ran in one JVM: " + run1);
        assertTrue(!run1.contains(d.pid()), "a task ran in the driver JVM");
        // rank 1's executor JVM was halted at step 4: the stage ran again, rank 1 in a new executor JVM
        assertTrue(log.contains("stage run 1 failed"), tail(dlog));
        List<Long> run2 = pids(log, 2, dlog);
        assertNotEquals(run1.get(1), run2.get(1), "rank 1 must run in a new executor after its JVM died");
        assertTrue(run2.get(1) > 0 && ProcessHandle.of(run1.get(1)).map(ProcessHandle::isAlive).orElse(false) == false,
                "the halted executor " + run1.get(1) + " is still alive");

        stopCluster();
        // the halted executor could not remove its embedded Aeron driver's directory (/dev/shm): do it for it
        deleteTree(Path.of(aeronDir(log, 1, 1)));
        // the Workers copy the 200+ MB app jar per executor: clean their work dirs
        for (int w = 0; w < 2; w++) {
            deleteTree(dir.resolve("work-" + w));
        }
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
