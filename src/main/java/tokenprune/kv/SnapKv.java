package tokenprune.kv;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.Stream;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * SnapKV (methods-kv.md §7): one-shot prefill. Scores = column sums of the last {@code window} query
 * rows' probabilities ({@link AttentionScores} with {@link #windowWeights}; the group mean as kvpress),
 * restricted to the first L − W keys, 1-D pooled (stride 1, padding ⌊k/2⌋; avg counts the zero padding,
 * max pads with −∞), then keep top(capacity − W) of them + all W window tokens. No compression when
 * L < capacity. Kept indices ascending (the official gather order is the top-k order).
 */
public final class SnapKv {
    /** The pooling of §7 step 4. */
    public enum Pooling {
        AVG, MAX
    }

    public static final int DEFAULT_WINDOW = 32, DEFAULT_CAPACITY = 2048, DEFAULT_KERNEL = 5;

    private SnapKv() {
    }

    /** Row weights over a prompt of L rows: 1 for the last {@code window}, 0 otherwise. */
    public static float[] windowWeights(int rows, int window) {
        if (rows < 0 || window < 1) throw new IllegalArgumentException("rows, window: need rows >= 0, window >= 1");
        float[] w = new float[rows];
        for (int q = Math.max(0, rows - window); q < rows; q++) w[q] = 1;
        return w;
    }

    /** 1-D pooling with stride 1 and padding ⌊kernel/2⌋ (SK-1). kernel odd, >= 1. */
    public static float[] pool(float[] v, int kernel, Pooling pooling) {
        if (v == null) throw new IllegalArgumentException("v: must not be null");
        if (kernel < 1 || kernel % 2 == 0) throw new IllegalArgumentException("kernel: must be odd and >= 1, was " + kernel);
        if (pooling == null) throw new IllegalArgumentException("pooling: must not be null");
        int pad = kernel / 2, n = v.length;
        float[] out = new float[n];
        for (int t = 0; t < n; t++) {
            double sum = 0, max = Double.NEGATIVE_INFINITY;
            for (int i = t - pad; i <= t + pad; i++) {
                if (i < 0 || i >= n) continue;  // zero padding (counted by avg), -inf padding for max
                sum += v[i];
                max = Math.max(max, v[i]);
            }
            out[t] = pooling == Pooling.AVG ? (float) (sum / kernel) : (float) max;
        }
        return out;
    }

    /**
     * Kept indices per row (one row per (sequence, KV head) of L window-summed column scores); the pooling runs
     * on the device (or in KvKeepReference on the cpu device).
     */
    public static int[][] keep(Device device, float[] scores, int[] rowOffsets, int window, int capacity, int kernel, Pooling pooling) {
        if (scores == null || rowOffsets == null || rowOffsets.length < 2 || rowOffsets[0] != 0 || rowOffsets[rowOffsets.length - 1] != scores.length)
            throw new IllegalArgumentException("rowOffsets: need >= 2 offsets from 0 to scores.length");
        return KvKeepSelect.selectRows(device, scores, rowOffsets, policy(window, capacity, kernel, pooling));
    }

    /** SnapKV's policy: per KV head, the window protected as the recent set, budget = capacity (L <= capacity keeps all), pooled. */
    public static KvKeepSelect.Policy policy(int window, int capacity, int kernel, Pooling pooling) {
        if (window < 1) throw new IllegalArgumentException("window: must be >= 1, was " + window);
        if (capacity < window) throw new IllegalArgumentException("capacity: must be >= window = " + window + ", was " + capacity);
        return KvKeepSelect.Policy.perHead(0, window, capacity).pooled(kernel, pooling);
    }

    /**
     * Device path from the scores of {@link AttentionScores#computeOnDevice} with {@link #windowWeights} (per
     * sequence [kvHeads][L]): per (sequence, KV head) kept indices into {@code keep} at
     * {@link KvKeepSelect#keepOffsets}, new kv_len per sequence into {@code kvLenOut} (or null). No sync.
     */
    public static Pending keepOnDevice(Workspace ws, Stream stream, DeviceBuffer scores, int[] kvLens, int kvHeads, int window, int capacity, int kernel,
                                       Pooling pooling, DeviceBuffer keep, DeviceBuffer kvLenOut) {
        return KvKeepSelect.selectOnDevice(ws, stream, scores, kvLens, kvHeads, policy(window, capacity, kernel, pooling), keep, kvLenOut);
    }
}
