/* tests/test_dnnl_mm.c: a matmul step's product on oneDNN's matmul
 * primitive (ops/dnnl_mm.c). Where the product rule gives the products to
 * oneDNN (its AVX-512 JIT against OpenBLAS's AVX2 kernels: meson runs this
 * with OPENBLAS_CORETYPE=Haswell), a step that is one dense 2-D product gets
 * a primitive made once, computes op(A) op(B) (added into C where it
 * accumulates, after C0 for matmul_acc) with the same bits on every run,
 * and a compiled training run calls no dnnl_sgemm and allocates no
 * product buffer: the scratchpad is the step's planned workspace. Where the
 * rule keeps OpenBLAS, no step has a state. Run again under
 * OMP_THREAD_LIMIT=1 (meson's dnnl_mm_thread_limit): a 2-thread step's
 * team would shrink, so it runs matmul.c's kernel, complete. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"
#include "ops/op.h"
#include "ops/gemm.h"
#include <dlfcn.h>
#include <string.h>

extern const mn_op_def mn__op_matmul, mn__op_matmul_acc;

/* Heap blocks of 64 KiB or more and dnnl_sgemm calls while `counting`
 * (glibc's allocator underneath; interposed in this executable). Under
 * AddressSanitizer, which owns malloc, only the sgemm calls are counted. */
static volatile int counting;
static long big_blocks, sgemm_calls;
#if defined(__SANITIZE_ADDRESS__)
#define COUNTS_BLOCKS 0
#else
#define COUNTS_BLOCKS 1
extern void *__libc_malloc(size_t);
extern void *__libc_memalign(size_t, size_t);
static void note(size_t n)
{
    if (counting && n >= 65536) __atomic_add_fetch(&big_blocks, 1, __ATOMIC_RELAXED);
}
void *malloc(size_t n) { note(n); return __libc_malloc(n); }
int posix_memalign(void **p, size_t align, size_t n)
{
    note(n);
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12;
}
#endif
#ifdef MNEMO_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
typedef dnnl_status_t (*sgemm_fn)(char, char, dnnl_dim_t, dnnl_dim_t, dnnl_dim_t, float, const float *, dnnl_dim_t, const float *,
                                  dnnl_dim_t, float, float *, dnnl_dim_t);
dnnl_status_t dnnl_sgemm(char ta, char tb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K, float alpha, const float *A, dnnl_dim_t lda,
                         const float *B, dnnl_dim_t ldb, float beta, float *C, dnnl_dim_t ldc)
{
    if (counting) __atomic_add_fetch(&sgemm_calls, 1, __ATOMIC_RELAXED);
    sgemm_fn real = (sgemm_fn)dlsym(RTLD_NEXT, "dnnl_sgemm");
    return real(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#endif

static bool onednn_path(void) { return mn__gemm_use_dnnl(mn__gemm_detect()); }

/* Whether a primitive for `threads` runs as made: its team cannot shrink. */
static bool full_team(int threads) { return threads == 1 || omp_get_thread_limit() >= threads; }

static float val(int i, int salt) { return (float)((i * 7919 + salt * 104729) % 2001) / 1000.0f - 1.0f; }

/* Cases: flags, whether the step accumulates, matmul_acc, threads. */
typedef struct { bool ta, tb, acc, c0; int threads; } mm_case;
static const mm_case cases[] = {
    { false, false, false, false, 1 }, { false, true, false, false, 1 }, { true, false, false, false, 1 },
    { false, true, true, false, 1 },   { true, false, false, true, 1 },  { false, false, false, false, 2 },
    { false, true, false, false, 2 },  { true, false, true, false, 2 },  { true, false, false, true, 2 },
};

START_TEST(dense_products_on_the_primitive_match_the_reference)
{
    const mm_case *k = &cases[_i];
    const int64_t M = k->ta ? 1024 : 192, N = 160, K = 224;     /* A^T B: 1024 rows, the primitive's (below) */
    mn_tdesc in[3], out = { MN_F32, MN_SHAPE(M, N) };
    int a = k->c0 ? 1 : 0;
    in[0] = out;
    in[a] = (mn_tdesc){ MN_F32, k->ta ? MN_SHAPE(K, M) : MN_SHAPE(M, K) };
    in[a + 1] = (mn_tdesc){ MN_F32, k->tb ? MN_SHAPE(N, K) : MN_SHAPE(K, N) };
    mn_matmul_attrs at = { k->ta, k->tb, false };
    const mn_op_def *op = k->c0 ? &mn__op_matmul_acc : &mn__op_matmul;
    mn__op_states *ctx = NULL;
    size_t work = mn__op_state_bytes(&ctx, op, in, a + 2, &out, &at, k->acc, k->threads);
    mn__op_state *st = mn__op_state_new(&ctx, op, in, a + 2, &out, &at, k->acc, k->threads, work);
    printf("case %d: workspace %zu bytes, state %s\n", _i, work, st ? "made" : "none");
    ck_assert_msg((st != NULL) == onednn_path(), "a state %s on a path %s oneDNN", st ? "made" : "missing", onednn_path() ? "on" : "off");
    if (!st) {
        printf("case %d: nothing to check here (products not on oneDNN)\n", _i);
        mn__op_states_free(ctx);
        return;
    }
    ck_assert_uint_gt(work, 0);
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *C0 = malloc(sizeof(float) * M * N);
    float *C = malloc(sizeof(float) * M * N), *C1 = malloc(sizeof(float) * M * N);
    void *W = aligned_alloc(64, work);
    for (int i = 0; i < M * K; i++) A[i] = val(i, 1);
    for (int i = 0; i < K * N; i++) B[i] = val(i, 2);
    for (int i = 0; i < M * N; i++) C0[i] = val(i, 3);
    mn_tensor t[3];
    t[0] = (mn_tensor){ .dtype = MN_F32, .shape = out.shape, .data = C0 };
    t[a] = (mn_tensor){ .dtype = MN_F32, .shape = in[a].shape, .data = A };
    t[a + 1] = (mn_tensor){ .dtype = MN_F32, .shape = in[a + 1].shape, .data = B };
    mn_tensor o = { .dtype = MN_F32, .shape = out.shape, .data = C };
    char msg[256] = "";
    mn_kernel_ctx c = { .nin = a + 2, .in = t, .out = &o, .attrs = &at, .nthreads = k->threads, .work = W, .work_bytes = work,
                        .msg = msg, .msglen = sizeof msg, .accumulate = k->acc };
    sgemm_calls = 0;
    counting = 1;
    for (int run = 0; run < 2; run++) {
        if (k->acc) memcpy(C, C0, sizeof(float) * M * N);             /* accumulate: C += op(A) op(B) */
        ck_assert_ok(mn__op_state_forward(st, op, &c));
        if (run == 0) memcpy(C1, C, sizeof(float) * M * N);
    }
    counting = 0;
    if (full_team(k->threads)) ck_assert_msg(sgemm_calls == 0, "%ld dnnl_sgemm calls: the state fell back", sgemm_calls);
    ck_assert_msg(!memcmp(C, C1, sizeof(float) * M * N), "two runs gave different bits");
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = k->acc || k->c0 ? C0[i * N + j] : 0.0;
            for (int q = 0; q < K; q++) s += (double)(k->ta ? A[q * M + i] : A[i * K + q]) * (k->tb ? B[j * K + q] : B[q * N + j]);
            ck_assert_msg(fabs(C[i * N + j] - s) <= 1e-4 * (1.0 + fabs(s)), "C[%d,%d] = %g, expected %g", i, j, C[i * N + j], s);
        }
    mn__op_state_free(st);
    mn__op_states_free(ctx);
    free(A); free(B); free(C0); free(C); free(C1); free(W);
}
END_TEST

/* A^T B with fewer than 1024 rows and columns stays on sgemm (brgemm was
 * 7-15% slower there); at 1024 rows, or columns, the primitive takes it. */
START_TEST(transposed_a_products_below_1024_rows_stay_on_sgemm)
{
    mn_matmul_attrs at = { true, false, false };
    mn__op_states *ctx = NULL;
    mn_tdesc in[2] = { { MN_F32, MN_SHAPE(1024, 768) }, { MN_F32, MN_SHAPE(1024, 256) } }, out = { MN_F32, MN_SHAPE(768, 256) };
    ck_assert_uint_eq(mn__op_state_bytes(&ctx, &mn__op_matmul, in, 2, &out, &at, true, 1), 0);
    in[0].shape = MN_SHAPE(1024, 1024);
    out.shape = MN_SHAPE(1024, 256);
    ck_assert_msg((mn__op_state_bytes(&ctx, &mn__op_matmul, in, 2, &out, &at, true, 1) > 0) == onednn_path(), "1024 rows");
    in[0].shape = MN_SHAPE(1024, 256);
    in[1].shape = MN_SHAPE(1024, 1024);
    out.shape = MN_SHAPE(256, 1024);
    ck_assert_msg((mn__op_state_bytes(&ctx, &mn__op_matmul, in, 2, &out, &at, true, 1) > 0) == onednn_path(), "1024 columns");
    mn__op_states_free(ctx);
}
END_TEST

/* y = x W^T, loss = sum(y * y): dW = 2 y^T x (A^T B), dx unused. */
START_TEST(training_run_calls_no_sgemm_and_allocates_no_product_buffer)
{
    const int64_t R = 512, I = 256, O = 1024;
    int threads = 1 + _i;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(R, I));
    mn_node *w = mn_param(g, "w", MN_SHAPE(O, I), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -0.1f, .b = 0.1f });
    mn_node *y = mn_matmul(g, x, w, false, true);
    mn_node *loss = mn_sum_all(g, mn_mul(g, y, y));
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = threads });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    double states = mn_exec_stat(ex, "plan.op_states");
    printf("%d threads: %g steps on oneDNN's primitive, arena %lld bytes\n", threads, states, (long long)mn_exec_get_stats(ex).arena_bytes);
    ck_assert_msg((states >= 2) == onednn_path(), "%g op states on a path %s oneDNN", states, onednn_path() ? "on" : "off");
    float *xd = malloc(sizeof(float) * R * I);
    for (int i = 0; i < R * I; i++) xd[i] = val(i, 5);
    ck_assert_ok(mn_exec_feed_data(ex, "x", xd, sizeof(float) * R * I));
    ck_assert_ok(mn_exec_run(ex));                                      /* first run: oneDNN's own set-up */
    mn_tensor *gw = mn_params_get_grad(P, "w");
    memset(gw->data, 0, sizeof(float) * O * I);
    big_blocks = sgemm_calls = 0;
    counting = 1;
    mn_status s = mn_exec_run(ex);
    counting = 0;
    ck_assert_ok(s);
    printf("%d threads: %ld dnnl_sgemm calls, %ld heap blocks of 64 KiB or more during a run%s\n", threads, sgemm_calls, big_blocks,
           COUNTS_BLOCKS ? "" : " (not counted under AddressSanitizer)");
    if (onednn_path() && full_team(threads)) {
        ck_assert_int_eq(sgemm_calls, 0);
        ck_assert_int_eq(big_blocks, 0);
    }
    const float *W = mn_f32(mn_params_get(P, "w")), *dW = mn_f32(gw);
    double *yd = malloc(sizeof(double) * R * O);
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++) {
            double v = 0;
            for (int i = 0; i < I; i++) v += (double)xd[r * I + i] * W[o * I + i];
            yd[r * O + o] = v;
        }
    for (int o = 0; o < O; o += 7)
        for (int i = 0; i < I; i += 5) {
            double v = 0;
            for (int r = 0; r < R; r++) v += 2.0 * yd[r * O + o] * xd[r * I + i];
            ck_assert_msg(fabs(dW[o * I + i] - v) <= 1e-3 * (1.0 + fabs(v)), "dW[%d,%d] = %g, expected %g", o, i, dW[o * I + i], v);
        }
    free(yd); free(xd);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dnnl_mm");
    TCase *tc = tcase_create("primitive");
    tcase_set_timeout(tc, 120);
    printf("this machine: products on oneDNN %s\n", onednn_path() ? "yes" : "no (OpenBLAS keeps them: no step has a state)");
    tcase_add_loop_test(tc, dense_products_on_the_primitive_match_the_reference, 0, (int)(sizeof cases / sizeof *cases));
    tcase_add_test(tc, transposed_a_products_below_1024_rows_stay_on_sgemm);
    tcase_add_loop_test(tc, training_run_calls_no_sgemm_and_allocates_no_product_buffer, 0, 2);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
