package tokenprune.methods;

import java.util.Arrays;

/**
 * DART's result for a batch of sequences. Per sequence b:
 * <ul>
 *   <li>{@link #keptImage(int)}: the {@link #retained()} kept image tokens, ascending, local to the
 *       image block (0 .. L-1);</li>
 *   <li>{@link #recruitedBy(int)}: for each of them, the position of the pivot that recruited it, or
 *       -1 for an image pivot;</li>
 *   <li>{@link #keep(int)}: the keep list over the whole sequence, [0, s) + (s + kept) + [s+L,
 *       seq_len), ascending; {@link #positionIds(int)} is the same list (DART keeps the original
 *       positions, gaps included);</li>
 *   <li>{@link #pivots(int)}: the pivots' positions, image pivots then text pivots, each by
 *       decreasing key L1 norm (top-k order); {@link #pivotOrder(int)}: the order they recruited in.</li>
 * </ul>
 */
public record DartSelection(int retained, int pivotCount, int[] keptImage, int[] recruitedBy, int[] keepOffsets, int[] keepList,
                            int[] pivots, int[] pivotOrder) {
    public int sequences() {
        return keepOffsets.length - 1;
    }

    public int[] keptImage(int sequence) {
        return Arrays.copyOfRange(keptImage, retained * sequence, retained * (sequence + 1));
    }

    public int[] recruitedBy(int sequence) {
        return Arrays.copyOfRange(recruitedBy, retained * sequence, retained * (sequence + 1));
    }

    public int[] keep(int sequence) {
        return Arrays.copyOfRange(keepList, keepOffsets[sequence], keepOffsets[sequence + 1]);
    }

    /** Position ids for the remaining layers: the original positions, i.e. {@link #keep(int)}. */
    public int[] positionIds(int sequence) {
        return keep(sequence);
    }

    public int[] pivots(int sequence) {
        return Arrays.copyOfRange(pivots, pivotCount * sequence, pivotCount * (sequence + 1));
    }

    public int[] pivotOrder(int sequence) {
        return Arrays.copyOfRange(pivotOrder, pivotCount * sequence, pivotCount * (sequence + 1));
    }
}
