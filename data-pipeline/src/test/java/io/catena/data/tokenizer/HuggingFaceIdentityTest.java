package io.catena.data.tokenizer;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.catena.data.TestData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Our tokenizer.json loaded by HuggingFace tokenizers (Rust, via DJL) must give the same ids as our
 * encoder: same pre-tokenization, same merge order, same vocabulary.
 */
class HuggingFaceIdentityTest {

    @TempDir
    static Path dir;
    static ByteLevelBpe ours;
    static HuggingFaceTokenizer hf;

    @BeforeAll
    static void load() throws Exception {
        ours = BpeTrainer.train(ByteLevelBpeTest.wordCounts(TestData.genesisText()), 2000, 2);
        Path json = dir.resolve("tokenizer.json");
        Files.writeString(json, TokenizerJson.toJson(ours));
        // DJL truncates to 512 tokens by default: turn that off to compare whole texts
        hf = HuggingFaceTokenizer.builder().optTokenizerPath(json).optTruncation(false).optPadding(false).build();
    }

    @AfterAll
    static void close() {
        if (hf != null) {
            hf.close();
        }
    }

    private static int[] hfIds(String text) {
        Encoding e = hf.encode(text, false, false);
        long[] ids = e.getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = (int) ids[i];
        }
        return out;
    }

    @Test
    void shouldEncodeEveryVerseToTheSameIdsAsHuggingFace() {
        List<String> verses = TestData.genesis();
        for (String v : verses) {
            assertArrayEquals(hfIds(v), ours.encode(v), v);
        }
        String chapter = String.join("\n", verses.subList(0, 31));
        assertArrayEquals(hfIds(chapter), ours.encode(chapter));
        assertEquals(chapter, new String(ours.decode(hfIds(chapter)), StandardCharsets.UTF_8));
    }

    @Test
    void shouldMatchHuggingFaceOnRandomUnicodeText() {
        Random r = new Random(5);
        for (int i = 0; i < 2000; i++) {
            String s = ByteLevelBpeTest.randomText(r, r.nextInt(60));
            assertArrayEquals(hfIds(s), ours.encode(s), "\"" + s.replace("\n", "\\n") + "\"");
        }
    }
}
