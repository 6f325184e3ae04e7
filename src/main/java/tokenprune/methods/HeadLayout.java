package tokenprune.methods;

/**
 * How per-head vectors (attention queries or keys) sit in memory: element i of head h of token t
 * is at {@code t * tokenStride + h * headStride + i}. The usual {@code [tokens][heads][headDim]}
 * tensor is {@link #packed}; a slice of a fused QKV projection or a {@code [heads][tokens][headDim]}
 * tensor gives its own strides.
 */
public record HeadLayout(int tokens, int heads, int headDim, long tokenStride, long headStride) {
    public HeadLayout {
        if (tokens < 1) throw new IllegalArgumentException("tokens: need >= 1, got " + tokens);
        if (heads < 1) throw new IllegalArgumentException("heads: need >= 1, got " + heads);
        if (headDim < 1) throw new IllegalArgumentException("headDim: need >= 1, got " + headDim);
        if (tokens > 1 && tokenStride < 1) throw new IllegalArgumentException("tokenStride: need >= 1, got " + tokenStride);
        if (heads > 1 && headStride < headDim) throw new IllegalArgumentException("headStride: need >= headDim = " + headDim + ", got " + headStride);
        if (tokenStride < 0 || headStride < 0) throw new IllegalArgumentException("tokenStride/headStride: must be >= 0");
    }

    /** {@code [tokens][heads][headDim]}, dense. */
    public static HeadLayout packed(int tokens, int heads, int headDim) {
        return new HeadLayout(tokens, heads, headDim, (long) heads * headDim, headDim);
    }

    /** Elements a buffer must hold: up to the last element of the farthest (token, head) vector. */
    public long requiredElements() {
        return (tokens - 1L) * tokenStride + (heads - 1L) * headStride + headDim;
    }

    public long offset(int token, int head) {
        return token * tokenStride + head * headStride;
    }
}
