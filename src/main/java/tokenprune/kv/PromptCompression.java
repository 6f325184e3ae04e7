package tokenprune.kv;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.Stream;
import tokenprune.kernels.StatusWord;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * One-shot prompt compression with the attention-score policies on a paged cache (methods-kv.md §4.2:
 * the A2SF repository's real-drop mode, §7 SnapKV, §10.1 kvpress: prefill attention stays exact and only
 * what is stored is compressed): after a batch of prompts has been written to the cache, every layer
 * scores its prompt tokens by weighted column sums of a few query rows' attention probabilities
 * ({@link AttentionScores}: SnapKV the last W rows with weight 1, A2SF all rows with α^(L−1−q), H2O all
 * rows with 1), keeps sinks + the most recent + the top of the rest per KV head or shared
 * ({@link KvKeepSelect}: pooling for SnapKV, the A2SF tie rule), and the kept K/V are compacted in place
 * to the front of each prompt's blocks ({@link KvCompaction}). Each layer keeps its own set; every
 * layer and head of a prompt keeps the same count, so kv_len (min(L, C)) and the block table stay shared
 * and the blocks behind it can be released ({@link TokenEviction#applyTo} on a
 * {@link PagedKvCache#forTokenEviction} cache with the same budget C, or the caller's own pool).
 *
 * <p>Launches: 2 per layer (scores, keep) + 2 (validation and move of all layers), one status epoch, no
 * host synchronisation. Prompts at or under the budget keep everything (their lists are the identity
 * and nothing moves).
 */
public final class PromptCompression {
    /** What was queued: the rejection check and every prompt's kv_len after it (min(L, C)). */
    public record Queued(Pending pending, int[] kvLen) {
    }

    static final String REJECTION = "queries, lse, layerCaches, blockTables: a query, key or LSE is NaN/Inf, a score overflows, or a table entry "
            + "lies outside the pool";

    private PromptCompression() {
    }

    /**
     * Device pointers in, on the workspace's stream, no sync.
     *
     * @param layerCaches  one tensor of {@code layout} per layer, compacted in place
     * @param blockTables  prompts' block tables ([seqs][tableStride] int32), unchanged
     * @param kvLens       tokens held per prompt (its length L)
     * @param heads        query heads (a multiple of layout.kvHeads(): GQA group mean)
     * @param layerQueries per layer the query rows, packed [rows][heads][headDim] in the cache dtype
     * @param layerLse     per layer the natural-log LSE of those rows over their causal keys, [rows][heads] fp32
     * @param rowOffsets   seqs + 1 offsets: the rows of each prompt
     * @param positions    per row the key index the query sits at (SnapKV's window: L − W .. L − 1)
     * @param weights      per row weight (null: 1), e.g. {@link A2sf#oneShotWeights}
     * @param scale        the attention scale (1/√D)
     * @param policy       sinks, recent, budget C, mode, pooling and tie rule of the keep decision
     */
    public static Queued compressOnDevice(KvLayout layout, DeviceBuffer[] layerCaches, DeviceBuffer blockTables, int tableStride, int[] kvLens, int heads,
                                          DeviceBuffer[] layerQueries, DeviceBuffer[] layerLse, int[] rowOffsets, int[] positions, DeviceBuffer weights,
                                          float scale, KvKeepSelect.Policy policy, Workspace ws, Stream stream) {
        if (layout == null || layerCaches == null || layerQueries == null || layerLse == null || policy == null || ws == null || stream == null)
            throw new IllegalArgumentException("layout, layerCaches, layerQueries, layerLse, policy, ws, stream: must not be null");
        ws.requireStream(stream);
        int layers = layerCaches.length, kvHeads = layout.kvHeads(), d = layout.headDim();
        if (layers < 1) throw new IllegalArgumentException("layerCaches: need >= 1 layer");
        if (layerQueries.length != layers || layerLse.length != layers)
            throw new IllegalArgumentException("layerQueries, layerLse: need one buffer per layer (" + layers + ")");
        if (kvLens == null || kvLens.length < 1) throw new IllegalArgumentException("kvLens: need >= 1 prompt");
        if (policy.budget() < 1) throw new IllegalArgumentException("policy: the budget must be >= 1, was " + policy.budget());
        int seqs = kvLens.length;
        int[] counts = new int[seqs], after = new int[seqs];
        long scoreFloats = 0;
        for (int s = 0; s < seqs; s++) {
            if (kvLens[s] < 0) throw new IllegalArgumentException("kvLens: prompt " + s + " is " + kvLens[s]);
            counts[s] = Math.min(kvLens[s], policy.budget());
            after[s] = counts[s];
            scoreFloats += (long) kvLens[s] * kvHeads;
        }
        int[] offsets = TokenEviction.prefix(counts);
        int total = offsets[seqs];
        boolean perHead = !policy.shared();
        long perLayer = (long) total * (perHead ? kvHeads : 1);
        if (perLayer * layers > Integer.MAX_VALUE) throw new IllegalArgumentException("kvLens: more than 2^31 - 1 kept indices in one call");

        // every check before anything is queued
        DeviceBuffer scores = ws.scratch("promptCompression.scores", Math.max(4, 4 * scoreFloats));
        AttentionScores.Launch[] scoring = new AttentionScores.Launch[layers];
        for (int l = 0; l < layers; l++)
            scoring[l] = AttentionScores.planCompute(ws, stream, layout, layerCaches[l], blockTables, tableStride, kvLens, layerQueries[l], (long) heads * d,
                    d, heads, rowOffsets, positions, weights, layerLse[l], heads, 1, scale, scores);
        DeviceBuffer keep = ws.scratch("promptCompression.keep", Math.max(4, 4L * perLayer * layers));
        KvCompaction.KeepSets sets = new KvCompaction.KeepSets(offsets, keep, perHead, true, null);
        KvCompaction.Launch compaction = KvCompaction.plan(layout, layerCaches, null, blockTables, tableStride, null, 0, kvLens, sets, null);

        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        if (total > 0) {
            int[] seqOffsets = KvKeepSelect.seqOffsets(kvLens);
            int[] rowStarts = new int[perHead ? seqs * kvHeads : seqs];
            for (int s = 0; s < seqs; s++) {
                if (perHead) for (int h = 0; h < kvHeads; h++) rowStarts[s * kvHeads + h] = h * total + offsets[s];
                else rowStarts[s] = offsets[s];
            }
            for (int l = 0; l < layers; l++) {
                scoring[l].enqueue(epoch);
                KvKeepSelect.launch(ws, stream, scores, seqOffsets, kvHeads, null, 0, 1, 0, policy, keep.slice(4L * perLayer * l, 4L * perLayer), rowStarts,
                        null, status.buffer(), epoch);
            }
            compaction.enqueue(ws, stream, status.buffer(), epoch);
        }
        return new Queued(Pending.of(status, epoch, stream, REJECTION), after);
    }
}
