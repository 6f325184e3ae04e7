package tokenprune.methods;

import java.util.Objects;

/**
 * TransPrune settings: the schedule, the score weights ({@code score = wTtv * A/(sum A + 1e-8) +
 * wIga * IGA/(sum IGA + 1e-8)}, default 1 and 1, methods-vision.md §6.3) and TTV-only mode (no IGA:
 * no queries or keys needed, score = wTtv * A/(sum A + 1e-8)). Immutable.
 */
public final class TransPruneOptions {
    private final TransPruneSchedule schedule;
    private final float ttvWeight, igaWeight;
    private final boolean ttvOnly;

    private TransPruneOptions(TransPruneSchedule schedule, float ttvWeight, float igaWeight, boolean ttvOnly) {
        this.schedule = schedule;
        this.ttvWeight = ttvWeight;
        this.igaWeight = igaWeight;
        this.ttvOnly = ttvOnly;
    }

    public static TransPruneOptions defaults() {
        return new TransPruneOptions(TransPruneSchedule.defaults(), 1f, 1f, false);
    }

    public TransPruneOptions schedule(TransPruneSchedule s) {
        return new TransPruneOptions(Objects.requireNonNull(s, "schedule"), ttvWeight, igaWeight, ttvOnly);
    }

    /**
     * The score weights.
     *
     * @throws IllegalArgumentException unless both are finite and >= 0 and not both 0
     */
    public TransPruneOptions weights(double ttv, double iga) {
        if (!Double.isFinite(ttv) || ttv < 0) throw new IllegalArgumentException("ttvWeight: must be finite and >= 0, got " + ttv);
        if (!Double.isFinite(iga) || iga < 0) throw new IllegalArgumentException("igaWeight: must be finite and >= 0, got " + iga);
        if (ttv == 0 && iga == 0) throw new IllegalArgumentException("weights: at least one of ttvWeight and igaWeight must be > 0");
        return new TransPruneOptions(schedule, (float) ttv, (float) iga, ttvOnly);
    }

    /** TTV only (no IGA): prune takes no queries or keys. */
    public TransPruneOptions ttvOnly(boolean on) {
        return new TransPruneOptions(schedule, ttvWeight, igaWeight, on);
    }

    public TransPruneSchedule schedule() {
        return schedule;
    }

    public float ttvWeight() {
        return ttvWeight;
    }

    public float igaWeight() {
        return igaWeight;
    }

    public boolean ttvOnly() {
        return ttvOnly;
    }

    @Override
    public String toString() {
        return "TransPruneOptions[" + schedule + ", ttvWeight=" + ttvWeight + ", igaWeight=" + igaWeight + ", ttvOnly=" + ttvOnly + "]";
    }
}
