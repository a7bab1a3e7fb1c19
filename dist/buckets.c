/* dist/buckets.c: gradient averaging during a run. Gradients are grouped
 * into buckets in the order the schedule completes them (mn_exec_grad_level)
 * and each bucket's allreduce starts from the executor's level hook as soon
 * as its last gradient is final: MPI is then driven between levels
 * (MPI_Test), or a communication thread runs the allreduces. Invariant:
 * every rank starts the same buckets in the same order (checked at attach). */
#include "dist.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int by_level(const void *a, const void *b)
{
    const mn__slot *x = a, *y = b;
    if (x->level != y->level) return x->level < y->level ? -1 : 1;
    return x->param < y->param ? -1 : x->param > y->param;
}

static float *grad(mn_dist *d, int slot) { return mn_f32(mn_params_grad(d->P, d->order[slot].param)); }

static float *bucket_data(mn_dist *d, const mn__bucket *b) { return b->buf ? b->buf : grad(d, b->first); }

/* This rank's gradients times its weight (mn_dist_set_weight), into the
 * bucket's buffer, or in place for a bucket of one tensor. */
static void pack(mn_dist *d, const mn__bucket *b)
{
    float w = d->weight, *dst = b->buf;
    for (int k = b->first; k < b->first + b->count; k++) {
        float *g = grad(d, k);
        int64_t n = d->order[k].numel;
        float *out = dst ? dst : g;
        for (int64_t i = 0; i < n; i++) out[i] = g[i] * w;
        if (dst) dst += n;
    }
}

/* The weighted sum back into the store's gradients (in place: already there). */
static void unpack(mn_dist *d, const mn__bucket *b)
{
    const float *src = b->buf;
    for (int k = b->first; src && k < b->first + b->count; k++) {
        memcpy(grad(d, k), src, (size_t)d->order[k].numel * sizeof *src);
        src += d->order[k].numel;
    }
}

/* ---- the communication thread: blocking allreduces, in bucket order ---- */

static void *comm_thread(void *arg)
{
    mn_dist *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        if (d->done >= d->next) { pthread_cond_wait(&d->cv, &d->mu); continue; }
        mn__bucket *b = &d->b[d->done];
        pthread_mutex_unlock(&d->mu);
        int rc = MPI_Allreduce(MPI_IN_PLACE, bucket_data(d, b), (int)b->floats, MPI_FLOAT, MPI_SUM, d->comm);
        if (!rc) unpack(d, b);
        pthread_mutex_lock(&d->mu);
        if (rc && !d->thread_err) d->thread_err = rc;
        d->done++;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void start_thread_bucket(mn_dist *d)
{
    pack(d, &d->b[d->next]);
    pthread_mutex_lock(&d->mu);
    d->next++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static int finish_thread(mn_dist *d)
{
    pthread_mutex_lock(&d->mu);
    while (d->done < d->nb) pthread_cond_wait(&d->cv, &d->mu);
    int rc = d->thread_err;
    d->thread_err = 0;
    d->next = 0;
    d->done = 0;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* ---- progress from the executor: nonblocking allreduces tested between levels ---- */

static int start_bucket(mn_dist *d)
{
    mn__bucket *b = &d->b[d->next++];
    pack(d, b);
    return MPI_Iallreduce(MPI_IN_PLACE, bucket_data(d, b), (int)b->floats, MPI_FLOAT, MPI_SUM, d->comm, &b->req);
}

/* Tests the oldest unfinished buckets (one MPI_Test advances them all). */
static int progress(mn_dist *d)
{
    int flag = 1, rc = 0;
    while (!rc && flag && d->done < d->next) {
        rc = MPI_Test(&d->b[d->done].req, &flag, MPI_STATUS_IGNORE);
        d->tests++;
        if (!rc && flag) unpack(d, &d->b[d->done++]);
    }
    return rc;
}

static int finish_levels(mn_dist *d)
{
    int rc = 0;
    for (; !rc && d->done < d->nb; d->done++) {
        rc = MPI_Wait(&d->b[d->done].req, MPI_STATUS_IGNORE);
        if (!rc) unpack(d, &d->b[d->done]);
    }
    d->next = 0;
    d->done = 0;
    return rc;
}

static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Whether level L has anything for the group: a bucket to start, one in
 * flight to drive, or the end of the run. Most levels have none, and then
 * cost the hook a few comparisons (no clock, no MPI call). */
static bool busy(const mn_dist *d, int level)
{
    bool levels = d->opts.progress == MN_DIST_PROGRESS_LEVELS;
    if (level >= d->nlevels || (levels && d->done < d->next)) return true;   /* the thread owns done in thread mode */
    return d->next < d->nb && d->b[d->next].ready <= level;
}

/* The hook: after level L, start the buckets it completes; at the end
 * (L == the level count) wait for all of them. Only busy levels read the
 * thread's CPU clock (a system call: 3.5 us here under load): the lstm and
 * transformer steps have 10-14 of them, against 468 and 94 levels. */
static mn_status on_level(void *ctx, int level)
{
    mn_dist *d = ctx;
    if (!d->sync || !d->nb || !busy(d, level)) return MN_OK;
    bool thread = d->opts.progress == MN_DIST_PROGRESS_THREAD;
    bool last = level >= d->nlevels;
    double t0 = MPI_Wtime(), c0 = thread_cpu();
    int rc = 0;
    while (!rc && d->next < d->nb && d->b[d->next].ready <= level) {
        if (level < d->nlevels - 1) d->early++;       /* before the last level: overlaps backward work */
        if (d->next == 0) d->first_start = t0;
        if (thread) start_thread_bucket(d);
        else rc = start_bucket(d);
    }
    if (!rc && !thread) rc = progress(d);
    double t1 = MPI_Wtime();
    d->comm_total += t1 - t0;
    if (!last || rc) {
        d->cpu_total += thread_cpu() - c0;
        return rc ? mn__dist_mpi_error(rc, "starting a gradient allreduce") : MN_OK;
    }
    d->window_total += t1 - d->first_start;
    rc = thread ? finish_thread(d) : finish_levels(d);
    double t2 = MPI_Wtime();
    d->wait_total += t2 - t1;
    d->comm_total += t2 - t1;
    d->cpu_total += thread_cpu() - c0;
    d->st.runs++;
    d->st.early = d->early;
    d->st.tests = d->tests;
    d->early = 0;
    d->tests = 0;
    if (rc) return mn__dist_mpi_error(rc, "averaging gradients");
    return MN_OK;
}

/* ---- attaching ---- */

void mn__dist_detach(mn_dist *d)
{
    if (d->thread_on) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
        d->thread_on = false;
        d->stop = false;
    }
    if (d->ex) mn_exec_set_level_hook(d->ex, NULL, NULL);
    for (int i = 0; i < d->nb; i++) free(d->b[i].buf);
    free(d->b);
    free(d->order);
    d->b = NULL;
    d->order = NULL;
    d->nb = d->nslots = d->next = d->done = 0;
    d->ex = NULL;
    d->P = NULL;
}

/* The gradients ex adds to, in the order it completes them. */
static mn_status collect(mn_dist *d, mn_exec *ex, mn_params *P)
{
    int np = mn_params_count(P);
    d->order = malloc((size_t)(np ? np : 1) * sizeof *d->order);
    if (!d->order) return mn_set_error(MN_ERR_NOMEM, "dist: out of memory");
    for (int p = 0; p < np; p++) {
        const mn_tensor *g = mn_params_grad(P, p);
        int level = g ? mn_exec_grad_level(ex, p) : -1;
        if (level < 0) continue;
        if (g->dtype != MN_F32) return mn_set_error(MN_ERR_DTYPE, "dist: gradient of \"%s\" is not f32", mn_params_name(P, p));
        if (mn_tensor_numel(g) > (1 << 30)) return mn_set_error(MN_ERR_UNSUPPORTED, "dist: \"%s\": more than 2^30 elements", mn_params_name(P, p));
        d->order[d->nslots++] = (mn__slot){ .param = p, .level = level, .numel = mn_tensor_numel(g) };
    }
    return MN_OK;
}

/* Ranks agree on the gradients: the same tensors (names, sizes). Their
 * levels may differ (ranks with other batch sizes compile other schedules). */
static mn_status same_gradients(mn_dist *d)
{
    uint64_t h = 1469598103934665603ull;
    for (int k = 0; k < d->nslots; k++) {
        const char *name = mn_params_name(d->P, d->order[k].param);
        for (const char *c = name; *c; c++) { h ^= (unsigned char)*c; h *= 1099511628211ull; }
        h ^= (uint64_t)d->order[k].numel * 31u;
        h *= 1099511628211ull;
    }
    h ^= (uint64_t)d->nslots;
    int r = -1;
    mn_status s = mn__dist_first_other(d, h, &r);
    if (!s && r >= 0)
        s = mn_set_error(MN_ERR_INVALID, "dist: rank %d compiled another graph than rank 0 (it computes the gradients of other "
                         "parameters: same model and frozen parameters on every rank?)", r);
    return s;
}

/* Rank 0's order (its schedule's) and bucket boundaries, on every rank:
 * the same allreduces in the same order everywhere. The first bucket holds
 * first_bucket_bytes (small: it starts early), the others bucket_bytes. */
static mn_status rank0_layout(mn_dist *d, int *starts)
{
    if (d->rank == 0) {
        qsort(d->order, (size_t)d->nslots, sizeof *d->order, by_level);
        int nb = 0;
        int64_t in = 0;
        for (int k = 0; k < d->nslots; k++) {
            size_t cap = (nb <= 1 ? d->opts.first_bucket_bytes : d->opts.bucket_bytes) / sizeof(float);
            bool fits = k > 0 && (size_t)(in + d->order[k].numel) <= cap && in + d->order[k].numel <= (1 << 30);
            if (!fits) { starts[nb++] = k; in = 0; }
            in += d->order[k].numel;
        }
        starts[nb] = d->nslots;
        d->nb = nb;
    }
    int *params = malloc((size_t)(d->nslots + 1) * sizeof *params);
    if (!params) return mn_set_error(MN_ERR_NOMEM, "dist: out of memory");
    for (int k = 0; k < d->nslots; k++) params[k] = d->order[k].param;
    int rc = MPI_Bcast(params, d->nslots, MPI_INT, 0, d->comm);
    if (!rc) rc = MPI_Bcast(&d->nb, 1, MPI_INT, 0, d->comm);
    if (!rc) rc = MPI_Bcast(starts, d->nb + 1, MPI_INT, 0, d->comm);
    if (!rc && d->rank > 0) {                              /* this rank's slots in rank 0's order */
        mn__slot *mine = calloc((size_t)d->nslots + 1, sizeof *mine);
        int found = 0;
        for (int k = 0; mine && k < d->nslots; k++)
            for (int j = 0; j < d->nslots; j++)
                if (d->order[j].param == params[k]) { mine[k] = d->order[j]; found++; break; }
        if (mine) { free(d->order); d->order = mine; }
        rc = !mine ? -1 : found < d->nslots ? -2 : 0;
    }
    free(params);
    if (rc == -2) return mn_set_error(MN_ERR_INVALID, "dist: rank %d lacks a gradient that rank 0 reduces", d->rank);
    if (rc < 0) return mn_set_error(MN_ERR_NOMEM, "dist: out of memory");
    return rc ? mn__dist_mpi_error(rc, "sharing the bucket layout") : MN_OK;
}

/* The buckets of rank 0's layout; each is ready after this rank's level
 * that completes its last gradient. */
static mn_status make_buckets(mn_dist *d)
{
    int *starts = malloc((size_t)(d->nslots + 2) * sizeof *starts);
    d->b = calloc((size_t)d->nslots + 1, sizeof *d->b);
    mn_status s = !starts || !d->b ? mn_set_error(MN_ERR_NOMEM, "dist: out of memory") : rank0_layout(d, starts);
    for (int i = 0; !s && i < d->nb; i++) {
        mn__bucket *b = &d->b[i];
        b->first = starts[i];
        b->count = starts[i + 1] - starts[i];
        for (int k = b->first; k < b->first + b->count; k++) {
            b->floats += d->order[k].numel;
            if (d->order[k].level > b->ready) b->ready = d->order[k].level;
        }
        if (b->count > 1 && !(b->buf = malloc((size_t)b->floats * sizeof(float))))
            s = mn_set_error(MN_ERR_NOMEM, "dist: out of memory for a %lld-byte bucket", (long long)b->floats * 4);
    }
    free(starts);
    return s;
}

mn_status mn_dist_attach(mn_dist *d, mn_exec *ex, mn_params *P)
{
    if (!d || (ex && !P)) return mn_set_error(MN_ERR_MISUSE, "dist: NULL argument");
    mn__dist_detach(d);
    if (!ex) return MN_OK;
    d->ex = ex;
    d->P = P;
    d->nlevels = mn_exec_level_count(ex);
    mn_status s = mn_dist_agree(d, collect(d, ex, P));
    if (!s) s = same_gradients(d);
    if (!s) s = make_buckets(d);
    if (!s && d->opts.progress == MN_DIST_PROGRESS_THREAD) {
        if (pthread_create(&d->thread, NULL, comm_thread, d)) s = mn_set_error(MN_ERR_RUNTIME, "dist: cannot start the communication thread");
        d->thread_on = !s;
    }
    if (!s) s = mn_exec_set_level_hook(ex, on_level, d);
    if (s) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", mn_errmsg());
        mn__dist_detach(d);
        mn_set_error(s, "%s", msg);
        return s;
    }
    d->st.buckets = d->nb;
    d->st.bytes = 0;
    for (int i = 0; i < d->nb; i++) d->st.bytes += d->b[i].floats * (int64_t)sizeof(float);
    return MN_OK;
}
