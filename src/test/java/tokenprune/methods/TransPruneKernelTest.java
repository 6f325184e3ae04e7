package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static tokenprune.testing.TransPruneFixtures.*;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.CpuDevice;
import tokenprune.device.Device;
import tokenprune.device.KernelDevice;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.TransPruneReference;
import tokenprune.testing.TestDevices;

/**
 * TransPrune's kernels (tp_ttv, tp_iga, tp_transprune_score, TopK, tp_transprune_finish) against the
 * float64 reference: the hand-checkable cases TP-1, TP-2, TP-4, TP-5 on every device (the cpu device
 * runs the reference itself), and fresh random requests of awkward shapes through two pruning
 * schedules on the simulator (two thread schedules) and the GPU. TTV and scores are compared with a
 * relative tolerance of 1e-5; selections exactly where the reference's k-th and (k+1)-th scores are
 * separated by more than 1e-4 (relative), otherwise as a valid top-k within the tolerance; after
 * every stage the reference continues from the device's selection.
 */
class TransPruneKernelTest {
    private static final double TOL = 1e-5, SEPARATED = 1e-4, SPEC = 1.5e-6;

    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static java.util.stream.Stream<String> devicesAndCpu() {
        return java.util.stream.Stream.concat(java.util.stream.Stream.of("cpu"), TestDevices.kernelDevices());
    }

    static Device openAny(String name) {
        return name.equals("cpu") ? new CpuDevice() : TestDevices.open(name);
    }

    /** A batch shape: sequences (lengths, image blocks), hidden width, attention heads. */
    record Shape(String name, int[] lengths, int[] imageStart, int[] imageCount, int d, int heads, int kvHeads, int dh) {
        ImageSequences sequences() {
            return ImageSequences.of(lengths, imageStart, imageCount);
        }

        @Override
        public String toString() {
            return name;
        }
    }

    // prime lengths, a sequence with one image token, text lengths 1 and 17 (two IGA row tiles),
    // d = 1, 3, 64 (16-byte loads), 130 (element loads), 1 and 4 heads of dh 8, GQA and MQA, ragged batches of 3
    static final Shape RAGGED3 = new Shape("ragged3 d64 4/2 heads", new int[] {17, 7, 59}, new int[] {3, 5, 2}, new int[] {13, 1, 40}, 64, 4, 2, 8);
    static final Shape SINGLE_D3 = new Shape("single d3 1 head", new int[] {37}, new int[] {5}, new int[] {31}, 3, 1, 1, 8);
    static final Shape PAIR_D1 = new Shape("pair d1 4 heads", new int[] {29, 11}, new int[] {1, 2}, new int[] {11, 8}, 1, 4, 4, 8);
    static final Shape RAGGED3_D130 = new Shape("ragged3 d130 4/1 heads", new int[] {23, 41, 13}, new int[] {0, 3, 4}, new int[] {5, 21, 1}, 130, 4, 1, 8);

    static final TransPruneSchedule CUSTOM = TransPruneSchedule.of(new int[] {2, 3, 4}, new int[] {3, 4}, new double[] {0.6, 0.3});

    // ---------------------------------------------------------------------------------------------
    // hand-checkable cases (§13.4)
    // ---------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @MethodSource("devicesAndCpu")
    void tp1SingleSubBlock(String name) {
        ImageSequences seqs = ImageSequences.single(0, 3, 0);
        try (Device device = openAny(name); TransPruneSession s = TransPrune.open(device, seqs, TransPruneOptions.defaults().ttvOnly(true))) {
            s.addSubBlock(tokens(seqs, TP1_U), tokens(seqs, TP1_V));
            assertClose(TP1_TTV, s.accumulatedTtv(), SPEC, name + " TP-1");
            assertArrayEquals(new int[] {1, 2}, s.pruneTo(new int[] {2}, null, null).kept(0), "TTV-only keeps the two largest");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devicesAndCpu")
    void tp2FullScoreOneStage(String name) {
        try (Device device = openAny(name); TransPruneSession s = TransPrune.open(device, TP2_SEQS, TransPruneOptions.defaults())) {
            s.addSubBlock(tokens(TP2_SEQS, TP2_U_ATTN), tokens(TP2_SEQS, TP2_V_ATTN));
            s.addSubBlock(tokens(TP2_SEQS, TP2_UV_MLP), tokens(TP2_SEQS, TP2_UV_MLP));
            assertClose(TP2_IMAGE_TTV, s.accumulatedTtv(), SPEC, name + " TP-2 image TTV");
            Selection sel = s.pruneTo(new int[] {1}, tp2Queries(), tp2Keys());
            assertClose(TP2_SCORES, s.lastScores(), SPEC, name + " TP-2 scores");
            assertArrayEquals(new int[] {0}, sel.kept(0), "keeps t1 (image token 0): TTV overrides IGA");
            assertArrayEquals(new int[] {0, 1, 3}, s.lastRowGather(), "prefix, t1, text");
            assertEquals(ImageSequences.single(1, 1, 1), s.current());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devicesAndCpu")
    void tp4StoredTtvIsReindexedToTheSurvivors(String name) {
        try (Device device = openAny(name); TransPruneSession s = TransPrune.open(device, TP4_SEQS, TransPruneOptions.defaults())) {
            HostTokens[] b1 = subBlockWithTau(TP4_SEQS, TP4_W1);
            s.addSubBlock(b1[0], b1[1]);
            HostHeads[] a1 = tp4UniformAttention(TP4_SEQS);
            assertArrayEquals(new int[] {0, 2, 3}, s.pruneTo(new int[] {3}, a1[0], a1[1]).kept(0));
            assertClose(new double[] {0.65, 0.35, 0.55, 0.45}, s.lastScores(), SPEC, name + " stage 1 scores");
            assertClose(new double[] {0.4, 0.3, 0.2}, s.accumulatedTtv(), SPEC, name + " w1 re-indexed (not w1[:3] = 0.4, 0.1, 0.3)");

            HostTokens[] b2 = subBlockWithTau(s.current(), TP4_W2);
            s.addSubBlock(b2[0], b2[1]);
            HostHeads[] a2 = tp4Stage2Attention();
            assertArrayEquals(new int[] {1}, s.pruneTo(new int[] {1}, a2[0], a2[1]).kept(0), "survivor 1 = original token 2 (the bug keeps 0)");
            assertClose(new double[] {0.666667, 0.833333, 0.5}, s.lastScores(), SPEC, name + " stage 2 scores");
            assertClose(new double[] {0.4}, s.accumulatedTtv(), SPEC, name + " A of the last survivor");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devicesAndCpu")
    void tp5IgaQueriesAreTheTextRowsAfterTheImageAndKeysAreAllTokens(String name) {
        int prefix = 35, n = 6, text = 3, heads = 2, dh = 4;
        ImageSequences seqs = ImageSequences.single(prefix, n, text);
        int len = seqs.length(0);
        Random rnd = new Random(35);
        float[] q = gaussian(rnd, len * heads * dh), k = gaussian(rnd, len * heads * dh);
        TransPruneOptions igaOnly = TransPruneOptions.defaults().weights(0, 1);
        try (Device device = openAny(name)) {
            float[] scores = igaScores(device, seqs, igaOnly, q, k, heads, dh);
            double[] want = TransPruneReference.normalise(TransPruneReference.iga(HostHeads.packed(q, len, heads, dh).tokens(0, len),
                    HostHeads.packed(k, len, heads, dh).tokens(0, len), prefix, n));
            assertClose(want, scores, TOL, name + " TP-5");
            float[] q2 = q.clone();
            for (int i = 0; i < (prefix + n) * heads * dh; i++) q2[i] = i % 3 == 0 ? Float.NaN : 100f;  // never read
            assertArrayEquals(scores, igaScores(device, seqs, igaOnly, q2, k, heads, dh), name + ": prefix and image query rows are not read");
            float[] k2 = k.clone();
            k2[7 * heads * dh + 3] += 4f;  // a prefix key: in every row's softmax denominator
            assertNotEquals(scores[0], igaScores(device, seqs, igaOnly, q, k2, heads, dh)[0], name + ": prefix keys count");
        }
    }

    private static float[] igaScores(Device device, ImageSequences seqs, TransPruneOptions o, float[] q, float[] k, int heads, int dh) {
        try (TransPruneSession s = TransPrune.open(device, seqs, o)) {
            int len = seqs.totalRows();
            s.pruneTo(new int[] {seqs.imageCount(0)}, HostHeads.packed(q, len, heads, dh), HostHeads.packed(k, len, heads, dh));
            return s.lastScores();
        }
    }

    // ---------------------------------------------------------------------------------------------
    // random requests of awkward shapes
    // ---------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomRequestsMatchTheReferenceThroughTwoSchedules(String name) {
        try (KernelDevice device = TestDevices.open(name)) {
            long seed = 500;
            for (Shape shape : new Shape[] {RAGGED3, SINGLE_D3, PAIR_D1, RAGGED3_D130}) {
                runAgainstReference(device, shape, TransPruneSchedule.defaults(), DType.F32, false, ++seed, name);
                runAgainstReference(device, shape, CUSTOM, DType.F32, false, ++seed, name);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void halfPrecisionInputsMatchTheReferenceOnTheRoundedValues(String name) {
        try (KernelDevice device = TestDevices.open(name)) {
            long seed = 700;
            for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
                runAgainstReference(device, RAGGED3, CUSTOM, dtype, false, ++seed, name);       // 16-byte loads
                runAgainstReference(device, RAGGED3_D130, CUSTOM, dtype, false, ++seed, name);  // element loads
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void rowAndHeadStridesAndTtvOnly(String name) {
        try (KernelDevice device = TestDevices.open(name)) {
            runAgainstReference(device, RAGGED3, CUSTOM, DType.F32, true, 801, name);
            runAgainstReference(device, PAIR_D1, CUSTOM, DType.BF16, true, 802, name);
            Shape noText = new Shape("no text d5", new int[] {9, 6}, new int[] {2, 0}, new int[] {7, 6}, 5, 1, 1, 1);
            runTtvOnly(device, noText, 803, name);
            runTtvOnly(device, RAGGED3_D130, 804, name);
        }
    }

    /** More sub-blocks than the schedule's pending capacity (2 here): the slots grow, nothing is lost. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void pendingSlotsGrowBeyondTheSchedule(String name) {
        TransPruneSchedule one = TransPruneSchedule.of(new int[] {1}, new int[] {1}, new double[] {0.5});
        ImageSequences seqs = PAIR_D1.sequences();
        Random rnd = new Random(901);
        TransPruneReference.Sequence[] ref = reference(seqs);
        try (KernelDevice device = TestDevices.open(name); TransPruneSession s = TransPrune.open(device, seqs, TransPruneOptions.defaults().schedule(one).ttvOnly(true))) {
            for (int i = 0; i < 5; i++) {
                HostTokens u = randomTokens(rnd, seqs, 6, DType.F32, false), v = randomTokens(rnd, seqs, 6, DType.F32, false);
                s.addSubBlock(u, v);
                for (int b = 0; b < ref.length; b++) ref[b].addSubBlock(u.set(b), v.set(b));
            }
            assertClose(referenceTtv(ref), s.accumulatedTtv(), TOL, name + " 5 pending sub-blocks");
            Selection sel = s.prune(null, null);
            checkStage(ref, seqs, sel, s.lastScores(), null, null, 1, 0, name + " slots");
        }
    }

    /** No float atomics anywhere: the simulator's thread and block orders do not change a bit. */
    @Test
    void resultsDoNotDependOnTheThreadSchedule() {
        float[][] inOrder = runForBits("sim-in-order"), random = runForBits("sim-random");
        for (int i = 0; i < inOrder.length; i++) assertArrayEquals(inOrder[i], random[i], "output " + i + " bit for bit");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void repeatedRunsAreBitIdentical(String name) {
        float[][] a = runForBits(name), b = runForBits(name);
        for (int i = 0; i < a.length; i++) assertArrayEquals(a[i], b[i], name + " output " + i + " bit for bit");
    }

    private static float[][] runForBits(String name) {
        ImageSequences seqs = RAGGED3.sequences();
        Random rnd = new Random(77);
        try (KernelDevice device = TestDevices.open(name); TransPruneSession s = TransPrune.open(device, seqs, TransPruneOptions.defaults().schedule(CUSTOM))) {
            for (int i = 0; i < 4; i++) s.addSubBlock(randomTokens(rnd, seqs, 64, DType.F32, false), randomTokens(rnd, seqs, 64, DType.F32, false));
            float[] ttv = s.accumulatedTtv();
            int rows = seqs.totalRows();
            s.prune(randomHeads(rnd, rows, 4, 8, DType.F32, false), randomHeads(rnd, rows, 2, 8, DType.F32, false));
            return new float[][] {ttv, s.lastScores(), s.accumulatedTtv()};
        }
    }

    // ---------------------------------------------------------------------------------------------
    // the harness
    // ---------------------------------------------------------------------------------------------

    /** Steps a request layer by layer through the schedule on the device and on the reference. */
    static void runAgainstReference(KernelDevice device, Shape shape, TransPruneSchedule schedule, DType dtype, boolean strided, long seed, String name) {
        ImageSequences seqs = shape.sequences();
        Random rnd = new Random(seed);
        TransPruneReference.Sequence[] ref = reference(seqs);
        String what = name + " " + shape + " " + schedule + " " + dtype + (strided ? " strided" : "") + " seed=" + seed;
        try (TransPruneSession s = TransPrune.open(device, seqs, TransPruneOptions.defaults().schedule(schedule))) {
            int last = schedule.stage(schedule.stages() - 1).afterLayer();
            for (int layer = 1; layer <= last; layer++) {
                if (schedule.accumulates(layer)) {
                    for (int sub = 0; sub < 2; sub++) {
                        HostTokens u = randomTokens(rnd, s.current(), shape.d(), dtype, strided);
                        HostTokens v = randomTokens(rnd, s.current(), shape.d(), dtype, strided);
                        s.addSubBlock(u, v);
                        for (int b = 0; b < ref.length; b++) ref[b].addSubBlock(u.set(b), v.set(b));
                    }
                }
                int stage = schedule.stageAfter(layer);
                if (stage < 0) continue;
                assertClose(referenceTtv(ref), s.accumulatedTtv(), TOL, what + " TTV before stage " + stage);
                ImageSequences before = s.current();
                int rows = before.totalRows();
                HostHeads q = randomHeads(rnd, rows, shape.heads(), shape.dh(), dtype, strided);
                HostHeads k = randomHeads(rnd, rows, shape.kvHeads(), shape.dh(), dtype, strided);
                Selection sel = s.prune(q, k);
                checkStage(ref, before, sel, s.lastScores(), q, k, 1, 1, what + " stage " + stage);
                assertArrayEquals(before.rowGather(sel.keepOffsets(), sel.kept()), s.lastRowGather(), what + " row gather");
                assertClose(referenceTtv(ref), s.accumulatedTtv(), TOL, what + " TTV re-indexed after stage " + stage);
            }
        }
    }

    private static void runTtvOnly(KernelDevice device, Shape shape, long seed, String name) {
        ImageSequences seqs = shape.sequences();
        Random rnd = new Random(seed);
        TransPruneReference.Sequence[] ref = reference(seqs);
        String what = name + " " + shape + " TTV only seed=" + seed;
        try (TransPruneSession s = TransPrune.open(device, seqs, TransPruneOptions.defaults().schedule(CUSTOM).ttvOnly(true))) {
            for (int stage = 0; stage < CUSTOM.stages(); stage++) {
                for (int sub = 0; sub < 3; sub++) {
                    HostTokens u = randomTokens(rnd, s.current(), shape.d(), DType.F32, false), v = randomTokens(rnd, s.current(), shape.d(), DType.F32, false);
                    s.addSubBlock(u, v);
                    for (int b = 0; b < ref.length; b++) ref[b].addSubBlock(u.set(b), v.set(b));
                }
                ImageSequences before = s.current();
                Selection sel = s.prune(null, null);
                checkStage(ref, before, sel, s.lastScores(), null, null, 1, 0, what + " stage " + stage);
            }
        }
    }

    /** Scores within tolerance, kept exactly where separated (else a valid top-k); then the reference keeps the same. */
    static void checkStage(TransPruneReference.Sequence[] ref, ImageSequences before, Selection sel, float[] scores, HostHeads q, HostHeads k,
                           double wTtv, double wIga, String what) {
        int[] rows = before.rowOffsets(), img = before.imageOffsets();
        for (int b = 0; b < ref.length; b++) {
            double[] want = ref[b].scores(q == null ? null : q.tokens(rows[b], rows[b + 1]), k == null ? null : k.tokens(rows[b], rows[b + 1]), wTtv, wIga);
            assertClose(want, Arrays.copyOfRange(scores, img[b], img[b + 1]), TOL, what + " scores of sequence " + b);
            int[] kept = sel.kept(b);
            int keep = kept.length;
            if (TransPruneReference.relativeGap(want, keep) > SEPARATED) {
                assertArrayEquals(TransPruneReference.topK(want, keep), kept, what + " sequence " + b + ": separated scores select identically");
            } else {
                double scale = Arrays.stream(want).map(Math::abs).max().orElse(1), worstKept = Double.POSITIVE_INFINITY, bestDropped = Double.NEGATIVE_INFINITY;
                boolean[] in = new boolean[want.length];
                for (int j : kept) in[j] = true;
                for (int j = 0; j < want.length; j++) {
                    if (in[j]) worstKept = Math.min(worstKept, want[j]);
                    else bestDropped = Math.max(bestDropped, want[j]);
                }
                assertTrue(worstKept >= bestDropped - TOL * scale, what + " sequence " + b + ": a near-tie top-k must still be a top-k");
            }
            ref[b].keep(kept);
        }
    }

    static TransPruneReference.Sequence[] reference(ImageSequences seqs) {
        TransPruneReference.Sequence[] ref = new TransPruneReference.Sequence[seqs.sets()];
        for (int b = 0; b < ref.length; b++) ref[b] = new TransPruneReference.Sequence(seqs.length(b), seqs.imageStart(b), seqs.imageCount(b));
        return ref;
    }

    static double[] referenceTtv(TransPruneReference.Sequence[] ref) {
        return Arrays.stream(ref).flatMapToDouble(r -> Arrays.stream(r.accumulated())).toArray();
    }

    static float[] gaussian(Random rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) rnd.nextGaussian();
        return x;
    }

    /** Gaussian tokens over every row of seqs; strided: row stride d + 3 (unaligned rows). */
    static HostTokens randomTokens(Random rnd, ImageSequences seqs, int d, DType dtype, boolean strided) {
        TokenLayout layout = seqs.layout(d);
        if (strided) layout = layout.withRowStride(d + 3);
        float[] x = gaussian(rnd, (int) layout.requiredElements());
        return switch (dtype) {
            case F32 -> HostTokens.of(x, layout);
            case F16 -> HostTokens.of(Fp16.fromFloats(x), dtype, layout);
            case BF16 -> HostTokens.of(Bf16.fromFloats(x), dtype, layout);
        };
    }

    /** Gaussian heads; strided: a head-major [heads][tokens][dh] tensor (token stride dh). */
    static HostHeads randomHeads(Random rnd, int tokens, int heads, int dh, DType dtype, boolean strided) {
        HeadLayout layout = strided ? new HeadLayout(tokens, heads, dh, dh, (long) tokens * dh + 5) : HeadLayout.packed(tokens, heads, dh);
        float[] x = gaussian(rnd, (int) layout.requiredElements());
        return switch (dtype) {
            case F32 -> HostHeads.of(x, layout);
            case F16 -> HostHeads.of(Fp16.fromFloats(x), dtype, layout);
            case BF16 -> HostHeads.of(Bf16.fromFloats(x), dtype, layout);
        };
    }

    /** |got - want| <= tol * max |want| + 1e-7, element by element. */
    static void assertClose(double[] want, float[] got, double tol, String what) {
        assertEquals(want.length, got.length, what + ": length");
        double scale = Arrays.stream(want).map(Math::abs).max().orElse(0);
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs(got[i] - want[i]);
            if (err > tol * scale + 1e-7) throw new AssertionError(what + ": [" + i + "] expected " + want[i] + " got " + got[i] + " (error " + err + ")");
        }
    }
}
