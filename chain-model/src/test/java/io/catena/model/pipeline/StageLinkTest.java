package io.catena.model.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.kernel.Mat;
import io.catena.model.pipeline.StageLink.Kind;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

class StageLinkTest {

    private static Mat filled(int rows, int cols, double base) {
        Mat m = Mat.allocateActivation(DataType.FLOAT, rows, cols);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                m.set(r, c, base + r * cols + c);
            }
        }
        return m;
    }

    @Test
    void shouldCarryTaggedTensorsBothWays() {
        InMemoryStageLink.Pair link = InMemoryStageLink.connect(1, 2);
        Mat act = filled(3, 4, 10);
        link.upstream().send(Kind.ACTIVATION, 5, 0, act, 100);
        act.set(0, 0, -1); // the link copied it
        Mat into = Mat.allocateActivation(DataType.FLOAT, 3, 4);
        link.downstream().receive(Kind.ACTIVATION, 5, 0, into, 100);
        assertEquals(10.0, into.get(0, 0));
        assertEquals(21.0, into.get(2, 3));
        link.downstream().send(Kind.GRADIENT, 5, 0, filled(3, 4, 0.5), 100);
        link.upstream().receive(Kind.GRADIENT, 5, 0, into, 100);
        assertEquals(0.5, into.get(0, 0));
        assertEquals(2, link.downstream().localStage());
        assertEquals(1, link.downstream().peerStage());
    }

    @Test
    void receiveTimeoutShouldNameTheNeighbourStepAndMicroBatch() {
        InMemoryStageLink.Pair link = InMemoryStageLink.connect(0, 2);
        Mat into = Mat.allocateActivation(DataType.FLOAT, 2, 2);
        long t0 = System.nanoTime();
        StageLinkTimeoutException e = assertThrows(StageLinkTimeoutException.class,
                () -> link.downstream().receive(Kind.ACTIVATION, 7, 3, into, 50));
        assertTrue(System.nanoTime() - t0 >= 45_000_000L, "waited the timeout");
        assertEquals("stage 1 received no activation from stage 0 for step 7, micro-batch 3 within 50 ms "
                + "(is stage 0 alive and running the same schedule?)", e.getMessage());
        assertEquals(0, e.peerStage());
        assertEquals(7, e.step());
        assertEquals(3, e.micro());
        StageLinkTimeoutException g = assertThrows(StageLinkTimeoutException.class,
                () -> link.upstream().receive(Kind.GRADIENT, 2, 0, into, 10));
        assertTrue(g.getMessage().startsWith("stage 0 received no gradient from stage 1 for step 2, micro-batch 0"), g.getMessage());
    }

    @Test
    void sendShouldTimeOutWhenTheNeighbourStopsReceiving() {
        InMemoryStageLink.Pair link = InMemoryStageLink.connect(2, 1);
        Mat t = filled(2, 2, 0);
        link.upstream().send(Kind.ACTIVATION, 0, 0, t, 10);
        StageLinkTimeoutException e = assertThrows(StageLinkTimeoutException.class,
                () -> link.upstream().send(Kind.ACTIVATION, 0, 1, t, 20));
        assertTrue(e.getMessage().contains("stage 2 could not send the activation of step 0, micro-batch 1 to stage 3 within 20 ms"),
                e.getMessage());
    }

    @Test
    void shouldDropStaleStepsAndRejectOtherTags() {
        InMemoryStageLink.Pair link = InMemoryStageLink.connect(0, 4);
        Mat into = Mat.allocateActivation(DataType.FLOAT, 2, 2);
        link.upstream().send(Kind.ACTIVATION, 3, 1, filled(2, 2, 100), 10); // left over from an aborted step 3
        link.upstream().send(Kind.ACTIVATION, 4, 0, filled(2, 2, 7), 10);
        link.downstream().receive(Kind.ACTIVATION, 4, 0, into, 10);
        assertEquals(7.0, into.get(0, 0));
        link.upstream().send(Kind.ACTIVATION, 4, 2, filled(2, 2, 0), 10);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> link.downstream().receive(Kind.ACTIVATION, 4, 1, into, 10));
        assertTrue(e.getMessage().contains("expected the activation of step 4, micro-batch 1 from stage 0 but received step 4, "
                + "micro-batch 2"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> link.upstream().send(Kind.GRADIENT, 0, 0, into, 10));
        assertThrows(IllegalArgumentException.class, () -> link.downstream().receive(Kind.GRADIENT, 0, 0, into, 10));
        link.upstream().send(Kind.ACTIVATION, 5, 0, filled(3, 2, 0), 10);
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                () -> link.downstream().receive(Kind.ACTIVATION, 5, 0, into, 10));
        assertTrue(shape.getMessage().contains("3x2"), shape.getMessage());
    }

    /** A stage whose neighbour never runs fails its step with the timeout, not a hang. */
    @Test
    void runnerShouldFailWithTheTimeoutWhenTheNeighbourIsGone() {
        ColmConfig cfg = PipelineHarness.colmGelu();
        Params params = PipelineHarness.randomParams(cfg, DataType.FLOAT, 1);
        Params grads = new Params(params.layout(), DataType.FLOAT);
        StagePlan plan = StagePlan.plan(cfg, 2, 1, 4);
        InMemoryStageLink.Pair link = InMemoryStageLink.connect(0, 2);
        PipelineStage last = new PipelineStage(cfg, params, grads, plan, 1, 1, 4, 1, false);
        PipelineRunner runner = new PipelineRunner(last, PipelineSchedule.Kind.ONE_F_ONE_B, 2, 2, link.downstream(), null, 30);
        int[] targets = PipelineHarness.randomTokens(8, cfg.vocabSize(), 1);
        StageLinkTimeoutException e = assertThrows(StageLinkTimeoutException.class, () -> runner.runStep(12, null, targets, 0));
        assertTrue(e.getMessage().startsWith("stage 1 received no activation from stage 0 for step 12, micro-batch 0 within 30 ms"),
                e.getMessage());
        // a runner refuses a stage with fewer slots than its schedule needs
        IllegalArgumentException slots = assertThrows(IllegalArgumentException.class, () -> new PipelineRunner(
                new PipelineStage(cfg, params, grads, plan, 0, 1, 4, 1, false), PipelineSchedule.Kind.GPIPE, 2, 2, null,
                link.upstream(), 30));
        assertTrue(slots.getMessage().contains("needs 2"), slots.getMessage());
    }
}
