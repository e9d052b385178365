package io.catena.trainer;

import io.catena.model.io.TrainingState;
import java.util.List;
import java.util.SortedMap;

/**
 * What a run did: the step the parameter server reached, how many times the stage ran, the model's
 * chains at the end, the mean train loss per scale of every step (averaged over the dp workers),
 * every evaluation, the final checkpoint and a copy of the final state.
 */
public record TrainResult(long finalStep, int stageRuns, List<Integer> chains, int frozenChains, double[] finalEval,
                          SortedMap<Long, double[]> trainLoss, SortedMap<Long, double[]> evals, String checkpoint,
                          TrainingState finalState, String metricsFile) {
}
