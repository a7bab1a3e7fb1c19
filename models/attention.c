/* models/attention.c: multi-head attention with separate query and
 * key/value inputs (cross-attention), as nn.MultiheadAttention lays its
 * parameters out: one packed in_proj_weight [3E, E] when kdim = vdim = E,
 * else q_proj_weight, k_proj_weight, v_proj_weight (in_proj_bias [3E] in
 * both cases). Split into query projection, key/value projection and the
 * attention itself, so a decoder can cache projected keys and values. */
#include "mnemo.h"
#include <math.h>
#include <stdio.h>

static bool packed(int64_t E, const mn_attn_opts *o)
{
    return (!o->kdim || o->kdim == E) && (!o->vdim || o->vdim == E);
}

static mn_node *named(mn_graph *g, const char *prefix, const char *name, mn_shape s, mn_init in)
{
    char n[256];
    snprintf(n, sizeof n, "%s.%s", prefix, name);
    return mn_param(g, n, s, in);
}

/* Projection weight and bias of part k (0 query, 1 key, 2 value). */
static void projection(mn_graph *g, const char *prefix, int64_t E, const mn_attn_opts *o, int k, mn_node **w, mn_node **b)
{
    mn_init xavier = { .kind = MN_INIT_XAVIER_UNIFORM };
    mn_node *bias = named(g, prefix, "in_proj_bias", MN_SHAPE(3 * E), (mn_init){ .kind = MN_INIT_ZEROS });
    *b = mn_slice(g, bias, 0, k * E, (k + 1) * E, 1);
    if (packed(E, o)) {
        mn_node *all = named(g, prefix, "in_proj_weight", MN_SHAPE(3 * E, E), xavier);
        *w = mn_slice(g, all, 0, k * E, (k + 1) * E, 1);
        return;
    }
    static const char *const names[3] = { "q_proj_weight", "k_proj_weight", "v_proj_weight" };
    int64_t in = k == 0 ? E : k == 1 ? (o->kdim ? o->kdim : E) : (o->vdim ? o->vdim : E);
    *w = named(g, prefix, names[k], MN_SHAPE(E, in), xavier);
}

/* [B, T, E] -> [B, H, T, E/H] */
static mn_node *split_heads(mn_graph *g, mn_node *x, int64_t H)
{
    static const int perm[4] = { 0, 2, 1, 3 };
    mn_shape s = mn_node_shape(x);
    if (!x) return NULL;
    return mn_permute(g, mn_reshape(g, x, MN_SHAPE(s.d[0], s.d[1], H, s.d[2] / H)), 4, perm);
}

static bool check(mn_graph *g, const char *prefix, const char *what, mn_node *x, int64_t E, int64_t in, const mn_attn_opts *o)
{
    mn_shape s = mn_node_shape(x);
    if (mn_graph_status(g)) return false;
    if (x && s.ndim == 3 && o->heads > 0 && E > 0 && E % o->heads == 0 && s.d[2] == in) return true;
    char sh[96];
    mn_graph_fail(g, MN_ERR_SHAPE, "attention \"%s\": %s %s must be [B, T, %lld] with E = %lld divisible by %lld heads",
                  prefix, what, mn_shape_str(s, sh, sizeof sh), (long long)in, (long long)E, (long long)o->heads);
    return false;
}

mn_node *mn_attention_query(mn_graph *g, const char *prefix, mn_node *x, int64_t E, mn_attn_opts o)
{
    if (!check(g, prefix, "query", x, E, E, &o)) return NULL;
    mn_node *w, *b;
    projection(g, prefix, E, &o, 0, &w, &b);
    return split_heads(g, mn_linear_op(g, x, w, b), o.heads);
}

mn_status mn_attention_key_value(mn_graph *g, const char *prefix, mn_node *key, mn_node *value, int64_t E, mn_attn_opts o,
                                 mn_node **k, mn_node **v)
{
    *k = *v = NULL;
    if (!value) value = key;
    if (!check(g, prefix, "key", key, E, o.kdim ? o.kdim : E, &o)) return mn_graph_status(g);
    if (!check(g, prefix, "value", value, E, o.vdim ? o.vdim : E, &o)) return mn_graph_status(g);
    mn_node *w, *b;
    projection(g, prefix, E, &o, 1, &w, &b);
    *k = split_heads(g, mn_linear_op(g, key, w, b), o.heads);
    projection(g, prefix, E, &o, 2, &w, &b);
    *v = split_heads(g, mn_linear_op(g, value, w, b), o.heads);
    return mn_graph_status(g);
}

/* Additive mask from key padding [B, Tk] (nonzero = padding) and attn_mask. */
static mn_node *mask_of(mn_graph *g, int64_t B, int64_t Tk, const mn_attn_opts *o)
{
    mn_node *m = NULL;
    if (o->key_padding) {
        m = mn_reshape(g, mn_where(g, o->key_padding, mn_scalar(g, -INFINITY), mn_scalar(g, 0.0f)), MN_SHAPE(B, 1, 1, Tk));
    }
    if (!o->attn_mask) return m;
    return m ? mn_add(g, m, o->attn_mask) : o->attn_mask;
}

mn_node *mn_attention_context(mn_graph *g, const char *prefix, mn_node *q, mn_node *k, mn_node *v, int64_t E, mn_attn_opts o)
{
    if (mn_graph_status(g) || !q || !k || !v) return NULL;
    mn_shape qs = mn_node_shape(q), ks = mn_node_shape(k);
    int64_t B = qs.d[0], H = qs.d[1], Tq = qs.d[2], dh = qs.d[3];
    mn_node *scores = mn_scale(g, mn_matmul(g, q, k, false, true), 1.0f / sqrtf((float)dh));   /* [B, H, Tq, Tk] */
    mn_node *att = mn_softmax_masked(g, scores, -1, mask_of(g, B, ks.d[2], &o), o.causal);
    if (o.training && o.dropout > 0) att = mn_dropout(g, att, o.dropout, true);
    static const int perm[4] = { 0, 2, 1, 3 };
    mn_node *ctx = mn_reshape(g, mn_permute(g, mn_matmul(g, att, v, false, false), 4, perm), MN_SHAPE(B, Tq, H * dh));
    mn_node *ow = named(g, prefix, "out_proj.weight", MN_SHAPE(E, E), (mn_init){ .kind = MN_INIT_KAIMING_UNIFORM, .a = sqrtf(5.0f) });
    mn_node *ob = named(g, prefix, "out_proj.bias", MN_SHAPE(E), (mn_init){ .kind = MN_INIT_ZEROS });
    return mn_linear_op(g, ctx, ow, ob);
}

mn_node *mn_attention(mn_graph *g, const char *prefix, mn_node *query, mn_attn_opts o)
{
    mn_shape s = mn_node_shape(query);
    int64_t E = s.ndim == 3 ? s.d[2] : 0;
    mn_node *key = o.key ? o.key : query;
    mn_node *value = o.value ? o.value : key;
    mn_node *q = mn_attention_query(g, prefix, query, E, o);
    mn_node *k, *v;
    if (mn_attention_key_value(g, prefix, key, value, E, o, &k, &v)) return NULL;
    return mn_attention_context(g, prefix, q, k, v, E, o);
}
