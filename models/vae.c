/* models/vae.c: the variational autoencoder of Kingma and Welling as a
 * composition: MLP encoder to (mu, logvar), the reparameterisation with a
 * normal-sampling op (or eps fed as an input), MLP decoder to logits, loss
 * = (BCE-with-logits(sum) + KL to N(0, 1)) / batch. Dropout, when training,
 * acts on the hidden layers (fc1's and fc3's outputs), never on pixels or z. */
#include "mnemo.h"
#include <stdio.h>

static mn_node *dense(mn_graph *g, const char *prefix, const char *name, mn_node *x, int64_t out)
{
    char n[256];
    snprintf(n, sizeof n, "%s.%s", prefix, name);
    return mn_linear(g, n, x, out, true);
}

/* ReLU of a hidden layer, then dropout when training. */
static mn_node *hidden(mn_graph *g, mn_node *x, const mn_vae_opts *o)
{
    mn_node *h = mn_relu(g, x);
    return o->training && o->dropout > 0 ? mn_dropout(g, h, o->dropout, true) : h;
}

mn_node *mn_vae_decode(mn_graph *g, const char *prefix, mn_node *z, mn_vae_opts o)
{
    return dense(g, prefix, "fc4", hidden(g, dense(g, prefix, "fc3", z, o.hidden), &o), o.input);
}

mn_vae_out mn_vae(mn_graph *g, const char *prefix, mn_node *x, mn_node *eps, mn_vae_opts o)
{
    mn_vae_out r = { 0 };
    mn_shape xs = mn_node_shape(x);
    if (mn_graph_status(g)) return r;
    if (!x || xs.ndim != 2 || xs.d[1] != o.input || o.hidden <= 0 || o.latent <= 0 || !(o.dropout >= 0 && o.dropout < 1)) {
        char sh[96];
        mn_graph_fail(g, MN_ERR_SHAPE, "vae \"%s\": input %s must be [B, %lld], hidden and latent > 0, 0 <= dropout < 1", prefix,
                      mn_shape_str(xs, sh, sizeof sh), (long long)o.input);
        return r;
    }
    int64_t B = xs.d[0];
    mn_node *h = hidden(g, dense(g, prefix, "fc1", x, o.hidden), &o);
    r.mu = dense(g, prefix, "fc_mu", h, o.latent);
    r.logvar = dense(g, prefix, "fc_logvar", h, o.latent);
    if (!eps) eps = mn_randn(g, MN_SHAPE(B, o.latent), 0.0f, 1.0f);
    r.z = mn_add(g, r.mu, mn_mul(g, mn_exp(g, mn_scale(g, r.logvar, 0.5f)), eps));
    r.logits = mn_vae_decode(g, prefix, r.z, o);
    mn_node *rec = mn_bce_with_logits(g, r.logits, x, NULL, MN_REDUCE_SUM);
    mn_node *kl = mn_gaussian_kl(g, r.mu, r.logvar, MN_REDUCE_SUM);
    r.loss = mn_scale(g, mn_add(g, rec, kl), 1.0f / (float)B);
    return r;
}
