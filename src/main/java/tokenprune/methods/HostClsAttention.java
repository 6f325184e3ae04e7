package tokenprune.methods;

import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * FasterVLM's inputs in Java arrays: the CLS queries and the keys of the chosen vision-encoder
 * layer, laid out as {@link ClsAttentionLayout} says, both fp32 (float[]) or both fp16 / bf16 bit
 * patterns (short[]).
 */
public final class HostClsAttention {
    private final Object queries;
    private final Object keys;
    private final DType dtype;
    private final ClsAttentionLayout layout;

    private HostClsAttention(Object queries, long queryLength, Object keys, long keyLength, DType dtype, ClsAttentionLayout layout) {
        if (queryLength < layout.requiredQueryElements()) {
            throw new IllegalArgumentException("queries: " + layout + " needs " + layout.requiredQueryElements() + " elements, the array has " + queryLength);
        }
        if (keyLength < layout.requiredKeyElements()) {
            throw new IllegalArgumentException("keys: " + layout + " needs " + layout.requiredKeyElements() + " elements, the array has " + keyLength);
        }
        this.queries = queries;
        this.keys = keys;
        this.dtype = dtype;
        this.layout = layout;
    }

    public static HostClsAttention of(float[] queries, float[] keys, ClsAttentionLayout layout) {
        return new HostClsAttention(queries, queries.length, keys, keys.length, DType.F32, layout);
    }

    /** fp16 or bf16 bit patterns. */
    public static HostClsAttention of(short[] queries, short[] keys, DType dtype, ClsAttentionLayout layout) {
        if (dtype == DType.F32) throw new IllegalArgumentException("dtype: a short[] holds f16 or bf16, not f32");
        return new HostClsAttention(queries, queries.length, keys, keys.length, dtype, layout);
    }

    public DType dtype() {
        return dtype;
    }

    public ClsAttentionLayout layout() {
        return layout;
    }

    /** The query array: float[] for F32, short[] otherwise. */
    public Object queries() {
        return queries;
    }

    /** The key array: float[] for F32, short[] otherwise. */
    public Object keys() {
        return keys;
    }

    /** q[b][h][e] as a float (exact for every dtype). */
    public float query(int b, int h, int e) {
        return value(queries, layout.queryOffset(b, h) + e);
    }

    /** k[b][t][h][e] as a float (exact for every dtype). */
    public float key(int b, int t, int h, int e) {
        return value(keys, layout.keyOffset(b, t, h) + e);
    }

    private float value(Object array, long i) {
        int at = Math.toIntExact(i);
        return switch (dtype) {
            case F32 -> ((float[]) array)[at];
            case F16 -> Fp16.toFloat(((short[]) array)[at]);
            case BF16 -> Bf16.toFloat(((short[]) array)[at]);
        };
    }

    /** The first NaN/Inf the kernel would read, as "query of image b, head h, element e (v)" or "key of ...", or null. */
    public String firstNonFinite() {
        int dh = layout.headDim();
        for (int b = 0; b < layout.images(); b++) {
            for (int h = 0; h < layout.heads(); h++) {
                for (int e = 0; e < dh; e++) {
                    float v = query(b, h, e);
                    if (!Float.isFinite(v)) return "query of image " + b + ", head " + h + ", element " + e + " (" + v + ")";
                }
            }
            for (int t = 0; t < layout.tokens(); t++) {
                for (int h = 0; h < layout.heads(); h++) {
                    for (int e = 0; e < dh; e++) {
                        float v = key(b, t, h, e);
                        if (!Float.isFinite(v)) return "key of image " + b + ", token " + t + ", head " + h + ", element " + e + " (" + v + ")";
                    }
                }
            }
        }
        return null;
    }
}
