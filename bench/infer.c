/* bench/infer.c: the inference-latency workloads, with the shapes of the
 * demo's models (tools/config.c defaults, KJV's 72 characters):
 *   lstm_lm         embedding 72x64 -> LSTM 256 -> linear 256->72; one
 *                   character step, state in and state out (as `mnemo sample`)
 *   transformer_lm  vocab 72, d_model 128, 4 heads, 2 layers, FF 512,
 *                   context 64; mnemo's models have no key/value cache yet,
 *                   so a token recomputes the full 64-token window (as
 *                   `mnemo sample` does once the window is full).
 * Each is one forward-only executable compiled once; a step feeds its inputs
 * in place and runs it, so a token allocates nothing. */
#include "infer.h"
#include <stdlib.h>
#include <string.h>

const char *const mn_infer_names[] = { "lstm_lm", "transformer_lm", NULL };

enum { VOCAB = 72, EMBED = 64, HIDDEN = 256, D_MODEL = 128, HEADS = 4, LAYERS = 2, FF = 512, CONTEXT = 64 };

static mn_status build_lstm(mn_infer *m, const mn_compile_opts *opts)
{
    mn_graph *g = m->g;
    mn_node *x = mn_input(g, "x", MN_I32, MN_SHAPE(1, 1));
    mn_node *h0 = mn_input(g, "h0", MN_F32, MN_SHAPE(1, 1, HIDDEN));
    mn_node *c0 = mn_input(g, "c0", MN_F32, MN_SHAPE(1, 1, HIDDEN));
    mn_rnn_out r = mn_rnn(g, "rnn", mn_embedding(g, "emb", x, VOCAB, EMBED),
                          (mn_rnn_opts){ .mode = MN_RNN_LSTM, .hidden = HIDDEN, .h0 = h0, .c0 = c0 });
    m->logits = mn_linear(g, "head", r.output, VOCAB, true);
    m->h = r.h_n;
    m->c = r.c_n;
    m->context = 1;
    const mn_node *outs[3] = { m->logits, m->h, m->c };
    mn_compile_opts o = *opts;
    o.outputs = outs;
    o.noutputs = 3;
    m->ex = mn_compile(g, NULL, &o);
    return m->ex ? MN_OK : mn_graph_status(g);
}

static mn_status build_transformer(mn_infer *m, const mn_compile_opts *opts)
{
    mn_graph *g = m->g;
    mn_node *x = mn_input(g, "x", MN_I32, MN_SHAPE(1, CONTEXT));
    m->logits = mn_transformer_lm(g, "lm", x, (mn_lm_opts){ .vocab = VOCAB, .d_model = D_MODEL, .heads = HEADS,
                                                           .layers = LAYERS, .ff = FF, .max_len = CONTEXT });
    m->context = CONTEXT;
    m->window = malloc(CONTEXT * sizeof *m->window);
    if (!m->window) return mn_set_error(MN_ERR_NOMEM, "bench: out of memory");
    const mn_node *outs[1] = { m->logits };
    mn_compile_opts o = *opts;
    o.outputs = outs;
    o.noutputs = 1;
    m->ex = mn_compile(g, NULL, &o);
    return m->ex ? MN_OK : mn_graph_status(g);
}

mn_status mn_infer_build(const char *name, const mn_compile_opts *opts, mn_infer *m)
{
    memset(m, 0, sizeof *m);
    m->name = name;
    m->vocab = VOCAB;
    m->P = mn_params_new();
    m->g = mn_graph_new(m->P);
    mn_params_set_seed(m->P, 1);
    mn_status s = MN_ERR_NOTFOUND;
    if (!strcmp(name, "lstm_lm")) s = build_lstm(m, opts);
    else if (!strcmp(name, "transformer_lm")) s = build_transformer(m, opts);
    else return mn_set_error(MN_ERR_NOTFOUND, "bench: no inference workload \"%s\"", name);
    if (!s) mn_infer_reset(m);
    return s;
}

/* The executable's input buffer named `name` (filled in place: no copy, no allocation). */
static mn_tensor *input(const mn_infer *m, const char *name)
{
    for (int k = 0; k < mn_exec_input_count(m->ex); k++) {
        const mn_tensor *t = mn_exec_input(m->ex, k);
        if (!strcmp(mn_exec_input_name(m->ex, k), name)) return (mn_tensor *)t;
    }
    return NULL;
}

void mn_infer_reset(mn_infer *m)
{
    if (m->window)
        for (int64_t i = 0; i < m->context; i++) m->window[i] = (int32_t)((7 * i + 3) % m->vocab);
    if (m->h) {
        memset(mn_f32(input(m, "h0")), 0, HIDDEN * sizeof(float));
        memset(mn_f32(input(m, "c0")), 0, HIDDEN * sizeof(float));
    }
}

static mn_status lstm_step(mn_infer *m, int32_t token)
{
    mn_i32(input(m, "x"))[0] = token;
    mn_status s = mn_exec_run(m->ex);
    if (s) return s;
    memcpy(mn_f32(input(m, "h0")), mn_f32(mn_exec_value(m->ex, m->h)), HIDDEN * sizeof(float));
    memcpy(mn_f32(input(m, "c0")), mn_f32(mn_exec_value(m->ex, m->c)), HIDDEN * sizeof(float));
    return MN_OK;
}

static mn_status transformer_step(mn_infer *m, int32_t token)
{
    memmove(m->window, m->window + 1, (size_t)(m->context - 1) * sizeof *m->window);
    m->window[m->context - 1] = token;
    memcpy(mn_i32(input(m, "x")), m->window, (size_t)m->context * sizeof *m->window);
    return mn_exec_run(m->ex);
}

mn_status mn_infer_step(mn_infer *m, int32_t token)
{
    if (token < 0 || token >= m->vocab) return mn_set_error(MN_ERR_INVALID, "bench %s: token %d outside the vocabulary of %lld", m->name, token, (long long)m->vocab);
    return m->window ? transformer_step(m, token) : lstm_step(m, token);
}

const float *mn_infer_logits(const mn_infer *m)
{
    return mn_f32(mn_exec_value(m->ex, m->logits)) + (m->context - 1) * m->vocab;
}

void mn_infer_free(mn_infer *m)
{
    mn_exec_free(m->ex);
    mn_graph_free(m->g);
    mn_params_free(m->P);
    free(m->window);
    memset(m, 0, sizeof *m);
}
