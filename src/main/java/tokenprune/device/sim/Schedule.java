package tokenprune.device.sim;

/**
 * The order in which the simulator runs the threads of a block between barriers, and the blocks
 * of a grid. Running a kernel under two schedules and comparing results exposes a missing
 * barrier or an inter-block dependency.
 */
public record Schedule(Kind kind, long seed) {
    public enum Kind { IN_ORDER, REVERSE, RANDOM }

    public static final Schedule IN_ORDER = new Schedule(Kind.IN_ORDER, 0);
    public static final Schedule REVERSE = new Schedule(Kind.REVERSE, 0);

    public static Schedule random(long seed) {
        return new Schedule(Kind.RANDOM, seed);
    }

    @Override
    public String toString() {
        return kind == Kind.RANDOM ? "random(" + seed + ")" : kind.name().toLowerCase(java.util.Locale.ROOT);
    }
}
