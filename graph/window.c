/* graph/window.c: prefetch windows. A long kernel that can prefetch while
 * it computes (ops/gemm.h's mn__window_forward: the packed recurrent
 * product) gets the bytes the steps of the levels after it read and
 * write, up to the next such product (at most 4 levels, nearest first: a
 * cell whose mirrored tanh(c) is rebuilt one level before it is two levels
 * on), found once per compile from their span accounts (the fused cells' and the
 * part kernels'), less the bytes the kernel touches itself (the gates it
 * writes are in cache already): an RNN step's product brings in its
 * cell's cold inputs (the input projection's rows, the activations saved
 * in the forward) and the lines the cell will write. Addresses only: no
 * result depends on a window. On several threads, only inside a chain
 * (graph/run.c), where each thread runs its own part of every level: a
 * product's part t gets what part t of those levels touches, less its
 * own (the lines land in the core that uses them; docs/performance.md,
 * "### win2t"). */
#include "exec.h"
#include <stdlib.h>
#include <string.h>

/* At most this many bytes per window, half of L2 (an RNN step's cell
 * touches 256-448 KiB at hidden 256; an input projection's next step, a
 * block of 4 MiB, gets its first 512 KiB). */
#define MN_WINDOW_BYTES (512 << 10)

/* The bytes step st touches (all of it, one part), or -1 when not known. */
static int step_spans(mn_exec *ex, const mn_step *st, mn__span *sp, int max)
{
    char detail[8];
    mn_kernel_ctx c = { .nin = st->nin, .in = st->tin, .out = &ex->vals[st->out].t, .attrs = st->node->attrs,
                        .accumulate = st->accumulate, .nthreads = ex->nthreads, .msg = detail, .msglen = sizeof detail };
    if (st->work >= 0) return -1;
    if (st->fused) {
        float *xout[MN_FUSE_MAX_MEMBERS];
        const int64_t *scat[MN_FUSE_MAX_MEMBERS + 1];
        scat[0] = ex->vals[st->out].scatter ? ex->vals[st->out].scatter_st : NULL;
        for (int k = 0; k < st->nxout; k++) {
            const mn_value *x = &ex->vals[st->xout[k]];
            xout[k] = mn_f32(&x->t);
            scat[1 + k] = x->scatter ? x->scatter_st : NULL;
        }
        return mn__fused_part_spans(st->fused, &c, xout, scat, st->nxout, 0, 1, sp, max);
    }
    mn__spans_fn fn = mn__part_spans(st->node->op);
    return fn ? fn(&c, 0, 1, sp, max) : -1;
}

static bool overlaps(const mn__span *a, const mn__span *b, int nb)
{
    for (int j = 0; j < nb; j++)
        if (a->lo < b[j].hi && b[j].lo < a->hi) return true;
    return false;
}

static int by_lo(const void *a, const void *b)
{
    uintptr_t x = ((const mn__span *)a)->lo, y = ((const mn__span *)b)->lo;
    return x < y ? -1 : x > y;
}

/* The spans of step st's part t of `parts` (one part: its whole run). */
static int part_spans(mn_exec *ex, const mn_step *st, int t, int parts, mn__span *sp, int max)
{
    return parts == 1 ? step_spans(ex, st, sp, max) : mn__chain_part_spans(ex, st, t, parts, sp, max);
}

/* Can step st prefetch for the levels after it (a product with a window kernel)? */
static bool windowed(const mn_step *st) { return !st->fused && !st->state && mn__window_forward(st->node->op); }

/* Part t of `parts` of step s: its window into w (at most MN_WINDOW_SPANS
 * spans): the bytes part t of the levels after s's touches and s's part t
 * does not, level by level up to the next level with a windowed product
 * (which prefetches for its own successors) or `last` (exclusive), at most
 * WINDOW_LEVELS levels: a mirrored value rebuilt just before its reader
 * (graph/mirror.c: an LSTM cell's tanh(c)) puts the cell two levels after
 * its product. Within a level overlapping spans are merged (a cell's four
 * gate slices of one [B, 4H] block are four strided spans over the same
 * rows) in address order; the nearest level's bytes come first, at most
 * MN_WINDOW_BYTES in all. */
enum { WINDOW_LEVELS = 4 };
static int window_of(mn_exec *ex, int s, int t, int parts, int last, mn__span *w, mn__span *own, mn__span *sp)
{
    int l = ex->steps[s].level, n = 0, nown = part_spans(ex, &ex->steps[s], t, parts, own, MN_SPANS_MAX);
    if (nown < 0) return 0;
    int64_t bytes = 0;
    for (int lv = l + 1; lv < last && lv < ex->nlevels && lv <= l + WINDOW_LEVELS && bytes < MN_WINDOW_BYTES; lv++) {
        int m = 0, first = n;
        bool stop = false;
        for (int k = ex->level_start[lv]; k < ex->level_start[lv + 1]; k++) {
            const mn_step *st = &ex->steps[k];
            if (mn__kind(&ex->vals[st->out]) == MN_VAL_ALIAS) continue;
            if (lv > l + 1 && windowed(st)) { stop = true; break; }
            int got = part_spans(ex, st, t, parts, sp + m, MN_SPANS_MAX - m);
            int kept = 0;
            for (int i = 0; i < got; i++)
                if (sp[m + i].hi > sp[m + i].lo && !overlaps(&sp[m + i], own, nown)) sp[m + kept++] = sp[m + i];
            m += kept;
        }
        if (stop) break;
        qsort(sp, (size_t)m, sizeof *sp, by_lo);
        for (int i = 0; i < m && bytes < MN_WINDOW_BYTES; i++) {
            if (n > first && sp[i].lo <= w[n - 1].hi) {
                bytes -= (int64_t)(w[n - 1].hi - w[n - 1].lo);
                if (sp[i].hi > w[n - 1].hi) w[n - 1].hi = sp[i].hi;
                w[n - 1].write |= sp[i].write;
            } else if (n < MN_WINDOW_SPANS) w[n++] = sp[i];
            else return n;
            if (bytes + (int64_t)(w[n - 1].hi - w[n - 1].lo) > MN_WINDOW_BYTES) w[n - 1].hi = w[n - 1].lo + (uintptr_t)(MN_WINDOW_BYTES - bytes);
            bytes += (int64_t)(w[n - 1].hi - w[n - 1].lo);
        }
    }
    return n;
}

mn_status mn__find_windows(mn_exec *ex)
{
    int total = 0, given = 0, W = ex->nthreads > 1 ? ex->nthreads : 1;
    mn__span own[MN_SPANS_MAX], sp[MN_SPANS_MAX], w[MN_WINDOW_SPANS];
    ex->win_parts = W;
    ex->win_at = calloc((size_t)ex->nsteps * (size_t)W + 1, sizeof *ex->win_at);
    ex->win = malloc((size_t)(ex->nsteps ? ex->nsteps : 1) * sizeof *ex->win);
    if (!ex->win_at || !ex->win) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "compile: out of memory");
    int cap = ex->nsteps ? ex->nsteps : 1, lvl = -1, end = 0;
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        /* steps come level by level: end is the end of the last chain (graph/run.c) starting at or before this level;
         * on several threads only a product whose next level is in its chain gets windows (each thread its parts) */
        for (; lvl < st->level; lvl++)
            if (ex->team_end[lvl + 1]) end = ex->team_end[lvl + 1];
        bool can = windowed(st) && (W == 1 || end > st->level + 1);
        bool any = false;
        for (int t = 0; t < W; t++) {
            int n = can ? window_of(ex, s, t, W, W == 1 ? ex->nlevels : end, w, own, sp) : 0;
            if (total + n > cap) {
                cap = 2 * (total + n);
                mn__span *grown = realloc(ex->win, (size_t)cap * sizeof *grown);
                if (!grown) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "compile: out of memory");
                ex->win = grown;
            }
            memcpy(ex->win + total, w, (size_t)n * sizeof *w);
            total += n;
            any |= n > 0;
            ex->win_at[s * W + t + 1] = total;
        }
        given += any;
    }
    mn__stat(ex, "run.windows", given);
    return MN_OK;
}
