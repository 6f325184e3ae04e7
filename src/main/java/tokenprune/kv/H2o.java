package tokenprune.kv;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.Stream;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

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
        return KvKeepSelect.selectRows(device, scores, rowOffsets, policy(hh, recent));
    }

    /** H2O-REF's policy: per KV head, no sinks, budget hh + recent. */
    public static KvKeepSelect.Policy policy(int hh, int recent) {
        if (hh < 0) throw new IllegalArgumentException("hh: must be >= 0, was " + hh);
        if (recent < 0) throw new IllegalArgumentException("recent: must be >= 0, was " + recent);
        if ((long) hh + recent > Integer.MAX_VALUE) throw new IllegalArgumentException("hh: hh + recent overflows an int");
        return KvKeepSelect.Policy.perHead(0, recent, hh + recent);
    }

    /**
     * Device path from the scores of {@link AttentionScores#computeOnDevice} (per sequence [kvHeads][n]): kept
     * indices per (sequence, KV head) into {@code keep} at {@link KvKeepSelect#keepOffsets}, new kv_len per
     * sequence into {@code kvLenOut} (or null). No sync.
     */
    public static Pending keepOnDevice(Workspace ws, Stream stream, DeviceBuffer scores, int[] kvLens, int kvHeads, int hh, int recent,
                                       DeviceBuffer keep, DeviceBuffer kvLenOut) {
        return KvKeepSelect.selectOnDevice(ws, stream, scores, kvLens, kvHeads, policy(hh, recent), keep, kvLenOut);
    }

    /**
     * Device path from the paged decode state that {@link AttentionScores#accumulatePagedOnDevice} keeps (one
     * float per physical slot and KV head, read through {@code blockTables}): chain the two on one stream and
     * nothing leaves the device. Outputs as in {@link #keepOnDevice}.
     */
    public static Pending keepPagedOnDevice(Workspace ws, Stream stream, KvLayout layout, DeviceBuffer state, DeviceBuffer blockTables, int tableStride,
                                            int[] kvLens, int hh, int recent, DeviceBuffer keep, DeviceBuffer kvLenOut) {
        return KvKeepSelect.selectPagedOnDevice(ws, stream, layout, state, blockTables, tableStride, kvLens, policy(hh, recent), keep, kvLenOut);
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
