/* tests/test_core.c: status codes, shapes and broadcasting, tensors, the
 * metadata arena, the Philox RNG (known answers, thread independence),
 * the parameter store and the initialisers (PyTorch's definitions). */
#include "harness.h"
#include "../core/internal.h"
#include "../ops/fastmath.h"
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <string.h>

START_TEST(status_table)
{
    ck_assert_str_eq(mn_status_name(MN_OK), "ok");
    ck_assert_str_eq(mn_status_name(MN_ERR_SHAPE), "shape");
    ck_assert_str_eq(mn_status_message(MN_ERR_NOMEM), "out of memory");
    ck_assert_str_eq(mn_status_name((mn_status)999), "unknown");
    for (int s = 0; s < MN_STATUS_COUNT; s++) {
        ck_assert_ptr_nonnull(mn_status_name((mn_status)s));
        ck_assert_int_gt(strlen(mn_status_message((mn_status)s)), 1);
    }
    mn_set_error(MN_ERR_IO, "file %s missing", "x.bin");
    ck_assert_int_eq(mn_last_status(), MN_ERR_IO);
    ck_assert_str_eq(mn_errmsg(), "file x.bin missing");
    mn_clear_error();
    ck_assert_int_eq(mn_last_status(), MN_OK);
}
END_TEST

static void *thread_error(void *arg)
{
    (void)arg;
    mn_set_error(MN_ERR_DTYPE, "other thread");
    return NULL;
}

START_TEST(errors_are_per_thread)
{
    mn_set_error(MN_ERR_SHAPE, "main thread");
    #pragma omp parallel num_threads(2)
    { if (omp_get_thread_num() == 1) thread_error(NULL); }
    ck_assert_str_eq(mn_errmsg(), "main thread");
}
END_TEST

START_TEST(shapes)
{
    mn_shape o;
    char buf[64];
    ck_assert_int_eq(mn_shape_numel(MN_SHAPE(5, 7, 3)), 105);
    ck_assert_int_eq(mn_shape_numel(MN_SCALAR), 1);
    ck_assert_str_eq(mn_shape_str(MN_SHAPE(32, 784), buf, sizeof buf), "[32,784]");
    ck_assert_str_eq(mn_shape_str(MN_SCALAR, buf, sizeof buf), "[]");
    ck_assert_ok(mn_shape_broadcast(MN_SHAPE(5, 1, 3), MN_SHAPE(7, 1), &o));
    ck_assert(mn_shape_eq(o, MN_SHAPE(5, 7, 3)));
    ck_assert_ok(mn_shape_broadcast(MN_SCALAR, MN_SHAPE(2, 3), &o));
    ck_assert(mn_shape_eq(o, MN_SHAPE(2, 3)));
    ck_assert_ok(mn_shape_broadcast(MN_SHAPE(8, 1, 6, 1), MN_SHAPE(7, 1, 5), &o));
    ck_assert(mn_shape_eq(o, MN_SHAPE(8, 7, 6, 5)));
    ck_assert_int_eq(mn_shape_broadcast(MN_SHAPE(2, 3), MN_SHAPE(4), &o), MN_ERR_SHAPE);
    ck_assert_int_eq(mn_shape_broadcast(MN_SHAPE(2, 1), MN_SHAPE(8, 4, 3), &o), MN_ERR_SHAPE);
}
END_TEST

START_TEST(tensors)
{
    mn_tensor *t = mn_tensor_new(MN_F32, MN_SHAPE(5, 7, 3));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq((uintptr_t)t->data % 64, 0);
    ck_assert_int_eq(mn_tensor_bytes(t), 420);
    for (int i = 0; i < 105; i++) ck_assert(mn_f32(t)[i] == 0.0f);
    mn_tensor_free(t);
    ck_assert_ptr_null(mn_tensor_new(MN_F32, (mn_shape){ .ndim = 9 }));
    ck_assert_int_eq(mn_last_status(), MN_ERR_INVALID);
    ck_assert_ptr_null(mn_tensor_new(MN_I32, MN_SHAPE(2, -1)));
    mn_tensor_free(NULL);
}
END_TEST

/* Element and byte counts that do not fit are refused, never wrapped. */
START_TEST(tensor_sizes_never_wrap)
{
    int64_t big = (int64_t)1 << 32;
    ck_assert_int_eq(mn_shape_numel(MN_SHAPE(big, big)), INT64_MAX);        /* 2^64 would wrap to 0 */
    ck_assert_int_eq(mn_shape_numel(MN_SHAPE(0, big, big, big)), 0);
    ck_assert_int_eq(mn_shape_numel(MN_SHAPE(big, 3)), 3 * big);
    ck_assert_ptr_null(mn_tensor_new(MN_F32, MN_SHAPE(big, big)));
    ck_assert_int_eq(mn_last_status(), MN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "[4294967296,4294967296]"));
    ck_assert_ptr_null(mn_tensor_new(MN_F32, MN_SHAPE((int64_t)1 << 62, 2)));  /* elements fit, bytes do not */
    ck_assert_int_eq(mn_last_status(), MN_ERR_INVALID);
    mn_tensor *z = mn_tensor_new(MN_F32, MN_SHAPE(0, big, big));               /* empty is fine */
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(mn_tensor_bytes(z), 0);
    mn_tensor_free(z);
    int64_t fi, fo;
    ck_assert_int_eq(mn_init_fans(MN_SHAPE(2, 3, big, big), &fi, &fo), MN_ERR_INVALID);   /* receptive field 2^64 */
    ck_assert_ok(mn_init_fans(MN_SHAPE(2, 3, big), &fi, &fo));
    ck_assert_int_eq(fi, 3 * big);
    ck_assert_ptr_null(mn__aligned_alloc(SIZE_MAX - 3));                        /* rounding up would wrap to 0 */
    mn__arena a = { 0 };
    ck_assert_ptr_null(mn__arena_alloc(&a, SIZE_MAX - 3));
    mn__arena_free(&a);
}
END_TEST

/* NaN, infinities and huge inputs never reach the float -> int conversion
 * of the exponent (undefined behaviour; UBSan stops the --asan suite). */
START_TEST(fastmath_nonfinite_inputs)
{
    volatile float in[] = { NAN, -NAN, INFINITY, -INFINITY, 3.4e38f, -3.4e38f, 1e30f, -1e30f };
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        float x = in[i], e = mn__expf(x), t = mn__tanhf(x), s = mn__sigmoidf(x);
        if (x != x) {
            ck_assert_msg(isnan(e) && isnan(t) && isnan(s), "NaN in, %g %g %g out", e, t, s);
            continue;
        }
        ck_assert_msg(x > 0 ? e > 1e38f && isfinite(e) : e == 0.0f, "exp(%g) = %g", x, e);
        ck_assert_msg(x > 0 ? t == 1.0f && s == 1.0f : t == -1.0f && s >= 0.0f && s < 1e-37f, "tanh/sigmoid(%g) = %g %g", x, t, s);
    }
    ck_assert_float_eq_tol(mn__expf(1.0f), 2.7182818f, 1e-6f);
}
END_TEST

START_TEST(arena_alignment)
{
    mn__arena a = { 0 };
    for (int i = 1; i < 2000; i += 37) {
        unsigned char *p = mn__arena_alloc(&a, (size_t)i);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq((uintptr_t)p % 64, 0);
        for (int k = 0; k < i; k++) ck_assert_int_eq(p[k], 0);
        memset(p, 0xab, (size_t)i);
    }
    ck_assert_ptr_nonnull(mn__arena_alloc(&a, 100000));   /* larger than a chunk */
    ck_assert_str_eq(mn__arena_strdup(&a, "head.weight"), "head.weight");
    mn__arena_free(&a);
    ck_assert_ptr_null(a.head);
}
END_TEST

/* Known-answer vectors from the Random123 distribution (kat_vectors). */
START_TEST(philox_known_answers)
{
    uint32_t out[4];
    mn_philox4x32((uint32_t[]){ 0, 0 }, (uint32_t[]){ 0, 0, 0, 0 }, out);
    ck_assert_uint_eq(out[0], 0x6627e8d5u); ck_assert_uint_eq(out[1], 0xe169c58du);
    ck_assert_uint_eq(out[2], 0xbc57ac4cu); ck_assert_uint_eq(out[3], 0x9b00dbd8u);
    mn_philox4x32((uint32_t[]){ 0xffffffffu, 0xffffffffu }, (uint32_t[]){ 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu }, out);
    ck_assert_uint_eq(out[0], 0x408f276du); ck_assert_uint_eq(out[1], 0x41c83b0eu);
    ck_assert_uint_eq(out[2], 0xa20bc7c6u); ck_assert_uint_eq(out[3], 0x6d5451fdu);
    mn_philox4x32((uint32_t[]){ 0xa4093822u, 0x299f31d0u }, (uint32_t[]){ 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u }, out);
    ck_assert_uint_eq(out[0], 0xd16cfe09u); ck_assert_uint_eq(out[1], 0x94fdccebu);
    ck_assert_uint_eq(out[2], 0x5001e420u); ck_assert_uint_eq(out[3], 0x24126ea1u);
}
END_TEST

START_TEST(rng_independent_of_threads)
{
    enum { N = 200000 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    omp_set_num_threads(1);
    mn_rng_fill_normal(a, N, 42, 7, 0.0f, 1.0f);
    omp_set_num_threads(2);
    mn_rng_fill_normal(b, N, 42, 7, 0.0f, 1.0f);
    ck_assert_int_eq(memcmp(a, b, N * sizeof *a), 0);
    ck_assert(mn_rng_uniform(42, 7, 5) == mn_rng_uniform(42, 7, 5));
    ck_assert(mn_rng_uniform(42, 7, 5) != mn_rng_uniform(42, 8, 5));
    ck_assert(mn_rng_uniform(42, 7, 5) != mn_rng_uniform(43, 7, 5));
    free(a); free(b);
}
END_TEST

/* The vectorised fill (dropout's) draws exactly mn_rng_uniform's values,
 * also across the 2^32 carry of the index and with high seed/stream bits. */
START_TEST(rng_uniform_n_equals_one_by_one)
{
    static const uint64_t starts[] = { 0, 5, 0xFFFFFFF7ull, 1ull << 40 };
    static const int64_t lens[] = { 1, 15, 16, 37, 300 };
    float u[300];
    for (int s = 0; s < 4; s++)
        for (int l = 0; l < 5; l++) {
            uint64_t seed = 0x123456789abcull + (uint64_t)s, stream = 0xfeedull << 33 | (uint64_t)l;
            mn__rng_uniform_n(seed, stream, starts[s], lens[l], u);
            for (int64_t i = 0; i < lens[l]; i++)
                ck_assert_msg(u[i] == mn_rng_uniform(seed, stream, starts[s] + (uint64_t)i), "start %d len %d element %d",
                              s, l, (int)i);
        }
}
END_TEST

START_TEST(rng_moments)
{
    enum { N = 400000 };
    float *x = malloc(N * sizeof *x);
    double s = 0, s2 = 0;
    mn_rng_fill_uniform(x, N, 1, 2, -1.0f, 3.0f);
    for (int i = 0; i < N; i++) { ck_assert(x[i] >= -1.0f && x[i] < 3.0f); s += x[i]; s2 += (double)x[i] * x[i]; }
    ck_assert_close(s / N, 1.0, 0.01);                       /* mean of U(-1,3) */
    ck_assert_close(s2 / N - (s / N) * (s / N), 16.0 / 12.0, 0.01);
    mn_rng_fill_normal(x, N, 1, 3, 2.0f, 0.5f);
    s = s2 = 0;
    for (int i = 0; i < N; i++) { s += x[i]; s2 += (double)x[i] * x[i]; }
    ck_assert_close(s / N, 2.0, 0.005);
    ck_assert_close(sqrt(s2 / N - (s / N) * (s / N)), 0.5, 0.005);
    free(x);
}
END_TEST

START_TEST(param_store)
{
    mn_params *P = mn_params_new();
    ck_assert_ok(mn_params_create(P, "b", MN_SHAPE(3), (mn_init){ .kind = MN_INIT_ONES }));
    ck_assert_ok(mn_params_create(P, "a", MN_SHAPE(2, 2), (mn_init){ .kind = MN_INIT_CONSTANT, .a = 0.25f }));
    ck_assert_ok(mn_params_create_state(P, "a.exp_avg", MN_SHAPE(2, 2)));
    ck_assert_int_eq(mn_params_create(P, "a", MN_SHAPE(2), (mn_init){ 0 }), MN_ERR_EXISTS);
    ck_assert_int_eq(mn_params_create(P, "", MN_SHAPE(2), (mn_init){ 0 }), MN_ERR_INVALID);
    ck_assert_int_eq(mn_params_count(P), 3);
    ck_assert_str_eq(mn_params_name(P, 0), "b");                 /* creation order */
    ck_assert_str_eq(mn_params_name(P, 1), "a");
    ck_assert_int_eq(mn_params_find(P, "a.exp_avg"), 2);
    ck_assert_int_eq(mn_params_find(P, "zz"), -1);
    ck_assert(mn_f32(mn_params_get(P, "a"))[3] == 0.25f);
    ck_assert_ptr_null(mn_params_grad(P, 2));                    /* state has no gradient */
    ck_assert_int_eq(mn_params_numel(P), 7);
    mn_f32(mn_params_get_grad(P, "b"))[1] = 5.0f;
    mn_params_zero_grad(P);
    ck_assert(mn_f32(mn_params_get_grad(P, "b"))[1] == 0.0f);
    ck_assert_ok(mn_params_set_meta(P, "k", "v1"));
    ck_assert_ok(mn_params_set_meta(P, "k", "v2"));
    ck_assert_str_eq(mn_params_get_meta(P, "k"), "v2");
    ck_assert_int_eq(mn_params_meta_count(P), 1);
    ck_assert_ptr_null(mn_params_get(NULL, "a"));
    mn_params_free(P);
}
END_TEST

/* A strict store (a loaded model) creates nothing: mn_param on a name it
 * lacks is a graph error naming the parameter, never a fresh weight. */
START_TEST(strict_store_creates_nothing)
{
    mn_params *P = mn_params_new();
    ck_assert_ok(mn_params_create(P, "fc.weight", MN_SHAPE(3, 2), (mn_init){ .kind = MN_INIT_ONES }));
    mn_params_set_strict(P, true);
    ck_assert_int_eq(mn_params_create(P, "fc.bias", MN_SHAPE(3), (mn_init){ 0 }), MN_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "\"fc.bias\""));
    ck_assert_ok(mn_params_create_state(P, "optim.fc.weight.step", MN_SCALAR));   /* optimizer state is not the model */
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(4, 2));
    ck_assert_ptr_null(mn_linear(g, "fc", x, 3, true));
    ck_assert_int_eq(mn_graph_status(g), MN_ERR_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(mn_graph_errmsg(g), "fc.bias"));
    ck_assert_int_eq(mn_params_find(P, "fc.bias"), -1);
    mn_graph_free(g);
    mn_params_set_strict(P, false);
    ck_assert_ok(mn_params_create(P, "fc.bias", MN_SHAPE(3), (mn_init){ 0 }));
    mn_params_free(P);
}
END_TEST

/* mn_params_match: every parameter of the model from the loaded store,
 * each of the model's shape, and nothing trainable left unused. */
START_TEST(match_names_missing_misshapen_and_unused)
{
    mn_params *model = mn_params_new(), *P = mn_params_new();
    mn_init one = { .kind = MN_INIT_ONES };
    ck_assert_ok(mn_params_create(model, "a", MN_SHAPE(2), one));
    ck_assert_ok(mn_params_create(model, "b", MN_SHAPE(2, 2), one));
    ck_assert_ok(mn_params_create(model, "c", MN_SHAPE(3), one));
    ck_assert_ok(mn_params_create(P, "a", MN_SHAPE(2), one));
    ck_assert_int_eq(mn_params_match(P, model), MN_ERR_NOTFOUND);
    ck_assert_str_eq(mn_errmsg(), "2 parameters of the model are missing: b, c");
    ck_assert_ok(mn_params_create(P, "b", MN_SHAPE(4), one));
    ck_assert_ok(mn_params_create(P, "c", MN_SHAPE(3), one));
    ck_assert_int_eq(mn_params_match(P, model), MN_ERR_SHAPE);
    ck_assert_str_eq(mn_errmsg(), "1 parameter of another shape than the model's: b");
    mn_params *Q = mn_params_new();
    ck_assert_ok(mn_params_create(Q, "a", MN_SHAPE(2), one));
    ck_assert_ok(mn_params_create(Q, "b", MN_SHAPE(2, 2), one));
    ck_assert_ok(mn_params_create(Q, "c", MN_SHAPE(3), one));
    ck_assert_ok(mn_params_create_state(Q, "optim.a.exp_avg", MN_SHAPE(2)));     /* state is never "unused" */
    ck_assert_ok(mn_params_match(Q, model));
    ck_assert_ok(mn_params_create(Q, "extra", MN_SHAPE(1), one));
    ck_assert_int_eq(mn_params_match(Q, model), MN_ERR_INVALID);
    ck_assert_str_eq(mn_errmsg(), "1 tensor the model does not use: extra");
    ck_assert_int_eq(mn_params_match(NULL, model), MN_ERR_MISUSE);
    mn_params_free(model); mn_params_free(P); mn_params_free(Q);
}
END_TEST

START_TEST(init_independent_of_order)
{
    mn_init in = { .kind = MN_INIT_NORMAL, .a = 0, .b = 1 };
    mn_params *P = mn_params_new(), *Q = mn_params_new();
    mn_params_set_seed(P, 9); mn_params_set_seed(Q, 9);
    mn_params_create(P, "x", MN_SHAPE(10), in); mn_params_create(P, "y", MN_SHAPE(10), in);
    mn_params_create(Q, "y", MN_SHAPE(10), in); mn_params_create(Q, "x", MN_SHAPE(10), in);
    ck_assert_int_eq(memcmp(mn_params_get(P, "x")->data, mn_params_get(Q, "x")->data, 40), 0);
    ck_assert_int_ne(memcmp(mn_params_get(P, "x")->data, mn_params_get(P, "y")->data, 40), 0);
    mn_params_free(P); mn_params_free(Q);
}
END_TEST

START_TEST(init_gains_and_fans)
{
    int64_t fi, fo;
    ck_assert_close(mn_init_gain(MN_NONLIN_TANH, 0), 5.0 / 3.0, 1e-6);
    ck_assert_close(mn_init_gain(MN_NONLIN_RELU, 0), sqrt(2.0), 1e-6);
    ck_assert_close(mn_init_gain(MN_NONLIN_LEAKY_RELU, 0.01f), sqrt(2.0 / (1 + 1e-4)), 1e-6);
    ck_assert_close(mn_init_gain(MN_NONLIN_SIGMOID, 0), 1.0, 0);
    ck_assert_ok(mn_init_fans(MN_SHAPE(8, 4, 3, 3), &fi, &fo));
    ck_assert_int_eq(fi, 36); ck_assert_int_eq(fo, 72);
    ck_assert_int_eq(mn_init_fans(MN_SHAPE(8), &fi, &fo), MN_ERR_SHAPE);
}
END_TEST

static void moments(const mn_tensor *t, double *mean, double *std, double *maxabs)
{
    int64_t n = mn_tensor_numel(t);
    double s = 0, s2 = 0, m = 0;
    for (int64_t i = 0; i < n; i++) { double x = mn_f32(t)[i]; s += x; s2 += x * x; if (fabs(x) > m) m = fabs(x); }
    *mean = s / (double)n; *std = sqrt(s2 / (double)n - *mean * *mean); *maxabs = m;
}

START_TEST(init_distributions)
{
    mn_tensor *t = mn_tensor_new(MN_F32, MN_SHAPE(400, 300));
    double mean, std, mx;
    /* kaiming_uniform default (a=0, fan_in, leaky_relu): bound sqrt(6 / 300) */
    ck_assert_ok(mn_init_fill(t, (mn_init){ .kind = MN_INIT_KAIMING_UNIFORM }, 1, 1));
    moments(t, &mean, &std, &mx);
    ck_assert(mx <= sqrt(6.0 / 300) + 1e-6 && mx > 0.99 * sqrt(6.0 / 300));
    ck_assert_close(std, sqrt(2.0 / 300), 0.002);
    /* kaiming_normal, fan_out, relu: std sqrt(2 / 400) */
    ck_assert_ok(mn_init_fill(t, (mn_init){ .kind = MN_INIT_KAIMING_NORMAL, .mode = MN_FAN_OUT, .nonlin = MN_NONLIN_RELU }, 1, 2));
    moments(t, &mean, &std, &mx);
    ck_assert_close(std, sqrt(2.0 / 400), 0.002);
    ck_assert_close(mean, 0.0, 0.002);
    /* xavier_uniform gain 2: bound 2 sqrt(6 / 700) */
    ck_assert_ok(mn_init_fill(t, (mn_init){ .kind = MN_INIT_XAVIER_UNIFORM, .gain = 2.0f }, 1, 3));
    moments(t, &mean, &std, &mx);
    ck_assert(mx <= 2 * sqrt(6.0 / 700) + 1e-6 && mx > 0.99 * 2 * sqrt(6.0 / 700));
    ck_assert_ok(mn_init_fill(t, (mn_init){ .kind = MN_INIT_XAVIER_NORMAL }, 1, 4));
    moments(t, &mean, &std, &mx);
    ck_assert_close(std, sqrt(2.0 / 700), 0.001);
    ck_assert_ok(mn_init_fill(t, (mn_init){ .kind = MN_INIT_UNIFORM, .a = 2, .b = 4 }, 1, 5));
    moments(t, &mean, &std, &mx);
    ck_assert_close(mean, 3.0, 0.01);
    ck_assert_int_eq(mn_init_fill(t, (mn_init){ .kind = MN_INIT_UNIFORM, .a = 4, .b = 2 }, 1, 5), MN_ERR_INVALID);
    ck_assert_int_eq(mn_init_fill(t, (mn_init){ .kind = MN_INIT_NORMAL, .b = -1 }, 1, 5), MN_ERR_INVALID);
    mn_tensor_free(t);
}
END_TEST

/* PyTorch modules' defaults by name, against the formulas of their
 * reset_parameters: bounds and standard deviations computed here. */
START_TEST(init_like_pytorch_modules)
{
    enum { OUT = 300, IN = 400, HID = 64 };
    mn_tensor *w = mn_tensor_new(MN_F32, MN_SHAPE(OUT, IN)), *b = mn_tensor_new(MN_F32, MN_SHAPE(OUT));
    mn_tensor *r = mn_tensor_new(MN_F32, MN_SHAPE(4 * HID, IN));
    double mean, std, mx, lin = 1.0 / sqrt((double)IN), rnn = 1.0 / sqrt((double)HID);
    /* nn.Linear: kaiming_uniform(a = sqrt(5)) is U(+-1/sqrt(in_features)) */
    ck_assert_ok(mn_init_fill(w, mn_init_like(MN_LIKE_LINEAR, false, IN), 1, 1));
    moments(w, &mean, &std, &mx);
    ck_assert_msg(mx <= lin * (1 + 1e-6) && mx > 0.99 * lin, "linear weight max %g, bound %g", mx, lin);
    ck_assert_close(std, lin / sqrt(3.0), 0.001);
    ck_assert_ok(mn_init_fill(b, mn_init_like(MN_LIKE_LINEAR, true, IN), 1, 2));
    moments(b, &mean, &std, &mx);
    ck_assert_msg(mx <= lin * (1 + 1e-6) && mx > 0.9 * lin, "linear bias max %g, bound %g", mx, lin);
    /* nn.Embedding: N(0, 1) */
    ck_assert_ok(mn_init_fill(w, mn_init_like(MN_LIKE_EMBEDDING, false, 0), 1, 3));
    moments(w, &mean, &std, &mx);
    ck_assert_close(mean, 0.0, 0.01);
    ck_assert_close(std, 1.0, 0.01);
    /* nn.LSTM (and RNN, GRU): every tensor U(+-1/sqrt(hidden_size)) */
    ck_assert_ok(mn_init_fill(r, mn_init_like(MN_LIKE_RNN, false, HID), 1, 4));
    moments(r, &mean, &std, &mx);
    ck_assert_msg(mx <= rnn * (1 + 1e-6) && mx > 0.99 * rnn, "rnn weight max %g, bound %g", mx, rnn);
    ck_assert_close(std, rnn / sqrt(3.0), 0.002);
    ck_assert_ok(mn_init_fill(b, mn_init_like(MN_LIKE_RNN, true, HID), 1, 5));
    moments(b, &mean, &std, &mx);
    ck_assert_msg(mx <= rnn * (1 + 1e-6) && mx > 0.9 * rnn, "rnn bias max %g, bound %g", mx, rnn);
    /* nn.LayerNorm: weight 1, bias 0 */
    ck_assert_ok(mn_init_fill(b, mn_init_like(MN_LIKE_LAYER_NORM, false, 0), 1, 6));
    moments(b, &mean, &std, &mx);
    ck_assert(mean == 1.0 && std == 0.0);
    ck_assert_ok(mn_init_fill(b, mn_init_like(MN_LIKE_LAYER_NORM, true, 0), 1, 7));
    moments(b, &mean, &std, &mx);
    ck_assert(mx == 0.0);
    /* no fan, a bias nn.Embedding has not, an unknown module: filling fails */
    ck_assert_int_eq(mn_init_fill(b, mn_init_like(MN_LIKE_LINEAR, true, 0), 1, 8), MN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "mn_init_like"));
    ck_assert_int_eq(mn_init_fill(b, mn_init_like(MN_LIKE_EMBEDDING, true, 0), 1, 8), MN_ERR_INVALID);
    ck_assert_int_eq(mn_init_fill(b, mn_init_like(MN_LIKE_RNN, false, -3), 1, 8), MN_ERR_INVALID);
    ck_assert_int_eq(mn_init_fill(b, mn_init_like((mn_like)99, false, 8), 1, 8), MN_ERR_INVALID);
    mn_tensor_free(w); mn_tensor_free(b); mn_tensor_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, status_table);
    tcase_add_test(tc, errors_are_per_thread);
    tcase_add_test(tc, shapes);
    tcase_add_test(tc, tensors);
    tcase_add_test(tc, tensor_sizes_never_wrap);
    tcase_add_test(tc, fastmath_nonfinite_inputs);
    tcase_add_test(tc, arena_alignment);
    tcase_add_test(tc, philox_known_answers);
    tcase_add_test(tc, rng_independent_of_threads);
    tcase_add_test(tc, rng_uniform_n_equals_one_by_one);
    tcase_add_test(tc, rng_moments);
    tcase_add_test(tc, param_store);
    tcase_add_test(tc, strict_store_creates_nothing);
    tcase_add_test(tc, match_names_missing_misshapen_and_unused);
    tcase_add_test(tc, init_independent_of_order);
    tcase_add_test(tc, init_gains_and_fans);
    tcase_add_test(tc, init_distributions);
    tcase_add_test(tc, init_like_pytorch_modules);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
