package io.catena.bench.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.catena.data.prepare.PrepareJob;
import io.catena.data.prepare.PrepareOptions;
import io.catena.data.tokenizer.BpeTrainer;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.PreTokenizer;
import io.catena.data.tokenizer.TokenizerJson;
import io.catena.model.cli.Args;
import org.apache.spark.sql.SparkSession;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.ToIntFunction;

/**
 * The tokenizer benchmark of issue 3, on the JDK 17 source corpus ({@link JdkCorpus}).
 *
 * <pre>
 * TokenizerBench encode  --src-zip Z --work W [--vocab 8192] [--train-mb 24] [--measure-mb 32] [--val-percent 20]
 *                        [--rounds 5] [--warmup 1] [--out result.json]
 * TokenizerBench prepare --src-zip Z --work W [--tokenizer train:8192|file.json] [--mb 0 (= all)] [--master local[2]]
 *                        [--seq-len 256] [--out result.json]
 * </pre>
 *
 * <b>encode</b>: trains a byte-level BPE with our {@link BpeTrainer} on the first {@code --train-mb} of the
 * train split, saves it as {@code tokenizer.json}, loads that same file into HuggingFace tokenizers
 * (Rust, through DJL), checks that both give identical ids on every document of the measured set (the
 * first {@code --measure-mb} of the val split), then times single-threaded encoding, engines
 * alternating in rotating order each round, after warmup passes. Engines, each String -> ids:
 * <ul>
 *   <li>{@code catena}: {@link ByteLevelBpe#encode(String)}, a fresh tokenizer copy (empty piece cache) per pass;</li>
 *   <li>{@code catena-warm}: the same with the piece cache kept across passes;</li>
 *   <li>{@code hf-djl}: DJL's public {@code HuggingFaceTokenizer.encode(text, false, false).getIds()}
 *       (also materialises tokens, offsets, masks: what a JVM user of DJL gets);</li>
 *   <li>{@code hf-ids}: the Rust encoder through DJL's JNI with only the ids fetched
 *       ({@code TokenizersLibrary.encode} + {@code getTokenIds}): the strictest peer.</li>
 * </ul>
 * MB/s are per core (one thread): wall-clock and thread-CPU based; medians over rounds.
 *
 * <p><b>prepare</b>: writes the corpus (or its first {@code --mb} MB in hash order) as 16 JSONL part files,
 * then runs {@code catena prepare} (PrepareJob) in this JVM on Spark {@code --master} and reports input
 * MB/s over the job's wall time, the JVM's peak RSS (driver = executor in local mode) and peak heap.
 */
public final class TokenizerBench {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private TokenizerBench() {
    }

    public static void main(String[] argv) throws Exception {
        if (argv.length == 0 || !(argv[0].equals("encode") || argv[0].equals("prepare"))) {
            System.err.println("usage: TokenizerBench encode|prepare --src-zip <src.zip> --work <dir> [options] (see javadoc)");
            System.exit(2);
        }
        Map<String, String> a = Args.values("bench tokenizer", argv, 1, java.util.Set.of("out", "master", "mb", "measure-mb", "rounds",
                "seq-len", "src-zip", "tokenizer", "train-mb", "val-percent", "vocab", "warmup", "work"));
        Path zip = Path.of(a.getOrDefault("src-zip", "/usr/lib/jvm/openjdk-17/lib/src.zip"));
        Path work = Path.of(a.getOrDefault("work", "target/tokenizer-bench"));
        Files.createDirectories(work);
        Map<String, Object> out = argv[0].equals("encode") ? encode(zip, work, a) : prepare(zip, work, a);
        String json = JSON.writeValueAsString(out);
        System.out.println(json);
        if (a.containsKey("out")) {
            Files.writeString(Path.of(a.get("out")), json + "\n");
        }
    }

    // ---- encode -------------------------------------------------------------------------------

    static Map<String, Object> encode(Path zip, Path work, Map<String, String> a) throws Exception {
        int vocab = Integer.parseInt(a.getOrDefault("vocab", "8192"));
        long trainBytes = (long) (Double.parseDouble(a.getOrDefault("train-mb", "24")) * 1e6);
        long measureBytes = (long) (Double.parseDouble(a.getOrDefault("measure-mb", "32")) * 1e6);
        int valPercent = Integer.parseInt(a.getOrDefault("val-percent", "20"));
        int rounds = Integer.parseInt(a.getOrDefault("rounds", "5"));
        int warmup = Integer.parseInt(a.getOrDefault("warmup", "1"));
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("benchmark", "bpe-encode");
        out.putAll(environment());
        double loadBefore = loadAverage();

        long t0 = System.nanoTime();
        JdkCorpus c = JdkCorpus.load(zip, valPercent);
        out.putAll(corpusInfo(c, valPercent));
        out.put("corpus_load_s", secs(t0));
        log("corpus: %d files, %.1f MB raw, %.1f MB after stripping license headers", c.docs.size(), c.rawBytes / 1e6,
                c.strippedBytes / 1e6);

        // train our BPE on a sample of the train split
        List<JdkCorpus.Doc> sample = c.take(false, trainBytes);
        t0 = System.nanoTime();
        Map<String, Long> counts = new HashMap<>();
        for (JdkCorpus.Doc d : sample) {
            byte[] b = d.text().getBytes(StandardCharsets.UTF_8);
            PreTokenizer.split(b, 0, b.length, (bytes, s, e) ->
                    counts.merge(new String(bytes, s, e - s, StandardCharsets.ISO_8859_1), 1L, Long::sum));
        }
        double countS = secs(t0);
        t0 = System.nanoTime();
        ByteLevelBpe tok = BpeTrainer.train(counts, vocab, 2);
        double trainS = secs(t0);
        Path tokFile = work.resolve("tokenizer-jdk17-" + vocab + ".json");
        Files.writeString(tokFile, TokenizerJson.toJson(tok));
        out.put("tokenizer", Map.of("file", tokFile.toString(), "vocab_size", tok.vocabSize(), "merges", tok.mergeCount(),
                "sha256", tok.sha256(), "train_files", sample.size(), "train_mb", JdkCorpus.bytes(sample) / 1e6,
                "unique_words", counts.size(), "word_count_s", countS, "bpe_train_s", trainS));
        log("BPE: %d merges from %d unique words (%.1f MB, %d files) in %.1f s (+%.1f s counting)", tok.mergeCount(),
                counts.size(), JdkCorpus.bytes(sample) / 1e6, sample.size(), trainS, countS);
        counts.clear();

        List<JdkCorpus.Doc> measured = c.take(true, measureBytes);
        String[] texts = measured.stream().map(JdkCorpus.Doc::text).toArray(String[]::new);
        long bytes = JdkCorpus.bytes(measured);
        out.put("measured", Map.of("split", "val", "files", texts.length, "mb", bytes / 1e6));

        try (HuggingFaceTokenizer hf = HuggingFaceTokenizer.builder().optTokenizerPath(tokFile).optTruncation(false)
                .optPadding(false).optAddSpecialTokens(false).build()) {
            long handle = hf.getHandle();
            TokenizersLibrary lib = TokenizersLibrary.LIB;

            // identity: every measured document, ids and decode
            t0 = System.nanoTime();
            out.put("identity", identity(tok.copy(), hf, texts));
            out.put("identity_s", secs(t0));

            Map<String, ToIntFunction<String>> engines = new LinkedHashMap<>();
            ByteLevelBpe[] fresh = new ByteLevelBpe[1];
            ByteLevelBpe warm = tok.copy();
            engines.put("catena", s -> fresh[0].encode(s).length);
            engines.put("catena-warm", s -> warm.encode(s).length);
            engines.put("hf-djl", s -> hf.encode(s, false, false).getIds().length);
            engines.put("hf-ids", s -> {
                long enc = lib.encode(handle, s, false);
                try {
                    return lib.getTokenIds(enc).length;
                } finally {
                    lib.deleteEncoding(enc);
                }
            });
            List<String> names = new ArrayList<>(engines.keySet());
            Map<String, List<double[]>> samples = new LinkedHashMap<>();
            names.forEach(n -> samples.put(n, new ArrayList<>()));
            ThreadMXBean mx = ManagementFactory.getThreadMXBean();
            long tokens = 0;
            for (int r = -warmup; r < rounds; r++) {
                for (int k = 0; k < names.size(); k++) {
                    String name = names.get(Math.floorMod(r + k, names.size()));
                    fresh[0] = tok.copy();
                    ToIntFunction<String> f = engines.get(name);
                    long cpu0 = mx.getCurrentThreadCpuTime();
                    long w0 = System.nanoTime();
                    long n = 0;
                    for (String s : texts) {
                        n += f.applyAsInt(s);
                    }
                    double wall = secs(w0);
                    double cpu = (mx.getCurrentThreadCpuTime() - cpu0) / 1e9;
                    tokens = n;
                    if (r >= 0) {
                        samples.get(name).add(new double[] {bytes / 1e6 / wall, bytes / 1e6 / cpu});
                    }
                    log("%s %-12s %6.2f MB/s wall  %6.2f MB/s cpu  (%d tokens)", r < 0 ? "warmup" : "round " + r, name,
                            bytes / 1e6 / wall, bytes / 1e6 / cpu, n);
                }
            }
            Map<String, Object> res = new LinkedHashMap<>();
            for (String n : names) {
                List<double[]> s = samples.get(n);
                res.put(n, Map.of("mb_per_s_wall_median", median(s, 0), "mb_per_s_cpu_median", median(s, 1),
                        "mb_per_s_wall", s.stream().map(x -> round(x[0])).toList(),
                        "mb_per_s_cpu", s.stream().map(x -> round(x[1])).toList()));
            }
            out.put("engines", res);
            out.put("tokens", tokens);
            out.put("bytes_per_token", (double) bytes / tokens);
            Map<String, Object> ratios = new LinkedHashMap<>();
            for (String base : List.of("hf-djl", "hf-ids")) {
                ratios.put("catena_over_" + base + "_wall", median(samples.get("catena"), 0) / median(samples.get(base), 0));
                ratios.put("catena_over_" + base + "_cpu", median(samples.get("catena"), 1) / median(samples.get(base), 1));
            }
            out.put("ratios", ratios);
        }
        out.put("load_average_before_after", List.of(loadBefore, loadAverage()));
        out.put("peak_rss_mb", peakRssMb());
        return out;
    }

    /** Compares ids on every text; counts mismatching documents and keeps the first. */
    static Map<String, Object> identity(ByteLevelBpe tok, HuggingFaceTokenizer hf, String[] texts) {
        int mismatched = 0;
        int roundTripFailures = 0;
        long tokens = 0;
        String first = null;
        int special = 0;
        for (String s : texts) {
            if (s.contains(ByteLevelBpe.EOS) || s.contains(ByteLevelBpe.PAD)) {
                special++; // HuggingFace maps special-token text to the special id, we never do: not comparable
                continue;
            }
            int[] ours = tok.encode(s);
            long[] theirs = hf.encode(s, false, false).getIds();
            tokens += ours.length;
            boolean same = ours.length == theirs.length;
            for (int i = 0; same && i < ours.length; i++) {
                same = ours[i] == theirs[i];
            }
            if (!same) {
                mismatched++;
                if (first == null) {
                    int i = 0;
                    while (i < Math.min(ours.length, theirs.length) && ours[i] == theirs[i]) {
                        i++;
                    }
                    first = "first difference at token " + i + ": ours " + Arrays.toString(Arrays.copyOfRange(ours, i,
                            Math.min(ours.length, i + 5))) + " hf " + Arrays.toString(Arrays.copyOfRange(theirs, i,
                            Math.min(theirs.length, i + 5)));
                }
            }
            if (!Arrays.equals(tok.decode(ours), s.getBytes(StandardCharsets.UTF_8))) {
                roundTripFailures++;
            }
        }
        log("identity: %d of %d documents differ (%d tokens compared), %d decode round-trip failures", mismatched,
                texts.length, tokens, roundTripFailures);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("documents", texts.length);
        m.put("tokens_compared", tokens);
        m.put("documents_with_different_ids", mismatched);
        m.put("decode_round_trip_failures", roundTripFailures);
        m.put("documents_skipped_for_special_token_text", special);
        if (first != null) {
            m.put("first_difference", first);
        }
        return m;
    }

    // ---- prepare ------------------------------------------------------------------------------

    static Map<String, Object> prepare(Path zip, Path work, Map<String, String> a) throws Exception {
        long maxBytes = (long) (Double.parseDouble(a.getOrDefault("mb", "0")) * 1e6);
        String tokenizer = a.getOrDefault("tokenizer", "train:8192");
        String master = a.getOrDefault("master", "local[2]");
        int seqLen = Integer.parseInt(a.getOrDefault("seq-len", "256"));
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("benchmark", "prepare-end-to-end");
        out.putAll(environment());
        double loadBefore = loadAverage();
        JdkCorpus c = JdkCorpus.load(zip, 20);
        out.putAll(corpusInfo(c, 20));
        // the whole corpus (or its first --mb MB in hash order) as JSONL, 16 parts
        List<JdkCorpus.Doc> docs = new ArrayList<>();
        long bytes = 0;
        for (JdkCorpus.Doc d : c.docs) {
            if (maxBytes > 0 && bytes >= maxBytes) {
                break;
            }
            docs.add(d);
            bytes += d.utf8Bytes();
        }
        Path in = work.resolve("jsonl-" + (maxBytes > 0 ? maxBytes / 1_000_000 + "mb" : "all"));
        long inputFileBytes = writeJsonl(docs, in, 16);
        out.put("input", Map.of("dir", in.toString(), "documents", docs.size(), "text_mb", bytes / 1e6,
                "jsonl_mb", inputFileBytes / 1e6, "format", "jsonl", "parts", 16));
        Path dataset = work.resolve("dataset-" + System.nanoTime());
        long t0 = System.nanoTime();
        SparkSession spark = SparkSession.builder().master(master).appName("catena-prepare-bench")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.ui.enabled", "false").config("spark.local.dir", work.resolve("spark-local").toString())
                .getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        out.put("spark_startup_s", secs(t0));
        out.put("master", master);
        out.put("spark", spark.version());
        int parallelism = spark.sparkContext().defaultParallelism();
        out.put("default_parallelism", parallelism);
        List<Map<String, Object>> stages = java.util.Collections.synchronizedList(new ArrayList<>());
        spark.sparkContext().addSparkListener(new org.apache.spark.scheduler.SparkListener() {
            @Override
            public void onStageCompleted(org.apache.spark.scheduler.SparkListenerStageCompleted e) {
                var i = e.stageInfo();
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("stage", i.stageId());
                m.put("name", i.name());
                m.put("tasks", i.numTasks());
                m.put("wall_s", i.submissionTime().isDefined() && i.completionTime().isDefined()
                        ? ((Long) i.completionTime().get() - (Long) i.submissionTime().get()) / 1e3 : -1);
                m.put("task_run_s", i.taskMetrics().executorRunTime() / 1e3);
                m.put("task_cpu_s", i.taskMetrics().executorCpuTime() / 1e9);
                m.put("gc_s", i.taskMetrics().jvmGCTime() / 1e3);
                m.put("shuffle_write_mb", i.taskMetrics().shuffleWriteMetrics().bytesWritten() / 1e6);
                m.put("spill_disk_mb", i.taskMetrics().diskBytesSpilled() / 1e6);
                m.put("peak_execution_memory_mb", i.taskMetrics().peakExecutionMemory() / 1e6);
                stages.add(m);
            }
        });
        PrepareOptions o = PrepareOptions.parse("--input", in.toUri().toString(), "--format", "jsonl", "--out",
                dataset.toUri().toString(), "--tokenizer", tokenizer, "--seq-len", String.valueOf(seqLen), "--val-fraction", "0.01");
        double cpu0 = processCpuSeconds();
        t0 = System.nanoTime();
        PrepareJob.Result r = PrepareJob.run(spark, o);
        double wall = secs(t0);
        double cpu = processCpuSeconds() - cpu0;
        Thread.sleep(500); // let the listener bus deliver the last stage
        spark.stop();
        var run = r.manifest().runs().get(r.manifest().runs().size() - 1);
        out.put("tokenizer", tokenizer);
        out.put("seq_len", seqLen);
        out.put("job_wall_s", wall);
        out.put("process_cpu_s", cpu);
        out.put("text_mb_per_s", bytes / 1e6 / wall);
        out.put("text_mb_per_s_per_core", bytes / 1e6 / wall / parallelism);
        out.put("documents", run.documents());
        out.put("duplicates", run.duplicates());
        out.put("train_tokens", run.trainTokens());
        out.put("val_tokens", run.valTokens());
        out.put("shards", r.manifest().shards().size());
        out.put("vocab_size", r.manifest().tokenizer().vocabSize());
        out.put("peak_rss_mb", peakRssMb());
        out.put("peak_heap_mb", peakHeapMb());
        out.put("max_heap_mb", Runtime.getRuntime().maxMemory() / 1e6);
        out.put("load_average_before_after", List.of(loadBefore, loadAverage()));
        out.put("dataset", dataset.toString());
        out.put("stages", new ArrayList<>(stages));
        log("prepare: %.1f MB of text in %.1f s = %.2f MB/s on %s (peak RSS %.0f MB, peak heap %.0f MB)", bytes / 1e6, wall,
                bytes / 1e6 / wall, master, peakRssMb(), peakHeapMb());
        return out;
    }

    static long writeJsonl(List<JdkCorpus.Doc> docs, Path dir, int parts) throws IOException {
        if (Files.isDirectory(dir)) {
            try (var s = Files.list(dir)) {
                long n = s.mapToLong(p -> p.toFile().length()).sum();
                if (n > 0) {
                    return n; // written by an earlier run from the same corpus
                }
            }
        }
        Path tmp = dir.resolveSibling(dir.getFileName() + ".tmp");
        Files.createDirectories(tmp);
        BufferedWriter[] w = new BufferedWriter[parts];
        for (int i = 0; i < parts; i++) {
            w[i] = Files.newBufferedWriter(tmp.resolve(String.format("part-%05d.jsonl", i)), StandardCharsets.UTF_8);
        }
        ObjectMapper m = new ObjectMapper();
        for (int i = 0; i < docs.size(); i++) {
            JdkCorpus.Doc d = docs.get(i);
            w[i % parts].write(m.writeValueAsString(Map.of("path", d.path(), "text", d.text())));
            w[i % parts].write('\n');
        }
        long n = 0;
        for (int i = 0; i < parts; i++) {
            w[i].close();
            n += Files.size(tmp.resolve(String.format("part-%05d.jsonl", i)));
        }
        Files.move(tmp, dir);
        return n;
    }

    // ---- helpers ------------------------------------------------------------------------------

    static Map<String, Object> corpusInfo(JdkCorpus c, int valPercent) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("corpus", Map.of("src_zip", c.zip.toString(), "src_zip_sha256", c.zipSha256, "src_zip_bytes", c.zipBytes,
                "java_files", c.docs.size(), "raw_mb", c.rawBytes / 1e6, "stripped_mb", c.strippedBytes / 1e6,
                "split", "val iff uint64(sha256(entry path)[0:8]) % 100 < " + valPercent,
                "val_files", c.docs.stream().filter(JdkCorpus.Doc::val).count()));
        return m;
    }

    static Map<String, Object> environment() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("java", System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"));
        m.put("cpu", cpuModel());
        m.put("cores", Runtime.getRuntime().availableProcessors());
        m.put("djl_tokenizers", implVersion(HuggingFaceTokenizer.class, "0.38.0"));
        m.put("hf_tokenizers_native", nativeVersion());
        return m;
    }

    private static String implVersion(Class<?> c, String fallback) {
        String v = c.getPackage().getSpecificationVersion();
        return v == null ? fallback : v;
    }

    /** DJL ships "version=<rust tokenizers>-<djl>" in native/lib/tokenizers.properties. */
    private static String nativeVersion() {
        try (InputStream in = HuggingFaceTokenizer.class.getResourceAsStream("/native/lib/tokenizers.properties")) {
            return in == null ? "unknown" : new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static String cpuModel() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (l.startsWith("model name")) {
                    return l.substring(l.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException e) {
            // not Linux
        }
        return System.getProperty("os.arch");
    }

    static double loadAverage() {
        return ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }

    static double processCpuSeconds() {
        var os = ManagementFactory.getOperatingSystemMXBean();
        if (os instanceof com.sun.management.OperatingSystemMXBean sun) {
            return sun.getProcessCpuTime() / 1e9;
        }
        return Double.NaN;
    }

    /** VmHWM of this process: peak resident set size. */
    static double peakRssMb() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (l.startsWith("VmHWM:")) {
                    return Long.parseLong(l.replaceAll("[^0-9]", "")) / 1024.0;
                }
            }
        } catch (IOException e) {
            // not Linux
        }
        return Double.NaN;
    }

    /** Sum of the heap pools' peak usage (an upper bound of the peak heap in use). */
    static double peakHeapMb() {
        long n = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP && p.getPeakUsage() != null) {
                n += p.getPeakUsage().getUsed();
            }
        }
        return n / 1e6;
    }

    static double median(List<double[]> s, int col) {
        double[] v = s.stream().mapToDouble(x -> x[col]).sorted().toArray();
        if (v.length == 0) {
            return Double.NaN;
        }
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    static double round(double x) {
        return Math.round(x * 100) / 100.0;
    }

    static double secs(long t0) {
        return (System.nanoTime() - t0) / 1e9;
    }

    static void log(String fmt, Object... args) {
        System.err.println(String.format(java.util.Locale.ROOT, fmt, args));
    }
}
