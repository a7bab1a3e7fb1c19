/* ops/loss.c: losses with PyTorch's semantics. cross_entropy takes logits
 * [N, C] or [N, C, d...] (or [C]) and i32 targets, log-softmax is computed
 * inside (stable); its backward recomputes the softmax from the logits so
 * nothing hidden is kept between passes. mse_loss compares equal shapes. */
#include "attrs.h"
#include "op.h"
#include <math.h>
#include <string.h>

extern const mn_op_def mn__op_cross_entropy, mn__op_cross_entropy_grad, mn__op_mse_loss;

typedef struct { int64_t n, c, inner; } ce_dims;   /* logits viewed as [n, c, inner] */

static ce_dims ce_split(mn_shape s)
{
    ce_dims d = { 1, s.d[s.ndim == 1 ? 0 : 1], 1 };
    if (s.ndim >= 2) d.n = s.d[0];
    for (int i = 2; i < s.ndim; i++) d.inner *= s.d[i];
    return d;
}

static mn_status check_ce(mn_infer_ctx *c)
{
    const mn_ce_attrs *a = c->attrs;
    mn_shape L = c->in[0].shape, T = c->in[1].shape;
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "logits must be f32");
    if (c->in[1].dtype != MN_I32) return mn__infer_fail(c, MN_ERR_DTYPE, "targets must be i32 class indices");
    if (L.ndim < 1) return mn__infer_fail(c, MN_ERR_SHAPE, "logits need a class dim");
    bool ok = T.ndim == (L.ndim == 1 ? 0 : L.ndim - 1);
    for (int i = 0; ok && i < T.ndim; i++) ok = T.d[i] == L.d[i == 0 ? 0 : i + 1];
    if (!ok) return mn__infer_fail(c, MN_ERR_SHAPE, "targets must have the logits' shape without the class dim (dim 1)");
    if (!(a->o.label_smoothing >= 0.0f && a->o.label_smoothing <= 1.0f))
        return mn__infer_fail(c, MN_ERR_INVALID, "label_smoothing %g outside [0, 1]", (double)a->o.label_smoothing);
    if (a->o.reduction < MN_REDUCE_NONE || a->o.reduction > MN_REDUCE_SUM)
        return mn__infer_fail(c, MN_ERR_INVALID, "unknown reduction %d", (int)a->o.reduction);
    return MN_OK;
}

static mn_status infer_ce(mn_infer_ctx *c)
{
    mn_status s = check_ce(c);
    if (s) return s;
    const mn_ce_attrs *a = c->attrs;
    c->out = (mn_tdesc){ MN_F32, a->o.reduction == MN_REDUCE_NONE ? c->in[1].shape : MN_SCALAR };
    return MN_OK;
}

static mn_status infer_ce_grad(mn_infer_ctx *c)
{
    mn_status s = check_ce(c);
    if (s) return s;
    const mn_ce_attrs *a = c->attrs;
    mn_shape want = a->o.reduction == MN_REDUCE_NONE ? c->in[1].shape : MN_SCALAR;
    if (c->in[2].dtype != MN_F32 || !mn_shape_eq(c->in[2].shape, want))
        return mn__infer_fail(c, MN_ERR_SHAPE, "dloss must be f32 with the loss's shape");
    c->out = c->in[0];
    return MN_OK;
}

/* Validates targets; returns the count of non-ignored ones or -1 (error). */
static int64_t count_targets(const mn_kernel_ctx *c, ce_dims d, int ignore)
{
    const int32_t *t = mn_i32(&c->in[1]);
    int64_t cnt = 0, npos = d.n * d.inner;
    for (int64_t p = 0; p < npos; p++) {
        if (t[p] == ignore) continue;
        if (t[p] < 0 || t[p] >= d.c) {
            mn__kernel_fail(c, "target %d at position %lld is outside [0, %lld)", t[p], (long long)p, (long long)d.c);
            return -1;
        }
        cnt++;
    }
    return cnt;
}

/* log-sum-exp of one strided row */
static double row_lse(const float *x, int64_t n, int64_t st)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, x[i * st]);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += exp((double)(x[i * st] - m));
    return m + log(s);
}

static mn_status ce_fwd(const mn_kernel_ctx *c)
{
    const mn_ce_attrs *a = c->attrs;
    ce_dims d = ce_split(c->in[0].shape);
    int64_t cnt = count_targets(c, d, a->o.ignore_index), npos = d.n * d.inner;
    if (cnt < 0) return MN_ERR_RUNTIME;
    const float *x = mn_f32(&c->in[0]);
    const int32_t *t = mn_i32(&c->in[1]);
    float *y = mn_f32(c->out), eps = a->o.label_smoothing;
    double total = 0;
    #pragma omp parallel for if (npos * d.c > MN_GRAIN) num_threads(c->nthreads) reduction(+:total) schedule(static)
    for (int64_t p = 0; p < npos; p++) {
        const float *row = x + (p / d.inner) * d.c * d.inner + p % d.inner;
        double l = 0;
        if (t[p] != a->o.ignore_index) {
            double lse = row_lse(row, d.c, d.inner);
            l = (1.0 - eps) * (lse - row[t[p] * d.inner]);
            if (eps > 0) {
                double s = 0;
                for (int64_t k = 0; k < d.c; k++) s += lse - row[k * d.inner];
                l += eps * s / (double)d.c;
            }
        }
        if (a->o.reduction == MN_REDUCE_NONE) y[p] = (float)l;
        total += l;
    }
    if (a->o.reduction == MN_REDUCE_SUM) y[0] = (float)total;
    else if (a->o.reduction == MN_REDUCE_MEAN) y[0] = (float)(total / (double)cnt);
    return MN_OK;
}

/* dx_k = w (softmax_k - (1 - eps) [k = t] - eps / C), w = dloss (per position,
 * or / count for mean); zero for ignored positions. */
static mn_status ce_grad_fwd(const mn_kernel_ctx *c)
{
    const mn_ce_attrs *a = c->attrs;
    ce_dims d = ce_split(c->in[0].shape);
    int64_t cnt = count_targets(c, d, a->o.ignore_index), npos = d.n * d.inner;
    if (cnt < 0) return MN_ERR_RUNTIME;
    const float *x = mn_f32(&c->in[0]), *dl = mn_f32(&c->in[2]);
    const int32_t *t = mn_i32(&c->in[1]);
    float *dx = mn_f32(c->out), eps = a->o.label_smoothing;
    #pragma omp parallel for if (npos * d.c > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t p = 0; p < npos; p++) {
        int64_t base = (p / d.inner) * d.c * d.inner + p % d.inner;
        const float *row = x + base;
        float *out = dx + base;
        if (t[p] == a->o.ignore_index) {
            for (int64_t k = 0; k < d.c; k++) out[k * d.inner] = 0.0f;
            continue;
        }
        double w = a->o.reduction == MN_REDUCE_NONE ? dl[p]
                 : a->o.reduction == MN_REDUCE_SUM ? dl[0] : dl[0] / (double)cnt;
        double lse = row_lse(row, d.c, d.inner);
        for (int64_t k = 0; k < d.c; k++) {
            double g = exp(row[k * d.inner] - lse) - eps / (double)d.c - (k == t[p] ? 1.0 - eps : 0.0);
            out[k * d.inner] = (float)(w * g);
        }
    }
    return MN_OK;
}

static mn_status vjp_ce(mn_vjp_ctx *c)
{
    mn_node *in[3] = { c->in[0], c->in[1], c->dy };
    if (c->needs[0]) c->dx[0] = mn__node(c->g, &mn__op_cross_entropy_grad, in, 3, c->attrs);
    return MN_OK;
}

mn_node *mn_cross_entropy_ex(mn_graph *g, mn_node *logits, mn_node *targets, mn_ce_opts o)
{
    mn_ce_attrs a = { o };
    mn_node *in[2] = { logits, targets };
    return mn__node(g, &mn__op_cross_entropy, in, 2, &a);
}

mn_node *mn_cross_entropy(mn_graph *g, mn_node *logits, mn_node *targets)
{
    return mn_cross_entropy_ex(g, logits, targets, MN_CE_DEFAULTS);
}

static void ce_str(const void *p, char *buf, size_t n)
{
    const mn_ce_attrs *a = p;
    static const char *red[] = { "none", "mean", "sum" };
    snprintf(buf, n, "reduction=%s ignore=%d smoothing=%g", red[a->o.reduction], a->o.ignore_index,
             (double)a->o.label_smoothing);
}

static void ce_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)nin; (void)out; (void)attrs;
    *flops = 4.0 * (double)mn_shape_numel(in[0].shape);
    *bytes = 8.0 * (double)mn_shape_numel(in[0].shape);
}

/* ---- mse_loss ---- */

static mn_status infer_mse(mn_infer_ctx *c)
{
    const mn_mse_attrs *a = c->attrs;
    if (c->in[0].dtype != MN_F32 || c->in[1].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "inputs must be f32");
    if (!mn_shape_eq(c->in[0].shape, c->in[1].shape)) return mn__infer_fail(c, MN_ERR_SHAPE, "input and target shapes differ");
    if (a->reduction < MN_REDUCE_NONE || a->reduction > MN_REDUCE_SUM)
        return mn__infer_fail(c, MN_ERR_INVALID, "unknown reduction %d", (int)a->reduction);
    c->out = (mn_tdesc){ MN_F32, a->reduction == MN_REDUCE_NONE ? c->in[0].shape : MN_SCALAR };
    return MN_OK;
}

static mn_status mse_fwd(const mn_kernel_ctx *c)
{
    const mn_mse_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]), *t = mn_f32(&c->in[1]);
    float *y = mn_f32(c->out);
    int64_t n = mn_tensor_numel(&c->in[0]);
    if (a->reduction == MN_REDUCE_NONE) {
        #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = (x[i] - t[i]) * (x[i] - t[i]);
        return MN_OK;
    }
    double s = 0;
    #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) reduction(+:s) schedule(static)
    for (int64_t i = 0; i < n; i++) s += (double)(x[i] - t[i]) * (x[i] - t[i]);
    y[0] = (float)(a->reduction == MN_REDUCE_MEAN ? s / (double)n : s);
    return MN_OK;
}

/* dx = 2 (x - t) dy [/ n], dt = -dx */
static mn_status vjp_mse(mn_vjp_ctx *c)
{
    const mn_mse_attrs *a = c->attrs;
    int64_t n = mn_shape_numel(mn_node_shape(c->in[0]));
    float k = a->reduction == MN_REDUCE_MEAN ? 2.0f / (float)n : 2.0f;
    mn_node *d = mn_scale(c->g, mn_mul(c->g, mn_sub(c->g, c->in[0], c->in[1]), c->dy), k);
    if (c->needs[0]) c->dx[0] = d;
    if (c->needs[1]) c->dx[1] = mn_neg(c->g, d);
    return MN_OK;
}

mn_node *mn_mse_loss(mn_graph *g, mn_node *x, mn_node *target, mn_reduction r)
{
    mn_mse_attrs a = { r };
    mn_node *in[2] = { x, target };
    return mn__node(g, &mn__op_mse_loss, in, 2, &a);
}

static void mse_str(const void *p, char *buf, size_t n)
{
    static const char *red[] = { "none", "mean", "sum" };
    snprintf(buf, n, "reduction=%s", red[((const mn_mse_attrs *)p)->reduction]);
}

const mn_op_def mn__op_cross_entropy = {
    .name = "cross_entropy",
    .doc = "l = (1-eps)(lse(x) - x[t]) + eps mean_k(lse(x) - x[k]), reduced; dx = cross_entropy_grad",
    .arity = 2, .attr_size = sizeof(mn_ce_attrs), .inplace = -1,
    .infer = infer_ce, .forward = ce_fwd, .vjp = vjp_ce, .cost = ce_cost, .attr_str = ce_str,
};
const mn_op_def mn__op_cross_entropy_grad = {
    .name = "cross_entropy_grad",
    .doc = "dx = w (softmax(x) - (1-eps) onehot(t) - eps/C) (cross_entropy backward); no gradient",
    .arity = 3, .attr_size = sizeof(mn_ce_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD | MN_OPF_BACKWARD,
    .infer = infer_ce_grad, .forward = ce_grad_fwd, .cost = ce_cost, .attr_str = ce_str,
};
const mn_op_def mn__op_mse_loss = {
    .name = "mse_loss", .doc = "l = (x - t)^2, reduced; dx = 2 (x - t) dy [/ n], dt = -dx",
    .arity = 2, .attr_size = sizeof(mn_mse_attrs), .inplace = -1,
    .infer = infer_mse, .forward = mse_fwd, .vjp = vjp_mse, .attr_str = mse_str,
};
