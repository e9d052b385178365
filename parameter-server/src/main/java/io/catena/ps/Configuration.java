package io.catena.ps;

import io.catena.ps.protocol.KeySchedule;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/**
 * Every setting of the parameter server and its client: the property name (usable as a JVM system
 * property or in the {@code catena ps --conf} properties file) and its default. {@link ParameterServer.Context}
 * and {@link ParameterServerClient.Context} read their defaults from here.
 */
public final class Configuration {
    private Configuration() {
    }

    // ---- identity and security ----------------------------------------------------------------

    /** Name of the training job; messages of another job are refused. */
    public static final String JOB_NAME_PROP = "catena.ps.job.name";
    public static final String JOB_NAME_DEFAULT = "catena";

    /** Per-job secret every key derives from (HKDF; at least 16 bytes, UTF-8). Prefer {@link #SECRET_FILE_PROP}. No default. */
    public static final String SECRET_PROP = "catena.ps.secret";

    /** File whose bytes (trailing newline stripped) are the per-job secret. No default. */
    public static final String SECRET_FILE_PROP = "catena.ps.secret.file";

    // ---- transport ----------------------------------------------------------------------------

    /** Aeron directory of the embedded MediaDriver (one per JVM), or of an external one. */
    public static final String AERON_DIR_PROP = "catena.ps.aeron.dir";
    /** Default: {@code /dev/shm/catena-ps-<user>-<pid>} where /dev/shm exists, else under java.io.tmpdir. */
    public static final String AERON_DIR_DEFAULT = defaultAeronDir();

    /** Launch an embedded MediaDriver in {@link #AERON_DIR_PROP} (true) or use a running one (false). */
    public static final String EMBEDDED_DRIVER_PROP = "catena.ps.driver.embedded";
    public static final boolean EMBEDDED_DRIVER_DEFAULT = true;

    /** Term buffer length of publications (power of two, 64 KiB..1 GiB). Max message = min(term/8, 16 MiB). */
    public static final String TERM_LENGTH_PROP = "catena.ps.term.length";
    public static final int TERM_LENGTH_DEFAULT = 16 * 1024 * 1024;

    /** Channel the server listens on and clients send to: {@code aeron:ipc} or {@code aeron:udp?endpoint=host:port}. */
    public static final String CHANNEL_PROP = "catena.ps.channel";
    public static final String CHANNEL_DEFAULT = "aeron:udp?endpoint=localhost:40123";

    /**
     * Also listen on {@code aeron:ipc} (same stream id) for clients that share the server's media driver, i.e. run in
     * its JVM or use its Aeron directory: they skip the UDP socket path (Spark local mode's executors). Off by default
     * for a standalone server; a job's embedded server turns it on.
     */
    public static final String ALSO_IPC_PROP = "catena.ps.also.ipc";
    public static final boolean ALSO_IPC_DEFAULT = false;

    /** Stream id of requests to the server. */
    public static final String STREAM_ID_PROP = "catena.ps.stream.id";
    public static final int STREAM_ID_DEFAULT = 1001;

    /** Extra URI params for UDP channels (DESIGN.md: ~850 MiB/s on loopback instead of ~180). Empty: none. */
    public static final String UDP_CHANNEL_PARAMS_PROP = "catena.ps.udp.params";
    public static final String UDP_CHANNEL_PARAMS_DEFAULT = "mtu=65504|so-sndbuf=4m|so-rcvbuf=4m|rcv-wnd=4m";

    /** Host the client's response subscription binds to for UDP (must be reachable from the server). */
    public static final String CLIENT_RESPONSE_HOST_PROP = "catena.ps.client.response.host";
    public static final String CLIENT_RESPONSE_HOST_DEFAULT = "localhost";

    /** Stream id of responses to a client. */
    public static final String CLIENT_RESPONSE_STREAM_ID_PROP = "catena.ps.client.response.stream.id";
    public static final int CLIENT_RESPONSE_STREAM_ID_DEFAULT = 1002;

    /** Payload bytes per parameter/gradient chunk (capped by the max message length). */
    public static final String CHUNK_BYTES_PROP = "catena.ps.chunk.bytes";
    public static final int CHUNK_BYTES_DEFAULT = 1024 * 1024;

    /** Idle strategy of the server agent and client waits: backoff, sleep (1 ms), yield or busy. */
    public static final String IDLE_STRATEGY_PROP = "catena.ps.idle";
    public static final String IDLE_STRATEGY_DEFAULT = "backoff";

    // ---- model and training -------------------------------------------------------------------

    /** Shards of the flat parameter vector (cut at tensor boundaries). */
    public static final String SHARDS_PROP = "catena.ps.shards";
    public static final int SHARDS_DEFAULT = 4;

    /**
     * Number of workers W; worker ids are 0..W-1. With pipeline stages P, W = data-parallel replicas x P and
     * worker w runs stage {@code w % P} of replica {@code w / P}.
     */
    public static final String WORKERS_PROP = "catena.ps.workers";
    public static final int WORKERS_DEFAULT = 1;

    /** bsp, ssp:S (staleness bound S >= 1) or asp. */
    public static final String SYNC_PROP = "catena.ps.sync";
    public static final String SYNC_DEFAULT = "bsp";

    /**
     * Pipeline stages P (the trainer's --pp): each worker pushes and pulls only its stage's parameter ranges
     * (chain-model's StagePlan); a step completes when all W = dp x P workers pushed. 1: no pipeline.
     * P > 1 needs bsp or ssp:S, P <= the model's layers and W divisible by P.
     */
    public static final String PIPELINE_STAGES_PROP = "catena.ps.pipeline.stages";
    public static final int PIPELINE_STAGES_DEFAULT = 1;

    /** Rows per pipeline micro-batch: with the sequence length, the cost model that places the stage boundaries. */
    public static final String PIPELINE_MICRO_BATCH_PROP = "catena.ps.pipeline.micro.batch";
    public static final int PIPELINE_MICRO_BATCH_DEFAULT = 1;

    /**
     * Micro-batches per step of the trainer's pipeline (--micro-batches): with the schedule, the stage split is
     * fitted to the step that schedule takes (chain-model's StagePlan; under 1F1B a somewhat heavier first
     * stage shortens the step). 0: the balanced split.
     */
    public static final String PIPELINE_MICRO_BATCHES_PROP = "catena.ps.pipeline.micro.batches";
    public static final int PIPELINE_MICRO_BATCHES_DEFAULT = 0;

    /** The trainer's pipeline schedule (--schedule), gpipe or 1f1b; used when micro.batches is > 0. */
    public static final String PIPELINE_SCHEDULE_PROP = "catena.ps.pipeline.schedule";
    public static final String PIPELINE_SCHEDULE_DEFAULT = "1f1b";

    /** Tokens per row of a pipeline micro-batch (the trainer's sequence length); 0: the model's max_seq_len. */
    public static final String PIPELINE_SEQ_LEN_PROP = "catena.ps.pipeline.seq.len";
    public static final int PIPELINE_SEQ_LEN_DEFAULT = 0;

    /**
     * The job's chain-model recipe (a .properties file or {@code builtin:NAME}): the initial model and the optimizer and LR
     * schedule the server applies (the server keeps no optimizer defaults of its own, so it cannot drift from the trainer's).
     */
    public static final String RECIPE_PROP = "catena.ps.recipe";

    /** Overrides of the recipe, {@code key=value} pairs separated by {@code ;} (as {@code catena train --set}). */
    public static final String RECIPE_SET_PROP = "catena.ps.recipe.set";

    /** vocab_size for a fresh model from a recipe that does not set it (the byte tokenizer's 257). */
    public static final String VOCAB_SIZE_PROP = "catena.ps.vocab.size";
    public static final int VOCAB_SIZE_DEFAULT = 257;

    /** Checkpoint (root or step directory, any Hadoop FS URI) to start from; {@code --restore} sets it. */
    public static final String RESTORE_PROP = "catena.ps.restore";

    /** Init seed of chains added by growth (a fresh model uses its recipe's seed); default the recipe default's. */
    public static final String SEED_PROP = "catena.ps.seed";
    public static final long SEED_DEFAULT = io.catena.model.train.TrainSettings.DEFAULT_SEED;

    // ---- snapshots ----------------------------------------------------------------------------

    /** Checkpoint root (any Hadoop FS URI) for snapshots; empty: no snapshots. */
    public static final String SNAPSHOT_URI_PROP = "catena.ps.snapshot.uri";

    /** Snapshot every N published versions (0: only on demand). */
    public static final String SNAPSHOT_INTERVAL_PROP = "catena.ps.snapshot.interval";
    public static final long SNAPSHOT_INTERVAL_DEFAULT = 0;

    /** Write a last snapshot when the server is closed normally. */
    public static final String SNAPSHOT_ON_CLOSE_PROP = "catena.ps.snapshot.on.close";
    public static final boolean SNAPSHOT_ON_CLOSE_DEFAULT = true;

    // ---- timeouts (milliseconds) --------------------------------------------------------------

    /** Client: how long connect waits for the server's WELCOME. */
    public static final String CONNECT_TIMEOUT_PROP = "catena.ps.connect.timeout.ms";
    public static final long CONNECT_TIMEOUT_DEFAULT = 10_000;

    /** Client: how long a push waits for its ack and a pull for its parameters. */
    public static final String REQUEST_TIMEOUT_PROP = "catena.ps.request.timeout.ms";
    public static final long REQUEST_TIMEOUT_DEFAULT = 60_000;

    /**
     * Client: how long its request channel may stay disconnected (Aeron sees the server's subscription gone) while it
     * waits for an answer before it fails with "the parameter server is gone" instead of waiting out the request timeout.
     */
    public static final String DEAD_SERVER_PROP = "catena.ps.dead.server.ms";
    public static final long DEAD_SERVER_DEFAULT = 3_000;

    /** Both sides: how long one message may be retried under back pressure before the send fails. */
    public static final String SEND_TIMEOUT_PROP = "catena.ps.send.timeout.ms";
    public static final long SEND_TIMEOUT_DEFAULT = 5_000;

    /** Server: how long a growth request waits for the in-flight step to finish. */
    public static final String GROW_TIMEOUT_PROP = "catena.ps.grow.timeout.ms";
    public static final long GROW_TIMEOUT_DEFAULT = 120_000;

    /** Standalone server: metrics log interval (0: off). */
    public static final String METRICS_INTERVAL_PROP = "catena.ps.metrics.interval.ms";
    public static final long METRICS_INTERVAL_DEFAULT = 10_000;

    /** Server: most client sessions (workers + admins) at once. */
    public static final String MAX_CLIENTS_PROP = "catena.ps.max.clients";
    public static final int MAX_CLIENTS_DEFAULT = 256;

    /** Every key above, for validating a --conf file (unknown keys are errors: a typo must not run the default). */
    public static final java.util.Set<String> KEYS = java.util.Set.of(JOB_NAME_PROP, SECRET_PROP, SECRET_FILE_PROP,
            AERON_DIR_PROP, EMBEDDED_DRIVER_PROP, TERM_LENGTH_PROP, CHANNEL_PROP, STREAM_ID_PROP, UDP_CHANNEL_PARAMS_PROP,
            CLIENT_RESPONSE_HOST_PROP, CLIENT_RESPONSE_STREAM_ID_PROP, CHUNK_BYTES_PROP, IDLE_STRATEGY_PROP, SHARDS_PROP,
            WORKERS_PROP, SYNC_PROP, PIPELINE_STAGES_PROP, PIPELINE_MICRO_BATCH_PROP, PIPELINE_MICRO_BATCHES_PROP,
            PIPELINE_SCHEDULE_PROP, PIPELINE_SEQ_LEN_PROP, RECIPE_PROP, RECIPE_SET_PROP, VOCAB_SIZE_PROP, RESTORE_PROP, SEED_PROP, SNAPSHOT_URI_PROP,
            SNAPSHOT_INTERVAL_PROP, SNAPSHOT_ON_CLOSE_PROP, ALSO_IPC_PROP, CONNECT_TIMEOUT_PROP, REQUEST_TIMEOUT_PROP, DEAD_SERVER_PROP, SEND_TIMEOUT_PROP,
            GROW_TIMEOUT_PROP, METRICS_INTERVAL_PROP, MAX_CLIENTS_PROP);

    private static String defaultAeronDir() {
        String user = AeronDirs.user();
        String name = "catena-ps-" + user + "-" + ProcessHandle.current().pid();
        java.io.File shm = new java.io.File("/dev/shm");
        return shm.isDirectory() ? new java.io.File(shm, name).getPath()
                : new java.io.File(System.getProperty("java.io.tmpdir"), name).getPath();
    }

    // ---- typed lookups (properties first, then system properties, then the default) -----------

    static String get(Properties p, String key, String def) {
        String v = p != null ? p.getProperty(key) : null;
        if (v == null) {
            v = System.getProperty(key);
        }
        return v == null ? def : v.trim();
    }

    static int getInt(Properties p, String key, int def) {
        String v = get(p, key, null);
        if (v == null || v.isEmpty()) {
            return def;
        }
        try {
            return (int) parseSize(v);
        } catch (NumberFormatException e) {
            throw new ConfigurationException(key, "an integer (suffixes k, m, g allowed)", v, "fix the value");
        }
    }

    static long getLong(Properties p, String key, long def) {
        String v = get(p, key, null);
        if (v == null || v.isEmpty()) {
            return def;
        }
        try {
            return parseSize(v);
        } catch (NumberFormatException e) {
            throw new ConfigurationException(key, "an integer", v, "fix the value");
        }
    }

    static double getDouble(Properties p, String key, double def) {
        String v = get(p, key, null);
        if (v == null || v.isEmpty()) {
            return def;
        }
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new ConfigurationException(key, "a number", v, "fix the value");
        }
    }

    static boolean getBoolean(Properties p, String key, boolean def) {
        String v = get(p, key, null);
        if (v == null || v.isEmpty()) {
            return def;
        }
        if (!v.equalsIgnoreCase("true") && !v.equalsIgnoreCase("false")) {
            throw new ConfigurationException(key, "true or false", v, "fix the value");
        }
        return Boolean.parseBoolean(v);
    }

    /** Parses 123, 64k, 16m, 1g (binary multiples). */
    public static long parseSize(String v) {
        String s = v.trim().toLowerCase();
        long mult = 1;
        if (s.endsWith("k")) {
            mult = 1024;
        } else if (s.endsWith("m")) {
            mult = 1024 * 1024;
        } else if (s.endsWith("g")) {
            mult = 1024L * 1024 * 1024;
        }
        if (mult != 1) {
            s = s.substring(0, s.length() - 1);
        }
        return Math.multiplyExact(Long.parseLong(s), mult);
    }

/** The per-job secret: {@code secret}, else the stripped contents of {@code secretFile}; at least 16 bytes. */
static byte[] resolveSecret(byte[] secret, String secretFile) {
        byte[] s = secret;
        if (s == null && secretFile != null && !secretFile.isBlank()) {
            try {
                String text = Files.readString(Path.of(secretFile), StandardCharsets.UTF_8).strip();
                s = text.getBytes(StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new ConfigurationException(Configuration.SECRET_FILE_PROP, "a readable file with the job secret", secretFile,
                        "create it (e.g. head -c 32 /dev/urandom | base64 > secret) and share it with the workers", e);
            }
        }
        if (s == null || s.length < KeySchedule.MIN_SECRET_BYTES) {
            throw new ConfigurationException(Configuration.SECRET_FILE_PROP + " (or " + Configuration.SECRET_PROP + ")",
                    "a per-job secret of at least " + KeySchedule.MIN_SECRET_BYTES + " bytes",
                    s == null ? null : s.length + " bytes", "generate one, e.g. head -c 32 /dev/urandom | base64 > secret");
        }
        return s;
    }
}
