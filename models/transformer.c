/* models/transformer.c: multi-head attention with nn.MultiheadAttention's
 * parameter layout, pre-LN and post-LN encoder blocks with
 * nn.TransformerEncoderLayer's names, a decoder-only LM and an encoder
 * stack, all as compositions of graph ops (batched matmuls for the heads,
 * masked softmax, layer norm, GELU/ReLU). Tensors are batch first: [B, T, E]. */
#include "mnemo.h"
#include "blocks.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static mn_node *param(mn_graph *g, const char *prefix, const char *name, mn_shape s, mn_init in)
{
    char n[256];
    snprintf(n, sizeof n, "%s.%s", prefix, name);
    return mn_param(g, n, s, in);
}

mn_node *mn__sub_linear(mn_graph *g, const char *prefix, const char *name, mn_node *x, int64_t out)
{
    char n[512];
    snprintf(n, sizeof n, "%s.%s", prefix, name);
    return mn_linear(g, n, x, out, true);
}

mn_node *mn__sub_norm(mn_graph *g, const char *prefix, const char *name, mn_node *x)
{
    char n[512];
    snprintf(n, sizeof n, "%s.%s", prefix, name);
    return mn_layer_norm(g, n, x, true);
}

mn_node *mn_multihead_attention(mn_graph *g, const char *prefix, mn_node *x, mn_attn_opts o)
{
    if (o.key || o.value || o.kdim || o.vdim || o.attn_mask) return mn_attention(g, prefix, x, o);   /* models/attention.c */
    mn_shape s = mn_node_shape(x);
    if (mn_graph_status(g)) return NULL;
    if (!x || s.ndim != 3 || o.heads <= 0 || s.d[2] % o.heads) {
        char sh[96];
        mn_graph_fail(g, MN_ERR_SHAPE, "attention \"%s\": input %s must be [B, T, E] with E divisible by %lld heads",
                      prefix, mn_shape_str(s, sh, sizeof sh), (long long)o.heads);
        return NULL;
    }
    int64_t E = s.d[2], H = o.heads;
    /* nn.MultiheadAttention: xavier_uniform in_proj_weight, zero biases, out_proj as nn.Linear with zero bias */
    mn_node *w = param(g, prefix, "in_proj_weight", MN_SHAPE(3 * E, E), (mn_init){ .kind = MN_INIT_XAVIER_UNIFORM });
    mn_node *b = param(g, prefix, "in_proj_bias", MN_SHAPE(3 * E), (mn_init){ .kind = MN_INIT_ZEROS });
    mn_node *proj = mn_linear_op(g, x, w, b);
    float drop = o.training && o.dropout > 0 ? o.dropout : 0.0f;
    mn_node *ctx = mn_self_attention(g, proj, H, o.causal, o.key_padding, drop);   /* ops/attention_block.c: blocks of queries */
    char n[256];
    snprintf(n, sizeof n, "%s.out_proj.weight", prefix);
    mn_node *ow = mn_param(g, n, MN_SHAPE(E, E), (mn_init){ .kind = MN_INIT_KAIMING_UNIFORM, .a = sqrtf(5.0f) });
    snprintf(n, sizeof n, "%s.out_proj.bias", prefix);
    mn_node *ob = mn_param(g, n, MN_SHAPE(E), (mn_init){ .kind = MN_INIT_ZEROS });
    return mn_linear_op(g, ctx, ow, ob);
}

mn_node *mn__block_ff(mn_graph *g, const char *prefix, mn_node *x, const mn_block_opts *o)
{
    mn_node *h = mn__sub_linear(g, prefix, "linear1", x, o->ff);
    h = o->relu ? mn_relu(g, h) : mn_gelu(g, h, false);
    h = mn__block_drop(g, h, o);
    return mn__sub_linear(g, prefix, "linear2", h, o->d_model);
}

mn_node *mn__block_drop(mn_graph *g, mn_node *x, const mn_block_opts *o)
{
    return o->training && o->dropout > 0 ? mn_dropout(g, x, o->dropout, true) : x;
}

mn_node *mn_transformer_block(mn_graph *g, const char *prefix, mn_node *x, mn_block_opts o)
{
    char sa[256];
    snprintf(sa, sizeof sa, "%s.self_attn", prefix);
    mn_attn_opts ao = { .heads = o.heads, .causal = o.causal, .key_padding = o.key_padding, .dropout = o.dropout, .training = o.training };
    if (o.post_ln) {
        x = mn__sub_norm(g, prefix, "norm1", mn_add(g, x, mn__block_drop(g, mn_multihead_attention(g, sa, x, ao), &o)));
        return mn__sub_norm(g, prefix, "norm2", mn_add(g, x, mn__block_drop(g, mn__block_ff(g, prefix, x, &o), &o)));
    }
    x = mn_add(g, x, mn__block_drop(g, mn_multihead_attention(g, sa, mn__sub_norm(g, prefix, "norm1", x), ao), &o));
    return mn_add(g, x, mn__block_drop(g, mn__block_ff(g, prefix, mn__sub_norm(g, prefix, "norm2", x), &o), &o));
}

mn_node *mn_transformer_encoder(mn_graph *g, const char *prefix, mn_node *x, int layers, mn_block_opts o)
{
    char n[256];
    for (int l = 0; l < layers; l++) {
        snprintf(n, sizeof n, "%s.layers.%d", prefix, l);
        x = mn_transformer_block(g, n, x, o);
    }
    return o.post_ln ? x : mn__sub_norm(g, prefix, "norm", x);
}

/* PE[p, 2i] = sin(p / 10000^(2i/E)), PE[p, 2i+1] = cos(...) */
mn_node *mn__sinusoid(mn_graph *g, int64_t T, int64_t E)
{
    float *pe = malloc((size_t)(T * E) * sizeof *pe);
    if (!pe) { mn_graph_fail(g, MN_ERR_NOMEM, "transformer: out of memory"); return NULL; }
    for (int64_t p = 0; p < T; p++)
        for (int64_t i = 0; i < E; i++) {
            double a = (double)p / pow(10000.0, (double)(i - i % 2) / (double)E);
            pe[p * E + i] = (float)(i % 2 ? cos(a) : sin(a));
        }
    mn_node *c = mn_constant(g, MN_F32, MN_SHAPE(T, E), pe);
    free(pe);
    return c;
}

mn_node *mn_transformer_lm(mn_graph *g, const char *prefix, mn_node *tokens, mn_lm_opts o)
{
    mn_shape s = mn_node_shape(tokens);
    if (mn_graph_status(g)) return NULL;
    if (!tokens || s.ndim != 2 || s.d[1] > o.max_len || o.vocab <= 0 || o.d_model <= 0 || o.layers <= 0) {
        char sh[96];
        mn_graph_fail(g, MN_ERR_SHAPE, "transformer_lm \"%s\": tokens %s must be [B, T] with T <= max_len %lld",
                      prefix, mn_shape_str(s, sh, sizeof sh), (long long)o.max_len);
        return NULL;
    }
    int64_t T = s.d[1], E = o.d_model;
    char n[256];
    snprintf(n, sizeof n, "%s.tok_emb", prefix);
    mn_node *x = mn_embedding(g, n, tokens, o.vocab, E);
    mn_node *pos;
    if (o.sinusoidal) pos = mn__sinusoid(g, T, E);
    else {
        snprintf(n, sizeof n, "%s.pos_emb", prefix);
        pos = mn_embedding(g, n, mn_arange(g, 0, (double)T, 1, MN_I32), o.max_len, E);
    }
    x = mn_add(g, x, pos);
    if (o.training && o.dropout > 0) x = mn_dropout(g, x, o.dropout, true);
    mn_block_opts bo = { .d_model = E, .heads = o.heads, .ff = o.ff, .post_ln = o.post_ln, .relu = o.relu, .causal = true,
                         .dropout = o.dropout, .training = o.training };
    for (int64_t l = 0; l < o.layers; l++) {
        snprintf(n, sizeof n, "%s.blocks.%lld", prefix, (long long)l);
        x = mn_transformer_block(g, n, x, bo);
    }
    return mn__lm_head(g, prefix, x, &o);
}

mn_node *mn__lm_head(mn_graph *g, const char *prefix, mn_node *x, const mn_lm_opts *o)
{
    char n[256];
    if (!o->post_ln) x = mn__sub_norm(g, prefix, "ln_f", x);
    if (!o->tie_weights) return mn__sub_linear(g, prefix, "head", x, o->vocab);
    snprintf(n, sizeof n, "%s.tok_emb.weight", prefix);
    mn_node *w = mn_param_get(g, n);
    float k = 1.0f / sqrtf((float)o->d_model);
    return mn_linear_op(g, x, w, param(g, prefix, "head.bias", MN_SHAPE(o->vocab), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -k, .b = k }));
}
