package io.catena.model.kernel;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * oneDNN's plain C GEMMs ({@code dnnl_gemm_bf16bf16f32}: bf16 operands, fp32 accumulation and output;
 * {@code dnnl_sgemm}), the maintained library {@link Bf16Gemm} runs bf16 GEMMs on. Bound through JNA's direct
 * mapping, which the engine already uses (NativeSetup): no compiled JNI code and no JVM flag. (The JDK 17
 * incubator Foreign Linker, {@code jdk.incubator.foreign}, would also work, but it needs
 * {@code --add-modules} and {@code --enable-native-access} on every launcher and Spark executor, and its API
 * is gone in JDK 19+: a JVM given {@code --add-modules=jdk.incubator.foreign} on JDK 21 does not start.)
 *
 * <p>The library, first found wins:
 * <ol>
 *   <li>{@code -Dcatena.dnnl.lib=/path/to/libdnnl.so.N};</li>
 *   <li>the library inside {@code org.bytedeco:dnnl:*:linux-x86_64} when that jar is on the class path
 *       (extracted once, with the OpenMP runtime beside it, under {@code java.io.tmpdir}): a way to ship oneDNN
 *       to Spark executors that have no system package (only its native library is used, not its Java API,
 *       which needs another JavaCPP than ND4J's);</li>
 *   <li>the system's {@code libdnnl.so.3}, then {@code libdnnl.so.2} (Debian/Ubuntu: {@code apt install
 *       libdnnl2}, a dependency of {@code python3-torch}).</li>
 * </ol>
 *
 * <p>Threads: the library's OpenMP runtime is told to use one thread on every thread that calls it
 * ({@code omp_set_num_threads(1)}, a per-thread setting): {@link Bf16Gemm} splits a GEMM into slabs on the
 * engine's kernel team ({@link Parallel}), as the fp32 split does, so no second pool of spinning OpenMP
 * threads competes with the Java kernels for the cores.
 */
public final class Dnnl {
    /** Names the oneDNN shared library to load (overrides the class path and the system library). */
    public static final String LIB_PROPERTY = "catena.dnnl.lib";
    private static final String BYTEDECO_DIR = "org/bytedeco/dnnl/linux-x86_64/";

    private static final Loaded LOADED = load();

    private Dnnl() {
    }

    /** The loaded library and its version, or why none could be loaded. */
    record Loaded(boolean ok, String path, String version, String problem) {
    }

    /** Whether a oneDNN library with the bf16 GEMM was loaded. */
    public static boolean available() {
        return LOADED.ok;
    }

    /** Where the library came from and its version, e.g. {@code "oneDNN 2.6.3 (/usr/lib/.../libdnnl.so.2)"}. */
    public static String describe() {
        return LOADED.ok ? "oneDNN " + LOADED.version + " (" + LOADED.path + ")" : "no oneDNN: " + LOADED.problem;
    }

    /** Why no library was loaded (empty when one was). */
    public static String problem() {
        return LOADED.ok ? "" : LOADED.problem;
    }

    /** JNA direct mapping of the C API (row-major; pointers passed as addresses). */
    static final class Api {
        static native int dnnl_gemm_bf16bf16f32(byte transa, byte transb, long m, long n, long k, float alpha, long a, long lda,
                                                long b, long ldb, float beta, long c, long ldc);

        static native int dnnl_sgemm(byte transa, byte transb, long m, long n, long k, float alpha, long a, long lda,
                                     long b, long ldb, float beta, long c, long ldc);
    }

    /** libgomp's per-thread thread count (the library's OpenMP runtime; absent in a non-OpenMP build). */
    static final class Omp {
        static native void omp_set_num_threads(int n);
    }

    private static volatile boolean ompBound;
    private static final ThreadLocal<boolean[]> ONE_THREAD = ThreadLocal.withInitial(() -> new boolean[1]);

    private static Loaded load() {
        List<String> tried = new ArrayList<>();
        String explicit = System.getProperty(LIB_PROPERTY);
        List<String> candidates = new ArrayList<>();
        if (explicit != null && !explicit.isBlank()) {
            candidates.add(explicit.trim());
        } else {
            String extracted = fromClassPath(tried);
            if (extracted != null) {
                candidates.add(extracted);
            }
            candidates.add("libdnnl.so.3");
            candidates.add("libdnnl.so.2");
        }
        for (String c : candidates) {
            try {
                NativeLibrary lib = NativeLibrary.getInstance(c);
                lib.getFunction("dnnl_gemm_bf16bf16f32");
                Native.register(Api.class, lib);
                String version = version(lib);
                String path = lib.getFile() == null ? c : lib.getFile().getPath();
                try {
                    Native.register(Omp.class, NativeLibrary.getInstance("libgomp.so.1"));
                    ompBound = true;
                } catch (Throwable t) {
                    ompBound = false; // not an OpenMP build: nothing to set
                }
                return new Loaded(true, path, version, "");
            } catch (Throwable t) {
                tried.add(c + " (" + brief(t) + ")");
            }
        }
        return new Loaded(false, "", "", explicit != null ? "-D" + LIB_PROPERTY + "=" + explicit + " cannot be loaded: " + tried
                : "no oneDNN library found (tried " + String.join("; ", tried) + ")");
    }

    /** A load failure in a few words: JNA's messages end in the whole class path. */
    private static String brief(Throwable t) {
        String m = String.valueOf(t.getMessage());
        int cut = m.indexOf(" not found in resource path");
        if (cut < 0) {
            cut = m.indexOf(": Native library");
        }
        m = cut > 0 ? m.substring(0, cut) + ": not found" : m;
        return m.length() > 200 ? m.substring(0, 200) + "..." : m;
    }

    /** oneDNN's version from {@code dnnl_version()} (a struct of three ints and two strings). */
    private static String version(NativeLibrary lib) {
        try {
            com.sun.jna.Pointer v = lib.getFunction("dnnl_version").invokePointer(new Object[0]);
            return v.getInt(0) + "." + v.getInt(4) + "." + v.getInt(8);
        } catch (Throwable t) {
            return "unknown version";
        }
    }

    /** The bytedeco jar's libdnnl.so.3 (and its OpenMP runtime) copied out of the class path, or null. */
    private static String fromClassPath(List<String> tried) {
        ClassLoader cl = Dnnl.class.getClassLoader();
        if (cl == null || cl.getResource(BYTEDECO_DIR + "libdnnl.so.3") == null) {
            return null;
        }
        try {
            Path dir = Path.of(System.getProperty("java.io.tmpdir"), "catena-dnnl-" + ProcessHandle.current().pid());
            Files.createDirectories(dir);
            for (String f : new String[] {"libgomp.so.1", "libdnnl.so.3"}) {
                try (InputStream in = cl.getResourceAsStream(BYTEDECO_DIR + f)) {
                    if (in != null) {
                        Files.copy(in, dir.resolve(f), StandardCopyOption.REPLACE_EXISTING);
                        dir.resolve(f).toFile().deleteOnExit();
                    }
                }
            }
            dir.toFile().deleteOnExit();
            // the bundled OpenMP runtime first, so the library's $ORIGIN dependency resolves to this copy
            if (Files.exists(dir.resolve("libgomp.so.1"))) {
                NativeLibrary.getInstance(dir.resolve("libgomp.so.1").toString());
            }
            return dir.resolve("libdnnl.so.3").toString();
        } catch (IOException | RuntimeException | UnsatisfiedLinkError e) {
            tried.add("class path " + BYTEDECO_DIR + "libdnnl.so.3 (" + e.getMessage() + ")");
            return null;
        }
    }

    /** Sets the library's OpenMP thread count to 1 for the calling thread, once per thread. */
    private static void oneThread() {
        boolean[] done = ONE_THREAD.get();
        if (!done[0]) {
            if (ompBound) {
                Omp.omp_set_num_threads(1);
            }
            done[0] = true;
        }
    }

    private static void check(int status, String what) {
        if (status != 0) {
            throw new IllegalStateException(what + " failed: dnnl_status_t " + status + " (" + describe() + ")");
        }
    }

    /** True when oneDNN is loaded and its bf16 GEMM computes a 2x2x2 product right on this CPU (natively or emulated). */
    public static boolean bf16Works() {
        if (!available()) {
            return false;
        }
        try (org.bytedeco.javacpp.ShortPointer a = new org.bytedeco.javacpp.ShortPointer(4);
             org.bytedeco.javacpp.FloatPointer c = new org.bytedeco.javacpp.FloatPointer(4)) {
            short one = (short) (Float.floatToRawIntBits(1f) >>> 16), two = (short) (Float.floatToRawIntBits(2f) >>> 16);
            a.put(0, one).put(1, two).put(2, two).put(3, one);
            gemmBf16(false, false, 2, 2, 2, a.address(), 2, a.address(), 2, 0f, c.address(), 2);
            return c.get(0) == 5f && c.get(1) == 4f && c.get(2) == 4f && c.get(3) == 5f; // [[1,2],[2,1]]^2
        } catch (RuntimeException | UnsatisfiedLinkError e) {
            return false;
        }
    }

    /** Row-major {@code C = alpha op(A) op(B) + beta C}, A and B bf16 (addresses), C fp32; single-threaded. */
    static void gemmBf16(boolean transA, boolean transB, int m, int n, int k, long a, int lda, long b, int ldb, float beta, long c, int ldc) {
        oneThread();
        check(Api.dnnl_gemm_bf16bf16f32(transA ? (byte) 'T' : (byte) 'N', transB ? (byte) 'T' : (byte) 'N', m, n, k, 1f, a, lda, b, ldb,
                beta, c, ldc), "dnnl_gemm_bf16bf16f32");
    }

    /** Row-major fp32 {@code C = alpha op(A) op(B) + beta C} (benchmarks compare it with OpenBLAS); single-threaded. */
    static void sgemm(boolean transA, boolean transB, int m, int n, int k, long a, int lda, long b, int ldb, float beta, long c, int ldc) {
        oneThread();
        check(Api.dnnl_sgemm(transA ? (byte) 'T' : (byte) 'N', transB ? (byte) 'T' : (byte) 'N', m, n, k, 1f, a, lda, b, ldb, beta, c, ldc),
                "dnnl_sgemm");
    }
}
