/* tests/test_torch.c: results computed by PyTorch 1.13 (python3-torch) for
 * gelu, layer_norm, masked and causal softmax, the losses and embedding
 * backward, read from tests/fixtures/torch_ref.safetensors (written by
 * gen_torch_fixtures.py beside it). Each case builds the op in a graph,
 * runs forward and backward with PyTorch's dy and compares values and
 * gradients. Also: numerical stability at magnitude 1e4, dropout's
 * determinism and rate, and build-time errors for bad attributes. */
#include "harness.h"
#include <math.h>
#include <omp.h>
#include <string.h>

static mn_params *FX;   /* the fixtures */

static mn_tensor *fx(const char *name)
{
    mn_tensor *t = mn_params_get(FX, name);
    ck_assert_msg(t != NULL, "fixture %s missing", name);
    return t;
}

/* f32 tolerance: PyTorch and mnemo both compute in f32 with different
 * summation orders and function approximations: tol relative to each
 * element plus tol/10 of the tensor's largest magnitude (so values that are
 * rounding noise next to O(1) ones compare absolutely); -inf must match. */
static void expect(const char *what, const mn_tensor *got, const mn_tensor *want, double tol)
{
    ck_assert_msg(got != NULL, "%s: no value", what);
    ck_assert_msg(mn_tensor_numel(got) == mn_tensor_numel(want), "%s: %lld elements, PyTorch has %lld", what,
                  (long long)mn_tensor_numel(got), (long long)mn_tensor_numel(want));
    double scale = 1;
    for (int64_t i = 0; i < mn_tensor_numel(want); i++)
        if (isfinite(mn_f32(want)[i]) && fabs(mn_f32(want)[i]) > scale) scale = fabs(mn_f32(want)[i]);
    for (int64_t i = 0; i < mn_tensor_numel(want); i++) {
        double g = mn_f32(got)[i], w = mn_f32(want)[i];
        ck_assert_msg(g == w || fabs(g - w) <= tol * (0.1 * scale + fabs(w)), "%s[%lld]: mnemo %.8g, PyTorch %.8g", what, (long long)i, g, w);
    }
}

typedef struct { mn_params *P; mn_graph *g; } env;

static env env_new(void)
{
    env e = { mn_params_new(), NULL };
    e.g = mn_graph_new(e.P);
    return e;
}

static void env_free(env *e) { mn_graph_free(e->g); mn_params_free(e->P); }

/* A parameter holding a copy of fixture `name`, so its gradient is computed. */
static mn_node *par(env *e, const char *name)
{
    mn_tensor *t = fx(name);
    mn_node *n = mn_param(e->g, name, t->shape, (mn_init){ 0 });
    memcpy(mn_params_get(e->P, name)->data, t->data, mn_tensor_bytes(t));
    return n;
}

static mn_node *cst(env *e, const char *name) { mn_tensor *t = fx(name); return mn_constant(e->g, MN_F32, t->shape, t->data); }

static mn_node *ints(env *e, const char *name)
{
    mn_tensor *t = fx(name);
    int64_t n = mn_tensor_numel(t);
    int32_t *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)lrintf(mn_f32(t)[i]);
    mn_node *c = mn_constant(e->g, MN_I32, t->shape, v);
    free(v);
    return c;
}

/* Runs loss = sum(y * dy); returns the executable (y readable). */
static mn_exec *run(env *e, mn_node *y, const char *dy)
{
    mn_node *loss = mn_sum_all(e->g, mn_mul(e->g, y, cst(e, dy)));
    const mn_node *outs[1] = { y };
    mn_exec *ex = mn_compile(e->g, loss, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(e->g));
    ck_assert_ok(mn_exec_run(ex));
    return ex;
}

START_TEST(gelu_matches_torch)
{
    for (int approx = 0; approx < 2; approx++) {
        env e = env_new();
        mn_node *y = mn_gelu(e.g, par(&e, "gelu.x"), approx);
        mn_exec *ex = run(&e, y, "gelu.dy");
        expect(approx ? "gelu tanh" : "gelu erf", mn_exec_value(ex, y), fx(approx ? "gelu.tanh.y" : "gelu.none.y"), 2e-5);
        expect("gelu dx", mn_params_get_grad(e.P, "gelu.x"), fx(approx ? "gelu.tanh.dx" : "gelu.none.dx"), 2e-5);
        mn_exec_free(ex); env_free(&e);
    }
}
END_TEST

START_TEST(layer_norm_matches_torch)
{
    env e = env_new();
    mn_node *y = mn_layer_norm_op(e.g, par(&e, "ln.x"), 1, par(&e, "ln.w"), par(&e, "ln.b"), 1e-5f);
    mn_exec *ex = run(&e, y, "ln.dy");
    /* the row with mean 1000 loses ~3 digits to f32 rounding of x itself */
    expect("layer_norm y", mn_exec_value(ex, y), fx("ln.y"), 5e-4);
    expect("layer_norm dx", mn_params_get_grad(e.P, "ln.x"), fx("ln.dx"), 5e-4);
    expect("layer_norm dw", mn_params_get_grad(e.P, "ln.w"), fx("ln.dw"), 5e-4);
    expect("layer_norm db", mn_params_get_grad(e.P, "ln.b"), fx("ln.db"), 2e-5);
    mn_exec_free(ex); env_free(&e);
    e = env_new();
    y = mn_layer_norm_op(e.g, par(&e, "ln.x"), 2, par(&e, "ln2.w"), NULL, 1e-5f);
    ex = run(&e, y, "ln.dy");
    expect("layer_norm 2 dims y", mn_exec_value(ex, y), fx("ln2.y"), 5e-4);
    expect("layer_norm 2 dims dx", mn_params_get_grad(e.P, "ln.x"), fx("ln2.dx"), 5e-4);
    expect("layer_norm 2 dims dw", mn_params_get_grad(e.P, "ln2.w"), fx("ln2.dw"), 5e-4);
    mn_exec_free(ex); env_free(&e);
}
END_TEST

START_TEST(masked_softmax_matches_torch)
{
    const char *cases[3][3] = { { "sm.y", "sm.dx", "" }, { "lsm.y", "lsm.dx", "log" }, { "smc.y", "smc.dx", "causal" } };
    for (int k = 0; k < 3; k++) {
        env e = env_new();
        mn_node *x = par(&e, "sm.x"), *mask = k == 2 ? NULL : cst(&e, "sm.mask");
        mn_node *y = k == 1 ? mn_log_softmax_masked(e.g, x, -1, mask, false) : mn_softmax_masked(e.g, x, -1, mask, k == 2);
        mn_node *seen = y;
        if (k == 1) {                 /* PyTorch's side zeroed the -inf entries; do the same */
            mn_node *finite = mn_where(e.g, mn_eq(e.g, mask, mn_scalar(e.g, -INFINITY)), mn_scalar(e.g, 0.0f), mn_scalar(e.g, 1.0f));
            seen = mn_where(e.g, mn_expand(e.g, finite, mn_node_shape(y)), y, mn_scalar(e.g, 0.0f));
        }
        mn_exec *ex = run(&e, seen, "sm.dy");
        expect(cases[k][0], mn_exec_value(ex, seen), fx(cases[k][0]), 2e-5);
        expect(cases[k][1], mn_params_get_grad(e.P, "sm.x"), fx(cases[k][1]), 2e-5);
        mn_exec_free(ex); env_free(&e);
    }
}
END_TEST

static mn_reduction red_of(const char *r)
{
    return !strcmp(r, "mean") ? MN_REDUCE_MEAN : !strcmp(r, "sum") ? MN_REDUCE_SUM : !strcmp(r, "batchmean") ? MN_REDUCE_BATCHMEAN : MN_REDUCE_NONE;
}

START_TEST(cross_entropy_and_nll_match_torch)
{
    const char *reds[] = { "mean", "sum", "none" };
    for (int k = 0; k < 3; k++) {
        char n[64], n2[64];
        env e = env_new();
        mn_ce_opts o = { .ignore_index = -100, .reduction = red_of(reds[k]), .label_smoothing = 0.1f };
        mn_node *y = mn_cross_entropy_ex(e.g, par(&e, "ce.logits"), ints(&e, "ce.target"), o);
        snprintf(n, sizeof n, "ce.%s.dy", reds[k]);
        mn_exec *ex = run(&e, y, n);
        snprintf(n2, sizeof n2, "ce.%s.y", reds[k]);
        expect(n2, mn_exec_value(ex, y), fx(n2), 2e-5);
        snprintf(n2, sizeof n2, "ce.%s.dx", reds[k]);
        expect(n2, mn_params_get_grad(e.P, "ce.logits"), fx(n2), 2e-5);
        mn_exec_free(ex); env_free(&e);

        e = env_new();
        y = mn_nll_loss(e.g, par(&e, "nll.logp"), ints(&e, "ce.target"), -100, red_of(reds[k]));
        ex = run(&e, y, n);
        snprintf(n2, sizeof n2, "nll.%s.y", reds[k]);
        expect(n2, mn_exec_value(ex, y), fx(n2), 2e-5);
        snprintf(n2, sizeof n2, "nll.%s.dx", reds[k]);
        expect(n2, mn_params_get_grad(e.P, "nll.logp"), fx(n2), 2e-5);
        mn_exec_free(ex); env_free(&e);
    }
}
END_TEST

static void scalar_loss(const char *what, mn_node *(*build)(env *, const char *), const char *arg, const char *want_y,
                        const char *gparam, const char *want_dx)
{
    env e = env_new();
    mn_node *y = build(&e, arg);
    mn_exec *ex = mn_compile(e.g, y, NULL);
    ck_assert_msg(ex != NULL, "%s: %s", what, mn_graph_errmsg(e.g));
    ck_assert_ok(mn_exec_run(ex));
    expect(what, mn_exec_value(ex, y), fx(want_y), 2e-5);
    expect(what, mn_params_get_grad(e.P, gparam), fx(want_dx), 2e-5);
    mn_exec_free(ex); env_free(&e);
}

static mn_node *b_bce(env *e, const char *r) { return mn_bce_with_logits(e->g, par(e, "bce.x"), cst(e, "bce.t"), cst(e, "bce.pw"), red_of(r)); }
static mn_node *b_bce_big(env *e, const char *r) { (void)r; return mn_bce_with_logits(e->g, par(e, "bce.big.x"), cst(e, "bce.big.t"), NULL, MN_REDUCE_SUM); }
static mn_node *b_kl(env *e, const char *r) { return mn_kl_div(e->g, par(e, "kl.input"), cst(e, "kl.target"), red_of(r), false); }
static mn_node *b_kl_log(env *e, const char *r) { (void)r; return mn_kl_div(e->g, par(e, "kl.input"), cst(e, "kl.ltarget"), MN_REDUCE_BATCHMEAN, true); }
static mn_node *b_sl1(env *e, const char *r) { (void)r; return mn_smooth_l1(e->g, par(e, "rob.x"), cst(e, "rob.t"), MN_REDUCE_MEAN, 0.5f); }
static mn_node *b_hub(env *e, const char *r) { (void)r; return mn_huber(e->g, par(e, "rob.x"), cst(e, "rob.t"), MN_REDUCE_SUM, 1.5f); }
static mn_node *b_mse(env *e, const char *r) { (void)r; return mn_mse_loss(e->g, par(e, "rob.x"), cst(e, "rob.t"), MN_REDUCE_MEAN); }

START_TEST(other_losses_match_torch)
{
    scalar_loss("bce mean", b_bce, "mean", "bce.mean.y", "bce.x", "bce.mean.dx");
    scalar_loss("bce sum", b_bce, "sum", "bce.sum.y", "bce.x", "bce.sum.dx");
    scalar_loss("bce at 1e4", b_bce_big, "", "bce.big.y", "bce.big.x", "bce.big.dx");
    scalar_loss("kl batchmean", b_kl, "batchmean", "kl.batchmean.y", "kl.input", "kl.batchmean.dx");
    scalar_loss("kl sum", b_kl, "sum", "kl.sum.y", "kl.input", "kl.sum.dx");
    scalar_loss("kl mean", b_kl, "mean", "kl.mean.y", "kl.input", "kl.mean.dx");
    scalar_loss("kl log_target", b_kl_log, "", "kl.log.y", "kl.input", "kl.log.dx");
    scalar_loss("smooth_l1", b_sl1, "", "sl1.y", "rob.x", "sl1.dx");
    scalar_loss("huber", b_hub, "", "hub.y", "rob.x", "hub.dx");
    scalar_loss("mse", b_mse, "", "mse.y", "rob.x", "mse.dx");
}
END_TEST

START_TEST(embedding_backward_matches_torch)
{
    env e = env_new();
    mn_node *y = mn_embedding_op(e.g, ints(&e, "emb.idx"), par(&e, "emb.w"));
    mn_exec *ex = run(&e, y, "emb.dy");
    expect("embedding y", mn_exec_value(ex, y), fx("emb.y"), 1e-6);
    expect("embedding dweight (repeated indices)", mn_params_get_grad(e.P, "emb.w"), fx("emb.dw"), 2e-5);
    mn_exec_free(ex); env_free(&e);
}
END_TEST

/* ---- stability at magnitude 1e4 ---- */

static const float big[8] = { 1e4f, -1e4f, 9999.0f, 0.0f, -3e4f, 1e4f + 3.0f, 2e4f, -2e4f };

START_TEST(large_inputs_stay_finite)
{
    env e = env_new();
    mn_node *x = mn_constant(e.g, MN_F32, MN_SHAPE(2, 4), big);
    int32_t tv[2] = { 1, 2 };
    mn_node *t = mn_constant(e.g, MN_I32, MN_SHAPE(2), tv);
    mn_node *sm = mn_softmax(e.g, x, 1), *lsm = mn_log_softmax(e.g, x, 1), *lse = mn_logsumexp(e.g, x, 1, false);
    mn_node *ce = mn_cross_entropy(e.g, x, t);
    const mn_node *outs[4] = { sm, lsm, lse, ce };
    mn_exec *ex = mn_compile(e.g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 4 });
    ck_assert_ok(mn_exec_run(ex));
    const float *s = mn_f32(mn_exec_value(ex, sm)), *l = mn_f32(mn_exec_value(ex, lsm)), *z = mn_f32(mn_exec_value(ex, lse));
    /* row 0: [1e4, -1e4, 9999, 0]: p = [1/(1+e^-1), 0, e^-1/(1+e^-1), 0] */
    double p0 = 1 / (1 + exp(-1.0));
    ck_assert_close(s[0], p0, 1e-6); ck_assert_close(s[2], 1 - p0, 1e-6); ck_assert(s[1] == 0.0f);
    /* at magnitude 1e4 one f32 ulp is ~1e-3: that is the attainable accuracy */
    ck_assert_close(l[0], log(p0), 2e-3); ck_assert_close(l[1], -2e4 - log1p(exp(-1.0)), 4e-3);
    ck_assert_close(z[0], 1e4 + log1p(exp(-1.0)), 1e-3);
    ck_assert_close(z[1], 2e4, 1e-3);
    for (int i = 0; i < 8; i++) ck_assert(isfinite(s[i]) && isfinite(l[i]));
    /* ce = mean(lse - x[t]) = ((1e4 + log1p(e^-1)) - -1e4 + (2e4 - 2e4)) / 2 */
    ck_assert_close(mn_f32(mn_exec_value(ex, ce))[0], (2e4 + log1p(exp(-1.0)) + 0.0) / 2, 2e-2);
    mn_exec_free(ex); env_free(&e);
}
END_TEST

START_TEST(layer_norm_stable_for_large_mean)
{
    env e = env_new();
    float row[6];
    for (int i = 0; i < 6; i++) row[i] = 1e4f + (float)i;          /* mean 10002.5, var 35/12 */
    mn_node *x = mn_constant(e.g, MN_F32, MN_SHAPE(1, 6), row);
    mn_node *y = mn_layer_norm_op(e.g, x, 1, NULL, NULL, 1e-5f);
    const mn_node *outs[1] = { y };
    mn_exec *ex = mn_compile(e.g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_ok(mn_exec_run(ex));
    double sd = sqrt(35.0 / 12 + 1e-5);
    for (int i = 0; i < 6; i++) ck_assert_close(mn_f32(mn_exec_value(ex, y))[i], (i - 2.5) / sd, 1e-5);
    mn_exec_free(ex); env_free(&e);
}
END_TEST

/* ---- dropout ---- */

static float *dropout_run(int threads, float p, bool training, int64_t n, uint64_t seed)
{
    env e = env_new();
    mn_graph_set_seed(e.g, seed);
    mn_node *x = mn_fill(e.g, MN_SHAPE(n), 1.0f, MN_F32);
    mn_node *y = mn_dropout(e.g, x, p, training);
    const mn_node *outs[1] = { y };
    mn_exec *ex = mn_compile(e.g, NULL, &(mn_compile_opts){ .threads = threads, .outputs = outs, .noutputs = 1 });
    ck_assert_ok(mn_exec_run(ex));
    float *r = malloc((size_t)n * sizeof *r);
    memcpy(r, mn_exec_value(ex, y)->data, (size_t)n * sizeof *r);
    mn_exec_free(ex); env_free(&e);
    return r;
}

START_TEST(dropout_same_mask_for_1_and_2_threads)
{
    enum { N = 1000000 };
    float *a = dropout_run(1, 0.3f, true, N, 5), *b = dropout_run(2, 0.3f, true, N, 5), *c = dropout_run(2, 0.3f, true, N, 6);
    ck_assert_int_eq(memcmp(a, b, N * sizeof *a), 0);
    ck_assert_int_ne(memcmp(a, c, N * sizeof *a), 0);          /* another seed, another mask */
    int64_t kept = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(a[i] == 0.0f || fabsf(a[i] - 1.0f / 0.7f) < 1e-6f);   /* inverted scaling */
        kept += a[i] != 0.0f;
    }
    ck_assert_msg(fabs((double)kept / N - 0.7) < 0.01 * 0.7, "keep rate %.4f", (double)kept / N);
    free(a); free(b); free(c);
}
END_TEST

START_TEST(dropout_eval_is_identity_and_runs_differ)
{
    float *a = dropout_run(2, 0.5f, false, 1000, 1);
    for (int i = 0; i < 1000; i++) ck_assert(a[i] == 1.0f);
    free(a);
    /* two runs of one executable draw different masks; the backward of a run uses its forward's */
    env e = env_new();
    mn_node *w = mn_param(e.g, "w", MN_SHAPE(4096), (mn_init){ .kind = MN_INIT_ONES });
    mn_node *y = mn_dropout(e.g, w, 0.5f, true);
    mn_exec *ex = mn_compile(e.g, mn_sum_all(e.g, y), &(mn_compile_opts){ .outputs = (const mn_node *[]){ y }, .noutputs = 1 });
    ck_assert_ok(mn_exec_run(ex));
    float first[4096];
    memcpy(first, mn_exec_value(ex, y)->data, sizeof first);
    for (int i = 0; i < 4096; i++) ck_assert(mn_f32(mn_params_get_grad(e.P, "w"))[i] == first[i]);   /* dy/dw = mask / (1 - p) */
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_int_ne(memcmp(first, mn_exec_value(ex, y)->data, sizeof first), 0);
    mn_exec_set_step(ex, 0);
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_int_eq(memcmp(first, mn_exec_value(ex, y)->data, sizeof first), 0);   /* a resumed step repeats */
    mn_exec_free(ex); env_free(&e);
}
END_TEST

/* ---- bad attributes: clear errors at build time ---- */

#define BAD(expr, frag)                                                                          \
    do {                                                                                         \
        env e = env_new();                                                                       \
        mn_node *x = mn_input(e.g, "x", MN_F32, MN_SHAPE(4, 5)); (void)x;                       \
        ck_assert_ptr_null(expr);                                                                \
        ck_assert_msg(strstr(mn_graph_errmsg(e.g), frag), "\"%s\" lacks \"%s\"", mn_graph_errmsg(e.g), frag); \
        env_free(&e);                                                                            \
    } while (0)

START_TEST(bad_attributes_rejected)
{
    BAD(mn_softmax(e.g, x, 2), "axis 2 out of range for 2 dims");
    BAD(mn_sum(e.g, x, 1, (int[]){ 5 }, false), "axis");
    BAD(mn_slice(e.g, x, 1, 0, 3, 0), "step 0 must be positive");
    BAD(mn_slice(e.g, x, 3, 0, 3, 1), "axis 3 out of range");
    BAD(mn_max(e.g, x, -3, false), "axis -3 out of range");
    BAD(mn_reshape(e.g, x, MN_SHAPE(3, -2)), "bad target dim");
    BAD(mn_reshape(e.g, x, MN_SHAPE(7, 3)), "20 elements cannot take the shape [7,3]");
    BAD(mn_fill(e.g, MN_SHAPE(2, -1), 0, MN_F32), "negative dim");
    BAD(mn_randn(e.g, MN_SHAPE(3), 0, -1), "std must be >= 0");
    BAD(mn_dropout(e.g, x, 1.5f, true), "p 1.5 outside [0, 1]");
    BAD(mn_clamp(e.g, x, 2, 1), "min 2 > max 1");
    BAD(mn_softmax_masked(e.g, x, -1, mn_input(e.g, "m", MN_F32, MN_SHAPE(3, 5)), false), "mask [3,5] does not broadcast to [4,5]");
    BAD(mn_softmax_masked(e.g, x, 0, NULL, true), "axis to be the last");
    BAD(mn_layer_norm_op(e.g, x, 3, NULL, NULL, 1e-5f), "normalizes 3 trailing dims of a 2-dim input");
    BAD(mn_layer_norm_op(e.g, x, 1, mn_input(e.g, "w", MN_F32, MN_SHAPE(4)), NULL, 1e-5f), "weight has shape [4], normalized shape is [5]");
    BAD(mn_one_hot(e.g, mn_input(e.g, "i", MN_I32, MN_SHAPE(3)), 0, MN_F32), "num_classes 0 must be positive");
    BAD(mn_cross_entropy_ex(e.g, x, mn_input(e.g, "t", MN_I32, MN_SHAPE(4)), (mn_ce_opts){ -100, MN_REDUCE_MEAN, 1.5f }), "label_smoothing 1.5");
    BAD(mn_kl_div(e.g, x, x, (mn_reduction)7, false), "reduction 7");
    BAD(mn_mse_loss(e.g, x, x, MN_REDUCE_BATCHMEAN), "unknown reduction 3");
    BAD(mn_concat(e.g, (mn_node *[]){ x, mn_input(e.g, "y", MN_F32, MN_SHAPE(3, 4)) }, 2, 0), "input 1 differs outside axis 0");
    BAD(mn_index_select(e.g, x, 0, mn_input(e.g, "f", MN_F32, MN_SHAPE(3))), "index must be a 1-D i32 tensor");
    BAD(mn_where(e.g, mn_input(e.g, "c", MN_F32, MN_SHAPE(3, 1)), x, x), "do not broadcast");
    BAD(mn_arange(e.g, 0, 5, 0, MN_I32), "step must be nonzero");
    BAD(mn_var(e.g, x, 1, (int[]){ 2 }, false, 1), "axis");
    BAD(mn_linear_op(e.g, x, mn_input(e.g, "w", MN_F32, MN_SHAPE(3, 4)), NULL), "input features 5 differ from the weight's 4");
}
END_TEST

START_TEST(index_out_of_range_at_run_time)
{
    env e = env_new();
    mn_node *w = mn_param(e.g, "w", MN_SHAPE(5, 3), (mn_init){ .kind = MN_INIT_ONES });
    mn_node *i = mn_input(e.g, "i", MN_I32, MN_SHAPE(2));
    mn_node *y = mn_embedding_op(e.g, i, w);
    mn_exec *ex = mn_compile(e.g, mn_sum_all(e.g, y), NULL);
    int32_t iv[2] = { 1, 5 };
    mn_exec_feed_data(ex, "i", iv, sizeof iv);
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_RUNTIME);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "index 5 at position 1 is outside [0, 5)"));
    mn_exec_free(ex); env_free(&e);
}
END_TEST

int main(void)
{
    const char *dir = getenv("MNEMO_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/torch_ref.safetensors", dir ? dir : "tests/fixtures");
    FX = mn_params_new();
    if (mn_params_load(FX, path)) { fprintf(stderr, "%s\n", mn_errmsg()); return 1; }
    Suite *s = suite_create("torch");
    TCase *tc = tcase_create("torch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gelu_matches_torch);
    tcase_add_test(tc, layer_norm_matches_torch);
    tcase_add_test(tc, masked_softmax_matches_torch);
    tcase_add_test(tc, cross_entropy_and_nll_match_torch);
    tcase_add_test(tc, other_losses_match_torch);
    tcase_add_test(tc, embedding_backward_matches_torch);
    tcase_add_test(tc, large_inputs_stay_finite);
    tcase_add_test(tc, layer_norm_stable_for_large_mean);
    tcase_add_test(tc, dropout_same_mask_for_1_and_2_threads);
    tcase_add_test(tc, dropout_eval_is_identity_and_runs_differ);
    tcase_add_test(tc, bad_attributes_rejected);
    tcase_add_test(tc, index_out_of_range_at_run_time);
    suite_add_tcase(s, tc);
    int rc = mn_test_run(s);
    mn_params_free(FX);
    return rc;
}
