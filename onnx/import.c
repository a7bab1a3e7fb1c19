/* onnx/import.c: mn_onnx_import reads an ONNX model (protobuf-c code
 * generated at build time from onnx.proto) and builds it into a graph:
 * inputs, initializers as parameters (or constants), then each node through
 * its row of the mapping table (onnx/table.c). A node whose inputs are all
 * fixed at import (and none trainable) is folded: built in a scratch graph,
 * run once, and kept as a constant, so shape arithmetic needs no i64 ops.
 * Invariant: every error fails the graph with the node, op and cause;
 * nothing in a file is trusted (the protobuf parser checks the encoding,
 * this file checks every reference, type and size). */
#include "internal.h"
#include "../graph/graph.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OX_MAX_FILE ((size_t)1 << 31)
#define OX_FOLD_MAX ((int64_t)1 << 20)    /* elements: larger constant inputs are not folded */
#define OX_FOLD_OUT_MAX ((int64_t)1 << 28) /* elements: a folded constant larger than 1 GiB is refused */

struct mn_onnx {
    int opset;
    int nin, nout;
    char **in_names, **out_names;
    mn_node **in_nodes, **out_nodes;
};

typedef struct {
    mn_graph *g;
    const mn_onnx_opts *opts;
    ox_ctx cx;
    ox_val *v;
    int nv, cap;
    int inputs_seen;          /* graph inputs that are not initializers, so far */
} importer;

static void val_free(ox_val *v)
{
    free(v->name);
    mn_tensor_free(v->known);
}

static ox_val *find(importer *im, const char *name)
{
    for (int i = im->nv - 1; i >= 0; i--)
        if (!strcmp(im->v[i].name, name)) return &im->v[i];
    return NULL;
}

/* Adds (or shadows) a value; takes ownership of known. */
static ox_val *add_val(importer *im, const char *name, mn_node *node, mn_tensor *known, int elem, bool trainable)
{
    if (im->nv == im->cap) {
        int cap = im->cap ? im->cap * 2 : 64;
        ox_val *nv = realloc(im->v, (size_t)cap * sizeof *nv);
        if (!nv) {
            mn_tensor_free(known);
            return NULL;
        }
        im->v = nv;
        im->cap = cap;
    }
    ox_val *v = &im->v[im->nv];
    *v = (ox_val){ .name = strdup(name), .node = node, .known = known, .elem = elem, .trainable = trainable };
    if (!v->name) {
        mn_tensor_free(known);
        return NULL;
    }
    im->nv++;
    return v;
}

static mn_tensor *tensor_copy(const mn_tensor *t)
{
    mn_tensor *c = mn_tensor_new(t->dtype, t->shape);
    if (c) memcpy(c->data, t->data, mn_tensor_bytes(t));
    return c;
}

/* The binding of input `name`; one without a name binds the first graph input. */
static const mn_onnx_bind *bind_of(const importer *im, const char *name, bool first)
{
    for (int i = 0; im->opts && i < im->opts->nbinds; i++)
        if (im->opts->binds[i].name ? !strcmp(im->opts->binds[i].name, name) : first) return &im->opts->binds[i];
    return NULL;
}

/* A constant node holding t (and the value recorded as known). */
static ox_val *add_const(importer *im, const char *name, mn_tensor *t, int elem)
{
    mn_node *c = mn_constant(im->g, t->dtype, t->shape, t->data);
    if (!c) {
        mn_tensor_free(t);
        return NULL;
    }
    return add_val(im, name, c, t, elem, false);
}

static mn_status initializer(importer *im, const Onnx__TensorProto *t)
{
    char msg[256];
    const char *name = t->name ? t->name : "";
    if (!name[0]) return mn_graph_fail(im->g, MN_ERR_FORMAT, "onnx: an initializer has no name");
    mn_tensor *x = mn__ox_tensor(t, msg, sizeof msg);
    if (!x) return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "onnx initializer \"%s\": %s", name, msg);
    if (x->dtype != MN_F32 || (im->opts && im->opts->constants)) return add_const(im, name, x, mn__ox_stored_elem(t->data_type)) ? MN_OK : mn_graph_status(im->g);
    mn_params *P = mn_graph_params(im->g);
    int before = mn_params_count(P);
    mn_node *p = mn_param(im->g, name, x->shape, (mn_init){ .kind = MN_INIT_ZEROS });   /* scoped like any parameter */
    if (!p) {
        mn_tensor_free(x);
        return mn_graph_status(im->g);
    }
    if (mn_params_count(P) > before) memcpy(mn_params_value(P, p->param)->data, x->data, mn_tensor_bytes(x));
    return add_val(im, name, p, x, OX_FLOAT, true) ? MN_OK : mn_graph_fail(im->g, MN_ERR_NOMEM, "onnx: out of memory");
}

/* The shape of a graph input from its type, or from a binding. */
static mn_status input_shape(importer *im, const Onnx__ValueInfoProto *vi, const mn_onnx_bind *b, mn_shape *s, int *elem)
{
    const char *name = vi->name;
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "onnx input \"%s\": not a tensor (sequences, maps and optionals are not supported)", name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    *elem = tt->has_elem_type ? tt->elem_type : 0;
    if (mn__ox_stored_elem(*elem) == OX_FLOAT) *elem = OX_FLOAT;   /* double, float16, bfloat16: fed and computed as f32 (docs/onnx.md) */
    if (!mn__ox_elem_supported(*elem))
        return mn_graph_fail(im->g, MN_ERR_DTYPE,
                             "onnx input \"%s\": element type %d is not supported (float, int32, int64, bool, 8-, 16- and 32-bit integers; "
                             "double, float16 and bfloat16 as float)", name, *elem);
    if (b && b->value) {
        *s = b->value->shape;
        return MN_OK;
    }
    if (!tt->shape) return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "onnx input \"%s\": no shape; bind one", name);
    if (tt->shape->n_dim > MN_MAX_DIMS) return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "onnx input \"%s\": %zu dims", name, tt->shape->n_dim);
    s->ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < s->ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || d->dim_value < 0)
            return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "onnx input \"%s\": dim %d is dynamic (\"%s\"); fix it by binding the input's shape",
                                 name, i, d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param ? d->dim_param : "?");
        s->d[i] = d->dim_value;
    }
    if (mn_shape_numel(*s) > ((int64_t)1 << 31)) return mn_graph_fail(im->g, MN_ERR_SHAPE, "onnx input \"%s\": too many elements", name);
    return MN_OK;
}

static mn_status graph_input(importer *im, const Onnx__ValueInfoProto *vi)
{
    if (!vi->name || !vi->name[0]) return mn_graph_fail(im->g, MN_ERR_FORMAT, "onnx: a graph input has no name");
    if (find(im, vi->name)) return MN_OK;     /* an initializer listed as input (IR < 4) */
    const mn_onnx_bind *b = bind_of(im, vi->name, !im->inputs_seen++);
    mn_shape s;
    int elem = 0;
    if (input_shape(im, vi, b, &s, &elem)) return mn_graph_status(im->g);
    mn_dtype dt = elem == OX_FLOAT || elem == OX_BOOL ? MN_F32 : MN_I32;
    if (b && b->constant && b->value) {
        mn_tensor *t = b->value->dtype == dt ? tensor_copy(b->value) : mn_tensor_new(dt, s);
        for (int64_t i = 0; t && b->value->dtype != dt && i < mn_tensor_numel(t); i++) {
            if (dt == MN_F32) mn_f32(t)[i] = (float)mn_i32(b->value)[i];
            else mn_i32(t)[i] = (int32_t)mn_f32(b->value)[i];
        }
        if (!t) return mn_graph_fail(im->g, MN_ERR_NOMEM, "onnx: out of memory");
        return add_const(im, vi->name, t, elem) ? MN_OK : mn_graph_status(im->g);
    }
    for (int i = 0; i < s.ndim; i++)
        if (s.d[i] == 0) return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "onnx input \"%s\": dim %d is 0 (empty tensors are not supported)", vi->name, i);
    mn_node *x = mn_input(im->g, vi->name, dt, s);
    if (!x) return mn_graph_status(im->g);
    return add_val(im, vi->name, x, NULL, elem, false) ? MN_OK : mn_graph_fail(im->g, MN_ERR_NOMEM, "onnx: out of memory");
}

/* "node 3 \"fc1\" (Gemm)" for messages. */
static void node_label(const Onnx__NodeProto *n, int idx, char *buf, size_t len)
{
    const char *name = n->name && n->name[0] ? n->name : n->n_output && n->output[0] ? n->output[0] : "";
    snprintf(buf, len, "onnx node %d \"%s\" (%s)", idx, name, n->op_type ? n->op_type : "?");
}

/* Puts text (and ": ") in front of the graph's message, truncating its end. */
static void prefix_msg(mn_graph *g, const char *text)
{
    size_t cap = sizeof g->msg, p = strlen(text) + 2;
    if (p >= cap) return;
    size_t keep = strnlen(g->msg, cap - 1);
    if (keep > cap - 1 - p) keep = cap - 1 - p;
    memmove(g->msg + p, g->msg, keep);
    memcpy(g->msg, text, p - 2);
    memcpy(g->msg + p - 2, ": ", 2);
    g->msg[p + keep] = 0;
}

/* Puts the node's label in front of the graph's message. */
static mn_status prefix_error(mn_graph *g, const char *label)
{
    if (strncmp(g->msg, "onnx node", 9)) prefix_msg(g, label);
    return g->status ? g->status : MN_ERR_INVALID;
}

typedef struct {
    mn_node *out[64];
    mn_tensor *known[64];
    int elem[64];
} conv_result;

/* Runs the converter into a scratch graph over constant inputs and keeps
 * the results as known values. */
static mn_status fold(importer *im, const ox_entry *e, const Onnx__NodeProto *n, ox_val *const *in, int nin, conv_result *r, int nout)
{
    mn_params *P = mn_params_new();
    mn_graph *g = P ? mn_graph_new(P) : NULL;
    ox_val cv[64], *cin[64];
    mn_status st = g ? MN_OK : MN_ERR_NOMEM;
    for (int i = 0; !st && i < nin; i++) {
        cin[i] = NULL;
        if (!in[i]) continue;
        cv[i] = *in[i];
        cv[i].node = mn_constant(g, in[i]->known->dtype, in[i]->known->shape, in[i]->known->data);
        cin[i] = &cv[i];
    }
    ox_ctx cx = { .opset = im->cx.opset, .entry = e };
    if (!st) st = mn_graph_status(g) ? mn_graph_status(g) : e->conv(&cx, g, n, cin, nin, r->out, r->known, r->elem, nout);
    const mn_node *outs[64];
    int no = 0;
    for (int k = 0; !st && k < nout; k++)
        if (r->out[k] && !r->known[k]) outs[no++] = r->out[k];
    for (int k = 0; !st && k < no; k++) {                  /* a corrupt shape constant must not ask for 200 GB */
        int64_t numel = mn_shape_numel(mn_node_shape(outs[k]));
        if (numel > OX_FOLD_OUT_MAX)
            st = mn_graph_fail(g, MN_ERR_SHAPE, "constant output %d would hold %lld elements (at most %lld are folded)", k,
                               (long long)numel, (long long)OX_FOLD_OUT_MAX);
    }
    mn_exec *ex = NULL;
    if (!st && no) {
        ex = mn_compile(g, NULL, &(mn_compile_opts){ .threads = 1, .outputs = outs, .noutputs = no, .no_backward = true });
        st = ex ? mn_exec_run(ex) : mn_graph_status(g);
        if (ex && st) mn_graph_fail(g, st, "%s", mn_exec_errmsg(ex));
    }
    for (int k = 0; !st && k < nout; k++) {
        if (!r->out[k] || r->known[k]) continue;
        const mn_tensor *v = mn_exec_value(ex, r->out[k]);
        r->known[k] = v ? tensor_copy(v) : NULL;
        if (!r->known[k]) st = mn_graph_fail(g, MN_ERR_NOMEM, "out of memory");
    }
    if (st && g) mn_graph_fail(im->g, st, "%s", mn_graph_errmsg(g));
    else if (st) mn_graph_fail(im->g, st, "out of memory");
    for (int k = 0; k < nout; k++) r->out[k] = NULL;
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
    return st;
}

static bool foldable(ox_val *const *in, int nin)
{
    int present = 0;
    for (int i = 0; i < nin; i++) {
        if (!in[i]) continue;
        if (!in[i]->known || in[i]->trainable || mn_tensor_numel(in[i]->known) > OX_FOLD_MAX) return false;
        present++;
    }
    return present > 0;
}

static mn_status node_outputs(importer *im, const Onnx__NodeProto *n, conv_result *r, ox_val *const *in, int nout)
{
    for (int k = 0; k < nout; k++) {
        const char *name = n->output[k];
        if (!name || !name[0]) {
            mn_tensor_free(r->known[k]);
            continue;
        }
        int elem = r->elem[k] ? r->elem[k] : in[0] ? in[0]->elem : OX_FLOAT;
        ox_val *v;
        if (r->known[k]) v = add_const(im, name, r->known[k], elem);
        else if (r->out[k]) v = add_val(im, name, r->out[k], NULL, elem, false);
        else return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "output %d (\"%s\") is not supported", k, name);
        r->known[k] = NULL;
        if (!v) return mn_graph_status(im->g) ? mn_graph_status(im->g) : mn_graph_fail(im->g, MN_ERR_NOMEM, "out of memory");
    }
    return MN_OK;
}

static mn_status one_node(importer *im, const Onnx__NodeProto *n, int idx)
{
    char label[256];
    node_label(n, idx, label, sizeof label);
    const ox_entry *e = mn__ox_find(n->op_type);
    bool default_domain = !n->domain || !n->domain[0] || !strcmp(n->domain, "ai.onnx");
    if (default_domain ? e && e->domain : !e || !e->domain || strcmp(e->domain, n->domain))
        return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "%s: op %s of domain \"%s\" is not supported", label, n->op_type ? n->op_type : "?",
                             n->domain && n->domain[0] ? n->domain : "ai.onnx");
    if (!e) return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "%s: op %s is not supported (mnemo import --ops lists the supported ones)", label, n->op_type ? n->op_type : "?");
    if (n->n_input > 64 || n->n_output > 64) return mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "%s: more than 64 inputs or outputs", label);
    ox_val *in[64];
    int nin = (int)n->n_input, nout = (int)n->n_output;
    for (int i = 0; i < nin; i++) {
        in[i] = n->input[i][0] ? find(im, n->input[i]) : NULL;
        if (n->input[i][0] && !in[i])
            return mn_graph_fail(im->g, MN_ERR_FORMAT, "%s: input \"%s\" is not a graph input, an initializer or an earlier node's output", label, n->input[i]);
    }
    if (nin && in[0] && mn__ox_elem_narrow(in[0]->elem) && !mn__ox_narrow_ok(e))
        return mn_graph_fail(im->g, MN_ERR_DTYPE, "%s: %s values are computed as int32 and %s could leave their range (it would wrap in ONNX)",
                             label, mn__ox_elem_name(in[0]->elem), e->onnx);
    conv_result r;
    memset(&r, 0, sizeof r);
    im->cx.entry = e;
    mn_status st = foldable(in, nin) ? fold(im, e, n, in, nin, &r, nout) : e->conv(&im->cx, im->g, n, in, nin, r.out, r.known, r.elem, nout);
    if (!st && mn_graph_status(im->g)) st = mn_graph_status(im->g);
    if (!st) st = node_outputs(im, n, &r, in, nout);
    for (int k = 0; k < 64; k++) mn_tensor_free(r.known[k]);     /* every slot: a converter may fill known[0] of a node without outputs */
    if (st) return prefix_error(im->g, label);
    return MN_OK;
}

/* The default domain's opset; a model importing only other domains (the
 * training ops) gets the newest, which none of its nodes reads. */
static int opset_of(const Onnx__ModelProto *m)
{
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx")) return o->has_version ? (int)o->version : 0;
    }
    return m->n_opset_import ? 17 : 1;
}

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

static mn_onnx *result(importer *im, const Onnx__GraphProto *gp)
{
    mn_onnx *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->opset = im->cx.opset;
    m->in_names = calloc(gp->n_input + 1, sizeof(char *));
    m->in_nodes = calloc(gp->n_input + 1, sizeof(mn_node *));
    m->out_names = calloc(gp->n_output + 1, sizeof(char *));
    m->out_nodes = calloc(gp->n_output + 1, sizeof(mn_node *));
    if (!m->in_names || !m->in_nodes || !m->out_names || !m->out_nodes) {
        mn_onnx_free(m);
        return NULL;
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const char *name = gp->input[i]->name;
        ox_val *v = find(im, name);
        if (v && v->trainable) continue;
        bool is_init = false;
        for (size_t k = 0; k < gp->n_initializer; k++) is_init = is_init || (gp->initializer[k]->name && !strcmp(gp->initializer[k]->name, name));
        if (is_init) continue;
        m->in_names[m->nin] = xstrdup(name);
        m->in_nodes[m->nin++] = v && !v->known ? v->node : NULL;
    }
    for (size_t i = 0; i < gp->n_output; i++) {
        ox_val *v = gp->output[i]->name ? find(im, gp->output[i]->name) : NULL;
        if (!v) {
            mn_graph_fail(im->g, MN_ERR_FORMAT, "onnx output \"%s\" is produced by no node", gp->output[i]->name ? gp->output[i]->name : "");
            mn_onnx_free(m);
            return NULL;
        }
        m->out_names[m->nout] = xstrdup(v->name);
        m->out_nodes[m->nout++] = v->node;
    }
    return m;
}

static mn_onnx *build(importer *im, const Onnx__ModelProto *mp)
{
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp) {
        mn_graph_fail(im->g, MN_ERR_FORMAT, "onnx: the model has no graph");
        return NULL;
    }
    im->cx.opset = opset_of(mp);
    if (im->cx.opset < 1 || im->cx.opset > OX_MAX_OPSET) {
        mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "onnx: opset %d of the default domain is not supported (1 to %d: the op definitions mnemo reads)",
                      im->cx.opset, OX_MAX_OPSET);
        return NULL;
    }
    if (gp->n_sparse_initializer) {
        mn_graph_fail(im->g, MN_ERR_UNSUPPORTED, "onnx: sparse initializers are not supported");
        return NULL;
    }
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (initializer(im, gp->initializer[i])) return NULL;
    for (size_t i = 0; i < gp->n_input; i++)
        if (graph_input(im, gp->input[i])) return NULL;
    for (size_t i = 0; i < gp->n_node; i++)
        if (one_node(im, gp->node[i], (int)i)) return NULL;
    return result(im, gp);
}

mn_onnx *mn_onnx_import_buffer(mn_graph *g, const void *data, size_t len, const mn_onnx_opts *opts)
{
    if (!g || mn_graph_status(g)) return NULL;
    if (!data && len) {
        mn_graph_fail(g, MN_ERR_MISUSE, "onnx: NULL buffer");
        return NULL;
    }
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
    if (!mp) {
        mn_graph_fail(g, MN_ERR_FORMAT, "onnx: not a valid ONNX model (the protobuf encoding is malformed)");
        return NULL;
    }
    importer im = { .g = g, .opts = opts };
    mn_onnx *m = build(&im, mp);
    if (!m && !mn_graph_status(g)) mn_graph_fail(g, MN_ERR_NOMEM, "onnx: out of memory");
    for (int i = 0; i < im.nv; i++) val_free(&im.v[i]);
    free(im.v);
    onnx__model_proto__free_unpacked(mp, NULL);
    return m;
}

mn_onnx *mn_onnx_import(mn_graph *g, const char *path, const mn_onnx_opts *opts)
{
    if (!g || mn_graph_status(g)) return NULL;
    FILE *f = path ? mn_fopen_regular(path, "onnx") : NULL;
    if (!f) {
        char why[512];
        snprintf(why, sizeof why, "%s", path ? mn_errmsg() : "onnx (null): no path");
        mn_graph_fail(g, MN_ERR_IO, "%s", why);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len < cap) continue;
        char *nb = cap < OX_MAX_FILE ? realloc(buf, cap * 2) : NULL;
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        mn_graph_fail(g, err ? MN_ERR_IO : MN_ERR_NOMEM, "onnx: cannot read %s (%s)", path, err ? "read error" : "too large or out of memory");
        return NULL;
    }
    mn_onnx *m = mn_onnx_import_buffer(g, buf, len, opts);
    free(buf);
    if (!m) prefix_msg(g, path);
    return m;
}

void mn_onnx_free(mn_onnx *m)
{
    if (!m) return;
    for (int i = 0; m->in_names && i < m->nin; i++) free(m->in_names[i]);
    for (int i = 0; m->out_names && i < m->nout; i++) free(m->out_names[i]);
    free(m->in_names);
    free(m->out_names);
    free(m->in_nodes);
    free(m->out_nodes);
    free(m);
}

bool mn_onnx_available(void) { return true; }
int mn_onnx_opset(const mn_onnx *m) { return m ? m->opset : 0; }
int mn_onnx_input_count(const mn_onnx *m) { return m ? m->nin : 0; }
int mn_onnx_output_count(const mn_onnx *m) { return m ? m->nout : 0; }
const char *mn_onnx_input_name(const mn_onnx *m, int i) { return m && i >= 0 && i < m->nin ? m->in_names[i] : NULL; }
mn_node *mn_onnx_input(const mn_onnx *m, int i) { return m && i >= 0 && i < m->nin ? m->in_nodes[i] : NULL; }
const char *mn_onnx_output_name(const mn_onnx *m, int i) { return m && i >= 0 && i < m->nout ? m->out_names[i] : NULL; }
mn_node *mn_onnx_output(const mn_onnx *m, int i) { return m && i >= 0 && i < m->nout ? m->out_nodes[i] : NULL; }

int mn_onnx_op_count(void) { return mn__ox_table_count; }

mn_status mn_onnx_op_info(int i, const char **onnx_op, const char **mnemo_ops, const char **note)
{
    if (i < 0 || i >= mn__ox_table_count) return mn_set_error(MN_ERR_INVALID, "onnx op %d: out of range", i);
    if (onnx_op) *onnx_op = mn__ox_table[i].onnx;
    if (mnemo_ops) *mnemo_ops = mn__ox_table[i].ops;
    if (note) *note = mn__ox_table[i].note ? mn__ox_table[i].note : "";
    return MN_OK;
}
