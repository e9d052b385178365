package io.catena.model.kernel;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.catena.model.ColmConfig;
import io.catena.model.data.ByteTokenizer;
import io.catena.model.data.TextByteSource;
import io.catena.model.optim.AdamW;
import io.catena.model.train.LocalTrainer;
import io.catena.model.train.TrainSettings;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** A child JVM for NativeSetupTest: prints the native report (and training losses) as one JSON line. */
public final class NativeSetupProbeMain {
    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "report";
        if (mode.equals("preloaded")) {
            // someone loads OpenBLAS before Catena can choose its kernel
            org.bytedeco.javacpp.Loader.load(org.bytedeco.openblas.global.openblas.class);
        }
        Map<String, Object> out = new LinkedHashMap<>(NativeSetup.report().toMap());
        if (mode.equals("train")) {
            out.put("losses", train(8));
        }
        System.out.println("RESULT " + new ObjectMapper().writeValueAsString(out));
    }

    private static List<double[]> train(int steps) throws Exception {
        int[] corpus;
        try (InputStream in = NativeSetupProbeMain.class.getResourceAsStream("/io/catena/corpus/genesis.txt")) {
            corpus = ByteTokenizer.encode(in.readNBytes(6000));
        }
        ColmConfig cfg = new ColmConfig(ByteTokenizer.VOCAB_SIZE, 16, List.of(1, 1), 2, 0, 4.0, ColmConfig.Activation.GELU,
                ColmConfig.NormKind.LAYERNORM, 1e-5, 1e4, ColmConfig.Variant.COLM, 32, true, null);
        TrainSettings s = new TrainSettings(8, 32, steps, 1e-2, 1e-3, 2, AdamW.Settings.defaults(), 5, 0, 2, 1000, 0, 0.1, 0);
        var train = TextByteSource.open(corpus, "genesis-6k", 32, 0.0, TextByteSource.Split.TRAIN, 1, 0, 1);
        LocalTrainer t = new LocalTrainer(LocalTrainer.freshState(cfg, 1), s, train, null, null, null,
                new PrintStream(new ByteArrayOutputStream()), Map.of());
        List<double[]> losses = new java.util.ArrayList<>();
        for (int i = 0; i < steps; i++) {
            losses.add(t.trainStep());
        }
        return losses;
    }
}
