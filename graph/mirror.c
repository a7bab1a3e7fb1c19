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
 * bits), after (ctrl edges) the reader's other backward inputs exist.
 * Owns: those clone steps and their values; rewires the backward readers. */
#include "exec.h"
#include <stdlib.h>
#include <string.h>

enum { MIRROR_FLOPS = 8, MAX_DEPTH = MN_MIRROR_CHAIN - 1, MAX_IN = 8, MAX_CTRL = 8 };

typedef struct {
    bool *bread;          /* per value: read by a backward step */
    bool *pieces;         /* per value: an input of a forward concat (op trait input_view), whose bytes the planner keeps there */
    int nv;               /* values before the rewrite */
    int *clone;           /* per value below nv: its clone made for the reader being served, -1 */
    int *dst;             /* clone steps of the reader being served, in order */
    int ndst;
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
    mc->dst[mc->ndst++] = (*nsteps)++;
    return c;
}

/* The backward values step s reads (through a view: what the view's first
 * reader reads), so that clones serving s wait for them; their count. */
static int reader_ctrl(const mn_exec *ex, int s, int *ctrl)
{
    int n = 0, view = -1;
    for (int hop = 0; hop < 4 && s >= 0; hop++) {
        const mn_step *r = &ex->steps[s];
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

/* The ctrl edges of the clones serving step s. */
static bool add_ctrl(const mn_exec *ex, mn_step *steps, const mirror_ctx *mc, int s)
{
    int ctrl[MAX_CTRL], nc = reader_ctrl(ex, s, ctrl);
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
    bool bad = !steps || !vals || !keep || !mc->dst;
    int *served = calloc((size_t)ex->nvals + 1, sizeof *served);   /* value -> its clone + 1, once made */
    bad = bad || !served;
    for (int s = 0; !bad && s < n0; s++) {
        mn_step r = ex->steps[s];
        if (!forward_step(&r)) {
            mc->ndst = 0;
            for (int v = 0; v < mc->nv; v++) mc->clone[v] = -1;
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
        steps[m++] = r;
    }
    free(served);
    free(mc->dst);
    if (bad) {
        if (steps) free_steps(steps, 0, m);
        free(steps);
        return -1;
    }
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
    mirror_ctx mc = { .nv = nv, .bread = calloc((size_t)nv + 1, 1), .pieces = calloc((size_t)nv + 1, 1),
                      .clone = malloc(((size_t)nv + 1) * sizeof(int)) };
    bool *mir = calloc((size_t)nv + 1, sizeof *mir);
    if (!mc.bread || !mc.pieces || !mc.clone || !mir) { free(mc.bread); free(mc.pieces); free(mc.clone); free(mir); return -1; }
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
    free(mc.bread); free(mc.pieces); free(mc.clone); free(mir);
    return r;
}
