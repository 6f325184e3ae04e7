package tokenprune.reference;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import tokenprune.kv.KvLayout;
import tokenprune.kv.KvScoreOptions;
import tokenprune.kv.PagedEviction;
import tokenprune.kv.PagedEvictionOptions;
import tokenprune.methods.DType;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;

/**
 * Float64 reference of PagedEviction (PE-REF, methods-kv.md §2.3.2): the token score from key and
 * value norms (step 1), the block score (step 2), the prefill selection (step 4) and the batched
 * decode-time eviction decision (steps 2, 3, 5: {@link #decodeStep}).
 */
public final class PagedEvictionReference {
    private PagedEvictionReference() {
    }

    /** Step 1 from the per-head norms n_k[h], n_v[h]. */
    public static double tokenScore(double[] nk, double[] nv, KvScoreOptions o) {
        int h = nk.length;
        if (h == 0 || nv.length != h) throw new IllegalArgumentException("nk, nv: need the same number (>= 1) of heads");
        double eps = o.eps(), sk = 0, sv = 0, sr = 0;
        for (int i = 0; i < h; i++) {
            sk += nk[i];
            sv += nv[i];
            sr += nv[i] / (nk[i] + eps);
        }
        double mk = sk / h, mv = sv / h;
        return switch (o.metric()) {
            case V_OVER_K -> o.headAgg() == KvScoreOptions.HeadAgg.MEAN_OF_RATIOS ? sr / h : mv / (mk + eps);
            case INV_K -> 1.0 / (mk + eps);
            case V -> mv;
            case K_PLUS_V -> mk + mv;
            case RANDOM -> throw new IllegalArgumentException("options: the random score depends on the token's place (randomScore), not on norms");
        };
    }

    // ---------------------------------------------------------------------------------------------
    // counter-based hashing, bit for bit as common.cuh's tp_mix64 / tp_hash3 / tp_hash_unit
    // ---------------------------------------------------------------------------------------------

    /** SplitMix64's finaliser. */
    public static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }

    /** A hash of three 64-bit keys, each offset by the golden-ratio constant. */
    public static long hash3(long a, long b, long c) {
        long g = 0x9e3779b97f4a7c15L;
        return mix64(mix64(mix64(a + g) ^ (b + g)) ^ (c + g));
    }

    /** The top 24 bits as a float in [0, 1) (exact: an integer below 2^24 times 2^-24). */
    public static float hashUnit(long h) {
        return (float) (h >>> 40) * 0x1p-24f;
    }

    /** The {@code random} token score of (physical block, slot) under {@code seed}. */
    public static float randomScore(long seed, int physicalBlock, int slot) {
        return hashUnit(hash3(seed, physicalBlock, slot));
    }

    /**
     * The random victim rule: candidate 1 + ⌊u · hi⌋ of 1 .. hi, u = the top 32 bits of
     * hash3(seed, logical length, row) / 2^32 (an exact multiply-high).
     */
    public static int randomVictim(long seed, long logicalLen, int row, int hi) {
        long u = hash3(seed, logicalLen, row) >>> 32;
        return 1 + (int) ((u * hi) >>> 32);
    }

    /** One cache element as a float: {@code cache} is a float[] (F32) or a short[] of raw 16-bit patterns. */
    static double element(Object cache, DType dtype, long at) {
        return switch (dtype) {
            case F32 -> ((float[]) cache)[(int) at];
            case F16 -> Fp16.toFloat(((short[]) cache)[(int) at]);
            case BF16 -> Bf16.toFloat(((short[]) cache)[(int) at]);
        };
    }

    /**
     * Scores of tokens {@code begin .. end-1} of a sequence whose block table is {@code table}, read
     * from one layer's cache through {@code layout}.
     */
    public static double[] tokenScores(KvLayout layout, Object cache, int[] table, int begin, int end, KvScoreOptions o) {
        int b = layout.blockSize(), heads = layout.kvHeads(), d = layout.headDim();
        double[] out = new double[end - begin];
        if (o.metric() == KvScoreOptions.Metric.RANDOM) {
            for (int t = begin; t < end; t++) out[t - begin] = randomScore(o.seed(), table[t / b], t % b);
            return out;
        }
        double[] nk = new double[heads], nv = new double[heads];
        for (int t = begin; t < end; t++) {
            int block = table[t / b], slot = t % b;
            for (int h = 0; h < heads; h++) {
                double k2 = 0, v2 = 0;
                for (int j = 0; j < d; j++) {
                    double k = element(cache, layout.dtype(), layout.offset(0, block, slot, h, j));
                    double v = element(cache, layout.dtype(), layout.offset(1, block, slot, h, j));
                    k2 += k * k;
                    v2 += v * v;
                }
                nk[h] = Math.sqrt(k2);
                nv[h] = Math.sqrt(v2);
            }
            out[t - begin] = tokenScore(nk, nv, o);
        }
        return out;
    }

    /** Step 2: the mean of a full block's token scores. */
    public static double blockScore(double[] tokenScores) {
        if (tokenScores.length == 0) throw new IllegalArgumentException("tokenScores: empty block");
        double s = 0;
        for (double v : tokenScores) s += v;
        return s / tokenScores.length;
    }

    /**
     * Step 4: the positions a prompt of L = scores.length tokens keeps under budget C with block size
     * B, ascending (original order). L <= C keeps all; otherwise r = L mod B, [0, B) and
     * [L - B - r, L) are kept, and the top C - 2B middle tokens by score (ties: later position first).
     */
    public static int[] prefillKeep(double[] scores, int budget, int blockSize) {
        int l = scores.length;
        if (budget % blockSize != 0 || budget < 3 * blockSize) throw new IllegalArgumentException("budget: must be a multiple of B and >= 3B");
        if (l <= budget) {
            int[] all = new int[l];
            for (int i = 0; i < l; i++) all[i] = i;
            return all;
        }
        int r = l % blockSize, midEnd = l - blockSize - r;
        List<Integer> middle = new ArrayList<>();
        for (int i = blockSize; i < midEnd; i++) middle.add(i);
        middle.sort((a, c) -> scores[a] != scores[c] ? Double.compare(scores[c], scores[a]) : Integer.compare(c, a));
        int keepMid = budget - 2 * blockSize;
        int[] out = new int[budget + r];
        int n = 0;
        for (int i = 0; i < blockSize; i++) out[n++] = i;
        int[] mid = middle.subList(0, keepMid).stream().mapToInt(Integer::intValue).sorted().toArray();
        for (int m : mid) out[n++] = m;
        for (int i = midEnd; i < l; i++) out[n++] = i;
        if (n != out.length) throw new AssertionError();
        Arrays.sort(out);
        return out;
    }

    /**
     * StreamingLLM's paged prefill (SL-5): {@link #prefillKeep} with score = position, i.e. block 0,
     * the most recent C − 2B middle tokens and the last B + r.
     */
    public static int[] prefillKeepRecent(int length, int budget, int blockSize) {
        double[] position = new double[length];
        for (int i = 0; i < length; i++) position[i] = i;
        return prefillKeep(position, budget, blockSize);
    }

    /**
     * Step 2 in the decode kernel's exact fp32 arithmetic: the token scores summed sequentially in
     * position order in float, then divided by their count in float.
     */
    public static float blockScoreF32(float[] tokenScores, int from, int count) {
        float sum = 0f;
        for (int j = 0; j < count; j++) sum += tokenScores[from + j];
        return sum / (float) count;
    }

    /**
     * Steps 2, 3 and 5 for a batch (what tp_pe_decode_decide + tp_pe_decode_apply compute, in the same
     * fp32 arithmetic, so the decisions agree exactly): for every sequence s with fillAt[s] >= 0,
     * n_blocks = kv_len / B; the new block's score per layer is {@link #blockScoreF32} of its B token
     * scores and is cached at index n_blocks - 1; if logical length > C and kv_len - B >= C, the victim
     * is the candidate (1 .. n_blocks - 2, or 1 .. min(k, n_blocks - 2) for a local window) with the
     * smallest (ARGMIN) or largest (ARGMAX) layer sum (summed in layer order in fp32; layer 0 alone in
     * LAYER0 mode), ties to the lowest index; or {@link #randomVictim} (RANDOM), or block 1 (a window of
     * 1). Rules that read no score ({@link PagedEvictionOptions#readsScores()} false) ignore the fill
     * scores, cache NaN for the new block and never reject a score. The victim is removed from the table and every layer's score row (the tail shifts left,
     * the vacated entry becomes -1 / NaN) and kv_len -= B. Throws IllegalArgumentException, before
     * producing anything, where the kernel rejects: a filled kv_len that is not a positive multiple of
     * B within the table, a NaN/Inf filled token score or candidate block score, a victim's physical
     * block outside the pool.
     */
    public static PagedEviction.Decision decodeStep(PagedEviction.DecodeBatch in, PagedEvictionOptions o) {
        int seqs = in.seqs(), layers = in.layers(), b = in.blockSize(), w = in.tableStride();
        int[] tables = in.blockTables().clone(), kv = in.kvLen().clone();
        float[] scores = in.blockScores().clone();
        int[] victims = new int[seqs], freed = new int[seqs];
        Arrays.fill(victims, -1);
        Arrays.fill(freed, -1);
        float[] fresh = new float[layers];
        for (int s = 0; s < seqs; s++) {
            int f = in.fillAt()[s];
            if (f < 0) continue;
            int len = kv[s], nb = len / b;
            if (len < b || len % b != 0 || nb > w) throw new IllegalArgumentException(rejection("kv_len " + len + " of sequence " + s));
            for (int l = 0; l < layers && !o.readsScores(); l++) fresh[l] = Float.NaN;
            for (int l = 0; l < layers && o.readsScores(); l++) {
                int from = (l * in.fills() + f) * b;
                for (int j = 0; j < b; j++)
                    if (!Float.isFinite(in.fillScores()[from + j])) throw new IllegalArgumentException(rejection("a token score of sequence " + s));
                fresh[l] = blockScoreF32(in.fillScores(), from, b);
                if (!Float.isFinite(fresh[l])) throw new IllegalArgumentException(rejection("the new block score of sequence " + s));
            }
            int victim = -1;
            if (in.logicalLen()[s] > in.budget() && (long) len - b >= in.budget()) {
                int hi = nb - 2;
                if (!o.global() && o.window() < hi) hi = o.window();
                int aggLayers = o.layerAgg() == PagedEvictionOptions.LayerAgg.LAYER0 ? 1 : layers;
                boolean argmax = o.victim() == PagedEvictionOptions.Victim.ARGMAX;
                float best = 0;
                if (!o.readsScores() && hi >= 1)
                    victim = o.victimRule() == PagedEvictionOptions.Victim.RANDOM.code() ? randomVictim(o.seed(), in.logicalLen()[s], s, hi) : 1;
                for (int j = 1; j <= hi && o.readsScores(); j++) {
                    float sum = 0f;
                    for (int l = 0; l < aggLayers; l++) {
                        float v = scores[(l * seqs + s) * w + j];
                        if (!Float.isFinite(v)) throw new IllegalArgumentException(rejection("the block score of candidate " + j + " of sequence " + s));
                        sum += v;
                    }
                    if (!Float.isFinite(sum)) throw new IllegalArgumentException(rejection("the layer sum of candidate " + j + " of sequence " + s));
                    if (victim < 0 || (argmax ? sum > best : sum < best)) {
                        best = sum;
                        victim = j;
                    }
                }
                if (victim >= 0) {
                    int p = tables[s * w + victim];
                    if (p < 0 || p >= in.numBlocks()) throw new IllegalArgumentException(rejection("victim block " + p + " of sequence " + s));
                }
            }
            for (int l = 0; l < layers; l++) scores[(l * seqs + s) * w + nb - 1] = fresh[l];
            if (victim >= 0) {
                freed[s] = tables[s * w + victim];
                victims[s] = victim;
                for (int row = 0; row <= layers; row++) {
                    for (int i = victim; i < nb - 1; i++) {
                        if (row == 0) tables[s * w + i] = tables[s * w + i + 1];
                        else scores[((row - 1) * seqs + s) * w + i] = scores[((row - 1) * seqs + s) * w + i + 1];
                    }
                    if (row == 0) tables[s * w + nb - 1] = -1;
                    else scores[((row - 1) * seqs + s) * w + nb - 1] = Float.NaN;
                }
                kv[s] = len - b;
            }
        }
        return new PagedEviction.Decision(victims, freed, tables, scores, kv);
    }

    private static String rejection(String what) {
        return "decode step rejected: " + what + " (" + "PE-REF step 5 inputs" + ")";
    }
}
