/* ops/dnnl_mm.c: a matmul step's product on oneDNN's matmul primitive, as
 * state the executable keeps (mn__op_state, ops/op.h): the primitive is
 * made once, for the thread count the step runs with, and its scratchpad
 * (user mode) is the step's workspace, planned in the arena, so a run
 * allocates nothing and the plan counts every byte. Only where matmul.c's
 * rule gives the products to oneDNN (mn__gemm_use_dnnl), for a step that is
 * one dense 2-D product, and only when oneDNN computes it by brgemm, whose
 * buffers all live in the scratchpad; else no state and matmul.c's kernel
 * runs. Why: dnnl_sgemm mallocs a packing buffer (up to 1.2 MB) per call. */
#include "op.h"
#include "gemm.h"
#include <stdlib.h>
#include <string.h>
#ifdef MNEMO_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_version.h>
#endif

/* The operation-descriptor API below is oneDNN 2.x's (Debian 12: 2.6.3);
 * with oneDNN 3.x no step gets a state and matmul.c's kernels run. */
#if defined(MNEMO_HAVE_DNNL) && DNNL_VERSION_MAJOR == 2

extern const mn_op_def mn__op_matmul, mn__op_matmul_acc;

/* One 2-D product C [M, N] = op(A) op(B) (+ C when acc), dense operands. */
typedef struct {
    bool ta, tb, acc;
    int64_t M, N, K;
    int a_in;           /* A's input slot: 0 (matmul) or 1 (matmul_acc: C0 first) */
} mm_product;

/* The step's product, when it is one dense 2-D GEMM over the whole output
 * (matmul.c's folded batch, or no batch at all) that sgemm would not do
 * as a matrix-vector product; false otherwise. A^T B with fewer than 1024
 * rows stays on sgemm: brgemm was 7-15% slower on those (thread CPU time,
 * 1 thread: 768x256x1024 1.08-1.10, 256x1024x1024 1.15, 768x64x1024
 * 1.08-1.10) and faster at 1024 rows (1024x256x1024 0.88-0.92,
 * 1024x64x1024 0.83-0.89). */
static bool product_of(const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                       bool accumulate, mm_product *p)
{
    int a_in = op == &mn__op_matmul_acc ? 1 : 0;
    if ((op != &mn__op_matmul && op != &mn__op_matmul_acc) || nin != a_in + 2) return false;
    const mn_matmul_attrs *at = attrs;
    mn_shape A = in[a_in].shape, B = in[a_in + 1].shape, O = out->shape;
    if (at->per_step || A.ndim < 2 || B.ndim < 2 || O.ndim < 2 || out->dtype != MN_F32) return false;
    int64_t M = O.d[O.ndim - 2], N = O.d[O.ndim - 1], K = at->trans_a ? A.d[A.ndim - 2] : A.d[A.ndim - 1];
    if (M * N == 0 || K == 0) return false;
    int64_t nb = mn_shape_numel(O) / (M * N), nba = mn_shape_numel(A) / (A.d[A.ndim - 2] * A.d[A.ndim - 1]);
    if (mn_shape_numel(B) != B.d[B.ndim - 2] * B.d[B.ndim - 1]) return false;    /* B batched: many products */
    if (nb != 1 && (at->trans_a || nba != nb)) return false;                    /* not foldable into rows */
    *p = (mm_product){ at->trans_a, at->trans_b, accumulate || a_in == 1, nb * M, N, K, a_in };
    return p->M > 1 && (!p->ta || p->M >= 1024 || p->N >= 1024);
}

struct mn__op_state {
    mm_product p;
    int threads;
    size_t work;
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, w;
};

/* Row-major memory descriptors of A [M, K], B [K, N] (either stored
 * transposed) and C [M, N], each dense. */
static bool descs(const mm_product *p, dnnl_memory_desc_t *a, dnnl_memory_desc_t *b, dnnl_memory_desc_t *c)
{
    dnnl_dims_t da = { p->M, p->K }, db = { p->K, p->N }, dc = { p->M, p->N };
    dnnl_dims_t sa = { p->ta ? 1 : p->K, p->ta ? p->M : 1 }, sb = { p->tb ? 1 : p->N, p->tb ? p->K : 1 }, sc = { p->N, 1 };
    return !dnnl_memory_desc_init_by_strides(a, 2, da, dnnl_f32, sa) && !dnnl_memory_desc_init_by_strides(b, 2, db, dnnl_f32, sb) &&
           !dnnl_memory_desc_init_by_strides(c, 2, dc, dnnl_f32, sc);
}

/* The primitive descriptor for `threads` threads (oneDNN sizes its work
 * split and scratchpad by the calling thread's OpenMP team size), with a
 * user scratchpad and, to add into C, a sum post-op; NULL unless oneDNN
 * computes it by brgemm (its "gemm" implementations call sgemm, which
 * allocates per call: the very thing this file avoids). */
static dnnl_primitive_desc_t make_pd(dnnl_engine_t eng, const mm_product *p, int threads)
{
    dnnl_memory_desc_t a, b, c;
    dnnl_matmul_desc_t d;
    dnnl_primitive_attr_t at = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = descs(p, &a, &b, &c) && !dnnl_matmul_desc_init(&d, &a, &b, NULL, &c) && !dnnl_primitive_attr_create(&at) &&
              !dnnl_primitive_attr_set_scratchpad_mode(at, dnnl_scratchpad_mode_user);
    if (ok && p->acc)
        ok = !dnnl_post_ops_create(&po) && !dnnl_post_ops_append_sum(po, 1.0f) && !dnnl_primitive_attr_set_post_ops(at, po);
    if (ok) {
        int old = mn__blas_threads_push(threads);
        if (dnnl_primitive_desc_create(&pd, &d, at, eng, NULL)) pd = NULL;
        mn__blas_threads_pop(old);
    }
    const char *impl = NULL;
    if (pd && (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) || !impl || strncmp(impl, "brg", 3))) {
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
    }
    if (po) dnnl_post_ops_destroy(po);
    if (at) dnnl_primitive_attr_destroy(at);
    return pd;
}

static size_t scratch_bytes(dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return w ? dnnl_memory_desc_get_size(w) : 0;
}

/* Workspace of a state: the scratchpad, at least one byte (a step with a
 * state has a workspace), rounded to whole cache lines; 0 (no state) when
 * the scratchpad is larger than the product's operands and result. brgemm
 * sizes it by its blocks, not by the product: 262 KB for a test mlp's
 * 1 KB arena, so small models' arenas (their peaks) would grow several
 * fold; sgemm's per-call buffer for such products (74 KB) stays below
 * glibc's mmap threshold and is reused, leaving no holes. */
static size_t work_of(dnnl_primitive_desc_t pd, const mm_product *p)
{
    size_t n = scratch_bytes(pd), data = sizeof(float) * (size_t)(p->M * p->K + p->K * p->N + p->M * p->N);
    return n > data ? 0 : (n + 64) / 64 * 64;
}

size_t mn__op_state_bytes(const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                          bool accumulate, int threads)
{
    mm_product p;
    dnnl_engine_t eng;
    if (!mn__gemm_use_dnnl(mn__gemm_detect()) || !product_of(op, in, nin, out, attrs, accumulate, &p)) return 0;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0)) return 0;
    dnnl_primitive_desc_t pd = make_pd(eng, &p, threads);
    size_t n = pd ? work_of(pd, &p) : 0;
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_engine_destroy(eng);
    return n;
}

void mn__op_state_free(mn__op_state *s)
{
    if (!s) return;
    dnnl_memory_t *m[4] = { &s->a, &s->b, &s->c, &s->w };
    for (int i = 0; i < 4; i++)
        if (*m[i]) dnnl_memory_destroy(*m[i]);
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->strm) dnnl_stream_destroy(s->strm);
    if (s->eng) dnnl_engine_destroy(s->eng);
    free(s);
}

/* The memory objects the primitive runs on, their data set per run. */
static bool memories(mn__op_state *s, dnnl_primitive_desc_t pd)
{
    dnnl_memory_desc_t a, b, c;
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return w && descs(&s->p, &a, &b, &c) && !dnnl_memory_create(&s->a, &a, s->eng, DNNL_MEMORY_NONE) &&
           !dnnl_memory_create(&s->b, &b, s->eng, DNNL_MEMORY_NONE) && !dnnl_memory_create(&s->c, &c, s->eng, DNNL_MEMORY_NONE) &&
           !dnnl_memory_create(&s->w, w, s->eng, DNNL_MEMORY_NONE);
}

mn__op_state *mn__op_state_new(const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                               bool accumulate, int threads, size_t work_bytes)
{
    mm_product p;
    if (!mn__gemm_use_dnnl(mn__gemm_detect()) || !product_of(op, in, nin, out, attrs, accumulate, &p)) return NULL;
    mn__op_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = p;
    s->threads = threads;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = !dnnl_engine_create(&s->eng, dnnl_cpu, 0) && !dnnl_stream_create(&s->strm, s->eng, dnnl_stream_default_flags) &&
              (pd = make_pd(s->eng, &p, threads)) && (s->work = work_of(pd, &p)) && s->work <= work_bytes && memories(s, pd);
    if (ok) {
        int old = mn__blas_threads_push(threads);
        ok = !dnnl_primitive_create(&s->prim, pd);
        mn__blas_threads_pop(old);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!ok) {
        mn__op_state_free(s);
        return NULL;
    }
    return s;
}

/* Whether OpenMP may give the primitive fewer threads than it was made
 * for: inside a parallel region (nested regions get one), with dynamic
 * teams or under a thread limit. brgemm fixes its work split when it is
 * made; a smaller team would leave the missing threads' shares unwritten. */
static bool team_may_shrink(int threads)
{
    return threads > 1 && (omp_in_parallel() || omp_get_dynamic() || omp_get_thread_limit() < threads);
}

/* The product on the primitive; matmul.c's kernel (the same products to
 * rounding, other bits) when the step runs with another thread count than
 * the primitive was made for or its team may shrink (team_may_shrink). */
mn_status mn__op_state_forward(mn__op_state *s, const mn_op_def *op, const mn_kernel_ctx *c)
{
    if (c->nthreads != s->threads || team_may_shrink(s->threads) || c->work_bytes < s->work) return op->forward(c);
    float *C = mn_f32(c->out);
    if (s->p.a_in == 1) {                       /* matmul_acc: C0 first, unless C is C0's bytes */
        const float *c0 = mn_f32(&c->in[0]);
        if (C != c0) memcpy(C, c0, (size_t)(s->p.M * s->p.N) * sizeof *C);
    }
    dnnl_memory_set_data_handle(s->a, c->in[s->p.a_in].data);
    dnnl_memory_set_data_handle(s->b, c->in[s->p.a_in + 1].data);
    dnnl_memory_set_data_handle(s->c, C);
    dnnl_memory_set_data_handle(s->w, c->work);
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, s->a }, { DNNL_ARG_WEIGHTS, s->b }, { DNNL_ARG_DST, s->c }, { DNNL_ARG_SCRATCHPAD, s->w } };
    dnnl_status_t e = dnnl_primitive_execute(s->prim, s->strm, 4, args);
    if (!e) e = dnnl_stream_wait(s->strm);
    if (e)
        return mn__kernel_fail(c, "oneDNN's matmul primitive failed (dnnl status %d) on a %lld x %lld x %lld product (A%s B%s)", (int)e,
                               (long long)s->p.M, (long long)s->p.N, (long long)s->p.K, s->p.ta ? "^T" : "", s->p.tb ? "^T" : "");
    return MN_OK;
}

#else

size_t mn__op_state_bytes(const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                          bool accumulate, int threads)
{
    (void)op; (void)in; (void)nin; (void)out; (void)attrs; (void)accumulate; (void)threads;
    return 0;
}

mn__op_state *mn__op_state_new(const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                               bool accumulate, int threads, size_t work_bytes)
{
    (void)op; (void)in; (void)nin; (void)out; (void)attrs; (void)accumulate; (void)threads; (void)work_bytes;
    return NULL;
}

mn_status mn__op_state_forward(mn__op_state *s, const mn_op_def *op, const mn_kernel_ctx *c)
{
    (void)s;
    return op->forward(c);
}

void mn__op_state_free(mn__op_state *s) { (void)s; }

#endif
