package io.catena.model.export;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.TinyConfigs;
import io.catena.model.cli.CatenaCli;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;

/** Tiny checkpoints to export (byte vocabulary, so the byte tokenizer fits) and a safetensors reader for the tests. */
public final class ExportFixtures {
    private ExportFixtures() {
    }

    /** CoLM with every optional part on: biases, LayerNorm, GELU, three chains of unequal width. */
    public static ColmConfig colm() {
        return new ColmConfig(ByteTokenizer.VOCAB_SIZE, 8, List.of(1, 2, 1), 2, 0, 2.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 10000.0, ColmConfig.Variant.COLM, 32, true, List.of(0.2, 0.3, 0.5));
    }

    /** CoLM-Air with the other choices: shared K/V (2 heads), SwiGLU, RMSNorm, no biases, a small RoPE base. */
    public static ColmConfig air() {
        return new ColmConfig(ByteTokenizer.VOCAB_SIZE, 8, List.of(2, 2, 4), 2, 2, 1.5, ColmConfig.Activation.SWIGLU,
                ColmConfig.NormKind.RMSNORM, 1e-5, 500.0, ColmConfig.Variant.COLM_AIR, 32, false, null);
    }

    /**
     * A checkpoint root (written with {@code latest}, as training writes it) holding cfg with parameters moved well off
     * their initialisation, so every tensor (gains, biases, zero-initialised head rows) shapes the logits.
     */
    public static String checkpoint(ColmConfig cfg, Path root) {
        TrainingState st = new TrainingState(cfg, TinyConfigs.randomParams(cfg, DataType.FLOAT, 21), null, null, 7, 700, 70, 0,
                Map.of("data", "bytes:builtin:genesis", "data_spec", "builtin:genesis"));
        new CheckpointStore().save(root.toString(), st);
        return root.toString();
    }

    public static TrainingState load(String ckpt) {
        return new CheckpointStore().load(ckpt, false);
    }

    /** Runs {@code catena <argv>} in this JVM and returns its standard output. */
    public static String catena(String... argv) {
        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
        new CatenaCli(new java.io.PrintStream(buf, true, StandardCharsets.UTF_8)).run(argv);
        return buf.toString(StandardCharsets.UTF_8);
    }

    /** A parsed safetensors header: its raw length and the JSON object. */
    public record Header(long length, Map<String, Object> json) {
        @SuppressWarnings("unchecked")
        public long dataOffset(String tensor) {
            List<Number> offsets = (List<Number>) ((Map<String, Object>) json.get(tensor)).get("data_offsets");
            return 8 + length + offsets.get(0).longValue();
        }
    }

    @SuppressWarnings("unchecked")
    public static Header header(Path file) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
            byte[] len = new byte[8];
            f.readFully(len);
            long n = ByteBuffer.wrap(len).order(ByteOrder.LITTLE_ENDIAN).getLong();
            byte[] json = new byte[(int) n];
            f.readFully(json);
            return new Header(n, new ObjectMapper().readValue(new String(json, StandardCharsets.UTF_8), Map.class));
        }
    }

    public static float readFloat(Path file, long at) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
            byte[] b = new byte[4];
            f.seek(at);
            f.readFully(b);
            return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getFloat();
        }
    }

    public static void writeFloat(Path file, long at, float v) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.seek(at);
            f.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(v).array());
        }
    }
}
