package tokenprune.kv;

import tokenprune.methods.DType;

/**
 * Where each element of one layer's paged KV cache lives (methods-kv.md §3.3, §3.4), as element
 * strides, so that one kernel serves every layout: the offset of (kv, block, slot, head, dim) —
 * kv 0 = key, 1 = value; block = physical block id; slot = token index inside the block — is
 * {@code kv * kvStride + block * blockStride + slot * slotStride(kv) + head * headStride
 *  + (dim / dimChunk(kv)) * chunkStride(kv) + (dim % dimChunk(kv)) * dimStride(kv)}.
 * For every kind but {@link Kind#LEGACY} the head dimension is contiguous (dimChunk = headDim,
 * chunkStride 0, dimStride 1, the same slot stride for K and V: {@link #dimContiguous()}), which is
 * what the kernels' vector / unit-copy fast paths need.
 *
 * <ul>
 * <li>{@link Kind#FLASH_ATTENTION}: [2, num_blocks, B, H_kv, D] — K of (b, j, h, d) at
 * ((b·B + j)·H_kv + h)·D + d, V at the same offset plus num_blocks·B·H_kv·D;</li>
 * <li>{@link Kind#FLASH_INFER}: [num_blocks, 2, B, H_kv, D] — K and V of block b adjacent
 * (K at b·2·B·H_kv·D, V right after);</li>
 * <li>the HND variants ({@code _HND}): the same with [.., H_kv, B, D] inside a block;</li>
 * <li>{@link Kind#LEGACY}: vLLM v0 PagedAttention (methods-kv.md §3.2), per layer [2, num_blocks,
 * B·H_kv·D] viewed as key_cache [num_blocks, H_kv, D/x, B, x] (x = 16 / element bytes: f32 4,
 * f16/bf16 8) and value_cache [num_blocks, H_kv, D, B] (token innermost): K of (b, j, h, d) at
 * (((b·H_kv + h)·(D/x) + d/x)·B + j)·x + d%x, V at ((b·H_kv + h)·D + d)·B + j plus
 * num_blocks·B·H_kv·D. Requires D % x == 0. Kernels read it element-wise.</li>
 * </ul>
 */
public final class KvLayout {
    /** The memory order of one layer's cache tensor. */
    public enum Kind {
        FLASH_ATTENTION, FLASH_INFER, FLASH_ATTENTION_HND, FLASH_INFER_HND, LEGACY
    }

    public static final int DEFAULT_BLOCK_SIZE = 16;

    private final Kind kind;
    private final DType dtype;
    private final int numBlocks, blockSize, kvHeads, headDim;
    private final long kvStride, blockStride, headStride;
    // per half (index kv): the slot stride and the split-x dim addressing
    private final long[] slotStride = new long[2], chunkStride = new long[2], dimStride = new long[2];
    private final int[] dimChunk = new int[2];

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
        if (kind == Kind.LEGACY) {
            int x = 16 / dtype.bytes();
            if (headDim % x != 0)
                throw new IllegalArgumentException("headDim: must be a multiple of x = 16 / element bytes = " + x + " for LEGACY " + dtype
                        + ", was " + headDim);
            this.blockStride = perBlock;
            this.kvStride = perBlock * numBlocks;
            this.headStride = (long) headDim * blockSize;
            half(0, x, x, (long) blockSize * x, 1);     // key_cache [nb, H, D/x, B, x]
            half(1, 1, headDim, 0, blockSize);          // value_cache [nb, H, D, B]
            return;
        }
        boolean hnd = kind == Kind.FLASH_ATTENTION_HND || kind == Kind.FLASH_INFER_HND;
        long slot = hnd ? headDim : (long) kvHeads * headDim;
        this.headStride = hnd ? (long) blockSize * headDim : headDim;
        if (kind == Kind.FLASH_ATTENTION || kind == Kind.FLASH_ATTENTION_HND) {
            this.blockStride = perBlock;
            this.kvStride = perBlock * numBlocks;
        } else {
            this.blockStride = 2 * perBlock;
            this.kvStride = perBlock;
        }
        half(0, slot, headDim, 0, 1);
        half(1, slot, headDim, 0, 1);
    }

    private void half(int kv, long slot, int chunk, long chunkStr, long dimStr) {
        slotStride[kv] = slot;
        dimChunk[kv] = chunk;
        chunkStride[kv] = chunkStr;
        dimStride[kv] = dimStr;
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
        return kv * kvStride + block * blockStride + slot * slotStride[kv] + head * headStride + dimOffset(kv, dim);
    }

    private long dimOffset(int kv, int dim) {
        return (dim / dimChunk[kv]) * chunkStride[kv] + (dim % dimChunk[kv]) * dimStride[kv];
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

    /** The key half's slot stride (the value half's too for every dim-contiguous kind). */
    public long slotStride() {
        return slotStride[0];
    }

    /** Slot stride of half {@code kv} (0 key, 1 value). */
    public long slotStride(int kv) {
        return slotStride[kv];
    }

    /** x of half {@code kv}: dims per chunk (headDim for the dim-contiguous kinds). */
    public int dimChunk(int kv) {
        return dimChunk[kv];
    }

    /** Elements between dim chunks of half {@code kv} (0 for the dim-contiguous kinds). */
    public long chunkStride(int kv) {
        return chunkStride[kv];
    }

    /** Elements between consecutive dims inside a chunk of half {@code kv} (1 for the dim-contiguous kinds). */
    public long dimStride(int kv) {
        return dimStride[kv];
    }

    /** Whether every (token, head) row of K and V is headDim contiguous elements at the same slot stride (not LEGACY). */
    public boolean dimContiguous() {
        for (int kv = 0; kv < 2; kv++)
            if (dimChunk[kv] != headDim || dimStride[kv] != 1) return false;
        return slotStride[0] == slotStride[1];
    }

    public long headStride() {
        return headStride;
    }

    @Override
    public String toString() {
        return kind + " " + dtype + " blocks=" + numBlocks + " B=" + blockSize + " H_kv=" + kvHeads + " D=" + headDim;
    }
}
