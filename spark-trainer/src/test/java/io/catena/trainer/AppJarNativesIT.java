package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.jar.JarFile;
import org.junit.jupiter.api.Test;

/**
 * The spark-submit app jar runs on every executor CPU a cluster mixes: the ND4J build for AVX-512, the
 * generic x86-64 one and linux-arm64, with OpenBLAS, JavaCPP and JNA natives for both architectures
 * (NativeSetup picks per executor at run time). nd4j-native's plain linux-x86_64 build, which nothing
 * selects, stays out (it is 90 MB).
 */
class AppJarNativesIT {

    @Test
    void shouldCarryNativesForAvx512GenericX86AndAarch64() throws Exception {
        Path appJar = Path.of(System.getProperty("catena.it.app.jar")).toAbsolutePath();
        assertTrue(Files.isRegularFile(appJar), "app jar " + appJar + " missing: failsafe runs after package");
        Set<String> entries = new TreeSet<>();
        try (JarFile jar = new JarFile(appJar.toFile())) {
            jar.stream().forEach(e -> entries.add(e.getName()));
        }
        String nd4j = "org/nd4j/linalg/cpu/nativecpu/bindings/";
        List<String> missing = new ArrayList<>();
        for (String want : List.of(
                nd4j + "linux-x86_64-onednn-avx512/libnd4jcpu.so", nd4j + "linux-x86_64-onednn-avx512/libjnind4jcpu.so",
                nd4j + "linux-x86_64-onednn/libnd4jcpu.so", nd4j + "linux-x86_64-onednn/libjnind4jcpu.so",
                nd4j + "linux-arm64/libnd4jcpu.so", nd4j + "linux-arm64/libjnind4jcpu.so",
                "org/bytedeco/openblas/linux-x86_64/libopenblas.so.0", "org/bytedeco/openblas/linux-arm64/libopenblas.so.0",
                "org/bytedeco/openblas/linux-arm64/libjniopenblas.so",
                "org/bytedeco/javacpp/linux-x86_64/libjnijavacpp.so", "org/bytedeco/javacpp/linux-arm64/libjnijavacpp.so",
                "com/sun/jna/linux-x86-64/libjnidispatch.so", "com/sun/jna/linux-aarch64/libjnidispatch.so",
                "io/catena/model/kernel/NativeSetup.class")) {
            if (!entries.contains(want)) {
                missing.add(want);
            }
        }
        assertEquals(List.of(), missing, "natives missing from " + appJar);
        assertTrue(entries.stream().noneMatch(e -> e.startsWith(nd4j + "linux-x86_64/")),
                "the unused plain linux-x86_64 ND4J build is shaded in");
    }
}
