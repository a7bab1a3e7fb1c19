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

static void update(const mn_adam_opts *o, int64_t t, float *p, const float *grad, float *const *st, int64_t n, bool decoupled)
{
    float *m = st[0], *v = st[1], *vmax = st[2];
    double bc1 = 1 - pow(o->beta1, (double)t), bc2 = 1 - pow(o->beta2, (double)t);
    float step_size = (float)(o->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (decoupled) p[i] *= 1 - o->lr * o->weight_decay;
        else g += o->weight_decay * p[i];
        m[i] = o->beta1 * m[i] + (1 - o->beta1) * g;
        v[i] = o->beta2 * v[i] + (1 - o->beta2) * g * g;
        float vv = v[i];
        if (o->amsgrad) vv = vmax[i] = fmaxf(vmax[i], v[i]);
        p[i] -= step_size * m[i] / (sqrtf(vv) / bc2_sqrt + o->eps);
    }
}

static void adam_step(const void *h, int64_t t, float *p, const float *g, float *const *st, int64_t n) { update(h, t, p, g, st, n, false); }
static void adamw_step(const void *h, int64_t t, float *p, const float *g, float *const *st, int64_t n) { update(h, t, p, g, st, n, true); }

const mn_optim_kind mn_optim_adam = {
    .name = "adam", .hyper_size = sizeof(mn_adam_opts), .nstate = 3,
    .state_names = { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" }, .check = check, .used = used, .step = adam_step,
};
const mn_optim_kind mn_optim_adamw = {
    .name = "adamw", .hyper_size = sizeof(mn_adam_opts), .nstate = 3,
    .state_names = { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" }, .check = check, .used = used, .step = adamw_step,
};

mn_optim *mn_adam(mn_params *P, mn_adam_opts o) { return mn_optim_new(P, &mn_optim_adam, &o); }
mn_optim *mn_adamw(mn_params *P, mn_adam_opts o) { return mn_optim_new(P, &mn_optim_adamw, &o); }
