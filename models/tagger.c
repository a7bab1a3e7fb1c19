/* models/tagger.c: the BiLSTM-CRF sequence tagger (Lample et al. 2016)
 * with a character CNN per word (Ma and Hovy 2016), as a composition:
 * embeddings, a width-3 convolution written as three shifted slices joined
 * and one linear map, a max over character positions, the bidirectional
 * LSTM of models/rnn.c (every layer's backward direction starting at each
 * sentence's last token), a linear layer to emission scores and the crf_nll
 * op (or token cross-entropy). Parameters are created under `prefix`. */
#include "mnemo.h"
#include <stdio.h>

static mn_node *param(mn_graph *g, const char *prefix, const char *name, mn_shape s, mn_init init)
{
    char n[256];
    snprintf(n, sizeof n, "%s.%s", prefix, name);
    return mn_param(g, n, s, init);
}

/* chars [N, W] -> [N, filters]: max_p tanh(W [e_p-1, e_p, e_p+1] + b) over the W - 2 windows. */
static mn_node *char_cnn(mn_graph *g, const char *prefix, mn_node *chars, const mn_tagger_opts *o)
{
    mn_shape cs = mn_node_shape(chars);
    int64_t W = cs.ndim == 2 ? cs.d[1] : 0, C = o->char_dim, F3 = 3 * C;
    if (W < 3) {
        mn_graph_fail(g, MN_ERR_SHAPE, "tagger \"%s\": chars must be [T * B, W] with W >= 3", prefix);
        return NULL;
    }
    mn_node *e = mn_embedding_op(g, chars, param(g, prefix, "chars.weight", MN_SHAPE(o->chars, C), mn_init_like(MN_LIKE_EMBEDDING, false, 0)));
    mn_node *win[3];
    for (int k = 0; k < 3; k++) win[k] = mn_slice(g, e, 1, k, W - 2 + k, 1);
    mn_node *x = mn_concat(g, win, 3, 2);                                       /* [N, W - 2, 3C] */
    mn_node *w = param(g, prefix, "char_conv.weight", MN_SHAPE(o->char_filters, F3), mn_init_like(MN_LIKE_LINEAR, false, F3));
    mn_node *b = param(g, prefix, "char_conv.bias", MN_SHAPE(o->char_filters), mn_init_like(MN_LIKE_LINEAR, true, F3));
    return mn_max(g, mn_tanh(g, mn_linear_op(g, x, w, b)), 1, false);
}

/* Per-sentence reorderings of the rows t * B + b of a [T, B, ...] batch,
 * from the lengths: to_right moves sentence b's steps to T - len + t (its
 * padding first), to_left moves them back; padding rows stay in place. */
static void align_indices(mn_graph *g, mn_node *lengths, int64_t T, int64_t B, mn_node **to_right, mn_node **to_left)
{
    mn_node *t = mn_reshape(g, mn_arange(g, 0, (double)T, 1, MN_F32), MN_SHAPE(T, 1));
    mn_node *b = mn_reshape(g, mn_arange(g, 0, (double)B, 1, MN_F32), MN_SHAPE(1, B));
    mn_node *len = mn_reshape(g, mn_cast(g, lengths, MN_F32), MN_SHAPE(1, B));
    mn_node *shift = mn_sub(g, mn_fill(g, MN_SHAPE(1, B), (float)T, MN_F32), len);              /* T - len */
    mn_node *same = mn_add(g, mn_scale(g, t, (float)B), b);
    mn_node *from_left = mn_add(g, mn_scale(g, mn_sub(g, t, shift), (float)B), b);
    mn_node *from_right = mn_add(g, mn_scale(g, mn_add(g, t, shift), (float)B), b);
    *to_right = mn_reshape(g, mn_cast(g, mn_where(g, mn_ge(g, t, shift), from_left, same), MN_I32), MN_SHAPE(T * B));
    *to_left = mn_reshape(g, mn_cast(g, mn_where(g, mn_lt(g, t, len), from_right, same), MN_I32), MN_SHAPE(T * B));
}

static mn_node *reorder(mn_graph *g, mn_node *x, mn_node *index)
{
    mn_shape s = mn_node_shape(x);
    mn_node *flat = mn_reshape(g, x, MN_SHAPE(s.d[0] * s.d[1], s.d[2]));
    return mn_reshape(g, mn_index_select(g, flat, 0, index), s);
}

/* Bidirectional LSTM layer `layer` (prefix.lstm, PyTorch's names
 * weight_ih_l{layer}...) whose backward direction starts at each
 * sentence's last token, not at the batch's padding: it runs over the
 * right-aligned batch (the same parameters, by name), and its output is
 * moved back. The unused halves of the two runs are dead code. */
static mn_node *bilstm_padded(mn_graph *g, const char *name, mn_node *x, mn_node *right, mn_node *left, int layer,
                              const mn_tagger_opts *o)
{
    int64_t H = o->hidden;
    mn_rnn_opts ro = { .mode = MN_RNN_LSTM, .hidden = H, .layers = 1, .bidirectional = true, .training = o->training,
                       .first_layer = layer };
    mn_node *fw = mn_slice(g, mn_rnn(g, name, x, ro).output, 2, 0, H, 1);
    mn_node *bw = mn_slice(g, mn_rnn(g, name, reorder(g, x, right), ro).output, 2, H, 2 * H, 1);
    mn_node *parts[2] = { fw, reorder(g, bw, left) };
    return mn_concat(g, parts, 2, 2);
}

static mn_node *dropout(mn_graph *g, mn_node *x, const mn_tagger_opts *o)
{
    return o->training && o->dropout > 0 ? mn_dropout(g, x, o->dropout, true) : x;
}

/* The stacked BiLSTM as nn.LSTM(num_layers=L, bidirectional=True,
 * dropout=p) over a packed batch: dropout before every layer (on the
 * features for the first, between layers after), each layer padded. */
static mn_node *bilstm_stack(mn_graph *g, const char *prefix, mn_node *x, mn_node *lengths, const mn_tagger_opts *o)
{
    mn_shape xs = mn_node_shape(x);
    char name[256];
    snprintf(name, sizeof name, "%s.lstm", prefix);
    mn_node *right, *left, *h = dropout(g, x, o);
    align_indices(g, lengths, xs.d[0], xs.d[1], &right, &left);
    int L = o->layers > 0 ? o->layers : 1;
    for (int l = 0; l < L; l++) h = bilstm_padded(g, name, l ? dropout(g, h, o) : h, right, left, l, o);
    return h;
}

mn_tagger_out mn_bilstm_crf(mn_graph *g, const char *prefix, mn_node *words, mn_node *chars, mn_node *tags, mn_node *lengths,
                            mn_tagger_opts o)
{
    mn_tagger_out r = { 0 };
    mn_shape ws = mn_node_shape(words);
    if (mn_graph_status(g)) return r;
    if (ws.ndim != 2 || o.words < 2 || o.tags < 1 || o.word_dim < 1 || o.hidden < 1 || (o.char_filters && (!chars || o.char_dim < 1 || o.chars < 1))) {
        mn_graph_fail(g, MN_ERR_INVALID, "tagger \"%s\": words must be [T, B]; sizes must be positive (chars needed when char_filters > 0)", prefix);
        return r;
    }
    int64_t T = ws.d[0], B = ws.d[1], K = o.tags;
    mn_node *x = mn_embedding_op(g, words, param(g, prefix, "words.weight", MN_SHAPE(o.words, o.word_dim),
                                                 mn_init_like(MN_LIKE_EMBEDDING, false, 0)));
    if (o.char_filters) {
        mn_node *parts[2] = { x, mn_reshape(g, char_cnn(g, prefix, chars, &o), MN_SHAPE(T, B, o.char_filters)) };
        x = mn_concat(g, parts, 2, 2);
    }
    mn_node *h = bilstm_stack(g, prefix, x, lengths, &o);
    char name[256];
    snprintf(name, sizeof name, "%s.out", prefix);
    r.emissions = mn_linear(g, name, dropout(g, h, &o), K, true);
    if (!o.crf) {
        mn_node *logits = mn_reshape(g, r.emissions, MN_SHAPE(T * B, K));
        r.loss = mn_cross_entropy(g, logits, mn_reshape(g, tags, MN_SHAPE(T * B)));
        return r;
    }
    r.transitions = param(g, prefix, "crf.transitions", MN_SHAPE(K + 2, K), (mn_init){ .kind = MN_INIT_UNIFORM, .a = -0.1f, .b = 0.1f });
    if (o.constraints) r.transitions = mn_add(g, r.transitions, mn_constant(g, MN_F32, MN_SHAPE(K + 2, K), o.constraints));
    r.loss = mn_crf_nll(g, r.emissions, r.transitions, tags, lengths, MN_REDUCE_MEAN);
    return r;
}
