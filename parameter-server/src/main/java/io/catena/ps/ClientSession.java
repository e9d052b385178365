package io.catena.ps;

import io.aeron.ExclusivePublication;
import io.catena.ps.protocol.RejectReason;

/**
 * One client's Aeron session on the server (conductor thread only): the response publication its HELLO named and,
 * until that publication connects, the WELCOME or REJECT it is waiting for.
 */
final class ClientSession {
    final int aeronSessionId;
    final int workerId;
    final ExclusivePublication pub;
    final long helloCorrelation;
    final long deadlineNs;
    boolean welcomed;
    RejectReason pendingReject;
    String pendingRejectDetail;

    ClientSession(int aeronSessionId, int workerId, ExclusivePublication pub, long helloCorrelation, long deadlineNs) {
        this.aeronSessionId = aeronSessionId;
        this.workerId = workerId;
        this.pub = pub;
        this.helloCorrelation = helloCorrelation;
        this.deadlineNs = deadlineNs;
    }
}
