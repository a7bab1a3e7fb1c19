/* tests/test_dnnl_mm.c: a matmul step's product on oneDNN's matmul
 * primitive (ops/dnnl_mm.c). Where the product rule gives the products to
 * oneDNN (its AVX-512 JIT against OpenBLAS's AVX2 kernels: meson runs this
 * with OPENBLAS_CORETYPE=Haswell), a step that is one dense 2-D product gets
 * a primitive made once, computes op(A) op(B) (added into C where it
 * accumulates, after C0 for matmul_acc) with the same bits on every run,
 * and a compiled training run calls no dnnl_sgemm and allocates no
 * product buffer: the scratchpad is the step's planned workspace. Where the
 * rule keeps OpenBLAS, no step has a state. oneDNN is asked once per
 * product kind (shape, transposes, accumulate, threads) per compile, even
 * while the budget search plans many times; an executable's states share
 * one engine and stream and one primitive per kind, never a scratchpad.
 * Run again under OMP_THREAD_LIMIT=1 (meson's dnnl_mm_thread_limit): a
 * 2-thread step's team would shrink, so it runs matmul.c's kernel, complete. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"
#include "ops/op.h"
#include "ops/gemm.h"
#include "graph/exec.h"
#include "workloads.h"
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
/* The matmul descriptors asked of oneDNN while `asking` (counted by the
 * interposed dnnl_primitive_desc_create below), by their key: the
 * operands' dims and strides, the post-ops (a sum: C accumulates) and the
 * OpenMP team size they are asked for. */
typedef struct { int64_t d[12]; int post_ops, threads; } desc_key;
static volatile int asking;
static desc_key asked[4096];
static int nasked;

/* How many of the descriptors asked so far were asked before (same key). */
static int asked_twice(void)
{
    int n = 0;
    for (int i = 0; i < nasked; i++)
        for (int j = 0; j < i; j++)
            if (!memcmp(&asked[i], &asked[j], sizeof asked[i])) {
                n++;
                break;
            }
    return n;
}

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

static void ask(const dnnl_matmul_desc_t *d, const_dnnl_primitive_attr_t attr)
{
    desc_key k = { .threads = omp_get_max_threads() };
    const dnnl_memory_desc_t *m[3] = { &d->src_desc, &d->weights_desc, &d->dst_desc };
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            k.d[4 * i + j] = m[i]->dims[j];
            k.d[4 * i + 2 + j] = m[i]->format_desc.blocking.strides[j];
        }
    const_dnnl_post_ops_t po = NULL;
    if (attr && !dnnl_primitive_attr_get_post_ops(attr, &po) && po) k.post_ops = dnnl_post_ops_len(po);
    if (nasked < (int)(sizeof asked / sizeof *asked)) asked[nasked++] = k;
}

typedef dnnl_status_t (*pd_create_fn)(dnnl_primitive_desc_t *, const_dnnl_op_desc_t, const_dnnl_primitive_attr_t, dnnl_engine_t,
                                      const_dnnl_primitive_desc_t);
dnnl_status_t dnnl_primitive_desc_create(dnnl_primitive_desc_t *pd, const_dnnl_op_desc_t op_desc, const_dnnl_primitive_attr_t attr,
                                         dnnl_engine_t engine, const_dnnl_primitive_desc_t hint)
{
    if (asking && *(const dnnl_primitive_kind_t *)op_desc == dnnl_matmul) ask(op_desc, attr);
    pd_create_fn real = (pd_create_fn)dlsym(RTLD_NEXT, "dnnl_primitive_desc_create");
    return real(pd, op_desc, attr, engine, hint);
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

/* Keys of one product each differing from the first in one field (size,
 * transposes, accumulate, threads): a shared context answers each with
 * the size a fresh context gives, asks oneDNN once per key, and asks
 * nothing the second time round. */
typedef struct { int64_t M, N, K; bool ta, tb, acc; int threads; } mm_key;
static const mm_key keys[] = {
    { 192, 160, 224, false, false, false, 1 }, { 192, 160, 224, false, false, false, 2 }, { 192, 160, 224, false, false, true, 1 },
    { 192, 160, 224, false, true, false, 1 },  { 256, 160, 224, false, false, false, 1 }, { 192, 192, 224, false, false, false, 1 },
    { 192, 160, 256, false, false, false, 1 }, { 1024, 160, 224, true, false, false, 1 },
};

static size_t key_bytes(mn__op_states **ctx, const mm_key *k)
{
    mn_tdesc in[2] = { { MN_F32, k->ta ? MN_SHAPE(k->K, k->M) : MN_SHAPE(k->M, k->K) },
                       { MN_F32, k->tb ? MN_SHAPE(k->N, k->K) : MN_SHAPE(k->K, k->N) } };
    mn_tdesc out = { MN_F32, MN_SHAPE(k->M, k->N) };
    mn_matmul_attrs at = { k->ta, k->tb, false };
    return mn__op_state_bytes(ctx, &mn__op_matmul, in, 2, &out, &at, k->acc, k->threads);
}

START_TEST(a_memo_hit_gives_the_same_scratchpad_size)
{
    enum { N = (int)(sizeof keys / sizeof *keys) };
    size_t fresh[N];
    mn__op_states *ctx = NULL;
    int descs, prims;
    for (int i = 0; i < N; i++) {
        mn__op_states *one = NULL;
        fresh[i] = key_bytes(&one, &keys[i]);
        mn__op_states_free(one);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < N; i++) {
            size_t b = key_bytes(&ctx, &keys[i]);
            ck_assert_msg(b == fresh[i], "round %d, key %d: %zu bytes, a fresh context says %zu", round, i, b, fresh[i]);
            ck_assert_msg((b > 0) == onednn_path(), "key %d: workspace %zu on a path %s oneDNN", i, b, onednn_path() ? "on" : "off");
        }
    mn__op_states_counts(ctx, &descs, &prims);
    printf("%d keys, two rounds: %d descriptors asked of oneDNN, %d primitives\n", N, descs, prims);
    ck_assert_int_eq(descs, onednn_path() ? N : 0);
    ck_assert_int_eq(prims, 0);                      /* sizes only: no primitive until a state needs one */
    mn__op_states_free(ctx);
}
END_TEST

/* The bench transformer compiled with 2 threads, inputs fed; NULL where
 * the compile fails (the test then fails on the message). */
static mn_exec *transformer(mn_workload *w, int threads, int64_t budget)
{
    ck_assert_ok(mn_workload_build("transformer", w));
    mn_exec *ex = mn_compile(w->g, w->loss, &(mn_compile_opts){ .threads = threads, .memory_budget = budget });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(w->g));
    ck_assert_ok(mn_workload_feed(w, ex, 7));
    return ex;
}

/* The search plans in full several times and estimates more; each plan
 * sizes every product step's workspace, and oneDNN is asked once per kind. */
START_TEST(a_budget_search_asks_onednn_once_per_product_kind)
{
    mn_workload w;
    nasked = 0;
    asking = 1;
    ck_assert_ok(mn_workload_build("transformer", &w));
    mn_exec *ex = mn_compile(w.g, w.loss, &(mn_compile_opts){ .threads = 2, .memory_budget = 24 << 20 });
    asking = 0;
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(w.g));
    double plans = mn_exec_stat(ex, "recompute.full_plans"), descs = mn_exec_stat(ex, "plan.op_state_descs");
    printf("transformer at 24 MiB: %g full plans, %d matmul descriptors asked (%d of them again), stat %g, %g states\n", plans, nasked,
           asked_twice(), descs, mn_exec_stat(ex, "plan.op_states"));
    ck_assert_msg(plans >= 2, "%g full plans: the search did not plan again", plans);
    ck_assert_msg((nasked > 0) == onednn_path(), "%d descriptors on a path %s oneDNN", nasked, onednn_path() ? "on" : "off");
    ck_assert_int_eq(asked_twice(), 0);
    ck_assert_int_eq((int)descs, nasked);
    mn_exec_free(ex);
    mn_workload_free(&w);
}
END_TEST

/* handles of a step's state: engine, stream, primitive, scratchpad */
static void handles(const mn_step *st, void *h[4]) { mn__op_state_handles(st->state, h); }

/* Every state of an executable uses its one engine and stream; steps of
 * one kind share a primitive (fewer primitives than states); a second
 * executable has its own engine and runs after the first is freed (on
 * one thread: under meson's OMP_THREAD_LIMIT=1, OpenBLAS's threaded
 * sgemm in a 2-thread run of the transformer waits for a thread that
 * never comes). */
START_TEST(states_share_one_engine_and_stream_and_a_primitive_per_kind)
{
    mn_workload w1, w2;
    mn_exec *ex = transformer(&w1, 2, 0), *ex2 = transformer(&w2, 1, 0);
    int states = 0, prims = 0;
    void *first[4] = { 0 }, *h[4], *seen[256];
    for (int s = 0; s < ex->nsteps; s++) {
        if (!ex->steps[s].state) continue;
        handles(&ex->steps[s], h);
        if (!states++) memcpy(first, h, sizeof first);
        ck_assert_msg(h[0] == first[0] && h[1] == first[1], "step %d: engine %p stream %p, the first state's %p %p", s, h[0], h[1], first[0],
                      first[1]);
        int k = 0;
        while (k < prims && seen[k] != h[2]) k++;
        if (k == prims && prims < 256) seen[prims++] = h[2];
    }
    printf("transformer, 2 threads: %d states, %d primitives (stat %g), %g descriptors\n", states, prims,
           mn_exec_stat(ex, "plan.op_state_primitives"), mn_exec_stat(ex, "plan.op_state_descs"));
    ck_assert_msg((states > 0) == onednn_path(), "%d states on a path %s oneDNN", states, onednn_path() ? "on" : "off");
    ck_assert_int_eq(prims, (int)mn_exec_stat(ex, "plan.op_state_primitives"));
    if (states) ck_assert_msg(prims < states, "%d primitives for %d states: none shared", prims, states);
    for (int s = 0; s < ex2->nsteps; s++) {
        if (!ex2->steps[s].state) continue;
        handles(&ex2->steps[s], h);
        ck_assert_msg(h[0] != first[0], "two executables share an engine");
    }
    mn_exec_free(ex);
    mn_workload_free(&w1);
    ck_assert_ok(mn_exec_run(ex2));
    mn_exec_free(ex2);
    mn_workload_free(&w2);
}
END_TEST

/* y1 = x W1^T and y2 = x W2^T, loss = sum(y1 * y2): two equal products
 * in one level, which 2 threads run side by side (one thread each); so do
 * their weight gradients y2^T x and y1^T x (A^T B, 1024 rows). */
typedef struct { mn_params *P; mn_graph *g; mn_exec *ex; } two_products;

static void two_products_new(two_products *t, int threads)
{
    const int64_t R = 1024, I = 256, O = 256;
    mn_init u = { .kind = MN_INIT_UNIFORM, .a = -0.1f, .b = 0.1f };
    t->P = mn_params_new();
    t->g = mn_graph_new(t->P);
    mn_node *x = mn_input(t->g, "x", MN_F32, MN_SHAPE(R, I));
    mn_node *y1 = mn_matmul(t->g, x, mn_param(t->g, "w1", MN_SHAPE(O, I), u), false, true);
    mn_node *y2 = mn_matmul(t->g, x, mn_param(t->g, "w2", MN_SHAPE(O, I), u), false, true);
    t->ex = mn_compile(t->g, mn_sum_all(t->g, mn_mul(t->g, y1, y2)), &(mn_compile_opts){ .threads = threads });
    ck_assert_msg(t->ex != NULL, "%s", mn_graph_errmsg(t->g));
    float *xd = malloc(sizeof(float) * R * I);
    for (int i = 0; i < R * I; i++) xd[i] = val(i, 9);
    ck_assert_ok(mn_exec_feed_data(t->ex, "x", xd, sizeof(float) * R * I));
    free(xd);
}

static void two_products_free(two_products *t)
{
    mn_exec_free(t->ex);
    mn_graph_free(t->g);
    mn_params_free(t->P);
}

/* Loss and gradients of one run, as bytes (dW1 then dW2). */
static void run_bits(two_products *t, float *out)
{
    mn_tensor *g1 = mn_params_get_grad(t->P, "w1"), *g2 = mn_params_get_grad(t->P, "w2");
    memset(g1->data, 0, mn_tensor_bytes(g1));
    memset(g2->data, 0, mn_tensor_bytes(g2));
    ck_assert_ok(mn_exec_run(t->ex));
    out[0] = mn_exec_loss(t->ex);
    memcpy(out + 1, g1->data, mn_tensor_bytes(g1));
    memcpy(out + 1 + mn_tensor_numel(g1), g2->data, mn_tensor_bytes(g2));
}

/* Two steps of one kind in one level run side by side, one thread each,
 * on the same primitive: each runs on its own planned workspace (the
 * scratchpad its run used is its workspace, the two disjoint), and the
 * loss and gradients are a 1-thread executable's, run after run. */
START_TEST(concurrent_steps_of_one_kind_never_share_a_scratchpad)
{
    two_products one, two;
    two_products_new(&one, 1);
    two_products_new(&two, 2);
    const size_t n = 1 + 2 * 256 * 256;
    float *b1 = malloc(n * sizeof(float)), *b2 = malloc(n * sizeof(float));
    run_bits(&one, b1);
    for (int run = 0; run < 3; run++) {
        run_bits(&two, b2);
        ck_assert_msg(!memcmp(b1, b2, n * sizeof(float)), "run %d: loss or gradients differ from 1 thread's", run);
    }
    mn_exec *ex = two.ex;
    int pairs = 0;
    for (int l = 0; l < ex->nlevels; l++)
        for (int a = ex->level_start[l]; a < ex->level_start[l + 1]; a++)
            for (int b = a + 1; b < ex->level_start[l + 1]; b++) {
                const mn_step *x = &ex->steps[a], *y = &ex->steps[b];
                void *hx[4], *hy[4];
                if (!x->state || !y->state || x->solo || y->solo || x->caller || y->caller) continue;
                handles(x, hx);
                handles(y, hy);
                if (hx[2] != hy[2]) continue;
                pairs++;
                const mn_storage *wx = &ex->stores[x->work], *wy = &ex->stores[y->work];
                ck_assert_ptr_eq(hx[3], ex->arena + wx->offset);
                ck_assert_ptr_eq(hy[3], ex->arena + wy->offset);
                ck_assert_msg(wx->offset + wx->bytes <= wy->offset || wy->offset + wy->bytes <= wx->offset,
                              "level %d: workspaces [%lld, +%lld) and [%lld, +%lld) overlap", l, (long long)wx->offset, (long long)wx->bytes,
                              (long long)wy->offset, (long long)wy->bytes);
            }
    printf("two products, 2 threads: %d pairs of side-by-side steps on one primitive, %g states\n", pairs, mn_exec_stat(ex, "plan.op_states"));
    ck_assert_msg((pairs > 0) == onednn_path(), "%d pairs on a path %s oneDNN", pairs, onednn_path() ? "on" : "off");
    free(b1);
    free(b2);
    two_products_free(&one);
    two_products_free(&two);
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
    tcase_add_test(tc, a_memo_hit_gives_the_same_scratchpad_size);
    tcase_add_test(tc, a_budget_search_asks_onednn_once_per_product_kind);
    tcase_add_test(tc, states_share_one_engine_and_stream_and_a_primitive_per_kind);
    tcase_add_test(tc, concurrent_steps_of_one_kind_never_share_a_scratchpad);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
