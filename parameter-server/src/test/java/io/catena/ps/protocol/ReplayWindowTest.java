package io.catena.ps.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ReplayWindowTest {

    @Test
    void shouldAcceptInOrderAndRefuseRepeats() {
        ReplayWindow w = new ReplayWindow();
        for (long s = 0; s < 200; s++) {
            assertTrue(w.isFresh(s));
            w.accept(s);
            assertFalse(w.isFresh(s), "sequence " + s + " accepted twice");
        }
        assertEquals(199, w.highest());
        assertFalse(w.isFresh(150));
        assertFalse(w.isFresh(-1));
    }

    @Test
    void shouldAcceptReorderingInsideTheWindowOnce() {
        ReplayWindow w = new ReplayWindow();
        w.accept(100);
        for (long s = 99; s > 100 - ReplayWindow.SIZE; s--) {
            assertTrue(w.isFresh(s), "reordered " + s);
            w.accept(s);
            assertFalse(w.isFresh(s));
        }
        assertEquals(100, w.highest());
        w.accept(105); // gap: 101..104 still fresh
        for (long s = 101; s <= 104; s++) {
            assertTrue(w.isFresh(s));
        }
        assertFalse(w.isFresh(100));
        assertFalse(w.isFresh(99));
    }

    @Test
    void shouldRefuseAnythingOlderThanTheWindow() {
        ReplayWindow w = new ReplayWindow();
        w.accept(0);
        w.accept(ReplayWindow.SIZE + 10);
        assertTrue(w.isTooOld(10));
        assertFalse(w.isFresh(10), "never seen, but below the window: refused");
        assertFalse(w.isTooOld(11));
        assertTrue(w.isFresh(11));
        w.accept(1_000_000); // a jump clears the bitmap
        assertTrue(w.isFresh(1_000_000 - 1));
        assertFalse(w.isFresh(1_000_000 - ReplayWindow.SIZE));
    }
}
