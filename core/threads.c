/* core/threads.c: the library's default thread count, the start-up check
 * that the OpenMP build of OpenBLAS is the one loaded (the pthread build
 * oversubscribes the cores when mixed with our OpenMP loops), and the
 * binding of a team that uses every CPU the process may run on. */
#include "internal.h"
#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int openblas_get_parallel(void);

static int default_threads;

static _Atomic int binding = -1;  /* -1: not chosen (MNEMO_BIND decides, default on) */

void mn_set_num_threads(int n) { default_threads = n > 0 ? n : 0; }

void mn_set_thread_binding(bool on) { binding = on; }

int mn_get_num_threads(void)
{
    return default_threads > 0 ? default_threads : omp_get_max_threads();
}

static void check_openblas(void)
{
    static int checked;
    if (checked) return;
    checked = 1;
    if (openblas_get_parallel() == 1)
        fprintf(stderr, "mnemo: warning: the pthread build of OpenBLAS is loaded; "
                        "install libopenblas-openmp-dev to avoid oversubscription\n");
}

int mn__threads(int requested)
{
    check_openblas();
    return requested > 0 ? requested : mn_get_num_threads();
}

void openblas_set_num_threads(int n);

void mn__blas_threads(int n)
{
    static _Thread_local int current;
    if (n > 0 && n != current) { openblas_set_num_threads(n); current = n; }
}

/* A team of n > 1 threads that uses every CPU of the process's affinity mask
 * gets thread i pinned to the mask's i-th CPU, once per calling thread (its
 * OpenMP pool keeps the same threads). Why: schedulers that pack runnable
 * threads onto few CPUs, as this project's 2-vCPU VMs do, otherwise put the
 * worker on the master's CPU for whole runs; the lstm training step on 2
 * threads then took 49-57 ms in about one process in three instead of 32-35
 * (pinned: 32-35 in every process). A team smaller than the mask is left
 * alone, so that processes sharing a machine can never be pinned onto the
 * same CPUs by us. OMP_PROC_BIND or OMP_PLACES in the environment (OpenMP's
 * own binding), MNEMO_BIND=0 or mn_set_thread_binding(false) turn it off. */
void mn__bind_team(int n)
{
    static _Thread_local int bound;
    if (n <= 1 || bound >= n) return;
    bound = n;
    int on = atomic_load(&binding);
    if (on < 0) {
        const char *e = getenv("MNEMO_BIND");
        on = !(e && !strcmp(e, "0"));
    }
    if (!on || getenv("OMP_PROC_BIND") || getenv("OMP_PLACES") || omp_in_parallel()) return;
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0 || CPU_COUNT(&mask) != n) return;
    int cpus[CPU_SETSIZE], k = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &mask)) cpus[k++] = c;
    #pragma omp parallel num_threads(n)
    {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[omp_get_thread_num()], &one);
        sched_setaffinity(0, sizeof one, &one);     /* a refusal leaves the thread unbound */
    }
}
