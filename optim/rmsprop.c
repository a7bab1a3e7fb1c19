/* optim/rmsprop.c: torch.optim.RMSprop. g = grad + wd p;
 * sq = alpha sq + (1 - alpha) g^2; centered: ga = alpha ga + (1 - alpha) g,
 * avg = sqrt(sq - ga^2) + eps, else sqrt(sq) + eps; momentum:
 * buf = momentum buf + g / avg, p -= lr buf; else p -= lr g / avg. */
#include "mnemo.h"
#include <math.h>

static mn_status check(const void *h)
{
    const mn_rmsprop_opts *o = h;
    if (!(o->eps > 0)) return mn_set_error(MN_ERR_INVALID, "rmsprop: invalid eps %g (must be > 0)", (double)o->eps);
    if (!(o->alpha >= 0 && o->alpha < 1)) return mn_set_error(MN_ERR_INVALID, "rmsprop: invalid alpha %g (must be in [0, 1))", (double)o->alpha);
    if (!(o->momentum >= 0)) return mn_set_error(MN_ERR_INVALID, "rmsprop: invalid momentum %g", (double)o->momentum);
    if (!(o->weight_decay >= 0)) return mn_set_error(MN_ERR_INVALID, "rmsprop: invalid weight_decay %g", (double)o->weight_decay);
    return MN_OK;
}

static unsigned used(const void *h)
{
    const mn_rmsprop_opts *o = h;
    return 1u | (o->centered ? 2u : 0u) | (o->momentum > 0 ? 4u : 0u);
}

static void step(const void *h, int64_t t, float *restrict p, const float *restrict grad, float *const *st, int64_t n)
{
    const mn_rmsprop_opts hyper = *(const mn_rmsprop_opts *)h, *o = &hyper;   /* a local copy: the loop vectorises */
    float *sq = st[0], *ga = st[1], *buf = st[2];
    (void)t;
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + o->weight_decay * p[i];
        sq[i] = o->alpha * sq[i] + (1 - o->alpha) * g * g;
        float avg;
        if (o->centered) {
            ga[i] = o->alpha * ga[i] + (1 - o->alpha) * g;
            avg = sqrtf(sq[i] - ga[i] * ga[i]) + o->eps;
        } else avg = sqrtf(sq[i]) + o->eps;
        if (o->momentum > 0) {
            buf[i] = o->momentum * buf[i] + g / avg;
            p[i] -= o->lr * buf[i];
        } else p[i] -= o->lr * g / avg;
    }
}

/* PyTorch: alpha 0.99, eps 1e-8; momentum and weight_decay 0 stay 0. */
static void defaults(void *h)
{
    mn_rmsprop_opts *o = h;
    mn_opt_default(&o->alpha, 0.99f);
    mn_opt_default(&o->eps, 1e-8f);
}

const mn_optim_kind mn_optim_rmsprop = {
    .name = "rmsprop", .hyper_size = sizeof(mn_rmsprop_opts), .nstate = 3,
    .state_names = { "square_avg", "grad_avg", "momentum_buffer" }, .check = check, .used = used, .step = step,
    .defaults = defaults,
};

mn_optim *mn_rmsprop(mn_params *P, mn_rmsprop_opts o) { return mn_optim_new(P, &mn_optim_rmsprop, &o); }
