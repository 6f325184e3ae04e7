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
            int dim = TestLayouts.headDim(kind, DType.F32, 3);
            KvLayout l = KvLayout.of(kind, DType.F32, 3, 5, 2, dim);
            Set<Long> seen = new HashSet<>();
            for (int kv = 0; kv < 2; kv++)
                for (int blk = 0; blk < 3; blk++)
                    for (int j = 0; j < 5; j++)
                        for (int h = 0; h < 2; h++)
                            for (int d = 0; d < dim; d++) {
                                long o = l.offset(kv, blk, j, h, d);
                                assertEquals(true, o >= 0 && o < l.elements(), kind + " offset in range");
                                assertEquals(true, seen.add(o), kind + " offset unique");
                            }
            assertEquals(l.elements(), seen.size());
        }
    }

    @Test
    void legacyOffsetsByHand() {
        // B = 4, H = 2, D = 16, bf16: x = 8; key_cache [nb, H, D/x, B, x], value_cache [nb, H, D, B] after all keys
        int nb = 3, b = 4, h = 2, d = 16;
        KvLayout l = KvLayout.of(KvLayout.Kind.LEGACY, DType.BF16, nb, b, h, d);
        // K of (block 1, head 1, dim 9, token 2): (((1*2 + 1)*2 + 9/8)*4 + 2)*8 + 9%8 = ((7*4) + 2)*8 + 1 = 241
        assertEquals(241, l.offset(0, 1, 2, 1, 9));
        // V: ((1*2 + 1)*16 + 9)*4 + 2 = 57*4 + 2 = 230, after nb*B*H*D = 384 key elements
        assertEquals(384 + 230, l.offset(1, 1, 2, 1, 9));
        for (int blk = 0; blk < nb; blk++)
            for (int j = 0; j < b; j++)
                for (int hh = 0; hh < h; hh++)
                    for (int dd = 0; dd < d; dd++) {
                        assertEquals((((long) (blk * h + hh) * (d / 8) + dd / 8) * b + j) * 8 + dd % 8, l.offset(0, blk, j, hh, dd));
                        assertEquals((long) nb * b * h * d + ((long) (blk * h + hh) * d + dd) * b + j, l.offset(1, blk, j, hh, dd));
                    }
        assertEquals(false, l.dimContiguous());
        assertEquals(8, l.dimChunk(0));
        assertEquals(4 * 8, l.chunkStride(0));
        assertEquals(b, l.dimStride(1));
        assertEquals(true, KvLayout.of(KvLayout.Kind.FLASH_INFER_HND, DType.BF16, nb, b, h, 7).dimContiguous());
        assertEquals("LEGACY BF16 blocks=3 B=4 H_kv=2 D=16", l.toString());
        // x = 4 for f32: D = 4 is fine; D % x != 0 is rejected naming headDim
        assertEquals(2L * 4 * 4 * 4, KvLayout.of(KvLayout.Kind.LEGACY, DType.F32, 2, 4, 4, 4).elements() / 2);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KvLayout.of(KvLayout.Kind.LEGACY, DType.F16, 2, 4, 1, 12));
        assertEquals(true, e.getMessage().startsWith("headDim"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> KvLayout.of(KvLayout.Kind.LEGACY, DType.F32, 2, 4, 1, 6));
        assertThrows(IllegalArgumentException.class, () -> KvLayout.of(KvLayout.Kind.LEGACY, DType.BF16, 2, 16, 8, 128).withBlockSize(8).withBlockSize(0));
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
