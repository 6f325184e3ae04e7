package tokenprune.reference;

import java.util.Arrays;

/**
 * The iteration order of a CPython 3 {@code set} of non-negative ints built by adding keys one by
 * one (methods-vision.md §4.4; DART's official code processes its pivots in this order). For an int
 * n &gt;= 0 below 2^61 - 1, hash(n) = n. The table starts with 8 slots (mask 7). A key goes to slot
 * {@code key & mask}; if that is taken, the next 9 slots are probed linearly when slot + 9 &lt;= mask,
 * then (or otherwise) {@code perturb >>= 5} (perturb starts at the key) and the probe jumps to
 * {@code (5 slot + 1 + perturb) & mask}, and so on. After an insertion with 5 fill &gt;= 3 mask the
 * table grows to the smallest power of two &gt; 4 used (2 used above 50,000) and the keys are
 * re-inserted in old-slot order. The set iterates in slot order. A key already present is not added
 * again.
 */
public final class CPythonSetOrder {
    private static final int LINEAR_PROBES = 9, PERTURB_SHIFT = 5, MIN_SIZE = 8;

    private CPythonSetOrder() {
    }

    /**
     * @param keys the keys in insertion order, each &gt;= 0 (duplicates allowed, later ones ignored)
     * @return the distinct keys in the set's iteration order
     * @throws IllegalArgumentException if a key is negative (hash(-1) = -2 would need emulating too)
     */
    public static int[] iterationOrder(int[] keys) {
        long[] table = empty(MIN_SIZE);
        int used = 0;
        for (int key : keys) {
            if (key < 0) throw new IllegalArgumentException("keys: must be >= 0, got " + key);
            if (!insert(table, key)) continue;
            used++;
            int mask = table.length - 1;
            if ((long) used * 5 >= (long) mask * 3) {  // no deletions: fill == used
                long minUsed = used > 50000 ? 2L * used : 4L * used;
                int size = MIN_SIZE;
                while (size <= minUsed) size <<= 1;
                long[] grown = empty(size);
                for (long k : table) {
                    if (k >= 0) insert(grown, (int) k);
                }
                table = grown;
            }
        }
        return Arrays.stream(table).filter(k -> k >= 0).mapToInt(k -> (int) k).toArray();
    }

    private static long[] empty(int size) {
        long[] t = new long[size];
        Arrays.fill(t, -1);
        return t;
    }

    /** Adds key unless present; true if added. */
    private static boolean insert(long[] table, int key) {
        int mask = table.length - 1;
        long perturb = key;
        int i = key & mask;
        while (true) {
            int probes = i + LINEAR_PROBES <= mask ? LINEAR_PROBES : 0;
            for (int c = 0; c <= probes; c++) {
                long k = table[i + c];
                if (k == key) return false;
                if (k < 0) {
                    table[i + c] = key;
                    return true;
                }
            }
            perturb >>>= PERTURB_SHIFT;
            i = (int) ((i * 5L + 1 + perturb) & mask);
        }
    }
}
