package tokenprune.kv;

import java.util.Arrays;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.KvKeepKernel;
import tokenprune.kernels.StatusWord;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;
import tokenprune.reference.KvKeepReference;

/**
 * The keep decision of the attention-score KV policies (H2O, A2SF, SnapKV, TOVA; methods-kv.md §4.4,
 * §5, §7, §8, §10.1) on the device, in one launch for a ragged batch (src/main/cuda/kv_keep.cu): scores in,
 * kept token indices and the new kv_len per sequence out.
 *
 * <p>A row is (sequence, KV head) in {@link Mode#PER_HEAD} (H2O-REF: each KV head keeps its own set,
 * every row of a sequence keeps the same count) or a whole sequence in {@link Mode#SHARED} (score = mean
 * over the KV heads, one set for all heads: TOVA / PE-REF style). A row of n tokens keeps all of them
 * when n <= budget; otherwise [0, sinks), the last {@code recent} and the top (budget − sinks − recent) of
 * [sinks, n − recent) by score (larger first, exact; equal scores at the cut by {@link Ties}), optionally
 * after SnapKV pooling of [0, n − recent) ({@link Policy#pooled}). Kept indices are ascending, min(n, budget) per row,
 * at {@link #keepOffsets}; rows sequence-major then KV head.
 *
 * <p>Score sources: the contiguous layout of {@link AttentionScores#compute} (per sequence
 * [kvHeads][n], sequences concatenated), arbitrary rows (one row per "sequence", {@link #selectRows}), or
 * the paged decode state of {@link AttentionScores#accumulatePaged} ([numBlocks][blockSize][kvHeads] fp32,
 * read through the block table) — so {@code accumulatePagedOnDevice -> selectPagedOnDevice} never leaves the
 * device.
 */
public final class KvKeepSelect {
    static final String REJECTED = "scores: a score the selection reads is NaN or infinite (or a head mean / pooled value overflows), "
            + "or a held block's table entry lies outside the pool";

    /** Per KV head sets, or one set per sequence from the head mean. */
    public enum Mode {
        PER_HEAD, SHARED
    }

    /**
     * Which of equal scores at the cut stays (-0.0 ties +0.0). Ties are common: with α < 1 decayed
     * scores underflow to exactly 0.
     */
    public enum Ties {
        /** The lower index is kept (the TopK convention; H2O, SnapKV, TOVA: torch.topk defines no rule). */
        LOWER_INDEX_KEPT,
        /** The later index is kept, i.e. the lowest index among equal minima is evicted first (A2SF-REF §4.4). */
        LATER_KEPT
    }

    /**
     * What each row keeps.
     *
     * @param poolKernel SnapKV pooling window (odd; 1 = no pooling), see {@link SnapKv#pool}
     * @param ties       which of equal (pooled) scores at the cut stays
     */
    public record Policy(int sinks, int recent, int budget, Mode mode, int poolKernel, SnapKv.Pooling pooling, Ties ties) {
        public Policy {
            if (sinks < 0) throw new IllegalArgumentException("sinks: must be >= 0, was " + sinks);
            if (recent < 0) throw new IllegalArgumentException("recent: must be >= 0, was " + recent);
            if ((long) sinks + recent > budget)
                throw new IllegalArgumentException("budget: must be >= sinks + recent = " + ((long) sinks + recent) + ", was " + budget);
            if (mode == null) throw new IllegalArgumentException("mode: must not be null");
            if (poolKernel < 1 || poolKernel % 2 == 0) throw new IllegalArgumentException("kernel: must be odd and >= 1, was " + poolKernel);
            if (pooling == null) throw new IllegalArgumentException("pooling: must not be null");
            if (ties == null) throw new IllegalArgumentException("ties: must not be null");
        }

        /** Ties to the lower index ({@link Ties#LOWER_INDEX_KEPT}). */
        public Policy(int sinks, int recent, int budget, Mode mode, int poolKernel, SnapKv.Pooling pooling) {
            this(sinks, recent, budget, mode, poolKernel, pooling, Ties.LOWER_INDEX_KEPT);
        }

        /** Per-head sets, no pooling (H2O: sinks 0, budget hh + recent; A2SF). */
        public static Policy perHead(int sinks, int recent, int budget) {
            return new Policy(sinks, recent, budget, Mode.PER_HEAD, 1, SnapKv.Pooling.AVG);
        }

        /** One set per sequence from the KV-head mean, no pooling (TOVA: sinks 0, recent 1). */
        public static Policy shared(int sinks, int recent, int budget) {
            return new Policy(sinks, recent, budget, Mode.SHARED, 1, SnapKv.Pooling.AVG);
        }

        /** The same policy with SnapKV pooling (kernel odd; 1 = none). */
        public Policy pooled(int kernel, SnapKv.Pooling how) {
            return new Policy(sinks, recent, budget, mode, kernel, how, ties);
        }

        /** The same policy with another tie rule. */
        public Policy withTies(Ties rule) {
            return new Policy(sinks, recent, budget, mode, poolKernel, pooling, rule);
        }

        /** A2SF-REF: per-head sets, no pooling, equal minima evicted lowest index first ({@link Ties#LATER_KEPT}). */
        public static Policy a2sf(int sinks, int recent, int budget) {
            return perHead(sinks, recent, budget).withTies(Ties.LATER_KEPT);
        }

        boolean shared() {
            return mode == Mode.SHARED;
        }

        boolean laterKept() {
            return ties == Ties.LATER_KEPT;
        }
    }

    private KvKeepSelect() {
    }

    /** Rows of a batch: {@code kvLens.length * kvHeads} per head, {@code kvLens.length} shared. */
    public static int rows(int[] kvLens, int kvHeads, Policy policy) {
        return policy.shared() ? kvLens.length : kvLens.length * kvHeads;
    }

    /** Where each row's kept indices go in {@code keep}: rows + 1 ascending offsets, row r holding min(n, budget). */
    public static int[] keepOffsets(int[] kvLens, int kvHeads, Policy policy) {
        checkLens(kvLens, kvHeads);
        if (policy == null) throw new IllegalArgumentException("policy: must not be null");
        int heads = policy.shared() ? 1 : kvHeads;
        int[] o = new int[kvLens.length * heads + 1];
        for (int s = 0; s < kvLens.length; s++)
            for (int h = 0; h < heads; h++) o[s * heads + h + 1] = o[s * heads + h] + Math.min(kvLens[s], policy.budget());
        return o;
    }

    // ------------------------------------------------------------------------------------------------
    // device pointers in, on the workspace's stream, no sync
    // ------------------------------------------------------------------------------------------------

    /**
     * Scores in the contiguous layout of {@link AttentionScores#computeOnDevice} ({@code kvLens} summed ×
     * kvHeads floats). {@code keep}: {@link #keepOffsets} ints; {@code kvLenOut}: kvLens.length ints or null.
     * {@link Pending#await} throws if a row read a NaN/Inf score; that row's keep entries are not written.
     */
    public static Pending selectOnDevice(Workspace ws, Stream stream, DeviceBuffer scores, int[] kvLens, int kvHeads, Policy policy, DeviceBuffer keep,
                                         DeviceBuffer kvLenOut) {
        checkLens(kvLens, kvHeads);
        int[] seqOffsets = prefix(kvLens);
        if (scores == null || scores.bytes() < 4L * seqOffsets[kvLens.length] * kvHeads)
            throw new IllegalArgumentException("scores: need " + (long) seqOffsets[kvLens.length] * kvHeads + " floats (kvLens x kvHeads)");
        return enqueue(ws, stream, scores, seqOffsets, kvHeads, null, 0, 1, 0, policy, keep, kvLenOut);
    }

    /**
     * Arbitrary rows: row r = scores[rowOffsets[r] .. rowOffsets[r + 1]) (each row its own sequence, so
     * {@code kvLenOut} gets one length per row and the mode does not matter).
     */
    public static Pending selectRowsOnDevice(Workspace ws, Stream stream, DeviceBuffer scores, int[] rowOffsets, Policy policy, DeviceBuffer keep,
                                             DeviceBuffer kvLenOut) {
        checkRowOffsets(rowOffsets, -1);
        if (scores == null || scores.bytes() < 4L * rowOffsets[rowOffsets.length - 1])
            throw new IllegalArgumentException("scores: need rowOffsets[rows] = " + rowOffsets[rowOffsets.length - 1] + " floats");
        return enqueue(ws, stream, scores, rowOffsets, 1, null, 0, 1, 0, policy, keep, kvLenOut);
    }

    /**
     * The paged decode state of {@link AttentionScores#accumulatePagedOnDevice} ({@code state}:
     * [numBlocks][blockSize][kvHeads] fp32 of {@code layout}), sequence s holding kvLens[s] tokens through
     * {@code blockTables} ([seqs][tableStride] ints). A table entry of a held block outside the pool, or a
     * NaN/Inf held score, makes {@link Pending#await} throw (that row not written).
     */
    public static Pending selectPagedOnDevice(Workspace ws, Stream stream, KvLayout layout, DeviceBuffer state, DeviceBuffer blockTables,
                                              int tableStride, int[] kvLens, Policy policy, DeviceBuffer keep, DeviceBuffer kvLenOut) {
        checkPaged(layout, state, blockTables, tableStride, kvLens);
        return enqueue(ws, stream, state, prefix(kvLens), layout.kvHeads(), blockTables, tableStride, layout.blockSize(), layout.numBlocks(), policy, keep,
                kvLenOut);
    }


    private static Pending enqueue(Workspace ws, Stream stream, DeviceBuffer scores, int[] seqOffsets, int kvHeads, DeviceBuffer tables, int tableStride,
                                   int blockSize, int numBlocks, Policy policy, DeviceBuffer keep, DeviceBuffer kvLenOut) {
        if (ws == null || stream == null) throw new IllegalArgumentException("ws, stream: must not be null");
        ws.requireStream(stream);
        if (policy == null) throw new IllegalArgumentException("policy: must not be null");
        int seqs = seqOffsets.length - 1;
        int[] lens = new int[seqs];
        for (int s = 0; s < seqs; s++) lens[s] = seqOffsets[s + 1] - seqOffsets[s];
        int[] keepOffsets = keepOffsets(lens, kvHeads, policy);
        int rows = keepOffsets.length - 1;
        if (keep == null || keep.bytes() < 4L * keepOffsets[rows]) throw new IllegalArgumentException("keep: need " + keepOffsets[rows] + " ints");
        if (kvLenOut != null && kvLenOut.bytes() < 4L * seqs) throw new IllegalArgumentException("kvLenOut: need " + seqs + " ints");
        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        launch(ws, stream, scores, seqOffsets, kvHeads, tables, tableStride, blockSize, numBlocks, policy, keep, Arrays.copyOf(keepOffsets, rows), kvLenOut,
                status.buffer(), epoch);
        return Pending.of(status, epoch, stream, REJECTED);
    }

    /**
     * Queues the selection under a caller's epoch (a chain such as {@link TokenEviction} rejects as one call).
     * {@code rowStarts}: where each row's list begins in {@code keep} (rows = seqs × kvHeads per head, seqs shared),
     * sized and checked by the caller.
     */
    static void launch(Workspace ws, Stream stream, DeviceBuffer scores, int[] seqOffsets, int kvHeads, DeviceBuffer tables, int tableStride,
                       int blockSize, int numBlocks, Policy policy, DeviceBuffer keep, int[] rowStarts, DeviceBuffer kvLenOut, DeviceBuffer status,
                       int epoch) {
        ws.status().requireLatest(epoch);
        int seqs = seqOffsets.length - 1;
        boolean over = false, any = false;
        for (int s = 0; s < seqs; s++) {
            int n = seqOffsets[s + 1] - seqOffsets[s];
            over |= n > policy.budget();
            any |= n > 0;
        }
        if (!any && kvLenOut == null) return;
        long scratchFloats = (long) seqOffsets[seqs] * (policy.shared() ? 1 : kvHeads);
        boolean paged = tables != null, pooled = policy.poolKernel() > 1;
        // kv_keep.cu reads a contiguous per-head row in place unless later-kept ties need it reversed (unpooled)
        boolean staged = paged || policy.shared() || (policy.laterKept() && !pooled);
        DeviceBuffer base = over && staged ? ws.scratch("kvKeep.base", 4 * scratchFloats) : null;
        DeviceBuffer pool = over && pooled ? ws.scratch("kvKeep.pool", 4 * scratchFloats) : null;
        DeviceBuffer offs = ws.ints("kvKeep.seqOffsets", seqOffsets, stream);
        DeviceBuffer starts = ws.ints("kvKeep.keepOffsets", rowStarts, stream);
        KvKeepKernel.launch(ws.device(), stream, scores, offs, seqs, kvHeads, policy.shared(), tables, tableStride, blockSize, numBlocks, policy.sinks(),
                policy.recent(), policy.budget(), policy.poolKernel(), policy.pooling() == SnapKv.Pooling.MAX, policy.laterKept(), starts, base, pool, keep,
                kvLenOut, status, epoch);
    }

    /** The checks of {@link #selectPagedOnDevice} on the state, tables and lengths. */
    static void checkPaged(KvLayout layout, DeviceBuffer state, DeviceBuffer blockTables, int tableStride, int[] kvLens) {
        if (layout == null) throw new IllegalArgumentException("layout: must not be null");
        int kvHeads = layout.kvHeads(), b = layout.blockSize();
        checkLens(kvLens, kvHeads);
        long slots = (long) layout.numBlocks() * b * kvHeads;
        if (state == null || state.bytes() < 4 * slots) throw new IllegalArgumentException("state: need numBlocks x blockSize x kvHeads = " + slots + " floats");
        if (tableStride < 1) throw new IllegalArgumentException("tableStride: must be >= 1, was " + tableStride);
        if (blockTables == null || blockTables.bytes() < 4L * kvLens.length * tableStride)
            throw new IllegalArgumentException("blockTables: smaller than seqs x tableStride ints");
        for (int s = 0; s < kvLens.length; s++)
            if ((kvLens[s] + (long) b - 1) / b > tableStride)
                throw new IllegalArgumentException("kvLens: sequence " + s + " needs more blocks than tableStride = " + tableStride);
    }

    static int[] seqOffsets(int[] kvLens) {
        return prefix(kvLens);
    }

    // ------------------------------------------------------------------------------------------------
    // host arrays in (CpuDevice: KvKeepReference), kept indices per row out
    // ------------------------------------------------------------------------------------------------

    /** Contiguous scores (per sequence [kvHeads][kvLens[s]]); one kept list per row. */
    public static int[][] select(Device device, float[] scores, int[] kvLens, int kvHeads, Policy policy) {
        if (device == null) throw new IllegalArgumentException("device: must not be null");
        checkLens(kvLens, kvHeads);
        if (policy == null) throw new IllegalArgumentException("policy: must not be null");
        long total = (long) prefix(kvLens)[kvLens.length] * kvHeads;
        if (scores == null || scores.length != total) throw new IllegalArgumentException("scores: need " + total + " floats (kvLens x kvHeads)");
        if (!(device instanceof KernelDevice kd))
            return KvKeepReference.contiguous(scores, kvLens, kvHeads, policy.shared(), policy.sinks(), policy.recent(), policy.budget(),
                    policy.poolKernel(), policy.pooling() == SnapKv.Pooling.MAX, policy.laterKept());
        return hostRun(kd, scores, null, 0, kvLens, kvHeads, policy, null);
    }

    /** Arbitrary rows (row r = scores[rowOffsets[r] .. rowOffsets[r + 1])); one kept list per row. */
    public static int[][] selectRows(Device device, float[] scores, int[] rowOffsets, Policy policy) {
        if (device == null) throw new IllegalArgumentException("device: must not be null");
        if (scores == null) throw new IllegalArgumentException("scores: must not be null");
        checkRowOffsets(rowOffsets, scores.length);
        if (policy == null) throw new IllegalArgumentException("policy: must not be null");
        int[] lens = new int[rowOffsets.length - 1];
        for (int r = 0; r < lens.length; r++) lens[r] = rowOffsets[r + 1] - rowOffsets[r];
        return select(device, scores, lens, 1, policy);
    }

    /** The paged state ([numBlocks][blockSize][kvHeads] of {@code layout}) through the block table; one kept list per row. */
    public static int[][] selectPaged(Device device, KvLayout layout, float[] state, int[] blockTables, int tableStride, int[] kvLens, Policy policy) {
        if (device == null) throw new IllegalArgumentException("device: must not be null");
        if (layout == null) throw new IllegalArgumentException("layout: must not be null");
        checkLens(kvLens, layout.kvHeads());
        if (policy == null) throw new IllegalArgumentException("policy: must not be null");
        long slots = (long) layout.numBlocks() * layout.blockSize() * layout.kvHeads();
        if (state == null || state.length != slots) throw new IllegalArgumentException("state: need numBlocks x blockSize x kvHeads = " + slots + " floats");
        if (tableStride < 1 || blockTables == null || blockTables.length != (long) kvLens.length * tableStride)
            throw new IllegalArgumentException("blockTables: must hold " + kvLens.length + " rows of tableStride = " + tableStride + " entries");
        if (!(device instanceof KernelDevice kd)) {
            for (int s = 0; s < kvLens.length; s++)
                if ((kvLens[s] + (long) layout.blockSize() - 1) / layout.blockSize() > tableStride)
                    throw new IllegalArgumentException("kvLens: sequence " + s + " needs more blocks than tableStride = " + tableStride);
            return KvKeepReference.paged(state, layout.numBlocks(), layout.blockSize(), layout.kvHeads(), blockTables, tableStride, kvLens,
                    policy.shared(), policy.sinks(), policy.recent(), policy.budget(), policy.poolKernel(), policy.pooling() == SnapKv.Pooling.MAX,
                    policy.laterKept());
        }
        return hostRun(kd, state, layout, tableStride, kvLens, layout.kvHeads(), policy, blockTables);
    }

    private static int[][] hostRun(KernelDevice kd, float[] scores, KvLayout layout, int tableStride, int[] kvLens, int kvHeads, Policy policy,
                                   int[] blockTables) {
        int[] keepOffsets = keepOffsets(kvLens, kvHeads, policy);
        int rows = keepOffsets.length - 1;
        int[] flat = new int[keepOffsets[rows]];
        Stream stream = kd.defaultStream();
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer x = kd.alloc(Math.max(4L, 4L * scores.length));
             DeviceBuffer tables = blockTables == null ? null : kd.alloc(Math.max(4L, 4L * blockTables.length));
             DeviceBuffer keep = kd.alloc(Math.max(4L, 4L * flat.length))) {
            if (scores.length > 0) kd.upload(scores, x, stream);
            if (tables != null) kd.upload(blockTables, tables, stream);
            Pending pending = tables == null
                    ? selectOnDevice(ws, stream, x, kvLens, kvHeads, policy, keep, null)
                    : selectPagedOnDevice(ws, stream, layout, x, tables, tableStride, kvLens, policy, keep, null);
            pending.await();
            if (flat.length > 0) kd.download(keep, flat, stream);
            stream.synchronize();
        }
        int[][] out = new int[rows][];
        for (int r = 0; r < rows; r++) out[r] = Arrays.copyOfRange(flat, keepOffsets[r], keepOffsets[r + 1]);
        return out;
    }

    private static int[] prefix(int[] lens) {
        int[] o = new int[lens.length + 1];
        for (int s = 0; s < lens.length; s++) o[s + 1] = o[s] + lens[s];
        return o;
    }

    private static void checkLens(int[] kvLens, int kvHeads) {
        if (kvHeads < 1) throw new IllegalArgumentException("kvHeads: must be >= 1, was " + kvHeads);
        if (kvLens == null || kvLens.length < 1) throw new IllegalArgumentException("kvLens: need >= 1 sequence");
        long total = 0;
        for (int s = 0; s < kvLens.length; s++) {
            if (kvLens[s] < 0) throw new IllegalArgumentException("kvLens: sequence " + s + " is " + kvLens[s]);
            total += kvLens[s];
        }
        if (total * kvHeads > Integer.MAX_VALUE) throw new IllegalArgumentException("kvLens: more than 2^31 - 1 scores in one call");
    }

    /** rows + 1 >= 2 non-decreasing offsets from 0 (to {@code length} when it is >= 0). */
    private static void checkRowOffsets(int[] rowOffsets, int length) {
        if (rowOffsets == null || rowOffsets.length < 2 || rowOffsets[0] != 0 || (length >= 0 && rowOffsets[rowOffsets.length - 1] != length))
            throw new IllegalArgumentException("rowOffsets: need >= 2 offsets from 0" + (length >= 0 ? " to scores.length = " + length : ""));
        for (int r = 0; r + 1 < rowOffsets.length; r++)
            if (rowOffsets[r + 1] < rowOffsets[r]) throw new IllegalArgumentException("rowOffsets: not ascending, decrease at row " + r);
    }
}
