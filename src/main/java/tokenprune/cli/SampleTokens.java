package tokenprune.cli;

import java.util.Random;

/**
 * The demo's built-in image: 24 x 24 = 576 patch tokens (LLaVA-1.5's count) of 64 features. A
 * smooth background gradient, three "objects" with their own feature directions, and per-patch
 * noise, from a fixed seed, so the output is the same everywhere.
 */
final class SampleTokens {
    static final int SIDE = 24, N = SIDE * SIDE, D = 64;

    private SampleTokens() {
    }

    static float[] generate() {
        Random rnd = new Random(20250302L);
        float[][] directions = new float[5][D];
        for (float[] dir : directions) for (int j = 0; j < D; j++) dir[j] = (float) rnd.nextGaussian();
        float[] x = new float[N * D];
        for (int r = 0; r < SIDE; r++) {
            for (int c = 0; c < SIDE; c++) {
                float u = r / (SIDE - 1f), v = c / (SIDE - 1f);
                int object = objectAt(r, c);
                for (int j = 0; j < D; j++) {
                    float background = (1 - u) * directions[0][j] + u * directions[1][j] + 0.3f * v * directions[0][j];
                    float value = object < 0 ? background : 0.3f * background + directions[2 + object][j];
                    x[(r * SIDE + c) * D + j] = value + 0.15f * (float) rnd.nextGaussian();
                }
            }
        }
        return x;
    }

    /** Which object covers patch (r, c), or -1 for background. */
    static int objectAt(int r, int c) {
        if (Math.hypot(r - 6, c - 7) < 4) return 0;
        if (r >= 14 && r <= 20 && c >= 3 && c <= 8) return 1;
        if (Math.hypot(r - 16, c - 17) < 3.5) return 2;
        return -1;
    }
}
