/* tests/test_bench.c: what `mnemo bench` measures must not drift unseen.
 * Every bench workload's training graph (those built by name only too:
 * lstm_t512, lstm_long) and every inference executable
 * (2 threads) compiles to at most the steps and arena bytes written in
 * fixtures/bench_figures.txt (a figure that grows fails; one that shrinks
 * is reported, to be lowered there); a token of the inference benchmark
 * allocates nothing (the executable is linked with -Wl,--wrap for the
 * allocator, which counts calls made by the static library and bench/);
 * the CPU description is read from /proc/cpuinfo. Set
 * MNEMO_BENCH_FIGURES_WRITE=FILE to write the current figures to FILE. */
#include "harness.h"
#include "workloads.h"
#include "infer.h"
#include "env.h"
#include <stdatomic.h>
#include <string.h>

/* ---- the counting allocator ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
char *__real_strdup(const char *s);

static atomic_bool counting;
static atomic_long allocations;

static void count(void)
{
    if (atomic_load(&counting)) atomic_fetch_add(&allocations, 1);
}

void *__wrap_malloc(size_t n) { count(); return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { count(); return __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { count(); return __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { count(); return __real_aligned_alloc(a, n); }
char *__wrap_strdup(const char *s) { count(); return __real_strdup(s); }

/* ---- the committed figures ---- */

typedef struct { char kind[8], name[32]; long long steps, arena; } figure;

static figure figures[64];
static int nfigures;

static void load_figures(void)
{
    const char *dir = getenv("MNEMO_FIXTURES");
    char path[1024], line[256];
    snprintf(path, sizeof path, "%s/bench_figures.txt", dir ? dir : "tests/fixtures");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    nfigures = 0;
    while (fgets(line, sizeof line, f)) {
        figure *x = &figures[nfigures];
        if (line[0] == '#' || line[0] == '\n') continue;
        ck_assert_msg(nfigures < 64 && sscanf(line, "%7s %31s %lld %lld", x->kind, x->name, &x->steps, &x->arena) == 4,
                      "%s: bad line \"%s\"", path, line);
        nfigures++;
    }
    fclose(f);
}

static const figure *find_figure(const char *kind, const char *name)
{
    for (int i = 0; i < nfigures; i++)
        if (!strcmp(figures[i].kind, kind) && !strcmp(figures[i].name, name)) return &figures[i];
    return NULL;
}

/* Fails when a figure grew; says so when it shrank (lower it in the file). */
static void check_figures(const char *kind, const char *name, const mn_exec *ex)
{
    mn_exec_stats st = mn_exec_get_stats(ex);
    const char *out = getenv("MNEMO_BENCH_FIGURES_WRITE");
    if (out) {
        FILE *f = fopen(out, "a");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s %s %d %lld\n", kind, name, st.steps, (long long)st.arena_bytes);
        fclose(f);
        return;
    }
    load_figures();
    const figure *x = find_figure(kind, name);
    ck_assert_msg(x != NULL, "fixtures/bench_figures.txt has no line \"%s %s STEPS ARENA\" (now %d steps, %lld arena bytes)",
                  kind, name, st.steps, (long long)st.arena_bytes);
    ck_assert_msg(st.steps <= x->steps && st.arena_bytes <= x->arena,
                  "%s %s grew: %d steps (recorded %lld), arena %lld bytes (recorded %lld); if intended, raise it in "
                  "tests/fixtures/bench_figures.txt and say why in the commit", kind, name, st.steps, x->steps,
                  (long long)st.arena_bytes, x->arena);
    if (st.steps < x->steps || st.arena_bytes < x->arena)
        printf("note: %s %s shrank to %d steps, %lld arena bytes: lower it in tests/fixtures/bench_figures.txt\n", kind, name,
               st.steps, (long long)st.arena_bytes);
}

static const mn_compile_opts *two_threads(mn_compile_opts *o)
{
    *o = (mn_compile_opts){ .threads = 2 };
    return mn_tools_compile_opts(o);
}

/* Training workload i of mn_workload_names followed by mn_workload_extra_names; NULL past the end. */
static const char *train_name(int i)
{
    int n = 0;
    while (mn_workload_names[n]) n++;
    if (i < n) return mn_workload_names[i];
    for (int k = 0; mn_workload_extra_names[k]; k++)
        if (k == i - n) return mn_workload_extra_names[k];
    return NULL;
}

START_TEST(training_figures_do_not_grow)
{
    const char *name = train_name(_i);
    mn_workload w;
    mn_compile_opts o;
    ck_assert_ok(mn_workload_build(name, &w));
    mn_exec *ex = mn_compile(w.g, w.loss, two_threads(&o));
    ck_assert_msg(ex != NULL, "%s: %s", name, mn_graph_errmsg(w.g));
    check_figures("train", name, ex);
    mn_exec_free(ex);
    mn_workload_free(&w);
}
END_TEST

START_TEST(inference_figures_do_not_grow)
{
    const char *name = mn_infer_names[_i];
    mn_infer m;
    mn_compile_opts o;
    ck_assert_ok(mn_infer_build(name, two_threads(&o), &m));
    check_figures("infer", name, m.ex);
    mn_infer_free(&m);
}
END_TEST

/* The file names no workload that no longer exists (a stale line would
 * hide a renamed workload that lost its check). */
START_TEST(figures_name_known_workloads)
{
    if (getenv("MNEMO_BENCH_FIGURES_WRITE")) return;
    load_figures();
    for (int i = 0; i < nfigures; i++) {
        bool train = !strcmp(figures[i].kind, "train"), known = false;
        for (int k = 0; train && train_name(k); k++) known = known || !strcmp(train_name(k), figures[i].name);
        for (int k = 0; !train && mn_infer_names[k]; k++) known = known || !strcmp(mn_infer_names[k], figures[i].name);
        ck_assert_msg(known, "bench_figures.txt: no %s workload \"%s\"", figures[i].kind, figures[i].name);
    }
}
END_TEST

/* A token of the inference benchmark reuses the executable's arena and
 * input buffers: no allocation in 50 tokens after a warm-up. */
START_TEST(inference_token_allocates_nothing)
{
    const char *name = mn_infer_names[_i];
    mn_infer m;
    mn_compile_opts o;
    ck_assert_ok(mn_infer_build(name, two_threads(&o), &m));
    for (int i = 0; i < 3; i++) ck_assert_ok(mn_infer_step(&m, i));
    mn_status worst = MN_OK;
    atomic_store(&allocations, 0);
    atomic_store(&counting, true);
    for (int i = 0; i < 50; i++) {
        mn_status s = mn_infer_step(&m, (int32_t)((3 * i + 2) % m.vocab));
        if (s) worst = s;
    }
    atomic_store(&counting, false);
    long n = atomic_load(&allocations);                  /* asserted after the window: Check allocates */
    ck_assert_ok(worst);
    ck_assert_msg(n == 0, "%s: %ld allocations in 50 tokens", name, n);
    mn_infer_free(&m);
}
END_TEST

/* The counter sees the library's allocations (else the check above proves nothing). */
START_TEST(counter_sees_library_allocations)
{
    atomic_store(&allocations, 0);
    atomic_store(&counting, true);
    mn_params *P = mn_params_new();
    atomic_store(&counting, false);
    mn_params_free(P);
    ck_assert_int_gt(atomic_load(&allocations), 0);
}
END_TEST

/* The two models step deterministically and differ per token. */
START_TEST(inference_steps_are_deterministic)
{
    const char *name = mn_infer_names[_i];
    mn_infer a, b;
    mn_compile_opts o;
    ck_assert_ok(mn_infer_build(name, two_threads(&o), &a));
    ck_assert_ok(mn_infer_build(name, two_threads(&o), &b));
    float first[72];
    for (int i = 0; i < 5; i++) {
        ck_assert_ok(mn_infer_step(&a, i));
        ck_assert_ok(mn_infer_step(&b, i));
        if (!i) memcpy(first, mn_infer_logits(&a), sizeof first);
    }
    ck_assert_int_eq(memcmp(mn_infer_logits(&a), mn_infer_logits(&b), (size_t)a.vocab * sizeof(float)), 0);
    ck_assert_int_ne(memcmp(mn_infer_logits(&a), first, sizeof first), 0);
    mn_infer_reset(&a);
    ck_assert_int_eq(mn_infer_step(&a, (int32_t)a.vocab), MN_ERR_INVALID);
    mn_infer_free(&a);
    mn_infer_free(&b);
}
END_TEST

/* The CPU description: a model name, and only extensions /proc/cpuinfo lists as flags. */
START_TEST(cpu_description_matches_cpuinfo)
{
    char model[256], ext[256], line[8192], flags[8192] = "";
    mn_bench_cpu(model, sizeof model, ext, sizeof ext);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) { ck_assert_str_eq(model, "unknown"); return; }
    while (!flags[0] && fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) snprintf(flags, sizeof flags, " %s ", strchr(line, ':') + 1);
    fclose(f);
    ck_assert_str_ne(model, "unknown");
    char *flags_nl = strchr(flags, '\n');
    if (flags_nl) *flags_nl = ' ';
    char copy[256], pad[80];
    snprintf(copy, sizeof copy, "%s", ext);
    for (char *w = strtok(copy, " "); w; w = strtok(NULL, " ")) {
        snprintf(pad, sizeof pad, " %s ", w);
        ck_assert_msg(strstr(flags, pad) != NULL, "extension %s is not among the CPU's flags", w);
    }
    if (strstr(flags, " avx2 ")) ck_assert_ptr_nonnull(strstr(ext, "avx2"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");
    int nw = 0, ni = 0;
    while (train_name(nw)) nw++;
    while (mn_infer_names[ni]) ni++;
    tcase_add_loop_test(tc, training_figures_do_not_grow, 0, nw);
    tcase_add_loop_test(tc, inference_figures_do_not_grow, 0, ni);
    tcase_add_test(tc, figures_name_known_workloads);
    tcase_add_test(tc, counter_sees_library_allocations);
    tcase_add_loop_test(tc, inference_token_allocates_nothing, 0, ni);
    tcase_add_loop_test(tc, inference_steps_are_deterministic, 0, ni);
    tcase_add_test(tc, cpu_description_matches_cpuinfo);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
