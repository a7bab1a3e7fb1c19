/* tools/finetune.h: `mnemo train --init-from CKPT [--init-map FILE]
 * [--freeze PATTERNS] [--lr-groups 'PATTERN=LR,...']`: a run that starts
 * from another run's weights (finetune.c). The four values live in the
 * config (so a resumed fine-tuning run keeps its freezing and groups);
 * where the weights came from is the checkpoint's "mnemo.init_from". */
#ifndef MN_TOOLS_FINETUNE_H
#define MN_TOOLS_FINETUNE_H

#include "train.h"
#include <stdio.h>

enum { MN_FT_OPT_INIT_FROM = 0x100, MN_FT_OPT_INIT_MAP, MN_FT_OPT_FREEZE, MN_FT_OPT_LR_GROUPS };
#define MN_FT_LONG_OPTS                                                              \
    { "init-from", 1, 0, MN_FT_OPT_INIT_FROM }, { "init-map", 1, 0, MN_FT_OPT_INIT_MAP }, \
    { "freeze", 1, 0, MN_FT_OPT_FREEZE }, { "lr-groups", 1, 0, MN_FT_OPT_LR_GROUPS }
#define MN_FT_USAGE "                   [--init-from CKPT] [--init-map FILE] [--freeze PATTERNS] [--lr-groups 'PATTERN=LR,...']\n"
#define MN_FT_HELP                                                                                       \
    "--init-from starts from another checkpoint's weights (same names, or renamed by --init-map rules\n" \
    "\"FROM -> TO\"); --freeze keeps the parameters matching the comma-separated globs fixed;\n"         \
    "--lr-groups gives parameters matching a glob their own learning rate (docs/finetuning.md).\n"

/* Stores one of the four flags in c; false (after printing why) on a bad value. */
bool mn_ft_flag(mn_train_cfg *c, int opt, const char *v);
/* Syntax of the four values (any source: flags, --config, a checkpoint). */
mn_status mn_ft_check(const mn_train_cfg *c);
/* The text of an --init-map file (a regular file of at most 1 MB without
 * NUL bytes; malloc'd), or NULL with the error set. */
char *mn_ft_read_map(const char *path);
/* The store of --init-from (NULL when none or when resuming); exit code. */
int mn_ft_open(const mn_train_cfg *c, bool resuming, mn_params **src);
/* The vocabulary the data must use (JSON), or NULL for the data's own: the
 * pre-trained model's when it reads the same kind of data; a resumed
 * fine-tuning run keeps the vocabulary of its checkpoint. */
const char *mn_ft_vocab(const mn_train_cfg *c, const mn_params *src, const mn_params *resumed);
/* After the model is built on P: the partial load from src (if any, with
 * its report), the freezing; before compiling. Exit code. */
int mn_ft_prepare(mn_params *P, const mn_params *src, const mn_train_cfg *c);
/* Freezes the parameters matching the globs; else prints "mnemo CMD:
 * --freeze: ..." with the model's parameter names. Exit code. */
int mn_ft_freeze(mn_params *P, const char *patterns, const char *cmd, const char *model, int *n);
/* The learning-rate groups of c on the optimizer. Exit code. */
int mn_ft_groups(mn_optim *o, mn_params *P, const mn_train_cfg *c);
/* Records where a run started in P's "mnemo.init_from", the one writer of
 * that key for every model kind (docs/formats.md): JSON {"path", "model",
 * "step", "map", "loaded", "missing", "unexpected", "mismatched"}; model
 * and step from src's metadata when it has them, map when given, the
 * counts indexed by mn_load_kind. */
mn_status mn_ft_record(mn_params *P, const mn_params *src, const char *path, const char *map, const int count[MN_LOAD_KINDS]);
/* The "started from" lines of `mnemo inspect` (nothing if none). */
void mn_ft_describe(const mn_params *P, FILE *f);

#endif
