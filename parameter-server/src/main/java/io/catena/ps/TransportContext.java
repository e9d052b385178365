package io.catena.ps;

import io.catena.ps.protocol.KeySchedule;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

/**
 * The settings the parameter server and its clients share (job, secret, Aeron directory and driver, term length, the
 * server's channel and stream, UDP parameters, idle strategy), their defaults from {@link Configuration} and their checks.
 * {@link ParameterServer.Context} and {@link ParameterServerClient.Context} extend it with their own settings only; a
 * client context built from a server's ({@link ParameterServerClient.Context#Context(TransportContext)}) takes these
 * through {@link #TransportContext(TransportContext)}, the one place that copies them.
 *
 * @param <C> the concrete context, so that the shared setters chain
 */
public abstract class TransportContext<C extends TransportContext<C>> {
    /** Where the defaults came from (then system properties, then {@link Configuration}'s defaults); may be null. */
    final Properties props;
    String jobName;
    byte[] secret;
    String secretFile;
    String aeronDirectoryName;
    boolean embeddedDriver;
    int termLength;
    String channel;
    int streamId;
    String udpChannelParams;
    String idleStrategy;
    /** Derived from the job name by {@link #concludeTransport}. */
    long jobId;

    /** Defaults from {@code p} (then system properties, then {@link Configuration}'s defaults). */
    TransportContext(Properties p) {
        this.props = p;
        jobName = Configuration.get(p, Configuration.JOB_NAME_PROP, Configuration.JOB_NAME_DEFAULT);
        String s = Configuration.get(p, Configuration.SECRET_PROP, null);
        secret = s == null ? null : s.getBytes(StandardCharsets.UTF_8);
        secretFile = Configuration.get(p, Configuration.SECRET_FILE_PROP, null);
        aeronDirectoryName = Configuration.get(p, Configuration.AERON_DIR_PROP, Configuration.AERON_DIR_DEFAULT);
        embeddedDriver = Configuration.getBoolean(p, Configuration.EMBEDDED_DRIVER_PROP, Configuration.EMBEDDED_DRIVER_DEFAULT);
        termLength = Configuration.getInt(p, Configuration.TERM_LENGTH_PROP, Configuration.TERM_LENGTH_DEFAULT);
        channel = Configuration.get(p, Configuration.CHANNEL_PROP, Configuration.CHANNEL_DEFAULT);
        streamId = Configuration.getInt(p, Configuration.STREAM_ID_PROP, Configuration.STREAM_ID_DEFAULT);
        udpChannelParams = Configuration.get(p, Configuration.UDP_CHANNEL_PARAMS_PROP, Configuration.UDP_CHANNEL_PARAMS_DEFAULT);
        idleStrategy = Configuration.get(p, Configuration.IDLE_STRATEGY_PROP, Configuration.IDLE_STRATEGY_DEFAULT);
    }

    /** The shared settings of {@code other} (its properties too, so the subclass's own defaults come from the same place). */
    TransportContext(TransportContext<?> other) {
        this.props = other.props;
        jobName = other.jobName;
        secret = other.secret == null ? null : other.secret.clone();
        secretFile = other.secretFile;
        aeronDirectoryName = other.aeronDirectoryName;
        embeddedDriver = other.embeddedDriver;
        termLength = other.termLength;
        channel = other.channel;
        streamId = other.streamId;
        udpChannelParams = other.udpChannelParams;
        idleStrategy = other.idleStrategy;
    }

    @SuppressWarnings("unchecked")
    private C self() {
        return (C) this;
    }

    public C jobName(String v) { jobName = v; return self(); }
    /** The per-job secret (at least 16 bytes); prefer {@link #secretFile(String)}. */
    public C secret(byte[] v) { secret = v == null ? null : v.clone(); return self(); }
    public C secretFile(String v) { secretFile = v; return self(); }
    public C aeronDirectoryName(String v) { aeronDirectoryName = v; return self(); }
    public C embeddedDriver(boolean v) { embeddedDriver = v; return self(); }
    public C termLength(int v) { termLength = v; return self(); }
    /** The channel the server listens on and clients send their requests to. */
    public C channel(String v) { channel = v; return self(); }
    /** The stream id of requests to the server. */
    public C streamId(int v) { streamId = v; return self(); }
    public C udpChannelParams(String v) { udpChannelParams = v; return self(); }
    public C idleStrategy(String v) { idleStrategy = v; return self(); }

    public String jobName() { return jobName; }
    public String aeronDirectoryName() { return aeronDirectoryName; }
    public String channel() { return channel; }
    public int streamId() { return streamId; }
    public int termLength() { return termLength; }
    /** The job id every frame carries; set by {@code conclude()}. */
    public long jobId() { return jobId; }

    /**
     * Checks the shared settings (naming the bad one), resolves the secret and derives the job id; {@code publications}
     * is how many publications this side may open in an embedded driver it starts (for the Aeron directory's space check).
     */
    void concludeTransport(int publications) {
        if (jobName == null || jobName.isBlank()) {
            throw new ConfigurationException(Configuration.JOB_NAME_PROP, "a job name", jobName,
                    "name the training job (server and clients use the same)");
        }
        jobId = KeySchedule.jobId(jobName);
        secret = Configuration.resolveSecret(secret, secretFile);
        Transport.checkTermLength(termLength, Configuration.TERM_LENGTH_PROP);
        if (channel == null || !(channel.startsWith("aeron:ipc") || channel.startsWith("aeron:udp?endpoint="))) {
            throw new ConfigurationException(Configuration.CHANNEL_PROP, "aeron:ipc or aeron:udp?endpoint=host:port of the server",
                    channel, "set the channel the server listens on");
        }
        if (streamId == 0) {
            throw new ConfigurationException(Configuration.STREAM_ID_PROP, "a non-zero stream id", streamId, "pick e.g. 1001");
        }
        Transport.idleStrategy(idleStrategy, Configuration.IDLE_STRATEGY_PROP);
        if (embeddedDriver && !SharedDriver.running(aeronDirectoryName)) {
            Transport.checkAeronDir(aeronDirectoryName, termLength, publications, Configuration.AERON_DIR_PROP,
                    Configuration.TERM_LENGTH_PROP);
        } else if (!embeddedDriver && !Files.isDirectory(Path.of(aeronDirectoryName))) {
            throw new ConfigurationException(Configuration.AERON_DIR_PROP, "the directory of a running MediaDriver because "
                    + Configuration.EMBEDDED_DRIVER_PROP + "=false", aeronDirectoryName, "start the driver or set "
                    + Configuration.EMBEDDED_DRIVER_PROP + "=true");
        }
    }
}
