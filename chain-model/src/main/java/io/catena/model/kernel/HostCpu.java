package io.catena.model.kernel;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * What the host CPU can run, read from {@code /proc/cpuinfo}, and the native code that fits it: the
 * OpenBLAS kernel ({@code OPENBLAS_CORETYPE}) and the ND4J native variant. OpenBLAS's own detection
 * is by CPU model table, so a CPU newer than the table gets a generic kernel: the OpenBLAS 0.3.19 that
 * nd4j-native ships reports {@code Prescott} (SSE3) on Sapphire/Emerald Rapids Xeons and
 * {@code Barcelona} on AMD Zen 5, 4-5x below their AVX-512 kernels. Choosing from the instruction-set
 * flags instead works for every CPU that has them, including ones released after the library.
 *
 * <p>Pure parsing: no native code is touched here (the choice must be made before OpenBLAS loads).
 */
public record HostCpu(String arch, String vendor, String modelName, String part, Set<String> flags) {

    /** Instruction-set levels, ordered: a kernel below the host's level leaves speed on the table. */
    public static final int ISA_UNKNOWN = 0, ISA_SSE = 1, ISA_AVX = 2, ISA_AVX2 = 3, ISA_AVX512 = 4;

    /** The ND4J native variants the app jar ships for x86-64 (JavaCPP platform extensions). */
    public static final String VARIANT_X86_AVX512 = "-onednn-avx512";
    public static final String VARIANT_X86_GENERIC = "-onednn";

    private static final Set<String> AVX512_CORE = Set.of("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd");

    /**
     * Flags to treat as absent, comma-separated ({@code -Dcatena.cpu.hide=avx512_bf16,amx_bf16}): shows what a host
     * without them gets (tests of the precision=bf16 refusal; diagnosis).
     */
    public static final String HIDE_PROPERTY = "catena.cpu.hide";

    /** The host's CPU; an empty description where /proc/cpuinfo cannot be read (OpenBLAS then decides alone). */
    public static HostCpu read() {
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        try {
            return parse(arch, Files.readString(Path.of("/proc/cpuinfo"))).hiding(System.getProperty(HIDE_PROPERTY, ""));
        } catch (IOException | RuntimeException e) {
            return new HostCpu(normalArch(arch), "", "", "", Set.of());
        }
    }

    /** This CPU without the comma-separated flags named. */
    public HostCpu hiding(String names) {
        if (names == null || names.isBlank()) {
            return this;
        }
        Set<String> kept = new TreeSet<>(flags);
        for (String n : names.split(",")) {
            kept.remove(n.trim().toLowerCase(Locale.ROOT));
        }
        return new HostCpu(arch, vendor, modelName, part, Set.copyOf(kept));
    }

    /** Whether the CPU multiplies bf16 natively: AVX512_BF16 (Zen 4+, Cooper Lake+) or AMX-BF16 (Sapphire Rapids+). */
    public boolean bf16() {
        return x86() && (flags.contains("avx512_bf16") || flags.contains("amx_bf16"));
    }

    /** Parses the first processor's entry of a {@code /proc/cpuinfo} text (x86 "flags", aarch64 "Features"). */
    public static HostCpu parse(String osArch, String cpuinfo) {
        String vendor = "", model = "", part = "";
        Set<String> flags = new TreeSet<>();
        boolean seenFlags = false;
        for (String line : cpuinfo.split("\n")) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String key = line.substring(0, colon).trim();
            String value = line.substring(colon + 1).trim();
            switch (key) {
                case "vendor_id", "CPU implementer" -> vendor = vendor.isEmpty() ? value : vendor;
                case "model name" -> model = model.isEmpty() ? value : model;
                case "CPU part" -> part = part.isEmpty() ? value : part;
                case "flags", "Features" -> {
                    if (!seenFlags) {
                        flags.addAll(Arrays.asList(value.toLowerCase(Locale.ROOT).split("\\s+")));
                        seenFlags = true;
                    }
                }
                default -> {
                }
            }
        }
        return new HostCpu(normalArch(osArch), vendor, model, part, Set.copyOf(flags));
    }

    private static String normalArch(String osArch) {
        return switch (osArch) {
            case "amd64", "x86_64", "x86-64" -> "x86_64";
            case "aarch64", "arm64" -> "aarch64";
            default -> osArch;
        };
    }

    public boolean x86() {
        return arch.equals("x86_64");
    }

    public boolean aarch64() {
        return arch.equals("aarch64");
    }

    /** The widest vector instruction set the host runs fully (x86 only; other architectures: unknown). */
    public int isaLevel() {
        if (!x86() || flags.isEmpty()) {
            return ISA_UNKNOWN;
        }
        if (flags.containsAll(AVX512_CORE)) {
            return ISA_AVX512;
        }
        if (flags.contains("avx2") && flags.contains("fma")) {
            return ISA_AVX2;
        }
        return flags.contains("avx") ? ISA_AVX : ISA_SSE;
    }

    /**
     * The OpenBLAS 0.3.19 kernel that fits the host, or null to leave OpenBLAS's own detection (no
     * better choice known). x86: chosen by instruction set, not by model. aarch64: Arm Neoverse cores
     * (Graviton 2/3/4, Ampere Altra, Cobalt) get the Neoverse N1 kernel, which 0.3.19 assigns to N1
     * only and leaves newer Neoverse parts on the generic ARMv8 one.
     */
    public String openblasCoreType() {
        if (x86()) {
            return switch (isaLevel()) {
                case ISA_AVX512 -> flags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX";
                case ISA_AVX2 -> vendor.equals("AuthenticAMD") || vendor.equals("HygonGenuine") ? "Zen" : "Haswell";
                case ISA_AVX -> "Sandybridge";
                default -> null;
            };
        }
        if (aarch64() && vendor.equalsIgnoreCase("0x41")
                && Set.of("0xd0c", "0xd40", "0xd49", "0xd4f", "0xd8e").contains(part.toLowerCase(Locale.ROOT))) {
            return "NeoverseN1";
        }
        return null;
    }

    /**
     * The ND4J native variant to load (a JavaCPP platform extension): the AVX-512 build where the CPU
     * has AVX-512, else the generic x86-64 build (its oneDNN still picks AVX2/AVX-512 code at run
     * time); aarch64 has one build (no extension).
     */
    public String nd4jVariant() {
        if (!x86()) {
            return "";
        }
        return isaLevel() == ISA_AVX512 ? VARIANT_X86_AVX512 : VARIANT_X86_GENERIC;
    }

    /**
     * The instruction-set level of an OpenBLAS x86 kernel by the name {@code openblas_get_corename}
     * reports (case-insensitive), or {@link #ISA_UNKNOWN} for a name not known here (other
     * architectures, newer kernels).
     */
    public static int coreIsaLevel(String coreName) {
        if (coreName == null) {
            return ISA_UNKNOWN;
        }
        return switch (coreName.toLowerCase(Locale.ROOT)) {
            case "skylakex", "cooperlake", "sapphirerapids" -> ISA_AVX512;
            case "haswell", "zen" -> ISA_AVX2;
            case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator" -> ISA_AVX;
            case "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington",
                 "nehalem", "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat", "unknown" -> ISA_SSE;
            default -> ISA_UNKNOWN;
        };
    }

    public static String isaName(int level) {
        return switch (level) {
            case ISA_AVX512 -> "AVX-512";
            case ISA_AVX2 -> "AVX2";
            case ISA_AVX -> "AVX";
            case ISA_SSE -> "SSE";
            default -> "unknown";
        };
    }

    /**
     * Prints this host's choice: {@code --openblas-coretype} the kernel name alone (empty line: none),
     * otherwise the CPU, the kernel and the ND4J build (benchmarks give their peers the same kernel).
     */
    public static void main(String[] args) {
        HostCpu c = read();
        String core = c.openblasCoreType();
        if (args.length > 0 && args[0].equals("--openblas-coretype")) {
            System.out.println(core == null ? "" : core);
            return;
        }
        System.out.println("cpu " + c.describe() + "\nopenblas_coretype " + (core == null ? "(OpenBLAS's own detection)" : core)
                + "\nnd4j_build linux-" + (c.x86() ? "x86_64" : c.aarch64() ? "arm64" : c.arch()) + c.nd4jVariant());
    }

    /** One line: model, architecture and vector level, e.g. {@code "AMD EPYC (x86_64, AVX-512, avx512_bf16)"}. */
    public String describe() {
        String name = modelName.isEmpty() ? (part.isEmpty() ? "unknown CPU" : "CPU part " + part) : modelName;
        String extra = flags.contains("amx_bf16") ? ", amx_bf16" : flags.contains("avx512_bf16") ? ", avx512_bf16" : "";
        return name + " (" + arch + (x86() ? ", " + isaName(isaLevel()) + extra : "") + ")";
    }
}
