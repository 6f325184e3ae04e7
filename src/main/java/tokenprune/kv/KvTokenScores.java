package tokenprune.kv;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.KvTokenScoreKernel;
import tokenprune.kernels.StatusWord;
import tokenprune.methods.DType;

/**
 * PagedEviction token scores (PE-REF step 1) of a batch of sequences, read from one layer's paged
 * KV cache in a single kernel launch (src/main/cuda/kv_token_score.cu). Sequence s scores its tokens
 * {@code begin[s] .. end[s]-1}; the scores of all sequences are concatenated in sequence order.
 * The {@code random} metric reads no K/V: its score hashes (seed, physical block, slot).
 */
public final class KvTokenScores {
    private KvTokenScores() {
    }

    /**
     * Host arrays in, host scores out. {@code cacheData}: the whole layer tensor, a float[] for F32
     * or a short[] of raw 16-bit patterns, {@code layout.elements()} long; {@code blockTables}:
     * {@code begin.length} rows of {@code tableStride} physical block ids. Throws
     * {@link IllegalArgumentException} on bad shapes, a table entry outside the pool, or NaN/Inf in
     * a scored token's K or V (not for the random score, which reads neither).
     */
    public static float[] score(KernelDevice device, KvLayout layout, Object cacheData, int[] blockTables, int tableStride, int[] begin, int[] end,
                                KvScoreOptions options) {
        if (layout == null || options == null) throw new IllegalArgumentException("layout, options: must not be null");
        checkHostCache(layout, cacheData);
        int seqs = checkRanges(layout, blockTables, tableStride, begin, end);
        int[] outOffsets = new int[seqs + 1];
        for (int s = 0; s < seqs; s++) {
            long next = (long) outOffsets[s] + (end[s] - begin[s]);
            if (next > Integer.MAX_VALUE) throw new IllegalArgumentException("begin, end: more than 2^31 - 1 tokens in one call");
            outOffsets[s + 1] = (int) next;
        }
        int total = outOffsets[seqs];
        float[] out = new float[total];
        if (total == 0) return out;
        Stream stream = device.defaultStream();
        try (StatusWord status = new StatusWord(device, stream);
             DeviceBuffer cache = device.alloc(layout.bytes());
             DeviceBuffer tables = device.alloc(Math.max(4L, 4L * blockTables.length));
             DeviceBuffer beginD = device.alloc(4L * seqs);
             DeviceBuffer offsets = device.alloc(4L * (seqs + 1));
             DeviceBuffer scores = device.alloc(4L * total)) {
            if (layout.dtype() == DType.F32) device.upload((float[]) cacheData, cache, stream);
            else device.upload((short[]) cacheData, cache, stream);
            if (blockTables.length > 0) device.upload(blockTables, tables, stream);
            device.upload(begin, beginD, stream);
            device.upload(outOffsets, offsets, stream);
            int epoch = status.nextEpoch(stream);
            enqueue(device, stream, cache, layout, tables, tableStride, seqs, beginD, offsets, total, options, scores, status.buffer(), epoch);
            if (status.rejected(epoch, stream)) throw new IllegalArgumentException("cache: a scored token's key or value is NaN or infinite");
            device.download(scores, out, stream);
        }
        return out;
    }

    /** Scores every held token (0 .. kv_len-1) of the sequences {@code ids} of {@code cache}. */
    public static float[] scoreSequences(KernelDevice device, KvLayout layout, Object cacheData, PagedKvCache cache, int[] ids, KvScoreOptions options) {
        if (cache.blockSize() != layout.blockSize() || cache.numBlocks() != layout.numBlocks())
            throw new IllegalArgumentException("cache: block size / pool size " + cache.blockSize() + "/" + cache.numBlocks() + " differ from the layout's "
                    + layout.blockSize() + "/" + layout.numBlocks());
        int width = 1;
        int[] begin = new int[ids.length], end = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            end[i] = cache.kvLen(ids[i]);
            width = Math.max(width, cache.blockTable(ids[i]).length);
        }
        return score(device, layout, cacheData, cache.blockTables(ids, width), width, begin, end, options);
    }

    /**
     * Device pointers in, on the caller's stream, no sync; one launch ({@link KvScoreOptions.Metric#RANDOM}:
     * a kernel that reads only the block tables, not {@code cache}). {@code tokenBegin} (seqs ints, or null for
     * all zeros) and {@code outOffsets} (seqs + 1 ints, last = totalTokens) are device copies the
     * caller validated; the kernel still rejects table entries outside the pool and NaN/Inf by
     * setting {@code status} to {@code epoch} (that token's score is then not written).
     */
    public static void enqueue(KernelDevice device, Stream stream, DeviceBuffer cache, KvLayout layout, DeviceBuffer blockTables, int tableStride,
                               int seqs, DeviceBuffer tokenBegin, DeviceBuffer outOffsets, int totalTokens, KvScoreOptions options,
                               DeviceBuffer scores, DeviceBuffer status, int epoch) {
        if (cache.bytes() < layout.bytes()) throw new IllegalArgumentException("cache: " + cache.bytes() + " bytes, the layout needs " + layout.bytes());
        if (tableStride < 1) throw new IllegalArgumentException("tableStride: must be >= 1, was " + tableStride);
        if (seqs < 1) throw new IllegalArgumentException("seqs: must be >= 1, was " + seqs);
        if (blockTables.bytes() < 4L * seqs * tableStride) throw new IllegalArgumentException("blockTables: smaller than seqs x tableStride ints");
        if (outOffsets.bytes() < 4L * (seqs + 1)) throw new IllegalArgumentException("outOffsets: needs seqs + 1 ints");
        if (tokenBegin != null && tokenBegin.bytes() < 4L * seqs) throw new IllegalArgumentException("tokenBegin: needs seqs ints");
        if (scores.bytes() < 4L * totalTokens) throw new IllegalArgumentException("scores: needs " + totalTokens + " floats");
        if (!options.readsKv()) {
            KvTokenScoreKernel.launchRandom(device, stream, layout.blockSize(), layout.numBlocks(), blockTables, tableStride, tokenBegin, outOffsets, seqs,
                    totalTokens, options.seed(), scores, status, epoch);
            return;
        }
        KvTokenScoreKernel.launch(device, stream, layout.dtype(), cache, layout.kvStride(), layout.blockStride(), layout.slotStride(0),
                layout.headStride(), layout.slotStride(1), layout.dimChunk(0), layout.chunkStride(0), layout.dimStride(0), layout.dimChunk(1),
                layout.chunkStride(1), layout.dimStride(1), layout.blockSize(), layout.kvHeads(), layout.headDim(), layout.numBlocks(), blockTables, tableStride,
                tokenBegin, outOffsets, seqs, totalTokens, options.metric().code(), options.headAgg().code(), options.eps(), scores, status, epoch);
    }

    static void checkHostCache(KvLayout layout, Object data) {
        long n = layout.elements();
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException("cacheData: a host array cannot hold " + n + " elements");
        if (layout.dtype() == DType.F32) {
            if (!(data instanceof float[] f)) throw new IllegalArgumentException("cacheData: F32 needs a float[]");
            if (f.length != n) throw new IllegalArgumentException("cacheData: " + f.length + " elements, the layout has " + n);
        } else {
            if (!(data instanceof short[] s)) throw new IllegalArgumentException("cacheData: " + layout.dtype() + " needs a short[] of raw bits");
            if (s.length != n) throw new IllegalArgumentException("cacheData: " + s.length + " elements, the layout has " + n);
        }
    }

    static int checkRanges(KvLayout layout, int[] blockTables, int tableStride, int[] begin, int[] end) {
        if (blockTables == null || begin == null || end == null) throw new IllegalArgumentException("blockTables, begin, end: must not be null");
        int seqs = begin.length;
        if (seqs < 1 || end.length != seqs) throw new IllegalArgumentException("begin, end: need the same length >= 1");
        if (tableStride < 1 || blockTables.length != (long) seqs * tableStride)
            throw new IllegalArgumentException("blockTables: must hold " + seqs + " rows of tableStride = " + tableStride + " entries");
        int b = layout.blockSize();
        for (int s = 0; s < seqs; s++) {
            if (begin[s] < 0 || end[s] < begin[s]) throw new IllegalArgumentException("begin, end: sequence " + s + " has range [" + begin[s] + ", " + end[s] + ")");
            long blocks = ((long) end[s] + b - 1) / b;
            if (blocks > tableStride) throw new IllegalArgumentException("end: sequence " + s + " needs " + blocks + " blocks, the table has " + tableStride);
            for (long j = begin[s] / b; j < blocks; j++) {
                int p = blockTables[(int) (s * (long) tableStride + j)];
                if (p < 0 || p >= layout.numBlocks())
                    throw new IllegalArgumentException("blockTables: sequence " + s + " block " + j + " = " + p + " lies outside the pool 0 .. " + (layout.numBlocks() - 1));
            }
        }
        return seqs;
    }
}
