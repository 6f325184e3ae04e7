package tokenprune.methods;

import java.util.Arrays;
import java.util.Objects;

import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.IgaKernel;
import tokenprune.kernels.StatusWord;
import tokenprune.kernels.TransPruneScoreKernel;
import tokenprune.kernels.TtvKernel;

/**
 * The device state of one TransPrune request (a batch of sequences going through the decoder):
 * the accumulated TTV vector A of the current image tokens (fp32), the TTV terms of the
 * sub-blocks added since the last pruning stage, and the kept list. Everything runs on the stream
 * given at {@link TransPrune#begin}, without host synchronisation, on device pointers the caller
 * owns. Use one accumulator per request; {@link #reset} starts the next request and reuses the
 * buffers (same-shaped requests allocate nothing). Not thread-safe; close it to free its buffers.
 *
 * <p>Launches: {@link #addSubBlock} one (tp_ttv: norms, dot product and the partial sums of the
 * normaliser in one pass over u and v); a pruning stage ({@link #prune}) is tp_iga (skipped in
 * TTV-only mode) and tp_transprune_select (one block per sequence: folds the pending TTV terms
 * into A, reduces IGA, scores, takes the top-k, re-indexes A to the survivors and writes the
 * caller's outputs): 2 launches, 1 in TTV-only mode.
 *
 * <p>Bad input: shapes, counts and buffer sizes are checked at once ({@link IllegalArgumentException}
 * naming the argument). NaN/Inf in u, v, q or k, a zero row of u (m = |v|/|u| has no epsilon) or
 * a score that overflows are found by the kernels: every {@link Pending} of the request from then
 * on throws {@link IllegalArgumentException} on {@code await}, and no later stage writes the
 * caller's outputs (one status epoch per request). Reset the accumulator after that.
 */
public final class TransPruneAccumulator implements AutoCloseable {
    static final String REJECTED = "TransPrune: the request was rejected: u/v contain NaN/Inf or a zero row of u, q/k contain NaN/Inf,"
            + " or a score was not finite; no later output of this request is written (reset the accumulator)";

    private final KernelDevice device;
    private final Workspace ws;
    private final Stream stream;
    private final TransPruneOptions options;
    private final StatusWord status;
    private int epoch;

    private ImageSequences original, current;
    private int stagesDone, pending;
    private boolean accValid;
    private int meStride, zStride, slotCapacity;
    private int lastScored = -1;
    private DeviceBuffer accCur, accNext, me, zPartial, kept, scores;
    private boolean closed;

    TransPruneAccumulator(Workspace ws, Stream stream, ImageSequences sequences, TransPruneOptions options) {
        this.ws = Objects.requireNonNull(ws, "ws");
        this.stream = Objects.requireNonNull(stream, "stream");
        this.options = Objects.requireNonNull(options, "options");
        this.device = ws.device();
        if (stream.device() != device) throw new IllegalArgumentException("stream: belongs to another device than the workspace");
        ws.requireStream(stream);
        if (options.ttvOnly() && options.ttvWeight() == 0) throw new IllegalArgumentException("options: TTV-only mode needs ttvWeight > 0");
        this.status = new StatusWord(device, stream);
        try {
            reset(sequences);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Starts a new request on the same buffers (grown if needed); the previous state is dropped. */
    public void reset(ImageSequences sequences) {
        requireOpen();
        Objects.requireNonNull(sequences, "sequences");
        epoch = status.nextEpoch(stream);
        original = current = sequences;
        stagesDone = 0;
        pending = 0;
        accValid = false;
        lastScored = -1;
        int images = sequences.totalImage();
        meStride = images;
        zStride = sequences.sets() * TtvKernel.chunks(sequences.maxLength());
        slotCapacity = Math.max(1, options.schedule().maxPendingSubBlocks());
        accCur = ensure(accCur, 4L * images);
        accNext = ensure(accNext, 4L * images);
        kept = ensure(kept, 4L * images);
        scores = ensure(scores, 4L * images);
        me = ensure(me, 4L * meStride * slotCapacity);
        zPartial = ensure(zPartial, 4L * zStride * slotCapacity);
        slotCapacity = (int) Math.min(me.bytes() / (4L * meStride), zPartial.bytes() / (4L * zStride));
    }

    private DeviceBuffer ensure(DeviceBuffer b, long bytes) {
        if (b != null && b.bytes() >= bytes) return b;
        if (b != null) {
            stream.synchronize();  // queued kernels may still read it
            b.close();
        }
        return device.alloc(Math.max(4, bytes));
    }

    public TransPruneOptions options() {
        return options;
    }

    /** The sequences as the request started. */
    public ImageSequences original() {
        return original;
    }

    /** The sequences now: after the stages done so far, the layout the next inputs must have. */
    public ImageSequences current() {
        return current;
    }

    public int stagesDone() {
        return stagesDone;
    }

    /** Sub-blocks added since the last pruning stage. */
    public int pendingSubBlocks() {
        return pending;
    }

    public Stream stream() {
        return stream;
    }

    /**
     * Queues the TTV of one sub-block: {@code u} = the block's input after RMSNorm, {@code v} = its
     * output before the residual add, both over every token of the current sequences (layout
     * {@code current().layout(d)}, any row strides), the same dtype. One launch.
     */
    public Pending addSubBlock(DeviceTokens u, DeviceTokens v) {
        requireOpen();
        checkTokens(u, "u");
        checkTokens(v, "v");
        if (v.dtype() != u.dtype()) throw new IllegalArgumentException("v: dtype " + v.dtype() + " differs from u's " + u.dtype());
        if (v.layout().d() != u.layout().d()) throw new IllegalArgumentException("v: d = " + v.layout().d() + " differs from u's d = " + u.layout().d());
        if (status.knownRejected(epoch)) return new Pending(status, epoch, stream, REJECTED);  // the request failed: launch nothing more
        if (pending == slotCapacity) growSlots();
        DeviceBuffer seq = ws.ints("transprune.seq", current.descriptor(), stream);
        TtvKernel.launch(device, stream, u.dtype(), u.data(), u.layout().rowStride(), v.data(), v.layout().rowStride(), u.layout().d(), seq,
                current.sets(), current.maxLength(), me.slice(4L * pending * meStride, 4L * meStride),
                zPartial.slice(4L * pending * zStride, 4L * zStride), status.buffer(), epoch);
        pending++;
        return new Pending(status, epoch, stream, REJECTED);
    }

    /** Both sub-blocks of one layer (attention, then MLP): two launches. */
    public Pending addLayer(DeviceTokens uAttention, DeviceTokens vAttention, DeviceTokens uMlp, DeviceTokens vMlp) {
        addSubBlock(uAttention, vAttention);
        return addSubBlock(uMlp, vMlp);
    }

    /**
     * The schedule's next pruning stage: keeps {@code schedule.keepCount(N_b, stage)} image tokens
     * of each sequence (N_b = its original count). See {@link #pruneTo}.
     *
     * @throws IllegalStateException if every stage of the schedule is done
     */
    public Pending prune(DeviceHeads q, DeviceHeads k, DeviceBuffer keptOut, DeviceBuffer rowGatherOut) {
        requireOpen();
        TransPruneSchedule schedule = options.schedule();
        if (stagesDone >= schedule.stages()) {
            throw new IllegalStateException("all " + schedule.stages() + " pruning stages of the schedule are done");
        }
        return pruneTo(schedule.keepCounts(original.imageCounts(), stagesDone), q, k, keptOut, rowGatherOut);
    }

    /**
     * Queues a pruning stage that keeps {@code keepCounts[b]} image tokens of sequence b.
     *
     * @param q the next layer's queries over every token of the current sequences (RoPE applied
     *     with the current, pre-pruning positions); only the text rows after each image are read.
     *     Null in TTV-only mode.
     * @param k the next layer's keys, likewise (all rows read); kv heads must divide q's heads
     * @param keptOut null, or int32 output: sequence b's kept image tokens (indices local to its
     *     current image block, ascending) at int offset {@code current().afterPruning(keepCounts).imageOffsets()[b]}
     * @param rowGatherOut null, or int32 output: row r of the pruned batch is row
     *     {@code rowGatherOut[r]} of the current one (prefix, kept image tokens, text of each sequence;
     *     positions after pruning are simply 0 .. L'-1 per sequence)
     */
    public Pending pruneTo(int[] keepCounts, DeviceHeads q, DeviceHeads k, DeviceBuffer keptOut, DeviceBuffer rowGatherOut) {
        requireOpen();
        current.checkKeepCounts(keepCounts);
        ImageSequences next = current.afterPruning(keepCounts);
        int heads = 0, tiles = 0;
        if (options.ttvOnly()) {
            if (q != null || k != null) throw new IllegalArgumentException("q/k: TTV-only mode takes no queries or keys (pass null)");
        } else {
            checkHeads(q, k);
            heads = q.layout().heads();
            tiles = IgaKernel.tiles(current.maxTextLength());
        }
        if (keptOut != null) requireBytes(keptOut, 4L * next.totalImage(), "keptOut");
        if (rowGatherOut != null) requireBytes(rowGatherOut, 4L * next.totalRows(), "rowGatherOut");
        if (status.knownRejected(epoch)) return new Pending(status, epoch, stream, REJECTED);  // the request failed: launch nothing more

        int images = current.totalImage();
        DeviceBuffer seq = ws.ints("transprune.seq", current.descriptor(), stream);
        DeviceBuffer igaPartial = null;
        if (!options.ttvOnly()) {
            HeadLayout ql = q.layout(), kl = k.layout();
            igaPartial = ws.scratch("transprune.igaPartial", 4L * IgaKernel.partialFloats(heads, current.maxTextLength(), images));
            IgaKernel.launch(device, stream, q.dtype(), q.data(), ql.tokenStride(), ql.headStride(), k.data(), kl.tokenStride(), kl.headStride(),
                    heads, kl.heads(), ql.headDim(), (float) (1.0 / Math.sqrt(ql.headDim())), seq, current.sets(), current.maxTextLength(), images,
                    igaPartial, status.buffer(), epoch);
        }
        int[] keepOffsets = next.imageOffsets();
        TransPruneScoreKernel.launchSelect(device, stream, seq, current.sets(), me, meStride, zPartial, zStride, TtvKernel.chunks(current.maxLength()),
                pending, accCur, accValid, igaPartial, heads, tiles, images, options.ttvWeight(), options.igaWeight(), scores,
                ws.ints("transprune.keepOffsets", keepOffsets, stream), kept, accNext, keptOut, rowGatherOut, status.buffer(), epoch);

        DeviceBuffer t = accCur;
        accCur = accNext;
        accNext = t;
        accValid = true;
        pending = 0;
        lastScored = images;
        current = next;
        stagesDone++;
        return new Pending(status, epoch, stream, REJECTED);
    }

    /**
     * The accumulated TTV of the current image tokens, A plus the sub-blocks pending since the last
     * stage (folded on the host in fp32 like the score kernel), packed by {@code current().imageOffsets()}.
     * Synchronises the stream; for tests and inspection.
     *
     * @throws IllegalArgumentException if the request was rejected
     */
    public float[] accumulatedTtv() {
        requireOpen();
        if (status.rejected(epoch, stream)) throw new IllegalArgumentException(REJECTED);
        int images = current.totalImage(), sets = current.sets(), chunks = TtvKernel.chunks(current.maxLength());
        float[] a = new float[images];
        if (accValid) device.download(accCur, a, stream);
        int[] rows = current.rowOffsets(), img = current.imageOffsets();
        for (int p = 0; p < pending; p++) {
            float[] m = new float[meStride], z = new float[zStride];
            device.download(me.slice(4L * p * meStride, 4L * meStride), m, stream);
            device.download(zPartial.slice(4L * p * zStride, 4L * zStride), z, stream);
            for (int b = 0; b < sets; b++) {
                double zsum = 0;
                int n = rows[b + 1] - rows[b];
                for (int c = 0; c < TtvKernel.chunks(n); c++) zsum += z[b * chunks + c];
                for (int j = img[b]; j < img[b + 1]; j++) a[j] += (float) (m[j] / zsum);
            }
        }
        return a;
    }

    /**
     * The scores of the last pruning stage (one per image token the stage scored, packed by the
     * image offsets of the sequences before that stage). Synchronises the stream.
     *
     * @throws IllegalStateException before the first stage
     */
    public float[] lastScores() {
        requireOpen();
        if (lastScored < 0) throw new IllegalStateException("no pruning stage has run yet");
        if (status.rejected(epoch, stream)) throw new IllegalArgumentException(REJECTED);
        float[] s = new float[lastScored];
        device.download(scores, s, stream);
        return s;
    }

    private void growSlots() {
        int cap = slotCapacity * 2;
        DeviceBuffer me2 = device.alloc(4L * meStride * cap);
        DeviceBuffer z2 = device.alloc(4L * zStride * cap);
        device.copy(me, me2, 4L * meStride * pending, stream);
        device.copy(zPartial, z2, 4L * zStride * pending, stream);
        stream.synchronize();  // the copies (and queued kernels) still read the old slots
        me.close();
        zPartial.close();
        me = me2;
        zPartial = z2;
        slotCapacity = cap;
    }

    private void checkTokens(DeviceTokens t, String name) {
        Objects.requireNonNull(t, name);
        if (t.data().device() != device) throw new IllegalArgumentException(name + ": buffer belongs to another device");
        if (!Arrays.equals(t.layout().rowOffsets(), current.rowOffsets())) {
            throw new IllegalArgumentException(name + ": rows " + Arrays.toString(t.layout().rowOffsets()) + " must be the current sequences' "
                    + Arrays.toString(current.rowOffsets()) + " (one set per sequence, every token)");
        }
    }

    private void checkHeads(DeviceHeads q, DeviceHeads k) {
        Objects.requireNonNull(q, "q");
        Objects.requireNonNull(k, "k");
        if (q.data().device() != device) throw new IllegalArgumentException("q: buffer belongs to another device");
        if (k.data().device() != device) throw new IllegalArgumentException("k: buffer belongs to another device");
        checkHeadShapes(q.layout(), q.dtype(), k.layout(), k.dtype(), current, IgaKernel.maxHeadDim(device));
    }

    /** Shared by the device and host paths. */
    static void checkHeadShapes(HeadLayout q, DType qType, HeadLayout k, DType kType, ImageSequences seqs, int maxHeadDim) {
        if (q.tokens() != seqs.totalRows()) {
            throw new IllegalArgumentException("q: " + q.tokens() + " tokens, the current sequences have " + seqs.totalRows() + " rows");
        }
        if (k.tokens() != seqs.totalRows()) {
            throw new IllegalArgumentException("k: " + k.tokens() + " tokens, the current sequences have " + seqs.totalRows() + " rows");
        }
        if (kType != qType) throw new IllegalArgumentException("k: dtype " + kType + " differs from q's " + qType);
        if (k.headDim() != q.headDim()) throw new IllegalArgumentException("k: head dim " + k.headDim() + " differs from q's " + q.headDim());
        if (q.heads() % k.heads() != 0) {
            throw new IllegalArgumentException("k: kv heads (" + k.heads() + ") must divide the query heads (" + q.heads() + ")");
        }
        if (q.headDim() > maxHeadDim) throw new IllegalArgumentException("q: head dim " + q.headDim() + " exceeds the " + maxHeadDim + " this device's IGA tiles fit");
        for (int b = 0; b < seqs.sets(); b++) {
            if (seqs.textLength(b) < 1) {
                throw new IllegalArgumentException("sequences: sequence " + b + " has no text token after its image; IGA needs at least one"
                        + " query row (TransPruneOptions.ttvOnly for TTV alone)");
            }
        }
    }

    private void requireBytes(DeviceBuffer b, long need, String name) {
        if (b.device() != device) throw new IllegalArgumentException(name + ": buffer belongs to another device");
        if (b.bytes() < need) throw new IllegalArgumentException(name + ": needs " + need + " bytes, has " + b.bytes());
    }

    private void requireOpen() {
        if (closed) throw new IllegalStateException("the TransPrune accumulator was closed");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (DeviceBuffer b : new DeviceBuffer[] {accCur, accNext, me, zPartial, kept, scores}) if (b != null) b.close();
        status.close();
    }
}
