package tokenprune.reference;

import java.util.Arrays;
import java.util.Objects;

/**
 * Float64 reference of TransPrune (methods-vision.md §6), written to be checked by eye.
 *
 * <ul>
 *   <li>TTV of one sub-block (§6.1), per token of the whole sequence: m = |v| / |u| (no epsilon: a
 *       zero u is rejected), e = exp(1 - cos(u, v)) with PyTorch's cosine_similarity (eps 1e-8:
 *       {@code u.v / (max(|u|, eps) max(|v|, eps))}), tau = m e / (sum of e over ALL tokens).</li>
 *   <li>IGA (§6.2): for every text query row p after the image and every head, softmax over keys
 *       0..p of q_p . k_j / sqrt(dh); the image columns averaged over heads and text rows. GQA: query
 *       head h uses kv head h / (heads / kvHeads).</li>
 *   <li>Score (§6.3): wTtv A/(sum A + 1e-8) + wIga IGA/(sum IGA + 1e-8), top-k by
 *       {@link TopKReference} (larger first, then lower index), kept ascending; the accumulated
 *       vector A is then re-indexed to the survivors (TP-4).</li>
 * </ul>
 */
public final class TransPruneReference {
    public static final double COSINE_EPS = 1e-8;
    public static final double NORMALISER_EPS = 1e-8;

    private TransPruneReference() {
    }

    /** PyTorch {@code cosine_similarity(a, b, eps=1e-8)}: each norm clamped to eps separately. */
    public static double cosine(float[] a, float[] b) {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.length; i++) {
            ab += (double) a[i] * b[i];
            aa += (double) a[i] * a[i];
            bb += (double) b[i] * b[i];
        }
        return ab / (Math.max(Math.sqrt(aa), COSINE_EPS) * Math.max(Math.sqrt(bb), COSINE_EPS));
    }

    private static double norm(float[] a) {
        double s = 0;
        for (float x : a) s += (double) x * x;
        return Math.sqrt(s);
    }

    /**
     * tau_t = m_t e_t / sum_t' e_t' for every token of one sequence (u, v: [tokens][d]).
     *
     * @throws IllegalArgumentException for shapes that differ, a NaN/Inf value or a zero row of u
     */
    public static double[] transition(float[][] u, float[][] v) {
        if (u.length != v.length) throw new IllegalArgumentException("v: " + v.length + " tokens, u has " + u.length);
        int n = u.length;
        double[] m = new double[n], e = new double[n];
        double z = 0;
        for (int t = 0; t < n; t++) {
            if (u[t].length != v[t].length) throw new IllegalArgumentException("v: token " + t + " has " + v[t].length + " features, u has " + u[t].length);
            requireFinite(u[t], "u", t);
            requireFinite(v[t], "v", t);
            double nu = norm(u[t]);
            if (nu == 0) throw new IllegalArgumentException("u: token " + t + " is a zero vector; m = |v| / |u| is undefined");
            m[t] = norm(v[t]) / nu;
            e[t] = Math.exp(1 - cosine(u[t], v[t]));
            z += e[t];
        }
        double[] tau = new double[n];
        for (int t = 0; t < n; t++) tau[t] = m[t] * e[t] / z;
        return tau;
    }

    /**
     * IGA of one sequence: q [tokens][heads][dh] (only the text rows after the image are read),
     * k [tokens][kvHeads][dh]; returns one value per image token.
     */
    public static double[] iga(float[][][] q, float[][][] k, int imageStart, int imageCount) {
        int length = q.length, heads = q[0].length, kvHeads = k[0].length, dh = q[0][0].length;
        if (k.length != length) throw new IllegalArgumentException("k: " + k.length + " tokens, q has " + length);
        if (heads % kvHeads != 0) throw new IllegalArgumentException("k: kv heads (" + kvHeads + ") must divide the query heads (" + heads + ")");
        int textStart = imageStart + imageCount;
        if (textStart >= length) throw new IllegalArgumentException("q: no text token after the image; IGA needs at least one");
        for (int t = 0; t < length; t++) for (int h = 0; h < kvHeads; h++) requireFinite(k[t][h], "k", t);
        for (int t = textStart; t < length; t++) for (int h = 0; h < heads; h++) requireFinite(q[t][h], "q", t);
        double scale = 1 / Math.sqrt(dh);
        double[] g = new double[imageCount];
        for (int p = textStart; p < length; p++) {
            for (int h = 0; h < heads; h++) {
                int kvh = h / (heads / kvHeads);
                double[] logit = new double[p + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= p; j++) {  // causal: query p sees keys 0..p
                    double dot = 0;
                    for (int i = 0; i < dh; i++) dot += (double) q[p][h][i] * k[j][kvh][i];
                    logit[j] = dot * scale;
                    max = Math.max(max, logit[j]);
                }
                double sum = 0;
                for (int j = 0; j <= p; j++) sum += Math.exp(logit[j] - max);
                for (int j = 0; j < imageCount; j++) g[j] += Math.exp(logit[imageStart + j] - max) / sum;
            }
        }
        double rows = (double) heads * (length - textStart);
        for (int j = 0; j < imageCount; j++) g[j] /= rows;
        return g;
    }

    /** x / (sum x + 1e-8). */
    public static double[] normalise(double[] x) {
        double s = 0;
        for (double v : x) s += v;
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) out[i] = x[i] / (s + NORMALISER_EPS);
        return out;
    }

    /** wTtv A/(sum A + 1e-8) + wIga IGA/(sum IGA + 1e-8); {@code iga} null: TTV only. */
    public static double[] score(double[] acc, double[] iga, double wTtv, double wIga) {
        double[] a = normalise(acc);
        double[] g = iga == null ? null : normalise(iga);
        double[] s = new double[acc.length];
        for (int j = 0; j < s.length; j++) s[j] = wTtv * a[j] + (g == null ? 0 : wIga * g[j]);
        return s;
    }

    /** The k best scores, ascending indices, by {@link TopKReference}'s rule on the fp32-rounded scores. */
    public static int[] topK(double[] scores, int k) {
        float[] f = new float[scores.length];
        for (int i = 0; i < f.length; i++) f[i] = (float) scores[i];
        return TopKReference.select(f, k);
    }

    /**
     * The gap between the k-th and (k+1)-th best score relative to the largest score magnitude:
     * where it is well above the fp32 error, a kernel's top-k must equal the reference's exactly.
     */
    public static double relativeGap(double[] scores, int k) {
        if (k >= scores.length) return Double.POSITIVE_INFINITY;
        double[] sorted = scores.clone();
        Arrays.sort(sorted);
        double scale = Math.max(Math.abs(sorted[0]), Math.abs(sorted[sorted.length - 1]));
        double gap = sorted[sorted.length - k] - sorted[sorted.length - k - 1];
        return scale == 0 ? 0 : gap / scale;
    }

    private static void requireFinite(float[] row, String what, int token) {
        for (int i = 0; i < row.length; i++) {
            if (!Float.isFinite(row[i])) throw new IllegalArgumentException(what + ": non-finite value at token " + token + ", feature " + i + " (" + row[i] + ")");
        }
    }

    /**
     * One sequence through a TransPrune request: accumulate sub-blocks, score, keep, repeat. A holds
     * the accumulated TTV of the current image tokens (in their current order).
     */
    public static final class Sequence {
        private int length;
        private final int imageStart;
        private int imageCount;
        private double[] acc;

        public Sequence(int length, int imageStart, int imageCount) {
            if (imageStart < 0 || imageCount < 1 || imageStart + imageCount > length) {
                throw new IllegalArgumentException("image block [" + imageStart + ", " + (imageStart + imageCount) + ") does not fit length " + length);
            }
            this.length = length;
            this.imageStart = imageStart;
            this.imageCount = imageCount;
            this.acc = new double[imageCount];
        }

        public int length() {
            return length;
        }

        public int imageStart() {
            return imageStart;
        }

        public int imageCount() {
            return imageCount;
        }

        /** Adds one sub-block's tau of the image tokens (u, v: [length][d]). */
        public void addSubBlock(float[][] u, float[][] v) {
            if (u.length != length) throw new IllegalArgumentException("u: " + u.length + " tokens, the sequence has " + length);
            double[] tau = transition(u, v);
            for (int j = 0; j < imageCount; j++) acc[j] += tau[imageStart + j];
        }

        /** The accumulated TTV of the current image tokens. */
        public double[] accumulated() {
            return acc.clone();
        }

        /** Scores of the current image tokens; q and k null: TTV only. */
        public double[] scores(float[][][] q, float[][][] k, double wTtv, double wIga) {
            double[] g = q == null ? null : iga(q, k, imageStart, imageCount);
            return score(acc, g, wTtv, wIga);
        }

        /** Keeps the image tokens {@code kept} (ascending, current indices): re-indexes A. */
        public void keep(int[] kept) {
            double[] next = new double[kept.length];
            for (int i = 0; i < kept.length; i++) {
                if (kept[i] < 0 || kept[i] >= imageCount || (i > 0 && kept[i] <= kept[i - 1])) {
                    throw new IllegalArgumentException("kept: must be ascending indices in [0, " + imageCount + "), got " + Arrays.toString(kept));
                }
                next[i] = acc[kept[i]];
            }
            length -= imageCount - kept.length;
            imageCount = kept.length;
            acc = next;
        }

        /** Scores, keeps the k best and returns them (ascending, current indices). */
        public int[] prune(int k, float[][][] q, float[][][] keys, double wTtv, double wIga) {
            Objects.checkIndex(k - 1, imageCount);
            int[] kept = topK(scores(q, keys, wTtv, wIga), k);
            keep(kept);
            return kept;
        }
    }
}
