package tokenprune.methods;

/** Element type of token features. fp16 and bf16 travel as raw 16-bit patterns in a short[]. */
public enum DType {
    F32(4, "f32"), F16(2, "f16"), BF16(2, "bf16");

    private final int bytes;
    private final String suffix;

    DType(int bytes, String suffix) {
        this.bytes = bytes;
        this.suffix = suffix;
    }

    public int bytes() {
        return bytes;
    }

    /** The suffix of the kernel entry point that reads this type (tp_..._f16). */
    public String suffix() {
        return suffix;
    }
}
