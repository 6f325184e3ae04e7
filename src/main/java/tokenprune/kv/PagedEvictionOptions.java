package tokenprune.kv;

/**
 * PagedEviction's decode-time victim rule and prefill rule (methods-kv.md §2.3.1, §2.4, PE-REF steps
 * 3–5): the candidate window ({@code window == 0}: global, logical blocks 1 .. n_blocks − 2;
 * {@code window = k >= 1}: local, 1 .. min(k, n_blocks − 2)), how the per-layer block scores are
 * combined, which candidate is evicted, the seed of the random rule, and how prefill picks its middle
 * tokens.
 *
 * <p>Local candidates are clipped to n_blocks − 2 on purpose. The fork's unclipped [1, 1 + k) is not
 * offered: under the C ≥ 3B assertion an eviction happens at kv_len = C + B, i.e. n_blocks = C/B + 1,
 * and with k ≥ C/B (e.g. its default k = 3 with C = 3B) the range reaches index n_blocks − 1, the
 * block holding the newest token, which PE-REF step 6 forbids evicting.
 *
 * <p>{@link #streamingLlm()} is StreamingLLM's paged variant (§6, SL-5): prefill keeps block 0, the
 * most recent C − 2B middle tokens and the last B + r ({@link Prefill#RECENT}); decode evicts logical
 * block 1 whenever the newest block fills over the budget. With a window of 1 the only candidate is
 * block 1, so no rule reads a score: see {@link #readsScores()}.
 */
public record PagedEvictionOptions(int window, LayerAgg layerAgg, Victim victim, long seed, Prefill prefill) {
    /** Cross-layer aggregation of block scores. The code is the kernel's argument. */
    public enum LayerAgg {
        /** The mean over layers (ranked by the layer sum, summed in layer order in fp32). Default. */
        MEAN_OVER_LAYERS(0),
        /** Layer 0's block score alone (fork parity). */
        LAYER0(1);

        private final int code;

        LayerAgg(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }
    }

    /** Which candidate block is evicted (§2.4 "decode victim"). The code is the kernel's argument. */
    public enum Victim {
        /** The lowest layer-aggregated block score, ties to the lowest index (PE-REF default; HF local). */
        ARGMIN(0),
        /** The highest block score, ties to the lowest index (HF global parity). */
        ARGMAX(1),
        /**
         * A uniform candidate from a counter-based hash of (seed, the sequence's logical length, its row
         * in the batch), no score read (fork parity: its hard-coded {@code enable_random_evict}).
         * Bit-identical in the reference. Keyed on the batch row, not a sequence id: the draw for a sequence
         * changes when continuous batching moves it to another row (reproducible for a given batch order).
         */
        RANDOM(2);

        private final int code;

        Victim(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }
    }

    /** How prefill chooses the C − 2B middle tokens it keeps (PE-REF step 4). */
    public enum Prefill {
        /** The top C − 2B by token score, ties to the later position (PE-REF). */
        SCORES,
        /** The most recent C − 2B (score = position; StreamingLLM's paged variant), no score needed. */
        RECENT
    }

    public static final int DEFAULT_LOCAL_WINDOW = 3;
    /** The kernel's rule code for "block 1, no score read" (a window of 1). */
    static final int FIRST_CANDIDATE_RULE = 3;

    public PagedEvictionOptions {
        if (window < 0) throw new IllegalArgumentException("window: must be 0 (global) or >= 1 (local), was " + window);
        if (layerAgg == null) throw new IllegalArgumentException("layerAgg: must not be null");
        if (victim == null) throw new IllegalArgumentException("victim: must not be null");
        if (prefill == null) throw new IllegalArgumentException("prefill: must not be null");
    }

    /** Argmin victims, seed 0, prefill by scores. */
    public PagedEvictionOptions(int window, LayerAgg layerAgg) {
        this(window, layerAgg, Victim.ARGMIN, 0L, Prefill.SCORES);
    }

    /** Global window, mean over layers, argmin (the PE-REF default). */
    public static PagedEvictionOptions defaults() {
        return new PagedEvictionOptions(0, LayerAgg.MEAN_OVER_LAYERS);
    }

    /** Local window of {@code k >= 1} blocks after block 0. */
    public static PagedEvictionOptions local(int k) {
        if (k < 1) throw new IllegalArgumentException("k: must be >= 1, was " + k);
        return new PagedEvictionOptions(k, LayerAgg.MEAN_OVER_LAYERS);
    }

    /** StreamingLLM's paged variant (SL-5): recent prefill, decode always evicts logical block 1; no scores at all. */
    public static PagedEvictionOptions streamingLlm() {
        return new PagedEvictionOptions(1, LayerAgg.MEAN_OVER_LAYERS, Victim.ARGMIN, 0L, Prefill.RECENT);
    }

    public PagedEvictionOptions withLayerAgg(LayerAgg agg) {
        return new PagedEvictionOptions(window, agg, victim, seed, prefill);
    }

    public PagedEvictionOptions withVictim(Victim v) {
        return new PagedEvictionOptions(window, layerAgg, v, seed, prefill);
    }

    public PagedEvictionOptions withSeed(long s) {
        return new PagedEvictionOptions(window, layerAgg, victim, s, prefill);
    }

    public PagedEvictionOptions withPrefill(Prefill p) {
        return new PagedEvictionOptions(window, layerAgg, victim, seed, p);
    }

    public PagedEvictionOptions withWindow(int w) {
        return new PagedEvictionOptions(w, layerAgg, victim, seed, prefill);
    }

    public boolean global() {
        return window == 0;
    }

    /**
     * Whether the decode decision reads block scores: ARGMIN / ARGMAX over more than one possible
     * candidate. When false ({@link Victim#RANDOM}, or a window of 1), the filled blocks are not scored
     * (their cached score stays NaN, the fill scores are ignored) and
     * {@link PagedEviction#decodeStepOnDevice} launches no scoring kernel.
     */
    public boolean readsScores() {
        return victimRule() <= 1;
    }

    /** The decide kernel's rule: 0 argmin, 1 argmax, 2 random, 3 block 1 (window of 1). */
    public int victimRule() {
        return window == 1 ? FIRST_CANDIDATE_RULE : victim.code();
    }
}
