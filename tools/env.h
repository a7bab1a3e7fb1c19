/* tools/env.h: the one place the command reads the environment for the
 * library's options (docs/cli.md, "Environment"): the library reads none. */
#ifndef MN_TOOLS_ENV_H
#define MN_TOOLS_ENV_H

#include "mnemo.h"

/* Fills the switches the environment sets into *o and returns o:
 * MNEMO_BIND=0 (or OpenMP's own OMP_PROC_BIND / OMP_PLACES) leaves threads
 * unpinned, else bind_threads is set; MNEMO_NO_FUSE=1 sets no_fuse;
 * MNEMO_VERIFY_PLAN=1 sets verify.
 * Warns once on stderr when the pthread build of OpenBLAS is loaded. */
const mn_compile_opts *mn_tools_compile_opts(mn_compile_opts *o);

#endif
