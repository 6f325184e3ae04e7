package tokenprune.methods;

/**
 * Number of tokens to keep, with the official DivPrune arithmetic: {@code int(round(ratio * N))}
 * in Python, i.e. the product in double precision followed by round-half-to-even
 * (methods-vision.md §3.2, test DP-4).
 */
public final class KeepCount {
    private KeepCount() {
    }

    /**
     * k = round-half-to-even(ratio * n), the product computed in double exactly as Python does.
     *
     * @param n number of tokens, {@code >= 1}
     * @param ratio fraction to keep: finite and in (0, 1]
     * @return k in [1, n]
     * @throws IllegalArgumentException if n &lt; 1, if ratio is not finite or outside (0, 1], or if the
     *     rounded product is 0 (a ratio too small for this n: keeping nothing is never valid)
     */
    public static int fromRatio(int n, double ratio) {
        checkN(n);
        if (!Double.isFinite(ratio) || ratio <= 0 || ratio > 1) {
            throw new IllegalArgumentException("ratio must be finite and in (0, 1], got " + ratio);
        }
        // rint is round-half-even, like Python 3's round(); ratio <= 1 keeps the result <= n.
        int k = (int) Math.rint(ratio * n);
        if (k < 1) {
            throw new IllegalArgumentException("ratio " + ratio + " of N=" + n + " keeps " + k
                    + " tokens; need at least 1");
        }
        return k;
    }

    /**
     * Validates an explicit keep count.
     *
     * @param n number of tokens, {@code >= 1}
     * @param keep requested number of kept tokens
     * @return {@code keep}, unchanged
     * @throws IllegalArgumentException if n &lt; 1 or keep is outside [1, n]
     */
    public static int checkKeep(int n, int keep) {
        checkN(n);
        if (keep < 1 || keep > n) {
            throw new IllegalArgumentException("keep must be in [1, N=" + n + "], got " + keep);
        }
        return keep;
    }

    private static void checkN(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("N (number of tokens) must be >= 1, got " + n);
        }
    }
}
