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
/* Translation (cmd_translate.c): train --model translate, translate, and
 * eval of a checkpoint whose mnemo.model is "translate". */
int  cmd_train_translate(int argc, char **argv);
int  cmd_translate(int argc, char **argv);
int  cmd_eval_translate(int argc, char **argv);
bool mn_mt_is_checkpoint(int argc, char **argv);
bool mn_mt_wants_train(int argc, char **argv);
int mn_cmd_train_ner(int argc, char **argv);   /* train --model ner (cmd_ner.c) */
bool mn_ner_is_checkpoint(const char *path);
int mn_cmd_eval_ner(const char *ckpt, const char *data, int threads);
int cmd_import(int argc, char **argv);   /* tools/cmd_onnx.c */
int cmd_export(int argc, char **argv);

#endif
