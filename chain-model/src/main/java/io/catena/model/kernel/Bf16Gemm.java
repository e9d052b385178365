package io.catena.model.kernel;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A float32 GEMM computed with bf16 operands and float32 accumulation ({@code precision = bf16}): both operands
 * are rounded to bf16 (round to nearest even) into per-thread scratch buffers, then oneDNN's
 * {@code dnnl_gemm_bf16bf16f32} ({@link Dnnl}) multiplies them into C, which stays float32 (beta 0 or 1, as the
 * fp32 path). Everything else of a step (norms, softmax, loss, optimizer, master weights) stays float32.
 *
 * <p>Like {@link Gemm}'s split, the GEMM is cut into {@link Parallel#threads()} slabs of C's rows (or columns) and
 * each slab is one single-threaded library call on the kernel team; the conversion runs on the same team, row
 * ranges of the operand. The slabs depend only on the shape and the thread count, so results are deterministic.
 *
 * <p>The conversion ({@link #toBf16}) uses the Vector API: the float bits as ints, {@code (x + 0x7FFF + ((x >>> 16)
 * & 1)) >>> 16}, narrowed to shorts; 0.22-0.27 ns per element on one Zen 5 core once compiled (a scalar loop ~1.2 ns).
 * A NaN whose payload lies only in the low 16 bits would round to infinity; either way the step is non-finite and
 * {@code NumericalGuard} stops it.
 */
public final class Bf16Gemm {
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED.length() >= 16 ? IntVector.SPECIES_512
            : IntVector.SPECIES_256;
    private static final VectorSpecies<Short> SH = I.length() == 16 ? ShortVector.SPECIES_256 : ShortVector.SPECIES_128;
    private static final int L = I.length();
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    private Bf16Gemm() {
    }

    /** A growable direct buffer of bf16 values and its native address, one per calling thread and operand. */
    private static final class Scratch {
        ByteBuffer bytes = ByteBuffer.allocateDirect(0);
        long address;

        ByteBuffer ensure(long elements) {
            if (bytes.capacity() < elements * 2) {
                long cap = Math.max(elements * 2, bytes.capacity() * 3L / 2);
                if (cap > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("bf16 operand of " + elements + " elements is too large");
                }
                bytes = ByteBuffer.allocateDirect((int) cap).order(NATIVE);
                address = Pointer.nativeValue(Native.getDirectBufferPointer(bytes));
            }
            return bytes;
        }
    }

    private static final ThreadLocal<Scratch[]> SCRATCH = ThreadLocal.withInitial(() -> new Scratch[] {new Scratch(), new Scratch()});

    /** The bf16 bits of one float, rounded to nearest even. */
    public static short toBf16(float f) {
        int x = Float.floatToRawIntBits(f);
        return (short) ((x + 0x7FFF + ((x >>> 16) & 1)) >>> 16);
    }

    /** The float a bf16 value stands for (exact). */
    public static float fromBf16(short h) {
        return Float.intBitsToFloat((h & 0xFFFF) << 16);
    }

    /** n floats of src from float offset so to bf16 at element offset dOff of dst. */
    static void toBf16(ByteBuffer src, int so, ByteBuffer dst, int dOff, int n) {
        int i = 0;
        for (int end = n - L; i <= end; i += L) {
            IntVector x = IntVector.fromByteBuffer(I, src, (so + i) * 4, NATIVE);
            IntVector r = x.add(x.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7FFF).lanewise(VectorOperators.LSHR, 16);
            ((ShortVector) r.convertShape(VectorOperators.I2S, SH, 0)).intoByteBuffer(dst, (dOff + i) * 2, NATIVE);
        }
        for (; i < n; i++) {
            int x = src.getInt((so + i) * 4);
            dst.putShort((dOff + i) * 2, (short) ((x + 0x7FFF + ((x >>> 16) & 1)) >>> 16));
        }
    }

    /** The region m as a contiguous bf16 matrix (ld = cols) in scratch; the conversion runs on the kernel team. */
    private static long convert(Mat m, Scratch s) {
        ByteBuffer src = ((Buf.F32) m.buf).bytes();
        ByteBuffer dst = s.ensure((long) m.rows * m.cols);
        if (m.isContiguous()) {
            int total = m.rows * m.cols;
            int chunk = 4096;
            int chunks = (total + chunk - 1) / chunk;
            if (Parallel.threads() > 1 && chunks > 1) {
                Parallel.forUnits(chunks, (from, to) -> {
                    int a = from * chunk, b = Math.min(total, to * chunk);
                    toBf16(src, m.offset + a, dst, a, b - a);
                });
            } else {
                toBf16(src, m.offset, dst, 0, total);
            }
        } else {
            Parallel.RowRange rows = (from, to) -> {
                for (int r = from; r < to; r++) {
                    toBf16(src, m.offset + r * m.ld, dst, r * m.cols, m.cols);
                }
            };
            if ((long) m.rows * m.cols >= 1 << 14) {
                Parallel.forRows(m.rows, rows);
            } else {
                rows.run(0, m.rows);
            }
        }
        return s.address;
    }

    /** {@code C = op(A) op(B)} or {@code C += op(A) op(B)} in bf16 x bf16 -> fp32; shapes already checked by {@link Gemm}. */
    static void mm(Mat a, boolean transA, Mat b, boolean transB, Mat c, boolean accumulate, int m, int n, int k) {
        if (a.dataType() != org.nd4j.linalg.api.buffer.DataType.FLOAT) {
            throw new IllegalArgumentException("bf16 GEMMs take float32 regions, got " + a.dataType());
        }
        Scratch[] s = SCRATCH.get();
        long pa = convert(a, s[0]);
        long pb = convert(b, s[1]);
        int lda = a.cols, ldb = b.cols;
        org.bytedeco.javacpp.Pointer cp = c.pointer();
        long pc = cp.address() + cp.position() * 4;
        float beta = accumulate ? 1f : 0f;
        boolean byRows = m >= n;
        Parallel.RowRange slab = (from, to) -> {
            long oa = byRows ? (transA ? from : (long) from * lda) : 0;
            long ob = byRows ? 0 : (transB ? (long) from * ldb : from);
            long oc = byRows ? (long) from * c.ld : from;
            int sm = byRows ? to - from : m, sn = byRows ? n : to - from;
            Dnnl.gemmBf16(transA, transB, sm, sn, k, pa + oa * 2, lda, pb + ob * 2, ldb, beta, pc + oc * 4, c.ld);
        };
        if (Parallel.threads() > 1 && (long) m * n * k >= Gemm.SPLIT_MIN_MULTIPLY_ADDS) {
            Parallel.forRows(byRows ? m : n, slab);
        } else {
            slab.run(0, byRows ? m : n);
        }
    }
}
