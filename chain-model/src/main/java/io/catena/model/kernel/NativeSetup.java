package io.catena.model.kernel;

import com.sun.jna.Function;
import com.sun.jna.NativeLibrary;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Puts every Catena process on the host's fast native path, with no user setting, in three steps.
 *
 * <ol>
 *   <li>{@link #prepare()}, before ND4J or OpenBLAS load (the static initialisers of {@link Mat},
 *       {@link Gemm}, {@code Params} and {@link HeadTensor} call it, so bin/catena, Spark executors,
 *       the parameter server, tests and benchmarks all pass through it): picks the ND4J native variant
 *       for the CPU (JavaCPP's {@code org.bytedeco.javacpp.platform.extension}: the AVX-512 build or the
 *       generic x86-64 one; one app jar carries both and linux-arm64) and sets
 *       {@code OPENBLAS_CORETYPE} in the process environment (libc {@code setenv} through JNA) to the
 *       kernel {@link HostCpu#openblasCoreType()} names, since OpenBLAS reads it once, when it loads.</li>
 *   <li>{@link #defaultEngine()}, when {@link Gemm} initialises: reads back the kernel OpenBLAS
 *       actually chose ({@code openblas_get_corename}). If it is below the host's instruction set by
 *       two levels or more (an SSE kernel on an AVX2/AVX-512 CPU: OpenBLAS was loaded before step 1,
 *       or the name was refused) and no one asked for it, GEMMs go to ND4J's oneDNN matmul instead,
 *       which detects the CPU itself. Never silent: the reason is in the report.</li>
 *   <li>{@link #report()}: measures the GEMM path in use once (GFLOP/s) and prints one line; trainers
 *       record it in metrics.jsonl, {@code catena inspect} prints it.</li>
 * </ol>
 *
 * <p>Explicit settings win: {@code -Dcatena.gemm}, {@code OPENBLAS_CORETYPE} in the environment,
 * {@code -Dcatena.openblas.coretype} (forces a kernel even over the environment), and
 * {@code -Dorg.bytedeco.javacpp.platform.extension}. The choice depends only on the host and those
 * settings, never on a timing, so every process on a host computes the same floats (resume and the
 * dp-vs-local equivalence stay bit-exact).
 */
public final class NativeSetup {
    /** JavaCPP's system property naming the native variant to load. */
    public static final String VARIANT_PROPERTY = "org.bytedeco.javacpp.platform.extension";
    /** Forces an OpenBLAS kernel, over the environment's {@code OPENBLAS_CORETYPE} too. */
    public static final String CORETYPE_PROPERTY = "catena.openblas.coretype";
    public static final String CORETYPE_ENV = "OPENBLAS_CORETYPE";
    /** The square GEMM size the start-up measurement uses (about 0.27 GFLOP per call). */
    static final int PROBE_SIZE = 512;
    private static final int RTLD_LAZY = 0x1, RTLD_NOLOAD = 0x4;

    private static final HostCpu CPU = HostCpu.read();
    private static boolean prepared;
    private static String variantSource = "";
    private static String wantedCore;
    private static String coreSource = "OpenBLAS's own detection";
    private static final List<String> NOTES = new ArrayList<>();
    private static String openblasCore;
    private static String engineSource = "";
    private static volatile Report report;

    private NativeSetup() {
    }

    /** The host CPU as read at start-up. */
    public static HostCpu cpu() {
        return CPU;
    }

    /** Step 1: native variant and OpenBLAS kernel, before either library loads. Idempotent and cheap. */
    public static synchronized void prepare() {
        if (prepared) {
            return;
        }
        prepared = true;
        String explicitVariant = System.getProperty(VARIANT_PROPERTY);
        if (explicitVariant != null) {
            variantSource = "-D" + VARIANT_PROPERTY;
        } else if (!CPU.nd4jVariant().isEmpty()) {
            variantSource = "chosen for " + HostCpu.isaName(CPU.isaLevel());
            System.setProperty(VARIANT_PROPERTY, CPU.nd4jVariant());
        }
        String forced = System.getProperty(CORETYPE_PROPERTY);
        String fromEnv = System.getenv(CORETYPE_ENV);
        if (forced != null && !forced.isBlank()) {
            wantedCore = forced.trim();
            coreSource = "-D" + CORETYPE_PROPERTY;
        } else if (fromEnv != null && !fromEnv.isBlank()) {
            wantedCore = fromEnv.trim();
            coreSource = CORETYPE_ENV + " from the environment";
            String best = CPU.openblasCoreType();
            if (best != null && !best.equalsIgnoreCase(wantedCore)
                    && HostCpu.coreIsaLevel(wantedCore) < HostCpu.coreIsaLevel(best)) {
                NOTES.add(CORETYPE_ENV + "=" + wantedCore + " is set in the environment and kept; this host's best kernel is "
                        + best + " (unset " + CORETYPE_ENV + " or pass -D" + CORETYPE_PROPERTY + "=" + best + ")");
            }
            return; // OpenBLAS reads the environment itself
        } else {
            wantedCore = CPU.openblasCoreType();
            coreSource = wantedCore == null ? "OpenBLAS's own detection" : "chosen for " + HostCpu.isaName(CPU.isaLevel());
        }
        if (wantedCore != null && !setenv(CORETYPE_ENV, wantedCore)) {
            coreSource = "OpenBLAS's own detection (setenv failed)";
        }
    }

    private static boolean setenv(String name, String value) {
        if (nativeLibraryLoaded("libopenblas")) {
            NOTES.add("OpenBLAS was loaded before Catena could choose its kernel");
            return false;
        }
        try {
            return Function.getFunction("c", "setenv").invokeInt(new Object[] {name, value, 1}) == 0;
        } catch (Throwable t) { // no JNA native for this platform: OpenBLAS's own detection, checked in step 2
            NOTES.add("cannot set " + name + " (" + t.getClass().getSimpleName() + ": " + t.getMessage() + ")");
            return false;
        }
    }

    /**
     * Step 2: the engine {@link Gemm} starts with. Loads OpenBLAS (through its JavaCPP class) to read
     * back its kernel.
     */
    static synchronized Gemm.Engine defaultEngine() {
        prepare();
        // the load order Catena had before this class: ND4J's natives first, then Gemm's JavaCPP binding
        org.nd4j.linalg.factory.Nd4j.getBackend();
        org.bytedeco.javacpp.Loader.load(org.bytedeco.openblas.global.openblas.class);
        openblasCore = loadedOpenblasCore();
        String explicit = System.getProperty("catena.gemm");
        if (explicit != null) {
            engineSource = "-Dcatena.gemm=" + explicit;
            return Gemm.parse(explicit);
        }
        int host = CPU.isaLevel();
        int core = HostCpu.coreIsaLevel(openblasCore);
        boolean asked = coreSource.startsWith("-D") || coreSource.startsWith(CORETYPE_ENV);
        if (core != HostCpu.ISA_UNKNOWN && host - core >= 2 && !asked) {
            engineSource = "OpenBLAS runs its " + openblasCore + " (" + HostCpu.isaName(core) + ") kernel on an "
                    + HostCpu.isaName(host) + " CPU: ND4J's oneDNN matmul instead";
            NOTES.add(engineSource);
            return Gemm.Engine.ND4J;
        }
        if (core != HostCpu.ISA_UNKNOWN && host - core >= 2) {
            NOTES.add("OpenBLAS runs its " + openblasCore + " (" + HostCpu.isaName(core) + ") kernel on an "
                    + HostCpu.isaName(host) + " CPU because " + coreSource + " asks for it");
        }
        engineSource = "default";
        return Gemm.Engine.SPLIT;
    }

    /** The kernel name the loaded OpenBLAS reports, or "unknown" where it cannot be asked. */
    private static String loadedOpenblasCore() {
        String lib = loadedLibrary("libopenblas");
        if (lib == null) {
            return "unknown";
        }
        try {
            // RTLD_LAZY | RTLD_NOLOAD and not RTLD_GLOBAL (JNA's default): the handle of the copy already loaded, its
            // symbols kept local. Promoted to global, they would bind the lazily resolved calls of ND4J's own OpenBLAS
            // copy (libopenblas_nolapack) to this one, and the two then free each other's memory regions (a crash).
            NativeLibrary l = NativeLibrary.getInstance(lib, Map.of(com.sun.jna.Library.OPTION_OPEN_FLAGS, RTLD_LAZY | RTLD_NOLOAD));
            return l.getFunction("openblas_get_corename").invokeString(new Object[0], false).trim();
        } catch (Throwable t) {
            return "unknown";
        }
    }

    /** The ND4J native build the process loaded (its directory name, e.g. linux-x86_64-onednn-avx512). */
    private static String loadedNd4jBuild() {
        String lib = loadedLibrary("libnd4jcpu");
        if (lib == null) {
            return "not loaded";
        }
        Path dir = Path.of(lib).getParent();
        return dir == null ? lib : dir.getFileName().toString();
    }

    private static boolean nativeLibraryLoaded(String prefix) {
        return loadedLibrary(prefix) != null;
    }

    /** The path of a loaded shared library whose file name starts with prefix (from /proc/self/maps). */
    private static String loadedLibrary(String prefix) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
                int slash = line.indexOf('/');
                if (slash < 0) {
                    continue;
                }
                String path = line.substring(slash).trim();
                String file = path.substring(path.lastIndexOf('/') + 1);
                if (file.startsWith(prefix) && file.contains(".so")) {
                    return path;
                }
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        return null;
    }

    /**
     * Step 3: the path in use and its measured speed; measured and printed (stderr) once per process.
     * The measurement runs outside this class's lock: it initialises {@link Mat} and {@link Gemm}, whose
     * initialisers take the lock themselves (another thread may be inside one of them).
     */
    public static Report report() {
        Report r = report;
        if (r != null) {
            return r;
        }
        Gemm.Engine engine = Gemm.engine(); // initialises Gemm, hence step 2
        double gflops = measureGflops();
        synchronized (NativeSetup.class) {
            if (report == null) {
                report = new Report(CPU.describe(), engine.name().toLowerCase(Locale.ROOT), engineSource, openblasCore,
                        wantedCore == null ? "" : wantedCore, coreSource, loadedNd4jBuild(), variantSource, gflops,
                        Parallel.threads(), List.copyOf(NOTES));
                System.err.println("catena: " + report.line());
            }
            return report;
        }
    }

    /** Best of 5 timed {@value #PROBE_SIZE}^3 float32 GEMMs through the engine in use, after 2 warm-up calls. */
    private static double measureGflops() {
        int n = PROBE_SIZE;
        Mat a = Mat.allocate(DataType.FLOAT, n, n);
        Mat b = Mat.allocate(DataType.FLOAT, n, n);
        Mat c = Mat.allocate(DataType.FLOAT, n, n);
        for (int i = 0; i < n * n; i++) {
            a.buf.set(i, (i % 7) * 0.01f);
            b.buf.set(i, (i % 5) * 0.01f);
        }
        long best = Long.MAX_VALUE;
        for (int i = 0; i < 7; i++) {
            long t0 = System.nanoTime();
            Gemm.mm(a, false, b, false, c, false);
            long dt = System.nanoTime() - t0;
            if (i >= 2) {
                best = Math.min(best, dt);
            }
        }
        return 2.0 * n * n * n / best;
    }

    /** What runs the GEMMs on this host, and how fast it measured. */
    public record Report(String cpu, String engine, String engineSource, String openblasCore, String requestedCore,
                         String coreSource, String nd4jBuild, String variantSource, double gflops, int threads,
                         List<String> notes) {

        /** The one log line. */
        public String line() {
            String gemm = engine.equals("nd4j") ? "ND4J matmul (oneDNN)" : "OpenBLAS " + openblasCore
                    + (engine.equals("split") ? " split on the kernel team" : " own threads");
            return String.format(Locale.ROOT, "GEMM %s, %.0f GFLOP/s (%d^3 fp32, %d threads) on %s; OpenBLAS kernel %s (%s), "
                            + "ND4J natives %s%s%s", gemm, gflops, PROBE_SIZE, threads, cpu, openblasCore, coreSource, nd4jBuild,
                    variantSource.isEmpty() ? "" : " (" + variantSource + ")",
                    notes.isEmpty() ? "" : "; NOTE: " + String.join("; ", notes));
        }

        /** The fields for metrics.jsonl and checkpoints' inspection. */
        public Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("cpu", cpu);
            m.put("gemm_engine", engine);
            m.put("gemm_engine_source", engineSource);
            m.put("gemm_gflops", Math.round(gflops * 10) / 10.0);
            m.put("gemm_threads", threads);
            m.put("openblas_core", openblasCore);
            m.put("openblas_core_requested", requestedCore);
            m.put("openblas_core_source", coreSource);
            m.put("nd4j_natives", nd4jBuild);
            if (!notes.isEmpty()) {
                m.put("notes", notes);
            }
            return m;
        }
    }
}
