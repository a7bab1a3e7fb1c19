/* graph/mirror.c: pointwise recomputation (MXNet's "mirror"), a rewrite the
 * recompute pass tries under a budget, alone first and then beside every
 * segment plan. A forward value the backward pass reads is dropped after
 * the forward pass and computed again just before its first backward
 * reader when its op is cheap (the registry's cost at most MIRROR_FLOPS per
 * output element and no input larger than the output: elementwise ops,
 * activations, layer norm from its stats, dropout, which replays its mask
 * from the same stream) and its inputs are kept for the backward pass
 * anyway, or are such values themselves (GELU's output from the kept
 * pre-activation, dropout of it). A clone runs its node's own kernel (a
 * member of a fused step alone: the same float operations, so the same
 * bits), after (ctrl edges) the reader's other backward inputs exist; the
 * reader's sibling backward steps that read the same upstream gradient and
 * allocate as much wait for the reader (GELU's rebuilt output is read and
 * dropped before the gradient of its input exists). Owns: those clone
 * steps, their values and those ctrl edges; rewires the backward readers. */
#include "exec.h"
#include <stdlib.h>
#include <string.h>

enum { MIRROR_FLOPS = 8, MAX_DEPTH = MN_MIRROR_CHAIN - 1, MAX_IN = 8, MAX_CTRL = 8, WINDOW = 256 };

typedef struct {
    bool *bread;          /* per value: read by a backward step */
    bool *pieces;         /* per value: an input of a forward concat (op trait input_view), whose bytes the planner keeps there */
    int nv;               /* values before the rewrite */
    int *clone;           /* per value below nv: its clone made for the reader being served, -1 */
    int *dst;             /* clone steps of the reader being served, in order */
    int ndst;
    int *made, nmade;     /* values whose clone[] entry the reader being served set */
    int *wait;            /* per step: a value it waits for (ctrl), -1 */
    char *mark;           /* per step: scratch (ancestors of a reader) */
    int *stack;           /* per step: scratch */
} mirror_ctx;

static bool forward_step(const mn_step *st) { return !st->node->backward && !st->clone; }

/* Is node n's op cheap to run again from its inputs? */
static bool cheap(const mn_node *n)
{
    if (n->kind != MN_NODE_OP || !n->op->forward || (n->op->flags & MN_OPF_COMPOSITE)) return false;
    double numel = (double)mn_shape_numel(n->desc.shape);
    for (int j = 0; j < n->nin; j++)
        if ((double)mn_shape_numel(n->in_desc[j].shape) > numel) return false;
    return mn__step_flops(n) <= MIRROR_FLOPS * numel;
}

/* Is value u there when the backward pass runs: outside the arena, or read by the backward pass itself? */
static bool kept(const mn_exec *ex, const mirror_ctx *mc, int u)
{
    mn_val_kind k = mn__kind(&ex->vals[u]);
    if (k == MN_VAL_PARAM || k == MN_VAL_INPUT || k == MN_VAL_CONST) return true;
    if (ex->vals[u].def < 0 || k == MN_VAL_FUSED || k == MN_VAL_GRAD) return false;
    return mc->bread[u] || ex->keep[u];
}

/* Can value u be computed again from kept values through a chain of cheap forward ops? */
static bool rebuildable(const mn_exec *ex, const mirror_ctx *mc, int u, int depth)
{
    const mn_value *x = &ex->vals[u];
    if (depth > MAX_DEPTH || x->node->nin > MAX_IN || x->def < 0 || !forward_step(&ex->steps[x->def]) || x->base != MN_VAL_ARENA || !cheap(x->node)) return false;
    int again = 0;                                      /* inputs rebuilt too: one at most, so a rebuild is a chain */
    for (int j = 0; j < x->node->nin; j++) {
        int w = ex->val_of[x->node->in[j]->id];
        if (w < 0) return false;
        if (kept(ex, mc, w)) continue;
        if (++again > 1 || !rebuildable(ex, mc, w, depth + 1)) return false;
    }
    return true;
}

/* Is forward value v worth mirroring: arena bytes of its own, read by the backward pass, rebuildable? */
static bool mirrored(const mn_exec *ex, const mirror_ctx *mc, int v)
{
    const mn_value *x = &ex->vals[v];
    return mc->bread[v] && !mc->pieces[v] && !ex->keep[v] && !x->direct && mn__kind(x) == MN_VAL_ARENA && x->bytes > 0 && rebuildable(ex, mc, v, 0);
}

/* A clone step of value u's node (and first of what it needs), reading clones where made; its value, or -1. */
static int make_clone(mn_exec *ex, mirror_ctx *mc, mn_step *steps, int *nsteps, int u)
{
    if (mc->clone[u] >= 0) return mc->clone[u];
    const mn_node *n = ex->vals[u].node;
    int in[MAX_IN];
    if (n->nin > MAX_IN) return -1;
    for (int j = 0; j < n->nin; j++) {
        int w = ex->val_of[n->in[j]->id];
        in[j] = kept(ex, mc, w) ? w : make_clone(ex, mc, steps, nsteps, w);
        if (in[j] < 0) return -1;
    }
    mn_step *st = &steps[*nsteps];
    *st = (mn_step){ .node = ex->vals[u].node, .nin = n->nin, .clone = true, .work = -1, .fused_into = -1 };
    st->in = malloc((size_t)n->nin * sizeof *st->in + 1);
    st->tin = calloc((size_t)n->nin + 1, sizeof *st->tin);
    st->xout = malloc(sizeof *st->xout);
    if (!st->in || !st->tin || !st->xout) { free(st->in); free(st->tin); free(st->xout); return -1; }
    memcpy(st->in, in, (size_t)n->nin * sizeof *in);
    int c = ex->nvals++;
    ex->vals[c] = ex->vals[u];
    ex->vals[c].in_tile = false;
    ex->vals[c].fused_root = -1;
    ex->keep[c] = false;
    st->out = mc->clone[u] = c;
    mc->made[mc->nmade++] = u;
    mc->dst[mc->ndst++] = (*nsteps)++;
    return c;
}

/* The backward values step s reads (through a view: what the view's first
 * reader reads), so that clones serving s wait for them; their count. */
static int reader_ctrl(const mn_exec *ex, int s, int *ctrl, int *at)
{
    int n = 0, view = -1;
    for (int hop = 0; hop < 4 && s >= 0; hop++) {
        const mn_step *r = &ex->steps[s];
        *at = s;
        for (int j = 0; j < r->nin && n < MAX_CTRL; j++) {
            int d = ex->vals[r->in[j]].def;
            if (d >= 0 && ex->steps[d].node->backward && r->in[j] != view) ctrl[n++] = r->in[j];
        }
        view = r->out;
        if (n || ex->vals[r->out].base != MN_VAL_ALIAS) break;
        int t = s + 1;                                  /* a view: its first reader's inputs */
        for (; t < ex->nsteps; t++) {
            bool reads = false;
            for (int j = 0; j < ex->steps[t].nin; j++) reads |= ex->steps[t].in[j] == r->out;
            if (reads) break;
        }
        s = t < ex->nsteps ? t : -1;
    }
    return n;
}

static int root_of(const mn_exec *ex, int v)
{
    while (ex->vals[v].base == MN_VAL_ALIAS) v = ex->vals[v].alias_of;
    return v;
}

/* Backward steps near reader a (in step order) that read what a reads from
 * the backward pass and make a value of at least `bytes` wait for a: the
 * mirrored value is rebuilt, read and dropped before they allocate (GELU's
 * output and the gradient of its input are never live together). Never an
 * ancestor of a, so no cycle. */
static void delay_siblings(const mn_exec *ex, mirror_ctx *mc, int a, const int *ctrl, int nc, size_t bytes)
{
    int lo = a > WINDOW ? a - WINDOW : 0, hi = a + WINDOW < ex->nsteps ? a + WINDOW : ex->nsteps, sp = 0;
    mc->stack[sp++] = a;
    mc->mark[a] = 1;
    while (sp) {                                        /* a's ancestors from lo on */
        const mn_step *x = &ex->steps[mc->stack[--sp]];
        for (int j = 0; j < x->nin; j++) {
            int d = ex->vals[x->in[j]].def;
            if (d >= lo && !mc->mark[d]) { mc->mark[d] = 1; mc->stack[sp++] = d; }
        }
    }
    for (int t = lo; t < hi; t++) {
        const mn_step *st = &ex->steps[t];
        const mn_value *o = &ex->vals[st->out];
        if (mc->mark[t] || forward_step(st) || st->clone || mc->wait[t] >= 0 || mn__kind(o) != MN_VAL_ARENA || o->bytes < bytes) continue;
        bool sibling = false;
        for (int j = 0; j < st->nin && !sibling; j++)
            for (int k = 0; k < nc; k++) sibling |= root_of(ex, st->in[j]) == root_of(ex, ctrl[k]);
        if (sibling) mc->wait[t] = ex->steps[a].out;
    }
    for (int t = lo; t <= a; t++) mc->mark[t] = 0;
}

/* The ctrl edges of the clones serving step s; their readers' siblings wait. */
static bool add_ctrl(const mn_exec *ex, mn_step *steps, mirror_ctx *mc, int s)
{
    int ctrl[MAX_CTRL], at = s, nc = reader_ctrl(ex, s, ctrl, &at);
    size_t bytes = 0;
    for (int i = 0; i < mc->ndst; i++) bytes = ex->vals[steps[mc->dst[i]].out].bytes > bytes ? ex->vals[steps[mc->dst[i]].out].bytes : bytes;
    if (mc->ndst && nc) delay_siblings(ex, mc, at, ctrl, nc, bytes);
    for (int i = 0; nc && i < mc->ndst; i++) {
        mn_step *st = &steps[mc->dst[i]];
        if (!(st->ctrl = malloc((size_t)nc * sizeof *st->ctrl))) return false;
        memcpy(st->ctrl, ctrl, (size_t)nc * sizeof *ctrl);
        st->nctrl = nc;
    }
    return true;
}

/* How many clone steps mirroring could add at most (values and steps to reserve):
 * a chain of MAX_DEPTH + 1 per mirrored value and backward reader. */
static int bound(const mn_exec *ex, const bool *mir)
{
    int n = 0;
    for (int s = 0; s < ex->nsteps; s++)
        for (int j = 0; !forward_step(&ex->steps[s]) && j < ex->steps[s].nin; j++) n += mir[ex->steps[s].in[j]];
    return n * (MAX_DEPTH + 1);
}

static void free_steps(mn_step *steps, int from, int to)
{
    for (int i = from; i < to; i++)
        if (steps[i].clone) { free(steps[i].in); free(steps[i].tin); free(steps[i].xout); free(steps[i].ctrl); }
}

/* Rewrites the steps: each mirrored value's clones go right before its first
 * backward reader, every backward reader reads the clone. Returns how many
 * values were mirrored (0: the steps are unchanged), -1 out of memory. */
static int rewrite(mn_exec *ex, mirror_ctx *mc, const bool *mir, int nmir)
{
    int cap = bound(ex, mir), n0 = ex->nsteps, m = 0;
    mn_step *steps = calloc((size_t)n0 + (size_t)cap + 1, sizeof *steps);
    mn_value *vals = realloc(ex->vals, ((size_t)ex->nvals + (size_t)cap + 1) * sizeof *vals);
    if (vals) ex->vals = vals;
    bool *keep = realloc(ex->keep, ((size_t)ex->nvals + (size_t)cap + 1) * sizeof *keep);
    if (keep) ex->keep = keep;
    mc->dst = malloc(((size_t)cap + 1) * sizeof *mc->dst);
    mc->made = malloc(((size_t)cap + 1) * sizeof *mc->made);
    mc->nmade = 0;
    bool bad = !steps || !vals || !keep || !mc->dst || !mc->made;
    int *served = calloc((size_t)ex->nvals + 1, sizeof *served);   /* value -> its clone + 1, once made */
    int *orig = malloc(((size_t)n0 + (size_t)cap + 1) * sizeof *orig);   /* a copied step's index in ex->steps, -1 a clone */
    bad = bad || !served || !orig;
    for (int i = 0; !bad && i < n0 + cap + 1; i++) orig[i] = -1;
    for (int s = 0; !bad && s < n0; s++) {
        mn_step r = ex->steps[s];
        if (!forward_step(&r)) {
            mc->ndst = 0;
            while (mc->nmade) mc->clone[mc->made[--mc->nmade]] = -1;
            for (int j = 0; !bad && j < r.nin; j++) {
                int v = r.in[j];
                if (!mir[v] || served[v]) continue;
                int c = make_clone(ex, mc, steps, &m, v);
                bad = c < 0;
                if (!bad) served[v] = c + 1;
            }
            bad = bad || !add_ctrl(ex, steps, mc, s);
            for (int j = 0; !bad && j < r.nin; j++)
                if (mir[r.in[j]]) r.in[j] = served[r.in[j]] - 1;
            if (!bad && ex->vals[r.out].base == MN_VAL_ALIAS) ex->vals[r.out].alias_of = r.in[0];
        }
        orig[m] = s;
        steps[m++] = r;
    }
    for (int i = 0; !bad && i < m; i++) {               /* the delayed siblings' ctrl edges (a copy: the snapshot keeps the old) */
        mn_step *st = &steps[i];
        int w = orig[i] >= 0 ? mc->wait[orig[i]] : -1;
        if (w < 0) continue;
        int *ctrl = malloc(((size_t)st->nctrl + 1) * sizeof *ctrl);
        if (!(bad = !ctrl)) {
            if (st->nctrl) memcpy(ctrl, st->ctrl, (size_t)st->nctrl * sizeof *ctrl);
            ctrl[st->nctrl] = w;
            st->ctrl = ctrl;
            st->nctrl++;
            orig[i] = -2;                               /* owns its ctrl */
        }
    }
    free(served);
    free(mc->dst);
    free(mc->made);
    if (bad) {
        for (int i = 0; orig && i < m; i++) if (orig[i] == -2) free(steps[i].ctrl);
        free(orig);
        if (steps) free_steps(steps, 0, m);
        free(steps);
        return -1;
    }
    free(orig);
    free(ex->steps);
    ex->steps = steps;
    ex->nsteps = m;
    mn__set_defs(ex);
    mn_status st = mn__topo_order(ex);
    return st ? -1 : nmir;
}

int mn__mirror(mn_exec *ex)
{
    int nv = ex->nvals, nmir = 0;
    size_t ns = (size_t)ex->nsteps + 1;
    mirror_ctx mc = { .nv = nv, .bread = calloc((size_t)nv + 1, 1), .pieces = calloc((size_t)nv + 1, 1),
                      .clone = malloc(((size_t)nv + 1) * sizeof(int)), .wait = malloc(ns * sizeof(int)), .mark = calloc(ns, 1),
                      .stack = malloc(ns * sizeof(int)) };
    bool *mir = calloc((size_t)nv + 1, sizeof *mir);
    bool ok = mc.bread && mc.pieces && mc.clone && mc.wait && mc.mark && mc.stack && mir;
    for (int v = 0; ok && v < nv; v++) mc.clone[v] = -1;
    for (int s = 0; ok && s < ex->nsteps; s++) mc.wait[s] = -1;
    if (!ok) { free(mc.bread); free(mc.pieces); free(mc.clone); free(mc.wait); free(mc.mark); free(mc.stack); free(mir); return -1; }
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        bool fwd = forward_step(st), concat = st->node->op->traits.input_view != NULL;
        for (int j = 0; j < st->nin; j++) {
            mc.bread[st->in[j]] |= !fwd;
            for (int u = st->in[j]; fwd && concat; u = ex->vals[u].alias_of) {   /* the piece, through views */
                mc.pieces[u] = true;
                if (ex->vals[u].base != MN_VAL_ALIAS) break;
            }
        }
    }
    for (int v = 0; v < nv; v++) nmir += mir[v] = mirrored(ex, &mc, v);
    int r = nmir ? rewrite(ex, &mc, mir, nmir) : 0;
    free(mc.bread); free(mc.pieces); free(mc.clone); free(mc.wait); free(mc.mark); free(mc.stack); free(mir);
    return r;
}
