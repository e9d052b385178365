package io.catena.model.pipeline;

import io.catena.model.kernel.Mat;

/**
 * One end of the connection between neighbouring pipeline stages s and s+1: activations flow from s
 * to s+1, their gradients back from s+1 to s, each message tagged with the training step and the
 * micro-batch. The stage holding the upstream end sends {@link Kind#ACTIVATION} and receives
 * {@link Kind#GRADIENT}; the downstream end the other way round. Implementations: in memory between
 * threads ({@link InMemoryStageLink}); between processes over Aeron (spark-trainer). A tensor is
 * [micro-batch rows x d_model]; the link copies it, so the caller may reuse it once send returns.
 */
public interface StageLink {

    enum Kind {
        ACTIVATION, GRADIENT;

        public String label() {
            return this == ACTIVATION ? "activation" : "gradient";
        }
    }

    /**
     * Fails unless {@code kind} may travel this way: an end that sends {@code sends} cannot receive it, and
     * cannot send the other kind. Shared by the implementations so all say the same.
     */
    static void checkDirection(Kind kind, Kind sends, boolean sending, int local, int peer) {
        if (sending && kind != sends) {
            throw new IllegalArgumentException("stage " + local + " cannot send a " + kind.label() + " to stage " + peer + ": "
                    + sends.label() + "s flow that way");
        }
        if (!sending && kind == sends) {
            throw new IllegalArgumentException("stage " + local + " cannot receive a " + kind.label() + " from stage " + peer + ": "
                    + kind.label() + "s flow the other way");
        }
    }

    /** Index of the stage holding this end. */
    int localStage();

    /** Index of the neighbour at the other end. */
    int peerStage();

    /**
     * Sends a copy of tensor tagged (step, micro); waits at most timeoutMillis for room on the link
     * and throws {@link StageLinkTimeoutException} naming the neighbour, step and micro-batch if there is none.
     */
    void send(Kind kind, long step, int micro, Mat tensor, long timeoutMillis);

    /**
     * Waits at most timeoutMillis for the tensor tagged (step, micro) and copies it into {@code into}
     * (same shape). Messages of earlier steps (left over from an aborted step) are dropped; any other
     * tag means the two stages run different schedules and is an error.
     */
    void receive(Kind kind, long step, int micro, Mat into, long timeoutMillis);
}
