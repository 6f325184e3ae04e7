package tokenprune.kv;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.Stream;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * A2SF (methods-kv.md §4, A2SF-REF): accumulative attention with a forgetting factor α,
 * A ← α·A + S_new each step (α = 1 is H2O, α = 0 the last row). On the device: {@link AttentionScores}
 * with {@code prev = A, decay = α} (decode), or one shot over a prompt with {@link #oneShotWeights}.
 * Selection: protect the first {@code sinks} and last {@code recent} tokens, keep the top of the rest;
 * of equal scores the later token stays (evict argmin, ties to the lowest slot index, as {@link #evictOne}:
 * {@link KvKeepSelect.Policy#a2sf}).
 */
public final class A2sf {
    private A2sf() {
    }

    /** The one-shot prefill weights of L rows: w_q = α^(L−1−q) (newest row weight 1; A2SF-4). */
    public static float[] oneShotWeights(int rows, float alpha) {
        checkAlpha(alpha);
        if (rows < 0) throw new IllegalArgumentException("rows: must be >= 0, was " + rows);
        float[] w = new float[rows];
        for (int q = 0; q < rows; q++) w[q] = (float) Math.pow(alpha, rows - 1 - q);
        return w;
    }

    /**
     * One step of the recurrence on the host: {@code row} covers the n held tokens then any new ones
     * (row.length >= scores.length); held tokens get α·A + p, new ones their probability p.
     */
    public static float[] update(float[] scores, float[] row, float alpha) {
        checkAlpha(alpha);
        if (scores == null || row == null) throw new IllegalArgumentException("scores, row: must not be null");
        if (row.length < scores.length) throw new IllegalArgumentException("row: shorter (" + row.length + ") than scores (" + scores.length + ")");
        float[] a = new float[row.length];
        for (int t = 0; t < row.length; t++) a[t] = t < scores.length ? alpha * scores[t] + row[t] : row[t];
        return a;
    }

    /** Kept indices (ascending) per row under a token budget, sinks and recent window protected, equal minima evicted lowest index first. */
    public static int[][] keep(Device device, float[] scores, int[] rowOffsets, int sinks, int recent, int budget) {
        return KvKeepSelect.selectRows(device, scores, rowOffsets, KvKeepSelect.Policy.a2sf(sinks, recent, budget));
    }

    /**
     * Device path from the scores of {@link AttentionScores#computeOnDevice} (one-shot prefill with
     * {@link #oneShotWeights}): per (sequence, KV head) kept indices into {@code keep} at
     * {@link KvKeepSelect#keepOffsets}, new kv_len per sequence into {@code kvLenOut} (or null). No sync.
     */
    public static Pending keepOnDevice(Workspace ws, Stream stream, DeviceBuffer scores, int[] kvLens, int kvHeads, int sinks, int recent, int budget,
                                       DeviceBuffer keep, DeviceBuffer kvLenOut) {
        return KvKeepSelect.selectOnDevice(ws, stream, scores, kvLens, kvHeads, KvKeepSelect.Policy.a2sf(sinks, recent, budget), keep, kvLenOut);
    }

    /**
     * A2SF-REF decode: the decision straight from the paged state that {@link AttentionScores#accumulatePagedOnDevice}
     * updates with decay α (chain the two on one stream; nothing leaves the device). Outputs as in {@link #keepOnDevice}.
     */
    public static Pending keepPagedOnDevice(Workspace ws, Stream stream, KvLayout layout, DeviceBuffer state, DeviceBuffer blockTables, int tableStride,
                                            int[] kvLens, int sinks, int recent, int budget, DeviceBuffer keep, DeviceBuffer kvLenOut) {
        return KvKeepSelect.selectPagedOnDevice(ws, stream, layout, state, blockTables, tableStride, kvLens, KvKeepSelect.Policy.a2sf(sinks, recent, budget),
                keep, kvLenOut);
    }

    /** Token to evict from one row (argmin over [sinks, n − recent), ties to the lowest index), or −1 if none is a candidate. */
    public static int evictOne(float[] scores, int sinks, int recent) {
        if (scores == null) throw new IllegalArgumentException("scores: must not be null");
        if (sinks < 0 || recent < 0) throw new IllegalArgumentException("sinks, recent: must be >= 0");
        int best = -1;
        for (int t = sinks; t < scores.length - recent; t++)
            if (best < 0 || scores[t] < scores[best]) best = t;
        return best;
    }

    /** Simulation mode (A2SF-5): a probability row restricted to the kept keys, renormalised to sum 1. */
    public static float[] renormalize(float[] row, int[] kept) {
        double sum = 0;
        for (int t : kept) sum += row[t];
        if (!(sum > 0)) throw new IllegalArgumentException("row: the kept keys' probabilities sum to " + sum);
        float[] r = new float[kept.length];
        for (int i = 0; i < kept.length; i++) r[i] = (float) (row[kept[i]] / sum);
        return r;
    }

    static void checkAlpha(float alpha) {
        if (!(alpha >= 0 && alpha <= 1)) throw new IllegalArgumentException("alpha: must be in [0, 1], was " + alpha);
    }
}
