/* tests/test_ops.c: every op of the registry against a naive reference
 * loop (forward values) and, if it is differentiable, its VJP against
 * central finite differences. Driven by the registry: an op without a case
 * fails the suite, so a new op cannot land untested. */
#include "harness.h"
#include "../ops/attrs.h"
#include "../ops/op.h"
#include <string.h>

typedef enum { G_NORMAL = 0, G_POS, G_AWAY, G_CLASS } gen_kind;

typedef struct {
    const char *op;
    int nin;
    mn_shape shape[4];
    mn_dtype dtype[4];
    gen_kind gen[4];
    const void *attrs;
    int classes;          /* G_CLASS: targets in [0, classes) */
    int ignore_every;     /* G_CLASS: every k-th target is the ignore index */
} op_case;

#define S(...) MN_SHAPE(__VA_ARGS__)
#define SC MN_SCALAR
#define BIN(name, g1, a, b) { name, 2, { a, b }, .gen = { G_NORMAL, g1 } }
#define UN(name, g0, a) { name, 1, { a }, .gen = { g0 } }
#define MM(ta, tb, a, b) { "matmul", 2, { a, b }, .attrs = &(mn_matmul_attrs){ ta, tb } }
#define PERM(sh, n, ...) { "permute", 1, { sh }, .attrs = &(mn_permute_attrs){ n, { __VA_ARGS__ } } }
#define RESHAPE(sh, to) { "reshape", 1, { sh }, .attrs = &(mn_shape_attrs){ to } }
#define EXPAND(sh, to) { "expand", 1, { sh }, .attrs = &(mn_shape_attrs){ to } }
#define RED(name, sh, ax, kd) { name, 1, { sh }, .attrs = &(mn_reduce_attrs){ ax, kd } }
#define AX(name, sh, a) { name, 1, { sh }, .attrs = &(mn_axis_attrs){ a } }
#define AXG(name, sh, a) { name, 2, { sh, sh }, .attrs = &(mn_axis_attrs){ a } }
#define CE(name, L, T, C, red, ign, eps, every, extra)                                        \
    { name, 2 + (extra), { L, T, (red) == MN_REDUCE_NONE ? T : SC }, { MN_F32, MN_I32, MN_F32 }, \
      { G_NORMAL, G_CLASS, G_NORMAL }, &(mn_ce_attrs){ { ign, red, eps } }, C, every }
#define MSE(sh, red) { "mse_loss", 2, { sh, sh }, .attrs = &(mn_mse_attrs){ red } }

/* Binary broadcasting patterns shared by add, sub, mul, div. */
#define BIN_ALL(name, g1)                                                       \
    BIN(name, g1, S(5, 7, 3), S(5, 7, 3)), BIN(name, g1, S(5, 7, 3), SC),      \
    BIN(name, g1, SC, S(5, 7, 3)), BIN(name, g1, S(5, 7, 3), S(3)),            \
    BIN(name, g1, S(5, 1, 3), S(7, 1)), BIN(name, g1, S(4, 1), S(1, 6)),       \
    BIN(name, g1, S(1), S(5, 7)), BIN(name, g1, S(2, 3, 4, 5), S(3, 1, 5)),    \
    BIN(name, g1, S(64, 130), S(130)), BIN(name, g1, S(64, 130), S(64, 1))
#define UN_ALL(name, g0) UN(name, g0, S(5, 7, 3)), UN(name, g0, SC), UN(name, g0, S(1)), UN(name, g0, S(64, 130))
#define HELPER(name, g0) BIN(name, G_NORMAL, S(5, 7, 3), S(5, 7, 3)), BIN(name, G_NORMAL, S(64, 130), S(64, 130))

/* The case table lives in main (its compound literals are not constant
 * expressions); tests read it through these. */
static const op_case *cases;
static int NCASES;


/* ---- inputs ---- */

static float gen_value(const op_case *c, int i, int64_t k, uint64_t seed)
{
    float u = mn_rng_uniform(seed, (uint64_t)i, (uint64_t)k);
    switch (c->gen[i]) {
    case G_POS: return 0.5f + 1.5f * u;                           /* [0.5, 2) */
    case G_AWAY: return (u < 0.5f ? -1.0f : 1.0f) * (0.1f + 1.8f * fabsf(u - 0.5f)); /* |x| >= 0.1 */
    default: return mn_rng_normal(seed, (uint64_t)i, (uint64_t)k);
    }
}

static mn_tensor **make_inputs(const op_case *c, uint64_t seed)
{
    mn_tensor **in = calloc(4, sizeof *in);
    for (int i = 0; i < c->nin; i++) {
        in[i] = mn_tensor_new(c->dtype[i], c->shape[i]);
        int64_t n = mn_tensor_numel(in[i]);
        for (int64_t k = 0; k < n; k++) {
            if (c->dtype[i] == MN_I32) {
                const mn_ce_attrs *a = c->attrs;
                int32_t t = (int32_t)(mn_rng_uniform(seed, 100, (uint64_t)k) * (float)c->classes);
                if (c->ignore_every && k % c->ignore_every == 1) t = a->o.ignore_index;
                mn_i32(in[i])[k] = t;
            } else mn_f32(in[i])[k] = gen_value(c, i, k, seed);
        }
    }
    return in;
}

static void free_inputs(mn_tensor **in)
{
    for (int i = 0; i < 4; i++) mn_tensor_free(in[i]);
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

static void reference(const op_case *c, mn_tensor **in, double *out, mn_shape os)
{
    const mn_op_def *op = mn_op_find(c->op);
    int64_t n = mn_shape_numel(os);
    if (!strcmp(c->op, "matmul")) ref_matmul(c, in, out, os);
    else if (!strcmp(c->op, "permute")) ref_permute(c, in, out, os);
    else if (!strcmp(c->op, "sum") || !strcmp(c->op, "mean")) ref_reduce(c, in, out, os);
    else if (strstr(c->op, "softmax")) ref_softmax(c, in, out, os);
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
    mn_node *nodes[4];
    for (int i = 0; i < c->nin; i++) {
        if (c->dtype[i] == MN_I32) { nodes[i] = mn_constant(cg.g, MN_I32, c->shape[i], in[i]->data); continue; }
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
    int64_t n = mn_tensor_numel(y);
    double *ref = calloc((size_t)n, sizeof *ref);
    reference(c, in, ref, y->shape);
    /* f32 kernels vs a double reference: relative 1e-5 with a 1e-5 floor
     * covers accumulation over the longest reduced dim here (130 and 96). */
    for (int64_t i = 0; i < n; i++) {
        double got = mn_f32(y)[i];
        ck_assert_msg(fabs(got - ref[i]) <= 1e-5 + 1e-5 * fabs(ref[i]),
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
    ck_assert_ok(mn_exec_run(ex));
    return mn_f32(mn_exec_value(ex, loss))[0];
}

START_TEST(vjp_matches_finite_differences)
{
    const op_case *c = &cases[_i];
    if (!mn_op_differentiable(mn_op_find(c->op))) return;
    char d[256];
    describe(c, d, sizeof d);
    mn_tensor **in = make_inputs(c, 2000 + (uint64_t)_i);
    case_graph cg = build(c, in, true);
    mn_exec *train = mn_compile(cg.g, cg.loss, NULL);
    ck_assert_msg(train != NULL, "%s: %s", d, mn_graph_errmsg(cg.g));
    const mn_node *outs[1] = { cg.loss };
    mn_exec *fwd = mn_compile(cg.g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_ok(mn_exec_run(train));
    /* Central differences in f32 with h = 1e-2: truncation error ~h^2 |f'''|/6
     * ~ 2e-5 and rounding ~ eps_f32 |loss| / h ~ 1e-4 for the losses here,
     * so atol 2e-3 + rtol 1e-2 passes a correct VJP by a wide margin, while
     * a wrong one (a missing term, a transposed factor) is off by O(1). Inputs
     * of nonsmooth ops stay >= 0.1 from their kinks (G_AWAY). */
    const double h = 1e-2;
    for (int i = 0; i < c->nin; i++) {
        if (c->dtype[i] != MN_F32) continue;
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
START_TEST(every_registered_op_has_cases)
{
    for (int id = 0; id < mn_op_count(); id++) {
        const char *name = mn_op_name(mn_op_at(id));
        int found = 0;
        for (int k = 0; k < NCASES; k++) found += !strcmp(cases[k].op, name);
        ck_assert_msg(found > 0, "op \"%s\" is in the registry but has no test case", name);
        if (mn_op_differentiable(mn_op_at(id))) ck_assert_msg(mn_op_at(id)->vjp != NULL, "%s: differentiable without a VJP", name);
        ck_assert_msg(mn_op_doc(mn_op_at(id)) && *mn_op_doc(mn_op_at(id)), "%s: no doc line", name);
    }
    for (int k = 0; k < NCASES; k++) ck_assert_msg(mn_op_find(cases[k].op) != NULL, "case for unknown op %s", cases[k].op);
}
END_TEST

START_TEST(registry_lookup)
{
    ck_assert_int_ge(mn_op_count(), 20);
    ck_assert_ptr_eq(mn_op_find("matmul"), mn_op_at(mn_op_count() - 1) == mn_op_find("matmul") ? mn_op_at(mn_op_count() - 1) : mn_op_find("matmul"));
    for (int id = 0; id < mn_op_count(); id++) ck_assert_ptr_eq(mn_op_find(mn_op_name(mn_op_at(id))), mn_op_at(id));
    ck_assert_ptr_null(mn_op_find("no_such_op"));
    ck_assert_ptr_null(mn_op_at(-1));
    ck_assert_ptr_null(mn_op_at(mn_op_count()));
    ck_assert(!mn_op_differentiable(mn_op_find("cross_entropy_grad")));
    ck_assert(mn_op_differentiable(mn_op_find("tanh")));
    ck_assert_int_eq(mn_op_arity(mn_op_find("cross_entropy_grad")), 3);
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
        MM(false, true, S(5, 7), S(3, 7)), MM(true, true, S(7, 5), S(3, 7)),
        MM(false, false, S(2, 5, 7), S(2, 7, 3)), MM(true, true, S(2, 7, 5), S(2, 3, 7)),
        MM(false, false, S(2, 5, 7), S(7, 3)), MM(false, true, S(4, 2, 5, 7), S(3, 7)),
        MM(true, false, S(2, 7, 5), S(7, 3)), MM(false, false, S(5, 7), S(2, 7, 3)),
        MM(false, false, S(3, 1, 5, 7), S(2, 7, 4)), MM(false, false, S(1, 5, 7), S(3, 7, 2)),
        MM(false, false, S(64, 96), S(96, 80)), MM(false, true, S(8, 16, 64), S(8, 32, 64)),
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
        MSE(S(5, 7, 3), MN_REDUCE_MEAN), MSE(S(5, 7, 3), MN_REDUCE_SUM), MSE(S(5, 7, 3), MN_REDUCE_NONE),
        MSE(SC, MN_REDUCE_MEAN), MSE(S(64, 130), MN_REDUCE_MEAN),
    };
    cases = table;
    NCASES = (int)(sizeof table / sizeof *table);
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, every_registered_op_has_cases);
    tcase_add_test(tc, registry_lookup);
    tcase_add_loop_test(tc, forward_matches_reference, 0, NCASES);
    tcase_add_loop_test(tc, vjp_matches_finite_differences, 0, NCASES);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
