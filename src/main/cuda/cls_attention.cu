// cls_attention.cu — FasterVLM's [CLS] attention scores, without building any N x N attention map.
//
// What it computes (methods-vision.md §5.1)
//   For every image b (a batch of images, anyres crops or video frames, all with the same N tokens,
//   token 0 = CLS) and head h of the chosen vision-encoder layer, with the CLS query q[b][h][0 .. dh)
//   and the keys k[b][t][h][0 .. dh), t = 0 .. N-1:
//     l_h[t] = scale * (q_h . k_h[t])                 (fp32 products, fp32 accumulation)
//     P_h[t] = exp(l_h[t] - max_t l_h) / sum_t exp(l_h[t] - max_t l_h)    over ALL N keys, CLS included
//     scores[b][j-1] = (1/H) sum_{h = 0 .. H-1} P_h[j]  for the patches j = 1 .. N-1
//   The CLS column is dropped, not renormalised. scale = 1/sqrt(dh) in FasterVLM (passed by Java).
//   Element strides: q at q_image_stride * b + q_head_stride * h; k at k_image_stride * b +
//   k_token_stride * t + k_head_stride * h; the dh elements of one (token, head) are contiguous.
//   So token-major keys [B][N][H][dh] (the k_proj output), head-major [B][H][N][dh], a query taken
//   from row 0 of a [B][N][H*dh] q_proj output, or q and k inside one fused qkv buffer all work.
//
// Why one block per (image, head) and not one block per image looping over heads
//   The work is a memory-bound read of the keys (N x H x dh elements per image: 1.18 MB of fp16
//   for CLIP ViT-L/14-336) with only 2 FLOPs per element. One block per image would pull all of it
//   through one SM: B blocks on a 132-SM GPU, i.e. one busy SM for the common B = 1 (LLaVA-1.5) and
//   5 for an anyres request. One block per (image, head) spreads it over B x H blocks (16 for
//   B = 1, 80 for a 2 x 2 anyres request, 128 for 8 video frames) and every softmax stays inside
//   one block (a head's softmax needs only its own N logits). The head mean then needs the H
//   blocks of an image to meet: each block writes its P_h to a scratch (probs, L2-resident), and
//   the last of the image's H blocks to arrive (an atomicInc ticket after a __threadfence, the
//   "last block" pattern of CUDA's threadFenceReduction sample) sums the H rows in head order
//   0 .. H-1 and writes the scores. One launch, no second kernel, no float atomics: the result is
//   bit-for-bit independent of the block schedule.
//
// Grid / block mapping
//   gridDim.x = B * H, block (b, h) = blockIdx.x = b * H + h; 256 threads. Dot products: groups of
//   CA_GROUP = 8 lanes per token, lane i of a group multiplies elements i, i + 8, ... (each group
//   reads 8 consecutive elements per step, a warp 4 tokens: coalesced for any dh and alignment),
//   and every group handles CA_UNROLL = 4 tokens per pass, so each step issues 4 independent loads
//   per thread; a group sum (common.cuh) finishes each dot. N = 577: 5 passes of dh / 8 steps.
//   Then block max, exp, block sum (common.cuh) and the division. Loads are element-wise (no
//   16-byte vector path): for a kernel this small the instruction count is not the bound; a vector
//   path for aligned rows is the next step if a profile says otherwise.
//
// Shared memory (dynamic, 4 (N + dh) bytes): the N logits (then the exponentials) and q_h in fp32.
//   N = 577, dh = 64: 2.6 KB; the limit is the device's opt-in maximum (H100: 227 KB, ~58k tokens,
//   checked by the host). Static: 32 floats of reduction scratch and one flag.
//
// Arrival tickets (arrivals[b], one unsigned per image): atomicInc(&arrivals[b], H - 1) counts
//   0 .. H-1 and wraps back to 0 on the H-th arrival, so each call leaves the counters at 0 for the
//   next one; the host zeroes them once when it allocates them.
//
// Status convention (maxmin_select.cu): a NaN/Inf element of q_h or of a key row read, or a logit
//   that overflows fp32, makes the block do tp_reject(status, epoch). Every block still arrives
//   (the ticket count must reach H); the last block of an image writes nothing if the status
//   already says epoch, which it does whenever one of its own image's heads was bad (that head's
//   tp_reject precedes its arrival). Scores of other images of a rejected call may have been
//   written; consumers (the top-k kernel) check the status and write nothing.
//
// Cost per image (N tokens, H heads, dh, element size s): reads N H dh s bytes of keys + H dh s of
//   queries once (N = 577, H = 16, dh = 64, fp16: 1.18 MB); 2 N H dh FLOPs (1.2 MFLOP) and N H
//   exponentials; 4 H (N-1) bytes of probs written and read back from L2 (74 KB at that shape);
//   4 (N-1) bytes of scores written. Floor on an H100: the key read is ~0.4 us of HBM time per
//   image; at B = 1 the 16 blocks' serial passes, the last block's head sum (H (N-1) L2 reads) and
//   the launch bound it. Not measured on a GPU yet.
#include "common.cuh"

#define CA_THREADS 256
#define CA_GROUP 8
#define CA_UNROLL 4

template <class T>
__device__ __forceinline__ void ca_scores(const T* __restrict__ q, long long q_image_stride, long long q_head_stride,
                                          const T* __restrict__ k, long long k_image_stride, long long k_token_stride,
                                          long long k_head_stride, int n, int heads, int dh, float scale,
                                          float* __restrict__ probs, unsigned* __restrict__ arrivals, int* status,
                                          int epoch, float* __restrict__ scores) {
    __shared__ float red[TP_WARP];
    __shared__ int write_scores;
    DYNAMIC_SMEM(float, smem);
    float* logit = smem;      // n floats
    float* qs = smem + n;     // dh floats

    const int b = blockIdx.x / heads, h = blockIdx.x % heads;
    const int patches = n - 1;

    // q_h in fp32
    int bad = 0;
    const T* qh = q + q_image_stride * b + q_head_stride * h;
    for (int e = threadIdx.x; e < dh; e += blockDim.x) {
        const float v = tp_to_float(qh[e]);
        bad |= tp_is_nonfinite(v);
        qs[e] = v;
    }
    __syncthreads();

    // logits: CA_UNROLL tokens per group per pass; the pass loop is uniform over the block, so every
    // lane reaches every group sum
    const int sub = threadIdx.x % CA_GROUP, group = threadIdx.x / CA_GROUP;
    const int groups = blockDim.x / CA_GROUP;
    const T* kh = k + k_image_stride * b + k_head_stride * h;
    for (int base = 0; base < n; base += groups * CA_UNROLL) {
        float acc[CA_UNROLL];
#pragma unroll
        for (int u = 0; u < CA_UNROLL; ++u) acc[u] = 0.0f;
        for (int e = sub; e < dh; e += CA_GROUP) {
            const float qe = qs[e];
#pragma unroll
            for (int u = 0; u < CA_UNROLL; ++u) {
                const int t = base + u * groups + group;
                if (t < n) {
                    const float kv = tp_to_float(kh[k_token_stride * t + e]);
                    bad |= tp_is_nonfinite(kv);
                    acc[u] = fmaf(qe, kv, acc[u]);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < CA_UNROLL; ++u) {
            const float dot = tp_group_sum(acc[u], CA_GROUP);
            const int t = base + u * groups + group;
            if (sub == 0 && t < n) {
                const float l = dot * scale;
                bad |= tp_is_nonfinite(l);  // finite inputs whose dot product overflows
                logit[t] = l;
            }
        }
    }
    bad = __syncthreads_or(bad);  // also publishes the logits to the block

    if (!bad) {
        float m = -INFINITY;
        for (int t = threadIdx.x; t < n; t += blockDim.x) m = fmaxf(m, logit[t]);
        m = tp_block_max(m, red);
        float part = 0.0f;
        for (int t = threadIdx.x; t < n; t += blockDim.x) {
            const float x = expf(logit[t] - m);  // <= 1; the max token contributes exactly 1
            logit[t] = x;
            part += x;
        }
        const float sum = tp_block_sum(part, red);  // >= 1
        float* ph = probs + ((long long)b * heads + h) * patches;
        for (int t = threadIdx.x; t < n; t += blockDim.x) {  // this thread's own entries of the loop above
            if (t > 0) ph[t - 1] = logit[t] / sum;
        }
    } else if (threadIdx.x == 0) {
        tp_reject(status, epoch);
    }

    // arrive: every thread's probs stores are made visible device-wide before thread 0 takes a ticket
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const bool last = atomicInc(&arrivals[b], (unsigned)(heads - 1)) == (unsigned)(heads - 1);
        __threadfence();  // acquire side: the other heads' probs (and status) are read after the ticket
        // write nothing if this image (or any other so far) was rejected; one read, so the block agrees
        write_scores = last && !tp_status_rejects(__ldcg(status), epoch);
    }
    __syncthreads();
    if (!write_scores) return;

    const float* pb = probs + (long long)b * heads * patches;
    float* out = scores + (long long)b * patches;
    for (int j = threadIdx.x; j < patches; j += blockDim.x) {
        float s = 0.0f;
        for (int hh = 0; hh < heads; ++hh) s += __ldcg(&pb[(long long)hh * patches + j]);  // L2: written by other SMs
        out[j] = s / (float)heads;
    }
}

// The entry points: one per key/query dtype.
extern "C" __global__ void __launch_bounds__(CA_THREADS)
tp_cls_attention_f32(const float* __restrict__ q, long long q_image_stride, long long q_head_stride, const float* __restrict__ k,
                     long long k_image_stride, long long k_token_stride, long long k_head_stride, int n, int heads, int dh,
                     float scale, float* __restrict__ probs, unsigned* __restrict__ arrivals, int* status, int epoch,
                     float* __restrict__ scores) {
    ca_scores(q, q_image_stride, q_head_stride, k, k_image_stride, k_token_stride, k_head_stride, n, heads, dh, scale,
              probs, arrivals, status, epoch, scores);
}

extern "C" __global__ void __launch_bounds__(CA_THREADS)
tp_cls_attention_f16(const __half* __restrict__ q, long long q_image_stride, long long q_head_stride, const __half* __restrict__ k,
                     long long k_image_stride, long long k_token_stride, long long k_head_stride, int n, int heads, int dh,
                     float scale, float* __restrict__ probs, unsigned* __restrict__ arrivals, int* status, int epoch,
                     float* __restrict__ scores) {
    ca_scores(q, q_image_stride, q_head_stride, k, k_image_stride, k_token_stride, k_head_stride, n, heads, dh, scale,
              probs, arrivals, status, epoch, scores);
}

extern "C" __global__ void __launch_bounds__(CA_THREADS)
tp_cls_attention_bf16(const __nv_bfloat16* __restrict__ q, long long q_image_stride, long long q_head_stride, const __nv_bfloat16* __restrict__ k,
                      long long k_image_stride, long long k_token_stride, long long k_head_stride, int n, int heads, int dh,
                      float scale, float* __restrict__ probs, unsigned* __restrict__ arrivals, int* status, int epoch,
                      float* __restrict__ scores) {
    ca_scores(q, q_image_stride, q_head_stride, k, k_image_stride, k_token_stride, k_head_stride, n, heads, dh, scale,
              probs, arrivals, status, epoch, scores);
}
