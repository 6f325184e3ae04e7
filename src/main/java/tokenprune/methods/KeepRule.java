package tokenprune.methods;

/**
 * How many tokens a score-based selection keeps per row: a fixed count ({@link #keep}), a fraction of
 * each row with DivPrune's official rounding ({@link #ratio}, {@link KeepCount#fromRatio}), or every
 * token whose score reaches a threshold ({@link #threshold}; possibly none, so the counts depend on
 * the scores).
 */
public sealed interface KeepRule {
    /** Keep exactly {@code keep} tokens of every row (each row needs at least that many). */
    static KeepRule keep(int keep) {
        return new Count(keep);
    }

    /** Keep round-half-even(ratio * n_b) tokens of row b; ratio in (0, 1], at least 1 per row. */
    static KeepRule ratio(double ratio) {
        return new Ratio(ratio);
    }

    /** Keep every token with score {@code >= threshold} (finite); a row may keep none. */
    static KeepRule threshold(float threshold) {
        return new Threshold(threshold);
    }

    /** True when the keep counts are known before the scores are (count and ratio rules). */
    default boolean fixedCounts() {
        return !(this instanceof Threshold);
    }

    /**
     * Keep offsets (rows + 1 entries) for rows {@code [rowOffsets[b], rowOffsets[b+1])}.
     *
     * @throws IllegalArgumentException if a row cannot satisfy the rule (the message names the row)
     * @throws IllegalStateException for a threshold rule, whose counts depend on the scores
     */
    default int[] keepOffsets(int[] rowOffsets) {
        return keepOffsets(rowOffsets, "row");
    }

    /** As {@link #keepOffsets(int[])}, naming a failing row "{@code unit} b" (e.g. "set 2"). */
    int[] keepOffsets(int[] rowOffsets, String unit);

    record Count(int keep) implements KeepRule {
        public Count {
            if (keep < 1) throw new IllegalArgumentException("keep: must be >= 1, got " + keep);
        }

        @Override
        public int[] keepOffsets(int[] rowOffsets, String unit) {
            return perRow(rowOffsets, unit, n -> KeepCount.checkKeep(n, keep));
        }
    }

    record Ratio(double ratio) implements KeepRule {
        public Ratio {
            if (Double.isNaN(ratio) || !(ratio > 0 && ratio <= 1)) throw new IllegalArgumentException("ratio: must be in (0, 1], got " + ratio);
        }

        @Override
        public int[] keepOffsets(int[] rowOffsets, String unit) {
            return perRow(rowOffsets, unit, n -> KeepCount.fromRatio(n, ratio));
        }
    }

    record Threshold(float threshold) implements KeepRule {
        public Threshold {
            if (!Float.isFinite(threshold)) throw new IllegalArgumentException("threshold: must be finite, got " + threshold);
        }

        @Override
        public int[] keepOffsets(int[] rowOffsets, String unit) {
            throw new IllegalStateException("a threshold rule's keep counts depend on the scores");
        }
    }

    private static int[] perRow(int[] rowOffsets, String unit, java.util.function.IntUnaryOperator count) {
        int rows = rowOffsets.length - 1;
        int[] offsets = new int[rows + 1];
        for (int b = 0; b < rows; b++) {
            int k;
            try {
                k = count.applyAsInt(rowOffsets[b + 1] - rowOffsets[b]);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException((rows > 1 ? unit + " " + b + ": " : "") + e.getMessage(), e);
            }
            offsets[b + 1] = offsets[b] + k;
        }
        return offsets;
    }
}
