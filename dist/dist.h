/* dist/dist.h: the private state of mnemo_dist.h shared by dist/dist.c
 * (communicator, parameters, agreement) and dist/buckets.c (gradient
 * buckets, the level hook, the communication thread). Every MPI call goes
 * through d->comm, on which errors return instead of aborting. */
#ifndef MN_DIST_PRIV_H
#define MN_DIST_PRIV_H

#include "mnemo_dist.h"
#include <pthread.h>

typedef struct {
    int first, count;            /* into mn_dist.order */
    int ready;                   /* the level after which all its gradients are final */
    int64_t floats;
    float *buf;                  /* packed gradients; NULL: one tensor, reduced in place */
    MPI_Request req;
} mn__bucket;

typedef struct { int param; int level; int64_t numel; } mn__slot;

struct mn_dist {
    MPI_Comm comm;
    int rank, size;
    bool owns_mpi;               /* mn_dist_init_world initialised MPI */
    mn_dist_opts opts;
    bool sync;
    float weight;                /* this rank's factor in the gradient sum (mn_dist_set_weight) */
    /* attached executable (buckets.c) */
    mn_exec *ex;
    mn_params *P;
    int nlevels;
    mn__slot *order; int nslots;
    mn__bucket *b; int nb;
    int next;                    /* next bucket to start in this run */
    int done;                    /* buckets whose reduction finished (thread mode) */
    /* communication thread */
    pthread_t thread;
    bool thread_on, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int thread_err;              /* first MPI error code of the thread */
    mn_dist_stats st;
    int early;                   /* buckets of this run started before its last level */
    int tests;                   /* MPI_Test calls of this run */
    double wait_total, comm_total, window_total, cpu_total;
    double first_start;          /* MPI_Wtime when this run's first bucket started */
};

/* An MPI error code as a status with a message naming what failed. */
mn_status mn__dist_mpi_error(int code, const char *what);
/* dist.c: the lowest rank whose h differs from rank 0's, or -1 (on every rank). */
mn_status mn__dist_first_other(mn_dist *d, uint64_t h, int *rank);
/* buckets.c: frees the buckets and stops the thread. */
void mn__dist_detach(mn_dist *d);

#endif
