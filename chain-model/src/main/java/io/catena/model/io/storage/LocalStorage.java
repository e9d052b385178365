package io.catena.model.io.storage;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/** Local files through java.nio: plain paths and {@code file:} URIs. */
public final class LocalStorage implements Storage {
    public static final LocalStorage INSTANCE = new LocalStorage();

    private LocalStorage() {
    }

    /** The local path of a plain path or a {@code file:} URI. */
    public static Path path(String location) {
        if (location.startsWith("file:/")) {
            return Path.of(URI.create(location.replace(" ", "%20")));
        }
        if (location.startsWith("file:")) {
            return Path.of(location.substring("file:".length())).toAbsolutePath();
        }
        return Path.of(location).toAbsolutePath();
    }

    /** Locations come back as {@code file:/absolute/path}, the form Hadoop's local file system gives, so either reads them. */
    @Override
    public String normalize(String location) {
        return "file:" + path(location);
    }

    @Override
    public String child(String dir, String name) {
        return "file:" + path(dir).resolve(name);
    }

    @Override
    public boolean exists(String location) {
        return Files.exists(path(location));
    }

    @Override
    public void mkdirs(String location) throws IOException {
        Files.createDirectories(path(location));
    }

    @Override
    public boolean delete(String location, boolean recursive) throws IOException {
        Path p = path(location);
        if (!Files.exists(p)) {
            return false;
        }
        if (Files.isDirectory(p) && recursive) {
            try (Stream<Path> all = Files.walk(p)) {
                for (Path q : all.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(q);
                }
            } catch (UncheckedIOException e) {
                throw e.getCause();
            }
            return true;
        }
        return Files.deleteIfExists(p);
    }

    @Override
    public boolean rename(String from, String to) throws IOException {
        Path target = path(to);
        if (Files.exists(target) || !Files.exists(path(from))) {
            return false;
        }
        Files.move(path(from), target, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        return true;
    }

    @Override
    public OutputStream create(String location) throws IOException {
        Path p = path(location);
        Files.createDirectories(p.getParent());
        try {
            return Files.newOutputStream(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        } catch (FileAlreadyExistsException e) {
            throw new IOException(location + " already exists", e);
        }
    }

    @Override
    public InputStream open(String location) throws IOException {
        try {
            return Files.newInputStream(path(location));
        } catch (NoSuchFileException e) {
            throw new java.io.FileNotFoundException(location);
        }
    }

    @Override
    public List<Entry> list(String dir) throws IOException {
        List<Entry> out = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(path(dir))) {
            for (Path p : ds) {
                out.add(new Entry("file:" + p, p.getFileName().toString(), Files.isRegularFile(p),
                        Files.getLastModifiedTime(p).toMillis()));
            }
        }
        out.sort(Comparator.comparing(Entry::name));
        return out;
    }

    @Override
    public long modifiedMillis(String location) throws IOException {
        return Files.getLastModifiedTime(path(location)).toMillis();
    }

    @Override
    public long remainingBytes(String location) throws IOException {
        Path p = path(location);
        while (p != null && !Files.exists(p)) {
            p = p.getParent();
        }
        return p == null ? -1 : Files.getFileStore(p).getUsableSpace();
    }
}
