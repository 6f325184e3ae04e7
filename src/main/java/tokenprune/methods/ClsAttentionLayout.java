package tokenprune.methods;

/**
 * Where FasterVLM's inputs sit in memory, in elements: for image b (an image, an anyres crop or a
 * video frame) and head h, the CLS query {@code q[b][h][0 .. headDim)} starts at
 * {@code queryImageStride * b + queryHeadStride * h}, and the key of token t (t = 0 is CLS, 1 ..
 * tokens-1 the patches) at {@code keyImageStride * b + keyTokenStride * t + keyHeadStride * h}; the
 * headDim elements of one query or key are contiguous.
 *
 * <p>{@link #dense} is queries {@code [B][H][dh]} and token-major keys {@code [B][N][H][dh]} (the
 * k_proj output of a ViT); {@link #withKeyStrides} and {@link #withQueryStrides} describe anything
 * else, e.g. head-major keys {@code [B][H][N][dh]} ({@code keyTokenStride = dh, keyHeadStride = N dh}),
 * the query read straight from row 0 of a {@code [B][N][H dh]} q_proj output
 * ({@code queryImageStride = N H dh}), or q and k inside one fused qkv buffer.
 *
 * @param images B &gt;= 1
 * @param tokens N &gt;= 2: the CLS token and at least one patch
 * @param heads H &gt;= 1
 * @param headDim dh &gt;= 1
 */
public record ClsAttentionLayout(int images, int tokens, int heads, int headDim, long queryImageStride, long queryHeadStride,
                                 long keyImageStride, long keyTokenStride, long keyHeadStride) {
    public ClsAttentionLayout {
        if (images < 1) throw new IllegalArgumentException("images: must be >= 1, got " + images);
        if (tokens < 2) throw new IllegalArgumentException("tokens: must be >= 2 (the CLS token and at least one patch), got " + tokens);
        if (heads < 1) throw new IllegalArgumentException("heads: must be >= 1, got " + heads);
        if (headDim < 1) throw new IllegalArgumentException("headDim: must be >= 1, got " + headDim);
        checkStride("queryImageStride", queryImageStride, images, headDim);
        checkStride("queryHeadStride", queryHeadStride, heads, headDim);
        checkStride("keyImageStride", keyImageStride, images, headDim);
        checkStride("keyTokenStride", keyTokenStride, tokens, headDim);
        checkStride("keyHeadStride", keyHeadStride, heads, headDim);
        if ((long) images * heads > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("images x heads = " + (long) images * heads + " blocks exceed 2^31 - 1");
        }
        if ((long) images * (tokens - 1) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("images x (tokens - 1) = " + (long) images * (tokens - 1) + " scores exceed 2^31 - 1");
        }
    }

    private static void checkStride(String name, long stride, int count, int headDim) {
        if (stride < 0) throw new IllegalArgumentException(name + ": must be >= 0, got " + stride);
        if (count > 1 && stride < headDim) {
            throw new IllegalArgumentException(name + ": must be >= headDim = " + headDim + " (rows must not overlap), got " + stride);
        }
    }

    /** Queries {@code [B][H][dh]}, keys {@code [B][N][H][dh]}, both packed. */
    public static ClsAttentionLayout dense(int images, int tokens, int heads, int headDim) {
        if (heads < 1) throw new IllegalArgumentException("heads: must be >= 1, got " + heads);
        if (headDim < 1) throw new IllegalArgumentException("headDim: must be >= 1, got " + headDim);
        long row = (long) heads * headDim;
        return new ClsAttentionLayout(images, tokens, heads, headDim, row, headDim, row * tokens, row, headDim);
    }

    public ClsAttentionLayout withQueryStrides(long imageStride, long headStride) {
        return new ClsAttentionLayout(images, tokens, heads, headDim, imageStride, headStride, keyImageStride, keyTokenStride, keyHeadStride);
    }

    public ClsAttentionLayout withKeyStrides(long imageStride, long tokenStride, long headStride) {
        return new ClsAttentionLayout(images, tokens, heads, headDim, queryImageStride, queryHeadStride, imageStride, tokenStride, headStride);
    }

    /** Patches per image: tokens - 1 (the CLS column is dropped). */
    public int patches() {
        return tokens - 1;
    }

    /** Element offset of q[b][h][0]. */
    public long queryOffset(int b, int h) {
        return queryImageStride * b + queryHeadStride * h;
    }

    /** Element offset of k[b][t][h][0]. */
    public long keyOffset(int b, int t, int h) {
        return keyImageStride * b + keyTokenStride * t + keyHeadStride * h;
    }

    /** Elements the query buffer must hold: up to the last element of the last query. */
    public long requiredQueryElements() {
        return queryOffset(images - 1, heads - 1) + headDim;
    }

    /** Elements the key buffer must hold: up to the last element of the last key. */
    public long requiredKeyElements() {
        return keyOffset(images - 1, tokens - 1, heads - 1) + headDim;
    }

    /** Score row offsets: image b's patch scores are {@code [b (N-1), (b+1)(N-1))}. */
    public int[] scoreRowOffsets() {
        int[] offsets = new int[images + 1];
        for (int b = 0; b <= images; b++) offsets[b] = b * patches();
        return offsets;
    }
}
