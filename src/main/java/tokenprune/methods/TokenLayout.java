package tokenprune.methods;

import java.util.Arrays;

/**
 * How B sets of token rows sit in memory: set b is rows {@code [rowOffsets[b], rowOffsets[b+1])},
 * each row {@code d} features wide and {@code rowStride} elements after the previous one. A
 * uniform batch B x N x D has rowOffsets 0, N, 2N, ...; a ragged batch gives its own offsets.
 */
public record TokenLayout(int[] rowOffsets, int d, long rowStride) {
    public TokenLayout {
        rowOffsets = rowOffsets.clone();
        if (rowOffsets.length < 2) throw new IllegalArgumentException("rowOffsets: need at least one set (length >= 2), got length " + rowOffsets.length);
        if (rowOffsets[0] != 0) throw new IllegalArgumentException("rowOffsets: must start at 0, got " + rowOffsets[0]);
        for (int b = 0; b + 1 < rowOffsets.length; b++) {
            if (rowOffsets[b + 1] <= rowOffsets[b]) {
                throw new IllegalArgumentException("rowOffsets: set " + b + " is empty or negative (offsets " + rowOffsets[b] + ", " + rowOffsets[b + 1] + "); every set needs >= 1 token");
            }
        }
        if (d < 1) throw new IllegalArgumentException("d: feature dimension must be >= 1, got " + d);
        if (rowStride < d) throw new IllegalArgumentException("rowStride: must be >= d = " + d + ", got " + rowStride);
    }

    public static TokenLayout uniform(int sets, int n, int d) {
        if (sets < 1) throw new IllegalArgumentException("sets: must be >= 1, got " + sets);
        if (n < 1) throw new IllegalArgumentException("n: tokens per set must be >= 1, got " + n);
        int[] offsets = new int[sets + 1];
        for (int b = 0; b <= sets; b++) offsets[b] = Math.multiplyExact(b, n);
        return new TokenLayout(offsets, d, d);
    }

    public static TokenLayout ragged(int[] rowOffsets, int d) {
        return new TokenLayout(rowOffsets, d, d);
    }

    public TokenLayout withRowStride(long stride) {
        return new TokenLayout(rowOffsets, d, stride);
    }

    public int sets() {
        return rowOffsets.length - 1;
    }

    public int n(int set) {
        return rowOffsets[set + 1] - rowOffsets[set];
    }

    public int totalRows() {
        return rowOffsets[rowOffsets.length - 1];
    }

    public int maxN() {
        int m = 0;
        for (int b = 0; b < sets(); b++) m = Math.max(m, n(b));
        return m;
    }

    /** Elements a buffer must hold: up to the last feature of the last row. */
    public long requiredElements() {
        return (totalRows() - 1L) * rowStride + d;
    }

    @Override
    public int[] rowOffsets() {
        return rowOffsets.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TokenLayout t && Arrays.equals(rowOffsets, t.rowOffsets) && d == t.d && rowStride == t.rowStride;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(rowOffsets) * 31 + Long.hashCode(rowStride) * 17 + d;
    }

    @Override
    public String toString() {
        return "TokenLayout[sets=" + sets() + ", rows=" + totalRows() + ", d=" + d + ", rowStride=" + rowStride + "]";
    }
}
