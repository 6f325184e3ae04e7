package tokenprune.reference;

import tokenprune.kv.KvLayout;
import tokenprune.kv.TokenEviction;

/**
 * Reference for {@link TokenEviction}: per layer the keep lists of every due sequence (kv_len >= C +
 * slack) from {@link KvKeepReference#paged} (ATTENTION) or sinks + the most recent (STREAMING), then
 * {@link KvCompactionReference#compact} in place, K, V and state.
 */
public final class TokenEvictionReference {
    private TokenEvictionReference() {
    }

    public static TokenEviction.Result evict(KvLayout layout, Object[] caches, float[][] states, int[] tables, int stride, int[] kvLens,
                                             TokenEviction.Options o) {
        int seqs = kvLens.length, heads = layout.kvHeads(), c = o.budget();
        boolean attention = o.policy() == TokenEviction.Policy.ATTENTION, perHead = attention && o.keep().mode() == tokenprune.kv.KvKeepSelect.Mode.PER_HEAD;
        int[] due = new int[seqs], offsets = new int[seqs + 1], after = new int[seqs];
        for (int s = 0; s < seqs; s++) {
            boolean t = TokenEviction.triggers(kvLens[s], o);
            due[s] = t ? kvLens[s] : 0;
            offsets[s + 1] = offsets[s] + (t ? c : 0);
            after[s] = t ? c : kvLens[s];
        }
        int total = offsets[seqs];
        Object[] outCaches = caches.clone();
        float[][] outStates = states != null ? states.clone() : null;
        if (total == 0) return new TokenEviction.Result(outCaches, outStates, after);
        int rotary = o.rope() != null ? o.rope().rotaryDim() : 0;
        double base = o.rope() != null ? o.rope().base() : 1;
        boolean gptj = o.rope() != null && o.rope().style() == tokenprune.kv.KvCompaction.RopeStyle.GPTJ;
        for (int l = 0; l < caches.length; l++) {
            int[] flat = new int[total * (perHead ? heads : 1)];
            if (attention) {
                int[][] rows = KvKeepReference.paged(states[l], layout.numBlocks(), layout.blockSize(), heads, tables, stride, due, !perHead,
                        o.keep().sinks(), o.keep().recent(), c, o.keep().poolKernel(), o.keep().pooling() == tokenprune.kv.SnapKv.Pooling.MAX,
                        o.keep().ties() == tokenprune.kv.KvKeepSelect.Ties.LATER_KEPT);
                int r = 0;
                for (int s = 0; s < seqs; s++)
                    for (int h = 0; h < (perHead ? heads : 1); h++, r++)
                        System.arraycopy(rows[r], 0, flat, h * total + offsets[s], rows[r].length);
            } else {
                for (int s = 0; s < seqs; s++) {
                    if (due[s] == 0) continue;
                    int at = offsets[s], sinks = o.keep().sinks();
                    for (int t = 0; t < sinks; t++) flat[at++] = t;
                    for (int t = due[s] - (c - sinks); t < due[s]; t++) flat[at++] = t;
                }
            }
            KvCompactionReference.Result r = KvCompactionReference.compact(layout, caches[l], states != null ? states[l] : null, tables, stride, null, 0,
                    offsets, flat, perHead, null, rotary, base, gptj);
            outCaches[l] = r.cache();
            if (outStates != null) outStates[l] = r.state();
        }
        return new TokenEviction.Result(outCaches, outStates, after);
    }
}
