package io.catena.data.reader;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.data.TestData;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.TokenizerJson;
import io.catena.model.ColmConfig;
import io.catena.model.cli.CatenaCli;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.TextCodec;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.train.LocalTrainer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The tokenizer.json of {@code catena export}: for a model trained on a prepared dataset it is the dataset's BPE, and
 * the exported Python package (chain-model/python, numpy only) encodes with it exactly as Catena's ByteLevelBpe does;
 * the byte tokenizer's form loads in HuggingFace tokenizers and in ByteLevelBpe with the byte tokenizer's ids.
 */
class ExportedTokenizerTest {
    private static final Path CHAIN_MODEL = Path.of("../chain-model").toAbsolutePath().normalize();
    private static final String PALETTE = "aZéßЖ中ö1٣½ ,.!'?-\n\t\u00A0\u3000\u2028s t re ve m ll d\u0301😀\u0085\u001F";

    @Test
    void shouldExportTheDatasetsBpeWhichPythonEncodesExactlyAsJava(@TempDir Path dir) throws Exception {
        Path dataset = PreparedGenesis.dir();
        int vocab = PreparedGenesis.manifest().tokenizer().vocabSize();
        ColmConfig cfg = new ColmConfig(vocab, 8, List.of(1, 1), 1, 0, 2.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 1e4, ColmConfig.Variant.COLM, PreparedGenesis.SEQ_LEN, true, null);
        TrainingState st = new TrainingState(cfg, LocalTrainer.freshState(cfg, 1).params(), null, null, 0, 0, 0, 0,
                Map.of("data_spec", dataset.toString()));
        String ckpt = new CheckpointStore().saveTo(dir.resolve("ckpt").toString(), st);
        Path export = dir.resolve("export");
        ByteArrayOutputStream said = new ByteArrayOutputStream();
        new CatenaCli(new PrintStream(said, true, StandardCharsets.UTF_8)).run(new String[] {"export", "--ckpt", ckpt, "--out",
                export.toString()});
        assertTrue(said.toString(StandardCharsets.UTF_8).contains("with tokenizer.json"), said.toString(StandardCharsets.UTF_8));

        TextCodec codec = TextCodec.forData(dataset.toString());
        String exported = Files.readString(export.resolve("tokenizer.json"));
        ByteLevelBpe reloaded = TokenizerJson.parse(exported, "exported tokenizer.json", ByteLevelBpe.EOS, ByteLevelBpe.PAD);
        assertEquals(codec.describe(), new BpeTextCodec(reloaded).describe(), "the same BPE (canonical sha256)");
        Map<?, ?> config = new ObjectMapper().readValue(export.resolve("config.json").toFile(), Map.class);
        assertEquals(codec.eosId(), config.get("eos_token_id"));

        List<String> texts = new ArrayList<>(TestData.genesis());
        Random r = new Random(9);
        for (int i = 0; i < 300; i++) {
            texts.add(randomText(r, r.nextInt(40)));
        }
        Map<?, ?> python = pythonEncode(export.resolve("tokenizer.json"), texts, dir);
        List<?> pyIds = (List<?>) python.get("ids"), decoded = (List<?>) python.get("decoded");
        for (int i = 0; i < texts.size(); i++) {
            String t = texts.get(i);
            int[] py = ((List<?>) pyIds.get(i)).stream().mapToInt(o -> ((Number) o).intValue()).toArray();
            assertArrayEquals(codec.encode(t), py, "ids of \"" + t.replace("\n", "\\n") + "\"");
            assertEquals(t, decoded.get(i), "Python's round trip of \"" + t.replace("\n", "\\n") + "\"");
        }
    }

    @Test
    void shouldGiveTheByteTokenizersIdsInHuggingFaceAndInByteLevelBpe(@TempDir Path dir) throws Exception {
        String json = ByteTokenizer.huggingFaceJson();
        ByteLevelBpe asBpe = TokenizerJson.parse(json, "bytes tokenizer.json", ByteTokenizer.EOS_CONTENT, ByteLevelBpe.PAD);
        assertEquals(ByteTokenizer.VOCAB_SIZE, asBpe.vocabSize());
        assertEquals(ByteTokenizer.EOS, asBpe.eosId());
        Path file = dir.resolve("tokenizer.json");
        Files.writeString(file, json);
        Random r = new Random(3);
        try (HuggingFaceTokenizer hf = HuggingFaceTokenizer.builder().optTokenizerPath(file).optTruncation(false).optPadding(false)
                .build()) {
            for (int i = 0; i < 500; i++) {
                String t = randomText(r, r.nextInt(50));
                int[] expected = ByteTokenizer.encode(t.getBytes(StandardCharsets.UTF_8));
                assertArrayEquals(expected, asBpe.encode(t), "ByteLevelBpe, \"" + t + "\"");
                long[] theirs = hf.encode(t, false, false).getIds();
                assertArrayEquals(expected, java.util.Arrays.stream(theirs).mapToInt(x -> (int) x).toArray(), "HuggingFace, \"" + t + "\"");
            }
        }
    }

    // ---- helpers ---------------------------------------------------------------------------------

    /**
     * Runs chain-model/src/test/python/export_check.py encode ({"ids": [...], "decoded": [...]} per text) with Debian's
     * python3 and python3-numpy, or $CATENA_PYTHON.
     */
    private static Map<?, ?> pythonEncode(Path tokenizer, List<String> texts, Path dir) throws Exception {
        Path in = dir.resolve("texts.json"), out = dir.resolve("ids.json"), log = dir.resolve("python.log");
        new ObjectMapper().writeValue(in.toFile(), texts);
        String env = System.getenv("CATENA_PYTHON");
        String python = env != null && !env.isBlank() ? env : Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";
        ProcessBuilder pb = new ProcessBuilder(python, CHAIN_MODEL.resolve("src/test/python/export_check.py").toString(), "encode",
                tokenizer.toString(), in.toString(), out.toString()).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("PYTHONPATH", CHAIN_MODEL.resolve("python").toString());
        pb.environment().put("PYTHONDONTWRITEBYTECODE", "1");
        Process p;
        try {
            p = pb.start();
        } catch (java.io.IOException e) {
            throw new AssertionError("cannot run " + python + ": install the Debian packages python3 and python3-numpy (as .ci/run "
                    + "does) or set CATENA_PYTHON", e);
        }
        if (!p.waitFor(180, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("the Python tokenizer did not finish in 180 s: " + Files.readString(log));
        }
        String output = Files.readString(log);
        if (output.contains("No module named 'numpy'")) {
            fail(python + " has no numpy: install the Debian package python3-numpy (as .ci/run does) or set CATENA_PYTHON");
        }
        assertEquals(0, p.exitValue(), "export_check.py encode failed:\n" + output);
        return new ObjectMapper().readValue(out.toFile(), Map.class);
    }

    private static String randomText(Random r, int n) {
        int[] cps = PALETTE.codePoints().toArray();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            sb.appendCodePoint(cps[r.nextInt(cps.length)]);
        }
        return sb.toString();
    }
}
