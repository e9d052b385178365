package io.catena.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The PyTorch oracle's own checks (python/test_torch_colm.py: tensor names and shapes against MODEL.md, chain causality,
 * save/load, float64 gradcheck, ...) run in every `mvn -B verify`, so the model the parity tests trust is itself tested.
 */
class TorchModelSelfCheckTest {

    @Test
    void shouldPassThePythonModelsOwnTests() throws Exception {
        Path python = Path.of("/usr/bin/python3");
        assertTrue(Files.isExecutable(python), python + " is missing; run .ci/run (it installs python3-torch)");
        Process p = new ProcessBuilder(python.toString(), Path.of("python", "test_torch_colm.py").toAbsolutePath().toString())
                .redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "test_torch_colm.py did not finish in 300 s:\n" + log);
        assertEquals(0, p.exitValue(), "test_torch_colm.py failed:\n" + log);
        assertTrue(log.contains(" passed, 0 failed") && !log.contains("FAIL "), log);
    }
}
