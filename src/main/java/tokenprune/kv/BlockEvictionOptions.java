package tokenprune.kv;

/**
 * The victim rule of block-granular decode-time eviction ({@link BlockEviction}): which policy ranks
 * the candidates and which logical blocks are protected. Candidates of a triggered sequence holding
 * n_blocks blocks are the logical blocks {@code sinkBlocks .. n_blocks − 1 − recentBlocks}.
 *
 * @param policy       ATTENTION (H2O / A2SF: the attention-score state says which) or STREAMING
 * @param sinkBlocks   protected leading blocks, >= 1 (PE-REF: block 0 is never evicted)
 * @param recentBlocks protected trailing blocks, >= 1: the newest block holds this step's token,
 *                     whose score state is not written yet (and may be a reused block's stale one)
 */
public record BlockEvictionOptions(Policy policy, int sinkBlocks, int recentBlocks) {
    /** How the victim is chosen. The code is the kernel's argument. */
    public enum Policy {
        /** Argmin of the block score: the mean of the per-slot attention state over the block's tokens, KV heads and the layers. */
        ATTENTION(0),
        /** No scores: the first unprotected block (StreamingLLM's paged variant, SL-5). */
        STREAMING(1);

        private final int code;

        Policy(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }
    }

    public BlockEvictionOptions {
        if (policy == null) throw new IllegalArgumentException("policy: must not be null");
        if (sinkBlocks < 1) throw new IllegalArgumentException("sinkBlocks: must be >= 1 (block 0 is never evicted), was " + sinkBlocks);
        if (recentBlocks < 1) throw new IllegalArgumentException("recentBlocks: must be >= 1 (the newest block is never evicted), was " + recentBlocks);
    }

    /** ATTENTION with block 0 and the newest block protected. */
    public static BlockEvictionOptions attention() {
        return new BlockEvictionOptions(Policy.ATTENTION, 1, 1);
    }

    /** STREAMING with block 0 and the newest block protected: evicts logical block 1 (SL-5). */
    public static BlockEvictionOptions streaming() {
        return new BlockEvictionOptions(Policy.STREAMING, 1, 1);
    }

    public BlockEvictionOptions withProtection(int sinkBlocks, int recentBlocks) {
        return new BlockEvictionOptions(policy, sinkBlocks, recentBlocks);
    }
}
