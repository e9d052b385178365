package io.catena.data.reader;

import io.catena.data.TestData;
import io.catena.data.TestSpark;
import io.catena.data.manifest.Manifest;
import io.catena.data.prepare.PrepareJob;
import io.catena.data.prepare.PrepareOptions;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * One real {@code catena prepare} run (Spark local[2]) over the committed Genesis slice, shared by the
 * reader-plugin tests of this JVM: BPE vocab {@value #VOCAB}, seq_len {@value #SEQ_LEN}, 5% val.
 */
final class PreparedGenesis {

    static final int VOCAB = 600;
    static final int SEQ_LEN = 32;

    private static Path dir;
    private static Manifest manifest;

    private PreparedGenesis() {
    }

    /** The dataset directory (the --out of the run). */
    static synchronized Path dir() {
        if (dir == null) {
            try {
                Path base = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "prepared-genesis-");
                Path in = base.resolve("corpus/genesis.txt");
                Files.createDirectories(in.getParent());
                Files.write(in, TestData.genesisText().getBytes(StandardCharsets.UTF_8));
                Path out = base.resolve("dataset");
                PrepareOptions o = PrepareOptions.of(List.of(in.getParent().toUri().toString()), "text", out.toUri().toString())
                        .withTokenizer("train:" + VOCAB).withSeqLen(SEQ_LEN).withValFraction(0.05);
                manifest = PrepareJob.run(TestSpark.session(), o).manifest();
                dir = out;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return dir;
    }

    static synchronized Manifest manifest() {
        dir();
        return manifest;
    }
}
