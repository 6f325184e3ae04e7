package tokenprune.kv;

/**
 * Small helpers shared by the KV policies. The keep decision itself (sinks + top-k of the middle +
 * recent, on the device) is {@link KvKeepSelect}.
 */
final class KvKeep {
    private KvKeep() {
    }

    static int[] range(int from, int to) {
        int[] r = new int[Math.max(0, to - from)];
        for (int i = 0; i < r.length; i++) r[i] = from + i;
        return r;
    }
}
