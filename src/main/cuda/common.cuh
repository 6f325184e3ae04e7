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
#define DYNAMIC_SMEM(type, name)                                   \
    extern __shared__ __align__(16) unsigned char name##_bytes[];  \
    type* name = reinterpret_cast<type*>(name##_bytes)
#endif

#define TP_FULL_MASK 0xffffffffu
#define TP_WARP 32

// Error bits a kernel ORs into the caller-visible status word. Java maps each bit to a message.
#define TP_STATUS_NONFINITE_INPUT 1

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
