package io.catena.data.prepare;

import io.catena.model.cli.Args;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Settings of one {@code catena prepare} run. Built from command-line flags by {@link #parse(String...)}
 * or directly by code; {@link #validate()} fails with a message naming the flag.
 *
 * @param inputs          input URIs (files, directories searched recursively, or globs) on any Hadoop FS
 * @param format          text | jsonl | parquet
 * @param textField       JSONL field / Parquet column holding the text
 * @param textDocument    for text: "line" (one document per line) or "file" (one per file)
 * @param out             dataset directory
 * @param tokenizer       "train:&lt;vocab&gt;", a tokenizer.json URI, or null (train:8192, or reuse on --incremental)
 * @param seqLen          model sequence length; windows are seqLen+1 tokens
 * @param valFraction     fraction of documents (by stable hash) that go to the val split
 * @param splitSeed       seed of the split hash
 * @param incremental     append only new source files as a new manifest version
 * @param master          Spark master for the CLI (null: spark-submit's, else local[2])
 * @param maxBadFraction  fail if more than this fraction of records is malformed
 * @param normalization   NFC | NFKC | NONE
 * @param shardTokens     target tokens per shard file (a shard never exceeds it, rounded down to whole windows)
 * @param minPairCount    BPE training never merges a pair seen fewer times
 * @param timeoutSeconds  the whole run is cancelled after this long
 * @param maxTextChars    longest JSONL text field kept
 * @param valInput        a separate held-out corpus (files, directories or globs, comma-separated) whose documents
 *                        form the val split, encoded with the dataset's tokenizer; null: val by --val-fraction
 */
public record PrepareOptions(List<String> inputs, String format, String textField, String textDocument, String out,
                             String tokenizer, int seqLen, double valFraction, long splitSeed, boolean incremental,
                             String master, double maxBadFraction, String normalization, long shardTokens,
                             long minPairCount, long timeoutSeconds, int maxTextChars, String valInput)
        implements Serializable {

    /** Default longest text field of a JSONL record (characters); a longer one is quarantined, naming the limit. */
    public static final int DEFAULT_MAX_TEXT_CHARS = 20_000_000;

    public static final String DEFAULT_TOKENIZER = "train:8192";

    public static final String USAGE = String.join("\n",
            "Usage: catena prepare --input <uri>[,<uri>...] --format text|jsonl|parquet --out <uri> [options]",
            "",
            "Turns corpora on any Hadoop filesystem (file://, hdfs://, s3a://; .gz and .zst are decompressed)",
            "into byte-level-BPE token shards plus manifest.json. Also runs as",
            "  spark-submit --class io.catena.data.Prepare data-pipeline.jar <same options>",
            "",
            "  --input <uri>[,<uri>...]   files, directories (recursive) or globs to read",
            "  --format text|jsonl|parquet",
            "  --text-field <name>         JSONL field / Parquet column with the text (default: text)",
            "  --text-doc line|file        text format: one document per line or per file (default: line)",
            "  --out <uri>                 dataset directory (manifests, shards, tokenizer)",
            "  --tokenizer train:<vocab>|<tokenizer.json uri>",
            "                              train a byte-level BPE of that size (default train:8192) or load one;",
            "                              with --incremental the dataset's tokenizer is reused",
            "  --seq-len <n>               sequence length; windows hold n+1 tokens (default 256)",
            "  --val-fraction <f>          share of documents in the val split, by stable hash (default 0.01); when",
            "                              that leaves the dataset without one whole val window (a few long",
            "                              documents, one large file), that share of whole train windows (at least",
            "                              one) is moved to val instead; 0: no val split",
            "  --val-input <uri>[,<uri>...]",
            "                              a separate held-out corpus (same --format) as the val split, encoded with",
            "                              the dataset's tokenizer; then every --input document is train data",
            "                              (documents also in the held-out corpus are dropped from train)",
            "  --split-seed <n>            seed of the train/val hash (default 0)",
            "  --incremental               process only source files absent from the newest manifest and",
            "                              write manifest version N+1 (a no-op if nothing is new)",
            "  --master <url>              Spark master (default: spark-submit's, else local[2])",
            "  --max-bad-fraction <f>      fail if more than this share of records is malformed (default 0.01)",
            "  --normalize nfc|nfkc|none   Unicode normalization before dedup and tokenization (default nfc)",
            "  --shard-tokens <n>          maximum tokens per shard file (default 16777216)",
            "  --bpe-min-pair-count <n>    BPE training stops when the best pair is rarer (default 2)",
            "  --timeout <seconds>         cancel the run after this long (default 86400)",
            "  --max-text-chars <n>        longest JSONL text field kept; longer records are quarantined (default 20000000)",
            "  --help                      this text");

    public PrepareOptions {
        inputs = List.copyOf(inputs);
    }

    /** Defaults for everything but inputs, format and out. */
    public static PrepareOptions of(List<String> inputs, String format, String out) {
        return new PrepareOptions(inputs, format, "text", "line", out, null, 256, 0.01, 0, false, null, 0.01, "NFC",
                16L << 20, 2, 86400, DEFAULT_MAX_TEXT_CHARS, null);
    }

    public PrepareOptions withTokenizer(String t) {
        return new PrepareOptions(inputs, format, textField, textDocument, out, t, seqLen, valFraction, splitSeed,
                incremental, master, maxBadFraction, normalization, shardTokens, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    public PrepareOptions withIncremental(boolean inc) {
        return new PrepareOptions(inputs, format, textField, textDocument, out, tokenizer, seqLen, valFraction, splitSeed,
                inc, master, maxBadFraction, normalization, shardTokens, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    public PrepareOptions withSeqLen(int n) {
        return new PrepareOptions(inputs, format, textField, textDocument, out, tokenizer, n, valFraction, splitSeed,
                incremental, master, maxBadFraction, normalization, shardTokens, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    public PrepareOptions withTextDocument(String d) {
        return new PrepareOptions(inputs, format, textField, d, out, tokenizer, seqLen, valFraction, splitSeed,
                incremental, master, maxBadFraction, normalization, shardTokens, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    public PrepareOptions withValFraction(double f) {
        return new PrepareOptions(inputs, format, textField, textDocument, out, tokenizer, seqLen, f, splitSeed,
                incremental, master, maxBadFraction, normalization, shardTokens, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    public PrepareOptions withShardTokens(long n) {
        return new PrepareOptions(inputs, format, textField, textDocument, out, tokenizer, seqLen, valFraction, splitSeed,
                incremental, master, maxBadFraction, normalization, n, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    public PrepareOptions withMaxBadFraction(double f) {
        return new PrepareOptions(inputs, format, textField, textDocument, out, tokenizer, seqLen, valFraction, splitSeed,
                incremental, master, f, normalization, shardTokens, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    public PrepareOptions withTextField(String f) {
        return new PrepareOptions(inputs, format, f, textDocument, out, tokenizer, seqLen, valFraction, splitSeed,
                incremental, master, maxBadFraction, normalization, shardTokens, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    public PrepareOptions withValInput(String v) {
        return new PrepareOptions(inputs, format, textField, textDocument, out, tokenizer, seqLen, v == null ? valFraction : 0,
                splitSeed, incremental, master, maxBadFraction, normalization, shardTokens, minPairCount, timeoutSeconds,
                maxTextChars, v);
    }

    /** The --val-input URIs (empty without one). */
    public List<String> valInputs() {
        return valInput == null ? List.of()
                : Arrays.stream(valInput.split(",")).map(String::trim).filter(x -> !x.isEmpty()).toList();
    }

    public PrepareOptions withInputs(List<String> in) {
        return new PrepareOptions(in, format, textField, textDocument, out, tokenizer, seqLen, valFraction, splitSeed,
                incremental, master, maxBadFraction, normalization, shardTokens, minPairCount, timeoutSeconds, maxTextChars, valInput);
    }

    /** Thrown for a bad command line; the message says which flag and what is expected. */
    public static final class UsageException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        public UsageException(String msg) {
            super(msg);
        }
    }

    /** Parses flags; returns null for --help. */
    public static PrepareOptions parse(String... args) {
        if (Arrays.asList(args).contains("-h")) {
            return null;
        }
        Args a;
        try {
            a = new Args("prepare", args, 0, VALUED, Set.of("incremental"));
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        if (a.helpRequested()) {
            return null;
        }
        PrepareOptions o = of(List.of("x"), "text", "x");
        List<String> inputs = new ArrayList<>();
        for (String v : a.all("input")) {
            Arrays.stream(v.split(",")).map(String::trim).filter(s -> !s.isEmpty()).forEach(inputs::add);
        }
        String format = lower(a.get("format", null));
        String textField = a.get("text-field", o.textField);
        String textDoc = lower(a.get("text-doc", o.textDocument));
        String out = a.get("out", null);
        String tokenizer = a.get("tokenizer", null);
        int seqLen = (int) num(a, "seq-len", o.seqLen);
        double val = dbl(a, "val-fraction", o.valFraction);
        String valInput = a.get("val-input", null);
        if (valInput != null && valInput.isBlank()) {
            throw new UsageException("--val-input is empty; expected one or more comma-separated URIs of a held-out corpus");
        }
        if (valInput != null && a.get("val-fraction", null) != null && val > 0) {
            throw new UsageException("--val-input " + valInput + " and --val-fraction " + val + " both choose the val split;"
                    + " pass one: --val-input takes the whole held-out corpus as val and keeps every --input document for train");
        }
        if (valInput != null) {
            val = 0;
        }
        long seed = num(a, "split-seed", o.splitSeed);
        boolean inc = a.flag("incremental");
        String master = a.get("master", null);
        double maxBad = dbl(a, "max-bad-fraction", o.maxBadFraction);
        String norm = a.get("normalize", o.normalization).toUpperCase(Locale.ROOT);
        long shardTokens = num(a, "shard-tokens", o.shardTokens);
        long minPair = num(a, "bpe-min-pair-count", o.minPairCount);
        long timeout = num(a, "timeout", o.timeoutSeconds);
        long maxText = num(a, "max-text-chars", o.maxTextChars);
        if (inputs.isEmpty()) {
            throw new UsageException("--input is required: one or more comma-separated URIs; see --help");
        }
        if (format == null) {
            throw new UsageException("--format is required: text, jsonl or parquet; see --help");
        }
        if (out == null) {
            throw new UsageException("--out is required: the dataset directory to write; see --help");
        }
        if (maxText < 1 || maxText > Integer.MAX_VALUE - 16) {
            throw new UsageException("--max-text-chars is " + maxText + ", expected 1 .. " + (Integer.MAX_VALUE - 16));
        }
        PrepareOptions p = new PrepareOptions(inputs, format, textField, textDoc, out, tokenizer, seqLen, val, seed, inc,
                master, maxBad, norm, shardTokens, minPair, timeout, (int) maxText, valInput);
        p.validate();
        return p;
    }

    /** Checks every setting; throws {@link UsageException} naming the flag. */
    public PrepareOptions validate() {
        if (!List.of("text", "jsonl", "parquet").contains(format)) {
            throw new UsageException("--format is '" + format + "', expected text, jsonl or parquet");
        }
        if (!List.of("line", "file").contains(textDocument)) {
            throw new UsageException("--text-doc is '" + textDocument + "', expected line or file");
        }
        if (!List.of("NFC", "NFKC", "NONE").contains(normalization)) {
            throw new UsageException("--normalize is '" + normalization + "', expected nfc, nfkc or none");
        }
        if (seqLen < 1 || seqLen > (1 << 20)) {
            throw new UsageException("--seq-len is " + seqLen + ", expected 1 .. 1048576");
        }
        if (!(valFraction >= 0 && valFraction < 1)) {
            throw new UsageException("--val-fraction is " + valFraction + ", expected 0 <= f < 1");
        }
        if (!(maxBadFraction >= 0 && maxBadFraction <= 1)) {
            throw new UsageException("--max-bad-fraction is " + maxBadFraction + ", expected 0 <= f <= 1");
        }
        if (shardTokens < seqLen + 1L || shardTokens > (1L << 30)) {
            throw new UsageException("--shard-tokens is " + shardTokens + ", expected seq-len+1 (" + (seqLen + 1)
                    + ") .. 1073741824");
        }
        if (timeoutSeconds < 1) {
            throw new UsageException("--timeout is " + timeoutSeconds + ", expected >= 1 second");
        }
        if (tokenizer != null && tokenizer.startsWith("train:")) {
            long v = num("--tokenizer train:<vocab>", tokenizer.substring(6));
            if (v < 258 || v > Integer.MAX_VALUE) {
                throw new UsageException("--tokenizer " + tokenizer + ": vocab must be >= 258 (256 bytes + EOS + PAD)");
            }
        }
        if (valInput != null && valFraction > 0) {
            throw new UsageException("--val-input " + valInput + " and --val-fraction " + valFraction + " both choose the val"
                    + " split; pass one (with --val-input, --val-fraction must be 0)");
        }
        if (textField == null || textField.isEmpty()) {
            throw new UsageException("--text-field is empty; expected the JSONL field / Parquet column holding the text");
        }
        return this;
    }

    /** Every option that takes a value (--incremental is the one flag). */
    private static final Set<String> VALUED = Set.of("input", "format", "text-field", "text-doc", "out", "tokenizer", "seq-len",
            "val-fraction", "val-input", "split-seed", "master", "max-bad-fraction", "normalize", "shard-tokens", "bpe-min-pair-count", "timeout",
            "max-text-chars");

    private static String lower(String v) {
        return v == null ? null : v.toLowerCase(Locale.ROOT);
    }

    private static long num(Args a, String option, long dflt) {
        String v = a.get(option, null);
        return v == null ? dflt : num("--" + option, v);
    }

    private static double dbl(Args a, String option, double dflt) {
        String v = a.get(option, null);
        if (v == null) {
            return dflt;
        }
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException("--" + option + " is '" + v + "', expected a number");
        }
    }

    private static long num(String flag, String v) {
        try {
            return Long.parseLong(v.trim().replace("_", ""));
        } catch (NumberFormatException e) {
            throw new UsageException(flag + " is '" + v + "', expected an integer");
        }
    }
}
