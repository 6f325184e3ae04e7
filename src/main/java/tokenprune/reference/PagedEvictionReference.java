package tokenprune.reference;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import tokenprune.kv.KvLayout;
import tokenprune.kv.KvScoreOptions;
import tokenprune.methods.DType;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * Float64 reference of PagedEviction (PE-REF, methods-kv.md §2.3.2): the token score from key and
 * value norms (step 1), the block score (step 2) and the prefill selection (step 4).
 */
public final class PagedEvictionReference {
    private PagedEvictionReference() {
    }

    /** Step 1 from the per-head norms n_k[h], n_v[h]. */
    public static double tokenScore(double[] nk, double[] nv, KvScoreOptions o) {
        int h = nk.length;
        if (h == 0 || nv.length != h) throw new IllegalArgumentException("nk, nv: need the same number (>= 1) of heads");
        double eps = o.eps(), sk = 0, sv = 0, sr = 0;
        for (int i = 0; i < h; i++) {
            sk += nk[i];
            sv += nv[i];
            sr += nv[i] / (nk[i] + eps);
        }
        double mk = sk / h, mv = sv / h;
        return switch (o.metric()) {
            case V_OVER_K -> o.headAgg() == KvScoreOptions.HeadAgg.MEAN_OF_RATIOS ? sr / h : mv / (mk + eps);
            case INV_K -> 1.0 / (mk + eps);
            case V -> mv;
            case K_PLUS_V -> mk + mv;
        };
    }

    /** One cache element as a float: {@code cache} is a float[] (F32) or a short[] of raw 16-bit patterns. */
    static double element(Object cache, DType dtype, long at) {
        return switch (dtype) {
            case F32 -> ((float[]) cache)[(int) at];
            case F16 -> Fp16.toFloat(((short[]) cache)[(int) at]);
            case BF16 -> Bf16.toFloat(((short[]) cache)[(int) at]);
        };
    }

    /**
     * Scores of tokens {@code begin .. end-1} of a sequence whose block table is {@code table}, read
     * from one layer's cache through {@code layout}.
     */
    public static double[] tokenScores(KvLayout layout, Object cache, int[] table, int begin, int end, KvScoreOptions o) {
        int b = layout.blockSize(), heads = layout.kvHeads(), d = layout.headDim();
        double[] out = new double[end - begin];
        double[] nk = new double[heads], nv = new double[heads];
        for (int t = begin; t < end; t++) {
            int block = table[t / b], slot = t % b;
            for (int h = 0; h < heads; h++) {
                double k2 = 0, v2 = 0;
                for (int j = 0; j < d; j++) {
                    double k = element(cache, layout.dtype(), layout.offset(0, block, slot, h, j));
                    double v = element(cache, layout.dtype(), layout.offset(1, block, slot, h, j));
                    k2 += k * k;
                    v2 += v * v;
                }
                nk[h] = Math.sqrt(k2);
                nv[h] = Math.sqrt(v2);
            }
            out[t - begin] = tokenScore(nk, nv, o);
        }
        return out;
    }

    /** Step 2: the mean of a full block's token scores. */
    public static double blockScore(double[] tokenScores) {
        if (tokenScores.length == 0) throw new IllegalArgumentException("tokenScores: empty block");
        double s = 0;
        for (double v : tokenScores) s += v;
        return s / tokenScores.length;
    }

    /**
     * Step 4: the positions a prompt of L = scores.length tokens keeps under budget C with block size
     * B, ascending (original order). L <= C keeps all; otherwise r = L mod B, [0, B) and
     * [L - B - r, L) are kept, and the top C - 2B middle tokens by score (ties: later position first).
     */
    public static int[] prefillKeep(double[] scores, int budget, int blockSize) {
        int l = scores.length;
        if (budget % blockSize != 0 || budget < 3 * blockSize) throw new IllegalArgumentException("budget: must be a multiple of B and >= 3B");
        if (l <= budget) {
            int[] all = new int[l];
            for (int i = 0; i < l; i++) all[i] = i;
            return all;
        }
        int r = l % blockSize, midEnd = l - blockSize - r;
        List<Integer> middle = new ArrayList<>();
        for (int i = blockSize; i < midEnd; i++) middle.add(i);
        middle.sort((a, c) -> scores[a] != scores[c] ? Double.compare(scores[c], scores[a]) : Integer.compare(c, a));
        int keepMid = budget - 2 * blockSize;
        int[] out = new int[budget + r];
        int n = 0;
        for (int i = 0; i < blockSize; i++) out[n++] = i;
        int[] mid = middle.subList(0, keepMid).stream().mapToInt(Integer::intValue).sorted().toArray();
        for (int m : mid) out[n++] = m;
        for (int i = midEnd; i < l; i++) out[n++] = i;
        if (n != out.length) throw new AssertionError();
        Arrays.sort(out);
        return out;
    }
}
