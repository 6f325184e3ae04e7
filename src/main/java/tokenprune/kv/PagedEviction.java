package tokenprune.kv;

import java.util.Arrays;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.PagedEvictionKernel;
import tokenprune.kernels.StatusWord;
import tokenprune.methods.Pending;
import tokenprune.methods.Workspace;

/**
 * PagedEviction's decode step on the device (PE-REF steps 2, 3, 5; src/main/cuda/paged_eviction.cu)
 * for a batch of sequences: for every sequence whose newest block filled in this step, the block's
 * score per layer (mean of its token scores) is cached in the per-block score array, and, if the
 * sequence is over the budget, the victim block is chosen by {@link PagedEvictionOptions} (default:
 * smallest layer-aggregated score among the candidates, ties to the lowest index; or the largest, a
 * hashed random candidate, or block 1; never block 0 nor the newest block) and removed on the
 * device: block table row and score rows shift left, kv_len −= B. Two launches (decide, apply), no
 * host synchronisation; the victims and the freed physical blocks come back per sequence (−1 = none)
 * for the host's {@link PagedKvCache} ({@link #applyTo}).
 *
 * <p>The token scores of the filled blocks come from {@link KvTokenScores} (one launch per layer,
 * {@code begin = kv_len − B}, B tokens per filled sequence), written layer-major into
 * {@code fillScores[(l · fills + f) · B + j]}. Rules that read no score
 * ({@link PagedEvictionOptions#readsScores()} false) skip that scoring and leave the new blocks' cached
 * scores unset (NaN).
 */
public final class PagedEviction {
    private PagedEviction() {
    }

    /**
     * One decode step's inputs as host arrays. State: {@code blockTables} (seqs × tableStride physical
     * ids), {@code blockScores} (layers × seqs × tableStride, NaN = unset), {@code kvLen}, {@code
     * logicalLen} (seqs each). Step: {@code fillAt[s]} = −1 if sequence s's newest block did not fill
     * in this step, else its row f in {@code fillScores} (layers × fills × blockSize token scores).
     */
    public record DecodeBatch(int seqs, int layers, int blockSize, long budget, int numBlocks, int[] blockTables, int tableStride, float[] blockScores,
                              int[] kvLen, long[] logicalLen, int[] fillAt, int fills, float[] fillScores) {
        public DecodeBatch {
            if (seqs < 1) throw new IllegalArgumentException("seqs: must be >= 1, was " + seqs);
            if (layers < 1) throw new IllegalArgumentException("layers: must be >= 1, was " + layers);
            if (blockSize < 1) throw new IllegalArgumentException("blockSize: must be >= 1, was " + blockSize);
            if (budget < 0) throw new IllegalArgumentException("budget: must be >= 0, was " + budget);
            if (numBlocks < 1) throw new IllegalArgumentException("numBlocks: must be >= 1, was " + numBlocks);
            if (tableStride < 1) throw new IllegalArgumentException("tableStride: must be >= 1, was " + tableStride);
            if (fills < 0) throw new IllegalArgumentException("fills: must be >= 0, was " + fills);
            if (blockTables == null || blockScores == null || kvLen == null || logicalLen == null || fillAt == null || fillScores == null)
                throw new IllegalArgumentException("blockTables, blockScores, kvLen, logicalLen, fillAt, fillScores: must not be null");
            if (blockTables.length != (long) seqs * tableStride) throw new IllegalArgumentException("blockTables: needs seqs x tableStride = " + (long) seqs * tableStride + " ints, has " + blockTables.length);
            if (blockScores.length != (long) layers * seqs * tableStride)
                throw new IllegalArgumentException("blockScores: needs layers x seqs x tableStride = " + (long) layers * seqs * tableStride + " floats, has " + blockScores.length);
            if (kvLen.length != seqs || logicalLen.length != seqs || fillAt.length != seqs) throw new IllegalArgumentException("kvLen, logicalLen, fillAt: need seqs = " + seqs + " entries each");
            if (fillScores.length != (long) layers * fills * blockSize)
                throw new IllegalArgumentException("fillScores: needs layers x fills x blockSize = " + (long) layers * fills * blockSize + " floats, has " + fillScores.length);
            for (int s = 0; s < seqs; s++) {
                if (fillAt[s] < -1 || fillAt[s] >= fills) throw new IllegalArgumentException("fillAt: entry " + s + " = " + fillAt[s] + " outside -1 .. fills - 1 = " + (fills - 1));
                if (kvLen[s] < 0) throw new IllegalArgumentException("kvLen: entry " + s + " is negative");
            }
        }
    }

    /**
     * The outcome of a step: per sequence the evicted logical block and its physical id (−1 = none,
     * also for sequences whose block did not fill) and the updated state (tables padded with −1, scores
     * with NaN, behind each row's last block).
     */
    public record Decision(int[] victims, int[] freed, int[] blockTables, float[] blockScores, int[] kvLen) {
    }

    /** The device state of a batch (caller-owned buffers; rows as in {@link DecodeBatch}; logicalLen is int64). */
    public record DeviceState(int seqs, int layers, int blockSize, long budget, int numBlocks, DeviceBuffer blockTables, int tableStride,
                              DeviceBuffer blockScores, DeviceBuffer kvLen, DeviceBuffer logicalLen) {
        public DeviceState {
            if (seqs < 1 || layers < 1 || blockSize < 1 || numBlocks < 1 || tableStride < 1)
                throw new IllegalArgumentException("seqs, layers, blockSize, numBlocks, tableStride: must be >= 1");
            if (budget < 0) throw new IllegalArgumentException("budget: must be >= 0, was " + budget);
            if (blockTables == null || blockScores == null || kvLen == null || logicalLen == null)
                throw new IllegalArgumentException("blockTables, blockScores, kvLen, logicalLen: must not be null");
            if (blockTables.bytes() < 4L * seqs * tableStride) throw new IllegalArgumentException("blockTables: smaller than seqs x tableStride ints");
            if (blockScores.bytes() < 4L * layers * seqs * tableStride) throw new IllegalArgumentException("blockScores: smaller than layers x seqs x tableStride floats");
            if (kvLen.bytes() < 4L * seqs) throw new IllegalArgumentException("kvLen: needs seqs ints");
            if (logicalLen.bytes() < 8L * seqs) throw new IllegalArgumentException("logicalLen: needs seqs int64");
        }
    }

    static final String REJECTION = "fillScores, blockScores, kvLen, blockTables: a filled block's token score or a candidate's block score is NaN/Inf "
            + "(unset), or a filled sequence's kv_len is not a positive multiple of B within the table, or a victim's block lies outside the pool";

    /**
     * Device pointers in, on the caller's stream, no sync: queues the decision and its application.
     * {@code fillAt}: seqs ints (validated by the caller: −1 .. fills − 1); {@code fillScores}: layers ×
     * fills × B floats (may be null when fills == 0 or when {@code options} reads no scores); {@code victims}, {@code freed}: seqs ints out.
     * On rejection ({@link Pending#await} throws) neither the state nor the outputs are changed.
     */
    public static Pending decideOnDevice(DeviceState state, DeviceBuffer fillScores, int fills, DeviceBuffer fillAt, PagedEvictionOptions options,
                                         DeviceBuffer victims, DeviceBuffer freed, Workspace ws, Stream stream) {
        if (state == null || fillAt == null || options == null || victims == null || freed == null || ws == null || stream == null)
            throw new IllegalArgumentException("state, fillAt, options, victims, freed, ws, stream: must not be null");
        ws.requireStream(stream);
        int seqs = state.seqs();
        if (fills < 0) throw new IllegalArgumentException("fills: must be >= 0, was " + fills);
        if (fillAt.bytes() < 4L * seqs) throw new IllegalArgumentException("fillAt: needs seqs ints");
        if (fills > 0 && options.readsScores() && (fillScores == null || fillScores.bytes() < 4L * state.layers() * fills * state.blockSize()))
            throw new IllegalArgumentException("fillScores: needs layers x fills x blockSize floats");
        if (victims.bytes() < 4L * seqs || freed.bytes() < 4L * seqs) throw new IllegalArgumentException("victims, freed: need seqs ints each");
        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        enqueueDecision(state, fillScores, fills, fillAt, options, victims, freed, ws, stream, epoch);
        return Pending.of(status, epoch, stream, REJECTION);
    }

    /** The decide + apply launches under an epoch the caller took (earlier kernels of the same call may have rejected it). */
    private static void enqueueDecision(DeviceState state, DeviceBuffer fillScores, int fills, DeviceBuffer fillAt, PagedEvictionOptions options,
                                        DeviceBuffer victims, DeviceBuffer freed, Workspace ws, Stream stream, int epoch) {
        int seqs = state.seqs();
        KernelDevice device = ws.device();
        StatusWord status = ws.status();
        DeviceBuffer stage = ws.scratch("pagedEviction.stage", 8L * seqs);
        DeviceBuffer newScores = ws.scratch("pagedEviction.newScores", 4L * state.layers() * seqs);
        PagedEvictionKernel.launchDecide(device, stream, fills > 0 && fillScores != null ? fillScores : stage, fills, fillAt, state.layers(),
                state.blockSize(), seqs, state.budget(), options.window(), options.layerAgg().code(), options.victimRule(), options.seed(), state.blockTables(), state.tableStride(), state.numBlocks(),
                state.blockScores(), state.kvLen(), state.logicalLen(), stage, newScores, status.buffer(), epoch);
        PagedEvictionKernel.launchApply(device, stream, stage, newScores, fillAt, state.layers(), state.blockSize(), seqs, state.blockTables(),
                state.tableStride(), state.blockScores(), state.kvLen(), victims, freed, status.buffer(), epoch);
    }

    /**
     * The whole decode step on the device, no sync: the token scores of every block that just filled
     * (one tp_kv_token_score_* launch per layer over {@code layerCaches}, reading tokens kv_len − B ..
     * kv_len − 1 through the state's block tables), then {@link #decideOnDevice}'s two launches, all
     * under one status epoch (L + 2 launches; 2 when {@code options} reads no scores: random victims,
     * a window of 1, the StreamingLLM preset). {@code kvLen} and {@code filled} are the host's copies
     * (pre-eviction kv_len; which sequences' newest block filled in this step): they give the
     * fill rows (in sequence order) and are uploaded through the workspace only when they change.
     * A NaN/Inf key or value of a filled block, or anything {@link #decideOnDevice} rejects, makes
     * {@link Pending#await} throw with the state and outputs unchanged.
     */
    public static Pending decodeStepOnDevice(KvLayout layout, DeviceBuffer[] layerCaches, KvScoreOptions scoreOptions, DeviceState state, int[] kvLen,
                                             boolean[] filled, PagedEvictionOptions options, DeviceBuffer victims, DeviceBuffer freed, Workspace ws,
                                             Stream stream) {
        if (layout == null || layerCaches == null || scoreOptions == null || state == null || kvLen == null || filled == null || options == null
                || victims == null || freed == null || ws == null || stream == null)
            throw new IllegalArgumentException("layout, layerCaches, scoreOptions, state, kvLen, filled, options, victims, freed, ws, stream: must not be null");
        ws.requireStream(stream);
        int seqs = state.seqs(), b = state.blockSize();
        if (layerCaches.length != state.layers()) throw new IllegalArgumentException("layerCaches: " + layerCaches.length + " caches for " + state.layers() + " layers");
        if (layout.blockSize() != b || layout.numBlocks() != state.numBlocks())
            throw new IllegalArgumentException("layout: block size / pool size differ from the state's " + b + "/" + state.numBlocks());
        if (kvLen.length != seqs || filled.length != seqs) throw new IllegalArgumentException("kvLen, filled: need seqs = " + seqs + " entries");
        if (victims.bytes() < 4L * seqs || freed.bytes() < 4L * seqs) throw new IllegalArgumentException("victims, freed: need seqs ints each");
        int[] fillAt = new int[seqs], begin = new int[seqs], outOffsets = new int[seqs + 1];
        int fills = 0;
        for (int s = 0; s < seqs; s++) {
            fillAt[s] = -1;
            if (filled[s]) {
                if (kvLen[s] < b || kvLen[s] % b != 0 || kvLen[s] / b > state.tableStride())
                    throw new IllegalArgumentException("kvLen: sequence " + s + " is marked filled but kv_len " + kvLen[s] + " is not a positive multiple of B within the table");
                fillAt[s] = fills++;
                begin[s] = kvLen[s] - b;
            }
            outOffsets[s + 1] = fills * b;
        }
        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        DeviceBuffer fillAtD = ws.ints("pagedEviction.fillAt", fillAt, stream);
        boolean scoring = fills > 0 && options.readsScores();
        DeviceBuffer fillScores = scoring ? ws.scratch("pagedEviction.fillScores", 4L * state.layers() * fills * b) : null;
        if (scoring) {
            DeviceBuffer beginD = ws.ints("pagedEviction.fillBegin", begin, stream);
            DeviceBuffer offsetsD = ws.ints("pagedEviction.fillOffsets", outOffsets, stream);
            long layerBytes = 4L * fills * b;
            for (int l = 0; l < state.layers(); l++)
                KvTokenScores.enqueue(ws.device(), stream, layerCaches[l], layout, state.blockTables(), state.tableStride(), seqs, beginD, offsetsD, fills * b,
                        scoreOptions, fillScores.slice(l * layerBytes, layerBytes), status.buffer(), epoch);
        }
        enqueueDecision(state, fillScores, fills, fillAtD, options, victims, freed, ws, stream, epoch);
        return Pending.of(status, epoch, stream, REJECTION + "; or a filled block's key or value is NaN/Inf");
    }

    /** Host arrays in, the decision and the updated state out (the inputs are not modified). Throws IllegalArgumentException as the kernel rejects. */
    public static Decision decide(KernelDevice device, DecodeBatch b, PagedEvictionOptions options) {
        if (device == null || b == null || options == null) throw new IllegalArgumentException("device, batch, options: must not be null");
        int seqs = b.seqs();
        Stream stream = device.defaultStream();
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer tables = device.alloc(4L * b.blockTables().length);
             DeviceBuffer scores = device.alloc(4L * b.blockScores().length);
             DeviceBuffer kv = device.alloc(4L * seqs);
             DeviceBuffer logical = device.alloc(8L * seqs);
             DeviceBuffer fillAt = device.alloc(4L * seqs);
             DeviceBuffer fillScores = device.alloc(Math.max(4L, 4L * b.fillScores().length));
             DeviceBuffer victims = device.alloc(4L * seqs);
             DeviceBuffer freed = device.alloc(4L * seqs)) {
            device.upload(b.blockTables(), tables, stream);
            device.upload(b.blockScores(), scores, stream);
            device.upload(b.kvLen(), kv, stream);
            device.upload(int64Words(b.logicalLen()), logical, stream);
            device.upload(b.fillAt(), fillAt, stream);
            if (b.fillScores().length > 0) device.upload(b.fillScores(), fillScores, stream);  // ignored when the options read no scores
            DeviceState state = new DeviceState(seqs, b.layers(), b.blockSize(), b.budget(), b.numBlocks(), tables, b.tableStride(), scores, kv, logical);
            decideOnDevice(state, fillScores, b.fills(), fillAt, options, victims, freed, ws, stream).await();
            int[] v = new int[seqs], f = new int[seqs], t = new int[b.blockTables().length], k = new int[seqs];
            float[] sc = new float[b.blockScores().length];
            device.download(victims, v, stream);
            device.download(freed, f, stream);
            device.download(tables, t, stream);
            device.download(scores, sc, stream);
            device.download(kv, k, stream);
            stream.synchronize();
            return new Decision(v, f, t, sc, k);
        }
    }

    /** int64 values as little-endian pairs of int32 words, ready to upload into an int64 device array. */
    public static int[] int64Words(long[] values) {
        int[] w = new int[2 * values.length];
        for (int i = 0; i < values.length; i++) {
            w[2 * i] = (int) values[i];
            w[2 * i + 1] = (int) (values[i] >>> 32);
        }
        return w;
    }

    /**
     * A decode batch of the sequences {@code ids} of {@code cache} (rows padded to {@code width} with
     * −1), with the given per-layer block scores (layers × ids × width) and filled-block token scores.
     */
    public static DecodeBatch batchOf(PagedKvCache cache, int[] ids, int width, int layers, float[] blockScores, int[] fillAt, int fills, float[] fillScores) {
        int seqs = ids.length;
        int[] tables = cache.blockTables(ids, width, -1);
        int[] kv = cache.kvLens(ids);
        long[] logical = cache.logicalLengths(ids);
        return new DecodeBatch(seqs, layers, cache.blockSize(), cache.budget(), cache.numBlocks(), tables, width, blockScores, kv, logical, fillAt, fills,
                fillScores);
    }

    /**
     * Applies a decision to the host bookkeeping: for every sequence s that filled, the new block's
     * score (the layer mean, informational: the device rows are authoritative; left unset when the
     * rule scored nothing) is set, and its victim
     * is evicted with {@link PagedKvCache#evictBlock} semantics (the physical block must be the one the
     * kernel freed). The caller runs {@link PagedKvCache#reclaimEvicted()} after the step's kernels.
     */
    public static void applyTo(PagedKvCache cache, int[] ids, DecodeBatch batch, Decision d) {
        int w = batch.tableStride(), seqs = ids.length, layers = batch.layers();
        for (int s = 0; s < seqs; s++) {
            if (batch.fillAt()[s] < 0) continue;
            int nb = cache.blockTable(ids[s]).length;
            int last = d.kvLen()[s] / cache.blockSize() - 1;
            float sum = 0;
            for (int l = 0; l < layers; l++) sum += d.blockScores()[(l * seqs + s) * w + last];
            if (Float.isFinite(sum)) cache.setBlockScore(ids[s], nb - 1, sum / layers);
            if (d.victims()[s] >= 0) {
                int phys = cache.evictBlock(ids[s], d.victims()[s]);
                if (phys != d.freed()[s]) throw new IllegalStateException("sequence " + ids[s] + ": evicted physical block " + phys + ", the kernel freed " + d.freed()[s]);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // prefill selection (PE-REF step 4)
    // ---------------------------------------------------------------------------------------------

    /** How many tokens a prompt of {@code length} keeps: L if L <= C, else C + (L mod B). */
    public static int prefillKeepCount(int length, int budget, int blockSize) {
        return length <= budget ? length : budget + length % blockSize;
    }

    /** The kept-index offsets (seqs + 1 ints) of prompts with the given row offsets. */
    public static int[] prefillKeepOffsets(int[] rowOffsets, int budget, int blockSize) {
        checkPrefill(rowOffsets, budget, blockSize);
        int[] out = new int[rowOffsets.length];
        for (int s = 0; s + 1 < rowOffsets.length; s++) out[s + 1] = out[s] + prefillKeepCount(rowOffsets[s + 1] - rowOffsets[s], budget, blockSize);
        return out;
    }

    private static void checkPrefill(int[] rowOffsets, int budget, int blockSize) {
        if (blockSize < 1) throw new IllegalArgumentException("blockSize: must be >= 1, was " + blockSize);
        if (budget % blockSize != 0 || (long) budget < 3L * blockSize) throw new IllegalArgumentException("budget: must be a multiple of B and >= 3B, was " + budget);
        if (rowOffsets == null || rowOffsets.length < 2 || rowOffsets[0] != 0) throw new IllegalArgumentException("rowOffsets: needs seqs + 1 >= 2 entries starting at 0");
        for (int s = 0; s + 1 < rowOffsets.length; s++)
            if (rowOffsets[s + 1] < rowOffsets[s]) throw new IllegalArgumentException("rowOffsets: must be non-decreasing (entry " + (s + 1) + ")");
    }

    /**
     * Device pointers in, on the caller's stream, no sync: the positions each prompt keeps (PE-REF
     * step 4), ascending, into {@code kept} at {@link #prefillKeepOffsets}; one launch. {@code scores}:
     * the concatenated token scores of the prompts ({@code rowOffsets[seqs]} floats). A prompt with a
     * NaN/Inf score makes {@link Pending#await} throw (that prompt's row is not written).
     */
    public static Pending prefillKeepOnDevice(DeviceBuffer scores, int[] rowOffsets, int budget, int blockSize, DeviceBuffer kept, Workspace ws,
                                              Stream stream) {
        if (scores == null || kept == null || ws == null || stream == null) throw new IllegalArgumentException("scores, kept, ws, stream: must not be null");
        ws.requireStream(stream);
        int[] keepOffsets = prefillKeepOffsets(rowOffsets, budget, blockSize);
        int seqs = rowOffsets.length - 1, total = rowOffsets[seqs];
        if (scores.bytes() < 4L * total) throw new IllegalArgumentException("scores: needs rowOffsets[seqs] = " + total + " floats");
        if (kept.bytes() < 4L * keepOffsets[seqs]) throw new IllegalArgumentException("kept: needs " + keepOffsets[seqs] + " ints");
        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        if (keepOffsets[seqs] > 0) {
            DeviceBuffer rows = ws.ints("pagedEviction.prefillRows", rowOffsets, stream);
            DeviceBuffer keeps = ws.ints("pagedEviction.prefillKeeps", keepOffsets, stream);
            DeviceBuffer rev = ws.scratch("pagedEviction.prefillRev", 4L * total);
            DeviceBuffer idx = ws.scratch("pagedEviction.prefillIdx", 4L * total);
            PagedEvictionKernel.launchPrefill(ws.device(), stream, scores, rows, seqs, budget, blockSize, keeps, rev, idx, kept, status.buffer(), epoch);
        }
        return Pending.of(status, epoch, stream, "scores: a prompt's token score is NaN or infinite");
    }

    /**
     * StreamingLLM's paged prefill (SL-5; {@link PagedEvictionOptions.Prefill#RECENT}): the score is the
     * position, so each prompt over the budget keeps [0, B), its most recent C − 2B middle tokens and the
     * last B + r; device pointers out, no scores read, no scratch; one launch, no sync.
     */
    public static Pending prefillKeepRecentOnDevice(int[] rowOffsets, int budget, int blockSize, DeviceBuffer kept, Workspace ws, Stream stream) {
        if (kept == null || ws == null || stream == null) throw new IllegalArgumentException("kept, ws, stream: must not be null");
        ws.requireStream(stream);
        int[] keepOffsets = prefillKeepOffsets(rowOffsets, budget, blockSize);
        int seqs = rowOffsets.length - 1;
        if (kept.bytes() < 4L * keepOffsets[seqs]) throw new IllegalArgumentException("kept: needs " + keepOffsets[seqs] + " ints");
        StatusWord status = ws.status();
        int epoch = status.nextEpoch(stream);
        if (keepOffsets[seqs] > 0) {
            DeviceBuffer rows = ws.ints("pagedEviction.prefillRows", rowOffsets, stream);
            DeviceBuffer keeps = ws.ints("pagedEviction.prefillKeeps", keepOffsets, stream);
            PagedEvictionKernel.launchPrefill(ws.device(), stream, null, rows, seqs, budget, blockSize, keeps, null, null, kept, status.buffer(), epoch);
        }
        return Pending.of(status, epoch, stream, "prefill: rejected");
    }

    /**
     * The prefill rule of {@code options}: {@link #prefillKeepOnDevice(DeviceBuffer, int[], int, int, DeviceBuffer, Workspace, Stream)}
     * for {@link PagedEvictionOptions.Prefill#SCORES}, {@link #prefillKeepRecentOnDevice} for
     * {@link PagedEvictionOptions.Prefill#RECENT} ({@code scores} is then not read and may be null).
     */
    public static Pending prefillKeepOnDevice(DeviceBuffer scores, int[] rowOffsets, int budget, int blockSize, PagedEvictionOptions options,
                                              DeviceBuffer kept, Workspace ws, Stream stream) {
        if (options == null) throw new IllegalArgumentException("options: must not be null");
        return options.prefill() == PagedEvictionOptions.Prefill.RECENT ? prefillKeepRecentOnDevice(rowOffsets, budget, blockSize, kept, ws, stream)
                : prefillKeepOnDevice(scores, rowOffsets, budget, blockSize, kept, ws, stream);
    }

    /** Host arrays in: per prompt the kept positions of {@link #prefillKeepRecentOnDevice}, ascending. */
    public static int[][] prefillKeepRecent(KernelDevice device, int[] rowOffsets, int budget, int blockSize) {
        if (device == null) throw new IllegalArgumentException("device: must not be null");
        int[] keepOffsets = prefillKeepOffsets(rowOffsets, budget, blockSize);
        int seqs = rowOffsets.length - 1;
        int[] flat = new int[keepOffsets[seqs]];
        Stream stream = device.defaultStream();
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer kept = device.alloc(Math.max(4L, 4L * flat.length))) {
            prefillKeepRecentOnDevice(rowOffsets, budget, blockSize, kept, ws, stream).await();
            if (flat.length > 0) device.download(kept, flat, stream);
            stream.synchronize();
        }
        return split(flat, keepOffsets);
    }

    private static int[][] split(int[] flat, int[] keepOffsets) {
        int seqs = keepOffsets.length - 1;
        int[][] out = new int[seqs][];
        for (int s = 0; s < seqs; s++) out[s] = Arrays.copyOfRange(flat, keepOffsets[s], keepOffsets[s + 1]);
        return out;
    }

    /** Host arrays in: per prompt the kept positions, ascending. */
    public static int[][] prefillKeep(KernelDevice device, float[] scores, int[] rowOffsets, int budget, int blockSize) {
        if (device == null || scores == null) throw new IllegalArgumentException("device, scores: must not be null");
        int[] keepOffsets = prefillKeepOffsets(rowOffsets, budget, blockSize);
        int seqs = rowOffsets.length - 1;
        if (scores.length != rowOffsets[seqs]) throw new IllegalArgumentException("scores: " + scores.length + " floats, rowOffsets[seqs] = " + rowOffsets[seqs]);
        int[] flat = new int[keepOffsets[seqs]];
        Stream stream = device.defaultStream();
        try (Workspace ws = new Workspace(device, stream);
             DeviceBuffer x = device.alloc(Math.max(4L, 4L * scores.length));
             DeviceBuffer kept = device.alloc(Math.max(4L, 4L * flat.length))) {
            if (scores.length > 0) device.upload(scores, x, stream);
            prefillKeepOnDevice(x, rowOffsets, budget, blockSize, kept, ws, stream).await();
            if (flat.length > 0) device.download(kept, flat, stream);
            stream.synchronize();
        }
        return split(flat, keepOffsets);
    }
}
