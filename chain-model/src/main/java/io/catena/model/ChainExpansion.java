package io.catena.model;

import io.catena.model.io.TrainingState;
import io.catena.model.kernel.Mat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Progressive scaling: append chains to a trained model. Old tensors keep their values (the
 * chain-major layout makes them a prefix of the new buffer, untouched); new tensors start as a copy of the last old
 * chain ({@link Init#COPY}, the default when the widths match) or get the usual init (normal 0.02, gains 1, biases 0;
 * {@link Init#RANDOM}); either way the LM-head rows of the new chains are zero,
 * so at the moment of growth every old scale and the new full model give exactly the old logits.
 * Optimizer moments of old tensors are kept, new ones start at zero.
 */
public final class ChainExpansion {
    private ChainExpansion() {
    }

    /**
     * @param added       head counts of the chains to append (e.g. [2])
     * @param freezeOld   freeze every old chain (only the new chains train afterwards)
     * @param newWeights  per-scale loss weights for the grown model, or null for the mean over all scales
     */
    public static TrainingState expand(TrainingState old, List<Integer> added, boolean freezeOld, List<Double> newWeights, long seed) {
        return expand(old, added, freezeOld, newWeights, seed, Init.defaultFor(old.config(), added));
    }

    /** How the appended chains' tensors start (their LM-head rows are zero either way). */
    public enum Init {
        /** Normal 0.02 (outputs scaled), gains 1, biases 0: the model's usual init. */
        RANDOM,
        /**
         * A copy of the last old chain: the new chain's embedding columns, norms, biases and its weights' blocks that
         * read chains before the last old one are the last old chain's; the block the last old chain read from itself
         * now reads the new chain (its own copy) and every other block is zero. So the new chain's hidden state equals
         * the last old chain's at every layer, while the model's outputs are unchanged (LM-head rows zero).
         * Needs each appended chain as wide as the last old chain.
         */
        COPY;

        /**
         * The growth default ({@code expand}, {@code --grow-at}, {@code retrain --add-chains}): COPY when every appended
         * chain is as wide as the last old chain, else RANDOM. COPY measured better than RANDOM on every growth of
         * benchmarks/run-growth.sh (RESULTS.md "Growth").
         */
        public static Init defaultFor(ColmConfig old, List<Integer> added) {
            int last = old.chains().get(old.numChains() - 1);
            return added != null && !added.isEmpty() && added.stream().allMatch(h -> h == last) ? COPY : RANDOM;
        }

        /** "copy", "random" or "auto" ({@link #defaultFor}); null for auto. */
        public static Init parse(String s) {
            return switch (s.trim().toLowerCase(java.util.Locale.ROOT)) {
                case "copy" -> COPY;
                case "random" -> RANDOM;
                case "auto" -> null;
                default -> throw new IllegalArgumentException("growth init must be copy, random or auto, got '" + s + "'");
            };
        }
    }

    public static TrainingState expand(TrainingState old, List<Integer> added, boolean freezeOld, List<Double> newWeights, long seed,
            Init init) {
        if (init == null) {
            init = Init.defaultFor(old.config(), added);
        }
        if (added == null || added.isEmpty()) {
            throw new IllegalArgumentException("expansion needs at least one chain to add, e.g. --add-chains 2");
        }
        ColmConfig oldCfg = old.config();
        ColmConfig cfg = oldCfg.withAppendedChains(added, newWeights);
        ParamLayout layout = new ParamLayout(cfg);
        long oldSize = old.params().layout().size();
        for (ParamLayout.Entry e : old.params().layout().entries()) {
            ParamLayout.Entry n = layout.get(e.name());
            if (n.offset() != e.offset() || n.size() != e.size()) {
                throw new IllegalStateException("layout invariant broken: " + e.name() + " moved on expansion");
            }
        }
        Params params = grow(old.params(), layout, oldSize);
        params.initialize(seed, oldCfg.numChains());
        if (init == Init.COPY) {
            copyLastChain(params, oldCfg, cfg);
        }
        for (int c = oldCfg.numChains(); c < cfg.numChains(); c++) {
            params.mat("head.c" + c).fill(0.0);
        }
        Params m = old.hasOptimizerState() ? grow(old.adamM(), layout, oldSize) : null;
        Params v = old.hasOptimizerState() ? grow(old.adamV(), layout, oldSize) : null;
        Map<String, Object> info = new LinkedHashMap<>(old.info());
        info.put("expanded_from_chains", oldCfg.chains());
        info.put("expanded_at_step", old.step());
        int frozen = freezeOld ? oldCfg.numChains() : old.frozenChains();
        return new TrainingState(cfg, params, m, v, old.step(), old.tokensSeen(), old.dataPosition(), frozen, info);
    }

    private static void copyLastChain(Params params, ColmConfig oldCfg, ColmConfig cfg) {
        int src = oldCfg.numChains() - 1;
        for (int c = oldCfg.numChains(); c < cfg.numChains(); c++) {
            if (cfg.chains().get(c).intValue() != cfg.chains().get(src).intValue()) {
                throw new IllegalArgumentException("growth init 'copy' needs each appended chain as wide as the last old one ("
                        + cfg.chains().get(src) + " heads), got " + cfg.chains().get(c) + " heads; use growth init 'random'");
            }
            String sc = ".c" + src, nc = ".c" + c;
            for (ParamLayout.Entry e : params.layout().entries()) {
                if (e.chain() != c || e.kind() == ParamLayout.Kind.HEAD) {
                    continue;
                }
                String srcName = e.name().replace(nc + ".", sc + ".");
                if (srcName.endsWith(nc)) {
                    srcName = srcName.substring(0, srcName.length() - nc.length()) + sc;
                }
                Mat from = params.mat(srcName), to = params.mat(e.name());
                if (from.rows != to.rows) {
                    throw new IllegalStateException("copy init: " + srcName + " and " + e.name() + " differ in rows");
                }
                if (from.cols == to.cols) {
                    to.copyFrom(from);
                    continue;
                }
                // a chain linear: column blocks per input chain; blocks < src copied, src's own block moved to block c
                boolean ffnIn = e.name().contains("ffn.down");
                int[] at = new int[cfg.numChains() + 1];
                for (int j = 0; j <= cfg.numChains(); j++) {
                    at[j] = ffnIn ? cfg.ffnPrefixWidth(j) : cfg.prefixWidth(j);
                }
                if (to.cols != at[c + 1] || from.cols != at[src + 1]) {
                    throw new IllegalStateException("copy init: unexpected input width of " + e.name());
                }
                to.fill(0.0);
                to.cols(0, at[src]).copyFrom(from.cols(0, at[src]));
                to.cols(at[c], at[c + 1] - at[c]).copyFrom(from.cols(at[src], at[src + 1] - at[src]));
            }
        }
    }

    private static Params grow(Params oldParams, ParamLayout layout, long oldSize) {
        Params p = new Params(layout, DataType.FLOAT);
        var src = oldParams.buf();
        var dst = p.buf();
        for (int i = 0; i < oldSize; i++) {
            dst.set(i, src.get(i));
        }
        return p;
    }
}
