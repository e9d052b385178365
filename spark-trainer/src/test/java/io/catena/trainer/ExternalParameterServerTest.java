package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.ps.Configuration;
import io.catena.ps.ParameterServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * catena train against a parameter server started separately, the way {@code catena ps --conf F} starts one:
 * here in the test JVM from a conf file, with its own embedded Aeron media driver in a directory under target/,
 * UDP on 127.0.0.1 only.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ExternalParameterServerTest {

    /** Writes the server's conf file (as for catena ps --conf) into dir and launches the server from it. */
    static ParameterServer launchServer(Path dir, Path recipe, String job, int port, String sync, String... extra) {
        Properties p = new Properties();
        p.setProperty(Configuration.JOB_NAME_PROP, job);
        p.setProperty(Configuration.SECRET_FILE_PROP, secretFile(dir).toString());
        p.setProperty(Configuration.AERON_DIR_PROP, dir.resolve("ps-aeron").toString());
        p.setProperty(Configuration.EMBEDDED_DRIVER_PROP, "true");
        p.setProperty(Configuration.TERM_LENGTH_PROP, "1m");
        p.setProperty(Configuration.CHANNEL_PROP, "aeron:udp?endpoint=127.0.0.1:" + port);
        p.setProperty(Configuration.RECIPE_PROP, recipe.toString());
        p.setProperty(Configuration.SEED_PROP, "7"); // the recipe's seed: chains added by growth start like the embedded server's
        p.setProperty(Configuration.WORKERS_PROP, "2");
        p.setProperty(Configuration.SYNC_PROP, sync);
        p.setProperty(Configuration.SNAPSHOT_URI_PROP, dir.resolve("ps-ckpt").toString());
        p.setProperty(Configuration.SNAPSHOT_ON_CLOSE_PROP, "false");
        p.setProperty(Configuration.METRICS_INTERVAL_PROP, "0");
        for (int i = 0; i + 1 < extra.length; i += 2) {
            p.setProperty(extra[i], extra[i + 1]);
        }
        try (Writer w = Files.newBufferedWriter(dir.resolve("ps.properties"), StandardCharsets.UTF_8)) {
            p.store(w, "catena ps --conf for " + job);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return ParameterServer.launch(new ParameterServer.Context(p));
    }

    static Path secretFile(Path dir) {
        Path f = dir.resolve("ps.secret");
        try {
            if (!Files.exists(f)) {
                Files.writeString(f, "external-ps-test-secret-0123456789\n", StandardCharsets.UTF_8);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return f;
    }

    @Test
    void shouldTrainThroughAnExternalServerExactlyAsWithTheEmbeddedOne() {
        Path dir = TrainerTestSupport.testDir("external-ps");
        Path recipe = TrainerTestSupport.recipe(dir, 12);
        String[] common = {"--data", "builtin:genesis", "--recipe", recipe.toString(), "--dp", "2", "--grow-at", "6:+1",
                "--ckpt-every", "4", "--term-length", "1048576"};
        TrainResult embedded = TrainerTestSupport.train(new ByteArrayOutputStream(), TrainerTestSupport.concat(common, "--out",
                dir.resolve("embedded").toString()));

        int port = TrainJob.freeUdpPort();
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TrainResult external;
        long serverVersion;
        try (ParameterServer ps = launchServer(dir, recipe, "ext-parity", port, "bsp")) {
            external = TrainerTestSupport.train(log, TrainerTestSupport.concat(common, "--out", dir.resolve("external").toString(), "--ps-host",
                    "127.0.0.1", "--ps-port", Integer.toString(port), "--ps-secret-file", secretFile(dir).toString(), "--job-name",
                    "ext-parity"));
            serverVersion = ps.version();
            assertEquals(List.of(1, 1, 1), ps.config().chains(), "the driver grew the external server");
        }
        String out = log.toString();
        assertTrue(out.contains("using the external parameter server at 127.0.0.1:" + port), out);
        assertTrue(out.contains("grew the model at step 6"), out);
        assertEquals(12, serverVersion, "the workers trained on the external server");
        assertEquals(12, external.finalStep());
        assertEquals(1, external.stageRuns());
        assertEquals(embedded.chains(), external.chains());
        for (long s = 1; s <= 12; s++) {
            double[] a = embedded.trainLoss().get(s);
            double[] b = external.trainLoss().get(s);
            assertEquals(a.length, b.length, "scales at step " + s);
            for (int k = 0; k < a.length; k++) {
                assertEquals(a[k], b[k], 1e-6, "loss of step " + s + " scale " + (k + 1));
            }
        }
        for (int k = 0; k < embedded.finalEval().length; k++) {
            assertEquals(embedded.finalEval()[k], external.finalEval()[k], 1e-6, "final eval of scale " + (k + 1));
        }
        double d = TrainerTestSupport.maxAbsDiff(embedded.finalState().params(), external.finalState().params());
        System.out.println("external ps: max param diff vs embedded run " + d);
        assertTrue(d < 1e-6, "external-server run differs from the embedded one by " + d);
        assertTrue(external.finalState().hasOptimizerState(), "the final state is the server's snapshot, with AdamW moments");
        assertTrue(TrainerTestSupport.maxAbsDiff(embedded.finalState().adamV(), external.finalState().adamV()) < 1e-6);
        // periodic and final checkpoints are the server's snapshots (admin snapshot calls), with the data cursor
        TrainingState at4 = new CheckpointStore().load(dir.resolve("ps-ckpt/step-00000004").toString(), true);
        assertEquals(4, at4.step());
        assertEquals(4L * 4, at4.dataPosition());
        TrainingState last = new CheckpointStore().load(dir.resolve("ps-ckpt").toString(), true);
        assertEquals(12, last.step());
        assertEquals(12L * 4 * 16, last.tokensSeen());
        assertTrue(external.checkpoint().contains("ps-ckpt"), external.checkpoint());
    }

    @Test
    void shouldRefuseAnExternalServerThatServesAnotherModelNamingBoth() {
        Path dir = TrainerTestSupport.testDir("external-ps-mismatch");
        Path jobRecipe = TrainerTestSupport.recipe(dir, 8);
        Path serverDir = dir.resolve("server");
        Path serverRecipe = TrainerTestSupport.recipe(mkdirs(serverDir), 8, "chains = 1,1,1");
        int port = TrainJob.freeUdpPort();
        try (ParameterServer ignored = launchServer(serverDir, serverRecipe, "ext-mismatch", port, "asp")) {
            // --ps-conf: the server's own conf file gives address, job name and secret
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                    new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", jobRecipe.toString(), "--out",
                    dir.resolve("ckpt").toString(), "--dp", "2", "--term-length", "1048576", "--ps-conf",
                    serverDir.resolve("ps.properties").toString()));
            String m = e.getMessage();
            System.out.println("mismatched ps: " + m);
            assertTrue(m.contains("127.0.0.1:" + port) && m.contains("ext-mismatch"), m);
            assertTrue(m.contains("chains=[1, 1, 1]") && m.contains("chains=[1, 1]"), "both models must be named: " + m);
            assertTrue(m.contains("catena.ps.sync=asp") && m.contains("--sync bsp"), "both sync modes must be named: " + m);
            assertTrue(m.contains("catena.ps.recipe"), m);
        }
    }

    @Test
    void shouldRefuseAServerPlanningPipelineStagesForAJobWithoutThem() {
        Path dir = TrainerTestSupport.testDir("external-ps-stages");
        Path recipe = TrainerTestSupport.recipe(dir, 8, "layers = 2");
        Path serverDir = mkdirs(dir.resolve("server"));
        int port = TrainJob.freeUdpPort();
        try (ParameterServer ignored = launchServer(serverDir, recipe, "ext-stages", port, "bsp",
                Configuration.PIPELINE_STAGES_PROP, "2", Configuration.PIPELINE_MICRO_BATCH_PROP, "2")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                    new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                    dir.resolve("ckpt").toString(), "--dp", "2", "--term-length", "1048576", "--ps-conf",
                    serverDir.resolve("ps.properties").toString()));
            assertTrue(e.getMessage().contains("catena.ps.pipeline.stages=2") && e.getMessage().contains("without --pp"),
                    e.getMessage());
        }
    }

    @Test
    void shouldFailWithinSecondsNamingTheAddressWhenNoServerListens() {
        Path dir = TrainerTestSupport.testDir("external-ps-none");
        Path recipe = TrainerTestSupport.recipe(dir, 8);
        int port = TrainJob.freeUdpPort(); // bound and released: nothing listens there
        long t0 = System.nanoTime();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainerTestSupport.train(
                new ByteArrayOutputStream(), "--data", "builtin:genesis", "--recipe", recipe.toString(), "--out",
                dir.resolve("ckpt").toString(), "--dp", "2", "--ps-host", "127.0.0.1", "--ps-port", Integer.toString(port),
                "--ps-secret-file", secretFile(dir).toString()));
        double secs = (System.nanoTime() - t0) / 1e9;
        System.out.println("unreachable ps: failed after " + secs + " s: " + e.getMessage());
        assertTrue(secs < 30, "must fail within the 10 s connect timeout (plus set-up), took " + secs + " s");
        String m = e.getMessage();
        assertTrue(m.contains("127.0.0.1:" + port), "the message must name host:port: " + m);
        assertTrue(m.contains("nothing answered") && m.contains("10000 ms"), "what happened: " + m);
        assertTrue(m.contains("Expected a Catena parameter server") && m.contains("catena ps --conf"), "what was expected: " + m);
        assertTrue(m.contains("Start the server first") && m.contains("drop --ps-host/--ps-port"), "what to do: " + m);
    }

    @Test
    void shouldRequireTheAddressAndSecretOfAnExternalServer() throws Exception {
        String[] base = {"--data", "d", "--recipe", "r", "--out", "o"};
        IllegalArgumentException noPort = assertThrows(IllegalArgumentException.class,
                () -> TrainOptions.parse(TrainerTestSupport.concat(base, "--ps-host", "10.0.0.5"), k -> null));
        assertTrue(noPort.getMessage().contains("--ps-port"), noPort.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TrainOptions.parse(TrainerTestSupport.concat(base, "--ps-secret-file", "s"), k -> null));
        TrainOptions o = TrainOptions.parse(base, java.util.Map.of("spark.catena.ps-host", "10.0.0.5", "spark.catena.ps-port", "40123",
                "spark.catena.ps-secret-file", "/etc/catena/ps.secret")::get);
        assertTrue(o.externalPs());
        assertEquals("/etc/catena/ps.secret", o.psSecretFile());
        IllegalArgumentException noSecret = assertThrows(IllegalArgumentException.class, () -> PsHandle.ExternalSettings.resolve(
                TrainOptions.parse(TrainerTestSupport.concat(base, "--ps-host", "10.0.0.5", "--ps-port", "40123"), k -> null)));
        assertTrue(noSecret.getMessage().contains("10.0.0.5:40123") && noSecret.getMessage().contains("--ps-secret-file"),
                noSecret.getMessage());
        TrainOptions embedded = TrainOptions.parse(TrainerTestSupport.concat(base, "--ps-port", "40123"), k -> null);
        assertTrue(!embedded.externalPs() && embedded.psPort() == 40123, "--ps-port alone pins the embedded server's port");

        // the sample conf of cluster-conf/ps: the server's keys only; it listens on one address (127.0.0.1 as shipped)
        Path sample = Path.of("..", "cluster-conf", "ps", "ps.properties");
        Path secret = secretFile(TrainerTestSupport.testDir("external-ps-conf"));
        assertEquals("127.0.0.1:40123", PsHandle.ExternalSettings.resolve(TrainOptions.parse(TrainerTestSupport.concat(base,
                "--ps-conf", sample.toString(), "--ps-secret-file", secret.toString()), k -> null)).endpoint());
        // a conf that binds every interface names no address a client can use: --ps-host is required then
        Path anyConf = TrainerTestSupport.testDir("external-ps-any").resolve("ps.properties");
        java.nio.file.Files.writeString(anyConf, java.nio.file.Files.readString(sample).replace("endpoint=127.0.0.1:40123",
                "endpoint=0.0.0.0:40123"));
        IllegalArgumentException anyHost = assertThrows(IllegalArgumentException.class, () -> PsHandle.ExternalSettings.resolve(
                TrainOptions.parse(TrainerTestSupport.concat(base, "--ps-conf", anyConf.toString(), "--ps-secret-file", secret.toString()), k -> null)));
        assertTrue(anyHost.getMessage().contains("--ps-host"), anyHost.getMessage());
        PsHandle.ExternalSettings x = PsHandle.ExternalSettings.resolve(TrainOptions.parse(TrainerTestSupport.concat(base, "--ps-conf", sample.toString(),
                "--ps-host", "10.0.0.5", "--ps-secret-file", secret.toString()), k -> null));
        assertEquals("10.0.0.5:40123", x.endpoint());
        assertEquals("kjv-tiny", x.jobName());
        assertEquals(16 * 1024 * 1024, x.termLength());
        assertEquals(Configuration.STREAM_ID_DEFAULT, x.streamId());
    }

    private static Path mkdirs(Path p) {
        try {
            return Files.createDirectories(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
