package io.catena.ps.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The chunk plan on plain numbers: tensor ends and stage ranges, no model. */
class ChunkPlanTest {
    /** Ten tensors of 10 floats. */
    private static final long[] TENSORS = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};

    @Test
    void shardsAreCutAtTensorEndsNearEqualParts() {
        ChunkPlan p = ChunkPlan.of(TENSORS, 4, 1000);
        assertArrayEquals(new long[] {0, 30, 50, 80, 100}, p.shardBounds());
        assertEquals(4, p.shards());
        assertEquals(100, p.totalFloats());
        assertEquals(4, p.chunks(), "one chunk per shard when chunks are large");
        assertEquals(1, p.stages());
        assertEquals(List.of(new FloatRange(0, 100)), p.stageRanges(0));
        assertEquals(100, p.stageFloats(0));
    }

    @Test
    void moreShardsThanTensorsGivesOneShardPerTensorAtMost() {
        ChunkPlan p = ChunkPlan.of(new long[] {7, 50}, 8, 1000);
        assertArrayEquals(new long[] {0, 7, 50}, p.shardBounds());
        assertArrayEquals(new long[] {0, 50}, ChunkPlan.of(new long[] {50}, 3, 1000).shardBounds(), "one tensor: one shard");
    }

    @Test
    void chunksTileEveryShardWithoutCrossingIt() {
        ChunkPlan p = ChunkPlan.of(TENSORS, 3, 7);
        long next = 0;
        for (int i = 0; i < p.chunks(); i++) {
            assertEquals(next, p.chunkOffset(i), "chunk " + i + " follows the previous");
            assertTrue(p.chunkLength(i) >= 1 && p.chunkLength(i) <= 7);
            int s = p.chunkShard(i);
            assertTrue(p.chunkOffset(i) >= p.shardFrom(s) && p.chunkOffset(i) + p.chunkLength(i) <= p.shardTo(s),
                    "chunk " + i + " inside shard " + s);
            next += p.chunkLength(i);
        }
        assertEquals(100, next);
        assertEquals(p.chunks(), p.stageChunkCount(0));
        for (int k = 0; k < p.chunks(); k++) {
            assertEquals(k, p.stageChunk(0, k));
        }
    }

    @Test
    void stageRangesAddCutsAndOwnTheirChunks() {
        // stage 0: [0, 25) and [90, 100) (e.g. the embedding and the tied head), stage 1: [25, 90)
        List<List<FloatRange>> stages = List.of(List.of(new FloatRange(0, 25), new FloatRange(90, 10)), List.of(new FloatRange(25, 65)));
        ChunkPlan p = ChunkPlan.of(TENSORS, 2, 16, stages);
        assertEquals(2, p.stages());
        for (long cut : new long[] {25, 90, 50}) {
            assertTrue(java.util.Arrays.stream(p.shardBounds()).anyMatch(b -> b == cut), "cut at " + cut + ": " + p);
        }
        assertEquals(stages.get(0), p.stageRanges(0));
        assertEquals(stages.get(1), p.stageRanges(1), "adjacent shards of a stage merge back into its range");
        assertEquals(35, p.stageFloats(0));
        assertEquals(65, p.stageFloats(1));
        long[] owned = new long[2];
        for (int st = 0; st < 2; st++) {
            for (int k = 0; k < p.stageChunkCount(st); k++) {
                int i = p.stageChunk(st, k);
                assertEquals(st, p.chunkStage(i));
                assertEquals(st, p.shardStage(p.chunkShard(i)));
                owned[st] += p.chunkLength(i);
            }
        }
        assertArrayEquals(new long[] {35, 65}, owned);
    }

    @Test
    void oneStageOrNoneIsThePlainPlan() {
        ChunkPlan plain = ChunkPlan.of(TENSORS, 3, 16);
        assertEquals(plain.toString(), ChunkPlan.of(TENSORS, 3, 16, null).toString());
        assertEquals(plain.toString(), ChunkPlan.of(TENSORS, 3, 16, List.of(List.of(new FloatRange(0, 100)))).toString());
    }

    @Test
    void theLayoutDocumentsFieldsRebuildTheSamePlan() {
        ChunkPlan p = ChunkPlan.of(TENSORS, 3, 16, List.of(List.of(new FloatRange(0, 40)), List.of(new FloatRange(40, 60))));
        ChunkPlan q = ChunkPlan.fromBounds(p.shardBounds(), p.chunkFloats(), p.stages(), p.shardStages());
        assertEquals(p.toString(), q.toString());
        assertEquals(p.stageRanges(1), q.stageRanges(1));
        assertEquals(ChunkPlan.of(TENSORS, 2, 16).toString(), ChunkPlan.fromBounds(new long[] {0, 50, 100}, 16).toString());
    }

    @Test
    void rangesThatDoNotPartitionTheVectorAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.of(TENSORS, 2, 16,
                List.of(List.of(new FloatRange(0, 40)), List.of(new FloatRange(50, 50)))), "a gap");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.of(TENSORS, 2, 16,
                List.of(List.of(new FloatRange(0, 40)), List.of(new FloatRange(40, 70)))), "past the end");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.of(TENSORS, 2, 16,
                List.of(List.of(new FloatRange(0, 100)), List.of())), "a stage without floats owns no shard");
    }

    @Test
    void badNumbersAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.of(TENSORS, 0, 16), "no shards");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.of(TENSORS, 2, 0), "empty chunks");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.of(new long[] {20, 10}, 2, 16), "decreasing tensor ends");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.of(new long[0], 2, 16), "no tensors");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.fromBounds(new long[] {1, 10}, 4), "bounds must start at 0");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.fromBounds(new long[] {0, 10, 10}, 4), "empty shard");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.fromBounds(new long[] {0, 5, 10}, 4, 2, new int[] {0, 2}),
                "shard stage out of range");
        assertThrows(IllegalArgumentException.class, () -> ChunkPlan.fromBounds(new long[] {0, 5, 10}, 4, 2, new int[] {1, 1}),
                "stage 0 owns nothing");
        assertThrows(IllegalArgumentException.class, () -> new FloatRange(-1, 3));
        assertThrows(IllegalArgumentException.class, () -> new FloatRange(0, 0));
        assertEquals(13, new FloatRange(3, 10).end());
    }
}
