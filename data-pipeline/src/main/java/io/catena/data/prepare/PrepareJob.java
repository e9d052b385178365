package io.catena.data.prepare;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.catena.data.io.SerializableConf;
import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.shard.ShardFormat;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.TokenizerJson;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.storage.StorageLevel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;

import java.io.IOException;
import java.io.InputStream;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The {@code catena prepare} Spark job: sources -> records (bad ones quarantined) -> Unicode
 * normalization -> exact dedup (64-bit SHA-256 prefix, also against earlier versions) -> byte-level BPE
 * (trained: word counts on executors, merges on the driver; or loaded) -> encode on executors ->
 * documents + EOS packed per (split, bucket) in hash order -> checksummed shards -> manifest version.
 *
 * <p>Determinism: documents are assigned to buckets and ordered inside them by their hash, so shards and
 * manifest depend only on the input contents and settings, never on Spark partitioning or timing.
 *
 * <p>Atomicity: everything is written under {@code out/_staging-*}, renamed to {@code out/vNNNNNN} when
 * complete, and only then is the manifest version committed (temp file + rename). A failure at any step
 * leaves earlier manifests untouched; the staging leftovers are removed or replaced by the next run.
 */
public final class PrepareJob {

    private static final Logger LOG = LoggerFactory.getLogger(PrepareJob.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private PrepareJob() {
    }

    /** A record read from a source: normalized text, or a reason it is bad (then text is a lossy sample). */
    record Rec(String source, long offset, String text, String bad) implements Serializable {
    }

    /** A shard written by an executor. */
    record ShardOut(String split, int bucket, int part, String name, long tokens, long windows, long documents,
                    int crc) implements Serializable {
    }

    /** What a run did. */
    public record Result(boolean noop, Manifest manifest, String message) {
    }

    /** Records read from a run's new sources: all, malformed, and empty; the rest are documents. */
    record RecordCounts(long records, long bad, long empty) {
        /** Sums {records, bad, empty} per source. */
        static RecordCounts of(Map<String, long[]> perSource) {
            long records = 0;
            long bad = 0;
            long empty = 0;
            for (long[] c : perSource.values()) {
                records += c[0];
                bad += c[1];
                empty += c[2];
            }
            return new RecordCounts(records, bad, empty);
        }

        long documents() {
            return records - bad - empty;
        }

        RecordCounts plus(RecordCounts o) {
            return new RecordCounts(records + o.records, bad + o.bad, empty + o.empty);
        }
    }

    /** A run's documents: its records, the unique ones among them, and those new to the dataset per split. */
    record DocCounts(RecordCounts records, long unique, long trainDocs, long valDocs) {
        long newDocs() {
            return trainDocs + valDocs;
        }

        long duplicates() {
            return records.documents() - unique;
        }

        long duplicatesOfEarlier() {
            return unique - newDocs();
        }
    }

    /** Runs the job; returns the committed manifest (or the unchanged one for a no-op incremental run). */
    public static Result run(SparkSession spark, PrepareOptions o) throws IOException {
        o.validate();
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        SourceReader.registerCodecs(sc.hadoopConfiguration());
        Configuration conf = new Configuration(sc.hadoopConfiguration());
        Path root = new Path(o.out());
        root = root.getFileSystem(conf).makeQualified(root);
        Optional<Manifest> prev = ManifestStore.latest(root, conf);
        if (prev.isPresent() && !o.incremental()) {
            throw new IllegalArgumentException("--out " + root + " already holds dataset version " + prev.get().version()
                    + ". Pass --incremental to append new source files as version " + (prev.get().version() + 1)
                    + ", or choose an empty --out directory.");
        }
        prev.ifPresent(m -> PrepareChecks.checkSameSettings(m, o));

        List<FileStatus> heldOut = PrepareChecks.listHeldOut(o, conf);
        List<FileStatus> all = PrepareChecks.withoutFiles(PrepareChecks.listInputs(o, conf), heldOut);
        List<FileStatus> fresh = PrepareChecks.newSources(all, prev);
        List<FileStatus> freshHeldOut = PrepareChecks.newSources(heldOut, prev);
        if (fresh.isEmpty() && freshHeldOut.isEmpty()) {
            String msg = "nothing new: all " + all.size() + " source files under " + o.inputs()
                    + (heldOut.isEmpty() ? "" : " and " + heldOut.size() + " under --val-input " + o.valInput())
                    + " are already in dataset version " + prev.get().version() + " at " + root + "; no new version written";
            LOG.info(msg);
            return new Result(true, prev.get(), msg);
        }
        int version = prev.map(m -> m.version() + 1).orElse(1);
        String group = "catena-prepare-" + UUID.randomUUID();
        AtomicBoolean timedOut = new AtomicBoolean();
        ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "catena-prepare-watchdog");
            t.setDaemon(true);
            return t;
        });
        watchdog.schedule(() -> {
            timedOut.set(true);
            sc.cancelJobGroup(group);
        }, o.timeoutSeconds(), TimeUnit.SECONDS);
        Path staging = new Path(root, "_staging-" + ManifestStore.versionDir(version) + "-" + UUID.randomUUID());
        FileSystem fs = root.getFileSystem(conf);
        sc.setJobGroup(group, "catena prepare " + root + " v" + version, true);
        try {
            Manifest m = runVersion(spark, sc, conf, o, root, staging, prev, fresh, freshHeldOut, version);
            return new Result(false, m, "wrote dataset version " + version + " at " + root);
        } catch (RuntimeException e) {
            if (timedOut.get()) {
                throw new IllegalStateException("catena prepare exceeded --timeout " + o.timeoutSeconds() + " s and was"
                        + " cancelled; the previous manifest is unchanged. Raise --timeout or give the job more executors.", e);
            }
            throw e;
        } finally {
            watchdog.shutdownNow();
            sc.clearJobGroup();
            try {
                fs.delete(staging, true);
            } catch (IOException e) {
                LOG.warn("could not remove staging directory {}: {}", staging, e.toString());
            }
        }
    }

    private static Manifest runVersion(SparkSession spark, JavaSparkContext sc, Configuration conf, PrepareOptions o,
                                       Path root, Path staging, Optional<Manifest> prev, List<FileStatus> fresh,
                                       List<FileStatus> freshHeldOut, int version) throws IOException {
        FileSystem fs = root.getFileSystem(conf);
        fs.mkdirs(staging);
        String vdir = ManifestStore.versionDir(version);
        SerializableConf sconf = new SerializableConf(conf);

        // 1. records (of --input, and of the held-out corpus --val-input)
        JavaRDD<Rec> recs = readRecords(spark, sc, conf, o, fresh);
        Map<String, long[]> perSource = countPerSource(recs);
        RecordCounts inputCounts = RecordCounts.of(perSource);
        PrepareChecks.checkRecords(perSource, inputCounts, o, prev, fresh.size());
        JavaRDD<Rec> heldRecs = freshHeldOut.isEmpty() ? null : readRecords(spark, sc, conf, o, freshHeldOut);
        Map<String, long[]> heldPerSource = heldRecs == null ? Map.of() : countPerSource(heldRecs);
        RecordCounts heldCounts = RecordCounts.of(heldPerSource);
        PrepareChecks.checkHeldOutRecords(heldPerSource, heldCounts, o, prev, freshHeldOut.size());
        RecordCounts recordCounts = inputCounts.plus(heldCounts);

        // 2. dedup (within this run, then against all earlier versions); a held-out document is never train data
        int parts = Math.max(2, sc.defaultParallelism());
        JavaPairRDD<Long, String> uniqueAll = uniqueDocuments(recs, parts);
        long uniqueCount = uniqueAll.count();
        JavaPairRDD<Long, String> heldAll = heldRecs == null ? null : uniqueDocuments(heldRecs, parts);
        JavaPairRDD<Long, String> trainable = uniqueAll;
        if (heldAll != null) {
            long heldUnique = heldAll.count();
            trainable = uniqueAll.subtractByKey(heldAll, new org.apache.spark.HashPartitioner(parts))
                    .persist(StorageLevel.MEMORY_AND_DISK());
            uniqueCount = trainable.count() + heldUnique; // a document in both corpora counts once
        }
        JavaPairRDD<Long, String> unique = prev.isPresent() ? notInEarlierVersions(sc, trainable, fs, root, version, parts)
                : trainable;
        JavaPairRDD<Long, String> held = heldAll == null ? null
                : prev.isPresent() ? notInEarlierVersions(sc, heldAll, fs, root, version, parts) : heldAll;
        long valPpm = o.valInput() != null ? 0 : Math.round(o.valFraction() * 1_000_000);
        long seed = o.splitSeed();
        Map<Integer, long[]> splitStats = splitStats(unique, seed, valPpm);
        long[] trainStat = splitStats.getOrDefault(0, new long[2]);
        long[] valStat = held != null ? splitStats(held, seed, ALL_VAL).getOrDefault(1, new long[2])
                : splitStats.getOrDefault(1, new long[2]);
        DocCounts counts = new DocCounts(recordCounts, uniqueCount, trainStat[0], valStat[0]);

        // 3. tokenizer (trained on the train documents only when a held-out corpus is given)
        String tokPath = prev.isPresent() ? prev.get().tokenizer().path() : vdir + "/tokenizer.json";
        ByteLevelBpe tok = prev.isPresent() ? TokenizerStep.reuse(o, prev.get(), root, conf)
                : TokenizerStep.create(o, unique, held == null ? counts.newDocs() : counts.trainDocs(), conf, fs,
                new Path(staging, "tokenizer.json"));
        String tokSha = tok.sha256();
        int dtype = ShardFormat.dtypeBytes(tok.vocabSize());

        // 4. encode + pack + write shards; then make sure the dataset has a val window
        List<ShardOut> sorted = new ArrayList<>(held == null
                ? ShardWriter.write(sc, unique, tok, o, staging, sconf, trainStat, valStat, valPpm)
                : ShardWriter.write(sc, unique, tok, o, staging, sconf, trainStat, new long[2], 0));
        if (held != null) {
            sorted.addAll(ShardWriter.write(sc, held, tok, o, staging, sconf, new long[2], valStat, ALL_VAL));
        }
        long prevValWindows = prev.map(p -> p.shards("val").stream().mapToLong(Manifest.Shard::windows).sum()).orElse(0L);
        long valWindows = sorted.stream().filter(sh -> sh.split().equals("val")).mapToLong(ShardOut::windows).sum();
        long drawn = 0;
        if (held != null && prevValWindows + valWindows == 0) {
            long valTokens = sorted.stream().filter(sh -> sh.split().equals("val")).mapToLong(ShardOut::tokens).sum();
            throw new IllegalArgumentException("--val-input " + o.valInput() + " gives no validation window: its " + valStat[0]
                    + " new documents hold " + valTokens + " tokens, fewer than one window of " + (o.seqLen() + 1)
                    + " tokens (--seq-len " + o.seqLen() + "). Add held-out documents, or lower --seq-len; nothing was written.");
        }
        if (held == null && o.valFraction() > 0 && prevValWindows + valWindows == 0) {
            ValWindowDraw.Drawn d = ValWindowDraw.draw(sc, sorted, o, staging, sconf, dtype, counts, valStat);
            sorted = d.shards();
            drawn = d.windows();
            LOG.warn("the document split gave dataset {} no whole validation window ({} of {} new documents hashed to val,"
                            + " {} val windows); moved {} of {} whole train windows to val instead (--val-fraction {})", root,
                    valStat[0], counts.newDocs(), valWindows, drawn, d.trainWindowsBefore(), o.valFraction());
        }
        sorted.sort(Comparator.comparing(ShardOut::split).thenComparingInt(ShardOut::bucket)
                .thenComparingInt(ShardOut::part).thenComparing(ShardOut::name));

        // 5. quarantine
        if (recordCounts.bad() > 0) {
            JavaRDD<Rec> bad = recs.filter(r -> r.bad() != null);
            if (heldRecs != null) {
                bad = bad.union(heldRecs.filter(r -> r.bad() != null));
            }
            bad.map(PrepareJob::quarantineLine).coalesce(1).saveAsTextFile(new Path(staging, "quarantine").toString());
        }
        recs.unpersist(false);
        if (heldRecs != null) {
            heldRecs.unpersist(false);
            heldAll.unpersist(false);
            held.unpersist(false);
            trainable.unpersist(false);
        }
        unique.unpersist(false);
        uniqueAll.unpersist(false);

        // 6. manifest
        Manifest m = ManifestWriter.build(o, version, prev, sorted, fresh, freshHeldOut, counts, drawn,
                new Manifest.TokenizerRef(tokPath, tokSha, tok.vocabSize(), tok.eosId(), tok.padId(), dtype));

        // 7. commit: staging -> vNNNNNN, then the manifest version, then manifest.json
        ManifestWriter.commit(fs, root, staging, m, conf);
        Manifest.RunCounts run = m.runs().get(m.runs().size() - 1);
        LOG.info("dataset {} version {}: {} new documents ({} duplicates, {} seen in earlier versions, {} malformed),"
                        + " {} train + {} val tokens in {} shards", root, version, counts.newDocs(), counts.duplicates(),
                counts.duplicatesOfEarlier(), recordCounts.bad(), run.trainTokens(), run.valTokens(), sorted.size());
        return m;
    }

    /** valPpm that sends every document to val (the held-out corpus). */
    static final long ALL_VAL = 1_000_000;

    private static JavaRDD<Rec> readRecords(SparkSession spark, JavaSparkContext sc, Configuration conf, PrepareOptions o,
                                            List<FileStatus> files) throws IOException {
        return SourceReader.read(spark, sc, conf, o, files).persist(StorageLevel.MEMORY_AND_DISK());
    }

    /** {records, bad, empty} per source file. */
    private static Map<String, long[]> countPerSource(JavaRDD<Rec> recs) {
        return recs.mapToPair(r -> new Tuple2<>(r.source(),
                        new long[] {1, r.bad() != null ? 1 : 0, r.bad() == null && r.text().isBlank() ? 1 : 0}))
                .reduceByKey((a, b) -> new long[] {a[0] + b[0], a[1] + b[1], a[2] + b[2]})
                .collectAsMap();
    }

    /** The good, non-blank records by document hash, one text per hash. */
    private static JavaPairRDD<Long, String> uniqueDocuments(JavaRDD<Rec> recs, int parts) {
        return recs.filter(r -> r.bad() == null && !r.text().isBlank())
                .mapToPair(r -> new Tuple2<>(DocHash.of(r.text()), r.text()))
                .reduceByKey((a, b) -> a.compareTo(b) <= 0 ? a : b, parts)
                .persist(StorageLevel.MEMORY_AND_DISK());
    }

    /** {documents, UTF-8 bytes} of each split (0 train, 1 val) under the document rule. */
    private static Map<Integer, long[]> splitStats(JavaPairRDD<Long, String> docs, long seed, long valPpm) {
        return docs.mapToPair(t -> new Tuple2<>(DocHash.isVal(t._1(), seed, valPpm) ? 1 : 0,
                        new long[] {1, t._2().getBytes(StandardCharsets.UTF_8).length}))
                .reduceByKey((a, b) -> new long[] {a[0] + b[0], a[1] + b[1]})
                .collectAsMap();
    }

    /** The documents of {@code uniqueAll} whose hashes no earlier version recorded (itself when none recorded any). */
    private static JavaPairRDD<Long, String> notInEarlierVersions(JavaSparkContext sc, JavaPairRDD<Long, String> uniqueAll,
                                                                  FileSystem fs, Path root, int version, int parts)
            throws IOException {
        List<String> hashDirs = new ArrayList<>();
        for (int v = 1; v < version; v++) {
            Path h = new Path(new Path(root, ManifestStore.versionDir(v)), "hashes");
            if (fs.exists(h) && fs.listStatus(h).length > 0) {
                hashDirs.add(h.toString());
            }
        }
        if (hashDirs.isEmpty()) {
            return uniqueAll;
        }
        JavaPairRDD<Long, Boolean> seen = sc.binaryFiles(String.join(",", hashDirs))
                .flatMap(f -> longs(f._2().toArray()).iterator())
                .mapToPair(h -> new Tuple2<>(h, Boolean.TRUE));
        return uniqueAll.subtractByKey(seen, new org.apache.spark.HashPartitioner(parts))
                .persist(StorageLevel.MEMORY_AND_DISK());
    }

    /**
     * The settings of {@code o} that differ from those dataset version {@code m} was prepared with, each as
     * "--flag new (dataset: old)"; empty when an incremental run of {@code o} may append to it. A {@code train:N}
     * tokenizer of another size counts too (an incremental run would refuse it).
     */
    public static List<String> settingDifferences(Manifest m, PrepareOptions o) {
        List<String> d = new ArrayList<>(PrepareChecks.settingDifferences(m, o));
        String t = o.tokenizer();
        if (t != null && t.startsWith("train:") && !t.substring(6).trim().equals(Integer.toString(m.tokenizer().vocabSize()))) {
            d.add("--tokenizer " + t + " (dataset: " + m.tokenizer().vocabSize() + " tokens)");
        }
        return d;
    }

    /**
     * Removes the dataset versions after {@code keep} (0: all of them): first their manifest files, newest first (so a
     * reader or prepare run sees {@code keep} as the newest version at every moment), then {@code manifest.json} is set
     * back to version {@code keep} (or removed), then their directories. Returns the removed versions, newest first.
     * For a version that was prepared but never used (a retrain run that failed after its prepare step).
     */
    public static List<Integer> discardVersionsAfter(Path root, int keep, Configuration conf) throws IOException {
        FileSystem fs = root.getFileSystem(conf);
        Optional<Manifest> latest = ManifestStore.latest(root, conf);
        List<Integer> removed = new ArrayList<>();
        if (latest.isEmpty() || latest.get().version() <= keep) {
            return removed;
        }
        for (int v = latest.get().version(); v > keep; v--) {
            Path f = ManifestStore.versionFile(root, v);
            if (fs.exists(f) && !fs.delete(f, false)) {
                throw new IOException("could not delete " + f + "; check permissions on " + root);
            }
            removed.add(v);
        }
        Path json = new Path(root, ManifestStore.MANIFEST);
        if (keep == 0) {
            fs.delete(json, false);
        } else {
            ManifestStore.replaceAtomically(root, json, ManifestStore.toJson(ManifestStore.read(ManifestStore.versionFile(root, keep),
                    conf)).getBytes(StandardCharsets.UTF_8), conf);
        }
        for (int v : removed) {
            fs.delete(new Path(root, ManifestStore.versionDir(v)), true);
        }
        LOG.info("dataset {}: removed versions {} (kept {})", root, removed, keep == 0 ? "none" : "up to version " + keep);
        return removed;
    }

    /** Reads a tokenizer.json from any Hadoop FS; with expectSha, fails when the file is not the one a manifest recorded. */
    public static ByteLevelBpe loadTokenizer(Path p, Configuration conf, String expectSha) {
        String json;
        try (InputStream in = p.getFileSystem(conf).open(p)) {
            json = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read tokenizer " + p + ": " + e + ". Pass an existing tokenizer.json"
                    + " to --tokenizer, or train one with --tokenizer train:<vocab>.", e);
        }
        ByteLevelBpe t = TokenizerJson.parse(json, p.toString(), ByteLevelBpe.EOS, ByteLevelBpe.PAD);
        if (expectSha != null && !t.sha256().equals(expectSha)) {
            throw new IllegalStateException("tokenizer " + p + " has sha256 " + t.sha256() + " but the manifest recorded "
                    + expectSha + "; the dataset was modified. Restore the file or rebuild the dataset.");
        }
        return t;
    }

    private static List<Long> longs(byte[] b) {
        List<Long> l = new ArrayList<>(b.length / 8);
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(b);
        while (bb.remaining() >= 8) {
            l.add(bb.getLong());
        }
        return l;
    }

    private static String quarantineLine(Rec r) {
        ObjectNode n = JSON.createObjectNode();
        n.put("source", r.source());
        n.put("offset", r.offset());
        n.put("reason", r.bad());
        n.put("sample", r.text());
        return n.toString();
    }

    /** Parses one JSON line into a record ({@link SourceReader#parseJson}). */
    static Rec parseJson(Rec r, String field, String norm, int maxChars) {
        return SourceReader.parseJson(r, field, norm, maxChars);
    }
}
