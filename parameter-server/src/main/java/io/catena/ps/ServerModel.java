package io.catena.ps;

import io.catena.model.ChainExpansion;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.io.TrainingState;
import io.catena.model.optim.AdamW;
import io.catena.model.optim.LrSchedule;
import io.catena.model.pipeline.StagePlan;
import io.catena.ps.protocol.ChunkPlan;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import org.agrona.concurrent.UnsafeBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The model the server trains: parameters, AdamW moments and optimizer, the chunk plan, version and epoch.
 * Conductor thread only; version, epoch, layout and plan are also read by other threads.
 */
final class ServerModel {
    // the conductor's log name: cluster-conf/log4j2.properties sets the server's level by it
    private static final Logger LOG = LoggerFactory.getLogger(ServerConductor.class);

    private final ParameterServer.Context ctx;
    /** The LR schedule the updates follow: the context's, re-warmed after a growth (growth_lr_rewarm). */
    private LrSchedule schedule;
    private final long instanceId = ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE;
    private final int stages;
    private volatile ParamLayout layout;
    private volatile long version;
    private volatile int epoch;
    private volatile ChunkPlan plan;
    /** chain-model's stage plan of the current model; null with one stage. */
    private StagePlan stagePlan;
    private Params params;
    private Params adamM;
    private Params adamV;
    private AdamW adamW;
    private int frozenChains;
    private UnsafeBuffer paramsView;
    private final Map<String, Object> baseInfo;
    /**
     * Bumped whenever the parameters change (an update, a new model): the broadcast cache of sealed parameter chunks
     * ({@link SealedParams}) is valid for one value only.
     */
    private long paramsChanges;
    /** Runs before the parameters change (the pull answers in flight read them: {@link PullServer#finishAnswers}). */
    private Runnable beforeParamsChange = () -> { };

    ServerModel(ParameterServer.Context ctx) {
        this.ctx = ctx;
        this.schedule = ctx.schedule;
        this.stages = ctx.pipelineStages;
        TrainingState st = ctx.initialState;
        Object e = st.info().get("ps_epoch");
        this.epoch = e instanceof Number n ? n.intValue() : 0;
        this.baseInfo = new LinkedHashMap<>(st.info());
        install(st.params(), st.hasOptimizerState() ? st.adamM() : null, st.hasOptimizerState() ? st.adamV() : null,
                st.frozenChains(), st.info());
        this.version = st.step();
    }

    /** Installs a model: parameters, moments (null: zeros), optimizer and plan. */
    private void install(Params p, Params m, Params v, int frozen, Map<String, Object> info) {
        ParamLayout l = p.layout();
        this.params = p;
        this.adamM = m != null ? m : new Params(l, DataType.FLOAT);
        this.adamV = v != null ? v : new Params(l, DataType.FLOAT);
        this.frozenChains = frozen;
        this.adamW = AdamW.forState(l, ctx.adamW, frozen, info); // a growth recorded in info gets its warm-up
        if (stages > 1) {
            // growth widens blocks and head unevenly, so the split is recomputed for the new config
            stagePlan = stagePlan == null ? StagePlan.plan(l.config(), stages, ctx.pipelineMicroBatch, ctx.pipelineSeqLen,
                    ctx.pipelineSchedule, ctx.pipelineMicros)
                    : stagePlan.replan(l.config());
            LOG.info("{}", stagePlan.describe().stripTrailing());
        }
        this.plan = ServerLayout.chunkPlan(l, ctx.shards, ctx.chunkFloats, stagePlan);
        this.paramsView = view(p);
        this.paramsChanges++;
        this.layout = l;
    }

    /** Appends chains (chain-model's ChainExpansion) and moves to the next epoch; the version stays. */
    void grow(List<Integer> added, boolean freezeOld, List<Double> weights, long seed) {
        beforeParamsChange.run();
        TrainingState cur = new TrainingState(layout.config(), params, adamM, adamV, version, 0, 0, frozenChains, Map.of());
        TrainingState grown = ChainExpansion.expand(cur, added, freezeOld, weights, seed);
        baseInfo.put("expanded_from_chains", grown.info().get("expanded_from_chains")); // snapshots (and a restore) keep the warm-up
        baseInfo.put("expanded_at_step", grown.info().get("expanded_at_step"));
        install(grown.params(), grown.adamM(), grown.adamV(), grown.frozenChains(), grown.info());
        epoch++;
        if (schedule.continueFrom() == 0 || schedule.continueFrom() == version) {
            // the growth recipe's LR restart (growth_lr_rewarm), as the trainers apply it after their first growth: an
            // embedded server's schedule has it already (the same step gives the same schedule), an external one's not
            schedule = schedule.rewarmedAt(version, ctx.growthLrRewarm);
        }
    }

    static UnsafeBuffer view(Params p) {
        return ParamsViews.view(p);
    }

    ParamLayout layout() {
        return layout;
    }

    ChunkPlan plan() {
        return plan;
    }

    long version() {
        return version;
    }

    int epoch() {
        return epoch;
    }

    int frozenChains() {
        return frozenChains;
    }

    /** The current parameters as one buffer of floats. */
    UnsafeBuffer paramsView() {
        return paramsView;
    }

    void beforeParamsChange(Runnable r) {
        this.beforeParamsChange = r;
    }

    /** How many times the parameters changed (see the field). */
    long paramsChanges() {
        return paramsChanges;
    }

    /**
     * One AdamW step on the mean of {@code count} summed gradients, shard by shard (chain-model's code), clipped
     * by the norm of the whole vector: with pipeline stages the same as AdamW over the stages' ranges with the
     * summed clip norm (chain-model's PipelineEquivalenceTest). Then the next version is the current one.
     */
    /** The step applied last, its learning rate and the global gradient norm AdamW clipped (what the driver reports). */
    record Update(long step, double lr, double gradNorm) {
    }

    Update applyStep(Params gradSum, int count) {
        beforeParamsChange.run();
        paramsChanges++; // the parameters change: the sealed broadcast chunks are stale
        double ss = 0;
        for (int s = 0; s < plan.shards(); s++) {
            ss += adamW.sumOfSquares(gradSum, plan.shardFrom(s), plan.shardTo(s));
        }
        double norm = Math.sqrt(ss) / count;
        double scale = adamW.clipScale(norm) / count;
        long step = version + 1;
        double lr = schedule.at(step);
        for (int s = 0; s < plan.shards(); s++) {
            adamW.update(params, gradSum, adamM, adamV, step, lr, scale, plan.shardFrom(s), plan.shardTo(s));
        }
        version = step;
        return new Update(step, lr, norm);
    }

    /** A copy of the whole training state, {@code trainerInfo} added to its info, for a snapshot. */
    TrainingState copyState(Map<String, Object> trainerInfo) {
        Params p = new Params(layout, DataType.FLOAT);
        Params m = new Params(layout, DataType.FLOAT);
        Params v = new Params(layout, DataType.FLOAT);
        p.copyFrom(params);
        m.copyFrom(adamM);
        v.copyFrom(adamV);
        Map<String, Object> info = new LinkedHashMap<>(baseInfo);
        info.putAll(trainerInfo);
        info.put("ps_job", ctx.jobName);
        info.put("ps_epoch", epoch);
        info.put("ps_version", version);
        info.put("ps_sync", ctx.sync.toString());
        long tokens = trainerInfo.get("tokens_seen") instanceof Number n ? n.longValue() : 0;
        long position = trainerInfo.get("data_position") instanceof Number n ? n.longValue() : 0;
        return new TrainingState(layout.config(), p, m, v, version, tokens, position, frozenChains, info);
    }

    ServerLayout currentLayout() {
        return new ServerLayout(ctx.jobName, instanceId, epoch, version, layout.config(), frozenChains, plan.shardBounds(),
                plan.chunkFloats(), ctx.sync, ctx.workers, stages, ctx.pipelineMicroBatch, ctx.pipelineSeqLen,
                ctx.pipelineSchedule.label(), ctx.pipelineMicros, plan.shardStages());
    }

    /** Pipeline stage of a worker (0 without a pipeline), -1 for an admin. */
    int stageOf(int worker) {
        return ServerLayout.stageOf(worker, stages);
    }

    /** Name and index of the tensor that holds element {@code index} of the flat vector. */
    String tensorAt(long index) {
        for (ParamLayout.Entry e : layout.entries()) {
            if (index >= e.offset() && index < e.offset() + e.size()) {
                return e.name() + "[" + (index - e.offset()) + "]";
            }
        }
        return "?";
    }
}
