/* tools/cmd_translate.c: `mnemo train --model translate`, `mnemo translate`
 * and `mnemo eval` of a translation checkpoint. Training learns a joint
 * BPE on the training split, batches pairs of similar length (one graph
 * per length bucket), validates (loss, greedy BLEU and chrF) and keeps the
 * best checkpoint, which holds the BPE, the configuration and the loop
 * state (--resume continues exactly); --init-from and friends start from
 * another checkpoint's weights (tools/finetune.c). */
#include "cmds.h"
#include "bleu.h"
#include "env.h"
#include "finetune.h"
#include "train.h"
#include "translate.h"
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BUCKET MN_MT_BUCKET
enum { MAX_GRAPHS = 8 };

/* ---- options ---- */

enum { O_ARCH = 256, O_SRC, O_TGT, O_OUT, O_VOCAB, O_DMODEL, O_HEADS, O_LAYERS, O_ENC, O_DEC, O_FF, O_MAXLEN, O_POSTLN,
       O_NOTIE, O_DROPOUT, O_LS, O_LR, O_CLIP, O_WD, O_BATCH, O_WARMUP, O_STEPS, O_TIME, O_LIMIT, O_VALEVERY, O_VALBLEU,
       O_SEED, O_THREADS, O_FORCE, O_MODEL, O_METRICS, O_EXPORT, O_ADDITIVE, O_RESUME, O_GELU, O_INIT_FROM, O_INIT_MAP,
       O_FREEZE, O_LR_GROUPS };
static const struct option train_opts[] = {
    { "model", 1, 0, O_MODEL }, { "arch", 1, 0, O_ARCH }, { "src", 1, 0, O_SRC }, { "tgt", 1, 0, O_TGT }, { "out", 1, 0, O_OUT },
    { "vocab", 1, 0, O_VOCAB }, { "d-model", 1, 0, O_DMODEL }, { "heads", 1, 0, O_HEADS }, { "layers", 1, 0, O_LAYERS },
    { "enc-layers", 1, 0, O_ENC }, { "dec-layers", 1, 0, O_DEC }, { "ff", 1, 0, O_FF }, { "max-len", 1, 0, O_MAXLEN },
    { "post-ln", 0, 0, O_POSTLN }, { "no-tie", 0, 0, O_NOTIE }, { "dropout", 1, 0, O_DROPOUT }, { "label-smoothing", 1, 0, O_LS },
    { "lr", 1, 0, O_LR }, { "clip", 1, 0, O_CLIP }, { "weight-decay", 1, 0, O_WD }, { "batch", 1, 0, O_BATCH },
    { "warmup", 1, 0, O_WARMUP }, { "steps", 1, 0, O_STEPS }, { "time", 1, 0, O_TIME }, { "limit", 1, 0, O_LIMIT },
    { "val-every", 1, 0, O_VALEVERY }, { "val-bleu", 1, 0, O_VALBLEU }, { "seed", 1, 0, O_SEED }, { "threads", 1, 0, O_THREADS },
    { "force", 0, 0, O_FORCE }, { "metrics", 1, 0, O_METRICS }, { "export-ids", 1, 0, O_EXPORT }, { "additive", 0, 0, O_ADDITIVE },
    { "resume", 1, 0, O_RESUME }, { "gelu", 0, 0, O_GELU }, { "init-from", 1, 0, O_INIT_FROM }, { "init-map", 1, 0, O_INIT_MAP },
    { "freeze", 1, 0, O_FREEZE }, { "lr-groups", 1, 0, O_LR_GROUPS }, { "help", 0, 0, 'h' },
    { 0, 0, 0, 0 }
};

static void train_usage(FILE *f)
{
    fprintf(f, "usage: mnemo train --model translate [--src FILE --tgt FILE] [--out CKPT] [--force]\n"
               "         [--arch transformer|lstm-attn [--additive]] [--vocab N] [--d-model N] [--heads N] [--layers N | --enc-layers N --dec-layers N]\n"
               "         [--ff N] [--max-len N] [--post-ln] [--no-tie] [--dropout P] [--label-smoothing E] [--lr LR]\n"
               "         [--clip NORM] [--weight-decay W] [--batch TOKENS] [--warmup STEPS] [--steps N] [--time SECONDS]\n"
               "         [--limit PAIRS] [--val-every STEPS] [--val-bleu SENTENCES] [--seed N] [--threads N] [--metrics FILE]\n"
               "         [--export-ids FILE] [--gelu] [--resume CKPT]\n"
               "         [--init-from CKPT] [--init-map FILE] [--freeze PATTERNS] [--lr-groups 'PATTERN=LR,...']\n"
               "Trains an encoder-decoder Transformer (or an LSTM with attention) on verse pairs: two mod2imp dumps (default: KJV -> Reina-Valera 1909\n"
               "from scripts/make-parallel.sh) or two aligned text files. A joint BPE of --vocab ids is learned on the\n"
               "training split and stored in the checkpoint. Validation (loss, greedy BLEU and chrF) every --val-every\n"
               "steps keeps the best checkpoint in --out (default translate.safetensors). --export-ids writes the encoded\n"
               "pairs (split, source ids, target ids, target text; tab-separated) for other trainers (scripts/mt_torch.py).\n"
               "--resume continues a run exactly from its checkpoint (X or X.last; only --steps, --time, --threads,\n"
               "--val-every, --val-bleu, --out, --metrics and --force may change). --init-from starts from another\n"
               "checkpoint's weights (renamed by --init-map rules \"FROM -> TO\"), --freeze keeps parameters fixed,\n"
               "--lr-groups gives some their own learning rate (docs/finetuning.md). See docs/translation.md.\n");
}

static bool num(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi)) { fprintf(stderr, "mnemo train: --%s %s: a number in [%g, %g]\n", flag, v, lo, hi); return false; }
    *out = d;
    return true;
}

static bool text_flag(const char *flag, const char *v, char *dst, size_t cap)
{
    if (!*v || strlen(v) >= cap) { fprintf(stderr, "mnemo train: --%s: empty, or longer than %zu bytes\n", flag, cap - 1); return false; }
    snprintf(dst, cap, "%s", v);
    return true;
}

static bool integer(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    return mn_cfg_parse_int("train", flag, v, lo, hi, out);
}

typedef struct { bool force; const char *out, *metrics, *export_ids; } run_flags;

static bool apply(mn_mt_cfg *c, int o, const char *v, run_flags *rf)
{
    int64_t i = 0;
    double d = 0;
    switch (o) {
    case O_MODEL: if (strcmp(v, "translate")) { fprintf(stderr, "mnemo train: --model %s is not translate\n", v); return false; } return true;
    case O_ARCH: if (strlen(v) >= sizeof c->arch) { fprintf(stderr, "mnemo train: --arch %s: unknown\n", v); return false; } snprintf(c->arch, sizeof c->arch, "%s", v); return true;
    case O_SRC: if (strlen(v) >= sizeof c->src) { fprintf(stderr, "mnemo train: --src: path too long\n"); return false; } snprintf(c->src, sizeof c->src, "%s", v); return true;
    case O_TGT: if (strlen(v) >= sizeof c->tgt) { fprintf(stderr, "mnemo train: --tgt: path too long\n"); return false; } snprintf(c->tgt, sizeof c->tgt, "%s", v); return true;
    case O_OUT: rf->out = v; return true;
    case O_METRICS: rf->metrics = v; return true;
    case O_EXPORT: rf->export_ids = v; return true;
    case O_FORCE: rf->force = true; return true;
    case O_POSTLN: c->post_ln = true; return true;
    case O_NOTIE: c->tie = false; return true;
    case O_ADDITIVE: c->additive = true; return true;
    case O_GELU: c->gelu = true; return true;
    case O_INIT_FROM: return text_flag("init-from", v, c->init_from, sizeof c->init_from);
    case O_INIT_MAP: return text_flag("init-map", v, c->init_map, sizeof c->init_map);
    case O_FREEZE: return text_flag("freeze", v, c->freeze, sizeof c->freeze);
    case O_LR_GROUPS: return text_flag("lr-groups", v, c->lr_groups, sizeof c->lr_groups);
    case O_VOCAB: if (!integer("vocab", v, 300, 200259, &i)) return false; c->vocab = (int)i; return true;
    case O_DMODEL: if (!integer("d-model", v, 1, 4096, &i)) return false; c->d_model = (int)i; return true;
    case O_HEADS: if (!integer("heads", v, 1, 4096, &i)) return false; c->heads = (int)i; return true;
    case O_LAYERS: if (!integer("layers", v, 1, 64, &i)) return false; c->enc_layers = c->dec_layers = (int)i; return true;
    case O_ENC: if (!integer("enc-layers", v, 1, 64, &i)) return false; c->enc_layers = (int)i; return true;
    case O_DEC: if (!integer("dec-layers", v, 1, 64, &i)) return false; c->dec_layers = (int)i; return true;
    case O_FF: if (!integer("ff", v, 1, 65536, &i)) return false; c->ff = (int)i; return true;
    case O_MAXLEN: if (!integer("max-len", v, 4, 1024, &i)) return false; c->max_len = (int)i; return true;
    case O_BATCH: if (!integer("batch", v, 4, 1 << 20, &i)) return false; c->batch = (int)i; return true;
    case O_WARMUP: if (!integer("warmup", v, 0, INT_MAX, &i)) return false; c->warmup = (int)i; return true;
    case O_STEPS: if (!integer("steps", v, 0, (int64_t)1 << 40, &i)) return false; c->steps = i; return true;
    case O_LIMIT: if (!integer("limit", v, 0, (int64_t)1 << 40, &i)) return false; c->limit = i; return true;
    case O_VALEVERY: if (!integer("val-every", v, 1, INT_MAX, &i)) return false; c->val_every = (int)i; return true;
    case O_VALBLEU: if (!integer("val-bleu", v, 0, INT_MAX, &i)) return false; c->val_bleu = (int)i; return true;
    case O_THREADS: if (!integer("threads", v, 0, 1024, &i)) return false; c->threads = (int)i; return true;
    case O_SEED: return mn_cfg_parse_u64("train", "seed", v, &c->seed);
    case O_DROPOUT: if (!num("dropout", v, 0, 0.99, &d)) return false; c->dropout = (float)d; return true;
    case O_LS: if (!num("label-smoothing", v, 0, 0.99, &d)) return false; c->label_smoothing = (float)d; return true;
    case O_LR: if (!num("lr", v, 1e-9, 9.99, &d)) return false; c->lr = (float)d; return true;
    case O_CLIP: if (!num("clip", v, 0, 1e9, &d)) return false; c->clip = (float)d; return true;
    case O_WD: if (!num("weight-decay", v, 0, 1e3, &d)) return false; c->weight_decay = (float)d; return true;
    case O_TIME: if (!num("time", v, 0, 1e9, &d)) return false; c->time_limit = d; return true;
    default: break;
    }
    fprintf(stderr, "mnemo train: unknown or incomplete option\n");
    return false;
}

static void default_data(mn_mt_cfg *c)
{
    const char *base = getenv("MNEMO_DATA"), *home = getenv("HOME");
    char dir[400];
    if (base && *base) snprintf(dir, sizeof dir, "%s/parallel", base);
    else snprintf(dir, sizeof dir, "%s/.cache/mnemo/parallel", home ? home : ".");
    if (!c->src[0]) snprintf(c->src, sizeof c->src, "%s/kjv.imp", dir);
    if (!c->tgt[0]) snprintf(c->tgt, sizeof c->tgt, "%s/rv1909.imp", dir);
}

/* ---- batches ---- */

typedef struct { int64_t first, n; int L; } batch;
typedef struct { const mn_mt_ids **order; batch *b; int64_t nb; } epoch;

static int bucket_of(const mn_mt_ids *x, int max_len)
{
    return mn_mt_bucket(x->ns > x->nt + 1 ? x->ns : x->nt + 1, max_len);
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static const mn_mt_cfg *SORT_CFG;
static int by_length(const void *a, const void *b)
{
    const mn_mt_ids *x = *(const mn_mt_ids *const *)a, *y = *(const mn_mt_ids *const *)b;
    int lx = bucket_of(x, SORT_CFG->max_len), ly = bucket_of(y, SORT_CFG->max_len);
    return lx != ly ? lx - ly : (x->index > y->index) - (x->index < y->index);
}

/* Shuffled pairs, sorted by bucket within chunks, cut into batches of at
 * most c->batch padded tokens, then the batches shuffled. */
static mn_status make_epoch(const mn_mt_ids *items, int64_t n, const mn_mt_cfg *c, uint64_t seed, epoch *e)
{
    e->order = malloc((size_t)n * sizeof *e->order);
    e->b = malloc((size_t)n * sizeof *e->b);
    if (!e->order || !e->b) return mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    for (int64_t i = 0; i < n; i++) e->order[i] = &items[i];
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mix(seed ^ (uint64_t)i * 0x2545f4914f6cdd1dull) % (uint64_t)(i + 1));
        const mn_mt_ids *t = e->order[i]; e->order[i] = e->order[j]; e->order[j] = t;
    }
    SORT_CFG = c;
    int64_t chunk = 64 * (c->batch / BUCKET + 1);
    for (int64_t i = 0; i < n; i += chunk) qsort(e->order + i, (size_t)(n - i < chunk ? n - i : chunk), sizeof *e->order, by_length);
    e->nb = 0;
    for (int64_t i = 0; i < n;) {
        int64_t end = i + chunk < n ? i + chunk : n, k = i;
        int L = 0;
        while (k < end) {
            int l = bucket_of(e->order[k], c->max_len);
            if (k > i && (k - i + 1) * (int64_t)l > c->batch) break;
            L = l;
            k++;
        }
        e->b[e->nb++] = (batch){ i, k - i, L };
        i = k;
    }
    for (int64_t i = e->nb - 1; i > 0; i--) {
        int64_t j = (int64_t)(mix(seed * 31 + (uint64_t)i) % (uint64_t)(i + 1));
        batch t = e->b[i]; e->b[i] = e->b[j]; e->b[j] = t;
    }
    return MN_OK;
}

static void epoch_free(epoch *e) { free(e->order); free(e->b); memset(e, 0, sizeof *e); }

/* ---- training graphs, one per (sentences, length, training) ---- */

typedef struct { int B, L; bool training; mn_graph *g; mn_exec *ex; mn_node *loss; int32_t *src, *tin, *tout; float *pad; int64_t used; } tgraph;
typedef struct { tgraph g[MAX_GRAPHS]; int64_t clock; } tgraphs;

static void tgraph_free(tgraph *t) { mn_exec_free(t->ex); mn_graph_free(t->g); memset(t, 0, sizeof *t); }

static void *buffer(mn_exec *ex, const char *name)
{
    for (int i = 0; i < mn_exec_input_count(ex); i++)
        if (!strcmp(mn_exec_input_name(ex, i), name)) return mn_exec_input(ex, i)->data;
    return NULL;
}

static mn_status build_train(mn_params *P, const mn_mt_cfg *c, tgraph *t)
{
    mn_s2s_opts o = mn_mt_model_opts(c, t->training);
    t->g = mn_graph_new(P);
    mn_graph *g = t->g;
    mn_graph_set_seed(g, c->seed * 1000003u + (uint64_t)t->L);
    mn_node *src = mn_input(g, "src", MN_I32, MN_SHAPE(t->B, t->L)), *pad = mn_input(g, "src_pad", MN_F32, MN_SHAPE(t->B, t->L));
    mn_node *tin = mn_input(g, "tgt_in", MN_I32, MN_SHAPE(t->B, t->L)), *tout = mn_input(g, "tgt_out", MN_I32, MN_SHAPE(t->B * t->L));
    mn_node *logits = mn_mt_is_lstm(c) ? mn_rnn_seq2seq(g, MN_MT_PREFIX, src, tin, pad, mn_mt_rnn_opts(c, t->training))
                                       : mn_seq2seq(g, MN_MT_PREFIX, src, tin, pad, NULL, o);
    mn_ce_opts ce = { .ignore_index = -100, .reduction = MN_REDUCE_MEAN, .label_smoothing = t->training ? c->label_smoothing : 0 };
    t->loss = mn_cross_entropy_ex(g, mn_reshape(g, logits, MN_SHAPE(t->B * t->L, c->vocab)), tout, ce);
    mn_compile_opts co = { .threads = c->threads, .no_backward = !t->training };
    t->ex = t->loss ? mn_compile(g, t->loss, mn_tools_compile_opts(&co)) : NULL;
    if (!t->ex) return mn_set_error(mn_graph_status(g) ? mn_graph_status(g) : MN_ERR_INVALID, "translate: %s", mn_graph_errmsg(g));
    t->src = buffer(t->ex, "src");
    t->pad = buffer(t->ex, "src_pad");
    t->tin = buffer(t->ex, "tgt_in");
    t->tout = buffer(t->ex, "tgt_out");
    return MN_OK;
}

static mn_status get_graph(tgraphs *G, mn_params *P, const mn_mt_cfg *c, int B, int L, bool training, tgraph **out)
{
    int victim = 0;
    for (int i = 0; i < MAX_GRAPHS; i++) {
        tgraph *t = &G->g[i];
        if (t->ex && t->B == B && t->L == L && t->training == training) { t->used = ++G->clock; *out = t; return MN_OK; }
        if (t->used < G->g[victim].used) victim = i;
    }
    tgraph *t = &G->g[victim];
    tgraph_free(t);
    *t = (tgraph){ .B = B, .L = L, .training = training, .used = ++G->clock };
    mn_status s = build_train(P, c, t);
    if (s) { tgraph_free(t); return s; }
    *out = t;
    return MN_OK;
}

/* Fills a graph with pairs; returns the real (non-pad) tokens of both sides. */
static int64_t fill(tgraph *t, const mn_mt_ids *const *pairs, int64_t n)
{
    int64_t tokens = 0;
    for (int i = 0; i < t->B; i++) {
        const mn_mt_ids *x = i < n ? pairs[i] : NULL;
        for (int j = 0; j < t->L; j++) {
            bool s = x && j < x->ns;
            t->src[i * t->L + j] = s ? x->src[j] : MN_BPE_PAD;
            t->pad[i * t->L + j] = s ? 0.0f : 1.0f;
            t->tin[i * t->L + j] = !x || j > x->nt ? MN_BPE_PAD : j == 0 ? MN_BPE_BOS : x->tgt[j - 1];
            t->tout[i * t->L + j] = !x || j > x->nt ? -100 : j == x->nt ? MN_BPE_EOS : x->tgt[j];
        }
        if (x) tokens += x->ns + x->nt + 1;
    }
    return tokens;
}

/* ---- the run ---- */

/* Where the loop is (stored in checkpoints as "mnemo.translate_state", so
 * --resume continues exactly): optimizer steps done, the epoch under way
 * (0-based; its batch order depends on the seed and this number only), the
 * next batch of that epoch, the smoothed training loss, the best
 * validation loss so far. */
typedef struct { int64_t step, epoch, batch; double ema, best; } loop_state;

typedef struct {
    mn_mt_cfg c;
    const char *out, *metrics_path, *export_ids, *resume;
    char metrics_buf[600], last[600], out_buf[600];
    loop_state st;
    float base_lr[16];           /* per optimizer group: the schedule scales each */
    int groups;
    mn_params *P;
    mn_bpe *bpe;
    mn_parallel par;
    mn_mt_data data;
    tgraphs G;
    mn_optim *opt;
    FILE *metrics;
    double t0;
} run;

#define STATE_META "mnemo.translate_state"

static char *state_json(const loop_state *st)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:f}", "step", (json_int_t)st->step, "epoch", (json_int_t)st->epoch, "batch",
                          (json_int_t)st->batch, "ema", isfinite(st->ema) ? st->ema : 0.0);
    if (o && isfinite(st->best)) json_object_set_new(o, "best", json_real(st->best));
    char *t = o ? json_dumps(o, JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return t;
}

/* The stored loop state, range-checked (the message names the checkpoint and the field). */
static mn_status state_parse(const char *text, const char *path, loop_state *st)
{
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    static const char *const keys[3] = { "step", "epoch", "batch" };
    int64_t v[3] = { 0 };
    mn_status s = json_is_object(o) ? MN_OK : mn_set_error(MN_ERR_FORMAT, "%s: no loop state (%s); it cannot be resumed", path, STATE_META);
    for (int k = 0; k < 3 && !s; k++) {
        json_t *x = json_object_get(o, keys[k]);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > ((int64_t)1 << 40))
            s = mn_set_error(MN_ERR_FORMAT, "%s: loop state \"%s\": an integer in [0, 2^40]", path, keys[k]);
        else v[k] = json_integer_value(x);
    }
    json_t *ema = s ? NULL : json_object_get(o, "ema"), *best = s ? NULL : json_object_get(o, "best");
    if (!s && (!json_is_number(ema) || !isfinite(json_number_value(ema)))) s = mn_set_error(MN_ERR_FORMAT, "%s: loop state \"ema\": a number", path);
    if (!s && best && (!json_is_number(best) || !isfinite(json_number_value(best)))) s = mn_set_error(MN_ERR_FORMAT, "%s: loop state \"best\": a number", path);
    if (!s) *st = (loop_state){ v[0], v[1], v[2], v[0] ? json_number_value(ema) : NAN, best ? json_number_value(best) : INFINITY };
    json_decref(o);
    return s;
}

static mn_status save_ckpt(run *r, const char *path)
{
    char *cfg = mn_mt_cfg_json(&r->c), *bpe = NULL;
    mn_status s = cfg ? mn_bpe_to_json(r->bpe, &bpe) : mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    if (!s) s = mn_out_check_regular(path);
    if (!s) s = mn_params_set_meta(r->P, "mnemo.model", "translate");
    if (!s) s = mn_params_set_meta(r->P, MN_MT_META_CONFIG, cfg);
    if (!s) s = mn_params_set_meta(r->P, MN_MT_META_BPE, bpe);
    char *st = s ? NULL : state_json(&r->st);
    if (!s) s = st ? mn_params_set_meta(r->P, STATE_META, st) : mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    if (!s) s = mn_params_save(r->P, path);
    free(st);
    free(cfg);
    free(bpe);
    return s;
}

static double val_loss(run *r)
{
    const mn_mt_ids *items = r->data.items[MN_SPLIT_VALID];
    int64_t n = r->data.n[MN_SPLIT_VALID];
    epoch e = { 0 };
    if (!n || make_epoch(items, n, &r->c, 7, &e)) { epoch_free(&e); return NAN; }
    double sum = 0;
    int64_t count = 0;
    for (int64_t b = 0; b < e.nb; b++) {
        tgraph *t;
        int B = r->c.batch / e.b[b].L;
        if (get_graph(&r->G, r->P, &r->c, B, e.b[b].L, false, &t)) { epoch_free(&e); return NAN; }
        fill(t, e.order + e.b[b].first, e.b[b].n);
        int64_t tgt = 0;
        for (int64_t i = 0; i < e.b[b].n; i++) tgt += e.order[e.b[b].first + i]->nt + 1;
        if (mn_exec_run(t->ex)) { epoch_free(&e); return NAN; }
        sum += (double)mn_exec_loss(t->ex) * (double)tgt;
        count += tgt;
    }
    epoch_free(&e);
    return sum / (double)(count ? count : 1);
}

static mn_status write_hyps(const char *path, char *const *hyp, int64_t n)
{
    mn_status s = mn_out_check_regular(path);
    if (s) return s;
    FILE *f = fopen(path, "w");
    if (!f) return mn_set_error(MN_ERR_IO, "--hyp: cannot write %s", path);
    for (int64_t i = 0; i < n; i++) fprintf(f, "%s\n", hyp[i]);
    return fclose(f) ? mn_set_error(MN_ERR_IO, "--hyp: cannot write %s", path) : MN_OK;
}

/* Greedy (or q's beam) translations of split k's first n pairs; BLEU and
 * chrF (0..100); the translations go to hyp_path when it is set. */
static mn_status score_split(mn_params *P, const mn_mt_cfg *c, const mn_bpe *bpe, const mn_parallel *par, int k, int64_t n,
                             const mn_mt_search *q, double *bleu, double *chrf, int samples, const char *hyp_path)
{
    const char **src = malloc((size_t)(n ? n : 1) * sizeof *src), **ref = malloc((size_t)(n ? n : 1) * sizeof *ref);
    char **hyp = calloc((size_t)(n ? n : 1), sizeof *hyp);
    int64_t m = 0;
    for (int64_t i = 0; src && ref && i < par->n && m < n; i++)
        if ((int)par->pairs[i].split == k) { src[m] = par->pairs[i].src; ref[m] = par->pairs[i].tgt; m++; }
    mn_mt_decoder *d = src && ref && hyp ? mn_mt_decoder_new(P, c) : NULL;
    mn_status s = d ? MN_OK : mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    if (!s && m) s = mn_mt_translate_text(d, bpe, q, src, (int)m, hyp);
    mn_bleu b = { 0 };
    if (!s && m) s = mn_corpus_bleu((const char *const *)hyp, ref, m, true, &b);
    if (!s && m) s = mn_corpus_chrf((const char *const *)hyp, ref, m, chrf);
    *bleu = b.score;
    if (!s && hyp_path) s = write_hyps(hyp_path, hyp, m);
    for (int64_t i = 0; !s && i < m && i < samples; i++) printf("  src: %s\n  ref: %s\n  hyp: %s\n", src[i], ref[i], hyp[i]);
    for (int64_t i = 0; i < m && hyp; i++) free(hyp[i]);
    mn_mt_decoder_free(d);
    free(src); free(ref); free(hyp);
    return s;
}

static mn_status validate(run *r, int64_t step, double train_loss, double tps)
{
    double vl = val_loss(r), bleu = 0, chrf = 0;
    mn_mt_search q = { .beam = 1, .threads = r->c.threads };
    int64_t nv = r->data.n[MN_SPLIT_VALID] < r->c.val_bleu ? r->data.n[MN_SPLIT_VALID] : r->c.val_bleu;
    mn_status s = nv ? score_split(r->P, &r->c, r->bpe, &r->par, MN_SPLIT_VALID, nv, &q, &bleu, &chrf, 0, NULL) : MN_OK;
    if (s) return s;
    double el = mn_tools_seconds(CLOCK_MONOTONIC) - r->t0;
    printf("step %lld: train loss %.3f, valid loss %.3f, valid BLEU %.2f chrF %.2f (%lld sentences, greedy), %.0f tok/s, %.0f s\n",
           (long long)step, train_loss, vl, bleu, chrf, (long long)nv, tps, el);
    fprintf(r->metrics, "{\"step\": %lld, \"train_loss\": %.6f, \"val_loss\": %.6f, \"val_bleu\": %.4f, \"val_chrf\": %.4f, "
            "\"tok_per_s\": %.1f, \"time\": %.1f}\n", (long long)step, train_loss, isfinite(vl) ? vl : -1.0, bleu, chrf, tps, el);
    fflush(r->metrics);
    if (!r->data.n[MN_SPLIT_VALID] || (isfinite(vl) && vl < r->st.best)) {   /* no validation pairs: the latest is the best */
        r->st.best = isfinite(vl) ? vl : INFINITY;
        if ((s = save_ckpt(r, r->out))) return s;
    }
    return save_ckpt(r, r->last);
}

static float lr_at(const mn_mt_cfg *c, int64_t step)
{
    double s = (double)step + 1, w = c->warmup > 0 ? c->warmup : 1;
    return (float)(c->lr * (s < w ? s / w : sqrt(w / s)));
}

static mn_status train_step(run *r, const epoch *e, int64_t b, int64_t step, double *loss, int64_t *tokens)
{
    tgraph *t;
    int B = r->c.batch / e->b[b].L;
    mn_status s = get_graph(&r->G, r->P, &r->c, B, e->b[b].L, true, &t);
    if (s) return s;
    *tokens += fill(t, e->order + e->b[b].first, e->b[b].n);
    mn_params_zero_grad(r->P);
    mn_exec_set_step(t->ex, (uint64_t)step);      /* dropout draws from (graph seed, step): a resumed run continues exactly */
    if ((s = mn_exec_run(t->ex))) return mn_set_error(s, "translate: %s", mn_exec_errmsg(t->ex));
    *loss = mn_exec_loss(t->ex);
    if (r->c.clip > 0) mn_clip_grad_norm(r->P, r->c.clip, 2.0f);
    float f = lr_at(&r->c, step) / r->c.lr;
    for (int g = 0; g < r->groups; g++) mn_optim_set_lr(r->opt, g, r->base_lr[g] * f);
    return mn_optim_step(r->opt);
}

static mn_status loop(run *r)
{
    int64_t step = r->st.step, tokens = 0, ep = r->st.epoch, first = r->st.batch;
    double ema = r->st.ema, tstart = mn_tools_seconds(CLOCK_MONOTONIC), tlast = tstart;
    int64_t tok_last = 0, steps0 = step, tok_all = 0;
    double cpu_steps = 0;        /* CPU seconds inside training steps (graph compiles included; validation not) */
    mn_status s = MN_OK;
    bool stop = false;
    while (!stop && !s) {
        epoch e = { 0 };
        if ((s = make_epoch(r->data.items[MN_SPLIT_TRAIN], r->data.n[MN_SPLIT_TRAIN], &r->c, r->c.seed + (uint64_t)ep++, &e))) break;
        for (int64_t b = first; b < e.nb && !stop && !s; b++) {
            double loss = 0, c0 = mn_tools_seconds(CLOCK_PROCESS_CPUTIME_ID);
            int64_t tok0 = tokens;
            if ((s = train_step(r, &e, b, step, &loss, &tokens))) break;
            cpu_steps += mn_tools_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
            tok_all += tokens - tok0;
            ema = isnan(ema) ? loss : 0.98 * ema + 0.02 * loss;
            step++;
            double now = mn_tools_seconds(CLOCK_MONOTONIC);
            stop = (r->c.steps && step >= r->c.steps) || (r->c.time_limit > 0 && now - r->t0 >= r->c.time_limit);
            if (step % 50 == 0) {
                printf("step %lld (epoch %lld): loss %.3f, %.0f tok/s\n", (long long)step, (long long)ep, ema,
                       (double)(tokens - tok_last) / (now - tlast));
                fflush(stdout);
            }
            if (step % r->c.val_every == 0 || stop) {
                double tps = (double)tokens / (now - tstart);
                r->st = (loop_state){ step, ep - 1, b + 1, ema, r->st.best };
                s = validate(r, step, ema, tps);
                tok_last = tokens;
                tlast = mn_tools_seconds(CLOCK_MONOTONIC);
                tstart += tlast - now;            /* validation time is not training time */
            }
        }
        epoch_free(&e);
        first = 0;
    }
    if (!s && step > steps0)   /* scripts/mt-step-compare.sh reads this line */
        printf("training: %lld steps, %lld tokens, %.2f CPU s in steps (%.1f CPU ms/step, %.0f tok per CPU-second)\n",
               (long long)(step - steps0), (long long)tok_all, cpu_steps, 1e3 * cpu_steps / (double)(step - steps0),
               (double)tok_all / (cpu_steps > 0 ? cpu_steps : 1e-9));
    return s;
}

static mn_status learn_bpe(run *r)
{
    int64_t n = 0;
    const char **texts = malloc((size_t)(2 * r->par.n + 1) * sizeof *texts);
    if (!texts) return mn_set_error(MN_ERR_NOMEM, "translate: out of memory");
    for (int64_t i = 0; i < r->par.n; i++)
        if (r->par.pairs[i].split == MN_SPLIT_TRAIN) { texts[n++] = r->par.pairs[i].src; texts[n++] = r->par.pairs[i].tgt; }
    mn_status s = mn_bpe_learn(texts, n, r->c.vocab, &r->bpe);
    free(texts);
    return s;
}

/* Keeps the first `limit` training pairs (validation and test stay whole). */
static void apply_limit(mn_parallel *p, int64_t limit)
{
    int64_t kept = 0, w = 0;
    for (int64_t i = 0; i < p->n; i++) {
        bool train = p->pairs[i].split == MN_SPLIT_TRAIN;
        if (train && kept >= limit) { free(p->pairs[i].key); free(p->pairs[i].src); free(p->pairs[i].tgt); continue; }
        kept += train;
        p->pairs[w++] = p->pairs[i];
    }
    p->n = w;
    p->count[MN_SPLIT_TRAIN] = kept;
}

static void put_ids(FILE *f, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? " " : "", ids[i]);
}

/* One line per pair: split, source ids (with </s>), target ids, target text. */
static mn_status export_ids(const run *r, const char *path)
{
    static const char *const names[3] = { "train", "valid", "test" };
    FILE *f = fopen(path, "w");
    if (!f) return mn_set_error(MN_ERR_IO, "--export-ids: cannot write %s", path);
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < r->data.n[k]; i++) {
            const mn_mt_ids *x = &r->data.items[k][i];
            fprintf(f, "%s\t", names[k]);
            put_ids(f, x->src, x->ns);
            fputc('\t', f);
            put_ids(f, x->tgt, x->nt);
            fprintf(f, "\t%s\n", r->par.pairs[x->index].tgt);
        }
    return fclose(f) ? mn_set_error(MN_ERR_IO, "--export-ids: cannot write %s", path) : MN_OK;
}

static mn_status prepare(run *r)
{
    mn_status s = mn_parallel_read(r->c.src, r->c.tgt, &r->par);
    if (s) return s;
    if (r->c.limit && r->c.limit < r->par.count[MN_SPLIT_TRAIN]) apply_limit(&r->par, r->c.limit);
    if (!r->par.count[MN_SPLIT_TRAIN]) return mn_set_error(MN_ERR_FORMAT, "translate: %s / %s: no training pairs", r->c.src, r->c.tgt);
    double t = mn_tools_seconds(CLOCK_MONOTONIC);
    if (!r->bpe && (s = learn_bpe(r))) return s;       /* a resumed run keeps its checkpoint's BPE */
    if (mn_bpe_vocab(r->bpe) < r->c.vocab) {
        printf("note: BPE stopped at %d ids (no pair occurs twice); the model uses %d\n", mn_bpe_vocab(r->bpe), mn_bpe_vocab(r->bpe));
        r->c.vocab = mn_bpe_vocab(r->bpe);
    }
    if ((s = mn_mt_encode(r->bpe, &r->par, &r->c, &r->data))) return s;
    printf("data: %lld train / %lld valid / %lld test pairs (%s -> %s), BPE %d ids learned in %.1f s, %lld pairs cut to %d tokens\n",
           (long long)r->data.n[0], (long long)r->data.n[1], (long long)r->data.n[2], r->c.src, r->c.tgt, mn_bpe_vocab(r->bpe),
           mn_tools_seconds(CLOCK_MONOTONIC) - t, (long long)r->data.truncated, r->c.max_len);
    return r->export_ids ? export_ids(r, r->export_ids) : MN_OK;
}

/* Embeddings start at N(0, 1/d_model), as fairseq's Transformer: the
 * forward multiplies them by sqrt(d_model), and a tied generator then
 * starts with logits of unit scale (N(0, 1) gave losses near 30). */
static void scale_embeddings(mn_params *P, const mn_mt_cfg *c)
{
    static const char *const names[2] = { MN_MT_PREFIX ".tgt_emb.weight", MN_MT_PREFIX ".src_emb.weight" };
    for (int k = 0; k < 2; k++) {
        mn_tensor *w = mn_params_get(P, names[k]);
        float f = 1.0f / sqrtf((float)c->d_model);
        for (int64_t i = 0; w && i < mn_tensor_numel(w); i++) mn_f32(w)[i] *= f;
    }
}

static void run_free(run *r)
{
    for (int i = 0; i < MAX_GRAPHS; i++) tgraph_free(&r->G.g[i]);
    mn_optim_free(r->opt);
    mn_params_free(r->P);
    mn_bpe_free(r->bpe);
    mn_mt_data_free(&r->data);
    mn_parallel_free(&r->par);
    if (r->metrics) fclose(r->metrics);
}

static mn_status open_ckpt(const char *path, mn_params **P, mn_mt_cfg *c, mn_bpe **bpe);

/* Flags a resumed run may change; the others would change the model, the
 * data or the batches, and the checkpoint's values stand. */
static bool resumable(int o)
{
    return o == O_STEPS || o == O_TIME || o == O_THREADS || o == O_VALEVERY || o == O_VALBLEU || o == O_OUT || o == O_METRICS ||
           o == O_FORCE || o == O_MODEL;
}

/* --resume CKPT: the model, optimizer state, BPE, configuration and loop state. */
static int open_resume(run *r, const char *path)
{
    mn_status s = open_ckpt(path, &r->P, &r->c, &r->bpe);
    if (!s) s = state_parse(mn_params_get_meta(r->P, STATE_META), path, &r->st);
    if (s) { fprintf(stderr, "mnemo train: --resume %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    r->resume = path;
    size_t n = strlen(path);
    bool last = n > 5 && !strcmp(path + n - 5, ".last");
    snprintf(r->out_buf, sizeof r->out_buf, "%.*s", (int)(last ? n - 5 : n), path);     /* X.last and X resume into X */
    return MN_EXIT_OK;
}

static int parse_train(int argc, char **argv, run *r, bool *force)
{
    mn_mt_defaults(&r->c);
    r->st = (loop_state){ .ema = NAN, .best = INFINITY };
    run_flags rf = { .out = "translate.safetensors" };
    const char *resume = NULL;
    int o, rc;
    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", train_opts, NULL)) != -1) {        /* first pass: usage errors and --resume */
        if (o == 'h') { train_usage(stdout); return -1; }
        if (o == '?') { fprintf(stderr, "mnemo train: unknown or incomplete option \"%s\"\n", argv[optind - 1]); return MN_EXIT_USAGE; }
        if (o == O_RESUME) resume = optarg;
    }
    if (optind < argc) { fprintf(stderr, "mnemo train: unexpected argument \"%s\"\n", argv[optind]); return MN_EXIT_USAGE; }
    if (resume && (rc = open_resume(r, resume))) return rc;
    if (resume) rf.out = r->out_buf;
    optind = 1;
    int li = 0;
    while ((o = getopt_long(argc, argv, "h", train_opts, &li)) != -1) {
        if (o == O_RESUME) continue;
        if (resume && !resumable(o)) {
            fprintf(stderr, "mnemo train: --%s cannot change when resuming: the run continues with its checkpoint's configuration\n", train_opts[li].name);
            return MN_EXIT_USAGE;
        }
        if (!apply(&r->c, o, optarg, &rf)) return MN_EXIT_USAGE;
    }
    r->out = rf.out;
    r->metrics_path = rf.metrics;
    r->export_ids = rf.export_ids;
    *force = rf.force;
    default_data(&r->c);
    if (mn_mt_check(&r->c)) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    mn_train_cfg ft = { 0 };
    snprintf(ft.freeze, sizeof ft.freeze, "%s", r->c.freeze);
    snprintf(ft.lr_groups, sizeof ft.lr_groups, "%s", r->c.lr_groups);
    snprintf(ft.init_map, sizeof ft.init_map, "%s", r->c.init_map);
    snprintf(ft.init_from, sizeof ft.init_from, "%s", r->c.init_from);
    if (mn_ft_check(&ft)) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    return MN_EXIT_OK;
}

static bool same_file(const char *a, const char *b)
{
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static int check_out(const run *r, bool force)
{
    struct stat st;
    const char *paths[2] = { r->out, r->last };
    for (int i = 0; i < 2; i++) {
        if (mn_out_check_regular(paths[i])) { fprintf(stderr, "mnemo train: --out: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
        bool ours = r->resume && (same_file(r->resume, r->out) || same_file(r->resume, r->last));
        if (!force && !ours && lstat(paths[i], &st) == 0) {
            fprintf(stderr, "mnemo train: %s exists: pass --force to replace it, or another --out\n", paths[i]);
            return MN_EXIT_RUNTIME;
        }
    }
    return MN_EXIT_OK;
}

/* The fine-tuning flags in the shape tools/finetune.c reads. */
static mn_train_cfg ft_cfg(const mn_mt_cfg *c)
{
    mn_train_cfg t;
    memset(&t, 0, sizeof t);
    snprintf(t.model, sizeof t.model, "translate");
    snprintf(t.init_from, sizeof t.init_from, "%s", c->init_from);
    snprintf(t.init_map, sizeof t.init_map, "%s", c->init_map);
    snprintf(t.freeze, sizeof t.freeze, "%s", c->freeze);
    snprintf(t.lr_groups, sizeof t.lr_groups, "%s", c->lr_groups);
    return t;
}

/* The parameters (fresh, or the resumed ones), --init-from's partial load,
 * --freeze, the optimizer (its state comes with a resumed store) and its
 * --lr-groups. Graphs compiled before a freeze are dropped. Exit code. */
static int build_model(run *r)
{
    mn_train_cfg ft = ft_cfg(&r->c);
    mn_params *src = NULL;
    int rc = mn_ft_open(&ft, r->resume != NULL, &src);
    if (rc) return rc;
    if (!r->P) r->P = mn_params_new();
    if (!r->resume) mn_params_set_seed(r->P, r->c.seed);
    tgraph *t;
    mn_status s = get_graph(&r->G, r->P, &r->c, r->c.batch / BUCKET, BUCKET, true, &t);     /* creates the parameters */
    if (!s && !r->resume && !mn_mt_is_lstm(&r->c)) scale_embeddings(r->P, &r->c);
    if (s) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); mn_params_free(src); return MN_EXIT_RUNTIME; }
    rc = mn_ft_prepare(r->P, src, &ft);
    mn_params_free(src);
    if (rc) return rc;
    for (int i = 0; i < MAX_GRAPHS; i++) tgraph_free(&r->G.g[i]);    /* compiled before --freeze */
    mn_adam_opts ao = MN_ADAMW_DEFAULTS;
    ao.lr = r->c.lr;
    ao.beta2 = 0.98f;
    ao.eps = 1e-9f;
    ao.weight_decay = r->c.weight_decay > 0 ? r->c.weight_decay : MN_ZERO;
    if (!(r->opt = mn_adamw(r->P, ao))) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    if ((rc = mn_ft_groups(r->opt, r->P, &ft))) return rc;
    r->groups = mn_optim_group_count(r->opt);
    if (r->groups > 16) r->groups = 16;
    for (int g = 0; g < r->groups; g++) r->base_lr[g] = mn_optim_get_lr(r->opt, g);
    return MN_EXIT_OK;
}

static int open_metrics(run *r)
{
    if (r->resume && mn_metrics_truncate(r->metrics_path, r->st.step) < 0) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    if (!(r->metrics = fopen(r->metrics_path, r->resume ? "a" : "w"))) { fprintf(stderr, "mnemo train: cannot write %s\n", r->metrics_path); return MN_EXIT_RUNTIME; }
    return MN_EXIT_OK;
}

static void print_model(const run *r)
{
    if (mn_mt_is_lstm(&r->c))
        printf("lstm-attn: embeddings and decoder %d, bidirectional encoder 2 x %d, %s attention\n", r->c.d_model,
               r->c.d_model / 2, r->c.additive ? "additive" : "multiplicative");
    printf("translate (%s, d_model %d, %d+%d layers, %d heads, ff %d): %lld parameters, batches of %d tokens, lr %g, %d threads\n",
           r->c.arch, r->c.d_model, r->c.enc_layers, r->c.dec_layers, r->c.heads, r->c.ff, (long long)mn_params_numel(r->P), r->c.batch,
           (double)r->c.lr, r->c.threads ? r->c.threads : mn_get_num_threads());
    if (r->resume) printf("resuming at step %lld (epoch %lld, batch %lld) from %s\n", (long long)r->st.step, (long long)r->st.epoch + 1,
                          (long long)r->st.batch, r->resume);
    fflush(stdout);
}

static int train_main(run *r, bool force)
{
    int rc = check_out(r, force);
    if (rc) return rc;
    if (r->resume && r->c.steps && r->st.step >= r->c.steps) {
        printf("nothing to train: %s is at step %lld (--steps %lld); nothing written\n", r->resume, (long long)r->st.step, (long long)r->c.steps);
        return MN_EXIT_OK;
    }
    r->t0 = mn_tools_seconds(CLOCK_MONOTONIC);
    mn_status s = prepare(r);
    if (s) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    if ((rc = build_model(r)) || (rc = open_metrics(r))) return rc;
    print_model(r);
    if ((s = loop(r))) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    printf("best validation loss %.3f: %s (latest %s); metrics %s\n", r->st.best, r->out, r->last, r->metrics_path);
    fclose(r->metrics);
    r->metrics = NULL;
    char png[620];
    snprintf(png, sizeof png, "%s.loss.png", r->out);
    if (!mn_plot_losses(r->metrics_path, png)) printf("loss curves: %s\n", png);
    return MN_EXIT_OK;
}

int cmd_train_translate(int argc, char **argv)
{
    run r;
    memset(&r, 0, sizeof r);
    bool force = false;
    int rc = parse_train(argc, argv, &r, &force);
    if (!rc) {
        snprintf(r.last, sizeof r.last, "%s.last", r.out);
        if (!r.metrics_path) { snprintf(r.metrics_buf, sizeof r.metrics_buf, "%s.metrics.jsonl", r.out); r.metrics_path = r.metrics_buf; }
        rc = train_main(&r, force);
    }
    run_free(&r);
    return rc < 0 ? MN_EXIT_OK : rc;
}

/* ---- checkpoints: translate and eval ---- */

static mn_status open_ckpt(const char *path, mn_params **P, mn_mt_cfg *c, mn_bpe **bpe)
{
    *P = mn_params_new();
    *bpe = NULL;
    mn_status s = mn_params_load(*P, path);
    const char *model = s ? NULL : mn_params_get_meta(*P, "mnemo.model");
    if (!s && (!model || strcmp(model, "translate"))) s = mn_set_error(MN_ERR_FORMAT, "%s: not a translation checkpoint (model %s)", path, model ? model : "unknown");
    const char *cj = s ? NULL : mn_params_get_meta(*P, MN_MT_META_CONFIG), *bj = s ? NULL : mn_params_get_meta(*P, MN_MT_META_BPE);
    if (!s && (!cj || !bj)) s = mn_set_error(MN_ERR_FORMAT, "%s: translation checkpoint without %s", path, cj ? MN_MT_META_BPE : MN_MT_META_CONFIG);
    if (!s) s = mn_mt_cfg_parse(cj, c);
    if (!s) s = mn_bpe_from_json(bj, bpe);
    if (!s && mn_bpe_vocab(*bpe) != c->vocab) s = mn_set_error(MN_ERR_FORMAT, "%s: BPE has %d ids, the model %d", path, mn_bpe_vocab(*bpe), c->vocab);
    if (!s) mn_params_set_strict(*P, true);   /* a tensor the model needs and the file lacks is an error, never a fresh init */
    if (s) { mn_params_free(*P); *P = NULL; mn_bpe_free(*bpe); *bpe = NULL; }
    return s;
}

bool mn_mt_wants_train(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc && !strcmp(argv[i + 1], "translate")) return true;
        if (!strcmp(argv[i], "--model=translate")) return true;
    }
    return false;
}

bool mn_mt_is_checkpoint(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ckpt") && i + 1 < argc) path = argv[i + 1];
        else if (!strncmp(argv[i], "--ckpt=", 7)) path = argv[i] + 7;
    }
    if (!path) return false;
    mn_params *P = mn_params_new();
    bool yes = !mn_params_load(P, path) && mn_params_get_meta(P, "mnemo.model") && !strcmp(mn_params_get_meta(P, "mnemo.model"), "translate");
    mn_params_free(P);
    mn_clear_error();
    return yes;
}

enum { T_CKPT = 300, T_BEAM, T_ALPHA, T_MAXLEN, T_THREADS, T_LIMIT, T_SRC, T_TGT, T_SAMPLES, T_SPLIT, T_HYP, T_BATCH };
static const struct option tr_opts[] = {
    { "ckpt", 1, 0, T_CKPT }, { "beam", 1, 0, T_BEAM }, { "alpha", 1, 0, T_ALPHA }, { "max-len", 1, 0, T_MAXLEN },
    { "threads", 1, 0, T_THREADS }, { "limit", 1, 0, T_LIMIT }, { "src", 1, 0, T_SRC }, { "tgt", 1, 0, T_TGT },
    { "samples", 1, 0, T_SAMPLES }, { "split", 1, 0, T_SPLIT }, { "hyp", 1, 0, T_HYP }, { "batch", 1, 0, T_BATCH }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
};

typedef struct { const char *ckpt, *src, *tgt, *hyp; mn_mt_search q; int64_t limit, samples; int split; } tr_args;

static int parse_tr(const char *cmd, int argc, char **argv, tr_args *a, const char *usage)
{
    int o;
    int64_t i;
    opterr = 0;
    optind = 1;
    a->q = (mn_mt_search){ .beam = 1, .alpha = 0.6f };
    a->samples = 3;
    a->split = MN_SPLIT_TEST;
    while ((o = getopt_long(argc, argv, "h", tr_opts, NULL)) != -1) {
        if (o == 'h') { printf("%s", usage); return -1; }
        if (o == T_CKPT) { a->ckpt = optarg; continue; }
        if (o == T_SRC) { a->src = optarg; continue; }
        if (o == T_TGT) { a->tgt = optarg; continue; }
        if (o == T_HYP) { a->hyp = optarg; continue; }
        if (o == T_SPLIT) {
            a->split = !strcmp(optarg, "train") ? MN_SPLIT_TRAIN : !strcmp(optarg, "valid") ? MN_SPLIT_VALID : !strcmp(optarg, "test") ? MN_SPLIT_TEST : -1;
            if (a->split < 0) { fprintf(stderr, "mnemo %s: --split %s: train, valid or test\n", cmd, optarg); return MN_EXIT_USAGE; }
            continue;
        }
        if (o == T_ALPHA) {
            char *end;
            double d = strtod(optarg, &end);
            if (end == optarg || *end || !(d >= 0 && d <= 10)) { fprintf(stderr, "mnemo %s: --alpha %s: a number in [0, 10]\n", cmd, optarg); return MN_EXIT_USAGE; }
            a->q.alpha = (float)d;
            continue;
        }
        if (o == '?') { fprintf(stderr, "mnemo %s: unknown or incomplete option \"%s\"\n", cmd, argv[optind - 1]); return MN_EXIT_USAGE; }
        static const char *const names[] = { [T_BEAM - T_CKPT] = "beam", [T_MAXLEN - T_CKPT] = "max-len", [T_THREADS - T_CKPT] = "threads",
                                             [T_LIMIT - T_CKPT] = "limit", [T_SAMPLES - T_CKPT] = "samples", [T_BATCH - T_CKPT] = "batch" };
        int64_t hi = o == T_BATCH ? 16 : o == T_BEAM ? 64 : o == T_MAXLEN ? 1023 : o == T_THREADS ? 1024 : (int64_t)1 << 40;
        if (!mn_cfg_parse_int(cmd, names[o - T_CKPT], optarg, o == T_BEAM || o == T_BATCH ? 1 : 0, hi, &i)) return MN_EXIT_USAGE;
        if (o == T_BEAM) a->q.beam = (int)i;
        if (o == T_MAXLEN) a->q.max_len = (int)i;
        if (o == T_THREADS) a->q.threads = (int)i;
        if (o == T_LIMIT) a->limit = i;
        if (o == T_SAMPLES) a->samples = i;
        if (o == T_BATCH) a->q.batch = (int)i;
    }
    if (!a->ckpt) { fprintf(stderr, "mnemo %s: --ckpt CKPT is required\n", cmd); return MN_EXIT_USAGE; }
    return MN_EXIT_OK;
}

/* Longest standard-input line `mnemo translate` reads (bytes, without the
 * newline): the decoder reads at most max_len tokens anyway. */
enum { MAX_LINE = 16384 };

/* One line of f into buf (MAX_LINE + 2 bytes), without its line end: 1, 0
 * at the end of input, -1 (after a message naming the line) when it is
 * longer than MAX_LINE. */
static int read_line(FILE *f, char *buf, int64_t line_no)
{
    if (!fgets(buf, MAX_LINE + 2, f)) return 0;
    size_t n = strlen(buf);
    if (n == MAX_LINE + 1 && buf[n - 1] != '\n') {
        fprintf(stderr, "mnemo translate: standard input line %lld is longer than %d bytes; split it into sentences\n",
                (long long)line_no, MAX_LINE);
        return -1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    return 1;
}

static int translate_lines(mn_mt_decoder *d, const mn_bpe *bpe, const mn_mt_search *q, const char *const *lines, int n)
{
    char **outs = calloc((size_t)(n ? n : 1), sizeof *outs);
    if (!outs || mn_mt_translate_text(d, bpe, q, lines, n, outs)) { fprintf(stderr, "mnemo translate: %s\n", mn_errmsg()); free(outs); return MN_EXIT_RUNTIME; }
    for (int i = 0; i < n; i++) { printf("%s\n", outs[i]); free(outs[i]); }
    free(outs);
    fflush(stdout);
    return MN_EXIT_OK;
}

int cmd_translate(int argc, char **argv)
{
    tr_args a = { 0 };
    int rc = parse_tr("translate", argc, argv, &a,
                      "usage: mnemo translate --ckpt CKPT [--beam K] [--alpha A] [--max-len N] [--threads N] [SENTENCE ...]\n"
                      "  Translates each SENTENCE, or each line of standard input, with a checkpoint of\n"
                      "  `mnemo train --model translate`: greedy (--beam 1, the default) or beam search with\n"
                      "  GNMT's length penalty ((5 + len) / 6)^alpha (--alpha, default 0.6). One line out per line in.\n");
    if (rc) return rc < 0 ? MN_EXIT_OK : rc;
    mn_params *P;
    mn_mt_cfg c;
    mn_bpe *bpe;
    if (open_ckpt(a.ckpt, &P, &c, &bpe)) { fprintf(stderr, "mnemo translate: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    mn_mt_decoder *d = mn_mt_decoder_new(P, &c);
    if (!d) { mn_params_free(P); mn_bpe_free(bpe); return MN_EXIT_RUNTIME; }
    if (optind < argc) rc = translate_lines(d, bpe, &a.q, (const char *const *)argv + optind, argc - optind);
    char *line = optind < argc ? NULL : malloc(MAX_LINE + 2);
    if (optind >= argc && !line) { fprintf(stderr, "mnemo translate: out of memory\n"); rc = MN_EXIT_RUNTIME; }
    int got;
    for (int64_t no = 1; line && !rc && (got = read_line(stdin, line, no)) != 0; no++) {
        const char *one[1] = { line };
        if (got < 0) rc = MN_EXIT_RUNTIME;
        else if (!*line) printf("\n");
        else rc = translate_lines(d, bpe, &a.q, one, 1);
    }
    free(line);
    mn_mt_decoder_free(d);
    mn_params_free(P);
    mn_bpe_free(bpe);
    return rc;
}

int cmd_eval_translate(int argc, char **argv)
{
    tr_args a = { 0 };
    int rc = parse_tr("eval", argc, argv, &a,
                      "usage: mnemo eval --ckpt CKPT [--beam K] [--alpha A] [--limit N] [--samples N] [--split train|valid|test]\n"
                      "                  [--src F --tgt F] [--threads N] [--hyp FILE] [--batch N]\n"
                      "  translation: corpus BLEU (13a, as sacreBLEU) and chrF on the test pairs (or --split) of the\n"
                      "  training data (or of --src/--tgt), with a few sample translations; --hyp writes every translation\n"
                      "  to FILE, one line per pair; --batch N decodes N sentences together (1..16, default 16; 1 for latency).\n");
    if (rc) return rc < 0 ? MN_EXIT_OK : rc;
    mn_params *P;
    mn_mt_cfg c;
    mn_bpe *bpe;
    if (open_ckpt(a.ckpt, &P, &c, &bpe)) { fprintf(stderr, "mnemo eval: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    mn_parallel par = { 0 };
    mn_status s = mn_parallel_read(a.src ? a.src : c.src, a.tgt ? a.tgt : c.tgt, &par);
    double bleu = 0, chrf = 0, t = mn_tools_seconds(CLOCK_MONOTONIC);
    static const char *const split_names[3] = { "train", "valid", "test" };
    int64_t n = s ? 0 : a.limit && a.limit < par.count[a.split] ? a.limit : par.count[a.split];
    if (!s && !n) s = mn_set_error(MN_ERR_FORMAT, "eval: no %s pairs in %s / %s", split_names[a.split], a.src ? a.src : c.src, a.tgt ? a.tgt : c.tgt);
    if (!s) s = score_split(P, &c, bpe, &par, a.split, n, &a.q, &bleu, &chrf, (int)a.samples, a.hyp);
    if (!s) printf("%s: BLEU %.2f chrF %.2f on %lld pairs (beam %d, alpha %g), %.2f sentences/s\n", split_names[a.split], bleu, chrf,
                   (long long)n, a.q.beam, (double)a.q.alpha, (double)n / (mn_tools_seconds(CLOCK_MONOTONIC) - t));
    else fprintf(stderr, "mnemo eval: %s\n", mn_errmsg());
    mn_parallel_free(&par);
    mn_params_free(P);
    mn_bpe_free(bpe);
    return s ? MN_EXIT_RUNTIME : MN_EXIT_OK;
}
