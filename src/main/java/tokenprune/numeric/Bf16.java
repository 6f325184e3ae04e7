package tokenprune.numeric;

/**
 * bfloat16 conversions: the top 16 bits of an IEEE binary32, bit-exact with CUDA's
 * {@code __float2bfloat16_rn} / {@code __bfloat162float}.
 *
 * <p>Rounding is round-to-nearest, ties-to-even on the dropped low 16 bits. Subnormals need no
 * special case because bfloat16 has float's exponent range; a float that rounds past the largest
 * finite bfloat16 becomes infinity naturally through the carry. NaN stays NaN: it is truncated
 * (never rounded, since a carry could turn it into infinity or flip its sign) and the quiet bit is
 * forced so a payload held only in the low bits is not lost.
 */
public final class Bf16 {
    /** Bit pattern of positive infinity. */
    public static final short POSITIVE_INFINITY = (short) 0x7F80;
    /** Bit pattern of negative infinity. */
    public static final short NEGATIVE_INFINITY = (short) 0xFF80;
    /** Bit pattern of the canonical quiet NaN. */
    public static final short NaN = (short) 0x7FC0;

    private Bf16() {
    }

    /**
     * Rounds a float to the nearest bfloat16 (ties to even).
     *
     * @param f any float, including NaN, infinities and subnormals
     * @return the raw bfloat16 bit pattern
     */
    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int lsb = (bits >>> 16) & 1;
        // Adding 0x7FFF + lsb rounds up exactly when the low half exceeds 0x8000, or equals it with an odd lsb.
        return (short) ((bits + 0x7FFF + lsb) >>> 16);
    }

    /**
     * Widens a bfloat16 to a float; exact for every pattern.
     *
     * @param h raw bfloat16 bits
     * @return the float with the same value
     */
    public static float toFloat(short h) {
        return Float.intBitsToFloat((h & 0xFFFF) << 16);
    }

    /**
     * Rounds a float to the nearest value representable in bfloat16.
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
}
