package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.HttpURLConnection;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * A user watching a running {@code catena train} in Spark's own terms: a real driver JVM (TrainJob.main, Spark local[2],
 * its UI on a loopback port) is scraped while it trains. The Prometheus endpoint on the UI must show the job's
 * {@code catena} metrics with a step that advances, a finite loss per scale and the server's lr, and the UI's JSON metrics
 * servlet the same gauges; metrics.jsonl must carry the one schema (lr and grad_norm from the parameter server, peak
 * memory).
 */
class ObservabilityTest {
    private static final Pattern STEP = Pattern.compile("(?m)^metrics_\\S*catena_step_Value\\{[^}]*}\\s+([0-9.eE+-]+)$");
    private static final Pattern LOSS_K1 = Pattern.compile("(?m)^metrics_\\S*catena_train_loss_k1_Value\\{[^}]*}\\s+([0-9.eE+-]+)$");
    private static final Pattern LR = Pattern.compile("(?m)^metrics_\\S*catena_lr_Value\\{[^}]*}\\s+([0-9.eE+-]+)$");

    @Test
    void runningJobShowsItsProgressInPrometheusAndTheSparkUi() throws Exception {
        Path dir = TrainerTestSupport.testDir("observability");
        Path recipe = TrainerTestSupport.recipe(dir, 100_000, "log_every = 5");
        int port = freePort();
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!a.startsWith("-agentlib") && !a.startsWith("-javaagent") && !a.startsWith("-Xmx")) {
                cmd.add(a); // the Spark --add-opens list, the native cache dirs, the test's Aeron settings
            }
        }
        cmd.addAll(List.of("-Xmx1g", "-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                "-Dspark.master=local[2]", "-Dspark.ui.enabled=true", "-Dspark.ui.port=" + port, "-Dspark.port.maxRetries=0",
                "-Dspark.driver.host=127.0.0.1", "-Dspark.driver.bindAddress=127.0.0.1", "-Dspark.executor.heartbeatInterval=500ms",
                "io.catena.trainer.TrainJob", "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "2"));
        Path log = dir.resolve("driver.log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            String base = "http://127.0.0.1:" + port;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(150);
            double firstStep = -1;
            double laterStep = -1;
            String scrape = "";
            while (System.nanoTime() < deadline && p.isAlive() && laterStep < firstStep + 10) {
                scrape = get(base + "/metrics/prometheus");
                Matcher m = STEP.matcher(scrape);
                if (m.find() && Double.parseDouble(m.group(1)) > 0) {
                    double step = Double.parseDouble(m.group(1));
                    if (firstStep < 0) {
                        firstStep = step;
                    }
                    laterStep = step;
                }
                Thread.sleep(200);
            }
            assertTrue(firstStep > 0 && laterStep >= firstStep + 10, "the catena_step gauge did not advance while the job ran (first "
                    + firstStep + ", last " + laterStep + "); scrape:\n" + tail(scrape) + "\ndriver log:\n" + tail(Files.readString(log)));
            Matcher loss = LOSS_K1.matcher(scrape);
            assertTrue(loss.find() && Double.isFinite(Double.parseDouble(loss.group(1))) && Double.parseDouble(loss.group(1)) > 0,
                    "no finite train loss of scale 1 in\n" + tail(scrape));
            Matcher lr = LR.matcher(scrape);
            assertTrue(lr.find() && Double.parseDouble(lr.group(1)) > 0, "no lr in\n" + tail(scrape));

            // the same gauges through the UI's JSON metrics servlet (what the Spark UI and its REST clients read)
            String json = get(base + "/metrics/json");
            assertTrue(json.contains(".driver.catena.step") && json.contains(".driver.catena.train_loss_k2"),
                    "the UI's /metrics/json has no catena gauges:\n" + tail(json));
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor(20, TimeUnit.SECONDS);
        }
        // the one metrics schema: every train record has lr and, from the server, grad_norm; memory is reported
        List<Map<?, ?>> train = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("ckpt/metrics.jsonl"))) {
            Map<?, ?> r = new ObjectMapper().readValue(line, Map.class);
            if ("train".equals(r.get("kind"))) {
                train.add(r);
            }
        }
        assertTrue(train.size() >= 2, "train records in metrics.jsonl: " + train);
        for (String key : List.of("loss", "lr", "grad_norm", "tok_per_s", "elapsed_s", "sync_fraction", "peak_rss_mb")) {
            assertTrue(train.get(train.size() - 1).containsKey(key), "train record without " + key + ": " + train.get(train.size() - 1));
        }
        Map<?, ?> last = train.get(train.size() - 1);
        assertTrue(((Number) last.get("grad_norm")).doubleValue() > 0, "grad_norm " + last);
    }

    private static String get(String url) throws IOException {
        HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
        c.setConnectTimeout(2_000);
        c.setReadTimeout(5_000);
        try {
            if (c.getResponseCode() != 200) {
                return "";
            }
            return new String(c.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return ""; // the UI is not up yet
        } finally {
            c.disconnect();
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static String tail(String s) {
        return s.length() > 3000 ? s.substring(s.length() - 3000) : s;
    }
}
