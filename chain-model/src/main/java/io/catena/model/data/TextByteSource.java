package io.catena.model.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * Token windows from plain text with the byte tokenizer. Each file is a document (EOS between
 * documents); the token stream is cut into windows of seq_len + 1 tokens with stride seq_len
 * (so every token is a target exactly once). The last {@code valFraction} of the windows form the
 * validation split. Training order: a seeded permutation per epoch; worker r of W takes every W-th
 * window of that order.
 */
public final class TextByteSource implements TokenBatchSource {
    private final int[] tokens;
    private final int seqLen;
    private final int firstWindow;
    private final int windowCount;
    private final boolean shuffle;
    private final long seed;
    private final int worker;
    private final int workers;
    private final String description;
    private long position;
    private long permEpoch = -1;
    private int[] perm;

    public enum Split { TRAIN, VALIDATION }

    private TextByteSource(int[] tokens, int seqLen, int firstWindow, int windowCount, boolean shuffle, long seed,
                           int worker, int workers, String description) {
        this.tokens = tokens;
        this.seqLen = seqLen;
        this.firstWindow = firstWindow;
        this.windowCount = windowCount;
        this.shuffle = shuffle;
        this.seed = seed;
        this.worker = worker;
        this.workers = workers;
        this.description = description;
    }

    /** Reads a text file, or every regular file under a directory (sorted by path), as documents. */
    public static int[] readCorpus(Path path) {
        if (!Files.exists(path)) {
            throw new IllegalArgumentException("data path " + path + " does not exist; pass a text file or a directory of text files");
        }
        List<Path> files = new ArrayList<>();
        try {
            if (Files.isDirectory(path)) {
                try (Stream<Path> s = Files.walk(path)) {
                    s.filter(Files::isRegularFile).sorted().forEach(files::add);
                }
            } else {
                files.add(path);
            }
            List<int[]> docs = new ArrayList<>();
            long total = 0;
            for (Path f : files) {
                byte[] b = Files.readAllBytes(f);
                if (b.length > 0) {
                    docs.add(ByteTokenizer.encode(b));
                    total += b.length + 1;
                }
            }
            if (total == 0) {
                throw new IllegalArgumentException("data path " + path + " holds no text (" + files.size()
                        + " file(s), all empty); nothing to train on");
            }
            if (total > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("data path " + path + " has " + total
                        + " bytes; the built-in byte source holds at most 2 GiB — use `catena prepare` shards instead");
            }
            int[] out = new int[(int) total];
            int at = 0;
            for (int[] d : docs) {
                System.arraycopy(d, 0, out, at, d.length);
                at += d.length;
                out[at++] = ByteTokenizer.EOS;
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read data path " + path + ": " + e.getMessage(), e);
        }
    }

    /**
     * @param valFraction fraction of windows (at the end of the stream) held out for validation
     */
    public static TextByteSource open(int[] corpus, String name, int seqLen, double valFraction, Split split, long seed,
                                      int worker, int workers) {
        if (seqLen < 1) {
            throw new IllegalArgumentException("seq_len must be >= 1, got " + seqLen);
        }
        if (!(valFraction >= 0 && valFraction < 1)) {
            throw new IllegalArgumentException("val_fraction must be in [0, 1), got " + valFraction);
        }
        if (workers < 1 || worker < 0 || worker >= workers) {
            throw new IllegalArgumentException("worker " + worker + " of " + workers + " is not a valid share");
        }
        int windows = (corpus.length - 1) / seqLen;
        int val = valFraction > 0 ? Math.max(1, (int) Math.round(windows * valFraction)) : 0;
        if (split == Split.VALIDATION && val == 0) {
            throw new IllegalArgumentException(name + ": val_fraction is 0, so there is no validation split; set val_fraction > 0");
        }
        int train = windows - val;
        int count = split == Split.TRAIN ? train : val;
        if (count < workers) {
            throw new IllegalArgumentException(name + ": " + corpus.length + " tokens give " + windows + " windows of "
                    + (seqLen + 1) + " tokens (" + train + " train, " + val + " validation); the " + split.name().toLowerCase()
                    + " split needs at least " + workers + ". Use more text or a smaller seq_len.");
        }
        int first = split == Split.TRAIN ? 0 : train;
        String desc = "bytes:" + name + " split=" + split.name().toLowerCase() + " windows=" + count + " seq_len=" + seqLen
                + " worker=" + worker + "/" + workers;
        return new TextByteSource(corpus, seqLen, first, count, split == Split.TRAIN, seed, worker, workers, desc);
    }

    @Override
    public int vocabSize() {
        return ByteTokenizer.VOCAB_SIZE;
    }

    @Override
    public int seqLen() {
        return seqLen;
    }

    @Override
    public long windowsPerEpoch() {
        return windowCount / workers;
    }

    @Override
    public void nextBatch(int[] dst, int batchSize) {
        int w = seqLen + 1;
        if (dst.length < batchSize * w) {
            throw new IllegalArgumentException("batch buffer holds " + dst.length + " ints, needs " + batchSize * w);
        }
        for (int b = 0; b < batchSize; b++) {
            int window = windowAt(position++);
            System.arraycopy(tokens, (firstWindow + window) * seqLen, dst, b * w, w);
        }
    }

    private int windowAt(long pos) {
        long perEpoch = windowsPerEpoch();
        long epoch = pos / perEpoch;
        int local = (int) (pos % perEpoch);
        int global = local * workers + worker;
        if (!shuffle) {
            return global;
        }
        if (epoch != permEpoch) {
            perm = permutation(windowCount, seed * 1_000_003L + epoch);
            permEpoch = epoch;
        }
        return perm[global];
    }

    private static int[] permutation(int n, long seed) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    @Override
    public long position() {
        return position;
    }

    @Override
    public void seek(long position) {
        if (position < 0) {
            throw new IllegalArgumentException("data position must be >= 0, got " + position);
        }
        this.position = position;
    }

    @Override
    public String describe() {
        return description;
    }
}
