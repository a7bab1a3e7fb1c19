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
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
