package io.catena.model.kernel;

/**
 * When {@code precision = bf16} may run, and which GEMMs it runs in bf16.
 *
 * <p>Refusal, not fallback: a recipe that asks for bf16 on a host that cannot run it fast stops with a message naming
 * the missing CPU feature or library and the ways out ({@link #unsupportedReason}). A silent fp32 fallback would
 * make a dp run's workers compute differently on mixed hosts and hide a 2x slower step behind one log line.
 *
 * <p>Shapes: the choice is a fixed rule of the GEMM's shape, never a timing, so every process on every host
 * computes the same floats for the same shapes (resume and dp-vs-local equivalence stay exact). The rule is a
 * measured one (benchmarks/RESULTS.md, "bf16"): bf16 pays for converting both operands on every call, so it wins
 * only when the multiply-adds per converted element are many.
 */
public final class Bf16Policy {
    /** Overrides the rule: {@code all} (every float32 GEMM in bf16) or another {@link #MAX_K_RATIO}. */
    public static final String SHAPES_PROPERTY = "catena.bf16.shapes";

    /**
     * A GEMM runs in bf16 when its work passes {@link #MIN_MULTIPLY_ADDS} and its inner dimension k is below
     * {@link #MAX_K_RATIO} times its larger output side. The excluded shapes are the weight gradients
     * ({@code dW = dY^T X}: outputs of 128-512 a side summed over the 2048+ rows of a batch), where converting the two
     * tall operands costs about what bf16 saves and oneDNN's bf16 kernel gains least (measured 0.9-1.6x the fp32 time
     * at k = 4-16 x max(m, n), 0.54-0.58x at k <= 2 x max(m, n): benchmarks/RESULTS.md, "bf16").
     */
    static final double MAX_K_RATIO = ratioFromProperty();
    static final long MIN_MULTIPLY_ADDS = 1L << 20;

    private Bf16Policy() {
    }

    private static double ratioFromProperty() {
        String v = System.getProperty(SHAPES_PROPERTY);
        if (v == null || v.isBlank()) {
            return 4;
        }
        if (v.trim().equals("all")) {
            return Double.POSITIVE_INFINITY;
        }
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("-D" + SHAPES_PROPERTY + " must be 'all' or a number, got '" + v + "'");
        }
    }

    /** Whether a float32 GEMM of this shape runs in bf16 when the precision is bf16. */
    public static boolean useBf16(int m, int n, int k) {
        if (MAX_K_RATIO == Double.POSITIVE_INFINITY) {
            return true;
        }
        return (long) m * n * k >= MIN_MULTIPLY_ADDS && k < MAX_K_RATIO * Math.max(m, n);
    }

    /** Null when bf16 can run on this host, else what is missing and what to do. */
    public static String unsupportedReason(HostCpu cpu) {
        if (!cpu.bf16()) {
            return "precision=bf16 needs a CPU that multiplies bf16 natively (the AVX512_BF16 or AMX-BF16 instructions: AMD Zen 4 "
                    + "or later, Intel Cooper Lake / Sapphire Rapids or later); this host's " + cpu.describe()
                    + " has neither (no avx512_bf16 or amx_bf16 in /proc/cpuinfo). Use precision=fp32 (--set precision=fp32).";
        }
        if (!Dnnl.available()) {
            return "precision=bf16 runs its GEMMs through oneDNN, and " + Dnnl.problem() + ". Install it (Debian/Ubuntu: apt install "
                    + "libdnnl2), point -D" + Dnnl.LIB_PROPERTY + "=/path/to/libdnnl.so.N at one, put org.bytedeco:dnnl:linux-x86_64 "
                    + "on the class path, or use precision=fp32.";
        }
        return null;
    }

    /** One line for the engine report: the library and the rule. */
    public static String describe() {
        return Dnnl.describe() + (MAX_K_RATIO == Double.POSITIVE_INFINITY ? ", every GEMM in bf16"
                : ", bf16 for GEMMs with k < " + MAX_K_RATIO + " x max(m, n) and >= 2^20 multiply-adds");
    }
}
