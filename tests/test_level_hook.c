/* tests/test_level_hook.c: the executor's level hook (mn_exec_set_level_hook)
 * and mn_exec_grad_level, which data parallelism (dist/) builds on, checked
 * without MPI: the hook sees every level in order and then the end; at the
 * level a parameter's gradient is said to be final, the store already holds
 * its final value; a failing hook stops the run and rolls it back. */
#include "harness.h"
#include <string.h>

enum { B = 4, IN = 6, HID = 5, CLS = 3 };

typedef struct {
    mn_exec *ex;
    mn_params *P;
    int calls, last, max_levels;
    float seen[8][64];            /* each parameter's gradient at its grad level */
    int fail_at;
} watch;

static mn_status hook(void *ctx, int level)
{
    watch *w = ctx;
    ck_assert_int_eq(level, w->last + 1);
    w->last = level;
    w->calls++;
    for (int p = 0; p < mn_params_count(w->P); p++) {
        if (mn_exec_grad_level(w->ex, p) != level) continue;
        const mn_tensor *g = mn_params_grad(w->P, p);
        memcpy(w->seen[p], g->data, mn_tensor_bytes(g));
    }
    return level == w->fail_at ? mn_set_error(MN_ERR_RUNTIME, "hook says stop") : MN_OK;
}

static mn_exec *build(mn_params *P, mn_graph **g)
{
    *g = mn_graph_new(P);
    mn_node *x = mn_input(*g, "x", MN_F32, MN_SHAPE(B, IN));
    mn_node *y = mn_input(*g, "y", MN_I32, MN_SHAPE(B));
    mn_node *h = mn_tanh(*g, mn_linear(*g, "fc1", x, HID, true));
    mn_linear(*g, "unused", x, 2, false);               /* a parameter the loss does not reach */
    mn_node *loss = mn_cross_entropy(*g, mn_linear(*g, "fc2", h, CLS, true), y);
    mn_exec *ex = mn_compile(*g, loss, &(mn_compile_opts){ .threads = 1 });
    ck_assert_ptr_nonnull(ex);
    float xs[B * IN];
    int32_t ys[B] = { 0, 2, 1, 2 };
    for (int i = 0; i < B * IN; i++) xs[i] = sinf(0.7f * (float)i);
    ck_assert_ok(mn_exec_feed_data(ex, "x", xs, sizeof xs));
    ck_assert_ok(mn_exec_feed_data(ex, "y", ys, sizeof ys));
    return ex;
}

START_TEST(the_hook_sees_each_level_and_final_gradients)
{
    mn_params *P = mn_params_new();
    mn_graph *g;
    mn_exec *ex = build(P, &g);
    watch w = { .ex = ex, .P = P, .last = -1, .fail_at = -2 };
    ck_assert_ok(mn_exec_set_level_hook(ex, hook, &w));
    ck_assert_ok(mn_exec_run(ex));
    int L = mn_exec_level_count(ex);
    ck_assert_int_gt(L, 4);
    ck_assert_int_eq(w.calls, L + 1);                      /* levels 0..L-1, then the end */
    ck_assert_int_eq(w.last, L);
    int early = 0;
    for (int p = 0; p < mn_params_count(P); p++) {
        int gl = mn_exec_grad_level(ex, p);
        if (!strcmp(mn_params_name(P, p), "unused.weight")) { ck_assert_int_eq(gl, -1); continue; }
        ck_assert_int_ge(gl, 0);
        ck_assert_int_le(gl, L);
        early += gl < mn_exec_grad_level(ex, mn_params_find(P, "fc1.weight"));
        const mn_tensor *gr = mn_params_grad(P, p);
        ck_assert_msg(memcmp(w.seen[p], gr->data, mn_tensor_bytes(gr)) == 0, "\"%s\" was not final at level %d", mn_params_name(P, p), gl);
    }
    ck_assert_int_ge(early, 2);                            /* fc2's gradients are final before fc1's */
    ck_assert_int_eq(mn_exec_grad_level(ex, 99), -1);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(a_failing_hook_stops_the_run_and_rolls_back)
{
    mn_params *P = mn_params_new();
    mn_graph *g;
    mn_exec *ex = build(P, &g);
    watch w = { .ex = ex, .P = P, .last = -1 };
    w.fail_at = mn_exec_level_count(ex);                   /* at the end: every gradient was added */
    ck_assert_ok(mn_exec_set_level_hook(ex, hook, &w));
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_RUNTIME);
    ck_assert_str_eq(mn_errmsg(), "hook says stop");
    const mn_tensor *gr = mn_params_get_grad(P, "fc1.weight");
    for (int64_t i = 0; i < mn_tensor_numel(gr); i++) ck_assert_float_eq(mn_f32(gr)[i], 0.0f);
    ck_assert_ok(mn_exec_set_level_hook(ex, NULL, NULL));  /* removed: runs as before */
    w.calls = 0;
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_int_eq(w.calls, 0);
    ck_assert_int_eq(mn_exec_set_level_hook(NULL, hook, &w), MN_ERR_MISUSE);
    ck_assert_int_eq(mn_exec_level_count(NULL), 0);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("level_hook");
    TCase *tc = tcase_create("level_hook");
    tcase_add_test(tc, the_hook_sees_each_level_and_final_gradients);
    tcase_add_test(tc, a_failing_hook_stops_the_run_and_rolls_back);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
