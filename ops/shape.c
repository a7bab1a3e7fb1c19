/* ops/shape.c: ops that move or reinterpret data without arithmetic:
 * permute (transpose), reshape (an alias: same bytes, new shape) and expand
 * (broadcast_to). Their VJPs are the inverse movement. */
#include "attrs.h"
#include "op.h"
#include <string.h>

extern const mn_op_def mn__op_permute, mn__op_reshape, mn__op_expand;

/* ---- permute ---- */

static mn_status infer_permute(mn_infer_ctx *c)
{
    const mn_permute_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape;
    if (a->ndim != s.ndim)
        return mn__infer_fail(c, MN_ERR_SHAPE, "permutation of %d dims for a %d-dim input", a->ndim, s.ndim);
    unsigned seen = 0;
    c->out = c->in[0];
    for (int i = 0; i < s.ndim; i++) {
        int p = a->perm[i];
        if (p < 0 || p >= s.ndim || (seen & (1u << p)))
            return mn__infer_fail(c, MN_ERR_INVALID, "perm is not a permutation of 0..%d", s.ndim - 1);
        seen |= 1u << p;
        c->out.shape.d[i] = s.d[p];
    }
    return MN_OK;
}

/* Row r of y (shape os) gathered from x with element strides st. */
static void gather_row(const int32_t *x, int32_t *y, mn_shape os, const int64_t *st, int64_t r)
{
    int64_t inner = os.d[os.ndim - 1], sin = st[os.ndim - 1], rem = r, off = 0;
    for (int d = os.ndim - 2; d >= 0; d--) { off += (rem % os.d[d]) * st[d]; rem /= os.d[d]; }
    int32_t *yr = y + r * inner;
    for (int64_t j = 0; j < inner; j++) yr[j] = x[off + j * sin];
}

/* Every row of y (n elements, os.ndim >= 1): 4-byte elements of either dtype. */
static void gather_rows(const int32_t *x, int32_t *y, mn_shape os, const int64_t *st, int64_t n, int threads)
{
    int64_t inner = os.d[os.ndim - 1], rows = inner ? n / inner : 0;
    if (mn__serial(threads, n > MN_GRAIN)) {
        for (int64_t r = 0; r < rows; r++) gather_row(x, y, os, st, r);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) gather_row(x, y, os, st, r);
}

static mn_status permute_fwd(const mn_kernel_ctx *c)
{
    const mn_permute_attrs *a = c->attrs;
    mn_shape is = c->in[0].shape, os = c->out->shape;
    int nd = os.ndim;
    int64_t ist[MN_MAX_DIMS], st[MN_MAX_DIMS], n = mn_shape_numel(os);
    const int32_t *x = c->in[0].data;      /* 4-byte elements of either dtype */
    int32_t *y = c->out->data;
    if (nd == 0 || n == 0) { if (n) y[0] = x[0]; return MN_OK; }
    int64_t acc = 1;
    for (int i = nd - 1; i >= 0; i--) { ist[i] = acc; acc *= is.d[i]; }
    for (int i = 0; i < nd; i++) st[i] = ist[a->perm[i]];   /* input stride of output dim i */
    gather_rows(x, y, os, st, n, c->nthreads);
    return MN_OK;
}

mn_node *mn_permute(mn_graph *g, mn_node *x, int ndim, const int *perm)
{
    mn_permute_attrs a = { .ndim = ndim };
    if (ndim < 0 || ndim > MN_MAX_DIMS || (ndim && !perm)) ndim = a.ndim = -1;
    for (int i = 0; i < ndim; i++) a.perm[i] = perm[i];
    return mn__node(g, &mn__op_permute, &x, 1, &a);
}

mn_node *mn_transpose(mn_graph *g, mn_node *x, int d0, int d1)
{
    int nd = mn_node_shape(x).ndim, perm[MN_MAX_DIMS];
    int a = mn__axis(d0, nd), b = mn__axis(d1, nd);
    for (int i = 0; i < nd; i++) perm[i] = i;
    if (a < 0 || b < 0) perm[0] = -1;      /* rejected by inference with a message */
    else { perm[a] = b; perm[b] = a; }
    return mn_permute(g, x, nd, perm);
}

static mn_status vjp_permute(mn_vjp_ctx *c)
{
    const mn_permute_attrs *a = c->attrs;
    int inv[MN_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) inv[a->perm[i]] = i;
    c->dx[0] = mn_permute(c->g, c->dy, a->ndim, inv);
    return MN_OK;
}

static void permute_str(const void *p, char *buf, size_t n)
{
    const mn_permute_attrs *a = p;
    size_t k = (size_t)snprintf(buf, n, "perm=(");
    for (int i = 0; i < a->ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ",%d" : "%d", a->perm[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

/* ---- reshape ---- */

static mn_status infer_reshape(mn_infer_ctx *c)
{
    mn_shape s = ((const mn_shape_attrs *)c->attrs)->shape;
    int64_t known = 1, numel = mn_shape_numel(c->in[0].shape);
    int infer_at = -1;
    if (s.ndim < 0 || s.ndim > MN_MAX_DIMS) return mn__infer_fail(c, MN_ERR_SHAPE, "target has %d dims", s.ndim);
    for (int i = 0; i < s.ndim; i++) {
        if (s.d[i] == -1 && infer_at < 0) { infer_at = i; continue; }
        if (s.d[i] < 0) return mn__infer_fail(c, MN_ERR_SHAPE, "bad target dim %lld", (long long)s.d[i]);
        known *= s.d[i];
    }
    if (infer_at >= 0) {
        if (known == 0 || numel % known) return mn__infer_fail(c, MN_ERR_SHAPE, "cannot infer the -1 dim");
        s.d[infer_at] = numel / known;
        known = numel;
    }
    char b[96];
    if (known != numel)
        return mn__infer_fail(c, MN_ERR_SHAPE, "%lld elements cannot take the shape %s", (long long)numel, mn_shape_str(s, b, sizeof b));
    c->out = (mn_tdesc){ c->in[0].dtype, s };
    return MN_OK;
}

/* Only runs when the executor could not alias the input (copy). */
static mn_status reshape_fwd(const mn_kernel_ctx *c)
{
    if (c->out->data != c->in[0].data) memcpy(c->out->data, c->in[0].data, mn_tensor_bytes(c->out));
    return MN_OK;
}

mn_node *mn_reshape(mn_graph *g, mn_node *x, mn_shape shape)
{
    if (x && mn_shape_eq(mn_node_shape(x), shape)) return x;
    mn_shape_attrs a = { shape };
    return mn__node(g, &mn__op_reshape, &x, 1, &a);
}

static mn_status vjp_reshape(mn_vjp_ctx *c) { c->dx[0] = mn_reshape(c->g, c->dy, mn_node_shape(c->in[0])); return MN_OK; }

static int64_t reshape_alias(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    (void)in; (void)nin; (void)out; (void)attrs;
    return 0;
}

static void shape_str(const void *p, char *buf, size_t n) { mn_shape_str(((const mn_shape_attrs *)p)->shape, buf, n); }

/* ---- expand (broadcast_to) ---- */

static mn_status infer_expand(mn_infer_ctx *c)
{
    mn_shape s = ((const mn_shape_attrs *)c->attrs)->shape, r;
    char a[96], b[96];
    if (s.ndim < 0 || s.ndim > MN_MAX_DIMS || mn_shape_broadcast(c->in[0].shape, s, &r) || !mn_shape_eq(r, s))
        return mn__infer_fail(c, MN_ERR_SHAPE, "cannot broadcast %s to %s", mn_shape_str(c->in[0].shape, a, sizeof a),
                              mn_shape_str(s, b, sizeof b));
    c->out = (mn_tdesc){ c->in[0].dtype, s };
    return MN_OK;
}

/* expand is a view with stride 0 on the broadcast dims. */
static bool expand_view(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, int64_t *offset, int64_t *strides)
{
    (void)nin; (void)attrs;
    mn__bcast_strides(in[0].shape, out->shape, strides);
    *offset = 0;
    return true;
}

static mn_status expand_fwd(const mn_kernel_ctx *c)
{
    mn_shape is = c->in[0].shape, os = c->out->shape;
    int64_t n = mn_shape_numel(os), st[MN_MAX_DIMS], acc = 1;
    const int32_t *x = c->in[0].data;
    int32_t *y = c->out->data;
    for (int i = os.ndim - 1; i >= 0; i--) {
        int j = is.ndim - os.ndim + i;
        int64_t d = j >= 0 ? is.d[j] : 1;
        st[i] = d == 1 ? 0 : acc;
        acc *= d;
    }
    if (os.ndim == 0) { y[0] = x[0]; return MN_OK; }
    gather_rows(x, y, os, st, n, c->nthreads);
    return MN_OK;
}

mn_node *mn_expand(mn_graph *g, mn_node *x, mn_shape shape)
{
    if (x && mn_shape_eq(mn_node_shape(x), shape)) return x;
    mn_shape_attrs a = { shape };
    return mn__node(g, &mn__op_expand, &x, 1, &a);
}

static mn_status vjp_expand(mn_vjp_ctx *c) { c->dx[0] = mn_sum_to(c->g, c->dy, mn_node_shape(c->in[0])); return MN_OK; }

static void move_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)nin; (void)attrs;
    *flops = 0;
    *bytes = 4.0 * (double)(mn_shape_numel(in[0].shape) + mn_shape_numel(out->shape));
}

const mn_op_def mn__op_permute = { MN_OP_RECORD,
    .name = "permute", .doc = "y = x with dims reordered by perm; dx = permute(dy, perm^-1)",
    .arity = 1, .attr_size = sizeof(mn_permute_attrs), MN__FIELDS(mn_permute_attrs), .inplace = -1,
    .infer = infer_permute, .forward = permute_fwd, .vjp = vjp_permute, .cost = move_cost, .attr_str = permute_str,
};
const mn_op_def mn__op_reshape = { MN_OP_RECORD,
    .name = "reshape", .doc = "y = x viewed with a new shape (no copy); dx = reshape(dy, shape(x))",
    .arity = 1, .attr_size = sizeof(mn_shape_attrs), MN__FIELDS(mn_shape_attrs), .inplace = 0,
    .infer = infer_reshape, .forward = reshape_fwd, .vjp = vjp_reshape, .cost = move_cost, .attr_str = shape_str,
    .traits.alias_offset = reshape_alias,
};
const mn_op_def mn__op_expand = { MN_OP_RECORD,
    .name = "expand", .doc = "y = x broadcast to shape (broadcast_to); dx = sum_to(dy, shape(x))",
    .arity = 1, .attr_size = sizeof(mn_shape_attrs), MN__FIELDS(mn_shape_attrs), .inplace = -1,
    .infer = infer_expand, .forward = expand_fwd, .vjp = vjp_expand, .cost = move_cost, .attr_str = shape_str,
    .traits.view = expand_view,
};
