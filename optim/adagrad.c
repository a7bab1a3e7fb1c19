/* optim/adagrad.c: torch.optim.Adagrad. g = grad + wd p;
 * clr = lr / (1 + (t - 1) lr_decay); sum += g^2; p -= clr g / (sqrt(sum) + eps);
 * sum starts at initial_accumulator_value. */
#include "mnemo.h"
#include <math.h>

static mn_status check(const void *h)
{
    const mn_adagrad_opts *o = h;
    if (!(o->eps > 0)) return mn_set_error(MN_ERR_INVALID, "adagrad: invalid eps %g (must be > 0)", (double)o->eps);
    if (!(o->lr_decay >= 0)) return mn_set_error(MN_ERR_INVALID, "adagrad: invalid lr_decay %g", (double)o->lr_decay);
    if (!(o->weight_decay >= 0)) return mn_set_error(MN_ERR_INVALID, "adagrad: invalid weight_decay %g", (double)o->weight_decay);
    if (!(o->initial_accumulator_value >= 0))
        return mn_set_error(MN_ERR_INVALID, "adagrad: invalid initial_accumulator_value %g", (double)o->initial_accumulator_value);
    return MN_OK;
}

static void init(const void *h, float *const *st, int64_t n)
{
    for (int64_t i = 0; i < n; i++) st[0][i] = ((const mn_adagrad_opts *)h)->initial_accumulator_value;
}

static void step(const void *h, int64_t t, float *restrict p, const float *restrict grad, float *const *st, int64_t n)
{
    const mn_adagrad_opts hyper = *(const mn_adagrad_opts *)h, *o = &hyper;   /* a local copy: the loop vectorises */
    float clr = (float)(o->lr / (1 + (double)(t - 1) * o->lr_decay)), *sum = st[0];
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + o->weight_decay * p[i];
        sum[i] += g * g;
        p[i] -= clr * g / (sqrtf(sum[i]) + o->eps);
    }
}

/* PyTorch: eps 1e-10; lr_decay, weight_decay and the initial
 * accumulator value 0 stay 0. */
static void defaults(void *h)
{
    mn_opt_default(&((mn_adagrad_opts *)h)->eps, 1e-10f);
}

const mn_optim_kind mn_optim_adagrad = {
    .name = "adagrad", .hyper_size = sizeof(mn_adagrad_opts), .nstate = 1, .state_names = { "sum" },
    .check = check, .init = init, .step = step, .defaults = defaults,
};

mn_optim *mn_adagrad(mn_params *P, mn_adagrad_opts o) { return mn_optim_new(P, &mn_optim_adagrad, &o); }
