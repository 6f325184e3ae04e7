package tokenprune.device.sim;

/**
 * JNI entry points of the CPU kernel simulator library (src/main/cusim/cusim_jni.cpp). "Device"
 * addresses are host addresses from aligned_alloc. Use {@link SimDevice}, not this class.
 */
final class CusimNative {
    private CusimNative() {
    }

    static native long alloc(long bytes);

    static native void free(long address);

    static native void copyFromArray(Object srcPrimitiveArray, long srcByteOffset, long dstAddress, long bytes);

    static native void copyToArray(long srcAddress, Object dstPrimitiveArray, long dstByteOffset, long bytes);

    static native void copyWithin(long dstAddress, long srcAddress, long bytes);

    static native void fill(long dstAddress, int byteValue, long bytes);

    static native String[] kernelNames();

    /**
     * Runs a kernel to completion. Returns null on success, else the simulator's diagnosis.
     * argSlots: one 8-byte slot per kernel parameter holding its bits (int/float in the low half).
     */
    static native String launch(String kernel, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                                int sharedBytes, long[] argSlots, int schedule, long seed);
}
