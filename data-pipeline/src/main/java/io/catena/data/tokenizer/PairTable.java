package io.catena.data.tokenizer;

import java.util.Arrays;

/** Open-addressing map from a token pair (two non-negative ints) to a merge rank and the merged id. */
final class PairTable implements java.io.Serializable {

    private static final long serialVersionUID = 1L;
    private static final long EMPTY = -1L;

    private final long[] keys;
    private final int[] ranks;
    private final int[] results;
    private final int mask;

    PairTable(int[] left, int[] right, int[] result) {
        int cap = Integer.highestOneBit(Math.max(4, left.length * 2 + 1)) << 1;
        keys = new long[cap];
        ranks = new int[cap];
        results = new int[cap];
        mask = cap - 1;
        Arrays.fill(keys, EMPTY);
        for (int r = 0; r < left.length; r++) {
            long k = key(left[r], right[r]);
            int i = slot(k);
            while (keys[i] != EMPTY && keys[i] != k) {
                i = (i + 1) & mask;
            }
            if (keys[i] == EMPTY) { // a repeated merge keeps its first (lowest) rank, as HuggingFace does
                keys[i] = k;
                ranks[i] = r;
                results[i] = result[r];
            }
        }
    }

    static long key(int a, int b) {
        return ((long) a << 32) | (b & 0xFFFFFFFFL);
    }

    private int slot(long k) {
        long h = k * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 40) & mask;
    }

    /** Index of the pair's slot, or -1 if the pair is not a merge. */
    int find(int a, int b) {
        long k = key(a, b);
        int i = slot(k);
        while (true) {
            long kk = keys[i];
            if (kk == k) {
                return i;
            }
            if (kk == EMPTY) {
                return -1;
            }
            i = (i + 1) & mask;
        }
    }

    int rank(int slot) {
        return ranks[slot];
    }

    int result(int slot) {
        return results[slot];
    }
}
