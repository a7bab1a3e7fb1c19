/* core/params.c: the parameter store: named f32 tensors in creation order,
 * each trainable one with a gradient of the same shape, plus string
 * metadata. Graphs refer to entries by index; entries are never removed,
 * so an index stays valid for the store's life. A strict store (a loaded
 * model) never creates a parameter: every one must come from the file. */
#include "internal.h"
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char *name; mn_tensor *value, *grad; bool frozen; } entry;
typedef struct { char *key, *value; } meta;

struct mn_params {
    entry *e; int n, cap;
    meta *m; int nm;
    uint64_t seed;
    bool strict;             /* mn_params_create refuses: parameters come from a file */
    uint64_t freeze_gen;     /* bumped by every change of a frozen flag (optimizers rebind) */
};

mn_params *mn_params_new(void)
{
    mn_params *P = calloc(1, sizeof *P);
    if (!P) mn__error(MN_ERR_NOMEM, "params: out of memory");
    return P;
}

void mn_params_free(mn_params *P)
{
    if (!P) return;
    for (int i = 0; i < P->n; i++) {
        free(P->e[i].name);
        mn_tensor_free(P->e[i].value);
        mn_tensor_free(P->e[i].grad);
    }
    for (int i = 0; i < P->nm; i++) { free(P->m[i].key); free(P->m[i].value); }
    free(P->e); free(P->m); free(P);
}

void mn_params_set_seed(mn_params *P, uint64_t seed) { if (P) P->seed = seed; }
void mn_params_set_strict(mn_params *P, bool strict) { if (P) P->strict = strict; }
int mn_params_count(const mn_params *P) { return P ? P->n : 0; }

int mn_params_find(const mn_params *P, const char *name)
{
    if (!P || !name) return -1;
    for (int i = 0; i < P->n; i++)
        if (strcmp(P->e[i].name, name) == 0) return i;
    return -1;
}

const char *mn_params_name(const mn_params *P, int i)
{
    return P && i >= 0 && i < P->n ? P->e[i].name : NULL;
}
mn_tensor *mn_params_value(mn_params *P, int i) { return P && i >= 0 && i < P->n ? P->e[i].value : NULL; }
mn_tensor *mn_params_grad(mn_params *P, int i) { return P && i >= 0 && i < P->n ? P->e[i].grad : NULL; }
mn_tensor *mn_params_get(mn_params *P, const char *name) { return mn_params_value(P, mn_params_find(P, name)); }
mn_tensor *mn_params_get_grad(mn_params *P, const char *name) { return mn_params_grad(P, mn_params_find(P, name)); }

void mn_params_zero_grad(mn_params *P)
{
    if (!P) return;
    for (int i = 0; i < P->n; i++)
        if (P->e[i].grad) memset(P->e[i].grad->data, 0, mn_tensor_bytes(P->e[i].grad));
}

int64_t mn_params_numel(const mn_params *P)
{
    int64_t n = 0;
    for (int i = 0; P && i < P->n; i++)
        if (P->e[i].grad) n += mn_tensor_numel(P->e[i].value);
    return n;
}

/* Appends an entry; takes ownership of value and grad. */
static mn_status add_entry(mn_params *P, const char *name, mn_tensor *value, mn_tensor *grad)
{
    if (P->n == P->cap) {
        int cap = P->cap ? 2 * P->cap : 16;
        entry *e = realloc(P->e, (size_t)cap * sizeof *e);
        if (!e) return mn__error(MN_ERR_NOMEM, "params: out of memory");
        P->e = e; P->cap = cap;
    }
    char *nm = strdup(name);
    if (!nm) return mn__error(MN_ERR_NOMEM, "params: out of memory");
    P->e[P->n++] = (entry){ nm, value, grad, false };
    return MN_OK;
}

static mn_status check_new(mn_params *P, const char *name)
{
    if (!P || !name) return mn__error(MN_ERR_MISUSE, "params: NULL store or name");
    if (!*name) return mn__error(MN_ERR_INVALID, "params: empty name");
    if (mn_params_find(P, name) >= 0)
        return mn__error(MN_ERR_EXISTS, "params: \"%s\" already exists", name);
    return MN_OK;
}

/* A strict store holds a loaded model: a parameter it lacks is an error, never a fresh weight. */
static mn_status check_strict(const mn_params *P, const char *name)
{
    if (!P->strict) return MN_OK;
    return mn__error(MN_ERR_NOTFOUND, "params: \"%s\" is not in the loaded store (strict: every parameter must come from the file)", name);
}

mn_status mn_params_create(mn_params *P, const char *name, mn_shape shape, mn_init init)
{
    mn_status s = check_new(P, name);
    if (!s) s = check_strict(P, name);
    if (s) return s;
    mn_tensor *v = mn_tensor_new(MN_F32, shape), *g = v ? mn_tensor_new(MN_F32, shape) : NULL;
    if (!v || !g) { mn_tensor_free(v); return mn_last_status(); }
    if ((s = mn_init_fill(v, init, P->seed, mn__hash_str(name))) ||
        (s = add_entry(P, name, v, g))) {
        mn_tensor_free(v); mn_tensor_free(g);
        if (s == MN_ERR_SHAPE || s == MN_ERR_INVALID)
            mn__error(s, "params \"%s\": %s", name, mn_errmsg());
        return s;
    }
    return MN_OK;
}

mn_status mn_params_create_state(mn_params *P, const char *name, mn_shape shape)
{
    mn_status s = check_new(P, name);
    if (s) return s;
    mn_tensor *v = mn_tensor_new(MN_F32, shape);
    if (!v) return mn_last_status();
    if ((s = add_entry(P, name, v, NULL))) mn_tensor_free(v);
    return s;
}

/* ---- freezing by name pattern ---- */

/* Calls fn on each comma-separated pattern of `patterns` (a copy of at
 * most 255 bytes); stops at the first non-zero answer. */
static mn_status each_pattern(const char *patterns, mn_status (*fn)(const char *pat, void *arg), void *arg)
{
    char buf[256];
    for (const char *p = patterns; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof buf)
            return mn__error(MN_ERR_INVALID, "params: pattern %d bytes long in \"%s\" (1 to 255, comma-separated)", (int)len, patterns);
        memcpy(buf, p, len);
        buf[len] = 0;
        mn_status s = fn(buf, arg);
        if (s) return s;
        p += len + (p[len] == ',');
    }
    return MN_OK;
}

typedef struct { mn_params *P; bool frozen, apply; bool *hit; } freeze_arg;

static mn_status freeze_one(const char *pat, void *arg)
{
    freeze_arg *a = arg;
    int hits = 0;
    for (int i = 0; i < a->P->n; i++) {
        entry *e = &a->P->e[i];
        if (!e->grad || fnmatch(pat, e->name, 0) != 0) continue;
        hits++;
        a->hit[i] = true;
        if (a->apply && e->frozen != a->frozen) {
            e->frozen = a->frozen;
            a->P->freeze_gen++;
        }
    }
    if (!hits) return mn__error(MN_ERR_NOTFOUND, "params: pattern \"%s\" matches no trainable parameter", pat);
    return MN_OK;
}

mn_status mn_params_freeze(mn_params *P, const char *patterns, bool frozen, int *matched)
{
    if (!P || !patterns) return mn__error(MN_ERR_MISUSE, "params_freeze: NULL store or patterns");
    if (!*patterns) return mn__error(MN_ERR_INVALID, "params_freeze: no pattern");
    freeze_arg a = { P, frozen, false, calloc((size_t)P->n + 1, sizeof(bool)) };
    if (!a.hit) return mn__error(MN_ERR_NOMEM, "params: out of memory");
    mn_status s = each_pattern(patterns, freeze_one, &a);   /* every pattern checked before any change */
    a.apply = true;
    if (!s) s = each_pattern(patterns, freeze_one, &a);
    int n = 0;
    for (int i = 0; !s && i < P->n; i++) n += a.hit[i];
    if (matched) *matched = n;
    free(a.hit);
    return s;
}

bool mn_params_is_frozen(const mn_params *P, int i)
{
    return P && i >= 0 && i < P->n && P->e[i].frozen;
}

int64_t mn_params_frozen_numel(const mn_params *P)
{
    int64_t n = 0;
    for (int i = 0; P && i < P->n; i++)
        if (P->e[i].grad && P->e[i].frozen) n += mn_tensor_numel(P->e[i].value);
    return n;
}

uint64_t mn__params_freeze_gen(const mn_params *P) { return P ? P->freeze_gen : 0; }

/* ---- matching a loaded store against a model ---- */

typedef struct { char text[640]; int count; } name_list;

static void list_add(name_list *l, const char *name)
{
    size_t n = strlen(l->text);
    if (l->count++ < 8 && n + strlen(name) + 3 < sizeof l->text) snprintf(l->text + n, sizeof l->text - n, "%s%s", n ? ", " : "", name);
}

static void list_end(name_list *l)
{
    size_t n = strlen(l->text);
    if (l->count > 8) snprintf(l->text + n, sizeof l->text - n, " and %d more", l->count - 8);
}

mn_status mn_params_match(const mn_params *P, const mn_params *model)
{
    if (!P || !model) return mn__error(MN_ERR_MISUSE, "params_match: NULL store");
    name_list missing = { "", 0 }, shape = { "", 0 }, unused = { "", 0 };
    for (int i = 0; i < model->n; i++) {
        if (!model->e[i].grad) continue;
        int j = mn_params_find(P, model->e[i].name);
        if (j < 0 || !P->e[j].grad) list_add(&missing, model->e[i].name);
        else if (!mn_shape_eq(P->e[j].value->shape, model->e[i].value->shape)) list_add(&shape, model->e[i].name);
    }
    for (int j = 0; j < P->n; j++) {
        int i = mn_params_find(model, P->e[j].name);
        if (P->e[j].grad && (i < 0 || !model->e[i].grad)) list_add(&unused, P->e[j].name);
    }
    list_end(&missing); list_end(&shape); list_end(&unused);
    if (missing.count)
        return mn__error(MN_ERR_NOTFOUND, "%d parameter%s of the model %s missing: %s%s%s", missing.count, missing.count > 1 ? "s" : "",
                         missing.count > 1 ? "are" : "is", missing.text, unused.count ? "; unused tensors: " : "", unused.text);
    if (shape.count)
        return mn__error(MN_ERR_SHAPE, "%d parameter%s of another shape than the model's: %s", shape.count, shape.count > 1 ? "s" : "", shape.text);
    if (unused.count)
        return mn__error(MN_ERR_INVALID, "%d tensor%s the model does not use: %s", unused.count, unused.count > 1 ? "s" : "", unused.text);
    return MN_OK;
}

/* Internal for the safetensors loader: adopt a tensor (with grad if trainable). */
mn_status mn__params_adopt(mn_params *P, const char *name, mn_tensor *value, bool trainable)
{
    mn_tensor *g = NULL;
    if (trainable && !(g = mn_tensor_new(MN_F32, value->shape))) return mn_last_status();
    mn_status s = add_entry(P, name, value, g);
    if (s) mn_tensor_free(g);
    return s;
}

mn_status mn_params_set_meta(mn_params *P, const char *key, const char *value)
{
    if (!P || !key || !value) return mn__error(MN_ERR_MISUSE, "params_set_meta: NULL argument");
    for (int i = 0; i < P->nm; i++)
        if (strcmp(P->m[i].key, key) == 0) {
            char *v = strdup(value);
            if (!v) return mn__error(MN_ERR_NOMEM, "params: out of memory");
            free(P->m[i].value); P->m[i].value = v;
            return MN_OK;
        }
    meta *m = realloc(P->m, (size_t)(P->nm + 1) * sizeof *m);
    if (!m) return mn__error(MN_ERR_NOMEM, "params: out of memory");
    P->m = m;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) { free(k); free(v); return mn__error(MN_ERR_NOMEM, "params: out of memory"); }
    P->m[P->nm++] = (meta){ k, v };
    return MN_OK;
}

const char *mn_params_get_meta(const mn_params *P, const char *key)
{
    for (int i = 0; P && key && i < P->nm; i++)
        if (strcmp(P->m[i].key, key) == 0) return P->m[i].value;
    return NULL;
}

int mn_params_meta_count(const mn_params *P) { return P ? P->nm : 0; }

mn_status mn_params_meta_at(const mn_params *P, int i, const char **k, const char **v)
{
    if (!P || !k || !v) return mn__error(MN_ERR_MISUSE, "params_meta_at: NULL argument");
    if (i < 0 || i >= P->nm) return mn__error(MN_ERR_INVALID, "params_meta_at: index %d of %d", i, P->nm);
    *k = P->m[i].key; *v = P->m[i].value;
    return MN_OK;
}

/* ---- initialisers, as torch.nn.init ---- */

float mn_init_gain(mn_nonlin nonlin, float param)
{
    switch (nonlin) {
    case MN_NONLIN_LINEAR: case MN_NONLIN_SIGMOID: return 1.0f;
    case MN_NONLIN_TANH: return 5.0f / 3.0f;
    case MN_NONLIN_RELU: return sqrtf(2.0f);
    case MN_NONLIN_LEAKY_RELU: return sqrtf(2.0f / (1.0f + param * param));
    }
    return 1.0f;
}

mn_status mn_init_fans(mn_shape s, int64_t *fan_in, int64_t *fan_out)
{
    if (s.ndim < 2)
        return mn__error(MN_ERR_SHAPE, "fan in/out need at least 2 dims, got %d", s.ndim);
    int64_t rf = 1;
    bool over = false;
    for (int i = 2; i < s.ndim; i++) over |= __builtin_mul_overflow(rf, s.d[i], &rf);
    over |= __builtin_mul_overflow(s.d[1], rf, fan_in) | __builtin_mul_overflow(s.d[0], rf, fan_out);
    return over ? mn__error(MN_ERR_INVALID, "fan in/out: the shape's products overflow") : MN_OK;
}

mn_status mn_init_fill(mn_tensor *t, mn_init in, uint64_t seed, uint64_t stream)
{
    if (!t || t->dtype != MN_F32) return mn__error(MN_ERR_MISUSE, "init: need a f32 tensor");
    float *x = mn_f32(t);
    int64_t n = mn_tensor_numel(t), fi = 0, fo = 0;
    mn_status s;
    switch (in.kind) {
    case MN_INIT_ZEROS: case MN_INIT_ONES: case MN_INIT_CONSTANT: {
        float v = in.kind == MN_INIT_ZEROS ? 0.0f : in.kind == MN_INIT_ONES ? 1.0f : in.a;
        for (int64_t i = 0; i < n; i++) x[i] = v;
        return MN_OK;
    }
    case MN_INIT_UNIFORM:
        if (!(in.a <= in.b)) return mn__error(MN_ERR_INVALID, "init uniform: a %g > b %g", in.a, in.b);
        mn_rng_fill_uniform(x, n, seed, stream, in.a, in.b);
        return MN_OK;
    case MN_INIT_NORMAL:
        if (!(in.b >= 0)) return mn__error(MN_ERR_INVALID, "init normal: std %g < 0", in.b);
        mn_rng_fill_normal(x, n, seed, stream, in.a, in.b);
        return MN_OK;
    case MN_INIT_XAVIER_UNIFORM: case MN_INIT_XAVIER_NORMAL: {
        if ((s = mn_init_fans(t->shape, &fi, &fo))) return s;
        double gain = in.gain != 0 ? in.gain : 1.0;
        double std = gain * sqrt(2.0 / (double)(fi + fo));
        if (in.kind == MN_INIT_XAVIER_NORMAL) mn_rng_fill_normal(x, n, seed, stream, 0, (float)std);
        else mn_rng_fill_uniform(x, n, seed, stream, (float)(-sqrt(3.0) * std), (float)(sqrt(3.0) * std));
        return MN_OK;
    }
    case MN_INIT_KAIMING_UNIFORM: case MN_INIT_KAIMING_NORMAL: {
        if ((s = mn_init_fans(t->shape, &fi, &fo))) return s;
        int64_t fan = in.mode == MN_FAN_OUT ? fo : fi;
        if (fan == 0) return mn__error(MN_ERR_SHAPE, "kaiming init: zero fan");
        double std = mn_init_gain(in.nonlin, in.a) / sqrt((double)fan);
        if (in.kind == MN_INIT_KAIMING_NORMAL) mn_rng_fill_normal(x, n, seed, stream, 0, (float)std);
        else mn_rng_fill_uniform(x, n, seed, stream, (float)(-sqrt(3.0) * std), (float)(sqrt(3.0) * std));
        return MN_OK;
    }
    case MN_INIT_NONE:
        return mn__error(MN_ERR_INVALID, "init: none (mn_init_like: unknown module, a bias it has not, or fan <= 0)");
    }
    return mn__error(MN_ERR_INVALID, "init: unknown kind %d", (int)in.kind);
}

/* U(-1/sqrt(fan), 1/sqrt(fan)), the bound of PyTorch's reset_parameters. */
static mn_init uniform_fan(int64_t fan)
{
    if (fan <= 0) return (mn_init){ .kind = MN_INIT_NONE };
    float k = 1.0f / sqrtf((float)fan);
    return (mn_init){ .kind = MN_INIT_UNIFORM, .a = -k, .b = k };
}

mn_init mn_init_like(mn_like module, bool bias, int64_t fan)
{
    switch (module) {
    case MN_LIKE_LINEAR:
        if (bias) return uniform_fan(fan);
        return (mn_init){ .kind = MN_INIT_KAIMING_UNIFORM, .a = sqrtf(5.0f) };
    case MN_LIKE_EMBEDDING:
        if (bias) break;
        return (mn_init){ .kind = MN_INIT_NORMAL, .a = 0.0f, .b = 1.0f };
    case MN_LIKE_RNN: return uniform_fan(fan);
    case MN_LIKE_LAYER_NORM: return (mn_init){ .kind = bias ? MN_INIT_ZEROS : MN_INIT_ONES };
    }
    return (mn_init){ .kind = MN_INIT_NONE };
}
