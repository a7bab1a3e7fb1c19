/* ops/util.c: value makers and conversions: fill, zeros_like, ones_like,
 * arange, one_hot, cast. None carries a gradient (cast f32 -> f32 is the
 * identity and never builds a node). */
#include "attrs.h"
#include "op.h"
#include <math.h>

extern const mn_op_def mn__op_fill, mn__op_zeros_like, mn__op_ones_like, mn__op_arange, mn__op_one_hot, mn__op_cast;

static mn_status check_dtype(mn_infer_ctx *c, mn_dtype t)
{
    if (t != MN_F32 && t != MN_I32) return mn__infer_fail(c, MN_ERR_DTYPE, "unknown dtype %d", (int)t);
    return MN_OK;
}

static mn_status infer_fill(mn_infer_ctx *c)
{
    const mn_fill_attrs *a = c->attrs;
    c->out = (mn_tdesc){ a->dtype, a->shape };
    mn_status s = mn__infer_shape_attr(c, a->shape);
    return s ? s : check_dtype(c, a->dtype);
}

static mn_status fill_fwd(const mn_kernel_ctx *c)
{
    const mn_fill_attrs *a = c->attrs;
    int64_t n = mn_tensor_numel(c->out);
    for (int64_t i = 0; i < n; i++) {
        if (a->dtype == MN_I32) mn_i32(c->out)[i] = (int32_t)a->value;
        else mn_f32(c->out)[i] = a->value;
    }
    return MN_OK;
}

mn_node *mn_fill(mn_graph *g, mn_shape shape, float value, mn_dtype dtype)
{
    mn_fill_attrs a = { shape, value, dtype };
    return mn__node(g, &mn__op_fill, NULL, 0, &a);
}

static mn_node *compose_like(mn_graph *g, mn_node *x, float v)
{
    return mn_fill(g, mn_node_shape(x), v, mn_node_dtype(x));
}
static mn_node *compose_zeros(mn_graph *g, mn_node *const *in, int nin, const void *a) { (void)nin; (void)a; return compose_like(g, in[0], 0.0f); }
static mn_node *compose_ones(mn_graph *g, mn_node *const *in, int nin, const void *a) { (void)nin; (void)a; return compose_like(g, in[0], 1.0f); }
mn_node *mn_zeros_like(mn_graph *g, mn_node *x) { return mn__node(g, &mn__op_zeros_like, &x, 1, NULL); }
mn_node *mn_ones_like(mn_graph *g, mn_node *x) { return mn__node(g, &mn__op_ones_like, &x, 1, NULL); }

/* arange: ceil((end - start) / step) values start + i step */
static mn_status infer_arange(mn_infer_ctx *c)
{
    const mn_arange_attrs *a = c->attrs;
    if (a->step == 0 || !isfinite(a->start) || !isfinite(a->end) || !isfinite(a->step))
        return mn__infer_fail(c, MN_ERR_INVALID, "step must be nonzero and bounds finite");
    double n = ceil((a->end - a->start) / a->step);
    if (n < 0) return mn__infer_fail(c, MN_ERR_INVALID, "the step goes away from end");
    c->out = (mn_tdesc){ a->dtype, MN_SHAPE((int64_t)n) };
    return check_dtype(c, a->dtype);
}

static mn_status arange_fwd(const mn_kernel_ctx *c)
{
    const mn_arange_attrs *a = c->attrs;
    int64_t n = mn_tensor_numel(c->out);
    for (int64_t i = 0; i < n; i++) {
        double v = a->start + (double)i * a->step;
        if (a->dtype == MN_I32) mn_i32(c->out)[i] = (int32_t)v;
        else mn_f32(c->out)[i] = (float)v;
    }
    return MN_OK;
}

mn_node *mn_arange(mn_graph *g, double start, double end, double step, mn_dtype dtype)
{
    mn_arange_attrs a = { start, end, step, dtype };
    return mn__node(g, &mn__op_arange, NULL, 0, &a);
}

static mn_status infer_one_hot(mn_infer_ctx *c)
{
    const mn_one_hot_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape;
    if (c->in[0].dtype != MN_I32) return mn__infer_fail(c, MN_ERR_DTYPE, "indices must be i32");
    if (a->num_classes <= 0) return mn__infer_fail(c, MN_ERR_INVALID, "num_classes %d must be positive", a->num_classes);
    if (s.ndim >= MN_MAX_DIMS) return mn__infer_fail(c, MN_ERR_SHAPE, "too many dims");
    s.d[s.ndim++] = a->num_classes;
    c->out = (mn_tdesc){ a->dtype, s };
    return check_dtype(c, a->dtype);
}

static mn_status one_hot_fwd(const mn_kernel_ctx *c)
{
    const mn_one_hot_attrs *a = c->attrs;
    int64_t n = mn_tensor_numel(&c->in[0]), C = a->num_classes;
    const int32_t *t = mn_i32(&c->in[0]);
    for (int64_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= C) return mn__kernel_fail(c, "class %d at position %lld is outside [0, %lld)", t[i], (long long)i, (long long)C);
    for (int64_t i = 0; i < n * C; i++) {
        bool on = t[i / C] == i % C;
        if (a->dtype == MN_I32) mn_i32(c->out)[i] = on;
        else mn_f32(c->out)[i] = on ? 1.0f : 0.0f;
    }
    return MN_OK;
}

mn_node *mn_one_hot(mn_graph *g, mn_node *indices, int num_classes, mn_dtype dtype)
{
    mn_one_hot_attrs a = { num_classes, dtype };
    return mn__node(g, &mn__op_one_hot, &indices, 1, &a);
}

static mn_status infer_cast(mn_infer_ctx *c)
{
    const mn_cast_attrs *a = c->attrs;
    c->out = (mn_tdesc){ a->dtype, c->in[0].shape };
    return check_dtype(c, a->dtype);
}

/* f32 -> i32 in range: truncated toward zero (as torch's .to(torch.int32));
 * beyond i32's range it saturates and NaN gives 0 (C leaves those undefined). */
static int32_t f32_to_i32(float v)
{
    if (v != v) return 0;
    if (v >= 2147483648.0f) return INT32_MAX;
    if (v < -2147483648.0f) return INT32_MIN;
    return (int32_t)v;
}

static mn_status cast_fwd(const mn_kernel_ctx *c)
{
    int64_t n = mn_tensor_numel(c->out);
    bool from_f = c->in[0].dtype == MN_F32, to_f = c->out->dtype == MN_F32;
    for (int64_t i = 0; i < n; i++) {
        if (from_f && !to_f) mn_i32(c->out)[i] = f32_to_i32(mn_f32(&c->in[0])[i]);
        else if (!from_f && to_f) mn_f32(c->out)[i] = (float)mn_i32(&c->in[0])[i];
        else mn_i32(c->out)[i] = mn_i32(&c->in[0])[i];
    }
    return MN_OK;
}

mn_node *mn_cast(mn_graph *g, mn_node *x, mn_dtype dtype)
{
    if (x && mn_node_dtype(x) == dtype) return x;
    mn_cast_attrs a = { dtype };
    return mn__node(g, &mn__op_cast, &x, 1, &a);
}

static void dtype_str(const void *p, char *buf, size_t n) { snprintf(buf, n, "%s", mn_dtype_name(((const mn_cast_attrs *)p)->dtype)); }

const mn_op_def mn__op_fill = { MN_OP_RECORD,
    .name = "fill", .doc = "y = value everywhere, of a given shape and dtype; no inputs, no gradient",
    .arity = 0, .attr_size = sizeof(mn_fill_attrs), MN__FIELDS(mn_fill_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_fill, .forward = fill_fwd,
};
const mn_op_def mn__op_zeros_like = { MN_OP_RECORD,
    .name = "zeros_like", .doc = "y = 0 with x's shape and dtype (composite: fill); no gradient",
    .arity = 1, .inplace = -1, .flags = MN_OPF_NOGRAD | MN_OPF_COMPOSITE, .compose = compose_zeros,
};
const mn_op_def mn__op_ones_like = { MN_OP_RECORD,
    .name = "ones_like", .doc = "y = 1 with x's shape and dtype (composite: fill); no gradient",
    .arity = 1, .inplace = -1, .flags = MN_OPF_NOGRAD | MN_OPF_COMPOSITE, .compose = compose_ones,
};
const mn_op_def mn__op_arange = { MN_OP_RECORD,
    .name = "arange", .doc = "y[i] = start + i step for i < ceil((end - start) / step); no gradient",
    .arity = 0, .attr_size = sizeof(mn_arange_attrs), MN__FIELDS(mn_arange_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_arange, .forward = arange_fwd,
};
const mn_op_def mn__op_one_hot = { MN_OP_RECORD,
    .name = "one_hot", .doc = "y[..., k] = [idx[...] == k] (f32 or i32); no gradient",
    .arity = 1, .attr_size = sizeof(mn_one_hot_attrs), MN__FIELDS(mn_one_hot_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_one_hot, .forward = one_hot_fwd,
};
const mn_op_def mn__op_cast = { MN_OP_RECORD,
    .name = "cast", .doc = "y = x converted between f32 and i32 (truncating toward zero); no gradient",
    .arity = 1, .attr_size = sizeof(mn_cast_attrs), MN__FIELDS(mn_cast_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_cast, .forward = cast_fwd, .attr_str = dtype_str,
};
