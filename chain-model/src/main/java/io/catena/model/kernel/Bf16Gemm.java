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
    private static final boolean PROFILE_SHAPES = Prof.ON && Boolean.getBoolean("catena.profile.shapes");

    private Bf16Gemm() {
    }

    /** A growable direct buffer of bf16 values and its native address. */
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

    /** A converted span [start, end) of one storage (float offsets), valid until its storage is written or the scope closes. */
    private static final class Span {
        Object storage;
        int start;
        int end;
        final Scratch scratch = new Scratch();
    }

    /**
     * Per calling thread: the spans converted inside the open {@link #reuse} scopes (empty outside one) and free
     * buffers. Outside a scope each call converts its two operands afresh.
     */
    private static final class State {
        int depth;
        final java.util.ArrayList<Span> live = new java.util.ArrayList<>();
        final java.util.ArrayDeque<Span> free = new java.util.ArrayDeque<>();

        /**
         * A free span for a conversion of n elements: the smallest whose buffer already holds n, else the largest
         * (grown once). Best fit keeps the spans' sizes stable from step to step: taking any free span made the
         * large ones (the LM head's logit gradients, 64 MB at 4096 x 8192) serve small operands and be reallocated,
         * a zeroed direct buffer and its page faults, every step.
         */
        Span take(long n) {
            Span best = null, largest = null;
            for (Span s : free) {
                long cap = s.scratch.bytes.capacity() / 2;
                if (cap >= n && (best == null || cap < best.scratch.bytes.capacity() / 2)) {
                    best = s;
                }
                if (largest == null || cap > largest.scratch.bytes.capacity() / 2) {
                    largest = s;
                }
            }
            Span s = best != null ? best : largest;
            if (s == null) {
                return new Span();
            }
            free.remove(s);
            return s;
        }

        void release(Span s) {
            s.storage = null;
            free.push(s);
        }
    }

    private static final ThreadLocal<State> STATE = ThreadLocal.withInitial(State::new);

    /** Closes a {@link #reuse} scope. */
    public interface Scope extends AutoCloseable {
        @Override
        void close();
    }

    private static final Scope NOTHING = () -> {
    };

    /**
     * Opens a scope on the calling thread in which an operand region converted to bf16 is reused by the following
     * bf16 GEMMs that read the same memory (the same input read by several chains' GEMMs, by q, k and v, or the logit
     * gradient read by both head GEMMs). Only for code that, inside the scope, writes nothing that a GEMM of the scope
     * reads except through {@link Gemm} outputs (a GEMM's C drops the spans of its storage). Nests; a no-op unless
     * the precision is bf16.
     */
    public static Scope reuse() {
        if (Gemm.precision() != Gemm.Precision.BF16) {
            return NOTHING;
        }
        State st = STATE.get();
        st.depth++;
        return () -> {
            if (--st.depth == 0) {
                for (Span s : st.live) {
                    st.release(s);
                }
                st.live.clear();
            }
        };
    }

    /** A GEMM wrote into c's storage: converted spans of that storage are stale. */
    static void written(Mat c) {
        State st = STATE.get();
        if (st.live.isEmpty()) {
            return;
        }
        for (int i = st.live.size() - 1; i >= 0; i--) {
            if (st.live.get(i).storage == c.storage) {
                st.release(st.live.remove(i));
            }
        }
    }

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

    /**
     * Element offset of m's (0, 0) in its storage converted to bf16, as a native address: the whole rows that hold
     * the region (from the start of m's first row, ld apart) are converted, so a later request for other columns of
     * the same rows is served by the same span inside a {@link #reuse} scope. The bf16 copy keeps the storage's ld.
     */
    private static long convert(Mat m, State st, Span[] call, int slot) {
        int c0 = m.offset % m.ld;
        int start = m.offset - c0;
        int length = m.buf.length();
        int end = Math.min(length, Math.max(start + m.rows * m.ld, m.offset + (m.rows - 1) * m.ld + m.cols));
        int need = m.offset + (m.rows - 1) * m.ld + m.cols;
        if (st.depth > 0) {
            for (Span s : st.live) {
                if (s.storage == m.storage && s.start <= m.offset && s.end >= need) {
                    return s.scratch.address + 2L * (m.offset - s.start);
                }
            }
        }
        long t0 = Prof.start();
        Span s = st.depth > 0 ? st.take(end - start) : call[slot];
        s.storage = m.storage;
        s.start = start;
        s.end = end;
        ByteBuffer src = ((Buf.F32) m.buf).bytes();
        ByteBuffer dst = s.scratch.ensure(end - start);
        int total = end - start;
        int chunk = 8192;
        int chunks = (total + chunk - 1) / chunk;
        if (Parallel.threads() > 1 && chunks > 1) {
            Parallel.forUnits(chunks, (from, to) -> {
                int a = from * chunk, b = Math.min(total, to * chunk);
                toBf16(src, start + a, dst, a, b - a);
            });
        } else {
            toBf16(src, start, dst, 0, total);
        }
        Prof.stop("bf16.convert", t0);
        if (PROFILE_SHAPES) { // -Dcatena.profile.shapes=true: conversion time per operand shape (rows x cols / ld)
            Prof.stop("bf16.convert." + m.rows + "x" + m.cols + "/" + m.ld, t0);
        }
        if (st.depth > 0) {
            st.live.add(s);
        }
        return s.scratch.address + 2L * (m.offset - start);
    }

    /** Per thread: the two spans a call outside a scope converts into (inside one, spans come from the scope's free list). */
    private static final ThreadLocal<Span[]> CALL = ThreadLocal.withInitial(() -> new Span[] {new Span(), new Span()});

    /** {@code C = op(A) op(B)} or {@code C += op(A) op(B)} in bf16 x bf16 -> fp32; shapes already checked by {@link Gemm}. */
    static void mm(Mat a, boolean transA, Mat b, boolean transB, Mat c, boolean accumulate, int m, int n, int k) {
        if (a.dataType() != org.nd4j.linalg.api.buffer.DataType.FLOAT) {
            throw new IllegalArgumentException("bf16 GEMMs take float32 regions, got " + a.dataType());
        }
        State st = STATE.get();
        Span[] call = CALL.get();
        long pa = convert(a, st, call, 0);
        long pb = convert(b, st, call, 1);
        int lda = a.ld, ldb = b.ld;
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
