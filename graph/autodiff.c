/* graph/autodiff.c: reverse-mode differentiation at compile time. Walks the
 * forward nodes in reverse id order (a reverse topological order), calls
 * each op's VJP, which appends backward nodes to the same graph, and sums
 * the contributions of values used more than once as soon as they arrive;
 * contributions from ops with a merge_grads rule (slice_backward) wait
 * until the value is processed and are merged by that rule. */
#include "exec.h"
#include <stdlib.h>

static bool wants_grad(const mn_node *n, const bool *req, const bool *wrt)
{
    if (wrt[n->id]) return n->desc.dtype == MN_F32;
    if (n->kind != MN_NODE_OP || n->desc.dtype != MN_F32 || !mn_op_differentiable(n->op)) return false;
    for (int i = 0; i < n->nin; i++)
        if (req[n->in[i]->id]) return true;
    return false;
}

static mn_status check_dx(mn_graph *g, const mn_node *n, int k, const mn_node *dx)
{
    char a[96], b[96];
    if (mn_shape_eq(dx->desc.shape, n->in[k]->desc.shape) && dx->desc.dtype == MN_F32) return MN_OK;
    return mn__graph_fail(g, MN_ERR_SHAPE, "%s \"%s\": VJP produced a gradient of shape %s for input %d of shape %s",
                          n->op->name, n->name, mn_shape_str(dx->desc.shape, a, sizeof a), k,
                          mn_shape_str(n->in[k]->desc.shape, b, sizeof b));
}

typedef struct { mn_node **v; int n, cap; } parts;   /* deferred contributions of one value */

static mn_status defer(mn_graph *g, parts *p, mn_node *dx)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 8;
        mn_node **v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v) return mn__graph_fail(g, MN_ERR_NOMEM, "autodiff: out of memory");
        p->v = v; p->cap = cap;
    }
    p->v[p->n++] = dx;
    return MN_OK;
}

/* Folds the deferred contributions of a value into acc: each op's parts
 * merged by its rule (or added), in order of first appearance. */
static mn_node *settle(mn_graph *g, mn_node *acc, parts *p)
{
    for (int i = 0; i < p->n; i++) {
        if (!p->v[i]) continue;
        const mn_op_def *op = mn__node_opdef(p->v[i]);
        mn_node **same = malloc((size_t)p->n * sizeof *same);
        if (!same) { mn__graph_fail(g, MN_ERR_NOMEM, "autodiff: out of memory"); return NULL; }
        int m = 0;
        for (int j = i; j < p->n; j++)
            if (p->v[j] && mn__node_opdef(p->v[j]) == op) { same[m++] = p->v[j]; p->v[j] = NULL; }
        mn_node *merged = m > 1 ? op->traits.merge_grads(g, same, m) : NULL;
        for (int j = 0; !merged && j < m; j++) acc = acc ? mn_add(g, acc, same[j]) : same[j];
        if (merged) acc = acc ? mn_add(g, acc, merged) : merged;
        free(same);
    }
    p->n = 0;
    return acc;
}

static mn_status backprop_node(mn_graph *g, mn_node *n, mn_node **acc, parts *deferred, const bool *req)
{
    bool *needs = calloc((size_t)n->nin + 1, sizeof *needs);
    mn_node **dx = calloc((size_t)n->nin + 1, sizeof *dx);
    if (!needs || !dx) { free(needs); free(dx); return mn__graph_fail(g, MN_ERR_NOMEM, "autodiff: out of memory"); }
    for (int k = 0; k < n->nin; k++) needs[k] = req[n->in[k]->id];
    mn_vjp_ctx c = { .g = g, .out = n, .in = n->in, .nin = n->nin, .attrs = n->attrs,
                     .dy = acc[n->id], .needs = needs, .dx = dx };
    mn_status s = n->op->vjp(&c);
    if (s || g->status) s = s ? mn__graph_fail(g, s, "%s \"%s\": VJP failed: %s", n->op->name, n->name, mn_errmsg()) : g->status;
    for (int k = 0; !s && k < n->nin; k++) {
        if (!needs[k] || !dx[k]) continue;
        if ((s = check_dx(g, n, k, dx[k]))) break;
        int id = n->in[k]->id;
        const mn_op_def *op = mn__node_opdef(dx[k]);
        if (op && op->traits.merge_grads) s = defer(g, &deferred[id], dx[k]);
        else acc[id] = acc[id] ? mn_add(g, acc[id], dx[k]) : dx[k];
        s = s ? s : g->status;
    }
    free(needs); free(dx);
    return s;
}

static bool any_input_needed(const mn_node *n, const bool *req)
{
    for (int k = 0; k < n->nin; k++)
        if (req[n->in[k]->id]) return true;
    return false;
}

mn_status mn__autodiff(mn_graph *g, mn_node *loss, const bool *wrt, mn_node **grads)
{
    int nf = loss->id + 1;
    bool *req = calloc((size_t)nf, sizeof *req);
    mn_node **acc = calloc((size_t)nf, sizeof *acc);
    parts *deferred = calloc((size_t)nf, sizeof *deferred);
    if (!req || !acc || !deferred) {
        free(req); free(acc); free(deferred);
        return mn__graph_fail(g, MN_ERR_NOMEM, "autodiff: out of memory");
    }
    for (int i = 0; i < nf; i++) req[i] = wants_grad(g->nodes[i], req, wrt);
    g->building_backward = true;
    mn_status s = MN_OK;
    if (req[loss->id]) acc[loss->id] = mn__fill(g, loss->desc.shape, 1.0f);
    for (int i = nf - 1; i >= 0 && !s; i--) {
        mn_node *n = g->nodes[i];
        if (deferred[i].n) acc[i] = settle(g, acc[i], &deferred[i]);
        if ((s = g->status)) break;
        if (!acc[i] || !req[i]) continue;
        if (wrt[i]) grads[i] = acc[i];
        if (n->kind == MN_NODE_OP && mn_op_differentiable(n->op) && any_input_needed(n, req)) s = backprop_node(g, n, acc, deferred, req);
    }
    g->building_backward = false;
    for (int i = 0; i < nf; i++) free(deferred[i].v);
    free(req); free(acc); free(deferred);
    return s ? s : g->status;
}

/* The explicit form: gradient nodes of a scalar y with respect to any
 * nodes of its graph, appended to that graph (they are ordinary nodes: the
 * user may differentiate them again). A node y does not depend on gets a
 * zero of its shape. */
mn_status mn_grad(mn_graph *g, mn_node *y, mn_node *const *wrt, int n, mn_node **grads)
{
    char s[96];
    if (!g || !y || (n > 0 && (!wrt || !grads)) || n < 0) return mn__error(MN_ERR_MISUSE, "grad: NULL or bad argument");
    if (g->status) return mn__error(g->status, "grad: %s", g->msg);
    if (y->g != g) return mn__graph_fail(g, MN_ERR_MISUSE, "grad: y belongs to another graph");
    if (y->desc.dtype != MN_F32 || mn_shape_numel(y->desc.shape) != 1)
        return mn__graph_fail(g, MN_ERR_SHAPE, "grad: y \"%s\" must be a f32 scalar, got %s %s", y->name,
                              mn_dtype_name(y->desc.dtype), mn_shape_str(y->desc.shape, s, sizeof s));
    for (int i = 0; i < n; i++) {
        if (!wrt[i] || wrt[i]->g != g) return mn__graph_fail(g, MN_ERR_MISUSE, "grad: wrt[%d] is NULL or from another graph", i);
        if (wrt[i]->desc.dtype != MN_F32) return mn__graph_fail(g, MN_ERR_DTYPE, "grad: wrt[%d] \"%s\" is not f32", i, wrt[i]->name);
    }
    int nf = y->id + 1;
    bool *mask = calloc((size_t)nf, sizeof *mask);
    mn_node **by_id = calloc((size_t)nf, sizeof *by_id);
    if (!mask || !by_id) { free(mask); free(by_id); return mn__graph_fail(g, MN_ERR_NOMEM, "grad: out of memory"); }
    for (int i = 0; i < n; i++) if (wrt[i]->id < nf) mask[wrt[i]->id] = true;
    mn_status st = mn__autodiff(g, y, mask, by_id);
    for (int i = 0; !st && i < n; i++) {
        mn_node *d = wrt[i]->id < nf ? by_id[wrt[i]->id] : NULL;
        grads[i] = d ? d : mn__fill(g, wrt[i]->desc.shape, 0.0f);
        if (!grads[i]) st = g->status ? g->status : MN_ERR_NOMEM;
    }
    free(mask); free(by_id);
    return st;
}

/* ---- the compiler's autodiff pass ---- */

/* Roots: the loss and outputs first (*nkeep of them: read after the run),
 * then the parameter gradients (sinks, accumulated as soon as computed).
 * The loss and outputs are the user's nodes; their twins in ex->g (same
 * ids) are the roots. */
static mn_status collect_roots(mn_exec *ex, mn_node *loss, const mn_compile_opts *o, mn_node ***roots, int *nroots, int *nkeep)
{
    mn_graph *g = ex->g;
    int nf = g->n;
    mn_node **grads = calloc((size_t)nf, sizeof *grads);
    bool *wrt = calloc((size_t)nf, sizeof *wrt);
    mn_node **r = calloc((size_t)nf + (size_t)(o ? o->noutputs : 0) + 1, sizeof *r);
    ex->sinks = calloc((size_t)nf, sizeof *ex->sinks);
    if (!grads || !wrt || !r || !ex->sinks) { free(grads); free(wrt); free(r); return mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory"); }
    for (int i = 0; i < nf; i++)              /* a frozen parameter gets no gradient (mn_params_freeze) */
        wrt[i] = g->nodes[i]->kind == MN_NODE_PARAM && !mn_params_is_frozen(g->P, g->nodes[i]->param);
    mn_status s = MN_OK;
    if (loss && !(o && o->no_backward)) s = mn__autodiff(g, g->nodes[loss->id], wrt, grads);
    free(wrt);
    int n = 0;
    if (loss) r[n++] = g->nodes[loss->id];
    for (int i = 0; !s && o && i < o->noutputs; i++) {
        if (!o->outputs[i] || o->outputs[i]->g != ex->user || o->outputs[i]->id >= nf) {
            s = mn__graph_fail(g, MN_ERR_MISUSE, "compile: output %d is NULL or from another graph", i);
            break;
        }
        r[n++] = g->nodes[o->outputs[i]->id];
    }
    *nkeep = n;
    for (int i = 0; !s && i < nf; i++)
        if (grads[i]) { r[n++] = grads[i]; ex->sinks[ex->nsinks++] = (mn_sink){ .value = grads[i]->id, .param = g->nodes[i]->param }; }
    free(grads);
    *roots = r; *nroots = n;
    return s;
}

/* The frozen flags the backward is built against (mn__exec_check_frozen). */
static mn_status note_frozen(mn_exec *ex)
{
    const mn_params *P = ex->g->P;
    ex->nfrozen_at = mn_params_count(P);
    ex->freeze_gen = mn__params_freeze_gen(P);
    ex->frozen_at = calloc((size_t)ex->nfrozen_at + 1, 1);
    if (!ex->frozen_at) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "compile: out of memory");
    for (int i = 0; i < ex->nfrozen_at; i++) ex->frozen_at[i] = mn_params_is_frozen(P, i);
    return MN_OK;
}

mn_status mn__exec_check_frozen(mn_exec *ex)
{
    const mn_params *P = ex->g->P;
    if (!ex->frozen_at || ex->freeze_gen == mn__params_freeze_gen(P)) return MN_OK;
    for (int i = 0; i < ex->nuser; i++) {
        const mn_node *n = ex->g->nodes[i];
        if (n->kind != MN_NODE_PARAM || n->param >= ex->nfrozen_at) continue;
        bool now = mn_params_is_frozen(P, n->param);
        if (now != (bool)ex->frozen_at[n->param])
            return mn__error(MN_ERR_MISUSE, "run: parameter \"%s\" was %s after this executable was compiled, which %s: "
                             "compile again after mn_params_freeze", mn_params_name(P, n->param), now ? "frozen" : "unfrozen",
                             now ? "still adds to its gradient" : "computes no gradient for it (it would not train)");
    }
    ex->freeze_gen = mn__params_freeze_gen(P);       /* changed and changed back, or parameters this graph does not use */
    return MN_OK;
}

mn_status mn__pass_autodiff(mn_exec *ex)
{
    mn_status s = collect_roots(ex, ex->loss_node, &ex->opts, &ex->roots, &ex->nroots, &ex->nkeep);
    if (!s && ex->loss_node && !ex->opts.no_backward) s = note_frozen(ex);
    mn__stat(ex, "autodiff.backward_nodes", ex->g->n - ex->nuser);
    mn__stat(ex, "autodiff.gradients", ex->nsinks);
    return s;
}
