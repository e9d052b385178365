package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.ps.Configuration;
import io.catena.ps.ParameterServer;
import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 16: an external parameter server that crashes mid-job and is restored from its last interval snapshot. The
 * running job notices, waits for it, rewinds to the snapshot's step and goes on by itself, its data cursor included,
 * so it ends with the same parameters as an uninterrupted run; a server that does not come back fails the job with one
 * line saying how to resume.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class ServerCrashRecoveryTest {
    private static final long STEPS = 160;
    private static final long SNAPSHOT_INTERVAL = 10;

    @Test
    void aJobRewindsToTheRestoredSnapshotAndEndsAsAnUninterruptedRun() throws Exception {
        Path dir = TrainerTestSupport.testDir("ps-crash");
        Path recipe = TrainerTestSupport.recipe(dir, STEPS);
        String[] common = {"--data", "builtin:genesis", "--recipe", recipe.toString(), "--dp", "2", "--term-length", "1048576"};
        TrainResult reference = TrainerTestSupport.train(new ByteArrayOutputStream(), TrainerTestSupport.concat(common, "--out",
                dir.resolve("reference").toString()));

        int port = TrainJob.freeUdpPort();
        String snapshots = dir.resolve("ps-ckpt").toString();
        ParameterServer first = ExternalParameterServerTest.launchServer(dir, recipe, "crash", port, "bsp",
                Configuration.SNAPSHOT_INTERVAL_PROP, Long.toString(SNAPSHOT_INTERVAL));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        CompletableFuture<TrainResult> job = CompletableFuture.supplyAsync(() -> TrainerTestSupport.train(log,
                TrainerTestSupport.concat(common, "--out", dir.resolve("job").toString(), "--ps-host", "127.0.0.1", "--ps-port",
                        Integer.toString(port), "--ps-secret-file", ExternalParameterServerTest.secretFile(dir).toString(), "--job-name",
                        "crash", "--ps-wait-ms", "60000")));
        ParameterServer second = null;
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (first.version() < 3 * SNAPSHOT_INTERVAL + 5 && !job.isDone() && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            long killedAt = first.version();
            first.close(); // no snapshot on close (catena.ps.snapshot.on.close=false): what a crash leaves behind
            assertTrue(killedAt > 3 * SNAPSHOT_INTERVAL && killedAt < STEPS, "the server must die mid-job, died at " + killedAt);
            Thread.sleep(500);
            // a fresh server (its own Aeron directory) restored from the last interval snapshot, on the same port
            second = ExternalParameterServerTest.launchServer(dir, recipe, "crash", port, "bsp",
                    Configuration.SNAPSHOT_INTERVAL_PROP, Long.toString(SNAPSHOT_INTERVAL), Configuration.RESTORE_PROP, snapshots,
                    Configuration.AERON_DIR_PROP, dir.resolve("ps-aeron-restored").toString());
            long restoredAt = second.version();
            assertTrue(restoredAt % SNAPSHOT_INTERVAL == 0 && restoredAt <= killedAt && restoredAt > 0,
                    "restored from an interval snapshot: " + restoredAt + " (killed at " + killedAt + ")");
            TrainResult r = job.get(180, TimeUnit.SECONDS);
            String out = log.toString();
            assertTrue(out.contains("stopped answering") && out.contains("--ps-wait-ms"), out);
            assertTrue(out.contains("is back at version " + restoredAt), out);
            assertEquals(STEPS, r.finalStep());
            assertEquals(STEPS, second.version());
            double d = TrainerTestSupport.maxAbsDiff(reference.finalState().params(), r.finalState().params());
            System.out.println("server crash at " + killedAt + ", restored at " + restoredAt + ": max param diff vs uninterrupted " + d);
            assertTrue(d < 1e-6, "the recovered run differs from the uninterrupted one by " + d);
        } finally {
            first.close();
            if (second != null) {
                second.close();
            }
            job.cancel(true);
        }
    }

    @Test
    void aServerThatDoesNotComeBackFailsTheJobSayingHowToResume() throws Exception {
        Path dir = TrainerTestSupport.testDir("ps-gone");
        Path recipe = TrainerTestSupport.recipe(dir, STEPS);
        int port = TrainJob.freeUdpPort();
        ParameterServer server = ExternalParameterServerTest.launchServer(dir, recipe, "gone", port, "bsp",
                Configuration.SNAPSHOT_INTERVAL_PROP, Long.toString(SNAPSHOT_INTERVAL));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        CompletableFuture<TrainResult> job = CompletableFuture.supplyAsync(() -> TrainerTestSupport.train(log, "--data",
                "builtin:genesis", "--recipe", recipe.toString(), "--dp", "2", "--term-length", "1048576", "--out",
                dir.resolve("job").toString(), "--ps-host", "127.0.0.1", "--ps-port", Integer.toString(port), "--ps-secret-file",
                ExternalParameterServerTest.secretFile(dir).toString(), "--job-name", "gone", "--ps-wait-ms", "3000"));
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (server.version() < 2 * SNAPSHOT_INTERVAL + 5 && !job.isDone() && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            server.close();
            Exception e = assertThrows(Exception.class, () -> job.get(180, TimeUnit.SECONDS));
            String m = String.valueOf(e.getCause() != null ? e.getCause().getMessage() : e.getMessage());
            System.out.println("server gone: " + m);
            assertTrue(m.contains("stopped answering") && m.contains("did not come back within 3 s"), m);
            // the server's last interval snapshot, and the checkpoint root a resume names
            assertTrue(m.matches("(?s).*--restore \\S*" + dir.resolve("ps-ckpt") + "/step-000000[1-9]0\\).*"), m);
            assertTrue(m.contains(dir.resolve("ps-ckpt") + " ") || m.endsWith(dir.resolve("ps-ckpt").toString()), m);
            assertTrue(m.contains("--resume --out "), m);
        } finally {
            server.close();
            job.cancel(true);
        }
    }
}
