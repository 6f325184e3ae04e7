package tokenprune.kv;

import java.util.ArrayList;
import java.util.List;

import tokenprune.device.Device;
import tokenprune.methods.Selection;
import tokenprune.methods.TopK;

/**
 * The keep decision shared by the attention-score policies: per row of scores (one row per
 * (sequence, KV head), n tokens), keep everything when n <= budget; otherwise keep the first
 * {@code sinks} tokens, the last {@code recent} tokens and the top {@code budget - sinks - recent} of the
 * tokens between them (TopK: larger score first, ties to the lower index; one launch for all rows).
 * Kept token indices are ascending.
 */
final class KvKeep {
    private KvKeep() {
    }

    static int[][] keep(Device device, float[] scores, int[] rowOffsets, int sinks, int recent, int budget) {
        if (device == null) throw new IllegalArgumentException("device: must not be null");
        if (scores == null) throw new IllegalArgumentException("scores: must not be null");
        if (rowOffsets == null || rowOffsets.length < 2 || rowOffsets[0] != 0 || rowOffsets[rowOffsets.length - 1] != scores.length)
            throw new IllegalArgumentException("rowOffsets: need >= 2 offsets from 0 to scores.length = " + scores.length);
        if (sinks < 0) throw new IllegalArgumentException("sinks: must be >= 0, was " + sinks);
        if (recent < 0) throw new IllegalArgumentException("recent: must be >= 0, was " + recent);
        if ((long) sinks + recent > budget) throw new IllegalArgumentException("budget: must be >= sinks + recent = " + ((long) sinks + recent) + ", was " + budget);
        int rows = rowOffsets.length - 1;
        for (int r = 0; r < rows; r++)
            if (rowOffsets[r + 1] < rowOffsets[r]) throw new IllegalArgumentException("rowOffsets: decrease at row " + r);
        for (int i = 0; i < scores.length; i++)
            if (!Float.isFinite(scores[i])) throw new IllegalArgumentException("scores: index " + i + " is " + scores[i]);
        // rows over budget: their middle candidates, batched into one top-k
        List<Integer> over = new ArrayList<>();
        int candTotal = 0, keepTotal = 0;
        for (int r = 0; r < rows; r++) {
            int n = rowOffsets[r + 1] - rowOffsets[r];
            if (n > budget && budget - sinks - recent > 0) {
                over.add(r);
                candTotal += n - sinks - recent;
                keepTotal += budget - sinks - recent;
            }
        }
        int[][] out = new int[rows][];
        Selection sel = null;
        if (!over.isEmpty()) {
            float[] cand = new float[candTotal];
            int[] candOff = new int[over.size() + 1], keepOff = new int[over.size() + 1];
            for (int i = 0; i < over.size(); i++) {
                int r = over.get(i), n = rowOffsets[r + 1] - rowOffsets[r];
                System.arraycopy(scores, rowOffsets[r] + sinks, cand, candOff[i], n - sinks - recent);
                candOff[i + 1] = candOff[i] + n - sinks - recent;
                keepOff[i + 1] = keepOff[i] + budget - sinks - recent;
            }
            sel = TopK.select(device, cand, candOff, keepOff);
        }
        int at = 0;
        for (int r = 0; r < rows; r++) {
            int n = rowOffsets[r + 1] - rowOffsets[r];
            if (n <= budget) {
                out[r] = range(0, n);
                continue;
            }
            int[] mid = at < over.size() && over.get(at) == r ? sel.kept(at++) : new int[0];
            int[] k = new int[sinks + mid.length + recent];
            for (int i = 0; i < sinks; i++) k[i] = i;
            for (int i = 0; i < mid.length; i++) k[sinks + i] = sinks + mid[i];
            for (int i = 0; i < recent; i++) k[sinks + mid.length + i] = n - recent + i;
            out[r] = k;
        }
        return out;
    }

    static int[] range(int from, int to) {
        int[] r = new int[Math.max(0, to - from)];
        for (int i = 0; i < r.length; i++) r[i] = from + i;
        return r;
    }
}
