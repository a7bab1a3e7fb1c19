/* bench/infer.c: the inference-latency workloads, with the shapes of the
 * demo's models (tools/config.c defaults, KJV's 72 characters):
 *   lstm_lm         embedding 72x64 -> LSTM 256 -> linear 256->72; one
 *                   character step, state in and state out (as `mnemo sample`)
 *   transformer_lm  vocab 72, d_model 128, 4 heads, 2 layers, FF 512,
 *                   context 64; one position of mn_transformer_lm_step with
 *                   a key/value cache of 64 slots per layer (as `mnemo
 *                   sample` while its window is not full); a sequence
 *                   starts again at position 0 after 64 tokens.
 * Each is one forward-only executable compiled once; a step feeds its inputs
 * in place (the caches are the executable's input buffers, the new keys and
 * values copied into slot pos) and runs it, so a token allocates nothing. */
#include "infer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const mn_infer_names[] = { "lstm_lm", "transformer_lm", NULL };

enum { VOCAB = 72, EMBED = 64, HIDDEN = 256, D_MODEL = 128, HEADS = 4, LAYERS = 2, FF = 512, CONTEXT = 64,
       CACHE_FLOATS = HEADS * CONTEXT * (D_MODEL / HEADS) };
_Static_assert(LAYERS <= MN_INFER_MAX_LAYERS, "bench/infer.h holds the caches of every layer");

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
    char n[16];
    for (int l = 0; l < LAYERS; l++) {
        snprintf(n, sizeof n, "k%d", l);
        m->ck[l] = mn_input(g, n, MN_F32, MN_SHAPE(1, HEADS, CONTEXT, D_MODEL / HEADS));
        snprintf(n, sizeof n, "v%d", l);
        m->cv[l] = mn_input(g, n, MN_F32, MN_SHAPE(1, HEADS, CONTEXT, D_MODEL / HEADS));
    }
    mn_lm_step st = { .token = mn_input(g, "x", MN_I32, MN_SHAPE(1, 1)), .pos = mn_input(g, "pos", MN_I32, MN_SHAPE(1)),
                      .self_k = m->ck, .self_v = m->cv, .new_k = m->nk, .new_v = m->nv };
    m->logits = mn_transformer_lm_step(g, "lm", &st, (mn_lm_opts){ .vocab = VOCAB, .d_model = D_MODEL, .heads = HEADS,
                                                                   .layers = LAYERS, .ff = FF, .max_len = CONTEXT });
    m->context = CONTEXT;
    m->cached = true;
    const mn_node *outs[1 + 2 * LAYERS] = { m->logits };
    for (int l = 0; l < LAYERS; l++) { outs[1 + 2 * l] = m->nk[l]; outs[2 + 2 * l] = m->nv[l]; }
    mn_compile_opts o = *opts;
    o.outputs = outs;
    o.noutputs = 1 + 2 * LAYERS;
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

static mn_tensor *input_of(const mn_infer *m, const mn_node *n) { return input(m, mn_node_name(n)); }

void mn_infer_reset(mn_infer *m)
{
    m->pos = 0;
    for (int l = 0; m->cached && l < LAYERS; l++) {      /* slots >= pos are masked: zeros only for tidiness */
        memset(mn_f32(input_of(m, m->ck[l])), 0, CACHE_FLOATS * sizeof(float));
        memset(mn_f32(input_of(m, m->cv[l])), 0, CACHE_FLOATS * sizeof(float));
    }
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

/* Position pos: the token in, then its new keys and values into slot pos
 * of each cache ([1, heads, CONTEXT, dh]: slot pos of head h at (h CONTEXT + pos) dh). */
static mn_status transformer_step(mn_infer *m, int32_t token)
{
    if (m->pos == CONTEXT) m->pos = 0;                   /* the window is full: a new sequence */
    mn_i32(input(m, "x"))[0] = token;
    mn_i32(input(m, "pos"))[0] = (int32_t)m->pos;
    mn_status s = mn_exec_run(m->ex);
    if (s) return s;
    enum { DH = D_MODEL / HEADS };
    for (int l = 0; l < LAYERS; l++)
        for (int kv = 0; kv < 2; kv++) {
            float *cache = mn_f32(input_of(m, kv ? m->cv[l] : m->ck[l]));
            const float *nw = mn_f32(mn_exec_value(m->ex, kv ? m->nv[l] : m->nk[l]));
            for (int h = 0; h < HEADS; h++) memcpy(cache + ((int64_t)h * CONTEXT + m->pos) * DH, nw + h * DH, DH * sizeof(float));
        }
    m->pos++;
    return MN_OK;
}

mn_status mn_infer_step(mn_infer *m, int32_t token)
{
    if (token < 0 || token >= m->vocab) return mn_set_error(MN_ERR_INVALID, "bench %s: token %d outside the vocabulary of %lld", m->name, token, (long long)m->vocab);
    return m->cached ? transformer_step(m, token) : lstm_step(m, token);
}

const float *mn_infer_logits(const mn_infer *m)
{
    return mn_f32(mn_exec_value(m->ex, m->logits));
}

void mn_infer_free(mn_infer *m)
{
    mn_exec_free(m->ex);
    mn_graph_free(m->g);
    mn_params_free(m->P);
    memset(m, 0, sizeof *m);
}
