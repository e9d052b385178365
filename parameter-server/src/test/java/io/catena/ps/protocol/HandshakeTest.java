package io.catena.ps.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

/** Both sides of the handshake as the server and ClientExchange compute it. */
class HandshakeTest {
    static final byte[] SECRET = KeyScheduleTest.SECRET;
    static final byte[] WRONG = "not-the-job-secret-at-all".getBytes(StandardCharsets.UTF_8);
    static final String CHANNEL = "aeron:udp?endpoint=10.0.0.7:40123";

    /** The result of one handshake: whether each side accepted the other's proof, and the keys each derived. */
    record Outcome(boolean serverAcceptsClient, boolean clientAcceptsServer, KeySchedule client, KeySchedule server) {
    }

    static Outcome run(byte[] clientSecret, byte[] serverSecret, long clientJob, long serverJob) {
        // client: HELLO
        byte[] nc = KeySchedule.randomNonce();
        byte[] hello = Handshake.helloPayload(2002, CHANNEL, nc);
        // server: parses HELLO, derives the session, answers CHALLENGE
        Handshake.Hello h = Handshake.parseHello(new UnsafeBuffer(hello), 0, hello.length);
        byte[] ns = KeySchedule.randomNonce();
        byte[] nb = KeySchedule.randomNonce();
        KeySchedule server = KeySchedule.session(serverSecret, serverJob, h.clientNonce(), ns, 24);
        byte[] serverTranscript = Handshake.transcript(serverJob, 3, h.channel(), h.clientNonce(), ns, nb, 24);
        byte[] challenge = Handshake.challengePayload(ns, nb, 24, server.proof(Handshake.SERVER, serverTranscript));
        // client: checks the server's proof, answers PROOF
        Handshake.Challenge c = Handshake.parseChallenge(challenge);
        KeySchedule client = KeySchedule.session(clientSecret, clientJob, nc, c.serverNonce(), c.rekeyShift());
        byte[] clientTranscript = Handshake.transcript(clientJob, 3, CHANNEL, nc, c.serverNonce(), c.broadcastNonce(), c.rekeyShift());
        boolean clientAccepts = client.verifyProof(Handshake.SERVER, clientTranscript, c.serverProof());
        byte[] proof = client.proof(Handshake.CLIENT, clientTranscript);
        boolean serverAccepts = server.verifyProof(Handshake.CLIENT, serverTranscript, proof);
        return new Outcome(serverAccepts, clientAccepts, client, server);
    }

    @Test
    void shouldSucceedWhenBothHoldTheSecretAndAgreeOnTheSessionKeys() {
        Outcome o = run(SECRET, SECRET, 7, 7);
        assertTrue(o.serverAcceptsClient());
        assertTrue(o.clientAcceptsServer());
        for (KeySchedule.Direction d : KeySchedule.Direction.values()) {
            assertArrayEquals(o.client().directionKey(d, 0), o.server().directionKey(d, 0));
        }
    }

    @Test
    void shouldFailOnTheServerSideWhenTheClientHasAnotherSecret() {
        Outcome o = run(WRONG, SECRET, 7, 7);
        assertFalse(o.serverAcceptsClient(), "a client without the secret cannot produce the client proof");
        assertFalse(o.clientAcceptsServer());
    }

    @Test
    void shouldFailOnTheClientSideWhenTheServerHasAnotherSecret() {
        Outcome o = run(SECRET, WRONG, 7, 7);
        assertFalse(o.clientAcceptsServer(), "a server without the secret cannot produce the server proof");
        assertFalse(o.serverAcceptsClient());
    }

    @Test
    void shouldFailWhenTheSidesDisagreeOnTheJob() {
        Outcome o = run(SECRET, SECRET, 7, 8);
        assertFalse(o.clientAcceptsServer());
        assertFalse(o.serverAcceptsClient());
    }

    @Test
    void proofsAreBoundToRoleAndTranscript() {
        KeySchedule k = KeySchedule.session(SECRET, 1, KeySchedule.randomNonce(), KeySchedule.randomNonce(), 24);
        byte[] t = Handshake.transcript(1, 0, CHANNEL, new byte[32], new byte[32], new byte[32], 24);
        byte[] serverProof = k.proof(Handshake.SERVER, t);
        assertFalse(k.verifyProof(Handshake.CLIENT, t, serverProof), "a server proof reflected back is not a client proof");
        byte[] other = Handshake.transcript(1, 1, CHANNEL, new byte[32], new byte[32], new byte[32], 24);
        assertFalse(k.verifyProof(Handshake.SERVER, other, serverProof), "another worker id: another transcript");
        assertFalse(k.verifyProof(Handshake.SERVER, t, null));
    }

    @Test
    void shouldParseWhatItWritesAndRefuseMalformedPayloads() {
        byte[] nc = KeySchedule.randomNonce();
        byte[] hello = Handshake.helloPayload(9, "aeron:ipc?session-id=5", nc);
        Handshake.Hello h = Handshake.parseHello(new UnsafeBuffer(hello), 0, hello.length);
        assertEquals(9, h.streamId());
        assertEquals("aeron:ipc?session-id=5", h.channel());
        assertArrayEquals(nc, h.clientNonce());
        assertNull(Handshake.parseHello(new UnsafeBuffer(hello), 0, hello.length - 1), "truncated HELLO");
        assertNull(Handshake.parseHello(new UnsafeBuffer(new byte[8]), 0, 8));
        byte[] ch = Handshake.challengePayload(nc, nc, 20, new byte[32]);
        assertEquals(20, Handshake.parseChallenge(ch).rekeyShift());
        assertNull(Handshake.parseChallenge(java.util.Arrays.copyOf(ch, ch.length - 1)));
        assertNull(Handshake.parseChallenge(null));
    }
}
