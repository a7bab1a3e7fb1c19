/* dist/dist.c: a data-parallel group on an MPI communicator: set-up and
 * tear-down, parameters broadcast from rank 0 and checked equal, means of
 * metrics and agreement on failures. The communicator is a duplicate of the
 * caller's with MPI_ERRORS_RETURN, so an MPI failure is a status, never an
 * abort; only mn_dist_abort ends the processes. */
#include "dist.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mn_status mn__dist_mpi_error(int code, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, s, &n) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", code);
    return mn_set_error(MN_ERR_RUNTIME, "dist: %s: %s", what, s);
}

static mn_status setup(mn_dist *d, MPI_Comm comm)
{
    int rc = MPI_Comm_dup(comm, &d->comm);
    if (rc) return mn__dist_mpi_error(rc, "MPI_Comm_dup");
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(d->comm, &d->rank);
    MPI_Comm_size(d->comm, &d->size);
    return MN_OK;
}

static mn_status check_threads(const mn_dist_opts *o)
{
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    if (o->progress == MN_DIST_PROGRESS_THREAD && level < MPI_THREAD_SERIALIZED)
        return mn_set_error(MN_ERR_UNSUPPORTED, "dist: a communication thread needs MPI initialised with MPI_THREAD_SERIALIZED or more");
    return MN_OK;
}

static mn_status make(mn_dist **out, MPI_Comm comm, const mn_dist_opts *opts, bool owns)
{
    mn_dist_opts o = opts ? *opts : (mn_dist_opts){ 0 };
    if (!o.bucket_bytes) o.bucket_bytes = MN_DIST_BUCKET_BYTES;
    if (!o.first_bucket_bytes) o.first_bucket_bytes = o.bucket_bytes < MN_DIST_FIRST_BUCKET_BYTES ? o.bucket_bytes : MN_DIST_FIRST_BUCKET_BYTES;
    mn_status s = check_threads(&o);
    mn_dist *d = s ? NULL : calloc(1, sizeof *d);
    if (!s && !d) s = mn_set_error(MN_ERR_NOMEM, "dist: out of memory");
    if (!s) {
        d->opts = o;
        d->sync = true;
        d->owns_mpi = owns;
        pthread_mutex_init(&d->mu, NULL);
        pthread_cond_init(&d->cv, NULL);
        s = setup(d, comm);
        d->weight = s ? 1.0f : 1.0f / (float)d->size;
    }
    if (s) { free(d); d = NULL; }
    *out = d;
    return s;
}

mn_status mn_dist_init(mn_dist **out, MPI_Comm comm, const mn_dist_opts *opts)
{
    int up = 0;
    if (!out) return mn_set_error(MN_ERR_MISUSE, "dist: NULL argument");
    *out = NULL;
    MPI_Initialized(&up);
    if (!up) return mn_set_error(MN_ERR_MISUSE, "dist: MPI is not initialised (call MPI_Init first, or mn_dist_init_world)");
    return make(out, comm, opts, false);
}

mn_status mn_dist_init_world(mn_dist **out, int *argc, char ***argv, const mn_dist_opts *opts)
{
    int up = 0, provided = 0;
    if (!out) return mn_set_error(MN_ERR_MISUSE, "dist: NULL argument");
    *out = NULL;
    MPI_Initialized(&up);
    bool thread = opts && opts->progress == MN_DIST_PROGRESS_THREAD;
    if (!up) {
        int rc = MPI_Init_thread(argc, argv, thread ? MPI_THREAD_SERIALIZED : MPI_THREAD_FUNNELED, &provided);
        if (rc) return mn__dist_mpi_error(rc, "MPI_Init_thread");
    }
    mn_status s = make(out, MPI_COMM_WORLD, opts, !up);
    if (s && !up) MPI_Finalize();
    return s;
}

void mn_dist_finalize(mn_dist *d)
{
    if (!d) return;
    mn__dist_detach(d);
    MPI_Comm_free(&d->comm);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    bool owns = d->owns_mpi;
    free(d);
    if (owns) MPI_Finalize();
}

int      mn_dist_rank(const mn_dist *d) { return d ? d->rank : 0; }
int      mn_dist_size(const mn_dist *d) { return d ? d->size : 1; }
MPI_Comm mn_dist_comm(const mn_dist *d) { return d ? d->comm : MPI_COMM_NULL; }
void     mn_dist_set_sync(mn_dist *d, bool on) { if (d) d->sync = on; }

mn_status mn_dist_set_weight(mn_dist *d, double w)
{
    if (!d) return mn_set_error(MN_ERR_MISUSE, "dist: NULL argument");
    if (!(w >= 0 && w <= 1e30)) return mn_set_error(MN_ERR_INVALID, "dist: weight %g is not a finite number >= 0", w);
    d->weight = (float)w;
    return MN_OK;
}

/* Random ops of rank r draw from their own stream: rank 0 keeps the seed
 * (one rank = one process), the others a Philox mix of seed and rank. */
uint64_t mn_dist_seed(const mn_dist *d, uint64_t seed)
{
    if (!d || d->rank == 0) return seed;
    uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) }, ctr[4] = { (uint32_t)d->rank, 0x64697374u, 0, 0 }, out[4];
    mn_philox4x32(key, ctr, out);
    return (uint64_t)out[0] | (uint64_t)out[1] << 32;
}

/* FNV-1a over bytes, continued from h. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ull; }
    return h;
}

/* Names, dtypes and shapes of every tensor of the store, in store order. */
static uint64_t layout_hash(mn_params *P)
{
    uint64_t h = 1469598103934665603ull;
    int n = mn_params_count(P);
    h = fnv(h, &n, sizeof n);
    for (int i = 0; i < n; i++) {
        const mn_tensor *t = mn_params_value(P, i);
        const char *name = mn_params_name(P, i);
        h = fnv(h, name, strlen(name) + 1);
        h = fnv(h, &t->dtype, sizeof t->dtype);
        h = fnv(h, &t->shape.ndim, sizeof t->shape.ndim);
        h = fnv(h, t->shape.d, (size_t)t->shape.ndim * sizeof t->shape.d[0]);
    }
    return h;
}

/* The lowest rank whose hash differs from rank 0's, or -1 (on every rank). */
mn_status mn__dist_first_other(mn_dist *d, uint64_t h, int *rank)
{
    uint64_t h0 = h;
    int rc = MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, d->comm);
    int mine = h0 == h ? d->size : d->rank;
    if (!rc) rc = MPI_Allreduce(&mine, rank, 1, MPI_INT, MPI_MIN, d->comm);
    if (rc) return mn__dist_mpi_error(rc, "comparing ranks");
    if (*rank == d->size) *rank = -1;
    return MN_OK;
}

static mn_status same_layout(mn_dist *d, mn_params *P)
{
    int r = -1;
    mn_status s = mn__dist_first_other(d, layout_hash(P), &r);
    if (!s && r >= 0)
        s = mn_set_error(MN_ERR_INVALID, "dist: rank %d holds other parameters than rank 0 (names, dtypes or shapes differ): "
                         "every rank must build the same model", r);
    return s;
}

mn_status mn_dist_broadcast_params(mn_dist *d, mn_params *P)
{
    if (!d || !P) return mn_set_error(MN_ERR_MISUSE, "dist: NULL argument");
    mn_status s = same_layout(d, P);
    for (int i = 0; !s && i < mn_params_count(P); i++) {
        mn_tensor *t = mn_params_value(P, i);
        size_t bytes = mn_tensor_bytes(t);
        if (bytes > (size_t)1 << 30) return mn_set_error(MN_ERR_UNSUPPORTED, "dist: \"%s\": more than 1 GiB in one tensor", mn_params_name(P, i));
        int rc = MPI_Bcast(t->data, (int)bytes, MPI_BYTE, 0, d->comm);
        if (rc) s = mn__dist_mpi_error(rc, "broadcasting parameters");
    }
    return s;
}

mn_status mn_dist_check_params(mn_dist *d, mn_params *P)
{
    if (!d || !P) return mn_set_error(MN_ERR_MISUSE, "dist: NULL argument");
    mn_status s = same_layout(d, P);
    for (int i = 0; !s && i < mn_params_count(P); i++) {
        const mn_tensor *t = mn_params_value(P, i);
        int r = -1;
        s = mn__dist_first_other(d, fnv(1469598103934665603ull, t->data, mn_tensor_bytes(t)), &r);
        if (!s && r >= 0)
            s = mn_set_error(MN_ERR_INVALID, "dist: parameters differ across ranks: \"%s\" on rank %d differs from rank 0's",
                             mn_params_name(P, i), r);
    }
    return s;
}

mn_status mn_dist_sum(mn_dist *d, double *v, int n)
{
    if (!d || (!v && n)) return mn_set_error(MN_ERR_MISUSE, "dist: NULL argument");
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, d->comm);
    return rc ? mn__dist_mpi_error(rc, "sum over ranks") : MN_OK;
}

mn_status mn_dist_mean(mn_dist *d, double *v, int n)
{
    mn_status s = mn_dist_sum(d, v, n);
    for (int i = 0; !s && i < n; i++) v[i] /= d->size;
    return s;
}

#define MN__DIST_MSG 512

/* Every rank learns each rank's status and message; the lowest failing one wins. */
mn_status mn_dist_agree(mn_dist *d, mn_status s)
{
    if (!d) return mn_set_error(MN_ERR_MISUSE, "dist: NULL argument");
    char mine[MN__DIST_MSG];
    snprintf(mine, sizeof mine, "%s", s ? mn_errmsg() : "");
    int *codes = malloc((size_t)d->size * sizeof *codes);
    char *msgs = malloc((size_t)d->size * MN__DIST_MSG);
    int code = (int)s, rc = !codes || !msgs ? -1 : MPI_Allgather(&code, 1, MPI_INT, codes, 1, MPI_INT, d->comm);
    if (!rc) rc = MPI_Allgather(mine, MN__DIST_MSG, MPI_CHAR, msgs, MN__DIST_MSG, MPI_CHAR, d->comm);
    mn_status out = MN_OK;
    if (rc < 0) out = mn_set_error(MN_ERR_NOMEM, "dist: out of memory");
    else if (rc) out = mn__dist_mpi_error(rc, "agreeing on a status");
    for (int r = 0; !rc && r < d->size && !out; r++)
        if (codes[r]) out = mn_set_error((mn_status)codes[r], "rank %d: %s", r, msgs + (size_t)r * MN__DIST_MSG);
    free(codes);
    free(msgs);
    return out;
}

void mn_dist_abort(mn_dist *d, int exit_code)
{
    MPI_Abort(d ? d->comm : MPI_COMM_WORLD, exit_code);
}

mn_dist_stats mn_dist_get_stats_v2(const mn_dist *d)
{
    mn_dist_stats s = d ? d->st : (mn_dist_stats){ 0 };
    if (d && d->st.runs) {
        s.wait_ms = d->wait_total * 1e3 / (double)d->st.runs;
        s.comm_ms = d->comm_total * 1e3 / (double)d->st.runs;
        s.window_ms = d->window_total * 1e3 / (double)d->st.runs;
        s.cpu_ms = d->cpu_total * 1e3 / (double)d->st.runs;
    }
    return s;
}

/* 0.1's layout and symbol (programs built against 0.1 allocate this much). */
typedef struct {
    int64_t runs;
    int buckets;
    int64_t bytes;
    int early;
    double wait_ms, comm_ms, window_ms;
} stats_0_1;
_Static_assert(offsetof(mn_dist_stats, cpu_ms) == sizeof(stats_0_1), "mn_dist_stats must extend 0.1's layout");
#undef mn_dist_get_stats
stats_0_1 mn_dist_get_stats(const mn_dist *d);
stats_0_1 mn_dist_get_stats(const mn_dist *d)
{
    mn_dist_stats s = mn_dist_get_stats_v2(d);
    return (stats_0_1){ s.runs, s.buckets, s.bytes, s.early, s.wait_ms, s.comm_ms, s.window_ms };
}

void mn_dist_reset_stats(mn_dist *d)
{
    if (!d) return;
    d->st.runs = 0;
    d->wait_total = 0;
    d->comm_total = 0;
    d->window_total = 0;
    d->cpu_total = 0;
}
