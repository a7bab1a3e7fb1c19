/* tools/bpe.c: byte-pair encoding. Owns pre-tokenisation, learning with
 * incremental pair counts (a pair -> words index and a lazy max-heap), the
 * rank-ordered encoder, the decoder and the JSON form. Invariant: every
 * merge refers to earlier ids, no pair is merged twice and no token is
 * longer than MN_BPE_MAX_CHUNK bytes, whether learned or loaded. */
#include "bpe.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mn_bpe {
    int n_merges;
    int32_t *merge;       /* [n_merges][2]: ids joined by merge i */
    uint32_t *off;        /* token id -> offset in bytes, [vocab + 1] */
    char *bytes;
    uint64_t *rank_key;   /* (left << 32 | right) -> merge index, open addressing */
    int32_t *rank_val;
    uint64_t rank_mask;
};

#define EMPTY_KEY UINT64_MAX

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* ---- pre-tokenisation: [one leading space] + a run of one class ---- */

static int byte_class(unsigned char c)
{
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
    if (c >= 0x80) return 1;                   /* UTF-8 bytes stay in words */
    if (c >= '0' && c <= '9') return 2;
    return c == ' ' ? 0 : 3;
}

/* Length of the pre-token starting at s (n > 0 bytes left). */
static size_t chunk_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    if (u[0] == ' ') {
        if (n == 1 || u[1] == ' ') return 1;
        i = 1;
    }
    int c = byte_class(u[i]);
    size_t j = i + 1;
    while (j < n && j < MN_BPE_MAX_CHUNK && byte_class(u[j]) == c) j++;
    return j;
}

/* ---- the model: token bytes and merge ranks ---- */

int mn_bpe_vocab(const mn_bpe *b)
{
    return MN_BPE_FIRST_MERGE + b->n_merges;
}

int mn_bpe_merges(const mn_bpe *b)
{
    return b->n_merges;
}

const char *mn_bpe_token(const mn_bpe *b, int32_t id, size_t *len)
{
    if (id < MN_BPE_BYTE0 || id >= mn_bpe_vocab(b)) { *len = 0; return NULL; }
    *len = b->off[id + 1] - b->off[id];
    return b->bytes + b->off[id];
}

void mn_bpe_free(mn_bpe *b)
{
    if (!b) return;
    free(b->merge);
    free(b->off);
    free(b->bytes);
    free(b->rank_key);
    free(b->rank_val);
    free(b);
}

static int32_t rank_of(const mn_bpe *b, int32_t l, int32_t r)
{
    uint64_t k = pair_key(l, r);
    for (uint64_t h = mix(k) & b->rank_mask;; h = (h + 1) & b->rank_mask) {
        if (b->rank_key[h] == k) return b->rank_val[h];
        if (b->rank_key[h] == EMPTY_KEY) return -1;
    }
}

/* Checks the merge list (earlier ids only, no repeated pair, tokens within
 * bounds; `who` starts the message), then builds token bytes and ranks. */
static mn_status finish_model(mn_bpe *b, const char *who)
{
    int vocab = mn_bpe_vocab(b);
    uint64_t cap = 16;
    while (cap < (uint64_t)b->n_merges * 2) cap *= 2;
    b->off = calloc((size_t)vocab + 1, sizeof *b->off);
    b->rank_key = malloc(cap * sizeof *b->rank_key);
    b->rank_val = malloc(cap * sizeof *b->rank_val);
    if (!b->off || !b->rank_key || !b->rank_val) return mn_set_error(MN_ERR_NOMEM, "bpe: out of memory");
    memset(b->rank_key, 0xff, cap * sizeof *b->rank_key);
    b->rank_mask = cap - 1;
    for (int c = 0; c <= 256; c++) b->off[MN_BPE_BYTE0 + c] = (uint32_t)c;
    for (int i = 0; i < b->n_merges; i++) {
        int32_t l = b->merge[2 * i], r = b->merge[2 * i + 1], id = MN_BPE_FIRST_MERGE + i;
        if (l < MN_BPE_BYTE0 || r < MN_BPE_BYTE0 || l >= id || r >= id)
            return mn_set_error(MN_ERR_FORMAT, "%s: merge %d joins ids %d and %d; want ids in [3, %d)", who, i, l, r, id);
        uint32_t len = (b->off[l + 1] - b->off[l]) + (b->off[r + 1] - b->off[r]);
        if (len > MN_BPE_MAX_CHUNK)
            return mn_set_error(MN_ERR_FORMAT, "%s: merge %d makes a token of %u bytes (at most %d)", who, i, len, MN_BPE_MAX_CHUNK);
        uint64_t k = pair_key(l, r), h = mix(k) & b->rank_mask;
        while (b->rank_key[h] != EMPTY_KEY && b->rank_key[h] != k) h = (h + 1) & b->rank_mask;
        if (b->rank_key[h] == k)
            return mn_set_error(MN_ERR_FORMAT, "%s: merge %d repeats the pair (%d, %d) of merge %d", who, i, l, r, b->rank_val[h]);
        b->rank_key[h] = k;
        b->rank_val[h] = i;
        b->off[id + 1] = b->off[id] + len;
        if (b->off[id + 1] > MN_BPE_MAX_BYTES)
            return mn_set_error(MN_ERR_FORMAT, "%s: the tokens of merges 0..%d hold more than %d bytes", who, i, MN_BPE_MAX_BYTES);
    }
    if (!(b->bytes = malloc(b->off[vocab]))) return mn_set_error(MN_ERR_NOMEM, "bpe: out of memory");
    for (int c = 0; c < 256; c++) b->bytes[c] = (char)c;
    for (int i = 0; i < b->n_merges; i++) {
        int32_t l = b->merge[2 * i], r = b->merge[2 * i + 1], id = MN_BPE_FIRST_MERGE + i;
        size_t ll = b->off[l + 1] - b->off[l];
        memcpy(b->bytes + b->off[id], b->bytes + b->off[l], ll);
        memcpy(b->bytes + b->off[id] + ll, b->bytes + b->off[r], b->off[r + 1] - b->off[r]);
    }
    return MN_OK;
}

/* ---- encode / decode ---- */

/* Merges the symbols of one pre-token in rank order; returns the count. */
static int64_t encode_chunk(const mn_bpe *b, const unsigned char *s, size_t n, int32_t *sym)
{
    int64_t m = (int64_t)n;
    for (size_t i = 0; i < n; i++) sym[i] = MN_BPE_BYTE0 + s[i];
    for (;;) {
        int32_t best = -1;
        for (int64_t i = 0; i + 1 < m; i++) {
            int32_t r = rank_of(b, sym[i], sym[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) best = r;
        }
        if (best < 0) return m;
        int32_t l = b->merge[2 * best], r = b->merge[2 * best + 1], o = 0;
        for (int64_t i = 0; i < m; i++) {
            if (i + 1 < m && sym[i] == l && sym[i + 1] == r) {
                sym[o++] = MN_BPE_FIRST_MERGE + best;
                i++;
            } else {
                sym[o++] = sym[i];
            }
        }
        m = o;
    }
}

mn_status mn_bpe_encode(const mn_bpe *b, const char *s, size_t n, int32_t *ids, int64_t cap, int64_t *n_ids)
{
    if (!b || (!s && n)) return mn_set_error(MN_ERR_MISUSE, "bpe_encode: NULL model or text");
    int64_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = chunk_len(s + i, n - i);
        if (cap - o >= (int64_t)len) {
            o += encode_chunk(b, (const unsigned char *)s + i, len, ids + o);
        } else {
            int32_t tmp[MN_BPE_MAX_CHUNK];
            int64_t m = encode_chunk(b, (const unsigned char *)s + i, len, tmp);
            if (o + m > cap) return mn_set_error(MN_ERR_INVALID, "bpe_encode: more than %lld ids", (long long)cap);
            memcpy(ids + o, tmp, (size_t)m * sizeof *ids);
            o += m;
        }
        i += len;
    }
    *n_ids = o;
    return MN_OK;
}

mn_status mn_bpe_decode(const mn_bpe *b, const int32_t *ids, int64_t n, char *out, size_t cap, size_t *len)
{
    if (!b || !out || !cap) return mn_set_error(MN_ERR_MISUSE, "bpe_decode: NULL model or buffer");
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= mn_bpe_vocab(b))
            return mn_set_error(MN_ERR_INVALID, "bpe_decode: id %d at position %lld outside the vocabulary of %d", ids[i], (long long)i, mn_bpe_vocab(b));
        size_t tl;
        const char *t = mn_bpe_token(b, ids[i], &tl);
        if (o + tl + 1 > cap) return mn_set_error(MN_ERR_INVALID, "bpe_decode: output longer than the %zu-byte buffer", cap);
        if (tl) memcpy(out + o, t, tl);
        o += tl;
    }
    out[o] = 0;
    *len = o;
    return MN_OK;
}

/* ---- JSON ---- */

mn_status mn_bpe_to_json(const mn_bpe *b, char **json)
{
    json_t *merges = json_array(), *specials = json_pack("[sss]", "<pad>", "<s>", "</s>");
    bool ok = merges && specials;
    for (int i = 0; ok && i < 2 * b->n_merges; i++) ok = !json_array_append_new(merges, json_integer(b->merge[i]));
    json_t *root = ok ? json_pack("{s:s, s:i, s:s, s:i, s:O, s:O}", "format", "mnemo-bpe", "version", 1,
                                  "pretokens", "space+class-run/256", "vocab", mn_bpe_vocab(b),
                                  "specials", specials, "merges", merges) : NULL;
    json_decref(merges);
    json_decref(specials);
    *json = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return *json ? MN_OK : mn_set_error(MN_ERR_NOMEM, "bpe: out of memory writing JSON");
}

static mn_status bad(const char *what)
{
    return mn_set_error(MN_ERR_FORMAT, "bpe: stored BPE refused: %s", what);
}

static mn_status check_header(json_t *root)
{
    json_t *fmt = json_object_get(root, "format"), *ver = json_object_get(root, "version");
    json_t *pre = json_object_get(root, "pretokens"), *sp = json_object_get(root, "specials");
    if (!json_is_object(root)) return bad("not a JSON object");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "mnemo-bpe")) return bad("\"format\" is not \"mnemo-bpe\"");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) return bad("\"version\" is not 1");
    if (!json_is_string(pre) || strcmp(json_string_value(pre), "space+class-run/256")) return bad("unknown \"pretokens\" rule");
    const char *want[3] = { "<pad>", "<s>", "</s>" };
    if (!json_is_array(sp) || json_array_size(sp) != 3) return bad("\"specials\" is not [\"<pad>\", \"<s>\", \"</s>\"]");
    for (int i = 0; i < 3; i++)
        if (!json_is_string(json_array_get(sp, (size_t)i)) || strcmp(json_string_value(json_array_get(sp, (size_t)i)), want[i]))
            return bad("\"specials\" is not [\"<pad>\", \"<s>\", \"</s>\"]");
    return MN_OK;
}

static mn_status read_merges(json_t *root, mn_bpe *b)
{
    json_t *m = json_object_get(root, "merges"), *voc = json_object_get(root, "vocab");
    if (!json_is_array(m) || json_array_size(m) % 2) return bad("\"merges\" is not an array of id pairs");
    size_t n = json_array_size(m) / 2;
    if (n > MN_BPE_MAX_MERGES) return bad("more than 2^20 merges");
    if (!json_is_integer(voc) || json_integer_value(voc) != (json_int_t)(MN_BPE_FIRST_MERGE + n)) return bad("\"vocab\" is not 259 + the number of merges");
    b->n_merges = (int)n;
    if (!(b->merge = malloc((n ? 2 * n : 1) * sizeof *b->merge))) return mn_set_error(MN_ERR_NOMEM, "bpe: out of memory");
    for (size_t i = 0; i < 2 * n; i++) {
        json_t *v = json_array_get(m, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) return bad("a merge id is not a non-negative 32-bit integer");
        b->merge[i] = (int32_t)json_integer_value(v);
    }
    return MN_OK;
}

mn_status mn_bpe_from_json(const char *json, mn_bpe **out)
{
    *out = NULL;
    if (!json) return mn_set_error(MN_ERR_MISUSE, "bpe_from_json: NULL text");
    size_t len = strnlen(json, (size_t)MN_BPE_MAX_JSON + 1);
    if (len > MN_BPE_MAX_JSON) return bad("longer than 64 MB");
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) return mn_set_error(MN_ERR_FORMAT, "bpe: stored BPE refused: JSON error at line %d column %d: %s", err.line, err.column, err.text);
    mn_bpe *b = calloc(1, sizeof *b);
    mn_status s = b ? check_header(root) : mn_set_error(MN_ERR_NOMEM, "bpe: out of memory");
    if (!s) s = read_merges(root, b);
    json_decref(root);
    if (!s) s = finish_model(b, "bpe: stored BPE refused");
    if (s) { mn_bpe_free(b); return s; }
    *out = b;
    return MN_OK;
}

/* ---- learning ---- */

typedef struct { int32_t *sym; int32_t len; int64_t freq; int32_t stamp; } word;
typedef struct { int32_t a, b; int64_t count, before; int32_t *words; int32_t nw, cw; int32_t stamp; } pair;
typedef struct { int64_t count; int32_t a, b; } heap_item;

typedef struct {
    word *w; int32_t nw, cw;
    pair *p; int32_t np, cp;
    uint64_t *pkey; int32_t *pval; uint64_t pmask;   /* pair index */
    heap_item *h; int64_t nh, ch;
    int32_t *touched; int32_t nt, ct;
} learner;

/* heap order: larger count first, then smaller a, then smaller b */
static bool before(const heap_item *x, const heap_item *y)
{
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static bool heap_push(learner *L, int64_t count, int32_t a, int32_t b)
{
    if (L->nh == L->ch) {
        int64_t c = L->ch ? L->ch * 2 : 1 << 16;
        heap_item *nh = realloc(L->h, (size_t)c * sizeof *nh);
        if (!nh) return false;
        L->h = nh;
        L->ch = c;
    }
    int64_t i = L->nh++;
    heap_item it = { count, a, b };
    while (i > 0 && before(&it, &L->h[(i - 1) / 2])) {
        L->h[i] = L->h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    L->h[i] = it;
    return true;
}

static heap_item heap_pop(learner *L)
{
    heap_item top = L->h[0], last = L->h[--L->nh];
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= L->nh) break;
        if (c + 1 < L->nh && before(&L->h[c + 1], &L->h[c])) c++;
        if (!before(&L->h[c], &last)) break;
        L->h[i] = L->h[c];
        i = c;
    }
    if (L->nh) L->h[i] = last;
    return top;
}

static bool pairs_grow(learner *L)
{
    uint64_t cap = (L->pmask + 1) * 2;
    uint64_t *k = malloc(cap * sizeof *k);
    int32_t *v = malloc(cap * sizeof *v);
    if (!k || !v) { free(k); free(v); return false; }
    memset(k, 0xff, cap * sizeof *k);
    for (int32_t i = 0; i < L->np; i++) {
        uint64_t key = pair_key(L->p[i].a, L->p[i].b), h = mix(key) & (cap - 1);
        while (k[h] != EMPTY_KEY) h = (h + 1) & (cap - 1);
        k[h] = key;
        v[h] = i;
    }
    free(L->pkey);
    free(L->pval);
    L->pkey = k;
    L->pval = v;
    L->pmask = cap - 1;
    return true;
}

/* The pair (a, b), created with count 0 if new; NULL when out of memory. */
static pair *pair_get(learner *L, int32_t a, int32_t b)
{
    uint64_t key = pair_key(a, b), h = mix(key) & L->pmask;
    while (L->pkey[h] != EMPTY_KEY && L->pkey[h] != key) h = (h + 1) & L->pmask;
    if (L->pkey[h] == key) return &L->p[L->pval[h]];
    if ((uint64_t)L->np * 2 >= L->pmask + 1) return pairs_grow(L) ? pair_get(L, a, b) : NULL;
    if (L->np == L->cp) {
        int32_t c = L->cp ? L->cp * 2 : 1 << 14;
        pair *np = realloc(L->p, (size_t)c * sizeof *np);
        if (!np) return NULL;
        L->p = np;
        L->cp = c;
    }
    L->pkey[h] = key;
    L->pval[h] = L->np;
    L->p[L->np] = (pair){ a, b, 0, 0, NULL, 0, 0, -1 };
    return &L->p[L->np++];
}

static bool pair_add_word(pair *p, int32_t w)
{
    if (p->nw && p->words[p->nw - 1] == w) return true;
    if (p->nw == p->cw) {
        int32_t c = p->cw ? p->cw * 2 : 4;
        int32_t *nw = realloc(p->words, (size_t)c * sizeof *nw);
        if (!nw) return false;
        p->words = nw;
        p->cw = c;
    }
    p->words[p->nw++] = w;
    return true;
}

/* Adds sign * freq of word w to each of its pairs (marking them touched in
 * merge `stamp`); on +1 also records w in the pairs' word lists. */
static bool count_word(learner *L, int32_t w, int sign, int32_t stamp)
{
    word *wd = &L->w[w];
    for (int32_t i = 0; i + 1 < wd->len; i++) {
        pair *p = pair_get(L, wd->sym[i], wd->sym[i + 1]);
        if (!p) return false;
        if (p->stamp != stamp) {
            if (L->nt == L->ct) {
                int32_t c = L->ct ? L->ct * 2 : 1024;
                int32_t *nt = realloc(L->touched, (size_t)c * sizeof *nt);
                if (!nt) return false;
                L->touched = nt;
                L->ct = c;
            }
            L->touched[L->nt++] = (int32_t)(p - L->p);
            p->stamp = stamp;
            p->before = p->count;
        }
        p->count += sign * wd->freq;
        if (sign > 0 && !pair_add_word(p, w)) return false;
    }
    return true;
}

static void merge_word(word *wd, int32_t a, int32_t b, int32_t z)
{
    int32_t o = 0;
    for (int32_t i = 0; i < wd->len; i++) {
        if (i + 1 < wd->len && wd->sym[i] == a && wd->sym[i + 1] == b) {
            wd->sym[o++] = z;
            i++;
        } else {
            wd->sym[o++] = wd->sym[i];
        }
    }
    wd->len = o;
}

static bool has_pair(const word *wd, int32_t a, int32_t b)
{
    for (int32_t i = 0; i + 1 < wd->len; i++)
        if (wd->sym[i] == a && wd->sym[i + 1] == b) return true;
    return false;
}

/* Applies merge (a, b) -> z to every word holding the pair and pushes the
 * pairs whose counts grew. */
static bool apply_merge(learner *L, int32_t pi, int32_t z, int32_t stamp)
{
    int32_t a = L->p[pi].a, b = L->p[pi].b, nw = L->p[pi].nw;
    L->nt = 0;
    for (int32_t k = 0; k < nw; k++) {
        int32_t w = L->p[pi].words[k];   /* p may move as pairs grow: index each time */
        if (L->w[w].stamp == stamp || !has_pair(&L->w[w], a, b)) continue;
        L->w[w].stamp = stamp;
        if (!count_word(L, w, -1, stamp)) return false;
        merge_word(&L->w[w], a, b, z);
        if (!count_word(L, w, +1, stamp)) return false;
    }
    for (int32_t t = 0; t < L->nt; t++) {
        pair *p = &L->p[L->touched[t]];
        if (p->count > p->before && !heap_push(L, p->count, p->a, p->b)) return false;
    }
    return true;
}

/* ---- word types: each distinct pre-token once, with its frequency ---- */

typedef struct { uint64_t *hash; int32_t *idx; uint64_t mask; } word_index;

static uint64_t hash_bytes(const unsigned char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 0x100000001b3ull; }
    return h;
}

static bool same_word(const word *w, const unsigned char *s, size_t n)
{
    if ((size_t)w->len != n) return false;
    for (size_t i = 0; i < n; i++)
        if (w->sym[i] != MN_BPE_BYTE0 + s[i]) return false;
    return true;
}

static bool index_grow(learner *L, word_index *X)
{
    uint64_t cap = X->mask ? (X->mask + 1) * 2 : 1 << 16;
    uint64_t *h = malloc(cap * sizeof *h);
    int32_t *ix = malloc(cap * sizeof *ix);
    if (!h || !ix) { free(h); free(ix); return false; }
    memset(ix, 0xff, cap * sizeof *ix);
    for (uint64_t s = 0; X->mask && s <= X->mask; s++) {
        if (X->idx[s] < 0) continue;
        uint64_t k = X->hash[s] & (cap - 1);
        while (ix[k] >= 0) k = (k + 1) & (cap - 1);
        h[k] = X->hash[s];
        ix[k] = X->idx[s];
    }
    free(X->hash);
    free(X->idx);
    X->hash = h;
    X->idx = ix;
    X->mask = cap - 1;
    (void)L;
    return true;
}

static bool add_word(learner *L, word_index *X, const unsigned char *s, size_t n)
{
    if (!X->mask || (uint64_t)L->nw * 2 >= X->mask + 1) if (!index_grow(L, X)) return false;
    uint64_t hv = hash_bytes(s, n), k = hv & X->mask;
    for (; X->idx[k] >= 0; k = (k + 1) & X->mask)
        if (X->hash[k] == hv && same_word(&L->w[X->idx[k]], s, n)) { L->w[X->idx[k]].freq++; return true; }
    if (L->nw == L->cw) {
        int32_t c = L->cw ? L->cw * 2 : 1 << 14;
        word *nw = realloc(L->w, (size_t)c * sizeof *nw);
        if (!nw) return false;
        L->w = nw;
        L->cw = c;
    }
    int32_t *sym = malloc(n * sizeof *sym);
    if (!sym) return false;
    for (size_t i = 0; i < n; i++) sym[i] = MN_BPE_BYTE0 + s[i];
    L->w[L->nw] = (word){ sym, (int32_t)n, 1, -1 };
    X->hash[k] = hv;
    X->idx[k] = L->nw++;
    return true;
}

static bool collect_words(learner *L, const char *const *texts, int64_t n)
{
    word_index X = { 0 };
    bool ok = true;
    for (int64_t t = 0; ok && t < n; t++) {
        const char *s = texts[t];
        size_t len = s ? strlen(s) : 0;
        for (size_t i = 0; ok && i < len;) {
            size_t c = chunk_len(s + i, len - i);
            ok = add_word(L, &X, (const unsigned char *)s + i, c);
            i += c;
        }
    }
    free(X.hash);
    free(X.idx);
    return ok && L->nw < INT32_MAX / 2;
}

static void learner_free(learner *L)
{
    for (int32_t i = 0; i < L->nw; i++) free(L->w[i].sym);
    for (int32_t i = 0; i < L->np; i++) free(L->p[i].words);
    free(L->w);
    free(L->p);
    free(L->pkey);
    free(L->pval);
    free(L->h);
    free(L->touched);
}

static bool learner_init(learner *L)
{
    L->pmask = (1 << 16) - 1;
    L->pkey = malloc((L->pmask + 1) * sizeof *L->pkey);
    L->pval = malloc((L->pmask + 1) * sizeof *L->pval);
    if (!L->pkey || !L->pval) return false;
    memset(L->pkey, 0xff, (L->pmask + 1) * sizeof *L->pkey);
    for (int32_t w = 0; w < L->nw; w++)
        if (!count_word(L, w, +1, -2)) return false;
    for (int32_t i = 0; i < L->np; i++)
        if (!heap_push(L, L->p[i].count, L->p[i].a, L->p[i].b)) return false;
    return true;
}

/* The next merge: the best pair still counted at least twice, or -1. */
static int32_t next_pair(learner *L)
{
    while (L->nh) {
        heap_item it = heap_pop(L);
        pair *p = pair_get(L, it.a, it.b);
        if (!p) return -2;
        if (p->count != it.count) {
            if (p->count > 0 && !heap_push(L, p->count, it.a, it.b)) return -2;
            continue;
        }
        if (p->count < 2) return -1;
        return (int32_t)(p - L->p);
    }
    return -1;
}

mn_status mn_bpe_learn(const char *const *texts, int64_t n, int vocab_size, mn_bpe **out)
{
    *out = NULL;
    if (vocab_size < MN_BPE_FIRST_MERGE || vocab_size > MN_BPE_FIRST_MERGE + MN_BPE_MAX_MERGES)
        return mn_set_error(MN_ERR_INVALID, "bpe_learn: vocabulary size %d outside [%d, %d]", vocab_size, MN_BPE_FIRST_MERGE, MN_BPE_FIRST_MERGE + MN_BPE_MAX_MERGES);
    if (!texts && n) return mn_set_error(MN_ERR_MISUSE, "bpe_learn: NULL texts");
    learner L = { 0 };
    mn_bpe *b = calloc(1, sizeof *b);
    int max_merges = vocab_size - MN_BPE_FIRST_MERGE;
    bool ok = b && (b->merge = malloc((size_t)(max_merges ? max_merges : 1) * 2 * sizeof *b->merge));
    ok = ok && collect_words(&L, texts, n) && learner_init(&L);
    while (ok && b->n_merges < max_merges) {
        int32_t pi = next_pair(&L);
        if (pi == -2) ok = false;
        if (pi < 0) break;
        int32_t z = MN_BPE_FIRST_MERGE + b->n_merges;
        b->merge[2 * b->n_merges] = L.p[pi].a;
        b->merge[2 * b->n_merges + 1] = L.p[pi].b;
        ok = apply_merge(&L, pi, z, b->n_merges);
        b->n_merges++;
    }
    learner_free(&L);
    mn_status s = ok ? finish_model(b, "bpe_learn") : mn_set_error(MN_ERR_NOMEM, "bpe_learn: out of memory");
    if (s) { mn_bpe_free(b); return s; }
    *out = b;
    return MN_OK;
}
