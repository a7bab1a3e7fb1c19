/* ops/packed.c: the packed recurrent product. pack_weight lays a weight out
 * once per run in panels of 16 columns ([ceil(N/16), K, 16], zero past N);
 * matmul_packed computes A op(W) from those panels with a register-blocked
 * kernel (AVX-512, AVX2+FMA or plain C, picked at run time by the CPU), so
 * the 64 products of an unrolled RNN (and its input projections) read one
 * packed copy instead of each GEMM call packing the weight again. Every
 * output element is one fma chain over k = 0..K-1 from zero: the bits
 * depend on neither the kernel, nor the row count, nor the threads.
 * Gradients go to the unpacked weight. */
#include "attrs.h"
#include "gemm.h"
#include "op.h"
#if defined(__x86_64__) || defined(__i386__)
#define MN_PACKED_X86 1   /* the vector kernels; other CPUs take the plain C one */
#include <immintrin.h>
#endif
#include <math.h>
#include <omp.h>
#include <string.h>

enum { PW = 16, MR512 = 8, MR256 = 6 };

static int64_t panels(int64_t n) { return (n + PW - 1) / PW; }

/* ---- packing: P[p][k][j] = op(W)[k][16p + j] ---- */

#ifdef MN_PACKED_X86
/* dst[kk][j] = W[n0 + j][k0 + kk] for a 16 x 16 block of W [N, K] (rows
 * K apart): 16 rows in, transposed in registers (unpack, then shuffles of
 * pairs, quads and 128-bit lanes: output vector v is column v), 16 out. */
static __attribute__((target("avx512f"))) void pack_t16(const float *W, int64_t K, int64_t n0, int64_t k0, float *dst)
{
    __m512 r[16], t[16];
    for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(W + (n0 + j) * K + k0);
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xDD);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
    }
    for (int kk = 0; kk < 16; kk++) _mm512_storeu_ps(dst + kk * PW, r[kk]);
}
#endif

/* A whole panel (16 columns of op(W) inside N) is copied by rows of 16
 * floats (W as stored) or, transposed, by 16 x 16 blocks in registers
 * (AVX-512); the rest element by element. A copy: the bits never change. */
static void pack_panel(const float *W, bool trans_b, int64_t N, int64_t K, int64_t p, float *P, bool avx512)
{
    float *dst = P + p * K * PW;
    int64_t k = 0;
    bool full = p * PW + PW <= N;
    if (full && !trans_b)
        for (; k < K; k++) memcpy(dst + k * PW, W + k * N + p * PW, PW * sizeof *dst);
#ifdef MN_PACKED_X86
    if (full && trans_b && avx512)
        for (; k + 16 <= K; k += 16) pack_t16(W, K, p * PW, k, dst + k * PW);
#else
    (void)avx512;
#endif
    for (; k < K; k++)
        for (int64_t j = 0; j < PW; j++) {
            int64_t n = p * PW + j;
            dst[k * PW + j] = n >= N ? 0.0f : trans_b ? W[n * K + k] : W[k * N + n];
        }
}

void mn__pack_weight(const float *W, bool trans_b, int64_t N, int64_t K, float *P, int threads)
{
    int64_t np = panels(N);
    bool avx512 = mn__packed_isa() == MN_PACKED_AVX512;
    if (threads > 1 && !omp_in_parallel() && N * K >= (1 << 16)) {
        #pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t p = 0; p < np; p++) pack_panel(W, trans_b, N, K, p, P, avx512);
        return;
    }
    for (int64_t p = 0; p < np; p++) pack_panel(W, trans_b, N, K, p, P, avx512);
}

/* ---- kernels: C[R rows, ncols] of one or two panels (ps: panel stride) ---- */

typedef void (*kern_fn)(int64_t K, const float *A, int64_t lda, const float *P, int64_t ps, float *C, int64_t ldc,
                        int64_t ncols, const float *b1, const float *b2);

#ifdef MN_PACKED_X86
static inline __attribute__((always_inline, target("avx512f")))
void mk512(const int R, const int NP, int64_t K, const float *A, int64_t lda, const float *P, int64_t ps, float *C,
           int64_t ldc, int64_t ncols, const bool PF, const char *pf, int64_t pfn, bool pfw, const float *b1, const float *b2)
{
    __m512 acc[MR512][2], b[2];
    int64_t every = PF && pfn > 0 ? (K / pfn > 0 ? K / pfn : 1) : 0, due = every, j = 0;
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NP; q++) acc[r][q] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        for (int q = 0; q < NP; q++) b[q] = _mm512_loadu_ps(P + q * ps + k * PW);
        for (int r = 0; r < R; r++) {
            __m512 a = _mm512_set1_ps(A[r * lda + k]);
            for (int q = 0; q < NP; q++) acc[r][q] = _mm512_fmadd_ps(a, b[q], acc[r][q]);
        }
        if (PF && --due == 0) {          /* one line of the window every `every` k */
            due = every;
            if (j < pfn) {
                if (pfw) __builtin_prefetch(pf + 64 * j, 1, 2);
                else __builtin_prefetch(pf + 64 * j, 0, 2);
                j++;
            }
        }
    }
    for (; PF && j < pfn; j++) {         /* more lines than k */
        if (pfw) __builtin_prefetch(pf + 64 * j, 1, 2);
        else __builtin_prefetch(pf + 64 * j, 0, 2);
    }
    /* the bias epilogue: after the whole chain, + b1 then + b2, each
     * rounded once, as separate adds would (columns past ncols not read) */
    for (int q = 0; q < NP && b1; q++) {
        int64_t c = ncols - q * PW;
        __mmask16 m = c >= PW ? (__mmask16)0xffff : c > 0 ? (__mmask16)((1u << c) - 1) : 0;
        __m512 v1 = _mm512_maskz_loadu_ps(m, b1 + q * PW), v2 = b2 ? _mm512_maskz_loadu_ps(m, b2 + q * PW) : v1;
        for (int r = 0; r < R; r++) {
            acc[r][q] = _mm512_add_ps(acc[r][q], v1);
            if (b2) acc[r][q] = _mm512_add_ps(acc[r][q], v2);
        }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NP; q++) {
            int64_t c = ncols - q * PW;
            if (c >= PW) _mm512_storeu_ps(C + r * ldc + q * PW, acc[r][q]);
            else if (c > 0) _mm512_mask_storeu_ps(C + r * ldc + q * PW, (__mmask16)((1u << c) - 1), acc[r][q]);
        }
}

/* Stores 16 columns of a row (8 + 8), the columns past ncols masked off. */
static inline __attribute__((always_inline, target("avx2,fma")))
void store256(float *c, __m256 lo, __m256 hi, int64_t ncols)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    if (ncols >= PW) {
        _mm256_storeu_ps(c, lo);
        _mm256_storeu_ps(c + 8, hi);
        return;
    }
    _mm256_maskstore_ps(c, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)ncols), lane), lo);
    _mm256_maskstore_ps(c + 8, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)ncols - 8), lane), hi);
}

/* AVX2 has 16 registers: 12 accumulators in named variables (gcc 12 kept
 * an array of them in memory, stored on every k: 66 GFLOP/s against
 * 107-110 now and OpenBLAS's Haswell kernels' 85-98 on the recurrent
 * products, scripts/packed-probe.sh). Rows at and past R are not computed. */
#define ROW256(r)                                                                                                      \
    if (R > r) {                                                                                                       \
        __m256 a = _mm256_broadcast_ss(A + r * lda + k);                                                               \
        c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                                                                     \
        c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                                                                     \
    }
/* b's 16 columns (8 + 8), those past ncols not read (zero). */
static inline __attribute__((always_inline, target("avx2,fma")))
void load256(const float *b, int64_t ncols, __m256 *lo, __m256 *hi)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    if (ncols >= PW) {
        *lo = _mm256_loadu_ps(b);
        *hi = _mm256_loadu_ps(b + 8);
        return;
    }
    *lo = _mm256_maskload_ps(b, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)ncols), lane));
    *hi = _mm256_maskload_ps(b + 8, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)ncols - 8), lane));
}

#define BIAS256(r)                                                                                                     \
    if (R > r) {                                                                                                       \
        c##r##0 = _mm256_add_ps(c##r##0, lo);                                                                          \
        c##r##1 = _mm256_add_ps(c##r##1, hi);                                                                          \
    }
static inline __attribute__((always_inline, target("avx2,fma")))
void mk256(const int R, int64_t K, const float *A, int64_t lda, const float *P, float *C, int64_t ldc, int64_t ncols,
           const float *b1, const float *b2)
{
    __m256 z = _mm256_setzero_ps(), c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z,
           c41 = z, c50 = z, c51 = z;
    for (int64_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(P + k * PW), b1 = _mm256_loadu_ps(P + k * PW + 8);
        ROW256(0) ROW256(1) ROW256(2) ROW256(3) ROW256(4) ROW256(5)
    }
    for (int i = 0; i < 2; i++) {       /* the bias epilogue, as mk512's */
        const float *b = i == 0 ? b1 : b2;
        if (!b) break;
        __m256 lo, hi;
        load256(b, ncols, &lo, &hi);
        BIAS256(0) BIAS256(1) BIAS256(2) BIAS256(3) BIAS256(4) BIAS256(5)
    }
    store256(C, c00, c01, ncols);
    if (R > 1) store256(C + ldc, c10, c11, ncols);
    if (R > 2) store256(C + 2 * ldc, c20, c21, ncols);
    if (R > 3) store256(C + 3 * ldc, c30, c31, ncols);
    if (R > 4) store256(C + 4 * ldc, c40, c41, ncols);
    if (R > 5) store256(C + 5 * ldc, c50, c51, ncols);
}

#define K512(R, NP)                                                                                                    \
    static __attribute__((target("avx512f"))) void k512_##R##_##NP(int64_t K, const float *A, int64_t lda,             \
                                                                   const float *P, int64_t ps, float *C, int64_t ldc,  \
                                                                   int64_t ncols, const float *b1, const float *b2)    \
    {                                                                                                                  \
        mk512(R, NP, K, A, lda, P, ps, C, ldc, ncols, false, NULL, 0, false, b1, b2);                                  \
    }                                                                                                                  \
    static __attribute__((target("avx512f"))) void k512pf_##R##_##NP(int64_t K, const float *A, int64_t lda,           \
                                                                     const float *P, int64_t ps, float *C,             \
                                                                     int64_t ldc, int64_t ncols, const char *pf,        \
                                                                     int64_t pfn, bool pfw, const float *b1,            \
                                                                     const float *b2)                                   \
    {                                                                                                                  \
        mk512(R, NP, K, A, lda, P, ps, C, ldc, ncols, true, pf, pfn, pfw, b1, b2);                                     \
    }
#define K256(R)                                                                                                        \
    static __attribute__((target("avx2,fma"))) void k256_##R(int64_t K, const float *A, int64_t lda, const float *P,   \
                                                              int64_t ps, float *C, int64_t ldc, int64_t ncols,        \
                                                              const float *b1, const float *b2)                        \
    {                                                                                                                  \
        (void)ps;                                                                                                      \
        mk256(R, K, A, lda, P, C, ldc, ncols, b1, b2);                                                                 \
    }
K512(1, 1) K512(2, 1) K512(3, 1) K512(4, 1) K512(5, 1) K512(6, 1) K512(7, 1) K512(8, 1)
K512(1, 2) K512(2, 2) K512(3, 2) K512(4, 2) K512(5, 2) K512(6, 2) K512(7, 2) K512(8, 2)
K256(1) K256(2) K256(3) K256(4) K256(5) K256(6)

static const kern_fn t512[2][MR512] = {
    { k512_1_1, k512_2_1, k512_3_1, k512_4_1, k512_5_1, k512_6_1, k512_7_1, k512_8_1 },
    { k512_1_2, k512_2_2, k512_3_2, k512_4_2, k512_5_2, k512_6_2, k512_7_2, k512_8_2 },
};
/* The same, issuing pfn prefetches of the lines from pf spread over k. */
typedef void (*kernpf_fn)(int64_t K, const float *A, int64_t lda, const float *P, int64_t ps, float *C, int64_t ldc,
                          int64_t ncols, const char *pf, int64_t pfn, bool pfw, const float *b1, const float *b2);
static const kernpf_fn t512pf[2][MR512] = {
    { k512pf_1_1, k512pf_2_1, k512pf_3_1, k512pf_4_1, k512pf_5_1, k512pf_6_1, k512pf_7_1, k512pf_8_1 },
    { k512pf_1_2, k512pf_2_2, k512pf_3_2, k512pf_4_2, k512pf_5_2, k512pf_6_2, k512pf_7_2, k512pf_8_2 },
};
static const kern_fn t256[MR256] = { k256_1, k256_2, k256_3, k256_4, k256_5, k256_6 };
#endif

/* Plain C: the same fma chain per element (fmaf rounds once, as the vector
 * FMAs), then the bias epilogue's adds. */
static void kscalar(int64_t R, int64_t K, const float *A, int64_t lda, const float *P, float *C, int64_t ldc, int64_t ncols,
                    const float *b1, const float *b2)
{
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < ncols; j++) {
            float s = 0.0f;
            for (int64_t k = 0; k < K; k++) s = fmaf(A[r * lda + k], P[k * PW + j], s);
            if (b1) s = s + b1[j];
            if (b2) s = s + b2[j];
            C[r * ldc + j] = s;
        }
}

int mn__packed_isa(void)
{
#ifdef MN_PACKED_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return MN_PACKED_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MN_PACKED_AVX2;
#endif
    return MN_PACKED_C;
}

/* Rows per block of packed_cols: A's block (rows x K floats) about 128
 * KiB, so it stays in L2 while every panel pair passes over it; a whole
 * strip at least. */
static int64_t row_block(int64_t K, int64_t mr)
{
    int64_t rows = (32768 / (K > 0 ? K : 1)) / mr * mr;
    return rows > mr ? rows : mr;
}

/* A prefetch window (ops/gemm.h, mn__window_forward): the lines of what
 * the next level reads and writes, brought towards L2 while the product
 * computes, in even portions over its strips, and inside a strip one line
 * every K / n k-steps (a burst of a hundred prefetches stalled the
 * product's own loads: docs/performance.md, "### cache"). No data changes. */
typedef struct {
    mn__span sp[MN_WINDOW_SPANS];
    int n, cur;             /* spans; the one being prefetched */
    uintptr_t at;           /* next line of sp[cur] */
    int64_t lines, done;    /* lines in all, issued so far */
    int64_t it, its;        /* strips done, in all */
} window;

/* win's spans, whole lines (the caller's own: on several threads the
 * executor gives each part the bytes its thread's next part touches). */
static void window_init(window *w, const mn__span *win, int nwin, int64_t its)
{
    w->n = w->cur = 0;
    w->lines = w->done = w->it = 0;
    w->its = its;
    for (int i = 0; i < nwin && w->n < MN_WINDOW_SPANS; i++) {
        uintptr_t lo = win[i].lo & ~(uintptr_t)63, hi = win[i].hi;
        if (hi <= lo) continue;
        w->sp[w->n] = (mn__span){ lo, hi, win[i].write };
        w->lines += (int64_t)((hi - lo + 63) / 64);
        w->n++;
    }
    w->at = w->n ? w->sp[0].lo : 0;
}

/* Before one more iteration: the lines due by its end, as far as the
 * current span goes (*n lines from *at; the rest comes with the next). */
static void window_take(window *w, const char **at, int64_t *n, bool *wr)
{
    *n = 0;
    if (!w || w->done >= w->lines) return;
    int64_t due = w->lines * ++w->it / w->its;
    if (w->cur >= w->n || due <= w->done) return;
    int64_t left = (int64_t)((w->sp[w->cur].hi - w->at + 63) / 64), take = due - w->done < left ? due - w->done : left;
    *at = (const char *)w->at;
    *n = take;
    *wr = w->sp[w->cur].write;
    w->done += take;
    w->at += (uintptr_t)take * 64;
    if (w->at >= w->sp[w->cur].hi && ++w->cur < w->n) w->at = w->sp[w->cur].lo;
}

/* The lines of n from at, at once (kernels without a spread). */
static void window_burst(const char *at, int64_t n, bool wr)
{
    for (int64_t j = 0; j < n; j++) {
        if (wr) __builtin_prefetch(at + 64 * j, 1, 2);
        else __builtin_prefetch(at + 64 * j, 0, 2);
    }
}

/* Columns [16 p0, 16 p1) of C, every row: per block of rows, for each pair
 * of panels, every strip of rows. One block (an RNN step's 32 rows): the
 * pair stays in L1 over the strips. Many rows (an input projection's 1024
 * and more): a block of A is read from L2 by every pair instead of all of
 * A from L3 (its dx's A, 1024 x 4H, is 2-4 MiB), as a per-step GEMM did.
 * win (or NULL): prefetched over the iterations, after each pair. b1, b2
 * (or NULL): the bias epilogue's vectors [N], added to every row. */
static void packed_cols(int isa, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P, float *C,
                        int64_t ldc, int64_t p0, int64_t p1, const mn__span *win, int nwin, const float *b1, const float *b2)
{
    int64_t ps = K * PW, mr = isa == MN_PACKED_AVX512 ? MR512 : MR256, rb = row_block(K, mr);
    int64_t step = isa == MN_PACKED_AVX512 ? 2 : 1, its = 0;
    for (int64_t i0 = 0; i0 < M; i0 += rb) its += ((M - i0 < rb ? M - i0 : rb) + mr - 1) / mr;
    its *= (p1 - p0 + step - 1) / step;
    window w, *wp = NULL;
    if (nwin > 0 && its > 0) {
        window_init(&w, win, nwin, its);
        wp = &w;
    }
    for (int64_t i0 = 0; i0 < M; i0 += rb) {
        int64_t i1 = M - i0 < rb ? M : i0 + rb;
        for (int64_t p = p0; p < p1; p += step) {
            int64_t np = isa == MN_PACKED_AVX512 && p + 1 < p1 ? 2 : 1, ncols = N - p * PW;
            for (int64_t i = i0; i < i1; i += mr) {
                int64_t R = i1 - i < mr ? i1 - i : mr;
                const float *a = A + i * lda, *pp = P + p * ps;
                float *c = C + i * ldc + p * PW;
                const float *q1 = b1 ? b1 + p * PW : NULL, *q2 = b2 ? b2 + p * PW : NULL;
                const char *pf = NULL;
                int64_t pfn = 0;
                bool pfw = false;
                window_take(wp, &pf, &pfn, &pfw);
#ifdef MN_PACKED_X86
                if (isa == MN_PACKED_AVX512 && pfn) t512pf[np - 1][R - 1](K, a, lda, pp, ps, c, ldc, ncols, pf, pfn, pfw, q1, q2);
                else if (isa == MN_PACKED_AVX512) t512[np - 1][R - 1](K, a, lda, pp, ps, c, ldc, ncols, q1, q2);
                else if (isa == MN_PACKED_AVX2) t256[R - 1](K, a, lda, pp, ps, c, ldc, ncols, q1, q2);
                else
#endif
                    kscalar(R, K, a, lda, pp, c, ldc, ncols < PW ? ncols : PW, q1, q2);
                if (pfn && isa != MN_PACKED_AVX512) window_burst(pf, pfn, pfw);
            }
        }
    }
}

/* How a product is shared among `threads` (ops/gemm.h). By rows, cut at
 * strips of 8, once every thread gets two strips or more: an RNN time
 * step's 32 rows go 16 and 16, the rows the elementwise cell kernels give
 * the same threads (static halves), so the gates a thread writes are the
 * ones its cell reads and the h (or dG) its cell writes is the A it reads:
 * nothing crosses cores inside a step; each thread reads all of W, which
 * cost nothing measurable (docs/performance.md, "### team2"). Fewer rows:
 * by pairs of panels. Tiny products: one thread. */
int mn__packed_split(int64_t M, int64_t N, int64_t K, int threads)
{
    int64_t pairs = (N + 2 * PW - 1) / (2 * PW), strips = (M + 7) / 8;
    if (threads <= 1 || M == 0 || N == 0 || M * N * K < (1 << 17)) return MN_PACKED_ONE;
    if (strips >= 2 * (int64_t)threads) return MN_PACKED_ROWS;
    return pairs >= 2 ? MN_PACKED_COLS : MN_PACKED_ONE;
}

void mn__strip_rows(int64_t M, int part, int nparts, int64_t *m0, int64_t *m1)
{
    int64_t strips = (M + 7) / 8;
    *m0 = strips * part / nparts * 8;
    *m1 = strips * (part + 1) / nparts * 8;
    if (*m1 > M) *m1 = M;
}

/* Part `part` of `nparts` of the product, as mn__packed_split shares it
 * (ONE: part 0 computes everything); win: this part's prefetch window;
 * b1, b2: the bias epilogue's vectors, or NULL. */
static void packed_part(int isa, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P, float *C,
                        int64_t ldc, int part, int nparts, const mn__span *win, int nwin, const float *b1, const float *b2)
{
    int64_t np = panels(N), pairs = (np + 1) / 2;
    int split = mn__packed_split(M, N, K, nparts);
    if (split == MN_PACKED_ONE) {
        if (part == 0) packed_cols(isa, M, N, K, A, lda, P, C, ldc, 0, np, win, nwin, b1, b2);
        return;
    }
    if (split == MN_PACKED_ROWS) {
        int64_t m0, m1;
        mn__strip_rows(M, part, nparts, &m0, &m1);
        packed_cols(isa, m1 - m0, N, K, A + m0 * lda, lda, P, C + m0 * ldc, ldc, 0, np, win, nwin, b1, b2);
        return;
    }
    int64_t nt = pairs < nparts ? pairs : nparts, q0 = pairs * part / nt * 2, q1 = pairs * (part + 1) / nt * 2;
    if (part < nt) packed_cols(isa, M, N, K, A, lda, P, C, ldc, q0, q1 < np ? q1 : np, win, nwin, b1, b2);
}

/* C [M, N] (row stride ldc) = A [M, K] (row stride lda) times the packed
 * op(W), shared as mn__packed_split says: rows in strips of 8, evenly
 * (an input projection's block: its dx has as few as 2-4 pairs of panels,
 * 64 or 100 input columns; an RNN step: see above), or panels in pairs.
 * Inside a parallel region: one thread. `isa` is mn__packed_isa()'s
 * answer, or a narrower one. */
static void packed_gemm(int isa, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P, float *C,
                        int64_t ldc, int threads, const mn__span *win, int nwin, const float *b1, const float *b2)
{
    if (omp_in_parallel()) threads = 1;
    if (mn__packed_split(M, N, K, threads) == MN_PACKED_ONE) {
        packed_part(isa, M, N, K, A, lda, P, C, ldc, 0, 1, win, nwin, b1, b2);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; t++) packed_part(isa, M, N, K, A, lda, P, C, ldc, t, threads, win, nwin, b1, b2);
}

void mn__packed_gemm(int isa, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P, float *C,
                     int64_t ldc, int threads)
{
    packed_gemm(isa, M, N, K, A, lda, P, C, ldc, threads, NULL, 0, NULL, NULL);
}

void mn__packed_gemm_bias(int isa, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P, float *C,
                          int64_t ldc, int threads, const float *b1, const float *b2)
{
    packed_gemm(isa, M, N, K, A, lda, P, C, ldc, threads, NULL, 0, b1, b2 && b1 ? b2 : NULL);
}

/* ---- the ops ---- */

extern const mn_op_def mn__op_pack_weight, mn__op_matmul_packed;

/* N and K of op(W) for a 2-dim W. */
static void nk_of(mn_shape w, bool trans_b, int64_t *N, int64_t *K)
{
    *N = trans_b ? w.d[0] : w.d[1];
    *K = trans_b ? w.d[1] : w.d[0];
}

static mn_status check_attrs(mn_infer_ctx *c)
{
    const mn_matmul_attrs *a = c->attrs;
    if (a->trans_a || a->per_step) return mn__infer_fail(c, MN_ERR_INVALID, "only trans_b applies (trans_a and per_step must be false)");
    return MN_OK;
}

static mn_status infer_pack(mn_infer_ctx *c)
{
    const mn_matmul_attrs *a = c->attrs;
    mn_shape w = c->in[0].shape;
    int64_t N, K;
    if (c->in[0].dtype != MN_F32 || w.ndim != 2) return mn__infer_fail(c, MN_ERR_SHAPE, "the weight must be 2-dim f32");
    if (check_attrs(c)) return MN_ERR_INVALID;
    nk_of(w, a->trans_b, &N, &K);
    c->out = (mn_tdesc){ MN_F32, MN_SHAPE(panels(N), K, PW) };
    return MN_OK;
}

static mn_status pack_fwd(const mn_kernel_ctx *c)
{
    const mn_matmul_attrs *a = c->attrs;
    int64_t N, K;
    nk_of(c->in[0].shape, a->trans_b, &N, &K);
    mn__pack_weight(mn_f32(&c->in[0]), a->trans_b, N, K, mn_f32(c->out), c->nthreads);
    return MN_OK;
}

static mn_status infer_matmul_packed(mn_infer_ctx *c)
{
    const mn_matmul_attrs *a = c->attrs;
    if (c->nin < 3 || c->nin > 5) return mn__infer_fail(c, MN_ERR_INVALID, "takes A, W, the packed W and up to two bias vectors");
    mn_shape x = c->in[0].shape, w = c->in[1].shape, p = c->in[2].shape;
    int64_t N, K;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "inputs must be f32");
    if (check_attrs(c)) return MN_ERR_INVALID;
    if (x.ndim < 2 || w.ndim != 2) return mn__infer_fail(c, MN_ERR_SHAPE, "A needs at least 2 dims and W exactly 2");
    nk_of(w, a->trans_b, &N, &K);
    if (x.d[x.ndim - 1] != K)
        return mn__infer_fail(c, MN_ERR_SHAPE, "inner dims %lld and %lld differ", (long long)x.d[x.ndim - 1], (long long)K);
    if (!mn_shape_eq(p, MN_SHAPE(panels(N), K, PW)))
        return mn__infer_fail(c, MN_ERR_SHAPE, "packed weight must be [%lld, %lld, %d] (pack_weight of W, same trans_b)",
                              (long long)panels(N), (long long)K, PW);
    for (int i = 3; i < c->nin; i++)
        if (!mn_shape_eq(c->in[i].shape, MN_SHAPE(N)))
            return mn__infer_fail(c, MN_ERR_SHAPE, "bias %d must be [%lld] (one value per output column)", i - 2, (long long)N);
    x.d[x.ndim - 1] = N;
    c->out = (mn_tdesc){ MN_F32, x };
    return MN_OK;
}

/* Part `part` of `nparts` of matmul_packed's forward (nparts 0: the whole
 * product with c->nthreads threads): the executor's team (graph/run.c)
 * calls it on every thread; win: a prefetch window, or none. */
static mn_status matmul_packed_window(const mn_kernel_ctx *c, int part, int nparts, const mn__span *win, int nwin)
{
    const mn_matmul_attrs *a = c->attrs;
    int64_t N, K;
    nk_of(c->in[1].shape, a->trans_b, &N, &K);
    int64_t M = K ? mn_tensor_numel(&c->in[0]) / K : mn_tensor_numel(c->out) / (N ? N : 1);
    float *C = mn_f32(c->out);
    const float *b1 = c->nin > 3 ? mn_f32(&c->in[3]) : NULL, *b2 = c->nin > 4 ? mn_f32(&c->in[4]) : NULL;
    if (K == 0) {
        for (int64_t i = 0; i < M * N && part <= 0; i++) C[i] = (0.0f + (b1 ? b1[i % N] : 0.0f)) + (b2 ? b2[i % N] : 0.0f);
        return MN_OK;
    }
    if (nparts > 0)
        packed_part(mn__packed_isa(), M, N, K, mn_f32(&c->in[0]), K, mn_f32(&c->in[2]), C, N, part, nparts, win, nwin, b1, b2);
    else packed_gemm(mn__packed_isa(), M, N, K, mn_f32(&c->in[0]), K, mn_f32(&c->in[2]), C, N, c->nthreads, win, nwin, b1, b2);
    return MN_OK;
}

static mn_status matmul_packed_part(const mn_kernel_ctx *c, int part, int nparts)
{
    return matmul_packed_window(c, part, nparts, NULL, 0);
}

static mn_status matmul_packed_fwd(const mn_kernel_ctx *c) { return matmul_packed_part(c, 0, 0); }

/* Floats [e0, e1) of t as a span. */
static mn__span float_span(const mn_tensor *t, int64_t e0, int64_t e1, bool write)
{
    uintptr_t base = (uintptr_t)t->data;
    return (mn__span){ base + (uintptr_t)e0 * sizeof(float), base + (uintptr_t)e1 * sizeof(float), write };
}

/* The bytes matmul_packed_part(c, part, nparts) touches: by rows, its rows
 * of A and C and all of P; otherwise (by columns, or part 0 alone) all of
 * A, P and C for a part that computes anything. W is read for its shape only. */
static int matmul_packed_spans(const mn_kernel_ctx *c, int part, int nparts, mn__span *sp, int max)
{
    const mn_matmul_attrs *a = c->attrs;
    int64_t N, K;
    nk_of(c->in[1].shape, a->trans_b, &N, &K);
    int64_t M = K ? mn_tensor_numel(&c->in[0]) / K : mn_tensor_numel(c->out) / (N ? N : 1), m0 = 0, m1 = M;
    int split = K ? mn__packed_split(M, N, K, nparts) : MN_PACKED_ONE;
    if (max < c->nin) return -1;
    if (split == MN_PACKED_ROWS) mn__strip_rows(M, part, nparts, &m0, &m1);
    else if (split == MN_PACKED_COLS) {
        int64_t pairs = (panels(N) + 1) / 2;
        if (part >= (pairs < nparts ? pairs : nparts)) m1 = 0;
    } else if (part > 0) m1 = 0;
    if (m0 >= m1) return 0;
    sp[0] = float_span(c->out, m0 * N, m1 * N, true);
    sp[1] = float_span(&c->in[0], m0 * K, m1 * K, false);
    for (int i = 2; i < c->nin; i++) sp[i] = float_span(&c->in[i], 0, mn_tensor_numel(&c->in[i]), false);   /* P, the biases */
    return c->nin;
}

extern const mn_op_def mn__op_matmul_packed, mn__op_add;

/* The bias epilogue (graph/fuse.c): matmul_packed takes up to two. */
int mn__bias_epilogue(const mn_op_def *op) { return op == &mn__op_matmul_packed ? 2 : 0; }

/* out = in[row] + in[vec], in[vec] an [N] vector (N: out's last dim)
 * broadcast over out's rows, in[row] of out's shape: vec, else -1. */
int mn__row_bias(const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out)
{
    if (op != &mn__op_add || nin != 2 || out->dtype != MN_F32 || out->shape.ndim < 2) return -1;
    for (int v = 0; v < 2; v++)
        if (in[v].dtype == MN_F32 && in[1 - v].dtype == MN_F32 && mn_shape_eq(in[1 - v].shape, out->shape) &&
            mn_shape_eq(in[v].shape, MN_SHAPE(out->shape.d[out->shape.ndim - 1])))
            return v;
    return -1;
}

extern const mn_op_def mn__op_concat, mn__op_index_select;
mn__part_fn mn__part_forward(const mn_op_def *op)
{
    if (op == &mn__op_matmul_packed) return matmul_packed_part;
    return op == &mn__op_index_select ? mn__index_select_part : NULL;
}
bool mn__part_exact(const mn_op_def *op) { return op == &mn__op_index_select; }
mn__window_fn mn__window_forward(const mn_op_def *op) { return op == &mn__op_matmul_packed ? matmul_packed_window : NULL; }
mn__spans_fn mn__part_spans(const mn_op_def *op)
{
    if (op == &mn__op_matmul_packed) return matmul_packed_spans;
    if (op == &mn__op_index_select) return mn__index_select_spans;
    return op == &mn__op_concat ? mn__concat_spans : NULL;
}

mn_node *mn_pack_weight(mn_graph *g, mn_node *w, bool trans_b)
{
    mn_matmul_attrs at = { false, trans_b, false };
    return mn__node(g, &mn__op_pack_weight, &w, 1, &at);
}

mn_node *mn_matmul_packed(mn_graph *g, mn_node *a, mn_node *w, mn_node *packed, bool trans_b)
{
    mn_node *f = mn__fold_product(g, a, w, trans_b);       /* rows of a small table: its product, gathered */
    if (f) return f;
    mn_matmul_attrs at = { false, trans_b, false };
    mn_node *in[3] = { a, w, packed };
    return mn__node(g, &mn__op_matmul_packed, in, 3, &at);
}

/* Collapses all leading dims: [..., r, c] -> [prod, c]. */
static mn_node *flat2(mn_graph *g, mn_node *x)
{
    mn_shape s = mn_node_shape(x);
    return s.ndim == 2 ? x : mn_reshape(g, x, MN_SHAPE(mn_shape_numel(s) / s.d[s.ndim - 1], s.d[s.ndim - 1]));
}

/* C = A op(W) (+ b1 + b2): dA = dC op(W)^T, again a packed product (W
 * packed the other way, one pack per graph after CSE); dW = dC^T A (or
 * A^T dC), a plain matmul, so the weight gradients of all steps merge into
 * one GEMM (matmul's merge_grads); a bias's, dC summed over the rows. The
 * packed copy gets no gradient. */
static mn_status vjp_matmul_packed(mn_vjp_ctx *c)
{
    const mn_matmul_attrs *at = c->attrs;
    mn_graph *g = c->g;
    mn_node *A = c->in[0], *W = c->in[1], *dC = c->dy;
    if (c->needs[0]) c->dx[0] = mn_matmul_packed(g, dC, W, mn_pack_weight(g, W, !at->trans_b), !at->trans_b);
    for (int i = 3; i < c->nin; i++)                      /* the bias epilogue's vectors: summed over the rows */
        if (c->needs[i]) c->dx[i] = mn_sum_to(g, dC, mn_node_shape(c->in[i]));
    if (c->needs[1]) {
        mn_node *A2 = flat2(g, A), *dC2 = flat2(g, dC);
        c->dx[1] = at->trans_b ? mn_matmul(g, dC2, A2, true, false) : mn_matmul(g, A2, dC2, true, false);
    }
    return MN_OK;
}

static void cost_pack(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)nin; (void)attrs;
    *flops = 0;
    *bytes = 4.0 * (double)(mn_shape_numel(in[0].shape) + mn_shape_numel(out->shape));
}

static void cost_matmul_packed(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops,
                               double *bytes)
{
    (void)attrs;
    mn_shape A = in[0].shape;
    *flops = (2.0 * (double)A.d[A.ndim - 1] + (nin - 3)) * (double)mn_shape_numel(out->shape);
    *bytes = 4.0 * (double)(mn_shape_numel(A) + mn_shape_numel(in[2].shape) + mn_shape_numel(out->shape) + (nin - 3) * out->shape.d[out->shape.ndim - 1]);
}

/* C's rows come from A's rows alone, whatever the call's row count: with
 * steps first (A of 3 or more dims), a slice of steps of A gives the same
 * steps of C bit for bit (graph/split.c's row splitting). */
static int packed_rows(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    (void)out; (void)attrs;
    return nin >= 3 && in[0].shape.ndim >= 3 ? 0 : -1;
}

static void packed_str(const void *a, char *buf, size_t n)
{
    snprintf(buf, n, "%s", ((const mn_matmul_attrs *)a)->trans_b ? "W^T" : "W");
}

const mn_op_def mn__op_pack_weight = { MN_OP_RECORD,
    .name = "pack_weight",
    .doc = "P = op(W) in panels of 16 columns [ceil(N/16), K, 16] (zero past N) for matmul_packed; no gradient",
    .arity = 1, .attr_size = sizeof(mn_matmul_attrs), MN__FIELDS(mn_matmul_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_pack, .forward = pack_fwd, .cost = cost_pack, .attr_str = packed_str,
};

const mn_op_def mn__op_matmul_packed = { MN_OP_RECORD,
    .name = "matmul_packed",
    .doc = "C = A op(W) (+ b1 + b2) read from P = pack_weight(W) (A's leading dims are rows; the optional [N] biases added "
           "after the products, the fusion pass's epilogue); dA = dC op(W)^T (packed), dW = dC^T A or A^T dC, db = dC summed over rows",
    .arity = -1, .attr_size = sizeof(mn_matmul_attrs), MN__FIELDS(mn_matmul_attrs), .inplace = -1,
    .infer = infer_matmul_packed, .forward = matmul_packed_fwd, .vjp = vjp_matmul_packed,
    .cost = cost_matmul_packed, .attr_str = packed_str, .traits.row_input = packed_rows,
};
