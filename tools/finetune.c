/* tools/finetune.c: what `mnemo train` does for a run that starts from
 * another run's weights: reads --init-from (validated whole before use) and
 * --init-map, copies the tensors the model shares with it and prints the
 * report, freezes --freeze, adds the --lr-groups to the optimizer, and
 * records the origin in the checkpoint ("mnemo.init_from"). Every check
 * runs before the first file is written: a bad flag writes nothing. */
#include "finetune.h"
#include "cmds.h"
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_LR_GROUPS 15
#define MAP_MAX (1 << 20)

typedef struct { char pat[256]; float lr; } lr_group;

static bool set_str(char *dst, size_t cap, const char *flag, const char *v)
{
    if (!*v) { fprintf(stderr, "mnemo train: --%s: empty value\n", flag); return false; }
    if (strlen(v) >= cap) { fprintf(stderr, "mnemo train: --%s: too long (at most %zu bytes)\n", flag, cap - 1); return false; }
    snprintf(dst, cap, "%s", v);
    return true;
}

bool mn_ft_flag(mn_train_cfg *c, int opt, const char *v)
{
    switch (opt) {
    case MN_FT_OPT_INIT_FROM: return set_str(c->init_from, sizeof c->init_from, "init-from", v);
    case MN_FT_OPT_INIT_MAP: return set_str(c->init_map, sizeof c->init_map, "init-map", v);
    case MN_FT_OPT_FREEZE: return set_str(c->freeze, sizeof c->freeze, "freeze", v);
    case MN_FT_OPT_LR_GROUPS: return set_str(c->lr_groups, sizeof c->lr_groups, "lr-groups", v);
    }
    return false;
}

/* The k-th comma-separated item of s (1-based in messages); false past the end. */
static bool item(const char *s, int k, char *out, size_t cap, size_t *len)
{
    const char *p = s;
    for (int i = 0; i < k; i++) {
        p = strchr(p, ',');
        if (!p) return false;
        p++;
    }
    *len = strcspn(p, ",");
    snprintf(out, cap, "%.*s", (int)(*len < cap ? *len : cap - 1), p);
    return true;
}

static mn_status check_patterns(const char *s)
{
    char buf[256];
    size_t len;
    for (int k = 0; *s && item(s, k, buf, sizeof buf, &len); k++)
        if (len == 0 || len >= sizeof buf)
            return mn_set_error(MN_ERR_INVALID, "--freeze: pattern %d of \"%s\" is empty or longer than 255 bytes", k + 1, s);
    return MN_OK;
}

static mn_status parse_groups(const char *s, lr_group *g, int *n)
{
    char buf[300];
    size_t len;
    *n = 0;
    for (int k = 0; *s && item(s, k, buf, sizeof buf, &len); k++) {
        char *eq = strrchr(buf, '='), *e = NULL;
        double lr = eq ? strtod(eq + 1, &e) : 0;
        if (!eq || eq == buf || len >= 256 || !eq[1] || *e || !isfinite(lr) || !(lr > 0) || lr > 1e6)
            return mn_set_error(MN_ERR_INVALID, "--lr-groups: item %d \"%s\" is not PATTERN=LR (a glob and a learning rate > 0)", k + 1, buf);
        if (*n == MAX_LR_GROUPS) return mn_set_error(MN_ERR_INVALID, "--lr-groups: more than %d groups", MAX_LR_GROUPS);
        snprintf(g[*n].pat, sizeof g[*n].pat, "%.*s", (int)(eq - buf), buf);
        g[(*n)++].lr = (float)lr;
    }
    return MN_OK;
}

mn_status mn_ft_check(const mn_train_cfg *c)
{
    lr_group g[MAX_LR_GROUPS];
    int n;
    mn_status s = check_patterns(c->freeze);
    if (!s) s = parse_groups(c->lr_groups, g, &n);
    if (!s && c->init_map[0] && !c->init_from[0]) s = mn_set_error(MN_ERR_INVALID, "--init-map needs --init-from");
    return s;
}

int mn_ft_open(const mn_train_cfg *c, bool resuming, mn_params **src)
{
    *src = NULL;
    if (!c->init_from[0] || resuming) return MN_EXIT_OK;
    struct stat st;
    if (stat(c->init_from, &st) == 0 && !S_ISREG(st.st_mode)) {             /* a pipe would block the load */
        fprintf(stderr, "mnemo train: --init-from %s: not a regular file\n", c->init_from);
        return MN_EXIT_RUNTIME;
    }
    mn_params *P = mn_params_new();
    if (!P || mn_params_load(P, c->init_from)) {
        fprintf(stderr, "mnemo train: --init-from %s: %s\n", c->init_from, mn_errmsg());
        mn_params_free(P);
        return MN_EXIT_RUNTIME;
    }
    *src = P;
    return MN_EXIT_OK;
}

static bool same_data(const char *a, const char *b)
{
    mn_train_cfg x, y;
    snprintf(x.model, sizeof x.model, "%s", a);
    snprintf(y.model, sizeof y.model, "%s", b);
    return (mn_cfg_is_lm(&x) && mn_cfg_is_lm(&y)) || (!strcmp(a, "tagger") && !strcmp(b, "tagger"));
}

const char *mn_ft_vocab(const mn_train_cfg *c, const mn_params *src, const mn_params *resumed)
{
    if (resumed) return c->init_from[0] ? mn_params_get_meta(resumed, "mnemo.vocab") : NULL;
    const char *m = src ? mn_params_get_meta(src, "mnemo.model") : NULL;
    return m && same_data(m, c->model) ? mn_params_get_meta(src, "mnemo.vocab") : NULL;
}

/* The rules of --init-map: a regular file of at most 1 MB, no NUL byte. */
char *mn_ft_read_map(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAP_MAX) {
        mn_set_error(MN_ERR_IO, "cannot read it (not a regular file of at most 1 MB)");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    char *s = f ? malloc((size_t)st.st_size + 1) : NULL;
    size_t n = s ? fread(s, 1, (size_t)st.st_size, f) : 0;
    if (f) fclose(f);
    if (!s || n != (size_t)st.st_size || memchr(s, 0, n)) {
        free(s);
        mn_set_error(MN_ERR_IO, "cannot read it, or it holds a NUL byte");
        return NULL;
    }
    s[n] = 0;
    return s;
}

static void print_names(const char *what, const mn_load_report *r, mn_load_kind k)
{
    printf("  %s %d", what, r->count[k]);
    for (int i = 0; i < r->count[k] && i < 6; i++) printf("%s%s", i ? ", " : ": ", r->names[k][i]);
    if (r->count[k] > 6) printf(" and %d more", r->count[k] - 6);
    printf("\n");
}

mn_status mn_ft_record(mn_params *P, const mn_params *src, const char *path, const char *map, const int count[MN_LOAD_KINDS])
{
    const char *m = mn_params_get_meta(src, "mnemo.model"), *st = mn_params_get_meta(src, "mnemo.train_state");
    json_t *state = st ? json_loads(st, 0, NULL) : NULL, *step = json_object_get(state, "step");
    json_t *o = json_pack("{s:s, s:s?, s:s?, s:i, s:i, s:i, s:i}", "path", path, "model", m, "map", map, "loaded", count[MN_LOAD_LOADED],
                          "missing", count[MN_LOAD_MISSING], "unexpected", count[MN_LOAD_UNEXPECTED], "mismatched", count[MN_LOAD_MISMATCHED]);
    if (o && json_is_integer(step)) json_object_set(o, "step", step);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    mn_status s = text ? mn_params_set_meta(P, "mnemo.init_from", text) : mn_set_error(MN_ERR_NOMEM, "out of memory");
    free(text);
    json_decref(o);
    json_decref(state);
    return s;
}

/* Copies from src; prints the report; exit code. */
static int load_from(mn_params *P, const mn_params *src, const mn_train_cfg *c)
{
    char *map = c->init_map[0] ? mn_ft_read_map(c->init_map) : NULL;
    if (c->init_map[0] && !map) { fprintf(stderr, "mnemo train: --init-map %s: %s\n", c->init_map, mn_errmsg()); return MN_EXIT_USAGE; }
    mn_load_report r;
    mn_status s = mn_params_copy_partial(P, src, &(mn_load_opts){ .rename = map }, &r);
    free(map);
    int rc = MN_EXIT_OK;
    if (s == MN_ERR_INVALID && c->init_map[0]) { fprintf(stderr, "mnemo train: --init-map %s: %s\n", c->init_map, mn_errmsg()); rc = MN_EXIT_USAGE; }
    else if (s == MN_ERR_SHAPE)
        fprintf(stderr, "mnemo train: --init-from %s: %s; drop them with an --init-map rule \"NAME -> -\"\n", c->init_from, mn_errmsg());
    else if (s) fprintf(stderr, "mnemo train: --init-from %s: %s\n", c->init_from, mn_errmsg());
    else if (!r.count[MN_LOAD_LOADED])
        fprintf(stderr, "mnemo train: --init-from %s: no tensor of it fits the %s model (%d missing, %d unexpected); rename them with --init-map\n",
                c->init_from, c->model, r.count[MN_LOAD_MISSING], r.count[MN_LOAD_UNEXPECTED]);
    if (s || !r.count[MN_LOAD_LOADED]) rc = rc ? rc : MN_EXIT_RUNTIME;
    if (!rc) {
        printf("initialised from %s:\n", c->init_from);
        print_names("loaded", &r, MN_LOAD_LOADED);
        print_names("missing (initialised anew)", &r, MN_LOAD_MISSING);
        print_names("unexpected (not used)", &r, MN_LOAD_UNEXPECTED);
        if (mn_ft_record(P, src, c->init_from, c->init_map[0] ? c->init_map : NULL, r.count)) {
            fprintf(stderr, "mnemo train: %s\n", mn_errmsg());
            rc = MN_EXIT_RUNTIME;
        }
    }
    mn_load_report_free(&r);
    return rc;
}

/* The trainable parameters' names, for messages. */
static void param_names(mn_params *P, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < mn_params_count(P) && k + 40 < cap; i++)
        if (mn_params_grad(P, i) && strncmp(mn_params_name(P, i), "optim.", 6))
            k += (size_t)snprintf(buf + k, cap - k, "%s%s", k ? ", " : "", mn_params_name(P, i));
}

int mn_ft_freeze(mn_params *P, const char *patterns, const char *cmd, const char *model, int *n)
{
    if (!mn_params_freeze(P, patterns, true, n)) return MN_EXIT_OK;
    char names[600];
    param_names(P, names, sizeof names);
    const char *m = mn_errmsg();
    m += strncmp(m, "params: ", 8) ? 0 : 8;
    fprintf(stderr, "mnemo %s: --freeze: %s in the %s model (its parameters: %s)\n", cmd, m, model, names);
    return MN_EXIT_USAGE;
}

int mn_ft_prepare(mn_params *P, const mn_params *src, const mn_train_cfg *c)
{
    int rc = src ? load_from(P, src, c) : MN_EXIT_OK;
    if (rc || !c->freeze[0]) return rc;
    int n = 0;
    if ((rc = mn_ft_freeze(P, c->freeze, "train", c->model, &n))) return rc;
    printf("frozen (%s): %d tensor%s, %lld of %lld parameters\n", c->freeze, n, n > 1 ? "s" : "", (long long)mn_params_frozen_numel(P),
           (long long)mn_params_numel(P));
    return MN_EXIT_OK;
}

int mn_ft_groups(mn_optim *o, mn_params *P, const mn_train_cfg *c)
{
    lr_group g[MAX_LR_GROUPS];
    int n = 0;
    if (parse_groups(c->lr_groups, g, &n)) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    for (int k = 0; k < n; k++) {
        int hits = 0;
        for (int i = 0; i < mn_params_count(P); i++)
            hits += mn_params_grad(P, i) && strncmp(mn_params_name(P, i), "optim.", 6) && !fnmatch(g[k].pat, mn_params_name(P, i), 0);
        char names[600];
        param_names(P, names, sizeof names);
        if (!hits) {
            fprintf(stderr, "mnemo train: --lr-groups: pattern \"%s\" matches no trainable parameter of the %s model (its parameters: %s)\n",
                    g[k].pat, c->model, names);
            return MN_EXIT_USAGE;
        }
        if (mn_optim_add_group_lr(o, g[k].pat, g[k].lr) < 0) { fprintf(stderr, "mnemo train: --lr-groups: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
        printf("learning rate %g for %s (%d tensor%s; the first matching group wins)\n", (double)g[k].lr, g[k].pat, hits, hits > 1 ? "s" : "");
    }
    return MN_EXIT_OK;
}

void mn_ft_describe(const mn_params *P, FILE *f)
{
    json_t *o = json_loads(mn_params_get_meta(P, "mnemo.init_from") ? mn_params_get_meta(P, "mnemo.init_from") : "", 0, NULL);
    json_t *cfg = json_loads(mn_params_get_meta(P, "mnemo.config") ? mn_params_get_meta(P, "mnemo.config") : "", 0, NULL);
    if (json_is_object(o)) {
        const char *path = json_string_value(json_object_get(o, "path")), *model = json_string_value(json_object_get(o, "model"));
        json_t *step = json_object_get(o, "step");
        fprintf(f, "started from %s", path ? path : "?");
        if (model) fprintf(f, " (a %s model", model);
        if (model && json_is_integer(step)) fprintf(f, " at step %lld", (long long)json_integer_value(step));
        if (model) fprintf(f, ")");
        fprintf(f, ": %lld tensors loaded, %lld missing, %lld unexpected", (long long)json_integer_value(json_object_get(o, "loaded")),
                (long long)json_integer_value(json_object_get(o, "missing")), (long long)json_integer_value(json_object_get(o, "unexpected")));
        const char *map = json_string_value(json_object_get(o, "map"));
        if (map) fprintf(f, "; renamed by %s", map);
        fprintf(f, "\n");
    }
    const char *fr = json_string_value(json_object_get(cfg, "freeze")), *lg = json_string_value(json_object_get(cfg, "lr_groups"));
    if (fr && *fr) fprintf(f, "frozen: %s\n", fr);
    if (lg && *lg) fprintf(f, "learning-rate groups: %s\n", lg);
    json_decref(o);
    json_decref(cfg);
}
