package tokenprune.reference;

/**
 * Float64 reference for the fused cosine-distance kernel: D[i][j] = 1 - cos(x_i, x_j).
 *
 * <p>cos(x_i, x_j) = dot(x_i, x_j) / (‖x_i‖ ‖x_j‖), every product and sum accumulated in double.
 * Squares of floats cannot overflow or underflow to zero in double, so any finite input is safe
 * and a row has norm 0 exactly when all its components are ±0.
 *
 * <p>Rule for zero rows ([decision], the official code would produce NaN): a zero row has
 * similarity 0 to every row, itself included, so its distance to everything is exactly 1. There
 * is no epsilon anywhere else. The diagonal of a non-zero row is computed like any other entry,
 * so it is ≈0 but not forced to exactly 0 (as in the official code); D is exactly symmetric
 * because each entry's arithmetic does not depend on the order of i and j.
 */
public final class CosineDistanceReference {
    private CosineDistanceReference() {
    }

    /**
     * Distance matrix of the rows of {@code x}.
     *
     * @param x N rows of equal length d; N &gt;= 1, d &gt;= 1, every value finite
     * @return a new N x N matrix
     * @throws IllegalArgumentException if x is empty, rows are ragged or empty, or a value is NaN or
     *     infinite (the message names the row and column)
     * @throws NullPointerException if x or a row is null
     */
    public static double[][] distances(float[][] x) {
        int n = x.length;
        if (n == 0) {
            throw new IllegalArgumentException("need at least one row, got 0");
        }
        int d = x[0].length;
        if (d == 0) {
            throw new IllegalArgumentException("rows must have at least one column, got 0");
        }
        if ((long) n * d > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("input too large: " + n + " x " + d);
        }
        float[] flat = new float[n * d];
        for (int i = 0; i < n; i++) {
            if (x[i].length != d) {
                throw new IllegalArgumentException("ragged input: row " + i + " has " + x[i].length
                        + " columns but row 0 has " + d);
            }
            System.arraycopy(x[i], 0, flat, i * d, d);
        }
        return distances(flat, n, d, d);
    }

    /**
     * Distance matrix of N rows stored in a flat array, row i at {@code [i*rowStride, i*rowStride+d)}.
     *
     * @param data the rows; entries between d and rowStride are ignored
     * @param n number of rows, &gt;= 1
     * @param d row length, &gt;= 1
     * @param rowStride distance between row starts, &gt;= d
     * @return a new n x n matrix
     * @throws IllegalArgumentException if a size is invalid, data is too short, or a used value is
     *     NaN or infinite (the message names the row and column)
     */
    public static double[][] distances(float[] data, int n, int d, int rowStride) {
        checkLayout(data, n, d, rowStride);
        double[] norms = new double[n];
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int c = 0; c < d; c++) {
                float v = data[i * rowStride + c];
                if (!Float.isFinite(v)) {
                    throw new IllegalArgumentException("non-finite value " + v + " at row " + i + ", column " + c);
                }
                sum += (double) v * v;
            }
            norms[i] = Math.sqrt(sum);
        }
        double[][] dist = new double[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = i; j < n; j++) {
                double similarity = 0;
                if (norms[i] != 0 && norms[j] != 0) {
                    double dot = 0;
                    for (int c = 0; c < d; c++) {
                        dot += (double) data[i * rowStride + c] * data[j * rowStride + c];
                    }
                    similarity = dot / (norms[i] * norms[j]);
                }
                dist[i][j] = 1 - similarity;
                dist[j][i] = dist[i][j];
            }
        }
        return dist;
    }

    /**
     * Distance between two vectors, with the same arithmetic and zero-row rule as the matrix.
     *
     * @param a a finite vector
     * @param b a finite vector of the same length
     * @return 1 - cos(a, b); exactly 1 if either is all zeros
     * @throws IllegalArgumentException if lengths differ, are 0, or a value is not finite
     */
    public static double distance(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("vectors differ in length: " + a.length + " vs " + b.length);
        }
        return distances(new float[][] {a, b})[0][1];
    }

    private static void checkLayout(float[] data, int n, int d, int rowStride) {
        if (n < 1) {
            throw new IllegalArgumentException("n (rows) must be >= 1, got " + n);
        }
        if (d < 1) {
            throw new IllegalArgumentException("d (columns) must be >= 1, got " + d);
        }
        if (rowStride < d) {
            throw new IllegalArgumentException("rowStride must be >= d=" + d + ", got " + rowStride);
        }
        long needed = (long) (n - 1) * rowStride + d;
        if (data.length < needed) {
            throw new IllegalArgumentException("data has " + data.length + " floats but n=" + n + ", d=" + d
                    + ", rowStride=" + rowStride + " need " + needed);
        }
    }
}
