/* ops/gemm.h: the product rule of ops/matmul.c, visible to its tests:
 * which library computes a single-threaded product (OpenBLAS, in column
 * blocks or not, or oneDNN's sgemm) given the product's shape and the
 * kernels the linked libraries picked on this CPU. Shape and kernels only:
 * the same product always takes the same path. */
#ifndef MN_OPS_GEMM_H
#define MN_OPS_GEMM_H

#include <stdbool.h>
#include <stdint.h>
#include "mnemo_plugin.h"

/* What the linked libraries use on this CPU (mn__gemm_detect asks them). */
typedef struct {
    bool blas_avx512;   /* OpenBLAS's SkylakeX, Cooperlake or SapphireRapids kernels */
    bool dnnl;          /* built with oneDNN (meson option dnnl) */
    bool dnnl_avx512;   /* oneDNN's JIT uses AVX-512 */
} mn__gemm_kinds;

mn__gemm_kinds mn__gemm_detect(void);
/* Whether oneDNN computes the products (its vectors wider than OpenBLAS's kernels). */
bool mn__gemm_use_dnnl(mn__gemm_kinds k);
/* OpenBLAS's column-block width for an M x N x K product, 0 for one call. */
int64_t mn__gemm_block(mn__gemm_kinds k, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K);
/* C = op(A) op(B) + beta C, row-major, with `threads` threads, by the rule for k. */
void mn__gemm(mn__gemm_kinds k, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc, int threads);


/* The packed recurrent product (ops/packed.c): the kernels, by CPU. Each
 * output element is the same fma chain on every kernel, so all give the
 * same bits; tests force the narrower ones. */
enum { MN_PACKED_C = 0, MN_PACKED_AVX2 = 1, MN_PACKED_AVX512 = 2 };
int mn__packed_isa(void);
/* P [ceil(N/16), K, 16] = op(W) in panels of 16 columns (W [N, K] if trans_b, else [K, N]). */
void mn__pack_weight(const float *W, bool trans_b, int64_t N, int64_t K, float *P, int threads);
/* How mn__packed_gemm shares an M x N x K product among `threads`: one
 * thread, rows (strips of 8, evenly: as the elementwise kernels share the
 * same rows) or pairs of 16-column panels. */
enum { MN_PACKED_ONE = 0, MN_PACKED_ROWS = 1, MN_PACKED_COLS = 2 };
int mn__packed_split(int64_t M, int64_t N, int64_t K, int threads);
/* Rows [*m0, *m1) of M that part `part` of `nparts` (>= 1) takes when rows
 * are shared: strips of 8, evenly (the packed product's row split, and
 * index_select's parts, cut the same so a thread reads what it wrote). */
void mn__strip_rows(int64_t M, int part, int nparts, int64_t *m0, int64_t *m1);
/* C [M, N] = A [M, K] times the packed op(W), with `isa`'s kernel (<= mn__packed_isa()). */
void mn__packed_gemm(int isa, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P, float *C,
                     int64_t ldc, int threads);
/* The same, then ((C + b1) + b2) row by row (b1, b2: [N], or NULL), each
 * add rounded once after the element's whole fma chain: the bits of the
 * product followed by two separate adds (matmul_packed's bias epilogue). */
void mn__packed_gemm_bias(int isa, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *P, float *C,
                          int64_t ldc, int threads, const float *b1, const float *b2);

/* A kernel that computes part `part` of `nparts` of its op's forward when
 * every thread of a team calls it (nparts 0: the whole, its own threads),
 * for the ops that have one (matmul_packed, index_select), else NULL. graph/run.c runs a
 * chain of such steps in one OpenMP region. */
struct mn_op_def;
typedef mn_status (*mn__part_fn)(const mn_kernel_ctx *c, int part, int nparts);
mn__part_fn mn__part_forward(const struct mn_op_def *op);

/* The bytes a part reads or writes: [lo, hi) addresses. A part kernel's
 * op also says which bytes each part touches (conservatively: more, never
 * less), so graph/run.c can prove that two levels of a chain need no
 * barrier between them (each thread reads only what it wrote). Returns
 * the spans written into sp (at most max; -1: more than max, unknown). */
typedef struct { uintptr_t lo, hi; bool write; } mn__span;
typedef int (*mn__spans_fn)(const mn_kernel_ctx *c, int part, int nparts, mn__span *sp, int max);
mn__spans_fn mn__part_spans(const struct mn_op_def *op);
/* Whether op's parts give the bytes of its forward whatever the cut and
 * the threads (a copy: index_select), so that a step the schedule runs on
 * one thread may run in parts in a chain too; matmul_packed's parts are
 * its solo steps' threads, and only solo ones run in parts. */
bool mn__part_exact(const struct mn_op_def *op);
mn_status mn__index_select_part(const mn_kernel_ctx *c, int part, int nparts);
int mn__index_select_spans(const mn_kernel_ctx *c, int part, int nparts, mn__span *sp, int max);
/* A kernel that can prefetch while it computes (ops/packed.c's
 * matmul_packed, whose products run 50-100 us on one thread): as the part
 * kernel, with a window, the spans the executor's next level will read and
 * write (graph/window.c); it brings their lines towards L2 spread over its
 * work. A part's window is its own (on several threads, the bytes the same
 * thread's part of the next level touches): the kernel prefetches all of
 * it. NULL: the op has none. Results do not depend on the window. */
#define MN_WINDOW_SPANS 32
typedef mn_status (*mn__window_fn)(const mn_kernel_ctx *c, int part, int nparts, const mn__span *win, int nwin);
mn__window_fn mn__window_forward(const struct mn_op_def *op);
/* The bias epilogue (graph/fuse.c): how many [N] bias vectors a step of
 * `op` can add to its output's rows after its products (matmul_packed:
 * 2), 0 for none; and whether a step of `op` is out = x + b with b an [N]
 * vector broadcast over the rows of x (out's shape): b's input slot, else -1. */
int mn__bias_epilogue(const struct mn_op_def *op);
int mn__row_bias(const struct mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out);
/* ops/index.c: concat's, computed whole by part 0 (a copy graph/run.c gives thread 0). */
int mn__concat_spans(const mn_kernel_ctx *c, int part, int nparts, mn__span *sp, int max);

#endif
