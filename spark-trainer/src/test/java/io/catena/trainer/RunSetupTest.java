package io.catena.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The driver's wait for task slots grows with the executors a stage needs, and --slot-wait-ms replaces it. */
class RunSetupTest {

    @Test
    void slotWaitGrowsWithTheExecutorsTheStageNeeds() {
        assertEquals(75_000, RunSetup.defaultSlotWaitMs(2, 2)); // one executor
        assertEquals(90_000, RunSetup.defaultSlotWaitMs(3, 2)); // two, the second half used
        assertTrue(RunSetup.defaultSlotWaitMs(64, 1) > RunSetup.defaultSlotWaitMs(8, 1));
        assertEquals(0, TrainOptions.parse(new String[]{"--data", "d", "--recipe", "r", "--out", "o"}, k -> null).slotWaitMs(),
                "0 = the default that scales");
        assertEquals(5, TrainOptions.parse(new String[]{"--data", "d", "--recipe", "r", "--out", "o", "--slot-wait-ms", "5"},
                k -> null).slotWaitMs());
    }
}
