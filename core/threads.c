/* core/threads.c: the library's default thread count and the start-up
 * check that the OpenMP build of OpenBLAS is the one loaded (the pthread
 * build oversubscribes the cores when mixed with our OpenMP loops). */
#include "internal.h"
#include <omp.h>
#include <stdio.h>

int openblas_get_parallel(void);

static int default_threads;

void mn_set_num_threads(int n) { default_threads = n > 0 ? n : 0; }

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
