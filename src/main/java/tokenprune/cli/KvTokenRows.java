package tokenprune.cli;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.KvLayout;

/**
 * One token's K or V (kvHeads x headDim values in (head, dim) order, a float[] or short[]) written
 * into a cache of any {@link KvLayout}: one array copy when the layout keeps a token's H x D values
 * contiguous (FlashAttention / FlashInfer NHD), element by element through {@link KvLayout#offset}
 * otherwise (the HND variants, LEGACY).
 */
final class KvTokenRows {
    private KvTokenRows() {
    }

    /** Whether a token's K (and V) is kvHeads x headDim contiguous elements. */
    static boolean tokenContiguous(KvLayout l) {
        return l.dimContiguous() && l.headStride() == l.headDim() && l.slotStride() == (long) l.kvHeads() * l.headDim();
    }

    /** Writes {@code row} as half {@code kv} of token (block, slot) into the host cache {@code cache}. */
    static void put(KvLayout l, Object cache, int kv, int block, int slot, Object row) {
        put(l, cache, 0, kv, block, slot, row);
    }

    /** Copies both halves of token (srcBlock, srcSlot) of {@code src} to (dstBlock, dstSlot) of {@code dst} (same kvHeads, headDim, dtype). */
    static void copy(KvLayout from, Object src, int srcBlock, int srcSlot, KvLayout to, Object dst, int dstBlock, int dstSlot) {
        int n = from.kvHeads() * from.headDim();
        for (int kv = 0; kv < 2; kv++) {
            if (tokenContiguous(from) && tokenContiguous(to)) {
                System.arraycopy(src, (int) from.offset(kv, srcBlock, srcSlot, 0, 0), dst, (int) to.offset(kv, dstBlock, dstSlot, 0, 0), n);
                continue;
            }
            Object row = src instanceof float[] ? new float[n] : new short[n];
            for (int h = 0; h < from.kvHeads(); h++)
                for (int d = 0; d < from.headDim(); d++)
                    System.arraycopy(src, (int) from.offset(kv, srcBlock, srcSlot, h, d), row, h * from.headDim() + d, 1);
            put(to, dst, 0, kv, dstBlock, dstSlot, row);
        }
    }

    /**
     * Writes {@code row} as half {@code kv} of token (block, slot) of the device cache: one upload when
     * the token is contiguous, else a round trip of the block's half (LEGACY keeps each half of a block
     * contiguous: B x H x D elements), which synchronises {@code stream}.
     */
    static void upload(KernelDevice kd, KvLayout l, DeviceBuffer cache, int kv, int block, int slot, Object row, Stream stream) {
        long es = l.dtype().bytes(), n = (long) l.kvHeads() * l.headDim();
        if (tokenContiguous(l)) {
            upload(kd, row, cache.slice(l.offset(kv, block, slot, 0, 0) * es, n * es), stream);
            return;
        }
        if (l.kind() != KvLayout.Kind.LEGACY) throw new IllegalArgumentException("layout: " + l.kind() + " token writes are not supported");
        long lo = l.offset(kv, block, 0, 0, 0);
        int span = l.blockSize() * l.kvHeads() * l.headDim();
        DeviceBuffer half = cache.slice(lo * es, span * es);
        Object tmp = row instanceof float[] ? new float[span] : new short[span];
        if (tmp instanceof float[] f) kd.download(half, f, stream);
        else kd.download(half, (short[]) tmp, stream);
        stream.synchronize();
        put(l, tmp, lo, kv, block, slot, row);
        upload(kd, tmp, half, stream);
    }


    private static void put(KvLayout l, Object cache, long base, int kv, int block, int slot, Object row) {
        int n = l.kvHeads() * l.headDim();
        if (tokenContiguous(l)) {
            System.arraycopy(row, 0, cache, (int) (l.offset(kv, block, slot, 0, 0) - base), n);
            return;
        }
        for (int h = 0; h < l.kvHeads(); h++)
            for (int d = 0; d < l.headDim(); d++)
                System.arraycopy(row, h * l.headDim() + d, cache, (int) (l.offset(kv, block, slot, h, d) - base), 1);
    }

    private static void upload(KernelDevice kd, Object data, DeviceBuffer dst, Stream stream) {
        if (data instanceof float[] f) kd.upload(f, dst, stream);
        else kd.upload((short[]) data, dst, stream);
    }
}
