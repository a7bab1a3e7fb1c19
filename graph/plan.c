/* graph/plan.c: the memory planner and its verifier. Time is the level of
 * the parallel schedule: a value lives from its producer's level to its
 * last reader's level (values read after the run live past the last
 * level). Values that share bytes form one storage: aliases (reshape) and
 * in-place outputs, allowed only through the op's declared pair and only
 * when the input has no other reader at or after that level. Storages get
 * offsets in one arena by best fit, largest first, under two orders; the
 * smaller arena wins. Invariant (checked by verify.c): two storages
 * whose bytes overlap are never live at the same level. */
#include "exec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int level_of(const mn_exec *ex, int v) { return ex->vals[v].def >= 0 ? ex->steps[ex->vals[v].def].level : -1; }
int mn__value_level(const mn_exec *ex, int v) { return level_of(ex, v); }

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

/* Follows zero-offset views of the same size (reshapes) to the value that owns the bytes. */
static int resolve(const mn_exec *ex, int v)
{
    for (;;) {
        int64_t off;
        int src = mn__kind(&ex->vals[v]) == MN_VAL_ALIAS ? mn__alias_src(&ex->vals[v], &off) : -1;
        if (src < 0 || off != 0 || ex->vals[src].bytes != ex->vals[v].bytes) return v;
        v = src;
    }
}

/* Is the piece view contiguous (the piece's own row-major strides)? */
static bool contiguous(mn_shape s, const int64_t *st)
{
    int64_t acc = 1;
    for (int d = s.ndim - 1; d >= 0; d--) {
        if (s.d[d] != 1 && st[d] != acc) return false;
        acc *= s.d[d];
    }
    return true;
}

/* A strided piece must come from a fused step (whose kernel scatters it)
 * and be read by nothing but the op placing it; returns its output slot in
 * that step (0: the root, 1 + k: extra output k) or -1. */
static int scatter_slot(const mn_exec *ex, int v, const int *nread)
{
    const mn_value *x = &ex->vals[v];
    if (x->def < 0 || !ex->steps[x->def].fused || nread[v] != 1) return -1;
    const mn_step *p = &ex->steps[x->def];
    if (p->out == v) return 0;
    for (int k = 0; k < p->nxout; k++) if (p->xout[k] == v) return 1 + k;
    return -1;
}

/* Concat in place: when the op's record says where input k lies in its
 * output (`input_view`), the value producing input k is written straight
 * there (its bytes become part of the output's storage, its lifetime part
 * of the output's), and the concat copies only the pieces that could not be
 * placed. A piece qualifies when it is an arena value of its own (not a
 * view, parameter or input) that no other concat holds; a strided piece
 * also needs scatter_slot. A placed concat may itself be a piece of another
 * (nested hosts). A second concat of exactly the same contiguous pieces
 * becomes a view of the first (the gradient pieces of an unrolled RNN feed
 * two concats: the weight-gradient GEMM's and the input projection's). */
static void place_pieces(mn_exec *ex, const bool *veto, const int *nread, bool fwd_first)
{
    for (int v = 0; v < ex->nvals; v++) {
        mn_value *x = &ex->vals[v];
        x->made_view = false; x->view_of = -1; x->view_off = 0; x->scatter = false;
        x->into = -1; x->sub_off = 0; x->host = false;
    }
    ex->placed_count = 0;
    int64_t off, st[MN_MAX_DIMS];
    for (int s = 0; s < 2 * ex->nsteps; s++) {      /* fwd_first: forward concats, then backward ones; else in step order */
        const mn_step *stp = &ex->steps[s % ex->nsteps];
        const mn_node *n = stp->node;
        mn_value *o = &ex->vals[stp->out];
        if (fwd_first ? n->backward != (s >= ex->nsteps) : s >= ex->nsteps) continue;
        if (!n->op->traits.input_view || stp->fused || mn__kind(o) != MN_VAL_ARENA || stp->nin < 1 || veto[stp->out]) continue;
        /* all pieces already placed, in this order and back to back, in one host: a view of those bytes */
        int h = -1;
        int64_t base = 0;
        bool same = true;
        for (int k = 0; k < stp->nin && same; k++) {
            const mn_value *r = &ex->vals[resolve(ex, stp->in[k])];
            same = n->op->traits.input_view(n->in_desc, n->nin, &n->desc, n->attrs, k, &off, st) && contiguous(n->in_desc[k].shape, st);
            if (k == 0) { h = r->into; base = r->sub_off; }
            same = same && h >= 0 && r->into == h && r->sub_off == base + off * 4;
        }
        if (same && h >= 0 && base + (int64_t)o->bytes <= (int64_t)ex->vals[h].bytes) {
            o->made_view = true; o->view_of = h; o->view_off = base;
            ex->placed_count++;
            continue;
        }
        int placed = 0;
        for (int k = 0; k < stp->nin; k++) {
            int r = resolve(ex, stp->in[k]);
            mn_value *x = &ex->vals[r];
            if (!n->op->traits.input_view(n->in_desc, n->nin, &n->desc, n->attrs, k, &off, st)) continue;
            if (mn__kind(x) != MN_VAL_ARENA || x->def < 0 || x->into >= 0 || r == stp->out || veto[r]) continue;
            if (!contiguous(n->in_desc[k].shape, st)) {
                if (x->host || r != stp->in[k] || scatter_slot(ex, r, nread) < 0) continue;
                x->scatter = true;
                memcpy(x->scatter_st, st, sizeof x->scatter_st);
            }
            x->into = stp->out; x->sub_off = off * 4;
            placed++;
        }
        if (placed) { o->host = true; ex->placed_count += placed; }
    }
}

/* The outermost host holding v (v itself if it is not placed), and v's byte offset in it. */
int mn__top_host(const mn_exec *ex, int v, int64_t *off)
{
    int64_t o = 0;
    while (ex->vals[v].into >= 0) { o += ex->vals[v].sub_off; v = ex->vals[v].into; }
    if (off) *off = o;
    return v;
}

int mn__step_inplace(const mn_step *st)
{
    if (st->accumulate) return -1;
    return st->fused ? mn__fused_inplace(st->fused) : st->node->op->inplace;
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
    int k = mn__step_inplace(st);
    if (k < 0 || k >= st->nin) return -1;
    const mn_value *out = &ex->vals[st->out], *in = &ex->vals[st->in[k]];
    int g = in->group;
    if (mn__kind(&ex->vals[g]) != MN_VAL_ARENA || in->storage < 0) return -1;
    if (glast[g] != st->level || gcount[g] != 1) return -1;          /* read later, or concurrently */
    if (in->bytes != out->bytes) return -1;      /* same element count: input 0 is not broadcast */
    if (ex->stores[in->storage].bytes != (int64_t)MN__ALIGN_UP(out->bytes, MN_ALIGN)) return -1;
    return in->storage;
}

static void assign_storages(mn_exec *ex, const int *glast, const int *gcount)
{
    for (int v = 0; v < ex->nvals; v++) ex->vals[v].storage = -1;
    /* concat hosts first: live from their first piece's level */
    for (int v = 0; v < ex->nvals; v++)
        if (ex->vals[v].host && ex->vals[v].into < 0) ex->vals[v].storage = new_storage(ex, (int64_t)ex->vals[v].bytes, level_of(ex, v));
    for (int v = 0; v < ex->nvals; v++) {
        if (ex->vals[v].into < 0) continue;
        int h = mn__top_host(ex, v, NULL);
        ex->vals[v].storage = ex->vals[h].storage;
        if (level_of(ex, v) < ex->stores[ex->vals[h].storage].start) ex->stores[ex->vals[h].storage].start = level_of(ex, v);
    }
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        mn_value *out = &ex->vals[st->out];
        if (mn__kind(out) == MN_VAL_ALIAS) out->storage = ex->vals[out->group].storage;
        else if (out->host || out->into >= 0) { /* placed above */ }
        else if (mn__kind(out) == MN_VAL_ARENA) {
            int ip = inplace_candidate(ex, st, glast, gcount);
            if (ip >= 0) ex->inplace_count++;
            out->storage = ip >= 0 ? ip : new_storage(ex, (int64_t)out->bytes, st->level);
        }
        for (int k = 0; k < st->nxout; k++) {            /* a fused step's extra outputs: storages of their own */
            mn_value *x = &ex->vals[st->xout[k]];
            if (!x->host && x->into < 0) x->storage = new_storage(ex, (int64_t)x->bytes, st->level);
        }
        st->work = st->work_bytes ? new_storage(ex, (int64_t)st->work_bytes, st->level) : -1;
    }
    for (int v = 0; v < ex->nvals; v++) {
        int sid = ex->vals[v].storage;
        if (sid >= 0 && glast[ex->vals[v].group] > ex->stores[sid].end) ex->stores[sid].end = glast[ex->vals[v].group];
    }
}


/* A placed storage in the address-ordered list of place(). */
typedef struct { int64_t offset, bytes; int start, end, index; } placed_store;

/* Where storage `index` at `offset` goes in the list (sorted by offset,
 * then index): after every entry that sorts before it. */
static int insert_at(const placed_store *list, int m, int64_t offset, int index)
{
    int lo = 0, hi = m;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        bool before = list[mid].offset < offset || (list[mid].offset == offset && list[mid].index < index);
        if (before) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* Best fit in the given order; returns the arena size. Offsets land in
 * off[]. Each storage goes into the smallest gap between the placed
 * storages live at the same time (in address order), else above them.
 * The placed ones are kept sorted by (offset, index), so finding those
 * takes one pass and no sort (the plan of a 512-step LSTM spent 2 s
 * sorting them per storage). */
static int64_t place(const mn_exec *ex, const int *order, int64_t *off)
{
    int n = ex->nstores, m = 0;
    placed_store *list = malloc((size_t)(n ? n : 1) * sizeof *list);
    int64_t top = 0;
    if (!list) return -1;
    for (int i = 0; i < n; i++) {
        const mn_storage *s = &ex->stores[order[i]];
        int64_t cursor = 0, best = -1, best_gap = INT64_MAX;
        for (int j = 0; j < m; j++) {
            const placed_store *p = &list[j];
            if (p->start > s->end || s->start > p->end) continue;       /* not live at the same time */
            int64_t gap = p->offset - cursor;
            if (gap >= s->bytes && gap < best_gap) { best = cursor; best_gap = gap; }
            if (p->offset + p->bytes > cursor) cursor = p->offset + p->bytes;
        }
        int64_t at = best >= 0 ? best : cursor;
        off[order[i]] = at;
        if (at + s->bytes > top) top = at + s->bytes;
        int k = insert_at(list, m, at, order[i]);
        memmove(&list[k + 1], &list[k], (size_t)(m - k) * sizeof *list);
        list[k] = (placed_store){ at, s->bytes, s->start, s->end, order[i] };
        m++;
    }
    free(list);
    return top;
}

/* Sort keys of one storage: the comparators see only their arguments. */
typedef struct { int64_t bytes; int start, length, index; } store_key;

static int by_size(const void *a, const void *b)
{
    const store_key *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    return x->start - y->start;
}
static int by_length(const void *a, const void *b)
{
    const store_key *x = a, *y = b;
    if (x->length != y->length) return x->length > y->length ? -1 : 1;
    return by_size(a, b);
}

/* The storages' indices in the order `cmp` gives. */
static void sort_order(const mn_exec *ex, store_key *keys, int *order, int (*cmp)(const void *, const void *))
{
    for (int i = 0; i < ex->nstores; i++) {
        const mn_storage *st = &ex->stores[i];
        keys[i] = (store_key){ st->bytes, st->start, st->end - st->start, i };
    }
    qsort(keys, (size_t)ex->nstores, sizeof *keys, cmp);
    for (int i = 0; i < ex->nstores; i++) order[i] = keys[i].index;
}

static int64_t assign_offsets(mn_exec *ex)
{
    int n = ex->nstores;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    store_key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    int64_t *o1 = malloc((size_t)(n ? n : 1) * sizeof *o1), *o2 = malloc((size_t)(n ? n : 1) * sizeof *o2);
    int64_t best = -1;
    if (order && keys && o1 && o2) {
        sort_order(ex, keys, order, by_size);
        int64_t a = place(ex, order, o1);
        sort_order(ex, keys, order, by_length);
        int64_t b = place(ex, order, o2);
        const int64_t *win = (b >= 0 && (a < 0 || b < a)) ? o2 : o1;
        best = (b >= 0 && (a < 0 || b < a)) ? b : a;
        for (int i = 0; i < n && best >= 0; i++) ex->stores[i].offset = win[i];
    }
    free(order); free(keys); free(o1); free(o2);
    return best;
}

static void stats(mn_exec *ex)
{
    int64_t *delta = calloc((size_t)ex->nlevels + 2, sizeof *delta), live = 0;
    ex->naive_bytes = ex->lower_bound = 0;
    for (int v = 0; v < ex->nvals; v++)
        if (mn__kind(&ex->vals[v]) == MN_VAL_ARENA) ex->naive_bytes += (int64_t)MN__ALIGN_UP(ex->vals[v].bytes, MN_ALIGN);
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

/* The threads a step runs with (run.c's run_level): all, alone; else one. */
static int step_threads(const mn_exec *ex, const mn_step *st) { return st->solo ? ex->nthreads : 1; }

static mn_status workspaces(mn_exec *ex)
{
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        const mn_node *n = st->node;
        st->work_bytes = 0;
        if (n->op->traits.workspace) st->work_bytes = n->op->traits.workspace(n->in_desc, n->nin, &n->desc, n->attrs);
        size_t state = st->fused ? 0 : mn__op_state_bytes(&ex->op_states, n->op, n->in_desc, n->nin, &n->desc, n->attrs, st->accumulate,
                                                          step_threads(ex, st));
        if (state > st->work_bytes) st->work_bytes = state;
    }
    return MN_OK;
}

/* Each step's op state (a oneDNN primitive whose scratchpad is the step's
 * planned workspace), made once the plan is final; steps of one product
 * kind share its primitive (ops/op.h), never a scratchpad: each has its
 * own workspace. Stats: the states, the descriptors asked of oneDNN in
 * this compile (once per kind, however many plans the budget search
 * made), the primitives made. */
static void states(mn_exec *ex)
{
    int n = 0, descs, prims;
    for (int s = 0; s < ex->nsteps; s++) {
        mn_step *st = &ex->steps[s];
        const mn_node *nd = st->node;
        if (!st->fused && st->work_bytes && !st->state)
            st->state = mn__op_state_new(&ex->op_states, nd->op, nd->in_desc, nd->nin, &nd->desc, nd->attrs, st->accumulate,
                                         step_threads(ex, st), st->work_bytes);
        n += st->state != NULL;
    }
    mn__op_states_counts(ex->op_states, &descs, &prims);
    mn__stat(ex, "plan.op_states", n);
    mn__stat(ex, "plan.op_state_descs", descs);
    mn__stat(ex, "plan.op_state_primitives", prims);
}

static mn_status bind(mn_exec *ex)
{
    mn_graph *g = ex->g;
    ex->arena = mn__aligned_alloc((size_t)ex->arena_bytes);
    if (!ex->arena) return mn__graph_fail(g, MN_ERR_NOMEM, "plan: cannot allocate an arena of %lld bytes", (long long)ex->arena_bytes);
    for (int v = 0; v < ex->nvals; v++) {
        mn_value *x = &ex->vals[v];
        switch (mn__kind(x)) {
        case MN_VAL_ARENA: {
            int64_t off;
            mn__top_host(ex, v, &off);
            x->t.data = ex->arena + ex->stores[x->storage].offset + off;
            break;
        }
        case MN_VAL_PARAM: x->t.data = mn_params_value(g->P, x->node->param)->data; break;
        case MN_VAL_CONST: x->t.data = x->node->cdata; break;
        case MN_VAL_INPUT:
            if (!(x->t.data = mn__aligned_alloc(x->bytes))) return mn__graph_fail(g, MN_ERR_NOMEM, "plan: out of memory");
            memset(x->t.data, 0, x->bytes);
            break;
        case MN_VAL_ALIAS: break;                         /* below: its source may come later */
        case MN_VAL_FUSED: x->t.data = NULL; break;
        case MN_VAL_GRAD: x->t.data = mn_params_grad(g->P, x->grad_param)->data; break;
        }
    }
    for (int v = 0; v < ex->nvals; v++) {               /* views: through their chain of sources */
        if (mn__kind(&ex->vals[v]) != MN_VAL_ALIAS) continue;
        int64_t off = 0, o;
        int r = v;
        while (mn__kind(&ex->vals[r]) == MN_VAL_ALIAS) {
            r = mn__alias_src(&ex->vals[r], &o);
            off += o;
        }
        ex->vals[v].t.data = (char *)ex->vals[r].t.data + off;
    }
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) ex->steps[s].tin[k] = ex->vals[ex->steps[s].in[k]].t;
    states(ex);
    return MN_OK;
}

/* The value whose storage v's bytes belong to: through views and placements. */
static int group_of(const mn_exec *ex, int v)
{
    for (;;) {
        int64_t off;
        if (mn__kind(&ex->vals[v]) == MN_VAL_ALIAS) v = mn__alias_src(&ex->vals[v], &off);
        else if (ex->vals[v].into >= 0) v = ex->vals[v].into;
        else return v;
    }
}

/* One complete plan with the given hosts (and pieces: pinned_pieces) vetoed; the arena size or -1.
 * Without offsets: the storages only, and their lower bound (no placement). */
static int64_t plan_storages(mn_exec *ex, const bool *veto, const int *nread, int *glast, int *gcount, bool offsets, bool fwd_first)
{
    ex->nstores = 0;
    ex->inplace_count = 0;
    place_pieces(ex, veto, nread, fwd_first);
    for (int v = 0; v < ex->nvals; v++) ex->vals[v].group = group_of(ex, v);
    group_lifetimes(ex, glast, gcount);
    assign_storages(ex, glast, gcount);
    stats(ex);
    return offsets ? assign_offsets(ex) : ex->lower_bound;
}

static int64_t plan_once(mn_exec *ex, const bool *veto, const int *nread, int *glast, int *gcount, bool fwd_first)
{
    return plan_storages(ex, veto, nread, glast, gcount, true, fwd_first);
}

/* Pieces that would pin a host: a piece of a top concat host read after
 * every reader of the host itself (through views) keeps the whole host's
 * bytes live alone. Under a memory budget that is a checkpoint of the
 * recompute pass (an RNN's hidden state that starts the next segment,
 * whose block of hidden states the pass drops and rebuilds). Such a piece
 * is marked in veto (a vetoed value is no concat's piece: the host copies
 * it, and it lives in bytes of its own); their count. */
static int pinned_pieces(const mn_exec *ex, bool *veto)
{
    int *last = malloc(((size_t)ex->nvals + 1) * sizeof *last), n = 0;
    if (!last) return 0;
    for (int v = 0; v < ex->nvals; v++) last[v] = ex->keep[v] ? ex->nlevels : level_of(ex, v);
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) {
            int u = ex->steps[s].in[k];
            int64_t off;
            while (mn__kind(&ex->vals[u]) == MN_VAL_ALIAS) u = mn__alias_src(&ex->vals[u], &off);
            if (ex->steps[s].level > last[u]) last[u] = ex->steps[s].level;
        }
    for (int v = 0; v < ex->nvals; v++) {
        int h = ex->vals[v].into;
        if (h < 0 || !ex->vals[h].host || ex->vals[h].into >= 0 || veto[v] || last[v] <= last[h]) continue;
        veto[v] = true;
        n++;
    }
    free(last);
    return n;
}

/* Placing concat pieces saves their copies but keeps a whole host's bytes
 * from its first piece on; when pieces come long before their concat (the
 * gradient pieces of a whole backward pass) that can raise the peak. So:
 * plan with every host, and if that arena is larger than with none, veto
 * hosts one by one, widest lifetime first, keeping each veto that shrinks it. */
mn_status mn__plan(mn_exec *ex)
{
    int n = ex->nvals ? ex->nvals : 1;
    int *glast = malloc((size_t)n * sizeof *glast), *gcount = malloc((size_t)n * sizeof *gcount), *hosts = malloc((size_t)n * sizeof *hosts);
    bool *veto = calloc((size_t)n, sizeof *veto);
    double *span = calloc((size_t)n, sizeof *span);
    int *nread = malloc((size_t)n * sizeof *nread);
    if (nread) mn__count_reads(ex, nread);
    ex->stores = calloc((size_t)(ex->nvals + ex->nsteps + 1), sizeof *ex->stores);
    mn_status s = glast && gcount && hosts && veto && span && nread && ex->stores ? workspaces(ex) : mn__graph_fail(ex->g, MN_ERR_NOMEM, "plan: out of memory");
    int64_t best = -1;
    bool fwd = false;
    if (!s) {
        /* pieces go to the first concat that takes them: in step order, or
         * forward concats first (the hidden states of an unrolled RNN: its
         * outputs concat, whose views the weight gradients' blocks then
         * are, instead of the blocks' concats, made as soon as their pieces
         * exist, and a copy for the outputs); the smaller */
        best = plan_once(ex, veto, nread, glast, gcount, true);
        int64_t in_order = plan_once(ex, veto, nread, glast, gcount, false);
        fwd = best >= 0 && (in_order < 0 || best < in_order);
        if (fwd) best = plan_once(ex, veto, nread, glast, gcount, true);
        else best = in_order;
        if (best >= 0 && pinned_pieces(ex, veto)) {            /* hosts a piece pins: without them, if smaller */
            int64_t a = plan_once(ex, veto, nread, glast, gcount, fwd);
            if (a >= 0 && a < best) best = a;
            else for (int v = 0; v < ex->nvals; v++) veto[v] = false;
        }
        int nh = 0;
        for (int v = 0; v < ex->nvals; v++) span[v] = level_of(ex, v);      /* first, the host's first piece level */
        for (int u = 0; u < ex->nvals; u++)
            if (ex->vals[u].into >= 0 && level_of(ex, u) < span[ex->vals[u].into]) span[ex->vals[u].into] = level_of(ex, u);
        for (int v = 0; v < ex->nvals; v++)
            if (ex->vals[v].host) {
                hosts[nh++] = v;
                span[v] = (double)ex->vals[v].bytes * (level_of(ex, v) - span[v]);
            }
        if (nh) {
            for (int i = 0; i < nh; i++) veto[hosts[i]] = true;
            int64_t none = plan_once(ex, veto, nread, glast, gcount, fwd);
            for (int i = 0; i < nh; i++) veto[hosts[i]] = false;
            if (best >= 0 && none >= 0 && best > none) {
                for (int i = 1; i < nh; i++)                     /* widest first */
                    for (int j = i; j > 0 && span[hosts[j - 1]] < span[hosts[j]]; j--) { int t = hosts[j]; hosts[j] = hosts[j - 1]; hosts[j - 1] = t; }
                for (int i = 0; i < nh && best > none; i++) {
                    veto[hosts[i]] = true;
                    int64_t a = plan_once(ex, veto, nread, glast, gcount, fwd);
                    if (a >= 0 && a < best) best = a; else veto[hosts[i]] = false;
                }
            }
            best = plan_once(ex, veto, nread, glast, gcount, fwd);         /* the plan to bind */
        }
        if (best < 0) s = mn__graph_fail(ex->g, MN_ERR_NOMEM, "plan: out of memory");
        ex->arena_bytes = best;
    }
    free(glast); free(gcount); free(hosts); free(veto); free(span); free(nread);
    return s || ex->probe ? s : bind(ex);
}


/* A cheap estimate of the arena for the recompute pass's search: the
 * storages' lower bound with every concat host placed and with none, the
 * smaller one (no offsets are placed, which is the planner's costly part).
 * Binds nothing; ex->stores is left for the caller to free. */
mn_status mn__plan_estimate(mn_exec *ex, int64_t *estimate)
{
    int n = ex->nvals ? ex->nvals : 1;
    int *glast = malloc((size_t)n * sizeof *glast), *gcount = malloc((size_t)n * sizeof *gcount), *nread = malloc((size_t)n * sizeof *nread);
    bool *veto = calloc((size_t)n, sizeof *veto);
    free(ex->stores);
    ex->stores = calloc((size_t)(ex->nvals + ex->nsteps + 1), sizeof *ex->stores);
    mn_status s = glast && gcount && nread && veto && ex->stores ? workspaces(ex) : mn__graph_fail(ex->g, MN_ERR_NOMEM, "plan: out of memory");
    if (!s) {
        mn__count_reads(ex, nread);
        int64_t fwd = plan_storages(ex, veto, nread, glast, gcount, false, true);
        if (pinned_pieces(ex, veto)) {
            int64_t a = plan_storages(ex, veto, nread, glast, gcount, false, true);
            if (a < fwd) fwd = a;
            for (int v = 0; v < ex->nvals; v++) veto[v] = false;
        }
        int64_t all = plan_storages(ex, veto, nread, glast, gcount, false, false);
        for (int v = 0; v < ex->nvals; v++) veto[v] = ex->vals[v].host;
        int64_t none = plan_storages(ex, veto, nread, glast, gcount, false, false);
        *estimate = all < none ? all : none;
        if (fwd < *estimate) *estimate = fwd;
    }
    free(glast); free(gcount); free(nread); free(veto);
    return s;
}
