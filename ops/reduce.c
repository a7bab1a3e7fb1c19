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

static void reduce_general(const float *x, float *y, int ng, const int64_t *dims, const bool *red,
                           float scale, int nthreads)
{
    int64_t st[2 * MN_MAX_DIMS], acc = 1, nout = 1, nred = 1;
    for (int i = ng - 1; i >= 0; i--) { st[i] = acc; acc *= dims[i]; }
    for (int i = 0; i < ng; i++) { if (red[i]) nred *= dims[i]; else nout *= dims[i]; }
    #pragma omp parallel for if (nout * nred > MN_GRAIN) num_threads(nthreads) schedule(static)
    for (int64_t o = 0; o < nout; o++) {
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
        y[o] = (float)(s * scale);
    }
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
        #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
        for (int64_t j0 = 0; j0 < K; j0 += 256) {
            int64_t j1 = j0 + 256 < K ? j0 + 256 : K;
            double acc[256] = { 0 };
            for (int64_t r = 0; r < R; r++)
                for (int64_t j = j0; j < j1; j++) acc[j - j0] += x[r * K + j];
            for (int64_t j = j0; j < j1; j++) y[j] = (float)(acc[j - j0] * scale);
        }
        return MN_OK;
    }
    if (ng <= 2 && red[ng - 1]) {                       /* [K, R] or [R]: contiguous blocks */
        int64_t R = dims[ng - 1], K = ng == 2 ? dims[0] : 1;
        #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t r = 0; r < R; r++) s += x[k * R + r];
            y[k] = (float)(s * scale);
        }
        return MN_OK;
    }
    reduce_general(x, y, ng, dims, red, scale, c->nthreads);
    return MN_OK;
}

static mn_status sum_fwd(const mn_kernel_ctx *c) { return reduce_run(c, false); }
static mn_status mean_fwd(const mn_kernel_ctx *c) { return reduce_run(c, true); }

static mn_node *reduce_node(mn_graph *g, const mn_op_def *op, mn_node *x, int n, const int *axes, bool keepdim)
{
    mn_reduce_attrs a = { 0, keepdim };
    int nd = x ? mn_node_shape(x).ndim : 0;
    if (n == 0) a.axes = nd ? (1u << nd) - 1 : 0;
    for (int i = 0; i < n; i++) {
        int ax = axes ? mn__axis(axes[i], nd) : -1;
        if (ax < 0 || (a.axes & (1u << ax))) { a.axes = ~0u; break; }   /* inference reports it */
        a.axes |= 1u << ax;
    }
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

static void reduce_str(const void *p, char *buf, size_t n)
{
    const mn_reduce_attrs *a = p;
    size_t k = (size_t)snprintf(buf, n, "axes=(");
    for (int i = 0, first = 1; i < MN_MAX_DIMS && k < n; i++)
        if (a->axes & (1u << i)) { k += (size_t)snprintf(buf + k, n - k, first ? "%d" : ",%d", i); first = 0; }
    if (k < n) snprintf(buf + k, n - k, ")%s", a->keepdim ? " keepdim" : "");
}

const mn_op_def mn__op_sum = {
    .name = "sum", .doc = "y = sum of x over axes; dx = expand(dy)",
    .arity = 1, .attr_size = sizeof(mn_reduce_attrs), .inplace = -1,
    .infer = infer_reduce, .forward = sum_fwd, .vjp = vjp_sum, .attr_str = reduce_str,
};
const mn_op_def mn__op_mean = {
    .name = "mean", .doc = "y = mean of x over axes; dx = expand(dy) / count",
    .arity = 1, .attr_size = sizeof(mn_reduce_attrs), .inplace = -1,
    .infer = infer_reduce, .forward = mean_fwd, .vjp = vjp_mean, .attr_str = reduce_str,
};
