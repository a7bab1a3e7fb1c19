/* graph/rebatch.c: one model at several batch sizes. Shapes are static, so
 * N items in batches of B need a second executable for the N % B left over;
 * mn_rebatch builds the model function's graph for each batch size asked
 * for, on the caller's parameter store (every executable reads and updates
 * the same weights), compiles it once and keeps it. Uses only the public
 * builder and compiler: a model function is ordinary user code. */
#include "mnemo.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t batch;
    mn_graph *g;
    mn_exec *ex;
    mn_model_nodes nodes;
} rebatch_entry;

struct mn_rebatch {
    mn_params *P;
    mn_model_fn build;
    void *ctx;
    mn_compile_opts opts;
    rebatch_entry *v;
    int n, cap;
};

mn_rebatch *mn_rebatch_new(mn_params *P, mn_model_fn build, void *ctx, const mn_compile_opts *opts)
{
    if (!P || !build) {
        mn_set_error(MN_ERR_INVALID, "mn_rebatch_new: %s is NULL", P ? "the model function" : "the parameter store");
        return NULL;
    }
    mn_rebatch *r = calloc(1, sizeof *r);
    if (!r) {
        mn_set_error(MN_ERR_NOMEM, "mn_rebatch_new: out of memory");
        return NULL;
    }
    r->P = P;
    r->build = build;
    r->ctx = ctx;
    if (opts) r->opts = *opts;
    return r;
}

static rebatch_entry *find(mn_rebatch *r, int64_t batch)
{
    for (int i = 0; i < r->n; i++)
        if (r->v[i].batch == batch) return &r->v[i];
    return NULL;
}

/* Builds and compiles the graph of `batch` items into e (freed on failure). */
static mn_status build(mn_rebatch *r, int64_t batch, rebatch_entry *e)
{
    memset(e, 0, sizeof *e);
    e->batch = batch;
    e->g = mn_graph_new(r->P);
    if (!e->g) return mn_set_error(MN_ERR_NOMEM, "rebatch: out of memory");
    e->nodes = r->build(e->g, batch, r->ctx);
    mn_compile_opts o = r->opts;
    o.outputs = e->nodes.outputs;
    o.noutputs = e->nodes.noutputs;
    mn_status s = mn_graph_status(e->g);
    if (!s && (e->nodes.noutputs < 0 || e->nodes.noutputs > MN_MODEL_MAX_OUTPUTS))
        s = mn_graph_fail(e->g, MN_ERR_INVALID, "rebatch: the model function returned %d outputs (0 to %d)", e->nodes.noutputs,
                          MN_MODEL_MAX_OUTPUTS);
    if (!s && !e->nodes.loss && !e->nodes.noutputs)
        s = mn_graph_fail(e->g, MN_ERR_INVALID, "rebatch: the model function returned neither a loss nor outputs");
    if (!s) e->ex = mn_compile(e->g, e->nodes.loss, &o);
    if (!e->ex) {
        s = mn_set_error(mn_graph_status(e->g) ? mn_graph_status(e->g) : MN_ERR_INVALID, "batch of %lld: %s", (long long)batch,
                         mn_graph_errmsg(e->g));
        mn_graph_free(e->g);
        memset(e, 0, sizeof *e);
    }
    return s;
}

mn_exec *mn_rebatch_get(mn_rebatch *r, int64_t batch, const mn_model_nodes **nodes)
{
    if (!r || batch < 1) {
        mn_set_error(MN_ERR_INVALID, "mn_rebatch_get: %s", r ? "the batch must be at least 1" : "no rebatch");
        return NULL;
    }
    rebatch_entry *e = find(r, batch);
    if (!e) {
        if (r->n == r->cap) {
            int cap = r->cap ? 2 * r->cap : 4;
            rebatch_entry *v = realloc(r->v, (size_t)cap * sizeof *v);
            if (!v) {
                mn_set_error(MN_ERR_NOMEM, "rebatch: out of memory");
                return NULL;
            }
            r->v = v;
            r->cap = cap;
        }
        if (build(r, batch, &r->v[r->n])) return NULL;
        e = &r->v[r->n++];
    }
    if (nodes) *nodes = &e->nodes;
    return e->ex;
}

int mn_rebatch_count(const mn_rebatch *r) { return r ? r->n : 0; }

void mn_rebatch_free(mn_rebatch *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        mn_exec_free(r->v[i].ex);
        mn_graph_free(r->v[i].g);
    }
    free(r->v);
    free(r);
}
