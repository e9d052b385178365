package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.model.pipeline.PipelineSchedule;
import io.catena.model.pipeline.StagePlan;
import io.catena.ps.protocol.ChunkPlan;
import io.catena.ps.protocol.FloatRange;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a client must know to talk to the server in one model epoch: the model config (hence the
 * {@link ParamLayout}), frozen chains, shard bounds, each shard's pipeline stage and chunk size (hence the
 * {@link ChunkPlan}), sync mode, worker count and the pipeline settings. Sent as JSON in WELCOME and in a
 * PULL_BEGIN after growth.
 *
 * <p>Pipeline stages: worker w runs stage {@code w % pipelineStages} of data-parallel replica
 * {@code w / pipelineStages}; a stage's chunks are the shards whose {@code shardStages} entry names it.
 * The stage split comes from chain-model's {@link StagePlan} over (config, stages, micro-batch, sequence
 * length); {@link #fromJson} recomputes it and refuses a document whose shard stages do not match, so a
 * worker that builds its pipeline stage from {@link #stagePlan()} owns exactly the chunks it pushes.
 */
public record ServerLayout(String job, long serverInstance, int epoch, long version, ColmConfig config, int frozenChains,
                           long[] shardBounds, int chunkFloats, SyncPolicy sync, int workers, int pipelineStages,
                           int pipelineMicroBatch, int pipelineSeqLen, String pipelineSchedule, int pipelineMicros,
                           int[] shardStages) {
    private static final ObjectMapper JSON = new ObjectMapper();

    public ParamLayout paramLayout() {
        return new ParamLayout(config);
    }

    public ChunkPlan plan() {
        return ChunkPlan.fromBounds(shardBounds, chunkFloats, pipelineStages, shardStages);
    }

    /** chain-model's stage plan the server uses (one stage without a pipeline), fitted to the schedule when micro-batches > 0. */
    public StagePlan stagePlan() {
        return StagePlan.plan(config, pipelineStages, pipelineMicroBatch, pipelineSeqLen, PipelineSchedule.Kind.parse(pipelineSchedule),
                pipelineMicros);
    }

    /**
     * The server's chunk plan of {@code layout}: {@code shards} shards cut at tensor ends and at the boundaries of
     * {@code stagePlan}'s stages (null or one stage: no pipeline). Here, and only here, chain-model's layout and stage
     * plan become the plain offsets and ranges of the protocol's {@link ChunkPlan}.
     */
    static ChunkPlan chunkPlan(ParamLayout layout, int shards, int chunkFloats, StagePlan stagePlan) {
        long[] ends = layout.entries().stream().mapToLong(e -> e.offset() + e.size()).toArray();
        if (stagePlan == null || stagePlan.numStages() == 1) {
            return ChunkPlan.of(ends, shards, chunkFloats);
        }
        long planned = new ParamLayout(stagePlan.config()).size();
        if (planned != layout.size()) {
            throw new IllegalArgumentException("the stage plan is for a model of " + planned + " parameters, the layout has "
                    + layout.size() + "; re-plan the stages for this model");
        }
        return ChunkPlan.of(ends, shards, chunkFloats, stagePlan.stages().stream().map(st -> ranges(st.paramRanges())).toList());
    }

    /** chain-model's parameter ranges as the protocol's. */
    static List<FloatRange> ranges(List<StagePlan.ParamRange> ranges) {
        return ranges.stream().map(r -> new FloatRange(r.offset(), r.length())).toList();
    }

    /** Pipeline stage of a worker ({@code workerId % pipelineStages}); -1 for an admin client. */
    public int stageOf(int workerId) {
        return stageOf(workerId, pipelineStages);
    }

    /** Data-parallel replica of a worker ({@code workerId / pipelineStages}); -1 for an admin client. */
    public int replicaOf(int workerId) {
        return workerId < 0 ? -1 : workerId / pipelineStages;
    }

    /** Data-parallel replicas: workers / pipelineStages. */
    public int replicas() {
        return workers / pipelineStages;
    }

    static int stageOf(int workerId, int stages) {
        return workerId < 0 ? -1 : workerId % stages;
    }

    byte[] toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("job", job);
        m.put("server_instance", serverInstance);
        m.put("epoch", epoch);
        m.put("version", version);
        m.put("config", config.toMap());
        m.put("frozen_chains", frozenChains);
        m.put("shard_bounds", shardBounds);
        m.put("chunk_floats", chunkFloats);
        m.put("sync", sync.toString());
        m.put("workers", workers);
        m.put("pipeline_stages", pipelineStages);
        m.put("pipeline_micro_batch", pipelineMicroBatch);
        m.put("pipeline_seq_len", pipelineSeqLen);
        m.put("pipeline_schedule", pipelineSchedule);
        m.put("pipeline_micro_batches", pipelineMicros);
        m.put("shard_stages", shardStages);
        try {
            return JSON.writeValueAsBytes(m);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @SuppressWarnings("unchecked")
    static ServerLayout fromJson(byte[] bytes) {
        ServerLayout l;
        try {
            Map<String, Object> m = JSON.readValue(bytes, Map.class);
            for (String key : List.of("pipeline_stages", "pipeline_micro_batch", "pipeline_seq_len", "pipeline_schedule",
                    "pipeline_micro_batches", "shard_stages")) {
                if (!m.containsKey(key)) {
                    throw new IllegalArgumentException("it has no '" + key + "'");
                }
            }
            long[] bounds = ((List<Number>) m.get("shard_bounds")).stream().mapToLong(Number::longValue).toArray();
            int[] stages = ((List<Number>) m.get("shard_stages")).stream().mapToInt(Number::intValue).toArray();
            l = new ServerLayout((String) m.get("job"), ((Number) m.get("server_instance")).longValue(),
                    ((Number) m.get("epoch")).intValue(), ((Number) m.get("version")).longValue(),
                    ColmConfig.fromMap((Map<String, Object>) m.get("config")), ((Number) m.get("frozen_chains")).intValue(),
                    bounds, ((Number) m.get("chunk_floats")).intValue(), SyncPolicy.parse((String) m.get("sync")),
                    ((Number) m.get("workers")).intValue(), ((Number) m.get("pipeline_stages")).intValue(),
                    ((Number) m.get("pipeline_micro_batch")).intValue(), ((Number) m.get("pipeline_seq_len")).intValue(),
                    (String) m.get("pipeline_schedule"), ((Number) m.get("pipeline_micro_batches")).intValue(), stages);
            l.plan(); // validates bounds and shard stages
        } catch (IOException | RuntimeException e) {
            throw new ParameterServerException("cannot read the server's layout document: " + e.getMessage()
                    + " (server and client must run the same Catena version)", e);
        }
        l.checkStagesMatchChainModel();
        return l;
    }

    /** The shard stages must give exactly the ranges this build's StagePlan computes, or pushes would mix up stages. */
    private void checkStagesMatchChainModel() {
        if (pipelineStages == 1) {
            return;
        }
        StagePlan sp;
        try {
            sp = stagePlan();
        } catch (RuntimeException e) {
            throw new ParameterServerException("the server's pipeline settings (stages " + pipelineStages + ", micro-batch "
                    + pipelineMicroBatch + " x " + pipelineSeqLen + ", " + pipelineSchedule + " with " + pipelineMicros
                    + " micro-batches) give no stage plan here: " + e.getMessage()
                    + " (server and client must run the same Catena version)", e);
        }
        ChunkPlan plan = plan();
        for (int s = 0; s < pipelineStages; s++) {
            if (!plan.stageRanges(s).equals(ranges(sp.stage(s).paramRanges()))) {
                throw new ParameterServerException("the server assigns stage " + s + " the parameter ranges " + plan.stageRanges(s)
                        + ", this client's chain-model plans " + sp.stage(s).paramRanges() + " (epoch " + epoch + ", chains "
                        + config.chains() + "); run the same Catena version on server and workers");
            }
        }
    }
}
