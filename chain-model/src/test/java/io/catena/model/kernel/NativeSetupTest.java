package io.catena.model.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The host's native path is chosen before ND4J and OpenBLAS load, read back after, and never falls
 * silently to a kernel far below the CPU. Each case runs in a child JVM of its own (a library loads once
 * per process), with the environment that case needs.
 */
class NativeSetupTest {
    private static final HostCpu CPU = HostCpu.read();

    @Test
    void shouldReportThePathThisJvmUses() {
        NativeSetup.Report r = NativeSetup.report();
        assertTrue(r.gflops() > 0, "a measured speed: " + r);
        assertEquals(Gemm.engine().name().toLowerCase(Locale.ROOT), r.engine());
        assertNotEquals("unknown", r.openblasCore(), "the loaded OpenBLAS is asked for its kernel");
        assertTrue(r.nd4jBuild().startsWith("linux-"), "the loaded ND4J build is named: " + r.nd4jBuild());
        assertTrue(r.line().contains(r.openblasCore()) && r.line().contains("GFLOP/s"), r.line());
        assertTrue(r.toMap().keySet().containsAll(List.of("gemm_engine", "gemm_gflops", "openblas_core", "nd4j_natives", "cpu")));
        assertEquals(r, NativeSetup.report(), "measured once per process");
    }

    @Test
    void shouldChooseTheKernelFromTheCpuBeforeOpenblasLoads(@TempDir Path tmp) throws Exception {
        Map<String, Object> r = child(tmp, List.of(), "report");
        String want = CPU.openblasCoreType();
        if (want != null) {
            assertEquals(want.toLowerCase(Locale.ROOT), String.valueOf(r.get("openblas_core")).toLowerCase(Locale.ROOT),
                    "with no OPENBLAS_CORETYPE the kernel is the one chosen for " + CPU.describe() + ": " + r);
            assertEquals("split", r.get("gemm_engine"));
        }
        if (CPU.x86()) {
            assertEquals("linux-x86_64" + CPU.nd4jVariant(), r.get("nd4j_natives"), "the ND4J build chosen for the CPU: " + r);
        }
    }

    @Test
    void shouldKeepAnExplicitKernelSayWhenItIsBelowTheHostAndTrainTheSame(@TempDir Path tmp) throws Exception {
        Map<String, Object> r = child(tmp, List.of("-Dcatena.openblas.coretype=Prescott"), "train");
        assertEquals("prescott", String.valueOf(r.get("openblas_core")).toLowerCase(Locale.ROOT), "explicit settings win: " + r);
        assertEquals("split", r.get("gemm_engine"), "asked for, so kept");
        if (CPU.isaLevel() >= HostCpu.ISA_AVX2) {
            assertTrue(String.valueOf(r.get("notes")).contains("Prescott"), "never silent: " + r);
        }
        assertSameLosses(autoTraining(tmp), r, 1e-4); // another kernel rounds differently, nothing more
    }

    @Test
    void shouldLeaveAnOpenblasKernelFarBelowTheCpuForOnednn(@TempDir Path tmp) throws Exception {
        // OpenBLAS loaded before Catena could choose: its own table decides, and the result is checked
        Map<String, Object> r = child(tmp, List.of(), "preloaded");
        int core = HostCpu.coreIsaLevel(String.valueOf(r.get("openblas_core")));
        boolean farBelow = core != HostCpu.ISA_UNKNOWN && CPU.isaLevel() - core >= 2;
        assertEquals(farBelow ? "nd4j" : "split", r.get("gemm_engine"), "OpenBLAS chose " + r.get("openblas_core")
                + " on " + CPU.describe() + ": " + r);
        if (farBelow) {
            assertTrue(String.valueOf(r.get("notes")).contains("oneDNN"), "never silent: " + r);
        }
    }

    @Test
    void shouldTrainOnTheGenericX86BuildWithTheSameLosses(@TempDir Path tmp) throws Exception {
        Map<String, Object> generic = child(tmp, List.of("-D" + NativeSetup.VARIANT_PROPERTY + "=" + HostCpu.VARIANT_X86_GENERIC), "train");
        if (CPU.x86()) {
            assertEquals("linux-x86_64-onednn", generic.get("nd4j_natives"), "the non-AVX-512 build was forced: " + generic);
        }
        Map<String, Object> auto = autoTraining(tmp);
        assertEquals(auto.get("openblas_core"), generic.get("openblas_core"));
        assertSameLosses(auto, generic, 1e-5);
        List<?> a = (List<?>) auto.get("losses");
        double first = ((Number) ((List<?>) a.get(0)).get(1)).doubleValue();
        double last = ((Number) ((List<?>) a.get(a.size() - 1)).get(1)).doubleValue();
        assertTrue(last < first, "it trains: " + first + " -> " + last);
    }

    private static Map<String, Object> autoTrained;

    /** The default path's 8 training steps, run once for the comparisons. */
    private static synchronized Map<String, Object> autoTraining(Path tmp) throws Exception {
        if (autoTrained == null) {
            autoTrained = child(tmp, List.of(), "train");
        }
        return autoTrained;
    }

    private static void assertSameLosses(Map<String, Object> want, Map<String, Object> got, double relTol) {
        List<?> a = (List<?>) want.get("losses");
        List<?> g = (List<?>) got.get("losses");
        assertEquals(8, a.size());
        assertEquals(a.size(), g.size());
        for (int s = 0; s < a.size(); s++) {
            List<?> la = (List<?>) a.get(s);
            List<?> lg = (List<?>) g.get(s);
            for (int k = 0; k < la.size(); k++) {
                double x = ((Number) la.get(k)).doubleValue();
                double y = ((Number) lg.get(k)).doubleValue();
                assertEquals(x, y, relTol * Math.abs(x), "step " + (s + 1) + " scale " + (k + 1) + ": " + want.get("nd4j_natives") + " / "
                        + want.get("openblas_core") + " vs " + got.get("nd4j_natives") + " / " + got.get("openblas_core"));
            }
        }
    }

    /** Runs NativeSetupProbeMain in a child JVM without OPENBLAS_CORETYPE in its environment; returns its JSON. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> child(Path tmp, List<String> jvmArgs, String mode) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules=jdk.incubator.vector", "-Xmx1g", "-XX:+UseSerialGC", "-Djava.io.tmpdir=" + tmp,
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"));
        String cache = System.getProperty("org.bytedeco.javacpp.cachedir");
        if (cache != null) {
            cmd.add("-Dorg.bytedeco.javacpp.cachedir=" + cache);
        }
        cmd.addAll(jvmArgs);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), NativeSetupProbeMain.class.getName(), mode));
        Path log = Files.createTempFile(tmp, "child", ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().remove(NativeSetup.CORETYPE_ENV);
        pb.environment().put("OMP_WAIT_POLICY", "passive");
        Process p = pb.start();
        if (!p.waitFor(180, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("child JVM did not finish in 180 s: " + Files.readString(log));
        }
        String out = Files.readString(log, StandardCharsets.UTF_8);
        for (String line : out.split("\n")) {
            if (line.startsWith("RESULT ")) {
                return new ObjectMapper().readValue(line.substring(7), Map.class);
            }
        }
        throw new AssertionError("child JVM (exit " + p.exitValue() + ") printed no result:\n" + out);
    }
}
