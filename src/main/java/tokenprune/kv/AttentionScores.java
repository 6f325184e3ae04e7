package tokenprune.kv;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.AttnColsumKernel;
import tokenprune.methods.DType;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.reference.AttentionScoresReference;

/**
 * Weighted column sums of attention probabilities (methods-kv.md §4.2, §11): the score behind H2O,
 * A2SF, SnapKV and TOVA, recomputed exactly from a few query rows, the keys held in one layer's paged
 * cache and the per-(row, query head) log-sum-exp flash attention returns, in ONE launch for a ragged
 * batch (src/main/cuda/attn_colsum.cu). For sequence s (holding {@code kvLens[s]} tokens), KV head h and
 * key j:
 *
 * <pre>
 *   out = decay · prev + (1/G) Σ_{g&lt;G} Σ_{r of s} w_r · exp(q_{r,hG+g} · k_{j,h} · scale − lse[r, hG+g])   (j ≤ positions[r])
 * </pre>
 *
 * G = heads / kvHeads (group mean, H2O-REF / A2SF-REF). Output layout: per sequence [kvHeads][kvLen],
 * sequences concatenated, so every (sequence, KV head) is one contiguous row for {@code TopK}.
 * Weights: H2O 1 (decay 1 to accumulate), A2SF {@link A2sf#oneShotWeights} or decay α per step, SnapKV
 * {@link SnapKv#windowWeights}. Deterministic: the same bits under any schedule. The decode state of
 * A2SF-REF / H2O lives parallel to the cache, one float per physical slot and KV head
 * ({@link #accumulatePaged}, {@link #accumulatePagedOnDevice}): stable across steps and block evictions.
 *
 * <p>lse is the NATURAL log-sum-exp of the scaled logits (FlashAttention's {@code softmax_lse}); FlashInfer
 * returns base-2 LSE: multiply it by ln 2 first.
 */
public final class AttentionScores {
    static final String REJECTED = "queries, lse, cache, blockTables: a query, key or lse is NaN/Inf, or a table entry lies outside the pool";

    private AttentionScores() {
    }

    /**
     * Host arrays in, host scores out.
     *
     * @param cacheData  the whole layer tensor (float[] for F32, short[] of raw bits otherwise)
     * @param kvLens     tokens held per sequence (keys 0 .. kvLens[s]-1)
     * @param queries    dense [rows][heads][headDim], same dtype as the cache
     * @param rowOffsets seqs + 1 ascending offsets from 0: the query rows of each sequence
     * @param positions  per row, the key index the query sits at (causal: it sees keys 0 .. position)
     * @param weights    per row weight, or null for all 1
     * @param lse        [rows][heads] natural-log sum of exp of the row's scaled logits
     * @param prev       the previous scores (same layout as the result) or null
     * @throws IllegalArgumentException naming the argument; nothing is returned or written then
     */
    public static float[] compute(Device device, KvLayout layout, Object cacheData, int[] blockTables, int tableStride, int[] kvLens, Object queries,
                                  int heads, int[] rowOffsets, int[] positions, float[] weights, float[] lse, float scale, float[] prev, float decay) {
        return hostRun(device, layout, cacheData, blockTables, tableStride, kvLens, queries, heads, rowOffsets, positions, weights, lse, scale, prev,
                decay, null, false);
    }

    /**
     * A2SF-REF / H2O decode state on the host: {@code state} is [numBlocks][blockSize][kvHeads] (one score per
     * physical slot and KV head, parallel to the cache); returns a copy where every held key j of every sequence has
     * {@code decay · state + new column sum}, or just the new column sum when {@code j >= prevLens[s]} (tokens
     * appended since the last update; null: none). Entries of slots no sequence holds are copied unchanged.
     * Other arguments as in {@link #compute}. Sequences must not share physical blocks.
     */
    public static float[] accumulatePaged(Device device, KvLayout layout, Object cacheData, int[] blockTables, int tableStride, int[] kvLens,
                                          int[] prevLens, Object queries, int heads, int[] rowOffsets, int[] positions, float[] weights, float[] lse,
                                          float scale, float[] state, float decay) {
        if (layout == null) throw new IllegalArgumentException("layout: must not be null");
        long slots = (long) layout.numBlocks() * layout.blockSize() * layout.kvHeads();
        if (state == null || state.length != slots) throw new IllegalArgumentException("state: need numBlocks x blockSize x kvHeads = " + slots + " floats");
        checkPrevLens(kvLens, prevLens);
        return hostRun(device, layout, cacheData, blockTables, tableStride, kvLens, queries, heads, rowOffsets, positions, weights, lse, scale, state,
                decay, prevLens, true);
    }

    private static float[] hostRun(Device device, KvLayout layout, Object cacheData, int[] blockTables, int tableStride, int[] kvLens, Object queries,
                                   int heads, int[] rowOffsets, int[] positions, float[] weights, float[] lse, float scale, float[] prev, float decay,
                                   int[] prevLens, boolean paged) {
        if (device == null) throw new IllegalArgumentException("device: must not be null");
        if (layout == null) throw new IllegalArgumentException("layout: must not be null");
        KvTokenScores.checkHostCache(layout, cacheData);
        checkTables(layout, blockTables, tableStride, kvLens);
        int rows = checkRows(kvLens, rowOffsets, positions);
        checkHeads(layout, heads);
        long qn = (long) rows * heads * layout.headDim();
        if (layout.dtype() == DType.F32) {
            if (!(queries instanceof float[] f) || f.length != qn) throw new IllegalArgumentException("queries: need a float[] of rows x heads x headDim = " + qn);
        } else if (!(queries instanceof short[] sh) || sh.length != qn) {
            throw new IllegalArgumentException("queries: need a short[] of raw " + layout.dtype() + " bits, rows x heads x headDim = " + qn);
        }
        if (weights != null) {
            if (weights.length != rows) throw new IllegalArgumentException("weights: need " + rows + " values (one per row), was " + weights.length);
            for (int r = 0; r < rows; r++) if (!Float.isFinite(weights[r])) throw new IllegalArgumentException("weights: row " + r + " is " + weights[r]);
        }
        if (lse == null || lse.length != (long) rows * heads) throw new IllegalArgumentException("lse: need rows x heads = " + (long) rows * heads + " values");
        checkScalars(scale, decay);
        long total = 0;
        for (int n : kvLens) total += (long) n * layout.kvHeads();
        if (total > Integer.MAX_VALUE) throw new IllegalArgumentException("kvLens: more than 2^31 - 1 scores in one call");
        if (!paged && prev != null && prev.length != total) throw new IllegalArgumentException("prev: need " + total + " values, was " + prev.length);
        int outLen = paged ? prev.length : (int) total;
        if (!(device instanceof KernelDevice kd)) {
            for (int i = 0; i < lse.length; i++) if (!Float.isFinite(lse[i])) throw new IllegalArgumentException("lse: entry " + i + " is " + lse[i]);
            double[] ref = paged
                    ? AttentionScoresReference.accumulatePaged(layout, cacheData, blockTables, tableStride, kvLens, prevLens, queries, heads, rowOffsets,
                            positions, weights, lse, scale, prev, decay)
                    : AttentionScoresReference.colsum(layout, cacheData, blockTables, tableStride, kvLens, queries, heads, rowOffsets, positions, weights,
                            lse, scale, prev, decay);
            float[] out = new float[outLen];
            for (int i = 0; i < ref.length; i++) out[i] = (float) ref[i];
            for (float v : out) if (!Float.isFinite(v)) throw new IllegalArgumentException(REJECTED);
            return out;
        }
        float[] out = new float[outLen];
        if (total == 0) {
            if (paged) System.arraycopy(prev, 0, out, 0, outLen);
            return out;
        }
        Stream stream = kd.defaultStream();
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer cache = kd.alloc(layout.bytes());
             DeviceBuffer tables = kd.alloc(4L * blockTables.length);
             DeviceBuffer q = kd.alloc(Math.max(4L, qn * layout.dtype().bytes()));
             DeviceBuffer w = weights == null ? null : kd.alloc(Math.max(4L, 4L * rows));
             DeviceBuffer l = kd.alloc(Math.max(4L, 4L * lse.length));
             DeviceBuffer p = prev == null ? null : kd.alloc(4L * prev.length);
             DeviceBuffer o = paged ? null : kd.alloc(4L * total)) {
            if (layout.dtype() == DType.F32) {
                kd.upload((float[]) cacheData, cache, stream);
                if (qn > 0) kd.upload((float[]) queries, q, stream);
            } else {
                kd.upload((short[]) cacheData, cache, stream);
                if (qn > 0) kd.upload((short[]) queries, q, stream);
            }
            kd.upload(blockTables, tables, stream);
            if (w != null && rows > 0) kd.upload(weights, w, stream);
            if (lse.length > 0) kd.upload(lse, l, stream);
            if (p != null) kd.upload(prev, p, stream);
            long qRow = (long) heads * layout.headDim();
            Pending pending = paged
                    ? accumulatePagedOnDevice(ws, stream, layout, cache, tables, tableStride, kvLens, prevLens, q, qRow, layout.headDim(), heads, rowOffsets,
                            positions, w, l, heads, 1, scale, decay, p)
                    : computeOnDevice(ws, stream, layout, cache, tables, tableStride, kvLens, q, qRow, layout.headDim(), heads, rowOffsets, positions, w, l,
                            heads, 1, scale, p, decay, o);
            pending.await();
            kd.download(paged ? p : o, out, stream);
        }
        return out;
    }

    /**
     * Device pointers in, on the workspace's stream, no sync. Queries of (row, head, dim) at
     * {@code row * qRowStride + head * qHeadStride + dim} elements; lse (fp32) at
     * {@code row * lseRowStride + head * lseHeadStride}; {@code weights} (rows floats) and {@code prev} may be
     * null; {@code prev} may be {@code out} (in-place accumulation). Host int arrays are uploaded through the
     * workspace only when they change. {@link Pending#await} throws if the kernel found NaN/Inf in a read
     * query/key/lse or a table entry outside the pool; {@code out} is then undefined (with prev == out the
     * state is partly updated: double-buffer if that matters).
     */
    public static Pending computeOnDevice(Workspace ws, Stream stream, KvLayout layout, DeviceBuffer cache, DeviceBuffer blockTables, int tableStride,
                                          int[] kvLens, DeviceBuffer queries, long qRowStride, long qHeadStride, int heads, int[] rowOffsets,
                                          int[] positions, DeviceBuffer weights, DeviceBuffer lse, long lseRowStride, long lseHeadStride, float scale,
                                          DeviceBuffer prev, float decay, DeviceBuffer out) {
        return enqueue(ws, stream, layout, cache, blockTables, tableStride, kvLens, queries, qRowStride, qHeadStride, heads, rowOffsets, positions,
                weights, lse, lseRowStride, lseHeadStride, scale, prev, decay, null, false, out);
    }

    /**
     * The decode-state update of {@link #accumulatePaged} on device pointers, in place on {@code state}
     * ([numBlocks][blockSize][kvHeads] fp32), on the workspace's stream, no sync. {@code prevLens}: per sequence
     * the keys that already have a state entry (null: all). After a rejection ({@link Pending#await} throws)
     * the state of the rejected key tiles is unchanged, that of other tiles updated.
     */
    public static Pending accumulatePagedOnDevice(Workspace ws, Stream stream, KvLayout layout, DeviceBuffer cache, DeviceBuffer blockTables,
                                                  int tableStride, int[] kvLens, int[] prevLens, DeviceBuffer queries, long qRowStride, long qHeadStride,
                                                  int heads, int[] rowOffsets, int[] positions, DeviceBuffer weights, DeviceBuffer lse, long lseRowStride,
                                                  long lseHeadStride, float scale, float decay, DeviceBuffer state) {
        if (layout == null) throw new IllegalArgumentException("layout: must not be null");
        long slots = (long) layout.numBlocks() * layout.blockSize() * layout.kvHeads();
        if (state == null || state.bytes() < 4 * slots) throw new IllegalArgumentException("state: need numBlocks x blockSize x kvHeads = " + slots + " floats");
        checkPrevLens(kvLens, prevLens);
        return enqueue(ws, stream, layout, cache, blockTables, tableStride, kvLens, queries, qRowStride, qHeadStride, heads, rowOffsets, positions,
                weights, lse, lseRowStride, lseHeadStride, scale, state, decay, prevLens, true, state);
    }

    private static Pending enqueue(Workspace ws, Stream stream, KvLayout layout, DeviceBuffer cache, DeviceBuffer blockTables, int tableStride,
                                   int[] kvLens, DeviceBuffer queries, long qRowStride, long qHeadStride, int heads, int[] rowOffsets,
                                   int[] positions, DeviceBuffer weights, DeviceBuffer lse, long lseRowStride, long lseHeadStride, float scale,
                                   DeviceBuffer prev, float decay, int[] prevLens, boolean paged, DeviceBuffer out) {
        Launch launch = plan(ws, stream, layout, cache, blockTables, tableStride, kvLens, queries, qRowStride, qHeadStride, heads, rowOffsets, positions,
                weights, lse, lseRowStride, lseHeadStride, scale, prev, decay, prevLens, paged, out);
        int epoch = ws.status().nextEpoch(stream);
        launch.enqueue(epoch);
        return Pending.of(ws.status(), epoch, stream, REJECTED);
    }

    /** A checked launch, queued later under a caller's epoch (a chain such as {@link PromptCompression} rejects as one call). */
    interface Launch {
        void enqueue(int epoch);
    }

    /** Checks a contiguous-output call ({@link #computeOnDevice} without prev) and returns it ready to queue. */
    static Launch planCompute(Workspace ws, Stream stream, KvLayout layout, DeviceBuffer cache, DeviceBuffer blockTables, int tableStride, int[] kvLens,
                              DeviceBuffer queries, long qRowStride, long qHeadStride, int heads, int[] rowOffsets, int[] positions, DeviceBuffer weights,
                              DeviceBuffer lse, long lseRowStride, long lseHeadStride, float scale, DeviceBuffer out) {
        return plan(ws, stream, layout, cache, blockTables, tableStride, kvLens, queries, qRowStride, qHeadStride, heads, rowOffsets, positions, weights,
                lse, lseRowStride, lseHeadStride, scale, null, 1f, null, false, out);
    }

    private static Launch plan(Workspace ws, Stream stream, KvLayout layout, DeviceBuffer cache, DeviceBuffer blockTables, int tableStride,
                               int[] kvLens, DeviceBuffer queries, long qRowStride, long qHeadStride, int heads, int[] rowOffsets,
                               int[] positions, DeviceBuffer weights, DeviceBuffer lse, long lseRowStride, long lseHeadStride, float scale,
                               DeviceBuffer prev, float decay, int[] prevLens, boolean paged, DeviceBuffer out) {
        if (ws == null || stream == null || layout == null) throw new IllegalArgumentException("ws, stream, layout: must not be null");
        ws.requireStream(stream);
        KernelDevice device = ws.device();
        if (cache == null || cache.bytes() < layout.bytes()) throw new IllegalArgumentException("cache: the layout needs " + layout.bytes() + " bytes");
        if (kvLens == null || kvLens.length < 1) throw new IllegalArgumentException("kvLens: need >= 1 sequence");
        int seqs = kvLens.length;
        if (tableStride < 1) throw new IllegalArgumentException("tableStride: must be >= 1, was " + tableStride);
        if (blockTables == null || blockTables.bytes() < 4L * seqs * tableStride) throw new IllegalArgumentException("blockTables: smaller than seqs x tableStride ints");
        int rows = checkRows(kvLens, rowOffsets, positions);
        checkHeads(layout, heads);
        int d = layout.headDim();
        if (d > AttnColsumKernel.maxHeadDim(device)) throw new IllegalArgumentException("layout: head dim " + d + " exceeds this device's " + AttnColsumKernel.maxHeadDim(device));
        if (qRowStride < 0 || qHeadStride < 0) throw new IllegalArgumentException("qRowStride, qHeadStride: must be >= 0");
        long qLast = rows == 0 ? 0 : (rows - 1) * qRowStride + (heads - 1) * qHeadStride + d;
        if (queries == null || queries.bytes() < qLast * layout.dtype().bytes()) throw new IllegalArgumentException("queries: smaller than the strides reach");
        if (lseRowStride < 0 || lseHeadStride < 0) throw new IllegalArgumentException("lseRowStride, lseHeadStride: must be >= 0");
        long lLast = rows == 0 ? 0 : (rows - 1) * lseRowStride + (heads - 1) * lseHeadStride + 1;
        if (lse == null || lse.bytes() < 4 * lLast) throw new IllegalArgumentException("lse: smaller than the strides reach");
        if (weights != null && weights.bytes() < 4L * rows) throw new IllegalArgumentException("weights: need " + rows + " floats");
        checkScalars(scale, decay);
        int[] outOffsets = new int[seqs + 1];
        int maxLen = 0;
        for (int s = 0; s < seqs; s++) {
            if (kvLens[s] < 0) throw new IllegalArgumentException("kvLens: sequence " + s + " is " + kvLens[s]);
            if ((kvLens[s] + (long) layout.blockSize() - 1) / layout.blockSize() > tableStride)
                throw new IllegalArgumentException("kvLens: sequence " + s + " needs more blocks than tableStride = " + tableStride);
            long next = (long) outOffsets[s] + kvLens[s];
            if (next * layout.kvHeads() > Integer.MAX_VALUE) throw new IllegalArgumentException("kvLens: more than 2^31 - 1 scores in one call");
            outOffsets[s + 1] = (int) next;
            maxLen = Math.max(maxLen, kvLens[s]);
        }
        long total = (long) outOffsets[seqs] * layout.kvHeads();
        if (!paged) {
            if (out == null || out.bytes() < 4 * total) throw new IllegalArgumentException("out: need " + total + " floats");
            if (prev != null && prev.bytes() < 4 * total) throw new IllegalArgumentException("prev: need " + total + " floats");
        }
        final int maxKeys = maxLen;
        final int[] rowOffsetsCopy = rowOffsets.clone(), positionsCopy = positions.clone(), prevLensCopy = prevLens == null ? null : prevLens.clone();
        return epoch -> {
            ws.status().requireLatest(epoch);
            if (total == 0) return;
            DeviceBuffer offs = ws.ints("attn.outOffsets", outOffsets, stream);
            DeviceBuffer rowOffs = ws.ints("attn.rowOffsets", rowOffsetsCopy, stream);
            DeviceBuffer pos = ws.ints("attn.positions", positionsCopy.length == 0 ? new int[1] : positionsCopy, stream);
            DeviceBuffer plens = prevLensCopy == null ? null : ws.ints("attn.prevLens", prevLensCopy, stream);
            AttnColsumKernel.launch(device, stream, layout.dtype(), queries, qRowStride, qHeadStride, lse, lseRowStride, lseHeadStride, cache,
                    layout.blockStride(), layout.slotStride(0), layout.headStride(), layout.dimChunk(0), layout.chunkStride(0), layout.dimStride(0),
                    layout.blockSize(), heads, layout.kvHeads(), d, layout.numBlocks(),
                    blockTables, tableStride, rowOffs, pos, weights, offs, seqs, maxKeys, scale, prev, decay, plens, paged, out, ws.status().buffer(),
                    epoch);
        };
    }

    /**
     * Row offsets of the score layout, one row per (sequence, KV head) in that order ({@code kvLens.length * kvHeads + 1}
     * offsets): what {@link H2o#keep}, {@link A2sf#keep}, {@link SnapKv#keep} and {@code TopK} take.
     */
    public static int[] rowOffsets(int[] kvLens, int kvHeads) {
        if (kvLens == null) throw new IllegalArgumentException("kvLens: must not be null");
        if (kvHeads < 1) throw new IllegalArgumentException("kvHeads: must be >= 1, was " + kvHeads);
        int[] o = new int[kvLens.length * kvHeads + 1];
        for (int s = 0; s < kvLens.length; s++) {
            if (kvLens[s] < 0) throw new IllegalArgumentException("kvLens: sequence " + s + " is " + kvLens[s]);
            for (int h = 0; h < kvHeads; h++) {
                long next = (long) o[s * kvHeads + h] + kvLens[s];
                if (next > Integer.MAX_VALUE) throw new IllegalArgumentException("kvLens: more than 2^31 - 1 scores");
                o[s * kvHeads + h + 1] = (int) next;
            }
        }
        return o;
    }

    static void checkPrevLens(int[] kvLens, int[] prevLens) {
        if (prevLens == null) return;
        if (kvLens == null || prevLens.length != kvLens.length) throw new IllegalArgumentException("prevLens: need one value per sequence");
        for (int s = 0; s < prevLens.length; s++)
            if (prevLens[s] < 0 || prevLens[s] > kvLens[s])
                throw new IllegalArgumentException("prevLens: sequence " + s + " is " + prevLens[s] + ", outside 0 .. kvLens = " + kvLens[s]);
    }

    static void checkHeads(KvLayout layout, int heads) {
        if (heads < 1 || heads % layout.kvHeads() != 0)
            throw new IllegalArgumentException("heads: must be a positive multiple of the layout's " + layout.kvHeads() + " KV heads, was " + heads);
    }

    static void checkScalars(float scale, float decay) {
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("scale: must be finite, was " + scale);
        if (!Float.isFinite(decay)) throw new IllegalArgumentException("decay: must be finite, was " + decay);
    }

    /** Validates rowOffsets (seqs + 1, from 0, non-decreasing) and positions (0 <= p < kvLens[s]); returns the row count. */
    static int checkRows(int[] kvLens, int[] rowOffsets, int[] positions) {
        if (kvLens == null || kvLens.length < 1) throw new IllegalArgumentException("kvLens: need >= 1 sequence");
        int seqs = kvLens.length;
        if (rowOffsets == null || rowOffsets.length != seqs + 1 || rowOffsets[0] != 0)
            throw new IllegalArgumentException("rowOffsets: need seqs + 1 = " + (seqs + 1) + " offsets starting at 0");
        for (int s = 0; s < seqs; s++)
            if (rowOffsets[s + 1] < rowOffsets[s]) throw new IllegalArgumentException("rowOffsets: decrease at sequence " + s);
        int rows = rowOffsets[seqs];
        if (positions == null || positions.length != rows) throw new IllegalArgumentException("positions: need " + rows + " values (one per row)");
        for (int s = 0; s < seqs; s++)
            for (int r = rowOffsets[s]; r < rowOffsets[s + 1]; r++)
                if (positions[r] < 0 || positions[r] >= kvLens[s])
                    throw new IllegalArgumentException("positions: row " + r + " of sequence " + s + " is " + positions[r] + ", outside 0 .. " + (kvLens[s] - 1));
        return rows;
    }

    static int checkTables(KvLayout layout, int[] blockTables, int tableStride, int[] kvLens) {
        if (kvLens == null || kvLens.length < 1) throw new IllegalArgumentException("kvLens: need >= 1 sequence");
        int seqs = kvLens.length;
        if (blockTables == null || tableStride < 1 || blockTables.length != (long) seqs * tableStride)
            throw new IllegalArgumentException("blockTables: must hold " + seqs + " rows of tableStride = " + tableStride + " entries");
        int b = layout.blockSize();
        for (int s = 0; s < seqs; s++) {
            if (kvLens[s] < 0) throw new IllegalArgumentException("kvLens: sequence " + s + " is " + kvLens[s]);
            long blocks = ((long) kvLens[s] + b - 1) / b;
            if (blocks > tableStride) throw new IllegalArgumentException("kvLens: sequence " + s + " needs " + blocks + " blocks, the table has " + tableStride);
            for (int j = 0; j < blocks; j++) {
                int p = blockTables[s * tableStride + j];
                if (p < 0 || p >= layout.numBlocks())
                    throw new IllegalArgumentException("blockTables: sequence " + s + " block " + j + " = " + p + " lies outside the pool 0 .. " + (layout.numBlocks() - 1));
            }
        }
        return seqs;
    }
}
