package tokenprune.reference;

import tokenprune.kv.KvLayout;
import tokenprune.methods.DType;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * Reference for KV-cache compaction of one layer (methods-kv.md §11, §6 SL-4): a plain copy loop that
 * reads every kept token from the ORIGINAL cache and writes it to its destination in a copy — the
 * answer a race-free in-place compaction must reproduce. Copies are bit-exact; a rotated key is
 * computed in double ((x cos a − y sin a, x sin a + y cos a), a = delta·base^(−2i/rotaryDim)) and
 * rounded to the cache dtype.
 */
public final class KvCompactionReference {
    private KvCompactionReference() {
    }

    /** The compacted copy of one layer's cache (float[] or short[] bits, as given) and state (null if none). */
    public record Result(Object cache, float[] state) {
    }

    /**
     * @param cache      float[] (F32) or short[] raw fp16/bf16 bits, {@code layout.elements()} long
     * @param state      null or numBlocks × B × kvHeads floats, moved with the tokens
     * @param dstTables  null = in place (the source tables)
     * @param keep       this layer's lists: {@code keep[h·headStride + keepOffsets[s] + i]}, headStride =
     *                   total kept if {@code perHead}, else 0
     * @param deltas     null (delta = destination − source) or the rotation deltas, shaped like keep
     * @param rotaryDim  0 = no rotation
     */
    public static Result compact(KvLayout layout, Object cache, float[] state, int[] srcTables, int srcStride, int[] dstTables, int dstStride,
                                 int[] keepOffsets, int[] keep, boolean perHead, int[] deltas, int rotaryDim, double base, boolean gptj) {
        if (dstTables == null) {
            dstTables = srcTables;
            dstStride = srcStride;
        }
        Object out = cache instanceof float[] f ? f.clone() : ((short[]) cache).clone();
        float[] outState = state != null ? state.clone() : null;
        int b = layout.blockSize(), heads = layout.kvHeads(), dim = layout.headDim();
        int total = keepOffsets[keepOffsets.length - 1];
        for (int s = 0; s + 1 < keepOffsets.length; s++) {
            for (int h = 0; h < heads; h++) {
                int at = (perHead ? h * total : 0) + keepOffsets[s];
                for (int i = 0; i < keepOffsets[s + 1] - keepOffsets[s]; i++) {
                    int k = keep[at + i];
                    int ps = srcTables[s * srcStride + k / b], pd = dstTables[s * dstStride + i / b];
                    long delta = deltas != null ? deltas[at + i] : i - k;
                    for (int kv = 0; kv < 2; kv++) {
                        // element by element through the layout: a row's dims need not be contiguous (LEGACY)
                        if (kv == 0 && rotaryDim > 0 && delta != 0) {
                            double[] row = new double[dim];
                            for (int d = 0; d < dim; d++) row[d] = load(cache, layout.dtype(), layout.offset(kv, ps, k % b, h, d));
                            rotate(row, rotaryDim, base, gptj, delta);
                            for (int d = 0; d < dim; d++) store(out, layout.dtype(), layout.offset(kv, pd, i % b, h, d), row[d]);
                        } else {
                            for (int d = 0; d < dim; d++)  // bit-exact
                                System.arraycopy(cache, (int) layout.offset(kv, ps, k % b, h, d), out, (int) layout.offset(kv, pd, i % b, h, d), 1);
                        }
                    }
                    if (state != null) outState[(pd * b + i % b) * heads + h] = state[(ps * b + k % b) * heads + h];
                }
            }
        }
        return new Result(out, outState);
    }

    /** Rotates the first rotaryDim dims of {@code row} by delta·θ_i per pair, in place, in double. */
    public static void rotate(double[] row, int rotaryDim, double base, boolean gptj, double delta) {
        int half = rotaryDim / 2;
        for (int i = 0; i < half; i++) {
            int ix = gptj ? 2 * i : i, iy = gptj ? 2 * i + 1 : i + half;
            double a = delta * Math.pow(base, -2.0 * i / rotaryDim);
            double x = row[ix], y = row[iy];
            row[ix] = x * Math.cos(a) - y * Math.sin(a);
            row[iy] = x * Math.sin(a) + y * Math.cos(a);
        }
    }

    static double load(Object data, DType dtype, long at) {
        return switch (dtype) {
            case F32 -> ((float[]) data)[(int) at];
            case F16 -> Fp16.toFloat(((short[]) data)[(int) at]);
            case BF16 -> Bf16.toFloat(((short[]) data)[(int) at]);
        };
    }

    static void store(Object data, DType dtype, long at, double v) {
        switch (dtype) {
            case F32 -> ((float[]) data)[(int) at] = (float) v;
            case F16 -> ((short[]) data)[(int) at] = Fp16.fromFloat((float) v);
            case BF16 -> ((short[]) data)[(int) at] = Bf16.fromFloat((float) v);
        }
    }
}
