package tokenprune.testing;

import java.util.Random;

/** Fresh random inputs for kernel tests, reproducible from a seed printed in failure messages. */
public final class RandomTokens {
    private RandomTokens() {
    }

    public static float[] gaussian(Random rnd, int count) {
        float[] x = new float[count];
        for (int i = 0; i < count; i++) x[i] = (float) rnd.nextGaussian();
        return x;
    }

    /** Small integers in [-range, range]: dot products are exact in fp32 (the CUTLASS trick). */
    public static float[] integers(Random rnd, int count, int range) {
        float[] x = new float[count];
        for (int i = 0; i < count; i++) x[i] = rnd.nextInt(2 * range + 1) - range;
        return x;
    }
}
