package tokenprune.reference;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;

import tokenprune.methods.DartOptions;
import tokenprune.methods.DartOptions.PivotOrder;

/**
 * Float64 reference for DART (methods-vision.md §4.3), one sequence at a time, written to be
 * checked by eye. Positions are token positions within the sequence; the image block is
 * {@code [start, start + length)}, the text {@code [start + length, seqLen)}.
 *
 * <ol>
 *   <li>a_j = sum |K_j[f]| (key L1 norm) for every image and text token.</li>
 *   <li>Image pivots: the P_img image tokens with the largest a_j; text pivots: the P_txt text
 *       tokens with the largest a_j; each list larger first, ties to the lower position (top-k
 *       order).</li>
 *   <li>Processing order: ascending position ({@link PivotOrder#SORTED}) or the CPython set order
 *       of the list image pivots + text pivots ({@link PivotOrder#OFFICIAL_COMPAT}, {@link CPythonSetOrder}).</li>
 *   <li>Pool = image tokens minus image pivots. Each pivot p in turn recruits the TOKEN_TOPK pool
 *       tokens v with the smallest cos(h_p, h_v) (ties to the lower position), which leave the pool.
 *       cos follows PyTorch's cosine_similarity: dot / (max(|h_p|, 1e-8) max(|h_v|, 1e-8)).</li>
 *   <li>Kept = image pivots + recruits (ascending); keep list = [0, start) + kept + text; position
 *       ids = the keep list.</li>
 * </ol>
 *
 * <p>Only rows {@code [start, seqLen)} are read; they must be finite. No fp16 rounding of the
 * official code is emulated.
 */
public final class DartReference {
    /** PyTorch cosine_similarity's default eps, applied to each norm. */
    public static final double EPS = 1e-8;

    private DartReference() {
    }

    /**
     * One sequence's result: {@code pivots} (image then text, top-k order), {@code pivotOrder}
     * (processing order), {@code keptImage} (ascending, local to the image block),
     * {@code recruitedBy} (per kept image token: the recruiting pivot's position, -1 for an image
     * pivot) and {@code keep} (keep list = position ids).
     */
    public record Result(int[] pivots, int[] pivotOrder, int[] keptImage, int[] recruitedBy, int[] keep) {
    }

    /**
     * Runs DART on one sequence.
     *
     * @param keys seqLen rows (post-RoPE keys of layer K-1, heads concatenated), equal lengths
     * @param hidden seqLen rows (the last-layer state), equal lengths
     * @throws IllegalArgumentException for a bad shape or block, a read value that is not finite, or
     *     a pivot or recruit count the sequence cannot satisfy (the official topk raises)
     */
    public static Result select(float[][] keys, float[][] hidden, int start, int length, DartOptions options) {
        check(keys, hidden, start, length, options);
        double[] a = keyL1(keys, start);
        int[] pivots = pivots(a, start, length, options.pivotImage(), options.pivotText());
        int[] order = processingOrder(pivots, options.pivotOrder());
        return recruit(hidden, start, length, options.pivotImage(), pivots, order, options.tokenTopK());
    }

    /** a_j = sum_f |keys[j][f]| for j &gt;= from; NaN below. */
    public static double[] keyL1(float[][] keys, int from) {
        double[] a = new double[keys.length];
        Arrays.fill(a, 0, Math.min(from, keys.length), Double.NaN);
        for (int j = from; j < keys.length; j++) {
            double s = 0;
            for (float v : keys[j]) s += Math.abs((double) v);
            a[j] = s;
        }
        return a;
    }

    /** Image pivots (top P_img of [start, start+length)) then text pivots (top P_txt of the rest). */
    public static int[] pivots(double[] a, int start, int length, int pivotImage, int pivotText) {
        int[] img = topLargest(a, start, start + length, pivotImage);
        int[] txt = topLargest(a, start + length, a.length, pivotText);
        int[] all = Arrays.copyOf(img, img.length + txt.length);
        System.arraycopy(txt, 0, all, img.length, txt.length);
        return all;
    }

    /** The {@code count} positions of [lo, hi) with the largest a, larger first, ties to the lower position. */
    public static int[] topLargest(double[] a, int lo, int hi, int count) {
        if (count > hi - lo) throw new IllegalArgumentException("count: " + count + " exceeds the " + (hi - lo) + " candidates");
        return IntStream.range(lo, hi).boxed()
                .sorted(Comparator.<Integer>comparingDouble(j -> -a[j]).thenComparingInt(j -> j))
                .limit(count).mapToInt(Integer::intValue).toArray();
    }

    /** The pivots in processing order. */
    public static int[] processingOrder(int[] pivots, PivotOrder order) {
        if (order == PivotOrder.OFFICIAL_COMPAT) return CPythonSetOrder.iterationOrder(pivots);
        int[] sorted = pivots.clone();
        Arrays.sort(sorted);
        return sorted;
    }

    /** PyTorch cosine_similarity in float64: dot / (max(|x|, eps) max(|y|, eps)). */
    public static double cosine(float[] x, float[] y) {
        double dot = 0, xx = 0, yy = 0;
        for (int f = 0; f < x.length; f++) {
            dot += (double) x[f] * y[f];
            xx += (double) x[f] * x[f];
            yy += (double) y[f] * y[f];
        }
        return dot / (Math.max(Math.sqrt(xx), EPS) * Math.max(Math.sqrt(yy), EPS));
    }

    /** The recruit rounds for given pivots (top-k order) and processing order. */
    public static Result recruit(float[][] hidden, int start, int length, int pivotImage, int[] pivots, int[] order, int tokenTopK) {
        int[] by = new int[length];  // 0: pool, -1: image pivot, p + 1: recruited by pivot position p
        for (int m = 0; m < pivotImage; m++) by[pivots[m] - start] = -1;
        for (int p : order) {
            List<Integer> pool = new ArrayList<>();
            for (int v = 0; v < length; v++) if (by[v] == 0) pool.add(v);
            if (pool.size() < tokenTopK) {
                throw new IllegalArgumentException("tokenTopK: pivot " + p + " needs " + tokenTopK + " candidates, only " + pool.size() + " remain");
            }
            double[] c = new double[length];
            for (int v : pool) c[v] = cosine(hidden[p], hidden[start + v]);
            pool.sort(Comparator.<Integer>comparingDouble(v -> c[v]).thenComparingInt(v -> v));
            for (int i = 0; i < tokenTopK; i++) by[pool.get(i)] = p + 1;
        }
        int[] kept = IntStream.range(0, length).filter(v -> by[v] != 0).toArray();
        int[] recruitedBy = IntStream.of(kept).map(v -> by[v] < 0 ? -1 : by[v] - 1).toArray();
        return new Result(pivots.clone(), order.clone(), kept, recruitedBy, keepList(hidden.length, start, length, kept));
    }

    /** [0, start) + (start + kept) + [start + length, seqLen). */
    public static int[] keepList(int seqLen, int start, int length, int[] keptImage) {
        int text = seqLen - start - length;
        int[] keep = new int[start + keptImage.length + text];
        for (int i = 0; i < start; i++) keep[i] = i;
        for (int i = 0; i < keptImage.length; i++) keep[start + i] = start + keptImage[i];
        for (int t = 0; t < text; t++) keep[start + keptImage.length + t] = start + length + t;
        return keep;
    }

    // ---- checking implementations with fp32 arithmetic ------------------------------------------

    /**
     * The smallest margin along this reference's own trajectory: between consecutive values among
     * the first P+1 of the image (and text) key L1 norms sorted descending, relative to max(1, a);
     * and, for each recruit round, between the TOKEN_TOPK-th and the next smallest cosine of the
     * pool. When it is comfortably above an implementation's error, that implementation must choose
     * exactly what the reference chooses (pivot order included). +infinity if no choice had two
     * candidates.
     */
    public static double separation(float[][] keys, float[][] hidden, int start, int length, DartOptions options) {
        check(keys, hidden, start, length, options);
        double[] a = keyL1(keys, start);
        double gap = Math.min(topGap(a, start, start + length, options.pivotImage()), topGap(a, start + length, keys.length, options.pivotText()));
        int[] pivots = pivots(a, start, length, options.pivotImage(), options.pivotText());
        int[] order = processingOrder(pivots, options.pivotOrder());
        boolean[] out = new boolean[length];
        for (int m = 0; m < options.pivotImage(); m++) out[pivots[m] - start] = true;
        int k = options.tokenTopK();
        for (int p : order) {
            List<double[]> pool = new ArrayList<>();  // (cos, v)
            for (int v = 0; v < length; v++) if (!out[v]) pool.add(new double[] {cosine(hidden[p], hidden[start + v]), v});
            pool.sort(Comparator.<double[]>comparingDouble(e -> e[0]).thenComparingDouble(e -> e[1]));
            if (k > 0 && pool.size() > k) gap = Math.min(gap, pool.get(k)[0] - pool.get(k - 1)[0]);
            for (int i = 0; i < k; i++) out[(int) pool.get(i)[1]] = true;
        }
        return gap;
    }

    private static double topGap(double[] a, int lo, int hi, int count) {
        double[] v = IntStream.range(lo, hi).mapToDouble(j -> a[j]).boxed().sorted(Comparator.reverseOrder()).mapToDouble(Double::doubleValue).toArray();
        double gap = Double.POSITIVE_INFINITY;
        for (int i = 0; i < Math.min(count, v.length - 1); i++) gap = Math.min(gap, (v[i] - v[i + 1]) / Math.max(1, Math.abs(v[i])));
        return gap;
    }

    /**
     * Checks that a result is a valid DART selection up to {@code eps}, following the result's own
     * choices (so that near-ties decided differently in fp32 pass): each pivot's key L1 norm is within
     * eps (relative to max(1, a)) of the best not yet chosen of its group; the processing order is
     * exactly the rule's order of those pivots; each pivot's recruits (read from recruitedBy) are
     * TOKEN_TOPK tokens of the pool left by the earlier pivots whose largest cosine is within eps of
     * the smallest cosine left out; the kept tokens are the image pivots and the recruits, ascending;
     * the keep list is [0, start) + kept + text.
     *
     * @throws AssertionError describing the first violation
     */
    public static void checkValid(float[][] keys, float[][] hidden, int start, int length, DartOptions options, Result got, double eps) {
        check(keys, hidden, start, length, options);
        int pImg = options.pivotImage(), pTxt = options.pivotText(), k = options.tokenTopK();
        double[] a = keyL1(keys, start);
        int[] pivots = got.pivots();
        if (pivots.length != pImg + pTxt) throw new AssertionError("expected " + (pImg + pTxt) + " pivots, got " + Arrays.toString(pivots));
        checkTop(a, pivots, 0, pImg, start, start + length, eps, "image pivot");
        checkTop(a, pivots, pImg, pImg + pTxt, start + length, keys.length, eps, "text pivot");
        int[] order = processingOrder(pivots, options.pivotOrder());
        if (!Arrays.equals(order, got.pivotOrder())) {
            throw new AssertionError("pivot order " + Arrays.toString(got.pivotOrder()) + " is not the " + options.pivotOrder()
                    + " order " + Arrays.toString(order) + " of the pivots " + Arrays.toString(pivots));
        }
        int[] kept = got.keptImage(), by = got.recruitedBy();
        int retained = options.retained();
        if (kept.length != retained || by.length != retained) {
            throw new AssertionError("expected " + retained + " kept image tokens, got " + kept.length + " (recruitedBy " + by.length + ")");
        }
        for (int i = 1; i < kept.length; i++) {
            if (kept[i] <= kept[i - 1]) throw new AssertionError("kept image tokens not strictly ascending: " + Arrays.toString(kept));
        }
        boolean[] out = new boolean[length];
        for (int m = 0; m < pImg; m++) {
            int v = pivots[m] - start, at = Arrays.binarySearch(kept, v);
            if (at < 0 || by[at] != -1) throw new AssertionError("image pivot " + pivots[m] + " is not kept as a pivot (recruitedBy -1)");
            out[v] = true;
        }
        for (int p : order) {
            List<Integer> mine = new ArrayList<>();
            for (int i = 0; i < kept.length; i++) if (by[i] == p) mine.add(kept[i]);
            if (mine.size() != k) throw new AssertionError("pivot " + p + " recruited " + mine.size() + " tokens, expected " + k + ": " + mine);
            double worstIn = Double.NEGATIVE_INFINITY;
            for (int v : mine) {
                if (out[v]) throw new AssertionError("pivot " + p + " recruited token " + v + ", which had already left the pool");
                worstIn = Math.max(worstIn, cosine(hidden[p], hidden[start + v]));
            }
            double bestOut = Double.POSITIVE_INFINITY;
            int bestOutToken = -1;
            for (int v = 0; v < length; v++) {
                if (out[v] || mine.contains(v)) continue;
                double c = cosine(hidden[p], hidden[start + v]);
                if (c < bestOut) { bestOut = c; bestOutToken = v; }
            }
            if (worstIn > bestOut + eps) {
                throw new AssertionError(String.format("pivot %d recruited a token with cosine %.9g but left token %d (cosine %.9g) in the pool (eps %.3g)",
                        p, worstIn, bestOutToken, bestOut, eps));
            }
            for (int v : mine) out[v] = true;
        }
        // P_img entries are the image pivots (-1) and P * TOKEN_TOPK belong to the pivots, k each: with
        // kept.length == P_img + P * TOKEN_TOPK that is every entry
        int[] keep = keepList(keys.length, start, length, kept);
        if (!Arrays.equals(keep, got.keep())) throw new AssertionError("keep list " + Arrays.toString(got.keep()) + ", expected " + Arrays.toString(keep));
    }

    private static void checkTop(double[] a, int[] chosen, int from, int to, int lo, int hi, double eps, String what) {
        boolean[] taken = new boolean[a.length];
        for (int m = from; m < to; m++) {
            int j = chosen[m];
            if (j < lo || j >= hi) throw new AssertionError(what + " " + j + " is outside [" + lo + ", " + hi + ")");
            if (taken[j]) throw new AssertionError(what + " " + j + " was chosen twice");
            int best = -1;
            for (int i = lo; i < hi; i++) if (!taken[i] && (best < 0 || a[i] > a[best])) best = i;
            if (a[j] < a[best] - eps * Math.max(1, Math.abs(a[best]))) {
                throw new AssertionError(String.format("%s #%d is token %d with key L1 norm %.9g but token %d has %.9g", what, m - from, j, a[j], best, a[best]));
            }
            taken[j] = true;
        }
    }

    /** Shapes, block, counts and finiteness of the rows read. */
    static void check(float[][] keys, float[][] hidden, int start, int length, DartOptions o) {
        int n = keys.length;
        if (hidden.length != n) throw new IllegalArgumentException("hidden: " + hidden.length + " rows, keys have " + n);
        if (start < 0 || length < 1 || (long) start + length > n) {
            throw new IllegalArgumentException("images: block [" + start + ", " + ((long) start + length) + ") does not fit " + n + " tokens");
        }
        int text = n - start - length;
        if (o.pivotImage() > length) throw new IllegalArgumentException("pivotImage: " + o.pivotImage() + " pivots of " + length + " image tokens");
        if (o.pivotText() > text) throw new IllegalArgumentException("pivotText: " + o.pivotText() + " pivots of " + text + " text tokens");
        long need = (long) o.pivots() * o.tokenTopK();
        if (length - o.pivotImage() < need) {
            throw new IllegalArgumentException("tokenTopK: the pool of " + (length - o.pivotImage()) + " image tokens cannot supply "
                    + o.pivots() + " x " + o.tokenTopK() + " = " + need + " recruits");
        }
        checkRows(keys, start, "keys");
        checkRows(hidden, start, "hidden");
    }

    private static void checkRows(float[][] rows, int from, String what) {
        int d = rows.length == 0 ? 0 : rows[from < rows.length ? from : 0].length;
        if (d < 1) throw new IllegalArgumentException(what + ": rows must have at least one feature");
        for (int j = from; j < rows.length; j++) {
            if (rows[j].length != d) throw new IllegalArgumentException(what + ": row " + j + " has " + rows[j].length + " features, expected " + d);
            for (int f = 0; f < d; f++) {
                if (!Float.isFinite(rows[j][f])) throw new IllegalArgumentException(what + ": non-finite value " + rows[j][f] + " at token " + j + ", feature " + f);
            }
        }
    }
}
