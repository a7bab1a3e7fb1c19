/* tools/translate.h: the translation application around models/seq2seq.c:
 * its configuration (stored in the checkpoint as JSON beside the BPE),
 * sentence pairs encoded and batched by length, and the decoders (greedy
 * and beam search with GNMT's length penalty) that run the cached one-step
 * graph of mn_seq2seq_step. Used by tools/cmd_translate.c. */
#ifndef MN_TOOLS_TRANSLATE_H
#define MN_TOOLS_TRANSLATE_H

#include "mnemo.h"
#include "bpe.h"
#include "parallel.h"

#define MN_MT_META_CONFIG "mnemo.translate"
#define MN_MT_META_BPE "mnemo.bpe"
#define MN_MT_PREFIX "mt"

typedef struct {
    char arch[16];               /* transformer, lstm-attn (d_model = embedding = decoder hidden = 2 x encoder hidden) */
    char src[512], tgt[512];     /* two mod2imp dumps or two aligned text files */
    int vocab;                   /* joint BPE vocabulary (ids) */
    int d_model, heads, enc_layers, dec_layers, ff, max_len;
    bool post_ln, tie;           /* tie: generator = target embedding, and one table for both sides */
    bool additive;               /* lstm-attn: Bahdanau scores (default: Luong's general) */
    float dropout, label_smoothing, lr, clip, weight_decay;
    int batch, warmup, val_every, val_bleu;   /* val_bleu: validation sentences translated for BLEU */
    int64_t steps, limit;        /* limit: training pairs used (0: all) */
    double time_limit;
    uint64_t seed;
    int threads;
    bool gelu;                   /* feed-forward activation GELU (default ReLU, as nn.Transformer) */
    /* fine-tuning (docs/finetuning.md): stored so a resumed run keeps them */
    char init_from[512], init_map[512], freeze[512], lr_groups[512];
} mn_mt_cfg;

void      mn_mt_defaults(mn_mt_cfg *c);
mn_status mn_mt_check(const mn_mt_cfg *c);
char     *mn_mt_cfg_json(const mn_mt_cfg *c);              /* malloc'd */
mn_status mn_mt_cfg_parse(const char *json, mn_mt_cfg *c);
mn_s2s_opts mn_mt_model_opts(const mn_mt_cfg *c, bool training);
bool        mn_mt_is_lstm(const mn_mt_cfg *c);
mn_rnn_s2s_opts mn_mt_rnn_opts(const mn_mt_cfg *c, bool training);

/* A pair as ids: src then </s>; tgt (without <s> or </s>). */
typedef struct { int32_t *src, *tgt; int ns, nt; int64_t index; } mn_mt_ids;
typedef struct {
    mn_mt_ids *items[3];         /* per split */
    int64_t n[3];
    int64_t truncated;           /* pairs cut to max_len */
} mn_mt_data;

/* Encodes every pair (sides cut to max_len - 1 tokens). */
mn_status mn_mt_encode(const mn_bpe *bpe, const mn_parallel *p, const mn_mt_cfg *c, mn_mt_data *d);
void      mn_mt_data_free(mn_mt_data *d);

/* Training batches pad to multiples of MN_MT_BUCKET tokens (at most max_len). */
#define MN_MT_BUCKET 16
int mn_mt_bucket(int len, int max_len);

/* GNMT length penalty ((5 + len) / 6)^alpha (Wu et al. 2016). */
double mn_mt_length_penalty(int len, float alpha);

/* Decoding: one graph set per batch shape, reused across calls. */
typedef struct mn_mt_decoder mn_mt_decoder;
typedef struct {
    int beam;          /* 1: greedy */
    float alpha;       /* length penalty; 0: none */
    int max_len;       /* output tokens at most (0: the model's max_len - 1) */
    int threads;
    int batch;         /* sentences decoded together by mn_mt_translate_text, 1..16 (0: 16) */
} mn_mt_search;
mn_mt_decoder *mn_mt_decoder_new(mn_params *P, const mn_mt_cfg *c);
void           mn_mt_decoder_free(mn_mt_decoder *d);
/* Translates n source sentences (ids ending in </s>, each at most the
 * model's max_len). out[i] gets a malloc'd id array (no specials) of
 * length out_len[i]; score[i] (may be NULL) the chosen hypothesis's
 * log-probability (summed over its tokens and </s>) divided by the length
 * penalty. */
mn_status mn_mt_translate_ids(mn_mt_decoder *d, const mn_mt_search *s, int32_t *const *src, const int *src_len, int n,
                              int32_t **out, int *out_len, double *score);
/* Text in, text out: the BPE of the checkpoint, n sentences; outs malloc'd. */
mn_status mn_mt_translate_text(mn_mt_decoder *d, const mn_bpe *bpe, const mn_mt_search *s, const char *const *in, int n,
                               char **outs);

#endif
