package tokenprune.device;

/**
 * The type of one kernel parameter as the compiled PTX sees it. Kernel parameters are typed only
 * by the kernel image: an int passed where the kernel takes a 64-bit value reads garbage, so every
 * launch is checked against the kernel's declared signature, and a test checks those signatures
 * against the PTX nvcc emitted.
 */
public enum ArgType {
    /** A device pointer (.u64 in PTX). */
    PTR("u64"),
    /** int / unsigned (.u32 or .s32). */
    I32("u32"),
    /** long long / size_t (.u64 or .s64). */
    I64("u64"),
    /** float (.f32). */
    F32("f32");

    private final String ptxType;

    ArgType(String ptxType) {
        this.ptxType = ptxType;
    }

    /** The PTX .param type nvcc emits for this argument (signedness is not recorded by nvcc). */
    public String ptxType() {
        return ptxType;
    }
}
