/* models/rnn_attention.c: one step of an LSTM decoder with attention over
 * encoder outputs, as compositions: nn.LSTMCell (prefix.cell.*, gates
 * i,f,g,o) fed [y_t; previous attentional vector] (Luong et al. 2015 input
 * feeding), additive (Bahdanau et al. 2015: v^T tanh(W_q h + W_k e + b))
 * or multiplicative ("general", Luong: h^T W_k e) scores with padding
 * masked, context, and the attentional vector tanh(W_out [ctx; h]). */
#include "mnemo.h"
#include <math.h>
#include <stdio.h>

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
