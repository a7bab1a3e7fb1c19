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

/* One product kind, (shape, transposes, accumulate, threads): oneDNN's
 * answer for it, asked once per executable, and its primitive, made for
 * the first step of the kind and shared by all of them (a primitive with a
 * user scratchpad may run in several threads at once, each execution on
 * its own scratchpad: oneDNN's scratchpad-mode documentation). */
typedef struct {
    mm_product p;                /* the key with `threads` (a_in aside) */
    int threads;
    size_t work;                 /* the workspace a state needs; 0: no state for this kind */
    dnnl_memory_desc_t w;        /* the scratchpad's descriptor */
    dnnl_primitive_desc_t pd;    /* until the primitive is made */
    dnnl_primitive_t prim;
} mm_kind;

/* What one executable's states share: one engine and stream (oneDNN 2.6's
 * CPU stream runs each primitive synchronously in the calling thread and
 * keeps no mutable state -- read in its source, src/common/stream.hpp;
 * its documentation promises thread safety for
 * executing a primitive with user scratchpads, not for one stream used by
 * two threads -- so concurrent steps share it) and the kinds. */
struct mn__op_states {
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    mm_kind *kinds;
    int nkinds, cap;
    int descs, prims;            /* descriptors asked of oneDNN, primitives made */
};

/* A step's state: its kind's primitive and the stream (borrowed from the
 * executable's mn__op_states) and its own memory objects, whose data the
 * step sets per run: two steps of one kind may run at once. */
struct mn__op_state {
    mm_product p;
    int threads;
    size_t work;
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

/* Workspace of a state: the scratchpad, at least one byte (a step with a
 * state has a workspace), rounded to whole cache lines; 0 (no state) when
 * the scratchpad is larger than the product's operands and result. brgemm
 * sizes it by its blocks, not by the product: 262 KB for a test mlp's
 * 1 KB arena, so small models' arenas (their peaks) would grow several
 * fold; sgemm's per-call buffer for such products (74 KB) stays below
 * glibc's mmap threshold and is reused, leaving no holes. */
static size_t work_of(const dnnl_memory_desc_t *w, const mm_product *p)
{
    size_t n = dnnl_memory_desc_get_size(w), data = sizeof(float) * (size_t)(p->M * p->K + p->K * p->N + p->M * p->N);
    return n > data ? 0 : (n + 64) / 64 * 64;
}

static bool same_kind(const mm_kind *k, const mm_product *p, int threads)
{
    return k->threads == threads && k->p.ta == p->ta && k->p.tb == p->tb && k->p.acc == p->acc && k->p.M == p->M && k->p.N == p->N &&
           k->p.K == p->K;
}

/* The executable's shared context, made on first need; NULL out of memory
 * or without a CPU engine (then no step gets a state). */
static mn__op_states *context(mn__op_states **ctx)
{
    if (*ctx) return *ctx;
    mn__op_states *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    if (dnnl_engine_create(&x->eng, dnnl_cpu, 0) || dnnl_stream_create(&x->strm, x->eng, dnnl_stream_default_flags)) {
        mn__op_states_free(x);
        return NULL;
    }
    return *ctx = x;
}

/* The kind of product p on `threads` threads: found, or asked of oneDNN
 * and kept; NULL out of memory. */
static mm_kind *kind_of(mn__op_states *x, const mm_product *p, int threads)
{
    for (int i = 0; i < x->nkinds; i++)
        if (same_kind(&x->kinds[i], p, threads)) return &x->kinds[i];
    if (x->nkinds == x->cap) {
        int cap = x->cap ? 2 * x->cap : 8;
        mm_kind *k = realloc(x->kinds, (size_t)cap * sizeof *k);
        if (!k) return NULL;
        x->kinds = k;
        x->cap = cap;
    }
    mm_kind *k = &x->kinds[x->nkinds];
    *k = (mm_kind){ .p = *p, .threads = threads };
    k->pd = make_pd(x->eng, p, threads);
    x->descs++;
    const dnnl_memory_desc_t *w = k->pd ? dnnl_primitive_desc_query_md(k->pd, dnnl_query_scratchpad_md, 0) : NULL;
    if (w) {
        k->w = *w;
        k->work = work_of(w, p);
    }
    if (!k->work && k->pd) {
        dnnl_primitive_desc_destroy(k->pd);
        k->pd = NULL;
    }
    x->nkinds++;
    return k;
}

size_t mn__op_state_bytes(mn__op_states **ctx, const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                          bool accumulate, int threads)
{
    mm_product p;
    if (!product_of(op, in, nin, out, attrs, accumulate, &p) || !mn__gemm_use_dnnl(mn__gemm_detect())) return 0;
    mn__op_states *x = context(ctx);
    mm_kind *k = x ? kind_of(x, &p, threads) : NULL;
    return k ? k->work : 0;
}

void mn__op_states_free(mn__op_states *x)
{
    if (!x) return;
    for (int i = 0; i < x->nkinds; i++) {
        if (x->kinds[i].prim) dnnl_primitive_destroy(x->kinds[i].prim);
        if (x->kinds[i].pd) dnnl_primitive_desc_destroy(x->kinds[i].pd);
    }
    free(x->kinds);
    if (x->strm) dnnl_stream_destroy(x->strm);
    if (x->eng) dnnl_engine_destroy(x->eng);
    free(x);
}

void mn__op_states_counts(const mn__op_states *x, int *descs_asked, int *prims_made)
{
    *descs_asked = x ? x->descs : 0;
    *prims_made = x ? x->prims : 0;
}

void mn__op_state_free(mn__op_state *s)
{
    if (!s) return;
    dnnl_memory_t *m[4] = { &s->a, &s->b, &s->c, &s->w };
    for (int i = 0; i < 4; i++)
        if (*m[i]) dnnl_memory_destroy(*m[i]);
    free(s);
}

/* The kind's primitive, made (for its thread count) on first need. */
static dnnl_primitive_t primitive(mn__op_states *x, mm_kind *k)
{
    if (k->prim || !k->pd) return k->prim;
    int old = mn__blas_threads_push(k->threads);
    if (dnnl_primitive_create(&k->prim, k->pd)) k->prim = NULL;
    mn__blas_threads_pop(old);
    if (!k->prim) return NULL;
    dnnl_primitive_desc_destroy(k->pd);        /* the primitive keeps its own copy */
    k->pd = NULL;
    x->prims++;
    return k->prim;
}

/* The memory objects a state's primitive runs on, their data set per run. */
static bool memories(mn__op_state *s, dnnl_engine_t eng, const dnnl_memory_desc_t *w)
{
    dnnl_memory_desc_t a, b, c;
    return descs(&s->p, &a, &b, &c) && !dnnl_memory_create(&s->a, &a, eng, DNNL_MEMORY_NONE) &&
           !dnnl_memory_create(&s->b, &b, eng, DNNL_MEMORY_NONE) && !dnnl_memory_create(&s->c, &c, eng, DNNL_MEMORY_NONE) &&
           !dnnl_memory_create(&s->w, w, eng, DNNL_MEMORY_NONE);
}

mn__op_state *mn__op_state_new(mn__op_states **ctx, const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out,
                               const void *attrs, bool accumulate, int threads, size_t work_bytes)
{
    mm_product p;
    if (!product_of(op, in, nin, out, attrs, accumulate, &p) || !mn__gemm_use_dnnl(mn__gemm_detect())) return NULL;
    mn__op_states *x = context(ctx);
    mm_kind *k = x ? kind_of(x, &p, threads) : NULL;
    if (!k || !k->work || k->work > work_bytes || !primitive(x, k)) return NULL;
    mn__op_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    *s = (mn__op_state){ .p = p, .threads = threads, .work = k->work, .strm = x->strm, .prim = k->prim };
    if (!memories(s, x->eng, &k->w)) {
        mn__op_state_free(s);
        return NULL;
    }
    return s;
}

void mn__op_state_handles(const mn__op_state *s, void *h[4])
{
    void *w = NULL;
    dnnl_engine_t eng = NULL;
    dnnl_memory_get_data_handle(s->w, &w);
    dnnl_memory_get_engine(s->w, &eng);
    h[0] = eng;
    h[1] = s->strm;
    h[2] = s->prim;
    h[3] = w;
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

size_t mn__op_state_bytes(mn__op_states **ctx, const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                          bool accumulate, int threads)
{
    (void)ctx; (void)op; (void)in; (void)nin; (void)out; (void)attrs; (void)accumulate; (void)threads;
    return 0;
}

mn__op_state *mn__op_state_new(mn__op_states **ctx, const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out,
                               const void *attrs, bool accumulate, int threads, size_t work_bytes)
{
    (void)ctx; (void)op; (void)in; (void)nin; (void)out; (void)attrs; (void)accumulate; (void)threads; (void)work_bytes;
    return NULL;
}

mn_status mn__op_state_forward(mn__op_state *s, const mn_op_def *op, const mn_kernel_ctx *c)
{
    (void)s;
    return op->forward(c);
}

void mn__op_state_free(mn__op_state *s) { (void)s; }

void mn__op_states_free(mn__op_states *x) { (void)x; }

void mn__op_states_counts(const mn__op_states *x, int *descs_asked, int *prims_made)
{
    (void)x;
    *descs_asked = *prims_made = 0;
}

void mn__op_state_handles(const mn__op_state *s, void *h[4])
{
    (void)s;
    h[0] = h[1] = h[2] = h[3] = NULL;
}

#endif
