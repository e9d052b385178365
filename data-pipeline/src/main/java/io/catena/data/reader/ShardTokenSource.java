package io.catena.data.reader;

import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.shard.ShardFormat;
import io.catena.model.data.TokenBatchSource;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the token windows of one split of a prepared dataset ({@code catena prepare} output) for
 * worker {@code rank} of {@code worldSize}. Spark-free: only Hadoop's FileSystem API (any URI scheme).
 *
 * <p>Windows are numbered globally in manifest shard order (each shard holds
 * {@code floor(tokens / (seqLen+1))} whole windows; a shard's trailing partial window is never read).
 * In epoch {@code e}, the global order is a seeded bijection {@code P_e} of [0, N) ({@link WindowPermutation},
 * seed derived from {@code (seed, e)}; identity when shuffle is off), and worker r reads
 * {@code P_e(k*W + r)} for {@code k = 0 .. floor(N/W)-1}. So within an epoch the workers' shares are
 * disjoint and equally long, together they cover all windows but the {@code N mod W} that the
 * permutation leaves last (different ones each epoch), and the stream is a pure function of
 * (manifest version, split, seed, shuffle, rank, W, position).
 *
 * <p>With a new-data weight {@code w} (train split only; {@link Options#newDataWeight()}), the windows of the shards of
 * dataset versions {@code >= newFromVersion} (the new partitions; by default the manifest's own version) and those of
 * older versions are two streams, each in its own seeded per-epoch order: the global draw {@code d = position*W + r}
 * comes from the new stream iff {@code floor((d+1)*w) > floor(d*w)} (w in millionths), as its {@code floor(d*w)}-th
 * window, else from the old stream as its {@code d - floor(d*w)}-th. So share w of every step's windows is new data
 * (the new windows repeat more often when they are fewer), the workers' draws stay disjoint, and the stream stays a
 * pure function of the position (exact resume). Without a weight every window of every version is equally likely.
 *
 * <p>Every shard is read whole and its CRC32C verified before any of its windows is returned; a
 * mismatch throws {@link io.catena.data.shard.ShardCorruptException} naming the file and offset.
 * Verified shards are kept in an LRU cache bounded by {@code maxCachedTokens}.
 */
public final class ShardTokenSource implements TokenBatchSource {

    /** Exact resume point: the manifest version and share it belongs to, the position, and where it points. */
    public record Cursor(int manifestVersion, String split, int rank, int worldSize, long seed, boolean shuffle,
                         long position, String shard, long tokenOffset) {
    }

    /**
     * Construction arguments. {@code newDataWeight}: share of the train windows drawn from dataset versions
     * {@code >= newFromVersion} (0 < w < 1; NaN: none, every window equally likely); {@code newFromVersion} 0 means the
     * manifest's own version.
     */
    public record Options(String split, int rank, int worldSize, long seed, boolean shuffle, long maxCachedTokens,
                          double newDataWeight, int newFromVersion) {
        public Options(String split, int rank, int worldSize, long seed, boolean shuffle, long maxCachedTokens) {
            this(split, rank, worldSize, seed, shuffle, maxCachedTokens, Double.NaN, 0);
        }

        /** These options with a new-data weight over versions {@code >= fromVersion} (0: the manifest's own). */
        public Options withNewDataWeight(double w, int fromVersion) {
            return new Options(split, rank, worldSize, seed, shuffle, maxCachedTokens, w, fromVersion);
        }

        public Options {
            if (!Double.isNaN(newDataWeight) && !(newDataWeight > 0 && newDataWeight < 1)) {
                throw new IllegalArgumentException("new-data weight is " + newDataWeight + ", expected 0 < w < 1 (the share of"
                        + " each step's windows drawn from the new dataset versions)");
            }
            if (newFromVersion < 0) {
                throw new IllegalArgumentException("new-from-version is " + newFromVersion + ", expected >= 1 (0: the newest)");
            }
            if (!"train".equals(split) && !"val".equals(split)) {
                throw new IllegalArgumentException("split is \"" + split + "\", expected \"train\" or \"val\"");
            }
            if (worldSize < 1 || rank < 0 || rank >= worldSize) {
                throw new IllegalArgumentException("worker rank " + rank + " of world size " + worldSize
                        + " is invalid; expected 0 <= rank < worldSize");
            }
            if (maxCachedTokens < 1) {
                throw new IllegalArgumentException("maxCachedTokens is " + maxCachedTokens + ", expected >= 1");
            }
        }

        public static Options of(String split, int rank, int worldSize, long seed) {
            return new Options(split, rank, worldSize, seed, true, 64L << 20);
        }
    }

    private final Path root;
    private final Configuration conf;
    private final Manifest manifest;
    private final Options opt;
    private final List<Manifest.Shard> shards;
    private final long[] firstWindow;   // shard i holds global windows [firstWindow[i], firstWindow[i+1])
    private final long totalWindows;
    private final long perEpoch;
    private final int window;
    private final LinkedHashMap<Integer, int[]> cache = new LinkedHashMap<>(16, 0.75f, true);
    private long cachedTokens;
    private long position;
    private long permEpoch = -1;
    private WindowPermutation perm;
    /** The new-data mix: windows [0, oldWindows) are old, the rest new; weight in millionths (0: no mix). */
    private final long oldWindows;
    private final long newWeightPpm;
    private final long[] subEpoch = {-1, -1};
    private final WindowPermutation[] subPerm = new WindowPermutation[2];

    /**
     * @param dataset a dataset directory (newest manifest) or a manifest file, on any Hadoop FS
     */
    public static ShardTokenSource open(String dataset, Configuration conf, Options opt) {
        try {
            Path p = new Path(dataset);
            Manifest m = ManifestStore.open(p, conf);
            Path root = p.getFileSystem(conf).getFileStatus(p).isFile() ? p.getParent() : p;
            if (root.getName().equals(ManifestStore.VERSIONS_DIR)) {
                root = root.getParent();
            }
            return new ShardTokenSource(root, conf, m, opt);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open dataset " + dataset + ": " + e.getMessage(), e);
        }
    }

    /** Re-opens the exact stream a cursor came from and seeks to it; fails if the dataset version differs. */
    public static ShardTokenSource resume(String datasetDir, Configuration conf, Cursor c, long maxCachedTokens) {
        Path root = new Path(datasetDir);
        Path file = ManifestStore.versionFile(root, c.manifestVersion());
        try {
            if (!file.getFileSystem(conf).exists(file)) {
                throw new IllegalArgumentException("cursor points at manifest version " + c.manifestVersion() + " but " + file
                        + " does not exist; resume against the dataset the checkpoint was trained on");
            }
            ShardTokenSource s = new ShardTokenSource(root, conf, ManifestStore.read(file, conf),
                    new Options(c.split(), c.rank(), c.worldSize(), c.seed(), c.shuffle(), maxCachedTokens));
            s.seek(c.position());
            return s;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public ShardTokenSource(Path root, Configuration conf, Manifest manifest, Options opt) {
        this.root = root;
        this.conf = conf;
        this.manifest = manifest;
        this.opt = opt;
        this.shards = manifest.shards(opt.split());
        this.window = manifest.seqLen() + 1;
        this.firstWindow = new long[shards.size() + 1];
        for (int i = 0; i < shards.size(); i++) {
            firstWindow[i + 1] = firstWindow[i] + shards.get(i).tokens() / window;
        }
        this.totalWindows = firstWindow[shards.size()];
        this.perEpoch = totalWindows / opt.worldSize();
        int from = opt.newFromVersion() > 0 ? opt.newFromVersion() : manifest.version();
        long old = 0;
        for (int i = 0; i < shards.size() && shards.get(i).version() < from; i++) {
            old = firstWindow[i + 1];
        }
        for (int i = 0; i < shards.size(); i++) {
            if (shards.get(i).version() < from && firstWindow[i + 1] > old) {
                throw new IllegalStateException("manifest v" + manifest.version() + " of " + root + " lists " + opt.split()
                        + " shards out of version order; expected the order `catena prepare` writes");
            }
        }
        boolean mix = !Double.isNaN(opt.newDataWeight()) && opt.split().equals("train");
        if (mix && (old == 0 || old == totalWindows)) {
            // one side is empty (a first version, or no new train window): nothing to weigh
            mix = false;
        }
        this.oldWindows = mix ? old : 0;
        this.newWeightPpm = mix ? Math.max(1, Math.min(999_999, Math.round(opt.newDataWeight() * 1_000_000))) : 0;
        if (perEpoch == 0) {
            throw new IllegalArgumentException("split '" + opt.split() + "' of " + root + " (manifest v" + manifest.version()
                    + ") has " + totalWindows + " windows of " + window + " tokens, fewer than the " + opt.worldSize()
                    + " workers; use fewer workers, a smaller --seq-len or more data"
                    + (opt.split().equals("val") ? "; for val, prepare the dataset again (`catena prepare` now moves whole"
                    + " train windows to val when no document gives one) or give it a held-out corpus with --val-input" : ""));
        }
    }

    @Override
    public int vocabSize() {
        return manifest.tokenizer().vocabSize();
    }

    @Override
    public int seqLen() {
        return manifest.seqLen();
    }

    public Manifest manifest() {
        return manifest;
    }

    /** All windows of the split (all workers). */
    public long totalWindows() {
        return totalWindows;
    }

    @Override
    public long windowsPerEpoch() {
        return perEpoch;
    }

    @Override
    public long position() {
        return position;
    }

    @Override
    public void seek(long position) {
        if (position < 0) {
            throw new IllegalArgumentException("position " + position + " is negative");
        }
        this.position = position;
    }

    /** The global window index (in manifest order) read at {@code position} by this worker. */
    public long windowAt(long position) {
        if (newWeightPpm > 0) {
            long d = position * opt.worldSize() + opt.rank();
            long before = newDraws(d);
            return newDraws(d + 1) > before ? oldWindows + subWindow(1, before, totalWindows - oldWindows)
                    : subWindow(0, d - before, oldWindows);
        }
        long epoch = position / perEpoch;
        long k = position % perEpoch;
        if (epoch != permEpoch) {
            perm = new WindowPermutation(totalWindows, WindowPermutation.mix64(opt.seed() * 0x9E3779B97F4A7C15L + epoch), opt.shuffle());
            permEpoch = epoch;
        }
        return perm.apply(k * opt.worldSize() + opt.rank());
    }

    /** How many of the draws [0, d) come from the new stream: floor(d * w). */
    private long newDraws(long d) {
        return Math.multiplyHigh(d, newWeightPpm) == 0 && d * newWeightPpm >= 0 ? d * newWeightPpm / 1_000_000
                : (long) Math.floor((double) d * newWeightPpm / 1_000_000);
    }

    /** The {@code j}-th window of stream {@code s} (0 old, 1 new) of {@code n} windows, in its seeded per-epoch order. */
    private long subWindow(int s, long j, long n) {
        long epoch = j / n;
        if (subEpoch[s] != epoch) {
            subPerm[s] = new WindowPermutation(n, WindowPermutation.mix64(opt.seed() * 0x9E3779B97F4A7C15L + epoch
                    + (s + 1) * 0x632BE59BD9B4E019L), opt.shuffle());
            subEpoch[s] = epoch;
        }
        return subPerm[s].apply(j % n);
    }

    /** Train windows of the new dataset versions and of the older ones under a new-data weight (0 and 0 without). */
    public long[] newAndOldWindows() {
        return newWeightPpm == 0 ? new long[2] : new long[] {totalWindows - oldWindows, oldWindows};
    }

    @Override
    public void nextBatch(int[] dst, int batchSize) {
        if (dst.length < batchSize * window) {
            throw new IllegalArgumentException("dst holds " + dst.length + " ints, expected >= batchSize*(seqLen+1) = "
                    + (long) batchSize * window);
        }
        for (int b = 0; b < batchSize; b++) {
            readWindow(windowAt(position), dst, b * window);
            position++;
        }
    }

    /** Copies global window {@code g} into {@code dst[off, off+seqLen+1)}. */
    public void readWindow(long g, int[] dst, int off) {
        int s = shardOf(g);
        int[] tokens = shardTokens(s);
        int start = (int) ((g - firstWindow[s]) * window);
        System.arraycopy(tokens, start, dst, off, window);
    }

    /** The last shard i with firstWindow[i] <= g: the one whose non-empty range holds g. */
    private int shardOf(long g) {
        int lo = 0;
        int hi = shards.size() - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (firstWindow[mid] <= g) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    private int[] shardTokens(int s) {
        int[] t = cache.get(s);
        if (t != null) {
            return t;
        }
        Manifest.Shard sh = shards.get(s);
        Path p = new Path(root, sh.path());
        try {
            FileSystem fs = p.getFileSystem(conf);
            try (FSDataInputStream in = fs.open(p)) {
                t = ShardFormat.read(in, p.toString(), sh.tokens(), Integer.parseUnsignedInt(sh.crc32c(), 16));
            }
        } catch (java.io.FileNotFoundException e) {
            throw new IllegalStateException("shard " + p + " listed in manifest v" + manifest.version()
                    + " is missing; the dataset directory is incomplete. Restore it or re-run `catena prepare`.", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read shard " + p + ": " + e.getMessage(), e);
        }
        cache.put(s, t);
        cachedTokens += t.length;
        for (Iterator<Map.Entry<Integer, int[]>> it = cache.entrySet().iterator(); cachedTokens > opt.maxCachedTokens() && cache.size() > 1; ) {
            Map.Entry<Integer, int[]> e = it.next();
            cachedTokens -= e.getValue().length;
            it.remove();
        }
        return t;
    }

    /** Resume point for the current position. */
    public Cursor cursor() {
        long g = windowAt(position);
        int s = shardOf(g);
        return new Cursor(manifest.version(), opt.split(), opt.rank(), opt.worldSize(), opt.seed(), opt.shuffle(), position,
                shards.get(s).path(), (g - firstWindow[s]) * window);
    }

    @Override
    public String describe() {
        return "catena shards " + root + " manifest v" + manifest.version() + " split=" + opt.split() + " worker "
                + opt.rank() + "/" + opt.worldSize() + " seed=" + opt.seed() + (opt.shuffle() ? "" : " (no shuffle)")
                + " windows/epoch=" + perEpoch + " of " + totalWindows + " seqLen=" + seqLen() + " vocab=" + vocabSize()
                + (newWeightPpm == 0 ? "" : String.format(java.util.Locale.ROOT, " new-data-weight=%.6g (%d new windows,"
                + " %d old)", newWeightPpm / 1e6, totalWindows - oldWindows, oldWindows));
    }

    @Override
    public void close() {
        cache.clear();
        cachedTokens = 0;
    }
}
