/* ops/loss.c: losses with PyTorch's semantics. cross_entropy takes logits
 * [N, C] or [N, C, d...] (or [C]) and i32 targets, log-softmax is computed
 * stably. mn_cross_entropy_ex builds it as two graph values, as layer_norm:
 * cross_entropy_stats (each position's maximum and sum of exponentials, one
 * pass over the logits) and cross_entropy(logits, targets, stats); the
 * backward cross_entropy_grad reads the same stats (an edge of the graph,
 * nothing hidden), so it takes one exponential pass and no reduction. Nodes
 * built without stats (mn_op by name: two inputs, the gradient three)
 * compute them inside, as before. mse_loss compares equal shapes. */
#include "attrs.h"
#include "op.h"
#include "fastmath.h"
#include <math.h>
#include <string.h>

extern const mn_op_def mn__op_cross_entropy, mn__op_cross_entropy_grad, mn__op_cross_entropy_stats, mn__op_mse_loss;

typedef struct { int64_t n, c, inner; } ce_dims;   /* logits viewed as [n, c, inner] */

static ce_dims ce_split(mn_shape s)
{
    ce_dims d = { 1, s.d[s.ndim == 1 ? 0 : 1], 1 };
    if (s.ndim >= 2) d.n = s.d[0];
    for (int i = 2; i < s.ndim; i++) d.inner *= s.d[i];
    return d;
}

static mn_status check_ce(mn_infer_ctx *c)
{
    const mn_ce_attrs *a = c->attrs;
    mn_shape L = c->in[0].shape, T = c->in[1].shape;
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "logits must be f32");
    if (c->in[1].dtype != MN_I32) return mn__infer_fail(c, MN_ERR_DTYPE, "targets must be i32 class indices");
    if (L.ndim < 1) return mn__infer_fail(c, MN_ERR_SHAPE, "logits need a class dim");
    bool ok = T.ndim == (L.ndim == 1 ? 0 : L.ndim - 1);
    for (int i = 0; ok && i < T.ndim; i++) ok = T.d[i] == L.d[i == 0 ? 0 : i + 1];
    if (!ok) return mn__infer_fail(c, MN_ERR_SHAPE, "targets must have the logits' shape without the class dim (dim 1)");
    if (!(a->o.label_smoothing >= 0.0f && a->o.label_smoothing <= 1.0f))
        return mn__infer_fail(c, MN_ERR_INVALID, "label_smoothing %g outside [0, 1]", (double)a->o.label_smoothing);
    if (a->o.reduction < MN_REDUCE_NONE || a->o.reduction > MN_REDUCE_SUM)
        return mn__infer_fail(c, MN_ERR_INVALID, "unknown reduction %d", (int)a->o.reduction);
    return MN_OK;
}

/* The optional stats input k: cross_entropy_stats of the logits, [positions, CE_NST]. */
enum { CE_NST = 4 };

static mn_status check_stats_in(mn_infer_ctx *c, int k)
{
    if (c->nin <= k) return MN_OK;
    ce_dims d = ce_split(c->in[0].shape);
    if (c->in[k].dtype != MN_F32 || !mn_shape_eq(c->in[k].shape, MN_SHAPE(d.n * d.inner, CE_NST)))
        return mn__infer_fail(c, MN_ERR_SHAPE, "stats (input %d) must be f32 [%lld, %d]: cross_entropy_stats of the logits", k,
                              (long long)(d.n * d.inner), CE_NST);
    return MN_OK;
}

static mn_status infer_ce(mn_infer_ctx *c)
{
    if (c->nin < 2 || c->nin > 3) return mn__infer_fail(c, MN_ERR_INVALID, "takes logits, targets and optional stats");
    mn_status s = check_ce(c);
    if (!s) s = check_stats_in(c, 2);
    if (s) return s;
    const mn_ce_attrs *a = c->attrs;
    c->out = (mn_tdesc){ MN_F32, a->o.reduction == MN_REDUCE_NONE ? c->in[1].shape : MN_SCALAR };
    return MN_OK;
}

static mn_status infer_ce_grad(mn_infer_ctx *c)
{
    if (c->nin < 3 || c->nin > 4) return mn__infer_fail(c, MN_ERR_INVALID, "takes logits, targets, dloss and optional stats");
    mn_status s = check_ce(c);
    if (!s) s = check_stats_in(c, 3);
    if (s) return s;
    const mn_ce_attrs *a = c->attrs;
    mn_shape want = a->o.reduction == MN_REDUCE_NONE ? c->in[1].shape : MN_SCALAR;
    if (c->in[2].dtype != MN_F32 || !mn_shape_eq(c->in[2].shape, want))
        return mn__infer_fail(c, MN_ERR_SHAPE, "dloss must be f32 with the loss's shape");
    c->out = c->in[0];
    return MN_OK;
}

/* Validates targets; returns the count of non-ignored ones or -1 (error). */
static int64_t count_targets(const mn_kernel_ctx *c, ce_dims d, int ignore)
{
    const int32_t *t = mn_i32(&c->in[1]);
    int64_t cnt = 0, npos = d.n * d.inner;
    for (int64_t p = 0; p < npos; p++) {
        if (t[p] == ignore) continue;
        if (t[p] < 0 || t[p] >= d.c) {
            mn__kernel_fail(c, "target %d at position %lld is outside [0, %lld)", t[p], (long long)p, (long long)d.c);
            return -1;
        }
        cnt++;
    }
    return cnt;
}

/* log-sum-exp of one strided row in two parts, lse = m + *ls: its maximum
 * m (returned) and *ls = log(sum exp(x - m)) (0 where m is not finite).
 * Callers add the parts after differences with m, (m - x_k) + ls: at huge
 * magnitudes m + ls rounds to m (1e30 + log 20). */
static double row_lse(const float *x, int64_t n, int64_t st, double *ls)
{
    float m = -INFINITY;
    *ls = 0;
    if (st == 1) m = mn__row_max(x, n);
    else
        for (int64_t i = 0; i < n; i++) m = mn__fmaxf(m, x[i * st]);
    if (!isfinite(m)) return m;
    if (st == 1) {
        *ls = log(mn__row_sumexp(x, n, m));
        return m;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += mn__expf(x[i * st] - m);
    *ls = log(s);
    return m;
}

/* sum_k exp(x_k - m) over a contiguous row, added as mn__row_sum adds a
 * whole row (8 lanes, then the tail, then the lanes), the exponentials
 * made 256 at a time on the stack: the sum the backward took of the
 * exponentials it had written to dx (before the stats), bit for bit. */
static double row_sumexp_whole(const float *x, int64_t n, float m)
{
    float e[256];
    double acc[8] = { 0 }, s = 0;
    for (int64_t i = 0; i < n; i += 256) {
        int64_t b = n - i < 256 ? n - i : 256, k = 0;
        for (int64_t j = 0; j < b; j++) e[j] = mn__expf(x[i + j] - m);
        for (; k + 8 <= b; k += 8)
            for (int j = 0; j < 8; j++) acc[j] += (double)e[k + j];
        for (; k < b; k++) s += e[k];           /* the tail: only the last block's (256 % 8 == 0) */
    }
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

/* One position's stats: o[0] = m, the row's maximum, and S = sum exp(x_k -
 * m) in double as three floats o[1] + o[2] + o[3] (each the rest of the
 * one before rounded to float: their double sum is S exactly, S in [1, C]);
 * S = 1 (its log 0) where m is not finite. The contiguous row's S is added
 * in the backward's order (row_sumexp_whole), a strided row's in row_lse's. */
static void ce_row_stats(const float *row, int64_t n, int64_t st, float *o)
{
    float m = -INFINITY;
    double s = 1;
    if (st == 1) m = mn__row_max(row, n);
    else
        for (int64_t i = 0; i < n; i++) m = mn__fmaxf(m, row[i * st]);
    if (isfinite(m) && st == 1) s = row_sumexp_whole(row, n, m);
    else if (isfinite(m)) {
        s = 0;
        for (int64_t i = 0; i < n; i++) s += mn__expf(row[i * st] - m);
    }
    float hi = (float)s, mid = (float)(s - hi);
    o[0] = m;
    o[1] = hi;
    o[2] = mid;
    o[3] = (float)((s - hi) - mid);
}

static double stats_sum(const float *o) { return ((double)o[1] + o[2]) + o[3]; }

static mn_status infer_ce_stats(mn_infer_ctx *c)
{
    if (c->in[0].dtype != MN_F32 || c->in[0].shape.ndim < 1) return mn__infer_fail(c, MN_ERR_DTYPE, "logits must be f32 with a class dim");
    ce_dims d = ce_split(c->in[0].shape);
    c->out = (mn_tdesc){ MN_F32, MN_SHAPE(d.n * d.inner, CE_NST) };
    return MN_OK;
}

static void ce_stats_chunk(const mn_kernel_ctx *c, ce_dims d, int ch)
{
    const float *x = mn_f32(&c->in[0]);
    float *o = mn_f32(c->out);
    int64_t npos = d.n * d.inner;
    for (int64_t p = npos * ch / MN_NCHUNK; p < npos * (ch + 1) / MN_NCHUNK; p++)
        ce_row_stats(x + (p / d.inner) * d.c * d.inner + p % d.inner, d.c, d.inner, o + p * CE_NST);
}

static mn_status ce_stats_fwd(const mn_kernel_ctx *c)
{
    ce_dims d = ce_split(c->in[0].shape);
    if (mn__serial(c->nthreads, d.n * d.inner * d.c > MN_GRAIN))
        for (int ch = 0; ch < MN_NCHUNK; ch++) ce_stats_chunk(c, d, ch);
    else {
        #pragma omp parallel for num_threads(c->nthreads) schedule(static)
        for (int ch = 0; ch < MN_NCHUNK; ch++) ce_stats_chunk(c, d, ch);
    }
    return MN_OK;
}

/* Chunk ch of the positions: each one's loss into y (reduction none) and
 * their sum into part[ch]. */
static void ce_chunk(const mn_kernel_ctx *c, ce_dims d, int ch, double *part)
{
    const mn_ce_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]);
    const int32_t *t = mn_i32(&c->in[1]);
    const float *st = c->nin == 3 ? mn_f32(&c->in[2]) : NULL;
    float *y = mn_f32(c->out), eps = a->o.label_smoothing;
    int64_t npos = d.n * d.inner;
    for (int64_t p = npos * ch / MN_NCHUNK; p < npos * (ch + 1) / MN_NCHUNK; p++) {
        const float *row = x + (p / d.inner) * d.c * d.inner + p % d.inner;
        double l = 0;
        if (t[p] != a->o.ignore_index) {
            double ls, m;
            if (st) {                           /* the stats: lse = m + log S, as the backward reads it */
                m = st[p * CE_NST];
                ls = log(stats_sum(st + p * CE_NST));
            } else m = row_lse(row, d.c, d.inner, &ls);
            l = (1.0 - eps) * ((m - row[t[p] * d.inner]) + ls);
            if (eps > 0) {
                double s = 0;
                for (int64_t k = 0; k < d.c; k++) s += (m - row[k * d.inner]) + ls;
                l += eps * s / (double)d.c;
            }
        }
        if (a->o.reduction == MN_REDUCE_NONE) y[p] = (float)l;
        part[ch] += l;
    }
}

static mn_status ce_fwd(const mn_kernel_ctx *c)
{
    const mn_ce_attrs *a = c->attrs;
    ce_dims d = ce_split(c->in[0].shape);
    int64_t cnt = count_targets(c, d, a->o.ignore_index), npos = d.n * d.inner;
    if (cnt < 0) return MN_ERR_RUNTIME;
    float *y = mn_f32(c->out);
    double part[MN_NCHUNK] = { 0 }, total = 0;
    /* with the stats and no smoothing a position reads one logit: serial */
    int64_t work = c->nin == 3 && a->o.label_smoothing == 0 ? npos : npos * d.c;
    if (mn__serial(c->nthreads, work > MN_GRAIN))
        for (int ch = 0; ch < MN_NCHUNK; ch++) ce_chunk(c, d, ch, part);
    else {
        #pragma omp parallel for num_threads(c->nthreads) schedule(static)
        for (int ch = 0; ch < MN_NCHUNK; ch++) ce_chunk(c, d, ch, part);
    }
    for (int ch = 0; ch < MN_NCHUNK; ch++) total += part[ch];
    if (a->o.reduction == MN_REDUCE_SUM) y[0] = (float)total;
    else if (a->o.reduction == MN_REDUCE_MEAN) y[0] = (float)(total / (double)cnt);
    return MN_OK;
}

/* dx_k = w (softmax_k - (1 - eps) [k = t] - eps / C), w = dloss (per position,
 * or / count for mean); zero for ignored positions. A contiguous row with a
 * finite maximum m: dx_k = e_k w / S - w eps / C, e_k = exp(x_k - m),
 * S = sum(e). With the stats (m, S) that is one pass; without, the row's
 * maximum, then e into dx, its sum, and the scaling (the same bits). */
static void ce_grad_row(const mn_kernel_ctx *c, ce_dims d, int64_t cnt, int64_t p)
{
    const mn_ce_attrs *a = c->attrs;
    const float *dl = mn_f32(&c->in[2]);
    const int32_t *t = mn_i32(&c->in[1]);
    float eps = a->o.label_smoothing;
    int64_t base = (p / d.inner) * d.c * d.inner + p % d.inner;
    const float *row = mn_f32(&c->in[0]) + base;
    float *out = mn_f32(c->out) + base;
    if (t[p] == a->o.ignore_index) {
        for (int64_t k = 0; k < d.c; k++) out[k * d.inner] = 0.0f;
        return;
    }
    double w = a->o.reduction == MN_REDUCE_NONE ? dl[p]
             : a->o.reduction == MN_REDUCE_SUM ? dl[0] : dl[0] / (double)cnt;
    if (c->nin == 4) {
        const float *st = mn_f32(&c->in[3]) + p * CE_NST;
        float sm = st[0];
        double S = stats_sum(st);
        if (d.inner == 1 && isfinite(sm)) {
            float scale = (float)(w / S), off = (float)(w * eps / (double)d.c);
            for (int64_t k = 0; k < d.c; k++) out[k] = mn__expf(row[k] - sm) * scale - off;
            out[t[p]] -= (float)(w * (1.0 - eps));
            return;
        }
        double ls = log(S), lm = sm;
        for (int64_t k = 0; k < d.c; k++) {
            double g = mn__expf((float)((row[k * d.inner] - lm) - ls)) - eps / (double)d.c - (k == t[p] ? 1.0 - eps : 0.0);
            out[k * d.inner] = (float)(w * g);
        }
        return;
    }
    float m = d.inner == 1 ? mn__row_max(row, d.c) : 0.0f;
    if (d.inner == 1 && isfinite(m)) {          /* contiguous row: vectorised float loops */
        for (int64_t k = 0; k < d.c; k++) out[k] = mn__expf(row[k] - m);
        float scale = (float)(w / mn__row_sum(out, d.c)), off = (float)(w * eps / (double)d.c);
        for (int64_t k = 0; k < d.c; k++) out[k] = out[k] * scale - off;
        out[t[p]] -= (float)(w * (1.0 - eps));
        return;
    }
    double ls, lm = row_lse(row, d.c, d.inner, &ls);
    for (int64_t k = 0; k < d.c; k++) {
        double g = mn__expf((float)((row[k * d.inner] - lm) - ls)) - eps / (double)d.c - (k == t[p] ? 1.0 - eps : 0.0);
        out[k * d.inner] = (float)(w * g);
    }
}

static mn_status ce_grad_fwd(const mn_kernel_ctx *c)
{
    const mn_ce_attrs *a = c->attrs;
    ce_dims d = ce_split(c->in[0].shape);
    int64_t cnt = count_targets(c, d, a->o.ignore_index), npos = d.n * d.inner;
    if (cnt < 0) return MN_ERR_RUNTIME;
    if (mn__serial(c->nthreads, npos * d.c > MN_GRAIN)) {
        for (int64_t p = 0; p < npos; p++) ce_grad_row(c, d, cnt, p);
        return MN_OK;
    }
    #pragma omp parallel for num_threads(c->nthreads) schedule(static)
    for (int64_t p = 0; p < npos; p++) ce_grad_row(c, d, cnt, p);
    return MN_OK;
}

/* The gradient reads the forward's stats when it has them. */
static mn_status vjp_ce(mn_vjp_ctx *c)
{
    mn_node *in[4] = { c->in[0], c->in[1], c->dy, c->nin == 3 ? c->in[2] : NULL };
    if (c->needs[0]) c->dx[0] = mn__node(c->g, &mn__op_cross_entropy_grad, in, c->nin == 3 ? 4 : 3, c->attrs);
    return MN_OK;
}

mn_node *mn_cross_entropy_ex(mn_graph *g, mn_node *logits, mn_node *targets, mn_ce_opts o)
{
    mn_ce_attrs a = { o };
    /* bad logits get cross_entropy's own message: no stats for them */
    bool ok = logits && mn_node_dtype(logits) == MN_F32 && mn_node_shape(logits).ndim >= 1;
    mn_node *in[3] = { logits, targets, ok ? mn__node(g, &mn__op_cross_entropy_stats, &logits, 1, NULL) : NULL };
    return mn__node(g, &mn__op_cross_entropy, in, in[2] ? 3 : 2, &a);
}

mn_node *mn_cross_entropy(mn_graph *g, mn_node *logits, mn_node *targets)
{
    return mn_cross_entropy_ex(g, logits, targets, MN_CE_DEFAULTS);
}

static void ce_str(const void *p, char *buf, size_t n)
{
    const mn_ce_attrs *a = p;
    static const char *red[] = { "none", "mean", "sum" };
    snprintf(buf, n, "reduction=%s ignore=%d smoothing=%g", red[a->o.reduction], a->o.ignore_index,
             (double)a->o.label_smoothing);
}

/* Without stats the forward takes a maximum and a sum of exponentials over
 * the logits; the stats op does that once, the forward with them then reads
 * one logit per position (all of them with smoothing), and the gradient
 * reads the logits and writes dx once (without stats it also takes the
 * maximum, the sum and a scaling pass, counted as before: 4 FLOPs). */
static void ce_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)out;
    const mn_ce_attrs *a = attrs;
    double n = (double)mn_shape_numel(in[0].shape), npos = (double)mn_shape_numel(in[1].shape);
    if (nin == 3) {
        *flops = 4.0 * npos + (a->o.label_smoothing > 0 ? 2.0 * n : 0.0);
        *bytes = 4.0 * (CE_NST + 2.0) * npos + (a->o.label_smoothing > 0 ? 4.0 * n : 0.0);
        return;
    }
    *flops = 4.0 * n;
    *bytes = 8.0 * n;
}

static void ce_grad_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)nin; (void)out; (void)attrs;
    *flops = 4.0 * (double)mn_shape_numel(in[0].shape);
    *bytes = 8.0 * (double)mn_shape_numel(in[0].shape);
}

static void ce_stats_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)nin; (void)attrs;
    *flops = 4.0 * (double)mn_shape_numel(in[0].shape);
    *bytes = 8.0 * (double)mn_shape_numel(in[0].shape) + 4.0 * (double)mn_shape_numel(out->shape);
}

/* ---- mse_loss ---- */

static mn_status infer_mse(mn_infer_ctx *c)
{
    const mn_mse_attrs *a = c->attrs;
    if (c->in[0].dtype != MN_F32 || c->in[1].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "inputs must be f32");
    if (!mn_shape_eq(c->in[0].shape, c->in[1].shape)) return mn__infer_fail(c, MN_ERR_SHAPE, "input and target shapes differ");
    if (a->reduction < MN_REDUCE_NONE || a->reduction > MN_REDUCE_SUM)
        return mn__infer_fail(c, MN_ERR_INVALID, "unknown reduction %d", (int)a->reduction);
    c->out = (mn_tdesc){ MN_F32, a->reduction == MN_REDUCE_NONE ? c->in[0].shape : MN_SCALAR };
    return MN_OK;
}

static mn_status mse_fwd(const mn_kernel_ctx *c)
{
    const mn_mse_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]), *t = mn_f32(&c->in[1]);
    float *y = mn_f32(c->out);
    int64_t n = mn_tensor_numel(&c->in[0]);
    if (a->reduction == MN_REDUCE_NONE) {
        #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = (x[i] - t[i]) * (x[i] - t[i]);
        return MN_OK;
    }
    double part[MN_NCHUNK] = { 0 }, s = 0;
    #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int ch = 0; ch < MN_NCHUNK; ch++)
        for (int64_t i = n * ch / MN_NCHUNK; i < n * (ch + 1) / MN_NCHUNK; i++) part[ch] += (double)(x[i] - t[i]) * (x[i] - t[i]);
    for (int ch = 0; ch < MN_NCHUNK; ch++) s += part[ch];
    y[0] = (float)(a->reduction == MN_REDUCE_MEAN ? s / (double)n : s);
    return MN_OK;
}

/* dx = 2 (x - t) dy [/ n], dt = -dx */
static mn_status vjp_mse(mn_vjp_ctx *c)
{
    const mn_mse_attrs *a = c->attrs;
    int64_t n = mn_shape_numel(mn_node_shape(c->in[0]));
    float k = a->reduction == MN_REDUCE_MEAN ? 2.0f / (float)n : 2.0f;
    mn_node *d = mn_scale(c->g, mn_mul(c->g, mn_sub(c->g, c->in[0], c->in[1]), c->dy), k);
    if (c->needs[0]) c->dx[0] = d;
    if (c->needs[1]) c->dx[1] = mn_neg(c->g, d);
    return MN_OK;
}

mn_node *mn_mse_loss(mn_graph *g, mn_node *x, mn_node *target, mn_reduction r)
{
    mn_mse_attrs a = { r };
    mn_node *in[2] = { x, target };
    return mn__node(g, &mn__op_mse_loss, in, 2, &a);
}

static void mse_str(const void *p, char *buf, size_t n)
{
    static const char *red[] = { "none", "mean", "sum" };
    snprintf(buf, n, "reduction=%s", red[((const mn_mse_attrs *)p)->reduction]);
}

const mn_op_def mn__op_cross_entropy_stats = { MN_OP_RECORD,
    .name = "cross_entropy_stats",
    .doc = "s[p] = (m, S as three floats) of each position's logits: m = max_k x[k], S = sum_k exp(x[k] - m) "
           "(lse = m + log S); read by cross_entropy and its gradient; no gradient",
    .arity = 1, .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_ce_stats, .forward = ce_stats_fwd, .cost = ce_stats_cost,
};
const mn_op_def mn__op_cross_entropy = { MN_OP_RECORD,
    .name = "cross_entropy",
    .doc = "l = (1-eps)(lse(x) - x[t]) + eps mean_k(lse(x) - x[k]), reduced, lse from the optional stats "
           "(cross_entropy_stats); dx = cross_entropy_grad (reads the same stats)",
    .arity = -1, .attr_size = sizeof(mn_ce_attrs), MN__FIELDS(mn_ce_attrs), .inplace = -1,
    .infer = infer_ce, .forward = ce_fwd, .vjp = vjp_ce, .cost = ce_cost, .attr_str = ce_str,
};
const mn_op_def mn__op_cross_entropy_grad = { MN_OP_RECORD,
    .name = "cross_entropy_grad",
    .doc = "dx = w (softmax(x) - (1-eps) onehot(t) - eps/C) (cross_entropy backward), softmax = exp(x - m) / S "
           "from the optional stats (one pass); no gradient",
    .arity = -1, .attr_size = sizeof(mn_ce_attrs), MN__FIELDS(mn_ce_attrs), .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_ce_grad, .forward = ce_grad_fwd, .cost = ce_grad_cost, .attr_str = ce_str,
};
const mn_op_def mn__op_mse_loss = { MN_OP_RECORD,
    .name = "mse_loss", .doc = "l = (x - t)^2, reduced; dx = 2 (x - t) dy [/ n], dt = -dx",
    .arity = 2, .attr_size = sizeof(mn_mse_attrs), MN__FIELDS(mn_mse_attrs), .inplace = -1,
    .infer = infer_mse, .forward = mse_fwd, .vjp = vjp_mse, .attr_str = mse_str,
};

/* ---- shared by the losses below ---- */

extern const mn_op_def mn__op_bce_with_logits, mn__op_nll_loss, mn__op_nll_loss_grad, mn__op_kl_div,
    mn__op_gaussian_kl, mn__op_smooth_l1, mn__op_huber;

static const char *red_name(mn_reduction r)
{
    static const char *n[] = { "none", "mean", "sum", "batchmean" };
    return (unsigned)r < 4 ? n[r] : "?";
}

static void loss_str(const void *p, char *buf, size_t n)
{
    const mn_loss_attrs *a = p;
    snprintf(buf, n, "reduction=%s beta=%g", red_name(a->reduction), (double)a->beta);
}

static mn_status check_reduction(mn_infer_ctx *c, mn_reduction r, bool batchmean_ok)
{
    if (r < MN_REDUCE_NONE || r > (batchmean_ok ? MN_REDUCE_BATCHMEAN : MN_REDUCE_SUM))
        return mn__infer_fail(c, MN_ERR_INVALID, "reduction %d is not one of none, mean, sum%s", (int)r,
                              batchmean_ok ? ", batchmean" : "");
    return MN_OK;
}

/* Elementwise loss of x and target t (same shape), reduced. */
static mn_status infer_pointwise(mn_infer_ctx *c, bool batchmean_ok)
{
    const mn_loss_attrs *a = c->attrs;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input %d must be f32", i);
    if (!mn_shape_eq(c->in[0].shape, c->in[1].shape)) return mn__infer_fail(c, MN_ERR_SHAPE, "input and target shapes differ");
    mn_status s = check_reduction(c, a->reduction, batchmean_ok);
    if (s) return s;
    c->out = (mn_tdesc){ MN_F32, a->reduction == MN_REDUCE_NONE ? c->in[0].shape : MN_SCALAR };
    return MN_OK;
}

/* Writes the pointwise losses (none) or their reduction. */
static void reduce_out(const mn_kernel_ctx *c, mn_reduction r, double total, int64_t n)
{
    float *y = mn_f32(c->out);
    if (r == MN_REDUCE_SUM) y[0] = (float)total;
    else if (r == MN_REDUCE_MEAN) y[0] = (float)(total / (double)n);
    else if (r == MN_REDUCE_BATCHMEAN) y[0] = (float)(total / (double)(c->in[0].shape.ndim ? c->in[0].shape.d[0] : 1));
}

/* The weight of each element's gradient: dy itself (none) or dy / n (mean)... */
static mn_node *loss_weight(mn_graph *g, mn_node *dy, mn_reduction r, mn_shape xs)
{
    int64_t n = mn_shape_numel(xs);
    if (r == MN_REDUCE_MEAN) return mn_scale(g, dy, 1.0f / (float)n);
    if (r == MN_REDUCE_BATCHMEAN) return mn_scale(g, dy, 1.0f / (float)(xs.ndim ? xs.d[0] : 1));
    return dy;
}

/* ---- binary_cross_entropy_with_logits ---- */

static mn_status infer_bce(mn_infer_ctx *c)
{
    if (c->nin < 2 || c->nin > 3) return mn__infer_fail(c, MN_ERR_INVALID, "takes logits, targets and an optional pos_weight");
    mn_infer_ctx two = *c;
    two.nin = 2;
    mn_status s = infer_pointwise(&two, false);
    if (s) return s;
    c->out = two.out;
    mn_shape b;
    if (c->nin == 3 && (c->in[2].dtype != MN_F32 || mn_shape_broadcast(c->in[2].shape, c->in[0].shape, &b) ||
                        !mn_shape_eq(b, c->in[0].shape)))
        return mn__infer_fail(c, MN_ERR_SHAPE, "pos_weight must broadcast to the logits");
    return MN_OK;
}

/* l = (1 - t) x + (1 + (pw - 1) t) (log(1 + exp(-|x|)) + max(-x, 0)) */
static mn_status bce_fwd(const mn_kernel_ctx *c)
{
    const mn_loss_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]), *t = mn_f32(&c->in[1]);
    int64_t n = mn_tensor_numel(&c->in[0]), pst[MN_MAX_DIMS];
    mn_shape xs = c->in[0].shape;
    if (c->nin == 3) mn__bcast_strides(c->in[2].shape, xs, pst);
    double part[MN_NCHUNK] = { 0 }, total = 0;
    const float *pwd = c->nin == 3 ? mn_f32(&c->in[2]) : NULL;
    float *y = a->reduction == MN_REDUCE_NONE ? mn_f32(c->out) : NULL;
    #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int ch = 0; ch < MN_NCHUNK; ch++)
    for (int64_t i0 = n * ch / MN_NCHUNK, end = n * (ch + 1) / MN_NCHUNK; i0 < end; i0 += 256) {
        float l[256], pw[256];                 /* a block: vectorised loss, then its sum */
        int64_t m = end - i0 < 256 ? end - i0 : 256;
        for (int64_t k = 0; k < m; k++) pw[k] = 1.0f;
        for (int64_t k = 0; pwd && k < m; k++) {
            int64_t rem = i0 + k, off = 0;
            for (int d = xs.ndim - 1; d >= 0; d--) { off += (rem % xs.d[d]) * pst[d]; rem /= xs.d[d]; }
            pw[k] = pwd[off];
        }
        for (int64_t k = 0; k < m; k++) {
            float xi = x[i0 + k], ti = t[i0 + k];
            l[k] = (1.0f - ti) * xi + (1.0f + (pw[k] - 1.0f) * ti) * mn__softplusf(-xi);
        }
        if (y) memcpy(y + i0, l, (size_t)m * sizeof *l);
        part[ch] += mn__row_sum(l, m);
    }
    for (int ch = 0; ch < MN_NCHUNK; ch++) total += part[ch];
    reduce_out(c, a->reduction, total, n);
    return MN_OK;
}

/* dx = w (s (pw t + 1 - t) - pw t), dt = w ((pw - 1) softplus(-x) - x),
 * dpw = sum_to(w t softplus(-x)), s = sigmoid(x) */
static mn_status vjp_bce(mn_vjp_ctx *c)
{
    const mn_loss_attrs *a = c->attrs;
    mn_graph *g = c->g;
    mn_node *x = c->in[0], *t = c->in[1], *pw = c->nin == 3 ? c->in[2] : NULL;
    mn_node *w = loss_weight(g, c->dy, a->reduction, mn_node_shape(x));
    mn_node *pt = pw ? mn_mul(g, pw, t) : t;
    if (c->needs[0]) {
        mn_node *s = mn_sigmoid(g, x);
        mn_node *coef = pw ? mn_add(g, mn_sub(g, pt, t), mn_scalar(g, 1.0f)) : NULL;
        c->dx[0] = mn_mul(g, mn_sub(g, coef ? mn_mul(g, s, coef) : s, pt), w);
    }
    mn_node *spn = (c->needs[1] || (pw && c->needs[2])) ? mn_softplus(g, mn_neg(g, x), 1.0f, 20.0f) : NULL;
    if (c->needs[1]) {
        mn_node *d = pw ? mn_sub(g, mn_mul(g, mn_sub(g, pw, mn_scalar(g, 1.0f)), spn), x) : mn_neg(g, x);
        c->dx[1] = mn_mul(g, d, w);
    }
    if (pw && c->needs[2]) c->dx[2] = mn_sum_to(g, mn_mul(g, mn_mul(g, t, spn), w), mn_node_shape(pw));
    return MN_OK;
}

mn_node *mn_bce_with_logits(mn_graph *g, mn_node *logits, mn_node *targets, mn_node *pos_weight, mn_reduction r)
{
    mn_loss_attrs a = { .reduction = r };
    mn_node *in[3] = { logits, targets, pos_weight };
    return mn__node(g, &mn__op_bce_with_logits, in, pos_weight ? 3 : 2, &a);
}

/* ---- nll_loss(log_probs [N, C, ...], targets) ---- */

static mn_status infer_nll(mn_infer_ctx *c)
{
    const mn_loss_attrs *a = c->attrs;
    mn_ce_attrs ce = { { a->ignore_index, a->reduction, 0.0f } };
    mn_infer_ctx f = *c;
    f.attrs = &ce;
    f.nin = 2;
    mn_status s = c->nin == 3 ? infer_ce_grad(&(mn_infer_ctx){ .nin = 3, .in = c->in, .attrs = &ce, .msg = c->msg, .msglen = c->msglen })
                              : infer_ce(&f);
    if (s) return s;
    c->out = c->nin == 3 ? c->in[0] : f.out;
    return MN_OK;
}

static mn_status nll_fwd(const mn_kernel_ctx *c)
{
    const mn_loss_attrs *a = c->attrs;
    ce_dims d = ce_split(c->in[0].shape);
    int64_t cnt = count_targets(c, d, a->ignore_index), npos = d.n * d.inner;
    if (cnt < 0) return MN_ERR_RUNTIME;
    const float *x = mn_f32(&c->in[0]);
    const int32_t *t = mn_i32(&c->in[1]);
    double total = 0;
    for (int64_t p = 0; p < npos; p++) {
        double l = t[p] == a->ignore_index ? 0.0 : -x[(p / d.inner) * d.c * d.inner + (int64_t)t[p] * d.inner + p % d.inner];
        if (a->reduction == MN_REDUCE_NONE) mn_f32(c->out)[p] = (float)l;
        total += l;
    }
    if (a->reduction == MN_REDUCE_SUM) mn_f32(c->out)[0] = (float)total;
    else if (a->reduction == MN_REDUCE_MEAN) mn_f32(c->out)[0] = (float)(total / (double)cnt);
    return MN_OK;
}

/* dx[.., t, ..] = -w (w = dy, or dy / count for mean); 0 elsewhere */
static mn_status nll_grad_fwd(const mn_kernel_ctx *c)
{
    const mn_loss_attrs *a = c->attrs;
    ce_dims d = ce_split(c->in[0].shape);
    int64_t cnt = count_targets(c, d, a->ignore_index), npos = d.n * d.inner;
    if (cnt < 0) return MN_ERR_RUNTIME;
    const int32_t *t = mn_i32(&c->in[1]);
    const float *dl = mn_f32(&c->in[2]);
    float *dx = mn_f32(c->out);
    memset(dx, 0, mn_tensor_bytes(c->out));
    for (int64_t p = 0; p < npos; p++) {
        if (t[p] == a->ignore_index) continue;
        double w = a->reduction == MN_REDUCE_NONE ? dl[p] : a->reduction == MN_REDUCE_SUM ? dl[0] : dl[0] / (double)cnt;
        dx[(p / d.inner) * d.c * d.inner + (int64_t)t[p] * d.inner + p % d.inner] = (float)-w;
    }
    return MN_OK;
}

static mn_status vjp_nll(mn_vjp_ctx *c)
{
    mn_node *in[3] = { c->in[0], c->in[1], c->dy };
    if (c->needs[0]) c->dx[0] = mn__node(c->g, &mn__op_nll_loss_grad, in, 3, c->attrs);
    return MN_OK;
}

mn_node *mn_nll_loss(mn_graph *g, mn_node *log_probs, mn_node *targets, int ignore_index, mn_reduction r)
{
    mn_loss_attrs a = { .reduction = r, .ignore_index = ignore_index };
    mn_node *in[2] = { log_probs, targets };
    return mn__node(g, &mn__op_nll_loss, in, 2, &a);
}

static void nll_str(const void *p, char *buf, size_t n)
{
    const mn_loss_attrs *a = p;
    snprintf(buf, n, "reduction=%s ignore=%d", red_name(a->reduction), a->ignore_index);
}

/* ---- kl_div(input = log q, target p) ---- */

static mn_status infer_kl(mn_infer_ctx *c) { return infer_pointwise(c, true); }

/* l = t (log t - x) (0 where t = 0), or exp(t) (t - x) with log_target */
static mn_status kl_fwd(const mn_kernel_ctx *c)
{
    const mn_loss_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]), *t = mn_f32(&c->in[1]);
    int64_t n = mn_tensor_numel(&c->in[0]);
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
        double l = a->log_target ? exp((double)t[i]) * (t[i] - x[i]) : t[i] > 0 ? t[i] * (log((double)t[i]) - x[i]) : 0.0;
        if (a->reduction == MN_REDUCE_NONE) mn_f32(c->out)[i] = (float)l;
        total += l;
    }
    reduce_out(c, a->reduction, total, n);
    return MN_OK;
}

/* dx = -w t (or -w exp(t)); dt = w (log t + 1 - x) where t > 0 (or w exp(t) (t - x + 1)) */
static mn_status vjp_kl(mn_vjp_ctx *c)
{
    const mn_loss_attrs *a = c->attrs;
    mn_graph *g = c->g;
    mn_node *x = c->in[0], *t = c->in[1], *w = loss_weight(g, c->dy, a->reduction, mn_node_shape(x));
    mn_node *et = a->log_target ? mn_exp(g, t) : NULL;
    if (c->needs[0]) c->dx[0] = mn_neg(g, mn_mul(g, w, a->log_target ? et : t));
    if (c->needs[1]) {
        mn_node *one = mn_scalar(g, 1.0f), *zero = mn_scalar(g, 0.0f), *d;
        if (a->log_target) d = mn_mul(g, et, mn_add(g, mn_sub(g, t, x), one));
        else d = mn_where(g, mn_gt(g, t, zero), mn_sub(g, mn_add(g, mn_log(g, mn_maximum(g, t, mn_scalar(g, 1e-30f))), one), x), zero);
        c->dx[1] = mn_mul(g, w, d);
    }
    return MN_OK;
}

mn_node *mn_kl_div(mn_graph *g, mn_node *input, mn_node *target, mn_reduction r, bool log_target)
{
    mn_loss_attrs a = { .reduction = r, .log_target = log_target };
    mn_node *in[2] = { input, target };
    return mn__node(g, &mn__op_kl_div, in, 2, &a);
}

/* ---- gaussian_kl(mu, logvar) = -1/2 (1 + logvar - mu^2 - exp(logvar)), reduced (composite) ---- */

static mn_status infer_gkl(mn_infer_ctx *c) { return infer_pointwise(c, false); }

static mn_node *compose_gkl(mn_graph *g, mn_node *const *in, int nin, const void *attrs)
{
    const mn_loss_attrs *a = attrs;
    mn_node *mu = in[0], *lv = in[1];
    mn_node *t = mn_sub(g, mn_add(g, mn_scalar(g, 1.0f), lv), mn_add(g, mn_square(g, mu), mn_exp(g, lv)));
    mn_node *l = mn_scale(g, t, -0.5f);
    (void)nin;
    if (a->reduction == MN_REDUCE_SUM) return mn_sum_all(g, l);
    if (a->reduction == MN_REDUCE_MEAN) return mn_mean(g, l, 0, NULL, false);
    return l;
}

mn_node *mn_gaussian_kl(mn_graph *g, mn_node *mu, mn_node *logvar, mn_reduction r)
{
    mn_loss_attrs a = { .reduction = r };
    mn_node *in[2] = { mu, logvar };
    return mn__node(g, &mn__op_gaussian_kl, in, 2, &a);
}

/* ---- smooth_l1 (beta) and huber (delta) ---- */

static mn_status infer_robust(mn_infer_ctx *c)
{
    if (!(((const mn_loss_attrs *)c->attrs)->beta >= 0)) return mn__infer_fail(c, MN_ERR_INVALID, "beta/delta must be >= 0");
    return infer_pointwise(c, false);
}

static mn_status robust_run(const mn_kernel_ctx *c, bool huber)
{
    const mn_loss_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]), *t = mn_f32(&c->in[1]);
    int64_t n = mn_tensor_numel(&c->in[0]);
    double total = 0, b = a->beta;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - t[i]), l;
        if (huber) l = d <= b ? 0.5 * d * d : b * (d - 0.5 * b);
        else l = d < b ? 0.5 * d * d / b : d - 0.5 * b;
        if (a->reduction == MN_REDUCE_NONE) mn_f32(c->out)[i] = (float)l;
        total += l;
    }
    reduce_out(c, a->reduction, total, n);
    return MN_OK;
}

static mn_status smooth_l1_fwd(const mn_kernel_ctx *c) { return robust_run(c, false); }
static mn_status huber_fwd(const mn_kernel_ctx *c) { return robust_run(c, true); }

/* smooth_l1: dx = w clamp(d / beta, -1, 1) (sign(d) when beta = 0);
 * huber: dx = w clamp(d, -delta, delta); dt = -dx */
static mn_status vjp_robust(mn_vjp_ctx *c, bool huber)
{
    const mn_loss_attrs *a = c->attrs;
    mn_graph *g = c->g;
    mn_node *d = mn_sub(g, c->in[0], c->in[1]), *w = loss_weight(g, c->dy, a->reduction, mn_node_shape(c->in[0])), *gd;
    if (huber) gd = mn_clamp(g, d, -a->beta, a->beta);
    else gd = a->beta > 0 ? mn_clamp(g, mn_scale(g, d, 1.0f / a->beta), -1.0f, 1.0f) : mn_sign(g, d);
    mn_node *dx = mn_mul(g, gd, w);
    if (c->needs[0]) c->dx[0] = dx;
    if (c->needs[1]) c->dx[1] = mn_neg(g, dx);
    return MN_OK;
}
static mn_status vjp_smooth_l1(mn_vjp_ctx *c) { return vjp_robust(c, false); }
static mn_status vjp_huber(mn_vjp_ctx *c) { return vjp_robust(c, true); }

mn_node *mn_smooth_l1(mn_graph *g, mn_node *x, mn_node *target, mn_reduction r, float beta)
{
    mn_loss_attrs a = { .reduction = r, .beta = beta };
    mn_node *in[2] = { x, target };
    return mn__node(g, &mn__op_smooth_l1, in, 2, &a);
}

mn_node *mn_huber(mn_graph *g, mn_node *x, mn_node *target, mn_reduction r, float delta)
{
    mn_loss_attrs a = { .reduction = r, .beta = delta };
    mn_node *in[2] = { x, target };
    return mn__node(g, &mn__op_huber, in, 2, &a);
}

#define LOSS_OP(nm, dc, ar, inf, fwd, vj, fl, str)                                            \
    const mn_op_def mn__op_##nm = { MN_OP_RECORD, .name = #nm, .doc = dc, .arity = ar,                      \
        .attr_size = sizeof(mn_loss_attrs), MN__FIELDS(mn_loss_attrs), .inplace = -1, .flags = fl, .infer = inf,         \
        .forward = fwd, .vjp = vj, .attr_str = str };

LOSS_OP(bce_with_logits, "l = (1 - t) x + (1 + (pw - 1) t) softplus(-x), reduced (stable); dx = w (sigmoid(x)(pw t + 1 - t) - pw t)",
        -1, infer_bce, bce_fwd, vjp_bce, 0, loss_str)
LOSS_OP(nll_loss, "l = -x[t] per position (ignore_index skipped), reduced; dx = nll_loss_grad", 2, infer_nll, nll_fwd, vjp_nll, 0, nll_str)
LOSS_OP(nll_loss_grad, "dx = -w at each target, 0 elsewhere (nll_loss backward); no gradient", 3, infer_nll, nll_grad_fwd, NULL,
        MN_OPF_NOGRAD, nll_str)
LOSS_OP(kl_div, "l = t (log t - x) (0 where t = 0; log_target: exp(t)(t - x)), reduced (batchmean too); dx = -w t, dt = w (log t + 1 - x)",
        2, infer_kl, kl_fwd, vjp_kl, 0, loss_str)
LOSS_OP(smooth_l1, "l = |d| < beta ? d^2 / (2 beta) : |d| - beta/2, d = x - t, reduced; dx = w clamp(d / beta, -1, 1), dt = -dx",
        2, infer_robust, smooth_l1_fwd, vjp_smooth_l1, 0, loss_str)
LOSS_OP(huber, "l = |d| <= delta ? d^2 / 2 : delta (|d| - delta/2), d = x - t, reduced; dx = w clamp(d, -delta, delta), dt = -dx",
        2, infer_robust, huber_fwd, vjp_huber, 0, loss_str)
const mn_op_def mn__op_gaussian_kl = { MN_OP_RECORD,
    .name = "gaussian_kl", .doc = "l = -1/2 (1 + logvar - mu^2 - exp(logvar)), reduced (composite); dmu = w mu, dlogvar = w (exp(logvar) - 1) / 2",
    .arity = 2, .attr_size = sizeof(mn_loss_attrs), MN__FIELDS(mn_loss_attrs), .inplace = -1, .flags = MN_OPF_COMPOSITE,
    .infer = infer_gkl, .compose = compose_gkl, .attr_str = loss_str,
};
