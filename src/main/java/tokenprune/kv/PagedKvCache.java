package tokenprune.kv;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Host bookkeeping of a paged KV cache under an eviction budget (methods-kv.md §2.3, PE-REF
 * steps 5–7): per sequence a block table (physical block ids in logical order), the number of
 * tokens physically held (kv_len, what attention and the slot mapping use) and the logical length
 * (tokens seen, what RoPE positions continue from), kept separately, plus one block score per
 * table entry; and the pool of free physical blocks. Device memory stays with the caller: this
 * class holds none.
 *
 * <p>Two granularities. {@link Granularity#BLOCK} (the constructor; PagedEviction and the block-level
 * attention policies): whole blocks are evicted ({@link #evictBlock}) under the PE-REF invariants —
 * kv_len ≡ logical length (mod B), C ≤ kv_len ≤ C + B once over budget. {@link Granularity#TOKEN}
 * ({@link #forTokenEviction}; H2O, A2SF, SnapKV, StreamingLLM on the paged cache, §4.4 option (i)):
 * the caller compacts the kept tokens to the front of the sequence's blocks (tokenprune.kv.KvCompaction)
 * and reports the new kv_len with {@link #compactSequence}, which releases the trailing blocks. kv_len may
 * then grow to C + slack before the next compaction: slack = 1 evicts every step (H2O as published),
 * slack = B compacts once per B steps and frees one block each time. A prompt may be allocated whole
 * (kv_len = logical length, any length) and compacted to C once (PromptCompression with the same C);
 * appending to it needs that compaction first when it holds C + slack or more.
 *
 * <p>Every mutating operation validates first and changes nothing when it throws
 * {@link IllegalArgumentException}. Evicted blocks are not reusable at once: they wait in a
 * pending list until {@link #reclaimEvicted()} (call it after the step's kernels have run), as
 * PE-REF step 5 requires. The free pool is LIFO, so a just-reclaimed block is the next one given out.
 * Not thread-safe.
 */
public final class PagedKvCache {
    private static final class Seq {
        final List<Integer> table = new ArrayList<>();
        final List<Float> scores = new ArrayList<>();
        int kvLen;
        long logical;
        int firstBlock = -1;  // block 0 is never evicted: checked by checkInvariants
    }

    /** What {@link #appendTokens} assigned: the physical slot and the RoPE position of each new token. */
    public record Append(int[] slots, long[] positions) {
    }

    /** What an eviction removes: whole blocks, or tokens followed by a compaction. */
    public enum Granularity {
        BLOCK, TOKEN
    }

    private final Granularity granularity;
    private final int numBlocks, blockSize, budget, slack;
    private final ArrayDeque<Integer> free = new ArrayDeque<>();
    private final List<Integer> evicted = new ArrayList<>();
    private final Map<Integer, Seq> seqs = new LinkedHashMap<>();
    private int nextId;

    /**
     * @param numBlocks physical blocks in the pool (ids 0 .. numBlocks-1)
     * @param blockSize tokens per block B
     * @param budget C, tokens per sequence; a multiple of B and at least 3B
     */
    public PagedKvCache(int numBlocks, int blockSize, int budget) {
        this(Granularity.BLOCK, numBlocks, blockSize, budget, blockSize);
    }

    /**
     * A cache whose policy evicts tokens (H2O, A2SF, SnapKV, StreamingLLM token mode) and compacts.
     *
     * @param budget C, the tokens a sequence keeps after a compaction (>= 1)
     * @param slack  how far kv_len may grow past C before the caller must compact (>= 1)
     */
    public static PagedKvCache forTokenEviction(int numBlocks, int blockSize, int budget, int slack) {
        return new PagedKvCache(Granularity.TOKEN, numBlocks, blockSize, budget, slack);
    }

    private PagedKvCache(Granularity granularity, int numBlocks, int blockSize, int budget, int slack) {
        if (numBlocks < 1) throw new IllegalArgumentException("numBlocks: must be >= 1, was " + numBlocks);
        if (blockSize < 1) throw new IllegalArgumentException("blockSize: must be >= 1, was " + blockSize);
        if (granularity == Granularity.BLOCK) {
            if (budget % blockSize != 0) throw new IllegalArgumentException("budget: must be a multiple of the block size " + blockSize + ", was " + budget);
            if ((long) budget < 3L * blockSize) throw new IllegalArgumentException("budget: must be at least 3 blocks (" + 3L * blockSize + " tokens), was " + budget);
        } else {
            if (budget < 1) throw new IllegalArgumentException("budget: must be >= 1, was " + budget);
            if (slack < 1) throw new IllegalArgumentException("slack: must be >= 1, was " + slack);
            if ((long) budget + slack > Integer.MAX_VALUE) throw new IllegalArgumentException("slack: budget + slack overflows an int");
        }
        this.granularity = granularity;
        this.numBlocks = numBlocks;
        this.blockSize = blockSize;
        this.budget = budget;
        this.slack = slack;
        for (int b = numBlocks - 1; b >= 0; b--) free.push(b);
    }

    public Granularity granularity() {
        return granularity;
    }

    /** TOKEN: how far kv_len may grow past C before a compaction; BLOCK: B. */
    public int slack() {
        return slack;
    }

    public int numBlocks() {
        return numBlocks;
    }

    public int blockSize() {
        return blockSize;
    }

    public int budget() {
        return budget;
    }

    /** The most blocks one sequence may hold: C/B + 1 (BLOCK), ⌈(C + slack)/B⌉ (TOKEN). */
    public int maxBlocksPerSequence() {
        return granularity == Granularity.BLOCK ? budget / blockSize + 1 : blocksFor((long) budget + slack);
    }

    public int freeBlockCount() {
        return free.size();
    }

    /** Evicted blocks not yet returned to the pool. */
    public int[] pendingEvicted() {
        return evicted.stream().mapToInt(Integer::intValue).toArray();
    }

    public int[] sequenceIds() {
        return seqs.keySet().stream().mapToInt(Integer::intValue).toArray();
    }

    private Seq seq(int id) {
        Seq s = seqs.get(id);
        if (s == null) throw new IllegalArgumentException("sequence: no sequence " + id);
        return s;
    }

    private int blocksFor(long kvLen) {
        return (int) ((kvLen + blockSize - 1) / blockSize);
    }

    /** The length rules of a (kv_len, logical length) pair, or null when they hold. */
    private String lengthProblem(long kvLen, long logical) {
        if (kvLen < 0 || logical < 0) return "lengths must be >= 0, were kv_len " + kvLen + ", logical " + logical;
        if (kvLen > logical) return "kv_len " + kvLen + " exceeds the logical length " + logical;
        if (logical <= budget && kvLen != logical) return "kv_len " + kvLen + " != logical length " + logical + " under the budget " + budget;
        if (granularity == Granularity.TOKEN)  // a prompt not compressed yet (kv_len = logical length) may be longer, until its compaction
            return kvLen > (long) budget + slack && kvLen != logical ? "kv_len " + kvLen + " exceeds C + slack = " + ((long) budget + slack) : null;
        if (kvLen % blockSize != logical % blockSize) return "kv_len " + kvLen + " and logical length " + logical + " disagree modulo B = " + blockSize;
        if (logical > budget && (kvLen < budget || kvLen > (long) budget + blockSize))
            return "kv_len " + kvLen + " outside [C, C + B] = [" + budget + ", " + (budget + blockSize) + "] for a logical length " + logical + " over the budget";
        return null;
    }

    /**
     * A new sequence holding {@code kvLen} tokens of a prompt of {@code logicalLen} tokens (after
     * prefill pruning: kv_len = C + r; without pruning kv_len = L), in ⌈kvLen/B⌉ blocks from the pool.
     * Block scores start unset (NaN).
     */
    public int allocateSequence(int kvLen, long logicalLen) {
        String p = lengthProblem(kvLen, logicalLen);
        if (p != null) throw new IllegalArgumentException("lengths: " + p);
        if (granularity == Granularity.BLOCK && logicalLen > budget && kvLen == budget + blockSize)
            throw new IllegalArgumentException("lengths: kv_len must be at most C + B - 1 after prefill, was " + kvLen);
        int need = blocksFor(kvLen);
        if (need > free.size()) throw new IllegalArgumentException("pool: " + need + " blocks needed, " + free.size() + " free");
        Seq s = new Seq();
        for (int i = 0; i < need; i++) s.table.add(free.pop());
        for (int i = 0; i < need; i++) s.scores.add(Float.NaN);
        s.kvLen = kvLen;
        s.logical = logicalLen;
        if (need > 0) s.firstBlock = s.table.get(0);
        seqs.put(nextId, s);
        return nextId++;
    }

    /**
     * A new sequence over the given physical blocks (taken out of the free pool), e.g. a table
     * built by the caller's prefill. Rejected: a block outside the pool, a block not free, a block
     * twice, a table length other than ⌈kvLen/B⌉, lengths that disagree.
     */
    public int adoptSequence(int[] blockTable, int kvLen, long logicalLen) {
        if (blockTable == null) throw new IllegalArgumentException("blockTable: must not be null");
        String p = lengthProblem(kvLen, logicalLen);
        if (p != null) throw new IllegalArgumentException("lengths: " + p);
        if (blockTable.length != blocksFor(kvLen))
            throw new IllegalArgumentException("blockTable: has " + blockTable.length + " entries, kv_len " + kvLen + " needs " + blocksFor(kvLen));
        BitSet seen = new BitSet();
        for (int i = 0; i < blockTable.length; i++) {
            int b = blockTable[i];
            if (b < 0 || b >= numBlocks) throw new IllegalArgumentException("blockTable: entry " + i + " = " + b + " lies outside the pool 0 .. " + (numBlocks - 1));
            if (seen.get(b)) throw new IllegalArgumentException("blockTable: block " + b + " appears twice");
            if (!free.contains(b)) throw new IllegalArgumentException("blockTable: block " + b + " is not free");
            seen.set(b);
        }
        Seq s = new Seq();
        for (int b : blockTable) {
            free.remove(b);
            s.table.add(b);
            s.scores.add(Float.NaN);
        }
        s.kvLen = kvLen;
        s.logical = logicalLen;
        if (blockTable.length > 0) s.firstBlock = blockTable[0];
        seqs.put(nextId, s);
        return nextId++;
    }

    /**
     * Appends {@code count} tokens (decode): token i goes to slot table[kv_len div B]·B + kv_len mod B,
     * a block being allocated first whenever kv_len mod B = 0; its RoPE position is the logical length
     * before it. Rejected (nothing changed): count < 1, too few free blocks, or a kv_len beyond C + B
     * (BLOCK: a full block over the budget must be evicted first) or C + slack (TOKEN: compact first).
     */
    public Append appendTokens(int seqId, int count) {
        Seq s = seq(seqId);
        if (count < 1) throw new IllegalArgumentException("count: must be >= 1, was " + count);
        long newKv = (long) s.kvLen + count, newLogical = s.logical + count;
        if (granularity == Granularity.BLOCK && newLogical > budget && newKv > (long) budget + blockSize)
            throw new IllegalArgumentException("count: kv_len would reach " + newKv + " > C + B = " + (budget + blockSize) + ": evict a block first");
        if (granularity == Granularity.TOKEN && newKv > (long) budget + slack)
            throw new IllegalArgumentException("count: kv_len would reach " + newKv + " > C + slack = " + ((long) budget + slack) + ": compact first");
        int need = blocksFor(newKv) - s.table.size();
        if (need > free.size()) throw new IllegalArgumentException("pool: " + need + " blocks needed, " + free.size() + " free");
        int[] slots = new int[count];
        long[] positions = new long[count];
        for (int i = 0; i < count; i++) {
            if (s.kvLen % blockSize == 0) {
                s.table.add(free.pop());
                s.scores.add(Float.NaN);
                if (s.table.size() == 1) s.firstBlock = s.table.get(0);
            }
            slots[i] = s.table.get(s.kvLen / blockSize) * blockSize + s.kvLen % blockSize;
            positions[i] = s.logical;
            s.kvLen++;
            s.logical++;
        }
        return new Append(slots, positions);
    }

    /**
     * Evicts logical block {@code index}: removes it from the table and the score array (the tail
     * shifts left), kv_len -= B, and parks the physical block until {@link #reclaimEvicted()}.
     * Allowed only as PE-REF evicts: the newest block is full (kv_len mod B = 0), the logical length
     * is over the budget, kv_len stays >= C, and 1 <= index <= n_blocks - 2 (block 0 and the block
     * holding the newest token are never evicted). Returns the physical block.
     */
    public int evictBlock(int seqId, int index) {
        if (granularity != Granularity.BLOCK) throw new IllegalArgumentException("seqId: a TOKEN-granularity cache evicts by compactSequence, not evictBlock");
        Seq s = seq(seqId);
        int n = s.table.size();
        if (index < 1 || index > n - 2)
            throw new IllegalArgumentException("index: must be in 1 .. n_blocks - 2 = " + (n - 2) + " (block 0 and the newest block are protected), was " + index);
        if (s.kvLen % blockSize != 0) throw new IllegalArgumentException("index: the newest block is not full (kv_len " + s.kvLen + ", B " + blockSize + ")");
        if (s.logical <= budget) throw new IllegalArgumentException("index: logical length " + s.logical + " is within the budget " + budget);
        if (s.kvLen - blockSize < budget) throw new IllegalArgumentException("index: kv_len would drop to " + (s.kvLen - blockSize) + " < C = " + budget);
        int b = s.table.remove(index);
        s.scores.remove(index);
        s.kvLen -= blockSize;
        evicted.add(b);
        return b;
    }

    /**
     * TOKEN granularity: the caller has compacted the sequence's kept tokens into its first
     * {@code newKvLen} token slots (same table prefix); the blocks past ⌈newKvLen/B⌉ leave the table
     * (and their scores) and wait for {@link #reclaimEvicted()}. The logical length is unchanged.
     * Rejected (nothing changed): BLOCK granularity, newKvLen > kv_len, newKvLen < min(C, kv_len) (a
     * compaction keeps C tokens) or newKvLen = 0 for a non-empty sequence. Returns the released physical blocks.
     */
    public int[] compactSequence(int seqId, int newKvLen) {
        if (granularity != Granularity.TOKEN) throw new IllegalArgumentException("seqId: a BLOCK-granularity cache evicts by evictBlock, not compactSequence");
        Seq s = seq(seqId);
        if (newKvLen > s.kvLen) throw new IllegalArgumentException("newKvLen: " + newKvLen + " exceeds kv_len " + s.kvLen);
        if (newKvLen < Math.min(budget, s.kvLen))
            throw new IllegalArgumentException("newKvLen: must be in [min(C, kv_len), kv_len] = [" + Math.min(budget, s.kvLen) + ", " + s.kvLen + "], was " + newKvLen);
        int keepBlocks = blocksFor(newKvLen);
        int[] released = new int[s.table.size() - keepBlocks];
        for (int i = released.length - 1; i >= 0; i--) {
            released[i] = s.table.remove(keepBlocks + i);
            s.scores.remove(keepBlocks + i);
        }
        for (int b : released) evicted.add(b);
        s.kvLen = newKvLen;
        return released;
    }

    /** Returns the evicted blocks to the free pool (after the kernels of the step that evicted them). */
    public void reclaimEvicted() {
        for (int b : evicted) free.push(b);
        evicted.clear();
    }

    /** Ends a sequence: its blocks go back to the pool at once. */
    public void freeSequence(int seqId) {
        Seq s = seq(seqId);
        for (int i = s.table.size() - 1; i >= 0; i--) free.push(s.table.get(i));
        seqs.remove(seqId);
    }

    /** Sets the cached score of logical block {@code index} (PE-REF step 2; finite). */
    public void setBlockScore(int seqId, int index, float score) {
        Seq s = seq(seqId);
        if (index < 0 || index >= s.table.size()) throw new IllegalArgumentException("index: must be in 0 .. " + (s.table.size() - 1) + ", was " + index);
        if (!Float.isFinite(score)) throw new IllegalArgumentException("score: must be finite, was " + score);
        s.scores.set(index, score);
    }

    /** One score per table entry (NaN = not yet scored). */
    public float[] blockScores(int seqId) {
        Seq s = seq(seqId);
        float[] out = new float[s.scores.size()];
        for (int i = 0; i < out.length; i++) out[i] = s.scores.get(i);
        return out;
    }

    public int[] blockTable(int seqId) {
        return seq(seqId).table.stream().mapToInt(Integer::intValue).toArray();
    }

    public int kvLen(int seqId) {
        return seq(seqId).kvLen;
    }

    /** kv_len of each of {@code ids}. */
    public int[] kvLens(int[] ids) {
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = kvLen(ids[i]);
        return out;
    }

    /** The logical length of each of {@code ids}. */
    public long[] logicalLengths(int[] ids) {
        long[] out = new long[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = logicalLength(ids[i]);
        return out;
    }

    public long logicalLength(int seqId) {
        return seq(seqId).logical;
    }

    /** The RoPE position of the next token: the logical length, never kv_len. */
    public long nextPosition(int seqId) {
        return seq(seqId).logical;
    }

    /**
     * The block tables of {@code ids} as one row-major int32 matrix of {@code ids.length} rows of
     * {@code width} entries, padded with 0 (vLLM v0 padding), ready to upload.
     */
    public int[] blockTables(int[] ids, int width) {
        return blockTables(ids, width, 0);
    }

    /** {@link #blockTables(int[], int)} with another padding value (e.g. −1, which the kernels never read as a block). */
    public int[] blockTables(int[] ids, int width, int padding) {
        for (int id : ids) {
            int n = seq(id).table.size();
            if (n > width) throw new IllegalArgumentException("width: sequence " + id + " has " + n + " blocks, width is " + width);
        }
        int[] out = new int[ids.length * width];
        if (padding != 0) java.util.Arrays.fill(out, padding);
        for (int r = 0; r < ids.length; r++) {
            List<Integer> t = seqs.get(ids[r]).table;
            for (int i = 0; i < t.size(); i++) out[r * width + i] = t.get(i);
        }
        return out;
    }

    /**
     * Checks the PE-REF step 6 invariants (at rest: between an append and its eviction kv_len may be
     * C + B) and the pool's consistency; throws {@link IllegalStateException} naming the first
     * broken one. TOKEN granularity: kv_len <= logical length, kv_len = logical length under the budget,
     * kv_len <= C + slack, ⌈kv_len/B⌉ blocks, block 0 kept, the pool consistent.
     */
    public void checkInvariants() {
        check(false);
    }

    /** {@link #checkInvariants()} plus the bound at attention time: kv_len <= C + B - 1 once over budget. */
    public void checkInvariantsAtAttention() {
        check(true);
    }

    private void check(boolean attention) {
        int[] owner = new int[numBlocks];
        Arrays.fill(owner, -1);
        for (Map.Entry<Integer, Seq> e : seqs.entrySet()) {
            int id = e.getKey();
            Seq s = e.getValue();
            String p = lengthProblem(s.kvLen, s.logical);
            if (p != null) throw new IllegalStateException("sequence " + id + ": " + p);
            if (attention && granularity == Granularity.BLOCK && s.logical > budget && s.kvLen > budget + blockSize - 1)
                throw new IllegalStateException("sequence " + id + ": kv_len " + s.kvLen + " > C + B - 1 at attention time");
            if (s.table.size() != blocksFor(s.kvLen))
                throw new IllegalStateException("sequence " + id + ": " + s.table.size() + " blocks for kv_len " + s.kvLen + " (needs " + blocksFor(s.kvLen) + ")");
            if (s.table.size() > maxBlocksPerSequence() && !(granularity == Granularity.TOKEN && s.kvLen == s.logical))
                throw new IllegalStateException("sequence " + id + ": holds " + s.table.size() + " blocks > C/B + 1 = " + maxBlocksPerSequence());
            if (s.scores.size() != s.table.size())
                throw new IllegalStateException("sequence " + id + ": " + s.scores.size() + " block scores for " + s.table.size() + " blocks");
            if (!s.table.isEmpty() && s.table.get(0) != s.firstBlock)
                throw new IllegalStateException("sequence " + id + ": block 0 changed from " + s.firstBlock + " to " + s.table.get(0));
            for (int b : s.table) {
                if (b < 0 || b >= numBlocks) throw new IllegalStateException("sequence " + id + ": block " + b + " outside the pool");
                if (owner[b] != -1) throw new IllegalStateException("block " + b + " held twice (sequence " + id + ")");
                owner[b] = id;
            }
        }
        for (int b : evicted) {
            if (owner[b] != -1) throw new IllegalStateException("evicted block " + b + " is still held");
            owner[b] = -2;
        }
        for (int b : free) {
            if (b < 0 || b >= numBlocks) throw new IllegalStateException("free block " + b + " outside the pool");
            if (owner[b] != -1) throw new IllegalStateException("free block " + b + " is also held or pending");
            owner[b] = -3;
        }
        for (int b = 0; b < numBlocks; b++) if (owner[b] == -1) throw new IllegalStateException("block " + b + " is lost (neither held, pending nor free)");
    }
}
