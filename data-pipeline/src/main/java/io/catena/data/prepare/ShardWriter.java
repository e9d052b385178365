package io.catena.data.prepare;

import io.catena.data.io.SerializableConf;
import io.catena.data.prepare.PrepareJob.ShardOut;
import io.catena.data.shard.ShardFormat;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.IntBuffer;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import scala.Tuple2;

import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.UUID;

/**
 * Step 4 of {@link PrepareJob}: encodes the unique documents on the executors and packs them, each followed by
 * EOS, into checksummed shards per (split, bucket) in hash order, with the bucket's document hashes beside them.
 */
final class ShardWriter {

    private ShardWriter() {
    }

    /**
     * Writes the shards of {@code unique} under {@code staging}; {@code trainStat} and {@code valStat}: {documents,
     * UTF-8 bytes} of each split; {@code valPpm}: the document rule's share of val (0: all train, 1e6: all val).
     * Returns the shards sorted by split, bucket and part.
     */
    static List<ShardOut> write(JavaSparkContext sc, JavaPairRDD<Long, String> unique, ByteLevelBpe tok, PrepareOptions o,
                                Path staging, SerializableConf sconf, long[] trainStat, long[] valStat, long valPpm) {
        long seed = o.splitSeed();
        long newDocs = trainStat[0] + valStat[0];
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
        return sorted;
    }

    private static int buckets(long bytes, long shardTokens) {
        // ~4 UTF-8 bytes per token: aim for shards near the size limit (they are split at it anyway)
        return (int) Math.max(1, Math.min(100_000, (bytes + shardTokens * 4 - 1) / (shardTokens * 4)));
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
    static void writeOnce(Path p, Configuration conf, byte[] data) throws IOException {
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
}
