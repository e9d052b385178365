package io.catena.data.tokenizer;

/**
 * GPT-2's reversible byte -> printable-character table ({@code bytes_to_unicode}), the alphabet of
 * every byte-level BPE vocabulary (HuggingFace {@code ByteLevel} pre-tokenizer and decoder).
 * Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100 upwards in byte order.
 */
public final class ByteLevel {

    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[512];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        for (int b = 0; b < 256; b++) {
            char c = io.catena.model.data.ByteTokenizer.byteLevelChar(b); // the one table, in chain-model
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevel() {
    }

    /** The printable character that stands for byte {@code b} (0..255). */
    public static char charOf(int b) {
        return BYTE_TO_CHAR[b & 0xFF];
    }

    /** The byte a byte-level character stands for, or -1 if {@code c} is not in the alphabet. */
    public static int byteOf(char c) {
        return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
    }

    /** Byte-level string of {@code bytes[off, off+len)}. */
    public static String encode(byte[] bytes, int off, int len) {
        char[] out = new char[len];
        for (int i = 0; i < len; i++) {
            out[i] = BYTE_TO_CHAR[bytes[off + i] & 0xFF];
        }
        return new String(out);
    }

    /**
     * Bytes of a byte-level string.
     *
     * @throws IllegalArgumentException naming the character if it is outside the byte-level alphabet
     */
    public static byte[] decode(String s) {
        byte[] out = new byte[s.length()];
        for (int i = 0; i < s.length(); i++) {
            int b = byteOf(s.charAt(i));
            if (b < 0) {
                throw new IllegalArgumentException("token '" + s + "' contains U+" + String.format("%04X", (int) s.charAt(i))
                        + " at index " + i + ", which is not a byte-level character; expected a byte-level BPE"
                        + " vocabulary (GPT-2 bytes_to_unicode alphabet). Use a tokenizer.json with a ByteLevel pre-tokenizer.");
            }
            out[i] = (byte) b;
        }
        return out;
    }
}
