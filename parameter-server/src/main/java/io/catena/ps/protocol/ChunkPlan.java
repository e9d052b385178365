package io.catena.ps.protocol;

import io.catena.model.ParamLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * How the flat parameter vector is cut into shards (contiguous ranges ending on tensor boundaries, so
 * also on chain boundaries) and each shard into chunks of at most {@code chunkFloats} floats that fit in
 * one Aeron message. Server and clients derive the same plan from the shard bounds and chunk size sent
 * in the WELCOME, so a chunk is identified by its index alone.
 */
public final class ChunkPlan {
    private final long[] shardBounds;
    private final int chunkFloats;
    private final long[] chunkOffset;
    private final int[] chunkLength;
    private final int[] chunkShard;

    private ChunkPlan(long[] shardBounds, int chunkFloats) {
        if (chunkFloats < 1) {
            throw new IllegalArgumentException("chunk size must be >= 1 float, got " + chunkFloats);
        }
        if (shardBounds.length < 2 || shardBounds[0] != 0) {
            throw new IllegalArgumentException("shard bounds must start at 0 and name at least one shard: " + Arrays.toString(shardBounds));
        }
        for (int i = 1; i < shardBounds.length; i++) {
            if (shardBounds[i] <= shardBounds[i - 1]) {
                throw new IllegalArgumentException("shard bounds must increase strictly: " + Arrays.toString(shardBounds));
            }
        }
        this.shardBounds = shardBounds.clone();
        this.chunkFloats = chunkFloats;
        List<long[]> chunks = new ArrayList<>();
        for (int s = 0; s + 1 < shardBounds.length; s++) {
            for (long off = shardBounds[s]; off < shardBounds[s + 1]; off += chunkFloats) {
                chunks.add(new long[] {off, Math.min(chunkFloats, shardBounds[s + 1] - off), s});
            }
        }
        chunkOffset = new long[chunks.size()];
        chunkLength = new int[chunks.size()];
        chunkShard = new int[chunks.size()];
        for (int i = 0; i < chunks.size(); i++) {
            chunkOffset[i] = chunks.get(i)[0];
            chunkLength[i] = (int) chunks.get(i)[1];
            chunkShard[i] = (int) chunks.get(i)[2];
        }
    }

    /** Cuts {@code layout} into at most {@code shards} near-equal shards at tensor boundaries. */
    public static ChunkPlan of(ParamLayout layout, int shards, int chunkFloats) {
        if (shards < 1) {
            throw new IllegalArgumentException("shard count must be >= 1, got " + shards);
        }
        long total = layout.size();
        List<Long> bounds = new ArrayList<>();
        bounds.add(0L);
        int k = 1;
        for (ParamLayout.Entry e : layout.entries()) {
            long end = e.offset() + e.size();
            if (k < shards && end < total && end >= total * k / shards) {
                bounds.add(end);
                while (k < shards && end >= total * k / shards) {
                    k++;
                }
            }
        }
        bounds.add(total);
        return new ChunkPlan(bounds.stream().mapToLong(Long::longValue).toArray(), chunkFloats);
    }

    public static ChunkPlan fromBounds(long[] shardBounds, int chunkFloats) {
        return new ChunkPlan(shardBounds, chunkFloats);
    }

    public long[] shardBounds() {
        return shardBounds.clone();
    }

    public int shards() {
        return shardBounds.length - 1;
    }

    public long shardFrom(int s) {
        return shardBounds[s];
    }

    public long shardTo(int s) {
        return shardBounds[s + 1];
    }

    public long totalFloats() {
        return shardBounds[shardBounds.length - 1];
    }

    public int chunkFloats() {
        return chunkFloats;
    }

    public int chunks() {
        return chunkOffset.length;
    }

    /** First float of chunk i in the flat vector. */
    public long chunkOffset(int i) {
        return chunkOffset[i];
    }

    /** Floats in chunk i. */
    public int chunkLength(int i) {
        return chunkLength[i];
    }

    public int chunkShard(int i) {
        return chunkShard[i];
    }

    @Override
    public String toString() {
        return "ChunkPlan{shards=" + Arrays.toString(shardBounds) + ", chunkFloats=" + chunkFloats + ", chunks=" + chunks() + "}";
    }
}
