/* ops/attention_block.c: self-attention by blocks of queries. q, k and v
 * are column slices of one packed projection qkv [B, T, 3E] (heads side by
 * side, as nn.MultiheadAttention's in_proj gives them) and the result is
 * [B, T, E], so neither the head split nor the merge is a copy. A block of
 * BQ queries holds BQ x T scores, never T x T per head; causal blocks stop
 * at their last query's key. The backward recomputes the probabilities
 * block by block instead of reading saved ones. Dropout on the
 * probabilities draws u(run seed, stream, index in [B, H, T, T]) as the
 * dropout op does, so forward, backward and a recomputation see one mask.
 * Every (batch, head) is one task with its own workspace slot, so results
 * do not depend on threads. */
#include "attrs.h"
#include "op.h"
#include "fastmath.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

extern const mn_op_def mn__op_self_attention, mn__op_self_attention_grad;

#define BQ 64        /* queries per block */
#define SLOTS 16     /* most tasks in flight (the workspace holds one block each) */

typedef struct { int64_t B, T, E, H, dh, ld; } dims;

static dims dims_of(mn_shape qkv, int64_t heads)
{
    int64_t E = qkv.d[2] / 3;
    return (dims){ qkv.d[0], qkv.d[1], E, heads, E / heads, qkv.d[2] };
}

/* self_attention(qkv [B, T, 3E] [, pad [B, T]]); grad(qkv, dy [B, T, E] [, pad]).
 * pad: nonzero marks a key as padding (f32 or i32). */
static mn_status check_inputs(mn_infer_ctx *c, int nfixed)
{
    const mn_attention_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape;
    char sh[96], m[96];
    if (c->nin < nfixed || c->nin > nfixed + 1)
        return mn__infer_fail(c, MN_ERR_INVALID, "takes %d inputs and an optional mask, got %d", nfixed, c->nin);
    for (int i = 0; i < nfixed; i++)
        if (c->in[i].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input %d must be f32", i);
    if (c->nin > nfixed && c->in[nfixed].dtype != MN_F32 && c->in[nfixed].dtype != MN_I32)
        return mn__infer_fail(c, MN_ERR_DTYPE, "key padding must be f32 or i32");
    if (!(a->dropout >= 0.0f && a->dropout < 1.0f)) return mn__infer_fail(c, MN_ERR_INVALID, "dropout %g outside [0, 1)", (double)a->dropout);
    if (s.ndim != 3 || s.d[2] % 3 || a->heads <= 0 || (s.d[2] / 3) % a->heads)
        return mn__infer_fail(c, MN_ERR_SHAPE, "qkv %s must be [B, T, 3E] with E divisible by %lld heads",
                              mn_shape_str(s, sh, sizeof sh), (long long)a->heads);
    if (c->nin == nfixed + 1 && !mn_shape_eq(c->in[nfixed].shape, MN_SHAPE(s.d[0], s.d[1])))
        return mn__infer_fail(c, MN_ERR_SHAPE, "key padding %s must be [B, T] for qkv %s", mn_shape_str(c->in[nfixed].shape, m, sizeof m),
                              mn_shape_str(s, sh, sizeof sh));
    return MN_OK;
}

static mn_status infer_attention(mn_infer_ctx *c)
{
    mn_status st = check_inputs(c, 1);
    if (st) return st;
    mn_shape s = c->in[0].shape;
    c->out = (mn_tdesc){ MN_F32, MN_SHAPE(s.d[0], s.d[1], s.d[2] / 3) };
    return MN_OK;
}

static mn_status infer_grad(mn_infer_ctx *c)
{
    mn_status st = check_inputs(c, 2);
    if (st) return st;
    mn_shape s = c->in[0].shape;
    char a[96], b[96];
    if (!mn_shape_eq(c->in[1].shape, MN_SHAPE(s.d[0], s.d[1], s.d[2] / 3)))
        return mn__infer_fail(c, MN_ERR_SHAPE, "dy %s must be [B, T, E] for qkv %s", mn_shape_str(c->in[1].shape, a, sizeof a),
                              mn_shape_str(s, b, sizeof b));
    c->out = c->in[0];
    return MN_OK;
}

static int64_t slots(const dims *d) { return d->B * d->H < SLOTS ? d->B * d->H : SLOTS; }

static size_t work_attention(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    (void)nin; (void)out;
    dims d = dims_of(in[0].shape, ((const mn_attention_attrs *)attrs)->heads);
    return (size_t)(slots(&d) * BQ * d.T) * sizeof(float);
}

static size_t work_grad(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    return 2 * work_attention(in, nin, out, attrs);
}

/* Key j of sequence b is padding (pad NULL: none). */
static bool padded(const mn_tensor *pad, int64_t b, int64_t T, int64_t j)
{
    if (!pad) return false;
    return pad->dtype == MN_I32 ? mn_i32(pad)[b * T + j] != 0 : mn_f32(pad)[b * T + j] != 0.0f;
}

/* P = softmax(scale q k^T, -inf at padded keys (and causal)) for queries
 * i0 .. i0+m-1 of sequence b over keys 0 .. nk-1, rows of nk. A row whose
 * keys are all masked is zero (as softmax gives). q and k point at this
 * head's columns of the sequence's row 0. */
static void probs(const mn_attention_attrs *a, const dims *d, const float *q, const float *k, const mn_tensor *pad, int64_t b,
                  int64_t i0, int64_t m, int64_t nk, float *P)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nk, (int)d->dh, a->scale, q + i0 * d->ld, (int)d->ld, k,
                (int)d->ld, 0.0f, P, (int)nk);
    for (int64_t r = 0; r < m; r++) {
        float *p = P + r * nk;
        int64_t lim = a->causal ? i0 + r + 1 : nk;
        for (int64_t j = 0; pad && j < lim; j++)
            if (padded(pad, b, d->T, j)) p[j] = -INFINITY;
        float mx = mn__row_max(p, lim);
        if (mx == -INFINITY) lim = 0;
        for (int64_t j = 0; j < lim; j++) p[j] = mn__expf(p[j] - mx);
        float inv = lim ? (float)(1.0 / mn__row_sum(p, lim)) : 0.0f;
        for (int64_t j = 0; j < lim; j++) p[j] *= inv;
        for (int64_t j = lim; j < nk; j++) p[j] = 0.0f;
    }
}

/* X = X [u >= p] / (1 - p) over a block's rows (no dropout: unchanged). */
static void drop_block(const mn_kernel_ctx *c, const dims *d, int64_t task, int64_t i0, int64_t m, int64_t nk, float *X)
{
    const mn_attention_attrs *a = c->attrs;
    if (a->dropout <= 0.0f) return;
    float s = 1.0f / (1.0f - a->dropout);
    float u[256];
    for (int64_t r = 0; r < m; r++) {
        uint64_t base = (uint64_t)((task * d->T + i0 + r) * d->T);
        for (int64_t j0 = 0; j0 < nk; j0 += 256) {   /* mn_rng_uniform(seed, stream, base + j), vectorised */
            int64_t w = nk - j0 < 256 ? nk - j0 : 256;
            mn__rng_uniform_n(c->seed, a->stream, base + (uint64_t)j0, w, u);
            for (int64_t j = 0; j < w; j++) X[r * nk + j0 + j] = u[j] >= a->dropout ? X[r * nk + j0 + j] * s : 0.0f;
        }
    }
}

static int64_t keys_of(const mn_attention_attrs *a, const dims *d, int64_t i1) { return a->causal ? i1 : d->T; }

static void forward_task(const mn_kernel_ctx *c, const dims *d, int64_t task, float *P)
{
    const mn_attention_attrs *a = c->attrs;
    int64_t b = task / d->H, h = task % d->H;
    const float *x = mn_f32(&c->in[0]) + b * d->T * d->ld + h * d->dh;
    const mn_tensor *pad = c->nin == 2 ? &c->in[1] : NULL;
    float *y = mn_f32(c->out) + b * d->T * d->E + h * d->dh;
    for (int64_t i0 = 0; i0 < d->T; i0 += BQ) {
        int64_t m = d->T - i0 < BQ ? d->T - i0 : BQ, nk = keys_of(a, d, i0 + m);
        probs(a, d, x, x + d->E, pad, b, i0, m, nk, P);
        drop_block(c, d, task, i0, m, nk, P);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)d->dh, (int)nk, 1.0f, P, (int)nk, x + 2 * d->E,
                    (int)d->ld, 0.0f, y + i0 * d->E, (int)d->E);
    }
}

/* dS = P (dP - rowsum(P dP)) scale, in place of dP */
static void score_grad(const mn_attention_attrs *a, const float *P, float *dP, int64_t m, int64_t nk)
{
    for (int64_t r = 0; r < m; r++) {
        const float *p = P + r * nk;
        float *g = dP + r * nk;
        float s = (float)mn__row_dot(g, p, nk);
        for (int64_t j = 0; j < nk; j++) g[j] = p[j] * (g[j] - s) * a->scale;
    }
}

static void backward_task(const mn_kernel_ctx *c, const dims *d, int64_t task, float *P)
{
    const mn_attention_attrs *a = c->attrs;
    int64_t b = task / d->H, h = task % d->H, ld = d->ld;
    const float *x = mn_f32(&c->in[0]) + b * d->T * ld + h * d->dh;
    const float *dy = mn_f32(&c->in[1]) + b * d->T * d->E + h * d->dh;
    const mn_tensor *pad = c->nin == 3 ? &c->in[2] : NULL;
    float *dx = mn_f32(c->out) + b * d->T * ld + h * d->dh, *dP = P + BQ * d->T;
    for (int64_t t = 0; t < d->T; t++) memset(dx + t * ld + d->E, 0, sizeof(float) * (size_t)d->dh);
    for (int64_t t = 0; t < d->T; t++) memset(dx + t * ld + 2 * d->E, 0, sizeof(float) * (size_t)d->dh);
    for (int64_t i0 = 0; i0 < d->T; i0 += BQ) {
        int64_t m = d->T - i0 < BQ ? d->T - i0 : BQ, nk = keys_of(a, d, i0 + m);
        probs(a, d, x, x + d->E, pad, b, i0, m, nk, P);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nk, (int)d->dh, 1.0f, dy + i0 * d->E, (int)d->E,
                    x + 2 * d->E, (int)ld, 0.0f, dP, (int)nk);                                    /* dP = dy v^T */
        drop_block(c, d, task, i0, m, nk, dP);
        score_grad(a, P, dP, m, nk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)d->dh, (int)nk, 1.0f, dP, (int)nk, x + d->E,
                    (int)ld, 0.0f, dx + i0 * ld, (int)ld);                                        /* dq = dS k */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)d->dh, (int)m, 1.0f, dP, (int)nk, x + i0 * ld,
                    (int)ld, 1.0f, dx + d->E, (int)ld);                                           /* dk += dS^T q */
        drop_block(c, d, task, i0, m, nk, P);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)d->dh, (int)m, 1.0f, P, (int)nk, dy + i0 * d->E,
                    (int)d->E, 1.0f, dx + 2 * d->E, (int)ld);                                     /* dv += P^T dy */
    }
}

typedef void (*task_fn)(const mn_kernel_ctx *c, const dims *d, int64_t task, float *work);

/* Tasks side by side, one workspace slot per thread (slot = thread). */
static mn_status run_tasks(const mn_kernel_ctx *c, task_fn f, int64_t per_slot)
{
    dims d = dims_of(c->in[0].shape, ((const mn_attention_attrs *)c->attrs)->heads);
    int64_t tasks = d.B * d.H, nthr = c->nthreads < slots(&d) ? c->nthreads : slots(&d);
    float *work = c->work;
    if (nthr <= 1) {
        for (int64_t t = 0; t < tasks; t++) f(c, &d, t, work);
        return MN_OK;
    }
    #pragma omp parallel for num_threads((int)nthr) schedule(static)
    for (int64_t t = 0; t < tasks; t++) f(c, &d, t, work + omp_get_thread_num() * per_slot);
    return MN_OK;
}

static mn_status self_attention_fwd(const mn_kernel_ctx *c)
{
    dims d = dims_of(c->in[0].shape, ((const mn_attention_attrs *)c->attrs)->heads);
    return run_tasks(c, forward_task, BQ * d.T);
}

static mn_status self_attention_grad_fwd(const mn_kernel_ctx *c)
{
    dims d = dims_of(c->in[0].shape, ((const mn_attention_attrs *)c->attrs)->heads);
    return run_tasks(c, backward_task, 2 * BQ * d.T);
}

mn_node *mn_self_attention(mn_graph *g, mn_node *qkv, int64_t heads, bool causal, mn_node *key_padding, float dropout)
{
    mn_shape s = mn_node_shape(qkv);
    int64_t dh = s.ndim == 3 && heads > 0 ? s.d[2] / 3 / heads : 1;
    mn_attention_attrs a = { heads, causal, 1.0f / sqrtf((float)(dh > 0 ? dh : 1)), dropout, (uint32_t)mn_graph_node_count(g) };
    mn_node *in[2] = { qkv, key_padding };
    return mn__node(g, &mn__op_self_attention, in, key_padding ? 2 : 1, &a);
}

/* The key padding is piecewise constant: its gradient is zero. */
static mn_status vjp_attention(mn_vjp_ctx *c)
{
    mn_node *in[3] = { c->in[0], c->dy, c->nin == 2 ? c->in[1] : NULL };
    if (c->needs[0]) c->dx[0] = mn__node(c->g, &mn__op_self_attention_grad, in, c->nin + 1, c->attrs);
    return MN_OK;
}

/* Causal blocks compute about (T + BQ) / 2T of the full score matrix. */
static double score_share(const mn_attention_attrs *a, const dims *d)
{
    return a->causal ? (double)(d->T + BQ) / (2.0 * (double)d->T) : 1.0;
}

static void attention_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)nin;
    dims d = dims_of(in[0].shape, ((const mn_attention_attrs *)attrs)->heads);
    double pairs = (double)(d.B * d.H) * (double)d.T * (double)d.T * score_share((const mn_attention_attrs *)attrs, &d);
    *flops = pairs * (4.0 * (double)d.dh + 5.0);
    *bytes = 4.0 * ((double)mn_shape_numel(in[0].shape) + (double)mn_shape_numel(out->shape));
}

static void grad_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    attention_cost(in, nin, out, attrs, flops, bytes);
    *flops *= 2.5;
    *bytes *= 2.0;
}

const mn_op_def mn__op_self_attention = { MN_OP_RECORD, .name = "self_attention",
    .doc = "y[b,i,h] = sum_j dropout(softmax_j(scale q_i k_j; -inf where pad[b,j] != 0 or, causal, j > i)) v_j, q k v = "
           "qkv[..., 0:E | E:2E | 2E:3E] per head; dqkv = self_attention_grad(qkv, dy, pad), dpad = 0",
    .arity = -1, .attr_size = sizeof(mn_attention_attrs), MN__FIELDS(mn_attention_attrs), .inplace = -1,
    .infer = infer_attention, .forward = self_attention_fwd, .vjp = vjp_attention, .cost = attention_cost,
    .traits = { .workspace = work_attention } };

const mn_op_def mn__op_self_attention_grad = { MN_OP_RECORD, .name = "self_attention_grad",
    .doc = "dq = dS k, dk = dS^T q, dv = D(P)^T dy with P recomputed by blocks, dS = P (D(dy v^T) - rowsum) scale, D = the "
           "forward's dropout (self_attention backward); "
           "no gradient",
    .arity = -1, .flags = MN_OPF_NOGRAD, .attr_size = sizeof(mn_attention_attrs), MN__FIELDS(mn_attention_attrs), .inplace = -1,
    .infer = infer_grad, .forward = self_attention_grad_fwd, .cost = grad_cost, .traits = { .workspace = work_grad } };
