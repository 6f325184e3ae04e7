package tokenprune.methods;

import java.util.Arrays;
import java.util.Objects;

import tokenprune.device.Device;
import tokenprune.device.DeviceBuffer;
import tokenprune.device.KernelDevice;
import tokenprune.device.Stream;
import tokenprune.kernels.ClsAttentionKernel;
import tokenprune.reference.FasterVlmReference;

/**
 * FasterVLM (arXiv 2412.01818, methods-vision.md §5): keep the T patches of each image that the
 * [CLS] token attends to most in the chosen vision-encoder layer (the head mean of the CLS row of
 * the softmax over all N keys, CLS column dropped), in raster order. Images are independent: a
 * batch of images, the base image and crops of a LLaVA-NeXT anyres image ({@link #anyresTokenOrder}),
 * or the frames of a video ({@link #concatenatedRows}).
 *
 * <p>On a kernel device it is two launches for the whole batch and never builds an attention map:
 * the CLS-row scores kernel (one block per image and head, head mean on chip) and the shared top-k
 * kernel. On the cpu device it is the float64 reference.
 */
public final class FasterVlm {
    private static final String REJECTED = "queries/keys: contain NaN or Inf, or a logit scale (q.k) overflows fp32";

    private FasterVlm() {
    }

    /**
     * Selects from queries and keys in Java arrays; kept indices per image are local to its N-1
     * patches (0 = the first patch, i.e. token 1), ascending.
     *
     * @throws IllegalArgumentException for a keep count or ratio the images cannot satisfy, or a
     *     NaN/Inf input (the message names image, token, head and element)
     */
    public static Selection select(Device device, HostClsAttention input, FasterVlmOptions options) {
        Objects.requireNonNull(device, "device");
        ClsAttentionLayout layout = input.layout();
        int[] keepOffsets = options.keepOffsets(layout);
        float scale = options.scaleFor(layout.headDim());
        if (!(device instanceof KernelDevice kd)) return FasterVlmReference.select(input, keepOffsets[1], scale);

        checkFitsOnChip(kd, layout);
        Stream stream = kd.defaultStream();
        int total = keepOffsets[layout.images()];
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer q = upload(kd, input.queries(), stream);
             DeviceBuffer k = upload(kd, input.keys(), stream);
             DeviceBuffer kept = kd.alloc(total * 4L)) {
            try {
                selectOnDevice(new DeviceClsAttention(q, k, input.dtype(), layout), options, kept, null, ws, stream).await();
            } catch (IllegalArgumentException e) {
                throw withLocation(input, e);
            }
            int[] keptHost = new int[total];
            kd.download(kept, keptHost, stream);
            return new Selection(keepOffsets, keptHost, null);
        }
    }

    /** FasterVLM's patch scores of every image (float[B][N-1]), with the given attention scale. */
    public static float[][] scores(Device device, HostClsAttention input, float scale) {
        Objects.requireNonNull(device, "device");
        checkScale(scale);
        ClsAttentionLayout layout = input.layout();
        int patches = layout.patches();
        float[][] out = new float[layout.images()][patches];
        if (!(device instanceof KernelDevice kd)) {
            double[][] s = FasterVlmReference.scores(input, scale);
            for (int b = 0; b < s.length; b++) for (int j = 0; j < patches; j++) out[b][j] = (float) s[b][j];
            return out;
        }
        checkFitsOnChip(kd, layout);
        Stream stream = kd.defaultStream();
        try (Workspace ws = new Workspace(kd, stream);
             DeviceBuffer q = upload(kd, input.queries(), stream);
             DeviceBuffer k = upload(kd, input.keys(), stream);
             DeviceBuffer scores = kd.alloc((long) layout.images() * patches * 4)) {
            try {
                scoresOnDevice(new DeviceClsAttention(q, k, input.dtype(), layout), scale, scores, ws, stream).await();
            } catch (IllegalArgumentException e) {
                throw withLocation(input, e);
            }
            float[] all = new float[layout.images() * patches];
            kd.download(scores, all, stream);
            for (int b = 0; b < layout.images(); b++) System.arraycopy(all, b * patches, out[b], 0, patches);
            return out;
        }
    }

    /**
     * Queues FasterVLM on inputs already on the device: image b's T kept patch indices (ascending,
     * local to its N-1 patches) go to {@code keptOut} at int offset b T and, if
     * {@code keepMaskOrNull} is not null, one byte per patch (1 kept, 0 not) to it at byte offset
     * b (N-1). Two launches on {@code stream} (scores, then top-k), no host synchronisation; call
     * {@link Pending#await} to learn whether the input was rejected (NaN or Inf, or an overflowing
     * logit), in which case neither output was written.
     */
    public static Pending selectOnDevice(DeviceClsAttention input, FasterVlmOptions options, DeviceBuffer keptOut, DeviceBuffer keepMaskOrNull,
                                         Workspace workspace, Stream stream) {
        KernelDevice device = workspace.device();
        ClsAttentionLayout layout = input.layout();
        int[] keepOffsets = options.keepOffsets(layout);
        long need = keepOffsets[layout.images()] * 4L;
        if (keptOut.bytes() < need) throw new IllegalArgumentException("keptOut: needs " + need + " bytes, has " + keptOut.bytes());
        long maskNeed = (long) layout.images() * layout.patches();
        if (keepMaskOrNull != null && keepMaskOrNull.bytes() < maskNeed) {
            throw new IllegalArgumentException("keepMask: needs " + maskNeed + " bytes, has " + keepMaskOrNull.bytes());
        }
        DeviceBuffer scores = workspace.scratch("fastervlm.scores", maskNeed * 4);
        int epoch = queueScores(device, input, options.scaleFor(layout.headDim()), scores, workspace, stream);
        // the shared top-k kernel, chained on this call's epoch: it writes nothing if the scores kernel rejected the input
        TopK.enqueueSelect(device, scores, layout.scoreRowOffsets(), keepOffsets, keptOut, keepMaskOrNull, workspace, epoch, stream);
        return new Pending(workspace.status(), epoch, stream, REJECTED);
    }

    /**
     * Queues the scores alone: image b's N-1 patch scores go to {@code scoresOut} (fp32) at float
     * offset b (N-1). One launch. If {@link Pending#await} throws, the scores of the images
     * concerned were not written (those of other images may have been).
     */
    public static Pending scoresOnDevice(DeviceClsAttention input, float scale, DeviceBuffer scoresOut, Workspace workspace, Stream stream) {
        checkScale(scale);
        ClsAttentionLayout layout = input.layout();
        long need = (long) layout.images() * layout.patches() * 4;
        if (scoresOut.bytes() < need) throw new IllegalArgumentException("scoresOut: needs " + need + " bytes, has " + scoresOut.bytes());
        int epoch = queueScores(workspace.device(), input, scale, scoresOut, workspace, stream);
        return new Pending(workspace.status(), epoch, stream, REJECTED);
    }

    private static int queueScores(KernelDevice device, DeviceClsAttention input, float scale, DeviceBuffer scores, Workspace workspace,
                                   Stream stream) {
        ClsAttentionLayout l = input.layout();
        if (input.queries().device() != device) throw new IllegalArgumentException("queries: on another device than the workspace");
        checkFitsOnChip(device, l);
        DeviceBuffer probs = workspace.scratch("fastervlm.probs", ClsAttentionKernel.probFloats(l.images(), l.heads(), l.tokens()) * 4);
        // one arrival ticket per image: zero when first uploaded, and every launch leaves them at zero
        DeviceBuffer arrivals = workspace.ints("fastervlm.arrivals", new int[l.images()], stream);
        int epoch = workspace.status().nextEpoch(stream);
        ClsAttentionKernel.launch(device, stream, input.dtype(), input.queries(), l.queryImageStride(), l.queryHeadStride(), input.keys(),
                l.keyImageStride(), l.keyTokenStride(), l.keyHeadStride(), l.images(), l.tokens(), l.heads(), l.headDim(), scale, probs,
                arrivals, workspace.status().buffer(), epoch, scores);
        return epoch;
    }

    /** Kept tokens of one LLaVA-NeXT anyres image: T for the base image and T for each of the grid's crops. */
    public static int anyresKeptCount(int keep, int gridRows, int gridCols) {
        if (keep < 1) throw new IllegalArgumentException("keep: must be >= 1, got " + keep);
        checkGrid(gridRows, gridCols);
        return Math.multiplyExact(keep, 1 + gridRows * gridCols);
    }

    /**
     * The official FasterVLM token order of one LLaVA-NeXT anyres image (§5.2, hard-coded
     * {@code spatial} merge: no unpadding, no newline tokens). The image's selections are sets
     * {@code firstSet} (the base image) and {@code firstSet + 1 + r gridCols + c} (the crop at grid
     * row r, column c, in LLaVA-NeXT's raster order of crops) of {@code perImage}, each over
     * {@code side x side} patches. Returns rows into the concatenated patch features
     * [base, crop 0, crop 1, ...] ({@code (1 + crops) side^2} rows): first the base image's kept
     * patches in raster order, then the crops' kept patches in raster order of the whole crop map,
     * i.e. ascending (r side + y, c side + x) for in-crop row y and column x.
     */
    public static int[] anyresTokenOrder(Selection perImage, int firstSet, int gridRows, int gridCols, int side) {
        checkGrid(gridRows, gridCols);
        if (side < 1) throw new IllegalArgumentException("side: patches per crop side must be >= 1, got " + side);
        int crops = gridRows * gridCols;
        if (firstSet < 0 || firstSet + 1 + crops > perImage.sets()) {
            throw new IllegalArgumentException("firstSet: sets " + firstSet + " .. " + (firstSet + crops) + " (base + " + crops
                    + " crops) exceed the selection's " + perImage.sets());
        }
        int patches = Math.multiplyExact(side, side);
        int width = gridCols * side;
        int total = 0;
        for (int s = firstSet; s <= firstSet + crops; s++) total += perImage.keepOffsets()[s + 1] - perImage.keepOffsets()[s];
        int[] rows = new int[total];
        int at = 0;
        for (int j : checkedKept(perImage, firstSet, patches)) rows[at++] = j;  // base image: already ascending
        long[] keyed = new long[total - at];  // (map position << 32) | row, sorted by map position
        int n = 0;
        for (int r = 0; r < gridRows; r++) {
            for (int c = 0; c < gridCols; c++) {
                int crop = r * gridCols + c;
                for (int j : checkedKept(perImage, firstSet + 1 + crop, patches)) {
                    long position = (long) (r * side + j / side) * width + (c * side + j % side);
                    keyed[n++] = position << 32 | ((long) (1 + crop) * patches + j);
                }
            }
        }
        Arrays.sort(keyed);
        for (long v : keyed) rows[at++] = (int) v;
        return rows;
    }

    /**
     * Rows into the B x (N-1) patch features of a whole batch, image by image, each image's kept
     * patches in raster order: {@code b (N-1) + kept}. This is FasterVLM's video order (frames are
     * independent images, §5.3), and the gather list for any batch of plain images.
     */
    public static int[] concatenatedRows(Selection selection, int patchesPerImage) {
        if (patchesPerImage < 1) throw new IllegalArgumentException("patchesPerImage: must be >= 1, got " + patchesPerImage);
        int[] rows = new int[selection.kept().length];
        for (int b = 0; b < selection.sets(); b++) {
            int at = selection.keepOffsets()[b];
            for (int j : checkedKept(selection, b, patchesPerImage)) rows[at++] = Math.addExact(Math.multiplyExact(b, patchesPerImage), j);
        }
        return rows;
    }

    private static int[] checkedKept(Selection s, int set, int patches) {
        int[] kept = s.kept(set);
        for (int j : kept) {
            if (j < 0 || j >= patches) throw new IllegalArgumentException("selection: set " + set + " keeps patch " + j + ", outside [0, " + patches + ")");
        }
        return kept;
    }

    private static void checkGrid(int gridRows, int gridCols) {
        if (gridRows < 1) throw new IllegalArgumentException("gridRows: must be >= 1, got " + gridRows);
        if (gridCols < 1) throw new IllegalArgumentException("gridCols: must be >= 1, got " + gridCols);
    }

    private static void checkScale(float scale) {
        if (!(Float.isFinite(scale) && scale > 0)) throw new IllegalArgumentException("scale: must be finite and > 0, got " + scale);
    }

    private static void checkFitsOnChip(KernelDevice device, ClsAttentionLayout layout) {
        long need = ClsAttentionKernel.sharedBytes(layout.tokens(), layout.headDim());
        int max = ClsAttentionKernel.maxSharedBytes(device);
        if (need > max) {
            throw new IllegalArgumentException("tokens: " + layout.tokens() + " tokens of headDim " + layout.headDim() + " need " + need
                    + " bytes of shared memory for the logits, more than the " + max + " this device allows");
        }
    }

    private static DeviceBuffer upload(KernelDevice kd, Object array, Stream stream) {
        if (array instanceof float[] f) {
            DeviceBuffer b = kd.alloc(Math.max(4L, f.length * 4L));
            kd.upload(f, b, stream);
            return b;
        }
        short[] s = (short[]) array;
        DeviceBuffer b = kd.alloc(Math.max(2L, s.length * 2L));
        kd.upload(s, b, stream);
        return b;
    }

    private static IllegalArgumentException withLocation(HostClsAttention input, IllegalArgumentException e) {
        String where = input.firstNonFinite();
        return where == null ? e : new IllegalArgumentException("queries/keys: non-finite value at " + where, e);
    }
}
