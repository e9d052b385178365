package io.catena.data.prepare;

import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.shard.ShardFormat;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.TokenizerJson;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Test helpers that decode a prepared dataset back into documents. */
final class Datasets {

    private Datasets() {
    }

    static ByteLevelBpe tokenizer(String root, Manifest m, Configuration conf) throws IOException {
        Path p = new Path(new Path(root), m.tokenizer().path());
        try (InputStream in = p.getFileSystem(conf).open(p)) {
            return TokenizerJson.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), p.toString(),
                    ByteLevelBpe.EOS, ByteLevelBpe.PAD);
        }
    }

    static int[] tokens(String root, Manifest.Shard s, Configuration conf) throws IOException {
        Path p = new Path(new Path(root), s.path());
        try (FSDataInputStream in = p.getFileSystem(conf).open(p)) {
            return ShardFormat.read(in, p.toString(), s.tokens(), Integer.parseUnsignedInt(s.crc32c(), 16));
        }
    }

    /** Every document in the split's shards (shards hold whole token streams: doc EOS doc EOS ...). */
    static List<String> documents(String root, Manifest m, String split, Configuration conf) throws IOException {
        ByteLevelBpe tok = tokenizer(root, m, conf);
        io.catena.data.tokenizer.IntBuffer all = new io.catena.data.tokenizer.IntBuffer(1024);
        for (Manifest.Shard s : m.shards(split)) {
            all.addAll(tokens(root, s, conf)); // a bucket's stream may continue in its next shard
        }
        int[] t = all.toArray();
        List<String> docs = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < t.length; i++) {
            if (t[i] == tok.eosId()) {
                docs.add(new String(tok.decode(t, start, i), StandardCharsets.UTF_8));
                start = i + 1;
            }
        }
        if (start != t.length) {
            throw new AssertionError("split " + split + " does not end with EOS");
        }
        return docs;
    }

    static Manifest latest(String root, Configuration conf) throws IOException {
        return ManifestStore.latest(new Path(root), conf).orElseThrow();
    }
}
