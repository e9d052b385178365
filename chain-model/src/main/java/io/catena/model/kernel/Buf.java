package io.catena.model.kernel;

import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Element access to the off-heap memory of an ND4J array, shared with ND4J (no copy): our fused
 * kernels read and write the same buffers that ND4J's GEMMs use. Two precisions exist so that the
 * very same kernels run in float32 for training and in float64 for gradient checks; in a process
 * that only trains, the call sites see one subclass and the JIT inlines it.
 */
public abstract sealed class Buf permits Buf.F32, Buf.F64 {

    /** A view over the whole contiguous buffer of {@code array} (which must not be a view itself). */
    public static Buf of(INDArray array) {
        if (array.isView() || array.offset() != 0 || !array.isR() || array.ordering() != 'c') {
            throw new IllegalArgumentException("Buf needs a contiguous c-order float array that is not a view, got "
                    + array.shapeInfoToString());
        }
        var bytes = array.data().asNio().order(ByteOrder.nativeOrder());
        long n = array.length();
        Buf b;
        if (array.dataType() == DataType.FLOAT) {
            b = new F32(bytes, (int) n);
        } else if (array.dataType() == DataType.DOUBLE) {
            b = new F64(bytes.asDoubleBuffer(), (int) n);
        } else {
            throw new IllegalArgumentException("Buf supports FLOAT and DOUBLE, got " + array.dataType());
        }
        // the NIO view does not own the native memory: without a reference to the array, a collected INDArray frees it
        // under the view (a use-after-free a GC at the wrong moment turned into wrong numbers in a test)
        b.owner = array;
        return b;
    }

    protected final int length;
    /** The array whose native memory this Buf views; held so that memory lives as long as the Buf. */
    @SuppressWarnings("unused")
    private Object owner;

    Buf(int length) {
        this.length = length;
    }

    public final int length() {
        return length;
    }

    public abstract double get(int i);

    public abstract void set(int i, double v);

    public final void add(int i, double v) {
        set(i, get(i) + v);
    }

    public final void fill(int from, int count, double v) {
        for (int i = from, end = from + count; i < end; i++) {
            set(i, v);
        }
    }

    public final void copyTo(int from, Buf dst, int dstFrom, int count) {
        if (this instanceof F32 s && dst instanceof F32 d) {
            d.data.put(dstFrom, s.data, from, count);
            return;
        }
        for (int i = 0; i < count; i++) {
            dst.set(dstFrom + i, get(from + i));
        }
    }

    /** float32 storage; {@link #bytes()} feeds the Vector API fast paths of {@link VectorKernels}. */
    public static final class F32 extends Buf {
        private final java.nio.ByteBuffer bytes;
        private final FloatBuffer data;

        F32(java.nio.ByteBuffer bytes, int length) {
            super(length);
            this.bytes = bytes;
            this.data = bytes.asFloatBuffer();
        }

        public java.nio.ByteBuffer bytes() {
            return bytes;
        }

        @Override
        public double get(int i) {
            return data.get(i);
        }

        @Override
        public void set(int i, double v) {
            data.put(i, (float) v);
        }

        public FloatBuffer floats() {
            return data;
        }
    }

    /** float64 storage (gradient checks). */
    public static final class F64 extends Buf {
        private final DoubleBuffer data;

        F64(DoubleBuffer data, int length) {
            super(length);
            this.data = data;
        }

        @Override
        public double get(int i) {
            return data.get(i);
        }

        @Override
        public void set(int i, double v) {
            data.put(i, v);
        }
    }
}
