/* graph/run.c: running an executable. Inputs are fed into exec-owned
 * buffers; a run walks the levels of the schedule (steps of one level side
 * by side), adds each parameter gradient into the store at the end of the
 * level that completes it, and never allocates. A run is a transaction for
 * the store: each gradient is copied aside when the run first touches it,
 * and a run that fails puts every touched gradient back. On several
 * threads a chain of levels whose steps can all run in a team (an RNN's
 * per-step products and cells, a recomputed segment's products beside
 * them) runs in one OpenMP region instead of a region per step, with a
 * barrier between levels wherever the compile could not prove that no
 * thread reads or overwrites another's bytes. */
#include "exec.h"
#include "../ops/gemm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <math.h>

static mn_value *find_input(mn_exec *ex, const char *name)
{
    for (int v = 0; v < ex->nvals; v++)
        if (ex->vals[v].base == MN_VAL_INPUT && strcmp(ex->vals[v].node->name, name) == 0) return &ex->vals[v];
    return NULL;
}

static bool graph_has_input(mn_graph *g, const char *name, int upto)
{
    for (int i = 0; i < upto; i++)
        if (g->nodes[i]->kind == MN_NODE_INPUT && strcmp(g->nodes[i]->name, name) == 0) return true;
    return false;
}

mn_status mn_exec_feed_data(mn_exec *ex, const char *name, const void *data, size_t bytes)
{
    if (!ex || !name || !data) return mn__error(MN_ERR_MISUSE, "feed: NULL argument");
    mn_value *v = find_input(ex, name);
    if (!v) {
        if (graph_has_input(ex->g, name, ex->nnodes)) return MN_OK;   /* unused by this executable */
        return mn__error(MN_ERR_NOTFOUND, "feed: the graph has no input \"%s\"", name);
    }
    if (bytes != v->bytes) return mn__error(MN_ERR_SHAPE, "feed \"%s\": %zu bytes given, the input takes %zu", name, bytes, v->bytes);
    memcpy(v->t.data, data, bytes);
    return MN_OK;
}

mn_status mn_exec_feed(mn_exec *ex, const char *name, const mn_tensor *t)
{
    if (!ex || !name || !t) return mn__error(MN_ERR_MISUSE, "feed: NULL argument");
    mn_value *v = find_input(ex, name);
    if (v) {
        char a[96], b[96];
        if (t->dtype != v->t.dtype) return mn__error(MN_ERR_DTYPE, "feed \"%s\": got %s, the input is %s", name, mn_dtype_name(t->dtype), mn_dtype_name(v->t.dtype));
        if (!mn_shape_eq(t->shape, v->t.shape))
            return mn__error(MN_ERR_SHAPE, "feed \"%s\": got shape %s, the input is %s", name,
                             mn_shape_str(t->shape, a, sizeof a), mn_shape_str(v->t.shape, b, sizeof b));
    }
    return mn_exec_feed_data(ex, name, t->data, mn_tensor_bytes(t));
}

/* A kernel's context for step st on `threads` threads (detail: its message buffer). */
static mn_kernel_ctx step_ctx(mn_exec *ex, const mn_step *st, int threads, char *detail, size_t dlen)
{
    return (mn_kernel_ctx){ .nin = st->nin, .in = st->tin, .out = &ex->vals[st->out].t, .attrs = st->node->attrs,
                            .accumulate = st->accumulate, .nthreads = threads, .seed = mn__run_seed(ex->user->seed, ex->step),
                            .node_id = st->node->id,
                            .work = st->work >= 0 ? ex->arena + ex->stores[st->work].offset : NULL,
                            .work_bytes = st->work_bytes, .msg = detail, .msglen = dlen };
}

/* A fused step's extra outputs' data and every output's scatter strides. */
static void fused_outs(const mn_exec *ex, const mn_step *st, float **xout, const int64_t **scat)
{
    scat[0] = ex->vals[st->out].scatter ? ex->vals[st->out].scatter_st : NULL;
    for (int k = 0; k < st->nxout; k++) {
        const mn_value *x = &ex->vals[st->xout[k]];
        xout[k] = mn_f32(&x->t);
        scat[1 + k] = x->scatter ? x->scatter_st : NULL;
    }
}

/* Fused step st, part `part` of `nparts` (nparts 0: whole, c->nthreads threads). */
static mn_status run_fused(mn_exec *ex, const mn_step *st, const mn_kernel_ctx *c, int part, int nparts)
{
    float *xout[MN_FUSE_MAX_MEMBERS];
    const int64_t *scat[MN_FUSE_MAX_MEMBERS + 1];
    fused_outs(ex, st, xout, scat);
    return mn__fused_forward_part(st->fused, c, xout, scat, st->nxout, part, nparts);
}

static void step_msg(const mn_step *st, mn_status s, const char *detail, char *msg, size_t mlen)
{
    snprintf(msg, mlen, "%s%s \"%s\": %s", st->fused ? "fused group ending in " : "", st->node->op->name, st->node->name,
             detail[0] ? detail : mn_status_message(s));
}

/* Runs one kernel with `threads` threads; on failure writes the message to msg. */
static mn_status run_step(mn_exec *ex, const mn_step *st, int threads, char *msg, size_t mlen)
{
    const mn_op_def *op = st->node->op;
    if (mn__kind(&ex->vals[st->out]) == MN_VAL_ALIAS) return MN_OK;      /* a view: nothing to compute */
    char detail[512] = "";
    mn_kernel_ctx c = step_ctx(ex, st, threads, detail, sizeof detail);
    double t0 = ex->prof_step ? omp_get_wtime() : 0;
    mn_status s;
    int w0 = ex->win_at[st - ex->steps], nw = ex->win_parts == 1 ? ex->win_at[st - ex->steps + 1] - w0 : 0;
    if (st->fused) s = run_fused(ex, st, &c, 0, 0);
    else if (nw) s = mn__window_forward(op)(&c, 0, 0, ex->win + w0, nw);     /* prefetches the next level's bytes */
    else s = st->state ? mn__op_state_forward(st->state, op, &c) : op->forward(&c);
    if (ex->prof_step) ex->prof_step[st - ex->steps] += omp_get_wtime() - t0;
    if (s) step_msg(st, s, detail, msg, mlen);
    return s;
}

/* A small copy (concat and other ops whose inputs appear unchanged in the
 * output): its bits do not depend on the threads, so in a chain thread 0
 * computes it alone (an RNN step's gate gradients, written in place by
 * their cell: nothing to copy). */
static bool single_step(const mn_step *st)
{
    return !st->fused && st->node->op->traits.input_view && !st->big && !st->state;
}

/* An unfused elementwise step (a pointwise op whose every input has the
 * output's elements: no broadcast), e.g. the recompute pass's mirrored
 * tanh of a cell state: each element is the op's pointwise function of
 * the same elements, so any cut of the elements gives the bits of its
 * forward. */
#define MN_CHAIN_ARITY 8
static bool pointwise_step(const mn_exec *ex, const mn_step *st)
{
    const mn_node *n = st->node;
    const mn_value *out = &ex->vals[st->out];
    if (st->fused || st->state || !n->op->traits.pointwise || (n->op->flags & MN_OPF_RANDOM)) return false;
    if (n->desc.dtype != MN_F32 || mn__kind(out) != MN_VAL_ARENA || out->scatter || n->nin < 1 || n->nin > MN_CHAIN_ARITY) return false;
    for (int k = 0; k < n->nin; k++)
        if (n->in_desc[k].dtype != MN_F32 || mn_shape_numel(n->in_desc[k].shape) != mn_shape_numel(n->desc.shape)) return false;
    return true;
}

/* How a step runs in a chain (run_chain): nothing (a view); in parts, one
 * per thread (a fused group or an op with a part kernel: solo steps that
 * run level by level with every thread, and one-thread steps whose parts
 * give the whole's bytes whatever the cut: index_select's copy of an RNN
 * step's gathered rows, ops/gemm.h's mn__part_exact); in parts of its elements (a solo
 * pointwise step); on thread 0 alone (a solo small copy); on one thread
 * of the team, shared out (a step that runs level by level on one thread,
 * beside others or on the caller); or not at all (the level breaks chains:
 * a solo step that shares its work only among threads of its own, as an
 * OpenBLAS or oneDNN GEMM, a big copy or a scatter-add; an op state). */
typedef enum { MN_CHAIN_NONE, MN_CHAIN_PARTS, MN_CHAIN_POINTWISE, MN_CHAIN_COPY, MN_CHAIN_ONE, MN_CHAIN_NO } chain_way;

static chain_way chain_way_of(const mn_exec *ex, const mn_step *st)
{
    if (mn__kind(&ex->vals[st->out]) == MN_VAL_ALIAS) return MN_CHAIN_NONE;
    if (!st->solo) return mn__part_exact(st->node->op) && !st->state && st->work < 0 ? MN_CHAIN_PARTS : MN_CHAIN_ONE;
    if (st->state) return MN_CHAIN_NO;
    if (st->fused || mn__part_forward(st->node->op)) return MN_CHAIN_PARTS;
    if (single_step(st)) return MN_CHAIN_COPY;
    return pointwise_step(ex, st) ? MN_CHAIN_POINTWISE : MN_CHAIN_NO;
}

/* Whether level l can join a chain (every step runs in one of the ways
 * above); *regions += the OpenMP regions run_level would open for it: one
 * per big solo step (a small one runs on one thread: no region to save),
 * one for its shared one-thread steps. */
static bool chain_level(const mn_exec *ex, int l, int *regions)
{
    bool shared = false;
    int big = 0;
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
        const mn_step *st = &ex->steps[s];
        chain_way w = chain_way_of(ex, st);
        if (w == MN_CHAIN_NO) return false;
        if (w == MN_CHAIN_ONE) shared |= !st->caller;
        else big += w != MN_CHAIN_NONE && st->big;
    }
    *regions += big + shared;
    return true;
}

/* Elements [*e0, *e1) of part t of n of a pointwise step of `numel`
 * elements: whole tiles of MN_CHAIN_TILE floats, evenly, as a fused
 * step's parts cut its tiles (so a cell reads the rows its thread wrote). */
#define MN_CHAIN_TILE 512
static void pointwise_part(int64_t numel, int t, int n, int64_t *e0, int64_t *e1)
{
    int64_t tiles = (numel + MN_CHAIN_TILE - 1) / MN_CHAIN_TILE;
    *e0 = tiles * t / n * MN_CHAIN_TILE;
    *e1 = tiles * (t + 1) / n * MN_CHAIN_TILE;
    if (*e0 > numel) *e0 = numel;
    if (*e1 > numel) *e1 = numel;
}

/* Part t of n of a pointwise step (pointwise_step). */
static void run_pointwise(mn_exec *ex, const mn_step *st, int t, int n)
{
    const mn_tensor *out = &ex->vals[st->out].t;
    int64_t e0, e1;
    pointwise_part(mn_tensor_numel(out), t, n, &e0, &e1);
    if (e0 >= e1) return;
    const float *in[MN_CHAIN_ARITY];
    for (int k = 0; k < st->nin; k++) in[k] = mn_f32(&st->tin[k]) + e0;
    st->node->op->traits.pointwise(mn_f32(out) + e0, in, e1 - e0, st->node->attrs);
}

/* Spans the parts of one level may touch, and spans a thread may have
 * touched since the last barrier of a chain (more: a barrier). */
#define MN_SPANS_LEVEL 128
#define MN_SPANS_OPEN 1024

/* The bytes part t of n of step st (run in a chain as w says) reads and
 * writes, at most max spans (the part kernel's or the fused program's own
 * account; a copy by thread 0: the op's account of its whole forward as
 * part 0), or -1 when not known: a one-thread step (shared out
 * dynamically), a step with a workspace, an op without an account. */
static int step_spans(mn_exec *ex, const mn_step *st, chain_way w, int t, int n, mn__span *sp, int max)
{
    if (w == MN_CHAIN_NONE) return 0;
    if (w == MN_CHAIN_ONE || st->work >= 0) return -1;
    if (w == MN_CHAIN_POINTWISE) {
        int64_t e0, e1;
        const mn_tensor *out = &ex->vals[st->out].t;
        pointwise_part(mn_tensor_numel(out), t, n, &e0, &e1);
        if (e0 >= e1) return 0;
        if (st->nin + 1 > max) return -1;
        for (int k = 0; k < st->nin; k++)
            sp[k] = (mn__span){ (uintptr_t)(mn_f32(&st->tin[k]) + e0), (uintptr_t)(mn_f32(&st->tin[k]) + e1), false };
        sp[st->nin] = (mn__span){ (uintptr_t)(mn_f32(out) + e0), (uintptr_t)(mn_f32(out) + e1), true };
        return st->nin + 1;
    }
    char detail[8];
    mn_kernel_ctx c = step_ctx(ex, st, ex->nthreads, detail, sizeof detail);
    if (st->fused) {
        float *xout[MN_FUSE_MAX_MEMBERS];
        const int64_t *scat[MN_FUSE_MAX_MEMBERS + 1];
        fused_outs(ex, st, xout, scat);
        return mn__fused_part_spans(st->fused, &c, xout, scat, st->nxout, t, n, sp, max);
    }
    mn__spans_fn fn = mn__part_spans(st->node->op);
    return fn ? fn(&c, t, n, sp, max) : -1;
}

/* Step st's part t of n in a chain, as run_chain runs it: its spans (step_spans), or -1. */
int mn__chain_part_spans(mn_exec *ex, const mn_step *st, int t, int n, mn__span *sp, int max)
{
    return step_spans(ex, st, chain_way_of(ex, st), t, n, sp, max);
}

/* The bytes part t of n of level l reads and writes (its steps' spans one
 * after another), or -1 when some step's are not known. */
static int level_spans(mn_exec *ex, int l, int t, int n, mn__span *sp)
{
    int k = 0;
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
        const mn_step *st = &ex->steps[s];
        int m = step_spans(ex, st, chain_way_of(ex, st), t, n, sp + k, MN_SPANS_LEVEL - k);
        if (m < 0) return -1;
        k += m;
    }
    return k;
}

/* Whether a span of a overlaps one of b, one of the two a write. */
static bool clash(const mn__span *a, int na, const mn__span *b, int nb)
{
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (a[i].lo < b[j].hi && b[j].lo < a[i].hi && (a[i].write || b[j].write)) return true;
    return false;
}

/* Barriers of chain [l0, l1) dropped where provably safe: after level l
 * when every thread's part of level l + 1 touches no byte that another
 * thread wrote since the last barrier, and writes no byte another thread
 * read since then (the arena reuses bytes across levels; the spans are
 * addresses, so a reuse shows as an overlap). An RNN's time steps, the
 * product and the cell cut at the same rows, are each thread's half of the
 * batch. Both levels' steps must say what each part touches (a level of
 * views only touches nothing). Returns the barriers dropped, -1 out of memory. */
static int free_levels(mn_exec *ex, int l0, int l1)
{
    int T = ex->nthreads, dropped = 0, *nopen = calloc((size_t)T, sizeof *nopen), *ncur = calloc((size_t)T, sizeof *ncur);
    mn__span *open = malloc((size_t)T * MN_SPANS_OPEN * sizeof *open), *cur = malloc((size_t)T * MN_SPANS_LEVEL * sizeof *cur);
    if (!nopen || !ncur || !open || !cur) dropped = -1;
    bool prev = false;
    for (int l = l0; l < l1 && dropped >= 0; l++) {
        bool known = true, fits = true, safe = true;
        for (int t = 0; t < T; t++) {
            ncur[t] = level_spans(ex, l, t, T, cur + (size_t)t * MN_SPANS_LEVEL);
            known &= ncur[t] >= 0;
            fits &= ncur[t] >= 0 && nopen[t] + ncur[t] <= MN_SPANS_OPEN;
        }
        for (int t = 0; prev && known && fits && safe && t < T; t++)
            for (int u = 0; u < T && safe; u++)
                safe = u == t || !clash(cur + (size_t)t * MN_SPANS_LEVEL, ncur[t], open + (size_t)u * MN_SPANS_OPEN, nopen[u]);
        bool drop = prev && known && fits && safe;
        if (l > l0) ex->team_free[l - 1] = drop;
        dropped += drop;
        for (int t = 0; t < T; t++) {
            if (!drop) nopen[t] = 0;
            if (!known) continue;
            memcpy(open + (size_t)t * MN_SPANS_OPEN + nopen[t], cur + (size_t)t * MN_SPANS_LEVEL, (size_t)ncur[t] * sizeof *cur);
            nopen[t] += ncur[t];
        }
        prev = known;
    }
    free(nopen); free(ncur); free(open); free(cur);
    return dropped;
}

/* Chains: runs of levels without a gradient sink (sinks are added between
 * levels, on the calling thread) whose every step can run in a team
 * (chain_level), where run_level would open two regions or more, and the
 * barriers inside them that can go (free_levels). Decided once per
 * compile, from the schedule and the plan; stats run.chains,
 * run.chained_levels (of schedule.levels) and run.barriers_dropped. */
static mn_status find_chains(mn_exec *ex)
{
    ex->team_end = calloc((size_t)ex->nlevels + 1, sizeof *ex->team_end);
    ex->team_free = calloc((size_t)ex->nlevels + 1, sizeof *ex->team_free);
    if (!ex->team_end || !ex->team_free) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "compile: out of memory");
    if (ex->nthreads <= 1 || ex->serial) return MN_OK;
    bool *sink = calloc((size_t)ex->nlevels + 1, sizeof *sink);
    if (!sink) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "compile: out of memory");
    for (int k = 0; k < ex->nsinks; k++)
        if (ex->sinks[k].level < ex->nlevels) sink[ex->sinks[k].level] = true;
    int dropped = 0, chains = 0, chained = 0;
    for (int l = 0; l < ex->nlevels && dropped >= 0;) {
        int e = l, regions = 0, d = 0;
        while (e < ex->nlevels && !sink[e] && chain_level(ex, e, &regions)) e++;
        if (regions >= 2) {
            ex->team_end[l] = e;
            chains++;
            chained += e - l;
            d = free_levels(ex, l, e);
        }
        dropped = d < 0 ? -1 : dropped + d;
        l = e > l ? e : l + 1;
    }
    free(sink);
    if (dropped < 0) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "compile: out of memory");
    mn__stat(ex, "run.chains", chains);
    mn__stat(ex, "run.chained_levels", chained);
    mn__stat(ex, "run.barriers_dropped", dropped);
    return MN_OK;
}

/* Chain step st as part t of n, run as w says (a small copy: thread 0
 * alone); as run_step. */
static mn_status run_part(mn_exec *ex, const mn_step *st, chain_way w, int t, int n, char *msg, size_t mlen)
{
    char detail[512] = "";
    mn_kernel_ctx c = step_ctx(ex, st, ex->nthreads, detail, sizeof detail);
    mn_status s = MN_OK;
    if (w == MN_CHAIN_POINTWISE) run_pointwise(ex, st, t, n);
    else if (st->fused) s = run_fused(ex, st, &c, t, n);
    else if (w == MN_CHAIN_COPY) {
        c.nthreads = 1;
        s = t == 0 ? st->node->op->forward(&c) : MN_OK;
    } else {
        int at = (int)(st - ex->steps) * ex->win_parts + (t < ex->win_parts ? t : 0), w0 = ex->win_at[at], nw = ex->win_at[at + 1] - w0;
        s = nw ? mn__window_forward(st->node->op)(&c, t, n, ex->win + w0, nw) : mn__part_forward(st->node->op)(&c, t, n);
    }
    if (s) step_msg(st, s, detail, msg, mlen);
    return s;
}

/* Keeps step s's failure if it is the first (in schedule order) so far. */
static void keep_error(mn_exec *ex, int s, mn_status st, const char *msg, int *first, mn_status *err)
{
    #pragma omp critical(mn_exec_error)
    if (s < *first) { *first = s; *err = st; snprintf(ex->msg, sizeof ex->msg, "%s", msg); }
}

/* Level l's one-thread steps, shared out over the team (as run_level runs
 * them side by side, or on the caller, one thread each). */
static void run_shared(mn_exec *ex, int l, int *first, mn_status *err)
{
    #pragma omp for schedule(dynamic, 1) nowait
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
        if (chain_way_of(ex, &ex->steps[s]) != MN_CHAIN_ONE) continue;
        char msg[1024];
        mn_status st = run_step(ex, &ex->steps[s], 1, msg, sizeof msg);
        if (st) keep_error(ex, s, st, msg, first, err);
    }
}

/* Level l in a chain, as thread t of n: its part of each solo step in
 * order (steps of a level are independent: no barrier between them), then
 * its share of the one-thread steps. Profiling charges thread 0's time to
 * the solo steps (*last: the last one run, which the barrier's wait joins
 * when the level has no one-thread steps; *stamp: thread 0's clock). */
static void chain_level_run(mn_exec *ex, int l, int t, int n, int *first, mn_status *err, int *last, double *stamp)
{
    bool shared = false;
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
        const mn_step *st = &ex->steps[s];
        chain_way w = chain_way_of(ex, st);
        shared |= w == MN_CHAIN_ONE;
        if (w == MN_CHAIN_NONE || w == MN_CHAIN_ONE) continue;
        char msg[1024];
        mn_status e = run_part(ex, st, w, t, n, msg, sizeof msg);
        if (e) keep_error(ex, s, e, msg, first, err);
        if (ex->prof_step && t == 0) {
            double t1 = omp_get_wtime();
            ex->prof_step[s] += t1 - *stamp;
            *stamp = t1;
            *last = s;
        }
    }
    if (!shared) return;
    run_shared(ex, l, first, err);          /* timed by run_step; the wait after them is imbalance */
    if (ex->prof_step && t == 0) {
        *stamp = omp_get_wtime();
        *last = -1;
    }
}

/* Levels [l0, l1), a chain: one team; each level's solo steps computed in
 * parts by every thread and its one-thread steps shared out; a barrier
 * after each level unless free_levels proved it needless (each thread then
 * goes on to its part of the next level at once). Profiling times each
 * level on thread 0. */
static mn_status run_chain(mn_exec *ex, int l0, int l1)
{
    mn_status err = MN_OK;
    int first_err = ex->nsteps;
    #pragma omp parallel num_threads(ex->nthreads)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        double t0 = ex->prof_step && t == 0 ? omp_get_wtime() : 0, stamp = t0;
        for (int l = l0; l < l1; l++) {
            int last = -1;
            chain_level_run(ex, l, t, n, &first_err, &err, &last, &stamp);
            if (!ex->team_free[l] || n != ex->nthreads) {      /* spans were found for nthreads parts */
                #pragma omp barrier
            }
            if (ex->prof_step && t == 0) {
                double t1 = omp_get_wtime();
                if (last >= 0) ex->prof_step[last] += t1 - stamp;
                ex->prof_level[l] += t1 - t0;
                t0 = stamp = t1;
            }
        }
    }
    if (err) mn__error(err, "%s", ex->msg);
    return err;
}

/* One level: its small steps side by side, one thread each (OpenBLAS runs
 * single-threaded inside a parallel region), and its big steps too when the
 * level splits its threads between them; the big steps otherwise run one
 * after another with every thread. Small steps the schedule gave to the
 * calling thread (`caller`: too little work to fork a team for) run in
 * order there, one thread each and OpenBLAS single-threaded, so they
 * compute exactly what they would beside each other. The first failing
 * step (in schedule order) wins. */
static mn_status run_level(mn_exec *ex, int l)
{
    int a = ex->level_start[l], b = ex->level_start[l + 1], nshared = 0, first_err = b;
    mn_status err = MN_OK;
    for (int s = a; s < b; s++) nshared += !ex->steps[s].solo && !ex->steps[s].caller;
    bool together = ex->nthreads > 1 && nshared > 0;
    if (together) {
        #pragma omp parallel for schedule(dynamic, 1) num_threads(ex->nthreads)
        for (int s = a; s < b; s++) {
            if (ex->steps[s].solo || ex->steps[s].caller) continue;
            char msg[1024];
            mn_status st = run_step(ex, &ex->steps[s], 1, msg, sizeof msg);
            if (st) {
                #pragma omp critical(mn_exec_error)
                if (s < first_err) { first_err = s; err = st; snprintf(ex->msg, sizeof ex->msg, "%s", msg); }
            }
        }
    }
    for (int s = a; s < b && !err; s++) {
        const mn_step *st = &ex->steps[s];
        if (together && !st->solo && !st->caller) continue;      /* ran above */
        if (!st->caller) {
            err = run_step(ex, st, ex->nthreads, ex->msg, sizeof ex->msg);
            continue;
        }
        int blas = mn__blas_threads_push(1);
        err = run_step(ex, st, 1, ex->msg, sizeof ex->msg);
        mn__blas_threads_pop(blas);
    }
    if (err) mn__error(err, "%s", ex->msg);
    return err;
}

/* The backup slot of sink k's gradient if this run has not saved it yet
 * (marking it saved), else NULL. */
static float *unsaved(mn_exec *ex, const mn_sink *k)
{
    mn__backup *b = &ex->bak[k->param_slot];
    if (b->saved) return NULL;
    b->saved = true;
    return ex->backup + b->offset;
}

static void copy_floats(float *dst, const float *src, int64_t n, int threads)
{
    if (mn__serial(threads, n > MN_GRAIN)) {
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

/* dst += src, first saving dst in bak when bak is not NULL. */
static void add_floats(float *dst, float *bak, const float *src, int64_t i0, int64_t i1)
{
    if (bak)
        for (int64_t i = i0; i < i1; i++) { bak[i] = dst[i]; dst[i] += src[i]; }
    else
        for (int64_t i = i0; i < i1; i++) dst[i] += src[i];
}

/* Adds a sink's value into the store's gradient, saving the old values on
 * the way when this is the run's first touch (one pass over the bytes). */
static void accumulate(mn_exec *ex, const mn_sink *k)
{
    if (k->direct) return;                          /* its step added it already */
    const float *src = mn_f32(&ex->vals[k->value].t);
    mn_tensor *gt = mn_params_grad(ex->g->P, k->param);
    float *dst = mn_f32(gt), *bak = unsaved(ex, k);
    int64_t n = mn_tensor_numel(gt);
    if (mn__serial(ex->nthreads, n > MN_GRAIN)) {
        add_floats(dst, bak, src, 0, n);
        return;
    }
    #pragma omp parallel num_threads(ex->nthreads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        add_floats(dst, bak, src, n * t / nt, n * (t + 1) / nt);
    }
}

/* Before level l: the gradients its steps add into directly (direct sinks) are saved. */
static void save_direct(mn_exec *ex, int l, int k)
{
    for (; k < ex->nsinks && ex->sinks[k].level <= l; k++) {
        const mn_sink *s = &ex->sinks[k];
        float *bak = s->direct ? unsaved(ex, s) : NULL;
        if (!bak) continue;
        mn_tensor *gt = mn_params_grad(ex->g->P, s->param);
        copy_floats(bak, mn_f32(gt), mn_tensor_numel(gt), ex->nthreads);
    }
}

/* A failed run: every gradient it touched gets its old values back. */
static void roll_back(mn_exec *ex)
{
    for (int k = 0; k < ex->nsinks; k++) {
        mn__backup *b = &ex->bak[ex->sinks[k].param_slot];
        if (!b->saved) continue;
        mn_tensor *gt = mn_params_grad(ex->g->P, ex->sinks[k].param);
        copy_floats(mn_f32(gt), ex->backup + b->offset, mn_tensor_numel(gt), ex->nthreads);
        b->saved = false;
    }
}

/* The first element of value v that is a NaN or an infinity, or -1. */
static int64_t first_nonfinite(const mn_value *v)
{
    if (mn__kind(v) != MN_VAL_ARENA || v->t.dtype != MN_F32) return -1;
    const float *x = mn_f32(&v->t);
    int64_t n = mn_tensor_numel(&v->t);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* Anomaly mode: after level l, the first step (in schedule order) whose
 * f32 output holds a NaN or an infinity stops the run. Views and fused
 * members have no bytes of their own; their group's outputs are checked,
 * the root's and the extra ones (a sibling's gradient may be either). */
static mn_status check_level(mn_exec *ex, int l)
{
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
        const mn_step *st = &ex->steps[s];
        const mn_value *v = &ex->vals[st->out];
        int64_t bad = first_nonfinite(v);
        for (int k = 0; bad < 0 && k < st->nxout; k++) {
            v = &ex->vals[st->xout[k]];
            bad = first_nonfinite(v);
        }
        if (bad < 0) continue;
        float x = mn_f32(&v->t)[bad];
        snprintf(ex->msg, sizeof ex->msg, "run %llu, level %d: %s%s \"%s\" produced %s at element %lld (anomaly mode)",
                 (unsigned long long)ex->step, l, st->fused ? "fused group ending in " : "", st->node->op->name, st->node->name,
                 isnan(x) ? "nan" : x > 0 ? "inf" : "-inf", (long long)bad);
        return mn__error(MN_ERR_NONFINITE, "%s", ex->msg);
    }
    return MN_OK;
}

static mn_status run_levels(mn_exec *ex);

mn_status mn_exec_run(mn_exec *ex)
{
    if (!ex) return mn__error(MN_ERR_MISUSE, "run: NULL executable");
    if (mn__exec_check_frozen(ex)) return MN_ERR_MISUSE;     /* compiled before mn_params_freeze changed its set (autodiff.c) */
    ex->msg[0] = 0;
    if (ex->bind) mn__bind_team(ex->nthreads);
    int blas = mn__blas_threads_push(ex->blas_threads);
    mn_status st = run_levels(ex);
    mn__blas_threads_pop(blas);
    if (st) roll_back(ex);
    for (int i = 0; i < ex->nbak; i++) ex->bak[i].saved = false;
    return st;
}

/* The levels in order, each followed by the gradient sinks it completes. */
static mn_status run_levels(mn_exec *ex)
{
    int k = 0;
    bool prof = ex->prof_step != NULL;
    double t0 = prof ? omp_get_wtime() : 0, tl = t0;
    bool chains = !ex->anomaly && !ex->level_hook;     /* both act after every level */
    for (int l = 0; l < ex->nlevels; l++) {
        if (chains && ex->team_end[l]) {
            int e = ex->team_end[l];
            mn_status st = run_chain(ex, l, e);
            if (st) return st;
            l = e - 1;
            tl = prof ? omp_get_wtime() : 0;
            continue;
        }
        save_direct(ex, l, k);
        mn_status st = run_level(ex, l);
        if (!st && ex->anomaly) st = check_level(ex, l);
        if (st) return st;
        double ts = prof ? omp_get_wtime() : 0;
        for (; k < ex->nsinks && ex->sinks[k].level <= l; k++) accumulate(ex, &ex->sinks[k]);
        if (ex->level_hook && (st = ex->level_hook(ex->level_ctx, l))) return st;
        if (prof) {
            double t = omp_get_wtime();
            ex->prof_level[l] += ts - tl;
            ex->prof_sinks += t - ts;
            tl = t;
        }
    }
    for (; k < ex->nsinks; k++) accumulate(ex, &ex->sinks[k]);
    mn_status st = ex->level_hook ? ex->level_hook(ex->level_ctx, ex->nlevels) : MN_OK;
    if (st) return st;
    if (prof) { double t = omp_get_wtime(); ex->prof_sinks += t - tl; ex->prof_wall += t - t0; ex->prof_runs++; }
    ex->step++;
    return MN_OK;
}

/* The level hook and what it needs to know: the level after which a run
 * has added everything it adds to parameter p's gradient (its last sink;
 * nlevels for sinks after the last level), -1 if it never adds to it. */
mn_status mn_exec_set_level_hook(mn_exec *ex, mn_level_fn fn, void *ctx)
{
    if (!ex) return mn__error(MN_ERR_MISUSE, "level hook: NULL executable");
    ex->level_hook = fn;
    ex->level_ctx = ctx;
    return MN_OK;
}

int mn_exec_level_count(const mn_exec *ex) { return ex ? ex->nlevels : 0; }

int mn_exec_grad_level(const mn_exec *ex, int param)
{
    int level = -1;
    for (int k = 0; ex && k < ex->nsinks; k++)
        if (ex->sinks[k].param == param && ex->sinks[k].level > level) level = ex->sinks[k].level;
    return ex && level > ex->nlevels ? ex->nlevels : level;
}

void mn_exec_set_step(mn_exec *ex, uint64_t step) { if (ex) ex->step = step; }
uint64_t mn_exec_get_step(const mn_exec *ex) { return ex ? ex->step : 0; }

float mn_exec_loss(const mn_exec *ex)
{
    return ex && ex->loss >= 0 ? mn_f32(&ex->vals[ex->loss].t)[0] : 0.0f;
}

const mn_tensor *mn_exec_value(const mn_exec *ex, const mn_node *n)
{
    if (!ex || !n || n->g != ex->user || n->id >= ex->nuser || ex->val_of[n->id] < 0) return NULL;
    if (mn__kind(&ex->vals[ex->val_of[n->id]]) == MN_VAL_FUSED) return NULL;      /* never stored */
    if (mn__kind(&ex->vals[ex->val_of[n->id]]) == MN_VAL_GRAD) return NULL;       /* added into the store's gradient */
    return &ex->vals[ex->val_of[n->id]].t;
}

const char *mn_exec_errmsg(const mn_exec *ex) { return !ex ? "NULL executable" : ex->msg[0] ? ex->msg : "ok"; }

/* Inputs in graph order, as views the caller may fill directly. */
int mn_exec_input_count(const mn_exec *ex)
{
    int n = 0;
    for (int v = 0; ex && v < ex->nvals; v++) n += ex->vals[v].base == MN_VAL_INPUT;
    return n;
}

static const mn_value *input_at(const mn_exec *ex, int i)
{
    for (int v = 0; ex && v < ex->nvals; v++)
        if (ex->vals[v].base == MN_VAL_INPUT && i-- == 0) return &ex->vals[v];
    return NULL;
}

const char *mn_exec_input_name(const mn_exec *ex, int i) { const mn_value *v = input_at(ex, i); return v ? v->node->name : NULL; }
const mn_tensor *mn_exec_input(const mn_exec *ex, int i) { const mn_value *v = input_at(ex, i); return v ? &v->t : NULL; }

/* The backup area: one slot per parameter whose gradient the executable
 * adds to (two sinks of one parameter share it). Allocated once, at compile. */
mn_status mn__run_prepare(mn_exec *ex)
{
    if (find_chains(ex) || mn__find_windows(ex)) return MN_ERR_NOMEM;
    int np = mn_params_count(ex->g->P);
    int *slot_of = malloc((size_t)(np ? np : 1) * sizeof *slot_of);
    ex->bak = calloc((size_t)ex->nsinks + 1, sizeof *ex->bak);
    if (!slot_of || !ex->bak) { free(slot_of); return mn__graph_fail(ex->g, MN_ERR_NOMEM, "compile: out of memory"); }
    for (int p = 0; p < np; p++) slot_of[p] = -1;
    size_t total = 0;
    for (int k = 0; k < ex->nsinks; k++) {
        int p = ex->sinks[k].param;
        if (slot_of[p] < 0) {
            slot_of[p] = ex->nbak++;
            ex->bak[slot_of[p]].offset = total;
            total += (size_t)mn_tensor_numel(mn_params_grad(ex->g->P, p));
        }
        ex->sinks[k].param_slot = slot_of[p];
    }
    free(slot_of);
    ex->backup_floats = total;
    if (total && !(ex->backup = mn__aligned_alloc(total * sizeof(float))))
        return mn__graph_fail(ex->g, MN_ERR_NOMEM, "compile: cannot allocate %zu bytes to back up the gradients", total * sizeof(float));
    return MN_OK;
}
