package io.catena.model.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bf16 attention core ({@link Bf16Attention}) of one (head, sequence) pair against float64 references, forward
 * (output rows, log-sum-exp) and backward (dq, dk, dv), causal mask, sequence lengths that are not whole blocks and
 * head dims that are not whole vectors, the pair at a non-zero offset.
 *
 * <p>Tolerances (u = 2^-9, bf16's rounding unit: 8 significant bits, round to nearest). (1) Against a float64
 * emulation of the same algorithm (q, k, v, dO rounded to bf16; scores, softmax and its gradient exact; P and dS
 * rounded to bf16 before their products), norm-wise within 2^-12: what is left is float32 accumulation and exp
 * (~1e-6) and the rare P or dS element whose float32 value rounds to the other bf16 neighbour (one element moves
 * by 2u of itself); a wrong offset, leading dimension, transpose or mask is off by O(1). (2) Against float64 attention
 * of the unrounded inputs, within the bf16 bound: every output is a sum of products whose two factors each carry
 * at most one input rounding (2u) plus the rounding of P or dS (u), and the scores' own error (2u of |q||k| scale,
 * |s| scale <= ~6 here) moves P by at most ~12u of itself: 16u = 2^-5 norm-wise for O, twice that for the gradients
 * (whose dS = P (dP - delta) loses relative accuracy to the cancellation in dP - delta); and the error must exceed
 * 2^-12 (bf16-sized: the products really ran in bf16). (3) The same bits whichever way the blocks are split over
 * calls (threads).
 */
class Bf16AttentionTest {

    @AfterEach
    void restore() {
        Bf16Policy.allowEmulationForTests(false);
    }

    static List<Object[]> cases() {
        int b = Bf16Attention.BLOCK;
        List<Object[]> cases = new ArrayList<>();
        cases.add(new Object[] {1, 16});
        cases.add(new Object[] {7, 24});
        cases.add(new Object[] {b - 1, 64});
        cases.add(new Object[] {b + 1, 40});
        cases.add(new Object[] {2 * b + 37, 96});
        cases.add(new Object[] {3 * b, 32});
        return cases;
    }

    private static final double U = 0x1p-9;

    @ParameterizedTest
    @MethodSource("cases")
    void matchesFloat64ReferencesWithinTheBf16Bound(int t, int hd) {
        Bf16Policy.allowEmulationForTests(true);
        Assumptions.assumeTrue(Bf16Policy.unsupportedReason(HostCpu.read()) == null,
                () -> "bf16 cannot run here: " + Bf16Policy.unsupportedReason(HostCpu.read()));
        SplittableRandom rnd = new SplittableRandom(t * 131L + hd);
        double[][] q = random(rnd, t, hd, 2.0), k = random(rnd, t, hd, 2.0), v = random(rnd, t, hd, 1.0), dO = random(rnd, t, hd, 1.0);
        int off = t * hd; // pair 1 of 2: offsets matter
        ByteBuffer qb = floats(q, off), kb = floats(k, off), vb = floats(v, off), dOb = floats(dO, off);
        ByteBuffer out = floats(new double[t][hd], off), lse = ByteBuffer.allocateDirect(8 * t).order(ByteOrder.nativeOrder());
        float scale = (float) (1.0 / Math.sqrt(hd));
        Bf16Attention.Workspace ws = Bf16Attention.workspace();
        int blocks = Bf16Attention.blocks(t);
        Bf16Attention.forward(ws, qb, kb, vb, off, t, hd, scale, 0, blocks / 2, out, lse, t); // two calls, as split over threads
        Bf16Attention.forward(ws, qb, kb, vb, off, t, hd, scale, blocks / 2, blocks, out, lse, t);
        ByteBuffer dq = floats(new double[t][hd], off), dk = floats(new double[t][hd], off), dv = floats(new double[t][hd], off);
        Bf16Attention.backward(ws, qb, kb, vb, dOb, off, t, hd, scale, lse, t, out, off, hd, dq, dk, dv);

        // the same bits when every block is its own call, and for a second backward
        ByteBuffer out2 = floats(new double[t][hd], off), lse2 = ByteBuffer.allocateDirect(8 * t).order(ByteOrder.nativeOrder());
        for (int ib = 0; ib < blocks; ib++) {
            Bf16Attention.forward(ws, qb, kb, vb, off, t, hd, scale, ib, ib + 1, out2, lse2, t);
        }
        ByteBuffer dq2 = floats(new double[t][hd], off), dk2 = floats(new double[t][hd], off), dv2 = floats(new double[t][hd], off);
        Bf16Attention.backward(ws, qb, kb, vb, dOb, off, t, hd, scale, lse2, t, out2, off, hd, dq2, dk2, dv2);
        assertEquals(out, out2, "forward bits depend on the split");
        assertEquals(lse, lse2, "lse bits depend on the split");
        assertEquals(dq, dq2, "dq bits");
        assertEquals(dk, dk2, "dk bits");
        assertEquals(dv, dv2, "dv bits");

        Reference emulated = new Reference(q, k, v, dO, scale, true);
        Reference exact = new Reference(q, k, v, dO, scale, false);
        for (int i = 0; i < t; i++) {
            double got = lse.getFloat((t + i) * 4);
            assertEquals(emulated.lse[i], got, 1e-5 * (1 + Math.abs(got)), "lse row " + i);
            assertEquals(exact.lse[i], got, 4 * U * scale * emulated.maxAbsScore[i] + 1e-5 * (1 + Math.abs(got)), "lse row " + i + " vs exact");
        }
        String what = "T " + t + ", hd " + hd;
        boolean bf16Sized = false;
        double[][][] got = {read(out, off, t, hd), read(dq, off, t, hd), read(dk, off, t, hd), read(dv, off, t, hd)};
        double[][][] emu = {emulated.o, emulated.dq, emulated.dk, emulated.dv};
        double[][][] ex = {exact.o, exact.dq, exact.dk, exact.dv};
        String[] names = {"o", "dq", "dk", "dv"};
        for (int x = 0; x < 4; x++) {
            if (t == 1 && (x == 1 || x == 2)) {
                continue; // one key: dq and dk are exactly 0 (dS = p (dO.v - dO.o) with o = v); the kernel's are rounding residue
            }
            double eEmu = relative(got[x], emu[x]), eExact = relative(got[x], ex[x]);
            assertTrue(eEmu <= 0x1p-12, what + ": " + names[x] + " vs the float64 bf16 emulation: " + eEmu);
            double bound = x == 0 ? 16 * U : 32 * U;
            assertTrue(eExact <= bound, what + ": " + names[x] + " vs float64: " + eExact + " > " + bound);
            bf16Sized |= eExact > 0x1p-12;
        }
        if (t > 1) { // one key: softmax is exactly 1 and o = v rounded (|v| < 1: still bf16-sized, but keep the check to real cases)
            assertTrue(bf16Sized, what + ": no bf16-sized error anywhere: the products did not run in bf16");
        }
    }

    /** Float64 attention and its gradients; with bf16, the inputs, P and dS are rounded to bf16 as the kernel does. */
    private static final class Reference {
        final double[][] o, dq, dk, dv;
        final double[] lse, maxAbsScore;

        Reference(double[][] q0, double[][] k0, double[][] v0, double[][] dO0, double scale, boolean bf16) {
            int t = q0.length, hd = q0[0].length;
            double[][] q = round(q0, bf16), k = round(k0, bf16), v = round(v0, bf16), dO = round(dO0, bf16);
            o = new double[t][hd];
            dq = new double[t][hd];
            dk = new double[t][hd];
            dv = new double[t][hd];
            lse = new double[t];
            maxAbsScore = new double[t];
            double[][] p = new double[t][];
            for (int i = 0; i < t; i++) {
                double[] s = new double[i + 1];
                double mx = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= i; j++) {
                    s[j] = dot(q[i], k[j]) * scale;
                    mx = Math.max(mx, s[j]);
                    maxAbsScore[i] = Math.max(maxAbsScore[i], dotAbs(q0[i], k0[j]));
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                    sum += Math.exp(s[j] - mx);
                }
                lse[i] = mx + Math.log(sum);
                p[i] = new double[i + 1];
                for (int j = 0; j <= i; j++) {
                    p[i][j] = Math.exp(s[j] - lse[i]);
                    double pr = bf16 ? r((float) p[i][j]) : p[i][j];
                    for (int c = 0; c < hd; c++) {
                        o[i][c] += pr * v[j][c];
                    }
                }
            }
            for (int i = 0; i < t; i++) {
                double delta = dot(dO0[i], o[i]);
                for (int j = 0; j <= i; j++) {
                    double ds = p[i][j] * (dot(dO[i], v[j]) - delta) * scale;
                    double pr = bf16 ? r((float) p[i][j]) : p[i][j], dsr = bf16 ? r((float) ds) : ds;
                    for (int c = 0; c < hd; c++) {
                        dv[j][c] += pr * dO[i][c];
                        dk[j][c] += dsr * q[i][c];
                        dq[i][c] += dsr * k[j][c];
                    }
                }
            }
        }
    }

    private static double r(float f) {
        return Bf16Gemm.fromBf16(Bf16Gemm.toBf16(f));
    }

    private static double[][] round(double[][] a, boolean bf16) {
        double[][] out = new double[a.length][];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i].clone();
            for (int c = 0; bf16 && c < out[i].length; c++) {
                out[i][c] = r((float) a[i][c]);
            }
        }
        return out;
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int c = 0; c < a.length; c++) {
            s += a[c] * b[c];
        }
        return s;
    }

    private static double dotAbs(double[] a, double[] b) {
        double s = 0;
        for (int c = 0; c < a.length; c++) {
            s += Math.abs(a[c] * b[c]);
        }
        return s;
    }

    /** ||got - want|| / ||want|| (Frobenius). */
    private static double relative(double[][] got, double[][] want) {
        double num = 0, den = 0;
        for (int i = 0; i < got.length; i++) {
            for (int c = 0; c < got[i].length; c++) {
                num += (got[i][c] - want[i][c]) * (got[i][c] - want[i][c]);
                den += want[i][c] * want[i][c];
            }
        }
        return Math.sqrt(num / Math.max(den, 1e-300));
    }

    private static double[][] random(SplittableRandom rnd, int t, int hd, double amp) {
        double[][] a = new double[t][hd];
        for (int i = 0; i < t; i++) {
            for (int c = 0; c < hd; c++) {
                a[i][c] = (float) ((rnd.nextDouble() * 2 - 1) * amp);
            }
        }
        return a;
    }

    /** Two pairs' room; the values at float offset off, the rest NaN (read by nothing). */
    private static ByteBuffer floats(double[][] a, int off) {
        int t = a.length, hd = t == 0 ? 0 : a[0].length;
        ByteBuffer b = ByteBuffer.allocateDirect(4 * (off + t * hd + 16)).order(ByteOrder.nativeOrder());
        for (int i = 0; i < b.capacity() / 4; i++) {
            b.putFloat(i * 4, Float.NaN);
        }
        for (int i = 0; i < t; i++) {
            for (int c = 0; c < hd; c++) {
                b.putFloat((off + i * hd + c) * 4, (float) a[i][c]);
            }
        }
        return b;
    }

    private static double[][] read(ByteBuffer b, int off, int t, int hd) {
        double[][] a = new double[t][hd];
        for (int i = 0; i < t; i++) {
            for (int c = 0; c < hd; c++) {
                a[i][c] = b.getFloat((off + i * hd + c) * 4);
            }
        }
        return a;
    }
}
