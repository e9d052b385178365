package io.catena.model.pipeline;

/** A pipeline neighbour did not deliver (or accept) a tensor in time; the message names who, what and when. */
public final class StageLinkTimeoutException extends RuntimeException {
    private final int localStage;
    private final int peerStage;
    private final long step;
    private final int micro;

    public StageLinkTimeoutException(String message, int localStage, int peerStage, long step, int micro) {
        super(message);
        this.localStage = localStage;
        this.peerStage = peerStage;
        this.step = step;
        this.micro = micro;
    }

    public int localStage() {
        return localStage;
    }

    public int peerStage() {
        return peerStage;
    }

    public long step() {
        return step;
    }

    public int micro() {
        return micro;
    }
}
