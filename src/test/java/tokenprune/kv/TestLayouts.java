package tokenprune.kv;

import tokenprune.methods.DType;

/** Layout helpers for the sweeps over every {@link KvLayout.Kind}: LEGACY needs head dims that are multiples of x = 16 / element bytes. */
public final class TestLayouts {
    private TestLayouts() {
    }

    /** {@code d} for the dim-contiguous kinds; for LEGACY the smallest multiple of x = 16 / element bytes that is >= d. */
    public static int headDim(KvLayout.Kind kind, DType dtype, int d) {
        if (kind != KvLayout.Kind.LEGACY) return d;
        int x = 16 / dtype.bytes();
        return (d + x - 1) / x * x;
    }
}
