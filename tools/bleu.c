/* tools/bleu.c: corpus BLEU and chrF, written from sacreBLEU 2.x's
 * documented behaviour (13a regex passes, clipped n-gram counts, 'exp'
 * smoothing, log of a zero precision floored at -9999999999; chrF's
 * effective-order average). Text is UTF-8; "whitespace" is Python's
 * str.split() set, since sacreBLEU splits with it. N-gram counts are exact:
 * sequences are sorted and compared, never hashed. */
#include "bleu.h"
#include "parallel.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Python's whitespace: bytes of the white code point at s, or 0 ---- */

static size_t py_space(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    if (c == 0xC2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (c == 0xE1 && n >= 3 && s[1] == 0x9A && s[2] == 0x80) return 3;              /* U+1680 */
    if (c == 0xE3 && n >= 3 && s[1] == 0x80 && s[2] == 0x80) return 3;              /* U+3000 */
    if (c != 0xE2 || n < 3) return 0;
    if (s[1] == 0x80 && (s[2] <= 0x8A || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF)) return 3;  /* U+2000-200A, 2028, 2029, 202F */
    if (s[1] == 0x81 && s[2] == 0x9F) return 3;                                     /* U+205F */
    return 0;
}

/* Decodes valid UTF-8 into code points; returns the count or -1. */
static int64_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    int64_t m = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        int len = c < 0x80 ? 1 : c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
        if (!len || i + (size_t)len > n) return -1;
        uint32_t v = len == 1 ? c : c & (0xFF >> (len + 1));
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return -1;
            v = v << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (v < 0x800 || (v >= 0xD800 && v < 0xE000))) || (len == 4 && (v < 0x10000 || v > 0x10FFFF))) return -1;
        cp[m++] = v;
        i += (size_t)len;
    }
    return m;
}

/* ---- 13a: the language-independent replacements, then four regex passes ---- */

typedef struct { char *b; size_t n; } buf;

static void replace_all(buf *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), o = 0;   /* tl <= fl: in place */
    for (size_t i = 0; i < s->n;) {
        if (i + fl <= s->n && !memcmp(s->b + i, from, fl)) {
            memcpy(s->b + o, to, tl);
            o += tl;
            i += fl;
        } else {
            s->b[o++] = s->b[i++];
        }
    }
    s->n = o;
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* r'([\{-\~\[-\` -\&\(-\+\:-\@\/])' -> r' \1 ' */
static bool pass1_char(unsigned char c)
{
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
           (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

/* Each pass reads in and writes out (capacity 4 x in + 8). Passes scan
 * left to right and resume after each match, as re.sub does. */
static size_t pass1(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (pass1_char((unsigned char)in[i])) { out[o++] = ' '; out[o++] = in[i]; out[o++] = ' '; }
        else out[o++] = in[i];
    }
    return o;
}

/* r'([^0-9])([\.,])' -> r'\1 \2 ' */
static size_t pass2(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && !is_digit((unsigned char)in[i]) && (in[i + 1] == '.' || in[i + 1] == ',')) {
            out[o++] = in[i]; out[o++] = ' '; out[o++] = in[i + 1]; out[o++] = ' ';
            i++;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

/* r'([\.,])([^0-9])' -> r' \1 \2' */
static size_t pass3(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && (in[i] == '.' || in[i] == ',') && !is_digit((unsigned char)in[i + 1])) {
            out[o++] = ' '; out[o++] = in[i]; out[o++] = ' '; out[o++] = in[i + 1];
            i++;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

/* r'([0-9])(-)' -> r'\1 \2 ' */
static size_t pass4(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && is_digit((unsigned char)in[i]) && in[i + 1] == '-') {
            out[o++] = in[i]; out[o++] = ' '; out[o++] = '-'; out[o++] = ' ';
            i++;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

/* ' '.join(s.split()) into out; returns the length. */
static size_t join_split(const char *in, size_t n, char *out)
{
    size_t o = 0;
    bool pending = false;
    for (size_t i = 0; i < n;) {
        size_t w = py_space((const unsigned char *)in + i, n - i);
        if (w) { pending = o > 0; i += w; continue; }
        if (pending) out[o++] = ' ';
        pending = false;
        out[o++] = in[i++];
    }
    out[o] = 0;
    return o;
}

/* Length without trailing Python whitespace. */
static size_t rstrip_len(const char *s, size_t n)
{
    size_t end = 0;
    for (size_t i = 0; i < n;) {
        size_t w = py_space((const unsigned char *)s + i, n - i);
        i += w ? w : 1;
        if (!w) end = i;
    }
    return end;
}

mn_status mn_tok13a(const char *s, size_t n, char **out)
{
    *out = NULL;
    if (mn_utf8_valid_prefix(s, n) != n) return mn_set_error(MN_ERR_INVALID, "bleu: invalid UTF-8 at byte %zu", mn_utf8_valid_prefix(s, n) + 1);
    n = rstrip_len(s, n);
    if (n > (SIZE_MAX - 64) / 24) return mn_set_error(MN_ERR_INVALID, "bleu: segment too long");
    size_t cap = 24 * (n + 2) + 16;    /* pass1 at most triples, passes 2-4 at most double */
    char *a = malloc(cap), *b = malloc(cap);
    if (!a || !b) { free(a); free(b); return mn_set_error(MN_ERR_NOMEM, "bleu: out of memory"); }
    buf t = { a + 1, n };
    memcpy(t.b, s, n);
    replace_all(&t, "<skipped>", "");
    replace_all(&t, "-\n", "");
    replace_all(&t, "\n", " ");
    replace_all(&t, "&quot;", "\"");
    replace_all(&t, "&amp;", "&");
    replace_all(&t, "&lt;", "<");
    replace_all(&t, "&gt;", ">");
    a[0] = ' ';
    a[t.n + 1] = ' ';
    size_t len = pass1(a, t.n + 2, b);
    len = pass2(b, len, a);
    len = pass3(a, len, b);
    len = pass4(b, len, a);
    len = join_split(a, len, b);
    free(a);
    *out = b;
    return MN_OK;
}

/* ---- exact n-gram matching by sorting ---- */

typedef struct { const int32_t *seq; int n; } ngram_ctx;

static int cmp_ngram(const ngram_ctx *c, int64_t x, int64_t y)
{
    for (int k = 0; k < c->n; k++)
        if (c->seq[x + k] != c->seq[y + k]) return c->seq[x + k] < c->seq[y + k] ? -1 : 1;
    return 0;
}

/* Stable merge sort of start positions (qsort has no context argument). */
static void sort_starts(const ngram_ctx *c, int64_t *v, int64_t *tmp, int64_t n)
{
    if (n < 2) return;
    int64_t h = n / 2;
    sort_starts(c, v, tmp, h);
    sort_starts(c, v + h, tmp, n - h);
    int64_t i = 0, j = h, o = 0;
    while (i < h && j < n) tmp[o++] = cmp_ngram(c, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[o++] = v[i++];
    while (j < n) tmp[o++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

/* Sum over distinct n-grams of min(count in hyp, count in ref). seq holds
 * the hyp (nh ids) followed by the ref (nr ids); work has 2 (nh + nr). */
static int64_t clipped_matches(const int32_t *seq, int64_t nh, int64_t nr, int n, int64_t *work)
{
    int64_t ch = nh - n + 1 > 0 ? nh - n + 1 : 0, cr = nr - n + 1 > 0 ? nr - n + 1 : 0;
    int64_t *H = work, *R = work + ch, *tmp = work + ch + cr;
    for (int64_t i = 0; i < ch; i++) H[i] = i;
    for (int64_t i = 0; i < cr; i++) R[i] = nh + i;
    ngram_ctx c = { seq, n };
    sort_starts(&c, H, tmp, ch);
    sort_starts(&c, R, tmp, cr);
    int64_t i = 0, j = 0, m = 0;
    while (i < ch && j < cr) {
        int d = cmp_ngram(&c, H[i], R[j]);
        if (d) { d < 0 ? i++ : j++; continue; }
        int64_t a = i, b = j;
        while (i < ch && !cmp_ngram(&c, H[a], H[i])) i++;
        while (j < cr && !cmp_ngram(&c, R[b], R[j])) j++;
        m += (i - a) < (j - b) ? (i - a) : (j - b);
    }
    return m;
}

/* ---- BLEU ---- */

typedef struct { const char *s; size_t len; } span;

static int64_t split_tokens(const char *s, span *out)
{
    int64_t n = 0;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t w = py_space((const unsigned char *)s + i, len - i);
        if (w) { i += w; continue; }
        size_t j = i;
        while (j < len && !py_space((const unsigned char *)s + j, len - j)) j++;
        out[n++] = (span){ s + i, j - i };
        i = j;
    }
    return n;
}

static int cmp_span(const span *a, const span *b)
{
    size_t m = a->len < b->len ? a->len : b->len;
    int d = memcmp(a->s, b->s, m);
    return d ? d : (a->len > b->len) - (a->len < b->len);
}

/* Token strings -> ids (equal strings, equal ids), by an insertion-free
 * merge sort of indices. */
static void sort_spans(const span *t, int64_t *v, int64_t *tmp, int64_t n)
{
    if (n < 2) return;
    int64_t h = n / 2;
    sort_spans(t, v, tmp, h);
    sort_spans(t, v + h, tmp, n - h);
    int64_t i = 0, j = h, o = 0;
    while (i < h && j < n) tmp[o++] = cmp_span(&t[v[j]], &t[v[i]]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[o++] = v[i++];
    while (j < n) tmp[o++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

static void intern(const span *t, int64_t n, int32_t *ids, int64_t *work)
{
    int64_t *v = work, *tmp = work + n;
    for (int64_t i = 0; i < n; i++) v[i] = i;
    sort_spans(t, v, tmp, n);
    int32_t id = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i && cmp_span(&t[v[i]], &t[v[i - 1]])) id++;
        ids[v[i]] = id;
    }
}

static mn_status add_tokens(mn_bleu_stats *st, const char *h, const char *r)
{
    size_t lh = strlen(h), lr = strlen(r);
    int64_t cap = (int64_t)(lh + lr) / 2 + 2;
    span *t = malloc((size_t)cap * sizeof *t);
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int64_t *work = malloc((size_t)cap * 2 * sizeof *work);
    if (!t || !ids || !work) { free(t); free(ids); free(work); return mn_set_error(MN_ERR_NOMEM, "bleu: out of memory"); }
    int64_t nh = split_tokens(h, t), nr = split_tokens(r, t + nh);
    intern(t, nh + nr, ids, work);
    st->hyp_len += nh;
    st->ref_len += nr;
    for (int n = 1; n <= MN_BLEU_ORDER; n++) {
        st->total[n - 1] += nh - n + 1 > 0 ? nh - n + 1 : 0;
        st->correct[n - 1] += clipped_matches(ids, nh, nr, n, work);
    }
    free(t);
    free(ids);
    free(work);
    return MN_OK;
}

mn_status mn_bleu_add(mn_bleu_stats *st, const char *hyp, const char *ref, bool tokenize)
{
    if (!st || !hyp || !ref) return mn_set_error(MN_ERR_MISUSE, "bleu: NULL argument");
    if (!tokenize) {
        size_t lh = strlen(hyp), lr = strlen(ref);
        if (mn_utf8_valid_prefix(hyp, lh) != lh || mn_utf8_valid_prefix(ref, lr) != lr)
            return mn_set_error(MN_ERR_INVALID, "bleu: invalid UTF-8 in a segment");
        return add_tokens(st, hyp, ref);
    }
    char *h, *r = NULL;
    mn_status s = mn_tok13a(hyp, strlen(hyp), &h);
    if (!s) s = mn_tok13a(ref, strlen(ref), &r);
    if (!s) s = add_tokens(st, h, r);
    free(h);
    free(r);
    return s;
}

static double floored_log(double x)
{
    return x == 0.0 ? -9999999999.0 : log(x);
}

mn_bleu mn_bleu_score(const mn_bleu_stats *st)
{
    mn_bleu b = { 0 };
    b.hyp_len = st->hyp_len;
    b.ref_len = st->ref_len;
    b.bp = 1.0;
    if (st->hyp_len < st->ref_len) b.bp = st->hyp_len > 0 ? exp(1.0 - (double)st->ref_len / (double)st->hyp_len) : 0.0;
    bool any = false;
    for (int n = 0; n < MN_BLEU_ORDER; n++) any = any || st->correct[n] > 0;
    if (!any) return b;
    double smooth = 1.0, sum = 0.0;
    for (int n = 0; n < MN_BLEU_ORDER; n++) {
        if (st->total[n] == 0) break;
        if (st->correct[n] == 0) {
            smooth *= 2.0;
            b.precision[n] = 100.0 / (smooth * (double)st->total[n]);
        } else {
            b.precision[n] = 100.0 * (double)st->correct[n] / (double)st->total[n];
        }
    }
    for (int n = 0; n < MN_BLEU_ORDER; n++) sum += floored_log(b.precision[n]);
    b.score = b.bp * exp(sum / MN_BLEU_ORDER);
    return b;
}

mn_status mn_corpus_bleu(const char *const *hyps, const char *const *refs, int64_t n, bool tokenize, mn_bleu *out)
{
    mn_bleu_stats st = { 0 };
    for (int64_t i = 0; i < n; i++) {
        mn_status s = mn_bleu_add(&st, hyps[i], refs[i], tokenize);
        if (s) return mn_set_error(s, "bleu: segment %lld: %s", (long long)i + 1, mn_errmsg());
    }
    *out = mn_bleu_score(&st);
    return MN_OK;
}

/* ---- chrF ---- */

/* Code points of s without Python whitespace; -1 on invalid UTF-8. */
static int64_t chars_no_space(const char *s, uint32_t *cp)
{
    size_t len = strlen(s);
    int64_t m = utf8_decode((const unsigned char *)s, len, cp);
    if (m < 0) return -1;
    int64_t o = 0;
    for (int64_t i = 0; i < m; i++) {
        uint32_t c = cp[i];
        bool white = c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xA0 ||
                     c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
                     c == 0x205F || c == 0x3000;
        if (!white) cp[o++] = c;
    }
    return o;
}

mn_status mn_chrf_add(mn_chrf_stats *st, const char *hyp, const char *ref)
{
    if (!st || !hyp || !ref) return mn_set_error(MN_ERR_MISUSE, "chrf: NULL argument");
    size_t lh = strlen(hyp), lr = strlen(ref);
    uint32_t *cp = malloc((lh + lr + 1) * sizeof *cp);
    int64_t *work = malloc((lh + lr + 1) * 2 * sizeof *work);
    if (!cp || !work) { free(cp); free(work); return mn_set_error(MN_ERR_NOMEM, "chrf: out of memory"); }
    int64_t nh = chars_no_space(hyp, cp), nr = nh < 0 ? -1 : chars_no_space(ref, cp + nh);
    if (nh < 0 || nr < 0) { free(cp); free(work); return mn_set_error(MN_ERR_INVALID, "chrf: invalid UTF-8 in a segment"); }
    for (int n = 1; n <= MN_CHRF_ORDER; n++) {
        int64_t ch = nh - n + 1 > 0 ? nh - n + 1 : 0, cr = nr - n + 1 > 0 ? nr - n + 1 : 0;
        st->hyp[n - 1] += cr ? ch : 0;      /* hyp n-grams count only where the ref has some */
        st->ref[n - 1] += cr;
        st->match[n - 1] += clipped_matches((const int32_t *)cp, nh, nr, n, work);
    }
    free(cp);
    free(work);
    return MN_OK;
}

double mn_chrf_score(const mn_chrf_stats *st, double beta)
{
    double prec = 0.0, rec = 0.0, f = beta * beta;
    int eff = 0;
    for (int n = 0; n < MN_CHRF_ORDER; n++) {
        if (st->hyp[n] > 0 && st->ref[n] > 0) {
            prec += (double)st->match[n] / (double)st->hyp[n];
            rec += (double)st->match[n] / (double)st->ref[n];
            eff++;
        }
    }
    if (!eff) return 0.0;
    prec /= eff;
    rec /= eff;
    if (prec + rec == 0.0) return 0.0;
    return 100.0 * (1.0 + f) * prec * rec / (f * prec + rec);
}

mn_status mn_corpus_chrf(const char *const *hyps, const char *const *refs, int64_t n, double *score)
{
    mn_chrf_stats st = { 0 };
    for (int64_t i = 0; i < n; i++) {
        mn_status s = mn_chrf_add(&st, hyps[i], refs[i]);
        if (s) return mn_set_error(s, "chrf: segment %lld: %s", (long long)i + 1, mn_errmsg());
    }
    *score = mn_chrf_score(&st, MN_CHRF_BETA);
    return MN_OK;
}
