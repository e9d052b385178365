package io.catena.ps.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.DirectBufferVector;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

/** Seal and open through the one framer: round trips, and tampered, truncated, replayed and reordered frames. */
class FramerTest {
    static final byte[] SECRET = KeyScheduleTest.SECRET;

    private final KeySchedule keys = KeySchedule.session(SECRET, 99, KeySchedule.randomNonce(), KeySchedule.randomNonce(), 24);
    private final Framer sender = new Framer(KeySchedule.handshakeKey(SECRET));
    private final Framer receiver = new Framer(KeySchedule.handshakeKey(SECRET));
    private final TrafficKey send = keys.traffic(KeySchedule.Direction.CLIENT_TO_SERVER);
    private final TrafficKey recv = keys.traffic(KeySchedule.Direction.CLIENT_TO_SERVER);

    private static UnsafeBuffer payload(int n, int seed) {
        UnsafeBuffer b = new UnsafeBuffer(ByteBuffer.allocateDirect(n));
        for (int i = 0; i < n; i++) {
            b.putByte(i, (byte) (i * 31 + seed));
        }
        return b;
    }

    /** A contiguous frame sealed under {@code key} (null: handshake key). */
    private UnsafeBuffer frame(TrafficKey key, int n, int seed) {
        UnsafeBuffer f = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.OVERHEAD + n));
        sender.header(MessageType.PUSH).jobId(99).workerId(1).step(5).version(4).correlationId(77).chunkIndex(seed).chunkCount(9);
        assertEquals(MessageHeader.OVERHEAD + n, sender.sealInto(key, f, 0, payload(n, seed), 0, n));
        assertNull(new MessageHeader().wrap(f, 0).validate(f.capacity()));
        return f;
    }

    private static UnsafeBuffer flip(UnsafeBuffer f, int at) {
        UnsafeBuffer c = new UnsafeBuffer(ByteBuffer.allocateDirect(f.capacity()));
        c.putBytes(0, f, 0, f.capacity());
        c.putByte(at, (byte) (c.getByte(at) ^ 1));
        return c;
    }

    private static boolean samePayload(UnsafeBuffer a, int aOff, UnsafeBuffer b, int bOff, int n) {
        for (int i = 0; i < n; i++) {
            if (a.getByte(aOff + i) != b.getByte(bOff + i)) {
                return false;
            }
        }
        return true;
    }

    @Test
    void shouldSealAndOpenAndEncryptThePayloadButNotTheHeader() {
        int n = 100_000;
        UnsafeBuffer f = frame(send, n, 3);
        MessageHeader h = new MessageHeader().wrap(f, 0);
        assertEquals(MessageHeader.KEY_SESSION, h.keyKind());
        assertEquals(0, h.sequence());
        assertEquals(77, h.correlationId(), "the header travels in clear");
        assertTrue(!samePayload(f, MessageHeader.LENGTH, payload(n, 3), 0, 64), "the payload does not");
        UnsafeBuffer dst = new UnsafeBuffer(ByteBuffer.allocateDirect(n + 10));
        assertEquals(Framer.Result.OK, receiver.open(recv, f, 0, f.capacity(), dst, 10));
        assertTrue(samePayload(dst, 10, payload(n, 3), 0, n));
        // the scratch variant gives header and payload
        TrafficKey recv2 = keys.traffic(KeySchedule.Direction.CLIENT_TO_SERVER);
        assertEquals(Framer.Result.OK, receiver.open(recv2, f, 0, f.capacity()));
        assertEquals(77, new MessageHeader().wrap(receiver.opened(), 0).correlationId());
        assertTrue(samePayload(receiver.opened(), MessageHeader.LENGTH, payload(n, 3), 0, n));
    }

    @Test
    void shouldOfferGatherVectorsOfTheSameFrame() {
        int n = 5000;
        sender.header(MessageType.PUSH).jobId(99).correlationId(1);
        DirectBufferVector[] v = sender.seal(send, payload(n, 1), 0, n);
        UnsafeBuffer f = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.OVERHEAD + n));
        int at = 0;
        for (DirectBufferVector x : v) {
            f.putBytes(at, x.buffer(), x.offset(), x.length());
            at += x.length();
        }
        assertEquals(f.capacity(), at);
        UnsafeBuffer dst = new UnsafeBuffer(ByteBuffer.allocateDirect(n));
        assertEquals(Framer.Result.OK, receiver.open(recv, f, 0, at, dst, 0));
        assertTrue(samePayload(dst, 0, payload(n, 1), 0, n));
        // empty payload: header + tag only
        sender.header(MessageType.PULL_BEGIN);
        DirectBufferVector[] e = sender.seal(send, null, 0, 0);
        assertEquals(MessageHeader.TAG_LENGTH, e[1].length());
    }

    @Test
    void shouldRefuseTamperedHeaderPayloadAndTagWithoutWritingTheDestinationOrMovingTheWindow() {
        int n = 4096;
        UnsafeBuffer f = frame(send, n, 7);
        UnsafeBuffer dst = new UnsafeBuffer(ByteBuffer.allocateDirect(n));
        dst.setMemory(0, n, (byte) 0x5A);
        for (int at : new int[] {8, 40, 48, MessageHeader.LENGTH, MessageHeader.LENGTH + n / 2, f.capacity() - 1}) {
            assertEquals(Framer.Result.BAD_TAG, receiver.open(recv, flip(f, at), 0, f.capacity(), dst, 0), "byte " + at);
            for (int i = 0; i < n; i++) {
                assertEquals((byte) 0x5A, dst.getByte(i), "a forged frame wrote the destination at " + i);
            }
        }
        assertEquals(-1, recv.window().highest(), "forged frames do not move the replay window");
        assertEquals(Framer.Result.OK, receiver.open(recv, f, 0, f.capacity(), dst, 0), "the genuine frame still opens");
    }

    @Test
    void shouldRefuseTruncatedFrames() {
        int n = 4096;
        UnsafeBuffer f = frame(send, n, 2);
        MessageHeader h = new MessageHeader().wrap(f, 0);
        assertNotNull(h.validate(f.capacity() - 1), "the payload length no longer matches the frame");
        assertNotNull(h.validate(MessageHeader.LENGTH + 3), "shorter than header + tag");
        // a truncation that also rewrites the payload length is caught by the tag (the header is authenticated)
        UnsafeBuffer cut = new UnsafeBuffer(ByteBuffer.allocateDirect(f.capacity() - 100));
        cut.putBytes(0, f, 0, cut.capacity());
        new MessageHeader().wrap(cut, 0).payloadLength(n - 100);
        assertNull(new MessageHeader().wrap(cut, 0).validate(cut.capacity()));
        assertEquals(Framer.Result.BAD_TAG, receiver.open(recv, cut, 0, cut.capacity()));
    }

    @Test
    void shouldRefuseReplaysAndAcceptReorderingInsideTheWindowOnly() {
        List<UnsafeBuffer> frames = new ArrayList<>();
        for (int i = 0; i < ReplayWindow.SIZE + 20; i++) {
            frames.add(frame(send, 64, i));
        }
        UnsafeBuffer first = frames.get(0);
        assertEquals(Framer.Result.OK, receiver.open(recv, first, 0, first.capacity()));
        assertEquals(Framer.Result.REPLAY, receiver.open(recv, first, 0, first.capacity()), "replayed");
        // 10 then 5..9 then 1..4: reordered inside the window, each accepted once
        UnsafeBuffer ten = frames.get(10);
        assertEquals(Framer.Result.OK, receiver.open(recv, ten, 0, ten.capacity()));
        for (int i = 9; i >= 1; i--) {
            UnsafeBuffer f = frames.get(i);
            assertEquals(Framer.Result.OK, receiver.open(recv, f, 0, f.capacity()), "reordered " + i);
            assertEquals(i, new MessageHeader().wrap(receiver.opened(), 0).chunkIndex());
            assertEquals(Framer.Result.REPLAY, receiver.open(recv, f, 0, f.capacity()));
        }
        UnsafeBuffer last = frames.get(frames.size() - 1);
        assertEquals(Framer.Result.OK, receiver.open(recv, last, 0, last.capacity()));
        UnsafeBuffer old = frames.get(11); // never seen, but more than SIZE behind the last: refused
        assertEquals(Framer.Result.REPLAY, receiver.open(recv, old, 0, old.capacity()));
        // a forged frame that reuses a seen sequence number is a bad tag, not a replay
        assertEquals(Framer.Result.BAD_TAG, receiver.open(recv, flip(first, MessageHeader.LENGTH + 1), 0, first.capacity()));
        // a replay never writes the destination (it may hold newer data by now)
        UnsafeBuffer dst = new UnsafeBuffer(ByteBuffer.allocateDirect(64));
        assertEquals(Framer.Result.REPLAY, receiver.open(recv, ten, 0, ten.capacity(), dst, 0));
        assertEquals(0L, dst.getLong(0));
    }

    @Test
    void shouldRefuseAFrameOfAnotherSessionOrDirection() {
        UnsafeBuffer f = frame(send, 256, 1);
        KeySchedule other = KeySchedule.session(SECRET, 99, KeySchedule.randomNonce(), KeySchedule.randomNonce(), 24);
        assertEquals(Framer.Result.BAD_TAG, receiver.open(other.traffic(KeySchedule.Direction.CLIENT_TO_SERVER), f, 0, f.capacity()));
        assertEquals(Framer.Result.BAD_TAG, receiver.open(keys.traffic(KeySchedule.Direction.SERVER_TO_CLIENT), f, 0, f.capacity()),
                "a client's frame reflected back to it");
    }

    @Test
    void shouldRekeyEveryGenerationAndStillOpen() {
        KeySchedule k = KeySchedule.session(SECRET, 5, KeySchedule.randomNonce(), KeySchedule.randomNonce(), 2);
        TrafficKey s = k.traffic(KeySchedule.Direction.BROADCAST);
        TrafficKey r = k.traffic(KeySchedule.Direction.BROADCAST);
        for (int i = 0; i < 20; i++) {
            UnsafeBuffer f = frame(s, 300, i);
            assertEquals(MessageHeader.KEY_BROADCAST, new MessageHeader().wrap(f, 0).keyKind());
            assertEquals(Framer.Result.OK, receiver.open(r, f, 0, f.capacity()), "frame " + i);
        }
        assertEquals(5, s.derivations(), "20 frames at 4 per key");
        assertEquals(5, r.derivations());
    }

    @Test
    void shouldAuthenticateHandshakeFramesWithTheSecretsHandshakeKey() {
        UnsafeBuffer f = frame(null, 100, 1);
        MessageHeader h = new MessageHeader().wrap(f, 0);
        assertEquals(MessageHeader.KEY_HANDSHAKE, h.keyKind());
        assertTrue(samePayload(f, MessageHeader.LENGTH, payload(100, 1), 0, 100), "handshake payloads travel in clear");
        assertEquals(Framer.Result.OK, receiver.verifyHandshake(f, 0, f.capacity()));
        assertEquals(Framer.Result.OK, receiver.open(null, f, 0, f.capacity()));
        assertEquals(Framer.Result.BAD_TAG, receiver.verifyHandshake(flip(f, 30), 0, f.capacity()));
        assertEquals(Framer.Result.BAD_TAG, receiver.verifyHandshake(flip(f, MessageHeader.LENGTH + 50), 0, f.capacity()));
        Framer otherSecret = new Framer(KeySchedule.handshakeKey("another-secret-0123456789".getBytes()));
        assertEquals(Framer.Result.BAD_TAG, otherSecret.verifyHandshake(f, 0, f.capacity()));
    }

    @Test
    void shouldOpenFromAndIntoHeapBuffers() {
        UnsafeBuffer f = frame(send, 1000, 4);
        byte[] heap = new byte[f.capacity() + 5];
        f.getBytes(0, heap, 5, f.capacity());
        UnsafeBuffer dst = new UnsafeBuffer(new byte[1000]);
        assertEquals(Framer.Result.OK, receiver.open(recv, new UnsafeBuffer(heap), 5, f.capacity(), dst, 0));
        assertTrue(samePayload(dst, 0, payload(1000, 4), 0, 1000));
    }
}
