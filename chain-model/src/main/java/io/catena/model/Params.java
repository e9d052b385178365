package io.catena.model;

import io.catena.model.kernel.Buf;
import io.catena.model.kernel.Mat;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One contiguous buffer holding every tensor of a {@link ParamLayout} (used for parameters,
 * gradients and optimizer moments alike). Tensors are regions of it, never separate allocations.
 */
public final class Params {
    static {
        io.catena.model.kernel.NativeSetup.prepare(); // the host's native variant and OpenBLAS kernel, before ND4J loads
    }

    private final ParamLayout layout;
    private final INDArray flat;
    private final Buf buf;

    public Params(ParamLayout layout, DataType type) {
        this.layout = layout;
        if (layout.size() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("model has " + layout.size() + " parameters; this engine indexes at most "
                    + Integer.MAX_VALUE + " per buffer");
        }
        this.flat = Nd4j.zeros(type, layout.size());
        this.buf = Buf.of(flat);
    }

    public ParamLayout layout() {
        return layout;
    }

    public INDArray flat() {
        return flat;
    }

    public Buf buf() {
        return buf;
    }

    public DataType dataType() {
        return flat.dataType();
    }

    /** The tensor as a row-major matrix (vectors are 1 x n). */
    public Mat mat(String name) {
        ParamLayout.Entry e = layout.get(name);
        int rows = e.shape().length == 1 ? 1 : e.rows();
        int cols = e.shape().length == 1 ? e.shape()[0] : e.cols();
        return new Mat(flat, buf, (int) e.offset(), rows, cols, cols);
    }

    /**
     * One row-major matrix of the given width over several tensors that lie next to each other in the
     * layout (checked), e.g. the q, k and v weights of a chain as one [3 D_i, P_i] matrix.
     */
    public Mat span(String[] tensors, int cols) {
        long start = layout.get(tensors[0]).offset();
        long at = start;
        for (String t : tensors) {
            ParamLayout.Entry e = layout.get(t);
            if (e.offset() != at) {
                throw new IllegalStateException("tensors " + java.util.Arrays.toString(tensors) + " are not adjacent in the layout (at "
                        + t + ")");
            }
            at += e.size();
        }
        if ((at - start) % cols != 0) {
            throw new IllegalStateException("tensors " + java.util.Arrays.toString(tensors) + " hold " + (at - start)
                    + " elements, not a whole number of " + cols + "-column rows");
        }
        return new Mat(flat, buf, (int) start, (int) ((at - start) / cols), cols, cols);
    }

    public int offset(String name) {
        return (int) layout.get(name).offset();
    }

    public void zero() {
        flat.assign(0);
    }

    public void copyFrom(Params other) {
        if (other.layout.size() != layout.size()) {
            throw new IllegalArgumentException("parameter counts differ: " + other.layout.size() + " vs " + layout.size());
        }
        flat.assign(other.flat);
    }

    /** Initialises every tensor of chains >= fromChain (MODEL.md "Initialisation": normal(0.02), residual-stream outputs scaled, gains 1, biases 0). */
    public void initialize(long seed, int fromChain) {
        ColmConfig cfg = layout.config();
        double outStd = 0.02 / Math.sqrt(2.0 * cfg.layers());
        for (ParamLayout.Entry e : layout.entries()) {
            if (e.chain() < fromChain) {
                continue;
            }
            // One stream per tensor name: adding a chain never changes how older tensors were drawn.
            SplittableRandom rnd = new SplittableRandom(seed ^ (e.name().hashCode() * 0x9E3779B97F4A7C15L));
            int off = (int) e.offset();
            int n = (int) e.size();
            switch (e.kind()) {
                case WEIGHT, EMBEDDING, HEAD -> fillNormal(rnd, off, n, 0.02);
                case OUT_WEIGHT -> fillNormal(rnd, off, n, outStd);
                case NORM_GAIN -> buf.fill(off, n, 1.0);
                case BIAS, NORM_BIAS -> buf.fill(off, n, 0.0);
                default -> throw new IllegalStateException(e.kind().toString());
            }
        }
    }

    private void fillNormal(SplittableRandom rnd, int off, int n, double std) {
        for (int i = 0; i < n; i++) {
            buf.set(off + i, gaussian(rnd) * std);
        }
    }

    static double gaussian(SplittableRandom rnd) {
        // Box-Muller; deterministic across JVMs (java.util.Random's nextGaussian is too, but not splittable).
        double u1 = rnd.nextDouble();
        double u2 = rnd.nextDouble();
        return Math.sqrt(-2.0 * Math.log(1.0 - u1)) * Math.cos(2.0 * Math.PI * u2);
    }
}
