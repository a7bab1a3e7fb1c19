/* mnemo_dist.h: data-parallel training over MPI (built when libmnemo is
 * configured with MPI, -Dmpi=auto|enabled; MNEMO_HAVE_MPI is then defined).
 * Every rank runs the same graph on its shard of the batch; gradients are
 * averaged by allreduce in buckets, each started as soon as the backward
 * schedule has completed it, so communication overlaps the rest of the
 * backward pass. Optimizers, clipping and accumulation run unchanged on the
 * averaged gradients. The calls marked (collective) must be made by every
 * rank of the communicator in the same order. See docs/distributed.md. */
#ifndef MNEMO_DIST_H
#define MNEMO_DIST_H

#include <mpi.h>
#include "mnemo.h"

typedef struct mn_dist mn_dist;

typedef enum {
    MN_DIST_PROGRESS_LEVELS,     /* the executor drives MPI between levels (default) */
    MN_DIST_PROGRESS_THREAD,     /* a communication thread runs each bucket's allreduce */
} mn_dist_progress;

#define MN_DIST_BUCKET_BYTES       ((size_t)25 << 20)
#define MN_DIST_FIRST_BUCKET_BYTES ((size_t)1 << 20)

typedef struct {
    size_t bucket_bytes;         /* gradient bytes per allreduce; 0: MN_DIST_BUCKET_BYTES (25 MiB, as PyTorch DDP) */
    mn_dist_progress progress;
    size_t first_bucket_bytes;   /* the first bucket's (the last layers' gradients, complete first): small, so that
                                    communication starts early; 0: MN_DIST_FIRST_BUCKET_BYTES or bucket_bytes if less */
} mn_dist_opts;

/* On an existing communicator (duplicated: mnemo's messages never mix with
 * the caller's). MPI must be initialised (MN_ERR_MISUSE otherwise); for
 * MN_DIST_PROGRESS_THREAD with MPI_THREAD_SERIALIZED or more. (collective) */
mn_status mn_dist_init(mn_dist **out, MPI_Comm comm, const mn_dist_opts *opts);
/* On MPI_COMM_WORLD, initialising MPI first if nobody has (then
 * mn_dist_finalize finalises it). (collective) */
mn_status mn_dist_init_world(mn_dist **out, int *argc, char ***argv, const mn_dist_opts *opts);
/* Frees d (detaching its executable); finalises MPI if d initialised it. */
void      mn_dist_finalize(mn_dist *d);
int       mn_dist_rank(const mn_dist *d);
int       mn_dist_size(const mn_dist *d);
MPI_Comm  mn_dist_comm(const mn_dist *d);

/* Every tensor of the store (parameters and optimizer state) from rank 0;
 * MN_ERR_INVALID if a rank holds other names or shapes. (collective) */
mn_status mn_dist_broadcast_params(mn_dist *d, mn_params *P);
/* MN_ERR_INVALID, on every rank, naming the first tensor and rank whose
 * bytes differ from rank 0's (or whose names or shapes differ). (collective) */
mn_status mn_dist_check_params(mn_dist *d, mn_params *P);

/* Makes every mn_exec_run of ex average P's gradients across ranks before
 * it returns (through ex's level hook). Buckets follow the order in which
 * rank 0's schedule completes gradients; each starts on a rank once that
 * rank's run has completed it. Ranks may compile for other batch sizes
 * (uneven shards: see mn_dist_set_weight); MN_ERR_INVALID if they compute
 * the gradients of other parameters. One executable at a time; NULL
 * detaches: detach (or finalize d) before freeing ex. (collective) */
mn_status mn_dist_attach(mn_dist *d, mn_exec *ex, mn_params *P);
/* This rank's share of the step's mean: a run leaves on every rank the sum
 * over ranks of weight x that rank's gradient. Default 1/size (the mean of
 * equal shards); with shards of unequal size give each rank
 * local_examples / global_examples (or, for a loss averaged over targets,
 * local targets / global targets), so the result is the gradient of the
 * mean over the global batch. The weights should sum to 1 over the ranks
 * (not checked: not collective). MN_ERR_INVALID unless finite and >= 0. */
mn_status mn_dist_set_weight(mn_dist *d, double weight);
/* The seed for this rank's graph (mn_graph_set_seed): random ops (dropout,
 * sampling) then draw other numbers on each rank. Rank 0 gets seed itself
 * (a group of one draws as one process); rank r > 0 a Philox mix of seed
 * and r. Without it every rank draws the same masks for its local batch. */
uint64_t  mn_dist_seed(const mn_dist *d, uint64_t seed);
/* Gradient accumulation: with sync off, runs only add into the local
 * gradients (no communication); the first run with sync on averages all
 * that was accumulated. On by default. (Every rank must agree.) */
void      mn_dist_set_sync(mn_dist *d, bool on);

/* The sum over ranks of n doubles, in place (weighted losses, counts). (collective) */
mn_status mn_dist_sum(mn_dist *d, double *v, int n);
/* The mean over ranks of n doubles, in place (losses, metrics). (collective) */
mn_status mn_dist_mean(mn_dist *d, double *v, int n);
/* Agreement after a step that may fail on some ranks: MN_OK on every rank
 * if s is MN_OK on every rank; otherwise the lowest failing rank's status
 * on every rank, with the message "rank R: <its message>". (collective) */
mn_status mn_dist_agree(mn_dist *d, mn_status s);
/* Ends every rank of the communicator now (MPI_Abort): for a failure that
 * the other ranks cannot be told about in step (a run that failed midway). */
void      mn_dist_abort(mn_dist *d, int exit_code);

typedef struct {
    int64_t runs;                /* synchronised runs */
    int     buckets;             /* allreduces per run */
    int64_t bytes;               /* gradient bytes per run */
    int     early;               /* of the last run's buckets, started before its last level */
    double  wait_ms;             /* per run: blocked at the end until every bucket arrived */
    double  comm_ms;             /* per run: time inside MPI calls on the running thread */
    double  window_ms;           /* per run: from the first bucket's start to the end of the
                                    backward pass, the time communication may hide in */
    double  cpu_ms;              /* per run: CPU time of the running thread inside the group's
                                    calls of the run (packing, MPI, waiting: Open MPI polls) */
    int     tests;               /* of the last run: MPI_Test calls between levels (progress mode) */
} mn_dist_stats;
mn_dist_stats mn_dist_get_stats_v2(const mn_dist *d);
/* 0.1's mn_dist_get_stats returned the struct without cpu_ms and tests; that
 * symbol stays exported with its layout for programs built against 0.1,
 * while programs built against this header call the _v2 one. */
#define mn_dist_get_stats(d) mn_dist_get_stats_v2(d)
void          mn_dist_reset_stats(mn_dist *d);

#endif
