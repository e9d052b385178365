package io.catena.data.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.data.TestData;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ByteLevelBpeTest {

    private static Map<String, Long> words;
    private static ByteLevelBpe tok;

    @BeforeAll
    static void train() {
        words = wordCounts(TestData.genesisText());
        tok = BpeTrainer.train(words, 1024, 2);
    }

    static Map<String, Long> wordCounts(String text) {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        Map<String, Long> m = new HashMap<>();
        PreTokenizer.split(b, 0, b.length, (x, s, e) -> m.merge(new String(x, s, e - s, StandardCharsets.ISO_8859_1), 1L, Long::sum));
        return m;
    }

    @Test
    void shouldRoundTripRandomByteStringsIncludingInvalidUtf8() {
        Random r = new Random(42);
        for (int i = 0; i < 3000; i++) {
            byte[] b = new byte[r.nextInt(300)];
            if (i % 3 == 0) {
                r.nextBytes(b); // mostly invalid UTF-8
            } else {
                String s = randomText(r, b.length);
                b = s.getBytes(StandardCharsets.UTF_8);
            }
            int[] ids = tok.encode(b);
            for (int id : ids) {
                assertTrue(id >= 0 && id < tok.vocabSize() && !tok.isSpecial(id), "id " + id);
            }
            assertArrayEquals(b, tok.decode(ids), "round trip of sample " + i);
        }
    }

    @Test
    void shouldCompressEnglishWithLearnedMerges() {
        byte[] b = TestData.genesisText().getBytes(StandardCharsets.UTF_8);
        int[] ids = tok.encode(b);
        assertArrayEquals(b, tok.decode(ids));
        assertTrue(ids.length * 3L < b.length, ids.length + " tokens for " + b.length + " bytes");
        assertEquals(1024, tok.vocabSize());
        assertEquals(1022, tok.eosId());
        assertEquals(1023, tok.padId());
    }

    @Test
    void shouldTrainIdenticalMergesTwiceRegardlessOfInputOrder() {
        List<String> keys = new ArrayList<>(words.keySet());
        Collections.shuffle(keys, new Random(7));
        Map<String, Long> reordered = new LinkedHashMap<>();
        keys.forEach(k -> reordered.put(k, words.get(k)));
        ByteLevelBpe again = BpeTrainer.train(reordered, 1024, 2);
        assertEquals(TokenizerJson.toJson(tok), TokenizerJson.toJson(again));
        assertEquals(tok.sha256(), again.sha256());
        ByteLevelBpe other = BpeTrainer.train(words, 600, 2);
        assertTrue(!other.sha256().equals(tok.sha256()));
    }

    @Test
    void shouldApplyMergesByRankLikeHuggingFace() {
        // vocab: bytes + "ab" (rank 0: a b) + "bc" (rank 1: b c) + "abc" (rank 2: ab c)
        String[] t = new String[259 + 2];
        boolean[] sp = new boolean[t.length];
        for (int b = 0; b < 256; b++) {
            t[b] = String.valueOf(ByteLevel.charOf(b));
        }
        t[256] = "ab";
        t[257] = "bc";
        t[258] = "abc";
        t[259] = ByteLevelBpe.EOS;
        t[260] = ByteLevelBpe.PAD;
        sp[259] = sp[260] = true;
        ByteLevelBpe small = new ByteLevelBpe(t, sp, new int[] {'a', 'b', 256}, new int[] {'b', 'c', 'c'},
                ByteLevelBpe.EOS, ByteLevelBpe.PAD);
        assertArrayEquals(new int[] {258}, small.encode("abc"));
        assertArrayEquals(new int[] {256, 256}, small.encode("abab"));
        assertArrayEquals(new int[] {'x', 257}, small.encode("xbc"));
        // " abc" is one piece (space + letters); 'Ġ' is the space byte
        assertArrayEquals(new int[] {' ', 258}, small.encode(" abc"));
    }

    @Test
    void shouldSplitExactlyLikeTheGpt2Regex() {
        String ws = "[\\t\\n\\u000B\\f\\r\\u0085\\p{Zs}\\p{Zl}\\p{Zp}]";
        Pattern gpt2 = Pattern.compile("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" + ws.substring(1, ws.length() - 1)
                + "\\p{L}\\p{N}]+|" + ws + "+(?!" + "[^" + ws.substring(1, ws.length() - 1) + "])|" + ws + "+");
        Random r = new Random(1);
        for (int i = 0; i < 5000; i++) {
            String s = randomText(r, r.nextInt(40));
            List<String> expected = new ArrayList<>();
            Matcher m = gpt2.matcher(s);
            while (m.find()) {
                expected.add(m.group());
            }
            List<String> actual = new ArrayList<>();
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            PreTokenizer.split(b, 0, b.length, (x, st, e) -> actual.add(new String(x, st, e - st, StandardCharsets.UTF_8)));
            assertEquals(expected, actual, "pieces of \"" + s.replace("\n", "\\n") + "\"");
        }
    }

    @Test
    void shouldWriteHuggingFaceTokenizerJsonThatLoadsBackIdentically() throws Exception {
        String json = TokenizerJson.toJson(tok);
        JsonNode n = new ObjectMapper().readTree(json);
        assertEquals("BPE", n.path("model").path("type").asText());
        assertEquals("ByteLevel", n.path("pre_tokenizer").path("type").asText());
        assertEquals("ByteLevel", n.path("decoder").path("type").asText());
        assertEquals(1022, n.path("model").path("vocab").size());
        assertEquals(ByteLevelBpe.EOS, n.path("added_tokens").get(0).path("content").asText());
        assertTrue(n.path("added_tokens").get(1).path("special").asBoolean());
        assertEquals(tok.mergeCount(), n.path("model").path("merges").size());
        ByteLevelBpe back = TokenizerJson.parse(json, "mem", ByteLevelBpe.EOS, ByteLevelBpe.PAD);
        assertEquals(tok.sha256(), back.sha256());
        String s = TestData.genesis().get(10);
        assertArrayEquals(tok.encode(s), back.encode(s));
        // the newer HuggingFace merges layout (pairs as arrays) loads too
        String arrays = json.replaceAll("\"(\\S+) (\\S+)\"(,?)\\n", "[\"$1\", \"$2\"]$3\n");
        assertTrue(arrays.contains("[\""));
        assertEquals(tok.sha256(), TokenizerJson.parse(arrays, "mem", ByteLevelBpe.EOS, ByteLevelBpe.PAD).sha256());
    }

    @Test
    void shouldRejectANonByteLevelTokenizerNamingTheSetting() {
        String json = TokenizerJson.toJson(tok).replace("\"type\" : \"BPE\"", "\"type\" : \"WordPiece\"");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TokenizerJson.parse(json, "bert.json", ByteLevelBpe.EOS, ByteLevelBpe.PAD));
        assertTrue(e.getMessage().contains("bert.json") && e.getMessage().contains("model.type"), e.getMessage());
        IllegalArgumentException noEos = assertThrows(IllegalArgumentException.class,
                () -> TokenizerJson.parse(TokenizerJson.toJson(tok), "t.json", "<|eos|>", ByteLevelBpe.PAD));
        assertTrue(noEos.getMessage().contains("<|eos|>"), noEos.getMessage());
    }

    private static final String PALETTE = "aZéßЖ中ö1٣½ ,.!'?-\n\t\u00A0\u3000\u2028s t re ve m ll d\u0301😀\u0085\u001F";

    static String randomText(Random r, int n) {
        int[] cps = PALETTE.codePoints().toArray();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            sb.appendCodePoint(cps[r.nextInt(cps.length)]);
        }
        return sb.toString();
    }
}
