/* core/params_load.c: partial loads for fine-tuning, as PyTorch's
 * load_state_dict(strict=False): the trainable tensors a store shares with
 * a file or another store, by name or through rename rules ("rnn.* ->
 * encoder.rnn.*"), and a report of what was loaded, missing, unexpected and
 * of another shape; names a caller copies itself are skipped by a list,
 * compared whole. Invariant: all or nothing; every rule, name and shape
 * is checked before the first byte is copied. */
#include "internal.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RULES 256
#define MAX_STARS 8

typedef struct { char from[256], to[256]; bool drop; } rule;
typedef struct { rule r[MAX_RULES]; int n; } rules;

static int stars(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '*';
    return n;
}

/* Copies s[0..len) without surrounding blanks into out (size 256). */
static bool trimmed(const char *s, size_t len, char *out)
{
    while (len && (*s == ' ' || *s == '\t')) { s++; len--; }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) len--;
    if (len == 0 || len >= 256) return false;
    memcpy(out, s, len);
    out[len] = 0;
    return true;
}

static mn_status bad_rule(int line, const char *why)
{
    return mn__error(MN_ERR_INVALID, "rename rule %d: %s (expected \"FROM -> TO\", '*' wildcards, TO '-' to drop)", line, why);
}

static mn_status parse_rule(const char *s, size_t len, int line, rules *R)
{
    const char *arrow = NULL;
    for (size_t i = 0; i + 1 < len && !arrow; i++) if (s[i] == '-' && s[i + 1] == '>') arrow = s + i;
    if (!arrow) return bad_rule(line, "no \"->\"");
    rule *r = &R->r[R->n];
    if (!trimmed(s, (size_t)(arrow - s), r->from)) return bad_rule(line, "FROM is empty or longer than 255 bytes");
    if (!trimmed(arrow + 2, len - (size_t)(arrow + 2 - s), r->to)) return bad_rule(line, "TO is empty or longer than 255 bytes");
    if (strpbrk(r->from, " \t?[]") || strpbrk(r->to, " \t?[]") || strstr(r->to, "->"))
        return bad_rule(line, "a name holds a blank, '?', '[' or a second \"->\"");
    r->drop = !strcmp(r->to, "-");
    if (stars(r->from) > MAX_STARS) return bad_rule(line, "more than 8 '*'");
    if (!r->drop && stars(r->from) != stars(r->to)) return bad_rule(line, "FROM and TO hold different numbers of '*'");
    if (R->n == MAX_RULES - 1) return bad_rule(line, "more than 255 rules");
    R->n++;
    return MN_OK;
}

/* Rules: lines (or ';'-separated items); blank ones and '#' comments skipped. */
static mn_status parse_rules(const char *text, rules *R)
{
    R->n = 0;
    int line = 0;
    for (const char *p = text; p && *p;) {
        size_t len = strcspn(p, "\n;");
        size_t skip = strspn(p, " \t\r");
        line++;
        if (skip < len && p[skip] != '#') {
            mn_status s = parse_rule(p, len, line, R);
            if (s) return s;
        }
        p += len + (p[len] != 0);
    }
    return MN_OK;
}

/* Whether name matches pat ('*' only); the star spans go to cap/len,
 * each as short as the match allows, left to right. On a mismatch only the
 * latest star grows, so the time is at most |pat| x |name| (a hostile
 * rule cannot make it exponential). */
static bool glob(const char *pat, const char *name, const char **cap, size_t *len)
{
    const char *p = pat, *s = name, *after_star = NULL;
    int k = -1;
    while (*s) {
        if (*p == '*') {
            cap[++k] = s;
            len[k] = 0;
            after_star = ++p;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (after_star) {
            len[k]++;
            p = after_star;
            s = cap[k] + len[k];
        } else {
            return false;
        }
    }
    for (; *p == '*'; p++) {
        cap[++k] = s;
        len[k] = 0;
    }
    return !*p;
}

/* The store name of a source name: "" when dropped; MN_ERR_INVALID if too long. */
static mn_status rename_one(const rules *R, const char *name, char *out, size_t cap)
{
    const char *c[MAX_STARS];
    size_t l[MAX_STARS];
    for (int i = 0; i < R->n; i++) {
        const rule *r = &R->r[i];
        if (!glob(r->from, name, c, l)) continue;
        if (r->drop) { out[0] = 0; return MN_OK; }
        size_t k = 0;
        int star = 0;
        for (const char *t = r->to; *t && k < cap; t++) {
            if (*t != '*') { out[k++] = *t; continue; }
            for (size_t j = 0; j < l[star] && k < cap; j++) out[k++] = c[star][j];
            star++;
        }
        if (k >= cap) return mn__error(MN_ERR_INVALID, "rename rule %d: \"%s\" becomes a name of %zu bytes or more", i + 1, name, cap);
        out[k] = 0;
        return MN_OK;
    }
    snprintf(out, cap, "%s", name);
    return MN_OK;
}

mn_status mn_params_rename(const char *rename, const char *name, char *out, size_t cap)
{
    if (!name || !out || cap == 0) return mn__error(MN_ERR_MISUSE, "params_rename: NULL name or output");
    rules *R = calloc(1, sizeof *R);
    mn_status s = R ? MN_OK : mn__error(MN_ERR_NOMEM, "params_rename: out of memory");
    if (!s && rename) s = parse_rules(rename, R);
    if (!s) s = rename_one(R, name, out, cap);
    free(R);
    return s;
}

void mn_load_report_free(mn_load_report *r)
{
    for (int k = 0; r && k < MN_LOAD_KINDS; k++) {
        for (int i = 0; i < r->count[k]; i++) free(r->names[k][i]);
        free(r->names[k]);
        r->names[k] = NULL;
        r->count[k] = 0;
    }
}

static mn_status note(mn_load_report *r, mn_load_kind k, const char *name)
{
    char **v = realloc(r->names[k], (size_t)(r->count[k] + 1) * sizeof *v);
    if (v) r->names[k] = v;
    char *d = v ? strdup(name) : NULL;
    if (!d) return mn__error(MN_ERR_NOMEM, "partial load: out of memory");
    r->names[k][r->count[k]++] = d;
    return MN_OK;
}

/* What a partial load decides: for each store entry, the source index
 * copied into it (-1: none) and the kinds of every name. */
typedef struct { int *from; mn_load_report rep; } plan;

static mn_status place(mn_params *P, const mn_params *src, int i, const char *to, plan *pl)
{
    const char *name = mn_params_name(src, i);
    int j = *to ? mn_params_find(P, to) : -1;
    if (j < 0 || !mn_params_grad(P, j)) return note(&pl->rep, MN_LOAD_UNEXPECTED, name);
    if (pl->from[j] >= 0)
        return mn__error(MN_ERR_INVALID, "partial load: \"%s\" and \"%s\" both become \"%s\"", mn_params_name(src, pl->from[j]), name, to);
    pl->from[j] = i;
    return MN_OK;
}

/* Whether name is one of the NULL-terminated list's, byte for byte. */
static bool skipped(const char *const *skip, const char *name)
{
    for (; skip && *skip; skip++)
        if (!strcmp(*skip, name)) return true;
    return false;
}

static mn_status decide(mn_params *P, const mn_params *src, const rules *R, const mn_load_opts *o, plan *pl)
{
    char to[512];
    mn_status s = MN_OK;
    for (int i = 0; !s && i < mn_params_count(src); i++) {
        if (!mn_params_grad((mn_params *)src, i) || skipped(o->skip, mn_params_name(src, i))) continue;
        s = rename_one(R, mn_params_name(src, i), to, sizeof to);
        if (!s) s = place(P, src, i, to, pl);
    }
    for (int j = 0; !s && j < mn_params_count(P); j++) {
        if (!mn_params_grad(P, j)) continue;
        int i = pl->from[j];
        mn_shape a = i >= 0 ? mn_params_value((mn_params *)src, i)->shape : MN_SCALAR;
        mn_load_kind k = i < 0 ? MN_LOAD_MISSING
                       : mn_shape_eq(a, mn_params_value(P, j)->shape) ? MN_LOAD_LOADED : MN_LOAD_MISMATCHED;
        s = note(&pl->rep, k, mn_params_name(P, j));
    }
    return s;
}

/* MN_ERR_SHAPE naming the first mismatches with both shapes. */
static mn_status mismatch_error(mn_params *P, const mn_params *src, const plan *pl)
{
    char msg[900] = "", a[96], b[96];
    const mn_load_report *r = &pl->rep;
    for (int k = 0; k < r->count[MN_LOAD_MISMATCHED] && k < 4; k++) {
        int j = mn_params_find(P, r->names[MN_LOAD_MISMATCHED][k]);
        int i = pl->from[j];
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, "%s\"%s\" %s in the store, \"%s\" %s in the source", k ? "; " : "", mn_params_name(P, j),
                 mn_shape_str(mn_params_value(P, j)->shape, a, sizeof a), mn_params_name(src, i),
                 mn_shape_str(mn_params_value((mn_params *)src, i)->shape, b, sizeof b));
    }
    int n = r->count[MN_LOAD_MISMATCHED];
    return mn__error(MN_ERR_SHAPE, "partial load: %d tensor%s of another shape: %s%s; nothing loaded (skip them explicitly to load the rest)",
                     n, n > 1 ? "s" : "", msg, n > 4 ? " and more" : "");
}

/* The options as this library reads them, from a caller's struct of
 * `size` bytes: this header's, or 0.1's (without the skip list). */
typedef struct { const char *rename; bool skip_mismatched; } load_opts_0_1;
_Static_assert(offsetof(mn_load_opts, skip_mismatched) == offsetof(load_opts_0_1, skip_mismatched) &&
               offsetof(mn_load_opts, skip) >= sizeof(load_opts_0_1), "mn_load_opts: fields are appended only");

static mn_status opts_of(const mn_load_opts *opts, size_t size, mn_load_opts *out)
{
    memset(out, 0, sizeof *out);
    if (!opts) return MN_OK;
    if (size != sizeof(mn_load_opts) && size != sizeof(load_opts_0_1))
        return mn__error(MN_ERR_MISUSE, "partial load: mn_load_opts of %zu bytes; this library (mnemo %s) takes %zu (0.2) or %zu (0.1)", size,
                         mn_version(), sizeof(mn_load_opts), sizeof(load_opts_0_1));
    memcpy(out, opts, size);
    return MN_OK;
}

mn_status mn_params_copy_partial_sized(size_t opts_size, mn_params *P, const mn_params *src, const mn_load_opts *opts, mn_load_report *report)
{
    if (report) memset(report, 0, sizeof *report);
    if (!P || !src) return mn__error(MN_ERR_MISUSE, "copy_partial: NULL store");
    mn_load_opts o;
    mn_status s = opts_of(opts, opts_size, &o);
    if (s) return s;
    rules *R = calloc(1, sizeof *R);
    plan pl = { calloc((size_t)mn_params_count(P) + 1, sizeof(int)), { { 0 }, { 0 } } };
    s = !R || !pl.from ? mn__error(MN_ERR_NOMEM, "partial load: out of memory") : MN_OK;
    for (int j = 0; !s && j < mn_params_count(P); j++) pl.from[j] = -1;
    if (!s && o.rename) s = parse_rules(o.rename, R);
    if (!s) s = decide(P, src, R, &o, &pl);
    if (!s && !o.skip_mismatched && pl.rep.count[MN_LOAD_MISMATCHED]) s = mismatch_error(P, src, &pl);
    for (int k = 0; !s && k < pl.rep.count[MN_LOAD_LOADED]; k++) {
        int j = mn_params_find(P, pl.rep.names[MN_LOAD_LOADED][k]);
        mn_tensor *d = mn_params_value(P, j);
        memcpy(d->data, mn_params_value((mn_params *)src, pl.from[j])->data, mn_tensor_bytes(d));
    }
    if (report && (!s || s == MN_ERR_SHAPE)) *report = pl.rep;
    else mn_load_report_free(&pl.rep);
    free(R);
    free(pl.from);
    return s;
}

mn_status mn_params_load_partial_sized(size_t opts_size, mn_params *P, const char *path, const mn_load_opts *opts, mn_load_report *report)
{
    if (report) memset(report, 0, sizeof *report);
    if (!P || !path) return mn__error(MN_ERR_MISUSE, "load_partial: NULL store or path");
    mn_load_opts o;
    mn_status s = opts_of(opts, opts_size, &o);
    if (s) return s;
    mn_params *src = mn_params_new();
    if (!src) return mn_last_status();
    s = mn_params_load(src, path);
    if (!s) s = mn_params_copy_partial_sized(sizeof o, P, src, opts ? &o : NULL, report);
    mn_params_free(src);
    return s;
}

/* The symbols of 0.1, for programs built against it (their struct has no
 * skip list); the header's macros of the same names reach the sized ones. */
mn_status (mn_params_copy_partial)(mn_params *P, const mn_params *src, const mn_load_opts *opts, mn_load_report *report);
mn_status (mn_params_load_partial)(mn_params *P, const char *path, const mn_load_opts *opts, mn_load_report *report);

mn_status (mn_params_copy_partial)(mn_params *P, const mn_params *src, const mn_load_opts *opts, mn_load_report *report)
{
    return mn_params_copy_partial_sized(sizeof(load_opts_0_1), P, src, opts, report);
}

mn_status (mn_params_load_partial)(mn_params *P, const char *path, const mn_load_opts *opts, mn_load_report *report)
{
    return mn_params_load_partial_sized(sizeof(load_opts_0_1), P, path, opts, report);
}
