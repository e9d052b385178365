package io.catena.model.pipeline;

import io.catena.model.BlockStack;
import io.catena.model.ColmConfig;
import io.catena.model.Params;
import io.catena.model.kernel.Mat;
import io.catena.model.kernel.Prof;
import io.catena.model.layers.ChainNorm;
import io.catena.model.layers.Embedding;
import io.catena.model.layers.LmHead;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * One pipeline stage of a CoLM: sublayers (block halves) [first, end) of a {@link StagePlan}, plus the embedding on
 * the first stage and norm_f, LM head and multi-chain loss on the last, for micro-batches of
 * {@code microBatch x seqLen} rows. Parameters and gradients are the caller's flat buffers with the
 * full layout; a stage reads and writes only its {@link StagePlan.Stage#paramRanges()}.
 *
 * <p>Up to {@code slots} micro-batches may be in flight (forwarded, not yet backwarded); micro-batch
 * m uses slot m % slots, which is free under GPipe (slots = M) and 1F1B (slots = P - s + 1, 1 on the last stage) because both
 * run backwards in the order of the forwards. Without recomputation every slot keeps the full
 * activations of its blocks; with it, a slot keeps only the stage input (nothing on the first stage:
 * the tokens suffice) and backward recomputes the blocks' forward on one shared working set first.
 *
 * <p>Per step: {@link #beginStep}, then for each op of the schedule
 * F(m): [{@link #inputActivation} filled by the caller] {@link #forward} [{@link #loss} on the last stage];
 * B(m): [{@link #outputGradient} filled by the caller] {@link #backward}. Weight gradients of a step
 * are written by its first backward and summed over the others, each micro-batch's loss weighted
 * by 1/M, so they equal those of one {@code ColmModel.forwardBackward} over the M micro-batches.
 * CoLM trains with all n chains, so every activation and gradient is [rows x d_model].
 */
public final class PipelineStage {
    private final ColmConfig cfg;
    private final StagePlan.Stage stage;
    private final int rows;
    private final int slots;
    private final boolean recompute;
    private final int scale;
    private final BlockStack.Workspace ws;
    /** One stack per slot, or one working stack with recomputation. */
    private final BlockStack[] stacks;
    /** Recomputation on a non-first stage: each slot's stage input. */
    private final Mat[] savedInput;
    /** Last stage: each slot's gradient with respect to the stage output, computed by {@link #loss}. */
    private final Mat[] savedOutputGrad;
    /** Non-last stage: the received gradient of the stage output; then, in place, of its input. */
    private final Mat dx;
    private final Embedding embedding;
    private final ChainNorm normF;
    private final LmHead head;
    private final Mat hf;
    private final double[] lossWeights;
    /** First stage: where each slot's tokens are, for the embedding's backward (and its recomputation). */
    private final int[][] slotTokens;
    private final int[] slotTokenOffset;
    /** Micro-batch occupying each slot, or -1. */
    private final int[] slotMicro;
    private final boolean[] slotHasLoss;
    /** Micro-batch whose forward activations the working stack holds (recomputation), or -1. */
    private int stackHolds = -1;
    private int gradientFor = -1;
    private int frozen;
    private boolean headWritten;
    private boolean blocksWritten;
    private boolean inStep;

    public PipelineStage(ColmConfig cfg, Params params, Params grads, StagePlan plan, int stageIndex, int microBatch, int seqLen,
                         int slots, boolean recompute) {
        if (!plan.config().equals(cfg) || !params.layout().config().equals(cfg) || !grads.layout().config().equals(cfg)) {
            throw new IllegalArgumentException("stage plan, parameters and gradients must all be for " + cfg + "; the plan is for "
                    + plan.config() + " and the parameters for " + params.layout().config());
        }
        if (seqLen < 1 || seqLen > cfg.maxSeqLen()) {
            throw new IllegalArgumentException("sequence length " + seqLen + " must be in 1.." + cfg.maxSeqLen() + " (max_seq_len of the model)");
        }
        if (microBatch < 1) {
            throw new IllegalArgumentException("micro-batch size must be >= 1, got " + microBatch);
        }
        if (slots < 1) {
            throw new IllegalArgumentException("a stage needs at least 1 micro-batch slot, got " + slots);
        }
        this.cfg = cfg;
        this.stage = plan.stage(stageIndex);
        this.rows = microBatch * seqLen;
        this.slots = slots;
        this.recompute = recompute;
        this.scale = cfg.numChains();
        DataType type = params.dataType();
        int d = cfg.dModel();
        ws = new BlockStack.Workspace(cfg, microBatch, seqLen, type);
        stacks = new BlockStack[recompute ? 1 : slots];
        for (int i = 0; i < stacks.length; i++) {
            stacks[i] = BlockStack.ofUnits(cfg, params, grads, stage.firstUnit(), stage.endUnit(), microBatch, seqLen, ws);
        }
        savedInput = recompute && !isFirst() ? allocate(type, slots, rows, d) : null;
        savedOutputGrad = isLast() ? allocate(type, slots, rows, d) : null;
        dx = isLast() ? null : Mat.allocateActivation(type, rows, d);
        embedding = isFirst() ? new Embedding(cfg, params, grads) : null;
        normF = isLast() ? new ChainNorm(cfg, params, grads, "norm_f", rows) : null;
        head = isLast() ? new LmHead(cfg, params, grads, rows, type) : null;
        hf = isLast() ? Mat.allocateActivation(type, rows, d) : null;
        lossWeights = new double[scale];
        slotTokens = new int[slots][];
        slotTokenOffset = new int[slots];
        slotMicro = new int[slots];
        java.util.Arrays.fill(slotMicro, -1);
        slotHasLoss = new boolean[slots];
    }

    private static Mat[] allocate(DataType type, int n, int rows, int cols) {
        Mat[] m = new Mat[n];
        for (int i = 0; i < n; i++) {
            m[i] = Mat.allocateActivation(type, rows, cols);
        }
        return m;
    }

    public StagePlan.Stage stage() {
        return stage;
    }

    public int index() {
        return stage.index();
    }

    public boolean isFirst() {
        return stage.hasEmbedding();
    }

    public boolean isLast() {
        return stage.hasHead();
    }

    public int slots() {
        return slots;
    }

    public boolean recomputes() {
        return recompute;
    }

    /** Scales trained (all n chains): the length of {@link #loss}'s result. */
    public int scales() {
        return scale;
    }

    /** Rows of one micro-batch (microBatch x seqLen). */
    public int rows() {
        return rows;
    }

    /**
     * Starts a step of {@code microBatches} micro-batches: each one's loss weighs 1/M, and the first
     * backward overwrites this stage's gradients (chains >= frozenChains) instead of adding.
     */
    public void beginStep(int microBatches, int frozenChains) {
        if (microBatches < 1) {
            throw new IllegalArgumentException("need at least 1 micro-batch per step, got " + microBatches);
        }
        for (int s = 0; s < slots; s++) {
            if (slotMicro[s] >= 0) {
                throw new IllegalStateException("stage " + index() + ": micro-batch " + slotMicro[s]
                        + " of the previous step was forwarded but never backwarded");
            }
        }
        for (int j = 0; j < scale; j++) {
            lossWeights[j] = cfg.lossWeights().get(j) / microBatches;
        }
        frozen = frozenChains;
        headWritten = false;
        blocksWritten = false;
        inStep = true;
    }

    /** Where the caller puts the previous stage's output for micro-batch {@code micro} before {@link #forward}. */
    public Mat inputActivation(int micro) {
        if (isFirst()) {
            throw new IllegalStateException("stage 0 embeds tokens; it has no input activation");
        }
        int s = freeSlot(micro);
        return recompute ? savedInput[s] : stacks[s].input();
    }

    /**
     * Forward of micro-batch {@code micro} through this stage's blocks (first stage: of
     * tokens[tokenOffset, +rows) through the embedding first; other stages pass null). Returns the
     * stage output to send to the next stage (valid until the next forward), or, on the last stage,
     * the final residual stream that {@link #loss} must consume next.
     */
    public Mat forward(int micro, int[] tokens, int tokenOffset) {
        requireStep();
        int s = freeSlot(micro);
        if (isFirst()) {
            if (tokens == null || tokenOffset < 0 || tokens.length - tokenOffset < rows) {
                throw new IllegalArgumentException("stage 0 needs " + rows + " tokens for micro-batch " + micro + " from offset "
                        + tokenOffset + ", got " + (tokens == null ? "none" : tokens.length + " tokens"));
            }
            slotTokens[s] = tokens;
            slotTokenOffset[s] = tokenOffset;
        }
        slotMicro[s] = micro;
        slotHasLoss[s] = false;
        BlockStack stack = runForward(s);
        stackHolds = micro;
        return stack.output();
    }

    /** Fills the slot's stack input (embedding or saved input) and runs its blocks. */
    private BlockStack runForward(int s) {
        BlockStack stack = stacks[recompute ? 0 : s];
        if (isFirst()) {
            long t = Prof.start();
            embedding.forward(slotTokens[s], slotTokenOffset[s], stack.input(), scale);
            Prof.stop("fwd.embed", t);
        } else if (recompute) {
            stack.input().copyFrom(savedInput[s]);
        }
        stack.forward(scale);
        return stack;
    }

    /**
     * Last stage, right after {@link #forward} of the same micro-batch: per-scale mean losses against
     * targets[targetOffset, +rows), and the loss gradient back through the LM head and norm_f (head and
     * norm_f gradients accumulated; the gradient of the stage output kept for {@link #backward}).
     * Doing this in the forward op keeps only [rows x d_model] per slot instead of n x [rows x vocab] logits.
     */
    public double[] loss(int micro, int[] targets, int targetOffset) {
        requireStep();
        if (!isLast()) {
            throw new IllegalStateException("stage " + index() + " is not the last stage; only the last computes the loss");
        }
        int s = heldSlot(micro, "loss");
        if (stackHolds != micro || slotHasLoss[s]) {
            throw new IllegalStateException("stage " + index() + ": loss(" + micro + ") must directly follow forward(" + micro + ")");
        }
        if (targets == null || targetOffset < 0 || targets.length - targetOffset < rows) {
            throw new IllegalArgumentException("the last stage needs " + rows + " targets for micro-batch " + micro + " from offset "
                    + targetOffset + ", got " + (targets == null ? "none" : targets.length + " targets"));
        }
        Mat out = stacks[recompute ? 0 : s].output();
        long t = Prof.start();
        normF.forward(out, hf, scale);
        head.forward(hf, scale);
        Prof.stop("fwd.head", t);
        t = Prof.start();
        double[] losses = head.lossAndGradient(targets, targetOffset, scale, lossWeights, frozen);
        Prof.stop("loss", t);
        t = Prof.start();
        head.backward(hf, ws.gradientScratch(), scale, frozen, headWritten);
        Prof.stop("bwd.head", t);
        t = Prof.start();
        Mat g = savedOutputGrad[s];
        g.fill(0);
        normF.backward(out, ws.gradientScratch(), g, scale, frozen, headWritten);
        Prof.stop("bwd.norm", t);
        headWritten = true;
        slotHasLoss[s] = true;
        return losses;
    }

    /** Where the caller puts the next stage's gradient for micro-batch {@code micro} right before {@link #backward}. */
    public Mat outputGradient(int micro) {
        if (isLast()) {
            throw new IllegalStateException("the last stage gets its output gradient from the loss, not from a neighbour");
        }
        heldSlot(micro, "outputGradient");
        gradientFor = micro;
        return dx;
    }

    /**
     * Backward of micro-batch {@code micro} through this stage's blocks (and the embedding on the
     * first stage), recomputing their forward first when recomputing. Returns the gradient with
     * respect to the stage input to send to the previous stage (valid until the next op), or null on
     * the first stage. Frees the micro-batch's slot.
     */
    public Mat backward(int micro) {
        requireStep();
        int s = heldSlot(micro, "backward");
        Mat grad;
        if (isLast()) {
            if (!slotHasLoss[s]) {
                throw new IllegalStateException("last stage: backward(" + micro + ") before loss(" + micro + ")");
            }
            grad = savedOutputGrad[s];
        } else {
            if (gradientFor != micro) {
                throw new IllegalStateException("stage " + index() + ": fill outputGradient(" + micro + ") before backward(" + micro + ")");
            }
            grad = dx;
        }
        BlockStack stack = stacks[recompute ? 0 : s];
        if (recompute && stackHolds != micro) {
            runForward(s);
            stackHolds = micro;
        }
        stack.backward(grad, scale, frozen, blocksWritten);
        if (isFirst()) {
            long t = Prof.start();
            embedding.backward(slotTokens[s], slotTokenOffset[s], grad, scale, frozen, blocksWritten);
            Prof.stop("bwd.embed", t);
        }
        blocksWritten = true;
        gradientFor = -1;
        slotMicro[s] = -1;
        slotTokens[s] = null;
        if (stackHolds == micro) {
            stackHolds = -1;
        }
        return isFirst() ? null : grad;
    }

    private int freeSlot(int micro) {
        if (micro < 0) {
            throw new IllegalArgumentException("micro-batch index must be >= 0, got " + micro);
        }
        int s = micro % slots;
        if (slotMicro[s] == micro) {
            throw new IllegalStateException("stage " + index() + ": micro-batch " + micro + " is already in flight");
        }
        if (slotMicro[s] >= 0) {
            throw new IllegalStateException("stage " + index() + " cannot start micro-batch " + micro + ": its slot " + s
                    + " still holds micro-batch " + slotMicro[s] + " (" + slots + " slot(s); GPipe needs M, 1F1B P - stage + 1)");
        }
        return s;
    }

    private int heldSlot(int micro, String op) {
        int s = micro < 0 ? -1 : micro % slots;
        if (s < 0 || slotMicro[s] != micro) {
            throw new IllegalStateException("stage " + index() + ": " + op + "(" + micro + ") but micro-batch " + micro
                    + " is not in flight (forward it first)");
        }
        return s;
    }

    private void requireStep() {
        if (!inStep) {
            throw new IllegalStateException("call beginStep(microBatches, frozenChains) before the first forward");
        }
    }
}
