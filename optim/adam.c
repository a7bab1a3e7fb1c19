/* optim/adam.c: torch.optim.Adam and AdamW. m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; (amsgrad: vmax = max(vmax, v), used for v);
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * Adam adds wd p to g; AdamW first scales p by (1 - lr wd). */
#include "mnemo.h"
#include <math.h>

static mn_status check(const void *h)
{
    const mn_adam_opts *o = h;
    if (!(o->eps > 0)) return mn_set_error(MN_ERR_INVALID, "adam: invalid eps %g (must be > 0)", (double)o->eps);
    if (!(o->beta1 >= 0 && o->beta1 < 1)) return mn_set_error(MN_ERR_INVALID, "adam: invalid beta1 %g (must be in [0, 1))", (double)o->beta1);
    if (!(o->beta2 >= 0 && o->beta2 < 1)) return mn_set_error(MN_ERR_INVALID, "adam: invalid beta2 %g (must be in [0, 1))", (double)o->beta2);
    if (!(o->weight_decay >= 0)) return mn_set_error(MN_ERR_INVALID, "adam: invalid weight_decay %g", (double)o->weight_decay);
    return MN_OK;
}

static unsigned used(const void *h) { return ((const mn_adam_opts *)h)->amsgrad ? 7u : 3u; }

/* Hyper-parameters in locals and restrict pointers: the loop vectorises
 * (a float field read through `o` could otherwise alias the arrays). */
static void update(const mn_adam_opts *o, int64_t t, float *restrict p, const float *restrict grad, float *const *st,
                   int64_t n, bool decoupled)
{
    float *restrict m = st[0], *restrict v = st[1], *restrict vmax = st[2];
    double bc1 = 1 - pow(o->beta1, (double)t), bc2 = 1 - pow(o->beta2, (double)t);
    const float step_size = (float)(o->lr / bc1), bc2_sqrt = (float)sqrt(bc2), b1 = o->beta1, b2 = o->beta2,
                eps = o->eps, wd = o->weight_decay, decay = 1 - o->lr * o->weight_decay;
    if (o->amsgrad) {
        for (int64_t i = 0; i < n; i++) {
            float g = grad[i];
            if (decoupled) p[i] *= decay;
            else g += wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            float vv = vmax[i] = fmaxf(vmax[i], v[i]);
            p[i] -= step_size * m[i] / (sqrtf(vv) / bc2_sqrt + eps);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i], pi = p[i];
        if (decoupled) pi *= decay;
        else g += wd * pi;
        float mi = b1 * m[i] + (1 - b1) * g, vi = b2 * v[i] + (1 - b2) * g * g;
        m[i] = mi; v[i] = vi;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
static void adam_step(const void *h, int64_t t, float *p, const float *g, float *const *st, int64_t n) { update(h, t, p, g, st, n, false); }
static void adamw_step(const void *h, int64_t t, float *p, const float *g, float *const *st, int64_t n) { update(h, t, p, g, st, n, true); }

/* PyTorch: betas (0.9, 0.999), eps 1e-8; weight_decay 0 stays 0 (AdamW
 * too: its PyTorch default 1e-2 must be asked for, MN_ADAMW_DEFAULTS). */
static void defaults(void *h)
{
    mn_adam_opts *o = h;
    mn_opt_default(&o->beta1, 0.9f);
    mn_opt_default(&o->beta2, 0.999f);
    mn_opt_default(&o->eps, 1e-8f);
}

const mn_optim_kind mn_optim_adam = {
    .name = "adam", .hyper_size = sizeof(mn_adam_opts), .nstate = 3,
    .state_names = { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" }, .check = check, .used = used, .step = adam_step,
    .defaults = defaults,
};
const mn_optim_kind mn_optim_adamw = {
    .name = "adamw", .hyper_size = sizeof(mn_adam_opts), .nstate = 3,
    .state_names = { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" }, .check = check, .used = used, .step = adamw_step,
    .defaults = defaults,
};

mn_optim *mn_adam(mn_params *P, mn_adam_opts o) { return mn_optim_new(P, &mn_optim_adam, &o); }
mn_optim *mn_adamw(mn_params *P, mn_adam_opts o) { return mn_optim_new(P, &mn_optim_adamw, &o); }
