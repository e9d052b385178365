package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.ps.protocol.RejectReason;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.nd4j.linalg.api.buffer.DataType;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GrowthAndSnapshotTest {

    @Test
    void shouldGrowMidStreamAndLetWorkersRebuildFromTheNextPull() {
        Path dir = PsTestSupport.testDir("grow");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp());
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0));
             ParameterServerClient admin = ParameterServerClient.connect(PsTestSupport.client(sctx, -1))) {
            ParamLayout oldLayout = c.layout();
            Params p = new Params(oldLayout, DataType.FLOAT);
            c.push(1, 0, PsTestSupport.gradient(oldLayout, 0, 1));
            assertEquals(1, c.pull(1, p).version());

            Map<String, Object> reply = admin.grow(List.of(2), true, null, 10_000);
            assertEquals(1, ((Number) reply.get("epoch")).intValue());
            assertEquals(List.of(1, 1, 2), reply.get("chains"));
            assertEquals(1, ps.epoch());

            RequestRejectedException stale = assertThrows(RequestRejectedException.class,
                    () -> c.push(2, 1, PsTestSupport.gradient(oldLayout, 0, 2)));
            assertEquals(RejectReason.STALE_EPOCH, stale.reason());
            ParameterServerClient.PullResult changed = c.pull(1, p);
            assertTrue(changed.layoutChanged());
            assertEquals(1, c.epoch());
            assertEquals(List.of(1, 1, 2), c.config().chains());
            assertEquals(2, c.serverLayout().frozenChains());

            Params grown = new Params(c.layout(), DataType.FLOAT);
            ParameterServerClient.PullResult r = c.pull(1, grown);
            assertFalse(r.layoutChanged());
            assertEquals(1, r.epoch());
            long oldSize = oldLayout.size();
            assertEquals(0.0, PsTestSupport.maxAbsDiff(p, grown, 0, oldSize), "old chains keep their values across growth");
            ParamLayout.Entry head = c.layout().get("head.c2");
            for (long i = head.offset(); i < head.offset() + head.size(); i++) {
                assertEquals(0.0, grown.buf().get((int) i), "the new chain's LM-head rows start at zero");
            }

            c.push(2, 1, PsTestSupport.gradient(c.layout(), 0, 2));
            Params after = new Params(c.layout(), DataType.FLOAT);
            assertEquals(2, c.pull(2, after).version());
            assertEquals(0.0, PsTestSupport.maxAbsDiff(grown, after, 0, oldSize), "frozen old chains must not change");
            assertTrue(PsTestSupport.maxAbsDiff(grown, after, oldSize, c.layout().size()) > 0, "the new chain trains");
        }
    }

    @Test
    void shouldRoundTripASnapshotThroughTheCheckpointStoreAndRestoreFromIt() {
        Path dir = PsTestSupport.testDir("snap");
        String root = dir.resolve("ckpt").toUri().toString();
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp()).snapshotUri(root);
        TrainingState taken;
        String written;
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0))) {
            for (int s = 1; s <= 2; s++) {
                c.push(s, s - 1, PsTestSupport.gradient(c.layout(), 0, s));
            }
            ps.grow(List.of(1), false, null, 5_000);
            written = ps.snapshot(Map.of("tokens_seen", 1234, "data_position", 56), 30_000);
            taken = ps.copyState(5_000);
        }
        TrainingState loaded = new CheckpointStore().load(root, true);
        assertTrue(written.endsWith("step-00000002"), written);
        assertEquals(2, loaded.step());
        assertEquals(1234, loaded.tokensSeen());
        assertEquals(56, loaded.dataPosition());
        assertEquals(1, ((Number) loaded.info().get("ps_epoch")).intValue());
        assertEquals(0.0, PsTestSupport.maxAbsDiff(taken.params(), loaded.params()));
        assertEquals(0.0, PsTestSupport.maxAbsDiff(taken.adamM(), loaded.adamM()));
        assertEquals(0.0, PsTestSupport.maxAbsDiff(taken.adamV(), loaded.adamV()));

        Path dir2 = PsTestSupport.testDir("snap-restore");
        ParameterServer.Context rctx = PsTestSupport.server(dir2, 1, SyncPolicy.bsp()).initialState(null).restoreUri(root);
        try (ParameterServer ps = ParameterServer.launch(rctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(rctx, 0))) {
            assertEquals(2, ps.version());
            assertEquals(1, ps.epoch());
            assertEquals(List.of(1, 1, 1), c.config().chains());
            Params p = new Params(c.layout(), DataType.FLOAT);
            assertEquals(2, c.pull(0, p).version());
            assertEquals(0.0, PsTestSupport.maxAbsDiff(taken.params(), p));
            assertFalse(c.push(3, 2, PsTestSupport.gradient(c.layout(), 0, 3)).duplicate());
            assertEquals(3, ps.version());
        }
    }

    @Test
    void shouldRestoreFromTheLastSnapshotAfterTheServerDiesAndLetTheWorkerReconnect() {
        Path dir = PsTestSupport.testDir("kill");
        String root = dir.resolve("ckpt").toUri().toString();
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp()).snapshotUri(root).snapshotInterval(2);
        ParameterServerClient c = null;
        try {
            ParameterServer first = ParameterServer.launch(sctx);
            c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0).requestTimeoutMs(1_500).connectTimeoutMs(3_000));
            for (int s = 1; s <= 3; s++) {
                c.push(s, s - 1, PsTestSupport.gradient(c.layout(), 0, s));
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (first.metrics().snapshots() < 1 && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            assertEquals(1, first.metrics().snapshots(), "the snapshot of version 2 must have been written");
            TrainingState atTwo = new CheckpointStore().load(root, true);
            assertEquals(2, atTwo.step());
            first.close(); // snapshotOnClose=false: version 3 is lost, like a killed process

            ParameterServer.Context rctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp()).jobName(sctx.jobName())
                    .initialState(null).restoreUri(root);
            try (ParameterServer second = ParameterServer.launch(rctx)) {
                assertEquals(2, second.version());
                Params p = new Params(c.layout(), DataType.FLOAT);
                ParameterServerClient.PullResult r = c.pull(0, p); // times out on the dead session, says HELLO again, retries
                assertEquals(2, r.version());
                assertEquals(0.0, PsTestSupport.maxAbsDiff(atTwo.params(), p));
                assertFalse(c.push(3, 2, PsTestSupport.gradient(c.layout(), 0, 3)).duplicate());
                assertEquals(3, second.version());
            }
        } finally {
            if (c != null) {
                c.close();
            }
        }
    }
}
