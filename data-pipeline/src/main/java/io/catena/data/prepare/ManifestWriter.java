package io.catena.data.prepare;

import io.catena.data.manifest.Manifest;
import io.catena.data.manifest.ManifestStore;
import io.catena.data.prepare.PrepareJob.DocCounts;
import io.catena.data.prepare.PrepareJob.ShardOut;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;

/**
 * Steps 6 and 7 of {@link PrepareJob}: the manifest of a new dataset version (the earlier versions' shards,
 * sources and runs plus this run's), and the commit that makes the version visible.
 */
final class ManifestWriter {

    // PrepareJob's log name, as before this step had a class of its own
    private static final Logger LOG = LoggerFactory.getLogger(PrepareJob.class);

    private ManifestWriter() {
    }

    /** The manifest of {@code version}: {@code written} shards (sorted) made of the {@code fresh} sources. */
    static Manifest build(PrepareOptions o, int version, Optional<Manifest> prev, List<ShardOut> written,
                          List<FileStatus> fresh, List<FileStatus> freshHeldOut, DocCounts counts, long valWindowsDrawn,
                          Manifest.TokenizerRef tokenizer) {
        String vdir = ManifestStore.versionDir(version);
        List<Manifest.Shard> shards = new ArrayList<>(prev.map(Manifest::shards).orElse(List.of()));
        long trainTokens = 0;
        long valTokens = 0;
        for (ShardOut s : written) {
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
        for (FileStatus f : freshHeldOut) {
            sources.add(new Manifest.Source(f.getPath().toString(), f.getLen(), f.getModificationTime(), version,
                    Manifest.Source.HELD_OUT));
            bytes += f.getLen();
        }
        List<Manifest.RunCounts> runs = new ArrayList<>(prev.map(Manifest::runs).orElse(List.of()));
        PrepareJob.RecordCounts rc = counts.records();
        runs.add(new Manifest.RunCounts(version, fresh.size(), rc.records(), rc.documents(), rc.empty(), counts.duplicates(),
                counts.duplicatesOfEarlier(), rc.bad(), counts.trainDocs(), counts.valDocs(), trainTokens, valTokens, bytes,
                valWindowsDrawn));
        long valPpm = o.valInput() != null ? 0 : Math.round(o.valFraction() * 1_000_000);
        return new Manifest(Manifest.FORMAT, version, Instant.now().toString(), o.seqLen(), tokenizer,
                o.valInput() != null
                        ? new Manifest.SplitRule("val = the documents of the held-out corpus valInput (encoded with the dataset's"
                                + " tokenizer); every other document is train, minus those also held out or in earlier versions",
                                0, 0, o.splitSeed(), null, o.valInput())
                        : new Manifest.SplitRule("val iff remainderUnsigned(splitmix64(sha256_64(doc) ^ seed), 1e6) < valPpm",
                                o.valFraction(), valPpm, o.splitSeed(), ValWindowDraw.RULE, null),
                new Manifest.InputSettings(o.format(), o.textField(), o.textDocument(), o.normalization()),
                shards, sources, List.copyOf(new TreeSet<>(Sources.partitions(sources))), runs);
    }

    /** Renames {@code staging} to the version's directory under {@code root}, then commits manifest {@code m}. */
    static void commit(FileSystem fs, Path root, Path staging, Manifest m, Configuration conf) throws IOException {
        Path vpath = new Path(root, ManifestStore.versionDir(m.version()));
        if (fs.exists(vpath)) {
            LOG.warn("removing {} left by an earlier failed run (no manifest lists it)", vpath);
            fs.delete(vpath, true);
        }
        if (!fs.rename(staging, vpath)) {
            throw new IllegalStateException("could not rename " + staging + " to " + vpath + "; the previous manifest is"
                    + " unchanged. Check permissions on " + root + " and retry.");
        }
        ManifestStore.commit(root, m, conf);
    }
}
