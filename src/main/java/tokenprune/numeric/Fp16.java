package tokenprune.numeric;

/**
 * IEEE 754 binary16 ("fp16", "half") conversions, bit-exact with the hardware conversions used by
 * CUDA ({@code __float2half_rn}, {@code __half2float}).
 *
 * <p>Java 17 has no {@code Float.floatToFloat16}, so the conversions are written out here. A half
 * is carried in a {@code short} holding its raw bit pattern.
 *
 * <p>Rounding is round-to-nearest, ties-to-even, including into and out of the subnormal range;
 * magnitudes at or above 65520 (the midpoint between the largest finite half, 65504, and 2^16)
 * become infinity; NaN stays NaN (its sign and the top 10 payload bits are kept; a payload that
 * would be lost entirely becomes the quiet bit, so the result can never turn into infinity).
 */
public final class Fp16 {
    /** Bit pattern of positive infinity. */
    public static final short POSITIVE_INFINITY = (short) 0x7C00;
    /** Bit pattern of negative infinity. */
    public static final short NEGATIVE_INFINITY = (short) 0xFC00;
    /** Bit pattern of the canonical quiet NaN. */
    public static final short NaN = (short) 0x7E00;
    /** Largest finite half, 65504. */
    public static final float MAX_VALUE = 65504f;

    // Float bit patterns of the range boundaries.
    private static final int FLOAT_HALF_OVERFLOW = 0x477FF000; // 65520: rounds to infinity
    private static final int FLOAT_MIN_HALF_NORMAL = 0x38800000; // 2^-14
    private static final int FLOAT_HALF_SUBNORMAL_TIE = 0x33000000; // 2^-25: half of the smallest subnormal
    private static final int EXP_REBIAS = (127 - 15) << 23;

    private Fp16() {
    }

    /**
     * Rounds a float to the nearest half (ties to even).
     *
     * @param f any float, including NaN, infinities and subnormals
     * @return the raw binary16 bit pattern
     */
    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7FFFFFFF;

        if (abs >= 0x7F800000) {
            if (abs == 0x7F800000) {
                return (short) (sign | 0x7C00);
            }
            int payload = (abs >>> 13) & 0x3FF;
            // A payload living only in the dropped low bits would otherwise read back as infinity.
            return (short) (sign | 0x7C00 | (payload == 0 ? 0x200 : payload));
        }
        if (abs >= FLOAT_HALF_OVERFLOW) {
            return (short) (sign | 0x7C00);
        }
        if (abs >= FLOAT_MIN_HALF_NORMAL) {
            // Re-biasing the exponent keeps exponent and mantissa contiguous, so a rounding carry out
            // of the mantissa correctly bumps the exponent (and 65504 < x < 65520 cannot reach 0x7C00).
            return (short) (sign | roundShiftRightEven(abs - EXP_REBIAS, 13));
        }
        if (abs <= FLOAT_HALF_SUBNORMAL_TIE) {
            // Below the smallest subnormal's midpoint, or exactly on it (ties to even = 0).
            return (short) sign;
        }
        // Subnormal half: value in units of 2^-24 is mantissa * 2^(exp - 126).
        int exp = abs >>> 23;
        int mantissa = (abs & 0x7FFFFF) | 0x800000;
        int shift = 126 - exp; // 14..24 in this branch
        // A carry into bit 10 yields 0x400, which is exactly the smallest normal half.
        return (short) (sign | roundShiftRightEven(mantissa, shift));
    }

    /**
     * Widens a half to a float; exact for every pattern.
     *
     * @param h raw binary16 bits
     * @return the float with the same value (NaN payload kept in the top mantissa bits)
     */
    public static float toFloat(short h) {
        int bits = h & 0xFFFF;
        int sign = (bits & 0x8000) << 16;
        int exp = (bits >>> 10) & 0x1F;
        int mantissa = bits & 0x3FF;
        if (exp == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
        }
        if (exp == 0) {
            // Zero or subnormal: mantissa * 2^-24 is exact in float.
            float magnitude = Math.scalb((float) mantissa, -24);
            return sign != 0 ? -magnitude : magnitude;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mantissa << 13));
    }

    /**
     * Rounds a float to the nearest value representable in binary16.
     *
     * @param f any float
     * @return {@code toFloat(fromFloat(f))}
     */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }

    /**
     * Converts every element with {@link #fromFloat(float)}.
     *
     * @param src non-null
     * @return a new array of the same length
     * @throws NullPointerException if {@code src} is null
     */
    public static short[] fromFloats(float[] src) {
        short[] out = new short[src.length];
        for (int i = 0; i < src.length; i++) {
            out[i] = fromFloat(src[i]);
        }
        return out;
    }

    /**
     * Converts every element with {@link #toFloat(short)}.
     *
     * @param src non-null
     * @return a new array of the same length
     * @throws NullPointerException if {@code src} is null
     */
    public static float[] toFloats(short[] src) {
        float[] out = new float[src.length];
        for (int i = 0; i < src.length; i++) {
            out[i] = toFloat(src[i]);
        }
        return out;
    }

    /**
     * Rounds every element with {@link #round(float)}.
     *
     * @param src non-null
     * @return a new array of the same length
     * @throws NullPointerException if {@code src} is null
     */
    public static float[] round(float[] src) {
        float[] out = new float[src.length];
        for (int i = 0; i < src.length; i++) {
            out[i] = round(src[i]);
        }
        return out;
    }

    // value >> shift, rounded to nearest with ties to even; value is non-negative, 1 <= shift <= 30.
    private static int roundShiftRightEven(int value, int shift) {
        int result = value >>> shift;
        int remainder = value & ((1 << shift) - 1);
        int half = 1 << (shift - 1);
        if (remainder > half || (remainder == half && (result & 1) != 0)) {
            result++;
        }
        return result;
    }
}
