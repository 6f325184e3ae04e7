package tokenprune.methods;

import java.util.Arrays;

/**
 * Kept token indices per set, local to the set: set b's are {@code kept[keepOffsets[b] ..
 * keepOffsets[b+1])}, ascending (original token order). {@code order}, when requested, holds the
 * same indices in selection order; otherwise it is null.
 */
public record Selection(int[] keepOffsets, int[] kept, int[] order) {
    public int sets() {
        return keepOffsets.length - 1;
    }

    public int[] kept(int set) {
        return Arrays.copyOfRange(kept, keepOffsets[set], keepOffsets[set + 1]);
    }

    public int[] order(int set) {
        if (order == null) throw new IllegalStateException("the selection order was not requested (DivPruneOptions.withOrder)");
        return Arrays.copyOfRange(order, keepOffsets[set], keepOffsets[set + 1]);
    }
}
