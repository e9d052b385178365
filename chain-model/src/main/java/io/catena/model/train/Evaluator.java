package io.catena.model.train;

import io.catena.model.ColmModel;
import io.catena.model.data.TokenBatchSource;

/**
 * The one place validation loss is computed (the local trainer, the Spark trainer's rank 0 and driver, and
 * {@code catena eval} all call it): the mean loss of every scale over the first {@code batches} batches of the
 * validation split, from one forward of all chains (chain causality makes scale k's loss the k-chain
 * sub-model's, bit for bit). The source's position is restored afterwards. A distributed rank with a model of
 * batch B/W reads W times as many batches, i.e. the same windows as a B-row model.
 */
public final class Evaluator {
    private Evaluator() {
    }

    public static double[] evaluate(ColmModel model, TokenBatchSource val, int batches) {
        return evaluate(model, val, batches, model.config().numChains());
    }

    /** The losses of scales 1..chains only, from a forward that touches only those chains (elastic inference). */
    public static double[] evaluate(ColmModel model, TokenBatchSource val, int batches, int chains) {
        int n = chains;
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
