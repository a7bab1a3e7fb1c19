/* bench/gemm_rates.c: the big products of an lstm_2layer step (B 32, T 64,
 * H 256, E 64; blocks of 1024 rows) on one thread, each way interleaved
 * call by call, thread CPU time, `POLLUTE` MiB of other data written
 * between calls (as the cells and the other products do in the step).
 * Prints GFLOP/s: median and best of REPS calls. dw: also dG with padded
 * rows (argument 4, floats; default 1040), one N only (argument 5),
 * GEMM_RATES_REWRITE=1 (dG written again before each call, as the cells
 * write it in the step), GEMM_RATES_THREADS=2. Includes ops/packed.c to
 * reach its kernels. Build: scripts/gemm-rates.sh. */
#define _GNU_SOURCE
#include "ops/packed.c"
#include <oneapi/dnnl/dnnl.h>
#include <cblas.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

static int nthr = 1;     /* GEMM_RATES_THREADS: 2 runs the dw ways on 2 threads, wall time, not pinned */
static double now(void)
{
    struct timespec t;
    clock_gettime(nthr > 1 ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static float *buf(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *pol;
static size_t poln;
static void pollute(void)
{
    for (size_t i = 0; i < poln; i += 16) pol[i] += 1.0f;
}

/* packed product with a chosen row block (0: the library's) */
static void packed_rb(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P, float *C, int64_t ldc, int64_t rb)
{
    int isa = MN_PACKED_AVX512;
    if (rb == 0) {
        packed_cols(isa, M, N, K, A, lda, P, C, ldc, 0, panels(N), NULL, 0, NULL, NULL);
        return;
    }
    for (int64_t i0 = 0; i0 < M; i0 += rb) {
        int64_t m = M - i0 < rb ? M - i0 : rb;
        /* one call per block: packed_cols' own blocking is at least rb_lib; force by calling per block of rows with its row_block */
        int64_t ps = K * PW;
        for (int64_t p = 0; p < panels(N); p += 2) {
            int64_t np = p + 1 < panels(N) ? 2 : 1;
            for (int64_t i = i0; i < i0 + m; i += MR512) {
                int64_t R = i0 + m - i < MR512 ? i0 + m - i : MR512;
                t512[np - 1][R - 1](K, A + i * lda, lda, P + p * ps, ps, C + i * ldc + p * PW, ldc, N - p * PW, NULL, NULL);
            }
        }
    }
}

/* dW [M, N] = dG^T H (dG [K, M] rows ldg apart, H [K, N] rows ldh apart)
 * computed as dW^T = H^T dG by 8 x 32 tiles: broadcasts from H^T strips
 * S [N/8][K][8] (packed once), vectors from two 16-column panels of dG
 * packed per pair of 32 gate columns (Bp [2][K][16]); each tile stored
 * transposed into dW. One fma chain per element, k in order. */
static __attribute__((target("avx512f"))) void atb_tile(int64_t K, const float *S, const float *Bp, int64_t ps, float *C, int64_t ldc,
                                                         bool from_c)
{
    __m512 acc[8][2];
    if (from_c) {                           /* continue the chains from C (a later block of k) */
        float tmp[8][32];
        for (int j = 0; j < 32; j++)
            for (int r = 0; r < 8; r++) tmp[r][j] = C[(int64_t)j * ldc + r];
        for (int r = 0; r < 8; r++) { acc[r][0] = _mm512_loadu_ps(tmp[r]); acc[r][1] = _mm512_loadu_ps(tmp[r] + 16); }
    } else
        for (int r = 0; r < 8; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(Bp + k * 16), b1 = _mm512_loadu_ps(Bp + ps + k * 16);
        for (int r = 0; r < 8; r++) {
            __m512 a = _mm512_set1_ps(S[k * 8 + r]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    /* transpose 8 x 32 -> 32 x 8: acc[r][q] lane j -> C[(16q + j) ldc + r] */
    for (int q = 0; q < 2; q++) {
        __m512 t[8];
        for (int r = 0; r < 8; r++) t[r] = acc[r][q];
        /* 8 rows of 16 -> 16 rows of 8 via unpack/shuffle */
        __m512 u0 = _mm512_unpacklo_ps(t[0], t[1]), u1 = _mm512_unpackhi_ps(t[0], t[1]);
        __m512 u2 = _mm512_unpacklo_ps(t[2], t[3]), u3 = _mm512_unpackhi_ps(t[2], t[3]);
        __m512 u4 = _mm512_unpacklo_ps(t[4], t[5]), u5 = _mm512_unpackhi_ps(t[4], t[5]);
        __m512 u6 = _mm512_unpacklo_ps(t[6], t[7]), u7 = _mm512_unpackhi_ps(t[6], t[7]);
        __m512 v0 = _mm512_shuffle_ps(u0, u2, 0x44), v1 = _mm512_shuffle_ps(u0, u2, 0xEE);
        __m512 v2 = _mm512_shuffle_ps(u1, u3, 0x44), v3 = _mm512_shuffle_ps(u1, u3, 0xEE);
        __m512 v4 = _mm512_shuffle_ps(u4, u6, 0x44), v5 = _mm512_shuffle_ps(u4, u6, 0xEE);
        __m512 v6 = _mm512_shuffle_ps(u5, u7, 0x44), v7 = _mm512_shuffle_ps(u5, u7, 0xEE);
        /* v0: lanes (per 128-bit block b): rows 0-3 of column 4b+0; v1: column 4b+1; v2: 4b+2; v3: 4b+3; v4-v7: rows 4-7 */
        __m512 lo[4] = { v0, v1, v2, v3 }, hi[4] = { v4, v5, v6, v7 };
        for (int c = 0; c < 4; c++)
            for (int blk = 0; blk < 4; blk++) {
                int j = 4 * blk + c;    /* column within the 16 */
                __m128 l = _mm512_extractf32x4_ps(lo[c], 0), h = _mm512_extractf32x4_ps(hi[c], 0);
                switch (blk) {
                case 1: l = _mm512_extractf32x4_ps(lo[c], 1); h = _mm512_extractf32x4_ps(hi[c], 1); break;
                case 2: l = _mm512_extractf32x4_ps(lo[c], 2); h = _mm512_extractf32x4_ps(hi[c], 2); break;
                case 3: l = _mm512_extractf32x4_ps(lo[c], 3); h = _mm512_extractf32x4_ps(hi[c], 3); break;
                default: break;
                }
                float *dst = C + (int64_t)(16 * q + j) * ldc;
                _mm_storeu_ps(dst, l);
                _mm_storeu_ps(dst + 4, h);
            }
    }
}

static float *Sbuf, *Bpbuf;
static void atb_x(int64_t M, int64_t N, int64_t K, const float *G, int64_t ldg, const float *H, int64_t ldh, float *C)
{
    for (int64_t s = 0; s < N / 8; s++)
        for (int64_t k = 0; k < K; k++) memcpy(Sbuf + (s * K + k) * 8, H + k * ldh + 8 * s, 32);
    for (int64_t m0 = 0; m0 < M; m0 += 32) {
        for (int64_t k = 0; k < K; k++) {
            memcpy(Bpbuf + k * 16, G + k * ldg + m0, 64);
            memcpy(Bpbuf + K * 16 + k * 16, G + k * ldg + m0 + 16, 64);
        }
        for (int64_t s = 0; s < N / 8; s++) atb_tile(K, Sbuf + s * K * 8, Bpbuf, K * 16, C + m0 * N + 8 * s, N, false);
    }
}

/* The same by blocks of kb rows of k: H^T's block (N kb floats) in L2,
 * dG's pair block (32 kb floats) in L1 over the strips; later blocks
 * continue each tile from C. */
static void atb_xk(int64_t M, int64_t N, int64_t K, const float *G, int64_t ldg, const float *H, int64_t ldh, float *C, int64_t kb)
{
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
        int64_t n = K - k0 < kb ? K - k0 : kb;
        for (int64_t s = 0; s < N / 8; s++)
            for (int64_t k = 0; k < n; k++) memcpy(Sbuf + (s * n + k) * 8, H + (k0 + k) * ldh + 8 * s, 32);
        for (int64_t m0 = 0; m0 < M; m0 += 32) {
            for (int64_t k = 0; k < n; k++) {
                memcpy(Bpbuf + k * 16, G + (k0 + k) * ldg + m0, 64);
                memcpy(Bpbuf + n * 16 + k * 16, G + (k0 + k) * ldg + m0 + 16, 64);
            }
            for (int64_t s = 0; s < N / 8; s++) atb_tile(n, Sbuf + s * n * 8, Bpbuf, n * 16, C + m0 * N + 8 * s, N, k0 > 0);
        }
    }
}

typedef struct {
    const char *name;
    int kind;       /* 0 packed rb, 1 dnnl_sgemm NT, 2 dnnl_sgemm TN, 3 dnnl matmul prim TN */
    int64_t rb;
} way;

/* oneDNN matmul primitive for C[M,N] = A^T B, A [K, M] row-major, B [K, N] */
typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, w;
    void *scratch;
} prim_t;

static prim_t make_gen(int64_t M, int64_t N, int64_t K, bool acc, const int64_t sa[2], const int64_t sb[2], const int64_t sc[2]);
static prim_t make_tn_ld(int64_t M, int64_t N, int64_t K, bool acc, int64_t lda)
{
    int64_t sa[2] = { 1, lda }, sb[2] = { N, 1 }, sc[2] = { N, 1 };
    return make_gen(M, N, K, acc, sa, sb, sc);
}
static prim_t make_tn(int64_t M, int64_t N, int64_t K, bool acc) { return make_tn_ld(M, N, K, acc, M); }
static prim_t make_gen(int64_t M, int64_t N, int64_t K, bool acc, const int64_t sa_[2], const int64_t sb_[2], const int64_t sc_[2])
{
    prim_t p = { 0 };
    dnnl_engine_create(&p.eng, dnnl_cpu, 0);
    dnnl_stream_create(&p.strm, p.eng, dnnl_stream_default_flags);
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = { M, K }, db = { K, N }, dc = { M, N }, sa = { sa_[0], sa_[1] }, sb = { sb_[0], sb_[1] }, sc = { sc_[0], sc_[1] };
    dnnl_memory_desc_init_by_strides(&a, 2, da, dnnl_f32, sa);
    dnnl_memory_desc_init_by_strides(&b, 2, db, dnnl_f32, sb);
    dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc);
    dnnl_matmul_desc_t d;
    dnnl_matmul_desc_init(&d, &a, &b, NULL, &c);
    dnnl_primitive_attr_t at;
    dnnl_primitive_attr_create(&at);
    dnnl_primitive_attr_set_scratchpad_mode(at, dnnl_scratchpad_mode_user);
    if (acc) {
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, 1.0f);
        dnnl_primitive_attr_set_post_ops(at, po);
    }
    dnnl_primitive_desc_t pd;
    omp_set_num_threads(nthr);
    if (dnnl_primitive_desc_create(&pd, &d, at, p.eng, NULL)) { fprintf(stderr, "pd failed\n"); exit(1); }
    const char *impl;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    fprintf(stderr, "%lldx%lldx%lld strides A %lld,%lld B %lld,%lld C %lld,%lld impl %s\n", (long long)M, (long long)N, (long long)K,
            (long long)sa[0], (long long)sa[1], (long long)sb[0], (long long)sb[1], (long long)sc[0], (long long)sc[1], impl);
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_primitive_create(&p.prim, pd);
    dnnl_memory_create(&p.a, &a, p.eng, DNNL_MEMORY_NONE);
    dnnl_memory_create(&p.b, &b, p.eng, DNNL_MEMORY_NONE);
    dnnl_memory_create(&p.c, &c, p.eng, DNNL_MEMORY_NONE);
    p.scratch = aligned_alloc(64, (dnnl_memory_desc_get_size(w) + 64) / 64 * 64);
    dnnl_memory_create(&p.w, w, p.eng, p.scratch);
    return p;
}

static void run_tn(prim_t *p, const float *A, const float *B, float *C)
{
    dnnl_memory_set_data_handle(p->a, (void *)A);
    dnnl_memory_set_data_handle(p->b, (void *)B);
    dnnl_memory_set_data_handle(p->c, C);
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, p->a }, { DNNL_ARG_WEIGHTS, p->b }, { DNNL_ARG_DST, p->c }, { DNNL_ARG_SCRATCHPAD, p->w } };
    dnnl_primitive_execute(p->prim, p->strm, 4, args);
    dnnl_stream_wait(p->strm);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    poln = (size_t)(argc > 2 ? atof(argv[2]) : 8) * 262144;
    const char *which = argc > 3 ? argv[3] : "proj,proj64,dx,dw";
    int64_t padld = argc > 4 ? atoll(argv[4]) : 0;      /* dw: the padded row stride of dG (floats) */
    int64_t only_n = argc > 5 ? atoll(argv[5]) : 0;     /* dw: only this N (256 or 64) */
    if (getenv("GEMM_RATES_THREADS")) nthr = atoi(getenv("GEMM_RATES_THREADS"));
    if (nthr < 1) nthr = 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    if (nthr == 1) sched_setaffinity(0, sizeof set, &set);
    omp_set_num_threads(nthr);
    openblas_set_num_threads(1);
    if (nthr > 1) printf("%d threads, wall time (the tiles and OpenBLAS ways run on one)\n", nthr);
    pol = buf(poln ? poln : 16);
    enum { M = 1024 };
    float *A = buf(M * 1024), *W = buf(1024 * 1024), *P = buf(1024 * 1024 + 4096), *C = buf(M * 1024), *C2 = buf(M * 1024);

    /* projections and dX: C [M, N] = A [M, K] W^T (W [N, K]) */
    struct { const char *tag; int64_t N, K; } sh[] = { { "proj", 1024, 256 }, { "proj64", 1024, 64 }, { "dx", 256, 1024 } };
    for (int s = 0; s < 3; s++) {
        if (!strstr(which, sh[s].tag)) continue;
        int64_t N = sh[s].N, K = sh[s].K;
        mn__pack_weight(W, true, N, K, P, 1);
        way ways[] = { { "packed, rb 128 first", 0, 128 }, { "packed, library rows", 0, 0 }, { "packed, rb 64", 0, 64 }, { "packed, rb 128", 0, 128 }, { "packed, rb 256", 0, 256 },
                       { "packed, rb 512", 0, 512 }, { "packed, rb 1024", 0, 1024 }, { "dnnl_sgemm A W^T", 1, 0 } };
        int nw = 8;
        static double t[8][400];
        for (int r = 0; r < reps; r++)
            for (int w = 0; w < nw; w++) {
                pollute();
                double t0 = now();
                if (ways[w].kind == 0) packed_rb(M, N, K, A, K, P, C, N, ways[w].rb);
                else dnnl_sgemm('N', 'T', M, N, K, 1.0f, A, K, W, K, 0.0f, C2, N);
                t[w][r] = now() - t0;
            }
        printf("%s: %dx%lldx%lld (K %lld), row_block %lld, pollute %zu MiB\n", sh[s].tag, M, (long long)N, (long long)K, (long long)K,
               (long long)row_block(K, MR512), poln / 262144);
        for (int w = 0; w < nw; w++) {
            qsort(t[w], reps, sizeof(double), cmp);
            double f = 2.0 * M * N * K * 1e-9;
            printf("  %-24s median %6.1f q1 %6.1f best %6.1f GFLOP/s\n", ways[w].name, f / t[w][reps / 2], f / t[w][reps / 4], f / t[w][0]);
        }
    }
    if (strstr(which, "dw")) {
        /* dW [1024, N] = dG^T H, dG [K=1024 rows, 1024] (rows 4 KiB apart, or
         * padded: LDP floats apart), H [1024, N] */
        int64_t Mw = 1024, K = 1024;
        const int64_t LDP = padld > 0 ? padld : 1040;
        float *Ap = buf(K * LDP);
        for (int64_t k = 0; k < K; k++) memcpy(Ap + k * LDP, A + k * Mw, Mw * sizeof(float));
        /* GEMM_RATES_REWRITE: dG (both layouts) written again before each call, as the cells write it
         * in the step (then the pollution), so that the product reads lines last written, not read */
        bool rewrite = getenv("GEMM_RATES_REWRITE") != NULL;
        float *Am = buf(K * Mw);
        memcpy(Am, A, (size_t)(K * Mw) * sizeof(float));
        int64_t Ns[2] = { 256, 64 };
        for (int s = 0; s < 2; s++) {
            int64_t N = Ns[s];
            if (only_n && N != only_n) continue;
            prim_t p0 = make_tn(Mw, N, K, false), p1 = make_tn(Mw, N, K, true);
            prim_t q0 = make_tn_ld(Mw, N, K, false, LDP), q1 = make_tn_ld(Mw, N, K, true, LDP);
            prim_t e0 = make_tn(LDP, N, K, false), e1 = make_tn(LDP, N, K, true);    /* dG padded seen as dense [K, LDP]: LDP rows of C */
            float *Ce = buf((LDP > Mw ? LDP : Mw) * N);
            /* dW^T [N, M] = H^T dG: src H^T (H [K, N] read transposed), weights dG [K, M] plain,
             * into a plain dW^T [N, M] (brgemm; with dst written transposed into dW's [M, N],
             * strides 1, N, oneDNN 2.6.3 picks ref:any, 0.1-0.2 GFLOP/s: not timed) */
            int64_t s_h[2] = { 1, N }, s_g[2] = { Mw, 1 }, s_cp[2] = { Mw, 1 };
            prim_t h1 = make_gen(N, Mw, K, false, s_h, s_g, s_cp);
            enum { NW = 13 };
            static double t[NW][400];
            const char *names[NW] = { "dnnl matmul prim", "dnnl prim, C +=", "prim, dG padded", "prim C+=, dG padded",
                                      "dnnl_sgemm TN", "sgemm TN, dG padded", "H^T dG tiles, transposed", "tiles, dG padded",
                                      "prim, copy to padded", "openblas TN", "brgemm M=LDP dense", "brgemm M=LDP C+=", "H^T dG into dW^T (brgemm)" };
            Sbuf = buf(N * K);
            Bpbuf = buf(32 * K);
            for (int r = 0; r < reps; r++)
                for (int w = 0; w < NW; w++) {
                    if (rewrite) {
                        memcpy(A, Am, (size_t)(K * Mw) * sizeof(float));
                        for (int64_t k = 0; k < K; k++) memcpy(Ap + k * LDP, Am + k * Mw, Mw * sizeof(float));
                    }
                    pollute();
                    double t0 = now();
                    switch (w) {
                    case 0: run_tn(&p0, A, W, C); break;
                    case 1: run_tn(&p1, A, W, C); break;
                    case 2: run_tn(&q0, Ap, W, C); break;
                    case 3: run_tn(&q1, Ap, W, C); break;
                    case 4: dnnl_sgemm('T', 'N', Mw, N, K, 1.0f, A, Mw, W, N, 0.0f, C2, N); break;
                    case 5: dnnl_sgemm('T', 'N', Mw, N, K, 1.0f, Ap, LDP, W, N, 0.0f, C2, N); break;
                    case 6: atb_x(Mw, N, K, A, Mw, W, N, C2); break;
                    case 7: atb_x(Mw, N, K, Ap, LDP, W, N, C2); break;
                    case 8:
                        for (int64_t k = 0; k < K; k++) memcpy(Ap + k * LDP, A + k * Mw, Mw * sizeof(float));
                        run_tn(&q0, Ap, W, C);
                        break;
                    case 12: run_tn(&h1, W, A, Ce); break;
                    case 10: run_tn(&e0, Ap, W, Ce); break;
                    case 11: run_tn(&e1, Ap, W, Ce); break;
                    case 9: cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Mw, N, K, 1.0f, A, Mw, W, N, 0.0f, C2, N); break;
                    }
                    t[w][r] = now() - t0;
                }
            {   /* bits: the primitive padded against unpadded */
                run_tn(&p0, A, W, C);
                run_tn(&q0, Ap, W, C2);
                size_t ndiff = 0;
                for (int64_t i = 0; i < Mw * N; i++) ndiff += memcmp(&C[i], &C2[i], 4) != 0;
                printf("  prim padded vs unpadded: %zu of %lld elements differ in bits\n", ndiff, (long long)(Mw * N));
                run_tn(&e0, Ap, W, Ce);
                ndiff = 0;
                for (int64_t i = 0; i < Mw * N; i++) ndiff += memcmp(&C[i], &Ce[i], 4) != 0;
                printf("  brgemm M=LDP dense (first %lld rows) vs unpadded prim: %zu elements differ in bits\n", (long long)Mw, ndiff);
                run_tn(&h1, W, A, Ce);          /* Ce [N, Mw] = dW^T */
                ndiff = 0;
                double worst = 0;
                for (int64_t i = 0; i < Mw; i++)
                    for (int64_t j = 0; j < N; j++) {
                        ndiff += memcmp(&C[i * N + j], &Ce[j * Mw + i], 4) != 0;
                        double d = fabs((double)C[i * N + j] - Ce[j * Mw + i]);
                        if (d > worst) worst = d;
                    }
                printf("  H^T dG into dW^T vs unpadded prim: %zu elements differ in bits, worst |diff| %.3g\n", ndiff, worst);
                run_tn(&p0, A, W, C);
                atb_x(Mw, N, K, A, Mw, W, N, C2);
                worst = 0;
                for (int64_t i = 0; i < Mw * N; i++) { double d = fabs((double)C[i] - C2[i]); if (d > worst) worst = d; }
                printf("  tiles vs primitive: worst |diff| %.3g\n", worst);
            }
            printf("dw: %lldx%lldx%lld A^T B, pollute %zu MiB, padded ld %lld%s\n", (long long)Mw, (long long)N, (long long)K, poln / 262144,
                   (long long)LDP, rewrite ? ", dG rewritten before each call" : "");
            for (int w = 0; w < NW; w++) {
                qsort(t[w], reps, sizeof(double), cmp);
                double f = 2.0 * Mw * N * K * 1e-9;
                printf("  %-24s median %6.1f q1 %6.1f best %6.1f GFLOP/s\n", names[w], f / t[w][reps / 2], f / t[w][reps / 4], f / t[w][0]);
            }
        }
    }
    return 0;
}
