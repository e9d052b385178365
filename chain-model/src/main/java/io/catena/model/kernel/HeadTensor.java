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
    public final INDArray storage;
    public final Buf buf;
    public final int heads;
    public final int batch;
    public final int rows;
    public final int cols;
    private final INDArray[] prefixViews;

    public HeadTensor(DataType type, int heads, int batch, int rows, int cols) {
        this.heads = heads;
        this.batch = batch;
        this.rows = rows;
        this.cols = cols;
        this.storage = Nd4j.zeros(type, (long) heads * batch * rows * cols);
        this.buf = Buf.of(storage);
        this.prefixViews = new INDArray[heads + 1];
    }

    /** Offset of element (head, b, row, 0). */
    public int index(int head, int b, int row) {
        return ((head * batch + b) * rows + row) * cols;
    }

    /** [activeHeads * batch, rows, cols] view over the first activeHeads heads. */
    public INDArray view(int activeHeads) {
        INDArray v = prefixViews[activeHeads];
        if (v == null) {
            v = Nd4j.create(storage.data(), new long[] {(long) activeHeads * batch, rows, cols},
                    new long[] {(long) rows * cols, cols, 1}, 0, 'c', storage.dataType());
            prefixViews[activeHeads] = v;
        }
        return v;
    }

    /** Batched C = op(A) op(B) over the first activeHeads heads. */
    public static void bmm(HeadTensor a, boolean transA, HeadTensor b, boolean transB, HeadTensor c, int activeHeads) {
        Nd4j.matmul(a.view(activeHeads), b.view(activeHeads), c.view(activeHeads), transA, transB, false);
    }
}
