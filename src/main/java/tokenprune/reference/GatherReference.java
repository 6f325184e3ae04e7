package tokenprune.reference;

/**
 * Reference for token gathering: copy the kept rows of each set into a packed array and number
 * them. Element copies, so the result is bit-exact for every dtype.
 */
public final class GatherReference {
    private GatherReference() {
    }

    /**
     * Packs rows: output row g = keepOffsets[b] + r (d elements, dense) is input row
     * {@code rowOffsets[b] + kept[g]} (at {@code row * rowStride}).
     *
     * @param data float[] or short[] (fp16/bf16 bits); the result has the same type
     */
    public static Object gather(Object data, int[] rowOffsets, int d, long rowStride, int[] keepOffsets, int[] kept) {
        int total = keepOffsets[keepOffsets.length - 1];
        Object out = java.lang.reflect.Array.newInstance(data.getClass().getComponentType(), total * d);
        for (int b = 0; b + 1 < keepOffsets.length; b++) {
            for (int g = keepOffsets[b]; g < keepOffsets[b + 1]; g++) {
                long srcRow = rowOffsets[b] + (long) kept[g];
                System.arraycopy(data, Math.toIntExact(srcRow * rowStride), out, g * d, d);
            }
        }
        return out;
    }

    /**
     * Position ids of the kept rows: {@code base + r} (renumbered 0 .. k_b-1 per set) or
     * {@code base + kept[g]} (the original position, with gaps).
     */
    public static int[] positions(int[] keepOffsets, int[] kept, boolean original, int base) {
        int[] p = new int[keepOffsets[keepOffsets.length - 1]];
        for (int b = 0; b + 1 < keepOffsets.length; b++) {
            for (int g = keepOffsets[b]; g < keepOffsets[b + 1]; g++) p[g] = base + (original ? kept[g] : g - keepOffsets[b]);
        }
        return p;
    }
}
