package tokenprune.kernels;

import static tokenprune.device.ArgType.I32;
import static tokenprune.device.ArgType.I64;
import static tokenprune.device.ArgType.PTR;

import java.util.List;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.Dim3;
import tokenprune.device.KernelArgs;
import tokenprune.device.KernelDevice;
import tokenprune.device.KernelSpec;
import tokenprune.device.Stream;

/**
 * Launcher for src/main/cuda/paged_eviction.cu: PagedEviction's decode step for a batch of
 * sequences — the decision (new block scores + victims, one launch) and its application (table and
 * score-row shift, kv_len, per-call free list; one launch, skipped on the device if the call was
 * rejected). One block of 128 threads per sequence.
 */
public final class PagedEvictionKernel {
    static final int THREADS = 128;

    // fill_scores, fills, fill_at, layers, block_size, seqs, budget, window, layer_agg, victim_rule, seed, block_tables, table_stride,
    // num_blocks, block_scores, kv_len, logical_len, stage, new_scores, status, epoch
    static final KernelSpec DECIDE = KernelSpec.of("tp_pe_decode_decide", PTR, I32, PTR, I32, I32, I32, I64, I32, I32, I32, I64, PTR, I32, I32,
            PTR, PTR, PTR, PTR, PTR, PTR, I32);
    // stage, new_scores, fill_at, layers, block_size, seqs, block_tables, table_stride, block_scores, kv_len, victims, freed, status, epoch
    static final KernelSpec APPLY = KernelSpec.of("tp_pe_decode_apply", PTR, PTR, PTR, I32, I32, I32, PTR, I32, PTR, PTR, PTR, PTR, PTR, I32);

    static final int PREFILL_THREADS = 256;
    // scores, row_offsets, seqs, budget, block_size, keep_offsets, rev_scratch, idx_scratch, kept, status, epoch
    static final KernelSpec PREFILL = KernelSpec.of("tp_pe_prefill_keep", PTR, PTR, I32, I32, I32, PTR, PTR, PTR, PTR, PTR, I32);

    private PagedEvictionKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(DECIDE, APPLY, PREFILL);
    }

    /**
     * Queues tp_pe_decode_decide. {@code stage}: 2·seqs ints and {@code newScores}: layers·seqs floats
     * of scratch; {@code fillScores} may be any non-null buffer when {@code fills == 0} or when
     * {@code victimRule} (0 argmin, 1 argmax, 2 random, 3 block 1) reads no score (2, 3).
     */
    public static void launchDecide(KernelDevice device, Stream stream, DeviceBuffer fillScores, int fills, DeviceBuffer fillAt, int layers,
                                    int blockSize, int seqs, long budget, int window, int layerAgg, int victimRule, long seed, DeviceBuffer blockTables,
                                    int tableStride, int numBlocks, DeviceBuffer blockScores, DeviceBuffer kvLen, DeviceBuffer logicalLen,
                                    DeviceBuffer stage, DeviceBuffer newScores, DeviceBuffer status, int epoch) {
        device.launch(DECIDE, Dim3.of(seqs), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(fillScores).i32(fills).ptr(fillAt).i32(layers).i32(blockSize).i32(seqs).i64(budget).i32(window).i32(layerAgg)
                        .i32(victimRule).i64(seed).ptr(blockTables).i32(tableStride).i32(numBlocks).ptr(blockScores).ptr(kvLen).ptr(logicalLen).ptr(stage).ptr(newScores)
                        .ptr(status).i32(epoch));
    }

    /** Queues tp_pe_decode_apply (after {@link #launchDecide} of the same epoch). */
    public static void launchApply(KernelDevice device, Stream stream, DeviceBuffer stage, DeviceBuffer newScores, DeviceBuffer fillAt, int layers,
                                   int blockSize, int seqs, DeviceBuffer blockTables, int tableStride, DeviceBuffer blockScores, DeviceBuffer kvLen,
                                   DeviceBuffer victims, DeviceBuffer freed, DeviceBuffer status, int epoch) {
        device.launch(APPLY, Dim3.of(seqs), Dim3.of(THREADS), 0, stream,
                KernelArgs.of().ptr(stage).ptrOrNull(newScores).ptr(fillAt).i32(layers).i32(blockSize).i32(seqs).ptr(blockTables).i32(tableStride)
                        .ptrOrNull(blockScores).ptr(kvLen).ptr(victims).ptr(freed).ptr(status).i32(epoch));
    }

    /**
     * Queues tp_pe_prefill_keep (PE-REF step 4) for {@code seqs} prompts. {@code rowOffsets},
     * {@code keepOffsets}: seqs + 1 ints each; {@code revScratch} (floats) and {@code idxScratch}
     * (ints): as many entries as {@code scores}. {@code scores == null}: score = position (keep the
     * most recent middle tokens); the scratch buffers are then not touched and may be null too.
     */
    public static void launchPrefill(KernelDevice device, Stream stream, DeviceBuffer scores, DeviceBuffer rowOffsets, int seqs, int budget,
                                     int blockSize, DeviceBuffer keepOffsets, DeviceBuffer revScratch, DeviceBuffer idxScratch, DeviceBuffer kept,
                                     DeviceBuffer status, int epoch) {
        device.launch(PREFILL, Dim3.of(seqs), Dim3.of(PREFILL_THREADS), 0, stream,
                KernelArgs.of().ptrOrNull(scores).ptr(rowOffsets).i32(seqs).i32(budget).i32(blockSize).ptr(keepOffsets).ptrOrNull(revScratch).ptrOrNull(idxScratch)
                        .ptr(kept).ptr(status).i32(epoch));
    }
}
