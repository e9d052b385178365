package io.catena.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Name -> (offset, shape, chain) of every parameter tensor in the one flat parameter buffer.
 * Ordered chain-major (all of chain 0, then chain 1, ...), so the k-chain sub-model is a prefix of
 * the buffer, freezing chains 0..k-1 freezes a prefix, and appending a chain appends tensors.
 */
public final class ParamLayout {

    public enum Kind {
        /** Matrix weights: decayed, normal init. */
        WEIGHT,
        /** Output projections (attention O, FFN down): normal init scaled by 1/sqrt(2L), decayed. */
        OUT_WEIGHT,
        EMBEDDING,
        HEAD,
        BIAS,
        NORM_GAIN,
        NORM_BIAS;

        public boolean decayed() {
            return this == WEIGHT || this == OUT_WEIGHT || this == EMBEDDING || this == HEAD;
        }
    }

    public record Entry(String name, int[] shape, int chain, long offset, Kind kind) {
        public long size() {
            long n = 1;
            for (int s : shape) {
                n *= s;
            }
            return n;
        }

        public int rows() {
            return shape[0];
        }

        public int cols() {
            return shape.length > 1 ? shape[1] : 1;
        }

        public String shapeString() {
            return java.util.Arrays.toString(shape);
        }
    }

    private final ColmConfig config;
    private final List<Entry> entries;
    private final Map<String, Entry> byName;
    private final long[] chainEnd;

    public ParamLayout(ColmConfig config) {
        this.config = config;
        List<Entry> list = new ArrayList<>();
        long[] ends = new long[config.numChains()];
        long offset = 0;
        for (int c = 0; c < config.numChains(); c++) {
            for (Object[] t : chainTensors(config, c)) {
                Entry e = new Entry((String) t[0], (int[]) t[1], c, offset, (Kind) t[2]);
                list.add(e);
                offset += e.size();
            }
            ends[c] = offset;
        }
        this.entries = Collections.unmodifiableList(list);
        Map<String, Entry> m = new LinkedHashMap<>();
        for (Entry e : list) {
            m.put(e.name(), e);
        }
        this.byName = Collections.unmodifiableMap(m);
        this.chainEnd = ends;
    }

    private static List<Object[]> chainTensors(ColmConfig cfg, int c) {
        List<Object[]> t = new ArrayList<>();
        int d = cfg.chainWidth(c);
        int p = cfg.prefixWidth(c + 1);
        int f = cfg.ffnChainWidth(c);
        int pf = cfg.ffnPrefixWidth(c + 1);
        int v = cfg.vocabSize();
        String sc = ".c" + c;
        t.add(new Object[] {"embed" + sc, new int[] {v, d}, Kind.EMBEDDING});
        for (int l = 0; l < cfg.layers(); l++) {
            String pre = "layers." + l + ".";
            norm(t, cfg, pre + "norm1" + sc, d);
            if (!cfg.isAir()) {
                // q, k, v weights adjacent (one [3 D_i, P_i] matrix: one GEMM per chain), then their biases
                for (String w : new String[] {"q", "k", "v"}) {
                    t.add(new Object[] {pre + "attn." + w + sc + ".weight", new int[] {d, p}, Kind.WEIGHT});
                }
                if (cfg.bias()) {
                    for (String w : new String[] {"q", "k", "v"}) {
                        t.add(new Object[] {pre + "attn." + w + sc + ".bias", new int[] {d}, Kind.BIAS});
                    }
                }
            } else {
                linear(t, cfg, pre + "attn.q" + sc, d, p, Kind.WEIGHT);
            }
            if (cfg.isAir() && c == 0) {
                linear(t, cfg, pre + "attn.k" + sc, cfg.kvWidth(), d, Kind.WEIGHT);
                linear(t, cfg, pre + "attn.v" + sc, cfg.kvWidth(), d, Kind.WEIGHT);
            }
            linear(t, cfg, pre + "attn.o" + sc, d, p, Kind.OUT_WEIGHT);
            norm(t, cfg, pre + "norm2" + sc, d);
            linear(t, cfg, pre + "ffn.up" + sc, f, p, Kind.WEIGHT);
            if (cfg.activation() == ColmConfig.Activation.SWIGLU) {
                linear(t, cfg, pre + "ffn.gate" + sc, f, p, Kind.WEIGHT);
            }
            linear(t, cfg, pre + "ffn.down" + sc, d, pf, Kind.OUT_WEIGHT);
        }
        norm(t, cfg, "norm_f" + sc, d);
        t.add(new Object[] {"head" + sc, new int[] {d, v}, Kind.HEAD});
        return t;
    }

    private static void linear(List<Object[]> t, ColmConfig cfg, String name, int out, int in, Kind kind) {
        t.add(new Object[] {name + ".weight", new int[] {out, in}, kind});
        if (cfg.bias()) {
            t.add(new Object[] {name + ".bias", new int[] {out}, Kind.BIAS});
        }
    }

    private static void norm(List<Object[]> t, ColmConfig cfg, String name, int d) {
        t.add(new Object[] {name + ".gain", new int[] {d}, Kind.NORM_GAIN});
        if (cfg.norm() == ColmConfig.NormKind.LAYERNORM) {
            t.add(new Object[] {name + ".bias", new int[] {d}, Kind.NORM_BIAS});
        }
    }

    public ColmConfig config() {
        return config;
    }

    public List<Entry> entries() {
        return entries;
    }

    public boolean has(String name) {
        return byName.containsKey(name);
    }

    public Entry get(String name) {
        Entry e = byName.get(name);
        if (e == null) {
            throw new IllegalArgumentException("no parameter tensor named '" + name + "' in this layout (chains "
                    + config.chains() + ")");
        }
        return e;
    }

    /** Total parameter count. */
    public long size() {
        return chainEnd[chainEnd.length - 1];
    }

    /** Parameters of the k-chain sub-model: the prefix [0, prefixSize(k)). */
    public long prefixSize(int k) {
        return k == 0 ? 0 : chainEnd[k - 1];
    }
}
