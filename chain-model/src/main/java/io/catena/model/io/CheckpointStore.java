package io.catena.model.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.Buf;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.zip.CRC32C;
import io.catena.model.io.storage.Storage;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Checkpoints on any {@link Storage} (local paths and file://; hdfs://, s3a:// through Hadoop): {@code model.json} plus one .npy
 * per tensor for parameters and AdamW moments (see MODEL.md). A step directory is written under a
 * temporary name and renamed when complete, then the root's {@code latest} file is replaced the
 * same way, so a crash mid-write never leaves a checkpoint that looks complete but is not.
 */
public final class CheckpointStore {
    public static final String FORMAT = "catena-checkpoint";
    public static final int FORMAT_VERSION = 1;
    public static final String LATEST = "latest";
    public static final String MODEL_JSON = "model.json";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Storage.Resolver storage;
    /** Fault injection for tests (like the trainer's --fail-at): fail after writing this many tensor files; -1 never. */
    private int failAfterTensors = -1;
    private int tensorsWritten;
    private boolean failAsError;

    public CheckpointStore() {
        this(Storage.DEFAULT);
    }

    /** A store on the given storage (e.g. {@code HadoopStorage.resolver(sparkHadoopConf)} for Spark's credentials). */
    public CheckpointStore(Storage.Resolver storage) {
        this.storage = storage;
    }

    /** A store whose writes fail after {@code n} tensor files, as a full disk or a lost connection would (tests only). */
    public CheckpointStore failingAfterTensors(int n) {
        CheckpointStore s = new CheckpointStore(storage);
        s.failAfterTensors = n;
        return s;
    }

    /** A store whose writes fail after {@code n} tensor files with an Error, as Hadoop's local FS reports a full disk (tests only). */
    public CheckpointStore failingLikeAFullDisk(int n) {
        CheckpointStore s = failingAfterTensors(n);
        s.failAsError = true;
        return s;
    }

    private Storage fs(String location) {
        return storage.forLocation(location);
    }

    /**
     * Writes a step directory under root and points {@code latest} at it; returns the step directory URI. A
     * failure of any kind (an {@code IOException}, or an {@code Error} such as Hadoop's {@code FSError} for a
     * full local disk) removes what was written and throws {@link CheckpointWriteException}; the previous
     * checkpoint and {@code latest} stay as they were.
     */
    public String save(String root, TrainingState state) {
        String rootPath = fs(root).normalize(root);
        String name = String.format("step-%08d", state.step());
        Storage fs = null;
        try {
            fs = fs(rootPath);
            fs.mkdirs(rootPath);
            String tmp = fs.child(rootPath, "_tmp-" + name + "-" + WRITER + "-" + UUID.randomUUID());
            String dest = fs.child(rootPath, name);
            writeStepDirOrClean(fs, tmp, state);
            if (fs.exists(dest)) {
                String old = fs.child(rootPath, "_old-" + name + "-" + UUID.randomUUID());
                rename(fs, dest, old);
                rename(fs, tmp, dest);
                fs.delete(old, true);
            } else {
                rename(fs, tmp, dest);
            }
            writeAtomically(fs, rootPath, LATEST, (name + "\n").getBytes(StandardCharsets.UTF_8));
            return dest;
        } catch (IOException | RuntimeException | Error e) {
            if (e instanceof VirtualMachineError vm && !(e instanceof OutOfMemoryError)) {
                throw vm;
            }
            throw writeFailed(fs, rootPath, name, state, e);
        }
    }

    /** This process as the writer of temporary directories: {@code p<pid>@<host>}, so a later start can tell a dead writer. */
    static final String WRITER = "p" + ProcessHandle.current().pid() + "@" + hostId();

    private static final java.util.regex.Pattern LEFTOVER = java.util.regex.Pattern.compile(
            "_(tmp|old)-step-(\\d+)-(?:p(\\d+)@([A-Za-z0-9_.]+)-)?[0-9a-f-]{36}");
    /** A leftover a foreign or unknown writer could still own is removed only once it is this old. */
    static final long FOREIGN_LEFTOVER_AGE_MS = 10 * 60_000L;

    private static String hostId() {
        String h;
        try {
            h = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/sys/kernel/hostname")).trim();
        } catch (IOException | RuntimeException e) {
            h = System.getenv().getOrDefault("HOSTNAME", "unknown");
        }
        h = h.replaceAll("[^A-Za-z0-9_.]", "_");
        return h.isEmpty() ? "unknown" : h.substring(0, Math.min(48, h.length()));
    }

    /**
     * Removes the leftovers of checkpoint writes that cannot finish any more, and returns what it removed: a
     * {@code _tmp-step-*} directory whose writer (named in it) was a process on this host that is gone; one of an
     * unknown or other host's writer when its step is not newer than the newest complete step and it is older
     * than {@value #FOREIGN_LEFTOVER_AGE_MS} ms; an {@code _old-step-N-*} directory once {@code step-N} is complete;
     * a {@code _tmp-latest-*} file once {@code latest} exists and is newer. A live writer's directory is never touched.
     */
    public List<String> sweepLeftovers(String root) {
        List<String> removed = new ArrayList<>();
        try {
            Storage fs = fs(root);
            String rootPath = fs.normalize(root);
            if (!fs.exists(rootPath)) {
                return removed;
            }
            String latest = fs.child(rootPath, LATEST);
            long newest = -1;
            long latestTime = -1;
            if (fs.exists(latest)) {
                latestTime = fs.modifiedMillis(latest);
                String dir = resolve(root);
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("step-(\\d+)$").matcher(dir);
                newest = m.find() ? Long.parseLong(m.group(1)) : -1;
            }
            long now = System.currentTimeMillis();
            for (Storage.Entry st : fs.list(rootPath)) {
                String n = st.name();
                java.util.regex.Matcher m = LEFTOVER.matcher(n);
                boolean remove = false;
                if (m.matches() && m.group(1).equals("tmp")) {
                    long step = Long.parseLong(m.group(2));
                    boolean thisHost = m.group(4) != null && m.group(4).equals(hostId());
                    boolean writerDead = thisHost && ProcessHandle.of(Long.parseLong(m.group(3))).map(p -> !p.isAlive()).orElse(true);
                    boolean writerLive = thisHost && !writerDead;
                    remove = writerDead || (!writerLive && step <= newest && now - st.modifiedMillis() > FOREIGN_LEFTOVER_AGE_MS);
                } else if (m.matches()) {
                    remove = fs.exists(fs.child(fs.child(rootPath, String.format("step-%08d", Long.parseLong(m.group(2)))), MODEL_JSON));
                } else if (n.startsWith("_tmp-" + LATEST + "-")) {
                    remove = latestTime >= 0 && st.modifiedMillis() < latestTime;
                }
                if (remove && fs.delete(st.location(), true)) {
                    removed.add(n);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot clean up leftovers under " + root + ": " + e.getMessage(), e);
        }
        return removed;
    }

    /** The one-line error of a failed write: path, cause, free space against the checkpoint's size, what is intact. */
    private CheckpointWriteException writeFailed(Storage fs, String root, String name, TrainingState st, Throwable e) {
        String cause = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
            if (c.getMessage() != null && !cause.contains(c.getMessage())) {
                cause += ": " + c.getMessage();
            }
        }
        String space = "";
        try {
            if (fs != null) {
                long free = fs.remainingBytes(root);
                space = free < 0 ? "" : String.format(java.util.Locale.ROOT, " (%,d MB free there; this checkpoint needs about %,d MB)",
                        free >> 20, Math.max(1, bytesNeeded(st) >> 20));
            }
        } catch (IOException | RuntimeException ignored) {
            // the file system cannot tell: the message says less
        }
        String intact;
        try {
            intact = fs != null && fs.exists(fs.child(root, LATEST)) ? "the previous checkpoint (" + resolve(root)
                    + ") is intact" : "no earlier checkpoint exists there";
        } catch (RuntimeException | IOException ignored) {
            intact = "the previous checkpoint was not touched";
        }
        return new CheckpointWriteException("cannot write checkpoint " + name + " under " + root + ": " + cause + space
                + "; the partial directory was removed and " + intact + ". Free space or choose another --out, then resume", e);
    }

    /** About what a checkpoint of this state occupies: every tensor as float32, moments included, plus headers. */
    static long bytesNeeded(TrainingState st) {
        long tensors = st.params().layout().entries().size();
        long files = st.hasOptimizerState() ? 3 : 1;
        return files * (st.params().layout().size() * 4 + tensors * 128) + 64 * 1024;
    }

    /** Writes one self-contained checkpoint directory at exactly {@code dir} (temp + rename). */
    public String saveTo(String dir, TrainingState state) {
        try {
            Storage fs = fs(dir);
            String dest = fs.normalize(dir.replaceAll("(?<=.)/+$", ""));
            if (fs.exists(dest)) {
                throw new IllegalArgumentException("output " + dir + " already exists; choose a new directory (nothing was written)");
            }
            int slash = dest.lastIndexOf('/');
            String parent = slash > 0 ? dest.substring(0, slash) : ".";
            fs.mkdirs(parent);
            String tmp = fs.child(parent, "_tmp-" + dest.substring(slash + 1) + "-" + UUID.randomUUID());
            writeStepDirOrClean(fs, tmp, state);
            rename(fs, tmp, dest);
            return dest;
        } catch (IOException | Error e) {
            if (e instanceof VirtualMachineError vm && !(e instanceof OutOfMemoryError)) {
                throw vm;
            }
            throw new CheckpointWriteException("cannot write checkpoint " + dir + ": " + e.getMessage()
                    + "; the partial directory was removed. Free space or choose another --out", e);
        }
    }

    private static void rename(Storage fs, String from, String to) throws IOException {
        if (!fs.rename(from, to)) {
            throw new IOException("rename " + from + " -> " + to + " failed");
        }
    }

    private static void writeAtomically(Storage fs, String dir, String name, byte[] content) throws IOException {
        String target = fs.child(dir, name);
        String tmp = fs.child(dir, "_tmp-" + name + "-" + UUID.randomUUID());
        try (OutputStream out = fs.create(tmp)) {
            out.write(content);
        } catch (IOException | RuntimeException | Error e) {
            try {
                fs.delete(tmp, false);
            } catch (IOException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
        if (fs.exists(target)) {
            fs.delete(target, false);
        }
        rename(fs, tmp, target);
    }

    /** Writes the step directory under its temporary name; on failure removes what was written and rethrows. */
    private void writeStepDirOrClean(Storage fs, String tmp, TrainingState st) throws IOException {
        try {
            writeStepDir(fs, tmp, st);
        } catch (IOException | RuntimeException | Error e) { // Error: Hadoop reports a full local disk as FSError
            try {
                fs.delete(tmp, true);
            } catch (IOException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
    }

    private void writeStepDir(Storage fs, String dir, TrainingState st) throws IOException {
        fs.mkdirs(dir);
        List<Map<String, Object>> tensors = new ArrayList<>();
        ParamLayout layout = st.params().layout();
        for (ParamLayout.Entry e : layout.entries()) {
            Map<String, Object> t = new LinkedHashMap<>();
            t.put("name", e.name());
            t.put("shape", e.shape());
            t.put("chain", e.chain());
            t.put("offset", e.offset());
            t.put("crc32c", writeTensor(fs, fs.child(dir, "params/" + e.name() + ".npy"), st.params(), e));
            if (st.hasOptimizerState()) {
                t.put("crc32c_m", writeTensor(fs, fs.child(dir, "optim/m/" + e.name() + ".npy"), st.adamM(), e));
                t.put("crc32c_v", writeTensor(fs, fs.child(dir, "optim/v/" + e.name() + ".npy"), st.adamV(), e));
            }
            tensors.add(t);
        }
        Map<String, Object> trainer = new LinkedHashMap<>();
        trainer.put("step", st.step());
        trainer.put("tokens_seen", st.tokensSeen());
        trainer.put("data_position", st.dataPosition());
        trainer.put("frozen_chains", st.frozenChains());
        trainer.put("has_optimizer_state", st.hasOptimizerState());
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("format", FORMAT);
        doc.put("format_version", FORMAT_VERSION);
        doc.put("config", st.config().toMap());
        doc.put("parameter_count", layout.size());
        doc.put("trainer", trainer);
        doc.put("info", st.info());
        doc.put("tensors", tensors);
        // model.json last: a directory without it is never mistaken for a checkpoint
        try (OutputStream out = fs.create(fs.child(dir, MODEL_JSON))) {
            out.write(JSON.writeValueAsBytes(doc));
        }
    }

    private long writeTensor(Storage fs, String file, Params p, ParamLayout.Entry e) throws IOException {
        if (failAfterTensors >= 0 && tensorsWritten++ >= failAfterTensors) {
            if (failAsError) {
                throw new java.io.IOError(new IOException("No space left on device (injected after " + failAfterTensors
                        + " tensor files, at " + file + ")"));
            }
            throw new IOException("injected failure after " + failAfterTensors + " tensor files, at " + file);
        }
        float[] data = new float[(int) e.size()];
        Buf b = p.buf();
        int off = (int) e.offset();
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) b.get(off + i);
        }
        try (OutputStream out = fs.create(file)) {
            Npy.writeFloat32(out, e.shape(), data);
        }
        return crc(data);
    }

    private static long crc(float[] data) {
        CRC32C c = new CRC32C();
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.allocate(data.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        bb.asFloatBuffer().put(data);
        c.update(bb.array());
        return c.getValue();
    }

    /**
     * Resolves a checkpoint root (via {@code latest}) or a step directory to the directory holding model.json, for
     * every command that takes {@code --ckpt}. A directory that has both (a model written by {@code expand --out X},
     * then trained on with {@code train-local --resume --out X}) means its {@code latest}: the newest state, never the
     * stale model at its root.
     */
    public String resolve(String uri) {
        try {
            Storage fs = fs(uri);
            String p = fs.normalize(uri.replaceAll("(?<=.)/+$", ""));
            String latest = fs.child(p, LATEST);
            if (fs.exists(fs.child(p, MODEL_JSON)) && !fs.exists(latest)) {
                return p;
            }
            if (!fs.exists(latest)) {
                latest = interruptedLatest(fs, p);
            }
            if (latest != null) {
                String name;
                try (InputStream in = fs.open(latest)) {
                    name = new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
                }
                String step = fs.child(p, name);
                if (!fs.exists(fs.child(step, MODEL_JSON))) {
                    throw new IllegalArgumentException("checkpoint root " + uri + ": 'latest' names " + name
                            + " but " + step + "/" + MODEL_JSON + " does not exist; point --ckpt at an existing step directory");
                }
                return step;
            }
            if (!fs.exists(p)) {
                throw new IllegalArgumentException("no checkpoint at " + uri + ": the path does not exist");
            }
            throw new IllegalArgumentException("no checkpoint at " + uri + ": expected " + MODEL_JSON + " or a '" + LATEST
                    + "' file, found " + fs.list(p).stream().map(Storage.Entry::name).toList());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read checkpoint " + uri + ": " + e.getMessage(), e);
        }
    }

    /**
     * {@code latest} is replaced by writing a complete temporary file, deleting the old one and renaming
     * (HDFS's rename does not overwrite); a crash between the last two leaves only the temporary file,
     * which already names the newest step. Returns the newest such file, or null.
     */
    private static String interruptedLatest(Storage fs, String root) throws IOException {
        if (!fs.exists(root)) {
            return null;
        }
        Storage.Entry newest = null;
        for (Storage.Entry s : fs.list(root)) {
            if (s.isFile() && s.name().startsWith("_tmp-" + LATEST + "-")
                    && (newest == null || s.modifiedMillis() > newest.modifiedMillis())) {
                newest = s;
            }
        }
        return newest == null ? null : newest.location();
    }

    /** Reads only model.json (config and trainer facts) of a checkpoint. */
    @SuppressWarnings("unchecked")
    public Map<String, Object> readManifest(String uri) {
        String dir = resolve(uri);
        String file = fs(dir).child(dir, MODEL_JSON);
        try (InputStream in = fs(file).open(file)) {
            Map<String, Object> doc = JSON.readValue(in, Map.class);
            if (!FORMAT.equals(doc.get("format"))) {
                throw new IllegalArgumentException(file + ": expected format '" + FORMAT + "', found '" + doc.get("format") + "'");
            }
            Object v = doc.get("format_version");
            if (!(v instanceof Number n) || n.intValue() != FORMAT_VERSION) {
                throw new IllegalArgumentException(file + ": expected format_version " + FORMAT_VERSION + ", found " + v);
            }
            doc.put("_dir", dir);
            return doc;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(file + " is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /** Loads and validates a checkpoint (config, every tensor's shape and CRC). */
    @SuppressWarnings("unchecked")
    public TrainingState load(String uri, boolean withOptimizerState) {
        Map<String, Object> doc = readManifest(uri);
        String dir = (String) doc.get("_dir");
        ColmConfig cfg = ColmConfig.fromMap((Map<String, Object>) doc.get("config"));
        ParamLayout layout = new ParamLayout(cfg);
        List<Map<String, Object>> tensors = (List<Map<String, Object>>) doc.get("tensors");
        if (tensors == null || tensors.size() != layout.entries().size()) {
            throw new IllegalArgumentException(dir + "/" + MODEL_JSON + ": lists " + (tensors == null ? 0 : tensors.size())
                    + " tensors, the config " + cfg.chains() + " needs " + layout.entries().size());
        }
        Map<String, Object> trainer = (Map<String, Object>) doc.getOrDefault("trainer", Map.of());
        boolean hasOpt = Boolean.TRUE.equals(trainer.get("has_optimizer_state"));
        if (withOptimizerState && !hasOpt) {
            throw new IllegalArgumentException("checkpoint " + dir + " has no optimizer state (an inference export); "
                    + "it can be evaluated or expanded but not resumed");
        }
        Params params = new Params(layout, DataType.FLOAT);
        Params m = withOptimizerState ? new Params(layout, DataType.FLOAT) : null;
        Params v = withOptimizerState ? new Params(layout, DataType.FLOAT) : null;
        try {
            for (int i = 0; i < tensors.size(); i++) {
                Map<String, Object> t = tensors.get(i);
                ParamLayout.Entry e = layout.entries().get(i);
                if (!e.name().equals(t.get("name"))) {
                    throw new IllegalArgumentException(dir + "/" + MODEL_JSON + ": tensor #" + i + " is '" + t.get("name")
                            + "', the layout expects '" + e.name() + "'");
                }
                readTensor(dir, "params/", e, params, (Number) t.get("crc32c"));
                if (withOptimizerState) {
                    readTensor(dir, "optim/m/", e, m, (Number) t.get("crc32c_m"));
                    readTensor(dir, "optim/v/", e, v, (Number) t.get("crc32c_v"));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load checkpoint " + dir + ": " + e.getMessage(), e);
        }
        Map<String, Object> info = (Map<String, Object>) doc.getOrDefault("info", Map.of());
        return new TrainingState(cfg, params, m, v, num(trainer.get("step")), num(trainer.get("tokens_seen")),
                num(trainer.get("data_position")), (int) num(trainer.get("frozen_chains")), info);
    }

    private static long num(Object o) {
        return o instanceof Number n ? n.longValue() : 0L;
    }

    private void readTensor(String dir, String sub, ParamLayout.Entry e, Params into, Number expectedCrc) throws IOException {
        String file = fs(dir).child(dir, sub + e.name() + ".npy");
        float[] data;
        try (InputStream in = fs(file).open(file)) {
            data = Npy.readFloat32(in, e.shape(), file);
        } catch (FileNotFoundException ex) {
            throw new IOException("missing tensor file " + file + " (tensor " + e.name() + ", shape " + e.shapeString()
                    + "); the checkpoint is incomplete — use an earlier step", ex);
        }
        if (expectedCrc != null && crc(data) != expectedCrc.longValue()) {
            throw new IOException(file + ": CRC32C " + crc(data) + " does not match " + expectedCrc + " recorded in "
                    + MODEL_JSON + "; the file is corrupt — use an earlier step");
        }
        Buf b = into.buf();
        int off = (int) e.offset();
        for (int i = 0; i < data.length; i++) {
            b.set(off + i, data[i]);
        }
    }
}
