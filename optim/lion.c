/* optim/lion.c: Lion (Chen et al. 2023, "Symbolic Discovery of
 * Optimization Algorithms"), the optimizer docs/optimizers.md adds as its
 * tutorial. c = b1 m + (1 - b1) g; p = p (1 - lr wd) - lr sign(c);
 * m = b2 m + (1 - b2) g. */
#include "mnemo.h"

static mn_status check(const void *h)
{
    const mn_lion_opts *o = h;
    if (!(o->beta1 >= 0 && o->beta1 < 1)) return mn_set_error(MN_ERR_INVALID, "lion: invalid beta1 %g (must be in [0, 1))", (double)o->beta1);
    if (!(o->beta2 >= 0 && o->beta2 < 1)) return mn_set_error(MN_ERR_INVALID, "lion: invalid beta2 %g (must be in [0, 1))", (double)o->beta2);
    if (!(o->weight_decay >= 0)) return mn_set_error(MN_ERR_INVALID, "lion: invalid weight_decay %g", (double)o->weight_decay);
    return MN_OK;
}

static void step(const void *h, int64_t t, float *p, const float *g, float *const *st, int64_t n)
{
    const mn_lion_opts *o = h;
    float *m = st[0];
    (void)t;
    for (int64_t i = 0; i < n; i++) {
        float c = o->beta1 * m[i] + (1 - o->beta1) * g[i];
        p[i] = p[i] * (1 - o->lr * o->weight_decay) - o->lr * (float)((c > 0) - (c < 0));
        m[i] = o->beta2 * m[i] + (1 - o->beta2) * g[i];
    }
}

/* The Lion paper's (and lion-pytorch's) betas (0.9, 0.99); weight_decay
 * 0 stays 0. */
static void defaults(void *h)
{
    mn_lion_opts *o = h;
    mn_opt_default(&o->beta1, 0.9f);
    mn_opt_default(&o->beta2, 0.99f);
}

const mn_optim_kind mn_optim_lion = {
    .name = "lion", .hyper_size = sizeof(mn_lion_opts), .nstate = 1, .state_names = { "exp_avg" },
    .check = check, .step = step, .defaults = defaults,
};

mn_optim *mn_lion(mn_params *P, mn_lion_opts o) { return mn_optim_new(P, &mn_optim_lion, &o); }
