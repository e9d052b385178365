package io.catena.data.reader;

import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.prepare.PrepareJob;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.model.data.TextCodec;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.data.TokenSourceProvider;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.util.regex.Pattern;

/**
 * Lets chain-model's trainers ({@code catena train-local --data <dataset>}, {@code eval}) read a
 * {@code catena prepare} dataset through the {@link TokenSourceProvider} SPI, without chain-model
 * depending on data-pipeline. Registered in
 * {@code META-INF/services/io.catena.model.data.TokenSourceProvider}.
 *
 * <p>Accepted specs, on any Hadoop filesystem (a plain local path, {@code file://}, {@code hdfs://},
 * {@code s3a://}, ...):
 * <ul>
 *   <li>a manifest file: {@code .../manifest.json} or {@code .../manifests/manifest-v000003.json}
 *       (a pinned version);</li>
 *   <li>a dataset directory: one holding {@code manifest.json} or a {@code manifests/} directory
 *       (the newest version is read);</li>
 *   <li>any other URI whose scheme is not {@code file}: chain-model's own text reader only reads local
 *       files, so a remote URI can only mean a dataset, and opening it says clearly when it is not one.</li>
 * </ul>
 * A local directory of plain text files, a text file and {@code builtin:genesis} are not accepted, so
 * chain-model's byte-level text source still handles them.
 *
 * <p>{@link #open} returns a {@link ShardTokenSource} (seeded per-epoch shuffle, worker {@code worker}
 * of {@code workers}, exact resume by position) after checking that the shards were packed for the
 * requested {@code seqLen}.
 */
public final class ManifestTokenSourceProvider implements TokenSourceProvider {

    /** System property: verified shard tokens kept in memory per source (default 64 Mi tokens). */
    public static final String MAX_CACHED_TOKENS_PROP = "catena.data.maxCachedTokens";
    private static final long DEFAULT_MAX_CACHED_TOKENS = 64L << 20;
    private static final Pattern MANIFEST_FILE = Pattern.compile("manifest(-v\\d+)?\\.json");
    private static final Pattern URI_WITH_SCHEME = Pattern.compile("^[A-Za-z][A-Za-z0-9+.-]*://.*");

    private Configuration conf;

    /**
     * The ServiceLoader constructor: Hadoop's default configuration (core-site.xml etc. from the class path, and inside a
     * Spark application its {@code spark.hadoop.*} settings), created on first use, so merely listing providers (for {@code builtin:genesis}, say) costs nothing.
     */
    public ManifestTokenSourceProvider() {
    }

    public ManifestTokenSourceProvider(Configuration conf) {
        this.conf = conf;
    }

    private synchronized Configuration conf() {
        if (conf == null) {
            // inside a Spark application (catena train's driver and workers) also its spark.hadoop.* settings, as Spark's
            // own jobs see them: an s3a:// dataset's endpoint and credentials usually come from there
            conf = SparkHadoopSettings.sparkPresent() ? SparkHadoopSettings.apply(new Configuration()) : new Configuration();
        }
        return conf;
    }

    @Override
    public boolean accepts(String dataSpec) {
        if (dataSpec == null || dataSpec.isBlank() || dataSpec.startsWith("builtin:")) {
            return false;
        }
        String spec = dataSpec.strip();
        Path p;
        try {
            p = new Path(spec);
        } catch (IllegalArgumentException e) {
            return false;
        }
        if (MANIFEST_FILE.matcher(p.getName()).matches()) {
            return true;
        }
        if (URI_WITH_SCHEME.matcher(spec).matches() && !spec.regionMatches(true, 0, "file:", 0, 5)) {
            return true;
        }
        try {
            FileSystem fs = p.getFileSystem(conf());
            return fs.getFileStatus(p).isDirectory()
                    && (fs.exists(new Path(p, ManifestStore.MANIFEST)) || fs.exists(new Path(p, ManifestStore.VERSIONS_DIR)));
        } catch (IOException | RuntimeException e) {
            return false; // not there, or not readable as a dataset: leave it to the next reader
        }
    }

    @Override
    public TokenBatchSource open(String dataSpec, String split, int seqLen, long seed, int worker, int workers) {
        String spec = dataSpec.strip();
        if (seqLen < 1) {
            throw new IllegalArgumentException("seq_len is " + seqLen + ", expected >= 1");
        }
        Path p = new Path(spec);
        Manifest m;
        try {
            m = ManifestStore.open(p, conf());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the catena dataset at " + spec + ": " + e.getMessage()
                    + ". Expected the --out directory of `catena prepare` (or one of its manifest files) on a reachable"
                    + " filesystem.", e);
        } catch (RuntimeException e) {
            if (e instanceof IllegalArgumentException) {
                throw e; // ManifestStore's own messages already say what to do
            }
            throw new IllegalArgumentException("cannot read the catena dataset at " + spec + ": " + e.getMessage()
                    + (schemeOf(spec) == null ? "" : " (is a Hadoop FileSystem for scheme '" + schemeOf(spec)
                    + "' on the class path and configured?)"), e);
        }
        if (m.seqLen() != seqLen) {
            throw new IllegalArgumentException("the dataset " + spec + " (manifest v" + m.version() + ") was packed for seq_len "
                    + m.seqLen() + " (windows of " + (m.seqLen() + 1) + " tokens), but the trainer asks for seq_len " + seqLen
                    + ". Re-run `catena prepare ... --seq-len " + seqLen + "` into a new --out directory, or set seq_len="
                    + m.seqLen() + " in the recipe.");
        }
        long maxCached = Long.getLong(MAX_CACHED_TOKENS_PROP, DEFAULT_MAX_CACHED_TOKENS);
        ShardTokenSource.Options opt = new ShardTokenSource.Options(split, worker, workers, seed, true, maxCached);
        try {
            return new ShardTokenSource(datasetRoot(p), conf(), m, opt);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open dataset " + spec + ": " + e.getMessage(), e);
        }
    }

    /** The dataset's BPE (its manifest's tokenizer.json, checked against the recorded SHA-256) as a text codec. */
    @Override
    public TextCodec textCodec(String dataSpec) {
        Path p = new Path(dataSpec.strip());
        try {
            Manifest m = ManifestStore.open(p, conf());
            Path root = datasetRoot(p);
            ByteLevelBpe bpe = PrepareJob.loadTokenizer(new Path(root, m.tokenizer().path()), conf(), m.tokenizer().sha256());
            return new BpeTextCodec(bpe);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the tokenizer of dataset " + dataSpec + ": " + e.getMessage(), e);
        }
    }

    private Path datasetRoot(Path p) throws IOException {
        Path root = p.getFileSystem(conf()).getFileStatus(p).isFile() ? p.getParent() : p;
        return root.getName().equals(ManifestStore.VERSIONS_DIR) ? root.getParent() : root;
    }

    private static String schemeOf(String spec) {
        try {
            return URI.create(spec).getScheme();
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    @Override
    public String toString() {
        return "catena manifest reader (data-pipeline)";
    }
}
