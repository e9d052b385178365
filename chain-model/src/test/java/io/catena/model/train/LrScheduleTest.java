package io.catena.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.optim.LrSchedule;
import org.junit.jupiter.api.Test;

/** A continued schedule: continuous at the resume step, monotone down to min_lr at the new total, and recorded exactly. */
class LrScheduleTest {

    @Test
    void continuingDecaysFromTheRateReachedToMinLrAtTheNewTotal() {
        LrSchedule old = new LrSchedule(3e-3, 3e-4, 30, 400);
        LrSchedule next = new LrSchedule(3e-3, 3e-4, 30, 1000);
        LrSchedule c = LrSchedule.continuing(old, 400, next);
        assertEquals(old.at(400), c.continueLr(), 0);
        assertEquals(old.at(400), c.at(401), 1e-9, "no jump at the resume step");
        double prev = c.at(401);
        for (long s = 402; s <= 1000; s++) {
            assertTrue(c.at(s) <= prev + 1e-15, "monotone at step " + s);
            prev = c.at(s);
        }
        assertEquals(3e-4, c.at(1000), 0);
        assertTrue(next.at(401) > 3 * c.at(401), "the plain 1000-step schedule would have jumped back up: " + next.at(401));
        assertEquals(c, LrSchedule.fromMap(c.toMap()), "a checkpoint records it exactly");
        assertSame(c, LrSchedule.continuing(c, 700, new LrSchedule(3e-3, 3e-4, 30, 1000)), "same length: the same schedule");
        assertSame(next, LrSchedule.continuing(old, 20, next), "inside the warmup the length does not matter yet");
        assertEquals(next, new TrainSettings(16, 128, 1000, 3e-3, 3e-4, 30, io.catena.model.optim.AdamW.Settings.defaults(), 1, 0,
                1, 10, 0, 0.05, 0).scheduleResuming(java.util.Map.of(), 400, false), "a checkpoint without a schedule or steps_planned");
    }
}
