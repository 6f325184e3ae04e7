package tokenprune.numeric;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.junit.jupiter.api.Test;

class Fp16Test {

    private static int bits(float f) {
        return Fp16.fromFloat(f) & 0xFFFF;
    }

    private static boolean isHalfNaN(int h) {
        return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    }

    @Test
    void knownNormalPatterns() {
        assertEquals(0x3C00, bits(1.0f));
        assertEquals(0xBC00, bits(-1.0f));
        assertEquals(0x4000, bits(2.0f));
        assertEquals(0x3800, bits(0.5f));
        assertEquals(0x3555, bits(1.0f / 3.0f));
        assertEquals(0x7BFF, bits(65504f));
        assertEquals(0x0400, bits(0x1p-14f)); // smallest normal
        assertEquals(0x3BFF, bits(0.99951171875f)); // largest half below 1
    }

    @Test
    void overflowBoundaryIsTheMidpointToTwoToTheSixteen() {
        assertEquals(0x7BFF, bits(Math.nextDown(65520f)));
        assertEquals(0x7C00, bits(65520f)); // tie between 65504 (odd mantissa) and 65536: goes up
        assertEquals(0xFC00, bits(-65520f));
        assertEquals(0x7C00, bits(Float.MAX_VALUE));
        assertEquals(0x7C00, bits(Float.POSITIVE_INFINITY));
        assertEquals(0xFC00, bits(Float.NEGATIVE_INFINITY));
    }

    @Test
    void subnormalsRoundToNearestEven() {
        assertEquals(0x0001, bits(0x1p-24f)); // smallest subnormal
        assertEquals(0x0000, bits(0x1p-25f)); // exact tie with 0: even is 0
        assertEquals(0x8000, bits(-0x1p-25f));
        assertEquals(0x0001, bits(Math.nextUp(0x1p-25f)));
        assertEquals(0x0002, bits(3 * 0x1p-25f)); // 1.5 units: tie, even is 2
        assertEquals(0x0002, bits(5 * 0x1p-25f)); // 2.5 units: tie, even is 2
        assertEquals(0x03FF, bits(1023 * 0x1p-24f)); // largest subnormal
        assertEquals(0x0400, bits(1023.5f * 0x1p-24f)); // rounds up into the smallest normal
        assertEquals(0x0000, bits(Float.MIN_VALUE)); // float subnormals vanish
        assertEquals(0x0000, bits(Float.MIN_NORMAL));
    }

    @Test
    void zerosKeepTheirSign() {
        assertEquals(0x0000, bits(0.0f));
        assertEquals(0x8000, bits(-0.0f));
        assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits(Fp16.toFloat((short) 0x8000)));
        assertEquals(Float.floatToRawIntBits(0.0f), Float.floatToRawIntBits(Fp16.toFloat((short) 0)));
    }

    @Test
    void nanStaysNan() {
        assertTrue(isHalfNaN(bits(Float.NaN)));
        // Payload only in the bits that are dropped: must not become infinity.
        assertTrue(isHalfNaN(bits(Float.intBitsToFloat(0x7F800001))));
        int negativeNaN = bits(Float.intBitsToFloat(0xFFC00000));
        assertTrue(isHalfNaN(negativeNaN));
        assertEquals(0x8000, negativeNaN & 0x8000);
        assertTrue(Float.isNaN(Fp16.toFloat((short) 0x7E00)));
        assertTrue(Float.isNaN(Fp16.toFloat((short) 0x7C01)));
        assertTrue(Float.isNaN(Fp16.toFloat((short) 0xFFFF)));
    }

    @Test
    void toFloatKnownValues() {
        assertEquals(1.0f, Fp16.toFloat((short) 0x3C00));
        assertEquals(0.333251953125f, Fp16.toFloat((short) 0x3555));
        assertEquals(65504f, Fp16.toFloat((short) 0x7BFF));
        assertEquals(0x1p-24f, Fp16.toFloat((short) 0x0001));
        assertEquals(1023 * 0x1p-24f, Fp16.toFloat((short) 0x03FF));
        assertEquals(-0x1p-14f, Fp16.toFloat((short) 0x8400));
        assertEquals(Float.POSITIVE_INFINITY, Fp16.toFloat((short) 0x7C00));
        assertEquals(Float.NEGATIVE_INFINITY, Fp16.toFloat((short) 0xFC00));
    }

    @Test
    void roundTripsEveryPattern() {
        for (int h = 0; h < 0x10000; h++) {
            float f = Fp16.toFloat((short) h);
            int back = bits(f);
            if (isHalfNaN(h)) {
                assertTrue(Float.isNaN(f), "pattern " + Integer.toHexString(h));
                assertTrue(isHalfNaN(back), "pattern " + Integer.toHexString(h));
            } else {
                assertEquals(h, back, "pattern " + Integer.toHexString(h));
            }
        }
    }

    @Test
    void everyMidpointTiesToEvenAndItsNeighboursRoundToTheNearerSide() {
        // Between consecutive non-negative finite halves h and h+1 (and between 0x7BFF and 2^16),
        // the midpoint is exact in float: it must go to the even pattern, one float ulp either side
        // must go to the nearer pattern.
        for (int h = 0; h <= 0x7BFF; h++) {
            double lo = Fp16.toFloat((short) h);
            double hi = h == 0x7BFF ? 65536.0 : Fp16.toFloat((short) (h + 1));
            float mid = (float) ((lo + hi) / 2);
            assertEquals((lo + hi) / 2, mid, 0.0, "midpoint not exact for " + h);
            int even = (h & 1) == 0 ? h : h + 1;
            assertEquals(even, bits(mid), "midpoint above " + Integer.toHexString(h));
            assertEquals(h, bits(Math.nextDown(mid)), "below midpoint above " + Integer.toHexString(h));
            assertEquals(h + 1, bits(Math.nextUp(mid)), "above midpoint above " + Integer.toHexString(h));
            assertEquals(even | 0x8000, bits(-mid), "negative midpoint above " + Integer.toHexString(h));
        }
    }

    @Test
    void randomFloatsGoToANearestHalf() {
        Random rnd = new Random(12345);
        for (int i = 0; i < 200_000; i++) {
            float x = (float) ((rnd.nextDouble() * 2 - 1) * Math.pow(2, rnd.nextInt(44) - 28));
            int h = bits(x);
            double err = Math.abs((double) x - Fp16.toFloat((short) h));
            // Neighbouring patterns on both sides must not be strictly nearer.
            for (int nb : new int[] {h - 1, h + 1}) {
                if ((nb & 0x7FFF) < 0x7C00 && (nb & 0xFFFF8000) == (h & 0xFFFF8000)) {
                    double nbErr = Math.abs((double) x - Fp16.toFloat((short) nb));
                    assertTrue(err <= nbErr, "x=" + x + " -> " + Integer.toHexString(h));
                }
            }
        }
    }

    @Test
    void roundOfFloats() {
        assertEquals(1024f, Fp16.round(1024.5f)); // tie, 1024 is even
        assertEquals(1026f, Fp16.round(1025.5f)); // tie, 1026 is even
        assertEquals(2048f, Fp16.round(2049f)); // spacing 2: tie to even
        assertEquals(2052f, Fp16.round(2051f));
        assertEquals(0.333251953125f, Fp16.round(1f / 3));
        assertEquals(Float.POSITIVE_INFINITY, Fp16.round(70000f));
    }

    @Test
    void arrayHelpersMatchScalarConversions() {
        float[] src = {1f, -2.5f, 1f / 3, 65520f, 0x1p-25f, -0.0f};
        short[] halves = Fp16.fromFloats(src);
        assertArrayEquals(new short[] {0x3C00, (short) 0xC100, 0x3555, 0x7C00, 0x0000, (short) 0x8000}, halves);
        assertArrayEquals(new float[] {1f, -2.5f, 0.333251953125f, Float.POSITIVE_INFINITY, 0f, -0.0f},
                Fp16.toFloats(halves));
        assertArrayEquals(Fp16.toFloats(halves), Fp16.round(src));
    }
}
