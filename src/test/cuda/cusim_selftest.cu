// cusim_selftest.cu — self-test kernels for the CPU kernel simulator (cusim), one feature each.
// Driven by src/test/cusim/selftest_main.cpp. They also compile with nvcc (same source rules as
// src/main/cuda), so a kernel here never relies on something only the simulator has.
//
// Kernels that are meant to FAIL in the simulator (divergent barrier, deadlocks, overflow, ...)
// store the __LINE__ of the offending statement first, so the driver can check that the error
// message names the right line.
#include "common.cuh"

#ifndef CUSIM
#include <mma.h>  // under CUSIM, cusim.h emulates nvcuda::wmma
#endif

// ---------------------------------------------------------------------------------------------
// Reductions and shuffles
// ---------------------------------------------------------------------------------------------

// out[b] = sum of in[b*n .. b*n+n) through common.cuh's tp_block_sum.
extern "C" __global__ void tp_selftest_block_sum(const float* in, float* out, int n) {
    __shared__ float scratch[32];
    float v = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += in[blockIdx.x * n + i];
    v = tp_block_sum(v, scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// Switch-heavy benchmark: `iterations` block sums in a row (each one 10 warp shuffles and two
// block barriers per thread).
extern "C" __global__ void tp_selftest_block_sum_loop(float* out, int iterations) {
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (int it = 0; it < iterations; ++it) acc += tp_block_sum((float)((threadIdx.x + it) % 7), scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

// Greedy selection: `picks` rounds of a block arg-max over n scores (n a multiple of blockDim.x);
// each round's winner is removed. picked[r] = index chosen in round r.
extern "C" __global__ void tp_selftest_argmax_loop(const float* scores, int n, int picks, int* picked) {
    __shared__ float scratch_v[32];
    __shared__ int scratch_i[32];
    const int per_thread = n / blockDim.x;
    float mine[16];
    for (int k = 0; k < per_thread; ++k) mine[k] = scores[k * blockDim.x + threadIdx.x];
    for (int r = 0; r < picks; ++r) {
        float v = -INFINITY;
        int idx = -1;
        for (int k = 0; k < per_thread; ++k) {
            const int i = k * blockDim.x + threadIdx.x;
            if (tp_argmax_better(mine[k], i, v, idx)) { v = mine[k]; idx = i; }
        }
        tp_block_argmax(v, idx, scratch_v, scratch_i);
        if (idx >= 0 && idx % blockDim.x == threadIdx.x) mine[idx / blockDim.x] = -INFINITY;
        if (threadIdx.x == 0) picked[r] = idx;
    }
}

// Sums over segments of 16 lanes: __shfl_xor_sync with width 16.
extern "C" __global__ void tp_selftest_warp_sum_width16(const int* in, int* out) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    int v = in[t];
    for (int off = 8; off > 0; off >>= 1) v += __shfl_xor_sync(TP_FULL_MASK, v, off, 16);
    out[t] = v;
}

// Only warp 0 shuffles; the other warps go straight to the barrier.
extern "C" __global__ void tp_selftest_warp0_only(const float* in, float* out) {
    __shared__ float total;
    const int lane = threadIdx.x % TP_WARP, warp = threadIdx.x / TP_WARP;
    if (warp == 0) {
        const float v = tp_warp_sum(in[lane]);
        if (lane == 0) total = v;
    }
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = total;
}

// common.cuh's block exclusive scan (its second level shuffles inside `if (warp == 0)`).
extern "C" __global__ void tp_selftest_block_scan(const int* in, int* out, int* total) {
    __shared__ int scratch[32];
    __shared__ int block_total;
    out[threadIdx.x] = tp_block_exclusive_scan(in[threadIdx.x], scratch, &block_total);
    if (threadIdx.x == 0) *total = block_total;
}

// Up/down/idx/xor shuffles with widths smaller than the warp (CUDA's segment rules).
extern "C" __global__ void tp_selftest_shfl_width(const int* in, int* up, int* down, int* idx, int* xr) {
    const int t = threadIdx.x;
    const int v = in[t];
    up[t] = __shfl_up_sync(TP_FULL_MASK, v, 3, 8);
    down[t] = __shfl_down_sync(TP_FULL_MASK, v, 2, 8);
    idx[t] = __shfl_sync(TP_FULL_MASK, v, 21, 16);   // lane 21 & 15 = 5 of each 16-lane segment
    xr[t] = __shfl_xor_sync(TP_FULL_MASK, v, 20, 16);  // later segment -> own value
}

// 64-bit and half shuffles.
extern "C" __global__ void tp_selftest_shfl_types(double* d, long long* ll, float* h) {
    const int lane = threadIdx.x;
    d[lane] = __shfl_sync(TP_FULL_MASK, lane * 1.5 + 1e10, (lane + 1) % 32);
    ll[lane] = __shfl_down_sync(TP_FULL_MASK, (long long)lane << 40, 1);
    const __half hv = __float2half_rn(lane * 0.5f);
    h[lane] = __half2float(__shfl_xor_sync(TP_FULL_MASK, hv, 1));
}

// Warp votes, including a half-warp mask and __syncwarp.
extern "C" __global__ void tp_selftest_votes(const int* pred, unsigned* ballot, int* any, int* all,
                                             unsigned* low_half_ballot) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = threadIdx.x % TP_WARP, w = t / TP_WARP;
    const int p = pred[t];
    const unsigned b = __ballot_sync(TP_FULL_MASK, p);
    const int a = __any_sync(TP_FULL_MASK, p);
    const int l = __all_sync(TP_FULL_MASK, p);
    if (lane < 16) {
        const unsigned h = __ballot_sync(0x0000ffffu, p);
        if (lane == 0) low_half_ballot[w] = h;
    }
    __syncwarp();
    if (lane == 0) { ballot[w] = b; any[w] = a; all[w] = l; }
}

// ---------------------------------------------------------------------------------------------
// Block barriers
// ---------------------------------------------------------------------------------------------

// Threads >= live return at once; the rest keep synchronising (exited threads count as arrived).
extern "C" __global__ void tp_selftest_early_exit(int* out, int live) {
    __shared__ int s[1024];
    const int t = threadIdx.x;
    if (t >= live) return;
    int acc = 0;
    for (int round = 1; round <= 3; ++round) {
        s[t] = t * round;
        __syncthreads();
        acc += s[(t + 1) % live];
        __syncthreads();
    }
    out[t] = acc;
}

// out[3b..3b+2] = __syncthreads_count / _or / _and over the live threads of block b.
extern "C" __global__ void tp_selftest_sync_reduce(const int* pred, int* out, int live) {
    if ((int)threadIdx.x >= live) return;
    const int p = pred[blockIdx.x * blockDim.x + threadIdx.x];
    const int c = __syncthreads_count(p);
    const int o = __syncthreads_or(p);
    const int a = __syncthreads_and(p);
    if (threadIdx.x == 0) { out[3 * blockIdx.x] = c; out[3 * blockIdx.x + 1] = o; out[3 * blockIdx.x + 2] = a; }
}

// Reads the neighbour's shared-memory slot; with sync == 0 the barrier between write and read is
// missing on purpose, and the result depends on the schedule.
extern "C" __global__ void tp_selftest_neighbour_read(float* out, int sync) {
    DYNAMIC_SMEM(float, s);
    const int t = threadIdx.x, n = blockDim.x;
    s[t] = (float)t;
    if (sync) __syncthreads();
    out[blockIdx.x * n + t] = s[(t + 1) % n];
}

// ---------------------------------------------------------------------------------------------
// Atomics and execution order
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void tp_selftest_histogram(const int* keys, int n, int* counts, float* weights) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        atomicAdd(&counts[keys[i]], 1);
        atomicAdd(&weights[keys[i]], 0.25f);
    }
}

extern "C" __global__ void tp_selftest_atomics(int* i32, unsigned* u32, unsigned long long* u64, float* f32,
                                               double* f64) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    int old = i32[0], assumed;
    do {  // increment through a CAS loop
        assumed = old;
        old = atomicCAS(&i32[0], assumed, assumed + 1);
    } while (old != assumed);
    atomicMin(&i32[1], 1000 - t);
    atomicMax(&i32[2], 3 * t);
    atomicSub(&i32[3], 2);
    atomicExch(&i32[4], 77);
    atomicAnd(&u32[0], ~(1u << (t % 32)));
    atomicOr(&u32[1], 1u << (t % 32));
    atomicXor(&u32[2], (unsigned)t + 1u);
    atomicInc(&u32[3], 9u);
    atomicDec(&u32[4], 9u);
    atomicMin(&u32[5], 500u + (unsigned)t);
    atomicAdd(&u64[0], 1ull << 33);
    atomicMax(&u64[1], (unsigned long long)t << 40);
    atomicCAS(&u64[2], 0ull, (unsigned long long)t + 1);  // the first thread to get here wins
    atomicExch(&f32[0], 2.5f);
    atomicAdd(&f32[1], 0.5f);
    atomicAdd(&f64[0], 0.125);
}

// Records the order in which blocks (by linear index) and, in block 0, threads run their first
// statement: shows the schedule.
extern "C" __global__ void tp_selftest_run_order(int* counters, int* block_order, int* thread_order) {
    const int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    if (threadIdx.x == 0) block_order[atomicAdd(&counters[0], 1)] = b;
    if (b == 0) thread_order[atomicAdd(&counters[1], 1)] = threadIdx.x;
}

// ---------------------------------------------------------------------------------------------
// Grid geometry, dtypes, shared memory
// ---------------------------------------------------------------------------------------------

// out[6g..6g+5] = blockIdx.xyz, threadIdx.xyz of the thread with flattened global index g.
extern "C" __global__ void tp_selftest_dims(int* out) {
    const int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int g = b * (blockDim.x * blockDim.y * blockDim.z) + t;
    out[6 * g + 0] = blockIdx.x;
    out[6 * g + 1] = blockIdx.y;
    out[6 * g + 2] = blockIdx.z;
    out[6 * g + 3] = threadIdx.x;
    out[6 * g + 4] = threadIdx.y;
    out[6 * g + 5] = threadIdx.z;
}

extern "C" __global__ void tp_selftest_dtypes(const __half* h, const __nv_bfloat16* b, float* out,
                                              __half* h_out, __nv_bfloat16* b_out, int n) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        out[i] = tp_to_float(h[i]) + tp_to_float(b[i]);
        h_out[i] = __float2half_rn(out[i]);
        b_out[i] = __float2bfloat16_rn(out[i]);
    }
}

// Reads dynamic shared memory before writing it: must see the 0xFF poison in every block.
extern "C" __global__ void tp_selftest_smem_poison(float* out, unsigned* bits) {
    DYNAMIC_SMEM(float, s);
    const int g = blockIdx.x * blockDim.x + threadIdx.x;
    const float v = s[threadIdx.x];
    out[g] = v;
    bits[g] = __float_as_uint(v);
    __syncthreads();
    s[threadIdx.x] = 1.0f;  // the next block must not see this
}

// Writes `count` ints of dynamic shared memory: past the launch's size if count is too large.
extern "C" __global__ void tp_selftest_smem_write(int count) {
    DYNAMIC_SMEM(int, s);
    for (int i = threadIdx.x; i < count; i += blockDim.x) s[i] = i;
}

// ---------------------------------------------------------------------------------------------
// Warp matrix functions (nvcuda::wmma)
// ---------------------------------------------------------------------------------------------
namespace selftest_wmma {
namespace wmma = nvcuda::wmma;
constexpr int M = 32, N = 48, K = 32;
constexpr int PAD = 8;  // shared rows padded by 16 bytes: ldm != row length, alignment kept
template <class A, class B> struct same { static constexpr bool value = false; };
template <class A> struct same<A, A> { static constexpr bool value = true; };

// c (M x N, row-major) and ct (N x M, row-major, i.e. c stored mem_col_major) = scale * (bias +
// a * b^T), a: M x K and b: N x K row-major "token rows", bias: M x N row-major or null (then 0).
// One block of 2 warps; warp w computes output tile row w (3 tiles of 16 x 16) from shared
// memory. LayoutA / LayoutB pick how the operands are staged: a row_major (a[m][k]) or
// col_major (staged transposed, as[k][m]); b col_major (b[n][k]: the Gram-matrix case) or
// row_major (staged transposed, bs[k][n]).
template <class T, class LayoutA, class LayoutB>
__device__ void gemm(const T* a, const T* b, const float* bias, float scale, float* c, float* ct) {
    constexpr bool a_row = same<LayoutA, wmma::row_major>::value;
    constexpr bool b_col = same<LayoutB, wmma::col_major>::value;
    constexpr int lda = a_row ? K + PAD : M + PAD;
    constexpr int ldb = b_col ? K + PAD : N + PAD;
    __shared__ __align__(32) T as[(a_row ? M : K) * lda];
    __shared__ __align__(32) T bs[(b_col ? N : K) * ldb];
    for (int i = threadIdx.x; i < M * K; i += blockDim.x) {
        const int m = i / K, k = i % K;
        as[a_row ? m * lda + k : k * lda + m] = a[i];
    }
    for (int i = threadIdx.x; i < N * K; i += blockDim.x) {
        const int n = i / K, k = i % K;
        bs[b_col ? n * ldb + k : k * ldb + n] = b[i];
    }
    __syncthreads();

    const int tm = threadIdx.x / TP_WARP;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LayoutA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LayoutB> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    for (int tn = 0; tn < N / 16; ++tn) {
        if (bias) wmma::load_matrix_sync(acc, bias + tm * 16 * N + tn * 16, N, wmma::mem_row_major);
        else wmma::fill_fragment(acc, 0.0f);
        for (int kk = 0; kk < K; kk += 16) {
            // Tile (tm, kk) of a and tile (kk, tn) of b^T.
            wmma::load_matrix_sync(fa, a_row ? &as[tm * 16 * lda + kk] : &as[kk * lda + tm * 16], lda);
            wmma::load_matrix_sync(fb, b_col ? &bs[tn * 16 * ldb + kk] : &bs[kk * ldb + tn * 16], ldb);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        for (int i = 0; i < acc.num_elements; ++i) acc.x[i] *= scale;
        wmma::store_matrix_sync(c + tm * 16 * N + tn * 16, acc, N, wmma::mem_row_major);
        wmma::store_matrix_sync(ct + tn * 16 * M + tm * 16, acc, M, wmma::mem_col_major);
    }
}
}  // namespace selftest_wmma

// Entry points spelled out: the registry generator finds kernels by their text.
extern "C" __global__ void tp_selftest_wmma_f16(const __half* a, const __half* b, const float* bias, float scale,
                                                float* c, float* ct) {
    selftest_wmma::gemm<__half, nvcuda::wmma::row_major, nvcuda::wmma::col_major>(a, b, bias, scale, c, ct);
}
extern "C" __global__ void tp_selftest_wmma_bf16(const __nv_bfloat16* a, const __nv_bfloat16* b, const float* bias,
                                                 float scale, float* c, float* ct) {
    selftest_wmma::gemm<__nv_bfloat16, nvcuda::wmma::row_major, nvcuda::wmma::col_major>(a, b, bias, scale, c, ct);
}
extern "C" __global__ void tp_selftest_wmma_f16_alt(const __half* a, const __half* b, const float* bias, float scale,
                                                    float* c, float* ct) {
    selftest_wmma::gemm<__half, nvcuda::wmma::col_major, nvcuda::wmma::row_major>(a, b, bias, scale, c, ct);
}
extern "C" __global__ void tp_selftest_wmma_bf16_alt(const __nv_bfloat16* a, const __nv_bfloat16* b,
                                                     const float* bias, float scale, float* c, float* ct) {
    selftest_wmma::gemm<__nv_bfloat16, nvcuda::wmma::col_major, nvcuda::wmma::row_major>(a, b, bias, scale, c, ct);
}

// One warp stores a 16 x 16 tile of `value` into shared memory; lane 31 sums it right away
// (sync 0) or after a __syncwarp (sync 1). Without it, the sum depends on the schedule.
extern "C" __global__ void tp_selftest_wmma_store_read(float value, int sync, float* out) {
    __shared__ __align__(32) float tile[16 * 16];
    for (int i = threadIdx.x; i < 256; i += 32) tile[i] = -1.0f;
    __syncwarp();
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc;
    nvcuda::wmma::fill_fragment(acc, value);
    nvcuda::wmma::store_matrix_sync(tile, acc, 16, nvcuda::wmma::mem_row_major);
    if (sync) __syncwarp();
    if (threadIdx.x == 31) {
        float sum = 0.0f;
        for (int i = 0; i < 256; ++i) sum += tile[i];
        *out = sum;
    }
}

// ---------------------------------------------------------------------------------------------
// Kernels that must fail in the simulator (undefined behaviour or a hang on a GPU)
// ---------------------------------------------------------------------------------------------
extern "C" __global__ void tp_selftest_divergent_barrier(int* lines) {
    if (threadIdx.x < 16) {
        lines[0] = __LINE__; __syncthreads();
    } else {
        lines[1] = __LINE__; __syncthreads();
    }
}

// Lane 5 exits; the others shuffle with the full mask and wait for it forever.
extern "C" __global__ void tp_selftest_shfl_exited_lane(int* lines) {
    if (threadIdx.x == 5) return;
    int v = threadIdx.x;
    lines[0] = __LINE__; v = __shfl_xor_sync(TP_FULL_MASK, v, 1);
    lines[1] = v;
}

// Lane 0 shuffles alone while the rest of the block waits at __syncthreads.
extern "C" __global__ void tp_selftest_shfl_vs_barrier(int* lines) {
    int v = threadIdx.x;
    if (threadIdx.x == 0) { lines[0] = __LINE__; v = __shfl_sync(TP_FULL_MASK, v, 0); }
    lines[1] = __LINE__; __syncthreads();
    lines[2] = v;
}

// Lanes 1..31 call a shuffle whose mask holds only lane 0.
extern "C" __global__ void tp_selftest_bad_mask(int* lines) {
    lines[0] = __LINE__; const int v = __shfl_sync(0x1u, (int)threadIdx.x, 0);
    lines[1] = v;
}

extern "C" __global__ void tp_selftest_trap(int* lines, int trap_thread) {
    if ((int)threadIdx.x == trap_thread) { lines[0] = __LINE__; __trap(); }
}

// Lanes of one mask reach two different shuffles.
extern "C" __global__ void tp_selftest_mixed_warp_ops(int* lines) {
    int v = threadIdx.x;
    if (threadIdx.x < 16) { lines[0] = __LINE__; v = __shfl_xor_sync(TP_FULL_MASK, v, 1); }
    else { lines[1] = __LINE__; v = (int)__ballot_sync(TP_FULL_MASK, v & 1); }
    lines[2] = v;
}

// Misuse of the warp matrix functions, selected by `mode` (0: only lanes 0..15 load; 1: misaligned
// pointer; 2: bad ldm; 3: lane-dependent pointer; 4: lane-dependent write to frag.x[] before a
// store; 5: correct use). a holds at least 32 x 16 halves, c 16 x 16 floats.
extern "C" __global__ void tp_selftest_wmma_misuse(const __half* a, float* c, int mode, int* lines) {
    namespace wmma = nvcuda::wmma;
    const int lane = threadIdx.x % TP_WARP;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    if (mode == 0) {
        if (lane < 16) { lines[0] = __LINE__; wmma::load_matrix_sync(fa, a, 16); }
    } else if (mode == 1) {
        lines[0] = __LINE__; wmma::load_matrix_sync(fa, a + 8, 16);
    } else if (mode == 2) {
        lines[0] = __LINE__; wmma::load_matrix_sync(fa, a, 12);
    } else if (mode == 3) {
        lines[0] = __LINE__; wmma::load_matrix_sync(fa, a + (lane / 16) * 256, 16);
    } else if (mode == 4) {
        if (lane == 3) acc.x[0] = 1.0f;
        lines[0] = __LINE__; wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
    } else {
        wmma::load_matrix_sync(fa, a, 16);
        wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
    }
}
