/* graph/profile.c: kernel timing. With profiling on, each run adds every
 * step's and level's seconds (run.c measures); these functions turn them
 * into per-op rows, a wall-time split and per-step lines. */
#include "exec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

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
            if (mn__kind(&ex->vals[st->out]) == MN_VAL_ALIAS) continue;
            if (st->big) big += ex->prof_step[s]; else { small += ex->prof_step[s]; nsmall++; }
            const char *name = st->fused ? "fused elementwise" : st->node->op->name;
            int r = 0;
            while (r < n && strcmp(t[r].op, name) != 0) r++;
            if (r == n) t[n++] = (mn_op_time){ .op = name };
            t[r].calls++;
            t[r].ms += ex->prof_step[s];
        }
        int lanes = nsmall < ex->nthreads ? nsmall : ex->nthreads;
        if (ex->level_split && ex->level_split[l]) {        /* side by side, but for solo steps (pinned by recompute.c): in turn */
            double top = 0, solo = 0, shared = 0;
            for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
                if (ex->steps[s].solo) { solo += ex->prof_step[s]; continue; }
                shared += ex->prof_step[s];
                if (ex->prof_step[s] > top) top = ex->prof_step[s];
            }
            ideal += solo + fmax(top, shared / ex->nthreads);
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

