package tokenprune.methods;

import java.util.Arrays;
import java.util.Objects;

/**
 * B token sequences of a vision-language model, each laid out as {@code [prefix | image block |
 * text]} and packed row after row: sequence b is rows {@code [rowOffsets[b], rowOffsets[b+1])} of the
 * packed batch, its image tokens are positions {@code [imageStart[b], imageStart[b] + imageCount[b])}
 * within it and its text after the image is {@code [imageEnd(b), length(b))}. Every sequence has at
 * least one image token. Immutable; {@link #afterPruning} gives the layout once some image tokens
 * have been dropped (prefix and text unchanged, the kept image tokens contiguous).
 */
public final class ImageSequences {
    private final int[] lengths, imageStart, imageCount;
    private final int[] rowOffsets, imageOffsets;

    private ImageSequences(int[] lengths, int[] imageStart, int[] imageCount) {
        Objects.requireNonNull(lengths, "lengths");
        Objects.requireNonNull(imageStart, "imageStart");
        Objects.requireNonNull(imageCount, "imageCount");
        if (lengths.length < 1) throw new IllegalArgumentException("lengths: need at least one sequence");
        if (imageStart.length != lengths.length) {
            throw new IllegalArgumentException("imageStart: need one entry per sequence (" + lengths.length + "), got " + imageStart.length);
        }
        if (imageCount.length != lengths.length) {
            throw new IllegalArgumentException("imageCount: need one entry per sequence (" + lengths.length + "), got " + imageCount.length);
        }
        this.lengths = lengths.clone();
        this.imageStart = imageStart.clone();
        this.imageCount = imageCount.clone();
        rowOffsets = new int[lengths.length + 1];
        imageOffsets = new int[lengths.length + 1];
        for (int b = 0; b < lengths.length; b++) {
            if (this.lengths[b] < 1) throw new IllegalArgumentException("lengths: sequence " + b + " has length " + this.lengths[b] + "; need >= 1");
            if (this.imageStart[b] < 0) throw new IllegalArgumentException("imageStart: sequence " + b + " starts its image at " + this.imageStart[b] + "; need >= 0");
            if (this.imageCount[b] < 1) {
                throw new IllegalArgumentException("imageCount: sequence " + b + " has " + this.imageCount[b] + " image tokens; need >= 1");
            }
            if ((long) this.imageStart[b] + this.imageCount[b] > this.lengths[b]) {
                throw new IllegalArgumentException("imageCount: sequence " + b + "'s image [" + this.imageStart[b] + ", "
                        + ((long) this.imageStart[b] + this.imageCount[b]) + ") does not fit its length " + this.lengths[b]);
            }
            rowOffsets[b + 1] = Math.addExact(rowOffsets[b], this.lengths[b]);
            imageOffsets[b + 1] = imageOffsets[b] + this.imageCount[b];
        }
    }

    /** Sequences of the given lengths, image blocks at imageStart with imageCount tokens each. */
    public static ImageSequences of(int[] lengths, int[] imageStart, int[] imageCount) {
        return new ImageSequences(lengths, imageStart, imageCount);
    }

    /** One sequence: {@code prefix} tokens, {@code image} image tokens, {@code text} text tokens. */
    public static ImageSequences single(int prefix, int image, int text) {
        return new ImageSequences(new int[] {prefix + image + text}, new int[] {prefix}, new int[] {image});
    }

    public int sets() {
        return lengths.length;
    }

    public int length(int b) {
        return lengths[b];
    }

    public int imageStart(int b) {
        return imageStart[b];
    }

    public int imageCount(int b) {
        return imageCount[b];
    }

    /** First position after the image block (the first text token after the image). */
    public int imageEnd(int b) {
        return imageStart[b] + imageCount[b];
    }

    /** Text tokens after the image (the IGA query rows). */
    public int textLength(int b) {
        return lengths[b] - imageEnd(b);
    }

    /** B + 1 offsets of the sequences in the packed batch. */
    public int[] rowOffsets() {
        return rowOffsets.clone();
    }

    /** B + 1 offsets of each sequence's image tokens in per-image-token arrays (scores, TTV). */
    public int[] imageOffsets() {
        return imageOffsets.clone();
    }

    public int[] imageCounts() {
        return imageCount.clone();
    }

    public int totalRows() {
        return rowOffsets[lengths.length];
    }

    public int totalImage() {
        return imageOffsets[lengths.length];
    }

    public int maxLength() {
        return Arrays.stream(lengths).max().orElse(0);
    }

    public int maxTextLength() {
        int m = 0;
        for (int b = 0; b < sets(); b++) m = Math.max(m, textLength(b));
        return m;
    }

    /** The packed rows as a token layout of width d (ragged: one set per sequence). */
    public TokenLayout layout(int d) {
        return TokenLayout.ragged(rowOffsets, d);
    }

    /**
     * The layout after sequence b kept {@code keepCounts[b]} of its image tokens.
     *
     * @throws IllegalArgumentException if a count is outside [1, imageCount(b)] (names the sequence)
     */
    public ImageSequences afterPruning(int[] keepCounts) {
        checkKeepCounts(keepCounts);
        int[] len = new int[sets()];
        for (int b = 0; b < sets(); b++) len[b] = lengths[b] - imageCount[b] + keepCounts[b];
        return new ImageSequences(len, imageStart, keepCounts);
    }

    /** Checks one keep count per sequence, each in [1, imageCount(b)]. */
    public void checkKeepCounts(int[] keepCounts) {
        Objects.requireNonNull(keepCounts, "keepCounts");
        if (keepCounts.length != sets()) {
            throw new IllegalArgumentException("keepCounts: need one count per sequence (" + sets() + "), got " + keepCounts.length);
        }
        for (int b = 0; b < sets(); b++) {
            if (keepCounts[b] < 1 || keepCounts[b] > imageCount[b]) {
                throw new IllegalArgumentException("keepCounts: sequence " + b + " keeps " + keepCounts[b] + " of its " + imageCount[b]
                        + " image tokens; need 1 <= k <= " + imageCount[b]);
            }
        }
    }

    /**
     * Packed row indices of the rows that survive when sequence b keeps the image tokens
     * {@code kept[keepOffsets[b] ..]} (local, ascending): row r of the pruned batch is row
     * {@code result[r]} of this one (prefix, kept image tokens, text).
     */
    public int[] rowGather(int[] keepOffsets, int[] kept) {
        int[] counts = new int[sets()];
        for (int b = 0; b < sets(); b++) counts[b] = keepOffsets[b + 1] - keepOffsets[b];
        ImageSequences after = afterPruning(counts);
        int[] out = new int[after.totalRows()];
        int at = 0;
        for (int b = 0; b < sets(); b++) {
            for (int p = 0; p < imageStart[b]; p++) out[at++] = rowOffsets[b] + p;
            for (int i = keepOffsets[b]; i < keepOffsets[b + 1]; i++) out[at++] = rowOffsets[b] + imageStart[b] + kept[i];
            for (int p = imageEnd(b); p < lengths[b]; p++) out[at++] = rowOffsets[b] + p;
        }
        return out;
    }

    /** The kernels' per-sequence descriptor: row offset, length, image start, image count, image offset. */
    public int[] descriptor() {
        int[] d = new int[5 * sets()];
        for (int b = 0; b < sets(); b++) {
            d[5 * b] = rowOffsets[b];
            d[5 * b + 1] = lengths[b];
            d[5 * b + 2] = imageStart[b];
            d[5 * b + 3] = imageCount[b];
            d[5 * b + 4] = imageOffsets[b];
        }
        return d;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ImageSequences s && Arrays.equals(lengths, s.lengths) && Arrays.equals(imageStart, s.imageStart)
                && Arrays.equals(imageCount, s.imageCount);
    }

    @Override
    public int hashCode() {
        return (Arrays.hashCode(lengths) * 31 + Arrays.hashCode(imageStart)) * 31 + Arrays.hashCode(imageCount);
    }

    @Override
    public String toString() {
        return "ImageSequences[lengths=" + Arrays.toString(lengths) + ", imageStart=" + Arrays.toString(imageStart) + ", imageCount="
                + Arrays.toString(imageCount) + "]";
    }
}
