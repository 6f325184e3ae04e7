package tokenprune.numeric;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class Bf16Test {

    private static int bits(float f) {
        return Bf16.fromFloat(f) & 0xFFFF;
    }

    private static int bitsOfRaw(int floatBits) {
        return bits(Float.intBitsToFloat(floatBits));
    }

    private static boolean isBf16NaN(int h) {
        return (h & 0x7F80) == 0x7F80 && (h & 0x7F) != 0;
    }

    @Test
    void knownPatterns() {
        assertEquals(0x3F80, bits(1.0f));
        assertEquals(0xBF80, bits(-1.0f));
        assertEquals(0x4000, bits(2.0f));
        assertEquals(0x3EAB, bits(1f / 3)); // 0x3EAAAAAB: low half 0xAAAB > 0x8000 rounds up
        assertEquals(1.0f, Bf16.toFloat((short) 0x3F80));
        assertEquals(0.333984375f, Bf16.toFloat((short) 0x3EAB));
        assertEquals(0x8000, bits(-0.0f));
        assertEquals(0x0000, bits(0.0f));
    }

    @Test
    void tiesToEvenOnTheLowSixteenBits() {
        assertEquals(0x3F80, bitsOfRaw(0x3F808000)); // tie, 0x3F80 even: stays
        assertEquals(0x3F82, bitsOfRaw(0x3F818000)); // tie, 0x3F81 odd: goes up
        assertEquals(0x3F81, bitsOfRaw(0x3F808001)); // just above the tie
        assertEquals(0x3F80, bitsOfRaw(0x3F807FFF)); // just below the tie
        assertEquals(0x4000, bitsOfRaw(0x3FFF8000)); // carry into the exponent
        assertEquals(0x0000, bitsOfRaw(0x00008000)); // float subnormal tie
        assertEquals(0x0002, bitsOfRaw(0x00018000));
    }

    @Test
    void overflowGoesToInfinity() {
        assertEquals(0x7F80, bits(Float.MAX_VALUE));
        assertEquals(0xFF80, bits(-Float.MAX_VALUE));
        assertEquals(0x7F7F, bitsOfRaw(0x7F7F7FFF)); // below the midpoint: largest finite
        assertEquals(0x7F80, bits(Float.POSITIVE_INFINITY));
        assertEquals(Float.NEGATIVE_INFINITY, Bf16.toFloat((short) 0xFF80));
    }

    @Test
    void nanStaysNanEvenWhenRoundingWouldCarry() {
        int maxPayload = bitsOfRaw(0x7FFFFFFF); // +0x7FFF+1 would carry into the sign bit
        assertTrue(isBf16NaN(maxPayload));
        assertEquals(0, maxPayload & 0x8000);
        assertTrue(isBf16NaN(bitsOfRaw(0x7F800001))); // payload only in the dropped bits
        assertTrue(isBf16NaN(bitsOfRaw(0x7FBF8000)));
        int negative = bitsOfRaw(0xFFFF8000);
        assertTrue(isBf16NaN(negative));
        assertEquals(0x8000, negative & 0x8000);
        assertTrue(isBf16NaN(bits(Float.NaN)));
        assertTrue(Float.isNaN(Bf16.toFloat((short) 0x7FC0)));
    }

    @Test
    void roundTripsEveryPattern() {
        for (int h = 0; h < 0x10000; h++) {
            float f = Bf16.toFloat((short) h);
            int back = bits(f);
            if (isBf16NaN(h)) {
                assertTrue(Float.isNaN(f));
                assertTrue(isBf16NaN(back), Integer.toHexString(h));
            } else {
                assertEquals(h, back, Integer.toHexString(h));
            }
        }
    }

    @Test
    void everyMidpointTiesToEven() {
        // For non-negative finite h the value halfway to h+1 is the float (h << 16) | 0x8000.
        for (int h = 0; h <= 0x7F7F; h++) {
            double lo = Bf16.toFloat((short) h);
            double hi = Bf16.toFloat((short) (h + 1));
            float mid = Float.intBitsToFloat((h << 16) | 0x8000);
            if (h != 0x7F7F) {
                assertEquals((lo + hi) / 2, mid, 0.0);
            }
            int even = (h & 1) == 0 ? h : h + 1;
            assertEquals(even, bits(mid), Integer.toHexString(h));
            assertEquals(h, bits(Math.nextDown(mid)), Integer.toHexString(h));
            assertEquals(h + 1, bits(Math.nextUp(mid)), Integer.toHexString(h));
        }
    }

    @Test
    void arrayHelpers() {
        float[] src = {1f, -2f, Float.intBitsToFloat(0x3F818000)};
        short[] b = Bf16.fromFloats(src);
        assertArrayEquals(new short[] {0x3F80, (short) 0xC000, 0x3F82}, b);
        assertArrayEquals(new float[] {1f, -2f, 1.015625f}, Bf16.toFloats(b));
        assertArrayEquals(new float[] {1f, -2f, 1.015625f}, Bf16.round(src));
        assertEquals(1.015625f, Bf16.round(Float.intBitsToFloat(0x3F818000)));
    }
}
