/* tests/test_mpi.c: data parallelism (mnemo_dist.h), run by the `mpi` suite
 * under `mpirun -np 2`. Every rank trains a small MLP on its half of each
 * global batch; the tests compare against references each rank computes
 * alone: the two half-batch gradients summed and halved (bit-identical:
 * a + b is commutative and x 0.5 exact), and the full batch (within 1e-5
 * relative after 20 steps). Also: ranks end equal; mismatches are errors. */
#include "harness.h"
#include "mnemo_dist.h"
/* mn_dist_get_stats as a program built against 0.1 calls it: the struct
 * without cpu_ms and tests (56 bytes; under ASan a wider write is caught) */
typedef struct { int64_t runs; int buckets; int64_t bytes; int early; double wait_ms, comm_ms, window_ms; } stats_0_1;
stats_0_1 stats_as_0_1(const mn_dist *d) __asm__("mn_dist_get_stats");
#include <string.h>

enum { B = 8, IN = 16, HID = 32, CLS = 8, STEPS = 20 };

typedef struct { mn_params *P; mn_graph *g; mn_exec *ex; int batch; } net;

static int rank_, size_;

/* The MLP (detour < 0), or with a second first layer "fc1b" beside fc1
 * whose output is added to fc1's: then `detour` extra steps (x 1, exact,
 * unfused) after fc1 complete its gradients later than fc1b's, where
 * without them fc1's come first. */
static net build_detour(int batch, int hidden, int detour)
{
    net n = { .P = mn_params_new(), .batch = batch };
    mn_params_set_seed(n.P, 7);
    n.g = mn_graph_new(n.P);
    mn_node *x = mn_input(n.g, "x", MN_F32, MN_SHAPE(batch, IN));
    mn_node *y = mn_input(n.g, "y", MN_I32, MN_SHAPE(batch));
    mn_node *h = mn_tanh(n.g, mn_linear(n.g, "fc1", x, hidden, true));
    for (int i = 0; i < detour; i++) h = mn_scale(n.g, h, 1.0f);
    if (detour >= 0) h = mn_add(n.g, h, mn_tanh(n.g, mn_linear(n.g, "fc1b", x, hidden, true)));
    h = mn_tanh(n.g, mn_linear(n.g, "fc2", h, HID, true));
    mn_node *loss = mn_cross_entropy(n.g, mn_linear(n.g, "fc3", h, CLS, true), y);
    n.ex = mn_compile(n.g, loss, &(mn_compile_opts){ .threads = 1, .no_fuse = detour >= 0 });
    ck_assert_ptr_nonnull(n.ex);
    return n;
}

static net build(int batch, int hidden) { return build_detour(batch, hidden, -1); }

static void drop(net *n)
{
    mn_exec_free(n->ex);
    mn_graph_free(n->g);
    mn_params_free(n->P);
}

/* Examples [first, first + n.batch) of global step s of a global batch of G. */
static void feed_of(net *n, int s, int G, int first)
{
    float x[B * IN];
    int32_t y[B];
    for (int i = 0; i < n->batch; i++) {
        int e = s * G + first + i;
        for (int j = 0; j < IN; j++) x[i * IN + j] = sinf(0.37f * (float)e + 0.11f * (float)j * (float)(j % 3 + 1));
        y[i] = (e * 7 + 3) % CLS;
    }
    ck_assert_ok(mn_exec_feed_data(n->ex, "x", x, (size_t)n->batch * IN * sizeof(float)));
    ck_assert_ok(mn_exec_feed_data(n->ex, "y", y, (size_t)n->batch * sizeof(int32_t)));
}

static void feed(net *n, int s, int first) { feed_of(n, s, B, first); }

static void sgd(mn_params *P)
{
    for (int i = 0; i < mn_params_count(P); i++) {
        float *w = mn_f32(mn_params_value(P, i)), *d = mn_f32(mn_params_grad(P, i));
        for (int64_t k = 0; k < mn_tensor_numel(mn_params_value(P, i)); k++) w[k] -= 0.1f * d[k];
    }
    mn_params_zero_grad(P);
}

/* STEPS steps of the data-parallel net: rank r runs examples [r * B/N, ...). */
static mn_dist_stats train_dist(net *n, const mn_dist_opts *o)
{
    mn_dist *d = NULL;
    ck_assert_ok(mn_dist_init(&d, MPI_COMM_WORLD, o));
    ck_assert_ok(mn_dist_broadcast_params(d, n->P));
    ck_assert_ok(mn_dist_attach(d, n->ex, n->P));
    for (int s = 0; s < STEPS; s++) {
        feed(n, s, rank_ * n->batch);
        ck_assert_ok(mn_exec_run(n->ex));
        sgd(n->P);
    }
    ck_assert_ok(mn_dist_check_params(d, n->P));
    mn_dist_stats st = mn_dist_get_stats(d);
    stats_0_1 old = stats_as_0_1(d);
    ck_assert_msg(old.runs == st.runs && old.bytes == st.bytes && old.buckets == st.buckets && old.window_ms == st.window_ms,
                  "0.1's mn_dist_get_stats: runs %lld, bytes %lld, not the stats' %lld, %lld", (long long)old.runs,
                  (long long)old.bytes, (long long)st.runs, (long long)st.bytes);
    mn_dist_finalize(d);
    return st;
}

/* One process: each shard's gradient alone, summed in rank order, x 1/N. */
static void train_reference(net *n)
{
    int np = mn_params_count(n->P);
    float *acc[16];
    for (int i = 0; i < np; i++) acc[i] = calloc((size_t)mn_tensor_numel(mn_params_grad(n->P, i)), sizeof(float));
    for (int s = 0; s < STEPS; s++) {
        for (int r = 0; r < size_; r++) {
            feed(n, s, r * n->batch);
            ck_assert_ok(mn_exec_run(n->ex));
            for (int i = 0; i < np; i++) {
                float *g = mn_f32(mn_params_grad(n->P, i));
                for (int64_t k = 0; k < mn_tensor_numel(mn_params_grad(n->P, i)); k++) acc[i][k] = r ? acc[i][k] + g[k] : g[k];
            }
            mn_params_zero_grad(n->P);
        }
        for (int i = 0; i < np; i++) {
            float *g = mn_f32(mn_params_grad(n->P, i));
            for (int64_t k = 0; k < mn_tensor_numel(mn_params_grad(n->P, i)); k++) g[k] = acc[i][k] * (1.0f / (float)size_);
        }
        sgd(n->P);
    }
    for (int i = 0; i < np; i++) free(acc[i]);
}

static void assert_bit_identical(net *a, net *b)
{
    for (int i = 0; i < mn_params_count(a->P); i++) {
        const mn_tensor *x = mn_params_value(a->P, i), *y = mn_params_get(b->P, mn_params_name(a->P, i));
        ck_assert_msg(memcmp(x->data, y->data, mn_tensor_bytes(x)) == 0, "rank %d: \"%s\" differs from the reference",
                      rank_, mn_params_name(a->P, i));
    }
}

static uint64_t params_hash(mn_params *P)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < mn_params_count(P); i++) {
        const unsigned char *p = mn_params_value(P, i)->data;
        for (size_t k = 0; k < mn_tensor_bytes(mn_params_value(P, i)); k++) { h ^= p[k]; h *= 1099511628211ull; }
    }
    return h;
}

START_TEST(ranks_hold_identical_parameters_after_training)
{
    net n = build(B / size_, HID);
    train_dist(&n, NULL);
    uint64_t h = params_hash(n.P), all[16];
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < size_; r++) ck_assert_msg(all[r] == all[0], "rank %d's parameters differ from rank 0's", r);
    net fresh = build(B, HID);
    ck_assert_msg(h != params_hash(fresh.P), "training changed nothing");
    drop(&fresh);
    drop(&n);
}
END_TEST

START_TEST(half_batches_on_two_ranks_equal_summed_half_batch_gradients_bitwise)
{
    net d = build(B / size_, HID), ref = build(B / size_, HID);
    mn_dist_stats st = train_dist(&d, NULL);
    train_reference(&ref);
    assert_bit_identical(&d, &ref);
    ck_assert_int_eq(st.runs, STEPS);
    ck_assert_int_eq(st.buckets, 1);                 /* 25 MiB default: one bucket */
    ck_assert_int_eq(st.early, 0);                   /* it holds fc1's gradients, final at the last level */
    drop(&d);
    drop(&ref);
}
END_TEST

START_TEST(small_buckets_start_during_the_backward_pass_and_change_nothing)
{
    net d = build(B / size_, HID), ref = build(B / size_, HID);
    mn_dist_stats st = train_dist(&d, &(mn_dist_opts){ .bucket_bytes = 512 });
    train_reference(&ref);
    assert_bit_identical(&d, &ref);
    ck_assert_int_ge(st.buckets, 4);
    ck_assert_int_ge(st.early, 2);                   /* fc3's and fc2's before the last level */
    ck_assert_int_lt(st.early, st.buckets + 1);
    drop(&d);
    drop(&ref);
}
END_TEST

START_TEST(the_cpu_time_inside_the_allreduces_is_counted_per_step)
{
    net d = build(B / size_, HID);
    mn_dist_stats st = train_dist(&d, &(mn_dist_opts){ .bucket_bytes = 512 });
    ck_assert_msg(st.cpu_ms > 0, "cpu_ms %g: the CPU time of packing and MPI calls was not counted", st.cpu_ms);
    ck_assert_msg(st.cpu_ms <= st.comm_ms + 0.05, "cpu_ms %g above the wall time of the same calls, %g ms", st.cpu_ms, st.comm_ms);
    drop(&d);
}
END_TEST

START_TEST(a_communication_thread_gives_the_same_parameters)
{
    net d = build(B / size_, HID), ref = build(B / size_, HID);
    mn_dist_stats st = train_dist(&d, &(mn_dist_opts){ .bucket_bytes = 512, .progress = MN_DIST_PROGRESS_THREAD });
    train_reference(&ref);
    assert_bit_identical(&d, &ref);
    ck_assert_int_ge(st.buckets, 4);
    drop(&d);
    drop(&ref);
}
END_TEST

/* max over tensors of max |a - b| / max |b| */
static double max_rel(net *a, net *b)
{
    double worst = 0;
    for (int i = 0; i < mn_params_count(a->P); i++) {
        const mn_tensor *x = mn_params_value(a->P, i), *y = mn_params_get(b->P, mn_params_name(a->P, i));
        double diff = 0, mag = 0;
        for (int64_t k = 0; k < mn_tensor_numel(x); k++) {
            diff = fmax(diff, fabs((double)mn_f32(x)[k] - mn_f32(y)[k]));
            mag = fmax(mag, fabs((double)mn_f32(y)[k]));
        }
        worst = fmax(worst, diff / mag);
    }
    return worst;
}

/* STEPS steps of one process on the global batch of G. */
static void train_full(net *full, int G)
{
    for (int s = 0; s < STEPS; s++) {
        feed_of(full, s, G, 0);
        ck_assert_ok(mn_exec_run(full->ex));
        sgd(full->P);
    }
}

START_TEST(two_ranks_match_one_process_on_the_full_batch)
{
    net d = build(B / size_, HID), full = build(B, HID);
    train_dist(&d, NULL);
    train_full(&full, B);
    double worst = max_rel(&d, &full);
    if (rank_ == 0) printf("2 ranks vs the full batch after %d steps: max relative difference %.3g\n", STEPS, worst);
    ck_assert_msg(worst <= 1e-5, "relative difference %g", worst);
    drop(&d);
    drop(&full);
}
END_TEST

/* A global batch of 7 on 2 ranks: 3 and 4 examples, each rank's gradient
 * weighted by its share (3/7, 4/7): the mean over the 7, as one process. */
START_TEST(uneven_shards_weighted_by_their_share_match_one_process)
{
    enum { G = 7 };
    int first = G * rank_ / size_, mine = G * (rank_ + 1) / size_ - first;
    net d = build(mine, HID), full = build(G, HID);
    mn_dist *g = NULL;
    ck_assert_ok(mn_dist_init(&g, MPI_COMM_WORLD, &(mn_dist_opts){ .bucket_bytes = 512 }));
    ck_assert_ok(mn_dist_broadcast_params(g, d.P));
    ck_assert_ok(mn_dist_attach(g, d.ex, d.P));
    ck_assert_ok(mn_dist_set_weight(g, (double)mine / G));
    for (int s = 0; s < STEPS; s++) {
        feed_of(&d, s, G, first);
        ck_assert_ok(mn_exec_run(d.ex));
        sgd(d.P);
    }
    ck_assert_ok(mn_dist_check_params(g, d.P));
    double loss = mn_exec_loss(d.ex) * (double)mine / G;       /* the global batch's loss: the weighted sum */
    ck_assert_ok(mn_dist_sum(g, &loss, 1));
    mn_dist_finalize(g);
    train_full(&full, G);
    ck_assert_msg(fabs(loss - mn_exec_loss(full.ex)) <= 1e-5 * fabs(loss), "loss %g, one process %g", loss, (double)mn_exec_loss(full.ex));
    double worst = max_rel(&d, &full);
    if (rank_ == 0) printf("shards of 3 and 4 vs one process on 7, %d steps: max relative difference %.3g\n", STEPS, worst);
    ck_assert_msg(worst <= 1e-5, "relative difference %g", worst);
    drop(&d);
    drop(&full);
}
END_TEST

/* Rank 1 runs extra steps after fc1, so its schedule completes fc1's
 * gradients after fc1b's, rank 0's before: the buckets still pair the
 * same tensors (rank 0's order), each started when the rank has it. */
START_TEST(ranks_whose_schedules_differ_pair_the_same_buckets)
{
    net d = build_detour(B / size_, HID, rank_ == 1 ? 6 : 0), ref = build_detour(B / size_, HID, 0);
    int a = mn_exec_grad_level(d.ex, mn_params_find(d.P, "fc1.weight")), b = mn_exec_grad_level(d.ex, mn_params_find(d.P, "fc1b.weight"));
    int first = a < b ? 0 : a > b ? 1 : -1, firsts[2];           /* which completes first; -1: together */
    MPI_Allgather(&first, 1, MPI_INT, firsts, 1, MPI_INT, MPI_COMM_WORLD);
    ck_assert_int_eq(firsts[1], 1);                              /* rank 1: fc1b first */
    ck_assert_int_ne(firsts[0], 1);                              /* rank 0: fc1 first (or together: fc1 by index) */
    mn_dist_stats st = train_dist(&d, &(mn_dist_opts){ .bucket_bytes = 512, .first_bucket_bytes = 512 });
    train_reference(&ref);
    assert_bit_identical(&d, &ref);
    ck_assert_int_ge(st.buckets, 4);
    drop(&d);
    drop(&ref);
}
END_TEST

/* With mn_dist_seed, dropout on equal inputs draws another mask on each
 * rank; rank 0 keeps the seed (one rank draws as one process). */
START_TEST(each_rank_draws_its_own_dropout_masks)
{
    mn_dist *g = NULL;
    ck_assert_ok(mn_dist_init(&g, MPI_COMM_WORLD, NULL));
    if (rank_ == 0) ck_assert_uint_eq(mn_dist_seed(g, 1234), 1234);
    mn_params *P = mn_params_new();
    mn_graph *gr = mn_graph_new(P);
    mn_graph_set_seed(gr, mn_dist_seed(g, 1234));
    mn_node *x = mn_input(gr, "x", MN_F32, MN_SHAPE(64));
    mn_node *y = mn_dropout(gr, x, 0.5f, true);
    const mn_node *out[1] = { y };
    mn_exec *ex = mn_compile(gr, NULL, &(mn_compile_opts){ .threads = 1, .outputs = out, .noutputs = 1 });
    ck_assert_ptr_nonnull(ex);
    float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    ck_assert_ok(mn_exec_feed_data(ex, "x", ones, sizeof ones));
    ck_assert_ok(mn_exec_run(ex));
    uint64_t mask = 0, masks[2];
    for (int i = 0; i < 64; i++) mask |= (uint64_t)(mn_f32(mn_exec_value(ex, y))[i] != 0) << i;
    MPI_Allgather(&mask, 1, MPI_UINT64_T, masks, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    ck_assert_msg(masks[0] != masks[1], "both ranks drew the mask %016llx", (unsigned long long)masks[0]);
    ck_assert_int_eq(mn_dist_set_weight(g, -0.5), MN_ERR_INVALID);
    ck_assert_int_eq(mn_dist_set_weight(g, NAN), MN_ERR_INVALID);
    mn_exec_free(ex);
    mn_graph_free(gr);
    mn_params_free(P);
    mn_dist_finalize(g);
}
END_TEST

START_TEST(accumulated_micro_batches_are_averaged_once)
{
    net d = build(B / size_ / 2, HID), ref = build(B / size_ / 2, HID);
    mn_dist *g = NULL;
    ck_assert_ok(mn_dist_init(&g, MPI_COMM_WORLD, NULL));
    ck_assert_ok(mn_dist_attach(g, d.ex, d.P));
    int half = B / size_ / 2;
    mn_dist_set_sync(g, false);
    feed(&d, 0, rank_ * 2 * half);
    ck_assert_ok(mn_exec_run(d.ex));
    mn_dist_set_sync(g, true);
    feed(&d, 0, rank_ * 2 * half + half);
    ck_assert_ok(mn_exec_run(d.ex));
    ck_assert_int_eq(mn_dist_get_stats(g).runs, 1);  /* one exchange for two runs */
    /* reference: each rank's two micro-batches accumulated locally, then averaged */
    float *sum = NULL;
    for (int r = 0; r < size_; r++) {
        feed(&ref, 0, r * 2 * half);
        ck_assert_ok(mn_exec_run(ref.ex));
        feed(&ref, 0, r * 2 * half + half);
        ck_assert_ok(mn_exec_run(ref.ex));
        const mn_tensor *gr = mn_params_get_grad(ref.P, "fc1.weight");
        int64_t n = mn_tensor_numel(gr);
        if (!sum) sum = calloc((size_t)n, sizeof *sum);
        for (int64_t k = 0; k < n; k++) sum[k] = r ? sum[k] + mn_f32(gr)[k] : mn_f32(gr)[k];
        mn_params_zero_grad(ref.P);
    }
    const mn_tensor *gd = mn_params_get_grad(d.P, "fc1.weight");
    for (int64_t k = 0; k < mn_tensor_numel(gd); k++)
        ck_assert_msg(mn_f32(gd)[k] == sum[k] * (1.0f / (float)size_), "element %lld", (long long)k);
    free(sum);
    mn_dist_finalize(g);
    drop(&d);
    drop(&ref);
}
END_TEST

START_TEST(differing_parameters_are_an_error_naming_tensor_and_rank)
{
    net n = build(B / size_, HID);
    mn_dist *d = NULL;
    ck_assert_ok(mn_dist_init(&d, MPI_COMM_WORLD, NULL));
    ck_assert_ok(mn_dist_check_params(d, n.P));
    if (rank_ == 1) mn_f32(mn_params_get(n.P, "fc2.bias"))[3] += 1e-6f;
    ck_assert_int_eq(mn_dist_check_params(d, n.P), MN_ERR_INVALID);      /* on every rank */
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "\"fc2.bias\" on rank 1 differs from rank 0"));
    ck_assert_ok(mn_dist_broadcast_params(d, n.P));
    ck_assert_ok(mn_dist_check_params(d, n.P));
    mn_dist_finalize(d);
    drop(&n);
}
END_TEST

START_TEST(another_model_on_one_rank_is_an_error)
{
    net n = build(B / size_, rank_ == 1 ? HID + 1 : HID);
    mn_dist *d = NULL;
    ck_assert_ok(mn_dist_init(&d, MPI_COMM_WORLD, NULL));
    ck_assert_int_eq(mn_dist_broadcast_params(d, n.P), MN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "rank 1 holds other parameters than rank 0"));
    ck_assert_int_eq(mn_dist_attach(d, n.ex, n.P), MN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "rank 1 compiled another graph"));
    mn_dist_finalize(d);
    drop(&n);
}
END_TEST

START_TEST(a_failure_on_one_rank_is_reported_by_every_rank)
{
    mn_dist *d = NULL;
    ck_assert_ok(mn_dist_init(&d, MPI_COMM_WORLD, NULL));
    ck_assert_ok(mn_dist_agree(d, MN_OK));
    mn_status s = rank_ == 1 ? mn_set_error(MN_ERR_IO, "cannot read shard.bin") : MN_OK;
    ck_assert_int_eq(mn_dist_agree(d, s), MN_ERR_IO);
    ck_assert_str_eq(mn_errmsg(), "rank 1: cannot read shard.bin");
    double v[2] = { (double)rank_, 1.0 };
    ck_assert_ok(mn_dist_mean(d, v, 2));
    ck_assert_close(v[0], (size_ - 1) / 2.0, 1e-12);
    ck_assert_close(v[1], 1.0, 1e-12);
    mn_dist_finalize(d);
}
END_TEST

START_TEST(uninitialised_use_is_misuse)
{
    mn_dist *d = (mn_dist *)1;
    ck_assert_int_eq(mn_dist_init(NULL, MPI_COMM_WORLD, NULL), MN_ERR_MISUSE);
    ck_assert_int_eq(mn_dist_check_params(NULL, NULL), MN_ERR_MISUSE);
    ck_assert_int_eq(mn_dist_attach(NULL, NULL, NULL), MN_ERR_MISUSE);
    ck_assert_int_eq(mn_dist_size(NULL), 1);
    (void)d;
}
END_TEST

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if (size_ != 2) {
        if (rank_ == 0) fprintf(stderr, "test_mpi: run with mpirun -np 2 (got %d ranks)\n", size_);
        MPI_Finalize();
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpi");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, ranks_hold_identical_parameters_after_training);
    tcase_add_test(tc, half_batches_on_two_ranks_equal_summed_half_batch_gradients_bitwise);
    tcase_add_test(tc, small_buckets_start_during_the_backward_pass_and_change_nothing);
    tcase_add_test(tc, the_cpu_time_inside_the_allreduces_is_counted_per_step);
    tcase_add_test(tc, a_communication_thread_gives_the_same_parameters);
    tcase_add_test(tc, two_ranks_match_one_process_on_the_full_batch);
    tcase_add_test(tc, uneven_shards_weighted_by_their_share_match_one_process);
    tcase_add_test(tc, ranks_whose_schedules_differ_pair_the_same_buckets);
    tcase_add_test(tc, each_rank_draws_its_own_dropout_masks);
    tcase_add_test(tc, accumulated_micro_batches_are_averaged_once);
    tcase_add_test(tc, differing_parameters_are_an_error_naming_tensor_and_rank);
    tcase_add_test(tc, another_model_on_one_rank_is_an_error);
    tcase_add_test(tc, a_failure_on_one_rank_is_reported_by_every_rank);
    tcase_add_test(tc, uninitialised_use_is_misuse);
    suite_add_tcase(s, tc);
    int rc = mn_test_run(s);
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return all;
}
