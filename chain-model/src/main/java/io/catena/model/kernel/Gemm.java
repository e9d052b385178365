package io.catena.model.kernel;

import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.openblas.global.openblas;
import org.nd4j.linalg.api.blas.params.MMulTranspose;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The one place that calls a GEMM: {@code C = op(A) op(B)} or {@code C += op(A) op(B)}, straight
 * into preallocated (possibly strided) regions.
 *
 * <p>By default ({@link Engine#SPLIT}) a GEMM is cut into {@link Parallel#threads()} slabs of C's rows
 * (or of its columns, when C is wider than tall) and each slab is one single-threaded
 * {@code cblas_sgemm}/{@code cblas_dgemm} call (the OpenBLAS nd4j-native ships) on the kernel team
 * that also runs the memory-bound kernels. So one team of threads does all of a step's work. With
 * OpenBLAS's own threads ({@link Engine#OPENBLAS_THREADS}) a second pool exists, and its workers keep
 * spinning for a while after each GEMM (2^28 cycles by default), on the very cores the next kernel
 * needs: whole reference-model steps took 0.81x the time with the split (median of 6 rounds of
 * alternating processes, 0.68-0.87; {@code benchmarks/run-micro.sh engines}), and the chain-linear
 * benchmark's ratio to dense fell from 0.77 to 0.71. {@link Engine#ND4J} routes through ND4J's
 * matmul (oneDNN). Select with {@code -Dcatena.gemm=split|openblas|nd4j} or {@link #use}.
 *
 * <p>Results are deterministic: the slabs depend only on the shape and the thread count. (A different
 * thread count may round differently in the last bit: OpenBLAS's kernels block a slab by its size.)
 */
public final class Gemm {
    /** How GEMMs run; see the class comment. */
    public enum Engine { SPLIT, OPENBLAS_THREADS, ND4J }

    private static final MMulTranspose NN = new MMulTranspose(false, false, false);
    private static final MMulTranspose NT = new MMulTranspose(false, true, false);
    private static final MMulTranspose TN = new MMulTranspose(true, false, false);
    private static final MMulTranspose TT = new MMulTranspose(true, true, false);

    /** Below this many multiply-adds a GEMM runs on the calling thread alone (the hand-off would cost more). */
    static final long SPLIT_MIN_MULTIPLY_ADDS = 1L << 18;

    private static final java.util.concurrent.atomic.LongAdder NANOS = new java.util.concurrent.atomic.LongAdder();
    private static final java.util.concurrent.atomic.LongAdder MULTIPLY_ADDS = new java.util.concurrent.atomic.LongAdder();

    /** Per-shape time and count, when enabled with -Dcatena.gemm.profile=true (benchmarks only). */
    public static final java.util.Map<String, long[]> BY_SHAPE = Boolean.getBoolean("catena.gemm.profile")
            ? new java.util.concurrent.ConcurrentHashMap<>() : null;

    static {
        NativeSetup.prepare(); // before anything below can load OpenBLAS
    }

    /** Split OpenBLAS unless -Dcatena.gemm says otherwise or OpenBLAS runs a kernel far below the CPU (see NativeSetup). */
    private static volatile Engine engine = NativeSetup.defaultEngine();

    /** The engine a {@code -Dcatena.gemm} value names. */
    public static Engine parse(String name) {
        switch (name) {
            case "split":
                return Engine.SPLIT;
            case "openblas":
                return Engine.OPENBLAS_THREADS;
            case "nd4j":
                return Engine.ND4J;
            default:
                throw new IllegalArgumentException("-Dcatena.gemm=" + name + ": expected split, openblas or nd4j");
        }
    }

    /**
     * The precision of GEMM operands: {@link #FP32}, or {@link #BF16} (operands rounded to bf16, products summed and
     * written in float32, through oneDNN: {@link Bf16Gemm}); the recipe key {@code precision}. Only float32 GEMMs
     * are affected (float64 gradient checks never run in bf16), and under BF16 only the shapes
     * {@link Bf16Policy#useBf16} picks.
     */
    public enum Precision {
        FP32, BF16;

        /** The precision a recipe value names ({@code fp32} or {@code bf16}). */
        public static Precision parse(String name) {
            return switch (name.trim().toLowerCase(java.util.Locale.ROOT)) {
                case "fp32", "float32" -> FP32;
                case "bf16", "bfloat16" -> BF16;
                default -> throw new IllegalArgumentException("precision must be fp32 or bf16, got '" + name + "'");
            };
        }

        public String key() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    private static volatile Precision precision = Precision.FP32;

    /**
     * Sets the process's GEMM precision and returns the one it replaces (trainers set theirs for a step and put the
     * previous one back). BF16 is refused, with an {@link UnsupportedOperationException} naming what is missing and
     * what to do, on a CPU without AVX512_BF16 or AMX-BF16 or without a oneDNN library
     * ({@link Bf16Policy#unsupportedReason}): a slower, emulated bf16 is never run silently.
     */
    public static Precision usePrecision(Precision p) {
        java.util.Objects.requireNonNull(p);
        if (p == Precision.BF16) {
            checkSupported(p);
        }
        Precision old = precision;
        precision = p;
        return old;
    }

    /** Throws the refusal of {@link #usePrecision} where p cannot run on this host; nothing else. */
    public static void checkSupported(Precision p) {
        if (p != Precision.BF16) {
            return;
        }
        String hidden = System.getProperty(HostCpu.HIDE_PROPERTY, "") + (Bf16Policy.emulationAllowedForTests() ? "|emulated" : "");
        String[] cached = BF16_CHECK;
        String why;
        if (cached != null && cached[0].equals(hidden)) {
            why = cached[1];
        } else {
            why = Bf16Policy.unsupportedReason(HostCpu.read());
            BF16_CHECK = new String[] {hidden, why};
        }
        if (why != null) {
            throw new UnsupportedOperationException(why);
        }
    }

    /** The last bf16 check: {hidden flags (+ test emulation), reason or null} (reading /proc/cpuinfo once per step is waste). */
    private static volatile String[] BF16_CHECK;

    public static Precision precision() {
        return precision;
    }

    /** Switches the GEMM engine at run time (benchmarks' A/B runs). */
    public static void use(Engine e) {
        engine = java.util.Objects.requireNonNull(e);
    }

    public static Engine engine() {
        return engine;
    }

    private Gemm() {
    }

    /** The BLAS thread count last set from each calling thread (0: never). */
    private static final ThreadLocal<int[]> BLAS_THREADS = ThreadLocal.withInitial(() -> new int[1]);

    /**
     * Sets OpenBLAS's thread count before a call: 1 for the split (each slab is single-threaded),
     * {@link Parallel#threads()} for OpenBLAS's own threading (a Spark task with task.cpus = 4 on a
     * 64-core host must not start 64 threads). In the pthreads build nd4j-native ships the count is
     * process-wide, so it is set again when this thread's record differs or another thread last set a
     * different one ({@code blas_get_num_threads} is the JavaCPP preset's record of the last count set).
     * Under the split every caller wants 1, so concurrent callers (Spark tasks sharing a JVM, pipeline
     * stages) never disagree.
     */
    private static void blasThreads(int want) {
        int[] have = BLAS_THREADS.get();
        if (have[0] != want || openblas.blas_get_num_threads() != want) {
            openblas.blas_set_num_threads(want);
            have[0] = want;
        }
    }

    /** Wall time spent inside GEMM calls since start (for benchmarks' breakdowns). */
    public static long nanos() {
        return NANOS.sum();
    }

    /** Multiply-adds of every GEMM since start (m * n * k each; FLOPs are twice this). {@code FlopCount} is checked against it. */
    public static long multiplyAdds() {
        return MULTIPLY_ADDS.sum();
    }

    static void addNanos(long n) {
        NANOS.add(n);
    }

    /** Reusable pointer objects whose address is set per call, one set per thread: no JavaCPP pointer is created per GEMM. */
    private static final class FloatAt extends FloatPointer {
        FloatAt at(long addr) {
            address = addr;
            return this;
        }
    }

    private static final class DoubleAt extends DoublePointer {
        DoubleAt at(long addr) {
            address = addr;
            return this;
        }
    }

    private static final ThreadLocal<FloatAt[]> FLOAT_AT = ThreadLocal.withInitial(() -> new FloatAt[] {new FloatAt(), new FloatAt(), new FloatAt()});
    private static final ThreadLocal<DoubleAt[]> DOUBLE_AT = ThreadLocal.withInitial(() -> new DoubleAt[] {new DoubleAt(), new DoubleAt(), new DoubleAt()});

    /** Address of element (0, 0) of a region. */
    private static long address(Mat x, int bytes) {
        Pointer p = x.pointer();
        return p.address() + p.position() * bytes;
    }

    /**
     * The split: slabs of C's rows when C is at least as tall as wide, else slabs of its columns. A
     * slab re-packs the whole other operand, so the split runs along the side whose other operand is
     * the smaller one (rows: B is K x N; columns: A is M x K).
     */
    private static void split(Mat a, boolean transA, Mat b, boolean transB, Mat c, boolean accumulate, int m, int n, int k) {
        boolean f32 = a.dataType() == DataType.FLOAT;
        int bytes = f32 ? 4 : 8;
        long pa = address(a, bytes), pb = address(b, bytes), pc = address(c, bytes);
        boolean byRows = m >= n;
        Parallel.RowRange slab = (from, to) -> {
            blasThreads(1);
            // first row of op(A) / first column of op(B) and C for this slab, in elements
            long oa = byRows ? (transA ? from : (long) from * a.ld) : 0;
            long ob = byRows ? 0 : (transB ? (long) from * b.ld : from);
            long oc = byRows ? (long) from * c.ld : from;
            int sm = byRows ? to - from : m, sn = byRows ? n : to - from;
            blas(f32, transA, transB, sm, sn, k, pa + oa * bytes, a.ld, pb + ob * bytes, b.ld, accumulate, pc + oc * bytes, c.ld);
        };
        if (Parallel.threads() > 1 && (long) m * n * k >= SPLIT_MIN_MULTIPLY_ADDS) {
            Parallel.forRows(byRows ? m : n, slab);
        } else {
            slab.run(0, byRows ? m : n);
        }
    }

    private static void blas(boolean f32, boolean transA, boolean transB, int m, int n, int k, long a, int lda, long b, int ldb,
                             boolean accumulate, long c, int ldc) {
        int ta = transA ? openblas.CblasTrans : openblas.CblasNoTrans;
        int tb = transB ? openblas.CblasTrans : openblas.CblasNoTrans;
        if (f32) {
            FloatAt[] p = FLOAT_AT.get();
            openblas.cblas_sgemm(openblas.CblasRowMajor, ta, tb, m, n, k, 1f, p[0].at(a), lda, p[1].at(b), ldb,
                    accumulate ? 1f : 0f, p[2].at(c), ldc);
        } else {
            DoubleAt[] p = DOUBLE_AT.get();
            openblas.cblas_dgemm(openblas.CblasRowMajor, ta, tb, m, n, k, 1.0, p[0].at(a), lda, p[1].at(b), ldb,
                    accumulate ? 1.0 : 0.0, p[2].at(c), ldc);
        }
    }

    public static void mm(Mat a, boolean transA, Mat b, boolean transB, Mat c, boolean accumulate) {
        int m = transA ? a.cols : a.rows;
        int k = transA ? a.rows : a.cols;
        int kb = transB ? b.cols : b.rows;
        int n = transB ? b.rows : b.cols;
        if (k != kb || c.rows != m || c.cols != n) {
            throw new IllegalArgumentException("GEMM shapes do not agree: op(A) " + m + "x" + k + ", op(B) " + kb + "x" + n
                    + ", C " + c.rows + "x" + c.cols);
        }
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (!accumulate) {
                c.fill(0);
            }
            return;
        }
        MULTIPLY_ADDS.add((long) m * n * k);
        long t0 = System.nanoTime();
        Engine e = engine;
        boolean bf16 = precision == Precision.BF16 && a.dataType() == DataType.FLOAT && Bf16Policy.useBf16(m, n, k);
        if (bf16) {
            Bf16Gemm.mm(a, transA, b, transB, c, accumulate, m, n, k);
        } else if (e == Engine.SPLIT) {
            split(a, transA, b, transB, c, accumulate, m, n, k);
        } else if (e == Engine.OPENBLAS_THREADS) {
            blasThreads(Parallel.threads());
            int bytes = a.dataType() == DataType.FLOAT ? 4 : 8;
            blas(bytes == 4, transA, transB, m, n, k, address(a, bytes), a.ld, address(b, bytes), b.ld, accumulate, address(c, bytes), c.ld);
        } else if (!accumulate) {
            Nd4j.matmul(a.nd(), b.nd(), c.nd(), transA, transB, false);
        } else {
            MMulTranspose t = transA ? (transB ? TT : TN) : (transB ? NT : NN);
            Nd4j.exec(new Mmul(a.nd(), b.nd(), c.nd(), 1.0, 1.0, t));
        }
        Bf16Gemm.written(c);
        long dt = System.nanoTime() - t0;
        NANOS.add(dt);
        if (BY_SHAPE != null) {
            String key = (bf16 ? "bf16 " : "") + m + "x" + n + "x" + k + (transA ? " tA" : "") + (transB ? " tB" : "") + (accumulate ? " acc" : "")
                    + (a.isContiguous() ? "" : " sA") + (c.isContiguous() ? "" : " sC");
            BY_SHAPE.computeIfAbsent(key, x -> new long[2]);
            long[] v = BY_SHAPE.get(key);
            v[0] += dt;
            v[1]++;
        }
    }
}
