package tokenprune.methods;

import java.util.Arrays;

/**
 * Where each sequence's image tokens are: sequence b's image block is the tokens
 * {@code [start[b], start[b] + length[b])}, positions counted from the sequence's first token.
 * Tokens before it are the prefix (system prompt), tokens after it the text (question and
 * assistant prompt). For LLaVA-1.5 every sequence has {@code uniform(B, 35, 576)}.
 */
public record ImageSpans(int[] start, int[] length) {
    public ImageSpans {
        if (start == null) throw new IllegalArgumentException("images: start must not be null");
        if (length == null) throw new IllegalArgumentException("images: length must not be null");
        start = start.clone();
        length = length.clone();
        if (start.length == 0) throw new IllegalArgumentException("images: need at least one sequence, got 0");
        if (start.length != length.length) {
            throw new IllegalArgumentException("images: start has " + start.length + " entries but length has " + length.length);
        }
        for (int b = 0; b < start.length; b++) {
            if (start[b] < 0) throw new IllegalArgumentException("images: sequence " + b + ": start must be >= 0, got " + start[b]);
            if (length[b] < 1) throw new IllegalArgumentException("images: sequence " + b + ": length must be >= 1, got " + length[b]);
        }
    }

    /** The same image block in each of {@code sequences} sequences. */
    public static ImageSpans uniform(int sequences, int start, int length) {
        if (sequences < 1) throw new IllegalArgumentException("sequences: must be >= 1, got " + sequences);
        int[] s = new int[sequences], l = new int[sequences];
        Arrays.fill(s, start);
        Arrays.fill(l, length);
        return new ImageSpans(s, l);
    }

    public static ImageSpans of(int[] start, int[] length) {
        return new ImageSpans(start, length);
    }

    public int sequences() {
        return start.length;
    }

    public int start(int sequence) {
        return start[sequence];
    }

    public int length(int sequence) {
        return length[sequence];
    }

    /** The longest image block. */
    public int maxLength() {
        return Arrays.stream(length).max().getAsInt();
    }

    /** Sum of the image block lengths. */
    public long totalLength() {
        long t = 0;
        for (int l : length) t += l;
        return t;
    }

    @Override
    public int[] start() {
        return start.clone();
    }

    @Override
    public int[] length() {
        return length.clone();
    }

    /** Checks that there is one block per sequence of {@code layout} and that each fits its sequence. */
    public void checkAgainst(TokenLayout layout) {
        if (layout.sets() != sequences()) {
            throw new IllegalArgumentException("images: " + sequences() + " image blocks for " + layout.sets() + " sequences");
        }
        for (int b = 0; b < sequences(); b++) {
            long end = (long) start[b] + length[b];
            if (end > layout.n(b)) {
                throw new IllegalArgumentException("images: sequence " + b + ": image block [" + start[b] + ", " + end
                        + ") exceeds its " + layout.n(b) + " tokens");
            }
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ImageSpans s && Arrays.equals(start, s.start) && Arrays.equals(length, s.length);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(start) * 31 + Arrays.hashCode(length);
    }

    @Override
    public String toString() {
        return "ImageSpans[start=" + Arrays.toString(start) + ", length=" + Arrays.toString(length) + "]";
    }
}
