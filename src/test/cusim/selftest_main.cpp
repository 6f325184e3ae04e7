// selftest_main.cpp — checks the CPU kernel simulator (cusim) with the kernels of
// src/test/cuda/cusim_selftest.cu. Plain C++, no JNI: it calls the same cusim_launch entry point
// as the Java bridge. Correctness tests run under every schedule (IN_ORDER, REVERSE, two RANDOM
// seeds); failure tests check that the message names the right kernel, source line and threads.
// Prints one PASS/FAIL line per test and exits non-zero if any failed.
// Build and run: src/test/cusim/run-selftest.sh
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cusim_host.h"

namespace {

std::string strf(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

struct Sched {
    int schedule;
    uint64_t seed;
    const char* name;
};
const Sched kInOrder{cusim::IN_ORDER, 0, "IN_ORDER"};
const Sched kReverse{cusim::REVERSE, 0, "REVERSE"};
const Sched kAll[] = {kInOrder, kReverse, {cusim::RANDOM, 1, "RANDOM(1)"}, {cusim::RANDOM, 42, "RANDOM(42)"}};

// A "device" buffer: simulator memory, readable directly from the host.
template <class T>
struct Buf {
    T* p;
    size_t n;
    explicit Buf(size_t count, T fill = T()) : p(static_cast<T*>(cusim_alloc(count * sizeof(T)))), n(count) {
        for (size_t i = 0; i < n; ++i) p[i] = fill;
    }
    Buf(const Buf&) = delete;
    ~Buf() { cusim_free(p); }
    T& operator[](size_t i) { return p[i]; }
    void fill(T v) { for (size_t i = 0; i < n; ++i) p[i] = v; }
};

// Launches with the cuLaunchKernel ABI; returns "" on success, else the simulator's message.
template <class... A>
std::string launch(const char* kernel, dim3 grid, dim3 block, unsigned smem, const Sched& s, A... args) {
    void* params[] = {&args..., nullptr};
    const char* error = cusim_launch(kernel, grid, block, smem, params, s.schedule, s.seed);
    return error ? error : "";
}

#define EXPECT(cond, ...) \
    do {                  \
        if (!(cond)) return strf(__VA_ARGS__); \
    } while (0)
#define EXPECT_OK(err, sched) EXPECT((err).empty(), "%s: unexpected error: %s", (sched).name, (err).c_str())

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Failure tests: the launch must fail and its message contain every given part.
std::string expect_error(const std::string& err, std::initializer_list<std::string> parts) {
    if (err.empty()) return "the launch succeeded, but it must fail";
    for (const std::string& p : parts)
        if (!contains(err, p)) return "message lacks \"" + p + "\": " + err;
    return "";
}

std::string at_line(int line) { return strf("cusim_selftest.cu:%d", line); }

// ---------------------------------------------------------------------------------------------
// Correctness (every schedule)
// ---------------------------------------------------------------------------------------------
std::string test_block_sum() {
    const int blocks = 3, n = 1000;
    Buf<float> in(blocks * n), out(blocks);
    for (int i = 0; i < blocks * n; ++i) in[i] = (float)(i % 13);
    for (const Sched& s : kAll) {
        out.fill(-1);
        std::string e = launch("tp_selftest_block_sum", dim3(blocks), dim3(256), 0, s, in.p, out.p, n);
        EXPECT_OK(e, s);
        for (int b = 0; b < blocks; ++b) {
            double want = 0;
            for (int i = 0; i < n; ++i) want += (b * n + i) % 13;
            EXPECT(out[b] == want, "%s: block %d sum %g, want %g", s.name, b, out[b], want);
        }
    }
    return "";
}

std::string test_warp_sum_width16() {
    Buf<int> in(128), out(128);
    for (int i = 0; i < 128; ++i) in[i] = 3 * i + 1;
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_warp_sum_width16", dim3(2), dim3(64), 0, s, in.p, out.p);
        EXPECT_OK(e, s);
        for (int t = 0; t < 128; ++t) {
            int want = 0;
            for (int j = t & ~15; j < (t & ~15) + 16; ++j) want += in[j];
            EXPECT(out[t] == want, "%s: thread %d got %d, want %d", s.name, t, out[t], want);
        }
    }
    return "";
}

std::string test_warp0_only() {
    Buf<float> in(32), out(256);
    for (int i = 0; i < 32; ++i) in[i] = (float)(i * i);
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_warp0_only", dim3(2), dim3(128), 0, s, in.p, out.p);
        EXPECT_OK(e, s);
        for (int t = 0; t < 256; ++t) EXPECT(out[t] == 10416.0f, "%s: out[%d] = %g, want 10416", s.name, t, out[t]);
    }
    return "";
}

std::string test_block_scan() {
    Buf<int> in(256), out(256), total(1);
    for (int i = 0; i < 256; ++i) in[i] = i % 5;
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_block_scan", dim3(1), dim3(256), 0, s, in.p, out.p, total.p);
        EXPECT_OK(e, s);
        int run = 0;
        for (int t = 0; t < 256; ++t) {
            EXPECT(out[t] == run, "%s: offset[%d] = %d, want %d", s.name, t, out[t], run);
            run += in[t];
        }
        EXPECT(total[0] == run, "%s: total %d, want %d", s.name, total[0], run);
    }
    return "";
}

std::string test_shfl_width() {
    Buf<int> in(32), up(32), down(32), idx(32), xr(32);
    for (int i = 0; i < 32; ++i) in[i] = 100 + i;
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_shfl_width", dim3(1), dim3(32), 0, s, in.p, up.p, down.p, idx.p, xr.p);
        EXPECT_OK(e, s);
        for (int l = 0; l < 32; ++l) {
            const int seg8 = l & ~7, seg16 = l & ~15;
            const int want_up = l - 3 >= seg8 ? in[l - 3] : in[l];
            const int want_down = l + 2 <= seg8 + 7 ? in[l + 2] : in[l];
            const int want_idx = in[seg16 + 5];
            const int want_xor = (l ^ 20) <= seg16 + 15 ? in[l ^ 20] : in[l];
            EXPECT(up[l] == want_up, "%s: up lane %d = %d, want %d", s.name, l, up[l], want_up);
            EXPECT(down[l] == want_down, "%s: down lane %d = %d, want %d", s.name, l, down[l], want_down);
            EXPECT(idx[l] == want_idx, "%s: idx lane %d = %d, want %d", s.name, l, idx[l], want_idx);
            EXPECT(xr[l] == want_xor, "%s: xor lane %d = %d, want %d", s.name, l, xr[l], want_xor);
        }
    }
    return "";
}

std::string test_shfl_types() {
    Buf<double> d(32);
    Buf<long long> ll(32);
    Buf<float> h(32);
    std::string e = launch("tp_selftest_shfl_types", dim3(1), dim3(32), 0, kReverse, d.p, ll.p, h.p);
    EXPECT_OK(e, kReverse);
    for (int l = 0; l < 32; ++l) {
        const double want_d = ((l + 1) % 32) * 1.5 + 1e10;
        const long long want_ll = (long long)(l < 31 ? l + 1 : l) << 40;
        EXPECT(d[l] == want_d, "double lane %d = %.17g, want %.17g", l, d[l], want_d);
        EXPECT(ll[l] == want_ll, "long long lane %d = %lld, want %lld", l, ll[l], want_ll);
        EXPECT(h[l] == (l ^ 1) * 0.5f, "half lane %d = %g, want %g", l, h[l], (l ^ 1) * 0.5f);
    }
    return "";
}

std::string test_votes() {
    const int n = 128;
    Buf<int> pred(n);
    Buf<unsigned> ballot(4), low(4);
    Buf<int> any(4), all(4);
    for (int t = 0; t < n; ++t) {
        const int w = t / 32, l = t % 32;
        pred[t] = w == 0 ? 1 : w == 1 ? (l % 3 == 0) : w == 2 ? 0 : (l == 31) * 5;
    }
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_votes", dim3(2), dim3(64), 0, s, pred.p, ballot.p, any.p, all.p, low.p);
        EXPECT_OK(e, s);
        for (int w = 0; w < 4; ++w) {
            unsigned want = 0;
            for (int l = 0; l < 32; ++l) want |= (pred[w * 32 + l] != 0 ? 1u : 0u) << l;
            EXPECT(ballot[w] == want, "%s: ballot warp %d = %08x, want %08x", s.name, w, ballot[w], want);
            EXPECT(low[w] == (want & 0xffffu), "%s: half-mask ballot warp %d = %08x", s.name, w, low[w]);
            EXPECT(any[w] == (want != 0), "%s: any warp %d = %d", s.name, w, any[w]);
            EXPECT(all[w] == (want == ~0u), "%s: all warp %d = %d", s.name, w, all[w]);
        }
    }
    return "";
}

std::string test_early_exit() {
    const int live = 40;
    Buf<int> out(64);
    for (const Sched& s : kAll) {
        out.fill(-7);
        std::string e = launch("tp_selftest_early_exit", dim3(1), dim3(64), 0, s, out.p, live);
        EXPECT_OK(e, s);
        for (int t = 0; t < 64; ++t) {
            const int want = t < live ? ((t + 1) % live) * 6 : -7;
            EXPECT(out[t] == want, "%s: out[%d] = %d, want %d", s.name, t, out[t], want);
        }
    }
    return "";
}

std::string test_sync_reduce() {
    Buf<int> pred(128), out(6);
    for (int t = 0; t < 128; ++t) pred[t] = t < 64 ? (t % 4 == 1) : 1;  // block 1: all true
    for (int live : {64, 50}) {
        for (const Sched& s : kAll) {
            std::string e = launch("tp_selftest_sync_reduce", dim3(2), dim3(64), 0, s, pred.p, out.p, live);
            EXPECT_OK(e, s);
            int count0 = 0;
            for (int t = 0; t < live; ++t) count0 += t % 4 == 1;
            EXPECT(out[0] == count0 && out[1] == 1 && out[2] == 0, "%s live %d: block 0 count/or/and = %d/%d/%d",
                   s.name, live, out[0], out[1], out[2]);
            EXPECT(out[3] == live && out[4] == 1 && out[5] == 1, "%s live %d: block 1 count/or/and = %d/%d/%d",
                   s.name, live, out[3], out[4], out[5]);
        }
    }
    return "";
}

std::string test_missing_sync() {
    const int n = 64;
    Buf<float> out(n);
    std::vector<std::vector<float>> racy;
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_neighbour_read", dim3(1), dim3(n), n * 4, s, out.p, 1);
        EXPECT_OK(e, s);
        for (int t = 0; t < n; ++t) EXPECT(out[t] == (t + 1) % n, "%s with barrier: out[%d] = %g", s.name, t, out[t]);
        e = launch("tp_selftest_neighbour_read", dim3(1), dim3(n), n * 4, s, out.p, 0);
        EXPECT_OK(e, s);
        racy.emplace_back(out.p, out.p + n);
    }
    // IN_ORDER: thread 0 reads slot 1 before thread 1 wrote it, i.e. the poison (NaN).
    EXPECT(std::isnan(racy[0][0]), "IN_ORDER without barrier: out[0] = %g, want NaN (unwritten)", racy[0][0]);
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
        return memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    EXPECT(!same(racy[0], racy[1]), "missing barrier: IN_ORDER and REVERSE gave the same result");
    EXPECT(!same(racy[0], racy[2]), "missing barrier: IN_ORDER and RANDOM(1) gave the same result");
    return "";
}

std::string test_histogram() {
    const int n = 1000, bins = 10;
    Buf<int> keys(n), counts(bins);
    Buf<float> weights(bins);
    for (int i = 0; i < n; ++i) keys[i] = (i * 7) % bins;
    for (const Sched& s : kAll) {
        counts.fill(0);
        weights.fill(0);
        std::string e = launch("tp_selftest_histogram", dim3(4), dim3(64), 0, s, keys.p, n, counts.p, weights.p);
        EXPECT_OK(e, s);
        for (int k = 0; k < bins; ++k) {
            EXPECT(counts[k] == n / bins, "%s: count[%d] = %d", s.name, k, counts[k]);
            EXPECT(weights[k] == 0.25f * (n / bins), "%s: weight[%d] = %g", s.name, k, weights[k]);
        }
    }
    return "";
}

std::string test_atomics() {
    const int threads = 128;
    Buf<int> i32(5);
    Buf<unsigned> u32(6);
    Buf<unsigned long long> u64(3);
    Buf<float> f32(2);
    Buf<double> f64(1);
    for (const Sched& s : kAll) {
        const int i0[] = {0, INT32_MAX, INT32_MIN, 1000, 0};
        const unsigned u0[] = {~0u, 0, 0, 0, 0, ~0u};
        for (int i = 0; i < 5; ++i) i32[i] = i0[i];
        for (int i = 0; i < 6; ++i) u32[i] = u0[i];
        u64.fill(0);
        f32.fill(0);
        f64.fill(0);
        std::string e = launch("tp_selftest_atomics", dim3(2), dim3(64), 0, s, i32.p, u32.p, u64.p, f32.p, f64.p);
        EXPECT_OK(e, s);
        EXPECT(i32[0] == threads, "%s: CAS increment %d", s.name, i32[0]);
        EXPECT(i32[1] == 1000 - (threads - 1), "%s: atomicMin %d", s.name, i32[1]);
        EXPECT(i32[2] == 3 * (threads - 1), "%s: atomicMax %d", s.name, i32[2]);
        EXPECT(i32[3] == 1000 - 2 * threads, "%s: atomicSub %d", s.name, i32[3]);
        EXPECT(i32[4] == 77, "%s: atomicExch %d", s.name, i32[4]);
        EXPECT(u32[0] == 0 && u32[1] == ~0u, "%s: atomicAnd/Or %08x %08x", s.name, u32[0], u32[1]);
        EXPECT(u32[2] == 128, "%s: atomicXor %u (xor of 1..128 is 128)", s.name, u32[2]);
        EXPECT(u32[3] == 128 % 10, "%s: atomicInc wraps to %u, want 8", s.name, u32[3]);
        EXPECT(u32[4] == 2, "%s: atomicDec wraps to %u, want 2", s.name, u32[4]);
        EXPECT(u32[5] == 500, "%s: atomicMin unsigned %u", s.name, u32[5]);
        EXPECT(u64[0] == (unsigned long long)threads << 33, "%s: atomicAdd u64 %llu", s.name, u64[0]);
        EXPECT(u64[1] == (unsigned long long)(threads - 1) << 40, "%s: atomicMax u64 %llu", s.name, u64[1]);
        EXPECT(u64[2] >= 1 && u64[2] <= (unsigned long long)threads, "%s: atomicCAS u64 %llu", s.name, u64[2]);
        EXPECT(f32[0] == 2.5f && f32[1] == 0.5f * threads, "%s: float exch/add %g %g", s.name, f32[0], f32[1]);
        EXPECT(f64[0] == 0.125 * threads, "%s: double add %g", s.name, f64[0]);
    }
    return "";
}

std::string test_run_order() {
    const int blocks = 12, threads = 32;
    Buf<int> counters(2), block_order(blocks), thread_order(threads);
    std::vector<std::vector<int>> orders;
    std::vector<std::vector<int>> thread_orders;
    for (const Sched& s : kAll) {
        counters.fill(0);
        std::string e = launch("tp_selftest_run_order", dim3(3, 2, 2), dim3(threads), 0, s, counters.p,
                               block_order.p, thread_order.p);
        EXPECT_OK(e, s);
        orders.emplace_back(block_order.p, block_order.p + blocks);
        thread_orders.emplace_back(thread_order.p, thread_order.p + threads);
        std::vector<int> sorted = orders.back();
        std::sort(sorted.begin(), sorted.end());
        for (int b = 0; b < blocks; ++b) EXPECT(sorted[b] == b, "%s: block order is not a permutation", s.name);
    }
    for (int b = 0; b < blocks; ++b) {
        EXPECT(orders[0][b] == b, "IN_ORDER: block %d ran at position %d", orders[0][b], b);
        EXPECT(orders[1][b] == blocks - 1 - b, "REVERSE: block %d ran at position %d", orders[1][b], b);
    }
    for (int t = 0; t < threads; ++t) {
        EXPECT(thread_orders[0][t] == t, "IN_ORDER: thread %d ran at position %d", thread_orders[0][t], t);
        EXPECT(thread_orders[1][t] == threads - 1 - t, "REVERSE: thread %d ran at position %d", thread_orders[1][t], t);
    }
    EXPECT(orders[2] != orders[0] && orders[2] != orders[3], "RANDOM block orders are not shuffled per seed");
    EXPECT(thread_orders[2] != thread_orders[0] && thread_orders[2] != thread_orders[3],
           "RANDOM thread orders are not shuffled per seed");
    // Same seed, same run.
    counters.fill(0);
    std::string e = launch("tp_selftest_run_order", dim3(3, 2, 2), dim3(threads), 0, kAll[2], counters.p,
                           block_order.p, thread_order.p);
    EXPECT_OK(e, kAll[2]);
    EXPECT(std::vector<int>(block_order.p, block_order.p + blocks) == orders[2] &&
               std::vector<int>(thread_order.p, thread_order.p + threads) == thread_orders[2],
           "RANDOM(1) twice gave different orders");
    return "";
}

std::string test_dims() {
    const dim3 shapes[][2] = {{dim3(2, 3, 2), dim3(4, 2, 3)}, {dim3(3, 2), dim3(8, 4)}, {dim3(5), dim3(7)}};
    for (const auto& shape : shapes) {
        const dim3 g = shape[0], b = shape[1];
        const int nb = g.x * g.y * g.z, nt = b.x * b.y * b.z;
        Buf<int> out(6 * nb * nt, -1);
        for (const Sched& s : kAll) {
            out.fill(-1);
            std::string e = launch("tp_selftest_dims", g, b, 0, s, out.p);
            EXPECT_OK(e, s);
            for (int i = 0; i < nb * nt; ++i) {
                const int bl = i / nt, t = i % nt;
                const int want[6] = {(int)(bl % g.x), (int)(bl / g.x % g.y), (int)(bl / (g.x * g.y)),
                                     (int)(t % b.x), (int)(t / b.x % b.y), (int)(t / (b.x * b.y))};
                for (int k = 0; k < 6; ++k)
                    EXPECT(out[6 * i + k] == want[k], "%s grid (%u,%u,%u) block (%u,%u,%u): entry %d.%d = %d, want %d",
                           s.name, g.x, g.y, g.z, b.x, b.y, b.z, i, k, out[6 * i + k], want[k]);
            }
        }
    }
    return "";
}

std::string test_dtypes() {
    const int n = 64;
    Buf<__half> h(n);
    Buf<__nv_bfloat16> b(n);
    Buf<__half> h_out(n);
    Buf<__nv_bfloat16> b_out(n);
    Buf<float> out(n);
    for (int i = 0; i < n; ++i) {
        h[i] = __float2half_rn(0.1f * i);
        b[i] = __float2bfloat16_rn(-0.3f * i);
    }
    std::string e = launch("tp_selftest_dtypes", dim3(1), dim3(32), 0, kInOrder, h.p, b.p, out.p, h_out.p, b_out.p, n);
    EXPECT_OK(e, kInOrder);
    for (int i = 0; i < n; ++i) {
        const float want = __half2float(h[i]) + __bfloat162float(b[i]);
        EXPECT(out[i] == want, "out[%d] = %g, want %g", i, out[i], want);
        EXPECT(__half2float(h_out[i]) == __half2float(__float2half_rn(want)), "half round trip at %d", i);
        EXPECT(__bfloat162float(b_out[i]) == __bfloat162float(__float2bfloat16_rn(want)), "bf16 round trip at %d", i);
    }
    EXPECT(__half2float(h[1]) == 0.0999755859375f, "fp16 rounding of 0.1: %.10g", __half2float(h[1]));
    return "";
}

std::string test_smem_poison() {
    Buf<float> out(64);
    Buf<unsigned> bits(64);
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_smem_poison", dim3(2), dim3(32), 128, s, out.p, bits.p);
        EXPECT_OK(e, s);
        for (int i = 0; i < 64; ++i)
            EXPECT(std::isnan(out[i]) && bits[i] == 0xffffffffu, "%s: thread %d read %08x, want poison", s.name, i, bits[i]);
    }
    return "";
}

std::string test_smem_canary() {
    std::string e = launch("tp_selftest_smem_write", dim3(2), dim3(32), 256, kInOrder, 64);
    EXPECT_OK(e, kInOrder);
    e = launch("tp_selftest_smem_write", dim3(2), dim3(32), 256, kInOrder, 65);
    std::string why = expect_error(e, {"kernel tp_selftest_smem_write", "block (0,0,0)", "overflow", "256 bytes"});
    if (!why.empty()) return why;
    e = launch("tp_selftest_smem_write", dim3(1), dim3(32), 0, kReverse, 1);
    return expect_error(e, {"tp_selftest_smem_write", "overflow", "0 bytes"});
}

// Warp matrix functions: c = scale * (bias + a * b^T) for 32 x 32 a and 48 x 32 b (row-major token
// rows), integer inputs in [-4, 4] so that every sum is exact, fp16 and bf16, both operand layouts.
template <class T, class Convert>
std::string check_wmma(const char* fp16_kernel, const char* alt_kernel, Convert convert) {
    const int M = 32, N = 48, K = 32;
    Buf<T> a(M * K), b(N * K);
    Buf<float> bias(M * N), c(M * N), ct(N * M);
    std::vector<int> ai(M * K), bi(N * K), biasi(M * N);
    uint64_t x = 12345;
    auto next = [&x](int range) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        return (int)((x >> 33) % range);
    };
    for (int i = 0; i < M * K; ++i) a[i] = convert((float)(ai[i] = next(9) - 4));
    for (int i = 0; i < N * K; ++i) b[i] = convert((float)(bi[i] = next(9) - 4));
    for (int i = 0; i < M * N; ++i) bias[i] = (float)(biasi[i] = next(21) - 10);
    for (const char* kernel : {fp16_kernel, alt_kernel}) {
        for (int with_bias = 0; with_bias < 2; ++with_bias) {
            const float scale = with_bias ? 0.5f : 1.0f;
            const float* bias_p = with_bias ? bias.p : nullptr;
            for (const Sched& s : kAll) {
                c.fill(NAN);
                ct.fill(NAN);
                std::string e = launch(kernel, dim3(1), dim3(64), 0, s, (const T*)a.p, (const T*)b.p, bias_p,
                                       scale, c.p, ct.p);
                EXPECT_OK(e, s);
                for (int m = 0; m < M; ++m)
                    for (int n = 0; n < N; ++n) {
                        int dot = with_bias ? biasi[m * N + n] : 0;
                        for (int k = 0; k < K; ++k) dot += ai[m * K + k] * bi[n * K + k];
                        const float want = scale * (float)dot;
                        EXPECT(c[m * N + n] == want, "%s %s bias %d: c[%d][%d] = %g, want %g", kernel, s.name,
                               with_bias, m, n, c[m * N + n], want);
                        EXPECT(ct[n * M + m] == want, "%s %s bias %d: col-major store (%d,%d) = %g, want %g",
                               kernel, s.name, with_bias, m, n, ct[n * M + m], want);
                    }
            }
        }
    }
    return "";
}

std::string test_wmma_gemm() {
    std::string why = check_wmma<__half>("tp_selftest_wmma_f16", "tp_selftest_wmma_f16_alt",
                                         [](float v) { return __float2half_rn(v); });
    if (!why.empty()) return why;
    return check_wmma<__nv_bfloat16>("tp_selftest_wmma_bf16", "tp_selftest_wmma_bf16_alt",
                                     [](float v) { return __float2bfloat16_rn(v); });
}

// Each lane stores its own share of the tile: reading other lanes' parts needs a __syncwarp.
std::string test_wmma_store_visibility() {
    Buf<float> out(1);
    bool stale_seen = false;
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_wmma_store_read", dim3(1), dim3(32), 0, s, 2.0f, 1, out.p);
        EXPECT_OK(e, s);
        EXPECT(out[0] == 512.0f, "%s with __syncwarp: sum %g, want 512", s.name, out[0]);
        e = launch("tp_selftest_wmma_store_read", dim3(1), dim3(32), 0, s, 2.0f, 0, out.p);
        EXPECT_OK(e, s);
        stale_seen |= out[0] != 512.0f;
    }
    EXPECT(stale_seen, "without __syncwarp every schedule saw the whole stored tile");
    return "";
}

std::string test_wmma_misuse() {
    Buf<__half> a(512, __float2half_rn(1.0f));
    Buf<float> c(256);
    Buf<int> lines(1, 0);
    for (const Sched& s : kAll) {
        c.fill(NAN);
        std::string e = launch("tp_selftest_wmma_misuse", dim3(2), dim3(64), 0, s, (const __half*)a.p, c.p, 5, lines.p);
        EXPECT_OK(e, s);
        for (int i = 0; i < 256; ++i) EXPECT(c[i] == 0.0f, "%s: correct use stored c[%d] = %g", s.name, i, c[i]);
    }
    struct Case {
        int mode;
        std::vector<std::string> parts;
    };
    const std::string load = "nvcuda::wmma::load_matrix_sync";
    const Case cases[] = {
        {0, {"deadlock", "16 threads (tid 0-15) in " + load + " (warp-collective: all 32 lanes must call it) at ",
             ", waiting for tid 16-31 (exited)"}},
        {1, {load + ": pointer ", "is not 256-bit (32-byte) aligned at "}},
        {2, {load + ": ldm 12 is not a multiple of 8 elements (16 bytes) at "}},
        {3, {load + " at ", "differ in pointer, ldm or layout"}},
        {4, {"nvcuda::wmma::store_matrix_sync at ", "differ in pointer, ldm, layout or fragment contents"}},
    };
    for (const Case& k : cases) {
        for (const Sched& s : {kInOrder, kReverse}) {
            std::string e = launch("tp_selftest_wmma_misuse", dim3(1), dim3(32), 0, s, (const __half*)a.p, c.p,
                                   k.mode, lines.p);
            std::string why = expect_error(e, {"kernel tp_selftest_wmma_misuse, block (0,0,0)", at_line(lines[0])});
            for (const std::string& p : k.parts)
                if (why.empty()) why = expect_error(e, {p});
            if (!why.empty()) return strf("mode %d, %s: ", k.mode, s.name) + why;
        }
    }
    std::string e = launch("tp_selftest_wmma_misuse", dim3(1), dim3(48), 0, kInOrder, (const __half*)a.p, c.p, 5, lines.p);
    return expect_error(e, {"thread (32,0,0)", load + " at ",
                            "wmma operations need a full warp of 32 threads, but warp 1 has only 16 (block has 48 threads)"});
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------
std::string test_divergent_barrier() {
    Buf<int> lines(2, 0);
    for (const Sched& s : kAll) {
        std::string e = launch("tp_selftest_divergent_barrier", dim3(1), dim3(32), 0, s, lines.p);
        std::string why = expect_error(e, {"tp_selftest_divergent_barrier", "divergent __syncthreads",
                                           "16 threads (tid 0-15) at " + at_line(lines[0]),
                                           "16 threads (tid 16-31) at " + at_line(lines[1])});
        if (!why.empty()) return std::string(s.name) + ": " + why;
    }
    return "";
}

std::string test_shfl_exited_lane() {
    Buf<int> lines(2, 0);
    std::string e = launch("tp_selftest_shfl_exited_lane", dim3(1), dim3(32), 0, kAll[2], lines.p);
    return expect_error(e, {"tp_selftest_shfl_exited_lane", "deadlock",
                            "31 threads (tid 0-4,6-31) in __shfl_xor_sync(mask 0xffffffff) at " + at_line(lines[0]) +
                                ", waiting for tid 5 (exited)"});
}

std::string test_shfl_vs_barrier() {
    Buf<int> lines(3, 0);
    std::string e = launch("tp_selftest_shfl_vs_barrier", dim3(1), dim3(64), 0, kInOrder, lines.p);
    return expect_error(e, {"deadlock",
                            "1 thread (tid 0) in __shfl_sync(mask 0xffffffff) at " + at_line(lines[0]) +
                                ", waiting for tid 1-31 (in __syncthreads at " + at_line(lines[1]) + ")",
                            "63 threads (tid 1-63) in __syncthreads at " + at_line(lines[1])});
}

std::string test_bad_mask() {
    Buf<int> lines(2, 0);
    std::string e = launch("tp_selftest_bad_mask", dim3(1), dim3(32), 0, kReverse, lines.p);
    // REVERSE: lane 31 runs first and is the one reported.
    return expect_error(e, {"thread (31,0,0)", "__shfl_sync at " + at_line(lines[0]),
                            "mask 0x00000001 does not include the calling lane 31"});
}

std::string test_mixed_warp_ops() {
    Buf<int> lines(3, 0);
    std::string e = launch("tp_selftest_mixed_warp_ops", dim3(1), dim3(32), 0, kInOrder, lines.p);
    std::string why = expect_error(e, {"different warp operations", "in __shfl_xor_sync(mask 0xffffffff) at " + at_line(lines[0]),
                                       "in __ballot_sync(mask 0xffffffff) at " + at_line(lines[1])});
    if (!why.empty()) return why;
    // A 48-thread block: the full mask names lanes 16..31 of warp 1, which do not exist.
    Buf<int> in(48), out(48);
    e = launch("tp_selftest_warp_sum_width16", dim3(1), dim3(48), 0, kInOrder, in.p, out.p);
    return expect_error(e, {"thread (32,0,0)", "mask 0xffffffff names lanes that do not exist"});
}

std::string test_trap() {
    Buf<int> lines(1, 0);
    std::string e = launch("tp_selftest_trap", dim3(2), dim3(32), 0, kInOrder, lines.p, -1);
    EXPECT_OK(e, kInOrder);
    e = launch("tp_selftest_trap", dim3(2), dim3(32), 0, kInOrder, lines.p, 3);
    return expect_error(e, {"kernel tp_selftest_trap, block (0,0,0), thread (3,0,0)", "__trap() called at " + at_line(lines[0])});
}

std::string test_launch_limits() {
    Buf<int> out(6 * 2048);
    struct Case { dim3 g, b; unsigned smem; const char* part; } cases[] = {
        {dim3(1), dim3(1025), 0, "exceeds the limits"},
        {dim3(1), dim3(1, 1, 65), 0, "exceeds the limits"},
        {dim3(1), dim3(0), 0, ">= 1"},
        {dim3(1, 65536), dim3(1), 0, "exceeds the limits"},
        {dim3(1), dim3(32), 227 * 1024 + 1, "227 KiB"},
    };
    for (const Case& c : cases) {
        std::string why = expect_error(launch("tp_selftest_dims", c.g, c.b, c.smem, kInOrder, out.p), {c.part});
        if (!why.empty()) return why;
    }
    std::string e = launch("tp_selftest_dims", dim3(2), dim3(1024), 227 * 1024, kInOrder, out.p);
    EXPECT_OK(e, kInOrder);
    return expect_error(launch("tp_no_such_kernel", dim3(1), dim3(1), 0, kInOrder, out.p),
                        {"no kernel named tp_no_such_kernel in the simulator library"});
}

std::string test_after_failures() { return test_block_sum(); }

// ---------------------------------------------------------------------------------------------
// Speed
// ---------------------------------------------------------------------------------------------
double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string test_speed_block_sum() {
    const int iterations = 1000;
    Buf<float> out(1);
    auto t0 = std::chrono::steady_clock::now();
    std::string e = launch("tp_selftest_block_sum_loop", dim3(1), dim3(256), 0, kInOrder, out.p, iterations);
    const double dt = seconds_since(t0);
    EXPECT_OK(e, kInOrder);
    double want = 0;
    for (int it = 0; it < iterations; ++it)
        for (int t = 0; t < 256; ++t) want += (t + it) % 7;
    EXPECT(out[0] == want, "sum %g, want %g", out[0], want);
    // 1000 x (10 shuffles + 2 barriers) x 256 threads = 3.1 M fiber suspensions
    printf("  speed: 256 threads x %d tp_block_sum: %.3f s (%.0f ns per suspension)\n", iterations, dt,
           dt * 1e9 / (iterations * 12.0 * 256));
    EXPECT(dt < 2.0, "too slow: %.3f s", dt);
    return "";
}

std::string test_speed_argmax() {
    const int n = 1024, picks = 600;
    Buf<float> scores(n);
    Buf<int> picked(picks, -1);
    for (int i = 0; i < n; ++i) scores[i] = (float)((i * 7919) % 1021) + (i % 3) * 0.25f;
    const Sched sched{cusim::RANDOM, 7, "RANDOM(7)"};
    auto t0 = std::chrono::steady_clock::now();
    std::string e = launch("tp_selftest_argmax_loop", dim3(1), dim3(256), 0, sched, scores.p, n, picks, picked.p);
    const double dt = seconds_since(t0);
    EXPECT_OK(e, sched);
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
    for (int r = 0; r < picks; ++r) EXPECT(picked[r] == order[r], "pick %d = %d, want %d", r, picked[r], order[r]);
    printf("  speed: 256 threads x %d block arg-max rounds (RANDOM schedule): %.3f s\n", picks, dt);
    EXPECT(dt < 1.0, "too slow: %.3f s", dt);
    return "";
}

}  // namespace

int main() {
    const struct {
        const char* name;
        std::function<std::string()> run;
    } tests[] = {
        {"block sum (tp_block_sum)", test_block_sum},
        {"warp sum, width 16", test_warp_sum_width16},
        {"shuffles inside if (warp == 0)", test_warp0_only},
        {"block exclusive scan (tp_block_exclusive_scan)", test_block_scan},
        {"shfl up/down/idx/xor with width", test_shfl_width},
        {"shuffles of double, long long, half", test_shfl_types},
        {"ballot/any/all, half-warp mask, __syncwarp", test_votes},
        {"early-exit threads and barriers", test_early_exit},
        {"__syncthreads_count/or/and", test_sync_reduce},
        {"missing __syncthreads shows across schedules", test_missing_sync},
        {"atomic histogram (int, float)", test_histogram},
        {"atomicCAS/Min/Max/Exch/Inc/Dec/And/Or/Xor", test_atomics},
        {"block and thread order per schedule", test_run_order},
        {"2-D and 3-D grids and blocks", test_dims},
        {"half and bfloat16", test_dtypes},
        {"dynamic shared memory poison", test_smem_poison},
        {"dynamic shared memory canary", test_smem_canary},
        {"wmma 32x48x32 GEMM, fp16 and bf16, all layouts", test_wmma_gemm},
        {"wmma store needs __syncwarp before other lanes read", test_wmma_store_visibility},
        {"wmma misuse fails (half warp, alignment, ldm, non-uniform args, partial warp)", test_wmma_misuse},
        {"divergent __syncthreads fails", test_divergent_barrier},
        {"shuffle waiting for an exited lane fails", test_shfl_exited_lane},
        {"shuffle vs __syncthreads deadlock fails", test_shfl_vs_barrier},
        {"caller not in shuffle mask fails", test_bad_mask},
        {"lanes in different warp operations fail", test_mixed_warp_ops},
        {"__trap fails the launch", test_trap},
        {"launch limits and unknown kernel", test_launch_limits},
        {"launches work after failed ones", test_after_failures},
        {"speed: block sum loop", test_speed_block_sum},
        {"speed: block arg-max loop", test_speed_argmax},
    };
    printf("cusim self-test: %zu kernels registered\n", cusim_kernel_count());
    int failed = 0;
    for (const auto& t : tests) {
        std::string why = t.run();
        printf("%s %s%s%s\n", why.empty() ? "PASS" : "FAIL", t.name, why.empty() ? "" : ": ", why.c_str());
        failed += !why.empty();
    }
    printf("%d of %zu tests failed\n", failed, sizeof tests / sizeof tests[0]);
    return failed ? 1 : 0;
}
