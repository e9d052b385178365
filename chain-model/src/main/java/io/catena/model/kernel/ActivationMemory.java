package io.catena.model.kernel;

import java.util.concurrent.atomic.LongAdder;

/**
 * Bytes of activation and scratch buffers allocated so far ({@link Mat#allocate},
 * {@link Mat#allocateActivation}, {@link HeadTensor}). The engine allocates them once when a model
 * or stage is built, so the growth of this count across building one is its activation memory, and
 * no growth across a step shows the steady state allocates nothing. ND4J's own trackers do not see
 * these buffers, hence this count.
 */
public final class ActivationMemory {
    private static final LongAdder BYTES = new LongAdder();

    private ActivationMemory() {
    }

    static void allocated(long elements, org.nd4j.linalg.api.buffer.DataType type) {
        BYTES.add(elements * type.width());
    }

    public static long allocatedBytes() {
        return BYTES.sum();
    }
}
