package io.catena.model.data;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/**
 * The one home of "open a run's inputs", used by the CLI, the Spark trainer and retraining alike: a
 * data-pipeline manifest (through the installed {@link TokenSourceProvider}, i.e. data-pipeline's shard reader)
 * or plain text with the byte tokenizer (a file, a directory, or {@code builtin:genesis}). Worker r of W reads
 * windows {@code P(k*W + r)} of the epoch permutation, so W workers reading batch/W windows per step together read
 * exactly the windows one process reads with the whole batch.
 */
public final class DataSources {
    public static final String BUILTIN_GENESIS = "builtin:genesis";
    private static final String GENESIS_RESOURCE = "/io/catena/corpus/genesis.txt";

    private DataSources() {
    }

    /** The windows of {@code split} ("train" or "val") that worker {@code worker} of {@code workers} reads. */
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

    /** A local path given as a plain path, {@code file:/...} or {@code file:///...}. */
    public static String localPath(String spec) {
        return spec.startsWith("file://") ? spec.substring("file://".length()) : spec.startsWith("file:") ? spec.substring(5) : spec;
    }

    private record Cached(String spec, int[] tokens) {
    }

    /** The last text read in this JVM (an executor's tasks and, in local mode, the driver share it). */
    private static Cached lastText;

    /** Text tokenized with the byte tokenizer (EOS after the bundled corpus). */
    public static synchronized int[] readText(String spec) {
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
            try (InputStream in = DataSources.class.getResourceAsStream(GENESIS_RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException("the bundled corpus " + GENESIS_RESOURCE + " is missing from the class path "
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
        return TextByteSource.readCorpus(Path.of(localPath(spec)));
    }
}
