/* graph/compile.c: mn_compile, a short driver over a table of passes. Each
 * pass is a file with one signature, mn_status pass(mn_exec *), reading
 * and writing the compiled representation (exec.h names the pass that owns
 * each field) and reporting counters by name; the driver times each pass.
 * The user's graph is never changed: the passes work on ex->g, a copy. */
#include "exec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <omp.h>

static mn_status check_loss(mn_graph *g, mn_node *loss)
{
    char s[96];
    if (loss->g != g) return mn__graph_fail(g, MN_ERR_MISUSE, "compile: the loss belongs to another graph");
    if (loss->desc.dtype != MN_F32 || mn_shape_numel(loss->desc.shape) != 1)
        return mn__graph_fail(g, MN_ERR_SHAPE, "compile: loss \"%s\" must be a f32 scalar, got %s %s", loss->name,
                              mn_dtype_name(loss->desc.dtype), mn_shape_str(loss->desc.shape, s, sizeof s));
    return MN_OK;
}

void mn__count_reads(const mn_exec *ex, int *n)
{
    for (int v = 0; v < ex->nvals; v++) n[v] = ex->keep[v] ? 1 : 0;
    for (int i = 0; i < ex->nsinks; i++) n[ex->sinks[i].value]++;
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) n[ex->steps[s].in[k]]++;
}

bool mn__outside_arena(const mn_exec *ex, int v)
{
    while (ex->vals[v].base == MN_VAL_ALIAS) v = ex->vals[v].alias_of;
    mn_val_kind k = mn__kind(&ex->vals[v]);
    return k == MN_VAL_PARAM || k == MN_VAL_INPUT || k == MN_VAL_CONST;
}

/* The fusion pass runs unless the options turn it off. */
static mn_status pass_fuse(mn_exec *ex)
{
    mn_status s = ex->fuse ? mn__fuse(ex) : MN_OK;
    mn__stat(ex, "fuse.groups", ex->fused_groups);
    mn__stat(ex, "fuse.nodes", ex->fused_nodes);
    return s;
}

static mn_status pass_schedule(mn_exec *ex)
{
    mn_status s = mn__schedule(ex);
    mn__stat(ex, "schedule.steps", ex->nsteps);
    mn__stat(ex, "schedule.levels", ex->nlevels);
    int split = 0;
    for (int l = 0; !s && l < ex->nlevels; l++) split += ex->level_split[l];
    mn__stat(ex, "schedule.split_levels", split);
    mn__stat(ex, "schedule.threads", ex->nthreads);
    mn__stat(ex, "schedule.tiny", ex->tiny);
    int caller = 0;                      /* levels whose one-thread steps run on the calling thread */
    for (int l = 0; !s && l < ex->nlevels; l++) {
        bool any = false;
        for (int k = ex->level_start[l]; k < ex->level_start[l + 1]; k++) any |= ex->steps[k].caller;
        caller += any;
    }
    mn__stat(ex, "schedule.caller_levels", caller);
    return s;
}

/* The bytes of the executable's own tables, held for as long as it lives:
 * the compiler's copy of the graph (nodes, attributes, the backward pass's
 * nodes), values, steps with their input lists and bound views, fused
 * programs, levels, storage blocks and sinks. Counted from the element
 * counts, so it misses only the allocator's headers and rounding. */
static double table_bytes(const mn_exec *ex)
{
    double b = (double)ex->g->arena.held_total + (double)ex->g->cap * sizeof *ex->g->nodes + sizeof *ex;
    b += (double)ex->nvals * (sizeof *ex->vals + sizeof *ex->keep) + (double)ex->nnodes * sizeof *ex->val_of;
    b += (double)ex->nsteps * sizeof *ex->steps + (double)ex->nlevels * (sizeof *ex->level_start + sizeof *ex->level_split);
    b += (double)ex->nstores * sizeof *ex->stores + (double)ex->nsinks * sizeof *ex->sinks;
    for (int i = 0; i < ex->nsteps; i++) {
        const mn_step *st = &ex->steps[i];
        b += (double)st->nin * (sizeof *st->in + sizeof *st->tin) + (double)(st->nxout + st->nctrl) * sizeof(int);
        if (st->fused && !st->clone) b += (double)mn__fused_bytes();
    }
    return b;
}

static mn_status pass_plan(mn_exec *ex)
{
    mn_status s = mn__plan(ex);
    mn__stat(ex, "plan.arena_bytes", (double)ex->arena_bytes);
    mn__stat(ex, "plan.lower_bound_bytes", (double)ex->lower_bound);
    mn__stat(ex, "plan.naive_bytes", (double)ex->naive_bytes);
    mn__stat(ex, "plan.inplace", ex->inplace_count);
    mn__stat(ex, "plan.placed_pieces", ex->placed_count);
    /* what a training process holds for this executable: the arena, its
     * inputs, its own tables, and the store's values and gradients
     * (optimizer state and the gradient backup of a run come on top: one
     * and two more copies for Adam) */
    double tables = table_bytes(ex), peak = (double)ex->arena_bytes + tables;
    mn__stat(ex, "plan.table_bytes", tables);
    for (int v = 0; v < ex->nvals; v++) if (ex->vals[v].base == MN_VAL_INPUT) peak += (double)ex->vals[v].bytes;
    for (int p = 0; p < mn_params_count(ex->g->P); p++) peak += 2.0 * (double)mn_tensor_bytes(mn_params_value(ex->g->P, p));
    mn__stat(ex, "plan.predicted_peak_bytes", peak);
    return s;
}

/* The verifier runs when the options ask for it. */
static mn_status pass_verify(mn_exec *ex)
{
    char msg[512];
    if (!ex->opts.verify) return MN_OK;
    mn_status s = mn__plan_verify(ex, msg, sizeof msg);
    mn__stat(ex, "verify.ok", s == MN_OK);
    if (s == MN_ERR_NOMEM)
        return mn__graph_fail(ex->g, s, "compile: out of memory verifying the memory plan");
    return s ? mn__graph_fail(ex->g, MN_ERR_INVALID, "compile: memory plan is unsafe: %s", msg) : MN_OK;
}

/* The pipeline, in order. A new pass is a file and a line here. */
static const struct { const char *name; mn_status (*run)(mn_exec *ex); } passes[] = {
    { "autodiff", mn__pass_autodiff },    /* autodiff.c: backward nodes into ex->g, roots, sinks */
    { "dce", mn__pass_dce },              /* dce.c: live nodes */
    { "cse", mn__pass_cse },              /* cse.c: values and steps, merged twins */
    { "fuse", pass_fuse },                /* fuse.c: pointwise chains -> one step */
    { "direct", mn__pass_direct },        /* direct.c: gradients added by their GEMM */
    { "recompute", mn__pass_recompute },  /* recompute.c: under a memory budget, forward values rebuilt in the backward pass */
    { "schedule", pass_schedule },        /* schedule.c: levels, big steps */
    { "plan", pass_plan },                /* plan.c: arena offsets, binding */
    { "verify", pass_verify },            /* verify.c: no two live values share bytes */
};

_Static_assert(MN__ARRAY_LEN(passes) <= MN__ARRAY_LEN(((mn_exec *)0)->pass_ms), "one time slot per pass");

void mn__stat(mn_exec *ex, const char *name, double value)
{
    if (ex->nstats >= MN_MAX_STATS) return;
    ex->stats[ex->nstats].name = name;
    ex->stats[ex->nstats].value = value;
    ex->nstats++;
}

static mn_exec *exec_new(mn_graph *g, mn_node *loss, const mn_compile_opts *opts)
{
    mn_exec *ex = calloc(1, sizeof *ex);
    if (!ex || !(ex->g = mn__graph_clone(g))) { free(ex); mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory"); return NULL; }
    if (opts) ex->opts = *opts;
    ex->user = g;
    ex->nuser = g->n;
    ex->loss = -1;
    ex->loss_node = loss;
    ex->nthreads = mn__threads(ex->opts.threads);
    ex->serial = ex->opts.serial;
    if (ex->serial) ex->nthreads = 1;
    ex->fuse = !ex->opts.no_fuse;
    ex->bind = ex->opts.bind_threads;
    ex->blas_threads = ex->opts.blas_threads > 0 ? ex->opts.blas_threads : ex->nthreads;
    ex->anomaly = ex->opts.detect_anomaly;
    return ex;
}

mn_exec *mn_compile(mn_graph *g, mn_node *loss, const mn_compile_opts *opts)
{
    if (!g) { mn__error(MN_ERR_MISUSE, "compile: NULL graph"); return NULL; }
    if (g->status) { mn__error(g->status, "%s", g->msg); return NULL; }
    if (loss && check_loss(g, loss)) return NULL;
    if (!loss && (!opts || opts->noutputs == 0)) { mn__graph_fail(g, MN_ERR_INVALID, "compile: nothing to compute (no loss, no outputs)"); return NULL; }
    mn_exec *ex = exec_new(g, loss, opts);
    if (!ex) return NULL;
    mn_status s = MN_OK;
    const char *stage = "";
    mn_clear_error();                   /* a message after this is the compile's own */
    for (size_t i = 0; !s && i < MN__ARRAY_LEN(passes); i++) {
        double t0 = omp_get_wtime();
        stage = passes[i].name;
        s = passes[i].run(ex);
        ex->pass_ms[i] = 1e3 * (omp_get_wtime() - t0);
    }
    if (!s) {
        stage = "run set-up";
        s = mn__run_prepare(ex);
    }
    if (!s && loss) ex->loss = ex->val_of[loss->id];
    for (int i = 0; !s && i < ex->nsteps; i++) ex->flops += ex->steps[i].flops;
    free(ex->roots); free(ex->live);
    ex->roots = NULL; ex->live = NULL;
    if (s) {
        if (ex->g->status) mn__graph_fail(g, ex->g->status, "%s", ex->g->msg);
        else if (mn_last_status()) mn__graph_fail(g, s, "%s", mn_errmsg());
        else mn__graph_fail(g, s, "compile: the %s pass failed: %s", stage, mn_status_message(s));   /* a status without a message */
        mn_exec_free(ex);
        return NULL;
    }
    return ex;
}

void mn_exec_free(mn_exec *ex)
{
    if (!ex) return;
    for (int v = 0; ex->vals && v < ex->nvals; v++)
        if (ex->vals[v].base == MN_VAL_INPUT) free(ex->vals[v].t.data);
    for (int s = 0; ex->steps && s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        free(st->in); free(st->tin); free(st->xout); free(st->ctrl);
        if (!st->clone) mn__fused_free(st->fused);
        mn__op_state_free(st->state);
    }
    mn__op_states_free(ex->op_states);         /* after the states: their memory objects are its engine's */
    free(ex->vals); free(ex->val_of); free(ex->steps); free(ex->sinks); free(ex->arena);
    free(ex->keep); free(ex->stores); free(ex->level_start); free(ex->level_split); free(ex->team_end); free(ex->team_free);
    free(ex->win); free(ex->win_at);
    free(ex->prof_step); free(ex->prof_level);
    free(ex->roots); free(ex->live); free(ex->backup); free(ex->bak); free(ex->pin_solo); free(ex->frozen_at);
    mn_graph_free(ex->g);
    free(ex);
}

mn_status mn_exec_verify(const mn_exec *ex)
{
    char msg[512];
    if (!ex) return mn__error(MN_ERR_MISUSE, "verify: NULL executable");
    mn_status s = mn__plan_verify(ex, msg, sizeof msg);
    return s ? mn__error(s, "memory plan is unsafe: %s", msg) : MN_OK;
}

mn_exec_stats mn_exec_get_stats(const mn_exec *ex)
{
    mn_exec_stats st = { 0 };
    if (!ex) return st;
    st.nodes_total = ex->nnodes;
    st.steps = ex->nsteps;
    for (int s = 0; s < ex->nsteps; s++) st.backward_steps += ex->steps[s].node->backward;
    st.naive_bytes = ex->naive_bytes;
    st.lower_bound_bytes = ex->lower_bound;
    st.arena_bytes = ex->arena_bytes;
    st.levels = ex->nlevels;
    st.inplace = ex->inplace_count;
    st.flops = ex->flops;
    st.fused_groups = ex->fused_groups;
    st.fused_nodes = ex->fused_nodes;
    st.cse = ex->cse_count;
    st.placed = ex->placed_count;
    st.direct_grads = ex->direct_grads;
    return st;
}

/* Counters by name: each pass's (name "<pass>.<counter>") and its time
 * ("<pass>.ms"). The list grows with the passes without breaking callers. */
int mn_exec_stat_count(const mn_exec *ex) { return ex ? ex->nstats + (int)MN__ARRAY_LEN(passes) : 0; }

const char *mn_exec_stat_name(const mn_exec *ex, int i)
{
    static const char *const ms[] = { "autodiff.ms", "dce.ms", "cse.ms", "fuse.ms", "direct.ms", "recompute.ms", "schedule.ms", "plan.ms", "verify.ms" };
    _Static_assert(MN__ARRAY_LEN(ms) == MN__ARRAY_LEN(passes), "one time per pass");
    if (!ex || i < 0 || i >= mn_exec_stat_count(ex)) return NULL;
    return i < ex->nstats ? ex->stats[i].name : ms[i - ex->nstats];
}

double mn_exec_stat_value(const mn_exec *ex, int i)
{
    if (!ex || i < 0 || i >= mn_exec_stat_count(ex)) return NAN;
    return i < ex->nstats ? ex->stats[i].value : ex->pass_ms[i - ex->nstats];
}

double mn_exec_stat(const mn_exec *ex, const char *name)
{
    for (int i = 0; name && i < mn_exec_stat_count(ex); i++)
        if (!strcmp(mn_exec_stat_name(ex, i), name)) return mn_exec_stat_value(ex, i);
    return NAN;
}
