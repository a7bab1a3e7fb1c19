/* tools/conll.c: the CoNLL column reader, the interned string table and
 * the word vocabulary. A file is read whole (regular files only, at most
 * max_bytes) into one buffer that is split in place: every cell is a
 * NUL-terminated string inside it, so memory is the file plus 4 bytes per
 * cell and per token. Every allocation is checked; errors name file and line. */
#include "conll.h"
#include "parallel.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static mn_conll_limits limits_or_default(const mn_conll_limits *lim)
{
    mn_conll_limits l = lim ? *lim : (mn_conll_limits){ 0 };
    if (l.max_bytes <= 0) l.max_bytes = (int64_t)512 << 20;
    if (l.max_bytes > (int64_t)UINT32_MAX - 2) l.max_bytes = (int64_t)UINT32_MAX - 2;
    if (l.max_line <= 0) l.max_line = 65536;
    if (l.max_cols <= 0) l.max_cols = 64;
    return l;
}

/* ---- the parser ---- */

typedef struct {
    mn_conll *c;
    mn_conll_limits lim;
    int64_t cap_cell, cap_line, cap_sent;
    int first_line;     /* the line that fixed ncols */
    bool open;          /* a sentence has tokens */
} parser;

static mn_status grow(void **p, int64_t *cap, int64_t need, size_t elem, const char *name)
{
    if (need <= *cap) return MN_OK;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return mn_set_error(MN_ERR_NOMEM, "conll %s: out of memory for %lld tokens", name, (long long)need);
    *p = q;
    *cap = c;
    return MN_OK;
}

static mn_status end_sentence(parser *ps)
{
    mn_conll *c = ps->c;
    if (!ps->open) return MN_OK;
    ps->open = false;
    mn_status s = grow((void **)&c->sent, &ps->cap_sent, c->nsent + 2, sizeof *c->sent, c->path);
    if (s) return s;
    c->sent[++c->nsent] = c->ntok;
    return MN_OK;
}

static mn_status add_token(parser *ps, const uint32_t *cells, int n, int lineno)
{
    mn_conll *c = ps->c;
    if (n < 2)
        return mn_set_error(MN_ERR_FORMAT, "conll %s line %d: 1 column; a token line holds a word and a tag (more columns are features)", c->path, lineno);
    if (!c->ncols) {
        c->ncols = n;
        ps->first_line = lineno;
    }
    if (n != c->ncols)
        return mn_set_error(MN_ERR_FORMAT, "conll %s line %d: %d columns, but line %d has %d", c->path, lineno, n, ps->first_line, c->ncols);
    mn_status s = grow((void **)&c->cell, &ps->cap_cell, (c->ntok + 1) * c->ncols, sizeof *c->cell, c->path);
    if (!s) s = grow((void **)&c->line, &ps->cap_line, c->ntok + 1, sizeof *c->line, c->path);
    if (s) return s;
    memcpy(c->cell + c->ntok * c->ncols, cells, (size_t)n * sizeof *cells);
    c->line[c->ntok++] = (uint32_t)lineno;
    ps->open = true;
    return MN_OK;
}

/* Splits line [b, e) of the buffer on spaces and tabs, in place. */
static mn_status parse_line(parser *ps, size_t b, size_t e, int lineno, uint32_t *cells)
{
    mn_conll *c = ps->c;
    char *t = c->text;
    if (e > b && t[e - 1] == '\r') e--;
    if (e - b > (size_t)ps->lim.max_line)
        return mn_set_error(MN_ERR_FORMAT, "conll %s line %d: longer than %d bytes", c->path, lineno, ps->lim.max_line);
    if (memchr(t + b, 0, e - b))
        return mn_set_error(MN_ERR_FORMAT, "conll %s line %d: a NUL byte (not a text file?)", c->path, lineno);
    size_t good = mn_utf8_valid_prefix(t + b, e - b);
    if (good < e - b)
        return mn_set_error(MN_ERR_FORMAT, "conll %s line %d: invalid UTF-8 at byte %zu", c->path, lineno, good + 1);
    int n = 0;
    for (size_t i = b; i < e;) {
        while (i < e && (t[i] == ' ' || t[i] == '\t')) t[i++] = 0;
        if (i == e) break;
        if (n == ps->lim.max_cols)
            return mn_set_error(MN_ERR_FORMAT, "conll %s line %d: more than %d columns", c->path, lineno, ps->lim.max_cols);
        cells[n++] = (uint32_t)i;
        while (i < e && t[i] != ' ' && t[i] != '\t') i++;
    }
    t[e] = 0;
    if (!n) return end_sentence(ps);
    if (!strcmp(t + cells[0], "-DOCSTART-")) return end_sentence(ps);
    return add_token(ps, cells, n, lineno);
}

static mn_status parse_all(parser *ps, size_t len)
{
    mn_conll *c = ps->c;
    uint32_t *cells = malloc((size_t)ps->lim.max_cols * sizeof *cells);
    if (!cells) return mn_set_error(MN_ERR_NOMEM, "conll %s: out of memory", c->path);
    mn_status s = grow((void **)&c->sent, &ps->cap_sent, 1, sizeof *c->sent, c->path);
    if (!s) c->sent[0] = 0;
    size_t b = len >= 3 && !memcmp(c->text, "\xEF\xBB\xBF", 3) ? 3 : 0;
    for (int lineno = 1; !s && b < len; lineno++) {
        const char *nl = memchr(c->text + b, '\n', len - b);
        size_t e = nl ? (size_t)(nl - c->text) : len;
        s = parse_line(ps, b, e, lineno, cells);
        b = e + 1;
        if (!s && lineno == INT32_MAX) s = mn_set_error(MN_ERR_FORMAT, "conll %s: more than %d lines", c->path, INT32_MAX);
    }
    free(cells);
    if (!s) s = end_sentence(ps);
    if (!s && !c->ntok) s = mn_set_error(MN_ERR_FORMAT, "conll %s: no tokens (empty, or only blank and -DOCSTART- lines)", c->path);
    return s;
}

/* Parses c->text (len bytes, one spare byte after them). */
static mn_status parse_text(mn_conll *c, size_t len, const mn_conll_limits *lim)
{
    parser ps = { .c = c, .lim = limits_or_default(lim) };
    c->text[len] = 0;
    mn_status s = parse_all(&ps, len);
    if (s) mn_conll_free(c);
    return s;
}

static void set_path(mn_conll *c, const char *name)
{
    snprintf(c->path, sizeof c->path, "%s", name ? name : "(memory)");
}

mn_status mn_conll_parse(const char *buf, size_t len, const char *name, const mn_conll_limits *lim, mn_conll *out)
{
    memset(out, 0, sizeof *out);
    set_path(out, name);
    mn_conll_limits l = limits_or_default(lim);
    if (len > (size_t)l.max_bytes)
        return mn_set_error(MN_ERR_IO, "conll %s: %zu bytes, more than the limit of %lld", out->path, len, (long long)l.max_bytes);
    if (!(out->text = malloc(len + 1))) return mn_set_error(MN_ERR_NOMEM, "conll %s: out of memory for %zu bytes", out->path, len);
    memcpy(out->text, buf, len);
    return parse_text(out, len, &l);
}

/* Reads fd into *buf (one spare byte after the data); a file that holds
 * more than max bytes, even one that grew since fstat, is refused. */
static mn_status read_bounded(int fd, const char *path, int64_t max, int64_t hint, char **buf, size_t *len)
{
    size_t limit = (size_t)max + 2, cap = (size_t)(hint < max ? hint : max) + 2, n = 0;
    char *b = malloc(cap);
    if (!b) return mn_set_error(MN_ERR_NOMEM, "conll %s: out of memory for %zu bytes", path, cap);
    for (;;) {
        if (n == cap - 1 && cap < limit) {
            size_t c2 = cap * 2 < limit ? cap * 2 : limit;
            char *q = realloc(b, c2);
            if (!q) { free(b); return mn_set_error(MN_ERR_NOMEM, "conll %s: out of memory for %zu bytes", path, c2); }
            b = q;
            cap = c2;
        }
        if (n == cap - 1) break;
        ssize_t r = read(fd, b + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { int e = errno; free(b); return mn_set_error(MN_ERR_IO, "conll %s: %s", path, strerror(e)); }
        if (r == 0) break;
        n += (size_t)r;
    }
    if (n > (size_t)max) { free(b); return mn_set_error(MN_ERR_IO, "conll %s: larger than the limit of %lld bytes", path, (long long)max); }
    *buf = b;
    *len = n;
    return MN_OK;
}

mn_status mn_conll_read(const char *path, const mn_conll_limits *lim, mn_conll *out)
{
    memset(out, 0, sizeof *out);
    set_path(out, path);
    mn_conll_limits l = limits_or_default(lim);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return mn_set_error(MN_ERR_IO, "conll %s: %s", out->path, strerror(errno));
    struct stat st;
    mn_status s = MN_OK;
    if (fstat(fd, &st)) s = mn_set_error(MN_ERR_IO, "conll %s: %s", out->path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) s = mn_set_error(MN_ERR_IO, "conll %s: not a regular file", out->path);
    else if (st.st_size > l.max_bytes)
        s = mn_set_error(MN_ERR_IO, "conll %s: %lld bytes, more than the limit of %lld", out->path, (long long)st.st_size, (long long)l.max_bytes);
    size_t len = 0;
    if (!s) s = read_bounded(fd, out->path, l.max_bytes, (int64_t)st.st_size, &out->text, &len);
    close(fd);
    return s ? s : parse_text(out, len, &l);
}

const char *mn_conll_cell(const mn_conll *c, int64_t t, int col)
{
    if (col < 0) col += c->ncols;
    return c->text + c->cell[t * c->ncols + col];
}

void mn_conll_free(mn_conll *c)
{
    free(c->text);
    free(c->cell);
    free(c->line);
    free(c->sent);
    char path[sizeof c->path];
    memcpy(path, c->path, sizeof path);
    memset(c, 0, sizeof *c);
    memcpy(c->path, path, sizeof path);
}

/* ---- interned strings ---- */

static unsigned char fold_byte(unsigned char ch, bool fold)
{
    return fold && ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
}

/* FNV-1a over the (folded) bytes. */
static uint32_t hash_str(const char *s, bool fold)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= fold_byte(*p, fold);
        h *= 16777619u;
    }
    return h;
}

/* Equal after folding a (the stored string is already folded when fold). */
static bool eq_str(const char *a, const char *stored, bool fold)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)stored;
    for (; *p && fold_byte(*p, fold) == *q; p++, q++) {}
    return !*p && !*q;
}

static int32_t find_fold(const mn_strtab *t, const char *s, bool fold)
{
    if (!t->nslot) return -1;
    for (uint32_t i = hash_str(s, fold) & (t->nslot - 1);; i = (i + 1) & (t->nslot - 1)) {
        int32_t k = t->slot[i];
        if (!k) return -1;
        if (eq_str(s, t->str[k - 1], fold)) return k - 1;
    }
}

int32_t mn_strtab_find(const mn_strtab *t, const char *s)
{
    return find_fold(t, s, false);
}

static mn_status rehash(mn_strtab *t, uint32_t nslot)
{
    int32_t *slot = calloc(nslot, sizeof *slot);
    if (!slot) return mn_set_error(MN_ERR_NOMEM, "strings: out of memory for %u slots", nslot);
    for (int32_t k = 0; k < t->n; k++) {
        uint32_t i = hash_str(t->str[k], false) & (nslot - 1);
        while (slot[i]) i = (i + 1) & (nslot - 1);
        slot[i] = k + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->nslot = nslot;
    return MN_OK;
}

static mn_status grow_tab(mn_strtab *t)
{
    if (t->n == INT32_MAX / 4) return mn_set_error(MN_ERR_NOMEM, "strings: more than %d entries", INT32_MAX / 4);
    int32_t cap = t->cap ? t->cap * 2 : 64;
    char **str = realloc(t->str, (size_t)cap * sizeof *str);
    if (!str) return mn_set_error(MN_ERR_NOMEM, "strings: out of memory");
    t->str = str;
    int64_t *count = realloc(t->count, (size_t)cap * sizeof *count);
    if (!count) return mn_set_error(MN_ERR_NOMEM, "strings: out of memory");
    t->count = count;
    t->cap = cap;
    return MN_OK;
}

mn_status mn_strtab_add(mn_strtab *t, const char *s, int64_t count, int32_t *id)
{
    int32_t k = mn_strtab_find(t, s);
    if (k < 0) {
        mn_status st = t->n == t->cap ? grow_tab(t) : MN_OK;
        if (!st && (uint32_t)(t->n + 1) * 2 > t->nslot) st = rehash(t, t->nslot ? t->nslot * 2 : 128);
        if (st) return st;
        char *copy = strdup(s);
        if (!copy) return mn_set_error(MN_ERR_NOMEM, "strings: out of memory");
        k = t->n++;
        t->str[k] = copy;
        t->count[k] = 0;
        uint32_t i = hash_str(copy, false) & (t->nslot - 1);
        while (t->slot[i]) i = (i + 1) & (t->nslot - 1);
        t->slot[i] = k + 1;
    }
    t->count[k] += count;
    if (id) *id = k;
    return MN_OK;
}

void mn_strtab_free(mn_strtab *t)
{
    for (int32_t k = 0; k < t->n; k++) free(t->str[k]);
    free(t->str);
    free(t->count);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

/* ---- word vocabulary ---- */

static mn_status add_folded(mn_strtab *t, const char *w, bool fold, int32_t *id)
{
    int32_t k = find_fold(t, w, fold);
    if (k >= 0) {
        t->count[k]++;
        *id = k;
        return MN_OK;
    }
    size_t n = strlen(w);
    char *tmp = malloc(n + 1);
    if (!tmp) return mn_set_error(MN_ERR_NOMEM, "vocabulary: out of memory");
    for (size_t i = 0; i <= n; i++) tmp[i] = (char)fold_byte((unsigned char)w[i], fold);
    mn_status s = mn_strtab_add(t, tmp, 1, id);
    free(tmp);
    return s;
}

typedef struct { int64_t count; const char *str; } ranked;

static int by_count_then_bytes(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->str, y->str);
}

/* Adds the kept words of `all` to v->words in count order. */
static mn_status keep_words(mn_vocab *v, const mn_strtab *all)
{
    ranked *order = malloc((size_t)(all->n ? all->n : 1) * sizeof *order);
    if (!order) return mn_set_error(MN_ERR_NOMEM, "vocabulary: out of memory");
    for (int32_t i = 0; i < all->n; i++) order[i] = (ranked){ all->count[i], all->str[i] };
    qsort(order, (size_t)all->n, sizeof *order, by_count_then_bytes);
    mn_status s = MN_OK;
    for (int32_t i = 0; i < all->n && !s; i++) {
        if (v->opts.max_size && v->words.n >= v->opts.max_size) break;
        if (order[i].count < v->opts.min_count) break;
        s = mn_strtab_add(&v->words, order[i].str, order[i].count, NULL);
    }
    free(order);
    return s;
}

mn_status mn_vocab_build(mn_vocab *v, const mn_conll *train, mn_vocab_opts o)
{
    memset(v, 0, sizeof *v);
    if (o.column < 0 || o.column >= train->ncols)
        return mn_set_error(MN_ERR_INVALID, "vocabulary of %s: column %d of %d", train->path, o.column, train->ncols);
    if (o.max_size && o.max_size < 3)
        return mn_set_error(MN_ERR_INVALID, "vocabulary of %s: max_size %d leaves no word beside <pad> and <unk>", train->path, o.max_size);
    v->opts = o;
    mn_strtab all = { 0 };
    mn_status s = mn_strtab_add(&v->words, "<pad>", 0, NULL);
    if (!s) s = mn_strtab_add(&v->words, "<unk>", 0, NULL);
    for (int64_t t = 0; t < train->ntok && !s; t++) {
        int32_t id;
        s = add_folded(&all, mn_conll_cell(train, t, o.column), o.lower, &id);
    }
    if (!s) s = keep_words(v, &all);
    mn_strtab_free(&all);
    if (s) mn_vocab_free(v);
    return s;
}

int32_t mn_vocab_id(const mn_vocab *v, const char *word)
{
    int32_t k = find_fold(&v->words, word, v->opts.lower);
    return k < 0 ? MN_VOCAB_UNK : k;
}

mn_status mn_vocab_encode(const mn_vocab *v, const mn_conll *c, int32_t *ids)
{
    if (v->opts.column >= c->ncols)
        return mn_set_error(MN_ERR_INVALID, "vocabulary: column %d, but %s has %d columns", v->opts.column, c->path, c->ncols);
    for (int64_t t = 0; t < c->ntok; t++) ids[t] = mn_vocab_id(v, mn_conll_cell(c, t, v->opts.column));
    return MN_OK;
}

void mn_vocab_free(mn_vocab *v)
{
    mn_strtab_free(&v->words);
    memset(v, 0, sizeof *v);
}
