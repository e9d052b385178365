package io.catena.ps.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

class MessageHeaderTest {

    private static MessageHeader header(UnsafeBuffer b, int payload) {
        return new MessageHeader().wrap(b, 0).reset(MessageType.PUSH).payloadLength(payload).keyKind(MessageHeader.KEY_SESSION)
                .sequence(3);
    }

    @Test
    void shouldWriteAndReadEveryFieldInPlace() {
        UnsafeBuffer b = new UnsafeBuffer(new byte[MessageHeader.OVERHEAD + 8]);
        MessageHeader h = header(b, 8).flags(5).jobId(-7).epoch(2).workerId(1).step(9).version(8).correlationId(6).chunkIndex(4)
                .chunkCount(11);
        assertEquals(72, MessageHeader.LENGTH);
        assertEquals(88, MessageHeader.OVERHEAD);
        assertEquals(MessageType.PUSH, h.type());
        assertEquals(5, h.flags());
        assertEquals(-7, h.jobId());
        assertEquals(2, h.epoch());
        assertEquals(1, h.workerId());
        assertEquals(9, h.step());
        assertEquals(8, h.version());
        assertEquals(6, h.correlationId());
        assertEquals(4, h.chunkIndex());
        assertEquals(11, h.chunkCount());
        assertEquals(3, h.sequence());
        assertEquals(MessageHeader.KEY_SESSION, h.keyKind());
        assertEquals(MessageHeader.LENGTH, h.payloadOffset());
        assertNull(h.validate(b.capacity()));
    }

    @Test
    void shouldNameWhatIsWrongWithAMalformedFrame() {
        UnsafeBuffer b = new UnsafeBuffer(new byte[MessageHeader.OVERHEAD + 8]);
        MessageHeader h = header(b, 8);
        assertTrue(h.validate(MessageHeader.OVERHEAD - 1).contains("shorter"));
        assertTrue(h.validate(b.capacity() - 1).contains("payload length"));
        h.keyKind(3);
        assertTrue(h.validate(b.capacity()).contains("key kind"));
        h.keyKind(MessageHeader.KEY_SESSION).sequence(-1);
        assertTrue(h.validate(b.capacity()).contains("sequence"));
        h.sequence(0);
        b.putByte(2, (byte) 3);
        assertTrue(h.validate(b.capacity()).contains("protocol version 3, this build speaks 4"));
        header(b, 8);
        b.putByte(3, (byte) 99);
        assertTrue(h.validate(b.capacity()).contains("unknown message type"));
        header(b, 8);
        b.putShort(0, (short) 1);
        assertTrue(h.validate(b.capacity()).contains("magic"));
    }

    @Test
    void typesAndReasonsRoundTripTheirCodes() {
        for (MessageType t : MessageType.values()) {
            assertEquals(t, MessageType.of(t.code));
        }
        for (RejectReason r : RejectReason.values()) {
            assertEquals(r, RejectReason.of(r.code));
        }
        assertNull(MessageType.of(0));
        assertNull(RejectReason.of(99));
    }

    @Test
    void payloadBytesCopiesThePayloadOfTheWrappedFrame() {
        UnsafeBuffer b = new UnsafeBuffer(new byte[4 + MessageHeader.OVERHEAD + 3]);
        MessageHeader h = new MessageHeader().wrap(b, 4).reset(MessageType.GROW).payloadLength(3);
        b.putBytes(h.payloadOffset(), new byte[] {7, 8, 9});
        org.junit.jupiter.api.Assertions.assertArrayEquals(new byte[] {7, 8, 9}, h.payloadBytes());
        assertEquals(4 + MessageHeader.LENGTH, h.payloadOffset());
    }
}
