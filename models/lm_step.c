/* models/lm_step.c: incremental decoding of Transformer decoders with a
 * key/value cache: one position of mn_transformer_lm at a time, and the
 * cached self-attention and cache mask it shares with the encoder-decoder's
 * step (seq2seq.c). Invariant: a step computes what the full model computes
 * at that position (same parameters, same ops per token); the caller owns
 * the caches and stores each step's new keys and values in slot pos. */
#include "mnemo.h"
#include "blocks.h"
#include <math.h>
#include <stdio.h>

/* Additive [1, 1, 1, L + 1]: 0 for cache slots < pos and the new slot, -inf else. */
mn_node *mn__cache_mask(mn_graph *g, mn_node *pos, int64_t L)
{
    mn_node *slots = mn_arange(g, 0, (double)L, 1, MN_F32);
    mn_node *later = mn_ge(g, slots, mn_cast(g, pos, MN_F32));
    mn_node *m = mn_where(g, later, mn_scalar(g, -INFINITY), mn_scalar(g, 0.0f));
    mn_node *parts[2] = { m, mn_fill(g, MN_SHAPE(1), 0.0f, MN_F32) };
    return mn_reshape(g, mn_concat(g, parts, 2, 0), MN_SHAPE(1, 1, 1, L + 1));
}

/* Self-attention of x [N, 1, E] over the cached keys/values [N, H, L, E/H]
 * and its own (returned in *new_k, *new_v), masked by `mask`. */
mn_node *mn__self_attn_cached(mn_graph *g, const char *name, mn_node *x, int64_t E, int64_t heads, mn_node *mask,
                              mn_node *cache_k, mn_node *cache_v, mn_node **new_k, mn_node **new_v)
{
    mn_attn_opts ao = { .heads = heads, .attn_mask = mask };
    mn_node *q = mn_attention_query(g, name, x, E, ao);
    mn_node *k, *v;
    if (mn_attention_key_value(g, name, x, NULL, E, ao, &k, &v)) return NULL;
    *new_k = k;
    *new_v = v;
    mn_node *ks[2] = { cache_k, k }, *vs[2] = { cache_v, v };
    return mn_attention_context(g, name, q, mn_concat(g, ks, 2, 2), mn_concat(g, vs, 2, 2), E, ao);
}

/* One block of the LM (mn_transformer_block's sub-layers and names) at one position. */
static mn_node *block_step(mn_graph *g, const char *prefix, mn_node *x, const mn_block_opts *o, mn_node *mask,
                           mn_lm_step *st, int64_t l)
{
    char sa[256];
    snprintf(sa, sizeof sa, "%s.self_attn", prefix);
    mn_node *ck = st->self_k[l], *cv = st->self_v[l], **nk = &st->new_k[l], **nv = &st->new_v[l];
    if (o->post_ln) {
        x = mn__sub_norm(g, prefix, "norm1", mn_add(g, x, mn__self_attn_cached(g, sa, x, o->d_model, o->heads, mask, ck, cv, nk, nv)));
        return mn__sub_norm(g, prefix, "norm2", mn_add(g, x, mn__block_ff(g, prefix, x, o)));
    }
    mn_node *a = mn__self_attn_cached(g, sa, mn__sub_norm(g, prefix, "norm1", x), o->d_model, o->heads, mask, ck, cv, nk, nv);
    x = mn_add(g, x, a);
    return mn_add(g, x, mn__block_ff(g, prefix, mn__sub_norm(g, prefix, "norm2", x), o));
}

static bool check_step(mn_graph *g, const char *prefix, const mn_lm_step *st, const mn_lm_opts *o)
{
    if (mn_graph_status(g)) return false;
    mn_shape ts = mn_node_shape(st->token), ps = mn_node_shape(st->pos);
    bool ok = st->token && st->pos && st->self_k && st->self_v && st->new_k && st->new_v && ts.ndim == 2 && ts.d[1] == 1 &&
              ps.ndim == 1 && ps.d[0] == 1 && o->heads > 0 && o->d_model % o->heads == 0 && o->layers > 0;
    int64_t N = ts.d[0], dh = o->heads > 0 ? o->d_model / o->heads : 0;
    for (int64_t l = 0; ok && l < o->layers; l++) {
        mn_shape k = mn_node_shape(st->self_k[l]), v = mn_node_shape(st->self_v[l]);
        ok = mn_shape_eq(k, MN_SHAPE(N, o->heads, o->max_len, dh)) && mn_shape_eq(v, k);
    }
    if (ok) return true;
    char sh[96];
    mn_graph_fail(g, MN_ERR_SHAPE, "transformer_lm_step \"%s\": token %s must be [N, 1], pos [1], and each layer's caches "
                  "[N, %lld heads, max_len %lld, %lld]", prefix, mn_shape_str(ts, sh, sizeof sh), (long long)o->heads,
                  (long long)o->max_len, (long long)dh);
    return false;
}

mn_node *mn_transformer_lm_step(mn_graph *g, const char *prefix, mn_lm_step *st, mn_lm_opts o)
{
    if (!st || !check_step(g, prefix, st, &o)) return NULL;
    int64_t E = o.d_model;
    char n[256];
    snprintf(n, sizeof n, "%s.tok_emb", prefix);
    mn_node *x = mn_embedding(g, n, st->token, o.vocab, E), *pos;
    if (o.sinusoidal) pos = mn_embedding_op(g, st->pos, mn__sinusoid(g, o.max_len, E));
    else {
        snprintf(n, sizeof n, "%s.pos_emb", prefix);
        pos = mn_embedding(g, n, st->pos, o.max_len, E);
    }
    x = mn_add(g, x, pos);
    mn_block_opts bo = { .d_model = E, .heads = o.heads, .ff = o.ff, .post_ln = o.post_ln, .relu = o.relu };
    mn_node *mask = mn__cache_mask(g, st->pos, o.max_len);
    for (int64_t l = 0; l < o.layers; l++) {
        snprintf(n, sizeof n, "%s.blocks.%lld", prefix, (long long)l);
        x = block_step(g, n, x, &bo, mask, st, l);
    }
    return mn__lm_head(g, prefix, x, &o);
}
