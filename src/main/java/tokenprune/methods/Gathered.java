package tokenprune.methods;

import java.util.Arrays;

/**
 * Kept token rows packed densely: set b's rows are rows {@code keepOffsets[b] .. keepOffsets[b+1])}
 * of {@code data} ({@code d} elements each, row-major; a float[] for F32, fp16/bf16 bit patterns in a
 * short[] otherwise), with their position ids {@code positions[g]}.
 */
public record Gathered(Object data, DType dtype, int[] keepOffsets, int d, int[] positions) {
    public int sets() {
        return keepOffsets.length - 1;
    }

    public int rows() {
        return keepOffsets[keepOffsets.length - 1];
    }

    /** The packed rows as floats (F32 only). */
    public float[] floats() {
        if (!(data instanceof float[] f)) throw new IllegalStateException("data is " + dtype + " bits (short[]), not f32");
        return f;
    }

    /** The packed rows as 16-bit patterns (F16 and BF16 only). */
    public short[] bits() {
        if (!(data instanceof short[] s)) throw new IllegalStateException("data is f32 (float[]), not 16-bit");
        return s;
    }

    /** Position ids of set b's kept rows. */
    public int[] positions(int set) {
        return Arrays.copyOfRange(positions, keepOffsets[set], keepOffsets[set + 1]);
    }
}
