/* tests/test_plan.c: the memory planner and the parallel executor. Targets
 * on training graphs (arena <= 1.15 x lower bound; <= 0.5 x naive on the
 * MLP and a hand-built 64-step unrolled LSTM), the verifier (passes on
 * every graph, catches a corrupted plan), in-place reuse, inter-op levels,
 * determinism with 1 and 2 threads, serial mode. */
#include "harness.h"
#include "../graph/exec.h"
#include "workloads.h"
#include <string.h>
#include <malloc.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <omp.h>

typedef struct { mn_params *P; mn_graph *g; mn_node *loss; } model;

static void feed_random(mn_exec *ex, const char *name, mn_shape s, mn_dtype dt, int classes, uint64_t seed)
{
    int64_t n = mn_shape_numel(s);
    void *buf = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        if (dt == MN_I32) ((int32_t *)buf)[i] = (int32_t)(mn_rng_uniform(seed, 1, (uint64_t)i) * (float)classes);
        else ((float *)buf)[i] = mn_rng_normal(seed, 2, (uint64_t)i);
    }
    ck_assert_ok(mn_exec_feed_data(ex, name, buf, (size_t)n * 4));
    free(buf);
}

static model mlp(int64_t B)
{
    model m = { mn_params_new(), NULL, NULL };
    m.g = mn_graph_new(m.P);
    mn_node *x = mn_input(m.g, "x", MN_F32, MN_SHAPE(B, 784)), *y = mn_input(m.g, "y", MN_I32, MN_SHAPE(B));
    int64_t widths[3] = { 512, 512, 10 };
    m.loss = mn_cross_entropy(m.g, mn_mlp(m.g, "mlp", x, 3, widths), y);
    return m;
}

/* 64 steps of an LSTM cell (gates i, f, g, o as PyTorch) over x [T, B, I],
 * the input projection as one matmul per block of steps (as models/rnn.c:
 * MN_STEP_BLOCK_ROWS rows, the blocks of the weight gradients), CE on every step's h. */
static model lstm(int64_t T, int64_t B, int64_t I, int64_t H, int64_t V)
{
    model m = { mn_params_new(), NULL, NULL };
    mn_graph *g = m.g = mn_graph_new(m.P);
    mn_init u = { .kind = MN_INIT_UNIFORM, .a = -0.1f, .b = 0.1f };
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(T, B, I)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(T, B));
    mn_node *wih = mn_param(g, "w_ih", MN_SHAPE(4 * H, I), u), *whh = mn_param(g, "w_hh", MN_SHAPE(4 * H, H), u);
    mn_node *b = mn_param(g, "b", MN_SHAPE(4 * H), u);
    int64_t S = (MN_STEP_BLOCK_ROWS + B - 1) / B, nb = (T + S - 1) / S;
    mn_node *xp[64];
    for (int64_t k = 0; k < nb && k < 64; k++)                                /* [S, B, 4H] */
        xp[k] = mn_add(g, mn_matmul(g, nb == 1 ? x : mn_slice(g, x, 0, k * S, k * S + S, 1), wih, false, true), b);
    mn_node *h = mn_fill(g, MN_SHAPE(B, H), 0, MN_F32), *c = h;
    mn_node **hs = malloc((size_t)T * sizeof *hs);
    for (int64_t t = 0; t < T; t++) {
        mn_node *xt = mn_reshape(g, mn_slice(g, xp[t / S], 0, t % S, t % S + 1, 1), MN_SHAPE(B, 4 * H));
        mn_node *gt = mn_add(g, xt, mn_matmul(g, h, whh, false, true));
        mn_node *q[4];
        mn_chunk(g, gt, 1, 4, q);
        mn_node *i = mn_sigmoid(g, q[0]), *f = mn_sigmoid(g, q[1]), *gg = mn_tanh(g, q[2]), *o = mn_sigmoid(g, q[3]);
        c = mn_add(g, mn_mul(g, f, c), mn_mul(g, i, gg));
        h = mn_mul(g, o, mn_tanh(g, c));
        hs[t] = h;
    }
    mn_node *hall = mn_stack(g, hs, (int)T, 0);                                /* [T, B, H] */
    free(hs);
    mn_node *logits = mn_linear(g, "head", hall, V, true);
    m.loss = mn_cross_entropy(g, mn_reshape(g, logits, MN_SHAPE(T * B, V)), mn_reshape(g, y, MN_SHAPE(T * B)));
    return m;
}

static void free_model(model *m) { mn_graph_free(m->g); mn_params_free(m->P); }

static void check_targets(const char *name, mn_exec *ex, double naive_ratio)
{
    mn_exec_stats s = mn_exec_get_stats(ex);
    printf("%s: steps %d levels %d in-place %d | naive %lld lower bound %lld arena %lld | arena/lb %.3f arena/naive %.3f\n",
           name, s.steps, s.levels, s.inplace, (long long)s.naive_bytes, (long long)s.lower_bound_bytes,
           (long long)s.arena_bytes, (double)s.arena_bytes / (double)s.lower_bound_bytes,
           (double)s.arena_bytes / (double)s.naive_bytes);
    ck_assert_ok(mn_exec_verify(ex));
    ck_assert_int_ge(s.arena_bytes, s.lower_bound_bytes);
    ck_assert_msg(s.arena_bytes <= 1.15 * (double)s.lower_bound_bytes, "%s: arena %lld > 1.15 x lower bound %lld", name,
                  (long long)s.arena_bytes, (long long)s.lower_bound_bytes);
    if (naive_ratio > 0)
        ck_assert_msg(s.arena_bytes <= naive_ratio * (double)s.naive_bytes, "%s: arena %lld > %.2f x naive %lld", name,
                      (long long)s.arena_bytes, naive_ratio, (long long)s.naive_bytes);
}

START_TEST(mlp_plan_targets)
{
    model m = mlp(128);
    mn_exec *ex = mn_compile(m.g, m.loss, NULL);
    ck_assert_ptr_nonnull(ex);
    check_targets("mlp 784-512-512-10 b128", ex, 0.5);
    mn_exec_free(ex); free_model(&m);
}
END_TEST

START_TEST(lstm_plan_targets)
{
    model m = lstm(64, 32, 64, 256, 96);
    mn_exec *ex = mn_compile(m.g, m.loss, NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(m.g));
    check_targets("lstm 64 steps b32 h256", ex, 0.5);
    feed_random(ex, "x", MN_SHAPE(64, 32, 64), MN_F32, 0, 1);
    feed_random(ex, "y", MN_SHAPE(64, 32), MN_I32, 96, 2);
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_close(mn_exec_loss(ex), log(96.0), 0.05);      /* small weights: near uniform */
    mn_exec_free(ex); free_model(&m);
}
END_TEST

/* Outputs and gradients of two models must match bit for bit. */
static void run_model(model *m, int threads, bool serial, float *loss, float **grads)
{
    mn_params_zero_grad(m->P);
    mn_exec *ex = mn_compile(m->g, m->loss, &(mn_compile_opts){ .threads = threads, .serial = serial });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(m->g));
    for (int i = 0; i < ex->nvals; i++)
        if (ex->vals[i].base == MN_VAL_INPUT)
            feed_random(ex, ex->vals[i].node->name, ex->vals[i].t.shape, ex->vals[i].t.dtype, 96, 7);
    ck_assert_ok(mn_exec_run(ex));
    *loss = mn_exec_loss(ex);
    int64_t total = 0;
    for (int i = 0; i < mn_params_count(m->P); i++) total += mn_tensor_numel(mn_params_grad(m->P, i));
    *grads = malloc((size_t)total * sizeof **grads);
    for (int i = 0, at = 0; i < mn_params_count(m->P); i++) {
        mn_tensor *gt = mn_params_grad(m->P, i);
        memcpy(*grads + at, gt->data, mn_tensor_bytes(gt));
        at += (int)mn_tensor_numel(gt);
    }
    mn_exec_free(ex);
}

static int64_t grad_count(mn_params *P)
{
    int64_t n = 0;
    for (int i = 0; i < mn_params_count(P); i++) n += mn_tensor_numel(mn_params_grad(P, i));
    return n;
}

START_TEST(deterministic_for_1_and_2_threads)
{
    model m = lstm(16, 8, 16, 32, 96);
    int64_t n = grad_count(m.P);
    for (int threads = 1; threads <= 2; threads++) {
        float l1, l2, *g1, *g2;
        run_model(&m, threads, false, &l1, &g1);
        run_model(&m, threads, false, &l2, &g2);
        ck_assert_msg(memcmp(&l1, &l2, sizeof l1) == 0, "%d threads: loss %.9g vs %.9g", threads, l1, l2);
        ck_assert_msg(memcmp(g1, g2, (size_t)n * sizeof *g1) == 0, "%d threads: gradients differ between runs", threads);
        free(g1); free(g2);
    }
    float ls, lp, *gs, *gp;
    run_model(&m, 1, true, &ls, &gs);
    run_model(&m, 2, false, &lp, &gp);
    ck_assert_close(ls, lp, 1e-5 * fabs(ls));
    for (int64_t i = 0; i < n; i++) ck_assert_close(gs[i], gp[i], 1e-4 * (fabs(gs[i]) + 1e-3));
    free(gs); free(gp);
    free_model(&m);
}
END_TEST

START_TEST(independent_branches_share_a_level)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(8, 16));
    mn_node *a = mn_linear(g, "fwd", x, 16, true), *b = mn_linear(g, "bwd", x, 16, true);
    mn_node *loss = mn_sum_all(g, mn_mul(g, mn_tanh(g, a), mn_sigmoid(g, b)));
    mn_exec *ex = mn_compile(g, loss, NULL);
    mn_exec_stats s = mn_exec_get_stats(ex);
    ck_assert_int_lt(s.levels, s.steps);
    /* the two matmuls have no dependency: same level */
    int lv[2], k = 0;
    for (int i = 0; i < ex->nsteps && k < 2; i++)
        if (!strcmp(ex->steps[i].node->op->name, "matmul") && !ex->steps[i].node->backward) lv[k++] = ex->steps[i].level;
    ck_assert_int_eq(k, 2);
    ck_assert_int_eq(lv[0], lv[1]);
    mn_exec_stats ser;
    mn_exec *sx = mn_compile(g, loss, &(mn_compile_opts){ .serial = true });
    ser = mn_exec_get_stats(sx);
    ck_assert_int_eq(ser.levels, ser.steps);                 /* serial: one step per level */
    mn_exec_free(sx); mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(inplace_reuse_and_broadcast_regression)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *w = mn_param(g, "w", MN_SCALAR, (mn_init){ .kind = MN_INIT_CONSTANT, .a = 2 });
    float tv[15];
    for (int i = 0; i < 15; i++) tv[i] = (float)(i + 1);
    mn_node *t = mn_constant(g, MN_F32, MN_SHAPE(3, 5), tv);
    mn_node *s = mn_scale(g, w, 0.5f);                        /* a scalar [] (4 bytes) */
    mn_node *y = mn_neg(g, mn_exp(g, mn_mul(g, s, t)));      /* mul's input 0 is broadcast: no in-place */
    const mn_node *outs[1] = { y };
    for (int fuse = 0; fuse < 2; fuse++) {                    /* unfused: the planner's in-place pairs */
        mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1, .no_fuse = !fuse });
        ck_assert_ok(mn_exec_run(ex));
        for (int i = 0; i < 15; i++) ck_assert_close(mn_f32(mn_exec_value(ex, y))[i], -exp(i + 1.0), 1e-5 * exp(i + 1.0));
        if (!fuse) ck_assert_int_ge(mn_exec_get_stats(ex).inplace, 1);   /* exp and neg reuse their input */
        else ck_assert_int_eq(mn_exec_get_stats(ex).fused_groups, 1);    /* scale, mul, exp, neg: one step */
        mn_exec_free(ex);
    }
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Concat in place: pieces computed by ops are written straight into the
 * concat's bytes; a param piece is still copied; a second concat of the
 * same pieces (through reshapes) becomes a view of the first. */
START_TEST(concat_pieces_written_in_place)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_param(g, "x", MN_SHAPE(4, 6), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -1, .b = 1 });
    mn_node *w = mn_param(g, "w", MN_SHAPE(2, 6), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -1, .b = 1 });
    mn_node *p[3] = { mn_tanh(g, x), mn_exp(g, x), w };
    mn_node *cat = mn_concat(g, p, 3, 0);                                        /* [10, 6] */
    mn_node *q[2] = { mn_reshape(g, p[0], MN_SHAPE(1, 4, 6)), mn_reshape(g, p[1], MN_SHAPE(1, 4, 6)) };
    mn_node *cat2 = mn_concat(g, q, 2, 0);                                       /* [2, 4, 6]: the same bytes */
    mn_node *y = mn_add(g, mn_sum_all(g, mn_square(g, cat)), mn_sum_all(g, mn_mul(g, cat2, cat2)));
    const mn_node *outs[2] = { cat, cat2 };
    mn_exec *ex = mn_compile(g, y, &(mn_compile_opts){ .outputs = outs, .noutputs = 2, .verify = true });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_ge(mn_exec_get_stats(ex).placed, 3);         /* tanh, exp pieces; cat2 a view */
    ck_assert_ok(mn_exec_run(ex));
    const float *xv = mn_f32(mn_params_get(P, "x")), *wv = mn_f32(mn_params_get(P, "w"));
    const float *c = mn_f32(mn_exec_value(ex, cat)), *c2 = mn_f32(mn_exec_value(ex, cat2));
    double want = 0;
    for (int i = 0; i < 24; i++) {
        ck_assert_close(c[i], tanh(xv[i]), 1e-6);
        ck_assert_close(c[24 + i], exp(xv[i]), 1e-5 * exp(xv[i]));
        ck_assert_close(c2[i], c[i], 0);
        ck_assert_close(c2[24 + i], c[24 + i], 0);
        want += 2 * (tanh(xv[i]) * tanh(xv[i]) + exp(2.0 * xv[i]));
    }
    for (int i = 0; i < 12; i++) { ck_assert_close(c[48 + i], wv[i], 0); want += wv[i] * wv[i]; }
    ck_assert_close(mn_exec_loss(ex), want, 1e-4 * want);
    /* gradient of x: 2 (d tanh + d exp) through both concats, as computed unplaced */
    const float *dx = mn_f32(mn_params_get_grad(P, "x"));
    for (int i = 0; i < 24; i++) {
        double t = tanh(xv[i]), e = exp(xv[i]);
        ck_assert_close(dx[i], 4 * t * (1 - t * t) + 4 * e * e, 1e-4 * (1 + 4 * e * e));
    }
    mn_exec_free(ex);
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* Pieces joined along the last axis are scattered by the fused kernels that
 * make them, and those joins are themselves pieces of a concat along axis
 * 0 (nested hosts): same values as computed unplaced and unfused. */
START_TEST(strided_and_nested_concat_pieces)
{
    float ref[2][8 * 3 * 12];
    int placed[2];
    for (int fuse = 0; fuse < 2; fuse++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        mn_node *x = mn_param(g, "x", MN_SHAPE(3, 4), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -1, .b = 1 });
        mn_node *rows[8];
        for (int t = 0; t < 8; t++) {
            mn_node *a = mn_scale(g, x, 0.5f + (float)t);
            mn_node *q[3] = { mn_sigmoid(g, mn_scale(g, a, 2.0f)), mn_tanh(g, mn_neg(g, a)), mn_mul(g, a, a) };
            rows[t] = mn_reshape(g, mn_concat(g, q, 3, 1), MN_SHAPE(1, 3, 12));   /* [3, 12]: strided pieces */
        }
        mn_node *all = mn_concat(g, rows, 8, 0);                                  /* [8, 3, 12] */
        const mn_node *outs[1] = { all };
        mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1, .verify = true, .no_fuse = !fuse });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert_ok(mn_exec_run(ex));
        memcpy(ref[fuse], mn_f32(mn_exec_value(ex, all)), sizeof ref[fuse]);
        placed[fuse] = mn_exec_get_stats(ex).placed;
        const float *xv = mn_f32(mn_params_get(P, "x"));
        for (int t = 0; t < 8; t++)                                               /* against the formulas */
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 4; j++) {
                    double a = (0.5 + t) * xv[i * 4 + j];
                    const float *row = ref[fuse] + (t * 3 + i) * 12;
                    ck_assert_close(row[j], 1 / (1 + exp(-2 * a)), 1e-6);
                    ck_assert_close(row[4 + j], tanh(-a), 1e-6);
                    ck_assert_close(row[8 + j], a * a, 1e-5 * (1 + a * a));
                }
        mn_exec_free(ex);
        mn_graph_free(g); mn_params_free(P);
    }
    ck_assert_int_eq(placed[0], 8);              /* unfused: the rows only */
    ck_assert_int_eq(placed[1], 8 * 3 + 8);      /* fused: 24 scattered pieces, 8 nested rows */
    ck_assert(memcmp(ref[0], ref[1], sizeof ref[0]) == 0);
}
END_TEST

START_TEST(verifier_catches_a_corrupted_plan)
{
    model m = mlp(16);
    mn_exec *ex = mn_compile(m.g, m.loss, NULL);
    ck_assert_ok(mn_exec_verify(ex));
    /* put the second layer's matmul output on the first layer's bytes (both [16,512], both needed later) */
    int mm[2], k = 0;
    for (int s = 0; s < ex->nsteps && k < 2; s++)
        if (!strcmp(ex->steps[s].node->op->name, "matmul") && !ex->steps[s].node->backward) mm[k++] = ex->steps[s].out;
    ck_assert_int_eq(k, 2);
    ex->vals[mm[1]].t.data = ex->vals[mm[0]].t.data;
    ck_assert_int_eq(mn_exec_verify(ex), MN_ERR_INVALID);
    ck_assert_msg(strstr(mn_errmsg(), "share bytes") != NULL, "message: %s", mn_errmsg());
    mn_exec_free(ex); free_model(&m);
}
END_TEST

/* A bench workload's training graph, compiled with the default options. */
static mn_exec *compile_workload(const char *name, mn_workload *w)
{
    ck_assert_ok(mn_workload_build(name, w));
    mn_exec *ex = mn_compile(w->g, w->loss, NULL);
    ck_assert_msg(ex != NULL, "%s: %s", name, mn_graph_errmsg(w->g));
    return ex;
}

/* Every bench workload's training graph: verified plan, arena <= 1.15 x
 * lower bound, and <= 0.5 x naive on lstm and transformer. */
START_TEST(bench_workloads_meet_targets)
{
    const char *name = mn_workload_names[_i];
    mn_workload w;
    mn_exec *ex = compile_workload(name, &w);
    bool strict = !strcmp(name, "lstm") || !strcmp(name, "transformer");
    check_targets(name, ex, strict ? 0.5 : 0);
    mn_exec_free(ex);
    mn_workload_free(&w);
}
END_TEST

/* The predicted peak (issue 17) counts what compiling keeps besides the
 * arena: the executable's tables. Held by the heap after mn_compile (glibc's
 * in-use bytes, mmapped blocks included, less the arena and the gradient
 * backup a run writes, which the prediction counts as a copy of the weights) must match
 * plan.table_bytes within 25% on the lstm workload (~3 MB of tables), and
 * the predicted peak is the arena, the inputs, the tables and two copies of
 * the weights (values, gradients). */
START_TEST(predicted_peak_counts_the_executables_tables)
{
    mn_workload w;
    ck_assert_ok(mn_workload_build("lstm", &w));
    struct mallinfo2 m0 = mallinfo2();
    mn_exec *ex = mn_compile(w.g, w.loss, NULL);
    struct mallinfo2 m1 = mallinfo2();
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(w.g));
    double held = (double)(m1.uordblks + m1.hblkhd) - (double)(m0.uordblks + m0.hblkhd) - (double)ex->arena_bytes - 4.0 * (double)ex->backup_floats;
    double tables = mn_exec_stat(ex, "plan.table_bytes"), inputs = 0;
    for (int v = 0; v < ex->nvals; v++) if (ex->vals[v].base == MN_VAL_INPUT) inputs += (double)ex->vals[v].bytes;
    double weights = 4.0 * (double)mn_params_numel(w.P), predicted = mn_exec_stat(ex, "plan.predicted_peak_bytes");
    double expected = (double)ex->arena_bytes + inputs + tables + 2 * weights;
    mn_exec_free(ex);
    mn_workload_free(&w);
    printf("lstm: tables %.0f bytes counted, %.0f held by the heap after compile\n", tables, held);
    ck_assert_double_eq_tol(predicted, expected, 1.0);
#ifndef __SANITIZE_ADDRESS__                    /* ASan's allocator is not glibc's: mallinfo2 says nothing there */
    ck_assert_msg(tables > 0.75 * held && tables < 1.25 * held, "tables %.0f, heap %.0f", tables, held);
#else
    ck_assert_msg(tables > 0, "no tables counted");
#endif
}
END_TEST

/* The recurrent workloads' per-time-step work (issue 24), for the lstm and
 * gru of `mnemo bench` (T 64, B 32, H 256): each gate's add of the
 * recurrent product to the input projection runs inside the cell's fused
 * kernel (no add step of the whole [B, G*H] per time step), and the
 * gradient of the input projection of a block of steps is the weight
 * gradient's concat of the block's gate gradients, not a copy of it. */
START_TEST(recurrent_steps_fuse_gate_adds_and_share_the_gate_gradients)
{
    const char *names[2] = { "lstm", "gru" };
    const int64_t G[2] = { 4, 3 };
    for (int i = 0; i < 2; i++) {
        mn_workload w;
        mn_exec *ex = compile_workload(names[i], &w);
        int gate_adds = 0, copies = 0, shared = 0;
        for (int s = 0; s < ex->nsteps; s++) {
            const mn_step *st = &ex->steps[s];
            const mn_value *o = &ex->vals[st->out];
            bool whole = mn_shape_numel(o->t.shape) == MN_STEP_BLOCK_ROWS * G[i] * 256;   /* a block of 32 steps' gate gradients */
            if (!strcmp(st->node->op->name, "add") && mn__kind(o) == MN_VAL_ARENA && mn_shape_eq(o->t.shape, MN_SHAPE(32, G[i] * 256))) gate_adds++;
            if (strcmp(st->node->op->name, "concat") || !whole) continue;
            if (o->made_view) { shared++; continue; }
            for (int k = 0; k < st->nin; k++) copies += ex->vals[st->in[k]].into != st->out;
        }
        ck_assert_msg(gate_adds == 0, "%s: %d unfused adds of [B, G*H] (one per time step?)", names[i], gate_adds);
        if (i == 0) {
            ck_assert_msg(copies == 0, "lstm: %d gate-gradient pieces copied into a [T*B, 4H] concat", copies);
            ck_assert_int_eq(shared, 2);        /* per block, the input projection's gradient: a view of the weight gradient's */
        }
        mn_exec_free(ex);
        mn_workload_free(&w);
    }
}
END_TEST

/* The recurrent products of the lstm and gru workloads read W_hh packed
 * once per run (ops/packed.c): one pack for the forward products, one the
 * other way for the backward's dh products, every per-step product reads
 * them, and no plain matmul of a step's [B, H] state by W_hh is left. The
 * input projection of the embedded tokens (96 rows of table, 1,024 tokens
 * a block) is folded (ops/index.c): one product of the table by W_ih
 * ([96, G]) and one gather of its rows per block of 32 steps (2 blocks);
 * no packed or per-step product of the inputs is left, and W_ih is not
 * packed; the head is one per-step product per block of the outputs
 * (mn_linear_steps reading models/rnn.c's blocks of hidden states: 31, 32
 * and 1 time steps, the W_hh gradient's blocks). */
START_TEST(recurrent_products_read_a_weight_packed_once)
{
    const char *names[2] = { "lstm", "gru" };
    const int64_t G[2] = { 4, 3 };
    for (int i = 0; i < 2; i++) {
        mn_workload w;
        mn_exec *ex = compile_workload(names[i], &w);
        int packs = 0, fwd = 0, bwd = 0, plain = 0, steps = 0, head = 0, table = 0, gathers = 0;
        for (int s = 0; s < ex->nsteps; s++) {
            const mn_node *n = ex->steps[s].node;
            packs += !strcmp(n->op->name, "pack_weight");
            table += !strcmp(n->op->name, "matmul") && !n->backward && mn_shape_eq(n->desc.shape, MN_SHAPE(96, G[i] * 256));
            gathers += !strcmp(n->op->name, "index_select") && !n->backward && mn_shape_eq(n->desc.shape, MN_SHAPE(1024, G[i] * 256));
            if (!strcmp(n->op->name, "matmul_packed")) *(n->backward ? &bwd : &fwd) += 1;
            plain += !strcmp(n->op->name, "matmul") && !n->backward && mn_shape_eq(n->desc.shape, MN_SHAPE(32, G[i] * 256));
            if (strcmp(n->op->name, "matmul") || !((const mn_matmul_attrs *)n->attrs)->per_step || n->backward) continue;
            bool proj = n->desc.shape.d[n->desc.shape.ndim - 1] == G[i] * 256;   /* the head's blocks end in the vocabulary */
            *(proj ? &steps : &head) += 1;
        }
        ck_assert_msg(packs == 2, "%s: %d packs (W_hh, one per direction of the product)", names[i], packs);
        ck_assert_msg(table == 1 && gathers == 2, "%s: %d table products, %d block gathers", names[i], table, gathers);
        ck_assert_int_eq(fwd, 64);
        ck_assert_msg(bwd >= 63 && bwd <= 64, "%s: %d backward packed products", names[i], bwd);
        ck_assert_int_eq(plain, 0);
        ck_assert_msg(steps == 0, "%s: %d per-step products of the input projection left", names[i], steps);
        ck_assert_msg(head == 3, "%s: %d per-step head products (one per block of 31, 32 and 1 time steps)", names[i], head);
        mn_exec_free(ex);
        mn_workload_free(&w);
    }
}
END_TEST

/* The recurrent cells' fused kernels read the gates' slices of the
 * products and write the gate gradients into their concats in place
 * (graph/fuse.c's row tiles): no fused step of the lstm or gru workload
 * copies an input or output per tile. */
START_TEST(recurrent_cells_copy_nothing_per_tile)
{
    const char *names[2] = { "lstm", "gru" };
    for (int i = 0; i < 2; i++) {
        mn_workload w;
        mn_exec *ex = compile_workload(names[i], &w);
        int fused = 0, copying = 0;
        for (int s = 0; s < ex->nsteps; s++) {
            const mn_step *st = &ex->steps[s];
            if (!st->fused) continue;
            const int64_t *scat[MN_FUSE_MAX_MEMBERS + 1];
            scat[0] = ex->vals[st->out].scatter ? ex->vals[st->out].scatter_st : NULL;
            for (int k = 0; k < st->nxout; k++)
                scat[1 + k] = ex->vals[st->xout[k]].scatter ? ex->vals[st->xout[k]].scatter_st : NULL;
            fused++;
            copying += mn__fused_copies(st->fused, scat, st->nxout) > 0;
        }
        ck_assert_msg(fused >= 64 * 2, "%s: %d fused steps", names[i], fused);
        ck_assert_msg(copying == 0, "%s: %d of %d fused steps copy inputs or outputs per tile", names[i], copying, fused);
        mn_exec_free(ex);
        mn_workload_free(&w);
    }
}
END_TEST

/* The backward cell of a time step is one fused step (sibling fusion in
 * graph/fuse.c: the LSTM's four gate gradients, the GRU's three; the LSTM's
 * last step keeps its o gate apart), and
 * every gate-gradient concat of a step holds its pieces: none is copied
 * (the GRU's dr and dz are pieces of two concats, graph/copies.c). */
START_TEST(recurrent_backward_cell_is_one_step)
{
    const char *names[2] = { "lstm", "gru" };
    const int64_t G[2] = { 4, 3 };
    for (int i = 0; i < 2; i++) {
        mn_workload w;
        mn_exec *ex = compile_workload(names[i], &w);
        int cells = 0, concats = 0, copied = 0;
        for (int s = 0; s < ex->nsteps; s++) {
            const mn_step *st = &ex->steps[s];
            mn_shape shape = ex->vals[st->out].t.shape;
            if (st->fused && st->node->backward && mn_shape_eq(shape, MN_SHAPE(32, 256))) cells++;
            if (strcmp(st->node->op->name, "concat") || !mn_shape_eq(shape, MN_SHAPE(32, G[i] * 256))) continue;
            concats++;
            for (int k = 0; k < st->nin; k++) copied += ex->vals[st->in[k]].into != st->out;
        }
        /* 64 time steps; the last step's o gate reads the head's gradient directly, a sibling by input only */
        ck_assert_msg(cells >= 64 && cells <= 65, "%s: %d backward cell steps of [32, 256] for 64 time steps", names[i], cells);
        ck_assert_msg(concats >= 63 * (i ? 2 : 1), "%s: %d gate-gradient concats", names[i], concats);
        ck_assert_msg(copied == 0, "%s: %d gate-gradient pieces copied by their concats", names[i], copied);
        mn_exec_free(ex);
        mn_workload_free(&w);
    }
}
END_TEST

/* Threads started in this process: pthread_create defined here interposes
 * the C library's for libgomp too (the executable's symbols come first),
 * counts and forwards. */
static atomic_int threads_started;
typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    static pthread_create_fn real;
    if (!real) real = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
    atomic_fetch_add(&threads_started, 1);
    return real(t, a, fn, arg);
}

/* 2-thread runs use the one team the first run started: no kernel opens a
 * parallel region nested in another (even an inactive `parallel if (0)`),
 * which starts threads of its own next to the team's spinning worker.
 * Found on the mlp: its 512x784x128 weight gradient took as long on 2
 * threads as on 1. */
START_TEST(bench_workloads_start_no_threads)
{
    const char *name = mn_workload_names[_i];
    mn_workload w;
    ck_assert_ok(mn_workload_build(name, &w));
    mn_exec *ex = mn_compile(w.g, w.loss, &(mn_compile_opts){ .threads = 2 });
    ck_assert_msg(ex != NULL, "%s: %s", name, mn_graph_errmsg(w.g));
    ck_assert_ok(mn_workload_feed(&w, ex, 1));
    ck_assert_ok(mn_exec_run(ex));
    int before = atomic_load(&threads_started);
    for (int r = 0; r < 3; r++) ck_assert_ok(mn_exec_run(ex));
    int fresh = atomic_load(&threads_started) - before;
    ck_assert_msg(fresh == 0, "%s: %d threads started by 2-thread runs after the first", name, fresh);
    mn_exec_free(ex);
    mn_workload_free(&w);
}
END_TEST

/* OpenMP teams of more than one thread opened in this process (by mnemo's
 * kernels and executor and by OpenBLAS's OpenMP build alike): GOMP_parallel
 * defined here interposes libgomp's, counts and forwards. */
static atomic_int teams_opened;
typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);

void GOMP_parallel(void (*fn)(void *), void *data, unsigned nthreads, unsigned flags)
{
    static gomp_parallel_fn real;
    if (!real) real = (gomp_parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
    if (nthreads != 1) atomic_fetch_add(&teams_opened, 1);
    real(fn, data, nthreads, flags);
}

static double stat_of(const mn_exec *ex, const char *name)
{
    for (int i = 0; i < mn_exec_stat_count(ex); i++)
        if (!strcmp(mn_exec_stat_name(ex, i), name)) return mn_exec_stat_value(ex, i);
    return -1;
}

/* A forward MLP of batch B (784 -> 512 -> 512 -> 10) and its logits after
 * 3 runs compiled for `threads`; the teams its last 2 runs opened. */
static int mlp_forward(int64_t B, int threads, float *logits, double *tiny)
{
    model m = mlp(B);
    mn_node *x = NULL;
    for (int i = 0; i < m.g->n && !x; i++) if (m.g->nodes[i]->kind == MN_NODE_INPUT) x = m.g->nodes[i];
    int64_t widths[3] = { 512, 512, 10 };
    const mn_node *out[1] = { mn_mlp(m.g, "mlp", x, 3, widths) };
    mn_exec *ex = mn_compile(m.g, NULL, &(mn_compile_opts){ .threads = threads, .outputs = out, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(m.g));
    feed_random(ex, "x", MN_SHAPE(B, 784), MN_F32, 0, 3);
    ck_assert_ok(mn_exec_run(ex));
    int before = atomic_load(&teams_opened);
    for (int r = 0; r < 2; r++) ck_assert_ok(mn_exec_run(ex));
    int teams = atomic_load(&teams_opened) - before;
    memcpy(logits, mn_f32(mn_exec_value(ex, out[0])), (size_t)B * 10 * sizeof *logits);
    *tiny = stat_of(ex, "schedule.tiny");
    mn_exec_free(ex); free_model(&m);
    return teams;
}

/* A batch-1 forward step (0.9 MFLOP) compiled for 2 threads opens no team
 * at all and computes the bits of a 1-thread compile; a batch of 256 (237
 * MFLOP) still uses both threads. */
START_TEST(tiny_forward_step_opens_no_team)
{
    float one[10], two[10], *big = malloc(256 * 10 * sizeof *big);
    double tiny1, tiny2, tiny_big;
    ck_assert_int_eq(mlp_forward(1, 1, one, &tiny1), 0);
    int teams = mlp_forward(1, 2, two, &tiny2);
    ck_assert_msg(teams == 0, "a 2-thread batch-1 step opened %d teams in 2 runs", teams);
    ck_assert(tiny2 == 1 && tiny1 == 1);
    ck_assert_int_eq(memcmp(one, two, sizeof one), 0);
    ck_assert_int_gt(mlp_forward(256, 2, big, &tiny_big), 0);
    ck_assert(tiny_big == 0);
    free(big);
}
END_TEST

/* A training graph whose levels hold only small one-thread steps (two
 * independent 8x16x16 layers): on 2 threads the levels run on the calling
 * thread (no team), and gradients are those of a 1-thread compile. */
START_TEST(small_levels_run_on_the_calling_thread)
{
    float grads[2][16 * 16];
    for (int threads = 1; threads <= 2; threads++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(8, 16));
        mn_node *a = mn_linear(g, "fwd", x, 16, true), *b = mn_linear(g, "bwd", x, 16, true);
        mn_node *loss = mn_sum_all(g, mn_mul(g, mn_tanh(g, a), mn_sigmoid(g, b)));
        mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = threads });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert(stat_of(ex, "schedule.tiny") == 0);                      /* training: not tiny */
        feed_random(ex, "x", MN_SHAPE(8, 16), MN_F32, 0, 5);
        ck_assert_ok(mn_exec_run(ex));
        int before = atomic_load(&teams_opened);
        ck_assert_ok(mn_exec_run(ex));
        int teams = atomic_load(&teams_opened) - before;
        ck_assert_msg(teams == 0, "%d threads: a run opened %d teams", threads, teams);
        if (threads == 2) ck_assert(stat_of(ex, "schedule.caller_levels") >= 1);
        int p = mn_params_find(P, "fwd.weight");
        ck_assert_int_ge(p, 0);
        memcpy(grads[threads - 1], mn_f32(mn_params_grad(P, p)), sizeof grads[0]);
        mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    }
    ck_assert_int_eq(memcmp(grads[0], grads[1], sizeof grads[0]), 0);
}
END_TEST

/* Profiling: per-op rows (every GEMM counted, times positive, slowest
 * first), a summary that adds up, and the per-step table with one line per
 * step; both refuse an executable that was not profiled. */
START_TEST(profile_rows_and_steps)
{
    model m = mlp(32);
    mn_exec *ex = mn_compile(m.g, m.loss, &(mn_compile_opts){ .threads = 2 });
    ck_assert_ptr_nonnull(ex);
    feed_random(ex, "x", MN_SHAPE(32, 784), MN_F32, 0, 1);
    feed_random(ex, "y", MN_SHAPE(32), MN_I32, 10, 2);
    mn_op_time rows[32];
    mn_profile_summary sum;
    ck_assert_int_eq(mn_exec_profile(ex, rows, 32, &sum), 0);
    ck_assert_int_eq(mn_exec_profile_steps(ex, stdout), MN_ERR_MISUSE);
    ck_assert_ok(mn_exec_set_profiling(ex, true));
    for (int r = 0; r < 3; r++) ck_assert_ok(mn_exec_run(ex));
    int n = mn_exec_profile(ex, rows, 32, &sum), gemms = 0;
    ck_assert_int_gt(n, 2);
    for (int s = 0; s < ex->nsteps; s++) gemms += !ex->steps[s].fused && !strcmp(ex->steps[s].node->op->name, "matmul");
    ck_assert_str_eq(rows[0].op, "matmul");
    ck_assert_int_eq(rows[0].calls, gemms);
    for (int i = 0; i < n; i++) {
        ck_assert(rows[i].ms >= 0);
        if (i) ck_assert(rows[i].ms <= rows[i - 1].ms);
    }
    ck_assert_int_eq(sum.runs, 3);
    ck_assert(sum.kernel_ms > 0 && sum.kernel_ms <= sum.wall_ms * 1.001);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ok(mn_exec_profile_steps(ex, f));
    fclose(f);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    ck_assert_int_eq(lines, ex->nsteps + 1);
    ck_assert(!strncmp(buf, "level\tstep\top\tnode\tshape\tbig\tsplit\tms\tlevel_ms\n", 47));
    ck_assert_msg(strstr(buf, "\tmatmul\t") != NULL, "no matmul line: %.200s", buf);
    free(buf);
    ck_assert_ok(mn_exec_set_profiling(ex, false));
    ck_assert_int_eq(mn_exec_profile(ex, rows, 32, &sum), 0);
    mn_exec_free(ex); free_model(&m);
}
END_TEST

static int start_threads;   /* OpenMP's default at start */

/* The affinity mask the test program started with (before any binding). */
static cpu_set_t start_mask;

typedef struct { bool bind; cpu_set_t master, worker; int nworker; } bind_probe;

/* In a fresh thread with the start mask: a 2-thread run of a small graph,
 * then the masks of the calling thread and of the team's worker. */
static void *bind_probe_run(void *arg)
{
    bind_probe *p = arg;
    sched_setaffinity(0, sizeof start_mask, &start_mask);
    model m = mlp(16);
    mn_exec *ex = mn_compile(m.g, m.loss, &(mn_compile_opts){ .threads = 2, .bind_threads = p->bind });
    feed_random(ex, "x", MN_SHAPE(16, 784), MN_F32, 0, 1);
    feed_random(ex, "y", MN_SHAPE(16), MN_I32, 10, 2);
    mn_status st = mn_exec_run(ex);
    sched_getaffinity(0, sizeof p->master, &p->master);
    p->nworker = 0;
    #pragma omp parallel num_threads(2)
    if (omp_get_thread_num() == 1) { sched_getaffinity(0, sizeof p->worker, &p->worker); p->nworker = 1; }
    mn_exec_free(ex); free_model(&m);
    return st == MN_OK ? p : NULL;
}

/* A team that uses every allowed CPU is pinned one thread per CPU when the
 * program asks (bind_threads); a smaller team, or no request (the default:
 * the environment is the command's business), leaves the masks alone. */
START_TEST(team_binding_follows_the_mask)
{
    int ncpu = CPU_COUNT(&start_mask), first = -1, second = -1;
    for (int c = 0; c < CPU_SETSIZE && second < 0; c++)
        if (CPU_ISSET(c, &start_mask)) { if (first < 0) first = c; else second = c; }
    for (int on = 0; on <= 1; on++) {
        bind_probe p = { .bind = on };
        pthread_t t;
        void *ok;
        ck_assert_int_eq(pthread_create(&t, NULL, bind_probe_run, &p), 0);
        pthread_join(t, &ok);
        ck_assert_msg(ok != NULL, "the run failed: %s", mn_errmsg());
        bool pinned = on && ncpu == 2;
        if (pinned) {
            ck_assert_int_eq(CPU_COUNT(&p.master), 1);
            ck_assert(CPU_ISSET(first, &p.master));
            ck_assert_int_eq(p.nworker, 1);
            ck_assert_int_eq(CPU_COUNT(&p.worker), 1);
            ck_assert(CPU_ISSET(second, &p.worker));
        } else
            ck_assert_msg(CPU_EQUAL(&p.master, &start_mask), "binding %d, %d CPUs: the calling thread's mask changed", on, ncpu);
    }
}
END_TEST

/* The library reads no environment (MNEMO_NO_FUSE is the command's) and a
 * run leaves the caller's OpenMP default as it found it (OpenBLAS's team
 * is set for the run's thread and restored). */
START_TEST(no_environment_and_no_leftover_settings)
{
    model m = mlp(16);
    setenv("MNEMO_NO_FUSE", "1", 1);
    mn_exec *ex = mn_compile(m.g, m.loss, &(mn_compile_opts){ .threads = 2, .blas_threads = 2 });
    unsetenv("MNEMO_NO_FUSE");
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(m.g));
    ck_assert_int_gt(mn_exec_get_stats(ex).fused_groups, 0);
    omp_set_num_threads(3);
    feed_random(ex, "x", MN_SHAPE(16, 784), MN_F32, 0, 1);
    feed_random(ex, "y", MN_SHAPE(16), MN_I32, 10, 2);
    ck_assert_ok(mn_exec_run(ex));
    ck_assert_int_eq(omp_get_max_threads(), 3);
    omp_set_num_threads(start_threads);
    mn_exec_free(ex); free_model(&m);
}
END_TEST

/* One workload compiled and trained for two runs; the losses' bits and the
 * sum of every parameter gradient. With a barrier, two of these start
 * compiling at the same moment. */
typedef struct { const char *name; pthread_barrier_t *start; float loss[2]; double gsum; int ok; } side_job;

static void *side_run(void *arg)
{
    side_job *j = arg;
    mn_workload w;
    j->ok = 0;
    if (mn_workload_build(j->name, &w)) return NULL;
    if (j->start) pthread_barrier_wait(j->start);
    mn_exec *ex = mn_compile(w.g, w.loss, &(mn_compile_opts){ .threads = 2, .verify = true });
    bool ok = ex && !mn_workload_feed(&w, ex, 7);
    for (int r = 0; ok && r < 2; r++) {
        ok = mn_exec_run(ex) == MN_OK;
        j->loss[r] = mn_exec_loss(ex);
    }
    j->gsum = 0;
    for (int i = 0; ok && i < mn_params_count(w.P); i++) {
        const mn_tensor *gt = mn_params_grad(w.P, i);
        for (int64_t k = 0; gt && k < mn_tensor_numel(gt); k++) j->gsum += mn_f32(gt)[k];
    }
    j->ok = ok;
    mn_exec_free(ex);
    mn_workload_free(&w);
    return NULL;
}

/* No process-wide state: two threads compile and run two graphs at once
 * and get the same bits as each alone (run under ThreadSanitizer too). */
START_TEST(two_threads_compile_and_run_at_once)
{
    side_job alone[2] = { { .name = "gru" }, { .name = "transformer" } }, both[2] = { { .name = "gru" }, { .name = "transformer" } };
    for (int i = 0; i < 2; i++) {
        side_run(&alone[i]);
        ck_assert_msg(alone[i].ok, "%s alone: %s", alone[i].name, mn_errmsg());
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        both[i].start = &start;
        ck_assert_int_eq(pthread_create(&t[i], NULL, side_run, &both[i]), 0);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(both[i].ok, "%s side by side failed", both[i].name);
        ck_assert_msg(!memcmp(alone[i].loss, both[i].loss, sizeof alone[i].loss), "%s: losses %.9g %.9g alone, %.9g %.9g side by side",
                      both[i].name, (double)alone[i].loss[0], (double)alone[i].loss[1], (double)both[i].loss[0], (double)both[i].loss[1]);
        ck_assert_msg(alone[i].gsum == both[i].gsum, "%s: gradient sums %.17g alone, %.17g side by side", both[i].name, alone[i].gsum, both[i].gsum);
        ck_assert(isfinite(both[i].gsum) && both[i].gsum != 0);
    }
}
END_TEST

int main(void)
{
    start_threads = omp_get_max_threads();
    sched_getaffinity(0, sizeof start_mask, &start_mask);
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("plan");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, mlp_plan_targets);
    tcase_add_test(tc, lstm_plan_targets);
    tcase_add_test(tc, recurrent_steps_fuse_gate_adds_and_share_the_gate_gradients);
    tcase_add_test(tc, recurrent_products_read_a_weight_packed_once);
    tcase_add_test(tc, predicted_peak_counts_the_executables_tables);
    tcase_add_test(tc, recurrent_cells_copy_nothing_per_tile);
    tcase_add_test(tc, recurrent_backward_cell_is_one_step);
    tcase_add_test(tc, deterministic_for_1_and_2_threads);
    tcase_add_test(tc, independent_branches_share_a_level);
    tcase_add_test(tc, inplace_reuse_and_broadcast_regression);
    tcase_add_test(tc, verifier_catches_a_corrupted_plan);
    tcase_add_test(tc, concat_pieces_written_in_place);
    tcase_add_test(tc, strided_and_nested_concat_pieces);
    int nw = 0;
    while (mn_workload_names[nw]) nw++;
    tcase_add_loop_test(tc, bench_workloads_meet_targets, 0, nw);
    tcase_add_loop_test(tc, bench_workloads_start_no_threads, 0, nw);
    tcase_add_test(tc, team_binding_follows_the_mask);
    tcase_add_test(tc, profile_rows_and_steps);
    tcase_add_test(tc, two_threads_compile_and_run_at_once);
    tcase_add_test(tc, no_environment_and_no_leftover_settings);
    tcase_add_test(tc, tiny_forward_step_opens_no_team);
    tcase_add_test(tc, small_levels_run_on_the_calling_thread);
    suite_add_tcase(s, tc);
    return mn_test_run(s);
}
