package io.catena.data.prepare;

import io.catena.data.io.SerializableConf;
import io.catena.data.prepare.PrepareJob.DocCounts;
import io.catena.data.prepare.PrepareJob.ShardOut;
import io.catena.data.reader.WindowPermutation;
import io.catena.data.shard.ShardFormat;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * The split's window rule (step 4 of {@link PrepareJob}, after the shards are written): when the document rule leaves the
 * dataset without one whole val window (a few long documents, one large file: whole documents go to val by hash, and
 * none or only short ones did), a share of this version's whole train windows moves to val instead. Windows are the
 * reader's: consecutive, non-overlapping {@code seqLen + 1}-token ranges of each shard, so the moved windows' tokens are
 * in no train window (long documents are split at window boundaries; the windows around a val window stay train).
 *
 * <p>Which windows: {@code k = max(1, round(valFraction x W))} of the version's {@code W} train windows (at most
 * {@code W - 1}), those with the smallest unsigned {@code mix64((seed ^ sha256_64(shard name)) + window index)}; a
 * pure function of the shards and --split-seed, so reruns give the same dataset. Each train shard that loses windows is
 * rewritten without them and its windows go to {@code val-from-<shard name>}.
 */
final class ValWindowDraw {

    /** The rule as the manifest records it ({@code split.windowRule}). */
    static final String RULE = "when the document rule leaves the dataset without a whole val window, k = max(1,"
            + " round(valFraction x W)) (at most W-1) of the version's W train windows, those with the smallest unsigned"
            + " mix64((seed ^ sha256_64(shard name)) + window index), move whole to val shards val-from-<train shard>";

    /** The version's shards after the draw, how many windows moved, and the train windows there were. */
    record Drawn(List<ShardOut> shards, long windows, long trainWindowsBefore) {
    }

    /** One train shard to split: its file, size, checksum and the (sorted) windows that move to val. */
    private record Task(ShardOut shard, long[] windows) implements Serializable {
    }

    private ValWindowDraw() {
    }

    static Drawn draw(JavaSparkContext sc, List<ShardOut> shards, PrepareOptions o, Path staging, SerializableConf sconf,
                      int dtype, DocCounts counts, long[] valStat) {
        int window = o.seqLen() + 1;
        List<ShardOut> train = shards.stream().filter(s -> s.split().equals("train")).toList();
        long w = train.stream().mapToLong(ShardOut::windows).sum();
        long trainTokens = train.stream().mapToLong(ShardOut::tokens).sum();
        if (w < 2) {
            throw new IllegalArgumentException("no validation window possible: the " + counts.newDocs() + " new documents ("
                    + valStat[0] + " of them hashed to val by --val-fraction " + o.valFraction() + ") give " + trainTokens
                    + " train tokens, " + w + " whole window(s) of " + window + " tokens (--seq-len " + o.seqLen() + "); a val"
                    + " split needs one whole window and training at least one more. Lower --seq-len (at most "
                    + Math.max(1, trainTokens / 2 - 1) + " here), add documents, or pass a held-out corpus with --val-input;"
                    + " nothing was written.");
        }
        long k = Math.min(w - 1, Math.max(1, Math.round(o.valFraction() * w)));
        if (k > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("--val-fraction " + o.valFraction() + " of " + w + " train windows is " + k
                    + " val windows, more than one run can draw; lower --val-fraction or pass --val-input");
        }
        // the k smallest scores: a max-heap of {score, shard index, window index}
        PriorityQueue<long[]> heap = new PriorityQueue<>((int) k + 1, (a, b) -> Long.compareUnsigned(b[0], a[0]));
        for (int s = 0; s < train.size(); s++) {
            long base = o.splitSeed() ^ DocHash.of(train.get(s).name());
            for (long i = 0; i < train.get(s).windows(); i++) {
                long score = WindowPermutation.mix64(base + i);
                if (heap.size() < k) {
                    heap.add(new long[] {score, s, i});
                } else if (Long.compareUnsigned(score, heap.peek()[0]) < 0) {
                    heap.poll();
                    heap.add(new long[] {score, s, i});
                }
            }
        }
        Map<Integer, List<Long>> byShard = new LinkedHashMap<>();
        for (long[] e : heap) {
            byShard.computeIfAbsent((int) e[1], x -> new ArrayList<>()).add(e[2]);
        }
        List<Task> tasks = new ArrayList<>();
        byShard.forEach((s, l) -> tasks.add(new Task(train.get(s), l.stream().mapToLong(Long::longValue).sorted().toArray())));
        String stagingStr = staging.toString();
        List<ShardOut[]> rewritten = sc.parallelize(tasks, Math.max(1, Math.min(tasks.size(), sc.defaultParallelism() * 4)))
                .map(t -> split(t, stagingStr, sconf, window, dtype)).collect();
        Map<String, ShardOut[]> byName = new LinkedHashMap<>();
        rewritten.forEach(r -> byName.put(r[0].name(), r));
        List<ShardOut> out = new ArrayList<>();
        for (ShardOut s : shards) {
            ShardOut[] r = s.split().equals("train") ? byName.get(s.name()) : null;
            if (r == null) {
                out.add(s);
            } else {
                out.addAll(Arrays.asList(r));
            }
        }
        return new Drawn(out, k, w);
    }

    /** Rewrites one train shard without the task's windows and writes those to its val shard; returns {train, val}. */
    private static ShardOut[] split(Task t, String staging, SerializableConf sconf, int window, int dtype) throws IOException {
        ShardOut s = t.shard();
        Path p = new Path(staging, s.name());
        int[] tokens;
        try (FSDataInputStream in = p.getFileSystem(sconf.get()).open(p)) {
            tokens = ShardFormat.read(in, p.toString(), s.tokens(), s.crc());
        }
        int n = tokens.length;
        int moved = t.windows().length;
        int[] keep = new int[n - moved * window];
        int[] val = new int[moved * window];
        int kept = 0;
        int next = 0;
        for (long wi = 0; wi * window < n; wi++) {
            int from = (int) (wi * window);
            int len = Math.min(window, n - from);
            if (next < moved && t.windows()[next] == wi && len == window) {
                System.arraycopy(tokens, from, val, next * window, window);
                next++;
            } else {
                System.arraycopy(tokens, from, keep, kept, len);
                kept += len;
            }
        }
        String valName = "val-from-" + s.name();
        int trainCrc = writeShard(new Path(staging, s.name()), keep, dtype, sconf);
        int valCrc = writeShard(new Path(staging, valName), val, dtype, sconf);
        return new ShardOut[] {
            new ShardOut("train", s.bucket(), s.part(), s.name(), keep.length, keep.length / window, s.documents(), trainCrc),
            new ShardOut("val", s.bucket(), s.part(), valName, val.length, moved, 0, valCrc)};
    }

    private static int writeShard(Path p, int[] tokens, int dtype, SerializableConf sconf) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(ShardFormat.HEADER_BYTES + tokens.length * dtype);
        int crc = ShardFormat.write(bytes, tokens, tokens.length, dtype);
        ShardWriter.writeOnce(p, sconf.get(), bytes.toByteArray());
        return crc;
    }
}
