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
 * <h2>Frame</h2>
 * <pre>
 *   0  u16  magic 0xCA7E            2  u8  protocol version     3  u8  message type
 *   4  i32  flags / reason code     8  i64 job id (hash of the job name)
 *  16  i32  model epoch            20  i32 worker id (-1: admin)
 *  24  i64  step                   32  i64 version (base version of a push, version of parameters)
 *  40  i64  correlation id         48  i32 chunk index          52  i32 chunk count
 *  56  i32  payload length         60  i32 reserved (0)
 *  64  payload (payload length bytes; float32 chunks are little-endian)
 *  64+payload  HMAC-SHA256 (32 bytes) with the job's secret over the payload, then the header:
 *              bytes [64, 64 + payload length) followed by bytes [0, 64)
 * </pre>
 * The payload is hashed first so that the server, which sends the same parameter chunk of one version to
 * every worker under different headers (worker id, correlation id), hashes each chunk's bytes once per
 * version and only the 64-byte header per worker (a cloned HMAC state; see
 * {@link io.catena.ps.protocol.MessageAuthenticator#snapshot()}).
 * All integers are little-endian. Every message of both directions is authenticated; a receiver
 * validates length, magic, version, type, payload length and the MAC before it looks at anything else.
 * The MAC binds job id, epoch, step, worker and chunk position to the payload, so a message cannot be
 * replayed into another job, epoch or chunk slot without the secret. (Replays of an identical message
 * within the same epoch/step are harmless: pushes are idempotent per (epoch, step, worker).)
 *
 * <h2>Pipeline stages (protocol version 3)</h2>
 * With P pipeline stages the layout document (WELCOME, and PULL_BEGIN after growth) also carries the
 * pipeline settings and the stage of every shard; shard bounds include every stage-range boundary, so each
 * chunk belongs to one stage ({@link io.catena.ps.protocol.ChunkPlan}). Worker w (stage {@code w % P}) pushes
 * only its stage's chunks: the chunk index is the chunk's index in the whole plan, the chunk count the
 * number of chunks of the stage, and the server refuses another count or another stage's chunk
 * (BAD_CHUNK). A PULL without the {@link io.catena.ps.protocol.MessageType#PULL_ALL} flag is answered with
 * only the stage's chunks (PULL_BEGIN's chunk count says how many); admins and PULL_ALL get every chunk.
 * The payload-first MAC cache is per chunk index, so it serves both kinds of answer.
 */
package io.catena.ps.protocol;
