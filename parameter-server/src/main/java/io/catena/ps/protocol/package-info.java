/**
 * The parameter server's wire protocol: hand-written flyweights over Agrona buffers.
 *
 * <h2>Why flyweights and not SBE</h2>
 * The protocol has one fixed 64-byte header and eleven message types, nine of which carry either nothing,
 * a float32 slice of the flat parameter vector, or a short JSON control document (hello, welcome, grow,
 * snapshot, metrics). SBE would buy schema evolution and generated codecs for exactly those few fixed
 * fields, at the cost of a code generator in the build (sbe-tool + an exec/antrun step, generated
 * sources to review) and of a second description of the same 13 fields. What dominates cost here is the
 * bulk payload, which must move between the ND4J parameter buffer and Aeron's term buffers with one
 * {@code memcpy} each way; SBE's var-data fields would add nothing to that. The flyweight
 * ({@link io.catena.ps.protocol.MessageHeader}) reads and writes the header in place like SBE does (no
 * allocation, no copies), the bulk payload is offered as a {@link io.aeron.DirectBufferVector} that points
 * straight into the parameter buffer (gather write, no staging copy), and the protocol version byte lets a
 * future change be detected and refused with a clear message.
 *
 * <h2>Frame (protocol version 4)</h2>
 * <pre>
 *   0  u16  magic 0xCA7E            2  u8  protocol version     3  u8  message type
 *   4  i32  flags / reason code     8  i64 job id (hash of the job name)
 *  16  i32  model epoch            20  i32 worker id (-1: admin, or a broadcast frame)
 *  24  i64  step                   32  i64 version (base version of a push, version of parameters)
 *  40  i64  correlation id         48  i32 chunk index          52  i32 chunk count
 *  56  i32  payload length         60  i32 key kind (0 handshake, 1 session, 2 broadcast)
 *  64  i64  sequence number (the sender's counter on that key; 0 for handshake frames)
 *  72  payload (payload length bytes; float32 chunks are little-endian), AES-256-GCM ciphertext under a session
 *      or broadcast key, clear under the handshake key
 *  72+payload  16-byte tag: the AES-GCM tag, whose associated data is the whole 72-byte header; for handshake
 *      frames the first 16 bytes of HMAC-SHA256(handshake key, header || payload)
 * </pre>
 * All integers are little-endian. A receiver checks length, magic, version, type, key kind and payload length
 * ({@link io.catena.ps.protocol.MessageHeader#validate}), then the replay window and the tag
 * ({@link io.catena.ps.protocol.Framer#open}) before it looks at anything else; a frame that fails changes no
 * state and is counted by reason (MALFORMED, BAD_TAG, REPLAY, HANDSHAKE_FAILED; then UNKNOWN_JOB and the request's
 * own checks). The one {@link io.catena.ps.protocol.Framer} writes, seals and opens frames on both sides.
 *
 * <h2>Handshake and keys</h2>
 * A session starts with HELLO / CHALLENGE / PROOF / WELCOME ({@link io.catena.ps.protocol.Handshake}): client and
 * server each prove with an HMAC over the transcript (job, worker, channel, both nonces, the broadcast nonce, the
 * rekey shift) that they hold the job secret, and derive the session's keys with HKDF-SHA256 from the secret and both
 * nonces, one per direction ({@link io.catena.ps.protocol.KeySchedule}). HELLO, CHALLENGE and a REJECT of a HELLO
 * are authenticated under the handshake key (from the secret alone, no freshness: the proofs give it); PROOF is the
 * client's first sealed frame and WELCOME the server's. A wrong secret fails at the HELLO's tag (the server counts
 * HANDSHAKE_FAILED and does not answer: the client times out naming the secret) or at a proof.
 *
 * <p>Nonce = the direction's 4-byte salt || the 8-byte sequence number; each sender's counter only grows, so no
 * (key, nonce) pair is ever used twice, and every 2^shift frames (default 2^24) a direction moves to a fresh key
 * derived from the session's HKDF pseudo-random key with the generation in its info string. The receiver keeps a
 * {@link io.catena.ps.protocol.ReplayWindow} of 64 frames per direction: a genuine frame whose sequence number was
 * accepted before or lies below the window is REPLAY, one whose tag fails is BAD_TAG (also when it reuses a seen
 * number). Every direction is one Aeron publication and Aeron delivers a publication in order, so honest frames
 * never arrive out of order; the window only tolerates what Aeron would not do.
 *
 * <h2>Pull answers: the broadcast key</h2>
 * A session key can only seal a chunk for one client, so W workers pulling one version would cost W passes of
 * AES-GCM over the parameters. The server therefore also has a broadcast key, derived from the secret and a random
 * nonce per server process (sent in every CHALLENGE, so every authenticated client can derive it): the chunks of
 * the current parameters are sealed under it once per version, in chunk order, and the same sealed frame goes to
 * every worker. Such a frame names no worker and no request (worker id -1, correlation 0, the plan's full chunk
 * count): the session-sealed PULL_BEGIN before it names the request, version and chunk count, and the client takes
 * PARAMS of exactly that version only, decrypting each into its slot of the pull target. The server never sends one
 * broadcast frame twice to a client (a second pull of a version by the same client is sealed under its session
 * key), so a client's broadcast window sees increasing sequence numbers. This costs no security the shared secret
 * did not already give away: every worker holds the secret, so it could impersonate the server in a handshake anyway.
 *
 * <p>Protocol version 3 and earlier (64-byte header, HMAC-SHA256 of payload then header with the secret itself) are
 * refused as MALFORMED ("protocol version 3, this build speaks 4").
 *
 * <h2>Pipeline stages (protocol version 3)</h2>
 * With P pipeline stages the layout document (WELCOME, and PULL_BEGIN after growth) also carries the
 * pipeline settings and the stage of every shard; shard bounds include every stage-range boundary, so each
 * chunk belongs to one stage ({@link io.catena.ps.protocol.ChunkPlan}). Worker w (stage {@code w % P}) pushes
 * only its stage's chunks: the chunk index is the chunk's index in the whole plan, the chunk count the
 * number of chunks of the stage, and the server refuses another count or another stage's chunk
 * (BAD_CHUNK). A PULL without the {@link io.catena.ps.protocol.MessageType#PULL_ALL} flag is answered with
 * only the stage's chunks (PULL_BEGIN's chunk count says how many); admins and PULL_ALL get every chunk.
 * The broadcast cache is per chunk index and sealed in chunk order, so it serves both kinds of answer.
 */
package io.catena.ps.protocol;
