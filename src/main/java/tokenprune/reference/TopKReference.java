package tokenprune.reference;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * Reference for score-based selection (methods-vision.md §2.2): rank tokens by larger score first,
 * then lower index first, and keep the best k; or keep every token with score &gt;= a threshold.
 * Scores are compared as floats with {@code >} and {@code ==}, so {@code -0.0 == 0.0} (the two zeros
 * tie and the lower index wins). Kept indices are returned ascending (original token order), local
 * to their row. Written to be checked by eye: a sort with the rule as comparator, O(n log n).
 */
public final class TopKReference {
    private TopKReference() {
    }

    /** The rule: token i ranks before token j. */
    public static boolean ranksBefore(float scoreI, int i, float scoreJ, int j) {
        return scoreI > scoreJ || (scoreI == scoreJ && i < j);
    }

    /**
     * The k best of {@code row} by the rule, ascending.
     *
     * @throws IllegalArgumentException if k is outside [0, n] or a score is NaN/Inf (names the index)
     */
    public static int[] select(float[] row, int k) {
        checkFinite(row, 0, row.length);
        if (k < 0 || k > row.length) throw new IllegalArgumentException("k: must be in [0, n=" + row.length + "], got " + k);
        Comparator<Integer> rule = (a, b) -> ranksBefore(row[a], a, row[b], b) ? -1 : (a.equals(b) ? 0 : 1);
        int[] best = IntStream.range(0, row.length).boxed().sorted(rule).limit(k).mapToInt(Integer::intValue).toArray();
        Arrays.sort(best);
        return best;
    }

    /** Every index with {@code row[i] >= threshold}, ascending (possibly none). */
    public static int[] threshold(float[] row, float threshold) {
        checkFinite(row, 0, row.length);
        return IntStream.range(0, row.length).filter(i -> row[i] >= threshold).toArray();
    }

    /** Rows of a batch: row b is {@code scores[rowOffsets[b] .. rowOffsets[b+1])}. */
    public static float[] row(float[] scores, int[] rowOffsets, int b) {
        return Arrays.copyOfRange(scores, rowOffsets[b], rowOffsets[b + 1]);
    }

    /** Top-k of every row, packed: row b keeps keepOffsets[b+1] - keepOffsets[b]. */
    public static int[] select(float[] scores, int[] rowOffsets, int[] keepOffsets) {
        int rows = rowOffsets.length - 1;
        int[] kept = new int[keepOffsets[rows]];
        for (int b = 0; b < rows; b++) {
            int[] k = select(row(scores, rowOffsets, b), keepOffsets[b + 1] - keepOffsets[b]);
            System.arraycopy(k, 0, kept, keepOffsets[b], k.length);
        }
        return kept;
    }

    /** One byte per token (1 kept, 0 not), laid out like the scores. */
    public static byte[] mask(int[] rowOffsets, int[] keepOffsets, int[] kept) {
        byte[] mask = new byte[rowOffsets[rowOffsets.length - 1]];
        for (int b = 0; b + 1 < rowOffsets.length; b++) {
            for (int g = keepOffsets[b]; g < keepOffsets[b + 1]; g++) mask[rowOffsets[b] + kept[g]] = 1;
        }
        return mask;
    }

    /** The first NaN/Inf of scores[from, to) as "index i (value)", or null. */
    public static String firstNonFinite(float[] scores, int from, int to) {
        for (int i = from; i < to; i++) {
            if (!Float.isFinite(scores[i])) return "index " + (i - from) + " (" + scores[i] + ")";
        }
        return null;
    }

    private static void checkFinite(float[] row, int from, int to) {
        String bad = firstNonFinite(row, from, to);
        if (bad != null) throw new IllegalArgumentException("scores: non-finite value at " + bad);
    }
}
