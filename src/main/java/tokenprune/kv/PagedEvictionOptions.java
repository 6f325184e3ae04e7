package tokenprune.kv;

/**
 * PagedEviction's decode-time victim rule (methods-kv.md §2.3.1, PE-REF steps 3 and 5): the
 * candidate window ({@code window == 0}: global, logical blocks 1 .. n_blocks − 2; {@code window = k
 * >= 1}: local, 1 .. min(k, n_blocks − 2)) and how the per-layer block scores are combined.
 */
public record PagedEvictionOptions(int window, LayerAgg layerAgg) {
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

    public static final int DEFAULT_LOCAL_WINDOW = 3;

    public PagedEvictionOptions {
        if (window < 0) throw new IllegalArgumentException("window: must be 0 (global) or >= 1 (local), was " + window);
        if (layerAgg == null) throw new IllegalArgumentException("layerAgg: must not be null");
    }

    /** Global window, mean over layers (the PE-REF default). */
    public static PagedEvictionOptions defaults() {
        return new PagedEvictionOptions(0, LayerAgg.MEAN_OVER_LAYERS);
    }

    /** Local window of {@code k >= 1} blocks after block 0. */
    public static PagedEvictionOptions local(int k) {
        if (k < 1) throw new IllegalArgumentException("k: must be >= 1, was " + k);
        return new PagedEvictionOptions(k, LayerAgg.MEAN_OVER_LAYERS);
    }

    public PagedEvictionOptions withLayerAgg(LayerAgg agg) {
        return new PagedEvictionOptions(window, agg);
    }

    public boolean global() {
        return window == 0;
    }
}
