package tokenprune.device.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;
import tokenprune.device.DeviceException;
import tokenprune.device.DeviceKind;
import tokenprune.device.Dim3;
import tokenprune.device.KernelArgs;
import tokenprune.device.KernelDevice;
import tokenprune.device.KernelLaunchException;
import tokenprune.device.KernelSpec;
import tokenprune.device.Stream;
import tokenprune.device.Timer;

/**
 * A GPU through JCuda's driver API. Uses the device's primary context (the one the CUDA runtime,
 * PyTorch and cuBLAS use, so device pointers interoperate) and makes it current at every entry,
 * so any thread may call. Modules are loaded once from the jar's fatbin bytes. Every CUDA result
 * code is checked; JCuda's global exception flag is left alone.
 *
 * <p>Set {@code -Dtokenprune.debugSync=true} to synchronise and check after every launch (a fault
 * is then reported at the kernel that caused it rather than at the next synchronisation).
 */
public final class CudaDevice extends KernelDevice {
    private static final String[] MODULES = {"/kernels/tokenprune.fatbin", "/kernels/tokenprune-test.fatbin"};
    private static final boolean DEBUG_SYNC = Boolean.getBoolean("tokenprune.debugSync");

    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final List<CUmodule> modules = new ArrayList<>();
    private final Map<String, CUfunction> functions = new ConcurrentHashMap<>();
    private final Map<String, Integer> sharedOptIn = new ConcurrentHashMap<>();
    private final String description;
    private final int maxDynamicShared;
    private boolean closed;

    private CudaDevice(int ordinal) {
        if (!CudaProbe.available()) throw new DeviceException("cuda device unavailable: " + CudaProbe.reason());
        check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        makeCurrent();
        int[] optIn = new int[1];
        check(JCudaDriver.cuDeviceGetAttribute(optIn, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device), "cuDeviceGetAttribute");
        maxDynamicShared = optIn[0];
        byte[] name = new byte[256];
        JCudaDriver.cuDeviceGetName(name, name.length, device);
        description = "cuda:" + ordinal + " " + CudaProbe.cString(name) + " (" + CudaProbe.reason() + ")";
        try {
            for (String resource : MODULES) loadModule(resource);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** Opens GPU {@code ordinal}; throws {@link DeviceException} with the probe's reason if none. */
    public static CudaDevice open(int ordinal) {
        return new CudaDevice(ordinal);
    }

    private void loadModule(String resource) {
        byte[] image;
        try (InputStream in = CudaDevice.class.getResourceAsStream(resource)) {
            if (in == null) {
                if (resource.endsWith("-test.fatbin")) return;  // only test classpaths carry the self-test kernels
                throw new DeviceException("kernel image " + resource + " is missing from the classpath (was the jar built by mvn package?)");
            }
            image = in.readAllBytes();
        } catch (IOException e) {
            throw new DeviceException("cannot read kernel image " + resource, e);
        }
        CUmodule module = new CUmodule();
        check(JCudaDriver.cuModuleLoadData(module, image), "cuModuleLoadData(" + resource + ")");
        modules.add(module);
    }

    private void makeCurrent() {
        if (closed) throw new IllegalStateException("cuda device was closed");
        check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    static void check(int rc, String what) {
        if (rc != CUresult.CUDA_SUCCESS) throw new DeviceException(what + " failed: " + CUresult.stringFor(rc));
    }

    @Override
    public DeviceKind kind() {
        return DeviceKind.CUDA;
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public int maxDynamicSharedBytes() {
        return maxDynamicShared;
    }

    @Override
    protected int staticSharedBytes(KernelSpec kernel) {
        makeCurrent();
        int[] bytes = new int[1];
        check(JCudaDriver.cuFuncGetAttribute(bytes, CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, function(kernel.name())),
                "cuFuncGetAttribute(SHARED_SIZE_BYTES, " + kernel.name() + ")");
        return bytes[0];
    }

    @Override
    protected long allocRaw(long bytes) {
        makeCurrent();
        JCudaHandles.AllocatedPointer p = new JCudaHandles.AllocatedPointer();
        check(JCudaDriver.cuMemAlloc(p, bytes), "cuMemAlloc(" + bytes + " bytes)");
        return p.address();
    }

    @Override
    protected void freeRaw(long address) {
        makeCurrent();
        check(JCudaDriver.cuMemFree(JCudaHandles.devicePointer(address)), "cuMemFree");
    }

    @Override
    protected void copyFromHost(Object array, long arrayByteOffset, long dstAddress, long bytes, Stream stream) {
        makeCurrent();
        check(JCudaDriver.cuMemcpyHtoDAsync(JCudaHandles.devicePointer(dstAddress), hostPointer(array).withByteOffset(arrayByteOffset),
                bytes, JCudaHandles.stream(stream.handle())), "cuMemcpyHtoDAsync(" + bytes + " bytes)");
        // No sync needed: from pageable memory (a Java array) the driver has staged the bytes
        // before cuMemcpyHtoDAsync returns, so the array may be released and reused at once.
    }

    @Override
    protected void copyToHost(long srcAddress, Object array, long arrayByteOffset, long bytes, Stream stream) {
        makeCurrent();
        check(JCudaDriver.cuMemcpyDtoHAsync(hostPointer(array).withByteOffset(arrayByteOffset), JCudaHandles.devicePointer(srcAddress),
                bytes, JCudaHandles.stream(stream.handle())), "cuMemcpyDtoHAsync(" + bytes + " bytes)");
        // Into pageable memory the copy is complete on return; the sync only makes that explicit.
        synchronize(stream);
    }

    private static Pointer hostPointer(Object array) {
        if (array instanceof float[] a) return Pointer.to(a);
        if (array instanceof int[] a) return Pointer.to(a);
        if (array instanceof short[] a) return Pointer.to(a);
        if (array instanceof byte[] a) return Pointer.to(a);
        if (array instanceof long[] a) return Pointer.to(a);
        throw new IllegalArgumentException("unsupported host array " + array.getClass().getSimpleName());
    }

    @Override
    protected void copyDeviceToDevice(long dst, long src, long bytes, Stream stream) {
        makeCurrent();
        check(JCudaDriver.cuMemcpyDtoDAsync(JCudaHandles.devicePointer(dst), JCudaHandles.devicePointer(src), bytes,
                JCudaHandles.stream(stream.handle())), "cuMemcpyDtoDAsync(" + bytes + " bytes)");
    }

    @Override
    protected void fillRaw(long dst, int byteValue, long bytes, Stream stream) {
        makeCurrent();
        check(JCudaDriver.cuMemsetD8Async(JCudaHandles.devicePointer(dst), (byte) byteValue, bytes, JCudaHandles.stream(stream.handle())),
                "cuMemsetD8Async(" + bytes + " bytes)");
    }

    @Override
    protected void launchRaw(KernelSpec kernel, Dim3 grid, Dim3 block, int sharedBytes, Stream stream, KernelArgs args) {
        makeCurrent();
        CUfunction f = function(kernel.name());
        if (sharedBytes > DEFAULT_DYNAMIC_SHARED_BYTES && sharedOptIn.getOrDefault(kernel.name(), 0) < sharedBytes) {
            int rc = JCudaDriver.cuFuncSetAttribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes);
            if (rc != CUresult.CUDA_SUCCESS) throw new KernelLaunchException(kernel.name(), grid, block, sharedBytes, CUresult.stringFor(rc) + " (shared memory opt-in)");
            sharedOptIn.put(kernel.name(), sharedBytes);
        }
        Pointer[] params = new Pointer[args.size()];
        for (int i = 0; i < params.length; i++) {
            params[i] = switch (args.type(i)) {
                case I32, F32 -> Pointer.to(new int[] {(int) args.bits(i)});
                case I64, PTR -> Pointer.to(new long[] {args.bits(i)});
            };
        }
        int rc = JCudaDriver.cuLaunchKernel(f, grid.x(), grid.y(), grid.z(), block.x(), block.y(), block.z(), sharedBytes,
                JCudaHandles.stream(stream.handle()), Pointer.to(params), null);
        if (rc != CUresult.CUDA_SUCCESS) throw new KernelLaunchException(kernel.name(), grid, block, sharedBytes, CUresult.stringFor(rc));
        if (DEBUG_SYNC) {
            rc = JCudaDriver.cuStreamSynchronize(JCudaHandles.stream(stream.handle()));
            if (rc != CUresult.CUDA_SUCCESS) throw new KernelLaunchException(kernel.name(), grid, block, sharedBytes, CUresult.stringFor(rc) + " (at debug sync)");
        }
    }

    private CUfunction function(String name) {
        CUfunction cached = functions.get(name);
        if (cached != null) return cached;
        for (CUmodule m : modules) {
            CUfunction f = new CUfunction();
            int rc = JCudaDriver.cuModuleGetFunction(f, m, name);
            if (rc == CUresult.CUDA_SUCCESS) {
                functions.put(name, f);
                return f;
            }
            if (rc != CUresult.CUDA_ERROR_NOT_FOUND) check(rc, "cuModuleGetFunction(" + name + ")");
        }
        throw new DeviceException("no kernel named " + name + " in the loaded fatbins");
    }

    @Override
    protected long createStreamRaw() {
        makeCurrent();
        CUstream s = new CUstream();
        check(JCudaDriver.cuStreamCreate(s, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
        return JCudaHandles.handle(s);
    }

    @Override
    protected void destroyStream(long handle) {
        makeCurrent();
        check(JCudaDriver.cuStreamDestroy(JCudaHandles.stream(handle)), "cuStreamDestroy");
    }

    @Override
    protected void synchronize(Stream stream) {
        makeCurrent();
        check(JCudaDriver.cuStreamSynchronize(JCudaHandles.stream(stream.handle())), "cuStreamSynchronize");
    }

    /**
     * Brackets a region for {@code ncu --profile-from-start off}: only kernels launched between
     * start and stop are profiled (bench --profile uses it around its timed repetitions).
     */
    public void profilerStart() {
        makeCurrent();
        check(JCudaDriver.cuProfilerStart(), "cuProfilerStart");
    }

    public void profilerStop() {
        makeCurrent();
        check(JCudaDriver.cuProfilerStop(), "cuProfilerStop");
    }

    @Override
    public Timer timer(Stream stream) {
        makeCurrent();
        return new EventTimer(stream);
    }

    private final class EventTimer implements Timer {
        private final CUevent begin = new CUevent(), end = new CUevent();
        private final CUstream stream;

        EventTimer(Stream s) {
            stream = JCudaHandles.stream(s.handle());
            check(JCudaDriver.cuEventCreate(begin, CUevent_flags.CU_EVENT_DEFAULT), "cuEventCreate");
            check(JCudaDriver.cuEventCreate(end, CUevent_flags.CU_EVENT_DEFAULT), "cuEventCreate");
        }

        @Override
        public void start() {
            makeCurrent();
            check(JCudaDriver.cuEventRecord(begin, stream), "cuEventRecord");
        }

        @Override
        public double stopMillis() {
            makeCurrent();
            check(JCudaDriver.cuEventRecord(end, stream), "cuEventRecord");
            check(JCudaDriver.cuEventSynchronize(end), "cuEventSynchronize");
            float[] ms = new float[1];
            check(JCudaDriver.cuEventElapsedTime(ms, begin, end), "cuEventElapsedTime");
            return ms[0];
        }

        @Override
        public void close() {
            makeCurrent();
            JCudaDriver.cuEventDestroy(begin);
            JCudaDriver.cuEventDestroy(end);
        }
    }

    @Override
    public void close() {
        if (closed) return;
        JCudaDriver.cuCtxSetCurrent(context);
        for (CUmodule m : modules) JCudaDriver.cuModuleUnload(m);
        modules.clear();
        functions.clear();
        JCudaDriver.cuDevicePrimaryCtxRelease(device);
        closed = true;
    }
}
