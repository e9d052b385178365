package io.catena.model.io;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Everything a checkpoint holds: the model (config + parameters), the AdamW moments (null in an
 * inference-only export), and where training stood (step, tokens seen, data cursor, frozen chains).
 * {@code info} carries free-form facts (recipe values, data description) written into model.json.
 */
public record TrainingState(ColmConfig config, Params params, Params adamM, Params adamV, long step, long tokensSeen,
                            long dataPosition, int frozenChains, Map<String, Object> info) {
    public TrainingState {
        info = info == null ? Map.of() : Map.copyOf(new LinkedHashMap<>(info));
        if (frozenChains < 0 || frozenChains >= config.numChains()) {
            throw new IllegalArgumentException("frozen_chains must be in 0.." + (config.numChains() - 1) + ", got " + frozenChains);
        }
    }

    public boolean hasOptimizerState() {
        return adamM != null && adamV != null;
    }
}
