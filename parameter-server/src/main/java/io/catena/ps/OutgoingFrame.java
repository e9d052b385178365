package io.catena.ps;

import io.aeron.DirectBufferVector;
import io.catena.ps.protocol.MessageAuthenticator;
import io.catena.ps.protocol.MessageHeader;
import io.catena.ps.protocol.MessageType;
import java.nio.ByteBuffer;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * Scratch for one outgoing frame, offered as a vector of (header, payload, MAC) so that the payload is never
 * copied. The MAC covers the payload first, then the header (protocol package doc). One per sending thread.
 */
final class OutgoingFrame {
    private final MessageHeader header = new MessageHeader();
    private final UnsafeBuffer headerBuffer = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.LENGTH));
    private final UnsafeBuffer mac = new UnsafeBuffer(ByteBuffer.allocateDirect(MessageHeader.MAC_LENGTH));
    private final DirectBufferVector vHeader = new DirectBufferVector(headerBuffer, 0, MessageHeader.LENGTH);
    private final DirectBufferVector vPayload = new DirectBufferVector();
    private final DirectBufferVector vMac = new DirectBufferVector(mac, 0, MessageHeader.MAC_LENGTH);
    private final DirectBufferVector[] vectors3 = {vHeader, vPayload, vMac};
    private final DirectBufferVector[] vectors2 = {vHeader, vMac};

    /** The next frame's header, reset to {@code type}, for its fields to be set. */
    MessageHeader header(MessageType type) {
        return header.wrap(headerBuffer, 0).reset(type);
    }

    /**
     * Signs the frame whose header was set: {@code auth} holds the MAC state after the payload (begun, and updated
     * with the payload where there is one). Returns the vectors to offer.
     */
    DirectBufferVector[] sign(MessageAuthenticator auth, DirectBuffer payload, int payloadOffset, int payloadLength) {
        DirectBufferVector[] vectors = vectors2;
        if (payloadLength > 0) {
            vPayload.reset(payload, payloadOffset, payloadLength);
            vectors = vectors3;
        }
        auth.update(headerBuffer, 0, MessageHeader.LENGTH);
        auth.finish(mac, 0);
        return vectors;
    }
}
