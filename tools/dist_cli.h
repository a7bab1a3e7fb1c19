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
/* This rank's config: --batch is the global batch B, rank r runs its items
 * [r*B/N, (r+1)*B/N) (sizes differ by one at most when N does not divide
 * B); an exit code when B < N. */
int       mn_cli_dist_local(const mn_train_cfg *c, mn_train_cfg *local);
int64_t   mn_cli_dist_shard(const mn_train_cfg *c);   /* this rank's first item in a global batch */
uint64_t  mn_cli_dist_seed(uint64_t seed);            /* the seed of this rank's random ops (dropout) */
/* Before each step: this rank's share of the global batch's mean (its
 * targets over the batch's; `batch` the global batch's items), so that the
 * averaged gradient is the one of the mean over the global batch. */
void      mn_cli_dist_step(const mn_data *d, const mn_train_cfg *c, const int64_t *batch);
double    mn_cli_dist_loss(double loss);               /* the global batch's loss from the ranks' (their weighted sum) */
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
