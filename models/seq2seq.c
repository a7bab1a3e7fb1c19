/* models/seq2seq.c: the encoder-decoder Transformer as compositions:
 * nn.TransformerDecoderLayer, nn.Transformer (its names, pre- or post-LN,
 * final encoder and decoder norms as PyTorch always builds them), a
 * translation model around it (scaled embeddings, sinusoidal positions,
 * generator, optional tied/shared embeddings) and its one-step decoder that
 * reads cached keys and values, so no earlier position is recomputed. */
#include "mnemo.h"
#include "blocks.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static mn_attn_opts attn_opts(const mn_block_opts *o)
{
    return (mn_attn_opts){ .heads = o->heads, .dropout = o->dropout, .training = o->training };
}

/* The three sublayers with residuals; sa and ca compute self- and
 * cross-attention of their (normed) input. */
typedef mn_node *(*sublayer_fn)(mn_graph *g, const char *prefix, mn_node *x, void *ctx);

static mn_node *residual(mn_graph *g, const char *prefix, const char *norm, mn_node *x, const mn_block_opts *o,
                         sublayer_fn f, void *ctx)
{
    if (o->post_ln) return mn__sub_norm(g, prefix, norm, mn_add(g, x, mn__block_drop(g, f(g, prefix, x, ctx), o)));
    return mn_add(g, x, mn__block_drop(g, f(g, prefix, mn__sub_norm(g, prefix, norm, x), ctx), o));
}

typedef struct { const mn_block_opts *o; mn_node *memory, *memory_pad; } layer_ctx;

static mn_node *self_attn(mn_graph *g, const char *prefix, mn_node *x, void *ctx)
{
    const layer_ctx *c = ctx;
    char n[256];
    snprintf(n, sizeof n, "%s.self_attn", prefix);
    mn_attn_opts ao = attn_opts(c->o);
    ao.causal = c->o->causal;
    ao.key_padding = c->o->key_padding;
    return mn_multihead_attention(g, n, x, ao);
}

static mn_node *cross_attn(mn_graph *g, const char *prefix, mn_node *x, void *ctx)
{
    const layer_ctx *c = ctx;
    char n[256];
    snprintf(n, sizeof n, "%s.multihead_attn", prefix);
    mn_attn_opts ao = attn_opts(c->o);
    ao.key = c->memory;
    ao.key_padding = c->memory_pad;
    return mn_attention(g, n, x, ao);
}

static mn_node *ff(mn_graph *g, const char *prefix, mn_node *x, void *ctx)
{
    const layer_ctx *c = ctx;
    return mn__block_ff(g, prefix, x, c->o);
}

mn_node *mn_transformer_decoder_layer(mn_graph *g, const char *prefix, mn_node *x, mn_node *memory, mn_node *memory_pad,
                                      mn_block_opts o)
{
    layer_ctx c = { &o, memory, memory_pad };
    x = residual(g, prefix, "norm1", x, &o, self_attn, &c);
    x = residual(g, prefix, "norm2", x, &o, cross_attn, &c);
    return residual(g, prefix, "norm3", x, &o, ff, &c);
}

static mn_block_opts block_opts(const mn_tf_opts *o)
{
    return (mn_block_opts){ .d_model = o->d_model, .heads = o->heads, .ff = o->ff, .post_ln = o->post_ln, .relu = o->relu,
                            .dropout = o->dropout, .training = o->training };
}

mn_node *mn_transformer_encode(mn_graph *g, const char *prefix, mn_node *src, mn_node *src_pad, mn_tf_opts o)
{
    char n[256];
    mn_block_opts bo = block_opts(&o);
    bo.key_padding = src_pad;
    for (int64_t l = 0; l < o.enc_layers; l++) {
        snprintf(n, sizeof n, "%s.encoder.layers.%lld", prefix, (long long)l);
        src = mn_transformer_block(g, n, src, bo);
    }
    return mn__sub_norm(g, prefix, "encoder.norm", src);
}

mn_node *mn_transformer_decode(mn_graph *g, const char *prefix, mn_node *tgt, mn_node *memory, mn_node *tgt_pad,
                               mn_node *memory_pad, mn_tf_opts o)
{
    char n[256];
    mn_block_opts bo = block_opts(&o);
    bo.causal = true;
    bo.key_padding = tgt_pad;
    for (int64_t l = 0; l < o.dec_layers; l++) {
        snprintf(n, sizeof n, "%s.decoder.layers.%lld", prefix, (long long)l);
        tgt = mn_transformer_decoder_layer(g, n, tgt, memory, memory_pad, bo);
    }
    return mn__sub_norm(g, prefix, "decoder.norm", tgt);
}

mn_node *mn_transformer(mn_graph *g, const char *prefix, mn_node *src, mn_node *tgt, mn_node *src_pad, mn_node *tgt_pad,
                        mn_tf_opts o)
{
    mn_node *memory = mn_transformer_encode(g, prefix, src, src_pad, o);
    return mn_transformer_decode(g, prefix, tgt, memory, tgt_pad, src_pad, o);
}

/* ---- the translation model ---- */

static bool check_tokens(mn_graph *g, const char *prefix, const char *what, mn_node *t, const mn_s2s_opts *o)
{
    mn_shape s = mn_node_shape(t);
    if (mn_graph_status(g)) return false;
    if (t && s.ndim == 2 && s.d[1] <= o->max_len && o->tf.d_model > 0 && o->tf.heads > 0 && o->src_vocab > 0 && o->tgt_vocab > 0)
        return true;
    char sh[96];
    mn_graph_fail(g, MN_ERR_SHAPE, "seq2seq \"%s\": %s %s must be [B, T] with T <= max_len %lld", prefix, what,
                  mn_shape_str(s, sh, sizeof sh), (long long)o->max_len);
    return false;
}

/* Embedding * sqrt(E) (table prefix.src_emb or prefix.tgt_emb). */
static mn_node *embed(mn_graph *g, const char *prefix, mn_node *tokens, bool source, const mn_s2s_opts *o)
{
    char n[256];
    bool tgt_table = !source || o->share_embeddings;
    snprintf(n, sizeof n, "%s.%s", prefix, tgt_table ? "tgt_emb" : "src_emb");
    int64_t vocab = tgt_table ? o->tgt_vocab : o->src_vocab;
    return mn_scale(g, mn_embedding(g, n, tokens, vocab, o->tf.d_model), sqrtf((float)o->tf.d_model));
}

static mn_node *embed_seq(mn_graph *g, const char *prefix, mn_node *tokens, bool source, const mn_s2s_opts *o)
{
    mn_node *x = mn_add(g, embed(g, prefix, tokens, source, o), mn__sinusoid(g, mn_node_shape(tokens).d[1], o->tf.d_model));
    return o->tf.training && o->tf.dropout > 0 ? mn_dropout(g, x, o->tf.dropout, true) : x;
}

static mn_node *generator(mn_graph *g, const char *prefix, mn_node *h, const mn_s2s_opts *o)
{
    char n[256];
    if (!o->tie_weights) return mn__sub_linear(g, prefix, "generator", h, o->tgt_vocab);
    snprintf(n, sizeof n, "%s.tgt_emb.weight", prefix);
    mn_node *w = mn_param_get(g, n);
    snprintf(n, sizeof n, "%s.generator.bias", prefix);
    float k = 1.0f / sqrtf((float)o->tf.d_model);
    return mn_linear_op(g, h, w, mn_param(g, n, MN_SHAPE(o->tgt_vocab), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -k, .b = k }));
}

static const char *tf_prefix(const char *prefix, char *buf, size_t n)
{
    snprintf(buf, n, "%s.transformer", prefix);
    return buf;
}

mn_node *mn_seq2seq_encode(mn_graph *g, const char *prefix, mn_node *src, mn_node *src_pad, mn_s2s_opts o)
{
    char tp[256];
    if (!check_tokens(g, prefix, "source", src, &o)) return NULL;
    return mn_transformer_encode(g, tf_prefix(prefix, tp, sizeof tp), embed_seq(g, prefix, src, true, &o), src_pad, o.tf);
}

mn_node *mn_seq2seq(mn_graph *g, const char *prefix, mn_node *src, mn_node *tgt, mn_node *src_pad, mn_node *tgt_pad,
                    mn_s2s_opts o)
{
    char tp[256];
    mn_node *memory = mn_seq2seq_encode(g, prefix, src, src_pad, o);
    if (!check_tokens(g, prefix, "target", tgt, &o)) return NULL;
    mn_node *y = embed_seq(g, prefix, tgt, false, &o);
    y = mn_transformer_decode(g, tf_prefix(prefix, tp, sizeof tp), y, memory, tgt_pad, src_pad, o.tf);
    return generator(g, prefix, y, &o);
}

/* ---- incremental decoding ---- */

mn_status mn_seq2seq_memory_kv(mn_graph *g, const char *prefix, mn_node *memory, mn_s2s_opts o, mn_node **k, mn_node **v)
{
    char n[256];
    for (int64_t l = 0; l < o.tf.dec_layers; l++) {
        snprintf(n, sizeof n, "%s.transformer.decoder.layers.%lld.multihead_attn", prefix, (long long)l);
        mn_status s = mn_attention_key_value(g, n, memory, NULL, o.tf.d_model, (mn_attn_opts){ .heads = o.tf.heads }, &k[l], &v[l]);
        if (s) return s;
    }
    return MN_OK;
}

typedef struct { const mn_block_opts *o; mn_s2s_step *st; int64_t l; mn_node *mask; } step_ctx;

static mn_node *self_attn_cached(mn_graph *g, const char *prefix, mn_node *x, void *ctx)
{
    step_ctx *c = ctx;
    char n[256];
    snprintf(n, sizeof n, "%s.self_attn", prefix);
    return mn__self_attn_cached(g, n, x, c->o->d_model, c->o->heads, c->mask, c->st->self_k[c->l], c->st->self_v[c->l],
                                &c->st->new_k[c->l], &c->st->new_v[c->l]);
}

static mn_node *cross_attn_cached(mn_graph *g, const char *prefix, mn_node *x, void *ctx)
{
    step_ctx *c = ctx;
    char n[256];
    snprintf(n, sizeof n, "%s.multihead_attn", prefix);
    mn_attn_opts ao = { .heads = c->o->heads, .key_padding = c->st->mem_pad };
    mn_node *q = mn_attention_query(g, n, x, c->o->d_model, ao);
    return mn_attention_context(g, n, q, c->st->mem_k[c->l], c->st->mem_v[c->l], c->o->d_model, ao);
}

static mn_node *ff_step(mn_graph *g, const char *prefix, mn_node *x, void *ctx)
{
    step_ctx *c = ctx;
    return mn__block_ff(g, prefix, x, c->o);
}

mn_node *mn_seq2seq_step(mn_graph *g, const char *prefix, mn_s2s_step *st, mn_s2s_opts o)
{
    if (!check_tokens(g, prefix, "step token", st->token, &o)) return NULL;
    o.tf.training = false;
    int64_t E = o.tf.d_model, L = mn_node_shape(st->self_k[0]).d[2];
    mn_node *table = mn__sinusoid(g, o.max_len, E);
    mn_node *x = mn_add(g, embed(g, prefix, st->token, false, &o), mn_embedding_op(g, st->pos, table));
    mn_block_opts bo = block_opts(&o.tf);
    step_ctx c = { &bo, st, 0, mn__cache_mask(g, st->pos, L) };
    char n[256];
    for (int64_t l = 0; l < o.tf.dec_layers; l++) {
        snprintf(n, sizeof n, "%s.transformer.decoder.layers.%lld", prefix, (long long)l);
        c.l = l;
        x = residual(g, n, "norm1", x, &bo, self_attn_cached, &c);
        x = residual(g, n, "norm2", x, &bo, cross_attn_cached, &c);
        x = residual(g, n, "norm3", x, &bo, ff_step, &c);
    }
    snprintf(n, sizeof n, "%s.transformer", prefix);
    return generator(g, prefix, mn__sub_norm(g, n, "decoder.norm", x), &o);
}
