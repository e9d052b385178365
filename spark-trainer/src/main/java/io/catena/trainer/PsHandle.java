package io.catena.trainer;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.model.io.storage.HadoopStorage;
import io.catena.ps.Configuration;
import io.catena.ps.ConfigurationException;
import io.catena.ps.ParameterServer;
import io.catena.ps.ParameterServerClient;
import io.catena.ps.ParameterServerException;
import io.catena.ps.ParameterServerTimeoutException;
import io.catena.ps.RequestRejectedException;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.function.LongFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.nd4j.linalg.api.buffer.DataType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The driver's view of the parameter server: the server it embeds ({@link Embedded}) or one started
 * separately with {@code catena ps --conf F} that it reaches as an admin client ({@link Remote}). The
 * driver only needs the version, the current model, growth and the final snapshot; workers talk to
 * either server the same way.
 */
interface PsHandle extends AutoCloseable {

    /** Latest published version (optimizer steps applied). */
    long version();

    /** The model the server serves now. */
    ColmConfig config();

    /** Appends chains after the in-flight step (see ParameterServer.grow); returns the new epoch. */
    int grow(List<Integer> heads, boolean freeze, long timeoutMs);

    /** The final state and its snapshot: {@code info} gives the trainer facts (tokens_seen, data_position) for a version. */
    Final snapshotFinal(LongFunction<Map<String, Object>> info, long timeoutMs);

    /** For messages: "embedded parameter server on ..." / "external parameter server at host:port". */
    String describe();

    /** The server's metrics (ServerMetrics.toMap: bytes moved, the lr and gradient norm of its recent updates, ...). */
    Map<String, Object> metrics();

    /**
     * What every later snapshot of the server carries: the run's info and, with {@code cursor}, the data cursor
     * {step, data_position, tokens_seen, windows_per_step, tokens_per_step} (ParameterServer#trainerInfo).
     */
    void trainerInfo(Map<String, Object> info, long[] cursor);

    /** False when the server does not answer within {@code timeoutMs} (only an external server can go away alone). */
    default boolean answers(long timeoutMs) {
        return true;
    }

    /**
     * An external server that stopped answering: waits up to {@code timeoutMs} for it to answer again (restarted,
     * typically restored from its last snapshot) and returns the version it serves then, or -1 when it did not.
     */
    default long awaitBack(long timeoutMs) {
        return -1;
    }

    /**
     * A server that answers but was restarted since this handle last saw it (restored from a snapshot, e.g. by a
     * supervisor, faster than anyone noticed it was gone): the version it serves now; -1 when it was not restarted.
     */
    default long versionIfRestarted() {
        return -1;
    }

    /** The last snapshot the server reported writing (its metrics' last_snapshot), or null when none was seen. */
    default String lastSnapshot() {
        return null;
    }

    @Override
    void close();

    record Final(TrainingState state, String dir) {
    }

    /**
     * How to reach an external server: {@code --ps-conf F} (the server's own {@code catena ps --conf} file) gives
     * job name, secret, channel, stream, term length and UDP params; {@code --ps-host/--ps-port},
     * {@code --ps-secret-file}, {@code --job-name} and {@code --term-length} override them (without a conf file the
     * server's defaults apply: job "catena", stream 1001, term 16m).
     */
    record ExternalSettings(String jobName, byte[] secret, String endpoint, int streamId, int termLength, String udpParams) {

        static ExternalSettings resolve(TrainOptions opts) {
            Properties p = new Properties();
            if (opts.psConf() != null) {
                Path f = Path.of(opts.psConf());
                try (Reader r = Files.newBufferedReader(f, StandardCharsets.UTF_8)) {
                    p.load(r);
                } catch (IOException e) {
                    throw new IllegalArgumentException("cannot read --ps-conf " + f + " (the parameter server's catena.ps.* conf file): "
                            + e, e);
                }
                List<String> unknown = p.stringPropertyNames().stream().filter(k -> !Configuration.KEYS.contains(k)).sorted().toList();
                if (!unknown.isEmpty()) {
                    throw new IllegalArgumentException("--ps-conf " + f + ": unknown keys " + unknown + "; it should be the file the "
                            + "server runs with (catena ps --conf), whose keys are " + new java.util.TreeSet<>(Configuration.KEYS));
                }
            }
            String src = opts.psConf() != null ? " in --ps-conf " + opts.psConf() : "";
            String job = opts.jobName() != null ? opts.jobName() : p.getProperty(Configuration.JOB_NAME_PROP, Configuration.JOB_NAME_DEFAULT).trim();
            // the endpoint: --ps-host/--ps-port win over the conf's channel (which may bind 0.0.0.0)
            String channel = p.getProperty(Configuration.CHANNEL_PROP, "").trim();
            String confHost = null;
            int confPort = 0;
            if (!channel.isEmpty()) {
                Matcher m = Pattern.compile("aeron:udp\\?(?:.*\\|)?endpoint=([^|:]+):(\\d+).*").matcher(channel);
                if (!m.matches()) {
                    throw new IllegalArgumentException(Configuration.CHANNEL_PROP + "=" + channel + src + " is not a UDP channel "
                            + "aeron:udp?endpoint=HOST:PORT; the driver and the executors reach an external server over UDP");
                }
                confHost = m.group(1);
                confPort = Integer.parseInt(m.group(2));
            }
            String host = opts.psHost() != null ? opts.psHost() : confHost;
            int port = opts.psPort() > 0 ? opts.psPort() : confPort;
            if (host == null || port <= 0) {
                throw new IllegalArgumentException("an external parameter server needs its address: --ps-host and --ps-port"
                        + (opts.psConf() != null ? " (or " + Configuration.CHANNEL_PROP + src + ")" : ""));
            }
            if (host.equals("0.0.0.0") || host.equals("::") || host.equals("*")) {
                throw new IllegalArgumentException(Configuration.CHANNEL_PROP + "=" + channel + src + " binds every interface; give "
                        + "--ps-host with an address of the server that the driver and the executors can reach");
            }
            byte[] secret;
            if (opts.psSecretFile() != null) {
                secret = readSecret(opts.psSecretFile(), "--ps-secret-file");
            } else if (p.getProperty(Configuration.SECRET_PROP) != null) {
                secret = p.getProperty(Configuration.SECRET_PROP).trim().getBytes(StandardCharsets.UTF_8);
            } else if (p.getProperty(Configuration.SECRET_FILE_PROP) != null) {
                secret = readSecret(p.getProperty(Configuration.SECRET_FILE_PROP).trim(), Configuration.SECRET_FILE_PROP + src);
            } else {
                throw new IllegalArgumentException("the external parameter server at " + host + ":" + port + " authenticates every "
                        + "message with its job secret: pass --ps-secret-file F (the file of its " + Configuration.SECRET_FILE_PROP
                        + ") or --ps-conf with its conf file");
            }
            int term = opts.termLength() > 0 ? opts.termLength()
                    : (int) size(p.getProperty(Configuration.TERM_LENGTH_PROP), Configuration.TERM_LENGTH_DEFAULT,
                    Configuration.TERM_LENGTH_PROP + src);
            int stream = (int) size(p.getProperty(Configuration.STREAM_ID_PROP), Configuration.STREAM_ID_DEFAULT,
                    Configuration.STREAM_ID_PROP + src);
            String udp = p.getProperty(Configuration.UDP_CHANNEL_PARAMS_PROP, Configuration.UDP_CHANNEL_PARAMS_DEFAULT).trim();
            return new ExternalSettings(job, secret, host + ":" + port, stream, term, udp);
        }

        /** Like the server: the file's text without surrounding white space. */
        private static byte[] readSecret(String file, String what) {
            try {
                return Files.readString(Path.of(file), StandardCharsets.UTF_8).strip().getBytes(StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new IllegalArgumentException("cannot read " + what + " " + file + " (the external parameter server's job "
                        + "secret): " + e + "; use the file the server was started with", e);
            }
        }

        private static long size(String v, long dflt, String what) {
            if (v == null || v.isBlank()) {
                return dflt;
            }
            String t = v.trim().toLowerCase(java.util.Locale.ROOT);
            long mult = t.endsWith("k") ? 1024 : t.endsWith("m") ? 1024 * 1024 : t.endsWith("g") ? 1024L * 1024 * 1024 : 1;
            try {
                return Long.parseLong(mult == 1 ? t : t.substring(0, t.length() - 1)) * mult;
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(what + " must be an integer (suffixes k, m, g), got '" + v + "'");
            }
        }
    }

    /** The server embedded in the driver. */
    final class Embedded implements PsHandle {
        private final ParameterServer ps;

        Embedded(ParameterServer ps) {
            this.ps = ps;
        }

        @Override
        public long version() {
            return ps.version();
        }

        @Override
        public ColmConfig config() {
            return ps.config();
        }

        @Override
        public int grow(List<Integer> heads, boolean freeze, long timeoutMs) {
            return ps.grow(heads, freeze, null, timeoutMs);
        }

        @Override
        public Final snapshotFinal(LongFunction<Map<String, Object>> info, long timeoutMs) {
            TrainingState st = ps.copyState(timeoutMs);
            return new Final(st, ps.snapshot(info.apply(st.step()), timeoutMs));
        }

        @Override
        public String describe() {
            return "embedded parameter server on " + ps.context().channel();
        }

        @Override
        public Map<String, Object> metrics() {
            return ps.metrics().toMap();
        }

        @Override
        public void trainerInfo(Map<String, Object> info, long[] c) {
            if (c == null) {
                ps.trainerInfo(info, 0, 0, 0, 0, 0, 30_000); // no cursor: a zero step size keeps it out of snapshots
            } else {
                ps.trainerInfo(info, c[0], c[1], c[2], c[3], c[4], 30_000);
            }
        }

        @Override
        public void close() {
            ps.close();
        }
    }

    /**
     * A server started separately ({@code catena ps --conf F}), reached as an admin client (worker id -1).
     * Growth and snapshots are the client's admin calls. The version comes from the server's metrics
     * ({@code versions} published since it started) plus the offset learned at connect time (the version its
     * WELCOME reported), since the protocol has no cheaper version query; a server restarted during the job (restored
     * from a snapshot) is learnt again by {@link #awaitBack}. Thread-safe: the client is used under this object's lock.
     */
    final class Remote implements PsHandle {
        private static final Logger LOG = LoggerFactory.getLogger(Remote.class);
        /** version() asks the server at most this often (the driver's monitor polls it while a growth is due). */
        private static final long VERSION_TTL_NS = TimeUnit.MILLISECONDS.toNanos(20);
        private static final long ADMIN_TIMEOUT_MS = 10_000;

        private final ParameterServerClient client;
        private final String where;
        private final org.apache.hadoop.conf.Configuration hconf;
        private long versionOffset;
        private long cachedVersion;
        private long cachedAtNs;
        private volatile String lastSnapshot;

        private Remote(ParameterServerClient client, String where, org.apache.hadoop.conf.Configuration hconf) {
            this.client = client;
            this.where = where;
            this.hconf = hconf;
        }

        /**
         * Connects within the context's connect timeout. Every failure becomes an IllegalArgumentException that
         * names {@code where} (host:port), what was expected there and what to do.
         */
        static Remote connect(ParameterServerClient.Context cctx, String where, String jobName, long connectTimeoutMs,
                              org.apache.hadoop.conf.Configuration hconf) {
            ParameterServerClient c;
            try {
                c = ParameterServerClient.connect(cctx.workerId(-1).connectTimeoutMs(connectTimeoutMs));
            } catch (ParameterServerTimeoutException e) {
                boolean silent = String.valueOf(e.getMessage()).contains("never connected");
                throw new IllegalArgumentException("cannot reach the external parameter server at " + where + " (--ps-host/--ps-port): "
                        + (silent ? "nothing answered on that UDP port" : "something listens there but sent no WELCOME for job '"
                        + jobName + "'") + " within " + connectTimeoutMs + " ms. Expected a Catena parameter server started with "
                        + "`catena ps --conf <file>` whose catena.ps.channel is aeron:udp?endpoint=" + where + ", with catena.ps.job.name="
                        + jobName + " (--job-name) and the same secret (--ps-secret-file = its catena.ps.secret.file). Start the server "
                        + "first (e.g. bin/catena ps --conf cluster-conf/ps/ps.properties), check host, port and that UDP is not "
                        + "firewalled, or drop --ps-host/--ps-port to let the driver embed one. (" + e.getMessage() + ")", e);
            } catch (RequestRejectedException e) {
                throw new IllegalArgumentException("the external parameter server at " + where + " refused the driver: " + e.getMessage()
                        + ". Use its job name (--job-name, catena.ps.job.name) and make catena.ps.workers = --dp", e);
            } catch (ConfigurationException e) {
                throw new IllegalArgumentException("cannot connect to the external parameter server at " + where + ": " + e.getMessage()
                        + " (trainer options: --ps-secret-file for catena.ps.secret.file, --term-length for catena.ps.term.length, "
                        + "--job-name for catena.ps.job.name, or --ps-conf with the server's conf file)", e);
            } catch (ParameterServerException e) {
                throw new IllegalArgumentException("cannot connect to the external parameter server at " + where + ": " + e.getMessage(), e);
            }
            Remote r = new Remote(c, where, hconf);
            try {
                r.calibrate();
            } catch (RuntimeException e) {
                c.close();
                throw e;
            }
            return r;
        }

        /** The server's layout as of the last WELCOME (connect, growth). */
        synchronized io.catena.ps.ServerLayout layout() {
            return client.serverLayout();
        }

        private long published() {
            Object v = client.metrics(ADMIN_TIMEOUT_MS).get("versions");
            if (!(v instanceof Number n)) {
                throw new IllegalStateException("the parameter server at " + where + " reports no 'versions' metric; it must run the "
                        + "same Catena version as the trainer");
            }
            return n.longValue();
        }

        /** Learns version - versions_published from a WELCOME taken while no version was published (bounded retries). */
        private synchronized void calibrate() {
            for (int i = 0; i < 20; i++) {
                long before = published();
                refreshLayout();
                long v = client.serverLayout().version();
                if (published() == before) {
                    versionOffset = v - before;
                    cachedVersion = v;
                    cachedAtNs = System.nanoTime();
                    return;
                }
                Telemetry.sleep(10);
            }
            throw new IllegalStateException("the parameter server at " + where + " keeps publishing versions while this job starts: "
                    + "another job's workers are training on it; stop them or start a server for this job");
        }

        private void refreshLayout() {
            if (!client.reconnect()) {
                throw new ParameterServerTimeoutException("the external parameter server at " + where + " stopped answering");
            }
        }

        @Override
        public synchronized long version() {
            long now = System.nanoTime();
            if (now - cachedAtNs >= VERSION_TTL_NS) {
                cachedVersion = versionOffset + published();
                cachedAtNs = System.nanoTime();
            }
            return cachedVersion;
        }

        private synchronized long freshVersion() {
            cachedAtNs = System.nanoTime() - VERSION_TTL_NS;
            return version();
        }

        @Override
        public synchronized ColmConfig config() {
            return client.config();
        }

        @Override
        public synchronized int grow(List<Integer> heads, boolean freeze, long timeoutMs) {
            Map<String, Object> reply = client.grow(heads, freeze, null, timeoutMs);
            refreshLayout(); // the new model (and epoch) come with a WELCOME
            return ((Number) reply.get("epoch")).intValue();
        }

        @Override
        public synchronized Final snapshotFinal(LongFunction<Map<String, Object>> info, long timeoutMs) {
            long v = freshVersion();
            Map<String, Object> reply = client.snapshot(info.apply(v), timeoutMs);
            String dir = String.valueOf(reply.get("snapshot"));
            try {
                TrainingState st = new CheckpointStore(HadoopStorage.resolver(hconf)).load(dir, true);
                if (st.step() == v) {
                    return new Final(st, dir);
                }
                LOG.warn("the snapshot {} holds step {}, expected {}; using the parameters pulled from the server", dir, st.step(), v);
            } catch (RuntimeException e) {
                // the server may write to a file system the driver cannot read (e.g. its local disk)
                LOG.warn("cannot read the server's snapshot {} from the driver ({}); the result holds the parameters pulled from the "
                        + "server, without optimizer state", dir, e.getMessage());
            }
            return new Final(pullState(timeoutMs), dir);
        }

        /** The current parameters by an admin pull (no optimizer state). */
        private TrainingState pullState(long timeoutMs) {
            refreshLayout();
            for (int i = 0; i < 3; i++) {
                Params p = new Params(client.layout(), DataType.FLOAT);
                ParameterServerClient.PullResult r = client.pull(0, p, timeoutMs);
                if (!r.layoutChanged()) {
                    return new TrainingState(client.config(), p, null, null, r.version(), 0, 0, client.serverLayout().frozenChains(),
                            Map.of());
                }
            }
            throw new IllegalStateException("the model of the parameter server at " + where + " kept changing while the driver pulled it");
        }

        @Override
        public String describe() {
            return "external parameter server at " + where;
        }

        @Override
        public synchronized Map<String, Object> metrics() {
            Map<String, Object> m = client.metrics(ADMIN_TIMEOUT_MS);
            if (m.get("last_snapshot") instanceof String snap && !snap.isBlank()) {
                lastSnapshot = snap;
            }
            return m;
        }

        @Override
        public String lastSnapshot() {
            return lastSnapshot;
        }

        @Override
        public synchronized boolean answers(long timeoutMs) {
            try {
                client.metrics(timeoutMs);
                return true;
            } catch (ParameterServerException e) {
                return false;
            }
        }

        @Override
        public synchronized long versionIfRestarted() {
            long instance = client.serverLayout().serverInstance();
            try {
                if (!client.reconnect() || client.serverLayout().serverInstance() == instance) {
                    return -1;
                }
                calibrate();
                return cachedVersion;
            } catch (ParameterServerException e) {
                return -1;
            }
        }

        @Override
        public synchronized long awaitBack(long timeoutMs) {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            while (System.nanoTime() - deadline < 0) {
                try {
                    if (client.reconnect()) { // HELLO again: a restarted server answers with its (restored) layout
                        calibrate();
                        return cachedVersion;
                    }
                } catch (ParameterServerException | IllegalStateException e) {
                    LOG.debug("the parameter server at {} does not answer yet: {}", where, e.toString());
                }
                Telemetry.sleep(500);
            }
            return -1;
        }

        @Override
        public synchronized void trainerInfo(Map<String, Object> info, long[] c) {
            long[] k = c == null ? new long[5] : c;
            client.trainerInfo(info, k[0], k[1], k[2], k[3], k[4], ADMIN_TIMEOUT_MS);
        }

        @Override
        public synchronized void close() {
            client.close();
        }
    }
}
