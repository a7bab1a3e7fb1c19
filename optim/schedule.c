/* optim/schedule.c: learning-rate schedules with the values of PyTorch's
 * torch.optim.lr_scheduler classes, as closed forms of the epoch counter
 * (ConstantLR, StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR,
 * LinearLR, warm-up SequentialLRs) plus the stateful ReduceLROnPlateau.
 * Like PyTorch, creating a schedule applies epoch 0's learning rate. */
#include "../core/internal.h"
#include <math.h>
#include <stdlib.h>

#define MAX_GROUPS 16

struct mn_sched {
    mn_optim *o;
    mn_sched_opts c;
    int64_t epoch;
    int ngroups;
    float base[MAX_GROUPS];
    /* plateau */
    double best;
    int64_t bad, cooldown_left;
};

mn_sched_opts mn_sched_defaults(mn_sched_kind kind)
{
    mn_sched_opts c = { .kind = kind, .gamma = 0.1f, .start_factor = 1.0f / 3.0f, .end_factor = 1.0f, .total_iters = 5 };
    c.factor = kind == MN_SCHED_PLATEAU ? 0.1f : 1.0f / 3.0f;
    c.patience = 10;
    c.threshold = 1e-4f;
    if (kind == MN_SCHED_WARMUP_LINEAR) c.end_factor = 0.0f;
    return c;
}

/* The fields left 0 whose 0 is unusable take the PyTorch class's default
 * (eta_min, min_lr, threshold, patience, cooldown, warmup, end_factor and
 * ConstantLR's total_iters keep their 0). */
static void fill_defaults(mn_sched_opts *c)
{
    mn_sched_opts d = mn_sched_defaults(c->kind);
    mn_opt_default(&c->gamma, d.gamma);
    mn_opt_default(&c->start_factor, d.start_factor);
    mn_opt_default(&c->factor, d.factor);
    if (c->kind == MN_SCHED_LINEAR && c->total_iters == 0) c->total_iters = d.total_iters;
}

static mn_status check(const mn_sched_opts *c)
{
    switch (c->kind) {
    case MN_SCHED_CONSTANT:
        if (!(c->factor >= 0 && c->factor <= 1) || c->total_iters < 0) return mn__error(MN_ERR_INVALID, "ConstantLR: factor in [0, 1], total_iters >= 0");
        return MN_OK;
    case MN_SCHED_STEP: if (c->step_size <= 0) return mn__error(MN_ERR_INVALID, "StepLR: step_size must be positive"); break;
    case MN_SCHED_MULTISTEP:
        if (c->nmilestones < 0 || c->nmilestones > 16) return mn__error(MN_ERR_INVALID, "MultiStepLR: 0 to 16 milestones");
        for (int i = 1; i < c->nmilestones; i++)
            if (c->milestones[i] < c->milestones[i - 1]) return mn__error(MN_ERR_INVALID, "MultiStepLR: milestones must increase");
        break;
    case MN_SCHED_EXPONENTIAL: break;
    case MN_SCHED_COSINE: if (c->t_max <= 0) return mn__error(MN_ERR_INVALID, "CosineAnnealingLR: T_max must be positive"); return MN_OK;
    case MN_SCHED_LINEAR: case MN_SCHED_WARMUP_COSINE: case MN_SCHED_WARMUP_LINEAR:
        if (!(c->start_factor > 0 && c->start_factor <= 1) || !(c->end_factor >= 0 && c->end_factor <= 1))
            return mn__error(MN_ERR_INVALID, "LinearLR: start_factor in (0, 1], end_factor in [0, 1]");
        if (c->kind == MN_SCHED_LINEAR && c->total_iters <= 0) return mn__error(MN_ERR_INVALID, "LinearLR: total_iters must be positive");
        if (c->kind == MN_SCHED_WARMUP_COSINE && (c->warmup < 0 || c->t_max <= c->warmup))
            return mn__error(MN_ERR_INVALID, "warmup cosine: need 0 <= warmup < T_max");
        if (c->kind == MN_SCHED_WARMUP_LINEAR && (c->warmup < 0 || c->total_iters <= c->warmup))
            return mn__error(MN_ERR_INVALID, "warmup linear: need 0 <= warmup < total_iters");
        return MN_OK;
    case MN_SCHED_PLATEAU:
        if (!(c->factor >= 0 && c->factor < 1)) return mn__error(MN_ERR_INVALID, "ReduceLROnPlateau: factor must be < 1");
        if (c->patience < 0 || c->cooldown < 0 || !(c->min_lr >= 0)) return mn__error(MN_ERR_INVALID, "ReduceLROnPlateau: negative patience, cooldown or min_lr");
        return MN_OK;
    default: return mn__error(MN_ERR_INVALID, "schedule: unknown kind %d", (int)c->kind);
    }
    if (!(c->gamma > 0)) return mn__error(MN_ERR_INVALID, "schedule: gamma must be positive");
    return MN_OK;
}

static double linear_factor(double start, double end, int64_t total, int64_t t)
{
    return start + (end - start) * (double)(t < total ? t : total) / (double)total;
}

static double cosine(double base, double eta_min, int64_t tmax, int64_t t)
{
    return eta_min + (base - eta_min) * (1 + cos(M_PI * (double)t / (double)tmax)) / 2;
}

static double lr_at(const mn_sched_opts *c, double base, int64_t t)
{
    int k = 0;
    switch (c->kind) {
    case MN_SCHED_CONSTANT: return base * (t < c->total_iters ? c->factor : 1.0);
    case MN_SCHED_STEP: return base * pow(c->gamma, (double)(t / c->step_size));
    case MN_SCHED_MULTISTEP:
        while (k < c->nmilestones && c->milestones[k] <= t) k++;
        return base * pow(c->gamma, k);
    case MN_SCHED_EXPONENTIAL: return base * pow(c->gamma, (double)t);
    case MN_SCHED_COSINE: return cosine(base, c->eta_min, c->t_max, t);
    case MN_SCHED_LINEAR: return base * linear_factor(c->start_factor, c->end_factor, c->total_iters, t);
    case MN_SCHED_WARMUP_COSINE:
        if (t < c->warmup) return base * linear_factor(c->start_factor, 1.0, c->warmup, t);
        return cosine(base, c->eta_min, c->t_max - c->warmup, t - c->warmup);
    case MN_SCHED_WARMUP_LINEAR:
        if (t < c->warmup) return base * linear_factor(c->start_factor, 1.0, c->warmup, t);
        return base * linear_factor(1.0, c->end_factor, c->total_iters - c->warmup, t - c->warmup);
    case MN_SCHED_PLATEAU: return base;
    }
    return base;
}

static void apply(mn_sched *s)
{
    if (s->c.kind == MN_SCHED_PLATEAU) return;
    for (int g = 0; g < s->ngroups; g++) mn_optim_set_lr(s->o, g, (float)lr_at(&s->c, s->base[g], s->epoch));
}

mn_sched *mn_sched_new(mn_optim *o, mn_sched_opts c)
{
    if (!o) { mn__error(MN_ERR_MISUSE, "sched_new: NULL optimizer"); return NULL; }
    fill_defaults(&c);
    if (check(&c)) return NULL;
    mn_sched *s = calloc(1, sizeof *s);
    if (!s) { mn__error(MN_ERR_NOMEM, "sched: out of memory"); return NULL; }
    s->o = o; s->c = c; s->best = INFINITY;
    s->ngroups = mn_optim_group_count(o) < MAX_GROUPS ? mn_optim_group_count(o) : MAX_GROUPS;
    for (int g = 0; g < s->ngroups; g++) s->base[g] = mn_optim_get_lr(o, g);
    apply(s);
    return s;
}

void mn_sched_free(mn_sched *s) { free(s); }
int64_t mn_sched_epoch(const mn_sched *s) { return s ? s->epoch : 0; }
float mn_sched_lr_at(const mn_sched *s, int64_t epoch) { return s ? (float)lr_at(&s->c, s->base[0], epoch) : 0.0f; }

void mn_sched_set_epoch(mn_sched *s, int64_t epoch)
{
    if (!s) return;
    s->epoch = epoch;
    apply(s);
}

mn_status mn_sched_step(mn_sched *s)
{
    if (!s) return mn__error(MN_ERR_MISUSE, "sched_step: NULL schedule");
    if (s->c.kind == MN_SCHED_PLATEAU) return mn__error(MN_ERR_MISUSE, "ReduceLROnPlateau steps with mn_sched_step_metric");
    s->epoch++;
    apply(s);
    return MN_OK;
}

/* ReduceLROnPlateau, mode min, threshold_mode rel, eps 1e-8 */
mn_status mn_sched_step_metric(mn_sched *s, float metric)
{
    if (!s) return mn__error(MN_ERR_MISUSE, "sched_step_metric: NULL schedule");
    if (s->c.kind != MN_SCHED_PLATEAU) return mn_sched_step(s);
    s->epoch++;
    if (metric < s->best * (1.0 - s->c.threshold)) { s->best = metric; s->bad = 0; }
    else s->bad++;
    if (s->cooldown_left > 0) { s->cooldown_left--; s->bad = 0; }
    if (s->bad > s->c.patience) {
        for (int g = 0; g < s->ngroups; g++) {
            float old = mn_optim_get_lr(s->o, g), lr = fmaxf(old * s->c.factor, s->c.min_lr);
            if (old - lr > 1e-8f) mn_optim_set_lr(s->o, g, lr);
        }
        s->cooldown_left = s->c.cooldown;
        s->bad = 0;
    }
    return MN_OK;
}
