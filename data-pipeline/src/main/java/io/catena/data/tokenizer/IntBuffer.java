package io.catena.data.tokenizer;

import java.util.Arrays;

/** A growable int array (no boxing). */
public final class IntBuffer {

    private int[] a;
    private int n;

    public IntBuffer(int capacity) {
        a = new int[Math.max(1, capacity)];
    }

    public void add(int v) {
        if (n == a.length) {
            a = Arrays.copyOf(a, Math.max(16, a.length * 2));
        }
        a[n++] = v;
    }

    public void addAll(int[] v) {
        if (n + v.length > a.length) {
            a = Arrays.copyOf(a, Math.max(n + v.length, a.length * 2));
        }
        System.arraycopy(v, 0, a, n, v.length);
        n += v.length;
    }

    public int size() {
        return n;
    }

    public int get(int i) {
        return a[i];
    }

    /** The backing array; valid in [0, size()). */
    public int[] array() {
        return a;
    }

    public void clear() {
        n = 0;
    }

    /** Drops the first {@code k} values, keeping the rest in order. */
    public void dropFirst(int k) {
        System.arraycopy(a, k, a, 0, n - k);
        n -= k;
    }

    public int[] toArray() {
        return Arrays.copyOf(a, n);
    }
}
