package tokenprune.kernels;

import static tokenprune.device.ArgType.F32;
import static tokenprune.device.ArgType.I32;
import static tokenprune.device.ArgType.PTR;

import java.util.List;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.Dim3;
import tokenprune.device.KernelArgs;
import tokenprune.device.KernelDevice;
import tokenprune.device.KernelSpec;
import tokenprune.device.Stream;

/**
 * Launcher for tp_transprune_select (src/main/cuda/transprune.cu): the pruning point's whole
 * decision in one launch, one block per sequence — the score (folding the pending TTV terms into
 * the accumulated vector, reducing IGA), the top-k, and the re-indexing of the accumulated vector
 * plus the caller's outputs.
 */
public final class TransPruneScoreKernel {
    static final int THREADS = 256;

    // seq, me, me_stride, z_partial, z_stride, chunks_max, pending, acc, acc_valid, iga_partial, heads, tiles_max,
    // image_total, w_ttv, w_iga, scores, keep_offsets, kept, acc_out, kept_out, row_gather_out, status, epoch
    static final KernelSpec SELECT = KernelSpec.of("tp_transprune_select", PTR, PTR, I32, PTR, I32, I32, I32, PTR, I32, PTR, I32, I32, I32,
            F32, F32, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32);

    private TransPruneScoreKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(SELECT);
    }

    /**
     * One block per sequence. {@code me} / {@code zPartial}: {@code pending} slots of
     * {@code meStride} / {@code zStride} floats (TtvKernel outputs); {@code acc}: the accumulated
     * TTV vector, folded in place ({@code accValid} false: starts from 0); {@code igaPartial} null
     * in TTV-only mode; {@code scores}: one float per image token, written; {@code kept}: the
     * kept indices per sequence at {@code keepOffsets} (scratch); {@code accOut}: the re-indexed
     * vector; {@code keptOut} and {@code rowGatherOut} may be null.
     */
    public static void launchSelect(KernelDevice device, Stream stream, DeviceBuffer seq, int sets, DeviceBuffer me, int meStride,
                                    DeviceBuffer zPartial, int zStride, int chunksMax, int pending, DeviceBuffer acc, boolean accValid,
                                    DeviceBuffer igaPartial, int heads, int tilesMax, int imageTotal, float wTtv, float wIga,
                                    DeviceBuffer scores, DeviceBuffer keepOffsets, DeviceBuffer kept, DeviceBuffer accOut,
                                    DeviceBuffer keptOut, DeviceBuffer rowGatherOut, DeviceBuffer status, int epoch) {
        device.launch(SELECT, Dim3.of(sets), Dim3.of(THREADS), 4 * pending, stream,
                KernelArgs.of().ptr(seq).ptr(me).i32(meStride).ptr(zPartial).i32(zStride).i32(chunksMax).i32(pending).ptr(acc).i32(accValid ? 1 : 0)
                        .ptrOrNull(igaPartial).i32(heads).i32(tilesMax).i32(imageTotal).f32(wTtv).f32(wIga).ptr(scores).ptr(keepOffsets).ptr(kept)
                        .ptr(accOut).ptrOrNull(keptOut).ptrOrNull(rowGatherOut).ptr(status).i32(epoch));
    }
}
