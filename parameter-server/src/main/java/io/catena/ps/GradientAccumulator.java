package io.catena.ps;

import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.VectorKernels;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.FloatRange;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import io.catena.ps.protocol.RejectReason;
import java.util.Arrays;
import java.util.List;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Assembles the workers' pushes chunk by chunk, refuses non-finite gradients, sums the pushes of a step (BSP/SSP)
 * and applies the optimizer update when the step is complete, or at once with ASP (conductor thread only).
 */
final class GradientAccumulator {
    private static final long NONE = Long.MIN_VALUE;

    private final ServerModel model;
    private final ServerMetrics metrics;
    private final ResponseSender sender;
    private final SyncPolicy sync;
    private final boolean asp;
    private final int workerCount;
    /** Pipeline stages P; worker w runs stage w % P of replica w / P (ParameterServer.Context#pipeline). */
    private final int stages;
    /** Data-parallel replicas W / P: every parameter gets this many gradient contributions per step. */
    private final int replicas;
    /** Runs after each newly published version. */
    private final Runnable afterPublish;

    private final WorkerState[] workers;
    // one slot per step of the staleness window (none with ASP): the summed gradient and who pushed it
    private Params[] slots;
    private UnsafeBuffer[] slotViews;
    private long[] slotStep;
    private int[] slotCount;
    private boolean[][] slotHas;
    private long[][] slotBase;
    private long[][] slotArrival;

    /** The push a worker is sending, and the last one answered. */
    private static final class WorkerState {
        Params staging;
        UnsafeBuffer view;
        long correlation = NONE;
        long finishedCorrelation = NONE;
        long step;
        long base;
        int received;
        boolean[] seen;
        long lastAspStep;
    }

    GradientAccumulator(ParameterServer.Context ctx, ServerModel model, ServerMetrics metrics, ResponseSender sender,
                        Runnable afterPublish) {
        this.model = model;
        this.metrics = metrics;
        this.sender = sender;
        this.sync = ctx.sync;
        this.asp = sync.mode() == SyncPolicy.Mode.ASP;
        this.workerCount = ctx.workers;
        this.stages = ctx.pipelineStages;
        this.replicas = workerCount / stages;
        this.afterPublish = afterPublish;
        this.workers = new WorkerState[workerCount];
        for (int w = 0; w < workerCount; w++) {
            workers[w] = new WorkerState();
        }
        allocate();
    }

    /** Sizes the slots and the workers' staging buffers for the model's current layout; drops what they held. */
    private void allocate() {
        ParamLayout l = model.layout();
        int nSlots = asp ? 0 : sync.bound() + 1;
        slots = new Params[nSlots];
        slotViews = new UnsafeBuffer[nSlots];
        slotStep = new long[nSlots];
        slotCount = new int[nSlots];
        slotHas = new boolean[nSlots][workerCount];
        slotBase = new long[nSlots][workerCount];
        slotArrival = new long[nSlots][workerCount];
        for (int s = 0; s < nSlots; s++) {
            slots[s] = new Params(l, DataType.FLOAT);
            slotViews[s] = ParamsViews.view(slots[s]);
        }
        for (WorkerState ws : workers) {
            ws.staging = new Params(l, DataType.FLOAT);
            ws.view = ParamsViews.view(ws.staging);
            ws.correlation = NONE;
            ws.seen = new boolean[model.plan().chunks()];
        }
    }

    /** After the model grew: fresh buffers for the new layout; pushes of the old epoch are not answered as done. */
    void onModelGrown() {
        allocate();
        for (WorkerState ws : workers) {
            ws.finishedCorrelation = NONE;
            ws.lastAspStep = Math.max(ws.lastAspStep, model.version());
        }
    }

    /** A worker (re)connected: a push it had begun will not be continued. */
    void onWorkerConnected(int worker) {
        workers[worker].correlation = NONE;
    }

    /** Whether some workers pushed the next step and it is not published yet (never with ASP). */
    boolean nextStepInFlight() {
        if (asp) {
            return false;
        }
        long next = model.version() + 1;
        int sl = slot(next);
        return slotStep[sl] == next && slotCount[sl] > 0;
    }

    /** How many workers pushed the next step (0 with ASP). */
    int nextStepPushes() {
        return asp ? 0 : slotCount[slot(model.version() + 1)];
    }

    /** Counts the pushes held in the slots, which a growth drops. */
    void countDiscardedByGrowth() {
        for (int i = 0; i < slots.length; i++) {
            metrics.discardedOnGrowth.addAndGet(slotCount[i]);
        }
    }

    // ---- assembling a push --------------------------------------------------------------------

    /**
     * Where the authenticated-to-be PUSH chunk {@code rx} may be decrypted in place: its byte offset in the worker's
     * staging buffer ({@link #staging}), or -1 when it does not fit the push in progress (then it is opened into
     * scratch and {@link #onPush} names what is wrong). Changes nothing: the header is not authenticated yet.
     */
    int stagingOffset(ClientSession s, MessageHeader rx) {
        int w = rx.workerId();
        if (s.workerId < 0 || w != s.workerId) {
            return -1;
        }
        WorkerState ws = workers[w];
        ChunkPlan plan = model.plan();
        int idx = rx.chunkIndex();
        long corr = rx.correlationId();
        if (corr == ws.finishedCorrelation || rx.epoch() != model.epoch() || idx < 0 || idx >= plan.chunks()
                || rx.payloadLength() != plan.chunkLength(idx) * 4 || plan.chunkStage(idx) != model.stageOf(w)
                || (corr == ws.correlation && ws.seen[idx])) {
            return -1;
        }
        return (int) (plan.chunkOffset(idx) * 4);
    }

    /** Worker w's staging buffer (the push being assembled). */
    UnsafeBuffer staging(int w) {
        return workers[w].view;
    }

    /**
     * One authenticated PUSH frame ({@code rx} wraps it in {@code buffer}): a chunk of worker {@code s}'s gradient;
     * {@code inStaging}: its payload was already decrypted into the staging slot {@link #stagingOffset} named.
     */
    void onPush(ClientSession s, MessageHeader rx, DirectBuffer buffer, boolean inStaging) {
        int w = rx.workerId();
        long corr = rx.correlationId();
        if (s.workerId < 0 || w != s.workerId) {
            sender.reject(s, RejectReason.UNKNOWN_WORKER, corr, "session registered as worker " + s.workerId + " pushed as worker " + w);
            return;
        }
        WorkerState ws = workers[w];
        if (corr == ws.finishedCorrelation) {
            return; // the rest of a push that was already answered
        }
        int epoch = model.epoch();
        if (rx.epoch() != epoch) {
            failPush(ws, s, RejectReason.STALE_EPOCH, corr, "push of step " + rx.step() + " is for model epoch " + rx.epoch()
                    + ", the model is at epoch " + epoch + " (chains " + model.layout().config().chains()
                    + "); pull the new layout, rebuild and continue from version " + model.version());
            return;
        }
        if (corr != ws.correlation) {
            ws.correlation = corr;
            ws.step = rx.step();
            ws.base = rx.version();
            ws.received = 0;
            Arrays.fill(ws.seen, false);
        }
        int idx = rx.chunkIndex();
        int count = rx.chunkCount();
        int stage = model.stageOf(w);
        String bad = chunkProblem(rx, ws, w, stage);
        if (bad != null) {
            failPush(ws, s, RejectReason.BAD_CHUNK, corr, bad);
            return;
        }
        ChunkPlan plan = model.plan();
        int bytes = plan.chunkLength(idx) * 4;
        if (!inStaging) {
            ws.view.putBytes((int) (plan.chunkOffset(idx) * 4), buffer, rx.payloadOffset(), bytes);
        }
        ws.seen[idx] = true;
        if (stages > 1) {
            metrics.stagePushed(stage, bytes);
        }
        if (++ws.received == count) {
            ws.finishedCorrelation = corr;
            ws.correlation = NONE;
            completePush(w, ws, s, corr);
        }
    }

    /** Why chunk {@code rx} does not fit the plan or the push it continues, or null where it does. */
    private String chunkProblem(MessageHeader rx, WorkerState ws, int w, int stage) {
        ChunkPlan plan = model.plan();
        int epoch = model.epoch();
        int idx = rx.chunkIndex();
        int count = rx.chunkCount();
        if (count != plan.stageChunkCount(stage)) {
            return stages == 1 ? "push says " + count + " chunks, the epoch-" + epoch
                    + " plan has " + plan.chunks() + " chunks of at most " + plan.chunkFloats() + " floats (" + model.layout().size()
                    + " parameters)" : "stage " + stage + " (replica " + w / stages + ") pushed a gradient of " + count
                    + " chunks, expected the " + plan.stageChunkCount(stage) + " chunks of stage " + stage + " (of the epoch-" + epoch
                    + " plan's " + plan.chunks() + "; its parameter ranges " + plan.stageRanges(stage) + "); worker w pushes only "
                    + "stage w % " + stages + "'s chunks: check the worker id and pull the current layout";
        }
        if (idx < 0 || idx >= plan.chunks()) {
            return "chunk index " + idx + " outside [0, " + plan.chunks() + ")";
        }
        if (plan.chunkStage(idx) != stage) {
            return "stage " + stage + " (replica " + w / stages + ") pushed chunk " + idx
                    + " (floats [" + plan.chunkOffset(idx) + ", " + (plan.chunkOffset(idx) + plan.chunkLength(idx)) + ")), which belongs "
                    + "to stage " + plan.chunkStage(idx) + "; expected only the " + plan.stageChunkCount(stage) + " chunks of stage "
                    + stage + " (parameter ranges " + plan.stageRanges(stage) + "); nothing of this push was applied";
        }
        int expected = plan.chunkLength(idx) * 4;
        if (rx.payloadLength() != expected) {
            return "chunk " + idx + " carries " + rx.payloadLength() + " bytes, the plan says "
                    + expected + " (" + plan.chunkLength(idx) + " floats at offset " + plan.chunkOffset(idx) + ")";
        }
        if (rx.step() != ws.step || rx.version() != ws.base || ws.seen[idx]) {
            return ws.seen[idx] ? "chunk " + idx + " arrived twice"
                    : "chunk " + idx + " says step " + rx.step() + " base " + rx.version() + ", its push began with step " + ws.step
                    + " base " + ws.base;
        }
        return null;
    }

    private void failPush(WorkerState ws, ClientSession s, RejectReason reason, long corr, String detail) {
        ws.finishedCorrelation = corr;
        ws.correlation = NONE;
        sender.reject(s, reason, corr, "worker " + s.workerId + ": " + detail);
    }

    // ---- a complete push ----------------------------------------------------------------------

    private void completePush(int w, WorkerState ws, ClientSession s, long corr) {
        long step = ws.step;
        long version = model.version();
        boolean duplicate = asp ? step <= ws.lastAspStep
                : step <= version || (step <= version + 1 + sync.bound() && slotStep[slot(step)] == step && slotHas[slot(step)][w]);
        if (duplicate) {
            metrics.duplicates.incrementAndGet();
            sender.send(s, MessageType.PUSH_ACK, 1, corr, step, version, 0, 0, null, 0, 0);
            return;
        }
        if (step < 1 || (!asp && step > version + 1 + sync.bound())) {
            sender.reject(s, RejectReason.STEP_OUT_OF_WINDOW, corr, "worker " + w + " pushed step " + step + "; with " + sync
                    + " at version " + version + " the server accepts steps " + (version + 1) + ".." + (version + 1 + sync.bound())
                    + "; pull version >= " + sync.minVersionFor(step) + " first");
            return;
        }
        // only the worker's own stage ranges hold its gradient (all of the vector without a pipeline)
        List<FloatRange> own = model.plan().stageRanges(model.stageOf(w));
        int bad = -1;
        for (int r = 0; r < own.size() && bad < 0; r++) {
            bad = firstNonFinite(ws.staging, ws.view, (int) own.get(r).offset(), (int) own.get(r).end());
        }
        if (bad >= 0) {
            sender.reject(s, RejectReason.NON_FINITE, corr, "worker " + w + " step " + step + ": gradient element " + bad + " ("
                    + model.tensorAt(bad) + ") is " + ws.view.getFloat(bad * 4) + "; nothing was applied. Lower the learning rate or "
                    + "check the worker's data");
            return;
        }
        long now = System.nanoTime();
        metrics.pushesAccepted.incrementAndGet();
        boolean published;
        if (asp) {
            applyAsp(w, ws, now);
            published = true;
        } else {
            accumulate(w, ws, own, now);
            published = advance(); // first, so that the ack's version includes this push when it completed a step
        }
        sender.send(s, MessageType.PUSH_ACK, 0, corr, step, model.version(), 0, 0, null, 0, 0);
        if (published) {
            afterPublish.run(); // after the ack: this worker's pull can then join the answers to the waiting ones
        }
    }

    /** ASP: the push is a step of its own. */
    private void applyAsp(int w, WorkerState ws, long now) {
        ws.lastAspStep = ws.step;
        metrics.staleness(w, Math.max(0, model.version() - ws.base));
        metrics.recordUpdate(model.applyStep(ws.staging, 1));
        metrics.latency(System.nanoTime() - now);
        metrics.published(System.nanoTime());
    }

    /** BSP/SSP: adds the push to its step's slot. */
    private void accumulate(int w, WorkerState ws, List<FloatRange> own, long now) {
        int sl = slot(ws.step);
        if (slotStep[sl] != ws.step) {
            slotStep[sl] = ws.step;
        }
        for (FloatRange r : own) {
            add(slots[sl], slotViews[sl], ws.staging, ws.view, (int) r.offset(), (int) r.end());
        }
        slotHas[sl][w] = true;
        slotBase[sl][w] = ws.base;
        slotArrival[sl][w] = now;
        slotCount[sl]++;
    }

    private int slot(long step) {
        return (int) (step % (sync.bound() + 1));
    }

    /**
     * First non-finite element, or -1. Fast path: a vectorized sum of squares is finite exactly when every
     * element is finite (squares are >= 0, so no inf - inf), unless a finite element above ~1e19 overflows it;
     * only then is the vector scanned element by element.
     */
    private static int firstNonFinite(Params p, UnsafeBuffer b, int from, int to) {
        if (p.buf() instanceof Buf.F32 f && Double.isFinite(VectorKernels.sumSquares(f.bytes(), from, to))) {
            return -1;
        }
        for (int i = from; i < to; i++) {
            if (!Float.isFinite(b.getFloat(i * 4))) {
                return i;
            }
        }
        return -1;
    }

    /** acc[from, to) += g[from, to). */
    private static void add(Params accParams, UnsafeBuffer acc, Params gParams, UnsafeBuffer g, int from, int to) {
        if (accParams.buf() instanceof Buf.F32 a && gParams.buf() instanceof Buf.F32 b) {
            VectorKernels.add(a.bytes(), from, b.bytes(), from, a.bytes(), from, to - from); // chain-model's Vector API kernel
            return;
        }
        for (int i = from, o = from * 4; i < to; i++, o += 4) {
            acc.putFloat(o, acc.getFloat(o) + g.getFloat(o));
        }
    }

    /** Publishes every complete step in order (BSP/SSP); whether it published one (the caller runs afterPublish). */
    private boolean advance() {
        boolean published = false;
        while (true) {
            long step = model.version() + 1;
            int sl = slot(step);
            if (slotStep[sl] != step || slotCount[sl] < workerCount) {
                break; // every worker (all replicas of all stages) must have pushed the step
            }
            metrics.recordUpdate(model.applyStep(slots[sl], replicas)); // each element got one contribution per replica
            long now = System.nanoTime();
            for (int w = 0; w < workerCount; w++) {
                metrics.staleness(w, Math.max(0, step - 1 - slotBase[sl][w]));
                metrics.latency(now - slotArrival[sl][w]);
            }
            clearSlot(sl);
            metrics.published(now);
            published = true;
        }
        return published;
    }

    private void clearSlot(int sl) {
        slots[sl].zero();
        slotCount[sl] = 0;
        slotStep[sl] = 0;
        Arrays.fill(slotHas[sl], false);
    }
}
