package tokenprune.reference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import tokenprune.methods.ClsAttentionLayout;
import tokenprune.methods.FasterVlm;
import tokenprune.methods.HostClsAttention;
import tokenprune.methods.Selection;

/** FasterVLM's reference and host-side helpers against methods-vision.md §13.3 (FV-1 .. FV-4) and hand-computed softmaxes. */
class FasterVlmReferenceTest {
    // FV-1: CLS -> patch probabilities of two heads, in 32nds (dyadic: exact in fp16 and double)
    static final double[] FV1_HEAD0 = {2 / 32.0, 12 / 32.0, 2 / 32.0, 6 / 32.0, 10 / 32.0, 4 / 32.0};
    static final double[] FV1_HEAD1 = {6 / 32.0, 4 / 32.0, 2 / 32.0, 10 / 32.0, 2 / 32.0, 6 / 32.0};

    @Test
    void fv1HeadMeanAndRasterOrder() {
        double[] mean = FasterVlmReference.headMean(new double[][] {FV1_HEAD0, FV1_HEAD1});
        assertArrayEquals(new double[] {0.125, 0.25, 0.0625, 0.25, 0.1875, 0.15625}, mean, 0.0);
        assertArrayEquals(new int[] {1, 3, 4}, FasterVlmReference.keep(mean, 3), "T = 3: raster order, not score order");
        assertArrayEquals(new int[] {1, 3, 4, 5}, FasterVlmReference.keep(mean, 4));
    }

    @Test
    void fv2TiesGoToTheLowerIndex() {
        double[] mean = FasterVlmReference.headMean(new double[][] {FV1_HEAD0, FV1_HEAD1});
        assertArrayEquals(new int[] {1}, FasterVlmReference.keep(mean, 1), "patches 1 and 3 tie at 0.25");
        assertEquals(0.0, FasterVlmReference.cutGap(mean, 1), "a tie at the cut has no gap");
        assertEquals(0.0625, FasterVlmReference.cutGap(mean, 2), "0.25 vs 0.1875");
    }

    /** The whole method on q/k built so that softmax gives FV-1's probabilities (halved, the CLS key taking the rest). */
    @Test
    void fv1FromQueriesAndKeys() {
        HostClsAttention in = fv1Input();
        double[][] scores = FasterVlmReference.scores(in, 1.0);
        double[] mean = FasterVlmReference.headMean(new double[][] {FV1_HEAD0, FV1_HEAD1});
        for (int j = 0; j < 6; j++) assertEquals(mean[j] / 2, scores[0][j], 1e-8, "patch " + j + " (the keys are ln P rounded to fp32)");
        Selection s = FasterVlmReference.select(in, 3, 1.0);
        assertArrayEquals(new int[] {1, 3, 4}, s.kept(0));
        assertArrayEquals(new int[] {1, 3, 4, 5}, FasterVlmReference.select(in, 4, 1.0).kept(0));
    }

    /** q = 1 (dh = 1, scale 1) and key t of head h = ln P_h[t]: the softmax returns P exactly up to rounding. */
    static HostClsAttention fv1Input() {
        double[][] heads = {FV1_HEAD0, FV1_HEAD1};
        int n = 7, h = 2;
        float[] q = {1, 1};
        float[] k = new float[n * h];
        for (int hh = 0; hh < h; hh++) {
            double patchMass = 0;
            for (int j = 0; j < 6; j++) {
                k[(1 + j) * h + hh] = (float) Math.log(heads[hh][j] / 2);
                patchMass += heads[hh][j] / 2;
            }
            k[hh] = (float) Math.log(1 - patchMass);  // CLS
        }
        // the float keys are ln P rounded to fp32; the reference uses those exact floats, so compare loosely above
        return HostClsAttention.of(q, k, ClsAttentionLayout.dense(1, n, h, 1));
    }

    @Test
    void fv3AnyresCountsAndLayout() {
        assertEquals(145, FasterVlm.anyresKeptCount(29, 2, 2), "672 x 672: base + 4 crops");
        assertEquals(87, FasterVlm.anyresKeptCount(29, 1, 2), "336 x 672: base + 2 crops");
        assertEquals(87, FasterVlm.anyresKeptCount(29, 2, 1));

        // 2 x 2 grid of 2 x 2-patch crops (side 2, 4 patches each), T = 2; sets: base, crop (0,0), (0,1), (1,0), (1,1)
        int side = 2, p = 4;
        int[] offsets = {0, 2, 4, 6, 8, 10};
        int[] kept = {
            0, 3,   // base: raster order as is
            1, 2,   // crop (0,0): map (0,1), (1,0)
            0, 3,   // crop (0,1): map (0,2), (1,3)
            0, 1,   // crop (1,0): map (2,0), (2,1)
            2, 3};  // crop (1,1): map (3,2), (3,3)
        Selection s = new Selection(offsets, kept, null);
        int[] rows = FasterVlm.anyresTokenOrder(s, 0, 2, 2, side);
        // the crop map in raster order: row 0: (0,1)=c0[1]; (0,2)=c1[0]; row 1: (1,0)=c0[2]; (1,3)=c1[3]; row 2: (2,0)=c2[0],
        // (2,1)=c2[1]; row 3: (3,2)=c3[2], (3,3)=c3[3]. Rows of crop c are (1 + c) p + local.
        int[] want = {0, 3, p + 1, 2 * p + 0, p + 2, 2 * p + 3, 3 * p + 0, 3 * p + 1, 4 * p + 2, 4 * p + 3};
        assertArrayEquals(want, rows);
        assertEquals(FasterVlm.anyresKeptCount(2, 2, 2), rows.length);

        // a 1 x 2 grid whose sets start after another image's (firstSet = 1): set 1 = base, 2 = left crop, 3 = right crop
        Selection two = new Selection(new int[] {0, 1, 3, 5, 7}, new int[] {2, 0, 3, 0, 1, 1, 2}, null);
        int[] r = FasterVlm.anyresTokenOrder(two, 1, 1, 2, side);
        // left keeps (0,0), (0,1) -> map (0,0), (0,1); right keeps local 1 = (0,1), 2 = (1,0) -> map (0,3), (1,2)
        assertArrayEquals(new int[] {0, 3, p + 0, p + 1, 2 * p + 1, 2 * p + 2}, r);
        // ... and a 2 x 1 grid stacks them: every left (top) patch first
        assertArrayEquals(new int[] {0, 3, p + 0, p + 1, 2 * p + 1, 2 * p + 2}, FasterVlm.anyresTokenOrder(two, 1, 2, 1, side));
        Selection interleave = new Selection(new int[] {0, 1, 3, 5}, new int[] {0, 2, 3, 0, 1}, null);
        // 1 x 2: left keeps (1,0), (1,1) -> map (1,0), (1,1); right keeps (0,0), (0,1) -> map (0,2), (0,3): right first
        assertArrayEquals(new int[] {0, 2 * p + 0, 2 * p + 1, p + 2, p + 3}, FasterVlm.anyresTokenOrder(interleave, 0, 1, 2, side));
        assertThrows(IllegalArgumentException.class, () -> FasterVlm.anyresTokenOrder(two, 2, 1, 2, side), "not enough sets");
    }

    /** FV-3 at LLaVA-NeXT's real size: 24 x 24 patches per crop, 2 x 2 grid, T = 29 of random scores per crop. */
    @Test
    void fv3AtFullSize() {
        int side = 24, p = side * side, t = 29, crops = 4;
        java.util.Random rnd = new java.util.Random(3);
        int[] offsets = new int[crops + 2];
        int[] kept = new int[(crops + 1) * t];
        for (int set = 0; set <= crops; set++) {
            double[] scores = rnd.doubles(p).toArray();
            System.arraycopy(FasterVlmReference.keep(scores, t), 0, kept, set * t, t);
            offsets[set + 1] = offsets[set] + t;
        }
        Selection s = new Selection(offsets, kept, null);
        int[] rows = FasterVlm.anyresTokenOrder(s, 0, 2, 2, side);
        assertEquals(145, rows.length, "29 x (1 + 4)");
        assertArrayEquals(s.kept(0), java.util.Arrays.copyOf(rows, t), "the base image first, in raster order");
        long previous = -1;
        java.util.Set<Integer> seen = new java.util.HashSet<>();
        for (int i = t; i < rows.length; i++) {
            int crop = rows[i] / p - 1, local = rows[i] % p;
            assertTrue(crop >= 0 && crop < crops && seen.add(rows[i]), "row " + rows[i]);
            assertTrue(java.util.Arrays.binarySearch(s.kept(1 + crop), local) >= 0, "row " + rows[i] + " is kept by its crop");
            long position = (long) ((crop / 2) * side + local / side) * (2 * side) + (crop % 2) * side + local % side;
            assertTrue(position > previous, "crop map raster order at output " + i);
            previous = position;
        }
    }

    @Test
    void fv4VideoFramesAreIndependentImages() {
        double[][] frames = {{0.1, 0.4, 0.2, 0.3}, {0.5, 0.1, 0.3, 0.1}};
        int[] f0 = FasterVlmReference.keep(frames[0], 2), f1 = FasterVlmReference.keep(frames[1], 2);
        assertArrayEquals(new int[] {1, 3}, f0);
        assertArrayEquals(new int[] {0, 2}, f1);
        Selection s = new Selection(new int[] {0, 2, 4}, new int[] {1, 3, 0, 2}, null);
        assertArrayEquals(new int[] {1, 3, 4, 6}, FasterVlm.concatenatedRows(s, 4), "f0[1], f0[3], f1[0], f1[2]");
    }

    @Test
    void softmaxIsOverAllKeysAndTheClsColumnIsNotRenormalised() {
        // one head, dh = 2, q = (1, 0): the logits are the keys' first elements, CLS 0 and patches 1, 2, 0
        float[] q = {1, 0};
        float[] k = {0, 9, 1, 5, 2, 7, 0, 3};  // logits (scale 1): CLS 0, patches 1, 2, 0
        HostClsAttention in = HostClsAttention.of(q, k, ClsAttentionLayout.dense(1, 4, 1, 2));
        double z = 1 + Math.E + Math.exp(2) + 1;
        double[] s = FasterVlmReference.scores(in, 1.0)[0];
        assertArrayEquals(new double[] {Math.E / z, Math.exp(2) / z, 1 / z}, s, 1e-15);
        assertTrue(s[0] + s[1] + s[2] < 1, "the CLS share is dropped");
        // scale multiplies the logits
        double[] half = FasterVlmReference.scores(in, 0.5)[0];
        double zh = 1 + Math.exp(0.5) + Math.E + 1;
        assertArrayEquals(new double[] {Math.exp(0.5) / zh, Math.E / zh, 1 / zh}, half, 1e-15);
    }

    @Test
    void headMeanAveragesProbabilitiesNotLogits() {
        // two heads over CLS + 2 patches: head 0 logits [0, 0, ln 2] -> P = [1/4, 1/4, 1/2]; head 1 logits [ln 2, 0, 0] -> [1/2, 1/4, 1/4]
        float ln2 = (float) Math.log(2);
        float[] q = {1, 1};
        float[] k = {0, ln2, 0, 0, ln2, 0};  // [t][h]
        HostClsAttention in = HostClsAttention.of(q, k, ClsAttentionLayout.dense(1, 3, 2, 1));
        assertArrayEquals(new double[] {0.25, 0.375}, FasterVlmReference.scores(in, 1.0)[0], 1e-7);
    }

    @Test
    void badInputIsRejected() {
        float[] k = {0, 1, Float.NaN, 0};
        HostClsAttention in = HostClsAttention.of(new float[] {1}, k, ClsAttentionLayout.dense(1, 4, 1, 1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FasterVlmReference.scores(in, 1.0));
        assertTrue(e.getMessage().contains("key of image 0, token 2, head 0, element 0"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> FasterVlmReference.keep(new double[] {1, 2}, 3));
        assertThrows(IllegalArgumentException.class, () -> FasterVlmReference.keep(new double[] {1, 2}, 0));
    }
}
