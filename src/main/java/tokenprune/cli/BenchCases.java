package tokenprune.cli;

import java.util.List;
import java.util.Random;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.methods.ClsAttentionLayout;
import tokenprune.methods.CosineDistance;
import tokenprune.methods.DType;
import tokenprune.methods.DeviceClsAttention;
import tokenprune.methods.DeviceTokens;
import tokenprune.methods.DivPrune;
import tokenprune.methods.DivPruneOptions;
import tokenprune.methods.FasterVlm;
import tokenprune.methods.FasterVlmOptions;
import tokenprune.methods.GatherTokens;
import tokenprune.methods.HostClsAttention;
import tokenprune.methods.HostTokens;
import tokenprune.methods.KeepRule;
import tokenprune.methods.Pending;
import tokenprune.methods.PositionIds;
import tokenprune.methods.Selection;
import tokenprune.methods.TokenLayout;
import tokenprune.methods.TopK;
import tokenprune.methods.Workspace;
import tokenprune.numeric.Fp16;

/** The operations {@code bench} knows, each built for one (dtype, B, N, D) on one device. */
final class BenchCases {
    static final List<String> OPS = List.of("cosine", "divprune", "topk", "gather", "fastervlm", "dart", "transprune");

    private BenchCases() {
    }

    /**
     * @param device a kernel device, or the cpu device (host calls)
     * @param ws the workspace shared by the cases (null on the cpu device)
     */
    static BenchCase create(String op, Device device, Workspace ws, Stream stream, DType dtype, int b, int n, int d) {
        KernelDevice kd = device instanceof KernelDevice k ? k : null;
        return switch (op) {
            case "cosine", "divprune" -> new DivPruneCase(op, kd, device, ws, stream, dtype, b, n, d);
            case "topk" -> new TopKCase(kd, device, ws, stream, b, n);
            case "gather" -> new GatherCase(kd, device, ws, stream, dtype, b, n, d);
            case "fastervlm" -> new FasterVlmCase(kd, device, ws, stream, dtype, b, n);
            case "transprune" -> new TransPruneCase(kd, device, ws, stream, dtype, b, n, d);
            case "dart" -> new DartCase(kd, device, ws, stream, dtype, b, n, d);
            default -> throw new UsageException("--ops: unknown op '" + op + "'; available: " + String.join(", ", OPS));
        };
    }

    /** Fused cosine distance (1 launch) or DivPrune (2 launches), k = round(0.098 N). */
    static final class DivPruneCase extends BenchCase {
        private final Device device;
        private final Workspace ws;
        private final Stream stream;
        private final TokenLayout layout;
        private final DivPruneOptions options = DivPruneOptions.ratio(DivPruneOptions.DEFAULT_RATIO);
        private List<DeviceBuffer> inputs;
        private DeviceBuffer dist, kept;
        private HostTokens host;

        DivPruneCase(String op, KernelDevice kd, Device device, Workspace ws, Stream stream, DType dtype, int b, int n, int d) {
            super(op, dtype, b, n, d, op.equals("divprune") ? DivPruneOptions.ratio(DivPruneOptions.DEFAULT_RATIO)
                    .keepOffsets(TokenLayout.uniform(1, n, d))[1] : 0);
            this.device = device;
            this.ws = ws;
            this.stream = stream;
            this.layout = TokenLayout.uniform(b, n, d);
            if (kd != null) {
                inputs = deviceTokens(kd, stream, layout, 31L * n + d);
                dist = alloc(kd, 4L * b * n * n);
                kept = alloc(kd, 4L * b * Math.max(1, k));
            } else {
                host = hostTokens(layout, new Random(31L * n + d));
            }
        }

        @Override
        long bytes() {  // read the tokens once, write the distances once (+ read k rows back)
            return (long) b * n * d * dtype.bytes() + 4L * b * n * n + 4L * b * k * n;
        }

        @Override
        double flops() {  // of a full Gram matrix; the kernels compute half and mirror it
            return 2.0 * b * (double) n * n * d;
        }

        @Override
        int launches() {
            return op.equals("divprune") ? 2 : 1;
        }

        @Override
        Pending runOnDevice(int rep) {
            DeviceTokens t = new DeviceTokens(inputs.get(rep % inputs.size()), dtype, layout);
            return op.equals("divprune") ? DivPrune.selectOnDevice(t, options, kept, null, ws, stream) : CosineDistance.computeOnDevice(t, dist, ws, stream);
        }

        @Override
        void runOnHost() {
            if (op.equals("divprune")) DivPrune.select(device, host, options);
            else CosineDistance.compute(device, host);
        }
    }

    /** The shared top-k over B rows of N scores, k = N / 8. */
    static final class TopKCase extends BenchCase {
        private final Device device;
        private final Workspace ws;
        private final Stream stream;
        private final int[] rowOffsets, keepOffsets;
        private List<DeviceBuffer> inputs;
        private DeviceBuffer kept;
        private float[] host;

        TopKCase(KernelDevice kd, Device device, Workspace ws, Stream stream, int b, int n) {
            super("topk", DType.F32, b, n, 1, Math.max(1, n / 8));
            this.device = device;
            this.ws = ws;
            this.stream = stream;
            rowOffsets = new int[b + 1];
            keepOffsets = new int[b + 1];
            for (int i = 0; i <= b; i++) {
                rowOffsets[i] = i * n;
                keepOffsets[i] = i * k;
            }
            if (kd != null) {
                inputs = deviceTokens(kd, stream, TokenLayout.uniform(1, b * n, 1), 7L * n);
                kept = alloc(kd, 4L * b * k);
            } else {
                host = gaussian(new Random(7L * n), b * n);
            }
        }

        @Override
        long bytes() {
            return 4L * b * n + 4L * b * k;
        }

        @Override
        double flops() {
            return 0;
        }

        @Override
        int launches() {
            return 1;
        }

        @Override
        Pending runOnDevice(int rep) {
            return TopK.selectOnDevice((KernelDevice) ws.device(), inputs.get(rep % inputs.size()), rowOffsets, keepOffsets, kept, null, ws, stream);
        }

        @Override
        void runOnHost() {
            TopK.select(device, host, rowOffsets, KeepRule.keep(k));
        }
    }

    /** Gather k = N / 8 kept rows of B x N x D hidden states with renumbered position ids. */
    static final class GatherCase extends BenchCase {
        private final Device device;
        private final Workspace ws;
        private final Stream stream;
        private final TokenLayout layout;
        private final int[] keepOffsets;
        private List<DeviceBuffer> inputs;
        private DeviceBuffer kept, out, positions;
        private HostTokens host;
        private Selection selection;

        GatherCase(KernelDevice kd, Device device, Workspace ws, Stream stream, DType dtype, int b, int n, int d) {
            super("gather", dtype, b, n, d, Math.max(1, n / 8));
            this.device = device;
            this.ws = ws;
            this.stream = stream;
            layout = TokenLayout.uniform(b, n, d);
            keepOffsets = new int[b + 1];
            int[] keptHost = new int[b * k];
            for (int i = 0; i <= b; i++) keepOffsets[i] = i * k;
            for (int i = 0; i < b * k; i++) keptHost[i] = (i % k) * 8;  // every 8th token
            selection = new Selection(keepOffsets, keptHost, null);
            if (kd != null) {
                inputs = deviceTokens(kd, stream, layout, 11L * n + d);
                kept = alloc(kd, 4L * b * k);
                kd.upload(keptHost, kept, stream);
                out = alloc(kd, (long) b * k * d * dtype.bytes());
                positions = alloc(kd, 4L * b * k);
            } else {
                host = hostTokens(layout, new Random(11L * n + d));
            }
        }

        @Override
        long bytes() {  // read the kept rows, write them packed, write the position ids
            return 2L * b * k * d * dtype.bytes() + 4L * b * k;
        }

        @Override
        double flops() {
            return 0;
        }

        @Override
        int launches() {
            return 1;
        }

        @Override
        Pending runOnDevice(int rep) {
            return GatherTokens.gatherOnDevice((KernelDevice) ws.device(), new DeviceTokens(inputs.get(rep % inputs.size()), dtype, layout),
                    keepOffsets, kept, out, d, positions, PositionIds.RENUMBERED, 0, ws, stream);
        }

        @Override
        void runOnHost() {
            GatherTokens.gather(device, host, selection, PositionIds.RENUMBERED, 0);
        }
    }

    /**
     * FasterVLM on CLIP ViT-L/14-336's select layer: B images (N = 577 tokens incl. CLS, 16 heads x
     * 64), keep T = 58 (90% pruned). The NeXT size is B x 5 images (base + 2 x 2 crops); the
     * bench's N selects between them: N >= 2340 means five images per request.
     */
    static final class FasterVlmCase extends BenchCase {
        static final int TOKENS = 577, HEADS = 16, HEAD_DIM = 64, KEEP = 58;
        private final Device device;
        private final Workspace ws;
        private final Stream stream;
        private final ClsAttentionLayout layout;
        private final FasterVlmOptions options = FasterVlmOptions.keep(KEEP);
        private List<DeviceBuffer> keys;
        private DeviceBuffer queries, kept;
        private HostClsAttention host;

        FasterVlmCase(KernelDevice kd, Device device, Workspace ws, Stream stream, DType dtype, int b, int n) {
            super("fastervlm", dtype == DType.BF16 ? DType.F16 : dtype, b * (n >= 2340 ? 5 : 1), TOKENS, HEADS * HEAD_DIM, KEEP);
            this.device = device;
            this.ws = ws;
            this.stream = stream;
            layout = ClsAttentionLayout.dense(this.b, TOKENS, HEADS, HEAD_DIM);
            Random rnd = new Random(577);
            float[] q = gaussian(rnd, this.b * HEADS * HEAD_DIM);
            if (kd != null) {
                long keyElements = (long) this.b * TOKENS * HEADS * HEAD_DIM;
                keys = deviceTokens(kd, stream, TokenLayout.uniform(1, Math.toIntExact(keyElements / HEAD_DIM), HEAD_DIM), 578);
                queries = alloc(kd, (long) q.length * this.dtype.bytes());
                if (this.dtype == DType.F32) kd.upload(q, queries, stream);
                else kd.upload(Fp16.fromFloats(q), queries, stream);
                kept = alloc(kd, 4L * this.b * KEEP);
            } else {
                float[] k = gaussian(rnd, this.b * TOKENS * HEADS * HEAD_DIM);
                host = this.dtype == DType.F32 ? HostClsAttention.of(q, k, layout)
                        : HostClsAttention.of(Fp16.fromFloats(q), Fp16.fromFloats(k), DType.F16, layout);
            }
        }

        @Override
        long bytes() {  // all keys once, the queries, the kept indices
            return (long) b * TOKENS * HEADS * HEAD_DIM * dtype.bytes() + (long) b * HEADS * HEAD_DIM * dtype.bytes() + 4L * b * KEEP;
        }

        @Override
        double flops() {
            return 2.0 * b * TOKENS * HEADS * HEAD_DIM;
        }

        @Override
        int launches() {
            return 2;
        }

        @Override
        Pending runOnDevice(int rep) {
            DeviceClsAttention in = new DeviceClsAttention(queries, keys.get(rep % keys.size()), dtype, layout);
            return FasterVlm.selectOnDevice(in, options, kept, null, ws, stream);
        }

        @Override
        void runOnHost() {
            FasterVlm.select(device, host, options);
        }
    }

    /**
     * One TransPrune pruning stage on B sequences of [35 prefix | N image | 60 text] tokens of D
     * features: the TTV of the pruning layer's two sub-blocks, then IGA (D / 128 heads of 128),
     * score, top-k and re-indexing, keeping int(0.875 N) (the default first stage).
     */
    static final class TransPruneCase extends BenchCase {
        static final int PREFIX = 35, TEXT = 60, HEAD_DIM = 128;
        private final Device device;
        private final Stream stream;
        private final tokenprune.methods.ImageSequences seqs;
        private final int heads, length;
        private final int[] keepCounts;
        private tokenprune.methods.TransPruneAccumulator acc;
        private List<DeviceBuffer> uv, qk;
        private DeviceBuffer kept;
        private float[] hostU, hostQ;

        TransPruneCase(KernelDevice kd, Device device, Workspace ws, Stream stream, DType dtype, int b, int n, int d) {
            super("transprune", dtype, b, n, d, (int) (n * 0.875));
            this.device = device;
            this.stream = stream;
            length = PREFIX + n + TEXT;
            heads = Math.max(1, d / HEAD_DIM);
            int[] lengths = new int[b], starts = new int[b], counts = new int[b];
            keepCounts = new int[b];
            java.util.Arrays.fill(lengths, length);
            java.util.Arrays.fill(starts, PREFIX);
            java.util.Arrays.fill(counts, n);
            java.util.Arrays.fill(keepCounts, k);
            seqs = tokenprune.methods.ImageSequences.of(lengths, starts, counts);
            TokenLayout rows = TokenLayout.uniform(1, b * length, d);
            if (kd != null) {
                acc = tokenprune.methods.TransPrune.begin(ws, stream, seqs, tokenprune.methods.TransPruneOptions.defaults());
                uv = deviceTokens(kd, stream, rows, 41L * n + d);  // u and v of a sub-block are taken from consecutive copies
                qk = deviceTokens(kd, stream, TokenLayout.uniform(1, b * length * heads, Math.min(d, HEAD_DIM)), 43L * n);
                kept = alloc(kd, 4L * b * k);
            } else {
                Random rnd = new Random(41L * n + d);
                hostU = gaussian(rnd, b * length * d);
                hostQ = gaussian(rnd, b * length * heads * Math.min(d, HEAD_DIM));
            }
        }

        private int headDim() {
            return Math.min(d, HEAD_DIM);
        }

        @Override
        long bytes() {  // u and v of two sub-blocks, the text rows of q, all of k, the kept indices
            long elem = dtype.bytes();
            return 4L * b * length * d * elem + (long) b * (TEXT + length) * heads * headDim() * elem + 4L * b * k;
        }

        @Override
        double flops() {  // TTV: 3 dot products per token per sub-block; IGA: text rows x all keys per head, twice
            return 2.0 * 3 * 2 * b * length * (double) d + 2.0 * 2 * b * TEXT * (double) length * heads * headDim();
        }

        @Override
        int launches() {
            return 4;  // 2 TTV + IGA + select (score, top-k, re-index)
        }

        @Override
        Pending runOnDevice(int rep) {
            acc.reset(seqs);
            TokenLayout rows = seqs.layout(d);
            for (int sub = 0; sub < 2; sub++) {
                acc.addSubBlock(new tokenprune.methods.DeviceTokens(uv.get((rep + 2 * sub) % uv.size()), dtype, rows),
                        new tokenprune.methods.DeviceTokens(uv.get((rep + 2 * sub + 1) % uv.size()), dtype, rows));
            }
            tokenprune.methods.HeadLayout hl = new tokenprune.methods.HeadLayout(b * length, heads, headDim(), (long) heads * headDim(), headDim());
            DeviceBuffer q = qk.get(rep % qk.size()), kk = qk.get((rep + 1) % qk.size());
            return acc.pruneTo(keepCounts, new tokenprune.methods.DeviceHeads(q, dtype, hl), new tokenprune.methods.DeviceHeads(kk, dtype, hl), kept, null);
        }

        @Override
        void runOnHost() {
            TokenLayout rows = seqs.layout(d);
            tokenprune.methods.HeadLayout hl = new tokenprune.methods.HeadLayout(b * length, heads, headDim(), (long) heads * headDim(), headDim());
            try (var session = tokenprune.methods.TransPrune.open(device, seqs, tokenprune.methods.TransPruneOptions.defaults())) {
                HostTokens u = HostTokens.of(hostU, rows);
                session.addSubBlock(u, u);
                session.addSubBlock(u, u);
                session.pruneTo(keepCounts, tokenprune.methods.HostHeads.of(hostQ, hl), tokenprune.methods.HostHeads.of(hostQ, hl));
            }
        }

        @Override
        public void close() {
            if (acc != null) acc.close();
            super.close();
        }
    }

    /**
     * DART before layer 2 on B sequences of [35 prefix | N image | 60 text] tokens: keys and hidden
     * states of D features, LLaVA-1.5's pivots and quota (4 + 4 pivots, 16 per pivot; at most N - 4).
     */
    static final class DartCase extends BenchCase {
        static final int PREFIX = 35, TEXT = 60;
        private final Device device;
        private final Workspace ws;
        private final Stream stream;
        private final int length;
        private final TokenLayout layout;
        private final tokenprune.methods.ImageSpans spans;
        private final tokenprune.methods.DartOptions options;
        private List<DeviceBuffer> inputs;
        private DeviceBuffer kept;
        private HostTokens hostKeys, hostHidden;

        DartCase(KernelDevice kd, Device device, Workspace ws, Stream stream, DType dtype, int b, int n, int d) {
            super("dart", dtype, b, n, d, tokenprune.methods.DartOptions.of(4, 4, Math.min(16, (n - 4) / 8)).retained());
            this.device = device;
            this.ws = ws;
            this.stream = stream;
            length = PREFIX + n + TEXT;
            layout = TokenLayout.uniform(b, length, d);
            spans = tokenprune.methods.ImageSpans.uniform(b, PREFIX, n);
            options = tokenprune.methods.DartOptions.of(4, 4, Math.min(16, (n - 4) / 8));
            if (kd != null) {
                inputs = deviceTokens(kd, stream, layout, 51L * n + d);  // keys and hidden states from consecutive copies
                kept = alloc(kd, 4L * b * k);
            } else {
                Random rnd = new Random(51L * n + d);
                hostKeys = hostTokens(layout, rnd);
                hostHidden = hostTokens(layout, rnd);
            }
        }

        @Override
        long bytes() {  // keys and hidden states of the image and text rows once, the kept indices
            return 2L * b * (n + TEXT) * d * dtype.bytes() + 4L * b * k;
        }

        @Override
        double flops() {  // key L1 norms, hidden norms, 8 pivots x N cosines
            return 2.0 * b * (n + TEXT) * (double) d * 2 + 2.0 * b * 8 * (double) n * d;
        }

        @Override
        int launches() {
            return 3;
        }

        @Override
        Pending runOnDevice(int rep) {
            tokenprune.methods.DeviceTokens keys = new tokenprune.methods.DeviceTokens(inputs.get(rep % inputs.size()), dtype, layout);
            tokenprune.methods.DeviceTokens hidden = new tokenprune.methods.DeviceTokens(inputs.get((rep + 1) % inputs.size()), dtype, layout);
            return tokenprune.methods.Dart.selectOnDevice(keys, hidden, spans, options, tokenprune.methods.DartOutputs.keptImage(kept), ws, stream);
        }

        @Override
        void runOnHost() {
            tokenprune.methods.Dart.select(device, hostKeys, hostHidden, spans, options);
        }
    }
}
