package io.catena.model.golden;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The PyTorch oracle's own checks (python/test_torch_colm.py: tensor names and shapes against MODEL.md, chain causality,
 * save/load, float64 gradcheck, ...) run in every `mvn -B verify`, so the model the parity tests trust is itself tested.
 */
class TorchModelSelfCheckTest {

    @Test
    void shouldPassThePythonModelsOwnTests() throws Exception {
        String log = TorchParityTest.python("test_torch_colm.py");
        assertTrue(log.contains(" passed, 0 failed") && !log.contains("FAIL "), log);
    }
}
