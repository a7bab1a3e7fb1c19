/* onnx/export.c: mn_onnx_export writes the forward graph that computes the
 * given outputs as an ONNX model (opset 17): inputs stay inputs, parameters
 * become initializers holding their current values, constants become
 * initializers, and each op node becomes ONNX nodes through the export
 * table below (keyed by registry op name). Invariant: everything the model
 * points to is owned by one list and freed after packing. */
#include "internal.h"
#include "../graph/graph.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mn_graph *g;
    void **owned;
    int nowned, capowned;
    Onnx__NodeProto **nodes;
    int nnodes, capnodes;
    Onnx__TensorProto **inits;
    int ninits, capinits;
    Onnx__ValueInfoProto **inputs;
    int ninputs;
    int tmp;             /* counter for temporary value names */
    bool oom;
} exporter;

static void *own(exporter *e, void *p)
{
    if (!p) {
        e->oom = true;
        return NULL;
    }
    if (e->nowned == e->capowned) {
        int cap = e->capowned ? e->capowned * 2 : 256;
        void **n = realloc(e->owned, (size_t)cap * sizeof *n);
        if (!n) {
            free(p);
            e->oom = true;
            return NULL;
        }
        e->owned = n;
        e->capowned = cap;
    }
    e->owned[e->nowned++] = p;
    return p;
}

static void *zalloc(exporter *e, size_t n) { return own(e, calloc(1, n ? n : 1)); }
static char *sdup(exporter *e, const char *s) { return own(e, strdup(s)); }

/* Appends p to a growing array of pointers. */
static bool push(exporter *e, void ***arr, int *n, int *cap, void *p)
{
    if (!p) return false;
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 64;
        void **a = realloc(*arr, (size_t)c * sizeof *a);
        if (!a) {
            e->oom = true;
            return false;
        }
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
    return true;
}

/* The ONNX value name of a node. */
static char *vname(exporter *e, const mn_node *n)
{
    char buf[64];
    if (n->kind == MN_NODE_INPUT || n->kind == MN_NODE_PARAM) return sdup(e, n->name);
    snprintf(buf, sizeof buf, "v%d", n->id);
    return sdup(e, buf);
}

static char *tmpname(exporter *e)
{
    char buf[32];
    snprintf(buf, sizeof buf, "t%d", e->tmp++);
    return sdup(e, buf);
}

static Onnx__NodeProto *node(exporter *e, const char *op, int nin, const char *const *in, const char *out)
{
    Onnx__NodeProto *n = zalloc(e, sizeof *n);
    if (!n) return NULL;
    onnx__node_proto__init(n);
    n->op_type = sdup(e, op);
    n->input = zalloc(e, (size_t)(nin ? nin : 1) * sizeof(char *));
    n->output = zalloc(e, sizeof(char *));
    if (!n->input || !n->output) return NULL;
    for (int i = 0; i < nin; i++) n->input[i] = sdup(e, in[i]);
    n->n_input = (size_t)nin;
    n->output[0] = sdup(e, out);
    n->n_output = 1;
    push(e, (void ***)&e->nodes, &e->nnodes, &e->capnodes, n);
    return n;
}

static Onnx__AttributeProto *attr(exporter *e, Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType type)
{
    if (!n) return NULL;
    Onnx__AttributeProto *a = zalloc(e, sizeof *a);
    Onnx__AttributeProto **arr = zalloc(e, (n->n_attribute + 1) * sizeof *arr);
    if (!a || !arr) return NULL;
    onnx__attribute_proto__init(a);
    a->name = sdup(e, name);
    a->has_type = 1;
    a->type = type;
    if (n->n_attribute) memcpy(arr, n->attribute, n->n_attribute * sizeof *arr);
    arr[n->n_attribute++] = a;
    n->attribute = arr;
    return a;
}

static void attr_int(exporter *e, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

static void attr_float(exporter *e, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

static void attr_ints(exporter *e, Onnx__NodeProto *n, const char *name, const int64_t *v, int k)
{
    Onnx__AttributeProto *a = attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *c = zalloc(e, (size_t)(k ? k : 1) * sizeof *c);
    if (!a || !c) return;
    memcpy(c, v, (size_t)k * sizeof *c);
    a->ints = c;
    a->n_ints = (size_t)k;
}

static Onnx__NodeProto *node(exporter *e, const char *op, int nin, const char *const *in, const char *out);
static Onnx__AttributeProto *attr(exporter *e, Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType type);

/* A tensor of float, int32 or int64 data: an initializer for a parameter
 * (name given: trainable on re-import), otherwise a Constant node (a
 * constant on re-import). Returns the value's name. */
static char *init_tensor(exporter *e, const char *name, int elem, mn_shape s, const void *data)
{
    Onnx__TensorProto *t = zalloc(e, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    t->name = name ? sdup(e, name) : tmpname(e);
    t->has_data_type = 1;
    t->data_type = elem;
    t->dims = zalloc(e, (size_t)(s.ndim ? s.ndim : 1) * sizeof(int64_t));
    if (!t->dims) return NULL;
    for (int i = 0; i < s.ndim; i++) t->dims[i] = s.d[i];
    t->n_dims = (size_t)s.ndim;
    size_t bytes = (size_t)mn_shape_numel(s) * (elem == OX_INT64 ? 8 : 4);
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = zalloc(e, bytes);
    if (!t->raw_data.data) return NULL;
    memcpy(t->raw_data.data, data, bytes);
    if (name) {
        push(e, (void ***)&e->inits, &e->ninits, &e->capinits, t);
        return t->name;
    }
    Onnx__AttributeProto *a = attr(e, node(e, "Constant", 0, NULL, t->name), "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    if (a) a->t = t;
    return t->name;
}

static char *const_ints(exporter *e, const int64_t *v, int k)
{
    return init_tensor(e, NULL, OX_INT64, MN_SHAPE(k), v);
}

static char *const_float(exporter *e, float v)
{
    return init_tensor(e, NULL, OX_FLOAT, MN_SCALAR, &v);
}

/* ---- the export table: one emitter per registry op ---- */

typedef bool (*emit_fn)(exporter *e, const mn_node *n, char **in, const char *out);
typedef struct { const char *op, *onnx; emit_fn emit; } ex_entry;

/* Same op and inputs under the ONNX name. */
static bool emit_same(exporter *e, const mn_node *n, char **in, const char *out);

static bool emit_square(exporter *e, const mn_node *n, char **in, const char *out)
{
    (void)n;
    return node(e, "Mul", 2, (const char *[]){ in[0], in[0] }, out) != NULL;
}

static bool emit_scale(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_scale_attrs *a = n->attrs;
    return node(e, "Mul", 2, (const char *[]){ in[0], const_float(e, a->s) }, out) != NULL;
}

static bool emit_rsqrt(exporter *e, const mn_node *n, char **in, const char *out)
{
    (void)n;
    char *t = tmpname(e);
    return node(e, "Sqrt", 1, (const char *[]){ in[0] }, t) && node(e, "Reciprocal", 1, (const char *[]){ t }, out);
}

/* Transposes the last two dims of value v of rank r into a new name. */
static char *swap_last(exporter *e, const char *v, int r)
{
    int64_t perm[MN_MAX_DIMS];
    for (int i = 0; i < r; i++) perm[i] = i;
    perm[r - 1] = r - 2;
    perm[r - 2] = r - 1;
    char *t = tmpname(e);
    attr_ints(e, node(e, "Transpose", 1, (const char *[]){ v }, t), "perm", perm, r);
    return t;
}

static bool emit_matmul(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_matmul_attrs *a = n->attrs;
    char *x = a->trans_a ? swap_last(e, in[0], n->in_desc[0].shape.ndim) : in[0];
    char *y = a->trans_b ? swap_last(e, in[1], n->in_desc[1].shape.ndim) : in[1];
    return node(e, "MatMul", 2, (const char *[]){ x, y }, out) != NULL;
}

/* Any op whose output is its input's bytes under another shape. */
static bool emit_reshape(exporter *e, const mn_node *n, char **in, const char *out)
{
    return node(e, "Reshape", 2, (const char *[]){ in[0], const_ints(e, n->desc.shape.d, n->desc.shape.ndim) }, out) != NULL;
}

static bool emit_expand(exporter *e, const mn_node *n, char **in, const char *out)
{
    return node(e, "Expand", 2, (const char *[]){ in[0], const_ints(e, n->desc.shape.d, n->desc.shape.ndim) }, out) != NULL;
}

static bool emit_permute(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_permute_attrs *a = n->attrs;
    int64_t p[MN_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) p[i] = a->perm[i];
    attr_ints(e, node(e, "Transpose", 1, (const char *[]){ in[0] }, out), "perm", p, a->ndim);
    return !e->oom;
}

static int axis_of(int axis, int rank) { return axis < 0 ? axis + rank : axis; }

static bool emit_slice(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_slice_attrs *a = n->attrs;
    int64_t ax = axis_of(a->axis, n->in_desc[0].shape.ndim), st = a->start, sp = a->step;
    int64_t en = a->stop;
    return node(e, "Slice", 5, (const char *[]){ in[0], const_ints(e, &st, 1), const_ints(e, &en, 1), const_ints(e, &ax, 1), const_ints(e, &sp, 1) }, out) != NULL;
}

static bool emit_concat(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_cat_attrs *a = n->attrs;
    attr_int(e, node(e, "Concat", n->nin, (const char *const *)in, out), "axis", axis_of(a->axis, n->desc.shape.ndim));
    return !e->oom;
}

static bool emit_gather(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_cat_attrs *a = n->attrs;
    attr_int(e, node(e, "Gather", 2, (const char *[]){ in[0], in[1] }, out), "axis", axis_of(a->axis, n->in_desc[0].shape.ndim));
    return !e->oom;
}

/* Softmax (log: LogSoftmax) over axis as mnemo's ops define it: a row of
 * only -inf (every key masked) gives 0 (LogSoftmax: -inf) where ONNX's
 * gives NaN. Where(ReduceMax(x) == -inf, 0, Softmax(x)): the NaN of such
 * a row is never selected, and every other row is Softmax's own. */
static bool softmax_rows(exporter *e, const char *x, int64_t axis, bool log, const char *out)
{
    char *mx = tmpname(e), *empty = tmpname(e), *p = tmpname(e);
    Onnx__NodeProto *r = node(e, "ReduceMax", 1, (const char *[]){ x }, mx);
    attr_ints(e, r, "axes", &axis, 1);
    attr_int(e, r, "keepdims", 1);
    node(e, "Equal", 2, (const char *[]){ mx, const_float(e, -INFINITY) }, empty);
    attr_int(e, node(e, log ? "LogSoftmax" : "Softmax", 1, (const char *[]){ x }, p), "axis", axis);
    node(e, "Where", 3, (const char *[]){ empty, const_float(e, log ? -INFINITY : 0.0f), p }, out);
    return !e->oom;
}

/* softmax/log_softmax; a mask input is added, causal adds -inf above the diagonal. */
static bool emit_softmax(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_axis_attrs *a = n->attrs;
    char *x = in[0];
    if (n->nin > 1) {
        char *t = tmpname(e);
        node(e, "Add", 2, (const char *[]){ x, in[1] }, t);
        x = t;
    }
    if (a->causal) {
        mn_shape s = n->desc.shape;
        int64_t R = s.d[s.ndim - 2], C = s.d[s.ndim - 1];
        float *m = malloc((size_t)(R * C) * sizeof *m);
        if (!m) return false;
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) m[i * C + j] = j > i ? -INFINITY : 0.0f;
        char *c = init_tensor(e, NULL, OX_FLOAT, MN_SHAPE(R, C), m), *t = tmpname(e);
        free(m);
        node(e, "Add", 2, (const char *[]){ x, c }, t);
        x = t;
    }
    return softmax_rows(e, x, a->axis, strcmp(n->op->name, "softmax") != 0, out);
}

/* sum, mean over a bit mask of axes. */
static bool emit_reduce(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_reduce_attrs *a = n->attrs;
    int64_t axes[MN_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < n->in_desc[0].shape.ndim; i++)
        if (a->axes & (1u << i)) axes[k++] = i;
    Onnx__NodeProto *r;
    if (!strcmp(n->op->name, "sum")) r = node(e, "ReduceSum", 2, (const char *[]){ in[0], const_ints(e, axes, k) }, out);
    else {
        r = node(e, "ReduceMean", 1, (const char *[]){ in[0] }, out);
        attr_ints(e, r, "axes", axes, k);
    }
    attr_int(e, r, "keepdims", a->keepdim);
    return !e->oom;
}

static bool emit_axis_reduce(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_axis_reduce_attrs *a = n->attrs;
    int64_t ax = axis_of(a->axis, n->in_desc[0].shape.ndim);
    const char *op = !strcmp(n->op->name, "max") ? "ReduceMax" : !strcmp(n->op->name, "min") ? "ReduceMin" : "ReduceLogSumExp";
    bool arg = !strncmp(n->op->name, "arg", 3);
    if (arg) {
        char *t = tmpname(e);
        Onnx__NodeProto *r = node(e, strcmp(n->op->name, "argmax") ? "ArgMin" : "ArgMax", 1, (const char *[]){ in[0] }, t);
        attr_int(e, r, "axis", ax);
        attr_int(e, r, "keepdims", a->keepdim);
        attr_int(e, node(e, "Cast", 1, (const char *[]){ t }, out), "to", OX_INT32);
        return !e->oom;
    }
    Onnx__NodeProto *r = node(e, op, 1, (const char *[]){ in[0] }, out);
    attr_ints(e, r, "axes", &ax, 1);
    attr_int(e, r, "keepdims", a->keepdim);
    return !e->oom;
}

static bool emit_layer_norm(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_ln_attrs *a = n->attrs;
    mn_shape s = { .ndim = a->ndims };
    for (int i = 0; i < a->ndims; i++) s.d[i] = n->desc.shape.d[n->desc.shape.ndim - a->ndims + i];
    char *w = n->nin > 2 ? in[2] : NULL, *b = n->nin > 3 ? in[3] : NULL;
    if (!w) {
        float *ones = malloc((size_t)mn_shape_numel(s) * sizeof *ones);
        for (int64_t i = 0; ones && i < mn_shape_numel(s); i++) ones[i] = 1.0f;
        w = ones ? init_tensor(e, NULL, OX_FLOAT, s, ones) : NULL;
        free(ones);
    }
    Onnx__NodeProto *r = node(e, "LayerNormalization", b ? 3 : 2, (const char *[]){ in[0], w, b }, out);
    attr_int(e, r, "axis", -a->ndims);
    attr_float(e, r, "epsilon", a->eps);
    return !e->oom;
}

/* layer_norm_stats feeds only layer_norm, whose ONNX form recomputes it. */
static bool emit_nothing(exporter *e, const mn_node *n, char **in, const char *out)
{
    (void)e;
    (void)n;
    (void)in;
    (void)out;
    return true;
}

static bool emit_act(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_act_attrs *a = n->attrs;
    const char *op = n->op->name;
    if (!strcmp(op, "leaky_relu")) attr_float(e, node(e, "LeakyRelu", 1, (const char *[]){ in[0] }, out), "alpha", a->a);
    else if (!strcmp(op, "elu")) attr_float(e, node(e, "Elu", 1, (const char *[]){ in[0] }, out), "alpha", a->a);
    else if (!strcmp(op, "clamp"))
        node(e, "Clip", 3, (const char *[]){ in[0], const_float(e, a->a), const_float(e, a->b) }, out);
    else if (!strcmp(op, "pow")) node(e, "Pow", 2, (const char *[]){ in[0], const_float(e, a->a) }, out);
    else if (!strcmp(op, "softplus")) {
        if (a->a != 1.0f) return false;
        node(e, "Softplus", 1, (const char *[]){ in[0] }, out);
    } else if (!strcmp(op, "silu")) {
        char *t = tmpname(e);
        node(e, "Sigmoid", 1, (const char *[]){ in[0] }, t);
        node(e, "Mul", 2, (const char *[]){ in[0], t }, out);
    } else if (!strcmp(op, "gelu") && a->kind == MN_ACT_GELU_ERF) {
        /* 0.5 x (1 + erf(x / sqrt 2)) */
        char *t1 = tmpname(e), *t2 = tmpname(e), *t3 = tmpname(e), *t4 = tmpname(e);
        node(e, "Mul", 2, (const char *[]){ in[0], const_float(e, (float)M_SQRT1_2) }, t1);
        node(e, "Erf", 1, (const char *[]){ t1 }, t2);
        node(e, "Add", 2, (const char *[]){ t2, const_float(e, 1.0f) }, t3);
        node(e, "Mul", 2, (const char *[]){ in[0], t3 }, t4);
        node(e, "Mul", 2, (const char *[]){ t4, const_float(e, 0.5f) }, out);
    } else
        return false;
    return !e->oom;
}

static bool emit_compare(exporter *e, const mn_node *n, char **in, const char *out)
{
    const char *op = n->op->name;
    char *t = tmpname(e);
    bool ne = !strcmp(op, "ne");
    const char *on = !strcmp(op, "gt") ? "Greater" : !strcmp(op, "ge") ? "GreaterOrEqual" : !strcmp(op, "lt") ? "Less"
                   : !strcmp(op, "le") ? "LessOrEqual" : "Equal";
    node(e, on, 2, (const char *[]){ in[0], in[1] }, t);
    if (ne) {
        char *u = tmpname(e);
        node(e, "Not", 1, (const char *[]){ t }, u);
        t = u;
    }
    attr_int(e, node(e, "Cast", 1, (const char *[]){ t }, out), "to", OX_FLOAT);
    return !e->oom;
}

static bool emit_where(exporter *e, const mn_node *n, char **in, const char *out)
{
    (void)n;
    char *c = tmpname(e);
    attr_int(e, node(e, "Cast", 1, (const char *[]){ in[0] }, c), "to", OX_BOOL);
    return node(e, "Where", 3, (const char *[]){ c, in[1], in[2] }, out) != NULL;
}

static bool emit_cast(exporter *e, const mn_node *n, char **in, const char *out)
{
    attr_int(e, node(e, "Cast", 1, (const char *[]){ in[0] }, out), "to", n->desc.dtype == MN_F32 ? OX_FLOAT : OX_INT32);
    return !e->oom;
}

static bool emit_dropout(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_dropout_attrs *a = n->attrs;
    if (a->training && a->p > 0) return false;
    return node(e, "Identity", 1, (const char *[]){ in[0] }, out) != NULL;
}

static bool emit_fill(exporter *e, const mn_node *n, char **in, const char *out)
{
    (void)in;
    const mn_fill_attrs *a = n->attrs;
    int64_t k = mn_shape_numel(n->desc.shape);
    void *buf = malloc((size_t)(k ? k : 1) * 4);
    if (!buf) return false;
    for (int64_t i = 0; i < k; i++) {
        if (a->dtype == MN_F32) ((float *)buf)[i] = a->value;
        else ((int32_t *)buf)[i] = (int32_t)a->value;
    }
    char *c = init_tensor(e, NULL, a->dtype == MN_F32 ? OX_FLOAT : OX_INT32, n->desc.shape, buf);
    free(buf);
    return c && node(e, "Identity", 1, (const char *[]){ c }, out);
}

/* arange: its values, computed here (they depend on attributes only). */
static bool emit_arange(exporter *e, const mn_node *n, char **in, const char *out)
{
    (void)in;
    const mn_arange_attrs *a = n->attrs;
    int64_t k = mn_shape_numel(n->desc.shape);
    void *buf = malloc((size_t)(k ? k : 1) * 4);
    if (!buf) return false;
    for (int64_t i = 0; i < k; i++) {
        double v = a->start + (double)i * a->step;
        if (a->dtype == MN_F32) ((float *)buf)[i] = (float)v;
        else ((int32_t *)buf)[i] = (int32_t)v;
    }
    char *c = init_tensor(e, NULL, a->dtype == MN_F32 ? OX_FLOAT : OX_INT32, n->desc.shape, buf);
    free(buf);
    return c && node(e, "Identity", 1, (const char *[]){ c }, out);
}

/* One head split of qkv: columns [part E, (part + 1) E) as [B, H, T, dh]
 * (perm 0,2,1,3) or, for the keys, [B, H, dh, T] (perm 0,2,3,1). */
static char *attention_part(exporter *e, const char *qkv, mn_shape s, int64_t H, int part, bool keys)
{
    int64_t E = s.d[2] / 3, st = part * E, en = (part + 1) * E, ax = 2, one = 1;
    int64_t heads[4] = { s.d[0], s.d[1], H, E / H }, perm[4] = { 0, 2, keys ? 3 : 1, keys ? 1 : 3 };
    char *sl = tmpname(e), *r = tmpname(e), *t = tmpname(e);
    node(e, "Slice", 5, (const char *[]){ qkv, const_ints(e, &st, 1), const_ints(e, &en, 1), const_ints(e, &ax, 1), const_ints(e, &one, 1) }, sl);
    node(e, "Reshape", 2, (const char *[]){ sl, const_ints(e, heads, 4) }, r);
    attr_ints(e, node(e, "Transpose", 1, (const char *[]){ r }, t), "perm", perm, 4);
    return t;
}

/* self_attention (inference: no dropout): softmax(scale q k^T + masks) v per
 * head, heads merged back to [B, T, E]. A key padding input (nonzero: a
 * padded key) adds -inf to its column; causal adds -inf above the diagonal.
 * A query that sees no key gets 0, as the op gives (softmax_rows). */
static bool emit_attention(exporter *e, const mn_node *n, char **in, const char *out)
{
    const mn_attention_attrs *a = n->attrs;
    if (a->dropout > 0) return false;
    mn_shape s = n->in_desc[0].shape;
    int64_t B = s.d[0], T = s.d[1], E = s.d[2] / 3, H = a->heads;
    char *q = attention_part(e, in[0], s, H, 0, false), *k = attention_part(e, in[0], s, H, 1, true);
    char *v = attention_part(e, in[0], s, H, 2, false), *qk = tmpname(e), *x = tmpname(e);
    node(e, "MatMul", 2, (const char *[]){ q, k }, qk);
    node(e, "Mul", 2, (const char *[]){ qk, const_float(e, a->scale) }, x);
    if (n->nin > 1) {
        int64_t bt[4] = { B, 1, 1, T };
        char *pb = tmpname(e), *pm = tmpname(e), *pr = tmpname(e), *t = tmpname(e);
        attr_int(e, node(e, "Cast", 1, (const char *[]){ in[1] }, pb), "to", OX_BOOL);
        node(e, "Where", 3, (const char *[]){ pb, const_float(e, -INFINITY), const_float(e, 0.0f) }, pm);
        node(e, "Reshape", 2, (const char *[]){ pm, const_ints(e, bt, 4) }, pr);
        node(e, "Add", 2, (const char *[]){ x, pr }, t);
        x = t;
    }
    if (a->causal) {
        float *m = malloc((size_t)(T * T) * sizeof *m);
        if (!m) return false;
        for (int64_t i = 0; i < T; i++)
            for (int64_t j = 0; j < T; j++) m[i * T + j] = j > i ? -INFINITY : 0.0f;
        char *c = init_tensor(e, NULL, OX_FLOAT, MN_SHAPE(T, T), m), *t = tmpname(e);
        free(m);
        node(e, "Add", 2, (const char *[]){ x, c }, t);
        x = t;
    }
    int64_t perm[4] = { 0, 2, 1, 3 }, bte[3] = { B, T, E };
    char *p = tmpname(e), *ctx = tmpname(e), *merged = tmpname(e);
    softmax_rows(e, x, -1, false, p);
    node(e, "MatMul", 2, (const char *[]){ p, v }, ctx);
    attr_ints(e, node(e, "Transpose", 1, (const char *[]){ ctx }, merged), "perm", perm, 4);
    node(e, "Reshape", 2, (const char *[]){ merged, const_ints(e, bte, 3) }, out);
    return !e->oom;
}

static const ex_entry EXPORT[] = {
    { "add", "Add", emit_same }, { "sub", "Sub", emit_same }, { "mul", "Mul", emit_same }, { "div", "Div", emit_same },
    { "maximum", "Max", emit_same }, { "minimum", "Min", emit_same }, { "neg", "Neg", emit_same }, { "exp", "Exp", emit_same },
    { "log", "Log", emit_same }, { "sqrt", "Sqrt", emit_same }, { "tanh", "Tanh", emit_same }, { "sigmoid", "Sigmoid", emit_same },
    { "relu", "Relu", emit_same }, { "abs", "Abs", emit_same }, { "sign", "Sign", emit_same }, { "reciprocal", "Reciprocal", emit_same }, { "erf", "Erf", emit_same },
    { "square", "Mul", emit_square }, { "scale", "Mul", emit_scale }, { "rsqrt", "Sqrt, Reciprocal", emit_rsqrt },
    { "matmul", "MatMul", emit_matmul }, { "reshape", "Reshape", emit_reshape }, { "expand", "Expand", emit_expand },
    { "permute", "Transpose", emit_permute }, { "slice", "Slice", emit_slice }, { "concat", "Concat", emit_concat },
    { "index_select", "Gather", emit_gather }, { "softmax", "ReduceMax, Equal, Softmax, Where", emit_softmax },
    { "log_softmax", "ReduceMax, Equal, LogSoftmax, Where", emit_softmax },
    { "sum", "ReduceSum", emit_reduce }, { "mean", "ReduceMean", emit_reduce }, { "max", "ReduceMax", emit_axis_reduce },
    { "min", "ReduceMin", emit_axis_reduce }, { "logsumexp", "ReduceLogSumExp", emit_axis_reduce },
    { "argmax", "ArgMax", emit_axis_reduce }, { "argmin", "ArgMin", emit_axis_reduce },
    { "layer_norm", "LayerNormalization", emit_layer_norm }, { "layer_norm_stats", "-", emit_nothing },
    { "gelu", "Erf, Mul, Add", emit_act }, { "softplus", "Softplus", emit_act }, { "clamp", "Clip", emit_act },
    { "pow", "Pow", emit_act }, { "leaky_relu", "LeakyRelu", emit_act }, { "elu", "Elu", emit_act }, { "silu", "Sigmoid, Mul", emit_act },
    { "gt", "Greater", emit_compare }, { "ge", "GreaterOrEqual", emit_compare }, { "lt", "Less", emit_compare },
    { "le", "LessOrEqual", emit_compare }, { "eq", "Equal", emit_compare }, { "ne", "Equal, Not", emit_compare },
    { "where", "Where", emit_where }, { "cast", "Cast", emit_cast }, { "dropout", "Identity", emit_dropout },
    { "fill", "Identity", emit_fill }, { "arange", "Constant", emit_arange },
    { "self_attention", "Slice, Reshape, Transpose, MatMul, Mul, Softmax, Where", emit_attention },
    /* the packed recurrent product (ops/packed.c): a MatMul of A and W; the packed copy has no ONNX form */
    { "matmul_packed", "MatMul", emit_matmul }, { "pack_weight", "-", emit_nothing },
};

static bool emit_same(exporter *e, const mn_node *n, char **in, const char *out)
{
    for (size_t i = 0; i < sizeof EXPORT / sizeof EXPORT[0]; i++)
        if (!strcmp(EXPORT[i].op, n->op->name)) return node(e, EXPORT[i].onnx, n->nin, (const char *const *)in, out) != NULL;
    return false;
}

static const ex_entry *export_entry(const char *op)
{
    for (size_t i = 0; i < sizeof EXPORT / sizeof EXPORT[0]; i++)
        if (!strcmp(EXPORT[i].op, op)) return &EXPORT[i];
    return NULL;
}

static Onnx__ValueInfoProto *value_info(exporter *e, const char *name, mn_dtype dt, mn_shape s)
{
    Onnx__ValueInfoProto *v = zalloc(e, sizeof *v);
    Onnx__TypeProto *tp = zalloc(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = zalloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sp = zalloc(e, sizeof *sp);
    Onnx__TensorShapeProto__Dimension **dims = zalloc(e, (size_t)(s.ndim ? s.ndim : 1) * sizeof *dims);
    if (!v || !tp || !tt || !sp || !dims) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    for (int i = 0; i < s.ndim; i++) {
        dims[i] = zalloc(e, sizeof *dims[i]);
        if (!dims[i]) return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[i]);
        dims[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dims[i]->dim_value = s.d[i];
    }
    sp->dim = dims;
    sp->n_dim = (size_t)s.ndim;
    tt->has_elem_type = 1;
    tt->elem_type = dt == MN_F32 ? OX_FLOAT : OX_INT32;
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = sdup(e, name);
    v->type = tp;
    return v;
}

/* Whether an initializer of that name is written already: a parameter
 * read through several nodes (attention's packed bias, sliced per part)
 * is one initializer, as ONNX requires names to be unique. */
static bool has_init(const exporter *e, const char *name)
{
    for (int i = 0; i < e->ninits; i++)
        if (e->inits[i]->name && !strcmp(e->inits[i]->name, name)) return true;
    return false;
}

/* Emits one needed node; MN_ERR_UNSUPPORTED (mn_errmsg) when it has no ONNX form. */
static mn_status emit_node(exporter *e, mn_node *n, Onnx__ValueInfoProto ***inputs, int *ninputs, int *capin)
{
    char *out = vname(e, n);
    if (n->kind == MN_NODE_INPUT) return push(e, (void ***)inputs, ninputs, capin, value_info(e, out, n->desc.dtype, n->desc.shape)) ? MN_OK : MN_ERR_NOMEM;
    if (n->kind == MN_NODE_PARAM && out && has_init(e, out)) return MN_OK;
    if (n->kind == MN_NODE_PARAM) {
        mn_tensor *v = mn_params_value(e->g->P, n->param);
        return v && init_tensor(e, out, OX_FLOAT, v->shape, v->data) ? MN_OK : MN_ERR_NOMEM;
    }
    if (n->kind == MN_NODE_CONST) {
        char *c = init_tensor(e, NULL, n->desc.dtype == MN_F32 ? OX_FLOAT : OX_INT32, n->desc.shape, n->cdata);
        return c && node(e, "Identity", 1, (const char *[]){ c }, out) ? MN_OK : MN_ERR_NOMEM;
    }
    const ex_entry *x = export_entry(n->op->name);
    char *in[64];
    for (int i = 0; i < n->nin && i < 64; i++) in[i] = vname(e, n->in[i]);
    if (!x || n->nin > 64 || !x->emit(e, n, in, out)) {
        if (e->oom) return MN_ERR_NOMEM;
        return mn_set_error(MN_ERR_UNSUPPORTED, "onnx export: op %s (node \"%s\") has no ONNX form", n->op->name, n->name);
    }
    return e->oom ? MN_ERR_NOMEM : MN_OK;
}

static mn_status pack_write(Onnx__ModelProto *mp, const char *path)
{
    size_t len = onnx__model_proto__get_packed_size(mp);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return mn_set_error(MN_ERR_NOMEM, "onnx export: out of memory");
    onnx__model_proto__pack(mp, buf);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f)) ok = false;
    free(buf);
    if (!ok || rename(tmp, path)) {
        remove(tmp);
        return mn_set_error(MN_ERR_IO, "onnx export: cannot write %s", path);
    }
    return MN_OK;
}

static mn_status finish(exporter *e, mn_node *const *outputs, int n, const char *path, Onnx__ValueInfoProto **inputs, int ninputs)
{
    Onnx__ValueInfoProto **outs = zalloc(e, (size_t)n * sizeof *outs);
    for (int k = 0; outs && k < n; k++) {
        const char *name = outputs[k]->name;
        char *v = vname(e, outputs[k]);
        if (v && strcmp(v, name)) node(e, "Identity", 1, (const char *[]){ v }, name);
        outs[k] = value_info(e, name, outputs[k]->desc.dtype, outputs[k]->desc.shape);
    }
    Onnx__GraphProto *gp = zalloc(e, sizeof *gp);
    Onnx__ModelProto *mp = zalloc(e, sizeof *mp);
    Onnx__OperatorSetIdProto *os = zalloc(e, sizeof *os), **osa = zalloc(e, sizeof *osa);
    if (e->oom || !gp || !mp || !os || !osa) return mn_set_error(MN_ERR_NOMEM, "onnx export: out of memory");
    onnx__graph_proto__init(gp);
    onnx__model_proto__init(mp);
    onnx__operator_set_id_proto__init(os);
    gp->name = sdup(e, "mnemo");
    gp->node = e->nodes;
    gp->n_node = (size_t)e->nnodes;
    gp->initializer = e->inits;
    gp->n_initializer = (size_t)e->ninits;
    gp->input = inputs;
    gp->n_input = (size_t)ninputs;
    gp->output = outs;
    gp->n_output = (size_t)n;
    os->domain = sdup(e, "");
    os->has_version = 1;
    os->version = 17;
    osa[0] = os;
    mp->has_ir_version = 1;
    mp->ir_version = 8;
    mp->opset_import = osa;
    mp->n_opset_import = 1;
    mp->producer_name = sdup(e, "mnemo");
    mp->producer_version = sdup(e, mn_version());
    mp->graph = gp;
    return pack_write(mp, path);
}

mn_status mn_onnx_export(mn_graph *g, mn_node *const *outputs, int n, const char *path)
{
    if (!g || !outputs || n < 1 || !path) return mn_set_error(MN_ERR_MISUSE, "onnx export: NULL graph, outputs or path");
    if (mn_graph_status(g)) return mn_graph_status(g);
    bool *need = calloc((size_t)g->n, sizeof *need);
    if (!need) return mn_set_error(MN_ERR_NOMEM, "onnx export: out of memory");
    for (int k = 0; k < n; k++) {
        if (!outputs[k] || outputs[k]->g != g) {
            free(need);
            return mn_set_error(MN_ERR_INVALID, "onnx export: output %d is not a node of this graph", k);
        }
        need[outputs[k]->id] = true;
    }
    for (int i = g->n - 1; i >= 0; i--)
        for (int j = 0; need[i] && j < g->nodes[i]->nin; j++) need[g->nodes[i]->in[j]->id] = true;
    exporter e = { .g = g };
    Onnx__ValueInfoProto **inputs = NULL;
    int ninputs = 0, capin = 0;
    mn_status st = MN_OK;
    for (int i = 0; i < g->n && !st; i++)
        if (need[i]) st = emit_node(&e, g->nodes[i], &inputs, &ninputs, &capin);
    if (st == MN_ERR_NOMEM) mn_set_error(st, "onnx export: out of memory");
    if (!st) st = finish(&e, outputs, n, path, inputs, ninputs);
    for (int i = 0; i < e.nowned; i++) free(e.owned[i]);
    free(e.owned);
    free(e.nodes);
    free(e.inits);
    free(inputs);
    free(need);
    return st;
}
