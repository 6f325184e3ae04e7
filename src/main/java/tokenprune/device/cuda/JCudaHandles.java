package tokenprune.device.cuda;

import java.lang.reflect.Field;

import jcuda.NativePointerObject;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;

/**
 * Conversions between JCuda handle objects and raw addresses. JCuda has no public constructor
 * from a raw CUstream, so a caller's stream handle is set through the (private) native-pointer
 * field; device addresses go through CUdeviceptr's public withByteOffset, which the native side
 * adds to a null base.
 */
final class JCudaHandles {
    private static final Field NATIVE_POINTER;

    static {
        try {
            NATIVE_POINTER = NativePointerObject.class.getDeclaredField("nativePointer");
            NATIVE_POINTER.setAccessible(true);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError("JCuda's NativePointerObject has no nativePointer field: " + e);
        }
    }

    private JCudaHandles() {
    }

    static CUdeviceptr devicePointer(long address) {
        return new CUdeviceptr().withByteOffset(address);
    }

    static CUstream stream(long handle) {
        CUstream s = new CUstream();
        try {
            NATIVE_POINTER.setLong(s, handle);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
        return s;
    }

    static long handle(NativePointerObject o) {
        try {
            return NATIVE_POINTER.getLong(o);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A CUdeviceptr whose raw address can be read after cuMemAlloc filled it in. */
    static final class AllocatedPointer extends CUdeviceptr {
        long address() {
            return getNativePointer() + getByteOffset();
        }
    }
}
