/* tests/test_rebatch.c: one model function at several batch sizes
 * (graph/rebatch.c). Seven items evaluated as a batch of 4 and one of 3
 * give the logits and the loss of one batch of 7; every executable reads
 * and trains the one parameter store (no second copy of a weight); a batch
 * size is compiled once; errors name the batch size. */
#include "harness.h"
#include <string.h>

enum { IN = 5, CLASSES = 3, N = 7 };

/* A linear classifier; fails its graph when ctx asks (to test errors). */
static mn_model_nodes classifier(mn_graph *g, int64_t batch, void *ctx)
{
    const int64_t *fail_at = ctx;
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(batch, IN));
    mn_node *y = mn_input(g, "y", MN_I32, MN_SHAPE(batch));
    mn_node *logits = mn_linear(g, "fc", x, CLASSES, true);
    if (fail_at && *fail_at == batch) logits = mn_add(g, logits, mn_input(g, "bad", MN_F32, MN_SHAPE(batch + 1, 2)));
    return (mn_model_nodes){ .loss = mn_cross_entropy(g, logits, y), .outputs = { logits }, .noutputs = 1 };
}

static float xs[N * IN];
static int32_t ys[N];

static void data(void)
{
    for (int i = 0; i < N * IN; i++) xs[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < N; i++) ys[i] = i % CLASSES;
}

/* Runs items [from, from + b) through r's executable for b items. */
static const float *run(mn_rebatch *r, int64_t from, int64_t b, float *loss)
{
    const mn_model_nodes *m = NULL;
    mn_exec *ex = mn_rebatch_get(r, b, &m);
    ck_assert_msg(ex != NULL, "batch %lld: %s", (long long)b, mn_errmsg());
    ck_assert_ok(mn_exec_feed_data(ex, "x", xs + from * IN, (size_t)(b * IN) * sizeof(float)));
    ck_assert_ok(mn_exec_feed_data(ex, "y", ys + from, (size_t)b * sizeof(int32_t)));
    ck_assert_ok(mn_exec_run(ex));
    *loss = mn_exec_loss(ex);
    return mn_f32(mn_exec_value(ex, m->outputs[0]));
}

START_TEST(remainder_batch_matches_one_batch)
{
    data();
    mn_params *P = mn_params_new();
    mn_compile_opts o = { .threads = 1, .no_backward = true, .verify = true };
    mn_rebatch *r = mn_rebatch_new(P, classifier, NULL, &o);
    ck_assert_ptr_nonnull(r);
    float whole_loss, l4, l3, whole[N * CLASSES];
    memcpy(whole, run(r, 0, N, &whole_loss), sizeof whole);
    ck_assert_int_eq(mn_params_count(P), 2);                 /* fc.weight, fc.bias */
    const float *a = run(r, 0, 4, &l4);
    for (int i = 0; i < 4 * CLASSES; i++) ck_assert_float_eq(a[i], whole[i]);
    const float *b = run(r, 4, 3, &l3);
    for (int i = 0; i < 3 * CLASSES; i++) ck_assert_float_eq(b[i], whole[4 * CLASSES + i]);
    ck_assert_close((4 * l4 + 3 * l3) / N, whole_loss, 1e-6);  /* item-weighted means agree */
    ck_assert_int_eq(mn_params_count(P), 2);                 /* no new parameters for other batch sizes */
    ck_assert_int_eq(mn_rebatch_count(r), 3);
    mn_rebatch_free(r);
    mn_params_free(P);
}
END_TEST

START_TEST(compiled_once_per_batch_size)
{
    mn_params *P = mn_params_new();
    mn_rebatch *r = mn_rebatch_new(P, classifier, NULL, &(mn_compile_opts){ .threads = 1, .verify = true });
    mn_exec *e4 = mn_rebatch_get(r, 4, NULL), *e3 = mn_rebatch_get(r, 3, NULL);
    ck_assert_ptr_nonnull(e4);
    ck_assert_ptr_nonnull(e3);
    ck_assert_ptr_ne(e4, e3);
    ck_assert_ptr_eq(mn_rebatch_get(r, 4, NULL), e4);
    ck_assert_int_eq(mn_rebatch_count(r), 2);
    mn_rebatch_free(r);
    mn_params_free(P);
}
END_TEST

/* Training through the remainder's executable updates the shared store. */
START_TEST(gradients_reach_the_shared_store)
{
    data();
    mn_params *P = mn_params_new();
    mn_rebatch *r = mn_rebatch_new(P, classifier, NULL, &(mn_compile_opts){ .threads = 1, .verify = true });
    float l;
    run(r, 0, 4, &l);                                        /* creates the parameters */
    mn_params_zero_grad(P);
    run(r, 4, 3, &l);
    const float *gb = mn_f32(mn_params_get_grad(P, "fc.bias"));
    ck_assert_msg(gb[0] != 0 || gb[1] != 0 || gb[2] != 0, "the batch of 3 left fc.bias's gradient at zero");
    mn_rebatch_free(r);
    mn_params_free(P);
}
END_TEST

START_TEST(errors_name_the_batch_size)
{
    mn_params *P = mn_params_new();
    int64_t fail_at = 2;
    mn_rebatch *r = mn_rebatch_new(P, classifier, &fail_at, NULL);
    ck_assert_ptr_nonnull(mn_rebatch_get(r, 3, NULL));
    ck_assert_ptr_null(mn_rebatch_get(r, 2, NULL));
    ck_assert_msg(strstr(mn_errmsg(), "batch of 2") != NULL, "message: %s", mn_errmsg());
    ck_assert_ptr_null(mn_rebatch_get(r, 0, NULL));
    ck_assert_msg(strstr(mn_errmsg(), "at least 1") != NULL, "message: %s", mn_errmsg());
    ck_assert_int_eq(mn_rebatch_count(r), 1);                /* the failed size is not kept */
    ck_assert_ptr_null(mn_rebatch_new(NULL, classifier, NULL, NULL));
    mn_rebatch_free(r);
    mn_params_free(P);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rebatch");
    TCase *tc = tcase_create("rebatch");
    tcase_add_test(tc, remainder_batch_matches_one_batch);
    tcase_add_test(tc, compiled_once_per_batch_size);
    tcase_add_test(tc, gradients_reach_the_shared_store);
    tcase_add_test(tc, errors_name_the_batch_size);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
