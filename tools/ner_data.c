/* tools/ner_data.c: the data side of `mnemo train --model ner`: CoNLL
 * splits as ids, sentences cut into pieces of at most T tokens and grouped
 * in length buckets (so a batch pads little), batches as the model's input
 * tensors, the IOB2 / IOBES transition constraints and word vectors read from a
 * text file. Every message names the file (and line). */
#include "ner_train.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mn_status mn_ner_split_read(mn_ner_split *s, const char *path, int64_t limit)
{
    memset(s, 0, sizeof *s);
    mn_status st = mn_conll_read(path, NULL, &s->c);
    if (st) return st;
    s->nsent = limit > 0 && limit < s->c.nsent ? limit : s->c.nsent;
    s->ntok = s->c.sent[s->nsent] - s->c.sent[0];
    return MN_OK;
}

mn_status mn_ner_split_encode(mn_ner_split *s, const mn_vocab *v, mn_tagset *ts)
{
    size_t n = (size_t)(s->c.ntok ? s->c.ntok : 1);
    s->words = malloc(n * sizeof *s->words);
    s->tags = malloc(n * sizeof *s->tags);
    if (!s->words || !s->tags) return mn_set_error(MN_ERR_NOMEM, "%s: out of memory", s->c.path);
    mn_status st = mn_vocab_encode(v, &s->c, s->words);
    return st ? st : mn_tagset_encode(ts, &s->c, false, s->tags);
}

void mn_ner_split_free(mn_ner_split *s)
{
    mn_conll_free(&s->c);
    free(s->words);
    free(s->tags);
    memset(s, 0, sizeof *s);
}

static int bucket_of(const mn_ner_pieces *p, int len)
{
    int b = 0;
    while (b + 1 < p->nbuckets && p->bucket_T[b] < len) b++;
    return b;
}

mn_status mn_ner_pieces_make(const mn_ner_split *s, int max_T, mn_ner_pieces *p)
{
    memset(p, 0, sizeof *p);
    for (int T = 8; T < max_T && p->nbuckets < 15; T *= 2) p->bucket_T[p->nbuckets++] = T;
    p->bucket_T[p->nbuckets++] = max_T;
    int64_t cap = 0;
    for (int64_t k = 0; k < s->nsent; k++) cap += (s->c.sent[k + 1] - s->c.sent[k] + max_T - 1) / max_T;
    p->v = malloc((size_t)(cap ? cap : 1) * sizeof *p->v);
    if (!p->v) return mn_set_error(MN_ERR_NOMEM, "%s: out of memory", s->c.path);
    for (int64_t k = 0; k < s->nsent; k++)
        for (int64_t a = s->c.sent[k]; a < s->c.sent[k + 1]; a += max_T) {
            int32_t len = (int32_t)(s->c.sent[k + 1] - a < max_T ? s->c.sent[k + 1] - a : max_T);
            p->v[p->n++] = (mn_ner_piece){ a, len, bucket_of(p, len) };
        }
    return MN_OK;
}

void mn_ner_pieces_free(mn_ner_pieces *p)
{
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* A word's characters: start, its first W - 2 bytes, end, padding. */
static void word_chars(const char *w, int W, int32_t *out)
{
    int k = 0;
    out[k++] = 1;
    for (; *w && k < W - 1; w++) out[k++] = (unsigned char)*w + 3;
    out[k++] = 2;
    for (; k < W; k++) out[k] = 0;
}

void mn_ner_fill(const mn_ner_split *s, const mn_ner_pieces *p, const int64_t *idx, int B, int T, int W, int32_t *words,
                 int32_t *chars, int32_t *tags, int32_t *lengths)
{
    for (int b = 0; b < B; b++) {
        const mn_ner_piece *pc = idx[b] >= 0 ? &p->v[idx[b]] : NULL;
        lengths[b] = pc ? pc->len : 0;
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)t * B + b, tok = pc && t < pc->len ? pc->start + t : -1;
            words[i] = tok >= 0 ? s->words[tok] : MN_VOCAB_PAD;
            tags[i] = tok >= 0 ? s->tags[tok] : -100;
            if (!chars) continue;
            if (tok >= 0) word_chars(mn_conll_cell(&s->c, tok, 0), W, chars + i * W);
            else memset(chars + i * W, 0, (size_t)W * sizeof *chars);
        }
    }
}

/* Whether tag j may follow i (i = K: first in a sentence, i = K + 1:
 * j ends the sentence) in IOB2 or IOBES. */
static bool move_ok(const mn_tagset *ts, mn_scheme s, int32_t i, int32_t j, int32_t K)
{
    char pj = ts->prefix[j];
    bool iobes = s == MN_SCHEME_IOBES;
    if (!(pj == 'O' || pj == 'B' || pj == 'I' || (iobes && (pj == 'E' || pj == 'S')))) return false;
    if (i == K + 1) return !iobes || pj == 'O' || pj == 'E' || pj == 'S';
    char pi = i < K ? ts->prefix[i] : 'O';
    bool open = pi == 'B' || pi == 'I';                  /* i leaves a span to continue (IOBES) or may (IOB2) */
    bool same = i < K && ts->type[i] == ts->type[j];
    if (!iobes) return pj != 'I' || (open && same);
    if (pj == 'I' || pj == 'E') return open && same;
    return !open;
}

mn_status mn_ner_constraints(const mn_tagset *ts, mn_scheme s, float *out)
{
    if (s != MN_SCHEME_IOB2 && s != MN_SCHEME_IOBES)
        return mn_set_error(MN_ERR_INVALID, "ner: the tagger trains in IOB2 or IOBES, not %s", mn_scheme_name(s));
    int32_t K = ts->tags.n;
    for (int32_t i = 0; i < K + 2; i++)
        for (int32_t j = 0; j < K; j++) out[(int64_t)i * K + j] = move_ok(ts, s, i, j, K) ? 0.0f : -10000.0f;
    return MN_OK;
}

/* ---- word vectors ---- */

/* Splits a line at spaces and tabs in place; returns the field count (at most max). */
static int split_fields(char *line, char **f, int max)
{
    int n = 0;
    for (char *tok = strtok(line, " \t\r\n"); tok && n < max; tok = strtok(NULL, " \t\r\n")) f[n++] = tok;
    return n;
}

static bool is_count(const char *s)
{
    if (!*s) return false;
    for (; *s; s++) if (!isdigit((unsigned char)*s)) return false;
    return true;
}

enum { MAX_DIM = 4096 };

mn_status mn_ner_vectors_dim(const char *path, int64_t *dim)
{
    FILE *f = mn_fopen_regular(path, "vectors");
    if (!f) return mn_last_status();
    char *line = NULL, *fld[MAX_DIM + 2];
    size_t cap = 0;
    mn_status st = MN_OK;
    int n = 0;
    for (int lineno = 1; lineno <= 2 && getline(&line, &cap, f) > 0; lineno++) {
        n = split_fields(line, fld, MAX_DIM + 2);
        if (lineno == 1 && n == 2 && is_count(fld[0]) && is_count(fld[1])) continue;       /* word2vec header */
        break;
    }
    if (n < 2 || n > MAX_DIM + 1) st = mn_set_error(MN_ERR_FORMAT, "vectors %s: the first vector line has %d fields (want a word and 1 to %d numbers)",
                                                    path, n, MAX_DIM);
    else *dim = n - 1;
    free(line);
    fclose(f);
    return st;
}

/* Parses d numbers into v; false on a bad one. */
static bool parse_vector(char **fld, int64_t d, float *v)
{
    for (int64_t k = 0; k < d; k++) {
        char *e;
        errno = 0;
        float x = strtof(fld[k], &e);
        if (*e || e == fld[k] || !isfinite(x)) return false;
        v[k] = x;
    }
    return true;
}

typedef struct {
    mn_strtab low;          /* lower-cased vocabulary words */
    int32_t *low_of;        /* vocabulary id -> id in low */
    float *low_vec;         /* a vector per low id */
    bool *low_has, *exact;
} lower_index;

static mn_status lower_init(lower_index *x, const mn_vocab *v, int64_t d)
{
    int32_t V = v->words.n;
    memset(x, 0, sizeof *x);
    x->low_of = malloc((size_t)V * sizeof *x->low_of);
    x->low_vec = malloc((size_t)V * (size_t)d * sizeof *x->low_vec);
    x->low_has = calloc((size_t)V, 1);
    x->exact = calloc((size_t)V, 1);
    if (!x->low_of || !x->low_vec || !x->low_has || !x->exact) return mn_set_error(MN_ERR_NOMEM, "vectors: out of memory");
    char buf[1024];
    for (int32_t i = 0; i < V; i++) {
        snprintf(buf, sizeof buf, "%s", v->words.str[i]);
        for (char *c = buf; *c; c++) *c = (char)tolower((unsigned char)*c);
        mn_status s = mn_strtab_add(&x->low, buf, 1, &x->low_of[i]);
        if (s) return s;
    }
    return MN_OK;
}

static void lower_free(lower_index *x)
{
    mn_strtab_free(&x->low);
    free(x->low_of); free(x->low_vec); free(x->low_has); free(x->exact);
}

/* Reads every vector line of f into emb (exact words) and x (lower-case forms). */
static mn_status read_vectors(FILE *f, const char *path, const mn_vocab *v, float *emb, int64_t d, lower_index *x)
{
    char *line = NULL, *fld[MAX_DIM + 2];
    size_t cap = 0;
    float *vec = malloc((size_t)d * sizeof *vec);
    mn_status st = vec ? MN_OK : mn_set_error(MN_ERR_NOMEM, "vectors: out of memory");
    for (int64_t lineno = 1; !st && getline(&line, &cap, f) > 0; lineno++) {
        int n = split_fields(line, fld, MAX_DIM + 2);
        if (n == 0 || (lineno == 1 && n == 2 && is_count(fld[0]) && is_count(fld[1]))) continue;
        if (n != d + 1 || !parse_vector(fld + 1, d, vec)) {
            st = mn_set_error(MN_ERR_FORMAT, "vectors %s line %lld: want a word and %lld numbers, got %d fields or a bad number", path,
                              (long long)lineno, (long long)d, n);
            break;
        }
        int32_t id = mn_strtab_find(&v->words, fld[0]), low = mn_strtab_find(&x->low, fld[0]);
        if (id > MN_VOCAB_UNK) { memcpy(emb + (int64_t)id * d, vec, (size_t)d * sizeof *vec); x->exact[id] = true; }
        if (low >= 0 && !x->low_has[low]) { memcpy(x->low_vec + (int64_t)low * d, vec, (size_t)d * sizeof *vec); x->low_has[low] = true; }
    }
    free(line);
    free(vec);
    return st;
}

mn_status mn_ner_vectors_load(const char *path, const mn_vocab *v, float *emb, int64_t d, int64_t *exact, int64_t *lower)
{
    lower_index x;
    mn_status st = lower_init(&x, v, d);
    FILE *f = st ? NULL : mn_fopen_regular(path, "vectors");
    if (!st && !f) st = mn_last_status();
    if (!st) st = read_vectors(f, path, v, emb, d, &x);
    if (f) fclose(f);
    *exact = *lower = 0;
    for (int32_t i = MN_VOCAB_UNK + 1; !st && i < v->words.n; i++) {
        if (x.exact[i]) { (*exact)++; continue; }
        if (!x.low_has[x.low_of[i]]) continue;
        memcpy(emb + (int64_t)i * d, x.low_vec + (int64_t)x.low_of[i] * d, (size_t)d * sizeof *emb);
        (*lower)++;
    }
    lower_free(&x);
    return st;
}
