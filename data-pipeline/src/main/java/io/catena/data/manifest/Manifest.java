package io.catena.data.manifest;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;

import java.util.List;

/**
 * {@code manifest.json}: one version of a prepared dataset. Versions are immutable; an incremental run
 * writes version N+1 listing the shards of N plus its own. Paths are relative to the dataset directory.
 *
 * @param format        always {@value #FORMAT}
 * @param version       1, 2, ...
 * @param createdAt     ISO-8601 instant (the only field that differs between identical runs)
 * @param seqLen        model sequence length; windows are {@code seqLen + 1} tokens
 * @param tokenizer     tokenizer file and its SHA-256
 * @param split         how documents were assigned to train / val
 * @param input         input format settings
 * @param shards        all shards of this version, in reading order
 * @param sources       every source file consumed by this or an earlier version
 * @param partitions    partition directories (e.g. {@code date=2026-11-28}) consumed, sorted
 * @param runs          counts of each run that produced a version, oldest first
 */
@JsonIgnoreProperties(ignoreUnknown = true)
@JsonPropertyOrder(alphabetic = false)
public record Manifest(String format, int version, String createdAt, int seqLen, TokenizerRef tokenizer,
                       SplitRule split, InputSettings input, List<Shard> shards, List<Source> sources,
                       List<String> partitions, List<RunCounts> runs) {

    public static final String FORMAT = "catena-token-shards/1";

    /** Tokenizer file (relative path), its SHA-256, vocabulary size, EOS/PAD ids and token width. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record TokenizerRef(String path, String sha256, int vocabSize, int eosId, int padId, int dtypeBytes) {
    }

    /**
     * Split rule: a document goes to val iff
     * {@code Long.remainderUnsigned(mix64(docHash ^ seed), 1_000_000) < valPpm}, where docHash is the
     * first 8 bytes (big-endian) of SHA-256 of the normalized UTF-8 text.
     *
     * @param windowRule when the document rule leaves the dataset without a whole val window, which train windows a
     *                   version moves to val instead ({@link RunCounts#valWindowsDrawn()} says how many it moved); null in
     *                   datasets written before the rule existed
     * @param valInput   the held-out corpus (--val-input) whose documents are the val split, or null (the document
     *                   rule, {@code valPpm}, chooses val)
     */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record SplitRule(String rule, double valFraction, long valPpm, long seed, String windowRule, String valInput) {
        /** A dataset whose val split is chosen by the document rule alone (no window rule, no held-out corpus). */
        public SplitRule(String rule, double valFraction, long valPpm, long seed) {
            this(rule, valFraction, valPpm, seed, null, null);
        }
    }

    /** How the input was read and normalized. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record InputSettings(String format, String textField, String textDocument, String normalization) {
    }

    /** One shard file: split, relative path, tokens, whole windows, documents started in it, payload CRC32C (hex). */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Shard(String split, String path, long tokens, long windows, long documents, String crc32c, int version) {
    }

    /**
     * One source file as it was when consumed; {@code role} is {@value #HELD_OUT} for a file of the held-out corpus
     * (--val-input), null for an --input file.
     */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Source(String path, long size, long modificationTime, int version, String role) {
        public static final String HELD_OUT = "val-input";

        public Source(String path, long size, long modificationTime, int version) {
            this(path, size, modificationTime, version, null);
        }

        /** Whether the file belongs to the held-out corpus (--val-input), not to the training input. */
        public boolean heldOut() {
            return HELD_OUT.equals(role);
        }
    }

    /**
     * What one run read and wrote. {@code valWindowsDrawn}: whole train windows this run moved to val by the split's
     * window rule (0 when the document rule or the held-out corpus gave val windows, and in older datasets).
     */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record RunCounts(int version, long sourceFiles, long records, long documents, long emptyDocuments,
                            long duplicates, long duplicatesOfEarlierVersions, long badRecords, long trainDocuments,
                            long valDocuments, long trainTokens, long valTokens, long bytes, long valWindowsDrawn) {
    }

    /** Shards of one split ("train" or "val"), in reading order. */
    public List<Shard> shards(String split) {
        return shards.stream().filter(s -> s.split().equals(split)).toList();
    }
}
