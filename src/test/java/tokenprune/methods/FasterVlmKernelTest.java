package tokenprune.methods;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.FasterVlmReference;
import tokenprune.testing.RandomTokens;
import tokenprune.testing.TestDevices;

/**
 * FasterVLM's two kernels (CLS-row scores + shared top-k) against the float64 reference, on the
 * simulator under two schedules and on the GPU when present.
 *
 * <p>Scores: every kernel score within {@link #REL} (relative) of the reference. The kernel computes
 * fp32 logits (exact products of the inputs, fp32 sums), a max-subtracted fp32 softmax and an fp32
 * head mean. The dominant error is the fp32 rounding of the logit sums: an absolute logit error
 * becomes the same relative error of exp, so it grows with the logits' size (here up to ~8, q
 * scaled by 2.5 for attention peakier than unit logits); then expf (at most 2 ulp on the GPU,
 * glibc's in the simulator) and the tree sums over N tokens and H heads. Observed in the
 * simulator: at most 1.3e-6 (N = 577, dh = 72), typically 3e-7. Selections: equal to the
 * reference whenever the reference's cut gap exceeds twice the score error; otherwise every kept
 * score must be within that error of every dropped one.
 */
class FasterVlmKernelTest {
    static final double REL = 4e-6;

    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    /** (images, tokens, heads, headDim) */
    static final int[][] SHAPES = {
        {3, 2, 1, 1}, {3, 17, 16, 64}, {1, 577, 16, 64}, {3, 577, 1, 72}, {2, 17, 3, 72}, {3, 33, 16, 1}, {3, 17, 1, 64}};

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void scoresAndSelectionsOfAwkwardShapesMatchTheReference(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            long seed = 500;
            for (int[] shape : SHAPES) {
                int b = shape[0], n = shape[1], h = shape[2], dh = shape[3];
                Random rnd = new Random(++seed);
                ClsAttentionLayout layout = ClsAttentionLayout.dense(b, n, h, dh);
                float[] q = RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredQueryElements()));
                for (int i = 0; i < q.length; i++) q[i] *= 2.5f;  // peakier attention than unit logits
                float[] k = RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredKeyElements()));
                String what = deviceName + " B=" + b + " N=" + n + " H=" + h + " dh=" + dh + " seed=" + seed;
                checkAgainstReference(device, HostClsAttention.of(q, k, layout), what);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void halfPrecisionInputsMatchTheReferenceOnTheRoundedValues(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            for (DType dtype : new DType[] {DType.F16, DType.BF16}) {
                for (int[] shape : new int[][] {{3, 17, 16, 64}, {2, 40, 3, 72}, {3, 9, 2, 1}}) {
                    int b = shape[0], n = shape[1], h = shape[2], dh = shape[3];
                    Random rnd = new Random(dtype.ordinal() * 100 + n);
                    ClsAttentionLayout layout = ClsAttentionLayout.dense(b, n, h, dh);
                    float[] q = RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredQueryElements()));
                    for (int i = 0; i < q.length; i++) q[i] *= 2.5f;
                    float[] k = RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredKeyElements()));
                    short[] qb = dtype == DType.F16 ? Fp16.fromFloats(q) : Bf16.fromFloats(q);
                    short[] kb = dtype == DType.F16 ? Fp16.fromFloats(k) : Bf16.fromFloats(k);
                    checkAgainstReference(device, HostClsAttention.of(qb, kb, dtype, layout), deviceName + " " + dtype + " B=" + b + " N=" + n);
                }
            }
        }
    }

    /** FV-1 and FV-2 through the kernels: keys ln P (dh = 1, q = 1, scale 1) give the published probabilities, halved. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void handCheckableCases(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            HostClsAttention fv1 = fv1Input();
            FasterVlmOptions o3 = FasterVlmOptions.keep(3).withScale(1f);
            assertArrayEquals(new int[] {1, 3, 4}, FasterVlm.select(device, fv1, o3).kept(0), "FV-1 T = 3");
            assertArrayEquals(new int[] {1, 3, 4, 5}, FasterVlm.select(device, fv1, FasterVlmOptions.keep(4).withScale(1f)).kept(0), "FV-1 T = 4");
            float[] s = FasterVlm.scores(device, fv1, 1f)[0];
            double[] want = {0.0625, 0.125, 0.03125, 0.125, 0.09375, 0.078125};
            for (int j = 0; j < 6; j++) assertEquals(want[j], s[j], 2e-7, "FV-1 score of patch " + j);

            // FV-2 with an exact tie: patches 1 and 3 get identical keys in both heads, so equal scores bit for bit
            HostClsAttention tie = fv2Input();
            float[] t = FasterVlm.scores(device, tie, 1f)[0];
            assertEquals(t[1], t[3], 0f, "identical keys, identical scores");
            assertArrayEquals(new int[] {1}, FasterVlm.select(device, tie, FasterVlmOptions.keep(1).withScale(1f)).kept(0), "FV-2: lower index");
            assertArrayEquals(new int[] {1, 3}, FasterVlm.select(device, tie, FasterVlmOptions.keep(2).withScale(1f)).kept(0));

            // FV-4: two frames, one head, head-mean CLS attention [1,4,2,3]/10 and [5,1,3,1]/10 (halved, CLS takes 1/2)
            HostClsAttention fv4 = fv4Input();
            Selection v = FasterVlm.select(device, fv4, FasterVlmOptions.keep(2).withScale(1f));
            assertArrayEquals(new int[] {1, 3}, v.kept(0));
            assertArrayEquals(new int[] {0, 2}, v.kept(1));
            assertArrayEquals(new int[] {1, 3, 4, 6}, FasterVlm.concatenatedRows(v, 4));
        }
    }

    /** A LLaVA-NeXT anyres request end to end: base + 2 x 2 crops of CLIP-L/336 (577 tokens, 16 heads x 64, fp16), T = 29. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void anyresRequestAtFullSize(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            ClsAttentionLayout layout = ClsAttentionLayout.dense(5, 577, 16, 64);
            Random rnd = new Random(2412);
            float[] q = RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredQueryElements()));
            for (int i = 0; i < q.length; i++) q[i] *= 2.5f;
            float[] k = RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredKeyElements()));
            HostClsAttention in = HostClsAttention.of(Fp16.fromFloats(q), Fp16.fromFloats(k), DType.F16, layout);
            Selection got = FasterVlm.select(device, in, FasterVlmOptions.keep(29));
            double[][] want = FasterVlmReference.scores(in, 0.125);
            int separated = 0;
            for (int b = 0; b < 5; b++) {
                double tol = 2 * REL * Arrays.stream(want[b]).max().getAsDouble();
                if (FasterVlmReference.cutGap(want[b], 29) > tol) {
                    assertArrayEquals(FasterVlmReference.keep(want[b], 29), got.kept(b), "image " + b);
                    separated++;
                }
            }
            assertTrue(separated >= 4, "the seed should give separated cuts, got " + separated);
            int[] rows = FasterVlm.anyresTokenOrder(got, 0, 2, 2, 24);
            assertEquals(145, rows.length);
            assertArrayEquals(got.kept(0), Arrays.copyOf(rows, 29), "base image first");
        }
    }

    /** One kernel device vs another: the scores do not depend on the block or thread schedule, bit for bit. */
    @Test
    void scoresAreIndependentOfTheSchedule() {
        ClsAttentionLayout layout = ClsAttentionLayout.dense(3, 45, 5, 24);
        Random rnd = new Random(42);
        HostClsAttention in = HostClsAttention.of(RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredQueryElements())),
                RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredKeyElements())), layout);
        float[][] a, b;
        try (KernelDevice d = TestDevices.open("sim-in-order")) {
            a = FasterVlm.scores(d, in, 0.3f);
        }
        try (KernelDevice d = TestDevices.open("sim-random")) {
            b = FasterVlm.scores(d, in, 0.3f);
        }
        for (int i = 0; i < a.length; i++) assertArrayEquals(a[i], b[i], 0f, "image " + i);
    }

    /** Head-major keys, queries read from row 0 of a q_proj output, padding everywhere: the same bits as the dense layout. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void stridedLayoutsGiveTheSameScores(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int b = 3, n = 21, h = 4, dh = 12;
            ClsAttentionLayout dense = ClsAttentionLayout.dense(b, n, h, dh);
            Random rnd = new Random(7);
            float[] q = RandomTokens.gaussian(rnd, Math.toIntExact(dense.requiredQueryElements()));
            float[] k = RandomTokens.gaussian(rnd, Math.toIntExact(dense.requiredKeyElements()));
            // queries: [B][N][H][dh + 3] with the CLS query in token row 0; keys head-major [B][H][N][dh + 5] + 7 per image
            long qRow = (long) h * (dh + 3);
            long kImage = (long) h * n * (dh + 5) + 7;
            ClsAttentionLayout strided = dense.withQueryStrides(n * qRow, dh + 3).withKeyStrides(kImage, dh + 5, (long) n * (dh + 5));
            float[] qs = new float[Math.toIntExact(strided.requiredQueryElements())];
            float[] ks = new float[Math.toIntExact(strided.requiredKeyElements())];
            Arrays.fill(qs, Float.NaN);  // padding is never read
            Arrays.fill(ks, Float.NaN);
            for (int i = 0; i < b; i++) {
                for (int hh = 0; hh < h; hh++) {
                    for (int e = 0; e < dh; e++) qs[(int) strided.queryOffset(i, hh) + e] = q[(int) dense.queryOffset(i, hh) + e];
                    for (int t = 0; t < n; t++) {
                        for (int e = 0; e < dh; e++) ks[(int) strided.keyOffset(i, t, hh) + e] = k[(int) dense.keyOffset(i, t, hh) + e];
                    }
                }
            }
            float[][] want = FasterVlm.scores(device, HostClsAttention.of(q, k, dense), 0.25f);
            float[][] got = FasterVlm.scores(device, HostClsAttention.of(qs, ks, strided), 0.25f);
            for (int i = 0; i < b; i++) assertArrayEquals(want[i], got[i], 0f, deviceName + " image " + i);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void nonFiniteInputIsRejectedAndNothingIsWritten(String deviceName) {
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int b = 3, n = 10, h = 2, dh = 4;
            ClsAttentionLayout layout = ClsAttentionLayout.dense(b, n, h, dh);
            Random rnd = new Random(11);
            float[] q = RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredQueryElements()));
            float[] k = RandomTokens.gaussian(rnd, Math.toIntExact(layout.requiredKeyElements()));
            int at = (int) layout.keyOffset(2, 5, 1) + 3;
            k[at] = Float.NaN;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> FasterVlm.select(device, HostClsAttention.of(q, k, layout), FasterVlmOptions.keep(3)));
            assertTrue(e.getMessage().contains("key of image 2, token 5, head 1, element 3"), e.getMessage());
            k[at] = 0.5f;
            q[(int) layout.queryOffset(1, 0) + 2] = Float.NEGATIVE_INFINITY;
            e = assertThrows(IllegalArgumentException.class, () -> FasterVlm.scores(device, HostClsAttention.of(q, k, layout), 0.5f));
            assertTrue(e.getMessage().contains("query of image 1, head 0, element 2"), e.getMessage());
            q[(int) layout.queryOffset(1, 0) + 2] = 0.25f;

            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer qd = device.alloc(q.length * 4L);
                 DeviceBuffer kd = device.alloc(k.length * 4L);
                 DeviceBuffer kept = device.alloc(4L * b * 3);
                 DeviceBuffer mask = device.alloc((long) b * (n - 1))) {
                DeviceClsAttention in = new DeviceClsAttention(qd, kd, DType.F32, layout);
                FasterVlmOptions o = FasterVlmOptions.keep(3);
                int sentinel = 0x7b7b7b7b;
                for (int bad : new int[] {(int) layout.keyOffset(0, 0, 0), (int) layout.keyOffset(2, n - 1, h - 1) + dh - 1}) {
                    device.fill(kept, 0x7b, stream);
                    device.fill(mask, 0x7b, stream);
                    float[] kBad = k.clone();
                    kBad[bad] = Float.POSITIVE_INFINITY;
                    device.upload(q, qd, stream);
                    device.upload(kBad, kd, stream);
                    Pending p = FasterVlm.selectOnDevice(in, o, kept, mask, ws, stream);
                    IllegalArgumentException r = assertThrows(IllegalArgumentException.class, p::await);
                    assertTrue(r.getMessage().contains("queries/keys"), r.getMessage());
                    int[] got = new int[b * 3];
                    device.download(kept, got, stream);
                    int[] untouched = new int[b * 3];
                    Arrays.fill(untouched, sentinel);
                    assertArrayEquals(untouched, got, deviceName + ": kept untouched (bad element " + bad + ")");
                    byte[] m = new byte[b * (n - 1)];
                    device.download(mask, m, stream);
                    for (byte x : m) assertEquals(0x7b, x, "mask untouched");
                }

                // a finite input whose logit overflows fp32 is rejected too
                float[] qHuge = q.clone();
                Arrays.fill(qHuge, 1e30f);
                float[] kHuge = k.clone();
                Arrays.fill(kHuge, 1e30f);
                device.upload(qHuge, qd, stream);
                device.upload(kHuge, kd, stream);
                IllegalArgumentException r = assertThrows(IllegalArgumentException.class, FasterVlm.selectOnDevice(in, o, kept, null, ws, stream)::await);
                assertTrue(r.getMessage().contains("overflows"), r.getMessage());

                // the same workspace serves the next, valid call (fresh epoch, arrival tickets back at zero)
                device.upload(q, qd, stream);
                device.upload(k, kd, stream);
                for (int rep = 0; rep < 2; rep++) {
                    FasterVlm.selectOnDevice(in, o, kept, mask, ws, stream).await();
                    int[] got = new int[b * 3];
                    device.download(kept, got, stream);
                    Selection ref = FasterVlmReference.select(HostClsAttention.of(q, k, layout), 3, FasterVlmOptions.defaultScale(dh));
                    assertArrayEquals(ref.kept(), got, deviceName + " valid call " + rep + " after rejections");
                    byte[] m = new byte[b * (n - 1)];
                    device.download(mask, m, stream);
                    byte[] wantMask = new byte[b * (n - 1)];
                    for (int i = 0; i < b; i++) for (int j : ref.kept(i)) wantMask[i * (n - 1) + j] = 1;
                    assertArrayEquals(wantMask, m, deviceName + " keep mask");
                }
            }
        }
    }

    static void checkAgainstReference(KernelDevice device, HostClsAttention in, String what) {
        ClsAttentionLayout l = in.layout();
        float scale = FasterVlmOptions.defaultScale(l.headDim());
        double[][] want = FasterVlmReference.scores(in, scale);
        float[][] got = FasterVlm.scores(device, in, scale);
        double worst = 0;
        for (int b = 0; b < l.images(); b++) {
            for (int j = 0; j < l.patches(); j++) {
                double err = Math.abs(got[b][j] - want[b][j]) / want[b][j];
                worst = Math.max(worst, err);
                assertTrue(err <= REL, what + ": image " + b + " patch " + j + ": got " + got[b][j] + ", want " + want[b][j] + " (relative error " + err + ")");
            }
        }
        int patches = l.patches();
        for (int t : new int[] {1, Math.max(1, patches / 4), patches}) {
            Selection s = FasterVlm.select(device, in, FasterVlmOptions.keep(t));
            for (int b = 0; b < l.images(); b++) {
                int[] ref = FasterVlmReference.keep(want[b], t);
                int[] kept = s.kept(b);
                double gap = FasterVlmReference.cutGap(want[b], t);
                double tol = 2 * REL * Arrays.stream(want[b]).max().getAsDouble();
                if (gap > tol) {
                    assertArrayEquals(ref, kept, what + " T=" + t + " image " + b + ": separated scores must select identically");
                } else {  // a near-tie at the cut: any choice consistent with the fp32 error
                    boolean[] in2 = new boolean[patches];
                    for (int j : kept) in2[j] = true;
                    double minKept = Double.MAX_VALUE, maxDropped = -Double.MAX_VALUE;
                    for (int j = 0; j < patches; j++) {
                        if (in2[j]) minKept = Math.min(minKept, want[b][j]);
                        else maxDropped = Math.max(maxDropped, want[b][j]);
                    }
                    assertEquals(t, Arrays.stream(kept).distinct().count(), what + ": distinct");
                    assertTrue(minKept >= maxDropped - tol, what + " T=" + t + " image " + b + ": kept " + minKept + " < dropped " + maxDropped);
                }
            }
        }
        System.out.printf("FasterVlmKernelTest %s: worst relative score error %.2e%n", what, worst);
    }

    /** FV-1: q = 1, dh = 1, keys ln(P/2) per head, CLS taking the remaining mass. */
    static HostClsAttention fv1Input() {
        double[][] heads = {{2, 12, 2, 6, 10, 4}, {6, 4, 2, 10, 2, 6}};
        return fromPatchProbabilities(heads, 1 / 64.0);
    }

    /** FV-2 with an exact tie: patch 3 gets patch 1's probabilities in both heads (exactly equal keys). */
    static HostClsAttention fv2Input() {
        double[][] heads = {{2, 12, 2, 12, 10, 4}, {6, 4, 2, 4, 2, 6}};
        return fromPatchProbabilities(heads, 1 / 64.0);
    }

    static HostClsAttention fv4Input() {
        int n = 5;
        double[][] frames = {{1, 4, 2, 3}, {5, 1, 3, 1}};
        float[] k = new float[2 * n];
        for (int f = 0; f < 2; f++) {
            k[f * n] = (float) Math.log(0.5);
            for (int j = 0; j < 4; j++) k[f * n + 1 + j] = (float) Math.log(frames[f][j] / 20);
        }
        return HostClsAttention.of(new float[] {1, 1}, k, ClsAttentionLayout.dense(2, n, 1, 1));
    }

    private static HostClsAttention fromPatchProbabilities(double[][] heads, double unit) {
        int h = heads.length, n = heads[0].length + 1;
        float[] k = new float[n * h];
        for (int hh = 0; hh < h; hh++) {
            double mass = 0;
            for (int j = 0; j < n - 1; j++) {
                k[(1 + j) * h + hh] = (float) Math.log(heads[hh][j] * unit);
                mass += heads[hh][j] * unit;
            }
            k[hh] = (float) Math.log(1 - mass);
        }
        float[] q = new float[h];
        Arrays.fill(q, 1f);
        return HostClsAttention.of(q, k, ClsAttentionLayout.dense(1, n, h, 1));
    }
}
