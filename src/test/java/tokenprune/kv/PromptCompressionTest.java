package tokenprune.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.methods.DType;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.AttentionScoresReference;
import tokenprune.reference.PromptCompressionReference;
import tokenprune.testing.TestDevices;

/**
 * One-shot prompt compression (PromptCompression: per layer scores + keep, then one compaction) against
 * PromptCompressionReference on random prompts over the 4 layouts x 3 dtypes: SnapKV windows and A2SF
 * weights, per-head and shared sets, both tie rules, prompts under and over the budget. Queries are the
 * unit vector e0 and key j's first component a distinct multiple of 0.05 (per layer and head), so every
 * candidate's score is exp(k_j0 · scale) times a factor common to the row: the selection is well
 * separated and compared exactly (the compacted caches bit for bit). A rejected call writes nothing.
 */
class PromptCompressionTest {
    static java.util.stream.Stream<String> devices() {
        return TestDevices.kernelDevices();
    }

    static Object encode(DType dtype, float[] f) {
        return switch (dtype) {
            case F32 -> f;
            case F16 -> Fp16.fromFloats(f);
            case BF16 -> Bf16.fromFloats(f);
        };
    }

    static final class Prompts {
        KvLayout layout;
        int[] kvLens, tables, rowOffsets, positions;
        int stride, heads, layers;
        Object[] caches, queries;
        float[][] lse;
        float[] weights;
        float scale;
    }

    static Prompts random(Random rnd, KvLayout.Kind kind, DType dtype, int window, boolean sharedKeys, boolean a2sf) {
        Prompts p = new Prompts();
        int b = 1 + rnd.nextInt(8), kvHeads = 1 + rnd.nextInt(2), group = 1 + rnd.nextInt(2), d = 2 + rnd.nextInt(9), seqs = 1 + rnd.nextInt(3);
        d = TestLayouts.headDim(kind, dtype, d);
        p.heads = kvHeads * group;
        p.layers = 1 + rnd.nextInt(2);
        p.kvLens = new int[seqs];
        int need = 0;
        for (int s = 0; s < seqs; s++) {
            p.kvLens[s] = 1 + rnd.nextInt(40);
            p.stride = Math.max(p.stride, (p.kvLens[s] + b - 1) / b);
            need += (p.kvLens[s] + b - 1) / b;
        }
        int numBlocks = need + 2;
        List<Integer> pool = new ArrayList<>();
        for (int i = 0; i < numBlocks; i++) pool.add(i);
        Collections.shuffle(pool, rnd);
        p.tables = new int[seqs * p.stride];
        int next = 0;
        for (int s = 0; s < seqs; s++) for (int j = 0; j < (p.kvLens[s] + b - 1) / b; j++) p.tables[s * p.stride + j] = pool.get(next++);
        p.layout = KvLayout.of(kind, dtype, numBlocks, b, kvHeads, d);
        p.scale = (float) (1 / Math.sqrt(d));
        // rows: the last `window` positions of every prompt (SnapKV's observation window)
        p.rowOffsets = new int[seqs + 1];
        List<Integer> pos = new ArrayList<>();
        for (int s = 0; s < seqs; s++) {
            int w = Math.min(window, p.kvLens[s]);
            for (int r = p.kvLens[s] - w; r < p.kvLens[s]; r++) pos.add(r);
            p.rowOffsets[s + 1] = p.rowOffsets[s] + w;
        }
        p.positions = pos.stream().mapToInt(Integer::intValue).toArray();
        int rows = p.positions.length;
        if (a2sf) {
            p.weights = new float[rows];
            for (int s = 0; s < seqs; s++) {
                float[] w = A2sf.oneShotWeights(p.rowOffsets[s + 1] - p.rowOffsets[s], 0.9f);
                System.arraycopy(w, 0, p.weights, p.rowOffsets[s], w.length);
            }
        }
        p.caches = new Object[p.layers];
        p.queries = new Object[p.layers];
        p.lse = new float[p.layers][];
        for (int l = 0; l < p.layers; l++) {
            float[] c = new float[(int) p.layout.elements()];
            for (int i = 0; i < c.length; i++) c[i] = (float) rnd.nextGaussian();
            for (int s = 0; s < seqs; s++) {
                List<Integer> perm = new ArrayList<>();
                for (int j = 0; j < p.kvLens[s]; j++) perm.add(j);
                Collections.shuffle(perm, rnd);
                for (int h = 0; h < kvHeads; h++) {
                    if (!sharedKeys && h > 0) Collections.shuffle(perm, rnd);
                    for (int j = 0; j < p.kvLens[s]; j++)
                        c[(int) p.layout.offset(0, p.tables[s * p.stride + j / b], j % b, h, 0)] = 0.05f * (perm.get(j) + 1);
                }
            }
            p.caches[l] = encode(dtype, c);
            float[] q = new float[rows * p.heads * d];
            for (int i = 0; i < rows * p.heads; i++) q[i * d] = 1;
            p.queries[l] = encode(dtype, q);
            double[] lse = AttentionScoresReference.lse(p.layout, p.caches[l], p.tables, p.stride, p.kvLens, p.queries[l], p.heads, p.rowOffsets, p.positions,
                    p.scale);
            p.lse[l] = new float[lse.length];
            for (int i = 0; i < lse.length; i++) p.lse[l][i] = (float) lse[i];
        }
        return p;
    }

    record Run(Object[] caches, int[] kvLen) {
    }

    static Run runOnDevice(KernelDevice device, Prompts p, KvKeepSelect.Policy policy) {
        Stream stream = device.defaultStream();
        DeviceBuffer[] queries = new DeviceBuffer[p.layers];
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer tables = device.alloc(4L * p.tables.length);
             DeviceBuffer weights = device.alloc(4L * Math.max(1, p.positions.length));
             HostLayers caches = HostLayers.caches(device, p.layout, p.caches, stream);
             HostLayers lse = HostLayers.states(device, p.lse, stream)) {
            try {
                for (int l = 0; l < p.layers; l++) {
                    queries[l] = device.alloc(Math.max(4, (long) p.positions.length * p.heads * p.layout.headDim() * p.layout.dtype().bytes()));
                    if (p.layout.dtype() == DType.F32) device.upload((float[]) p.queries[l], queries[l], stream);
                    else device.upload((short[]) p.queries[l], queries[l], stream);
                }
                device.upload(p.tables, tables, stream);
                if (p.weights != null) device.upload(p.weights, weights, stream);
                PromptCompression.Queued q = PromptCompression.compressOnDevice(p.layout, caches.buffers, tables, p.stride, p.kvLens, p.heads, queries,
                        lse.buffers, p.rowOffsets, p.positions, p.weights != null ? weights : null, p.scale, policy, ws, stream);
                q.pending().await();
                return new Run(caches.downloadCaches(p.layout, stream), q.kvLen());
            } finally {
                for (DeviceBuffer b : queries) if (b != null) b.close();
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void randomPromptsMatchTheReference(String deviceName) {
        Random rnd = new Random(0x5A4C);
        int compressed = 0;
        try (KernelDevice device = TestDevices.open(deviceName)) {
            int kinds = KvLayout.Kind.values().length;
            for (int iter = 0; iter < 6 * kinds; iter++) {  // every kind with every dtype twice
                KvLayout.Kind kind = KvLayout.Kind.values()[iter % kinds];
                DType dtype = DType.values()[(iter / kinds) % 3];
                int window = 1 + rnd.nextInt(4), sinks = rnd.nextInt(3);
                boolean shared = iter % 3 == 2, a2sf = iter % 2 == 1;
                // recent >= window: every window row sees every candidate, so the ranking is the keys' first components
                KvKeepSelect.Policy policy = shared ? KvKeepSelect.Policy.shared(sinks, window, sinks + window + 1 + rnd.nextInt(12))
                        : KvKeepSelect.Policy.perHead(sinks, window, sinks + window + 1 + rnd.nextInt(12));
                if (a2sf) policy = policy.withTies(KvKeepSelect.Ties.LATER_KEPT);
                Prompts p = random(rnd, kind, dtype, window, shared, a2sf);
                Run got = runOnDevice(device, p, policy);
                PromptCompressionReference.Result want = PromptCompressionReference.compress(p.layout, p.caches, p.tables, p.stride, p.kvLens, p.heads,
                        p.queries, p.lse, p.rowOffsets, p.positions, p.weights, p.scale, policy);
                String at = deviceName + " iter " + iter + " " + p.layout + " " + policy;
                assertArrayEquals(want.kvLen(), got.kvLen(), at + ": kv_len");
                for (int l = 0; l < p.layers; l++) {
                    if (dtype == DType.F32) assertArrayEquals((float[]) want.caches()[l], (float[]) got.caches()[l], at + " layer " + l);
                    else assertArrayEquals((short[]) want.caches()[l], (short[]) got.caches()[l], at + " layer " + l);
                }
                for (int s = 0; s < p.kvLens.length; s++) if (p.kvLens[s] > policy.budget()) compressed++;
            }
        }
        assertTrue(compressed >= 15, "prompts compressed " + compressed);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("devices")
    void aRejectedCallWritesNoLayer(String deviceName) {
        Random rnd = new Random(11);
        Prompts drawn;
        do {
            drawn = random(rnd, KvLayout.Kind.FLASH_ATTENTION, DType.F32, 2, false, false);
        } while (drawn.layers < 2 || drawn.kvLens[0] < 6);
        Prompts p = drawn;
        p.lse[1][0] = Float.NaN;  // layer 1's first row
        KvKeepSelect.Policy policy = KvKeepSelect.Policy.perHead(1, 2, 4);
        Prompts bad = p;
        try (KernelDevice device = TestDevices.open(deviceName)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> runOnDevice(device, bad, policy));
            assertTrue(e.getMessage().startsWith("queries, lse"), e.getMessage());
        }
        // the same call checked on the stream: no layer of the cache changed
        try (KernelDevice device = TestDevices.open(deviceName);
             Workspace ws = new Workspace(device, device.defaultStream());
             DeviceBuffer c0 = device.alloc(p.layout.bytes());
             DeviceBuffer c1 = device.alloc(p.layout.bytes());
             DeviceBuffer q = device.alloc(4L * p.positions.length * p.heads * p.layout.headDim());
             DeviceBuffer l0 = device.alloc(4L * p.lse[0].length);
             DeviceBuffer l1 = device.alloc(4L * p.lse[1].length);
             DeviceBuffer t = device.alloc(4L * p.tables.length)) {
            Stream stream = ws.stream();
            device.upload((float[]) p.caches[0], c0, stream);
            device.upload((float[]) p.caches[1], c1, stream);
            device.upload((float[]) p.queries[0], q, stream);
            device.upload(p.lse[0], l0, stream);
            device.upload(p.lse[1], l1, stream);
            device.upload(p.tables, t, stream);
            PromptCompression.Queued queued = PromptCompression.compressOnDevice(p.layout, new DeviceBuffer[] {c0, c1}, t, p.stride, p.kvLens, p.heads,
                    new DeviceBuffer[] {q, q}, new DeviceBuffer[] {l0, l1}, p.rowOffsets, p.positions, null, p.scale, policy, ws, stream);
            assertThrows(IllegalArgumentException.class, queued.pending()::await);
            float[] a0 = new float[(int) p.layout.elements()], a1 = new float[(int) p.layout.elements()];
            device.download(c0, a0, stream);
            device.download(c1, a1, stream);
            stream.synchronize();
            assertArrayEquals((float[]) p.caches[0], a0, "layer 0 untouched");
            assertArrayEquals((float[]) p.caches[1], a1, "layer 1 untouched");
            assertThrows(IllegalArgumentException.class, () -> PromptCompression.compressOnDevice(p.layout, new DeviceBuffer[] {c0, c1}, t, p.stride,
                    p.kvLens, p.heads, new DeviceBuffer[] {q}, new DeviceBuffer[] {l0, l1}, p.rowOffsets, p.positions, null, p.scale, policy, ws, stream));
        }
    }
}
