package io.catena.ps.protocol;

/**
 * The receiver's record of the sequence numbers it accepted on one key direction: the highest, and a bitmap of the
 * {@value #SIZE} before it. A sequence number is fresh when it is above the highest, or within the window and not
 * yet seen; anything older than the window is refused as a replay (it cannot be told apart from one).
 *
 * <p>Why {@value #SIZE}: every direction of a session is one Aeron publication, and Aeron delivers a publication's
 * messages in order (its image reorders and repairs UDP loss), so honest traffic never needs a window above 1 and
 * the window only tolerates reordering Aeron does not produce. Frames of several publications do interleave at the
 * server's subscription, but each client session has its own keys and window, and the server's broadcast
 * parameter frames reach a worker in increasing sequence order (the server seals them in chunk order and never sends
 * one twice to a session; see the package documentation). One {@code long} of bitmap is then plenty, and cheap.
 *
 * <p>Use {@link #isFresh} before authenticating and {@link #accept} only after the tag verified, so that a forged
 * frame cannot move the window.
 */
public final class ReplayWindow {
    public static final int SIZE = 64;

    private long highest = -1;
    private long seen; // bit d: sequence (highest - d) was accepted

    /** Whether {@code seq} was not accepted before and is not older than the window. */
    public boolean isFresh(long seq) {
        if (seq < 0) {
            return false;
        }
        if (seq > highest) {
            return true;
        }
        long d = highest - seq;
        return d < SIZE && (seen & (1L << d)) == 0;
    }

    /** Whether {@code seq} lies below the window (refused even though it may never have been seen). */
    public boolean isTooOld(long seq) {
        return seq < 0 || (highest >= 0 && highest - seq >= SIZE);
    }

    /** Records an authenticated {@code seq} (which {@link #isFresh} accepted). */
    public void accept(long seq) {
        if (seq > highest) {
            long shift = highest < 0 ? SIZE : seq - highest;
            seen = shift >= SIZE ? 0 : seen << shift;
            seen |= 1;
            highest = seq;
        } else {
            seen |= 1L << (highest - seq);
        }
    }

    /** Highest accepted sequence number, -1 before the first. */
    public long highest() {
        return highest;
    }
}
