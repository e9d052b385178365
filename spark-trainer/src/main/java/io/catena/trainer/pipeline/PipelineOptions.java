package io.catena.trainer.pipeline;

import io.catena.model.pipeline.PipelineSchedule;
import java.io.Serializable;

/**
 * How a job splits its model into pipeline stages: {@code stages} (--pp) contiguous ranges of blocks, each
 * replica's batch share cut into {@code microBatches} (--micro-batches) run in the {@code schedule} order
 * (--schedule gpipe|1f1b), optionally recomputing activations in backward (--recompute). Task rank r of the
 * barrier stage runs stage {@code r % stages} of data-parallel replica {@code r / stages}, which is also
 * its worker id on the parameter server.
 */
public record PipelineOptions(int stages, int microBatches, PipelineSchedule.Kind schedule, boolean recompute)
        implements Serializable {

    public static final PipelineOptions NONE = new PipelineOptions(1, 1, PipelineSchedule.Kind.ONE_F_ONE_B, false);

    public PipelineOptions {
        if (stages < 1) {
            throw new IllegalArgumentException("--pp must be >= 1, got " + stages);
        }
        if (microBatches < 1) {
            throw new IllegalArgumentException("--micro-batches must be >= 1, got " + microBatches);
        }
    }

    public boolean enabled() {
        return stages > 1;
    }

    public int stageOf(int rank) {
        return rank % stages;
    }

    public int replicaOf(int rank) {
        return rank / stages;
    }

    /**
     * The micro-batch count for a replica batch of {@code rowsPerReplica} rows: the one asked for, which must
     * divide it, or (requested = 0) the largest of 4P, 2P, P that divides it (GPipe: M >= 4P keeps the bubble
     * (P-1)/(M+P-1) under 20%).
     */
    public static int microBatchesFor(int requested, int stages, int rowsPerReplica) {
        if (requested > 0) {
            if (rowsPerReplica % requested != 0) {
                throw new IllegalArgumentException("--micro-batches " + requested + " must divide the " + rowsPerReplica
                        + " rows each data-parallel replica computes (batch_size / dp); choose a divisor of " + rowsPerReplica);
            }
            return requested;
        }
        for (int m : new int[]{4 * stages, 2 * stages, stages, 1}) {
            if (m <= rowsPerReplica && rowsPerReplica % m == 0) {
                return m;
            }
        }
        return 1;
    }

    public String describe() {
        return enabled() ? "pp " + stages + " x " + microBatches + " micro-batches, " + schedule.label()
                + (recompute ? ", recomputation" : "") : "pp 1";
    }
}
