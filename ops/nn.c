/* ops/nn.c: softmax and log_softmax over one axis (max-subtracted, so
 * stable for any input) and their backward helpers. Every kernel views
 * its tensor as [outer, n, inner] with the op's axis in the middle. */
#include "attrs.h"
#include "op.h"
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

typedef struct { int64_t outer, n, inner; } split3;

static split3 split_at(mn_shape s, int axis)
{
    split3 r = { 1, 1, 1 };
    axis = mn__axis(axis, s.ndim);
    for (int i = 0; i < s.ndim; i++) {
        if (i < axis) r.outer *= s.d[i];
        else if (i == axis) r.n = s.d[i];
        else r.inner *= s.d[i];
    }
    return r;
}

/* One softmax row of n elements with stride st; log selects log_softmax. */
static void softmax_row(const float *x, float *y, int64_t n, int64_t st, bool log)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, x[i * st]);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += exp((double)(x[i * st] - m));
    if (log) {
        float lse = m + (float)logf((float)s);
        for (int64_t i = 0; i < n; i++) y[i * st] = x[i * st] - lse;
    } else {
        float inv = (float)(1.0 / s);
        for (int64_t i = 0; i < n; i++) y[i * st] = expf(x[i * st] - m) * inv;
    }
}

static mn_status run_softmax(const mn_kernel_ctx *c, bool log)
{
    split3 d = split_at(c->in[0].shape, ((const mn_axis_attrs *)c->attrs)->axis);
    const float *x = mn_f32(&c->in[0]);
    float *y = mn_f32(c->out);
    int64_t rows = d.outer * d.inner;
    #pragma omp parallel for if (rows * d.n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / d.inner, j = r % d.inner, base = o * d.n * d.inner + j;
        softmax_row(x + base, y + base, d.n, d.inner, log);
    }
    return MN_OK;
}

static mn_status softmax_fwd(const mn_kernel_ctx *c) { return run_softmax(c, false); }
static mn_status log_softmax_fwd(const mn_kernel_ctx *c) { return run_softmax(c, true); }

/* softmax_grad(y, g) = y (g - sum(g y)); log_softmax_grad(y, g) = g - exp(y) sum(g) */
static mn_status run_grad(const mn_kernel_ctx *c, bool log)
{
    split3 d = split_at(c->in[0].shape, ((const mn_axis_attrs *)c->attrs)->axis);
    const float *y = mn_f32(&c->in[0]), *g = mn_f32(&c->in[1]);
    float *dx = mn_f32(c->out);
    int64_t rows = d.outer * d.inner, st = d.inner;
    #pragma omp parallel for if (rows * d.n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = (r / d.inner) * d.n * d.inner + r % d.inner;
        double s = 0;
        for (int64_t i = 0; i < d.n; i++) s += log ? g[base + i * st] : (double)g[base + i * st] * y[base + i * st];
        for (int64_t i = 0; i < d.n; i++) {
            int64_t k = base + i * st;
            dx[k] = log ? g[k] - expf(y[k]) * (float)s : y[k] * (g[k] - (float)s);
        }
    }
    return MN_OK;
}

static mn_status softmax_grad_fwd(const mn_kernel_ctx *c) { return run_grad(c, false); }
static mn_status log_softmax_grad_fwd(const mn_kernel_ctx *c) { return run_grad(c, true); }

static mn_node *axis_node(mn_graph *g, const mn_op_def *op, mn_node *const *in, int nin, int axis)
{
    mn_axis_attrs a = { axis };
    return mn__node(g, op, in, nin, &a);
}

mn_node *mn_softmax(mn_graph *g, mn_node *x, int axis) { return axis_node(g, &mn__op_softmax, &x, 1, axis); }
mn_node *mn_log_softmax(mn_graph *g, mn_node *x, int axis) { return axis_node(g, &mn__op_log_softmax, &x, 1, axis); }

static mn_status vjp_softmax(mn_vjp_ctx *c)
{
    mn_node *in[2] = { c->out, c->dy };
    c->dx[0] = axis_node(c->g, &mn__op_softmax_grad, in, 2, ((const mn_axis_attrs *)c->attrs)->axis);
    return MN_OK;
}

static mn_status vjp_log_softmax(mn_vjp_ctx *c)
{
    mn_node *in[2] = { c->out, c->dy };
    c->dx[0] = axis_node(c->g, &mn__op_log_softmax_grad, in, 2, ((const mn_axis_attrs *)c->attrs)->axis);
    return MN_OK;
}

static void axis_str(const void *p, char *buf, size_t n) { snprintf(buf, n, "axis=%d", ((const mn_axis_attrs *)p)->axis); }

static void softmax_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)attrs;
    *flops = 5.0 * (double)mn_shape_numel(out->shape);
    *bytes = 4.0 * (double)(nin + 1) * (double)mn_shape_numel(in[0].shape);
}

#define AXIS_OP(nm, dc, ar, fl, vj)                                                           \
    const mn_op_def mn__op_##nm = { .name = #nm, .doc = dc, .arity = ar,                      \
        .attr_size = sizeof(mn_axis_attrs), .flags = fl, .inplace = ar - 1, .infer = infer_axis, \
        .forward = nm##_fwd, .vjp = vj, .cost = softmax_cost, .attr_str = axis_str };

AXIS_OP(softmax, "y = exp(x - max) / sum exp(x - max) along axis; dx = y (dy - sum(dy y))", 1, 0, vjp_softmax)
AXIS_OP(log_softmax, "y = x - logsumexp(x) along axis; dx = dy - exp(y) sum(dy)", 1, 0, vjp_log_softmax)
AXIS_OP(softmax_grad, "z = y (g - sum(g y)) along axis (softmax backward); no gradient", 2,
        MN_OPF_NOGRAD | MN_OPF_BACKWARD, NULL)
AXIS_OP(log_softmax_grad, "z = g - exp(y) sum(g) along axis (log_softmax backward); no gradient", 2,
        MN_OPF_NOGRAD | MN_OPF_BACKWARD, NULL)
