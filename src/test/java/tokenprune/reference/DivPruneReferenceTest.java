package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;

/** Hand-checkable cases DP-1..DP-5 of methods-vision.md §13.1, plus edge cases. */
class DivPruneReferenceTest {
    private static final boolean DEFAULT = false;
    private static final boolean OFFICIAL = true;
    private static final double R = 1 - 1 / Math.sqrt(2); // 0.292893...

    private static final float[][] DP1 = {{1, 0}, {0, 1}, {-1, 0}, {1, 1}};
    private static final float[][] DP2 = {{1, 0}, {0, 1}, {-1, 0}, {0, -1}};
    private static final float[][] DP3 = {{1, 0}, {1, 0}, {0, 1}};
    private static final float[][] DP5 = {{1, 0, 0}, {0.9f, 0.1f, 0}, {0, 1, 0}, {0, 0.8f, 0.6f}, {0, 0, 1},
        {-1, 0.2f, 0}};

    private static int[] order(float[][] x, int k, boolean mode) {
        return DivPruneReference.selectionOrder(x, k, mode);
    }

    private static void assertBothModes(float[][] x, int k, int[] expectedOrder, int[] expectedSorted) {
        for (boolean mode : new boolean[] {DEFAULT, OFFICIAL}) {
            int[] o = order(x, k, mode);
            assertArrayEquals(expectedOrder, o, "k=" + k + " officialCompat=" + mode);
            assertArrayEquals(expectedSorted, DivPruneReference.sortedKeep(o), "k=" + k + " officialCompat=" + mode);
        }
    }

    // ------------------------------------------------------------------ DP-1 .. DP-5

    @Test
    void dp1Basic() {
        double[] nn = DivPruneReference.nearestNeighbourDistances(CosineDistanceReference.distances(DP1));
        assertArrayEquals(new double[] {R, R, 1.0, R}, nn, 1e-15);
        assertBothModes(DP1, 1, new int[] {2}, new int[] {2});
        assertBothModes(DP1, 2, new int[] {2, 0}, new int[] {0, 2});
        assertBothModes(DP1, 3, new int[] {2, 0, 1}, new int[] {0, 1, 2});
        assertBothModes(DP1, 4, new int[] {2, 0, 1, 3}, new int[] {0, 1, 2, 3});
    }

    @Test
    void dp2FirstIndexTieRule() {
        double[] nn = DivPruneReference.nearestNeighbourDistances(CosineDistanceReference.distances(DP2));
        assertArrayEquals(new double[] {1, 1, 1, 1}, nn, 1e-15);
        assertBothModes(DP2, 1, new int[] {0}, new int[] {0});
        assertBothModes(DP2, 2, new int[] {0, 2}, new int[] {0, 2});
        assertBothModes(DP2, 3, new int[] {0, 2, 1}, new int[] {0, 1, 2});
        assertBothModes(DP2, 4, new int[] {0, 2, 1, 3}, new int[] {0, 1, 2, 3});
    }

    @Test
    void dp3DuplicatesReselectedOnlyInOfficialMode() {
        double[] nn = DivPruneReference.nearestNeighbourDistances(CosineDistanceReference.distances(DP3));
        assertArrayEquals(new double[] {0, 0, 1}, nn, 0.0);
        assertBothModes(DP3, 2, new int[] {2, 0}, new int[] {0, 2});
        int[] official = order(DP3, 3, OFFICIAL);
        assertArrayEquals(new int[] {2, 0, 0}, official);
        assertArrayEquals(new int[] {0, 0, 2}, DivPruneReference.sortedKeep(official));
        int[] dflt = order(DP3, 3, DEFAULT);
        assertArrayEquals(new int[] {2, 0, 1}, dflt);
        assertArrayEquals(new int[] {0, 1, 2}, DivPruneReference.sortedKeep(dflt));
    }

    @Test
    void dp5MultiStep3d() {
        double[][] d = CosineDistanceReference.distances(DP5);
        assertEquals(0.0061, d[0][1], 5e-5);
        assertEquals(0.2, d[2][3], 1e-7);
        assertEquals(0.4, d[3][4], 1e-7);
        assertEquals(0.8039, d[2][5], 5e-5);
        assertEquals(0.8431, d[3][5], 5e-5);
        assertEquals(1.9806, d[0][5], 5e-5);
        assertEquals(1.9529, d[1][5], 5e-5);
        assertEquals(1.0, d[4][5], 1e-7);
        assertEquals(1.0, d[0][4], 1e-7);
        assertEquals(1.0, d[2][4], 1e-7);
        double[] nn = DivPruneReference.nearestNeighbourDistances(d);
        assertArrayEquals(new double[] {0.0061, 0.0061, 0.2, 0.2, 0.4, 0.8039}, nn, 5e-5);
        assertBothModes(DP5, 4, new int[] {5, 0, 4, 2}, new int[] {0, 2, 4, 5});
        assertBothModes(DP5, 2, new int[] {5, 0}, new int[] {0, 5});
    }

    @Test
    void dp5FullSequenceWithPrefixAndSuffix() {
        // Output positions: the 35-token prefix, 35 + sorted kept visual indices, then the suffix.
        int prefix = 35;
        int n = DP5.length;
        int suffix = 4;
        int[] keep = DivPruneReference.sortedKeep(order(DP5, 4, DEFAULT));
        List<Integer> positions = new ArrayList<>();
        for (int i = 0; i < prefix; i++) {
            positions.add(i);
        }
        for (int v : keep) {
            positions.add(prefix + v);
        }
        for (int i = prefix + n; i < prefix + n + suffix; i++) {
            positions.add(i);
        }
        assertEquals(List.of(35, 37, 39, 40, 41, 42, 43, 44), positions.subList(35, positions.size()));
        assertEquals(35 + 4 + 4, positions.size());
    }

    // ------------------------------------------------------------------ zero rows, duplicates, sizes

    @Test
    void zeroRowIsIsolatedAndBecomesTheSeed() {
        // Tokens 0 and 1 are nearly parallel; the zero row is at distance 1 from everything.
        float[][] x = {{1, 0}, {1, 0.1f}, {0, 0}};
        double[][] d = CosineDistanceReference.distances(x);
        double d01 = 1 - 1 / Math.sqrt(1 + 0.1f * (double) 0.1f);
        assertEquals(d01, d[0][1], 1e-12);
        assertArrayEquals(new double[] {d01, d01, 1.0}, DivPruneReference.nearestNeighbourDistances(d), 1e-12);
        assertBothModes(x, 2, new int[] {2, 0}, new int[] {0, 2}); // tie at distance 1: lowest index
        // The zero row's self-distance is 1, so without the mask it beats token 1's small score.
        assertArrayEquals(new int[] {2, 0, 2}, order(x, 3, OFFICIAL));
        assertArrayEquals(new int[] {2, 0, 1}, order(x, 3, DEFAULT));
    }

    @Test
    void zeroRowCapsEveryNearestNeighbourDistanceAtOne() {
        // Without the zero row tokens 1 and 2 would have NN distance 2; the zero row is at distance 1
        // from both, and from itself, so every seed score is 1 and the tie goes to index 0.
        float[][] x = {{0, 0}, {1, 0}, {-1, 0}};
        double[] nn = DivPruneReference.nearestNeighbourDistances(CosineDistanceReference.distances(x));
        assertArrayEquals(new double[] {1, 1, 1}, nn, 0.0);
        assertBothModes(x, 1, new int[] {0}, new int[] {0});
        // Default: from the zero row tokens 1 and 2 both score 1 -> 1 (lowest index); then 2, the only
        // candidate left.
        assertArrayEquals(new int[] {0, 1, 2}, order(x, 3, DEFAULT));
        // Official: the zero row's own score stays 1 (its self-distance), so it ties with the others and,
        // having the lowest index, is picked again and again.
        assertArrayEquals(new int[] {0, 0, 0}, order(x, 3, OFFICIAL));
        assertArrayEquals(new int[] {0, 0, 0}, DivPruneReference.sortedKeep(order(x, 3, OFFICIAL)));
    }

    @Test
    void allDuplicates() {
        float[][] x = {{3, 4}, {3, 4}, {3, 4}};
        double[][] d = CosineDistanceReference.distances(x);
        for (double[] row : d) {
            assertArrayEquals(new double[] {0, 0, 0}, row, 0.0);
        }
        assertArrayEquals(new int[] {0, 1, 2}, order(x, 3, DEFAULT));
        assertArrayEquals(new int[] {0, 0, 0}, order(x, 3, OFFICIAL));
        assertArrayEquals(new int[] {0, 0, 0}, DivPruneReference.sortedKeep(order(x, 3, OFFICIAL)));
    }

    @Test
    void singleToken() {
        assertBothModes(new float[][] {{2, 5}}, 1, new int[] {0}, new int[] {0});
        assertBothModes(new float[][] {{0, 0}}, 1, new int[] {0}, new int[] {0});
        double[][] d = {{0.0}};
        assertArrayEquals(new double[] {Double.POSITIVE_INFINITY}, DivPruneReference.nearestNeighbourDistances(d));
        assertEquals(Double.POSITIVE_INFINITY, DivPruneReference.minGap(d, 1, DEFAULT));
        assertDoesNotThrow(() -> DivPruneReference.checkGreedyTrajectory(d, new int[] {0}, DEFAULT, 0));
    }

    @Test
    void keepAllInDefaultModeReturnsEveryIndexOnce() {
        float[][] x = CosineDistanceReferenceTest.random(30, 8, 5);
        int[] o = order(x, 30, DEFAULT);
        int[] expected = new int[30];
        Arrays.setAll(expected, i -> i);
        assertArrayEquals(expected, DivPruneReference.sortedKeep(o));
    }

    @Test
    void sortedKeepDoesNotTouchItsInput() {
        int[] o = {5, 0, 4, 2};
        assertArrayEquals(new int[] {0, 2, 4, 5}, DivPruneReference.sortedKeep(o));
        assertArrayEquals(new int[] {5, 0, 4, 2}, o);
    }

    // ------------------------------------------------------------------ independent implementation

    /** The official form: seed by sorting each column; each step recomputes the min over the selected list. */
    private static int[] bruteForce(double[][] d, int k, boolean officialCompat) {
        int n = d.length;
        int seed = 0;
        double bestNn = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            double[] col = new double[n];
            for (int i = 0; i < n; i++) {
                col[i] = d[i][j];
            }
            Arrays.sort(col);
            double nnj = n > 1 ? col[1] : Double.POSITIVE_INFINITY;
            if (nnj > bestNn) {
                bestNn = nnj;
                seed = j;
            }
        }
        List<Integer> s = new ArrayList<>(List.of(seed));
        while (s.size() < k) {
            int pick = -1;
            double best = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                if (!officialCompat && s.contains(j)) {
                    continue;
                }
                double score = Double.POSITIVE_INFINITY;
                for (int sel : s) {
                    score = Math.min(score, d[sel][j]);
                }
                if (pick < 0 || score > best) {
                    best = score;
                    pick = j;
                }
            }
            s.add(pick);
        }
        return s.stream().mapToInt(Integer::intValue).toArray();
    }

    @Test
    void matchesTheRecomputingFormExactlyOnRandomInputs() {
        for (long seed = 1; seed <= 12; seed++) {
            int n = 5 + (int) (seed * 3);
            float[][] x = CosineDistanceReferenceTest.random(n, 4, seed);
            if (seed % 3 == 0) {
                x[2] = x[0].clone(); // a duplicate
                x[n - 1] = new float[4]; // a zero row
            }
            double[][] d = CosineDistanceReference.distances(x);
            for (int k = 1; k <= n; k++) {
                for (boolean mode : new boolean[] {DEFAULT, OFFICIAL}) {
                    int[] ref = DivPruneReference.selectionOrder(x, k, mode);
                    assertArrayEquals(bruteForce(d, k, mode), ref, "seed " + seed + " k " + k + " mode " + mode);
                    assertArrayEquals(ref, DivPruneReference.selectionOrder(d, k, mode));
                }
            }
        }
    }

    // ------------------------------------------------------------------ validation

    @Test
    void rejectsBadK() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class, () -> order(DP1, 0, DEFAULT));
        assertTrue(zero.getMessage().contains("keep"), zero.getMessage());
        assertThrows(IllegalArgumentException.class, () -> order(DP1, 5, OFFICIAL));
        assertThrows(IllegalArgumentException.class,
                () -> DivPruneReference.selectionOrder(CosineDistanceReference.distances(DP1), 5, DEFAULT));
    }

    @Test
    void rejectsNonFiniteAndRaggedInput() {
        float[][] nan = {{1, 0}, {0, Float.POSITIVE_INFINITY}};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> order(nan, 1, DEFAULT));
        assertTrue(e.getMessage().contains("row 1, column 1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> order(new float[][] {{1, 0}, {1}}, 1, DEFAULT));
        assertThrows(IllegalArgumentException.class, () -> order(new float[0][], 1, DEFAULT));
        assertThrows(IllegalArgumentException.class,
                () -> DivPruneReference.selectionOrder(new double[][] {{0, 1}, {1}}, 1, DEFAULT));
        assertThrows(IllegalArgumentException.class,
                () -> DivPruneReference.selectionOrder(new double[][] {{0, Double.NaN}, {1, 0}}, 1, DEFAULT));
    }

    // ------------------------------------------------------------------ trajectory checker and gap

    @Test
    void checkerAcceptsTheReferencesOwnOrders() {
        for (long seed = 1; seed <= 5; seed++) {
            float[][] x = CosineDistanceReferenceTest.random(25, 6, seed);
            double[][] d = CosineDistanceReference.distances(x);
            for (int k : new int[] {1, 7, 25}) {
                for (boolean mode : new boolean[] {DEFAULT, OFFICIAL}) {
                    int[] o = DivPruneReference.selectionOrder(d, k, mode);
                    assertDoesNotThrow(() -> DivPruneReference.checkGreedyTrajectory(d, o, mode, 0.0));
                }
            }
        }
    }

    @Test
    void checkerAcceptsEitherSideOfAnExactTie() {
        double[][] d = CosineDistanceReference.distances(DP2);
        for (int[] o : new int[][] {{0, 2, 1, 3}, {0, 2, 3, 1}, {1, 3, 0, 2}, {3, 1, 2, 0}}) {
            assertDoesNotThrow(() -> DivPruneReference.checkGreedyTrajectory(d, o, DEFAULT, 0.0));
        }
    }

    @Test
    void checkerRejectsWrongPicksWithAClearMessage() {
        double[][] d1 = CosineDistanceReference.distances(DP1);
        AssertionError seed = assertThrows(AssertionError.class,
                () -> DivPruneReference.checkGreedyTrajectory(d1, new int[] {0, 2}, DEFAULT, 1e-6));
        assertTrue(seed.getMessage().startsWith("step 0 (seed): token 0"), seed.getMessage());
        double[][] d2 = CosineDistanceReference.distances(DP2);
        AssertionError step = assertThrows(AssertionError.class,
                () -> DivPruneReference.checkGreedyTrajectory(d2, new int[] {0, 1, 2}, OFFICIAL, 1e-6));
        assertTrue(step.getMessage().startsWith("step 1: picked token 1"), step.getMessage());
        assertTrue(step.getMessage().contains("token 2"), step.getMessage());
        assertThrows(AssertionError.class,
                () -> DivPruneReference.checkGreedyTrajectory(d2, new int[] {0, 4}, DEFAULT, 0));
        assertThrows(AssertionError.class,
                () -> DivPruneReference.checkGreedyTrajectory(d2, new int[0], DEFAULT, 0));
        assertThrows(IllegalArgumentException.class,
                () -> DivPruneReference.checkGreedyTrajectory(d2, new int[] {0}, DEFAULT, -1));
    }

    @Test
    void checkerAppliesTheModesReselectionRule() {
        double[][] d = CosineDistanceReference.distances(DP3);
        AssertionError e = assertThrows(AssertionError.class,
                () -> DivPruneReference.checkGreedyTrajectory(d, new int[] {2, 0, 0}, DEFAULT, 0));
        assertTrue(e.getMessage().contains("already selected"), e.getMessage());
        assertDoesNotThrow(() -> DivPruneReference.checkGreedyTrajectory(d, new int[] {2, 0, 0}, OFFICIAL, 0));
        // In official mode every score is 0 at step 2, so picking 1 is an equally valid tie.
        assertDoesNotThrow(() -> DivPruneReference.checkGreedyTrajectory(d, new int[] {2, 0, 1}, OFFICIAL, 0));
        assertDoesNotThrow(() -> DivPruneReference.checkGreedyTrajectory(d, new int[] {2, 0, 1}, DEFAULT, 0));
    }

    @Test
    void checkerToleranceAndMinGapOnANearTie() {
        double delta = 1e-9;
        double[][] d = {
            {0, 0.5, 0.5 + delta},
            {0.5, 0, 0.3},
            {0.5 + delta, 0.3, 0},
        };
        // Seed 0 (NN distance 0.5 vs 0.3, 0.3); then token 2 beats token 1 by delta.
        assertArrayEquals(new int[] {0, 2}, DivPruneReference.selectionOrder(d, 2, DEFAULT));
        assertThrows(AssertionError.class, () -> DivPruneReference.checkGreedyTrajectory(d, new int[] {0, 1}, DEFAULT, 1e-12));
        assertDoesNotThrow(() -> DivPruneReference.checkGreedyTrajectory(d, new int[] {0, 1}, DEFAULT, 1e-6));
        assertEquals(0.2, DivPruneReference.minGap(d, 1, DEFAULT), 1e-15);
        assertEquals(delta, DivPruneReference.minGap(d, 2, DEFAULT), 1e-15);
        assertEquals(delta, DivPruneReference.minGap(d, 2, OFFICIAL), 1e-15);
    }

    @Test
    void minGapOnHandCases() {
        // DP-1 default: seed gap 1 - R; step 1 candidates {0,1,3} score {2, 1, 1+1/sqrt2}: gap R;
        // step 2 candidates {1,3} score {1, R}: gap 1 - R; step 3 has one candidate.
        double[][] d1 = CosineDistanceReference.distances(DP1);
        assertEquals(R, DivPruneReference.minGap(d1, 4, DEFAULT), 1e-15);
        assertEquals(1 - R, DivPruneReference.minGap(d1, 1, DEFAULT), 1e-15);
        assertEquals(R, DivPruneReference.minGap(d1, 4, OFFICIAL), 1e-15);
        assertEquals(0.0, DivPruneReference.minGap(CosineDistanceReference.distances(DP2), 2, DEFAULT), 0.0);
        double[][] d3 = CosineDistanceReference.distances(DP3);
        assertEquals(0.0, DivPruneReference.minGap(d3, 3, OFFICIAL), 0.0);
        // DP-5 has no ties: the smallest margin is the seed step's (0.8039 - 0.4) or later, clearly > 0.
        double gap5 = DivPruneReference.minGap(CosineDistanceReference.distances(DP5), 4, DEFAULT);
        assertTrue(gap5 > 0.01, "gap " + gap5);
    }
}
