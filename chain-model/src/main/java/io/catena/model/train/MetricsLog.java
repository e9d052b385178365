package io.catena.model.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;

/**
 * Appends one JSON object per line to a metrics file. One schema for the local trainer and the Spark driver: every record
 * has {@code kind}, {@code step}, {@code tokens} and {@code chains}; a {@code train} record adds {@code loss} (one per
 * scale), {@code lr} and {@code grad_norm} (the global gradient norm before clipping, both from where the update is
 * applied: the local trainer, or the parameter server), {@code tok_per_s}, {@code elapsed_s} and {@code peak_rss_mb}
 * (the largest resident set of the processes that train); distributed runs add {@code sync_fraction}, {@code epoch} and
 * {@code ps_bytes_per_s}, the local trainer {@code skipped_nonfinite}. Other kinds: {@code eval} ({@code val_loss},
 * {@code val_ppl}), {@code checkpoint}, {@code growth}, {@code restart}, {@code engine}.
 */
public final class MetricsLog {
    private static final ObjectMapper JSON = new ObjectMapper();

    private MetricsLog() {
    }

    /** This JVM's peak resident set in MiB (VmHWM of /proc/self/status), or -1 where there is no procfs. */
    public static double peakRssMb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    /**
     * On resume from {@code step}: removes the records of steps after it (a run that went on past its last
     * checkpoint before it died, whose steps the resumed run computes again), by rewriting the file through a
     * temporary file and a rename. Records without a step are kept. Returns how many were dropped.
     */
    public static int truncateAfter(Path file, long step) {
        if (!Files.exists(file)) {
            return 0;
        }
        try {
            java.util.List<String> keep = new java.util.ArrayList<>();
            int dropped = 0;
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                if (line.isBlank()) {
                    continue;
                }
                Object s;
                try {
                    s = JSON.readValue(line, Map.class).get("step");
                } catch (IOException e) {
                    s = null; // a torn last line of a killed run: dropped like a later step
                    dropped++;
                    continue;
                }
                if (s instanceof Number n && n.longValue() > step) {
                    dropped++;
                } else {
                    keep.add(line);
                }
            }
            if (dropped > 0) {
                Path tmp = file.resolveSibling("_tmp-" + file.getFileName() + "-" + java.util.UUID.randomUUID());
                Files.write(tmp, keep, StandardCharsets.UTF_8);
                Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            }
            return dropped;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot rewrite metrics " + file + " for the resume at step " + step + ": " + e.getMessage(), e);
        }
    }

    public static void append(Path file, Map<String, Object> record) {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            try (Writer w = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND)) {
                w.write(JSON.writeValueAsString(record));
                w.write('\n');
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot append metrics to " + file + ": " + e.getMessage(), e);
        }
    }
}
