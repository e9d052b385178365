package io.catena.ps;

import io.aeron.Aeron;
import io.aeron.FragmentAssembler;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.logbuffer.Header;
import io.catena.model.ParamLayout;
import io.catena.model.io.TrainingState;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.Framer;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import io.catena.ps.protocol.TrafficKey;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Consumer;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.Agent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's only thread of control (an Agrona agent), a dispatcher: it opens (authenticates, checks for replay,
 * decrypts) every frame and hands it to its one home: handshakes and sessions to {@link ClientSessions}, pushes to the
 * {@link GradientAccumulator} (which applies AdamW per shard to the {@link ServerModel}), pulls to the
 * {@link PullServer}, growth to {@link ChainGrowth}, snapshots and trainer info to the {@link SnapshotWriter}. Nothing
 * here is touched by another thread except through {@link #submit} and the metrics.
 */
final class ServerConductor implements Agent {
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);

    private final ParameterServer.Context ctx;
    private final Aeron aeron;
    private final Subscription subscription;
    /** aeron:ipc on the same stream for clients sharing this media driver ({@link Configuration#ALSO_IPC_PROP}), or null. */
    private final Subscription ipcSubscription;
    private final FragmentAssembler assembler;
    private final FragmentAssembler ipcAssembler;
    private final Framer framer;
    private final byte[] broadcastNonce = KeySchedule.randomNonce();
    private final ServerMetrics metrics;
    private final Queue<Consumer<ServerConductor>> commands = new ConcurrentLinkedQueue<>();
    private final Queue<Runnable> completions = new ConcurrentLinkedQueue<>();
    private final Queue<Integer> lostImages = new ConcurrentLinkedQueue<>();

    private final ServerModel model;
    private final ResponseSender sender;
    private final GradientAccumulator accumulator;
    private final PullServer pulls;
    private final ChainGrowth growth;
    private final SnapshotWriter snapshots;

    private final ClientSessions sessions;

    // receive scratch
    private final MessageHeader rx = new MessageHeader();

    ServerConductor(ParameterServer.Context ctx, Aeron aeron) {
        this.ctx = ctx;
        this.aeron = aeron;
        this.framer = new Framer(KeySchedule.handshakeKey(ctx.secret));
        this.metrics = new ServerMetrics(ctx.pipelineStages);
        this.model = new ServerModel(ctx);
        this.sender = new ResponseSender(ctx, framer, metrics, model, completions);
        TrafficKey broadcast = KeySchedule.broadcast(ctx.secret, ctx.jobId, broadcastNonce, ctx.rekeyShift)
                .traffic(KeySchedule.Direction.BROADCAST);
        this.accumulator = new GradientAccumulator(ctx, model, metrics, sender, this::afterPublish);
        this.pulls = new PullServer(ctx, model, sender, metrics, framer, new SealedParams(broadcast));
        model.beforeParamsChange(pulls::finishAnswers);
        this.growth = new ChainGrowth(ctx, model, accumulator, pulls, sender);
        this.snapshots = new SnapshotWriter(ctx, model, metrics, sender, completions);
        this.sessions = new ClientSessions(ctx, aeron, metrics, sender, model, accumulator, pulls, broadcastNonce);
        String channel = Transport.udpParams(ctx.channel, ctx.udpChannelParams);
        this.subscription = aeron.addSubscription(channel, ctx.streamId, img -> { }, this::onImageLost);
        this.assembler = new FragmentAssembler(this::onMessage);
        this.ipcSubscription = ctx.alsoIpc && !ctx.channel.startsWith("aeron:ipc")
                ? aeron.addSubscription("aeron:ipc", ctx.streamId, img -> { }, this::onImageLost) : null;
        this.ipcAssembler = ipcSubscription != null ? new FragmentAssembler(this::onMessage) : null;
    }

    ParamLayout layout() {
        return model.layout();
    }

    ChunkPlan plan() {
        return model.plan();
    }

    long version() {
        return model.version();
    }

    int epoch() {
        return model.epoch();
    }

    ServerMetrics metrics() {
        return metrics;
    }

    void submit(Consumer<ServerConductor> command) {
        commands.add(command);
    }

    void requestGrow(List<Integer> added, boolean freezeOld, long seed, List<Double> weights,
                     CompletableFuture<Map<String, Object>> future) {
        growth.requestGrow(added, freezeOld, seed, weights, future);
    }

    void setTrainerInfo(Map<String, Object> info, SnapshotWriter.TrainerCursor cursor) {
        snapshots.setTrainerInfo(info, cursor);
    }

    void requestSnapshot(Map<String, Object> trainerInfo, CompletableFuture<String> future) {
        snapshots.requestSnapshot(trainerInfo, future);
    }

    TrainingState copyState(Map<String, Object> trainerInfo) {
        return model.copyState(trainerInfo);
    }

    @Override
    public String roleName() {
        return "catena-ps-conductor";
    }

    @Override
    public int doWork() {
        int work = 0;
        Consumer<ServerConductor> c;
        while ((c = commands.poll()) != null) {
            try {
                c.accept(this);
            } catch (RuntimeException e) {
                LOG.error("parameter server command failed", e);
            }
            work++;
        }
        Runnable r;
        while ((r = completions.poll()) != null) {
            r.run();
            work++;
        }
        Integer lost;
        while ((lost = lostImages.poll()) != null) {
            sessions.onImageLost(lost);
            work++;
        }
        work += subscription.poll(assembler, 16);
        if (ipcSubscription != null) {
            work += ipcSubscription.poll(ipcAssembler, 16);
        }
        work += sessions.poll();
        work += pulls.doWork();
        long now = System.nanoTime();
        work += pulls.expire(now);
        work += growth.expire(now);
        return work;
    }

    @Override
    public void onClose() {
        snapshots.writeFinalSnapshot();
        growth.close();
        sessions.close();
        subscription.close();
        if (ipcSubscription != null) {
            ipcSubscription.close();
        }
    }

    void shutdownSnapshots() {
        snapshots.shutdown();
    }

    private void onImageLost(Image image) {
        lostImages.add(image.sessionId());
    }

    /** After each newly published version: a waiting growth, the pulls that waited for it, a due snapshot. */
    private void afterPublish() {
        growth.tryGrow();
        pulls.servePendingPulls();
        snapshots.periodicSnapshot();
    }

    // ---- receiving ----------------------------------------------------------------------------

    private void onMessage(DirectBuffer buffer, int offset, int length, Header header) {
        metrics.messagesIn.incrementAndGet();
        metrics.bytesIn.addAndGet(length);
        ClientSession s = sessions.get(header.sessionId());
        rx.wrap(buffer, offset);
        long corr = length >= MessageHeader.LENGTH ? rx.correlationId() : 0;
        if (length > ctx.maxMessageLength) {
            sender.reject(s, RejectReason.OVERSIZED, corr, "message of " + length + " bytes, this server accepts at most "
                    + ctx.maxMessageLength + " (chunk " + ctx.chunkFloats * 4 + " bytes + " + MessageHeader.OVERHEAD + ")");
            return;
        }
        String bad = rx.validate(length);
        if (bad != null) {
            sender.reject(s, RejectReason.MALFORMED, corr, bad);
            return;
        }
        MessageType type = rx.type();
        int kind = rx.keyKind();
        if (kind == MessageHeader.KEY_HANDSHAKE) {
            if (type != MessageType.HELLO) {
                sender.reject(s, RejectReason.MALFORMED, corr, type + " under the handshake key; only HELLO travels without a session");
            } else if (framer.verifyHandshake(buffer, offset, length) != Framer.Result.OK) {
                sender.reject(null, RejectReason.HANDSHAKE_FAILED, corr, "HELLO of worker " + rx.workerId() + " on Aeron session "
                        + header.sessionId() + " does not verify under the handshake key derived from this job's secret: the client "
                        + "uses another secret; give it the job's secret (" + Configuration.SECRET_FILE_PROP + ")");
            } else {
                sessions.onHello(rx, buffer, header.sessionId());
            }
            return;
        }
        if (kind != MessageHeader.KEY_SESSION) {
            sender.reject(s, RejectReason.MALFORMED, corr, "a client sent a " + type + " under the broadcast key, which only the "
                    + "server seals with");
            return;
        }
        if (s == null || s.c2s == null) {
            sender.reject(null, RejectReason.UNKNOWN_SESSION, corr, "no HELLO on Aeron session " + header.sessionId());
            return;
        }
        DirectBuffer frame;
        boolean inStaging = false;
        Framer.Result opened;
        int at = s.established && type == MessageType.PUSH ? accumulator.stagingOffset(s, rx) : -1;
        if (at >= 0) { // decrypt the gradient chunk straight into its slot of the worker's staging buffer
            opened = framer.open(s.c2s, buffer, offset, length, accumulator.staging(s.workerId), at);
            inStaging = true;
            frame = buffer;
        } else {
            opened = framer.open(s.c2s, buffer, offset, length);
            frame = framer.opened();
            if (opened == Framer.Result.OK) {
                rx.wrap(frame, 0);
            }
        }
        if (opened == Framer.Result.BAD_TAG) {
            if (s.established) {
                sender.reject(s, RejectReason.BAD_TAG, corr, "AES-GCM tag of a " + type + " frame (sequence " + rx.sequence()
                        + ") does not verify under session " + header.sessionId() + "'s key: the frame was modified or forged; "
                        + "nothing was done");
            } else {
                sessions.failHandshake(s, corr, "the " + type + " frame does not verify under the session key derived from the job secret and "
                        + "the handshake's nonces: the client uses another secret (" + Configuration.SECRET_FILE_PROP + ")");
            }
            return;
        }
        if (opened == Framer.Result.REPLAY) {
            sender.reject(s, RejectReason.REPLAY, corr, "a " + type + " frame with sequence " + rx.sequence() + " on session "
                    + header.sessionId() + ", which has accepted up to " + s.c2s.window().highest() + (s.c2s.window()
                    .isTooOld(rx.sequence()) ? " (older than the replay window of " + io.catena.ps.protocol.ReplayWindow.SIZE
                    + " frames)" : " (accepted before)") + ": a replayed frame; nothing was done");
            return;
        }
        if (!s.established) {
            if (type != MessageType.PROOF) {
                sender.reject(s, RejectReason.UNKNOWN_SESSION, corr, "the handshake of session " + header.sessionId()
                        + " is not complete: expected PROOF, got " + type);
            } else {
                sessions.onProof(s, rx, frame);
            }
            return;
        }
        if (rx.jobId() != ctx.jobId) {
            sender.reject(s, RejectReason.UNKNOWN_JOB, corr, "message for job id " + rx.jobId() + ", this server serves job '"
                    + ctx.jobName + "' (id " + ctx.jobId + ")");
            return;
        }
        switch (type) {
            case PUSH -> accumulator.onPush(s, rx, frame, inStaging);
            case PULL -> pulls.onPull(s, rx);
            case GROW -> growth.onGrowRequest(s, rx, frame);
            case SNAPSHOT -> snapshots.onSnapshotRequest(s, rx, frame);
            case METRICS -> sender.sendJson(s, MessageType.ADMIN_REPLY, corr, metrics.toMap());
            case TRAINER_INFO -> snapshots.onTrainerInfo(s, rx, frame);
            default -> sender.reject(s, RejectReason.MALFORMED, corr, type + " is not a request a server accepts");
        }
    }

}
