/* tests/test_ops.c: every op of the registry against a naive reference
 * loop (forward values) and, if it is differentiable, its VJP against
 * central finite differences. Driven by the registry: an op without a case
 * fails the suite, so a new op cannot land untested. */
#include "harness.h"
#include "../ops/attrs.h"
#include "../ops/op.h"
#include "../core/internal.h"
#include "../ops/fastmath.h"
#include "../ops/window.h"
#include <string.h>

typedef enum {
    G_NORMAL = 0, G_POS,   /* [0.5, 2) */
    G_AWAY,                /* |x| >= 0.1: away from kinks at 0 */
    G_CLASS,               /* i32 in [0, classes) */
    G_MASK,                /* 0 or 1 (f32 or i32) */
    G_DISTINCT,            /* all values distinct, >= 0.1 apart (max/min/clamp) */
    G_PROB, G_PROB0,       /* (0.05, 1) / [0, 1) with some exact zeros */
    G_LNSTATS,             /* layer_norm_stats(input 0): a derived input */
    G_GRID0, G_GRID5,      /* multiples of 0.1 (+ 0.05): two such inputs never tie */
    G_LEN,                 /* i32 lengths T, T-1, ..., 0, T, ... (T = dim 0 of input 0) */
    G_PACKED,              /* pack_weight(input 1): a derived input (matmul_packed) */
    G_CESTATS,             /* cross_entropy_stats(input 0): a derived input */
} gen_kind;

typedef struct {
    const char *op;
    int nin;
    mn_shape shape[5];
    mn_dtype dtype[5];
    gen_kind gen[5];
    const void *attrs;
    int classes;          /* G_CLASS: targets in [0, classes) */
    int ignore_every;     /* G_CLASS: every k-th target is `ignore` */
    int ignore;
    bool fwd_only;        /* no gradient check (ill-defined derivative at the data) */
} op_case;

#define S(...) MN_SHAPE(__VA_ARGS__)
#define SC MN_SCALAR
#define BIN(name, g1, a, b) { name, 2, { a, b }, .gen = { G_NORMAL, g1 } }
#define UN(name, g0, a) { name, 1, { a }, .gen = { g0 } }
#define MM(ta, tb, a, b) { "matmul", 2, { a, b }, .attrs = &(mn_matmul_attrs){ ta, tb } }
/* A op(W) from W packed in panels of 16 columns: A, W [N, K] (tb) or [K, N], the packed shape */
#define MMP(tb, a, w, np, K) { "matmul_packed", 3, { a, w, S(np, K, 16) }, .gen = { G_NORMAL, G_NORMAL, G_PACKED }, \
                               .attrs = &(mn_matmul_attrs){ false, tb } }
#define PACK(tb, w) { "pack_weight", 1, { w }, .attrs = &(mn_matmul_attrs){ false, tb } }
#define MMA(ta, tb, c, a, b) { "matmul_acc", 3, { c, a, b }, .attrs = &(mn_matmul_attrs){ ta, tb } }
#define PERM(sh, n, ...) { "permute", 1, { sh }, .attrs = &(mn_permute_attrs){ n, { __VA_ARGS__ } } }
#define RESHAPE(sh, to) { "reshape", 1, { sh }, .attrs = &(mn_shape_attrs){ to } }
#define EXPAND(sh, to) { "expand", 1, { sh }, .attrs = &(mn_shape_attrs){ to } }
#define RED(name, sh, ax, kd) { name, 1, { sh }, .attrs = &(mn_reduce_attrs){ ax, kd } }
#define AX(name, sh, a) { name, 1, { sh }, .attrs = &(mn_axis_attrs){ a, false } }
#define AXG(name, sh, a) { name, 2, { sh, sh }, .attrs = &(mn_axis_attrs){ a, false } }
#define CE(name, L, T, C, red, ign, eps, every, extra)                                        \
    { name, 2 + (extra), { L, T, (red) == MN_REDUCE_NONE ? T : SC }, { MN_F32, MN_I32, MN_F32 }, \
      { G_NORMAL, G_CLASS, G_NORMAL }, &(mn_ce_attrs){ { ign, red, eps } }, C, every, ign }
/* the same with the stats input cross_entropy_stats(logits) last (forward: 3 inputs, grad: 4) */
#define CES(name, L, T, C, red, ign, eps, every, extra)                                                      \
    { name, 3 + (extra), { L, T, (extra) ? ((red) == MN_REDUCE_NONE ? T : SC) : SC, SC }, { MN_F32, MN_I32, MN_F32, MN_F32 }, \
      { G_NORMAL, G_CLASS, (extra) ? G_NORMAL : G_CESTATS, G_CESTATS }, &(mn_ce_attrs){ { ign, red, eps } }, C, every, ign }
/* self_attention over qkv [B, T, 3E] (+ i32 key padding [B, T]); its grad takes dy [B, T, E] second */
#define ATT(sh, h, causal, sc) { "self_attention", 1, { sh }, .attrs = &(mn_attention_attrs){ h, causal, sc } }
#define ATTP(sh, h, causal, sc) { "self_attention", 2, { sh, S((sh).d[0], (sh).d[1]) }, { MN_F32, MN_I32 }, { G_NORMAL, G_CLASS }, \
                                  &(mn_attention_attrs){ h, causal, sc }, 2 }
#define ATTG(sh, h, causal, sc) { "self_attention_grad", 2, { sh, S((sh).d[0], (sh).d[1], (sh).d[2] / 3) },                   \
                                  .attrs = &(mn_attention_attrs){ h, causal, sc } }
#define ATTGP(sh, h, causal, sc) { "self_attention_grad", 3, { sh, S((sh).d[0], (sh).d[1], (sh).d[2] / 3), S((sh).d[0], (sh).d[1]) }, \
                                   { MN_F32, MN_F32, MN_I32 }, { G_NORMAL, G_NORMAL, G_CLASS }, &(mn_attention_attrs){ h, causal, sc }, 2 }
#define MSE(sh, red) { "mse_loss", 2, { sh, sh }, .attrs = &(mn_mse_attrs){ red } }

#define ACT1(name, g0, sh, k, a, b) { name, 1, { sh }, .gen = { g0 }, .attrs = &(mn_act_attrs){ k, a, b } }
#define ACT_ALL(name, g0, k, a, b) ACT1(name, g0, S(5, 7, 3), k, a, b), ACT1(name, g0, SC, k, a, b), \
    ACT1(name, g0, S(1), k, a, b), ACT1(name, g0, S(64, 130), k, a, b)
#define AG(k, a, b, g0) { "act_grad", 2, { S(5, 7, 3), S(5, 7, 3) }, .gen = { g0, G_NORMAL }, .attrs = &(mn_act_attrs){ k, a, b } }
#define SQ(name, sh, ax, all) { name, 1, { sh }, .attrs = &(mn_squeeze_attrs){ ax, all } }
#define SL(sh, ax, b, e, st) { "slice", 1, { sh }, .attrs = &(mn_slice_attrs){ ax, b, e, st } }
#define SLB(big, ax, b, e, st) { "slice_backward", 1, { SLICED(big, ax, b, e, st) }, .attrs = &(mn_slice_back_attrs){ { ax, b, e, st }, big } }
#define CAT(name, ax, a, b) { name, 2, { a, b }, .attrs = &(mn_cat_attrs){ ax } }
#define IDX(name, ax, xs, is, n) { name, 2, { xs, is }, { MN_F32, MN_I32 }, { G_NORMAL, G_CLASS }, &(mn_cat_attrs){ ax }, n }
#define IDXB(name, ax, gs, is, big, n) { name, 2, { gs, is }, { MN_F32, MN_I32 }, { G_NORMAL, G_CLASS }, &(mn_scatter_attrs){ ax, big }, n }
#define AXR(name, sh, ax, kd) { name, 1, { sh }, .gen = { G_DISTINCT }, .attrs = &(mn_axis_reduce_attrs){ ax, kd } }
#define VAR(name, sh, axes, kd, corr) { name, 1, { sh }, .attrs = &(mn_var_attrs){ axes, kd, corr } }
#define LNS(sh, nd) { "layer_norm_stats", 1, { sh }, .attrs = &(mn_ln_attrs){ nd, 1e-5f } }
#define LN(sh, nd, nin, ws, bs) { "layer_norm", nin, { sh, SC, ws, bs }, .gen = { G_NORMAL, G_LNSTATS }, .attrs = &(mn_ln_attrs){ nd, 1e-5f } }
#define LNB(sh, nd, ws) { "layer_norm_backward", 4, { sh, SC, ws, sh }, .gen = { G_NORMAL, G_LNSTATS }, .attrs = &(mn_ln_attrs){ nd, 1e-5f } }
#define LNB0(sh, nd) { "layer_norm_backward", 3, { sh, SC, sh }, .gen = { G_NORMAL, G_LNSTATS }, .attrs = &(mn_ln_attrs){ nd, 1e-5f } }
#define LNPG(sh, nd) { "layer_norm_param_grad", 3, { sh, SC, sh }, .gen = { G_NORMAL, G_LNSTATS }, .attrs = &(mn_ln_attrs){ nd, 1e-5f } }
#define DROP(sh, p, tr, stream) { "dropout", 1, { sh }, .attrs = &(mn_dropout_attrs){ p, tr, stream } }
#define NLL(L, T, C, red, ign, every, grad) { grad ? "nll_loss_grad" : "nll_loss", 2 + grad, { L, T, (red) == MN_REDUCE_NONE ? T : SC }, \
    { MN_F32, MN_I32, MN_F32 }, { G_NORMAL, G_CLASS, G_NORMAL }, &(mn_loss_attrs){ .reduction = red, .ignore_index = ign }, C, every, ign }
#define CRF(E, red, wrt, grad) { grad ? "crf_nll_grad" : "crf_nll", 4 + grad,                                          \
    { E, S((E).d[2] + 2, (E).d[2]), S((E).d[0], (E).d[1]), S((E).d[1]), (red) == MN_REDUCE_NONE ? S((E).d[1]) : SC }, \
    { MN_F32, MN_F32, MN_I32, MN_I32, MN_F32 }, { G_NORMAL, G_NORMAL, G_CLASS, G_LEN, G_NORMAL },                      \
    &(mn_crf_attrs){ red, wrt }, (int)(E).d[2] }
#define WIN(name, sh, n, K, St, D, Lo, Hi, pv, img) { name, 1, { sh }, .attrs = &(mn_window_attrs){ n, K, St, D, Lo, Hi, pv, img } }
#define TOPK(sh, g0, ax, k, lg) { "topk", 1, { sh }, .gen = { g0 }, .attrs = &(mn_topk_attrs){ ax, k, lg } }
#define V(...) { __VA_ARGS__ }
#define PW(name, sh, red, gt, bt) { name, 2, { sh, sh }, .gen = { G_NORMAL, gt }, .attrs = &(mn_loss_attrs){ .reduction = red, .beta = bt } }
/* The shape of a slice of `big` (Python semantics), for slice_backward cases. */
static mn_shape SLICED(mn_shape big, int ax, int64_t b, int64_t e, int64_t st)
{
    ax = mn__axis(ax, big.ndim);
    int64_t n = big.d[ax];
    b = b < 0 ? b + n : b; e = e < 0 ? e + n : e;
    b = b < 0 ? 0 : b > n ? n : b; e = e < 0 ? 0 : e > n ? n : e;
    big.d[ax] = e > b ? (e - b + st - 1) / st : 0;
    return big;
}

/* Binary broadcasting patterns shared by add, sub, mul, div. */
#define BIN_ALL(name, g1)                                                       \
    BIN(name, g1, S(5, 7, 3), S(5, 7, 3)), BIN(name, g1, S(5, 7, 3), SC),      \
    BIN(name, g1, SC, S(5, 7, 3)), BIN(name, g1, S(5, 7, 3), S(3)),            \
    BIN(name, g1, S(5, 1, 3), S(7, 1)), BIN(name, g1, S(4, 1), S(1, 6)),       \
    BIN(name, g1, S(1), S(5, 7)), BIN(name, g1, S(2, 3, 4, 5), S(3, 1, 5)),    \
    BIN(name, g1, S(64, 130), S(130)), BIN(name, g1, S(64, 130), S(64, 1))
#define EXT(name, a, b) { name, 2, { a, b }, .gen = { G_GRID0, G_GRID5 } }
#define EXT_ALL(name)                                                                 \
    EXT(name, S(5, 7, 3), S(5, 7, 3)), EXT(name, S(5, 7, 3), SC), EXT(name, S(5, 7, 3), S(3)), \
    EXT(name, S(5, 1, 3), S(7, 1)), EXT(name, S(4, 1), S(1, 6)), EXT(name, S(64, 130), S(130))
#define UN_ALL(name, g0) UN(name, g0, S(5, 7, 3)), UN(name, g0, SC), UN(name, g0, S(1)), UN(name, g0, S(64, 130))
#define HELPER(name, g0) BIN(name, G_NORMAL, S(5, 7, 3), S(5, 7, 3)), BIN(name, G_NORMAL, S(64, 130), S(64, 130))

/* The case table lives in main (its compound literals are not constant
 * expressions); tests read it through these. */
static const op_case *cases;
static int NCASES;


/* ---- inputs ---- */

static float gen_value(const op_case *c, int i, int64_t k, int64_t n, uint64_t seed)
{
    float u = mn_rng_uniform(seed, (uint64_t)i, (uint64_t)k);
    switch (c->gen[i]) {
    case G_POS: return 0.5f + 1.5f * u;
    case G_AWAY: return (u < 0.5f ? -1.0f : 1.0f) * (0.1f + 1.8f * fabsf(u - 0.5f));
    case G_MASK: return u < 0.5f ? 0.0f : 1.0f;
    case G_DISTINCT: return (float)((k * 7919) % n) * 0.1f - (float)n * 0.05f;
    case G_PROB: return 0.05f + 0.95f * u;
    case G_PROB0: return k % 4 == 3 ? 0.0f : u;
    case G_GRID0: return (floorf(u * 40.0f) - 20.0f) * 0.1f;
    case G_GRID5: return (floorf(u * 40.0f) - 20.0f) * 0.1f + 0.05f;
    default: return mn_rng_normal(seed, (uint64_t)i, (uint64_t)k);
    }
}

static mn_tensor **make_inputs(const op_case *c, uint64_t seed)
{
    mn_tensor **in = calloc(5, sizeof *in);
    for (int i = 0; i < c->nin; i++) {
        in[i] = mn_tensor_new(c->dtype[i], c->shape[i]);
        int64_t n = mn_tensor_numel(in[i]);
        for (int64_t k = 0; k < n; k++) {
            if (c->dtype[i] == MN_I32) {
                int32_t T0 = (int32_t)c->shape[0].d[0];
                int32_t t = c->gen[i] == G_MASK ? (int32_t)gen_value(c, i, k, n, seed)
                          : c->gen[i] == G_LEN ? T0 - (int32_t)(k % (T0 + 1))
                          : (int32_t)(mn_rng_uniform(seed, 100, (uint64_t)k) * (float)c->classes);
                if (c->ignore_every && k % c->ignore_every == 1) t = c->ignore;
                mn_i32(in[i])[k] = t;
            } else mn_f32(in[i])[k] = gen_value(c, i, k, n, seed);
        }
    }
    return in;
}

static void free_inputs(mn_tensor **in)
{
    for (int i = 0; i < 5; i++) mn_tensor_free(in[i]);
    free(in);
}

/* ---- reference implementations (double precision, naive loops) ---- */

/* Flat index into `in` for flat index `o` of the broadcast shape `out`. */
static int64_t bidx(mn_shape in, mn_shape out, int64_t o)
{
    int64_t idx = 0, stride = 1;
    for (int d = out.ndim - 1; d >= 0; d--) {
        int64_t i = o % out.d[d];
        o /= out.d[d];
        int j = in.ndim - out.ndim + d;
        if (j < 0) continue;
        if (in.d[j] != 1) idx += i * stride;
        stride *= in.d[j];
    }
    return idx;
}

static double ew2(const char *op, double x, double y)
{
    if (!strcmp(op, "add")) return x + y;
    if (!strcmp(op, "maximum")) return fmax(x, y);
    if (!strcmp(op, "minimum")) return fmin(x, y);
    if (!strcmp(op, "gt")) return x > y;
    if (!strcmp(op, "ge")) return x >= y;
    if (!strcmp(op, "lt")) return x < y;
    if (!strcmp(op, "le")) return x <= y;
    if (!strcmp(op, "eq")) return x == y;
    if (!strcmp(op, "ne")) return x != y;
    if (!strcmp(op, "sub")) return x - y;
    if (!strcmp(op, "mul")) return x * y;
    if (!strcmp(op, "div")) return x / y;
    if (!strcmp(op, "relu_grad")) return x > 0 ? y : 0;
    if (!strcmp(op, "tanh_grad")) return y * (1 - x * x);
    return y * x * (1 - x);                                      /* sigmoid_grad */
}

static double ew1(const char *op, double x, const void *attrs)
{
    if (!strcmp(op, "neg")) return -x;
    if (!strcmp(op, "scale")) return ((const mn_scale_attrs *)attrs)->s * x;
    if (!strcmp(op, "exp")) return exp(x);
    if (!strcmp(op, "log")) return log(x);
    if (!strcmp(op, "sqrt")) return sqrt(x);
    if (!strcmp(op, "square")) return x * x;
    if (!strcmp(op, "tanh")) return tanh(x);
    if (!strcmp(op, "sigmoid")) return 1 / (1 + exp(-x));
    return x > 0 ? x : 0;                                        /* relu */
}

static void ref_matmul(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_matmul_attrs *a = c->attrs;
    mn_shape A = in[0]->shape, B = in[1]->shape, ob = os, ab = A, bb = B;
    ob.ndim -= 2; ab.ndim -= 2; bb.ndim -= 2;
    int64_t M = os.d[os.ndim - 2], N = os.d[os.ndim - 1], K = a->trans_a ? A.d[A.ndim - 2] : A.d[A.ndim - 1];
    int64_t lda = A.d[A.ndim - 1], ldb = B.d[B.ndim - 1];
    for (int64_t b = 0; b < mn_shape_numel(ob); b++) {
        const float *pa = mn_f32(in[0]) + bidx(ab, ob, b) * M * K, *pb = mn_f32(in[1]) + bidx(bb, ob, b) * K * N;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)(a->trans_a ? pa[k * lda + m] : pa[m * lda + k]) * (a->trans_b ? pb[n * ldb + k] : pb[k * ldb + n]);
                out[(b * M + m) * N + n] = s;
            }
    }
}

/* P[p][k][j] = op(W)[k][16 p + j], 0 past N */
static void ref_pack(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    bool tb = ((const mn_matmul_attrs *)c->attrs)->trans_b;
    mn_shape w = in[0]->shape;
    int64_t N = tb ? w.d[0] : w.d[1], K = os.d[1];
    for (int64_t f = 0; f < mn_shape_numel(os); f++) {
        int64_t j = f % 16, k = f / 16 % K, n = f / (16 * K) * 16 + j;
        out[f] = n >= N ? 0.0 : mn_f32(in[0])[tb ? n * K + k : k * N + n];
    }
}

static void unravel(int64_t f, mn_shape s, int64_t *idx)
{
    for (int d = s.ndim - 1; d >= 0; d--) { idx[d] = f % s.d[d]; f /= s.d[d]; }
}

static int64_t ravel(const int64_t *idx, mn_shape s)
{
    int64_t f = 0;
    for (int d = 0; d < s.ndim; d++) f = f * s.d[d] + idx[d];
    return f;
}

static void ref_permute(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_permute_attrs *a = c->attrs;
    int64_t oi[8], ii[8];
    for (int64_t f = 0; f < mn_shape_numel(os); f++) {
        unravel(f, os, oi);
        for (int d = 0; d < os.ndim; d++) ii[a->perm[d]] = oi[d];
        out[f] = mn_f32(in[0])[ravel(ii, in[0]->shape)];
    }
}

static void ref_reduce(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_reduce_attrs *a = c->attrs;
    mn_shape is = in[0]->shape, ks = is;
    int64_t n = mn_shape_numel(is), idx[8], cnt = n / mn_shape_numel(os);
    for (int d = 0; d < is.ndim; d++) if (a->axes & (1u << d)) ks.d[d] = 1;
    for (int64_t f = 0; f < mn_shape_numel(os); f++) out[f] = 0;
    for (int64_t f = 0; f < n; f++) {
        unravel(f, is, idx);
        for (int d = 0; d < is.ndim; d++) if (a->axes & (1u << d)) idx[d] = 0;
        out[ravel(idx, ks)] += mn_f32(in[0])[f];
    }
    if (!strcmp(c->op, "mean")) for (int64_t f = 0; f < mn_shape_numel(os); f++) out[f] /= (double)cnt;
}

static void ref_softmax(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    int ax = mn__axis(((const mn_axis_attrs *)c->attrs)->axis, os.ndim);
    int64_t n = os.d[ax], inner = 1, outer = 1;
    for (int d = 0; d < os.ndim; d++) { if (d < ax) outer *= os.d[d]; if (d > ax) inner *= os.d[d]; }
    const float *x = mn_f32(in[0]), *g = c->nin > 1 ? mn_f32(in[1]) : NULL;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            int64_t base = o * n * inner + j;
            double s = 0, m = -1e300;
            if (!strcmp(c->op, "softmax_grad")) {
                for (int64_t i = 0; i < n; i++) s += (double)g[base + i * inner] * x[base + i * inner];
                for (int64_t i = 0; i < n; i++) out[base + i * inner] = x[base + i * inner] * (g[base + i * inner] - s);
                continue;
            }
            if (!strcmp(c->op, "log_softmax_grad")) {
                for (int64_t i = 0; i < n; i++) s += g[base + i * inner];
                for (int64_t i = 0; i < n; i++) out[base + i * inner] = g[base + i * inner] - exp(x[base + i * inner]) * s;
                continue;
            }
            for (int64_t i = 0; i < n; i++) m = fmax(m, x[base + i * inner]);
            for (int64_t i = 0; i < n; i++) s += exp(x[base + i * inner] - m);
            for (int64_t i = 0; i < n; i++)
                out[base + i * inner] = !strcmp(c->op, "softmax") ? exp(x[base + i * inner] - m) / s : x[base + i * inner] - m - log(s);
        }
}

/* (m, S, 0, 0) per position: the kernel's S is three floats, the first S
 * rounded to f32 and the others its rest (below 1e-6 here) */
static void ref_ce_stats(mn_tensor **in, double *out)
{
    mn_shape L = in[0]->shape;
    int64_t C = L.ndim == 1 ? L.d[0] : L.d[1], N = L.ndim == 1 ? 1 : L.d[0], inner = 1;
    for (int d = 2; d < L.ndim; d++) inner *= L.d[d];
    for (int64_t p = 0; p < N * inner; p++) {
        const float *x = mn_f32(in[0]) + (p / inner) * C * inner + p % inner;
        double m = -1e300, s = 0;
        for (int64_t k = 0; k < C; k++) m = fmax(m, x[k * inner]);
        for (int64_t k = 0; k < C; k++) s += exp(x[k * inner] - m);
        out[4 * p] = m;
        out[4 * p + 1] = s;
        out[4 * p + 2] = out[4 * p + 3] = 0;
    }
}

static void ref_ce(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_ce_attrs *a = c->attrs;
    mn_shape L = in[0]->shape;
    int64_t C = L.ndim == 1 ? L.d[0] : L.d[1], N = L.ndim == 1 ? 1 : L.d[0], inner = 1, cnt = 0;
    for (int d = 2; d < L.ndim; d++) inner *= L.d[d];
    double eps = a->o.label_smoothing, total = 0;
    bool grad = !strcmp(c->op, "cross_entropy_grad");
    for (int64_t p = 0; p < N * inner; p++) cnt += mn_i32(in[1])[p] != a->o.ignore_index;
    for (int64_t p = 0; p < N * inner; p++) {
        int32_t t = mn_i32(in[1])[p];
        const float *x = mn_f32(in[0]) + (p / inner) * C * inner + p % inner;
        double lse = 0, m = -1e300, l = 0;
        for (int64_t k = 0; k < C; k++) m = fmax(m, x[k * inner]);
        for (int64_t k = 0; k < C; k++) lse += exp(x[k * inner] - m);
        lse = m + log(lse);
        if (t != a->o.ignore_index) {
            l = (1 - eps) * (lse - x[t * inner]);
            for (int64_t k = 0; k < C; k++) l += eps / (double)C * (lse - x[k * inner]);
        }
        if (grad) {
            double w = a->o.reduction == MN_REDUCE_NONE ? mn_f32(in[2])[p] : mn_f32(in[2])[0] / (a->o.reduction == MN_REDUCE_MEAN ? (double)cnt : 1.0);
            for (int64_t k = 0; k < C; k++)
                out[(p / inner) * C * inner + p % inner + k * inner] = t == a->o.ignore_index ? 0 :
                    w * (exp(x[k * inner] - lse) - eps / (double)C - (k == t ? 1 - eps : 0));
        } else if (a->o.reduction == MN_REDUCE_NONE) out[p] = l;
        total += l;
    }
    if (!grad && a->o.reduction != MN_REDUCE_NONE) out[0] = a->o.reduction == MN_REDUCE_SUM ? total : total / (double)cnt;
    (void)os;
}

static void ref_mse(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_mse_attrs *a = c->attrs;
    int64_t n = mn_tensor_numel(in[0]);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)mn_f32(in[0])[i] - mn_f32(in[1])[i];
        if (a->reduction == MN_REDUCE_NONE) out[i] = d * d;
        s += d * d;
    }
    if (a->reduction != MN_REDUCE_NONE) out[0] = a->reduction == MN_REDUCE_SUM ? s : s / (double)n;
    (void)os;
}

/* ---- references for the sequence-model op library ---- */

#define F(t, i) ((double)mn_f32(t)[i])

static double act_ref(const char *op, const mn_act_attrs *a, double x)
{
    if (!strcmp(op, "gelu")) {
        if (a->kind == MN_ACT_GELU_TANH) return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        return 0.5 * x * (1 + erf(x / sqrt(2)));
    }
    if (!strcmp(op, "softplus")) return x * a->a > a->b ? x : log1p(exp(a->a * x)) / a->a;
    if (!strcmp(op, "abs")) return fabs(x);
    if (!strcmp(op, "sign")) return (x > 0) - (x < 0);
    if (!strcmp(op, "clamp")) return x < a->a ? a->a : x > a->b ? a->b : x;
    if (!strcmp(op, "pow")) return pow(x, a->a);
    if (!strcmp(op, "leaky_relu")) return x > 0 ? x : a->a * x;
    if (!strcmp(op, "elu")) return x > 0 ? x : a->a * expm1(x);
    if (!strcmp(op, "silu")) return x / (1 + exp(-x));
    if (!strcmp(op, "reciprocal")) return 1 / x;
    if (!strcmp(op, "erf")) return erf(x);
    return 1 / sqrt(x);                                              /* rsqrt */
}

/* f'(x) by the closed forms of torch's backward formulas */
static double act_deriv_ref(const mn_act_attrs *a, double x)
{
    switch (a->kind) {
    case MN_ACT_GELU_ERF: return 0.5 * (1 + erf(x / sqrt(2))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
    case MN_ACT_GELU_TANH: {
        double k = sqrt(2 / M_PI), t = tanh(k * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    }
    case MN_ACT_CLAMP: return x >= a->a && x <= a->b;
    case MN_ACT_LEAKY_RELU: return x > 0 ? 1 : a->a;
    case MN_ACT_ELU: return x > 0 ? 1 : a->a * exp(x);
    case MN_ACT_SILU: { double sg = 1 / (1 + exp(-x)); return sg * (1 + x * (1 - sg)); }
    }
    return 0;
}

static void ref_slice_like(const op_case *c, mn_tensor **in, double *out, mn_shape os, bool back)
{
    const mn_slice_attrs *a = back ? &((const mn_slice_back_attrs *)c->attrs)->s : c->attrs;
    mn_shape big = back ? os : in[0]->shape;
    int ax = mn__axis(a->axis, big.ndim);
    int64_t n = big.d[ax], b = a->start < 0 ? a->start + n : a->start, idx[8];
    b = b < 0 ? 0 : b > n ? n : b;
    mn_shape small = back ? in[0]->shape : os;
    if (back) for (int64_t i = 0; i < mn_shape_numel(os); i++) out[i] = 0;
    for (int64_t f = 0; f < mn_shape_numel(small); f++) {
        unravel(f, small, idx);
        idx[ax] = b + idx[ax] * a->step;
        if (back) out[ravel(idx, big)] = F(in[0], f);
        else out[f] = F(in[0], ravel(idx, big));
    }
}

static void ref_concat(const op_case *c, mn_tensor **in, double *out, mn_shape os, bool stack)
{
    int ax = mn__axis(((const mn_cat_attrs *)c->attrs)->axis, os.ndim);
    int64_t idx[8];
    for (int64_t f = 0; f < mn_shape_numel(os); f++) {
        unravel(f, os, idx);
        int k = 0;
        if (stack) { k = (int)idx[ax]; for (int d = ax; d < os.ndim - 1; d++) idx[d] = idx[d + 1]; }
        else while (idx[ax] >= in[k]->shape.d[ax]) idx[ax] -= in[k++]->shape.d[ax];
        out[f] = F(in[k], ravel(idx, in[k]->shape));
    }
}

static void ref_index(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    int64_t idx[8];
    if (!strcmp(c->op, "embedding")) {
        int64_t D = in[1]->shape.d[1];
        for (int64_t f = 0; f < mn_shape_numel(os); f++) out[f] = F(in[1], (int64_t)mn_i32(in[0])[f / D] * D + f % D);
        return;
    }
    bool back = strstr(c->op, "backward") != NULL, gather = !strncmp(c->op, "gather", 6);
    int axis = back ? ((const mn_scatter_attrs *)c->attrs)->axis : ((const mn_cat_attrs *)c->attrs)->axis;
    mn_shape src = back ? in[0]->shape : os, big = back ? os : in[0]->shape;
    int ax = mn__axis(axis, big.ndim);
    if (back) for (int64_t f = 0; f < mn_shape_numel(os); f++) out[f] = 0;
    for (int64_t f = 0; f < mn_shape_numel(src); f++) {
        unravel(f, src, idx);
        idx[ax] = gather ? mn_i32(in[1])[f] : mn_i32(in[1])[idx[ax]];
        if (back) out[ravel(idx, big)] += F(in[0], f);
        else out[f] = F(in[0], ravel(idx, big));
    }
}

static void ref_axis_reduce(const op_case *c, mn_tensor **in, double *out)
{
    const mn_axis_reduce_attrs *a = c->attrs;
    mn_shape s = in[0]->shape;
    int ax = mn__axis(a->axis, s.ndim);
    int64_t n = s.d[ax], inner = 1, outer = 1;
    for (int d = 0; d < s.ndim; d++) { if (d < ax) outer *= s.d[d]; if (d > ax) inner *= s.d[d]; }
    bool mx = !strcmp(c->op, "max") || !strcmp(c->op, "argmax");
    for (int64_t r = 0; r < outer * inner; r++) {
        int64_t base = (r / inner) * n * inner + r % inner, best = 0;
        double m = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = F(in[0], base + i * inner);
            if (mx ? v > F(in[0], base + best * inner) : v < F(in[0], base + best * inner)) best = i;
            m = fmax(m, v);
        }
        for (int64_t i = 0; i < n; i++) sum += exp(F(in[0], base + i * inner) - m);
        if (!strcmp(c->op, "logsumexp")) out[r] = m + log(sum);
        else if (strstr(c->op, "arg")) out[r] = (double)best;
        else out[r] = F(in[0], base + best * inner);
    }
}

static void ref_var(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_var_attrs *a = c->attrs;
    mn_reduce_attrs ra = { a->axes, a->keepdim };
    op_case mc = *c;
    mc.op = "mean"; mc.attrs = &ra;
    double *mean = calloc((size_t)mn_shape_numel(os), sizeof *mean);
    ref_reduce(&mc, in, mean, os);
    mn_shape is = in[0]->shape, ks = is;
    int64_t n = mn_shape_numel(is), idx[8], cnt = n / mn_shape_numel(os);
    for (int d = 0; d < is.ndim; d++) if (a->axes & (1u << d)) ks.d[d] = 1;
    for (int64_t f = 0; f < mn_shape_numel(os); f++) out[f] = 0;
    for (int64_t f = 0; f < n; f++) {
        unravel(f, is, idx);
        for (int d = 0; d < is.ndim; d++) if (a->axes & (1u << d)) idx[d] = 0;
        int64_t o = ravel(idx, ks);
        out[o] += (F(in[0], f) - mean[o]) * (F(in[0], f) - mean[o]);
    }
    for (int64_t f = 0; f < mn_shape_numel(os); f++) {
        out[f] /= (double)cnt - a->correction;
        if (!strcmp(c->op, "std")) out[f] = sqrt(out[f]);
    }
    free(mean);
}

static void ref_masked_softmax(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_axis_attrs *a = c->attrs;
    int64_t n = os.d[os.ndim - 1], rows = mn_shape_numel(os) / n, Tq = os.ndim >= 2 ? os.d[os.ndim - 2] : 1;
    double *z = malloc((size_t)n * sizeof *z);
    for (int64_t r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < n; j++) {
            z[j] = F(in[0], r * n + j) + (c->nin == 2 ? F(in[1], bidx(in[1]->shape, os, r * n + j)) : 0);
            if (a->causal && j > r % Tq) z[j] = -INFINITY;
            m = fmax(m, z[j]);
        }
        for (int64_t j = 0; j < n; j++) s += exp(z[j] - m);
        for (int64_t j = 0; j < n; j++) out[r * n + j] = !strcmp(c->op, "softmax") ? exp(z[j] - m) / s : z[j] - m - log(s);
    }
    free(z);
}

static void ln_row_stats(const float *x, int64_t D, double eps, double *m, double *rs)
{
    double s = 0, v = 0;
    for (int64_t i = 0; i < D; i++) s += x[i];
    *m = s / (double)D;
    for (int64_t i = 0; i < D; i++) v += (x[i] - *m) * (x[i] - *m);
    *rs = 1 / sqrt(v / (double)D + eps);
}

static void ref_layer_norm(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_ln_attrs *a = c->attrs;
    mn_shape s = in[0]->shape;
    int64_t D = 1;
    for (int i = s.ndim - a->ndims; i < s.ndim; i++) D *= s.d[i];
    int64_t R = mn_shape_numel(s) / D;
    bool back = !strcmp(c->op, "layer_norm_backward"), pg = !strcmp(c->op, "layer_norm_param_grad");
    const mn_tensor *w = (back ? c->nin == 4 : c->nin > 2 && !pg) ? in[2] : NULL, *b = !back && !pg && c->nin > 3 ? in[3] : NULL;
    if (pg)                                        /* [2, D]: sums over rows of dy xhat and of dy */
        for (int64_t i = 0; i < 2 * D; i++) out[i] = 0;
    for (int64_t r = 0; r < R; r++) {
        double m, rs;
        const float *x = mn_f32(in[0]) + r * D;
        ln_row_stats(x, D, a->eps, &m, &rs);
        if (!strcmp(c->op, "layer_norm_stats")) { out[2 * r] = m; out[2 * r + 1] = rs; continue; }
        if (pg) {
            const float *dy = mn_f32(in[2]) + r * D;
            for (int64_t i = 0; i < D; i++) { out[i] += dy[i] * (x[i] - m) * rs; out[D + i] += dy[i]; }
            continue;
        }
        if (!back) {
            for (int64_t i = 0; i < D; i++) out[r * D + i] = (x[i] - m) * rs * (w ? F(w, i) : 1) + (b ? F(b, i) : 0);
            continue;
        }
        const float *dy = mn_f32(in[c->nin - 1]) + r * D;
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < D; i++) { double g = dy[i] * (w ? F(w, i) : 1); sg += g; sgx += g * (x[i] - m) * rs; }
        for (int64_t i = 0; i < D; i++)
            out[r * D + i] = rs * (dy[i] * (w ? F(w, i) : 1) - sg / (double)D - (x[i] - m) * rs * sgx / (double)D);
    }
    (void)os;
}

static void ref_random(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    uint64_t seed = mn__run_seed(0, 0);          /* graph seed 0, first run */
    int64_t n = mn_shape_numel(os);
    if (!strcmp(c->op, "dropout")) {
        const mn_dropout_attrs *a = c->attrs;
        for (int64_t i = 0; i < n; i++)
            out[i] = !a->training ? F(in[0], i) : mn_rng_uniform(seed, a->stream, (uint64_t)i) >= a->p ? F(in[0], i) / (1 - a->p) : 0;
        return;
    }
    const mn_random_attrs *a = c->attrs;
    for (int64_t i = 0; i < n; i++)
        out[i] = !strcmp(c->op, "normal") ? a->a + a->b * (double)mn_rng_normal(seed, a->stream, (uint64_t)i)
                                          : a->a + (a->b - a->a) * (double)mn_rng_uniform(seed, a->stream, (uint64_t)i);
}

static double loss_reduce(const mn_loss_attrs *a, const double *l, int64_t n, double *out, int64_t batch)
{
    double t = 0;
    for (int64_t i = 0; i < n; i++) { t += l[i]; if (a->reduction == MN_REDUCE_NONE) out[i] = l[i]; }
    if (a->reduction == MN_REDUCE_SUM) out[0] = t;
    if (a->reduction == MN_REDUCE_MEAN) out[0] = t / (double)n;
    if (a->reduction == MN_REDUCE_BATCHMEAN) out[0] = t / (double)batch;
    return t;
}

static void ref_losses(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_loss_attrs *a = c->attrs;
    if (!strncmp(c->op, "nll_loss", 8)) {
        mn_shape L = in[0]->shape;
        int64_t C = L.d[1], N = L.d[0], inner = 1, cnt = 0;
        for (int d = 2; d < L.ndim; d++) inner *= L.d[d];
        for (int64_t p = 0; p < N * inner; p++) cnt += mn_i32(in[1])[p] != a->ignore_index;
        double total = 0;
        if (c->nin == 3) for (int64_t i = 0; i < mn_shape_numel(os); i++) out[i] = 0;
        for (int64_t p = 0; p < N * inner; p++) {
            int32_t t = mn_i32(in[1])[p];
            int64_t at = (p / inner) * C * inner + (int64_t)t * inner + p % inner;
            if (t == a->ignore_index) { if (c->nin == 2 && a->reduction == MN_REDUCE_NONE) out[p] = 0; continue; }
            if (c->nin == 3) {
                double w = a->reduction == MN_REDUCE_NONE ? F(in[2], p) : F(in[2], 0) / (a->reduction == MN_REDUCE_MEAN ? (double)cnt : 1);
                out[at] = -w;
                continue;
            }
            if (a->reduction == MN_REDUCE_NONE) out[p] = -F(in[0], at);
            total -= F(in[0], at);
        }
        if (c->nin == 2 && a->reduction != MN_REDUCE_NONE) out[0] = a->reduction == MN_REDUCE_SUM ? total : total / (double)cnt;
        return;
    }
    int64_t n = mn_tensor_numel(in[0]);
    double *l = calloc((size_t)n, sizeof *l);
    for (int64_t i = 0; i < n; i++) {
        double x = F(in[0], i), t = F(in[1], i), d = x - t, ad = fabs(d), b = a->beta;
        if (!strcmp(c->op, "bce_with_logits")) {
            double pw = c->nin == 3 ? F(in[2], bidx(in[2]->shape, in[0]->shape, i)) : 1;
            double sig = 1 / (1 + exp(-x));
            l[i] = -(pw * t * log(sig) + (1 - t) * log(1 - sig));
        } else if (!strcmp(c->op, "kl_div")) l[i] = a->log_target ? exp(t) * (t - x) : t > 0 ? t * (log(t) - x) : 0;
        else if (!strcmp(c->op, "gaussian_kl")) l[i] = -0.5 * (1 + t - x * x - exp(t));
        else if (!strcmp(c->op, "smooth_l1")) l[i] = ad < b ? 0.5 * d * d / b : ad - 0.5 * b;
        else l[i] = ad <= b ? 0.5 * d * d : b * (ad - 0.5 * b);           /* huber */
    }
    loss_reduce(a, l, n, out, in[0]->shape.ndim ? in[0]->shape.d[0] : 1);
    free(l);
}

static void ref_util(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    int64_t n = mn_shape_numel(os);
    if (!strcmp(c->op, "fill")) for (int64_t i = 0; i < n; i++) out[i] = ((const mn_fill_attrs *)c->attrs)->dtype == MN_I32 ? (int32_t)((const mn_fill_attrs *)c->attrs)->value : ((const mn_fill_attrs *)c->attrs)->value;
    else if (!strcmp(c->op, "zeros_like")) for (int64_t i = 0; i < n; i++) out[i] = 0;
    else if (!strcmp(c->op, "ones_like")) for (int64_t i = 0; i < n; i++) out[i] = 1;
    else if (!strcmp(c->op, "arange")) {
        const mn_arange_attrs *a = c->attrs;
        for (int64_t i = 0; i < n; i++) { double v = a->start + (double)i * a->step; out[i] = a->dtype == MN_I32 ? (double)(int32_t)v : (double)(float)v; }
    } else if (!strcmp(c->op, "one_hot")) {
        int64_t C = ((const mn_one_hot_attrs *)c->attrs)->num_classes;
        for (int64_t i = 0; i < n; i++) out[i] = mn_i32(in[0])[i / C] == i % C;
    } else {                                                             /* cast */
        for (int64_t i = 0; i < n; i++)
            out[i] = in[0]->dtype == MN_F32 ? (double)(int32_t)mn_f32(in[0])[i] : (double)mn_i32(in[0])[i];
    }
}

/* unfold / fold by the definition: output (unfold) or input (fold) element
 * (n, c, kk, l) <-> image position o * stride + k * dilation - pad_lo per
 * spatial dim, kk and l row-major over the kernel and block grids. */
static void ref_window(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_window_attrs *a = c->attrs;
    bool fold = !strcmp(c->op, "fold");
    mn_shape img = fold ? a->image : in[0]->shape, cols = fold ? in[0]->shape : os;
    int64_t O[3], Kp = cols.d[2], L = cols.d[3];
    for (int i = 0; i < a->nsp; i++)
        O[i] = (img.d[2 + i] + a->pad_lo[i] + a->pad_hi[i] - a->dilation[i] * (a->kernel[i] - 1) - 1) / a->stride[i] + 1;
    if (fold) memset(out, 0, (size_t)mn_shape_numel(os) * sizeof *out);
    for (int64_t e = 0; e < mn_shape_numel(cols); e++) {
        int64_t nc = e / (Kp * L), kk = (e / L) % Kp, l = e % L, pos = 0;
        bool inside = true;
        for (int i = a->nsp - 1; i >= 0; i--) {
            int64_t k = kk % a->kernel[i], o = l % O[i];
            kk /= a->kernel[i];
            l /= O[i];
            int64_t s = o * a->stride[i] + k * a->dilation[i] - a->pad_lo[i], stride = 1;
            for (int j = i + 1; j < a->nsp; j++) stride *= img.d[2 + j];
            inside = inside && s >= 0 && s < img.d[2 + i];
            pos += s * stride;
        }
        int64_t at = nc * (mn_shape_numel(img) / (img.d[0] * img.d[1])) + pos;
        if (fold && inside) out[at] += F(in[0], e);
        if (!fold) out[e] = inside ? F(in[0], at) : a->pad_value;
    }
}

/* topk: for each row along the axis, repeatedly the best value not taken yet (the first on ties). */
static void ref_topk(const op_case *c, mn_tensor **in, double *out)
{
    const mn_topk_attrs *a = c->attrs;
    mn__split3 s = mn__split_at(in[0]->shape, mn__axis(a->axis, in[0]->shape.ndim));
    bool taken[256];
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t q = 0; q < s.inner; q++) {
            memset(taken, 0, sizeof taken);
            for (int j = 0; j < a->k; j++) {
                int64_t best = -1;
                for (int64_t t = 0; t < s.dim; t++) {
                    double v = F(in[0], (o * s.dim + t) * s.inner + q);
                    double b = best < 0 ? 0 : F(in[0], (o * s.dim + best) * s.inner + q);
                    if (!taken[t] && (best < 0 || (a->largest ? v > b : v < b))) best = t;
                }
                taken[best] = true;
                out[(o * a->k + j) * s.inner + q] = (double)best;
            }
        }
}

/* crf_nll and crf_nll_grad by brute force: every tag path of every
 * sentence scored on its own, log Z as the log-sum-exp of all paths, and
 * the gradient as path probabilities times path features (tiny T and K). */
static double crf_path_score(mn_tensor **in, const int *path, int64_t b, int64_t L)
{
    mn_shape e = in[0]->shape;
    int64_t B = e.d[1], K = e.d[2];
    double s = F(in[1], K * K + path[0]) + F(in[1], (K + 1) * K + path[L - 1]);
    for (int64_t t = 0; t < L; t++) s += F(in[0], (t * B + b) * K + path[t]) + (t ? F(in[1], path[t - 1] * K + path[t]) : 0);
    return s;
}

/* Adds weight w times the features of a path to dE (wrt 0) or dA (wrt 1). */
static void crf_path_features(double *out, int wrt, const int *path, int64_t b, int64_t L, int64_t B, int64_t K, double w)
{
    if (wrt == 0) { for (int64_t t = 0; t < L; t++) out[(t * B + b) * K + path[t]] += w; return; }
    out[K * K + path[0]] += w;
    out[(K + 1) * K + path[L - 1]] += w;
    for (int64_t t = 1; t < L; t++) out[path[t - 1] * K + path[t]] += w;
}

static void ref_crf(const op_case *c, mn_tensor **in, double *out)
{
    const mn_crf_attrs *a = c->attrs;
    bool grad = c->nin == 5;
    mn_shape e = in[0]->shape;
    int64_t T = e.d[0], B = e.d[1], K = e.d[2];
    const int32_t *y = mn_i32(in[2]), *len = mn_i32(in[3]);
    double total = 0;
    if (grad) memset(out, 0, (size_t)(a->wrt ? (K + 2) * K : T * B * K) * sizeof *out);
    for (int64_t b = 0; b < B; b++) {
        int64_t L = len[b], npath = 1;
        int path[16], gold[16];
        for (int64_t t = 0; t < L; t++) { npath *= K; gold[t] = y[t * B + b]; }
        double logz = -INFINITY, w = !grad ? 0 : a->reduction == MN_REDUCE_NONE ? F(in[4], b)
                                              : a->reduction == MN_REDUCE_SUM ? F(in[4], 0) : F(in[4], 0) / (double)B;
        for (int pass = 0; pass < 2 && L; pass++)
            for (int64_t p = 0; p < npath; p++) {
                for (int64_t t = 0, q = p; t < L; t++, q /= K) path[t] = (int)(q % K);
                double s = crf_path_score(in, path, b, L);
                if (pass == 0) logz = logz == -INFINITY ? s : fmax(logz, s) + log1p(exp(-fabs(logz - s)));
                else if (grad) crf_path_features(out, a->wrt, path, b, L, B, K, w * exp(s - logz));
            }
        double nll = L ? logz - crf_path_score(in, gold, b, L) : 0;
        if (grad && L) crf_path_features(out, a->wrt, gold, b, L, B, K, -w);
        if (!grad && a->reduction == MN_REDUCE_NONE) out[b] = nll;
        total += nll;
    }
    if (!grad && a->reduction != MN_REDUCE_NONE) out[0] = a->reduction == MN_REDUCE_SUM ? total : total / (double)B;
}

/* op is one of the space-separated words of list (which starts and ends with a space) */
static bool is_one_of(const char *op, const char *list)
{
    char w[64];
    snprintf(w, sizeof w, " %s ", op);
    return strstr(list, w) != NULL;
}

/* self_attention and its grad in double, straight from the definition:
 * p_ij = softmax_j(scale q_i . k_j) over the keys neither padded nor (causal)
 * after i; y_i = sum_j p_ij v_j; for the grad, with dy: dp_ij = dy_i . v_j,
 * ds_ij = p_ij (dp_ij - sum_l p_il dp_il) scale, dq_i = sum_j ds_ij k_j,
 * dk_j = sum_i ds_ij q_i, dv_j = sum_i p_ij dy_i. */
static void ref_attention(const op_case *c, mn_tensor **in, double *out)
{
    const mn_attention_attrs *a = c->attrs;
    bool grad = strstr(c->op, "grad") != NULL;
    int64_t B = in[0]->shape.d[0], T = in[0]->shape.d[1], ld = in[0]->shape.d[2], E = ld / 3, H = a->heads, dh = E / H;
    const mn_tensor *pad = c->nin == 2 + grad ? in[1 + grad] : NULL;
    double *p = malloc((size_t)(T * T) * sizeof *p), *dp = malloc((size_t)(T * T) * sizeof *dp);
    for (int64_t i = 0; i < B * T * (grad ? ld : E); i++) out[i] = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            int64_t row = b * T * ld, q = h * dh, k = E + h * dh, v = 2 * E + h * dh;
            for (int64_t i = 0; i < T; i++) {
                double m = -INFINITY, s = 0;
                for (int64_t j = 0; j < T; j++) {
                    bool off = (a->causal && j > i) || (pad && mn_i32(pad)[b * T + j]);
                    double z = 0;
                    for (int64_t e = 0; e < dh; e++) z += F(in[0], row + i * ld + q + e) * F(in[0], row + j * ld + k + e);
                    p[i * T + j] = off ? -INFINITY : z * a->scale;
                    if (p[i * T + j] > m) m = p[i * T + j];
                }
                for (int64_t j = 0; j < T; j++) s += m == -INFINITY ? 0 : exp(p[i * T + j] - m);
                for (int64_t j = 0; j < T; j++) p[i * T + j] = m == -INFINITY ? 0 : exp(p[i * T + j] - m) / s;
            }
            for (int64_t i = 0; i < T && !grad; i++)
                for (int64_t j = 0; j < T; j++)
                    for (int64_t e = 0; e < dh; e++) out[(b * T + i) * E + h * dh + e] += p[i * T + j] * F(in[0], row + j * ld + v + e);
            if (!grad) continue;
            for (int64_t i = 0; i < T; i++) {
                double s = 0;
                for (int64_t j = 0; j < T; j++) {
                    dp[i * T + j] = 0;
                    for (int64_t e = 0; e < dh; e++) dp[i * T + j] += F(in[1], (b * T + i) * E + h * dh + e) * F(in[0], row + j * ld + v + e);
                    s += p[i * T + j] * dp[i * T + j];
                }
                for (int64_t j = 0; j < T; j++) dp[i * T + j] = p[i * T + j] * (dp[i * T + j] - s) * a->scale;
            }
            for (int64_t i = 0; i < T; i++)
                for (int64_t j = 0; j < T; j++)
                    for (int64_t e = 0; e < dh; e++) {
                        out[row + i * ld + q + e] += dp[i * T + j] * F(in[0], row + j * ld + k + e);
                        out[row + j * ld + k + e] += dp[i * T + j] * F(in[0], row + i * ld + q + e);
                        out[row + j * ld + v + e] += p[i * T + j] * F(in[1], (b * T + i) * E + h * dh + e);
                    }
        }
    free(p);
    free(dp);
}

static bool ref_library(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const char *op = c->op;
    int64_t n = mn_shape_numel(os);
    if (!strcmp(op, "act_grad")) {
        for (int64_t i = 0; i < n; i++) out[i] = F(in[1], i) * act_deriv_ref(c->attrs, F(in[0], i));
    } else if (!strcmp(op, "linear")) {
        int64_t O = in[1]->shape.d[0], I = in[1]->shape.d[1];
        for (int64_t f = 0; f < n; f++) {
            double s = c->nin == 3 ? F(in[2], f % O) : 0;
            for (int64_t k = 0; k < I; k++) s += F(in[0], (f / O) * I + k) * F(in[1], (f % O) * I + k);
            out[f] = s;
        }
    } else if (!strcmp(op, "squeeze") || !strcmp(op, "unsqueeze")) for (int64_t i = 0; i < n; i++) out[i] = F(in[0], i);
    else if (!strcmp(op, "slice") || !strcmp(op, "slice_backward")) ref_slice_like(c, in, out, os, op[5] == '_');
    else if (!strcmp(op, "concat") || !strcmp(op, "stack")) ref_concat(c, in, out, os, op[1] == 't');
    else if (strstr(op, "index_select") || strstr(op, "gather") || !strcmp(op, "embedding")) ref_index(c, in, out, os);
    else if (!strcmp(op, "where"))
        for (int64_t i = 0; i < n; i++) {
            int64_t k = bidx(in[0]->shape, os, i);
            bool t = in[0]->dtype == MN_F32 ? mn_f32(in[0])[k] != 0 : mn_i32(in[0])[k] != 0;
            out[i] = t ? F(in[1], bidx(in[1]->shape, os, i)) : F(in[2], bidx(in[2]->shape, os, i));
        }
    else if (!strcmp(op, "max") || !strcmp(op, "min") || strstr(op, "arg") || !strcmp(op, "logsumexp")) ref_axis_reduce(c, in, out);
    else if (!strcmp(op, "var") || !strcmp(op, "std")) ref_var(c, in, out, os);
    else if ((!strcmp(op, "softmax") || !strcmp(op, "log_softmax")) && (c->nin == 2 || ((const mn_axis_attrs *)c->attrs)->causal))
        ref_masked_softmax(c, in, out, os);
    else if (!strncmp(op, "layer_norm", 10)) ref_layer_norm(c, in, out, os);
    else if (!strcmp(op, "dropout") || !strcmp(op, "normal") || !strcmp(op, "uniform")) ref_random(c, in, out, os);
    else if (!strncmp(op, "nll_loss", 8) || !strcmp(op, "bce_with_logits") || !strcmp(op, "kl_div") ||
             !strcmp(op, "gaussian_kl") || !strcmp(op, "smooth_l1") || !strcmp(op, "huber")) ref_losses(c, in, out, os);
    else if (!strncmp(op, "crf_nll", 7)) ref_crf(c, in, out);
    else if (!strcmp(op, "unfold") || !strcmp(op, "fold")) ref_window(c, in, out, os);
    else if (!strcmp(op, "topk")) ref_topk(c, in, out);
    else if (!strncmp(op, "self_attention", 14)) ref_attention(c, in, out);
    else if (!strcmp(op, "fill") || !strcmp(op, "zeros_like") || !strcmp(op, "ones_like") || !strcmp(op, "arange") ||
             !strcmp(op, "one_hot") || !strcmp(op, "cast")) ref_util(c, in, out, os);
    else if (is_one_of(op, " gelu softplus abs sign clamp pow leaky_relu elu silu reciprocal rsqrt erf ")) {
        mn_act_attrs none = { 0 };
        for (int64_t i = 0; i < n; i++) out[i] = act_ref(op, c->attrs ? c->attrs : &none, F(in[0], i));
    } else return false;
    return true;
}

static void reference(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_op_def *op = mn_op_find(c->op);
    int64_t n = mn_shape_numel(os);
    if (ref_library(c, in, out, os)) return;
    if (!strcmp(c->op, "matmul") || !strcmp(c->op, "matmul_packed")) ref_matmul(c, in, out, os);
    else if (!strcmp(c->op, "pack_weight")) ref_pack(c, in, out, os);
    else if (!strcmp(c->op, "matmul_acc")) {                      /* C0 + the product */
        ref_matmul(c, in + 1, out, os);
        for (int64_t i = 0; i < n; i++) out[i] += F(in[0], i);
    }
    else if (!strcmp(c->op, "permute")) ref_permute(c, in, out, os);
    else if (!strcmp(c->op, "sum") || !strcmp(c->op, "mean")) ref_reduce(c, in, out, os);
    else if (strstr(c->op, "softmax")) ref_softmax(c, in, out, os);
    else if (!strcmp(c->op, "cross_entropy_stats")) ref_ce_stats(in, out);
    else if (strstr(c->op, "cross_entropy")) ref_ce(c, in, out, os);
    else if (!strcmp(c->op, "mse_loss")) ref_mse(c, in, out, os);
    else if (!strcmp(c->op, "reshape")) for (int64_t i = 0; i < n; i++) out[i] = mn_f32(in[0])[i];
    else if (!strcmp(c->op, "expand")) for (int64_t i = 0; i < n; i++) out[i] = mn_f32(in[0])[bidx(in[0]->shape, os, i)];
    else if (op->arity == 2)
        for (int64_t i = 0; i < n; i++)
            out[i] = ew2(c->op, mn_f32(in[0])[bidx(in[0]->shape, os, i)], mn_f32(in[1])[bidx(in[1]->shape, os, i)]);
    else for (int64_t i = 0; i < n; i++) out[i] = ew1(c->op, mn_f32(in[0])[i], c->attrs);
}

/* ---- graph for a case: f32 inputs are parameters x0.., i32 inputs constants ---- */

typedef struct { mn_params *P; mn_graph *g; mn_node *out, *loss; } case_graph;

static case_graph build(const op_case *c, mn_tensor **in, bool with_loss)
{
    case_graph cg = { mn_params_new(), NULL, NULL, NULL };
    cg.g = mn_graph_new(cg.P);
    mn_node *nodes[5];
    for (int i = 0; i < c->nin; i++) {
        if (c->dtype[i] == MN_I32) { nodes[i] = mn_constant(cg.g, MN_I32, c->shape[i], in[i]->data); continue; }
        if (c->gen[i] == G_LNSTATS) { nodes[i] = mn_op(cg.g, "layer_norm_stats", nodes, 1, c->attrs, sizeof(mn_ln_attrs)); continue; }
        if (c->gen[i] == G_PACKED) { nodes[i] = mn_op(cg.g, "pack_weight", nodes + 1, 1, c->attrs, sizeof(mn_matmul_attrs)); continue; }
        if (c->gen[i] == G_CESTATS) { nodes[i] = mn_op(cg.g, "cross_entropy_stats", nodes, 1, NULL, 0); continue; }
        char name[8];
        snprintf(name, sizeof name, "x%d", i);
        nodes[i] = mn_param(cg.g, name, c->shape[i], (mn_init){ 0 });
        memcpy(mn_params_get(cg.P, name)->data, in[i]->data, mn_tensor_bytes(in[i]));
    }
    const mn_op_def *op = mn_op_find(c->op);
    cg.out = mn_op(cg.g, c->op, nodes, c->nin, c->attrs, op->attr_size);
    ck_assert_msg(cg.out != NULL, "%s: %s", c->op, mn_graph_errmsg(cg.g));
    if (with_loss) {
        /* loss = sum(out * R) with a fixed random R: d loss / d out = R */
        mn_shape os = mn_node_shape(cg.out);
        float *r = malloc((size_t)mn_shape_numel(os) * sizeof *r);
        mn_rng_fill_uniform(r, mn_shape_numel(os), 77, 1, -1.0f, 1.0f);
        cg.loss = mn_sum_all(cg.g, mn_mul(cg.g, cg.out, mn_constant(cg.g, MN_F32, os, r)));
        free(r);
    }
    return cg;
}

static void free_graph(case_graph *cg) { mn_graph_free(cg->g); mn_params_free(cg->P); }

static char *describe(const op_case *c, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "%s(", c->op);
    for (int i = 0; i < c->nin && k < n; i++) {
        char s[64];
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", mn_shape_str(c->shape[i], s, sizeof s));
    }
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

START_TEST(forward_matches_reference)
{
    const op_case *c = &cases[_i];
    char d[256];
    describe(c, d, sizeof d);
    mn_tensor **in = make_inputs(c, 1000 + (uint64_t)_i);
    case_graph cg = build(c, in, false);
    const mn_node *outs[1] = { cg.out };
    mn_exec *ex = mn_compile(cg.g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s: %s", d, mn_graph_errmsg(cg.g));
    ck_assert_ok(mn_exec_run(ex));
    const mn_tensor *y = mn_exec_value(ex, cg.out);
    ck_assert_msg(y != NULL, "%s: no output value", d);
    int64_t n = mn_tensor_numel(y);
    double *ref = calloc((size_t)n, sizeof *ref);
    reference(c, in, ref, y->shape);
    /* f32 kernels vs a double reference: relative 1e-5 with a 1e-5 floor
     * covers accumulation over the longest reduced dim here (130 and 96). */
    for (int64_t i = 0; i < n; i++) {
        double got = y->dtype == MN_I32 ? (double)mn_i32(y)[i] : (double)mn_f32(y)[i];
        ck_assert_msg(got == ref[i] || fabs(got - ref[i]) <= 1e-5 + 1e-5 * fabs(ref[i]),
                      "%s: element %lld = %.8g, reference %.8g", d, (long long)i, got, ref[i]);
    }
    free(ref);
    mn_exec_free(ex);
    free_graph(&cg);
    free_inputs(in);
}
END_TEST

static double run_loss(mn_exec *ex, const mn_node *loss)
{
    mn_exec_set_step(ex, 0);              /* random ops draw the same numbers every run */
    ck_assert_ok(mn_exec_run(ex));
    return mn_f32(mn_exec_value(ex, loss))[0];
}

START_TEST(vjp_matches_finite_differences)
{
    const op_case *c = &cases[_i];
    if (!mn_op_differentiable(mn_op_find(c->op)) || c->fwd_only) return;
    char d[256];
    describe(c, d, sizeof d);
    mn_tensor **in = make_inputs(c, 2000 + (uint64_t)_i);
    case_graph cg = build(c, in, true);
    mn_exec *train = mn_compile(cg.g, cg.loss, NULL);
    ck_assert_msg(train != NULL, "%s: %s", d, mn_graph_errmsg(cg.g));
    const mn_node *outs[1] = { cg.loss };
    mn_exec *fwd = mn_compile(cg.g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(fwd != NULL, "%s: %s", d, mn_graph_errmsg(cg.g));
    ck_assert_ok(mn_exec_run(train));     /* step 0, like every finite-difference run */
    /* Central differences in f32 with h = 1e-2: truncation error ~h^2 |f'''|/6
     * ~ 2e-5 and rounding ~ eps_f32 |loss| / h ~ 1e-4 for the losses here,
     * so atol 2e-3 + rtol 1e-2 passes a correct VJP by a wide margin, while
     * a wrong one (a missing term, a transposed factor) is off by O(1). Inputs
     * of nonsmooth ops stay >= 0.1 from their kinks (G_AWAY). */
    const double h = 1e-2;
    for (int i = 0; i < c->nin; i++) {
        if (c->dtype[i] != MN_F32 || c->gen[i] == G_LNSTATS || c->gen[i] == G_PACKED || c->gen[i] == G_CESTATS) continue;
        char name[8];
        snprintf(name, sizeof name, "x%d", i);
        float *x = mn_f32(mn_params_get(cg.P, name));
        const float *g = mn_f32(mn_params_get_grad(cg.P, name));
        int64_t n = mn_tensor_numel(in[i]), checks = n < 48 ? n : 48;
        for (int64_t t = 0; t < checks; t++) {
            int64_t k = n <= 48 ? t : (int64_t)(mn_rng_uniform(5, (uint64_t)i, (uint64_t)t) * (float)n);
            float x0 = x[k];
            x[k] = (float)(x0 + h); double lp = run_loss(fwd, cg.loss);
            x[k] = (float)(x0 - h); double lm = run_loss(fwd, cg.loss);
            x[k] = x0;
            double num = (lp - lm) / (2 * h);
            ck_assert_msg(fabs(num - g[k]) <= 2e-3 + 1e-2 * fabs(num),
                          "%s: d loss / d input %d [%lld]: VJP %.6g, finite difference %.6g", d, i, (long long)k, (double)g[k], num);
        }
    }
    mn_exec_free(fwd);
    mn_exec_free(train);
    free_graph(&cg);
    free_inputs(in);
}
END_TEST

/* The registry decides what must be tested: every op needs a forward case,
 * and every differentiable op's cases are gradient-checked above. */
/* cast f32 -> i32 truncates toward zero in range; beyond i32's range it
 * saturates and NaN gives 0 (a plain C conversion would be undefined). */
START_TEST(cast_to_i32_saturates)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(6));
    const mn_node *y = mn_cast(g, x, MN_I32);
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .threads = 1, .outputs = &y, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    const float in[6] = { NAN, 3e9f, -3e9f, 2.7f, -2.7f, INFINITY };
    const int32_t want[6] = { 0, INT32_MAX, INT32_MIN, 2, -2, INT32_MAX };
    memcpy(mn_exec_input(ex, 0)->data, in, sizeof in);
    ck_assert_int_eq(mn_exec_run(ex), MN_OK);
    const int32_t *got = mn_exec_value(ex, y)->data;
    for (int i = 0; i < 6; i++) ck_assert_int_eq(got[i], want[i]);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(every_registered_op_has_cases)
{
    for (int id = 0; id < mn_op_count(); id++) {
        const char *name = mn_op_name(mn_op_at(id));
        int found = 0;
        for (int k = 0; k < NCASES; k++) found += !strcmp(cases[k].op, name);
        ck_assert_msg(found > 0, "op \"%s\" is in the registry but has no test case", name);
        char why[256];
        ck_assert_msg(mn__op_check(mn_op_at(id), why, sizeof why) == MN_OK, "built-in %s", why);
        ck_assert_msg(mn_op_doc(mn_op_at(id)) && *mn_op_doc(mn_op_at(id)), "%s: no doc line", name);
    }
    for (int k = 0; k < NCASES; k++) ck_assert_msg(mn_op_find(cases[k].op) != NULL, "case for unknown op %s", cases[k].op);
}
END_TEST

/* The vectorisable transcendentals against libm in double, over their whole
 * range: log (denormals to huge), log1p (tiny to huge), softplus, exp, and
 * the lane reductions against plain double loops. */
START_TEST(fastmath_accuracy)
{
    double worst_log = 0, worst_log1p = 0, worst_sp = 0, worst_exp = 0, worst_tanh = 0, worst_sig = 0;
    for (double x = 1e-44; x < 1e38; x *= 1.0137) {
        float f = (float)x;
        worst_log = fmax(worst_log, fabs(mn__logf(f) - log((double)f)) / fmax(fabs(log((double)f)), 1e-30));
    }
    for (double u = 1e-30; u < 1e30; u *= 1.0173) {
        float f = (float)u;
        worst_log1p = fmax(worst_log1p, fabs(mn__log1pf(f) - log1p((double)f)) / log1p((double)f));
        float neg = -f / (1 + f);                     /* (-1, 0) */
        if (neg > -1.0f) worst_log1p = fmax(worst_log1p, fabs(mn__log1pf(neg) - log1p((double)neg)) / fabs(log1p((double)neg)));
    }
    for (float x = -100; x < 100; x += 0.0137f) {
        double sp = x > 30 ? x : log1p(exp((double)x));
        worst_sp = fmax(worst_sp, fabs(mn__softplusf(x) - sp) / fmax(sp, 1e-30));
        worst_exp = x < 88 && x > -87 ? fmax(worst_exp, fabs(mn__expf(x) - exp((double)x)) / exp((double)x)) : worst_exp;
        worst_tanh = fmax(worst_tanh, fabs(mn__tanhf(x) - tanh((double)x)));
        if (x > -80) worst_sig = fmax(worst_sig, fabs(mn__sigmoidf(x) - 1 / (1 + exp(-(double)x))) * (1 + exp(-(double)x)));
    }
    ck_assert_msg(worst_log < 3e-7, "log: worst relative error %g", worst_log);
    ck_assert_msg(worst_log1p < 5e-7, "log1p: worst relative error %g", worst_log1p);
    ck_assert_msg(worst_sp < 5e-7, "softplus: worst relative error %g", worst_sp);
    ck_assert_msg(worst_exp < 3e-7, "exp: worst relative error %g", worst_exp);
    ck_assert_msg(worst_tanh < 3e-7, "tanh: worst absolute error %g", worst_tanh);
    ck_assert_msg(worst_sig < 3e-7, "sigmoid: worst relative error %g", worst_sig);
    ck_assert(isnan(mn__expf(NAN)) && isnan(mn__tanhf(NAN)) && isnan(mn__sigmoidf(NAN)));
    ck_assert(mn__expf(-INFINITY) == 0.0f && mn__expf(-100.0f) == 0.0f && isfinite(mn__expf(INFINITY)));
    ck_assert(mn__tanhf(INFINITY) == 1.0f && mn__tanhf(-INFINITY) == -1.0f && mn__tanhf(0.0f) == 0.0f);
    ck_assert(mn__sigmoidf(INFINITY) == 1.0f && mn__sigmoidf(-INFINITY) >= 0.0f && mn__sigmoidf(-INFINITY) < 1e-38f);
    ck_assert(mn__logf(0.0f) == -INFINITY && mn__logf(INFINITY) == INFINITY);
    ck_assert(isnan(mn__logf(-1.0f)) && isnan(mn__logf(NAN)) && mn__log1pf(-1.0f) == -INFINITY);
    ck_assert(mn__log1pf(1e-30f) == 1e-30f && mn__softplusf(-200.0f) == 0.0f && mn__softplusf(200.0f) == 200.0f);
    float v[1000];
    for (int n = 0; n <= 1000; n += 37) {
        double s = 0, d = 0;
        float m = -INFINITY;
        for (int i = 0; i < n; i++) { v[i] = sinf((float)i * 0.37f) * 10; s += v[i]; d += (double)v[i] * v[i]; m = fmaxf(m, v[i]); }
        ck_assert(mn__row_max(v, n) == m);
        ck_assert(fabs(mn__row_sum(v, n) - s) <= 1e-9 * (1 + fabs(s)));
        ck_assert(fabs(mn__row_dot(v, v, n) - d) <= 1e-9 * (1 + d));
        if (n > 3) { v[n / 2] = NAN; ck_assert(isnan(mn__row_max(v, n))); }
    }
}
END_TEST

/* A sum over the rows of [R, K] gives each column's sequential double sum
 * from row 0, rounded once, compiled for 1 and 2 threads: the column
 * blocks of the kernel (full ones and a tail of 56) change no bit. In a
 * training run and big (1 MB out), so that 2 threads share the blocks. */
START_TEST(column_sums_are_sequential_double_sums)
{
    const int64_t R = 8, K = 262200;    /* 1 MB of output: a big step, alone in its level with both threads */
    float *x = malloc(sizeof(float) * R * K);
    mn_rng_fill_uniform(x, R * K, 11, 1, -3.0f, 3.0f);
    for (int threads = 1; threads <= 2; threads++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        mn_node *in = mn_param(g, "x", MN_SHAPE(R, K), (mn_init){ .kind = MN_INIT_ZEROS });
        const int axis[1] = { 0 };
        const mn_node *outs[1] = { mn_sum(g, in, 1, axis, false) };
        mn_node *loss = mn_sum_all(g, mn_square(g, (mn_node *)outs[0]));   /* a training run: never the 1-thread tiny rule */
        mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = threads, .outputs = outs, .noutputs = 1 });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        memcpy(mn_f32(mn_params_value(P, 0)), x, sizeof(float) * R * K);
        ck_assert_ok(mn_exec_run(ex));
        const float *y = mn_f32(mn_exec_value(ex, outs[0]));
        for (int64_t j = 0; j < K; j++) {
            double s = 0;
            for (int64_t r = 0; r < R; r++) s += x[r * K + j];
            ck_assert_msg(y[j] == (float)s, "%d threads, column %lld: %.9g, sequential sum %.9g", threads, (long long)j,
                          (double)y[j], (double)(float)s);
        }
        mn_exec_free(ex);
        mn_graph_free(g);
        mn_params_free(P);
    }
    free(x);
}
END_TEST

/* Every built-in op with attributes has a schema: fields in offset order,
 * inside the struct, never overlapping. */
START_TEST(every_attribute_struct_has_a_schema)
{
    for (int id = 0; id < mn_op_count(); id++) {
        const mn_op_def *op = mn_op_at(id);
        if (!op->attr_size) { ck_assert_msg(op->attr_fields == NULL, "%s: a schema without attributes", op->name); continue; }
        ck_assert_msg(op->attr_fields != NULL, "%s: attributes without a schema", op->name);
        size_t end = 0;
        for (const mn_attr_field *f = op->attr_fields; f->name; f++) {
            size_t sz = f->type == MN_ATTR_BOOL ? 1 : f->type == MN_ATTR_INT64 || f->type == MN_ATTR_DOUBLE ? 8
                      : f->type == MN_ATTR_SHAPE ? sizeof(mn_shape) : f->type == MN_ATTR_DIMS ? MN_MAX_DIMS * sizeof(int) : 4;
            ck_assert_msg(f->offset >= end, "%s.%s overlaps the field before it", op->name, f->name);
            end = f->offset + sz;
            ck_assert_msg(end <= op->attr_size, "%s.%s lies outside its %zu-byte struct", op->name, f->name, op->attr_size);
        }
        ck_assert_msg(end > 0, "%s: an empty schema", op->name);
    }
}
END_TEST

/* self_attention against the same attention composed of matmul, scale,
 * masked softmax and permutes (how models/ built it before): forward and
 * the gradient of qkv over T = 150 (three query blocks, the last partial),
 * causal with key padding, with and without dropout, on 1 and 2 threads. */
static mn_node *composed_attention(mn_graph *g, mn_node *qkv, int64_t B, int64_t T, int64_t H, int64_t dh, mn_node *pad, float drop)
{
    static const int perm[4] = { 0, 2, 1, 3 };
    mn_node *p[3];
    mn_chunk(g, qkv, 2, 3, p);
    for (int i = 0; i < 3; i++) p[i] = mn_permute(g, mn_reshape(g, p[i], MN_SHAPE(B, T, H, dh)), 4, perm);
    mn_node *s = mn_scale(g, mn_matmul(g, p[0], p[1], false, true), 1.0f / sqrtf((float)dh));
    mn_node *mask = mn_reshape(g, mn_where(g, pad, mn_scalar(g, -INFINITY), mn_scalar(g, 0.0f)), MN_SHAPE(B, 1, 1, T));
    mn_node *att = mn_softmax_masked(g, s, -1, mask, true);
    if (drop > 0) att = mn_op(g, "dropout", &att, 1, &(mn_dropout_attrs){ drop, true, 4242 }, sizeof(mn_dropout_attrs));
    mn_node *y = mn_matmul(g, att, p[2], false, false);
    return mn_reshape(g, mn_permute(g, y, 4, perm), MN_SHAPE(B, T, H * dh));
}

static void attention_run(bool fused, int threads, float drop, const float *x, const int32_t *pad, const float *r, float *y, float *dx)
{
    const int64_t B = 2, T = 150, H = 3, dh = 8, E = H * dh;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *qkv = mn_param(g, "qkv", MN_SHAPE(B, T, 3 * E), (mn_init){ 0 });
    memcpy(mn_f32(mn_params_get(P, "qkv")), x, sizeof(float) * (size_t)(B * T * 3 * E));
    mn_node *pn = mn_constant(g, MN_I32, MN_SHAPE(B, T), pad);
    mn_attention_attrs a = { H, true, 1.0f / sqrtf((float)dh), drop, 4242 };   /* the dropout stream the composed version uses */
    mn_node *in[2] = { qkv, pn };
    mn_node *out = fused ? mn_op(g, "self_attention", in, 2, &a, sizeof a) : composed_attention(g, qkv, B, T, H, dh, pn, drop);
    mn_node *loss = mn_sum_all(g, mn_mul(g, out, mn_constant(g, MN_F32, MN_SHAPE(B, T, E), r)));
    const mn_node *outs[1] = { out };
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = threads, .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    memcpy(y, mn_f32(mn_exec_value(ex, out)), sizeof(float) * (size_t)(B * T * E));
    memcpy(dx, mn_f32(mn_params_get_grad(P, "qkv")), sizeof(float) * (size_t)(B * T * 3 * E));
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}

static void expect_close(const char *what, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-5f + 1e-4f * fabsf(b[i]), "%s[%lld]: fused %.8g, composed %.8g", what, (long long)i, a[i],
                      b[i]);
}

START_TEST(self_attention_matches_composed_ops)
{
    const int64_t nx = 2 * 150 * 72, ny = 2 * 150 * 24;
    float *x = malloc(sizeof(float) * nx), *r = malloc(sizeof(float) * ny), *y[2], *dx[2];
    int32_t pad[300];
    mn_rng_fill_uniform(x, nx, 5, 1, -2.0f, 2.0f);
    mn_rng_fill_uniform(r, ny, 6, 1, -1.0f, 1.0f);
    for (int i = 0; i < 300; i++) pad[i] = i % 7 == 3 || (i >= 150 && i < 153);   /* sequence 1: its first 3 keys padded */
    for (int k = 0; k < 2; k++) { y[k] = malloc(sizeof(float) * ny); dx[k] = malloc(sizeof(float) * nx); }
    for (int threads = 1; threads <= 2; threads++)
        for (int drop = 0; drop <= 1; drop++) {   /* dropout 0.25 on the probabilities: the same masks as the dropout op */
            attention_run(true, threads, drop * 0.25f, x, pad, r, y[0], dx[0]);
            attention_run(false, threads, drop * 0.25f, x, pad, r, y[1], dx[1]);
            expect_close("y", y[0], y[1], ny);
            expect_close("dqkv", dx[0], dx[1], nx);
        }
    for (int k = 0; k < 2; k++) { free(y[k]); free(dx[k]); }
    free(x); free(r);
}
END_TEST

/* Blocks of queries: at T = 2048 with 4 heads the forward and backward
 * arenas stay below an eighth of one T x T score matrix per head (64
 * MiB; the composed ops hold several). */
START_TEST(self_attention_never_holds_t_by_t)
{
    const int64_t T = 2048, E = 64;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *qkv = mn_param(g, "qkv", MN_SHAPE(1, T, 3 * E), (mn_init){ 0 });
    mn_node *loss = mn_sum_all(g, mn_self_attention(g, qkv, 4, true, NULL, 0.0f));
    mn_exec *ex = mn_compile(g, loss, NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    mn_exec_stats st = mn_exec_get_stats(ex);
    ck_assert_msg(st.arena_bytes < 4 * T * T * 4 / 8, "arena %lld bytes", (long long)st.arena_bytes);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(registry_lookup)
{
    ck_assert_int_ge(mn_op_count(), 20);
    ck_assert_ptr_nonnull(mn_op_find("matmul"));
    ck_assert_str_eq(mn_op_name(mn_op_find("matmul")), "matmul");
    for (int id = 0; id < mn_op_count(); id++) ck_assert_ptr_eq(mn_op_find(mn_op_name(mn_op_at(id))), mn_op_at(id));
    ck_assert_ptr_null(mn_op_find("no_such_op"));
    ck_assert_ptr_null(mn_op_at(-1));
    ck_assert_ptr_null(mn_op_at(mn_op_count()));
    ck_assert(!mn_op_differentiable(mn_op_find("cross_entropy_grad")));
    ck_assert(mn_op_differentiable(mn_op_find("tanh")));
    ck_assert_int_eq(mn_op_arity(mn_op_find("cross_entropy_grad")), -1);     /* its stats are optional */
}
END_TEST

/* The registered tanh and sigmoid kernels (the fused cells' members; by 16
 * lanes where AVX-512 is present, ops/elementwise.c) give fastmath.h's
 * scalar formulas bit for bit: NaNs of both signs, infinities, signed
 * zeros, both clamps, subnormals, any bit pattern, and every tail length
 * from 1 to 40 (masked lanes). */
START_TEST(tanh_and_sigmoid_kernels_match_the_scalar_formulas)
{
    enum { N = 1 << 16 };
    static float x[N], got[N];
    uint32_t r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 1103515245u + 12345u;
        uint32_t bits = r ^ (r >> 7) << 9;
        memcpy(&x[i], &bits, sizeof bits);
        if (i % 3 == 1) x[i] = (float)((int)(r >> 8) % 40000) * 0.001f - 20.0f;     /* around both clamps */
    }
    const float special[] = { NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 88.5f, -87.5f, 9.5f, -9.5f, 1e-40f, -1e-40f };
    memcpy(x, special, sizeof special);
    const char *names[] = { "tanh", "sigmoid" };
    for (int k = 0; k < 2; k++) {
        const mn_op_def *op = mn_op_find(names[k]);
        for (int n = 1; n <= N; n = n < 40 ? n + 1 : n == N ? N + 1 : N) {
            const float *in[1] = { x + (n < 40 ? 3 : 0) };
            op->traits.pointwise(got, in, n, NULL);
            for (int i = 0; i < n; i++) {
                float want = k ? mn__sigmoidf(in[0][i]) : mn__tanhf(in[0][i]);
                ck_assert_msg(!memcmp(&want, &got[i], sizeof want), "%s(%a) of %d: %a, scalar %a", names[k], in[0][i], n, got[i], want);
            }
        }
    }
}
END_TEST

int main(void)
{
    const op_case table[] = {
        BIN_ALL("add", G_NORMAL), BIN_ALL("sub", G_NORMAL), BIN_ALL("mul", G_NORMAL), BIN_ALL("div", G_POS),
        UN_ALL("neg", G_NORMAL), UN_ALL("exp", G_NORMAL), UN_ALL("log", G_POS), UN_ALL("sqrt", G_POS),
        UN_ALL("square", G_NORMAL), UN_ALL("tanh", G_NORMAL), UN_ALL("sigmoid", G_NORMAL), UN_ALL("relu", G_AWAY),
        { "scale", 1, { S(5, 7, 3) }, .attrs = &(mn_scale_attrs){ -1.5f } },
        { "scale", 1, { SC }, .attrs = &(mn_scale_attrs){ 3.0f } },
        { "scale", 1, { S(64, 130) }, .attrs = &(mn_scale_attrs){ 0.25f } },
        { "relu_grad", 2, { S(5, 7, 3), S(5, 7, 3) }, .gen = { G_AWAY, G_NORMAL } },
        { "relu_grad", 2, { S(64, 130), S(64, 130) }, .gen = { G_AWAY, G_NORMAL } },
        HELPER("tanh_grad", G_NORMAL), HELPER("sigmoid_grad", G_NORMAL),
        MM(false, false, S(5, 7), S(7, 3)), MM(true, false, S(7, 5), S(7, 3)),
        /* one panel, tail rows; three panels (a pair and one), 26 rows over [2, 13]; K = 1 */
        MMP(true, S(5, 7), S(9, 7), 1, 7), MMP(false, S(2, 13, 6), S(6, 37), 3, 6), MMP(true, S(9, 1), S(20, 1), 2, 1),
        PACK(true, S(9, 7)), PACK(false, S(6, 37)), PACK(true, S(33, 2)),
        MM(false, true, S(5, 7), S(3, 7)), MM(true, true, S(7, 5), S(3, 7)),
        MM(false, false, S(2, 5, 7), S(2, 7, 3)), MM(true, true, S(2, 7, 5), S(2, 3, 7)),
        MM(false, false, S(2, 5, 7), S(7, 3)), MM(false, true, S(4, 2, 5, 7), S(3, 7)),
        MM(true, false, S(2, 7, 5), S(7, 3)), MM(false, false, S(5, 7), S(2, 7, 3)),
        MM(false, false, S(3, 1, 5, 7), S(2, 7, 4)), MM(false, false, S(1, 5, 7), S(3, 7, 2)),
        MM(false, false, S(64, 96), S(96, 80)), MM(false, true, S(8, 16, 64), S(8, 32, 64)),
        MMA(true, false, S(5, 3), S(7, 5), S(7, 3)), MMA(false, true, S(5, 3), S(5, 7), S(3, 7)),
        MMA(true, false, S(96, 80), S(64, 96), S(64, 80)),
        PERM(S(5, 7, 3), 3, 2, 0, 1), PERM(S(5, 7, 3), 3, 1, 0, 2), PERM(S(5, 7, 3), 3, 0, 2, 1),
        PERM(S(2, 3, 4, 5), 4, 3, 1, 0, 2), PERM(S(64, 130), 2, 1, 0), PERM(S(5), 1, 0),
        RESHAPE(S(5, 7, 3), S(35, 3)), RESHAPE(S(5, 7, 3), S(-1)), RESHAPE(S(5, 7, 3), S(3, -1, 5)),
        RESHAPE(S(1), SC), RESHAPE(S(64, 130), S(130, 64)),
        EXPAND(S(5, 1, 3), S(4, 5, 7, 3)), EXPAND(S(3), S(5, 3)), EXPAND(SC, S(2, 3)), EXPAND(S(1), S(7)),
        EXPAND(S(64, 1), S(64, 130)),
        RED("sum", S(5, 7, 3), 1, false), RED("sum", S(5, 7, 3), 2, true), RED("sum", S(5, 7, 3), 4, false),
        RED("sum", S(5, 7, 3), 5, true), RED("sum", S(5, 7, 3), 7, false), RED("sum", S(5, 7, 3), 6, false),
        RED("sum", S(2, 3, 4, 5), 10, true), RED("sum", SC, 0, false), RED("sum", S(64, 130), 1, false),
        RED("sum", S(64, 130), 2, true),
        RED("mean", S(5, 7, 3), 1, false), RED("mean", S(5, 7, 3), 2, true), RED("mean", S(5, 7, 3), 4, true),
        RED("mean", S(5, 7, 3), 7, false), RED("mean", S(2, 3, 4, 5), 5, false), RED("mean", S(64, 130), 2, false),
        AX("softmax", S(5, 7, 3), 0), AX("softmax", S(5, 7, 3), 1), AX("softmax", S(5, 7, 3), -1),
        AX("softmax", S(7), 0), AX("softmax", S(64, 130), 1),
        AX("log_softmax", S(5, 7, 3), 0), AX("log_softmax", S(5, 7, 3), 1), AX("log_softmax", S(5, 7, 3), 2),
        AX("log_softmax", S(7), -1), AX("log_softmax", S(64, 130), -1),
        AXG("softmax_grad", S(5, 7, 3), 1), AXG("softmax_grad", S(64, 130), -1),
        AXG("log_softmax_grad", S(5, 7, 3), 0), AXG("log_softmax_grad", S(64, 130), 1),
        CE("cross_entropy", S(5, 7), S(5), 7, MN_REDUCE_MEAN, -100, 0.0f, 0, 0),
        CE("cross_entropy", S(5, 7), S(5), 7, MN_REDUCE_SUM, -100, 0.0f, 0, 0),
        CE("cross_entropy", S(5, 7), S(5), 7, MN_REDUCE_NONE, -100, 0.0f, 0, 0),
        CE("cross_entropy", S(9, 7), S(9), 7, MN_REDUCE_MEAN, -100, 0.0f, 3, 0),
        CE("cross_entropy", S(9, 7), S(9), 7, MN_REDUCE_MEAN, 2, 0.1f, 0, 0),
        CE("cross_entropy", S(9, 7), S(9), 7, MN_REDUCE_NONE, -100, 0.2f, 4, 0),
        CE("cross_entropy", S(4, 5, 3), S(4, 3), 5, MN_REDUCE_MEAN, -100, 0.0f, 5, 0),
        CE("cross_entropy", S(6), SC, 6, MN_REDUCE_MEAN, -100, 0.0f, 0, 0),
        CE("cross_entropy", S(64, 96), S(64), 96, MN_REDUCE_MEAN, -100, 0.1f, 0, 0),
        CE("cross_entropy_grad", S(9, 7), S(9), 7, MN_REDUCE_MEAN, -100, 0.1f, 3, 1),
        CE("cross_entropy_grad", S(4, 5, 3), S(4, 3), 5, MN_REDUCE_NONE, -100, 0.0f, 5, 1),
        CE("cross_entropy_grad", S(64, 96), S(64), 96, MN_REDUCE_SUM, -100, 0.0f, 0, 1),
        { "cross_entropy_stats", 1, { S(9, 7) } }, { "cross_entropy_stats", 1, { S(4, 5, 3) } },
        { "cross_entropy_stats", 1, { S(6) } }, { "cross_entropy_stats", 1, { S(3, 300) } },
        CES("cross_entropy", S(9, 7), S(9), 7, MN_REDUCE_MEAN, 2, 0.1f, 0, 0),
        CES("cross_entropy", S(9, 7), S(9), 7, MN_REDUCE_NONE, -100, 0.2f, 4, 0),
        CES("cross_entropy", S(9, 7), S(9), 7, MN_REDUCE_SUM, -100, 0.0f, 3, 0),
        CES("cross_entropy", S(4, 5, 3), S(4, 3), 5, MN_REDUCE_MEAN, -100, 0.0f, 5, 0),
        CES("cross_entropy", S(6), SC, 6, MN_REDUCE_MEAN, -100, 0.0f, 0, 0),
        CES("cross_entropy", S(3, 300), S(3), 300, MN_REDUCE_MEAN, -100, 0.1f, 0, 0),
        CES("cross_entropy_grad", S(9, 7), S(9), 7, MN_REDUCE_MEAN, -100, 0.1f, 3, 1),
        CES("cross_entropy_grad", S(4, 5, 3), S(4, 3), 5, MN_REDUCE_NONE, -100, 0.0f, 5, 1),
        CES("cross_entropy_grad", S(64, 96), S(64), 96, MN_REDUCE_SUM, -100, 0.0f, 0, 1),
        CES("cross_entropy_grad", S(3, 300), S(3), 300, MN_REDUCE_MEAN, -100, 0.1f, 0, 1),
        MSE(S(5, 7, 3), MN_REDUCE_MEAN), MSE(S(5, 7, 3), MN_REDUCE_SUM), MSE(S(5, 7, 3), MN_REDUCE_NONE),
        MSE(SC, MN_REDUCE_MEAN), MSE(S(64, 130), MN_REDUCE_MEAN),
        EXT_ALL("maximum"), EXT_ALL("minimum"),
        BIN("gt", G_NORMAL, S(5, 7, 3), S(3)), BIN("ge", G_NORMAL, S(5, 1), S(1, 4)), BIN("lt", G_NORMAL, S(5, 7), SC),
        BIN("le", G_NORMAL, S(4, 6), S(4, 6)), BIN("eq", G_MASK, S(6), S(6)), BIN("ne", G_MASK, S(3, 4), S(4)),
        { "maximum", 2, { S(6), S(6) }, .gen = { G_MASK, G_MASK } },          /* ties: forward value */
        ACT_ALL("gelu", G_NORMAL, MN_ACT_GELU_ERF, 0, 0), ACT_ALL("gelu", G_NORMAL, MN_ACT_GELU_TANH, 0, 0),
        ACT_ALL("softplus", G_NORMAL, 0, 1, 20), ACT1("softplus", G_NORMAL, S(5, 7, 3), 0, 2, 20),
        UN_ALL("abs", G_AWAY), UN_ALL("sign", G_AWAY), UN("sign", G_MASK, S(4, 3)),
        ACT_ALL("clamp", G_DISTINCT, MN_ACT_CLAMP, -0.33f, 0.27f), ACT1("clamp", G_DISTINCT, S(5, 7, 3), MN_ACT_CLAMP, -INFINITY, 0.27f),
        ACT_ALL("pow", G_POS, 0, 2.5f, 0), ACT1("pow", G_POS, S(5, 7, 3), 0, -1.5f, 0), ACT1("pow", G_NORMAL, S(5, 7, 3), 0, 3, 0),
        ACT_ALL("leaky_relu", G_AWAY, MN_ACT_LEAKY_RELU, 0.01f, 0), ACT1("leaky_relu", G_AWAY, S(5, 7, 3), MN_ACT_LEAKY_RELU, 0.2f, 0),
        ACT_ALL("elu", G_AWAY, MN_ACT_ELU, 1.0f, 0), ACT1("elu", G_AWAY, S(5, 7, 3), MN_ACT_ELU, 0.5f, 0),
        UN_ALL("silu", G_NORMAL), UN_ALL("reciprocal", G_POS), UN_ALL("rsqrt", G_POS), UN_ALL("erf", G_NORMAL),
        AG(MN_ACT_GELU_ERF, 0, 0, G_NORMAL), AG(MN_ACT_GELU_TANH, 0, 0, G_NORMAL), AG(MN_ACT_CLAMP, -0.5f, 0.5f, G_NORMAL),
        AG(MN_ACT_LEAKY_RELU, 0.01f, 0, G_AWAY), AG(MN_ACT_ELU, 1.0f, 0, G_NORMAL), AG(MN_ACT_SILU, 0, 0, G_NORMAL),
        { "linear", 3, { S(5, 7), S(4, 7), S(4) } }, { "linear", 2, { S(5, 7), S(4, 7) } },
        { "linear", 3, { S(2, 5, 7), S(4, 7), S(4) } }, { "linear", 3, { S(7), S(4, 7), S(4) } },
        { "linear", 3, { S(64, 96), S(80, 96), S(80) } },
        SQ("squeeze", S(5, 1, 3), 1, false), SQ("squeeze", S(1, 5, 1, 3), 0, true), SQ("squeeze", S(5, 7), 0, false),
        SQ("unsqueeze", S(5, 7), 0, false), SQ("unsqueeze", S(5, 7), -1, false), SQ("unsqueeze", S(5, 7), 1, false),
        SL(S(5, 7, 3), 1, 1, 5, 1), SL(S(5, 7, 3), 0, -3, 100, 1), SL(S(5, 7, 3), 2, 0, 3, 2), SL(S(5, 7, 3), -2, -6, -1, 3),
        SL(S(64, 130), 1, 10, 120, 7), SL(S(5, 7), 1, 4, 2, 1),
        SLB(S(5, 7, 3), 1, 1, 5, 1), SLB(S(5, 7, 3), 2, 0, 3, 2), SLB(S(64, 130), 1, 10, 120, 7),
        CAT("concat", 0, S(2, 3), S(4, 3)), CAT("concat", 1, S(5, 2, 3), S(5, 4, 3)), CAT("concat", -1, S(5, 7, 1), S(5, 7, 2)),
        { "concat", 3, { S(4, 2), S(4, 1), S(4, 5) }, .attrs = &(mn_cat_attrs){ 1 } },
        CAT("stack", 0, S(5, 3), S(5, 3)), CAT("stack", 1, S(5, 3), S(5, 3)), CAT("stack", 2, S(5, 3), S(5, 3)),
        { "stack", 3, { S(4), S(4), S(4) }, .attrs = &(mn_cat_attrs){ 0 } },
        IDX("index_select", 0, S(5, 7), S(9), 5), IDX("index_select", 1, S(5, 7, 3), S(4), 7),
        IDX("index_select", -1, S(5, 7, 3), S(6), 3), IDX("index_select", 0, S(100, 64), S(300), 100),
        IDXB("index_select_backward", 0, S(9, 7), S(9), S(5, 7), 5), IDXB("index_select_backward", 1, S(5, 4, 3), S(4), S(5, 7, 3), 7),
        IDX("gather", 0, S(5, 7), S(3, 7), 5), IDX("gather", 1, S(5, 7), S(5, 4), 7), IDX("gather", 2, S(5, 7, 3), S(4, 6, 5), 3),
        IDXB("gather_backward", 1, S(5, 4), S(5, 4), S(5, 7), 7), IDXB("gather_backward", 0, S(3, 7), S(3, 7), S(5, 7), 5),
        { "embedding", 2, { S(4, 3), S(6, 5) }, { MN_I32, MN_F32 }, { G_CLASS }, .classes = 6 },
        { "embedding", 2, { S(40), S(5, 8) }, { MN_I32, MN_F32 }, { G_CLASS }, .classes = 5 },   /* many repeats */
        { "embedding", 2, { S(32, 40), S(100, 64) }, { MN_I32, MN_F32 }, { G_CLASS }, .classes = 100 },
        { "where", 3, { S(5, 7, 3), S(5, 7, 3), S(5, 7, 3) }, .gen = { G_MASK } },
        { "where", 3, { S(7, 1), S(5, 7, 3), S(3) }, .gen = { G_MASK } },
        { "where", 3, { S(5, 7), S(5, 7), SC }, { MN_I32 }, { G_MASK } },
        { "where", 3, { S(64, 130), S(64, 130), S(130) }, .gen = { G_MASK } },
        AXR("max", S(5, 7, 3), 1, false), AXR("max", S(5, 7, 3), 0, true), AXR("max", S(5, 7, 3), -1, false), AXR("max", S(64, 130), 1, false),
        AXR("min", S(5, 7, 3), 1, true), AXR("min", S(5, 7, 3), 2, false), AXR("min", S(64, 130), 0, false),
        AXR("argmax", S(5, 7, 3), 1, false), AXR("argmax", S(5, 7, 3), 2, true), AXR("argmin", S(5, 7, 3), 0, false),
        AXR("argmin", S(64, 130), 1, true),
        AXR("logsumexp", S(5, 7, 3), 0, false), AXR("logsumexp", S(5, 7, 3), 1, true), AXR("logsumexp", S(5, 7, 3), 2, false),
        AXR("logsumexp", S(64, 130), 1, false),
        VAR("var", S(5, 7, 3), 2, false, 1), VAR("var", S(5, 7, 3), 5, true, 0), VAR("var", S(5, 7, 3), 7, false, 1),
        VAR("var", S(64, 130), 2, false, 1),
        VAR("std", S(5, 7, 3), 1, false, 1), VAR("std", S(5, 7, 3), 6, true, 0), VAR("std", S(64, 130), 1, false, 1),
        ATT(S(2, 5, 12), 2, false, 0.7f), ATT(S(3, 4, 6), 1, true, 1.0f), ATT(S(2, 70, 12), 2, true, 0.5f), /* 70: two query blocks */
        ATTP(S(2, 6, 12), 2, false, 0.7f), ATTP(S(2, 70, 6), 1, true, 0.5f),
        ATTG(S(2, 5, 12), 2, false, 0.7f), ATTG(S(2, 70, 12), 2, true, 0.5f), ATTGP(S(2, 6, 12), 2, false, 0.7f),
        ATTGP(S(2, 70, 6), 1, true, 0.5f),
        { "softmax", 2, { S(2, 5, 7), S(5, 7) }, .attrs = &(mn_axis_attrs){ -1, false } },
        { "softmax", 2, { S(2, 3, 5, 7), S(2, 1, 1, 7) }, .attrs = &(mn_axis_attrs){ 3, false } },
        { "softmax", 1, { S(2, 5, 7) }, .attrs = &(mn_axis_attrs){ -1, true } },
        { "softmax", 2, { S(2, 6, 6), S(6, 6) }, .attrs = &(mn_axis_attrs){ -1, true } },
        { "softmax", 1, { S(4, 32, 32) }, .attrs = &(mn_axis_attrs){ -1, true } },
        { "log_softmax", 2, { S(2, 5, 7), S(7) }, .attrs = &(mn_axis_attrs){ -1, false } },
        { "log_softmax", 1, { S(3, 7, 9) }, .attrs = &(mn_axis_attrs){ 2, true }, .fwd_only = true },  /* -inf entries */
        { "log_softmax", 2, { S(3, 7, 9), S(7, 9) }, .attrs = &(mn_axis_attrs){ 2, false } },
        LNS(S(5, 7, 3), 1), LNS(S(5, 7, 3), 2), LNS(S(64, 130), 1),
        LN(S(5, 3, 8), 1, 4, S(8), S(8)), LN(S(5, 3, 8), 1, 2, S(8), S(8)), LN(S(5, 3, 8), 1, 3, S(8), S(8)),
        LN(S(5, 4, 6), 2, 4, S(4, 6), S(4, 6)),
        LN(S(5, 8), 1, 3, S(8), S(8)), LN(S(64, 130), 1, 4, S(130), S(130)),
        LNB(S(5, 7, 3), 1, S(3)), LNB0(S(5, 7, 3), 2), LNB(S(64, 130), 1, S(130)),
        LNPG(S(5, 7, 3), 1), LNPG(S(5, 7, 3), 2), LNPG(S(300, 130), 1),
        DROP(S(5, 7, 3), 0.3f, true, 17), DROP(S(5, 7, 3), 0.3f, false, 17), DROP(S(64, 130), 0.5f, true, 3), DROP(S(9), 0.0f, true, 4),
        { "normal", 0, .attrs = &(mn_random_attrs){ S(5, 7), 1.0f, 2.0f, 11 } },
        { "uniform", 0, .attrs = &(mn_random_attrs){ S(64, 130), -1.0f, 3.0f, 12 } },
        NLL(S(5, 7), S(5), 7, MN_REDUCE_MEAN, -100, 0, 0), NLL(S(9, 7), S(9), 7, MN_REDUCE_SUM, -100, 3, 0),
        NLL(S(9, 7), S(9), 7, MN_REDUCE_NONE, 2, 0, 0), NLL(S(4, 5, 3), S(4, 3), 5, MN_REDUCE_MEAN, -100, 4, 0),
        NLL(S(64, 96), S(64), 96, MN_REDUCE_MEAN, -100, 0, 0),
        NLL(S(9, 7), S(9), 7, MN_REDUCE_MEAN, -100, 3, 1), NLL(S(4, 5, 3), S(4, 3), 5, MN_REDUCE_NONE, -100, 4, 1),
        PW("bce_with_logits", S(5, 7, 3), MN_REDUCE_MEAN, G_PROB, 0), PW("bce_with_logits", S(5, 7, 3), MN_REDUCE_SUM, G_MASK, 0),
        PW("bce_with_logits", S(5, 7, 3), MN_REDUCE_NONE, G_PROB, 0), PW("bce_with_logits", S(64, 130), MN_REDUCE_MEAN, G_PROB, 0),
        { "bce_with_logits", 3, { S(5, 7, 3), S(5, 7, 3), S(3) }, .gen = { G_NORMAL, G_PROB, G_POS }, .attrs = &(mn_loss_attrs){ MN_REDUCE_MEAN } },
        { "bce_with_logits", 3, { S(6, 4), S(6, 4), S(4) }, .gen = { G_NORMAL, G_MASK, G_POS }, .attrs = &(mn_loss_attrs){ MN_REDUCE_NONE } },
        PW("kl_div", S(5, 7), MN_REDUCE_MEAN, G_PROB, 0), PW("kl_div", S(5, 7), MN_REDUCE_BATCHMEAN, G_PROB, 0),
        { "kl_div", 2, { S(5, 7), S(5, 7) }, .gen = { G_NORMAL, G_PROB0 }, .attrs = &(mn_loss_attrs){ MN_REDUCE_SUM }, .fwd_only = true }, /* t = 0 */ PW("kl_div", S(5, 7, 3), MN_REDUCE_NONE, G_PROB, 0),
        { "kl_div", 2, { S(5, 7), S(5, 7) }, .attrs = &(mn_loss_attrs){ .reduction = MN_REDUCE_BATCHMEAN, .log_target = true } },
        PW("kl_div", S(64, 130), MN_REDUCE_BATCHMEAN, G_PROB, 0),
        PW("gaussian_kl", S(5, 7), MN_REDUCE_SUM, G_NORMAL, 0), PW("gaussian_kl", S(5, 7), MN_REDUCE_MEAN, G_NORMAL, 0),
        PW("gaussian_kl", S(5, 7, 3), MN_REDUCE_NONE, G_NORMAL, 0), PW("gaussian_kl", S(128, 20), MN_REDUCE_MEAN, G_NORMAL, 0),
        PW("smooth_l1", S(5, 7, 3), MN_REDUCE_MEAN, G_NORMAL, 1.0f), PW("smooth_l1", S(5, 7, 3), MN_REDUCE_SUM, G_NORMAL, 0.5f),
        PW("smooth_l1", S(5, 7, 3), MN_REDUCE_NONE, G_NORMAL, 2.0f), PW("smooth_l1", S(64, 130), MN_REDUCE_MEAN, G_NORMAL, 1.0f),
        PW("huber", S(5, 7, 3), MN_REDUCE_MEAN, G_NORMAL, 1.0f), PW("huber", S(5, 7, 3), MN_REDUCE_SUM, G_NORMAL, 0.5f),
        PW("huber", S(5, 7, 3), MN_REDUCE_NONE, G_NORMAL, 2.0f), PW("huber", S(64, 130), MN_REDUCE_MEAN, G_NORMAL, 1.0f),
        { "one_hot", 1, { S(5, 3) }, { MN_I32 }, { G_CLASS }, &(mn_one_hot_attrs){ 6, MN_F32 }, 6 },
        { "one_hot", 1, { S(7) }, { MN_I32 }, { G_CLASS }, &(mn_one_hot_attrs){ 4, MN_I32 }, 4 },
        { "cast", 1, { S(5, 7) }, .attrs = &(mn_cast_attrs){ MN_I32 } },
        { "cast", 1, { S(5, 7) }, { MN_I32 }, { G_CLASS }, &(mn_cast_attrs){ MN_F32 }, 50 },
        { "fill", 0, .attrs = &(mn_fill_attrs){ S(3, 4), 2.5f, MN_F32 } },
        { "fill", 0, .attrs = &(mn_fill_attrs){ S(5), 7.0f, MN_I32 } },
        { "zeros_like", 1, { S(5, 7, 3) } }, { "ones_like", 1, { S(4) }, { MN_I32 }, { G_CLASS }, .classes = 3 },
        { "arange", 0, .attrs = &(mn_arange_attrs){ 0, 10, 1, MN_I32 } },
        { "arange", 0, .attrs = &(mn_arange_attrs){ -1.5, 2.0, 0.25, MN_F32 } },
        { "arange", 0, .attrs = &(mn_arange_attrs){ 5, 0, -2, MN_I32 } },
        /* skinny products that ops/matmul.c cuts into column blocks (with a remainder);
         * last, so that the cases above keep their input seeds */
        MM(false, true, S(16, 40), S(100, 40)), MM(false, false, S(12, 48), S(48, 70)), MM(false, true, S(2, 8, 33), S(50, 33)),
        /* sliding windows (conv, pooling): 2-D with stride, dilation and uneven pads; 1-D with a
         * pad value; 3-D; and their adjoints (fold) with the same geometry */
        WIN("unfold", S(2, 3, 5, 6), 2, V(3, 2), V(2, 1), V(1, 2), V(1, 0), V(1, 1), 0.0f, SC),
        WIN("unfold", S(2, 3, 9), 1, V(3), V(2), V(2), V(2), V(1), 0.5f, SC),
        WIN("unfold", S(1, 2, 3, 4, 3), 3, V(2, 2, 2), V(1, 2, 1), V(1, 1, 1), V(0, 1, 0), V(1, 0, 1), 0.0f, SC),
        WIN("unfold", S(4, 8, 12, 12), 2, V(3, 3), V(1, 1), V(1, 1), V(1, 1), V(1, 1), 0.0f, SC),
        WIN("fold", S(2, 3, 6, 15), 2, V(3, 2), V(2, 1), V(1, 2), V(1, 0), V(1, 1), 0.0f, S(2, 3, 5, 6)),
        WIN("fold", S(2, 3, 3, 4), 1, V(3), V(2), V(2), V(2), V(1), 0.0f, S(2, 3, 9)),
        TOPK(S(5, 7, 3), G_NORMAL, 1, 3, true), TOPK(S(5, 7, 3), G_GRID0, -1, 2, false), TOPK(S(4, 9), G_GRID0, 1, 9, true),
        /* one row (a batch-1 step): ops/matmul.c's matrix-vector path, every transposition */
        MM(false, false, S(1, 9), S(9, 70)), MM(true, false, S(9, 1), S(9, 70)),
        MM(false, true, S(1, 9), S(70, 9)), MM(true, true, S(9, 1), S(70, 9)),
        /* the CRF: lengths T, T-1, ..., 0 (padding and an empty sentence); brute force over every path */
        CRF(S(4, 6, 3), MN_REDUCE_MEAN, 0, 0), CRF(S(4, 6, 3), MN_REDUCE_SUM, 0, 0), CRF(S(5, 3, 4), MN_REDUCE_NONE, 0, 0),
        CRF(S(1, 2, 5), MN_REDUCE_MEAN, 0, 0), CRF(S(4, 6, 3), MN_REDUCE_MEAN, 0, 1), CRF(S(4, 6, 3), MN_REDUCE_MEAN, 1, 1),
        CRF(S(5, 3, 4), MN_REDUCE_NONE, 0, 1), CRF(S(5, 3, 4), MN_REDUCE_SUM, 1, 1),
    };
    cases = table;
    NCASES = (int)(sizeof table / sizeof *table);
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, every_registered_op_has_cases);
    tcase_add_test(tc, cast_to_i32_saturates);
    tcase_add_test(tc, registry_lookup);
    tcase_add_test(tc, every_attribute_struct_has_a_schema);
    tcase_add_test(tc, fastmath_accuracy);
    tcase_add_test(tc, tanh_and_sigmoid_kernels_match_the_scalar_formulas);
    tcase_add_test(tc, column_sums_are_sequential_double_sums);
    tcase_add_test(tc, self_attention_matches_composed_ops);
    tcase_add_test(tc, self_attention_never_holds_t_by_t);
    tcase_add_loop_test(tc, forward_matches_reference, 0, NCASES);
    tcase_add_loop_test(tc, vjp_matches_finite_differences, 0, NCASES);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
