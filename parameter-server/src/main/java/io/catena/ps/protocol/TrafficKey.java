package io.catena.ps.protocol;

import javax.crypto.spec.SecretKeySpec;

/**
 * One direction of traffic under one {@link KeySchedule}: for a sender the frame counter (never reused, so no
 * (key, nonce) pair repeats), for a receiver the {@link ReplayWindow}; for both the AES keys of the generations in
 * use (generation = sequence >>> rekey shift, derived on demand, the last two kept). Not thread-safe.
 *
 * <p>Nonce (12 bytes) = the direction's 4-byte salt || the 8-byte big-endian sequence number.
 */
public final class TrafficKey {
    private final KeySchedule schedule;
    private final KeySchedule.Direction direction;
    private final byte[] salt;
    private final int shift;
    private final ReplayWindow window = new ReplayWindow();
    private long next;
    private long genA = -1;
    private SecretKeySpec keyA;
    private long genB = -1;
    private SecretKeySpec keyB;
    private long derivations;

    TrafficKey(KeySchedule schedule, KeySchedule.Direction direction) {
        this.schedule = schedule;
        this.direction = direction;
        this.salt = schedule.nonceSalt(direction);
        this.shift = schedule.rekeyShift();
    }

    public KeySchedule.Direction direction() {
        return direction;
    }

    /** The next sequence number to send (each is handed out once). */
    public long nextSequence() {
        if (next == Long.MAX_VALUE) {
            throw new IllegalStateException("the " + direction.label + " counter is exhausted; start a new session (HELLO)");
        }
        return next++;
    }

    /** Sequence numbers handed out so far. */
    public long sent() {
        return next;
    }

    public ReplayWindow window() {
        return window;
    }

    public long generation(long sequence) {
        return sequence >>> shift;
    }

    /** Keys derived so far (one per generation reached; tests of rekeying). */
    public long derivations() {
        return derivations;
    }

    /** The AES key of the generation {@code sequence} falls in. */
    SecretKeySpec keyFor(long sequence) {
        long g = sequence >>> shift;
        if (g == genA) {
            return keyA;
        }
        if (g == genB) {
            return keyB;
        }
        SecretKeySpec k = new SecretKeySpec(schedule.directionKey(direction, g), "AES");
        derivations++;
        // keep the newer of the two cached generations and the new one
        if (genA < genB) {
            genA = g;
            keyA = k;
        } else {
            genB = g;
            keyB = k;
        }
        return k;
    }

    void nonce(long sequence, byte[] out) {
        out[0] = salt[0];
        out[1] = salt[1];
        out[2] = salt[2];
        out[3] = salt[3];
        for (int i = 0; i < 8; i++) {
            out[4 + i] = (byte) (sequence >>> (56 - 8 * i));
        }
    }
}
