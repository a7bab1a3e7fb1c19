/* tests/test_graph.c: the builder's errors (sticky, with op, node and
 * shapes in the message, never a crash), autodiff semantics (fan-out sums,
 * accumulation across runs, no gradient into i32 values), dead-code
 * elimination, feeding, run-time kernel errors, stats and DOT export. */
#include "harness.h"
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
    tcase_add_test(tc, fusion_gradient_check);
    tcase_add_test(tc, fusion_rnn_cells_bit_identical);
    tcase_add_test(tc, common_subexpressions_computed_once);
    tcase_add_test(tc, weight_gradients_added_by_their_gemm);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
