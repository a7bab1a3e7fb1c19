/* tools/translate.c: the translation application's configuration, data
 * and decoders. The decoder runs two graphs per batch shape: the encoder
 * (memory keys and values of every decoder layer, once per sentence) and
 * the one-step decoder of mn_seq2seq_step, whose key/value caches are its
 * own input buffers, filled in place; beam search reorders their rows. */
#include "translate.h"
#include "env.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mn_mt_defaults(mn_mt_cfg *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->arch, sizeof c->arch, "transformer");
    /* sized for about 10 minutes on 2 cores: 1.4M parameters, ~16 GFLOP a step */
    c->vocab = 4000;
    c->d_model = 128;
    c->heads = 4;
    c->enc_layers = 2;
    c->dec_layers = 2;
    c->ff = 512;
    c->max_len = 80;
    c->tie = true;
    c->dropout = 0.1f;
    c->label_smoothing = 0.1f;
    c->lr = 2e-3f;
    c->clip = 1.0f;
    c->weight_decay = 0.0f;
    c->batch = 2048;
    c->warmup = 400;
    c->val_every = 500;
    c->val_bleu = 100;
    c->time_limit = 600;
    c->seed = 1;
}

mn_status mn_mt_check(const mn_mt_cfg *c)
{
    if (strcmp(c->arch, "transformer") && strcmp(c->arch, "lstm-attn"))
        return mn_set_error(MN_ERR_INVALID, "--arch: unknown architecture \"%s\" (transformer, lstm-attn)", c->arch);
    if (mn_mt_is_lstm(c) && c->d_model % 2) return mn_set_error(MN_ERR_INVALID, "--d-model %d: lstm-attn needs an even size (two encoder directions)", c->d_model);
    if (c->vocab < 300 || c->vocab > MN_BPE_FIRST_MERGE + 200000) return mn_set_error(MN_ERR_INVALID, "--vocab %d: must be 300..200259", c->vocab);
    if (c->d_model < 1 || c->d_model > 4096 || c->heads < 1 || c->d_model % c->heads)
        return mn_set_error(MN_ERR_INVALID, "--d-model %d must be 1..4096 and divisible by --heads %d", c->d_model, c->heads);
    if (c->enc_layers < 1 || c->enc_layers > 64 || c->dec_layers < 1 || c->dec_layers > 64)
        return mn_set_error(MN_ERR_INVALID, "--layers: encoder %d and decoder %d must be 1..64", c->enc_layers, c->dec_layers);
    if (c->ff < 1 || c->ff > 65536) return mn_set_error(MN_ERR_INVALID, "--ff %d: must be 1..65536", c->ff);
    if (c->max_len < 4 || c->max_len > 1024) return mn_set_error(MN_ERR_INVALID, "--max-len %d: must be 4..1024", c->max_len);
    if (c->batch < c->max_len || c->batch > (1 << 20)) return mn_set_error(MN_ERR_INVALID, "--batch %d tokens: must be max_len (%d)..1048576", c->batch, c->max_len);
    if (!(c->dropout >= 0 && c->dropout < 1) || !(c->label_smoothing >= 0 && c->label_smoothing < 1))
        return mn_set_error(MN_ERR_INVALID, "--dropout %g and --label-smoothing %g must be in [0, 1)", (double)c->dropout, (double)c->label_smoothing);
    if (!(c->lr > 0 && c->lr < 10) || !(c->clip >= 0) || !(c->weight_decay >= 0))
        return mn_set_error(MN_ERR_INVALID, "--lr %g must be in (0, 10), --clip and --weight-decay >= 0", (double)c->lr);
    if (c->warmup < 0 || c->val_every < 1 || c->val_bleu < 0 || c->steps < 0 || c->limit < 0 || !(c->time_limit >= 0))
        return mn_set_error(MN_ERR_INVALID, "--warmup, --val-every (>= 1), --val-bleu, --steps, --limit and --time must not be negative");
    return MN_OK;
}

bool mn_mt_is_lstm(const mn_mt_cfg *c)
{
    return !strcmp(c->arch, "lstm-attn");
}

mn_rnn_s2s_opts mn_mt_rnn_opts(const mn_mt_cfg *c, bool training)
{
    return (mn_rnn_s2s_opts){ .src_vocab = c->vocab, .tgt_vocab = c->vocab, .embed = c->d_model, .enc_hidden = c->d_model / 2,
                              .hidden = c->d_model, .score = c->additive ? MN_SCORE_ADDITIVE : MN_SCORE_GENERAL,
                              .share_embeddings = c->tie, .dropout = c->dropout, .training = training };
}

mn_s2s_opts mn_mt_model_opts(const mn_mt_cfg *c, bool training)
{
    mn_tf_opts tf = { .d_model = c->d_model, .heads = c->heads, .enc_layers = c->enc_layers, .dec_layers = c->dec_layers,
                      .ff = c->ff, .post_ln = c->post_ln, .relu = !c->gelu, .dropout = c->dropout, .training = training };
    return (mn_s2s_opts){ .src_vocab = c->vocab, .tgt_vocab = c->vocab, .max_len = c->max_len, .tf = tf,
                          .tie_weights = c->tie, .share_embeddings = c->tie };
}

/* ---- configuration as JSON ---- */

typedef enum { F_INT, F_I64, F_FLOAT, F_DOUBLE, F_BOOL, F_STR } field_kind;
typedef struct { const char *name; field_kind kind; size_t off, size; } field;
#define FLD(n, k, m) { n, k, offsetof(mn_mt_cfg, m), sizeof(((mn_mt_cfg *)0)->m) }
static const field fields[] = {
    FLD("arch", F_STR, arch), FLD("src", F_STR, src), FLD("tgt", F_STR, tgt), FLD("vocab", F_INT, vocab),
    FLD("d_model", F_INT, d_model), FLD("heads", F_INT, heads), FLD("enc_layers", F_INT, enc_layers),
    FLD("dec_layers", F_INT, dec_layers), FLD("ff", F_INT, ff), FLD("max_len", F_INT, max_len),
    FLD("post_ln", F_BOOL, post_ln), FLD("tie", F_BOOL, tie), FLD("additive", F_BOOL, additive), FLD("dropout", F_FLOAT, dropout),
    FLD("label_smoothing", F_FLOAT, label_smoothing), FLD("lr", F_FLOAT, lr), FLD("clip", F_FLOAT, clip),
    FLD("weight_decay", F_FLOAT, weight_decay), FLD("batch", F_INT, batch), FLD("warmup", F_INT, warmup),
    FLD("val_every", F_INT, val_every), FLD("val_bleu", F_INT, val_bleu), FLD("steps", F_I64, steps),
    FLD("limit", F_I64, limit), FLD("time_limit", F_DOUBLE, time_limit), FLD("seed", F_I64, seed),
    FLD("threads", F_INT, threads), FLD("gelu", F_BOOL, gelu), FLD("init_from", F_STR, init_from),
    FLD("init_map", F_STR, init_map), FLD("freeze", F_STR, freeze), FLD("lr_groups", F_STR, lr_groups),
};
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

char *mn_mt_cfg_json(const mn_mt_cfg *c)
{
    json_t *o = json_object();
    for (int i = 0; i < NFIELDS; i++) {
        const char *p = (const char *)c + fields[i].off;
        json_t *v = NULL;
        switch (fields[i].kind) {
        case F_INT: v = json_integer(*(const int *)p); break;
        case F_I64: v = json_integer(*(const int64_t *)p); break;
        case F_FLOAT: v = json_real(*(const float *)p); break;
        case F_DOUBLE: v = json_real(*(const double *)p); break;
        case F_BOOL: v = json_boolean(*(const bool *)p); break;
        case F_STR: v = json_string(p); break;
        }
        json_object_set_new(o, fields[i].name, v);
    }
    char *s = json_dumps(o, JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static mn_status set_field(mn_mt_cfg *c, const field *f, json_t *v)
{
    char *p = (char *)c + f->off;
    bool num = json_is_number(v);
    bool whole = json_is_integer(v);
    if (f->kind == F_STR) {
        if (!json_is_string(v) || json_string_length(v) >= f->size) return mn_set_error(MN_ERR_FORMAT, "config \"%s\": a string shorter than %zu bytes", f->name, f->size);
        memcpy(p, json_string_value(v), json_string_length(v) + 1);
        return MN_OK;
    }
    if (f->kind == F_BOOL) {
        if (!json_is_boolean(v)) return mn_set_error(MN_ERR_FORMAT, "config \"%s\": true or false", f->name);
        *(bool *)p = json_is_true(v);
        return MN_OK;
    }
    if (!num || ((f->kind == F_INT || f->kind == F_I64) && !whole)) return mn_set_error(MN_ERR_FORMAT, "config \"%s\": a number", f->name);
    double d = json_number_value(v);
    if (f->kind == F_INT) {
        if (json_integer_value(v) < -2147483647 || json_integer_value(v) > 2147483647) return mn_set_error(MN_ERR_FORMAT, "config \"%s\": out of range", f->name);
        *(int *)p = (int)json_integer_value(v);
    } else if (f->kind == F_I64) *(int64_t *)p = (int64_t)json_integer_value(v);
    else if (f->kind == F_FLOAT) *(float *)p = (float)d;
    else *(double *)p = d;
    return MN_OK;
}

mn_status mn_mt_cfg_parse(const char *text, mn_mt_cfg *c)
{
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    if (!json_is_object(o)) { json_decref(o); return mn_set_error(MN_ERR_FORMAT, "translation config: not a JSON object (%s)", err.text); }
    mn_mt_defaults(c);
    const char *key;
    json_t *v;
    mn_status s = MN_OK;
    json_object_foreach(o, key, v) {
        int i = 0;
        while (i < NFIELDS && strcmp(fields[i].name, key)) i++;
        if (i == NFIELDS) { s = mn_set_error(MN_ERR_FORMAT, "translation config: unknown key \"%s\"", key); break; }
        if ((s = set_field(c, &fields[i], v))) break;
    }
    json_decref(o);
    return s ? s : mn_mt_check(c);
}

/* ---- data ---- */

static mn_status encode_side(const mn_bpe *bpe, const char *text, int cap, bool eos, int32_t **ids, int *n, bool *cut)
{
    size_t len = strlen(text);
    int32_t *buf = malloc((len + 2) * sizeof *buf);
    if (!buf) return mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    int64_t k;
    mn_status s = mn_bpe_encode(bpe, text, len, buf, (int64_t)len + 1, &k);
    if (s) { free(buf); return s; }
    int keep = cap - (eos ? 1 : 0);
    *cut = k > keep;
    if (k > keep) k = keep;
    if (eos) buf[k++] = MN_BPE_EOS;
    *ids = buf;
    *n = (int)k;
    return MN_OK;
}

mn_status mn_mt_encode(const mn_bpe *bpe, const mn_parallel *p, const mn_mt_cfg *c, mn_mt_data *d)
{
    memset(d, 0, sizeof *d);
    for (int k = 0; k < 3; k++) {
        d->items[k] = calloc((size_t)(p->count[k] ? p->count[k] : 1), sizeof(mn_mt_ids));
        if (!d->items[k]) { mn_mt_data_free(d); return mn_set_error(MN_ERR_NOMEM, "translate: out of memory"); }
    }
    for (int64_t i = 0; i < p->n; i++) {
        int k = p->pairs[i].split;
        mn_mt_ids *it = &d->items[k][d->n[k]];
        bool cut_s = false, cut_t = false;
        mn_status s = encode_side(bpe, p->pairs[i].src, c->max_len, true, &it->src, &it->ns, &cut_s);
        if (!s) s = encode_side(bpe, p->pairs[i].tgt, c->max_len - 1, false, &it->tgt, &it->nt, &cut_t);
        if (s) { mn_mt_data_free(d); return s; }
        it->index = i;
        d->truncated += cut_s || cut_t;
        d->n[k]++;
    }
    return MN_OK;
}

void mn_mt_data_free(mn_mt_data *d)
{
    for (int k = 0; k < 3; k++) {
        for (int64_t i = 0; d->items[k] && i < d->n[k]; i++) { free(d->items[k][i].src); free(d->items[k][i].tgt); }
        free(d->items[k]);
    }
    memset(d, 0, sizeof *d);
}

int mn_mt_bucket(int len, int max_len)
{
    int L = (len + MN_MT_BUCKET - 1) / MN_MT_BUCKET * MN_MT_BUCKET;
    return L > max_len ? max_len : L;
}

double mn_mt_length_penalty(int len, float alpha)
{
    return pow((5.0 + len) / 6.0, (double)alpha);
}

/* ---- decoder graphs ---- */

enum { MAX_SHAPES = 4 };

typedef struct {
    int B, N, S;                 /* sentences, rows (B * beam), source length */
    mn_graph *eg, *sg;
    mn_exec *enc, *step;
    mn_node **mk, **mv;          /* encoder outputs, per layer */
    mn_node **nk, **nv;          /* step outputs: this position's keys and values */
    mn_node *logp;               /* [N, V] */
    float **ck, **cv, **smk, **smv;   /* step input buffers: caches and memory */
    float *pad;                  /* step input [N, S] */
    int32_t *tok, *pos;
    /* lstm-attn: encoder outputs, step state inputs and outputs */
    mn_rnn_memory mem;
    float *enc_buf, *keys, *state[3];
    mn_node *next[3];            /* h, c, feed */
} shape_set;

struct mn_mt_decoder {
    mn_params *P;
    mn_mt_cfg c;
    mn_s2s_opts o;
    shape_set sets[MAX_SHAPES];
    int next;
    float *tmp;                  /* cache reordering */
    int64_t tmp_n;
};

mn_mt_decoder *mn_mt_decoder_new(mn_params *P, const mn_mt_cfg *c)
{
    mn_mt_decoder *d = calloc(1, sizeof *d);
    if (!d) { mn_set_error(MN_ERR_NOMEM, "translate: out of memory"); return NULL; }
    d->P = P;
    d->c = *c;
    d->o = mn_mt_model_opts(c, false);
    return d;
}

static void set_free(shape_set *s)
{
    mn_exec_free(s->enc);
    mn_exec_free(s->step);
    mn_graph_free(s->eg);
    mn_graph_free(s->sg);
    void *arrays[] = { s->mk, s->mv, s->nk, s->nv, s->ck, s->cv, s->smk, s->smv };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    memset(s, 0, sizeof *s);
}

void mn_mt_decoder_free(mn_mt_decoder *d)
{
    if (!d) return;
    for (int i = 0; i < MAX_SHAPES; i++) set_free(&d->sets[i]);
    free(d->tmp);
    free(d);
}

static void *input_buffer(mn_exec *ex, const char *name)
{
    for (int i = 0; i < mn_exec_input_count(ex); i++)
        if (!strcmp(mn_exec_input_name(ex, i), name)) return mn_exec_input(ex, i)->data;
    return NULL;
}

static mn_status compile_outputs(mn_graph *g, const mn_node **outs, int n, int threads, mn_exec **ex)
{
    mn_compile_opts co = { .threads = threads, .outputs = outs, .noutputs = n };
    *ex = mn_graph_status(g) ? NULL : mn_compile(g, NULL, mn_tools_compile_opts(&co));
    return *ex ? MN_OK : mn_set_error(mn_graph_status(g) ? mn_graph_status(g) : MN_ERR_INVALID, "translate: %s", mn_graph_errmsg(g));
}

static mn_status build_lstm(mn_mt_decoder *d, shape_set *s, int threads)
{
    mn_rnn_s2s_opts o = mn_mt_rnn_opts(&d->c, false);
    int H = d->c.d_model;
    s->eg = mn_graph_new(d->P);
    mn_graph *g = s->eg;
    s->mem = mn_rnn_seq2seq_encode(g, MN_MT_PREFIX, mn_input(g, "src", MN_I32, MN_SHAPE(s->B, s->S)), o);
    const mn_node *eo[2] = { s->mem.enc, s->mem.keys };
    mn_status st = compile_outputs(g, eo, 2, threads, &s->enc);
    if (st) return st;
    s->sg = mn_graph_new(d->P);
    g = s->sg;
    mn_rnn_memory m = { mn_input(g, "enc", MN_F32, MN_SHAPE(s->N, s->S, H)), mn_input(g, "keys", MN_F32, MN_SHAPE(s->N, s->S, H)) };
    mn_node *h = mn_input(g, "h", MN_F32, MN_SHAPE(s->N, H)), *c = mn_input(g, "c", MN_F32, MN_SHAPE(s->N, H));
    mn_node *feed = mn_input(g, "feed", MN_F32, MN_SHAPE(s->N, H));
    mn_rnn_s2s_step r = mn_rnn_seq2seq_step(g, MN_MT_PREFIX, mn_input(g, "tok", MN_I32, MN_SHAPE(s->N)), h, c, feed, m,
                                            mn_input(g, "mem_pad", MN_F32, MN_SHAPE(s->N, s->S)), o);
    s->logp = mn_log_softmax(g, r.logits, -1);
    s->next[0] = r.h; s->next[1] = r.c; s->next[2] = r.feed;
    const mn_node *so[4] = { s->logp, r.h, r.c, r.feed };
    if ((st = compile_outputs(g, so, 4, threads, &s->step))) return st;
    static const char *const names[3] = { "h", "c", "feed" };
    for (int k = 0; k < 3; k++) s->state[k] = input_buffer(s->step, names[k]);
    s->enc_buf = input_buffer(s->step, "enc");
    s->keys = input_buffer(s->step, "keys");
    s->pad = input_buffer(s->step, "mem_pad");
    s->tok = input_buffer(s->step, "tok");
    for (int k = 0; k < 3; k++) memset(s->state[k], 0, (size_t)s->N * H * sizeof(float));
    return MN_OK;
}

static mn_status build_encoder(mn_mt_decoder *d, shape_set *s, int threads)
{
    s->eg = mn_graph_new(d->P);
    mn_graph *g = s->eg;
    mn_node *src = mn_input(g, "src", MN_I32, MN_SHAPE(s->B, s->S));
    mn_node *pad = mn_input(g, "src_pad", MN_F32, MN_SHAPE(s->B, s->S));
    int L = d->c.dec_layers;
    mn_node *memory = mn_seq2seq_encode(g, MN_MT_PREFIX, src, pad, d->o);
    if (!memory || mn_seq2seq_memory_kv(g, MN_MT_PREFIX, memory, d->o, s->mk, s->mv))
        return mn_set_error(mn_graph_status(g), "translate: %s", mn_graph_errmsg(g));
    const mn_node **outs = malloc((size_t)(2 * L) * sizeof *outs);
    if (!outs) return mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    for (int l = 0; l < L; l++) { outs[2 * l] = s->mk[l]; outs[2 * l + 1] = s->mv[l]; }
    mn_compile_opts co = { .threads = threads, .outputs = outs, .noutputs = 2 * L };
    s->enc = mn_compile(g, NULL, mn_tools_compile_opts(&co));
    free(outs);
    return s->enc ? MN_OK : mn_set_error(mn_graph_status(g), "translate: %s", mn_graph_errmsg(g));
}

static mn_status build_step(mn_mt_decoder *d, shape_set *s, int threads)
{
    s->sg = mn_graph_new(d->P);
    mn_graph *g = s->sg;
    int L = d->c.dec_layers, H = d->c.heads, dh = d->c.d_model / d->c.heads, T = d->c.max_len;
    mn_node **in[4] = { malloc(L * sizeof(mn_node *)), malloc(L * sizeof(mn_node *)), malloc(L * sizeof(mn_node *)),
                        malloc(L * sizeof(mn_node *)) };
    static const char *const names[4] = { "sk", "sv", "mk", "mv" };
    char n[32];
    for (int k = 0; k < 4; k++)
        for (int l = 0; in[k] && l < L; l++) {
            snprintf(n, sizeof n, "%s%d", names[k], l);
            in[k][l] = mn_input(g, n, MN_F32, k < 2 ? MN_SHAPE(s->N, H, T, dh) : MN_SHAPE(s->N, H, s->S, dh));
        }
    mn_s2s_step st = { .token = mn_input(g, "tok", MN_I32, MN_SHAPE(s->N, 1)), .pos = mn_input(g, "pos", MN_I32, MN_SHAPE(1)),
                       .self_k = in[0], .self_v = in[1], .mem_k = in[2], .mem_v = in[3],
                       .mem_pad = mn_input(g, "mem_pad", MN_F32, MN_SHAPE(s->N, s->S)), .new_k = s->nk, .new_v = s->nv };
    mn_node *logits = in[0] && in[1] && in[2] && in[3] ? mn_seq2seq_step(g, MN_MT_PREFIX, &st, d->o) : NULL;
    s->logp = mn_log_softmax(g, mn_reshape(g, logits, MN_SHAPE(s->N, d->c.vocab)), -1);
    for (int k = 0; k < 4; k++) free(in[k]);
    if (!s->logp) return mn_set_error(mn_graph_status(g) ? mn_graph_status(g) : MN_ERR_NOMEM, "translate: %s", mn_graph_errmsg(g));
    const mn_node **outs = malloc((size_t)(2 * L + 1) * sizeof *outs);
    if (!outs) return mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    outs[0] = s->logp;
    for (int l = 0; l < L; l++) { outs[1 + 2 * l] = s->nk[l]; outs[2 + 2 * l] = s->nv[l]; }
    mn_compile_opts co = { .threads = threads, .outputs = outs, .noutputs = 2 * L + 1 };
    s->step = mn_compile(g, NULL, mn_tools_compile_opts(&co));
    free(outs);
    if (!s->step) return mn_set_error(mn_graph_status(g), "translate: %s", mn_graph_errmsg(g));
    float **bufs[4] = { s->ck, s->cv, s->smk, s->smv };
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < L; l++) {
            snprintf(n, sizeof n, "%s%d", names[k], l);
            bufs[k][l] = input_buffer(s->step, n);
        }
    s->pad = input_buffer(s->step, "mem_pad");
    s->tok = input_buffer(s->step, "tok");
    s->pos = input_buffer(s->step, "pos");
    return MN_OK;
}

static mn_status get_set(mn_mt_decoder *d, int B, int N, int S, int threads, shape_set **out)
{
    for (int i = 0; i < MAX_SHAPES; i++)
        if (d->sets[i].enc && d->sets[i].B == B && d->sets[i].N == N && d->sets[i].S == S) { *out = &d->sets[i]; return MN_OK; }
    shape_set *s = &d->sets[d->next];
    d->next = (d->next + 1) % MAX_SHAPES;
    set_free(s);
    s->B = B; s->N = N; s->S = S;
    int L = d->c.dec_layers;
    void **arrays[] = { (void **)&s->mk, (void **)&s->mv, (void **)&s->nk, (void **)&s->nv,
                        (void **)&s->ck, (void **)&s->cv, (void **)&s->smk, (void **)&s->smv };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        if (!(*arrays[i] = calloc((size_t)L, sizeof(void *)))) { set_free(s); return mn_set_error(MN_ERR_NOMEM, "translate: out of memory"); }
    mn_status st = mn_mt_is_lstm(&d->c) ? build_lstm(d, s, threads) : build_encoder(d, s, threads);
    if (!st && !mn_mt_is_lstm(&d->c)) st = build_step(d, s, threads);
    if (st) { set_free(s); return st; }
    *out = s;
    return MN_OK;
}

/* ---- search ---- */

typedef struct {
    int K, N, T, V;
    double *score;               /* [N] cumulative log-probability, -inf: no hypothesis */
    int32_t *hist, *hist2;       /* [N, T] tokens */
    int *parent;                 /* [N] */
    bool *done;                  /* per sentence */
    int *nfin;                   /* finished hypotheses per sentence */
    double *best;                /* best normalised finished score per sentence */
    int32_t **best_ids;
    int *best_len;
} beam_state;

static void beam_free(beam_state *b)
{
    free(b->score); free(b->hist); free(b->hist2); free(b->parent); free(b->done); free(b->nfin); free(b->best);
    free(b->best_len);
    free(b->best_ids);
}

static mn_status beam_init(beam_state *b, int B, int K, int T, int V)
{
    memset(b, 0, sizeof *b);
    b->K = K; b->N = B * K; b->T = T; b->V = V;
    b->score = malloc((size_t)b->N * sizeof *b->score);
    b->hist = calloc((size_t)b->N * (size_t)T, sizeof *b->hist);
    b->hist2 = calloc((size_t)b->N * (size_t)T, sizeof *b->hist2);
    b->parent = malloc((size_t)b->N * sizeof *b->parent);
    b->done = calloc((size_t)B, sizeof *b->done);
    b->nfin = calloc((size_t)B, sizeof *b->nfin);
    b->best = malloc((size_t)B * sizeof *b->best);
    b->best_ids = calloc((size_t)B, sizeof *b->best_ids);
    b->best_len = calloc((size_t)B, sizeof *b->best_len);
    if (!b->score || !b->hist || !b->hist2 || !b->parent || !b->done || !b->nfin || !b->best || !b->best_ids || !b->best_len) {
        beam_free(b);
        return mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    }
    for (int r = 0; r < b->N; r++) b->score[r] = r % K ? -INFINITY : 0.0;
    for (int i = 0; i < B; i++) b->best[i] = -INFINITY;
    return MN_OK;
}

typedef struct { double s; int row; int32_t tok; } cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return x->tok < y->tok ? -1 : x->tok > y->tok;
}

/* Keeps the 2K best candidates of sentence i in c (sorted). */
static int top_candidates(const beam_state *b, const float *logp, int i, cand *c)
{
    int K = b->K, n = 0, keep = 2 * K;
    for (int j = 0; j < K; j++) {
        int r = i * K + j;
        if (!isfinite(b->score[r])) continue;
        for (int v = 0; v < b->V; v++) {
            if (v == MN_BPE_PAD || v == MN_BPE_BOS) continue;
            cand x = { b->score[r] + logp[(int64_t)r * b->V + v], r, v };
            if (n == keep && cand_cmp(&x, &c[n - 1]) >= 0) continue;
            int at = n < keep ? n++ : n - 1;
            while (at > 0 && cand_cmp(&x, &c[at - 1]) < 0) { c[at] = c[at - 1]; at--; }
            c[at] = x;
        }
    }
    return n;
}

static void finish(beam_state *b, int i, const cand *x, int t, bool eos, float alpha)
{
    int len = t + 1;
    double norm = x->s / mn_mt_length_penalty(len, alpha);
    b->nfin[i]++;
    if (norm <= b->best[i]) return;
    b->best[i] = norm;
    int n = eos ? t : t + 1;
    int32_t *ids = realloc(b->best_ids[i], (size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) return;
    memcpy(ids, b->hist + (int64_t)x->row * b->T, (size_t)t * sizeof *ids);
    if (!eos) ids[t] = x->tok;
    b->best_ids[i] = ids;
    b->best_len[i] = n;
}

/* One step of sentence i: new rows (parent, score, token) from the sorted
 * candidates; finished ones leave the beam. */
static void advance(beam_state *b, int i, const cand *c, int n, int t, bool last, float alpha)
{
    int K = b->K, live = 0;
    for (int k = 0; k < n && live < K; k++) {
        if (c[k].tok == MN_BPE_EOS || last) { finish(b, i, &c[k], t, c[k].tok == MN_BPE_EOS, alpha); continue; }
        int r = i * K + live++;
        b->parent[r] = c[k].row;
        b->score[r] = c[k].s;
        memcpy(b->hist2 + (int64_t)r * b->T, b->hist + (int64_t)c[k].row * b->T, (size_t)t * sizeof(int32_t));
        b->hist2[(int64_t)r * b->T + t] = c[k].tok;
    }
    for (int j = live; j < K; j++) { b->parent[i * K + j] = i * K + j; b->score[i * K + j] = -INFINITY; }
    if (b->nfin[i] >= K || live == 0 || last) b->done[i] = true;
}

/* Stores this position's keys/values in slot t, then gathers every row's
 * slots 0..t from its parent. */
/* lstm-attn: every row's next state is its parent's new state. */
static void update_state(mn_mt_decoder *d, shape_set *s, const beam_state *b)
{
    int64_t H = d->c.d_model;
    for (int k = 0; k < 3; k++) {
        const float *nw = mn_f32(mn_exec_value(s->step, s->next[k]));
        for (int64_t r = 0; r < s->N; r++) memcpy(s->state[k] + r * H, nw + b->parent[r] * H, (size_t)H * sizeof(float));
    }
}

static mn_status update_caches(mn_mt_decoder *d, shape_set *s, const beam_state *b, int t)
{
    if (mn_mt_is_lstm(&d->c)) { update_state(d, s, b); return MN_OK; }
    int L = d->c.dec_layers, H = d->c.heads, dh = d->c.d_model / d->c.heads, T = d->c.max_len;
    int64_t row = (int64_t)H * T * dh, need = (int64_t)s->N * row;
    if (d->tmp_n < need) {
        float *p = realloc(d->tmp, (size_t)need * sizeof *p);
        if (!p) return mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
        d->tmp = p;
        d->tmp_n = need;
    }
    for (int l = 0; l < L; l++)
        for (int kv = 0; kv < 2; kv++) {
            float *cache = kv ? s->cv[l] : s->ck[l];
            const float *nw = mn_f32(mn_exec_value(s->step, kv ? s->nv[l] : s->nk[l]));
            for (int64_t r = 0; r < s->N; r++)
                for (int h = 0; h < H; h++)
                    memcpy(cache + r * row + ((int64_t)h * T + t) * dh, nw + (r * H + h) * dh, (size_t)dh * sizeof(float));
            if (b->K == 1) continue;
            for (int64_t r = 0; r < s->N; r++)
                for (int h = 0; h < H; h++)
                    memcpy(d->tmp + r * row + (int64_t)h * T * dh, cache + b->parent[r] * row + (int64_t)h * T * dh,
                           (size_t)(t + 1) * dh * sizeof(float));
            for (int64_t r = 0; r < s->N; r++)
                for (int h = 0; h < H; h++)
                    memcpy(cache + r * row + (int64_t)h * T * dh, d->tmp + r * row + (int64_t)h * T * dh,
                           (size_t)(t + 1) * dh * sizeof(float));
        }
    return MN_OK;
}

/* Encoder run, then the memory and padding copied to every beam row. */
static mn_status encode_batch(mn_mt_decoder *d, shape_set *s, int32_t *const *src, const int *src_len, int n, int K)
{
    int32_t *stok = input_buffer(s->enc, "src");
    float *spad = input_buffer(s->enc, "src_pad");     /* NULL when the encoder reads no mask (lstm-attn) */
    for (int i = 0; i < s->B; i++)
        for (int j = 0; j < s->S; j++) {
            bool real = i < n && j < src_len[i];
            stok[i * s->S + j] = real ? src[i][j] : MN_BPE_PAD;
            if (spad) spad[i * s->S + j] = real ? 0.0f : 1.0f;
        }
    mn_status st = mn_exec_run(s->enc);
    if (st) return mn_set_error(st, "translate: %s", mn_exec_errmsg(s->enc));
    int64_t per = (int64_t)d->c.d_model * s->S;    /* H * S * dh per sentence */
    if (mn_mt_is_lstm(&d->c)) {
        const float *e = mn_f32(mn_exec_value(s->enc, s->mem.enc)), *k = mn_f32(mn_exec_value(s->enc, s->mem.keys));
        for (int r = 0; r < s->N; r++) {
            memcpy(s->enc_buf + r * per, e + (r / K) * per, (size_t)per * sizeof(float));
            memcpy(s->keys + r * per, k + (r / K) * per, (size_t)per * sizeof(float));
        }
        for (int j = 0; j < 3; j++) memset(s->state[j], 0, (size_t)per / s->S * s->N * sizeof(float));
    }
    for (int l = 0; l < d->c.dec_layers && !mn_mt_is_lstm(&d->c); l++) {
        const float *mk = mn_f32(mn_exec_value(s->enc, s->mk[l])), *mv = mn_f32(mn_exec_value(s->enc, s->mv[l]));
        for (int r = 0; r < s->N; r++) {
            memcpy(s->smk[l] + r * per, mk + (r / K) * per, (size_t)per * sizeof(float));
            memcpy(s->smv[l] + r * per, mv + (r / K) * per, (size_t)per * sizeof(float));
        }
    }
    for (int r = 0; r < s->N; r++)
        for (int j = 0; j < s->S; j++) s->pad[(int64_t)r * s->S + j] = r / K < n && j < src_len[r / K] ? 0.0f : 1.0f;
    return MN_OK;
}

static mn_status search(mn_mt_decoder *d, shape_set *s, const mn_mt_search *q, int n, beam_state *b)
{
    int K = q->beam, T = q->max_len > 0 && q->max_len < d->c.max_len ? q->max_len : d->c.max_len - 1;
    cand *c = malloc((size_t)(2 * K) * sizeof *c);
    if (!c) return mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    for (int i = n; i < s->B; i++) b->done[i] = true;
    mn_status st = MN_OK;
    for (int t = 0; t < T && !st; t++) {
        bool all = true;
        for (int i = 0; i < s->B; i++) all = all && b->done[i];
        if (all) break;
        for (int r = 0; r < s->N; r++) s->tok[r] = t == 0 ? MN_BPE_BOS : b->hist[(int64_t)r * b->T + t - 1];
        if (s->pos) *s->pos = t;
        if ((st = mn_exec_run(s->step))) { st = mn_set_error(st, "translate: %s", mn_exec_errmsg(s->step)); break; }
        const float *logp = mn_f32(mn_exec_value(s->step, s->logp));
        for (int r = 0; r < s->N; r++) b->parent[r] = r;
        for (int i = 0; i < s->B; i++) {
            if (b->done[i]) continue;
            int m = top_candidates(b, logp, i, c);
            advance(b, i, c, m, t, t == T - 1, q->alpha);
        }
        for (int i = 0; i < s->B; i++)
            if (b->done[i] && i < n)
                for (int j = 0; j < K; j++) b->parent[i * K + j] = i * K + j;
        int32_t *h = b->hist;
        b->hist = b->hist2;
        b->hist2 = h;
        memcpy(b->hist2, b->hist, (size_t)b->N * (size_t)b->T * sizeof *h);
        st = update_caches(d, s, b, t);
    }
    free(c);
    return st;
}

static mn_status translate_batch(mn_mt_decoder *d, const mn_mt_search *q, int32_t *const *src, const int *src_len, int n, int S,
                                 int32_t **out, int *out_len, double *score)
{
    shape_set *s = NULL;
    mn_status st = get_set(d, n, n * q->beam, S, q->threads, &s);
    if (st) return st;
    beam_state b;
    if ((st = beam_init(&b, n, q->beam, d->c.max_len, d->c.vocab))) return st;
    st = encode_batch(d, s, src, src_len, n, q->beam);
    if (!st) st = search(d, s, q, n, &b);
    for (int i = 0; i < n; i++) {
        out[i] = st ? NULL : b.best_ids[i];
        out_len[i] = st ? 0 : b.best_len[i];
        if (score) score[i] = b.best[i];
        if (st) free(b.best_ids[i]);
        if (!st && !out[i]) out[i] = calloc(1, sizeof(int32_t));
    }
    beam_free(&b);
    return st;
}

/* lstm-attn reads padding in its reverse direction (training batches are
 * padded to a multiple of MN_MT_BUCKET tokens): each sentence is padded to
 * its own bucket, as most are in training, and decoded with the others of
 * that bucket, so a translation never depends on what else is in the batch. */
static mn_status translate_by_length(mn_mt_decoder *d, const mn_mt_search *q, int32_t *const *src, const int *src_len, int n,
                                     int32_t **out, int *out_len, double *score)
{
    int32_t **gs = malloc((size_t)n * sizeof *gs), **go = malloc((size_t)n * sizeof *go);
    int *gl = malloc((size_t)n * sizeof *gl), *gol = malloc((size_t)n * sizeof *gol), *at = malloc((size_t)n * sizeof *at);
    double *gsc = malloc((size_t)n * sizeof *gsc);
    mn_status st = gs && go && gl && gol && at && gsc ? MN_OK : mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    for (int i = 0; i < n; i++) out[i] = NULL;
    for (int i = 0; i < n && !st; i++) {
        if (out[i]) continue;
        int m = 0;
        for (int k = i; k < n; k++)
            if (!out[k] && mn_mt_bucket(src_len[k], d->c.max_len) == mn_mt_bucket(src_len[i], d->c.max_len)) {
                gs[m] = src[k]; gl[m] = src_len[k]; at[m++] = k;
            }
        st = translate_batch(d, q, gs, gl, m, mn_mt_bucket(src_len[i], d->c.max_len), go, gol, gsc);
        for (int k = 0; k < m && !st; k++) {
            out[at[k]] = go[k];
            out_len[at[k]] = gol[k];
            if (score) score[at[k]] = gsc[k];
        }
    }
    for (int i = 0; st && i < n; i++) { free(out[i]); out[i] = NULL; out_len[i] = 0; }
    free(gs); free(go); free(gl); free(gol); free(at); free(gsc);
    return st;
}

mn_status mn_mt_translate_ids(mn_mt_decoder *d, const mn_mt_search *q, int32_t *const *src, const int *src_len, int n,
                              int32_t **out, int *out_len, double *score)
{
    if (!d || !q || q->beam < 1 || q->beam > 64 || n < 1) return mn_set_error(MN_ERR_INVALID, "translate: beam must be 1..64, sentences >= 1");
    int S = 1;
    for (int i = 0; i < n; i++) {
        if (src_len[i] < 1 || src_len[i] > d->c.max_len) return mn_set_error(MN_ERR_INVALID, "translate: sentence %d has %d tokens (1..%d)", i, src_len[i], d->c.max_len);
        S = src_len[i] > S ? src_len[i] : S;
    }
    if (mn_mt_is_lstm(&d->c)) return translate_by_length(d, q, src, src_len, n, out, out_len, score);
    S = (S + 7) / 8 * 8;
    return translate_batch(d, q, src, src_len, n, S > d->c.max_len ? d->c.max_len : S, out, out_len, score);
}

enum { TEXT_BATCH = 16 };

/* Byte-level tokens can end mid-character: each byte that does not start a
 * valid UTF-8 sequence becomes U+FFFD, so the output is always valid text. */
static char *valid_utf8(char *s, size_t n)
{
    size_t ok = mn_utf8_valid_prefix(s, n);
    if (ok == n) return s;
    char *out = malloc(3 * n + 1);
    if (!out) return s;
    size_t w = 0, i = 0;
    while (i < n) {
        size_t k = mn_utf8_valid_prefix(s + i, n - i);
        memcpy(out + w, s + i, k);
        w += k;
        i += k;
        if (i < n) { memcpy(out + w, "\xEF\xBF\xBD", 3); w += 3; i++; }
    }
    out[w] = 0;
    free(s);
    return out;
}

static mn_status translate_chunk(mn_mt_decoder *d, const mn_bpe *bpe, const mn_mt_search *q, const char *const *in, int n, char **outs)
{
    int32_t *src[TEXT_BATCH] = { 0 }, *ids[TEXT_BATCH] = { 0 };
    int len[TEXT_BATCH], olen[TEXT_BATCH];
    bool cut;
    mn_status st = MN_OK;
    for (int i = 0; i < n && !st; i++) st = encode_side(bpe, in[i], d->c.max_len, true, &src[i], &len[i], &cut);
    if (!st) st = mn_mt_translate_ids(d, q, src, len, n, ids, olen, NULL);
    for (int i = 0; i < n; i++) {
        size_t cap = 1;
        for (int k = 0; !st && k < olen[i]; k++) { size_t l; mn_bpe_token(bpe, ids[i][k], &l); cap += l; }
        outs[i] = st ? NULL : malloc(cap);
        size_t got;
        if (!st && !outs[i]) st = mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
        if (!st) st = mn_bpe_decode(bpe, ids[i], olen[i], outs[i], cap, &got);
        if (!st) outs[i] = valid_utf8(outs[i], got);
        free(src[i]);
        free(ids[i]);
    }
    return st;
}

mn_status mn_mt_translate_text(mn_mt_decoder *d, const mn_bpe *bpe, const mn_mt_search *q, const char *const *in, int n, char **outs)
{
    for (int i = 0; i < n; i++) outs[i] = NULL;
    int per = q->batch > 0 && q->batch < TEXT_BATCH ? q->batch : TEXT_BATCH;
    for (int i = 0; i < n; i += per) {
        int m = n - i < per ? n - i : per;
        mn_status st = translate_chunk(d, bpe, q, in + i, m, outs + i);
        if (st) {
            for (int k = 0; k < n; k++) { free(outs[k]); outs[k] = NULL; }
            return st;
        }
    }
    return MN_OK;
}
