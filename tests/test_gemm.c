/* tests/test_gemm.c: the product rule of ops/matmul.c (ops/gemm.h). Which
 * library computes a product follows from the shape and the kernels the
 * linked libraries use: oneDNN where its vectors are wider than OpenBLAS's
 * kernels, OpenBLAS at equal width; OpenBLAS's column blocks only on its
 * AVX-512 cores. Every path, forced whatever this machine has,
 * computes op(A) op(B) + beta C with padded leading dims on 1 and 2
 * threads, and the same bits on every run. Last, the packed recurrent
 * product's kernels (ops/packed.c). */
#include "harness.h"
#include "ops/gemm.h"
#include <string.h>

static const mn__gemm_kinds HASWELL = { false, false, false }, SKYLAKEX = { true, false, false },
                            HASWELL_DNNL512 = { false, true, true }, SKYLAKEX_DNNL512 = { true, true, true },
                            HASWELL_DNNL2 = { false, true, false }, SKYLAKEX_DNNL2 = { true, true, false };

START_TEST(avx2_openblas_gives_every_product_to_an_avx512_onednn)
{
    ck_assert(mn__gemm_use_dnnl(HASWELL_DNNL512));      /* 85 -> 145 GFLOP/s on a recurrent step, 98 -> 156 on dW */
}
END_TEST

START_TEST(equal_width_keeps_openblas)
{
    ck_assert(!mn__gemm_use_dnnl(SKYLAKEX_DNNL512));    /* whole steps lost with oneDNN there */
    ck_assert(!mn__gemm_use_dnnl(HASWELL_DNNL2));
}
END_TEST

START_TEST(openblas_alone_when_onednn_is_narrower_or_absent)
{
    ck_assert(!mn__gemm_use_dnnl(SKYLAKEX_DNNL2));
    ck_assert(!mn__gemm_use_dnnl(HASWELL));
    ck_assert(!mn__gemm_use_dnnl(SKYLAKEX));
}
END_TEST

START_TEST(column_blocks_only_on_openblas_avx512_cores)
{
    ck_assert_int_eq(mn__gemm_block(SKYLAKEX, false, true, 32, 1024, 256), 32);    /* 32 x 32 <= 1200 */
    ck_assert_int_eq(mn__gemm_block(SKYLAKEX, false, true, 128, 512, 784), 8);     /* 128 x 8 <= 1200, x 784 <= 1e6 */
    ck_assert_int_eq(mn__gemm_block(SKYLAKEX, false, false, 32, 256, 1024), 16);   /* 32 x 32 x 1024 > 1e6 */
    ck_assert_int_eq(mn__gemm_block(SKYLAKEX, true, false, 768, 256, 2048), 0);    /* A^T: packed anyway */
    ck_assert_int_eq(mn__gemm_block(SKYLAKEX, false, true, 32, 24, 256), 0);       /* no narrower than a block */
    ck_assert_int_eq(mn__gemm_block(HASWELL, false, true, 32, 1024, 256), 0);      /* AVX2 kernels pack every call */
    ck_assert_int_eq(mn__gemm_block(HASWELL, false, false, 32, 256, 1024), 0);
}
END_TEST

/* Reference product in double: C = op(A) op(B) + beta C. */
static void ref(bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                const float *C0, double *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = beta * (double)C0[i * ldc + j];
            for (int k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = s;
        }
}

static const mn__gemm_kinds kinds[] = { { false, false, false }, { true, false, false }, { false, true, true },
                                        { true, true, true }, { false, true, false }, { true, true, false } };
/* M, N, K: cut by columns on 2 threads, by rows, a row, K below the block rule's 32, a skinny recurrent step */
static const int shapes[][3] = { { 32, 300, 70 }, { 200, 20, 50 }, { 1, 256, 64 }, { 33, 40, 9 }, { 16, 1024, 256 } };

START_TEST(every_path_computes_the_product)
{
    const mn__gemm_kinds k = kinds[_i % 6];
    const int *s = shapes[_i / 6], M = s[0], N = s[1], K = s[2];
    for (int flags = 0; flags < 8; flags++) {
        bool ta = flags & 1, tb = flags & 2;
        float beta = flags & 4 ? 1.0f : 0.0f;
        int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
        float *A = malloc(sizeof(float) * (size_t)lda * (ta ? K : M)), *B = malloc(sizeof(float) * (size_t)ldb * (tb ? N : K));
        float *C0 = malloc(sizeof(float) * (size_t)ldc * M), *C = malloc(sizeof(float) * (size_t)ldc * M);
        float *C1 = malloc(sizeof(float) * (size_t)ldc * M);
        double *R = malloc(sizeof(double) * (size_t)ldc * M);
        for (int i = 0; i < lda * (ta ? K : M); i++) A[i] = (float)((i * 37) % 23) / 23.0f - 0.5f;
        for (int i = 0; i < ldb * (tb ? N : K); i++) B[i] = (float)((i * 11) % 17) / 17.0f - 0.5f;
        for (int i = 0; i < ldc * M; i++) C0[i] = (float)((i * 7) % 5) - 2.0f;
        ref(ta, tb, M, N, K, A, lda, B, ldb, beta, C0, R, ldc);
        for (int threads = 1; threads <= 2; threads++) {
            memcpy(C, C0, sizeof(float) * (size_t)ldc * M);
            mn__gemm(k, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, threads);
            for (int i = 0; i < M; i++) {
                for (int j = 0; j < N; j++)
                    ck_assert_msg(fabs(C[i * ldc + j] - R[i * ldc + j]) <= 1e-5 * K + 1e-6, "kinds %d, %dx%dx%d %s%s beta %g, %d threads: "
                                  "C[%d,%d] = %.7g, expected %.7g", _i % 6, M, N, K, ta ? "A^T" : "A", tb ? " B^T" : " B",
                                  beta, threads, i, j, C[i * ldc + j], R[i * ldc + j]);
                for (int j = N; j < ldc; j++)
                    ck_assert_msg(C[i * ldc + j] == C0[i * ldc + j], "padding of row %d written", i);
            }
            memcpy(C1, C0, sizeof(float) * (size_t)ldc * M);
            mn__gemm(k, ta, tb, M, N, K, A, lda, B, ldb, beta, C1, ldc, threads);
            ck_assert_msg(!memcmp(C, C1, sizeof(float) * (size_t)ldc * M), "kinds %d: two runs differ", _i % 6);
        }
        free(A); free(B); free(C0); free(C); free(C1); free(R);
    }
}
END_TEST

/* The packed recurrent product (ops/packed.c): on every kernel this CPU
 * has (plain C, AVX2, AVX-512), 1 and 2 threads, whole or row by row, the
 * same bits, and the product within rounding of a double reference; the
 * columns past N in a row's padding are never written. Equal bits row by
 * row is what lets a recomputed time step replay the forward's. */
/* M, N, K, trans_b: the recurrent products, odd shapes, an input projection's block (many row strips, K 64),
 * its dx (K 1024: blocks of 32 rows on AVX-512 and 30 on AVX2, the last one partial), a block cut by rows on
 * 2 threads (from 256 rows; 301: the second thread's last strip partial) */
static const int pshapes[][4] = { { 32, 1024, 256, 1 }, { 32, 256, 1024, 0 }, { 33, 37, 300, 0 }, { 7, 50, 3, 1 }, { 1, 16, 64, 1 },
                                  { 70, 96, 64, 1 }, { 100, 40, 1024, 0 }, { 301, 20, 64, 1 } };

START_TEST(packed_product_same_bits_on_every_kernel_row_count_and_thread_count)
{
    const int *s = pshapes[_i];
    int64_t M = s[0], N = s[1], K = s[2], np = (N + 15) / 16, ldc = N + 3;
    bool tb = s[3];
    float *A = malloc(sizeof(float) * (size_t)(M * K)), *W = malloc(sizeof(float) * (size_t)(N * K));
    float *P = malloc(sizeof(float) * (size_t)(np * 16 * K));
    float *C0 = malloc(sizeof(float) * (size_t)(M * ldc)), *C = malloc(sizeof(float) * (size_t)(M * ldc));
    for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 37) % 23) / 23.0f - 0.5f;
    for (int64_t i = 0; i < N * K; i++) W[i] = (float)((i * 11) % 17) / 17.0f - 0.5f;
    mn__pack_weight(W, tb, N, K, P, 2);
    for (int64_t i = 0; i < M * ldc; i++) C0[i] = -7.0f;
    mn__packed_gemm(MN_PACKED_C, M, N, K, A, K, P, C0, ldc, 1);
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double r = 0;
            for (int64_t k = 0; k < K; k++) r += (double)A[i * K + k] * (double)(tb ? W[j * K + k] : W[k * N + j]);
            ck_assert_msg(fabs(C0[i * ldc + j] - r) <= 1e-6 * (double)K + 1e-6, "%lldx%lldx%lld: C[%lld,%lld] = %.7g, expected %.7g",
                          (long long)M, (long long)N, (long long)K, (long long)i, (long long)j, C0[i * ldc + j], r);
        }
        for (int64_t j = N; j < ldc; j++) ck_assert_msg(C0[i * ldc + j] == -7.0f, "padding of row %lld written", (long long)i);
    }
    for (int isa = MN_PACKED_C; isa <= mn__packed_isa(); isa++)
        for (int threads = 1; threads <= 2; threads++)
            for (int rows = 0; rows < 2; rows++) {
                for (int64_t i = 0; i < M * ldc; i++) C[i] = -7.0f;
                if (rows)
                    for (int64_t i = 0; i < M; i++) mn__packed_gemm(isa, 1, N, K, A + i * K, K, P, C + i * ldc, ldc, threads);
                else
                    mn__packed_gemm(isa, M, N, K, A, K, P, C, ldc, threads);
                ck_assert_msg(!memcmp(C, C0, sizeof(float) * (size_t)(M * ldc)), "%lldx%lldx%lld: kernel %d, %d threads%s: "
                              "other bits than the plain C kernel's", (long long)M, (long long)N, (long long)K, isa, threads,
                              rows ? ", row by row" : "");
            }
    free(A); free(W); free(P); free(C0); free(C);
}
END_TEST

/* The bias epilogue (matmul_packed's, graph/fuse.c's): on every kernel,
 * 1 and 2 threads, whole or row by row, C = (A op(W) + b1) + b2 with the
 * bits of the product followed by two separate float adds in that order
 * (and of one add with b1 alone); the padding past N never written. Shapes
 * with a partial last panel (masked bias loads) and a partial last strip. */
START_TEST(packed_bias_epilogue_has_the_bits_of_separate_adds)
{
    const int *s = pshapes[_i];
    int64_t M = s[0], N = s[1], K = s[2], np = (N + 15) / 16, ldc = N + 3;
    bool tb = s[3];
    float *A = malloc(sizeof(float) * (size_t)(M * K)), *W = malloc(sizeof(float) * (size_t)(N * K));
    float *P = malloc(sizeof(float) * (size_t)(np * 16 * K)), *b = malloc(sizeof(float) * (size_t)(2 * N));
    float *R = malloc(sizeof(float) * (size_t)(M * ldc)), *C = malloc(sizeof(float) * (size_t)(M * ldc));
    for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 37) % 23) / 23.0f - 0.5f;
    for (int64_t i = 0; i < N * K; i++) W[i] = (float)((i * 11) % 17) / 17.0f - 0.5f;
    for (int64_t i = 0; i < 2 * N; i++) b[i] = (float)((i * 29) % 31) / 7.0f - 2.1f + 1e-3f * (float)i;
    mn__pack_weight(W, tb, N, K, P, 1);
    for (int nb = 1; nb <= 2; nb++) {
        for (int64_t i = 0; i < M * ldc; i++) R[i] = -7.0f;
        mn__packed_gemm(MN_PACKED_C, M, N, K, A, K, P, R, ldc, 1);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                volatile float x = R[i * ldc + j] + b[j];     /* rounded to float, as the add op */
                if (nb == 2) x = x + b[N + j];
                R[i * ldc + j] = x;
            }
        for (int isa = MN_PACKED_C; isa <= mn__packed_isa(); isa++)
            for (int threads = 1; threads <= 2; threads++)
                for (int rows = 0; rows < 2; rows++) {
                    for (int64_t i = 0; i < M * ldc; i++) C[i] = -7.0f;
                    const float *b2 = nb == 2 ? b + N : NULL;
                    if (rows)
                        for (int64_t i = 0; i < M; i++) mn__packed_gemm_bias(isa, 1, N, K, A + i * K, K, P, C + i * ldc, ldc, threads, b, b2);
                    else
                        mn__packed_gemm_bias(isa, M, N, K, A, K, P, C, ldc, threads, b, b2);
                    for (int64_t i = 0; i < M * ldc; i++)
                        ck_assert_msg(!memcmp(&C[i], &R[i], sizeof *C), "%lldx%lldx%lld, %d biases: kernel %d, %d threads%s: "
                                      "C[%lld,%lld] = %.9g, the separate adds give %.9g", (long long)M, (long long)N, (long long)K, nb,
                                      isa, threads, rows ? ", row by row" : "", (long long)(i / ldc), (long long)(i % ldc), C[i], R[i]);
                }
    }
    free(A); free(W); free(P); free(b); free(R); free(C);
}
END_TEST

/* How the packed product shares its work (ops/packed.c): an RNN time
 * step's 32 rows on 2 threads are cut by rows, 16 and 16 (the rows the
 * elementwise cell kernels give the same threads), forward and backward
 * products of the lstm and the gru alike; fewer than two strips of 8 rows
 * a thread go by pairs of panels; one thread, a tiny product or a single
 * pair with few rows are not shared. */
START_TEST(packed_product_cuts_a_time_step_by_rows_as_its_cell)
{
    ck_assert_int_eq(mn__packed_split(32, 1024, 256, 2), MN_PACKED_ROWS);   /* lstm step, h W_hh^T */
    ck_assert_int_eq(mn__packed_split(32, 256, 1024, 2), MN_PACKED_ROWS);   /* lstm step, dG W_hh */
    ck_assert_int_eq(mn__packed_split(32, 768, 256, 2), MN_PACKED_ROWS);    /* gru step */
    ck_assert_int_eq(mn__packed_split(1024, 64, 1024, 2), MN_PACKED_ROWS);  /* an input projection's dx block */
    ck_assert_int_eq(mn__packed_split(16, 1024, 256, 2), MN_PACKED_COLS);
    ck_assert_int_eq(mn__packed_split(32, 1024, 256, 1), MN_PACKED_ONE);
    ck_assert_int_eq(mn__packed_split(32, 16, 64, 2), MN_PACKED_ONE);
    ck_assert_int_eq(mn__packed_split(8, 32, 1024, 2), MN_PACKED_ONE);
}
END_TEST

int main(void)
{
    mn__gemm_kinds here = mn__gemm_detect();
    printf("this machine: OpenBLAS AVX-512 kernels %d, oneDNN %d (AVX-512 %d)\n", here.blas_avx512, here.dnnl,
           here.dnnl_avx512);
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, avx2_openblas_gives_every_product_to_an_avx512_onednn);
    tcase_add_test(tc, equal_width_keeps_openblas);
    tcase_add_test(tc, openblas_alone_when_onednn_is_narrower_or_absent);
    tcase_add_test(tc, column_blocks_only_on_openblas_avx512_cores);
    tcase_add_loop_test(tc, every_path_computes_the_product, 0, 6 * (int)(sizeof shapes / sizeof *shapes));
    tcase_add_test(tc, packed_product_cuts_a_time_step_by_rows_as_its_cell);
    tcase_add_loop_test(tc, packed_product_same_bits_on_every_kernel_row_count_and_thread_count, 0,
                        (int)(sizeof pshapes / sizeof *pshapes));
    tcase_add_loop_test(tc, packed_bias_epilogue_has_the_bits_of_separate_adds, 0, (int)(sizeof pshapes / sizeof *pshapes));
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
