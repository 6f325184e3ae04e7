package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

import tokenprune.kv.KvLayout;
import tokenprune.methods.DType;

/** KvCompactionReference by hand: SL-4 (methods-kv.md §13), NEOX vs GPT-J pairing, an in-place move with state. */
class KvCompactionReferenceTest {
    @Test
    void sl4() {
        double[] key = {Math.cos(5), Math.sin(5)};
        assertEquals(0.28366, key[0], 1e-5);
        assertEquals(-0.95892, key[1], 1e-5);
        KvCompactionReference.rotate(key, 2, 10000, false, 2 - 5);
        assertEquals(Math.cos(2), key[0], 1e-12);
        assertEquals(Math.sin(2), key[1], 1e-12);
        assertEquals(-0.41615, key[0], 1e-5);
        assertEquals(0.90930, key[1], 1e-5);
    }

    @Test
    void pairings() {
        // rotary dim 4, base 1: every theta is 1. NEOX pairs (0, 2), (1, 3); GPT-J pairs (0, 1), (2, 3); dim 4 untouched
        double a = Math.PI / 2;
        double[] neox = {1, 0, 0, 0, 7};
        KvCompactionReference.rotate(neox, 4, 1, false, a);
        assertArrayEquals(new double[] {0, 0, 1, 0, 7}, neox, 1e-12);
        double[] gptj = {1, 0, 0, 0, 7};
        KvCompactionReference.rotate(gptj, 4, 1, true, a);
        assertArrayEquals(new double[] {0, 1, 0, 0, 7}, gptj, 1e-12);
    }

    @Test
    void inPlaceMoveWithState() {
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 2, 2, 1, 1);
        // tokens 0..3 in table [1, 0]: K = 10 + t, V = 20 + t; state = 30 + t
        float[] cache = new float[(int) layout.elements()];
        float[] state = new float[4];
        int[] table = {1, 0};
        for (int t = 0; t < 4; t++) {
            cache[(int) layout.offset(0, table[t / 2], t % 2, 0, 0)] = 10 + t;
            cache[(int) layout.offset(1, table[t / 2], t % 2, 0, 0)] = 20 + t;
            state[table[t / 2] * 2 + t % 2] = 30 + t;
        }
        KvCompactionReference.Result r = KvCompactionReference.compact(layout, cache, state, table, 2, null, 2, new int[] {0, 2}, new int[] {1, 3}, false,
                null, 0, 1, false);
        float[] c = (float[]) r.cache();
        assertEquals(11, c[(int) layout.offset(0, 1, 0, 0, 0)]);
        assertEquals(13, c[(int) layout.offset(0, 1, 1, 0, 0)]);
        assertEquals(23, c[(int) layout.offset(1, 1, 1, 0, 0)]);
        assertEquals(12, c[(int) layout.offset(0, 0, 0, 0, 0)], "behind the kept count: unchanged");
        assertArrayEquals(new float[] {32, 33, 31, 33}, r.state());
    }
}
