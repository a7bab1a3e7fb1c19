/* graph/copies.c: piece copies, the first step of the fusion pass. The
 * planner writes a concat piece straight into its concat only when the
 * concat is the piece's one reader; a GRU's gate gradients dr and dz are
 * pieces of two concats per time step (d(h) and d(x)), so both concats
 * copied them. Here each further reader that places pieces gets a copy of
 * its own (y = 1 * x, exact), a pointwise step that the fusion pass joins
 * to the producer's group, whose kernel then writes the value into every
 * concat. Only values of pointwise f32 steps get copies (others would not
 * fuse). Reads steps and read counts; adds nodes, values and steps. */
#include "exec.h"
#include <stdlib.h>
#include <string.h>

/* Does the piece view have gaps (strides other than its own row-major ones)? */
static bool strided(mn_shape s, const int64_t *st)
{
    int64_t acc = 1;
    for (int d = s.ndim - 1; d >= 0; d--) {
        if (s.d[d] != 1 && st[d] != acc) return true;
        acc *= s.d[d];
    }
    return false;
}

/* Is input k of step s a piece its op would scatter (a concat's input
 * along an inner axis)? Contiguous pieces are left alone: a second concat
 * of the same contiguous pieces is a view of the first (plan.c). */
static bool places(const mn_exec *ex, const mn_step *st, int k)
{
    const mn_node *n = st->node;
    int64_t off, strides[MN_MAX_DIMS];
    if (!n->op->traits.input_view || mn__kind(&ex->vals[st->out]) != MN_VAL_ARENA) return false;
    return n->op->traits.input_view(n->in_desc, n->nin, &n->desc, n->attrs, k, &off, strides) && strided(n->in_desc[k].shape, strides);
}

/* A value worth copying: an f32 arena value of a pointwise step. */
static bool copyable(const mn_exec *ex, int v)
{
    const mn_value *x = &ex->vals[v];
    if (x->def < 0 || mn__kind(x) != MN_VAL_ARENA || x->t.dtype != MN_F32) return false;
    const mn_op_def *op = ex->steps[x->def].node->op;
    return op->traits.pointwise && !(op->flags & MN_OPF_RANDOM);
}

/* Marks in need[] (per step input, CSR by cin) the placing reads that get
 * a copy: all of a value's placing reads but one when it has no other
 * reader, else all of them. Returns how many. */
static int choose(const mn_exec *ex, const int *nread, const int *cin, bool *need)
{
    int *hosts = calloc((size_t)ex->nvals + 1, sizeof *hosts), *seen = calloc((size_t)ex->nvals + 1, sizeof *seen), n = 0;
    if (!hosts || !seen) { free(hosts); free(seen); return -1; }
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++)
            if (places(ex, &ex->steps[s], k)) hosts[ex->steps[s].in[k]]++;
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) {
            int v = ex->steps[s].in[k];
            need[cin[s] + k] = false;
            if (!places(ex, &ex->steps[s], k) || nread[v] < 2 || !copyable(ex, v)) continue;
            bool only_hosts = hosts[v] == nread[v];
            if (only_hosts && seen[v]++ == 0) continue;          /* the first concat keeps the value itself */
            need[cin[s] + k] = true;
            n++;
        }
    free(hosts); free(seen);
    return n;
}

/* A copy of value v as a new node, value and step (returned in *st). */
static mn_status make_copy(mn_exec *ex, int v, mn_step *st)
{
    mn_node *y = mn_scale(ex->g, ex->vals[v].node, 1.0f);
    if (!y) return MN_ERR_NOMEM;
    y->backward = ex->vals[v].node->backward;          /* a copy of a gradient is backward work (recompute.c) */
    int c = ex->nvals++;
    ex->val_of[y->id] = c;
    ex->vals[c] = mn__value_for(y);
    ex->keep[c] = false;
    *st = (mn_step){ .node = y, .out = c, .nin = 1, .fused_into = -1, .work = -1 };
    st->in = calloc(2, sizeof *st->in);
    st->tin = calloc(2, sizeof *st->tin);
    if (!st->in || !st->tin) return MN_ERR_NOMEM;
    st->in[0] = v;
    return MN_OK;
}

/* Each copy goes right after the step producing its value, so the steps
 * stay in topological order; the placing reads switch to the copies. */
static mn_status insert_copies(mn_exec *ex, const int *cin, const bool *need, int ncopies)
{
    mn_step *out = calloc((size_t)ex->nsteps + (size_t)ncopies + 1, sizeof *out);
    int *start = calloc((size_t)ex->nsteps + 2, sizeof *start), *read = malloc(((size_t)ncopies + 1) * 2 * sizeof *read);
    mn_status st = out && start && read && mn__exec_grow(ex, ncopies) ? MN_OK : MN_ERR_NOMEM;
    /* the marked reads (reader step, input), grouped by the step producing the value */
    for (int s = 0; !st && s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++)
            if (need[cin[s] + k]) start[ex->vals[ex->steps[s].in[k]].def + 2]++;
    for (int s = 0; !st && s < ex->nsteps; s++) start[s + 2] += start[s + 1];
    for (int s = 0; !st && s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) {
            if (!need[cin[s] + k]) continue;
            int i = start[ex->vals[ex->steps[s].in[k]].def + 1]++;
            read[2 * i] = s;
            read[2 * i + 1] = k;
        }
    int m = 0, nv0 = ex->nvals;
    for (int s = 0; !st && s < ex->nsteps; s++) {
        out[m++] = ex->steps[s];
        for (int i = start[s]; !st && i < start[s + 1]; i++) {     /* the reads of step s's value */
            mn_step *r = &ex->steps[read[2 * i]];
            st = make_copy(ex, r->in[read[2 * i + 1]], &out[m]);
            if (!st) r->in[read[2 * i + 1]] = out[m++].out;
        }
    }
    if (!st) {
        free(ex->steps);
        ex->steps = out;
        ex->nsteps = m;
        out = NULL;
        mn__set_defs(ex);
    }
    for (int i = 0; out && i <= m && i < ex->nsteps + ncopies; i++)     /* failed: the copies made so far (the compile fails) */
        if (out[i].out >= nv0) { free(out[i].in); free(out[i].tin); }
    free(out); free(start); free(read);
    return st;
}

mn_status mn__piece_copies(mn_exec *ex)
{
    int *nread = malloc(((size_t)ex->nvals + 1) * sizeof *nread), *cin = malloc(((size_t)ex->nsteps + 1) * sizeof *cin);
    bool *need = NULL;
    mn_status st = nread && cin ? MN_OK : MN_ERR_NOMEM;
    int total = 0, n = 0;
    for (int s = 0; !st && s < ex->nsteps; s++) { cin[s] = total; total += ex->steps[s].nin; }
    if (!st && !(need = malloc((size_t)total + 1))) st = MN_ERR_NOMEM;
    if (!st) {
        mn__count_reads(ex, nread);
        n = choose(ex, nread, cin, need);
        if (n < 0) st = MN_ERR_NOMEM;
    }
    if (!st && n > 0) st = insert_copies(ex, cin, need, n);
    free(nread); free(cin); free(need);
    return st;
}
