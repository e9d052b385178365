package io.catena.ps.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RejectReasonTest {
    @Test
    void everyCodeIsUniqueMapsBackAndIsDescribed() {
        Set<Integer> codes = new HashSet<>();
        for (RejectReason r : RejectReason.values()) {
            assertEquals(r, RejectReason.of(r.code), r.name());
            assertTrue(codes.add(r.code), "duplicate code " + r.code);
            assertFalse(r.description.isBlank(), r.name() + " has a description");
        }
    }

    @Test
    void wireCodesAreFixed() {
        assertEquals(1, RejectReason.MALFORMED.code);
        assertEquals(6, RejectReason.STALE_EPOCH.code);
        assertEquals(9, RejectReason.NON_FINITE.code);
        assertEquals(14, RejectReason.HANDSHAKE_FAILED.code);
    }

    @Test
    void unknownCodesAreNull() {
        assertNull(RejectReason.of(0));
        assertNull(RejectReason.of(-3));
        assertNull(RejectReason.of(16));
    }
}
