package io.catena.model;

import io.catena.model.layers.Attention;
import io.catena.model.layers.ChainLinear;
import io.catena.model.layers.ChainNorm;
import io.catena.model.layers.Embedding;
import io.catena.model.layers.FeedForward;
import io.catena.model.layers.LmHead;
import io.catena.model.layers.Rope;
import org.nd4j.linalg.api.buffer.DataType;

/** One of every layer type over the first block's tensors of a layout, for tests that exercise layers one by one. */
record LayerSet(ChainLinear q, ChainNorm norm, Attention att, FeedForward ffn, Embedding emb, LmHead head) {

    static LayerSet of(ColmConfig cfg, Params params, Params grads, int batch, int seq, DataType type) {
        int n = cfg.numChains(), rows = batch * seq;
        int[] widths = new int[n];
        int[] prefixes = new int[n];
        for (int i = 0; i < n; i++) {
            widths[i] = cfg.chainWidth(i);
            prefixes[i] = cfg.prefixWidth(i + 1);
        }
        return new LayerSet(new ChainLinear(params, grads, "layers.0.attn.q", 0, widths, prefixes),
                new ChainNorm(cfg, params, grads, "layers.0.norm1", rows),
                new Attention(cfg, params, grads, "layers.0.", new Rope(cfg.headDim(), cfg.maxSeqLen(), cfg.ropeTheta()),
                        new Attention.Scratch(cfg, batch, seq, type), batch, seq, type),
                new FeedForward(cfg, params, grads, "layers.0.", new FeedForward.Scratch(cfg, rows, type), rows, type),
                new Embedding(cfg, params, grads),
                new LmHead(cfg, params, grads, rows, type));
    }
}
