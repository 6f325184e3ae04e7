package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.reference.KvCompactionReference;
import tokenprune.reference.PagedEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * PagedEvictionPrefill (token scores -> PE-REF step 4 keep -> out-of-place compaction into fresh
 * blocks, all layers) against PagedEvictionReference.prefillKeep + KvCompactionReference: PE-4 by hand
 * (stored order and kv_len, per-layer sets), random ragged batches (L <= C, L = C, L = C + 1, r = 0,
 * every layout and dtype), and NaN rejection with the destination blocks untouched.
 */
class PagedEvictionPrefillTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void pe4StoredOrderAndKvLen(String deviceName) {
        // metric V with one head and v = (score, 0): the token score is the score; k = (position, 1) stamps the origin
        float[] mid = {5, 1, 9, 2, 8, 3, 7, 4, 0.5f, 6, 0.1f, 10};
        int b = 4, budget = 12;
        int[] lens = {22, 12, 5};
        int[] srcTables = {0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, -1, 9, 19, -1, -1, -1, -1};  // stride 6
        int[] dstTables = {17, 11, 14, 10, 12, 13, 15, -1, 16, 18, -1, -1};                // stride 4 (14 tokens need 4)
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, DType.F32, 20, b, 1, 2);
        Object[] caches = new Object[2];
        for (int l = 0; l < 2; l++) {
            float[] c = new float[(int) layout.elements()];
            for (int s = 0; s < lens.length; s++)
                for (int t = 0; t < lens[s]; t++) {
                    int p = srcTables[s * 6 + t / b];
                    float score = s == 0 && t >= 4 && t < 16 ? (l == 0 ? mid[t - 4] : mid[15 - t]) : 100;
                    c[(int) layout.offset(0, p, t % b, 0, 0)] = t;
                    c[(int) layout.offset(0, p, t % b, 0, 1)] = 1;
                    c[(int) layout.offset(1, p, t % b, 0, 0)] = score;
                }
            caches[l] = c;
        }
        KvScoreOptions metricV = KvScoreOptions.of(KvScoreOptions.Metric.V);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            PagedEvictionPrefill.Result r = PagedEvictionPrefill.prefill(device, layout, caches, metricV, srcTables, 6, lens, budget, dstTables, 4);
            assertArrayEquals(new int[] {14, 12, 5}, r.kvLen(), "kv_len = C + r, L = C, L < C");
            int[][] want0 = {{0, 1, 2, 3, 6, 8, 10, 15, 16, 17, 18, 19, 20, 21}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {0, 1, 2, 3, 4}};
            // layer 1 mirrors the middle scores: kept middle = the mirror images 4, 9, 11, 13
            int[] want1 = {0, 1, 2, 3, 4, 9, 11, 13, 16, 17, 18, 19, 20, 21};
            for (int l = 0; l < 2; l++)
                for (int s = 0; s < lens.length; s++) {
                    float[] c = (float[]) r.caches()[l];
                    int[] got = new int[r.kvLen()[s]];
                    for (int i = 0; i < got.length; i++) got[i] = (int) c[(int) layout.offset(0, dstTables[s * 4 + i / b], i % b, 0, 0)];
                    assertArrayEquals(l == 1 && s == 0 ? want1 : want0[s], got, "PE-4 layer " + l + " prompt " + s);
                }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomPromptsMatchTheReference(String deviceName) {
        Random rnd = new Random(0x9EF1C0);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int it = 0;
            for (KvLayout.Kind kind : KvLayout.Kind.values()) {
                for (DType dtype : DType.values()) {
                    it++;
                    int b = new int[] {1, 3, 4, 16}[rnd.nextInt(4)];
                    int budget = b * (3 + rnd.nextInt(5));
                    int heads = 1 + rnd.nextInt(3), d = new int[] {2, 8, 5}[rnd.nextInt(3)], layers = 1 + rnd.nextInt(3);
                    int seqs = 1 + rnd.nextInt(5);
                    int[] lens = new int[seqs];
                    for (int s = 0; s < seqs; s++) {
                        int kindOfLen = rnd.nextInt(5);
                        lens[s] = switch (kindOfLen) {
                            case 0 -> rnd.nextInt(budget + 1);          // L <= C
                            case 1 -> budget + 1;                        // L = C + 1
                            case 2 -> budget + b * (1 + rnd.nextInt(4)); // r = 0
                            default -> budget + 1 + rnd.nextInt(4 * budget);
                        };
                    }
                    int[] kv = PagedEvictionPrefill.keptLengths(lens, budget, b);
                    int srcW = 1, dstW = 1, need = 0;
                    for (int s = 0; s < seqs; s++) {
                        srcW = Math.max(srcW, (lens[s] + b - 1) / b);
                        dstW = Math.max(dstW, (kv[s] + b - 1) / b);
                        need += (lens[s] + b - 1) / b + (kv[s] + b - 1) / b;
                    }
                    int numBlocks = need + 2;
                    Integer[] pool = new Integer[numBlocks];
                    for (int p = 0; p < numBlocks; p++) pool[p] = p;
                    java.util.Collections.shuffle(Arrays.asList(pool), rnd);
                    int next = 0;
                    int[] src = new int[seqs * srcW], dst = new int[seqs * dstW];
                    Arrays.fill(src, -1);
                    Arrays.fill(dst, -1);
                    for (int s = 0; s < seqs; s++) {
                        for (int j = 0; j < (lens[s] + b - 1) / b; j++) src[s * srcW + j] = pool[next++];
                        for (int j = 0; j < (kv[s] + b - 1) / b; j++) dst[s * dstW + j] = pool[next++];
                    }
                    KvLayout layout = KvLayout.of(kind, dtype, numBlocks, b, heads, TestLayouts.headDim(kind, dtype, d));
                    Object[] caches = new Object[layers];
                    for (int l = 0; l < layers; l++) caches[l] = KvCompactionKernelTest.randomData(dtype, (int) layout.elements(), rnd);
                    KvScoreOptions options = KvScoreOptions.defaults();
                    PagedEvictionPrefill.Result got = PagedEvictionPrefill.prefill(device, layout, caches, options, src, srcW, lens, budget, dst, dstW);
                    assertArrayEquals(kv, got.kvLen());
                    String msg = deviceName + " it " + it + " " + layout + " C " + budget + " lens " + Arrays.toString(lens);
                    for (int l = 0; l < layers; l++) {
                        // the selection runs on the kernel's fp32 scores (same kernel as the pipeline's first step)
                        float[] scores = KvTokenScores.score(device, layout, caches[l], src, srcW, new int[seqs], lens, options);
                        int[] keepOffsets = new int[seqs + 1];
                        int[] keep = new int[Arrays.stream(kv).sum()];
                        int at = 0;
                        for (int s = 0; s < seqs; s++) {
                            double[] x = new double[lens[s]];
                            for (int t = 0; t < lens[s]; t++) x[t] = scores[at + t];
                            at += lens[s];
                            int[] k = PagedEvictionReference.prefillKeep(x, budget, b);
                            System.arraycopy(k, 0, keep, keepOffsets[s], k.length);
                            keepOffsets[s + 1] = keepOffsets[s] + k.length;
                        }
                        KvCompactionReference.Result want = KvCompactionReference.compact(layout, caches[l], null, src, srcW, dst, dstW, keepOffsets, keep,
                                false, null, 0, 1, false);
                        KvCompactionKernelTest.assertClose(want.cache(), got.caches()[l], dtype, true, msg + " layer " + l);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void nanKeyIsRejectedWithTheDestinationUntouched(String deviceName) {
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.F32, 12, 4, 2, 4);
        Random rnd = new Random(3);
        float[][] data = new float[2][];
        for (int l = 0; l < 2; l++) data[l] = (float[]) KvCompactionKernelTest.randomData(DType.F32, (int) layout.elements(), rnd);
        data[1][(int) layout.offset(0, 5, 2, 1, 3)] = Float.NaN;  // layer 1, prompt 0's token 22 (block 5)
        int[] src = {0, 1, 2, 3, 4, 5, 6, -1};  // one prompt of 25 tokens, stride 8
        int[] dst = {7, 8, 9, 10};              // C + r = 12 + 1 = 13 tokens
        try (KernelDevice device = TestDevices.open(deviceName)) {
            assertThrows(IllegalArgumentException.class, () -> PagedEvictionPrefill.prefill(device, layout, new Object[] {data[0], data[1]},
                    KvScoreOptions.defaults(), src, 8, new int[] {25}, 12, dst, 4));
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer c0 = device.alloc(layout.bytes());
                 DeviceBuffer c1 = device.alloc(layout.bytes());
                 DeviceBuffer s = device.alloc(4L * src.length);
                 DeviceBuffer t = device.alloc(4L * dst.length)) {
                device.upload(data[0], c0, stream);
                device.upload(data[1], c1, stream);
                device.upload(src, s, stream);
                device.upload(dst, t, stream);
                PagedEvictionPrefill.Queued q = PagedEvictionPrefill.prefillOnDevice(layout, new DeviceBuffer[] {c0, c1}, KvScoreOptions.defaults(), s, 8,
                        new int[] {25}, 12, t, 4, ws, stream);
                assertThrows(IllegalArgumentException.class, q.pending()::await);
                float[] after0 = new float[data[0].length], after1 = new float[data[1].length];
                device.download(c0, after0, stream);
                device.download(c1, after1, stream);
                stream.synchronize();
                assertArrayEquals(data[0], after0, "layer 0 untouched");
                assertArrayEquals(data[1], after1, "layer 1 untouched");
            }
            assertThrows(IllegalArgumentException.class, () -> PagedEvictionPrefill.prefill(device, layout, new Object[] {data[0]},
                    KvScoreOptions.defaults(), src, 8, new int[] {25}, 10, dst, 4), "budget not a multiple of B");
            assertThrows(IllegalArgumentException.class, () -> PagedEvictionPrefill.prefill(device, layout, new Object[] {data[0]},
                    KvScoreOptions.defaults(), src, 8, new int[] {25}, 12, new int[] {7, 8, 9}, 3), "too few destination blocks");
        }
    }
}
