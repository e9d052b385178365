package io.catena.data.prepare;

import io.catena.data.TestSpark;
import io.catena.data.manifest.Manifest;
import io.catena.data.reader.ShardTokenSource;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole King James Bible end to end, dumped from Debian's {@code bible-kjv} (CI installs it:
 * {@code apt-get install -y bible-kjv bible-kjv-text}). Without it the test fails and says so: a
 * skipped test would hide that the whole-corpus path was never exercised.
 */
class KjvEndToEndTest {

    static boolean bibleInstalled() {
        return Files.isExecutable(Path.of("/usr/bin/bible")) || Files.isExecutable(Path.of("/usr/games/bible"));
    }

    @TempDir
    static Path tmp;

    static List<String> dumpKjv() throws Exception {
        assertTrue(bibleInstalled(), "this test needs Debian's bible-kjv and bible-kjv-text packages (the whole KJV corpus); "
                + "run .ci/run, or apt-get install -y bible-kjv bible-kjv-text");
        String bible = Files.isExecutable(Path.of("/usr/bin/bible")) ? "/usr/bin/bible" : "/usr/games/bible";
        Process p = new ProcessBuilder(bible, "-l10000", "gen1:1-rev22:21").redirectErrorStream(true).start();
        List<String> verses = new ArrayList<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                if (line.matches("^ +\\d+ .*")) {
                    verses.add(line.replaceFirst("^ +\\d+ ", ""));
                }
            }
        }
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("`bible` did not finish within 120 s");
        }
        assertEquals(0, p.exitValue(), "bible exit status");
        return verses;
    }

    @Test
    void shouldPrepareTheWholeKjvAndReadEveryVerseBack() throws Exception {
        List<String> verses = dumpKjv();
        assertEquals(31102, verses.size(), "KJV verse count");
        Path in = tmp.resolve("kjv.txt");
        Files.write(in, verses, StandardCharsets.UTF_8);
        Path out = tmp.resolve("kjv-out");
        Manifest m = PrepareJob.run(TestSpark.session(), PrepareOptions.of(List.of(in.toUri().toString()), "text",
                out.toUri().toString()).withTokenizer("train:4096").withSeqLen(256)).manifest();
        Manifest.RunCounts c = m.runs().get(0);
        long unique = new HashSet<>(verses).size();
        assertEquals(verses.size(), c.documents());
        assertEquals(verses.size() - unique, c.duplicates());
        assertEquals(unique, c.trainDocuments() + c.valDocuments());
        Configuration conf = new Configuration();
        List<String> docs = new ArrayList<>(Datasets.documents(out.toUri().toString(), m, "train", conf));
        docs.addAll(Datasets.documents(out.toUri().toString(), m, "val", conf));
        assertEquals(new HashSet<>(verses), new HashSet<>(docs));
        long bytes = Files.size(in);
        long tokens = c.trainTokens() + c.valTokens();
        assertTrue(tokens * 3 < bytes, tokens + " tokens for " + bytes + " bytes");
        try (ShardTokenSource s = ShardTokenSource.open(out.toUri().toString(), conf, ShardTokenSource.Options.of("val", 0, 1, 0))) {
            assertTrue(s.windowsPerEpoch() > 0);
        }
    }
}
