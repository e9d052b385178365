package io.catena.ps.protocol;

import io.aeron.DirectBufferVector;
import java.nio.ByteBuffer;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The one framer of the protocol, used by server and client alike: writes the header of the next frame, seals it
 * and hands back the gather vectors to offer, and opens (authenticates, checks for replay, decrypts) received frames.
 * Not thread-safe: one per sending/receiving thread (it holds one AES-GCM {@link Cipher} per way and scratch buffers).
 *
 * <p>Frames under a session or broadcast key ({@link TrafficKey}) are AES-256-GCM: the 72-byte header is the
 * associated data (authenticated, in clear), the payload is encrypted, the 16-byte tag follows it; the nonce is the
 * direction's salt and the header's sequence number. Handshake frames (key {@code null}) carry their payload in clear
 * with a 16-byte HMAC-SHA256 (truncated) of header and payload under the handshake key.
 *
 * <p>Opening decrypts straight into the caller's destination (e.g. the slot of a parameter chunk) when one is given;
 * the JDK's GCM verifies the tag before it releases any plaintext, so a frame that fails writes nothing there
 * ({@code FramerTest} checks it). The replay window moves only after the tag verified.
 */
public final class Framer {
    /** Outcome of {@link #open}. */
    public enum Result { OK, BAD_TAG, REPLAY }

    private static final int GCM_TAG_BITS = MessageHeader.TAG_LENGTH * 8;

    private final MessageHeader header = new MessageHeader();
    private final MessageHeader in = new MessageHeader();
    private final UnsafeBuffer headerBuffer = direct(MessageHeader.LENGTH);
    private final ByteBuffer headerNio = headerBuffer.byteBuffer();
    private final UnsafeBuffer handshakeTag = direct(MessageHeader.TAG_LENGTH);
    private UnsafeBuffer body = direct(64 * 1024);
    private UnsafeBuffer opened = direct(64 * 1024);
    private UnsafeBuffer staging = direct(0);
    private UnsafeBuffer probe = direct(0);
    private final DirectBufferVector vHeader = new DirectBufferVector(headerBuffer, 0, MessageHeader.LENGTH);
    private final DirectBufferVector vBody = new DirectBufferVector();
    private final DirectBufferVector vPayload = new DirectBufferVector();
    private final DirectBufferVector vTag = new DirectBufferVector(handshakeTag, 0, MessageHeader.TAG_LENGTH);
    private final DirectBufferVector[] sealedVectors = {vHeader, vBody};
    private final DirectBufferVector[] clearVectors = {vHeader, vPayload, vTag};
    private final DirectBufferVector[] clearEmptyVectors = {vHeader, vTag};
    private final Cipher sealCipher;
    private final Cipher openCipher;
    private final Mac handshakeMac;
    private final byte[] nonce = new byte[12];
    private final byte[] macOut = new byte[32];
    private final byte[] scratch = new byte[16 * 1024];

    /** {@code handshakeKey}: {@link KeySchedule#handshakeKey}. */
    public Framer(byte[] handshakeKey) {
        try {
            sealCipher = Cipher.getInstance("AES/GCM/NoPadding");
            openCipher = Cipher.getInstance("AES/GCM/NoPadding");
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES/GCM/NoPadding is not available in this JVM: " + e.getMessage(), e);
        }
        handshakeMac = Hkdf.hmac(handshakeKey);
    }

    private static UnsafeBuffer direct(int n) {
        return new UnsafeBuffer(ByteBuffer.allocateDirect(n));
    }

    /** The next frame's header, reset to {@code type}, for its fields to be set (key kind and sequence are set when sealing). */
    public MessageHeader header(MessageType type) {
        return header.wrap(headerBuffer, 0).reset(type);
    }

    // ---- sealing ------------------------------------------------------------------------------------------------

    /**
     * Seals the frame whose header was set, with {@code payload[offset, offset + length)} ({@code payload} may be
     * null when length is 0), under {@code key} (null: the handshake key; {@code broadcast}: whether key is the
     * broadcast direction). Returns the vectors to offer, valid until the next call.
     */
    public DirectBufferVector[] seal(TrafficKey key, DirectBuffer payload, int offset, int length) {
        header.payloadLength(length);
        if (key == null) {
            header.keyKind(MessageHeader.KEY_HANDSHAKE).sequence(0);
            handshakeTag(headerBuffer, 0, payload, offset, length, handshakeTag, 0);
            if (length == 0) {
                return clearEmptyVectors;
            }
            vPayload.reset(payload, offset, length);
            return clearVectors;
        }
        if (body.capacity() < length + MessageHeader.TAG_LENGTH) {
            body = direct(Math.max(length + MessageHeader.TAG_LENGTH, 2 * body.capacity()));
        }
        encrypt(key, payload, offset, length, body, 0);
        vBody.reset(body, 0, length + MessageHeader.TAG_LENGTH);
        return sealedVectors;
    }

    /**
     * Seals the frame whose header was set as one contiguous frame (header, sealed payload, tag) at
     * {@code dst[dstOffset]}; returns its length. For frames kept and sent more than once (the broadcast cache) and tests.
     */
    public int sealInto(TrafficKey key, MutableDirectBuffer dst, int dstOffset, DirectBuffer payload, int offset, int length) {
        header.payloadLength(length);
        if (key == null) {
            header.keyKind(MessageHeader.KEY_HANDSHAKE).sequence(0);
            dst.putBytes(dstOffset, headerBuffer, 0, MessageHeader.LENGTH);
            if (length > 0) {
                dst.putBytes(dstOffset + MessageHeader.LENGTH, payload, offset, length);
            }
            handshakeTag(headerBuffer, 0, payload, offset, length, dst, dstOffset + MessageHeader.LENGTH + length);
        } else {
            encrypt(key, payload, offset, length, dst, dstOffset + MessageHeader.LENGTH); // writes the header fields first
            dst.putBytes(dstOffset, headerBuffer, 0, MessageHeader.LENGTH);
        }
        return MessageHeader.OVERHEAD + length;
    }

    private void encrypt(TrafficKey key, DirectBuffer payload, int offset, int length, MutableDirectBuffer dst, int dstOffset) {
        long seq = key.nextSequence();
        header.keyKind(key.direction() == KeySchedule.Direction.BROADCAST ? MessageHeader.KEY_BROADCAST : MessageHeader.KEY_SESSION)
                .sequence(seq);
        key.nonce(seq, nonce);
        try {
            sealCipher.init(Cipher.ENCRYPT_MODE, key.keyFor(seq), new GCMParameterSpec(GCM_TAG_BITS, nonce));
            sealCipher.updateAAD(headerNio.duplicate().clear());
            ByteBuffer src = length == 0 ? ByteBuffer.allocate(0) : input(payload, offset, length);
            ByteBuffer out = nio(dst, dstOffset, length + MessageHeader.TAG_LENGTH);
            if (out != null) {
                sealCipher.doFinal(src, out);
            } else {
                UnsafeBuffer tmp = stagingOf(length + MessageHeader.TAG_LENGTH);
                sealCipher.doFinal(src, nio(tmp, 0, length + MessageHeader.TAG_LENGTH));
                dst.putBytes(dstOffset, tmp, 0, length + MessageHeader.TAG_LENGTH);
            }
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM sealing failed: " + e.getMessage(), e);
        }
    }

    // ---- opening ------------------------------------------------------------------------------------------------

    /**
     * Opens the structurally valid ({@link MessageHeader#validate}) frame {@code frame[offset, offset + length)} under
     * {@code key} (null: handshake key) into {@link #opened()}: its header at 0, the plaintext payload after it.
     */
    public Result open(TrafficKey key, DirectBuffer frame, int offset, int length) {
        int payload = length - MessageHeader.OVERHEAD;
        if (opened.capacity() < MessageHeader.LENGTH + payload) {
            opened = direct(Math.max(MessageHeader.LENGTH + payload, 2 * opened.capacity()));
        }
        Result r;
        if (key == null) {
            r = verifyHandshake(frame, offset, length);
            if (r == Result.OK && payload > 0) {
                opened.putBytes(MessageHeader.LENGTH, frame, offset + MessageHeader.LENGTH, payload);
            }
        } else {
            r = open(key, frame, offset, length, opened, MessageHeader.LENGTH);
        }
        if (r == Result.OK) {
            opened.putBytes(0, frame, offset, MessageHeader.LENGTH);
        }
        return r;
    }

    /** The last frame {@link #open(TrafficKey, DirectBuffer, int, int)} opened: header at 0, payload at {@link MessageHeader#LENGTH}. */
    public UnsafeBuffer opened() {
        return opened;
    }

    /**
     * Opens a structurally valid session or broadcast frame and decrypts its payload into {@code dst[dstOffset]}:
     * BAD_TAG when header or payload were modified or the frame was sealed under another key, REPLAY when it is genuine
     * but its sequence number was accepted before or is below the window (nothing is written to {@code dst} in either
     * case), OK after which the sequence number counts as seen.
     */
    public Result open(TrafficKey key, DirectBuffer frame, int offset, int length, MutableDirectBuffer dst, int dstOffset) {
        in.wrap(frame, offset);
        long seq = in.sequence();
        int payload = length - MessageHeader.OVERHEAD;
        if (!key.window().isFresh(seq)) {
            // authenticated into scratch only (never the destination, which may hold newer data by now), to tell a
            // genuine frame sent again (REPLAY) from a forged one that reuses a seen sequence number (BAD_TAG)
            return decrypt(key, seq, frame, offset, payload, probeOf(payload), 0) ? Result.REPLAY : Result.BAD_TAG;
        }
        if (!decrypt(key, seq, frame, offset, payload, dst, dstOffset)) {
            return Result.BAD_TAG;
        }
        key.window().accept(seq);
        return Result.OK;
    }

    private boolean decrypt(TrafficKey key, long seq, DirectBuffer frame, int offset, int payload, MutableDirectBuffer dst,
                            int dstOffset) {
        key.nonce(seq, nonce);
        try {
            openCipher.init(Cipher.DECRYPT_MODE, key.keyFor(seq), new GCMParameterSpec(GCM_TAG_BITS, nonce));
            openCipher.updateAAD(input(frame, offset, MessageHeader.LENGTH));
            ByteBuffer src = input(frame, offset + MessageHeader.LENGTH, payload + MessageHeader.TAG_LENGTH);
            ByteBuffer out = payload == 0 ? ByteBuffer.allocate(0) : nio(dst, dstOffset, payload);
            if (out != null) {
                openCipher.doFinal(src, out);
            } else {
                UnsafeBuffer tmp = stagingOf(payload);
                openCipher.doFinal(src, nio(tmp, 0, payload));
                dst.putBytes(dstOffset, tmp, 0, payload);
            }
        } catch (AEADBadTagException e) {
            return false;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM opening failed: " + e.getMessage(), e);
        }
        return true;
    }

    /** Verifies a handshake frame's truncated HMAC (constant time). */
    public Result verifyHandshake(DirectBuffer frame, int offset, int length) {
        int payload = length - MessageHeader.OVERHEAD;
        handshakeMac.reset();
        macUpdate(frame, offset, MessageHeader.LENGTH + payload);
        try {
            handshakeMac.doFinal(macOut, 0);
        } catch (javax.crypto.ShortBufferException e) {
            throw new IllegalStateException(e);
        }
        int diff = 0;
        int tagAt = offset + MessageHeader.LENGTH + payload;
        for (int i = 0; i < MessageHeader.TAG_LENGTH; i++) {
            diff |= macOut[i] ^ frame.getByte(tagAt + i);
        }
        return diff == 0 ? Result.OK : Result.BAD_TAG;
    }

    private void handshakeTag(DirectBuffer hdr, int hdrOffset, DirectBuffer payload, int offset, int length,
                              MutableDirectBuffer dst, int dstOffset) {
        handshakeMac.reset();
        macUpdate(hdr, hdrOffset, MessageHeader.LENGTH);
        if (length > 0) {
            macUpdate(payload, offset, length);
        }
        try {
            handshakeMac.doFinal(macOut, 0);
        } catch (javax.crypto.ShortBufferException e) {
            throw new IllegalStateException(e);
        }
        dst.putBytes(dstOffset, macOut, 0, MessageHeader.TAG_LENGTH);
    }

    private void macUpdate(DirectBuffer b, int offset, int length) {
        ByteBuffer v = nio(b, offset, length);
        if (v != null) {
            handshakeMac.update(v);
            return;
        }
        for (int done = 0; done < length; ) {
            int n = Math.min(scratch.length, length - done);
            b.getBytes(offset + done, scratch, 0, n);
            handshakeMac.update(scratch, 0, n);
            done += n;
        }
    }

    /** Whether two byte arrays are equal, in constant time. */
    public static boolean constantTimeEquals(byte[] a, byte[] b) {
        return MessageDigest.isEqual(a, b);
    }

    // ---- buffers ------------------------------------------------------------------------------------------------

    /** A ByteBuffer over {@code b[offset, offset + length)} (no copy), or null for a buffer over a raw address. */
    static ByteBuffer nio(DirectBuffer b, int offset, int length) {
        byte[] a = b.byteArray();
        if (a != null) {
            return ByteBuffer.wrap(a, b.wrapAdjustment() + offset, length);
        }
        ByteBuffer bb = b.byteBuffer();
        if (bb != null) {
            int p = b.wrapAdjustment() + offset;
            ByteBuffer d = bb.duplicate();
            d.clear();
            d.limit(p + length).position(p);
            return d;
        }
        return null;
    }

    private ByteBuffer input(DirectBuffer b, int offset, int length) {
        ByteBuffer v = nio(b, offset, length);
        if (v != null) {
            return v;
        }
        UnsafeBuffer tmp = stagingOf(length);
        tmp.putBytes(0, b, offset, length);
        return nio(tmp, 0, length);
    }

    private UnsafeBuffer probeOf(int n) {
        if (probe.capacity() < n) {
            probe = direct(Math.max(n, 2 * probe.capacity()));
        }
        return probe;
    }

    private UnsafeBuffer stagingOf(int n) {
        if (staging.capacity() < n) {
            staging = direct(Math.max(n, 2 * staging.capacity()));
        }
        return staging;
    }
}
