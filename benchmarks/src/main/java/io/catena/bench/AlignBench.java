package io.catena.bench;

import io.catena.model.kernel.VectorKernels;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Locale;
import org.bytedeco.javacpp.BytePointer;

/**
 * What a misaligned buffer costs a Vector API kernel here (why {@code Mat} aligns new matrices to 64 bytes):
 * {@code VectorKernels.add} (out = a + b) over float arrays starting 0, 16 and 32 bytes past a 64-byte boundary, in L2
 * (64K floats) and beyond it (4M floats), best of 5 timings after a warm-up round, one thread.
 * {@code java ... io.catena.bench.AlignBench} prints one line per case.
 */
public final class AlignBench {
    public static void main(String[] args) {
        for (int n : new int[] {1 << 16, 1 << 22}) {
            int stride = n * 4 + 1024; // the three arrays share one misalignment
            ByteBuffer raw = ByteBuffer.allocateDirect(3 * stride + 4096).order(ByteOrder.nativeOrder());
            long base = new BytePointer(raw).address();
            int aligned = (int) ((64 - base % 64) % 64);
            for (int round = 0; round < 2; round++) {
                for (int misalign : new int[] {0, 16, 32}) {
                    ByteBuffer b = raw.slice(aligned + misalign, 3 * stride).order(ByteOrder.nativeOrder());
                    int reps = Math.max(1, (1 << 26) / n);
                    long best = Long.MAX_VALUE;
                    for (int t = 0; t < 5; t++) {
                        long t0 = System.nanoTime();
                        for (int r = 0; r < reps; r++) {
                            VectorKernels.add(b, 0, b, stride / 4, b, 2 * stride / 4, n);
                        }
                        best = Math.min(best, System.nanoTime() - t0);
                    }
                    if (round == 1) {
                        System.out.printf(Locale.ROOT, "add, %d floats, %d bytes past a 64-byte boundary: %.1f GB/s%n", n, misalign,
                                3.0 * n * 4 * reps / best);
                    }
                }
            }
        }
    }
}
