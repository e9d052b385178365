package io.catena.data.tokenizer;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A byte-level BPE tokenizer (GPT-2 family), loadable from and savable to a HuggingFace
 * {@code tokenizer.json} ({@link TokenizerJson}). Text is pre-tokenized by {@link PreTokenizer},
 * each piece's bytes become byte tokens, and merges are applied lowest rank first (leftmost on ties),
 * exactly as HuggingFace's BPE model does.
 *
 * <p>{@link #encode(byte[])} accepts ANY byte sequence (including invalid UTF-8) and
 * {@link #decode(int[], int, int)} returns the same bytes: the 256 byte tokens are always in the
 * vocabulary. Text never produces special tokens; {@link #eosId()} and {@link #padId()} are added by
 * callers. Instances are immutable apart from a per-instance encode cache and are thread-safe only
 * per thread-confined copy ({@link #copy()}); Spark tasks deserialize their own copy.
 */
public final class ByteLevelBpe implements Serializable {

    private static final long serialVersionUID = 1L;
    /** Default end-of-document token. */
    public static final String EOS = "<|endoftext|>";
    /** Default padding token. */
    public static final String PAD = "<|pad|>";
    private static final int CACHE_LIMIT = 1 << 18;

    private final String[] tokens;          // id -> byte-level string (or special content)
    private final boolean[] special;
    private final int[] mergeLeft;
    private final int[] mergeRight;
    private final int[] mergeResult;
    private final int[] byteToId = new int[256];
    private final int eosId;
    private final int padId;
    private final PairTable pairs;
    private transient byte[][] tokenBytes;
    private transient HashMap<String, int[]> cache;

    /**
     * @param tokens      id -> token string (byte-level alphabet for normal tokens), no duplicates
     * @param special     id -> whether it is a special (added) token
     * @param mergeLeft   rank -> left id of the merged pair
     * @param mergeRight  rank -> right id
     * @param eosToken    content of the end-of-document token (must be a special token)
     * @param padToken    content of the padding token, or null if the vocabulary has none
     */
    public ByteLevelBpe(String[] tokens, boolean[] special, int[] mergeLeft, int[] mergeRight,
                        String eosToken, String padToken) {
        this.tokens = tokens.clone();
        this.special = special.clone();
        this.mergeLeft = mergeLeft.clone();
        this.mergeRight = mergeRight.clone();
        Map<String, Integer> ids = new HashMap<>();
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] == null) {
                throw new IllegalArgumentException("vocabulary has no token for id " + i + " of " + tokens.length
                        + "; expected contiguous ids 0.." + (tokens.length - 1));
            }
            if (ids.put(tokens[i], i) != null) {
                throw new IllegalArgumentException("vocabulary has token '" + tokens[i] + "' twice; expected unique tokens");
            }
        }
        Arrays.fill(byteToId, -1);
        for (int i = 0; i < tokens.length; i++) {
            if (!special[i] && tokens[i].length() == 1 && ByteLevel.byteOf(tokens[i].charAt(0)) >= 0) {
                byteToId[ByteLevel.byteOf(tokens[i].charAt(0))] = i;
            }
        }
        for (int b = 0; b < 256; b++) {
            if (byteToId[b] < 0) {
                throw new IllegalArgumentException("vocabulary lacks the byte token '" + ByteLevel.charOf(b) + "' for byte 0x"
                        + String.format("%02X", b) + "; a byte-level BPE must contain all 256 byte tokens to encode any input");
            }
        }
        this.mergeResult = new int[mergeLeft.length];
        for (int r = 0; r < mergeLeft.length; r++) {
            String merged = tokens[mergeLeft[r]] + tokens[mergeRight[r]];
            Integer id = ids.get(merged);
            if (id == null) {
                throw new IllegalArgumentException("merge #" + r + " '" + tokens[mergeLeft[r]] + " " + tokens[mergeRight[r]]
                        + "' produces '" + merged + "', which is not in the vocabulary");
            }
            mergeResult[r] = id;
        }
        this.eosId = specialId(ids, eosToken, "EOS");
        this.padId = padToken == null ? -1 : specialId(ids, padToken, "PAD");
        this.pairs = new PairTable(mergeLeft, mergeRight, mergeResult);
    }

    private int specialId(Map<String, Integer> ids, String content, String role) {
        Integer id = ids.get(content);
        if (id == null || !special[id]) {
            throw new IllegalArgumentException("tokenizer has no special token '" + content + "' to use as " + role
                    + "; add it to added_tokens (special=true) in tokenizer.json");
        }
        return id;
    }

    /** A copy with its own encode cache, for another thread. */
    public ByteLevelBpe copy() {
        return new ByteLevelBpe(tokens, special, mergeLeft, mergeRight, tokens[eosId], padId < 0 ? null : tokens[padId]);
    }

    public int vocabSize() {
        return tokens.length;
    }

    public int eosId() {
        return eosId;
    }

    /** Padding id, or -1 if the vocabulary has no PAD token. */
    public int padId() {
        return padId;
    }

    public String token(int id) {
        return tokens[id];
    }

    public boolean isSpecial(int id) {
        return special[id];
    }

    public int mergeCount() {
        return mergeLeft.length;
    }

    public int mergeLeft(int rank) {
        return mergeLeft[rank];
    }

    public int mergeRight(int rank) {
        return mergeRight[rank];
    }

    /** Encodes UTF-8 text. */
    public int[] encode(String text) {
        return encode(text.getBytes(StandardCharsets.UTF_8));
    }

    /** Encodes any bytes. */
    public int[] encode(byte[] bytes) {
        IntBuffer out = new IntBuffer(Math.max(16, bytes.length / 3));
        encode(bytes, 0, bytes.length, out);
        return out.toArray();
    }

    /** Appends the ids of {@code bytes[from, to)} to {@code out}. */
    public void encode(byte[] bytes, int from, int to, IntBuffer out) {
        int pos = from;
        while (pos < to) {
            int end = PreTokenizer.next(bytes, pos, to);
            encodePiece(bytes, pos, end, out);
            pos = end;
        }
    }

    private void encodePiece(byte[] b, int start, int end, IntBuffer out) {
        int n = end - start;
        if (n == 1) {
            out.add(byteToId[b[start] & 0xFF]);
            return;
        }
        HashMap<String, int[]> c = cache;
        if (c == null) {
            c = cache = new HashMap<>(1 << 12);
        }
        String key = new String(b, start, n, StandardCharsets.ISO_8859_1);
        int[] ids = c.get(key);
        if (ids == null) {
            ids = merge(b, start, n);
            if (c.size() >= CACHE_LIMIT) {
                c.clear();
            }
            c.put(key, ids);
        }
        out.addAll(ids);
    }

    private int[] merge(byte[] b, int start, int n) {
        int[] sym = new int[n];
        for (int i = 0; i < n; i++) {
            sym[i] = byteToId[b[start + i] & 0xFF];
        }
        int len = n;
        while (len > 1) {
            int bestRank = Integer.MAX_VALUE;
            int bestPos = -1;
            int bestResult = -1;
            for (int i = 0; i + 1 < len; i++) {
                int s = pairs.find(sym[i], sym[i + 1]);
                if (s >= 0 && pairs.rank(s) < bestRank) {
                    bestRank = pairs.rank(s);
                    bestPos = i;
                    bestResult = pairs.result(s);
                }
            }
            if (bestPos < 0) {
                break;
            }
            sym[bestPos] = bestResult;
            System.arraycopy(sym, bestPos + 2, sym, bestPos + 1, len - bestPos - 2);
            len--;
        }
        return len == n ? sym : Arrays.copyOf(sym, len);
    }

    /** Bytes of ids[from, to); special tokens decode to their UTF-8 content. */
    public byte[] decode(int[] ids, int from, int to) {
        byte[][] tb = tokenBytes();
        int total = 0;
        for (int i = from; i < to; i++) {
            total += tb[checkId(ids[i])].length;
        }
        byte[] out = new byte[total];
        int p = 0;
        for (int i = from; i < to; i++) {
            byte[] t = tb[ids[i]];
            System.arraycopy(t, 0, out, p, t.length);
            p += t.length;
        }
        return out;
    }

    public byte[] decode(int[] ids) {
        return decode(ids, 0, ids.length);
    }

    /** Decodes to a String (invalid UTF-8 becomes U+FFFD). */
    public String decodeToString(int[] ids) {
        return new String(decode(ids), StandardCharsets.UTF_8);
    }

    private int checkId(int id) {
        if (id < 0 || id >= tokens.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + tokens.length + ")");
        }
        return id;
    }

    private byte[][] tokenBytes() {
        byte[][] tb = tokenBytes;
        if (tb == null) {
            tb = new byte[tokens.length][];
            for (int i = 0; i < tokens.length; i++) {
                tb[i] = special[i] ? tokens[i].getBytes(StandardCharsets.UTF_8) : ByteLevel.decode(tokens[i]);
            }
            tokenBytes = tb;
        }
        return tb;
    }

    /** SHA-256 (hex) of the canonical tokenizer.json this tokenizer serializes to. */
    public String sha256() {
        return sha256Hex(TokenizerJson.toJson(this).getBytes(StandardCharsets.UTF_8));
    }

    static String sha256Hex(byte[] data) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(data);
            StringBuilder sb = new StringBuilder(64);
            for (byte x : d) {
                sb.append(Character.forDigit((x >> 4) & 0xF, 16)).append(Character.forDigit(x & 0xF, 16));
            }
            return sb.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Ids of the special tokens, ascending. */
    public List<Integer> specialIds() {
        java.util.ArrayList<Integer> l = new java.util.ArrayList<>();
        for (int i = 0; i < special.length; i++) {
            if (special[i]) {
                l.add(i);
            }
        }
        return l;
    }
}
