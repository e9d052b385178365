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
 * <p>A spec may end in {@code #new-data-weight=W[&new-from-version=V]} (what {@code catena retrain --new-data-weight}
 * passes to training): share W of the train windows is drawn from the shards of dataset versions {@code >= V} (default:
 * the manifest's own version), the rest from older versions ({@link ShardTokenSource}); the val split is not weighted.
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

    /** The suffix keys a data spec may carry after '#'. */
    public static final String NEW_DATA_WEIGHT = "new-data-weight";
    public static final String NEW_FROM_VERSION = "new-from-version";

    /** A data spec: the dataset or manifest URI, and the new-data weight of its optional suffix (NaN: none). */
    public record Spec(String dataset, double newDataWeight, int newFromVersion) {
        /** {@code dataset} with share {@code w} of the train windows from versions >= {@code fromVersion} (0: the newest). */
        public static String withNewDataWeight(String dataset, double w, int fromVersion) {
            return dataset + "#" + NEW_DATA_WEIGHT + "=" + w + (fromVersion > 0 ? "&" + NEW_FROM_VERSION + "=" + fromVersion : "");
        }

        /** Splits off a {@code #new-data-weight=W[&new-from-version=V]} suffix; a '#' followed by anything else is part of the URI. */
        public static Spec parse(String spec) {
            String s = spec.strip();
            int h = s.lastIndexOf('#');
            if (h < 0 || !(s.startsWith(NEW_DATA_WEIGHT + "=", h + 1) || s.startsWith(NEW_FROM_VERSION + "=", h + 1))) {
                return new Spec(s, Double.NaN, 0);
            }
            double w = Double.NaN;
            int from = 0;
            for (String kv : s.substring(h + 1).split("&")) {
                int eq = kv.indexOf('=');
                String k = eq < 0 ? kv : kv.substring(0, eq);
                String v = eq < 0 ? "" : kv.substring(eq + 1);
                try {
                    if (k.equals(NEW_DATA_WEIGHT)) {
                        w = Double.parseDouble(v);
                    } else if (k.equals(NEW_FROM_VERSION)) {
                        from = Integer.parseInt(v);
                    } else {
                        throw new IllegalArgumentException("data spec " + spec + ": unknown key '" + k + "' after '#'; expected "
                                + NEW_DATA_WEIGHT + "=W (0 < W < 1) and optionally &" + NEW_FROM_VERSION + "=V");
                    }
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("data spec " + spec + ": " + k + " is '" + v + "', expected a number", e);
                }
            }
            if (Double.isNaN(w)) {
                throw new IllegalArgumentException("data spec " + spec + ": " + NEW_FROM_VERSION + " without " + NEW_DATA_WEIGHT
                        + "=W; add the weight (0 < W < 1)");
            }
            return new Spec(s.substring(0, h), w, from);
        }
    }

    @Override
    public boolean accepts(String dataSpec) {
        if (dataSpec == null || dataSpec.isBlank() || dataSpec.startsWith("builtin:")) {
            return false;
        }
        String spec;
        try {
            spec = Spec.parse(dataSpec).dataset();
        } catch (IllegalArgumentException e) {
            return true; // a weight suffix only a dataset takes: open() says what is wrong with it
        }
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
        Spec parsed = Spec.parse(dataSpec);
        String spec = parsed.dataset();
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
        if (!Double.isNaN(parsed.newDataWeight())) {
            if (parsed.newFromVersion() > m.version()) {
                throw new IllegalArgumentException("data spec " + dataSpec + ": " + NEW_FROM_VERSION + "=" + parsed.newFromVersion()
                        + " is past the manifest's version " + m.version() + "; expected 1.." + m.version());
            }
            opt = opt.withNewDataWeight(parsed.newDataWeight(), parsed.newFromVersion());
        }
        try {
            return new ShardTokenSource(datasetRoot(p), conf(), m, opt);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open dataset " + spec + ": " + e.getMessage(), e);
        }
    }

    /** The dataset's BPE (its manifest's tokenizer.json, checked against the recorded SHA-256) as a text codec. */
    @Override
    public TextCodec textCodec(String dataSpec) {
        Path p = new Path(Spec.parse(dataSpec).dataset());
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
