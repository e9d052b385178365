package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.io.CheckpointStore;
import io.catena.model.io.TrainingState;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.RejectReason;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.agrona.DirectBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes snapshots of the training state with {@link CheckpointStore}: on request, every
 * {@code snapshotInterval} versions and at close. The state is copied on the conductor thread and written on a
 * thread of its own, one snapshot at a time; the outcome comes back through the conductor's completions.
 */
final class SnapshotWriter {
    // the conductor's log name: cluster-conf/log4j2.properties sets the server's level by it
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ParameterServer.Context ctx;
    private final ServerModel model;
    private final ServerMetrics metrics;
    private final ResponseSender sender;
    private final Queue<Runnable> completions;
    private final CheckpointStore store;
    private final ExecutorService snapshotExecutor;
    private boolean snapshotInFlight;
    private long lastSnapshotVersion;
    /** Requested snapshots that came while one was written; each starts (of the then current version) when it is done. */
    private final java.util.ArrayDeque<Runnable> waiting = new java.util.ArrayDeque<>();
    /** What the trainer registered (TRAINER_INFO): facts for every snapshot and the data cursor; null before it did. */
    private Map<String, Object> trainerTemplate = Map.of();
    private TrainerCursor cursor;

    /**
     * The trainer's data cursor: at {@code step} it had read {@code dataPosition} windows (all workers together) and
     * {@code tokensSeen} tokens, and every step reads {@code windowsPerStep} windows of {@code tokensPerStep} tokens, so
     * the cursor of any later version is known here, and every snapshot (interval, requested, at close) carries it.
     */
    record TrainerCursor(long step, long dataPosition, long tokensSeen, long windowsPerStep, long tokensPerStep) {
        long dataPositionAt(long version) {
            return dataPosition + (version - step) * windowsPerStep;
        }

        long tokensAt(long version) {
            return tokensSeen + (version - step) * tokensPerStep;
        }
    }

    /** {@code completions}: the conductor's queue of work handed back to its thread. */
    SnapshotWriter(ParameterServer.Context ctx, ServerModel model, ServerMetrics metrics, ResponseSender sender,
                   Queue<Runnable> completions) {
        this.ctx = ctx;
        this.model = model;
        this.metrics = metrics;
        this.sender = sender;
        this.completions = completions;
        this.store = new CheckpointStore(io.catena.model.io.storage.HadoopStorage.resolver(ctx.hadoopConf != null ? ctx.hadoopConf : new org.apache.hadoop.conf.Configuration()));
        this.lastSnapshotVersion = model.version();
        this.snapshotExecutor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "catena-ps-snapshot");
            t.setDaemon(true);
            return t;
        });
    }

    void requestSnapshot(Map<String, Object> trainerInfo, CompletableFuture<String> future) {
        if (ctx.snapshotUri == null) {
            future.completeExceptionally(new ConfigurationException(Configuration.SNAPSHOT_URI_PROP, "a checkpoint root URI for "
                    + "snapshots", null, "set it on the server"));
            return;
        }
        if (snapshotInFlight) {
            // e.g. the trainer's final snapshot while an interval one is written: it waits its turn (it used to fail BUSY)
            waiting.add(() -> startSnapshot(trainerInfo, future));
            return;
        }
        startSnapshot(trainerInfo, future);
    }

    /** A SNAPSHOT request from a client ({@code rx} wraps it in {@code buffer}): optional JSON trainer info. */
    @SuppressWarnings("unchecked")
    void onSnapshotRequest(ClientSession s, MessageHeader rx, DirectBuffer buffer) {
        long corr = rx.correlationId();
        Map<String, Object> info = Map.of();
        if (rx.payloadLength() > 0) {
            try {
                info = JSON.readValue(rx.payloadBytes(), Map.class);
            } catch (Exception e) {
                sender.reject(s, RejectReason.BAD_REQUEST, corr, "SNAPSHOT payload is not JSON: " + e.getMessage());
                return;
            }
        }
        requestSnapshot(info, sender.adminReply(s, corr, (String uri) -> Map.of("snapshot", uri, "version", model.version(),
                "epoch", model.epoch())));
    }

    /** Registers what every later snapshot carries (the trainer's info and, when given, its data cursor). */
    void setTrainerInfo(Map<String, Object> info, TrainerCursor cursor) {
        this.trainerTemplate = new java.util.LinkedHashMap<>(info);
        this.cursor = cursor != null && cursor.windowsPerStep() > 0 ? cursor : null; // zero step size: no cursor
    }

    /** A TRAINER_INFO request from the trainer: JSON {info, cursor}. */
    @SuppressWarnings("unchecked")
    void onTrainerInfo(ClientSession s, MessageHeader rx, DirectBuffer buffer) {
        long corr = rx.correlationId();
        try {
            Map<String, Object> req = JSON.readValue(rx.payloadBytes(), Map.class);
            Map<String, Object> info = req.get("info") instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
            Map<String, Object> c = req.get("cursor") instanceof Map<?, ?> m ? (Map<String, Object>) m : null;
            setTrainerInfo(info, c == null ? null : new TrainerCursor(num(c, "step"), num(c, "data_position"), num(c, "tokens_seen"),
                    num(c, "windows_per_step"), num(c, "tokens_per_step")));
        } catch (Exception e) {
            sender.reject(s, RejectReason.BAD_REQUEST, corr, "TRAINER_INFO payload must be JSON {info, cursor}: " + e.getMessage());
            return;
        }
        sender.sendJson(s, io.catena.ps.protocol.MessageType.ADMIN_REPLY, corr, Map.of("ok", true, "version", model.version()));
    }

    private static long num(Map<String, Object> m, String key) {
        if (!(m.get(key) instanceof Number n)) {
            throw new IllegalArgumentException("cursor." + key + " must be a number, got " + m.get(key));
        }
        return n.longValue();
    }

    /** The info of a snapshot of version {@code v}: the trainer's template, its cursor at v, then what the request gave. */
    private Map<String, Object> infoFor(long v, Map<String, Object> requested) {
        Map<String, Object> info = new java.util.LinkedHashMap<>(trainerTemplate);
        if (cursor != null) {
            info.put("tokens_seen", cursor.tokensAt(v));
            info.put("data_position", cursor.dataPositionAt(v));
        }
        info.putAll(requested);
        return info;
    }

    /** Starts the periodic snapshot when due; one that comes due while another is written starts when that one ends. */
    void periodicSnapshot() {
        if (ctx.snapshotInterval > 0 && model.version() - lastSnapshotVersion >= ctx.snapshotInterval) {
            if (snapshotInFlight) {
                metrics.snapshotsSkipped.incrementAndGet();
            } else {
                lastSnapshotVersion = model.version();
                startSnapshot(Map.of(), null);
            }
        }
    }

    private void startSnapshot(Map<String, Object> trainerInfo, CompletableFuture<String> future) {
        TrainingState st = model.copyState(infoFor(model.version(), trainerInfo));
        snapshotInFlight = true;
        long v = model.version();
        snapshotExecutor.execute(() -> {
            String uri = null;
            Throwable err = null;
            try {
                uri = store.save(ctx.snapshotUri, st);
            } catch (Throwable t) {
                err = t;
            }
            String u = uri;
            Throwable e = err;
            completions.add(() -> finished(v, st, u, e, future));
        });
    }

    /** On the conductor thread: the outcome of the snapshot of version {@code v}; {@code e} null: written to {@code uri}. */
    private void finished(long v, TrainingState st, String uri, Throwable e, CompletableFuture<String> future) {
        snapshotInFlight = false;
        Runnable next = waiting.poll();
        completions.add(next != null ? next : this::periodicSnapshot);
        if (e == null) {
            metrics.snapshots.incrementAndGet();
            metrics.lastSnapshot.set(uri);
            LOG.info("snapshot of version {} (epoch {}) written to {}", v, st.info().get("ps_epoch"), uri);
            if (future != null) {
                future.complete(uri);
            }
        } else {
            metrics.snapshotFailures.incrementAndGet();
            LOG.error("snapshot of version {} to {} failed: {}", v, ctx.snapshotUri, e.getMessage(), e);
            if (future != null) {
                future.completeExceptionally(new ParameterServerException("snapshot of version " + v + " to "
                        + ctx.snapshotUri + " failed: " + e.getMessage(), e));
            }
        }
    }

    /** At close, with {@code snapshotOnClose}: writes the final state on the calling thread. */
    void writeFinalSnapshot() {
        if (ctx.snapshotOnClose && ctx.snapshotUri != null) {
            try {
                String uri = store.save(ctx.snapshotUri, model.copyState(infoFor(model.version(), Map.of())));
                metrics.snapshots.incrementAndGet();
                metrics.lastSnapshot.set(uri);
                LOG.info("final snapshot of version {} written to {}", model.version(), uri);
            } catch (RuntimeException e) {
                LOG.error("final snapshot to {} failed: {}", ctx.snapshotUri, e.getMessage(), e);
            }
        }
    }

    void shutdown() {
        snapshotExecutor.shutdown();
        try {
            if (!snapshotExecutor.awaitTermination(60, TimeUnit.SECONDS)) {
                LOG.warn("a snapshot was still being written after 60 s at shutdown; it may be incomplete (it is never marked latest)");
                snapshotExecutor.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
