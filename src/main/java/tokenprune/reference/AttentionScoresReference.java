package tokenprune.reference;

import tokenprune.kv.KvLayout;

/**
 * Float64 reference of the weighted attention column sums (methods-kv.md §4.2, §11) that H2O,
 * A2SF, SnapKV and TOVA score with, read from a paged cache: per sequence s, KV head h and held key j,
 * {@code decay * prev + (1/G) Σ_g Σ_r w_r exp(q_{r,hG+g} · k_{j,h} · scale − lse[r, hG+g])} over keys
 * {@code j <= positions[r]}; output per sequence [kvHeads][kvLen], sequences concatenated. Arguments
 * as in {@code tokenprune.kv.AttentionScores.compute} (queries dense [rows][heads][D], lse [rows][heads]).
 */
public final class AttentionScoresReference {
    private AttentionScoresReference() {
    }

    public static double[] colsum(KvLayout l, Object cache, int[] blockTables, int tableStride, int[] kvLens, Object queries, int heads,
                                  int[] rowOffsets, int[] positions, float[] weights, float[] lse, double scale, float[] prev, double decay) {
        int kvHeads = l.kvHeads(), d = l.headDim(), g = heads / kvHeads, b = l.blockSize();
        long total = 0;
        for (int n : kvLens) total += (long) n * kvHeads;
        double[] out = new double[(int) total];
        int base = 0;
        for (int s = 0; s < kvLens.length; s++) {
            int n = kvLens[s];
            for (int h = 0; h < kvHeads; h++) {
                for (int j = 0; j < n; j++) {
                    int p = blockTables[s * tableStride + j / b];
                    double sum = 0;
                    for (int r = rowOffsets[s]; r < rowOffsets[s + 1]; r++) {
                        if (j > positions[r]) continue;
                        double w = weights == null ? 1 : weights[r];
                        for (int gg = 0; gg < g; gg++) {
                            int qh = h * g + gg;
                            double dot = 0;
                            for (int i = 0; i < d; i++)
                                dot += PagedEvictionReference.element(queries, l.dtype(), ((long) r * heads + qh) * d + i)
                                        * PagedEvictionReference.element(cache, l.dtype(), l.offset(0, p, j % b, h, i));
                            sum += w * Math.exp(dot * scale - lse[r * heads + qh]);
                        }
                    }
                    int at = base + h * n + j;
                    out[at] = sum / g + (prev == null ? 0 : decay * prev[at]);
                }
            }
            base += n * kvHeads;
        }
        return out;
    }

    /**
     * The decode state update by physical slot ([numBlocks][blockSize][kvHeads]): held keys j get
     * {@code decay · state + colsum}, or just colsum when {@code j >= prevLens[s]} (null: all have state);
     * other entries are copied.
     */
    public static double[] accumulatePaged(KvLayout l, Object cache, int[] blockTables, int tableStride, int[] kvLens, int[] prevLens, Object queries,
                                           int heads, int[] rowOffsets, int[] positions, float[] weights, float[] lse, double scale, float[] state,
                                           double decay) {
        double[] c = colsum(l, cache, blockTables, tableStride, kvLens, queries, heads, rowOffsets, positions, weights, lse, scale, null, 0);
        double[] out = new double[state.length];
        for (int i = 0; i < state.length; i++) out[i] = state[i];
        int kvHeads = l.kvHeads(), b = l.blockSize(), base = 0;
        for (int s = 0; s < kvLens.length; s++) {
            int n = kvLens[s];
            for (int h = 0; h < kvHeads; h++) {
                for (int j = 0; j < n; j++) {
                    int at = (blockTables[s * tableStride + j / b] * b + j % b) * kvHeads + h;
                    boolean hasPrev = prevLens == null || j < prevLens[s];
                    out[at] = c[base + h * n + j] + (hasPrev ? decay * state[at] : 0);
                }
            }
            base += n * kvHeads;
        }
        return out;
    }

    /** The exact float64 log-sum-exp of every (row, query head) over its causal keys 0 .. positions[r], as [rows][heads]. */
    public static double[] lse(KvLayout l, Object cache, int[] blockTables, int tableStride, int[] kvLens, Object queries, int heads,
                               int[] rowOffsets, int[] positions, double scale) {
        int kvHeads = l.kvHeads(), d = l.headDim(), g = heads / kvHeads, b = l.blockSize();
        double[] out = new double[rowOffsets[kvLens.length] * heads];
        for (int s = 0; s < kvLens.length; s++) {
            for (int r = rowOffsets[s]; r < rowOffsets[s + 1]; r++) {
                for (int qh = 0; qh < heads; qh++) {
                    int h = qh / g;
                    double[] logits = new double[positions[r] + 1];
                    double m = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= positions[r]; j++) {
                        int p = blockTables[s * tableStride + j / b];
                        double dot = 0;
                        for (int i = 0; i < d; i++)
                            dot += PagedEvictionReference.element(queries, l.dtype(), ((long) r * heads + qh) * d + i)
                                    * PagedEvictionReference.element(cache, l.dtype(), l.offset(0, p, j % b, h, i));
                        logits[j] = dot * scale;
                        m = Math.max(m, logits[j]);
                    }
                    double z = 0;
                    for (double x : logits) z += Math.exp(x - m);
                    out[r * heads + qh] = m + Math.log(z);
                }
            }
        }
        return out;
    }
}
