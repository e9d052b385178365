package io.catena.data.tokenizer;

/**
 * GPT-2 pre-tokenization, hand-written over UTF-8 bytes. It splits exactly like HuggingFace's
 * {@code ByteLevel} pre-tokenizer (regex
 * {@code 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+}, Oniguruma's
 * Unicode {@code \s}), without a regex engine and without decoding to {@code String}.
 *
 * <p>Any byte sequence is accepted: a byte that does not start a valid UTF-8 sequence is treated as
 * one character of the "other" class ({@code [^\s\p{L}\p{N}]}), so pieces always tile the input and
 * encoding round-trips invalid UTF-8.
 */
public final class PreTokenizer {

    static final int LETTER = 0;
    static final int NUMBER = 1;
    static final int SPACE = 2;
    static final int OTHER = 3;

    /** Receives each piece as a byte range {@code [start, end)}. */
    @FunctionalInterface
    public interface PieceSink {
        void piece(byte[] bytes, int start, int end);
    }

    private PreTokenizer() {
    }

    /** Calls {@code sink} for each piece of {@code b[from, to)}, in order; the pieces tile the range. */
    public static void split(byte[] b, int from, int to, PieceSink sink) {
        int pos = from;
        while (pos < to) {
            int end = next(b, pos, to);
            sink.piece(b, pos, end);
            pos = end;
        }
    }

    /** End of the piece that starts at {@code pos}. */
    static int next(byte[] b, int pos, int to) {
        int c0 = b[pos] & 0xFF;
        // 's|'t|'re|'ve|'m|'ll|'d
        if (c0 == '\'' && pos + 1 < to) {
            int c1 = b[pos + 1] & 0xFF;
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                return pos + 2;
            }
            if (pos + 2 < to) {
                int c2 = b[pos + 2] & 0xFF;
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    return pos + 3;
                }
            }
        }
        int start = pos;
        if (c0 == ' ' && pos + 1 < to) {
            start = pos + 1;
        }
        long cp = decode(b, start, to);
        int cls = classOf(cp);
        if (cls != SPACE && (start == pos + 1 || c0 != ' ')) {
            // ' ?\p{L}+' | ' ?\p{N}+' | ' ?[^\s\p{L}\p{N}]+'
            int p = start + len(cp);
            while (p < to) {
                long c = decode(b, p, to);
                if (classOf(c) != cls) {
                    break;
                }
                p += len(c);
            }
            return p;
        }
        // whitespace at pos: '\s+(?!\S)' then '\s+'
        int p = pos;
        int lastStart = pos;
        while (p < to) {
            long c = decode(b, p, to);
            if (classOf(c) != SPACE) {
                break;
            }
            lastStart = p;
            p += len(c);
        }
        if (p == to) {
            return p;
        }
        if (lastStart > pos) {
            return lastStart; // leave the last whitespace char to prefix the next word
        }
        return p;
    }

    /** Code point in the low 32 bits, encoded length in bits 32..35; invalid byte -> (-1 code point, length 1). */
    static long decode(byte[] b, int p, int to) {
        int c = b[p] & 0xFF;
        if (c < 0x80) {
            return (1L << 32) | c;
        }
        int n;
        int cp;
        int min;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return (1L << 32) | 0xFFFFFFFFL;
        }
        if (p + n > to) {
            return (1L << 32) | 0xFFFFFFFFL;
        }
        for (int i = 1; i < n; i++) {
            int cc = b[p + i] & 0xFF;
            if ((cc & 0xC0) != 0x80) {
                return (1L << 32) | 0xFFFFFFFFL;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return (1L << 32) | 0xFFFFFFFFL;
        }
        return ((long) n << 32) | cp;
    }

    static int len(long decoded) {
        return (int) (decoded >>> 32);
    }

    static int classOf(long decoded) {
        int cp = (int) decoded;
        if (cp < 0) {
            return OTHER;
        }
        if (cp < 0x80) {
            return ASCII_CLASS[cp];
        }
        return classOfCodePoint(cp);
    }

    private static final byte[] ASCII_CLASS = new byte[128];

    static {
        for (int c = 0; c < 128; c++) {
            ASCII_CLASS[c] = (byte) classOfCodePoint(c);
        }
    }

    static int classOfCodePoint(int cp) {
        if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) {
            return SPACE;
        }
        switch (Character.getType(cp)) {
            case Character.SPACE_SEPARATOR:
            case Character.LINE_SEPARATOR:
            case Character.PARAGRAPH_SEPARATOR:
                return SPACE;
            case Character.UPPERCASE_LETTER:
            case Character.LOWERCASE_LETTER:
            case Character.TITLECASE_LETTER:
            case Character.MODIFIER_LETTER:
            case Character.OTHER_LETTER:
                return LETTER;
            case Character.DECIMAL_DIGIT_NUMBER:
            case Character.LETTER_NUMBER:
            case Character.OTHER_NUMBER:
                return NUMBER;
            default:
                return OTHER;
        }
    }
}
