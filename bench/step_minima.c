/* bench/step_minima.c: a workload's training step, profiled, each step's
 * minimum over RUNS runs in one process (which holds up under load better
 * than a whole step's median), summed by op and output shape; and the sum
 * of all the minima. Built against one library, run against another's
 * build to compare two trees step by step (processes alternating):
 *   gcc -std=gnu11 -O2 -fopenmp -I. -Iinclude -Igraph -o build/step_minima bench/step_minima.c \
 *       bench/workloads.c build/libmnemo.a -lopenblas -lm -ldnnl
 *   taskset -c 0 build/step_minima lstm_2layer 1 30 */
#include "graph/exec.h"
#include "bench/workloads.h"
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 4) return 2;
    const char *name = argv[1];
    int threads = atoi(argv[2]), runs = atoi(argv[3]);
    mn_workload w;
    if (mn_workload_build(name, &w)) return 1;
    mn_exec *ex = mn_compile(w.g, w.loss, &(mn_compile_opts){ .threads = threads, .bind_threads = true });
    if (!ex) return 1;
    mn_workload_feed(&w, ex, 1);
    mn_exec_set_profiling(ex, true);
    double *mn = malloc(sizeof(double) * ex->nsteps), *lv = malloc(sizeof(double) * ex->nlevels);
    for (int s = 0; s < ex->nsteps; s++) mn[s] = DBL_MAX;
    for (int l = 0; l < ex->nlevels; l++) lv[l] = DBL_MAX;
    for (int i = 0; i < 2; i++) mn_exec_run(ex);
    for (int r = 0; r < runs; r++) {
        memset(ex->prof_step, 0, sizeof(double) * ex->nsteps);
        memset(ex->prof_level, 0, sizeof(double) * ex->nlevels);
        mn_exec_run(ex);
        for (int s = 0; s < ex->nsteps; s++) if (ex->prof_step[s] < mn[s]) mn[s] = ex->prof_step[s];
        for (int l = 0; l < ex->nlevels; l++) if (ex->prof_level[l] < lv[l]) lv[l] = ex->prof_level[l];
    }
    /* by op and shape */
    char key[256][96];
    double sum[256];
    int cnt[256], nk = 0;
    double all = 0, levels = 0;
    for (int l = 0; l < ex->nlevels; l++) levels += lv[l];
    for (int s = 0; s < ex->nsteps; s++) {
        char sh[64], k[96];
        const mn_node *n = ex->vals[ex->steps[s].out].node;
        mn_shape_str(n->desc.shape, sh, sizeof sh);
        snprintf(k, sizeof k, "%s %s", ex->steps[s].fused ? "fused" : ex->steps[s].node->op->name, sh);
        int i = 0;
        while (i < nk && strcmp(key[i], k)) i++;
        if (i == nk && nk < 256) { strcpy(key[nk], k); sum[nk] = 0; cnt[nk] = 0; nk++; }
        if (i < 256) { sum[i] += mn[s]; cnt[i]++; }
        all += mn[s];
    }
    printf("%s %d thr, %d runs: sum of step minima %.3f ms, of level minima %.3f ms, %d steps\n", name, threads, runs, 1e3 * all,
           1e3 * levels, ex->nsteps);
    for (int i = 0; i < nk; i++)
        if (sum[i] * 1e3 >= 0.05) printf("  %-40s %4d %8.3f\n", key[i], cnt[i], 1e3 * sum[i]);
    return 0;
}
