package io.catena.data.prepare;

import io.catena.data.manifest.Manifest;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The checks of {@link PrepareJob} that refuse a run before or while it reads: the input listing, an
 * incremental run's sources and settings against the dataset's, and the share of malformed records.
 */
final class PrepareChecks {

    private PrepareChecks() {
    }

    /** All data files under --input; fails when there are none. */
    static List<FileStatus> listInputs(PrepareOptions o, Configuration conf) {
        List<FileStatus> all = Sources.list(o.inputs(), conf);
        if (all.isEmpty()) {
            throw new IllegalArgumentException("no input files found under " + o.inputs() + " (hidden files and names"
                    + " starting with '_' or '.' are skipped). Check --input.");
        }
        return all;
    }

    /** All data files under --val-input (none without it); fails when there are none. */
    static List<FileStatus> listHeldOut(PrepareOptions o, Configuration conf) {
        if (o.valInput() == null) {
            return List.of();
        }
        List<FileStatus> all = Sources.list(o.valInputs(), conf);
        if (all.isEmpty()) {
            throw new IllegalArgumentException("no files found under --val-input " + o.valInput() + " (hidden files and names"
                    + " starting with '_' or '.' are skipped). Expected the held-out corpus, in --format " + o.format() + ".");
        }
        return all;
    }

    /** {@code files} without those in {@code drop} (a held-out corpus inside an --input directory is not train data). */
    static List<FileStatus> withoutFiles(List<FileStatus> files, List<FileStatus> drop) {
        if (drop.isEmpty()) {
            return files;
        }
        java.util.Set<String> d = new java.util.HashSet<>();
        drop.forEach(f -> d.add(f.getPath().toString()));
        List<FileStatus> out = new ArrayList<>();
        for (FileStatus f : files) {
            if (!d.contains(f.getPath().toString())) {
                out.add(f);
            }
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("every file under --input " + files.get(0).getPath().getParent() + " ... is also"
                    + " under --val-input; expected training files besides the held-out corpus. Check --input and --val-input.");
        }
        return out;
    }

    /** The files no earlier dataset version consumed; fails when one that was consumed changed since. */
    static List<FileStatus> newSources(List<FileStatus> all, Optional<Manifest> prev) {
        Map<String, Manifest.Source> consumed = new HashMap<>();
        prev.ifPresent(m -> m.sources().forEach(s -> consumed.put(s.path(), s)));
        List<FileStatus> fresh = new ArrayList<>();
        for (FileStatus f : all) {
            Manifest.Source old = consumed.get(f.getPath().toString());
            if (old == null) {
                fresh.add(f);
            } else if (old.size() != f.getLen() || old.modificationTime() != f.getModificationTime()) {
                throw new IllegalStateException("source " + f.getPath() + " changed since dataset version " + old.version()
                        + " consumed it (size " + old.size() + " -> " + f.getLen() + ", modified " + old.modificationTime()
                        + " -> " + f.getModificationTime() + "). Incremental runs only add new files; put new data in a"
                        + " new partition, or rebuild the dataset into a fresh --out.");
            }
        }
        return fresh;
    }

    /**
     * Fails when too many records are malformed (--max-bad-fraction), or when a new dataset would have no
     * documents. {@code perSource}: {records, bad, empty} per source file.
     */
    static void checkRecords(Map<String, long[]> perSource, PrepareJob.RecordCounts c, PrepareOptions o,
                             Optional<Manifest> prev, int files) {
        if (c.records() > 0 && (double) c.bad() / c.records() > o.maxBadFraction()) {
            throw new IllegalStateException(c.bad() + " of " + c.records() + " records (" + pct(c.bad(), c.records())
                    + ") are malformed, more than --max-bad-fraction " + o.maxBadFraction() + ". Worst files: " + worst(perSource)
                    + ". Fix those files or their --format/--text-field, or raise --max-bad-fraction; nothing was written.");
        }
        if (c.documents() == 0 && prev.isEmpty()) {
            throw new IllegalArgumentException("no documents in " + files + " input files under " + o.inputs()
                    + ": " + c.records() + " records, " + c.bad() + " malformed, " + c.empty() + " empty. Expected non-empty "
                    + o.format() + " records; check --input and --format.");
        }
    }

    /** Like {@link #checkRecords} for the held-out corpus: malformed share, and documents for a new dataset. */
    static void checkHeldOutRecords(Map<String, long[]> perSource, PrepareJob.RecordCounts c, PrepareOptions o,
                                    Optional<Manifest> prev, int files) {
        if (files == 0) {
            return;
        }
        if (c.records() > 0 && (double) c.bad() / c.records() > o.maxBadFraction()) {
            throw new IllegalStateException(c.bad() + " of " + c.records() + " records (" + pct(c.bad(), c.records()) + ") of"
                    + " --val-input " + o.valInput() + " are malformed, more than --max-bad-fraction " + o.maxBadFraction()
                    + ". Worst files: " + worst(perSource) + ". Fix those files, or raise --max-bad-fraction; nothing was written.");
        }
        if (c.documents() == 0 && prev.isEmpty()) {
            throw new IllegalArgumentException("no documents in the " + files + " files under --val-input " + o.valInput() + ": "
                    + c.records() + " records, " + c.bad() + " malformed, " + c.empty() + " empty. Expected the held-out corpus"
                    + " as non-empty " + o.format() + " records; check --val-input and --format.");
        }
    }

    private static String pct(long a, long b) {
        return String.format("%.2f%%", 100.0 * a / b);
    }

    private static String worst(Map<String, long[]> perSource) {
        List<Map.Entry<String, long[]>> l = new ArrayList<>(perSource.entrySet());
        l.removeIf(e -> e.getValue()[1] == 0);
        l.sort((a, b) -> a.getValue()[1] != b.getValue()[1] ? Long.compare(b.getValue()[1], a.getValue()[1])
                : a.getKey().compareTo(b.getKey()));
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < Math.min(5, l.size()); i++) {
            long[] c = l.get(i).getValue();
            sb.append(i == 0 ? "" : ", ").append(l.get(i).getKey()).append(" (").append(c[1]).append(" of ").append(c[0])
                    .append(" bad)");
        }
        return sb.toString();
    }

    static void checkSameSettings(Manifest m, PrepareOptions o) {
        List<String> diffs = settingDifferences(m, o);
        if (!diffs.isEmpty()) {
            throw new IllegalArgumentException("incremental run into dataset version " + m.version() + " uses different"
                    + " settings: " + String.join(", ", diffs) + ". An incremental run must keep the dataset's settings;"
                    + " use the dataset's values or write a new dataset to a fresh --out.");
        }
    }

    /** The settings of {@code o} that differ from those dataset {@code m} was prepared with, as "--flag new (dataset: old)". */
    static List<String> settingDifferences(Manifest m, PrepareOptions o) {
        List<String> diffs = new ArrayList<>();
        if (m.seqLen() != o.seqLen()) {
            diffs.add("--seq-len " + o.seqLen() + " (dataset: " + m.seqLen() + ")");
        }
        if (m.split().valPpm() != Math.round(o.valFraction() * 1_000_000)) {
            diffs.add("--val-fraction " + o.valFraction() + " (dataset: " + m.split().valFraction() + ")");
        }
        if (m.split().seed() != o.splitSeed()) {
            diffs.add("--split-seed " + o.splitSeed() + " (dataset: " + m.split().seed() + ")");
        }
        String valInput = m.split().valInput();
        if (!java.util.Objects.equals(valInput, o.valInput())) {
            diffs.add(o.valInput() == null ? "no --val-input (dataset: --val-input " + valInput + ")"
                    : "--val-input " + o.valInput() + " (dataset: " + (valInput == null ? "none" : valInput) + ")");
        }
        if (!m.input().format().equals(o.format())) {
            diffs.add("--format " + o.format() + " (dataset: " + m.input().format() + ")");
        }
        if (!m.input().normalization().equals(o.normalization())) {
            diffs.add("--normalize " + o.normalization() + " (dataset: " + m.input().normalization() + ")");
        }
        if (!o.format().equals("text") && !m.input().textField().equals(o.textField())) {
            diffs.add("--text-field " + o.textField() + " (dataset: " + m.input().textField() + ")");
        }
        if (o.format().equals("text") && !m.input().textDocument().equals(o.textDocument())) {
            diffs.add("--text-doc " + o.textDocument() + " (dataset: " + m.input().textDocument() + ")");
        }
        return diffs;
    }
}
