package tokenprune.methods;

import java.util.Arrays;
import java.util.Objects;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.reference.TransPruneReference;

/**
 * A TransPrune request on host arrays ({@link TransPrune#open}): the same steps as
 * {@link TransPruneAccumulator} with Java arrays in and out. On a kernel device every call uploads
 * its inputs, runs the kernels and waits for them (so a rejection names the offending value); on
 * the cpu device it is the float64 reference ({@link TransPruneReference}). After a rejected input
 * the session is void: later calls throw {@link IllegalStateException}.
 */
public final class TransPruneSession implements AutoCloseable {
    private final TransPruneOptions options;
    private final KernelDevice kd;  // null: reference
    private final Workspace ws;
    private final TransPruneAccumulator acc;
    private final TransPruneReference.Sequence[] ref;
    private ImageSequences original, current;
    private int stagesDone;
    private float[] lastScores;
    private int[] lastRowGather;
    private boolean failed, closed;

    TransPruneSession(Device device, ImageSequences sequences, TransPruneOptions options) {
        this.options = options;
        this.original = this.current = sequences;
        if (options.ttvOnly() && options.ttvWeight() == 0) throw new IllegalArgumentException("options: TTV-only mode needs ttvWeight > 0");
        if (device instanceof KernelDevice k) {
            kd = k;
            Stream stream = k.defaultStream();
            ws = new Workspace(k, stream);
            try {
                acc = new TransPruneAccumulator(ws, stream, sequences, options);
            } catch (RuntimeException e) {
                ws.close();
                throw e;
            }
            ref = null;
        } else {
            kd = null;
            ws = null;
            acc = null;
            ref = new TransPruneReference.Sequence[sequences.sets()];
            for (int b = 0; b < ref.length; b++) ref[b] = new TransPruneReference.Sequence(sequences.length(b), sequences.imageStart(b), sequences.imageCount(b));
        }
    }

    public ImageSequences original() {
        return original;
    }

    /** The sequences after the stages so far: the layout the next inputs must have. */
    public ImageSequences current() {
        return current;
    }

    public int stagesDone() {
        return stagesDone;
    }

    /** TTV of one sub-block; u and v cover every token of {@code current()} ({@code current().layout(d)}). */
    public void addSubBlock(HostTokens u, HostTokens v) {
        requireUsable();
        checkTokens(u, "u");
        checkTokens(v, "v");
        if (v.dtype() != u.dtype()) throw new IllegalArgumentException("v: dtype " + v.dtype() + " differs from u's " + u.dtype());
        if (v.layout().d() != u.layout().d()) throw new IllegalArgumentException("v: d = " + v.layout().d() + " differs from u's d = " + u.layout().d());
        if (kd == null) {
            String bad = describeTokens(u, v);  // the kernels' rule, with the same message
            if (bad != null) {
                failed = true;
                throw new IllegalArgumentException(bad);
            }
            for (int b = 0; b < ref.length; b++) ref[b].addSubBlock(u.set(b), v.set(b));
            return;
        }
        Stream stream = acc.stream();
        DeviceBuffer ud = upload("transprune.host.u", u, stream), vd = upload("transprune.host.v", v, stream);
        try {
            acc.addSubBlock(new DeviceTokens(ud, u.dtype(), u.layout()), new DeviceTokens(vd, v.dtype(), v.layout())).await();
        } catch (IllegalArgumentException e) {
            failed = true;
            String where = describeTokens(u, v);
            throw where == null ? e : new IllegalArgumentException(where, e);
        }
    }

    /** Attention then MLP sub-block of one layer. */
    public void addLayer(HostTokens uAttention, HostTokens vAttention, HostTokens uMlp, HostTokens vMlp) {
        addSubBlock(uAttention, vAttention);
        addSubBlock(uMlp, vMlp);
    }

    /** The schedule's next stage; q and k null in TTV-only mode. Returns the kept image tokens. */
    public Selection prune(HostHeads q, HostHeads k) {
        requireUsable();
        TransPruneSchedule schedule = options.schedule();
        if (stagesDone >= schedule.stages()) throw new IllegalStateException("all " + schedule.stages() + " pruning stages of the schedule are done");
        return pruneTo(schedule.keepCounts(original.imageCounts(), stagesDone), q, k);
    }

    /**
     * Keeps {@code keepCounts[b]} image tokens of sequence b. Returns the kept tokens per sequence
     * (indices local to its current image block, ascending); {@link #lastRowGather} gives the row
     * gather list of the pruned batch.
     */
    public Selection pruneTo(int[] keepCounts, HostHeads q, HostHeads k) {
        requireUsable();
        current.checkKeepCounts(keepCounts);
        ImageSequences next = current.afterPruning(keepCounts);
        int[] keepOffsets = next.imageOffsets();
        if (options.ttvOnly()) {
            if (q != null || k != null) throw new IllegalArgumentException("q/k: TTV-only mode takes no queries or keys (pass null)");
        } else {
            Objects.requireNonNull(q, "q");
            Objects.requireNonNull(k, "k");
            TransPruneAccumulator.checkHeadShapes(q.layout(), q.dtype(), k.layout(), k.dtype(), current, Integer.MAX_VALUE);
        }
        int[] kept = new int[next.totalImage()];
        if (kd == null) {
            String bad = describeHeads(q, k);  // the kernels' rule, with the same message
            if (bad != null) {
                failed = true;
                throw new IllegalArgumentException(bad);
            }
            float[] scores = new float[current.totalImage()];
            int[] rows = current.rowOffsets(), img = current.imageOffsets();
            double[][] perSequence = new double[ref.length][];
            for (int b = 0; b < ref.length; b++) {
                float[][][] qb = q == null ? null : q.tokens(rows[b], rows[b + 1]);
                float[][][] kb = k == null ? null : k.tokens(rows[b], rows[b + 1]);
                perSequence[b] = ref[b].scores(qb, kb, options.ttvWeight(), options.igaWeight());
                for (int j = 0; j < perSequence[b].length; j++) {
                    scores[img[b] + j] = (float) perSequence[b][j];
                    if (!Float.isFinite(scores[img[b] + j])) {
                        failed = true;
                        throw new IllegalArgumentException(TransPruneAccumulator.REJECTED);
                    }
                }
            }
            for (int b = 0; b < ref.length; b++) {
                int[] kb = TransPruneReference.topK(perSequence[b], keepCounts[b]);
                ref[b].keep(kb);
                System.arraycopy(kb, 0, kept, keepOffsets[b], kb.length);
            }
            lastScores = scores;
        } else {
            Stream stream = acc.stream();
            DeviceHeads qd = null, kdh = null;
            if (q != null) {
                qd = new DeviceHeads(upload("transprune.host.q", q.data(), q.layout().requiredElements(), stream), q.dtype(), q.layout());
                kdh = new DeviceHeads(upload("transprune.host.k", k.data(), k.layout().requiredElements(), stream), k.dtype(), k.layout());
            }
            DeviceBuffer keptDev = ws.scratch("transprune.host.kept", 4L * Math.max(1, next.totalImage()));
            DeviceBuffer gatherDev = ws.scratch("transprune.host.rowGather", 4L * next.totalRows());
            try {
                acc.pruneTo(keepCounts, qd, kdh, keptDev, gatherDev).await();
            } catch (IllegalArgumentException e) {
                failed = true;
                String where = describeHeads(q, k);
                throw where == null ? e : new IllegalArgumentException(where, e);
            }
            kd.download(keptDev, kept, stream);
            lastRowGather = new int[next.totalRows()];
            kd.download(gatherDev, lastRowGather, stream);
            lastScores = acc.lastScores();
        }
        if (kd == null) lastRowGather = current.rowGather(keepOffsets, kept);
        current = next;
        stagesDone++;
        return new Selection(keepOffsets, kept, null);
    }

    /** The accumulated TTV of the current image tokens (A plus the sub-blocks since the last stage). */
    public float[] accumulatedTtv() {
        requireUsable();
        if (kd != null) return acc.accumulatedTtv();
        float[] out = new float[current.totalImage()];
        int[] img = current.imageOffsets();
        for (int b = 0; b < ref.length; b++) {
            double[] a = ref[b].accumulated();
            for (int j = 0; j < a.length; j++) out[img[b] + j] = (float) a[j];
        }
        return out;
    }

    /** The scores of the last stage, packed by the image offsets before it. */
    public float[] lastScores() {
        if (lastScores == null) throw new IllegalStateException("no pruning stage has run yet");
        return lastScores.clone();
    }

    /** Row r of the batch after the last stage is row {@code lastRowGather()[r]} of the batch before it. */
    public int[] lastRowGather() {
        if (lastRowGather == null) throw new IllegalStateException("no pruning stage has run yet");
        return lastRowGather.clone();
    }

    private DeviceBuffer upload(String name, HostTokens t, Stream stream) {
        return upload(name, t.data(), t.layout().requiredElements(), stream);
    }

    private DeviceBuffer upload(String name, Object data, long elements, Stream stream) {
        if (data instanceof float[] f) {
            DeviceBuffer b = ws.scratch(name, 4L * f.length);
            kd.upload(f, b, stream);
            return b;
        }
        short[] s = (short[]) data;
        DeviceBuffer b = ws.scratch(name, 2L * s.length);
        kd.upload(s, b, stream);
        return b;
    }

    private void checkTokens(HostTokens t, String name) {
        Objects.requireNonNull(t, name);
        if (!Arrays.equals(t.layout().rowOffsets(), current.rowOffsets())) {
            throw new IllegalArgumentException(name + ": rows " + Arrays.toString(t.layout().rowOffsets()) + " must be the current sequences' "
                    + Arrays.toString(current.rowOffsets()) + " (one set per sequence, every token)");
        }
    }

    /** Where the kernels' rejection of u/v comes from, found on the host. */
    private String describeTokens(HostTokens u, HostTokens v) {
        String bad = u.firstNonFinite();
        if (bad != null) return "u: non-finite value at " + bad;
        bad = v.firstNonFinite();
        if (bad != null) return "v: non-finite value at " + bad;
        int[] rows = current.rowOffsets();
        for (int b = 0; b < current.sets(); b++) {
            for (int r = rows[b]; r < rows[b + 1]; r++) {
                boolean zero = true;
                for (int j = 0; j < u.layout().d() && zero; j++) zero = u.value(r, j) == 0f;
                if (zero) return "u: set " + b + ", token " + (r - rows[b]) + " is a zero vector; m = |v| / |u| is undefined";
            }
        }
        return null;
    }

    private String describeHeads(HostHeads q, HostHeads k) {
        if (q == null) return null;
        int[] rows = current.rowOffsets();
        for (int b = 0; b < current.sets(); b++) {
            String bad = q.firstNonFinite(rows[b] + current.imageEnd(b), rows[b + 1]);
            if (bad != null) return "q: non-finite value at " + bad;
        }
        String bad = k.firstNonFinite(0, rows[current.sets()]);
        return bad == null ? null : "k: non-finite value at " + bad;
    }

    private void requireUsable() {
        if (closed) throw new IllegalStateException("the TransPrune session was closed");
        if (failed) throw new IllegalStateException("an earlier input of this request was rejected; open a new session");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (acc != null) acc.close();
        if (ws != null) ws.close();
    }
}
