package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HashSet;
import java.util.Set;

import org.junit.jupiter.api.Test;

import tokenprune.methods.DType;

/** The element offsets of methods-kv.md §3.3 / §3.4, and that every layout is a bijection onto the tensor. */
class KvLayoutTest {
    @Test
    void flashAttentionOffsetsAreTheSpecFormula() {
        int nb = 5, b = 4, h = 3, d = 7;
        KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.BF16, nb, b, h, d);
        for (int blk = 0; blk < nb; blk++)
            for (int j = 0; j < b; j++)
                for (int hh = 0; hh < h; hh++)
                    for (int dd = 0; dd < d; dd++) {
                        long k = ((long) (blk * b + j) * h + hh) * d + dd;
                        assertEquals(k, l.offset(0, blk, j, hh, dd));
                        assertEquals(k + (long) nb * b * h * d, l.offset(1, blk, j, hh, dd));
                    }
        assertEquals(2L * nb * b * h * d * 2, l.bytes());
    }

    @Test
    void flashInferKeepsKAndVOfABlockAdjacent() {
        int nb = 5, b = 4, h = 3, d = 7;
        KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.F32, nb, b, h, d);
        long per = (long) b * h * d;
        for (int blk = 0; blk < nb; blk++) {
            assertEquals(blk * 2 * per, l.offset(0, blk, 0, 0, 0));
            assertEquals(blk * 2 * per + per, l.offset(1, blk, 0, 0, 0));
            assertEquals(blk * 2 * per + (2L * h + 1) * d + 5, l.offset(0, blk, 2, 1, 5));
        }
    }

    @Test
    void hndPutsTheHeadOutsideTheSlot() {
        KvLayout l = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION_HND, DType.F16, 2, 4, 3, 5);
        assertEquals(((1L * 3 + 2) * 4 + 3) * 5 + 4, l.offset(0, 1, 3, 2, 4));  // [2, nb, H, B, D]
        KvLayout fi = KvLayout.of(KvLayout.Kind.FLASH_INFER_HND, DType.F16, 2, 4, 3, 5);
        assertEquals(60L * 3 + (2L * 4 + 3) * 5 + 4, fi.offset(1, 1, 3, 2, 4));  // [nb, 2, H, B, D]
    }

    @Test
    void everyLayoutCoversTheTensorExactlyOnce() {
        for (KvLayout.Kind kind : KvLayout.Kind.values()) {
            KvLayout l = KvLayout.of(kind, DType.F32, 3, 5, 2, 3);
            Set<Long> seen = new HashSet<>();
            for (int kv = 0; kv < 2; kv++)
                for (int blk = 0; blk < 3; blk++)
                    for (int j = 0; j < 5; j++)
                        for (int h = 0; h < 2; h++)
                            for (int d = 0; d < 3; d++) {
                                long o = l.offset(kv, blk, j, h, d);
                                assertEquals(true, o >= 0 && o < l.elements(), kind + " offset in range");
                                assertEquals(true, seen.add(o), kind + " offset unique");
                            }
            assertEquals(l.elements(), seen.size());
        }
    }

    @Test
    void defaultsAndBadShapes() {
        assertEquals(16, KvLayout.flashAttention(DType.BF16, 10, 8, 128).blockSize());
        assertEquals(32, KvLayout.flashInfer(DType.BF16, 10, 8, 128).withBlockSize(32).blockSize());
        assertThrows(IllegalArgumentException.class, () -> KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.F32, 0, 16, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.F32, 1, 16, 0, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> KvLayout.flashInfer(DType.F32, 2, 1, 1).offset(0, 2, 0, 0, 0));
    }
}
