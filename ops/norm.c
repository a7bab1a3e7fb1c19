/* ops/norm.c: layer normalisation as two graph values: layer_norm_stats
 * (mean and rstd per row, no gradient) and layer_norm, which reads them.
 * The backward reuses the forward's stats (an edge of the graph, nothing
 * hidden); its dx accounts for the stats' dependence on x, and one
 * layer_norm_param_grad pass gives the weight and bias gradients together
 * (issue 22: they were a recomputed xhat, a product and two sums).
 * Statistics are two-pass in double, so rows with a large mean stay accurate. */
#include "attrs.h"
#include "op.h"
#include "fastmath.h"
#include <math.h>

extern const mn_op_def mn__op_layer_norm_stats, mn__op_layer_norm, mn__op_layer_norm_backward, mn__op_layer_norm_param_grad;

/* Row length D = product of the last ndims dims. */
static mn_status norm_dims(mn_infer_ctx *c, mn_shape s, const mn_ln_attrs *a, int64_t *rows, int64_t *D)
{
    if (a->ndims < 1 || a->ndims > s.ndim)
        return mn__infer_fail(c, MN_ERR_INVALID, "normalizes %d trailing dims of a %d-dim input", a->ndims, s.ndim);
    if (!(a->eps >= 0)) return mn__infer_fail(c, MN_ERR_INVALID, "eps %g must be >= 0", (double)a->eps);
    *D = 1;
    for (int i = s.ndim - a->ndims; i < s.ndim; i++) *D *= s.d[i];
    *rows = *D ? mn_shape_numel(s) / *D : 0;
    return MN_OK;
}

static mn_status infer_stats(mn_infer_ctx *c)
{
    int64_t R = 0, D = 0;
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input must be f32");
    mn_status s = norm_dims(c, c->in[0].shape, c->attrs, &R, &D);
    if (!s) c->out = (mn_tdesc){ MN_F32, MN_SHAPE(R, 2) };
    return s;
}

static mn_status stats_fwd(const mn_kernel_ctx *c)
{
    const mn_ln_attrs *a = c->attrs;
    int64_t R = c->out->shape.d[0], D = R ? mn_tensor_numel(&c->in[0]) / R : 0;
    const float *x = mn_f32(&c->in[0]);
    float *st = mn_f32(c->out);
    #pragma omp parallel for if (R * D > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *row = x + r * D;
        double m = mn__row_sum(row, D) / (double)D, v = mn__row_sqdev(row, D, m);   /* lane sums: they vectorise */
        st[2 * r] = (float)m;
        st[2 * r + 1] = (float)(1.0 / sqrt(v / (double)D + a->eps));
    }
    return MN_OK;
}

/* layer_norm(x, stats [, weight [, bias]]) and layer_norm_backward(x, stats [, weight], dy) */
static mn_status check_common(mn_infer_ctx *c, int nparams, int64_t *D)
{
    const mn_ln_attrs *a = c->attrs;
    int64_t R = 0;
    mn_status s = norm_dims(c, c->in[0].shape, a, &R, D);
    if (s) return s;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input %d must be f32", i);
    if (!mn_shape_eq(c->in[1].shape, MN_SHAPE(R, 2))) return mn__infer_fail(c, MN_ERR_SHAPE, "stats must be [%lld, 2]", (long long)R);
    mn_shape ns = { .ndim = a->ndims };
    for (int i = 0; i < a->ndims; i++) ns.d[i] = c->in[0].shape.d[c->in[0].shape.ndim - a->ndims + i];
    for (int i = 2; i < 2 + nparams; i++)
        if (!mn_shape_eq(c->in[i].shape, ns)) {
            char w[96], n[96];
            return mn__infer_fail(c, MN_ERR_SHAPE, "%s has shape %s, normalized shape is %s", i == 2 ? "weight" : "bias",
                                  mn_shape_str(c->in[i].shape, w, sizeof w), mn_shape_str(ns, n, sizeof n));
        }
    return MN_OK;
}

static mn_status infer_ln(mn_infer_ctx *c)
{
    int64_t D = 0;
    if (c->nin < 2 || c->nin > 4) return mn__infer_fail(c, MN_ERR_INVALID, "takes x, stats and optional weight and bias");
    mn_status s = check_common(c, c->nin - 2, &D);
    if (!s) c->out = c->in[0];
    return s;
}

static mn_status infer_ln_back(mn_infer_ctx *c)
{
    int64_t D = 0;
    if (c->nin < 3 || c->nin > 4) return mn__infer_fail(c, MN_ERR_INVALID, "takes x, stats, optional weight, dy");
    mn_status s = check_common(c, c->nin - 3, &D);
    if (s) return s;
    if (!mn_shape_eq(c->in[c->nin - 1].shape, c->in[0].shape)) return mn__infer_fail(c, MN_ERR_SHAPE, "dy must have x's shape");
    c->out = c->in[0];
    return MN_OK;
}

static mn_status ln_fwd(const mn_kernel_ctx *c)
{
    int64_t R = c->in[1].shape.d[0], D = R ? mn_tensor_numel(&c->in[0]) / R : 0;
    const float *x = mn_f32(&c->in[0]), *st = mn_f32(&c->in[1]);
    const float *w = c->nin > 2 ? mn_f32(&c->in[2]) : NULL, *b = c->nin > 3 ? mn_f32(&c->in[3]) : NULL;
    float *y = mn_f32(c->out);
    #pragma omp parallel for if (R * D > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        float m = st[2 * r], rs = st[2 * r + 1];
        const float *xr = x + r * D;
        float *yr = y + r * D;
        for (int64_t i = 0; i < D; i++) {
            float v = (xr[i] - m) * rs;
            yr[i] = (w ? v * w[i] : v) + (b ? b[i] : 0.0f);
        }
    }
    return MN_OK;
}

/* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w */
static mn_status ln_back_fwd(const mn_kernel_ctx *c)
{
    int64_t R = c->in[1].shape.d[0], D = R ? mn_tensor_numel(&c->in[0]) / R : 0;
    const float *x = mn_f32(&c->in[0]), *st = mn_f32(&c->in[1]), *dy = mn_f32(&c->in[c->nin - 1]);
    const float *w = c->nin == 4 ? mn_f32(&c->in[2]) : NULL;
    float *dx = mn_f32(c->out);
    #pragma omp parallel for if (R * D > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        float m = st[2 * r], rs = st[2 * r + 1];
        const float *xr = x + r * D, *gr = dy + r * D;
        double sg = 0, sgx = 0, ag[8] = { 0 }, agx[8] = { 0 };
        int64_t i0 = 0;
        for (; i0 + 8 <= D; i0 += 8)                 /* lane sums: they vectorise */
            for (int j = 0; j < 8; j++) {
                double g = w ? gr[i0 + j] * w[i0 + j] : gr[i0 + j];
                ag[j] += g;
                agx[j] += g * (xr[i0 + j] - m) * rs;
            }
        for (int64_t i = i0; i < D; i++) {
            double g = w ? gr[i] * w[i] : gr[i];
            sg += g;
            sgx += g * (xr[i] - m) * rs;
        }
        for (int j = 0; j < 8; j++) { sg += ag[j]; sgx += agx[j]; }
        float mg = (float)(sg / (double)D), mgx = (float)(sgx / (double)D);
        for (int64_t i = 0; i < D; i++) {
            float g = w ? gr[i] * w[i] : gr[i];
            dx[r * D + i] = rs * (g - mg - (xr[i] - m) * rs * mgx);
        }
    }
    return MN_OK;
}

/* layer_norm_param_grad(x, stats, dy) -> [2, D]: sum over rows of dy xhat and of dy */
static mn_status infer_ln_param_grad(mn_infer_ctx *c)
{
    int64_t D = 0;
    if (c->nin != 3) return mn__infer_fail(c, MN_ERR_INVALID, "takes x, stats, dy");
    mn_status s = check_common(c, 0, &D);
    if (s) return s;
    if (!mn_shape_eq(c->in[2].shape, c->in[0].shape)) return mn__infer_fail(c, MN_ERR_SHAPE, "dy must have x's shape");
    c->out = (mn_tdesc){ MN_F32, MN_SHAPE(2, D) };
    return MN_OK;
}

/* Columns in blocks of 64, each block's rows summed in order in double:
 * the result does not depend on the thread count. */
static mn_status ln_param_grad_fwd(const mn_kernel_ctx *c)
{
    int64_t R = c->in[1].shape.d[0], D = c->out->shape.d[1], nb = (D + 63) / 64;
    const float *x = mn_f32(&c->in[0]), *st = mn_f32(&c->in[1]), *dy = mn_f32(&c->in[2]);
    float *o = mn_f32(c->out);
    #pragma omp parallel for if (R * D > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t c0 = 64 * b, n = D - c0 < 64 ? D - c0 : 64;
        double sw[64] = { 0 }, sb[64] = { 0 };
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x + r * D + c0, *gr = dy + r * D + c0;
            float m = st[2 * r], rs = st[2 * r + 1];
            for (int64_t i = 0; i < n; i++) {
                sw[i] += (double)(gr[i] * ((xr[i] - m) * rs));
                sb[i] += (double)gr[i];
            }
        }
        for (int64_t i = 0; i < n; i++) {
            o[c0 + i] = (float)sw[i];
            o[D + c0 + i] = (float)sb[i];
        }
    }
    return MN_OK;
}

/* dx = layer_norm_backward; dw, db = the rows of layer_norm_param_grad
 * (db alone, for a frozen weight: sum_to(dy)); stats get none */
static mn_status vjp_ln(mn_vjp_ctx *c)
{
    mn_graph *g = c->g;
    if (c->needs[0]) {
        mn_node *in[4] = { c->in[0], c->in[1], c->nin > 2 ? c->in[2] : c->dy, c->dy };
        c->dx[0] = mn__node(g, &mn__op_layer_norm_backward, in, c->nin > 2 ? 4 : 3, c->attrs);
    }
    bool dw = c->nin > 2 && c->needs[2], db = c->nin > 3 && c->needs[3];
    if (!dw) {
        if (db) c->dx[3] = mn_sum_to(g, c->dy, mn_node_shape(c->in[3]));
        return MN_OK;
    }
    mn_node *in[3] = { c->in[0], c->in[1], c->dy };
    mn_node *pg = mn__node(g, &mn__op_layer_norm_param_grad, in, 3, c->attrs);
    c->dx[2] = mn_reshape(g, mn_slice(g, pg, 0, 0, 1, 1), mn_node_shape(c->in[2]));
    if (db) c->dx[3] = mn_reshape(g, mn_slice(g, pg, 0, 1, 2, 1), mn_node_shape(c->in[3]));
    return MN_OK;
}

mn_node *mn_layer_norm_stats(mn_graph *g, mn_node *x, int ndims, float eps)
{
    mn_ln_attrs a = { ndims, eps };
    return mn__node(g, &mn__op_layer_norm_stats, &x, 1, &a);
}

mn_node *mn_layer_norm_op(mn_graph *g, mn_node *x, int ndims, mn_node *weight, mn_node *bias, float eps)
{
    mn_ln_attrs a = { ndims, eps };
    if (bias && !weight) { mn__graph_fail(g, MN_ERR_INVALID, "layer_norm: a bias needs a weight"); return NULL; }
    mn_node *in[4] = { x, mn_layer_norm_stats(g, x, ndims, eps), weight, bias };
    return mn__node(g, &mn__op_layer_norm, in, 2 + (weight != NULL) + (bias != NULL), &a);
}

static void ln_str(const void *p, char *buf, size_t n)
{
    const mn_ln_attrs *a = p;
    snprintf(buf, n, "ndims=%d eps=%g", a->ndims, (double)a->eps);
}

const mn_op_def mn__op_layer_norm_stats = { MN_OP_RECORD,
    .name = "layer_norm_stats", .doc = "s[r] = (mean, 1/sqrt(var + eps)) of each row over the last ndims dims; no gradient",
    .arity = 1, .attr_size = sizeof(mn_ln_attrs), MN__FIELDS(mn_ln_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_stats, .forward = stats_fwd, .attr_str = ln_str,
};
const mn_op_def mn__op_layer_norm = { MN_OP_RECORD,
    .name = "layer_norm", .doc = "y = (x - mean) rstd w + b with (mean, rstd) = stats(x); dx = layer_norm_backward, (dw, db) = layer_norm_param_grad",
    .arity = -1, .attr_size = sizeof(mn_ln_attrs), MN__FIELDS(mn_ln_attrs), .inplace = -1,
    .infer = infer_ln, .forward = ln_fwd, .vjp = vjp_ln, .attr_str = ln_str,
};
const mn_op_def mn__op_layer_norm_backward = { MN_OP_RECORD,
    .name = "layer_norm_backward", .doc = "dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w (layer_norm backward); no gradient",
    .arity = -1, .attr_size = sizeof(mn_ln_attrs), MN__FIELDS(mn_ln_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_ln_back, .forward = ln_back_fwd, .attr_str = ln_str,
};
const mn_op_def mn__op_layer_norm_param_grad = { MN_OP_RECORD,
    .name = "layer_norm_param_grad", .doc = "z[0] = sum over rows of dy xhat, z[1] = sum of dy: [2, D] (layer_norm's dw and db); no gradient",
    .arity = 3, .attr_size = sizeof(mn_ln_attrs), MN__FIELDS(mn_ln_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_ln_param_grad, .forward = ln_param_grad_fwd, .attr_str = ln_str,
};
