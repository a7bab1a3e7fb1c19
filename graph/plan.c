/* graph/plan.c: the memory planner and its verifier. Time is the level of
 * the parallel schedule: a value lives from its producer's level to its
 * last reader's level (values read after the run live past the last
 * level). Values that share bytes form one storage: aliases (reshape) and
 * in-place outputs, allowed only through the op's declared pair and only
 * when the input has no other reader at or after that level. Storages get
 * offsets in one arena by best fit, largest first, under two orders; the
 * smaller arena wins. Invariant (checked by mn__plan_verify): two storages
 * whose bytes overlap are never live at the same level. */
#include "exec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int level_of(const mn_exec *ex, int v) { return ex->vals[v].def >= 0 ? ex->steps[ex->vals[v].def].level : -1; }

/* Last level at which any member of each alias group is read; nlevels if
 * one is kept; and how many distinct steps read the group at that level. */
static void group_lifetimes(const mn_exec *ex, int *glast, int *gcount)
{
    for (int v = 0; v < ex->nvals; v++) { glast[v] = level_of(ex, v); gcount[v] = 0; }
    for (int v = 0; v < ex->nvals; v++)
        if (ex->keep[v]) glast[ex->vals[v].group] = ex->nlevels;
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        for (int k = 0; k < st->nin; k++) {
            int g = ex->vals[st->in[k]].group;
            bool seen = false;
            for (int j = 0; j < k; j++) seen |= ex->vals[st->in[j]].group == g;
            if (seen) continue;
            if (st->level > glast[g]) { glast[g] = st->level; gcount[g] = 0; }
            if (st->level == glast[g]) gcount[g]++;
        }
    }
}

static int new_storage(mn_exec *ex, int64_t bytes, int start)
{
    mn_storage *s = &ex->stores[ex->nstores];
    *s = (mn_storage){ .offset = 0, .bytes = (int64_t)MN__ALIGN_UP((size_t)bytes, MN_ALIGN), .start = start, .end = start };
    return ex->nstores++;
}

/* The input storage the step may overwrite, or -1. */
static int inplace_candidate(const mn_exec *ex, const mn_step *st, const int *glast, const int *gcount)
{
    int k = st->inplace;
    if (k < 0 || k >= st->nin) return -1;
    const mn_value *out = &ex->vals[st->out], *in = &ex->vals[st->in[k]];
    int g = in->group;
    if (ex->vals[g].kind != MN_VAL_ARENA || in->storage < 0) return -1;
    if (glast[g] != st->level || gcount[g] != 1) return -1;          /* read later, or concurrently */
    if (in->bytes != out->bytes) return -1;      /* same element count: input 0 is not broadcast */
    if (ex->stores[in->storage].bytes != (int64_t)MN__ALIGN_UP(out->bytes, MN_ALIGN)) return -1;
    return in->storage;
}

static void assign_storages(mn_exec *ex, const int *glast, const int *gcount)
{
    for (int v = 0; v < ex->nvals; v++) ex->vals[v].storage = -1;
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        mn_value *out = &ex->vals[st->out];
        if (out->kind == MN_VAL_ALIAS) out->storage = ex->vals[out->group].storage;
        else if (out->kind == MN_VAL_ARENA) {
            int ip = inplace_candidate(ex, st, glast, gcount);
            if (ip >= 0) ex->inplace_count++;
            out->storage = ip >= 0 ? ip : new_storage(ex, (int64_t)out->bytes, st->level);
        }
        st->work = st->work_bytes ? new_storage(ex, (int64_t)st->work_bytes, st->level) : -1;
    }
    for (int v = 0; v < ex->nvals; v++) {
        int sid = ex->vals[v].storage;
        if (sid >= 0 && glast[ex->vals[v].group] > ex->stores[sid].end) ex->stores[sid].end = glast[ex->vals[v].group];
    }
}

static bool overlap_time(const mn_storage *a, const mn_storage *b) { return a->start <= b->end && b->start <= a->end; }

static int cmp_off(const void *a, const void *b)
{
    const mn_storage *x = *(mn_storage *const *)a, *y = *(mn_storage *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Best fit in the given order; returns the arena size. Offsets land in off[]. */
static int64_t place(const mn_exec *ex, const int *order, int64_t *off)
{
    int n = ex->nstores;
    mn_storage *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    const mn_storage **near = malloc((size_t)(n ? n : 1) * sizeof *near);
    bool *done = calloc((size_t)(n ? n : 1), sizeof *done);
    int64_t top = 0;
    if (!tmp || !near || !done) { free(tmp); free(near); free(done); return -1; }
    memcpy(tmp, ex->stores, (size_t)n * sizeof *tmp);
    for (int i = 0; i < n; i++) {
        mn_storage *s = &tmp[order[i]];
        int m = 0;
        for (int j = 0; j < n; j++)
            if (done[j] && overlap_time(&tmp[j], s)) near[m++] = &tmp[j];
        qsort(near, (size_t)m, sizeof *near, cmp_off);
        int64_t cursor = 0, best = -1, best_gap = INT64_MAX;
        for (int j = 0; j < m; j++) {
            int64_t gap = near[j]->offset - cursor;
            if (gap >= s->bytes && gap < best_gap) { best = cursor; best_gap = gap; }
            if (near[j]->offset + near[j]->bytes > cursor) cursor = near[j]->offset + near[j]->bytes;
        }
        s->offset = best >= 0 ? best : cursor;
        if (s->offset + s->bytes > top) top = s->offset + s->bytes;
        done[order[i]] = true;
    }
    for (int i = 0; i < n; i++) off[i] = tmp[i].offset;
    free(tmp); free(near); free(done);
    return top;
}

static const mn_exec *sort_ex;
static int by_size(const void *a, const void *b)
{
    const mn_storage *x = &sort_ex->stores[*(const int *)a], *y = &sort_ex->stores[*(const int *)b];
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    return x->start - y->start;
}
static int by_length(const void *a, const void *b)
{
    const mn_storage *x = &sort_ex->stores[*(const int *)a], *y = &sort_ex->stores[*(const int *)b];
    int lx = x->end - x->start, ly = y->end - y->start;
    if (lx != ly) return lx > ly ? -1 : 1;
    return by_size(a, b);
}

static int64_t assign_offsets(mn_exec *ex)
{
    int n = ex->nstores;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int64_t *o1 = malloc((size_t)(n ? n : 1) * sizeof *o1), *o2 = malloc((size_t)(n ? n : 1) * sizeof *o2);
    int64_t best = -1;
    if (order && o1 && o2) {
        sort_ex = ex;
        for (int i = 0; i < n; i++) order[i] = i;
        qsort(order, (size_t)n, sizeof *order, by_size);
        int64_t a = place(ex, order, o1);
        for (int i = 0; i < n; i++) order[i] = i;
        qsort(order, (size_t)n, sizeof *order, by_length);
        int64_t b = place(ex, order, o2);
        const int64_t *win = (b >= 0 && (a < 0 || b < a)) ? o2 : o1;
        best = (b >= 0 && (a < 0 || b < a)) ? b : a;
        for (int i = 0; i < n && best >= 0; i++) ex->stores[i].offset = win[i];
    }
    free(order); free(o1); free(o2);
    return best;
}

static void stats(mn_exec *ex)
{
    int64_t *delta = calloc((size_t)ex->nlevels + 2, sizeof *delta), live = 0;
    ex->naive_bytes = ex->lower_bound = 0;
    for (int v = 0; v < ex->nvals; v++)
        if (ex->vals[v].kind == MN_VAL_ARENA) ex->naive_bytes += (int64_t)MN__ALIGN_UP(ex->vals[v].bytes, MN_ALIGN);
    for (int s = 0; s < ex->nsteps; s++) ex->naive_bytes += (int64_t)MN__ALIGN_UP(ex->steps[s].work_bytes, MN_ALIGN);
    for (int i = 0; delta && i < ex->nstores; i++) {
        delta[ex->stores[i].start] += ex->stores[i].bytes;
        delta[ex->stores[i].end + 1] -= ex->stores[i].bytes;
    }
    for (int l = 0; delta && l <= ex->nlevels; l++) {
        live += delta[l];
        if (live > ex->lower_bound) ex->lower_bound = live;
    }
    free(delta);
}

static mn_status workspaces(mn_exec *ex)
{
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        const mn_node *n = st->node;
        st->work_bytes = 0;
        if (n->op->workspace) st->work_bytes = n->op->workspace(n->in_desc, n->nin, &n->desc, n->attrs);
    }
    return MN_OK;
}

static mn_status bind(mn_exec *ex)
{
    mn_graph *g = ex->g;
    ex->arena = mn__aligned_alloc((size_t)ex->arena_bytes);
    if (!ex->arena) return mn__graph_fail(g, MN_ERR_NOMEM, "plan: cannot allocate an arena of %lld bytes", (long long)ex->arena_bytes);
    for (int v = 0; v < ex->nvals; v++) {
        mn_value *x = &ex->vals[v];
        switch (x->kind) {
        case MN_VAL_ARENA: x->t.data = ex->arena + ex->stores[x->storage].offset; break;
        case MN_VAL_PARAM: x->t.data = mn_params_value(g->P, x->node->param)->data; break;
        case MN_VAL_CONST: x->t.data = x->node->cdata; break;
        case MN_VAL_INPUT:
            if (!(x->t.data = mn__aligned_alloc(x->bytes))) return mn__graph_fail(g, MN_ERR_NOMEM, "plan: out of memory");
            memset(x->t.data, 0, x->bytes);
            break;
        case MN_VAL_ALIAS: x->t.data = (char *)ex->vals[x->alias_of].t.data + x->alias_off; break;
        case MN_VAL_FUSED: x->t.data = NULL; break;
        }
    }
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) ex->steps[s].tin[k] = ex->vals[ex->steps[s].in[k]].t;
    return MN_OK;
}

mn_status mn__plan(mn_exec *ex)
{
    for (int v = 0; v < ex->nvals; v++)
        ex->vals[v].group = ex->vals[v].kind == MN_VAL_ALIAS ? ex->vals[ex->vals[v].alias_of].group : v;
    int *glast = malloc((size_t)(ex->nvals ? ex->nvals : 1) * sizeof *glast);
    int *gcount = malloc((size_t)(ex->nvals ? ex->nvals : 1) * sizeof *gcount);
    ex->stores = calloc((size_t)(ex->nvals + ex->nsteps + 1), sizeof *ex->stores);
    mn_status s = glast && gcount && ex->stores ? workspaces(ex) : mn__graph_fail(ex->g, MN_ERR_NOMEM, "plan: out of memory");
    if (!s) {
        group_lifetimes(ex, glast, gcount);
        assign_storages(ex, glast, gcount);
        stats(ex);
        ex->arena_bytes = assign_offsets(ex);
        if (ex->arena_bytes < 0) s = mn__graph_fail(ex->g, MN_ERR_NOMEM, "plan: out of memory");
    }
    free(glast); free(gcount);
    return s ? s : bind(ex);
}

/* ---- verifier: recomputes lifetimes from the steps and the bound pointers ---- */

typedef struct { uintptr_t lo, hi; int def_level, def_step, group; } span;

static int by_lo(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* May `later` (produced at step ps) overwrite group g's bytes? Only if every
 * reader of g is at an earlier level, or it is ps itself reading g through
 * its declared in-place input while no other step reads g at that level or after. */
static bool may_reuse(const mn_exec *ex, int g, int ps, const int *glast_any)
{
    const mn_step *p = &ex->steps[ps];
    if (glast_any[g] < p->level) return true;
    if (glast_any[g] > p->level) return false;
    int k = p->inplace;
    if (k < 0 || k >= p->nin || ex->vals[p->in[k]].group != g) return false;
    if (ex->vals[p->in[k]].bytes != ex->vals[p->out].bytes) return false;   /* a broadcast input cannot be overwritten */
    for (int s = ex->level_start[p->level]; s < ex->level_start[p->level + 1]; s++) {
        if (s == ps) continue;
        for (int j = 0; j < ex->steps[s].nin; j++)
            if (ex->vals[ex->steps[s].in[j]].group == g) return false;
    }
    return true;
}

mn_status mn__plan_verify(const mn_exec *ex, char *msg, size_t mlen)
{
    int n = ex->nvals + ex->nsteps;
    span *sp = malloc((size_t)(n ? n : 1) * sizeof *sp);
    int *glast = malloc((size_t)(ex->nvals ? ex->nvals : 1) * sizeof *glast);
    if (!sp || !glast) { free(sp); free(glast); return MN_ERR_NOMEM; }
    for (int v = 0; v < ex->nvals; v++) glast[v] = level_of(ex, v);
    for (int v = 0; v < ex->nvals; v++) if (ex->keep[v]) glast[ex->vals[v].group] = ex->nlevels;
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) {
            int g = ex->vals[ex->steps[s].in[k]].group;
            if (ex->steps[s].level > glast[g]) glast[g] = ex->steps[s].level;
        }
    int m = 0;
    uintptr_t base = (uintptr_t)ex->arena, end = base + (uintptr_t)ex->arena_bytes;
    mn_status st = MN_OK;
    for (int v = 0; v < ex->nvals; v++) {
        const mn_value *x = &ex->vals[v];
        if (x->kind != MN_VAL_ARENA || !x->bytes) continue;
        uintptr_t lo = (uintptr_t)x->t.data;
        if (lo < base || lo + x->bytes > end || lo % MN_ALIGN) {
            snprintf(msg, mlen, "value \"%s\" lies outside the arena or is misaligned", x->node->name);
            st = MN_ERR_INVALID;
        }
        sp[m++] = (span){ lo, lo + x->bytes, level_of(ex, v), x->def, x->group };
    }
    for (int s = 0; s < ex->nsteps; s++)
        if (ex->steps[s].work >= 0) {
            uintptr_t lo = base + (uintptr_t)ex->stores[ex->steps[s].work].offset;
            sp[m++] = (span){ lo, lo + ex->steps[s].work_bytes, ex->steps[s].level, s, -1 - s };
        }
    qsort(sp, (size_t)m, sizeof *sp, by_lo);
    for (int i = 0; i < m && !st; i++)
        for (int j = i + 1; j < m && sp[j].lo < sp[i].hi && !st; j++) {
            const span *a = &sp[i], *b = &sp[j];
            if (a->group == b->group) continue;
            const span *early = a->def_step <= b->def_step ? a : b, *late = early == a ? b : a;
            bool ok;
            if (early->group < 0 && late->group < 0) ok = early->def_level != late->def_level;   /* two workspaces */
            else if (early->group < 0) ok = late->def_level > early->def_level;                  /* workspace, then a value */
            else if (late->group < 0) ok = glast[early->group] < late->def_level;               /* a value, then a workspace */
            else ok = may_reuse(ex, early->group, late->def_step, glast);
            if (!ok) {
                snprintf(msg, mlen, "\"%s\" and \"%s\" share bytes while both may be live (levels %d and %d)",
                         early->group >= 0 ? ex->vals[early->group].node->name : "workspace",
                         late->group >= 0 ? ex->vals[late->group].node->name : "workspace", early->def_level, late->def_level);
                st = MN_ERR_INVALID;
            }
        }
    free(sp); free(glast);
    return st;
}
