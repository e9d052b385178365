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
 * measured one (benchmarks/RESULTS.md, "bf16").
 */
public final class Bf16Policy {
    /** Overrides the rule: {@code all} (every float32 GEMM in bf16, however small) or a {@link #MAX_K_RATIO}. */
    public static final String SHAPES_PROPERTY = "catena.bf16.shapes";

    /**
     * A GEMM runs in bf16 when its work passes {@link #MIN_MULTIPLY_ADDS} (below it the conversion and the library
     * call cost more than bf16 saves) and, if {@code -Dcatena.bf16.shapes=R} sets one, its inner dimension k is below
     * R times its larger output side. Measured on the reference model (benchmarks/RESULTS.md, "bf16"): with the
     * layers' reuse scopes every shape of a step is faster in bf16, the weight gradients too (k = 4-16 x max(m, n);
     * their tall operands are converted once for the input-gradient GEMM beside them), so there is no k limit
     * by default. Without the scopes the weight gradients lost (0.9-1.6x the fp32 time): they were converted for
     * themselves alone.
     */
    static final double MAX_K_RATIO = ratioFromProperty();
    static final long MIN_MULTIPLY_ADDS = "all".equals(System.getProperty(SHAPES_PROPERTY, "").trim()) ? 0 : 1L << 20;

    private Bf16Policy() {
    }

    private static double ratioFromProperty() {
        String v = System.getProperty(SHAPES_PROPERTY);
        if (v == null || v.isBlank() || v.trim().equals("all")) {
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
        return (long) m * n * k >= MIN_MULTIPLY_ADDS && k < MAX_K_RATIO * Math.max(m, n);
    }

    /**
     * Tests only: lets bf16 run on a host without bf16 units when oneDNN computes its bf16 GEMM there anyway (emulated,
     * slow: never for training), so the bf16 numerics are checked on every CI host, not only on those with the units.
     */
    private static volatile boolean emulationForTests;

    /** See {@link #emulationForTests}; tests switch it on around their bf16 checks and off after. */
    public static void allowEmulationForTests(boolean allow) {
        emulationForTests = allow;
    }

    public static boolean emulationAllowedForTests() {
        return emulationForTests;
    }

    /** Null when bf16 can run on this host, else what is missing and what to do. */
    public static String unsupportedReason(HostCpu cpu) {
        if (!cpu.bf16() && !(emulationForTests && Dnnl.bf16Works())) {
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
        return Dnnl.describe() + ", bf16 for GEMMs of >= " + MIN_MULTIPLY_ADDS + " multiply-adds"
                + (MAX_K_RATIO == Double.POSITIVE_INFINITY ? "" : " with k < " + MAX_K_RATIO + " x max(m, n)")
                + (Bf16Attention.ENABLED ? ", attention core in bf16 at T >= " + Bf16Attention.MIN_SEQ + " (blocks of "
                + Bf16Attention.BLOCK + " query rows)" : ", attention core fp32");
    }
}
