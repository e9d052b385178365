package io.catena.data.reader;

/**
 * A seeded bijection of [0, n) computed in O(1) memory: a 4-round Feistel network over the smallest
 * even-bit power-of-two domain >= n, with cycle-walking back into [0, n). Used for per-epoch window
 * shuffles that need no permutation array, however many windows there are.
 */
public final class WindowPermutation {

    private final long n;
    private final int halfBits;
    private final long halfMask;
    private final long[] keys = new long[4];
    private final boolean identity;

    public WindowPermutation(long n, long seed, boolean shuffle) {
        if (n <= 0) {
            throw new IllegalArgumentException("permutation domain must be > 0, got " + n);
        }
        this.n = n;
        this.identity = !shuffle || n == 1;
        int bits = Math.max(2, 64 - Long.numberOfLeadingZeros(n - 1));
        if ((bits & 1) == 1) {
            bits++;
        }
        halfBits = bits / 2;
        halfMask = (1L << halfBits) - 1;
        long s = seed;
        for (int i = 0; i < 4; i++) {
            s += 0x9E3779B97F4A7C15L;
            keys[i] = mix64(s);
        }
    }

    /** The image of {@code i} in [0, n). */
    public long apply(long i) {
        if (i < 0 || i >= n) {
            throw new IndexOutOfBoundsException("index " + i + " outside [0, " + n + ")");
        }
        if (identity) {
            return i;
        }
        long x = i;
        do {
            x = feistel(x);
        } while (x >= n);
        return x;
    }

    private long feistel(long x) {
        long l = x >>> halfBits;
        long r = x & halfMask;
        for (int round = 0; round < 4; round++) {
            long f = mix64(r ^ keys[round]) & halfMask;
            long nl = r;
            r = l ^ f;
            l = nl;
        }
        return (l << halfBits) | r;
    }

    /** SplitMix64's finalizer. */
    public static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
