package io.catena.model.pipeline;

import io.catena.model.ColmConfig;
import io.catena.model.ColmConfig.Activation;
import io.catena.model.ColmConfig.NormKind;
import io.catena.model.ColmConfig.Variant;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.nd4j.linalg.api.buffer.DataType;

/** Small models deep enough for 3 stages, and P stages of one model run in threads over in-memory links. */
final class PipelineHarness {
    static final long LINK_TIMEOUT_MS = 30_000;

    private PipelineHarness() {
    }

    /** CoLM, GELU, LayerNorm, biases, unequal chains and loss weights, 4 blocks. */
    static ColmConfig colmGelu() {
        return new ColmConfig(13, 4, List.of(1, 2), 4, 0, 2.0, Activation.GELU, NormKind.LAYERNORM, 1e-5, 10000.0,
                Variant.COLM, 16, true, List.of(0.3, 0.7));
    }

    /** CoLM-Air, SwiGLU, RMSNorm, no biases, three chains, 3 blocks. */
    static ColmConfig airSwiglu() {
        return new ColmConfig(11, 4, List.of(2, 2, 4), 3, 2, 1.5, Activation.SWIGLU, NormKind.RMSNORM, 1e-5, 100.0,
                Variant.COLM_AIR, 16, false, null);
    }

    static List<ColmConfig> configs() {
        return List.of(colmGelu(), airSwiglu());
    }

    static Params randomParams(ColmConfig cfg, DataType type, long seed) {
        return io.catena.model.TinyConfigs.randomParams(cfg, type, seed);
    }

    static int[] randomTokens(int n, int vocab, long seed) {
        return io.catena.model.TinyConfigs.randomTokens(n, vocab, seed);
    }

    static double[] copy(Params p) {
        double[] a = new double[p.buf().length()];
        for (int i = 0; i < a.length; i++) {
            a[i] = p.buf().get(i);
        }
        return a;
    }

    /** P stages of one model sharing one parameter and one gradient buffer, each with its runner. */
    static final class Pipeline {
        final StagePlan plan;
        final Params grads;
        final List<PipelineStage> stages = new ArrayList<>();
        final List<PipelineRunner> runners = new ArrayList<>();

        Pipeline(ColmConfig cfg, Params params, int pp, int micros, int microBatch, int seqLen, PipelineSchedule.Kind kind,
                 boolean recompute) {
            this(cfg, params, StagePlan.plan(cfg, pp, microBatch, seqLen), micros, microBatch, seqLen, kind, recompute);
        }

        Pipeline(ColmConfig cfg, Params params, StagePlan plan, int micros, int microBatch, int seqLen, PipelineSchedule.Kind kind,
                 boolean recompute) {
            int pp = plan.numStages();
            this.plan = plan;
            grads = new Params(params.layout(), params.dataType());
            List<InMemoryStageLink.Pair> links = new ArrayList<>();
            for (int s = 0; s + 1 < pp; s++) {
                links.add(InMemoryStageLink.connect(s, micros));
            }
            for (int s = 0; s < pp; s++) {
                int slots = PipelineSchedule.slots(kind, pp, s, micros);
                PipelineStage stage = new PipelineStage(cfg, params, grads, plan, s, microBatch, seqLen, slots, recompute);
                stages.add(stage);
                StageLink prev = s == 0 ? null : links.get(s - 1).downstream();
                StageLink next = s == pp - 1 ? null : links.get(s).upstream();
                runners.add(new PipelineRunner(stage, kind, pp, micros, prev, next, LINK_TIMEOUT_MS));
            }
        }

        /** Runs one step on every stage in its own thread; returns the results in stage order. */
        List<PipelineRunner.StepResult> step(long step, int[] inputs, int[] targets, int frozen) {
            int pp = runners.size();
            ExecutorService pool = Executors.newFixedThreadPool(pp);
            try {
                List<Future<PipelineRunner.StepResult>> futures = new ArrayList<>();
                for (int s = 0; s < pp; s++) {
                    PipelineRunner r = runners.get(s);
                    boolean first = s == 0;
                    boolean last = s == pp - 1;
                    futures.add(pool.submit(() -> r.runStep(step, first ? inputs : null, last ? targets : null, frozen)));
                }
                List<PipelineRunner.StepResult> out = new ArrayList<>();
                for (Future<PipelineRunner.StepResult> f : futures) {
                    out.add(f.get(2 * LINK_TIMEOUT_MS, TimeUnit.MILLISECONDS));
                }
                return out;
            } catch (ExecutionException e) {
                throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
            } catch (Exception e) {
                throw new IllegalStateException(e);
            } finally {
                pool.shutdownNow();
            }
        }
    }
}
