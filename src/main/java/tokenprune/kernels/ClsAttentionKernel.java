package tokenprune.kernels;

import static tokenprune.device.ArgType.F32;
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
import tokenprune.methods.DType;

/**
 * Launcher for src/main/cuda/cls_attention.cu: FasterVLM's [CLS] attention scores (softmax over
 * all N keys per head, head mean, CLS column dropped) for a whole batch in one launch, one block
 * per (image, head).
 */
public final class ClsAttentionKernel {
    /** Threads per block (the kernel's __launch_bounds__). */
    public static final int THREADS = 256;

    static final KernelSpec F32_SPEC = spec("tp_cls_attention_f32");
    static final KernelSpec F16_SPEC = spec("tp_cls_attention_f16");
    static final KernelSpec BF16_SPEC = spec("tp_cls_attention_bf16");

    private ClsAttentionKernel() {
    }

    private static KernelSpec spec(String name) {
        // q, q_image_stride, q_head_stride, k, k_image_stride, k_token_stride, k_head_stride, n, heads, dh, scale,
        // probs, arrivals, status, epoch, scores
        return KernelSpec.of(name, PTR, I64, I64, PTR, I64, I64, I64, I32, I32, I32, F32, PTR, PTR, PTR, I32, PTR);
    }

    /** The most dynamic shared memory a block of this family may use on {@code device}. */
    public static int maxSharedBytes(KernelDevice device) {
        return device.maxDynamicSharedBytes(specs());
    }

    static List<KernelSpec> specs() {
        return List.of(F32_SPEC, F16_SPEC, BF16_SPEC);
    }

    /** Dynamic shared memory: the n logits and q_h, in fp32. */
    public static long sharedBytes(int n, int headDim) {
        return 4L * ((long) n + headDim);
    }

    /** Floats of the per-head probability scratch: images x heads x (n - 1). */
    public static long probFloats(int images, int heads, int n) {
        return (long) images * heads * (n - 1);
    }

    /**
     * Queues the scores kernel. {@code arrivals} holds one int per image, zero before the first
     * call (the kernel returns them to zero); {@code probs} holds {@link #probFloats} floats;
     * {@code scores} receives images x (n - 1) floats. Bad input sets {@code *status = epoch} and
     * the scores of the images concerned are not written. Strides are in elements.
     */
    public static void launch(KernelDevice device, Stream stream, DType dtype, DeviceBuffer q, long qImageStride, long qHeadStride,
                              DeviceBuffer k, long kImageStride, long kTokenStride, long kHeadStride, int images, int n, int heads,
                              int headDim, float scale, DeviceBuffer probs, DeviceBuffer arrivals, DeviceBuffer status, int epoch,
                              DeviceBuffer scores) {
        KernelSpec spec = switch (dtype) {
            case F32 -> F32_SPEC;
            case F16 -> F16_SPEC;
            case BF16 -> BF16_SPEC;
        };
        int blocks = Math.multiplyExact(images, heads);
        device.launch(spec, Dim3.of(blocks), Dim3.of(THREADS), Math.toIntExact(sharedBytes(n, headDim)), stream,
                KernelArgs.of().ptr(q).i64(qImageStride).i64(qHeadStride).ptr(k).i64(kImageStride).i64(kTokenStride).i64(kHeadStride)
                        .i32(n).i32(heads).i32(headDim).f32(scale).ptr(probs).ptr(arrivals).ptr(status).i32(epoch).ptr(scores));
    }
}
