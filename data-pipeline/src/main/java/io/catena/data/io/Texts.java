package io.catena.data.io;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.MalformedInputException;
import java.nio.charset.StandardCharsets;

/** Strict UTF-8 decoding that reports where it failed. */
public final class Texts {

    private Texts() {
    }

    /** The decoded text, or throws naming the byte offset (relative to {@code off}) of the first bad byte. */
    public static String decodeUtf8(byte[] b, int off, int len) throws CharacterCodingException {
        CharsetDecoder d = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(b, off, len);
        CharBuffer out = CharBuffer.allocate(len);
        var r = d.decode(in, out, true);
        if (r.isError()) {
            throw new MalformedInputException(in.position() - off) {
                private static final long serialVersionUID = 1L;

                @Override
                public String getMessage() {
                    return "invalid UTF-8 at byte " + getInputLength();
                }
            };
        }
        d.flush(out);
        out.flip();
        return out.toString();
    }
}
