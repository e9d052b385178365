package io.catena.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The shape of a CoLM / CoLM-Air model (see chain-model/MODEL.md). Chains are given as query-head
 * counts; {@code d_model = headDim * sum(chains)}, so appending a chain widens the model and keeps
 * head_dim. Every derived width is an exact integer or the constructor says which numbers do not divide.
 */
public record ColmConfig(
        int vocabSize,
        int headDim,
        List<Integer> chains,
        int layers,
        int kvHeads,
        double ffnMult,
        Activation activation,
        NormKind norm,
        double normEps,
        double ropeTheta,
        Variant variant,
        int maxSeqLen,
        boolean bias,
        List<Double> lossWeights) {

    public enum Variant { COLM, COLM_AIR }

    public enum Activation { GELU, SWIGLU }

    public enum NormKind { LAYERNORM, RMSNORM }

    // ---- defaults: what a recipe that leaves a key out gets (Recipe only parses; the values live here) ----

    public static final List<Integer> DEFAULT_CHAINS = List.of(2, 2);
    public static final int DEFAULT_HEAD_DIM = 64;
    public static final int DEFAULT_LAYERS = 4;
    public static final double DEFAULT_FFN_MULT = 4.0;
    public static final Activation DEFAULT_ACTIVATION = Activation.GELU;
    public static final NormKind DEFAULT_NORM = NormKind.LAYERNORM;
    public static final double DEFAULT_NORM_EPS = 1e-5;
    public static final double DEFAULT_ROPE_THETA = 10000.0;
    public static final Variant DEFAULT_VARIANT = Variant.COLM;
    public static final boolean DEFAULT_BIAS = true;
    /** loss_weights when not given: every prefix of chains weighted equally (see {@link #parseLossWeights}). */
    public static final String DEFAULT_LOSS_WEIGHTS = "mean";

    /** kv_heads when not given: one shared K/V head for CoLM-Air; CoLM has no separate K/V heads (0). */
    public static int defaultKvHeads(Variant variant) {
        return variant == Variant.COLM_AIR ? 1 : 0;
    }

    public ColmConfig {
        chains = List.copyOf(chains);
        if (lossWeights == null || lossWeights.isEmpty()) {
            lossWeights = meanWeights(chains.size());
        }
        lossWeights = List.copyOf(lossWeights);
        validate(vocabSize, headDim, chains, layers, kvHeads, ffnMult, normEps, variant, maxSeqLen, lossWeights);
    }

    private static void validate(int vocabSize, int headDim, List<Integer> chains, int layers, int kvHeads,
                                 double ffnMult, double normEps, Variant variant, int maxSeqLen, List<Double> w) {
        require(vocabSize >= 2, "vocab_size must be >= 2, got " + vocabSize);
        require(headDim >= 2 && headDim % 2 == 0, "head_dim must be even and >= 2 (RoPE rotates pairs), got " + headDim);
        require(!chains.isEmpty(), "chains must list at least one head count, e.g. chains=2,2");
        for (int i = 0; i < chains.size(); i++) {
            require(chains.get(i) >= 1, "chains[" + i + "] must be >= 1 head, got " + chains.get(i) + " in " + chains);
        }
        require(layers >= 1, "layers must be >= 1, got " + layers);
        double ffnPerHead = ffnMult * headDim;
        require(ffnMult > 0 && Math.abs(ffnPerHead - Math.rint(ffnPerHead)) < 1e-9,
                "ffn_mult * head_dim must be a positive integer so every chain's FFN width divides exactly; got "
                        + ffnMult + " * " + headDim + " = " + ffnPerHead);
        require(normEps > 0, "norm_eps must be > 0, got " + normEps);
        require(maxSeqLen >= 1, "max_seq_len must be >= 1, got " + maxSeqLen);
        if (variant == Variant.COLM_AIR) {
            require(kvHeads >= 1, "kv_heads must be >= 1 for colm-air, got " + kvHeads);
            for (int i = 0; i < chains.size(); i++) {
                require(chains.get(i) % kvHeads == 0, "colm-air needs every chain's head count to be a multiple of kv_heads="
                        + kvHeads + ", but chains[" + i + "]=" + chains.get(i) + " (chains " + chains + ")");
            }
        }
        require(w.size() == chains.size(), "loss_weights needs one weight per chain (" + chains.size() + "), got "
                + w.size() + ": " + w);
        double sum = 0;
        for (double x : w) {
            require(x >= 0 && Double.isFinite(x), "loss_weights must be finite and >= 0, got " + w);
            sum += x;
        }
        require(Math.abs(sum - 1.0) < 1e-6, "loss_weights must sum to 1, got " + w + " (sum " + sum + ")");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("invalid CoLM config: " + message);
        }
    }

    public static List<Double> meanWeights(int n) {
        return Collections.nCopies(n, 1.0 / n);
    }

    public static List<Double> fullOnlyWeights(int n) {
        List<Double> w = new ArrayList<>(Collections.nCopies(n, 0.0));
        w.set(n - 1, 1.0);
        return w;
    }

    /**
     * Per-scale loss weights for n chains from their written form: {@code mean}, {@code full-only} or one
     * number per chain ({@code 0.2,0.3,0.5}). {@code what} names the setting in the error.
     */
    public static List<Double> parseLossWeights(String spec, int n, String what) {
        String s = spec.trim();
        if (s.equals("mean")) {
            return meanWeights(n);
        }
        if (s.equals("full-only")) {
            return fullOnlyWeights(n);
        }
        List<Double> w = new ArrayList<>();
        for (String part : s.split(",")) {
            try {
                w.add(Double.parseDouble(part.trim()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(what + " = '" + spec + "': '" + part.trim() + "' is not a number; expected mean, "
                        + "full-only or one weight per chain (" + n + "), e.g. " + String.join(",", Collections.nCopies(n, "1")));
            }
        }
        if (w.size() != n) {
            throw new IllegalArgumentException(what + " = '" + spec + "' has " + w.size() + " weights, the model has " + n
                    + " chains; give one per chain, or mean / full-only");
        }
        return w;
    }

    // ---- derived sizes ------------------------------------------------------------------------

    public int numChains() {
        return chains.size();
    }

    /** Query heads of chains [0, k). */
    public int headsUpTo(int k) {
        int h = 0;
        for (int i = 0; i < k; i++) {
            h += chains.get(i);
        }
        return h;
    }

    public int heads() {
        return headsUpTo(numChains());
    }

    public int dModel() {
        return headDim * heads();
    }

    public int chainWidth(int i) {
        return headDim * chains.get(i);
    }

    public int chainOffset(int i) {
        return headDim * headsUpTo(i);
    }

    /** Width of the first k chains together. */
    public int prefixWidth(int k) {
        return headDim * headsUpTo(k);
    }

    public int ffnPerHead() {
        return (int) Math.rint(ffnMult * headDim);
    }

    public int ffnChainWidth(int i) {
        return ffnPerHead() * chains.get(i);
    }

    public int ffnPrefixWidth(int k) {
        return ffnPerHead() * headsUpTo(k);
    }

    public int ffnWidth() {
        return ffnPrefixWidth(numChains());
    }

    /** Width of CoLM-Air's shared K (and V) projection. */
    public int kvWidth() {
        return kvHeads * headDim;
    }

    public boolean isAir() {
        return variant == Variant.COLM_AIR;
    }

    /** Checks that a scale k (number of chains used) is valid for this model. */
    public void checkScale(int k) {
        if (k < 1 || k > numChains()) {
            throw new IllegalArgumentException("scale k=" + k + " chains requested, but this model has "
                    + numChains() + " chain(s) " + chains + "; use 1.." + numChains());
        }
    }

    /** The config after appending chains with these head counts (expansion). */
    public ColmConfig withAppendedChains(List<Integer> added, List<Double> newLossWeights) {
        List<Integer> c = new ArrayList<>(chains);
        c.addAll(added);
        List<Double> w = newLossWeights != null ? newLossWeights : meanWeights(c.size());
        return new ColmConfig(vocabSize, headDim, c, layers, kvHeads, ffnMult, activation, norm, normEps,
                ropeTheta, variant, maxSeqLen, bias, w);
    }

    public ColmConfig withLossWeights(List<Double> w) {
        return new ColmConfig(vocabSize, headDim, chains, layers, kvHeads, ffnMult, activation, norm, normEps,
                ropeTheta, variant, maxSeqLen, bias, w);
    }

    // ---- serialisation (the keys of MODEL.md) -------------------------------------------------

    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("vocab_size", vocabSize);
        m.put("head_dim", headDim);
        m.put("chains", chains);
        m.put("layers", layers);
        m.put("kv_heads", kvHeads);
        m.put("ffn_mult", ffnMult);
        m.put("activation", activation.name().toLowerCase());
        m.put("norm", norm.name().toLowerCase());
        m.put("norm_eps", normEps);
        m.put("rope_theta", ropeTheta);
        m.put("variant", variant == Variant.COLM ? "colm" : "colm-air");
        m.put("max_seq_len", maxSeqLen);
        m.put("bias", bias);
        m.put("loss_weights", lossWeights);
        return m;
    }

    @SuppressWarnings("unchecked")
    public static ColmConfig fromMap(Map<String, Object> m) {
        try {
            List<Integer> chains = new ArrayList<>();
            for (Object o : (List<Object>) m.get("chains")) {
                chains.add(((Number) o).intValue());
            }
            List<Double> w = new ArrayList<>();
            Object lw = m.get("loss_weights");
            if (lw != null) {
                for (Object o : (List<Object>) lw) {
                    w.add(((Number) o).doubleValue());
                }
            }
            return new ColmConfig(
                    num(m, "vocab_size").intValue(), num(m, "head_dim").intValue(), chains,
                    num(m, "layers").intValue(), num(m, "kv_heads").intValue(), num(m, "ffn_mult").doubleValue(),
                    Activation.valueOf(str(m, "activation").toUpperCase()),
                    NormKind.valueOf(str(m, "norm").toUpperCase()),
                    num(m, "norm_eps").doubleValue(), num(m, "rope_theta").doubleValue(),
                    parseVariant(str(m, "variant")), num(m, "max_seq_len").intValue(),
                    Boolean.TRUE.equals(m.get("bias")), w);
        } catch (ClassCastException | NullPointerException e) {
            throw new IllegalArgumentException("invalid CoLM config map " + m + ": " + e.getMessage(), e);
        }
    }

    private static Number num(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (!(v instanceof Number n)) {
            throw new IllegalArgumentException("config key '" + key + "' must be a number, found " + v);
        }
        return n;
    }

    private static String str(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (v == null) {
            throw new IllegalArgumentException("config key '" + key + "' is missing");
        }
        return v.toString();
    }

    public static Variant parseVariant(String s) {
        return switch (s.trim().toLowerCase()) {
            case "colm" -> Variant.COLM;
            case "colm-air", "colm_air", "air" -> Variant.COLM_AIR;
            default -> throw new IllegalArgumentException("variant must be colm or colm-air, got '" + s + "'");
        };
    }

    @Override
    public String toString() {
        return toMap().toString();
    }
}
