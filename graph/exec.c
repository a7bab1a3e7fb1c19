/* graph/exec.c: compile (autodiff, dead-code elimination with common
 * subexpressions, fusion, direct gradients, schedule, memory plan) and run.
 * Steps start as the live op nodes in id order, which is topological.
 * Storage: op outputs get 64-byte aligned slots of one arena (plan.c),
 * except views, fused values and direct gradients. Invariant: after compile
 * every step's tensors point at bound storage; run never allocates. */
#include "exec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <math.h>

static mn_status mark_live(mn_graph *g, mn_node **roots, int nroots, bool *live)
{
    for (int i = 0; i < nroots; i++)
        if (roots[i]) live[roots[i]->id] = true;
    for (int i = g->n - 1; i >= 0; i--) {
        if (!live[i]) continue;
        mn_node *n = g->nodes[i];
        for (int k = 0; k < n->nin; k++) live[n->in[k]->id] = true;
    }
    return MN_OK;
}

static mn_value value_for(mn_node *n)
{
    mn_value v = { .node = n, .alias_of = -1, .def = -1, .storage = -1, .fused_root = -1 };
    v.t.dtype = n->desc.dtype;
    v.t.shape = n->desc.shape;
    v.bytes = (size_t)mn_shape_numel(n->desc.shape) * mn_dtype_size(n->desc.dtype);
    switch (n->kind) {
    case MN_NODE_INPUT: v.kind = MN_VAL_INPUT; break;
    case MN_NODE_PARAM: v.kind = MN_VAL_PARAM; break;
    case MN_NODE_CONST: v.kind = MN_VAL_CONST; break;
    case MN_NODE_OP:
        v.kind = MN_VAL_ARENA;
        if (n->op->alias_offset) {
            int64_t off = n->op->alias_offset(n->in_desc, n->nin, &n->desc, n->attrs);
            if (off >= 0) { v.kind = MN_VAL_ALIAS; v.alias_off = off; }
        }
        break;
    }
    return v;
}

/* Common subexpressions: two op nodes with the same op, attributes and
 * input values compute the same value (random ops excepted: each draws its
 * own numbers). Autodiff makes such twins, e.g. the gradients of two biases
 * added to the same tensor; the second maps to the first's value. */
static uint64_t node_key(const mn_exec *ex, const mn_node *n)
{
    uint64_t h = (uint64_t)(uintptr_t)n->op * 0x9E3779B97F4A7C15ull ^ (uint64_t)n->nin;
    for (int k = 0; k < n->nin; k++) h = (h ^ (uint64_t)ex->val_of[n->in[k]->id]) * 0x100000001B3ull;
    const unsigned char *a = n->attrs;
    for (size_t i = 0; a && i < n->op->attr_size; i++) h = (h ^ a[i]) * 0x100000001B3ull;
    return h;
}

static bool same_node(const mn_exec *ex, const mn_node *a, const mn_node *b)
{
    if (a->op != b->op || a->nin != b->nin || a->desc.dtype != b->desc.dtype || !mn_shape_eq(a->desc.shape, b->desc.shape)) return false;
    for (int k = 0; k < a->nin; k++)
        if (ex->val_of[a->in[k]->id] != ex->val_of[b->in[k]->id]) return false;
    return !a->op->attr_size || (a->attrs && b->attrs && memcmp(a->attrs, b->attrs, a->op->attr_size) == 0);
}

static mn_status build_values(mn_exec *ex, const bool *live)
{
    mn_graph *g = ex->g;
    int hcap = 16;
    while (hcap < 2 * g->n) hcap *= 2;
    int *table = malloc((size_t)hcap * sizeof *table);      /* value indices of op nodes, -1 empty */
    ex->val_of = malloc((size_t)g->n * sizeof *ex->val_of);
    ex->vals = calloc((size_t)g->n, sizeof *ex->vals);
    ex->steps = calloc((size_t)g->n, sizeof *ex->steps);
    if (!table || !ex->val_of || !ex->vals || !ex->steps) { free(table); return mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory"); }
    for (int i = 0; i < hcap; i++) table[i] = -1;
    for (int i = 0; i < g->n; i++) {
        ex->val_of[i] = -1;
        if (!live[i]) continue;
        mn_node *n = g->nodes[i];
        int slot = -1;
        if (n->kind == MN_NODE_OP && !(n->op->flags & MN_OPF_RANDOM)) {
            slot = (int)(node_key(ex, n) & (uint64_t)(hcap - 1));
            while (table[slot] >= 0 && !same_node(ex, ex->vals[table[slot]].node, n)) slot = (slot + 1) & (hcap - 1);
            if (table[slot] >= 0) { ex->val_of[i] = table[slot]; ex->cse_count++; continue; }
        }
        int v = ex->nvals++;
        ex->val_of[i] = v;
        if (slot >= 0) table[slot] = v;
        ex->vals[v] = value_for(n);
        if (n->kind != MN_NODE_OP) continue;
        mn_step *s = &ex->steps[ex->nsteps];
        s->node = n; s->out = v; s->nin = n->nin; s->inplace = n->op->inplace; s->fused_into = -1;
        s->in = calloc((size_t)(n->nin ? n->nin : 1), sizeof *s->in);
        s->tin = calloc((size_t)(n->nin ? n->nin : 1), sizeof *s->tin);
        if (!s->in || !s->tin) { free(s->in); free(s->tin); free(table); return mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory"); }
        for (int k = 0; k < n->nin; k++) s->in[k] = ex->val_of[n->in[k]->id];
        if (ex->vals[v].kind == MN_VAL_ALIAS) ex->vals[v].alias_of = s->in[0];
        ex->vals[v].def = ex->nsteps++;
    }
    free(table);
    return MN_OK;
}

static mn_status check_loss(mn_graph *g, mn_node *loss)
{
    char s[96];
    if (loss->g != g) return mn__graph_fail(g, MN_ERR_MISUSE, "compile: the loss belongs to another graph");
    if (loss->desc.dtype != MN_F32 || mn_shape_numel(loss->desc.shape) != 1)
        return mn__graph_fail(g, MN_ERR_SHAPE, "compile: loss \"%s\" must be a f32 scalar, got %s %s", loss->name,
                              mn_dtype_name(loss->desc.dtype), mn_shape_str(loss->desc.shape, s, sizeof s));
    return MN_OK;
}

/* Roots: the loss and outputs first (*nkeep of them: read after the run),
 * then the parameter gradients (sinks, accumulated as soon as computed). */
static mn_status collect_roots(mn_exec *ex, mn_node *loss, const mn_compile_opts *o, mn_node ***roots, int *nroots, int *nkeep)
{
    mn_graph *g = ex->g;
    int nf = g->n;
    mn_node **grads = calloc((size_t)nf, sizeof *grads);
    mn_node **r = calloc((size_t)nf + (size_t)(o ? o->noutputs : 0) + 1, sizeof *r);
    ex->sinks = calloc((size_t)nf, sizeof *ex->sinks);
    if (!grads || !r || !ex->sinks) { free(grads); free(r); return mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory"); }
    mn_status s = MN_OK;
    if (loss && !(o && o->no_backward)) s = mn__autodiff(g, loss, grads);
    int n = 0;
    if (loss) r[n++] = loss;
    for (int i = 0; !s && o && i < o->noutputs; i++) {
        if (!o->outputs[i] || o->outputs[i]->g != g) { s = mn__graph_fail(g, MN_ERR_MISUSE, "compile: output %d is NULL or from another graph", i); break; }
        r[n++] = (mn_node *)o->outputs[i];
    }
    *nkeep = n;
    for (int i = 0; !s && i < nf; i++)
        if (grads[i]) { r[n++] = grads[i]; ex->sinks[ex->nsinks++] = (mn_sink){ grads[i]->id, g->nodes[i]->param, 0, false }; }
    free(grads);
    *roots = r; *nroots = n;
    return s;
}

void mn__count_reads(const mn_exec *ex, int *n)
{
    for (int v = 0; v < ex->nvals; v++) n[v] = ex->keep[v] ? 1 : 0;
    for (int i = 0; i < ex->nsinks; i++) n[ex->sinks[i].value]++;
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) n[ex->steps[s].in[k]]++;
}

/* A parameter gradient computed by an op that can add into its output
 * (MN_OPF_ACCUMULATE: matmul, e.g. a weight gradient), read by nothing
 * else and the only gradient in its value, is added by that step straight
 * into the store's gradient (GEMM with beta = 1): no arena bytes, no
 * separate pass adding it. */
static void direct_sinks(mn_exec *ex)
{
    int *nread = malloc(((size_t)ex->nvals + 1) * sizeof *nread);
    if (!nread) return;                     /* an optimisation only */
    mn__count_reads(ex, nread);
    for (int i = 0; i < ex->nsinks; i++) {
        mn_sink *k = &ex->sinks[i];
        mn_value *v = &ex->vals[k->value];
        const mn_tensor *gt = mn_params_grad(ex->g->P, k->param);
        /* one read in all: this sink (no step, no second parameter, not kept) */
        if (v->kind != MN_VAL_ARENA || v->def < 0 || nread[k->value] != 1 || !gt) continue;
        mn_step *st = &ex->steps[v->def];
        if (st->fused || st->out != k->value || !(st->node->op->flags & MN_OPF_ACCUMULATE)) continue;
        if (gt->dtype != v->t.dtype || !mn_shape_eq(gt->shape, v->t.shape)) continue;
        v->kind = MN_VAL_GRAD;
        v->grad_param = k->param;
        st->accumulate = true;
        st->inplace = -1;
        k->direct = true;
        ex->direct_grads++;
    }
    free(nread);
}

mn_exec *mn_compile(mn_graph *g, mn_node *loss, const mn_compile_opts *opts)
{
    if (!g) { mn__error(MN_ERR_MISUSE, "compile: NULL graph"); return NULL; }
    if (g->status) { mn__error(g->status, "%s", g->msg); return NULL; }
    if (loss && check_loss(g, loss)) return NULL;
    if (!loss && (!opts || opts->noutputs == 0)) { mn__graph_fail(g, MN_ERR_INVALID, "compile: nothing to compute (no loss, no outputs)"); return NULL; }
    mn_exec *ex = calloc(1, sizeof *ex);
    if (!ex) { mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory"); return NULL; }
    ex->g = g; ex->loss = -1;
    ex->nthreads = mn__threads(opts ? opts->threads : 0);
    ex->serial = opts && opts->serial;
    if (ex->serial) ex->nthreads = 1;
    mn_node **roots = NULL;
    int nroots = 0, nkeep = 0;
    bool *live = NULL;
    mn_status s = collect_roots(ex, loss, opts, &roots, &nroots, &nkeep);
    if (!s && !(live = calloc((size_t)g->n, sizeof *live))) s = mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory");
    ex->nnodes = g->n;
    if (!s) s = mark_live(g, roots, nroots, live);
    if (!s) s = build_values(ex, live);
    if (!s && !(ex->keep = calloc((size_t)ex->nvals + 1, sizeof *ex->keep))) s = mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory");
    for (int i = 0; !s && i < nkeep; i++) ex->keep[ex->val_of[roots[i]->id]] = true;
    for (int i = 0; !s && i < ex->nsinks; i++) ex->sinks[i].value = ex->val_of[ex->sinks[i].value];
    ex->fuse = !(opts && opts->no_fuse) && !getenv("MNEMO_NO_FUSE");
    if (!s && ex->fuse) s = mn__fuse(ex);
    if (!s) direct_sinks(ex);
    if (!s) s = mn__schedule(ex);
    if (!s) s = mn__plan(ex);
    if (!s && (getenv("MNEMO_VERIFY_PLAN") || (opts && opts->verify))) {
        char msg[512];
        mn_status v = mn__plan_verify(ex, msg, sizeof msg);
        if (v == MN_ERR_NOMEM) s = mn__graph_fail(g, v, "compile: out of memory verifying the memory plan");
        else if (v) s = mn__graph_fail(g, MN_ERR_INVALID, "compile: memory plan is unsafe: %s", msg);
    }
    if (!s && loss) ex->loss = ex->val_of[loss->id];
    for (int i = 0; !s && i < ex->nsteps; i++) ex->flops += ex->steps[i].flops;
    free(roots); free(live);
    if (s) { mn__error(g->status ? g->status : s, "%s", g->msg); mn_exec_free(ex); return NULL; }
    return ex;
}

void mn_exec_free(mn_exec *ex)
{
    if (!ex) return;
    for (int v = 0; ex->vals && v < ex->nvals; v++)
        if (ex->vals[v].kind == MN_VAL_INPUT) free(ex->vals[v].t.data);
    for (int s = 0; ex->steps && s < ex->nsteps; s++) { free(ex->steps[s].in); free(ex->steps[s].tin); free(ex->steps[s].xout); mn__fused_free(ex->steps[s].fused); }
    free(ex->vals); free(ex->val_of); free(ex->steps); free(ex->sinks); free(ex->arena);
    free(ex->keep); free(ex->stores); free(ex->level_start); free(ex->level_split);
    free(ex->prof_step); free(ex->prof_level);
    free(ex);
}

/* ---- run ---- */

static mn_value *find_input(mn_exec *ex, const char *name)
{
    for (int v = 0; v < ex->nvals; v++)
        if (ex->vals[v].kind == MN_VAL_INPUT && strcmp(ex->vals[v].node->name, name) == 0) return &ex->vals[v];
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

/* Runs one kernel with `threads` threads; on failure writes the message to msg. */
static mn_status run_step(mn_exec *ex, const mn_step *st, int threads, char *msg, size_t mlen)
{
    const mn_op_def *op = st->node->op;
    mn_tensor *out = &ex->vals[st->out].t;
    if (ex->vals[st->out].kind == MN_VAL_ALIAS) return MN_OK;      /* a view: nothing to compute */
    char detail[512] = "";
    mn_kernel_ctx c = { .nin = st->nin, .in = st->tin, .out = out, .attrs = st->node->attrs, .accumulate = st->accumulate,
                        .nthreads = threads, .seed = mn__run_seed(ex->g->seed, ex->step), .node_id = st->node->id,
                        .work = st->work >= 0 ? ex->arena + ex->stores[st->work].offset : NULL, .work_bytes = st->work_bytes,
                        .msg = detail, .msglen = sizeof detail };
    double t0 = ex->prof_step ? omp_get_wtime() : 0;
    mn_status s;
    if (st->fused) {
        float *xout[MN_FUSE_MAX_MEMBERS];
        for (int k = 0; k < st->nxout; k++) xout[k] = mn_f32(&ex->vals[st->xout[k]].t);
        s = mn__fused_forward(st->fused, &c, xout);
    } else s = op->forward(&c);
    if (ex->prof_step) ex->prof_step[st - ex->steps] += omp_get_wtime() - t0;
    if (s) snprintf(msg, mlen, "%s%s \"%s\": %s", st->fused ? "fused group ending in " : "", op->name, st->node->name, detail[0] ? detail : mn_status_message(s));
    return s;
}

/* One level: its small steps side by side, one thread each (OpenBLAS runs
 * single-threaded inside a parallel region), and its big steps too when the
 * level splits its threads between them; the big steps otherwise run one
 * after another with every thread. The first failing step (in schedule
 * order) wins. */
static mn_status run_level(mn_exec *ex, int l)
{
    int a = ex->level_start[l], b = ex->level_start[l + 1], nsmall = 0, first_err = b;
    mn_status err = MN_OK;
    for (int s = a; s < b; s++) nsmall += !ex->steps[s].big;
    bool split = ex->level_split[l], together = ex->nthreads > 1 && (split || nsmall > 1);
    if (together) {
        #pragma omp parallel for schedule(dynamic, 1) num_threads(ex->nthreads)
        for (int s = a; s < b; s++) {
            if (ex->steps[s].big && !split) continue;
            char msg[1024];
            mn_status st = run_step(ex, &ex->steps[s], 1, msg, sizeof msg);
            if (st) {
                #pragma omp critical(mn_exec_error)
                if (s < first_err) { first_err = s; err = st; snprintf(ex->msg, sizeof ex->msg, "%s", msg); }
            }
        }
    }
    for (int s = a; s < b && !err; s++) {
        if (together && (split || !ex->steps[s].big)) continue;      /* ran above */
        err = run_step(ex, &ex->steps[s], ex->nthreads, ex->msg, sizeof ex->msg);
    }
    if (err) mn__error(err, "%s", ex->msg);
    return err;
}

static void accumulate(mn_exec *ex, const mn_sink *k)
{
    if (k->direct) return;                          /* its step added it already */
    const float *src = mn_f32(&ex->vals[k->value].t);
    mn_tensor *gt = mn_params_grad(ex->g->P, k->param);
    float *dst = mn_f32(gt);
    int64_t n = mn_tensor_numel(gt);
    #pragma omp parallel for if (n > MN_GRAIN) num_threads(ex->nthreads) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

mn_status mn_exec_run(mn_exec *ex)
{
    if (!ex) return mn__error(MN_ERR_MISUSE, "run: NULL executable");
    ex->msg[0] = 0;
    mn__blas_threads(ex->nthreads);
    mn__bind_team(ex->nthreads);
    int k = 0;
    bool prof = ex->prof_step != NULL;
    double t0 = prof ? omp_get_wtime() : 0, tl = t0;
    for (int l = 0; l < ex->nlevels; l++) {
        mn_status st = run_level(ex, l);
        if (st) return st;
        double ts = prof ? omp_get_wtime() : 0;
        for (; k < ex->nsinks && ex->sinks[k].level <= l; k++) accumulate(ex, &ex->sinks[k]);
        if (prof) {
            double t = omp_get_wtime();
            ex->prof_level[l] += ts - tl;
            ex->prof_sinks += t - ts;
            tl = t;
        }
    }
    for (; k < ex->nsinks; k++) accumulate(ex, &ex->sinks[k]);
    if (prof) { double t = omp_get_wtime(); ex->prof_sinks += t - tl; ex->prof_wall += t - t0; ex->prof_runs++; }
    ex->step++;
    return MN_OK;
}

mn_status mn_exec_set_profiling(mn_exec *ex, bool on)
{
    if (!ex) return mn__error(MN_ERR_MISUSE, "profiling: NULL executable");
    free(ex->prof_step); free(ex->prof_level);
    ex->prof_step = ex->prof_level = NULL;
    ex->prof_sinks = ex->prof_wall = 0;
    ex->prof_runs = 0;
    if (!on) return MN_OK;
    ex->prof_step = calloc((size_t)ex->nsteps + 1, sizeof *ex->prof_step);
    ex->prof_level = calloc((size_t)ex->nlevels + 1, sizeof *ex->prof_level);
    if (!ex->prof_step || !ex->prof_level) {
        free(ex->prof_step); free(ex->prof_level);
        ex->prof_step = ex->prof_level = NULL;
        return mn__error(MN_ERR_NOMEM, "profiling: out of memory");
    }
    return MN_OK;
}

mn_status mn_exec_profile_steps(const mn_exec *ex, FILE *f)
{
    if (!ex || !f) return mn__error(MN_ERR_MISUSE, "profile steps: NULL argument");
    if (!ex->prof_step || ex->prof_runs == 0) return mn__error(MN_ERR_MISUSE, "profile steps: no profiled run (mn_exec_set_profiling)");
    double runs = ex->prof_runs;
    fprintf(f, "level\tstep\top\tnode\tshape\tbig\tsplit\tms\tlevel_ms\n");
    for (int l = 0; l < ex->nlevels; l++)
        for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
            const mn_step *st = &ex->steps[s];
            char shape[96];
            fprintf(f, "%d\t%d\t%s\t%s\t%s\t%d\t%d\t%.4f\t%.4f\n", l, s, st->fused ? "fused" : st->node->op->name, st->node->name,
                    mn_shape_str(st->node->desc.shape, shape, sizeof shape), st->big, ex->level_split[l],
                    1e3 * ex->prof_step[s] / runs, 1e3 * ex->prof_level[l] / runs);
        }
    return ferror(f) ? mn__error(MN_ERR_IO, "profile steps: write failed") : MN_OK;
}

static int by_ms(const void *a, const void *b)
{
    const mn_op_time *x = a, *y = b;
    return (x->ms < y->ms) - (x->ms > y->ms);
}

int mn_exec_profile(const mn_exec *ex, mn_op_time *rows, int max, mn_profile_summary *sum)
{
    if (!ex || !ex->prof_step || ex->prof_runs == 0) return 0;
    double runs = ex->prof_runs, ideal = 0;
    int n = 0, cap = ex->nsteps + 1;
    mn_op_time *t = calloc((size_t)cap, sizeof *t);
    if (!t) return 0;
    for (int l = 0; l < ex->nlevels; l++) {
        double big = 0, small = 0;
        int nsmall = 0;
        for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
            const mn_step *st = &ex->steps[s];
            if (ex->vals[st->out].kind == MN_VAL_ALIAS) continue;
            if (st->big) big += ex->prof_step[s]; else { small += ex->prof_step[s]; nsmall++; }
            const char *name = st->fused ? "fused elementwise" : st->node->op->name;
            int r = 0;
            while (r < n && strcmp(t[r].op, name) != 0) r++;
            if (r == n) t[n++] = (mn_op_time){ .op = name };
            t[r].calls++;
            t[r].ms += ex->prof_step[s];
        }
        int lanes = nsmall < ex->nthreads ? nsmall : ex->nthreads;
        if (ex->level_split && ex->level_split[l]) {        /* everything side by side */
            double top = 0;
            for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) if (ex->prof_step[s] > top) top = ex->prof_step[s];
            ideal += fmax(top, (big + small) / ex->nthreads);
        } else ideal += big + (lanes > 0 ? small / lanes : 0);
    }
    qsort(t, (size_t)n, sizeof *t, by_ms);
    for (int i = 0; i < n && i < max; i++) rows[i] = (mn_op_time){ t[i].op, t[i].calls, 1e3 * t[i].ms / runs };
    free(t);
    if (sum) {
        double levels = 0;
        for (int l = 0; l < ex->nlevels; l++) levels += ex->prof_level[l];
        *sum = (mn_profile_summary){ .runs = ex->prof_runs, .wall_ms = 1e3 * ex->prof_wall / runs,
                                     .kernel_ms = 1e3 * ideal / runs, .sync_ms = 1e3 * (levels - ideal) / runs,
                                     .sinks_ms = 1e3 * ex->prof_sinks / runs, .ops = n };
    }
    return n < max ? n : max;
}

mn_status mn_exec_verify(const mn_exec *ex)
{
    char msg[512];
    if (!ex) return mn__error(MN_ERR_MISUSE, "verify: NULL executable");
    mn_status s = mn__plan_verify(ex, msg, sizeof msg);
    return s ? mn__error(s, "memory plan is unsafe: %s", msg) : MN_OK;
}

void mn_exec_set_step(mn_exec *ex, uint64_t step) { if (ex) ex->step = step; }
uint64_t mn_exec_get_step(const mn_exec *ex) { return ex ? ex->step : 0; }

float mn_exec_loss(const mn_exec *ex)
{
    return ex && ex->loss >= 0 ? mn_f32(&ex->vals[ex->loss].t)[0] : 0.0f;
}

const mn_tensor *mn_exec_value(const mn_exec *ex, const mn_node *n)
{
    if (!ex || !n || n->g != ex->g || n->id >= ex->nnodes || ex->val_of[n->id] < 0) return NULL;
    if (ex->vals[ex->val_of[n->id]].kind == MN_VAL_FUSED) return NULL;      /* never stored */
    if (ex->vals[ex->val_of[n->id]].kind == MN_VAL_GRAD) return NULL;       /* added into the store's gradient */
    return &ex->vals[ex->val_of[n->id]].t;
}

const char *mn_exec_errmsg(const mn_exec *ex) { return !ex ? "NULL executable" : ex->msg[0] ? ex->msg : "ok"; }

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

/* Inputs in graph order, as views the caller may fill directly. */
int mn_exec_input_count(const mn_exec *ex)
{
    int n = 0;
    for (int v = 0; ex && v < ex->nvals; v++) n += ex->vals[v].kind == MN_VAL_INPUT;
    return n;
}

static const mn_value *input_at(const mn_exec *ex, int i)
{
    for (int v = 0; ex && v < ex->nvals; v++)
        if (ex->vals[v].kind == MN_VAL_INPUT && i-- == 0) return &ex->vals[v];
    return NULL;
}

const char *mn_exec_input_name(const mn_exec *ex, int i) { const mn_value *v = input_at(ex, i); return v ? v->node->name : NULL; }
const mn_tensor *mn_exec_input(const mn_exec *ex, int i) { const mn_value *v = input_at(ex, i); return v ? &v->t : NULL; }
