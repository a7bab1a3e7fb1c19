/* tools/cmd_ner.c: `mnemo train --model ner`: a BiLSTM-CRF named-entity
 * tagger (models/tagger.c) trained on CoNLL files (--data, --valid, --test;
 * default the Brown-derived split of scripts/brown-to-conll.py), tags read
 * as seqeval does and converted to IOB2 or IOBES (--train-scheme), the CRF
 * constrained to that scheme's valid moves. After each epoch the dev set's
 * entity-level micro F1 picks the best weights; at the end the dev and
 * test reports (entity level as seqeval's default classification_report,
 * then token level) are printed. One compiled graph per length bucket (8,
 * 16, 32, ... --seq tokens). With --out, CKPT.last holds the run after
 * each epoch and at a stop (weights, Adam's state, the best weights, the
 * position), and --resume CKPT.last continues it exactly. */
#include "cmds.h"
#include "env.h"
#include "finetune.h"
#include "ner_train.h"
#include "train.h"
#include <getopt.h>
#include <stddef.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *data, *valid, *test, *out, *vectors, *scheme, *train_scheme, *resume, *init_from, *init_map, *freeze;
    int64_t epochs, steps, batch, seq, embed, char_dim, char_filters, hidden, layers, limit, eval_limit, threads, seed, min_count, wchars;
    double lr, dropout, clip, time_limit;
    bool crf, force, embed_given;
} ner_cfg;

static const ner_cfg defaults = {
    .epochs = 10, .batch = 16, .seq = 64, .embed = 100, .char_dim = 25, .char_filters = 30, .hidden = 100, .layers = 1,
    .threads = 0, .seed = 1, .min_count = 2, .wchars = 20, .lr = 0.002, .dropout = 0.5, .clip = 5.0, .crf = true,
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mnemo train --model ner [--data TRAIN.conll] [--valid DEV.conll] [--test TEST.conll] [--scheme iob1|iob2|ioe1|ioe2|iobes]\n"
        "                   [--train-scheme iob2|iobes] [--crf|--no-crf] [--char-filters N (0: no character features)] [--char-dim N]\n"
        "                   [--vectors FILE] [--init-from CKPT [--init-map FILE]] [--freeze PATTERNS] [--embed N] [--hidden N] [--layers N] [--dropout X] [--epochs N] [--steps N] [--time SECONDS]\n"
        "                   [--batch N] [--seq N] [--lr X] [--clip X] [--min-count N] [--limit N] [--eval-limit N]\n"
        "                   [--threads N] [--seed N] [--out CKPT] [--force] [--resume CKPT.last [--epochs N] [--steps N] [--time S]]\n"
        "A BiLSTM-CRF tagger with a character CNN on CoNLL files (token per line, tag last). Default data:\n"
        "$MNEMO_DATA/brown-ner or ~/.cache/mnemo/brown-ner/{train,dev,test}.conll (scripts/brown-to-conll.py).\n"
        "Prints the dev and test entity-level reports (seqeval's default) and token-level reports. The tagger learns and\n"
        "predicts tags of --train-scheme (default iob2). With --out, CKPT.last holds the run after each epoch; --resume continues it.\n");
}

static const struct option opts[] = {
    { "model", 1, 0, 'm' }, { "data", 1, 0, 'd' }, { "valid", 1, 0, 'v' }, { "test", 1, 0, 'x' }, { "scheme", 1, 0, 'S' },
    { "crf", 0, 0, 'C' }, { "no-crf", 0, 0, 'c' }, { "char-filters", 1, 0, 'F' }, { "char-dim", 1, 0, 'G' },
    { "vectors", 1, 0, 'w' }, { "embed", 1, 0, 'E' }, { "hidden", 1, 0, 'H' }, { "layers", 1, 0, 'L' },
    { "dropout", 1, 0, 'D' }, { "epochs", 1, 0, 'e' }, { "steps", 1, 0, 's' }, { "time", 1, 0, 'T' }, { "batch", 1, 0, 'b' },
    { "seq", 1, 0, 'q' }, { "lr", 1, 0, 'l' }, { "clip", 1, 0, 'k' }, { "min-count", 1, 0, 'M' }, { "limit", 1, 0, 'N' },
    { "eval-limit", 1, 0, 'n' }, { "threads", 1, 0, 't' }, { "seed", 1, 0, 'r' }, { "out", 1, 0, 'o' }, { "force", 0, 0, 'f' },
    { "train-scheme", 1, 0, 'P' }, { "resume", 1, 0, 'R' }, { "init-from", 1, 0, 'I' }, { "init-map", 1, 0, 'Y' }, { "freeze", 1, 0, 'Z' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };

static bool real(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *e;
    double x = strtod(v, &e);
    if (!*v || *e || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "mnemo train: --%s: bad value \"%s\" (want %g to %g)\n", flag, v, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

static bool apply(ner_cfg *c, int o, const char *v)
{
    const char *name = "";
    for (int i = 0; opts[i].name; i++) if (opts[i].val == o) name = opts[i].name;
#define INT(f, lo, hi) return mn_cfg_parse_int("train", name, v, lo, hi, &c->f)
    switch (o) {
    case 'm': return true;
    case 'd': c->data = v; return true;
    case 'v': c->valid = v; return true;
    case 'x': c->test = v; return true;
    case 'S': c->scheme = v; return true;
    case 'P': c->train_scheme = v; return true;
    case 'R': c->resume = v; return true;
    case 'I': c->init_from = v; return true;
    case 'Y': c->init_map = v; return true;
    case 'Z': c->freeze = v; return true;
    case 'w': c->vectors = v; return true;
    case 'o': c->out = v; return true;
    case 'C': c->crf = true; return true;
    case 'c': c->crf = false; return true;
    case 'f': c->force = true; return true;
    case 'F': INT(char_filters, 0, 4096);
    case 'G': INT(char_dim, 1, 4096);
    case 'E': c->embed_given = true; INT(embed, 1, 4096);
    case 'H': INT(hidden, 1, 8192);
    case 'L': INT(layers, 1, 16);
    case 'e': INT(epochs, 1, 1000000);
    case 's': INT(steps, 0, (int64_t)1 << 40);
    case 'b': INT(batch, 1, 4096);
    case 'q': INT(seq, 2, MN_CFG_MAX_SEQ);
    case 'M': INT(min_count, 1, 1 << 30);
    case 'N': INT(limit, 0, (int64_t)1 << 40);
    case 'n': INT(eval_limit, 0, (int64_t)1 << 40);
    case 't': INT(threads, 0, 1024);
    case 'r': INT(seed, 0, (int64_t)1 << 62);
    case 'D': return real(name, v, 0, 0.99, &c->dropout);
    case 'l': return real(name, v, 1e-12, 100, &c->lr);
    case 'k': return real(name, v, 0, 1e9, &c->clip);
    case 'T': return real(name, v, 0, 1e9, &c->time_limit);
    }
#undef INT
    return false;
}

/* What --resume lets a command line change: the bounds, threads and where
 * to write (the stored thread count is kept unless --threads is given: a
 * resumed run is bit-identical to an unbroken one with the same count). */
static const char resume_may[] = "mestTofR";

static const char *flag_name(int o)
{
    for (int i = 0; opts[i].name; i++) if (opts[i].val == o) return opts[i].name;
    return "?";
}

/* The scheme the tagger learns (--train-scheme): IOB2 or IOBES. */
static bool train_scheme_of(const char *name, mn_scheme *out)
{
    *out = MN_SCHEME_IOB2;
    if (!name) return true;
    if (mn_scheme_parse(name, out) || (*out != MN_SCHEME_IOB2 && *out != MN_SCHEME_IOBES)) {
        fprintf(stderr, "mnemo train: --train-scheme: \"%s\" is not iob2 or iobes\n", name);
        return false;
    }
    return true;
}

/* -1: help printed; else an exit code. seen[o] marks the options given. */
static int parse(int argc, char **argv, ner_cfg *c, bool *seen)
{
    *c = defaults;
    int o;
    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'h') { usage(stdout); return -1; }
        if (o == '?') { fprintf(stderr, "mnemo train: unknown or incomplete option \"%s\" (--model ner)\n", argv[optind - 1]); return MN_EXIT_USAGE; }
        if (!apply(c, o, optarg)) return MN_EXIT_USAGE;
        seen[o & 127] = true;
    }
    if (optind < argc) { fprintf(stderr, "mnemo train: unexpected argument \"%s\"\n", argv[optind]); return MN_EXIT_USAGE; }
    mn_scheme s;
    if (c->scheme && mn_scheme_parse(c->scheme, &s)) { fprintf(stderr, "mnemo train: --scheme: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    if (!train_scheme_of(c->train_scheme, &s)) return MN_EXIT_USAGE;
    if (c->init_map && !c->init_from) { fprintf(stderr, "mnemo train: --init-map needs --init-from\n"); return MN_EXIT_USAGE; }
    for (int k = 0; c->resume && k < 128; k++)
        if (seen[k] && !strchr(resume_may, k)) {
            fprintf(stderr, "mnemo train: --resume continues the run stored in %s with its own settings; --%s cannot change it "
                    "(only --epochs, --steps, --time, --threads, --out)\n", c->resume, flag_name(k));
            return MN_EXIT_USAGE;
        }
    return MN_EXIT_OK;
}

/* ---- the run ---- */

typedef struct {
    int T;
    mn_graph *g, *eg;
    mn_exec *ex, *eex;
    mn_tagger_out m, em;
} bucket_graphs;

typedef struct {
    ner_cfg c;
    char paths[3][600];
    mn_ner_split sp[3];              /* train, dev, test */
    mn_ner_pieces pc[3];
    mn_vocab vocab;
    mn_tagset ts;
    float *cons;
    mn_params *P;
    bucket_graphs bg[16];
    mn_optim *opt;
    int32_t *words, *chars, *tags, *lens;
    float *best;                     /* the best weights, all trainable tensors in store order */
    int64_t K;                       /* tags the model scores (a test file may hold more) */
    bool eval_only;                  /* mnemo eval: no training graphs */
    bool usage;                      /* the error is a flag's value (--init-map, --freeze): exit 2 */
    mn_scheme tscheme;               /* the scheme the tagger learns and predicts */
    /* the loop's position: the next batch is batch `batch` of epoch `epoch` (0-based) */
    int64_t epoch, batch, step, best_epoch;
    double best_f1;
    char last[640];                  /* CKPT.last, or empty without --out */
    char out[640];                   /* a resumed run's CKPT */
    json_t *stored;                  /* the resumed run's settings (its strings are r->c's) */
} ner_run;

static const char *split_name[3] = { "train", "dev", "test" };

static void default_paths(ner_run *r)
{
    const char *base = getenv("MNEMO_DATA"), *home = getenv("HOME");
    const char *given[3] = { r->c.data, r->c.valid, r->c.test };
    for (int k = 0; k < 3; k++) {
        if (given[k]) snprintf(r->paths[k], sizeof r->paths[k], "%s", given[k]);
        else if (base) snprintf(r->paths[k], sizeof r->paths[k], "%s/brown-ner/%s.conll", base, split_name[k]);
        else snprintf(r->paths[k], sizeof r->paths[k], "%s/.cache/mnemo/brown-ner/%s.conll", home ? home : ".", split_name[k]);
    }
}

/* Tag scheme: detected on the training file or given; violations reported;
 * every split converted to the tagger's scheme (entities read as seqeval does). */
static mn_status schemes(ner_run *r)
{
    mn_scheme s;
    if (r->c.scheme) mn_scheme_parse(r->c.scheme, &s);
    else s = mn_scheme_detect(&r->ts, (mn_tagseq){ r->sp[0].tags, r->sp[0].c.sent, r->sp[0].c.nsent });
    printf("tags: %s (%s), %d tags; converted to %s\n", mn_scheme_name(s), r->c.scheme ? "--scheme" : "detected on the training file", r->ts.tags.n,
           mn_scheme_name(r->tscheme));
    for (int k = 0; k < 3; k++) {
        mn_tagseq q = { r->sp[k].tags, r->sp[k].c.sent, r->sp[k].c.nsent };
        int64_t first = -1, bad = mn_scheme_violations(&r->ts, q, s, &first);
        if (bad)
            printf("warning: %s: %lld tokens break %s (first at line %u); entities are read as seqeval does\n", r->paths[k], (long long)bad,
                   mn_scheme_name(s), r->sp[k].c.line[first]);
        mn_status st = mn_ner_convert(&r->ts, q, r->tscheme, r->sp[k].tags);
        if (st) return st;
    }
    return MN_OK;
}

static mn_status load_data(ner_run *r)
{
    default_paths(r);
    int64_t limits[3] = { r->c.limit, r->c.eval_limit, r->c.eval_limit };
    mn_status s = MN_OK;
    for (int k = 0; k < 3 && !s; k++) s = mn_ner_split_read(&r->sp[k], r->paths[k], limits[k]);
    if (s && !r->c.data) {
        char why[600];
        snprintf(why, sizeof why, "%s", mn_errmsg());
        return mn_set_error(s, "%s (make the Brown-derived files with scripts/setup.sh or scripts/brown-to-conll.py)", why);
    }
    const mn_conll *all[3] = { &r->sp[0].c, &r->sp[1].c, &r->sp[2].c };
    mn_conll used = r->sp[0].c;                      /* the vocabulary of the sentences trained on (--limit) */
    used.nsent = r->sp[0].nsent;
    used.ntok = s ? 0 : used.sent[used.nsent];
    if (!s) s = mn_vocab_build(&r->vocab, &used, (mn_vocab_opts){ .min_count = (int)r->c.min_count });
    if (!s) s = mn_tagset_build(&r->ts, all, 3);
    for (int k = 0; k < 3 && !s; k++) s = mn_ner_split_encode(&r->sp[k], &r->vocab, &r->ts);
    if (!s) s = schemes(r);
    for (int k = 0; k < 3 && !s; k++) s = mn_ner_pieces_make(&r->sp[k], (int)r->c.seq, &r->pc[k]);
    return s;
}

static int W_of(const ner_run *r) { return (int)r->c.wchars + 2; }

/* The training and evaluation graphs of bucket b, built on first use. */
/* The tagger over a [T, B] batch of inputs in g (its parameters created in r->P on first use). */
static mn_tagger_out build(ner_run *r, mn_graph *g, int T, bool train)
{
    int B = (int)r->c.batch, W = W_of(r);
    mn_graph_set_seed(g, (uint64_t)r->c.seed);
    mn_node *w = mn_input(g, "words", MN_I32, MN_SHAPE(T, B)), *y = mn_input(g, "tags", MN_I32, MN_SHAPE(T, B));
    mn_node *l = mn_input(g, "lengths", MN_I32, MN_SHAPE(B));
    mn_node *ch = r->c.char_filters ? mn_input(g, "chars", MN_I32, MN_SHAPE((int64_t)T * B, W)) : NULL;
    return mn_bilstm_crf(g, "ner", w, ch, y, l, (mn_tagger_opts){
        .words = r->vocab.words.n, .chars = MN_NER_CHARS, .tags = r->K, .word_dim = r->c.embed, .char_dim = r->c.char_dim,
        .char_filters = r->c.char_filters, .hidden = r->c.hidden, .layers = (int)r->c.layers, .dropout = (float)r->c.dropout,
        .training = train, .crf = r->c.crf, .constraints = r->cons });
}

static mn_status graphs(ner_run *r, int b)
{
    bucket_graphs *x = &r->bg[b];
    if (x->eex) return MN_OK;
    int T = r->pc[2].bucket_T[b];                  /* every split has the same buckets */
    x->T = T;
    for (int train = !r->eval_only; train >= 0; train--) {
        mn_graph *g = mn_graph_new(r->P);
        mn_tagger_out m = build(r, g, T, train);
        const mn_node *outs[2] = { m.emissions, m.transitions };
        mn_exec *ex = m.loss ? mn_compile(g, m.loss, mn_tools_compile_opts(&(mn_compile_opts){ .threads = (int)r->c.threads,
            .no_backward = !train, .outputs = train ? NULL : outs, .noutputs = train ? 0 : (m.transitions ? 2 : 1) })) : NULL;
        if (train) { x->g = g; x->ex = ex; x->m = m; }
        else { x->eg = g; x->eex = ex; x->em = m; }
        if (!ex) return mn_set_error(MN_ERR_INVALID, "ner model (T = %d): %s", T, r->eval_only ? mn_errmsg() : mn_graph_errmsg(g));
    }
    return MN_OK;
}

static mn_status feed(ner_run *r, mn_exec *ex, int split, const int64_t *idx, int T)
{
    int B = (int)r->c.batch, W = W_of(r);
    mn_ner_fill(&r->sp[split], &r->pc[split], idx, B, T, W, r->words, r->c.char_filters ? r->chars : NULL, r->tags, r->lens);
    for (int64_t i = 0; i < (int64_t)T * B; i++)      /* a gold tag the model never saw: the loss reads O (id 0) instead */
        if (r->tags[i] >= r->K) r->tags[i] = 0;
    mn_status s = mn_exec_feed_data(ex, "words", r->words, (size_t)T * B * sizeof(int32_t));
    if (!s) s = mn_exec_feed_data(ex, "tags", r->tags, (size_t)T * B * sizeof(int32_t));
    if (!s) s = mn_exec_feed_data(ex, "lengths", r->lens, (size_t)B * sizeof(int32_t));
    if (!s && r->c.char_filters) s = mn_exec_feed_data(ex, "chars", r->chars, (size_t)T * B * W * sizeof(int32_t));
    return s;
}

/* Decodes one batch into pred (ids per token of the split). */
static mn_status decode(ner_run *r, int split, const int64_t *idx, int T, int32_t *pred)
{
    int B = (int)r->c.batch;
    int64_t K = r->K;
    bucket_graphs *x = &r->bg[r->pc[split].v[idx[0]].bucket];
    mn_status s = feed(r, x->eex, split, idx, T);
    if (!s) s = mn_exec_run(x->eex);
    if (s) return s;
    const float *em = mn_f32(mn_exec_value(x->eex, x->em.emissions));
    int32_t *path = r->tags;                                         /* reused as [T, B] output */
    if (r->c.crf) s = mn_crf_viterbi(em, T, B, K, mn_f32(mn_exec_value(x->eex, x->em.transitions)), r->lens, path);
    for (int64_t i = 0; !r->c.crf && i < (int64_t)T * B; i++) {
        int32_t best = 0;
        for (int32_t k = 1; k < K; k++) best = em[i * K + k] > em[i * K + best] ? k : best;
        path[i] = best;
    }
    for (int b = 0; !s && b < B && idx[b] >= 0; b++) {
        const mn_ner_piece *p = &r->pc[split].v[idx[b]];
        for (int t = 0; t < p->len; t++) pred[p->start + t] = path[(int64_t)t * B + b];
    }
    return s;
}

/* Batches of one split: pieces grouped by bucket (in `order` within each), B per batch, -1 padding. */
static int64_t make_batches(const mn_ner_pieces *p, const int64_t *order, int B, int64_t *out)
{
    int64_t nb = 0;
    for (int b = 0; b < p->nbuckets; b++) {
        int k = 0;
        for (int64_t i = 0; i < p->n; i++) {
            if (p->v[order[i]].bucket != b) continue;
            out[nb * B + k++] = order[i];
            if (k == B) { nb++; k = 0; }
        }
        if (k) { for (; k < B; k++) out[nb * B + k] = -1; nb++; }
    }
    return nb;
}

static void shuffle(int64_t *v, int64_t n, uint64_t seed, uint64_t stream, int64_t stride)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mn_rng_uniform(seed, stream, (uint64_t)i) * (float)(i + 1));
        if (j > i) j = i;
        for (int64_t k = 0; k < stride; k++) { int64_t t = v[i * stride + k]; v[i * stride + k] = v[j * stride + k]; v[j * stride + k] = t; }
    }
}

/* Predicts a whole split; pred gets an id per token. */
static mn_status predict(ner_run *r, int split, int32_t *pred)
{
    const mn_ner_pieces *p = &r->pc[split];
    int B = (int)r->c.batch;
    int64_t *order = malloc((size_t)(p->n ? p->n : 1) * sizeof *order), *batches = malloc((size_t)(p->n + p->nbuckets) * B * sizeof *batches);
    mn_status s = order && batches ? MN_OK : mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    for (int64_t i = 0; !s && i < p->n; i++) order[i] = i;
    int64_t nb = s ? 0 : make_batches(p, order, B, batches);
    for (int64_t k = 0; !s && k < nb; k++) {
        int bucket = p->v[batches[k * B]].bucket;
        s = graphs(r, bucket);
        if (!s) s = decode(r, split, batches + k * B, p->bucket_T[bucket], pred);
    }
    free(order);
    free(batches);
    return s;
}

/* The entity-level report of a split (and the token level with `tokens`); *f1 gets the micro F1. */
static mn_status evaluate(ner_run *r, int split, bool print, double *f1)
{
    mn_ner_split *sp = &r->sp[split];
    int32_t *pred = malloc((size_t)(sp->c.ntok ? sp->c.ntok : 1) * sizeof *pred);
    if (!pred) return mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    mn_status s = predict(r, split, pred);
    mn_tagseq gold = { sp->tags, sp->c.sent, sp->nsent }, pq = { pred, sp->c.sent, sp->nsent };
    mn_report rep = { 0 }, tok = { 0 };
    if (!s) s = mn_report_entities(&r->ts, gold, pq, &rep);
    if (!s) *f1 = rep.micro.f;
    if (!s && print) s = mn_report_tokens(&r->ts, gold, pq, &tok);
    if (!s && print) {
        printf("\n%s: %s, %lld sentences, %lld tokens; entity level (seqeval default):\n", split_name[split], r->paths[split],
               (long long)sp->nsent, (long long)sp->ntok);
        mn_report_print(stdout, &rep, 4);
        printf("\n%s: token level:\n", split_name[split]);
        mn_report_print(stdout, &tok, 4);
    }
    mn_report_free(&rep);
    mn_report_free(&tok);
    free(pred);
    return s;
}

static mn_status words_tags_json(const ner_run *r, char **w, char **t);

/* --init-from: the tensors a checkpoint shares with this model, by name
 * or renamed by --init-map, rows of words, characters and tags matched by
 * what they stand for (ner_init.c; not on --resume, whose store already
 * holds them); --freeze: fnmatch patterns of parameters that keep their
 * values. Both before any graph is compiled: the parameters are created by
 * building one graph that is then dropped. */
static mn_status init_from(ner_run *r)
{
    mn_params *Q = mn_params_new();
    char *w = NULL, *t = NULL, *map = NULL;
    mn_status s = Q ? mn_params_load(Q, r->c.init_from) : mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    char msg[700];
    if (s) snprintf(msg, sizeof msg, "%s", mn_errmsg());
    if (s) s = mn_set_error(s, "--init-from %s: %s", r->c.init_from, msg);
    if (!s && r->c.init_map && !(map = mn_ft_read_map(r->c.init_map))) {
        snprintf(msg, sizeof msg, "%s", mn_errmsg());
        s = mn_set_error(MN_ERR_IO, "--init-map %s: %s", r->c.init_map, msg);
        r->usage = true;
    }
    if (!s) s = words_tags_json(r, &w, &t);
    mn_ner_init in = { .path = r->c.init_from, .map_path = r->c.init_map, .map = map, .words = &r->vocab.words, .tags_json = t };
    if (!s) s = mn_ner_init_from(r->P, Q, &in, &r->usage);
    free(w);
    free(t);
    free(map);
    mn_params_free(Q);
    return s;
}

static mn_status init_and_freeze(ner_run *r)
{
    mn_graph *g = mn_graph_new(r->P);
    build(r, g, 8, true);
    mn_status s = mn_graph_status(g) ? mn_set_error(MN_ERR_INVALID, "ner model: %s", mn_graph_errmsg(g)) : MN_OK;
    mn_graph_free(g);
    if (!s && r->c.init_from && !r->c.resume) s = init_from(r);
    int n = 0;
    char msg[700];
    if (!s && r->c.freeze && (s = mn_params_freeze(r->P, r->c.freeze, true, &n))) {
        snprintf(msg, sizeof msg, "%s", mn_errmsg());
        s = mn_set_error(s, "--freeze: %s", msg);
        r->usage = true;
    }
    if (!s && r->c.freeze) printf("frozen: %d parameters, %lld values (%s)\n", n, (long long)mn_params_frozen_numel(r->P), r->c.freeze);
    return s;
}

static mn_status setup(ner_run *r)
{
    ner_cfg *c = &r->c;
    mn_status s = MN_OK;
    if (c->vectors && !c->resume) {
        int64_t d;
        s = mn_ner_vectors_dim(c->vectors, &d);
        if (!s && c->embed_given && d != c->embed)
            s = mn_set_error(MN_ERR_INVALID, "vectors %s hold %lld numbers per word, --embed says %lld", c->vectors, (long long)d, (long long)c->embed);
        if (!s) c->embed = d;
    }
    if (!s) s = load_data(r);
    if (s) return s;
    int64_t K = r->K = r->ts.tags.n, TB = c->seq * c->batch;
    r->cons = malloc((size_t)((K + 2) * K) * sizeof *r->cons);
    r->words = malloc((size_t)TB * sizeof *r->words);
    r->tags = malloc((size_t)TB * sizeof *r->tags);
    r->lens = malloc((size_t)c->batch * sizeof *r->lens);
    r->chars = malloc((size_t)(TB * W_of(r)) * sizeof *r->chars);
    if (!r->cons || !r->words || !r->tags || !r->lens || !r->chars) return mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    s = mn_ner_constraints(&r->ts, r->tscheme, r->cons);
    if (s) return s;
    r->P = mn_params_new();
    mn_params_set_seed(r->P, (uint64_t)c->seed);
    if (c->init_from || c->freeze) s = init_and_freeze(r);
    if (!s) s = graphs(r, 0);
    if (!s && c->vectors && !c->resume) {
        int64_t exact, lower;
        s = mn_ner_vectors_load(c->vectors, &r->vocab, mn_f32(mn_params_get(r->P, "ner.words.weight")), c->embed, &exact, &lower);
        if (!s) printf("vectors %s: %lld of %d words found (%lld more by lower case); the others keep their random start\n", c->vectors,
                       (long long)exact, r->vocab.words.n - 2, (long long)lower);
    }
    mn_adam_opts ao = MN_ADAM_DEFAULTS;
    ao.lr = (float)c->lr;
    if (!s && !(r->opt = mn_adam(r->P, ao))) s = mn_set_error(MN_ERR_NOMEM, "ner: %s", mn_errmsg());
    return s;
}

static void teardown(ner_run *r)
{
    for (int b = 0; b < 16; b++) {
        mn_exec_free(r->bg[b].ex); mn_exec_free(r->bg[b].eex); mn_graph_free(r->bg[b].g); mn_graph_free(r->bg[b].eg);
    }
    mn_optim_free(r->opt);
    mn_params_free(r->P);
    for (int k = 0; k < 3; k++) { mn_ner_split_free(&r->sp[k]); mn_ner_pieces_free(&r->pc[k]); }
    mn_vocab_free(&r->vocab);
    mn_tagset_free(&r->ts);
    free(r->cons); free(r->words); free(r->tags); free(r->lens); free(r->chars); free(r->best);
    json_decref(r->stored);
}

/* Copies the trainable tensors to (save) or from r->best. */
static mn_status keep_best(ner_run *r, bool save)
{
    int64_t total = mn_params_numel(r->P), off = 0;
    if (!r->best && !(r->best = malloc((size_t)total * sizeof *r->best))) return mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    for (int i = 0; i < mn_params_count(r->P); i++) {
        if (!mn_params_grad(r->P, i)) continue;
        mn_tensor *t = mn_params_value(r->P, i);
        int64_t n = mn_tensor_numel(t);
        if (save) memcpy(r->best + off, mn_f32(t), (size_t)n * sizeof(float));
        else memcpy(mn_f32(t), r->best + off, (size_t)n * sizeof(float));
        off += n;
    }
    return MN_OK;
}

/* The words and tags as JSON arrays (caller frees). */
static mn_status words_tags_json(const ner_run *r, char **w, char **t)
{
    json_t *words = json_array(), *tags = json_array();
    for (int32_t i = 0; i < r->vocab.words.n; i++) json_array_append_new(words, json_string(r->vocab.words.str[i]));
    for (int32_t i = 0; i < r->ts.tags.n; i++) json_array_append_new(tags, json_string(r->ts.tags.str[i]));
    *w = json_dumps(words, JSON_COMPACT);
    *t = json_dumps(tags, JSON_COMPACT);
    json_decref(words);
    json_decref(tags);
    return *w && *t ? MN_OK : mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
}

/* The checkpoint's metadata: the words, the tags, the sizes and the scheme. */
static mn_status set_model_meta(ner_run *r, mn_params *P)
{
    char *w = NULL, *t = NULL, cfg[600];
    snprintf(cfg, sizeof cfg, "{\"embed\": %lld, \"char_dim\": %lld, \"char_filters\": %lld, \"hidden\": %lld, \"layers\": %lld, \"crf\": %s, "
             "\"scheme\": \"%s\"}", (long long)r->c.embed, (long long)r->c.char_dim, (long long)r->c.char_filters, (long long)r->c.hidden,
             (long long)r->c.layers, r->c.crf ? "true" : "false", mn_scheme_name(r->tscheme));
    mn_status s = words_tags_json(r, &w, &t);
    if (!s) s = mn_params_set_meta(P, "mnemo.model", "ner");
    if (!s) s = mn_params_set_meta(P, "mnemo.ner.config", cfg);
    if (!s) s = mn_params_set_meta(P, "mnemo.ner.words", w);
    if (!s) s = mn_params_set_meta(P, "mnemo.ner.tags", t);
    const char *origin = mn_params_get_meta(r->P, "mnemo.init_from");
    if (!s && origin && P != r->P) s = mn_params_set_meta(P, "mnemo.init_from", origin);
    free(w);
    free(t);
    return s;
}

static mn_status save(ner_run *r)
{
    mn_status s = mn_out_check_regular(r->c.out);
    if (!s) s = set_model_meta(r, r->P);
    return s ? s : mn_params_save(r->P, r->c.out);
}

/* ---- the run's settings and position (CKPT.last, --resume) ---- */

typedef struct { const char *key; char kind; size_t off; } cfg_field;   /* kind: s string, i int64, d double, b bool */
#define S(f) { #f, 's', offsetof(ner_cfg, f) }
#define I(f) { #f, 'i', offsetof(ner_cfg, f) }
#define D(f) { #f, 'd', offsetof(ner_cfg, f) }
static const cfg_field cfg_fields[] = {
    S(data), S(valid), S(test), S(vectors), S(scheme), S(train_scheme), S(init_from), S(init_map), S(freeze), I(epochs), I(batch), I(seq), I(embed), I(char_dim),
    I(char_filters), I(hidden), I(layers), I(limit), I(eval_limit), I(seed), I(min_count), I(wchars),
    I(threads), D(lr), D(dropout), D(clip),
    { "crf", 'b', offsetof(ner_cfg, crf) }, { NULL, 0, 0 } };
#undef S
#undef I
#undef D

/* The settings of the run as JSON: every field that shapes the training, the data files as this run resolved them. */
static char *cfg_json(const ner_run *r)
{
    ner_cfg c = r->c;
    c.data = r->paths[0];
    c.valid = r->paths[1];
    c.test = r->paths[2];
    json_t *o = json_object();
    for (const cfg_field *f = cfg_fields; f->key; f++) {
        const char *p = (const char *)&c + f->off;
        json_t *v = f->kind == 's' ? (*(const char *const *)p ? json_string(*(const char *const *)p) : json_null())
                  : f->kind == 'i' ? json_integer(*(const int64_t *)p)
                  : f->kind == 'd' ? json_real(*(const double *)p) : json_boolean(*(const bool *)p);
        json_object_set_new(o, f->key, v);
    }
    char *out = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    return out;
}

/* Restores the settings stored by cfg_json into c (strings point into r->stored). */
static mn_status cfg_restore(ner_run *r, const char *text, const char *path, ner_cfg *c)
{
    json_error_t err;
    r->stored = json_loads(text ? text : "", 0, &err);
    if (!json_is_object(r->stored)) return mn_set_error(MN_ERR_FORMAT, "%s: mnemo.ner.run is missing or not a JSON object", path);
    for (const cfg_field *f = cfg_fields; f->key; f++) {
        json_t *v = json_object_get(r->stored, f->key);
        char *p = (char *)c + f->off;
        if (!v && !strcmp(f->key, "init_map")) continue;     /* runs stored before --init-map */
        bool ok = f->kind == 's' ? (json_is_string(v) || json_is_null(v)) : f->kind == 'i' ? json_is_integer(v)
                : f->kind == 'd' ? json_is_number(v) : json_is_boolean(v);
        if (!ok) return mn_set_error(MN_ERR_FORMAT, "%s: mnemo.ner.run: \"%s\" is missing or of the wrong type", path, f->key);
        if (f->kind == 's') *(const char **)p = json_string_value(v);
        else if (f->kind == 'i') *(int64_t *)p = json_integer_value(v);
        else if (f->kind == 'd') *(double *)p = json_number_value(v);
        else *(bool *)p = json_is_true(v);
    }
    return MN_OK;
}

/* CKPT.last: every tensor of the store (weights and Adam's state), the
 * best weights as best.<name>, the settings and the position. Written
 * through a second store so the run's own store never holds the copies. */
static mn_status save_last(ner_run *r)
{
    if (!r->last[0]) return MN_OK;
    mn_params *Q = mn_params_new();
    mn_status s = Q ? mn_out_check_regular(r->last) : mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    int64_t off = 0;
    for (int i = 0; !s && i < mn_params_count(r->P); i++) {
        mn_tensor *t = mn_params_value(r->P, i);
        char name[300];
        s = mn_params_create_state(Q, mn_params_name(r->P, i), t->shape);
        if (!s) memcpy(mn_f32(mn_params_get(Q, mn_params_name(r->P, i))), mn_f32(t), mn_tensor_bytes(t));
        if (s || !mn_params_grad(r->P, i) || !r->best_epoch) continue;
        snprintf(name, sizeof name, "best.%s", mn_params_name(r->P, i));
        s = mn_params_create_state(Q, name, t->shape);
        if (!s) memcpy(mn_f32(mn_params_get(Q, name)), r->best + off, mn_tensor_bytes(t));
        off += mn_tensor_numel(t);
    }
    char *cfg = s ? NULL : cfg_json(r), pos[300];
    snprintf(pos, sizeof pos, "{\"epoch\": %lld, \"batch\": %lld, \"step\": %lld, \"best_epoch\": %lld, \"best_f1\": %.17g}", (long long)r->epoch,
             (long long)r->batch, (long long)r->step, (long long)r->best_epoch, r->best_f1);
    if (!s && !cfg) s = mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    if (!s) s = set_model_meta(r, Q);
    if (!s) s = mn_params_set_meta(Q, "mnemo.ner.run", cfg);
    if (!s) s = mn_params_set_meta(Q, "mnemo.ner.position", pos);
    if (!s) s = mn_params_save(Q, r->last);
    free(cfg);
    mn_params_free(Q);
    return s;
}

static mn_status position_of(ner_run *r, const char *text, const char *path)
{
    json_error_t err;
    json_t *o = json_loads(text ? text : "", 0, &err);
    const char *keys[4] = { "epoch", "batch", "step", "best_epoch" };
    int64_t *dst[4] = { &r->epoch, &r->batch, &r->step, &r->best_epoch };
    mn_status s = json_is_object(o) && json_is_number(json_object_get(o, "best_f1")) ? MN_OK
                : mn_set_error(MN_ERR_FORMAT, "%s: mnemo.ner.position is missing or malformed", path);
    for (int k = 0; k < 4 && !s; k++) {
        json_t *v = json_object_get(o, keys[k]);
        if (!json_is_integer(v) || json_integer_value(v) < 0) s = mn_set_error(MN_ERR_FORMAT, "%s: mnemo.ner.position: bad \"%s\"", path, keys[k]);
        else *dst[k] = json_integer_value(v);
    }
    if (!s) r->best_f1 = json_number_value(json_object_get(o, "best_f1"));
    json_decref(o);
    return s;
}

/* Reads the run's settings from CKPT.last into r->c, keeping the bounds,
 * threads and output this command line gives (seen). */
static mn_status resume_settings(ner_run *r, mn_params *Q, const bool *seen)
{
    ner_cfg given = r->c;
    const char *path = given.resume;
    const char *model = mn_params_get_meta(Q, "mnemo.model");
    if (!model || strcmp(model, "ner") || !mn_params_get_meta(Q, "mnemo.ner.position"))
        return mn_set_error(MN_ERR_FORMAT, "%s: not the .last checkpoint of a `mnemo train --model ner` run with --out", path);
    mn_status s = cfg_restore(r, mn_params_get_meta(Q, "mnemo.ner.run"), path, &r->c);
    if (s) return s;
    r->c.resume = path;
    r->c.steps = given.steps;
    r->c.time_limit = given.time_limit;
    r->c.force = given.force;
    if (seen['e']) r->c.epochs = given.epochs;
    if (seen['t']) r->c.threads = given.threads;              /* results are bit-identical for one thread count */
    s = position_of(r, mn_params_get_meta(Q, "mnemo.ner.position"), path);
    if (!s && r->epoch >= r->c.epochs)
        s = mn_set_error(MN_ERR_INVALID, "%s: its run has done its %lld epochs; give --epochs to train further", path, (long long)r->c.epochs);
    if (s) return s;
    size_t n = strlen(path);
    bool dotlast = n > 5 && !strcmp(path + n - 5, ".last");
    if (seen['o']) r->c.out = given.out;
    else if (dotlast) {
        snprintf(r->out, sizeof r->out, "%.*s", (int)(n - 5), path);       /* the run of CKPT.last writes CKPT */
        r->c.out = r->out;
    } else return mn_set_error(MN_ERR_INVALID, "%s does not end in .last: give --out for the resumed run", path);
    return MN_OK;
}

/* The words and tags of CKPT.last must be those this run rebuilt from the data. */
static mn_status same_vocabulary(ner_run *r, mn_params *Q)
{
    char *w = NULL, *t = NULL;
    mn_status s = words_tags_json(r, &w, &t);
    const char *sw = mn_params_get_meta(Q, "mnemo.ner.words"), *st = mn_params_get_meta(Q, "mnemo.ner.tags");
    if (!s && (!sw || !st || strcmp(sw, w) || strcmp(st, t)))
        s = mn_set_error(MN_ERR_INVALID, "%s: its words or tags differ from those of %s now (the data changed since)", r->c.resume, r->paths[0]);
    free(w);
    free(t);
    return s;
}

/* Copies one tensor of CKPT.last to dst (same shape). */
static mn_status copy_from(const char *path, mn_params *Q, const char *name, mn_tensor *dst)
{
    mn_tensor *src = mn_params_get(Q, name);
    if (!src || !mn_shape_eq(src->shape, dst->shape))
        return mn_set_error(MN_ERR_FORMAT, "%s: tensor %s is missing or of another shape", path, name);
    memcpy(mn_f32(dst), mn_f32(src), mn_tensor_bytes(dst));
    return MN_OK;
}

/* Copies CKPT.last into the run: every weight, the best weights (once an
 * epoch has ended) and the optimizer's state tensors (optim.*, which the
 * optimizer then finds instead of creating them). */
static mn_status resume_tensors(ner_run *r, mn_params *Q)
{
    const char *path = r->c.resume;
    mn_status s = same_vocabulary(r, Q);
    int64_t total = mn_params_numel(r->P), off = 0, nparams = mn_params_count(r->P);
    if (!s && !(r->best = malloc((size_t)(total ? total : 1) * sizeof *r->best))) s = mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    for (int i = 0; !s && i < nparams; i++) {
        const char *name = mn_params_name(r->P, i);
        mn_tensor *v = mn_params_value(r->P, i);
        char bname[300];
        snprintf(bname, sizeof bname, "best.%s", name);
        s = copy_from(path, Q, name, v);
        if (!s && mn_params_grad(r->P, i) && r->best_epoch) {                     /* no best before epoch 1 ends */
            mn_tensor *b = mn_params_get(Q, bname);
            if (!b || !mn_shape_eq(b->shape, v->shape)) s = mn_set_error(MN_ERR_FORMAT, "%s: tensor %s is missing or of another shape", path, bname);
            else memcpy(r->best + off, mn_f32(b), mn_tensor_bytes(v));
        }
        if (mn_params_grad(r->P, i)) off += mn_tensor_numel(v);
    }
    for (int i = 0; !s && i < mn_params_count(Q); i++) {
        const char *name = mn_params_name(Q, i);
        if (strncmp(name, "optim.", 6) || mn_params_get(r->P, name)) continue;
        s = mn_params_create_state(r->P, name, mn_params_value(Q, i)->shape);
        if (!s) s = copy_from(path, Q, name, mn_params_get(r->P, name));
    }
    return s;
}

static double now(void) { return mn_tools_seconds(CLOCK_MONOTONIC); }

/* Epoch r->epoch from batch r->batch on; returns the mean loss of the
 * batches run, sets *stop when --steps or --time ran out (r->batch then
 * names the next batch; at the end of the epoch it is the count). */
static mn_status epoch(ner_run *r, double t0, double *mean, bool *stop)
{
    const mn_ner_pieces *p = &r->pc[0];
    int B = (int)r->c.batch;
    int64_t e = r->epoch;
    int64_t *order = malloc((size_t)(p->n ? p->n : 1) * sizeof *order), *batches = malloc((size_t)(p->n + p->nbuckets) * B * sizeof *batches);
    mn_status s = order && batches ? MN_OK : mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    for (int64_t i = 0; !s && i < p->n; i++) order[i] = i;
    if (!s) shuffle(order, p->n, (uint64_t)r->c.seed, 0x4e45520000ull + (uint64_t)e, 1);
    int64_t nb = s ? 0 : make_batches(p, order, B, batches), done = 0;
    if (!s) shuffle(batches, nb, (uint64_t)r->c.seed, 0x4e45528000ull + (uint64_t)e, B);
    double sum = 0;
    for (; !s && r->batch < nb && !*stop; r->batch++) {
        const int64_t *idx = batches + r->batch * B;
        int bucket = p->v[idx[0]].bucket;
        bucket_graphs *x = &r->bg[bucket];
        s = graphs(r, bucket);
        if (!s) s = feed(r, x->ex, 0, idx, p->bucket_T[bucket]);
        if (!s) mn_exec_set_step(x->ex, (uint64_t)r->step);
        if (!s) s = mn_exec_run(x->ex);
        if (s) break;
        double loss = mn_exec_loss(x->ex);
        if (!isfinite(loss)) { s = mn_set_error(MN_ERR_RUNTIME, "loss is %g at step %lld", loss, (long long)r->step + 1); break; }
        if (r->c.clip > 0) mn_clip_grad_norm(r->P, (float)r->c.clip, 2.0f);
        mn_optim_step(r->opt);
        mn_optim_zero_grad(r->opt);
        sum += loss;
        done++;
        r->step++;
        *stop = (r->c.steps && r->step >= r->c.steps) || (r->c.time_limit > 0 && now() - t0 >= r->c.time_limit);
    }
    if (!s && r->batch >= nb) { r->epoch++; r->batch = 0; }     /* the epoch is complete */
    *mean = done ? sum / (double)done : NAN;
    free(order);
    free(batches);
    return s;
}

/* After an epoch (or a stop within one): the dev F1 and the best weights.
 * At a stop CKPT.last is written first, so a resumed run picks its best
 * among the same (complete) epochs as a run that was never stopped. */
static mn_status after_epoch(ner_run *r, int64_t steps, double loss, double dt)
{
    bool complete = r->batch == 0;
    int64_t shown = complete ? r->epoch : r->epoch + 1;
    double f1 = 0;
    mn_status s = complete ? MN_OK : save_last(r);
    if (!s) s = evaluate(r, 1, false, &f1);
    if (s) return s;
    bool better = f1 > r->best_f1;
    printf("epoch %lld%s: %lld steps, train loss %.4f, %.1f s (%.0f sentences/s), dev entity F1 %.4f%s\n", (long long)shown,
           complete ? "" : " (partial)", (long long)steps, loss, dt, (double)steps * (double)r->c.batch / fmax(dt, 1e-9), f1,
           better ? " (best)" : "");
    fflush(stdout);
    if (better) { r->best_f1 = f1; r->best_epoch = shown; s = keep_best(r, true); }
    if (!s && complete) s = save_last(r);
    return s;
}

static mn_status run(ner_run *r, const bool *seen)
{
    ner_cfg *c = &r->c;
    mn_params *Q = NULL;
    mn_status s = MN_OK;
    r->best_f1 = -1;
    if (c->resume) {
        Q = mn_params_new();
        s = Q ? mn_params_load(Q, c->resume) : mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
        if (!s) s = resume_settings(r, Q, seen);
    }
    if (!s && c->out && strlen(c->out) + 6 > sizeof r->last) s = mn_set_error(MN_ERR_INVALID, "--out %s: path too long", c->out);
    if (!s && c->out) {
        size_t n = strlen(c->out);
        memcpy(r->last, c->out, n);
        memcpy(r->last + n, ".last", 6);
    }
    if (!s && !train_scheme_of(c->train_scheme, &r->tscheme)) s = mn_set_error(MN_ERR_FORMAT, "%s: bad train_scheme", c->resume);
    if (!s) s = setup(r);
    if (!s && Q) s = resume_tensors(r, Q);
    mn_params_free(Q);
    if (s) return s;
    printf("ner (BiLSTM%s, %s) on %s: %lld sentences (%lld pieces), %d words, %lld parameters, batch %lld, %lld threads\n",
           c->crf ? "-CRF" : " + softmax", c->char_filters ? "character CNN" : "no character features", r->paths[0],
           (long long)r->sp[0].nsent, (long long)r->pc[0].n, r->vocab.words.n, (long long)mn_params_numel(r->P), (long long)c->batch,
           (long long)(c->threads ? c->threads : mn_get_num_threads()));
    if (c->resume)
        printf("resuming %s at step %lld (epoch %lld, batch %lld); best dev entity F1 so far %.4f (epoch %lld)\n", c->resume,
               (long long)r->step, (long long)r->epoch + 1, (long long)r->batch, r->best_f1, (long long)r->best_epoch);
    double t0 = now();
    bool stop = (c->steps && r->step >= c->steps);
    while (r->epoch < c->epochs && !stop && !s) {
        double te = now(), loss;
        int64_t s0 = r->step;
        s = epoch(r, t0, &loss, &stop);
        if (!s) s = after_epoch(r, r->step - s0, loss, now() - te);
    }
    if (!s && r->best_f1 < 0) s = mn_set_error(MN_ERR_INVALID, "ner: no epoch ran");
    if (!s) s = keep_best(r, false);
    if (!s) printf("best dev entity F1 %.4f after epoch %lld (weights of that epoch below)\n", r->best_f1, (long long)r->best_epoch);
    double f1;
    if (!s) s = evaluate(r, 1, true, &f1);
    if (!s) s = evaluate(r, 2, true, &f1);
    if (!s && c->out) s = save(r);
    if (!s && c->out) printf("\ncheckpoint %s%s%s\n", c->out, r->last[0] ? ", the run to resume in " : "", r->last);
    return s;
}

int mn_cmd_train_ner(int argc, char **argv)
{
    ner_run r;
    bool seen[128] = { false };
    memset(&r, 0, sizeof r);
    int rc = parse(argc, argv, &r.c, seen);
    if (rc) return rc < 0 ? MN_EXIT_OK : rc;
    if (r.c.out && !r.c.force && access(r.c.out, F_OK) == 0) {
        fprintf(stderr, "mnemo train: %s exists; --force replaces it\n", r.c.out);
        return MN_EXIT_USAGE;
    }
    mn_status s = run(&r, seen);
    if (s) fprintf(stderr, "mnemo train: %s\n", mn_errmsg());
    teardown(&r);
    return !s ? MN_EXIT_OK : r.usage ? MN_EXIT_USAGE : MN_EXIT_RUNTIME;
}

/* ---- mnemo eval --ckpt CKPT of a ner model ---- */

bool mn_ner_is_checkpoint(const char *path)
{
    mn_params *P = mn_params_new();
    bool yes = P && !mn_params_load(P, path) && mn_params_get_meta(P, "mnemo.model") && !strcmp(mn_params_get_meta(P, "mnemo.model"), "ner");
    mn_params_free(P);
    return yes;
}

static int64_t json_int(json_t *o, const char *key) { return json_integer_value(json_object_get(o, key)); }

/* Sizes, words and tags from the checkpoint's metadata. */
static mn_status from_checkpoint(ner_run *r, const char *ckpt)
{
    json_error_t err;
    json_t *cfg = json_loads(mn_params_get_meta(r->P, "mnemo.ner.config") ? mn_params_get_meta(r->P, "mnemo.ner.config") : "", 0, &err);
    json_t *words = json_loads(mn_params_get_meta(r->P, "mnemo.ner.words") ? mn_params_get_meta(r->P, "mnemo.ner.words") : "", 0, &err);
    json_t *tags = json_loads(mn_params_get_meta(r->P, "mnemo.ner.tags") ? mn_params_get_meta(r->P, "mnemo.ner.tags") : "", 0, &err);
    mn_status s = json_is_object(cfg) && json_is_array(words) && json_is_array(tags) && json_array_size(words) >= 2 && json_array_size(tags) >= 1
                      ? MN_OK : mn_set_error(MN_ERR_FORMAT, "%s: its mnemo.ner.config, mnemo.ner.words or mnemo.ner.tags metadata is missing or malformed", ckpt);
    if (!s) {
        r->c.embed = json_int(cfg, "embed"); r->c.char_dim = json_int(cfg, "char_dim"); r->c.char_filters = json_int(cfg, "char_filters");
        r->c.hidden = json_int(cfg, "hidden"); r->c.layers = json_int(cfg, "layers"); r->c.crf = json_is_true(json_object_get(cfg, "crf"));
        const char *sch = json_string_value(json_object_get(cfg, "scheme"));          /* absent in older checkpoints: IOB2 */
        r->tscheme = MN_SCHEME_IOB2;
        if (sch && (mn_scheme_parse(sch, &r->tscheme) || (r->tscheme != MN_SCHEME_IOB2 && r->tscheme != MN_SCHEME_IOBES)))
            s = mn_set_error(MN_ERR_FORMAT, "%s: mnemo.ner.config: scheme \"%s\" is not IOB2 or IOBES", ckpt, sch);
        if (!s) s = mn_tagset_init(&r->ts);
    }
    for (size_t i = 0; !s && i < json_array_size(words); i++) {
        const char *w = json_string_value(json_array_get(words, i));
        s = w ? mn_strtab_add(&r->vocab.words, w, 0, NULL) : mn_set_error(MN_ERR_FORMAT, "%s: word %zu is not a string", ckpt, i);
    }
    for (size_t i = 0; !s && i < json_array_size(tags); i++) {
        const char *t = json_string_value(json_array_get(tags, i));
        int32_t id;
        s = t ? mn_tagset_add(&r->ts, t, &id) : mn_set_error(MN_ERR_FORMAT, "%s: tag %zu is not a string", ckpt, i);
    }
    json_decref(cfg); json_decref(words); json_decref(tags);
    return s;
}

int mn_cmd_eval_ner(const char *ckpt, const char *data, int threads)
{
    ner_run r;
    memset(&r, 0, sizeof r);
    r.c = defaults;
    r.c.threads = threads;
    r.eval_only = true;
    r.P = mn_params_new();
    mn_status s = mn_params_load(r.P, ckpt);
    if (!s) s = from_checkpoint(&r, ckpt);
    int64_t K = r.ts.tags.n;
    r.cons = s ? NULL : malloc((size_t)((K + 2) * K) * sizeof *r.cons);
    if (!s && !r.cons) s = mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    if (!s) s = mn_ner_constraints(&r.ts, r.tscheme, r.cons);   /* before the data may add tags the model never saw */
    default_paths(&r);
    if (data) snprintf(r.paths[2], sizeof r.paths[2], "%s", data);
    if (!s) s = mn_ner_split_read(&r.sp[2], r.paths[2], 0);
    size_t n = (size_t)(r.sp[2].c.ntok ? r.sp[2].c.ntok : 1);
    r.sp[2].words = s ? NULL : malloc(n * sizeof(int32_t));
    r.sp[2].tags = s ? NULL : malloc(n * sizeof(int32_t));
    if (!s && (!r.sp[2].words || !r.sp[2].tags)) s = mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    if (!s) s = mn_vocab_encode(&r.vocab, &r.sp[2].c, r.sp[2].words);
    if (!s) s = mn_tagset_encode(&r.ts, &r.sp[2].c, true, r.sp[2].tags);
    mn_tagseq q = { r.sp[2].tags, r.sp[2].c.sent, r.sp[2].c.nsent };
    if (!s) s = mn_ner_convert(&r.ts, q, r.tscheme, r.sp[2].tags);
    if (!s) s = mn_ner_pieces_make(&r.sp[2], (int)r.c.seq, &r.pc[2]);
    int64_t TB = r.c.seq * r.c.batch;
    r.words = malloc((size_t)TB * sizeof *r.words); r.tags = malloc((size_t)TB * sizeof *r.tags);
    r.lens = malloc((size_t)r.c.batch * sizeof *r.lens); r.chars = malloc((size_t)(TB * W_of(&r)) * sizeof *r.chars);
    if (!s && (!r.words || !r.tags || !r.lens || !r.chars)) s = mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    if (!s) mn_params_set_strict(r.P, true);
    r.K = K;                           /* gold tags the model never saw are in the report, never predicted */
    double f1;
    if (!s) printf("%s: %s tagger, %lld tags, %d words\n", ckpt, r.c.crf ? "BiLSTM-CRF" : "BiLSTM + softmax", (long long)K, r.vocab.words.n);
    if (!s) s = evaluate(&r, 2, true, &f1);
    if (s) fprintf(stderr, "mnemo eval: %s: %s\n", ckpt, mn_errmsg());
    teardown(&r);
    return s ? MN_EXIT_RUNTIME : MN_EXIT_OK;
}
