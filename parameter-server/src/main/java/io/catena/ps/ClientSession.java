package io.catena.ps;

import io.aeron.ExclusivePublication;
import io.catena.ps.protocol.KeySchedule;
import io.catena.ps.protocol.RejectReason;
import io.catena.ps.protocol.TrafficKey;

/**
 * One client's Aeron session on the server (conductor thread only): the response publication its HELLO named, the
 * session's keys and where its handshake stands, and, until that publication connects, the CHALLENGE or REJECT it
 * is waiting for.
 */
final class ClientSession {
    final int aeronSessionId;
    final int workerId;
    final ExclusivePublication pub;
    final long helloCorrelation;
    final long deadlineNs;
    /** The response publication connected and the CHALLENGE (or a REJECT) was sent. */
    boolean welcomed;
    /** The client's PROOF verified: frames travel under the session keys, requests are served. */
    boolean established;
    /** Until when a welcomed session may take to send its PROOF. */
    long proofDeadlineNs;
    RejectReason pendingReject;
    String pendingRejectDetail;
    KeySchedule keys;
    /** What both proofs cover (job, worker, channel, nonces, rekey shift). */
    byte[] transcript;
    byte[] serverNonce;
    /** Receiving: the client's frames. Sending: this client's frames. */
    TrafficKey c2s;
    TrafficKey s2c;
    /** Highest broadcast sequence number sent to this client: a cached broadcast frame is never sent to it twice. */
    long broadcastSent = -1;

    ClientSession(int aeronSessionId, int workerId, ExclusivePublication pub, long helloCorrelation, long deadlineNs) {
        this.aeronSessionId = aeronSessionId;
        this.workerId = workerId;
        this.pub = pub;
        this.helloCorrelation = helloCorrelation;
        this.deadlineNs = deadlineNs;
    }
}
