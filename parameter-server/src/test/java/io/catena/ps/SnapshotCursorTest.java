package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 16: every snapshot carries the data cursor. The server's own interval snapshots recorded tokens_seen 0 and
 * data_position 0, so a resume from one replayed the data from the start; with the trainer's info registered
 * (TRAINER_INFO, over the wire like an external server gets it) every snapshot carries the cursor of its version.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SnapshotCursorTest {

    @Test
    void intervalSnapshotsCarryTheTrainersCursorAndInfo() throws Exception {
        Path dir = PsTestSupport.testDir("snap-cursor");
        String root = dir.resolve("ckpt").toUri().toString();
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp()).snapshotUri(root).snapshotInterval(3);
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0));
             ParameterServerClient admin = ParameterServerClient.connect(PsTestSupport.client(sctx, -1))) {
            // resumed at step 0 with 40 windows read already; 8 windows of 16 tokens per step
            admin.trainerInfo(Map.of("recipe", Map.of("seed", "7"), "data_spec", "builtin:genesis"), 0, 40, 640, 8, 128, 10_000);
            for (int s = 1; s <= 7; s++) {
                c.push(s, s - 1, PsTestSupport.gradient(c.layout(), 0, s));
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (ps.metrics().snapshots.get() < 2 && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
        }
        Path first = dir.resolve("ckpt/step-00000003");
        assertTrue(Files.isDirectory(first), "the interval snapshot of version 3: " + Files.list(dir.resolve("ckpt")).toList());
        for (String where : new String[] {first.toString(), root}) { // the first interval snapshot and the latest one
            TrainingState st = new CheckpointStore().load(where, true);
            long v = st.step();
            assertTrue(v >= 3, where + " is at version " + v);
            assertEquals(40 + v * 8, st.dataPosition(), "the data cursor of version " + v);
            assertEquals(640 + v * 128, st.tokensSeen(), "tokens seen at version " + v);
            assertEquals("builtin:genesis", st.info().get("data_spec"), "the trainer's info rides along: " + st.info());
        }
    }

    /** A requested snapshot while another is written waits for it instead of failing BUSY (the trainer's final one did). */
    @Test
    void aSnapshotRequestedDuringAnotherWaitsItsTurn() throws Exception {
        Path dir = PsTestSupport.testDir("snap-queue");
        String root = dir.resolve("ckpt").toUri().toString();
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp()).snapshotUri(root);
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0))) {
            c.push(1, 0, PsTestSupport.gradient(c.layout(), 0, 1));
            java.util.concurrent.CompletableFuture<String> first = java.util.concurrent.CompletableFuture.supplyAsync(
                    () -> ps.snapshot(Map.of("tokens_seen", 1, "data_position", 1), 30_000));
            String second = ps.snapshot(Map.of("tokens_seen", 2, "data_position", 2), 30_000);
            assertTrue(first.get(30, TimeUnit.SECONDS).endsWith("step-00000001"));
            assertTrue(second.endsWith("step-00000001"), second);
        }
    }
}
