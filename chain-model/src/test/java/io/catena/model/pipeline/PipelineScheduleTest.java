package io.catena.model.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.pipeline.PipelineSchedule.Kind;
import io.catena.model.pipeline.PipelineSchedule.Op;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class PipelineScheduleTest {

    @ParameterizedTest
    @EnumSource(Kind.class)
    void everyStageShouldRunEachMicroBatchOnceForwardBeforeBackwardWithinItsSlots(Kind kind) {
        for (int p = 1; p <= 6; p++) {
            for (int m = 1; m <= 9; m++) {
                for (int s = 0; s < p; s++) {
                    List<Op> ops = PipelineSchedule.ops(kind, p, s, m);
                    String where = kind + " P=" + p + " M=" + m + " stage " + s + " " + ops;
                    assertEquals(2 * m, ops.size(), where);
                    int nextF = 0;
                    int nextB = 0;
                    for (Op op : ops) {
                        if (op.forward()) {
                            assertEquals(nextF++, op.micro(), where + ": forwards in micro-batch order");
                        } else {
                            assertEquals(nextB++, op.micro(), where + ": backwards in micro-batch order");
                            assertTrue(op.micro() < nextF, where + ": B" + op.micro() + " before F" + op.micro());
                        }
                    }
                    int inFlight = PipelineSchedule.maxInFlight(ops);
                    int expected = kind == Kind.GPIPE ? m : s == p - 1 ? 1 : Math.min(m, p - s + 1);
                    assertEquals(expected, inFlight, where + ": activations held at once");
                    assertEquals(expected, PipelineSchedule.slots(kind, p, s, m), where);
                }
            }
        }
    }

    @Test
    void oneFOneBShouldWarmUpThenAlternateThenCoolDown() {
        assertEquals("[F0, F1, F2, F3, F4, B0, F5, B1, F6, B2, F7, B3, B4, B5, B6, B7]",
                PipelineSchedule.ops(Kind.ONE_F_ONE_B, 4, 0, 8).toString());
        assertEquals("[F0, F1, F2, B0, F3, B1, F4, B2, F5, B3, F6, B4, F7, B5, B6, B7]",
                PipelineSchedule.ops(Kind.ONE_F_ONE_B, 4, 2, 8).toString());
        assertEquals("[F0, B0, F1, B1, F2, B2]", PipelineSchedule.ops(Kind.ONE_F_ONE_B, 4, 3, 3).toString());
        assertEquals("[F0, F1, B0, B1]", PipelineSchedule.ops(Kind.ONE_F_ONE_B, 4, 0, 2).toString());
        assertEquals("[F0, F1, F2, B0, B1, B2]", PipelineSchedule.ops(Kind.GPIPE, 2, 1, 3).toString());
    }

    /** Dependencies across stages are satisfiable (the simulation would throw on a deadlock) and the bubble is the theory's. */
    @ParameterizedTest
    @EnumSource(Kind.class)
    void simulatedBubbleShouldEqualTheory(Kind kind) {
        for (int p = 1; p <= 6; p++) {
            for (int m = 1; m <= 12; m++) {
                double theory = PipelineSchedule.theoreticalBubble(p, m);
                assertEquals((p - 1.0) / (m + p - 1.0), theory, 0.0);
                for (double backward : new double[] {1.0, 2.0}) {
                    double sim = PipelineSchedule.simulatedBubble(kind, p, m, 1.0, backward);
                    assertEquals(theory, sim, 1e-12, kind + " P=" + p + " M=" + m + " backward/forward=" + backward);
                }
            }
        }
        assertEquals(0.75, PipelineSchedule.theoreticalBubble(4, 1), 0.0);
        assertEquals(3.0 / 11.0, PipelineSchedule.theoreticalBubble(4, 8), 1e-15);
    }

    /**
     * The one micro-batch of 1F1B slack ({@link PipelineSchedule#warmupForwards}): with op times that jitter
     * (uniform +-20% around F = 1, B = 2, fixed per seed), a stage whose downstream gradient comes late runs
     * its extra forward instead of idling, so the step is shorter on average than with the textbook P-1-s
     * warm-up, and never longer by more than an op's jitter.
     */
    @Test
    void oneFOneBSlackShouldShortenStepsWhoseOpTimesJitter() {
        for (int p : new int[] {2, 4}) {
            int m = 8;
            double slackSum = 0;
            double textbookSum = 0;
            for (int seed = 0; seed < 200; seed++) {
                java.util.Random rnd = new java.util.Random(seed);
                double[][] f = new double[p][m];
                double[][] b = new double[p][m];
                for (int s = 0; s < p; s++) {
                    for (int i = 0; i < m; i++) {
                        f[s][i] = 1.0 + 0.4 * (rnd.nextDouble() - 0.5);
                        b[s][i] = 2.0 + 0.8 * (rnd.nextDouble() - 0.5);
                    }
                }
                PipelineSchedule.OpTime time = (s, op) -> op.forward() ? f[s][op.micro()] : b[s][op.micro()];
                List<List<Op>> slack = new java.util.ArrayList<>();
                List<List<Op>> textbook = new java.util.ArrayList<>();
                for (int s = 0; s < p; s++) {
                    slack.add(PipelineSchedule.ops(Kind.ONE_F_ONE_B, p, s, m));
                    textbook.add(PipelineSchedule.oneFOneB(m, Math.min(m, p - 1 - s)));
                }
                double withSlack = PipelineSchedule.simulatedMakespan(slack, m, time);
                double without = PipelineSchedule.simulatedMakespan(textbook, m, time);
                assertTrue(withSlack <= without + 0.8, "P=" + p + " seed " + seed + ": " + withSlack + " vs " + without);
                slackSum += withSlack;
                textbookSum += without;
            }
            System.out.printf("1F1B P=%d M=%d, op times +-20%%: mean step %.3f with slack, %.3f textbook (ideal %d)%n", p, m,
                    slackSum / 200, textbookSum / 200, 3 * (m + p - 1));
            assertTrue(slackSum < 0.98 * textbookSum, "P=" + p + ": slack " + slackSum / 200 + " vs textbook " + textbookSum / 200);
        }
    }

    @Test
    void shouldParseTheCommandLineNames() {
        assertEquals(Kind.GPIPE, Kind.parse("GPipe"));
        assertEquals(Kind.ONE_F_ONE_B, Kind.parse("1f1b"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Kind.parse("zigzag"));
        assertTrue(e.getMessage().contains("gpipe or 1f1b"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PipelineSchedule.ops(Kind.GPIPE, 2, 2, 4));
        assertThrows(IllegalArgumentException.class, () -> PipelineSchedule.ops(Kind.GPIPE, 2, 0, 0));
    }
}
