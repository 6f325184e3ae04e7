// gather_tokens.cu — pack the kept token rows of B sets into one dense tensor, plus their position ids.
//
// What it computes
//   For every set b with kept indices kept[keep_offsets[b] .. keep_offsets[b+1]) (local to the set,
//   as tp_topk_select / tp_divprune_select write them) and every r in 0 .. k_b-1, g = keep_offsets[b] + r:
//     dst row g  <-  src row (src_row_offsets[b] + kept[g])        (row_bytes bytes, bit for bit)
//     positions[g] = position_base + r          (original_positions == 0: renumbered 0 .. k_b-1)
//                  = position_base + kept[g]    (original_positions != 0: original positions, gaps kept)
//   Rows are addressed in bytes: src row j at src + j * src_row_stride, dst row g at
//   dst + g * dst_row_stride. The dtype (fp32 / fp16 / bf16) only sets row_bytes = d * element size:
//   a copy needs no arithmetic, so one kernel serves every dtype and is exact by construction.
//   positions may be nullptr (no position ids).
//
// Grid / block mapping: 256 threads = 8 warps; warp w of block (x, y) copies output row
//   g = 8x + w, bytes [y * 2048, (y+1) * 2048) of it (gridDim.x = ceil(total kept / 8),
//   gridDim.y = ceil(row_bytes / 2048)), so a short batch with long rows still spreads over many
//   warps. Each lane moves up to 4 units of the widest width W in {16, 8, 4, 2, 1} bytes that divides
//   both base addresses, both strides and row_bytes (16-byte vectors for any aligned fp16 row of
//   d % 8 == 0), all loads of a lane issued before its stores. The set of row g is found by a binary
//   search over keep_offsets (sets + 1 ints, L1-resident). No shared memory, no barriers.
//
// Status convention (maxmin_select.cu): a consumer: if the call was rejected on entry (tp_call_rejected) (a selection kernel
//   of the same call rejected its input) nothing is written. It also validates: a kept index
//   outside 0 .. n_b-1 does tp_reject(status, epoch) and that output row is not written (other rows may be;
//   the host API checks indices before launching, so there it never happens).
//
// Cost: reads and writes total_kept * row_bytes bytes once (+ 4 bytes of index and position per
//   row); a pure bandwidth kernel, e.g. 16 x 64 fp16 rows of d = 4096: 8 MiB moved, ~3 us at HBM speed.
#include "common.cuh"

#define GT_THREADS 256
#define GT_ROWS_PER_BLOCK (GT_THREADS / TP_WARP)
#define GT_UNITS_PER_LANE 4
#define GT_CHUNK_BYTES 2048  // 32 lanes x 4 units x 16 bytes: the column slice one warp moves

// Copies `bytes` bytes (a multiple of sizeof(T)) of one row slice, lane-strided units of T.
template <class T>
__device__ __forceinline__ void gt_copy(unsigned char* __restrict__ dst, const unsigned char* __restrict__ src, int bytes, int lane) {
    const T* s = reinterpret_cast<const T*>(src);
    T* d = reinterpret_cast<T*>(dst);
    const int units = bytes / (int)sizeof(T);
    for (int base = 0; base < units; base += TP_WARP * GT_UNITS_PER_LANE) {
        T buf[GT_UNITS_PER_LANE];
#pragma unroll
        for (int u = 0; u < GT_UNITS_PER_LANE; ++u) {
            const int at = base + u * TP_WARP + lane;
            if (at < units) buf[u] = s[at];
        }
#pragma unroll
        for (int u = 0; u < GT_UNITS_PER_LANE; ++u) {
            const int at = base + u * TP_WARP + lane;
            if (at < units) d[at] = buf[u];
        }
    }
}

extern "C" __global__ void __launch_bounds__(GT_THREADS)
tp_gather_tokens(const unsigned char* __restrict__ src, long long src_row_stride, const int* __restrict__ src_row_offsets,
                 const int* __restrict__ kept, const int* __restrict__ keep_offsets, int sets, int row_bytes,
                 unsigned char* __restrict__ dst, long long dst_row_stride, int* __restrict__ positions,
                 int position_base, int original_positions, int* status, int epoch) {
    if (tp_call_rejected(status, epoch)) return;  // a selection kernel rejected this call: write nothing

    const int lane = threadIdx.x % TP_WARP;
    const int g = blockIdx.x * GT_ROWS_PER_BLOCK + threadIdx.x / TP_WARP;
    if (g >= keep_offsets[sets]) return;  // warp-uniform; no barrier follows

    // the set of row g: the largest b with keep_offsets[b] <= g (never an empty set: see below)
    int lo = 0, hi = sets - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (keep_offsets[mid] <= g) lo = mid; else hi = mid - 1;
    }
    // (an empty set b has keep_offsets[b + 1] == keep_offsets[b] <= g, so b + 1 qualifies too)
    const int b = lo;
    const int r = g - keep_offsets[b];
    const int i = kept[g];
    const int first = src_row_offsets[b];
    if (i < 0 || i >= src_row_offsets[b + 1] - first) {
        if (lane == 0) tp_reject(status, epoch);
        return;
    }
    if (positions != nullptr && blockIdx.y == 0 && lane == 0) positions[g] = position_base + (original_positions ? i : r);

    const int col = blockIdx.y * GT_CHUNK_BYTES;
    const int bytes = min(GT_CHUNK_BYTES, row_bytes - col);
    const unsigned char* s = src + (long long)(first + i) * src_row_stride + col;
    unsigned char* d = dst + (long long)g * dst_row_stride + col;
    const unsigned long long align = reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst) |
                                     (unsigned long long)src_row_stride | (unsigned long long)dst_row_stride | (unsigned)row_bytes;
    if (align % 16 == 0) gt_copy<uint4>(d, s, bytes, lane);
    else if (align % 8 == 0) gt_copy<uint2>(d, s, bytes, lane);
    else if (align % 4 == 0) gt_copy<unsigned>(d, s, bytes, lane);
    else if (align % 2 == 0) gt_copy<unsigned short>(d, s, bytes, lane);
    else gt_copy<unsigned char>(d, s, bytes, lane);
}
