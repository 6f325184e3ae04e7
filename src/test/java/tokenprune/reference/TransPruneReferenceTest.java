package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tokenprune.testing.TransPruneFixtures.*;

import java.util.Random;

import org.junit.jupiter.api.Test;

import tokenprune.methods.HostHeads;
import tokenprune.methods.HostTokens;

/** TP-1, TP-2, TP-4, TP-5 (methods-vision.md §13.4) and the semantic details of the reference. */
class TransPruneReferenceTest {
    private static final double SPEC = 1e-6;  // the spec prints 6 decimals

    @Test
    void tp1SingleSubBlock() {
        assertArrayEquals(TP1_TTV, TransPruneReference.transition(TP1_U, TP1_V), SPEC);
    }

    @Test
    void tp2FullScoreOneStage() {
        assertArrayEquals(TP2_TAU_ATTN, TransPruneReference.transition(TP2_U_ATTN, TP2_V_ATTN), SPEC);
        TransPruneReference.Sequence s = new TransPruneReference.Sequence(4, 1, 2);
        s.addSubBlock(TP2_U_ATTN, TP2_V_ATTN);
        s.addSubBlock(TP2_UV_MLP, TP2_UV_MLP);
        assertArrayEquals(TP2_IMAGE_TTV, s.accumulated(), SPEC);
        assertArrayEquals(new double[] {0.705858, 0.294142}, TransPruneReference.normalise(s.accumulated()), SPEC);
        float[][][] q = tp2Queries().tokens(0, 4), k = tp2Keys().tokens(0, 4);
        double[] g = TransPruneReference.iga(q, k, 1, 2);
        assertArrayEquals(new double[] {0.1, 0.2}, g, 1e-7, "head-mean image part");
        assertArrayEquals(TP2_SCORES, s.scores(q, k, 1, 1), SPEC);
        assertArrayEquals(new int[] {0}, s.prune(1, q, k, 1, 1), "keeps t1: TTV overrides IGA");
    }

    @Test
    void tp4StoredTtvIsReindexedAfterEachStage() {
        TransPruneReference.Sequence s = new TransPruneReference.Sequence(6, 1, 4);
        HostTokens[] b1 = subBlockWithTau(TP4_SEQS, TP4_W1);
        s.addSubBlock(b1[0].set(0), b1[1].set(0));
        assertArrayEquals(TP4_W1, s.accumulated(), 1e-6);
        HostHeads[] a1 = tp4UniformAttention(TP4_SEQS);
        float[][][] q1 = a1[0].tokens(0, 6), k1 = a1[1].tokens(0, 6);
        assertArrayEquals(new double[] {0.65, 0.35, 0.55, 0.45}, s.scores(q1, k1, 1, 1), 1e-6);
        assertArrayEquals(new int[] {0, 2, 3}, s.prune(3, q1, k1, 1, 1));
        assertArrayEquals(new double[] {0.4, 0.3, 0.2}, s.accumulated(), 1e-6, "w1 re-indexed to the survivors");

        HostTokens[] b2 = subBlockWithTau(TP4_SEQS.afterPruning(new int[] {3}), TP4_W2);
        s.addSubBlock(b2[0].set(0), b2[1].set(0));
        assertArrayEquals(new double[] {0.5, 0.4, 0.3}, s.accumulated(), 1e-6);
        HostHeads[] a2 = tp4Stage2Attention();
        float[][][] q2 = a2[0].tokens(0, 5), k2 = a2[1].tokens(0, 5);
        assertArrayEquals(new double[] {0.25, 0.5, 0.25}, TransPruneReference.normalise(TransPruneReference.iga(q2, k2, 1, 3)), 1e-7);
        assertArrayEquals(new double[] {0.666667, 0.833333, 0.5}, s.scores(q2, k2, 1, 1), 1e-6);
        assertArrayEquals(new int[] {1}, s.prune(1, q2, k2, 1, 1), "survivor 1 = original token 2");

        // the classic bug: w1[:3] instead of the re-indexed w1
        double[] buggy = {0.4 + 0.1, 0.1 + 0.1, 0.3 + 0.1};
        double[] buggyScores = TransPruneReference.score(buggy, TransPruneReference.iga(q2, k2, 1, 3), 1, 1);
        assertArrayEquals(new double[] {0.704545, 0.681818, 0.613636}, buggyScores, 1e-6);
        assertArrayEquals(new int[] {0}, TransPruneReference.topK(buggyScores, 1), "the buggy version keeps original token 0");
    }

    @Test
    void tp5IgaReadsOnlyTheTextRowsAfterTheImageAndAllKeys() {
        int prefix = 35, n = 6, text = 3, len = prefix + n + text, heads = 2, dh = 4;
        Random rnd = new Random(5);
        float[][][] q = randomHeads(rnd, len, heads, dh), k = randomHeads(rnd, len, heads, dh);
        double[] g = TransPruneReference.iga(q, k, prefix, n);
        // by hand: rows [41, 44) only, per-head softmax over keys 0..p, then the image columns
        double[] want = new double[n];
        for (int p = prefix + n; p < len; p++) {
            for (int h = 0; h < heads; h++) {
                double[] e = new double[p + 1];
                double sum = 0;
                for (int j = 0; j <= p; j++) {
                    double dot = 0;
                    for (int i = 0; i < dh; i++) dot += q[p][h][i] * k[j][h][i];
                    e[j] = Math.exp(dot / 2);  // 1/sqrt(4)
                    sum += e[j];
                }
                for (int j = 0; j < n; j++) want[j] += e[prefix + j] / sum / (heads * text);
            }
        }
        assertArrayEquals(want, g, 1e-9);
        // prefix and image query rows are never read ...
        for (int t = 0; t < prefix + n; t++) for (int h = 0; h < heads; h++) q[t][h][0] = Float.NaN;
        assertArrayEquals(g, TransPruneReference.iga(q, k, prefix, n), 0);
        // ... but prefix keys are (they are in every softmax's denominator)
        k[3][1][2] += 5;
        assertNotEquals(g[0], TransPruneReference.iga(q, k, prefix, n)[0]);
    }

    @Test
    void groupedQueryAttentionIsTheRepeatedKvHeads() {
        Random rnd = new Random(11);
        int len = 12, dh = 3;
        float[][][] q = randomHeads(rnd, len, 4, dh), k2 = randomHeads(rnd, len, 2, dh);
        float[][][] k4 = new float[len][4][];
        for (int t = 0; t < len; t++) for (int h = 0; h < 4; h++) k4[t][h] = k2[t][h / 2];  // repeat_interleave
        assertArrayEquals(TransPruneReference.iga(q, k4, 2, 5), TransPruneReference.iga(q, k2, 2, 5), 0);
        assertThrows(IllegalArgumentException.class, () -> TransPruneReference.iga(q, randomHeads(rnd, len, 3, dh), 2, 5));
    }

    @Test
    void cosineFollowsPytorchEpsPerNorm() {
        assertEquals(0, TransPruneReference.cosine(new float[] {0, 0}, new float[] {1, 0}), 0, "zero vector: similarity 0");
        float tiny = 1e-9f;
        // per-norm clamp: 1e-9 * 1 / (1e-8 * 1) = 0.1; the old product clamp would give 1e-9 / max(1e-9, 1e-8) = 0.1 too;
        // they differ when both are tiny: (1e-9)^2 / (1e-8 * 1e-8) = 0.01 vs 1e-18 / 1e-8 = 1e-10
        assertEquals(0.1, TransPruneReference.cosine(new float[] {tiny}, new float[] {1}), 1e-7);
        assertEquals(0.01, TransPruneReference.cosine(new float[] {tiny}, new float[] {tiny}), 1e-8);
    }

    @Test
    void badInputIsRejectedNamingTheArgument() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TransPruneReference.transition(new float[][] {{1, 0}, {0, 0}}, new float[][] {{1, 0}, {1, 0}}));
        assertTrue(e.getMessage().startsWith("u: token 1 is a zero vector"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> TransPruneReference.transition(new float[][] {{1, 0}}, new float[][] {{Float.NaN, 0}}));
        assertTrue(e.getMessage().startsWith("v: non-finite value at token 0, feature 0"), e.getMessage());
        float[][][] h = randomHeads(new Random(1), 4, 1, 2);
        e = assertThrows(IllegalArgumentException.class, () -> TransPruneReference.iga(h, h, 1, 3));
        assertTrue(e.getMessage().startsWith("q: no text token"), e.getMessage());
    }

    static float[][][] randomHeads(Random rnd, int len, int heads, int dh) {
        float[][][] x = new float[len][heads][dh];
        for (float[][] t : x) for (float[] h : t) for (int i = 0; i < dh; i++) h[i] = (float) rnd.nextGaussian();
        return x;
    }
}
