package io.catena.model.layers;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.catena.model.ColmConfig;
import io.catena.model.ColmModel;
import io.catena.model.ParamLayout;
import io.catena.model.Params;
import io.catena.model.kernel.Buf;
import io.catena.model.kernel.FlashAttention;
import io.catena.model.kernel.FlashAttentionScalar;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The tiled attention core (online softmax, recomputing backward) against float64 references: the kernel of one
 * (head, sequence) pair against the textbook formulas, and whole CoLM / CoLM-Air models against the same model in
 * float64 on the materialized core; sequence lengths that are not whole tiles, causal mask throughout.
 */
class TiledAttentionTest {

    static List<Object[]> kernelCases() {
        int tile = FlashAttention.TILE;
        List<Object[]> cases = new ArrayList<>();
        for (int t : new int[] {1, 5, tile - 1, tile + 1, 2 * tile + 3, 3 * tile + 17}) {
            cases.add(new Object[] {t, 64});
        }
        cases.add(new Object[] {tile + 7, 24}); // head dim padded to whole vectors
        cases.add(new Object[] {2 * tile, 64});
        return cases;
    }

    /** The float32 vector kernel (second pair of a buffer, so offsets matter) vs float64 formulas. */
    @ParameterizedTest
    @MethodSource("kernelCases")
    void vectorKernelShouldMatchFloat64Reference(int t, int hd) {
        SplittableRandom rnd = new SplittableRandom(t * 31L + hd);
        double[][] q = random(rnd, t, hd, 2.0), k = random(rnd, t, hd, 2.0), v = random(rnd, t, hd, 1.0), dO = random(rnd, t, hd, 1.0);
        Reference ref = new Reference(q, k, v, dO);
        int off = t * hd; // pair 1 of 2
        ByteBuffer qb = floats(q, off), kb = floats(k, off), vb = floats(v, off), dOb = floats(dO, off);
        ByteBuffer out = floats(new double[t][hd], off), lse = ByteBuffer.allocateDirect(8 * t).order(ByteOrder.nativeOrder());
        float scale = (float) (1.0 / Math.sqrt(hd));
        FlashAttention.Workspace ws = FlashAttention.workspace();
        FlashAttention.loadForward(ws, qb, kb, vb, off, t, hd);
        int tiles = FlashAttention.tiles(t);
        FlashAttention.forwardTiles(ws, 0, tiles / 2, t, hd, scale, out, off, lse, t); // two calls, as split over threads
        FlashAttention.forwardTiles(ws, tiles / 2, tiles, t, hd, scale, out, off, lse, t);
        ByteBuffer dq = floats(new double[t][hd], off), dk = floats(new double[t][hd], off), dv = floats(new double[t][hd], off);
        FlashAttention.backward(ws, qb, kb, vb, dOb, off, t, hd, scale, lse, t, out, off, hd, dq, dk, dv);

        double[] lseRef = new double[t];
        for (int i = 0; i < t; i++) {
            lseRef[i] = ref.lse[i];
        }
        String at = "T " + t + " hd " + hd;
        close(ref.o, read(out, off, t, hd), 2e-5, at + " output");
        close(new double[][] {lseRef}, new double[][] {readLse(lse, t, t)}, 2e-5, at + " lse");
        close(ref.dq, read(dq, off, t, hd), 1e-4, at + " dq");
        close(ref.dk, read(dk, off, t, hd), 1e-4, at + " dk");
        close(ref.dv, read(dv, off, t, hd), 1e-4, at + " dv");
    }

    /** The float64 twin (what gradient checks run) with tiles much smaller than T, so the online rescaling runs. */
    @ParameterizedTest
    @MethodSource("kernelCases")
    void scalarTwinShouldMatchFloat64Reference(int t, int hd) {
        if (t > 200) {
            return; // the scalar twin is O(T^2 hd^2) in its backward; small T covers it
        }
        SplittableRandom rnd = new SplittableRandom(t * 17L + hd);
        double[][] q = random(rnd, t, hd, 2.0), k = random(rnd, t, hd, 2.0), v = random(rnd, t, hd, 1.0), dO = random(rnd, t, hd, 1.0);
        Reference ref = new Reference(q, k, v, dO);
        for (int tile : new int[] {3, 16, FlashAttention.TILE}) {
            Buf qb = doubles(q), kb = doubles(k), vb = doubles(v), dOb = doubles(dO), out = doubles(new double[t][hd]);
            Buf lse = Buf.of(Nd4j.zeros(DataType.DOUBLE, t));
            double scale = 1.0 / Math.sqrt(hd);
            FlashAttentionScalar.forward(qb, kb, vb, 0, t, hd, scale, tile, out, lse, 0);
            Buf dq = doubles(new double[t][hd]), dk = doubles(new double[t][hd]), dv = doubles(new double[t][hd]);
            FlashAttentionScalar.backward(qb, kb, vb, dOb, 0, t, hd, scale, tile, lse, 0, out, 0, hd, dq, dk, dv);
            String at = "T " + t + " hd " + hd + " tile " + tile;
            double[] l = new double[t];
            for (int i = 0; i < t; i++) {
                l[i] = lse.get(i);
            }
            close(new double[][] {ref.lse}, new double[][] {l}, 1e-12, at + " lse");
            close(ref.o, read(out, t, hd), 1e-12, at + " output");
            close(ref.dq, read(dq, t, hd), 1e-11, at + " dq");
            close(ref.dk, read(dk, t, hd), 1e-11, at + " dk");
            close(ref.dv, read(dv, t, hd), 1e-11, at + " dv");
        }
    }

    static List<Object[]> modelCases() {
        // shaped like TinyConfigs' CoLM and CoLM-Air configs, with head dims the vector kernel runs at full width
        // and room for sequences longer than a tile
        ColmConfig colm = new ColmConfig(13, 32, List.of(1, 2), 2, 0, 2.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 10000.0, ColmConfig.Variant.COLM, 160, true, List.of(0.3, 0.7));
        ColmConfig air = new ColmConfig(11, 16, List.of(2, 2, 4), 1, 2, 1.5, ColmConfig.Activation.SWIGLU,
                ColmConfig.NormKind.RMSNORM, 1e-5, 100.0, ColmConfig.Variant.COLM_AIR, 160, false, null);
        int tile = FlashAttention.TILE;
        return List.of(new Object[] {colm, tile + 6}, new Object[] {colm, 2 * tile + 5}, new Object[] {air, tile - 3},
                new Object[] {air, 2 * tile + 1});
    }

    /**
     * A float32 model on the tiled core vs the same model in float64 on the materialized core: losses and gradients.
     * The float32 materialized model (its Vector API kernels, kept for A/B runs) is held to the same reference.
     */
    @ParameterizedTest
    @MethodSource("modelCases")
    void tiledModelShouldMatchFloat64MaterializedModel(ColmConfig cfg, int seq) {
        for (Attention.Core core : Attention.Core.values()) {
            float32ModelShouldMatchFloat64MaterializedModel(cfg, seq, core);
        }
    }

    private static void float32ModelShouldMatchFloat64MaterializedModel(ColmConfig cfg, int seq, Attention.Core core) {
        int batch = 2;
        ParamLayout layout = new ParamLayout(cfg);
        Params p64 = new Params(layout, DataType.DOUBLE);
        p64.initialize(5, 0);
        SplittableRandom rnd = new SplittableRandom(3);
        for (int i = 0; i < p64.buf().length(); i++) {
            p64.buf().set(i, p64.buf().get(i) + 0.2 * (rnd.nextDouble() - 0.5)); // sharper attention than at init
        }
        Params p32 = new Params(layout, DataType.FLOAT);
        for (int i = 0; i < p64.buf().length(); i++) {
            p32.buf().set(i, p64.buf().get(i));
            p64.buf().set(i, p32.buf().get(i)); // both models see the same (float32-representable) weights
        }
        int[] in = new int[batch * seq];
        int[] tg = new int[batch * seq];
        for (int i = 0; i < in.length; i++) {
            in[i] = rnd.nextInt(cfg.vocabSize());
            tg[i] = rnd.nextInt(cfg.vocabSize());
        }
        Params g32 = new Params(layout, DataType.FLOAT);
        Params g64 = new Params(layout, DataType.DOUBLE);
        Attention.Core before = Attention.defaultCore;
        double[] l32;
        double[] l64;
        try {
            Attention.defaultCore = core;
            l32 = new ColmModel(cfg, p32, g32, batch, seq).forwardBackward(in, tg, 0, 0, false, 1.0);
            Attention.defaultCore = Attention.Core.MATERIALIZED;
            l64 = new ColmModel(cfg, p64, g64, batch, seq).forwardBackward(in, tg, 0, 0, false, 1.0);
        } finally {
            Attention.defaultCore = before;
        }
        for (int j = 0; j < l32.length; j++) {
            assertTrue(Math.abs(l32[j] - l64[j]) < 1e-5 * Math.abs(l64[j]), core + " loss " + j + ": " + l32[j] + " vs " + l64[j]);
        }
        double max = 0;
        for (int i = 0; i < g64.buf().length(); i++) {
            max = Math.max(max, Math.abs(g64.buf().get(i)));
        }
        for (int i = 0; i < g64.buf().length(); i++) {
            double a = g32.buf().get(i), b = g64.buf().get(i);
            assertTrue(Math.abs(a - b) <= 1e-4 * max + 1e-3 * Math.abs(b), core + " gradient element " + i + ": " + a + " vs " + b);
        }
    }

    /** Causal softmax attention of one sequence and its gradients, straight from the formulas, in float64. */
    private static final class Reference {
        final double[][] o;
        final double[] lse;
        final double[][] dq;
        final double[][] dk;
        final double[][] dv;

        Reference(double[][] q, double[][] k, double[][] v, double[][] dO) {
            int t = q.length, hd = q[0].length;
            double scale = 1.0 / Math.sqrt(hd);
            o = new double[t][hd];
            lse = new double[t];
            dq = new double[t][hd];
            dk = new double[t][hd];
            dv = new double[t][hd];
            for (int i = 0; i < t; i++) {
                double[] s = new double[i + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= i; j++) {
                    s[j] = scale * dot(q[i], k[j]);
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                    sum += Math.exp(s[j] - max);
                }
                lse[i] = max + Math.log(sum);
                double[] p = new double[i + 1], dp = new double[i + 1];
                double delta = 0;
                for (int j = 0; j <= i; j++) {
                    p[j] = Math.exp(s[j] - lse[i]);
                    dp[j] = dot(dO[i], v[j]);
                    delta += p[j] * dp[j];
                    for (int c = 0; c < hd; c++) {
                        o[i][c] += p[j] * v[j][c];
                    }
                }
                for (int j = 0; j <= i; j++) {
                    double ds = p[j] * (dp[j] - delta) * scale;
                    for (int c = 0; c < hd; c++) {
                        dq[i][c] += ds * k[j][c];
                        dk[j][c] += ds * q[i][c];
                        dv[j][c] += p[j] * dO[i][c];
                    }
                }
            }
        }
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int c = 0; c < a.length; c++) {
            s += a[c] * b[c];
        }
        return s;
    }

    private static double[][] random(SplittableRandom rnd, int t, int hd, double amp) {
        double[][] x = new double[t][hd];
        for (double[] row : x) {
            for (int c = 0; c < hd; c++) {
                row[c] = (float) (amp * (2 * rnd.nextDouble() - 1)); // float32 values, shared by both precisions
            }
        }
        return x;
    }

    /** A direct float32 buffer of off + t * hd floats holding x at off (garbage before it). */
    private static ByteBuffer floats(double[][] x, int off) {
        int hd = x[0].length;
        ByteBuffer b = ByteBuffer.allocateDirect(4 * (off + x.length * hd)).order(ByteOrder.nativeOrder());
        for (int i = 0; i < off; i++) {
            b.putFloat(4 * i, 1e30f);
        }
        for (int i = 0; i < x.length; i++) {
            for (int c = 0; c < hd; c++) {
                b.putFloat(4 * (off + i * hd + c), (float) x[i][c]);
            }
        }
        return b;
    }

    private static double[][] read(ByteBuffer b, int off, int t, int hd) {
        double[][] x = new double[t][hd];
        for (int i = 0; i < t; i++) {
            for (int c = 0; c < hd; c++) {
                x[i][c] = b.getFloat(4 * (off + i * hd + c));
            }
        }
        return x;
    }

    private static double[] readLse(ByteBuffer b, int off, int t) {
        double[] x = new double[t];
        for (int i = 0; i < t; i++) {
            x[i] = b.getFloat(4 * (off + i));
        }
        return x;
    }

    private static Buf doubles(double[][] x) {
        int hd = x[0].length;
        Buf b = Buf.of(Nd4j.zeros(DataType.DOUBLE, (long) x.length * hd));
        for (int i = 0; i < x.length; i++) {
            for (int c = 0; c < hd; c++) {
                b.set(i * hd + c, x[i][c]);
            }
        }
        return b;
    }

    private static double[][] read(Buf b, int t, int hd) {
        double[][] x = new double[t][hd];
        for (int i = 0; i < t; i++) {
            for (int c = 0; c < hd; c++) {
                x[i][c] = b.get(i * hd + c);
            }
        }
        return x;
    }

    /**
     * |got - want| <= tol * max|want| element-wise (relative to the tensor's scale; at least 1e-3, since at T = 1
     * dq and dk are zero up to rounding).
     */
    private static void close(double[][] want, double[][] got, double tol, String what) {
        double max = 0;
        for (double[] row : want) {
            for (double x : row) {
                max = Math.max(max, Math.abs(x));
            }
        }
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            for (int c = 0; c < want[i].length; c++) {
                assertTrue(Double.isFinite(got[i][c]), what + " [" + i + "," + c + "] is " + got[i][c]);
                worst = Math.max(worst, Math.abs(got[i][c] - want[i][c]));
            }
        }
        assertTrue(worst <= tol * Math.max(max, 1e-3), what + ": max error " + worst + " vs max magnitude " + max);
    }
}
