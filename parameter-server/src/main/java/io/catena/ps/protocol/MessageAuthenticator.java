package io.catena.ps.protocol;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

/**
 * HMAC-SHA256 over a frame's payload and header with the per-job secret. Not thread-safe: one per
 * thread (the server's conductor, each client).
 *
 * <p>The MAC input is the payload first, then the 64-byte header (the frame on the wire is header, payload,
 * MAC). Hashing the payload first lets a sender that sends the same payload under several headers (the
 * server answering W workers' pulls of one version) hash the bulk bytes once: {@link #snapshot()} after the
 * payload, {@link #continueFrom} for each further header. The input is unambiguous because the header has a
 * fixed length and carries the payload length.
 */
public final class MessageAuthenticator {
    /** Shortest secret accepted: 128 bits. */
    public static final int MIN_SECRET_BYTES = 16;

    private Mac mac;
    private final byte[] expected = new byte[MessageHeader.MAC_LENGTH];
    private final byte[] scratch = new byte[64 * 1024];

    public MessageAuthenticator(byte[] secret) {
        if (secret == null || secret.length < MIN_SECRET_BYTES) {
            throw new IllegalArgumentException("the per-job secret must have at least " + MIN_SECRET_BYTES + " bytes, got "
                    + (secret == null ? "none" : secret.length));
        }
        try {
            mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available in this JVM: " + e.getMessage(), e);
        }
    }

    /** The 64-bit job id derived from a job name (first 8 bytes of its SHA-256). */
    public static long jobId(String jobName) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(jobName.getBytes(StandardCharsets.UTF_8));
            return ByteBuffer.wrap(d).getLong();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * A copy of the computation so far (e.g. after a payload), or null when this JVM's HmacSHA256 cannot be
     * cloned (then the caller hashes the payload again).
     */
    public Mac snapshot() {
        try {
            return (Mac) mac.clone();
        } catch (CloneNotSupportedException e) {
            return null;
        }
    }

    /** Continues from a {@link #snapshot()} (which stays untouched and can be continued from again). */
    public void continueFrom(Mac snapshot) {
        try {
            mac = (Mac) snapshot.clone();
        } catch (CloneNotSupportedException e) {
            throw new IllegalStateException("a snapshot that was cloned once cannot be cloned again", e);
        }
    }

    /** Starts a MAC computation. */
    public void begin() {
        mac.reset();
    }

    /** Adds bytes [offset, offset + length) of any Agrona buffer (heap, direct or raw address). */
    public void update(DirectBuffer buffer, int offset, int length) {
        byte[] array = buffer.byteArray();
        if (array != null) {
            mac.update(array, buffer.wrapAdjustment() + offset, length);
            return;
        }
        ByteBuffer bb = buffer.byteBuffer();
        if (bb != null) {
            ByteBuffer d = bb.duplicate();
            int base = buffer.wrapAdjustment() + offset;
            d.limit(base + length).position(base);
            mac.update(d);
            return;
        }
        for (int done = 0; done < length; ) {
            int n = Math.min(scratch.length, length - done);
            buffer.getBytes(offset + done, scratch, 0, n);
            mac.update(scratch, 0, n);
            done += n;
        }
    }

    /** Finishes and writes the 32-byte MAC at {@code dst[dstOffset]}. */
    public void finish(MutableDirectBuffer dst, int dstOffset) {
        try {
            mac.doFinal(expected, 0);
        } catch (javax.crypto.ShortBufferException e) {
            throw new IllegalStateException(e);
        }
        dst.putBytes(dstOffset, expected);
    }

    /** Signs a contiguous frame whose header and payload are already written at {@code offset}. */
    public void sign(MutableDirectBuffer frame, int offset, int payloadLength) {
        begin();
        update(frame, offset + MessageHeader.LENGTH, payloadLength);
        update(frame, offset, MessageHeader.LENGTH);
        finish(frame, offset + MessageHeader.LENGTH + payloadLength);
    }

    /** True when the MAC at the end of a contiguous frame of {@code length} bytes verifies (constant-time compare). */
    public boolean verify(DirectBuffer frame, int offset, int length) {
        int body = length - MessageHeader.MAC_LENGTH;
        if (body < MessageHeader.LENGTH) {
            return false;
        }
        begin();
        update(frame, offset + MessageHeader.LENGTH, body - MessageHeader.LENGTH);
        update(frame, offset, MessageHeader.LENGTH);
        try {
            mac.doFinal(expected, 0);
        } catch (javax.crypto.ShortBufferException e) {
            throw new IllegalStateException(e);
        }
        int diff = 0;
        for (int i = 0; i < MessageHeader.MAC_LENGTH; i++) {
            diff |= expected[i] ^ frame.getByte(offset + body + i);
        }
        return diff == 0;
    }
}
