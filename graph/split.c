/* graph/split.c: row splitting, a rewrite the recompute pass applies when
 * the plain plan misses the budget. A value P [T, ...] whose rows come
 * from the same rows of an input X [T, ...] (the op registry's row_input
 * trait: a per_step matmul X W^T, mn_matmul_steps, then elementwise ops
 * with operands broadcast over its rows, e.g. bias adds) and read only
 * through views of whole steps is computed per view instead: each view
 * becomes the same chain of ops over the same steps of X, in P's pass
 * (its pointwise ops one fused step, as the fusion pass makes them).
 * Forward: an RNN's input projection, sliced per time step; P never exists
 * whole, and the recompute pass can drop a segment's rows and rebuild
 * them. Backward: a head's input gradient dY = dlogits W (mn_linear_steps:
 * per_step over blocks of steps, read through its reshape to [T, B, H])
 * read step by step by the backward cells; each block's rows are made
 * just before they are read, the steps' views view them. The trait
 * promises the bits (a per_step product computes each step with its own
 * GEMM; a plain matmul would not: BLAS rows depend on the call's row
 * count). Then values whose rows are copies of kept inputs (an embedding's
 * index_select) are made per reader (copy_rows, below). Owns: the new nodes
 * (in ex->g), their values and steps; P's steps and the views go (their
 * values keep no storage). */
#include "exec.h"
#include <stdlib.h>
#include <string.h>

enum { MAX_CHAIN = 4, MAX_IN = 8 };   /* the product and up to three row-wise ops after it */

/* The input whose rows make node n's rows (the op's row_input trait), or -1. */
static int row_input(const mn_node *n)
{
    if (n->kind != MN_NODE_OP || !n->op->traits.row_input || n->nin > MAX_IN || n->desc.shape.ndim < 1) return -1;
    int k = n->op->traits.row_input(n->in_desc, n->nin, &n->desc, n->attrs);
    if (k < 0 || k >= n->nin || n->in_desc[k].shape.ndim < 1 || n->in_desc[k].shape.d[0] != n->desc.shape.d[0]) return -1;
    return k;
}

/* What P is: node[0] (the product) reads rows of x through its input
 * row[0]; node[i] reads node[i - 1]'s rows through row[i]; node[n - 1] is P. */
typedef struct {
    mn_node *x, *node[MAX_CHAIN];
    int row[MAX_CHAIN], n;
    int steps[MAX_CHAIN + 1], nsteps;   /* the steps computing it */
    int vals[MAX_CHAIN + 1], nvals;     /* their values */
} row_fn;

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
    if (x->def < 0 || ex->steps[x->def].node->backward != ex->vals[p].node->backward || ex->keep[v]) return false;
    if (mn__kind(x) != MN_VAL_ARENA || (v != p && nread[v] != 1) || ex->steps[x->def].out != v || ex->steps[x->def].nxout) return false;
    f->vals[f->nvals++] = v;
    return add_step(f, x->def);
}

/* P's chain, walked over its nodes from P down: row-wise elementwise ops
 * (pointwise), then one product whose row input is X; false if it is not one. */
static bool row_chain(const mn_exec *ex, const int *nread, int p, row_fn *f)
{
    memset(f, 0, sizeof *f);
    mn_node *n = ex->vals[p].node, *down[MAX_CHAIN];
    int row[MAX_CHAIN], m = 0;
    for (;;) {
        int k = row_input(n), v = ex->val_of[n->id];
        if (m == MAX_CHAIN || k < 0 || v < 0 || !chain_value(ex, nread, v, p, f)) return false;
        down[m] = n;
        row[m++] = k;
        if (!n->op->traits.pointwise) break;                        /* the product */
        n = n->in[k];
    }
    f->x = n->in[row[m - 1]];
    f->n = m;
    for (int i = 0; i < m; i++) { f->node[i] = down[m - 1 - i]; f->row[i] = row[m - 1 - i]; }
    return ex->val_of[f->x->id] >= 0;
}

/* Is value v an input of a chain node other than its row input (a bias, the weight)? */
static bool side_input(const mn_exec *ex, const row_fn *f, int v)
{
    for (int i = 0; i < f->n; i++)
        for (int q = 0; q < f->node[i]->nin; q++)
            if (q != f->row[i] && ex->val_of[f->node[i]->in[q]->id] == v) return true;
    return false;
}

/* The fused step computing P (if any) reads only the chain's values and side inputs. */
static bool fused_inputs_ok(const mn_exec *ex, int p, const row_fn *f)
{
    const mn_step *st = &ex->steps[ex->vals[p].def];
    for (int j = 0; st->fused && j < st->nin; j++) {
        bool ok = side_input(ex, f, st->in[j]);
        for (int i = 0; i < f->nvals; i++) ok |= st->in[j] == f->vals[i];
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

/* The value whose views P's readers are: P itself, or R when P's one
 * reader is R, a reshape of P to more rows of the same bytes (P [T/S, S B,
 * H] of a per_step product in blocks of S steps, R [T, B, H]); -1 if not
 * one of those. */
static int viewed(const mn_exec *ex, const int *nread, int p)
{
    if (nread[p] != 1 || ex->vals[p].t.shape.ndim < 1 || ex->vals[p].t.shape.d[0] < 1) return p;
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        if (st->nin != 1 || st->in[0] != p) continue;
        const mn_value *r = &ex->vals[st->out], *x = &ex->vals[p];
        bool reshape = !st->fused && !ex->keep[st->out] && mn__kind(r) == MN_VAL_ALIAS && r->alias_of == p && r->alias_off == 0 &&
                       r->bytes == x->bytes && r->t.shape.ndim >= 1 && x->t.shape.d[0] >= 1 && r->t.shape.d[0] % x->t.shape.d[0] == 0;
        return reshape ? st->out : -1;
    }
    return -1;
}

/* Every reader of P (or of its reshape R, viewed()) is a step viewing a
 * row range of it, within one row of P; at least two. */
static bool views_only(const mn_exec *ex, const int *nread, int p)
{
    if (ex->keep[p] || ex->vals[p].t.shape.ndim < 1 || ex->vals[p].t.shape.d[0] < 1) return false;   /* read after the run: stays whole */
    int views = 0, v = viewed(ex, nread, p);
    int64_t r0;
    if (v < 0) return false;
    int64_t per = ex->vals[v].t.shape.d[0] / ex->vals[p].t.shape.d[0];   /* R's rows in one of P's */
    for (int s = 0; s < ex->nsteps; s++)
        for (int j = 0; j < ex->steps[s].nin; j++) {
            if (ex->steps[s].in[j] != v) continue;
            if (ex->steps[s].nin != 1 || ex->steps[s].fused || ex->keep[ex->steps[s].out] || !row_view(ex, ex->steps[s].out, v, &r0))
                return false;                                        /* a requested output keeps its step */
            if (v != p && r0 / per != (r0 + ex->vals[ex->steps[s].out].t.shape.d[0] - 1) / per) return false;
            views++;
        }
    return views >= 2 && views == nread[v];
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

/* The nodes computing rows [r0, r0 + rows) of P: the chain's ops over
 * those rows of x, in P's pass (a backward P's rows are backward nodes). */
static mn_node *rows_of(mn_graph *g, const row_fn *f, int64_t r0, int64_t rows)
{
    bool was = g->building_backward;
    g->building_backward = f->node[f->n - 1]->backward;
    mn_node *y = mn_slice(g, f->x, 0, r0, r0 + rows, 1), *in[MAX_IN];
    for (int i = 0; i < f->n && y; i++) {
        const mn_node *n = f->node[i];
        for (int q = 0; q < n->nin; q++) in[q] = q == f->row[i] ? y : n->in[q];
        y = mn__node(g, n->op, in, n->nin, n->attrs);
    }
    g->building_backward = was;
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

bool mn__exec_grow(mn_exec *ex, int extra)
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

/* The waits late() added go: for views read together (one step reading
 * the rows of two neighbouring steps), a view's chain would wait for a
 * step that reads the view itself, a cycle. */
static mn_status no_waits(mn_exec *ex, const view_steps *vs, int nv)
{
    for (int i = 1; i < nv; i++)
        for (int s = vs[i].first; s < vs[i].end; s++) {
            free(ex->steps[s].ctrl);
            ex->steps[s].ctrl = NULL;
            ex->steps[s].nctrl = 0;
        }
    return mn__topo_order(ex);
}

/* Each view's products wait (ctrl edges) for the computing readers of the
 * view read before it: computed step by step as the cells need them, not
 * all at the start (as soon as their input exists), where all of P's rows
 * would be live at once again. Where those waits make a cycle, there are
 * none (the rows are then computed as soon as their input exists). */
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
    mn_status err = mn__topo_order(ex);
    return err == MN_ERR_INVALID ? no_waits(ex, vs, nv) : err;
}

/* The chain's pointwise ops over one view's rows (after the product: a
 * projection's bias adds) become one fused step, as the fusion pass makes
 * them over all rows; vs[i].y: view i's chain's last value (through a
 * reshape: the reshape's). The steps they absorb go. */
static mn_status fuse_tails(mn_exec *ex, const row_fn *f, const view_steps *vs, int n, bool reshape)
{
    int mem[MAX_CHAIN], k = f->n - 1, fused = 0;
    for (int i = 0; k >= 2 && i < n; i++) {
        const mn_node *x = ex->vals[vs[i].y].node;
        bool ok = !reshape || (x = x->nin == 1 ? x->in[0] : NULL) != NULL;
        for (int j = k - 1; ok && j >= 0; j--) {     /* mem[j]: the step of chain node j + 1 (its own: no epilogue took it) */
            int d = x->op == f->node[j + 1]->op && ex->val_of[x->id] >= 0 ? ex->vals[ex->val_of[x->id]].def : -1;
            ok = d >= 0 && ex->steps[d].node == x && !ex->steps[d].fused;
            mem[j] = d;
            x = ok ? x->in[f->row[j + 1]] : NULL;
        }
        fused += ok && mn__fuse_chain(ex, mem, k);
    }
    if (!fused) return MN_OK;
    int w = 0;
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        if (st->fused_into < 0) { ex->steps[w++] = *st; continue; }
        free(st->in); free(st->tin); free(st->ctrl);
    }
    ex->nsteps = w;
    mn__set_defs(ex);
    return mn__topo_order(ex);
}

/* Through a reshape R (viewed()): the nodes of a view of R's rows [r0,
 * r0 + n) inside P's row b = r0 / per: the chain over row b (made once,
 * its reshape to R's rows in *blk[b]), then the view of its rows. */
static mn_node *block_view(mn_exec *ex, const row_fn *f, int r, int64_t per, int64_t r0, int64_t n, mn_node **blk, bool *made)
{
    int64_t b = r0 / per;
    mn_shape rs = ex->vals[r].t.shape;
    rs.d[0] = per;
    *made = !blk[b];
    mn_node *rows = blk[b] ? NULL : rows_of(ex->g, f, b, 1);
    bool was = ex->g->building_backward;
    ex->g->building_backward = f->node[f->n - 1]->backward;       /* in P's pass, as rows_of */
    if (!blk[b]) blk[b] = mn_reshape(ex->g, rows, rs);
    mn_node *y = blk[b] ? mn_slice(ex->g, blk[b], 0, r0 - b * per, r0 - b * per + n, 1) : NULL;
    ex->g->building_backward = was;
    return y;
}

/* A rewrite's new steps array: dropped on an error (the arrays of the steps
 * made for nodes from n0 on), or installed in place of the old one. */
static void drop_fresh(mn_step *fresh, int m, int n0)
{
    for (int i = 0; i < m; i++)
        if (fresh[i].node->id >= n0) { free(fresh[i].in); free(fresh[i].tin); free(fresh[i].ctrl); }
    free(fresh);
}

static void install(mn_exec *ex, mn_step *fresh, int m)
{
    free(ex->steps);
    ex->steps = fresh;
    ex->nsteps = m;
    ex->nnodes = ex->g->n;
    mn__set_defs(ex);
}

/* Splits P: each view's step is replaced by the chain over its rows (or,
 * through a reshape R, by a view of the chain over its row of P: one
 * chain per row of P, waited for as a view's chain is). */
/* A split value's first and last blocks, to order the splits of one input
 * (split.c's waits across values): root, the alias root of its chain's
 * input; x, that input; prod, the product of its first block (the view read first);
 * first, last: the values its first and last blocks' readers read. */
typedef struct { int root, x, prod, first, last, at; } split_entry;

static int alias_root(const mn_exec *ex, int v)
{
    while (mn__kind(&ex->vals[v]) == MN_VAL_ALIAS && ex->vals[v].alias_of >= 0) v = ex->vals[v].alias_of;
    return v;
}

/* The product step's value among steps [first, end) (the chain's node 0). */
static int chain_product(const mn_exec *ex, const row_fn *f, int first, int end)
{
    for (int s = first; s < end; s++) if (ex->steps[s].node->op == f->node[0]->op) return ex->steps[s].out;
    return -1;
}

static mn_status split_one(mn_exec *ex, const int *nread, int p, const row_fn *f, split_entry *e)
{
    int m = 0, cap = 0, nv = 0, n0 = ex->g->n, v = viewed(ex, nread, p);
    int64_t per = ex->vals[v].t.shape.d[0] / ex->vals[p].t.shape.d[0];
    mn_step *fresh = NULL;
    mn_status err = MN_OK;
    view_steps *vs = malloc(((size_t)ex->nsteps + 1) * sizeof *vs);
    mn_node **blk = calloc((size_t)ex->vals[p].t.shape.d[0] + 1, sizeof *blk);
    if (!vs || !blk) { free(vs); free(blk); return MN_ERR_NOMEM; }
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        int64_t r0;
        bool view = !in_chain(f, s) && st->nin == 1 && st->in[0] == v && row_view(ex, st->out, v, &r0);
        bool gone = in_chain(f, s) || (v != p && st->out == v);   /* the chain's steps; the reshape R */
        if (!err && !room(&fresh, &cap, m, 1)) err = MN_ERR_NOMEM;
        if (!view && !gone) {
            if (!err) fresh[m++] = *st;
            continue;
        }
        if (view && !err) {
            int first = ex->g->n;
            bool made = true;
            int64_t rows = ex->vals[st->out].t.shape.d[0];
            mn_node *y = v == p ? rows_of(ex->g, f, r0, rows) : block_view(ex, f, v, per, r0, rows, blk, &made);
            if (!y || ex->g->status) err = ex->g->status ? ex->g->status : MN_ERR_NOMEM;
            if (!err && (!mn__exec_grow(ex, ex->g->n - first) || !room(&fresh, &cap, m, ex->g->n - first))) err = MN_ERR_NOMEM;
            int from = m;
            if (!err) err = add_steps(ex, first, fresh, &m);
            if (!err) rewire(ex, st->out, ex->val_of[y->id]);
            if (!err && v == p) vs[nv++] = (view_steps){ ex->val_of[y->id], from, m, 0 };
            else if (!err && made)                                     /* a row of P: its chain waits, its views do not */
                vs[nv++] = (view_steps){ ex->val_of[blk[r0 / per]->id], from, m - 1, 0 };
        }
        orphan(ex, st);
    }
    free(blk);
    if (err) {     /* the steps array stays (orphans read nothing): the compile fails and frees it */
        drop_fresh(fresh, m, n0);
        free(vs);
        return err;
    }
    install(ex, fresh, m);
    err = late(ex, vs, nv);
    if (!err && nv) *e = (split_entry){ alias_root(ex, ex->val_of[f->x->id]), ex->val_of[f->x->id], chain_product(ex, f, vs[0].first, vs[0].end),
                                        vs[0].y, vs[nv - 1].y, 0 };
    if (!err && ex->fuse) {                                      /* no_fuse: every op stays a step */
        int epi = f->n > 1 ? mn__bias_epilogues(ex) : 0;            /* each view's product adds its biases, as P's did */
        if (epi < 0) err = MN_ERR_NOMEM;
        if (!err && e->prod >= 0 && ex->vals[e->prod].in_tile) e->prod = ex->vals[e->prod].fused_root;
        if (!err) err = fuse_tails(ex, f, vs, nv, v != p);          /* the chains the epilogue did not take */
    }
    free(vs);
    return err;
}

/* ---- copied rows: made again for each reader ----
 * A value P whose rows are copies (row_input trait, the registry's cost at
 * most one flop per output element: an embedding's index_select) of inputs
 * outside the arena (parameters, inputs, constants), read only through
 * views of whole rows of it, is made per reader instead: each step reading
 * such a view reads its own P over the rows it views, made just before it
 * (a backward reader's after the backward values it reads, as mirror.c's
 * clones wait). The same copy of the same bytes, so the same bits; P, which
 * lived from the first forward reader to the last backward one (an RNN's
 * embedded inputs, read by each step's projection, the recompute pass's
 * clones of it and W_ih's gradient blocks), never exists whole. */

/* P's row input when P's step copies its rows from inputs outside the arena, else -1. */
static int copied_rows(const mn_exec *ex, int p)
{
    const mn_value *x = &ex->vals[p];
    if (x->def < 0 || ex->keep[p] || mn__kind(x) != MN_VAL_ARENA || x->t.shape.ndim < 1 || x->t.shape.d[0] < 2) return -1;
    const mn_step *st = &ex->steps[x->def];
    const mn_node *n = st->node;
    int k = row_input(n);
    if (k < 0 || st->fused || st->nxout || st->out != p || st->nin != n->nin || ex->val_of[n->id] != p ||
        mn__step_flops(n) > (double)mn_shape_numel(n->desc.shape))
        return -1;
    for (int j = 0; j < st->nin; j++)               /* a small table (a folded gather's) may be in the arena */
        if (!mn__outside_arena(ex, st->in[j]) && (j == k || 4 * ex->vals[st->in[j]].bytes > x->bytes)) return -1;
    return k;
}

/* Is step st a view of its one input (an unfused alias step)? */
static bool view_step(const mn_exec *ex, const mn_step *st)
{
    const mn_value *o = &ex->vals[st->out];
    return st->nin == 1 && !st->fused && !st->nxout && o->base == MN_VAL_ALIAS && o->alias_of == st->in[0];
}

/* Marks P's views (off[v]: the byte offset into P, -1 not one; gone[s]: a
 * view step) and checks that every other step reading them reads whole rows
 * of P, fewer than all, and that a backward reader waits for something;
 * the number of such reads, -1 if P is not made per reader. */
static int row_readers(const mn_exec *ex, int p, int64_t *off, bool *gone)
{
    int64_t row = (int64_t)ex->vals[p].bytes / ex->vals[p].t.shape.d[0];
    int n = 0;
    for (int v = 0; v < ex->nvals; v++) off[v] = -1;
    off[p] = 0;
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        gone[s] = s == ex->vals[p].def;
        bool reads = false, back = st->node->backward && st->nctrl > 0;
        for (int j = 0; j < st->nin; j++) reads |= off[st->in[j]] >= 0;
        if (!reads) continue;
        if (view_step(ex, st)) {
            if (ex->keep[st->out]) return -1;
            off[st->out] = off[st->in[0]] + ex->vals[st->out].alias_off;
            gone[s] = true;
            continue;
        }
        for (int j = 0; j < st->nin; j++) {
            int u = st->in[j], d = ex->vals[u].def;
            back |= st->node->backward && off[u] < 0 && d >= 0 && ex->steps[d].node->backward;
            if (off[u] < 0) continue;
            const mn_value *a = &ex->vals[u];
            if (off[u] % row || (int64_t)a->bytes % row || a->bytes >= ex->vals[p].bytes || a->bytes == 0) return -1;
            n++;
        }
        if (st->node->backward && !back) return -1;      /* it would run at the start */
    }
    return n;
}

/* Nodes of P over rows [r0, r0 + rows) (P's op over those rows of its row
 * input k), viewed with shape `as`, in the pass of `backward`. */
static mn_node *rows_again(mn_graph *g, const mn_node *pn, int k, int64_t r0, int64_t rows, mn_shape as, bool backward)
{
    bool was = g->building_backward;
    g->building_backward = backward;
    mn_node *in[MAX_IN];
    for (int q = 0; q < pn->nin; q++) in[q] = q == k ? mn_slice(g, pn->in[k], 0, r0, r0 + rows, 1) : pn->in[q];
    mn_node *y = in[k] ? mn__node(g, pn->op, in, pn->nin, pn->attrs) : NULL;
    if (y && !mn_shape_eq(mn_node_shape(y), as)) y = mn_reshape(g, y, as);
    g->building_backward = was;
    return y;
}

/* What a reader's copy waits for: the inputs of the producers of the
 * reader's inputs of its own pass (through views), so the copy runs a
 * level before the reader, beside the last of them, and does not hold the
 * reader back (a held-back weight-gradient GEMM keeps its gate-gradient
 * block a level longer, beside the next block's first piece: 1.4 MB more
 * at lstm_long's peak at 1/4); a producer with no input of that pass is
 * waited for itself. Backward readers, and forward readers that wait for
 * nothing themselves (an LSTM cell reading its step's rows of a folded
 * gather, ops/index.c: 512 KiB a step at lstm_long, which would otherwise
 * all be made at the start). Their count into *c (owned), -1 out of memory. */
static int waits_for(const mn_exec *ex, const mn_step *st, const int64_t *off, int nv0, int **c)
{
    int cap = 0, n = 0;
    bool bw = st->node->backward;                      /* the reader's pass */
    for (int q = 0; q < st->nin; q++) {
        int r = st->in[q];
        while (ex->vals[r].base == MN_VAL_ALIAS) r = ex->vals[r].alias_of;
        cap += ex->vals[r].def >= 0 ? ex->steps[ex->vals[r].def].nin + 1 : 0;
    }
    if (!(*c = malloc(((size_t)cap + 1) * sizeof **c))) return -1;
    for (int q = 0; q < st->nin; q++) {
        int w = st->in[q], r = w, d = ex->vals[w].def;
        if (w >= nv0 || off[w] >= 0 || d < 0 || ex->steps[d].node->backward != bw) continue;
        while (ex->vals[r].base == MN_VAL_ALIAS) r = ex->vals[r].alias_of;
        const mn_step *p = &ex->steps[ex->vals[r].def];
        int before = n;
        for (int j = 0; j < p->nin; j++) {
            int u = p->in[j], e = u < nv0 ? ex->vals[u].def : -1;
            if (e >= 0 && ex->steps[e].node->backward == bw && off[u] < 0) (*c)[n++] = u;
        }
        if (n == before) (*c)[n++] = r;
    }
    int m = 0;                                           /* each value once */
    for (int i = 0; i < n; i++) {
        bool dup = false;
        for (int j = 0; j < m; j++) dup |= (*c)[j] == (*c)[i];
        if (!dup) (*c)[m++] = (*c)[i];
    }
    return m;
}

/* P made per reader; the views and P's step go. */
static mn_status copy_per_reader(mn_exec *ex, int p, int k, const int64_t *off, const bool *gone)
{
    int m = 0, cap = 0, n0 = ex->g->n;
    int64_t row = (int64_t)ex->vals[p].bytes / ex->vals[p].t.shape.d[0];
    const mn_node *pn = ex->vals[p].node;
    mn_step *fresh = NULL;
    mn_status err = MN_OK;
    int nsteps = ex->nsteps, nv0 = ex->nvals;          /* off[] covers the values before the copies */
    for (int s = 0; s < nsteps && !err; s++) {
        mn_step *st = &ex->steps[s];
        if (gone[s]) { orphan(ex, st); continue; }
        if (!room(&fresh, &cap, m, 1)) { err = MN_ERR_NOMEM; break; }
        for (int j = 0; j < st->nin && !err; j++) {
            int u = st->in[j];
            if (u >= nv0 || off[u] < 0) continue;
            const mn_value *a = &ex->vals[u];
            int first = ex->g->n;
            mn_node *y = rows_again(ex->g, pn, k, off[u] / row, (int64_t)a->bytes / row, a->t.shape, st->node->backward);
            if (!y || ex->g->status) { err = ex->g->status ? ex->g->status : MN_ERR_NOMEM; break; }
            if (!mn__exec_grow(ex, ex->g->n - first) || !room(&fresh, &cap, m, ex->g->n - first + 1)) { err = MN_ERR_NOMEM; break; }
            st = &ex->steps[s];
            int from = m;
            if ((err = add_steps(ex, first, fresh, &m))) break;
            int *c = NULL, nc = st->node->backward || !st->nctrl ? waits_for(ex, st, off, nv0, &c) : 0;
            if (nc < 0) { err = MN_ERR_NOMEM; break; }
            for (int i = from; nc && i < m; i++) {
                if (mn__kind(&ex->vals[fresh[i].out]) == MN_VAL_ALIAS) continue;
                if (!(fresh[i].ctrl = malloc((size_t)nc * sizeof *fresh[i].ctrl))) { err = MN_ERR_NOMEM; break; }
                memcpy(fresh[i].ctrl, c, (size_t)nc * sizeof *c);
                fresh[i].nctrl = nc;
            }
            free(c);
            if (err) break;
            /* a forward copy runs early; its view for the reader waits as the
             * reader does (split.c's late()), a wait the recompute pass lifts
             * for early slices or keeps for its older rule (hold_waits) */
            mn_step *last = &fresh[m - 1];
            if (!st->node->backward && st->nctrl && m - from > 2 && mn__kind(&ex->vals[last->out]) == MN_VAL_ALIAS) {
                if (!(last->ctrl = malloc((size_t)st->nctrl * sizeof *last->ctrl))) { err = MN_ERR_NOMEM; break; }
                memcpy(last->ctrl, st->ctrl, (size_t)st->nctrl * sizeof *st->ctrl);
                last->nctrl = st->nctrl;
            }
            int yv = ex->val_of[y->id];
            for (int q = j; q < st->nin; q++) if (st->in[q] == u) st->in[q] = yv;
        }
        if (!err) fresh[m++] = *st;
    }
    if (err) {
        drop_fresh(fresh, m, n0);
        return err;
    }
    install(ex, fresh, m);
    return mn__topo_order(ex);
}

/* Every value with copied rows read only through row views, made per reader; *n: how many. */
static mn_status copy_rows(mn_exec *ex, int *n)
{
    mn_status err = MN_OK;
    int nv0 = ex->nvals;
    for (int p = 0; !err && p < nv0; p++) {
        int k = copied_rows(ex, p);
        if (k < 0) continue;
        int64_t *off = malloc(((size_t)ex->nvals + 1) * sizeof *off);
        bool *gone = malloc(((size_t)ex->nsteps + 1) * sizeof *gone);
        if (!off || !gone) err = MN_ERR_NOMEM;
        if (!err && row_readers(ex, p, off, gone) > 0) {
            err = copy_per_reader(ex, p, k, off, gone);
            *n += !err;
        }
        free(off); free(gone);
    }
    return err;
}

static int by_root_at(const void *a, const void *b)
{
    const split_entry *x = a, *y = b;
    return x->root != y->root ? x->root - y->root : x->at - y->at;
}

/* Adds the computing readers of value `w` (through views) to step st's waits; false: out of memory. */
static bool wait_for(mn_exec *ex, mn_step *st, int w)
{
    int m = 0, k = 0, at = ex->nsteps;
    readers(ex, w, NULL, &m, &at);
    int *c = m ? realloc(st->ctrl, ((size_t)st->nctrl + (size_t)m) * sizeof *c) : st->ctrl;
    if (m && !c) return false;
    st->ctrl = c;
    readers(ex, w, c + st->nctrl, &k, &at);
    st->nctrl += k;
    return true;
}

/* Split values of one input (the blocks of a head's input gradient, one
 * per_step product each) wait as the rows of one value do (late()): each
 * value's first product waits (ctrl edges) for the readers of the last
 * block of the value read before it, so their rows are made as the cells
 * need them, not all at the start; so do the other steps reading the same
 * input rows (the head's weight-gradient block of those steps), which then
 * read the block's hidden states when the backward pass reaches them.
 * Where that makes a cycle, none wait. */
static mn_status late_across(mn_exec *ex, split_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        int m = 0;
        e[i].at = ex->nsteps;
        readers(ex, e[i].first, NULL, &m, &e[i].at);
    }
    qsort(e, (size_t)n, sizeof *e, by_root_at);
    int *nc0 = malloc(((size_t)ex->nsteps + 1) * sizeof *nc0), *outs = malloc(((size_t)ex->nvals + 1) * sizeof *outs);
    if (!nc0 || !outs) { free(nc0); free(outs); return MN_ERR_NOMEM; }
    for (int s = 0; s < ex->nsteps; s++) nc0[s] = ex->steps[s].nctrl;
    bool ok = true;
    for (int i = 1; ok && i < n; i++) {
        if (e[i].root != e[i - 1].root || e[i].prod < 0 || ex->vals[e[i].prod].def < 0) continue;
        int m = 0, at = ex->nsteps;
        readers(ex, e[i].x, outs, &m, &at);                   /* the product (through its slice) and the others */
        for (int r = 0; ok && r < m; r++)
            if (ex->vals[outs[r]].def >= 0 && ex->steps[ex->vals[outs[r]].def].node->backward)
                ok = wait_for(ex, &ex->steps[ex->vals[outs[r]].def], e[i - 1].last);
    }
    mn_status err = ok ? mn__topo_order(ex) : MN_ERR_NOMEM;
    if (err == MN_ERR_INVALID) {                  /* a cycle: the added waits go */
        for (int s = 0; s < ex->nsteps; s++) ex->steps[s].nctrl = nc0[s];
        err = mn__topo_order(ex);
    }
    free(nc0);
    free(outs);
    return err;
}

/* Splits every such value, then makes values with copied rows per reader; *n: how many. */
mn_status mn__split_rows(mn_exec *ex, int *n)
{
    *n = 0;
    mn_status err = MN_OK;
    int *nread = malloc(((size_t)ex->nvals + 1) * sizeof *nread);
    split_entry *e = malloc(((size_t)ex->nvals + 1) * sizeof *e);
    if (!nread || !e) { free(nread); free(e); return MN_ERR_NOMEM; }
    mn__count_reads(ex, nread);
    int nv0 = ex->nvals;
    for (int p = 0; !err && p < nv0; p++) {
        row_fn f;
        if (ex->vals[p].def < 0 || !views_only(ex, nread, p) || !row_chain(ex, nread, p, &f) || !fused_inputs_ok(ex, p, &f)) continue;
        e[*n] = (split_entry){ -1, -1, -1, -1, -1, 0 };
        err = split_one(ex, nread, p, &f, &e[*n]);
        *n += !err;
        int *grown = err ? NULL : realloc(nread, ((size_t)ex->nvals + 1) * sizeof *nread);
        if (grown) nread = grown;
        else if (!err) err = MN_ERR_NOMEM;
        if (!err) mn__count_reads(ex, nread);
    }
    if (!err && *n > 1) err = late_across(ex, e, *n);
    free(nread);
    free(e);
    if (!err) err = copy_rows(ex, n);
    return err;
}

