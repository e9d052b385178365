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
import static org.junit.jupiter.api.Assertions.assertTrue;

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

    /**
     * Source code (the benchmark corpus is the JDK's Java source): indentation runs, tabs, CRLF, operators,
     * long multi-line documents. Ids must match a HuggingFace tokenizer loading the same tokenizer.json,
     * here one trained on half of this module's own sources and compared on all of them.
     */
    @Test
    void shouldEncodeJavaSourceCodeToTheSameIdsAsHuggingFace() throws Exception {
        List<Path> files;
        try (var s = Files.walk(Path.of("src"))) {
            files = s.filter(p -> p.toString().endsWith(".java")).sorted().toList();
        }
        assertTrue(files.size() >= 20, "expected this module's sources under src/, found " + files.size() + " files");
        java.util.Map<String, Long> counts = new java.util.HashMap<>();
        for (int i = 0; i < files.size(); i += 2) {
            byte[] b = Files.readAllBytes(files.get(i));
            PreTokenizer.split(b, 0, b.length, (bytes, st, en) ->
                    counts.merge(new String(bytes, st, en - st, StandardCharsets.ISO_8859_1), 1L, Long::sum));
        }
        ByteLevelBpe code = BpeTrainer.train(counts, 1200, 2);
        Path json = dir.resolve("code-tokenizer.json");
        Files.writeString(json, TokenizerJson.toJson(code));
        try (HuggingFaceTokenizer hfCode = HuggingFaceTokenizer.builder().optTokenizerPath(json).optTruncation(false)
                .optPadding(false).build()) {
            long tokens = 0;
            for (Path f : files) {
                String src = Files.readString(f);
                for (String variant : List.of(src, src.replace("\n", "\r\n"), src.replace("    ", "\t"))) {
                    long[] theirs = hfCode.encode(variant, false, false).getIds();
                    int[] ours = code.encode(variant);
                    if (variant.contains(ByteLevelBpe.EOS) || variant.contains(ByteLevelBpe.PAD)) {
                        // the one intended difference: HuggingFace turns special-token text into the special id,
                        // we never do (document text is data; EOS/PAD are only added by prepare between documents)
                        assertTrue(java.util.Arrays.stream(theirs).anyMatch(x -> x == code.eosId()), f.toString());
                        assertTrue(java.util.Arrays.stream(ours).noneMatch(x -> x == code.eosId() || x == code.padId()), f.toString());
                        assertEquals(variant, new String(code.decode(ours), StandardCharsets.UTF_8));
                        continue;
                    }
                    assertArrayEquals(java.util.Arrays.stream(theirs).mapToInt(x -> (int) x).toArray(), ours, f.toString());
                    tokens += ours.length;
                }
            }
            assertTrue(tokens > 50_000, "compared " + tokens + " tokens");
        }
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
