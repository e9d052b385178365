package io.catena.data.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;

/**
 * Learns byte-level BPE merges from a unique-word table (pre-tokenized pieces and their counts, as
 * aggregated by Spark executors). Runs on the driver. Deterministic: the most frequent pair wins, ties
 * go to the smallest (left id, right id), and ids are assigned in merge order, so the result depends
 * only on the multiset of words, never on map iteration or partition order.
 *
 * <p>Ids: 0..255 are the byte tokens in byte order, then one id per new merged string, then EOS and PAD.
 */
public final class BpeTrainer {

    private BpeTrainer() {
    }

    /**
     * @param wordCounts   piece bytes (as an ISO-8859-1 string, one char per byte) -> occurrences
     * @param vocabSize    total vocabulary size including EOS and PAD; at least 258
     * @param minPairCount a pair seen fewer times than this is never merged (stops training early)
     */
    public static ByteLevelBpe train(Map<String, Long> wordCounts, int vocabSize, long minPairCount) {
        if (vocabSize < 258) {
            throw new IllegalArgumentException("vocab size " + vocabSize + " is too small: a byte-level BPE needs 256 byte"
                    + " tokens + EOS + PAD = 258 at least; pass --tokenizer train:<n> with n >= 258 (e.g. train:8192)");
        }
        String[] keys = wordCounts.keySet().toArray(new String[0]);
        Arrays.sort(keys);
        int[][] words = new int[keys.length][];
        long[] counts = new long[keys.length];
        for (int w = 0; w < keys.length; w++) {
            byte[] b = keys[w].getBytes(StandardCharsets.ISO_8859_1);
            int[] s = new int[b.length];
            for (int i = 0; i < b.length; i++) {
                s[i] = b[i] & 0xFF;
            }
            words[w] = s;
            counts[w] = wordCounts.get(keys[w]);
        }
        List<String> tokens = new ArrayList<>();
        Map<String, Integer> ids = new HashMap<>();
        for (int b = 0; b < 256; b++) {
            String t = String.valueOf(ByteLevel.charOf(b));
            ids.put(t, tokens.size());
            tokens.add(t);
        }
        HashMap<Long, Long> pairCount = new HashMap<>();
        HashMap<Long, Set<Integer>> where = new HashMap<>();
        for (int w = 0; w < words.length; w++) {
            addPairs(words[w], counts[w], w, pairCount, where, null);
        }
        PriorityQueue<long[]> queue = new PriorityQueue<>((x, y) -> x[0] != y[0] ? Long.compare(y[0], x[0]) : Long.compare(x[1], y[1]));
        for (Map.Entry<Long, Long> e : pairCount.entrySet()) {
            queue.add(new long[] {e.getValue(), e.getKey()});
        }
        int target = vocabSize - 2;
        List<int[]> merges = new ArrayList<>();
        Set<Long> touched = new HashSet<>();
        while (tokens.size() < target && !queue.isEmpty()) {
            long[] top = queue.poll();
            long key = top[1];
            long actual = pairCount.getOrDefault(key, 0L);
            if (actual != top[0]) {
                if (actual > 0) {
                    queue.add(new long[] {actual, key});
                }
                continue;
            }
            if (actual < Math.max(1, minPairCount)) {
                break;
            }
            int a = (int) (key >>> 32);
            int b = (int) key;
            String merged = tokens.get(a) + tokens.get(b);
            Integer id = ids.get(merged);
            if (id == null) {
                id = tokens.size();
                ids.put(merged, id);
                tokens.add(merged);
            }
            merges.add(new int[] {a, b});
            Set<Integer> ws = where.remove(key);
            if (ws == null) {
                continue;
            }
            Integer[] wl = ws.toArray(new Integer[0]);
            Arrays.sort(wl);
            touched.clear();
            for (int w : wl) {
                int[] old = words[w];
                int[] neu = mergeWord(old, a, b, id);
                if (neu == old) {
                    continue;
                }
                removePairs(old, counts[w], pairCount);
                addPairs(neu, counts[w], w, pairCount, where, touched);
                words[w] = neu;
            }
            pairCount.remove(key);
            for (long t : touched) {
                Long c = pairCount.get(t);
                if (c != null && c > 0) {
                    queue.add(new long[] {c, t});
                }
            }
        }
        int n = tokens.size();
        String[] vocab = tokens.toArray(new String[n + 2]);
        vocab[n] = ByteLevelBpe.EOS;
        vocab[n + 1] = ByteLevelBpe.PAD;
        boolean[] special = new boolean[n + 2];
        special[n] = true;
        special[n + 1] = true;
        int[] left = new int[merges.size()];
        int[] right = new int[merges.size()];
        for (int r = 0; r < merges.size(); r++) {
            left[r] = merges.get(r)[0];
            right[r] = merges.get(r)[1];
        }
        return new ByteLevelBpe(vocab, special, left, right, ByteLevelBpe.EOS, ByteLevelBpe.PAD);
    }

    private static int[] mergeWord(int[] s, int a, int b, int id) {
        int[] out = null;
        int n = 0;
        for (int i = 0; i < s.length; i++) {
            if (i + 1 < s.length && s[i] == a && s[i + 1] == b) {
                if (out == null) {
                    out = new int[s.length - 1];
                    System.arraycopy(s, 0, out, 0, i);
                    n = i;
                }
                out[n++] = id;
                i++;
            } else if (out != null) {
                out[n++] = s[i];
            }
        }
        return out == null ? s : Arrays.copyOf(out, n);
    }

    private static void addPairs(int[] s, long c, int w, HashMap<Long, Long> pairCount, HashMap<Long, Set<Integer>> where, Set<Long> touched) {
        for (int i = 0; i + 1 < s.length; i++) {
            long k = PairTable.key(s[i], s[i + 1]);
            pairCount.merge(k, c, Long::sum);
            where.computeIfAbsent(k, x -> new HashSet<>()).add(w);
            if (touched != null) {
                touched.add(k);
            }
        }
    }

    private static void removePairs(int[] s, long c, HashMap<Long, Long> pairCount) {
        for (int i = 0; i + 1 < s.length; i++) {
            long k = PairTable.key(s[i], s[i + 1]);
            long v = pairCount.get(k) - c;
            if (v <= 0) {
                pairCount.remove(k);
            } else {
                pairCount.put(k, v);
            }
        }
    }
}
