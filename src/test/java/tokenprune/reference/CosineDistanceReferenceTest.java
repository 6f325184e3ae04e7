package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.Test;

class CosineDistanceReferenceTest {
    private static final double INV_SQRT2 = 1 / Math.sqrt(2);

    @Test
    void dp1DistancesByHand() {
        float[][] x = {{1, 0}, {0, 1}, {-1, 0}, {1, 1}};
        double[][] d = CosineDistanceReference.distances(x);
        assertEquals(1.0, d[0][1], 0.0);
        assertEquals(2.0, d[0][2], 0.0);
        assertEquals(1.0, d[1][2], 0.0);
        assertEquals(1 - INV_SQRT2, d[0][3], 1e-15);
        assertEquals(1 - INV_SQRT2, d[1][3], 1e-15);
        assertEquals(1 + INV_SQRT2, d[2][3], 1e-15);
        for (int i = 0; i < 4; i++) {
            assertEquals(0.0, d[i][i], 1e-15);
        }
    }

    @Test
    void exactlySymmetric() {
        double[][] d = CosineDistanceReference.distances(random(17, 9, 3));
        for (int i = 0; i < d.length; i++) {
            for (int j = 0; j < d.length; j++) {
                assertEquals(d[i][j], d[j][i], 0.0);
            }
        }
    }

    @Test
    void zeroRowIsAtDistanceOneFromEverythingIncludingItself() {
        float[][] x = {{1, 2, 3}, {0, 0, 0}, {-4, 0, 1}, {-0.0f, 0, -0.0f}};
        double[][] d = CosineDistanceReference.distances(x);
        for (int z : new int[] {1, 3}) {
            for (int j = 0; j < 4; j++) {
                assertEquals(1.0, d[z][j], 0.0, "row " + z + " col " + j);
                assertEquals(1.0, d[j][z], 0.0, "row " + j + " col " + z);
            }
        }
        assertEquals(0.0, d[0][0], 1e-15);
        assertEquals(1 - (-4 + 3) / (Math.sqrt(14) * Math.sqrt(17)), d[0][2], 1e-15);
    }

    @Test
    void tinyAndHugeRowsAreNotZeroRows() {
        // No epsilon: a float subnormal row still has a direction; huge values do not overflow in double.
        float[][] x = {{Float.MIN_VALUE, 0}, {0, Float.MIN_VALUE}, {Float.MIN_VALUE, Float.MIN_VALUE},
            {3e38f, 3e38f}, {3e38f, 0}};
        double[][] d = CosineDistanceReference.distances(x);
        assertEquals(1.0, d[0][1], 0.0);
        assertEquals(0.0, d[0][0], 0.0);
        assertEquals(1 - INV_SQRT2, d[0][2], 1e-15);
        assertEquals(1 - INV_SQRT2, d[3][4], 1e-15);
        assertEquals(0.0, d[2][3], 1e-15);
    }

    @Test
    void scaleAndSign() {
        float[] a = {0.3f, -1.7f, 2.2f, 0.01f};
        float[] b = new float[a.length];
        float[] c = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            b[i] = 4 * a[i];
            c[i] = -a[i];
        }
        assertEquals(0.0, CosineDistanceReference.distance(a, b), 1e-15);
        assertEquals(2.0, CosineDistanceReference.distance(a, c), 1e-15);
    }

    @Test
    void matchesAnIndependentNormalizeThenDotComputation() {
        float[][] x = random(23, 11, 7);
        double[][] d = CosineDistanceReference.distances(x);
        for (int i = 0; i < x.length; i++) {
            for (int j = 0; j < x.length; j++) {
                double ni = 0;
                double nj = 0;
                for (int c = 0; c < x[i].length; c++) {
                    ni += x[i][c] * (double) x[i][c];
                    nj += x[j][c] * (double) x[j][c];
                }
                double dot = 0;
                for (int c = 0; c < x[i].length; c++) {
                    dot += (x[i][c] / Math.sqrt(ni)) * (x[j][c] / Math.sqrt(nj));
                }
                assertEquals(1 - dot, d[i][j], 1e-13);
            }
        }
    }

    @Test
    void flatLayoutWithStrideEqualsRowLayout() {
        float[][] x = random(6, 5, 11);
        int stride = 8;
        float[] flat = new float[5 * stride + 5];
        java.util.Arrays.fill(flat, Float.NaN); // padding must be ignored
        for (int i = 0; i < 6; i++) {
            System.arraycopy(x[i], 0, flat, i * stride, 5);
        }
        double[][] a = CosineDistanceReference.distances(x);
        double[][] b = CosineDistanceReference.distances(flat, 6, 5, stride);
        for (int i = 0; i < 6; i++) {
            assertArrayEquals(a[i], b[i], 0.0);
        }
    }

    @Test
    void nonFiniteInputNamesRowAndColumn() {
        float[][] x = {{1, 2, 3}, {4, 5, Float.NaN}};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CosineDistanceReference.distances(x));
        assertTrue(e.getMessage().contains("row 1, column 2"), e.getMessage());
        float[][] y = {{Float.NEGATIVE_INFINITY, 0}};
        assertTrue(assertThrows(IllegalArgumentException.class, () -> CosineDistanceReference.distances(y))
                .getMessage().contains("row 0, column 0"));
    }

    @Test
    void badShapes() {
        assertThrows(IllegalArgumentException.class, () -> CosineDistanceReference.distances(new float[][] {{1, 2}, {3}}));
        assertThrows(IllegalArgumentException.class, () -> CosineDistanceReference.distances(new float[0][]));
        assertThrows(IllegalArgumentException.class, () -> CosineDistanceReference.distances(new float[][] {{}}));
        assertThrows(IllegalArgumentException.class, () -> CosineDistanceReference.distances(new float[10], 3, 4, 3));
        assertThrows(IllegalArgumentException.class, () -> CosineDistanceReference.distances(new float[10], 3, 4, 4));
        assertThrows(IllegalArgumentException.class, () -> CosineDistanceReference.distances(new float[10], 0, 4, 4));
        assertThrows(IllegalArgumentException.class,
                () -> CosineDistanceReference.distance(new float[] {1}, new float[] {1, 2}));
    }

    static float[][] random(int n, int d, long seed) {
        Random rnd = new Random(seed);
        float[][] x = new float[n][d];
        for (float[] row : x) {
            for (int c = 0; c < d; c++) {
                row[c] = (float) rnd.nextGaussian();
            }
        }
        return x;
    }
}
