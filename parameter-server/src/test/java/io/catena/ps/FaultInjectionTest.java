package io.catena.ps;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.Params;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.nd4j.linalg.api.buffer.DataType;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class FaultInjectionTest {

    /** Sends a hand-made frame on the client's session and returns the reason the server rejected it. */
    private static RejectReason sendAndAwaitReject(ParameterServerClient c, UnsafeBuffer frame, long corr) {
        assertTrue(c.sendRawFrame(frame, 0, frame.capacity(), 2_000));
        MessageType t = c.awaitReply(corr, 5_000);
        assertEquals(MessageType.REJECT, t, "expected a REJECT for correlation " + corr);
        return RejectReason.of(c.lastReplyFlags());
    }

    @Test
    void shouldRejectAndCountForgedAndMalformedMessagesAndKeepServing() {
        Path dir = PsTestSupport.testDir("faults");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp());
        try (ParameterServer ps = ParameterServer.launch(sctx);
             ParameterServerClient c = ParameterServerClient.connect(PsTestSupport.client(sctx, 0))) {
            Params before = ps.copyState(5_000).params();
            long job = KeySchedule.jobId(sctx.jobName());
            int chunks = c.serverLayout().plan().chunks();
            int len0 = c.serverLayout().plan().chunkLength(0);
            byte[] good = PsTestSupport.floats(len0, 0.01f);

            // a modified frame (one bit of its payload flipped): the AES-GCM tag does not verify
            assertEquals(RejectReason.BAD_TAG, sendAndAwaitReject(c, PsTestSupport.tampered(PsTestSupport.frame(c, MessageType.PUSH, job,
                    0, 0, 1, 0, 101, 0, chunks, good), MessageHeader.LENGTH + 5), 101));
            assertEquals(RejectReason.UNKNOWN_JOB, sendAndAwaitReject(c, PsTestSupport.frame(c, MessageType.PUSH, job + 1, 0, 0, 1, 0,
                    102, 0, chunks, good), 102));
            assertEquals(RejectReason.STALE_EPOCH, sendAndAwaitReject(c, PsTestSupport.frame(c, MessageType.PUSH, job, 5, 0, 1, 0, 103,
                    0, chunks, good), 103));
            assertEquals(RejectReason.BAD_CHUNK, sendAndAwaitReject(c, PsTestSupport.frame(c, MessageType.PUSH, job, 0, 0, 1, 0, 104, 0,
                    chunks + 1, good), 104));
            assertEquals(RejectReason.BAD_CHUNK, sendAndAwaitReject(c, PsTestSupport.frame(c, MessageType.PUSH, job, 0, 0, 1, 0, 105, 0,
                    chunks, PsTestSupport.floats(len0 - 1, 0.01f)), 105));
            assertEquals(RejectReason.UNKNOWN_WORKER, sendAndAwaitReject(c, PsTestSupport.frame(c, MessageType.PUSH, job, 0, 3, 1, 0,
                    106, 0, chunks, good), 106));
            assertEquals(RejectReason.OVERSIZED, sendAndAwaitReject(c, PsTestSupport.frame(c, MessageType.PUSH, job, 0, 0, 1, 0, 107, 0,
                    chunks, new byte[20_000]), 107));
            UnsafeBuffer malformed = PsTestSupport.frame(c, MessageType.PUSH, job, 0, 0, 1, 0, 108, 0, chunks, good);
            malformed.putInt(56, 3, java.nio.ByteOrder.LITTLE_ENDIAN); // payload length that does not match the frame
            assertEquals(RejectReason.MALFORMED, sendAndAwaitReject(c, malformed, 108));

            for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
                Params g = PsTestSupport.gradient(c.layout(), 0, 1);
                g.buf().set(123, bad);
                RequestRejectedException e = assertThrows(RequestRejectedException.class, () -> c.push(1, 0, g));
                assertEquals(RejectReason.NON_FINITE, e.reason());
                assertTrue(e.getMessage().contains("element 123"), e.getMessage());
            }

            ServerMetrics m = ps.metrics();
            assertEquals(1, m.rejections(RejectReason.BAD_TAG));
            assertEquals(1, m.rejections(RejectReason.UNKNOWN_JOB));
            assertEquals(1, m.rejections(RejectReason.STALE_EPOCH));
            assertEquals(2, m.rejections(RejectReason.BAD_CHUNK));
            assertEquals(1, m.rejections(RejectReason.UNKNOWN_WORKER));
            assertEquals(1, m.rejections(RejectReason.OVERSIZED));
            assertEquals(1, m.rejections(RejectReason.MALFORMED));
            assertEquals(2, m.rejections(RejectReason.NON_FINITE));
            assertEquals(0, ps.version());
            Params after = ps.copyState(5_000).params();
            assertEquals(0.0, PsTestSupport.maxAbsDiff(before, after), "rejected messages must not change any parameter");

            // the server keeps serving: a good push and pull work
            Params g = PsTestSupport.gradient(c.layout(), 0, 1);
            assertFalse(c.push(1, 0, g).duplicate());
            Params p = new Params(c.layout(), DataType.FLOAT);
            assertEquals(1, c.pull(1, p, 5_000).version());
            for (int i = 0; i < p.layout().size(); i++) {
                assertTrue(Float.isFinite((float) p.buf().get(i)));
            }
        }
    }

    @Test
    void shouldNotConnectWithAWrongSecretAndSaySo() {
        Path dir = PsTestSupport.testDir("wrongsecret");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp());
        try (ParameterServer ps = ParameterServer.launch(sctx)) {
            ParameterServerClient.Context cctx = PsTestSupport.client(sctx, 0)
                    .secret("not-the-job-secret-at-all".getBytes(StandardCharsets.UTF_8)).connectTimeoutMs(1_500);
            ParameterServerTimeoutException e = assertThrows(ParameterServerTimeoutException.class,
                    () -> ParameterServerClient.connect(cctx));
            assertTrue(e.getMessage().contains("secret"), e.getMessage());
            assertTrue(ps.metrics().rejections(RejectReason.HANDSHAKE_FAILED) >= 1);
        }
    }

    @Test
    void shouldRefuseAClientOfAnotherJob() {
        Path dir = PsTestSupport.testDir("otherjob");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp());
        try (ParameterServer ps = ParameterServer.launch(sctx)) {
            RequestRejectedException e = assertThrows(RequestRejectedException.class,
                    () -> ParameterServerClient.connect(PsTestSupport.client(sctx, 0).jobName("some-other-job")));
            assertEquals(RejectReason.UNKNOWN_JOB, e.reason());
            assertTrue(e.getMessage().contains(sctx.jobName()), e.getMessage());
        }
    }

    @Test
    void shouldTimeOutConnectWhenNoServerRunsAndSayWhatToCheck() {
        Path dir = PsTestSupport.testDir("noserver");
        ParameterServerClient.Context cctx = new ParameterServerClient.Context().jobName("nobody").secret(PsTestSupport.SECRET)
                .aeronDirectoryName(dir.resolve("aeron").toString()).termLength(PsTestSupport.TERM)
                .channel("aeron:udp?endpoint=127.0.0.1:40999").udpChannelParams("").responseHost("127.0.0.1")
                .connectTimeoutMs(1_000);
        long t0 = System.nanoTime();
        ParameterServerTimeoutException e = assertThrows(ParameterServerTimeoutException.class,
                () -> ParameterServerClient.connect(cctx));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(20));
        assertTrue(e.getMessage().contains("no parameter server answered on aeron:udp?endpoint=127.0.0.1:40999"), e.getMessage());
        assertTrue(e.getMessage().contains("never connected"), e.getMessage());
        assertTrue(e.getMessage().contains(Configuration.CHANNEL_PROP), e.getMessage());
    }

    @Test
    void shouldFailFastNamingTheSettingWhenTheAeronDirectoryIsUnwritable() throws Exception {
        Path dir = PsTestSupport.testDir("unwritable");
        Path file = Files.writeString(dir.resolve("a-file"), "not a directory");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp())
                .aeronDirectoryName(file.resolve("sub").resolve("aeron").toString());
        ConfigurationException e = assertThrows(ConfigurationException.class, () -> ParameterServer.launch(sctx));
        assertEquals(Configuration.AERON_DIR_PROP, e.property());
        assertTrue(e.getMessage().contains("writable"), e.getMessage());
    }

    @Test
    void shouldFailFastNamingTheTermLengthWhenSharedMemoryIsTooSmall() {
        Path dir = PsTestSupport.testDir("smallshm");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 100_000, SyncPolicy.bsp()).maxClients(200_000)
                .termLength(1024 * 1024 * 1024);
        ConfigurationException e = assertThrows(ConfigurationException.class, () -> ParameterServer.launch(sctx));
        assertEquals(Configuration.TERM_LENGTH_PROP, e.property());
        assertTrue(e.getMessage().contains("/dev/shm") && e.getMessage().contains("MiB"), e.getMessage());
    }

    @Test
    void shouldRefuseToStartWithoutASecret() {
        Path dir = PsTestSupport.testDir("nosecret");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp()).secret(null);
        ConfigurationException e = assertThrows(ConfigurationException.class, () -> ParameterServer.launch(sctx));
        assertTrue(e.property().startsWith(Configuration.SECRET_FILE_PROP), e.getMessage());
    }

    @Test
    void shouldRejectGrowthThatChainModelRefuses() {
        Path dir = PsTestSupport.testDir("badgrow");
        ParameterServer.Context sctx = PsTestSupport.server(dir, 1, SyncPolicy.bsp());
        try (ParameterServer ps = ParameterServer.launch(sctx)) {
            RequestRejectedException e = assertThrows(RequestRejectedException.class, () -> ps.grow(List.of(0), false, null, 5_000));
            assertEquals(RejectReason.BAD_REQUEST, e.reason());
            assertEquals(0, ps.epoch());
        }
    }
}
