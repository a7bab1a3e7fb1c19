/* graph/recompute.c: the recompute pass (only under opts.memory_budget).
 * Segment checkpointing: the forward steps, in schedule order, are cut into
 * K segments of equal saved bytes (bytes the backward pass reads), or
 * with a longer last one (tail plans, never recomputed). A value
 * a later segment reads, or the caller keeps, is a checkpoint; the other
 * values of segments 0..K-2 that the backward pass reads are dropped, and
 * their steps are cloned (same node: same kernel, attributes and random
 * stream, so the bits are the same) just before their first backward
 * reader, after (ctrl edges) the backward readers of the next segment. The
 * pass estimates K candidates (schedule and the planner's lower bound),
 * block plans (segments cut at the graph's narrow points, blocks.c), each
 * without and with mirror.c's pointwise recomputation, and the mirror
 * alone; it plans in full only those that may fit, fewest added FLOPs
 * first. Clones that read no clone wait (ctrl edges) beside the inputs of
 * their one reader (defer_clones), where that plans smaller. Owns: the
 * clone steps (step.clone, step.ctrl) and their values;
 * rewires backward steps' inputs. */
#include "exec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The compiled representation before the pass, restored between probes. */
typedef struct {
    mn_step *steps;
    int nsteps;
    int *ins, nins;       /* every step's inputs, flat */
    mn_value *vals;
    int nvals;
    mn_sink *sinks;
    int **ctrls, nctrls;  /* the steps' ctrl arrays, sorted: any other a candidate made (mirror.c) is freed on restore */
} snapshot;

static int by_ptr(const void *a, const void *b)
{
    const int *x = *(int *const *)a, *y = *(int *const *)b;
    return (x > y) - (x < y);
}

static bool take(const mn_exec *ex, snapshot *sn)
{
    sn->nsteps = ex->nsteps;
    sn->nvals = ex->nvals;
    sn->nins = 0;
    for (int s = 0; s < ex->nsteps; s++) sn->nins += ex->steps[s].nin;
    sn->steps = malloc(((size_t)ex->nsteps + 1) * sizeof *sn->steps);
    sn->ins = malloc(((size_t)sn->nins + 1) * sizeof *sn->ins);
    sn->vals = malloc(((size_t)ex->nvals + 1) * sizeof *sn->vals);
    sn->sinks = malloc(((size_t)ex->nsinks + 1) * sizeof *sn->sinks);
    if (!sn->steps || !sn->ins || !sn->vals || !sn->sinks) return false;
    memcpy(sn->steps, ex->steps, (size_t)ex->nsteps * sizeof *sn->steps);
    memcpy(sn->vals, ex->vals, (size_t)ex->nvals * sizeof *sn->vals);
    memcpy(sn->sinks, ex->sinks, (size_t)ex->nsinks * sizeof *sn->sinks);
    for (int s = 0, at = 0; s < ex->nsteps; at += ex->steps[s].nin, s++)
        memcpy(sn->ins + at, ex->steps[s].in, (size_t)ex->steps[s].nin * sizeof *sn->ins);
    if (!(sn->ctrls = malloc(((size_t)ex->nsteps + 1) * sizeof *sn->ctrls))) return false;
    sn->nctrls = 0;
    for (int s = 0; s < ex->nsteps; s++) if (ex->steps[s].ctrl) sn->ctrls[sn->nctrls++] = ex->steps[s].ctrl;
    qsort(sn->ctrls, (size_t)sn->nctrls, sizeof *sn->ctrls, by_ptr);
    return true;
}

static void free_clone(mn_step *st)
{
    free(st->in); free(st->tin); free(st->xout); free(st->ctrl);
}

/* Back to the snapshot: clones freed, inputs rewired back, schedule and plan dropped. */
static void restore(mn_exec *ex, const snapshot *sn)
{
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        if (st->clone) free_clone(st);
        else if (st->ctrl && !bsearch(&st->ctrl, sn->ctrls, (size_t)sn->nctrls, sizeof *sn->ctrls, by_ptr)) free(st->ctrl);
    }
    memcpy(ex->steps, sn->steps, (size_t)sn->nsteps * sizeof *sn->steps);
    ex->nsteps = sn->nsteps;
    for (int s = 0, at = 0; s < ex->nsteps; at += ex->steps[s].nin, s++)
        memcpy(ex->steps[s].in, sn->ins + at, (size_t)ex->steps[s].nin * sizeof *sn->ins);
    memcpy(ex->vals, sn->vals, (size_t)sn->nvals * sizeof *sn->vals);
    ex->nvals = sn->nvals;
    memcpy(ex->sinks, sn->sinks, (size_t)ex->nsinks * sizeof *sn->sinks);
    free(ex->level_start); free(ex->level_split); free(ex->stores);
    ex->level_start = NULL; ex->level_split = NULL; ex->stores = NULL;
    ex->nlevels = ex->nstores = 0;
    ex->recomputed_values = ex->recompute_steps = 0;
    ex->recompute_flops = 0;
    mn__set_defs(ex);
}

static void drop_snapshot(snapshot *sn) { free(sn->steps); free(sn->ins); free(sn->vals); free(sn->sinks); free(sn->ctrls); }

/* Per value: read by a backward step, read by a forward step of a later segment. */
typedef struct {
    int *seg;             /* per step: segment of a forward step, -1 backward */
    int *vseg;            /* per value: its producer's segment, -1 */
    bool *bread, *cross, *drop, *need;
    int *clone_of;        /* per value: its clone, -1 */
    int *vview;           /* per value (before clones): the value a backward view views (through views), else itself */
    int nseg;             /* segments of the candidate applied */
    double tail;          /* the last segment's share of the saved bytes (0: k equal segments), see segments() */
    int nmirror;          /* values mirrored (mirror.c) in the candidate applied */
    bool chain;           /* clones read the clones of kept values too (see clone_step) */
    bool defer;           /* clones that read no clone wait beside their reader's inputs (defer_clones) */
    int ndefer;           /* ... clones held back in the candidate applied */
} plan_ctx;

static bool is_fwd(const mn_step *st) { return !st->node->backward && !st->clone; }

/* The bytes of a step's outputs that the backward pass reads (a view's are its source's). */
static int64_t saved_bytes(const mn_exec *ex, const plan_ctx *pc, const mn_step *st)
{
    int64_t b = pc->bread[st->out] && ex->vals[st->out].base != MN_VAL_ALIAS ? (int64_t)ex->vals[st->out].bytes : 0;
    for (int k = 0; k < st->nxout; k++) b += pc->bread[st->xout[k]] ? (int64_t)ex->vals[st->xout[k]].bytes : 0;
    return b;
}

/* Block plans 1..NBLOCK (blocks.c): a cut at every narrow point, the last
 * 0-4 kept whole with the final segment; or at every second, the last 0-3
 * (both phases: whole Transformer blocks, or their halves shifted). */
enum { NBLOCK = 5 + 4 };
static int block_plan(const mn_exec *ex, plan_ctx *pc, int id)
{
    int n = id <= 5 ? mn__block_segments(ex, 1, id - 1, pc->seg) : mn__block_segments(ex, 2, id - 6, pc->seg);
    return n < 0 ? 0 : n;
}

/* Segment of a forward step with `run` of the `total` saved bytes before
 * it: k equal parts, or (tail > 0) the last part holding the last `tail`
 * of the bytes, the k - 1 others the rest in equal parts. */
static int segment_at(int64_t run, int64_t total, int k, double tail)
{
    if (tail <= 0) return (int)((double)run * k / (double)total);
    double f = (double)run / (double)total;
    if (f >= 1 - tail) return k - 1;
    int g = (int)(f / (1 - tail) * (k - 1));
    return g < k - 1 ? g : k - 2;
}

/* The value whose bytes v views (v itself if it is no view). */
static int view_root(const mn_exec *ex, int v)
{
    while (ex->vals[v].base == MN_VAL_ALIAS) v = ex->vals[v].alias_of;
    return v;
}

static bool view_step(const mn_exec *ex, const mn_step *st)
{
    return !st->fused && !st->nxout && ex->vals[st->out].base == MN_VAL_ALIAS;
}

/* The order segments are cut in: the forward steps by (key, index). A step
 * that is the last forward reader of inputs of at least as many bytes as
 * it writes (a concat of hidden states, a product of many rows into few
 * columns) is pulled to its latest forward producer (through views): its
 * key is that producer's; any other step keeps its index, and a view takes
 * its first reader's key. A per-block concat of an RNN's hidden states and
 * the head's product of that block, built after every cell, then fall
 * right after the block's last cell, in the segment of the cells they
 * read, so those cells' outputs need not cross a segment; a time step's
 * input rows (few bytes read, many made) stay beside their cell. Only the
 * segments change, never the step order. Fills order[0..n) with the
 * forward steps and returns n, -1 out of memory. */
static int cut_order(const mn_exec *ex, int *order)
{
    int *key = malloc(((size_t)ex->nsteps + 1) * sizeof *key), *last = malloc(((size_t)ex->nvals + 1) * sizeof *last);
    int *seen = malloc(((size_t)ex->nvals + 1) * sizeof *seen), n = 0;
    if (!key || !last || !seen) { free(key); free(last); free(seen); return -1; }
    for (int v = 0; v < ex->nvals; v++) last[v] = seen[v] = -1;
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        if (is_fwd(st) && !view_step(ex, st)) for (int j = 0; j < st->nin; j++) last[view_root(ex, st->in[j])] = s;
    }
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        key[s] = s;
        if (!is_fwd(st) || view_step(ex, st)) continue;
        int latest = -1;
        int64_t dying = 0, made = (int64_t)ex->vals[st->out].bytes;
        for (int k = 0; k < st->nxout; k++) made += (int64_t)ex->vals[st->xout[k]].bytes;
        for (int j = 0; j < st->nin; j++) {
            int r = view_root(ex, st->in[j]), d = ex->vals[r].def;
            if (d < 0 || d >= s || !is_fwd(&ex->steps[d]) || seen[r] == s) continue;
            seen[r] = s;
            if (latest < 0 || key[d] > key[latest] || (key[d] == key[latest] && d > latest)) latest = d;
            if (last[r] == s) dying += (int64_t)ex->vals[r].bytes;
        }
        if (latest >= 0 && dying >= made) key[s] = key[latest];
    }
    for (int s = 0; s < ex->nsteps; s++) if (is_fwd(&ex->steps[s]) && view_step(ex, &ex->steps[s])) key[s] = -1;
    for (int s = ex->nsteps - 1; s >= 0; s--) {          /* views: their first forward reader's key (readers come later) */
        const mn_step *st = &ex->steps[s];
        if (!is_fwd(st)) continue;
        if (view_step(ex, st) && key[s] < 0) key[s] = s;  /* read by no forward step */
        for (int j = 0; j < st->nin; j++) {
            int d = ex->vals[st->in[j]].def;
            if (d >= 0 && d < s && is_fwd(&ex->steps[d]) && view_step(ex, &ex->steps[d]) && (key[d] < 0 || key[s] < key[d])) key[d] = key[s];
        }
    }
    for (int s = 0; s < ex->nsteps; s++) if (is_fwd(&ex->steps[s])) order[n++] = s;
    for (int i = 1; i < n; i++) {                        /* stable by key: steps sharing one keep their index order */
        int s = order[i], j = i;
        while (j > 0 && key[order[j - 1]] > key[s]) { order[j] = order[j - 1]; j--; }
        order[j] = s;
    }
    free(key); free(last); free(seen);
    return n;
}

/* Each cut between segments moved to the position within half a segment
 * of it where the fewest bytes cross it: forward values made before the
 * position and read by a forward step after it (through views), in cut
 * order. A cut inside a block of time steps leaves the block's hidden
 * states crossing to its concat (each then kept, with its block); at the
 * block's end only the states a step hands on (h, c) and the head's rows
 * cross. The nearest of equal positions wins; segments keep their order
 * and none becomes empty. The last cut stays: the final segment is never
 * recomputed, so a block it starts inside costs nothing more, and its
 * bytes fill the budget to the step. */
static void snap_cuts(const mn_exec *ex, plan_ctx *pc, const int *order, int n)
{
    int *pos = malloc(((size_t)ex->nsteps + 1) * sizeof *pos), *lastp = malloc(((size_t)ex->nvals + 1) * sizeof *lastp);
    int64_t *cross = calloc((size_t)n + 2, sizeof *cross);
    int *cut = malloc(((size_t)n + 1) * sizeof *cut);
    if (!pos || !lastp || !cross || !cut) goto out;
    for (int s = 0; s < ex->nsteps; s++) pos[s] = -1;
    for (int i = 0; i < n; i++) pos[order[i]] = i;
    for (int v = 0; v < ex->nvals; v++) lastp[v] = -1;
    for (int i = 0; i < n; i++) {
        const mn_step *st = &ex->steps[order[i]];
        for (int j = 0; j < st->nin; j++) {
            int r = view_root(ex, st->in[j]);
            if (i > lastp[r]) lastp[r] = i;
        }
    }
    for (int v = 0; v < ex->nvals; v++) {            /* v crosses the cuts before positions (def, last] */
        int d = ex->vals[v].def;
        if (d < 0 || pos[d] < 0 || lastp[v] <= pos[d] || ex->vals[v].base == MN_VAL_ALIAS) continue;
        cross[pos[d] + 1] += (int64_t)ex->vals[v].bytes;
        cross[lastp[v] + 1] -= (int64_t)ex->vals[v].bytes;
    }
    for (int i = 1; i <= n; i++) cross[i] += cross[i - 1];
    int nc = 0;                                      /* cut[c]: first position of segment c + 1 */
    int *lab = malloc(((size_t)n + 1) * sizeof *lab);   /* lab[c]: the label of segment c (labels may skip) */
    if (!lab) goto out;
    lab[0] = pc->seg[order[0]];
    for (int i = 1; i < n; i++) if (pc->seg[order[i]] != pc->seg[order[i - 1]]) { cut[nc++] = i; lab[nc] = pc->seg[order[i]]; }
    for (int c = 0; c + 1 < nc; c++) {                 /* not the last cut: the kept segment's bytes may end anywhere */
        int lo = c ? cut[c - 1] + 1 : 1, hi = c + 1 < nc ? cut[c + 1] - 1 : n - 1;
        int w = (cut[c] - (c ? cut[c - 1] : 0)) / 2, best = cut[c];
        if (cut[c] - w > lo) lo = cut[c] - w;
        if (cut[c] + w < hi) hi = cut[c] + w;
        for (int i = lo; i <= hi; i++) {
            int64_t a = cross[i], b = cross[best];
            if (a < b || (a == b && abs(i - cut[c]) < abs(best - cut[c]))) best = i;
        }
        cut[c] = best;
    }
    for (int i = 0, c = 0; i < n; i++) {
        if (c < nc && i == cut[c]) c++;
        pc->seg[order[i]] = lab[c];
    }
    free(lab);
out:
    free(pos); free(lastp); free(cross); free(cut);
}

/* Forward steps cut into k segments of about equal saved bytes, or a
 * longer last one (pc->tail: it is kept, so fewer steps are recomputed
 * where its bytes fit), in cut_order; k < 0: block plan -k (blocks.c cuts
 * at the graph's narrow points). */
static void segments(const mn_exec *ex, plan_ctx *pc, int k)
{
    pc->nseg = k;
    if (k < 0) { pc->nseg = block_plan(ex, pc, -k); return; }
    int *order = malloc(((size_t)ex->nsteps + 1) * sizeof *order);
    int n = order ? cut_order(ex, order) : -1;
    if (n < 0) {                                       /* out of memory: step order */
        n = 0;
        for (int s = 0; order && s < ex->nsteps; s++) if (is_fwd(&ex->steps[s])) order[n++] = s;
    }
    int64_t total = 0, run = 0;
    for (int s = 0; s < ex->nsteps; s++) {
        pc->seg[s] = -1;
        if (is_fwd(&ex->steps[s])) total += saved_bytes(ex, pc, &ex->steps[s]);
    }
    for (int i = 0; i < n; i++) {
        int s = order[i];
        int g = total ? segment_at(run, total, k, pc->tail) : 0;
        pc->seg[s] = g < k ? g : k - 1;
        run += saved_bytes(ex, pc, &ex->steps[s]);
    }
    if (n > 1) snap_cuts(ex, pc, order, n);
    free(order);
}

static bool droppable_kind(const mn_value *x) { mn_val_kind k = mn__kind(x); return k == MN_VAL_ARENA || k == MN_VAL_ALIAS; }

/* Which values are checkpoints and which are dropped; which steps to clone. */
static int analyse(const mn_exec *ex, plan_ctx *pc, int k)
{
    for (int v = 0; v < ex->nvals; v++) { pc->bread[v] = pc->cross[v] = pc->drop[v] = false; pc->vseg[v] = -1; pc->clone_of[v] = -1; }
    for (int s = 0; s < ex->nsteps; s++)
        for (int j = 0; j < ex->steps[s].nin; j++)
            if (!is_fwd(&ex->steps[s])) pc->bread[ex->steps[s].in[j]] = true;
    for (int s = ex->nsteps - 1; s >= 0; s--) {        /* the backward pass reads a forward view's bytes: its source's */
        const mn_step *st = &ex->steps[s];
        if (is_fwd(st) && view_step(ex, st) && pc->bread[st->out]) pc->bread[st->in[0]] = true;
    }
    segments(ex, pc, k);
    for (int v = 0; v < ex->nvals; v++)
        if (ex->vals[v].def >= 0) pc->vseg[v] = pc->seg[ex->vals[v].def];
    for (int v = 0; v < ex->nvals; v++) pc->cross[v] = ex->keep[v];
    for (int i = 0; i < ex->nsinks; i++) pc->cross[ex->sinks[i].value] = true;
    for (int s = 0; s < ex->nsteps; s++)
        for (int j = 0; j < ex->steps[s].nin && pc->seg[s] >= 0; j++) {
            int v = ex->steps[s].in[j];
            if (pc->vseg[v] >= 0 && pc->vseg[v] != pc->seg[s]) pc->cross[v] = true;
        }
    int n = 0;
    for (int v = 0; v < ex->nvals; v++) {
        pc->drop[v] = pc->vseg[v] >= 0 && pc->vseg[v] < pc->nseg - 1 && pc->bread[v] && !pc->cross[v] && droppable_kind(&ex->vals[v]);
        n += pc->drop[v];
    }
    /* clone every producer of a dropped value, and what it needs within its segment */
    for (int s = 0; s < ex->nsteps; s++) pc->need[s] = false;
    for (int s = ex->nsteps - 1; s >= 0; s--) {
        const mn_step *st = &ex->steps[s];
        if (pc->seg[s] < 0) continue;
        bool need = pc->need[s] || pc->drop[st->out];
        for (int j = 0; j < st->nxout; j++) need |= pc->drop[st->xout[j]];
        pc->need[s] = need;
        for (int j = 0; need && j < st->nin; j++) {
            int v = st->in[j], d = ex->vals[v].def;
            if (d >= 0 && pc->vseg[v] == pc->seg[s] && !pc->cross[v]) pc->need[d] = true;
        }
    }
    return n;
}

static int new_value(mn_exec *ex, int v)
{
    int c = ex->nvals++;
    ex->vals[c] = ex->vals[v];
    ex->keep[c] = false;
    return c;
}

/* A copy of step s reading clones where they exist, writing new values. */
static bool clone_step(mn_exec *ex, plan_ctx *pc, const mn_step *st, mn_step *out)
{
    *out = *st;
    out->clone = true;
    out->in = malloc(((size_t)st->nin + 1) * sizeof *out->in);
    out->tin = calloc((size_t)st->nin + 1, sizeof *out->tin);
    out->xout = malloc(((size_t)st->nxout + 1) * sizeof *out->xout);
    out->ctrl = NULL;
    out->nctrl = 0;
    if (!out->in || !out->tin || !out->xout) return false;
    for (int j = 0; j < st->nin; j++) {     /* a checkpoint is read where it is kept, as analyse() assumed */
        int v = st->in[j];
        out->in[j] = pc->clone_of[v] >= 0 && (pc->chain || !pc->cross[v]) ? pc->clone_of[v] : v;
    }
    out->out = pc->clone_of[st->out] = new_value(ex, st->out);
    if (ex->vals[out->out].base == MN_VAL_ALIAS) ex->vals[out->out].alias_of = out->in[0];
    for (int j = 0; j < st->nxout; j++) out->xout[j] = pc->clone_of[st->xout[j]] = new_value(ex, st->xout[j]);
    return true;
}

/* Does step st (backward) read a value of segment g, kept or a clone,
 * directly or through backward views? Clone values are those from nv0 on;
 * cseg gives their segment. */
static bool reads_seg(const mn_step *st, const plan_ctx *pc, int nv0, const int *cseg, int g)
{
    for (int j = 0; j < st->nin; j++) {
        int v = st->in[j];
        if (v >= nv0 ? cseg[v - nv0] == g : pc->vseg[pc->vview[v]] == g) return true;
    }
    return false;
}

/* The ctrl edges of segment g's clones: the outputs of the backward steps
 * before them reading clones of segment g + 1 (so segment g is recomputed
 * only once the next one's backward pass has used its values). */
static bool add_ctrl(const mn_exec *ex, mn_step *fresh, int first, int m, const plan_ctx *pc, int nv0, const int *cseg, int g)
{
    int nc = 0;
    for (int i = 0; i < first; i++) nc += !fresh[i].clone && fresh[i].node->backward && !view_step(ex, &fresh[i]) && reads_seg(&fresh[i], pc, nv0, cseg, g + 1);
    if (!nc) return true;
    for (int i = first; i < m; i++) {
        int *ctrl = malloc((size_t)nc * sizeof *ctrl), c = 0;
        if (!ctrl) return false;
        for (int j = 0; j < first; j++)
            if (!fresh[j].clone && fresh[j].node->backward && !view_step(ex, &fresh[j]) && reads_seg(&fresh[j], pc, nv0, cseg, g + 1)) ctrl[c++] = fresh[j].out;
        fresh[i].ctrl = ctrl;
        fresh[i].nctrl = nc;
    }
    return true;
}

/* The step reading value v when exactly one step reads it, through views
 * (a view step whose output has one reader), else -1; nread and reader
 * give each value's readers (count, one of them). */
static int sole_reader(const mn_exec *ex, const int *nread, const int *reader, int v)
{
    for (;;) {
        if (nread[v] != 1) return -1;
        const mn_step *r = &ex->steps[reader[v]];
        if (r->nxout || mn__kind(&ex->vals[r->out]) != MN_VAL_ALIAS || ex->keep[r->out]) return reader[v];
        v = r->out;
    }
}

/* Clones that read no clone (a segment's recurrent products and input
 * rows read kept states and parameters; a clone's view of an input, the
 * slice of token ids a step's copy of a folded gather reads, is none)
 * would run at the segment's first
 * level, all of them, and their outputs wait there for a chain of cells
 * that reads them one by one: a whole segment's products live at once.
 * Such a clone c whose output has one reader R (a clone) is held back
 * (ctrl edges) until the producers of R's other clone inputs may run: it
 * then runs beside them, one level before R. No cycle: c's only reader
 * is R, and what c waits for comes before R. The same steps, inputs and
 * kernels: the bits do not change. Values from nv0 on are clones. */
static bool defer_clones(mn_exec *ex, int nv0, int *ndefer)
{
    *ndefer = 0;
    int *nread = calloc((size_t)ex->nvals + 1, sizeof *nread), *reader = malloc(((size_t)ex->nvals + 1) * sizeof *reader);
    int *extra = malloc(((size_t)ex->nvals + 1) * sizeof *extra);
    bool ok = nread && reader && extra;
    for (int s = 0; ok && s < ex->nsteps; s++)
        for (int j = 0; j < ex->steps[s].nin; j++) {
            int v = ex->steps[s].in[j];
            bool seen = false;
            for (int i = 0; i < j; i++) seen |= ex->steps[s].in[i] == v;
            if (!seen) { nread[v]++; reader[v] = s; }
        }
    for (int s = 0; ok && s < ex->nsteps; s++) {
        mn_step *c = &ex->steps[s];
        if (!c->clone || c->nxout || ex->keep[c->out] || c->out < nv0) continue;
        bool reads_clone = false;                 /* a clone's view of an input (a slice of token ids) is none */
        for (int j = 0; j < c->nin; j++) {
            int u = c->in[j];
            reads_clone |= u >= nv0 && !(ex->vals[u].base == MN_VAL_ALIAS && mn__outside_arena(ex, u));
        }
        int r = reads_clone ? -1 : sole_reader(ex, nread, reader, c->out);
        if (r < 0 || !ex->steps[r].clone) continue;
        const mn_step *R = &ex->steps[r];
        int n = 0;
        for (int j = 0; j < R->nin; j++) {
            int u = R->in[j], d = ex->vals[u].def;
            if (u < nv0 || d < 0 || d == s || mn__kind(&ex->vals[u]) == MN_VAL_ALIAS) continue;
            const mn_step *P = &ex->steps[d];
            for (int i = 0; i < P->nin; i++) {
                int w = P->in[i];
                if (w < nv0 || ex->vals[w].def < 0 || ex->vals[w].def == s) continue;
                bool dup = false;
                for (int m = 0; m < n; m++) dup |= extra[m] == w;
                for (int m = 0; m < c->nctrl; m++) dup |= c->ctrl[m] == w;
                if (!dup) extra[n++] = w;
            }
        }
        if (!n) continue;
        int *ctrl = realloc(c->ctrl, ((size_t)c->nctrl + (size_t)n) * sizeof *ctrl);
        if (!ctrl) { ok = false; break; }
        memcpy(ctrl + c->nctrl, extra, (size_t)n * sizeof *extra);
        c->ctrl = ctrl;
        c->nctrl += n;
        ++*ndefer;
    }
    free(nread); free(reader); free(extra);
    return ok;
}

/* Applies candidate k: clones inserted before their segment's first
 * backward reader, readers rewired, ctrl edges. Returns the number of
 * dropped values (0: nothing to do), -1 out of memory, -2 no valid order. */
static int apply(mn_exec *ex, plan_ctx *pc, int k)
{
    int ndrop = analyse(ex, pc, k), n0 = ex->nsteps, nv0 = ex->nvals, nclone = 0, nv = 0;
    if (ndrop == 0) return 0;
    k = pc->nseg;
    for (int s = 0; s < n0; s++) {
        nclone += pc->need[s];
        nv += pc->need[s] * (1 + ex->steps[s].nxout);
    }
    int *ins = malloc((size_t)k * sizeof *ins), *cseg = malloc(((size_t)nv + 1) * sizeof *cseg);
    mn_step *fresh = calloc((size_t)n0 + (size_t)nclone + 1, sizeof *fresh);
    mn_value *vals = realloc(ex->vals, ((size_t)nv0 + (size_t)nv + 1) * sizeof *vals);
    if (vals) ex->vals = vals;
    bool *keep = realloc(ex->keep, ((size_t)nv0 + (size_t)nv + 1) * sizeof *keep);
    if (keep) ex->keep = keep;
    bool bad = !ins || !cseg || !fresh || !vals || !keep;
    for (int g = 0; !bad && g < k; g++) ins[g] = -1;
    for (int v = 0; !bad && v < nv0; v++) pc->vview[v] = v;
    for (int s = 0; !bad && s < n0; s++)                 /* backward views, to the value they view */
        if (pc->seg[s] < 0 && view_step(ex, &ex->steps[s])) pc->vview[ex->steps[s].out] = pc->vview[ex->steps[s].in[0]];
    for (int s = 0; !bad && s < n0; s++)                 /* segment g's insertion point: its first backward reader (a view is no reader) */
        for (int j = 0; pc->seg[s] < 0 && !view_step(ex, &ex->steps[s]) && j < ex->steps[s].nin; j++) {
            int v = pc->vview[ex->steps[s].in[j]];
            if (pc->drop[v] && ins[pc->vseg[v]] < 0) ins[pc->vseg[v]] = s;
        }
    int m = 0;
    for (int s = 0; !bad && s < n0; s++) {
        for (int g = k - 1; g >= 0 && !bad; g--) {
            if (ins[g] != s) continue;
            int first = m, vfirst = ex->nvals;
            for (int t = 0; t < n0 && !bad; t++) {
                if (!pc->need[t] || pc->seg[t] != g) continue;
                bad = !clone_step(ex, pc, &ex->steps[t], &fresh[m++]);
            }
            for (int v = vfirst; v < ex->nvals; v++) cseg[v - nv0] = g;
            bad = bad || (g + 1 < k && !add_ctrl(ex, fresh, first, m, pc, nv0, cseg, g));
        }
        fresh[m++] = ex->steps[s];
    }
    for (int i = 0; !bad && i < m; i++) {                /* a backward step reads the clones (a view may come before them) */
        mn_step *st = &fresh[i];
        if (is_fwd(st) || (st->clone && st->out >= nv0)) continue;   /* a forward step or one of this pass's clones */
        for (int j = 0; j < st->nin; j++)
            if (st->in[j] < nv0 && pc->drop[st->in[j]]) st->in[j] = pc->clone_of[st->in[j]];
        if (ex->vals[st->out].base == MN_VAL_ALIAS)     /* a backward view: of the clone's bytes */
            ex->vals[st->out].alias_of = st->in[0];
    }
    free(ins); free(cseg);
    mn_step *grown = bad ? NULL : realloc(ex->steps, ((size_t)m + 1) * sizeof *grown);
    if (!grown) {
        for (int i = 0; fresh && i < m; i++) if (fresh[i].clone) free_clone(&fresh[i]);
        free(fresh);
        return -1;
    }
    ex->steps = grown;
    memcpy(ex->steps, fresh, (size_t)m * sizeof *fresh);
    ex->nsteps = m;
    free(fresh);
    mn__set_defs(ex);
    pc->ndefer = 0;
    if (pc->defer && !defer_clones(ex, nv0, &pc->ndefer)) return -1;
    mn_status st = mn__topo_order(ex);                 /* producers first, ctrl edges included */
    if (st == MN_ERR_NOMEM) return -1;
    if (st) return -2;                                  /* a cycle: this candidate cannot be scheduled */
    ex->recomputed_values = ndrop;
    ex->recompute_steps = m - n0;
    for (int s = 0; s < ex->nsteps; s++) if (ex->steps[s].clone) ex->recompute_flops += mn__step_flops(ex->steps[s].node);
    return ndrop;
}

/* Schedule and plan the current steps without binding an arena; its size or -1. */
static int64_t probe(mn_exec *ex)
{
    ex->probe = true;
    mn_status s = mn__schedule(ex);
    if (!s) s = mn__plan(ex);
    ex->probe = false;
    ex->recompute_probes++;
    return s ? -1 : ex->arena_bytes;
}

/* Schedule and the planner's storage lower bound only: no arena is placed. */
static int64_t estimate(mn_exec *ex)
{
    int64_t e = -1;
    ex->probe = true;
    mn_status s = mn__schedule(ex);
    if (!s) s = mn__plan_estimate(ex, &e);
    ex->probe = false;
    return s ? -1 : e;
}

static const int candidates[] = { 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128 };
enum { NCAND = (int)MN__ARRAY_LEN(candidates) };

static void human(int64_t b, char *buf, size_t n)
{
    if (b >= 1 << 20) snprintf(buf, n, "%.1f MiB", (double)b / (1 << 20));
    else snprintf(buf, n, "%.1f KiB", (double)b / 1024);
}

/* One candidate's figures: added FLOPs and the cheap arena estimate. k:
 * segments (< 0: block plan -k, 0: none); mirror: pointwise values first;
 * chain: clones read the clones of kept values (plan_ctx). */
typedef struct { int k; bool mirror, chain; double tail, flops; int64_t est, arena; bool defer; } cand;

/* Candidate (k, mirror) on the snapshot: mirror.c's rewrite, then segments.
 * Returns the values dropped (0: none), -1 out of memory, -2 no valid order. */
static int apply_cand(mn_exec *ex, plan_ctx *pc, const snapshot *sn, int k, bool mirror, double tail)
{
    restore(ex, sn);
    pc->tail = k > 1 ? tail : 0;
    int m = mirror ? mn__mirror(ex) : 0, r = 0;
    pc->nmirror = m;
    pc->nseg = 0;
    pc->ndefer = 0;
    if (m < 0) return -1;
    if (k && (r = apply(ex, pc, k)) <= 0) return r;
    ex->recomputed_values = r + m;
    ex->recompute_steps = 0;
    ex->recompute_flops = 0;
    for (int s = 0; s < ex->nsteps; s++)
        if (ex->steps[s].clone) { ex->recompute_steps++; ex->recompute_flops += mn__step_flops(ex->steps[s].node); }
    return r + m;
}

/* Tail plans: k segments whose last one is kept longer, for each k of
 * tail_k, with the mirror where it rewrites anything, else without. The
 * last segment holds a fixed grid of TAIL_SHARES shares of the saved bytes
 * between equal segments (1 / k) and the whole forward pass; the other
 * segments shrink as it grows (fewer added FLOPs the longer the tail). The
 * grid does not depend on the budget, so neither does the candidate set:
 * a larger budget never picks a plan with more added FLOPs, and the
 * smallest arena an error names is the smallest any budget reaches (a
 * bisection towards the budget broke both: found by review). 41 shares:
 * every second one is a share of the 20-share grid before (j / 21 = 2j /
 * 42), so no budget's plan or smallest arena can grow, and the shares
 * between turn a few MB freed at a plan's peak into kept steps (one share
 * step of lstm_long at 1/4 was about 13 MB of estimate; defer_clones freed
 * 4.8 MB, which the 20-share grid could not use). Adds the
 * candidates that drop anything to c[n0..) (k up to the forward steps),
 * returns their count, -1 out of memory. */
static const int tail_k[] = { 16, 32, 64 };
enum { TAIL_SHARES = 41, NTAIL = (int)MN__ARRAY_LEN(tail_k) * TAIL_SHARES };
static int tail_cands(mn_exec *ex, plan_ctx *pc, const snapshot *sn, bool chain, bool mirror, int nfwd, cand *c, int n0)
{
    int n = n0;
    for (int i = 0; i < (int)MN__ARRAY_LEN(tail_k) && tail_k[i] <= nfwd; i++) {
        int k = tail_k[i];
        for (int j = 1; j <= TAIL_SHARES; j++) {
            double f = (double)j / (TAIL_SHARES + 1);
            double share = 1.0 / k + (1.0 - 1.0 / k) * f * f;  /* denser at short tails, where budgets fall */
            int r = apply_cand(ex, pc, sn, k, mirror, share);
            if (r == -1) return -1;
            if (r <= 0) continue;                       /* nothing dropped, or no valid order */
            int64_t e = estimate(ex);
            if (e < 0) return -1;
            c[n++] = (cand){ k, mirror, chain, share, ex->recompute_flops, e, 0, true };
        }
    }
    return n - n0;
}

static int by_flops(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->flops != y->flops) return x->flops < y->flops ? -1 : 1;
    return (x->est > y->est) - (x->est < y->est);
}

/* The full arena of candidate c (planned once with defer_clones and, if
 * that held any clone back, once without; the smaller, deferred on a tie:
 * holding clones back can make a kept input live longer, as in the
 * tagger's smallest plan), or -1 out of memory. Estimates are made with it. */
static int64_t full(mn_exec *ex, plan_ctx *pc, const snapshot *sn, cand *c)
{
    if (c->arena) return c->arena;
    pc->chain = c->chain;
    pc->defer = true;
    if (apply_cand(ex, pc, sn, c->k, c->mirror, c->tail) < 0) return -1;
    int64_t deferred = probe(ex);
    c->defer = true;
    if (!pc->ndefer) return c->arena = deferred;      /* nothing held back: the same plan */
    pc->defer = false;
    if (deferred < 0 || apply_cand(ex, pc, sn, c->k, c->mirror, c->tail) < 0) return -1;
    c->arena = probe(ex);
    pc->defer = true;
    c->defer = c->arena >= 0 && deferred <= c->arena;
    if (c->defer) c->arena = deferred;
    return c->arena;
}

/* Every candidate segment count is applied and estimated (schedule and the
 * storages' lower bound, no placement); only those whose estimate fits are
 * planned in full, fewest added FLOPs first, and the first that fits wins.
 * With none, the smallest arena is found the same way: candidates by
 * estimate, until the next estimate exceeds the smallest full arena.
 * The first candidate is mirror.c's pointwise recomputation alone, the
 * others segments and block plans without and with it. `chain` is
 * plan_ctx's rule for every candidate. Fills *win and returns true when
 * one fits. */
static bool search(mn_exec *ex, plan_ctx *pc, const snapshot *sn, bool chain, int64_t budget, int64_t *smallest, cand *win, mn_status *err)
{
    enum { NALL = 1 + 2 * (NCAND + NBLOCK) };
    cand c[NALL + NTAIL];
    int nc = 0, nfwd = 0;
    for (int s = 0; s < ex->nsteps; s++) nfwd += is_fwd(&ex->steps[s]);
    bool mirror = false;
    pc->chain = chain;
    pc->defer = true;
    for (int i = 0; i < NALL; i++) {     /* mirror alone, then segment counts and block plans (k < 0), each without and with it */
        int j = (i - 1) / 2, k = i == 0 ? 0 : j < NCAND ? candidates[j] : NCAND - 1 - j;
        bool mir = i == 0 || (i - 1) % 2;
        if (k > nfwd || (mir && i && !mirror)) continue;
        int r = apply_cand(ex, pc, sn, k, mir, 0);
        if (r == -1) { *err = MN_ERR_NOMEM; return false; }
        if (i == 0) mirror = pc->nmirror > 0;
        if (r <= 0) continue;
        c[nc] = (cand){ k, mir, chain, 0, ex->recompute_flops, estimate(ex), 0, true };
        if (c[nc].est < 0) { *err = MN_ERR_NOMEM; return false; }
        nc++;
    }
    int nt = tail_cands(ex, pc, sn, chain, mirror, nfwd, c, nc);
    if (nt < 0) { *err = MN_ERR_NOMEM; return false; }
    nc += nt;
    ex->recompute_candidates += nc;
    qsort(c, (size_t)nc, sizeof *c, by_flops);
    bool best = false;
    for (int i = 0; i < nc && !best && !*err; i++) {
        if (c[i].est > budget) continue;
        int64_t a = full(ex, pc, sn, &c[i]);
        if (a < 0) *err = MN_ERR_NOMEM;
        else if (a <= budget) { best = true; *win = c[i]; }
        if (a >= 0 && a < *smallest) *smallest = a;
    }
    while (!best && !*err) {                             /* none fits: the smallest arena, for the error */
        int next = -1;
        for (int i = 0; i < nc; i++)
            if (!c[i].arena && c[i].est < *smallest && (next < 0 || c[i].est < c[next].est)) next = i;
        if (next < 0) break;
        int64_t a = full(ex, pc, sn, &c[next]);
        if (a < 0) *err = MN_ERR_NOMEM;
        else if (a < *smallest) *smallest = a;
        if (a >= 0 && a <= budget) { best = true; *win = c[next]; }   /* its estimate was above its arena */
    }
    restore(ex, sn);
    return best;
}

/* Under a budget the plain plan misses: values computed row by row are
 * split per row view (split.c), then the snapshot is the split graph; the
 * solo pins of the new nodes are free (-1). */
static mn_status split(mn_exec *ex, snapshot *sn, int *nsplit)
{
    mn_status err = mn__split_rows(ex, nsplit);
    if (err || !*nsplit) return err;
    drop_snapshot(sn);
    if (!take(ex, sn)) return MN_ERR_NOMEM;
    signed char *pin = realloc(ex->pin_solo, (size_t)ex->g->n + 1);
    if (!pin) return MN_ERR_NOMEM;
    ex->pin_solo = pin;
    return MN_OK;
}

/* Early slices: a split chain's first step, the view of its input's rows
 * (a new, unfused alias step), freed of split.c's waits, so a time step's
 * input projection runs in the level of its recurrent product, not one
 * after it. The waits are held here and put back for the older rule, whose
 * plans are tried where none of the early one fits (its smallest arenas
 * are smaller: the slices' wait keeps projections late). */
typedef struct { int out, *ctrl, nctrl; } held_wait;
typedef struct { held_wait *w; int n; bool on; } waits;

/* The waits of the new steps (nodes from n0 on) that are unfused views. */
static bool hold_waits(const mn_exec *ex, int n0, waits *ws)
{
    ws->on = true;
    ws->n = 0;
    ws->w = malloc(((size_t)ex->nsteps + 1) * sizeof *ws->w);
    if (!ws->w) return false;
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        if (st->node->id >= n0 && !st->fused && !st->clone && st->nctrl > 0 && mn__kind(&ex->vals[st->out]) == MN_VAL_ALIAS)
            ws->w[ws->n++] = (held_wait){ st->out, st->ctrl, st->nctrl };
    }
    return true;
}

/* The held waits on (the older rule) or off: from the snapshot, the steps
 * re-sorted (producers and waits first), the snapshot taken again. */
static mn_status set_waits(mn_exec *ex, snapshot *sn, waits *ws, bool on)
{
    restore(ex, sn);
    for (int i = 0; i < ws->n; i++) {
        mn_step *st = &ex->steps[ex->vals[ws->w[i].out].def];
        st->ctrl = on ? ws->w[i].ctrl : NULL;
        st->nctrl = on ? ws->w[i].nctrl : 0;
    }
    ws->on = on;
    mn_status err = mn__topo_order(ex);
    drop_snapshot(sn);
    *sn = (snapshot){ 0 };
    if (!err && !take(ex, sn)) err = MN_ERR_NOMEM;
    return err;
}

/* The held waits the steps no longer own (left off) are freed. */
static void free_waits(waits *ws)
{
    for (int i = 0; !ws->on && i < ws->n; i++) free(ws->w[i].ctrl);
    free(ws->w);
}

mn_status mn__pass_recompute(mn_exec *ex)
{
    int64_t budget = ex->opts.memory_budget;
    mn__stat(ex, "recompute.budget_bytes", (double)budget);
    if (budget <= 0) return MN_OK;                      /* unlimited: the pass changes nothing */
    snapshot sn = { 0 };
    plan_ctx pc = { 0 };
    mn_status err = MN_OK;
    int nsplit = 0;
    cand win = { 0 };
    bool found = false;
    waits ws = { 0 };
    int64_t smallest = INT64_MAX;
    if (!take(ex, &sn)) err = MN_ERR_NOMEM;
    if (!err) {
        smallest = probe(ex);
        if (smallest < 0) err = MN_ERR_NOMEM;
    }
    if (!err && smallest > budget) {
        int n0 = ex->g->n;
        if (!(ex->pin_solo = malloc((size_t)n0 + 1))) err = MN_ERR_NOMEM;
        for (int i = 0; !err && i < n0; i++) ex->pin_solo[i] = -1;
        for (int s = 0; !err && s < ex->nsteps; s++) ex->pin_solo[ex->steps[s].node->id] = ex->steps[s].solo;
        restore(ex, &sn);
        if (!err) err = split(ex, &sn, &nsplit);
        for (int i = n0; !err && i < ex->g->n; i++) ex->pin_solo[i] = -1;
        size_t more = 0;                                /* room for mirror.c's clones */
        for (int s = 0; s < ex->nsteps; s++) more += (size_t)ex->steps[s].nin * MN_MIRROR_CHAIN;
        size_t nv = (size_t)ex->nvals + more + 1, ns = (size_t)ex->nsteps + more + 1;
        pc = (plan_ctx){ .seg = malloc(ns * sizeof(int)), .vseg = malloc(nv * sizeof(int)), .bread = malloc(nv), .cross = malloc(nv),
                         .drop = malloc(nv), .need = malloc(ns), .clone_of = malloc(nv * sizeof(int)), .vview = malloc(nv * sizeof(int)) };
        if (!pc.seg || !pc.vseg || !pc.bread || !pc.cross || !pc.drop || !pc.need || !pc.clone_of || !pc.vview) err = err ? err : MN_ERR_NOMEM;
        /* clones reading kept values where they are (fewer levels: a segment's
         * recurrent products wait for no recomputed cell) first; where no such
         * plan fits, clones reading the clones of kept values too, whose
         * arenas can be smaller at the very smallest budgets */
        if (!err && nsplit && !hold_waits(ex, n0, &ws)) err = MN_ERR_NOMEM;
        if (!err && ws.n) err = set_waits(ex, &sn, &ws, false);
        if (!err && ws.n) found = search(ex, &pc, &sn, false, budget, &smallest, &win, &err);
        if (!err && !found && ws.n) err = set_waits(ex, &sn, &ws, true);
        if (!err && !found) found = search(ex, &pc, &sn, false, budget, &smallest, &win, &err);
        if (!err && !found) found = search(ex, &pc, &sn, true, budget, &smallest, &win, &err);
        pc.chain = win.chain;
        pc.defer = win.defer;
        if (!err && found && apply_cand(ex, &pc, &sn, win.k, win.mirror, win.tail) < 0) err = MN_ERR_NOMEM;
    } else if (!err) restore(ex, &sn);
    if (!err && smallest > budget && !found) {
        char b[32], sm[32];
        human(budget, b, sizeof b);
        human(smallest, sm, sizeof sm);
        err = mn__graph_fail(ex->g, MN_ERR_INVALID, "compile: no plan fits the memory budget of %lld bytes (%s): the smallest arena "
                             "recomputation reaches is %lld bytes (%s); give a budget of at least that", (long long)budget, b,
                             (long long)smallest, sm);
    } else if (err == MN_ERR_NOMEM) err = mn__graph_fail(ex->g, err, "recompute: out of memory");
    free(ex->level_start); free(ex->level_split); free(ex->stores);   /* the real schedule and plan follow */
    ex->level_start = NULL; ex->level_split = NULL; ex->stores = NULL;
    drop_snapshot(&sn);
    free_waits(&ws);
    free(pc.seg); free(pc.vseg); free(pc.bread); free(pc.cross); free(pc.drop); free(pc.need); free(pc.clone_of); free(pc.vview);
    mn__stat(ex, "recompute.split_values", nsplit);
    mn__stat(ex, "recompute.segments", found ? pc.nseg : 0);
    mn__stat(ex, "recompute.block_plan", found && win.k < 0 ? -win.k : 0);
    mn__stat(ex, "recompute.tail_share", found ? pc.tail : 0);
    mn__stat(ex, "recompute.mirrored_values", found ? pc.nmirror : 0);
    mn__stat(ex, "recompute.chained_clones", found && win.chain);
    mn__stat(ex, "recompute.deferred_clones", found ? pc.ndefer : 0);
    mn__stat(ex, "recompute.early_slices", found && ws.n && !ws.on);
    mn__stat(ex, "recompute.values", ex->recomputed_values);
    mn__stat(ex, "recompute.steps", ex->recompute_steps);
    mn__stat(ex, "recompute.added_flops", ex->recompute_flops);
    mn__stat(ex, "recompute.candidates", ex->recompute_candidates);
    mn__stat(ex, "recompute.full_plans", ex->recompute_probes);
    return err;
}
