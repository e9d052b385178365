package io.catena.data;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** Test corpus access. */
public final class TestData {

    private TestData() {
    }

    /** The KJV Genesis verses (src/test/resources/corpus/kjv-genesis.txt), one per element. */
    public static List<String> genesis() {
        return List.of(genesisText().split("\n"));
    }

    public static String genesisText() {
        try (InputStream in = TestData.class.getResourceAsStream("/corpus/kjv-genesis.txt")) {
            if (in == null) {
                throw new IllegalStateException("test resource /corpus/kjv-genesis.txt is missing");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
