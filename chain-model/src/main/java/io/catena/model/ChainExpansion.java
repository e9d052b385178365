package io.catena.model;

import io.catena.model.io.TrainingState;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Progressive scaling: append chains to a trained model. Old tensors keep their values (the
 * chain-major layout makes them a prefix of the new buffer, untouched); new tensors get the usual
 * init (normal 0.02, gains 1, biases 0) except the LM-head rows of the new chains, which are zero,
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
