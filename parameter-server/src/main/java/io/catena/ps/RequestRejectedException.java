package io.catena.ps;

import io.catena.ps.protocol.RejectReason;

/** The server refused a request; {@link #reason()} says why (e.g. STALE_EPOCH: pull the new layout and rebuild). */
public class RequestRejectedException extends ParameterServerException {
    private final RejectReason reason;

    public RequestRejectedException(RejectReason reason, String detail) {
        super("parameter server rejected the request: " + reason + " (" + (reason == null ? "?" : reason.description) + "): " + detail);
        this.reason = reason;
    }

    public RejectReason reason() {
        return reason;
    }
}
