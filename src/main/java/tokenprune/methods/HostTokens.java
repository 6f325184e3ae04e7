package tokenprune.methods;

import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * Token features in a Java array: fp32 in a float[], or fp16 / bf16 bit patterns in a short[],
 * laid out as {@link TokenLayout} says.
 */
public final class HostTokens {
    private final Object data;
    private final DType dtype;
    private final TokenLayout layout;

    private HostTokens(Object data, DType dtype, TokenLayout layout, long length) {
        if (length < layout.requiredElements()) {
            throw new IllegalArgumentException("tokens: " + layout + " needs " + layout.requiredElements() + " elements, the array has " + length);
        }
        this.data = data;
        this.dtype = dtype;
        this.layout = layout;
    }

    /** One set of n tokens of d features, row-major. */
    public static HostTokens of(float[] data, int n, int d) {
        return new HostTokens(data, DType.F32, TokenLayout.uniform(1, n, d), data.length);
    }

    /** B sets of n tokens of d features (a B x N x D array). */
    public static HostTokens batch(float[] data, int sets, int n, int d) {
        return new HostTokens(data, DType.F32, TokenLayout.uniform(sets, n, d), data.length);
    }

    public static HostTokens of(float[] data, TokenLayout layout) {
        return new HostTokens(data, DType.F32, layout, data.length);
    }

    /** fp16 or bf16 bit patterns. */
    public static HostTokens of(short[] bits, DType dtype, TokenLayout layout) {
        if (dtype == DType.F32) throw new IllegalArgumentException("dtype: a short[] holds f16 or bf16, not f32");
        return new HostTokens(bits, dtype, layout, bits.length);
    }

    public DType dtype() {
        return dtype;
    }

    public TokenLayout layout() {
        return layout;
    }

    /** The backing array: float[] for F32, short[] otherwise. */
    public Object data() {
        return data;
    }

    public float value(long row, int feature) {
        long i = row * layout.rowStride() + feature;
        return switch (dtype) {
            case F32 -> ((float[]) data)[(int) i];
            case F16 -> Fp16.toFloat(((short[]) data)[(int) i]);
            case BF16 -> Bf16.toFloat(((short[]) data)[(int) i]);
        };
    }

    /** The rows of one set as floats (exact for every dtype), for the reference. */
    public float[][] set(int b) {
        int n = layout.n(b), d = layout.d();
        int first = layout.rowOffsets()[b];
        float[][] rows = new float[n][d];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < d; j++) rows[i][j] = value(first + i, j);
        }
        return rows;
    }

    /** The first non-finite value as "set b, token i, feature j (value)", or null if all are finite. */
    public String firstNonFinite() {
        int[] offsets = layout.rowOffsets();
        for (int b = 0; b < layout.sets(); b++) {
            for (int r = offsets[b]; r < offsets[b + 1]; r++) {
                for (int j = 0; j < layout.d(); j++) {
                    float v = value(r, j);
                    if (!Float.isFinite(v)) return "set " + b + ", token " + (r - offsets[b]) + ", feature " + j + " (" + v + ")";
                }
            }
        }
        return null;
    }
}
