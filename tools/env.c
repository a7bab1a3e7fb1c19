/* tools/env.c: the command's reading of the environment into the library's
 * compile options. The library itself never calls getenv: what a variable
 * switches on here, a program using libmnemo sets in mn_compile_opts. */
#include "env.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool env_on(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

static void warn_blas_once(void)
{
    static bool warned;
    if (warned) return;
    warned = true;
    if (!strcmp(mn_blas_threading(), "pthread"))
        fprintf(stderr, "mnemo: warning: the pthread build of OpenBLAS is loaded; "
                        "install libopenblas-openmp-dev to avoid oversubscription\n");
}

const mn_compile_opts *mn_tools_compile_opts(mn_compile_opts *o)
{
    const char *bind = getenv("MNEMO_BIND");
    o->bind_threads = !(bind && !strcmp(bind, "0")) && !getenv("OMP_PROC_BIND") && !getenv("OMP_PLACES");
    o->no_fuse = o->no_fuse || env_on("MNEMO_NO_FUSE");
    o->verify = o->verify || env_on("MNEMO_VERIFY_PLAN");
    warn_blas_once();
    return o;
}
