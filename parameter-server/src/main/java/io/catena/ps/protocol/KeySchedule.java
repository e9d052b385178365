package io.catena.ps.protocol;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import javax.crypto.Mac;

/**
 * Every key of the protocol, derived from the per-job secret with HKDF-SHA256 (RFC 5869, {@link Hkdf}):
 * <ul>
 * <li>the <b>handshake key</b> {@code HKDF(salt = "catena-ps v4 handshake", ikm = secret, info = same)}: authenticates
 *     (HMAC-SHA256, truncated to 16 bytes) the frames sent before a session has keys (HELLO, CHALLENGE, REJECT of a
 *     HELLO); it carries no freshness, the handshake's proofs do;</li>
 * <li>a <b>session</b> schedule {@code PRK = HKDF-Extract(salt = clientNonce || serverNonce, secret)} per HELLO, and
 *     from it one key per direction and generation,
 *     {@code HKDF-Expand(PRK, "catena-ps v4 <jobId> <c2s|s2c> <generation>", 32)}, a 4-byte nonce salt per direction, and
 *     the confirmation key of the two proofs ({@link Handshake});</li>
 * <li>the server's <b>broadcast</b> schedule {@code PRK = HKDF-Extract(salt = broadcastNonce, secret)} (a random nonce
 *     per server process, sent in every CHALLENGE), whose {@code broadcast} direction seals parameter chunks once per
 *     version for every worker.</li>
 * </ul>
 * A key's generation is its frame counter shifted right by the rekey shift: with the default 24, every 2^24 frames
 * (16 TiB of 1 MiB chunks) a direction moves to a fresh key, far below GCM's limits (2^32 invocations is the bound for
 * random nonces; these are counters) and below the data volume at which AES-GCM's confidentiality bound weakens.
 */
public final class KeySchedule {
    public static final String LABEL = "catena-ps v" + MessageHeader.PROTOCOL_VERSION;
    /** Shortest per-job secret accepted: 128 bits. */
    public static final int MIN_SECRET_BYTES = 16;
    public static final int NONCE_BYTES = 32;
    public static final int KEY_BYTES = 32;
    public static final int DEFAULT_REKEY_SHIFT = 24;
    public static final int MIN_REKEY_SHIFT = 2;
    public static final int MAX_REKEY_SHIFT = 40;

    /** A direction of traffic; each has its own keys, nonce salt, counter and replay window. */
    public enum Direction {
        CLIENT_TO_SERVER("c2s"), SERVER_TO_CLIENT("s2c"), BROADCAST("broadcast");

        final String label;

        Direction(String label) {
            this.label = label;
        }
    }

    private static final SecureRandom RANDOM = new SecureRandom();

    private final byte[] prk;
    private final long jobId;
    private final int rekeyShift;

    private KeySchedule(byte[] prk, long jobId, int rekeyShift) {
        if (rekeyShift < MIN_REKEY_SHIFT || rekeyShift > MAX_REKEY_SHIFT) {
            throw new IllegalArgumentException("rekey shift must be in [" + MIN_REKEY_SHIFT + ", " + MAX_REKEY_SHIFT + "], got "
                    + rekeyShift);
        }
        this.prk = prk;
        this.jobId = jobId;
        this.rekeyShift = rekeyShift;
    }

    /** The 64-bit job id derived from a job name (first 8 bytes of its SHA-256). */
    public static long jobId(String jobName) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(jobName.getBytes(StandardCharsets.UTF_8));
            return java.nio.ByteBuffer.wrap(d).getLong();
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The key of handshake frames (HMAC-SHA256); the same for every job that shares the secret. */
    public static byte[] handshakeKey(byte[] secret) {
        byte[] label = (LABEL + " handshake").getBytes(StandardCharsets.UTF_8);
        return Hkdf.derive(label, secret, label, KEY_BYTES);
    }

    /** The schedule of one session (one HELLO): both directions' keys and the proofs' key. */
    public static KeySchedule session(byte[] secret, long jobId, byte[] clientNonce, byte[] serverNonce, int rekeyShift) {
        checkNonce(clientNonce, "client");
        checkNonce(serverNonce, "server");
        byte[] salt = new byte[2 * NONCE_BYTES];
        System.arraycopy(clientNonce, 0, salt, 0, NONCE_BYTES);
        System.arraycopy(serverNonce, 0, salt, NONCE_BYTES, NONCE_BYTES);
        return new KeySchedule(Hkdf.extract(salt, secret), jobId, rekeyShift);
    }

    /** The schedule of a server's broadcast direction (one per server process). */
    public static KeySchedule broadcast(byte[] secret, long jobId, byte[] broadcastNonce, int rekeyShift) {
        checkNonce(broadcastNonce, "broadcast");
        return new KeySchedule(Hkdf.extract(broadcastNonce, secret), jobId, rekeyShift);
    }

    private static void checkNonce(byte[] n, String what) {
        if (n == null || n.length != NONCE_BYTES) {
            throw new IllegalArgumentException("the " + what + " nonce must have " + NONCE_BYTES + " bytes, got "
                    + (n == null ? "none" : n.length));
        }
    }

    /** A fresh random nonce of {@value #NONCE_BYTES} bytes. */
    public static byte[] randomNonce() {
        byte[] n = new byte[NONCE_BYTES];
        RANDOM.nextBytes(n);
        return n;
    }

    public int rekeyShift() {
        return rekeyShift;
    }

    /** Frames sealed under one key before the direction moves to the next generation. */
    public long framesPerKey() {
        return 1L << rekeyShift;
    }

    /** A new sending or receiving state for direction {@code d} (counter at 0, empty replay window). */
    public TrafficKey traffic(Direction d) {
        return new TrafficKey(this, d);
    }

    byte[] directionKey(Direction d, long generation) {
        return Hkdf.expand(prk, info(d.label + " " + generation), KEY_BYTES);
    }

    byte[] nonceSalt(Direction d) {
        return Hkdf.expand(prk, info(d.label + " nonce"), 4);
    }

    /** HMAC-SHA256 under the session's confirmation key of {@code role} ("client" or "server") and the transcript. */
    public byte[] proof(String role, byte[] transcript) {
        Mac mac = Hkdf.hmac(Hkdf.expand(prk, info("confirm"), KEY_BYTES));
        mac.update(role.getBytes(StandardCharsets.UTF_8));
        return mac.doFinal(transcript);
    }

    /** Constant-time comparison of a received proof. */
    public boolean verifyProof(String role, byte[] transcript, byte[] proof) {
        return proof != null && MessageDigest.isEqual(proof(role, transcript), proof);
    }

    private byte[] info(String what) {
        return (LABEL + " " + jobId + " " + what).getBytes(StandardCharsets.UTF_8);
    }
}
