/* core/threads.c: thread counts, which OpenBLAS build is loaded (the
 * pthread build oversubscribes the cores when mixed with our OpenMP loops:
 * the command warns), OpenBLAS's team size for one run, and the binding of
 * a team that uses every CPU the process may run on when the program asks.
 * Invariant: no process-wide setting; the state here is per calling thread. */
#include "internal.h"
#include <omp.h>
#include <sched.h>

int openblas_get_parallel(void);

/* OpenMP's default team size for the calling thread: a query, not a setting. */
int mn_get_num_threads(void) { return omp_get_max_threads(); }

const char *mn_blas_threading(void)
{
    int p = openblas_get_parallel();
    return p == 2 ? "openmp" : p == 1 ? "pthread" : "serial";
}

int mn__threads(int requested) { return requested > 0 ? requested : mn_get_num_threads(); }

/* The OpenMP build of OpenBLAS sizes its team by the calling thread's
 * nthreads-var (omp_get_max_threads), so a run sets that for its own
 * thread and restores it after: no other thread, and no later code of the
 * caller, sees a change. OpenBLAS's threaded level 3 waits for every
 * thread it planned for; a team that comes back smaller hangs it for ever
 * (a 1-thread team of ours is not "in parallel", so a product called from
 * inside one asks for a nested team). So the size never exceeds
 * OMP_THREAD_LIMIT, and is 1 under OMP_DYNAMIC, where the runtime may
 * shrink any team. */
int mn__blas_threads_push(int n)
{
    int old = omp_get_max_threads();
    if (n <= 0) n = old;
    if (n > omp_get_thread_limit()) n = omp_get_thread_limit();
    if (omp_get_dynamic()) n = 1;
    if (n != old) omp_set_num_threads(n);
    return old;
}

void mn__blas_threads_pop(int old)
{
    if (old > 0 && old != omp_get_max_threads()) omp_set_num_threads(old);
}

/* A team of n > 1 threads that uses every CPU of the process's affinity mask
 * gets thread i pinned to the mask's i-th CPU, once per calling thread (its
 * OpenMP pool keeps the same threads). Why: schedulers that pack runnable
 * threads onto few CPUs, as this project's 2-vCPU VMs do, otherwise put the
 * worker on the master's CPU for whole runs; the lstm training step on 2
 * threads then took 49-57 ms in about one process in three instead of 32-35
 * (pinned: 32-35 in every process). A team smaller than the mask is left
 * alone, so that processes sharing a machine can never be pinned onto the
 * same CPUs by us. Only when the program asks (mn_compile_opts.bind_threads:
 * the command does unless MNEMO_BIND=0, OMP_PROC_BIND or OMP_PLACES). */
void mn__bind_team(int n)
{
    static _Thread_local int bound;
    if (n <= 1 || bound >= n) return;
    bound = n;
    if (omp_in_parallel()) return;
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
