/* ops/crf.c: the linear-chain CRF. crf_nll is the negative log-likelihood
 * of gold tag paths, log Z - score(gold), by the forward algorithm in log
 * space (double) over emissions [T, B, K] (time-major, as the recurrent
 * layers' outputs) and a transition table [K + 2, K]: rows 0..K-1 hold
 * i -> j, row K the start scores, row K + 1 the end scores. Sentence b
 * covers steps 0..lengths[b]-1; later steps (padding) are never read.
 * crf_nll_grad recomputes alpha and beta (forward-backward) from the same
 * inputs, so nothing hidden is kept between passes; mn_crf_viterbi decodes. */
#include "op.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const mn_op_def mn__op_crf_nll, mn__op_crf_nll_grad;

#define F(member, type) { #member, type, offsetof(mn_crf_attrs, member) }
static const mn_attr_field crf_fields[] = { F(reduction, MN_ATTR_INT), F(wrt, MN_ATTR_INT), { NULL, 0, 0 } };
#undef F

typedef struct { int64_t T, B, K; } crf_dims;

static crf_dims dims_of(const mn_tensor *em) { return (crf_dims){ em->shape.d[0], em->shape.d[1], em->shape.d[2] }; }

static mn_status check_inputs(mn_infer_ctx *c)
{
    const mn_crf_attrs *a = c->attrs;
    mn_shape E = c->in[0].shape, A = c->in[1].shape, Y = c->in[2].shape, L = c->in[3].shape;
    char se[64], sa[64], sy[64], sl[64];
    if (c->in[0].dtype != MN_F32 || c->in[1].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "emissions and transitions must be f32");
    if (c->in[2].dtype != MN_I32 || c->in[3].dtype != MN_I32) return mn__infer_fail(c, MN_ERR_DTYPE, "tags and lengths must be i32");
    bool ok = E.ndim == 3 && A.ndim == 2 && Y.ndim == 2 && L.ndim == 1 && E.d[2] >= 1 && A.d[0] == E.d[2] + 2 && A.d[1] == E.d[2] &&
              Y.d[0] == E.d[0] && Y.d[1] == E.d[1] && L.d[0] == E.d[1];
    if (!ok)
        return mn__infer_fail(c, MN_ERR_SHAPE, "emissions %s, transitions %s, tags %s, lengths %s: want [T, B, K], [K + 2, K], [T, B], [B]",
                              mn_shape_str(E, se, sizeof se), mn_shape_str(A, sa, sizeof sa), mn_shape_str(Y, sy, sizeof sy),
                              mn_shape_str(L, sl, sizeof sl));
    if (a->reduction < MN_REDUCE_NONE || a->reduction > MN_REDUCE_SUM)
        return mn__infer_fail(c, MN_ERR_INVALID, "reduction %d is not one of none, mean, sum", (int)a->reduction);
    if (a->wrt < 0 || a->wrt > 1) return mn__infer_fail(c, MN_ERR_INVALID, "wrt %d is not 0 (emissions) or 1 (transitions)", a->wrt);
    return MN_OK;
}

static mn_status infer_nll(mn_infer_ctx *c)
{
    mn_status s = check_inputs(c);
    if (s) return s;
    const mn_crf_attrs *a = c->attrs;
    c->out = (mn_tdesc){ MN_F32, a->reduction == MN_REDUCE_NONE ? c->in[3].shape : MN_SCALAR };
    return MN_OK;
}

static mn_status infer_grad(mn_infer_ctx *c)
{
    mn_status s = check_inputs(c);
    if (s) return s;
    const mn_crf_attrs *a = c->attrs;
    mn_shape want = a->reduction == MN_REDUCE_NONE ? c->in[3].shape : MN_SCALAR;
    if (c->in[4].dtype != MN_F32 || !mn_shape_eq(c->in[4].shape, want))
        return mn__infer_fail(c, MN_ERR_SHAPE, "dloss must be f32 with the loss's shape");
    c->out = c->in[a->wrt];
    return MN_OK;
}

/* alpha ([B][T][K] doubles) and the B losses; the gradient: alpha and
 * beta, and for the transitions one [K + 2, K] table per sentence, summed
 * in order afterwards (the same bits for any thread count). */
static size_t work_nll(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    (void)nin; (void)out; (void)attrs;
    return ((size_t)mn_shape_numel(in[0].shape) + (size_t)in[0].shape.d[1]) * sizeof(double);
}

static size_t work_grad(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    (void)nin; (void)out;
    const mn_crf_attrs *a = attrs;
    size_t n = 2 * (size_t)mn_shape_numel(in[0].shape);
    if (a->wrt == 1) n += (size_t)in[0].shape.d[1] * (size_t)mn_shape_numel(in[1].shape);
    return n * sizeof(double);
}

/* Lengths in [0, T], tags of the covered steps in [0, K). */
static mn_status check_data(const mn_kernel_ctx *c, crf_dims d)
{
    const int32_t *y = mn_i32(&c->in[2]), *len = mn_i32(&c->in[3]);
    for (int64_t b = 0; b < d.B; b++) {
        if (len[b] < 0 || len[b] > d.T)
            return mn__kernel_fail(c, "crf: length %d of sentence %lld is outside [0, %lld]", len[b], (long long)b, (long long)d.T);
        for (int64_t t = 0; t < len[b]; t++)
            if (y[t * d.B + b] < 0 || y[t * d.B + b] >= d.K)
                return mn__kernel_fail(c, "crf: tag %d at step %lld of sentence %lld is outside [0, %lld)", y[t * d.B + b], (long long)t,
                                       (long long)b, (long long)d.K);
    }
    return MN_OK;
}

static double lse(const double *x, int64_t n)
{
    double m = -INFINITY, s = 0;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    if (m == -INFINITY) return m;
    for (int64_t i = 0; i < n; i++) s += exp(x[i] - m);
    return m + log(s);
}

/* alpha[t][j] = lse_i(alpha[t-1][i] + A[i][j]) + E[t][j]; returns log Z. */
static double forward_b(const float *E, const float *A, crf_dims d, int64_t b, int64_t L, double *al, double *tmp)
{
    int64_t K = d.K;
    for (int64_t j = 0; j < K; j++) al[j] = (double)A[K * K + j] + E[b * K + j];
    for (int64_t t = 1; t < L; t++)
        for (int64_t j = 0; j < K; j++) {
            for (int64_t i = 0; i < K; i++) tmp[i] = al[(t - 1) * K + i] + A[i * K + j];
            al[t * K + j] = lse(tmp, K) + E[(t * d.B + b) * K + j];
        }
    for (int64_t j = 0; j < K; j++) tmp[j] = al[(L - 1) * K + j] + A[(K + 1) * K + j];
    return lse(tmp, K);
}

/* beta[t][i] = lse_j(A[i][j] + E[t+1][j] + beta[t+1][j]), beta[L-1] = end. */
static void backward_b(const float *E, const float *A, crf_dims d, int64_t b, int64_t L, double *be, double *tmp)
{
    int64_t K = d.K;
    for (int64_t i = 0; i < K; i++) be[(L - 1) * K + i] = A[(K + 1) * K + i];
    for (int64_t t = L - 2; t >= 0; t--)
        for (int64_t i = 0; i < K; i++) {
            for (int64_t j = 0; j < K; j++) tmp[j] = (double)A[i * K + j] + E[((t + 1) * d.B + b) * K + j] + be[(t + 1) * K + j];
            be[t * K + i] = lse(tmp, K);
        }
}

/* The score of sentence b's gold path. */
static double gold_score(const float *E, const float *A, const int32_t *y, crf_dims d, int64_t b, int64_t L)
{
    int64_t K = d.K;
    double s = A[K * K + y[b]] + (double)A[(K + 1) * K + y[(L - 1) * d.B + b]];
    for (int64_t t = 0; t < L; t++) {
        s += E[(t * d.B + b) * K + y[t * d.B + b]];
        if (t) s += A[y[(t - 1) * d.B + b] * K + y[t * d.B + b]];
    }
    return s;
}

/* The largest K for the stack scratch row of forward_b and backward_b. */
#define CRF_MAX_TAGS 1024

static mn_status nll_fwd(const mn_kernel_ctx *c)
{
    const mn_crf_attrs *a = c->attrs;
    crf_dims d = dims_of(&c->in[0]);
    if (d.K > CRF_MAX_TAGS) return mn__kernel_fail(c, "crf: %lld tags (at most %d)", (long long)d.K, CRF_MAX_TAGS);
    mn_status s = check_data(c, d);
    if (s) return s;
    const float *E = mn_f32(&c->in[0]), *A = mn_f32(&c->in[1]);
    const int32_t *y = mn_i32(&c->in[2]), *len = mn_i32(&c->in[3]);
    double *work = c->work, *per = work + d.B * d.T * d.K, total = 0;
    float *out = mn_f32(c->out);
    #pragma omp parallel for if (d.T * d.B * d.K * d.K > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t b = 0; b < d.B; b++) {
        double tmp[CRF_MAX_TAGS];
        int64_t L = len[b];
        per[b] = L ? forward_b(E, A, d, b, L, work + b * d.T * d.K, tmp) - gold_score(E, A, y, d, b, L) : 0.0;
    }
    for (int64_t b = 0; b < d.B; b++) {
        if (a->reduction == MN_REDUCE_NONE) out[b] = (float)per[b];
        total += per[b];
    }
    if (a->reduction == MN_REDUCE_SUM) out[0] = (float)total;
    if (a->reduction == MN_REDUCE_MEAN) out[0] = (float)(d.B ? total / (double)d.B : 0.0);
    return MN_OK;
}

/* The weight of sentence b's gradient: dy[b], dy or dy / B. */
static double weight(const mn_crf_attrs *a, const float *dy, int64_t b, int64_t B)
{
    if (a->reduction == MN_REDUCE_NONE) return dy[b];
    return a->reduction == MN_REDUCE_SUM ? dy[0] : dy[0] / (double)B;
}

/* dE[t][k] = w (p_t(k) - [y_t = k]); zero on padding. */
static void grad_emissions_b(const mn_kernel_ctx *c, crf_dims d, int64_t b, const double *al, const double *be, double logz, double w)
{
    const int32_t *y = mn_i32(&c->in[2]), *len = mn_i32(&c->in[3]);
    float *dE = mn_f32(c->out);
    int64_t K = d.K;
    for (int64_t t = 0; t < d.T; t++)
        for (int64_t k = 0; k < K; k++) {
            double g = t < len[b] ? exp(al[t * K + k] + be[t * K + k] - logz) - (y[t * d.B + b] == k) : 0.0;
            dE[(t * d.B + b) * K + k] = (float)(w * g);
        }
}

/* dA of one sentence: expected minus gold transition counts (start, end rows too). */
static void grad_trans_b(const mn_kernel_ctx *c, crf_dims d, int64_t b, int64_t L, const double *al, const double *be, double logz,
                         double w, double *dA)
{
    const float *E = mn_f32(&c->in[0]), *A = mn_f32(&c->in[1]);
    const int32_t *y = mn_i32(&c->in[2]);
    int64_t K = d.K;
    memset(dA, 0, (size_t)((K + 2) * K) * sizeof *dA);
    if (!L) return;
    for (int64_t k = 0; k < K; k++) {
        dA[K * K + k] = w * exp(al[k] + be[k] - logz);
        dA[(K + 1) * K + k] = w * exp(al[(L - 1) * K + k] + be[(L - 1) * K + k] - logz);
    }
    dA[K * K + y[b]] -= w;
    dA[(K + 1) * K + y[(L - 1) * d.B + b]] -= w;
    for (int64_t t = 1; t < L; t++) {
        const float *e = E + (t * d.B + b) * K;
        for (int64_t i = 0; i < K; i++)
            for (int64_t j = 0; j < K; j++)
                dA[i * K + j] += w * exp(al[(t - 1) * K + i] + (double)A[i * K + j] + e[j] + be[t * K + j] - logz);
        dA[y[(t - 1) * d.B + b] * K + y[t * d.B + b]] -= w;
    }
}

static mn_status nll_grad_fwd(const mn_kernel_ctx *c)
{
    const mn_crf_attrs *a = c->attrs;
    crf_dims d = dims_of(&c->in[0]);
    if (d.K > CRF_MAX_TAGS) return mn__kernel_fail(c, "crf: %lld tags (at most %d)", (long long)d.K, CRF_MAX_TAGS);
    mn_status s = check_data(c, d);
    if (s) return s;
    const float *E = mn_f32(&c->in[0]), *A = mn_f32(&c->in[1]), *dy = mn_f32(&c->in[4]);
    const int32_t *len = mn_i32(&c->in[3]);
    int64_t TK = d.T * d.K, AK = (d.K + 2) * d.K;
    double *al = c->work, *be = al + d.B * TK, *dA = be + d.B * TK;
    #pragma omp parallel for if (d.T * d.B * d.K * d.K > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t b = 0; b < d.B; b++) {
        double tmp[CRF_MAX_TAGS], logz = 0, w = weight(a, dy, b, d.B);
        int64_t L = len[b];
        if (L) {
            logz = forward_b(E, A, d, b, L, al + b * TK, tmp);
            backward_b(E, A, d, b, L, be + b * TK, tmp);
        }
        if (a->wrt == 0) grad_emissions_b(c, d, b, al + b * TK, be + b * TK, logz, L ? w : 0.0);
        else grad_trans_b(c, d, b, L, al + b * TK, be + b * TK, logz, w, dA + b * AK);
    }
    if (a->wrt == 1) {
        float *out = mn_f32(c->out);
        for (int64_t k = 0; k < AK; k++) {
            double sum = 0;
            for (int64_t b = 0; b < d.B; b++) sum += dA[b * AK + k];
            out[k] = (float)sum;
        }
    }
    return MN_OK;
}

static mn_node *grad_node(mn_vjp_ctx *c, int wrt)
{
    mn_crf_attrs a = *(const mn_crf_attrs *)c->attrs;
    a.wrt = wrt;
    mn_node *in[5] = { c->in[0], c->in[1], c->in[2], c->in[3], c->dy };
    return mn__node(c->g, &mn__op_crf_nll_grad, in, 5, &a);
}

static mn_status vjp_nll(mn_vjp_ctx *c)
{
    if (c->needs[0]) c->dx[0] = grad_node(c, 0);
    if (c->needs[1]) c->dx[1] = grad_node(c, 1);
    return MN_OK;
}

mn_node *mn_crf_nll(mn_graph *g, mn_node *emissions, mn_node *transitions, mn_node *tags, mn_node *lengths, mn_reduction r)
{
    mn_crf_attrs a = { r, 0 };
    mn_node *in[4] = { emissions, transitions, tags, lengths };
    return mn__node(g, &mn__op_crf_nll, in, 4, &a);
}

static void crf_cost(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, double *flops, double *bytes)
{
    (void)nin; (void)out; (void)attrs;
    double K = (double)in[0].shape.d[2];
    *flops = 3.0 * (double)mn_shape_numel(in[0].shape) * K;
    *bytes = 4.0 * (double)mn_shape_numel(in[0].shape);
}

/* ---- Viterbi ---- */

/* The best path of one sentence; bp is L x K back-pointers. */
static void viterbi_b(const float *E, const float *A, crf_dims d, int64_t b, int64_t L, double *v, double *nv, int32_t *bp, int32_t *out)
{
    int64_t K = d.K;
    for (int64_t j = 0; j < K; j++) v[j] = (double)A[K * K + j] + E[b * K + j];
    for (int64_t t = 1; t < L; t++) {
        for (int64_t j = 0; j < K; j++) {
            int32_t best = 0;
            for (int64_t i = 1; i < K; i++) best = v[i] + A[i * K + j] > v[best] + A[best * K + j] ? (int32_t)i : best;
            nv[j] = v[best] + A[best * K + j] + E[(t * d.B + b) * K + j];
            bp[t * K + j] = best;
        }
        memcpy(v, nv, (size_t)K * sizeof *v);
    }
    int32_t last = 0;
    for (int64_t j = 1; j < K; j++) last = v[j] + A[(K + 1) * K + j] > v[last] + A[(K + 1) * K + last] ? (int32_t)j : last;
    for (int64_t t = L - 1; t >= 0; t--) {
        out[t * d.B + b] = last;
        if (t) last = bp[t * K + last];
    }
}

mn_status mn_crf_viterbi(const float *emissions, int64_t T, int64_t B, int64_t K, const float *transitions, const int32_t *lengths,
                         int32_t *tags)
{
    if (!emissions || !transitions || !lengths || !tags || T < 0 || B < 0 || K < 1)
        return mn_set_error(MN_ERR_INVALID, "crf viterbi: NULL argument or T %lld, B %lld, K %lld out of range", (long long)T,
                            (long long)B, (long long)K);
    for (int64_t b = 0; b < B; b++)
        if (lengths[b] < 0 || lengths[b] > T)
            return mn_set_error(MN_ERR_INVALID, "crf viterbi: length %d of sentence %lld is outside [0, %lld]", lengths[b], (long long)b,
                                (long long)T);
    double *v = malloc((size_t)(2 * K) * sizeof *v);
    int32_t *bp = malloc((size_t)((T ? T : 1) * K) * sizeof *bp);
    if (!v || !bp) { free(v); free(bp); return mn_set_error(MN_ERR_NOMEM, "crf viterbi: out of memory"); }
    crf_dims d = { T, B, K };
    for (int64_t i = 0; i < T * B; i++) tags[i] = -1;
    for (int64_t b = 0; b < B; b++)
        if (lengths[b]) viterbi_b(emissions, transitions, d, b, lengths[b], v, v + K, bp, tags);
    free(v);
    free(bp);
    return MN_OK;
}

static void crf_str(const void *p, char *buf, size_t n)
{
    static const char *red[] = { "none", "mean", "sum" };
    const mn_crf_attrs *a = p;
    snprintf(buf, n, "reduction=%s wrt=%s", red[a->reduction], a->wrt ? "transitions" : "emissions");
}

const mn_op_def mn__op_crf_nll = { MN_OP_RECORD,
    .name = "crf_nll",
    .doc = "linear-chain CRF: l_b = logZ_b - score_b(tags) (forward algorithm; transitions [K+2, K] with start/end rows), reduced over B; "
           "d = crf_nll_grad (marginals - gold counts)",
    .arity = 4, .attr_size = sizeof(mn_crf_attrs), .attr_fields = crf_fields, .inplace = -1,
    .infer = infer_nll, .forward = nll_fwd, .vjp = vjp_nll, .cost = crf_cost, .attr_str = crf_str,
    .traits = { .workspace = work_nll },
};
const mn_op_def mn__op_crf_nll_grad = { MN_OP_RECORD,
    .name = "crf_nll_grad",
    .doc = "crf_nll backward by forward-backward: wrt=0 dE = w (p_t(k) - [y_t = k]), wrt=1 dA = w (expected - gold transition counts); no gradient",
    .arity = 5, .attr_size = sizeof(mn_crf_attrs), .attr_fields = crf_fields, .inplace = -1, .flags = MN_OPF_NOGRAD,
    .infer = infer_grad, .forward = nll_grad_fwd, .cost = crf_cost, .attr_str = crf_str,
    .traits = { .workspace = work_grad },
};
