package io.catena.ps;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The embedded MediaDriver's directories (under /dev/shm by default; hundreds of MB of log buffers each): readable by
 * their owner only, removed when the driver closes or the JVM exits, and, for a process that was killed before it could
 * remove its own, removed by the next Catena process of the same user on the host (the directory name carries the pid).
 */
final class AeronDirs {
    private static final Logger LOG = LoggerFactory.getLogger(AeronDirs.class);

    private AeronDirs() {
    }

    /** This user's name as it appears in default directory names. */
    static String user() {
        return System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9_.-]", "_");
    }

    /** The default directory name's pattern: {@code catena-ps-<user>-<pid>[-<job>]}. */
    static Pattern namesOf(String user) {
        return Pattern.compile("catena-ps-" + Pattern.quote(user) + "-(\\d+)(?:-.*)?");
    }

    /** Owner-only permissions (0700) on the directory, where the file system has POSIX permissions. */
    static void restrict(Path dir) {
        if (!FileSystems.getDefault().supportedFileAttributeViews().contains("posix") || !Files.isDirectory(dir)) {
            return;
        }
        try {
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
        } catch (IOException e) {
            LOG.warn("cannot make the Aeron directory {} private to its owner: {}", dir, e.toString());
        }
    }

    /** Removes {@code user}'s default-named directories in {@code parent} whose process is gone; returns what it removed. */
    static List<Path> sweepStale(Path parent, String user) {
        List<Path> removed = new ArrayList<>();
        if (!Files.isDirectory(parent)) {
            return removed;
        }
        Pattern names = namesOf(user);
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(parent)) {
            for (Path p : ds) {
                Matcher m = names.matcher(p.getFileName().toString());
                if (m.matches() && Files.isDirectory(p) && Files.isWritable(p)
                        && ProcessHandle.of(Long.parseLong(m.group(1))).map(h -> !h.isAlive()).orElse(true)) {
                    deleteRecursively(p);
                    removed.add(p);
                }
            }
        } catch (IOException | UncheckedIOException | NumberFormatException e) {
            LOG.warn("cannot sweep stale Aeron directories in {}: {}", parent, e.toString());
        }
        if (!removed.isEmpty()) {
            LOG.info("removed the Aeron directories of processes that are gone: {}", removed);
        }
        return removed;
    }

    static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
