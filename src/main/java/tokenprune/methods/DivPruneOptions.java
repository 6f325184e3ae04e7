package tokenprune.methods;

/**
 * How many tokens DivPrune keeps per set (a fixed {@code keep}, or {@code ratio} of each set with
 * the official rounding, {@link KeepCount#fromRatio}), whether to reproduce the official code's
 * re-selection ({@code officialCompat}), and whether to return the selection order too.
 */
public record DivPruneOptions(int keep, double ratio, boolean officialCompat, boolean withOrder) {
    /** DivPrune's default ratio: 56 of 576 tokens. */
    public static final double DEFAULT_RATIO = 0.098;

    public DivPruneOptions {
        boolean byKeep = keep > 0, byRatio = !Double.isNaN(ratio) && ratio != 0.0;
        if (keep < 0) throw new IllegalArgumentException("keep: must be >= 1, got " + keep);
        if (byKeep == byRatio) throw new IllegalArgumentException("give exactly one of keep or ratio");
        if (byRatio && !(ratio > 0 && ratio <= 1)) throw new IllegalArgumentException("ratio: must be in (0, 1], got " + ratio);
    }

    public static DivPruneOptions keep(int keep) {
        if (keep < 1) throw new IllegalArgumentException("keep: must be >= 1, got " + keep);
        return new DivPruneOptions(keep, Double.NaN, false, false);
    }

    public static DivPruneOptions ratio(double ratio) {
        if (Double.isNaN(ratio) || !(ratio > 0 && ratio <= 1)) throw new IllegalArgumentException("ratio: must be in (0, 1], got " + ratio);
        return new DivPruneOptions(0, ratio, false, false);
    }

    public DivPruneOptions officialCompat(boolean on) {
        return new DivPruneOptions(keep, ratio, on, withOrder);
    }

    public DivPruneOptions withOrder(boolean on) {
        return new DivPruneOptions(keep, ratio, officialCompat, on);
    }

    /** Keep offsets per set (sets + 1 entries), after checking every count against its set. */
    public int[] keepOffsets(TokenLayout layout) {
        KeepRule rule = keep > 0 ? KeepRule.keep(keep) : KeepRule.ratio(ratio);
        return rule.keepOffsets(layout.rowOffsets(), "set");
    }
}
