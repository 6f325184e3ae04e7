package tokenprune.kernels;

import static tokenprune.device.ArgType.I32;
import static tokenprune.device.ArgType.PTR;

import java.util.List;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.Dim3;
import tokenprune.device.KernelArgs;
import tokenprune.device.KernelDevice;
import tokenprune.device.KernelSpec;
import tokenprune.device.Stream;

/** Launcher for src/main/cuda/maxmin_select.cu: DivPrune's k greedy steps, one block per set. */
public final class MaxMinSelectKernel {
    // dist, nn_partial, tiles_max, row_offsets, keep_offsets, official_compat, status, epoch, kept_sorted, selection_order
    static final KernelSpec SPEC = KernelSpec.of("tp_divprune_select", PTR, PTR, I32, PTR, PTR, I32, PTR, I32, PTR, PTR);

    private MaxMinSelectKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(SPEC);
    }

    /**
     * Threads per block: about two tokens per thread, a multiple of 32, at most 1024. Each step's
     * arg-max is a latency chain, so more threads than tokens would only add reduction depth.
     */
    public static int threadsFor(int maxN) {
        int half = (maxN + 1) / 2;
        return Math.min(1024, Math.max(32, (half + 31) / 32 * 32));
    }

    /** Dynamic shared memory: a float min-distance and an int keep-count per token. */
    public static int sharedBytes(int maxN) {
        return 8 * maxN;
    }

    /** The largest set the on-chip state fits on {@code device}. */
    public static int maxTokens(KernelDevice device) {
        return device.maxDynamicSharedBytes(SPEC) / 8;
    }

    public static void launch(KernelDevice device, Stream stream, DeviceBuffer dist, DeviceBuffer nnPartial, int maxN,
                              DeviceBuffer rowOffsets, DeviceBuffer keepOffsets, int sets, boolean officialCompat,
                              DeviceBuffer status, int epoch, DeviceBuffer keptSorted, DeviceBuffer selectionOrder) {
        device.launch(SPEC, Dim3.of(sets), Dim3.of(threadsFor(maxN)), sharedBytes(maxN), stream,
                KernelArgs.of().ptr(dist).ptr(nnPartial).i32(CosineDistanceKernel.tiles(maxN)).ptr(rowOffsets).ptr(keepOffsets)
                        .i32(officialCompat ? 1 : 0).ptr(status).i32(epoch).ptr(keptSorted).ptrOrNull(selectionOrder));
    }
}
