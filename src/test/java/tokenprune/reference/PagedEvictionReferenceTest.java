package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import tokenprune.kv.KvLayout;
import tokenprune.kv.KvScoreOptions;
import tokenprune.kv.KvScoreOptions.HeadAgg;
import tokenprune.kv.KvScoreOptions.Metric;
import tokenprune.methods.DType;

/** PE-1 … PE-4 of methods-kv.md §13.1 (tolerance 1e-5 relative), SL-5's prefill, and the hash behind the random modes. */
class PagedEvictionReferenceTest {
    private static void near(double want, double got, String what) {
        assertEquals(want, got, 1e-5 * Math.abs(want), what);
    }

    @Test
    void pe1SingleHeadScores() {
        double[] nk = {5}, nv = {10};
        near(2.0, PagedEvictionReference.tokenScore(nk, nv, KvScoreOptions.defaults()), "v_over_k");
        near(0.2, PagedEvictionReference.tokenScore(nk, nv, KvScoreOptions.of(Metric.INV_K)), "inv_k");
        near(10, PagedEvictionReference.tokenScore(nk, nv, KvScoreOptions.of(Metric.V)), "v");
        near(15, PagedEvictionReference.tokenScore(nk, nv, KvScoreOptions.of(Metric.K_PLUS_V)), "k_plus_v");
    }

    @Test
    void pe1FromTheCacheThroughBothLayouts() {
        for (KvLayout.Kind kind : KvLayout.Kind.values()) {
            KvLayout l = KvLayout.of(kind, DType.F32, 2, 4, 1, tokenprune.kv.TestLayouts.headDim(kind, DType.F32, 2));
            float[] cache = new float[(int) l.elements()];
            // token 5 of a sequence with table [1, 0]: logical block 1 -> physical 0, slot 1
            cache[(int) l.offset(0, 0, 1, 0, 0)] = 3;
            cache[(int) l.offset(0, 0, 1, 0, 1)] = 4;
            cache[(int) l.offset(1, 0, 1, 0, 0)] = 6;
            cache[(int) l.offset(1, 0, 1, 0, 1)] = 8;
            double[] s = PagedEvictionReference.tokenScores(l, cache, new int[] {1, 0}, 5, 6, KvScoreOptions.defaults());
            near(2.0, s[0], kind.toString());
        }
    }

    @Test
    void pe2HeadAggregationModesDiffer() {
        double[] nk = {5, 1}, nv = {10, 1};
        double mor = PagedEvictionReference.tokenScore(nk, nv, KvScoreOptions.defaults());
        double rom = PagedEvictionReference.tokenScore(nk, nv, KvScoreOptions.defaults().withHeadAgg(HeadAgg.RATIO_OF_MEANS));
        near(1.5, mor, "mean_of_ratios (the default)");
        near(5.5 / 3, rom, "ratio_of_means");
        assertNotEquals(mor, rom);
    }

    @Test
    void pe3BlockScore() {
        double s = PagedEvictionReference.blockScore(new double[] {1, 2, 3, 6});
        near(3.0, s, "mean");
        near(12.0, 4 * s, "sum-mode parity");
        near(4.0, (s + 5.0) / 2, "cross-layer mean");
    }

    @Test
    void pe4PrefillSelection() {
        double[] scores = new double[22];
        java.util.Arrays.fill(scores, 1);
        double[] middle = {5, 1, 9, 2, 8, 3, 7, 4, 0.5, 6, 0.1, 10};
        System.arraycopy(middle, 0, scores, 4, 12);
        int[] kept = PagedEvictionReference.prefillKeep(scores, 12, 4);
        assertArrayEquals(new int[] {0, 1, 2, 3, 6, 8, 10, 15, 16, 17, 18, 19, 20, 21}, kept);
        assertEquals(14, kept.length, "kv_len = C + r");
        assertEquals(22 % 4, kept.length % 4);
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, PagedEvictionReference.prefillKeep(new double[12], 12, 4), "L = C: nothing pruned");
    }

    @Test
    void prefillTiesGoToTheLaterPosition() {
        double[] scores = new double[16];  // B = 4, C = 12, L = 16, r = 0: middle [4, 12), keep 4 of 8 equal scores
        int[] kept = PagedEvictionReference.prefillKeep(scores, 12, 4);
        assertArrayEquals(new int[] {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15}, kept);
    }

    @Test
    void hashIsSplitMix64AndUniform() {
        assertEquals(0xe220a8397b1dcdafL, PagedEvictionReference.mix64(0x9e3779b97f4a7c15L), "SplitMix64(seed 0)'s first output");
        assertEquals(0L, PagedEvictionReference.mix64(0L));
        // exact conversion: 24 bits times 2^-24
        assertEquals(0f, PagedEvictionReference.hashUnit(0xffffffffffL));
        assertEquals(1f - 0x1p-24f, PagedEvictionReference.hashUnit(-1L));
        assertEquals(0.5f, PagedEvictionReference.hashUnit(1L << 63));
        int[] buckets = new int[4];
        double sum = 0;
        for (int p = 0; p < 100; p++)
            for (int slot = 0; slot < 16; slot++) {
                float u = PagedEvictionReference.randomScore(42, p, slot);
                assertTrue(u >= 0 && u < 1, "in [0, 1): " + u);
                buckets[(int) (u * 4)]++;
                sum += u;
            }
        for (int c : buckets) assertTrue(c > 300 && c < 500, java.util.Arrays.toString(buckets));
        assertEquals(0.5, sum / 1600, 0.03, "mean");
        int[] picks = new int[4];
        for (long n = 13; n < 413; n++) {
            int v = PagedEvictionReference.randomVictim(7, n, 2, 3);
            assertTrue(v >= 1 && v <= 3, "victim " + v);
            picks[v]++;
        }
        assertTrue(picks[1] > 90 && picks[2] > 90 && picks[3] > 90, java.util.Arrays.toString(picks));
        assertEquals(1, PagedEvictionReference.randomVictim(7, 20, 0, 1), "one candidate");
    }

    @Test
    void argmaxVictimOnPe5() {
        var batch = new tokenprune.kv.PagedEviction.DecodeBatch(1, 1, 4, 12, 10, new int[] {7, 3, 9, 4, -1}, 5, new float[] {5, 8.5f, 1.0f, Float.NaN, Float.NaN},
                new int[] {16}, new long[] {24}, new int[] {0}, 1, new float[] {2, 2, 2, 3});
        var d = PagedEvictionReference.decodeStep(batch, tokenprune.kv.PagedEvictionOptions.defaults().withVictim(tokenprune.kv.PagedEvictionOptions.Victim.ARGMAX));
        assertArrayEquals(new int[] {1}, d.victims(), "HF global parity: the highest score (8.5) goes");
        assertArrayEquals(new int[] {3}, d.freed());
        d = PagedEvictionReference.decodeStep(batch, tokenprune.kv.PagedEvictionOptions.streamingLlm());
        assertArrayEquals(new int[] {1}, d.victims());
        assertTrue(Float.isNaN(d.blockScores()[2]), "the streaming rule scores nothing");
    }

    @Test
    void sl5PrefillKeepsTheMostRecentMiddle() {
        int[] kept = PagedEvictionReference.prefillKeepRecent(22, 12, 4);
        assertArrayEquals(new int[] {0, 1, 2, 3, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}, kept, "SL-5: [0-3], [12-15], [16-19], [20-21]");
        assertEquals(14, kept.length, "kv_len 14");
    }
}
