package tokenprune.kv;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.KvCompactKernel;
import tokenprune.kernels.StatusWord;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * KV-cache compaction (methods-kv.md §11, §2.3.2 step 4, §6 SL-4; src/main/cuda/kv_compact.cu): for a
 * ragged batch of sequences of a paged cache, the i-th kept token of each (layer, KV head) moves, K and
 * V, to token index i of the sequence's destination block table, in original order; optionally the
 * per-slot fp32 state ([numBlocks][B][kvHeads], AttentionScores' paged decode state) moves along and
 * moved keys are re-rotated (StreamingLLM pos-shift on post-RoPE keys). All layers in one call: two
 * launches (validation, move), no host synchronisation.
 *
 * <p>In place (no destination table, the common decode case) compacts within the source table; the
 * caller then shortens kv_len to the kept count and frees the blocks behind it. Out of place (a
 * destination table of fresh blocks, e.g. the PE-REF prefill copy) the destination slots must not hold
 * any kept source token of the call. No physical block may appear twice among the tables of a call.
 */
public final class KvCompaction {
    private KvCompaction() {
    }

    /** RoPE pair layout: NEOX pairs (i, i + rotaryDim/2), GPT-J pairs (2i, 2i + 1). */
    public enum RopeStyle {
        NEOX(0), GPTJ(1);

        private final int code;

        RopeStyle(int code) {
            this.code = code;
        }

        public int code() {
            return code;
        }
    }

    /**
     * Key re-rotation: each moved key is rotated by delta·θ_i per pair i < rotaryDim/2, θ_i =
     * base^(−2i/rotaryDim), delta = destination index − source index (or the caller's deltas). Dims from
     * rotaryDim on and values are untouched. Llama-3 frequency scaling is not supported.
     */
    public record Rope(int rotaryDim, float base, RopeStyle style) {
        public Rope {
            if (rotaryDim < 2 || rotaryDim % 2 != 0) throw new IllegalArgumentException("rotaryDim: must be even and >= 2, was " + rotaryDim);
            if (!(base > 0) || !Float.isFinite(base)) throw new IllegalArgumentException("base: must be finite and > 0, was " + base);
            if (style == null) throw new IllegalArgumentException("style: must not be null");
        }

        public static Rope neox(int rotaryDim, float base) {
            return new Rope(rotaryDim, base, RopeStyle.NEOX);
        }
    }

    /**
     * The kept tokens. Sequence s keeps {@code offsets[s+1] − offsets[s]} tokens per (layer, head); its
     * list for (l, h) is {@code indices[l·layerStride + h·headStride + offsets[s] ..)}, with headStride =
     * total kept if {@code perHead} (else 0: one list for all heads) and layerStride = total·(perHead ?
     * kvHeads : 1) if {@code perLayer} (else 0). Lists must be strictly increasing source indices below
     * the sequence's source length (checked on the device). {@code deltas} (nullable, same shape, int32):
     * the rotation's position delta per kept token instead of destination − source.
     */
    public record KeepSets(int[] offsets, DeviceBuffer indices, boolean perHead, boolean perLayer, DeviceBuffer deltas) {
        public KeepSets {
            if (offsets == null || offsets.length < 2 || offsets[0] != 0) throw new IllegalArgumentException("offsets: needs seqs + 1 >= 2 entries starting at 0");
            for (int s = 0; s + 1 < offsets.length; s++)
                if (offsets[s + 1] < offsets[s]) throw new IllegalArgumentException("offsets: must be non-decreasing (entry " + (s + 1) + ")");
            if (indices == null) throw new IllegalArgumentException("indices: must not be null");
        }

        int seqs() {
            return offsets.length - 1;
        }

        int total() {
            return offsets[offsets.length - 1];
        }

        long headStride() {
            return perHead ? total() : 0;
        }

        long layerStride(int kvHeads) {
            return perLayer ? (long) total() * (perHead ? kvHeads : 1) : 0;
        }

        long ints(int kvHeads, int layers) {
            return (long) total() * (perHead ? kvHeads : 1) * (perLayer ? layers : 1);
        }
    }

    static final String REJECTION = "keep, srcTables, dstTables: a kept index is negative, not strictly increasing or >= the source length, "
            + "or a table entry it needs lies outside the pool";

    /**
     * Device pointers in, on the caller's stream, no sync: compacts every layer ({@code layerCaches[l]}:
     * one tensor of {@code layout} per layer; {@code layerStates}: null or one state per layer, numBlocks
     * × B × kvHeads floats). {@code srcTables}/{@code dstTables}: seqs rows of their strides; dstTables
     * null (or the same buffer as srcTables) = in place. {@code srcLen}: tokens held per sequence in the
     * source. {@code rope}: null = no rotation. On rejection ({@link Pending#await} throws) nothing is
     * written.
     */
    public static Pending compactOnDevice(KvLayout layout, DeviceBuffer[] layerCaches, DeviceBuffer[] layerStates, DeviceBuffer srcTables,
                                          int srcTableStride, DeviceBuffer dstTables, int dstTableStride, int[] srcLen, KeepSets keep, Rope rope,
                                          Workspace ws, Stream stream) {
        if (ws == null || stream == null) throw new IllegalArgumentException("ws, stream: must not be null");
        ws.requireStream(stream);
        Launch launch = plan(layout, layerCaches, layerStates, srcTables, srcTableStride, dstTables, dstTableStride, srcLen, keep, rope);
        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        launch.enqueue(ws, stream, status.buffer(), epoch);
        return Pending.of(status, epoch, stream, REJECTION);
    }

    /** A checked call, ready to be queued under an epoch (PagedEvictionPrefill queues it after its own kernels). */
    static final class Launch {
        final KvLayout layout;
        final DeviceBuffer[] caches, states;
        final DeviceBuffer srcTables, dstTables;
        final int srcStride, dstStride, splits, unitBytes;
        final int[] srcLen;
        final KeepSets keep;
        final Rope rope;

        private Launch(KvLayout layout, DeviceBuffer[] caches, DeviceBuffer[] states, DeviceBuffer srcTables, int srcStride, DeviceBuffer dstTables,
                       int dstStride, int[] srcLen, KeepSets keep, Rope rope, int splits, int unitBytes) {
            this.layout = layout;
            this.caches = caches;
            this.states = states;
            this.srcTables = srcTables;
            this.srcStride = srcStride;
            this.dstTables = dstTables;
            this.dstStride = dstStride;
            this.srcLen = srcLen;
            this.keep = keep;
            this.rope = rope;
            this.splits = splits;
            this.unitBytes = unitBytes;
        }

        void enqueue(Workspace ws, Stream stream, DeviceBuffer status, int epoch) {
            ws.status().requireLatest(epoch);
            int seqs = keep.seqs(), layers = caches.length, h = layout.kvHeads();
            if (keep.total() == 0) return;
            KernelDevice device = ws.device();
            long[] ptrs = new long[layers * (states != null ? 2 : 1)];
            for (int l = 0; l < layers; l++) {
                ptrs[l] = caches[l].address();
                if (states != null) ptrs[layers + l] = states[l].address();
            }
            DeviceBuffer ptrD = ws.ints("kvCompaction.layerPtrs", PagedEviction.int64Words(ptrs), stream);
            DeviceBuffer lenD = ws.ints("kvCompaction.srcLen", srcLen, stream);
            DeviceBuffer offD = ws.ints("kvCompaction.keepOffsets", keep.offsets(), stream);
            long hs = keep.headStride(), ls = keep.layerStride(h);
            KvCompactKernel.launchCheck(device, stream, srcTables, srcStride, dstTables, dstStride, layout.blockSize(), layout.numBlocks(), h, lenD,
                    offD, keep.indices(), hs, ls, seqs, keep.perLayer() ? layers : 1, status, epoch);
            KvCompactKernel.launchMove(device, stream, layout.dtype(), ptrD, layers, states != null, layout.kvStride(), layout.blockStride(),
                    layout.slotStride(0), layout.headStride(), layout.slotStride(1), layout.dimChunk(0), layout.chunkStride(0), layout.dimStride(0),
                    layout.dimChunk(1), layout.chunkStride(1), layout.dimStride(1), layout.blockSize(), h, layout.headDim(), srcTables, srcStride, dstTables, dstStride, offD,
                    keep.indices(), hs, ls, keep.deltas(), seqs, splits, unitBytes, rope != null ? rope.rotaryDim() : 0, rope != null ? rope.base() : 1f,
                    rope != null ? rope.style().code() : 0, status, epoch);
        }
    }

    static Launch plan(KvLayout layout, DeviceBuffer[] layerCaches, DeviceBuffer[] layerStates, DeviceBuffer srcTables, int srcTableStride,
                       DeviceBuffer dstTables, int dstTableStride, int[] srcLen, KeepSets keep, Rope rope) {
        if (layout == null || layerCaches == null || srcTables == null || srcLen == null || keep == null)
            throw new IllegalArgumentException("layout, layerCaches, srcTables, srcLen, keep: must not be null");
        int layers = layerCaches.length, seqs = keep.seqs(), b = layout.blockSize(), h = layout.kvHeads();
        if (layers < 1 || layers > 65535) throw new IllegalArgumentException("layerCaches: needs 1 .. 65535 layers, has " + layers);
        if (layerStates != null && layerStates.length != layers)
            throw new IllegalArgumentException("layerStates: " + layerStates.length + " states for " + layers + " layers");
        long stateBytes = 4L * layout.numBlocks() * b * h;
        for (int l = 0; l < layers; l++) {
            if (layerCaches[l] == null || layerCaches[l].bytes() < layout.bytes())
                throw new IllegalArgumentException("layerCaches: layer " + l + " is missing or smaller than the layout's " + layout.bytes() + " bytes");
            if (layerStates != null && (layerStates[l] == null || layerStates[l].bytes() < stateBytes))
                throw new IllegalArgumentException("layerStates: layer " + l + " is missing or smaller than numBlocks x B x kvHeads floats");
        }
        java.util.Set<Long> bases = new java.util.HashSet<>();
        for (int l = 0; l < layers; l++)
            if (!bases.add(layerCaches[l].address())) throw new IllegalArgumentException("layerCaches: layer " + l + " repeats another layer's buffer");
        for (int l = 0; layerStates != null && l < layers; l++)
            if (!bases.add(layerStates[l].address())) throw new IllegalArgumentException("layerStates: layer " + l + " repeats a cache or another state buffer");
        boolean inPlace = dstTables == null || dstTables.address() == srcTables.address();
        if (inPlace) {
            dstTables = srcTables;
            dstTableStride = srcTableStride;
        }
        if (srcTableStride < 1 || dstTableStride < 1) throw new IllegalArgumentException("srcTableStride, dstTableStride: must be >= 1");
        if (srcTables.bytes() < 4L * seqs * srcTableStride) throw new IllegalArgumentException("srcTables: smaller than seqs x srcTableStride ints");
        if (dstTables.bytes() < 4L * seqs * dstTableStride) throw new IllegalArgumentException("dstTables: smaller than seqs x dstTableStride ints");
        if (srcLen.length != seqs) throw new IllegalArgumentException("srcLen: " + srcLen.length + " entries for " + seqs + " sequences");
        int maxCount = 0;
        for (int s = 0; s < seqs; s++) {
            int n = keep.offsets()[s + 1] - keep.offsets()[s];
            if (srcLen[s] < 0 || (long) srcLen[s] > (long) srcTableStride * b)
                throw new IllegalArgumentException("srcLen: sequence " + s + " holds " + srcLen[s] + " tokens, outside 0 .. srcTableStride x B");
            if (n > srcLen[s]) throw new IllegalArgumentException("keep: sequence " + s + " keeps " + n + " of " + srcLen[s] + " tokens");
            if ((n + b - 1) / b > dstTableStride)
                throw new IllegalArgumentException("dstTables: sequence " + s + " needs " + (n + b - 1) / b + " blocks, the row has " + dstTableStride);
            maxCount = Math.max(maxCount, n);
        }
        if (keep.indices().bytes() < 4L * keep.ints(h, layers)) throw new IllegalArgumentException("keep: indices need " + keep.ints(h, layers) + " ints");
        if (keep.deltas() != null && keep.deltas().bytes() < 4L * keep.ints(h, layers))
            throw new IllegalArgumentException("keep: deltas need " + keep.ints(h, layers) + " ints");
        if (rope != null && rope.rotaryDim() > layout.headDim())
            throw new IllegalArgumentException("rope: rotaryDim " + rope.rotaryDim() + " exceeds the head dim " + layout.headDim());
        int rowBytes = layout.headDim() * layout.dtype().bytes();
        if (KvCompactKernel.sharedBytes(rowBytes) > layerCaches[0].device().maxDynamicSharedBytes())
            throw new IllegalArgumentException("layout: head dim " + layout.headDim() + " too large for the staging buffer");
        int chunk = KvCompactKernel.chunkTokens(rowBytes);
        int splits = inPlace ? 1 : Math.max(1, Math.min(1024, (maxCount + chunk - 1) / chunk));
        return new Launch(layout, layerCaches, layerStates, srcTables, srcTableStride, dstTables, dstTableStride, srcLen.clone(), keep, rope, splits,
                unitBytes(layout, layerCaches));
    }

    /**
     * The widest copy unit (16, 8, 4 or 2 bytes, at least one element) that divides the row, the strides and every base address;
     * one element for a layout whose rows are not contiguous (LEGACY: the kernel moves it element by element).
     */
    static int unitBytes(KvLayout layout, DeviceBuffer[] caches) {
        int e = layout.dtype().bytes();
        if (!layout.dimContiguous()) return e;
        long g = (long) layout.headDim() * e;
        for (long v : new long[] {layout.kvStride() * e, layout.blockStride() * e, layout.slotStride() * e, layout.headStride() * e}) g = gcd(g, v);
        for (DeviceBuffer c : caches) g = gcd(g, c.address());
        for (int w = 16; w > e; w /= 2) if (g % w == 0) return w;
        return e;
    }

    private static long gcd(long a, long b) {
        while (b != 0) {
            long t = a % b;
            a = b;
            b = t;
        }
        return Math.abs(a);
    }

    /** New cache contents (float[] or short[] per layer, as given) and states (null if none were given). */
    public record Result(Object[] caches, float[][] states) {
    }

    /**
     * Host arrays in, the compacted copies out (the inputs are not modified). {@code layerCaches}: per
     * layer a float[] (F32) or short[] of raw 16-bit patterns, {@code layout.elements()} long;
     * {@code layerStates}: null or per layer numBlocks × B × kvHeads floats; tables: seqs rows (dstTables
     * null = in place); {@code keep}, {@code deltas} (nullable) shaped as in {@link KeepSets}. Throws
     * IllegalArgumentException on bad shapes or when the device rejects a kept list or a table entry.
     */
    public static Result compact(KernelDevice device, KvLayout layout, Object[] layerCaches, float[][] layerStates, int[] srcTables, int srcTableStride,
                                 int[] dstTables, int dstTableStride, int[] srcLen, int[] keepOffsets, int[] keep, boolean perHead, boolean perLayer,
                                 int[] deltas, Rope rope) {
        if (device == null || layout == null || layerCaches == null || srcTables == null || keep == null)
            throw new IllegalArgumentException("device, layout, layerCaches, srcTables, keep: must not be null");
        int layers = layerCaches.length;
        for (Object c : layerCaches) KvTokenScores.checkHostCache(layout, c);
        if (layerStates != null) {
            if (layerStates.length != layers) throw new IllegalArgumentException("layerStates: " + layerStates.length + " states for " + layers + " layers");
            for (float[] st : layerStates)
                if (st == null || st.length != (long) layout.numBlocks() * layout.blockSize() * layout.kvHeads())
                    throw new IllegalArgumentException("layerStates: each needs numBlocks x B x kvHeads floats");
        }
        if (deltas != null && deltas.length != keep.length) throw new IllegalArgumentException("deltas: " + deltas.length + " ints, keep has " + keep.length);
        Stream stream = device.defaultStream();
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer src = device.alloc(4L * srcTables.length);
             DeviceBuffer dst = device.alloc(4L * Math.max(1, dstTables != null ? dstTables.length : 1));
             DeviceBuffer keepD = device.alloc(4L * Math.max(1, keep.length));
             DeviceBuffer deltaD = device.alloc(4L * Math.max(1, deltas != null ? deltas.length : 1));
             HostLayers caches = HostLayers.caches(device, layout, layerCaches, stream);
             HostLayers states = HostLayers.states(device, layerStates, stream)) {
            device.upload(srcTables, src, stream);
            if (dstTables != null && dstTables.length > 0) device.upload(dstTables, dst, stream);
            if (keep.length > 0) device.upload(keep, keepD, stream);
            if (deltas != null && deltas.length > 0) device.upload(deltas, deltaD, stream);
            KeepSets sets = new KeepSets(keepOffsets, keepD, perHead, perLayer, deltas != null ? deltaD : null);
            if (keep.length != sets.ints(layout.kvHeads(), layers))
                throw new IllegalArgumentException("keep: " + keep.length + " ints, the sets need " + sets.ints(layout.kvHeads(), layers));
            compactOnDevice(layout, caches.buffers, states != null ? states.buffers : null, src, srcTableStride, dstTables != null ? dst : null,
                    dstTableStride, srcLen, sets, rope, ws, stream).await();
            int slots = layout.numBlocks() * layout.blockSize() * layout.kvHeads();
            return new Result(caches.downloadCaches(layout, stream), states != null ? states.downloadStates(slots, stream) : null);
        }
    }
}
