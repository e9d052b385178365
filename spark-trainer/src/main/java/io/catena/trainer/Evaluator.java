package io.catena.trainer;

import io.catena.model.ColmModel;
import io.catena.model.data.TokenBatchSource;
import io.catena.model.train.LocalTrainer;

/**
 * Validation loss per scale, as chain-model's LocalTrainer computes it: the first {@code batches}
 * batches of the validation split from position 0, one forward at full scale, mean cross-entropy of
 * every scale k = 1..n. The driver (final eval) and rank 0 (periodic eval) both use this code; with
 * a model of batch B/W they read W times as many batches, i.e. the same windows as a B-row model.
 */
public final class Evaluator {
    private Evaluator() {
    }

    public static double[] evaluate(ColmModel model, TokenBatchSource val, int batches) {
        int n = model.config().numChains();
        int b = model.batch();
        int t = model.seqLen();
        int[] window = new int[b * (t + 1)];
        int[] in = new int[b * t];
        int[] tg = new int[b * t];
        double[] sum = new double[n];
        long saved = val.position();
        val.seek(0);
        try {
            for (int i = 0; i < batches; i++) {
                val.nextBatch(window, b);
                LocalTrainer.splitWindows(window, b, t, in, tg);
                model.forward(in, 0, n);
                double[] l = model.losses(tg, 0);
                for (int j = 0; j < n; j++) {
                    sum[j] += l[j];
                }
            }
        } finally {
            val.seek(saved);
        }
        for (int j = 0; j < n; j++) {
            sum[j] /= batches;
        }
        return sum;
    }
}
