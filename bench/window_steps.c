/* bench/window_steps.c: prefetch windows (graph/window.c) off and on in one
 * process, runs alternating, profiled: each step's minimum over the runs,
 * summed by kind (packed products, fused cells, the rest), in ms. A probe
 * of the executor's internals (graph/exec.h): it swaps ex->win_at for an
 * empty one. Build and run (from the tree's root, after scripts/build.sh):
 *   gcc -std=gnu11 -O2 -fopenmp -I. -Iinclude -Igraph -o build/window_steps bench/window_steps.c \
 *       bench/workloads.c build/libmnemo.a -lopenblas -lm -ldnnl
 *   build/window_steps lstm 2 15      (workload, threads, runs each way) */
#include "graph/exec.h"
#include "bench/workloads.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
int main(int argc, char **argv)
{
    const char *name = argv[1]; int threads = atoi(argv[2]), runs = atoi(argv[3]);
    mn_workload w;
    if (mn_workload_build(name, &w)) return 1;
    mn_exec *ex = mn_compile(w.g, w.loss, &(mn_compile_opts){ .threads = threads, .bind_threads = true });
    if (!ex) return 1;
    mn_workload_feed(&w, ex, 1);
    int *on = ex->win_at, *off = calloc((size_t)ex->nsteps * ex->win_parts + 1, sizeof *off);
    mn_exec_set_profiling(ex, true);
    double *mn[2];
    for (int k = 0; k < 2; k++) { mn[k] = malloc(sizeof(double) * ex->nsteps); for (int s = 0; s < ex->nsteps; s++) mn[k][s] = DBL_MAX; }
    for (int i = 0; i < 2; i++) mn_exec_run(ex);
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < 2; k++) {
            ex->win_at = k ? on : off;
            memset(ex->prof_step, 0, sizeof(double) * ex->nsteps);
            mn_exec_run(ex);
            for (int s = 0; s < ex->nsteps; s++) if (ex->prof_step[s] < mn[k][s]) mn[k][s] = ex->prof_step[s];
        }
    ex->win_at = on;
    printf("%-12s %d thr, %d runs each:", name, threads, runs);
    for (int k = 0; k < 2; k++) {
        double p = 0, f = 0, o = 0;
        for (int s = 0; s < ex->nsteps; s++) {
            double v = mn[k][s];
            if (!strcmp(ex->steps[s].node->op->name, "matmul_packed")) p += v; else if (ex->steps[s].fused) f += v; else o += v;
        }
        printf("  %s packed %.2f fused %.2f other %.2f sum %.2f ms", k ? "ON " : "off", 1e3 * p, 1e3 * f, 1e3 * o, 1e3 * (p + f + o));
    }
    printf("\n");
    return 0;
}
