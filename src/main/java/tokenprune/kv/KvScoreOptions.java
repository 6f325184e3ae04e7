package tokenprune.kv;

/**
 * The PE-REF token score (methods-kv.md §2.3.1 {@code score}, §2.3.2 step 1): which metric, how the
 * per-KV-head norms are combined, ε, and the seed of the {@code random} score. Higher score = more
 * important for every metric.
 */
public record KvScoreOptions(Metric metric, HeadAgg headAgg, float eps, long seed) {
    /** Token metric from n_k = ‖k‖₂ and n_v = ‖v‖₂ per KV head. The code is the kernel's argument. */
    public enum Metric {
        /** n_v / (n_k + ε), aggregated by {@link HeadAgg} (default). */
        V_OVER_K(0),
        /** 1 / (mean_h n_k + ε). */
        INV_K(1),
        /** mean_h n_v. */
        V(2),
        /** mean_h n_k + mean_h n_v (HF parity). */
        K_PLUS_V(3),
        /**
         * A uniform [0, 1) number from a counter-based hash of (seed, physical block, slot); reads no
         * K/V (zero scoring cost, like the fork's random mode). Bit-identical in the reference:
         * {@code PagedEvictionReference.randomScore}. The same for every layer (the slot is shared), and a
         * reused physical block draws the same numbers again: a sanity baseline, not a stream of fresh draws.
         */
        RANDOM(4);

        private final int code;

        Metric(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }
    }

    /** Head aggregation of {@link Metric#V_OVER_K}; the other metrics ignore it. */
    public enum HeadAgg {
        /** (1/H) Σ_h n_v / (n_k + ε) (default). */
        MEAN_OF_RATIOS(0),
        /** mean_h n_v / (mean_h n_k + ε). */
        RATIO_OF_MEANS(1);

        private final int code;

        HeadAgg(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }
    }

    public static final float DEFAULT_EPS = 1e-6f;

    /** Without a seed (0; only {@link Metric#RANDOM} reads it). */
    public KvScoreOptions(Metric metric, HeadAgg headAgg, float eps) {
        this(metric, headAgg, eps, 0L);
    }

    public KvScoreOptions {
        if (metric == null) throw new IllegalArgumentException("metric: must not be null");
        if (headAgg == null) throw new IllegalArgumentException("headAgg: must not be null");
        if (!(eps >= 0) || !Float.isFinite(eps)) throw new IllegalArgumentException("eps: must be finite and >= 0, was " + eps);
    }

    /** v_over_k, mean_of_ratios, ε = 1e-6. */
    public static KvScoreOptions defaults() {
        return new KvScoreOptions(Metric.V_OVER_K, HeadAgg.MEAN_OF_RATIOS, DEFAULT_EPS);
    }

    public static KvScoreOptions of(Metric metric) {
        return new KvScoreOptions(metric, HeadAgg.MEAN_OF_RATIOS, DEFAULT_EPS);
    }

    /** The {@code random} score with the given seed. */
    public static KvScoreOptions random(long seed) {
        return new KvScoreOptions(Metric.RANDOM, HeadAgg.MEAN_OF_RATIOS, DEFAULT_EPS, seed);
    }

    public KvScoreOptions withHeadAgg(HeadAgg agg) {
        return new KvScoreOptions(metric, agg, eps, seed);
    }

    public KvScoreOptions withSeed(long s) {
        return new KvScoreOptions(metric, headAgg, eps, s);
    }

    /** Whether the score reads the keys and values (every metric but {@link Metric#RANDOM}). */
    public boolean readsKv() {
        return metric != Metric.RANDOM;
    }
}
