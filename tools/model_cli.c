/* tools/model_cli.c: the graph of each `mnemo train --model` kind, built
 * from the configuration with the models/ compositions. Inputs are "x"
 * (then "y"); the loss is mean cross-entropy over targets, or the VAE's
 * per-image loss. --dropout acts (when training) on hidden outputs only:
 * the recurrent stack's output and between its layers, the MLP's and the
 * VAE's hidden layers, the transformer's embeddings, attention and
 * residual branches, the tagger's embeddings too; never on input pixels. */
#include "train.h"
#include <string.h>

static mn_node *drop(mn_graph *g, mn_node *x, const mn_train_cfg *c, bool training)
{
    return training && c->dropout > 0 ? mn_dropout(g, x, c->dropout, true) : x;
}

static mn_model_graph lm(mn_graph *g, const mn_train_cfg *c, int64_t V, bool training)
{
    mn_model_graph m = { .classes = V };
    int64_t T = c->seq, B = c->batch;
    bool tr = !strcmp(c->model, "transformer");
    mn_node *x = mn_input(g, "x", MN_I32, tr ? MN_SHAPE(B, T) : MN_SHAPE(T, B));
    mn_node *y = mn_input(g, "y", MN_I32, tr ? MN_SHAPE(B, T) : MN_SHAPE(T, B));
    mn_node *logits;
    if (tr) {
        logits = mn_transformer_lm(g, "lm", x, (mn_lm_opts){ .vocab = V, .d_model = c->hidden, .heads = c->heads, .layers = c->layers,
                                                             .ff = c->ff, .max_len = T, .dropout = c->dropout, .training = training });
    } else {
        mn_rnn_mode mode = !strcmp(c->model, "gru") ? MN_RNN_GRU : !strcmp(c->model, "rnn") ? MN_RNN_TANH : MN_RNN_LSTM;
        mn_node *e = mn_embedding(g, "emb", x, V, c->embed);
        mn_rnn_out r = mn_rnn(g, "rnn", e, (mn_rnn_opts){ .mode = mode, .hidden = c->hidden, .layers = c->layers,
                                                          .dropout = c->dropout, .training = training });
        logits = mn_linear_steps(g, "head", drop(g, r.output, c, training), V, true);   /* per step: see mn_linear_steps */
    }
    m.logits = mn_reshape(g, logits, MN_SHAPE(T * B, V));
    m.targets = mn_reshape(g, y, MN_SHAPE(T * B));
    m.loss = mn_cross_entropy(g, m.logits, m.targets);
    return m;
}

/* The hidden activation by op name; an op of two inputs gets a learnable
 * parameter <layer>.act [features] (ones) as its second input. */
static mn_node *activation(mn_graph *g, const mn_train_cfg *c, const char *layer, mn_node *x)
{
    const mn_op_def *op = mn_op_find(c->activation);
    if (!op || mn_op_arity(op) == 1) return mn_op(g, c->activation, &x, 1, NULL, 0);
    char name[96];
    snprintf(name, sizeof name, "%s.act", layer);
    mn_node *in[2] = { x, mn_param(g, name, MN_SHAPE(c->hidden), (mn_init){ .kind = MN_INIT_ONES }) };
    return mn_op(g, c->activation, in, 2, NULL, 0);
}

mn_model_graph mn_model_build(mn_graph *g, const mn_train_cfg *c, int64_t vocab, bool training)
{
    mn_model_graph m = { 0 };
    int64_t B = c->batch;
    if (c->onnx[0]) return mn_model_onnx(g, c, vocab);
    if (mn_cfg_is_lm(c)) return lm(g, c, vocab, training);
    if (!strcmp(c->model, "vae")) {
        mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 784));
        m.loss = mn_vae(g, "vae", x, NULL, (mn_vae_opts){ .input = 784, .hidden = c->hidden, .latent = c->latent,
                                                         .dropout = c->dropout, .training = training }).loss;
        return m;
    }
    if (!strcmp(c->model, "mlp")) {
        mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 784));
        m.targets = mn_input(g, "y", MN_I32, MN_SHAPE(B));
        char name[64];
        for (int i = 0; i < c->layers; i++) {
            snprintf(name, sizeof name, "mlp.%d", i);
            x = drop(g, activation(g, c, name, mn_linear(g, name, x, c->hidden, true)), c, training);
        }
        snprintf(name, sizeof name, "mlp.%d", c->layers);
        m.logits = mn_linear(g, name, x, 10, true);
        m.classes = 10;
        m.loss = mn_cross_entropy(g, m.logits, m.targets);
        return m;
    }
    /* tagger: embedding + bidirectional LSTM + linear per token */
    int64_t T = c->seq, K = 12;
    mn_node *x = mn_input(g, "x", MN_I32, MN_SHAPE(T, B)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(T, B));
    mn_node *e = mn_embedding(g, "emb", x, vocab, c->embed);
    e = drop(g, e, c, training);
    mn_rnn_out r = mn_rnn(g, "lstm", e, (mn_rnn_opts){ .mode = MN_RNN_LSTM, .hidden = c->hidden, .layers = c->layers,
                                                       .bidirectional = true, .dropout = c->dropout, .training = training });
    m.logits = mn_reshape(g, mn_linear(g, "out", drop(g, r.output, c, training), K, true), MN_SHAPE(T * B, K));
    m.targets = mn_reshape(g, y, MN_SHAPE(T * B));
    m.classes = K;
    m.loss = mn_cross_entropy(g, m.logits, m.targets);
    return m;
}

/* The model of c on a scratch store, against P's tensors: every parameter
 * must come from P (named when missing or of another shape), and P may
 * hold nothing the model does not use. P is strict afterwards. */
mn_status mn_model_check_params(mn_params *P, const mn_train_cfg *c, int64_t vocab)
{
    mn_params *S = mn_params_new();
    mn_graph *g = S ? mn_graph_new(S) : NULL;
    if (!g) { mn_params_free(S); return mn_set_error(MN_ERR_NOMEM, "checkpoint: out of memory"); }
    mn_model_graph m = mn_model_build(g, c, vocab, false);
    mn_status s = m.loss ? MN_OK : mn_set_error(mn_graph_status(g), "%s", mn_graph_errmsg(g));
    if (!s) s = mn_params_match(P, S);
    mn_graph_free(g);
    mn_params_free(S);
    mn_params_set_strict(P, true);
    return s;
}
