/* ops/index.c: slicing and indexing: slice, concat, index_select, gather,
 * where, their scatter-style backward helpers, and the compositions built
 * on them (embedding, squeeze, unsqueeze, stack, split, chunk). Scatter
 * kernels add in index order within each thread's disjoint block, so
 * repeated indices accumulate correctly and deterministically. */
#include "attrs.h"
#include "op.h"
#include "gemm.h"
#include <stdlib.h>
#include <string.h>
#include <omp.h>

extern const mn_op_def mn__op_slice, mn__op_slice_backward, mn__op_concat, mn__op_index_select,
    mn__op_index_select_backward, mn__op_gather, mn__op_gather_backward, mn__op_where,
    mn__op_embedding, mn__op_squeeze, mn__op_unsqueeze, mn__op_stack;

/* ---- slice ---- */

/* Python slice semantics on a dim of size n: clamped start, element count. */
static void slice_norm(int64_t n, const mn_slice_attrs *a, int64_t *start, int64_t *len)
{
    int64_t b = a->start < 0 ? a->start + n : a->start, e = a->stop < 0 ? a->stop + n : a->stop;
    b = b < 0 ? 0 : b > n ? n : b;
    e = e < 0 ? 0 : e > n ? n : e;
    *start = b;
    *len = e > b ? (e - b + a->step - 1) / a->step : 0;
}

static mn_status infer_slice(mn_infer_ctx *c)
{
    const mn_slice_attrs *a = c->attrs;
    int ax = mn__axis(a->axis, c->in[0].shape.ndim);
    if (ax < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, c->in[0].shape.ndim);
    if (a->step <= 0) return mn__infer_fail(c, MN_ERR_INVALID, "step %lld must be positive", (long long)a->step);
    int64_t b, len;
    slice_norm(c->in[0].shape.d[ax], a, &b, &len);
    c->out = c->in[0];
    c->out.shape.d[ax] = len;
    return MN_OK;
}

/* One block of `bytes` between byte bi of the strided side and si of the dense side. */
static void copy_block(const char *src, char *dst, size_t bi, size_t si, size_t bytes, bool gather_from_big)
{
    if (gather_from_big) memcpy(dst + si, src + bi, bytes);
    else memcpy(dst + bi, src + si, bytes);
}

/* Copies rows between [outer, n_src, inner] and [outer, n_dst, inner]:
 * dst row start + j*step of the strided side <-> row j of the dense side. */
static void strided_rows(const mn_kernel_ctx *c, const char *src, char *dst, mn__split3 big, int64_t start, int64_t step,
                         int64_t len, bool gather_from_big)
{
    size_t row = (size_t)big.inner * 4;
    if (step == 1) {                  /* the rows of one outer index are one block: one copy each */
        size_t block = (size_t)len * row;
        if (mn__serial(c->nthreads, big.outer * len * big.inner > MN_GRAIN)) {
            for (int64_t o = 0; o < big.outer; o++) copy_block(src, dst, (size_t)(o * big.dim + start) * row, (size_t)o * block, block, gather_from_big);
            return;
        }
        #pragma omp parallel for num_threads(c->nthreads) schedule(static)
        for (int64_t o = 0; o < big.outer; o++) copy_block(src, dst, (size_t)(o * big.dim + start) * row, (size_t)o * block, block, gather_from_big);
        return;
    }
    int64_t total = big.outer * len;
    if (mn__serial(c->nthreads, total * big.inner > MN_GRAIN)) {
        for (int64_t r = 0; r < total; r++) copy_block(src, dst, (size_t)(r / len * big.dim + start + r % len * step) * row, (size_t)r * row, row, gather_from_big);
        return;
    }
    #pragma omp parallel for num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < total; r++) copy_block(src, dst, (size_t)(r / len * big.dim + start + r % len * step) * row, (size_t)r * row, row, gather_from_big);
}

static mn_status slice_fwd(const mn_kernel_ctx *c)
{
    const mn_slice_attrs *a = c->attrs;
    int ax = mn__axis(a->axis, c->in[0].shape.ndim);
    int64_t b, len;
    slice_norm(c->in[0].shape.d[ax], a, &b, &len);
    strided_rows(c, c->in[0].data, c->out->data, mn__split_at(c->in[0].shape, ax), b, a->step, len, true);
    return MN_OK;
}

/* The input of concat x whose rows along `axis` are exactly [start, start
 * + len), or NULL: a slice of a concat along its axis that is one whole
 * input is that input (the same bits; the concat need not exist for it). */
static mn_node *concat_piece(mn_node *x, int axis, int64_t start, int64_t len)
{
    mn_shape xs = mn_node_shape(x);
    int ax = mn__axis(axis, xs.ndim);
    if (mn__node_opdef(x) != &mn__op_concat || ax < 0 || mn__axis(((const mn_cat_attrs *)mn__node_attrs(x))->axis, xs.ndim) != ax)
        return NULL;
    int64_t at = 0;
    for (int k = 0; mn__node_input(x, k) && at <= start; k++) {
        int64_t d = mn_node_shape(mn__node_input(x, k)).d[ax];
        if (at == start && d == len) return mn__node_input(x, k);
        at += d;
    }
    return NULL;
}

mn_node *mn_slice(mn_graph *g, mn_node *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    mn_slice_attrs a = { axis, start, stop, step };
    mn_shape xs = mn_node_shape(x);
    int ax = x ? mn__axis(axis, xs.ndim) : -1;
    if (ax >= 0 && step == 1) {
        int64_t b, len;
        slice_norm(xs.d[ax], &a, &b, &len);
        mn_node *piece = len > 0 ? concat_piece(x, axis, b, len) : NULL;
        if (piece) return piece;
    }
    return mn__node(g, &mn__op_slice, &x, 1, &a);
}

static mn_status vjp_slice(mn_vjp_ctx *c)
{
    mn_slice_back_attrs a = { *(const mn_slice_attrs *)c->attrs, mn_node_shape(c->in[0]) };
    c->dx[0] = mn__node(c->g, &mn__op_slice_backward, &c->dy, 1, &a);
    return MN_OK;
}

static mn_status infer_slice_back(mn_infer_ctx *c)
{
    const mn_slice_back_attrs *a = c->attrs;
    mn_tdesc in = { c->in[0].dtype, a->in_shape };
    mn_infer_ctx f = { .nin = 1, .in = &in, .attrs = &a->s, .msg = c->msg, .msglen = c->msglen };
    mn_status s = infer_slice(&f);
    if (s) return s;
    if (!mn_shape_eq(f.out.shape, c->in[0].shape)) return mn__infer_fail(c, MN_ERR_SHAPE, "gradient shape does not match the slice");
    c->out = in;
    return MN_OK;
}

static mn_status slice_back_fwd(const mn_kernel_ctx *c)
{
    const mn_slice_back_attrs *a = c->attrs;
    int ax = mn__axis(a->s.axis, a->in_shape.ndim);
    int64_t b, len;
    slice_norm(a->in_shape.d[ax], &a->s, &b, &len);
    memset(c->out->data, 0, mn_tensor_bytes(c->out));
    strided_rows(c, c->in[0].data, c->out->data, mn__split_at(a->in_shape, ax), b, a->s.step, len, false);
    return MN_OK;
}

static mn_status vjp_slice_back(mn_vjp_ctx *c)
{
    c->dx[0] = mn__node(c->g, &mn__op_slice, &c->dy, 1, &((const mn_slice_back_attrs *)c->attrs)->s);
    return MN_OK;
}

/* Disjoint unit-step pieces of one tensor along one axis: concat them in
 * order, zeros in the gaps, instead of adding full-size scatters. */
static int by_start(const void *a, const void *b)
{
    const mn_slice_back_attrs *x = mn__node_attrs(*(mn_node *const *)a), *y = mn__node_attrs(*(mn_node *const *)b);
    int64_t sx, sy, l;
    int ax = mn__axis(x->s.axis, x->in_shape.ndim);
    slice_norm(x->in_shape.d[ax], &x->s, &sx, &l);
    slice_norm(y->in_shape.d[ax], &y->s, &sy, &l);
    return (sx > sy) - (sx < sy);
}

static mn_node *merge_slices(mn_graph *g, mn_node *const *parts, int n)
{
    const mn_slice_back_attrs *a0 = mn__node_attrs(parts[0]);
    mn_shape big = a0->in_shape;
    int ax = mn__axis(a0->s.axis, big.ndim);
    for (int i = 0; i < n; i++) {
        const mn_slice_back_attrs *a = mn__node_attrs(parts[i]);
        if (a->s.step != 1 || mn__axis(a->s.axis, big.ndim) != ax || !mn_shape_eq(a->in_shape, big)) return NULL;
    }
    mn_node **sorted = malloc((size_t)n * sizeof *sorted), **pieces = malloc((size_t)(2 * n + 1) * sizeof *pieces);
    if (!sorted || !pieces) { free(sorted); free(pieces); return NULL; }
    memcpy(sorted, parts, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, by_start);
    int m = 0;
    int64_t at = 0;
    mn_node *r = NULL;
    for (int i = 0; i < n; i++) {
        const mn_slice_back_attrs *a = mn__node_attrs(sorted[i]);
        int64_t start, len;
        slice_norm(big.d[ax], &a->s, &start, &len);
        if (start < at) goto out;                                     /* overlap: add instead */
        mn_shape gap = big;
        gap.d[ax] = start - at;
        if (start > at) pieces[m++] = mn_fill(g, gap, 0.0f, MN_F32);
        pieces[m++] = mn__node_input(sorted[i], 0);
        at = start + len;
    }
    if (at < big.d[ax]) {
        mn_shape gap = big;
        gap.d[ax] = big.d[ax] - at;
        pieces[m++] = mn_fill(g, gap, 0.0f, MN_F32);
    }
    r = m == 1 ? pieces[0] : mn_concat(g, pieces, m, ax);
out:
    free(sorted); free(pieces);
    return r;
}

/* A unit-step slice whose leading dims are all 1 is one contiguous block. */
static int64_t slice_alias(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    const mn_slice_attrs *a = attrs;
    int ax = mn__axis(a->axis, in[0].shape.ndim);
    mn__split3 s = mn__split_at(in[0].shape, ax);
    int64_t start, len;
    (void)nin; (void)out;
    if (a->step != 1 || s.outer != 1) return -1;
    slice_norm(s.dim, a, &start, &len);
    return start * s.inner * (int64_t)mn_dtype_size(in[0].dtype);
}

/* Any slice is a strided view of its input. */
static bool slice_view(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, int64_t *offset, int64_t *strides)
{
    const mn_slice_attrs *a = attrs;
    mn_shape s = in[0].shape;
    int ax = mn__axis(a->axis, s.ndim);
    int64_t start, len, acc = 1;
    (void)nin; (void)out;
    slice_norm(s.d[ax], a, &start, &len);
    for (int d = s.ndim - 1; d >= 0; d--) { strides[d] = d == ax ? acc * a->step : acc; acc *= s.d[d]; }
    *offset = start * mn__split_at(s, ax).inner;
    return true;
}

static void slice_str(const void *p, char *buf, size_t n)
{
    const mn_slice_attrs *a = p;
    snprintf(buf, n, "axis=%d %lld:%lld:%lld", a->axis, (long long)a->start, (long long)a->stop, (long long)a->step);
}

/* ---- concat ---- */

static mn_status infer_concat(mn_infer_ctx *c)
{
    const mn_cat_attrs *a = c->attrs;
    if (c->nin < 1) return mn__infer_fail(c, MN_ERR_INVALID, "needs at least one input");
    mn_shape s = c->in[0].shape;
    int ax = mn__axis(a->axis, s.ndim);
    if (ax < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, s.ndim);
    for (int i = 1; i < c->nin; i++) {
        mn_shape t = c->in[i].shape;
        if (c->in[i].dtype != c->in[0].dtype) return mn__infer_fail(c, MN_ERR_DTYPE, "input %d has another dtype", i);
        bool ok = t.ndim == s.ndim;
        for (int d = 0; ok && d < s.ndim; d++) ok = d == ax || t.d[d] == s.d[d];
        if (!ok) return mn__infer_fail(c, MN_ERR_SHAPE, "input %d differs outside axis %d", i, ax);
        s.d[ax] += t.d[ax];
    }
    c->out = (mn_tdesc){ c->in[0].dtype, s };
    return MN_OK;
}

/* Whether piece k, at `at` along the axis, already lies in the output's bytes. */
static bool piece_placed(const mn_kernel_ctx *c, int k, mn__split3 o, int64_t at)
{
    return (const char *)c->in[k].data == (const char *)c->out->data + at * o.inner * 4;
}

/* Bytes [lo, hi) of the copies concat owes, in order: piece by piece (those
 * not written in place already), each piece's blocks by outer index. */
static void concat_bytes(const mn_kernel_ctx *c, int ax, mn__split3 o, int64_t lo, int64_t hi)
{
    size_t row = (size_t)o.inner * 4;
    int64_t at = 0, pos = 0;
    for (int k = 0; k < c->nin && pos < hi; k++) {
        int64_t d = c->in[k].shape.d[ax], block = d * (int64_t)row;
        for (int64_t b = 0; b < o.outer && !piece_placed(c, k, o, at) && pos < hi; b++, pos += block) {
            int64_t b0 = lo > pos ? lo : pos, b1 = hi < pos + block ? hi : pos + block;
            if (b0 < b1)
                memcpy((char *)c->out->data + (size_t)(b * o.dim + at) * row + (size_t)(b0 - pos),
                       (const char *)c->in[k].data + (size_t)(b * block + b0 - pos), (size_t)(b1 - b0));
        }
        at += d;
    }
}

/* The copies in one region, each thread an equal share of the bytes (a
 * stack of 64 time steps along axis 0 has one block per piece: split
 * piece by piece it ran on one thread, a region per piece). */
static mn_status concat_fwd(const mn_kernel_ctx *c)
{
    int ax = mn__axis(((const mn_cat_attrs *)c->attrs)->axis, c->out->shape.ndim);
    mn__split3 o = mn__split_at(c->out->shape, ax);
    int64_t at = 0, total = 0;
    for (int k = 0; k < c->nin; k++) {
        int64_t d = c->in[k].shape.d[ax];
        if (!piece_placed(c, k, o, at)) total += o.outer * d * o.inner * 4;      /* else written there already */
        at += d;
    }
    if (mn__serial(c->nthreads, total > 4 * MN_GRAIN)) {
        concat_bytes(c, ax, o, 0, total);
        return MN_OK;
    }
    #pragma omp parallel num_threads(c->nthreads)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        concat_bytes(c, ax, o, total * t / n, total * (t + 1) / n);
    }
    return MN_OK;
}

/* The bytes concat_fwd touches when part 0 of a team computes it alone
 * (graph/run.c's copy by thread 0): each piece not yet in place, read
 * whole, and all of the output written; nothing when every piece was
 * written in place (an RNN step's gate gradients). ops/gemm.h's contract. */
int mn__concat_spans(const mn_kernel_ctx *c, int part, int nparts, mn__span *sp, int max)
{
    (void)nparts;
    int ax = mn__axis(((const mn_cat_attrs *)c->attrs)->axis, c->out->shape.ndim), n = 0;
    mn__split3 o = mn__split_at(c->out->shape, ax);
    int64_t at = 0;
    for (int k = 0; k < c->nin && part == 0; k++) {
        if (!piece_placed(c, k, o, at)) {
            if (n + 2 > max) return -1;
            uintptr_t a = (uintptr_t)c->in[k].data, b = (uintptr_t)c->out->data;
            sp[n++] = (mn__span){ a, a + mn_tensor_bytes(&c->in[k]), false };
            sp[n++] = (mn__span){ b, b + mn_tensor_bytes(c->out), true };
        }
        at += c->in[k].shape.d[ax];
    }
    return n;
}

/* Piece k sits at offset (pieces before it along the axis) x inner, with
 * the output's strides. */
static bool concat_input_view(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, int k, int64_t *offset,
                              int64_t *strides)
{
    mn_shape os = out->shape;
    int ax = mn__axis(((const mn_cat_attrs *)attrs)->axis, os.ndim);
    int64_t at = 0, acc = 1;
    for (int i = 0; i < k && i < nin; i++) at += in[i].shape.d[ax];
    for (int d = os.ndim - 1; d >= 0; d--) { strides[d] = acc; acc *= os.d[d]; }
    *offset = at * mn__split_at(os, ax).inner;
    return true;
}

mn_node *mn_concat(mn_graph *g, mn_node *const *xs, int n, int axis)
{
    mn_cat_attrs a = { axis };
    return mn__node(g, &mn__op_concat, xs, n, &a);
}

static mn_status vjp_concat(mn_vjp_ctx *c)
{
    int ax = mn__axis(((const mn_cat_attrs *)c->attrs)->axis, mn_node_shape(c->out).ndim);
    int64_t at = 0;
    for (int k = 0; k < c->nin; k++) {
        int64_t d = mn_node_shape(c->in[k]).d[ax];
        if (c->needs[k]) c->dx[k] = mn_slice(c->g, c->dy, ax, at, at + d, 1);
        at += d;
    }
    return MN_OK;
}

static void axis_str(const void *p, char *buf, size_t n) { snprintf(buf, n, "axis=%d", ((const mn_cat_attrs *)p)->axis); }

/* ---- index_select ---- */

static mn_status infer_index_select(mn_infer_ctx *c)
{
    const mn_cat_attrs *a = c->attrs;
    int ax = mn__axis(a->axis, c->in[0].shape.ndim);
    if (ax < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, c->in[0].shape.ndim);
    if (c->in[1].dtype != MN_I32 || c->in[1].shape.ndim != 1) return mn__infer_fail(c, MN_ERR_DTYPE, "index must be a 1-D i32 tensor");
    c->out = c->in[0];
    c->out.shape.d[ax] = c->in[1].shape.d[0];
    return MN_OK;
}

static mn_status check_indices(const mn_kernel_ctx *c, const mn_tensor *idx, int64_t dim)
{
    const int32_t *ix = mn_i32(idx);
    int64_t n = mn_tensor_numel(idx);
    for (int64_t j = 0; j < n; j++)
        if (ix[j] < 0 || ix[j] >= dim)
            return mn__kernel_fail(c, "index %d at position %lld is outside [0, %lld)", ix[j], (long long)j, (long long)dim);
    return MN_OK;
}

/* Rows [r0, r1) of index_select's output, row r: index r % n of outer
 * slice r / n; with `check`, each index checked as it is read. */
static mn_status select_range(const mn_kernel_ctx *c, mn__split3 s, int64_t r0, int64_t r1, bool check)
{
    const int32_t *ix = mn_i32(&c->in[1]);
    int64_t n = c->in[1].shape.d[0];
    size_t row = (size_t)s.inner * 4;
    const char *x = c->in[0].data;
    char *y = c->out->data;
    for (int64_t r = r0; r < r1; r++) {
        int32_t i = ix[r % n];
        if (check && (i < 0 || i >= s.dim))
            return mn__kernel_fail(c, "index %d at position %lld is outside [0, %lld)", i, (long long)(r % n), (long long)s.dim);
        memcpy(y + (size_t)r * row, x + (size_t)((r / n) * s.dim + i) * row, row);
    }
    return MN_OK;
}

static mn__split3 select_split(const mn_kernel_ctx *c)
{
    return mn__split_at(c->in[0].shape, mn__axis(((const mn_cat_attrs *)c->attrs)->axis, c->in[0].shape.ndim));
}

static mn_status index_select_fwd(const mn_kernel_ctx *c)
{
    mn__split3 s = select_split(c);
    if (check_indices(c, &c->in[1], s.dim)) return MN_ERR_RUNTIME;
    int64_t total = s.outer * c->in[1].shape.d[0];
    if (mn__serial(c->nthreads, total * s.inner > MN_GRAIN)) return select_range(c, s, 0, total, false);
    #pragma omp parallel for num_threads(c->nthreads) schedule(static)
    for (int ch = 0; ch < MN_NCHUNK; ch++) select_range(c, s, total * ch / MN_NCHUNK, total * (ch + 1) / MN_NCHUNK, false);
    return MN_OK;
}

/* Part `part` of `nparts` of index_select, for graph/run.c's chains
 * (ops/gemm.h): its rows of the output cut as the packed product cuts its
 * rows (mn__strip_rows), so that the recurrent cell after an RNN step's
 * gathered rows reads the rows its own thread copied; each part checks
 * the indices it reads. A copy: any cut gives the same bytes. */
mn_status mn__index_select_part(const mn_kernel_ctx *c, int part, int nparts)
{
    if (nparts <= 0) return index_select_fwd(c);
    mn__split3 s = select_split(c);
    int64_t r0, r1;
    mn__strip_rows(s.outer * c->in[1].shape.d[0], part, nparts, &r0, &r1);
    return select_range(c, s, r0, r1, true);
}

/* Its rows of the output (written), all of x and the indices (read). */
int mn__index_select_spans(const mn_kernel_ctx *c, int part, int nparts, mn__span *sp, int max)
{
    mn__split3 s = select_split(c);
    int64_t r0, r1;
    mn__strip_rows(s.outer * c->in[1].shape.d[0], part, nparts, &r0, &r1);
    if (r0 >= r1) return 0;
    if (max < 3) return -1;
    uintptr_t y = (uintptr_t)c->out->data, x = (uintptr_t)c->in[0].data, i = (uintptr_t)c->in[1].data;
    size_t row = (size_t)s.inner * 4;
    sp[0] = (mn__span){ y + (uintptr_t)r0 * row, y + (uintptr_t)r1 * row, true };
    sp[1] = (mn__span){ x, x + mn_tensor_bytes(&c->in[0]), false };
    sp[2] = (mn__span){ i, i + mn_tensor_bytes(&c->in[1]), false };
    return 3;
}

mn_node *mn_index_select(mn_graph *g, mn_node *x, int axis, mn_node *index)
{
    mn_cat_attrs a = { axis };
    mn_node *in[2] = { x, index };
    return mn__node(g, &mn__op_index_select, in, 2, &a);
}

/* ---- gathered rows folded (builder rewrites) ----
 * Rows gathered from a table T [V, F] (index_select along axis 0: an
 * embedding) and then multiplied by a weight, or added a vector over their
 * rows, are the same rows of the table multiplied or added once:
 *   gather(T, idx) op(W) = gather(T op(W), idx),
 *   gather(T, idx) + b   = gather(T + b, idx).
 * Where the table has fewer rows than the gather, the builders of the
 * per-step products (mn_matmul_packed, mn_matmul_steps: an RNN's input
 * projection) and of add build the right-hand side: the product and the
 * bias adds run over V rows instead of every token's, and their backward
 * is a scatter-add of the gradient into [V, G] and two products of V rows
 * (an LSTM's W_ih, its biases and the table: docs/architecture.md, "Folded
 * gathers"). The add is exact (the same additions, bit for bit); the
 * product's rows are the same sums from another GEMM call. The table's
 * product and sums are made once for all callers (mn__node_once). */

/* x's rows as rows [r0, r0 + rows) of index_select(T, idx) along axis 0,
 * through reshapes keeping the last dim and unit-step slices along axis 0. */
typedef struct { mn_node *table, *index; int64_t r0, rows; } gathered;
extern const mn_op_def mn__op_matmul, mn__op_add, mn__op_reshape;

static bool gathered_rows(mn_node *x, gathered *r)
{
    mn_shape xs = mn_node_shape(x);
    if (!x || xs.ndim < 1 || mn_node_dtype(x) != MN_F32) return false;
    int64_t F = xs.d[xs.ndim - 1], r0 = 0;
    if (F <= 0) return false;
    for (int hop = 0; hop < 8; hop++) {
        const mn_op_def *op = mn__node_opdef(x);
        mn_node *in = mn__node_input(x, 0);
        mn_shape is = mn_node_shape(in);
        if (!op || !in || is.ndim < 1 || is.d[is.ndim - 1] != F) return false;
        if (op == &mn__op_index_select) {
            mn_node *idx = mn__node_input(x, 1);
            if (is.ndim != 2 || mn__axis(((const mn_cat_attrs *)mn__node_attrs(x))->axis, 2) != 0 ||
                mn_node_shape(idx).ndim != 1)
                return false;
            *r = (gathered){ in, idx, r0, mn_shape_numel(xs) / F };
            return true;
        }
        if (op == &mn__op_slice) {
            const mn_slice_attrs *a = mn__node_attrs(x);
            int64_t b, len;
            if (is.ndim < 2 || mn__axis(a->axis, is.ndim) != 0 || a->step != 1) return false;
            slice_norm(is.d[0], a, &b, &len);
            r0 += b * (mn_shape_numel(is) / is.d[0] / F);
        } else if (op != &mn__op_reshape) {
            return false;
        }
        x = in;
    }
    return false;
}

/* gather(t, the index's rows of r) shaped as `as`. */
static mn_node *gather_again(mn_graph *g, mn_node *t, const gathered *r, mn_shape as)
{
    int64_t n = mn_node_shape(r->index).d[0];
    mn_node *idx = r->r0 == 0 && r->rows == n ? r->index : mn_slice(g, r->index, 0, r->r0, r->r0 + r->rows, 1);
    return mn_reshape(g, mn_index_select(g, t, 0, idx), as);
}

mn_node *mn__fold_product(mn_graph *g, mn_node *a, mn_node *w, bool trans_b)
{
    gathered r;
    mn_shape as = mn_node_shape(a), ws = mn_node_shape(w);
    if (!mn__graph_folds(g) || !w || ws.ndim != 2 || mn_node_dtype(w) != MN_F32 || !gathered_rows(a, &r) ||
        mn_node_shape(r.table).d[0] >= r.rows || ws.d[trans_b ? 1 : 0] != as.d[as.ndim - 1])
        return NULL;
    mn_matmul_attrs at = { false, trans_b, false };
    mn_node *in[2] = { r.table, w };
    as.d[as.ndim - 1] = ws.d[trans_b ? 0 : 1];
    return gather_again(g, mn__node_once(g, &mn__op_matmul, in, 2, &at), &r, as);
}

mn_node *mn__fold_add(mn_graph *g, mn_node *a, mn_node *b)
{
    gathered r;
    mn_shape as = mn_node_shape(a), bs = mn_node_shape(b);
    if (!mn__graph_folds(g) || !a || !b || mn_node_dtype(b) != MN_F32 || bs.ndim < 1 || bs.ndim > 2 || as.ndim < bs.ndim ||
        bs.d[bs.ndim - 1] != as.d[as.ndim - 1] || mn_shape_numel(bs) != bs.d[bs.ndim - 1] || !gathered_rows(a, &r) ||
        mn_node_shape(r.table).d[0] >= r.rows)
        return NULL;
    mn_node *in[2] = { r.table, b };
    return gather_again(g, mn__node_once(g, &mn__op_add, in, 2, NULL), &r, as);
}

/* Along axis 0, output row r is x's row idx[r]: rows come from the same
 * rows of idx (input 1), whatever rows a call computes (a copy). */
static int isel_rows(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    (void)out;
    return nin == 2 && in[1].shape.ndim == 1 && mn__axis(((const mn_cat_attrs *)attrs)->axis, in[0].shape.ndim) == 0 ? 1 : -1;
}

static mn_status vjp_index_select(mn_vjp_ctx *c)
{
    mn_scatter_attrs a = { ((const mn_cat_attrs *)c->attrs)->axis, mn_node_shape(c->in[0]) };
    mn_node *in[2] = { c->dy, c->in[1] };
    c->dx[0] = mn__node(c->g, &mn__op_index_select_backward, in, 2, &a);
    return MN_OK;
}

static mn_status infer_isel_back(mn_infer_ctx *c)
{
    const mn_scatter_attrs *a = c->attrs;
    mn_tdesc in = { MN_F32, a->in_shape };
    mn_infer_ctx f = { .nin = 2, .in = (mn_tdesc[]){ in, c->in[1] }, .attrs = &(mn_cat_attrs){ a->axis },
                       .msg = c->msg, .msglen = c->msglen };
    mn_status s = infer_index_select(&f);
    if (s) return s;
    if (c->in[0].dtype != MN_F32 || !mn_shape_eq(f.out.shape, c->in[0].shape))
        return mn__infer_fail(c, MN_ERR_SHAPE, "gradient shape does not match the selection");
    c->out = in;
    return MN_OK;
}

/* Block blk of (outer, w columns): out[o, idx[j], c0:c1] += g[o, j, c0:c1], j in order. */
static void isel_back_block(float *out, const float *gy, const int32_t *ix, mn__split3 s, int64_t n, int64_t nb, int64_t w,
                            int64_t blk)
{
    int64_t o = blk / nb, c0 = (blk % nb) * w, c1 = c0 + w < s.inner ? c0 + w : s.inner;
    for (int64_t j = 0; j < n; j++) {
        float *dst = out + (o * s.dim + ix[j]) * s.inner;
        const float *src = gy + (o * n + j) * s.inner;
        for (int64_t k = c0; k < c1; k++) dst[k] += src[k];
    }
}

/* out[o, idx[j], :] += g[o, j, :]: blocks of (outer, w columns) are
 * disjoint, and j runs in order inside each (so every element's sum is
 * the same whatever w). One thread takes whole rows (w = inner: g is read
 * along its rows; columns blocks of rows 4 KiB apart read a new page every
 * row); a team splits the columns in one block per thread, at least 64. */
static mn_status isel_back_fwd(const mn_kernel_ctx *c)
{
    const mn_scatter_attrs *a = c->attrs;
    int ax = mn__axis(a->axis, a->in_shape.ndim);
    mn__split3 s = mn__split_at(a->in_shape, ax);
    if (check_indices(c, &c->in[1], s.dim)) return MN_ERR_RUNTIME;
    const int32_t *ix = mn_i32(&c->in[1]);
    const float *gy = mn_f32(&c->in[0]);
    float *out = mn_f32(c->out);
    int64_t n = c->in[1].shape.d[0];
    memset(out, 0, mn_tensor_bytes(c->out));
    if (mn__serial(c->nthreads, s.outer * n * s.inner > MN_GRAIN)) {
        for (int64_t o = 0; o < s.outer; o++) isel_back_block(out, gy, ix, s, n, 1, s.inner > 0 ? s.inner : 1, o);
        return MN_OK;
    }
    int64_t w = (s.inner + c->nthreads - 1) / c->nthreads;
    w = w < 64 ? 64 : (w + 15) / 16 * 16;
    int64_t nb = (s.inner + w - 1) / w;
    #pragma omp parallel for num_threads(c->nthreads) schedule(static)
    for (int64_t blk = 0; blk < s.outer * nb; blk++) isel_back_block(out, gy, ix, s, n, nb, w, blk);
    return MN_OK;
}

static mn_status vjp_isel_back(mn_vjp_ctx *c)
{
    if (c->needs[0]) c->dx[0] = mn_index_select(c->g, c->dy, ((const mn_scatter_attrs *)c->attrs)->axis, c->in[1]);
    return MN_OK;
}

/* ---- gather (torch.gather) ---- */

static mn_status infer_gather(mn_infer_ctx *c)
{
    const mn_cat_attrs *a = c->attrs;
    mn_shape x = c->in[0].shape, ix = c->in[1].shape;
    int ax = mn__axis(a->axis, x.ndim);
    if (ax < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, x.ndim);
    if (c->in[1].dtype != MN_I32) return mn__infer_fail(c, MN_ERR_DTYPE, "index must be i32");
    if (ix.ndim != x.ndim) return mn__infer_fail(c, MN_ERR_SHAPE, "index must have as many dims as the input");
    for (int d = 0; d < x.ndim; d++)
        if (d != ax && ix.d[d] > x.d[d]) return mn__infer_fail(c, MN_ERR_SHAPE, "index dim %d is larger than the input's", d);
    c->out = (mn_tdesc){ c->in[0].dtype, ix };
    return MN_OK;
}

/* Offset in a tensor of shape xs of index element e (shape is) with the
 * coordinate on `ax` replaced by v. */
static int64_t gather_off(int64_t e, mn_shape is, mn_shape xs, int ax, int64_t v)
{
    int64_t off = 0, stride = 1;
    for (int d = is.ndim - 1; d >= 0; d--) {
        int64_t i = e % is.d[d];
        e /= is.d[d];
        off += (d == ax ? v : i) * stride;
        stride *= xs.d[d];
    }
    return off;
}

static mn_status gather_run(const mn_kernel_ctx *c, mn_shape xs, int ax, bool backward)
{
    const int32_t *ix = mn_i32(&c->in[1]);
    mn_shape is = c->in[1].shape;
    int64_t n = mn_shape_numel(is);
    for (int64_t e = 0; e < n; e++)
        if (ix[e] < 0 || ix[e] >= xs.d[ax])
            return mn__kernel_fail(c, "index %d at position %lld is outside [0, %lld)", ix[e], (long long)e, (long long)xs.d[ax]);
    const float *src = mn_f32(&c->in[0]);
    float *dst = mn_f32(c->out);
    if (!backward) {
        #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
        for (int64_t e = 0; e < n; e++) dst[e] = src[gather_off(e, is, xs, ax, ix[e])];
        return MN_OK;
    }
    memset(dst, 0, mn_tensor_bytes(c->out));
    for (int64_t e = 0; e < n; e++) dst[gather_off(e, is, xs, ax, ix[e])] += src[e];
    return MN_OK;
}

static mn_status gather_fwd(const mn_kernel_ctx *c)
{
    int ax = mn__axis(((const mn_cat_attrs *)c->attrs)->axis, c->in[0].shape.ndim);
    return gather_run(c, c->in[0].shape, ax, false);
}

mn_node *mn_gather(mn_graph *g, mn_node *x, int axis, mn_node *index)
{
    mn_cat_attrs a = { axis };
    mn_node *in[2] = { x, index };
    return mn__node(g, &mn__op_gather, in, 2, &a);
}

static mn_status vjp_gather(mn_vjp_ctx *c)
{
    mn_scatter_attrs a = { ((const mn_cat_attrs *)c->attrs)->axis, mn_node_shape(c->in[0]) };
    mn_node *in[2] = { c->dy, c->in[1] };
    c->dx[0] = mn__node(c->g, &mn__op_gather_backward, in, 2, &a);
    return MN_OK;
}

static mn_status infer_gather_back(mn_infer_ctx *c)
{
    const mn_scatter_attrs *a = c->attrs;
    mn_tdesc x = { MN_F32, a->in_shape };
    mn_infer_ctx f = { .nin = 2, .in = (mn_tdesc[]){ x, c->in[1] }, .attrs = &(mn_cat_attrs){ a->axis },
                       .msg = c->msg, .msglen = c->msglen };
    mn_status s = infer_gather(&f);
    if (s) return s;
    if (c->in[0].dtype != MN_F32 || !mn_shape_eq(c->in[0].shape, c->in[1].shape))
        return mn__infer_fail(c, MN_ERR_SHAPE, "gradient and index shapes differ");
    c->out = x;
    return MN_OK;
}

static mn_status gather_back_fwd(const mn_kernel_ctx *c)
{
    const mn_scatter_attrs *a = c->attrs;
    return gather_run(c, a->in_shape, mn__axis(a->axis, a->in_shape.ndim), true);
}

static mn_status vjp_gather_back(mn_vjp_ctx *c)
{
    if (c->needs[0]) c->dx[0] = mn_gather(c->g, c->dy, ((const mn_scatter_attrs *)c->attrs)->axis, c->in[1]);
    return MN_OK;
}

static void scatter_str(const void *p, char *buf, size_t n)
{
    const mn_scatter_attrs *a = p;
    char s[96];
    snprintf(buf, n, "axis=%d into %s", a->axis, mn_shape_str(a->in_shape, s, sizeof s));
}

/* ---- where(cond, a, b): cond f32 or i32, nonzero = take a ---- */

static mn_status infer_where(mn_infer_ctx *c)
{
    mn_shape o;
    if (c->in[1].dtype != MN_F32 || c->in[2].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "a and b must be f32");
    if (mn_shape_broadcast(c->in[0].shape, c->in[1].shape, &o) || mn_shape_broadcast(o, c->in[2].shape, &o))
        return mn__infer_fail(c, MN_ERR_SHAPE, "cond, a and b do not broadcast");
    c->out = (mn_tdesc){ MN_F32, o };
    return MN_OK;
}

static mn_status where_fwd(const mn_kernel_ctx *c)
{
    mn_shape os = c->out->shape;
    int nd = os.ndim;
    int64_t st[3][MN_MAX_DIMS], n = mn_shape_numel(os);
    for (int k = 0; k < 3; k++) mn__bcast_strides(c->in[k].shape, os, st[k]);
    const float *a = mn_f32(&c->in[1]), *b = mn_f32(&c->in[2]);
    const int32_t *ci = mn_i32(&c->in[0]);
    const float *cf = mn_f32(&c->in[0]);
    bool cond_f32 = c->in[0].dtype == MN_F32;
    float *y = mn_f32(c->out);
    #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t e = 0; e < n; e++) {
        int64_t rem = e, off[3] = { 0, 0, 0 };
        for (int d = nd - 1; d >= 0; d--) {
            int64_t i = rem % os.d[d];
            rem /= os.d[d];
            for (int k = 0; k < 3; k++) off[k] += i * st[k][d];
        }
        bool t = cond_f32 ? cf[off[0]] != 0.0f : ci[off[0]] != 0;
        y[e] = t ? a[off[1]] : b[off[2]];
    }
    return MN_OK;
}

mn_node *mn_where(mn_graph *g, mn_node *cond, mn_node *a, mn_node *b)
{
    mn_node *in[3] = { cond, a, b };
    return mn__node(g, &mn__op_where, in, 3, NULL);
}

/* da = sum_to(where(c, dy, 0)), db = sum_to(where(c, 0, dy)) */
static mn_status vjp_where(mn_vjp_ctx *c)
{
    mn_node *zero = mn_scalar(c->g, 0.0f);
    if (c->needs[1]) c->dx[1] = mn_sum_to(c->g, mn_where(c->g, c->in[0], c->dy, zero), mn_node_shape(c->in[1]));
    if (c->needs[2]) c->dx[2] = mn_sum_to(c->g, mn_where(c->g, c->in[0], zero, c->dy), mn_node_shape(c->in[2]));
    return MN_OK;
}

/* ---- compositions ---- */

/* embedding(idx [...], weight [V, D]) = index_select(weight, 0, flat(idx)) viewed as [..., D] */
static mn_status infer_embedding(mn_infer_ctx *c)
{
    if (c->in[0].dtype != MN_I32) return mn__infer_fail(c, MN_ERR_DTYPE, "indices must be i32");
    if (c->in[1].dtype != MN_F32 || c->in[1].shape.ndim != 2) return mn__infer_fail(c, MN_ERR_SHAPE, "weight must be f32 [num_embeddings, dim]");
    if (c->in[0].shape.ndim >= MN_MAX_DIMS) return mn__infer_fail(c, MN_ERR_SHAPE, "too many index dims");
    return MN_OK;
}

static mn_node *compose_embedding(mn_graph *g, mn_node *const *in, int nin, const void *attrs)
{
    (void)nin; (void)attrs;
    mn_shape is = mn_node_shape(in[0]), os = is;
    os.d[os.ndim++] = mn_node_shape(in[1]).d[1];
    mn_node *flat = mn_reshape(g, in[0], MN_SHAPE(mn_shape_numel(is)));
    return mn_reshape(g, mn_index_select(g, in[1], 0, flat), os);
}

mn_node *mn_embedding_op(mn_graph *g, mn_node *indices, mn_node *weight)
{
    mn_node *in[2] = { indices, weight };
    return mn__node(g, &mn__op_embedding, in, 2, NULL);
}

static mn_status infer_squeeze(mn_infer_ctx *c)
{
    const mn_squeeze_attrs *a = c->attrs;
    mn_shape s = c->in[0].shape;
    if (a->all) return MN_OK;
    int ax = mn__axis(a->axis, s.ndim);
    if (ax < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, s.ndim);
    return MN_OK;
}

/* PyTorch: squeeze(dim) of a dim that is not 1 leaves the tensor unchanged. */
static mn_node *compose_squeeze(mn_graph *g, mn_node *const *in, int nin, const void *attrs)
{
    const mn_squeeze_attrs *a = attrs;
    mn_shape s = mn_node_shape(in[0]), o = { 0 };
    int ax = a->all ? -1 : mn__axis(a->axis, s.ndim);
    for (int d = 0; d < s.ndim; d++)
        if (!(s.d[d] == 1 && (a->all || d == ax))) o.d[o.ndim++] = s.d[d];
    (void)nin;
    return mn_reshape(g, in[0], o);
}

static mn_status infer_unsqueeze(mn_infer_ctx *c)
{
    const mn_squeeze_attrs *a = c->attrs;
    int nd = c->in[0].shape.ndim;
    if (nd >= MN_MAX_DIMS || mn__axis(a->axis, nd + 1) < 0)
        return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range for %d dims", a->axis, nd + 1);
    return MN_OK;
}

static mn_node *compose_unsqueeze(mn_graph *g, mn_node *const *in, int nin, const void *attrs)
{
    mn_shape s = mn_node_shape(in[0]), o = { .ndim = s.ndim + 1 };
    int ax = mn__axis(((const mn_squeeze_attrs *)attrs)->axis, s.ndim + 1);
    for (int d = 0, k = 0; d < o.ndim; d++) o.d[d] = d == ax ? 1 : s.d[k++];
    (void)nin;
    return mn_reshape(g, in[0], o);
}

mn_node *mn_squeeze(mn_graph *g, mn_node *x, int axis)
{
    mn_squeeze_attrs a = { axis, false };
    return mn__node(g, &mn__op_squeeze, &x, 1, &a);
}
mn_node *mn_squeeze_all(mn_graph *g, mn_node *x)
{
    mn_squeeze_attrs a = { 0, true };
    return mn__node(g, &mn__op_squeeze, &x, 1, &a);
}
mn_node *mn_unsqueeze(mn_graph *g, mn_node *x, int axis)
{
    mn_squeeze_attrs a = { axis, false };
    return mn__node(g, &mn__op_unsqueeze, &x, 1, &a);
}

static mn_status infer_stack(mn_infer_ctx *c)
{
    const mn_cat_attrs *a = c->attrs;
    if (c->nin < 1) return mn__infer_fail(c, MN_ERR_INVALID, "needs at least one input");
    int nd = c->in[0].shape.ndim;
    if (nd >= MN_MAX_DIMS || mn__axis(a->axis, nd + 1) < 0) return mn__infer_fail(c, MN_ERR_INVALID, "axis %d out of range", a->axis);
    for (int i = 1; i < c->nin; i++)
        if (!mn_shape_eq(c->in[i].shape, c->in[0].shape) || c->in[i].dtype != c->in[0].dtype)
            return mn__infer_fail(c, MN_ERR_SHAPE, "input %d differs from input 0", i);
    return MN_OK;
}

static mn_node *compose_stack(mn_graph *g, mn_node *const *in, int nin, const void *attrs)
{
    int ax = mn__axis(((const mn_cat_attrs *)attrs)->axis, mn_node_shape(in[0]).ndim + 1);
    mn_node **u = malloc((size_t)nin * sizeof *u);
    if (!u) { mn__graph_fail(g, MN_ERR_NOMEM, "stack: out of memory"); return NULL; }
    for (int i = 0; i < nin; i++) u[i] = mn_unsqueeze(g, in[i], ax);
    mn_node *r = mn_concat(g, u, nin, ax);
    free(u);
    return r;
}

mn_node *mn_stack(mn_graph *g, mn_node *const *xs, int n, int axis)
{
    mn_cat_attrs a = { axis };
    return mn__node(g, &mn__op_stack, xs, n, &a);
}

/* Builders with several results: slices along `axis`. */
mn_status mn_split(mn_graph *g, mn_node *x, int axis, int n, const int64_t *sizes, mn_node **out)
{
    int nd = mn_node_shape(x).ndim, ax = mn__axis(axis, nd);
    int64_t total = 0;
    if (!x || ax < 0 || n <= 0 || !sizes || !out)
        return mn__graph_fail(g, MN_ERR_INVALID, "split: bad arguments (axis %d of %d dims, %d parts)", axis, nd, n);
    for (int i = 0; i < n; i++) total += sizes[i];
    if (total != mn_node_shape(x).d[ax])
        return mn__graph_fail(g, MN_ERR_SHAPE, "split: sizes sum to %lld, dim %d is %lld", (long long)total, ax, (long long)mn_node_shape(x).d[ax]);
    int64_t at = 0;
    for (int i = 0; i < n; i++) { out[i] = mn_slice(g, x, ax, at, at + sizes[i], 1); at += sizes[i]; }
    return mn_graph_status(g);
}

/* torch.chunk: n parts of ceil(dim / n), the last smaller (fewer parts if dim < n). */
int mn_chunk(mn_graph *g, mn_node *x, int axis, int n, mn_node **out)
{
    int nd = mn_node_shape(x).ndim, ax = mn__axis(axis, nd);
    for (int i = 0; out && i < n; i++) out[i] = NULL;              /* a failed build leaves no stale pointers */
    if (!x || ax < 0 || n <= 0 || !out) { mn__graph_fail(g, MN_ERR_INVALID, "chunk: bad arguments"); return 0; }
    int64_t dim = mn_node_shape(x).d[ax], each = (dim + n - 1) / n, k = 0;
    for (int64_t at = 0; at < dim && k < n; at += each) out[k++] = mn_slice(g, x, ax, at, at + each, 1);
    return (int)k;
}

/* ---- records ---- */

static void sq_str(const void *p, char *buf, size_t n)
{
    const mn_squeeze_attrs *a = p;
    if (a->all) snprintf(buf, n, "all");
    else snprintf(buf, n, "axis=%d", a->axis);
}

const mn_op_def mn__op_slice = { MN_OP_RECORD,
    .name = "slice", .doc = "y = x[start:stop:step] along axis; dx = slice_backward(dy)",
    .arity = 1, .attr_size = sizeof(mn_slice_attrs), MN__FIELDS(mn_slice_attrs), .inplace = -1,
    .infer = infer_slice, .forward = slice_fwd, .vjp = vjp_slice, .attr_str = slice_str, .traits.alias_offset = slice_alias,
    .traits.view = slice_view,
};
const mn_op_def mn__op_slice_backward = { MN_OP_RECORD,
    .name = "slice_backward", .doc = "y = zeros(in_shape) with dy placed at the slice; dd = slice(g)",
    .arity = 1, .attr_size = sizeof(mn_slice_back_attrs), MN__FIELDS(mn_slice_back_attrs), .inplace = -1,
    .infer = infer_slice_back, .forward = slice_back_fwd, .vjp = vjp_slice_back, .traits.merge_grads = merge_slices,
};
const mn_op_def mn__op_concat = { MN_OP_RECORD,
    .name = "concat", .doc = "y = [x0, x1, ...] joined along axis; dxk = slice of dy",
    .arity = -1, .attr_size = sizeof(mn_cat_attrs), MN__FIELDS(mn_cat_attrs), .inplace = -1,
    .infer = infer_concat, .forward = concat_fwd, .vjp = vjp_concat, .attr_str = axis_str,
    .traits.input_view = concat_input_view,
};
const mn_op_def mn__op_index_select = { MN_OP_RECORD,
    .name = "index_select", .doc = "y = x[..., idx[j], ...] along axis (i32 idx); dx = index_select_backward (scatter-add)",
    .arity = 2, .attr_size = sizeof(mn_cat_attrs), MN__FIELDS(mn_cat_attrs), .inplace = -1,
    .infer = infer_index_select, .forward = index_select_fwd, .vjp = vjp_index_select, .attr_str = axis_str,
    .traits.row_input = isel_rows,
};
const mn_op_def mn__op_index_select_backward = { MN_OP_RECORD,
    .name = "index_select_backward", .doc = "y = zeros(in_shape); y[..., idx[j], ...] += g[..., j, ...]; dg = index_select(gy)",
    .arity = 2, .attr_size = sizeof(mn_scatter_attrs), MN__FIELDS(mn_scatter_attrs), .inplace = -1,
    .infer = infer_isel_back, .forward = isel_back_fwd, .vjp = vjp_isel_back, .attr_str = scatter_str,
};
const mn_op_def mn__op_gather = { MN_OP_RECORD,
    .name = "gather", .doc = "y[i] = x[i with axis coord idx[i]] (torch.gather); dx = gather_backward (scatter-add)",
    .arity = 2, .attr_size = sizeof(mn_cat_attrs), MN__FIELDS(mn_cat_attrs), .inplace = -1,
    .infer = infer_gather, .forward = gather_fwd, .vjp = vjp_gather, .attr_str = axis_str,
};
const mn_op_def mn__op_gather_backward = { MN_OP_RECORD,
    .name = "gather_backward", .doc = "y = zeros(in_shape); y[i with axis coord idx[i]] += g[i]; dg = gather(gy)",
    .arity = 2, .attr_size = sizeof(mn_scatter_attrs), MN__FIELDS(mn_scatter_attrs), .inplace = -1,
    .infer = infer_gather_back, .forward = gather_back_fwd, .vjp = vjp_gather_back, .attr_str = scatter_str,
};
const mn_op_def mn__op_where = { MN_OP_RECORD,
    .name = "where", .doc = "y = cond != 0 ? a : b (broadcast); da = sum_to(where(cond, dy, 0)), db = sum_to(where(cond, 0, dy))",
    .arity = 3, .inplace = -1,
    .infer = infer_where, .forward = where_fwd, .vjp = vjp_where,
};
const mn_op_def mn__op_embedding = { MN_OP_RECORD,
    .name = "embedding", .doc = "y[..., :] = weight[idx[...], :] (composite: index_select on dim 0); dweight scatter-adds",
    .arity = 2, .inplace = -1, .flags = MN_OPF_COMPOSITE, .infer = infer_embedding, .compose = compose_embedding,
};
const mn_op_def mn__op_squeeze = { MN_OP_RECORD,
    .name = "squeeze", .doc = "y = x without size-1 dims (one axis or all) (composite: reshape); dx = reshape(dy)",
    .arity = 1, .attr_size = sizeof(mn_squeeze_attrs), MN__FIELDS(mn_squeeze_attrs), .inplace = -1, .flags = MN_OPF_COMPOSITE,
    .infer = infer_squeeze, .compose = compose_squeeze, .attr_str = sq_str,
};
const mn_op_def mn__op_unsqueeze = { MN_OP_RECORD,
    .name = "unsqueeze", .doc = "y = x with a size-1 dim inserted at axis (composite: reshape); dx = reshape(dy)",
    .arity = 1, .attr_size = sizeof(mn_squeeze_attrs), MN__FIELDS(mn_squeeze_attrs), .inplace = -1, .flags = MN_OPF_COMPOSITE,
    .infer = infer_unsqueeze, .compose = compose_unsqueeze, .attr_str = sq_str,
};
const mn_op_def mn__op_stack = { MN_OP_RECORD,
    .name = "stack", .doc = "y = inputs joined along a new axis (composite: unsqueeze + concat); dxk = slice of dy",
    .arity = -1, .attr_size = sizeof(mn_cat_attrs), MN__FIELDS(mn_cat_attrs), .inplace = -1, .flags = MN_OPF_COMPOSITE,
    .infer = infer_stack, .compose = compose_stack, .attr_str = axis_str,
};
