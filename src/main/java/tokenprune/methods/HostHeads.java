package tokenprune.methods;

import java.util.Objects;

import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * Per-head vectors (queries or keys) in a Java array: fp32 in a float[], fp16 / bf16 bit patterns
 * in a short[], laid out as {@link HeadLayout} says.
 */
public final class HostHeads {
    private final Object data;
    private final DType dtype;
    private final HeadLayout layout;

    private HostHeads(Object data, DType dtype, HeadLayout layout, long length) {
        Objects.requireNonNull(layout, "layout");
        if (length < layout.requiredElements()) {
            throw new IllegalArgumentException("heads: " + layout + " needs " + layout.requiredElements() + " elements, the array has " + length);
        }
        this.data = data;
        this.dtype = dtype;
        this.layout = layout;
    }

    public static HostHeads of(float[] data, HeadLayout layout) {
        return new HostHeads(Objects.requireNonNull(data, "data"), DType.F32, layout, data.length);
    }

    /** {@code [tokens][heads][headDim]} fp32, dense. */
    public static HostHeads packed(float[] data, int tokens, int heads, int headDim) {
        return of(data, HeadLayout.packed(tokens, heads, headDim));
    }

    public static HostHeads of(short[] bits, DType dtype, HeadLayout layout) {
        if (dtype == DType.F32) throw new IllegalArgumentException("dtype: a short[] holds f16 or bf16, not f32");
        return new HostHeads(Objects.requireNonNull(bits, "bits"), dtype, layout, bits.length);
    }

    public DType dtype() {
        return dtype;
    }

    public HeadLayout layout() {
        return layout;
    }

    /** float[] for F32, short[] otherwise. */
    public Object data() {
        return data;
    }

    public float value(int token, int head, int i) {
        long at = layout.offset(token, head) + i;
        return switch (dtype) {
            case F32 -> ((float[]) data)[(int) at];
            case F16 -> Fp16.toFloat(((short[]) data)[(int) at]);
            case BF16 -> Bf16.toFloat(((short[]) data)[(int) at]);
        };
    }

    /** Tokens [from, to) as [token][head][i] floats (exact for every dtype), for the reference. */
    public float[][][] tokens(int from, int to) {
        float[][][] out = new float[to - from][layout.heads()][layout.headDim()];
        for (int t = from; t < to; t++) {
            for (int h = 0; h < layout.heads(); h++) {
                for (int i = 0; i < layout.headDim(); i++) out[t - from][h][i] = value(t, h, i);
            }
        }
        return out;
    }

    /** The first NaN/Inf among tokens [from, to) as "token t, head h, feature i (v)", or null. */
    public String firstNonFinite(int from, int to) {
        for (int t = from; t < to; t++) {
            for (int h = 0; h < layout.heads(); h++) {
                for (int i = 0; i < layout.headDim(); i++) {
                    float v = value(t, h, i);
                    if (!Float.isFinite(v)) return "token " + t + ", head " + h + ", feature " + i + " (" + v + ")";
                }
            }
        }
        return null;
    }
}
