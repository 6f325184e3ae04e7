// cusim_jni.cpp — JNI bridge between tokenprune.device.sim.CusimNative (Java) and the cusim
// runtime. Deliberately thin: memory is plain host memory addressed by `long`s, copies use
// GetPrimitiveArrayCritical (no intermediate buffer), and a launch passes the Java argument
// slots straight through as cuLaunchKernel-style params, so Java packs arguments exactly as for
// JCuda. Kernel failures come back as a message string (null = success), never as a crash.
#include <jni.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cusim_host.h"

namespace {

void throw_java(JNIEnv* env, const char* cls, const std::string& msg) {
    jclass c = env->FindClass(cls);
    if (c) env->ThrowNew(c, msg.c_str());
}

// Size in bytes of one element of a Java primitive array, or 0 if `array` is not one.
jlong element_size(JNIEnv* env, jobject array) {
    static const struct { const char* sig; jlong size; } kinds[] = {
        {"[B", 1}, {"[Z", 1}, {"[S", 2}, {"[C", 2}, {"[I", 4}, {"[F", 4}, {"[J", 8}, {"[D", 8}};
    for (const auto& k : kinds) {
        jclass c = env->FindClass(k.sig);
        bool match = c && env->IsInstanceOf(array, c);
        if (c) env->DeleteLocalRef(c);
        if (match) return k.size;
    }
    return 0;
}

// Validates a byte range inside a primitive array; throws and returns false if it is bad.
bool check_array_range(JNIEnv* env, jobject array, jlong offset, jlong bytes, jlong address) {
    if (!array) {
        throw_java(env, "java/lang/NullPointerException", "array is null");
        return false;
    }
    jlong elem = element_size(env, array);
    if (elem == 0) {
        throw_java(env, "java/lang/IllegalArgumentException", "not a primitive array");
        return false;
    }
    jlong length = (jlong)env->GetArrayLength(static_cast<jarray>(array)) * elem;
    if (offset < 0 || bytes < 0 || offset > length || bytes > length - offset) {
        throw_java(env, "java/lang/IndexOutOfBoundsException",
                   "byte range [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                       ") outside an array of " + std::to_string(length) + " bytes");
        return false;
    }
    if (address == 0 && bytes > 0) {
        throw_java(env, "java/lang/IllegalArgumentException", "device address is 0");
        return false;
    }
    return true;
}

void* ptr(jlong address) { return reinterpret_cast<void*>(static_cast<uintptr_t>(address)); }

}  // namespace

extern "C" {

JNIEXPORT jlong JNICALL Java_tokenprune_device_sim_CusimNative_alloc(JNIEnv*, jclass, jlong bytes) {
    if (bytes < 0) return 0;
    return static_cast<jlong>(reinterpret_cast<uintptr_t>(cusim_alloc(static_cast<size_t>(bytes))));
}

JNIEXPORT void JNICALL Java_tokenprune_device_sim_CusimNative_free(JNIEnv*, jclass, jlong address) {
    cusim_free(ptr(address));
}

JNIEXPORT void JNICALL Java_tokenprune_device_sim_CusimNative_copyFromArray(
    JNIEnv* env, jclass, jobject src, jlong src_offset, jlong dst, jlong bytes) {
    if (!check_array_range(env, src, src_offset, bytes, dst) || bytes == 0) return;
    void* base = env->GetPrimitiveArrayCritical(static_cast<jarray>(src), nullptr);
    if (!base) return;  // OutOfMemoryError pending
    memcpy(ptr(dst), static_cast<char*>(base) + src_offset, static_cast<size_t>(bytes));
    env->ReleasePrimitiveArrayCritical(static_cast<jarray>(src), base, JNI_ABORT);  // unchanged
}

JNIEXPORT void JNICALL Java_tokenprune_device_sim_CusimNative_copyToArray(
    JNIEnv* env, jclass, jlong src, jobject dst, jlong dst_offset, jlong bytes) {
    if (!check_array_range(env, dst, dst_offset, bytes, src) || bytes == 0) return;
    void* base = env->GetPrimitiveArrayCritical(static_cast<jarray>(dst), nullptr);
    if (!base) return;
    memcpy(static_cast<char*>(base) + dst_offset, ptr(src), static_cast<size_t>(bytes));
    env->ReleasePrimitiveArrayCritical(static_cast<jarray>(dst), base, 0);
}

JNIEXPORT void JNICALL Java_tokenprune_device_sim_CusimNative_copyWithin(JNIEnv* env, jclass, jlong dst,
                                                                        jlong src, jlong bytes) {
    if (bytes <= 0) return;
    if (!dst || !src) return throw_java(env, "java/lang/IllegalArgumentException", "device address is 0");
    memmove(ptr(dst), ptr(src), static_cast<size_t>(bytes));
}

JNIEXPORT void JNICALL Java_tokenprune_device_sim_CusimNative_fill(JNIEnv* env, jclass, jlong dst,
                                                                  jint byte_value, jlong bytes) {
    if (bytes <= 0) return;
    if (!dst) return throw_java(env, "java/lang/IllegalArgumentException", "device address is 0");
    memset(ptr(dst), byte_value & 0xff, static_cast<size_t>(bytes));
}

JNIEXPORT jobjectArray JNICALL Java_tokenprune_device_sim_CusimNative_kernelNames(JNIEnv* env, jclass) {
    const size_t n = cusim_kernel_count();
    jclass string_class = env->FindClass("java/lang/String");
    if (!string_class) return nullptr;
    jobjectArray names = env->NewObjectArray(static_cast<jsize>(n), string_class, nullptr);
    for (size_t i = 0; names && i < n; ++i) {
        jstring s = env->NewStringUTF(cusim_kernel_at(i)->name);
        if (!s) return nullptr;
        env->SetObjectArrayElement(names, static_cast<jsize>(i), s);
        env->DeleteLocalRef(s);
    }
    return names;
}

JNIEXPORT jstring JNICALL Java_tokenprune_device_sim_CusimNative_launch(
    JNIEnv* env, jclass, jstring kernel, jint grid_x, jint grid_y, jint grid_z, jint block_x,
    jint block_y, jint block_z, jint shared_bytes, jlongArray arg_slots, jint schedule, jlong seed) {
    if (!kernel) return env->NewStringUTF("kernel name is null");
    const char* chars = env->GetStringUTFChars(kernel, nullptr);
    if (!chars) return nullptr;
    const std::string name(chars);
    env->ReleaseStringUTFChars(kernel, chars);

    const cusim::KernelEntry* entry = cusim_find_kernel(name.c_str());
    if (!entry) return env->NewStringUTF(("no kernel named " + name + " in the simulator library").c_str());
    if (grid_x < 1 || grid_y < 1 || grid_z < 1 || block_x < 1 || block_y < 1 || block_z < 1 || shared_bytes < 0)
        return env->NewStringUTF(("kernel " + name + ": launch rejected: grid and block dimensions must be "
                                  ">= 1 and shared memory >= 0").c_str());

    // One 8-byte slot per parameter; an int/float lives in the low 4 bytes (little-endian), so
    // params[i] = &slots[i] reads correctly as any parameter type of at most 8 bytes.
    const jsize n = arg_slots ? env->GetArrayLength(arg_slots) : 0;
    if ((unsigned)n != entry->arity)
        return env->NewStringUTF(("kernel " + name + " takes " + std::to_string(entry->arity) +
                                  " parameters, but " + std::to_string(n) + " argument slots were passed")
                                     .c_str());
    for (unsigned i = 0; i < entry->arity; ++i)
        if (entry->param_sizes[i] > 8)
            return env->NewStringUTF(("kernel " + name + ": parameter " + std::to_string(i) + " has " +
                                      std::to_string(entry->param_sizes[i]) +
                                      " bytes; argument slots hold at most 8").c_str());
    std::vector<jlong> slots(n);
    if (n > 0) env->GetLongArrayRegion(arg_slots, 0, n, slots.data());
    std::vector<void*> params(n);
    for (jsize i = 0; i < n; ++i) params[i] = &slots[i];

    const char* error = cusim_launch(name.c_str(), dim3(grid_x, grid_y, grid_z), dim3(block_x, block_y, block_z),
                                     static_cast<unsigned>(shared_bytes), params.data(), schedule,
                                     static_cast<uint64_t>(seed));
    return error ? env->NewStringUTF(error) : nullptr;
}

}  // extern "C"
