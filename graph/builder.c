/* graph/builder.c: building a static graph. Every builder call infers the
 * output shape through the op's record; the first error sticks to the
 * graph with a message naming op, node and shapes, and every later call
 * returns NULL, so user code can check once, at compile. */
#include "graph.h"
#include <stdlib.h>
#include <string.h>

mn_graph *mn_graph_new(mn_params *P)
{
    if (!P) { mn__error(MN_ERR_MISUSE, "graph_new: NULL param store"); return NULL; }
    mn_graph *g = calloc(1, sizeof *g);
    if (!g) { mn__error(MN_ERR_NOMEM, "graph_new: out of memory"); return NULL; }
    g->P = P;
    return g;
}

void mn_graph_free(mn_graph *g)
{
    if (!g) return;
    mn__arena_free(&g->arena);
    free(g->nodes);
    free(g->scope);
    free(g);
}

/* A graph with the same nodes (same ids, kinds, ops, shapes; names,
 * attributes and constant data shared with g, which must outlive it) for
 * the compiler to extend: compiling never changes the caller's graph. */
mn_graph *mn__graph_clone(const mn_graph *g)
{
    mn_graph *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->P = g->P;
    c->seed = g->seed;
    c->no_fold = true;                  /* nodes the passes add are the ops as called */
    c->cap = g->n + 256;
    c->nodes = malloc((size_t)c->cap * sizeof *c->nodes);
    c->scope = g->scope ? strdup(g->scope) : NULL;
    if (!c->nodes || (g->scope && !c->scope)) { mn_graph_free(c); return NULL; }
    for (int i = 0; i < g->n; i++) {
        const mn_node *n = g->nodes[i];
        mn_node *m = mn__arena_alloc(&c->arena, sizeof *m);
        mn_node **in = mn__arena_alloc(&c->arena, (size_t)(n->nin ? n->nin : 1) * sizeof *in);
        if (!m || !in) { mn_graph_free(c); return NULL; }
        *m = *n;
        m->g = c;
        m->in = in;
        for (int k = 0; k < n->nin; k++) in[k] = c->nodes[n->in[k]->id];
        c->nodes[c->n++] = m;
    }
    return c;
}

mn_status mn_graph_status(const mn_graph *g) { return g ? g->status : MN_ERR_MISUSE; }
const char *mn_graph_errmsg(const mn_graph *g)
{
    if (!g) return "NULL graph";
    return g->status ? g->msg : "ok";
}
mn_params *mn_graph_params(mn_graph *g) { return g ? g->P : NULL; }
int mn_graph_node_count(const mn_graph *g) { return g ? g->n : 0; }
void mn_graph_set_seed(mn_graph *g, uint64_t seed) { if (g) g->seed = seed; }
void mn_graph_set_folding(mn_graph *g, bool on) { if (g) g->no_fold = !on; }
bool mn__graph_folds(const mn_graph *g) { return g && !g->no_fold && !g->building_backward; }

void mn_graph_set_scope(mn_graph *g, const char *scope)
{
    if (!g) return;
    free(g->scope);
    g->scope = NULL;
    g->scope_depth = 0;
    if (scope && *scope) mn_graph_push_scope(g, scope);
}

mn_status mn_graph_push_scope(mn_graph *g, const char *name)
{
    if (!g) return mn__error(MN_ERR_MISUSE, "push_scope: NULL graph");
    if (!name || !*name) return mn__graph_fail(g, MN_ERR_INVALID, "push_scope: a name is required");
    if (g->scope_depth == MN_SCOPE_MAX)
        return mn__graph_fail(g, MN_ERR_INVALID, "push_scope \"%s\": scopes nest at most %d deep", name, MN_SCOPE_MAX);
    size_t old = g->scope ? strlen(g->scope) : 0, len = old + (old ? 1 : 0) + strlen(name) + 1;
    char *s = realloc(g->scope, len);
    if (!s) return mn__graph_fail(g, MN_ERR_NOMEM, "push_scope \"%s\": out of memory", name);
    snprintf(s + old, len - old, "%s%s", old ? "." : "", name);
    g->scope = s;
    g->scope_len[g->scope_depth++] = old;
    return MN_OK;
}

mn_status mn_graph_pop_scope(mn_graph *g)
{
    if (!g) return mn__error(MN_ERR_MISUSE, "pop_scope: NULL graph");
    if (g->scope_depth == 0) return mn__graph_fail(g, MN_ERR_MISUSE, "pop_scope: no scope was pushed");
    size_t len = g->scope_len[--g->scope_depth];
    if (len) g->scope[len] = '\0';
    else { free(g->scope); g->scope = NULL; }
    return MN_OK;
}

const char *mn_graph_scope(const mn_graph *g) { return g && g->scope ? g->scope : ""; }

/* A parameter name inside the current scope: "scope.name" (or name). */
static const char *scoped(const mn_graph *g, const char *name, char *buf, size_t size)
{
    if (!g->scope) return name;
    int n = snprintf(buf, size, "%s.%s", g->scope, name);
    return n >= 0 && (size_t)n < size ? buf : NULL;
}

mn_status mn__graph_fail(mn_graph *g, mn_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (g && !g->status) {
        va_list cp;
        va_copy(cp, ap);
        vsnprintf(g->msg, sizeof g->msg, fmt, cp);
        va_end(cp);
        g->status = code;
    }
    mn__verror(code, fmt, ap);
    va_end(ap);
    return code;
}

mn_status mn_graph_fail(mn_graph *g, mn_status code, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!g) return mn__error(MN_ERR_MISUSE, "%s", buf);
    return mn__graph_fail(g, code, "%s", buf);
}

static mn_node *new_node(mn_graph *g, mn_node_kind kind, const char *base, const char *name)
{
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 256;
        mn_node **nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) { mn__graph_fail(g, MN_ERR_NOMEM, "graph: out of memory"); return NULL; }
        g->nodes = nn; g->cap = cap;
    }
    mn_node *n = mn__arena_alloc(&g->arena, sizeof *n);
    char buf[256];
    if (name) snprintf(buf, sizeof buf, "%s", name);
    else if (g->scope) snprintf(buf, sizeof buf, "%s.%s#%d", g->scope, base, g->n);
    else snprintf(buf, sizeof buf, "%s#%d", base, g->n);
    if (!n || !(n->name = mn__arena_strdup(&g->arena, buf))) {
        mn__graph_fail(g, MN_ERR_NOMEM, "graph: out of memory");
        return NULL;
    }
    n->g = g; n->id = g->n; n->kind = kind; n->param = -1;
    n->backward = g->building_backward;
    g->nodes[g->n++] = n;
    return n;
}

static bool usable(mn_graph *g) { return g && g->status == MN_OK; }

mn_node *mn_input(mn_graph *g, const char *name, mn_dtype dtype, mn_shape shape)
{
    if (!usable(g)) { mn__error(g ? g->status : MN_ERR_MISUSE, "input: %s", mn_graph_errmsg(g)); return NULL; }
    if (!name || !*name) { mn__graph_fail(g, MN_ERR_INVALID, "input: a name is required"); return NULL; }
    if (dtype != MN_F32 && dtype != MN_I32) { mn__graph_fail(g, MN_ERR_DTYPE, "input \"%s\": unknown dtype %d", name, (int)dtype); return NULL; }
    if (shape.ndim < 0 || shape.ndim > MN_MAX_DIMS) { mn__graph_fail(g, MN_ERR_SHAPE, "input \"%s\": %d dims", name, shape.ndim); return NULL; }
    for (int i = 0; i < shape.ndim; i++)
        if (shape.d[i] <= 0) { mn__graph_fail(g, MN_ERR_SHAPE, "input \"%s\": dim %d is %lld", name, i, (long long)shape.d[i]); return NULL; }
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i]->kind == MN_NODE_INPUT && strcmp(g->nodes[i]->name, name) == 0) {
            mn__graph_fail(g, MN_ERR_EXISTS, "input \"%s\": defined twice", name);
            return NULL;
        }
    mn_node *n = new_node(g, MN_NODE_INPUT, "input", name);
    if (n) n->desc = (mn_tdesc){ dtype, shape };
    return n;
}

static mn_node *param_node(mn_graph *g, int idx)
{
    mn_node *n = new_node(g, MN_NODE_PARAM, "param", mn_params_name(g->P, idx));
    if (n) { n->param = idx; n->desc = (mn_tdesc){ MN_F32, mn_params_value(g->P, idx)->shape }; }
    return n;
}

mn_node *mn_param(mn_graph *g, const char *name, mn_shape shape, mn_init init)
{
    if (!usable(g)) { mn__error(g ? g->status : MN_ERR_MISUSE, "param: %s", mn_graph_errmsg(g)); return NULL; }
    if (!name) { mn__graph_fail(g, MN_ERR_INVALID, "param: a name is required"); return NULL; }
    char buf[256];
    const char *rel = name;
    if (!(name = scoped(g, rel, buf, sizeof buf))) {
        mn__graph_fail(g, MN_ERR_INVALID, "param \"%s\" in scope \"%s\": name longer than %zu", rel, g->scope, sizeof buf - 1);
        return NULL;
    }
    int idx = mn_params_find(g->P, name);
    if (idx >= 0) {
        char a[96], b[96];
        const mn_tensor *v = mn_params_value(g->P, idx);
        if (!mn_params_grad(g->P, idx)) { mn__graph_fail(g, MN_ERR_INVALID, "param \"%s\": is optimizer state, not a parameter", name); return NULL; }
        if (!mn_shape_eq(v->shape, shape)) {
            mn__graph_fail(g, MN_ERR_SHAPE, "param \"%s\": exists with shape %s, requested %s", name,
                           mn_shape_str(v->shape, a, sizeof a), mn_shape_str(shape, b, sizeof b));
            return NULL;
        }
    } else {
        mn_status s = mn_params_create(g->P, name, shape, init);
        if (s) { mn__graph_fail(g, s, "param \"%s\": %s", name, mn_errmsg()); return NULL; }
        idx = mn_params_find(g->P, name);
    }
    return param_node(g, idx);
}

mn_node *mn_param_get(mn_graph *g, const char *name)
{
    if (!usable(g)) { mn__error(g ? g->status : MN_ERR_MISUSE, "param: %s", mn_graph_errmsg(g)); return NULL; }
    char buf[256];
    const char *full = name ? scoped(g, name, buf, sizeof buf) : NULL;
    int idx = full ? mn_params_find(g->P, full) : -1;
    if (idx < 0 || !mn_params_grad(g->P, idx)) {
        const char *shown = full ? full : name ? name : "(null)";
        mn__graph_fail(g, MN_ERR_NOTFOUND, "param \"%s\": no such parameter in the store", shown);
        return NULL;
    }
    return param_node(g, idx);
}

mn_node *mn_constant(mn_graph *g, mn_dtype dtype, mn_shape shape, const void *data)
{
    if (!usable(g)) { mn__error(g ? g->status : MN_ERR_MISUSE, "constant: %s", mn_graph_errmsg(g)); return NULL; }
    if (!data) { mn__graph_fail(g, MN_ERR_MISUSE, "constant: NULL data"); return NULL; }
    if (shape.ndim < 0 || shape.ndim > MN_MAX_DIMS) { mn__graph_fail(g, MN_ERR_SHAPE, "constant: %d dims", shape.ndim); return NULL; }
    size_t bytes = (size_t)mn_shape_numel(shape) * mn_dtype_size(dtype);
    mn_node *n = new_node(g, MN_NODE_CONST, "const", NULL);
    if (!n) return NULL;
    n->desc = (mn_tdesc){ dtype, shape };
    if (!(n->cdata = mn__arena_alloc(&g->arena, bytes))) { mn__graph_fail(g, MN_ERR_NOMEM, "constant: out of memory"); return NULL; }
    memcpy(n->cdata, data, bytes);
    return n;
}

mn_node *mn__fill(mn_graph *g, mn_shape shape, float value)
{
    if (!usable(g)) return NULL;
    int64_t numel = mn_shape_numel(shape);
    mn_node *n = new_node(g, MN_NODE_CONST, "const", NULL);
    if (!n) return NULL;
    n->desc = (mn_tdesc){ MN_F32, shape };
    float *d = mn__arena_alloc(&g->arena, (size_t)numel * sizeof(float));
    if (!d) { mn__graph_fail(g, MN_ERR_NOMEM, "constant: out of memory"); return NULL; }
    for (int64_t i = 0; i < numel; i++) d[i] = value;
    n->cdata = d;
    return n;
}

mn_node *mn_scalar(mn_graph *g, float value) { return mn__fill(g, MN_SCALAR, value); }

static void shapes_str(mn_node *const *in, int nin, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < nin && k + 2 < n; i++) {
        char s[96];
        k += (size_t)snprintf(buf + k, n - k, "%s%s %s", i ? ", " : "", mn_dtype_name(in[i]->desc.dtype),
                              mn_shape_str(in[i]->desc.shape, s, sizeof s));
    }
}

mn_node *mn__node(mn_graph *g, const mn_op_def *op, mn_node *const *in, int nin, const void *attrs)
{
    if (!usable(g)) { mn__error(g ? g->status : MN_ERR_MISUSE, "%s: %s", op->name, mn_graph_errmsg(g)); return NULL; }
    if (op->arity >= 0 && nin != op->arity) {
        mn__graph_fail(g, MN_ERR_INVALID, "%s: takes %d inputs, got %d", op->name, op->arity, nin);
        return NULL;
    }
    if (nin < 0 || nin > MN_MAX_INPUTS) { mn__graph_fail(g, MN_ERR_INVALID, "%s: %d inputs (at most %d)", op->name, nin, MN_MAX_INPUTS); return NULL; }
    for (int i = 0; i < nin; i++) {
        if (!in[i]) { mn__graph_fail(g, MN_ERR_MISUSE, "%s: input %d is NULL", op->name, i); return NULL; }
        if (in[i]->g != g) { mn__graph_fail(g, MN_ERR_MISUSE, "%s: input %d belongs to another graph", op->name, i); return NULL; }
    }
    if (op->attr_size && !attrs) { mn__graph_fail(g, MN_ERR_MISUSE, "%s: NULL attributes", op->name); return NULL; }
    mn_tdesc *d = malloc((size_t)(nin ? nin : 1) * sizeof *d);
    if (!d) { mn__graph_fail(g, MN_ERR_NOMEM, "graph: out of memory"); return NULL; }
    for (int i = 0; i < nin; i++) d[i] = in[i]->desc;
    char msg[512] = "";
    mn_infer_ctx c = { .nin = nin, .in = d, .attrs = attrs, .msg = msg, .msglen = sizeof msg };
    mn_status s = op->infer ? op->infer(&c) : MN_OK;
    free(d);
    if (s) {
        char shapes[512], where[300];
        shapes_str(in, nin, shapes, sizeof shapes);
        if (g->scope) snprintf(where, sizeof where, "%s.%s#%d", g->scope, op->name, g->n);
        else snprintf(where, sizeof where, "%s#%d", op->name, g->n);
        mn__graph_fail(g, s, "%s \"%s\": %s (inputs %s)", op->name, where, msg[0] ? msg : mn_status_message(s), shapes);
        return NULL;
    }
    if (op->compose) return op->compose(g, in, nin, attrs);
    mn_node *n = new_node(g, MN_NODE_OP, op->name, NULL);
    if (!n) return NULL;
    n->op = op; n->nin = nin; n->desc = c.out;
    n->in = mn__arena_alloc(&g->arena, (size_t)(nin ? nin : 1) * sizeof *n->in);
    n->in_desc = mn__arena_alloc(&g->arena, (size_t)(nin ? nin : 1) * sizeof *n->in_desc);
    n->attrs = op->attr_size ? mn__arena_alloc(&g->arena, op->attr_size) : NULL;
    if (!n->in || !n->in_desc || (op->attr_size && !n->attrs)) { mn__graph_fail(g, MN_ERR_NOMEM, "graph: out of memory"); return NULL; }
    if (nin) memcpy(n->in, in, (size_t)nin * sizeof *in);
    for (int i = 0; i < nin; i++) n->in_desc[i] = in[i]->desc;
    if (op->attr_size) memcpy(n->attrs, attrs, op->attr_size);
    return n;
}

mn_node *mn_op(mn_graph *g, const char *name, mn_node *const *inputs, int n, const void *attrs, size_t attrs_size)
{
    if (!usable(g)) { mn__error(g ? g->status : MN_ERR_MISUSE, "op: %s", mn_graph_errmsg(g)); return NULL; }
    const mn_op_def *op = mn_op_find(name);
    if (!op) { mn__graph_fail(g, MN_ERR_NOTFOUND, "op \"%s\": not in the registry", name ? name : "(null)"); return NULL; }
    if (attrs_size != op->attr_size) {
        mn__graph_fail(g, MN_ERR_INVALID, "%s: attribute struct of %zu bytes, the op expects %zu", op->name, attrs_size, op->attr_size);
        return NULL;
    }
    if (n < 0 || (n > 0 && !inputs)) { mn__graph_fail(g, MN_ERR_MISUSE, "%s: bad input list", op->name); return NULL; }
    return mn__node(g, op, inputs, n, attrs);
}

mn_shape mn_node_shape(const mn_node *n) { return n ? n->desc.shape : MN_SCALAR; }
mn_dtype mn_node_dtype(const mn_node *n) { return n ? n->desc.dtype : MN_F32; }
const char *mn_node_name(const mn_node *n) { return n ? n->name : "(null)"; }
int mn_node_id(const mn_node *n) { return n ? n->id : -1; }

const char *mn_node_op(const mn_node *n)
{
    if (!n) return "(null)";
    switch (n->kind) {
    case MN_NODE_INPUT: return "input";
    case MN_NODE_PARAM: return "param";
    case MN_NODE_CONST: return "const";
    case MN_NODE_OP: return n->op->name;
    }
    return "?";
}

mn_node *mn_node_set_name(mn_node *n, const char *name)
{
    if (!n || !name || n->kind == MN_NODE_INPUT || n->kind == MN_NODE_PARAM) return n;
    char *s = mn__arena_strdup(&n->g->arena, name);
    if (s) n->name = s;
    return n;
}

/* The latest node of g with this op, inputs and attributes, built in the
 * same pass as the one being built now; else a new one (mn__node). A
 * builder that makes the same value for many callers (ops/index.c's
 * folded tables) gets one node, so autodiff differentiates it once. */
mn_node *mn__node_once(mn_graph *g, const mn_op_def *op, mn_node *const *in, int nin, const void *attrs)
{
    for (int i = usable(g) ? g->n - 1 : -1; i >= 0; i--) {
        const mn_node *n = g->nodes[i];
        bool same = n->kind == MN_NODE_OP && n->op == op && n->nin == nin && n->backward == g->building_backward &&
                    (!op->attr_size || !memcmp(n->attrs, attrs, op->attr_size));
        for (int k = 0; same && k < nin; k++) same = n->in[k] == in[k];
        if (same) return g->nodes[i];
    }
    return mn__node(g, op, in, nin, attrs);
}

const void *mn__node_attrs(const mn_node *n) { return n ? n->attrs : NULL; }
mn_node *mn__node_input(const mn_node *n, int k) { return n && k >= 0 && k < n->nin ? n->in[k] : NULL; }
const mn_op_def *mn__node_opdef(const mn_node *n) { return n && n->kind == MN_NODE_OP ? n->op : NULL; }
