package tokenprune.kv;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.StatusWord;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * Token-level eviction of the attention-score policies on a paged cache (methods-kv.md §4.4 option
 * (i), H2O-REF §5, StreamingLLM §6, §11): when a sequence holds C + slack tokens, every layer keeps C
 * of them and the kept K, V and score state are compacted in place to the front of the sequence's
 * blocks; the host then releases the blocks behind the new kv_len ({@link #applyTo}, i.e.
 * {@link PagedKvCache#compactSequence} on a {@link PagedKvCache.Granularity#TOKEN} cache).
 *
 * <ul>
 * <li>{@link Policy#ATTENTION} (H2O, A2SF, TOVA): each layer's keep set comes from that layer's score
 * state ({@link AttentionScores#accumulatePagedOnDevice}'s [numBlocks][B][kvHeads]) through
 * {@link KvKeepSelect} — sinks, the most recent tokens and the top of the rest, per KV head (H2O-REF)
 * or shared by the heads; the state moves with its tokens.</li>
 * <li>{@link Policy#STREAMING}: sinks + the most recent, no scores; with a {@link KvCompaction.Rope} the
 * moved keys are re-rotated to their new cache index (StreamingLLM pos-shift on post-RoPE keys: the
 * caller must then rotate new keys at their cache index kv_len, not at the logical length).</li>
 * </ul>
 *
 * <p>Launches per step that compacts: ATTENTION L + 2 (one keep selection per layer, then validation and
 * move for all layers), STREAMING 2; nothing when no sequence is due. One status epoch for the chain,
 * no host synchronisation; which sequences compact and their new kv_len are known on the host
 * ({@link #kvLenAfter}), so the step's later kernels need no sync either. slack = 1 evicts one token
 * per step (H2O as published); slack = B compacts once per B steps and frees one block each time.
 */
public final class TokenEviction {
    /** Where the keep sets come from. */
    public enum Policy {
        ATTENTION, STREAMING
    }

    /**
     * @param keep  sinks, recent, budget C (tokens kept per layer and head), mode, pooling and tie rule of
     *              the selection (A2SF: {@link KvKeepSelect.Ties#LATER_KEPT}, see {@link #a2sf}); for
     *              STREAMING budget must equal sinks + recent and the mode is ignored
     * @param slack how far kv_len grows past C before a compaction (>= 1)
     * @param rope  null, or the re-rotation of moved keys (STREAMING pos-shift)
     */
    public record Options(Policy policy, KvKeepSelect.Policy keep, int slack, KvCompaction.Rope rope) {
        public Options {
            if (policy == null || keep == null) throw new IllegalArgumentException("policy, keep: must not be null");
            if (slack < 1) throw new IllegalArgumentException("slack: must be >= 1, was " + slack);
            if (keep.budget() < 1) throw new IllegalArgumentException("keep: the budget must be >= 1, was " + keep.budget());
            if ((long) keep.budget() + slack > Integer.MAX_VALUE) throw new IllegalArgumentException("slack: budget + slack overflows an int");
            if (policy == Policy.STREAMING && keep.budget() != keep.sinks() + keep.recent())
                throw new IllegalArgumentException("keep: STREAMING keeps sinks + recent = " + (keep.sinks() + keep.recent()) + " tokens, the budget is " + keep.budget());
        }

        /** H2O-REF: per KV head, hh heavy hitters + recent, no sinks. */
        public static Options h2o(int hh, int recent, int slack) {
            return new Options(Policy.ATTENTION, KvKeepSelect.Policy.perHead(0, recent, hh + recent), slack, null);
        }

        /**
         * A2SF-REF (score state decayed by α, {@link AttentionScores#accumulatePagedOnDevice}): per KV head,
         * sinks + recent protected, budget C, equal minima evicted lowest index first.
         */
        public static Options a2sf(int sinks, int recent, int budget, int slack) {
            return new Options(Policy.ATTENTION, KvKeepSelect.Policy.a2sf(sinks, recent, budget), slack, null);
        }

        /** StreamingLLM: start sinks + recent, keys re-rotated by {@code rope} (null: original positions kept, as kvpress). */
        public static Options streaming(int start, int recent, int slack, KvCompaction.Rope rope) {
            return new Options(Policy.STREAMING, KvKeepSelect.Policy.shared(start, recent, start + recent), slack, rope);
        }

        public int budget() {
            return keep.budget();
        }
    }

    /** What was queued: the rejection check and every sequence's kv_len after the step (C where it compacts). */
    public record Queued(Pending pending, int[] kvLen) {
    }

    static final String REJECTION = "layerStates, blockTables: a held score is NaN/Inf or a table entry of a held block lies outside the pool";

    private TokenEviction() {
    }

    /** Whether a sequence holding {@code kvLen} tokens compacts now. */
    public static boolean triggers(int kvLen, Options options) {
        return kvLen >= options.budget() + options.slack();
    }

    /** kv_len after this step: C if it {@link #triggers}, else unchanged. */
    public static int kvLenAfter(int kvLen, Options options) {
        return triggers(kvLen, options) ? options.budget() : kvLen;
    }

    /**
     * Device pointers in, on the workspace's stream, no sync: the compaction of every due sequence of the
     * batch ({@code kvLens[s] >= C + slack}). {@code layerCaches}: one tensor of {@code layout} per layer;
     * {@code layerStates}: one score state per layer (ATTENTION: required, moved with the tokens;
     * STREAMING: null or moved along); {@code blockTables}: seqs rows of {@code tableStride}, unchanged (the
     * kept tokens stay in the row's first blocks). On rejection ({@link Pending#await} throws) nothing has
     * been written.
     */
    public static Queued evictOnDevice(KvLayout layout, DeviceBuffer[] layerCaches, DeviceBuffer[] layerStates, DeviceBuffer blockTables, int tableStride,
                                       int[] kvLens, Options options, Workspace ws, Stream stream) {
        if (layout == null || layerCaches == null || options == null || ws == null || stream == null)
            throw new IllegalArgumentException("layout, layerCaches, options, ws, stream: must not be null");
        ws.requireStream(stream);
        if (kvLens == null || kvLens.length < 1) throw new IllegalArgumentException("kvLens: need >= 1 sequence");
        boolean attention = options.policy() == Policy.ATTENTION;
        int layers = layerCaches.length, seqs = kvLens.length, kvHeads = layout.kvHeads();
        if (attention && (layerStates == null || layerStates.length != layers))
            throw new IllegalArgumentException("layerStates: ATTENTION needs one score state per layer (" + layers + ")");
        int[] due = new int[seqs], counts = new int[seqs], after = new int[seqs];
        for (int s = 0; s < seqs; s++) {
            if (kvLens[s] < 0) throw new IllegalArgumentException("kvLens: sequence " + s + " is " + kvLens[s]);
            boolean t = triggers(kvLens[s], options);
            due[s] = t ? kvLens[s] : 0;
            counts[s] = t ? options.budget() : 0;
            after[s] = kvLenAfter(kvLens[s], options);
        }
        int[] offsets = prefix(counts);
        int total = offsets[seqs];
        boolean perHead = attention && !options.keep().shared();
        long perLayer = (long) total * (perHead ? kvHeads : 1);
        StatusWord status = ws.status();
        if (total == 0) {
            int epoch = status.nextEpoch(stream);
            return new Queued(Pending.of(status, epoch, stream, REJECTION), after);
        }
        if (attention) {
            for (DeviceBuffer st : layerStates) KvKeepSelect.checkPaged(layout, st, blockTables, tableStride, due);
        } else if (layerStates != null && layerStates.length != layers) {
            throw new IllegalArgumentException("layerStates: " + layerStates.length + " states for " + layers + " layers");
        }
        if (perLayer * (attention ? layers : 1) > Integer.MAX_VALUE) throw new IllegalArgumentException("kvLens: more than 2^31 - 1 kept indices in one call");
        // every check (the compaction's too) before any kernel is queued
        DeviceBuffer keep = attention ? ws.scratch("tokenEviction.keep", 4L * perLayer * layers)
                : ws.ints("tokenEviction.keep", streamingKeep(due, counts, options.keep().sinks()), stream);
        KvCompaction.KeepSets sets = new KvCompaction.KeepSets(offsets, keep, perHead, attention, null);
        KvCompaction.Launch compaction = KvCompaction.plan(layout, layerCaches, layerStates, blockTables, tableStride, null, 0, kvLens, sets, options.rope());
        int epoch = status.nextEpoch(stream);
        if (attention) {
            int[] seqOffsets = KvKeepSelect.seqOffsets(due);
            int[] rowStarts = new int[perHead ? seqs * kvHeads : seqs];
            for (int s = 0; s < seqs; s++) {
                if (perHead) for (int h = 0; h < kvHeads; h++) rowStarts[s * kvHeads + h] = h * total + offsets[s];
                else rowStarts[s] = offsets[s];
            }
            for (int l = 0; l < layers; l++)
                KvKeepSelect.launch(ws, stream, layerStates[l], seqOffsets, kvHeads, blockTables, tableStride, layout.blockSize(), layout.numBlocks(),
                        options.keep(), keep.slice(4L * perLayer * l, 4L * perLayer), rowStarts, null, status.buffer(), epoch);
        }
        compaction.enqueue(ws, stream, status.buffer(), epoch);
        return new Queued(Pending.of(status, epoch, stream, REJECTION), after);
    }

    /** The kept indices of the due sequences under STREAMING: [0, sinks) then the most recent, in sequence order. */
    static int[] streamingKeep(int[] due, int[] counts, int sinks) {
        int total = 0;
        for (int c : counts) total += c;
        int[] keep = new int[total];
        int at = 0;
        for (int s = 0; s < due.length; s++) {
            if (counts[s] == 0) continue;
            int recent = counts[s] - sinks;
            for (int t = 0; t < sinks; t++) keep[at++] = t;
            for (int t = due[s] - recent; t < due[s]; t++) keep[at++] = t;
        }
        return keep;
    }

    static int[] prefix(int[] counts) {
        int[] o = new int[counts.length + 1];
        for (int i = 0; i < counts.length; i++) o[i + 1] = o[i] + counts[i];
        return o;
    }

    /**
     * Mirrors a step into the host bookkeeping: every sequence whose kv_len drops compacts
     * ({@link PagedKvCache#compactSequence}); the released blocks wait for {@link PagedKvCache#reclaimEvicted}
     * (call it after the step's kernels). Checks all sequences before changing any.
     */
    public static void applyTo(PagedKvCache cache, int[] ids, int[] kvLenAfter) {
        if (cache == null || ids == null || kvLenAfter == null || ids.length != kvLenAfter.length)
            throw new IllegalArgumentException("cache, ids, kvLenAfter: non-null, ids and kvLenAfter of equal length");
        if (cache.granularity() != PagedKvCache.Granularity.TOKEN) throw new IllegalArgumentException("cache: needs TOKEN granularity (PagedKvCache.forTokenEviction)");
        for (int s = 0; s < ids.length; s++) {
            int kv = cache.kvLen(ids[s]);
            if (kvLenAfter[s] > kv) throw new IllegalArgumentException("kvLenAfter: sequence " + ids[s] + " would grow from " + kv + " to " + kvLenAfter[s]);
            if (kvLenAfter[s] < Math.min(cache.budget(), kv))
                throw new IllegalArgumentException("kvLenAfter: sequence " + ids[s] + " would drop below the cache's budget " + cache.budget() + " (options and cache disagree)");
        }
        for (int s = 0; s < ids.length; s++)
            if (kvLenAfter[s] < cache.kvLen(ids[s])) cache.compactSequence(ids[s], kvLenAfter[s]);
    }

    /** The new caches, states and kv_len of a host-array call. */
    public record Result(Object[] caches, float[][] states, int[] kvLen) {
    }

    /**
     * Host arrays in, the compacted copies out (inputs unchanged). {@code caches}: per layer float[] (F32) or
     * short[] raw bits of {@code layout}; {@code states}: per layer numBlocks × B × kvHeads floats (null for
     * STREAMING without state). Throws IllegalArgumentException on bad shapes or a device rejection.
     */
    public static Result evict(KernelDevice device, KvLayout layout, Object[] caches, float[][] states, int[] blockTables, int tableStride, int[] kvLens,
                               Options options) {
        if (device == null || layout == null || caches == null || blockTables == null)
            throw new IllegalArgumentException("device, layout, caches, blockTables: must not be null");
        for (Object c : caches) KvTokenScores.checkHostCache(layout, c);
        long slots = (long) layout.numBlocks() * layout.blockSize() * layout.kvHeads();
        if (states != null) {
            if (states.length != caches.length) throw new IllegalArgumentException("states: " + states.length + " states for " + caches.length + " layers");
            for (float[] st : states) if (st == null || st.length != slots) throw new IllegalArgumentException("states: each needs numBlocks x B x kvHeads floats");
        }
        if (kvLens == null || blockTables.length != (long) kvLens.length * tableStride)
            throw new IllegalArgumentException("blockTables: must hold kvLens.length rows of tableStride entries");
        Stream stream = device.defaultStream();
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer tables = device.alloc(4L * Math.max(1, blockTables.length));
             HostLayers c = HostLayers.caches(device, layout, caches, stream);
             HostLayers st = HostLayers.states(device, states, stream)) {
            if (blockTables.length > 0) device.upload(blockTables, tables, stream);
            Queued q = evictOnDevice(layout, c.buffers, st != null ? st.buffers : null, tables, tableStride, kvLens, options, ws, stream);
            q.pending().await();
            return new Result(c.downloadCaches(layout, stream), st != null ? st.downloadStates((int) slots, stream) : null, q.kvLen());
        }
    }
}
