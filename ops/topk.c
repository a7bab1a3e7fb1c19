/* ops/topk.c: topk, the i32 indices of the k largest (or smallest) values
 * along an axis, ordered by value with ties by the lower index (ONNX TopK,
 * torch.topk). No gradient of its own: the values are gather(x, indices),
 * whose VJP routes dy to the chosen positions. */
#include "op.h"
#include "window.h"
#include <stdlib.h>

static const mn_attr_field topk_fields[] = {
    { "axis", MN_ATTR_INT, offsetof(mn_topk_attrs, axis) },
    { "k", MN_ATTR_INT, offsetof(mn_topk_attrs, k) },
    { "largest", MN_ATTR_BOOL, offsetof(mn_topk_attrs, largest) },
    { NULL, 0, 0 },
};

static mn_status infer_topk(mn_infer_ctx *c)
{
    const mn_topk_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape;
    int ax = mn__axis(a->axis, s.ndim);
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input must be f32");
    if (ax < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, s.ndim);
    if (a->k < 0 || a->k > s.d[ax])
        return mn__infer_fail(c, MN_ERR_SHAPE, "k = %d is not in [0, %lld] (dim %d)", a->k, (long long)s.d[ax], ax);
    s.d[ax] = a->k;
    c->out = (mn_tdesc){ MN_I32, s };
    return MN_OK;
}

typedef struct { float v; int32_t i; } keyed;

/* Larger value first, then lower index (NaN counts as the largest, as numpy's sort puts it last). */
static int by_largest(const void *p, const void *q)
{
    const keyed *a = p, *b = q;
    bool an = a->v != a->v, bn = b->v != b->v;
    if (an != bn) return an ? -1 : 1;
    if (!an && a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : 1;
}

static int by_smallest(const void *p, const void *q)
{
    const keyed *a = p, *b = q;
    bool an = a->v != a->v, bn = b->v != b->v;
    if (an != bn) return an ? 1 : -1;
    if (!an && a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : 1;
}

static mn_status topk_fwd(const mn_kernel_ctx *c)
{
    const mn_topk_attrs *a = c->attrs;
    mn__split3 s = mn__split_at(c->in[0].shape, mn__axis(a->axis, c->in[0].shape.ndim));
    keyed *row = malloc((size_t)(s.dim ? s.dim : 1) * sizeof *row);
    if (!row) return mn__kernel_fail(c, "topk: out of memory for a row of %lld", (long long)s.dim);
    const float *x = mn_f32(&c->in[0]);
    int32_t *y = mn_i32(c->out);
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t in = 0; in < s.inner; in++) {
            for (int64_t j = 0; j < s.dim; j++) row[j] = (keyed){ x[(o * s.dim + j) * s.inner + in], (int32_t)j };
            qsort(row, (size_t)s.dim, sizeof *row, a->largest ? by_largest : by_smallest);
            for (int64_t j = 0; j < a->k; j++) y[(o * a->k + j) * s.inner + in] = row[j].i;
        }
    free(row);
    return MN_OK;
}

const mn_op_def mn__op_topk = { MN_OP_RECORD,
    .name = "topk", .doc = "y = i32 indices of the k largest (smallest) along axis, by value then index; no gradient (values: gather)",
    .arity = 1, .flags = MN_OPF_NOGRAD, .attr_size = sizeof(mn_topk_attrs), .attr_fields = topk_fields, .inplace = -1,
    .infer = infer_topk, .forward = topk_fwd,
};
