package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.optim.AdamW;
import io.catena.model.io.TrainingState;
import io.catena.ps.protocol.RejectReason;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.nd4j.linalg.api.buffer.DataType;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class BspCorrectnessTest {

    @Test
    void shouldMatchChainModelAdamWOnTheAveragedGradientWithThreeBspWorkers() throws Exception {
        Path dir = PsTestSupport.testDir("bsp3");
        int workers = 3;
        int steps = 4;
        ParameterServer.Context sctx = PsTestSupport.server(dir, workers, SyncPolicy.bsp());
        TrainingState init = PsTestSupport.freshState(7);
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        try (ParameterServer ps = ParameterServer.launch(sctx)) {
            List<Future<Params>> results = new ArrayList<>();
            for (int w = 0; w < workers; w++) {
                int worker = w;
                results.add(pool.submit(() -> {
                    try (ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, worker))) {
                        Params p = new Params(c.layout(), DataType.FLOAT);
                        ParameterServerClient.PullResult r = c.pull(0, p);
                        for (long step = r.version() + 1; step <= steps; step++) {
                            Params g = PsTestSupport.gradient(c.layout(), worker, step);
                            c.push(step, r.version(), g);
                            r = c.pull(c.sync().minVersionFor(step + 1), p);
                            assertEquals(step, r.version(), "BSP publishes exactly one version per step");
                        }
                        return p;
                    }
                }));
            }
            List<Params> pulled = new ArrayList<>();
            for (Future<Params> f : results) {
                pulled.add(f.get(90, TimeUnit.SECONDS));
            }
            Params expected = PsTestSupport.reference(init, workers, steps);
            TrainingState server = ps.copyState(5_000);
            assertEquals(steps, ps.version());
            double diff = PsTestSupport.maxAbsDiff(expected, server.params());
            assertTrue(diff < 1e-6, "server parameters differ from chain-model's AdamW on the averaged gradient by " + diff);
            for (Params p : pulled) {
                assertEquals(0.0, PsTestSupport.maxAbsDiff(server.params(), p), "a worker pulled other bytes than the server holds");
            }
            assertTrue(PsTestSupport.maxAbsDiff(init.params(), server.params()) > 1e-4, "parameters must have moved");
            assertEquals(steps, ps.metrics().versionsPublished());
            assertEquals(0, ps.metrics().totalRejections());
            assertEquals(0, ps.metrics().maxStaleness(0));
            assertFalse(Double.isNaN(ps.metrics().latencyMillis(0.99)));
            assertTrue(ps.metrics().bytesIn() > 0 && ps.metrics().bytesOut() > 0);
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * A UDP server that also listens on IPC (the trainer's embedded server): a worker sharing its media driver comes in
     * over aeron:ipc, another over UDP, and the step is the same AdamW on their mean. Without the setting, nothing
     * answers on IPC.
     */
    @Test
    void shouldServeAnIpcAndAUdpWorkerOfOneJobWhenAlsoListeningOnIpc() throws Exception {
        Path dir = PsTestSupport.testDir("also-ipc");
        int port;
        try (java.net.DatagramSocket s = new java.net.DatagramSocket(0)) {
            port = s.getLocalPort();
        }
        ParameterServer.Context sctx = PsTestSupport.server(dir, 2, SyncPolicy.bsp())
                .channel("aeron:udp?endpoint=127.0.0.1:" + port).udpChannelParams("").alsoIpc(true);
        TrainingState init = PsTestSupport.freshState(7);
        int steps = 3;
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try (ParameterServer ps = ParameterServer.launch(sctx)) {
            List<Future<String>> results = new ArrayList<>();
            for (int w = 0; w < 2; w++) {
                int worker = w;
                ParameterServerClient.Context cctx = PsTestSupport.client(sctx, worker).responseHost("127.0.0.1");
                if (worker == 0) {
                    cctx.channel("aeron:ipc");
                }
                results.add(pool.submit(() -> {
                    try (ParameterServerClient c = ParameterServerClient.connect(cctx)) {
                        Params p = new Params(c.layout(), DataType.FLOAT);
                        ParameterServerClient.PullResult r = c.pull(0, p);
                        for (long step = r.version() + 1; step <= steps; step++) {
                            c.push(step, r.version(), PsTestSupport.gradient(c.layout(), worker, step));
                            r = c.pull(c.sync().minVersionFor(step + 1), p);
                            assertEquals(step, r.version());
                        }
                        return cctx.channel();
                    }
                }));
            }
            assertEquals("aeron:ipc", results.get(0).get(90, TimeUnit.SECONDS));
            assertTrue(results.get(1).get(90, TimeUnit.SECONDS).startsWith("aeron:udp"));
            double diff = PsTestSupport.maxAbsDiff(PsTestSupport.reference(init, 2, steps), ps.copyState(5_000).params());
            assertTrue(diff < 1e-6, "an IPC and a UDP worker must give chain-model's AdamW on their mean; differs by " + diff);
            assertEquals(0, ps.metrics().totalRejections());
        } finally {
            pool.shutdownNow();
        }

        Path dir2 = PsTestSupport.testDir("udp-only");
        int port2;
        try (java.net.DatagramSocket s = new java.net.DatagramSocket(0)) {
            port2 = s.getLocalPort();
        }
        ParameterServer.Context udpOnly = PsTestSupport.server(dir2, 1, SyncPolicy.bsp())
                .channel("aeron:udp?endpoint=127.0.0.1:" + port2).udpChannelParams("");
        try (ParameterServer ps = ParameterServer.launch(udpOnly)) {
            ParameterServerClient.Context ipc = PsTestSupport.client(udpOnly, 0).channel("aeron:ipc").connectTimeoutMs(1_500);
            assertThrows(RuntimeException.class, () -> ParameterServerClient.connect(ipc).close(),
                    "a server not listening on IPC must not answer there");
        }
    }

    @Test
    void shouldDropADuplicatePushAndKeepTheParameters() {
        Path dir = PsTestSupport.testDir("dup");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp());
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0))) {
            Params g = PsTestSupport.gradient(c.layout(), 0, 1);
            assertFalse(c.push(1, 0, g).duplicate());
            Params after1 = ps.copyState(5_000).params();
            ParameterServerClient.PushResult again = c.push(1, 0, g);
            assertTrue(again.duplicate(), "a retried push of (epoch, step, worker) must be dropped");
            assertEquals(1, ps.version());
            assertEquals(0.0, PsTestSupport.maxAbsDiff(after1, ps.copyState(5_000).params()));
            assertEquals(1, ps.metrics().duplicates());
        }
    }

    @Test
    void shouldEnforceTheSspStalenessBound() {
        Path dir = PsTestSupport.testDir("ssp");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 2, SyncPolicy.ssp(1));
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient fast = ParameterServerClient.connect(PsTestSupport.client(sctx, 0));
             ParameterServerClient slow = ParameterServerClient.connect(PsTestSupport.client(sctx, 1))) {
            Params p = new Params(fast.layout(), DataType.FLOAT);
            fast.push(1, 0, PsTestSupport.gradient(fast.layout(), 0, 1));
            // step 2 may run on version 0 (bound 1) ...
            assertEquals(0, fast.pull(fast.sync().minVersionFor(2), p, 2_000).version());
            fast.push(2, 0, PsTestSupport.gradient(fast.layout(), 0, 2));
            // ... step 3 may not: the pull for it blocks until the slow worker catches up, and a push is refused
            assertThrows(ParameterServerTimeoutException.class, () -> fast.pull(fast.sync().minVersionFor(3), p, 300));
            RequestRejectedException e = assertThrows(RequestRejectedException.class,
                    () -> fast.push(3, 0, PsTestSupport.gradient(fast.layout(), 0, 3)));
            assertEquals(RejectReason.STEP_OUT_OF_WINDOW, e.reason());
            assertEquals(0, ps.version());
            slow.push(1, 0, PsTestSupport.gradient(slow.layout(), 1, 1));
            assertEquals(1, fast.pull(fast.sync().minVersionFor(3), p, 5_000).version());
            fast.push(3, 1, PsTestSupport.gradient(fast.layout(), 0, 3));
            slow.push(2, 1, PsTestSupport.gradient(slow.layout(), 1, 2));
            assertEquals(2, ps.version());
            assertEquals(1, ps.metrics().maxStaleness(0), "worker 0 computed step 2 on version 0: staleness 1");
        }
    }

    @Test
    void shouldApplyEveryPushAtOnceUnderAspAndMeasureStaleness() {
        Path dir = PsTestSupport.testDir("asp");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 2, SyncPolicy.asp());
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient a = ParameterServerClient.connect(PsTestSupport.client(sctx, 0));
             ParameterServerClient b = ParameterServerClient.connect(PsTestSupport.client(sctx, 1))) {
            assertEquals(1, a.push(1, 0, PsTestSupport.gradient(a.layout(), 0, 1)).serverVersion());
            assertEquals(2, b.push(1, 0, PsTestSupport.gradient(b.layout(), 1, 1)).serverVersion());
            assertEquals(2, ps.version());
            assertEquals(0, ps.metrics().maxStaleness(0));
            assertEquals(1, ps.metrics().maxStaleness(1));
            assertTrue(b.push(1, 0, PsTestSupport.gradient(b.layout(), 1, 1)).duplicate());
        }
    }

    /**
     * Pull answers go out a chunk per duty cycle while other frames keep arriving: under ASP every push publishes a
     * version, yet each answer must be exactly one version's parameters (the server completes the answers in flight
     * before it changes them). Worker 1 only pushes, always the same gradient, so the parameters of version v are v
     * AdamW steps on it; worker 0 only pulls, and every vector it gets is checked against its version's.
     */
    @Test
    void shouldAnswerEveryPullWithOneVersionWhilePushesPublishNewOnesUnderAsp() throws Exception {
        Path dir = PsTestSupport.testDir("asp-answers");
        int pushes = 60;
        ParameterServer.Context sctx = PsTestSupport.server(dir, 2, SyncPolicy.asp());
        TrainingState init = PsTestSupport.freshState(7);
        ParamLayout layout = init.params().layout();
        Params g = PsTestSupport.gradient(layout, 0, 1);
        List<Params> byVersion = new ArrayList<>(); // the oracle: byVersion.get(v) = the parameters of version v
        Params p = new Params(layout, DataType.FLOAT);
        p.copyFrom(init.params());
        Params m = new Params(layout, DataType.FLOAT);
        Params v = new Params(layout, DataType.FLOAT);
        AdamW adam = new AdamW(layout, PsTestSupport.ADAM, 0);
        for (int s = 0; s <= pushes; s++) {
            if (s > 0) {
                adam.step(p, g, m, v, s, PsTestSupport.SCHEDULE.at(s));
            }
            Params copy = new Params(layout, DataType.FLOAT);
            copy.copyFrom(p);
            byVersion.add(copy);
        }
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient puller = ParameterServerClient.connect(PsTestSupport.client(sctx, 0));
             ParameterServerClient pusher = ParameterServerClient.connect(PsTestSupport.client(sctx, 1))) {
            Future<?> pushing = pool.submit(() -> {
                for (long step = 1; step <= pushes; step++) {
                    pusher.push(step, 0, g);
                }
            });
            Params pulled = new Params(layout, DataType.FLOAT);
            java.util.Set<Long> versions = new java.util.TreeSet<>();
            while (!pushing.isDone() || versions.isEmpty()) {
                long version = puller.pull(0, pulled).version();
                double d = PsTestSupport.maxAbsDiff(byVersion.get((int) version), pulled);
                assertTrue(d < 1e-6, "pulled version " + version + " but its parameters differ from that version's by " + d
                        + " (an answer mixing versions?)");
                versions.add(version);
            }
            pushing.get(60, TimeUnit.SECONDS);
            assertEquals(0, puller.badMessages(), "the puller dropped frames (chunks of another version in an answer?)");
            assertEquals(pushes, ps.version());
            assertTrue(versions.size() > 2, "the pulls must have seen several versions, saw " + versions);
            assertTrue(PsTestSupport.maxAbsDiff(byVersion.get(1), byVersion.get(2)) > 1e-4, "versions must differ for the check to bite");
            assertTrue(PsTestSupport.maxAbsDiff(byVersion.get(pushes), ps.copyState(5_000).params()) < 1e-6);
            assertEquals(0, ps.metrics().totalRejections());
        } finally {
            pool.shutdownNow();
        }
    }
}
