package io.catena.ps.protocol;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;

/**
 * How the flat parameter vector is cut into shards (contiguous ranges ending on tensor boundaries, so
 * also on chain boundaries) and each shard into chunks of at most {@code chunkFloats} floats that fit in
 * one Aeron message. Server and clients derive the same plan from the shard bounds, shard stages and
 * chunk size sent in the WELCOME, so a chunk is identified by its index alone.
 *
 * <p>With pipeline stages the shard bounds also include every boundary of the stages' parameter ranges
 * (plain {@link FloatRange}s; the server computes them from chain-model's stage plan), so every shard, hence every
 * chunk, belongs to exactly one stage and a stage's chunks cover exactly its ranges. With one stage every shard
 * belongs to stage 0. Nothing here knows the model: tensors are their end offsets, stages their ranges.
 */
public final class ChunkPlan {
    private final long[] shardBounds;
    private final int chunkFloats;
    private final int stages;
    private final int[] shardStage;
    private final long[] chunkOffset;
    private final int[] chunkLength;
    private final int[] chunkShard;
    private final int[] chunkStage;
    private final int[][] stageChunks;
    private final List<List<FloatRange>> stageRanges;

    private ChunkPlan(long[] shardBounds, int chunkFloats, int stages, int[] shardStage) {
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
        validateStages(shardBounds.length - 1, stages, shardStage);
        this.shardBounds = shardBounds.clone();
        this.chunkFloats = chunkFloats;
        this.stages = stages;
        this.shardStage = shardStage.clone();
        List<long[]> chunks = new ArrayList<>();
        for (int s = 0; s + 1 < shardBounds.length; s++) {
            for (long off = shardBounds[s]; off < shardBounds[s + 1]; off += chunkFloats) {
                chunks.add(new long[] {off, Math.min(chunkFloats, shardBounds[s + 1] - off), s});
            }
        }
        chunkOffset = new long[chunks.size()];
        chunkLength = new int[chunks.size()];
        chunkShard = new int[chunks.size()];
        chunkStage = new int[chunks.size()];
        int[] perStage = new int[stages];
        for (int i = 0; i < chunks.size(); i++) {
            chunkOffset[i] = chunks.get(i)[0];
            chunkLength[i] = (int) chunks.get(i)[1];
            chunkShard[i] = (int) chunks.get(i)[2];
            chunkStage[i] = shardStage[chunkShard[i]];
            perStage[chunkStage[i]]++;
        }
        stageChunks = new int[stages][];
        for (int st = 0; st < stages; st++) {
            stageChunks[st] = new int[perStage[st]];
        }
        Arrays.fill(perStage, 0);
        for (int i = 0; i < chunkStage.length; i++) {
            stageChunks[chunkStage[i]][perStage[chunkStage[i]]++] = i;
        }
        List<List<FloatRange>> ranges = new ArrayList<>();
        for (int st = 0; st < stages; st++) {
            ranges.add(new ArrayList<>());
        }
        for (int s = 0; s + 1 < shardBounds.length; s++) {
            List<FloatRange> list = ranges.get(shardStage[s]);
            FloatRange last = list.isEmpty() ? null : list.get(list.size() - 1);
            if (last != null && last.end() == shardBounds[s]) {
                list.set(list.size() - 1, new FloatRange(last.offset(), shardBounds[s + 1] - last.offset()));
            } else {
                list.add(new FloatRange(shardBounds[s], shardBounds[s + 1] - shardBounds[s]));
            }
        }
        stageRanges = ranges.stream().map(List::copyOf).toList();
    }

    private static void validateStages(int shards, int stages, int[] shardStage) {
        if (stages < 1) {
            throw new IllegalArgumentException("stage count must be >= 1, got " + stages);
        }
        if (shardStage.length != shards) {
            throw new IllegalArgumentException("shard stages name " + shardStage.length + " shards, the bounds cut " + shards);
        }
        boolean[] owns = new boolean[stages];
        for (int st : shardStage) {
            if (st < 0 || st >= stages) {
                throw new IllegalArgumentException("shard stage " + st + " outside [0, " + stages + "): " + Arrays.toString(shardStage));
            }
            owns[st] = true;
        }
        for (int st = 0; st < stages; st++) {
            if (!owns[st]) {
                throw new IllegalArgumentException("stage " + st + " owns no shard: " + Arrays.toString(shardStage));
            }
        }
    }

    /**
     * Cuts a vector of tensors ending at {@code tensorEnds} (increasing; the last is the vector's length) into at most
     * {@code shards} near-equal shards at tensor boundaries (one stage).
     */
    public static ChunkPlan of(long[] tensorEnds, int shards, int chunkFloats) {
        long[] bounds = tensorBounds(tensorEnds, shards);
        return new ChunkPlan(bounds, chunkFloats, 1, new int[bounds.length - 1]);
    }

    /**
     * Cuts a vector of tensors ending at {@code tensorEnds} into near-equal shards at tensor boundaries and, in addition,
     * at every boundary of the pipeline stages' parameter ranges ({@code stageRanges.get(s)}: stage s's ranges), so
     * that each shard lies in one stage's range. The ranges must partition the vector. A null or one-stage
     * {@code stageRanges} gives exactly {@link #of(long[], int, int)}.
     */
    public static ChunkPlan of(long[] tensorEnds, int shards, int chunkFloats, List<List<FloatRange>> stageRanges) {
        if (stageRanges == null || stageRanges.size() <= 1) {
            return of(tensorEnds, shards, chunkFloats);
        }
        TreeSet<Long> cuts = new TreeSet<>();
        for (long b : tensorBounds(tensorEnds, shards)) {
            cuts.add(b);
        }
        long total = tensorEnds[tensorEnds.length - 1];
        // (offset, end, stage) of every range, in offset order
        List<long[]> ranges = new ArrayList<>();
        for (int st = 0; st < stageRanges.size(); st++) {
            for (FloatRange r : stageRanges.get(st)) {
                cuts.add(r.offset());
                cuts.add(r.end());
                ranges.add(new long[] {r.offset(), r.end(), st});
            }
        }
        ranges.sort((a, b) -> Long.compare(a[0], b[0]));
        long[] bounds = cuts.stream().mapToLong(Long::longValue).toArray();
        if (bounds[0] != 0 || bounds[bounds.length - 1] != total) {
            throw new IllegalArgumentException("stage ranges reach outside [0, " + total + "): " + Arrays.toString(bounds)
                    + "; re-plan the stages for this model");
        }
        int[] shardStage = new int[bounds.length - 1];
        int r = 0;
        for (int s = 0; s < shardStage.length; s++) {
            while (r < ranges.size() && ranges.get(r)[1] <= bounds[s]) {
                r++;
            }
            if (r == ranges.size() || ranges.get(r)[0] > bounds[s] || ranges.get(r)[1] < bounds[s + 1]) {
                throw new IllegalArgumentException("floats [" + bounds[s] + ", " + bounds[s + 1] + ") belong to no pipeline stage; "
                        + "the stages' ranges must partition the parameter vector");
            }
            shardStage[s] = (int) ranges.get(r)[2];
        }
        return new ChunkPlan(bounds, chunkFloats, stageRanges.size(), shardStage);
    }

    /** Shard bounds at tensor ends, near {@code total * k / shards}. */
    private static long[] tensorBounds(long[] tensorEnds, int shards) {
        if (shards < 1) {
            throw new IllegalArgumentException("shard count must be >= 1, got " + shards);
        }
        if (tensorEnds.length == 0 || tensorEnds[tensorEnds.length - 1] < 1) {
            throw new IllegalArgumentException("no floats to cut: " + Arrays.toString(tensorEnds));
        }
        long total = tensorEnds[tensorEnds.length - 1];
        List<Long> bounds = new ArrayList<>();
        bounds.add(0L);
        int k = 1;
        long prev = 0;
        for (long end : tensorEnds) {
            if (end < prev) {
                throw new IllegalArgumentException("tensor ends must not decrease: " + Arrays.toString(tensorEnds));
            }
            prev = end;
            if (k < shards && end < total && end >= total * k / shards) {
                bounds.add(end);
                while (k < shards && end >= total * k / shards) {
                    k++;
                }
            }
        }
        bounds.add(total);
        return bounds.stream().mapToLong(Long::longValue).toArray();
    }

    /** A one-stage plan from shard bounds and chunk size. */
    public static ChunkPlan fromBounds(long[] shardBounds, int chunkFloats) {
        return new ChunkPlan(shardBounds, chunkFloats, 1, new int[Math.max(0, shardBounds.length - 1)]);
    }

    /** A plan from shard bounds, chunk size and each shard's pipeline stage (the layout document's fields). */
    public static ChunkPlan fromBounds(long[] shardBounds, int chunkFloats, int stages, int[] shardStages) {
        return new ChunkPlan(shardBounds, chunkFloats, stages, shardStages);
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

    /** Pipeline stages of the plan (1 without a pipeline). */
    public int stages() {
        return stages;
    }

    /** The pipeline stage owning shard s. */
    public int shardStage(int s) {
        return shardStage[s];
    }

    public int[] shardStages() {
        return shardStage.clone();
    }

    /** The pipeline stage owning chunk i. */
    public int chunkStage(int i) {
        return chunkStage[i];
    }

    /** Chunks of a stage (all chunks with one stage). */
    public int stageChunkCount(int stage) {
        return stageChunks[stage].length;
    }

    /** Index (in the whole plan) of the k-th chunk of a stage, in offset order. */
    public int stageChunk(int stage, int k) {
        return stageChunks[stage][k];
    }

    /** The stage's parameter ranges (adjacent shards merged), in offset order. */
    public List<FloatRange> stageRanges(int stage) {
        return stageRanges.get(stage);
    }

    /** Floats owned by a stage. */
    public long stageFloats(int stage) {
        long n = 0;
        for (FloatRange r : stageRanges.get(stage)) {
            n += r.length();
        }
        return n;
    }

    @Override
    public String toString() {
        return "ChunkPlan{shards=" + Arrays.toString(shardBounds) + ", chunkFloats=" + chunkFloats + ", chunks=" + chunks()
                + (stages > 1 ? ", stages=" + stages + " " + Arrays.toString(shardStage) : "") + "}";
    }
}
