/* tools/sample.c: text generation from a trained character LM. Recurrent
 * models run a one-step graph over the trained parameters (state in, state
 * out); the transformer runs one position at a time with a key/value cache
 * (mn_transformer_lm_step) until --seq positions are filled, then
 * recomputes the sliding window of the last --seq tokens (positions restart
 * at 0 in a window, as in training, so nothing cached can be reused).
 * Sampling: softmax(logits / T) restricted to the top k, drawn with the
 * counter-based RNG. */
#include "train.h"
#include "env.h"
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

mn_status mn_vocab_from_json(const char *json, mn_text *v)
{
    memset(v, 0, sizeof *v);
    for (int i = 0; i < 256; i++) v->index[i] = -1;
    json_t *a = json ? json_loads(json, 0, NULL) : NULL;
    if (!json_is_array(a) || !json_array_size(a) || json_array_size(a) > 256) {
        json_decref(a);
        return mn_set_error(MN_ERR_FORMAT, "checkpoint: metadata mnemo.vocab is missing or not a list of byte values");
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_int_t c = json_integer_value(json_array_get(a, i));
        if (!json_is_integer(json_array_get(a, i)) || c < 0 || c > 255 || v->index[c] >= 0) {
            json_decref(a);
            return mn_set_error(MN_ERR_FORMAT, "checkpoint: bad byte value in mnemo.vocab");
        }
        v->chars[v->vocab] = (unsigned char)c;
        v->index[c] = (int16_t)v->vocab++;
    }
    json_decref(a);
    return MN_OK;
}

static int draw(const float *logits, int V, float temperature, int top_k, uint64_t seed, uint64_t pos)
{
    double *p = malloc((size_t)V * sizeof *p), m = -INFINITY, s = 0;
    int *idx = calloc((size_t)V, sizeof *idx), pick = 0;
    for (int i = 0; i < V; i++) { p[i] = logits[i] / (temperature > 0 ? temperature : 1e-6); idx[i] = i; if (p[i] > m) m = p[i]; }
    int k = top_k > 0 && top_k < V ? top_k : V;
    for (int i = 0; i < k; i++)              /* partial selection sort: the k largest first */
        for (int j = i + 1; j < V; j++)
            if (p[idx[j]] > p[idx[i]]) { int t = idx[i]; idx[i] = idx[j]; idx[j] = t; }
    for (int i = 0; i < k; i++) s += exp(p[idx[i]] - m);
    double u = mn_rng_uniform(seed, 0x53414d50ull, pos) * s, acc = 0;
    pick = idx[k - 1];
    for (int i = 0; i < k; i++) {
        acc += exp(p[idx[i]] - m);
        if (u < acc) { pick = idx[i]; break; }
    }
    free(p); free(idx);
    return pick;
}

typedef struct { mn_graph *g; mn_exec *ex; mn_node *logits, *h, *c; } step_graph;

static mn_status rnn_step_graph(mn_params *P, const mn_train_cfg *c, int V, step_graph *s)
{
    mn_rnn_mode mode = !strcmp(c->model, "gru") ? MN_RNN_GRU : !strcmp(c->model, "rnn") ? MN_RNN_TANH : MN_RNN_LSTM;
    s->g = mn_graph_new(P);
    mn_node *x = mn_input(s->g, "x", MN_I32, MN_SHAPE(1, 1));
    mn_node *h0 = mn_input(s->g, "h0", MN_F32, MN_SHAPE(c->layers, 1, c->hidden));
    mn_node *c0 = mode == MN_RNN_LSTM ? mn_input(s->g, "c0", MN_F32, MN_SHAPE(c->layers, 1, c->hidden)) : NULL;
    mn_rnn_out r = mn_rnn(s->g, "rnn", mn_embedding(s->g, "emb", x, V, c->embed),
                          (mn_rnn_opts){ .mode = mode, .hidden = c->hidden, .layers = c->layers, .h0 = h0, .c0 = c0 });
    s->logits = mn_linear(s->g, "head", r.output, V, true);
    s->h = r.h_n; s->c = r.c_n;
    const mn_node *outs[3] = { s->logits, s->h, s->c ? s->c : s->h };
    s->ex = mn_compile(s->g, NULL, mn_tools_compile_opts(&(mn_compile_opts){ .threads = c->threads, .outputs = outs, .noutputs = 3 }));
    return s->ex ? MN_OK : mn_set_error(mn_graph_status(s->g), "%s", mn_graph_errmsg(s->g));
}

static mn_status window_graph(mn_params *P, const mn_train_cfg *c, int V, int64_t L, step_graph *s)
{
    s->g = mn_graph_new(P);
    mn_node *x = mn_input(s->g, "x", MN_I32, MN_SHAPE(1, L));
    s->logits = mn_transformer_lm(s->g, "lm", x, (mn_lm_opts){ .vocab = V, .d_model = c->hidden, .heads = c->heads,
                                                              .layers = c->layers, .ff = c->ff, .max_len = c->seq });
    const mn_node *outs[1] = { s->logits };
    s->ex = mn_compile(s->g, NULL, mn_tools_compile_opts(&(mn_compile_opts){ .threads = c->threads, .outputs = outs, .noutputs = 1 }));
    return s->ex ? MN_OK : mn_set_error(mn_graph_status(s->g), "%s", mn_graph_errmsg(s->g));
}

static void free_step(step_graph *s) { mn_exec_free(s->ex); mn_graph_free(s->g); memset(s, 0, sizeof *s); }

/* The transformer's cached step: inputs tok [1, 1], pos [1], k<l>/v<l>
 * [1, heads, seq, dh] (the caches, written in place), outputs the logits
 * and each layer's new keys and values. */
typedef struct { step_graph sg; mn_node **nodes; float **cache; int layers; int64_t heads, slots, dh, pos; } cached_lm;

static float *input_buffer(mn_exec *ex, const char *name)
{
    for (int k = 0; k < mn_exec_input_count(ex); k++)
        if (!strcmp(mn_exec_input_name(ex, k), name)) return mn_f32(mn_exec_input(ex, k));
    return NULL;
}

static mn_status cached_graph(mn_params *P, const mn_train_cfg *c, int V, cached_lm *m)
{
    int L = c->layers;
    m->layers = L; m->heads = c->heads; m->slots = c->seq; m->dh = c->heads > 0 ? c->hidden / c->heads : 0;
    m->nodes = calloc((size_t)4 * L, sizeof *m->nodes);      /* caches k, v, then new k, v */
    m->cache = calloc((size_t)2 * L, sizeof *m->cache);
    if (!m->nodes || !m->cache) return mn_set_error(MN_ERR_NOMEM, "sample: out of memory");
    mn_graph *g = m->sg.g = mn_graph_new(P);
    char n[32];
    for (int k = 0; k < 2 * L; k++) {
        snprintf(n, sizeof n, "%c%d", k < L ? 'k' : 'v', k % L);
        m->nodes[k] = mn_input(g, n, MN_F32, MN_SHAPE(1, m->heads > 0 ? m->heads : 1, m->slots, m->dh > 0 ? m->dh : 1));
    }
    mn_lm_step st = { .token = mn_input(g, "tok", MN_I32, MN_SHAPE(1, 1)), .pos = mn_input(g, "pos", MN_I32, MN_SHAPE(1)),
                      .self_k = m->nodes, .self_v = m->nodes + L, .new_k = m->nodes + 2 * L, .new_v = m->nodes + 3 * L };
    m->sg.logits = mn_transformer_lm_step(g, "lm", &st, (mn_lm_opts){ .vocab = V, .d_model = c->hidden, .heads = c->heads,
                                                                       .layers = L, .ff = c->ff, .max_len = c->seq });
    if (!m->sg.logits) return mn_set_error(mn_graph_status(g), "%s", mn_graph_errmsg(g));
    const mn_node **outs = malloc((size_t)(2 * L + 1) * sizeof *outs);
    if (!outs) return mn_set_error(MN_ERR_NOMEM, "sample: out of memory");
    outs[0] = m->sg.logits;
    for (int k = 0; k < 2 * L; k++) outs[1 + k] = m->nodes[2 * L + k];
    m->sg.ex = mn_compile(g, NULL, mn_tools_compile_opts(&(mn_compile_opts){ .threads = c->threads, .outputs = outs, .noutputs = 2 * L + 1 }));
    free(outs);
    if (!m->sg.ex) return mn_set_error(mn_graph_status(g), "%s", mn_graph_errmsg(g));
    for (int k = 0; k < 2 * L; k++) m->cache[k] = input_buffer(m->sg.ex, mn_node_name(m->nodes[k]));
    return MN_OK;
}

/* Position m->pos: the token in, its keys and values into slot pos of the
 * caches (slot pos of head h at (h slots + pos) dh). */
static mn_status cached_feed(cached_lm *m, int32_t token)
{
    int32_t pos = (int32_t)m->pos;
    mn_exec_feed_data(m->sg.ex, "tok", &token, sizeof token);
    mn_exec_feed_data(m->sg.ex, "pos", &pos, sizeof pos);
    mn_status s = mn_exec_run(m->sg.ex);
    for (int k = 0; !s && k < 2 * m->layers; k++) {
        const float *nw = mn_f32(mn_exec_value(m->sg.ex, m->nodes[2 * m->layers + k]));
        for (int64_t h = 0; h < m->heads; h++)
            memcpy(m->cache[k] + (h * m->slots + pos) * m->dh, nw + h * m->dh, (size_t)m->dh * sizeof(float));
    }
    m->pos++;
    return s;
}

static void free_cached(cached_lm *m) { free_step(&m->sg); free(m->nodes); free(m->cache); }

/* MN_ERR_INVALID naming the prompt's bytes outside the vocabulary (and how many there are). */
static mn_status check_prompt(const mn_text *v, const char *prompt)
{
    char list[160] = "";
    int count = 0;
    for (const unsigned char *p = (const unsigned char *)prompt; *p; p++) {
        if (v->index[*p] >= 0) continue;
        if (count++ < 8) {
            size_t n = strlen(list);
            if (*p >= 32 && *p < 127) snprintf(list + n, sizeof list - n, "%s'%c'", n ? ", " : "", *p);
            else snprintf(list + n, sizeof list - n, "%sbyte 0x%02x", n ? ", " : "", *p);
        }
    }
    if (!count) return MN_OK;
    return mn_set_error(MN_ERR_INVALID, "--prompt: %d character%s not in the model's vocabulary of %d (%s%s); the model never saw them",
                        count, count > 1 ? "s are" : " is", v->vocab, list, count > 8 ? ", ..." : "");
}

/* Recurrent models: one step per character, the state fed back. Returns
 * how many ids are valid (the prompt's, then each drawn one). */
static int64_t run_rnn(mn_params *P, const mn_train_cfg *c, const mn_text *v, int32_t *ids, int64_t have, int64_t total,
                       float temperature, int top_k, uint64_t seed, mn_status *s)
{
    step_graph sg = { 0 };
    int64_t written = have;
    if ((*s = rnn_step_graph(P, c, v->vocab, &sg))) { free_step(&sg); return written; }
    for (int64_t i = 0; i < total && !*s; i++) {
        mn_exec_feed_data(sg.ex, "x", &ids[i], sizeof *ids);
        if ((*s = mn_exec_run(sg.ex))) break;
        mn_exec_feed(sg.ex, "h0", mn_exec_value(sg.ex, sg.h));
        if (sg.c) mn_exec_feed(sg.ex, "c0", mn_exec_value(sg.ex, sg.c));
        if (i + 1 >= have && i + 1 < total) {
            ids[i + 1] = draw(mn_f32(mn_exec_value(sg.ex, sg.logits)), v->vocab, temperature, top_k, seed, (uint64_t)i);
            written = i + 2;
        }
    }
    free_step(&sg);
    return written;
}

/* The transformer: token i is drawn from the logits at position i - 1 of
 * the last min(i, seq) tokens: through the cached step while i <= seq
 * (every earlier position fed once), else through the window graph. */
static int64_t run_window(mn_params *P, const mn_train_cfg *c, const mn_text *v, int32_t *ids, int64_t have, int64_t total,
                          float temperature, int top_k, uint64_t seed, mn_status *s)
{
    int V = v->vocab;
    int64_t written = have, L = c->seq;
    step_graph win = { 0 };
    cached_lm cl = { 0 };
    for (int64_t i = have; i < total && !*s; i++) {
        const float *logits;
        if (i <= c->seq) {
            if (!cl.sg.ex && (*s = cached_graph(P, c, V, &cl))) break;
            while (cl.pos < i && !*s) *s = cached_feed(&cl, ids[cl.pos]);
            if (*s) break;
            logits = mn_f32(mn_exec_value(cl.sg.ex, cl.sg.logits));
        } else {
            if (!win.ex && (*s = window_graph(P, c, V, L, &win))) break;
            mn_exec_feed_data(win.ex, "x", ids + i - L, (size_t)L * sizeof *ids);
            if ((*s = mn_exec_run(win.ex))) break;
            logits = mn_f32(mn_exec_value(win.ex, win.logits)) + (L - 1) * V;
        }
        ids[i] = draw(logits, V, temperature, top_k, seed, (uint64_t)i);
        written = i + 1;
    }
    if (win.g) free_step(&win);
    free_cached(&cl);
    return written;
}

/* Writes prompt + n generated characters to out (a buffer of n + strlen(prompt) + 1);
 * on an error, out holds what was generated before it. A prompt byte outside
 * the vocabulary is an error (nothing is generated). */
mn_status mn_lm_generate(mn_params *P, const mn_train_cfg *c, const mn_text *v, const char *prompt, int n,
                         float temperature, int top_k, uint64_t seed, char *out)
{
    size_t plen = strlen(prompt);
    int64_t total = (int64_t)plen + n;
    out[0] = 0;
    mn_status s = check_prompt(v, prompt);
    if (s) return s;
    int32_t *ids = malloc((size_t)(total + 1) * sizeof *ids);
    if (!ids) return mn_set_error(MN_ERR_NOMEM, "sample: out of memory");
    mn_text_encode(v, prompt, ids, (int64_t)plen);
    if (!plen) ids[0] = v->index['\n'] >= 0 ? v->index['\n'] : 0;
    int64_t have = plen ? (int64_t)plen : 1, written;
    if (strcmp(c->model, "transformer")) written = run_rnn(P, c, v, ids, have, total, temperature, top_k, seed, &s);
    else written = run_window(P, c, v, ids, have, total, temperature, top_k, seed, &s);
    memcpy(out, prompt, plen);
    for (int64_t i = (int64_t)plen; i < written; i++) out[i] = (char)v->chars[ids[i]];
    out[written > (int64_t)plen ? written : (int64_t)plen] = 0;
    free(ids);
    return s;
}
