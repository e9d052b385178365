package io.catena.model.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The kernel and native variant chosen from /proc/cpuinfo texts of the CPU generations a Spark cluster mixes. */
class HostCpuTest {

    private static String x86(String vendor, String model, String flags) {
        return "processor\t: 0\nvendor_id\t: " + vendor + "\nmodel name\t: " + model + "\nflags\t\t: " + flags + "\n\n"
                + "processor\t: 1\nvendor_id\t: " + vendor + "\nflags\t\t: fpu sse sse2\n";
    }

    private static final String SSE = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt";
    private static final String AVX2 = SSE + " avx f16c fma avx2 bmi1 bmi2";
    private static final String AVX512 = AVX2 + " avx512f avx512dq avx512cd avx512bw avx512vl";

    @Test
    void shouldGiveSapphireRapidsTheAvx512KernelThatOpenblasOwnTableMisses() {
        HostCpu c = HostCpu.parse("amd64", x86("GenuineIntel", "Intel(R) Xeon(R) Platinum 8481C",
                AVX512 + " avx512_bf16 amx_bf16 amx_tile amx_int8"));
        assertEquals(HostCpu.ISA_AVX512, c.isaLevel());
        assertEquals("Cooperlake", c.openblasCoreType());
        assertEquals("-onednn-avx512", c.nd4jVariant());
        assertTrue(c.describe().contains("AVX-512") && c.describe().contains("amx_bf16"), c.describe());
        // what OpenBLAS 0.3.19 detects there, three levels below the host
        assertEquals(HostCpu.ISA_SSE, HostCpu.coreIsaLevel("Prescott"));
    }

    @Test
    void shouldChooseByInstructionSetForEveryGeneration() {
        assertEquals("SkylakeX", HostCpu.parse("amd64", x86("GenuineIntel", "Xeon Gold 6148", AVX512)).openblasCoreType());
        assertEquals("Cooperlake", HostCpu.parse("amd64", x86("AuthenticAMD", "AMD EPYC 9R14", AVX512 + " avx512_bf16")).openblasCoreType());
        HostCpu zen3 = HostCpu.parse("amd64", x86("AuthenticAMD", "AMD EPYC 7R13", AVX2));
        assertEquals("Zen", zen3.openblasCoreType());
        assertEquals("-onednn", zen3.nd4jVariant(), "no AVX-512: the generic x86-64 build (it would crash in the AVX-512 one)");
        assertEquals("Haswell", HostCpu.parse("amd64", x86("GenuineIntel", "Xeon E5-2686 v4", AVX2)).openblasCoreType());
        assertEquals("Sandybridge", HostCpu.parse("amd64", x86("GenuineIntel", "Xeon E5-2670", SSE + " avx")).openblasCoreType());
        HostCpu old = HostCpu.parse("amd64", x86("GenuineIntel", "Xeon X5670", SSE));
        assertNull(old.openblasCoreType(), "nothing better known than OpenBLAS's own choice");
        assertEquals(HostCpu.ISA_SSE, old.isaLevel());
        // AVX-512F alone (Knights Landing) lacks BW/VL: not the SkylakeX kernel's instruction set
        assertEquals(HostCpu.ISA_AVX2, HostCpu.parse("amd64", x86("GenuineIntel", "Xeon Phi 7250", AVX2 + " avx512f avx512cd")).isaLevel());
    }

    @Test
    void shouldReadOnlyTheFirstProcessorsFlags() {
        HostCpu c = HostCpu.parse("x86_64", x86("GenuineIntel", "X", AVX512));
        assertTrue(c.flags().contains("avx512bw"));
        assertEquals("X", c.modelName());
    }

    @Test
    void shouldGiveNeoverseCoresTheNeoverseKernelAndArmOneBuild() {
        String graviton3 = "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 sve bf16\n"
                + "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd40\n";
        HostCpu c = HostCpu.parse("aarch64", graviton3);
        assertTrue(c.aarch64());
        assertEquals("NeoverseN1", c.openblasCoreType());
        assertEquals("", c.nd4jVariant(), "linux-arm64 has one build");
        assertEquals(HostCpu.ISA_UNKNOWN, c.isaLevel(), "no x86 level to compare kernels with");
        HostCpu other = HostCpu.parse("aarch64", graviton3.replace("0x41", "0x61").replace("0xd40", "0x022"));
        assertNull(other.openblasCoreType());
    }

    @Test
    void shouldReadThisHost() {
        HostCpu c = HostCpu.read();
        assertFalse(c.arch().isEmpty());
        if (c.x86()) {
            assertTrue(c.isaLevel() >= HostCpu.ISA_SSE, "an x86-64 host has SSE2 at least: " + c.flags());
        }
    }
}
