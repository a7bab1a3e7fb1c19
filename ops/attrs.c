/* ops/attrs.c: the attribute schemas of the built-in ops and what reads
 * attributes through them: equality and hashing for CSE (field by field,
 * so padding bytes never matter), the "name=value" text of DOT labels, and
 * mn_op_named, which builds any op from named values (the importers' way
 * in). Invariant: every built-in op with attributes has a schema covering
 * each field of its struct (the ops suite checks the sizes add up). */
#include "op.h"
#include "attrs.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(T, member, type) { #member, type, offsetof(T, member) }
#define N(T, name, member, type) { name, type, offsetof(T, member) }
#define END { NULL, 0, 0 }

const mn_attr_field mn__mn_scale_attrs_fields[] = { F(mn_scale_attrs, s, MN_ATTR_FLOAT), END };
const mn_attr_field mn__mn_matmul_attrs_fields[] = { F(mn_matmul_attrs, trans_a, MN_ATTR_BOOL), F(mn_matmul_attrs, trans_b, MN_ATTR_BOOL),
                                                     F(mn_matmul_attrs, per_step, MN_ATTR_BOOL), END };
const mn_attr_field mn__mn_permute_attrs_fields[] = { F(mn_permute_attrs, ndim, MN_ATTR_INT), F(mn_permute_attrs, perm, MN_ATTR_DIMS), END };
const mn_attr_field mn__mn_shape_attrs_fields[] = { F(mn_shape_attrs, shape, MN_ATTR_SHAPE), END };
const mn_attr_field mn__mn_reduce_attrs_fields[] = { F(mn_reduce_attrs, axes, MN_ATTR_UINT), F(mn_reduce_attrs, keepdim, MN_ATTR_BOOL), END };
const mn_attr_field mn__mn_axis_attrs_fields[] = { F(mn_axis_attrs, axis, MN_ATTR_INT), F(mn_axis_attrs, causal, MN_ATTR_BOOL), END };
const mn_attr_field mn__mn_ce_attrs_fields[] = {
    N(mn_ce_attrs, "ignore_index", o.ignore_index, MN_ATTR_INT), N(mn_ce_attrs, "reduction", o.reduction, MN_ATTR_INT),
    N(mn_ce_attrs, "label_smoothing", o.label_smoothing, MN_ATTR_FLOAT), END };
const mn_attr_field mn__mn_mse_attrs_fields[] = { F(mn_mse_attrs, reduction, MN_ATTR_INT), END };
const mn_attr_field mn__mn_slice_attrs_fields[] = {
    F(mn_slice_attrs, axis, MN_ATTR_INT), F(mn_slice_attrs, start, MN_ATTR_INT64), F(mn_slice_attrs, stop, MN_ATTR_INT64),
    F(mn_slice_attrs, step, MN_ATTR_INT64), END };
const mn_attr_field mn__mn_slice_back_attrs_fields[] = {
    N(mn_slice_back_attrs, "axis", s.axis, MN_ATTR_INT), N(mn_slice_back_attrs, "start", s.start, MN_ATTR_INT64),
    N(mn_slice_back_attrs, "stop", s.stop, MN_ATTR_INT64), N(mn_slice_back_attrs, "step", s.step, MN_ATTR_INT64),
    F(mn_slice_back_attrs, in_shape, MN_ATTR_SHAPE), END };
const mn_attr_field mn__mn_cat_attrs_fields[] = { F(mn_cat_attrs, axis, MN_ATTR_INT), END };
const mn_attr_field mn__mn_scatter_attrs_fields[] = { F(mn_scatter_attrs, axis, MN_ATTR_INT), F(mn_scatter_attrs, in_shape, MN_ATTR_SHAPE), END };
const mn_attr_field mn__mn_squeeze_attrs_fields[] = { F(mn_squeeze_attrs, axis, MN_ATTR_INT), F(mn_squeeze_attrs, all, MN_ATTR_BOOL), END };
const mn_attr_field mn__mn_act_attrs_fields[] = {
    F(mn_act_attrs, kind, MN_ATTR_INT), F(mn_act_attrs, a, MN_ATTR_FLOAT), F(mn_act_attrs, b, MN_ATTR_FLOAT), END };
const mn_attr_field mn__mn_axis_reduce_attrs_fields[] = {
    F(mn_axis_reduce_attrs, axis, MN_ATTR_INT), F(mn_axis_reduce_attrs, keepdim, MN_ATTR_BOOL), END };
const mn_attr_field mn__mn_var_attrs_fields[] = {
    F(mn_var_attrs, axes, MN_ATTR_UINT), F(mn_var_attrs, keepdim, MN_ATTR_BOOL), F(mn_var_attrs, correction, MN_ATTR_FLOAT), END };
const mn_attr_field mn__mn_ln_attrs_fields[] = { F(mn_ln_attrs, ndims, MN_ATTR_INT), F(mn_ln_attrs, eps, MN_ATTR_FLOAT), END };
const mn_attr_field mn__mn_dropout_attrs_fields[] = {
    F(mn_dropout_attrs, p, MN_ATTR_FLOAT), F(mn_dropout_attrs, training, MN_ATTR_BOOL), F(mn_dropout_attrs, stream, MN_ATTR_UINT), END };
const mn_attr_field mn__mn_random_attrs_fields[] = {
    F(mn_random_attrs, shape, MN_ATTR_SHAPE), F(mn_random_attrs, a, MN_ATTR_FLOAT), F(mn_random_attrs, b, MN_ATTR_FLOAT),
    F(mn_random_attrs, stream, MN_ATTR_UINT), END };
const mn_attr_field mn__mn_fill_attrs_fields[] = {
    F(mn_fill_attrs, shape, MN_ATTR_SHAPE), F(mn_fill_attrs, value, MN_ATTR_FLOAT), F(mn_fill_attrs, dtype, MN_ATTR_DTYPE), END };
const mn_attr_field mn__mn_arange_attrs_fields[] = {
    F(mn_arange_attrs, start, MN_ATTR_DOUBLE), F(mn_arange_attrs, end, MN_ATTR_DOUBLE), F(mn_arange_attrs, step, MN_ATTR_DOUBLE),
    F(mn_arange_attrs, dtype, MN_ATTR_DTYPE), END };
const mn_attr_field mn__mn_one_hot_attrs_fields[] = {
    F(mn_one_hot_attrs, num_classes, MN_ATTR_INT), F(mn_one_hot_attrs, dtype, MN_ATTR_DTYPE), END };
const mn_attr_field mn__mn_cast_attrs_fields[] = { F(mn_cast_attrs, dtype, MN_ATTR_DTYPE), END };
const mn_attr_field mn__mn_loss_attrs_fields[] = {
    F(mn_loss_attrs, reduction, MN_ATTR_INT), F(mn_loss_attrs, beta, MN_ATTR_FLOAT), F(mn_loss_attrs, ignore_index, MN_ATTR_INT),
    F(mn_loss_attrs, log_target, MN_ATTR_BOOL), END };
const mn_attr_field mn__mn_attention_attrs_fields[] = {
    F(mn_attention_attrs, heads, MN_ATTR_INT64), F(mn_attention_attrs, causal, MN_ATTR_BOOL), F(mn_attention_attrs, scale, MN_ATTR_FLOAT),
    F(mn_attention_attrs, dropout, MN_ATTR_FLOAT), F(mn_attention_attrs, stream, MN_ATTR_UINT), END };

/* The bytes of one field that carry its value (a shape: ndim and its dims). */
static size_t field_bytes(const mn_attr_field *f, const void *a)
{
    switch (f->type) {
    case MN_ATTR_BOOL: return sizeof(bool);
    case MN_ATTR_INT: case MN_ATTR_UINT: case MN_ATTR_DTYPE: case MN_ATTR_FLOAT: return 4;
    case MN_ATTR_INT64: case MN_ATTR_DOUBLE: return 8;
    case MN_ATTR_DIMS: return MN_MAX_DIMS * sizeof(int);
    case MN_ATTR_SHAPE: return sizeof(mn_shape);     /* compared and hashed by ndim and dims instead */
    }
    (void)a;
    return 0;
}

static bool field_equal(const mn_attr_field *f, const void *a, const void *b)
{
    const char *x = (const char *)a + f->offset, *y = (const char *)b + f->offset;
    if (f->type != MN_ATTR_SHAPE) return memcmp(x, y, field_bytes(f, a)) == 0;
    const mn_shape *s = (const mn_shape *)x, *t = (const mn_shape *)y;
    return mn_shape_eq(*s, *t);
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001B3ull;
    return h;
}

static uint64_t field_hash(const mn_attr_field *f, const void *a, uint64_t h)
{
    const char *x = (const char *)a + f->offset;
    if (f->type != MN_ATTR_SHAPE) return mix(h, x, field_bytes(f, a));
    const mn_shape *s = (const mn_shape *)x;
    int nd = s->ndim < 0 ? 0 : s->ndim > MN_MAX_DIMS ? MN_MAX_DIMS : s->ndim;
    h = mix(h, &s->ndim, sizeof s->ndim);
    return mix(h, s->d, (size_t)nd * sizeof *s->d);
}

bool mn__attrs_equal(const mn_op_def *op, const void *a, const void *b)
{
    if (!op->attr_size) return true;
    if (!a || !b) return a == b;
    if (!op->attr_fields) return memcmp(a, b, op->attr_size) == 0;
    for (const mn_attr_field *f = op->attr_fields; f->name; f++)
        if (!field_equal(f, a, b)) return false;
    return true;
}

uint64_t mn__attrs_hash(const mn_op_def *op, const void *a, uint64_t h)
{
    if (!op->attr_size || !a) return h;
    if (!op->attr_fields) return mix(h, a, op->attr_size);
    for (const mn_attr_field *f = op->attr_fields; f->name; f++) h = field_hash(f, a, h);
    return h;
}

static int value_str(const mn_attr_field *f, const void *a, char *buf, size_t n)
{
    const char *x = (const char *)a + f->offset;
    char s[96];
    switch (f->type) {
    case MN_ATTR_BOOL: return snprintf(buf, n, "%s", *(const bool *)x ? "true" : "false");
    case MN_ATTR_INT: return snprintf(buf, n, "%d", *(const int *)x);
    case MN_ATTR_UINT: return snprintf(buf, n, "%u", *(const unsigned *)x);
    case MN_ATTR_INT64: return snprintf(buf, n, "%lld", (long long)*(const int64_t *)x);
    case MN_ATTR_FLOAT: return snprintf(buf, n, "%g", (double)*(const float *)x);
    case MN_ATTR_DOUBLE: return snprintf(buf, n, "%g", *(const double *)x);
    case MN_ATTR_DTYPE: return snprintf(buf, n, "%s", mn_dtype_name(*(const mn_dtype *)x));
    case MN_ATTR_SHAPE: return snprintf(buf, n, "%s", mn_shape_str(*(const mn_shape *)x, s, sizeof s));
    case MN_ATTR_DIMS: {
        const int *d = (const int *)x;
        return snprintf(buf, n, "[%d,%d,%d,%d,...]", d[0], d[1], d[2], d[3]);
    }
    }
    return 0;
}

void mn__attrs_str(const mn_op_def *op, const void *a, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    if (!a || !op->attr_size) return;
    if (!op->attr_fields) {
        if (op->attr_str) op->attr_str(a, buf, n);
        return;
    }
    for (const mn_attr_field *f = op->attr_fields; f->name && k + 1 < n; f++) {
        int w = snprintf(buf + k, n - k, "%s%s=", k ? " " : "", f->name);
        if (w < 0 || (size_t)w >= n - k) break;
        k += (size_t)w;
        w = value_str(f, a, buf + k, n - k);
        if (w < 0 || (size_t)w >= n - k) break;
        k += (size_t)w;
    }
}

/* Writes one named value into its field; false if the value does not fit the type. */
static bool set_field(const mn_attr_field *f, void *a, const mn_attr_value *v)
{
    char *x = (char *)a + f->offset;
    double d = v->value;
    /* range first: converting an infinite, NaN or out-of-range double to an integer is undefined
     * (a float field's -inf, MaxPool's pad value, reached the int64 test: fuzz_onnx) */
    bool whole = d >= -9.2e18 && d <= 9.2e18 && d == (double)(int64_t)d;
    switch (f->type) {
    case MN_ATTR_BOOL: *(bool *)x = d != 0; return d == 0 || d == 1;
    case MN_ATTR_INT: case MN_ATTR_DTYPE: return whole && d >= -2147483648.0 && d <= 2147483647.0 && (*(int *)x = (int)d, true);
    case MN_ATTR_UINT: return whole && d >= 0 && d <= 4294967295.0 && (*(unsigned *)x = (unsigned)d, true);
    case MN_ATTR_INT64: return whole && (*(int64_t *)x = (int64_t)d, true);
    case MN_ATTR_FLOAT: *(float *)x = (float)d; return true;
    case MN_ATTR_DOUBLE: *(double *)x = d; return true;
    case MN_ATTR_SHAPE: *(mn_shape *)x = v->shape; return v->shape.ndim >= 0 && v->shape.ndim <= MN_MAX_DIMS;
    case MN_ATTR_DIMS:
        for (int i = 0; i < MN_MAX_DIMS; i++) ((int *)x)[i] = i < v->shape.ndim ? (int)v->shape.d[i] : 0;
        return v->shape.ndim >= 0 && v->shape.ndim <= MN_MAX_DIMS;
    }
    return false;
}

mn_node *mn_op_named(mn_graph *g, const char *name, mn_node *const *inputs, int n, const mn_attr_value *values, int nvalues)
{
    if (!g || mn_graph_status(g)) { mn__error(g ? mn_graph_status(g) : MN_ERR_MISUSE, "op_named: %s", mn_graph_errmsg(g)); return NULL; }
    const mn_op_def *op = mn_op_find(name);
    if (!op) { mn__graph_fail(g, MN_ERR_NOTFOUND, "op \"%s\": not in the registry", name ? name : "(null)"); return NULL; }
    if (nvalues < 0 || (nvalues > 0 && !values)) { mn__graph_fail(g, MN_ERR_MISUSE, "%s: bad attribute list", op->name); return NULL; }
    if (op->attr_size && !op->attr_fields) { mn__graph_fail(g, MN_ERR_UNSUPPORTED, "%s: its attributes have no schema", op->name); return NULL; }
    void *a = op->attr_size ? calloc(1, op->attr_size) : NULL;
    if (op->attr_size && !a) { mn__graph_fail(g, MN_ERR_NOMEM, "%s: out of memory", op->name); return NULL; }
    for (int i = 0; i < nvalues; i++) {
        const mn_attr_field *f = op->attr_fields;
        while (f && f->name && (!values[i].name || strcmp(f->name, values[i].name))) f++;
        if (!f || !f->name) {
            mn__graph_fail(g, MN_ERR_INVALID, "%s: no attribute \"%s\"", op->name, values[i].name ? values[i].name : "(null)");
            free(a);
            return NULL;
        }
        if (!set_field(f, a, &values[i])) {
            mn__graph_fail(g, MN_ERR_INVALID, "%s: attribute \"%s\" cannot hold %g", op->name, f->name, values[i].value);
            free(a);
            return NULL;
        }
    }
    mn_node *y = mn_op(g, op->name, inputs, n, a, op->attr_size);
    free(a);
    return y;
}
