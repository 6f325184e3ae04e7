package tokenprune.kv;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.PagedEvictionKernel;
import tokenprune.kernels.StatusWord;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * PE-REF prefill on the device (methods-kv.md §2.3.2 step 4) for a batch of prompts whose full K/V
 * already sit in paged blocks (the source tables): per layer the token scores (step 1,
 * {@link KvTokenScores#enqueue}), the kept positions (C + r per prompt, or L when L ≤ C: block 0, the
 * last B + r tokens and the top C − 2B of the middle; one kept set per layer, shared by all heads),
 * then the kept tokens written in original order into the caller's destination tables (fresh blocks,
 * ⌈kvLen/B⌉ per prompt, shared by all layers). Launches: one score launch per layer, one keep launch
 * for all layers (the (layer, prompt) pairs are the rows of one tp_pe_prefill_keep launch) and the two
 * compaction launches of {@link KvCompaction} for all layers: L + 3, under one status epoch, no sync.
 * The source blocks are not modified and stay allocated; the caller frees them.
 */
public final class PagedEvictionPrefill {
    private PagedEvictionPrefill() {
    }

    /** The queued work and the new kv_len per prompt (known on the host: C + (L mod B), or L when L ≤ C). */
    public record Queued(Pending pending, int[] kvLen) {
    }

    /** The kv_len each prompt keeps. */
    public static int[] keptLengths(int[] promptLens, int budget, int blockSize) {
        int[] out = new int[promptLens.length];
        for (int s = 0; s < out.length; s++) out[s] = PagedEviction.prefillKeepCount(promptLens[s], budget, blockSize);
        return out;
    }

    static final String REJECTION = "layerCaches, srcTables, dstTables: a prompt token's key or value is NaN/Inf, or a table entry lies outside the pool";

    /**
     * Device pointers in, on the caller's stream, no sync. {@code layerCaches}: one tensor of
     * {@code layout} per layer; {@code srcTables}: prompts rows of {@code srcTableStride} blocks holding
     * the prompts' {@code promptLens} tokens; {@code dstTables}: prompts rows of fresh blocks, disjoint
     * from every source block, at least ⌈kvLen/B⌉ per row. {@code budget}: C, a multiple of B, ≥ 3B.
     * On rejection ({@link Pending#await} throws) nothing is written to the destination blocks.
     */
    public static Queued prefillOnDevice(KvLayout layout, DeviceBuffer[] layerCaches, KvScoreOptions scoreOptions, DeviceBuffer srcTables,
                                         int srcTableStride, int[] promptLens, int budget, DeviceBuffer dstTables, int dstTableStride, Workspace ws,
                                         Stream stream) {
        if (layout == null || layerCaches == null || scoreOptions == null || srcTables == null || promptLens == null || dstTables == null || ws == null
                || stream == null)
            throw new IllegalArgumentException("layout, layerCaches, scoreOptions, srcTables, promptLens, dstTables, ws, stream: must not be null");
        ws.requireStream(stream);
        int seqs = promptLens.length, layers = layerCaches.length, b = layout.blockSize();
        if (seqs < 1) throw new IllegalArgumentException("promptLens: needs >= 1 prompt");
        if (dstTables.address() == srcTables.address()) throw new IllegalArgumentException("dstTables: must be fresh blocks, not the source tables");
        int[] rowOffsets = new int[seqs + 1];
        for (int s = 0; s < seqs; s++) {
            if (promptLens[s] < 0) throw new IllegalArgumentException("promptLens: entry " + s + " is negative");
            long next = (long) rowOffsets[s] + promptLens[s];
            if (next * layers > Integer.MAX_VALUE) throw new IllegalArgumentException("promptLens: more than 2^31 - 1 token scores in one call");
            rowOffsets[s + 1] = (int) next;
        }
        int[] keepOffsets = PagedEviction.prefillKeepOffsets(rowOffsets, budget, b);  // checks the budget
        int total = rowOffsets[seqs], kept = keepOffsets[seqs];
        // every layer's kept set shares the offsets; layer l's list is kept[l * kept ..)
        DeviceBuffer keptD = ws.scratch("pagedEvictionPrefill.kept", 4L * kept * layers);
        KvCompaction.Launch compaction = KvCompaction.plan(layout, layerCaches, null, srcTables, srcTableStride, dstTables, dstTableStride, promptLens,
                new KvCompaction.KeepSets(keepOffsets, keptD, false, true, null), null);
        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        if (kept > 0) {
            KernelDevice device = ws.device();
            DeviceBuffer scores = ws.scratch("pagedEvictionPrefill.scores", 4L * total * layers);
            DeviceBuffer offsetsD = ws.ints("pagedEvictionPrefill.rowOffsets", rowOffsets, stream);
            long layerBytes = 4L * total;
            for (int l = 0; l < layers; l++)
                KvTokenScores.enqueue(device, stream, layerCaches[l], layout, srcTables, srcTableStride, seqs, null, offsetsD, total, scoreOptions,
                        scores.slice(l * layerBytes, layerBytes), status.buffer(), epoch);
            int[] rows = new int[layers * seqs + 1];
            int[] keeps = new int[layers * seqs + 1];
            for (int l = 0; l < layers; l++)
                for (int s = 0; s < seqs; s++) {
                    rows[l * seqs + s + 1] = l * total + rowOffsets[s + 1];
                    keeps[l * seqs + s + 1] = l * kept + keepOffsets[s + 1];
                }
            DeviceBuffer rowsD = ws.ints("pagedEvictionPrefill.layerRows", rows, stream);
            DeviceBuffer keepsD = ws.ints("pagedEvictionPrefill.layerKeeps", keeps, stream);
            DeviceBuffer rev = ws.scratch("pagedEvictionPrefill.rev", 4L * total * layers);
            DeviceBuffer idx = ws.scratch("pagedEvictionPrefill.idx", 4L * total * layers);
            PagedEvictionKernel.launchPrefill(device, stream, scores, rowsD, layers * seqs, budget, b, keepsD, rev, idx, keptD, status.buffer(), epoch);
            compaction.enqueue(ws, stream, status.buffer(), epoch);
        }
        return new Queued(Pending.of(status, epoch, stream, REJECTION), keptLengths(promptLens, budget, b));
    }

    /** New cache contents per layer (float[] or short[] bits, as given) and kv_len per prompt. */
    public record Result(Object[] caches, int[] kvLen) {
    }

    /**
     * Host arrays in (see {@link #prefillOnDevice}; caches as in {@link KvCompaction#compact}), the
     * caches after the copy into the destination blocks out (the inputs are not modified).
     */
    public static Result prefill(KernelDevice device, KvLayout layout, Object[] layerCaches, KvScoreOptions scoreOptions, int[] srcTables, int srcTableStride,
                                 int[] promptLens, int budget, int[] dstTables, int dstTableStride) {
        if (device == null || layout == null || layerCaches == null || srcTables == null || dstTables == null)
            throw new IllegalArgumentException("device, layout, layerCaches, srcTables, dstTables: must not be null");
        for (Object c : layerCaches) KvTokenScores.checkHostCache(layout, c);
        Stream stream = device.defaultStream();
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer src = device.alloc(4L * Math.max(1, srcTables.length));
             DeviceBuffer dst = device.alloc(4L * Math.max(1, dstTables.length));
             HostLayers caches = HostLayers.caches(device, layout, layerCaches, stream)) {
            if (srcTables.length > 0) device.upload(srcTables, src, stream);
            if (dstTables.length > 0) device.upload(dstTables, dst, stream);
            Queued q = prefillOnDevice(layout, caches.buffers, scoreOptions, src, srcTableStride, promptLens, budget, dst, dstTableStride, ws, stream);
            q.pending().await();
            return new Result(caches.downloadCaches(layout, stream), q.kvLen());
        }
    }
}
