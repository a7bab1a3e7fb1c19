/* graph/split.c: row splitting, a rewrite the recompute pass applies when
 * the plain plan misses the budget. A forward value P [T, ...] computed
 * step by step from X [T, ...] (a per_step matmul X W^T, mn_matmul_steps,
 * then adds of biases broadcast over its rows) and read only through views
 * of whole steps (an RNN's input projection, sliced per time step) is
 * computed per view instead: each view becomes a per_step matmul of the
 * same steps of X and the same adds. P never exists whole, and the
 * recompute pass can drop a segment's rows and rebuild them. A per_step
 * product computes each step with its own GEMM of the same rows, so a
 * view's matmul gives the whole product's bits (a plain matmul would not:
 * BLAS rows depend on the call's row count). Owns: the new nodes (in
 * ex->g), their values and steps; P's steps and the views go (their values
 * keep no storage). */
#include "exec.h"
#include <stdlib.h>
#include <string.h>

enum { MAX_CHAIN = 4 };   /* the matmul and up to three bias adds */

static bool is_op(const mn_node *n, const char *name) { return n->kind == MN_NODE_OP && !strcmp(n->op->name, name); }

/* What P is: y = X W^T (or X W), then y + bias[b] (bias_first: bias + y). */
typedef struct {
    mn_node *x, *w, *bias[MAX_CHAIN];
    bool trans_b, bias_first[MAX_CHAIN];
    int nbias;
    int steps[MAX_CHAIN + 1], nsteps;   /* the steps computing it */
    int vals[MAX_CHAIN + 1], nvals;     /* their values */
} row_fn;

/* The input of add node n of P's shape beside a bias broadcast over rows, or -1. */
static int row_input(const mn_node *n)
{
    if (!is_op(n, "add") || n->nin != 2) return -1;
    for (int k = 0; k < 2; k++)
        if (mn_shape_eq(n->in[k]->desc.shape, n->desc.shape) && n->in[1 - k]->desc.shape.ndim < n->desc.shape.ndim) return k;
    return -1;
}

static bool add_step(row_fn *f, int s)
{
    for (int i = 0; i < f->nsteps; i++) if (f->steps[i] == s) return true;
    if (f->nsteps > MAX_CHAIN) return false;
    f->steps[f->nsteps++] = s;
    return true;
}

/* A chain value: fused into P's step, or P itself, or read once (by the chain). */
static bool chain_value(const mn_exec *ex, const int *nread, int v, int p, row_fn *f)
{
    const mn_value *x = &ex->vals[v];
    if (x->in_tile) return x->fused_root == p && !ex->keep[v];
    if (x->def < 0 || ex->steps[x->def].node->backward || ex->keep[v]) return false;
    if (mn__kind(x) != MN_VAL_ARENA || (v != p && nread[v] != 1) || ex->steps[x->def].out != v || ex->steps[x->def].nxout) return false;
    f->vals[f->nvals++] = v;
    return add_step(f, x->def);
}

/* P's chain, walked over its nodes from P to the matmul; false if it is not one. */
static bool row_chain(const mn_exec *ex, const int *nread, int p, row_fn *f)
{
    memset(f, 0, sizeof *f);
    mn_node *n = ex->vals[p].node, *bias[MAX_CHAIN];
    bool first[MAX_CHAIN];
    int nb = 0;
    while (nb < MAX_CHAIN && ex->val_of[n->id] >= 0 && chain_value(ex, nread, ex->val_of[n->id], p, f)) {
        if (is_op(n, "matmul")) {
            const mn_matmul_attrs *at = n->attrs;
            mn_shape a = n->in[0]->desc.shape;
            if (!at->per_step || at->trans_a || n->in[1]->desc.shape.ndim != 2 || a.ndim < 3 || a.d[0] != ex->vals[p].t.shape.d[0]) return false;
            f->x = n->in[0];
            f->w = n->in[1];
            f->trans_b = at->trans_b;
            for (int b = 0; b < nb; b++) { f->bias[b] = bias[nb - 1 - b]; f->bias_first[b] = first[nb - 1 - b]; }
            f->nbias = nb;
            return ex->val_of[f->x->id] >= 0;
        }
        int k = row_input(n);
        if (k < 0) return false;
        bias[nb] = n->in[1 - k];
        first[nb++] = k == 1;
        n = n->in[k];
    }
    return false;
}

/* The fused step computing P (if any) reads only the chain's values and biases. */
static bool fused_inputs_ok(const mn_exec *ex, int p, const row_fn *f)
{
    const mn_step *st = &ex->steps[ex->vals[p].def];
    for (int j = 0; st->fused && j < st->nin; j++) {
        bool ok = false;
        for (int i = 0; i < f->nvals; i++) ok |= st->in[j] == f->vals[i];
        for (int b = 0; b < f->nbias; b++) ok |= st->in[j] == ex->val_of[f->bias[b]->id];
        if (!ok) return false;
    }
    return true;
}

/* Rows [*r0, *r0 + n) of P that view value `a` holds, or false. */
static bool row_view(const mn_exec *ex, int a, int p, int64_t *r0)
{
    const mn_value *x = &ex->vals[a], *pv = &ex->vals[p];
    if (mn__kind(x) != MN_VAL_ALIAS || x->alias_of != p || x->t.shape.ndim != pv->t.shape.ndim || x->t.shape.d[0] < 1) return false;
    for (int d = 1; d < x->t.shape.ndim; d++) if (x->t.shape.d[d] != pv->t.shape.d[d]) return false;
    int64_t row = (int64_t)pv->bytes / pv->t.shape.d[0];
    if (x->alias_off % row) return false;
    *r0 = x->alias_off / row;
    return true;
}

/* Every reader of P is a step viewing a row range of it; at least two. */
static bool views_only(const mn_exec *ex, const int *nread, int p)
{
    int views = 0;
    int64_t r0;
    if (ex->keep[p]) return false;                                   /* read after the run: stays whole */
    for (int s = 0; s < ex->nsteps; s++)
        for (int j = 0; j < ex->steps[s].nin; j++) {
            if (ex->steps[s].in[j] != p) continue;
            if (ex->steps[s].nin != 1 || ex->steps[s].fused || ex->keep[ex->steps[s].out] || !row_view(ex, ex->steps[s].out, p, &r0))
                return false;                                        /* a requested output keeps its step */
            views++;
        }
    return views >= 2 && views == nread[p];
}

/* A value and a plain step for each node from `first` on (built here). */
static mn_status add_steps(mn_exec *ex, int first, mn_step *out, int *m)
{
    mn_graph *g = ex->g;
    for (int i = first; i < g->n; i++) {
        mn_node *n = g->nodes[i];
        int v = ex->nvals++;
        ex->val_of[i] = v;
        ex->vals[v] = mn__value_for(n);
        ex->keep[v] = false;
        mn_step *st = &out[(*m)++];
        *st = (mn_step){ .node = n, .out = v, .nin = n->nin, .fused_into = -1, .work = -1 };
        st->in = calloc((size_t)n->nin + 1, sizeof *st->in);
        st->tin = calloc((size_t)n->nin + 1, sizeof *st->tin);
        if (!st->in || !st->tin) return MN_ERR_NOMEM;
        for (int k = 0; k < n->nin; k++) st->in[k] = ex->val_of[n->in[k]->id];
        if (ex->vals[v].base == MN_VAL_ALIAS) ex->vals[v].alias_of = st->in[0];
    }
    return MN_OK;
}

/* The nodes computing rows [r0, r0 + rows) of P. */
static mn_node *rows_of(mn_graph *g, const row_fn *f, int64_t r0, int64_t rows)
{
    mn_node *y = mn_matmul_steps(g, mn_slice(g, f->x, 0, r0, r0 + rows, 1), f->w, f->trans_b);
    for (int b = 0; b < f->nbias && y; b++) y = f->bias_first[b] ? mn_add(g, f->bias[b], y) : mn_add(g, y, f->bias[b]);
    return y;
}

/* Readers of value `from` read `to` (same shape and bytes) instead. */
static void rewire(mn_exec *ex, int from, int to)
{
    for (int s = 0; s < ex->nsteps; s++)
        for (int j = 0; j < ex->steps[s].nin; j++) {
            if (ex->steps[s].in[j] != from) continue;
            ex->steps[s].in[j] = to;
            if (ex->vals[ex->steps[s].out].base == MN_VAL_ALIAS && ex->vals[ex->steps[s].out].alias_of == from)
                ex->vals[ex->steps[s].out].alias_of = to;
        }
}

static bool grow(mn_exec *ex, int extra)
{
    size_t nv = (size_t)ex->nvals + (size_t)extra + 1, nn = (size_t)ex->g->n + (size_t)extra + 1;
    mn_value *v = realloc(ex->vals, nv * sizeof *v);
    if (v) ex->vals = v;
    bool *k = realloc(ex->keep, nv * sizeof *k);
    if (k) ex->keep = k;
    int *o = realloc(ex->val_of, nn * sizeof *o);
    if (o) ex->val_of = o;
    return v && k && o;
}

static bool in_chain(const row_fn *f, int s)
{
    for (int i = 0; i < f->nsteps; i++) if (f->steps[i] == s) return true;
    return false;
}

/* A removed step's value keeps no storage and no data. */
static void orphan(mn_exec *ex, mn_step *st)
{
    ex->vals[st->out].in_tile = true;
    ex->vals[st->out].fused_root = -1;
    free(st->in); free(st->tin); free(st->xout); free(st->ctrl);
    if (st->fused) mn__fused_free(st->fused);
    st->in = NULL; st->tin = NULL; st->xout = NULL; st->ctrl = NULL; st->fused = NULL;
    st->nin = 0; st->nxout = 0; st->nctrl = 0;
}

/* Room for `extra` more steps in *fresh (capacity *cap). */
static bool room(mn_step **fresh, int *cap, int m, int extra)
{
    if (m + extra < *cap) return true;
    int c = 2 * (m + extra) + 16;
    mn_step *f = realloc(*fresh, (size_t)c * sizeof *f);
    if (!f) return false;
    *fresh = f;
    *cap = c;
    return true;
}

/* A view's new steps: fresh[first, end), computing value y. */
typedef struct { int y, first, end, at; } view_steps;

/* Outputs of the steps reading value v, through views of it (aliases) to
 * the steps that compute; *n of them into out (NULL: count only); the
 * smallest such step index into *at. */
static void readers(const mn_exec *ex, int v, int *out, int *n, int *at)
{
    for (int s = 0; s < ex->nsteps; s++)
        for (int j = 0; j < ex->steps[s].nin; j++) {
            if (ex->steps[s].in[j] != v) continue;
            const mn_value *o = &ex->vals[ex->steps[s].out];
            if (o->base == MN_VAL_ALIAS && o->alias_of == v && !ex->steps[s].fused) { readers(ex, ex->steps[s].out, out, n, at); break; }
            if (out) out[*n] = ex->steps[s].out;
            (*n)++;
            if (s < *at) *at = s;
            break;
        }
}

static int by_reader(const void *a, const void *b) { return ((const view_steps *)a)->at - ((const view_steps *)b)->at; }

/* Each view's products wait (ctrl edges) for the computing readers of the
 * view read before it: computed step by step as the cells need them, not
 * all at the start (as soon as their input exists), where all of P's rows
 * would be live at once again. */
static mn_status late(mn_exec *ex, view_steps *vs, int nv)
{
    for (int i = 0; i < nv; i++) {
        int n = 0;
        vs[i].at = ex->nsteps;
        readers(ex, vs[i].y, NULL, &n, &vs[i].at);
    }
    qsort(vs, (size_t)nv, sizeof *vs, by_reader);
    for (int i = 1; i < nv; i++) {
        int n = 0, at = ex->nsteps;
        readers(ex, vs[i - 1].y, NULL, &n, &at);
        for (int s = vs[i].first; n && s < vs[i].end; s++) {
            mn_step *st = &ex->steps[s];
            int *c = malloc((size_t)n * sizeof *c), m = 0;
            if (!c) return MN_ERR_NOMEM;
            readers(ex, vs[i - 1].y, c, &m, &at);
            free(st->ctrl);
            st->ctrl = c;
            st->nctrl = m;
        }
    }
    return mn__topo_order(ex);
}

/* Splits P: each view's step is replaced by the chain over its rows. */
static mn_status split_one(mn_exec *ex, int p, const row_fn *f)
{
    int m = 0, cap = 0, nv = 0;
    mn_step *fresh = NULL;
    mn_status err = MN_OK;
    view_steps *vs = malloc(((size_t)ex->nsteps + 1) * sizeof *vs);
    if (!vs) return MN_ERR_NOMEM;
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        int64_t r0;
        bool view = !in_chain(f, s) && st->nin == 1 && st->in[0] == p && row_view(ex, st->out, p, &r0);
        if (!err && !room(&fresh, &cap, m, 1)) err = MN_ERR_NOMEM;
        if (!view && !in_chain(f, s)) {
            if (!err) fresh[m++] = *st;
            continue;
        }
        if (view && !err) {
            int first = ex->g->n;
            mn_node *y = rows_of(ex->g, f, r0, ex->vals[st->out].t.shape.d[0]);
            if (!y || ex->g->status) err = ex->g->status ? ex->g->status : MN_ERR_NOMEM;
            if (!err && (!grow(ex, ex->g->n - first) || !room(&fresh, &cap, m, ex->g->n - first))) err = MN_ERR_NOMEM;
            int from = m;
            if (!err) err = add_steps(ex, first, fresh, &m);
            if (!err) rewire(ex, st->out, ex->val_of[y->id]);
            if (!err) vs[nv++] = (view_steps){ ex->val_of[y->id], from, m, 0 };
        }
        orphan(ex, st);
    }
    if (err) {     /* the steps array stays (orphans read nothing): the compile fails and frees it */
        free(fresh);
        free(vs);
        return err;
    }
    free(ex->steps);
    ex->steps = fresh;
    ex->nsteps = m;
    ex->nnodes = ex->g->n;
    mn__set_defs(ex);
    err = late(ex, vs, nv);
    free(vs);
    return err;
}

/* Splits every such value; *n: how many. */
mn_status mn__split_rows(mn_exec *ex, int *n)
{
    *n = 0;
    mn_status err = MN_OK;
    int *nread = malloc(((size_t)ex->nvals + 1) * sizeof *nread);
    if (!nread) return MN_ERR_NOMEM;
    mn__count_reads(ex, nread);
    int nv0 = ex->nvals;
    for (int p = 0; !err && p < nv0; p++) {
        row_fn f;
        if (ex->vals[p].def < 0 || !views_only(ex, nread, p) || !row_chain(ex, nread, p, &f) || !fused_inputs_ok(ex, p, &f)) continue;
        err = split_one(ex, p, &f);
        *n += !err;
        int *grown = err ? NULL : realloc(nread, ((size_t)ex->nvals + 1) * sizeof *nread);
        if (grown) nread = grown;
        else if (!err) err = MN_ERR_NOMEM;
        if (!err) mn__count_reads(ex, nread);
    }
    free(nread);
    return err;
}
