package io.catena.trainer.pipeline;

import io.aeron.Aeron;
import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.pipeline.PipelineRunner;
import io.catena.model.pipeline.PipelineSchedule;
import io.catena.model.pipeline.PipelineStage;
import io.catena.model.pipeline.StagePlan;
import java.util.Map;
import org.agrona.CloseHelper;

/**
 * The pipeline part of one Spark task: its stage of the model (chain-model's {@link PipelineStage} and
 * {@link PipelineRunner}) and its Aeron links to the neighbouring stages of the same replica. Links are
 * opened before the barrier's allGather (their endpoints travel in it) and connected after it; the stage is
 * rebuilt whenever the model's layout changes (growth), the links stay.
 */
public final class PipelineWorker implements AutoCloseable {
    /** allGather keys of this task's two link endpoints. */
    public static final String RECEIVES_ACTIVATIONS = "stage_in";
    public static final String RECEIVES_GRADIENTS = "stage_out";

    private final PipelineOptions options;
    private final int stageIndex;
    private final long timeoutMs;
    private final Aeron aeron;
    private final AeronStageLink previous;
    private final AeronStageLink next;
    private PipelineStage stage;
    private PipelineRunner runner;
    private StagePlan plan;

    /**
     * Opens the links of stage {@code stageIndex} on {@code host}.
     *
     * @param aeronDir an Aeron directory with a running media driver (the task's parameter-server client started it)
     * @param token    the job token every link message carries (job and stage-run attempt)
     * @param alive    throws when the Spark task was cancelled; called during every wait
     */
    public PipelineWorker(PipelineOptions options, int stageIndex, String aeronDir, String host, String udpParams, long token,
                          long timeoutMs, Runnable alive) {
        this.options = options;
        this.stageIndex = stageIndex;
        this.timeoutMs = timeoutMs;
        Aeron a = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDir).driverTimeoutMs(10_000));
        AeronStageLink p = null;
        AeronStageLink n = null;
        try {
            p = stageIndex > 0 ? AeronStageLink.open(a, host, udpParams, stageIndex, false, token, alive) : null;
            n = stageIndex < options.stages() - 1 ? AeronStageLink.open(a, host, udpParams, stageIndex, true, token, alive) : null;
        } catch (RuntimeException e) {
            CloseHelper.quietCloseAll(p, n, a);
            throw e;
        }
        this.aeron = a;
        this.previous = p;
        this.next = n;
    }

    public int stageIndex() {
        return stageIndex;
    }

    /** Adds this task's link endpoints to its allGather record. */
    public void describeEndpoints(Map<String, Object> record) {
        if (previous != null) {
            record.put(RECEIVES_ACTIVATIONS, previous.endpoint(timeoutMs));
        }
        if (next != null) {
            record.put(RECEIVES_GRADIENTS, next.endpoint(timeoutMs));
        }
    }

    /**
     * Connects to the neighbours, given their allGather records (null where there is none), and waits until
     * both directions of both links are up.
     */
    public void connect(Map<String, Object> previousStage, Map<String, Object> nextStage) {
        if (previous != null) {
            previous.connect(String.valueOf(previousStage.get(RECEIVES_GRADIENTS)));
        }
        if (next != null) {
            next.connect(String.valueOf(nextStage.get(RECEIVES_ACTIVATIONS)));
        }
        if (previous != null) {
            previous.awaitConnected(timeoutMs);
        }
        if (next != null) {
            next.awaitConnected(timeoutMs);
        }
    }

    /**
     * (Re)builds this task's stage of {@code plan} (the parameter server's, so both cut the model alike) on the
     * full-size parameter and gradient blocks given (only this stage's ranges are read or written).
     */
    public void rebuild(StagePlan plan, Params params, Params grads, int microRows, int seqLen) {
        if (plan.numStages() != options.stages()) {
            throw new IllegalStateException("the parameter server plans " + plan.numStages() + " pipeline stages, this job runs --pp "
                    + options.stages());
        }
        ColmConfig cfg = plan.config();
        this.plan = plan;
        int slots = PipelineSchedule.slots(options.schedule(), options.stages(), stageIndex, options.microBatches());
        stage = new PipelineStage(cfg, params, grads, plan, stageIndex, microRows, seqLen, slots, options.recompute());
        runner = new PipelineRunner(stage, options.schedule(), options.stages(), options.microBatches(), previous, next, timeoutMs);
    }

    public StagePlan plan() {
        return plan;
    }

    public boolean isLast() {
        return stageIndex == options.stages() - 1;
    }

    /** One training step of this stage: per-scale losses on the last stage (else null) and the timing. */
    public PipelineRunner.StepResult step(long step, int[] inputs, int[] targets, int frozenChains) {
        return runner.runStep(step, inputs, targets, frozenChains);
    }

    @Override
    public void close() {
        CloseHelper.quietCloseAll(previous, next, aeron);
    }
}
