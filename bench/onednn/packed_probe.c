/* bench/onednn/packed_probe.c: the recurrent products of the lstm and gru
 * workloads, one thread (or THREADS), best thread-CPU time of many calls
 * (so that it holds under load), through: mnemo's product rule (mn__gemm,
 * oneDNN's or OpenBLAS's sgemm, packing the weight every call), OpenBLAS
 * alone, the packed product of ops/packed.c (AVX-512 and AVX2 kernels,
 * weight packed once), and oneDNN's matmul primitive with weights in format
 * `any` (reordered once; only the execute timed). Built and run by
 * scripts/packed-probe.sh. Prints GFLOP/s per shape and path. */
#include "ops/gemm.h"
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static __attribute__((unused)) double now_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now_wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Register blockings of the AVX-512 kernel other than the library's 8 rows
 * x 2 panels, for the probe only: R rows x NP panels of 16 columns. */
static inline __attribute__((always_inline, target("avx512f")))
void vk(const int R, const int NP, int64_t K, const float *A, int64_t lda, const float *P, int64_t ps, float *C, int64_t ldc)
{
    __m512 acc[16][4], b[4];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NP; q++) acc[r][q] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        for (int q = 0; q < NP; q++) b[q] = _mm512_loadu_ps(P + q * ps + k * 16);
        for (int r = 0; r < R; r++) {
            __m512 a = _mm512_set1_ps(A[r * lda + k]);
            for (int q = 0; q < NP; q++) acc[r][q] = _mm512_fmadd_ps(a, b[q], acc[r][q]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < NP; q++) _mm512_storeu_ps(C + r * ldc + q * 16, acc[r][q]);
}

/* Whole product (M divisible by R, panels by NP), panels outer. */
#define VARIANT(R, NP)                                                                                          \
    static __attribute__((target("avx512f"), noinline)) void v_##R##_##NP(int64_t M, int64_t N, int64_t K,     \
                                                                          const float *A, const float *P, float *C) \
    {                                                                                                           \
        for (int64_t p = 0; p < N / 16; p += NP)                                                                \
            for (int64_t i = 0; i < M; i += R) vk(R, NP, K, A + i * K, K, P + p * K * 16, K * 16, C + i * N + p * 16, N); \
    }
VARIANT(8, 2) VARIANT(4, 4) VARIANT(6, 4) VARIANT(16, 1) VARIANT(8, 3) VARIANT(12, 2) VARIANT(4, 2) VARIANT(8, 4)
typedef void (*variant_fn)(int64_t, int64_t, int64_t, const float *, const float *, float *);
static const struct { int R, NP; variant_fn f; } variants[] = {
    { 8, 2, v_8_2 }, { 4, 4, v_4_4 }, { 6, 4, v_6_4 }, { 16, 1, v_16_1 }, { 8, 3, v_8_3 }, { 12, 2, v_12_2 }, { 4, 2, v_4_2 }, { 8, 4, v_8_4 },
};

typedef struct { int M, N, K; bool tb; const char *what; } shape;

static const shape shapes[] = {
    { 32, 1024, 256, true, "lstm recurrent fwd (A W^T)" },
    { 32, 256, 1024, false, "lstm recurrent bwd (dG W)" },
    { 32, 768, 256, true, "gru recurrent fwd (A W^T)" },
    { 32, 256, 768, false, "gru recurrent bwd (dG W)" },
};

static int threads = 1, reps = 200;

/* Best wall time of one call over `reps` calls (thread CPU time read up to 2x the peak under load on this VM). */
#define BEST(stmt)                                                                         \
    ({                                                                                     \
        double best = 1e9;                                                                 \
        for (int r_ = 0; r_ < reps; r_++) {                                                \
            double t0 = now_wall();                              \
            stmt;                                                                          \
            double t1 = now_wall() - t0;                       \
            if (t1 < best) best = t1;                                                      \
        }                                                                                  \
        best;                                                                              \
    })

static double onednn_matmul(const shape *s, const float *A, const float *W, float *C)
{
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_engine_create(&eng, dnnl_cpu, 0);
    dnnl_stream_create(&st, eng, dnnl_stream_default_flags);
    dnnl_memory_desc_t amd, wmd, wplain, cmd;
    dnnl_dims_t ad = { s->M, s->K }, wd = { s->K, s->N }, cd = { s->M, s->N };
    dnnl_memory_desc_init_by_tag(&amd, 2, ad, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wplain, 2, wd, dnnl_f32, s->tb ? dnnl_ba : dnnl_ab);
    dnnl_memory_desc_init_by_tag(&cmd, 2, cd, dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t md;
    dnnl_matmul_desc_init(&md, &amd, &wmd, NULL, &cmd);
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) != dnnl_success) return 0;
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t am, wm, wp, cm;
    dnnl_memory_create(&am, &amd, eng, (void *)A);
    dnnl_memory_create(&wp, &wplain, eng, (void *)W);
    dnnl_memory_create(&wm, wq, eng, DNNL_MEMORY_ALLOCATE);
    dnnl_memory_create(&cm, &cmd, eng, C);
    dnnl_primitive_desc_t rpd;
    dnnl_reorder_primitive_desc_create(&rpd, &wplain, eng, wq, eng, NULL);
    dnnl_primitive_t reorder, mm;
    dnnl_primitive_create(&reorder, rpd);
    dnnl_exec_arg_t rargs[2] = { { DNNL_ARG_FROM, wp }, { DNNL_ARG_TO, wm } };
    dnnl_primitive_execute(reorder, st, 2, rargs);
    dnnl_stream_wait(st);
    dnnl_primitive_create(&mm, pd);
    dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, am }, { DNNL_ARG_WEIGHTS, wm }, { DNNL_ARG_DST, cm } };
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    double t = BEST((dnnl_primitive_execute(mm, st, 3, args), dnnl_stream_wait(st)));
    printf("    (oneDNN matmul impl: %s)\n", impl ? impl : "?");
    dnnl_primitive_destroy(mm); dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd); dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(am); dnnl_memory_destroy(wm); dnnl_memory_destroy(wp); dnnl_memory_destroy(cm);
    dnnl_stream_destroy(st); dnnl_engine_destroy(eng);
    return t;
}

int main(int argc, char **argv)
{
    if (argc > 1) threads = atoi(argv[1]);
    if (argc > 2) reps = atoi(argv[2]);
    omp_set_num_threads(threads);
    mn__gemm_kinds here = mn__gemm_detect(), blas = { here.blas_avx512, false, false };
    printf("threads %d, best of %d calls; OpenBLAS AVX-512 %d, oneDNN AVX-512 %d, packed kernel %d (2 = AVX-512)\n", threads,
           reps, here.blas_avx512, here.dnnl_avx512, mn__packed_isa());
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape *s = &shapes[i];
        int64_t M = s->M, N = s->N, K = s->K;
        float *A = malloc(sizeof(float) * (size_t)(M * K)), *W = malloc(sizeof(float) * (size_t)(N * K));
        float *C = malloc(sizeof(float) * (size_t)(M * N)), *C2 = malloc(sizeof(float) * (size_t)(M * N));
        float *P = aligned_alloc(64, sizeof(float) * (size_t)(((N + 15) / 16) * 16 * K));
        for (int64_t j = 0; j < M * K; j++) A[j] = (float)((j * 37) % 23) / 23.0f - 0.5f;
        for (int64_t j = 0; j < N * K; j++) W[j] = (float)((j * 11) % 17) / 17.0f - 0.5f;
        int ldw = (int)(s->tb ? K : N);
        double fl = 2.0 * (double)(M * N * K) * 1e-9;
        double t_rule = BEST(mn__gemm(here, false, s->tb, M, N, K, A, (int)K, W, ldw, 0.0f, C, (int)N, threads));
        double t_blas = BEST(mn__gemm(blas, false, s->tb, M, N, K, A, (int)K, W, ldw, 0.0f, C, (int)N, threads));
        double t_pack = BEST(mn__pack_weight(W, s->tb, N, K, P, threads));
        double t_p512 = mn__packed_isa() >= MN_PACKED_AVX512
                            ? BEST(mn__packed_gemm(MN_PACKED_AVX512, M, N, K, A, K, P, C2, N, threads)) : 0;
        double t_p256 = BEST(mn__packed_gemm(MN_PACKED_AVX2, M, N, K, A, K, P, C2, N, threads));
        double worst = 0;
        for (int64_t j = 0; j < M * N; j++) worst = fmax(worst, fabs((double)C[j] - (double)C2[j]));
        if (threads == 1 && mn__packed_isa() >= MN_PACKED_AVX512)
            for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
                int R = variants[v].R, NP = variants[v].NP;
                if (M % R || (N / 16) % NP) continue;
                double t = BEST(variants[v].f(M, N, K, A, P, C2));
                printf("    variant %2d rows x %d panels: %6.1f GFLOP/s\n", R, NP, fl / t);
            }
        double t_dnnl = onednn_matmul(s, A, W, C);
        printf("%-28s %dx%dx%d: rule %6.1f  openblas %6.1f  packed512 %6.1f  packed256 %6.1f  onednn-matmul(any) %6.1f GFLOP/s;"
               " pack %.1f us (|diff| %.2g)\n", s->what, s->M, s->N, s->K, fl / t_rule, fl / t_blas,
               t_p512 > 0 ? fl / t_p512 : 0, fl / t_p256, t_dnnl > 0 ? fl / t_dnnl : 0, t_pack * 1e6, worst);
        free(A); free(W); free(C); free(C2); free(P);
    }
    return 0;
}
