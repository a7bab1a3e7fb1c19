/* tools/cmds.h: the subcommands of the mnemo command and what they share. */
#ifndef MN_TOOLS_CMDS_H
#define MN_TOOLS_CMDS_H

#include "mnemo.h"
#include <time.h>

/* Exit codes of every subcommand. */
enum { MN_EXIT_OK = 0, MN_EXIT_RUNTIME = 1, MN_EXIT_USAGE = 2 };

/* Seconds on a clock (CLOCK_MONOTONIC for elapsed, CLOCK_PROCESS_CPUTIME_ID for CPU). */
static inline double mn_tools_seconds(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cmd_train(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_import(int argc, char **argv);   /* tools/cmd_onnx.c */
int cmd_export(int argc, char **argv);

#endif
