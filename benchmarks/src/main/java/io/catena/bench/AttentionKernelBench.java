package io.catena.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.kernel.AttentionKernels;
import io.catena.model.kernel.FlashAttention;
import io.catena.model.kernel.VectorKernels;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The attention core of one (head, sequence) pair on one thread, tiled ({@link FlashAttention}) against the
 * materialized kernels ({@link AttentionKernels} + the row softmax of {@link VectorKernels}) as
 * {@code layers.Attention} runs them, alternating, best of the later repetitions (robust on a shared VM).
 * hd 64. Prints one JSON line per T.
 *
 * <pre>java ... io.catena.bench.AttentionKernelBench [T ...]   (default 128 1024; -Dcatena.attention.tile=128 to try another tile)</pre>
 */
public final class AttentionKernelBench {

    public static void main(String[] args) throws Exception {
        int[] lengths = args.length == 0 ? new int[] {128, 1024} : java.util.Arrays.stream(args).mapToInt(Integer::parseInt).toArray();
        for (int t : lengths) {
            System.out.println(new ObjectMapper().writeValueAsString(run(t, t <= 256 ? 3000 : 100)));
        }
    }

    static Map<String, Object> run(int t, int reps) {
        int hd = 64;
        float scale = (float) (1 / Math.sqrt(hd));
        ByteBuffer q = random(t * hd, 1), k = random(t * hd, 2), v = random(t * hd, 3), dO = random(t * hd, 4);
        ByteBuffer o = random(t * hd, 5), lse = random(t, 6), dq = random(t * hd, 7), dk = random(t * hd, 8), dv = random(t * hd, 9);
        ByteBuffer p = random(t * t, 10), dp = random(t * t, 11);
        float[] bt = new float[t * hd];
        FlashAttention.Workspace ws = FlashAttention.workspace();
        double tf = 1e9, tb = 1e9, mf = 1e9, mb = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            long t0 = System.nanoTime();
            FlashAttention.loadForward(ws, q, k, v, 0, t, hd);
            FlashAttention.forwardTiles(ws, 0, FlashAttention.tiles(t), t, hd, scale, o, 0, lse, 0);
            long t1 = System.nanoTime();
            FlashAttention.backward(ws, q, k, v, dO, 0, t, hd, scale, lse, 0, o, 0, hd, dq, dk, dv);
            long t2 = System.nanoTime();
            AttentionKernels.transpose(k, 0, t, hd, bt);
            AttentionKernels.causalScores(q, 0, bt, p, 0, t, hd);
            for (int r = 0; r < t; r++) {
                VectorKernels.causalSoftmaxRow(p, r * t, r + 1, t, scale);
            }
            AttentionKernels.combineRows(p, 0, v, 0, o, 0, t, hd);
            long t3 = System.nanoTime();
            AttentionKernels.transpose(v, 0, t, hd, bt);
            AttentionKernels.causalScores(dO, 0, bt, dp, 0, t, hd);
            AttentionKernels.combineColumns(p, 0, dO, 0, dv, 0, t, hd);
            for (int r = 0; r < t; r++) {
                float dot = (float) VectorKernels.dot(p, r * t, dp, r * t, r + 1);
                VectorKernels.softmaxBackwardRow(p, r * t, dp, r * t, r + 1, dot, scale);
                VectorKernels.fill(dp, r * t + r + 1, t - r - 1, 0f);
            }
            AttentionKernels.combineRows(dp, 0, k, 0, dq, 0, t, hd);
            AttentionKernels.combineColumns(dp, 0, q, 0, dk, 0, t, hd);
            long t4 = System.nanoTime();
            if (rep >= reps / 3) {
                tf = Math.min(tf, (t1 - t0) / 1e6);
                tb = Math.min(tb, (t2 - t1) / 1e6);
                mf = Math.min(mf, (t3 - t2) / 1e6);
                mb = Math.min(mb, (t4 - t3) / 1e6);
            }
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("bench", "attention-kernels");
        r.put("seq", t);
        r.put("head_dim", hd);
        r.put("tile", FlashAttention.TILE);
        r.put("tiled_fwd_ms", tf);
        r.put("tiled_bwd_ms", tb);
        r.put("materialized_fwd_ms", mf);
        r.put("materialized_bwd_ms", mb);
        r.put("tiled_over_materialized_fwd", tf / mf);
        r.put("tiled_over_materialized_bwd", tb / mb);
        return r;
    }

    private static ByteBuffer random(int n, long seed) {
        ByteBuffer b = ByteBuffer.allocateDirect(4 * n).order(ByteOrder.nativeOrder());
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < n; i++) {
            b.putFloat(4 * i, (float) (r.nextDouble() * 2 - 1));
        }
        return b;
    }

    private AttentionKernelBench() {
    }
}
