package tokenprune.reference;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

import tokenprune.methods.ClsAttentionLayout;
import tokenprune.methods.HostClsAttention;
import tokenprune.methods.Selection;

/**
 * Float64 reference for FasterVLM (methods-vision.md §5.1): per image and head, the softmax over
 * all N keys of scale (q_h . k_h[t]) (max-subtracted), the mean over heads of the patch columns
 * j = 1 .. N-1 (CLS dropped, not renormalised), and the T patches with the largest mean, larger
 * score first then lower index (§2.2), returned in raster (ascending) order. Written to be checked
 * by eye; the inputs are read as the exact floats of their dtype, the arithmetic is double.
 */
public final class FasterVlmReference {
    private FasterVlmReference() {
    }

    /** P_h[t] of image b for every head h and all N tokens t (CLS included): double[H][N]. */
    public static double[][] headProbabilities(HostClsAttention in, int b, double scale) {
        ClsAttentionLayout l = in.layout();
        double[][] p = new double[l.heads()][l.tokens()];
        for (int h = 0; h < l.heads(); h++) {
            double[] logit = new double[l.tokens()];
            double max = Double.NEGATIVE_INFINITY;
            for (int t = 0; t < l.tokens(); t++) {
                double dot = 0;
                for (int e = 0; e < l.headDim(); e++) dot += (double) in.query(b, h, e) * in.key(b, t, h, e);
                logit[t] = scale * dot;
                if (!Double.isFinite(logit[t])) throw new IllegalArgumentException("queries/keys: non-finite logit at image " + b + ", head " + h + ", token " + t);
                max = Math.max(max, logit[t]);
            }
            double sum = 0;
            for (int t = 0; t < l.tokens(); t++) sum += p[h][t] = Math.exp(logit[t] - max);
            for (int t = 0; t < l.tokens(); t++) p[h][t] /= sum;
        }
        return p;
    }

    /** FasterVLM's importance of every patch of every image: double[B][N-1]. */
    public static double[][] scores(HostClsAttention in, double scale) {
        String bad = in.firstNonFinite();
        if (bad != null) throw new IllegalArgumentException("queries/keys: non-finite value at " + bad);
        ClsAttentionLayout l = in.layout();
        double[][] scores = new double[l.images()][];
        for (int b = 0; b < l.images(); b++) {
            double[][] p = headProbabilities(in, b, scale);
            double[][] patchColumns = new double[l.heads()][];
            for (int h = 0; h < l.heads(); h++) patchColumns[h] = Arrays.copyOfRange(p[h], 1, l.tokens());
            scores[b] = headMean(patchColumns);
        }
        return scores;
    }

    /** a_j = (1/H) sum_h probs[h][j], for per-head patch probabilities (CLS column already dropped). */
    public static double[] headMean(double[][] probs) {
        if (probs.length == 0) throw new IllegalArgumentException("probs: need at least one head");
        double[] mean = new double[probs[0].length];
        for (double[] head : probs) {
            if (head.length != mean.length) throw new IllegalArgumentException("probs: heads of different lengths");
            for (int j = 0; j < mean.length; j++) mean[j] += head[j];
        }
        for (int j = 0; j < mean.length; j++) mean[j] /= probs.length;
        return mean;
    }

    /** The T best patches (larger score first, then lower index), ascending. */
    public static int[] keep(double[] scores, int t) {
        if (t < 1 || t > scores.length) throw new IllegalArgumentException("keep: must be in [1, " + scores.length + "], got " + t);
        int[] kept = rank(scores).limit(t).toArray();
        Arrays.sort(kept);
        return kept;
    }

    /**
     * How far apart the T-th and (T+1)-th best scores are (infinite when T = all): a selection
     * computed in lower precision must equal {@link #keep} when its score error is below half of it.
     */
    public static double cutGap(double[] scores, int t) {
        if (t >= scores.length) return Double.POSITIVE_INFINITY;
        int[] order = rank(scores).limit(t + 1).toArray();
        return scores[order[t - 1]] - scores[order[t]];
    }

    private static IntStream rank(double[] scores) {
        Comparator<Integer> rule = (a, b) -> scores[a] != scores[b] ? Double.compare(scores[b], scores[a]) : Integer.compare(a, b);
        return IntStream.range(0, scores.length).boxed().sorted(rule).mapToInt(Integer::intValue);
    }

    /** The whole method: T patches of every image, as a Selection (kept indices local to the image's N-1 patches). */
    public static Selection select(HostClsAttention in, int t, double scale) {
        double[][] scores = scores(in, scale);
        int images = scores.length;
        int[] offsets = new int[images + 1];
        int[] kept = new int[images * t];
        for (int b = 0; b < images; b++) {
            offsets[b + 1] = offsets[b] + t;
            System.arraycopy(keep(scores[b], t), 0, kept, offsets[b], t);
        }
        return new Selection(offsets, kept, null);
    }
}
