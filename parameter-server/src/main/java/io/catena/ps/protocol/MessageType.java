package io.catena.ps.protocol;

/** Message types of the wire protocol (the byte at offset 3 of every frame). */
public enum MessageType {
    /**
     * client -> server, handshake key: register a response channel and start a session; payload: i32 stream id, i32
     * length, UTF-8 channel, 32-byte client nonce.
     */
    HELLO(1),
    /** server -> client, session key (the handshake's last frame): JSON with job, epoch, version, layout, shard plan, chunking and sync mode. */
    WELCOME(2),
    /** server -> client: a request was refused; flags = {@link RejectReason} code, payload = UTF-8 detail. */
    REJECT(3),
    /**
     * client -> server: one chunk of a gradient push; payload = float32 values of the chunk. Chunk index: in the
     * whole plan; chunk count: the chunks of this push (all, or the worker's pipeline stage's).
     */
    PUSH(4),
    /** server -> client: a whole push was accepted (flags 0) or dropped as a duplicate (flags 1). */
    PUSH_ACK(5),
    /**
     * client -> server: send parameters of version >= {@code version}; payload: i64 wait millis. Flags
     * {@link #PULL_ALL}: every chunk (a pipeline-stage worker otherwise gets only its stage's).
     */
    PULL(6),
    /** server -> client: a pull answer starts; flags 1 = layout changed (payload = layout JSON); chunk count = PARAMS to come. */
    PULL_BEGIN(7),
    /** server -> client: one chunk of parameters. */
    PARAMS(8),
    /** admin -> server: append chains; payload JSON {added, freeze_old, seed, loss_weights}. */
    GROW(9),
    /** admin -> server: write a snapshot now. */
    SNAPSHOT(10),
    /** admin -> server: send the metrics JSON. */
    METRICS(11),
    /** server -> admin: JSON answer to GROW, SNAPSHOT, METRICS or TRAINER_INFO. */
    ADMIN_REPLY(12),
    /**
     * admin -> server: the facts every later snapshot carries; payload JSON {info: {...}, cursor: {step, data_position,
     * tokens_seen, windows_per_step, tokens_per_step}} (see ParameterServer#trainerInfo).
     */
    TRAINER_INFO(13),
    /**
     * server -> client, handshake key: payload 32-byte server nonce, 32-byte broadcast nonce, i32 rekey shift, 32-byte
     * server proof (see {@link Handshake}).
     */
    CHALLENGE(14),
    /** client -> server, the session's first sealed frame: payload = 32-byte client proof. Answered by WELCOME. */
    PROOF(15);

    /** PULL flag: answer with every chunk of the plan, also to a worker of a pipeline stage. */
    public static final int PULL_ALL = 1;

    private static final MessageType[] BY_CODE = new MessageType[16];

    static {
        for (MessageType t : values()) {
            BY_CODE[t.code] = t;
        }
    }

    public final int code;

    MessageType(int code) {
        this.code = code;
    }

    /** The type with this code, or null. */
    public static MessageType of(int code) {
        return code >= 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }
}
