package io.catena.model.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ChainExpansion;
import io.catena.model.ColmConfig;
import io.catena.model.ColmConfig.Activation;
import io.catena.model.ColmConfig.NormKind;
import io.catena.model.ColmConfig.Variant;
import io.catena.model.ParamLayout;
import io.catena.model.io.TrainingState;
import io.catena.model.train.LocalTrainer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class StagePlanTest {

    /** head_dim 16, chains [2, 2] (d_model 64), 8 blocks; the vocabulary decides how heavy the head is. */
    private static ColmConfig uniform(int vocab) {
        return new ColmConfig(vocab, 16, List.of(2, 2), 8, 0, 4.0, Activation.GELU, NormKind.LAYERNORM, 1e-5, 10000.0,
                Variant.COLM, 64, true, null);
    }

    private static List<ColmConfig> layoutVariety() {
        return List.of(PipelineHarness.colmGelu(), PipelineHarness.airSwiglu(), uniform(32),
                new ColmConfig(9, 2, List.of(1, 1, 1), 5, 1, 2.0, Activation.GELU, NormKind.RMSNORM, 1e-5, 100.0,
                        Variant.COLM_AIR, 8, true, null),
                new ColmConfig(17, 4, List.of(3), 4, 0, 2.0, Activation.SWIGLU, NormKind.LAYERNORM, 1e-5, 100.0,
                        Variant.COLM, 8, false, null));
    }

    @Test
    void uniformBlocksShouldSplitEvenly() {
        long[] ten = new long[8];
        Arrays.fill(ten, 10);
        assertArrayEquals(new int[] {2, 4, 6, 8}, StagePlan.partition(ten, 0, 0, 4));
        assertArrayEquals(new int[] {4, 8}, StagePlan.partition(ten, 0, 0, 2));
        assertArrayEquals(new int[] {8}, StagePlan.partition(ten, 0, 0, 1));
        long[] seven = new long[7];
        Arrays.fill(seven, 1);
        int[] ends = StagePlan.partition(seven, 0, 0, 3);
        int[] sizes = {ends[0], ends[1] - ends[0], ends[2] - ends[1]};
        assertEquals(3, Arrays.stream(sizes).max().getAsInt(), Arrays.toString(sizes));
        assertEquals(2, Arrays.stream(sizes).min().getAsInt(), Arrays.toString(sizes));
        // a head worth two blocks: the last stage takes two fewer blocks
        assertArrayEquals(new int[] {5, 8}, StagePlan.partition(ten, 0, 20, 2));
        // blocks of different cost: [5,1,1,1 | 1,1,1,5] is the only split with max 8
        assertArrayEquals(new int[] {4, 8}, StagePlan.partition(new long[] {5, 1, 1, 1, 1, 1, 1, 5}, 0, 0, 2));
    }

    @Test
    void modelWithCheapEmbeddingAndHeadShouldGetEqualStages() {
        StagePlan plan = StagePlan.plan(uniform(32), 4, 2, 16);
        for (StagePlan.Stage s : plan.stages()) {
            assertEquals(4, s.units(), plan.describe());
            assertEquals("blocks [" + 2 * s.index() + ", " + (2 * s.index() + 2) + ")", s.unitsLabel());
        }
        assertTrue(plan.imbalance() < 1.05, plan.describe());
        assertEquals(plan.costs().blockFlops() * 2 + plan.costs().embeddingFlops(), plan.stage(0).flops());
        assertEquals(plan.costs().blockFlops() * 2 + plan.costs().headFlops(), plan.stage(3).flops());
    }

    @Test
    void heavyHeadShouldLeaveTheLastStageFewerBlocks() {
        StagePlan plan = StagePlan.plan(uniform(4096), 2, 2, 16);
        StageCostModel c = plan.costs();
        assertTrue(c.headFlops() > 5 * c.blockFlops(), "head " + c.headFlops() + " vs block " + c.blockFlops());
        assertTrue(plan.stage(1).units() < plan.stage(0).units(), plan.describe());
        // no other split, at block halves, has a smaller largest stage
        long best = Math.max(plan.stage(0).cost(), plan.stage(1).cost());
        for (int cut = 1; cut < 16; cut++) {
            long worst = Math.max(c.stageCost(0, cut, true, false), c.stageCost(cut, 16, false, true));
            assertTrue(best <= worst, "cut at " + cut + " would give " + worst + " < " + best);
        }
    }

    @Test
    void costModelShouldCountChainLinearsAttentionAndHead() {
        ColmConfig cfg = uniform(32);
        StageCostModel c = StageCostModel.of(cfg, 2, 16, 4);
        long rows = 32;
        // chain linear D->D with chains of 32 columns: 32*32 + 32*64 MACs per row; FFN 4x wider
        long dd = 32 * 32 + 32 * 64;
        long ffn = 2 * 4 * dd;
        long core = 4L * 2 * 16 * 17 * 16; // heads * batch * T(T+1) * hd
        assertEquals(6 * (rows * 4 * dd + core), c.attentionFlops());
        assertEquals(6 * rows * ffn, c.ffnFlops());
        assertEquals(6 * (rows * (4 * dd + ffn) + core), c.blockFlops());
        assertEquals(c.attentionFlops() + 2 * c.blockFlops() + c.headFlops(), c.stageFlops(4, 9, false, true));
        assertEquals(6 * rows * 64 * 32 + StageCostModel.CROSS_ENTROPY_FLOPS_PER_LOGIT * rows * 32 * 2, c.headFlops());
        assertEquals(rows * 64 * 4, c.boundaryBytes());
    }

    /** Every element of the flat parameter vector belongs to exactly one stage: no gap, no overlap. */
    @Test
    void stageRangesShouldPartitionTheParameterVector() {
        for (ColmConfig cfg : layoutVariety()) {
            for (int pp = 1; pp <= cfg.layers(); pp++) {
                StagePlan plan = StagePlan.plan(cfg, pp, 2, 4);
                assertPartition(plan, new ParamLayout(cfg));
            }
        }
    }

    static void assertPartition(StagePlan plan, ParamLayout layout) {
        String where = plan.describe();
        List<long[]> all = new ArrayList<>();
        for (StagePlan.Stage s : plan.stages()) {
            long prevEnd = -1;
            for (StagePlan.ParamRange r : s.paramRanges()) {
                assertTrue(r.length() > 0, where);
                assertTrue(r.offset() > prevEnd, where + ": ranges sorted and merged where adjacent");
                prevEnd = r.end();
                all.add(new long[] {r.offset(), r.end(), s.index()});
            }
            // one run per chain (all merge into one when a single stage owns everything)
            int chains = layout.config().numChains();
            assertEquals(plan.numStages() == 1 ? 1 : chains, s.paramRanges().size(), where + " stage " + s.index());
        }
        all.sort((a, b) -> Long.compare(a[0], b[0]));
        long at = 0;
        for (long[] r : all) {
            assertEquals(at, r[0], where + ": gap or overlap at " + at);
            at = r[1];
        }
        assertEquals(layout.size(), at, where + ": the ranges must cover every parameter");
        // and each tensor lies in the range of the stage that runs it
        for (ParamLayout.Entry e : layout.entries()) {
            String[] part = e.name().split("\\.");
            int owner = e.name().startsWith("embed.") ? 0
                    : e.name().startsWith("layers.") ? stageOfUnit(plan, 2 * Integer.parseInt(part[1])
                            + (part[2].equals("norm1") || part[2].equals("attn") ? 0 : 1))
                    : plan.numStages() - 1;
            boolean inside = false;
            for (StagePlan.ParamRange r : plan.stage(owner).paramRanges()) {
                inside |= e.offset() >= r.offset() && e.offset() + e.size() <= r.end();
            }
            assertTrue(inside, e.name() + " should be in stage " + owner + "'s ranges\n" + where);
        }
    }

    private static int stageOfUnit(StagePlan plan, int unit) {
        for (StagePlan.Stage s : plan.stages()) {
            if (unit >= s.firstUnit() && unit < s.endUnit()) {
                return s.index();
            }
        }
        throw new AssertionError("sublayer " + unit + " is in no stage");
    }

    /** Boundaries between a block's halves partition the parameters too, and their ranges are still one run per chain. */
    @Test
    void halfBlockBoundariesShouldPartitionTheParameterVector() {
        for (ColmConfig cfg : layoutVariety()) {
            int units = 2 * cfg.layers();
            StagePlan plan = StagePlan.plan(cfg, 2, 2, 4);
            for (int cut = 1; cut < units; cut++) {
                assertPartition(plan.withUnitEnds(cut, units), new ParamLayout(cfg));
            }
            if (cfg.layers() >= 3) {
                assertPartition(StagePlan.plan(cfg, 3, 2, 4).withUnitEnds(1, units - 1, units), new ParamLayout(cfg));
            }
        }
        StagePlan plan = StagePlan.plan(uniform(32), 3, 2, 16).withUnitEnds(3, 9, 16);
        assertEquals("blocks [0, 1) + attention of block 1", plan.stage(0).unitsLabel());
        assertEquals("FFN of block 1 + blocks [2, 4) + attention of block 4", plan.stage(1).unitsLabel());
        assertEquals("FFN of block 4 + blocks [5, 8)", plan.stage(2).unitsLabel());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> plan.withUnitEnds(3, 3, 16));
        assertTrue(e.getMessage().contains("leave stage 1 empty"), e.getMessage());
    }

    /** A head worth ~0.7 of a block: the best split gives the last stage the FFN half of the middle block only. */
    @Test
    void planShouldCutBetweenBlockHalvesWhenThatBalancesTheHead() {
        ColmConfig cfg = uniform(448); // head ~0.7 of a block, an attention half ~0.43 (planning cost)
        StagePlan plan = StagePlan.plan(cfg, 2, 2, 16);
        StageCostModel c = plan.costs();
        long blockAligned = Long.MAX_VALUE;
        for (int cut = 2; cut < 16; cut += 2) {
            blockAligned = Math.min(blockAligned, Math.max(c.stageCost(0, cut, true, false), c.stageCost(cut, 16, false, true)));
        }
        long planned = Math.max(plan.stage(0).cost(), plan.stage(1).cost());
        assertEquals(1, plan.stage(0).endUnit() % 2, plan.describe());
        assertTrue(planned < blockAligned, "half-block cut " + planned + " vs best whole-block cut " + blockAligned + "\n" + plan.describe());
    }

    /** Growth widens the blocks (cost ~ d^2) more than the head (~ d): the re-plan moves blocks back to the last stage. */
    @Test
    void planShouldBeRecomputedForAGrownModel() {
        ColmConfig cfg = uniform(4096);
        TrainingState grown = ChainExpansion.expand(LocalTrainer.freshState(cfg, 1), List.of(4), true, null, 2);
        ColmConfig g = grown.config();
        StagePlan plan = StagePlan.plan(cfg, 2, 2, 16);
        StagePlan replanned = plan.replan(g);
        assertEquals(g, replanned.config());
        assertEquals(2, replanned.numStages());
        assertTrue(replanned.costs().blockFlops() > plan.costs().blockFlops());
        assertPartition(replanned, grown.params().layout());
        assertTrue(replanned.stage(0).units() < plan.stage(0).units(), plan.describe() + replanned.describe());
        for (StagePlan p : List.of(plan, replanned)) {
            long best = Math.max(p.stage(0).cost(), p.stage(1).cost());
            for (int cut = 1; cut < 16; cut++) {
                long worst = Math.max(p.costs().stageCost(0, cut, true, false), p.costs().stageCost(cut, 16, false, true));
                assertTrue(best <= worst, "cut at " + cut + " would be better than\n" + p.describe());
            }
        }
        // growth appends: the old chains' tensors keep their offsets, so stage 1 (which gains sublayers in the re-plan) still owns
        // the old chains' norm_f and head, and every old run of stage 1 lies inside one of its new runs
        long oldSize = new ParamLayout(cfg).size();
        for (StagePlan.ParamRange r : plan.stage(1).paramRanges()) {
            boolean covered = false;
            for (StagePlan.ParamRange n : replanned.stage(1).paramRanges()) {
                covered |= r.offset() >= n.offset() && r.end() <= n.end();
            }
            assertTrue(covered && r.end() <= oldSize, r + " of the old plan");
        }
    }

    /**
     * Fitted to 1F1B (whose stages keep a forward of slack) the split gives the first stage more work and a shorter
     * simulated step than the balanced split; fitted to either schedule it is never longer than balanced.
     */
    @Test
    void splitFittedToTheScheduleShouldShortenTheSimulatedStep() {
        ColmConfig deep = new ColmConfig(512, 32, List.of(2, 2), 24, 0, 4.0, Activation.GELU, NormKind.LAYERNORM, 1e-5, 10000.0,
                Variant.COLM, 64, true, null);
        StagePlan balanced = StagePlan.plan(deep, 2, 2, 64);
        StagePlan oneF = StagePlan.plan(deep, 2, 2, 64, PipelineSchedule.Kind.ONE_F_ONE_B, 8);
        assertTrue(oneF.stage(0).endUnit() > balanced.stage(0).endUnit(), oneF.describe() + balanced.describe());
        assertTrue(oneF.simulatedStepVersusBalanced() < 0.97, oneF.describe());
        assertEquals(PipelineSchedule.Kind.ONE_F_ONE_B, oneF.schedule());
        assertEquals(8, oneF.micros());
        assertEquals(oneF.stages(), oneF.replan(deep).stages(), "replan keeps the schedule it was fitted to");
        assertEquals(balanced.stages(), StagePlan.plan(deep, 2, 2, 64, PipelineSchedule.Kind.ONE_F_ONE_B, 0).stages(), "0: balanced");
        for (ColmConfig cfg : List.of(deep, uniform(32), uniform(4096), PipelineHarness.colmGelu(), PipelineHarness.airSwiglu())) {
            for (int pp = 2; pp <= Math.min(4, cfg.layers()); pp++) {
                StagePlan even = StagePlan.plan(cfg, pp, 2, 8);
                for (int m : new int[] {1, 2, 4, 8, 16}) {
                    for (PipelineSchedule.Kind kind : PipelineSchedule.Kind.values()) {
                        StagePlan fitted = StagePlan.plan(cfg, pp, 2, 8, kind, m);
                        assertTrue(fitted.simulatedStepVersusBalanced() <= 1.0, fitted.describe() + even.describe());
                        assertPartition(fitted, new ParamLayout(cfg));
                    }
                }
            }
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> StagePlan.plan(deep, 2, 2, 64, PipelineSchedule.Kind.GPIPE, -1));
        assertTrue(e.getMessage().contains("micro-batches"), e.getMessage());
    }

    @Test
    void shouldRejectImpossibleStageCounts() {
        ColmConfig cfg = PipelineHarness.colmGelu();
        IllegalArgumentException tooMany = assertThrows(IllegalArgumentException.class, () -> StagePlan.plan(cfg, 5, 1, 4));
        assertEquals("pp=5 stages need at least 5 transformer blocks (every stage runs one or more), but the model has layers=4",
                tooMany.getMessage());
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> StagePlan.plan(cfg, 0, 1, 4));
        assertTrue(none.getMessage().contains("at least 1 stage"), none.getMessage());
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class, () -> StagePlan.plan(cfg, 2, 0, 4));
        assertTrue(shape.getMessage().contains("micro-batch"), shape.getMessage());
        assertThrows(IllegalArgumentException.class, () -> StagePlan.plan(cfg, 2, 1, 4).stage(2));
    }
}
