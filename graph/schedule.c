/* graph/schedule.c: the parallel schedule. Each step gets a level, one more
 * than the deepest step it reads from (as soon as possible, so gradient
 * contributions are summed and large values freed early). Steps of one
 * level never depend on each other: the executor may run them at the same
 * time, and a barrier separates levels. Steps whose cost estimate is large
 * are marked big: they run alone with every thread. */
#include "exec.h"
#include "../ops/gemm.h"
#include <stdlib.h>
#include <string.h>

/* Above this many FLOPs (or output bytes) a step uses all threads itself. */
#define BIG_FLOPS (1 << 20)
#define BIG_BYTES (1 << 20)
/* Forking a team and joining it costs a few microseconds on an idle
 * machine (and a timeslice when another process holds a core), about the
 * time of this many FLOPs: a level whose shared (one-thread) steps add up
 * to less runs them one after another on the calling thread; a
 * forward-only executable whose steps add up to less than TINY_FLOPS runs
 * on the calling thread alone (the batch-1 LSTM step: 0.7 MFLOP over 9
 * levels took 0.12 ms on 2 threads against 0.105 ms on 1). Both rules read
 * the cost estimates only, so a plan is the same on every compile. */
#define CALLER_LEVEL_FLOPS (1 << 15)
#define TINY_FLOPS (1 << 23)

static int by_level(const void *a, const void *b)
{
    const mn_step *x = a, *y = b;
    if (x->level != y->level) return x->level < y->level ? -1 : 1;
    if (x->node->id != y->node->id) return x->node->id < y->node->id ? -1 : 1;
    return (int)x->clone - (int)y->clone;
}

static int by_sink_level(const void *a, const void *b)
{
    const mn_sink *x = a, *y = b;
    if (x->level != y->level) return x->level < y->level ? -1 : 1;
    return (x->param > y->param) - (x->param < y->param);
}

/* The op's cost estimate (default: one FLOP per output element). */
double mn__step_flops(const mn_node *n)
{
    double f = (double)mn_shape_numel(n->desc.shape), b = 0;
    if (n->op->cost) n->op->cost(n->in_desc, n->nin, &n->desc, n->attrs, &f, &b);
    return f;
}

static bool is_big(const mn_step *st)
{
    return st->flops >= BIG_FLOPS || (double)mn_shape_numel(st->node->desc.shape) * 4.0 >= BIG_BYTES;
}

/* A forward-only executable too small to share: one thread, no OpenMP
 * team, OpenBLAS single-threaded (results as on 1 thread). Clones of
 * recomputed steps do not count, so the decision does not depend on the
 * recompute pass. */
static void tiny_executable(mn_exec *ex)
{
    double total = 0;
    for (int s = 0; s < ex->nsteps; s++)
        if (!ex->steps[s].clone) total += mn__step_flops(ex->steps[s].node);
    ex->tiny = ex->nsinks == 0 && total < TINY_FLOPS;
    if (!ex->tiny) return;
    ex->nthreads = 1;
    ex->blas_threads = 1;
}

/* Marks the one-thread steps of level l `caller` when together they are
 * too small to fork for (run.c runs them in order, no team). */
static void caller_level(mn_exec *ex, int l)
{
    double shared = 0;
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++)
        if (!ex->steps[s].solo) shared += ex->steps[s].flops;
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++)
        ex->steps[s].caller = !ex->steps[s].solo && shared < CALLER_LEVEL_FLOPS;
}

/* Does step st run on one thread whatever the level gives it (an op with no
 * parts: not a fused group, not a part kernel) and leave the team's other
 * threads idle when it is its level's only work? A small step that is not
 * a view (views cost nothing) and costs at least CALLER_LEVEL_FLOPS (so
 * that the level still forks with a second step beside it). */
static bool lone_work(const mn_exec *ex, const mn_step *st)
{
    return !st->big && !st->fused && !mn__part_forward(st->node->op) && st->flops >= CALLER_LEVEL_FLOPS &&
           mn__kind(&ex->vals[st->out]) != MN_VAL_ALIAS;
}

/* Idle threads filled (several threads only). A big step that reads no
 * other step's output (a weight pack) gets level 0, but when its first
 * reader comes much later (the packed copies the backward pass's products
 * read) it only adds to level 0's time there. Such a step moves to a later
 * level, before its first reader, whose only work is one small one-thread
 * step (the cross-entropy stats, the head's bias add or sum): the two run
 * side by side, one thread each, where one thread idled. Largest outputs
 * first, the longest lone step first, one mover per level, and only
 * beside a lone step of at least one FLOP per float the mover reads and
 * writes (the lstm's 1 MiB W_hh pack, 0.2 ms on one thread, beside the
 * cross-entropy stats of 0.79 MFLOP, 0.1 ms; not beside a bias add of
 * 12 us, where it would add most of its time: measured, "### graph24"
 * in docs/performance.md). Small steps
 * stay (level 0 runs them side by side, beside the big ones). A step moves
 * within its dependencies and its kernel does not depend on the threads
 * (a copy), so results keep their bits. Stat schedule.moved_to_idle. */
static int fill_idle(mn_exec *ex, int nlevels)
{
    int n = ex->nsteps, moved = 0;
    int *first = malloc((size_t)(n ? n : 1) * sizeof *first), *lone = malloc((size_t)(nlevels + 1) * sizeof *lone);
    int *cand = malloc((size_t)(n ? n : 1) * sizeof *cand), nc = 0;
    if (!first || !lone || !cand) { free(first); free(lone); free(cand); return 0; }
    for (int s = 0; s < n; s++) first[s] = nlevels;
    for (int l = 0; l <= nlevels; l++) lone[l] = -1;
    for (int s = 0; s < n; s++) {                       /* each step's first reader's level */
        const mn_step *st = &ex->steps[s];
        for (int k = 0; k < st->nin + st->nctrl; k++) {
            int d = ex->vals[k < st->nin ? st->in[k] : st->ctrl[k - st->nin]].def;
            if (d >= 0 && st->level < first[d]) first[d] = st->level;
        }
    }
    for (int i = 0; i < ex->nsinks; i++) {              /* a gradient sink reads its value at its producer's level */
        int d = ex->vals[ex->sinks[i].value].def;
        if (d >= 0) first[d] = ex->steps[d].level;
    }
    for (int s = 0; s < n; s++) {                       /* levels whose only work is one lone step: lone[l] = that step */
        const mn_step *st = &ex->steps[s];
        int l = st->level;
        if (mn__kind(&ex->vals[st->out]) == MN_VAL_ALIAS && !st->fused) continue;
        if (lone[l] == -1 && lone_work(ex, st)) lone[l] = s;
        else lone[l] = -2;
    }
    for (int s = 0; s < n; s++) {                       /* movers: no step inputs, read two levels later or more */
        const mn_step *st = &ex->steps[s];
        bool free_in = st->nctrl == 0 && st->nxout == 0 && !st->fused && !st->clone && first[s] < nlevels && first[s] >= 2;
        for (int k = 0; k < st->nin && free_in; k++) free_in = ex->vals[st->in[k]].def < 0;
        if (free_in && st->big && st->level == 0 && mn__kind(&ex->vals[st->out]) == MN_VAL_ARENA) cand[nc++] = s;
    }
    for (int i = 1; i < nc; i++)                        /* largest output first (insertion sort: few movers) */
        for (int j = i; j > 0 && ex->vals[ex->steps[cand[j]].out].bytes > ex->vals[ex->steps[cand[j - 1]].out].bytes; j--) {
            int t = cand[j]; cand[j] = cand[j - 1]; cand[j - 1] = t;
        }
    for (int i = 0; i < nc; i++) {
        mn_step *st = &ex->steps[cand[i]];
        int best = -1;
        double need = 2.0 * (double)mn_shape_numel(st->node->desc.shape);     /* floats it reads and writes */
        for (int l = 1; l < first[cand[i]]; l++)
            if (lone[l] >= 0 && ex->steps[lone[l]].flops >= need && (best < 0 || ex->steps[lone[l]].flops > ex->steps[lone[best]].flops))
                best = l;
        if (best < 0) continue;
        st->level = best;
        st->big = false;                                /* one thread, beside the lone step */
        lone[best] = -2;
        moved++;
    }
    free(first); free(lone); free(cand);
    return moved;
}

mn_status mn__schedule(mn_exec *ex)
{
    int maxl = -1;
    tiny_executable(ex);
    for (int s = 0; s < ex->nsteps; s++) {      /* steps are in id (topological) order */
        mn_step *st = &ex->steps[s];
        int l = 0;
        for (int k = 0; k < st->nin; k++) {
            int d = ex->vals[st->in[k]].def;
            if (d >= 0 && ex->steps[d].level + 1 > l) l = ex->steps[d].level + 1;
        }
        for (int k = 0; k < st->nctrl; k++) {        /* recompute.c: run after these */
            int d = ex->vals[st->ctrl[k]].def;
            if (d >= 0 && ex->steps[d].level + 1 > l) l = ex->steps[d].level + 1;
        }
        st->level = ex->serial ? s : l;
        st->flops = mn__step_flops(st->node);
        st->big = ex->serial || is_big(st);
        if (st->level > maxl) maxl = st->level;
    }
    ex->moved_to_idle = ex->nthreads > 1 && !ex->serial ? fill_idle(ex, maxl + 1) : 0;
    qsort(ex->steps, (size_t)ex->nsteps, sizeof *ex->steps, by_level);
    mn__set_defs(ex);
    ex->nlevels = maxl + 1;
    ex->level_start = calloc((size_t)ex->nlevels + 1, sizeof *ex->level_start);
    if (!ex->level_start) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "schedule: out of memory");
    for (int s = 0, l = 0; l <= ex->nlevels; l++) {
        while (s < ex->nsteps && ex->steps[s].level < l) s++;
        ex->level_start[l] = s;
    }
    ex->level_start[ex->nlevels] = ex->nsteps;
    /* Big steps of one level (e.g. a layer's weight and input gradients)
     * run side by side, one thread each, when no one of
     * them dominates: GEMMs scale better across independent calls than
     * inside one call of this size (two equal GEMMs: 1.0 vs ~1.5 speed-up). */
    ex->level_split = calloc((size_t)ex->nlevels + 1, sizeof *ex->level_split);
    if (!ex->level_split) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "schedule: out of memory");
    for (int l = 0; l < ex->nlevels && ex->nthreads > 1 && !ex->serial; l++) {
        double total = 0, top = 0;
        int nbig = 0;
        for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++)
            if (ex->steps[s].big) { nbig++; total += ex->steps[s].flops; if (ex->steps[s].flops > top) top = ex->steps[s].flops; }
        ex->level_split[l] = nbig >= 2 && top * 1.5 <= total;
    }
    /* Who runs alone with every thread: a big step of a level that does not
     * split, or every step of a level with at most one small step and no split. */
    for (int l = 0; l < ex->nlevels; l++) {
        int a = ex->level_start[l], b = ex->level_start[l + 1], nsmall = 0;
        for (int s = a; s < b; s++) nsmall += !ex->steps[s].big;
        bool together = ex->nthreads > 1 && (ex->level_split[l] || nsmall > 1);
        for (int s = a; s < b; s++) {
            mn_step *st = &ex->steps[s];
            st->solo = !together || (st->big && !ex->level_split[l]);
            if (ex->pin_solo && ex->pin_solo[st->node->id] >= 0) st->solo = ex->pin_solo[st->node->id];
        }
        caller_level(ex, l);
    }
    for (int i = 0; i < ex->nsinks; i++) {
        int d = ex->vals[ex->sinks[i].value].def;
        ex->sinks[i].level = d >= 0 ? ex->steps[d].level : 0;
    }
    qsort(ex->sinks, (size_t)ex->nsinks, sizeof *ex->sinks, by_sink_level);
    return MN_OK;
}
