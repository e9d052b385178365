package io.catena.model.pipeline;

import io.catena.model.ColmConfig;
import io.catena.model.ParamLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * How the L transformer blocks of a CoLM are split into P contiguous pipeline stages: stage 0 also
 * runs the embedding, stage P-1 the final norm, LM head and loss. The unit of the split is half a
 * block (sublayer 2b: block b's attention half, 2b+1: its FFN half; the residual stream between the
 * halves is the same [rows x d_model] tensor as between blocks), so a stage can give up a third or two
 * thirds of a block to balance the LM head. Boundaries minimise the largest
 * stage cost of a {@link StageCostModel} (exactly, by dynamic programming; among optimal splits the
 * most even one, by sum of squared stage costs). Each stage also knows which parts of the flat
 * chain-major parameter buffer it owns, so it pushes and pulls only those on the parameter server.
 */
public final class StagePlan {

    /** A run of the flat parameter buffer, [offset, offset + length). */
    public record ParamRange(long offset, long length) {
        public long end() {
            return offset + length;
        }
    }

    /** One stage: sublayer units [firstUnit, endUnit), its estimated cost and its parameter ranges (sorted, merged). */
    public record Stage(int index, int firstUnit, int endUnit, boolean hasEmbedding, boolean hasHead, long flops, long cost,
                        long activationBytesPerMicroBatch, List<ParamRange> paramRanges) {
        /** Sublayers (half blocks) this stage runs. */
        public int units() {
            return endUnit - firstUnit;
        }

        /** The stage's sublayers in words: "blocks [4, 8)", or e.g. "FFN of block 3 + blocks [4, 8) + attention of block 8". */
        public String unitsLabel() {
            int fullFirst = (firstUnit + 1) / 2;
            int fullEnd = endUnit / 2;
            List<String> parts = new ArrayList<>();
            if (firstUnit % 2 == 1) {
                parts.add("FFN of block " + firstUnit / 2);
            }
            if (fullEnd > fullFirst) {
                parts.add("blocks [" + fullFirst + ", " + fullEnd + ")");
            }
            if (endUnit % 2 == 1) {
                parts.add("attention of block " + endUnit / 2);
            }
            return String.join(" + ", parts);
        }

        public long paramCount() {
            long n = 0;
            for (ParamRange r : paramRanges) {
                n += r.length();
            }
            return n;
        }
    }

    /** How far one boundary may move in one step of the schedule fit, in sublayers. */
    static final int SEARCH_RADIUS = 4;

    private final ColmConfig config;
    private final int microBatch;
    private final int seqLen;
    private final int bytesPerElement;
    private final StageCostModel costs;
    /** The schedule and micro-batches per step the split was optimised for, or null / 0 for the balanced split. */
    private final PipelineSchedule.Kind schedule;
    private final int micros;
    private final List<Stage> stages;

    private StagePlan(ColmConfig config, int numStages, int microBatch, int seqLen, int bytesPerElement, PipelineSchedule.Kind schedule,
                      int micros) {
        if (numStages < 1) {
            throw new IllegalArgumentException("pipeline needs at least 1 stage, got pp=" + numStages);
        }
        if (numStages > config.layers()) {
            throw new IllegalArgumentException("pp=" + numStages + " stages need at least " + numStages
                    + " transformer blocks (every stage runs one or more), but the model has layers=" + config.layers());
        }
        this.config = config;
        this.microBatch = microBatch;
        this.seqLen = seqLen;
        this.bytesPerElement = bytesPerElement;
        this.costs = StageCostModel.of(config, microBatch, seqLen, bytesPerElement);
        if (schedule != null && micros < 1) {
            throw new IllegalArgumentException("a plan for the " + schedule.label() + " schedule needs >= 1 micro-batch per step, got " + micros);
        }
        this.schedule = schedule;
        this.micros = schedule == null ? 0 : micros;
        long[] unitCost = new long[2 * config.layers()];
        for (int u = 0; u < unitCost.length; u++) {
            unitCost[u] = costs.unitCost(u);
        }
        int[] ends = partition(unitCost, costs.embeddingFlops(), costs.headFlops(), numStages);
        this.stages = stages(schedule == null ? ends : fitToSchedule(ends));
    }

    private StagePlan(StagePlan plan, int[] unitEnds) {
        this.config = plan.config;
        this.microBatch = plan.microBatch;
        this.seqLen = plan.seqLen;
        this.bytesPerElement = plan.bytesPerElement;
        this.costs = plan.costs;
        this.schedule = plan.schedule;
        this.micros = plan.micros;
        if (unitEnds.length != plan.numStages() || unitEnds[unitEnds.length - 1] != 2 * config.layers()) {
            throw new IllegalArgumentException("stage ends " + Arrays.toString(unitEnds) + " must give " + plan.numStages()
                    + " stages ending at sublayer " + 2 * config.layers());
        }
        for (int s = 0, first = 0; s < unitEnds.length; first = unitEnds[s], s++) {
            if (unitEnds[s] <= first) {
                throw new IllegalArgumentException("stage ends " + Arrays.toString(unitEnds) + " leave stage " + s + " empty");
            }
        }
        this.stages = stages(unitEnds);
    }

    private List<Stage> stages(int[] unitEnds) {
        List<List<ParamRange>> ranges = paramRanges(new ParamLayout(config), unitEnds);
        List<Stage> list = new ArrayList<>();
        for (int s = 0, first = 0; s < unitEnds.length; first = unitEnds[s], s++) {
            boolean emb = s == 0;
            boolean head = s == unitEnds.length - 1;
            long act = 0;
            for (int u = first; u < unitEnds[s]; u++) {
                act += costs.unitActivationBytes(u);
            }
            list.add(new Stage(s, first, unitEnds[s], emb, head, costs.stageFlops(first, unitEnds[s], emb, head),
                    costs.stageCost(first, unitEnds[s], emb, head), act, List.copyOf(ranges.get(s))));
        }
        return List.copyOf(list);
    }

    /**
     * Plans pp stages for micro-batches of microBatch x seqLen rows of float32 activations, balanced: the
     * most expensive stage as cheap as possible.
     */
    public static StagePlan plan(ColmConfig config, int numStages, int microBatch, int seqLen) {
        return new StagePlan(config, numStages, microBatch, seqLen, Float.BYTES, null, 0);
    }

    /**
     * Plans pp stages for the given schedule with {@code micros} micro-batches per step: the balanced split,
     * then its boundaries moved while that shortens the step as {@link PipelineSchedule#simulatedMakespan}
     * computes it from the cost model (forward ops {@link StageCostModel#FORWARD_SHARE} of a unit's cost, the
     * last stage's head and loss in its forward op). Under 1F1B, whose stages keep a forward of slack, a
     * first stage somewhat heavier than the rest runs without waiting for gradients at the end of the step
     * while the lighter stages absorb the fill and drain, so the step is shorter than with equal stages;
     * under GPipe the split moves only as far as the stages' mix of forward and backward work asks (the last
     * stage's head runs in its forward ops). micros = 0 (or no schedule): the balanced split.
     */
    public static StagePlan plan(ColmConfig config, int numStages, int microBatch, int seqLen, PipelineSchedule.Kind schedule, int micros) {
        if (micros < 0) {
            throw new IllegalArgumentException("micro-batches per step must be >= 1, or 0 for the balanced split; got " + micros);
        }
        boolean fit = schedule != null && micros > 0;
        return new StagePlan(config, numStages, microBatch, seqLen, Float.BYTES, fit ? schedule : null, fit ? micros : 0);
    }

    /** Steepest descent over moves of one boundary by up to {@link #SEARCH_RADIUS} sublayers, from the balanced ends. */
    private int[] fitToSchedule(int[] balanced) {
        int[] best = balanced.clone();
        double bestTime = simulatedStep(best);
        for (int iteration = 0; iteration < 1000; iteration++) {
            int[] move = null;
            double moveTime = bestTime;
            for (int i = 0; i + 1 < best.length; i++) {
                for (int delta = -SEARCH_RADIUS; delta <= SEARCH_RADIUS; delta++) {
                    int[] c = best.clone();
                    c[i] += delta;
                    if (delta == 0 || c[i] <= (i == 0 ? 0 : c[i - 1]) || c[i] >= c[i + 1]) {
                        continue;
                    }
                    double t = simulatedStep(c);
                    if (t < moveTime * (1 - 1e-9)) {
                        move = c;
                        moveTime = t;
                    }
                }
            }
            if (move == null) {
                return best;
            }
            best = move;
            bestTime = moveTime;
        }
        return best;
    }

    /** The step length, in cost units, of the stages ending at unitEnds under this plan's schedule (equal ops per micro-batch). */
    private double simulatedStep(int[] unitEnds) {
        int p = unitEnds.length;
        double[] fwd = new double[p];
        double[] bwd = new double[p];
        for (int s = 0, first = 0; s < p; first = unitEnds[s], s++) {
            double body = costs.stageCost(first, unitEnds[s], s == 0, false);
            fwd[s] = StageCostModel.FORWARD_SHARE * body + (s == p - 1 ? costs.headFlops() : 0);
            bwd[s] = (1 - StageCostModel.FORWARD_SHARE) * body;
        }
        List<List<PipelineSchedule.Op>> ops = new ArrayList<>();
        for (int s = 0; s < p; s++) {
            ops.add(PipelineSchedule.ops(schedule, p, s, micros));
        }
        return PipelineSchedule.simulatedMakespan(ops, micros, (s, op) -> op.forward() ? fwd[s] : bwd[s]);
    }

    /**
     * The step this plan's stages take under its schedule relative to the balanced split's, on the cost
     * model's simulated clock (1.0 for a balanced plan).
     */
    public double simulatedStepVersusBalanced() {
        if (schedule == null) {
            return 1.0;
        }
        StagePlan balanced = new StagePlan(config, stages.size(), microBatch, seqLen, bytesPerElement, null, 0);
        int[] mine = new int[stages.size()];
        int[] theirs = new int[stages.size()];
        for (int s = 0; s < mine.length; s++) {
            mine[s] = stages.get(s).endUnit();
            theirs[s] = balanced.stages.get(s).endUnit();
        }
        return simulatedStep(mine) / simulatedStep(theirs);
    }

    /** The schedule this plan was fitted to, or null for a balanced plan. */
    public PipelineSchedule.Kind schedule() {
        return schedule;
    }

    /** Micro-batches per step this plan was fitted to (0 for a balanced plan). */
    public int micros() {
        return micros;
    }

    /**
     * This plan with the stage boundaries moved to the given sublayer ends (for tests and for pinning a
     * split by hand); costs are re-estimated for the new boundaries.
     */
    public StagePlan withUnitEnds(int... unitEnds) {
        return new StagePlan(this, unitEnds.clone());
    }

    /** The plan for a grown model (wider blocks shift the balance between blocks, embedding and head). */
    public StagePlan replan(ColmConfig grown) {
        return new StagePlan(grown, stages.size(), microBatch, seqLen, bytesPerElement, schedule, micros);
    }

    public ColmConfig config() {
        return config;
    }

    public StageCostModel costs() {
        return costs;
    }

    public int numStages() {
        return stages.size();
    }

    public List<Stage> stages() {
        return stages;
    }

    public Stage stage(int index) {
        if (index < 0 || index >= stages.size()) {
            throw new IllegalArgumentException("stage " + index + " does not exist; this plan has stages 0.." + (stages.size() - 1));
        }
        return stages.get(index);
    }

    /** Largest stage cost over the mean (planning cost, {@link StageCostModel#stageCost}): 1.0 is a perfect balance. */
    public double imbalance() {
        long max = 0;
        long sum = 0;
        for (Stage s : stages) {
            max = Math.max(max, s.cost());
            sum += s.cost();
        }
        return max * (double) stages.size() / sum;
    }

    /**
     * Splits units (sublayers) with the given costs into numStages non-empty contiguous runs; the first run also
     * pays firstExtra and the last lastExtra. Returns the end unit (exclusive) of every stage.
     * Minimises the largest stage cost, then the sum of squared stage costs (the most even split).
     */
    public static int[] partition(long[] blockCost, long firstExtra, long lastExtra, int numStages) {
        int l = blockCost.length;
        if (numStages < 1 || numStages > l) {
            throw new IllegalArgumentException("cannot split " + l + " blocks into " + numStages + " non-empty stages");
        }
        long[] prefix = new long[l + 1];
        for (int i = 0; i < l; i++) {
            prefix[i + 1] = prefix[i] + blockCost[i];
        }
        // best[s][j]: smallest possible largest cost when stages 0..s-1 cover blocks [0, j)
        long[][] best = new long[numStages + 1][l + 1];
        for (long[] row : best) {
            Arrays.fill(row, Long.MAX_VALUE);
        }
        best[0][0] = 0;
        for (int s = 1; s <= numStages; s++) {
            for (int j = s; j <= l - (numStages - s); j++) {
                for (int i = s - 1; i < j; i++) {
                    if (best[s - 1][i] == Long.MAX_VALUE) {
                        continue;
                    }
                    long c = stageCost(prefix, i, j, s - 1, numStages, firstExtra, lastExtra);
                    best[s][j] = Math.min(best[s][j], Math.max(best[s - 1][i], c));
                }
            }
        }
        long cap = best[numStages][l];
        // second pass under that cap: fewest sum of squares, remembering the choice
        double[][] squares = new double[numStages + 1][l + 1];
        int[][] from = new int[numStages + 1][l + 1];
        for (double[] row : squares) {
            Arrays.fill(row, Double.POSITIVE_INFINITY);
        }
        squares[0][0] = 0;
        for (int s = 1; s <= numStages; s++) {
            for (int j = s; j <= l - (numStages - s); j++) {
                for (int i = s - 1; i < j; i++) {
                    long c = stageCost(prefix, i, j, s - 1, numStages, firstExtra, lastExtra);
                    double v = squares[s - 1][i] + (double) c * c;
                    if (c <= cap && v < squares[s][j]) {
                        squares[s][j] = v;
                        from[s][j] = i;
                    }
                }
            }
        }
        int[] ends = new int[numStages];
        for (int s = numStages, j = l; s >= 1; j = from[s][j], s--) {
            ends[s - 1] = j;
        }
        return ends;
    }

    private static long stageCost(long[] prefix, int i, int j, int stage, int numStages, long firstExtra, long lastExtra) {
        return prefix[j] - prefix[i] + (stage == 0 ? firstExtra : 0) + (stage == numStages - 1 ? lastExtra : 0);
    }

    /**
     * Each stage's parameter ranges: for every chain, the tensors of its sublayers (one contiguous run per
     * chain in the chain-major layout, where a block's norm1 and attn tensors precede its norm2 and ffn
     * tensors), plus embed.c* on the first and norm_f.c* / head.c* on the last stage; adjacent runs merged.
     */
    private static List<List<ParamRange>> paramRanges(ParamLayout layout, int[] ends) {
        List<List<ParamRange>> out = new ArrayList<>();
        for (int s = 0; s < ends.length; s++) {
            out.add(new ArrayList<>());
        }
        for (ParamLayout.Entry e : layout.entries()) {
            List<ParamRange> list = out.get(owner(e.name(), ends));
            ParamRange last = list.isEmpty() ? null : list.get(list.size() - 1);
            if (last != null && last.end() == e.offset()) {
                list.set(list.size() - 1, new ParamRange(last.offset(), last.length() + e.size()));
            } else {
                list.add(new ParamRange(e.offset(), e.size()));
            }
        }
        return out;
    }

    /** The stage owning a tensor, from its name (MODEL.md's tensor table) and the stages' end units. */
    static int owner(String tensor, int[] ends) {
        if (tensor.startsWith("embed.")) {
            return 0;
        }
        if (tensor.startsWith("norm_f.") || tensor.startsWith("head.")) {
            return ends.length - 1;
        }
        if (tensor.startsWith("layers.")) {
            int dot = tensor.indexOf('.', "layers.".length());
            int block = Integer.parseInt(tensor.substring("layers.".length(), dot));
            String part = tensor.substring(dot + 1);
            int unit = 2 * block + (part.startsWith("norm1.") || part.startsWith("attn.") ? 0 : 1);
            for (int s = 0; s < ends.length; s++) {
                if (unit < ends[s]) {
                    return s;
                }
            }
        }
        throw new IllegalStateException("tensor '" + tensor + "' belongs to no pipeline stage (sublayers end at "
                + Arrays.toString(ends) + ")");
    }

    /** One line per stage, for logs. */
    public String describe() {
        StringBuilder b = new StringBuilder();
        b.append("pipeline plan: ").append(stages.size()).append(" stages over ").append(config.layers()).append(" blocks, micro-batch ")
                .append(microBatch).append(" x ").append(seqLen).append(String.format(", imbalance %.3f", imbalance()))
                .append(schedule == null ? "" : String.format(", fitted to %s with %d micro-batches (simulated step %.3f x the balanced split's)",
                        schedule.label(), micros, simulatedStepVersusBalanced())).append(String.format("%n"));
        for (Stage s : stages) {
            b.append(String.format("  stage %d: %s%s%s, %.3g GFLOP, %d params in %d ranges, %.1f MiB activations/micro-batch%n",
                    s.index(), s.unitsLabel(), s.hasEmbedding() ? " + embedding" : "", s.hasHead() ? " + norm_f/head/loss" : "",
                    s.flops() / 1e9, s.paramCount(), s.paramRanges().size(), s.activationBytesPerMicroBatch() / (1024.0 * 1024.0)));
        }
        return b.toString();
    }

    @Override
    public String toString() {
        return describe();
    }
}
