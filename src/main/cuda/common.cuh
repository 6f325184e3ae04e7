// common.cuh — the one header every tokenprune kernel includes.
//
// What it gives:
//   * the same source compiles under nvcc (real GPU) and under g++ with -DCUSIM (the CPU kernel
//     simulator, src/main/cusim/cusim.h), so the simulator runs the very kernels that ship;
//   * DYNAMIC_SMEM(type, name): dynamic shared memory. A storage-class macro cannot express
//     `extern __shared__` for the simulator, hence a project macro (engineering.md §4.2);
//   * dtype loads (fp32 / fp16 / bf16 -> float) used by every kernel that reads activations;
//   * the warp and block reductions every kernel family shares. Nothing else in src/main/cuda
//     may contain its own copy of a reduction.
//
// Conventions for kernel files: only device code and `extern "C" __global__` entry points named
// tp_<what it computes>[_<dtype>]; no <<<>>> (launches come from Java), no inline PTX, no
// cooperative groups or CUB (the simulator does not have them).
#pragma once

#ifdef CUSIM
#include "cusim.h"
#else
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>  // nvcuda::wmma; the simulator emulates the subset the kernels use
#endif

#include <stdint.h>

#ifdef CUSIM
#define DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(cusim_dynamic_smem())
#else
// One file-scope array for every kernel: declared inside the kernels, nvcc warns (#1556) when the
// same extern __shared__ name appears both in templates and plain functions of one translation unit.
extern __shared__ __align__(16) unsigned char tp_dynamic_smem_bytes[];
#define DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(tp_dynamic_smem_bytes)
#endif

#define TP_FULL_MASK 0xffffffffu
#define TP_WARP 32

// Status convention (see maxmin_select.cu; host side tokenprune.kernels.StatusWord): each call takes a
// fresh, increasing epoch. The status word holds 0, or the epoch of the FIRST call rejected since the
// host last cleared it: a kernel that rejects its input does tp_reject (compare-and-swap from 0, so no
// later call overwrites it). A call counts as rejected when the word is non-zero and <= its epoch, so a
// rejection poisons every later call queued on the same status word until the host has observed it:
// no call runs on top of state that an earlier, rejected call left unapplied. Every kernel of a call
// checks on entry whether the call was rejected. The check must be block-uniform: a block of the SAME
// launch may set the status while this block's warps are reading it, and a block whose warps disagree
// would split at its barriers (undefined on the GPU; the simulator runs blocks one at a time and cannot
// show it). Hence a barrier-OR.
__device__ __forceinline__ void tp_reject(int* status, int epoch) {
    atomicCAS(status, 0, epoch);
}

__device__ __forceinline__ bool tp_status_rejects(int word, int epoch) {
    return word != 0 && word <= epoch;
}

__device__ __forceinline__ bool tp_call_rejected(const int* status, int epoch) {
    return __syncthreads_or(tp_status_rejects(*status, epoch)) != 0;
}

// ---------------------------------------------------------------------------------------------
// dtype loads
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float tp_to_float(float v) { return v; }
__device__ __forceinline__ float tp_to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float tp_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// True for NaN and +-Inf. Written on the bit pattern so that fast-math flags cannot fold it away.
__device__ __forceinline__ bool tp_is_nonfinite(float v) {
    return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u;
}

// ---------------------------------------------------------------------------------------------
// warp reductions (all 32 lanes must be present)
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float tp_warp_sum(float v) {
#pragma unroll
    for (int off = TP_WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(TP_FULL_MASK, v, off);
    return v;
}

__device__ __forceinline__ int tp_warp_sum_int(int v) {
#pragma unroll
    for (int off = TP_WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(TP_FULL_MASK, v, off);
    return v;
}

__device__ __forceinline__ float tp_warp_max(float v) {
#pragma unroll
    for (int off = TP_WARP / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(TP_FULL_MASK, v, off));
    return v;
}

// Sum over aligned groups of `width` consecutive lanes (width a power of two <= 32, the same in
// every lane): every lane ends with its group's sum. All 32 lanes must be present. The summation
// tree is fixed, so the result does not depend on the schedule.
__device__ __forceinline__ float tp_group_sum(float v, int width) {
    for (int off = width / 2; off > 0; off >>= 1) v += __shfl_xor_sync(TP_FULL_MASK, v, off);
    return v;
}

// (value, index) arg-max: larger value wins, equal values go to the lower index. Every lane ends
// with the winner. Indices < 0 mark "no candidate" and lose to any real candidate.
__device__ __forceinline__ bool tp_argmax_better(float v, int i, float bv, int bi) {
    if (bi < 0) return i >= 0;
    if (i < 0) return false;
    return v > bv || (v == bv && i < bi);
}

__device__ __forceinline__ void tp_warp_argmax(float& v, int& i) {
#pragma unroll
    for (int off = TP_WARP / 2; off > 0; off >>= 1) {
        float ov = __shfl_xor_sync(TP_FULL_MASK, v, off);
        int oi = __shfl_xor_sync(TP_FULL_MASK, i, off);
        if (tp_argmax_better(ov, oi, v, i)) { v = ov; i = oi; }
    }
}

// ---------------------------------------------------------------------------------------------
// block reductions. blockDim.x must be a multiple of 32 and at most 1024; every thread of the
// block must call them (they contain __syncthreads). `scratch` holds 32 entries and may be reused
// right after the call returns.
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float tp_block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    const int warps = blockDim.x / TP_WARP;
    v = tp_warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    v = tp_warp_sum(v);
    __syncthreads();  // scratch may be reused by the caller after this point
    return v;
}

// Block max; every thread gets it. NaN inputs are ignored by fmaxf (callers reject NaN first);
// -INFINITY is the identity.
__device__ __forceinline__ float tp_block_max(float v, float* scratch) {
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    const int warps = blockDim.x / TP_WARP;
    v = tp_warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -INFINITY;
    v = tp_warp_max(v);
    __syncthreads();  // scratch may be reused by the caller after this point
    return v;
}

__device__ __forceinline__ void tp_block_argmax(float& v, int& i, float* scratch_v, int* scratch_i) {
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    const int warps = blockDim.x / TP_WARP;
    tp_warp_argmax(v, i);
    if (lane == 0) { scratch_v[warp] = v; scratch_i[warp] = i; }
    __syncthreads();
    if (lane < warps) { v = scratch_v[lane]; i = scratch_i[lane]; } else { v = 0.0f; i = -1; }
    tp_warp_argmax(v, i);
    __syncthreads();
}

// Exclusive prefix sum of one int per thread over the block; returns this thread's offset and
// writes the block total to *total. scratch holds 32 ints.
__device__ __forceinline__ int tp_block_exclusive_scan(int v, int* scratch, int* total) {
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    const int warps = blockDim.x / TP_WARP;
    int incl = v;
#pragma unroll
    for (int off = 1; off < TP_WARP; off <<= 1) {
        int o = __shfl_up_sync(TP_FULL_MASK, incl, off);
        if (lane >= off) incl += o;
    }
    if (lane == TP_WARP - 1) scratch[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        int w = lane < warps ? scratch[lane] : 0;
        int wincl = w;
#pragma unroll
        for (int off = 1; off < TP_WARP; off <<= 1) {
            int o = __shfl_up_sync(TP_FULL_MASK, wincl, off);
            if (lane >= off) wincl += o;
        }
        if (lane < warps) scratch[lane] = wincl - w;  // exclusive offset of each warp
        if (lane == warps - 1) *total = wincl;
    }
    __syncthreads();
    const int result = scratch[warp] + incl - v;
    __syncthreads();
    return result;
}

// ---------------------------------------------------------------------------------------------
// order-preserving keys and block top-k cut (radix select)
// ---------------------------------------------------------------------------------------------
// A 32-bit key whose unsigned order is the float order of finite values: positive floats get the
// sign bit set, negative ones are bit-inverted. -0.0 is mapped to +0.0 first, so the two zeros
// have the same key (they tie, and ties go to the lower index).
__device__ __forceinline__ unsigned tp_float_order_key(float v) {
    unsigned b = __float_as_uint(v);
    if (b == 0x80000000u) b = 0u;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Inclusive prefix sum of one int per lane over a full warp (all 32 lanes must be present).
__device__ __forceinline__ int tp_warp_inclusive_scan_int(int v) {
    const int lane = threadIdx.x % TP_WARP;
#pragma unroll
    for (int off = 1; off < TP_WARP; off <<= 1) {
        const int o = __shfl_up_sync(TP_FULL_MASK, v, off);
        if (lane >= off) v += o;
    }
    return v;
}

// Where a block's top-k of n float values is cut, as found by tp_block_topk_cut. With
// key = tp_float_order_key(v[i]) & mask, token i is kept iff key > prefix, or key == prefix and
// fewer than `ties` tokens with key == prefix precede it (lower indices win ties). Exactly
// min(k, n) tokens are kept that way. nonfinite: some v[i] was NaN or +-Inf (the cut is then
// meaningless).
struct TpTopkCut {
    unsigned prefix;
    unsigned mask;
    int ties;
    bool nonfinite;
};

// Exact top-k cut of v[0 .. n) for 0 <= k <= n, ranked by larger value first then lower index:
// an MSB-first radix select on tp_float_order_key with 8-bit digits. Each pass histograms the
// digit of the keys that still match the prefix found so far (256 shared ints, shared-memory
// atomics, runs of equal digits merged per thread), then warp 0 scans the bins from the top to
// find the digit holding the k-th largest key. At most 4 passes over v (global memory; each read
// once per pass); it stops early as soon as the boundary bin is kept whole. The first pass also checks every value for NaN/Inf.
// Every thread of the block must call it (it contains __syncthreads); blockDim.x a multiple of
// 32. hist: 256 shared ints; bcast: 3 shared ints; both may be reused as soon as it returns.
__device__ __forceinline__ TpTopkCut tp_block_topk_cut(const float* __restrict__ v, int n, int k, int* hist, int* bcast) {
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    TpTopkCut cut;
    cut.prefix = 0u;
    cut.mask = 0u;
    cut.ties = k;
    cut.nonfinite = false;
    int remaining = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
        __syncthreads();
        // A thread merges runs of equal digits among its own keys into one atomic: clustered scores
        // (e.g. attention probabilities share their top key bytes) would otherwise serialise on a
        // few bins.
        int bad = 0, run_digit = -1, run = 0;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float x = v[i];
            if (shift == 24) bad |= tp_is_nonfinite(x);
            const unsigned key = tp_float_order_key(x);
            if ((key & cut.mask) != cut.prefix) continue;
            const int digit = (int)((key >> shift) & 0xffu);
            if (digit != run_digit) {
                if (run > 0) atomicAdd(&hist[run_digit], run);
                run_digit = digit;
                run = 0;
            }
            ++run;
        }
        if (run > 0) atomicAdd(&hist[run_digit], run);
        if (shift == 24) {
            if (__syncthreads_or(bad)) { cut.nonfinite = true; return cut; }
            if (k == 0 || k == n) return cut;  // keep none / all: mask 0 makes every key tie at prefix 0
        } else {
            __syncthreads();
        }
        if (warp == 0) {
            // lane L owns bins 255 - 8L down to 248 - 8L, so lane order is descending key order
            int c[8], sum = 0;
#pragma unroll
            for (int j = 0; j < 8; ++j) { c[j] = hist[255 - 8 * lane - j]; sum += c[j]; }
            const int incl = tp_warp_inclusive_scan_int(sum);
            int above = incl - sum;  // keys in bins above this lane's
            if (above < remaining && remaining <= incl) {  // exactly one lane holds the k-th largest
#pragma unroll
                for (int j = 0; j < 8; ++j) {
                    if (above + c[j] >= remaining) {
                        bcast[0] = 255 - 8 * lane - j;
                        bcast[1] = remaining - above;
                        bcast[2] = (above + c[j] == remaining);  // the whole bin is kept: no need to refine
                        break;
                    }
                    above += c[j];
                }
            }
        }
        __syncthreads();
        const unsigned digit = (unsigned)bcast[0];
        remaining = bcast[1];
        const bool whole = bcast[2] != 0;
        cut.prefix |= digit << shift;
        cut.mask |= 0xffu << shift;
        cut.ties = remaining;
        if (whole) break;  // uniform: every thread read the same bcast
        // bcast is next written after two more barriers; hist is re-zeroed after warp 0's reads
    }
    __syncthreads();  // every thread has read bcast: the caller may reuse hist and bcast
    return cut;
}

// Ascending compaction of the tokens a tp_block_topk_cut keeps: out[0 ..) gets their indices in
// ascending order; returns how many were kept (every thread gets the same value). Every thread of
// the block must call it. out may be nullptr only if no token is kept; mask may be nullptr.
__device__ __forceinline__ int tp_block_topk_compact(const float* __restrict__ v, int n, TpTopkCut cut, int* __restrict__ out,
                                          unsigned char* __restrict__ mask, int* scan_scratch, int* scan_total) {
    int above_base = 0, equal_base = 0;
    for (int chunk = 0; chunk < n; chunk += blockDim.x) {
        const int i = chunk + threadIdx.x;
        int above = 0, equal = 0;
        if (i < n) {
            const unsigned key = tp_float_order_key(v[i]) & cut.mask;
            above = key > cut.prefix;
            equal = key == cut.prefix;
        }
        // both counts of a chunk are <= 1024, so they share one int without carrying into each other
        const int before = tp_block_exclusive_scan((equal << 16) | above, scan_scratch, scan_total);
        const int above_before = above_base + (before & 0xffff);
        const int equal_before = equal_base + (before >> 16);
        const bool keep = above || (equal && equal_before < cut.ties);
        if (keep) out[above_before + min(equal_before, cut.ties)] = i;
        if (mask != nullptr && i < n) mask[i] = keep ? 1 : 0;
        const int t = *scan_total;  // read before the next scan's first barrier, rewritten after it
        above_base += t & 0xffff;
        equal_base += t >> 16;
    }
    return above_base + min(equal_base, cut.ties);
}

// ---------------------------------------------------------------------------------------------
// counter-based hashing: deterministic "random" numbers from integer keys, no state. The Java
// references repeat these exactly (tokenprune.reference.PagedEvictionReference.hash3).
// ---------------------------------------------------------------------------------------------
// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijection of 64-bit words with full avalanche.
__device__ __forceinline__ unsigned long long tp_mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// A hash of three 64-bit keys (each offset by the golden-ratio constant, so zero keys do not stay zero).
__device__ __forceinline__ unsigned long long tp_hash3(unsigned long long a, unsigned long long b, unsigned long long c) {
    const unsigned long long g = 0x9e3779b97f4a7c15ull;
    return tp_mix64(tp_mix64(tp_mix64(a + g) ^ (b + g)) ^ (c + g));
}

// The top 24 bits of a hash as a float in [0, 1): an integer below 2^24 times 2^-24, both exact.
__device__ __forceinline__ float tp_hash_unit(unsigned long long h) {
    return (float)(unsigned)(h >> 40) * (1.0f / 16777216.0f);
}

// ---------------------------------------------------------------------------------------------
// paged KV layouts (tokenprune.kv.KvLayout)
// ---------------------------------------------------------------------------------------------

// Element offset of head dim d inside one (token, head) row: the split-x form of vLLM v0's layout,
// (d / x) * chunk_stride + (d % x) * dim_stride. Dim-contiguous layouts (x = head_dim, dim_stride 1)
// give d; kernels test that case first and index with d directly on their fast paths.
__device__ __forceinline__ long long tp_kv_dim_offset(int d, int x, long long chunk_stride, long long dim_stride) {
    return (long long)(d / x) * chunk_stride + (long long)(d % x) * dim_stride;
}
