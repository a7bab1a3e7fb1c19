/* tools/cmd_dist.c: `mnemo train` under mpirun. The command's one MPI
 * group (process-wide, as the command owns the process): joined when
 * mpirun's environment names a rank, left at exit. Rank 0 alone prints and
 * writes; every decision that could differ between ranks (a failure, the
 * time limit) is agreed on so that no rank waits for one that has left.
 * Without MPI (or without mpirun) the group has one member. */
#include "dist_cli.h"
#include "cmds.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MNEMO_HAVE_MPI
#include "mnemo_dist.h"

static mn_dist *group;                       /* NULL: alone */

static bool launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

/* Megabytes from the environment variable `name` (unset: 0, the library's
 * default); -1 after a message if it is not a number in (0, 1024]. */
static double megabytes(const char *name)
{
    const char *mb = getenv(name);
    char *end = NULL;
    double v = mb ? strtod(mb, &end) : 0;
    if (mb && (end == mb || *end || !(v > 0 && v <= 1024))) {
        fprintf(stderr, "mnemo train: %s=%s: give megabytes between 0 and 1024\n", name, mb);
        return -1;
    }
    return v;
}

/* MNEMO_DIST_BUCKET_MB, MNEMO_DIST_FIRST_BUCKET_MB (the library's defaults
 * when unset) and MNEMO_DIST_PROGRESS=levels|thread. */
static int options(mn_dist_opts *o)
{
    const char *pr = getenv("MNEMO_DIST_PROGRESS");
    double mb = megabytes("MNEMO_DIST_BUCKET_MB"), first = megabytes("MNEMO_DIST_FIRST_BUCKET_MB");
    if (mb < 0 || first < 0) return MN_EXIT_USAGE;
    o->bucket_bytes = (size_t)(mb * 1048576.0);
    o->first_bucket_bytes = (size_t)(first * 1048576.0);
    o->progress = pr && !strcmp(pr, "thread") ? MN_DIST_PROGRESS_THREAD : MN_DIST_PROGRESS_LEVELS;
    if (pr && strcmp(pr, "thread") && strcmp(pr, "levels")) {
        fprintf(stderr, "mnemo train: MNEMO_DIST_PROGRESS=%s: give levels or thread\n", pr);
        return MN_EXIT_USAGE;
    }
    return MN_EXIT_OK;
}

int mn_cli_dist_begin(void)
{
    mn_dist_opts o = { 0 };
    if (!launched_by_mpirun()) return MN_EXIT_OK;
    int rc = options(&o);
    if (rc) return rc;
    if (mn_dist_init_world(&group, NULL, NULL, &o)) {
        fprintf(stderr, "mnemo train: %s\n", mn_errmsg());
        return MN_EXIT_RUNTIME;
    }
    if (mn_dist_rank(group) > 0 && !freopen("/dev/null", "w", stdout)) return MN_EXIT_RUNTIME;
    return MN_EXIT_OK;
}

/* Process CPU seconds at the end of this rank's steps (mn_cli_dist_loss):
 * the first and the latest, and the steps between them. */
static double cpu_first, cpu_last;
static int64_t cpu_steps = -1;

static void count_step(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    cpu_last = (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
    if (cpu_steps++ < 0) cpu_first = cpu_last;
}

/* Each rank's CPU milliseconds per step (its steps after the first) and
 * those inside the group's calls, on rank 0's stdout. (collective) */
static void print_cpu(const mn_dist_stats *st)
{
    enum { MAX_RANKS = 256 };                   /* a fixed array: no rank may leave the collective alone */
    int n = mn_dist_size(group), r = mn_dist_rank(group);
    double v[2 * MAX_RANKS] = { 0 };
    if (n > MAX_RANKS) return;                   /* every rank knows n: all skip it together */
    v[2 * r] = cpu_steps > 0 ? 1e3 * (cpu_last - cpu_first) / (double)cpu_steps : 0;
    v[2 * r + 1] = st->cpu_ms;
    if (!mn_dist_sum(group, v, 2 * n) && cpu_steps > 0) {
        printf("data parallel: CPU per step (steps 2..%lld):", (long long)cpu_steps + 1);
        for (int k = 0; k < n; k++) printf("%s rank %d %.2f ms (%.2f in the allreduces)", k ? "," : "", k, v[2 * k], v[2 * k + 1]);
        printf("\n");
    }
}

void mn_cli_dist_end(void)
{
    mn_dist_stats st = mn_dist_get_stats(group);
    if (group && st.runs)
        printf("data parallel: %lld steps, %d bucket%s of gradients each (%d started during the backward pass); "
               "%.2f ms per step in MPI, %.2f ms of it waiting at the end; %.2f ms from the first bucket to the end of the backward pass; "
               "%d MPI_Test calls in the last step\n",
               (long long)st.runs, st.buckets, st.buckets == 1 ? "" : "s", st.early, st.comm_ms, st.wait_ms, st.window_ms, st.tests);
    if (group) print_cpu(&st);
    mn_dist_finalize(group);
    group = NULL;
}

int  mn_cli_dist_size(void) { return mn_dist_size(group); }
int  mn_cli_dist_rank(void) { return mn_dist_rank(group); }
bool mn_cli_dist_writer(void) { return mn_dist_rank(group) == 0; }

/* Rank r's items of a global batch of B over N ranks: [r*B/N, (r+1)*B/N). */
static int64_t shard_first(int64_t B, int r, int n) { return B * r / n; }

int mn_cli_dist_local(const mn_train_cfg *c, mn_train_cfg *local)
{
    int n = mn_dist_size(group), r = mn_dist_rank(group);
    *local = *c;
    if (c->batch < n) {
        fprintf(stderr, "mnemo train: --batch %d is less than the %d ranks: each rank needs at least one example of the global "
                "batch (--batch %d or more, or fewer ranks)\n", c->batch, n, n);
        return MN_EXIT_USAGE;
    }
    local->batch = (int)(shard_first(c->batch, r + 1, n) - shard_first(c->batch, r, n));
    return MN_EXIT_OK;
}

int64_t mn_cli_dist_shard(const mn_train_cfg *c) { return shard_first(c->batch, mn_dist_rank(group), mn_dist_size(group)); }

uint64_t mn_cli_dist_seed(uint64_t seed) { return mn_dist_seed(group, seed); }

/* The targets of items it[0..n) that a loss counts: every token of a text
 * window or an image's label; the tags of a sentence but its padding. */
static int64_t targets(const mn_data *d, const mn_train_cfg *c, const int64_t *it, int64_t n)
{
    if (d->kind != MN_DATA_TAGS) return n;
    int64_t k = 0;
    for (int64_t b = 0; b < n; b++)
        for (int64_t t = 0; t < c->seq; t++) k += d->tags[it[b] * c->seq + t] != -100;
    return k;
}

static double weight = 1;                      /* this rank's share of the current step's mean */

void mn_cli_dist_step(const mn_data *d, const mn_train_cfg *c, const int64_t *batch)
{
    if (!group) return;
    int n = mn_dist_size(group), r = mn_dist_rank(group);
    int64_t first = shard_first(c->batch, r, n), all = targets(d, c, batch, c->batch);
    int64_t mine = targets(d, c, batch + first, shard_first(c->batch, r + 1, n) - first);
    weight = all > 0 ? (double)mine / (double)all : (double)(shard_first(c->batch, r + 1, n) - first) / c->batch;
    mn_dist_set_weight(group, weight);
}

double mn_cli_dist_loss(double loss)
{
    double v = loss * weight;
    count_step();
    if (group && mn_dist_sum(group, &v, 1)) mn_cli_dist_fail();
    return group ? v : loss;
}

int mn_cli_dist_attach(mn_params *P, mn_exec *ex)
{
    if (!group) return MN_EXIT_OK;
    mn_status s = mn_dist_broadcast_params(group, P);
    if (!s) s = mn_dist_check_params(group, P);
    if (!s) s = mn_dist_attach(group, ex, P);
    if (s) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    mn_dist_stats st = mn_dist_get_stats(group);
    printf("data parallel: %d ranks; gradients %.2f MB per step in %d allreduce bucket%s\n", mn_dist_size(group),
           (double)st.bytes / 1e6, st.buckets, st.buckets == 1 ? "" : "s");
    return MN_EXIT_OK;
}

void mn_cli_dist_detach(void)
{
    if (group) mn_dist_attach(group, NULL, NULL);
}

double mn_cli_dist_mean(double v)
{
    if (group && mn_dist_mean(group, &v, 1)) mn_cli_dist_fail();
    return v;
}

bool mn_cli_dist_any(bool v)
{
    double x = v ? 1.0 : 0.0;
    return mn_cli_dist_mean(x) > 0;
}

int mn_cli_dist_agree(int rc)
{
    if (!group) return rc;
    int codes[2] = { rc ? rc : 0, rc ? mn_dist_rank(group) : mn_dist_size(group) }, worst[2];
    int e = MPI_Allreduce(&codes[0], &worst[0], 1, MPI_INT, MPI_MAX, mn_dist_comm(group));
    if (!e) e = MPI_Allreduce(&codes[1], &worst[1], 1, MPI_INT, MPI_MIN, mn_dist_comm(group));
    if (e) mn_cli_dist_fail();
    if (rc)
        fprintf(stderr, "mnemo train: rank %d of %d: stopping every rank after this error\n", mn_dist_rank(group), mn_dist_size(group));
    else if (worst[0] && mn_dist_rank(group) == 0)
        fprintf(stderr, "mnemo train: rank %d failed (its message is on stderr too); every rank stops\n", worst[1]);
    return worst[0];
}

void mn_cli_dist_fail(void)
{
    if (!group) return;
    fprintf(stderr, "mnemo train: rank %d of %d failed; ending every rank\n", mn_dist_rank(group), mn_dist_size(group));
    fflush(stderr);
    mn_dist_abort(group, MN_EXIT_RUNTIME);
}

#else   /* built without MPI: a group of one */

int     mn_cli_dist_begin(void) { return MN_EXIT_OK; }
void    mn_cli_dist_end(void) {}
int     mn_cli_dist_size(void) { return 1; }
int     mn_cli_dist_rank(void) { return 0; }
bool    mn_cli_dist_writer(void) { return true; }
int     mn_cli_dist_local(const mn_train_cfg *c, mn_train_cfg *local) { *local = *c; return MN_EXIT_OK; }
int64_t mn_cli_dist_shard(const mn_train_cfg *c) { (void)c; return 0; }
uint64_t mn_cli_dist_seed(uint64_t seed) { return seed; }
void    mn_cli_dist_step(const mn_data *d, const mn_train_cfg *c, const int64_t *batch) { (void)d; (void)c; (void)batch; }
double  mn_cli_dist_loss(double loss) { return loss; }
int     mn_cli_dist_attach(mn_params *P, mn_exec *ex) { (void)P; (void)ex; return MN_EXIT_OK; }
void    mn_cli_dist_detach(void) {}
double  mn_cli_dist_mean(double v) { return v; }
bool    mn_cli_dist_any(bool v) { return v; }
int     mn_cli_dist_agree(int rc) { return rc; }
void    mn_cli_dist_fail(void) {}

#endif
