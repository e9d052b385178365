package io.catena.trainer;

import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.TextByteSource;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.data.TokenSourceProvider;
import io.catena.model.train.Recipe;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;

/**
 * Opens the token windows a worker trains on: a data-pipeline manifest (through the installed
 * {@link TokenSourceProvider}, i.e. data-pipeline's shard reader) or plain text with the byte tokenizer
 * (a file, a directory, or {@code builtin:genesis}). Worker r of W reads windows {@code P(k*W + r)} of
 * the epoch permutation, so W workers reading batch/W windows per step together read exactly the
 * windows one process reads with the whole batch.
 */
public final class DataSources {
    static final String BUILTIN_GENESIS = "builtin:genesis";

    private DataSources() {
    }

    public static TokenBatchSource open(String data, String split, int seqLen, double valFraction, long seed, int worker,
                                        int workers) {
        TokenSourceProvider provider = TokenSourceProvider.find(data);
        if (provider != null) {
            return provider.open(data, split, seqLen, seed, worker, workers);
        }
        if (data.endsWith("manifest.json") || data.startsWith("hdfs:") || data.startsWith("s3a:")) {
            throw new IllegalArgumentException("data " + data + " looks like a prepared dataset but no reader accepts it: the manifest "
                    + "does not exist or data-pipeline is not on the class path. Run `catena prepare` first or check the URI.");
        }
        int[] corpus = readText(data);
        return TextByteSource.open(corpus, data, seqLen, valFraction,
                split.equals("train") ? TextByteSource.Split.TRAIN : TextByteSource.Split.VALIDATION, seed, worker, workers);
    }

    private record Cached(String spec, int[] tokens) {
    }

    /** The last text read in this JVM (an executor's tasks and, in local mode, the driver share it). */
    private static Cached lastText;

    /** Text tokenized with the byte tokenizer. */
    static synchronized int[] readText(String spec) {
        Cached c = lastText;
        if (c == null || !c.spec().equals(spec)) {
            lastText = null; // let the old corpus go before reading the next
            c = new Cached(spec, readTextUncached(spec));
            lastText = c;
        }
        return c.tokens();
    }

    private static int[] readTextUncached(String spec) {
        if (spec.equals(BUILTIN_GENESIS)) {
            try (InputStream in = DataSources.class.getResourceAsStream("/io/catena/corpus/genesis.txt")) {
                if (in == null) {
                    throw new IllegalStateException("the bundled corpus io/catena/corpus/genesis.txt is missing from the class path "
                            + "(it ships in chain-model's jar); rebuild with mvn -B package");
                }
                byte[] b = in.readAllBytes();
                int[] out = new int[b.length + 1];
                System.arraycopy(ByteTokenizer.encode(b), 0, out, 0, b.length);
                out[b.length] = ByteTokenizer.EOS;
                return out;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        String path = spec.startsWith("file://") ? spec.substring("file://".length()) : spec.startsWith("file:") ? spec.substring(5) : spec;
        return TextByteSource.readCorpus(Path.of(path));
    }

    /** A recipe file, or {@code builtin:NAME} from the class path (io/catena/recipes/NAME.properties). */
    public static Recipe loadRecipe(String spec) {
        if (spec.startsWith("builtin:")) {
            String name = spec.substring("builtin:".length());
            try (InputStream in = DataSources.class.getResourceAsStream("/io/catena/recipes/" + name + ".properties")) {
                if (in == null) {
                    throw new IllegalArgumentException("no bundled recipe '" + name + "' on the class path; pass a file such as "
                            + "cluster-conf/recipes/tiny.properties");
                }
                Properties p = new Properties();
                p.load(new InputStreamReader(in, StandardCharsets.UTF_8));
                Map<String, String> m = new TreeMap<>();
                p.forEach((k, v) -> m.put(k.toString().trim(), v.toString().trim()));
                return Recipe.of(m, spec);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        String path = spec.startsWith("file://") ? spec.substring("file://".length()) : spec;
        return Recipe.load(Path.of(path));
    }
}
