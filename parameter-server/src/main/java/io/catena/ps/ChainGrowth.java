package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.RejectReason;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.agrona.DirectBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Grows the model by chains between two versions: a request waits until no step is half pushed, then the model
 * moves to the next epoch (conductor thread only).
 */
final class ChainGrowth {
    // the conductor's log name: cluster-conf/log4j2.properties sets the server's level by it
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ParameterServer.Context ctx;
    private final ServerModel model;
    private final GradientAccumulator accumulator;
    private final PullServer pulls;
    private final ResponseSender sender;
    private PendingGrow pendingGrow;

    private record PendingGrow(List<Integer> added, boolean freezeOld, long seed, List<Double> weights, long deadlineNs,
                               CompletableFuture<Map<String, Object>> future) {
    }

    ChainGrowth(ParameterServer.Context ctx, ServerModel model, GradientAccumulator accumulator, PullServer pulls,
                ResponseSender sender) {
        this.ctx = ctx;
        this.model = model;
        this.accumulator = accumulator;
        this.pulls = pulls;
        this.sender = sender;
    }

    void requestGrow(List<Integer> added, boolean freezeOld, long seed, List<Double> weights,
                     CompletableFuture<Map<String, Object>> future) {
        if (pendingGrow != null) {
            future.completeExceptionally(new RequestRejectedException(RejectReason.BUSY, "a growth by " + pendingGrow.added
                    + " is already waiting for the in-flight step"));
            return;
        }
        try {
            model.layout().config().withAppendedChains(added, weights); // validate now, before waiting
        } catch (RuntimeException e) {
            future.completeExceptionally(new RequestRejectedException(RejectReason.BAD_REQUEST, "cannot grow chains "
                    + model.layout().config().chains() + " by " + added + ": " + e.getMessage()));
            return;
        }
        pendingGrow = new PendingGrow(List.copyOf(added), freezeOld, seed, weights == null ? null : List.copyOf(weights),
                System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ctx.growTimeoutMs), future);
        tryGrow();
        pulls.servePendingPulls();
    }

    /** Grows the model if a growth is waiting and no step is in flight. */
    void tryGrow() {
        if (pendingGrow == null) {
            return;
        }
        if (accumulator.nextStepInFlight()) {
            return; // finish the in-flight step first
        }
        accumulator.countDiscardedByGrowth();
        PendingGrow g = pendingGrow;
        pendingGrow = null;
        try {
            model.grow(g.added, g.freezeOld, g.weights, g.seed);
            accumulator.onModelGrown();
            Map<String, Object> reply = new LinkedHashMap<>();
            reply.put("epoch", model.epoch());
            reply.put("version", model.version());
            reply.put("chains", model.layout().config().chains());
            reply.put("frozen_chains", model.frozenChains());
            reply.put("parameters", model.layout().size());
            LOG.info("grew the model by chains {} at version {}: now chains {}, {} parameters, epoch {}, frozen chains {}",
                    g.added, model.version(), model.layout().config().chains(), model.layout().size(), model.epoch(),
                    model.frozenChains());
            g.future.complete(reply);
        } catch (RuntimeException e) {
            g.future.completeExceptionally(new ParameterServerException("growth by " + g.added + " failed: " + e.getMessage()
                    + "; the model was not changed", e));
        }
    }

    /** Fails a growth that waited past its timeout for the in-flight step; returns 1 if one did. */
    int expire(long now) {
        if (pendingGrow == null || now - pendingGrow.deadlineNs <= 0) {
            return 0;
        }
        long next = model.version() + 1;
        pendingGrow.future.completeExceptionally(new ParameterServerTimeoutException("growth by " + pendingGrow.added
                + " waited " + ctx.growTimeoutMs + " ms for the in-flight step " + next + " (" + accumulator.nextStepPushes()
                + " of " + ctx.workers + " workers pushed); the model was not changed. Make sure all workers are running, or raise "
                + Configuration.GROW_TIMEOUT_PROP));
        pendingGrow = null;
        return 1;
    }

    /** The server closes: a waiting growth fails. */
    void close() {
        if (pendingGrow != null) {
            pendingGrow.future.completeExceptionally(new ParameterServerException("server closed before the growth happened"));
        }
    }

    /** A GROW request from an admin client ({@code rx} wraps it in {@code buffer}): JSON {"added": [heads...], ...}. */
    @SuppressWarnings("unchecked")
    void onGrowRequest(ClientSession s, MessageHeader rx, DirectBuffer buffer) {
        long corr = rx.correlationId();
        Map<String, Object> req;
        try {
            req = JSON.readValue(rx.payloadBytes(), Map.class);
        } catch (Exception e) {
            sender.reject(s, RejectReason.BAD_REQUEST, corr, "GROW payload is not JSON: " + e.getMessage());
            return;
        }
        List<Integer> added = new ArrayList<>();
        List<Double> weights = null;
        try {
            for (Object o : (List<Object>) req.get("added")) {
                added.add(((Number) o).intValue());
            }
            if (req.get("loss_weights") instanceof List<?> lw) {
                weights = new ArrayList<>();
                for (Object o : lw) {
                    weights.add(((Number) o).doubleValue());
                }
            }
        } catch (RuntimeException e) {
            sender.reject(s, RejectReason.BAD_REQUEST, corr, "GROW needs {\"added\": [heads...]}, got " + req);
            return;
        }
        boolean freeze = Boolean.TRUE.equals(req.get("freeze_old"));
        long seed = req.get("seed") instanceof Number n ? n.longValue() : ctx.seed;
        requestGrow(added, freeze, seed, weights, sender.adminReply(s, corr, reply -> reply));
    }
}
