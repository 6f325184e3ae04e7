package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;

/** PE-5, PE-7, PE-8 of methods-kv.md §13.1, the step-6 invariants under random traffic, and bad input. */
class PagedKvCacheTest {
    /** Everything observable, to show that a rejected call changed nothing. */
    static String snapshot(PagedKvCache c) {
        StringBuilder sb = new StringBuilder("free=" + c.freeBlockCount() + " pending=" + Arrays.toString(c.pendingEvicted()));
        for (int id : c.sequenceIds())
            sb.append(" | ").append(id).append(' ').append(Arrays.toString(c.blockTable(id))).append(" kv=").append(c.kvLen(id)).append(" n=")
                    .append(c.logicalLength(id)).append(" s=").append(Arrays.toString(c.blockScores(id)));
        return sb.toString();
    }

    static void rejected(PagedKvCache c, String messagePart, Executable call) {
        String before = snapshot(c);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().contains(messagePart), "message '" + e.getMessage() + "' should mention '" + messagePart + "'");
        assertEquals(before, snapshot(c), "a rejected call changed the state: " + e.getMessage());
        c.checkInvariants();
    }

    interface Executable {
        void run();
    }

    @Test
    void pe5DecodeEvictionGlobal() {
        PagedKvCache c = new PagedKvCache(10, 4, 12);
        int s = c.adoptSequence(new int[] {7, 3, 9, 4}, 14, 22);  // PE-4's result
        c.checkInvariantsAtAttention();
        PagedKvCache.Append a = c.appendTokens(s, 1);
        assertArrayEquals(new int[] {18}, a.slots());
        assertArrayEquals(new long[] {22}, a.positions());
        assertEquals(15, c.kvLen(s));
        a = c.appendTokens(s, 1);
        assertArrayEquals(new int[] {19}, a.slots());
        assertEquals(16, c.kvLen(s));
        assertEquals(24, c.logicalLength(s));
        c.checkInvariants();
        c.setBlockScore(s, 1, 8.5f);
        c.setBlockScore(s, 2, 1.0f);
        c.setBlockScore(s, 3, 1.0f);
        // global candidates 1 .. n_blocks - 2 = {1, 2}; argmin -> 2
        float[] sc = c.blockScores(s);
        int victim = sc[1] <= sc[2] ? 1 : 2;
        assertEquals(2, victim);
        assertEquals(9, c.evictBlock(s, victim));
        assertArrayEquals(new int[] {7, 3, 4}, c.blockTable(s));
        assertEquals(12, c.kvLen(s));
        assertArrayEquals(new float[] {Float.NaN, 8.5f, 1.0f}, c.blockScores(s), "the score array loses the same index");
        assertArrayEquals(new int[] {9}, c.pendingEvicted(), "not reusable before the step's kernels ran");
        c.checkInvariantsAtAttention();
        c.reclaimEvicted();
        a = c.appendTokens(s, 1);
        assertArrayEquals(new int[] {7, 3, 4, 9}, c.blockTable(s), "the reclaimed block is reused");
        assertArrayEquals(new int[] {36}, a.slots());
        assertArrayEquals(new long[] {24}, a.positions(), "RoPE continues from the logical length");
        assertEquals(13, c.kvLen(s));
        assertEquals(25 % 4, c.kvLen(s) % 4);
        c.checkInvariantsAtAttention();
    }

    @Test
    void pe7NoEvictionUnderBudgetThenTheFirstEviction() {
        PagedKvCache c = new PagedKvCache(8, 4, 12);
        int s = c.allocateSequence(10, 10);
        assertEquals(3, c.blockTable(s).length);
        c.appendTokens(s, 2);
        assertEquals(12, c.kvLen(s));
        rejected(c, "within the budget", () -> c.evictBlock(s, 1));
        for (int i = 0; i < 4; i++) {
            c.appendTokens(s, 1);
            assertTrue(c.blockTable(s).length <= c.maxBlocksPerSequence());
            c.checkInvariants();
        }
        assertEquals(16, c.kvLen(s));
        rejected(c, "evict a block first", () -> c.appendTokens(s, 1));
        c.evictBlock(s, 1);
        assertEquals(12, c.kvLen(s));
        assertEquals(16, c.logicalLength(s));
        c.checkInvariantsAtAttention();
    }

    @Test
    void pe8ProtectedBlocks() {
        PagedKvCache c = new PagedKvCache(8, 4, 12);
        int s = c.adoptSequence(new int[] {0, 1, 2, 3}, 16, 20);
        rejected(c, "protected", () -> c.evictBlock(s, 0));
        rejected(c, "protected", () -> c.evictBlock(s, 3));
        int t = c.allocateSequence(8, 8);
        rejected(c, "protected", () -> c.evictBlock(t, 1));  // 2 blocks: no candidate
    }

    @Test
    void badConstructionIsRejected() {
        assertThrows(IllegalArgumentException.class, () -> new PagedKvCache(8, 4, 10), "budget not a multiple of B");
        assertThrows(IllegalArgumentException.class, () -> new PagedKvCache(8, 4, 8), "budget below 3B");
        assertThrows(IllegalArgumentException.class, () -> new PagedKvCache(0, 4, 12));
        assertEquals(12, new PagedKvCache(8, 4, 12).budget());
    }

    @Test
    void badInputChangesNothing() {
        PagedKvCache c = new PagedKvCache(5, 4, 12);
        int s = c.allocateSequence(5, 5);
        rejected(c, "outside the pool", () -> c.adoptSequence(new int[] {6}, 3, 3));
        rejected(c, "outside the pool", () -> c.adoptSequence(new int[] {-1}, 3, 3));
        rejected(c, "appears twice", () -> c.adoptSequence(new int[] {2, 2}, 6, 6));
        rejected(c, "not free", () -> c.adoptSequence(new int[] {0}, 3, 3));
        rejected(c, "entries", () -> c.adoptSequence(new int[] {3, 4}, 3, 3));
        rejected(c, "disagree modulo", () -> c.adoptSequence(new int[] {2, 3, 4, 5}, 13, 22));
        rejected(c, "exceeds", () -> c.adoptSequence(new int[] {2}, 3, 2));
        rejected(c, "under the budget", () -> c.allocateSequence(4, 8));
        rejected(c, "outside [C, C + B]", () -> c.allocateSequence(8, 20));
        rejected(c, "C + B - 1", () -> c.allocateSequence(16, 20));
        c.allocateSequence(8, 8);  // 1 block left
        rejected(c, "blocks needed", () -> c.allocateSequence(12, 12));
        rejected(c, "blocks needed", () -> c.appendTokens(s, 8));
        rejected(c, "evict a block first", () -> c.appendTokens(s, 12));
        rejected(c, "count", () -> c.appendTokens(s, 0));
        rejected(c, "no sequence", () -> c.appendTokens(99, 1));
        rejected(c, "no sequence", () -> c.evictBlock(99, 1));
        rejected(c, "index", () -> c.setBlockScore(s, 2, 1f));
        rejected(c, "finite", () -> c.setBlockScore(s, 0, Float.NaN));
        rejected(c, "width", () -> c.blockTables(new int[] {s}, 1));
    }

    /** PE-REF decode steps on many sequences at once, with prefill-pruned prompts, frees and a tight pool. */
    @Test
    void invariantsHoldUnderLongRandomTraffic() {
        for (int[] cfg : new int[][] {{4, 12, 40}, {16, 48, 30}, {1, 3, 20}, {5, 20, 60}}) {
            int b = cfg[0], budget = cfg[1], pool = cfg[2];
            Random rnd = new Random(b * 31L + budget);
            PagedKvCache c = new PagedKvCache(pool, b, budget);
            List<Integer> live = new ArrayList<>();
            int evictions = 0, rejections = 0;
            for (int step = 0; step < 4000; step++) {
                int op = rnd.nextInt(20);
                if (op == 0 || live.isEmpty()) {
                    long l = 1 + rnd.nextInt(3 * budget);
                    int kv = l <= budget ? (int) l : budget + (int) (l % b);
                    String before = snapshot(c);
                    try {
                        live.add(c.allocateSequence(kv, l));
                    } catch (IllegalArgumentException e) {
                        assertEquals(before, snapshot(c));
                        rejections++;
                    }
                } else if (op == 1) {
                    int id = live.remove(rnd.nextInt(live.size()));
                    c.freeSequence(id);
                } else {
                    int id = live.get(rnd.nextInt(live.size()));
                    String before = snapshot(c);
                    try {
                        c.appendTokens(id, 1);
                    } catch (IllegalArgumentException e) {
                        assertEquals(before, snapshot(c));
                        rejections++;
                        continue;
                    }
                    int n = c.blockTable(id).length;
                    if (n > 0 && c.kvLen(id) % b == 0) c.setBlockScore(id, n - 1, rnd.nextInt(4));
                    if (c.logicalLength(id) > budget && c.kvLen(id) % b == 0) {
                        boolean local = rnd.nextBoolean();
                        int last = local ? Math.min(3, n - 2) : n - 2;
                        float[] sc = c.blockScores(id);
                        int victim = 1;
                        for (int j = 2; j <= last; j++) if (sc[j] < sc[victim]) victim = j;
                        int first = c.blockTable(id)[0], newest = c.blockTable(id)[n - 1];
                        c.evictBlock(id, victim);
                        int[] t = c.blockTable(id);
                        assertEquals(first, t[0], "block 0 never evicted");
                        assertEquals(newest, t[t.length - 1], "the newest block never evicted");
                        assertEquals(0, c.kvLen(id) % b, "after an eviction kv_len is a multiple of B");
                        evictions++;
                    }
                    c.checkInvariantsAtAttention();
                    if (rnd.nextInt(3) == 0) c.reclaimEvicted();
                }
                c.checkInvariants();
            }
            assertTrue(evictions > 50, "the traffic evicts (" + evictions + ")");
            assertTrue(rejections > 0, "the pool runs dry sometimes");
            for (int id : live) c.freeSequence(id);
            c.reclaimEvicted();
            assertEquals(pool, c.freeBlockCount(), "every block comes back");
        }
    }

    /** TOKEN granularity: H2O-style compaction to C tokens, trailing blocks released, block 0 kept. */
    @Test
    void tokenGranularityCompactsAndReleasesTrailingBlocks() {
        PagedKvCache c = PagedKvCache.forTokenEviction(10, 4, 6, 4);
        assertEquals(PagedKvCache.Granularity.TOKEN, c.granularity());
        assertEquals(3, c.maxBlocksPerSequence(), "ceil((C + slack) / B) = ceil(10 / 4)");
        int s = c.allocateSequence(5, 5);
        int[] t0 = c.blockTable(s);
        c.appendTokens(s, 5);  // kv_len 10 = C + slack
        c.checkInvariants();
        rejected(c, "compact first", () -> c.appendTokens(s, 1));
        rejected(c, "newKvLen", () -> c.compactSequence(s, 5));   // below C
        rejected(c, "newKvLen", () -> c.compactSequence(s, 11));  // above kv_len
        rejected(c, "compactSequence", () -> c.evictBlock(s, 1));
        int[] table = c.blockTable(s);
        int[] released = c.compactSequence(s, 6);
        assertArrayEquals(new int[] {table[2]}, released, "6 tokens fit in 2 blocks: the third is released");
        assertArrayEquals(new int[] {table[0], table[1]}, c.blockTable(s));
        assertEquals(t0[0], c.blockTable(s)[0]);
        assertEquals(6, c.kvLen(s));
        assertEquals(10, c.logicalLength(s), "the logical length (RoPE positions) is unchanged");
        assertArrayEquals(new int[] {table[2]}, c.pendingEvicted());
        c.checkInvariants();
        c.reclaimEvicted();
        PagedKvCache.Append a = c.appendTokens(s, 1);
        assertEquals(10, a.positions()[0]);
        assertEquals(table[1] * 4 + 2, a.slots()[0], "the next token goes right after the compacted ones");
        rejected(c, "under the budget", () -> c.allocateSequence(3, 5));
        rejected(c, "C + slack", () -> c.allocateSequence(11, 20));
        assertThrows(IllegalArgumentException.class, () -> PagedKvCache.forTokenEviction(4, 4, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> PagedKvCache.forTokenEviction(4, 4, 5, 0));
        PagedKvCache blocks = new PagedKvCache(8, 4, 12);
        int b = blocks.allocateSequence(4, 4);
        rejected(blocks, "evictBlock", () -> blocks.compactSequence(b, 4));
    }

    /** TOKEN granularity: a whole prompt longer than C + slack is held until its one compaction (PromptCompression). */
    @Test
    void tokenGranularityHoldsAWholePromptUntilItIsCompressed() {
        PagedKvCache c = PagedKvCache.forTokenEviction(12, 4, 8, 4);
        int id = c.allocateSequence(30, 30);
        assertEquals(8, c.blockTable(id).length);
        c.checkInvariants();
        rejected(c, "compact first", () -> c.appendTokens(id, 1));
        rejected(c, "C + slack", () -> c.allocateSequence(13, 20));  // compressed already (kv_len < logical) yet over C + slack
        int[] released = c.compactSequence(id, 8);
        assertEquals(6, released.length);
        c.checkInvariants();
        c.reclaimEvicted();
        c.appendTokens(id, 4);
        rejected(c, "compact first", () -> c.appendTokens(id, 1));
        PagedKvCache blocks = new PagedKvCache(12, 4, 12);
        int b = blocks.allocateSequence(4, 4);
        assertThrows(IllegalArgumentException.class, () -> TokenEviction.applyTo(blocks, new int[] {b}, new int[] {4}), "BLOCK cache");
        assertThrows(IllegalArgumentException.class, () -> TokenEviction.applyTo(c, new int[] {id}, new int[] {5}), "below the cache's budget");
        assertEquals(12, c.kvLen(id), "nothing applied");
    }

    /** TOKEN granularity under random append / compact / free traffic: invariants after every operation. */
    @Test
    void tokenGranularityInvariantsUnderRandomTraffic() {
        for (int[] cfg : new int[][] {{4, 7, 1, 40}, {16, 40, 16, 30}, {1, 3, 2, 30}, {5, 23, 9, 60}}) {
            int b = cfg[0], budget = cfg[1], slack = cfg[2], pool = cfg[3];
            Random rnd = new Random(b * 131L + budget);
            PagedKvCache c = PagedKvCache.forTokenEviction(pool, b, budget, slack);
            List<Integer> live = new ArrayList<>();
            int compactions = 0;
            for (int step = 0; step < 3000; step++) {
                int op = rnd.nextInt(20);
                String before = snapshot(c);
                try {
                    if (op == 0 || live.isEmpty()) {
                        long l = 1 + rnd.nextInt(3 * budget);
                        live.add(c.allocateSequence((int) Math.min(l, budget), l));
                    } else if (op == 1) {
                        c.freeSequence(live.remove(rnd.nextInt(live.size())));
                    } else {
                        int id = live.get(rnd.nextInt(live.size()));
                        if (c.kvLen(id) == budget + slack) {
                            int first = c.blockTable(id)[0];
                            int keep = budget + rnd.nextInt(slack);
                            int[] released = c.compactSequence(id, keep);
                            assertEquals(first, c.blockTable(id)[0], "block 0 stays");
                            assertEquals((budget + slack + b - 1) / b - (keep + b - 1) / b, released.length);
                            compactions++;
                        } else {
                            c.appendTokens(id, 1);
                        }
                        if (rnd.nextInt(3) == 0) c.reclaimEvicted();
                    }
                } catch (IllegalArgumentException e) {
                    assertEquals(before, snapshot(c));
                }
                c.checkInvariants();
            }
            assertTrue(compactions > 50, "the traffic compacts (" + compactions + ")");
            for (int id : live) c.freeSequence(id);
            c.reclaimEvicted();
            assertEquals(pool, c.freeBlockCount(), "every block comes back");
        }
    }
}
