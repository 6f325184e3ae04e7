package tokenprune.methods;

/**
 * How many patches FasterVLM keeps per image and the attention scale. The official code takes a
 * fixed count T per image ({@code --visual-token-num}: 144, 58, 29 of 576); a {@code ratio} of the
 * N-1 patches is also accepted (T = round-half-even(ratio (N-1)), as {@link KeepCount#fromRatio}).
 * The scale multiplies q.k before the softmax; by default 1/sqrt(headDim), as in CLIP and SigLIP.
 *
 * @param keep T &gt;= 1, or 0 when a ratio is given
 * @param ratio in (0, 1], or NaN when a count is given
 * @param scale finite and &gt; 0, or NaN for the default 1/sqrt(headDim)
 */
public record FasterVlmOptions(int keep, double ratio, float scale) {
    public FasterVlmOptions {
        boolean byKeep = keep > 0, byRatio = !Double.isNaN(ratio);
        if (keep < 0) throw new IllegalArgumentException("keep: must be >= 1, got " + keep);
        if (byKeep == byRatio) throw new IllegalArgumentException("give exactly one of keep or ratio");
        if (byRatio && !(ratio > 0 && ratio <= 1)) throw new IllegalArgumentException("ratio: must be in (0, 1], got " + ratio);
        if (!Float.isNaN(scale) && !(Float.isFinite(scale) && scale > 0)) {
            throw new IllegalArgumentException("scale: must be finite and > 0, got " + scale);
        }
    }

    /** Keep T patches of every image. */
    public static FasterVlmOptions keep(int keep) {
        if (keep < 1) throw new IllegalArgumentException("keep: must be >= 1, got " + keep);
        return new FasterVlmOptions(keep, Double.NaN, Float.NaN);
    }

    /** Keep round-half-even(ratio (N-1)) patches of every image. */
    public static FasterVlmOptions ratio(double ratio) {
        if (Double.isNaN(ratio) || !(ratio > 0 && ratio <= 1)) throw new IllegalArgumentException("ratio: must be in (0, 1], got " + ratio);
        return new FasterVlmOptions(0, ratio, Float.NaN);
    }

    /** The same options with an explicit attention scale instead of 1/sqrt(headDim). */
    public FasterVlmOptions withScale(float scale) {
        return new FasterVlmOptions(keep, ratio, scale);
    }

    /** FasterVLM's default scale, headDim^-0.5 (Python's {@code head_dim ** -0.5} rounded to fp32). */
    public static float defaultScale(int headDim) {
        if (headDim < 1) throw new IllegalArgumentException("headDim: must be >= 1, got " + headDim);
        return (float) Math.pow(headDim, -0.5);
    }

    /** The scale for keys of {@code headDim} elements. */
    public float scaleFor(int headDim) {
        return Float.isNaN(scale) ? defaultScale(headDim) : scale;
    }

    /**
     * T for images of {@code patches} patches.
     *
     * @throws IllegalArgumentException if T is outside [1, patches], or the ratio keeps none
     */
    public int keepFor(int patches) {
        if (keep > 0) {
            if (keep > patches) throw new IllegalArgumentException("keep: must be in [1, N-1 = " + patches + " patches], got " + keep);
            return keep;
        }
        return KeepCount.fromRatio(patches, ratio);
    }

    /** Keep offsets (images + 1 entries): image b's kept patches are at [b T, (b+1) T). */
    public int[] keepOffsets(ClsAttentionLayout layout) {
        int t = keepFor(layout.patches());
        int[] offsets = new int[layout.images() + 1];
        for (int b = 0; b <= layout.images(); b++) offsets[b] = Math.multiplyExact(b, t);
        return offsets;
    }
}
