package io.catena.ps.protocol;

/** Why the server refused (and counted) a message. Codes travel in the REJECT frame's flags. */
public enum RejectReason {
    MALFORMED(1, "frame too short, bad magic/version/type, or payload length that does not match the frame"),
    BAD_TAG(2, "AES-GCM tag does not verify: a modified or forged frame, or one sealed with another session's keys"),
    UNKNOWN_JOB(3, "job id is not the one this server serves"),
    UNKNOWN_SESSION(4, "no HELLO was received on this Aeron session"),
    UNKNOWN_WORKER(5, "worker id outside [0, workers)"),
    STALE_EPOCH(6, "message tagged with a model epoch other than the current one (the model grew): pull, rebuild, retry"),
    BAD_CHUNK(7, "chunk count, index or length does not match the server's chunk plan"),
    OVERSIZED(8, "message larger than the server's maximum message length"),
    NON_FINITE(9, "gradient contains NaN or Infinity"),
    STEP_OUT_OF_WINDOW(10, "push for a step the sync mode does not accept yet"),
    BAD_REQUEST(11, "an admin request that cannot be carried out"),
    BUSY(12, "server cannot take the request now (e.g. a snapshot is already being written)"),
    REPLAY(13, "frame's sequence number was already accepted on its key, or is older than the replay window: a replayed frame"),
    HANDSHAKE_FAILED(14, "handshake did not prove the job secret (HELLO or PROOF does not verify): wrong per-job secret");

    private static final RejectReason[] BY_CODE = new RejectReason[16];

    static {
        for (RejectReason r : values()) {
            BY_CODE[r.code] = r;
        }
    }

    public final int code;
    public final String description;

    RejectReason(int code, String description) {
        this.code = code;
        this.description = description;
    }

    public static RejectReason of(int code) {
        return code >= 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }
}
