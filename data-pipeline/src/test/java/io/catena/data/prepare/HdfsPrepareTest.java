package io.catena.data.prepare;

import io.catena.data.TestData;
import io.catena.data.TestSpark;
import io.catena.data.manifest.Manifest;
import io.catena.data.reader.ManifestTokenSourceProvider;
import io.catena.data.reader.ShardTokenSource;
import io.catena.data.shard.ShardCorruptException;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.data.TokenSourceProvider;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** prepare from hdfs:// to hdfs:// on a real MiniDFSCluster, and the reader over HDFS. */
class HdfsPrepareTest {

    static MiniDFSCluster cluster;
    static FileSystem fs;
    static String nn;
    static SparkSession spark;

    @TempDir
    static java.nio.file.Path base;

    @BeforeAll
    static void start() throws IOException {
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.toString());
        conf.setInt("dfs.client.socket-timeout", 30_000);
        conf.setInt("ipc.client.connect.max.retries", 2);
        cluster = new MiniDFSCluster.Builder(conf).numDataNodes(1).build();
        cluster.waitActive();
        fs = cluster.getFileSystem();
        nn = fs.getUri().toString();
        spark = TestSpark.session();
    }

    @AfterAll
    static void stop() {
        if (cluster != null) {
            cluster.shutdown();
        }
    }

    @Test
    void shouldPrepareFromHdfsToHdfsAndReadTheShardsBackOverHdfs() throws Exception {
        List<String> verses = TestData.genesis();
        try (FSDataOutputStream o = fs.create(new Path("/lake/date=2026-11-28/part-00000.txt"))) {
            o.write(String.join("\n", verses).getBytes(StandardCharsets.UTF_8));
        }
        String out = nn + "/datasets/kjv";
        PrepareOptions opts = PrepareOptions.of(List.of(nn + "/lake"), "text", out).withTokenizer("train:512")
                .withSeqLen(64).withValFraction(0.02).withIncremental(true);
        Manifest m = PrepareJob.run(spark, opts).manifest();
        assertEquals(1, m.version());
        assertEquals(List.of("date=2026-11-28"), m.partitions());
        assertTrue(m.sources().get(0).path().startsWith("hdfs://"), m.sources().get(0).path());
        Configuration conf = fs.getConf();
        List<String> docs = new ArrayList<>(Datasets.documents(out, m, "train", conf));
        docs.addAll(Datasets.documents(out, m, "val", conf));
        Set<String> expected = new HashSet<>();
        verses.forEach(v -> expected.add(Normalizer.normalize(v, Normalizer.Form.NFC)));
        assertEquals(expected, new HashSet<>(docs));
        assertTrue(fs.exists(new Path("/datasets/kjv/manifest.json")));
        assertTrue(PrepareJob.run(spark, opts).noop());

        long total = m.shards("train").stream().mapToLong(Manifest.Shard::windows).sum();
        long seen = 0;
        for (int r = 0; r < 2; r++) {
            try (ShardTokenSource s = ShardTokenSource.open(out, conf, ShardTokenSource.Options.of("train", r, 2, 3))) {
                int[] buf = new int[(int) s.windowsPerEpoch() * 65];
                s.nextBatch(buf, (int) s.windowsPerEpoch());
                seen += s.windowsPerEpoch();
            }
        }
        assertEquals(total - total % 2, seen);

        // chain-model's trainers reach the same data through the SPI with an hdfs:// spec (directory or manifest file)
        for (String spec : List.of(out, out + "/manifest.json")) {
            TokenSourceProvider provider = TokenSourceProvider.find(spec);
            assertInstanceOf(ManifestTokenSourceProvider.class, provider, spec);
            try (TokenBatchSource viaSpi = provider.open(spec, "train", 64, 3, 1, 2);
                 ShardTokenSource direct = ShardTokenSource.open(out, conf, ShardTokenSource.Options.of("train", 1, 2, 3))) {
                int[] a = new int[6 * 65];
                int[] b = new int[6 * 65];
                viaSpi.nextBatch(a, 6);
                direct.nextBatch(b, 6);
                assertArrayEquals(b, a, spec);
                assertEquals(direct.windowsPerEpoch(), viaSpi.windowsPerEpoch());
            }
        }

        // flip one payload byte of a shard on HDFS: the reader names the file and offset, yields nothing from it
        Manifest.Shard first = m.shards("train").get(0);
        Path p = new Path(out, first.path());
        byte[] b;
        try (InputStream in = fs.open(p)) {
            b = in.readAllBytes();
        }
        b[100] ^= 0x01;
        try (FSDataOutputStream o = fs.create(p, true)) {
            o.write(b);
        }
        ShardTokenSource s = ShardTokenSource.open(out, conf, new ShardTokenSource.Options("train", 0, 1, 0, false, 1 << 20));
        ShardCorruptException e = assertThrows(ShardCorruptException.class, () -> s.nextBatch(new int[65], 1));
        assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("offset 32"), e.getMessage());
    }
}
