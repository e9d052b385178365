package io.catena.model.infer;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Sampling loop over {@link KvDecoder}: temperature and top-k, a scale k that may change at given
 * generated-token indices (seamless LM switching), and for CoLM-Air a prompt prefilled by the
 * chain-0 sub-model only (its K/V are all any scale needs).
 */
public final class Generator {

    public record Options(int maxNewTokens, int chains, double temperature, int topK, long seed,
                          TreeMap<Integer, Integer> switchAt, boolean stopAtEos, int eosToken) {
        public Options {
            if (maxNewTokens < 0) {
                throw new IllegalArgumentException("max new tokens must be >= 0, got " + maxNewTokens);
            }
            if (temperature < 0) {
                throw new IllegalArgumentException("temperature must be >= 0 (0 = greedy), got " + temperature);
            }
            if (topK < 0) {
                throw new IllegalArgumentException("top-k must be >= 0 (0 = off), got " + topK);
            }
            switchAt = switchAt == null ? new TreeMap<>() : new TreeMap<>(switchAt);
        }
    }

    /** Tokens produced and, per token, the scale that produced it. */
    public record Result(int[] tokens, int[] scales, int prefillChains) {
    }

    private final ColmConfig cfg;
    private final Params params;

    public Generator(ColmConfig cfg, Params params) {
        this.cfg = cfg;
        this.params = params;
    }

    public Result generate(int[] prompt, Options o) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("the prompt is empty; give at least one token");
        }
        cfg.checkScale(o.chains());
        o.switchAt().values().forEach(cfg::checkScale);
        int capacity = Math.min(cfg.maxSeqLen(), prompt.length + o.maxNewTokens());
        if (prompt.length + o.maxNewTokens() > cfg.maxSeqLen()) {
            throw new IllegalArgumentException("prompt (" + prompt.length + " tokens) + max new tokens (" + o.maxNewTokens()
                    + ") exceeds max_seq_len " + cfg.maxSeqLen() + "; shorten the prompt or generate fewer tokens");
        }
        KvDecoder dec = new KvDecoder(cfg, params, capacity);
        int k = o.chains();
        int prefillChains = cfg.isAir() ? 1 : k;
        for (int i = 0; i < prompt.length - 1; i++) {
            dec.step(prompt[i], prefillChains, false);
        }
        double[] logits = dec.step(prompt[prompt.length - 1], k, true);
        SplittableRandom rnd = new SplittableRandom(o.seed());
        List<Integer> out = new ArrayList<>();
        List<Integer> scales = new ArrayList<>();
        for (int n = 0; n < o.maxNewTokens(); n++) {
            int next = sample(logits, o.temperature(), o.topK(), rnd);
            out.add(next);
            scales.add(k);
            if (o.stopAtEos() && next == o.eosToken()) {
                break;
            }
            if (n == o.maxNewTokens() - 1) {
                break;
            }
            Integer s = o.switchAt().get(n + 1);
            if (s != null) {
                k = s;
            }
            logits = dec.step(next, k, true);
        }
        return new Result(out.stream().mapToInt(Integer::intValue).toArray(), scales.stream().mapToInt(Integer::intValue).toArray(),
                prefillChains);
    }

    static int sample(double[] logits, double temperature, int topK, SplittableRandom rnd) {
        int v = logits.length;
        if (temperature == 0) {
            int best = 0;
            for (int i = 1; i < v; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            return best;
        }
        double cutoff = Double.NEGATIVE_INFINITY;
        if (topK > 0 && topK < v) {
            double[] sorted = logits.clone();
            Arrays.sort(sorted);
            cutoff = sorted[v - topK];
        }
        double max = Double.NEGATIVE_INFINITY;
        for (double l : logits) {
            max = Math.max(max, l);
        }
        double[] p = new double[v];
        double sum = 0;
        for (int i = 0; i < v; i++) {
            p[i] = logits[i] >= cutoff ? Math.exp((logits[i] - max) / temperature) : 0;
            sum += p[i];
        }
        double u = rnd.nextDouble() * sum;
        for (int i = 0; i < v; i++) {
            u -= p[i];
            if (u <= 0 && p[i] > 0) {
                return i;
            }
        }
        for (int i = v - 1; i >= 0; i--) {
            if (p[i] > 0) {
                return i;
            }
        }
        return 0;
    }
}
