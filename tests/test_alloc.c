/* tests/test_alloc.c: allocation-failure injection (SQLite's way). The
 * executable is linked with -Wl,--wrap for malloc, calloc, realloc, free,
 * strdup and aligned_alloc, so the k-th allocation the static library (or
 * the tools' code) makes inside an armed region fails. Shared libraries
 * (jansson, libgomp, OpenBLAS) keep their own allocator: jansson's parser
 * reports some failed allocations as syntax errors, so it is left out. For every
 * k until a run completes without a failure, each scenario (loading a
 * checkpoint, building and compiling each model kind, the first optimizer
 * step, loading a plugin) must end in MN_ERR_NOMEM with a message, or in a
 * success only when no allocation failed; every block allocated while armed
 * must be freed by the end of the scenario (LeakSanitizer checks again
 * under scripts/test.sh --asan). The library itself holds no hook. */
#include "harness.h"
#include "train.h"
#include <execinfo.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the wrappers ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void  __real_free(void *p);
void *__real_aligned_alloc(size_t a, size_t n);

static atomic_bool armed;
static atomic_long count, fail_at;
static atomic_bool failed;              /* the injected failure happened */

/* Live blocks allocated while armed (open addressing; removed on free). */
enum { LIVE_CAP = 1 << 18 };
static void *live[LIVE_CAP], *site[LIVE_CAP];   /* block, its caller */
static long nlive;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot(void *p) { return ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 46; }

static void live_add(void *p, void *caller)
{
    if (!p) return;
    pthread_mutex_lock(&live_lock);
    size_t i = slot(p);
    while (live[i]) i = (i + 1) & (LIVE_CAP - 1);
    live[i] = p;
    site[i] = caller;
    nlive++;
    pthread_mutex_unlock(&live_lock);
}

/* Removes p and re-inserts the rest of its cluster (no tombstones). */
static void live_del(void *p)
{
    if (!p) return;
    pthread_mutex_lock(&live_lock);
    size_t i = slot(p);
    while (live[i] && live[i] != p) i = (i + 1) & (LIVE_CAP - 1);
    if (live[i]) {
        live[i] = NULL;
        nlive--;
        for (size_t j = (i + 1) & (LIVE_CAP - 1); live[j]; j = (j + 1) & (LIVE_CAP - 1)) {
            void *q = live[j], *c = site[j];
            live[j] = NULL;
            size_t k = slot(q);
            while (live[k]) k = (k + 1) & (LIVE_CAP - 1);
            live[k] = q;
            site[k] = c;
        }
    }
    pthread_mutex_unlock(&live_lock);
}

/* True when this allocation is the one to fail. */
static bool inject(void)
{
    if (!atomic_load(&armed)) return false;
    if (atomic_fetch_add(&count, 1) + 1 != atomic_load(&fail_at)) return false;
    atomic_store(&failed, true);
    const char *trace = getenv("MNEMO_ALLOC_TRACE");   /* debugging: "k" prints where the k-th failed */
    if (trace && atol(trace) == atomic_load(&fail_at)) {
        void *f[16];
        backtrace_symbols_fd(f, backtrace(f, 16), 2);
        write(2, "--\n", 3);
    }
    return true;
}

#define track(p) track_at(p, __builtin_return_address(0))
static void *track_at(void *p, void *caller)
{
    if (atomic_load(&armed)) live_add(p, caller);
    return p;
}

void *__wrap_malloc(size_t n) { return inject() ? NULL : track(__real_malloc(n)); }
void *__wrap_calloc(size_t n, size_t m) { return inject() ? NULL : track(__real_calloc(n, m)); }
void *__wrap_aligned_alloc(size_t a, size_t n) { return inject() ? NULL : track(__real_aligned_alloc(a, n)); }
void  __wrap_free(void *p) { live_del(p); __real_free(p); }

void *__wrap_realloc(void *p, size_t n)
{
    if (inject()) return NULL;
    void *q = __real_realloc(p, n);
    if (q || !n) live_del(p);
    return track(q);
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = inject() ? NULL : track(__real_malloc(n));
    if (p) memcpy(p, s, n);
    return p;
}

static void arm(long k)
{
    atomic_store(&count, 0);
    atomic_store(&fail_at, k);
    atomic_store(&failed, false);
    mn_clear_error();
    atomic_store(&armed, true);
}

static void disarm(void) { atomic_store(&armed, false); }

/* ---- the driver ---- */

/* A scenario runs its armed part between arm() and disarm(), frees what it
 * made, and returns the status with its message in *msg (copied) and, on
 * success, a fingerprint of what it computed in *fp. */
typedef mn_status (*scenario)(const void *arg, char *msg, size_t n, double *fp);

static long current_k;                  /* the allocation a scenario's arm() fails; 0: none */

/* First a run where nothing fails gives the reference fingerprint. Then
 * allocation k = 1, 2, ... fails until a run completes with no failure: each
 * ends in MN_ERR_NOMEM with a message, or (where the library has a fallback,
 * e.g. a skipped optimisation) in a success that computes the same result.
 * Returns the number of allocations. */
static long inject_all(scenario run, const void *arg, const char *what)
{
    char msg[512];
    double ref = 0, fp = 0;
    current_k = 0;
    mn_status s = run(arg, msg, sizeof msg, &ref);
    ck_assert_msg(s == MN_OK, "%s: %s (%s)", what, mn_status_name(s), msg);
    for (long k = 1;; k++) {
        long before = nlive;
        current_k = k;
        msg[0] = 0;
        s = run(arg, msg, sizeof msg, &fp);
        disarm();
        if (nlive != before) {
            for (size_t i = 0; i < LIVE_CAP; i++)
                if (live[i]) backtrace_symbols_fd(&site[i], 1, 2);   /* who allocated the leaked blocks */
        }
        ck_assert_msg(nlive == before, "%s, allocation %ld failed: %ld blocks leaked", what, k, nlive - before);
        if (!atomic_load(&failed)) {
            ck_assert_msg(s == MN_OK && fp == ref, "%s without a failed allocation: %s (%s)", what, mn_status_name(s), msg);
            return k - 1;
        }
        if (s == MN_OK) {
            ck_assert_msg(fp == ref, "%s, allocation %ld failed: success with a different result (%.9g, not %.9g)", what, k, fp, ref);
            continue;
        }
        ck_assert_msg(s == MN_ERR_NOMEM, "%s, allocation %ld failed: got %s (%s)", what, k, mn_status_name(s), msg);
        ck_assert_msg(strlen(msg) > 0, "%s, allocation %ld failed: no message", what, k);
    }
}

/* sum of every tensor of the store, its size and metadata count */
static double store_fingerprint(mn_params *P)
{
    double f = mn_params_count(P) * 1000.0 + mn_params_meta_count(P);
    for (int i = 0; i < mn_params_count(P); i++) {
        const mn_tensor *t = mn_params_value(P, i);
        for (int64_t j = 0; j < mn_tensor_numel(t); j++) f += mn_f32(t)[j] * (double)(j % 7 + 1);
    }
    return f;
}

static mn_status copy_msg(mn_status s, const char *m, char *msg, size_t n)
{
    snprintf(msg, n, "%s", s && m ? m : "");
    return s;
}

static char dir[256];

static const char *path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* A small configuration of each model kind. */
static mn_train_cfg small(const char *model)
{
    mn_train_cfg c;
    ck_assert_ok(mn_cfg_defaults(&c, model));
    c.batch = 2; c.seq = 3; c.embed = 4; c.hidden = 8; c.layers = 1; c.heads = 2; c.ff = 8; c.latent = 2;
    return c;
}

/* Builds and compiles the training graph of a kind; frees everything. */
static mn_status build_compile(const void *arg, char *msg, size_t n, double *fp)
{
    mn_train_cfg c = small(arg);
    arm(current_k);
    mn_params *P = mn_params_new();
    mn_graph *g = P ? mn_graph_new(P) : NULL;
    mn_exec *ex = NULL;
    if (g) {
        mn_model_graph m = mn_model_build(g, &c, 7, true);
        ex = mn_compile(g, m.loss, &(mn_compile_opts){ .threads = 1 });
    }
    disarm();
    mn_status s = ex ? MN_OK : g ? mn_graph_status(g) : mn_last_status();
    copy_msg(s, g ? mn_graph_errmsg(g) : mn_errmsg(), msg, n);
    if (ex) {
        ck_assert_ok(mn_exec_run(ex));
        *fp = mn_exec_loss(ex) + store_fingerprint(P);
    }
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
    return s;
}

/* The checkpoint: a trained-for-a-step LSTM with Adam's state. */
static void make_checkpoint(void)
{
    mn_train_cfg c = small("lstm");
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_model_graph m = mn_model_build(g, &c, 7, true);
    mn_exec *ex = mn_compile(g, m.loss, &(mn_compile_opts){ .threads = 1 });
    ck_assert_ptr_nonnull(ex);
    mn_optim *o = mn_adam(P, MN_ADAM_DEFAULTS);
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_ok(mn_optim_step(o));
    ck_assert_ok(mn_params_set_meta(P, "mnemo.config", "{\"model\":\"lstm\"}"));
    ck_assert_ok(mn_params_save(P, path("ckpt.safetensors")));
    mn_optim_free(o);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}

static mn_status load_checkpoint(const void *arg, char *msg, size_t n, double *fp)
{
    (void)arg;
    arm(current_k);
    mn_params *P = mn_params_new();
    mn_status s = P ? mn_params_load(P, path("ckpt.safetensors")) : mn_last_status();
    disarm();
    copy_msg(s, mn_errmsg(), msg, n);
    if (!s) *fp = store_fingerprint(P);
    mn_params_free(P);
    return s;
}

/* A compiled MLP; the armed part is its first run and optimizer step. */
static mn_status first_step(const void *arg, char *msg, size_t n, double *fp)
{
    mn_train_cfg c = small("mlp");
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_model_graph m = mn_model_build(g, &c, 0, true);
    mn_exec *ex = mn_compile(g, m.loss, &(mn_compile_opts){ .threads = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    const mn_optim_kind *kind = arg;
    union { mn_sgd_opts sgd; mn_adam_opts adam; mn_rmsprop_opts rms; mn_adagrad_opts ada; mn_lion_opts lion; } h;
    if (!strcmp(kind->name, "sgd")) h.sgd = (mn_sgd_opts){ .lr = 0.1f, .momentum = 0.9f };
    if (!strcmp(kind->name, "adam")) h.adam = MN_ADAM_DEFAULTS;
    if (!strcmp(kind->name, "rmsprop")) h.rms = (mn_rmsprop_opts){ .lr = 1e-2f, .alpha = 0.99f, .eps = 1e-8f, .momentum = 0.5f, .centered = true };
    if (!strcmp(kind->name, "adagrad")) h.ada = MN_ADAGRAD_DEFAULTS;
    if (!strcmp(kind->name, "lion")) h.lion = MN_LION_DEFAULTS;
    arm(current_k);
    mn_optim *o = mn_optim_new(P, kind, &h);
    mn_status s = o ? mn_exec_run(ex) : mn_last_status();
    if (!s) s = mn_optim_step(o);
    disarm();
    copy_msg(s, mn_errmsg(), msg, n);
    if (!s) *fp = store_fingerprint(P);
    mn_optim_free(o);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
    return s;
}

static mn_status load_plugin(const void *arg, char *msg, size_t n, double *fp)
{
    (void)arg;
    char so[600];
    const char *d = getenv("MNEMO_EXAMPLE_PLUGIN_DIR");
    snprintf(so, sizeof so, "%s/swish.so", d ? d : ".");
    arm(current_k);
    mn_status s = mn_plugin_load(so);
    disarm();
    copy_msg(s, mn_errmsg(), msg, n);
    const mn_op_def *op = mn_op_find("swish.swish");
    ck_assert(s ? op == NULL : op != NULL);
    if (!s) ck_assert_str_eq(mn_op_plugin(op), "swish");
    if (!s) *fp = mn_op_count() + 1000.0 * mn_plugin_count();
    mn_plugins_unload();
    return s;
}

/* The readers of the command: a small Brown folder (with a checkpoint's
 * vocabulary, then by frequency), a text file. */
static void make_corpora(void)
{
    mkdir(path("brown"), 0700);
    FILE *f = fopen(path("brown/ca01"), "w");
    ck_assert_ptr_nonnull(f);
    for (int s = 0; s < 40; s++) fprintf(f, "The/at w%d/nn sat/vbd on/in the/at mat%d/nn ./.\n\n", s % 7, s % 3);
    fclose(f);
    f = fopen(path("text.txt"), "w");
    ck_assert_ptr_nonnull(f);
    for (int s = 0; s < 200; s++) fprintf(f, "line %d of the text\n%%\n", s);
    fclose(f);
}

static mn_status load_data(const void *arg, char *msg, size_t n, double *fp)
{
    mn_train_cfg c;
    ck_assert_ok(mn_cfg_defaults(&c, arg));
    snprintf(c.data, sizeof c.data, "%s", path(strcmp(arg, "tagger") ? "text.txt" : "brown"));
    c.batch = 2; c.seq = 6;
    mn_data d;
    arm(current_k);
    mn_status s = mn_data_load(&d, &c);
    char *v = s ? NULL : mn_data_vocab_json(&d);
    if (!s) mn_data_free(&d);
    if (!s && !v) s = MN_ERR_NOMEM;
    if (!s) s = mn_data_load_vocab(&d, &c, v);
    disarm();
    copy_msg(s, v ? mn_errmsg() : "vocab_json: NULL", msg, n);
    if (!s) *fp = (double)d.nsent * 7 + (double)d.text.n * 3 + d.nwords + d.text.vocab + d.unknown;
    if (!s) mn_data_free(&d);
    free(v);
    return s;
}

/* Runs one scenario under injection and reports how many allocations it makes. */
static void run_all(scenario run, const void *arg, const char *what)
{
    long n = inject_all(run, arg, what);
    ck_assert_int_gt(n, 0);
    printf("%s: %ld allocations, each failed once\n", what, n);
}

static const char *const kinds[] = { "mlp", "rnn", "lstm", "gru", "vae", "transformer", "tagger" };

START_TEST(build_and_compile_each_model_kind)
{
    char what[64];
    snprintf(what, sizeof what, "build + compile %s", kinds[_i]);
    run_all(build_compile, kinds[_i], what);
}
END_TEST

START_TEST(load_a_checkpoint)
{
    make_checkpoint();
    run_all(load_checkpoint, NULL, "load checkpoint");
}
END_TEST

START_TEST(first_optimizer_step)
{
    const mn_optim_kind *k[] = { mn_optim_kind_find("sgd"), mn_optim_kind_find("adam"), mn_optim_kind_find("rmsprop"), mn_optim_kind_find("adagrad"),
                                 mn_optim_kind_find("lion") };
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        ck_assert_ptr_nonnull(k[i]);
        run_all(first_step, k[i], "first optimizer step");
    }
}
END_TEST

START_TEST(load_data_sets)
{
    make_corpora();
    run_all(load_data, "tagger", "load brown corpus");
    run_all(load_data, "lstm", "load text");
}
END_TEST

START_TEST(load_the_swish_plugin)
{
    run_all(load_plugin, NULL, "load plugin swish");
}
END_TEST

/* The wrappers themselves: the armed k-th allocation fails, others do not. */
START_TEST(injection_fails_exactly_the_kth_allocation)
{
    arm(2);
    void *a = malloc(8), *b = malloc(8), *c = calloc(1, 8);
    disarm();
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(nlive, 2);
    free(a); free(c);
    ck_assert_int_eq(nlive, 0);
}
END_TEST

int main(void)
{
    void *f[4];
    backtrace(f, 4);                          /* loads libgcc before anything is armed */
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, injection_fails_exactly_the_kth_allocation);
    tcase_add_test(tc, load_a_checkpoint);
    tcase_add_loop_test(tc, build_and_compile_each_model_kind, 0, (int)(sizeof kinds / sizeof *kinds));
    tcase_add_test(tc, first_optimizer_step);
    tcase_add_test(tc, load_the_swish_plugin);
    tcase_add_test(tc, load_data_sets);
    suite_add_tcase(s, tc);
    return mn_test_run_in_tmpdir(s, dir, sizeof dir, "mnemo-alloc");
}
