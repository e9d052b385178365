package io.catena.model.export;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.data.TextCodec;
import io.catena.model.io.CheckpointWriteException;
import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Buf;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.stream.Stream;

/**
 * {@code catena export}: a checkpoint's first k chains as a self-contained directory that leaves Catena
 * (docs/EXPORT.md): {@value #WEIGHTS} (float32, PyTorch names and layouts), {@value #CONFIG} (every setting needed
 * to rebuild the model) and {@value #TOKENIZER} (HuggingFace byte-level BPE). Any prefix of chains is a model of its
 * own (chain causality), and the k-chain tensors are a prefix of the layout, so exporting k chains is dropping the rest.
 *
 * <p>The directory is written under a temporary name beside the destination and renamed when complete, so a crash or a
 * full disk never leaves something that looks like an export but is not.
 */
public final class ModelExporter {
    public static final String WEIGHTS = "model.safetensors";
    public static final String CONFIG = "config.json";
    public static final String TOKENIZER = "tokenizer.json";
    public static final String FORMAT = "catena-colm-export";
    public static final int FORMAT_VERSION = 1;
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** What was written: the directory, the chains kept, their parameters and the files' total bytes. */
    public record Result(Path dir, List<Integer> chains, long parameters, long bytes, boolean withTokenizer) {
    }

    private ModelExporter() {
    }

    /**
     * Exports the first {@code k} chains of {@code st} into {@code out}.
     *
     * @param codec   the tokenizer the model was trained with, or null to export the model alone
     * @param source  where the checkpoint came from (recorded in config.json)
     * @param force   replace a non-empty {@code out}; without it such a directory is refused and left untouched
     */
    public static Result export(TrainingState st, int k, TextCodec codec, Path out, boolean force, String source) {
        ColmConfig full = st.config();
        if (k < 1 || k > full.numChains()) {
            throw new IllegalArgumentException("export: --chains must be in 1.." + full.numChains() + " (this checkpoint has chains "
                    + full.chains() + "), got " + k);
        }
        String tokenizerJson = codec == null ? null : codec.huggingFaceJson();
        if (codec != null && tokenizerJson == null) {
            throw new IllegalArgumentException("export: the tokenizer " + codec.describe() + " has no tokenizer.json form; "
                    + "pass --no-tokenizer to export the model alone");
        }
        Path dest = out.toAbsolutePath().normalize();
        checkDestination(dest, force);
        Path tmp = dest.resolveSibling("." + dest.getFileName() + ".tmp-" + UUID.randomUUID());
        try {
            Files.createDirectories(dest.getParent());
            Files.createDirectory(tmp);
            long bytes = writeWeights(st, k, tmp.resolve(WEIGHTS));
            byte[] config = JSON.writeValueAsBytes(configJson(st, k, codec, source));
            Files.write(tmp.resolve(CONFIG), config);
            bytes += config.length;
            if (tokenizerJson != null) {
                byte[] t = tokenizerJson.getBytes(StandardCharsets.UTF_8);
                Files.write(tmp.resolve(TOKENIZER), t);
                bytes += t.length;
            }
            replace(tmp, dest);
            return new Result(dest, full.chains().subList(0, k), st.params().layout().prefixSize(k), bytes, tokenizerJson != null);
        } catch (IOException | RuntimeException e) {
            deleteQuietly(tmp, e);
            String cause = e.getMessage() == null ? e.getClass().getSimpleName() : e.getClass().getSimpleName() + ": " + e.getMessage();
            throw new CheckpointWriteException("cannot write the export " + dest + " (" + cause + "); the partial directory was removed"
                    + (Files.exists(dest) ? " and " + dest + " is as it was" : "") + ". Free space or choose another --out", e);
        }
    }

    /** An existing --out must be an empty directory, or --force must say it may be replaced. */
    private static void checkDestination(Path dest, boolean force) {
        if (dest.getParent() == null) {
            throw new IllegalArgumentException("export: --out " + dest + " is a file system root; name a directory to create");
        }
        if (!Files.exists(dest)) {
            return;
        }
        if (!Files.isDirectory(dest)) {
            throw new IllegalArgumentException("export: --out " + dest + " exists and is a file, not a directory; choose another --out"
                    + " (nothing was written)");
        }
        List<String> entries = list(dest);
        if (!entries.isEmpty() && !force) {
            throw new IllegalArgumentException("export: --out " + dest + " already exists and is not empty (" + entries.size()
                    + " entries, e.g. " + entries.get(0) + "); pass --force to replace it or choose another --out (nothing was written)");
        }
    }

    private static List<String> list(Path dir) {
        List<String> names = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            s.forEach(p -> names.add(p.getFileName().toString()));
        } catch (IOException e) {
            throw new UncheckedIOException("export: cannot list --out " + dir + ": " + e.getMessage(), e);
        }
        names.sort(null);
        return names;
    }

    /** Moves the complete temporary directory to dest; an existing dest is moved aside first and removed after. */
    private static void replace(Path tmp, Path dest) throws IOException {
        if (!Files.exists(dest)) {
            Files.move(tmp, dest, StandardCopyOption.ATOMIC_MOVE);
            return;
        }
        Path old = dest.resolveSibling("." + dest.getFileName() + ".old-" + UUID.randomUUID());
        Files.move(dest, old, StandardCopyOption.ATOMIC_MOVE);
        try {
            Files.move(tmp, dest, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | RuntimeException e) {
            Files.move(old, dest, StandardCopyOption.ATOMIC_MOVE); // put the old export back
            throw e;
        }
        deleteQuietly(old, null);
    }

    private static long writeWeights(TrainingState st, int k, Path file) throws IOException {
        ParamLayout layout = st.params().layout();
        Buf buf = st.params().buf();
        SafeTensorsWriter w = new SafeTensorsWriter()
                .metadata("format", "pt") // what HuggingFace's loaders look for in a PyTorch-layout safetensors file
                .metadata("catena_format", FORMAT)
                .metadata("catena_format_version", String.valueOf(FORMAT_VERSION))
                .metadata("chains", st.config().chains().subList(0, k).toString());
        for (ParamLayout.Entry e : layout.entries()) {
            if (e.chain() >= k) {
                continue;
            }
            ExportNames.Mapped m = ExportNames.of(e);
            int base = (int) e.offset(); // Params holds at most Integer.MAX_VALUE values
            if (m.transposed()) {
                int rows = e.rows(), cols = e.cols(); // Catena [rows, cols] -> export [cols, rows]
                w.add(m.name(), m.shape(), i -> (float) buf.get(base + (int) (i % rows) * cols + (int) (i / rows)));
            } else {
                w.add(m.name(), m.shape(), i -> (float) buf.get(base + (int) i));
            }
        }
        try (OutputStream o = new java.io.BufferedOutputStream(Files.newOutputStream(file), 1 << 16)) {
            return w.write(o);
        }
    }

    /** config.json: every field docs/EXPORT.md lists, derived from the checkpoint's {@link ColmConfig}. */
    static Map<String, Object> configJson(TrainingState st, int k, TextCodec codec, String source) {
        ColmConfig c = st.config();
        List<Integer> chains = c.chains().subList(0, k);
        List<Integer> widths = new ArrayList<>();
        List<Integer> ffnWidths = new ArrayList<>();
        for (int i = 0; i < k; i++) {
            widths.add(c.chainWidth(i));
            ffnWidths.add(c.ffnChainWidth(i));
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("format", FORMAT);
        m.put("format_version", FORMAT_VERSION);
        m.put("model_type", c.isAir() ? "colm-air" : "colm");
        m.put("vocab_size", c.vocabSize());
        m.put("head_dim", c.headDim());
        m.put("chains", chains);
        m.put("num_chains", k);
        m.put("num_heads", c.headsUpTo(k));
        m.put("d_model", c.prefixWidth(k));
        m.put("chain_widths", widths);
        m.put("num_layers", c.layers());
        m.put("kv_heads", c.isAir() ? c.kvHeads() : 0);
        m.put("ffn_mult", c.ffnMult());
        m.put("ffn_per_head", c.ffnPerHead());
        m.put("ffn_widths", ffnWidths);
        m.put("intermediate_size", c.ffnPrefixWidth(k));
        m.put("activation", c.activation().name().toLowerCase());
        m.put("norm", c.norm().name().toLowerCase());
        m.put("norm_eps", c.normEps());
        m.put("rope_theta", c.ropeTheta());
        m.put("max_seq_len", c.maxSeqLen());
        m.put("bias", c.bias());
        m.put("tie_word_embeddings", false);
        m.put("dtype", "float32");
        m.put("eos_token_id", codec == null ? null : codec.eosId());
        m.put("tokenizer", codec == null ? null : TOKENIZER);
        Map<String, Object> from = new LinkedHashMap<>();
        from.put("checkpoint", source);
        from.put("step", st.step());
        from.put("tokens_seen", st.tokensSeen());
        from.put("chains", c.chains());
        from.put("loss_weights", c.lossWeights());
        from.put("tokenizer", codec == null ? null : codec.describe());
        m.put("catena", from);
        return m;
    }

    private static void deleteQuietly(Path dir, Throwable addTo) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException | UncheckedIOException e) {
            if (addTo != null) {
                addTo.addSuppressed(e);
            }
        }
    }
}
