package io.catena.ps;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import io.catena.ps.protocol.ChunkPlan;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a client must know to talk to the server in one model epoch: the model config (hence the
 * {@link ParamLayout}), frozen chains, shard bounds and chunk size (hence the {@link ChunkPlan}), sync
 * mode and worker count. Sent as JSON in WELCOME and in a PULL_BEGIN after growth.
 */
public record ServerLayout(String job, long serverInstance, int epoch, long version, ColmConfig config, int frozenChains,
                           long[] shardBounds, int chunkFloats, SyncPolicy sync, int workers) {
    private static final ObjectMapper JSON = new ObjectMapper();

    public ParamLayout paramLayout() {
        return new ParamLayout(config);
    }

    public ChunkPlan plan() {
        return ChunkPlan.fromBounds(shardBounds, chunkFloats);
    }

    byte[] toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("job", job);
        m.put("server_instance", serverInstance);
        m.put("epoch", epoch);
        m.put("version", version);
        m.put("config", config.toMap());
        m.put("frozen_chains", frozenChains);
        m.put("shard_bounds", shardBounds);
        m.put("chunk_floats", chunkFloats);
        m.put("sync", sync.toString());
        m.put("workers", workers);
        try {
            return JSON.writeValueAsBytes(m);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    @SuppressWarnings("unchecked")
    static ServerLayout fromJson(byte[] bytes) {
        try {
            Map<String, Object> m = JSON.readValue(bytes, Map.class);
            List<Number> b = (List<Number>) m.get("shard_bounds");
            long[] bounds = b.stream().mapToLong(Number::longValue).toArray();
            return new ServerLayout((String) m.get("job"), ((Number) m.get("server_instance")).longValue(),
                    ((Number) m.get("epoch")).intValue(), ((Number) m.get("version")).longValue(),
                    ColmConfig.fromMap((Map<String, Object>) m.get("config")), ((Number) m.get("frozen_chains")).intValue(),
                    bounds, ((Number) m.get("chunk_floats")).intValue(), SyncPolicy.parse((String) m.get("sync")),
                    ((Number) m.get("workers")).intValue());
        } catch (IOException | RuntimeException e) {
            throw new ParameterServerException("cannot read the server's layout document: " + e.getMessage()
                    + " (server and client must run the same Catena version)", e);
        }
    }
}
