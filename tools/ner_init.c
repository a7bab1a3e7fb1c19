/* tools/ner_init.c: `mnemo train --model ner --init-from CKPT [--init-map
 * FILE]`: copies the tensors a checkpoint shares with the tagger, by name
 * or renamed by the map's rules. Tensors whose rows stand for something
 * are copied row by row, matched by what they stand for: words by their
 * text, characters by byte (from a character language model: by code
 * point), tags only from a ner checkpoint of the same tags. Rows without
 * a counterpart keep their random start. */
#include "ner_train.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ROWS_WORDS, ROWS_CHARS, ROWS_TAGS } row_kind;

static const struct { const char *name; row_kind kind; } row_tensors[] = {
    { "ner.words.weight", ROWS_WORDS }, { "ner.chars.weight", ROWS_CHARS }, { "ner.out.weight", ROWS_TAGS },
    { "ner.out.bias", ROWS_TAGS }, { "ner.crf.transitions", ROWS_TAGS } };

static int row_tensor(const char *name)
{
    for (int k = 0; k < (int)(sizeof row_tensors / sizeof row_tensors[0]); k++)
        if (!strcmp(row_tensors[k].name, name)) return k;
    return -1;
}

static bool is_ner(const mn_params *src)
{
    const char *m = mn_params_get_meta(src, "mnemo.model");
    return m && !strcmp(m, "ner");
}

/* The labels of the source's rows: a JSON array from its metadata. */
static json_t *labels(const mn_params *src, const char *key)
{
    const char *text = mn_params_get_meta(src, key);
    json_t *a = text ? json_loads(text, 0, NULL) : NULL;
    if (json_is_array(a)) return a;
    json_decref(a);
    return NULL;
}

/* Word rows: the source's words (a ner checkpoint's, or a Brown tagger's vocabulary), matched by text. */
static mn_status copy_words(const mn_ner_init *in, const mn_params *src, const mn_tensor *S, mn_tensor *D, int64_t *copied)
{
    json_t *a = labels(src, is_ner(src) ? "mnemo.ner.words" : "mnemo.vocab");
    int64_t R = S->shape.d[0], C = S->shape.d[1];
    mn_status s = a && (int64_t)json_array_size(a) == R ? MN_OK
                : mn_set_error(MN_ERR_INVALID, "--init-from %s: its rows are not words (no list of %lld words in its metadata)", in->path, (long long)R);
    for (int64_t k = 0; !s && k < R; k++) {
        const char *w = json_string_value(json_array_get(a, (size_t)k));
        if (!w) {
            s = mn_set_error(MN_ERR_INVALID, "--init-from %s: its rows are not words (entry %lld of its list is not a string)", in->path,
                             (long long)k);
            break;
        }
        int32_t id = mn_strtab_find(in->words, w);
        if (id < 0) continue;
        memcpy(mn_f32(D) + (int64_t)id * C, mn_f32(S) + k * C, (size_t)C * sizeof(float));
        (*copied)++;
    }
    json_decref(a);
    return s;
}

/* Character rows: another tagger's (the same ids), or a character language
 * model's (its mnemo.vocab: code points; those below 128 are bytes). */
static mn_status copy_chars(const mn_ner_init *in, const mn_params *src, const mn_tensor *S, mn_tensor *D, int64_t *copied)
{
    int64_t R = S->shape.d[0], C = S->shape.d[1];
    if (is_ner(src)) {
        if (R != D->shape.d[0]) return mn_set_error(MN_ERR_SHAPE, "--init-from %s: %lld character rows, the tagger has %lld", in->path,
                                                    (long long)R, (long long)D->shape.d[0]);
        memcpy(mn_f32(D), mn_f32(S), (size_t)(R * C) * sizeof(float));
        *copied = R;
        return MN_OK;
    }
    json_t *a = labels(src, "mnemo.vocab");
    mn_status s = a && (int64_t)json_array_size(a) == R ? MN_OK
                : mn_set_error(MN_ERR_INVALID, "--init-from %s: its rows are not characters (no list of %lld code points in its metadata)",
                               in->path, (long long)R);
    for (int64_t k = 0; !s && k < R; k++) {
        json_t *v = json_array_get(a, (size_t)k);
        if (!json_is_integer(v)) {
            s = mn_set_error(MN_ERR_INVALID, "--init-from %s: its rows are not characters (mnemo.vocab entry %lld is not a code point)",
                             in->path, (long long)k);
            break;
        }
        json_int_t cp = json_integer_value(v);
        if (cp <= 0 || cp >= 128) continue;
        memcpy(mn_f32(D) + (cp + 3) * C, mn_f32(S) + k * C, (size_t)C * sizeof(float));
        (*copied)++;
    }
    json_decref(a);
    return s;
}

/* Tag rows: only from a ner checkpoint of the same tags, whole. */
static mn_status copy_tags(const mn_ner_init *in, const mn_params *src, const char *from, const mn_tensor *S, mn_tensor *D, int64_t *copied)
{
    const char *st = mn_params_get_meta(src, "mnemo.ner.tags");
    if (!is_ner(src) || !st || strcmp(st, in->tags_json))
        return mn_set_error(MN_ERR_INVALID, "--init-from %s: \"%s\" holds rows of tags, and it is not a ner checkpoint of this run's tags %s; "
                            "drop it with an --init-map rule \"%s -> -\"", in->path, from, in->tags_json, from);
    if (!mn_shape_eq(S->shape, D->shape)) return mn_set_error(MN_ERR_SHAPE, "--init-from %s: \"%s\" has another shape than the tagger's", in->path, from);
    memcpy(mn_f32(D), mn_f32(S), mn_tensor_bytes(D));
    *copied = S->shape.d[0];
    return MN_OK;
}

/* MN_ERR_* s with "PREFIX: " before the current message (copied first: the message buffer is reused). */
static mn_status wrap(mn_status s, const char *prefix, const char *path)
{
    char msg[700];
    snprintf(msg, sizeof msg, "%s", mn_errmsg());
    return mn_set_error(s, "%s %s: %s", prefix, path, msg);
}

/* Copies source tensor i into the row tensor `to`; prints what it did. */
static mn_status copy_rows(const mn_ner_init *in, mn_params *P, const mn_params *src, int i, const char *to)
{
    const char *from = mn_params_name(src, i);
    mn_tensor *S = mn_params_value((mn_params *)src, i), *D = mn_params_get(P, to);
    row_kind kind = row_tensors[row_tensor(to)].kind;
    char a[96], b[96];
    int64_t copied = 0;
    if (kind == ROWS_TAGS) {
        mn_status s = copy_tags(in, src, from, S, D, &copied);
        if (!s) printf("  %s <- %s: %lld of %lld rows (by tag)\n", to, from, (long long)copied, (long long)D->shape.d[0]);
        return s;
    }
    if (S->dtype != MN_F32 || S->shape.ndim != D->shape.ndim || S->shape.d[S->shape.ndim - 1] != D->shape.d[D->shape.ndim - 1])
        return mn_set_error(MN_ERR_SHAPE, "--init-from %s: \"%s\" %s does not fit \"%s\" %s (another number of columns: --embed, --char-dim, --hidden)",
                            in->path, from, mn_shape_str(S->shape, a, sizeof a), to, mn_shape_str(D->shape, b, sizeof b));
    mn_status s = kind == ROWS_WORDS ? copy_words(in, src, S, D, &copied) : copy_chars(in, src, S, D, &copied);
    if (!s) printf("  %s <- %s: %lld of %lld rows (by %s)\n", to, from, (long long)copied, (long long)D->shape.d[0],
                   kind == ROWS_WORDS ? "word" : is_ner(src) ? "character" : "code point");
    return s;
}

/* Appends "NAME -> -" to the rules (the row tensors are copied here, not by the partial load). */
static mn_status drop_rule(char **rules, size_t *len, const char *name)
{
    size_t add = strlen(name) + 7;
    char *r = realloc(*rules, *len + add + 1);
    if (!r) return mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    *len += (size_t)snprintf(r + *len, add + 1, "%s -> -\n", name);
    *rules = r;
    return MN_OK;
}

/* "mnemo.init_from": where the run started (shown by `mnemo inspect`). */
static mn_status record(mn_params *P, const mn_params *src, const mn_ner_init *in, const int n[3])
{
    json_t *o = json_pack("{s:s, s:s?, s:s?, s:i, s:i, s:i}", "path", in->path, "model", mn_params_get_meta(src, "mnemo.model"), "map",
                          in->map_path, "loaded", n[0], "missing", n[1], "unexpected", n[2]);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    mn_status s = text ? mn_params_set_meta(P, "mnemo.init_from", text) : mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    free(text);
    json_decref(o);
    return s;
}

mn_status mn_ner_init_from(mn_params *P, const mn_params *src, const mn_ner_init *in)
{
    char to[512];
    char *rules = NULL;
    size_t len = 0;
    int rows = 0, done[sizeof row_tensors / sizeof row_tensors[0]] = { 0 };
    mn_status s = MN_OK;
    printf("initialised from %s%s%s:\n", in->path, in->map_path ? ", renamed by " : "", in->map_path ? in->map_path : "");
    for (int i = 0; !s && i < mn_params_count(src); i++) {
        if (!mn_params_grad((mn_params *)src, i)) continue;
        s = mn_params_rename(in->map, mn_params_name(src, i), to, sizeof to);
        if (s) s = wrap(s, "--init-map", in->map_path ? in->map_path : "");
        int k = s ? -1 : row_tensor(to);
        if (k < 0 || mn_params_find(P, to) < 0) continue;
        if (done[k]++) s = mn_set_error(MN_ERR_INVALID, "--init-map %s: two tensors of %s become \"%s\"", in->map_path ? in->map_path : "", in->path, to);
        if (!s) s = copy_rows(in, P, src, i, to);
        if (!s) s = drop_rule(&rules, &len, mn_params_name(src, i));
        rows += !s;
    }
    size_t mlen = in->map ? strlen(in->map) : 0;
    char *all = s ? NULL : malloc(len + mlen + 1);
    if (!s && !all) s = mn_set_error(MN_ERR_NOMEM, "ner: out of memory");
    if (!s) snprintf(all, len + mlen + 1, "%s%s", rules ? rules : "", in->map ? in->map : "");
    mn_load_report rep = { 0 };
    if (!s && (s = mn_params_copy_partial(P, src, &(mn_load_opts){ .rename = all }, &rep)))
        s = s == MN_ERR_SHAPE ? wrap(s, "--init-from", in->path) : wrap(s, "--init-map", in->map_path ? in->map_path : "");
    int loaded = rep.count[MN_LOAD_LOADED] + rows;
    if (!s && !loaded)
        s = mn_set_error(MN_ERR_INVALID, "--init-from %s: no tensor of it fits the tagger (%d missing, %d unexpected); rename them with --init-map",
                         in->path, rep.count[MN_LOAD_MISSING], rep.count[MN_LOAD_UNEXPECTED]);
    if (!s) s = record(P, src, in, (int[]){ loaded, rep.count[MN_LOAD_MISSING] - rows, rep.count[MN_LOAD_UNEXPECTED] - rows });
    if (!s)
        printf("  %d tensors loaded, %d missing (kept their random start), %d unexpected (not used)\n", loaded, rep.count[MN_LOAD_MISSING] - rows,
               rep.count[MN_LOAD_UNEXPECTED] - rows);
    mn_load_report_free(&rep);
    free(rules);
    free(all);
    return s;
}
