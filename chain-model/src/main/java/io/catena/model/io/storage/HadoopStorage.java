package io.catena.model.io.storage;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Any Hadoop FileSystem (hdfs://, s3a://, ...). chain-model compiles against the Hadoop client as an optional
 * dependency: this class is only loaded (as the registered {@link StorageProvider}, or by a caller that has a Hadoop
 * {@link Configuration}, e.g. Spark's) where Hadoop is on the class path.
 */
public final class HadoopStorage implements Storage {
    private final Configuration conf;

    public HadoopStorage(Configuration conf) {
        this.conf = conf;
    }

    /** Local paths and file: through java.nio, everything else through Hadoop with {@code conf} (credentials, endpoints). */
    public static Storage.Resolver resolver(Configuration conf) {
        HadoopStorage hadoop = new HadoopStorage(conf);
        return location -> {
            String scheme = Storage.scheme(location);
            return scheme == null || scheme.equals("file") ? LocalStorage.INSTANCE : hadoop;
        };
    }

    /** The service entry: every scheme but local files, with one default Hadoop configuration (built once: it is costly). */
    public static final class Provider implements StorageProvider {
        private static volatile HadoopStorage shared;

        @Override
        public boolean handles(String scheme) {
            return scheme != null && !scheme.equals("file");
        }

        @Override
        public Storage storage(String location) {
            HadoopStorage s = shared;
            if (s == null) {
                s = new HadoopStorage(new Configuration());
                shared = s;
            }
            return s;
        }
    }

    private FileSystem fs(Path p) throws IOException {
        FileSystem fs = p.getFileSystem(conf);
        fs.setWriteChecksum(false); // each checkpoint tensor carries its own CRC32C in model.json
        fs.setVerifyChecksum(false);
        return fs;
    }

    private static Path path(String location) {
        return new Path(URI.create(location.replace(" ", "%20")));
    }

    @Override
    public String child(String dir, String name) {
        return new Path(path(dir), name).toString();
    }

    @Override
    public boolean exists(String location) throws IOException {
        Path p = path(location);
        return fs(p).exists(p);
    }

    @Override
    public void mkdirs(String location) throws IOException {
        Path p = path(location);
        fs(p).mkdirs(p);
    }

    @Override
    public boolean delete(String location, boolean recursive) throws IOException {
        Path p = path(location);
        return fs(p).delete(p, recursive);
    }

    @Override
    public boolean rename(String from, String to) throws IOException {
        Path f = path(from);
        return fs(f).rename(f, path(to));
    }

    @Override
    public OutputStream create(String location) throws IOException {
        Path p = path(location);
        return fs(p).create(p, false);
    }

    @Override
    public InputStream open(String location) throws IOException {
        Path p = path(location);
        return fs(p).open(p);
    }

    @Override
    public List<Entry> list(String dir) throws IOException {
        Path p = path(dir);
        List<Entry> out = new ArrayList<>();
        for (FileStatus st : fs(p).listStatus(p)) {
            out.add(new Entry(st.getPath().toString(), st.getPath().getName(), st.isFile(), st.getModificationTime()));
        }
        return out;
    }

    @Override
    public long modifiedMillis(String location) throws IOException {
        Path p = path(location);
        return fs(p).getFileStatus(p).getModificationTime();
    }

    @Override
    public long remainingBytes(String location) throws IOException {
        Path p = path(location);
        return fs(p).getStatus(p).getRemaining();
    }
}
