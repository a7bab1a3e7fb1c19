/* models/rnn_attention.c: one step of an LSTM decoder with attention over
 * encoder outputs, as compositions: nn.LSTMCell (prefix.cell.*, gates
 * i,f,g,o) fed [y_t; previous attentional vector] (Luong et al. 2015 input
 * feeding), additive (Bahdanau et al. 2015: v^T tanh(W_q h + W_k e + b))
 * or multiplicative ("general", Luong: h^T W_k e) scores with padding
 * masked, context, and the attentional vector tanh(W_out [ctx; h]); and
 * the encoder-decoder around it (bidirectional LSTM encoder, the step
 * unrolled over the target, a generator), whose step graph carries h, c
 * and the feed from one position to the next. */
#include "mnemo.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static mn_node *p(mn_graph *g, const char *prefix, const char *name, mn_shape s, mn_init in)
{
    char n[256];
    snprintf(n, sizeof n, "%s.%s", prefix, name);
    return mn_param(g, n, s, in);
}

static mn_init uniform(int64_t fan)
{
    float k = 1.0f / sqrtf((float)fan);
    return (mn_init){ .kind = MN_INIT_UNIFORM, .a = -k, .b = k };
}

/* nn.LSTMCell: returns h' and sets *c_out. */
static mn_node *lstm_cell(mn_graph *g, const char *prefix, mn_node *x, mn_node *h, mn_node *c, int64_t H, mn_node **c_out)
{
    int64_t in = mn_node_shape(x).d[1];
    mn_node *wi = p(g, prefix, "cell.weight_ih", MN_SHAPE(4 * H, in), uniform(H));
    mn_node *wh = p(g, prefix, "cell.weight_hh", MN_SHAPE(4 * H, H), uniform(H));
    mn_node *bi = p(g, prefix, "cell.bias_ih", MN_SHAPE(4 * H), uniform(H));
    mn_node *bh = p(g, prefix, "cell.bias_hh", MN_SHAPE(4 * H), uniform(H));
    mn_node *gates = mn_add(g, mn_linear_op(g, x, wi, bi), mn_linear_op(g, h, wh, bh));
    mn_node *q[4];
    mn_chunk(g, gates, 1, 4, q);
    mn_node *i = mn_sigmoid(g, q[0]), *f = mn_sigmoid(g, q[1]), *gg = mn_tanh(g, q[2]), *o = mn_sigmoid(g, q[3]);
    *c_out = mn_add(g, mn_mul(g, f, c), mn_mul(g, i, gg));
    return mn_mul(g, o, mn_tanh(g, *c_out));
}

mn_node *mn_rnn_attention_keys(mn_graph *g, const char *prefix, mn_node *enc, int64_t hidden, mn_rnn_score score)
{
    char n[256];
    snprintf(n, sizeof n, "%s.key", prefix);
    return mn_linear(g, n, enc, hidden, score == MN_SCORE_ADDITIVE);
}

/* Scores [B, S] of h [B, H] against the keys [B, S, H]. */
static mn_node *scores(mn_graph *g, const char *prefix, mn_node *h, mn_node *keys, const mn_rnn_attn_opts *o)
{
    mn_shape ks = mn_node_shape(keys);
    int64_t B = ks.d[0], S = ks.d[1], H = o->hidden;
    if (o->score == MN_SCORE_GENERAL)
        return mn_reshape(g, mn_matmul(g, keys, mn_reshape(g, h, MN_SHAPE(B, H, 1)), false, false), MN_SHAPE(B, S));
    mn_node *wq = p(g, prefix, "query.weight", MN_SHAPE(H, H), uniform(H));
    mn_node *q = mn_reshape(g, mn_matmul(g, h, wq, false, true), MN_SHAPE(B, 1, H));
    mn_node *v = p(g, prefix, "v.weight", MN_SHAPE(1, H), uniform(H));
    return mn_reshape(g, mn_matmul(g, mn_tanh(g, mn_add(g, q, keys)), v, false, true), MN_SHAPE(B, S));
}

mn_rnn_attn_step mn_rnn_attention_step(mn_graph *g, const char *prefix, mn_node *y, mn_node *feed, mn_node *h, mn_node *c,
                                       mn_node *enc, mn_node *keys, mn_node *enc_pad, mn_rnn_attn_opts o)
{
    mn_rnn_attn_step r = { 0 };
    mn_shape es = mn_node_shape(enc), ys = mn_node_shape(y);
    if (mn_graph_status(g)) return r;
    if (!y || !feed || !h || !c || !enc || es.ndim != 3 || ys.ndim != 2 || o.hidden <= 0) {
        char a[96], b[96];
        mn_graph_fail(g, MN_ERR_SHAPE, "rnn_attention \"%s\": input %s must be [B, E] and encoder outputs %s [B, S, He]", prefix,
                      mn_shape_str(ys, a, sizeof a), mn_shape_str(es, b, sizeof b));
        return r;
    }
    int64_t B = es.d[0], S = es.d[1], He = es.d[2], H = o.hidden;
    mn_node *x[2] = { y, feed };
    r.h = lstm_cell(g, prefix, mn_concat(g, x, 2, 1), h, c, H, &r.c);
    if (!keys) keys = mn_rnn_attention_keys(g, prefix, enc, H, o.score);
    mn_node *mask = enc_pad ? mn_where(g, enc_pad, mn_scalar(g, -INFINITY), mn_scalar(g, 0.0f)) : NULL;
    r.weights = mn_softmax_masked(g, scores(g, prefix, r.h, keys, &o), -1, mask, false);
    mn_node *ctx = mn_reshape(g, mn_matmul(g, mn_reshape(g, r.weights, MN_SHAPE(B, 1, S)), enc, false, false), MN_SHAPE(B, He));
    mn_node *both[2] = { ctx, r.h };
    mn_node *wo = p(g, prefix, "out.weight", MN_SHAPE(H, He + H), uniform(He + H));
    r.att = mn_tanh(g, mn_matmul(g, mn_concat(g, both, 2, 1), wo, false, true));
    return r;
}

/* ---- the LSTM encoder-decoder ---- */

static mn_node *table(mn_graph *g, const char *prefix, bool source, const mn_rnn_s2s_opts *o)
{
    char n[256];
    bool tgt = !source || o->share_embeddings;
    snprintf(n, sizeof n, "%s.%s.weight", prefix, tgt ? "tgt_emb" : "src_emb");
    return mn_param(g, n, MN_SHAPE(tgt ? o->tgt_vocab : o->src_vocab, o->embed), mn_init_like(MN_LIKE_EMBEDDING, false, 0));
}

static mn_node *maybe_drop(mn_graph *g, mn_node *x, const mn_rnn_s2s_opts *o)
{
    return o->training && o->dropout > 0 ? mn_dropout(g, x, o->dropout, true) : x;
}

mn_rnn_memory mn_rnn_seq2seq_encode(mn_graph *g, const char *prefix, mn_node *src, mn_rnn_s2s_opts o)
{
    mn_rnn_memory m = { 0 };
    mn_shape s = mn_node_shape(src);
    if (mn_graph_status(g)) return m;
    if (!src || s.ndim != 2 || o.embed <= 0 || o.hidden <= 0 || o.enc_hidden <= 0) {
        char sh[96];
        mn_graph_fail(g, MN_ERR_SHAPE, "rnn_seq2seq \"%s\": source %s must be [B, S], sizes > 0", prefix, mn_shape_str(s, sh, sizeof sh));
        return m;
    }
    static const int tb[3] = { 1, 0, 2 };
    mn_node *x = maybe_drop(g, mn_embedding_op(g, src, table(g, prefix, true, &o)), &o);
    char n[256];
    snprintf(n, sizeof n, "%s.encoder", prefix);
    mn_rnn_out r = mn_rnn(g, n, mn_permute(g, x, 3, tb), (mn_rnn_opts){ .mode = MN_RNN_LSTM, .hidden = o.enc_hidden, .bidirectional = true });
    m.enc = maybe_drop(g, mn_permute(g, r.output, 3, tb), &o);                 /* [B, S, 2 enc_hidden] */
    snprintf(n, sizeof n, "%s.decoder", prefix);
    m.keys = mn_rnn_attention_keys(g, n, m.enc, o.hidden, o.score);
    return m;
}

mn_rnn_s2s_step mn_rnn_seq2seq_step(mn_graph *g, const char *prefix, mn_node *token, mn_node *h, mn_node *c, mn_node *feed,
                                    mn_rnn_memory m, mn_node *src_pad, mn_rnn_s2s_opts o)
{
    mn_rnn_s2s_step r = { 0 };
    char n[256];
    mn_node *y = maybe_drop(g, mn_embedding_op(g, token, table(g, prefix, false, &o)), &o);
    snprintf(n, sizeof n, "%s.decoder", prefix);
    mn_rnn_attn_step st = mn_rnn_attention_step(g, n, y, feed, h, c, m.enc, m.keys, src_pad,
                                                (mn_rnn_attn_opts){ .hidden = o.hidden, .score = o.score });
    r.h = st.h;
    r.c = st.c;
    r.feed = st.att;
    snprintf(n, sizeof n, "%s.generator", prefix);
    r.logits = st.att ? mn_linear(g, n, maybe_drop(g, st.att, &o), o.tgt_vocab, true) : NULL;
    return r;
}

mn_node *mn_rnn_seq2seq(mn_graph *g, const char *prefix, mn_node *src, mn_node *tgt, mn_node *src_pad, mn_rnn_s2s_opts o)
{
    mn_rnn_memory m = mn_rnn_seq2seq_encode(g, prefix, src, o);
    mn_shape ts = mn_node_shape(tgt);
    if (mn_graph_status(g)) return NULL;
    if (!tgt || ts.ndim != 2 || ts.d[0] != mn_node_shape(src).d[0]) {
        char sh[96];
        mn_graph_fail(g, MN_ERR_SHAPE, "rnn_seq2seq \"%s\": target %s must be [B, T]", prefix, mn_shape_str(ts, sh, sizeof sh));
        return NULL;
    }
    int64_t B = ts.d[0], T = ts.d[1];
    mn_node *h = mn_fill(g, MN_SHAPE(B, o.hidden), 0.0f, MN_F32), *c = h, *feed = h;
    mn_node **logits = malloc((size_t)T * sizeof *logits);
    if (!logits) { mn_graph_fail(g, MN_ERR_NOMEM, "rnn_seq2seq \"%s\": out of memory", prefix); return NULL; }
    for (int64_t t = 0; t < T; t++) {
        mn_node *tok = mn_reshape(g, mn_slice(g, tgt, 1, t, t + 1, 1), MN_SHAPE(B));
        mn_rnn_s2s_step st = mn_rnn_seq2seq_step(g, prefix, tok, h, c, feed, m, src_pad, o);
        h = st.h;
        c = st.c;
        feed = st.feed;
        logits[t] = st.logits;
    }
    mn_node *out = mn_stack(g, logits, (int)T, 1);                              /* [B, T, V] */
    free(logits);
    return out;
}
