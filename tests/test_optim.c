/* tests/test_optim.c: optimizers, schedules and clipping. Trajectories
 * against torch.optim (fixture from gen_optim_fixtures.py) and against
 * reference loops written here from the published formulas (double
 * precision), both to 1e-6 relative; losses that fall on a convex quadratic
 * and on a Fashion-MNIST subset; exact resume from a checkpoint; groups,
 * accumulation, clipping, bad hyper-parameters, no allocation per step. */
#include "harness.h"
#include "idx.h"
#include <malloc.h>
#include <string.h>
#include <unistd.h>

static mn_params *FX;
enum { T = 6, N = 7 };

static const float *fxf(const char *name)
{
    mn_tensor *t = mn_params_get(FX, name);
    ck_assert_msg(t != NULL, "fixture %s missing", name);
    return mn_f32(t);
}

/* 1e-6 relative, with a floor of 1e-6 absolute for values near zero */
static void close6(const char *what, int t, int i, double got, double want)
{
    ck_assert_msg(fabs(got - want) <= 1e-6 * fmax(fabs(want), 1.0), "%s step %d [%d]: %.9g, expected %.9g", what, t, i, got, want);
}

/* Runs T steps of an optimizer on w = p0 with the fixture's gradients. */
static void trajectory(mn_optim *(*make)(mn_params *), float out[T][N])
{
    mn_params *P = mn_params_new();
    mn_params_create(P, "w", MN_SHAPE(N), (mn_init){ 0 });
    memcpy(mn_params_get(P, "w")->data, fxf("p0"), N * sizeof(float));
    mn_optim *o = make(P);
    ck_assert_msg(o != NULL, "%s", mn_errmsg());
    for (int t = 0; t < T; t++) {
        memcpy(mn_params_get_grad(P, "w")->data, fxf("grads") + t * N, N * sizeof(float));
        ck_assert_ok(mn_optim_step(o));
        memcpy(out[t], mn_params_get(P, "w")->data, N * sizeof(float));
    }
    mn_optim_free(o);
    mn_params_free(P);
}

#define MK(fn, ...) static mn_optim *fn(mn_params *P) { return __VA_ARGS__; }
MK(o_sgd, mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f }))
MK(o_sgd_mom, mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f, .momentum = 0.9f }))
MK(o_sgd_damp, mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f, .momentum = 0.9f, .dampening = 0.3f, .weight_decay = 0.01f }))
MK(o_sgd_nest, mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f, .momentum = 0.9f, .nesterov = true, .weight_decay = 0.05f }))
MK(o_adam, mn_adam(P, (mn_adam_opts){ .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f }))
MK(o_adam_wd, mn_adam(P, (mn_adam_opts){ .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f }))
MK(o_adam_ams, mn_adam(P, (mn_adam_opts){ .lr = 0.01f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-8f, .amsgrad = true }))
MK(o_adamw, mn_adamw(P, (mn_adam_opts){ .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f }))
MK(o_adamw_ams, mn_adamw(P, (mn_adam_opts){ .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f, .amsgrad = true }))
MK(o_rms, mn_rmsprop(P, MN_RMSPROP_DEFAULTS))
MK(o_rms_c, mn_rmsprop(P, (mn_rmsprop_opts){ .lr = 0.01f, .alpha = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f, .momentum = 0.5f, .centered = true }))
MK(o_rms_m, mn_rmsprop(P, (mn_rmsprop_opts){ .lr = 0.01f, .alpha = 0.9f, .eps = 1e-8f, .momentum = 0.9f }))
MK(o_adagrad, mn_adagrad(P, (mn_adagrad_opts){ .lr = 0.1f, .eps = 1e-10f }))
MK(o_adagrad_d, mn_adagrad(P, (mn_adagrad_opts){ .lr = 0.1f, .lr_decay = 0.1f, .initial_accumulator_value = 0.5f, .weight_decay = 0.05f, .eps = 1e-10f }))
MK(o_lion, mn_lion(P, (mn_lion_opts){ .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.99f }))
MK(o_lion_wd, mn_lion(P, (mn_lion_opts){ .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.99f, .weight_decay = 0.5f }))

typedef struct { const char *name; mn_optim *(*make)(mn_params *); } opt_case;
static const opt_case torch_cases[] = {
    { "sgd", o_sgd }, { "sgd_mom", o_sgd_mom }, { "sgd_damp", o_sgd_damp }, { "sgd_nest", o_sgd_nest },
    { "adam", o_adam }, { "adam_wd", o_adam_wd }, { "adam_ams", o_adam_ams }, { "adamw", o_adamw },
    { "adamw_ams", o_adamw_ams }, { "rmsprop", o_rms }, { "rmsprop_c", o_rms_c }, { "rmsprop_m", o_rms_m },
    { "adagrad", o_adagrad }, { "adagrad_d", o_adagrad_d },
};

START_TEST(trajectories_match_torch)
{
    const opt_case *c = &torch_cases[_i];
    float got[T][N];
    char name[64];
    trajectory(c->make, got);
    snprintf(name, sizeof name, "opt.%s", c->name);
    const float *want = fxf(name);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) close6(c->name, t, i, got[t][i], want[t * N + i]);
}
END_TEST

/* ---- reference loops, double precision, from the published formulas ---- */

typedef struct { double lr, mom, damp, wd, b1, b2, eps, alpha, lr_decay, acc0; bool nest, ams, centered, decoupled; } hp;

static void ref_sgd(const hp *h, double *p, const double *g0, double *buf, int t)
{
    for (int i = 0; i < N; i++) {
        double g = g0[i] + h->wd * p[i];
        if (h->mom) { buf[i] = t == 1 ? g : h->mom * buf[i] + (1 - h->damp) * g; g = h->nest ? g + h->mom * buf[i] : buf[i]; }
        p[i] -= h->lr * g;
    }
}

static void ref_adam(const hp *h, double *p, const double *g0, double *m, double *v, double *vmax, int t)
{
    for (int i = 0; i < N; i++) {
        double g = g0[i];
        if (h->decoupled) p[i] *= 1 - h->lr * h->wd; else g += h->wd * p[i];
        m[i] = h->b1 * m[i] + (1 - h->b1) * g;
        v[i] = h->b2 * v[i] + (1 - h->b2) * g * g;
        vmax[i] = fmax(vmax[i], v[i]);
        double mhat = m[i] / (1 - pow(h->b1, t)), vhat = (h->ams ? vmax[i] : v[i]) / (1 - pow(h->b2, t));
        p[i] -= h->lr * mhat / (sqrt(vhat) + h->eps * 1.0);
    }
}

static void ref_rmsprop(const hp *h, double *p, const double *g0, double *sq, double *ga, double *buf)
{
    for (int i = 0; i < N; i++) {
        double g = g0[i] + h->wd * p[i];
        sq[i] = h->alpha * sq[i] + (1 - h->alpha) * g * g;
        ga[i] = h->alpha * ga[i] + (1 - h->alpha) * g;
        double avg = sqrt(h->centered ? sq[i] - ga[i] * ga[i] : sq[i]) + h->eps;
        if (h->mom > 0) { buf[i] = h->mom * buf[i] + g / avg; p[i] -= h->lr * buf[i]; }
        else p[i] -= h->lr * g / avg;
    }
}

static void ref_adagrad(const hp *h, double *p, const double *g0, double *sum, int t)
{
    for (int i = 0; i < N; i++) {
        double g = g0[i] + h->wd * p[i];
        sum[i] += g * g;
        p[i] -= h->lr / (1 + (t - 1) * h->lr_decay) * g / (sqrt(sum[i]) + h->eps);
    }
}

static void ref_lion(const hp *h, double *p, const double *g, double *m)
{
    for (int i = 0; i < N; i++) {
        double c = h->b1 * m[i] + (1 - h->b1) * g[i];
        p[i] = p[i] * (1 - h->lr * h->wd) - h->lr * ((c > 0) - (c < 0));
        m[i] = h->b2 * m[i] + (1 - h->b2) * g[i];
    }
}

typedef struct { const char *kind; hp h; mn_optim *(*make)(mn_params *); } ref_case;
static const ref_case ref_cases[] = {
    { "sgd", { .lr = 0.1 }, o_sgd },
    { "sgd", { .lr = 0.1, .mom = 0.9 }, o_sgd_mom },
    { "sgd", { .lr = 0.1, .mom = 0.9, .damp = 0.3, .wd = 0.01 }, o_sgd_damp },
    { "sgd", { .lr = 0.1, .mom = 0.9, .nest = true, .wd = 0.05 }, o_sgd_nest },
    { "adam", { .lr = 0.01, .b1 = 0.9, .b2 = 0.999, .eps = 1e-8 }, o_adam },
    { "adam", { .lr = 0.01, .b1 = 0.9, .b2 = 0.999, .eps = 1e-8, .wd = 0.1 }, o_adam_wd },
    { "adam", { .lr = 0.01, .b1 = 0.8, .b2 = 0.99, .eps = 1e-8, .ams = true }, o_adam_ams },
    { "adam", { .lr = 0.01, .b1 = 0.9, .b2 = 0.999, .eps = 1e-8, .wd = 0.1, .decoupled = true }, o_adamw },
    { "adam", { .lr = 0.01, .b1 = 0.9, .b2 = 0.999, .eps = 1e-8, .wd = 0.01, .decoupled = true, .ams = true }, o_adamw_ams },
    { "rmsprop", { .lr = 0.01, .alpha = 0.99, .eps = 1e-8 }, o_rms },
    { "rmsprop", { .lr = 0.01, .alpha = 0.99, .eps = 1e-8, .wd = 0.1, .mom = 0.5, .centered = true }, o_rms_c },
    { "rmsprop", { .lr = 0.01, .alpha = 0.9, .eps = 1e-8, .mom = 0.9 }, o_rms_m },
    { "adagrad", { .lr = 0.1, .eps = 1e-10 }, o_adagrad },
    { "adagrad", { .lr = 0.1, .lr_decay = 0.1, .acc0 = 0.5, .wd = 0.05, .eps = 1e-10 }, o_adagrad_d },
    { "lion", { .lr = 0.01, .b1 = 0.9, .b2 = 0.99 }, o_lion },
    { "lion", { .lr = 0.01, .b1 = 0.9, .b2 = 0.99, .wd = 0.5 }, o_lion_wd },
};

START_TEST(trajectories_match_reference_loops)
{
    const ref_case *c = &ref_cases[_i];
    float got[T][N];
    trajectory(c->make, got);
    double p[N], s1[N] = { 0 }, s2[N] = { 0 }, s3[N] = { 0 }, g[N];
    for (int i = 0; i < N; i++) { p[i] = fxf("p0")[i]; if (!strcmp(c->kind, "adagrad")) s1[i] = c->h.acc0; }
    for (int t = 1; t <= T; t++) {
        for (int i = 0; i < N; i++) g[i] = fxf("grads")[(t - 1) * N + i];
        if (!strcmp(c->kind, "sgd")) ref_sgd(&c->h, p, g, s1, t);
        else if (!strcmp(c->kind, "adam")) ref_adam(&c->h, p, g, s1, s2, s3, t);
        else if (!strcmp(c->kind, "rmsprop")) ref_rmsprop(&c->h, p, g, s1, s2, s3);
        else if (!strcmp(c->kind, "adagrad")) ref_adagrad(&c->h, p, g, s1, t);
        else ref_lion(&c->h, p, g, s1);
        for (int i = 0; i < N; i++) close6(c->kind, t, i, got[t - 1][i], p[i]);
    }
}
END_TEST

/* ---- schedules against torch.optim.lr_scheduler ---- */

static float sched_seq(mn_sched_opts c, int e)
{
    mn_params *P = mn_params_new();
    mn_params_create(P, "w", MN_SHAPE(1), (mn_init){ 0 });
    mn_optim *o = mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f });
    mn_sched *s = mn_sched_new(o, c);
    ck_assert_msg(s != NULL, "%s", mn_errmsg());
    for (int i = 0; i < e; i++) mn_sched_step(s);
    float lr = mn_optim_get_lr(o, 0);
    mn_sched_free(s); mn_optim_free(o); mn_params_free(P);
    return lr;
}

START_TEST(schedules_match_torch)
{
    mn_sched_opts c[8];
    const char *names[8] = { "sched.constant", "sched.step", "sched.multistep", "sched.exponential", "sched.cosine",
                             "sched.linear", "sched.warmup_cosine", "sched.warmup_linear" };
    c[0] = mn_sched_defaults(MN_SCHED_CONSTANT); c[0].factor = 0.5f; c[0].total_iters = 4;
    c[1] = mn_sched_defaults(MN_SCHED_STEP); c[1].step_size = 3; c[1].gamma = 0.5f;
    c[2] = mn_sched_defaults(MN_SCHED_MULTISTEP); c[2].gamma = 0.3f; c[2].nmilestones = 3;
    c[2].milestones[0] = 2; c[2].milestones[1] = 5; c[2].milestones[2] = 9;
    c[3] = mn_sched_defaults(MN_SCHED_EXPONENTIAL); c[3].gamma = 0.9f;
    c[4] = mn_sched_defaults(MN_SCHED_COSINE); c[4].t_max = 10; c[4].eta_min = 0.01f;
    c[5] = mn_sched_defaults(MN_SCHED_LINEAR); c[5].start_factor = 0.25f; c[5].total_iters = 6;
    c[6] = mn_sched_defaults(MN_SCHED_WARMUP_COSINE); c[6].start_factor = 0.1f; c[6].warmup = 5; c[6].t_max = 25; c[6].eta_min = 0.001f;
    c[7] = mn_sched_defaults(MN_SCHED_WARMUP_LINEAR); c[7].start_factor = 0.1f; c[7].warmup = 5; c[7].total_iters = 25; c[7].end_factor = 0.0f;
    for (int k = 0; k < 8; k++)
        for (int e = 0; e < 30; e++) {
            double want = fxf(names[k])[e];
            float got = sched_seq(c[k], e);
            ck_assert_msg(fabs(got - want) <= 1e-6 * fmax(want, 1e-3), "%s epoch %d: %.9g, PyTorch %.9g", names[k], e, got, want);
        }
}
END_TEST

START_TEST(plateau_matches_torch)
{
    mn_params *P = mn_params_new();
    mn_params_create(P, "w", MN_SHAPE(1), (mn_init){ 0 });
    mn_optim *o = mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f });
    mn_sched_opts c = mn_sched_defaults(MN_SCHED_PLATEAU);
    c.factor = 0.5f; c.patience = 2; c.cooldown = 1; c.min_lr = 0.01f;
    mn_sched *s = mn_sched_new(o, c);
    for (int e = 0; e < 20; e++) {
        ck_assert_ok(mn_sched_step_metric(s, fxf("sched.plateau.metrics")[e]));
        ck_assert_msg(fabs(mn_optim_get_lr(o, 0) - fxf("sched.plateau")[e]) < 1e-7, "epoch %d: %g vs %g", e,
                      (double)mn_optim_get_lr(o, 0), (double)fxf("sched.plateau")[e]);
    }
    mn_sched_free(s); mn_optim_free(o); mn_params_free(P);
}
END_TEST

/* ---- losses fall ---- */

/* f(x) = 1/2 sum a_i (x_i - b_i)^2 through the graph API */
static double quadratic_run(mn_optim *(*make)(mn_params *), int steps, mn_params *P)
{
    float a[8] = { 1, 2, 3, 4, 0.5f, 1.5f, 2.5f, 3.5f }, b[8] = { 1, -1, 2, -2, 0.5f, -0.5f, 3, -3 };
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_param(g, "x", MN_SHAPE(8), (mn_init){ 0 });
    mn_node *d = mn_sub(g, x, mn_constant(g, MN_F32, MN_SHAPE(8), b));
    mn_node *f = mn_scale(g, mn_sum_all(g, mn_mul(g, mn_constant(g, MN_F32, MN_SHAPE(8), a), mn_square(g, d))), 0.5f);
    mn_exec *ex = mn_compile(g, f, NULL);
    mn_optim *o = make(P);
    double last = 0;
    for (int i = 0; i < steps; i++) {
        ck_assert_ok(mn_exec_run(ex));
        last = mn_exec_loss(ex);
        ck_assert_ok(mn_optim_step(o));
        mn_optim_zero_grad(o);
    }
    mn_optim_free(o); mn_exec_free(ex); mn_graph_free(g);
    return last;
}

MK(q_sgd, mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f, .momentum = 0.5f }))
MK(q_adam, mn_adam(P, (mn_adam_opts){ .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f }))
MK(q_adamw, mn_adamw(P, (mn_adam_opts){ .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-4f }))
MK(q_rms, mn_rmsprop(P, (mn_rmsprop_opts){ .lr = 0.05f, .alpha = 0.99f, .eps = 1e-8f }))
MK(q_adagrad, mn_adagrad(P, (mn_adagrad_opts){ .lr = 1.0f, .eps = 1e-10f }))
MK(q_lion, mn_lion(P, (mn_lion_opts){ .lr = 0.02f, .beta1 = 0.9f, .beta2 = 0.99f }))
static const opt_case quad_cases[] = {
    { "sgd", q_sgd }, { "adam", q_adam }, { "adamw", q_adamw }, { "rmsprop", q_rms }, { "adagrad", q_adagrad }, { "lion", q_lion },
};

START_TEST(convex_quadratic_converges)
{
    /* f(0) = 1/2 sum a b^2 = 39.75; every optimizer gets it below 1e-2 in 400 steps
     * (sign-based Lion with lr 0.02 oscillates within ~lr of the optimum: 1e-2 holds). */
    mn_params *P = mn_params_new();
    double f = quadratic_run(quad_cases[_i].make, 400, P);
    printf("quadratic %s: f = %.3g after 400 steps (from 39.75)\n", quad_cases[_i].name, f);
    ck_assert_msg(f < 1e-2, "%s: f = %g", quad_cases[_i].name, f);
    mn_params_free(P);
}
END_TEST

static mn_fmnist TR;

MK(m_sgd, mn_sgd(P, (mn_sgd_opts){ .lr = 0.05f, .momentum = 0.9f, .nesterov = true }))
MK(m_adam, mn_adam(P, MN_ADAM_DEFAULTS))
MK(m_adamw, mn_adamw(P, MN_ADAMW_DEFAULTS))
MK(m_rms, mn_rmsprop(P, (mn_rmsprop_opts){ .lr = 1e-3f, .alpha = 0.99f, .eps = 1e-8f }))
MK(m_adagrad, mn_adagrad(P, (mn_adagrad_opts){ .lr = 0.05f, .eps = 1e-10f }))
MK(m_lion, mn_lion(P, (mn_lion_opts){ .lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.99f }))
static const opt_case mlp_cases[] = {
    { "sgd", m_sgd }, { "adam", m_adam }, { "adamw", m_adamw }, { "rmsprop", m_rms }, { "adagrad", m_adagrad }, { "lion", m_lion },
};

START_TEST(mlp_loss_falls)
{
    enum { B = 50, STEPS = 120 };
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 3);
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 784)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(B));
    int64_t w[2] = { 64, 10 };
    mn_node *loss = mn_cross_entropy(g, mn_mlp(g, "mlp", x, 2, w), y);
    mn_exec *ex = mn_compile(g, loss, NULL);
    mn_optim *o = mlp_cases[_i].make(P);
    double first = 0, last = 0;
    for (int s = 0; s < STEPS; s++) {
        int64_t at = (int64_t)(s % (TR.n / B)) * B;
        mn_exec_feed_data(ex, "x", mn_f32(TR.images) + at * 784, B * 784 * sizeof(float));
        mn_exec_feed_data(ex, "y", mn_i32(TR.labels) + at, B * sizeof(int32_t));
        ck_assert_ok(mn_exec_run(ex));
        if (s < 10) first += mn_exec_loss(ex) / 10;
        if (s >= STEPS - 10) last += mn_exec_loss(ex) / 10;
        ck_assert_ok(mn_optim_step(o));
        mn_optim_zero_grad(o);
    }
    printf("mlp %s: mean loss of the first 10 steps %.3f, of the last 10 %.3f\n", mlp_cases[_i].name, first, last);
    /* from ~2.1 at the start, each reaches below 1.2 (a 40%% drop) within 120 steps of 50 images */
    ck_assert_msg(last < 1.2 && last < 0.6 * first, "%s: %.3f -> %.3f", mlp_cases[_i].name, first, last);
    mn_optim_free(o); mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* ---- checkpoints ---- */

static void adam_steps(mn_params *P, mn_exec *ex, mn_optim *o, int from, int to)
{
    for (int s = from; s < to; s++) {
        float xv[4] = { (float)s, 1, -1, 0.5f };
        mn_exec_feed_data(ex, "x", xv, sizeof xv);
        ck_assert_ok(mn_exec_run(ex));
        ck_assert_ok(mn_optim_step(o));
        mn_optim_zero_grad(o);
    }
    (void)P;
}

static mn_exec *small_model(mn_params *P, mn_graph **g)
{
    *g = mn_graph_new(P);
    mn_node *x = mn_input(*g, "x", MN_F32, MN_SHAPE(1, 4));
    mn_node *h = mn_tanh(*g, mn_linear(*g, "l1", x, 8, true));
    return mn_compile(*g, mn_sum_all(*g, mn_square(*g, mn_linear(*g, "l2", h, 3, true))), NULL);
}

START_TEST(resume_continues_exactly)
{
    char path[] = "/tmp/mnemo-optim-XXXXXX.safetensors";
    int fd = mkstemps(path, 12);
    close(fd);
    /* uninterrupted: 20 steps */
    mn_params *A = mn_params_new();
    mn_params_set_seed(A, 11);
    mn_graph *ga;
    mn_exec *ea = small_model(A, &ga);
    mn_optim *oa = mn_adamw(A, MN_ADAMW_DEFAULTS);
    adam_steps(A, ea, oa, 0, 20);
    /* interrupted: 8 steps, save, fresh store and optimizer, 12 more */
    mn_params *B = mn_params_new();
    mn_params_set_seed(B, 11);
    mn_graph *gb;
    mn_exec *eb = small_model(B, &gb);
    mn_optim *ob = mn_adamw(B, MN_ADAMW_DEFAULTS);
    adam_steps(B, eb, ob, 0, 8);
    ck_assert_ok(mn_params_save(B, path));
    ck_assert_ptr_nonnull(mn_params_get(B, "optim.l1.weight.exp_avg_sq"));
    ck_assert(mn_f32(mn_params_get(B, "optim.l1.weight.step"))[0] == 8.0f);
    mn_exec_free(eb); mn_graph_free(gb); mn_optim_free(ob); mn_params_free(B);
    mn_params *C = mn_params_new();
    ck_assert_ok(mn_params_load(C, path));
    mn_graph *gc;
    mn_exec *ec = small_model(C, &gc);
    mn_optim *oc = mn_adamw(C, MN_ADAMW_DEFAULTS);
    adam_steps(C, ec, oc, 8, 20);
    for (int i = 0; i < mn_params_count(A); i++) {
        const char *n = mn_params_name(A, i);
        mn_tensor *a = mn_params_value(A, i), *c = mn_params_get(C, n);
        ck_assert_msg(c != NULL, "%s missing after resume", n);
        ck_assert_msg(memcmp(a->data, c->data, mn_tensor_bytes(a)) == 0, "%s differs after resume", n);
    }
    mn_exec_free(ea); mn_graph_free(ga); mn_optim_free(oa); mn_params_free(A);
    mn_exec_free(ec); mn_graph_free(gc); mn_optim_free(oc); mn_params_free(C);
    unlink(path);
}
END_TEST

/* ---- groups, accumulation, clipping, validation, allocation ---- */

START_TEST(groups_by_name_pattern)
{
    mn_params *P = mn_params_new();
    mn_params_create(P, "fc.weight", MN_SHAPE(2), (mn_init){ .kind = MN_INIT_ONES });
    mn_params_create(P, "fc.bias", MN_SHAPE(2), (mn_init){ .kind = MN_INIT_ONES });
    mn_params_create(P, "norm.weight", MN_SHAPE(2), (mn_init){ .kind = MN_INIT_ONES });
    mn_optim *o = mn_adamw(P, (mn_adam_opts){ .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.5f });
    ck_assert_int_eq(mn_optim_add_group(o, "*.bias,norm.*", &(mn_adam_opts){ .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f }), 1);
    ck_assert_int_eq(mn_optim_group_of(o, "fc.bias"), 1);
    ck_assert_int_eq(mn_optim_group_of(o, "norm.weight"), 1);
    ck_assert_int_eq(mn_optim_group_of(o, "fc.weight"), 0);
    ck_assert_ok(mn_optim_step(o));                   /* zero gradients: only decay moves weights */
    ck_assert_close(mn_f32(mn_params_get(P, "fc.weight"))[0], 1 - 0.1 * 0.5, 1e-7);
    ck_assert(mn_f32(mn_params_get(P, "fc.bias"))[0] == 1.0f);
    ck_assert(mn_f32(mn_params_get(P, "norm.weight"))[1] == 1.0f);
    mn_optim_set_lr(o, -1, 0.01f);
    ck_assert(mn_optim_get_lr(o, 1) == 0.01f);
    mn_optim_free(o); mn_params_free(P);
}
END_TEST

START_TEST(accumulation_averages_micro_batches)
{
    mn_params *A = mn_params_new(), *B = mn_params_new();
    mn_params_create(A, "w", MN_SHAPE(3), (mn_init){ .kind = MN_INIT_ONES });
    mn_params_create(B, "w", MN_SHAPE(3), (mn_init){ .kind = MN_INIT_ONES });
    mn_optim *oa = mn_sgd(A, (mn_sgd_opts){ .lr = 0.5f, .momentum = 0.9f }), *ob = mn_sgd(B, (mn_sgd_opts){ .lr = 0.5f, .momentum = 0.9f });
    ck_assert_ok(mn_optim_set_accumulation(oa, 4));
    ck_assert_int_eq(mn_optim_set_accumulation(oa, 0), MN_ERR_INVALID);
    ck_assert_ok(mn_optim_set_accumulation(oa, 4));
    for (int round = 0; round < 2; round++) {
        float mean[3] = { 0 };
        for (int m = 0; m < 4; m++) {
            for (int i = 0; i < 3; i++) {
                float gi = (float)(m + 1) * (float)(i - 1) + (float)round;
                mn_f32(mn_params_get_grad(A, "w"))[i] += gi;       /* as mn_exec_run does */
                mean[i] += gi / 4;
            }
            ck_assert_ok(mn_optim_step(oa));
            mn_optim_zero_grad(oa);
        }
        memcpy(mn_params_get_grad(B, "w")->data, mean, sizeof mean);
        ck_assert_ok(mn_optim_step(ob));
        mn_optim_zero_grad(ob);
        for (int i = 0; i < 3; i++) ck_assert_close(mn_f32(mn_params_get(A, "w"))[i], mn_f32(mn_params_get(B, "w"))[i], 1e-6);
    }
    ck_assert_int_eq(mn_optim_updates(oa), 2);
    mn_optim_free(oa); mn_optim_free(ob); mn_params_free(A); mn_params_free(B);
}
END_TEST

START_TEST(clipping)
{
    mn_params *P = mn_params_new();
    mn_params_create(P, "a", MN_SHAPE(2), (mn_init){ 0 });
    mn_params_create(P, "b", MN_SHAPE(1), (mn_init){ 0 });
    float *ga = mn_f32(mn_params_get_grad(P, "a")), *gb = mn_f32(mn_params_get_grad(P, "b"));
    ga[0] = 3; ga[1] = 4; gb[0] = 12;                            /* norm 13 */
    ck_assert_close(mn_clip_grad_norm(P, 1.0f, 2.0f), 13.0, 1e-5);
    ck_assert_close(ga[0], 3.0 / (13 + 1e-6), 1e-6);
    ck_assert_close(gb[0], 12.0 / (13 + 1e-6), 1e-6);
    ck_assert_close(mn_clip_grad_norm(P, 5.0f, 2.0f), 1.0, 1e-5);   /* below max: unchanged */
    ck_assert_close(gb[0], 12.0 / (13 + 1e-6), 1e-6);
    ga[0] = -7; ga[1] = 2; gb[0] = 1;
    ck_assert_close(mn_clip_grad_norm(P, 100.0f, INFINITY), 7.0, 1e-6);
    ck_assert_close(mn_clip_grad_norm(P, 100.0f, 1.0f), 10.0, 1e-5);
    mn_clip_grad_value(P, 1.5f);
    ck_assert(ga[0] == -1.5f && ga[1] == 1.5f && gb[0] == 1.0f);
    mn_params_free(P);
}
END_TEST

/* ---- options left 0 take PyTorch's defaults ---- */

MK(z_sgd, mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f }))
MK(e_sgd, mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f, .momentum = 0, .dampening = 0, .weight_decay = 0, .nesterov = false }))
MK(z_adam, mn_adam(P, (mn_adam_opts){ .lr = 1e-3f }))
MK(e_adam, mn_adam(P, (mn_adam_opts){ .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0 }))
MK(z_adamw, mn_adamw(P, (mn_adam_opts){ .lr = 1e-3f }))
MK(e_adamw, mn_adamw(P, (mn_adam_opts){ .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0 }))
MK(z_rms, mn_rmsprop(P, (mn_rmsprop_opts){ .lr = 1e-2f }))
MK(e_rms, mn_rmsprop(P, (mn_rmsprop_opts){ .lr = 1e-2f, .alpha = 0.99f, .eps = 1e-8f, .weight_decay = 0, .momentum = 0 }))
MK(z_adagrad, mn_adagrad(P, (mn_adagrad_opts){ .lr = 1e-2f }))
MK(e_adagrad, mn_adagrad(P, (mn_adagrad_opts){ .lr = 1e-2f, .lr_decay = 0, .weight_decay = 0, .initial_accumulator_value = 0, .eps = 1e-10f }))
MK(z_lion, mn_lion(P, (mn_lion_opts){ .lr = 1e-4f }))
MK(e_lion, mn_lion(P, (mn_lion_opts){ .lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.99f, .weight_decay = 0 }))
static const struct { const char *name; mn_optim *(*zero)(mn_params *), *(*full)(mn_params *); } zero_cases[] = {
    { "sgd", z_sgd, e_sgd }, { "adam", z_adam, e_adam }, { "adamw", z_adamw, e_adamw },
    { "rmsprop", z_rms, e_rms }, { "adagrad", z_adagrad, e_adagrad }, { "lion", z_lion, e_lion },
};

START_TEST(zero_fields_take_torch_defaults)
{
    float got[T][N], want[T][N];
    trajectory(zero_cases[_i].zero, got);
    trajectory(zero_cases[_i].full, want);
    ck_assert_msg(memcmp(got, want, sizeof got) == 0, "%s: { .lr } differs from PyTorch's defaults", zero_cases[_i].name);
}
END_TEST

MK(z_lion_b1, mn_lion(P, (mn_lion_opts){ .lr = 1e-4f, .beta1 = MN_ZERO }))

/* Lion with beta1 = 0 and no weight decay: p -= lr sign(g). */
START_TEST(mn_zero_is_a_true_zero)
{
    float got[T][N], dflt[T][N], p[N];
    trajectory(z_lion_b1, got);
    trajectory(z_lion, dflt);
    memcpy(p, fxf("p0"), sizeof p);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) {
            float g = fxf("grads")[t * N + i];
            p[i] = p[i] * (1 - 1e-4f * 0.0f) - 1e-4f * (float)((g > 0) - (g < 0));
            ck_assert_msg(got[t][i] == p[i], "lion beta1 = MN_ZERO step %d [%d]: %.9g, expected %.9g", t, i, got[t][i], p[i]);
        }
    ck_assert_msg(memcmp(got, dflt, sizeof got) != 0, "lion beta1 = MN_ZERO took the default");
}
END_TEST

START_TEST(schedule_zero_fields_take_torch_defaults)
{
    mn_sched_opts z[4] = { { .kind = MN_SCHED_STEP, .step_size = 3 }, { .kind = MN_SCHED_EXPONENTIAL },
                           { .kind = MN_SCHED_LINEAR, .end_factor = 1.0f }, { .kind = MN_SCHED_CONSTANT, .total_iters = 5 } };
    for (int k = 0; k < 4; k++) {
        mn_sched_opts d = mn_sched_defaults(z[k].kind);
        d.step_size = z[k].step_size;
        for (int e = 0; e < 12; e++) {
            float got = sched_seq(z[k], e), want = sched_seq(d, e);
            ck_assert_msg(got == want, "schedule kind %d epoch %d: %.9g, defaults give %.9g", (int)z[k].kind, e, got, want);
        }
    }
}
END_TEST

START_TEST(bad_hyper_parameters_rejected)
{
    mn_params *P = mn_params_new();
    ck_assert_ptr_null(mn_sgd(P, (mn_sgd_opts){ .lr = -0.1f }));
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "invalid learning rate -0.1"));
    ck_assert_ptr_null(mn_adam(P, (mn_adam_opts){ .lr = 0.1f, .beta1 = 1.0f, .beta2 = 0.9f, .eps = 1e-8f }));
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "beta1 1"));
    ck_assert_ptr_null(mn_adamw(P, (mn_adam_opts){ .lr = 0.1f, .beta1 = 0.9f, .beta2 = -0.1f, .eps = 1e-8f }));
    ck_assert_ptr_null(mn_adam(P, (mn_adam_opts){ .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.9f, .eps = MN_ZERO }));
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "eps -0"));
    ck_assert_ptr_null(mn_rmsprop(P, (mn_rmsprop_opts){ .lr = 0.1f, .alpha = 0.9f, .eps = -1 }));
    ck_assert_ptr_null(mn_rmsprop(P, (mn_rmsprop_opts){ .lr = 0.1f, .alpha = 1.5f, .eps = 1e-8f }));
    ck_assert_ptr_null(mn_adagrad(P, (mn_adagrad_opts){ .lr = 0.1f, .eps = MN_ZERO }));
    ck_assert_ptr_null(mn_adagrad(P, (mn_adagrad_opts){ .lr = 0.1f, .eps = 1e-10f, .lr_decay = -1 }));
    ck_assert_ptr_null(mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f, .nesterov = true }));
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "nesterov"));
    ck_assert_ptr_null(mn_sgd(P, (mn_sgd_opts){ .lr = 0.1f, .weight_decay = -1 }));
    ck_assert_ptr_null(mn_lion(P, (mn_lion_opts){ .lr = 0.1f, .beta1 = 0.9f, .beta2 = 1.0f }));
    ck_assert_ptr_null(mn_sgd(P, (mn_sgd_opts){ .lr = NAN }));
    mn_optim *o = mn_sgd(P, MN_SGD_DEFAULTS);
    ck_assert_int_eq(mn_optim_add_group(o, "*", &(mn_sgd_opts){ .lr = -1 }), -1);
    mn_sched_opts c = mn_sched_defaults(MN_SCHED_STEP);
    ck_assert_ptr_null(mn_sched_new(o, c));                      /* step_size 0 */
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "step_size"));
    mn_optim_free(o);
    ck_assert_ptr_nonnull(mn_optim_kind_find("adamw"));
    ck_assert_ptr_null(mn_optim_kind_find("adamax"));
    mn_params_free(P);
}
END_TEST

START_TEST(step_allocates_nothing)
{
    mn_params *P = mn_params_new();
    mn_params_create(P, "big", MN_SHAPE(300000), (mn_init){ .kind = MN_INIT_ONES });
    mn_params_create(P, "small", MN_SHAPE(10), (mn_init){ .kind = MN_INIT_ONES });
    mn_optim *o = mn_adam(P, (mn_adam_opts){ .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .amsgrad = true });
    ck_assert_ok(mn_optim_step(o));                      /* binds: creates state */
    ck_assert_ok(mn_optim_step(o));
    int count = mn_params_count(P);
    mn_status st = MN_OK;
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 20; i++) st |= mn_optim_step(o);      /* no Check macro inside: they allocate */
    struct mallinfo2 after = mallinfo2();
    ck_assert_int_eq(st, MN_OK);
    ck_assert_int_eq(mn_params_count(P), count);
    ck_assert_uint_eq(after.uordblks, before.uordblks);
    ck_assert_uint_eq(after.hblkhd, before.hblkhd);
    mn_optim_free(o); mn_params_free(P);
}
END_TEST

int main(void)
{
    const char *dir = getenv("MNEMO_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/optim_ref.safetensors", dir ? dir : "tests/fixtures");
    FX = mn_params_new();
    if (mn_params_load(FX, path)) { fprintf(stderr, "%s\n", mn_errmsg()); return 1; }
    if (mn_fmnist_load(MN_FMNIST_DIR, "train", 2000, &TR)) { fprintf(stderr, "%s\n", mn_errmsg()); return 1; }
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, trajectories_match_torch, 0, (int)(sizeof torch_cases / sizeof *torch_cases));
    tcase_add_loop_test(tc, trajectories_match_reference_loops, 0, (int)(sizeof ref_cases / sizeof *ref_cases));
    tcase_add_test(tc, schedules_match_torch);
    tcase_add_test(tc, plateau_matches_torch);
    tcase_add_loop_test(tc, convex_quadratic_converges, 0, (int)(sizeof quad_cases / sizeof *quad_cases));
    tcase_add_loop_test(tc, mlp_loss_falls, 0, (int)(sizeof mlp_cases / sizeof *mlp_cases));
    tcase_add_test(tc, resume_continues_exactly);
    tcase_add_test(tc, groups_by_name_pattern);
    tcase_add_test(tc, accumulation_averages_micro_batches);
    tcase_add_test(tc, clipping);
    tcase_add_loop_test(tc, zero_fields_take_torch_defaults, 0, (int)(sizeof zero_cases / sizeof *zero_cases));
    tcase_add_test(tc, mn_zero_is_a_true_zero);
    tcase_add_test(tc, schedule_zero_fields_take_torch_defaults);
    tcase_add_test(tc, bad_hyper_parameters_rejected);
    tcase_add_test(tc, step_allocates_nothing);
    suite_add_tcase(s, tc);
    int rc = mn_test_run(s);
    mn_fmnist_free(&TR);
    mn_params_free(FX);
    return rc;
}
