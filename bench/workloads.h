/* bench/workloads.h: the benchmark workloads of ../shared/bench/WORKLOADS.md
 * as graphs over a fresh parameter store, with random inputs fed. */
#ifndef MN_BENCH_WORKLOADS_H
#define MN_BENCH_WORKLOADS_H

#include "mnemo.h"

typedef struct {
    const char *name;
    mn_params *P;
    mn_graph *g;
    mn_node *loss;
    double fwd_flops, train_flops;   /* matrix products only, as torch_ref.py counts */
    int64_t classes;                 /* range of random i32 inputs */
    bool uniform_inputs;             /* f32 inputs in [0, 1) (VAE targets) */
    struct { const char *input; int64_t classes; } ranges[3];  /* i32 inputs with their own range (ner) */
    int64_t max_len;                 /* > 0: i32 input "lengths" [B] holds T - (3 b mod T / 2), T = max_len */
    bool zero_f32_inputs;            /* f32 inputs all 0 (seq2seq's padding mask: no padding) */
} mn_workload;

/* Names of the available workloads, NULL-terminated. */
extern const char *const mn_workload_names[];
/* Workloads built only when named (not part of "all"), NULL-terminated. */
extern const char *const mn_workload_extra_names[];
/* Builds `name` (either list); MN_ERR_NOTFOUND if unknown. */
mn_status mn_workload_build(const char *name, mn_workload *w);
/* Feeds every input of ex with seeded random data (i32 inputs: class ids). */
mn_status mn_workload_feed(const mn_workload *w, mn_exec *ex, uint64_t seed);
void      mn_workload_free(mn_workload *w);
/* The CPU's model name and its vector extensions (space-separated, e.g.
 * "avx avx2 fma avx512f"), from /proc/cpuinfo; "unknown" and "" if absent. */
void mn_bench_cpu(char *model, size_t model_size, char *ext, size_t ext_size);
/* OpenBLAS's kernel family for this CPU, e.g. "SkylakeX" or "Haswell". */
const char *mn_bench_blas_core(void);
/* The library ops/matmul.c uses for products: "openblas" or "onednn". */
const char *mn_bench_gemm(void);

#endif
