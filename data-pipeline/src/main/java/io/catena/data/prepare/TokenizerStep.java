package io.catena.data.prepare;

import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.tokenizer.BpeTrainer;
import io.catena.data.tokenizer.ByteLevelBpe;
import io.catena.data.tokenizer.PreTokenizer;
import io.catena.data.tokenizer.TokenizerJson;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaPairRDD;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.Tuple2;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Step 3 of {@link PrepareJob}: the dataset's tokenizer. An incremental run reuses the dataset's (and refuses a
 * --tokenizer that differs); a new dataset trains one on its documents (word counts on the executors, merges on
 * the driver) or loads the given tokenizer.json.
 */
final class TokenizerStep {

    // PrepareJob's log name, as before this step had a class of its own
    private static final Logger LOG = LoggerFactory.getLogger(PrepareJob.class);

    private TokenizerStep() {
    }

    /** The tokenizer of dataset version {@code prev}, checked against the file's recorded sha256 and --tokenizer. */
    static ByteLevelBpe reuse(PrepareOptions o, Manifest prev, Path root, Configuration conf) {
        ByteLevelBpe tok = PrepareJob.loadTokenizer(new Path(root, prev.tokenizer().path()), conf, prev.tokenizer().sha256());
        checkIncrementalTokenizer(o, prev, tok, conf);
        return tok;
    }

    /** A new dataset's tokenizer (trained on {@code unique} or loaded, per --tokenizer), written to {@code file}. */
    static ByteLevelBpe create(PrepareOptions o, JavaPairRDD<Long, String> unique, long newDocs, Configuration conf,
                               FileSystem fs, Path file) throws IOException {
        ByteLevelBpe tok;
        String spec = o.tokenizer() == null ? PrepareOptions.DEFAULT_TOKENIZER : o.tokenizer();
        if (spec.startsWith("train:")) {
            if (newDocs == 0) {
                throw new IllegalArgumentException("cannot train a tokenizer: no documents");
            }
            tok = train(unique, Integer.parseInt(spec.substring(6)), o.minPairCount());
        } else {
            tok = PrepareJob.loadTokenizer(new Path(spec), conf, null);
        }
        ManifestStore.writeFile(fs, file, TokenizerJson.toJson(tok).getBytes(StandardCharsets.UTF_8));
        return tok;
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
        ByteLevelBpe given = PrepareJob.loadTokenizer(new Path(spec), conf, null);
        if (!given.sha256().equals(m.tokenizer().sha256())) {
            throw new IllegalArgumentException("--tokenizer " + spec + " differs from dataset version " + m.version()
                    + "'s tokenizer (sha256 " + m.tokenizer().sha256() + "); an incremental run must reuse it."
                    + " Drop --tokenizer or write a new dataset to a fresh --out.");
        }
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
}
