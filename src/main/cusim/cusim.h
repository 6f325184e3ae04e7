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
// Tensor cores: the subset of nvcuda::wmma (<mma.h>) that a tiled fp16/bf16 GEMM needs is emulated
// at the end of this file; under nvcc, kernels get the real one from <mma.h>.
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
// The Wmma* operations must stay last (the runtime tests `op >= WmmaLoad`).
enum class WarpOp : int { ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All, SyncWarp, WmmaLoad, WmmaMma, WmmaStore };

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


// ---------------------------------------------------------------------------------------------
// Warp matrix functions: nvcuda::wmma (CUDA's <mma.h>), the subset a tiled GEMM needs:
//   fragment<matrix_a | matrix_b, 16, 16, 16, __half | __nv_bfloat16, row_major | col_major>,
//   fragment<accumulator, 16, 16, 16, float>, fill_fragment, load_matrix_sync, mma_sync (fp32
//   accumulator only), store_matrix_sync (float only). Other shapes and types are not declared,
//   so a kernel that uses them fails to compile under CUSIM instead of computing nonsense.
//
// Semantics (CUDA C++ Programming Guide, "Warp Matrix Functions"):
//   * matrix_a is the M x K = 16 x 16 tile, matrix_b the K x N tile, the accumulator M x N.
//     row_major / mem_row_major: element (r, c) is at ptr[r * ldm + c]; col_major /
//     mem_col_major: at ptr[c * ldm + r].
//   * mma_sync(d, a, b, c): d = a * b + c; d may be c. Computed per element as d[m][n] = c[m][n],
//     then d[m][n] += float(a[m][k]) * float(b[k][n]) for k = 0..15, in fp32. A product of two fp16 values
//     is exact in fp32 (as is one of two bf16 values unless it leaves fp32's normal range), so
//     this is the same as an fmaf chain in k order. Real tensor cores sum in another order (and
//     may round differently), so compare GPU and simulator results with a tolerance unless the
//     inputs make every partial sum exact (e.g. small integers).
//   * The *_sync functions are warp-collective: every lane of the warp must call them, at the
//     same source line, with the same pointer, ldm and layout. The simulator synchronises the
//     warp (full mask) on entry, like a shuffle, so a call from a subset of the lanes fails the
//     launch (deadlock report) and so does a call from a warp with fewer than 32 threads. The
//     arguments that CUDA requires to be warp-uniform (pointer, ldm, layout, and the fragments'
//     contents, see below) are compared across the lanes; a difference fails the launch.
//   * Pointers must be 256-bit (32-byte) aligned and ldm a multiple of 16 bytes (8 halves, 4
//     floats), as CUDA requires; otherwise the launch fails (__trap-style message).
//   * fill_fragment is not a _sync function and does not synchronise.
//
// Fragment-to-lane mapping: unspecified in CUDA. Here EVERY lane holds the whole 16 x 16 tile
// (x[r * 16 + c], num_elements = 256, element types as in CUDA: __half / __nv_bfloat16 / float),
// whereas a GPU lane holds a few elements (num_elements 8 or 16, arch-specific). Kernels may
// apply the same element-wise operation to all x[i] (e.g. scale an accumulator), but must not
// rely on which element x[i] is or on num_elements; lane-dependent writes to x[] make the
// fragments of the lanes differ, which the next mma_sync / store_matrix_sync reports.
//   * load_matrix_sync: after the warp sync, each lane reads the whole tile, so it sees what any
//     lane of the warp wrote before the call. (On the GPU, make other lanes' writes visible with
//     __syncwarp / __syncthreads first; the simulator cannot catch a missing one here.)
//   * store_matrix_sync: after the warp sync, each lane writes its own share of the tile from its
//     own copy: 8 consecutive elements in row-major tile order (lane l: row l / 2, columns
//     8 * (l % 2) .. + 7). As on the GPU, other lanes may read the stored tile only after a
//     __syncwarp or __syncthreads; depending on the schedule, a missing one shows as stale data.
//   * The functions take two hidden trailing parameters (defaulted to the caller's file and
//     line, for diagnostics); kernels call them exactly as in CUDA.
//   * Cost: every lane does the whole warp's work (4096 multiply-adds per mma_sync); one
//     load a + load b + mma_sync step takes roughly 50-90 us per warp on one CPU core.
// ---------------------------------------------------------------------------------------------
namespace nvcuda {
namespace wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;

enum layout_t { mem_row_major, mem_col_major };

template <typename T>
struct helper_traits {
    typedef T element_type;
    typedef T storage_element_type;
    typedef T fill_argument_type;
};

template <typename T, int size, int packed_size = size>
struct __frag_base {
    enum { num_elements = size };
    enum { num_storage_elements = packed_size };
    typedef T element_type;
    typedef typename helper_traits<T>::storage_element_type storage_element_type;
    alignas(32) storage_element_type x[num_storage_elements];
};

template <typename Use, int m, int n, int k, typename T, typename Layout = void>
class fragment;  // only the specialisations below exist

#define CUSIM_WMMA_FRAGMENT(USE, T, LAYOUT) \
    template <>                              \
    class fragment<USE, 16, 16, 16, T, LAYOUT> : public __frag_base<T, 256> {};
CUSIM_WMMA_FRAGMENT(matrix_a, __half, row_major)
CUSIM_WMMA_FRAGMENT(matrix_a, __half, col_major)
CUSIM_WMMA_FRAGMENT(matrix_b, __half, row_major)
CUSIM_WMMA_FRAGMENT(matrix_b, __half, col_major)
CUSIM_WMMA_FRAGMENT(matrix_a, __nv_bfloat16, row_major)
CUSIM_WMMA_FRAGMENT(matrix_a, __nv_bfloat16, col_major)
CUSIM_WMMA_FRAGMENT(matrix_b, __nv_bfloat16, row_major)
CUSIM_WMMA_FRAGMENT(matrix_b, __nv_bfloat16, col_major)
CUSIM_WMMA_FRAGMENT(accumulator, float, void)
#undef CUSIM_WMMA_FRAGMENT

template <typename T, int size, int packed_size>
inline void fill_fragment(__frag_base<T, size, packed_size>& f,
                          const typename helper_traits<T>::fill_argument_type& v) {
    for (int i = 0; i < f.num_storage_elements; ++i) f.x[i] = v;
}

}  // namespace wmma
}  // namespace nvcuda

namespace cusim {
namespace wmma_detail {
using namespace ::nvcuda::wmma;
constexpr int kTile = 16, kElems = kTile * kTile;

// Exact, branch-light conversions (the toolkit's host __half2float loops over subnormals).
inline float to_float(__half v) {
    uint16_t h;
    memcpy(&h, &v, 2);
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu;
    if (em >= 0x7c00u) return bits_as<float>(sign | 0x7f800000u | (em & 0x3ffu) << 13);  // Inf, NaN
    // em << 13 read as a float is the value * 2^-112 (subnormal halves become subnormal floats).
    const float magnitude = bits_as<float>(em << 13) * 0x1p112f;
    return bits_as<float>(bits_as<uint32_t>(magnitude) | sign);
}
inline float to_float(__nv_bfloat16 v) {
    uint16_t h;
    memcpy(&h, &v, 2);
    return bits_as<float>((uint32_t)h << 16);
}

// Digest of warp-uniform arguments and fragment bytes (the runtime compares it across lanes).
inline uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}
template <class F>
inline uint64_t digest(uint64_t h, const F& f) {
    static_assert(sizeof(f.x) % 32 == 0);
    uint64_t s[4] = {h, h + 1, h + 2, h + 3};  // four independent chains: faster
    for (size_t i = 0; i < sizeof(f.x); i += 32) {
        uint64_t w[4];
        memcpy(w, reinterpret_cast<const unsigned char*>(f.x) + i, 32);
        for (int j = 0; j < 4; ++j) s[j] = mix(s[j], w[j]);
    }
    return mix(mix(mix(s[0], s[1]), s[2]), s[3]);
}

inline unsigned lane() {
    const ThreadCtx& c = *tls_ctx;
    return (c.thread_idx.x + c.block_dim.x * (c.thread_idx.y + c.block_dim.y * c.thread_idx.z)) % 32;
}

// CUDA: the pointer must be 256-bit aligned, ldm a multiple of 16 bytes.
inline void check_memory(const char* fn, const void* p, unsigned ldm, unsigned elem_bytes, Site site) {
    char msg[256];
    if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
        snprintf(msg, sizeof msg, "%s: pointer %p is not 256-bit (32-byte) aligned", fn, p);
    else if ((uint64_t)ldm * elem_bytes % 16 != 0)
        snprintf(msg, sizeof msg, "%s: ldm %u is not a multiple of %u elements (16 bytes)", fn, ldm,
                 16 / elem_bytes);
    else
        return;
    trap(msg, site);
}

inline void check_layout(const char* fn, layout_t layout, Site site) {
    if (layout == mem_row_major || layout == mem_col_major) return;
    char msg[128];
    snprintf(msg, sizeof msg, "%s: layout %d is neither mem_row_major nor mem_col_major", fn, (int)layout);
    trap(msg, site);
}

inline uint64_t memory_digest(const void* p, unsigned ldm, int layout) {
    return mix(mix(mix(0x5bd1e995u, reinterpret_cast<uintptr_t>(p)), ldm), (uint64_t)layout);
}

inline void sync(WarpOp op, uint64_t digest, Site site) { warp_op(op, 0xffffffffu, digest, 0, 32, site); }

// Tile element (r, c) -> offset in memory.
inline size_t offset(bool row_major, unsigned ldm, int r, int c) {
    return row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r;
}

template <class F, class T>
inline void load(F& f, const T* p, unsigned ldm, bool row_major, Site site) {
    check_memory("nvcuda::wmma::load_matrix_sync", p, ldm, sizeof(T), site);
    sync(WarpOp::WmmaLoad, memory_digest(p, ldm, row_major), site);
    for (int r = 0; r < kTile; ++r)
        for (int c = 0; c < kTile; ++c) f.x[r * kTile + c] = p[offset(row_major, ldm, r, c)];
}

template <class FA, class FB>
inline void mma(fragment<accumulator, 16, 16, 16, float>& d, const FA& a, const FB& b,
                const fragment<accumulator, 16, 16, 16, float>& c, Site site) {
    sync(WarpOp::WmmaMma, digest(digest(digest(0x27d4eb2fu, a), b), c), site);
    alignas(32) float af[kElems], bf[kElems], acc[kElems];
    for (int i = 0; i < kElems; ++i) {
        af[i] = to_float(a.x[i]);
        bf[i] = to_float(b.x[i]);
    }
    typedef float f4 __attribute__((vector_size(16)));  // one output row = 4 vectors in registers
    for (int r = 0; r < kTile; ++r) {
        f4 row[4], bk[4];
        memcpy(row, &c.x[r * kTile], sizeof row);
        for (int k = 0; k < kTile; ++k) {  // every element sees its terms in order k = 0..15
            const float a_rk = af[r * kTile + k];
            const f4 av = {a_rk, a_rk, a_rk, a_rk};
            memcpy(bk, &bf[k * kTile], sizeof bk);
            row[0] += av * bk[0];
            row[1] += av * bk[1];
            row[2] += av * bk[2];
            row[3] += av * bk[3];
        }
        memcpy(&acc[r * kTile], row, sizeof row);
    }
    memcpy(d.x, acc, sizeof acc);  // only now: d may be c
}
}  // namespace wmma_detail
}  // namespace cusim

namespace nvcuda {
namespace wmma {

// The trailing file/line parameters capture the caller's source line for diagnostics; CUDA has
// no such parameters, so kernels never pass them.
#define CUSIM_WMMA_SITE const char *cusim_file = __builtin_FILE(), int cusim_line = __builtin_LINE()
#define CUSIM_WMMA_AT (::cusim::Site{cusim_file, cusim_line})

#define CUSIM_WMMA_LOAD(USE, T, LAYOUT)                                                               \
    inline void load_matrix_sync(fragment<USE, 16, 16, 16, T, LAYOUT>& a, const T* p, unsigned ldm, \
                                 CUSIM_WMMA_SITE) {                                                  \
        ::cusim::wmma_detail::load(a, p, ldm, std::is_same_v<LAYOUT, row_major>, CUSIM_WMMA_AT);     \
    }
CUSIM_WMMA_LOAD(matrix_a, __half, row_major)
CUSIM_WMMA_LOAD(matrix_a, __half, col_major)
CUSIM_WMMA_LOAD(matrix_b, __half, row_major)
CUSIM_WMMA_LOAD(matrix_b, __half, col_major)
CUSIM_WMMA_LOAD(matrix_a, __nv_bfloat16, row_major)
CUSIM_WMMA_LOAD(matrix_a, __nv_bfloat16, col_major)
CUSIM_WMMA_LOAD(matrix_b, __nv_bfloat16, row_major)
CUSIM_WMMA_LOAD(matrix_b, __nv_bfloat16, col_major)
#undef CUSIM_WMMA_LOAD

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& a, const float* p, unsigned ldm,
                             layout_t layout, CUSIM_WMMA_SITE) {
    ::cusim::wmma_detail::check_layout("nvcuda::wmma::load_matrix_sync", layout, CUSIM_WMMA_AT);
    ::cusim::wmma_detail::load(a, p, ldm, layout == mem_row_major, CUSIM_WMMA_AT);
}

#define CUSIM_WMMA_MMA(T, LA, LB)                                                                  \
    inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d,                              \
                         const fragment<matrix_a, 16, 16, 16, T, LA>& a,                           \
                         const fragment<matrix_b, 16, 16, 16, T, LB>& b,                           \
                         const fragment<accumulator, 16, 16, 16, float>& c, CUSIM_WMMA_SITE) {     \
        ::cusim::wmma_detail::mma(d, a, b, c, CUSIM_WMMA_AT);                                      \
    }
CUSIM_WMMA_MMA(__half, row_major, row_major)
CUSIM_WMMA_MMA(__half, row_major, col_major)
CUSIM_WMMA_MMA(__half, col_major, row_major)
CUSIM_WMMA_MMA(__half, col_major, col_major)
CUSIM_WMMA_MMA(__nv_bfloat16, row_major, row_major)
CUSIM_WMMA_MMA(__nv_bfloat16, row_major, col_major)
CUSIM_WMMA_MMA(__nv_bfloat16, col_major, row_major)
CUSIM_WMMA_MMA(__nv_bfloat16, col_major, col_major)
#undef CUSIM_WMMA_MMA

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& a, unsigned ldm,
                              layout_t layout, CUSIM_WMMA_SITE) {
    namespace d = ::cusim::wmma_detail;
    const char* fn = "nvcuda::wmma::store_matrix_sync";
    d::check_layout(fn, layout, CUSIM_WMMA_AT);
    d::check_memory(fn, p, ldm, sizeof(float), CUSIM_WMMA_AT);
    d::sync(::cusim::WarpOp::WmmaStore, d::digest(d::memory_digest(p, ldm, layout), a), CUSIM_WMMA_AT);
    const bool row = layout == mem_row_major;
    const int first = (int)d::lane() * (d::kElems / 32);
    for (int i = first; i < first + d::kElems / 32; ++i)
        p[d::offset(row, ldm, i / d::kTile, i % d::kTile)] = a.x[i];
}

#undef CUSIM_WMMA_SITE
#undef CUSIM_WMMA_AT

}  // namespace wmma
}  // namespace nvcuda
