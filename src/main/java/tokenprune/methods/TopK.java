package tokenprune.methods;

import java.util.Objects;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.TopKKernel;
import tokenprune.reference.TopKReference;

/**
 * Score-based selection over B independent rows of fp32 scores (row b is
 * {@code scores[rowOffsets[b] .. rowOffsets[b+1])}, at least one score per row): exact top-k ranked by
 * larger score first, then lower index (methods-vision.md §2.2; {@code -0.0 == 0.0}, so the two zeros
 * tie), or every token with score {@code >= threshold}. Kept indices are local to the row and
 * ascending (original token order). On a kernel device it is one launch for the whole batch (one
 * block per row: radix select + ascending compaction, topk_select.cu); on the cpu device it is
 * {@link TopKReference}. Scores that are NaN or Inf are rejected with
 * {@link IllegalArgumentException}.
 *
 * <p>FasterVLM, DART and the CLI's {@code --method scores} build on {@link #selectOnDevice} (or on
 * {@link #enqueueSelect} inside a call that already has a status epoch).
 */
public final class TopK {
    private TopK() {
    }

    // ---- host arrays --------------------------------------------------------------------------

    /** One row of scores. */
    public static Selection select(Device device, float[] scores, KeepRule rule) {
        return select(device, scores, new int[] {0, scores.length}, rule);
    }

    /**
     * Selects per row by {@code rule} (a count, a ratio, or a threshold).
     *
     * @throws IllegalArgumentException for offsets that do not match the scores, a row that cannot
     *     satisfy the rule (the message names the row), or a NaN/Inf score (names row and index)
     */
    public static Selection select(Device device, float[] scores, int[] rowOffsets, KeepRule rule) {
        Objects.requireNonNull(rule, "rule");
        checkHostScores(scores, rowOffsets);
        if (rule.fixedCounts()) return select(device, scores, rowOffsets, rule.keepOffsets(rowOffsets));
        return threshold(device, scores, rowOffsets, ((KeepRule.Threshold) rule).threshold());
    }

    /**
     * Top-k with explicit counts: row b keeps {@code keepOffsets[b+1] - keepOffsets[b]} tokens
     * (0 .. n_b), written at {@code kept[keepOffsets[b] ..]} of the result.
     */
    public static Selection select(Device device, float[] scores, int[] rowOffsets, int[] keepOffsets) {
        Objects.requireNonNull(device, "device");
        checkHostScores(scores, rowOffsets);
        checkKeepOffsets(rowOffsets, keepOffsets);
        int rows = rowOffsets.length - 1, total = keepOffsets[rows];
        if (!(device instanceof KernelDevice kd)) {
            requireFinite(scores, rowOffsets);
            return new Selection(keepOffsets.clone(), TopKReference.select(scores, rowOffsets, keepOffsets), null);
        }
        Stream stream = kd.defaultStream();
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer s = kd.alloc(Math.max(4L, scores.length * 4L));
             DeviceBuffer kept = kd.alloc(Math.max(4L, total * 4L))) {
            kd.upload(scores, s, stream);
            try {
                selectOnDevice(kd, s, rowOffsets, keepOffsets, kept, null, ws, stream).await();
            } catch (IllegalArgumentException e) {
                requireFinite(scores, rowOffsets);
                throw e;
            }
            int[] keptHost = new int[total];
            kd.download(kept, keptHost, stream);
            return new Selection(keepOffsets.clone(), keptHost, null);
        }
    }

    private static Selection threshold(Device device, float[] scores, int[] rowOffsets, float threshold) {
        int rows = rowOffsets.length - 1, total = rowOffsets[rows];
        int[] keepOffsets = new int[rows + 1];
        if (!(device instanceof KernelDevice kd)) {
            requireFinite(scores, rowOffsets);
            int[][] perRow = new int[rows][];
            for (int b = 0; b < rows; b++) {
                perRow[b] = TopKReference.threshold(TopKReference.row(scores, rowOffsets, b), threshold);
                keepOffsets[b + 1] = keepOffsets[b] + perRow[b].length;
            }
            int[] kept = new int[keepOffsets[rows]];
            for (int b = 0; b < rows; b++) System.arraycopy(perRow[b], 0, kept, keepOffsets[b], perRow[b].length);
            return new Selection(keepOffsets, kept, null);
        }
        Stream stream = kd.defaultStream();
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer s = kd.alloc(total * 4L);
             DeviceBuffer kept = kd.alloc(total * 4L);
             DeviceBuffer counts = kd.alloc(rows * 4L)) {
            kd.upload(scores, s, stream);
            try {
                thresholdOnDevice(kd, s, rowOffsets, threshold, kept, counts, null, ws, stream).await();
            } catch (IllegalArgumentException e) {
                requireFinite(scores, rowOffsets);
                throw e;
            }
            int[] countsHost = new int[rows], capacity = new int[total];
            kd.download(counts, countsHost, stream);
            kd.download(kept, capacity, stream);
            for (int b = 0; b < rows; b++) keepOffsets[b + 1] = keepOffsets[b] + countsHost[b];
            int[] packed = new int[keepOffsets[rows]];
            for (int b = 0; b < rows; b++) System.arraycopy(capacity, rowOffsets[b], packed, keepOffsets[b], countsHost[b]);
            return new Selection(keepOffsets, packed, null);
        }
    }

    // ---- device pointers ----------------------------------------------------------------------

    /**
     * Queues exact top-k on fp32 scores already on the device: row b is {@code scores[rowOffsets[b]
     * .. rowOffsets[b+1])}, it keeps {@code keepOffsets[b+1] - keepOffsets[b]} tokens (0 .. n_b) ranked
     * by larger score first, then lower index ({@code -0.0 == 0.0}), and writes their indices (local
     * to the row, ascending) to {@code keptOut} at int offset keepOffsets[b]; if
     * {@code keepMaskOrNull} is not null it also writes one byte per token (1 kept, 0 not) at byte
     * offset rowOffsets[b]. One launch on {@code stream} for the whole batch, no host synchronisation;
     * the offsets are uploaded through {@code ws} only when they change. {@link Pending#await} throws
     * {@link IllegalArgumentException} if a score was NaN or Inf; then no output range of a row that
     * holds a non-finite score was written (rows of the same call without one may have been), and a
     * later kernel of the same epoch (e.g. {@link GatherTokens#enqueueGather}) writes nothing.
     *
     * @throws IllegalArgumentException at once for offsets that are not valid or buffers that are too
     *     small or belong to another device (the message names the argument)
     */
    public static Pending selectOnDevice(KernelDevice device, DeviceBuffer scores, int[] rowOffsets, int[] keepOffsets,
                                         DeviceBuffer keptOut, DeviceBuffer keepMaskOrNull, Workspace ws, Stream stream) {
        int epoch = ws.status().nextEpoch(stream);
        enqueueSelect(device, scores, rowOffsets, keepOffsets, keptOut, keepMaskOrNull, ws, epoch, stream);
        return new Pending(ws.status(), epoch, stream, "scores: contain NaN or Inf");
    }

    /**
     * {@link #selectOnDevice} as one step of a larger call that already took {@code epoch} from
     * {@code ws.status()}: the kernel writes nothing if an earlier kernel of that epoch rejected the
     * call, and reports non-finite scores under the same epoch. The caller awaits its own
     * {@link Pending}.
     */
    public static void enqueueSelect(KernelDevice device, DeviceBuffer scores, int[] rowOffsets, int[] keepOffsets,
                                     DeviceBuffer keptOut, DeviceBuffer keepMaskOrNull, Workspace ws, int epoch, Stream stream) {
        checkDeviceScores(device, scores, rowOffsets, keepMaskOrNull, ws);
        checkKeepOffsets(rowOffsets, keepOffsets);
        int rows = rowOffsets.length - 1;
        requireOnDevice(device, keptOut, "keptOut");
        long need = keepOffsets[rows] * 4L;
        if (keptOut.bytes() < need) throw new IllegalArgumentException("keptOut: needs " + need + " bytes, has " + keptOut.bytes());
        TopKKernel.launchSelect(device, stream, scores, ws.ints("topk.rowOffsets", rowOffsets, stream), ws.ints("topk.keepOffsets", keepOffsets, stream),
                rows, maxRow(rowOffsets), ws.status().buffer(), epoch, keptOut, keepMaskOrNull);
    }

    /**
     * Queues threshold selection on fp32 scores already on the device: row b keeps every token with
     * score {@code >= threshold} (possibly none). The count depends on the data, so the kept indices
     * are not packed: row b's go to {@code keptOut} at int offset rowOffsets[b] (ascending, local to
     * the row; capacity n_b, entries past the count are left as they were) and their number to
     * {@code countsOut[b]}; the mask as in {@link #selectOnDevice}. One launch, no host
     * synchronisation; read the counts after {@link Pending#await} to pack or gather. Rejection of
     * NaN/Inf as in {@link #selectOnDevice} (a rejected row writes neither kept, count nor mask).
     */
    public static Pending thresholdOnDevice(KernelDevice device, DeviceBuffer scores, int[] rowOffsets, float threshold, DeviceBuffer keptOut,
                                            DeviceBuffer countsOut, DeviceBuffer keepMaskOrNull, Workspace ws, Stream stream) {
        if (!Float.isFinite(threshold)) throw new IllegalArgumentException("threshold: must be finite, got " + threshold);
        checkDeviceScores(device, scores, rowOffsets, keepMaskOrNull, ws);
        int rows = rowOffsets.length - 1;
        requireOnDevice(device, keptOut, "keptOut");
        requireOnDevice(device, countsOut, "countsOut");
        if (keptOut.bytes() < rowOffsets[rows] * 4L) {
            throw new IllegalArgumentException("keptOut: needs " + rowOffsets[rows] * 4L + " bytes (an int per score), has " + keptOut.bytes());
        }
        if (countsOut.bytes() < rows * 4L) throw new IllegalArgumentException("countsOut: needs " + rows * 4L + " bytes (an int per row), has " + countsOut.bytes());
        int epoch = ws.status().nextEpoch(stream);
        TopKKernel.launchThreshold(device, stream, scores, ws.ints("topk.rowOffsets", rowOffsets, stream), threshold, rows, maxRow(rowOffsets),
                ws.status().buffer(), epoch, keptOut, countsOut, keepMaskOrNull);
        return new Pending(ws.status(), epoch, stream, "scores: contain NaN or Inf");
    }

    // ---- checks -------------------------------------------------------------------------------

    /** Row offsets: rows + 1 entries, starting at 0, every row at least one score. */
    static void checkRowOffsets(int[] rowOffsets) {
        Objects.requireNonNull(rowOffsets, "rowOffsets");
        if (rowOffsets.length < 2) throw new IllegalArgumentException("rowOffsets: need at least one row (length >= 2), got length " + rowOffsets.length);
        if (rowOffsets[0] != 0) throw new IllegalArgumentException("rowOffsets: must start at 0, got " + rowOffsets[0]);
        for (int b = 0; b + 1 < rowOffsets.length; b++) {
            if (rowOffsets[b + 1] <= rowOffsets[b]) {
                throw new IllegalArgumentException("rowOffsets: row " + b + " is empty or negative (offsets " + rowOffsets[b] + ", "
                        + rowOffsets[b + 1] + "); every row needs >= 1 score");
            }
        }
    }

    /** Keep offsets: rows + 1 entries from 0, row b keeping 0 .. n_b. */
    static void checkKeepOffsets(int[] rowOffsets, int[] keepOffsets) {
        Objects.requireNonNull(keepOffsets, "keepOffsets");
        int rows = rowOffsets.length - 1;
        if (keepOffsets.length != rows + 1) {
            throw new IllegalArgumentException("keepOffsets: need rows + 1 = " + (rows + 1) + " entries (like rowOffsets), got " + keepOffsets.length);
        }
        if (keepOffsets[0] != 0) throw new IllegalArgumentException("keepOffsets: must start at 0, got " + keepOffsets[0]);
        for (int b = 0; b < rows; b++) {
            int k = keepOffsets[b + 1] - keepOffsets[b], n = rowOffsets[b + 1] - rowOffsets[b];
            if (k < 0 || k > n) {
                throw new IllegalArgumentException("keepOffsets: row " + b + " keeps " + k + " of its " + n + " scores; need 0 <= k <= n");
            }
        }
    }

    private static void checkHostScores(float[] scores, int[] rowOffsets) {
        Objects.requireNonNull(scores, "scores");
        checkRowOffsets(rowOffsets);
        int total = rowOffsets[rowOffsets.length - 1];
        if (scores.length != total) {
            throw new IllegalArgumentException("scores: rowOffsets cover " + total + " scores, the array has " + scores.length);
        }
    }

    private static void checkDeviceScores(KernelDevice device, DeviceBuffer scores, int[] rowOffsets, DeviceBuffer keepMask, Workspace ws) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(ws, "ws");
        if (ws.device() != device) throw new IllegalArgumentException("ws: workspace belongs to another device");
        checkRowOffsets(rowOffsets);
        requireOnDevice(device, scores, "scores");
        long total = rowOffsets[rowOffsets.length - 1];
        if (scores.bytes() < total * 4) {
            throw new IllegalArgumentException("scores: rowOffsets cover " + total + " fp32 scores (" + total * 4 + " bytes), the device buffer has " + scores.bytes());
        }
        if (keepMask != null) {
            requireOnDevice(device, keepMask, "keepMask");
            if (keepMask.bytes() < total) throw new IllegalArgumentException("keepMask: needs " + total + " bytes (one per score), has " + keepMask.bytes());
        }
    }

    static void requireOnDevice(KernelDevice device, DeviceBuffer b, String name) {
        Objects.requireNonNull(b, name);
        if (b.device() != device) throw new IllegalArgumentException(name + ": buffer belongs to another device");
    }

    private static void requireFinite(float[] scores, int[] rowOffsets) {
        for (int b = 0; b + 1 < rowOffsets.length; b++) {
            String bad = TopKReference.firstNonFinite(scores, rowOffsets[b], rowOffsets[b + 1]);
            if (bad != null) throw new IllegalArgumentException("scores: non-finite value at " + (rowOffsets.length > 2 ? "row " + b + ", " : "") + bad);
        }
    }

    static int maxRow(int[] offsets) {
        int m = 0;
        for (int b = 0; b + 1 < offsets.length; b++) m = Math.max(m, offsets[b + 1] - offsets[b]);
        return m;
    }
}
