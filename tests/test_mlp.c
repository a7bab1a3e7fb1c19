/* tests/test_mlp.c: the IDX reader's validation, and the end-to-end check
 * of the foundation: a 784-256-10 ReLU MLP defined with the graph API,
 * trained with plain SGD on the first 10,000 Fashion-MNIST training images,
 * reaches >= 80% accuracy on the 10,000 test images. */
#include "harness.h"
#include "idx.h"
#include <stdio.h>
#include <string.h>
#include <zlib.h>

static char dir[256];

static const char *write_idx(const char *name, const unsigned char *b, size_t n, bool gz)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (gz) {
        gzFile f = gzopen(p, "wb");
        gzwrite(f, b, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
    }
    return p;
}

START_TEST(idx_reads_valid_files)
{
    unsigned char b[] = { 0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6 };
    mn_idx x;
    ck_assert_ok(mn_idx_read(write_idx("ok.gz", b, sizeof b, true), &x));
    ck_assert_int_eq(x.ndim, 2);
    ck_assert_int_eq(x.dims[0], 2); ck_assert_int_eq(x.dims[1], 3);
    ck_assert_int_eq(x.data[5], 6);
    mn_idx_free(&x);
    ck_assert_ok(mn_idx_read(write_idx("ok.raw", b, sizeof b, false), &x));  /* plain files too */
    mn_idx_free(&x);
}
END_TEST

START_TEST(idx_rejects_bad_files)
{
    unsigned char magic[] = { 0, 0, 9, 1, 0, 0, 0, 1, 7 };            /* not unsigned bytes */
    unsigned char dims[] = { 0, 0, 8, 7, 0, 0, 0, 1 };                 /* 7 dims */
    unsigned char shrt[] = { 0, 0, 8, 1, 0, 0, 0, 4, 1, 2 };           /* 2 of 4 bytes */
    unsigned char lng[] = { 0, 0, 8, 1, 0, 0, 0, 1, 1, 2 };            /* trailing byte */
    unsigned char zero[] = { 0, 0, 8, 1, 0, 0, 0, 0 };                 /* zero-length dim */
    mn_idx x;
    ck_assert_int_eq(mn_idx_read(write_idx("m.gz", magic, sizeof magic, true), &x), MN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "magic"));
    ck_assert_int_eq(mn_idx_read(write_idx("d.gz", dims, sizeof dims, true), &x), MN_ERR_FORMAT);
    ck_assert_int_eq(mn_idx_read(write_idx("s.gz", shrt, sizeof shrt, true), &x), MN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "shorter"));
    ck_assert_int_eq(mn_idx_read(write_idx("l.gz", lng, sizeof lng, true), &x), MN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "trailing"));
    ck_assert_int_eq(mn_idx_read(write_idx("z.gz", zero, sizeof zero, true), &x), MN_ERR_FORMAT);
    ck_assert_int_eq(mn_idx_read(write_idx("e.gz", zero, 2, true), &x), MN_ERR_FORMAT);
    ck_assert_int_eq(mn_idx_read("/nonexistent/file.gz", &x), MN_ERR_IO);
    ck_assert_ptr_null(x.data);
}
END_TEST

static void sgd_step(mn_params *P, float lr)
{
    for (int i = 0; i < mn_params_count(P); i++) {
        float *w = mn_f32(mn_params_value(P, i)), *d = mn_f32(mn_params_grad(P, i));
        for (int64_t k = 0; k < mn_tensor_numel(mn_params_value(P, i)); k++) w[k] -= lr * d[k];
    }
    mn_params_zero_grad(P);
}

static double test_accuracy(mn_params *P, const mn_fmnist *te)
{
    enum { EB = 500 };
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(EB, 784));
    mn_node *h = mn_relu(g, mn_linear(g, "fc1", x, 256, true));
    mn_node *logits = mn_linear(g, "fc2", h, 10, true);
    const mn_node *outs[1] = { logits };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_ptr_nonnull(ex);
    int64_t correct = 0;
    for (int64_t s = 0; s < te->n; s += EB) {
        ck_assert_ok(mn_exec_feed_data(ex, "x", mn_f32(te->images) + s * 784, EB * 784 * sizeof(float)));
        ck_assert_ok(mn_exec_run(ex));
        const float *l = mn_f32(mn_exec_value(ex, logits));
        for (int i = 0; i < EB; i++) {
            int best = 0;
            for (int k = 1; k < 10; k++) if (l[i * 10 + k] > l[i * 10 + best]) best = k;
            correct += best == mn_i32(te->labels)[s + i];
        }
    }
    mn_exec_free(ex);
    mn_graph_free(g);
    return (double)correct / (double)te->n;
}

START_TEST(mlp_fashion_mnist_reaches_80_percent)
{
    enum { B = 50, EPOCHS = 5 };
    mn_fmnist tr, te;
    ck_assert_ok(mn_fmnist_load(MN_FMNIST_DIR, "train", 10000, &tr));
    ck_assert_ok(mn_fmnist_load(MN_FMNIST_DIR, "t10k", 0, &te));
    ck_assert_int_eq(tr.n, 10000);
    ck_assert_int_eq(te.n, 10000);
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 1);
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 784)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(B));
    mn_node *h = mn_relu(g, mn_linear(g, "fc1", x, 256, true));
    mn_node *loss = mn_cross_entropy(g, mn_linear(g, "fc2", h, 10, true), y);
    mn_exec *ex = mn_compile(g, loss, NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    double first = 0, last = 0;
    for (int e = 0; e < EPOCHS; e++) {
        double sum = 0;
        for (int64_t b = 0; b < tr.n / B; b++) {
            /* a fixed stride permutation per epoch: a different batch order every epoch */
            int64_t rows[B];
            for (int i = 0; i < B; i++) rows[i] = ((b * B + i) * 7919 + (int64_t)e * 104729) % tr.n;
            float xb[B * 784];
            int32_t yb[B];
            for (int i = 0; i < B; i++) {
                memcpy(xb + i * 784, mn_f32(tr.images) + rows[i] * 784, 784 * sizeof(float));
                yb[i] = mn_i32(tr.labels)[rows[i]];
            }
            ck_assert_ok(mn_exec_feed_data(ex, "x", xb, sizeof xb));
            ck_assert_ok(mn_exec_feed_data(ex, "y", yb, sizeof yb));
            ck_assert_ok(mn_exec_run(ex));
            sum += mn_exec_loss(ex);
            sgd_step(P, 0.1f);
        }
        last = sum / (double)(tr.n / B);
        if (!e) first = last;
    }
    double acc = test_accuracy(P, &te);
    printf("mlp: mean train loss %.4f (epoch 1) -> %.4f (epoch %d), test accuracy %.2f%%\n", first, last, EPOCHS, 100 * acc);
    ck_assert(last < first);
    ck_assert_msg(acc >= 0.80, "test accuracy %.4f < 0.80", acc);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
    mn_fmnist_free(&tr); mn_fmnist_free(&te);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mlp");
    TCase *tc = tcase_create("mlp");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, idx_reads_valid_files);
    tcase_add_test(tc, idx_rejects_bad_files);
    tcase_add_test(tc, mlp_fashion_mnist_reaches_80_percent);
    suite_add_tcase(s, tc);
    return mn_test_run_in_tmpdir(s, dir, sizeof dir, "mnemo-idx");
}
