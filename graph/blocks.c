/* graph/blocks.c: block boundaries for the recompute pass, derived from the
 * graph alone. A cut is a point of the forward steps (in step order) where
 * a single value carries everything later forward steps read from earlier
 * ones: a Transformer's residual stream between its attention and
 * feed-forward halves, an MLP's hidden layer. Segments between chosen cuts
 * are what segment checkpointing drops and rebuilds: only the cut values
 * stay, so no block's inner values (attention projections, feed-forward
 * hidden) cross a segment. Reads the steps and values; writes nothing but
 * the caller's per-step segment array. */
#include "exec.h"
#include <stdlib.h>

static bool forward_step(const mn_step *st) { return !st->node->backward && !st->clone; }

/* The value whose bytes v is (through views), so a reshape of x counts as x. */
static int root_of(const mn_exec *ex, int v)
{
    while (ex->vals[v].base == MN_VAL_ALIAS) v = ex->vals[v].alias_of;
    return v;
}

/* Does value v (a forward step's output) take arena bytes of its own? */
static bool carried(const mn_exec *ex, int v)
{
    mn_val_kind k = mn__kind(&ex->vals[v]);
    return k == MN_VAL_ARENA || k == MN_VAL_ALIAS;
}

/* Positions (forward step indices, in step order) after which exactly one
 * arena value produced so far is read by a later forward step. */
static int narrow_points(const mn_exec *ex, const int *fpos, int nf, int *cut)
{
    int *last = malloc(((size_t)ex->nvals + 1) * sizeof *last), *delta = calloc((size_t)nf + 2, sizeof *delta), n = 0;
    if (!last || !delta) { free(last); free(delta); return -1; }
    for (int v = 0; v < ex->nvals; v++) last[v] = -1;
    for (int i = 0; i < nf; i++) {                      /* the last forward reader of each root */
        const mn_step *st = &ex->steps[fpos[i]];
        for (int j = 0; j < st->nin; j++) {
            int r = root_of(ex, st->in[j]);
            if (ex->vals[r].def >= 0 && carried(ex, r)) last[r] = i;
        }
    }
    for (int i = 0; i < nf; i++) {                      /* a root lives from its producer to its last forward reader */
        const mn_step *st = &ex->steps[fpos[i]];
        for (int k = -1; k < st->nxout; k++) {
            int v = k < 0 ? st->out : st->xout[k];
            if (root_of(ex, v) != v || last[v] <= i) continue;
            delta[i]++;
            delta[last[v]]--;
        }
    }
    for (int i = 0, live = 0; i + 1 < nf; i++) {
        live += delta[i];
        if (live == 1) cut[n++] = i;
    }
    free(last); free(delta);
    return n;
}

/* Of a run of adjacent narrow points, the last: one cut per boundary. */
static int last_of_runs(int *cut, int n)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (i + 1 == n || cut[i + 1] != cut[i] + 1) cut[m++] = cut[i];
    return m;
}

int mn__block_segments(const mn_exec *ex, int stride, int tail, int *seg)
{
    int *fpos = malloc(((size_t)ex->nsteps + 1) * sizeof *fpos), *cut = malloc(((size_t)ex->nsteps + 1) * sizeof *cut), nf = 0;
    if (!fpos || !cut) { free(fpos); free(cut); return -1; }
    for (int s = 0; s < ex->nsteps; s++) if (forward_step(&ex->steps[s])) fpos[nf++] = s;
    int n = narrow_points(ex, fpos, nf, cut);
    if (n > 0) n = last_of_runs(cut, n);
    int m = 0, top = n - 1 - tail;                      /* every stride-th cut down from the last but `tail` */
    for (int i = top < 0 ? 0 : top % stride; n > 0 && i <= top; i += stride) cut[m++] = cut[i];
    int nseg = m + 1;
    for (int s = 0; s < ex->nsteps; s++) seg[s] = -1;
    for (int i = 0, g = 0; n >= 0 && i < nf; i++) {
        seg[fpos[i]] = g;
        if (g < m && cut[g] == i) g++;
    }
    free(fpos); free(cut);
    return n < 0 ? -1 : m > 0 ? nseg : 0;
}
