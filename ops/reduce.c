/* ops/reduce.c: sum and mean over a set of axes (a bit mask), with keepdim,
 * and sum_to, the inverse of broadcasting that every broadcasting VJP uses.
 * Kernels coalesce runs of reduced / kept dims and pick a contiguous,
 * row-accumulating or strided loop; sums accumulate in double. */
#include "attrs.h"
#include "op.h"
#include <math.h>

extern const mn_op_def mn__op_sum, mn__op_mean;

static mn_status infer_reduce(mn_infer_ctx *c)
{
    const mn_reduce_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape, o = { 0 };
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input must be f32");
    if (s.ndim < MN_MAX_DIMS && (a->axes >> s.ndim))
        return mn__infer_fail(c, MN_ERR_INVALID, "axis out of range for %d dims", s.ndim);
    for (int i = 0; i < s.ndim; i++) {
        if (!(a->axes & (1u << i))) o.d[o.ndim++] = s.d[i];
        else if (a->keepdim) o.d[o.ndim++] = 1;
    }
    c->out = (mn_tdesc){ MN_F32, o };
    return MN_OK;
}

/* Coalesced view: dims[] alternating kept/reduced groups, red[] flags. */
static int groups(mn_shape s, unsigned axes, int64_t *dims, bool *red)
{
    int k = -1;
    for (int i = 0; i < s.ndim; i++) {
        bool r = (axes >> i) & 1u;
        if (s.d[i] == 1) continue;                 /* size-1 dims change nothing */
        if (k >= 0 && red[k] == r) dims[k] *= s.d[i];
        else { k++; dims[k] = s.d[i]; red[k] = r; }
    }
    return k + 1;
}

/* Output o of reduce_general. */
static float general_one(const float *x, int ng, const int64_t *dims, const bool *red, const int64_t *st, int64_t nred, int64_t o,
                         float scale)
{
    int64_t rem = o, base = 0;
    for (int i = ng - 1; i >= 0; i--)
        if (!red[i]) { base += (rem % dims[i]) * st[i]; rem /= dims[i]; }
    double s = 0;
    for (int64_t r = 0; r < nred; r++) {
        int64_t rr = r, off = base;
        for (int i = ng - 1; i >= 0; i--)
            if (red[i]) { off += (rr % dims[i]) * st[i]; rr /= dims[i]; }
        s += x[off];
    }
    return (float)(s * scale);
}

/* Columns [j0, j0 + MN_SUM_COLS) of an [R, K] sum over its rows, each a
 * sequential double sum from row 0 (the bits do not depend on the block
 * width). A full block has a constant width, so its inner loop compiles
 * to whole vectors with no remainder: a [1024, 1024] gate-gradient block
 * sums in about half the time of 256-column blocks of a variable width
 * (docs/performance.md, "cells2"). */
#define MN_SUM_COLS 128

static void column_block(const float *x, float *y, int64_t R, int64_t K, int64_t j0, float scale)
{
    int64_t w = K - j0 < MN_SUM_COLS ? K - j0 : MN_SUM_COLS;
    double acc[MN_SUM_COLS] = { 0 };
    if (w == MN_SUM_COLS)
        for (int64_t r = 0; r < R; r++) {
            const float *p = x + r * K + j0;
            for (int64_t j = 0; j < MN_SUM_COLS; j++) acc[j] += p[j];
        }
    else
        for (int64_t r = 0; r < R; r++) {
            const float *p = x + r * K + j0;
            for (int64_t j = 0; j < w; j++) acc[j] += p[j];
        }
    for (int64_t j = 0; j < w; j++) y[j0 + j] = (float)(acc[j] * scale);
}

/* Row k of a [K, R] sum over its contiguous rows. */
static float row_total(const float *x, int64_t R, int64_t k, float scale)
{
    double s = 0;
    for (int64_t r = 0; r < R; r++) s += x[k * R + r];
    return (float)(s * scale);
}

static void reduce_general(const float *x, float *y, int ng, const int64_t *dims, const bool *red,
                           float scale, int nthreads)
{
    int64_t st[2 * MN_MAX_DIMS], acc = 1, nout = 1, nred = 1;
    for (int i = ng - 1; i >= 0; i--) { st[i] = acc; acc *= dims[i]; }
    for (int i = 0; i < ng; i++) { if (red[i]) nred *= dims[i]; else nout *= dims[i]; }
    if (mn__serial(nthreads, nout * nred > MN_GRAIN)) {
        for (int64_t o = 0; o < nout; o++) y[o] = general_one(x, ng, dims, red, st, nred, o, scale);
        return;
    }
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t o = 0; o < nout; o++) y[o] = general_one(x, ng, dims, red, st, nred, o, scale);
}

static mn_status reduce_run(const mn_kernel_ctx *c, bool mean)
{
    const mn_reduce_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]);
    float *y = mn_f32(c->out);
    int64_t dims[MN_MAX_DIMS], n = mn_tensor_numel(&c->in[0]), nout = mn_tensor_numel(c->out);
    bool red[MN_MAX_DIMS];
    int ng = groups(c->in[0].shape, a->axes, dims, red);
    float scale = mean ? (nout ? (float)((double)nout / (double)n) : 1.0f) : 1.0f;
    if (n == 0) { for (int64_t i = 0; i < nout; i++) y[i] = mean ? NAN : 0.0f; return MN_OK; }
    if (ng == 0 || (ng == 1 && !red[0])) {              /* nothing reduced */
        for (int64_t i = 0; i < n; i++) y[i] = x[i];
        return MN_OK;
    }
    if (ng == 2 && red[0]) {                            /* [R, K]: accumulate rows */
        int64_t R = dims[0], K = dims[1];
        if (mn__serial(c->nthreads, n > MN_GRAIN)) {
            for (int64_t j0 = 0; j0 < K; j0 += MN_SUM_COLS) column_block(x, y, R, K, j0, scale);
            return MN_OK;
        }
        #pragma omp parallel for num_threads(c->nthreads) schedule(static)
        for (int64_t j0 = 0; j0 < K; j0 += MN_SUM_COLS) column_block(x, y, R, K, j0, scale);
        return MN_OK;
    }
    if (ng <= 2 && red[ng - 1]) {                       /* [K, R] or [R]: contiguous blocks */
        int64_t R = dims[ng - 1], K = ng == 2 ? dims[0] : 1;
        if (mn__serial(c->nthreads, n > MN_GRAIN)) {
            for (int64_t k = 0; k < K; k++) y[k] = row_total(x, R, k, scale);
            return MN_OK;
        }
        #pragma omp parallel for num_threads(c->nthreads) schedule(static)
        for (int64_t k = 0; k < K; k++) y[k] = row_total(x, R, k, scale);
        return MN_OK;
    }
    reduce_general(x, y, ng, dims, red, scale, c->nthreads);
    return MN_OK;
}

static mn_status sum_fwd(const mn_kernel_ctx *c) { return reduce_run(c, false); }
static mn_status mean_fwd(const mn_kernel_ctx *c) { return reduce_run(c, true); }

/* The bit mask of n axes of x (n = 0: all); ~0 for a bad or repeated
 * axis, which inference then reports with the op's name. */
static unsigned axes_mask(const mn_node *x, int n, const int *axes)
{
    int nd = x ? mn_node_shape(x).ndim : 0;
    unsigned m = n == 0 && nd ? (1u << nd) - 1 : 0;
    for (int i = 0; i < n; i++) {
        int ax = axes ? mn__axis(axes[i], nd) : -1;
        if (ax < 0 || (m & (1u << ax))) return ~0u;
        m |= 1u << ax;
    }
    return m;
}

static mn_node *reduce_node(mn_graph *g, const mn_op_def *op, mn_node *x, int n, const int *axes, bool keepdim)
{
    mn_reduce_attrs a = { axes_mask(x, n, axes), keepdim };
    return mn__node(g, op, &x, 1, &a);
}

mn_node *mn_sum(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim)
{
    return reduce_node(g, &mn__op_sum, x, n, axes, keepdim);
}
mn_node *mn_mean(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim)
{
    return reduce_node(g, &mn__op_mean, x, n, axes, keepdim);
}
mn_node *mn_sum_all(mn_graph *g, mn_node *x) { return mn_sum(g, x, 0, NULL, false); }

mn_node *mn_sum_to(mn_graph *g, mn_node *x, mn_shape shape)
{
    if (!x) return mn__node(g, &mn__op_sum, &x, 1, &(mn_reduce_attrs){ 0 });
    mn_shape s = mn_node_shape(x), b;
    if (mn_shape_eq(s, shape)) return x;
    char sa[96], sb[96];
    if (shape.ndim > s.ndim || mn_shape_broadcast(shape, s, &b) || !mn_shape_eq(b, s)) {
        mn__graph_fail(g, MN_ERR_SHAPE, "sum_to: cannot reduce %s to %s",
                              mn_shape_str(s, sa, sizeof sa), mn_shape_str(shape, sb, sizeof sb));
        return NULL;
    }
    mn_reduce_attrs a = { 0, true };
    int lead = s.ndim - shape.ndim;
    for (int i = 0; i < s.ndim; i++)
        if (i < lead || (shape.d[i - lead] == 1 && s.d[i] != 1)) a.axes |= 1u << i;
    mn_node *r = a.axes ? mn__node(g, &mn__op_sum, &x, 1, &a) : x;
    return mn_reshape(g, r, shape);
}

/* dx = expand(reshape(dy, keepdim shape), shape(x)) [/ count for mean] */
static mn_node *spread(mn_vjp_ctx *c)
{
    const mn_reduce_attrs *a = c->attrs;
    mn_shape xs = mn_node_shape(c->in[0]), ks = xs;
    for (int i = 0; i < xs.ndim; i++) if (a->axes & (1u << i)) ks.d[i] = 1;
    return mn_expand(c->g, mn_reshape(c->g, c->dy, ks), xs);
}

static mn_status vjp_sum(mn_vjp_ctx *c) { c->dx[0] = spread(c); return MN_OK; }
static mn_status vjp_mean(mn_vjp_ctx *c)
{
    int64_t nin = mn_shape_numel(mn_node_shape(c->in[0])), nout = mn_shape_numel(mn_node_shape(c->out));
    c->dx[0] = mn_scale(c->g, spread(c), nin ? (float)((double)nout / (double)nin) : 0.0f);
    return MN_OK;
}

/* One add per input element (default would be one per output element: a
 * column sum of [1024, 1024] counted as 1,024 FLOPs ran on one thread
 * beside tiny steps, the other thread idle; graph/schedule.c gives a step
 * of a million FLOPs or more every thread). */
static void cost_reduce(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)nin; (void)attrs;
    *flops = (double)mn_shape_numel(in[0].shape);
    *bytes = 4.0 * (double)(mn_shape_numel(in[0].shape) + mn_shape_numel(out->shape));
}

static void reduce_str(const void *p, char *buf, size_t n)
{
    const mn_reduce_attrs *a = p;
    size_t k = (size_t)snprintf(buf, n, "axes=(");
    for (int i = 0, first = 1; i < MN_MAX_DIMS && k < n; i++)
        if (a->axes & (1u << i)) { k += (size_t)snprintf(buf + k, n - k, first ? "%d" : ",%d", i); first = 0; }
    if (k < n) snprintf(buf + k, n - k, ")%s", a->keepdim ? " keepdim" : "");
}

const mn_op_def mn__op_sum = { MN_OP_RECORD,
    .name = "sum", .doc = "y = sum of x over axes; dx = expand(dy)",
    .arity = 1, .attr_size = sizeof(mn_reduce_attrs), MN__FIELDS(mn_reduce_attrs), .inplace = -1,
    .infer = infer_reduce, .forward = sum_fwd, .vjp = vjp_sum, .cost = cost_reduce, .attr_str = reduce_str,
};
const mn_op_def mn__op_mean = { MN_OP_RECORD,
    .name = "mean", .doc = "y = mean of x over axes; dx = expand(dy) / count",
    .arity = 1, .attr_size = sizeof(mn_reduce_attrs), MN__FIELDS(mn_reduce_attrs), .inplace = -1,
    .infer = infer_reduce, .forward = mean_fwd, .vjp = vjp_mean, .cost = cost_reduce, .attr_str = reduce_str,
};

/* ---- max, min, argmax, argmin, logsumexp over one axis ---- */

extern const mn_op_def mn__op_max, mn__op_min, mn__op_argmax, mn__op_argmin, mn__op_logsumexp,
    mn__op_var, mn__op_std, mn__op_gather_backward;

static mn_status infer_axis_reduce(mn_infer_ctx *c)
{
    const mn_axis_reduce_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape, o = { 0 };
    int ax = mn__axis(a->axis, s.ndim);
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input must be f32");
    if (ax < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, s.ndim);
    if (s.d[ax] == 0) return mn__infer_fail(c, MN_ERR_SHAPE, "cannot reduce an empty axis");
    for (int i = 0; i < s.ndim; i++) {
        if (i != ax) o.d[o.ndim++] = s.d[i];
        else if (a->keepdim) o.d[o.ndim++] = 1;
    }
    c->out = (mn_tdesc){ MN_F32, o };
    return MN_OK;
}

static mn_status infer_arg(mn_infer_ctx *c)
{
    mn_status s = infer_axis_reduce(c);
    c->out.dtype = MN_I32;
    return s;
}

/* Index of the first max (or min) of a strided row; NaN wins, as in torch. */
static int64_t arg_ext(const float *x, int64_t n, int64_t st, bool max)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++) {
        float v = x[i * st], b = x[best * st];
        if (b != b) break;
        if (v != v || (max ? v > b : v < b)) best = i;
    }
    return best;
}

static mn_status ext_run(const mn_kernel_ctx *c, bool max, bool index)
{
    const mn_axis_reduce_attrs *a = c->attrs;
    mn__split3 s = mn__split_at(c->in[0].shape, mn__axis(a->axis, c->in[0].shape.ndim));
    const float *x = mn_f32(&c->in[0]);
    int64_t rows = s.outer * s.inner;
    #pragma omp parallel for if (rows * s.dim > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + (r / s.inner) * s.dim * s.inner + r % s.inner;
        int64_t k = arg_ext(row, s.dim, s.inner, max);
        if (index) mn_i32(c->out)[r] = (int32_t)k;
        else mn_f32(c->out)[r] = row[k * s.inner];
    }
    return MN_OK;
}

static mn_status max_fwd(const mn_kernel_ctx *c) { return ext_run(c, true, false); }
static mn_status min_fwd(const mn_kernel_ctx *c) { return ext_run(c, false, false); }
static mn_status argmax_fwd(const mn_kernel_ctx *c) { return ext_run(c, true, true); }
static mn_status argmin_fwd(const mn_kernel_ctx *c) { return ext_run(c, false, true); }

static mn_status logsumexp_fwd(const mn_kernel_ctx *c)
{
    const mn_axis_reduce_attrs *a = c->attrs;
    mn__split3 s = mn__split_at(c->in[0].shape, mn__axis(a->axis, c->in[0].shape.ndim));
    const float *x = mn_f32(&c->in[0]);
    float *y = mn_f32(c->out);
    int64_t rows = s.outer * s.inner;
    #pragma omp parallel for if (rows * s.dim > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + (r / s.inner) * s.dim * s.inner + r % s.inner;
        float m = -INFINITY;
        for (int64_t i = 0; i < s.dim; i++) m = fmaxf(m, row[i * s.inner]);
        if (isinf(m)) { y[r] = m; continue; }        /* all -inf, or +inf present */
        double sum = 0;
        for (int64_t i = 0; i < s.dim; i++) sum += exp((double)(row[i * s.inner] - m));
        y[r] = m + (float)log(sum);
    }
    return MN_OK;
}

static mn_node *axis_reduce(mn_graph *g, const mn_op_def *op, mn_node *x, int axis, bool keepdim)
{
    mn_axis_reduce_attrs a = { axis, keepdim };
    return mn__node(g, op, &x, 1, &a);
}

mn_node *mn_max(mn_graph *g, mn_node *x, int axis, bool keepdim) { return axis_reduce(g, &mn__op_max, x, axis, keepdim); }
mn_node *mn_min(mn_graph *g, mn_node *x, int axis, bool keepdim) { return axis_reduce(g, &mn__op_min, x, axis, keepdim); }
mn_node *mn_argmax(mn_graph *g, mn_node *x, int axis, bool keepdim) { return axis_reduce(g, &mn__op_argmax, x, axis, keepdim); }
mn_node *mn_argmin(mn_graph *g, mn_node *x, int axis, bool keepdim) { return axis_reduce(g, &mn__op_argmin, x, axis, keepdim); }
mn_node *mn_logsumexp(mn_graph *g, mn_node *x, int axis, bool keepdim) { return axis_reduce(g, &mn__op_logsumexp, x, axis, keepdim); }

/* The reduced shape with the axis kept as 1. */
static mn_shape kept(mn_shape s, int axis)
{
    s.d[mn__axis(axis, s.ndim)] = 1;
    return s;
}

/* max/min: the whole gradient goes to the first extremal element:
 * dx = scatter of dy at argmax (gather_backward). */
static mn_status vjp_ext(mn_vjp_ctx *c, const mn_op_def *arg)
{
    const mn_axis_reduce_attrs *a = c->attrs;
    mn_shape xs = mn_node_shape(c->in[0]);
    mn_node *idx = axis_reduce(c->g, arg, c->in[0], a->axis, true);
    mn_scatter_attrs sa = { a->axis, xs };
    mn_node *in[2] = { mn_reshape(c->g, c->dy, kept(xs, a->axis)), idx };
    c->dx[0] = mn__node(c->g, &mn__op_gather_backward, in, 2, &sa);
    return MN_OK;
}
static mn_status vjp_max(mn_vjp_ctx *c) { return vjp_ext(c, &mn__op_argmax); }
static mn_status vjp_min(mn_vjp_ctx *c) { return vjp_ext(c, &mn__op_argmin); }

/* logsumexp: dx = dy exp(x - y) */
static mn_status vjp_logsumexp(mn_vjp_ctx *c)
{
    const mn_axis_reduce_attrs *a = c->attrs;
    mn_shape xs = mn_node_shape(c->in[0]), ks = kept(xs, a->axis);
    mn_node *p = mn_exp(c->g, mn_sub(c->g, c->in[0], mn_reshape(c->g, c->out, ks)));
    c->dx[0] = mn_mul(c->g, mn_reshape(c->g, c->dy, ks), p);
    return MN_OK;
}

/* ---- var and std (compositions: two passes, stable for large means) ---- */

static mn_status infer_var(mn_infer_ctx *c)
{
    const mn_var_attrs *a = c->attrs;
    mn_reduce_attrs r = { a->axes, a->keepdim };
    mn_infer_ctx f = { .nin = 1, .in = c->in, .attrs = &r, .msg = c->msg, .msglen = c->msglen };
    return infer_reduce(&f);
}

static mn_node *compose_var(mn_graph *g, mn_node *const *in, int nin, const void *attrs)
{
    const mn_var_attrs *a = attrs;
    mn_node *x = in[0];
    mn_reduce_attrs keep = { a->axes, true }, out = { a->axes, a->keepdim };
    int64_t n = mn_shape_numel(mn_node_shape(x)), m;
    mn_node *mean = mn__node(g, &mn__op_mean, &x, 1, &keep);
    mn_node *sq = mn_square(g, mn_sub(g, x, mean));
    mn_node *s = mn__node(g, &mn__op_sum, &sq, 1, &out);
    m = n / (s ? mn_shape_numel(mn_node_shape(s)) : 1);
    (void)nin;
    return mn_scale(g, s, 1.0f / ((float)m - a->correction));
}

static mn_node *compose_std(mn_graph *g, mn_node *const *in, int nin, const void *attrs)
{
    return mn_sqrt(g, compose_var(g, in, nin, attrs));
}

static mn_node *var_node(mn_graph *g, const mn_op_def *op, mn_node *x, int n, const int *axes, bool keepdim, float correction)
{
    mn_var_attrs a = { axes_mask(x, n, axes), keepdim, correction };
    return mn__node(g, op, &x, 1, &a);
}

mn_node *mn_var(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim, float correction)
{
    return var_node(g, &mn__op_var, x, n, axes, keepdim, correction);
}
mn_node *mn_std(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim, float correction)
{
    return var_node(g, &mn__op_std, x, n, axes, keepdim, correction);
}

static void axr_str(const void *p, char *buf, size_t n)
{
    const mn_axis_reduce_attrs *a = p;
    snprintf(buf, n, "axis=%d%s", a->axis, a->keepdim ? " keepdim" : "");
}

static void var_str(const void *p, char *buf, size_t n)
{
    const mn_var_attrs *a = p;
    snprintf(buf, n, "axes=0x%x correction=%g%s", a->axes, (double)a->correction, a->keepdim ? " keepdim" : "");
}

#define AXR_OP(nm, dc, inf, fl, vj)                                                         \
    const mn_op_def mn__op_##nm = { MN_OP_RECORD, .name = #nm, .doc = dc, .arity = 1,                    \
        .attr_size = sizeof(mn_axis_reduce_attrs), MN__FIELDS(mn_axis_reduce_attrs), .flags = fl, .inplace = -1, .infer = inf, \
        .forward = nm##_fwd, .vjp = vj, .attr_str = axr_str };

AXR_OP(max, "y = max of x along axis (NaN propagates); dx = dy at the first arg-max only", infer_axis_reduce, 0, vjp_max)
AXR_OP(min, "y = min of x along axis; dx = dy at the first arg-min only", infer_axis_reduce, 0, vjp_min)
AXR_OP(argmax, "y = i32 index of the first max along axis; no gradient", infer_arg, MN_OPF_NOGRAD, NULL)
AXR_OP(argmin, "y = i32 index of the first min along axis; no gradient", infer_arg, MN_OPF_NOGRAD, NULL)
AXR_OP(logsumexp, "y = m + log sum exp(x - m), m = max (stable); dx = dy exp(x - y)", infer_axis_reduce, 0, vjp_logsumexp)
const mn_op_def mn__op_var = { MN_OP_RECORD,
    .name = "var", .doc = "y = sum((x - mean)^2) / (N - correction) over axes (composite); dx = 2 (x - mean) dy / (N - c)",
    .arity = 1, .attr_size = sizeof(mn_var_attrs), MN__FIELDS(mn_var_attrs), .inplace = -1, .flags = MN_OPF_COMPOSITE,
    .infer = infer_var, .compose = compose_var, .attr_str = var_str,
};
const mn_op_def mn__op_std = { MN_OP_RECORD,
    .name = "std", .doc = "y = sqrt(var(x)) (composite); dx = dy (x - mean) / ((N - c) y)",
    .arity = 1, .attr_size = sizeof(mn_var_attrs), MN__FIELDS(mn_var_attrs), .inplace = -1, .flags = MN_OPF_COMPOSITE,
    .infer = infer_var, .compose = compose_std, .attr_str = var_str,
};
