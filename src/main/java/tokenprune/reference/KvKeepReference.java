package tokenprune.reference;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Float64 reference of the keep decision of the attention-score KV policies (src/main/cuda/kv_keep.cu,
 * {@code tokenprune.kv.KvKeepSelect}): per row (sequence × KV head, or a whole sequence with the score =
 * mean over the KV heads), n <= budget keeps all; otherwise [0, sinks) ∪ [n − recent, n) ∪ the top
 * (budget − sinks − recent) of [sinks, n − recent) — larger first; of equal scores the lower index stays,
 * or the later one with {@code laterKept} (A2SF-REF: the lowest index among equal minima goes first) — after an
 * optional SnapKV pooling of [0, n − recent) (avg counts the zero padding, max pads with −∞). Kept
 * indices ascending; rows in the kernel's order (sequence-major, then KV head).
 */
public final class KvKeepReference {
    private KvKeepReference() {
    }

    /** {@link #contiguous(float[], int[], int, boolean, int, int, int, int, boolean, boolean)}, ties to the lower index. */
    public static int[][] contiguous(float[] scores, int[] kvLens, int kvHeads, boolean shared, int sinks, int recent, int budget, int poolKernel,
                                     boolean poolMax) {
        return contiguous(scores, kvLens, kvHeads, shared, sinks, recent, budget, poolKernel, poolMax, false);
    }

    /**
     * Scores in the contiguous layout (per sequence [kvHeads][kvLens[s]], sequences concatenated).
     *
     * @throws IllegalArgumentException "scores: ..." on a NaN/Inf score a row reads
     */
    public static int[][] contiguous(float[] scores, int[] kvLens, int kvHeads, boolean shared, int sinks, int recent, int budget, int poolKernel,
                                     boolean poolMax, boolean laterKept) {
        List<int[]> out = new ArrayList<>();
        long base = 0;
        for (int n : kvLens) {
            final long b = base;
            rows(n, kvHeads, shared, (h, t) -> scores[(int) (b + (long) h * n + t)], sinks, recent, budget, poolKernel, poolMax, laterKept, out);
            base += (long) n * kvHeads;
        }
        return out.toArray(new int[0][]);
    }

    /** {@link #paged(float[], int, int, int, int[], int, int[], boolean, int, int, int, int, boolean, boolean)}, ties to the lower index. */
    public static int[][] paged(float[] state, int numBlocks, int blockSize, int kvHeads, int[] blockTables, int tableStride, int[] kvLens,
                                boolean shared, int sinks, int recent, int budget, int poolKernel, boolean poolMax) {
        return paged(state, numBlocks, blockSize, kvHeads, blockTables, tableStride, kvLens, shared, sinks, recent, budget, poolKernel, poolMax, false);
    }

    /**
     * Scores in the paged decode state [numBlocks][blockSize][kvHeads], read through the block table.
     *
     * @throws IllegalArgumentException "blockTables: ..." on an entry of a held block outside the pool, "scores: ..." on NaN/Inf
     */
    public static int[][] paged(float[] state, int numBlocks, int blockSize, int kvHeads, int[] blockTables, int tableStride, int[] kvLens,
                                boolean shared, int sinks, int recent, int budget, int poolKernel, boolean poolMax, boolean laterKept) {
        List<int[]> out = new ArrayList<>();
        for (int s = 0; s < kvLens.length; s++) {
            final int seq = s;
            for (int j = 0; j < (kvLens[s] + blockSize - 1) / blockSize; j++) {
                int p = blockTables[s * tableStride + j];
                if (p < 0 || p >= numBlocks) throw new IllegalArgumentException("blockTables: sequence " + s + " block " + j + " = " + p + " lies outside the pool");
            }
            rows(kvLens[s], kvHeads, shared, (h, t) -> state[(int) (((long) blockTables[seq * tableStride + t / blockSize] * blockSize + t % blockSize) * kvHeads + h)],
                    sinks, recent, budget, poolKernel, poolMax, laterKept, out);
        }
        return out.toArray(new int[0][]);
    }

    interface Score {
        float at(int head, int token);
    }

    private static void rows(int n, int kvHeads, boolean shared, Score score, int sinks, int recent, int budget, int poolKernel, boolean poolMax,
                             boolean laterKept, List<int[]> out) {
        if (shared) {
            double[] mean = new double[n];
            for (int t = 0; t < n; t++) {
                double sum = 0;
                for (int h = 0; h < kvHeads; h++) sum += finite(score.at(h, t), h, t);
                mean[t] = sum / kvHeads;
            }
            out.add(keepRow(mean, sinks, recent, budget, poolKernel, poolMax, laterKept));
            return;
        }
        for (int h = 0; h < kvHeads; h++) {
            double[] row = new double[n];
            for (int t = 0; t < n; t++) row[t] = finite(score.at(h, t), h, t);
            out.add(keepRow(row, sinks, recent, budget, poolKernel, poolMax, laterKept));
        }
    }

    private static double finite(float v, int h, int t) {
        if (!Float.isFinite(v)) throw new IllegalArgumentException("scores: head " + h + " token " + t + " is " + v);
        return v;
    }

    /** {@link #keepRow(double[], int, int, int, int, boolean, boolean)}, ties to the lower index. */
    public static int[] keepRow(double[] scores, int sinks, int recent, int budget, int poolKernel, boolean poolMax) {
        return keepRow(scores, sinks, recent, budget, poolKernel, poolMax, false);
    }

    /** One row of per-token scores: the kept indices, ascending; of equal scores the later index stays iff {@code laterKept}. */
    public static int[] keepRow(double[] scores, int sinks, int recent, int budget, int poolKernel, boolean poolMax, boolean laterKept) {
        int n = scores.length;
        if (n <= budget) {
            int[] all = new int[n];
            for (int i = 0; i < n; i++) all[i] = i;
            return all;
        }
        int end = n - recent, k = budget - sinks - recent;
        double[] v = poolKernel > 1 ? pool(Arrays.copyOf(scores, end), poolKernel, poolMax) : scores;
        Integer[] cand = new Integer[end - sinks];
        for (int i = 0; i < cand.length; i++) cand[i] = sinks + i;
        // primitive comparisons: -0.0 and +0.0 tie (the kernel's keys do the same)
        Arrays.sort(cand, (a, b) -> v[a] > v[b] ? -1 : v[a] < v[b] ? 1 : laterKept ? Integer.compare(b, a) : Integer.compare(a, b));
        int[] kept = new int[budget];
        int i = 0;
        for (int t = 0; t < sinks; t++) kept[i++] = t;
        int[] mid = new int[k];
        for (int j = 0; j < k; j++) mid[j] = cand[j];
        Arrays.sort(mid);
        for (int t : mid) kept[i++] = t;
        for (int t = end; t < n; t++) kept[i++] = t;
        return kept;
    }

    /** 1-D pooling, stride 1, padding ⌊kernel/2⌋: avg divides the in-range sum by kernel (zero padding counted), max ignores the padding. */
    public static double[] pool(double[] v, int kernel, boolean max) {
        int pad = kernel / 2, n = v.length;
        double[] out = new double[n];
        for (int t = 0; t < n; t++) {
            double sum = 0, m = Double.NEGATIVE_INFINITY;
            for (int j = Math.max(0, t - pad); j <= Math.min(n - 1, t + pad); j++) {
                sum += v[j];
                m = Math.max(m, v[j]);
            }
            out[t] = max ? m : sum / kernel;
        }
        return out;
    }
}
