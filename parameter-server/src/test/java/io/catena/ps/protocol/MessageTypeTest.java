package io.catena.ps.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class MessageTypeTest {
    @Test
    void everyCodeIsUniqueAndMapsBack() {
        Set<Integer> codes = new HashSet<>();
        for (MessageType t : MessageType.values()) {
            assertEquals(t, MessageType.of(t.code), t.name());
            assertEquals(true, codes.add(t.code), "duplicate code " + t.code);
        }
    }

    @Test
    void wireCodesAreFixed() {
        // the frame carries these numbers: changing one breaks every peer of another build
        assertEquals(1, MessageType.HELLO.code);
        assertEquals(4, MessageType.PUSH.code);
        assertEquals(6, MessageType.PULL.code);
        assertEquals(8, MessageType.PARAMS.code);
        assertEquals(14, MessageType.CHALLENGE.code);
        assertEquals(15, MessageType.PROOF.code);
    }

    @Test
    void unknownCodesAreNull() {
        assertNull(MessageType.of(0));
        assertNull(MessageType.of(-1));
        assertNull(MessageType.of(16));
        assertNull(MessageType.of(Integer.MAX_VALUE));
    }
}
