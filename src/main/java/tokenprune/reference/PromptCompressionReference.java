package tokenprune.reference;

import tokenprune.kv.KvKeepSelect;
import tokenprune.kv.KvLayout;
import tokenprune.kv.SnapKv;

/**
 * Reference for {@link tokenprune.kv.PromptCompression}: per layer the float64 column sums
 * ({@link AttentionScoresReference#colsum}), rounded to fp32 like the device's scores, the keep lists
 * ({@link KvKeepReference#contiguous}) and the in-place compaction ({@link KvCompactionReference#compact}).
 */
public final class PromptCompressionReference {
    private PromptCompressionReference() {
    }

    /** The compacted caches, and per layer the float64 scores (for tests that check how well separated the selection was). */
    public record Result(Object[] caches, int[] kvLen, double[][] scores) {
    }

    public static Result compress(KvLayout layout, Object[] caches, int[] tables, int stride, int[] kvLens, int heads, Object[] layerQueries,
                                  float[][] layerLse, int[] rowOffsets, int[] positions, float[] weights, double scale, KvKeepSelect.Policy p) {
        int seqs = kvLens.length, kvHeads = layout.kvHeads();
        boolean perHead = p.mode() == KvKeepSelect.Mode.PER_HEAD;
        int[] offsets = new int[seqs + 1], after = new int[seqs];
        for (int s = 0; s < seqs; s++) {
            after[s] = Math.min(kvLens[s], p.budget());
            offsets[s + 1] = offsets[s] + after[s];
        }
        int total = offsets[seqs];
        Object[] out = caches.clone();
        double[][] scores = new double[caches.length][];
        for (int l = 0; l < caches.length; l++) {
            scores[l] = AttentionScoresReference.colsum(layout, caches[l], tables, stride, kvLens, layerQueries[l], heads, rowOffsets, positions, weights,
                    layerLse[l], scale, null, 0);
            float[] f = new float[scores[l].length];
            for (int i = 0; i < f.length; i++) f[i] = (float) scores[l][i];
            int[][] rows = KvKeepReference.contiguous(f, kvLens, kvHeads, !perHead, p.sinks(), p.recent(), p.budget(), p.poolKernel(),
                    p.pooling() == SnapKv.Pooling.MAX, p.ties() == KvKeepSelect.Ties.LATER_KEPT);
            int[] flat = new int[total * (perHead ? kvHeads : 1)];
            int r = 0;
            for (int s = 0; s < seqs; s++)
                for (int h = 0; h < (perHead ? kvHeads : 1); h++, r++) System.arraycopy(rows[r], 0, flat, h * total + offsets[s], rows[r].length);
            out[l] = KvCompactionReference.compact(layout, caches[l], null, tables, stride, null, 0, offsets, flat, perHead, null, 0, 1, false).cache();
        }
        return new Result(out, after, scores);
    }
}
