package io.catena.ps.protocol;

import java.nio.ByteOrder;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

/**
 * Flyweight over the 72-byte frame header (see the package documentation for the layout). Wrap a
 * buffer at an offset, then read or write fields in place; nothing is allocated or copied. The header travels in
 * clear and is the AEAD's associated data: {@link Framer} authenticates it together with the sealed payload.
 */
public final class MessageHeader {
    public static final short MAGIC = (short) 0xCA7E;
    /**
     * 4: handshake (HELLO, CHALLENGE, PROOF) with per-session keys, every later frame sealed with AES-256-GCM: the header
     * grew from 64 to 72 bytes (key kind at 60, sequence number at 64) and the 16-byte GCM tag replaced the 32-byte MAC.
     * 3: pipeline stages (the layout JSON says which stage owns each shard; a stage's worker pushes and by default
     * pulls only its stage's chunks, chunk indices stay those of the whole plan). 2: the MAC covers payload then
     * header (1: header then payload), so that pulls hash each chunk once per version.
     */
    public static final int PROTOCOL_VERSION = 4;
    public static final int LENGTH = 72;
    /** The AES-GCM tag (and the truncated HMAC-SHA256 of handshake frames) at the end of every frame. */
    public static final int TAG_LENGTH = 16;
    /** Bytes a frame needs besides its payload. */
    public static final int OVERHEAD = LENGTH + TAG_LENGTH;

    /** Key kinds (the field at offset 60): how the frame is authenticated. */
    public static final int KEY_HANDSHAKE = 0;
    /** The session's key of the frame's direction (client to server, or server to that client). */
    public static final int KEY_SESSION = 1;
    /** The server's broadcast key (parameter chunks sealed once per version for every worker). */
    public static final int KEY_BROADCAST = 2;

    static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;
    private static final int MAGIC_OFFSET = 0;
    private static final int VERSION_OFFSET = 2;
    private static final int TYPE_OFFSET = 3;
    private static final int FLAGS_OFFSET = 4;
    private static final int JOB_OFFSET = 8;
    private static final int EPOCH_OFFSET = 16;
    private static final int WORKER_OFFSET = 20;
    private static final int STEP_OFFSET = 24;
    private static final int MODEL_VERSION_OFFSET = 32;
    private static final int CORRELATION_OFFSET = 40;
    private static final int CHUNK_INDEX_OFFSET = 48;
    private static final int CHUNK_COUNT_OFFSET = 52;
    private static final int PAYLOAD_LENGTH_OFFSET = 56;
    private static final int KEY_KIND_OFFSET = 60;
    private static final int SEQUENCE_OFFSET = 64;

    private DirectBuffer buffer;
    private MutableDirectBuffer mutable;
    private int offset;

    public MessageHeader wrap(DirectBuffer buffer, int offset) {
        this.buffer = buffer;
        this.mutable = buffer instanceof MutableDirectBuffer m ? m : null;
        this.offset = offset;
        return this;
    }

    public DirectBuffer buffer() {
        return buffer;
    }

    public int offset() {
        return offset;
    }

    /** Writes magic, version, type and zeroes every other field. */
    public MessageHeader reset(MessageType type) {
        mutable.setMemory(offset, LENGTH, (byte) 0);
        mutable.putShort(offset + MAGIC_OFFSET, MAGIC, ORDER);
        mutable.putByte(offset + VERSION_OFFSET, (byte) PROTOCOL_VERSION);
        mutable.putByte(offset + TYPE_OFFSET, (byte) type.code);
        return this;
    }

    public short magic() {
        return buffer.getShort(offset + MAGIC_OFFSET, ORDER);
    }

    public int protocolVersion() {
        return buffer.getByte(offset + VERSION_OFFSET) & 0xFF;
    }

    public int typeCode() {
        return buffer.getByte(offset + TYPE_OFFSET) & 0xFF;
    }

    public MessageType type() {
        return MessageType.of(typeCode());
    }

    public int flags() {
        return buffer.getInt(offset + FLAGS_OFFSET, ORDER);
    }

    public MessageHeader flags(int v) {
        mutable.putInt(offset + FLAGS_OFFSET, v, ORDER);
        return this;
    }

    public long jobId() {
        return buffer.getLong(offset + JOB_OFFSET, ORDER);
    }

    public MessageHeader jobId(long v) {
        mutable.putLong(offset + JOB_OFFSET, v, ORDER);
        return this;
    }

    public int epoch() {
        return buffer.getInt(offset + EPOCH_OFFSET, ORDER);
    }

    public MessageHeader epoch(int v) {
        mutable.putInt(offset + EPOCH_OFFSET, v, ORDER);
        return this;
    }

    public int workerId() {
        return buffer.getInt(offset + WORKER_OFFSET, ORDER);
    }

    public MessageHeader workerId(int v) {
        mutable.putInt(offset + WORKER_OFFSET, v, ORDER);
        return this;
    }

    public long step() {
        return buffer.getLong(offset + STEP_OFFSET, ORDER);
    }

    public MessageHeader step(long v) {
        mutable.putLong(offset + STEP_OFFSET, v, ORDER);
        return this;
    }

    public long version() {
        return buffer.getLong(offset + MODEL_VERSION_OFFSET, ORDER);
    }

    public MessageHeader version(long v) {
        mutable.putLong(offset + MODEL_VERSION_OFFSET, v, ORDER);
        return this;
    }

    public long correlationId() {
        return buffer.getLong(offset + CORRELATION_OFFSET, ORDER);
    }

    public MessageHeader correlationId(long v) {
        mutable.putLong(offset + CORRELATION_OFFSET, v, ORDER);
        return this;
    }

    public int chunkIndex() {
        return buffer.getInt(offset + CHUNK_INDEX_OFFSET, ORDER);
    }

    public MessageHeader chunkIndex(int v) {
        mutable.putInt(offset + CHUNK_INDEX_OFFSET, v, ORDER);
        return this;
    }

    public int chunkCount() {
        return buffer.getInt(offset + CHUNK_COUNT_OFFSET, ORDER);
    }

    public MessageHeader chunkCount(int v) {
        mutable.putInt(offset + CHUNK_COUNT_OFFSET, v, ORDER);
        return this;
    }

    public int payloadLength() {
        return buffer.getInt(offset + PAYLOAD_LENGTH_OFFSET, ORDER);
    }

    public MessageHeader payloadLength(int v) {
        mutable.putInt(offset + PAYLOAD_LENGTH_OFFSET, v, ORDER);
        return this;
    }

    public int keyKind() {
        return buffer.getInt(offset + KEY_KIND_OFFSET, ORDER);
    }

    public MessageHeader keyKind(int v) {
        mutable.putInt(offset + KEY_KIND_OFFSET, v, ORDER);
        return this;
    }

    /** The sender's frame counter on the frame's key (part of the AES-GCM nonce; 0 for handshake frames). */
    public long sequence() {
        return buffer.getLong(offset + SEQUENCE_OFFSET, ORDER);
    }

    public MessageHeader sequence(long v) {
        mutable.putLong(offset + SEQUENCE_OFFSET, v, ORDER);
        return this;
    }

    /** Offset of the payload in the wrapped buffer. */
    public int payloadOffset() {
        return offset + LENGTH;
    }

    /** A copy of the payload in the wrapped buffer (e.g. an opened request's JSON). */
    public byte[] payloadBytes() {
        byte[] b = new byte[payloadLength()];
        buffer.getBytes(payloadOffset(), b);
        return b;
    }

    /**
     * Structural check of a received frame of {@code length} bytes: null when it is well formed, otherwise what is wrong.
     */
    public String validate(int length) {
        if (length < OVERHEAD) {
            return "frame of " + length + " bytes is shorter than the " + LENGTH + "-byte header + " + TAG_LENGTH + "-byte tag";
        }
        if (magic() != MAGIC) {
            return String.format("magic 0x%04X, expected 0x%04X", magic() & 0xFFFF, MAGIC & 0xFFFF);
        }
        if (protocolVersion() != PROTOCOL_VERSION) {
            return "protocol version " + protocolVersion() + ", this build speaks " + PROTOCOL_VERSION
                    + " (run the same Catena version on server and workers)";
        }
        if (type() == null) {
            return "unknown message type " + typeCode();
        }
        int p = payloadLength();
        if (p < 0 || p != length - OVERHEAD) {
            return "payload length field says " + p + " bytes but the frame carries " + (length - OVERHEAD);
        }
        if (keyKind() < KEY_HANDSHAKE || keyKind() > KEY_BROADCAST) {
            return "key kind " + keyKind() + ", expected 0 (handshake), 1 (session) or 2 (broadcast)";
        }
        if (keyKind() != KEY_HANDSHAKE && sequence() < 0) {
            return "sequence number " + sequence() + " is negative";
        }
        return null;
    }
}
