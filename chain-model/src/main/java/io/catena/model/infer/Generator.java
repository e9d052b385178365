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
 * chain-0 sub-model only (its K/V are all any scale needs). Past max_seq_len the context slides:
 * the most recent half is re-encoded and generation continues.
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
        int capacity = cfg.maxSeqLen();
        KvDecoder dec = new KvDecoder(cfg, params, capacity);
        int k = o.chains();
        int prefillChains = cfg.isAir() ? 1 : k;
        List<Integer> context = new ArrayList<>();
        for (int t : prompt) {
            context.add(t);
        }
        // a prompt longer than the context keeps its most recent tokens
        int start = Math.max(0, prompt.length - capacity);
        double[] logits = prefill(dec, context.subList(start, context.size()), prefillChains, k);
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
            context.add(next);
            if (dec.length() == capacity) {
                // context full: slide the window, re-encoding the most recent half (RoPE positions restart at 0)
                dec.reset();
                logits = prefill(dec, context.subList(context.size() - capacity / 2, context.size()), cfg.isAir() ? 1 : k, k);
            } else {
                logits = dec.step(next, k, true);
            }
        }
        return new Result(out.stream().mapToInt(Integer::intValue).toArray(), scales.stream().mapToInt(Integer::intValue).toArray(),
                prefillChains);
    }

    /** Feeds tokens; all but the last run at prefillChains (chain 0 for CoLM-Air), the last at k. */
    private static double[] prefill(KvDecoder dec, List<Integer> tokens, int prefillChains, int k) {
        for (int i = 0; i < tokens.size() - 1; i++) {
            dec.step(tokens.get(i), prefillChains, false);
        }
        return dec.step(tokens.get(tokens.size() - 1), k, true);
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
