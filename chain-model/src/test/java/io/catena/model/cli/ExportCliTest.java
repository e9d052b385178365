package io.catena.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.TextCodec;
import io.catena.model.export.ExportFixtures;
import io.catena.model.export.ExportNames;
import io.catena.model.export.ModelExporter;
import io.catena.model.io.CheckpointWriteException;
import io.catena.model.io.TrainingState;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `catena export`: the files it writes (safetensors layout, config.json), its refusals and its atomic writes. */
class ExportCliTest {

    private record Outcome(int code, String out, String err) {
    }

    private static Outcome run(String... argv) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        int code = CatenaCli.execute(argv, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true,
                StandardCharsets.UTF_8));
        return new Outcome(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static List<String> names(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void shouldWriteSafetensorsWhoseEveryTensorHoldsTheCheckpointsValues(@TempDir Path dir) throws Exception {
        ColmConfig cfg = ExportFixtures.colm();
        String ckpt = ExportFixtures.checkpoint(cfg, dir.resolve("ckpt"));
        TrainingState st = ExportFixtures.load(ckpt);
        Path out = dir.resolve("export");
        assertEquals(0, run("export", "--ckpt", ckpt, "--out", out.toString()).code());
        assertEquals(List.of("config.json", "model.safetensors", "tokenizer.json"), names(out));

        Path file = out.resolve(ModelExporter.WEIGHTS);
        ExportFixtures.Header h = ExportFixtures.header(file);
        assertEquals(0, h.length() % 8, "header padded to 8 bytes");
        byte[] raw = Files.readAllBytes(file);
        String headerText = new String(raw, 8, (int) h.length(), StandardCharsets.UTF_8);
        assertTrue(headerText.startsWith("{") && headerText.stripTrailing().endsWith("}"), headerText);
        assertEquals(Map.of("format", "pt", "catena_format", ModelExporter.FORMAT, "catena_format_version", "1", "chains",
                cfg.chains().toString()), h.json().get("__metadata__"));
        ParamLayout layout = st.params().layout();
        assertEquals(layout.entries().size() + 1, h.json().size(), "one header entry per tensor, plus __metadata__");
        long expectedOffset = 0;
        for (ParamLayout.Entry e : layout.entries()) { // in layout order, back to back
            ExportNames.Mapped m = ExportNames.of(e);
            Map<?, ?> t = (Map<?, ?>) h.json().get(m.name());
            assertEquals("F32", t.get("dtype"), m.name());
            assertEquals(java.util.Arrays.stream(m.shape()).boxed().toList(), t.get("shape"), m.name());
            assertEquals(List.of(expectedOffset, expectedOffset + 4 * e.size()),
                    ((List<?>) t.get("data_offsets")).stream().map(o -> ((Number) o).longValue()).toList(), m.name());
            long base = h.dataOffset(m.name());
            for (long i = 0; i < e.size(); i += Math.max(1, e.size() / 7)) { // a spread of elements of every tensor
                long source = m.transposed() ? (i % e.rows()) * e.cols() + i / e.rows() : i;
                assertEquals((float) st.params().buf().get((int) (e.offset() + source)), ExportFixtures.readFloat(file, base + 4 * i),
                        m.name() + "[" + i + "]");
            }
            expectedOffset += 4 * e.size();
        }
        assertEquals(8 + h.length() + expectedOffset, raw.length, "file = length + header + data, nothing after");
        assertTrue(h.json().containsKey("lm_head.chain.2.weight") && h.json().containsKey("layers.1.norm2.chain.0.weight")
                && h.json().containsKey("layers.0.attn.q.chain.1.bias"), "names of docs/EXPORT.md");
        assertEquals(List.of(cfg.vocabSize(), cfg.chainWidth(2)), ((Map<?, ?>) h.json().get("lm_head.chain.2.weight")).get("shape"),
                "the LM head in PyTorch's [out, in] layout");

        Map<?, ?> config = new ObjectMapper().readValue(out.resolve(ModelExporter.CONFIG).toFile(), Map.class);
        assertEquals("colm", config.get("model_type"));
        assertEquals(cfg.dModel(), config.get("d_model"));
        assertEquals(List.of(8, 16, 8), config.get("chain_widths"));
        assertEquals(List.of(16, 32, 16), config.get("ffn_widths"));
        assertEquals(ByteTokenizer.EOS, config.get("eos_token_id"));
        assertEquals(7, ((Map<?, ?>) config.get("catena")).get("step"));
        assertEquals(ByteTokenizer.huggingFaceJson(), Files.readString(out.resolve(ModelExporter.TOKENIZER)));
    }

    @Test
    void shouldRefuseAChainCountOutOfRangeNamingTheRangeInOneLine(@TempDir Path dir) {
        String ckpt = ExportFixtures.checkpoint(ExportFixtures.colm(), dir.resolve("ckpt"));
        for (String bad : new String[] {"0", "4", "-1", "two"}) {
            Outcome o = run("export", "--ckpt", ckpt, "--chains", bad, "--out", dir.resolve("x").toString());
            assertEquals(2, o.code(), bad);
            assertEquals(1, o.err().strip().lines().count(), o.err());
            assertTrue(o.err().startsWith("catena: export: --chains ") && o.err().contains("allowed: 1..3 or all")
                    && o.err().contains("[1, 2, 1]"), o.err());
        }
        assertFalse(Files.exists(dir.resolve("x")), "nothing written");
    }

    @Test
    void shouldRefuseAMissingCheckpointAndAnUnknownFormat(@TempDir Path dir) {
        Outcome missing = run("export", "--ckpt", dir.resolve("nope").toString(), "--out", dir.resolve("x").toString());
        assertEquals(2, missing.code());
        assertTrue(missing.err().contains("no checkpoint at") && missing.err().contains("nope"), missing.err());
        String ckpt = ExportFixtures.checkpoint(ExportFixtures.air(), dir.resolve("ckpt"));
        Outcome format = run("export", "--ckpt", ckpt, "--format", "onnx", "--out", dir.resolve("x").toString());
        assertEquals(2, format.code());
        assertTrue(format.err().contains("--format onnx is not supported") && format.err().contains("safetensors"), format.err());
        assertFalse(Files.exists(dir.resolve("x")));
    }

    @Test
    void shouldReplaceANonEmptyOutputOnlyWithForceAndLeaveNoTemporaries(@TempDir Path dir) throws Exception {
        String ckpt = ExportFixtures.checkpoint(ExportFixtures.colm(), dir.resolve("ckpt"));
        Path out = Files.createDirectories(dir.resolve("out"));
        assertEquals(0, run("export", "--ckpt", ckpt, "--out", out.toString()).code(), "an empty directory may be used");
        Files.writeString(out.resolve("notes.txt"), "mine");

        Outcome refused = run("export", "--ckpt", ckpt, "--chains", "1", "--out", out.toString());
        assertEquals(2, refused.code());
        assertTrue(refused.err().contains("already exists and is not empty") && refused.err().contains("--force"), refused.err());
        assertEquals(List.of("config.json", "model.safetensors", "notes.txt", "tokenizer.json"), names(out), "untouched");

        assertEquals(0, run("export", "--ckpt", ckpt, "--chains", "1", "--out", out.toString(), "--force").code());
        assertEquals(List.of("config.json", "model.safetensors", "tokenizer.json"), names(out));
        assertTrue(Files.readString(out.resolve("config.json")).contains("\"num_chains\" : 1"));
        assertEquals(List.of("ckpt", "out"), names(dir), "no temporary or old directories left beside --out");

        Files.writeString(dir.resolve("file"), "x");
        Outcome file = run("export", "--ckpt", ckpt, "--out", dir.resolve("file").toString(), "--force");
        assertEquals(2, file.code());
        assertTrue(file.err().contains("is a file"), file.err());
    }

    @Test
    void shouldRemoveThePartialExportWhenWritingFails(@TempDir Path dir) throws Exception {
        TrainingState st = ExportFixtures.load(ExportFixtures.checkpoint(ExportFixtures.colm(), dir.resolve("ckpt")));
        Path out = dir.resolve("out");
        // describe() is read for config.json after model.safetensors is written: it fails there, as a full disk would
        TextCodec throwing = new TextCodec() {
            @Override
            public int[] encode(String text) {
                return new int[0];
            }

            @Override
            public String decode(int[] ids, int from, int to) {
                return "";
            }

            @Override
            public int eosId() {
                return 0;
            }

            @Override
            public int vocabSize() {
                return 257;
            }

            @Override
            public String describe() {
                throw new java.io.UncheckedIOException(new java.io.IOException("No space left on device (injected)"));
            }

            @Override
            public String huggingFaceJson() {
                return "{}";
            }
        };
        CheckpointWriteException e = assertThrows(CheckpointWriteException.class,
                () -> ModelExporter.export(st, 3, throwing, out, false, "test"));
        assertTrue(e.getMessage().contains("No space left on device") && e.getMessage().contains("partial directory was removed"),
                e.getMessage());
        assertEquals(List.of("ckpt"), names(dir), "neither --out nor a temporary directory is left");
    }

    @Test
    void shouldExportWithoutATokenizerOnlyWhenAskedAndSayHowWhenItIsUnknown(@TempDir Path dir) throws Exception {
        ColmConfig cfg = new ColmConfig(512, 8, List.of(1, 1), 1, 0, 2.0, ColmConfig.Activation.GELU, ColmConfig.NormKind.LAYERNORM,
                1e-5, 1e4, ColmConfig.Variant.COLM, 16, true, null);
        TrainingState st = new TrainingState(cfg, io.catena.model.TinyConfigs.randomParams(cfg, org.nd4j.linalg.api.buffer.DataType.FLOAT,
                1), null, null, 0, 0, 0, 0, Map.of("data", "catena shards hdfs:///gone manifest v1"));
        String ckpt = new io.catena.model.io.CheckpointStore().saveTo(dir.resolve("ckpt").toString(), st);
        Outcome unknown = run("export", "--ckpt", ckpt, "--out", dir.resolve("x").toString());
        assertEquals(2, unknown.code());
        assertTrue(unknown.err().contains("--data <dataset dir>") && unknown.err().contains("--no-tokenizer"), unknown.err());
        assertEquals(0, run("export", "--ckpt", ckpt, "--out", dir.resolve("x").toString(), "--no-tokenizer").code());
        assertEquals(List.of("config.json", "model.safetensors"), names(dir.resolve("x")));
        Map<?, ?> config = new ObjectMapper().readValue(dir.resolve("x").resolve("config.json").toFile(), Map.class);
        assertTrue(config.containsKey("tokenizer") && config.get("tokenizer") == null && config.get("eos_token_id") == null, config.toString());
    }
}
