/* tools/ner_init.c: `mnemo train --model ner --init-from CKPT [--init-map
 * FILE]`: copies the tensors a checkpoint shares with the tagger, by name
 * or renamed by the map's rules. Tensors whose rows stand for something
 * are copied row by row, matched by what they stand for: words by their
 * text, characters by byte (from a character language model: by code
 * point), tags only from a ner checkpoint of the same tags. Rows without
 * a counterpart keep their random start. Invariant: all or nothing; the
 * row tensors (shape, labels, tags) and the partial load of the rest are
 * checked whole before the first value is copied. */
#include "finetune.h"
#include "ner_train.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ROWS_WORDS, ROWS_CHARS, ROWS_TAGS } row_kind;

#define NROWS 5
static const struct { const char *name; row_kind kind; } row_tensors[NROWS] = {
    { "ner.words.weight", ROWS_WORDS }, { "ner.chars.weight", ROWS_CHARS }, { "ner.out.weight", ROWS_TAGS },
    { "ner.out.bias", ROWS_TAGS }, { "ner.crf.transitions", ROWS_TAGS } };

/* A row tensor to fill: from source tensor src, by the source's row labels
 * (words or code points; NULL: the whole tensor). */
typedef struct { int src, k; json_t *labels; } row_copy;
typedef struct {
    row_copy c[NROWS];
    int n;
    const char *skip[NROWS + 1];     /* their source names: the partial load leaves them to us */
} rows_plan;

static int row_tensor(const char *name)
{
    for (int k = 0; k < NROWS; k++)
        if (!strcmp(row_tensors[k].name, name)) return k;
    return -1;
}

static bool is_ner(const mn_params *src)
{
    const char *m = mn_params_get_meta(src, "mnemo.model");
    return m && !strcmp(m, "ner");
}

static const char *map_name(const mn_ner_init *in) { return in->map_path ? in->map_path : ""; }

/* MN_ERR_* s with "PREFIX PATH: " before the current message (copied first: the message buffer is reused). */
static mn_status wrap(mn_status s, const char *prefix, const char *path)
{
    char msg[700];
    snprintf(msg, sizeof msg, "%s", mn_errmsg());
    return mn_set_error(s, "%s %s: %s", prefix, path, msg);
}

/* The labels of R source rows: a JSON array in the source's metadata of R
 * strings (words: a ner checkpoint's mnemo.ner.words, or a Brown tagger's
 * mnemo.vocab) or R integers (characters: a text model's code points). */
static mn_status row_labels(const mn_ner_init *in, const mn_params *src, row_kind kind, int64_t R, json_t **out)
{
    bool words = kind == ROWS_WORDS;
    const char *key = words && is_ner(src) ? "mnemo.ner.words" : "mnemo.vocab", *text = mn_params_get_meta(src, key);
    json_t *a = text ? json_loads(text, 0, NULL) : NULL;
    mn_status s = json_is_array(a) && (int64_t)json_array_size(a) == R ? MN_OK
                : mn_set_error(MN_ERR_INVALID, "--init-from %s: its rows are not %s (no list of %lld %s in its metadata)", in->path,
                               words ? "words" : "characters", (long long)R, words ? "words" : "code points");
    for (int64_t k = 0; !s && k < R; k++) {
        json_t *v = json_array_get(a, (size_t)k);
        if (words ? json_is_string(v) : json_is_integer(v)) continue;
        s = mn_set_error(MN_ERR_INVALID, "--init-from %s: its rows are not %s (%s entry %lld is not a %s)", in->path, words ? "words" : "characters",
                         key, (long long)k, words ? "string" : "code point");
    }
    if (s) json_decref(a);
    else *out = a;
    return s;
}

/* Tag rows: only from a ner checkpoint of the same tags, whole. */
static mn_status check_tags(const mn_ner_init *in, const mn_params *src, const char *from, const mn_tensor *S, const mn_tensor *D)
{
    const char *st = mn_params_get_meta(src, "mnemo.ner.tags");
    if (!is_ner(src) || !st || strcmp(st, in->tags_json))
        return mn_set_error(MN_ERR_INVALID, "--init-from %s: \"%s\" holds rows of tags, and it is not a ner checkpoint of this run's tags %s; "
                            "drop it with an --init-map rule \"%s -> -\"", in->path, from, in->tags_json, from);
    if (!mn_shape_eq(S->shape, D->shape)) return mn_set_error(MN_ERR_SHAPE, "--init-from %s: \"%s\" has another shape than the tagger's", in->path, from);
    return MN_OK;
}

/* Whether source tensor i fits row tensor k of P, and how its rows map (c). */
static mn_status check_rows(const mn_ner_init *in, mn_params *P, const mn_params *src, int i, int k, row_copy *c)
{
    const char *from = mn_params_name(src, i), *to = row_tensors[k].name;
    const mn_tensor *S = mn_params_value((mn_params *)src, i), *D = mn_params_get(P, to);
    char a[96], b[96];
    *c = (row_copy){ .src = i, .k = k };
    if (row_tensors[k].kind == ROWS_TAGS) return check_tags(in, src, from, S, D);
    if (S->dtype != MN_F32 || S->shape.ndim != D->shape.ndim || S->shape.d[S->shape.ndim - 1] != D->shape.d[D->shape.ndim - 1])
        return mn_set_error(MN_ERR_SHAPE, "--init-from %s: \"%s\" %s does not fit \"%s\" %s (another number of columns: --embed, --char-dim, --hidden)",
                            in->path, from, mn_shape_str(S->shape, a, sizeof a), to, mn_shape_str(D->shape, b, sizeof b));
    if (row_tensors[k].kind == ROWS_CHARS && is_ner(src))       /* another tagger's characters: the same ids */
        return S->shape.d[0] == D->shape.d[0] ? MN_OK
             : mn_set_error(MN_ERR_SHAPE, "--init-from %s: %lld character rows, the tagger has %lld", in->path, (long long)S->shape.d[0],
                            (long long)D->shape.d[0]);
    return row_labels(in, src, row_tensors[k].kind, S->shape.d[0], &c->labels);
}

static bool planned(const rows_plan *rp, int k)
{
    for (int j = 0; j < rp->n; j++)
        if (rp->c[j].k == k) return true;
    return false;
}

/* Which source tensors become row tensors of P, each checked; *bad_map
 * when the map is at fault. Copies nothing. */
static mn_status plan_rows(mn_params *P, const mn_params *src, const mn_ner_init *in, rows_plan *rp, bool *bad_map)
{
    char to[512];
    for (int i = 0; i < mn_params_count(src); i++) {
        if (!mn_params_grad((mn_params *)src, i)) continue;
        mn_status s = mn_params_rename(in->map, mn_params_name(src, i), to, sizeof to);
        *bad_map = s == MN_ERR_INVALID;
        if (s) return wrap(s, "--init-map", map_name(in));
        int k = row_tensor(to);
        if (k < 0 || mn_params_find(P, to) < 0) continue;
        *bad_map = planned(rp, k);
        if (*bad_map) return mn_set_error(MN_ERR_INVALID, "--init-map %s: two tensors of %s become \"%s\"", map_name(in), in->path, to);
        if ((s = check_rows(in, P, src, i, k, &rp->c[rp->n]))) return s;
        rp->skip[rp->n++] = mn_params_name(src, i);
    }
    return MN_OK;
}

/* The destination row of source row r (-1: none): a word's id, or a code
 * point's byte id (below 128; ids 0-2 are the tagger's own symbols). */
static int64_t dest_row(const mn_ner_init *in, row_kind kind, json_t *label, int64_t rows)
{
    if (kind == ROWS_WORDS) return mn_strtab_find(in->words, json_string_value(label));
    json_int_t cp = json_integer_value(label);
    return cp > 0 && cp < 128 && cp + 3 < rows ? (int64_t)cp + 3 : -1;
}

/* Copies a checked row tensor and prints what it did (cannot fail). */
static void copy_rows(const mn_ner_init *in, mn_params *P, const mn_params *src, const row_copy *c)
{
    const char *to = row_tensors[c->k].name;
    row_kind kind = row_tensors[c->k].kind;
    const mn_tensor *S = mn_params_value((mn_params *)src, c->src);
    mn_tensor *D = mn_params_get(P, to);
    int64_t rows = D->shape.d[0], C = D->shape.d[D->shape.ndim - 1], copied = 0;
    if (!c->labels) {
        memcpy(mn_f32(D), mn_f32(S), mn_tensor_bytes(D));
        copied = rows;
    }
    for (size_t r = 0; c->labels && r < json_array_size(c->labels); r++) {
        int64_t d = dest_row(in, kind, json_array_get(c->labels, r), rows);
        if (d < 0) continue;
        memcpy(mn_f32(D) + d * C, mn_f32(S) + (int64_t)r * C, (size_t)C * sizeof(float));
        copied++;
    }
    const char *how = kind == ROWS_TAGS ? "tag" : kind == ROWS_WORDS ? "word" : is_ner(src) ? "character" : "code point";
    printf("  %s <- %s: %lld of %lld rows (by %s)\n", to, mn_params_name(src, c->src), (long long)copied, (long long)rows, how);
}

mn_status mn_ner_init_from(mn_params *P, const mn_params *src, const mn_ner_init *in, bool *bad_map)
{
    rows_plan rp;
    memset(&rp, 0, sizeof rp);
    mn_load_report rep = { 0 };
    *bad_map = false;
    mn_status s = plan_rows(P, src, in, &rp, bad_map);
    if (!s && (s = mn_params_copy_partial(P, src, &(mn_load_opts){ .rename = in->map, .skip = rp.skip }, &rep))) {
        *bad_map = s == MN_ERR_INVALID && in->map;      /* a bad rule, or two names renamed to one */
        s = *bad_map ? wrap(s, "--init-map", map_name(in)) : wrap(s, "--init-from", in->path);
    }
    int n[MN_LOAD_KINDS] = { rep.count[MN_LOAD_LOADED] + rp.n, rep.count[MN_LOAD_MISSING] - rp.n, rep.count[MN_LOAD_UNEXPECTED],
                             rep.count[MN_LOAD_MISMATCHED] };
    if (!s && !n[MN_LOAD_LOADED])
        s = mn_set_error(MN_ERR_INVALID, "--init-from %s: no tensor of it fits the tagger (%d missing, %d unexpected); rename them with --init-map",
                         in->path, n[MN_LOAD_MISSING], n[MN_LOAD_UNEXPECTED]);
    if (!s) printf("initialised from %s%s%s:\n", in->path, in->map_path ? ", renamed by " : "", map_name(in));
    for (int j = 0; !s && j < rp.n; j++) copy_rows(in, P, src, &rp.c[j]);
    if (!s) s = mn_ft_record(P, src, in->path, in->map_path, n);
    if (!s)
        printf("  %d tensors loaded, %d missing (kept their random start), %d unexpected (not used)\n", n[MN_LOAD_LOADED], n[MN_LOAD_MISSING],
               n[MN_LOAD_UNEXPECTED]);
    for (int j = 0; j < rp.n; j++) json_decref(rp.c[j].labels);
    mn_load_report_free(&rep);
    return s;
}
