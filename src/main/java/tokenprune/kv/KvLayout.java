package tokenprune.kv;

import tokenprune.methods.DType;

/**
 * Where each element of one layer's paged KV cache lives (methods-kv.md §3.3, §3.4), as element
 * strides, so that one kernel serves every layout: the offset of (kv, block, slot, head, dim) —
 * kv 0 = key, 1 = value; block = physical block id; slot = token index inside the block — is
 * {@code kv * kvStride + block * blockStride + slot * slotStride + head * headStride + dim}.
 * The head dimension is always contiguous.
 *
 * <ul>
 * <li>{@link Kind#FLASH_ATTENTION}: [2, num_blocks, B, H_kv, D] — K of (b, j, h, d) at
 * ((b·B + j)·H_kv + h)·D + d, V at the same offset plus num_blocks·B·H_kv·D;</li>
 * <li>{@link Kind#FLASH_INFER}: [num_blocks, 2, B, H_kv, D] — K and V of block b adjacent
 * (K at b·2·B·H_kv·D, V right after);</li>
 * <li>the HND variants ({@code _HND}): the same with [.., H_kv, B, D] inside a block.</li>
 * </ul>
 */
public final class KvLayout {
    /** The memory order of one layer's cache tensor. */
    public enum Kind {
        FLASH_ATTENTION, FLASH_INFER, FLASH_ATTENTION_HND, FLASH_INFER_HND
    }

    public static final int DEFAULT_BLOCK_SIZE = 16;

    private final Kind kind;
    private final DType dtype;
    private final int numBlocks, blockSize, kvHeads, headDim;
    private final long kvStride, blockStride, slotStride, headStride;

    private KvLayout(Kind kind, DType dtype, int numBlocks, int blockSize, int kvHeads, int headDim) {
        if (kind == null) throw new IllegalArgumentException("kind: must not be null");
        if (dtype == null) throw new IllegalArgumentException("dtype: must not be null");
        if (numBlocks < 1) throw new IllegalArgumentException("numBlocks: must be >= 1, was " + numBlocks);
        if (blockSize < 1) throw new IllegalArgumentException("blockSize: must be >= 1, was " + blockSize);
        if (kvHeads < 1) throw new IllegalArgumentException("kvHeads: must be >= 1, was " + kvHeads);
        if (headDim < 1) throw new IllegalArgumentException("headDim: must be >= 1, was " + headDim);
        this.kind = kind;
        this.dtype = dtype;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        long perBlock = (long) blockSize * kvHeads * headDim;  // one of K or V of one block
        boolean hnd = kind == Kind.FLASH_ATTENTION_HND || kind == Kind.FLASH_INFER_HND;
        this.slotStride = hnd ? headDim : (long) kvHeads * headDim;
        this.headStride = hnd ? (long) blockSize * headDim : headDim;
        if (kind == Kind.FLASH_ATTENTION || kind == Kind.FLASH_ATTENTION_HND) {
            this.blockStride = perBlock;
            this.kvStride = perBlock * numBlocks;
        } else {
            this.blockStride = 2 * perBlock;
            this.kvStride = perBlock;
        }
    }

    public static KvLayout of(Kind kind, DType dtype, int numBlocks, int blockSize, int kvHeads, int headDim) {
        return new KvLayout(kind, dtype, numBlocks, blockSize, kvHeads, headDim);
    }

    /** FlashAttention NHD layout with the default block size 16. */
    public static KvLayout flashAttention(DType dtype, int numBlocks, int kvHeads, int headDim) {
        return of(Kind.FLASH_ATTENTION, dtype, numBlocks, DEFAULT_BLOCK_SIZE, kvHeads, headDim);
    }

    /** FlashInfer NHD layout with the default block size 16. */
    public static KvLayout flashInfer(DType dtype, int numBlocks, int kvHeads, int headDim) {
        return of(Kind.FLASH_INFER, dtype, numBlocks, DEFAULT_BLOCK_SIZE, kvHeads, headDim);
    }

    /** The same layout with another block size. */
    public KvLayout withBlockSize(int b) {
        return of(kind, dtype, numBlocks, b, kvHeads, headDim);
    }

    /** Element offset of (kv, block, slot, head, dim); kv 0 = key, 1 = value. */
    public long offset(int kv, int block, int slot, int head, int dim) {
        if (kv < 0 || kv > 1) throw new IndexOutOfBoundsException("kv " + kv);
        if (block < 0 || block >= numBlocks) throw new IndexOutOfBoundsException("block " + block + " of " + numBlocks);
        if (slot < 0 || slot >= blockSize) throw new IndexOutOfBoundsException("slot " + slot + " of " + blockSize);
        if (head < 0 || head >= kvHeads) throw new IndexOutOfBoundsException("head " + head + " of " + kvHeads);
        if (dim < 0 || dim >= headDim) throw new IndexOutOfBoundsException("dim " + dim + " of " + headDim);
        return kv * kvStride + block * blockStride + slot * slotStride + head * headStride + dim;
    }

    /** Elements of the whole tensor (K and V of every block). */
    public long elements() {
        return 2L * numBlocks * blockSize * kvHeads * headDim;
    }

    public long bytes() {
        return elements() * dtype.bytes();
    }

    public Kind kind() {
        return kind;
    }

    public DType dtype() {
        return dtype;
    }

    public int numBlocks() {
        return numBlocks;
    }

    public int blockSize() {
        return blockSize;
    }

    public int kvHeads() {
        return kvHeads;
    }

    public int headDim() {
        return headDim;
    }

    public long kvStride() {
        return kvStride;
    }

    public long blockStride() {
        return blockStride;
    }

    public long slotStride() {
        return slotStride;
    }

    public long headStride() {
        return headStride;
    }

    @Override
    public String toString() {
        return kind + " " + dtype + " blocks=" + numBlocks + " B=" + blockSize + " H_kv=" + kvHeads + " D=" + headDim;
    }
}
