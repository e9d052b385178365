package io.catena.ps.protocol;

/** Floats {@code [offset, offset + length)} of the flat parameter vector: a pipeline stage's share of it, in plain numbers. */
public record FloatRange(long offset, long length) {
    public FloatRange {
        if (offset < 0 || length < 1) {
            throw new IllegalArgumentException("a range needs offset >= 0 and length >= 1, got [" + offset + ", +" + length + ")");
        }
    }

    /** One past the last float. */
    public long end() {
        return offset + length;
    }

    @Override
    public String toString() {
        return "[" + offset + ", " + end() + ")";
    }
}
