/* tests/test_plugins.c: op plugins. The example plugins load, their ops
 * pass the forward reference and finite-difference checks (every op a
 * loaded plugin registers needs a case), take part in autodiff, planning
 * and parallel runs; and every failure (missing file, not a shared object,
 * no entry point, ABI major, newer minor, fingerprint, duplicate names,
 * init error, shape rejection, kernel error) is reported with the plugin's
 * name and leaves the registry as it was. Run under ASan by scripts/test.sh --asan. */
#include "harness.h"
#include "mnemo_plugin.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char dir[512], examples[512];    /* test plugins; the example plugins (plugins/) */

static const char *so(const char *name)
{
    static char buf[1024];
    bool example = !strcmp(name, "swish") || !strcmp(name, "rmsnorm");
    snprintf(buf, sizeof buf, "%s/%s.so", example ? examples : dir, name);
    return buf;
}

static void load_ok(const char *name)
{
    ck_assert_msg(mn_plugin_load(so(name)) == MN_OK, "%s: %s", name, mn_errmsg());
}

/* Central differences of sum(op(inputs) * R) against the store's gradients. */
static void gradcheck(const char *op, int nin, const mn_shape *shapes, const void *attrs, size_t asz)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *in[4];
    char name[8];
    for (int i = 0; i < nin; i++) {
        snprintf(name, sizeof name, "x%d", i);
        in[i] = mn_param(g, name, shapes[i], (mn_init){ .kind = MN_INIT_NORMAL, .a = i ? 1.0f : 0.0f, .b = 1 });
    }
    mn_node *y = mn_op(g, op, in, nin, attrs, asz);
    ck_assert_msg(y != NULL, "%s: %s", op, mn_graph_errmsg(g));
    int64_t n = mn_shape_numel(mn_node_shape(y));
    float *r = malloc((size_t)n * sizeof *r);
    mn_rng_fill_uniform(r, n, 3, 4, -1, 1);
    mn_node *loss = mn_sum_all(g, mn_mul(g, y, mn_constant(g, MN_F32, mn_node_shape(y), r)));
    mn_exec *tr = mn_compile(g, loss, NULL);
    ck_assert_msg(tr != NULL, "%s: %s", op, mn_graph_errmsg(g));
    const mn_node *outs[1] = { loss };
    mn_exec *fw = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(fw != NULL, "%s: %s", op, mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(tr));
    for (int i = 0; i < nin; i++) {
        snprintf(name, sizeof name, "x%d", i);
        float *x = mn_f32(mn_params_get(P, name)), *gr = mn_f32(mn_params_get_grad(P, name));
        for (int64_t k = 0; k < mn_shape_numel(shapes[i]); k++) {
            float x0 = x[k];
            x[k] = x0 + 1e-2f;
            ck_assert_ok(mn_exec_run(fw));
            double lp = mn_f32(mn_exec_value(fw, loss))[0];
            x[k] = x0 - 1e-2f;
            ck_assert_ok(mn_exec_run(fw));
            double lm = mn_f32(mn_exec_value(fw, loss))[0];
            x[k] = x0;
            double num = (lp - lm) / 2e-2;
            ck_assert_msg(fabs(num - gr[k]) <= 2e-3 + 1e-2 * fabs(num), "%s input %d [%lld]: VJP %g, finite difference %g",
                          op, i, (long long)k, (double)gr[k], num);
        }
    }
    free(r);
    mn_exec_free(tr); mn_exec_free(fw); mn_graph_free(g); mn_params_free(P);
}

typedef struct { float eps; } rms_attrs;

/* Gradient-check cases of plugin ops, by op name (looked up from the registry below). */
typedef struct { const char *op; int nin; mn_shape shapes[2]; const void *attrs; size_t attrs_size; } grad_case;
static const rms_attrs rms_eps5 = { 1e-5f }, rms_eps3 = { 1e-3f };
static const grad_case grad_cases[] = {
    { "swish.swish", 2, { MN_SHAPE(5, 7), MN_SHAPE(7) }, NULL, 0 },
    { "swish.swish", 2, { MN_SHAPE(3, 4, 2), MN_SHAPE(1) }, NULL, 0 },
    { "rmsnorm.rmsnorm", 2, { MN_SHAPE(5, 7), MN_SHAPE(7) }, &rms_eps5, sizeof(rms_attrs) },
    { "rmsnorm.rmsnorm", 2, { MN_SHAPE(2, 3, 6), MN_SHAPE(6) }, &rms_eps3, sizeof(rms_attrs) },
};

START_TEST(example_plugins_load_and_check)
{
    int before = mn_op_count();
    load_ok("swish");
    load_ok("rmsnorm");
    ck_assert_int_eq(mn_op_count(), before + 4);
    ck_assert_int_eq(mn_plugin_count(), 2);
    ck_assert_str_eq(mn_op_plugin(mn_op_find("swish.swish")), "swish");
    ck_assert_ptr_null(mn_op_plugin(mn_op_find("add")));
    ck_assert(mn_op_differentiable(mn_op_find("rmsnorm.rmsnorm")));
    /* the registry drives the gradient check: every differentiable op a
     * plugin registered runs each of its cases, and an op without one fails */
    int checked = 0;
    for (int id = before; id < mn_op_count(); id++) {
        const mn_op_def *op = mn_op_at(id);
        if (!mn_op_differentiable(op)) continue;
        int found = 0;
        for (size_t k = 0; k < sizeof grad_cases / sizeof *grad_cases; k++) {
            const grad_case *c = &grad_cases[k];
            if (strcmp(c->op, mn_op_name(op)) != 0) continue;
            gradcheck(c->op, c->nin, c->shapes, c->attrs, c->attrs_size);
            found++;
        }
        ck_assert_msg(found > 0, "plugin op %s has no gradient-check case", mn_op_name(op));
        checked++;
    }
    ck_assert_int_eq(checked, 2);
}
END_TEST

START_TEST(plugin_forward_values)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    float xv[4] = { -2, -0.5f, 1, 3 }, bv[1] = { 1.5f }, wv[4] = { 1, 2, 3, 4 };
    mn_node *x = mn_constant(g, MN_F32, MN_SHAPE(1, 4), xv), *b = mn_constant(g, MN_F32, MN_SHAPE(1), bv);
    mn_node *in[2] = { x, b }, *in2[2] = { x, mn_constant(g, MN_F32, MN_SHAPE(4), wv) };
    mn_node *s = mn_op(g, "swish.swish", in, 2, NULL, 0), *r = mn_op(g, "rmsnorm.rmsnorm", in2, 2, &(rms_attrs){ 1e-5f }, sizeof(rms_attrs));
    const mn_node *outs[2] = { s, r };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 2 });
    ck_assert_ok(mn_exec_run(ex));
    double ms = (4 + 0.25 + 1 + 9) / 4.0;
    for (int i = 0; i < 4; i++) {
        ck_assert_close(mn_f32(mn_exec_value(ex, s))[i], xv[i] / (1 + exp(-1.5 * xv[i])), 1e-6);
        ck_assert_close(mn_f32(mn_exec_value(ex, r))[i], xv[i] * wv[i] / sqrt(ms + 1e-5), 1e-5);
    }
    /* DOT names the plugin ops */
    char *buf = NULL; size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    mn_exec_write_dot(ex, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "swish.swish"));
    free(buf);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Each failure: an error naming the plugin, and the registry unchanged. */
static void expect_fail(const char *path, mn_status want, const char *frag)
{
    int ops = mn_op_count(), plugins = mn_plugin_count();
    mn_status s = mn_plugin_load(path);
    ck_assert_msg(s == want, "%s: %s (%s), expected %s", path, mn_status_name(s), mn_errmsg(), mn_status_name(want));
    ck_assert_msg(strstr(mn_errmsg(), frag) != NULL, "%s: message \"%s\" lacks \"%s\"", path, mn_errmsg(), frag);
    ck_assert_int_eq(mn_op_count(), ops);
    ck_assert_int_eq(mn_plugin_count(), plugins);
}

START_TEST(failures_leave_the_registry_as_it_was)
{
    char txt[1100];
    snprintf(txt, sizeof txt, "%s/not_a_plugin.so", dir);
    FILE *f = fopen(txt, "w");
    fputs("this is text, not an ELF file\n", f);
    fclose(f);
    expect_fail(so("no_such_plugin"), MN_ERR_IO, "no_such_plugin.so");
    expect_fail(txt, MN_ERR_FORMAT, "not_a_plugin.so");
    expect_fail(so("bad_entry"), MN_ERR_FORMAT, "no mn_plugin_entry symbol");
    expect_fail(so("bad_major"), MN_ERR_UNSUPPORTED, "major differs");
    expect_fail(so("bad_minor"), MN_ERR_UNSUPPORTED, "newer than this mnemo");
    expect_fail(so("bad_fp"), MN_ERR_UNSUPPORTED, "fingerprint");
    expect_fail(so("bad_dup"), MN_ERR_EXISTS, "bad_dup.x\" is already registered");
    expect_fail(so("bad_ns"), MN_ERR_INVALID, "must be named \"bad_ns.<op>\"");
    expect_fail(so("bad_init"), MN_ERR_RUNTIME, "init failed on purpose");
    expect_fail(so("bad_novjp"), MN_ERR_INVALID, "op \"bad_novjp.x\" has no VJP and is not flagged nograd");
    /* built against the previous header (ABI 2.0): refused, naming both versions; the same source built against this one loads */
    expect_fail(so("old_abi"), MN_ERR_UNSUPPORTED, "ABI 2.0, this mnemo has ABI 4.0");
    ck_assert_ptr_null(mn_op_find("old_abi.id"));
    load_ok("new_abi");
    ck_assert_ptr_nonnull(mn_op_find("new_abi.id"));
    expect_fail(so("bad_tiny"), MN_ERR_UNSUPPORTED, "op record of 16 bytes for ABI 4.0");
    load_ok("core_only");                                       /* a record without hints: they read as NULL */
    ck_assert_ptr_nonnull(mn_op_find("core_only.x"));
    ck_assert_ptr_null(mn_op_find("core_only.x")->traits.pointwise);
    ck_assert_ptr_null(mn_op_find("bad_init.x"));               /* its registration was undone */
    ck_assert_ptr_null(mn_op_find("bad_dup.x"));
    load_ok("faulty");
    expect_fail(so("faulty"), MN_ERR_EXISTS, "already loaded");
    unlink(txt);
}
END_TEST

START_TEST(plugin_errors_at_build_and_run_time)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(3));
    ck_assert_ptr_null(mn_op(g, "faulty.reject", &x, 1, NULL, 0));
    ck_assert_ptr_nonnull(strstr(mn_graph_errmsg(g), "faulty.reject"));
    ck_assert_ptr_nonnull(strstr(mn_graph_errmsg(g), "rejects every shape"));
    mn_graph_free(g);
    g = mn_graph_new(P);
    x = mn_input(g, "x", MN_F32, MN_SHAPE(3));
    const mn_node *outs[1] = { mn_op(g, "faulty.explode", &x, 1, NULL, 0) };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_RUNTIME);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "faulty.explode"));
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "failed on purpose"));
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* A run is a transaction for the store: a kernel failing late in the
 * backward pass (faulty.late's gradient explodes, and waits for a chain of
 * six products, while the linear layer's gradients are added early) leaves
 * every parameter gradient -- added by a GEMM directly or at the end of a
 * level -- as it was before the run, to the bit. */
START_TEST(failed_run_leaves_gradients_as_they_were)
{
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 2);
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(4, 3));
    mn_node *a = mn_linear(g, "a", x, 5, true);                          /* a.weight: GEMM into the store; a.bias: a sink */
    mn_node *w = mn_param(g, "w", MN_SHAPE(4, 3), (mn_init){ .kind = MN_INIT_NORMAL, .a = 0, .b = 1 });
    float kv[9] = { 0.5f, 0.1f, 0, -0.2f, 0.6f, 0.1f, 0, 0.3f, 0.4f };
    mn_node *k = mn_constant(g, MN_F32, MN_SHAPE(3, 3), kv), *c = x;
    for (int i = 0; i < 6; i++) c = mn_matmul(g, c, k, false, false);  /* faulty.late's gradient waits for this chain */
    mn_node *late = mn_op(g, "faulty.late", &w, 1, NULL, 0);
    mn_node *loss = mn_add(g, mn_sum_all(g, mn_square(g, a)), mn_sum_all(g, mn_mul(g, late, c)));
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    float xv[12];
    for (int i = 0; i < 12; i++) xv[i] = mn_rng_normal(3, 0, (uint64_t)i);
    ck_assert_ok(mn_exec_feed_data(ex, "x", xv, sizeof xv));
    const char *names[3] = { "a.weight", "a.bias", "w" };
    float before[3][20];
    for (int p = 0; p < 3; p++) {
        mn_tensor *gt = mn_params_get_grad(P, names[p]);
        for (int64_t i = 0; i < mn_tensor_numel(gt); i++) mn_f32(gt)[i] = before[p][i] = 0.25f * (float)(i + 1) - (float)p;
    }
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_RUNTIME);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "faulty.explode"));
    for (int p = 0; p < 3; p++) {
        mn_tensor *gt = mn_params_get_grad(P, names[p]);
        ck_assert_msg(memcmp(mn_f32(gt), before[p], (size_t)mn_tensor_numel(gt) * sizeof(float)) == 0,
                      "the failed run changed the gradient of %s", names[p]);
    }
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(plugin_op_trains_in_a_model)
{
    /* a two-layer net with swish (learnable beta) on a regression target */
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 1);
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(32, 4)), *t = mn_input(g, "t", MN_F32, MN_SHAPE(32, 1));
    mn_node *h = mn_linear(g, "l1", x, 16, true);
    mn_node *in[2] = { h, mn_param(g, "l1.beta", MN_SHAPE(16), (mn_init){ .kind = MN_INIT_ONES }) };
    h = mn_op(g, "swish.swish", in, 2, NULL, 0);
    mn_node *loss = mn_mse_loss(g, mn_linear(g, "l2", h, 1, true), t, MN_REDUCE_MEAN);
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_verify(ex));
    float xv[128], tv[32];
    for (int i = 0; i < 32; i++) {
        double s = 0;
        for (int k = 0; k < 4; k++) { xv[i * 4 + k] = mn_rng_normal(5, 1, (uint64_t)(i * 4 + k)); s += xv[i * 4 + k] * (k + 1); }
        tv[i] = (float)sin(s / 3);
    }
    mn_exec_feed_data(ex, "x", xv, sizeof xv);
    mn_exec_feed_data(ex, "t", tv, sizeof tv);
    mn_optim *o = mn_adam(P, (mn_adam_opts){ .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f });
    double first = 0, last = 0;
    for (int s = 0; s < 300; s++) {
        ck_assert_ok(mn_exec_run(ex));
        if (!s) first = mn_exec_loss(ex);
        last = mn_exec_loss(ex);
        mn_optim_step(o);
        mn_optim_zero_grad(o);
    }
    printf("plugin swish in a model: mse %.4f -> %.4f; beta[0] %.3f\n", first, last, (double)mn_f32(mn_params_get(P, "l1.beta"))[0]);
    ck_assert(last < 0.1 * first);
    ck_assert(mn_f32(mn_params_get(P, "l1.beta"))[0] != 1.0f);      /* the plugin's parameter learned */
    mn_optim_free(o); mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* A plugin op with a pointwise function fuses with built-ins, forward
 * (swish -> scale -> add -> square) and backward, to the same bits. */
START_TEST(plugin_op_fuses_with_builtins)
{
    float loss[2], grads[2][12];
    int groups[2];
    for (int fuse = 0; fuse < 2; fuse++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        mn_node *x = mn_param(g, "x", MN_SHAPE(3, 4), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -2, .b = 2 });
        mn_node *in[2] = { x, mn_param(g, "beta", MN_SHAPE(4), (mn_init){ .kind = MN_INIT_UNIFORM, .a = 0.5, .b = 1.5 }) };
        mn_node *y = mn_add(g, mn_scale(g, mn_op(g, "swish.swish", in, 2, NULL, 0), 2.0f), x);
        mn_exec *ex = mn_compile(g, mn_sum_all(g, mn_square(g, y)), &(mn_compile_opts){ .no_fuse = !fuse, .verify = true });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert_ok(mn_exec_run(ex));
        loss[fuse] = mn_exec_loss(ex);
        groups[fuse] = mn_exec_get_stats(ex).fused_nodes;
        memcpy(grads[fuse], mn_f32(mn_params_get_grad(P, "x")), 12 * sizeof(float));
        mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    }
    ck_assert_int_eq(groups[0], 0);
    ck_assert_int_ge(groups[1], 4);
    ck_assert(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0);
    ck_assert(memcmp(grads[0], grads[1], sizeof grads[0]) == 0);
}
END_TEST

int main(void)
{
    const char *d = getenv("MNEMO_PLUGIN_DIR"), *e = getenv("MNEMO_EXAMPLE_PLUGIN_DIR");
    snprintf(dir, sizeof dir, "%s", d ? d : ".");
    snprintf(examples, sizeof examples, "%s", e ? e : "..");
    Suite *s = suite_create("plugins");
    TCase *tc = tcase_create("plugins");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, example_plugins_load_and_check);
    tcase_add_test(tc, plugin_forward_values);
    tcase_add_test(tc, failures_leave_the_registry_as_it_was);
    tcase_add_test(tc, plugin_errors_at_build_and_run_time);
    tcase_add_test(tc, plugin_op_trains_in_a_model);
    tcase_add_test(tc, failed_run_leaves_gradients_as_they_were);
    tcase_add_test(tc, plugin_op_fuses_with_builtins);
    suite_add_tcase(s, tc);
    int rc = mn_test_run(s);
    mn_plugins_unload();                       /* closes the libraries: nothing leaks under ASan */
    if (mn_plugin_count() != 0 || mn_op_find("swish.swish")) { fprintf(stderr, "unload left plugin ops\n"); return 1; }
    return rc;
}
