package io.catena.model.train;

import io.catena.model.ColmConfig;
import io.catena.model.optim.AdamW;
import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * A training recipe: a .properties file with the model shape and the training knobs. Unknown keys
 * are errors (a typo must not silently train the default). Values can be overridden from the
 * command line with {@code --set key=value}.
 */
public final class Recipe {
    /** Every key a recipe may set (anything else is an error). */
    public static final Set<String> KEYS = java.util.Collections.unmodifiableSortedSet(new TreeSet<>(Arrays.asList(
            "vocab_size", "head_dim", "chains", "layers", "kv_heads", "ffn_mult", "activation", "norm", "norm_eps",
            "rope_theta", "variant", "max_seq_len", "bias", "loss_weights", "d_model", "heads",
            "batch_size", "seq_len", "steps", "lr", "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "adam_eps",
            "clip_norm", "growth_warmup_steps", "growth_lr_rewarm", "growth_new_chain_lr", "seed", "eval_every", "eval_batches", "log_every", "ckpt_every",
            "val_fraction", "frozen_chains", "precision")));

    private final Map<String, String> values;
    private final String source;

    private Recipe(Map<String, String> values, String source) {
        this.values = values;
        this.source = source;
    }

    /** The recipes bundled in chain-model's jar (cluster-conf/recipes), each also {@code builtin:NAME}. */
    public static final List<String> BUILTIN = List.of("tiny", "reference", "jdk-code", "small");

    /**
     * The one way every entry point reads a {@code --recipe}: a file (a path or a {@code file:} URI), or
     * {@code builtin:NAME} from the class path (io/catena/recipes/NAME.properties).
     */
    public static Recipe resolve(String spec) {
        if (spec.startsWith("builtin:")) {
            String name = spec.substring("builtin:".length());
            try (java.io.InputStream in = Recipe.class.getResourceAsStream("/io/catena/recipes/" + name + ".properties")) {
                if (in == null) {
                    throw new IllegalArgumentException("no bundled recipe '" + name + "'; bundled: " + String.join(", ", BUILTIN)
                            + " (cluster-conf/recipes/), or pass a recipe file");
                }
                Properties p = new Properties();
                p.load(new java.io.InputStreamReader(in, java.nio.charset.StandardCharsets.UTF_8));
                Map<String, String> m = new TreeMap<>();
                p.forEach((k, v) -> m.put(k.toString().trim(), v.toString().trim()));
                return of(m, spec);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return load(Path.of(io.catena.model.data.DataSources.localPath(spec)));
    }

    public static Recipe load(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("recipe " + file + " does not exist; see cluster-conf/recipes/ for examples");
        }
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(file)) {
            p.load(r);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read recipe " + file + ": " + e.getMessage(), e);
        }
        Map<String, String> m = new TreeMap<>();
        p.forEach((k, v) -> m.put(k.toString().trim(), v.toString().trim()));
        return of(m, file.toString());
    }

    public static Recipe of(Map<String, String> values, String source) {
        for (String k : values.keySet()) {
            if (!KEYS.contains(k)) {
                throw new IllegalArgumentException("recipe " + source + ": unknown key '" + k + "'; valid keys: " + KEYS);
            }
        }
        return new Recipe(new TreeMap<>(values), source);
    }

    /** A copy with key=value overrides applied. */
    public Recipe with(List<String> overrides) {
        Map<String, String> m = new TreeMap<>(values);
        for (String o : overrides) {
            int eq = o.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("override '" + o + "' must look like key=value");
            }
            m.put(o.substring(0, eq).trim(), o.substring(eq + 1).trim());
        }
        return of(m, source + " (+overrides)");
    }

    public Map<String, String> values() {
        return values;
    }

    private String str(String key, String dflt) {
        return values.getOrDefault(key, dflt);
    }

    private int integer(String key, int dflt) {
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("recipe " + source + ": " + key + " must be an integer, got '" + v + "'");
        }
    }

    private double dbl(String key, double dflt) {
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("recipe " + source + ": " + key + " must be a number, got '" + v + "'");
        }
    }

    private List<Integer> intList(String key, List<Integer> dflt) {
        if (!values.containsKey(key)) {
            return dflt;
        }
        List<Integer> out = new ArrayList<>();
        for (String s : values.get(key).split("[,\\s]+")) {
            if (!s.isEmpty()) {
                try {
                    out.add(Integer.parseInt(s));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("recipe " + source + ": " + key + " must be a comma-separated list of integers, got '"
                            + values.get(key) + "'");
                }
            }
        }
        return out;
    }

    /** The model config; dataVocabSize is used when the recipe does not set vocab_size. Defaults: {@link ColmConfig}. */
    public ColmConfig modelConfig(int dataVocabSize) {
        List<Integer> chains = intList("chains", ColmConfig.DEFAULT_CHAINS);
        int headDim = integer("head_dim", ColmConfig.DEFAULT_HEAD_DIM);
        int heads = chains.stream().mapToInt(Integer::intValue).sum();
        if (values.containsKey("heads") && integer("heads", heads) != heads) {
            throw new IllegalArgumentException("recipe " + source + ": heads=" + integer("heads", 0) + " but chains " + chains
                    + " sum to " + heads + " heads; sum(chains) must equal heads");
        }
        if (values.containsKey("d_model") && integer("d_model", 0) != headDim * heads) {
            throw new IllegalArgumentException("recipe " + source + ": d_model=" + integer("d_model", 0) + " but head_dim "
                    + headDim + " x sum(chains) " + heads + " = " + headDim * heads);
        }
        int vocab = integer("vocab_size", dataVocabSize);
        if (vocab < dataVocabSize) {
            throw new IllegalArgumentException("recipe " + source + ": vocab_size=" + vocab + " is smaller than the data's "
                    + dataVocabSize + " token ids");
        }
        ColmConfig.Variant variant = values.containsKey("variant") ? ColmConfig.parseVariant(values.get("variant"))
                : ColmConfig.DEFAULT_VARIANT;
        List<Double> weights = ColmConfig.parseLossWeights(str("loss_weights", ColmConfig.DEFAULT_LOSS_WEIGHTS), chains.size(),
                "recipe setting loss_weights");
        return new ColmConfig(vocab, headDim, chains, integer("layers", ColmConfig.DEFAULT_LAYERS),
                integer("kv_heads", ColmConfig.defaultKvHeads(variant)), dbl("ffn_mult", ColmConfig.DEFAULT_FFN_MULT),
                enumValue("activation", ColmConfig.Activation.class, ColmConfig.DEFAULT_ACTIVATION),
                enumValue("norm", ColmConfig.NormKind.class, ColmConfig.DEFAULT_NORM),
                dbl("norm_eps", ColmConfig.DEFAULT_NORM_EPS), dbl("rope_theta", ColmConfig.DEFAULT_ROPE_THETA), variant,
                integer("max_seq_len", integer("seq_len", TrainSettings.DEFAULT_SEQ_LEN)),
                bool("bias", ColmConfig.DEFAULT_BIAS), weights);
    }

    /** The training knobs. Defaults: {@link TrainSettings} and {@link AdamW.Settings#defaults()}. */
    public TrainSettings trainSettings() {
        long steps = integer("steps", (int) TrainSettings.DEFAULT_STEPS);
        AdamW.Settings d = AdamW.Settings.defaults();
        AdamW.Settings adam = new AdamW.Settings(dbl("beta1", d.beta1()), dbl("beta2", d.beta2()), dbl("adam_eps", d.eps()),
                dbl("weight_decay", d.weightDecay()), dbl("clip_norm", d.clipNorm()),
                integer("growth_warmup_steps", (int) d.growthWarmupSteps()), dbl("growth_new_chain_lr", d.growthNewChainLr()));
        double lr = dbl("lr", TrainSettings.DEFAULT_LR);
        return new TrainSettings(integer("batch_size", TrainSettings.DEFAULT_BATCH_SIZE),
                integer("seq_len", TrainSettings.DEFAULT_SEQ_LEN), steps, lr, dbl("min_lr", TrainSettings.defaultMinLr(lr)),
                integer("warmup_steps", (int) TrainSettings.defaultWarmupSteps(steps)), adam,
                integer("seed", (int) TrainSettings.DEFAULT_SEED), integer("eval_every", TrainSettings.DEFAULT_EVAL_EVERY),
                integer("eval_batches", TrainSettings.DEFAULT_EVAL_BATCHES), integer("log_every", TrainSettings.DEFAULT_LOG_EVERY),
                integer("ckpt_every", TrainSettings.DEFAULT_CKPT_EVERY), dbl("val_fraction", TrainSettings.DEFAULT_VAL_FRACTION),
                integer("frozen_chains", TrainSettings.DEFAULT_FROZEN_CHAINS),
                dbl("growth_lr_rewarm", TrainSettings.DEFAULT_GROWTH_LR_REWARM), precision());
    }

    private io.catena.model.kernel.Gemm.Precision precision() {
        String v = values.get("precision");
        if (v == null) {
            return TrainSettings.DEFAULT_PRECISION;
        }
        try {
            return io.catena.model.kernel.Gemm.Precision.parse(v);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("recipe " + source + ": " + e.getMessage());
        }
    }

    private <E extends Enum<E>> E enumValue(String key, Class<E> type, E dflt) {
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        try {
            return Enum.valueOf(type, v.toUpperCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("recipe " + source + ": " + key + " must be one of "
                    + Arrays.toString(type.getEnumConstants()).toLowerCase(java.util.Locale.ROOT) + ", got '" + v + "'");
        }
    }

    private boolean bool(String key, boolean dflt) {
        String v = values.get(key);
        if (v == null) {
            return dflt;
        }
        if (!v.equalsIgnoreCase("true") && !v.equalsIgnoreCase("false")) {
            throw new IllegalArgumentException("recipe " + source + ": " + key + " must be true or false, got '" + v + "'");
        }
        return Boolean.parseBoolean(v);
    }
}
