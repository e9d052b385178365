package io.catena.ps.protocol;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.agrona.DirectBuffer;

/**
 * The handshake that starts every session and proves, in both directions, that the peer holds the job secret:
 * <pre>
 *   client -> server  HELLO      (handshake key)  stream id, response channel, client nonce Nc
 *   server -> client  CHALLENGE  (handshake key)  server nonce Ns, broadcast nonce Nb, rekey shift, proofS
 *   client -> server  PROOF      (session key c2s, sequence 0)  proofC
 *   server -> client  WELCOME    (session key s2c, sequence 0)  layout JSON
 * </pre>
 * Both sides derive the session's {@link KeySchedule} from the secret and Nc || Ns. {@code proofS} =
 * HMAC(confirmation key, "server" || transcript) and {@code proofC} = HMAC(confirmation key, "client" || transcript),
 * where the transcript binds job id, worker id, response channel, Nc, Ns, Nb and the rekey shift. proofS is fresh
 * because Nc is the client's, proofC because Ns is the server's, so a recorded handshake cannot be replayed either
 * way. A peer without the secret fails at the HELLO or CHALLENGE tag, or at a proof: the server counts
 * {@link RejectReason#HANDSHAKE_FAILED}; a client reports it.
 */
public final class Handshake {
    public static final String SERVER = "server";
    public static final String CLIENT = "client";

    private Handshake() {
    }

    /** HELLO's payload. */
    public record Hello(int streamId, String channel, byte[] clientNonce) {
    }

    /** CHALLENGE's payload. */
    public record Challenge(byte[] serverNonce, byte[] broadcastNonce, int rekeyShift, byte[] serverProof) {
    }

    public static byte[] helloPayload(int streamId, String channel, byte[] clientNonce) {
        byte[] ch = channel.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(8 + ch.length + KeySchedule.NONCE_BYTES).order(ByteOrder.LITTLE_ENDIAN)
                .putInt(streamId).putInt(ch.length).put(ch).put(clientNonce).array();
    }

    /** The HELLO payload at {@code buffer[offset, offset + length)}, or null when it is not (stream, channel, nonce). */
    public static Hello parseHello(DirectBuffer buffer, int offset, int length) {
        if (length < 8 + KeySchedule.NONCE_BYTES) {
            return null;
        }
        int chLen = buffer.getInt(offset + 4, ByteOrder.LITTLE_ENDIAN);
        if (chLen != length - 8 - KeySchedule.NONCE_BYTES) {
            return null;
        }
        byte[] nonce = new byte[KeySchedule.NONCE_BYTES];
        buffer.getBytes(offset + 8 + chLen, nonce);
        return new Hello(buffer.getInt(offset, ByteOrder.LITTLE_ENDIAN), buffer.getStringWithoutLengthUtf8(offset + 8, chLen), nonce);
    }

    public static byte[] challengePayload(byte[] serverNonce, byte[] broadcastNonce, int rekeyShift, byte[] serverProof) {
        return ByteBuffer.allocate(3 * KeySchedule.NONCE_BYTES + 4).order(ByteOrder.LITTLE_ENDIAN)
                .put(serverNonce).put(broadcastNonce).putInt(rekeyShift).put(serverProof).array();
    }

    /** The CHALLENGE payload, or null when its length is wrong. */
    public static Challenge parseChallenge(byte[] p) {
        if (p == null || p.length != 3 * KeySchedule.NONCE_BYTES + 4) {
            return null;
        }
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.LITTLE_ENDIAN);
        byte[] ns = new byte[KeySchedule.NONCE_BYTES];
        byte[] nb = new byte[KeySchedule.NONCE_BYTES];
        byte[] proof = new byte[KeySchedule.NONCE_BYTES];
        b.get(ns).get(nb);
        int shift = b.getInt();
        b.get(proof);
        return new Challenge(ns, nb, shift, proof);
    }

    /** What both proofs cover. */
    public static byte[] transcript(long jobId, int workerId, String channel, byte[] clientNonce, byte[] serverNonce,
                                    byte[] broadcastNonce, int rekeyShift) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] label = KeySchedule.LABEL.getBytes(StandardCharsets.UTF_8);
        byte[] ch = channel.getBytes(StandardCharsets.UTF_8);
        ByteBuffer fixed = ByteBuffer.allocate(4 + label.length + 8 + 4 + 4 + ch.length + 3 * KeySchedule.NONCE_BYTES + 4)
                .order(ByteOrder.LITTLE_ENDIAN);
        fixed.putInt(label.length).put(label).putLong(jobId).putInt(workerId).putInt(ch.length).put(ch)
                .put(clientNonce).put(serverNonce).put(broadcastNonce).putInt(rekeyShift);
        out.writeBytes(fixed.array());
        return out.toByteArray();
    }
}
