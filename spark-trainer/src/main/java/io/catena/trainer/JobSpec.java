package io.catena.trainer;

import io.catena.model.train.Recipe;
import io.catena.model.train.TrainSettings;
import io.catena.trainer.pipeline.PipelineOptions;
import java.io.Serializable;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Everything a worker task needs, shipped once with the barrier stage's closure: the recipe, the data,
 * the parameter server's address and secret, the telemetry channel, and the schedule of events.
 *
 * @param baseStep     the step the run (re)started from; {@code baseDataPosition} is the global data
 *                     position (windows read by all workers together) at that step
 * @param growth       growth events still ahead, each with the chain count the model has after it
 * @param attempt      0 for the first run of the stage, 1.. for reruns after a failure
 * @param pipeline     pipeline stages and micro-batches (stages 1: data parallelism only)
 * @param divergenceFactor the workers' {@link io.catena.model.train.NumericalGuard} factor (--divergence-factor)
 * @param psAlsoIpc    the server listens on aeron:ipc too (the embedded one): workers in the driver's JVM use it
 */
record JobSpec(String jobName, Map<String, String> recipe, String data, int dp, String sync, long totalSteps, long untilStep,
               long baseStep, long baseDataPosition, long baseTokens, List<GrowthPlan> growth, int evalEvery, int ckptEvery,
               TrainOptions.FailAt failAt, int attempt, byte[] secret, String psChannel, int psStreamId, int termLength,
               String udpParams, String telemetryChannel, String driverAeronDir, long driverPid, String driverHostId,
               int kernelThreads, long requestTimeoutMs, Map<String, Object> snapshotInfo, PipelineOptions pipeline,
               double divergenceFactor, boolean psAlsoIpc)
        implements Serializable {

    /** This JVM's identity: a worker whose driver has the same pid and id runs inside the driver's JVM (local mode). */
    static final String THIS_JVM = java.util.UUID.randomUUID().toString();

    record GrowthPlan(long step, List<Integer> heads, boolean freeze, int chainsAfter) implements Serializable {
    }

    JobSpec {
        recipe = new TreeMap<>(recipe);
        growth = List.copyOf(growth);
    }

    JobSpec withAttempt(int a) {
        return new JobSpec(jobName, recipe, data, dp, sync, totalSteps, untilStep, baseStep, baseDataPosition, baseTokens, growth,
                evalEvery, ckptEvery, failAt, a, secret, psChannel, psStreamId, termLength, udpParams, telemetryChannel, driverAeronDir,
                driverPid, driverHostId, kernelThreads, requestTimeoutMs, snapshotInfo, pipeline, divergenceFactor, psAlsoIpc);
    }

    TrainSettings settings() {
        return Recipe.of(recipe, "recipe of job " + jobName).trainSettings().withSteps(totalSteps);
    }

    int batchPerWorker() {
        return settings().batchSize() / dp;
    }

    /** Barrier tasks: dp replicas x pp stages. */
    int tasks() {
        return dp * pipeline.stages();
    }

    /** Global data position (windows read by all workers) after {@code step} optimizer steps. */
    long dataPositionAt(long step) {
        return baseDataPosition + (step - baseStep) * settings().batchSize();
    }

    long tokensAt(long step) {
        TrainSettings s = settings();
        return baseTokens + (step - baseStep) * (long) s.batchSize() * s.seqLen();
    }
}
