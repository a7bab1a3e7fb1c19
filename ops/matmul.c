/* ops/matmul.c: batched matrix product through cblas_sgemm (or oneDNN's
 * sgemm when its kernels are wider than OpenBLAS's), with transpose flags handled
 * by BLAS (never by copies) and NumPy broadcasting over the leading (batch)
 * dims. When B has no batch dims the batch is folded into M: one large GEMM
 * instead of many small ones. Which library computes a product depends on
 * its shape and on the kernels the linked libraries picked, never on timing. */
#include "attrs.h"
#include "op.h"
#include "gemm.h"
#include <omp.h>
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef MNEMO_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

static void batch_shape(mn_shape s, mn_shape *b)
{
    *b = s;
    b->ndim = s.ndim - 2;
}

static mn_status infer_matmul(mn_infer_ctx *c)
{
    const mn_matmul_attrs *a = c->attrs;
    mn_shape A = c->in[0].shape, B = c->in[1].shape, ba, bb, bo;
    if (c->in[0].dtype != MN_F32 || c->in[1].dtype != MN_F32)
        return mn__infer_fail(c, MN_ERR_DTYPE, "inputs must be f32");
    if (A.ndim < 2 || B.ndim < 2)
        return mn__infer_fail(c, MN_ERR_SHAPE, "inputs need at least 2 dims");
    int64_t m = a->trans_a ? A.d[A.ndim - 1] : A.d[A.ndim - 2];
    int64_t ka = a->trans_a ? A.d[A.ndim - 2] : A.d[A.ndim - 1];
    int64_t kb = a->trans_b ? B.d[B.ndim - 1] : B.d[B.ndim - 2];
    int64_t n = a->trans_b ? B.d[B.ndim - 2] : B.d[B.ndim - 1];
    if (ka != kb)
        return mn__infer_fail(c, MN_ERR_SHAPE, "inner dims %lld and %lld differ", (long long)ka, (long long)kb);
    if (a->per_step && (a->trans_a || A.ndim < 3 || B.ndim != 2))   /* else the kernel could not keep its promise */
        return mn__infer_fail(c, MN_ERR_SHAPE, "per_step needs A with 3 or more dims (steps first, not transposed) and a 2-dim B; "
                              "A has %d dims%s, B has %d", A.ndim, a->trans_a ? " and is transposed" : "", B.ndim);
    batch_shape(A, &ba);
    batch_shape(B, &bb);
    if (mn_shape_broadcast(ba, bb, &bo))
        return mn__infer_fail(c, MN_ERR_SHAPE, "batch dims do not broadcast");
    bo.d[bo.ndim] = m; bo.d[bo.ndim + 1] = n; bo.ndim += 2;
    c->out = (mn_tdesc){ MN_F32, bo };
    return MN_OK;
}

/* Offset (in matrices) of batch index r of `s` broadcast to `o`. */
static int64_t batch_offset(int64_t r, mn_shape s, mn_shape o)
{
    int64_t off = 0, stride = 1;
    for (int i = o.ndim - 1; i >= 0; i--) {
        int64_t idx = r % o.d[i];
        r /= o.d[i];
        int j = s.ndim - o.ndim + i;
        int64_t d = j >= 0 ? s.d[j] : 1;
        if (d != 1) off += idx * stride;
        stride *= d;
    }
    return off;
}

/* The GEMM kernels the linked libraries use on this CPU: OpenBLAS's kernel
 * family (picked at its start-up; OPENBLAS_CORETYPE, the user's, may have
 * chosen it) and the widest instruction set of oneDNN's JIT. Both are facts
 * about the loaded libraries, asked once per product (well under a
 * microsecond against 10 us or more of work) and kept nowhere: no state. */
mn__gemm_kinds mn__gemm_detect(void)
{
    mn__gemm_kinds k = { false, false, false };
    const char *c = openblas_get_corename();
    k.blas_avx512 = c && (!strcasecmp(c, "skylakex") || !strcasecmp(c, "cooperlake") || !strcasecmp(c, "sapphirerapids"));
#ifdef MNEMO_HAVE_DNNL
    k.dnnl = true;
    k.dnnl_avx512 = (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
#endif
    return k;
}

/* Whether oneDNN's sgemm computes a product: when its JIT uses wider
 * vectors than OpenBLAS's kernels, i.e. AVX-512 against OpenBLAS's AVX2
 * cores (Haswell, Zen: the cores it picks on AVX2 CPUs, or
 * OPENBLAS_CORETYPE=Haswell on this AVX-512 one). Measured on 1 thread,
 * AMD EPYC Zen 5, GFLOP/s OpenBLAS Haswell -> oneDNN: 32x768x256 A B^T 85
 * -> 145, 32x256x768 A B 92 -> 189, 2048x1024x64 A B^T 92 -> 206,
 * 768x256x2048 A^T B 98 -> 156, 1x1024x256 7 -> 33: the AVX2 kernels run
 * at their peak, half the machine's; whole training steps 1.3-1.8x faster.
 * At equal width (both AVX-512, or both AVX2) OpenBLAS keeps every
 * product: a probe with hot caches had oneDNN ahead on the products with a
 * plain A (32x256x768 A B 150 -> 189 against the column blocks), but whole
 * steps on OpenBLAS's SkylakeX kernels lost with it (rnn 1.11-1.15x, mlp
 * 1.02-1.14x; docs/performance.md), so main's path stays there. */
bool mn__gemm_use_dnnl(mn__gemm_kinds k)
{
    return k.dnnl && k.dnnl_avx512 && !k.blas_avx512;
}

/* Column block width for a skinny product (M small: a recurrent step, a
 * small batch) on OpenBLAS, or 0 for one call. OpenBLAS packs the whole
 * weight matrix on every call, about 20% of the time at M = 32; its AVX-512
 * cores (0.3.21, Debian 12) have small-matrix kernels that read the
 * operands in place for products of at most 1e6 multiply-adds (and, for
 * A B^T, width x M <= 1200), so in such column blocks nothing is packed.
 * Measured on 1 thread (GFLOP/s, one call -> blocks): A B^T 32x1024x256 81
 * -> 101, 32x768x256 83 -> 102, 16x1024x256 65 -> 102, 128x512x784 95 ->
 * 109; A B 32x256x1024 87 -> 98, 32x256x768 88 -> 111. Beyond these limits
 * blocks would be packed one by one (up to 2.5x slower), so the rule is
 * exact. The AVX2 cores (Haswell, Zen) have no such kernels and pack every
 * call: blocks of any width measured slower there (32x768x256 A B^T: one
 * call 85, blocks of 128 84, of 32 78), so they get none. */
int64_t mn__gemm_block(mn__gemm_kinds k, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K)
{
    if (trans_a || K < 32 || !k.blas_avx512) return 0;
    static const int64_t widths[] = { 32, 24, 16, 8 };
    for (int i = 0; i < 4; i++) {
        int64_t w = widths[i];
        if (!trans_b && w != 32 && w != 16) continue;
        if ((trans_b && w * M > 1200) || (double)M * (double)w * (double)K > 1e6) continue;
        return N > w ? w : 0;
    }
    return 0;
}

#ifdef MNEMO_HAVE_DNNL
/* oneDNN's sgemm on the calling thread alone: inside a parallel region it
 * runs single-threaded by itself; outside, the calling thread's team size
 * is set to 1 for the call (per-thread, restored after). */
static bool dnnl_gemm1(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int old = omp_in_parallel() ? 0 : mn__blas_threads_push(1);
    dnnl_status_t s = dnnl_sgemm(ta == CblasTrans ? 'T' : 'N', tb == CblasTrans ? 'T' : 'N', M, N, K, 1.0f, A, lda,
                                 B, ldb, beta, C, ldc);
    mn__blas_threads_pop(old);
    return s == dnnl_success;
}
#endif

/* One single-threaded sgemm: oneDNN's where mn__gemm_use_dnnl says so, else
 * OpenBLAS's, in column blocks where mn__gemm_block says so. A single row (a
 * batch-1 step) is a matrix-vector product: sgemm would pack the whole
 * weight matrix on every call (80% of the batch-1 LSTM step's time with the
 * Haswell kernels), sgemv reads it in place. */
static void sgemm1_on(mn__gemm_kinds k, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Single-threaded also outside a parallel region (a 1-thread team is not
 * one): OpenBLAS would size its team by the calling thread's default,
 * which may exceed OMP_THREAD_LIMIT and then waits for ever (core/threads.c). */
static void sgemm1(mn__gemm_kinds k, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int old = omp_in_parallel() ? 0 : mn__blas_threads_push(1);
    sgemm1_on(k, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    mn__blas_threads_pop(old);
}

static void sgemm1_on(mn__gemm_kinds k, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M == 1) {
        CBLAS_TRANSPOSE tv = tb == CblasTrans ? CblasNoTrans : CblasTrans;
        cblas_sgemv(CblasRowMajor, tv, (int)(tb == CblasTrans ? N : K), (int)(tb == CblasTrans ? K : N), 1.0f, B, ldb,
                    A, ta == CblasTrans ? lda : 1, beta, C, 1);
        return;
    }
#ifdef MNEMO_HAVE_DNNL
    if (mn__gemm_use_dnnl(k) && dnnl_gemm1(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc)) return;
#endif
    int64_t w = mn__gemm_block(k, ta == CblasTrans, tb == CblasTrans, M, N, K);
    if (w == 0) w = N;
    for (int64_t j = 0; j < N; j += w)
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)(N - j < w ? N - j : w), (int)K, 1.0f, A, lda,
                    tb == CblasTrans ? B + j * ldb : B + j, ldb, beta, C + j, ldc);
}

/* One GEMM with `threads` threads. Instead of OpenBLAS's own threading,
 * N (or M, when N is the smaller or too narrow) is cut into one block per
 * thread and each block is a single-threaded sgemm inside our parallel
 * region. Measured on 2 threads (tests-free probe, same binary): the LSTM's
 * backward recurrent product 32x1024x256 takes 107-119 us against
 * 144-148 us through OpenBLAS's threads, the transformer's 1024x256x768
 * 2.0-2.15 ms against 2.47 ms; no shape measured got slower beyond noise.
 * Every output element comes from the same single-threaded kernel. */
static void gemm(mn__gemm_kinds k, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc, int threads)
{
    if (threads <= 1 || omp_in_parallel()) {
        sgemm1(k, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    bool byn = N >= 32 * threads && N >= M, bym = !byn && M >= 8 * threads;
    if (!byn && !bym) {                              /* too small to cut: OpenBLAS's own threads */
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int64_t D = byn ? N : M, align = byn ? 16 : 4;
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; t++) {
        int64_t d0 = D * t / threads / align * align, d1 = t == threads - 1 ? D : D * (t + 1) / threads / align * align;
        if (d1 <= d0) continue;
        if (byn)
            sgemm1(k, ta, tb, M, d1 - d0, K, A, lda, tb == CblasTrans ? B + d0 * ldb : B + d0, ldb, beta, C + d0, ldc);
        else
            sgemm1(k, ta, tb, d1 - d0, N, K, ta == CblasTrans ? A + d0 : A + d0 * lda, lda, B, ldb, beta, C + d0 * ldc, ldc);
    }
}

void mn__gemm(mn__gemm_kinds k, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc, int threads)
{
    gemm(k, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, A, lda, B, ldb, beta, C, ldc,
         threads);
}

/* A per_step product: `steps` GEMMs of R rows each (one index of A's first
 * dim), whole steps per thread, each single-threaded. A row's bits then
 * depend neither on how many rows the call has nor on the threads: BLAS
 * kernels round rows differently by the call's row count (OpenBLAS 0.3.21
 * Haswell: 7-50% of a step's elements differ by an ulp between a per-step
 * call and one over all steps; oneDNN on small products), so a segment
 * recomputed under a memory budget would not match the whole product. */
static void gemm_steps(mn__gemm_kinds k, CBLAS_TRANSPOSE tb, int64_t steps, int64_t R, int64_t N, int64_t K, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int threads)
{
    if (threads <= 1 || steps < 2 || omp_in_parallel()) {
        int old = omp_in_parallel() ? 0 : mn__blas_threads_push(1);   /* one step = one single-threaded GEMM, as below */
        for (int64_t s = 0; s < steps; s++)
            sgemm1(k, CblasNoTrans, tb, R, N, K, A + s * R * lda, lda, B, ldb, beta, C + s * R * N, (int)N);
        mn__blas_threads_pop(old);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t s = 0; s < steps; s++)
        sgemm1(k, CblasNoTrans, tb, R, N, K, A + s * R * lda, lda, B, ldb, beta, C + s * R * N, (int)N);
}

static mn_status matmul_fwd(const mn_kernel_ctx *c)
{
    const mn_matmul_attrs *at = c->attrs;
    const mn_tensor *A = &c->in[0], *B = &c->in[1];
    mn_shape os = c->out->shape, ba, bb, bo;
    int64_t M = os.d[os.ndim - 2], N = os.d[os.ndim - 1];
    int64_t K = at->trans_a ? A->shape.d[A->shape.ndim - 2] : A->shape.d[A->shape.ndim - 1];
    int lda = (int)A->shape.d[A->shape.ndim - 1], ldb = (int)B->shape.d[B->shape.ndim - 1];
    batch_shape(A->shape, &ba); batch_shape(B->shape, &bb); batch_shape(os, &bo);
    int64_t nb = mn_shape_numel(bo);
    CBLAS_TRANSPOSE ta = at->trans_a ? CblasTrans : CblasNoTrans, tb = at->trans_b ? CblasTrans : CblasNoTrans;
    float *C = mn_f32(c->out), beta = c->accumulate ? 1.0f : 0.0f;   /* accumulate: C += op(A) op(B) */
    mn__gemm_kinds k = mn__gemm_detect();
    if (nb * M * N == 0) return MN_OK;                               /* an empty product (e.g. of an empty slice) */
    if (K == 0) {
        for (int64_t i = 0; i < nb * M * N && !c->accumulate; i++) C[i] = 0.0f;
        return MN_OK;
    }
    if (bb.ndim == 0 || mn_shape_numel(bb) == 1) {
        if (at->per_step && !at->trans_a && ba.ndim > 0 && mn_shape_numel(ba) == nb) {
            int64_t steps = A->shape.d[0];
            gemm_steps(k, tb, steps, nb * M / steps, N, K, mn_f32(A), lda, mn_f32(B), ldb, beta, C, c->nthreads);
            return MN_OK;
        }
        if (!at->trans_a && mn_shape_numel(ba) == nb) {    /* fold the batch into M */
            gemm(k, ta, tb, nb * M, N, K, mn_f32(A), lda, mn_f32(B), ldb, beta, C, (int)N, c->nthreads);
            return MN_OK;
        }
    }
    int64_t sa = A->shape.d[A->shape.ndim - 2] * lda, sb = B->shape.d[B->shape.ndim - 2] * ldb;
    /* Small products side by side, one thread each; otherwise one after
     * another, each cut over the threads. No `parallel if (false)` around
     * the second case: inside even an inactive region, libgomp starts a
     * nested team with new threads on every call (measured: the mlp's
     * 512x784x128 weight gradient took 0.92 ms on 2 threads instead of 0.49). */
    if (nb >= c->nthreads && c->nthreads > 1 && M * N * K < (1 << 21)) {
        #pragma omp parallel for num_threads(c->nthreads) schedule(static)
        for (int64_t r = 0; r < nb; r++)
            gemm(k, ta, tb, M, N, K, mn_f32(A) + batch_offset(r, ba, bo) * sa, lda,
                 mn_f32(B) + batch_offset(r, bb, bo) * sb, ldb, beta, C + r * M * N, (int)N, 1);
    } else
        for (int64_t r = 0; r < nb; r++)
            gemm(k, ta, tb, M, N, K, mn_f32(A) + batch_offset(r, ba, bo) * sa, lda,
                 mn_f32(B) + batch_offset(r, bb, bo) * sb, ldb, beta, C + r * M * N, (int)N, c->nthreads);
    return MN_OK;
}

extern const mn_op_def mn__op_matmul;

mn_node *mn_matmul(mn_graph *g, mn_node *a, mn_node *b, bool trans_a, bool trans_b)
{
    mn_matmul_attrs at = { trans_a, trans_b, false };
    mn_node *in[2] = { a, b };
    return mn__node(g, &mn__op_matmul, in, 2, &at);
}

mn_node *mn_matmul_steps(mn_graph *g, mn_node *a, mn_node *b, bool trans_b)
{
    mn_node *f = mn__fold_product(g, a, b, trans_b);       /* rows of a small table: its product, gathered */
    if (f) return f;
    mn_matmul_attrs at = { false, trans_b, true };
    mn_node *in[2] = { a, b };
    return mn__node(g, &mn__op_matmul, in, 2, &at);
}

/* Collapses all leading dims: [..., r, c] -> [prod, c]. */
static mn_node *flat2(mn_graph *g, mn_node *x)
{
    mn_shape s = mn_node_shape(x);
    return mn_reshape(g, x, MN_SHAPE(mn_shape_numel(s) / s.d[s.ndim - 1], s.d[s.ndim - 1]));
}

/* C = op(A) op(B):
 *   dA = dC op(B)^T            (A^T stored: dA = op(B) dC^T)
 *   dB = op(A)^T dC            (B^T stored: dB = dC^T op(A))
 * then summed over broadcast batch dims. */
static mn_status vjp_matmul(mn_vjp_ctx *c)
{
    const mn_matmul_attrs *at = c->attrs;
    mn_graph *g = c->g;
    mn_node *A = c->in[0], *B = c->in[1], *dC = c->dy;
    bool ta = at->trans_a, tb = at->trans_b;
    if (c->needs[0]) {
        mn_node *d = ta ? mn_matmul(g, B, dC, tb, true) : at->per_step ? mn_matmul_steps(g, dC, B, !tb) : mn_matmul(g, dC, B, false, !tb);
        c->dx[0] = mn_sum_to(g, d, mn_node_shape(A));
    }
    if (c->needs[1]) {
        mn_shape bs = mn_node_shape(B);
        if (bs.ndim == 2 && mn_node_shape(A).ndim > 2 && !ta) {
            /* B shared by every batch: one GEMM over the flattened batch. */
            mn_node *A2 = flat2(g, A), *dC2 = flat2(g, dC);
            c->dx[1] = tb ? mn_matmul(g, dC2, A2, true, false) : mn_matmul(g, A2, dC2, true, false);
        } else {
            mn_node *d = tb ? mn_matmul(g, dC, A, true, ta) : mn_matmul(g, A, dC, !ta, false);
            c->dx[1] = mn_sum_to(g, d, bs);
        }
    }
    return MN_OK;
}

extern const mn_op_def mn__op_matmul_acc;

/* C0 + op(A) op(B), written over C0's bytes (the planner's in-place pair). */
static mn_node *matmul_acc(mn_graph *g, mn_node *c0, mn_node *a, mn_node *b, bool trans_a, bool trans_b)
{
    mn_matmul_attrs at = { trans_a, trans_b, false };
    mn_node *in[3] = { c0, a, b };
    return mn__node(g, &mn__op_matmul_acc, in, 3, &at);
}

static mn_node *join(mn_graph *g, mn_node **x, int n, int axis) { return n == 1 ? x[0] : mn_concat(g, x, n, axis); }

/* The joined products in blocks of whole products reaching
 * MN_STEP_BLOCK_ROWS contraction rows (from the first, in forward order;
 * a product of half as many rows or more starts a block of its own: a
 * per-step head's blocks, each one block of the outputs, models/layers.c):
 * one GEMM per block, added last block first (the order the backward pass
 * completes them) into one accumulator. A block's inputs then die with
 * its GEMM (a memory budget frees an RNN's gate gradients block by block),
 * and each GEMM keeps a contraction of 1024+ rows. One block: one GEMM. */
static mn_node *join_blocks(mn_graph *g, mn_node **as, mn_node **bs, int n, bool ta, bool tb)
{
    int *cut = malloc(((size_t)n + 1) * sizeof *cut), nc = 0;
    if (!cut) return NULL;
    int64_t rows = 0;
    cut[0] = 0;
    for (int i = 0; i < n; i++) {
        rows += ta ? mn_node_shape(as[i]).d[0] : mn_node_shape(as[i]).d[1];
        int64_t next = i + 1 < n ? (ta ? mn_node_shape(as[i + 1]).d[0] : mn_node_shape(as[i + 1]).d[1]) : 0;
        if (rows >= MN_STEP_BLOCK_ROWS || next >= MN_STEP_BLOCK_ROWS / 2 || i == n - 1) { cut[++nc] = i + 1; rows = 0; }
    }
    mn_node *r = NULL;
    for (int c = nc - 1; c >= 0; c--) {
        int m = cut[c + 1] - cut[c];
        mn_node *a = join(g, as + cut[c], m, ta ? 0 : 1), *b = join(g, bs + cut[c], m, tb ? 1 : 0);
        r = r ? matmul_acc(g, r, a, b, ta, tb) : mn_matmul(g, a, b, ta, tb);
    }
    free(cut);
    return r;
}

/* Sum of 2-D products with the same flags and output shape:
 *   sum_k op(A_k) op(B_k) = [op(A_1) ... op(A_n)] [op(B_1); ...; op(B_n)]
 * one GEMM over the concatenated contraction dim instead of n GEMMs and
 * n - 1 adds (the weight gradient of an unrolled RNN over all its steps),
 * per block of MN_STEP_BLOCK_ROWS rows (join_blocks). */
static mn_node *merge_matmuls(mn_graph *g, mn_node *const *parts, int n)
{
    const mn_matmul_attrs *a0 = mn__node_attrs(parts[0]);
    for (int i = 0; i < n; i++) {
        const mn_matmul_attrs *a = mn__node_attrs(parts[i]);
        if (a->trans_a != a0->trans_a || a->trans_b != a0->trans_b) return NULL;
        if (mn_node_shape(mn__node_input(parts[i], 0)).ndim != 2 || mn_node_shape(mn__node_input(parts[i], 1)).ndim != 2) return NULL;
        if (!mn_shape_eq(mn_node_shape(parts[i]), mn_node_shape(parts[0]))) return NULL;
    }
    mn_node **as = malloc((size_t)n * sizeof *as), **bs = malloc((size_t)n * sizeof *bs), *r = NULL;
    if (as && bs) {
        /* parts arrive in reverse order of the products (autodiff walks
         * backwards): joined in forward order, an unrolled RNN's gate
         * gradients form the same concat as its input projection's
         * gradient (index.c's merge_slices), one value after CSE */
        for (int i = 0; i < n; i++) { as[i] = mn__node_input(parts[n - 1 - i], 0); bs[i] = mn__node_input(parts[n - 1 - i], 1); }
        /* A's contraction dim: 0 if stored transposed, else 1; B's: 1 if transposed, else 0 */
        r = join_blocks(g, as, bs, n, a0->trans_a, a0->trans_b);
    }
    free(as); free(bs);
    return r;
}

static void cost_matmul(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                        double *flops, double *bytes)
{
    const mn_matmul_attrs *at = attrs;
    mn_shape A = in[0].shape;
    double K = (double)(at->trans_a ? A.d[A.ndim - 2] : A.d[A.ndim - 1]);
    *flops = 2.0 * K * (double)mn_shape_numel(out->shape);
    *bytes = 4.0 * (double)(mn_shape_numel(in[0].shape) + mn_shape_numel(in[1].shape) + mn_shape_numel(out->shape));
    (void)nin;
}

/* A per_step product's rows (steps of A) come from A's rows alone (gemm_steps). */
static int matmul_rows(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    const mn_matmul_attrs *at = attrs;
    (void)out;
    return nin == 2 && at->per_step && !at->trans_a && in[0].shape.ndim >= 3 && in[1].shape.ndim == 2 ? 0 : -1;
}

static void matmul_str(const void *a, char *buf, size_t n)
{
    const mn_matmul_attrs *at = a;
    snprintf(buf, n, "%s%s%s", at->trans_a ? "A^T" : "A", at->trans_b ? " B^T" : " B", at->per_step ? " per step" : "");
}

const mn_op_def mn__op_matmul = { MN_OP_RECORD,
    .name = "matmul",
    .doc = "C = op(A) op(B), batch dims broadcast (per_step: one GEMM per index of A's first dim); dA = dC op(B)^T, dB = op(A)^T dC",
    .arity = 2, .attr_size = sizeof(mn_matmul_attrs), MN__FIELDS(mn_matmul_attrs), .inplace = -1, .flags = MN_OPF_ACCUMULATE,
    .infer = infer_matmul, .forward = matmul_fwd, .vjp = vjp_matmul,
    .cost = cost_matmul, .attr_str = matmul_str, .traits.merge_grads = merge_matmuls, .traits.row_input = matmul_rows,
};

/* ---- matmul_acc: C = C0 + op(A) op(B), a block of a weight gradient ---- */

static mn_status infer_matmul_acc(mn_infer_ctx *c)
{
    if (c->nin != 3) return mn__infer_fail(c, MN_ERR_INVALID, "takes C0, A and B");
    mn_infer_ctx m = *c;
    m.in = c->in + 1;
    m.nin = 2;
    mn_status s = infer_matmul(&m);
    if (s) return s;
    char a[96], b[96];
    if (c->in[0].dtype != MN_F32 || !mn_shape_eq(c->in[0].shape, m.out.shape))
        return mn__infer_fail(c, MN_ERR_SHAPE, "C0 %s must be f32 of the product's shape %s", mn_shape_str(c->in[0].shape, a, sizeof a),
                              mn_shape_str(m.out.shape, b, sizeof b));
    c->out = m.out;
    return MN_OK;
}

/* C0 copied into C (unless C is C0's bytes), then the GEMMs with beta = 1. */
static mn_status matmul_acc_fwd(const mn_kernel_ctx *c)
{
    float *out = mn_f32(c->out);
    const float *c0 = mn_f32(&c->in[0]);
    int64_t n = mn_shape_numel(c->out->shape);
    if (out != c0 && n) memcpy(out, c0, (size_t)n * sizeof *out);
    mn_kernel_ctx m = *c;
    m.in = c->in + 1;
    m.nin = 2;
    m.accumulate = true;
    return matmul_fwd(&m);
}

/* dC0 = dC; dA, dB as matmul's. */
static mn_status vjp_matmul_acc(mn_vjp_ctx *c)
{
    if (c->needs[0]) c->dx[0] = c->dy;
    mn_vjp_ctx m = *c;
    m.in = c->in + 1;
    m.nin = 2;
    m.needs = c->needs + 1;
    m.dx = c->dx + 1;
    return vjp_matmul(&m);
}

static void cost_matmul_acc(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    cost_matmul(in + 1, nin - 1, out, attrs, flops, bytes);
    *flops += (double)mn_shape_numel(out->shape);
    *bytes += 4.0 * (double)mn_shape_numel(out->shape);
}

const mn_op_def mn__op_matmul_acc = { MN_OP_RECORD,
    .name = "matmul_acc",
    .doc = "C = C0 + op(A) op(B) (in place over C0; blocks of a weight gradient over time steps); dC0 = dC, dA, dB as matmul",
    .arity = 3, .attr_size = sizeof(mn_matmul_attrs), MN__FIELDS(mn_matmul_attrs), .inplace = 0,
    .infer = infer_matmul_acc, .forward = matmul_acc_fwd, .vjp = vjp_matmul_acc,
    .cost = cost_matmul_acc, .attr_str = matmul_str,
};

/* ---- linear (composite): y = x W^T + b, W [out, in] as nn.Linear ---- */

extern const mn_op_def mn__op_linear;

static mn_status infer_linear(mn_infer_ctx *c)
{
    if (c->nin < 2 || c->nin > 3) return mn__infer_fail(c, MN_ERR_INVALID, "takes x, weight and an optional bias");
    mn_shape x = c->in[0].shape, w = c->in[1].shape;
    if (w.ndim != 2) return mn__infer_fail(c, MN_ERR_SHAPE, "weight must be [out_features, in_features]");
    if (x.ndim < 1 || x.d[x.ndim - 1] != w.d[1])
        return mn__infer_fail(c, MN_ERR_SHAPE, "input features %lld differ from the weight's %lld",
                              (long long)(x.ndim ? x.d[x.ndim - 1] : 0), (long long)w.d[1]);
    if (c->nin == 3 && !mn_shape_eq(c->in[2].shape, MN_SHAPE(w.d[0])))
        return mn__infer_fail(c, MN_ERR_SHAPE, "bias must be [%lld]", (long long)w.d[0]);
    return MN_OK;
}

static mn_node *compose_linear(mn_graph *g, mn_node *const *in, int nin, const void *attrs)
{
    (void)attrs;
    mn_node *x = in[0];
    mn_shape xs = mn_node_shape(x);
    bool vec = xs.ndim == 1;
    if (vec) x = mn_reshape(g, x, MN_SHAPE(1, xs.d[0]));
    mn_node *y = mn_matmul(g, x, in[1], false, true);
    if (nin == 3) y = mn_add(g, y, in[2]);
    return vec ? mn_reshape(g, y, MN_SHAPE(mn_node_shape(in[1]).d[0])) : y;
}

mn_node *mn_linear_op(mn_graph *g, mn_node *x, mn_node *weight, mn_node *bias)
{
    mn_node *in[3] = { x, weight, bias };
    return mn__node(g, &mn__op_linear, in, bias ? 3 : 2, NULL);
}

const mn_op_def mn__op_linear = { MN_OP_RECORD,
    .name = "linear", .doc = "y = x W^T + b, W [out, in] (composite: matmul + add); dx = dy W, dW = dy^T x, db = sum(dy)",
    .arity = -1, .inplace = -1, .flags = MN_OPF_COMPOSITE, .infer = infer_linear, .compose = compose_linear,
};
