/* tests/test_graph.c: the builder's errors (sticky, with op, node and
 * shapes in the message, never a crash), autodiff semantics (fan-out sums,
 * accumulation across runs, no gradient into i32 values), dead-code
 * elimination, feeding, run-time kernel errors, stats and DOT export. */
#include "harness.h"
#include "mnemo_plugin.h"
#include "../graph/exec.h"
#include <dlfcn.h>
#include <string.h>

#define has(msg, frag) ck_assert_msg(strstr((msg), (frag)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (frag))

START_TEST(shape_mismatch_is_sticky)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *a = mn_input(g, "a", MN_F32, MN_SHAPE(2, 3)), *b = mn_input(g, "b", MN_F32, MN_SHAPE(4));
    ck_assert_ptr_null(mn_add(g, a, b));
    ck_assert_int_eq(mn_graph_status(g), MN_ERR_SHAPE);
    has(mn_graph_errmsg(g), "add");
    has(mn_graph_errmsg(g), "[2,3]");
    has(mn_graph_errmsg(g), "[4]");
    /* later calls return NULL and keep the first message */
    ck_assert_ptr_null(mn_relu(g, a));
    ck_assert_ptr_null(mn_input(g, "c", MN_F32, MN_SHAPE(1)));
    has(mn_graph_errmsg(g), "add");
    ck_assert_ptr_null(mn_compile(g, NULL, NULL));
    has(mn_errmsg(), "add");
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(matmul_message_names_node_and_dims)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_graph_set_scope(g, "head");
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(32, 256));
    mn_node *w = mn_param(g, "head.weight", MN_SHAPE(128, 10), (mn_init){ 0 });
    ck_assert_ptr_null(mn_matmul(g, x, w, false, false));
    has(mn_graph_errmsg(g), "matmul \"head.matmul#");
    has(mn_graph_errmsg(g), "inner dims 256 and 128 differ");
    has(mn_graph_errmsg(g), "[32,256]");
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(wrong_dtype)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *i = mn_input(g, "i", MN_I32, MN_SHAPE(3)), *f = mn_input(g, "f", MN_F32, MN_SHAPE(3));
    ck_assert_ptr_null(mn_mul(g, i, f));
    ck_assert_int_eq(mn_graph_status(g), MN_ERR_DTYPE);
    has(mn_graph_errmsg(g), "i32");
    mn_graph_free(g);
    g = mn_graph_new(P);
    mn_node *l = mn_input(g, "l", MN_F32, MN_SHAPE(4, 5)), *t = mn_input(g, "t", MN_F32, MN_SHAPE(4));
    ck_assert_ptr_null(mn_cross_entropy(g, l, t));
    has(mn_graph_errmsg(g), "targets must be i32");
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(null_handles)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(3));
    ck_assert_ptr_null(mn_add(NULL, x, x));
    ck_assert_ptr_null(mn_graph_new(NULL));
    ck_assert_int_eq(mn_last_status(), MN_ERR_MISUSE);
    ck_assert_ptr_null(mn_compile(NULL, NULL, NULL));
    ck_assert_int_eq(mn_exec_run(NULL), MN_ERR_MISUSE);
    ck_assert_int_eq(mn_exec_feed(NULL, "x", NULL), MN_ERR_MISUSE);
    ck_assert_str_eq(mn_graph_errmsg(NULL), "NULL graph");
    ck_assert_int_eq(mn_graph_status(NULL), MN_ERR_MISUSE);
    ck_assert_ptr_null(mn_exec_value(NULL, x));
    ck_assert_ptr_null(mn_mul(g, x, NULL));
    ck_assert_int_eq(mn_graph_status(g), MN_ERR_MISUSE);
    has(mn_graph_errmsg(g), "input 1 is NULL");
    mn_graph_free(g);
    mn_graph_free(NULL);
    mn_exec_free(NULL);
    mn_params_free(P);
}
END_TEST

START_TEST(unknown_names)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    ck_assert_ptr_null(mn_param_get(g, "encoder.weight"));
    ck_assert_int_eq(mn_graph_status(g), MN_ERR_NOTFOUND);
    has(mn_graph_errmsg(g), "encoder.weight");
    mn_graph_free(g);
    g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(3));
    ck_assert_ptr_null(mn_op(g, "swishy", &x, 1, NULL, 0));
    has(mn_graph_errmsg(g), "swishy");
    mn_graph_free(g);
    g = mn_graph_new(P);
    x = mn_input(g, "x", MN_F32, MN_SHAPE(3));
    ck_assert_ptr_null(mn_op(g, "scale", &x, 1, &(float){ 2 }, 8));      /* wrong attribute size */
    ck_assert_int_eq(mn_graph_status(g), MN_ERR_INVALID);
    mn_graph_free(g);
    g = mn_graph_new(P);
    mn_input(g, "x", MN_F32, MN_SHAPE(3));
    ck_assert_ptr_null(mn_input(g, "x", MN_F32, MN_SHAPE(3)));
    ck_assert_int_eq(mn_graph_status(g), MN_ERR_EXISTS);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(param_shape_conflict_and_cross_graph)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P), *h = mn_graph_new(P);
    ck_assert_ptr_nonnull(mn_param(g, "w", MN_SHAPE(3, 4), (mn_init){ 0 }));
    ck_assert_ptr_nonnull(mn_param(h, "w", MN_SHAPE(3, 4), (mn_init){ 0 }));     /* shared */
    ck_assert_ptr_null(mn_param(g, "w", MN_SHAPE(4, 3), (mn_init){ 0 }));
    has(mn_graph_errmsg(g), "exists with shape [3,4], requested [4,3]");
    mn_node *a = mn_input(h, "a", MN_F32, MN_SHAPE(3)), *b;
    mn_graph *k = mn_graph_new(P);
    b = mn_input(k, "b", MN_F32, MN_SHAPE(3));
    ck_assert_ptr_null(mn_add(h, a, b));
    has(mn_graph_errmsg(h), "another graph");
    mn_graph_free(g); mn_graph_free(h); mn_graph_free(k); mn_params_free(P);
}
END_TEST

START_TEST(loss_must_be_scalar)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *w = mn_param(g, "w", MN_SHAPE(2, 3), (mn_init){ .kind = MN_INIT_ONES });
    ck_assert_ptr_null(mn_compile(g, mn_relu(g, w), NULL));
    has(mn_graph_errmsg(g), "must be a f32 scalar");
    has(mn_graph_errmsg(g), "[2,3]");
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* y = sum(x * x + x): dy/dx = 2x + 1 (x used three times) */
START_TEST(fan_out_gradients_are_summed)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_param(g, "x", MN_SHAPE(4), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -2, .b = 2 });
    mn_node *loss = mn_sum_all(g, mn_add(g, mn_mul(g, x, x), x));
    mn_exec *ex = mn_compile(g, loss, NULL);
    ck_assert_ptr_nonnull(ex);
    ck_assert_ok(mn_exec_run(ex));
    const float *v = mn_f32(mn_params_get(P, "x")), *d = mn_f32(mn_params_get_grad(P, "x"));
    double want = 0;
    for (int i = 0; i < 4; i++) { ck_assert_close(d[i], 2 * v[i] + 1, 1e-6); want += v[i] * v[i] + v[i]; }
    ck_assert_close(mn_exec_loss(ex), want, 1e-5);
    /* gradients accumulate across runs until zeroed */
    ck_assert_ok(mn_exec_run(ex));
    for (int i = 0; i < 4; i++) ck_assert_close(d[i], 2 * (2 * v[i] + 1), 1e-6);
    mn_params_zero_grad(P);
    ck_assert_ok(mn_exec_run(ex));
    for (int i = 0; i < 4; i++) ck_assert_close(d[i], 2 * v[i] + 1, 1e-6);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(no_gradient_for_unused_or_integer_values)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *w = mn_param(g, "w", MN_SHAPE(3, 4), (mn_init){ .kind = MN_INIT_ONES });
    mn_param(g, "unused", MN_SHAPE(5), (mn_init){ .kind = MN_INIT_ONES });
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(2, 3)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(2));
    mn_node *dead = mn_exp(g, x);                       /* never reaches the loss */
    mn_node *loss = mn_cross_entropy(g, mn_matmul(g, x, w, false, false), y);
    mn_exec *ex = mn_compile(g, loss, NULL);
    ck_assert_ptr_nonnull(ex);
    ck_assert_ptr_null(mn_exec_value(ex, dead));         /* eliminated */
    float xv[6] = { 1, 2, 3, 4, 5, 6 };
    int32_t yv[2] = { 1, 3 };
    ck_assert_ok(mn_exec_feed_data(ex, "x", xv, sizeof xv));
    ck_assert_ok(mn_exec_feed_data(ex, "y", yv, sizeof yv));
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_close(mn_exec_loss(ex), log(4.0), 1e-6);   /* all logits equal */
    for (int i = 0; i < 5; i++) ck_assert(mn_f32(mn_params_get_grad(P, "unused"))[i] == 0.0f);
    /* dL/dW[k][c] = mean over rows of x[r][k] (softmax 1/4 - onehot) */
    const float *d = mn_f32(mn_params_get_grad(P, "w"));
    ck_assert_close(d[0 * 4 + 1], 0.5 * (1 * (0.25 - 1) + 4 * 0.25), 1e-6);
    ck_assert_close(d[2 * 4 + 3], 0.5 * (3 * 0.25 + 6 * (0.25 - 1)), 1e-6);
    mn_exec_stats st = mn_exec_get_stats(ex);
    ck_assert_int_gt(st.backward_steps, 0);
    ck_assert_int_gt(st.naive_bytes, 0);
    ck_assert_int_le(st.lower_bound_bytes, st.naive_bytes);
    ck_assert_int_ge(st.arena_bytes, st.lower_bound_bytes);
    ck_assert_close(st.flops, 2 * 2 * 3 * 4 + 2 * 2 * 3 * 4 + 4.0 * 8 * 2, 40);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(feed_errors)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(2, 3));
    mn_input(g, "spare", MN_F32, MN_SHAPE(1));
    const mn_node *outs[1] = { mn_relu(g, x) };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_ptr_nonnull(ex);
    mn_tensor *bad = mn_tensor_new(MN_F32, MN_SHAPE(3, 2)), *bad_dt = mn_tensor_new(MN_I32, MN_SHAPE(2, 3));
    ck_assert_int_eq(mn_exec_feed(ex, "x", bad), MN_ERR_SHAPE);
    has(mn_errmsg(), "[3,2]");
    ck_assert_int_eq(mn_exec_feed(ex, "x", bad_dt), MN_ERR_DTYPE);
    ck_assert_int_eq(mn_exec_feed(ex, "nope", bad), MN_ERR_NOTFOUND);
    ck_assert_int_eq(mn_exec_feed_data(ex, "x", bad->data, 8), MN_ERR_SHAPE);
    float one = 1;
    ck_assert_ok(mn_exec_feed_data(ex, "spare", &one, 4));  /* declared but unused: accepted */
    mn_tensor_free(bad); mn_tensor_free(bad_dt);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(kernel_error_at_run_time)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *l = mn_param(g, "l", MN_SHAPE(2, 3), (mn_init){ 0 }), *t = mn_input(g, "t", MN_I32, MN_SHAPE(2));
    mn_node *loss = mn_node_set_name(mn_cross_entropy(g, l, t), "ce");
    mn_exec *ex = mn_compile(g, loss, NULL);
    int32_t tv[2] = { 0, 7 };
    mn_exec_feed_data(ex, "t", tv, sizeof tv);
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_RUNTIME);
    has(mn_errmsg(), "cross_entropy \"ce\"");
    has(mn_errmsg(), "target 7");
    has(mn_exec_errmsg(ex), "outside [0, 3)");
    tv[1] = -100;                                          /* ignored: fine */
    mn_exec_feed_data(ex, "t", tv, sizeof tv);
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_close(mn_exec_loss(ex), log(3.0), 1e-6);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(dot_export)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(8, 5)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(8));
    mn_node *loss = mn_cross_entropy(g, mn_linear(g, "fc", x, 4, true), y);
    mn_exec *ex = mn_compile(g, loss, NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ok(mn_exec_write_dot(ex, f));
    fclose(f);
    has(buf, "digraph mnemo");
    has(buf, "fc.weight");
    has(buf, "matmul");
    has(buf, "cross_entropy_grad");           /* backward nodes */
    has(buf, "#bbdefb");                      /* shaded as backward */
    has(buf, "f32 [8,4]");
    has(buf, "grad of fc.bias");
    free(buf);
    mn_exec_free(ex);
    /* a fused group is a cluster; its never-stored members are dashed; edges still link every node */
    mn_node *z = mn_sigmoid(g, mn_tanh(g, mn_scale(g, x, 2.0f)));
    const mn_node *outs[1] = { z };
    ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_int_eq(mn_exec_get_stats(ex).fused_groups, 1);
    f = open_memstream(&buf, &len);
    ck_assert_ok(mn_exec_write_dot(ex, f));
    fclose(f);
    has(buf, "subgraph cluster_f");
    has(buf, "style=dashed");
    int edges = 0;
    for (const char *p = buf; (p = strstr(p, " -> ")); p++) edges++;
    ck_assert_int_eq(edges, 3);
    free(buf);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(two_graphs_share_parameters)
{
    mn_params *P = mn_params_new();
    mn_graph *train = mn_graph_new(P), *eval = mn_graph_new(P);
    mn_node *x = mn_input(train, "x", MN_F32, MN_SHAPE(4, 3)), *t = mn_input(train, "t", MN_F32, MN_SHAPE(4, 2));
    mn_node *loss = mn_mse_loss(train, mn_linear(train, "fc", x, 2, true), t, MN_REDUCE_MEAN);
    mn_node *x1 = mn_input(eval, "x", MN_F32, MN_SHAPE(1, 3));
    mn_node *y1 = mn_linear(eval, "fc", x1, 2, true);
    mn_exec *tr = mn_compile(train, loss, NULL);
    const mn_node *outs[1] = { y1 };
    mn_exec *ev = mn_compile(eval, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_ptr_nonnull(tr); ck_assert_ptr_nonnull(ev);
    ck_assert_int_eq(mn_params_count(P), 2);
    float xv[12] = { 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1 }, tv[8] = { 1, 2, 3, 4, 5, 6, 9, 12 };
    mn_exec_feed_data(tr, "x", xv, sizeof xv);
    mn_exec_feed_data(tr, "t", tv, sizeof tv);
    float first = 0;
    for (int step = 0; step < 300; step++) {
        ck_assert_ok(mn_exec_run(tr));
        if (!step) first = mn_exec_loss(tr);
        for (int i = 0; i < 2; i++) {
            float *w = mn_f32(mn_params_value(P, i)), *d = mn_f32(mn_params_grad(P, i));
            for (int64_t k = 0; k < mn_tensor_numel(mn_params_value(P, i)); k++) w[k] -= 0.1f * d[k];
        }
        mn_params_zero_grad(P);
    }
    ck_assert_float_lt(mn_exec_loss(tr), 1e-3f * first);
    float q[3] = { 0, 1, 0 };
    mn_exec_feed_data(ev, "x", q, sizeof q);
    ck_assert_ok(mn_exec_run(ev));
    ck_assert_close(mn_f32(mn_exec_value(ev, y1))[0], 3.0, 0.05);
    ck_assert_close(mn_f32(mn_exec_value(ev, y1))[1], 4.0, 0.05);
    mn_exec_free(tr); mn_exec_free(ev);
    mn_graph_free(train); mn_graph_free(eval); mn_params_free(P);
}
END_TEST

/* ---- fusion and common subexpressions ---- */

/* Runs `loss` compiled with and without the fusion pass (threads t) and
 * returns whether loss, the kept output and every gradient are bit-identical. */
typedef struct { float loss; float *grads; float *out; int64_t nout; } run_result;

static run_result run_once(mn_graph *g, mn_params *P, mn_node *loss, mn_node *out, bool no_fuse, int threads, mn_exec_stats *st)
{
    const mn_node *outs[1] = { out };
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = threads, .no_fuse = no_fuse, .verify = true,
                                                         .outputs = outs, .noutputs = out ? 1 : 0 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    for (int i = 0; i < mn_exec_input_count(ex); i++) {
        const mn_tensor *t = mn_exec_input(ex, i);
        mn_rng_fill_normal(mn_f32(t), mn_tensor_numel(t), 7, (uint64_t)i + 1, 0, 1);
    }
    mn_params_zero_grad(P);
    ck_assert_ok(mn_exec_run(ex));
    run_result r = { mn_exec_loss(ex), NULL, NULL, 0 };
    int64_t total = 0;
    for (int i = 0; i < mn_params_count(P); i++) total += mn_tensor_numel(mn_params_value(P, i));
    r.grads = malloc((size_t)total * sizeof *r.grads);
    for (int i = 0, o = 0; i < mn_params_count(P); o += (int)mn_tensor_numel(mn_params_value(P, i)), i++)
        memcpy(r.grads + o, mn_f32(mn_params_grad(P, i)), mn_tensor_bytes(mn_params_grad(P, i)));
    if (out) {
        const mn_tensor *v = mn_exec_value(ex, out);
        ck_assert_ptr_nonnull(v);
        r.nout = mn_tensor_numel(v);
        r.out = malloc(mn_tensor_bytes(v));
        memcpy(r.out, mn_f32(v), mn_tensor_bytes(v));
    }
    if (st) *st = mn_exec_get_stats(ex);
    mn_exec_free(ex);
    return r;
}

static void expect_identical(mn_graph *g, mn_params *P, mn_node *loss, mn_node *out, int min_nodes)
{
    int64_t total = 0;
    for (int i = 0; i < mn_params_count(P); i++) total += mn_tensor_numel(mn_params_value(P, i));
    mn_exec_stats fs, us;
    run_result ref = run_once(g, P, loss, out, true, 1, &us);
    for (int threads = 1; threads <= 2; threads++) {
        run_result f = run_once(g, P, loss, out, false, threads, &fs);
        ck_assert_msg(fs.fused_groups >= 1 && fs.fused_nodes >= min_nodes, "%d fused groups of %d nodes, expected at least %d nodes",
                      fs.fused_groups, fs.fused_nodes, min_nodes);
        if (threads == 1) printf("fused: %d steps -> %d (%d groups of %d nodes)\n", us.steps, fs.steps, fs.fused_groups, fs.fused_nodes);
        ck_assert_int_lt(fs.steps, us.steps);
        ck_assert_int_eq(us.fused_groups, 0);
        ck_assert_msg(memcmp(&f.loss, &ref.loss, sizeof f.loss) == 0, "loss %.9g fused vs %.9g", f.loss, ref.loss);
        for (int64_t k = 0; k < total; k++)
            ck_assert_msg(memcmp(&f.grads[k], &ref.grads[k], sizeof(float)) == 0, "gradient %lld: %.9g fused vs %.9g",
                          (long long)k, f.grads[k], ref.grads[k]);
        for (int64_t k = 0; k < ref.nout; k++)
            ck_assert_msg(memcmp(&f.out[k], &ref.out[k], sizeof(float)) == 0, "output %lld differs", (long long)k);
        free(f.grads); free(f.out);
    }
    free(ref.grads); free(ref.out);
}

/* Chains with broadcast inputs ([H] and [B, 1]), a shared input read twice,
 * a value that is also requested as an output (must stay materialised) and
 * an activation whose result feeds two chains. */
START_TEST(fusion_is_bit_identical)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    const int64_t B = 37, H = 70;     /* 2590 elements: several tiles, a ragged last one */
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, H)), *r = mn_input(g, "r", MN_F32, MN_SHAPE(B, 1));
    mn_node *b = mn_param(g, "b", MN_SHAPE(H), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_node *w = mn_param(g, "w", MN_SHAPE(B, H), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_node *u = mn_add(g, mn_mul(g, x, w), b);
    mn_node *s = mn_sigmoid(g, u), *t = mn_tanh(g, mn_mul(g, u, r));
    mn_node *out = mn_add(g, mn_mul(g, s, t), mn_scale(g, mn_mul(g, x, x), 0.25f));
    mn_node *y = mn_gelu(g, mn_sub(g, mn_mul(g, out, s), mn_relu(g, mn_neg(g, t))), false);
    /* 3-D broadcasts: [4, 1, 6] and [5, 1] over [4, 5, 6] (gathers carry across dims) */
    mn_node *a3 = mn_input(g, "a3", MN_F32, MN_SHAPE(4, 5, 6)), *m3 = mn_input(g, "m3", MN_F32, MN_SHAPE(4, 1, 6));
    mn_node *c3 = mn_param(g, "c3", MN_SHAPE(5, 1), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_node *z = mn_mul(g, mn_tanh(g, mn_mul(g, a3, m3)), mn_add(g, a3, c3));
    /* gate chunks: slices along the last axis (step 1 and 2) read in place by the fused kernel */
    mn_node *gt = mn_input(g, "gates", MN_F32, MN_SHAPE(B, 4 * H));
    mn_node *gi = mn_sigmoid(g, mn_slice(g, gt, 1, 0, H, 1)), *gg = mn_tanh(g, mn_slice(g, gt, 1, 2 * H, 3 * H, 1));
    mn_node *go = mn_mul(g, mn_slice(g, gt, 1, 1, 2 * H, 2), mn_slice(g, gt, 1, 3 * H, 4 * H, 1));
    mn_node *cell = mn_add(g, mn_mul(g, gi, gg), mn_mul(g, go, w));
    mn_node *loss = mn_add(g, mn_add(g, mn_mean(g, mn_square(g, y), 0, NULL, false), mn_sum_all(g, mn_sigmoid(g, z))),
                           mn_sum_all(g, mn_square(g, cell)));
    expect_identical(g, P, loss, out, 20);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* The bias epilogue (graph/fuse.c): a packed input projection's two bias
 * adds ((x W^T + b1) + b2, as models/rnn.c builds an lstm block's) go into
 * matmul_packed, which adds them after each element's whole product: loss,
 * the projection (requested as an output) and every gradient keep the
 * unfused bits on 1 and 2 threads, and the compiled graph says 2 adds
 * went. A projection read twice (here also by a square) keeps its add. */
START_TEST(bias_epilogue_is_bit_identical)
{
    for (int shared = 0; shared < 2; shared++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        const int64_t T = 3, B = 5, I = 20, N = 40;     /* 15 rows: a partial strip; 40 columns: a partial panel */
        mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(T, B, I));
        mn_node *w = mn_param(g, "w", MN_SHAPE(N, I), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
        mn_node *b1 = mn_param(g, "b1", MN_SHAPE(N), (mn_init){ .kind = MN_INIT_NORMAL, .b = 3 });
        mn_node *b2 = mn_param(g, "b2", MN_SHAPE(N), (mn_init){ .kind = MN_INIT_NORMAL, .b = 3 });
        mn_node *xp = mn_matmul_packed(g, x, w, mn_pack_weight(g, w, true), true);
        mn_node *y = mn_add(g, mn_add(g, xp, b1), b2);
        mn_node *loss = mn_sum_all(g, mn_square(g, mn_tanh(g, y)));
        if (shared) loss = mn_add(g, loss, mn_sum_all(g, mn_square(g, xp)));
        expect_identical(g, P, loss, y, 2);
        mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2 });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert_msg(mn_exec_stat(ex, "fuse.epilogue_adds") == (shared ? 0 : 2), "%s: %g adds in the epilogue",
                      shared ? "projection read twice" : "projection", mn_exec_stat(ex, "fuse.epilogue_adds"));
        mn_exec_free(ex);
        mn_graph_free(g); mn_params_free(P);
    }
}
END_TEST

/* Row tiles (graph/fuse.c): rows of 600 (two tiles each, the second
 * ragged) read gate slices in place, one slice with a step gathered, a
 * bias broadcast over the rows read in place, and pieces written into
 * their concat in place: the same bits as unfused, on 1 and 2 threads. */
START_TEST(fusion_row_tiles_are_bit_identical)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    const int64_t B = 9, H = 600;
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 4 * H));
    mn_node *w = mn_param(g, "w", MN_SHAPE(B, H), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_node *bias = mn_param(g, "bias", MN_SHAPE(H), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_node *gi = mn_sigmoid(g, mn_add(g, mn_slice(g, x, 1, 0, H, 1), bias));
    mn_node *gg = mn_tanh(g, mn_slice(g, x, 1, 2 * H, 3 * H, 1));
    mn_node *gs = mn_slice(g, x, 1, 1, 2 * H + 1, 2);                    /* a step of 2: gathered */
    mn_node *a = mn_add(g, mn_mul(g, gi, gg), mn_mul(g, gs, w));
    mn_node *b = mn_mul(g, mn_tanh(g, mn_slice(g, x, 1, 3 * H, 4 * H, 1)), w);
    mn_node *cat = mn_concat(g, (mn_node *[]){ a, b }, 2, 1);
    mn_node *loss = mn_sum_all(g, mn_square(g, cat));
    expect_identical(g, P, loss, cat, 8);
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .outputs = (const mn_node *[]){ cat }, .noutputs = 1 });
    ck_assert_ptr_nonnull(ex);
    ck_assert_int_ge(mn_exec_get_stats(ex).placed, 2);     /* a and b are written into cat by their fused steps */
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* OpenMP regions opened, counted by standing in front of libgomp's entry
 * point for `#pragma omp parallel` (the static library binds to this one). */
static int omp_regions;
void GOMP_parallel(void (*fn)(void *), void *data, unsigned nthreads, unsigned flags);
void GOMP_parallel(void (*fn)(void *), void *data, unsigned nthreads, unsigned flags)
{
    static void (*real)(void (*)(void *), void *, unsigned, unsigned);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "GOMP_parallel");
    __atomic_add_fetch(&omp_regions, 1, __ATOMIC_RELAXED);
    real(fn, data, nthreads, flags);
}

/* None counted on one thread (what names the work counted), some on two. */
static void check_regions(int threads, const char *what)
{
    if (threads == 1) ck_assert_msg(omp_regions == 0, "1 thread: %d OpenMP regions in %s", omp_regions, what);
    else ck_assert_msg(omp_regions > 0, "2 threads: no OpenMP region counted");
}

/* On one thread the elementwise kernels, the fused kernel, the sums,
 * concat's copies and the gradient sinks run as plain loops: an OpenMP region, even of one
 * thread or with a false if clause, costs microseconds (libgomp makes a
 * team), as much as a small kernel. On two threads the same graph does
 * open regions (the counter works). */
START_TEST(one_thread_opens_no_openmp_region)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    const int64_t B = 64, H = 1024;
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, H));
    mn_node *bias = mn_param(g, "bias", MN_SHAPE(H), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_node *w = mn_param(g, "w", MN_SHAPE(B, H), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_node *y = mn_mul(g, mn_tanh(g, mn_mul(g, x, w)), mn_sigmoid(g, mn_add(g, x, bias)));
    mn_node *cat = mn_concat(g, (mn_node *[]){ x, y }, 2, 0);      /* x, an input, is copied */
    mn_node *loss = mn_add(g, mn_sum_all(g, mn_add(g, mn_square(g, y), mn_relu(g, mn_sub(g, y, bias)))), mn_sum_all(g, cat));
    float *xs = malloc(B * H * sizeof *xs);
    for (int64_t i = 0; i < B * H; i++) xs[i] = (float)(i % 17) * 0.1f - 0.8f;
    for (int threads = 1; threads <= 2; threads++) {
        mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = threads });
        ck_assert_ptr_nonnull(ex);
        ck_assert_int_eq(mn_exec_feed_data(ex, "x", xs, B * H * sizeof *xs), MN_OK);
        ck_assert_int_eq(mn_exec_run(ex), MN_OK);
        omp_regions = 0;
        ck_assert_int_eq(mn_exec_run(ex), MN_OK);
        check_regions(threads, "a run");
        mn_exec_free(ex);
    }
    free(xs);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* The rest of a training step on one thread opens no region either: the
 * embedding's index_select and its backward, cross-entropy and its
 * gradient, and the optimizer's update and zeroing (ops/index.c,
 * ops/loss.c, optim/optim.c); on two threads the step opens some (the
 * zeroing of this small store stays a plain loop there too). */
START_TEST(one_thread_training_step_opens_no_openmp_region)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    const int64_t N = 2048, V = 96, E = 64;
    mn_node *tok = mn_input(g, "tok", MN_I32, MN_SHAPE(N)), *tgt = mn_input(g, "tgt", MN_I32, MN_SHAPE(N));
    mn_node *logits = mn_linear(g, "head", mn_embedding(g, "emb", tok, V, E), V, true);
    mn_node *loss = mn_cross_entropy(g, logits, tgt);
    int32_t *ids = malloc(N * sizeof *ids);
    for (int64_t i = 0; i < N; i++) ids[i] = (int32_t)(i * 7 % V);
    for (int threads = 1; threads <= 2; threads++) {
        mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = threads });
        ck_assert_ptr_nonnull(ex);
        mn_optim *o = mn_adam(P, MN_ADAM_DEFAULTS);
        ck_assert_ptr_nonnull(o);
        mn_optim_set_threads(o, threads);
        ck_assert_int_eq(mn_exec_feed_data(ex, "tok", ids, N * sizeof *ids), MN_OK);
        ck_assert_int_eq(mn_exec_feed_data(ex, "tgt", ids, N * sizeof *ids), MN_OK);
        ck_assert_int_eq(mn_exec_run(ex), MN_OK);
        ck_assert_int_eq(mn_optim_step(o), MN_OK);
        mn_optim_zero_grad(o);
        omp_regions = 0;
        ck_assert_int_eq(mn_exec_run(ex), MN_OK);
        ck_assert_int_eq(mn_optim_step(o), MN_OK);
        mn_optim_zero_grad(o);
        check_regions(threads, "a training step");
        mn_optim_free(o);
        mn_exec_free(ex);
    }
    free(ids);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Level l's computing step (views compute nothing), or NULL. */
static const mn_step *computing_step(const mn_exec *ex, int l)
{
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++)
        if (mn__kind(&ex->vals[ex->steps[s].out]) != MN_VAL_ALIAS) return &ex->steps[s];
    return NULL;
}

/* Barriers dropped between a packed product's level and a fused step's
 * level (either order) in ex's chains. */
static int product_cell_drops(const mn_exec *ex)
{
    int n = 0;
    for (int l = 0; l + 1 < ex->nlevels; l++) {
        const mn_step *a = computing_step(ex, l), *b = computing_step(ex, l + 1);
        if (!ex->team_free[l] || !a || !b) continue;
        bool pa = strcmp(a->node->op->name, "matmul_packed") == 0, pb = strcmp(b->node->op->name, "matmul_packed") == 0;
        n += (pa && b->fused) || (pb && a->fused);
    }
    return n;
}

static bool tensor_meets(const mn_tensor *t, uintptr_t lo, uintptr_t hi)
{
    uintptr_t a = (uintptr_t)t->data;
    return t->data && lo < a + (uintptr_t)mn_tensor_bytes(t) && a < hi;
}

/* The end of the input or output of level l's steps that holds byte at
 * (the furthest if several), or 0. */
static uintptr_t level_end(const mn_exec *ex, int l, uintptr_t at)
{
    uintptr_t end = 0;
    for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
        const mn_step *st = &ex->steps[s];
        for (int i = -1; i < st->nin + st->nxout; i++) {
            const mn_value *v = i < 0 ? &ex->vals[st->out] : i >= st->nin ? &ex->vals[st->xout[i - st->nin]] : NULL;
            const mn_tensor *t = v ? &v->t : &st->tin[i];
            uintptr_t a = (uintptr_t)t->data, b = a + (uintptr_t)mn_tensor_bytes(t);
            if (v && v->scatter) {          /* a piece written straight into its concat, at these strides */
                int64_t last = 0;
                for (int d = 0; d < t->shape.ndim; d++) last += (t->shape.d[d] - 1) * v->scatter_st[d];
                b = a + (uintptr_t)(last + 1) * sizeof(float);
            }
            if (t->data && a <= at && at < b && b > end) end = b;
        }
    }
    return end;
}

/* Whether [lo, hi) is covered by inputs and outputs of level l's steps. */
static bool level_holds(const mn_exec *ex, int l, uintptr_t lo, uintptr_t hi)
{
    while (lo < hi) {
        uintptr_t e = level_end(ex, l, lo);
        if (!e) return false;
        lo = e;
    }
    return true;
}

/* The last level a window of a product at level l may cover
 * (graph/window.c): the levels after l up to the next one holding a packed
 * product (which prefetches for its own successors), at most 4. */
static int window_last(const mn_exec *ex, int l)
{
    int last = l + 1;
    for (int lv = l + 2; lv <= l + 4 && lv < ex->nlevels; lv++) {
        bool product = false;
        for (int k = ex->level_start[lv]; k < ex->level_start[lv + 1]; k++)
            product |= !ex->steps[k].fused && !strcmp(ex->steps[k].node->op->name, "matmul_packed");
        if (product) break;
        last = lv;
    }
    return last;
}

/* A one-thread training run's loss and gradients (into grads). */
/* An RNN over x [T, B, I] (an input of g) with the mean square of its
 * outputs as the loss: the graph the executor tests below compile. */
static mn_node *rnn_square_loss(mn_graph *g, mn_rnn_mode mode, int64_t T, int64_t B, int64_t I, int64_t H)
{
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(T, B, I));
    mn_rnn_out o = mn_rnn(g, "rnn", x, (mn_rnn_opts){ .mode = mode, .hidden = H });
    return mn_mean(g, mn_square(g, o.output), 0, NULL, false);
}

static float window_run(mn_exec *ex, mn_params *P, float *grads)
{
    mn_params_zero_grad(P);
    ck_assert_ok(mn_exec_run(ex));
    for (int i = 0, o = 0; i < mn_params_count(P); o += (int)mn_tensor_numel(mn_params_value(P, i)), i++)
        memcpy(grads + o, mn_f32(mn_params_grad(P, i)), mn_tensor_bytes(mn_params_grad(P, i)));
    return mn_exec_loss(ex);
}

/* Whether [lo, hi) is covered by the union of sp's n spans. */
static bool spans_cover(const mn__span *sp, int n, uintptr_t lo, uintptr_t hi)
{
    while (lo < hi) {
        uintptr_t end = 0;
        for (int i = 0; i < n; i++)
            if (sp[i].lo <= lo && lo < sp[i].hi && sp[i].hi > end) end = sp[i].hi;
        if (!end) return false;
        lo = end;
    }
    return true;
}

/* A run's loss and gradients (into grads), the windows emptied or not. */
static float window_ab(mn_exec *ex, mn_params *P, float *grads, bool empty);

/* On two threads the packed products inside a chain get one window per
 * thread's part (graph/window.c): every span of part t's window lies in
 * the bytes part t of the next level touches (graph/run.c's account of
 * that thread's part), and the windows change no bit. */
static void two_thread_windows(mn_graph *g, mn_params *P, mn_node *loss, int64_t T, int64_t total)
{
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_eq(ex->win_parts, 2);
    int given = 0, W = ex->win_parts;
    mn__span *next = malloc(4 * MN_SPANS_MAX * sizeof *next);
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        int l = st->level;
        if (ex->win_at[s * W] == ex->win_at[s * W + W]) continue;
        given++;
        ck_assert_str_eq(st->node->op->name, "matmul_packed");
        int last = window_last(ex, l);
        for (int t = 0; t < W; t++) {
            int m = 0;
            for (int k = ex->level_start[l + 1]; k < ex->level_start[last + 1]; k++) {
                int got = mn__chain_part_spans(ex, &ex->steps[k], t, W, next + m, 4 * MN_SPANS_MAX - m);
                if (got > 0) m += got;
            }
            ck_assert_int_gt(ex->win_at[s * W + t + 1], ex->win_at[s * W + t]);
            for (int i = ex->win_at[s * W + t]; i < ex->win_at[s * W + t + 1]; i++)
                ck_assert_msg(spans_cover(next, m, ex->win[i].lo, ex->win[i].hi),
                              "step %d, thread %d: window span %d is not in its own part of the following levels", s, t, i);
        }
    }
    free(next);
    printf("2 threads: %d products with a window per thread\n", given);
    ck_assert_int_eq(given, (int)mn_exec_stat(ex, "run.windows"));
    ck_assert_int_ge(given, 2 * (int)(T - 2));
    float *with = malloc((size_t)total * sizeof *with), *without = malloc((size_t)total * sizeof *without);
    const mn_tensor *xt = mn_exec_input(ex, 0);
    mn_rng_fill_normal(mn_f32(xt), mn_tensor_numel(xt), 7, 1, 0, 1);
    float l1 = window_ab(ex, P, with, false), l2 = window_ab(ex, P, without, true);
    ck_assert_msg(memcmp(&l1, &l2, sizeof l1) == 0, "2 threads: loss %.9g with windows vs %.9g", l1, l2);
    ck_assert_msg(memcmp(with, without, (size_t)total * sizeof *with) == 0, "2 threads: gradients differ with the windows");
    free(with); free(without);
    mn_exec_free(ex);
}

static float window_ab(mn_exec *ex, mn_params *P, float *grads, bool empty)
{
    int *kept = ex->win_at;
    if (empty) ex->win_at = calloc((size_t)ex->nsteps * (size_t)ex->win_parts + 1, sizeof *ex->win_at);
    float l = window_run(ex, P, grads);
    if (empty) {
        free(ex->win_at);
        ex->win_at = kept;
    }
    return l;
}

/* On one thread each packed product of an RNN's time steps gets a prefetch
 * window (graph/window.c): bytes that the steps of the levels after it (up
 * to the next packed product) read or write, none of its own (A, the packed
 * W, the C it writes), and among them all of the next cell's output (the
 * lines the cell will write; the input projections' next steps write
 * blocks past the window's cap); on two threads, see two_thread_windows.
 * The window changes no bit: the run with the windows emptied gives the
 * same loss and gradients. LSTM and GRU; and (_i 2) the LSTM under a
 * memory budget at which tanh(c) is mirrored: rebuilt one level before the
 * backward cell that reads it, so the cell is two levels after its product
 * and must still be in the product's window. */
START_TEST(packed_products_prefetch_the_next_level)
{
    const int64_t T = 8, B = 32, H = 128;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = rnn_square_loss(g, _i == 1 ? MN_RNN_GRU : MN_RNN_LSTM, T, B, 16, H);
    mn_compile_opts opts = { .threads = 1 };
    mn_exec *ex = mn_compile(g, loss, &opts);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    if (_i == 2) {
        opts.memory_budget = mn_exec_get_stats(ex).arena_bytes - 1;
        mn_exec_free(ex);
        ex = mn_compile(g, loss, &opts);
        ck_assert_msg(ex != NULL, "budget %lld: %s", (long long)opts.memory_budget, mn_graph_errmsg(g));
        ck_assert_msg(mn_exec_stat(ex, "recompute.mirrored_values") > 0, "no value mirrored under the budget");
    }
    int given = 0, cells = 0, far = 0;
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        int w0 = ex->win_at[s], w1 = ex->win_at[s + 1], l = st->level;
        if (w0 == w1) continue;
        int last = window_last(ex, l);
        given++;
        ck_assert_str_eq(st->node->op->name, "matmul_packed");
        ck_assert_int_lt(l + 1, ex->nlevels);
        for (int i = w0; i < w1; i++) {
            uintptr_t lo = ex->win[i].lo, hi = ex->win[i].hi;
            bool in = false;
            for (int lv = l + 1; lv <= last && !in; lv++) in = level_holds(ex, lv, lo, hi);
            ck_assert_msg(lo < hi && in, "step %d: window span %d is not a following level's", s, i - w0);
            ck_assert_msg(!tensor_meets(&ex->vals[st->out].t, lo, hi), "step %d: the window holds the product's output", s);
            for (int k = 0; k < st->nin; k++)
                ck_assert_msg(!tensor_meets(&st->tin[k], lo, hi), "step %d: the window holds the product's input %d", s, k);
        }
        for (int k = ex->level_start[l + 1]; k < ex->level_start[last + 1]; k++) {
            const mn_step *c = &ex->steps[k];
            if (!c->fused || ex->vals[c->out].scatter || mn_tensor_bytes(&ex->vals[c->out].t) > (size_t)(B * H * 4)) continue;
            uintptr_t lo = (uintptr_t)ex->vals[c->out].t.data, hi = lo + (uintptr_t)mn_tensor_bytes(&ex->vals[c->out].t);
            bool held = tensor_meets(&ex->vals[st->out].t, lo, hi);       /* written in place of the product's C */
            for (int i = 0; i < st->nin; i++) held |= tensor_meets(&st->tin[i], lo, hi);
            if (held) continue;
            for (int i = w0; i < w1 && !held; i++) held = ex->win[i].lo <= lo && hi <= ex->win[i].hi;
            ck_assert_msg(held, "step %d: the next cell's output is not in the window", s);
            cells++;
            far += c->level > l + 1;
        }
    }
    printf("%s, %lld steps, 1 thread: %d products with a window, %d with the next cell's output (%d of them two or more levels on)\n",
           _i == 1 ? "gru" : _i ? "lstm under a budget" : "lstm", (long long)T, given, cells, far);
    if (_i == 2) ck_assert_int_ge(far, (int)(T - 2));
    ck_assert_int_eq(given, (int)mn_exec_stat(ex, "run.windows"));
    ck_assert_int_ge(given, 2 * (int)(T - 1));
    ck_assert_int_ge(cells, (int)(T - 2));
    int64_t total = 0;
    for (int i = 0; i < mn_params_count(P); i++) total += mn_tensor_numel(mn_params_value(P, i));
    float *with = malloc((size_t)total * sizeof *with), *without = malloc((size_t)total * sizeof *without);
    const mn_tensor *xt = mn_exec_input(ex, 0);
    mn_rng_fill_normal(mn_f32(xt), mn_tensor_numel(xt), 7, 1, 0, 1);
    float l1 = window_ab(ex, P, with, false), l2 = window_ab(ex, P, without, true);
    ck_assert_msg(memcmp(&l1, &l2, sizeof l1) == 0, "loss %.9g with windows vs %.9g", l1, l2);
    ck_assert_msg(memcmp(with, without, (size_t)total * sizeof *with) == 0, "gradients differ with the windows");
    free(with); free(without);
    mn_exec_free(ex);
    two_thread_windows(g, P, loss, T, total);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* One RNN training run on 2 threads: its loss, the OpenMP regions it
 * opened and its gradients (copied into grads). */
static float rnn_run(mn_graph *g, mn_params *P, mn_node *loss, bool anomaly, int *regions, float *grads, double *dropped,
                     int *mixed)
{
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2, .detect_anomaly = anomaly });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    *dropped = mn_exec_stat(ex, "run.barriers_dropped");
    *mixed = product_cell_drops(ex);
    const mn_tensor *x = mn_exec_input(ex, 0);
    mn_rng_fill_normal(mn_f32(x), mn_tensor_numel(x), 7, 1, 0, 1);
    ck_assert_ok(mn_exec_run(ex));
    mn_params_zero_grad(P);
    omp_regions = 0;
    ck_assert_ok(mn_exec_run(ex));
    *regions = omp_regions;
    float l = mn_exec_loss(ex);
    for (int i = 0, o = 0; i < mn_params_count(P); o += (int)mn_tensor_numel(mn_params_value(P, i)), i++)
        memcpy(grads + o, mn_f32(mn_params_grad(P, i)), mn_tensor_bytes(mn_params_grad(P, i)));
    mn_exec_free(ex);
    return l;
}

/* On two threads the time steps of an RNN (a packed product and a fused
 * cell each, forward and backward, and the GRU's small side-by-side sums
 * and concats between them) run as chains of levels in one OpenMP region
 * per chain, not a region per level (graph/run.c), with the bits of the
 * same run level by level (anomaly mode checks every level, so it runs no
 * chains: a region per step there). Inside a chain the barrier between a
 * step's product and its cell, and between the cell and the next step's
 * product, is dropped (each thread reads only the rows it wrote) when the
 * product and the cell cut the batch at the same rows (32 rows: 16 and
 * 16), and kept when they do not (24 rows: the product's strips of 8 go 8
 * and 16, the cell's rows 12 and 12): the bits are those of the
 * level-by-level run in both. LSTM, GRU and the tanh RNN, whose [32, 128]
 * cell is too small to share on its own but is cut in a chain (fuse.c). */
static void rnn_chains(mn_rnn_mode mode, int64_t T, int64_t B, int64_t I, int64_t H);

START_TEST(rnn_time_steps_share_one_region_on_two_threads)
{
    static const mn_rnn_mode modes[3] = { MN_RNN_LSTM, MN_RNN_GRU, MN_RNN_TANH };
    rnn_chains(modes[_i % 3], 16, _i >= 3 ? 24 : 32, 16, 128);
}
END_TEST

/* A small RNN (batch 1, hidden 8: real-time tagging or generation) whose
 * steps each run on one thread level by level gets no chain: a chain's
 * region and barriers would cost it 40x (11-16 us a run against 660-1109
 * us, found by review). Same bits, no more regions than level by level. */
START_TEST(small_rnn_steps_get_no_chain)
{
    rnn_chains(_i ? MN_RNN_GRU : MN_RNN_LSTM, 16, 1, 16, 8);
}
END_TEST

/* A concat whose pieces are not in place (an RNN's output stack: 64
 * pieces of [1, B, H] along axis 0, one block each) copies its bytes in
 * one OpenMP region on 2 threads, each thread half of them (ops/index.c;
 * split piece by piece it opened a region per piece and each piece's one
 * block ran on one thread), with the bits of the 1-thread copy. */
START_TEST(concat_copies_in_one_region)
{
    enum { PIECES = 12, B = 40, H = 1000 };
    const mn_op_def *op = mn_op_find("concat");
    ck_assert_ptr_nonnull(op);
    mn_tensor in[PIECES], out[2];
    float *data = malloc(sizeof(float) * PIECES * B * H), *y[2];
    for (int i = 0; i < PIECES * B * H; i++) data[i] = (float)i * 0.5f;
    for (int k = 0; k < PIECES; k++) in[k] = (mn_tensor){ .dtype = MN_F32, .shape = MN_SHAPE(1, B, H), .data = data + (size_t)k * B * H };
    mn_cat_attrs at = { .axis = 0 };
    for (int r = 0; r < 2; r++) {
        y[r] = calloc((size_t)PIECES * B * H, sizeof(float));
        out[r] = (mn_tensor){ .dtype = MN_F32, .shape = MN_SHAPE(PIECES, B, H), .data = y[r] };
        char msg[128] = "";
        mn_kernel_ctx c = { .nin = PIECES, .in = in, .out = &out[r], .attrs = &at, .nthreads = r + 1, .msg = msg, .msglen = sizeof msg };
        omp_regions = 0;
        ck_assert_ok(op->forward(&c));
        printf("concat of %d pieces [1, %d, %d] on %d thread(s): %d OpenMP regions\n", PIECES, B, H, r + 1, omp_regions);
        ck_assert_int_eq(omp_regions, r);
    }
    ck_assert(memcmp(y[0], data, sizeof(float) * PIECES * B * H) == 0);
    ck_assert(memcmp(y[1], data, sizeof(float) * PIECES * B * H) == 0);
    /* along axis 1: [B, 3, H] and [B, 9, H], blocks of each outer index */
    mn_tensor two[2] = { { .dtype = MN_F32, .shape = MN_SHAPE(B, 3, H), .data = data },
                         { .dtype = MN_F32, .shape = MN_SHAPE(B, 9, H), .data = data + (size_t)B * 3 * H } };
    mn_tensor o = { .dtype = MN_F32, .shape = MN_SHAPE(B, 12, H), .data = y[1] };
    at.axis = 1;
    char msg[128] = "";
    ck_assert_ok(op->forward(&(mn_kernel_ctx){ .nin = 2, .in = two, .out = &o, .attrs = &at, .nthreads = 2, .msg = msg, .msglen = sizeof msg }));
    for (int b = 0; b < B; b++)
        for (int j = 0; j < 12; j++)
            for (int h = 0; h < H; h += 97) {
                float want = j < 3 ? data[((size_t)b * 3 + j) * H + h] : data[(size_t)B * 3 * H + ((size_t)b * 9 + j - 3) * H + h];
                ck_assert_msg(y[1][((size_t)b * 12 + j) * H + h] == want, "axis 1: [%d, %d, %d]", b, j, h);
            }
    free(data); free(y[0]); free(y[1]);
}
END_TEST

/* A column sum costs one add per input element (ops/reduce.c): the bias
 * gradient of a block of steps, [1024, 1024] summed to [1024], is a big
 * step that every thread shares on 2 threads, not a one-thread step beside
 * tiny ones (counted by its output it was 1,024 FLOPs). */
START_TEST(column_sums_are_big_steps)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(1024, 1024));
    mn_node *b = mn_param(g, "b", MN_SHAPE(1024), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -1, .b = 1 });
    mn_node *loss = mn_sum_all(g, mn_square(g, mn_add(g, x, b)));
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    int sums = 0;
    for (int s = 0; s < ex->nsteps; s++) {
        const mn_step *st = &ex->steps[s];
        if (st->fused || strcmp(st->node->op->name, "sum") != 0 || mn_shape_numel(st->node->desc.shape) != 1024) continue;
        sums++;
        ck_assert_msg(st->big, "the column sum of [1024, 1024] is not big (%g FLOPs)", st->flops);
    }
    ck_assert_int_eq(sums, 1);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Levels holding a fused step of shape [B, H] (a cell) and another
 * computing step, and the cells in all (*cells). */
static int crowded_cells(const mn_exec *ex, int64_t B, int64_t H, int *cells)
{
    int n = 0;
    *cells = 0;
    for (int l = 0; l < ex->nlevels; l++) {
        int computing = 0, here = 0;
        for (int s = ex->level_start[l]; s < ex->level_start[l + 1]; s++) {
            const mn_step *st = &ex->steps[s];
            if (mn__kind(&ex->vals[st->out]) == MN_VAL_ALIAS) continue;
            computing++;
            mn_shape sh = st->node->desc.shape;
            here += st->fused && sh.ndim == 2 && sh.d[0] == B && sh.d[1] == H;
        }
        *cells += here;
        n += here && computing > 1;
    }
    return n;
}

/* The GRU's b_hn (inside r * (.)) is added per step from a [T, H]
 * broadcast, row t at step t, so its per-step gradients meet in one concat
 * and one sum (models/rnn.c): no chain of adds whose members would sit
 * beside the backward cells and keep each such cell off the team on 2
 * threads (each level then runs its steps one thread each). Of 2T cells,
 * only the first backward one (beside the last forward one) and the
 * block boundary's (beside the weight gradient) share a level. */
START_TEST(gru_cells_run_alone_in_their_levels)
{
    const int64_t T = 48, B = 32, H = 128;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = rnn_square_loss(g, MN_RNN_GRU, T, B, 16, H);
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    int cells, crowded = crowded_cells(ex, B, H, &cells);
    printf("gru, %lld steps: %d cells, %d beside another computing step\n", (long long)T, cells, crowded);
    ck_assert_int_ge(cells, 2 * (int)T);
    ck_assert_int_le(crowded, 2);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

static void rnn_chains(mn_rnn_mode mode, int64_t T, int64_t B, int64_t I, int64_t H)
{
    bool big = B * H >= 24 * 128;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = rnn_square_loss(g, mode, T, B, I, H);
    int64_t total = 0;
    for (int i = 0; i < mn_params_count(P); i++) total += mn_tensor_numel(mn_params_value(P, i));
    float *chained = malloc((size_t)total * sizeof *chained), *levels = malloc((size_t)total * sizeof *levels);
    int nchained, nlevels, mixed, mixed_anomaly;
    double dropped, dropped_anomaly;
    float l1 = rnn_run(g, P, loss, false, &nchained, chained, &dropped, &mixed);
    float l2 = rnn_run(g, P, loss, true, &nlevels, levels, &dropped_anomaly, &mixed_anomaly);
    printf("%s, %lld steps of %lld rows, hidden %lld, 2 threads: %d OpenMP regions a run (level by level: %d), %g barriers dropped"
           " (%d between a product and a cell)\n", mode == MN_RNN_GRU ? "gru" : mode == MN_RNN_LSTM ? "lstm" : "rnn", (long long)T, (long long)B, (long long)H,
           nchained, nlevels, dropped, mixed);
    if (big) {
        ck_assert_int_ge(nlevels, (mode == MN_RNN_TANH ? 2 : 4) * (int)T);   /* level-by-level regions: a product and a cell a step, both ways */
        if (B == 32) ck_assert_msg(mixed >= (int)T, "%d barriers dropped between a product and a cell", mixed);
        else ck_assert_msg(mixed == 0, "%d barriers dropped between a product and a cell cut at other rows", mixed);
        ck_assert_int_lt(nchained, (int)T);
    } else ck_assert_int_le(nchained, nlevels);
    ck_assert_msg(memcmp(&l1, &l2, sizeof l1) == 0, "loss %.9g chained vs %.9g", l1, l2);
    for (int64_t k = 0; k < total; k++)
        ck_assert_msg(memcmp(&chained[k], &levels[k], sizeof(float)) == 0, "gradient %lld: %.9g chained vs %.9g",
                      (long long)k, chained[k], levels[k]);
    free(chained); free(levels);
    mn_graph_free(g); mn_params_free(P);
}

/* An LSTM's training run on 2 threads under a memory budget (0: none; -1:
 * level by level, anomaly mode): its loss, gradients (into grads), the
 * OpenMP regions a run opens and the levels its chains hold of all. */
static float budget_run(mn_graph *g, mn_params *P, mn_node *loss, int64_t budget, float *grads, int *regions, int *chained,
                        int *levels)
{
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2, .memory_budget = budget > 0 ? budget : 0,
                                                          .detect_anomaly = budget < 0 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    *chained = (int)mn_exec_stat(ex, "run.chained_levels");
    *levels = (int)mn_exec_stat(ex, "schedule.levels");
    const mn_tensor *x = mn_exec_input(ex, 0);
    mn_rng_fill_normal(mn_f32(x), mn_tensor_numel(x), 7, 1, 0, 1);
    ck_assert_ok(mn_exec_run(ex));
    mn_params_zero_grad(P);
    omp_regions = 0;
    ck_assert_ok(mn_exec_run(ex));
    *regions = omp_regions;
    float l = mn_exec_loss(ex);
    for (int i = 0, o = 0; i < mn_params_count(P); o += (int)mn_tensor_numel(mn_params_value(P, i)), i++)
        memcpy(grads + o, mn_f32(mn_params_grad(P, i)), mn_tensor_bytes(mn_params_grad(P, i)));
    mn_exec_free(ex);
    return l;
}

/* Under a memory budget (7/10 of the arena: 16 segments, every cell's tanh
 * mirrored, the input projection split by time steps) the recompute pass interleaves
 * recomputed forward segments with the backward steps: a level then holds
 * a time step's recurrent product beside a recomputed input projection
 * (two solo products), a cell's mirrored tanh runs unfused, and the
 * segments' products stand side by side. Such levels join chains as the
 * plain run's do (graph/run.c: the products each cut among the threads,
 * the tanh cut by tiles, one-thread steps shared out), so a run opens
 * about as few OpenMP regions as the plain one, not one or more a level;
 * the bits are those of the level-by-level run and of the plain run. */
START_TEST(budgeted_rnn_levels_join_chains)
{
    const int64_t T = 32, B = 32, I = 16, H = 128;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = rnn_square_loss(g, MN_RNN_LSTM, T, B, I, H);
    int64_t total = 0;
    for (int i = 0; i < mn_params_count(P); i++) total += mn_tensor_numel(mn_params_value(P, i));
    float *plain = malloc((size_t)total * sizeof *plain), *chained = malloc((size_t)total * sizeof *chained);
    float *levels = malloc((size_t)total * sizeof *levels);
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = 2 });
    ck_assert_ptr_nonnull(ex);
    int64_t budget = (int64_t)mn_exec_stat(ex, "plan.arena_bytes") * 7 / 10;
    mn_exec_free(ex);
    int r0, r1, r2, c0, c1, c2, n0, n1, n2;
    float l0 = budget_run(g, P, loss, 0, plain, &r0, &c0, &n0);
    float l1 = budget_run(g, P, loss, budget, chained, &r1, &c1, &n1);
    float l2 = budget_run(g, P, loss, -budget, levels, &r2, &c2, &n2);
    printf("lstm, %lld steps of %lld rows, hidden %lld, 2 threads: plain %d of %d levels chained, %d OpenMP regions a run;"
           " budget 7/10 (%lld bytes): %d of %d levels chained, %d regions a run (level by level: %d)\n", (long long)T,
           (long long)B, (long long)H, c0, n0, r0, (long long)budget, c1, n1, r1, r2);
    ck_assert_int_gt(n1, n0);                       /* recomputation added levels */
    ck_assert_msg(c1 * 10 >= n1 * 9, "%d of %d levels chained under the budget", c1, n1);
    ck_assert_msg(r1 <= 2 * r0, "%d OpenMP regions a run under the budget, %d plain", r1, r0);
    ck_assert_msg(memcmp(&l1, &l2, sizeof l1) == 0 && memcmp(&l1, &l0, sizeof l1) == 0, "loss %.9g chained, %.9g level by level, %.9g plain",
                  l1, l2, l0);
    for (int64_t k = 0; k < total; k++) {
        ck_assert_msg(memcmp(&chained[k], &levels[k], sizeof(float)) == 0, "gradient %lld: %.9g chained vs %.9g",
                      (long long)k, chained[k], levels[k]);
        ck_assert_msg(memcmp(&chained[k], &plain[k], sizeof(float)) == 0, "gradient %lld: %.9g budgeted vs %.9g plain",
                      (long long)k, chained[k], plain[k]);
    }
    free(plain); free(chained); free(levels);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Readers of a group's members join it (sibling fusion), and a value two
 * concats place along their last axis gets a copy for the second one
 * (graph/copies.c), so the fused kernel writes it into both: the same
 * bits as unfused, on 1 and 2 threads, and every piece placed. */
START_TEST(fusion_siblings_and_piece_copies_are_bit_identical)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    const int64_t B = 6, H = 80;
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 2 * H));
    mn_node *w = mn_param(g, "w", MN_SHAPE(B, H), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 });
    mn_node *a = mn_mul(g, mn_sigmoid(g, mn_slice(g, x, 1, 0, H, 1)), w);
    mn_node *b = mn_tanh(g, a), *c = mn_scale(g, mn_mul(g, a, mn_slice(g, x, 1, H, 2 * H, 1)), 2.0f);
    mn_node *cat1 = mn_concat(g, (mn_node *[]){ b, c }, 2, 1), *cat2 = mn_concat(g, (mn_node *[]){ c, b, w }, 3, 1);
    mn_node *loss = mn_add(g, mn_sum_all(g, mn_square(g, cat1)), mn_sum_all(g, mn_mul(g, cat2, cat2)));
    expect_identical(g, P, loss, NULL, 6);
    mn_exec *ex = mn_compile(g, loss, NULL);
    ck_assert_ptr_nonnull(ex);
    mn_exec_stats st = mn_exec_get_stats(ex);
    ck_assert_msg(st.placed >= 4, "%d pieces placed (b and c into both concats)", st.placed);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Finite differences through the fused graph (the fused kernel's own gradient check). */
START_TEST(fusion_gradient_check)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_param(g, "x", MN_SHAPE(6, 5), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -1, .b = 1 });
    mn_node *b = mn_param(g, "b", MN_SHAPE(5), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -1, .b = 1 });
    mn_node *h = mn_add(g, x, b);
    mn_node *y = mn_mul(g, mn_sigmoid(g, h), mn_tanh(g, mn_scale(g, h, 1.5f)));
    mn_node *loss = mn_sum_all(g, mn_mul(g, y, mn_silu(g, x)));
    mn_exec *ex = mn_compile(g, loss, NULL);
    ck_assert_ptr_nonnull(ex);
    ck_assert_int_gt(mn_exec_get_stats(ex).fused_groups, 0);
    for (int p = 0; p < 2; p++) {
        mn_tensor *v = mn_params_value(P, p), *d = mn_params_grad(P, p);
        mn_params_zero_grad(P);
        ck_assert_ok(mn_exec_run(ex));
        float *grad = malloc(mn_tensor_bytes(d));
        memcpy(grad, mn_f32(d), mn_tensor_bytes(d));
        for (int64_t k = 0; k < mn_tensor_numel(v); k++) {
            float keep = mn_f32(v)[k], eps = 1e-2f;
            mn_f32(v)[k] = keep + eps; ck_assert_ok(mn_exec_run(ex)); double up = mn_exec_loss(ex);
            mn_f32(v)[k] = keep - eps; ck_assert_ok(mn_exec_run(ex)); double dn = mn_exec_loss(ex);
            mn_f32(v)[k] = keep;
            ck_assert_close(grad[k], (up - dn) / (2 * eps), 2e-3 * (1 + fabs(grad[k])));
        }
        free(grad);
    }
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* The recurrent cells, forward and backward: LSTM and GRU, two layers, both directions. */
START_TEST(fusion_rnn_cells_bit_identical)
{
    for (int mode = MN_RNN_LSTM; mode <= MN_RNN_GRU; mode++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(5, 3, 4));
        mn_rnn_out o = mn_rnn(g, "rnn", x, (mn_rnn_opts){ .mode = (mn_rnn_mode)mode, .hidden = 6, .layers = 2, .bidirectional = true });
        mn_node *loss = mn_mean(g, mn_square(g, o.output), 0, NULL, false);
        expect_identical(g, P, loss, o.h_n, 40);
        mn_graph_free(g); mn_params_free(P);
    }
}
END_TEST

/* A weight gradient's GEMM adds straight into the store's gradient: the
 * gradient is right and accumulates over runs until zeroed. */
START_TEST(weight_gradients_added_by_their_gemm)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(5, 4));
    mn_node *w = mn_param(g, "w", MN_SHAPE(4, 3), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -1, .b = 1 });
    mn_node *y = mn_matmul(g, x, w, false, false);
    mn_node *loss = mn_sum_all(g, mn_mul(g, y, y));
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .verify = true });
    ck_assert_ptr_nonnull(ex);
    ck_assert_int_eq(mn_exec_get_stats(ex).direct_grads, 1);
    float xv[20];
    for (int i = 0; i < 20; i++) xv[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
    mn_exec_feed_data(ex, "x", xv, sizeof xv);
    mn_params_zero_grad(P);
    ck_assert_ok(mn_exec_run(ex));
    const float *wv = mn_f32(mn_params_get(P, "w")), *d = mn_f32(mn_params_get_grad(P, "w"));
    float first[12];
    for (int k = 0; k < 4; k++)                      /* dW = 2 x^T (x W) */
        for (int j = 0; j < 3; j++) {
            double want = 0;
            for (int i = 0; i < 5; i++) {
                double yij = 0;
                for (int q = 0; q < 4; q++) yij += xv[i * 4 + q] * wv[q * 3 + j];
                want += 2 * xv[i * 4 + k] * yij;
            }
            ck_assert_close(d[k * 3 + j], want, 1e-5 * (1 + fabs(want)));
            first[k * 3 + j] = d[k * 3 + j];
        }
    ck_assert_ok(mn_exec_run(ex));                    /* accumulates */
    for (int i = 0; i < 12; i++) ck_assert_float_eq(d[i], 2 * first[i]);
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Two identical nodes compute once: the gradients of two biases added to
 * the same tensor are one reduction. */
START_TEST(common_subexpressions_computed_once)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(8, 4));
    mn_node *b1 = mn_param(g, "b1", MN_SHAPE(4), (mn_init){ .kind = MN_INIT_ZEROS });
    mn_node *b2 = mn_param(g, "b2", MN_SHAPE(4), (mn_init){ .kind = MN_INIT_ZEROS });
    mn_node *y = mn_add(g, mn_add(g, x, b1), b2);
    mn_node *loss = mn_sum_all(g, mn_mul(g, y, y));
    mn_exec_stats st;
    run_result r = run_once(g, P, loss, NULL, false, 2, &st);
    ck_assert_int_ge(st.cse, 1);
    ck_assert(memcmp(r.grads, r.grads + 4, 4 * sizeof(float)) == 0);      /* b1 and b2 get the same gradient */
    for (int k = 0; k < 4; k++) ck_assert_float_ne(r.grads[k], 0.0f);
    free(r.grads);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* ---- explicit differentiation ---- */

/* A small model with dropout (a random op) for the compile-invariance test. */
typedef struct { mn_params *P; mn_graph *g; mn_node *loss, *h; } small_net;

static small_net small_net_new(void)
{
    small_net m;
    m.P = mn_params_new();
    mn_params_set_seed(m.P, 3);
    m.g = mn_graph_new(m.P);
    mn_graph_set_seed(m.g, 5);
    mn_node *x = mn_input(m.g, "x", MN_F32, MN_SHAPE(8, 6)), *t = mn_input(m.g, "t", MN_F32, MN_SHAPE(8, 2));
    m.h = mn_dropout(m.g, mn_tanh(m.g, mn_linear(m.g, "l1", x, 16, true)), 0.25f, true);
    m.loss = mn_mse_loss(m.g, mn_linear(m.g, "l2", m.h, 2, true), t, MN_REDUCE_MEAN);
    return m;
}

/* One training run from zeroed gradients: loss and l1.weight's gradient bits. */
static void train_once(small_net *m, mn_exec *ex, float *loss, float *grad)
{
    float x[48], t[16];
    for (int i = 0; i < 48; i++) x[i] = mn_rng_normal(9, 1, (uint64_t)i);
    for (int i = 0; i < 16; i++) t[i] = mn_rng_normal(9, 2, (uint64_t)i);
    ck_assert_ok(mn_exec_feed_data(ex, "x", x, sizeof x));
    ck_assert_ok(mn_exec_feed_data(ex, "t", t, sizeof t));
    mn_params_zero_grad(m->P);
    mn_exec_set_step(ex, 0);
    ck_assert_ok(mn_exec_run(ex));
    *loss = mn_exec_loss(ex);
    memcpy(grad, mn_f32(mn_params_get_grad(m->P, "l1.weight")), 16 * 6 * sizeof(float));
}

/* Compiling never changes the caller's graph: its node count stays, and
 * compiling twice, or forward-only first and then for training, gives the
 * same executable (steps, levels, arena, bits). */
START_TEST(compiling_leaves_the_graph_unchanged)
{
    small_net m = small_net_new();
    int before = mn_graph_node_count(m.g);
    const mn_node *outs[1] = { m.h };
    mn_exec *fwd = mn_compile(m.g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(fwd != NULL, "%s", mn_graph_errmsg(m.g));
    ck_assert_int_eq(mn_graph_node_count(m.g), before);
    mn_exec *a = mn_compile(m.g, m.loss, NULL);
    ck_assert_msg(a != NULL, "%s", mn_graph_errmsg(m.g));
    ck_assert_int_eq(mn_graph_node_count(m.g), before);
    mn_exec *b = mn_compile(m.g, m.loss, NULL);
    ck_assert_msg(b != NULL, "%s", mn_graph_errmsg(m.g));
    ck_assert_int_eq(mn_graph_node_count(m.g), before);
    mn_exec_stats sa = mn_exec_get_stats(a), sb = mn_exec_get_stats(b);
    ck_assert_int_eq(sa.nodes_total, sb.nodes_total);
    ck_assert_int_gt(sa.nodes_total, before);               /* the backward pass is in the executable */
    ck_assert_int_eq(sa.steps, sb.steps);
    ck_assert_int_eq(sa.levels, sb.levels);
    ck_assert_int_eq(sa.arena_bytes, sb.arena_bytes);
    float la, lb, ga[96], gb[96];
    train_once(&m, a, &la, ga);
    train_once(&m, b, &lb, gb);
    ck_assert(memcmp(&la, &lb, sizeof la) == 0);
    ck_assert(memcmp(ga, gb, sizeof ga) == 0);
    ck_assert_ptr_nonnull(mn_exec_value(fwd, m.h));
    ck_assert_ptr_null(mn_exec_value(a, NULL));
    mn_exec_free(fwd); mn_exec_free(a); mn_exec_free(b);
    mn_graph_free(m.g); mn_params_free(m.P);
}
END_TEST

/* mn_grad against central differences, with respect to a parameter, an
 * input and an intermediate value (y = sum(h^2) + sum(h * c): dy/dh = 2h + c). */
START_TEST(grad_nodes_match_finite_differences)
{
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 4);
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(3, 4));
    mn_node *w = mn_param(g, "w", MN_SHAPE(4, 5), (mn_init){ .kind = MN_INIT_NORMAL, .a = 0, .b = 0.7f });
    float cv[15];
    for (int i = 0; i < 15; i++) cv[i] = mn_rng_normal(6, 0, (uint64_t)i);
    mn_node *h = mn_tanh(g, mn_matmul(g, x, w, false, false));
    mn_node *y = mn_add(g, mn_sum_all(g, mn_square(g, h)), mn_sum_all(g, mn_mul(g, h, mn_constant(g, MN_F32, MN_SHAPE(3, 5), cv))));
    mn_node *unused = mn_input(g, "unused", MN_F32, MN_SHAPE(2));
    mn_node *wrt[4] = { w, x, h, unused }, *d[4];
    ck_assert_ok(mn_grad(g, y, wrt, 4, d));
    int nodes = mn_graph_node_count(g);
    const mn_node *outs[6] = { y, d[0], d[1], d[2], d[3], h };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 6, .verify = true });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_eq(mn_graph_node_count(g), nodes);
    float xv[12];
    for (int i = 0; i < 12; i++) xv[i] = mn_rng_normal(6, 1, (uint64_t)i);
    ck_assert_ok(mn_exec_feed_data(ex, "x", xv, sizeof xv));
    ck_assert_ok(mn_exec_run(ex));
    float dw[20], dx[12], dh[15], hv[15];
    memcpy(dw, mn_f32(mn_exec_value(ex, d[0])), sizeof dw);
    memcpy(dx, mn_f32(mn_exec_value(ex, d[1])), sizeof dx);
    memcpy(dh, mn_f32(mn_exec_value(ex, d[2])), sizeof dh);
    memcpy(hv, mn_f32(mn_exec_value(ex, h)), sizeof hv);
    for (int i = 0; i < 2; i++) ck_assert(mn_f32(mn_exec_value(ex, d[3]))[i] == 0.0f);
    for (int i = 0; i < 15; i++) ck_assert_close(dh[i], 2 * hv[i] + cv[i], 1e-5);
    float *wv = mn_f32(mn_params_get(P, "w"));
    for (int which = 0; which < 2; which++) {
        float *v = which ? xv : wv, *an = which ? dx : dw;
        int n = which ? 12 : 20;
        for (int k = 0; k < n; k++) {
            float v0 = v[k];
            v[k] = v0 + 1e-2f;
            if (which) ck_assert_ok(mn_exec_feed_data(ex, "x", xv, sizeof xv));
            ck_assert_ok(mn_exec_run(ex));
            double lp = mn_f32(mn_exec_value(ex, y))[0];
            v[k] = v0 - 1e-2f;
            if (which) ck_assert_ok(mn_exec_feed_data(ex, "x", xv, sizeof xv));
            ck_assert_ok(mn_exec_run(ex));
            double lm = mn_f32(mn_exec_value(ex, y))[0];
            v[k] = v0;
            double num = (lp - lm) / 2e-2;
            ck_assert_msg(fabs(num - an[k]) <= 2e-3 + 1e-2 * fabs(num), "d y / d %s[%d]: mn_grad %g, finite difference %g",
                          which ? "x" : "w", k, (double)an[k], num);
        }
    }
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* The reference for the Hessian-vector product: the MLP's gradient in
 * double, L = 1/2 sum((tanh(x W1) W2 - t)^2), x [B, I], W1 [I, H], W2 [H, O]. */
enum { HB = 4, HI = 3, HH = 5, HO = 2 };

static void mlp_grad_double(const double *x, const double *t, const double *w1, const double *w2, double *g1, double *g2)
{
    double h[HB][HH], r[HB][HO], dh[HB][HH];
    for (int b = 0; b < HB; b++)
        for (int j = 0; j < HH; j++) {
            double s = 0;
            for (int i = 0; i < HI; i++) s += x[b * HI + i] * w1[i * HH + j];
            h[b][j] = tanh(s);
        }
    for (int b = 0; b < HB; b++)
        for (int o = 0; o < HO; o++) {
            double s = 0;
            for (int j = 0; j < HH; j++) s += h[b][j] * w2[j * HO + o];
            r[b][o] = s - t[b * HO + o];
        }
    for (int j = 0; j < HH; j++)
        for (int o = 0; o < HO; o++) {
            double s = 0;
            for (int b = 0; b < HB; b++) s += h[b][j] * r[b][o];
            g2[j * HO + o] = s;
        }
    for (int b = 0; b < HB; b++)
        for (int j = 0; j < HH; j++) {
            double s = 0;
            for (int o = 0; o < HO; o++) s += r[b][o] * w2[j * HO + o];
            dh[b][j] = s * (1 - h[b][j] * h[b][j]);
        }
    for (int i = 0; i < HI; i++)
        for (int j = 0; j < HH; j++) {
            double s = 0;
            for (int b = 0; b < HB; b++) s += x[b * HI + i] * dh[b][j];
            g1[i * HH + j] = s;
        }
}

/* Second derivatives as graphs: Hv = grad(sum(grad(L, W) * v), W) for a
 * two-layer tanh MLP, against central differences of the double-precision
 * gradient along v (error ~1e-9, far below the f32 tolerance). */
START_TEST(hessian_vector_product_of_an_mlp)
{
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 8);
    mn_graph *g = mn_graph_new(P);
    double xd[HB * HI], td[HB * HO], w1d[HI * HH], w2d[HH * HO], v1d[HI * HH], v2d[HH * HO];
    float xf[HB * HI], tf[HB * HO], v1f[HI * HH], v2f[HH * HO];
    for (int i = 0; i < HB * HI; i++) xd[i] = xf[i] = mn_rng_normal(11, 0, (uint64_t)i);
    for (int i = 0; i < HB * HO; i++) td[i] = tf[i] = mn_rng_normal(11, 1, (uint64_t)i);
    for (int i = 0; i < HI * HH; i++) v1d[i] = v1f[i] = mn_rng_normal(11, 2, (uint64_t)i);
    for (int i = 0; i < HH * HO; i++) v2d[i] = v2f[i] = mn_rng_normal(11, 3, (uint64_t)i);
    mn_node *x = mn_constant(g, MN_F32, MN_SHAPE(HB, HI), xf), *t = mn_constant(g, MN_F32, MN_SHAPE(HB, HO), tf);
    mn_node *w1 = mn_param(g, "w1", MN_SHAPE(HI, HH), (mn_init){ .kind = MN_INIT_NORMAL, .a = 0, .b = 0.8f });
    mn_node *w2 = mn_param(g, "w2", MN_SHAPE(HH, HO), (mn_init){ .kind = MN_INIT_NORMAL, .a = 0, .b = 0.8f });
    mn_node *out = mn_matmul(g, mn_tanh(g, mn_matmul(g, x, w1, false, false)), w2, false, false);
    mn_node *loss = mn_scale(g, mn_sum_all(g, mn_square(g, mn_sub(g, out, t))), 0.5f);
    mn_node *w[2] = { w1, w2 }, *gr[2], *hv[2];
    ck_assert_ok(mn_grad(g, loss, w, 2, gr));
    mn_node *dot = mn_add(g, mn_sum_all(g, mn_mul(g, gr[0], mn_constant(g, MN_F32, MN_SHAPE(HI, HH), v1f))),
                          mn_sum_all(g, mn_mul(g, gr[1], mn_constant(g, MN_F32, MN_SHAPE(HH, HO), v2f))));
    ck_assert_ok(mn_grad(g, dot, w, 2, hv));
    const mn_node *outs[2] = { hv[0], hv[1] };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 2 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    for (int i = 0; i < HI * HH; i++) w1d[i] = mn_f32(mn_params_get(P, "w1"))[i];
    for (int i = 0; i < HH * HO; i++) w2d[i] = mn_f32(mn_params_get(P, "w2"))[i];
    const double e = 1e-5;
    double p1[HI * HH], p2[HH * HO], m1[HI * HH], m2[HH * HO], a1[HI * HH], a2[HH * HO], b1[HI * HH], b2[HH * HO];
    for (int i = 0; i < HI * HH; i++) { a1[i] = w1d[i] + e * v1d[i]; b1[i] = w1d[i] - e * v1d[i]; }
    for (int i = 0; i < HH * HO; i++) { a2[i] = w2d[i] + e * v2d[i]; b2[i] = w2d[i] - e * v2d[i]; }
    mlp_grad_double(xd, td, a1, a2, p1, p2);
    mlp_grad_double(xd, td, b1, b2, m1, m2);
    double worst = 0, scale = 0;
    for (int i = 0; i < HI * HH; i++) {
        double ref = (p1[i] - m1[i]) / (2 * e);
        worst = fmax(worst, fabs(ref - mn_f32(mn_exec_value(ex, hv[0]))[i]));
        scale = fmax(scale, fabs(ref));
    }
    for (int i = 0; i < HH * HO; i++) {
        double ref = (p2[i] - m2[i]) / (2 * e);
        worst = fmax(worst, fabs(ref - mn_f32(mn_exec_value(ex, hv[1]))[i]));
        scale = fmax(scale, fabs(ref));
    }
    printf("Hessian-vector product of a %dx%dx%d tanh MLP: worst error %.3g (largest entry %.3g)\n", HI, HH, HO, worst, scale);
    ck_assert(scale > 0.1);
    ck_assert_msg(worst <= 1e-4 * scale + 1e-5, "Hv worst error %g (scale %g)", worst, scale);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Anomaly mode: the first step whose output is not finite stops the run
 * with MN_ERR_NONFINITE, naming the run, op and node; without it the run
 * completes (a nan loss). A nan made in the backward pass (sqrt's gradient
 * at 0) stops the run before any gradient reaches the store. */
START_TEST(anomaly_mode_names_the_first_nonfinite_step)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(4));
    mn_node *l = mn_node_set_name(mn_log(g, x), "the_log");
    mn_node *loss = mn_sum_all(g, mn_mul(g, mn_square(g, l), l));     /* no exp: its fast path is UB on a nan (issue 14, ops/fastmath.h) */
    const mn_node *outs[1] = { loss };
    float xv[4] = { 1, 2, -1, 3 };
    for (int anomaly = 0; anomaly < 2; anomaly++) {
        mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1, .detect_anomaly = anomaly, .no_fuse = true });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert_ok(mn_exec_feed_data(ex, "x", xv, sizeof xv));
        mn_exec_set_step(ex, 7);
        if (!anomaly) {
            ck_assert_ok(mn_exec_run(ex));
            ck_assert(isnan(mn_f32(mn_exec_value(ex, loss))[0]));
        } else {
            ck_assert_int_eq(mn_exec_run(ex), MN_ERR_NONFINITE);
            has(mn_errmsg(), "run 7");
            has(mn_errmsg(), "log \"the_log\" produced nan at element 2");
            has(mn_exec_errmsg(ex), "the_log");
        }
        mn_exec_free(ex);
    }
    mn_graph_free(g);
    g = mn_graph_new(P);
    mn_node *w = mn_param(g, "w", MN_SHAPE(3), (mn_init){ .kind = MN_INIT_ZEROS });
    mn_node *b = mn_param(g, "b", MN_SHAPE(3), (mn_init){ .kind = MN_INIT_ONES });
    loss = mn_add(g, mn_sum_all(g, mn_sqrt(g, w)), mn_sum_all(g, mn_square(g, b)));
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .detect_anomaly = true });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_NONFINITE);
    has(mn_errmsg(), "produced inf");
    for (int i = 0; i < 3; i++) {
        ck_assert(mn_f32(mn_params_get_grad(P, "w"))[i] == 0.0f);
        ck_assert(mn_f32(mn_params_get_grad(P, "b"))[i] == 0.0f);
    }
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Anomaly mode scans a fused step's extra outputs too: log(x) is an
 * extra output of the fused step whose root, x's log compared with 0, is
 * finite (nan > 0 is 0), so only that scan names the log. */
START_TEST(anomaly_mode_scans_fused_extra_outputs)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(4));
    mn_node *l = mn_node_set_name(mn_log(g, mn_scale(g, x, 2.0f)), "the_log");
    mn_node *pos = mn_gt(g, l, mn_zeros_like(g, x));
    mn_node *y = mn_add(g, mn_sum_all(g, pos), mn_sum_all(g, l));
    const mn_node *outs[1] = { y };
    float xv[4] = { 1, 2, -1, 3 };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1, .detect_anomaly = true });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_ge(mn_exec_get_stats(ex).fused_groups, 1);
    ck_assert_ok(mn_exec_feed_data(ex, "x", xv, sizeof xv));
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_NONFINITE);
    has(mn_errmsg(), "produced nan at element 2");
    has(mn_errmsg(), "fused group ending in gt");
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Each pass's counters by name agree with the fixed stats; unknown names
 * give NAN; every pass reports its time. */
START_TEST(pass_counters_by_name)
{
    small_net m = small_net_new();
    mn_exec *ex = mn_compile(m.g, m.loss, NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(m.g));
    mn_exec_stats s = mn_exec_get_stats(ex);
    ck_assert(mn_exec_stat(ex, "plan.arena_bytes") == (double)s.arena_bytes);
    ck_assert(mn_exec_stat(ex, "schedule.levels") == s.levels);
    ck_assert(mn_exec_stat(ex, "schedule.steps") == s.steps);
    ck_assert(mn_exec_stat(ex, "fuse.groups") == s.fused_groups);
    ck_assert(mn_exec_stat(ex, "cse.merged_nodes") == s.cse);
    ck_assert(mn_exec_stat(ex, "direct.gradients") == s.direct_grads);
    ck_assert(mn_exec_stat(ex, "autodiff.backward_nodes") == s.nodes_total - mn_graph_node_count(m.g));
    ck_assert(isnan(mn_exec_stat(ex, "no.such_counter")));
    const char *passes[] = { "autodiff", "dce", "cse", "fuse", "direct", "schedule", "plan", "verify" };
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s.ms", passes[i]);
        ck_assert_msg(mn_exec_stat(ex, name) >= 0, "no time for %s", name);
    }
    ck_assert_ptr_null(mn_exec_stat_name(ex, mn_exec_stat_count(ex)));
    mn_exec_free(ex); mn_graph_free(m.g); mn_params_free(m.P);
}
END_TEST

/* CSE compares attributes field by field: two reshapes whose attribute
 * structs differ only in padding and unused dims (stack garbage) are one
 * value. */
START_TEST(cse_ignores_attribute_padding)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(2, 6));
    mn_shape_attrs a, b;
    memset(&a, 0xAA, sizeof a);
    memset(&b, 0x55, sizeof b);
    a.shape.ndim = b.shape.ndim = 2;
    a.shape.d[0] = b.shape.d[0] = 3;
    a.shape.d[1] = b.shape.d[1] = 4;
    mn_node *r1 = mn_op(g, "reshape", &x, 1, &a, sizeof a), *r2 = mn_op(g, "reshape", &x, 1, &b, sizeof b);
    const mn_node *outs[1] = { mn_add(g, mn_exp(g, r1), mn_exp(g, r2)) };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_eq(mn_exec_get_stats(ex).cse, 2);          /* the second reshape, then its exp */
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Any op from its name and named attributes, through the schema. */
START_TEST(op_named_builds_through_the_schema)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    float xv[12];
    for (int i = 0; i < 12; i++) xv[i] = (float)i;
    mn_node *x = mn_constant(g, MN_F32, MN_SHAPE(3, 4), xv);
    mn_node *s = mn_op_named(g, "slice", &x, 1, (mn_attr_value[]){ { "axis", 1 }, { "start", 1 }, { "stop", 4 }, { "step", 2 } }, 4);
    mn_node *r = mn_op_named(g, "reshape", &s, 1, (mn_attr_value[]){ { "shape", 0, MN_SHAPE(6) } }, 1);
    mn_node *m = mn_op_named(g, "matmul", (mn_node *[]){ x, x }, 2, (mn_attr_value[]){ { "trans_b", 1 } }, 1);
    ck_assert_msg(s && r && m, "%s", mn_graph_errmsg(g));
    ck_assert_int_eq(mn_node_shape(m).d[0], 3);
    ck_assert_int_eq(mn_node_shape(m).d[1], 3);
    const mn_node *outs[1] = { r };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    const float want[6] = { 1, 3, 5, 7, 9, 11 };
    for (int i = 0; i < 6; i++) ck_assert(mn_f32(mn_exec_value(ex, r))[i] == want[i]);
    mn_exec_free(ex);
    ck_assert_ptr_null(mn_op_named(g, "slice", &x, 1, (mn_attr_value[]){ { "axes", 1 } }, 1));
    has(mn_graph_errmsg(g), "slice: no attribute \"axes\"");
    mn_graph_free(g);
    g = mn_graph_new(P);
    x = mn_input(g, "x", MN_F32, MN_SHAPE(3));
    ck_assert_ptr_null(mn_op_named(g, "slice", &x, 1, (mn_attr_value[]){ { "axis", 0.5 } }, 1));
    has(mn_graph_errmsg(g), "attribute \"axis\" cannot hold 0.5");
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* mn_grad's errors stick to the graph and name the culprit. */
/* Cross-entropy at huge logits: 20 equal maxima at 1e30 among 40 classes,
 * the rest at -1e30, the target at a maximum. The loss is log 20 and the
 * gradient 1/20 - [k = t] at the maxima (over the rows, mean), whether the
 * classes lie contiguous ([R, C]) or strided ([1, C, R]): lse = m + log 20
 * rounds to m at such magnitudes, so the kernels add (m - x_k) + log 20. */
START_TEST(cross_entropy_at_huge_logits)
{
    enum { R = 3, C = 40 };
    bool strided = _i == 1;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_shape xs = strided ? MN_SHAPE(1, C, R) : MN_SHAPE(R, C), ts = strided ? MN_SHAPE(1, R) : MN_SHAPE(R);
    mn_node *x = mn_param(g, "x", xs, (mn_init){ .kind = MN_INIT_ZEROS });
    mn_node *t = mn_input(g, "t", MN_I32, ts);
    mn_exec *ex = mn_compile(g, mn_cross_entropy(g, x, t), NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    float *v = mn_f32(mn_params_get(P, "x"));
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) v[strided ? k * R + r : r * C + k] = k % 2 ? -1e30f : 1e30f;
    int32_t tv[R] = { 0, 2, 38 };
    ck_assert_ok(mn_exec_feed_data(ex, "t", tv, sizeof tv));
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_close(mn_exec_loss(ex), log(20.0), 1e-5);
    const float *d = mn_f32(mn_params_get_grad(P, "x"));
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) {
            double want = k % 2 ? 0.0 : (1.0 / 20 - (k == tv[r])) / R;
            ck_assert_msg(fabs(d[strided ? k * R + r : r * C + k] - want) <= 1e-6, "%s row %d class %d: %g, expected %g",
                          strided ? "strided" : "contiguous", r, k, d[strided ? k * R + r : r * C + k], want);
        }
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* The cross-entropy gradient reads the stats its forward computed (one
 * exponential pass, ops/loss.c) and gives the bits of the gradient that
 * computes them itself (the node built without stats), on 1 and 2 threads:
 * contiguous rows of 96 classes and of 300 (> 256: the sum is added in the
 * whole row's order), strided classes, smoothing, ignored positions, each
 * reduction, rows at +-1e30 and a row all -inf (NaN either way). */
START_TEST(cross_entropy_gradient_reads_the_forward_stats)
{
    static const struct { int64_t n, c, inner; mn_ce_opts o; } cs[] = {
        { 64, 96, 1, { -100, MN_REDUCE_MEAN, 0.0f } }, { 7, 300, 1, { 2, MN_REDUCE_SUM, 0.1f } },
        { 4, 5, 3, { 1, MN_REDUCE_NONE, 0.2f } }, { 6, 40, 1, { -100, MN_REDUCE_MEAN, 0.3f } },
    };
    int k = _i;
    int64_t n = cs[k].n, c = cs[k].c, inner = cs[k].inner, npos = n * inner, numel = n * c * inner;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_shape xs = inner > 1 ? MN_SHAPE(n, c, inner) : MN_SHAPE(n, c), ts = inner > 1 ? MN_SHAPE(n, inner) : MN_SHAPE(n);
    mn_node *x = mn_param(g, "x", xs, (mn_init){ .kind = MN_INIT_ZEROS }), *t = mn_input(g, "t", MN_I32, ts), *d;
    mn_node *loss = mn_cross_entropy_ex(g, x, t, cs[k].o);
    mn_node *y = mn_scale(g, cs[k].o.reduction == MN_REDUCE_NONE ? mn_sum_all(g, loss) : loss, 0.7f);   /* w: not a power of 2 */
    ck_assert_ok(mn_grad(g, y, &x, 1, &d));
    ck_assert_str_eq(d->op->name, "cross_entropy_grad");
    ck_assert_int_eq(d->nin, 4);
    ck_assert_str_eq(d->in[3]->op->name, "cross_entropy_stats");
    ck_assert_ptr_eq(d->in[3]->in[0], x);
    ck_assert_int_eq(loss->nin, 3);
    ck_assert_ptr_eq(loss->in[2], d->in[3]);                 /* the forward's stats, not a second copy */
    mn_node *old = mn_op(g, "cross_entropy_grad", d->in, 3, d->attrs, sizeof(mn_ce_attrs));
    mn_node *oldl = mn_op(g, "cross_entropy", loss->in, 2, loss->attrs, sizeof(mn_ce_attrs));
    float *v = mn_f32(mn_params_get(P, "x"));
    for (int64_t i = 0; i < numel; i++) v[i] = 3.0f * mn_rng_normal(9, (uint64_t)k, (uint64_t)i);
    if (k == 3) {                                            /* huge rows as cross_entropy_at_huge_logits, one row -inf */
        for (int64_t i = 0; i < 2 * c; i++) v[i] = i % 2 ? -1e30f : 1e30f;
        for (int64_t i = 5 * c; i < 6 * c; i++) v[i] = -INFINITY;
    }
    int32_t tv[64];
    for (int64_t p = 0; p < npos; p++) tv[p] = p % 3 == 1 ? cs[k].o.ignore_index : (int32_t)((p * 7) % c);
    float *grads[2];
    for (int th = 1; th <= 2; th++) {
        const mn_node *outs[4] = { d, old, loss, oldl };
        mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 4, .threads = th });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert_ok(mn_exec_feed_data(ex, "t", tv, (size_t)npos * sizeof *tv));
        ck_assert_ok(mn_exec_run(ex));
        const float *a = mn_f32(mn_exec_value(ex, d)), *b = mn_f32(mn_exec_value(ex, old));
        for (int64_t i = 0; i < numel; i++)
            ck_assert_msg(!memcmp(a + i, b + i, sizeof *a), "case %d, %d threads, element %lld: %.9g with the stats, %.9g without",
                          k, th, (long long)i, (double)a[i], (double)b[i]);
        const mn_tensor *l = mn_exec_value(ex, loss), *ol = mn_exec_value(ex, oldl);
        for (int64_t i = 0; i < mn_tensor_numel(l); i++) {
            double p = mn_f32(l)[i], q = mn_f32(ol)[i];
            ck_assert_msg(p == q || fabs(p - q) <= 1e-6 * fabs(q) || (isnan(p) && isnan(q)), "case %d loss %lld: %.9g vs %.9g", k,
                          (long long)i, p, q);
        }
        grads[th - 1] = malloc((size_t)numel * sizeof *a);
        memcpy(grads[th - 1], a, (size_t)numel * sizeof *a);
        mn_exec_free(ex);
    }
    ck_assert(!memcmp(grads[0], grads[1], (size_t)numel * sizeof *grads[0]));
    free(grads[0]);
    free(grads[1]);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(grad_errors)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P), *other = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(3)), *o = mn_input(other, "o", MN_F32, MN_SHAPE(3)), *d;
    ck_assert_int_eq(mn_grad(g, x, &x, 1, &d), MN_ERR_SHAPE);
    has(mn_graph_errmsg(g), "must be a f32 scalar");
    mn_graph_free(g);
    g = mn_graph_new(P);
    x = mn_input(g, "x", MN_F32, MN_SHAPE(3));
    ck_assert_int_eq(mn_grad(g, mn_sum_all(g, x), &o, 1, &d), MN_ERR_MISUSE);
    has(mn_graph_errmsg(g), "wrt[0]");
    ck_assert_int_eq(mn_grad(NULL, x, &x, 1, &d), MN_ERR_MISUSE);
    mn_graph_free(g); mn_graph_free(other); mn_params_free(P);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("graph");
    tcase_add_test(tc, shape_mismatch_is_sticky);
    tcase_add_test(tc, matmul_message_names_node_and_dims);
    tcase_add_test(tc, wrong_dtype);
    tcase_add_test(tc, null_handles);
    tcase_add_test(tc, unknown_names);
    tcase_add_test(tc, param_shape_conflict_and_cross_graph);
    tcase_add_test(tc, loss_must_be_scalar);
    tcase_add_test(tc, fan_out_gradients_are_summed);
    tcase_add_test(tc, no_gradient_for_unused_or_integer_values);
    tcase_add_test(tc, feed_errors);
    tcase_add_test(tc, kernel_error_at_run_time);
    tcase_add_test(tc, dot_export);
    tcase_add_test(tc, two_graphs_share_parameters);
    tcase_add_test(tc, fusion_is_bit_identical);
    tcase_add_test(tc, bias_epilogue_is_bit_identical);
    tcase_add_test(tc, fusion_row_tiles_are_bit_identical);
    tcase_add_test(tc, one_thread_opens_no_openmp_region);
    tcase_add_test(tc, one_thread_training_step_opens_no_openmp_region);
    tcase_add_loop_test(tc, rnn_time_steps_share_one_region_on_two_threads, 0, 6);
    tcase_add_loop_test(tc, small_rnn_steps_get_no_chain, 0, 2);
    tcase_add_test(tc, gru_cells_run_alone_in_their_levels);
    tcase_add_test(tc, concat_copies_in_one_region);
    tcase_add_test(tc, column_sums_are_big_steps);
    tcase_add_test(tc, budgeted_rnn_levels_join_chains);
    tcase_add_test(tc, fusion_siblings_and_piece_copies_are_bit_identical);
    tcase_add_test(tc, fusion_gradient_check);
    tcase_add_test(tc, fusion_rnn_cells_bit_identical);
    tcase_add_loop_test(tc, packed_products_prefetch_the_next_level, 0, 3);
    tcase_add_test(tc, common_subexpressions_computed_once);
    tcase_add_test(tc, weight_gradients_added_by_their_gemm);
    tcase_add_test(tc, compiling_leaves_the_graph_unchanged);
    tcase_add_test(tc, grad_nodes_match_finite_differences);
    tcase_add_test(tc, hessian_vector_product_of_an_mlp);
    tcase_add_test(tc, grad_errors);
    tcase_add_loop_test(tc, cross_entropy_at_huge_logits, 0, 2);
    tcase_add_loop_test(tc, cross_entropy_gradient_reads_the_forward_stats, 0, 4);
    tcase_add_test(tc, pass_counters_by_name);
    tcase_add_test(tc, cse_ignores_attribute_padding);
    tcase_add_test(tc, op_named_builds_through_the_schema);
    tcase_add_test(tc, anomaly_mode_names_the_first_nonfinite_step);
    tcase_add_test(tc, anomaly_mode_scans_fused_extra_outputs);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
