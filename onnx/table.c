/* onnx/table.c: the mapping table ONNX op -> mnemo registry ops, one
 * converter per row. A converter reads the node's attributes (and inputs
 * whose values are fixed at import: shapes, axes, pads) and builds ordinary
 * graph nodes, so an imported graph is differentiable like a built one.
 * Invariant: no other file switches on ONNX op names; docs/onnx.md's table
 * is printed from mn__ox_table (`mnemo import --ops`). */
#include "internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONV(fn) static mn_status fn(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, \
                                     mn_node **out, mn_tensor **out_known, int *out_elem, int nout)
#define UNUSED_ARGS (void)cx; (void)n; (void)in; (void)out; (void)nin; (void)out_known; (void)out_elem; (void)nout

static mn_status fail(mn_graph *g, mn_status code, const char *fmt, const char *a, long long v)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a, v);
    return mn_graph_fail(g, code, "%s", msg);
}

static mn_node *per_channel(mn_graph *g, mn_node *v, int r);
static mn_node *wrap_narrow(mn_graph *g, mn_node *y, int elem);

static mn_status status_of(mn_graph *g, mn_node *y)
{
    if (y) return MN_OK;
    return mn_graph_status(g) ? mn_graph_status(g) : MN_ERR_INVALID;
}

/* An input that must be present. */
static mn_node *need(mn_graph *g, ox_val *const *in, int nin, int i)
{
    if (i < nin && in[i] && in[i]->node) return in[i]->node;
    fail(g, MN_ERR_FORMAT, "input %s%lld is missing", "", i);
    return NULL;
}

/* An input whose value must be known at import (shape, axes, pads...). */
static const mn_tensor *known(mn_graph *g, ox_val *const *in, int nin, int i)
{
    if (i < nin && in[i] && in[i]->known) return in[i]->known;
    if (i < nin && in[i])
        fail(g, MN_ERR_UNSUPPORTED, "input \"%s\" (%lld) must be fixed at import (an initializer, a Constant or a bound input)",
             in[i]->name, i);
    else
        fail(g, MN_ERR_FORMAT, "input %s%lld is missing", "", i);
    return NULL;
}

static int64_t known_int(const mn_tensor *t, int64_t i)
{
    return t->dtype == MN_I32 ? mn_i32(t)[i] : (int64_t)mn_f32(t)[i];
}

static double known_num(const mn_tensor *t, int64_t i)
{
    return t->dtype == MN_I32 ? (double)mn_i32(t)[i] : (double)mn_f32(t)[i];
}

static bool is_int(mn_node *x) { return mn_node_dtype(x) == MN_I32; }
static mn_node *as_f32(mn_graph *g, mn_node *x) { return x && is_int(x) ? mn_cast(g, x, MN_F32) : x; }

/* Normalises an axis against rank; -1 if out of range. */
static int norm_axis(int64_t a, int rank)
{
    if (a < 0) a += rank;
    return a >= 0 && a < rank ? (int)a : -1;
}

static mn_status bad_axis(mn_graph *g, int64_t a, int rank)
{
    char r[32];
    snprintf(r, sizeof r, "%d", rank);
    return fail(g, MN_ERR_INVALID, "axis out of range for rank %s: %lld", r, a);
}

/* ---- elementwise ---- */

/* One registry op of one input, named in the table row (cx->entry->ops). */
CONV(conv_unary)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    bool was_int = is_int(x);
    mn_node *f = as_f32(g, x);
    out[0] = mn_op_named(g, cx->entry->ops, &f, 1, NULL, 0);
    if (out[0] && was_int) out[0] = mn_cast(g, out[0], MN_I32);
    return status_of(g, out[0]);
}

/* Two broadcasting inputs through the registry op named in the row;
 * integer inputs go through f32 and back (exact below 2^24). */
CONV(conv_binary)
{
    UNUSED_ARGS;
    mn_node *a = need(g, in, nin, 0), *b = need(g, in, nin, 1);
    if (!a || !b) return mn_graph_status(g);
    bool was_int = is_int(a) && is_int(b);
    if (cx->opset < 7 && mn__ox_attr_int(n, "broadcast", 0) && mn__ox_attr(n, "axis")) {
        /* opset 6: b's dims line up with a's from `axis` on */
        mn_shape as = mn_node_shape(a), bs = mn_node_shape(b), t = { .ndim = as.ndim };
        int64_t ax = mn__ox_attr_int(n, "axis", 0);
        if (ax < 0) ax += as.ndim;
        if (ax < 0 || ax + bs.ndim > as.ndim) return bad_axis(g, ax, as.ndim);
        for (int i = 0; i < as.ndim; i++) t.d[i] = i >= ax && i < ax + bs.ndim ? bs.d[i - ax] : 1;
        b = mn_reshape(g, b, t);
    }
    mn_node *ab[2] = { as_f32(g, a), as_f32(g, b) };
    out[0] = mn_op_named(g, cx->entry->ops, ab, 2, NULL, 0);
    bool compare = cx->entry->onnx[0] == 'E' || cx->entry->onnx[0] == 'G' || cx->entry->onnx[0] == 'L';
    if (compare) out_elem[0] = OX_BOOL;
    if (out[0] && was_int && !compare) out[0] = mn_cast(g, out[0], MN_I32);
    bool wide = in[0]->elem == OX_UINT32 || in[0]->elem == OX_UINT64;
    bool wide16 = in[0]->elem == OX_UINT16 || in[0]->elem == OX_INT16;
    if (out[0] && !compare && wide16 && !strcmp(cx->entry->onnx, "Mul"))   /* a product beyond 2^24 is rounded in f32 */
        return fail(g, MN_ERR_DTYPE, "%s of 16-bit integers is not supported (computed in f32, a product above 2^24 would lose its low bits)%.0lld",
                    cx->entry->onnx, 0);
    if (out[0] && !compare && wide && strcmp(cx->entry->onnx, "Div"))
        return fail(g, MN_ERR_DTYPE, "%s of uint32/uint64 values is not supported (held as i32, a result above 2^31 - 1 would not fit)%.0lld",
                    cx->entry->onnx, 0);
    if (out[0] && !compare && mn__ox_elem_narrow(in[0]->elem)) out[0] = wrap_narrow(g, out[0], in[0]->elem);
    return status_of(g, out[0]);
}

/* uint8 ... int16 results of Add/Sub/Mul/Div taken modulo 2^bits into the
 * type's range, as ONNX's arithmetic wraps: y - R floor(y / R) (+ the
 * signed offset), in f32 (floor from the truncating cast): exact for every 8-bit result and every
 * 16-bit sum, difference and quotient (16-bit Mul is refused). uint32 and uint64
 * are not wrapped: only their Div (never above its input) is accepted. */
static mn_node *wrap_narrow(mn_graph *g, mn_node *y, int elem)
{
    int bits = elem == OX_UINT8 || elem == OX_INT8 ? 8 : elem == OX_UINT16 || elem == OX_INT16 ? 16 : 0;
    if (!bits) return y;
    float R = (float)(1 << bits), half = elem == OX_INT8 || elem == OX_INT16 ? R / 2 : 0.0f;
    mn_node *f = mn_add(g, as_f32(g, y), mn_scalar(g, half));      /* shifted to [0, R) when in range */
    mn_node *d = mn_scale(g, f, 1.0f / R);                          /* exact: a power of two */
    mn_node *t = mn_cast(g, mn_cast(g, d, MN_I32), MN_F32);         /* truncated toward zero */
    mn_node *fl = mn_sub(g, t, mn_gt(g, t, d));                     /* floor: one less where a negative d was truncated up */
    mn_node *w = mn_sub(g, mn_sub(g, f, mn_scale(g, fl, R)), mn_scalar(g, half));
    return mn_cast(g, w, MN_I32);
}

/* Sum, Max, Min, Mean: a chain of the binary op over every input. */
CONV(conv_variadic)
{
    UNUSED_ARGS;
    mn_node *acc = as_f32(g, need(g, in, nin, 0));
    const char *op = !strcmp(cx->entry->onnx, "Max") ? "maximum" : !strcmp(cx->entry->onnx, "Min") ? "minimum" : "add";
    for (int i = 1; acc && i < nin; i++) {
        mn_node *ab[2] = { acc, as_f32(g, need(g, in, nin, i)) };
        acc = ab[1] ? mn_op_named(g, op, ab, 2, NULL, 0) : NULL;
    }
    if (acc && !strcmp(cx->entry->onnx, "Mean")) acc = mn_scale(g, acc, 1.0f / (float)nin);
    out[0] = acc;
    return status_of(g, acc);
}

CONV(conv_identity)
{
    UNUSED_ARGS;
    out[0] = need(g, in, nin, 0);
    if (out[0] && in[0]->known) out_known[0] = NULL;
    return status_of(g, out[0]);
}

/* Activations with attributes. */
CONV(conv_leaky_relu)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    out[0] = x ? mn_leaky_relu(g, x, mn__ox_attr_float(n, "alpha", 0.01f)) : NULL;
    return status_of(g, out[0]);
}

CONV(conv_elu)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    out[0] = x ? mn_elu(g, x, mn__ox_attr_float(n, "alpha", 1.0f)) : NULL;
    return status_of(g, out[0]);
}

/* Softplus: log(1 + exp(x)) (PyTorch's threshold 20: beyond it, x; 2e-9 relative). */
CONV(conv_softplus)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    out[0] = x ? mn_softplus(g, x, 1.0f, 20.0f) : NULL;
    return status_of(g, out[0]);
}

/* Selu: gamma * elu(x, alpha). */
CONV(conv_selu)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    float alpha = mn__ox_attr_float(n, "alpha", 1.67326319217681884765625f);
    float gamma = mn__ox_attr_float(n, "gamma", 1.05070102214813232421875f);
    out[0] = x ? mn_scale(g, mn_elu(g, x, alpha), gamma) : NULL;
    return status_of(g, out[0]);
}

/* Celu: alpha * elu(x / alpha, 1). */
CONV(conv_celu)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    float alpha = mn__ox_attr_float(n, "alpha", 1.0f);
    out[0] = x ? mn_scale(g, mn_elu(g, mn_scale(g, x, 1.0f / alpha), 1.0f), alpha) : NULL;
    return status_of(g, out[0]);
}

static mn_node *hard_sigmoid(mn_graph *g, mn_node *x, float alpha, float beta)
{
    return mn_clamp(g, mn_add(g, mn_scale(g, x, alpha), mn_scalar(g, beta)), 0.0f, 1.0f);
}

CONV(conv_hard_sigmoid)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    out[0] = x ? hard_sigmoid(g, x, mn__ox_attr_float(n, "alpha", 0.2f), mn__ox_attr_float(n, "beta", 0.5f)) : NULL;
    return status_of(g, out[0]);
}

CONV(conv_hard_swish)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    out[0] = x ? mn_mul(g, x, hard_sigmoid(g, x, 1.0f / 6.0f, 0.5f)) : NULL;
    return status_of(g, out[0]);
}

/* Softsign: x / (1 + |x|). */
CONV(conv_softsign)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    out[0] = x ? mn_div(g, x, mn_add(g, mn_abs(g, x), mn_scalar(g, 1.0f))) : NULL;
    return status_of(g, out[0]);
}

/* Mish: x * tanh(softplus(x)). */
CONV(conv_mish)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    out[0] = x ? mn_mul(g, x, mn_tanh(g, mn_softplus(g, x, 1.0f, 20.0f))) : NULL;
    return status_of(g, out[0]);
}

/* ThresholdedRelu: x where x > alpha, else 0. */
CONV(conv_thresholded_relu)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    float alpha = mn__ox_attr_float(n, "alpha", 1.0f);
    out[0] = x ? mn_mul(g, x, mn_gt(g, x, mn_scalar(g, alpha))) : NULL;
    return status_of(g, out[0]);
}

/* PRelu: relu(x) - slope * relu(-x), slope broadcasting. */
CONV(conv_prelu)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0), *s = need(g, in, nin, 1);
    if (!x || !s) return mn_graph_status(g);
    mn_shape xs = mn_node_shape(x), ss = mn_node_shape(s);
    if (cx->opset < 7 && ss.ndim == 1 && xs.ndim > 2 && ss.d[0] == xs.d[1] && ss.d[0] > 1) s = per_channel(g, s, xs.ndim);
    out[0] = mn_sub(g, mn_relu(g, x), mn_mul(g, s, mn_relu(g, mn_neg(g, x))));
    return status_of(g, out[0]);
}

/* Clip: min/max from attributes (opset < 11) or inputs 1, 2 (fixed at import). */
CONV(conv_clip)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    float lo = mn__ox_attr_float(n, "min", -INFINITY), hi = mn__ox_attr_float(n, "max", INFINITY);
    for (int i = 1; i < 3 && i < nin; i++) {
        if (!in[i]) continue;
        const mn_tensor *t = known(g, in, nin, i);
        if (!t) return mn_graph_status(g);
        float v = (float)known_num(t, 0);
        if (i == 1) lo = v;
        else hi = v;
    }
    bool was_int = is_int(x);
    out[0] = mn_clamp(g, as_f32(g, x), lo, hi);
    if (out[0] && was_int) out[0] = mn_cast(g, out[0], MN_I32);
    return status_of(g, out[0]);
}

/* x^y for a tensor exponent: |x|^y = exp(y log|x|), times -1 where x < 0
 * and y is odd (y - 2 trunc(y / 2) = +-1), NaN where x < 0 and y is not
 * whole, 1 where y = 0 (0^0 = 1). Integer results are rounded to i32. */
static mn_node *pow_tensor(mn_graph *g, mn_node *x, mn_node *y, bool to_int)
{
    mn_node *r = mn_exp(g, mn_mul(g, y, mn_log(g, mn_abs(g, x))));
    mn_node *half = mn_cast(g, mn_cast(g, mn_scale(g, y, 0.5f), MN_I32), MN_F32);
    mn_node *odd = mn_abs(g, mn_sub(g, y, mn_scale(g, half, 2.0f)));
    mn_node *sign = mn_sub(g, mn_scalar(g, 1.0f), mn_scale(g, mn_mul(g, mn_lt(g, x, mn_scalar(g, 0.0f)), odd), 2.0f));
    r = mn_mul(g, r, sign);
    mn_node *frac = mn_sub(g, y, mn_cast(g, mn_cast(g, y, MN_I32), MN_F32));
    mn_node *bad = mn_mul(g, mn_lt(g, x, mn_scalar(g, 0.0f)), mn_ne(g, frac, mn_scalar(g, 0.0f)));
    r = mn_where(g, bad, mn_scalar(g, NAN), r);
    r = mn_where(g, mn_eq(g, y, mn_scalar(g, 0.0f)), mn_ones_like(g, r), r);
    if (!to_int) return r;
    return mn_cast(g, mn_add(g, r, mn_scale(g, mn_sign(g, r), 0.5f)), MN_I32);
}

/* Pow: one exponent fixed at import is the pow op; otherwise pow_tensor. */
CONV(conv_pow)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0), *y = need(g, in, nin, 1);
    if (!x || !y) return mn_graph_status(g);
    const mn_tensor *e = in[1]->known;
    bool one = e != NULL && mn_tensor_numel(e) > 0;
    for (int64_t i = 1; one && i < mn_tensor_numel(e); i++) one = known_num(e, i) == known_num(e, 0);
    mn_shape out_shape;
    if (mn_shape_broadcast(mn_node_shape(x), mn_node_shape(y), &out_shape))
        return fail(g, MN_ERR_SHAPE, "%sbase and exponent do not broadcast (%lld dims)", "", mn_node_shape(y).ndim);
    if (one && mn_shape_eq(out_shape, mn_node_shape(x))) {
        out[0] = mn_pow(g, as_f32(g, x), (float)known_num(e, 0));
        if (out[0] && is_int(x)) out[0] = mn_cast(g, mn_add(g, out[0], mn_scale(g, mn_sign(g, out[0]), 0.5f)), MN_I32);
    } else {
        mn_node *xf = as_f32(g, x);
        if (!mn_shape_eq(out_shape, mn_node_shape(x))) xf = mn_expand(g, xf, out_shape);
        out[0] = pow_tensor(g, xf, as_f32(g, y), is_int(x));
    }
    return status_of(g, out[0]);
}

/* Logical ops over 0/1 values (bool is f32 0/1 in mnemo). */
CONV(conv_logic)
{
    UNUSED_ARGS;
    out_elem[0] = OX_BOOL;
    mn_node *a = as_f32(g, need(g, in, nin, 0));
    if (!a) return mn_graph_status(g);
    const char *op = cx->entry->onnx;
    if (!strcmp(op, "Not")) {
        out[0] = mn_sub(g, mn_scalar(g, 1.0f), a);
        return status_of(g, out[0]);
    }
    mn_node *b = as_f32(g, need(g, in, nin, 1));
    if (!b) return mn_graph_status(g);
    if (!strcmp(op, "And")) out[0] = mn_mul(g, a, b);
    else if (!strcmp(op, "Or")) out[0] = mn_maximum(g, a, b);
    else out[0] = mn_ne(g, a, b);
    return status_of(g, out[0]);
}

CONV(conv_where)
{
    UNUSED_ARGS;
    mn_node *c = need(g, in, nin, 0), *a = need(g, in, nin, 1), *b = need(g, in, nin, 2);
    if (!c || !a || !b) return mn_graph_status(g);
    bool was_int = is_int(a) && is_int(b);
    out[0] = mn_where(g, c, as_f32(g, a), as_f32(g, b));
    if (out[0] && was_int) out[0] = mn_cast(g, out[0], MN_I32);
    out_elem[0] = in[1]->elem;
    return status_of(g, out[0]);
}

/* Whether Cast from `from` to the narrow type `to` keeps every value of
 * `to`'s range exact: to uint32/uint64 only from unsigned types (a
 * negative value would become 2^bits - k, beyond i32); to an 8- or 16-bit
 * type from float (truncated, then wrapped as ONNX's fixed-point casts
 * do, exact: ONNX leaves out-of-range floats undefined) or from a type of
 * at most 16 bits (the wrap runs in f32, exact below 2^24). */
static bool narrow_cast_exact(int from, int to)
{
    bool unsigned_from = from == OX_UINT8 || from == OX_UINT16 || from == OX_UINT32 || from == OX_UINT64 || from == OX_BOOL;
    if (to == OX_UINT32 || to == OX_UINT64) return unsigned_from;
    return from == OX_FLOAT || from == OX_BOOL || from == OX_UINT8 || from == OX_INT8 || from == OX_UINT16 || from == OX_INT16;
}

/* Cast to float, the integer types or bool. */
CONV(conv_cast)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int to = (int)mn__ox_attr_int(n, "to", 0);
    if (to == OX_DOUBLE) to = OX_FLOAT;                 /* double is computed as f32 */
    if (!mn__ox_elem_supported(to)) return fail(g, MN_ERR_UNSUPPORTED, "%scast to element type %lld is not supported", "", to);
    if (mn__ox_elem_narrow(to) && !narrow_cast_exact(mn__ox_stored_elem(in[0]->elem), to))
        return mn_graph_fail(g, MN_ERR_DTYPE, "Cast of %s values to %s is not supported (held as i32 or f32, a value outside %s's range "
                             "would not wrap exactly)", mn__ox_elem_name(in[0]->elem), mn__ox_elem_name(to), mn__ox_elem_name(to));
    mn_node *y = x;
    if (to == OX_BOOL) y = mn_ne(g, as_f32(g, x), mn_scalar(g, 0.0f));
    else y = mn_cast(g, x, to == OX_FLOAT ? MN_F32 : MN_I32);
    if (mn__ox_elem_narrow(to)) y = wrap_narrow(g, y, to);   /* into to's range, as ONNX's fixed-point casts wrap */
    out[0] = y;
    out_elem[0] = to;
    return status_of(g, y);
}

/* ---- matrix products ---- */

/* MatMul: numpy semantics; a 1-D operand gets a unit dim that is removed after. */
CONV(conv_matmul)
{
    UNUSED_ARGS;
    mn_node *a = need(g, in, nin, 0), *b = need(g, in, nin, 1);
    if (!a || !b) return mn_graph_status(g);
    bool va = mn_node_shape(a).ndim == 1, vb = mn_node_shape(b).ndim == 1;
    if (va) a = mn_unsqueeze(g, a, 0);
    if (vb) b = mn_unsqueeze(g, b, 1);
    mn_node *y = mn_matmul(g, as_f32(g, a), as_f32(g, b), false, false);
    if (y && vb) y = mn_squeeze(g, y, -1);
    if (y && va) y = mn_squeeze(g, y, va && vb ? -1 : -2);
    out[0] = y;
    return status_of(g, y);
}

/* Gemm: alpha op(A) op(B) + beta C. */
CONV(conv_gemm)
{
    UNUSED_ARGS;
    mn_node *a = need(g, in, nin, 0), *b = need(g, in, nin, 1);
    if (!a || !b) return mn_graph_status(g);
    float alpha = mn__ox_attr_float(n, "alpha", 1.0f), beta = mn__ox_attr_float(n, "beta", 1.0f);
    mn_node *y = mn_matmul(g, a, b, mn__ox_attr_int(n, "transA", 0) != 0, mn__ox_attr_int(n, "transB", 0) != 0);
    if (y && alpha != 1.0f) y = mn_scale(g, y, alpha);
    if (y && nin > 2 && in[2] && in[2]->node) {
        mn_node *c = in[2]->node;
        if (beta != 1.0f) c = mn_scale(g, c, beta);
        y = mn_add(g, y, c);
    }
    out[0] = y;
    return status_of(g, y);
}

/* ---- shapes ---- */

/* Reshape: shape fixed at import; 0 copies the input's dim (unless allowzero), -1 is inferred. */
CONV(conv_reshape)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    mn_shape s = { 0 };
    size_t na = 0;
    const int64_t *attr = mn__ox_attr_ints(n, "shape", &na);
    const mn_tensor *t = attr ? NULL : known(g, in, nin, 1);
    if (!attr && !t) return mn_graph_status(g);
    int64_t ns = attr ? (int64_t)na : mn_tensor_numel(t);
    if (ns > MN_MAX_DIMS) return fail(g, MN_ERR_UNSUPPORTED, "%starget shape has %lld dims", "", ns);
    s.ndim = (int)ns;
    bool allowzero = mn__ox_attr_int(n, "allowzero", 0) != 0;
    mn_shape xs = mn_node_shape(x);
    for (int i = 0; i < s.ndim; i++) {
        int64_t d = attr ? attr[i] : known_int(t, i);
        if (d == 0 && !allowzero) {
            if (i >= xs.ndim) return fail(g, MN_ERR_SHAPE, "%sshape copies dim %lld the input lacks", "", i);
            d = xs.d[i];
        }
        s.d[i] = d;
    }
    out[0] = mn_reshape(g, x, s);
    return status_of(g, out[0]);
}

CONV(conv_flatten)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    mn_shape xs = mn_node_shape(x);
    int64_t a = mn__ox_attr_int(n, "axis", 1);
    if (a < 0) a += xs.ndim;
    if (a < 0 || a > xs.ndim) return bad_axis(g, a, xs.ndim);
    int64_t outer = 1;
    for (int i = 0; i < a; i++) outer *= xs.d[i];
    out[0] = mn_reshape(g, x, MN_SHAPE(outer, mn_shape_numel(xs) / (outer ? outer : 1)));
    return status_of(g, out[0]);
}

CONV(conv_transpose)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    size_t np = 0;
    const int64_t *p = mn__ox_attr_ints(n, "perm", &np);
    if (p && (int)np != r) return fail(g, MN_ERR_INVALID, "%sperm has %lld entries", "", (long long)np);
    int perm[MN_MAX_DIMS];
    for (int i = 0; i < r; i++) perm[i] = p ? (int)p[i] : r - 1 - i;
    out[0] = mn_permute(g, x, r, perm);
    return status_of(g, out[0]);
}

/* Axes from the attribute (older opsets) or input 1 (opset 13). */
static int axes_of(mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, int64_t *axes, bool *given)
{
    size_t na = 0;
    const int64_t *a = mn__ox_attr_ints(n, "axes", &na);
    *given = a != NULL;
    if (a) {
        if (na > MN_MAX_DIMS) return -1;
        for (size_t i = 0; i < na; i++) axes[i] = a[i];
        return (int)na;
    }
    if (nin < 2 || !in[1]) return 0;
    const mn_tensor *t = known(g, in, nin, 1);
    if (!t) return -1;
    int64_t k = mn_tensor_numel(t);
    if (k > MN_MAX_DIMS) return -1;
    for (int64_t i = 0; i < k; i++) axes[i] = known_int(t, i);
    *given = k > 0;
    return (int)k;
}

CONV(conv_squeeze)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int64_t axes[MN_MAX_DIMS];
    bool given;
    int k = axes_of(g, n, in, nin, axes, &given);
    if (k < 0) return mn_graph_status(g) ? mn_graph_status(g) : fail(g, MN_ERR_INVALID, "%sbad axes %lld", "", 0);
    if (!given) {
        out[0] = mn_squeeze_all(g, x);
        return status_of(g, out[0]);
    }
    mn_shape s = mn_node_shape(x), t = { 0 };
    bool drop[MN_MAX_DIMS] = { false };
    for (int i = 0; i < k; i++) {
        int a = norm_axis(axes[i], s.ndim);
        if (a < 0) return bad_axis(g, axes[i], s.ndim);
        if (s.d[a] != 1) return fail(g, MN_ERR_SHAPE, "%scannot squeeze axis %lld: its size is not 1", "", axes[i]);
        drop[a] = true;
    }
    for (int i = 0; i < s.ndim; i++)
        if (!drop[i]) t.d[t.ndim++] = s.d[i];
    out[0] = mn_reshape(g, x, t);
    return status_of(g, out[0]);
}

CONV(conv_unsqueeze)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int64_t axes[MN_MAX_DIMS];
    bool given;
    int k = axes_of(g, n, in, nin, axes, &given);
    if (k < 0) return mn_graph_status(g) ? mn_graph_status(g) : fail(g, MN_ERR_INVALID, "%sbad axes %lld", "", 0);
    mn_shape s = mn_node_shape(x), t = { 0 };
    int r = s.ndim + k;
    if (r > MN_MAX_DIMS) return fail(g, MN_ERR_UNSUPPORTED, "%sresult has %lld dims", "", r);
    bool unit[MN_MAX_DIMS] = { false };
    for (int i = 0; i < k; i++) {
        int a = norm_axis(axes[i], r);
        if (a < 0 || unit[a]) return bad_axis(g, axes[i], r);
        unit[a] = true;
    }
    int j = 0;
    for (int i = 0; i < r; i++) t.d[i] = unit[i] ? 1 : s.d[j++];
    t.ndim = r;
    out[0] = mn_reshape(g, x, t);
    return status_of(g, out[0]);
}

CONV(conv_concat)
{
    UNUSED_ARGS;
    mn_node *xs[64];
    if (nin > 64) return fail(g, MN_ERR_UNSUPPORTED, "%s%lld inputs (at most 64)", "", nin);
    for (int i = 0; i < nin; i++) {
        xs[i] = need(g, in, nin, i);
        if (!xs[i]) return mn_graph_status(g);
    }
    int r = mn_node_shape(xs[0]).ndim;
    int64_t a = mn__ox_attr_int(n, "axis", cx->opset < 4 ? 1 : 0);
    if (norm_axis(a, r) < 0) return bad_axis(g, a, r);
    out[0] = mn_concat(g, xs, nin, norm_axis(a, r));
    return status_of(g, out[0]);
}

/* A slice with a negative step: start clamped to [0, d - 1], end to
 * [-1, d - 1] (after adding d to negative values), then index_select by the
 * fixed positions start, start + step, ... > end. */
static mn_node *slice_backwards(mn_graph *g, mn_node *x, int a, int64_t st, int64_t en, int64_t step)
{
    int64_t d = mn_node_shape(x).d[a];
    st = st < 0 ? st + d : st;
    en = en < 0 ? en + d : en;
    st = st < 0 ? -1 : st > d - 1 ? d - 1 : st;
    en = en < -1 ? -1 : en > d - 1 ? d - 1 : en;
    int64_t k = st > en ? (st - en - 1) / -step + 1 : 0;
    if (k == 0) return mn_graph_fail(g, MN_ERR_UNSUPPORTED, "slice of axis %d is empty (empty tensors are not supported)", a), NULL;
    int32_t *idx = malloc((size_t)k * sizeof *idx);
    if (!idx) return mn_graph_fail(g, MN_ERR_NOMEM, "out of memory"), NULL;
    for (int64_t i = 0; i < k; i++) idx[i] = (int32_t)(st + i * step);
    mn_node *y = mn_index_select(g, x, a, mn_constant(g, MN_I32, MN_SHAPE(k), idx));
    free(idx);
    return y;
}

/* Slice: starts/ends/axes/steps from attributes (opset < 10) or inputs; one slice op per axis. */
CONV(conv_slice)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    int64_t st[MN_MAX_DIMS], en[MN_MAX_DIMS], ax[MN_MAX_DIMS], sp[MN_MAX_DIMS];
    size_t ns = 0, ne = 0, na = 0;
    const int64_t *as = mn__ox_attr_ints(n, "starts", &ns), *ae = mn__ox_attr_ints(n, "ends", &ne), *aa = mn__ox_attr_ints(n, "axes", &na);
    const mn_tensor *ts = as ? NULL : known(g, in, nin, 1), *te = as ? NULL : known(g, in, nin, 2);
    if (!as && (!ts || !te)) return mn_graph_status(g);
    int64_t k = as ? (int64_t)ns : mn_tensor_numel(ts);
    if (k > r || k != (as ? (int64_t)ne : mn_tensor_numel(te))) return fail(g, MN_ERR_INVALID, "%sstarts/ends have %lld entries", "", k);
    const mn_tensor *ta = !as && nin > 3 && in[3] ? known(g, in, nin, 3) : NULL;
    const mn_tensor *tp = !as && nin > 4 && in[4] ? known(g, in, nin, 4) : NULL;
    if (mn_graph_status(g)) return mn_graph_status(g);
    if ((ta && mn_tensor_numel(ta) != k) || (tp && mn_tensor_numel(tp) != k) || (aa && (int64_t)na != k))
        return fail(g, MN_ERR_INVALID, "%saxes/steps do not match starts (%lld)", "", k);
    for (int64_t i = 0; i < k; i++) {
        st[i] = as ? as[i] : known_int(ts, i);
        en[i] = as ? ae[i] : known_int(te, i);
        ax[i] = aa ? aa[i] : ta ? known_int(ta, i) : i;
        sp[i] = tp ? known_int(tp, i) : 1;
        if (sp[i] == 0) return fail(g, MN_ERR_INVALID, "%sstep %lld", "", sp[i]);
        if (norm_axis(ax[i], r) < 0) return bad_axis(g, ax[i], r);
    }
    mn_node *y = x;
    for (int64_t i = 0; y && i < k; i++) {
        int a = norm_axis(ax[i], r);
        int64_t d = mn_node_shape(y).d[a];
        int64_t s0 = st[i] < -d ? 0 : st[i] > d ? d : st[i];
        int64_t e0 = en[i] < -d ? 0 : en[i] > d ? d : en[i];
        y = sp[i] > 0 ? mn_slice(g, y, a, s0, e0, sp[i]) : slice_backwards(g, y, a, st[i], en[i], sp[i]);
    }
    out[0] = y;
    return status_of(g, y);
}

/* Split into the given sizes (attribute, input 1) or equal parts. */
CONV(conv_split)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    mn_shape s = mn_node_shape(x);
    int64_t a0 = mn__ox_attr_int(n, "axis", 0);
    int a = norm_axis(a0, s.ndim);
    if (a < 0) return bad_axis(g, a0, s.ndim);
    int64_t sizes[64];
    if (nout > 64) return fail(g, MN_ERR_UNSUPPORTED, "%s%lld outputs (at most 64)", "", nout);
    size_t na = 0;
    const int64_t *sa = mn__ox_attr_ints(n, "split", &na);
    const mn_tensor *t = !sa && nin > 1 && in[1] ? known(g, in, nin, 1) : NULL;
    if (mn_graph_status(g)) return mn_graph_status(g);
    if ((sa && (int)na != nout) || (t && mn_tensor_numel(t) != nout))
        return fail(g, MN_ERR_INVALID, "%ssplit sizes do not match the %lld outputs", "", nout);
    int64_t part = (s.d[a] + nout - 1) / nout;
    for (int i = 0; i < nout; i++) {
        int64_t left = s.d[a] - part * i;
        sizes[i] = sa ? sa[i] : t ? known_int(t, i) : (left < part ? (left > 0 ? left : 0) : part);
    }
    return mn_split(g, x, a, nout, sizes, out);
}

/* Expand: numpy broadcasting of the input and the shape (fixed at import). */
CONV(conv_expand)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    const mn_tensor *t = x ? known(g, in, nin, 1) : NULL;
    if (!t) return mn_graph_status(g);
    int64_t k = mn_tensor_numel(t);
    if (k > MN_MAX_DIMS) return fail(g, MN_ERR_UNSUPPORTED, "%sshape has %lld dims", "", k);
    mn_shape want = { .ndim = (int)k }, s;
    for (int64_t i = 0; i < k; i++) want.d[i] = known_int(t, i);
    if (mn_shape_broadcast(mn_node_shape(x), want, &s)) return fail(g, MN_ERR_SHAPE, "%scannot broadcast to the shape (%lld dims)", "", k);
    out[0] = mn_shape_eq(s, mn_node_shape(x)) ? x : mn_expand(g, x, s);
    return status_of(g, out[0]);
}

static mn_tensor *tensor_dup_i32(const mn_tensor *t)
{
    mn_tensor *c = mn_tensor_new(MN_I32, t->shape);
    for (int64_t i = 0; c && i < mn_tensor_numel(t); i++) mn_i32(c)[i] = (int32_t)known_int(t, i);
    return c;
}

static mn_tensor *tensor_dup_f32(const mn_tensor *t)
{
    mn_tensor *c = mn_tensor_new(MN_F32, t->shape);
    for (int64_t i = 0; c && i < mn_tensor_numel(t); i++) mn_f32(c)[i] = (float)known_num(t, i);
    return c;
}

static mn_tensor *ints_tensor(const int64_t *v, int64_t k)
{
    mn_tensor *t = mn_tensor_new(MN_I32, MN_SHAPE(k));
    for (int64_t i = 0; t && i < k; i++) mn_i32(t)[i] = (int32_t)v[i];
    return t;
}

/* Shape and Size are known at import (static shapes). */
CONV(conv_shape)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    mn_shape s = mn_node_shape(x);
    int64_t lo = mn__ox_attr_int(n, "start", 0), hi = mn__ox_attr_int(n, "end", s.ndim);
    if (lo < 0) lo += s.ndim;
    if (hi < 0) hi += s.ndim;
    lo = lo < 0 ? 0 : lo > s.ndim ? s.ndim : lo;
    hi = hi < lo ? lo : hi > s.ndim ? s.ndim : hi;
    bool size = !strcmp(cx->entry->onnx, "Size");
    int64_t numel = mn_shape_numel(s);
    out_known[0] = size ? mn_tensor_new(MN_I32, MN_SCALAR) : ints_tensor(s.d + lo, hi - lo);
    if (!out_known[0]) return mn_graph_fail(g, MN_ERR_NOMEM, "out of memory");
    if (size) mn_i32(out_known[0])[0] = (int32_t)numel;
    out_elem[0] = OX_INT64;
    return MN_OK;
}

static mn_tensor *scalar_tensor(mn_dtype dt, double v, mn_shape s)
{
    mn_tensor *t = mn_tensor_new(dt, s);
    for (int64_t i = 0; t && i < mn_shape_numel(s); i++) {
        if (dt == MN_F32) mn_f32(t)[i] = (float)v;
        else mn_i32(t)[i] = (int32_t)v;
    }
    return t;
}

CONV(conv_constant)
{
    UNUSED_ARGS;
    char msg[256];
    const Onnx__AttributeProto *a;
    if ((a = mn__ox_attr(n, "value")) && a->t) {
        out_known[0] = mn__ox_tensor(a->t, msg, sizeof msg);
        if (!out_known[0]) return mn_graph_fail(g, MN_ERR_UNSUPPORTED, "%s", msg);
        out_elem[0] = mn__ox_stored_elem(a->t->data_type);
    } else if ((a = mn__ox_attr(n, "value_float")) && a->has_f) {
        out_known[0] = scalar_tensor(MN_F32, a->f, MN_SCALAR);
        out_elem[0] = OX_FLOAT;
    } else if ((a = mn__ox_attr(n, "value_int")) && a->has_i) {
        out_known[0] = scalar_tensor(MN_I32, (double)a->i, MN_SCALAR);
        out_elem[0] = OX_INT64;
    } else if ((a = mn__ox_attr(n, "value_floats"))) {
        out_known[0] = mn_tensor_new(MN_F32, MN_SHAPE((int64_t)a->n_floats));
        if (out_known[0]) memcpy(out_known[0]->data, a->floats, a->n_floats * sizeof(float));
        out_elem[0] = OX_FLOAT;
    } else if ((a = mn__ox_attr(n, "value_ints"))) {
        out_known[0] = ints_tensor(a->ints, (int64_t)a->n_ints);
        out_elem[0] = OX_INT64;
    } else {
        return mn_graph_fail(g, MN_ERR_UNSUPPORTED, "no value, value_float(s) or value_int(s) attribute");
    }
    return out_known[0] ? MN_OK : mn_graph_fail(g, MN_ERR_NOMEM, "out of memory");
}

CONV(conv_constant_of_shape)
{
    UNUSED_ARGS;
    const mn_tensor *t = known(g, in, nin, 0);
    if (!t) return mn_graph_status(g);
    int64_t k = mn_tensor_numel(t);
    if (k > MN_MAX_DIMS) return fail(g, MN_ERR_UNSUPPORTED, "%sshape has %lld dims", "", k);
    mn_shape s = { .ndim = (int)k };
    int64_t numel = 1;
    for (int64_t i = 0; i < k; i++) {
        s.d[i] = known_int(t, i);
        if (s.d[i] < 0 || (numel *= s.d[i] ? s.d[i] : 1) > ((int64_t)1 << 28)) return fail(g, MN_ERR_SHAPE, "%sbad shape dim %lld", "", s.d[i]);
    }
    const Onnx__AttributeProto *a = mn__ox_attr(n, "value");
    double v = 0;
    mn_dtype dt = MN_F32;
    out_elem[0] = OX_FLOAT;
    if (a && a->t) {
        char msg[256];
        mn_tensor *vt = mn__ox_tensor(a->t, msg, sizeof msg);
        if (!vt) return mn_graph_fail(g, MN_ERR_UNSUPPORTED, "%s", msg);
        v = mn_tensor_numel(vt) ? known_num(vt, 0) : 0;
        dt = vt->dtype;
        out_elem[0] = mn__ox_stored_elem(a->t->data_type);
        mn_tensor_free(vt);
    }
    out_known[0] = scalar_tensor(dt, v, s);
    return out_known[0] ? MN_OK : mn_graph_fail(g, MN_ERR_NOMEM, "out of memory");
}

/* Range(start, limit, delta) through the arange op. */
CONV(conv_range)
{
    UNUSED_ARGS;
    const mn_tensor *a = known(g, in, nin, 0), *b = a ? known(g, in, nin, 1) : NULL, *d = b ? known(g, in, nin, 2) : NULL;
    if (!d) return mn_graph_status(g);
    double step = known_num(d, 0);
    double cnt = step != 0 ? ceil((known_num(b, 0) - known_num(a, 0)) / step) : -1;
    if (!(cnt >= 0 && cnt < (1 << 28)) && !(cnt < 0 && step != 0)) return fail(g, MN_ERR_INVALID, "%sbad range (step %lld)", "", (long long)step);
    if (cnt <= 0) {
        out_known[0] = mn_tensor_new(a->dtype, MN_SHAPE(0));
        return out_known[0] ? MN_OK : mn_graph_fail(g, MN_ERR_NOMEM, "out of memory");
    }
    out[0] = mn_arange(g, known_num(a, 0), known_num(b, 0), step, a->dtype);
    return status_of(g, out[0]);
}

/* Gather along an axis: index_select of the flattened indices, reshaped. */
CONV(conv_gather)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0), *idx = need(g, in, nin, 1);
    if (!x || !idx) return mn_graph_status(g);
    mn_shape xs = mn_node_shape(x), is = mn_node_shape(idx);
    int64_t a0 = mn__ox_attr_int(n, "axis", 0);
    int a = norm_axis(a0, xs.ndim);
    if (a < 0) return bad_axis(g, a0, xs.ndim);
    if (xs.ndim - 1 + is.ndim > MN_MAX_DIMS) return fail(g, MN_ERR_UNSUPPORTED, "%sresult has %lld dims", "", xs.ndim - 1 + is.ndim);
    mn_node *flat = NULL;
    if (in[1]->known) {
        const mn_tensor *t = in[1]->known;
        int64_t k = mn_tensor_numel(t);
        mn_tensor *fixed = mn_tensor_new(MN_I32, MN_SHAPE(k));
        if (!fixed) return mn_graph_fail(g, MN_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < k; i++) {
            int64_t v = known_int(t, i);
            mn_i32(fixed)[i] = (int32_t)(v < 0 ? v + xs.d[a] : v);
        }
        flat = mn_constant(g, MN_I32, fixed->shape, fixed->data);
        mn_tensor_free(fixed);
    } else {
        flat = mn_reshape(g, is_int(idx) ? idx : mn_cast(g, idx, MN_I32), MN_SHAPE(mn_shape_numel(is)));
    }
    mn_node *y = flat ? mn_index_select(g, x, a, flat) : NULL;
    mn_shape s = { 0 };
    for (int i = 0; i < a; i++) s.d[s.ndim++] = xs.d[i];
    for (int i = 0; i < is.ndim; i++) s.d[s.ndim++] = is.d[i];
    for (int i = a + 1; i < xs.ndim; i++) s.d[s.ndim++] = xs.d[i];
    out[0] = y ? mn_reshape(g, y, s) : NULL;
    out_elem[0] = in[0]->elem;
    return status_of(g, out[0]);
}

/* GatherElements: torch.gather (negative indices fixed when known). */
CONV(conv_gather_elements)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0), *idx = need(g, in, nin, 1);
    if (!x || !idx) return mn_graph_status(g);
    mn_shape xs = mn_node_shape(x);
    int64_t a0 = mn__ox_attr_int(n, "axis", 0);
    int a = norm_axis(a0, xs.ndim);
    if (a < 0) return bad_axis(g, a0, xs.ndim);
    if (in[1]->known) {
        mn_tensor *t = tensor_dup_i32(in[1]->known);
        if (!t) return mn_graph_fail(g, MN_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < mn_tensor_numel(t); i++)
            if (mn_i32(t)[i] < 0) mn_i32(t)[i] += (int32_t)xs.d[a];
        idx = mn_constant(g, MN_I32, t->shape, t->data);
        mn_tensor_free(t);
    }
    out[0] = idx ? mn_gather(g, x, a, is_int(idx) ? idx : mn_cast(g, idx, MN_I32)) : NULL;
    out_elem[0] = in[0]->elem;
    return status_of(g, out[0]);
}

/* Trilu: x times a 0/1 mask of the upper (or lower) triangle from diagonal k. */
CONV(conv_trilu)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    const mn_tensor *tk = nin > 1 && in[1] ? known(g, in, nin, 1) : NULL;
    if (mn_graph_status(g)) return mn_graph_status(g);
    int64_t k = tk ? known_int(tk, 0) : 0;
    bool upper = mn__ox_attr_int(n, "upper", 1) != 0;
    mn_shape s = mn_node_shape(x);
    if (s.ndim < 2) return fail(g, MN_ERR_SHAPE, "%sinput has %lld dims (at least 2)", "", s.ndim);
    int64_t R = s.d[s.ndim - 2], C = s.d[s.ndim - 1];
    mn_tensor *m = mn_tensor_new(MN_F32, MN_SHAPE(R, C));
    if (!m) return mn_graph_fail(g, MN_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++) mn_f32(m)[i * C + j] = upper ? (j - i >= k) : (j - i <= k);
    mn_node *mask = mn_constant(g, MN_F32, m->shape, m->data);
    mn_tensor_free(m);
    bool was_int = is_int(x);
    out[0] = mask ? mn_mul(g, as_f32(g, x), mask) : NULL;
    if (out[0] && was_int) out[0] = mn_cast(g, out[0], MN_I32);
    return status_of(g, out[0]);
}

/* ---- reductions ---- */

/* The reduced axes as a bit mask (all when none given, unless noop_with_empty_axes). */
static int reduce_mask(mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, int r, unsigned *mask, bool *noop)
{
    int64_t axes[MN_MAX_DIMS];
    bool given;
    int k = axes_of(g, n, in, nin, axes, &given);
    if (k < 0) return -1;
    *noop = !given && mn__ox_attr_int(n, "noop_with_empty_axes", 0);
    *mask = 0;
    if (k == 0) *mask = r ? (1u << r) - 1 : 0;
    for (int i = 0; i < k; i++) {
        int a = norm_axis(axes[i], r);
        if (a < 0) {
            bad_axis(g, axes[i], r);
            return -1;
        }
        *mask |= 1u << a;
    }
    return 0;
}

static mn_node *reduce_axes(mn_graph *g, const char *kind, mn_node *x, unsigned mask, bool keep)
{
    int axes[MN_MAX_DIMS], k = 0, r = mn_node_shape(x).ndim;
    for (int i = 0; i < r; i++)
        if (mask & (1u << i)) axes[k++] = i;
    if (!strcmp(kind, "sum")) return k ? mn_sum(g, x, k, axes, keep) : x;
    if (!strcmp(kind, "mean")) return k ? mn_mean(g, x, k, axes, keep) : x;
    /* max, min, logsumexp: one axis at a time, from the last */
    mn_node *y = x;
    for (int i = k - 1; y && i >= 0; i--) {
        if (!strcmp(kind, "max")) y = mn_max(g, y, axes[i], keep);
        else if (!strcmp(kind, "min")) y = mn_min(g, y, axes[i], keep);
        else y = mn_logsumexp(g, y, axes[i], keep);
    }
    if (y && !strcmp(kind, "logsumexp") && k > 1) return NULL;
    return y;
}

/* ReduceSum/Mean/Max/Min/LogSumExp/L1/L2/SumSquare/LogSum. */
CONV(conv_reduce)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    unsigned mask;
    bool noop;
    if (reduce_mask(g, n, in, nin, r, &mask, &noop)) return mn_graph_status(g) ? mn_graph_status(g) : MN_ERR_INVALID;
    bool keep = mn__ox_attr_int(n, "keepdims", 1) != 0;
    bool was_int = is_int(x);
    x = as_f32(g, x);
    if (noop) {
        out[0] = x;
        return status_of(g, x);
    }
    const char *op = cx->entry->onnx + 6;   /* after "Reduce" */
    mn_node *y;
    if (!strcmp(op, "LogSumExp") && __builtin_popcount(mask) > 1) {
        mn_node *m = reduce_axes(g, "max", x, mask, true);
        y = mn_add(g, mn_log(g, reduce_axes(g, "sum", mn_exp(g, mn_sub(g, x, m)), mask, keep)),
                   keep ? m : mn_reshape(g, m, mn_node_shape(reduce_axes(g, "sum", x, mask, false))));
    } else if (!strcmp(op, "L1")) y = reduce_axes(g, "sum", mn_abs(g, x), mask, keep);
    else if (!strcmp(op, "L2")) y = mn_sqrt(g, reduce_axes(g, "sum", mn_square(g, x), mask, keep));
    else if (!strcmp(op, "SumSquare")) y = reduce_axes(g, "sum", mn_square(g, x), mask, keep);
    else if (!strcmp(op, "LogSum")) y = mn_log(g, reduce_axes(g, "sum", x, mask, keep));
    else y = reduce_axes(g, cx->entry->ops, x, mask, keep);
    if (y && was_int) y = mn_cast(g, y, MN_I32);
    out[0] = y;
    return status_of(g, y);
}

/* The last index of the extreme along axis a: max over a of
 * (x == extreme ? index : -1), the index an arange broadcast along a. */
static mn_node *arg_last(mn_graph *g, mn_node *x, int a, bool keep, bool is_max)
{
    mn_shape s = mn_node_shape(x), is = { .ndim = s.ndim };
    for (int i = 0; i < s.ndim; i++) is.d[i] = i == a ? s.d[i] : 1;
    mn_node *m = is_max ? mn_max(g, x, a, true) : mn_min(g, x, a, true);
    mn_node *idx = mn_reshape(g, mn_arange(g, 1, (double)s.d[a] + 1, 1, MN_F32), is);
    mn_node *v = mn_sub(g, mn_mul(g, mn_eq(g, x, m), idx), mn_scalar(g, 1.0f));
    return mn_cast(g, mn_max(g, v, a, keep), MN_I32);
}

CONV(conv_arg)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    int64_t a0 = mn__ox_attr_int(n, "axis", 0);
    int a = norm_axis(a0, r);
    if (a < 0) return bad_axis(g, a0, r);
    bool keep = mn__ox_attr_int(n, "keepdims", 1) != 0;
    bool is_max = !strcmp(cx->entry->onnx, "ArgMax");
    if (mn__ox_attr_int(n, "select_last_index", 0)) out[0] = arg_last(g, as_f32(g, x), a, keep, is_max);
    else out[0] = is_max ? mn_argmax(g, as_f32(g, x), a, keep) : mn_argmin(g, as_f32(g, x), a, keep);
    out_elem[0] = OX_INT64;
    return status_of(g, out[0]);
}

/* Hardmax: one_hot of argmax over the axis (opset < 13: over x coerced to 2-D at axis). */
CONV(conv_hardmax)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    mn_shape s = mn_node_shape(x);
    int64_t a0 = mn__ox_attr_int(n, "axis", cx->opset >= 13 ? -1 : 1);
    int a = norm_axis(a0, s.ndim);
    if (a < 0) return bad_axis(g, a0, s.ndim);
    mn_node *y = x;
    if (cx->opset < 13) {
        int64_t outer = 1;
        for (int i = 0; i < a; i++) outer *= s.d[i];
        y = mn_reshape(g, x, MN_SHAPE(outer, mn_shape_numel(s) / (outer ? outer : 1)));
        a = 1;
    }
    mn_shape ys = mn_node_shape(y);
    int perm[MN_MAX_DIMS], r = ys.ndim;
    for (int i = 0; i < r; i++) perm[i] = i == a ? r - 1 : i == r - 1 ? a : i;
    if (a != r - 1) y = mn_permute(g, y, r, perm);
    y = mn_one_hot(g, mn_argmax(g, y, r - 1, false), (int)ys.d[a], MN_F32);
    if (y && a != r - 1) y = mn_permute(g, y, r, perm);
    out[0] = y ? mn_reshape(g, y, s) : NULL;
    return status_of(g, out[0]);
}

/* OneHot(indices, depth, values [off, on]), axis default -1; negative indices count from depth. */
CONV(conv_one_hot)
{
    UNUSED_ARGS;
    mn_node *idx = need(g, in, nin, 0);
    const mn_tensor *d = idx ? known(g, in, nin, 1) : NULL, *v = d ? known(g, in, nin, 2) : NULL;
    if (!v) return mn_graph_status(g);
    int64_t depth = (int64_t)known_num(d, 0);
    if (depth < 1 || depth > (1 << 24) || mn_tensor_numel(v) != 2) return fail(g, MN_ERR_INVALID, "%sdepth %lld or values not [off, on]", "", depth);
    mn_shape is = mn_node_shape(idx);
    int r = is.ndim + 1;
    int64_t a0 = mn__ox_attr_int(n, "axis", -1);
    int a = norm_axis(a0, r);
    if (a < 0 || r > MN_MAX_DIMS) return bad_axis(g, a0, r);
    mn_node *f = as_f32(g, idx);
    f = mn_add(g, f, mn_mul(g, mn_lt(g, f, mn_scalar(g, 0.0f)), mn_scalar(g, (float)depth)));
    mn_node *oh = mn_one_hot(g, mn_cast(g, f, MN_I32), (int)depth, MN_F32);
    double off = known_num(v, 0), on = known_num(v, 1);
    mn_node *y = mn_add(g, mn_scale(g, oh, (float)(on - off)), mn_scalar(g, (float)off));
    if (y && a != r - 1) {
        int perm[MN_MAX_DIMS];
        for (int i = 0, j = 0; i < r; i++) perm[i] = i == a ? r - 1 : j++;
        y = mn_permute(g, y, r, perm);
    }
    if (y && v->dtype == MN_I32) y = mn_cast(g, y, MN_I32);
    out[0] = y;
    out_elem[0] = in[2]->elem;
    return status_of(g, y);
}

/* Tile: concat of copies along each axis (repeats fixed at import). */
CONV(conv_tile)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    const mn_tensor *t = x ? known(g, in, nin, 1) : NULL;
    if (!t) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    if (mn_tensor_numel(t) != r) return fail(g, MN_ERR_INVALID, "%srepeats has %lld entries", "", mn_tensor_numel(t));
    mn_node *y = x;
    for (int i = 0; y && i < r; i++) {
        int64_t k = known_int(t, i);
        if (k < 1 || k > 4096) return fail(g, MN_ERR_UNSUPPORTED, "%srepeat %lld (1 to 4096)", "", k);
        mn_node *copies[4096];
        for (int64_t j = 0; j < k; j++) copies[j] = y;
        if (k > 1) y = mn_concat(g, copies, (int)k, i);
    }
    out[0] = y;
    return status_of(g, y);
}

/* GlobalAveragePool / GlobalMaxPool: over every axis after the channels, kept. */
CONV(conv_global_pool)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    unsigned mask = r > 2 ? ((1u << r) - 1) & ~3u : 0;
    out[0] = reduce_axes(g, cx->entry->ops, x, mask, true);
    return status_of(g, out[0]);
}

/* ---- neural-network ops ---- */

/* Softmax/LogSoftmax: opset 13 over one axis (default -1); before, over the
 * input coerced to 2-D at axis (default 1). */
CONV(conv_softmax)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    mn_shape s = mn_node_shape(x);
    bool lg = cx->entry->onnx[0] == 'L';
    int64_t a0 = mn__ox_attr_int(n, "axis", cx->opset >= 13 ? -1 : 1);
    int a = norm_axis(a0, s.ndim);
    if (a < 0) return bad_axis(g, a0, s.ndim);
    if (cx->opset >= 13 || a == s.ndim - 1) {
        out[0] = lg ? mn_log_softmax(g, x, a) : mn_softmax(g, x, a);
        return status_of(g, out[0]);
    }
    int64_t outer = 1;
    for (int i = 0; i < a; i++) outer *= s.d[i];
    mn_node *f = mn_reshape(g, x, MN_SHAPE(outer, mn_shape_numel(s) / (outer ? outer : 1)));
    f = lg ? mn_log_softmax(g, f, 1) : mn_softmax(g, f, 1);
    out[0] = mn_reshape(g, f, s);
    return status_of(g, out[0]);
}

CONV(conv_layer_norm)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0), *w = need(g, in, nin, 1);
    if (!x || !w) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    int64_t a0 = mn__ox_attr_int(n, "axis", -1);
    int a = norm_axis(a0, r);
    if (a < 0) return bad_axis(g, a0, r);
    mn_node *b = nin > 2 && in[2] ? in[2]->node : NULL;
    mn_shape ws = mn_node_shape(w), want = { .ndim = r - a };
    for (int i = a; i < r; i++) want.d[i - a] = mn_node_shape(x).d[i];
    if (!mn_shape_eq(ws, want)) w = mn_expand(g, w, want);
    if (b && !mn_shape_eq(mn_node_shape(b), want)) b = mn_expand(g, b, want);
    float eps = mn__ox_attr_float(n, "epsilon", 1e-5f);
    out[0] = mn_layer_norm_op(g, x, r - a, w, b, eps);
    if (nout > 1) {
        /* Mean and InvStdDev: over the normalised axes, kept as 1s */
        int axes[MN_MAX_DIMS];
        for (int i = a; i < r; i++) axes[i - a] = i;
        out[1] = mn_mean(g, x, r - a, axes, true);
        if (nout > 2) out[2] = mn_rsqrt(g, mn_add(g, mn_var(g, x, r - a, axes, true, 0.0f), mn_scalar(g, eps)));
    }
    return status_of(g, out[0]);
}

/* Per-channel vector [C] as [C, 1, ...] against x [N, C, ...]. */
static mn_node *per_channel(mn_graph *g, mn_node *v, int r)
{
    mn_shape s = { .ndim = r - 1 };
    s.d[0] = mn_shape_numel(mn_node_shape(v));
    for (int i = 1; i < r - 1; i++) s.d[i] = 1;
    return mn_reshape(g, v, s);
}

/* BatchNormalization in inference mode: (x - mean) / sqrt(var + eps) * scale + B. */
CONV(conv_batch_norm)
{
    UNUSED_ARGS;
    if (mn__ox_attr_int(n, "training_mode", 0) || nout > 1) return fail(g, MN_ERR_UNSUPPORTED, "%straining mode (%lld outputs)", "", nout);
    mn_node *x = need(g, in, nin, 0), *sc = need(g, in, nin, 1), *b = need(g, in, nin, 2), *m = need(g, in, nin, 3), *v = need(g, in, nin, 4);
    if (!x || !sc || !b || !m || !v) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    if (r < 2) return fail(g, MN_ERR_SHAPE, "%sinput has %lld dims (at least 2)", "", r);
    float eps = mn__ox_attr_float(n, "epsilon", 1e-5f);
    mn_node *inv = mn_rsqrt(g, mn_add(g, per_channel(g, v, r), mn_scalar(g, eps)));
    mn_node *y = mn_mul(g, mn_sub(g, x, per_channel(g, m, r)), mn_mul(g, inv, per_channel(g, sc, r)));
    out[0] = mn_add(g, y, per_channel(g, b, r));
    return status_of(g, out[0]);
}

/* InstanceNormalization: per sample and channel over the spatial axes. */
CONV(conv_instance_norm)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0), *sc = need(g, in, nin, 1), *b = need(g, in, nin, 2);
    if (!x || !sc || !b) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim, axes[MN_MAX_DIMS];
    if (r < 3) return fail(g, MN_ERR_SHAPE, "%sinput has %lld dims (at least 3)", "", r);
    for (int i = 2; i < r; i++) axes[i - 2] = i;
    float eps = mn__ox_attr_float(n, "epsilon", 1e-5f);
    mn_node *c = mn_sub(g, x, mn_mean(g, x, r - 2, axes, true));
    mn_node *inv = mn_rsqrt(g, mn_add(g, mn_mean(g, mn_square(g, c), r - 2, axes, true), mn_scalar(g, eps)));
    out[0] = mn_add(g, mn_mul(g, mn_mul(g, c, inv), per_channel(g, sc, r)), per_channel(g, b, r));
    return status_of(g, out[0]);
}

/* Dropout at inference: the identity (a mask output is all true). */
CONV(conv_dropout)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    const mn_tensor *tm = nin > 2 && in[2] ? known(g, in, nin, 2) : NULL;
    if (mn_graph_status(g)) return mn_graph_status(g);
    if (tm && known_num(tm, 0) != 0) return fail(g, MN_ERR_UNSUPPORTED, "%straining_mode=%lld (import for inference)", "", 1);
    out[0] = x;
    if (nout > 1) {
        out[1] = mn_fill(g, mn_node_shape(x), 1.0f, MN_F32);
        out_elem[1] = OX_BOOL;
    }
    return status_of(g, out[0]);
}

static int reduction_of(const Onnx__NodeProto *n)
{
    char r[16];
    mn__ox_attr_str(n, "reduction", r, sizeof r);
    return !strcmp(r, "none") ? MN_REDUCE_NONE : !strcmp(r, "sum") ? MN_REDUCE_SUM : !strcmp(r, "mean") || !r[0] ? MN_REDUCE_MEAN : -1;
}

/* Class weights: loss_i = w[t_i] nll_i over valid targets; mean divides by
 * the sum of the valid targets' weights. */
static mn_node *weighted_nll(mn_graph *g, mn_node *lp, mn_node *t, mn_node *w, int ignore, int red)
{
    mn_node *tf = mn_cast(g, t, MN_F32);
    mn_node *valid = mn_ne(g, tf, mn_scalar(g, (float)ignore));
    mn_node *safe = mn_cast(g, mn_mul(g, tf, valid), MN_I32);
    mn_shape ts = mn_node_shape(t);
    mn_node *wt = mn_reshape(g, mn_index_select(g, w, 0, mn_reshape(g, safe, MN_SHAPE(mn_shape_numel(ts)))), ts);
    wt = mn_mul(g, wt, valid);
    mn_node *per = mn_mul(g, mn_nll_loss(g, lp, t, ignore, MN_REDUCE_NONE), wt);
    if (red == MN_REDUCE_NONE) return per;
    mn_node *total = mn_sum_all(g, per);
    return red == MN_REDUCE_SUM ? total : mn_div(g, total, mn_sum_all(g, wt));
}

/* NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss. */
CONV(conv_nll)
{
    UNUSED_ARGS;
    mn_node *x = need(g, in, nin, 0), *t = need(g, in, nin, 1);
    if (!x || !t) return mn_graph_status(g);
    int red = reduction_of(n);
    if (red < 0) return fail(g, MN_ERR_INVALID, "%sunknown reduction (%lld)", "", 0);
    int ignore = (int)mn__ox_attr_int(n, "ignore_index", -100000);
    bool sce = cx->entry->onnx[0] == 'S';
    mn_node *lp = sce ? mn_log_softmax(g, x, 1) : x;
    t = is_int(t) ? t : mn_cast(g, t, MN_I32);
    mn_node *w = nin > 2 && in[2] ? in[2]->node : NULL;
    if (lp && w) out[0] = weighted_nll(g, lp, t, w, ignore, red);
    else out[0] = lp ? mn_nll_loss(g, lp, t, ignore, (mn_reduction)red) : NULL;
    if (sce && nout > 1) out[1] = lp;
    return status_of(g, out[0]);
}

/* The training ops (domain ai.onnx.preview.training): one step of mnemo's
 * optimizer (optim/) at import on values fixed at import: R (lr), T (steps
 * done), then the X, G and state tensors, n of each; outputs the new X and
 * states. Adagrad's step is t = T + 1 (lr / (1 + T decay)). Momentum keeps
 * the given V on every step (t = 2), with beta = 1 when T = 0. Adam's T is
 * its bias-correction step, none when T = 0 (t so large that alpha^t and
 * beta^t are 0); ONNX adds epsilon before the correction, PyTorch after
 * (a difference of epsilon (1 - sqrt(1 - beta^T)), below the tolerance). */
typedef struct {
    const mn_optim_kind *kind;
    int per;                  /* tensors per parameter: X, G, states */
    union { mn_sgd_opts sgd; mn_adam_opts adam; mn_adagrad_opts adagrad; } h;
    int64_t t;
    float post;               /* Adam's norm_coefficient_post */
} optim_call;

static bool optim_setup(ox_ctx *cx, const Onnx__NodeProto *n, int64_t T, float R, optim_call *c)
{
    const char *op = cx->entry->onnx;
    float norm = mn__ox_attr_float(n, "norm_coefficient", 0.0f);
    c->t = T + 1;
    if (!strcmp(op, "Adagrad")) {
        c->kind = &mn_optim_adagrad;
        c->per = 3;
        c->h.adagrad = (mn_adagrad_opts){ .lr = R, .lr_decay = mn__ox_attr_float(n, "decay_factor", 0.0f), .weight_decay = norm,
                                          .eps = mn__ox_attr_float(n, "epsilon", 0.0f) };
        return true;
    }
    if (!strcmp(op, "Momentum")) {
        char mode[32];
        mn__ox_attr_str(n, "mode", mode, sizeof mode);
        c->kind = &mn_optim_sgd;
        c->per = 3;
        c->h.sgd = (mn_sgd_opts){ .lr = R, .momentum = mn__ox_attr_float(n, "alpha", 0.0f),
                                  .dampening = T > 0 ? 1.0f - mn__ox_attr_float(n, "beta", 0.0f) : 0.0f,
                                  .weight_decay = norm, .nesterov = !strcmp(mode, "nesterov") };
        c->t = 2;
        return true;
    }
    c->kind = &mn_optim_adam;
    c->per = 4;
    c->t = T > 0 ? T : (int64_t)1 << 40;
    c->post = mn__ox_attr_float(n, "norm_coefficient_post", 0.0f);
    c->h.adam = (mn_adam_opts){ .lr = R, .beta1 = mn__ox_attr_float(n, "alpha", 0.9f), .beta2 = mn__ox_attr_float(n, "beta", 0.999f),
                                .eps = mn__ox_attr_float(n, "epsilon", 1e-6f), .weight_decay = norm };
    return true;
}

CONV(conv_optim)
{
    UNUSED_ARGS;
    const mn_tensor *R = known(g, in, nin, 0), *T = R ? known(g, in, nin, 1) : NULL;
    if (!T) return mn_graph_status(g);
    optim_call c = { 0 };
    optim_setup(cx, n, known_int(T, 0), (float)known_num(R, 0), &c);
    int k = (nin - 2) / c.per;
    if (k < 1 || nin != 2 + k * c.per || nout != k * (c.per - 1)) return fail(g, MN_ERR_FORMAT, "%s%lld inputs do not hold X, G and states", "", nin);
    for (int i = 0; i < k; i++) {
        const mn_tensor *x = known(g, in, nin, 2 + i), *gr = known(g, in, nin, 2 + k + i);
        if (!x || !gr) return mn_graph_status(g);
        mn_tensor *p = tensor_dup_f32(x), *st[3] = { NULL, NULL, NULL };
        float *sp[3] = { NULL, NULL, NULL };
        for (int j = 0; j < c.per - 2; j++) {
            const mn_tensor *s0 = known(g, in, nin, 2 + (2 + j) * k + i);
            if (!s0) return mn_graph_status(g);
            st[j] = tensor_dup_f32(s0);
            sp[j] = st[j] ? mn_f32(st[j]) : NULL;
        }
        c.kind->step(&c.h, c.t, mn_f32(p), mn_f32(gr), sp, mn_tensor_numel(p));
        for (int64_t e = 0; c.post != 0 && e < mn_tensor_numel(p); e++) mn_f32(p)[e] *= 1.0f - c.post;
        out_known[i] = p;
        for (int j = 0; j < c.per - 2; j++) out_known[(1 + j) * k + i] = st[j];
        for (int j = 0; j < c.per - 1; j++) out_elem[j * k + i] = OX_FLOAT;
    }
    return MN_OK;
}

const ox_entry mn__ox_table[] = {
    /* elementwise through one registry op */
    { "Abs", "abs", conv_unary, NULL, NULL },
    { "Erf", "erf", conv_unary, NULL, NULL },
    { "Exp", "exp", conv_unary, NULL, NULL },
    { "Log", "log", conv_unary, NULL, NULL },
    { "Neg", "neg", conv_unary, NULL, NULL },
    { "Reciprocal", "reciprocal", conv_unary, NULL, NULL },
    { "Relu", "relu", conv_unary, NULL, NULL },
    { "Sigmoid", "sigmoid", conv_unary, NULL, NULL },
    { "Sign", "sign", conv_unary, NULL, NULL },
    { "Softplus", "softplus", conv_softplus, NULL, NULL },
    { "Sqrt", "sqrt", conv_unary, NULL, NULL },
    { "Tanh", "tanh", conv_unary, NULL, NULL },
    { "Add", "add", conv_binary, NULL, NULL },
    { "Sub", "sub", conv_binary, NULL, NULL },
    { "Mul", "mul", conv_binary, NULL, NULL },
    { "Div", "div", conv_binary, "integer division rounds toward zero", NULL },
    { "Equal", "eq", conv_binary, NULL, NULL },
    { "Greater", "gt", conv_binary, NULL, NULL },
    { "GreaterOrEqual", "ge", conv_binary, NULL, NULL },
    { "Less", "lt", conv_binary, NULL, NULL },
    { "LessOrEqual", "le", conv_binary, NULL, NULL },
    { "Max", "maximum", conv_variadic, NULL, NULL },
    { "Min", "minimum", conv_variadic, NULL, NULL },
    { "Sum", "add", conv_variadic, NULL, NULL },
    { "Mean", "add, scale", conv_variadic, NULL, NULL },
    { "And", "mul", conv_logic, NULL, NULL },
    { "Or", "maximum", conv_logic, NULL, NULL },
    { "Xor", "ne", conv_logic, NULL, NULL },
    { "Not", "sub", conv_logic, NULL, NULL },
    { "Where", "where", conv_where, NULL, NULL },
    { "Cast", "cast, ne", conv_cast, "to float, double (as float), int32, int64, bool or a narrow integer (wrapped)", NULL },
    { "Identity", "-", conv_identity, NULL, NULL },
    { "OneHot", "one_hot, scale, add", conv_one_hot, "depth and values fixed at import", NULL },
    { "Hardmax", "argmax, one_hot", conv_hardmax, NULL, NULL },
    { "Tile", "concat", conv_tile, "repeats fixed at import", NULL },
    /* activations */
    { "Celu", "elu, scale", conv_celu, NULL, NULL },
    { "Clip", "clamp", conv_clip, "min/max fixed at import", NULL },
    { "Elu", "elu", conv_elu, NULL, NULL },
    { "HardSigmoid", "scale, add, clamp", conv_hard_sigmoid, NULL, NULL },
    { "HardSwish", "scale, add, clamp, mul", conv_hard_swish, NULL, NULL },
    { "LeakyRelu", "leaky_relu", conv_leaky_relu, NULL, NULL },
    { "Mish", "softplus, tanh, mul", conv_mish, NULL, NULL },
    { "Pow", "pow (a tensor exponent: exp, log, abs, where)", conv_pow, NULL, NULL },
    { "PRelu", "relu, neg, mul, sub", conv_prelu, NULL, NULL },
    { "Selu", "elu, scale", conv_selu, NULL, NULL },
    { "Softsign", "abs, add, div", conv_softsign, NULL, NULL },
    { "ThresholdedRelu", "gt, mul", conv_thresholded_relu, NULL, NULL },
    /* products */
    { "Gemm", "matmul, scale, add", conv_gemm, NULL, NULL },
    { "MatMul", "matmul", conv_matmul, NULL, NULL },
    { "Conv", "unfold, reshape, matmul, add", mn__ox_conv, "1 to 3 spatial dims", NULL },
    { "ConvTranspose", "reshape, matmul, fold, add", mn__ox_conv_transpose, "1 to 3 spatial dims; no negative pads", NULL },
    /* shapes and indexing */
    { "Concat", "concat", conv_concat, NULL, NULL },
    { "Constant", "const", conv_constant, "sparse values unsupported", NULL },
    { "ConstantOfShape", "const", conv_constant_of_shape, "shape fixed at import", NULL },
    { "Expand", "expand", conv_expand, "shape fixed at import", NULL },
    { "Flatten", "reshape", conv_flatten, NULL, NULL },
    { "Gather", "index_select, reshape", conv_gather, NULL, NULL },
    { "GatherElements", "gather", conv_gather_elements, NULL, NULL },
    { "Trilu", "mul (by a constant mask)", conv_trilu, "k fixed at import", NULL },
    { "Range", "arange", conv_range, "bounds fixed at import", NULL },
    { "Reshape", "reshape", conv_reshape, "shape fixed at import", NULL },
    { "Shape", "const", conv_shape, NULL, NULL },
    { "Size", "const", conv_shape, NULL, NULL },
    { "Slice", "slice (negative steps: index_select)", conv_slice, "bounds fixed at import", NULL },
    { "Split", "slice", conv_split, "sizes fixed at import", NULL },
    { "Squeeze", "reshape", conv_squeeze, NULL, NULL },
    { "Pad", "index_select, where (negative pads: slice)", mn__ox_pad, "pads fixed at import", NULL },
    { "TopK", "topk, gather", mn__ox_topk, "K fixed at import", NULL },
    { "Transpose", "permute", conv_transpose, NULL, NULL },
    { "Unsqueeze", "reshape", conv_unsqueeze, NULL, NULL },
    /* reductions */
    { "ArgMax", "argmax (select_last_index: max, eq, arange)", conv_arg, NULL, NULL },
    { "ArgMin", "argmin (select_last_index: min, eq, arange)", conv_arg, NULL, NULL },
    { "AveragePool", "unfold, sum, div", mn__ox_average_pool, "1 to 3 spatial dims", NULL },
    { "MaxPool", "unfold, max (Indices: argmax, gather)", mn__ox_max_pool, "1 to 3 spatial dims", NULL },
    { "GlobalAveragePool", "mean", conv_global_pool, NULL, NULL },
    { "GlobalMaxPool", "max", conv_global_pool, NULL, NULL },
    { "ReduceL1", "abs, sum", conv_reduce, NULL, NULL },
    { "ReduceL2", "square, sum, sqrt", conv_reduce, NULL, NULL },
    { "ReduceLogSum", "sum, log", conv_reduce, NULL, NULL },
    { "ReduceLogSumExp", "logsumexp", conv_reduce, NULL, NULL },
    { "ReduceMax", "max", conv_reduce, NULL, NULL },
    { "ReduceMean", "mean", conv_reduce, NULL, NULL },
    { "ReduceMin", "min", conv_reduce, NULL, NULL },
    { "ReduceSum", "sum", conv_reduce, NULL, NULL },
    { "ReduceSumSquare", "square, sum", conv_reduce, NULL, NULL },
    /* neural-network ops */
    { "BatchNormalization", "sub, rsqrt, mul, add", conv_batch_norm, "inference mode only", NULL },
    { "Dropout", "-", conv_dropout, "inference (identity)", NULL },
    { "InstanceNormalization", "mean, square, rsqrt, mul, add", conv_instance_norm, NULL, NULL },
    { "LayerNormalization", "layer_norm, mean, var, rsqrt", conv_layer_norm, NULL, NULL },
    { "LogSoftmax", "log_softmax", conv_softmax, NULL, NULL },
    { "Softmax", "softmax", conv_softmax, NULL, NULL },
    { "NegativeLogLikelihoodLoss", "nll_loss (weights: index_select, mul, sum, div)", conv_nll, NULL, NULL },
    { "SoftmaxCrossEntropyLoss", "log_softmax, nll_loss", conv_nll, NULL, NULL },
    /* recurrent networks, composed per time step */
    { "GRU", "matmul, add, sigmoid, tanh, ...", mn__ox_gru, "forward/reverse/bidirectional; sequence_lens only at full length", NULL },
    { "LSTM", "matmul, add, sigmoid, tanh, ...", mn__ox_lstm, "forward/reverse/bidirectional; sequence_lens only at full length", NULL },
    { "RNN", "matmul, add, tanh, ...", mn__ox_rnn, "forward/reverse/bidirectional; sequence_lens only at full length", NULL },
    /* training ops: one optimizer step at import */
    { "Adagrad", "optimizer adagrad", conv_optim, "inputs fixed at import", "ai.onnx.preview.training" },
    { "Adam", "optimizer adam", conv_optim, "inputs fixed at import", "ai.onnx.preview.training" },
    { "Momentum", "optimizer sgd (momentum, nesterov)", conv_optim, "inputs fixed at import", "ai.onnx.preview.training" },
};
const int mn__ox_table_count = (int)(sizeof mn__ox_table / sizeof mn__ox_table[0]);

/* Ops exact on narrow integers held as i32: they move, select or compare
 * values, or (Add, Sub, Mul, Div) wrap their result (wrap_narrow). Any
 * other op with a narrow input 0 is refused naming it. */
static const char *const NARROW_OK[] = { "Add", "Sub", "Mul", "Div", "Max", "Min", "Clip", "Equal", "Greater", "GreaterOrEqual",
    "Less", "LessOrEqual", "Where", "Cast", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat",
    "Slice", "Split", "Gather", "GatherElements", "Expand", "Tile", "Shape", "Size", "ArgMax", "ArgMin", "ReduceMax",
    "ReduceMin", "MaxPool", "GlobalMaxPool", "TopK", "Pad" };

bool mn__ox_narrow_ok(const ox_entry *e)
{
    for (size_t i = 0; e && i < sizeof NARROW_OK / sizeof NARROW_OK[0]; i++)
        if (!strcmp(NARROW_OK[i], e->onnx)) return true;
    return false;
}

const ox_entry *mn__ox_find(const char *op_type)
{
    for (int i = 0; op_type && i < mn__ox_table_count; i++)
        if (!strcmp(mn__ox_table[i].onnx, op_type)) return &mn__ox_table[i];
    return NULL;
}
