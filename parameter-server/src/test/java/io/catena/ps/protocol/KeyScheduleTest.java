package io.catena.ps.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class KeyScheduleTest {
    static final byte[] SECRET = "job-secret-0123456789abcdef".getBytes(StandardCharsets.UTF_8);

    @Test
    void shouldDeriveTheSameKeysOnBothSidesAndDistinctKeysPerDirectionGenerationAndSession() {
        byte[] nc = KeySchedule.randomNonce();
        byte[] ns = KeySchedule.randomNonce();
        KeySchedule a = KeySchedule.session(SECRET, 42, nc, ns, 24);
        KeySchedule b = KeySchedule.session(SECRET, 42, nc.clone(), ns.clone(), 24);
        Set<String> keys = new HashSet<>();
        for (KeySchedule.Direction d : KeySchedule.Direction.values()) {
            assertArrayEquals(a.directionKey(d, 0), b.directionKey(d, 0));
            assertArrayEquals(a.nonceSalt(d), b.nonceSalt(d));
            keys.add(Arrays.toString(a.directionKey(d, 0)));
            keys.add(Arrays.toString(a.directionKey(d, 1)));
        }
        assertEquals(6, keys.size(), "every direction and generation has its own key");
        KeySchedule other = KeySchedule.session(SECRET, 42, KeySchedule.randomNonce(), ns, 24);
        assertFalse(Arrays.equals(a.directionKey(KeySchedule.Direction.CLIENT_TO_SERVER, 0),
                other.directionKey(KeySchedule.Direction.CLIENT_TO_SERVER, 0)));
        KeySchedule otherJob = KeySchedule.session(SECRET, 43, nc, ns, 24);
        assertFalse(Arrays.equals(a.directionKey(KeySchedule.Direction.CLIENT_TO_SERVER, 0),
                otherJob.directionKey(KeySchedule.Direction.CLIENT_TO_SERVER, 0)));
        KeySchedule otherSecret = KeySchedule.session("another-secret-0123456789".getBytes(StandardCharsets.UTF_8), 42, nc, ns, 24);
        assertFalse(Arrays.equals(a.directionKey(KeySchedule.Direction.CLIENT_TO_SERVER, 0),
                otherSecret.directionKey(KeySchedule.Direction.CLIENT_TO_SERVER, 0)));
    }

    @Test
    void shouldHandOutEverySequenceNumberOnceAndMoveToANewKeyEveryGeneration() {
        KeySchedule k = KeySchedule.session(SECRET, 1, KeySchedule.randomNonce(), KeySchedule.randomNonce(), 3);
        TrafficKey t = k.traffic(KeySchedule.Direction.SERVER_TO_CLIENT);
        Set<String> nonces = new HashSet<>();
        byte[] n = new byte[12];
        for (int i = 0; i < 40; i++) {
            long s = t.nextSequence();
            assertEquals(i, s);
            t.nonce(s, n);
            assertTrue(nonces.add(Arrays.toString(n)), "nonce repeated at " + s);
            assertEquals(s >>> 3, t.generation(s));
            t.keyFor(s);
        }
        assertEquals(5, t.derivations(), "40 frames at 8 per key: 5 generations");
        assertEquals(t.keyFor(39), t.keyFor(39));
    }

    @Test
    void shouldRefuseBadNoncesAndShifts() {
        assertThrows(IllegalArgumentException.class, () -> KeySchedule.session(SECRET, 1, new byte[8], KeySchedule.randomNonce(), 24));
        assertThrows(IllegalArgumentException.class, () -> KeySchedule.broadcast(SECRET, 1, KeySchedule.randomNonce(), 1));
        assertNotEquals(KeySchedule.jobId("a"), KeySchedule.jobId("b"));
        assertEquals(KeySchedule.jobId("run-42"), KeySchedule.jobId("run-42"));
    }
}
