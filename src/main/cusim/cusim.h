// cusim.h — makes hand-written CUDA kernels compile as plain C++ (g++ -DCUSIM) so that they run on
// the CPU kernel simulator. Design brief: docs/engineering.md §4. Included through common.cuh.
//
// How a kernel runs (details in cusim_runtime.cpp):
//   * every CUDA thread of a block is a fiber (its own stack) on ONE OS thread; a cooperative
//     scheduler switches fibers only at barriers and warp operations, so code between two such
//     points runs without interruption;
//   * therefore `__shared__` can simply be `thread_local`: a block-scope thread_local is a static
//     per OS thread, shared by all fibers of the block (and persisting from block to block);
//   * threadIdx & co. read the running fiber's context through one thread-local pointer that the
//     scheduler sets before each switch;
//   * barriers and warp intrinsics are calls into the runtime that carry __FILE__/__LINE__, so a
//     divergent barrier or a deadlocked shuffle fails the launch with the source line instead of
//     hanging; warp operations synchronise only the lanes in their mask (warp-scoped), so
//     shuffles inside `if (warp == 0)` work.
//
// Types (half, bfloat16, dim3, float4, ...) come from the CUDA toolkit's own headers, which are
// host-compilable; we only add what those headers leave to the device compiler.
//
// Rules for code that includes this header: include standard headers BEFORE it (it defines
// __noinline__, which libstdc++ uses as an attribute name), no inline PTX, no cooperative groups.
#pragma once

#ifndef CUSIM
#define CUSIM 1
#endif

// Standard headers first: after the macros below some of them would no longer compile.
#include <math.h>  // libstdc++'s wrapper also puts isnan/isinf/... into the global namespace
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <algorithm>
#include <cassert>
#include <climits>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#include <vector_types.h>
#include <vector_functions.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <math_constants.h>

#include "cusim_host.h"

// ---------------------------------------------------------------------------------------------
// Qualifiers. In host compilation the CUDA headers already expand most of them to nothing; we
// redefine them so that the meaning does not depend on header internals.
// ---------------------------------------------------------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __constant__
#undef __managed__
#undef __shared__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#undef __align__
#undef __grid_constant__
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __shared__ thread_local
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// GNU attribute rather than alignas: it is accepted in every position nvcc accepts __align__.
#define __align__(n) __attribute__((aligned(n)))

namespace cusim {

// A source location, captured by the intrinsic macros for diagnostics.
struct Site {
    const char* file;
    int line;
};

// What a simulated thread sees as its built-in variables, plus its block's dynamic shared memory.
struct ThreadCtx {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
    unsigned char* dynamic_smem;
};

// The running fiber's context; switched by the scheduler (plain __thread: no TLS wrapper calls).
extern __thread ThreadCtx* tls_ctx;

enum class BarrierOp : int { Sync, Count, And, Or };
enum class WarpOp : int { ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All, SyncWarp };

// Runtime entry points (cusim_runtime.cpp). They may switch fibers.
int block_barrier(BarrierOp op, int pred, Site site);
uint64_t warp_op(WarpOp op, unsigned mask, uint64_t value, int arg, int width, Site site);
unsigned active_mask();
[[noreturn]] void trap(const char* what, Site site);

template <class T>
inline T shfl_bits(WarpOp op, unsigned mask, T value, int arg, int width, Site site) {
    // Bit copies: __half2 & co. are plain bit containers but have user-written assignments.
    static_assert(sizeof(T) <= 8, "unsupported shuffle type");
    uint64_t bits = 0;
    memcpy(&bits, static_cast<const void*>(&value), sizeof(T));
    bits = warp_op(op, mask, bits, arg, width, site);
    T result;
    memcpy(static_cast<void*>(&result), &bits, sizeof(T));
    return result;
}

// Overloads (not one template) so that argument promotion matches CUDA's overload set.
#define CUSIM_SHFL_OVERLOAD(T)                                                              \
    inline T shfl(Site site, WarpOp op, unsigned mask, T value, int arg, int width = 32) { \
        return shfl_bits<T>(op, mask, value, arg, width, site);                             \
    }
CUSIM_SHFL_OVERLOAD(int)
CUSIM_SHFL_OVERLOAD(unsigned)
CUSIM_SHFL_OVERLOAD(long)
CUSIM_SHFL_OVERLOAD(unsigned long)
CUSIM_SHFL_OVERLOAD(long long)
CUSIM_SHFL_OVERLOAD(unsigned long long)
CUSIM_SHFL_OVERLOAD(float)
CUSIM_SHFL_OVERLOAD(double)
CUSIM_SHFL_OVERLOAD(__half)
CUSIM_SHFL_OVERLOAD(__half2)
CUSIM_SHFL_OVERLOAD(__nv_bfloat16)
CUSIM_SHFL_OVERLOAD(__nv_bfloat162)
#undef CUSIM_SHFL_OVERLOAD

inline void syncwarp(Site site, unsigned mask = 0xffffffffu) {
    warp_op(WarpOp::SyncWarp, mask, 0, 0, 32, site);
}

}  // namespace cusim

#define CUSIM_SITE (::cusim::Site{__FILE__, __LINE__})

// ---------------------------------------------------------------------------------------------
// Built-in variables
// ---------------------------------------------------------------------------------------------
#define threadIdx (static_cast<const uint3&>(::cusim::tls_ctx->thread_idx))
#define blockIdx (static_cast<const uint3&>(::cusim::tls_ctx->block_idx))
#define blockDim (static_cast<const dim3&>(::cusim::tls_ctx->block_dim))
#define gridDim (static_cast<const dim3&>(::cusim::tls_ctx->grid_dim))
static constexpr int warpSize = 32;

// The current block's dynamic shared memory (used by common.cuh's DYNAMIC_SMEM).
inline unsigned char* cusim_dynamic_smem() { return ::cusim::tls_ctx->dynamic_smem; }

// ---------------------------------------------------------------------------------------------
// Barriers and warp intrinsics
// ---------------------------------------------------------------------------------------------
#define __syncthreads() ((void)::cusim::block_barrier(::cusim::BarrierOp::Sync, 1, CUSIM_SITE))
#define __syncthreads_count(pred) \
    ::cusim::block_barrier(::cusim::BarrierOp::Count, (pred) ? 1 : 0, CUSIM_SITE)
#define __syncthreads_and(pred) \
    ::cusim::block_barrier(::cusim::BarrierOp::And, (pred) ? 1 : 0, CUSIM_SITE)
#define __syncthreads_or(pred) \
    ::cusim::block_barrier(::cusim::BarrierOp::Or, (pred) ? 1 : 0, CUSIM_SITE)
#define __syncwarp(...) ::cusim::syncwarp(CUSIM_SITE __VA_OPT__(, ) __VA_ARGS__)

// (mask, var, srcLane|delta|laneMask [, width])
#define __shfl_sync(...) ::cusim::shfl(CUSIM_SITE, ::cusim::WarpOp::ShflIdx, __VA_ARGS__)
#define __shfl_up_sync(...) ::cusim::shfl(CUSIM_SITE, ::cusim::WarpOp::ShflUp, __VA_ARGS__)
#define __shfl_down_sync(...) ::cusim::shfl(CUSIM_SITE, ::cusim::WarpOp::ShflDown, __VA_ARGS__)
#define __shfl_xor_sync(...) ::cusim::shfl(CUSIM_SITE, ::cusim::WarpOp::ShflXor, __VA_ARGS__)

#define __ballot_sync(mask, pred) \
    ((unsigned)::cusim::warp_op(::cusim::WarpOp::Ballot, (mask), (pred) ? 1 : 0, 0, 32, CUSIM_SITE))
#define __any_sync(mask, pred) \
    ((int)::cusim::warp_op(::cusim::WarpOp::Any, (mask), (pred) ? 1 : 0, 0, 32, CUSIM_SITE))
#define __all_sync(mask, pred) \
    ((int)::cusim::warp_op(::cusim::WarpOp::All, (mask), (pred) ? 1 : 0, 0, 32, CUSIM_SITE))
// Lanes of the caller's warp that have not exited (the simulator has no notion of convergence).
#define __activemask() ::cusim::active_mask()

#define __trap() ::cusim::trap("__trap() called", CUSIM_SITE)
#ifndef NDEBUG
// A failed device assert fails the launch instead of aborting the whole process (e.g. the JVM).
#undef assert
#define assert(e) ((e) ? (void)0 : ::cusim::trap("assertion failed: " #e, CUSIM_SITE))
#endif

// The CUDA memory model is weaker than x86's; a full fence is the safe approximation.
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---------------------------------------------------------------------------------------------
// Atomics (return the old value). Relaxed ordering, as CUDA's atomics; GCC builtins so that blocks
// may one day run on several OS threads.
// ---------------------------------------------------------------------------------------------
#define CUSIM_RELAXED __ATOMIC_RELAXED

#define CUSIM_ATOMIC_FETCH(NAME, BUILTIN, T) \
    inline T NAME(T* address, T val) { return BUILTIN(address, val, CUSIM_RELAXED); }
CUSIM_ATOMIC_FETCH(atomicAdd, __atomic_fetch_add, int)
CUSIM_ATOMIC_FETCH(atomicAdd, __atomic_fetch_add, unsigned)
CUSIM_ATOMIC_FETCH(atomicAdd, __atomic_fetch_add, unsigned long long)
CUSIM_ATOMIC_FETCH(atomicSub, __atomic_fetch_sub, int)
CUSIM_ATOMIC_FETCH(atomicSub, __atomic_fetch_sub, unsigned)
CUSIM_ATOMIC_FETCH(atomicAnd, __atomic_fetch_and, int)
CUSIM_ATOMIC_FETCH(atomicAnd, __atomic_fetch_and, unsigned)
CUSIM_ATOMIC_FETCH(atomicAnd, __atomic_fetch_and, unsigned long long)
CUSIM_ATOMIC_FETCH(atomicOr, __atomic_fetch_or, int)
CUSIM_ATOMIC_FETCH(atomicOr, __atomic_fetch_or, unsigned)
CUSIM_ATOMIC_FETCH(atomicOr, __atomic_fetch_or, unsigned long long)
CUSIM_ATOMIC_FETCH(atomicXor, __atomic_fetch_xor, int)
CUSIM_ATOMIC_FETCH(atomicXor, __atomic_fetch_xor, unsigned)
CUSIM_ATOMIC_FETCH(atomicXor, __atomic_fetch_xor, unsigned long long)
CUSIM_ATOMIC_FETCH(atomicExch, __atomic_exchange_n, int)
CUSIM_ATOMIC_FETCH(atomicExch, __atomic_exchange_n, unsigned)
CUSIM_ATOMIC_FETCH(atomicExch, __atomic_exchange_n, unsigned long long)
#undef CUSIM_ATOMIC_FETCH

namespace cusim {
// Generic read-modify-write: CAS on the value's bit pattern (as CUDA does for float atomicAdd).
template <class T, class F>
inline T atomic_update(T* address, F update) {
    T old;
    __atomic_load(address, &old, CUSIM_RELAXED);
    T desired;
    do {
        desired = update(old);
    } while (!__atomic_compare_exchange(address, &old, &desired, false, CUSIM_RELAXED, CUSIM_RELAXED));
    return old;
}
}  // namespace cusim

inline float atomicAdd(float* a, float v) { return cusim::atomic_update(a, [v](float o) { return o + v; }); }
inline double atomicAdd(double* a, double v) { return cusim::atomic_update(a, [v](double o) { return o + v; }); }
inline float atomicExch(float* a, float v) {
    float old;
    __atomic_exchange(a, &v, &old, CUSIM_RELAXED);
    return old;
}

#define CUSIM_ATOMIC_MINMAX(T)                                                                  \
    inline T atomicMin(T* a, T v) { return cusim::atomic_update(a, [v](T o) { return v < o ? v : o; }); } \
    inline T atomicMax(T* a, T v) { return cusim::atomic_update(a, [v](T o) { return v > o ? v : o; }); }
CUSIM_ATOMIC_MINMAX(int)
CUSIM_ATOMIC_MINMAX(unsigned)
CUSIM_ATOMIC_MINMAX(long long)
CUSIM_ATOMIC_MINMAX(unsigned long long)
#undef CUSIM_ATOMIC_MINMAX

// CUDA wrap-around semantics: Inc counts 0..val then wraps to 0; Dec counts down and wraps to val.
inline unsigned atomicInc(unsigned* a, unsigned val) {
    return cusim::atomic_update(a, [val](unsigned o) { return o >= val ? 0u : o + 1u; });
}
inline unsigned atomicDec(unsigned* a, unsigned val) {
    return cusim::atomic_update(a, [val](unsigned o) { return (o == 0u || o > val) ? val : o - 1u; });
}

#define CUSIM_ATOMIC_CAS(T)                                                                   \
    inline T atomicCAS(T* a, T compare, T val) {                                              \
        __atomic_compare_exchange_n(a, &compare, val, false, CUSIM_RELAXED, CUSIM_RELAXED);   \
        return compare; /* holds the old value whether or not the exchange happened */        \
    }
CUSIM_ATOMIC_CAS(int)
CUSIM_ATOMIC_CAS(unsigned)
CUSIM_ATOMIC_CAS(unsigned long long)
CUSIM_ATOMIC_CAS(unsigned short)
#undef CUSIM_ATOMIC_CAS

// ---------------------------------------------------------------------------------------------
// Math and bit intrinsics. The GPU's fast approximations (__expf, __fdividef, rsqrtf, ...) are
// computed exactly here; compare kernel results with tolerances (engineering.md §4.6 item 8).
// ---------------------------------------------------------------------------------------------
namespace cusim {
template <class To, class From>
inline To bits_as(From v) {
    static_assert(sizeof(To) == sizeof(From));
    To r;
    memcpy(&r, &v, sizeof(To));
    return r;
}
// CUDA float->int conversions saturate and map NaN to 0 (C++ would be undefined behaviour).
template <class I>
inline I saturate_to(double r) {
    if (r != r) return 0;
    if (r <= (double)std::numeric_limits<I>::min()) return std::numeric_limits<I>::min();
    if (r >= (double)std::numeric_limits<I>::max()) return std::numeric_limits<I>::max();
    return (I)r;
}
}  // namespace cusim

inline float __int_as_float(int v) { return cusim::bits_as<float>(v); }
inline int __float_as_int(float v) { return cusim::bits_as<int>(v); }
inline float __uint_as_float(unsigned v) { return cusim::bits_as<float>(v); }
inline unsigned __float_as_uint(float v) { return cusim::bits_as<unsigned>(v); }
inline double __longlong_as_double(long long v) { return cusim::bits_as<double>(v); }
inline long long __double_as_longlong(double v) { return cusim::bits_as<long long>(v); }

inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }

inline int __float2int_rn(float x) { return cusim::saturate_to<int>(rint(x)); }
inline int __float2int_rz(float x) { return cusim::saturate_to<int>(trunc(x)); }
inline int __float2int_rd(float x) { return cusim::saturate_to<int>(floor(x)); }
inline int __float2int_ru(float x) { return cusim::saturate_to<int>(ceil(x)); }
inline unsigned __float2uint_rn(float x) { return cusim::saturate_to<unsigned>(rint(x)); }
inline unsigned __float2uint_rz(float x) { return cusim::saturate_to<unsigned>(trunc(x)); }
inline long long __float2ll_rn(float x) { return cusim::saturate_to<long long>(rint(x)); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
    return ((unsigned long long)__brev((unsigned)x) << 32) | __brev((unsigned)(x >> 32));
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    __extension__ typedef unsigned __int128 u128;
    return (unsigned long long)(((u128)a * b) >> 64);
}
inline int __mul24(int a, int b) { return (int)(((long long)(a << 8) >> 8) * ((long long)(b << 8) >> 8)); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }

// Cache-hint loads/stores are plain memory accesses on the CPU.
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

// CUDA's global min/max overloads. Plain functions (not macros) so std::min/std::max still work;
// an exact-match non-template is preferred over std's templates under `using namespace std`.
#define CUSIM_MINMAX(A, B, R)                                              \
    inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; }           \
    inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
CUSIM_MINMAX(int, int, int)
CUSIM_MINMAX(unsigned, unsigned, unsigned)
CUSIM_MINMAX(int, unsigned, unsigned)
CUSIM_MINMAX(unsigned, int, unsigned)
CUSIM_MINMAX(long, long, long)
CUSIM_MINMAX(unsigned long, unsigned long, unsigned long)
CUSIM_MINMAX(long long, long long, long long)
CUSIM_MINMAX(unsigned long long, unsigned long long, unsigned long long)
CUSIM_MINMAX(long long, unsigned long long, unsigned long long)
CUSIM_MINMAX(unsigned long long, long long, unsigned long long)
#undef CUSIM_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }

// ---------------------------------------------------------------------------------------------
// Kernel registry (the generated registry .cpp uses these macros)
// ---------------------------------------------------------------------------------------------
namespace cusim {
extern const KernelEntry registry[];  // terminated by an entry with name == nullptr

namespace detail {
template <class... A, size_t... I>
inline void call_unpacked(void (*f)(A...), void** params, std::index_sequence<I...>) {
    f(*static_cast<A*>(params[I])...);  // cuLaunchKernel ABI: params[i] points at argument i
}
template <class... A>
inline void call(void (*f)(A...), void** params) {
    call_unpacked(f, params, std::index_sequence_for<A...>{});
}
// One thunk per kernel: a plain function pointer the registry can store, F known at compile time.
template <auto F>
void thunk(void** params) { call(F, params); }
template <class... A>
struct ParamSizes {
    static constexpr unsigned value[sizeof...(A) + 1] = {unsigned(sizeof(A))..., 0u};
};
template <class... A>
constexpr unsigned arity(void (*)(A...)) { return sizeof...(A); }
template <class... A>
constexpr const unsigned* param_sizes(void (*)(A...)) { return ParamSizes<A...>::value; }
}  // namespace detail
}  // namespace cusim

#define CUSIM_REGISTRY_BEGIN const ::cusim::KernelEntry cusim::registry[] = {
#define CUSIM_KERNEL(name)                                                 \
    {#name, &::cusim::detail::thunk<&name>, ::cusim::detail::arity(&name), \
     ::cusim::detail::param_sizes(&name)},
#define CUSIM_REGISTRY_END {nullptr, nullptr, 0, nullptr}};
