package tokenprune.testing;

import tokenprune.methods.HeadLayout;
import tokenprune.methods.HostHeads;
import tokenprune.methods.HostTokens;
import tokenprune.methods.ImageSequences;

/**
 * The hand-checkable TransPrune cases of methods-vision.md §13.4 as inputs, shared by the reference
 * and the kernel tests. Expected values are the spec's (6 decimals).
 */
public final class TransPruneFixtures {
    private TransPruneFixtures() {
    }

    /** Rows packed into one array. */
    public static float[] flat(float[][] rows) {
        int d = rows[0].length;
        float[] out = new float[rows.length * d];
        for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, out, i * d, d);
        return out;
    }

    public static HostTokens tokens(ImageSequences seqs, float[][] rows) {
        return HostTokens.of(flat(rows), seqs.layout(rows[0].length));
    }

    // ---- TP-1: one sub-block, 3 tokens (all image tokens here) ----
    public static final float[][] TP1_U = {{1, 0}, {1, 0}, {0, 2}};
    public static final float[][] TP1_V = {{2, 0}, {0, 1}, {0, -1}};
    public static final double[] TP1_TTV = {0.180061, 0.244728, 0.332620};

    // ---- TP-2: t0 prefix, t1 t2 image, t3 text ----
    public static final ImageSequences TP2_SEQS = ImageSequences.single(1, 2, 1);
    public static final float[][] TP2_U_ATTN = {{1, 0}, {1, 0}, {0, 1}, {1, 1}};
    public static final float[][] TP2_V_ATTN = {{1, 0}, {0, 2}, {0, 0.5f}, {-1, -1}};
    public static final double[] TP2_TAU_ATTN = {0.082595, 0.449030, 0.041297, 0.610296};
    /** MLP sub-block with u = v: tau = 1/4 for every token. */
    public static final float[][] TP2_UV_MLP = {{1, 0}, {0.5f, 0.5f}, {0, 3}, {-2, 1}};
    public static final double[] TP2_IMAGE_TTV = {0.699030, 0.291297};
    public static final double[] TP2_SCORES = {1.039191, 0.960809};
    static final double[][] TP2_HEAD_PROBS = {{0.4, 0.1, 0.3, 0.2}, {0.5, 0.1, 0.1, 0.3}};

    /** q: 4 tokens x 2 heads x dh 1, only the text row t3 matters: q = 1. */
    public static HostHeads tp2Queries() {
        float[] q = new float[4 * 2];
        q[3 * 2] = 1;
        q[3 * 2 + 1] = 1;
        return HostHeads.packed(q, 4, 2, 1);
    }

    /** k: 4 tokens x 2 kv heads x dh 1, k = ln p, so that softmax(q . k) = p (the probabilities sum to 1). */
    public static HostHeads tp2Keys() {
        float[] k = new float[4 * 2];
        for (int j = 0; j < 4; j++) for (int h = 0; h < 2; h++) k[j * 2 + h] = (float) Math.log(TP2_HEAD_PROBS[h][j]);
        return HostHeads.of(k, HeadLayout.packed(4, 2, 1));
    }

    // ---- TP-4: 1 prefix, 4 image, 1 text token; stage 1 keeps 3, stage 2 keeps 1 ----
    public static final ImageSequences TP4_SEQS = ImageSequences.single(1, 4, 1);
    public static final double[] TP4_W1 = {0.4, 0.1, 0.3, 0.2};
    public static final double[] TP4_W2 = {0.1, 0.1, 0.1};

    /**
     * A sub-block whose image tokens get tau = w exactly: u = (1, 0) everywhere, v parallel to u
     * (e = 1 for every token, so Z = L), |v| = w L for image tokens and 1 elsewhere.
     */
    public static HostTokens[] subBlockWithTau(ImageSequences seqs, double[] w) {
        int len = seqs.length(0), start = seqs.imageStart(0);
        float[][] u = new float[len][], v = new float[len][];
        for (int t = 0; t < len; t++) {
            u[t] = new float[] {1, 0};
            int j = t - start;
            v[t] = new float[] {j >= 0 && j < w.length ? (float) (w[j] * len) : 1f, 0};
        }
        return new HostTokens[] {tokens(seqs, u), tokens(seqs, v)};
    }

    /** Stage-1 IGA of TP-4: all queries 0, so each text row is uniform over its keys. */
    public static HostHeads[] tp4UniformAttention(ImageSequences seqs) {
        int len = seqs.length(0);
        return new HostHeads[] {HostHeads.packed(new float[len], len, 1, 1), HostHeads.packed(new float[len], len, 1, 1)};
    }

    /** Stage-2 IGA of TP-4 (5 tokens: prefix, 3 image, text): image probabilities 1:2:1 -> normalised [0.25, 0.5, 0.25]. */
    public static HostHeads[] tp4Stage2Attention() {
        float[] q = {0, 0, 0, 0, 1};
        float[] k = {0, 0, (float) Math.log(2), 0, 0};
        return new HostHeads[] {HostHeads.packed(q, 5, 1, 1), HostHeads.packed(k, 5, 1, 1)};
    }
}
