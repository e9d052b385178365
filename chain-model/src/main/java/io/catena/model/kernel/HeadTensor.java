package io.catena.model.kernel;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Per-head tensor laid out [heads, batch, rows, cols] contiguously, head-major so that the first
 * k chains' heads are a contiguous prefix: batched GEMMs at scale k run over a prefix view
 * [heads_k * batch, rows, cols] (views are cached per head count).
 */
public final class HeadTensor {
    static {
        NativeSetup.prepare(); // the host's native variant and OpenBLAS kernel, before ND4J loads
    }

    public final INDArray storage;
    public final Buf buf;
    public final int heads;
    public final int batch;
    public final int rows;
    public final int cols;
    private final java.util.Map<Integer, INDArray> rangeViews = new java.util.HashMap<>();

    public HeadTensor(DataType type, int heads, int batch, int rows, int cols) {
        this.heads = heads;
        this.batch = batch;
        this.rows = rows;
        this.cols = cols;
        this.storage = Nd4j.zeros(type, (long) heads * batch * rows * cols);
        this.buf = Buf.of(storage);
        ActivationMemory.allocated(storage.length(), type);
    }

    public Buf buf() {
        return buf;
    }

    /** The float32 bytes (only for float32 tensors). */
    public java.nio.ByteBuffer bytes() {
        return ((Buf.F32) buf).bytes();
    }

    /** Offset of element (head, b, row, 0). */
    public int index(int head, int b, int row) {
        return ((head * batch + b) * rows + row) * cols;
    }

    /** [count * batch, rows, cols] view over heads [first, first + count). */
    public INDArray view(int first, int count) {
        return rangeViews.computeIfAbsent(first << 16 | count, key -> Nd4j.create(storage.data(),
                new long[] {(long) count * batch, rows, cols}, new long[] {(long) rows * cols, cols, 1},
                (long) first * batch * rows * cols, 'c', storage.dataType()));
    }

    /**
     * Batched C = op(A) op(B) over heads [first, first + count). Callers run one call per chain, so
     * a chain's GEMMs have the same shape whatever chains follow it: growing the model or running a
     * smaller scale leaves its results bit-identical (one call over all heads would let the BLAS pick
     * a different blocking for a different batch count).
     */
    public static void bmm(HeadTensor a, boolean transA, HeadTensor b, boolean transB, HeadTensor c, int first, int count) {
        long t0 = System.nanoTime();
        Nd4j.matmul(a.view(first, count), b.view(first, count), c.view(first, count), transA, transB, false);
        Gemm.addNanos(System.nanoTime() - t0);
    }
}
