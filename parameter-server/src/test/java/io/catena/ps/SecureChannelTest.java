package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.Params;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import io.catena.ps.protocol.ReplayWindow;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The sealed channel end to end, through a real embedded MediaDriver (IPC): forged, replayed and foreign frames change
 * nothing on a running server and are counted by reason; frames reordered inside the replay window are accepted;
 * keys roll over mid-run; a second pull of one version by the same client is served.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SecureChannelTest {

    private static MessageType sendAndAwait(ParameterServerClient c, UnsafeBuffer frame, long corr) {
        assertTrue(c.sendRawFrame(frame, 0, frame.capacity(), 2_000));
        return c.awaitReply(corr, 5_000);
    }

    @Test
    void forgedReplayedAndForeignFramesChangeNothingAndAreCounted() {
        Path dir = PsTestSupport.testDir("secure");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp());
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0));
             ParameterServerClient admin = ParameterServerClient.connect(PsTestSupport.client(sctx, -1))) {
            Params before = ps.copyState(5_000).params();
            long job = KeySchedule.jobId(sctx.jobName());
            ChunkPlan plan = c.serverLayout().plan();
            int chunks = plan.chunks();
            byte[] chunk0 = PsTestSupport.floats(plan.chunkLength(0), 0.25f);

            // replayed: a genuine first chunk of a push, then the very same frame again
            UnsafeBuffer genuine = PsTestSupport.frame(c, MessageType.PUSH, job, 0, 0, 1, 0, 301, 0, chunks, chunk0);
            assertTrue(c.sendRawFrame(genuine, 0, genuine.capacity(), 2_000));
            assertEquals(MessageType.REJECT, sendAndAwait(c, genuine, 301));
            assertEquals(RejectReason.REPLAY, RejectReason.of(c.lastReplyFlags()));
            assertTrue(c.lastReplyText().contains("replayed"), c.lastReplyText());

            // forged: one bit of the header, then of the payload, flipped
            UnsafeBuffer f = PsTestSupport.frame(c, MessageType.PUSH, job, 0, 0, 1, 0, 302, 1, chunks,
                    PsTestSupport.floats(plan.chunkLength(1), 0.25f));
            assertEquals(MessageType.REJECT, sendAndAwait(c, PsTestSupport.tampered(f, 24), 302)); // the step field
            assertEquals(RejectReason.BAD_TAG, RejectReason.of(c.lastReplyFlags()));
            assertEquals(MessageType.REJECT, sendAndAwait(c, PsTestSupport.tampered(f, MessageHeader.LENGTH + 3), 302));
            assertEquals(RejectReason.BAD_TAG, RejectReason.of(c.lastReplyFlags()));

            // foreign: a frame sealed under another session's keys (the admin's), sent on this worker's session
            UnsafeBuffer foreign = PsTestSupport.frame(admin, MessageType.PUSH, job, 0, 0, 1, 0, 303, 0, chunks, chunk0);
            assertEquals(MessageType.REJECT, sendAndAwait(c, foreign, 303));
            assertEquals(RejectReason.BAD_TAG, RejectReason.of(c.lastReplyFlags()));

            // older than the replay window: sealed long ago, never sent
            List<UnsafeBuffer> metrics = new ArrayList<>();
            for (int i = 0; i <= ReplayWindow.SIZE + 5; i++) {
                metrics.add(PsTestSupport.frame(c, MessageType.METRICS, job, 0, 0, 0, 0, 400 + i, 0, 0, new byte[0]));
            }
            assertEquals(MessageType.ADMIN_REPLY, sendAndAwait(c, metrics.get(metrics.size() - 1), 400 + metrics.size() - 1));
            assertEquals(MessageType.REJECT, sendAndAwait(c, metrics.get(0), 400));
            assertEquals(RejectReason.REPLAY, RejectReason.of(c.lastReplyFlags()));
            assertTrue(c.lastReplyText().contains("older than the replay window"), c.lastReplyText());

            ServerMetrics m = ps.metrics();
            assertEquals(2, m.rejections(RejectReason.REPLAY));
            assertEquals(3, m.rejections(RejectReason.BAD_TAG));
            assertEquals(5, m.totalRejections());
            assertEquals(0, ps.version(), "nothing was applied");
            assertEquals(0.0, PsTestSupport.maxAbsDiff(before, ps.copyState(5_000).params()), "nothing changed");
            assertEquals(0, c.badMessages(), "the client saw only genuine frames");

            // reordered inside the window: a whole push sent with neighbouring chunks swapped is accepted and exact
            Params g = PsTestSupport.gradient(c.layout(), 0, 1);
            UnsafeBuffer gv = ParamsViews.view(g);
            UnsafeBuffer[] frames = new UnsafeBuffer[chunks];
            for (int i = 0; i < chunks; i++) {
                byte[] payload = new byte[plan.chunkLength(i) * 4];
                gv.getBytes((int) (plan.chunkOffset(i) * 4), payload);
                frames[i] = PsTestSupport.frame(c, MessageType.PUSH, job, 0, 0, 1, 0, 310, i, chunks, payload);
            }
            for (int i = 0; i < chunks; i += 2) {
                int first = i + 1 < chunks ? i + 1 : i;
                assertTrue(c.sendRawFrame(frames[first], 0, frames[first].capacity(), 2_000));
                if (first != i) {
                    assertTrue(c.sendRawFrame(frames[i], 0, frames[i].capacity(), 2_000));
                }
            }
            assertEquals(MessageType.PUSH_ACK, c.awaitReply(310, 5_000));
            assertEquals(1, ps.version());
            Params expected = PsTestSupport.reference(PsTestSupport.freshState(7), 1, 1);
            assertEquals(0.0, PsTestSupport.maxAbsDiff(expected, ps.copyState(5_000).params()), 1e-6);

            // the same version pulled twice by one client: the second answer cannot reuse the broadcast frames it saw
            Params p1 = new Params(c.layout(), DataType.FLOAT);
            Params p2 = new Params(c.layout(), DataType.FLOAT);
            assertEquals(1, c.pull(1, p1, 5_000).version());
            assertEquals(1, c.pull(1, p2, 5_000).version());
            assertEquals(1, admin.pullAll(1, new Params(c.layout(), DataType.FLOAT), 5_000).version());
            assertEquals(0.0, PsTestSupport.maxAbsDiff(p1, p2));
            assertEquals(0.0, PsTestSupport.maxAbsDiff(expected, p1), 1e-6);
            assertEquals(0, c.badMessages());
            assertEquals(0, admin.badMessages());
            assertEquals(5, ps.metrics().totalRejections());
        }
    }

    @Test
    void keysRollOverMidRunAndWorkersStayExact() {
        Path dir = PsTestSupport.testDir("rekey");
        // 4 frames per key: every push and pull crosses several generations on every direction and the broadcast
        ParameterServer.Context sctx = PsTestSupport.server(dir, 2, SyncPolicy.bsp()).rekeyShift(2);
        List<ParameterServerClient> clients = new ArrayList<>();
        try (ParameterServer ps = ParameterServer.launch(sctx)) {
            for (int w = 0; w < 2; w++) {
                clients.add(ParameterServerClient.connect(PsTestSupport.client(sctx, w)));
            }
            List<Params> params = new ArrayList<>();
            for (ParameterServerClient c : clients) {
                Params p = new Params(c.layout(), DataType.FLOAT);
                c.pull(0, p, 5_000);
                params.add(p);
            }
            for (long step = 1; step <= 3; step++) {
                long s = step;
                List<Thread> ts = new ArrayList<>();
                List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
                for (int w = 0; w < 2; w++) {
                    int worker = w;
                    Thread t = new Thread(() -> {
                        try {
                            ParameterServerClient c = clients.get(worker);
                            assertFalse(c.push(s, s - 1, PsTestSupport.gradient(c.layout(), worker, s)).duplicate());
                            assertEquals(s, c.pull(s, params.get(worker), 10_000).version());
                        } catch (Throwable e) {
                            errors.add(e);
                        }
                    });
                    t.start();
                    ts.add(t);
                }
                for (Thread t : ts) {
                    t.join(60_000);
                }
                assertTrue(errors.isEmpty(), errors.toString());
            }
            Params expected = PsTestSupport.reference(PsTestSupport.freshState(7), 2, 3);
            for (Params p : params) {
                assertEquals(0.0, PsTestSupport.maxAbsDiff(expected, p), 1e-5);
            }
            assertEquals(0, ps.metrics().totalRejections());
            for (ParameterServerClient c : clients) {
                assertEquals(0, c.badMessages());
            }
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        } finally {
            clients.forEach(ParameterServerClient::close);
        }
    }
}
