/* tools/dist_cli.h: what `mnemo train` needs to run under mpirun
 * (tools/cmd_dist.c). One process started without mpirun, or a build
 * without MPI, is a group of one: every call is then a no-op or the
 * identity, so cmd_train.c reads the same either way. */
#ifndef MN_TOOLS_DIST_CLI_H
#define MN_TOOLS_DIST_CLI_H

#include "train.h"

/* Joins the MPI job when mpirun started this process (its environment
 * says so); ranks above 0 print nothing on stdout. An exit code. */
int       mn_cli_dist_begin(void);
void      mn_cli_dist_end(void);
int       mn_cli_dist_size(void);
int       mn_cli_dist_rank(void);
bool      mn_cli_dist_writer(void);       /* rank 0 (or alone): prints, writes files */
/* This rank's config: --batch is the global batch, each rank runs
 * batch / ranks examples of it; an exit code when it does not divide. */
int       mn_cli_dist_local(const mn_train_cfg *c, mn_train_cfg *local);
int64_t   mn_cli_dist_shard(const mn_train_cfg *c);   /* this rank's first item in a global batch */
/* Rank 0's tensors on every rank, checked equal; then each run of ex
 * averages the gradients across ranks. An exit code. */
int       mn_cli_dist_attach(mn_params *P, mn_exec *ex);
void      mn_cli_dist_detach(void);        /* before freeing the attached executable */
double    mn_cli_dist_mean(double v);
bool      mn_cli_dist_any(bool v);
/* Every rank learns the worst exit code; a rank that did not fail names the
 * lowest one that did. Returns the agreed code. */
int       mn_cli_dist_agree(int rc);
/* A rank failed where the others cannot learn it in step (inside a run):
 * ends every rank now, naming this one. */
void      mn_cli_dist_fail(void);

#endif
