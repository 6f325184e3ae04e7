package tokenprune.methods;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * TransPrune's progressive schedule (methods-vision.md §6.4), stepped through layer by layer with
 * 1-based decoder layer numbers:
 *
 * <pre>{@code
 * for (int layer = 1; layer <= layers; layer++) {
 *     ... run the layer ...
 *     if (schedule.accumulates(layer)) acc.addLayer(uAttn, vAttn, uMlp, vMlp);
 *     if (schedule.stageAfter(layer) >= 0) acc.prune(qOfNextLayer, kOfNextLayer, kept, rowGather);
 * }
 * }</pre>
 *
 * Default: TTV accumulated over layers 7..12; pruning after layers 7, 9 and 12 keeping
 * {@code int(N * 0.875)}, {@code int(N * 0.625)}, {@code int(N * 0.125)} image tokens, where N is the
 * ORIGINAL image-token count of the sequence (576 -> 504 / 360 / 72; TP-3). [decision] A count is
 * never below 1: for N < 8 the official truncation would empty the image block, which we do not
 * allow (identical for every real model, N >= 8).
 */
public final class TransPruneSchedule {
    /** Pruning stage: after 1-based layer {@code afterLayer}, keep {@code int(N * ratio)} of the original N. */
    public record Stage(int afterLayer, double ratio) {
    }

    private final int[] accumulating;  // ascending, distinct, 1-based
    private final List<Stage> stages;  // ascending layers, non-increasing ratios

    private TransPruneSchedule(int[] accumulating, List<Stage> stages) {
        this.accumulating = accumulating;
        this.stages = stages;
    }

    /** The official defaults: accumulate 7..12, prune after 7 / 9 / 12 to 0.875 / 0.625 / 0.125. */
    public static TransPruneSchedule defaults() {
        return of(new int[] {7, 8, 9, 10, 11, 12}, new int[] {7, 9, 12}, new double[] {0.875, 0.625, 0.125});
    }

    /**
     * A custom schedule.
     *
     * @param accumulatingLayers 1-based layers whose two sub-blocks feed TTV (distinct, >= 1)
     * @param pruningLayers 1-based layers after which a stage prunes (strictly increasing, >= 1)
     * @param ratios per stage, of the original image-token count: finite, in (0, 1], non-increasing
     */
    public static TransPruneSchedule of(int[] accumulatingLayers, int[] pruningLayers, double[] ratios) {
        Objects.requireNonNull(accumulatingLayers, "accumulatingLayers");
        Objects.requireNonNull(pruningLayers, "pruningLayers");
        Objects.requireNonNull(ratios, "ratios");
        int[] acc = accumulatingLayers.clone();
        Arrays.sort(acc);
        for (int i = 0; i < acc.length; i++) {
            if (acc[i] < 1) throw new IllegalArgumentException("accumulatingLayers: layers are 1-based, got " + acc[i]);
            if (i > 0 && acc[i] == acc[i - 1]) throw new IllegalArgumentException("accumulatingLayers: layer " + acc[i] + " is listed twice");
        }
        if (pruningLayers.length != ratios.length) {
            throw new IllegalArgumentException("ratios: need one per pruning layer (" + pruningLayers.length + "), got " + ratios.length);
        }
        if (pruningLayers.length == 0) throw new IllegalArgumentException("pruningLayers: need at least one stage");
        List<Stage> stages = new ArrayList<>();
        for (int s = 0; s < pruningLayers.length; s++) {
            if (pruningLayers[s] < 1) throw new IllegalArgumentException("pruningLayers: layers are 1-based, got " + pruningLayers[s]);
            if (s > 0 && pruningLayers[s] <= pruningLayers[s - 1]) {
                throw new IllegalArgumentException("pruningLayers: must be strictly increasing, got " + Arrays.toString(pruningLayers));
            }
            double r = ratios[s];
            if (!Double.isFinite(r) || r <= 0 || r > 1) throw new IllegalArgumentException("ratios: stage " + s + " ratio must be in (0, 1], got " + r);
            if (s > 0 && r > ratios[s - 1]) {
                throw new IllegalArgumentException("ratios: must be non-increasing (counts are of the original N), got " + Arrays.toString(ratios));
            }
            stages.add(new Stage(pruningLayers[s], r));
        }
        return new TransPruneSchedule(acc, List.copyOf(stages));
    }

    /** Whether 1-based layer {@code layer}'s attention and MLP sub-blocks feed TTV. */
    public boolean accumulates(int layer) {
        return Arrays.binarySearch(accumulating, layer) >= 0;
    }

    /** The stage that prunes after 1-based layer {@code layer}, or -1. */
    public int stageAfter(int layer) {
        for (int s = 0; s < stages.size(); s++) if (stages.get(s).afterLayer() == layer) return s;
        return -1;
    }

    public int stages() {
        return stages.size();
    }

    public Stage stage(int s) {
        return stages.get(s);
    }

    public int[] accumulatingLayers() {
        return accumulating.clone();
    }

    /** Image tokens kept at stage s of a sequence that originally had {@code originalN}: max(1, int(N * ratio)). */
    public int keepCount(int originalN, int stage) {
        if (originalN < 1) throw new IllegalArgumentException("originalN: need >= 1, got " + originalN);
        if (stage < 0 || stage >= stages.size()) throw new IllegalArgumentException("stage: need 0 <= stage < " + stages.size() + ", got " + stage);
        int k = (int) (originalN * stages.get(stage).ratio());  // Python's int(): truncation of the double product
        return Math.max(1, Math.min(originalN, k));
    }

    public int[] keepCounts(int[] originalN, int stage) {
        int[] k = new int[originalN.length];
        for (int b = 0; b < k.length; b++) k[b] = keepCount(originalN[b], stage);
        return k;
    }

    /**
     * The most sub-blocks accumulated between two consecutive pruning stages (or before the first,
     * or after the last): how many pending TTV terms an accumulator holds at once.
     */
    public int maxPendingSubBlocks() {
        int max = 0, prev = 0;
        for (int s = 0; s <= stages.size(); s++) {
            int upTo = s < stages.size() ? stages.get(s).afterLayer() : Integer.MAX_VALUE;
            int count = 0;
            for (int layer : accumulating) if (layer > prev && layer <= upTo) count++;
            max = Math.max(max, 2 * count);
            prev = upTo;
        }
        return max;
    }

    @Override
    public String toString() {
        return "TransPruneSchedule[accumulating=" + Arrays.toString(accumulating) + ", stages=" + stages + "]";
    }
}
