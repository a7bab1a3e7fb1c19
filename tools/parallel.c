/* tools/parallel.c: verse-aligned parallel text. Owns the reading of two
 * `mod2imp` dumps (or two aligned plain text files), the OSIS markup
 * stripper, UTF-8 validation and the key-hash split. Invariant: every pair
 * it returns is non-empty valid UTF-8 on both sides, and its split depends
 * on its key alone. */
#include "parallel.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 and whitespace ---- */

static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (!len || c > 0xF4 || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;          /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0;         /* surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0;          /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0;         /* above U+10FFFF */
    return len;
}

size_t mn_utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq_len(u + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Output with whitespace runs folded to one space, none leading/trailing. */
typedef struct { char *out; size_t o; bool pending; } sink;

static void put(sink *k, char c)
{
    if (is_space((unsigned char)c)) {
        k->pending = k->o > 0;
        return;
    }
    if (k->pending) k->out[k->o++] = ' ';
    k->pending = false;
    k->out[k->o++] = c;
}

size_t mn_text_normalise(const char *in, size_t n, char *out)
{
    sink k = { out, 0, false };
    for (size_t i = 0; i < n; i++) put(&k, in[i]);
    out[k.o] = 0;
    return k.o;
}

/* ---- OSIS markup ---- */

static const char *const inline_tags[] = {
    "w", "transChange", "divineName", "q", "seg", "foreign", "name", "hi", "rdg",
    "catchWord", "reference", NULL
};

static bool tag_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && !memcmp(name, want, len);
}

static bool is_inline(const char *name, size_t len)
{
    for (int i = 0; inline_tags[i]; i++)
        if (tag_is(name, len, inline_tags[i])) return true;
    return false;
}

/* One parsed tag: <name ...>, </name>, <name .../>. */
typedef struct { const char *name; size_t len; bool closing, empty, canonical; } tag;

static tag parse_tag(const char *s, size_t n)
{
    tag t = { 0 };
    size_t i = 1;
    t.closing = i < n && s[i] == '/';
    i += t.closing;
    t.name = s + i;
    while (i < n && !is_space((unsigned char)s[i]) && s[i] != '/' && s[i] != '>') i++;
    t.len = (size_t)(s + i - t.name);
    t.empty = n >= 2 && s[n - 2] == '/';
    t.canonical = memmem(s, n, "canonical=\"true\"", 16) != NULL;
    return t;
}

/* Elements dropped with their content: notes, and titles that are not part
 * of the canonical text (section headings; psalm titles are canonical). */
static bool drops_content(const tag *t)
{
    return tag_is(t->name, t->len, "note") || (tag_is(t->name, t->len, "title") && !t->canonical);
}

static const struct { const char *ent; char c; } entities[] = {
    { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
};

static size_t entity(const char *s, size_t n, char *c)
{
    for (size_t e = 0; e < sizeof entities / sizeof *entities; e++) {
        size_t len = strlen(entities[e].ent);
        if (len <= n && !memcmp(s, entities[e].ent, len)) {
            *c = entities[e].c;
            return len;
        }
    }
    return 0;
}

/* USFM character-style markers left in some modules: `\nd ` opens, `\+nd*`
 * or `\nd*` closes. Returns the bytes to skip (0 if not a marker). */
static size_t usfm_marker(const char *s, size_t n)
{
    size_t k = 1;
    if (k < n && s[k] == '+') k++;
    size_t letters = k;
    while (k < n && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= '0' && s[k] <= '9'))) k++;
    if (k == letters) return 0;
    if (k < n && (s[k] == '*' || s[k] == ' ')) k++;
    return k;
}

typedef struct { const char *name; size_t len; int depth; } skip_state;

static void track_skip(skip_state *sk, const tag *t)
{
    if (!tag_is(t->name, t->len, sk->name) || t->empty) return;
    sk->depth += t->closing ? -1 : 1;
}

mn_status mn_osis_strip(const char *in, size_t n, char *out, size_t *out_len, const char **why)
{
    sink k = { out, 0, false };
    skip_state sk = { NULL, 0, 0 };
    size_t i = 0;
    *why = NULL;
    while (i < n) {
        if (in[i] == '<') {
            const char *end = memchr(in + i, '>', n - i);
            if (!end) { *why = "unterminated tag (a '<' without '>')"; return MN_ERR_FORMAT; }
            size_t tl = (size_t)(end - (in + i)) + 1;
            tag t = parse_tag(in + i, tl);
            i += tl;
            if (sk.depth > 0) {
                track_skip(&sk, &t);
                continue;
            }
            if (!t.closing && !t.empty && drops_content(&t)) {
                sk = (skip_state){ tag_is(t.name, t.len, "note") ? "note" : "title", 0, 1 };
                continue;
            }
            if (!is_inline(t.name, t.len)) put(&k, ' ');
            continue;
        }
        if (sk.depth > 0) { i++; continue; }
        char c;
        size_t e = in[i] == '&' ? entity(in + i, n - i, &c) : 0;
        if (e) { put(&k, c); i += e; continue; }
        size_t u = in[i] == '\\' ? usfm_marker(in + i, n - i) : 0;
        if (u) { i += u; continue; }
        if ((unsigned char)in[i] == 0xC2 && i + 1 < n && (unsigned char)in[i + 1] == 0xB6) { i += 2; continue; }  /* pilcrow */
        put(&k, in[i++]);
    }
    if (sk.depth > 0) { *why = "unterminated element (<note> or <title> without its end tag)"; return MN_ERR_FORMAT; }
    out[k.o] = 0;
    *out_len = k.o;
    return MN_OK;
}

/* ---- the split ---- */

mn_split_kind mn_split_of(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    uint64_t r = h % MN_SPLIT_MOD;
    return r == 0 ? MN_SPLIT_VALID : r == 1 ? MN_SPLIT_TEST : MN_SPLIT_TRAIN;
}

/* ---- files and lines ---- */

static mn_status read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = mn_fopen_regular(path, "parallel");
    if (!f) return mn_last_status();
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    mn_status s = b ? MN_OK : mn_set_error(MN_ERR_NOMEM, "parallel %s: out of memory", path);
    while (!s) {
        if (n == cap) {
            if (cap >= (size_t)MN_PARALLEL_MAX_FILE) { s = mn_set_error(MN_ERR_FORMAT, "parallel %s: larger than %lld bytes", path, MN_PARALLEL_MAX_FILE); break; }
            char *nb = realloc(b, cap * 2);
            if (!nb) { s = mn_set_error(MN_ERR_NOMEM, "parallel %s: out of memory", path); break; }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    if (!s && ferror(f)) s = mn_set_error(MN_ERR_IO, "parallel %s: read error", path);
    fclose(f);
    if (s) { free(b); return s; }
    *buf = b;
    *len = n;
    return MN_OK;
}

typedef struct { const char *path; const char *buf; size_t len, pos; int64_t line; } line_reader;

/* The next line (without "\n" or "\r\n"); false at the end. Checks length,
 * NUL bytes and UTF-8, naming file:line. */
static bool next_line(line_reader *r, const char **s, size_t *n, mn_status *st)
{
    *st = MN_OK;
    if (r->pos >= r->len) return false;
    const char *start = r->buf + r->pos;
    const char *nl = memchr(start, '\n', r->len - r->pos);
    size_t len = nl ? (size_t)(nl - start) : r->len - r->pos;
    r->pos += len + (nl != NULL);
    r->line++;
    if (len && start[len - 1] == '\r') len--;
    if (len > MN_PARALLEL_MAX_LINE) *st = mn_set_error(MN_ERR_FORMAT, "%s:%lld: line longer than %d bytes", r->path, (long long)r->line, MN_PARALLEL_MAX_LINE);
    else if (memchr(start, 0, len)) *st = mn_set_error(MN_ERR_FORMAT, "%s:%lld: NUL byte", r->path, (long long)r->line);
    else if (mn_utf8_valid_prefix(start, len) != len) *st = mn_set_error(MN_ERR_FORMAT, "%s:%lld: invalid UTF-8 at byte %zu", r->path, (long long)r->line, mn_utf8_valid_prefix(start, len) + 1);
    *s = start;
    *n = len;
    return true;
}

/* ---- entries: key + clean text, with a hash index on the key ---- */

typedef struct { char *key; char *text; int64_t line; } entry;
typedef struct { entry *e; int64_t n, cap; int64_t *slots; uint64_t mask; } entries;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    while (*s) { h ^= (unsigned char)*s++; h *= 0x100000001b3ull; }
    return h;
}

static void entries_free(entries *E)
{
    for (int64_t i = 0; i < E->n; i++) { free(E->e[i].key); free(E->e[i].text); }
    free(E->e);
    free(E->slots);
    memset(E, 0, sizeof *E);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

static mn_status entries_add(entries *E, const char *key, size_t klen, char *text, int64_t line)
{
    if (E->n == E->cap) {
        int64_t c = E->cap ? E->cap * 2 : 1024;
        entry *ne = realloc(E->e, (size_t)c * sizeof *ne);
        if (!ne) { free(text); return mn_set_error(MN_ERR_NOMEM, "parallel: out of memory"); }
        E->e = ne;
        E->cap = c;
    }
    char *k = dup_n(key, klen);
    if (!k) { free(text); return mn_set_error(MN_ERR_NOMEM, "parallel: out of memory"); }
    E->e[E->n++] = (entry){ k, text, line };
    return MN_OK;
}

static int64_t *index_slot(const entries *E, const char *key)
{
    for (uint64_t h = hash_str(key) & E->mask;; h = (h + 1) & E->mask) {
        int64_t v = E->slots[h];
        if (v < 0 || !strcmp(E->e[v].key, key)) return &E->slots[h];
    }
}

/* Builds the key index; a key seen twice is an error naming both lines. */
static mn_status entries_index(entries *E, const char *path)
{
    uint64_t cap = 16;
    while (cap < (uint64_t)E->n * 2) cap *= 2;
    if (!(E->slots = malloc(cap * sizeof *E->slots))) return mn_set_error(MN_ERR_NOMEM, "parallel: out of memory");
    memset(E->slots, 0xff, cap * sizeof *E->slots);
    E->mask = cap - 1;
    for (int64_t i = 0; i < E->n; i++) {
        int64_t *slot = index_slot(E, E->e[i].key);
        if (*slot >= 0)
            return mn_set_error(MN_ERR_FORMAT, "%s:%lld: duplicate key \"%s\" (first at line %lld)", path,
                                (long long)E->e[i].line, E->e[i].key, (long long)E->e[*slot].line);
        *slot = i;
    }
    return MN_OK;
}

/* ---- mod2imp dumps ---- */

/* "[ Module Heading ]" and "Book C:0" keys are headings (skip: 0), "Book
 * C:V" with C, V >= 1 a verse (1), anything else malformed (-1). */
static int key_kind(const char *k, size_t n)
{
    if (n && k[0] == '[') return 0;
    const char *sp = NULL;
    for (size_t i = 0; i < n; i++) if (k[i] == ' ') sp = k + i;
    if (!sp || sp == k) return -1;
    const char *p = sp + 1, *end = k + n;
    long ch = 0, vs = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) { ch = ch * 10 + (*p++ - '0'); digits++; }
    if (!digits || p >= end || *p++ != ':') return -1;
    digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) { vs = vs * 10 + (*p++ - '0'); digits++; }
    if (!digits || p != end) return -1;
    return ch == 0 || vs == 0 ? 0 : 1;
}

typedef struct { const char *key; size_t klen; int64_t key_line; const char *text; size_t tlen; bool has_text; } pending;

static mn_status finish_entry(entries *E, const char *path, const pending *p)
{
    int kind = key_kind(p->key, p->klen);
    if (kind < 0)
        return mn_set_error(MN_ERR_FORMAT, "%s:%lld: malformed key \"%.*s\" (want \"Book chapter:verse\")", path,
                            (long long)p->key_line, (int)(p->klen > 80 ? 80 : p->klen), p->key);
    if (kind == 0 || !p->has_text) return MN_OK;
    char *text = malloc(p->tlen + 1);
    if (!text) return mn_set_error(MN_ERR_NOMEM, "parallel: out of memory");
    size_t len;
    const char *why;
    if (mn_osis_strip(p->text, p->tlen, text, &len, &why)) {
        free(text);
        return mn_set_error(MN_ERR_FORMAT, "%s:%lld: %s in the entry \"%.*s\"", path, (long long)p->key_line + 1, why,
                            (int)(p->klen > 80 ? 80 : p->klen), p->key);
    }
    if (!len) { free(text); return MN_OK; }
    return entries_add(E, p->key, p->klen, text, p->key_line);
}

static mn_status parse_imp(const char *path, const char *buf, size_t len, entries *E)
{
    line_reader r = { path, buf, len, 0, 0 };
    pending p = { 0 };
    bool open = false;
    const char *s;
    size_t n;
    mn_status st;
    while (next_line(&r, &s, &n, &st)) {
        if (st) return st;
        if (n >= 3 && !memcmp(s, "$$$", 3)) {
            if (open && (st = finish_entry(E, path, &p))) return st;
            p = (pending){ s + 3, n - 3, r.line, NULL, 0, false };
            while (p.klen && p.key[p.klen - 1] == ' ') p.klen--;
            open = true;
            continue;
        }
        if (!open) {
            if (!n) continue;
            return mn_set_error(MN_ERR_FORMAT, "%s:%lld: text before the first \"$$$key\" line", path, (long long)r.line);
        }
        if (!p.has_text) p.text = s;
        p.tlen = (size_t)(s + n - p.text);
        p.has_text = true;
    }
    if (open && (st = finish_entry(E, path, &p))) return st;
    return MN_OK;
}

/* ---- plain text: one sentence per line, key = line number ---- */

static mn_status parse_text(const char *path, const char *buf, size_t len, entries *E, int64_t *lines)
{
    line_reader r = { path, buf, len, 0, 0 };
    const char *s;
    size_t n;
    mn_status st;
    while (next_line(&r, &s, &n, &st)) {
        if (st) return st;
        char *text = malloc(n + 1);
        if (!text) return mn_set_error(MN_ERR_NOMEM, "parallel: out of memory");
        if (!mn_text_normalise(s, n, text)) { free(text); continue; }
        char key[24];
        int kl = snprintf(key, sizeof key, "%lld", (long long)r.line);
        if ((st = entries_add(E, key, (size_t)kl, text, r.line))) return st;
    }
    *lines = r.line;
    return MN_OK;
}

/* ---- pairing ---- */

static bool looks_like_imp(const char *buf, size_t len)
{
    return len >= 3 && !memcmp(buf, "$$$", 3);
}

static mn_status load_side(const char *path, bool *imp, entries *E, int64_t *lines)
{
    char *buf = NULL;
    size_t len = 0;
    mn_status s = read_file(path, &buf, &len);
    if (s) return s;
    *imp = looks_like_imp(buf, len);
    s = *imp ? parse_imp(path, buf, len, E) : parse_text(path, buf, len, E, lines);
    free(buf);
    if (!s) s = entries_index(E, path);
    return s;
}

static mn_status take_pair(mn_parallel *out, entry *a, entry *b)
{
    mn_pair *p = &out->pairs[out->n++];
    p->key = a->key;
    p->src = a->text;
    p->tgt = b->text;
    a->key = a->text = b->text = NULL;
    p->split = mn_split_of(p->key);
    out->count[p->split]++;
    return MN_OK;
}

static mn_status pair_up(const char *src_path, const char *tgt_path, entries *A, entries *B, mn_parallel *out)
{
    if (!(out->pairs = calloc((size_t)(A->n ? A->n : 1), sizeof *out->pairs)))
        return mn_set_error(MN_ERR_NOMEM, "parallel: out of memory");
    for (int64_t i = 0; i < A->n; i++) {
        int64_t j = *index_slot(B, A->e[i].key);
        if (j >= 0) take_pair(out, &A->e[i], &B->e[j]);
    }
    if (!out->n) return mn_set_error(MN_ERR_FORMAT, "parallel %s and %s: no key has text on both sides", src_path, tgt_path);
    return MN_OK;
}

mn_status mn_parallel_read(const char *src_path, const char *tgt_path, mn_parallel *out)
{
    memset(out, 0, sizeof *out);
    entries A = { 0 }, B = { 0 };
    bool imp_a = false, imp_b = false;
    int64_t lines_a = 0, lines_b = 0;
    mn_status s = load_side(src_path, &imp_a, &A, &lines_a);
    if (!s) s = load_side(tgt_path, &imp_b, &B, &lines_b);
    if (!s && imp_a != imp_b)
        s = mn_set_error(MN_ERR_FORMAT, "parallel: %s is %s but %s is %s; give two mod2imp dumps or two text files",
                         src_path, imp_a ? "a mod2imp dump" : "plain text", tgt_path, imp_b ? "a mod2imp dump" : "plain text");
    if (!s && !imp_a && lines_a != lines_b)
        s = mn_set_error(MN_ERR_FORMAT, "parallel: %s has %lld lines but %s has %lld; aligned text files need one sentence per line on both sides",
                         src_path, (long long)lines_a, tgt_path, (long long)lines_b);
    if (!s) s = pair_up(src_path, tgt_path, &A, &B, out);
    entries_free(&A);
    entries_free(&B);
    if (s) mn_parallel_free(out);
    return s;
}

void mn_parallel_free(mn_parallel *p)
{
    for (int64_t i = 0; p->pairs && i < p->n; i++) {
        free(p->pairs[i].key);
        free(p->pairs[i].src);
        free(p->pairs[i].tgt);
    }
    free(p->pairs);
    memset(p, 0, sizeof *p);
}
