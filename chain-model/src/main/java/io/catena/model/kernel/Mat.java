package io.catena.model.kernel;

import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A row-major matrix region inside one contiguous ND4J buffer: {@code rows x cols} starting at
 * {@code offset} with row stride {@code ld}. Kernels index it through {@link #buf}; GEMMs use the
 * ND4J view over the very same memory, created once (views are cached, never built per step).
 */
public final class Mat {
    static {
        NativeSetup.prepare(); // the host's native variant and OpenBLAS kernel, before ND4J loads
    }

    public final INDArray storage;
    public final Buf buf;
    public final int offset;
    public final int rows;
    public final int cols;
    public final int ld;
    private INDArray view;
    private Pointer pointer;
    private java.util.Map<Long, Mat> colViews;

    public Mat(INDArray storage, Buf buf, int offset, int rows, int cols, int ld) {
        if (rows < 0 || cols < 0 || ld < cols || offset < 0 || (rows > 0 && (long) offset + (long) (rows - 1) * ld + cols > buf.length())) {
            throw new IllegalArgumentException("matrix region " + rows + "x" + cols + " (ld " + ld + ", offset " + offset
                    + ") does not fit a buffer of " + buf.length() + " elements");
        }
        this.storage = storage;
        this.buf = buf;
        this.offset = offset;
        this.rows = rows;
        this.cols = cols;
        this.ld = ld;
    }

    /** A new zero-filled contiguous matrix of its own. */
    public static Mat allocate(DataType type, int rows, int cols) {
        INDArray a = Nd4j.zeros(type, Math.max(1, (long) rows * cols));
        ActivationMemory.allocated(a.length(), type);
        return new Mat(a, Buf.of(a), 0, rows, cols, cols);
    }

    /** Extra floats at the end of every activation row (64 bytes). */
    public static final int ROW_PAD = 16;

    /**
     * An activation matrix whose rows are padded by {@link #ROW_PAD}, so every chain-prefix view of
     * it is strided. A BLAS may compute a contiguous GEMM operand slightly differently (other rounding)
     * from a strided one of the same values (oneDNN does); with padding a chain's GEMMs see the same kind of operand
     * whatever the model's width, so growing the model keeps old scales bit-identical.
     */
    public static Mat allocateActivation(DataType type, int rows, int cols) {
        int ld = cols + ROW_PAD;
        INDArray a = Nd4j.zeros(type, Math.max(1, (long) rows * ld));
        ActivationMemory.allocated(a.length(), type);
        return new Mat(a, Buf.of(a), 0, rows, cols, ld);
    }

    public DataType dataType() {
        return storage.dataType();
    }

    /** Columns [from, from + count) of every row. */
    public Mat cols(int from, int count) {
        if (from < 0 || count < 0 || from + count > cols) {
            throw new IllegalArgumentException("columns [" + from + ", " + (from + count) + ") outside 0.." + cols);
        }
        return new Mat(storage, buf, offset + from, rows, count, ld);
    }

    /** Like {@link #cols} but remembers the region, so per-step code builds no new views. */
    public Mat colsCached(int from, int count) {
        if (from == 0 && count == cols) {
            return this;
        }
        if (colViews == null) {
            colViews = new java.util.HashMap<>();
        }
        return colViews.computeIfAbsent(((long) from << 32) | count, key -> cols(from, count));
    }

    /** Rows [from, from + count). */
    public Mat rows(int from, int count) {
        if (from < 0 || count < 0 || from + count > rows) {
            throw new IllegalArgumentException("rows [" + from + ", " + (from + count) + ") outside 0.." + rows);
        }
        return new Mat(storage, buf, offset + from * ld, count, cols, ld);
    }

    public int index(int r, int c) {
        return offset + r * ld + c;
    }

    public double get(int r, int c) {
        return buf.get(offset + r * ld + c);
    }

    public void set(int r, int c, double v) {
        buf.set(offset + r * ld + c, v);
    }

    public boolean isContiguous() {
        return ld == cols || rows <= 1;
    }

    /**
     * Address of element (0, 0) for a direct BLAS call: a FloatPointer or DoublePointer by the
     * storage's type, created once (per-step code builds no new objects).
     */
    public Pointer pointer() {
        if (pointer == null) {
            Pointer base = storage.data().addressPointer();
            pointer = (dataType() == DataType.FLOAT ? new FloatPointer(base) : new DoublePointer(base)).position(offset);
        }
        return pointer;
    }

    /** The ND4J view of this region (for GEMMs). */
    public INDArray nd() {
        if (view == null) {
            view = Nd4j.create(storage.data(), new long[] {rows, cols}, new long[] {ld, 1}, offset, 'c', storage.dataType());
        }
        return view;
    }

    public void fill(double v) {
        for (int r = 0; r < rows; r++) {
            buf.fill(offset + r * ld, cols, v);
        }
    }

    public void copyFrom(Mat src) {
        checkSameShape(src);
        for (int r = 0; r < rows; r++) {
            src.buf.copyTo(src.offset + r * src.ld, buf, offset + r * ld, cols);
        }
    }

    public void checkSameShape(Mat other) {
        if (other.rows != rows || other.cols != cols) {
            throw new IllegalArgumentException("shape mismatch: " + rows + "x" + cols + " vs " + other.rows + "x" + other.cols);
        }
    }

    @Override
    public String toString() {
        return "Mat[" + rows + "x" + cols + " ld=" + ld + " off=" + offset + " " + dataType() + "]";
    }
}
