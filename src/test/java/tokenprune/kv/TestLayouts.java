package tokenprune.kv;

import tokenprune.methods.DType;
import tokenprune.reference.KvCompactionReference;
import tokenprune.reference.PromptCompressionReference;
import tokenprune.reference.TokenEvictionReference;

/**
 * Layout helpers for the sweeps over every {@link KvLayout.Kind}: LEGACY needs head dims that are
 * multiples of x = 16 / element bytes, and KvCompactionReference (and the references built on it)
 * copies a (token, head) row as headDim contiguous elements from layout.offset(kv, block, slot, h, 0),
 * which LEGACY's rows are not. For LEGACY the reference is therefore run on the FLASH_ATTENTION twin
 * of the same shape: the cache is permuted element by element through both layouts' offset(), the
 * reference runs there, and its caches are permuted back. Every other kind calls the reference as is.
 */
public final class TestLayouts {
    private TestLayouts() {
    }

    /** {@code d} for the dim-contiguous kinds; for LEGACY the smallest multiple of x = 16 / element bytes that is >= d. */
    public static int headDim(KvLayout.Kind kind, DType dtype, int d) {
        if (kind != KvLayout.Kind.LEGACY) return d;
        int x = 16 / dtype.bytes();
        return (d + x - 1) / x * x;
    }

    /** The FLASH_ATTENTION layout with the same dtype, pool and shape. */
    public static KvLayout twin(KvLayout l) {
        return KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, l.dtype(), l.numBlocks(), l.blockSize(), l.kvHeads(), l.headDim());
    }

    /** The elements of {@code cache} (layout {@code from}) in layout {@code to} of the same shape. */
    public static Object permute(KvLayout from, KvLayout to, Object cache) {
        Object out = cache instanceof float[] f ? new float[f.length] : new short[((short[]) cache).length];
        for (int kv = 0; kv < 2; kv++)
            for (int p = 0; p < from.numBlocks(); p++)
                for (int j = 0; j < from.blockSize(); j++)
                    for (int h = 0; h < from.kvHeads(); h++)
                        for (int d = 0; d < from.headDim(); d++)
                            System.arraycopy(cache, (int) from.offset(kv, p, j, h, d), out, (int) to.offset(kv, p, j, h, d), 1);
        return out;
    }

    private static Object[] permute(KvLayout from, KvLayout to, Object[] caches) {
        Object[] out = new Object[caches.length];
        for (int l = 0; l < caches.length; l++) out[l] = permute(from, to, caches[l]);
        return out;
    }

    /** {@link KvCompactionReference#compact} for any layout. */
    public static KvCompactionReference.Result compact(KvLayout layout, Object cache, float[] state, int[] srcTables, int srcStride, int[] dstTables,
                                                       int dstStride, int[] keepOffsets, int[] keep, boolean perHead, int[] deltas, int rotaryDim,
                                                       double base, boolean gptj) {
        if (layout.kind() != KvLayout.Kind.LEGACY)
            return KvCompactionReference.compact(layout, cache, state, srcTables, srcStride, dstTables, dstStride, keepOffsets, keep, perHead, deltas,
                    rotaryDim, base, gptj);
        KvLayout t = twin(layout);
        KvCompactionReference.Result r = KvCompactionReference.compact(t, permute(layout, t, cache), state, srcTables, srcStride, dstTables, dstStride,
                keepOffsets, keep, perHead, deltas, rotaryDim, base, gptj);
        return new KvCompactionReference.Result(permute(t, layout, r.cache()), r.state());
    }

    /** {@link TokenEvictionReference#evict} for any layout. */
    public static TokenEviction.Result evict(KvLayout layout, Object[] caches, float[][] states, int[] tables, int stride, int[] kvLens,
                                             TokenEviction.Options o) {
        if (layout.kind() != KvLayout.Kind.LEGACY) return TokenEvictionReference.evict(layout, caches, states, tables, stride, kvLens, o);
        KvLayout t = twin(layout);
        TokenEviction.Result r = TokenEvictionReference.evict(t, permute(layout, t, caches), states, tables, stride, kvLens, o);
        return new TokenEviction.Result(permute(t, layout, r.caches()), r.states(), r.kvLen());
    }

    /** {@link PromptCompressionReference#compress} for any layout. */
    public static PromptCompressionReference.Result compress(KvLayout layout, Object[] caches, int[] tables, int stride, int[] kvLens, int heads,
                                                             Object[] layerQueries, float[][] layerLse, int[] rowOffsets, int[] positions,
                                                             float[] weights, double scale, KvKeepSelect.Policy p) {
        if (layout.kind() != KvLayout.Kind.LEGACY)
            return PromptCompressionReference.compress(layout, caches, tables, stride, kvLens, heads, layerQueries, layerLse, rowOffsets, positions,
                    weights, scale, p);
        KvLayout t = twin(layout);
        PromptCompressionReference.Result r = PromptCompressionReference.compress(t, permute(layout, t, caches), tables, stride, kvLens, heads,
                layerQueries, layerLse, rowOffsets, positions, weights, scale, p);
        return new PromptCompressionReference.Result(permute(t, layout, r.caches()), r.kvLen(), r.scores());
    }
}
