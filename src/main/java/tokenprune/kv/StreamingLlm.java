package tokenprune.kv;

/**
 * StreamingLLM (methods-kv.md §6): attention sinks + a recent window, no scores. Kept token indices,
 * ascending, on the host. On a paged cache: {@link TokenEviction.Options#streaming} (token level, with the
 * RoPE re-rotation of moved keys, SL-4, by {@link KvCompaction.Rope}), {@link BlockEvictionOptions#streaming}
 * (block level) and {@link PagedEvictionOptions#streamingLlm} (the fork's paged variant, SL-5).
 */
public final class StreamingLlm {
    private StreamingLlm() {
    }

    /** n > start + recent: [0, start) ∪ [n − recent, n); otherwise all n (SL-1). */
    public static int[] keep(int n, int start, int recent) {
        return evictForSpace(n, start, recent, 0);
    }

    /** Makes room for {@code numComing} tokens: [0, start) ∪ [n − recent + numComing, n) when n + numComing > start + recent (SL-2). */
    public static int[] evictForSpace(int n, int start, int recent, int numComing) {
        if (n < 0 || start < 0 || recent < 0 || numComing < 0) throw new IllegalArgumentException("n, start, recent, numComing: must be >= 0");
        if (numComing > recent) throw new IllegalArgumentException("numComing: must be <= recent = " + recent + ", was " + numComing);
        if ((long) n + numComing <= (long) start + recent) {
            int[] all = new int[n];
            for (int t = 0; t < n; t++) all[t] = t;
            return all;
        }
        int from = Math.max(start, n - recent + numComing);
        int[] k = new int[Math.min(start, n) + Math.max(0, n - from)];
        int i = 0;
        for (int t = 0; t < Math.min(start, n); t++) k[i++] = t;
        for (int t = from; t < n; t++) k[i++] = t;
        return k;
    }

    /** kvpress ratio mode (SL-3): n_pruned = kLen − ⌊kLen·(1 − ratio)⌋ tokens removed right after the sinks. */
    public static int[] keepRatio(int kLen, double ratio, int nSink) {
        if (kLen < 0 || nSink < 0) throw new IllegalArgumentException("kLen, nSink: must be >= 0");
        if (!(ratio >= 0 && ratio < 1)) throw new IllegalArgumentException("ratio: must be in [0, 1), was " + ratio);
        int pruned = kLen - (int) Math.floor(kLen * (1 - ratio));
        if (nSink + pruned > kLen) throw new IllegalArgumentException("nSink: " + nSink + " sinks + " + pruned + " pruned exceed kLen " + kLen);
        int[] k = new int[kLen - pruned];
        int i = 0;
        for (int t = 0; t < kLen; t++) if (t < nSink || t >= nSink + pruned) k[i++] = t;
        return k;
    }
}
