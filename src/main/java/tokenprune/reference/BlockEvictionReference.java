package tokenprune.reference;

import java.util.Arrays;

import tokenprune.kv.BlockEviction;
import tokenprune.kv.BlockEvictionOptions;

/**
 * Float64 reference of block-granular decode-time eviction ({@link BlockEviction}; methods-kv.md
 * §4.4 option (ii), §5, §6 SL-5): the trigger of PE-REF step 5, the block score (mean of the per-slot
 * attention state over the block's B slots and KV heads, then over the layers) and the victim, and
 * the update of the table and kv_len (what tp_kv_block_victim + tp_pe_decode_apply compute).
 */
public final class BlockEvictionReference {
    private BlockEvictionReference() {
    }

    /**
     * The block score of physical block {@code phys}: the mean over layers of the mean of
     * {@code layerStates[l][(phys·B + t)·kvHeads + h]} over t < B, h < kvHeads. The same count for
     * every block, so it is computed as the float64 total divided once by layers·B·kvHeads (equal
     * totals give equal scores: ties stay ties). Throws if a value is NaN/Inf or the total leaves the
     * fp32 range (the kernel's fp32 sum would be infinite).
     */
    public static double blockScore(float[][] layerStates, int phys, int blockSize, int kvHeads) {
        int run = blockSize * kvHeads;
        double total = 0;
        for (float[] state : layerStates) {
            for (int e = 0; e < run; e++) {
                float v = state[phys * run + e];
                if (!Float.isFinite(v)) throw new IllegalArgumentException(rejection("the state of block " + phys + " is " + v));
                total += v;
            }
        }
        // the state is fp32 and the kernel sums it in fp32: a block whose sum leaves the fp32 range is rejected there
        if (Math.abs(total) > Float.MAX_VALUE) throw new IllegalArgumentException(rejection("the state of block " + phys + " sums beyond the fp32 range"));
        return total / ((double) layerStates.length * run);
    }

    /**
     * The decision for a batch: for each sequence that {@link BlockEviction#triggers}, with n_blocks =
     * kv_len / B, the candidates are {@code sinkBlocks .. n_blocks − 1 − recentBlocks}; ATTENTION takes
     * the one with the smallest {@link #blockScore} (ties: lowest index), STREAMING the first. The
     * victim leaves the table (tail shifts left, the vacated entry becomes −1) and kv_len −= B. Throws
     * IllegalArgumentException, before producing anything, where the kernel rejects: a triggered
     * sequence needing more blocks than the table holds, a candidate's (ATTENTION) or the victim's
     * (STREAMING) physical block outside the pool, a NaN/Inf state value of a candidate block.
     */
    public static BlockEviction.Decision decide(BlockEviction.Batch in, BlockEvictionOptions o) {
        int seqs = in.seqs(), b = in.blockSize(), w = in.tableStride();
        boolean attention = o.policy() == BlockEvictionOptions.Policy.ATTENTION;
        if (attention && in.layers() < 1) throw new IllegalArgumentException("layerStates: the ATTENTION policy needs >= 1 layer");
        int[] tables = in.blockTables().clone(), kv = in.kvLen().clone();
        int[] victims = new int[seqs], freed = new int[seqs];
        Arrays.fill(victims, -1);
        Arrays.fill(freed, -1);
        for (int s = 0; s < seqs; s++) {
            int len = kv[s];
            if (!BlockEviction.triggers(len, in.logicalLen()[s], in.budget(), b)) continue;
            int nb = len / b;
            if (nb > w) throw new IllegalArgumentException(rejection("kv_len " + len + " of sequence " + s + " needs " + nb + " blocks, the table holds " + w));
            int lo = o.sinkBlocks(), hi = nb - 1 - o.recentBlocks();
            int victim = -1;
            double best = 0;
            for (int j = lo; j <= hi; j++) {
                int p = tables[s * w + j];
                if (attention || j == lo) checkPool(p, in.numBlocks(), s, j);
                if (!attention) {
                    victim = lo;
                    break;
                }
                double score = blockScore(in.layerStates(), p, b, in.kvHeads());
                if (victim < 0 || score < best) {
                    best = score;
                    victim = j;
                }
            }
            if (victim < 0) continue;
            freed[s] = tables[s * w + victim];
            victims[s] = victim;
            for (int i = victim; i < nb - 1; i++) tables[s * w + i] = tables[s * w + i + 1];
            tables[s * w + nb - 1] = -1;
            kv[s] = len - b;
        }
        return new BlockEviction.Decision(victims, freed, tables, kv);
    }

    private static void checkPool(int p, int numBlocks, int s, int j) {
        if (p < 0 || p >= numBlocks) throw new IllegalArgumentException(rejection("block " + j + " of sequence " + s + " is " + p + ", outside the pool"));
    }

    private static String rejection(String what) {
        return "block eviction rejected: " + what;
    }
}
