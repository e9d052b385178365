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
    /** Overrides the rule: {@code all} (every float32 GEMM in bf16) or a minimum of multiply-adds per converted element. */
    public static final String SHAPES_PROPERTY = "catena.bf16.shapes";

    /**
     * A GEMM runs in bf16 when it does at least this many multiply-adds per operand element converted
     * ({@code m n k / (m k + k n)}, i.e. about the harmonic mean of m and n over 2) and its work passes
     * {@link #MIN_MULTIPLY_ADDS}.
     */
    static final double MIN_INTENSITY = intensityFromProperty();
    static final long MIN_MULTIPLY_ADDS = 1L << 20;

    private Bf16Policy() {
    }

    private static double intensityFromProperty() {
        String v = System.getProperty(SHAPES_PROPERTY);
        if (v == null || v.isBlank()) {
            return 48;
        }
        if (v.trim().equals("all")) {
            return 0;
        }
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("-D" + SHAPES_PROPERTY + " must be 'all' or a number, got '" + v + "'");
        }
    }

    /** Whether a float32 GEMM of this shape runs in bf16 when the precision is bf16. */
    public static boolean useBf16(int m, int n, int k) {
        if (MIN_INTENSITY <= 0) {
            return true;
        }
        long work = (long) m * n * k;
        double perElement = (double) work / ((long) m * k + (long) k * n);
        return work >= MIN_MULTIPLY_ADDS && perElement >= MIN_INTENSITY;
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
        return Dnnl.describe() + ", bf16 for GEMMs with >= " + (MIN_INTENSITY <= 0 ? "0 (all)" : String.valueOf((long) MIN_INTENSITY))
                + " multiply-adds per operand element";
    }
}
