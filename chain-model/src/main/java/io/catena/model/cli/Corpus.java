package io.catena.model.cli;

import io.catena.model.data.TextByteSource;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/** Resolves a --data argument: a text file, a directory of text files, or {@code builtin:genesis}. */
final class Corpus {
    static final String BUILTIN = "builtin:genesis";
    private static final String RESOURCE = "/io/catena/corpus/genesis.txt";

    private Corpus() {
    }

    static int[] read(String spec) {
        if (spec.equals(BUILTIN)) {
            try (InputStream in = Corpus.class.getResourceAsStream(RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException("bundled corpus " + RESOURCE + " is missing from the jar; rebuild with mvn -B package");
                }
                byte[] b = in.readAllBytes();
                int[] out = new int[b.length + 1];
                System.arraycopy(io.catena.model.data.ByteTokenizer.encode(b), 0, out, 0, b.length);
                out[b.length] = io.catena.model.data.ByteTokenizer.EOS;
                return out;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        String path = spec.startsWith("file://") ? spec.substring("file://".length()) : spec;
        return TextByteSource.readCorpus(Path.of(path));
    }
}
