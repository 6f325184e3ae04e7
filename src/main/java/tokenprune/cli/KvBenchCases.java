package tokenprune.cli;

import java.util.Arrays;
import java.util.List;
import java.util.Random;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kv.KvLayout;
import tokenprune.kv.KvScoreOptions;
import tokenprune.kv.KvTokenScores;
import tokenprune.kv.PagedEviction;
import tokenprune.kv.PagedEvictionOptions;
import tokenprune.methods.DType;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Bf16;
import tokenprune.numeric.Fp16;
import tokenprune.reference.PagedEvictionReference;

/**
 * The KV-cache bench ops, on a Llama-3.1-8B layer (8 KV heads of 128, block 16, 32 layers): N is the
 * context length (tokens held per sequence), B the number of sequences; D is fixed at H_kv·D = 1024.
 * <ul>
 * <li>{@code kv-score}: PagedEviction token scores (PE-REF step 1) of all N tokens of B sequences of
 * one layer, one launch; must-move bytes: K and V of every scored token plus the scores written.</li>
 * <li>{@code kv-decide}: the batched decode-time decision (PE-REF steps 2, 3, 5) for B sequences whose
 * newest block just filled at kv_len = C + B with C = N, over 32 layers' cached block scores, two
 * launches (decide, apply); must-move bytes: the block-score arrays (32 × B × (C/16 + 1) floats).
 * The state it mutates is restored from a pristine copy before each repetition, outside the timing
 * ({@link BenchCase#prepare}).</li>
 * </ul>
 */
final class KvBenchCases {
    static final List<String> OPS = List.of("kv-score", "kv-decide");
    static final int HEADS = 8, HEAD_DIM = 128, BLOCK = 16, LAYERS = 32;
    /** Larger caches are skipped (an H100 holds 80 GB). */
    static final long MAX_CACHE_BYTES = 36L << 30;
    /** Context lengths and batch sizes on a GPU when --n / --b are not given. */
    static final int[] GPU_N = {4096, 32768, 131072}, GPU_B = {1, 64};

    private KvBenchCases() {
    }

    /** Why a shape is not run, or null. */
    static String skipReason(String op, DType dtype, int b, int n) {
        if (op.equals("kv-score") && cacheBytes(dtype, b, n) > MAX_CACHE_BYTES)
            return "the cache of " + (cacheBytes(dtype, b, n) >> 20) + " MiB exceeds " + (MAX_CACHE_BYTES >> 20) + " MiB";
        return null;
    }

    static long cacheBytes(DType dtype, int b, int n) {
        return 2L * b * ((n + BLOCK - 1) / BLOCK) * BLOCK * HEADS * HEAD_DIM * dtype.bytes();
    }

    static BenchCase create(String op, Device device, Workspace ws, Stream stream, DType dtype, int b, int n) {
        KernelDevice kd = device instanceof KernelDevice k ? k : null;
        return switch (op) {
            case "kv-score" -> new ScoreCase(kd, device, ws, stream, dtype, b, n);
            case "kv-decide" -> new DecideCase(kd, device, ws, stream, b, n);
            default -> throw new IllegalStateException(op);
        };
    }

    /** Token scores of all N tokens of B sequences of one layer. */
    static final class ScoreCase extends BenchCase {
        private final Device device;
        private final Stream stream;
        private final KvLayout layout;
        private final int width;
        private final int[] tables, begin, end;
        private final KvScoreOptions options = KvScoreOptions.defaults();
        private DeviceBuffer cache, tablesD, beginD, offsetsD, scores, status;
        private Object hostCache;

        ScoreCase(KernelDevice kd, Device device, Workspace ws, Stream stream, DType dtype, int b, int n) {
            super("kv-score", dtype, b, n, HEADS * HEAD_DIM, 0);
            this.device = device;
            this.stream = stream;
            width = (n + BLOCK - 1) / BLOCK;
            layout = KvLayout.of(KvLayout.Kind.FLASH_ATTENTION, dtype, Math.multiplyExact(b, width), BLOCK, HEADS, HEAD_DIM);
            tables = new int[b * width];
            for (int i = 0; i < tables.length; i++) tables[i] = i;
            begin = new int[b];
            end = new int[b];
            Arrays.fill(end, n);
            int[] offsets = new int[b + 1];
            for (int s = 0; s < b; s++) offsets[s + 1] = offsets[s] + n;
            Random rnd = new Random(4096L + n);
            if (kd != null) {
                cache = alloc(kd, layout.bytes());
                fillRandom(kd, stream, cache, dtype, rnd);
                tablesD = alloc(kd, 4L * tables.length);
                kd.upload(tables, tablesD, stream);
                beginD = alloc(kd, 4L * b);
                kd.upload(begin, beginD, stream);
                offsetsD = alloc(kd, 4L * (b + 1));
                kd.upload(offsets, offsetsD, stream);
                scores = alloc(kd, 4L * b * n);
                status = ws.status().buffer();
            } else {
                float[] f = gaussian(rnd, Math.toIntExact(layout.elements()));
                hostCache = switch (dtype) {
                    case F32 -> f;
                    case F16 -> Fp16.fromFloats(f);
                    case BF16 -> Bf16.fromFloats(f);
                };
            }
            this.ws = ws;
        }

        private final Workspace ws;

        @Override
        long bytes() {
            return 2L * b * n * HEADS * HEAD_DIM * dtype.bytes() + 4L * b * n;
        }

        @Override
        double flops() {  // two squares-and-adds per element, a sqrt per head and K/V, the ratios
            return 4.0 * b * n * HEADS * HEAD_DIM;
        }

        @Override
        int launches() {
            return 1;
        }

        @Override
        Pending runOnDevice(int rep) {
            var st = ws.status();
            int epoch = st.nextEpoch(stream);
            KvTokenScores.enqueue((KernelDevice) device, stream, cache, layout, tablesD, width, b, beginD, offsetsD, b * n, options, scores, status, epoch);
            return Pending.of(st, epoch, stream, "cache: a scored token's key or value is NaN or infinite");
        }

        @Override
        void runOnHost() {
            for (int s = 0; s < b; s++)
                PagedEvictionReference.tokenScores(layout, hostCache, Arrays.copyOfRange(tables, s * width, (s + 1) * width), 0, n, options);
        }
    }

    /** Random values of the dtype: a random chunk of at most 16 MiB uploaded once and copied over the buffer. */
    static void fillRandom(KernelDevice kd, Stream stream, DeviceBuffer dst, DType dtype, Random rnd) {
        long total = dst.bytes(), chunk = Math.min(total, 16L << 20);
        float[] f = gaussian(rnd, Math.toIntExact(chunk / dtype.bytes()));
        DeviceBuffer head = dst.slice(0, chunk);
        switch (dtype) {
            case F32 -> kd.upload(f, head, stream);
            case F16 -> kd.upload(Fp16.fromFloats(f), head, stream);
            case BF16 -> kd.upload(Bf16.fromFloats(f), head, stream);
        }
        for (long off = chunk; off < total; off += chunk) {
            long len = Math.min(chunk, total - off);
            kd.copy(head, dst.slice(off, len), len, stream);
        }
    }

    static float[] gaussian(Random rnd, int count) {
        return BenchCase.gaussian(rnd, count);
    }

    /** The batched decode decision for B sequences at context N over 32 layers' block scores. */
    static final class DecideCase extends BenchCase {
        private final Stream stream;
        private final Workspace ws;
        private final PagedEviction.DecodeBatch batch;
        private final PagedEvictionOptions options = PagedEvictionOptions.defaults();
        private final int width;
        private DeviceBuffer tables, scores, kv, logical, fillAt, fillScores, victims, freed;
        private DeviceBuffer tables0, scores0, kv0;
        private PagedEviction.DeviceState state;

        DecideCase(KernelDevice kd, Device device, Workspace ws, Stream stream, int b, int n) {
            super("kv-decide", DType.F32, b, n, HEADS * HEAD_DIM, 0);
            this.stream = stream;
            this.ws = ws;
            int budget = Math.max(3 * BLOCK, (n + BLOCK - 1) / BLOCK * BLOCK);
            width = budget / BLOCK + 1;
            int numBlocks = Math.multiplyExact(b, width);
            Random rnd = new Random(7L * n + b);
            int[] t = new int[b * width];
            for (int i = 0; i < t.length; i++) t[i] = i;
            float[] sc = new float[LAYERS * b * width];
            for (int i = 0; i < sc.length; i++) sc[i] = i % width == width - 1 ? Float.NaN : 0.5f + rnd.nextFloat();
            int[] kvLen = new int[b], at = new int[b];
            long[] lg = new long[b];
            for (int s = 0; s < b; s++) {
                kvLen[s] = budget + BLOCK;
                lg[s] = budget + BLOCK + 7L * BLOCK;
                at[s] = s;
            }
            float[] fs = new float[LAYERS * b * BLOCK];
            for (int i = 0; i < fs.length; i++) fs[i] = 0.5f + rnd.nextFloat();
            batch = new PagedEviction.DecodeBatch(b, LAYERS, BLOCK, budget, numBlocks, t, width, sc, kvLen, lg, at, b, fs);
            if (kd != null) {
                tables = alloc(kd, 4L * t.length);
                tables0 = alloc(kd, 4L * t.length);
                scores = alloc(kd, 4L * sc.length);
                scores0 = alloc(kd, 4L * sc.length);
                kv = alloc(kd, 4L * b);
                kv0 = alloc(kd, 4L * b);
                logical = alloc(kd, 8L * b);
                fillAt = alloc(kd, 4L * b);
                fillScores = alloc(kd, 4L * fs.length);
                victims = alloc(kd, 4L * b);
                freed = alloc(kd, 4L * b);
                kd.upload(t, tables0, stream);
                kd.upload(sc, scores0, stream);
                kd.upload(kvLen, kv0, stream);
                kd.upload(PagedEviction.int64Words(lg), logical, stream);
                kd.upload(at, fillAt, stream);
                kd.upload(fs, fillScores, stream);
                state = new PagedEviction.DeviceState(b, LAYERS, BLOCK, budget, numBlocks, tables, width, scores, kv, logical);
            }
        }

        @Override
        void prepare(int rep) {
            if (state == null) return;
            KernelDevice kd = tables.device();
            kd.copy(tables0, tables, tables.bytes(), stream);
            kd.copy(scores0, scores, scores.bytes(), stream);
            kd.copy(kv0, kv, kv.bytes(), stream);
        }

        @Override
        long bytes() {  // the block-score arrays (every layer's row of every sequence) and the filled blocks' token scores
            return 4L * LAYERS * b * width + 4L * LAYERS * b * BLOCK;
        }

        @Override
        double flops() {
            return (double) LAYERS * b * width;
        }

        @Override
        int launches() {
            return 2;
        }

        @Override
        Pending runOnDevice(int rep) {
            return PagedEviction.decideOnDevice(state, fillScores, b, fillAt, options, victims, freed, ws, stream);
        }

        @Override
        void runOnHost() {
            PagedEvictionReference.decodeStep(batch, options);
        }
    }
}
