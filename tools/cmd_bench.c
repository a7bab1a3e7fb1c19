/* tools/cmd_bench.c: `mnemo bench`: one full training step (forward, loss,
 * backward, Adam lr 1e-3) and the forward pass alone of each workload,
 * timed after a warm-up for about --budget seconds; JSON lines with the
 * keys of ../shared/bench/WORKLOADS.md. */
#include "cmds.h"
#include "workloads.h"
#include "infer.h"
#include "env.h"
#include "train.h"
#include <limits.h>
#include <math.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define MN_HAVE_MALLINFO2 1   /* glibc 2.33 and later */
#include <malloc.h>
#endif

static double now(void) { return mn_tools_seconds(CLOCK_MONOTONIC); }

static double cpu(void) { return mn_tools_seconds(CLOCK_PROCESS_CPUTIME_ID); }

static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

typedef struct { double med, min, max, cpu_per_wall; int n; } timing;

/* Warm-up (3 runs), then n runs where n fills `budget` seconds (5..200). */
static mn_status timed(mn_exec *ex, mn_optim *o, double budget, timing *r)
{
    double t0 = now();
    for (int i = 0; i < 3; i++) {
        if (mn_exec_run(ex)) return mn_last_status();
        if (o) { mn_optim_step(o); mn_optim_zero_grad(o); }
    }
    double per = (now() - t0) / 3;
    int n = (int)(budget / (per > 1e-6 ? per : 1e-6));
    n = n < 5 ? 5 : n > 200 ? 200 : n;
    double *ms = malloc((size_t)n * sizeof *ms), c0 = cpu(), w0 = now();
    if (!ms) return MN_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        double a = now();
        if (mn_exec_run(ex)) { free(ms); return mn_last_status(); }
        if (o) { mn_optim_step(o); mn_optim_zero_grad(o); }
        ms[i] = 1e3 * (now() - a);
    }
    r->cpu_per_wall = (cpu() - c0) / (now() - w0);
    qsort(ms, (size_t)n, sizeof *ms, cmp_d);
    *r = (timing){ ms[n / 2], ms[0], ms[n - 1], r->cpu_per_wall, n };
    free(ms);
    return MN_OK;
}

/* --profile: n more training steps with kernel timing; the slowest ops,
 * and with --profile-steps every step's time written to steps_path. */
static bool profile(mn_exec *ex, mn_optim *o, int n, int top, const char *steps_path)
{
    mn_op_time rows[64];
    mn_profile_summary sum;
    bool ok = true;
    if (mn_exec_set_profiling(ex, true)) return false;
    for (int i = 0; i < n; i++) {
        if (mn_exec_run(ex)) { fprintf(stderr, "mnemo bench: %s\n", mn_errmsg()); return false; }
        mn_optim_step(o); mn_optim_zero_grad(o);
    }
    int k = mn_exec_profile(ex, rows, top < 64 ? top : 64, &sum);
    printf("  profile over %d runs: run %.2f ms = kernels on the critical path %.2f + sync/imbalance %.2f + gradient sinks %.2f "
           "(+ %.2f unaccounted)\n", sum.runs, sum.wall_ms, sum.kernel_ms, sum.sync_ms, sum.sinks_ms,
           sum.wall_ms - sum.kernel_ms - sum.sync_ms - sum.sinks_ms);
    printf("  %-22s %7s %10s %6s\n", "op", "calls", "ms/run", "share");
    double tot = 0;
    for (int i = 0; i < k; i++) tot += rows[i].ms;
    for (int i = 0; i < k; i++)
        printf("  %-22s %7d %10.3f %5.1f%%\n", rows[i].op, rows[i].calls, rows[i].ms, 100 * rows[i].ms / (tot > 0 ? tot : 1));
    if (steps_path) {
        FILE *f = fopen(steps_path, "w");
        ok = f && mn_exec_profile_steps(ex, f) == MN_OK;
        if (f && fclose(f) != 0) ok = false;
        if (!ok) fprintf(stderr, "mnemo bench: cannot write %s\n", steps_path);
        else printf("  per-step times written to %s\n", steps_path);
    }
    mn_exec_set_profiling(ex, false);
    return ok;
}

/* --memory-budget (issue 17): the training graph's arena limit, 0 none. */
static int64_t memory_budget;

/* Resident bytes now (/proc/self/statm), 0 when unknown; and the peak so far. */
static int64_t rss_now(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (f) fclose(f);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

/* A "Name:   N kB" line of /proc/self/status in bytes, 0 when unknown. */
static int64_t proc_status(const char *key)
{
    char line[256];
    long long kb = 0;
    size_t n = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, "%lld", &kb) == 1) break;
    if (f) fclose(f);
    return (int64_t)kb * 1024;
}

/* The anonymous pages of executable mappings resident now: code generated
 * at run time (oneDNN's JIT kernels, 3.4 MB once its sgemm has run here),
 * program text like the libraries' own, not training data. Read from
 * /proc/self/smaps: the "Anonymous:" lines of mappings whose permissions
 * hold x. 0 when unknown. */
static int64_t code_anon(void)
{
    char line[512], perms[8] = "";
    long long kb, total = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) continue;      /* a mapping's header */
        if (!strncmp(line, "Anonymous:", 10) && strchr(perms, 'x') && sscanf(line + 10, "%lld", &kb) == 1) total += kb;
    }
    if (f) fclose(f);
    return (int64_t)total * 1024;
}

/* The peak of the process's data pages: the resident peak less the
 * file-backed pages resident now (the libraries' code) and the anonymous
 * executable ones (generated code). Both only grow while kernels are first
 * used or generated, so this never overstates the data peak by more than
 * the code pages evicted since. */
static int64_t anon_peak(int64_t code)
{
    return proc_status("VmHWM") - proc_status("RssFile") - proc_status("RssShmem") - code;
}

/* Free bytes glibc's heap keeps after the training runs: freed blocks it
 * has not returned (a library's per-call buffers leave such holes), part of
 * the resident data; 0 elsewhere. */
static int64_t heap_free(void)
{
#ifdef MN_HAVE_MALLINFO2
    return (int64_t)mallinfo2().fordblks;
#else
    return 0;
#endif
}

static int64_t rss_peak(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)ru.ru_maxrss * 1024;
}

/* A compile counter by name, 0 when the pass did not report it. */
static double stat0(const mn_exec *ex, const char *name)
{
    double v = mn_exec_stat(ex, name);
    return isnan(v) ? 0 : v;
}

/* The bytes of the store's tensors, values and gradients (zeroed when the
 * store creates them, so resident from then on). */
static double store_bytes(mn_params *P)
{
    double b = 0;
    for (int i = 0; i < mn_params_count(P); i++) {
        const mn_tensor *g = mn_params_grad(P, i);
        b += (double)mn_tensor_bytes(mn_params_value(P, i)) + (g ? (double)mn_tensor_bytes(g) : 0);
    }
    return b;
}

/* bench_one and against_plain: one workload each. */
typedef int (*bench_fn)(const char *name, int threads, double budget, bool json, int prof, const char *steps_path);

static int bench_one(const char *name, int threads, double budget, bool json, int prof, const char *steps_path)
{
    mn_workload w;
    mn_exec *tr = NULL, *fw = NULL;
    mn_optim *o = NULL;
    timing t = { 0 }, f = { 0 };
    int64_t rss_base = rss_now(), train_rss = 0;       /* issue 17: the training run's own peak, before the forward-only one runs */
    mn_status s = mn_workload_build(name, &w);
    int64_t anon_base = proc_status("RssAnon") - code_anon(), train_anon = 0, code = 0, slack = 0;   /* the caller's graph and weights are resident from here */
    double store_built = s ? 0 : store_bytes(w.P);
    double c0 = cpu(), w0 = now();
    if (!s && !(tr = mn_compile(w.g, w.loss, mn_tools_compile_opts(&(mn_compile_opts){ .threads = threads, .memory_budget = memory_budget })))) s = mn_graph_status(w.g);
    double compile_cpu_ms = (cpu() - c0) * 1e3, compile_ms = 1e3 * (now() - w0);
    const mn_node *outs[1] = { w.loss };
    if (!s && !(fw = mn_compile(w.g, NULL, mn_tools_compile_opts(&(mn_compile_opts){ .threads = threads, .outputs = outs, .noutputs = 1 })))) s = mn_graph_status(w.g);
    if (!s && !(o = mn_adam(w.P, MN_ADAM_DEFAULTS))) s = mn_last_status();
    if (!s) { mn_optim_set_threads(o, threads); mn_workload_feed(&w, tr, 1); mn_workload_feed(&w, fw, 1); }
    if (!s) s = timed(tr, o, budget, &t);
    if (!s) train_rss = rss_peak();
    if (!s) code = code_anon();
    if (!s) slack = heap_free();
    if (!s) train_anon = anon_peak(code);
    if (!s) s = timed(fw, NULL, budget / 3, &f);
    if (s) {
        fprintf(stderr, "mnemo bench %s: %s\n", name, mn_graph_status(w.g) ? mn_graph_errmsg(w.g) : mn_errmsg());
        mn_optim_free(o); mn_exec_free(tr); mn_exec_free(fw); mn_workload_free(&w);
        return MN_EXIT_RUNTIME;
    }
    mn_exec_stats st = mn_exec_get_stats(tr);
    /* issue 17: what training adds to the data resident after the graph was
     * built: the training executable's plan (arena, inputs, tables, the
     * store's values and gradients, less both: the store zeroes a gradient
     * when it creates it, so they were resident at the base already), the
     * forward executable's tables (its arena is untouched until it runs),
     * Adam's two moments and the run's gradient backup */
    double weights = 4.0 * (double)mn_params_numel(w.P);
    double predicted_anon = (double)anon_base + stat0(tr, "plan.predicted_peak_bytes") - store_built + stat0(fw, "plan.table_bytes") + 3 * weights;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double gflops = w.train_flops / (t.med * 1e-3) / 1e9;
    char cpu_model[256], cpu_ext[256];
    mn_bench_cpu(cpu_model, sizeof cpu_model, cpu_ext, sizeof cpu_ext);
    if (json)
        printf("{\"workload\": \"%s\", \"cpu\": \"%s\", \"cpu_ext\": \"%s\", \"blas_core\": \"%s\", \"compile_ms\": %.2f, \"threads\": %d, \"params\": %lld, \"train_ms_median\": %.3f, \"train_ms_min\": %.3f, "
               "\"train_ms_max\": %.3f, \"fwd_ms_median\": %.3f, \"gflops\": %.2f, \"naive_bytes\": %lld, "
               "\"lower_bound_bytes\": %lld, \"arena_bytes\": %lld, \"peak_rss_bytes\": %lld, \"cpu_per_wall\": %.2f, "
               "\"steps\": %d, \"levels\": %d, \"fused_groups\": %d, \"fused_nodes\": %d, \"cse\": %d, \"placed\": %d, \"n_train\": %d, "
               "\"compile_cpu_ms\": %.1f, \"memory_budget_bytes\": %lld, \"recompute_segments\": %.0f, \"recompute_values\": %.0f, "
               "\"recompute_steps\": %.0f, \"recompute_added_flops\": %.0f, \"predicted_peak_bytes\": %.0f, \"rss_base_bytes\": %lld, "
               "\"train_peak_rss_bytes\": %lld, \"table_bytes\": %.0f, \"anon_base_bytes\": %lld, \"train_peak_anon_bytes\": %lld, "
               "\"predicted_train_anon_bytes\": %.0f, \"code_anon_bytes\": %lld, \"heap_free_bytes\": %lld, \"gemm\": \"%s\"}\n",
               name, cpu_model, cpu_ext, mn_bench_blas_core(), compile_ms, mn_get_num_threads() > 0 && threads == 0 ? mn_get_num_threads() : threads, (long long)mn_params_numel(w.P),
               t.med, t.min, t.max, f.med, gflops, (long long)st.naive_bytes, (long long)st.lower_bound_bytes,
               (long long)st.arena_bytes, (long long)ru.ru_maxrss * 1024, t.cpu_per_wall, st.steps, st.levels, st.fused_groups, st.fused_nodes, st.cse, st.placed, t.n,
               compile_cpu_ms, (long long)memory_budget, stat0(tr, "recompute.segments"), stat0(tr, "recompute.values"),
               stat0(tr, "recompute.steps"), stat0(tr, "recompute.added_flops"), stat0(tr, "plan.predicted_peak_bytes"),
               (long long)rss_base, (long long)train_rss, stat0(tr, "plan.table_bytes"), (long long)anon_base, (long long)train_anon,
               predicted_anon, (long long)code, (long long)slack, mn_bench_gemm());
    else
        printf("%-12s %2d thr  train %8.2f ms (%.2f-%.2f, n=%d)  fwd %7.2f ms  %6.1f GFLOP/s  cpu/wall %.2f  arena %.1f MiB "
               "(lower bound %.1f, naive %.1f)\n", name, threads, t.med, t.min, t.max, t.n, f.med, gflops, t.cpu_per_wall,
               (double)st.arena_bytes / 1048576, (double)st.lower_bound_bytes / 1048576, (double)st.naive_bytes / 1048576);
    int rc = prof > 0 && !profile(tr, o, t.n, prof, steps_path) ? MN_EXIT_RUNTIME : MN_EXIT_OK;
    fflush(stdout);
    mn_optim_free(o); mn_exec_free(tr); mn_exec_free(fw); mn_workload_free(&w);
    return rc;
}

/* --against-plain (issue 17): the budgeted training step against the plain
 * one in one process, steps alternating (plain, budgeted, budgeted, plain,
 * ...), so that neither where the process landed nor a slow phase of the
 * machine falls on one side only; the same store and Adam serve both
 * executables. Prints both medians, their ratio and the median of the
 * per-pair ratios. */
static int against_plain(const char *name, int threads, double budget, bool json, int prof, const char *steps_path)
{
    (void)prof; (void)steps_path;            /* refused with --against-plain (cmd_bench) */
    mn_workload w;
    mn_exec *ex[2] = { NULL, NULL };
    mn_optim *o = NULL;
    double *ms[2] = { NULL, NULL }, *ratio = NULL;
    int n = 0;
    mn_status s = mn_workload_build(name, &w);
    for (int k = 0; k < 2 && !s; k++)
        if (!(ex[k] = mn_compile(w.g, w.loss, mn_tools_compile_opts(&(mn_compile_opts){ .threads = threads, .memory_budget = k ? memory_budget : 0 }))))
            s = mn_graph_status(w.g);
    if (!s && !(o = mn_adam(w.P, MN_ADAM_DEFAULTS))) s = mn_last_status();
    if (!s) { mn_optim_set_threads(o, threads); mn_workload_feed(&w, ex[0], 1); mn_workload_feed(&w, ex[1], 1); }
    double per = 0;
    for (int k = 0; k < 2 && !s; k++)          /* warm-up: two steps each, the second timed for the count */
        for (int i = 0; i < 2 && !s; i++) {
            double a = now();
            if (mn_exec_run(ex[k])) s = mn_last_status();
            else { mn_optim_step(o); mn_optim_zero_grad(o); }
            if (i) per += now() - a;
        }
    if (!s) {
        n = (int)(budget / (per > 1e-6 ? per : 1e-6));
        n = n < 3 ? 3 : n > 200 ? 200 : n;
        ms[0] = malloc((size_t)n * sizeof *ms[0]);
        ms[1] = malloc((size_t)n * sizeof *ms[1]);
        ratio = malloc((size_t)n * sizeof *ratio);
        if (!ms[0] || !ms[1] || !ratio) s = mn_set_error(MN_ERR_NOMEM, "bench: out of memory");
    }
    for (int i = 0; i < n && !s; i++)
        for (int j = 0; j < 2 && !s; j++) {
            int k = (i + j) % 2;               /* pairs alternate which side runs first */
            double a = now();
            if (mn_exec_run(ex[k])) s = mn_last_status();
            else { mn_optim_step(o); mn_optim_zero_grad(o); ms[k][i] = 1e3 * (now() - a); }
        }
    if (s) {
        fprintf(stderr, "mnemo bench %s: %s\n", name, mn_graph_status(w.g) ? mn_graph_errmsg(w.g) : mn_errmsg());
        free(ms[0]); free(ms[1]); free(ratio);
        mn_optim_free(o); mn_exec_free(ex[0]); mn_exec_free(ex[1]); mn_workload_free(&w);
        return MN_EXIT_RUNTIME;
    }
    for (int i = 0; i < n; i++) ratio[i] = ms[1][i] / ms[0][i];
    qsort(ms[0], (size_t)n, sizeof *ms[0], cmp_d);
    qsort(ms[1], (size_t)n, sizeof *ms[1], cmp_d);
    qsort(ratio, (size_t)n, sizeof *ratio, cmp_d);
    int64_t arena[2] = { mn_exec_get_stats(ex[0]).arena_bytes, mn_exec_get_stats(ex[1]).arena_bytes };
    if (json)
        printf("{\"workload\": \"%s\", \"threads\": %d, \"memory_budget_bytes\": %lld, \"pairs\": %d, \"plain_ms_median\": %.3f, "
               "\"budgeted_ms_median\": %.3f, \"ratio_of_medians\": %.4f, \"pair_ratio_median\": %.4f, \"pair_ratio_min\": %.4f, "
               "\"pair_ratio_max\": %.4f, \"plain_arena_bytes\": %lld, \"budgeted_arena_bytes\": %lld, \"recompute_added_flops\": %.0f}\n",
               name, threads, (long long)memory_budget, n, ms[0][n / 2], ms[1][n / 2], ms[1][n / 2] / ms[0][n / 2], ratio[n / 2],
               ratio[0], ratio[n - 1], (long long)arena[0], (long long)arena[1], stat0(ex[1], "recompute.added_flops"));
    else
        printf("%-12s %2d thr  plain %8.2f ms (arena %lld)  budgeted %8.2f ms (arena %lld, budget %lld)  budgeted/plain %.3f "
               "(pairs: median %.3f, %.3f-%.3f, n=%d)\n", name, threads, ms[0][n / 2], (long long)arena[0], ms[1][n / 2],
               (long long)arena[1], (long long)memory_budget, ms[1][n / 2] / ms[0][n / 2], ratio[n / 2], ratio[0], ratio[n - 1], n);
    fflush(stdout);
    free(ms[0]); free(ms[1]); free(ratio);
    mn_optim_free(o); mn_exec_free(ex[0]); mn_exec_free(ex[1]); mn_workload_free(&w);
    return MN_EXIT_OK;
}

/* OpenBLAS sgemm throughput at n x n x n (the ceiling a GEMM-bound step can reach). */
static double sgemm_gflops(int n, int threads, double budget)
{
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b), *c = malloc((size_t)n * n * sizeof *c);
    if (!a || !b || !c) { free(a); free(b); free(c); return 0; }
    mn_rng_fill_uniform(a, (int64_t)n * n, 1, 1, -1, 1);
    mn_rng_fill_uniform(b, (int64_t)n * n, 1, 2, -1, 1);
    mn_params *P = mn_params_new();              /* a matmul through mnemo, so it uses the same threads and BLAS */
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "a", MN_F32, MN_SHAPE(n, n)), *y = mn_input(g, "b", MN_F32, MN_SHAPE(n, n));
    const mn_node *outs[1] = { mn_matmul(g, x, y, false, false) };
    mn_exec *ex = mn_compile(g, NULL, mn_tools_compile_opts(&(mn_compile_opts){ .threads = threads, .outputs = outs, .noutputs = 1 }));
    mn_exec_feed_data(ex, "a", a, (size_t)n * n * sizeof *a);
    mn_exec_feed_data(ex, "b", b, (size_t)n * n * sizeof *b);
    timing t;
    double r = timed(ex, NULL, budget, &t) ? 0 : 2.0 * n * n * (double)n / (t.med * 1e-3) / 1e9;
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    free(a); free(b); free(c);
    return r;
}

/* --compile: how long mn_compile takes on one workload's training graph
 * (the figures the suite's bench check keeps from growing, and the time). */
static int compile_one(const char *name, int threads, bool json)
{
    mn_workload w;
    mn_exec *ex = NULL;
    mn_status s = mn_workload_build(name, &w);
    double t0 = now(), c0 = cpu();           /* CPU time too: it holds up on a loaded machine (the compiler is serial) */
    if (!s && !(ex = mn_compile(w.g, w.loss, mn_tools_compile_opts(&(mn_compile_opts){ .threads = threads, .memory_budget = memory_budget })))) s = mn_graph_status(w.g);
    double ms = 1e3 * (now() - t0), cpu_ms = 1e3 * (cpu() - c0);
    if (s) {
        fprintf(stderr, "mnemo bench %s: %s\n", name, mn_graph_status(w.g) ? mn_graph_errmsg(w.g) : mn_errmsg());
        mn_workload_free(&w);
        return MN_EXIT_RUNTIME;
    }
    mn_exec_stats st = mn_exec_get_stats(ex);
    if (json)
        printf("{\"compile\": \"%s\", \"threads\": %d, \"compile_ms\": %.2f, \"compile_cpu_ms\": %.2f, \"nodes\": %d, \"steps\": %d, \"levels\": %d, "
               "\"arena_bytes\": %lld, \"pass_ms\": {", name, threads, ms, cpu_ms, st.nodes_total, st.steps, st.levels, (long long)st.arena_bytes);
    else
        printf("%-12s compile %8.2f ms (cpu %.2f)  %6d nodes  %5d steps  %5d levels  arena %lld bytes\n  passes (ms):", name, ms,
               cpu_ms, st.nodes_total, st.steps, st.levels, (long long)st.arena_bytes);
    int shown = 0;
    for (int i = 0; i < mn_exec_stat_count(ex); i++) {     /* each compiler pass's time, "<pass>.ms" */
        const char *stat = mn_exec_stat_name(ex, i);
        size_t len = strlen(stat);
        if (len < 4 || strcmp(stat + len - 3, ".ms")) continue;
        if (json) printf("%s\"%.*s\": %.2f", shown++ ? ", " : "", (int)(len - 3), stat, mn_exec_stat_value(ex, i));
        else printf(" %.*s %.2f", (int)(len - 3), stat, mn_exec_stat_value(ex, i));
    }
    printf(json ? "}}\n" : "\n");
    fflush(stdout);
    mn_exec_free(ex);
    mn_workload_free(&w);
    return MN_EXIT_OK;
}

/* --infer: one token at a time, batch 1, tokens per second; with a
 * weights folder, the weights go to DIR/NAME.safetensors and the logits of
 * the probe (reset, then tokens (5 k + 1) mod vocab, k < 16) into the JSON,
 * so that scripts/infer_torch.py runs the same model and checks them. */
static int infer_one(const char *name, int threads, double budget, bool json, const char *dir)
{
    mn_infer m;
    double t0 = now();
    mn_status s = mn_infer_build(name, mn_tools_compile_opts(&(mn_compile_opts){ .threads = threads }), &m);
    double compile_ms = 1e3 * (now() - t0);
    char path[4096];
    if (!s && dir) {
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
        s = mn_params_save(m.P, path);
    }
    for (int i = 0; i < 16 && !s; i++) s = mn_infer_step(&m, (int32_t)((5 * i + 1) % m.vocab));
    float probe[256];
    memcpy(probe, mn_infer_logits(&m), (size_t)m.vocab * sizeof *probe);
    int n = 0, cap = 100000;
    double *ms = malloc((size_t)cap * sizeof *ms), start = now();
    if (!ms && !s) s = mn_set_error(MN_ERR_NOMEM, "bench: out of memory");
    while (!s && n < cap && (n < 20 || now() - start < budget)) {
        double a = now();
        s = mn_infer_step(&m, (int32_t)((3 * n + 2) % m.vocab));
        ms[n++] = 1e3 * (now() - a);
    }
    if (s) {
        fprintf(stderr, "mnemo bench %s: %s\n", name, m.g && mn_graph_status(m.g) ? mn_graph_errmsg(m.g) : mn_errmsg());
        free(ms);
        mn_infer_free(&m);
        return MN_EXIT_RUNTIME;
    }
    qsort(ms, (size_t)n, sizeof *ms, cmp_d);
    mn_exec_stats st = mn_exec_get_stats(m.ex);
    if (json) {
        printf("{\"infer\": \"%s\", \"threads\": %d, \"context\": %lld, \"token_ms_median\": %.4f, \"token_ms_min\": %.4f, "
               "\"tokens_per_s\": %.1f, \"n\": %d, \"compile_ms\": %.2f, \"steps\": %d, \"arena_bytes\": %lld, \"probe_logits\": [",
               name, threads, (long long)m.context, ms[n / 2], ms[0], 1e3 / ms[n / 2], n, compile_ms, st.steps, (long long)st.arena_bytes);
        for (int64_t i = 0; i < m.vocab; i++) printf("%s%.7g", i ? ", " : "", probe[i]);
        printf("]%s%s%s}\n", dir ? ", \"weights\": \"" : "", dir ? path : "", dir ? "\"" : "");
    } else
        printf("%-15s %2d thr  token %.4f ms (min %.4f, n=%d)  %.1f tokens/s  context %lld  %d steps  arena %.2f MiB\n", name,
               threads, ms[n / 2], ms[0], n, 1e3 / ms[n / 2], (long long)m.context, st.steps, (double)st.arena_bytes / 1048576);
    fflush(stdout);
    free(ms);
    mn_infer_free(&m);
    return MN_EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option lo[] = { { "workload", 1, 0, 'w' }, { "threads", 1, 0, 't' }, { "budget", 1, 0, 'b' },
                                        { "json", 0, 0, 'j' }, { "sgemm", 0, 0, 's' }, { "profile", 2, 0, 'p' }, { "profile-steps", 1, 0, 'P' }, { "help", 0, 0, 'h' },
                                        { "memory-budget", 1, 0, 'M' }, { "against-plain", 0, 0, 'A' },     /* issue 17 */
                                        { "compile", 0, 0, 'c' }, { "infer", 0, 0, 'i' }, { "save-weights", 1, 0, 'W' }, { 0, 0, 0, 0 } };
    const char *which = "all", *steps_path = NULL, *weights_dir = NULL;
    bool compile_only = false, infer = false, vs_plain = false;
    int threads = 0, c, prof = 0;
    int64_t t;
    double budget = 3.0;
    bool json = false, sgemm = false;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'w': which = optarg; break;
        case 't': if (!mn_cfg_parse_int("bench", "threads", optarg, 0, INT_MAX, &t)) return MN_EXIT_USAGE; threads = (int)t; break;
        case 'b': budget = atof(optarg); break;
        case 'j': json = true; break;
        case 's': sgemm = true; break;
        case 'p': prof = optarg ? atoi(optarg) : 20; if (prof <= 0) prof = 20; break;
        case 'P': steps_path = optarg; if (!prof) prof = 20; break;
        case 'M': if (!mn_cfg_parse_bytes("bench", "memory-budget", optarg, &memory_budget)) return MN_EXIT_USAGE; break;   /* issue 17 */
        case 'A': vs_plain = true; break;   /* issue 17 */
        case 'c': compile_only = true; break;
        case 'i': infer = true; break;
        case 'W': weights_dir = optarg; break;
        case 'h':
            printf("usage: mnemo bench [--workload NAME|all] [--threads N] [--budget SECONDS] [--json] [--sgemm] [--profile[=N]] [--profile-steps FILE]\n"
                   "       [--memory-budget BYTES [--against-plain]] [--compile] [--infer [--save-weights DIR]]\n  workloads:");
            for (int i = 0; mn_workload_names[i]; i++) printf(" %s", mn_workload_names[i]);
            printf(" (by name only: lstm_long, T = 512, hidden 512, batch 64; seq2seq, the default translation Transformer)");
            printf("\n  times a training step (forward, backward, Adam) and the forward pass; --json prints\n"
                   "  one line per workload with the keys of WORKLOADS.md; --sgemm measures OpenBLAS sgemm at n = 512 and 1024;\n"
                   "  --profile times every kernel of as many more training steps and lists the N (20) slowest ops;\n"
                   "  --profile-steps also writes every step's time to FILE (scripts/profile-compare.py compares two);\n"
                   "  --memory-budget BYTES (256M, 1.5G): the training graph recomputes forward values to fit its arena;\n"
                   "  with --against-plain the budgeted step and the plain one alternate in one process (their ratio).\n"
                   "  --compile times mn_compile of each training graph (all: the workloads and lstm_t512) and prints\n"
                   "  its steps and arena (under --memory-budget if given); --infer [--save-weights DIR] times one token at batch 1 of lstm_lm and\n"
                   "  transformer_lm (tokens/s; DIR gets the weights and the JSON the probe logits for scripts/infer_torch.py).\n");
            return MN_EXIT_OK;
        default: fprintf(stderr, "mnemo bench: unknown or incomplete option \"%s\"\n", argv[optind - 1]); return MN_EXIT_USAGE;
        }
    }
    if (threads < 0 || !(budget > 0)) { fprintf(stderr, "mnemo bench: bad --threads or --budget\n"); return MN_EXIT_USAGE; }
    if (threads == 0) threads = mn_get_num_threads();
    if (sgemm) {
        double g512 = sgemm_gflops(512, threads, budget / 2), g1024 = sgemm_gflops(1024, threads, budget / 2);
        if (json) printf("{\"sgemm\": true, \"threads\": %d, \"sgemm_gflops_512\": %.1f, \"sgemm_gflops_1024\": %.1f}\n", threads, g512, g1024);
        else printf("sgemm %d threads: %.1f GFLOP/s at n=512, %.1f at n=1024\n", threads, g512, g1024);
        if (!strcmp(which, "none")) return MN_EXIT_OK;
    }
    int rc = MN_EXIT_OK, found = 0;
    if (vs_plain && (!memory_budget || compile_only || infer || sgemm || prof)) {
        fprintf(stderr, "mnemo bench: --against-plain needs --memory-budget and no --compile, --infer, --sgemm or --profile\n");
        return MN_EXIT_USAGE;
    }
    if (compile_only || infer) {
        const char *const *lists[2] = { infer ? mn_infer_names : mn_workload_names, infer ? NULL : mn_workload_extra_names };
        for (int l = 0; l < 2; l++)
            for (int i = 0; lists[l] && lists[l][i]; i++) {
                if (strcmp(which, "all") && strcmp(which, lists[l][i])) continue;
                found++;
                rc |= infer ? infer_one(lists[l][i], threads, budget, json, weights_dir) : compile_one(lists[l][i], threads, json);
            }
        if (!found) { fprintf(stderr, "mnemo bench: unknown workload \"%s\"\n", which); return MN_EXIT_USAGE; }
        return rc;
    }
    bench_fn one = vs_plain ? against_plain : bench_one;     /* --against-plain (issue 17): the plain and the budgeted step in one process */
    for (int i = 0; mn_workload_names[i]; i++)
        if (!strcmp(which, "all") || !strcmp(which, mn_workload_names[i])) { found++; rc |= one(mn_workload_names[i], threads, budget, json, json ? 0 : prof, steps_path); }
    if (!found && (!strcmp(which, "lstm_long") || !strcmp(which, "seq2seq"))) { found++; rc = one(which, threads, budget, json, json ? 0 : prof, steps_path); }   /* issue 17: by name only */
    if (!found) { fprintf(stderr, "mnemo bench: unknown workload \"%s\"\n", which); return MN_EXIT_USAGE; }
    return rc;
}
