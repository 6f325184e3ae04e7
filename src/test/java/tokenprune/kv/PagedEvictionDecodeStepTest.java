package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.PagedEviction.DecodeBatch;
import tokenprune.kv.PagedEviction.Decision;
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Bf16;
import tokenprune.reference.PagedEvictionReference;
import tokenprune.testing.TestDevices;

/**
 * PagedEviction.decodeStepOnDevice (per-layer token scores of the filled blocks read from paged
 * caches, then decide + apply, one epoch) against the reference: victims, tables and kv_len exactly
 * (the decision reads only cached scores), the newly cached block scores within fp32 tolerance of the
 * float64 PE-REF block score; and a NaN key in a filled block rejected with nothing changed.
 */
class PagedEvictionDecodeStepTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void chainedStepMatchesTheReference(String deviceName) {
        Random rnd = new Random(0x57E9);
        int b = 4, budget = 12, layers = 3, seqs = 6, width = budget / b + 2, numBlocks = 48;
        KvLayout layout = KvLayout.of(KvLayout.Kind.FLASH_INFER, DType.BF16, numBlocks, b, 2, 8);
        short[][] caches = new short[layers][];
        for (int l = 0; l < layers; l++) caches[l] = (short[]) KvTokenScoreKernelTest.randomCache(layout, rnd);
        int[] tables = KvTokenScoreKernelTest.tables(new int[] {16, 16, 12, 13, 16, 8}, b, width, numBlocks, rnd);
        for (int i = 0; i < tables.length; i++) if (tables[i] == -7) tables[i] = -1;
        int[] kv = {16, 16, 12, 13, 16, 8};
        long[] logical = {24, 40, 20, 21, 16, 8};
        boolean[] filled = {true, true, true, false, true, false};
        float[] scores = new float[layers * seqs * width];
        Arrays.fill(scores, Float.NaN);
        for (int l = 0; l < layers; l++)
            for (int s = 0; s < seqs; s++)
                for (int j = 0; j < (kv[s] + b - 1) / b - (filled[s] ? 1 : 0); j++) scores[(l * seqs + s) * width + j] = rnd.nextInt(3);
        try (KernelDevice device = TestDevices.open(deviceName)) {
            Stream stream = device.defaultStream();
            try (Workspace ws = new Workspace(device, stream);
                 DeviceBuffer c0 = device.alloc(layout.bytes()); DeviceBuffer c1 = device.alloc(layout.bytes()); DeviceBuffer c2 = device.alloc(layout.bytes());
                 DeviceBuffer t = device.alloc(4L * tables.length); DeviceBuffer sc = device.alloc(4L * scores.length);
                 DeviceBuffer kvD = device.alloc(4L * seqs); DeviceBuffer lg = device.alloc(8L * seqs);
                 DeviceBuffer victims = device.alloc(4L * seqs); DeviceBuffer freed = device.alloc(4L * seqs)) {
                DeviceBuffer[] layerCaches = {c0, c1, c2};
                for (int l = 0; l < layers; l++) device.upload(caches[l], layerCaches[l], stream);
                device.upload(PagedEviction.int64Words(logical), lg, stream);
                PagedEviction.DeviceState state = new PagedEviction.DeviceState(seqs, layers, b, budget, numBlocks, t, width, sc, kvD, lg);
                for (int round = 0; round < 2; round++) {  // the second round: a NaN key in sequence 4's filled block
                    short[] c = caches[1].clone();
                    if (round == 1) c[(int) layout.offset(0, tables[4 * width + 3], 2, 1, 5)] = Bf16.fromFloat(Float.NaN);
                    device.upload(c, c1, stream);
                    device.upload(tables, t, stream);
                    device.upload(scores, sc, stream);
                    device.upload(kv, kvD, stream);
                    var p = PagedEviction.decodeStepOnDevice(layout, layerCaches, KvScoreOptions.defaults(), state, kv, filled, PagedEvictionOptions.defaults(),
                            victims, freed, ws, stream);
                    int[] gotT = new int[tables.length], gotKv = new int[seqs], gotV = new int[seqs], gotF = new int[seqs];
                    float[] gotS = new float[scores.length];
                    if (round == 1) {
                        assertThrows(IllegalArgumentException.class, p::await, "NaN key in a filled block");
                        device.download(t, gotT, stream);
                        device.download(sc, gotS, stream);
                        device.download(kvD, gotKv, stream);
                        stream.synchronize();
                        assertArrayEquals(tables, gotT, "rejected: tables unchanged");
                        assertArrayEquals(scores, gotS, "rejected: scores unchanged");
                        assertArrayEquals(kv, gotKv, "rejected: kv_len unchanged");
                        continue;
                    }
                    p.await();
                    device.download(t, gotT, stream);
                    device.download(sc, gotS, stream);
                    device.download(kvD, gotKv, stream);
                    device.download(victims, gotV, stream);
                    device.download(freed, gotF, stream);
                    stream.synchronize();
                    int[] fillAt = new int[seqs];
                    int fills = 0;
                    for (int s = 0; s < seqs; s++) fillAt[s] = filled[s] ? fills++ : -1;
                    DecodeBatch batch = new DecodeBatch(seqs, layers, b, budget, numBlocks, tables, width, scores, kv, logical, fillAt, fills,
                            new float[layers * fills * b]);
                    Decision want = PagedEvictionReference.decodeStep(batch, PagedEvictionOptions.defaults());
                    assertArrayEquals(want.victims(), gotV, "victims");
                    assertEquals(3, Arrays.stream(gotV).filter(v -> v >= 0).count(), "sequences 0, 1 and 4 evict");
                    assertArrayEquals(want.freed(), gotF, "freed");
                    assertArrayEquals(want.blockTables(), gotT, "tables");
                    assertArrayEquals(want.kvLen(), gotKv, "kv_len");
                    for (int s = 0; s < seqs; s++) {
                        int last = gotKv[s] / b - 1;
                        for (int l = 0; l < layers; l++) {
                            for (int j = 0; j < width; j++) {
                                float w = want.blockScores()[(l * seqs + s) * width + j], g = gotS[(l * seqs + s) * width + j];
                                if (filled[s] && j == last) {
                                    int[] row = Arrays.copyOfRange(tables, s * width, (s + 1) * width);
                                    double ref = PagedEvictionReference.blockScore(PagedEvictionReference.tokenScores(layout, caches[l], row, kv[s] - b, kv[s],
                                            KvScoreOptions.defaults()));
                                    assertEquals(ref, g, 2e-5 * Math.abs(ref) + 1e-7, "new block score seq " + s + " layer " + l);
                                } else {
                                    assertEquals(Float.floatToIntBits(w), Float.floatToIntBits(g), "score seq " + s + " layer " + l + " block " + j);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
