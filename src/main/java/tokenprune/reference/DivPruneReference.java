package tokenprune.reference;

import java.util.Arrays;

import tokenprune.methods.KeepCount;

/**
 * Float64 reference for DivPrune (methods-vision.md §3.3, §3.5): greedy max-min diversity
 * selection over the cosine-distance matrix of {@link CosineDistanceReference}. Written to be
 * checked by eye, O(N^2 d + kN).
 *
 * <ul>
 *   <li>Seed: the token whose column of D has the largest second-smallest value (its
 *       nearest-neighbour distance, since the smallest is normally its own ≈0 diagonal); ties go
 *       to the lowest index. With N = 1 there is no second value and the seed is token 0.</li>
 *   <li>Then farthest point: score_j = min over selected s of D[s][j], maintained incrementally
 *       (bit-identical to recomputing, because min is exact); pick argmax_j, ties to the lowest
 *       index.</li>
 *   <li>Default mode excludes already-selected tokens from the argmax, so the k picks are
 *       distinct. Official-compat mode does not ({@code officialCompat = true}): a selected token
 *       competes with its ≈0 self-distance and can be picked again (test DP-3).</li>
 * </ul>
 *
 * <p>Both modes use fp64 distances; this class does not emulate the official fp16 rounding.
 */
public final class DivPruneReference {
    private DivPruneReference() {
    }

    /**
     * Selects k of the rows of x.
     *
     * @param x N rows of equal length d &gt;= 1; every value finite
     * @param k number to keep, in [1, N]
     * @param officialCompat false: never re-select; true: official behaviour (re-selection possible)
     * @return the k selected indices in selection order (may contain repeats only if officialCompat)
     * @throws IllegalArgumentException if x is empty or ragged, a value is not finite (the message
     *     names the row and column), or k is outside [1, N]
     */
    public static int[] selectionOrder(float[][] x, int k, boolean officialCompat) {
        if (x.length == 0) {
            throw new IllegalArgumentException("need at least one token, got 0");
        }
        KeepCount.checkKeep(x.length, k);
        return selectionOrder(CosineDistanceReference.distances(x), k, officialCompat);
    }

    /**
     * Selects k tokens given a precomputed distance matrix (need not be symmetric: the seed reads
     * columns D[.][j], the greedy step reads rows D[s][.], as the official code does).
     *
     * @param dist N x N matrix, N &gt;= 1, every entry finite
     * @param k number to keep, in [1, N]
     * @param officialCompat false: never re-select; true: official behaviour (re-selection possible)
     * @return the k selected indices in selection order
     * @throws IllegalArgumentException if dist is not square or has a non-finite entry, or k is outside [1, N]
     */
    public static int[] selectionOrder(double[][] dist, int k, boolean officialCompat) {
        int n = checkSquare(dist);
        KeepCount.checkKeep(n, k);
        int[] order = new int[k];
        boolean[] selected = new boolean[n];
        order[0] = argmaxFirst(nearestNeighbourDistances(dist), null);
        selected[order[0]] = true;
        double[] minDist = dist[order[0]].clone();
        for (int step = 1; step < k; step++) {
            int pick = argmaxFirst(minDist, officialCompat ? null : selected);
            order[step] = pick;
            selected[pick] = true;
            for (int j = 0; j < n; j++) {
                minDist[j] = Math.min(minDist[j], dist[pick][j]);
            }
        }
        return order;
    }

    /**
     * The output index list: the selection sorted ascending, so kept tokens stay in their original
     * relative order. Repeats (official-compat re-selection) are kept.
     *
     * @param order a selection order
     * @return a new sorted array of the same length
     */
    public static int[] sortedKeep(int[] order) {
        int[] keep = order.clone();
        Arrays.sort(keep);
        return keep;
    }

    /**
     * Seed scores: for every column j, the second-smallest value of D[.][j], counting repeats
     * (two zeros give 0). For N = 1 the single score is +infinity, which makes token 0 the seed.
     *
     * @param dist N x N matrix, N &gt;= 1, every entry finite
     * @return a new array of N scores
     * @throws IllegalArgumentException if dist is not square or has a non-finite entry
     */
    public static double[] nearestNeighbourDistances(double[][] dist) {
        int n = checkSquare(dist);
        double[] nn = new double[n];
        for (int j = 0; j < n; j++) {
            double smallest = Double.POSITIVE_INFINITY;
            double second = Double.POSITIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                double v = dist[i][j];
                if (v < smallest) {
                    second = smallest;
                    smallest = v;
                } else if (v < second) {
                    second = v;
                }
            }
            nn[j] = second;
        }
        return nn;
    }

    /**
     * Checks that {@code order} is a valid greedy trajectory under {@code dist} up to {@code eps}, so
     * that an fp32 implementation (GPU, simulator) can be compared with this fp64 reference even
     * where near-ties make the exact picks legitimately differ. Scores are evaluated along the
     * given order itself, not along the reference's order.
     *
     * <p>Valid means: the seed's nearest-neighbour distance is within eps of the largest one; each
     * later pick's min-distance to the already-picked tokens is within eps of the best available
     * score; in default mode no token is picked twice (and only unpicked tokens are "available").
     *
     * @param dist N x N matrix, N &gt;= 1, every entry finite
     * @param order the trajectory to check, length in [1, N]
     * @param officialCompat which mode's rules apply
     * @param eps tolerance, finite and &gt;= 0
     * @throws AssertionError describing the first step that is not a valid greedy pick, or an
     *     out-of-range index or bad length in {@code order}
     * @throws IllegalArgumentException if dist is malformed or eps is negative or not finite
     */
    public static void checkGreedyTrajectory(double[][] dist, int[] order, boolean officialCompat, double eps) {
        int n = checkSquare(dist);
        if (!(eps >= 0) || Double.isInfinite(eps)) {
            throw new IllegalArgumentException("eps must be finite and >= 0, got " + eps);
        }
        if (order.length < 1 || order.length > n) {
            throw new AssertionError("order has length " + order.length + "; expected 1.." + n);
        }
        for (int t = 0; t < order.length; t++) {
            if (order[t] < 0 || order[t] >= n) {
                throw new AssertionError("step " + t + ": index " + order[t] + " is outside [0, " + n + ")");
            }
        }
        double[] nn = nearestNeighbourDistances(dist);
        int bestSeed = argmaxFirst(nn, null);
        int seed = order[0];
        if (!(nn[seed] >= nn[bestSeed] - eps)) {
            throw new AssertionError(String.format(
                    "step 0 (seed): token %d has nearest-neighbour distance %.9g but token %d has %.9g (eps %.3g)",
                    seed, nn[seed], bestSeed, nn[bestSeed], eps));
        }
        boolean[] selected = new boolean[n];
        selected[seed] = true;
        double[] minDist = dist[seed].clone();
        for (int t = 1; t < order.length; t++) {
            int pick = order[t];
            if (!officialCompat && selected[pick]) {
                throw new AssertionError("step " + t + ": token " + pick
                        + " was already selected (default mode never re-selects); order so far "
                        + Arrays.toString(Arrays.copyOf(order, t + 1)));
            }
            int best = argmaxFirst(minDist, officialCompat ? null : selected);
            if (!(minDist[pick] >= minDist[best] - eps)) {
                throw new AssertionError(String.format(
                        "step %d: picked token %d with min-distance %.9g but token %d scores %.9g (eps %.3g)",
                        t, pick, minDist[pick], best, minDist[best], eps));
            }
            selected[pick] = true;
            for (int j = 0; j < n; j++) {
                minDist[j] = Math.min(minDist[j], dist[pick][j]);
            }
        }
    }

    /**
     * Along the reference's own trajectory for this k and mode, the smallest margin between the
     * best and the second-best candidate score at any step, the seed step included (candidates:
     * all tokens for the seed; afterwards all tokens in official-compat mode, unselected ones in
     * default mode). A step with a single candidate imposes no margin. When this is comfortably
     * larger than an implementation's error, its picks must equal the reference's exactly.
     *
     * @param dist N x N matrix, N &gt;= 1, every entry finite
     * @param k number to keep, in [1, N]
     * @param officialCompat which mode's trajectory to follow
     * @return the smallest gap, &gt;= 0; 0 means an exact tie; +infinity if no step had two candidates
     * @throws IllegalArgumentException if dist is malformed or k is outside [1, N]
     */
    public static double minGap(double[][] dist, int k, boolean officialCompat) {
        int n = checkSquare(dist);
        KeepCount.checkKeep(n, k);
        double gap = gapOf(nearestNeighbourDistances(dist), null);
        int[] order = selectionOrder(dist, k, officialCompat);
        boolean[] selected = new boolean[n];
        selected[order[0]] = true;
        double[] minDist = dist[order[0]].clone();
        for (int t = 1; t < k; t++) {
            gap = Math.min(gap, gapOf(minDist, officialCompat ? null : selected));
            int pick = order[t];
            selected[pick] = true;
            for (int j = 0; j < n; j++) {
                minDist[j] = Math.min(minDist[j], dist[pick][j]);
            }
        }
        return gap;
    }

    /** Lowest index of the maximum among entries not excluded; -1 if all are excluded. */
    private static int argmaxFirst(double[] score, boolean[] excluded) {
        int best = -1;
        for (int j = 0; j < score.length; j++) {
            if (excluded != null && excluded[j]) {
                continue;
            }
            // Strict '>' keeps the first of equal maxima, like torch.argmax.
            if (best < 0 || score[j] > score[best]) {
                best = j;
            }
        }
        return best;
    }

    /** Best minus second-best among entries not excluded; +infinity with fewer than two. */
    private static double gapOf(double[] score, boolean[] excluded) {
        double first = Double.NEGATIVE_INFINITY;
        double second = Double.NEGATIVE_INFINITY;
        int candidates = 0;
        for (int j = 0; j < score.length; j++) {
            if (excluded != null && excluded[j]) {
                continue;
            }
            candidates++;
            if (score[j] > first) {
                second = first;
                first = score[j];
            } else if (score[j] > second) {
                second = score[j];
            }
        }
        return candidates < 2 ? Double.POSITIVE_INFINITY : first - second;
    }

    private static int checkSquare(double[][] dist) {
        int n = dist.length;
        if (n == 0) {
            throw new IllegalArgumentException("distance matrix is empty");
        }
        for (int i = 0; i < n; i++) {
            if (dist[i].length != n) {
                throw new IllegalArgumentException("distance matrix is not square: row " + i + " has "
                        + dist[i].length + " entries, expected " + n);
            }
            for (int j = 0; j < n; j++) {
                if (!Double.isFinite(dist[i][j])) {
                    throw new IllegalArgumentException("distance matrix has non-finite value " + dist[i][j]
                            + " at row " + i + ", column " + j);
                }
            }
        }
        return n;
    }
}
