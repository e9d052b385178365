package io.catena.model.io.storage;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.util.List;
import java.util.ServiceLoader;

/**
 * The file system under checkpoints, as small as {@link io.catena.model.io.CheckpointStore} needs it, so the engine
 * depends on no file-system library: {@link LocalStorage} (java.nio) for paths and {@code file:} URIs, and any other
 * scheme (hdfs, s3a, ...) from a {@link StorageProvider} found as a service (the Hadoop FileSystem one,
 * {@link HadoopStorage}, is registered whenever Hadoop is on the class path). Locations are URI strings.
 */
public interface Storage {

    /** One entry of a directory listing. */
    record Entry(String location, String name, boolean isFile, long modifiedMillis) {
    }

    /** The location of {@code name} inside directory {@code dir}. */
    default String child(String dir, String name) {
        return dir.endsWith("/") ? dir + name : dir + "/" + name;
    }

    /** The canonical form of a user's location (LocalStorage: the absolute path). */
    default String normalize(String location) {
        return location;
    }

    boolean exists(String location) throws IOException;

    void mkdirs(String location) throws IOException;

    /** Deletes a file, or a directory (with {@code recursive}); false when there was nothing to delete. */
    boolean delete(String location, boolean recursive) throws IOException;

    /** Renames within one file system; false when the target exists or the source is missing. */
    boolean rename(String from, String to) throws IOException;

    /** A new file (an existing one is an error). */
    OutputStream create(String location) throws IOException;

    /** Reads a file; a missing one is {@link java.io.FileNotFoundException}. */
    InputStream open(String location) throws IOException;

    List<Entry> list(String dir) throws IOException;

    long modifiedMillis(String location) throws IOException;

    /** Bytes free where {@code location} lives, or -1 when the file system cannot tell. */
    long remainingBytes(String location) throws IOException;

    /** Picks a storage for a location: a URI's scheme, or none for a local path. */
    interface Resolver {
        Storage forLocation(String location);
    }

    /** The default resolver: local paths and {@code file:} here, every other scheme from a registered provider. */
    Resolver DEFAULT = Storage::forLocation;

    static Storage forLocation(String location) {
        String scheme = scheme(location);
        if (scheme == null || scheme.equals("file")) {
            return LocalStorage.INSTANCE;
        }
        for (StorageProvider p : Providers.ALL) {
            if (p.handles(scheme)) {
                try {
                    return p.storage(location);
                } catch (LinkageError e) {
                    break; // a provider whose library is missing (HadoopStorage without Hadoop): as if there were none
                }
            }
        }
        throw new IllegalArgumentException(location + ": no storage for the '" + scheme + "' scheme on the class path; "
                + "hdfs://, s3a:// and other Hadoop file systems need the Hadoop client (bin/catena and the Spark jobs have it), "
                + "or use a local path");
    }

    /** The registered providers, looked up once (a checkpoint resolves a storage for every tensor file). */
    final class Providers {
        static final java.util.List<StorageProvider> ALL = load();

        private Providers() {
        }

        private static java.util.List<StorageProvider> load() {
            java.util.List<StorageProvider> out = new java.util.ArrayList<>();
            try {
                ServiceLoader.load(StorageProvider.class, Storage.class.getClassLoader()).forEach(out::add);
            } catch (java.util.ServiceConfigurationError | LinkageError e) {
                // a provider whose library is missing: as if there were none
            }
            return java.util.List.copyOf(out);
        }
    }

    /** The URI scheme of a location, or null for a plain path. */
    static String scheme(String location) {
        int colon = location.indexOf(':');
        if (colon < 2) { // none, or a Windows drive letter
            return null;
        }
        try {
            return URI.create(location.replace(" ", "%20")).getScheme();
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
