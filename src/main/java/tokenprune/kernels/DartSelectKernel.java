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

/**
 * Launcher for {@code tp_dart_select} (src/main/cuda/dart.cu): one block per sequence orders the
 * pivots (ascending, or CPython set order emulated on the device), runs the recruit rounds with the
 * candidate pool on chip and writes the kept tokens, the keep list and the position ids.
 */
public final class DartSelectKernel {
    // cos, pivots, seq_info, p_img, p_txt, token_topk, official_order, status, epoch,
    // kept_image, keep_list, position_ids, recruited_by, pivot_order
    static final KernelSpec SPEC = KernelSpec.of("tp_dart_select", PTR, PTR, PTR, I32, I32, I32, I32, PTR, I32,
            PTR, PTR, PTR, PTR, PTR);
    /** Ints per sequence in the seq_info record. */
    public static final int INFO = 8;

    private DartSelectKernel() {
    }

    static List<KernelSpec> specs() {
        return List.of(SPEC);
    }

    /**
     * The per-sequence record the three DART kernels read, {@link #INFO} ints per sequence:
     * first row, sequence length, image start, image length, image base (sum of the earlier image
     * lengths), keep base (sum of the earlier keep-list lengths), 0, 0.
     */
    public static int[] seqInfo(int[] rowOffsets, int[] imageStart, int[] imageLength, int[] keepOffsets) {
        int sequences = imageStart.length;
        int[] info = new int[INFO * sequences];
        int imageBase = 0;
        for (int b = 0; b < sequences; b++) {
            info[INFO * b] = rowOffsets[b];
            info[INFO * b + 1] = rowOffsets[b + 1] - rowOffsets[b];
            info[INFO * b + 2] = imageStart[b];
            info[INFO * b + 3] = imageLength[b];
            info[INFO * b + 4] = imageBase;
            info[INFO * b + 5] = keepOffsets[b];
            imageBase += imageLength[b];
        }
        return info;
    }

    /** Threads per block: one per image token up to 1024 (one compaction chunk), a multiple of 32. */
    public static int threadsFor(int maxImageLength) {
        return Math.min(1024, Math.max(32, (maxImageLength + 31) / 32 * 32));
    }

    /** Dynamic shared memory: a float score and a flag byte per image token. */
    public static int sharedBytes(int maxImageLength) {
        return (5 * maxImageLength + 3) / 4 * 4;
    }

    /** The longest image block the on-chip pool fits on {@code device}. */
    public static int maxImageTokens(KernelDevice device) {
        return device.maxDynamicSharedBytes(SPEC) / 5;
    }

    /**
     * Queues the selection. {@code keptImage} is required (R ints per sequence); the keep list,
     * the int64 position ids, the recruiters and the pivot order may be null.
     */
    public static void launch(KernelDevice device, Stream stream, DeviceBuffer cos, DeviceBuffer pivots, DeviceBuffer seqInfo,
                              int sequences, int maxImageLength, int pivotImage, int pivotText, int tokenTopK,
                              boolean officialOrder, DeviceBuffer status, int epoch, DeviceBuffer keptImage,
                              DeviceBuffer keepList, DeviceBuffer positionIds, DeviceBuffer recruitedBy, DeviceBuffer pivotOrder) {
        device.launch(SPEC, Dim3.of(sequences), Dim3.of(threadsFor(maxImageLength)), sharedBytes(maxImageLength), stream,
                KernelArgs.of().ptr(cos).ptr(pivots).ptr(seqInfo).i32(pivotImage).i32(pivotText).i32(tokenTopK)
                        .i32(officialOrder ? 1 : 0).ptr(status).i32(epoch).ptr(keptImage).ptrOrNull(keepList)
                        .ptrOrNull(positionIds).ptrOrNull(recruitedBy).ptrOrNull(pivotOrder));
    }
}
