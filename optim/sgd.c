/* optim/sgd.c: torch.optim.SGD. g = grad + wd p; with momentum,
 * buf = g on the first step, then momentum buf + (1 - dampening) g;
 * nesterov: g + momentum buf, else buf; p -= lr g. */
#include "mnemo.h"

static mn_status check(const void *h)
{
    const mn_sgd_opts *o = h;
    if (!(o->momentum >= 0)) return mn_set_error(MN_ERR_INVALID, "sgd: invalid momentum %g", (double)o->momentum);
    if (!(o->weight_decay >= 0)) return mn_set_error(MN_ERR_INVALID, "sgd: invalid weight_decay %g", (double)o->weight_decay);
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return mn_set_error(MN_ERR_INVALID, "sgd: nesterov needs momentum > 0 and dampening 0");
    return MN_OK;
}

static unsigned used(const void *h) { return ((const mn_sgd_opts *)h)->momentum != 0 ? 1u : 0u; }

static void step(const void *h, int64_t t, float *restrict p, const float *restrict grad, float *const *st, int64_t n)
{
    const mn_sgd_opts hyper = *(const mn_sgd_opts *)h, *o = &hyper;   /* a local copy: the loop vectorises */
    float *buf = st[0];
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i] + o->weight_decay * p[i];
        if (o->momentum != 0) {
            buf[i] = t == 1 ? g : o->momentum * buf[i] + (1 - o->dampening) * g;
            g = o->nesterov ? g + o->momentum * buf[i] : buf[i];
        }
        p[i] -= o->lr * g;
    }
}

const mn_optim_kind mn_optim_sgd = {
    .name = "sgd", .hyper_size = sizeof(mn_sgd_opts), .nstate = 1, .state_names = { "momentum_buffer" },
    .check = check, .used = used, .step = step,
};

mn_optim *mn_sgd(mn_params *P, mn_sgd_opts o) { return mn_optim_new(P, &mn_optim_sgd, &o); }
