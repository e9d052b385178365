package io.catena.data.prepare;

import io.catena.data.manifest.Manifest;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.TreeSet;

/** Lists input files on any Hadoop FS and derives their partition directories. */
final class Sources {

    private Sources() {
    }

    /** All data files under the inputs (directories recursively, globs expanded), sorted by path, deduplicated. */
    static List<FileStatus> list(List<String> inputs, Configuration conf) {
        TreeMap<String, FileStatus> files = new TreeMap<>();
        for (String in : inputs) {
            Path p = new Path(in);
            FileSystem fs;
            try {
                fs = p.getFileSystem(conf);
            } catch (IOException | RuntimeException e) {
                throw new IllegalArgumentException("cannot open input URI " + in + ": " + e.getMessage()
                        + ". Expected a Hadoop FileSystem URI (file://, hdfs://host:port/, s3a://bucket/) whose scheme is"
                        + " configured; check the URI and the filesystem settings (core-site.xml / spark.hadoop.*).", e);
            }
            FileStatus[] matches;
            try {
                matches = fs.globStatus(p);
            } catch (IOException e) {
                throw new IllegalArgumentException("cannot read input " + in + ": " + e.getMessage()
                        + ". Check that it exists and that this user may read it.", e);
            }
            if (matches == null || matches.length == 0) {
                throw new IllegalArgumentException("input " + in + " does not exist (no file or directory matches)."
                        + " Pass existing files, directories or globs to --input.");
            }
            for (FileStatus m : matches) {
                try {
                    if (m.isDirectory()) {
                        RemoteIterator<LocatedFileStatus> it = fs.listFiles(m.getPath(), true);
                        while (it.hasNext()) {
                            LocatedFileStatus f = it.next();
                            if (isData(f.getPath(), m.getPath())) {
                                files.put(f.getPath().toString(), f);
                            }
                        }
                    } else if (isData(m.getPath(), m.getPath().getParent())) {
                        files.put(m.getPath().toString(), m);
                    }
                } catch (FileNotFoundException e) {
                    throw new IllegalArgumentException("input " + m.getPath() + " vanished while listing it; retry when the"
                            + " writer of that directory is done", e);
                } catch (IOException e) {
                    throw new IllegalArgumentException("cannot list input " + m.getPath() + ": " + e.getMessage()
                            + ". Check that this user may read it.", e);
                }
            }
        }
        return new ArrayList<>(files.values());
    }

    /** Skips hidden and bookkeeping files (_SUCCESS, .crc, _temporary/...) like Spark and Hive do. */
    private static boolean isData(Path file, Path under) {
        for (Path p = file; p != null && !p.equals(under); p = p.getParent()) {
            String n = p.getName();
            if (n.startsWith("_") || n.startsWith(".")) {
                return false;
            }
        }
        return !file.getName().startsWith("_") && !file.getName().startsWith(".");
    }

    /** The {@code key=value} directories of a path, joined by '/', or null if it has none. */
    static String partitionOf(String path) {
        List<String> parts = new ArrayList<>();
        String[] segs = new Path(path).toUri().getPath().split("/");
        for (int i = 0; i < segs.length - 1; i++) {
            String s = segs[i];
            int eq = s.indexOf('=');
            if (eq > 0 && eq < s.length() - 1) {
                parts.add(s);
            }
        }
        return parts.isEmpty() ? null : String.join("/", parts);
    }

    static TreeSet<String> partitions(List<Manifest.Source> sources) {
        TreeSet<String> out = new TreeSet<>();
        for (Manifest.Source s : sources) {
            if (s.heldOut()) {
                continue; // the held-out corpus is no partition of the training data
            }
            String p = partitionOf(s.path());
            if (p != null) {
                out.add(p);
            }
        }
        return out;
    }
}
