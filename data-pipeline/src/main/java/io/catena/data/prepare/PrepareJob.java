package io.catena.data.prepare;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.catena.data.io.SerializableConf;
import io.catena.data.io.Texts;
import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.shard.ShardFormat;
import io.catena.data.tokenizer.BpeTrainer;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.IntBuffer;
import io.catena.data.tokenizer.PreTokenizer;
import io.catena.data.tokenizer.TokenizerJson;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.io.LongWritable;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.io.compress.CompressionCodec;
import org.apache.hadoop.io.compress.CompressionCodecFactory;
import org.apache.hadoop.mapreduce.Job;
import org.apache.hadoop.mapreduce.lib.input.FileInputFormat;
import org.apache.hadoop.mapreduce.lib.input.FileSplit;
import org.apache.hadoop.mapreduce.lib.input.TextInputFormat;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaNewHadoopRDD;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.BinaryType;
import org.apache.spark.sql.types.StringType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.storage.StorageLevel;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;

import java.io.BufferedReader;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Serializable;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
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
    private static final int SAMPLE_CHARS = 200;

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

    /** Runs the job; returns the committed manifest (or the unchanged one for a no-op incremental run). */
    public static Result run(SparkSession spark, PrepareOptions o) throws IOException {
        o.validate();
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        registerCodecs(sc.hadoopConfiguration());
        Configuration conf = new Configuration(sc.hadoopConfiguration());
        Path root = new Path(o.out());
        root = root.getFileSystem(conf).makeQualified(root);
        Optional<Manifest> prev = ManifestStore.latest(root, conf);
        if (prev.isPresent() && !o.incremental()) {
            throw new IllegalArgumentException("--out " + root + " already holds dataset version " + prev.get().version()
                    + ". Pass --incremental to append new source files as version " + (prev.get().version() + 1)
                    + ", or choose an empty --out directory.");
        }
        prev.ifPresent(m -> checkSameSettings(m, o));

        List<FileStatus> all = Sources.list(o.inputs(), conf);
        if (all.isEmpty()) {
            throw new IllegalArgumentException("no input files found under " + o.inputs() + " (hidden files and names"
                    + " starting with '_' or '.' are skipped). Check --input.");
        }
        Map<String, Manifest.Source> consumed = new HashMap<>();
        prev.ifPresent(m -> m.sources().forEach(s -> consumed.put(s.path(), s)));
        List<FileStatus> fresh = new ArrayList<>();
        for (FileStatus f : all) {
            Manifest.Source old = consumed.get(f.getPath().toString());
            if (old == null) {
                fresh.add(f);
            } else if (old.size() != f.getLen() || old.modificationTime() != f.getModificationTime()) {
                throw new IllegalStateException("source " + f.getPath() + " changed since dataset version " + old.version()
                        + " consumed it (size " + old.size() + " -> " + f.getLen() + ", modified " + old.modificationTime()
                        + " -> " + f.getModificationTime() + "). Incremental runs only add new files; put new data in a"
                        + " new partition, or rebuild the dataset into a fresh --out.");
            }
        }
        if (fresh.isEmpty()) {
            String msg = "nothing new: all " + all.size() + " source files under " + o.inputs()
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
            Manifest m = runVersion(spark, sc, conf, o, root, staging, prev, fresh, version);
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
                                       int version) throws IOException {
        FileSystem fs = root.getFileSystem(conf);
        fs.mkdirs(staging);
        String vdir = ManifestStore.versionDir(version);
        SerializableConf sconf = new SerializableConf(conf);

        // 1. records
        JavaRDD<Rec> recs = read(spark, sc, conf, o, fresh).persist(StorageLevel.MEMORY_AND_DISK());
        Map<String, long[]> perSource = recs.mapToPair(r -> new Tuple2<>(r.source(),
                        new long[] {1, r.bad() != null ? 1 : 0, r.bad() == null && r.text().isBlank() ? 1 : 0}))
                .reduceByKey((a, b) -> new long[] {a[0] + b[0], a[1] + b[1], a[2] + b[2]})
                .collectAsMap();
        long records = 0;
        long bad = 0;
        long empty = 0;
        for (long[] c : perSource.values()) {
            records += c[0];
            bad += c[1];
            empty += c[2];
        }
        if (records > 0 && (double) bad / records > o.maxBadFraction()) {
            throw new IllegalStateException(bad + " of " + records + " records (" + pct(bad, records) + ") are malformed,"
                    + " more than --max-bad-fraction " + o.maxBadFraction() + ". Worst files: " + worst(perSource)
                    + ". Fix those files or their --format/--text-field, or raise --max-bad-fraction; nothing was written.");
        }
        long documents = records - bad - empty;
        if (documents == 0 && prev.isEmpty()) {
            throw new IllegalArgumentException("no documents in " + fresh.size() + " input files under " + o.inputs()
                    + ": " + records + " records, " + bad + " malformed, " + empty + " empty. Expected non-empty "
                    + o.format() + " records; check --input and --format.");
        }

        // 2. dedup (within this run, then against all earlier versions)
        JavaPairRDD<Long, String> docs = recs.filter(r -> r.bad() == null && !r.text().isBlank())
                .mapToPair(r -> new Tuple2<>(DocHash.of(r.text()), r.text()));
        int parts = Math.max(2, sc.defaultParallelism());
        JavaPairRDD<Long, String> uniqueAll = docs.reduceByKey((a, b) -> a.compareTo(b) <= 0 ? a : b, parts)
                .persist(StorageLevel.MEMORY_AND_DISK());
        long uniqueCount = uniqueAll.count();
        JavaPairRDD<Long, String> unique = uniqueAll;
        if (prev.isPresent()) {
            List<String> hashDirs = new ArrayList<>();
            for (int v = 1; v < version; v++) {
                Path h = new Path(new Path(root, ManifestStore.versionDir(v)), "hashes");
                if (fs.exists(h) && fs.listStatus(h).length > 0) {
                    hashDirs.add(h.toString());
                }
            }
            if (!hashDirs.isEmpty()) {
                JavaPairRDD<Long, Boolean> seen = sc.binaryFiles(String.join(",", hashDirs))
                        .flatMap(f -> longs(f._2().toArray()).iterator())
                        .mapToPair(h -> new Tuple2<>(h, Boolean.TRUE));
                unique = uniqueAll.subtractByKey(seen, new org.apache.spark.HashPartitioner(parts))
                        .persist(StorageLevel.MEMORY_AND_DISK());
            }
        }
        long valPpm = Math.round(o.valFraction() * 1_000_000);
        long seed = o.splitSeed();
        Map<Integer, long[]> splitStats = unique.mapToPair(t -> new Tuple2<>(DocHash.isVal(t._1(), seed, valPpm) ? 1 : 0,
                        new long[] {1, t._2().getBytes(StandardCharsets.UTF_8).length}))
                .reduceByKey((a, b) -> new long[] {a[0] + b[0], a[1] + b[1]})
                .collectAsMap();
        long[] trainStat = splitStats.getOrDefault(0, new long[2]);
        long[] valStat = splitStats.getOrDefault(1, new long[2]);
        long newDocs = trainStat[0] + valStat[0];
        long duplicates = documents - uniqueCount;
        long dupEarlier = uniqueCount - newDocs;

        // 3. tokenizer
        String tokPath;
        ByteLevelBpe tok;
        if (prev.isPresent()) {
            tokPath = prev.get().tokenizer().path();
            tok = loadTokenizer(new Path(root, tokPath), conf, prev.get().tokenizer().sha256());
            checkIncrementalTokenizer(o, prev.get(), tok, conf);
        } else {
            tokPath = vdir + "/tokenizer.json";
            String spec = o.tokenizer() == null ? PrepareOptions.DEFAULT_TOKENIZER : o.tokenizer();
            if (spec.startsWith("train:")) {
                if (newDocs == 0) {
                    throw new IllegalArgumentException("cannot train a tokenizer: no documents");
                }
                tok = train(unique, Integer.parseInt(spec.substring(6)), o.minPairCount());
            } else {
                tok = loadTokenizer(new Path(spec), conf, null);
            }
            ManifestStore.writeFile(fs, new Path(staging, "tokenizer.json"),
                    TokenizerJson.toJson(tok).getBytes(StandardCharsets.UTF_8));
        }
        String tokSha = tok.sha256();

        // 4. encode + pack + write shards
        int window = o.seqLen() + 1;
        long chunk = Math.max(window, o.shardTokens() / window * window);
        int trainBuckets = buckets(trainStat[1], o.shardTokens());
        int valBuckets = valStat[0] == 0 ? 0 : buckets(valStat[1], o.shardTokens());
        SplitBucketPartitioner partitioner = new SplitBucketPartitioner(trainBuckets, valBuckets, seed, valPpm);
        Broadcast<ByteLevelBpe> btok = sc.broadcast(tok);
        int dtype = ShardFormat.dtypeBytes(tok.vocabSize());
        String stagingStr = staging.toString();
        List<ShardOut> written = newDocs == 0 ? List.of() : unique.repartitionAndSortWithinPartitions(partitioner)
                .mapPartitionsWithIndex((idx, it) -> writeBucket(partitioner.split(idx), partitioner.bucket(idx), it,
                        btok.value().copy(), stagingStr, sconf, chunk, window, dtype), true)
                .collect();
        btok.destroy();
        List<ShardOut> sorted = new ArrayList<>(written);
        sorted.sort(Comparator.comparing(ShardOut::split).thenComparingInt(ShardOut::bucket)
                .thenComparingInt(ShardOut::part));

        // 5. quarantine
        if (bad > 0) {
            recs.filter(r -> r.bad() != null).map(PrepareJob::quarantineLine).coalesce(1)
                    .saveAsTextFile(new Path(staging, "quarantine").toString());
        }
        recs.unpersist(false);
        if (unique != uniqueAll) {
            unique.unpersist(false);
        }
        uniqueAll.unpersist(false);

        // 6. manifest
        List<Manifest.Shard> shards = new ArrayList<>(prev.map(Manifest::shards).orElse(List.of()));
        long trainTokens = 0;
        long valTokens = 0;
        for (ShardOut s : sorted) {
            shards.add(new Manifest.Shard(s.split(), vdir + "/" + s.name(), s.tokens(), s.windows(), s.documents(),
                    String.format("%08x", s.crc()), version));
            if (s.split().equals("train")) {
                trainTokens += s.tokens();
            } else {
                valTokens += s.tokens();
            }
        }
        shards.sort(Comparator.comparing(Manifest.Shard::split)
                .thenComparingInt(Manifest.Shard::version).thenComparing(Manifest.Shard::path));
        List<Manifest.Source> sources = new ArrayList<>(prev.map(Manifest::sources).orElse(List.of()));
        long bytes = 0;
        for (FileStatus f : fresh) {
            sources.add(new Manifest.Source(f.getPath().toString(), f.getLen(), f.getModificationTime(), version));
            bytes += f.getLen();
        }
        List<Manifest.RunCounts> runs = new ArrayList<>(prev.map(Manifest::runs).orElse(List.of()));
        runs.add(new Manifest.RunCounts(version, fresh.size(), records, documents, empty, duplicates, dupEarlier, bad,
                trainStat[0], valStat[0], trainTokens, valTokens, bytes));
        Manifest m = new Manifest(Manifest.FORMAT, version, Instant.now().toString(), o.seqLen(),
                new Manifest.TokenizerRef(tokPath, tokSha, tok.vocabSize(), tok.eosId(), tok.padId(), dtype),
                new Manifest.SplitRule("val iff remainderUnsigned(splitmix64(sha256_64(doc) ^ seed), 1e6) < valPpm",
                        o.valFraction(), valPpm, seed),
                new Manifest.InputSettings(o.format(), o.textField(), o.textDocument(), o.normalization()),
                shards, sources, List.copyOf(new TreeSet<>(Sources.partitions(sources))), runs);

        // 7. commit: staging -> vNNNNNN, then the manifest version, then manifest.json
        Path vpath = new Path(root, vdir);
        if (fs.exists(vpath)) {
            LOG.warn("removing {} left by an earlier failed run (no manifest lists it)", vpath);
            fs.delete(vpath, true);
        }
        if (!fs.rename(staging, vpath)) {
            throw new IllegalStateException("could not rename " + staging + " to " + vpath + "; the previous manifest is"
                    + " unchanged. Check permissions on " + root + " and retry.");
        }
        ManifestStore.commit(root, m, conf);
        LOG.info("dataset {} version {}: {} new documents ({} duplicates, {} seen in earlier versions, {} malformed),"
                        + " {} train + {} val tokens in {} shards", root, version, newDocs, duplicates, dupEarlier, bad,
                trainTokens, valTokens, sorted.size());
        return m;
    }

    private static int buckets(long bytes, long shardTokens) {
        // ~4 UTF-8 bytes per token: aim for shards near the size limit (they are split at it anyway)
        return (int) Math.max(1, Math.min(100_000, (bytes + shardTokens * 4 - 1) / (shardTokens * 4)));
    }

    private static String pct(long a, long b) {
        return String.format("%.2f%%", 100.0 * a / b);
    }

    private static String worst(Map<String, long[]> perSource) {
        List<Map.Entry<String, long[]>> l = new ArrayList<>(perSource.entrySet());
        l.removeIf(e -> e.getValue()[1] == 0);
        l.sort((a, b) -> a.getValue()[1] != b.getValue()[1] ? Long.compare(b.getValue()[1], a.getValue()[1])
                : a.getKey().compareTo(b.getKey()));
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < Math.min(5, l.size()); i++) {
            long[] c = l.get(i).getValue();
            sb.append(i == 0 ? "" : ", ").append(l.get(i).getKey()).append(" (").append(c[1]).append(" of ").append(c[0])
                    .append(" bad)");
        }
        return sb.toString();
    }

    private static void checkSameSettings(Manifest m, PrepareOptions o) {
        List<String> diffs = new ArrayList<>();
        if (m.seqLen() != o.seqLen()) {
            diffs.add("--seq-len " + o.seqLen() + " (dataset: " + m.seqLen() + ")");
        }
        if (m.split().valPpm() != Math.round(o.valFraction() * 1_000_000)) {
            diffs.add("--val-fraction " + o.valFraction() + " (dataset: " + m.split().valFraction() + ")");
        }
        if (m.split().seed() != o.splitSeed()) {
            diffs.add("--split-seed " + o.splitSeed() + " (dataset: " + m.split().seed() + ")");
        }
        if (!m.input().format().equals(o.format())) {
            diffs.add("--format " + o.format() + " (dataset: " + m.input().format() + ")");
        }
        if (!m.input().normalization().equals(o.normalization())) {
            diffs.add("--normalize " + o.normalization() + " (dataset: " + m.input().normalization() + ")");
        }
        if (!o.format().equals("text") && !m.input().textField().equals(o.textField())) {
            diffs.add("--text-field " + o.textField() + " (dataset: " + m.input().textField() + ")");
        }
        if (o.format().equals("text") && !m.input().textDocument().equals(o.textDocument())) {
            diffs.add("--text-doc " + o.textDocument() + " (dataset: " + m.input().textDocument() + ")");
        }
        if (!diffs.isEmpty()) {
            throw new IllegalArgumentException("incremental run into dataset version " + m.version() + " uses different"
                    + " settings: " + String.join(", ", diffs) + ". An incremental run must keep the dataset's settings;"
                    + " use the dataset's values or write a new dataset to a fresh --out.");
        }
    }

    private static void checkIncrementalTokenizer(PrepareOptions o, Manifest m, ByteLevelBpe tok, Configuration conf) {
        String spec = o.tokenizer();
        if (spec == null) {
            return;
        }
        if (spec.startsWith("train:")) {
            if (Integer.parseInt(spec.substring(6)) != tok.vocabSize()) {
                throw new IllegalArgumentException("--tokenizer " + spec + " conflicts with dataset version " + m.version()
                        + ", whose tokenizer has " + tok.vocabSize() + " tokens; an incremental run reuses the dataset's"
                        + " tokenizer. Drop --tokenizer or write a new dataset to a fresh --out.");
            }
            return;
        }
        ByteLevelBpe given = loadTokenizer(new Path(spec), conf, null);
        if (!given.sha256().equals(m.tokenizer().sha256())) {
            throw new IllegalArgumentException("--tokenizer " + spec + " differs from dataset version " + m.version()
                    + "'s tokenizer (sha256 " + m.tokenizer().sha256() + "); an incremental run must reuse it."
                    + " Drop --tokenizer or write a new dataset to a fresh --out.");
        }
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

    private static ByteLevelBpe train(JavaPairRDD<Long, String> docs, int vocab, long minPair) {
        Map<String, Long> counts = docs.values().flatMapToPair(text -> {
            byte[] b = text.getBytes(StandardCharsets.UTF_8);
            HashMap<String, Long> local = new HashMap<>();
            PreTokenizer.split(b, 0, b.length, (bytes, s, e) ->
                    local.merge(new String(bytes, s, e - s, StandardCharsets.ISO_8859_1), 1L, Long::sum));
            List<Tuple2<String, Long>> out = new ArrayList<>(local.size());
            local.forEach((k, v) -> out.add(new Tuple2<>(k, v)));
            return out.iterator();
        }).reduceByKey(Long::sum).collectAsMap();
        LOG.info("training byte-level BPE ({} tokens) over {} unique words", vocab, counts.size());
        return BpeTrainer.train(new HashMap<>(counts), vocab, minPair);
    }

    private static Iterator<ShardOut> writeBucket(String split, int bucket, Iterator<Tuple2<Long, String>> docs,
                                                  ByteLevelBpe tok, String staging, SerializableConf conf, long chunk,
                                                  int window, int dtype) throws IOException {
        List<ShardOut> out = new ArrayList<>();
        IntBuffer buf = new IntBuffer((int) Math.min(chunk + 4096, 1 << 20));
        java.io.ByteArrayOutputStream hashes = new java.io.ByteArrayOutputStream();
        DataOutputStream hashOut = new DataOutputStream(hashes);
        int eos = tok.eosId();
        long docsInShard = 0;
        int part = 0;
        while (docs.hasNext()) {
            Tuple2<Long, String> d = docs.next();
            hashOut.writeLong(d._1());
            byte[] b = d._2().getBytes(StandardCharsets.UTF_8);
            docsInShard++;
            tok.encode(b, 0, b.length, buf);
            buf.add(eos);
            while (buf.size() >= chunk) {
                out.add(writeShard(split, bucket, part++, buf, (int) chunk, docsInShard, staging, conf, window, dtype));
                buf.dropFirst((int) chunk);
                docsInShard = 0;
            }
        }
        if (buf.size() > 0) {
            out.add(writeShard(split, bucket, part, buf, buf.size(), docsInShard, staging, conf, window, dtype));
        }
        if (hashes.size() > 0) {
            Path p = new Path(new Path(staging, "hashes"), String.format("%s-%05d.bin", split, bucket));
            writeOnce(p, conf.get(), hashes.toByteArray());
        }
        return out.iterator();
    }

    private static ShardOut writeShard(String split, int bucket, int part, IntBuffer buf, int n, long docs, String staging,
                                       SerializableConf conf, int window, int dtype) throws IOException {
        String name = String.format("%s-%05d-%03d.bin", split, bucket, part);
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream(ShardFormat.HEADER_BYTES + n * dtype);
        int crc = ShardFormat.write(bytes, buf.array(), n, dtype);
        writeOnce(new Path(staging, name), conf.get(), bytes.toByteArray());
        return new ShardOut(split, bucket, part, name, n, n / window, docs, crc);
    }

    /** Task-attempt-safe write: temp file, then rename over any copy a failed attempt left. */
    private static void writeOnce(Path p, Configuration conf, byte[] data) throws IOException {
        FileSystem fs = p.getFileSystem(conf);
        TaskContext tc = TaskContext.get();
        Path tmp = new Path(p.getParent(), "_tmp-" + p.getName() + "-" + (tc == null ? UUID.randomUUID() : tc.taskAttemptId()));
        try (FSDataOutputStream os = fs.create(tmp, true)) {
            os.write(data);
        }
        if (fs.exists(p)) {
            fs.delete(p, false);
        }
        if (!fs.rename(tmp, p)) {
            throw new IOException("could not rename " + tmp + " to " + p);
        }
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

    // ---------------------------------------------------------------- reading

    static void registerCodecs(Configuration conf) {
        String codecs = conf.get("io.compression.codecs", "");
        if (!codecs.contains(io.catena.data.io.ZstdCodec.class.getName())) {
            conf.set("io.compression.codecs", (codecs.isEmpty() ? "" : codecs + ",")
                    + "org.apache.hadoop.io.compress.GzipCodec,org.apache.hadoop.io.compress.BZip2Codec,"
                    + io.catena.data.io.ZstdCodec.class.getName());
        }
    }

    private static JavaRDD<Rec> read(SparkSession spark, JavaSparkContext sc, Configuration conf, PrepareOptions o,
                                     List<FileStatus> files) throws IOException {
        String norm = o.normalization();
        String field = o.textField();
        switch (o.format()) {
            case "parquet":
                return readParquet(spark, o, files);
            case "jsonl":
                checkJsonlField(files.get(0), conf, field);
                int maxChars = o.maxTextChars();
                return readLines(sc, conf, files).map(r -> r.bad() != null ? r : parseJson(r, field, norm, maxChars));
            default:
                if (o.textDocument().equals("file")) {
                    SerializableConf sconf = new SerializableConf(conf);
                    List<String> paths = files.stream().map(f -> f.getPath().toString()).toList();
                    return sc.parallelize(paths, Math.max(1, Math.min(paths.size(), sc.defaultParallelism() * 4)))
                            .map(p -> readWholeFile(p, sconf.get(), norm));
                }
                return readLines(sc, conf, files).map(r -> r.bad() != null ? r : new Rec(r.source(), r.offset(),
                        normalize(r.text(), norm), null));
        }
    }

    static String normalize(String s, String mode) {
        return switch (mode) {
            case "NFC" -> Normalizer.isNormalized(s, Normalizer.Form.NFC) ? s : Normalizer.normalize(s, Normalizer.Form.NFC);
            case "NFKC" -> Normalizer.normalize(s, Normalizer.Form.NFKC);
            default -> s;
        };
    }

    /** Lines with their byte offsets; a line that is not valid UTF-8 becomes a bad record. */
    private static JavaRDD<Rec> readLines(JavaSparkContext sc, Configuration conf, List<FileStatus> files) throws IOException {
        Job job = Job.getInstance(new Configuration(conf));
        FileInputFormat.setInputPaths(job, files.stream().map(FileStatus::getPath).toArray(Path[]::new));
        JavaPairRDD<LongWritable, Text> raw = sc.newAPIHadoopRDD(job.getConfiguration(), TextInputFormat.class,
                LongWritable.class, Text.class);
        return ((JavaNewHadoopRDD<LongWritable, Text>) raw).mapPartitionsWithInputSplit((split, it) -> {
            String src = ((FileSplit) split).getPath().toString();
            return new Iterator<Rec>() {
                @Override
                public boolean hasNext() {
                    return it.hasNext();
                }

                @Override
                public Rec next() {
                    Tuple2<LongWritable, Text> t = it.next();
                    Text line = t._2();
                    long off = t._1().get();
                    try {
                        return new Rec(src, off, Texts.decodeUtf8(line.getBytes(), 0, line.getLength()), null);
                    } catch (CharacterCodingException e) {
                        return new Rec(src, off, sample(new String(line.getBytes(), 0, line.getLength(), StandardCharsets.UTF_8)),
                                e.getMessage() + " of the line");
                    }
                }
            };
        }, false);
    }

    private static Rec readWholeFile(String path, Configuration conf, String norm) {
        Path p = new Path(path);
        try {
            FileSystem fs = p.getFileSystem(conf);
            CompressionCodec codec = new CompressionCodecFactory(conf).getCodec(p);
            byte[] b;
            try (InputStream raw = fs.open(p); InputStream in = codec == null ? raw : codec.createInputStream(raw)) {
                b = in.readAllBytes();
            }
            try {
                return new Rec(path, 0, normalize(Texts.decodeUtf8(b, 0, b.length), norm), null);
            } catch (CharacterCodingException e) {
                return new Rec(path, 0, sample(new String(b, StandardCharsets.UTF_8)), e.getMessage() + " of the file");
            }
        } catch (IOException e) {
            return new Rec(path, 0, "", "unreadable: " + e);
        }
    }

    /** One JSON reader per text-length limit (--max-text-chars), shared by the records of an executor. */
    private static final java.util.concurrent.ConcurrentHashMap<Integer, ObjectMapper> JSON_BY_LIMIT = new java.util.concurrent.ConcurrentHashMap<>();

    private static ObjectMapper json(int maxChars) {
        return JSON_BY_LIMIT.computeIfAbsent(maxChars, m -> new ObjectMapper(com.fasterxml.jackson.core.JsonFactory.builder()
                .streamReadConstraints(com.fasterxml.jackson.core.StreamReadConstraints.builder().maxStringLength(m).build()).build()));
    }

    static Rec parseJson(Rec r, String field, String norm, int maxChars) {
        String line = r.text();
        if (line.isBlank()) {
            return new Rec(r.source(), r.offset(), "", null);
        }
        JsonNode n;
        try {
            n = json(maxChars).readTree(line);
        } catch (com.fasterxml.jackson.core.exc.StreamConstraintsException e) {
            return new Rec(r.source(), r.offset(), sample(line), "a string longer than --max-text-chars " + maxChars
                    + " characters (valid JSON; raise --max-text-chars to keep such records)");
        } catch (IOException e) {
            String msg = e instanceof com.fasterxml.jackson.core.JsonProcessingException jp ? jp.getOriginalMessage() : e.toString();
            return new Rec(r.source(), r.offset(), sample(line), "malformed JSON: " + msg.replace('\n', ' '));
        }
        if (!n.isObject()) {
            return new Rec(r.source(), r.offset(), sample(line), "not a JSON object");
        }
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) {
            return new Rec(r.source(), r.offset(), sample(line), "missing field '" + field + "'");
        }
        if (!v.isTextual()) {
            return new Rec(r.source(), r.offset(), sample(line), "field '" + field + "' is " + v.getNodeType() + ", expected a string");
        }
        return new Rec(r.source(), r.offset(), normalize(v.asText(), norm), null);
    }

    /** Fails fast, before any Spark job, if the first record of the first file lacks the text field. */
    private static void checkJsonlField(FileStatus first, Configuration conf, String field) throws IOException {
        Path p = first.getPath();
        CompressionCodec codec = new CompressionCodecFactory(conf).getCodec(p);
        try (InputStream raw = p.getFileSystem(conf).open(p);
             InputStream in = codec == null ? raw : codec.createInputStream(raw);
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            int n = 0;
            while ((line = r.readLine()) != null && n < 100) {
                n++;
                if (line.isBlank()) {
                    continue;
                }
                JsonNode node;
                try {
                    node = JSON.readTree(line);
                } catch (IOException e) {
                    continue; // malformed lines are counted and quarantined by the job
                }
                if (node.isObject() && !node.has(field)) {
                    List<String> names = new ArrayList<>();
                    node.fieldNames().forEachRemaining(names::add);
                    throw new IllegalArgumentException("--text-field '" + field + "' is missing from the first record of " + p
                            + " (line " + n + "): " + sample(line) + " . Fields present: " + names
                            + ". Pass --text-field with the field that holds the text.");
                }
                return;
            }
        }
    }

    private static JavaRDD<Rec> readParquet(SparkSession spark, PrepareOptions o, List<FileStatus> files) {
        String[] paths = files.stream().map(f -> f.getPath().toString()).toArray(String[]::new);
        Dataset<Row> df;
        try {
            df = spark.read().parquet(paths);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("cannot read Parquet input " + Arrays.toString(paths).substring(0,
                    Math.min(300, Arrays.toString(paths).length())) + ": " + e.getMessage()
                    + ". Expected Parquet files for --format parquet.", e);
        }
        String field = o.textField();
        StructField sf;
        try {
            sf = df.schema().apply(field);
        } catch (IllegalArgumentException e) {
            List<Row> sample = df.limit(1).collectAsList();
            throw new IllegalArgumentException("--text-field '" + field + "' is not a column of the Parquet input (schema: "
                    + df.schema().simpleString() + "); sample record: " + (sample.isEmpty() ? "(none)" : sample(sample.get(0).toString()))
                    + ". Pass --text-field with the column that holds the text.", e);
        }
        if (!(sf.dataType() instanceof StringType) && !(sf.dataType() instanceof BinaryType)) {
            throw new IllegalArgumentException("--text-field '" + field + "' has Parquet type " + sf.dataType().simpleString()
                    + ", expected string or binary. Pass --text-field with the column that holds the text.");
        }
        boolean binary = sf.dataType() instanceof BinaryType;
        String norm = o.normalization();
        return df.select(org.apache.spark.sql.functions.col(field), org.apache.spark.sql.functions.col("_metadata.file_path"),
                        org.apache.spark.sql.functions.col("_metadata.row_index"))
                .javaRDD().map(row -> {
                    String src = row.getString(1);
                    long off = row.isNullAt(2) ? -1 : row.getLong(2);
                    if (row.isNullAt(0)) {
                        return new Rec(src, off, "", "null in column '" + field + "' (row " + off + ")");
                    }
                    if (!binary) {
                        return new Rec(src, off, normalize(row.getString(0), norm), null);
                    }
                    byte[] b = (byte[]) row.get(0);
                    try {
                        return new Rec(src, off, normalize(Texts.decodeUtf8(b, 0, b.length), norm), null);
                    } catch (CharacterCodingException e) {
                        return new Rec(src, off, sample(new String(b, StandardCharsets.UTF_8)), e.getMessage() + " in row " + off);
                    }
                });
    }

    private static String sample(String s) {
        return s.length() <= SAMPLE_CHARS ? s : s.substring(0, SAMPLE_CHARS) + "...";
    }
}
