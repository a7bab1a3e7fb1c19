/* tools/ner.c: the tag vocabulary, entity extraction, tag schemes. The
 * entity reader reproduces seqeval's default mode (itself conlleval's
 * rules) token for token, including its reading of invalid sequences;
 * scheme conversion is "read the entities, write them in the other
 * scheme", so valid sequences round-trip exactly. */
#include "ner.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- tag vocabulary ---- */

mn_status mn_tagset_init(mn_tagset *ts)
{
    memset(ts, 0, sizeof *ts);
    return mn_strtab_add(&ts->types, "_", 0, NULL);
}

/* Splits a tag into prefix and the start of its type text. */
static char tag_prefix(const char *tag, const char **type)
{
    unsigned char c = (unsigned char)tag[0];
    const char *rest = tag + (c ? 1 : 0);
    if (c >= 0xC0)
        while (((unsigned char)*rest & 0xC0) == 0x80) rest++;     /* the rest of a multi-byte first character */
    const char *dash = strchr(rest, '-');
    *type = dash ? dash + 1 : rest;
    return c && strchr("OBIES.", c) ? (char)c : 0;
}

static mn_status grow_tags(mn_tagset *ts)
{
    int32_t cap = ts->cap ? ts->cap * 2 : 64;
    char *p = realloc(ts->prefix, (size_t)cap);
    if (!p) return mn_set_error(MN_ERR_NOMEM, "tags: out of memory");
    ts->prefix = p;
    int32_t *t = realloc(ts->type, (size_t)cap * sizeof *t);
    if (!t) return mn_set_error(MN_ERR_NOMEM, "tags: out of memory");
    ts->type = t;
    ts->cap = cap;
    return MN_OK;
}

mn_status mn_tagset_add(mn_tagset *ts, const char *tag, int32_t *id)
{
    if (!ts->types.n) return mn_set_error(MN_ERR_MISUSE, "tags: tag set not initialised (mn_tagset_init)");
    int32_t k = mn_strtab_find(&ts->tags, tag);
    if (k >= 0) { *id = k; return MN_OK; }
    mn_status s = ts->tags.n == ts->cap ? grow_tags(ts) : MN_OK;
    const char *type;
    char pfx = tag_prefix(tag, &type);
    int32_t ty = 0;
    if (!s && *type) s = mn_strtab_add(&ts->types, type, 0, &ty);
    if (!s) s = mn_strtab_add(&ts->tags, tag, 0, &k);
    if (s) return s;
    ts->prefix[k] = pfx;
    ts->type[k] = ty;
    *id = k;
    return MN_OK;
}

int32_t mn_tagset_find(const mn_tagset *ts, const char *tag)
{
    return mn_strtab_find(&ts->tags, tag);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

mn_status mn_tagset_build(mn_tagset *ts, const mn_conll *const *corpora, int n)
{
    mn_strtab all = { 0 };
    mn_status s = mn_tagset_init(ts);
    for (int i = 0; i < n && !s; i++)
        for (int64_t t = 0; t < corpora[i]->ntok && !s; t++) s = mn_strtab_add(&all, mn_conll_cell(corpora[i], t, -1), 1, NULL);
    char **sorted = s ? NULL : malloc((size_t)(all.n ? all.n : 1) * sizeof *sorted);
    if (!s && !sorted) s = mn_set_error(MN_ERR_NOMEM, "tags: out of memory");
    int32_t id;
    if (!s) {
        memcpy(sorted, all.str, (size_t)all.n * sizeof *sorted);
        qsort(sorted, (size_t)all.n, sizeof *sorted, cmp_str);
        s = mn_tagset_add(ts, "O", &id);
    }
    for (int32_t i = 0; i < all.n && !s; i++) s = mn_tagset_add(ts, sorted[i], &id);
    free(sorted);
    mn_strtab_free(&all);
    if (s) mn_tagset_free(ts);
    return s;
}

mn_status mn_tagset_encode(mn_tagset *ts, const mn_conll *c, bool add, int32_t *ids)
{
    for (int64_t t = 0; t < c->ntok; t++) {
        const char *tag = mn_conll_cell(c, t, -1);
        if (add) {
            mn_status s = mn_tagset_add(ts, tag, &ids[t]);
            if (s) return s;
            continue;
        }
        ids[t] = mn_tagset_find(ts, tag);
        if (ids[t] < 0)
            return mn_set_error(MN_ERR_NOTFOUND, "conll %s line %u: tag \"%s\" is not in the tag set", c->path, c->line[t], tag);
    }
    return MN_OK;
}

void mn_tagset_free(mn_tagset *ts)
{
    mn_strtab_free(&ts->tags);
    mn_strtab_free(&ts->types);
    free(ts->prefix);
    free(ts->type);
    memset(ts, 0, sizeof *ts);
}

/* ---- entity extraction (seqeval default mode) ---- */

/* A token as the chunk rules see it; type -1 is the "no type yet" before
 * the first token, different from every type. */
typedef struct { char pfx; int32_t type; } lab;

static const lab sentence_break = { 'O', 0 };

static bool one_of(char c, const char *set)
{
    return c && strchr(set, c);
}

/* Does a chunk end between prev and cur? */
static bool chunk_ends(lab prev, lab cur)
{
    if (one_of(prev.pfx, "ES")) return true;
    if (one_of(prev.pfx, "BI") && one_of(cur.pfx, "BSO")) return true;
    return prev.pfx != 'O' && prev.pfx != '.' && prev.type != cur.type;
}

/* Does a chunk start at cur? */
static bool chunk_starts(lab prev, lab cur)
{
    if (one_of(cur.pfx, "BS")) return true;
    if (one_of(cur.pfx, "EI") && one_of(prev.pfx, "ESO")) return true;
    return cur.pfx != 'O' && cur.pfx != '.' && prev.type != cur.type;
}

static mn_status push_span(mn_spans *sp, mn_span s)
{
    if (sp->n == sp->cap) {
        int64_t cap = sp->cap ? sp->cap * 2 : 256;
        mn_span *v = realloc(sp->v, (size_t)cap * sizeof *v);
        if (!v) return mn_set_error(MN_ERR_NOMEM, "entities: out of memory for %lld spans", (long long)cap);
        sp->v = v;
        sp->cap = cap;
    }
    sp->v[sp->n++] = s;
    return MN_OK;
}

typedef struct {
    lab prev;
    int64_t begin;      /* token where the last chunk started (seqeval keeps it across chunks) */
    int64_t last;       /* the last real token seen */
} reader;

/* One step: cur is token t (or a sentence break when t < 0). */
static mn_status step(reader *rd, lab cur, int64_t t, mn_spans *out)
{
    mn_status s = MN_OK;
    if (chunk_ends(rd->prev, cur)) s = push_span(out, (mn_span){ rd->begin, rd->last, rd->prev.type });
    if (t >= 0 && chunk_starts(rd->prev, cur)) rd->begin = t;
    if (t >= 0) rd->last = t;
    rd->prev = cur;
    return s;
}

mn_status mn_ner_entities(const mn_tagset *ts, mn_tagseq q, mn_spans *out)
{
    memset(out, 0, sizeof *out);
    reader rd = { .prev = { 'O', -1 }, .begin = q.nsent ? q.sent[0] : 0, .last = -1 };
    mn_status s = MN_OK;
    for (int64_t i = 0; i < q.nsent && !s; i++) {
        for (int64_t t = q.sent[i]; t < q.sent[i + 1] && !s; t++) {
            int32_t id = q.ids[t];
            if (id < 0 || id >= ts->tags.n) s = mn_set_error(MN_ERR_INVALID, "entities: token %lld has tag id %d of %d", (long long)t, id, ts->tags.n);
            else s = step(&rd, (lab){ ts->prefix[id], ts->type[id] }, t, out);
        }
        if (!s) s = step(&rd, sentence_break, -1, out);
    }
    if (s) mn_spans_free(out);
    return s;
}

void mn_spans_free(mn_spans *sp)
{
    free(sp->v);
    memset(sp, 0, sizeof *sp);
}

/* ---- schemes ---- */

static const char *const scheme_names[MN_SCHEME_COUNT] = { "IOB1", "IOB2", "IOE1", "IOE2", "IOBES" };
static const char *const scheme_prefixes[MN_SCHEME_COUNT] = { "OBI", "OBI", "OIE", "OIE", "OBIES" };

const char *mn_scheme_name(mn_scheme s)
{
    return s >= 0 && s < MN_SCHEME_COUNT ? scheme_names[s] : "?";
}

mn_status mn_scheme_parse(const char *name, mn_scheme *out)
{
    static const struct { const char *name; mn_scheme s; } alias[] = { { "bio", MN_SCHEME_IOB2 }, { "bioes", MN_SCHEME_IOBES } };
    for (int s = 0; s < MN_SCHEME_COUNT; s++)
        if (!strcasecmp(name, scheme_names[s])) { *out = (mn_scheme)s; return MN_OK; }
    for (size_t i = 0; i < sizeof alias / sizeof *alias; i++)
        if (!strcasecmp(name, alias[i].name)) { *out = alias[i].s; return MN_OK; }
    return mn_set_error(MN_ERR_INVALID, "tag scheme \"%s\": expected IOB1, IOB2 (BIO), IOE1, IOE2 or IOBES", name);
}

/* Is n an inside or end tag of type `type` (I-X or E-X)? */
static bool continues(lab n, int32_t type, const char *pfx)
{
    return one_of(n.pfx, pfx) && n.type == type;
}

/* Does token cur (between p and n, O outside the sentence) break s? */
static bool breaks(mn_scheme s, lab p, lab cur, lab n)
{
    if (cur.pfx == 'O') return false;
    if (!one_of(cur.pfx, scheme_prefixes[s])) return true;
    switch (s) {
    case MN_SCHEME_IOB2: return cur.pfx == 'I' && !continues(p, cur.type, "BI");
    case MN_SCHEME_IOB1: return cur.pfx == 'B' && !continues(p, cur.type, "BI");
    case MN_SCHEME_IOE2: return cur.pfx == 'I' && !continues(n, cur.type, "IE");
    case MN_SCHEME_IOE1: return cur.pfx == 'E' && !continues(n, cur.type, "IE");
    default: break;
    }
    bool after = continues(p, cur.type, "BI"), before = continues(n, cur.type, "IE");
    return (cur.pfx == 'B' && !before) || (cur.pfx == 'E' && !after) || (cur.pfx == 'I' && !(after && before));
}

static lab at(const mn_tagset *ts, mn_tagseq q, int64_t t, int64_t lo, int64_t hi)
{
    if (t < lo || t >= hi) return sentence_break;
    int32_t id = q.ids[t];
    return (lab){ ts->prefix[id], ts->type[id] };
}

int64_t mn_scheme_violations(const mn_tagset *ts, mn_tagseq q, mn_scheme s, int64_t *first)
{
    int64_t bad = 0;
    if (first) *first = -1;
    for (int64_t i = 0; i < q.nsent; i++) {
        int64_t lo = q.sent[i], hi = q.sent[i + 1];
        for (int64_t t = lo; t < hi; t++) {
            if (!breaks(s, at(ts, q, t - 1, lo, hi), at(ts, q, t, lo, hi), at(ts, q, t + 1, lo, hi))) continue;
            if (first && *first < 0) *first = t;
            bad++;
        }
    }
    return bad;
}

/* Does scheme s use every prefix that occurs in q? */
static bool covers(const mn_tagset *ts, mn_tagseq q, mn_scheme s)
{
    for (int64_t t = q.sent[0]; t < q.sent[q.nsent]; t++) {
        char c = ts->prefix[q.ids[t]];
        if (c != 'O' && !one_of(c, scheme_prefixes[s])) return false;
    }
    return true;
}

mn_scheme mn_scheme_detect(const mn_tagset *ts, mn_tagseq q)
{
    static const mn_scheme order[] = { MN_SCHEME_IOB2, MN_SCHEME_IOB1, MN_SCHEME_IOE2, MN_SCHEME_IOE1, MN_SCHEME_IOBES };
    mn_scheme best = MN_SCHEME_IOB2;
    int64_t fewest = -1;
    bool any_covers = false;
    for (int i = 0; i < MN_SCHEME_COUNT; i++) any_covers |= covers(ts, q, order[i]);
    for (int i = 0; i < MN_SCHEME_COUNT; i++) {
        if (any_covers && !covers(ts, q, order[i])) continue;
        int64_t v = mn_scheme_violations(ts, q, order[i], NULL);
        if (fewest < 0 || v < fewest) { fewest = v; best = order[i]; }
    }
    return best;
}

/* ---- writing entities in a scheme ---- */

typedef struct {
    mn_tagset *ts;
    int32_t *cache;     /* types x 4 (B I E S) tag ids, -1 until needed */
    int32_t ntypes;
} writer;

static mn_status tag_id(writer *w, char pfx, int32_t type, int32_t *id)
{
    int slot = (int)(strchr("BIES", pfx) - "BIES");
    int32_t *c = &w->cache[(int64_t)type * 4 + slot];
    if (*c >= 0) { *id = *c; return MN_OK; }
    const char *name = w->ts->types.str[type];
    size_t n = strlen(name) + 3;
    char *tag = malloc(n);
    if (!tag) return mn_set_error(MN_ERR_NOMEM, "tags: out of memory");
    if (type == 0) snprintf(tag, n, "%c", pfx);
    else snprintf(tag, n, "%c-%s", pfx, name);
    mn_status s = mn_tagset_add(w->ts, tag, c);
    free(tag);
    *id = *c;
    return s;
}

/* The prefix of token t of span sp (tokens lo..hi after clipping). */
static char prefix_in(mn_scheme s, int64_t t, int64_t lo, int64_t hi, bool joined_before, bool joined_after)
{
    switch (s) {
    case MN_SCHEME_IOB2: return t == lo ? 'B' : 'I';
    case MN_SCHEME_IOB1: return t == lo && joined_before ? 'B' : 'I';
    case MN_SCHEME_IOE2: return t == hi ? 'E' : 'I';
    case MN_SCHEME_IOE1: return t == hi && joined_after ? 'E' : 'I';
    default: return lo == hi ? 'S' : t == lo ? 'B' : t == hi ? 'E' : 'I';
    }
}

/* Writes the spans sp->v[a..b) that end in tokens [lo, hi). */
static mn_status write_sentence(writer *w, const mn_spans *sp, int64_t a, int64_t b, int64_t lo, mn_scheme s, int32_t *ids)
{
    int64_t prev_end = lo - 1;
    int32_t prev_type = -1;
    for (int64_t k = a; k < b; k++) {
        mn_span x = sp->v[k];
        int64_t start = x.start > prev_end ? x.start : prev_end + 1;
        if (start > x.end) continue;
        bool before = prev_end == start - 1 && prev_type == x.type;
        bool after = k + 1 < b && sp->v[k + 1].start <= x.end + 1 && sp->v[k + 1].end > x.end && sp->v[k + 1].type == x.type;
        for (int64_t t = start; t <= x.end; t++) {
            mn_status st = tag_id(w, prefix_in(s, t, start, x.end, before, after), x.type, &ids[t]);
            if (st) return st;
        }
        prev_end = x.end;
        prev_type = x.type;
    }
    return MN_OK;
}

mn_status mn_ner_encode(mn_tagset *ts, const mn_spans *sp, const int64_t *sent, int64_t nsent, mn_scheme s, int32_t *ids)
{
    int32_t o;
    mn_status st = mn_tagset_add(ts, "O", &o);
    if (st) return st;
    writer w = { ts, malloc((size_t)ts->types.n * 4 * sizeof(int32_t)), ts->types.n };
    if (!w.cache) return mn_set_error(MN_ERR_NOMEM, "tags: out of memory");
    for (int64_t i = 0; i < (int64_t)w.ntypes * 4; i++) w.cache[i] = -1;
    for (int64_t t = sent[0]; t < sent[nsent]; t++) ids[t] = o;
    int64_t k = 0;
    for (int64_t i = 0; i < nsent && !st; i++) {
        while (k < sp->n && sp->v[k].end < sent[i]) k++;
        int64_t a = k;
        while (k < sp->n && sp->v[k].end < sent[i + 1]) k++;
        st = write_sentence(&w, sp, a, k, sent[i], s, ids);
    }
    free(w.cache);
    return st;
}

mn_status mn_ner_convert(mn_tagset *ts, mn_tagseq q, mn_scheme to, int32_t *out)
{
    mn_spans sp;
    mn_status s = mn_ner_entities(ts, q, &sp);
    if (!s) s = mn_ner_encode(ts, &sp, q.sent, q.nsent, to, out);
    mn_spans_free(&sp);
    return s;
}
