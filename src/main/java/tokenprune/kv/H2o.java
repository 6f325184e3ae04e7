package tokenprune.kv;

import tokenprune.device.Device;

/**
 * H2O (methods-kv.md §5, H2O-REF): the score of a token is the running SUM of the attention
 * probabilities it received (group mean over the GQA group: {@link AttentionScores} with weight 1 and
 * decay 1); when a row holds n > hh + recent tokens keep {@code topk(scores[0 .. n-recent), hh)} ∪ the last
 * {@code recent} tokens. An evicted token never returns (the caller gathers the kept scores).
 */
public final class H2o {
    private H2o() {
    }

    /** Kept token indices (ascending) of every row of scores (row r = scores[rowOffsets[r] .. rowOffsets[r+1])). */
    public static int[][] keep(Device device, float[] scores, int[] rowOffsets, int hh, int recent) {
        if (hh < 0) throw new IllegalArgumentException("hh: must be >= 0, was " + hh);
        return KvKeep.keep(device, scores, rowOffsets, 0, recent, hh + recent);
    }

    /** One row. */
    public static int[] keep(Device device, float[] scores, int hh, int recent) {
        if (scores == null) throw new IllegalArgumentException("scores: must not be null");
        return keep(device, scores, new int[] {0, scores.length}, hh, recent)[0];
    }

    /** Host accumulation of one new probability row: scores of the n held tokens + the row over n + k tokens (new ones get their probability). */
    public static float[] accumulate(float[] scores, float[] row) {
        return A2sf.update(scores, row, 1.0f);
    }

    /** The scores of the kept tokens, in kept order (what the next step accumulates into). */
    public static float[] gather(float[] scores, int[] kept) {
        float[] g = new float[kept.length];
        for (int i = 0; i < kept.length; i++) g[i] = scores[kept[i]];
        return g;
    }

    /**
     * kvpress ObservedAttention (H2O-5): one-shot prefill column sums of L rows divided by the number of
     * rows that could see each token (L − i), i.e. a mean attention.
     */
    public static float[] observedMean(float[] columnSums) {
        int l = columnSums.length;
        float[] m = new float[l];
        for (int i = 0; i < l; i++) m[i] = (float) ((double) columnSums[i] / (l - i));
        return m;
    }
}
