/* ops/nn.c: softmax and log_softmax over one axis (max-subtracted, so
 * stable for any input) and their backward helpers. Every kernel views
 * its tensor as [outer, n, inner] with the op's axis in the middle. */
#include "attrs.h"
#include "op.h"
#include "fastmath.h"
#include <math.h>

extern const mn_op_def mn__op_softmax, mn__op_log_softmax, mn__op_softmax_grad, mn__op_log_softmax_grad;

static mn_status infer_axis(mn_infer_ctx *c)
{
    const mn_axis_attrs *a = c->attrs;
    for (int i = 0; i < c->nin; i++) {
        if (c->in[i].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input %d must be f32", i);
        if (!mn_shape_eq(c->in[i].shape, c->in[0].shape)) return mn__infer_fail(c, MN_ERR_SHAPE, "inputs must have the same shape");
    }
    if (mn__axis(a->axis, c->in[0].shape.ndim) < 0)
        return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, c->in[0].shape.ndim);
    c->out = c->in[0];
    return MN_OK;
}

/* softmax(x [, mask]): the mask broadcasts to x and is added; causal and
 * mask need the softmax axis to be the last one. */
static mn_status infer_softmax(mn_infer_ctx *c)
{
    const mn_axis_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape, b;
    if (c->nin < 1 || c->nin > 2) return mn__infer_fail(c, MN_ERR_INVALID, "takes x and an optional additive mask");
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input %d must be f32", i);
    int ax = mn__axis(a->axis, s.ndim);
    if (ax < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, s.ndim);
    if ((c->nin == 2 || a->causal) && ax != s.ndim - 1)
        return mn__infer_fail(c, MN_ERR_INVALID, "a mask needs the softmax axis to be the last one");
    if (a->causal && s.ndim < 2) return mn__infer_fail(c, MN_ERR_SHAPE, "a causal mask needs [..., queries, keys]");
    char m[96], x[96];
    if (c->nin == 2 && (mn_shape_broadcast(c->in[1].shape, s, &b) || !mn_shape_eq(b, s)))
        return mn__infer_fail(c, MN_ERR_SHAPE, "mask %s does not broadcast to %s", mn_shape_str(c->in[1].shape, m, sizeof m),
                              mn_shape_str(s, x, sizeof x));
    c->out = c->in[0];
    return MN_OK;
}

static mn__split3 split_at(mn_shape s, int axis) { return mn__split_at(s, mn__axis(axis, s.ndim)); }

/* One softmax row of n elements with stride st; log selects log_softmax.
 * A row that is entirely masked gives zeros (softmax) or -inf (log). */
static void softmax_row(const float *x, float *y, int64_t n, int64_t st, bool log)
{
    float m = -INFINITY;
    if (st == 1) m = mn__row_max(x, n);
    else for (int64_t i = 0; i < n; i++) m = mn__fmaxf(m, x[i * st]);
    if (m == -INFINITY) {
        for (int64_t i = 0; i < n; i++) y[i * st] = log ? -INFINITY : 0.0f;
        return;
    }
    double s = 0;
    if (st == 1 && !log) {                    /* contiguous softmax: exponentials into y, one pass */
        for (int64_t i = 0; i < n; i++) y[i] = mn__expf(x[i] - m);
        float inv = (float)(1.0 / mn__row_sum(y, n));
        for (int64_t i = 0; i < n; i++) y[i] *= inv;
        return;
    }
    if (st == 1) s = mn__row_sumexp(x, n, m);
    else for (int64_t i = 0; i < n; i++) s += mn__expf(x[i * st] - m);
    if (log) {
        float lse = m + (float)logf((float)s);
        for (int64_t i = 0; i < n; i++) y[i * st] = x[i * st] - lse;
    } else {
        float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < n; i++) y[i * st] = mn__expf(x[i * st] - m) * inv;
    }
}

/* Masked rows (axis last): z = x + mask (+ -inf above the causal diagonal),
 * written into y first, then normalised in place. */
static void masked_row(const mn_kernel_ctx *c, int64_t r, int64_t n, const int64_t *mst, bool log)
{
    const mn_axis_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape;
    const float *x = mn_f32(&c->in[0]) + r * n;
    float *y = mn_f32(c->out) + r * n;
    int64_t moff = 0, rem = r, q = s.ndim >= 2 ? r % s.d[s.ndim - 2] : 0;
    for (int d = s.ndim - 2; d >= 0; d--) { moff += (rem % s.d[d]) * mst[d]; rem /= s.d[d]; }
    for (int64_t i = 0; i < n; i++) {
        float z = x[i];
        if (c->nin == 2) z += mn_f32(&c->in[1])[moff + i * mst[s.ndim - 1]];
        if (a->causal && i > q) z = -INFINITY;
        y[i] = z;
    }
    softmax_row(y, y, n, 1, log);
}

static mn_status run_softmax(const mn_kernel_ctx *c, bool log)
{
    const mn_axis_attrs *a = c->attrs;
    mn__split3 d = split_at(c->in[0].shape, a->axis);
    const float *x = mn_f32(&c->in[0]);
    float *y = mn_f32(c->out);
    int64_t rows = d.outer * d.inner, mst[MN_MAX_DIMS] = { 0 };
    bool masked = c->nin == 2 || a->causal;
    if (c->nin == 2) mn__bcast_strides(c->in[1].shape, c->in[0].shape, mst);
    #pragma omp parallel for if (rows * d.dim > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        if (masked) { masked_row(c, r, d.dim, mst, log); continue; }
        int64_t o = r / d.inner, j = r % d.inner, base = o * d.dim * d.inner + j;
        softmax_row(x + base, y + base, d.dim, d.inner, log);
    }
    return MN_OK;
}

static mn_status softmax_fwd(const mn_kernel_ctx *c) { return run_softmax(c, false); }
static mn_status log_softmax_fwd(const mn_kernel_ctx *c) { return run_softmax(c, true); }

/* softmax_grad(y, g) = y (g - sum(g y)); log_softmax_grad(y, g) = g - exp(y) sum(g) */
static mn_status run_grad(const mn_kernel_ctx *c, bool log)
{
    mn__split3 d = split_at(c->in[0].shape, ((const mn_axis_attrs *)c->attrs)->axis);
    const float *y = mn_f32(&c->in[0]), *g = mn_f32(&c->in[1]);
    float *dx = mn_f32(c->out);
    int64_t rows = d.outer * d.inner, st = d.inner;
    #pragma omp parallel for if (rows * d.dim > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = (r / d.inner) * d.dim * d.inner + r % d.inner;
        double s = 0;
        if (st == 1) s = log ? mn__row_sum(g + base, d.dim) : mn__row_dot(g + base, y + base, d.dim);
        else for (int64_t i = 0; i < d.dim; i++) s += log ? g[base + i * st] : (double)g[base + i * st] * y[base + i * st];
        for (int64_t i = 0; i < d.dim; i++) {
            int64_t k = base + i * st;
            dx[k] = log ? g[k] - mn__expf(y[k]) * (float)s : y[k] * (g[k] - (float)s);
        }
    }
    return MN_OK;
}

static mn_status softmax_grad_fwd(const mn_kernel_ctx *c) { return run_grad(c, false); }
static mn_status log_softmax_grad_fwd(const mn_kernel_ctx *c) { return run_grad(c, true); }

static mn_node *axis_node(mn_graph *g, const mn_op_def *op, mn_node *const *in, int nin, int axis, bool causal)
{
    mn_axis_attrs a = { axis, causal };
    return mn__node(g, op, in, nin, &a);
}

mn_node *mn_softmax(mn_graph *g, mn_node *x, int axis) { return axis_node(g, &mn__op_softmax, &x, 1, axis, false); }
mn_node *mn_log_softmax(mn_graph *g, mn_node *x, int axis) { return axis_node(g, &mn__op_log_softmax, &x, 1, axis, false); }

/* mask may be NULL; with a mask or causal, axis must be the last dim. */
mn_node *mn_softmax_masked(mn_graph *g, mn_node *x, int axis, mn_node *mask, bool causal)
{
    mn_node *in[2] = { x, mask };
    return axis_node(g, &mn__op_softmax, in, mask ? 2 : 1, axis, causal);
}
mn_node *mn_log_softmax_masked(mn_graph *g, mn_node *x, int axis, mn_node *mask, bool causal)
{
    mn_node *in[2] = { x, mask };
    return axis_node(g, &mn__op_log_softmax, in, mask ? 2 : 1, axis, causal);
}

/* The mask is additive: its gradient is dx summed to the mask's shape. */
static mn_status vjp_softmax_any(mn_vjp_ctx *c, const mn_op_def *grad)
{
    const mn_axis_attrs *a = c->attrs;
    mn_node *in[2] = { c->out, c->dy };
    mn_node *dx = axis_node(c->g, grad, in, 2, a->axis, false);
    if (c->needs[0]) c->dx[0] = dx;
    if (c->nin == 2 && c->needs[1]) c->dx[1] = mn_sum_to(c->g, dx, mn_node_shape(c->in[1]));
    return MN_OK;
}
static mn_status vjp_softmax(mn_vjp_ctx *c) { return vjp_softmax_any(c, &mn__op_softmax_grad); }
static mn_status vjp_log_softmax(mn_vjp_ctx *c) { return vjp_softmax_any(c, &mn__op_log_softmax_grad); }

static void axis_str(const void *p, char *buf, size_t n)
{
    const mn_axis_attrs *a = p;
    snprintf(buf, n, "axis=%d%s", a->axis, a->causal ? " causal" : "");
}

static void softmax_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)attrs;
    *flops = 5.0 * (double)mn_shape_numel(out->shape);
    *bytes = 4.0 * (double)(nin + 1) * (double)mn_shape_numel(in[0].shape);
}

#define AXIS_OP(nm, dc, ar, inf, fl, vj)                                                      \
    const mn_op_def mn__op_##nm = { MN_OP_RECORD, .name = #nm, .doc = dc, .arity = ar,                      \
        .attr_size = sizeof(mn_axis_attrs), .flags = fl, .inplace = ar < 0 ? 0 : ar - 1, .infer = inf, \
        .forward = nm##_fwd, .vjp = vj, .cost = softmax_cost, .attr_str = axis_str };

AXIS_OP(softmax, "y = exp(z - max) / sum exp(z - max), z = x + mask (causal: -inf above the diagonal); dx = y (dy - sum(dy y)), dmask = sum_to(dx)",
        -1, infer_softmax, 0, vjp_softmax)
AXIS_OP(log_softmax, "y = z - logsumexp(z), z = x + mask (causal: -inf above the diagonal); dx = dy - exp(y) sum(dy), dmask = sum_to(dx)",
        -1, infer_softmax, 0, vjp_log_softmax)
AXIS_OP(softmax_grad, "z = y (g - sum(g y)) along axis (softmax backward); no gradient", 2, infer_axis,
        MN_OPF_NOGRAD, NULL)
AXIS_OP(log_softmax_grad, "z = g - exp(y) sum(g) along axis (log_softmax backward); no gradient", 2, infer_axis,
        MN_OPF_NOGRAD, NULL)
