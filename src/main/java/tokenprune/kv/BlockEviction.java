package tokenprune.kv;


import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.KvBlockEvictKernel;
import tokenprune.kernels.PagedEvictionKernel;
import tokenprune.kernels.StatusWord;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * Block-granular decode-time eviction for the attention-score policies on the paged cache
 * (methods-kv.md §4.4 option (ii), H2O-REF §5 at block granularity, StreamingLLM's paged variant §6
 * SL-5): memory is freed a whole block at a time, and only when every layer drops the same block.
 *
 * <p>Trigger (PE-REF §2.3.2 step 5, judged on the device from the state alone): the sequence's newest
 * block is full (kv_len a positive multiple of B), its logical length exceeds the budget C, and
 * kv_len − B >= C. Candidates: logical blocks {@code sinkBlocks .. n_blocks − 1 − recentBlocks}.
 * ATTENTION: victim = argmin of the block score, the mean of the per-slot A2SF / H2O state
 * ({@link AttentionScores#accumulatePagedOnDevice}: [numBlocks][B][kvHeads] fp32 per layer) over the
 * block's B slots and KV heads, then over the layers; ties to the lowest index. STREAMING: victim =
 * block {@code sinkBlocks} (SL-5 with the defaults: block 1). The victim leaves the block table (tail
 * shifts left) and kv_len −= B on the device; the victims and freed physical blocks come back per
 * sequence (−1 = none) for the host's {@link PagedKvCache} ({@link #applyTo}).
 *
 * <p>Two launches, no host round trip: tp_kv_block_victim (the decision for the whole batch) and
 * PagedEviction's own tp_pe_decode_apply with no score rows (layers = 0). The state of an evicted
 * block's slots becomes stale; when the block is reused, the next state update must treat its slots
 * as new ({@code prevLens} of {@link AttentionScores#accumulatePagedOnDevice} = the kv_len before the
 * step's appended tokens).
 */
public final class BlockEviction {
    private BlockEviction() {
    }

    /**
     * One decode step's inputs as host arrays: {@code blockTables} (seqs × tableStride physical ids,
     * padding ignored), {@code kvLen}, {@code logicalLen} (seqs each) and, for ATTENTION, one state per
     * layer ({@code layerStates[l]}: numBlocks × B × kvHeads floats; may be empty for STREAMING).
     */
    public record Batch(int seqs, int blockSize, long budget, int numBlocks, int[] blockTables, int tableStride, int[] kvLen, long[] logicalLen,
                        int kvHeads, float[][] layerStates) {
        public Batch {
            if (seqs < 1) throw new IllegalArgumentException("seqs: must be >= 1, was " + seqs);
            if (blockSize < 1) throw new IllegalArgumentException("blockSize: must be >= 1, was " + blockSize);
            if (budget < 0) throw new IllegalArgumentException("budget: must be >= 0, was " + budget);
            if (numBlocks < 1) throw new IllegalArgumentException("numBlocks: must be >= 1, was " + numBlocks);
            if (tableStride < 1) throw new IllegalArgumentException("tableStride: must be >= 1, was " + tableStride);
            if (kvHeads < 1) throw new IllegalArgumentException("kvHeads: must be >= 1, was " + kvHeads);
            if (blockTables == null || kvLen == null || logicalLen == null || layerStates == null)
                throw new IllegalArgumentException("blockTables, kvLen, logicalLen, layerStates: must not be null");
            if (blockTables.length != (long) seqs * tableStride)
                throw new IllegalArgumentException("blockTables: needs seqs x tableStride = " + (long) seqs * tableStride + " ints, has " + blockTables.length);
            if (kvLen.length != seqs || logicalLen.length != seqs) throw new IllegalArgumentException("kvLen, logicalLen: need seqs = " + seqs + " entries each");
            for (int s = 0; s < seqs; s++) if (kvLen[s] < 0) throw new IllegalArgumentException("kvLen: entry " + s + " is negative");
            long slots = (long) numBlocks * blockSize * kvHeads;
            for (int l = 0; l < layerStates.length; l++)
                if (layerStates[l] == null || layerStates[l].length != slots)
                    throw new IllegalArgumentException("layerStates: layer " + l + " needs numBlocks x blockSize x kvHeads = " + slots + " floats");
        }

        public int layers() {
            return layerStates.length;
        }
    }

    /** The outcome: per sequence the evicted logical block and its physical id (−1 = none), and the updated tables (−1 behind a shortened row) and kv_len. */
    public record Decision(int[] victims, int[] freed, int[] blockTables, int[] kvLen) {
    }

    /** The device state of a batch (caller-owned buffers: tables seqs × tableStride int32, kvLen int32, logicalLen int64). */
    public record DeviceState(int seqs, int blockSize, long budget, int numBlocks, DeviceBuffer blockTables, int tableStride, DeviceBuffer kvLen,
                              DeviceBuffer logicalLen) {
        public DeviceState {
            if (seqs < 1 || blockSize < 1 || numBlocks < 1 || tableStride < 1)
                throw new IllegalArgumentException("seqs, blockSize, numBlocks, tableStride: must be >= 1");
            if (budget < 0) throw new IllegalArgumentException("budget: must be >= 0, was " + budget);
            if (blockTables == null || kvLen == null || logicalLen == null) throw new IllegalArgumentException("blockTables, kvLen, logicalLen: must not be null");
            if (blockTables.bytes() < 4L * seqs * tableStride) throw new IllegalArgumentException("blockTables: smaller than seqs x tableStride ints");
            if (kvLen.bytes() < 4L * seqs) throw new IllegalArgumentException("kvLen: needs seqs ints");
            if (logicalLen.bytes() < 8L * seqs) throw new IllegalArgumentException("logicalLen: needs seqs int64");
        }
    }

    static final String REJECTION = "layerStates, blockTables, kvLen: a candidate block's score state is NaN/Inf, a candidate's physical block lies "
            + "outside the pool, or a triggered sequence's kv_len needs more blocks than the table holds";

    /** Whether a sequence in this state gives up a block now (the device's trigger; the victim may still be none if no candidate exists). */
    public static boolean triggers(int kvLen, long logicalLen, long budget, int blockSize) {
        return kvLen >= blockSize && kvLen % blockSize == 0 && logicalLen > budget && (long) kvLen - blockSize >= budget;
    }

    /**
     * The kv_len a sequence will have after this step's decision, known on the host without waiting
     * for the device (which block goes is the device's business, whether one goes is not): kv_len − B
     * if it {@link #triggers} and has a candidate, else kv_len. What the step's later kernels (e.g.
     * {@link AttentionScores#accumulatePagedOnDevice}'s kvLens) need, so no sync is required between them.
     */
    public static int kvLenAfter(int kvLen, long logicalLen, long budget, int blockSize, BlockEvictionOptions options) {
        if (options == null) throw new IllegalArgumentException("options: must not be null");
        if (blockSize < 1) throw new IllegalArgumentException("blockSize: must be >= 1, was " + blockSize);
        if (!triggers(kvLen, logicalLen, budget, blockSize)) return kvLen;
        int nb = kvLen / blockSize;
        return options.sinkBlocks() <= nb - 1 - options.recentBlocks() ? kvLen - blockSize : kvLen;
    }

    /**
     * Device pointers in, on the caller's stream, no sync: queues the decision and its application.
     * {@code layerStates}: ATTENTION, one state per layer (>= numBlocks × B × kvHeads floats each; slices
     * of one buffer are fine); STREAMING, ignored (may be null). {@code victims}, {@code freed}: seqs ints
     * out. The layers' addresses are uploaded through the workspace only when they change. On rejection
     * ({@link Pending#await} throws) neither the state nor the outputs are changed.
     */
    public static Pending decideOnDevice(DeviceState state, DeviceBuffer[] layerStates, int kvHeads, BlockEvictionOptions options, DeviceBuffer victims,
                                         DeviceBuffer freed, Workspace ws, Stream stream) {
        if (state == null || options == null || victims == null || freed == null || ws == null || stream == null)
            throw new IllegalArgumentException("state, options, victims, freed, ws, stream: must not be null");
        ws.requireStream(stream);
        int seqs = state.seqs();
        if (victims.bytes() < 4L * seqs || freed.bytes() < 4L * seqs) throw new IllegalArgumentException("victims, freed: need seqs ints each");
        boolean attention = options.policy() == BlockEvictionOptions.Policy.ATTENTION;
        int layers = attention ? checkLayerStates(layerStates, kvHeads, state) : 0;
        KernelDevice device = ws.device();
        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        DeviceBuffer stage = ws.scratch("blockEviction.stage", 8L * seqs);
        // tp_pe_decode_apply shifts the rows of sequences with fill_at >= 0 whose stage names a victim: all rows qualify, stage decides
        DeviceBuffer applyRows = ws.ints("blockEviction.applyRows", new int[seqs], stream);
        DeviceBuffer addresses = stage;
        if (attention) {
            long[] a = new long[layers];
            for (int l = 0; l < layers; l++) a[l] = layerStates[l].address();
            addresses = ws.ints("blockEviction.layerStates", PagedEviction.int64Words(a), stream);
        }
        KvBlockEvictKernel.launchVictim(device, stream, addresses, layers, attention ? kvHeads : 1, state.blockSize(), seqs, state.budget(),
                options.sinkBlocks(), options.recentBlocks(), options.policy().code(), state.blockTables(), state.tableStride(), state.numBlocks(),
                state.kvLen(), state.logicalLen(), stage, status.buffer(), epoch);
        // layers = 0: no block-score rows; new_scores and block_scores are null (never dereferenced then)
        PagedEvictionKernel.launchApply(device, stream, stage, null, applyRows, 0, state.blockSize(), seqs, state.blockTables(), state.tableStride(),
                null, state.kvLen(), victims, freed, status.buffer(), epoch);
        return Pending.of(status, epoch, stream, REJECTION);
    }

    private static int checkLayerStates(DeviceBuffer[] layerStates, int kvHeads, DeviceState state) {
        if (layerStates == null || layerStates.length < 1) throw new IllegalArgumentException("layerStates: the ATTENTION policy needs >= 1 layer");
        if (kvHeads < 1) throw new IllegalArgumentException("kvHeads: must be >= 1, was " + kvHeads);
        long bytes = 4L * state.numBlocks() * state.blockSize() * kvHeads;
        for (int l = 0; l < layerStates.length; l++)
            if (layerStates[l] == null || layerStates[l].bytes() < bytes)
                throw new IllegalArgumentException("layerStates: layer " + l + " needs numBlocks x blockSize x kvHeads floats (" + bytes + " bytes)");
        return layerStates.length;
    }

    /** Host arrays in, the decision and the updated state out (the inputs are not modified). Throws IllegalArgumentException where the kernel rejects. */
    public static Decision decide(KernelDevice device, Batch b, BlockEvictionOptions options) {
        if (device == null || b == null || options == null) throw new IllegalArgumentException("device, batch, options: must not be null");
        boolean attention = options.policy() == BlockEvictionOptions.Policy.ATTENTION;
        if (attention && b.layers() < 1) throw new IllegalArgumentException("layerStates: the ATTENTION policy needs >= 1 layer");
        int seqs = b.seqs(), layers = attention ? b.layers() : 0;
        Stream stream = device.defaultStream();
        DeviceBuffer[] states = new DeviceBuffer[layers];
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer tables = device.alloc(4L * b.blockTables().length);
             DeviceBuffer kv = device.alloc(4L * seqs);
             DeviceBuffer logical = device.alloc(8L * seqs);
             DeviceBuffer victims = device.alloc(4L * seqs);
             DeviceBuffer freed = device.alloc(4L * seqs)) {
            try {
                for (int l = 0; l < layers; l++) {
                    states[l] = device.alloc(4L * b.layerStates()[l].length);
                    device.upload(b.layerStates()[l], states[l], stream);
                }
                device.upload(b.blockTables(), tables, stream);
                device.upload(b.kvLen(), kv, stream);
                device.upload(PagedEviction.int64Words(b.logicalLen()), logical, stream);
                DeviceState state = new DeviceState(seqs, b.blockSize(), b.budget(), b.numBlocks(), tables, b.tableStride(), kv, logical);
                decideOnDevice(state, states, b.kvHeads(), options, victims, freed, ws, stream).await();
                int[] v = new int[seqs], f = new int[seqs], t = new int[b.blockTables().length], k = new int[seqs];
                device.download(victims, v, stream);
                device.download(freed, f, stream);
                device.download(tables, t, stream);
                device.download(kv, k, stream);
                stream.synchronize();
                return new Decision(v, f, t, k);
            } finally {
                for (DeviceBuffer s : states) if (s != null) s.close();
            }
        }
    }

    /** A batch of the sequences {@code ids} of {@code cache} (rows padded to {@code width} with −1) over the given per-layer states. */
    public static Batch batchOf(PagedKvCache cache, int[] ids, int width, int kvHeads, float[][] layerStates) {
        if (cache == null || ids == null) throw new IllegalArgumentException("cache, ids: must not be null");
        int seqs = ids.length;
        int[] tables = cache.blockTables(ids, width, -1);
        int[] kv = cache.kvLens(ids);
        long[] logical = cache.logicalLengths(ids);
        return new Batch(seqs, cache.blockSize(), cache.budget(), cache.numBlocks(), tables, width, kv, logical, kvHeads, layerStates);
    }

    /**
     * Applies the victims to the host bookkeeping with {@link PagedKvCache#evictBlock} semantics (the
     * physical block must be the one the kernel freed); ids[s] is the cache's id of row s. The caller
     * runs {@link PagedKvCache#reclaimEvicted()} after the step's kernels. The freed ids are checked against
     * the host tables before the first eviction (nothing changes if one disagrees).
     */
    public static void applyTo(PagedKvCache cache, int[] ids, int[] victims, int[] freed) {
        if (cache == null || ids == null || victims == null || freed == null) throw new IllegalArgumentException("cache, ids, victims, freed: must not be null");
        if (victims.length != ids.length || freed.length != ids.length) throw new IllegalArgumentException("victims, freed: need one entry per id");
        for (int s = 0; s < ids.length; s++) {
            if (victims[s] < 0) continue;
            int[] table = cache.blockTable(ids[s]);
            if (victims[s] >= table.length || table[victims[s]] != freed[s])
                throw new IllegalArgumentException("freed: sequence " + ids[s] + " holds block " + (victims[s] < table.length ? table[victims[s]] : -1)
                        + " at logical index " + victims[s] + ", the kernel freed " + freed[s]);
        }
        for (int s = 0; s < ids.length; s++) if (victims[s] >= 0) cache.evictBlock(ids[s], victims[s]);
    }
}
