/* tools/config.c: the training configuration: one table of fields drives
 * the defaults, the JSON reader and writer, so a config file, the flags and
 * the copy stored in a checkpoint always have the same keys. mn_cfg_check
 * is the one validation of a config from any source (flags, --config, a
 * checkpoint), for train, sample and eval alike. */
#include "train.h"
#include "mnemo_plugin.h"
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_STR, F_INT, F_I64, F_DBL, F_FLT, F_U64 } ftype;
typedef struct { const char *name; ftype type; size_t off, size; } field;

#define S(n) { #n, F_STR, offsetof(mn_train_cfg, n), sizeof(((mn_train_cfg *)0)->n) }
#define I(n) { #n, F_INT, offsetof(mn_train_cfg, n), 0 }
static const field fields[] = {
    S(model), S(data), S(optim), S(schedule), S(out), S(resume), S(metrics), S(activation),
    I(epochs), I(batch), I(seq), I(threads), I(val_every), I(patience), I(val_batches), I(limit),
    { "steps", F_I64, offsetof(mn_train_cfg, steps), 0 }, { "time_limit", F_DBL, offsetof(mn_train_cfg, time_limit), 0 },
    { "lr", F_FLT, offsetof(mn_train_cfg, lr), 0 }, { "clip", F_FLT, offsetof(mn_train_cfg, clip), 0 },
    { "dropout", F_FLT, offsetof(mn_train_cfg, dropout), 0 }, { "weight_decay", F_FLT, offsetof(mn_train_cfg, weight_decay), 0 },
    { "seed", F_U64, offsetof(mn_train_cfg, seed), 0 },
    I(embed), I(hidden), I(layers), I(heads), I(ff), I(latent),
};

static const char *const kinds[] = { "lstm", "gru", "rnn", "transformer", "vae", "mlp", "tagger" };

bool mn_cfg_is_lm(const mn_train_cfg *c)
{
    return !strcmp(c->model, "lstm") || !strcmp(c->model, "gru") || !strcmp(c->model, "rnn") || !strcmp(c->model, "transformer");
}

mn_status mn_cfg_defaults(mn_train_cfg *c, const char *model)
{
    bool known = false;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) known |= !strcmp(model, kinds[i]);
    if (!known) return mn_set_error(MN_ERR_INVALID, "unknown model \"%s\" (lstm, gru, rnn, transformer, vae, mlp, tagger)", model);
    *c = (mn_train_cfg){ .epochs = 3, .batch = 32, .seq = 64, .val_every = 200, .patience = 5, .val_batches = 16,
                         .lr = 3e-3f, .clip = 1.0f, .seed = 1, .embed = 64, .hidden = 256, .layers = 1, .heads = 4,
                         .ff = 512, .latent = 20, .time_limit = 120 };
    snprintf(c->model, sizeof c->model, "%s", model);
    snprintf(c->optim, sizeof c->optim, "adam");
    snprintf(c->schedule, sizeof c->schedule, "constant");
    snprintf(c->activation, sizeof c->activation, "relu");
    snprintf(c->out, sizeof c->out, "%s.safetensors", model);
    if (!strcmp(model, "transformer")) { c->hidden = 128; c->layers = 2; c->batch = 16; c->lr = 1e-3f; }
    if (!strcmp(model, "mlp") || !strcmp(model, "vae") || !strcmp(model, "tagger")) {
        c->time_limit = 0; c->val_every = 0; c->epochs = 5; c->lr = 1e-3f; c->clip = 0;
    }
    if (!strcmp(model, "vae")) { c->batch = 128; c->hidden = 400; c->epochs = 10; }
    if (!strcmp(model, "mlp")) { c->batch = 64; c->hidden = 256; }
    if (!strcmp(model, "tagger")) { c->seq = 40; c->embed = 100; c->hidden = 128; c->epochs = 3; c->lr = 2e-3f; c->clip = 5; }
    return MN_OK;
}

/* A JSON number into the field's C type, refused when it does not fit (never truncated). */
static mn_status set_number(char *p, const field *f, json_t *v, const char *origin)
{
    json_int_t i = json_is_integer(v) ? json_integer_value(v) : 0;
    double d = json_number_value(v);
    bool fits = f->type == F_INT ? i >= INT_MIN && i <= INT_MAX : f->type == F_U64 ? i >= 0
              : f->type == F_FLT ? isfinite(d) && fabs(d) <= 3.4e38 : f->type == F_DBL ? isfinite(d) : true;
    if (!fits) return mn_set_error(MN_ERR_INVALID, "%s: \"%s\": %.17g is out of range%s", origin, f->name, json_is_integer(v) ? (double)i : d,
                                   f->type == F_INT ? " (at most 2147483647)" : f->type == F_U64 ? " (not negative)" : "");
    switch (f->type) {
    case F_INT: *(int *)p = (int)i; break;
    case F_I64: *(int64_t *)p = i; break;
    case F_U64: *(uint64_t *)p = (uint64_t)i; break;
    case F_DBL: *(double *)p = d; break;
    case F_FLT: *(float *)p = (float)d; break;
    case F_STR: break;
    }
    return MN_OK;
}

static mn_status set_field(mn_train_cfg *c, const field *f, json_t *v, const char *origin)
{
    char *p = (char *)c + f->off;
    bool ok = f->type == F_STR ? json_is_string(v) : f->type == F_DBL || f->type == F_FLT ? json_is_number(v) : json_is_integer(v);
    if (!ok) return mn_set_error(MN_ERR_INVALID, "%s: \"%s\" must be %s", origin, f->name,
                                 f->type == F_STR ? "a string" : f->type == F_DBL || f->type == F_FLT ? "a number" : "an integer");
    if (f->type != F_STR) return set_number(p, f, v, origin);
    if (strlen(json_string_value(v)) >= f->size) return mn_set_error(MN_ERR_INVALID, "%s: \"%s\" is too long", origin, f->name);
    snprintf(p, f->size, "%s", json_string_value(v));
    return MN_OK;
}

/* Applies the keys of a JSON object; rule says who picks the model:
 * the JSON's "model" key (its defaults go under the other keys), the
 * --model flag (the key is ignored: flags win) or a checkpoint (a
 * different "model" is refused: its tensors are that model). */
mn_status mn_cfg_apply_json(mn_train_cfg *c, const char *text, const char *origin, mn_cfg_model_rule rule)
{
    json_error_t err;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!o) return mn_set_error(MN_ERR_FORMAT, "%s: JSON: %s (line %d, column %d)", origin, err.text, err.line, err.column);
    if (!json_is_object(o)) { json_decref(o); return mn_set_error(MN_ERR_FORMAT, "%s: not a JSON object", origin); }
    json_t *m = json_object_get(o, "model");
    mn_status s = MN_OK;
    bool other = m && json_is_string(m) && strcmp(json_string_value(m), c->model);
    if (other && rule == MN_CFG_MODEL_FROM_JSON) s = mn_cfg_defaults(c, json_string_value(m));
    if (other && rule == MN_CFG_MODEL_CHECKPOINT)
        s = mn_set_error(MN_ERR_INVALID, "%s: \"model\" is \"%s\" but the checkpoint holds a %s model", origin, json_string_value(m), c->model);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (s) break;
        if (rule == MN_CFG_MODEL_FLAG && !strcmp(k, "model") && json_is_string(v)) continue;
        const field *f = NULL;
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) if (!strcmp(fields[i].name, k)) f = &fields[i];
        s = f ? set_field(c, f, v, origin) : mn_set_error(MN_ERR_INVALID, "%s: unknown key \"%s\"", origin, k);
    }
    json_decref(o);
    return s;
}

mn_status mn_cfg_load_json(mn_train_cfg *c, const char *text, const char *origin)
{
    return mn_cfg_apply_json(c, text, origin, MN_CFG_MODEL_FROM_JSON);
}

bool mn_cfg_parse_int(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *e;
    errno = 0;
    long long x = strtoll(v, &e, 10);
    bool digits = *v && (*v == '-' || (*v >= '0' && *v <= '9'));
    if (!digits || *e || errno == ERANGE || x < lo || x > hi) {
        fprintf(stderr, "mnemo %s: --%s: bad value \"%s\" (an integer from %lld to %lld)\n", cmd, flag, v, (long long)lo, (long long)hi);
        return false;
    }
    *out = x;
    return true;
}

/* --memory-budget (issue 17): bytes, with an optional K, M or G suffix
 * (powers of 1024; "256M", "1.5G"); 0 is no limit. */
bool mn_cfg_parse_bytes(const char *cmd, const char *flag, const char *v, int64_t *out)
{
    char *e;
    errno = 0;
    double x = strtod(v, &e);
    double unit = *e == 'K' || *e == 'k' ? 1024.0 : *e == 'M' || *e == 'm' ? 1048576.0 : *e == 'G' || *e == 'g' ? 1073741824.0 : 1;
    if (unit > 1) e++;
    if (!(*v >= '0' && *v <= '9') || *e || errno == ERANGE || !(x * unit < 9.2e18)) {
        fprintf(stderr, "mnemo %s: --%s: bad value \"%s\" (bytes, e.g. 268435456, 256M or 1.5G; 0: no limit)\n", cmd, flag, v);
        return false;
    }
    *out = (int64_t)(x * unit);
    return true;
}

bool mn_cfg_parse_u64(const char *cmd, const char *flag, const char *v, uint64_t *out)
{
    char *e;
    errno = 0;
    unsigned long long x = strtoull(v, &e, 10);
    if (!(*v >= '0' && *v <= '9') || *e || errno == ERANGE) {
        fprintf(stderr, "mnemo %s: --%s: bad value \"%s\" (an integer from 0 to %llu)\n", cmd, flag, v, (unsigned long long)UINT64_MAX);
        return false;
    }
    *out = x;
    return true;
}

char *mn_cfg_to_json(const mn_train_cfg *c)
{
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const field *f = &fields[i];
        const char *p = (const char *)c + f->off;
        json_t *v = f->type == F_STR ? json_string(p) : f->type == F_INT ? json_integer(*(const int *)p)
                  : f->type == F_I64 ? json_integer(*(const int64_t *)p) : f->type == F_U64 ? json_integer((json_int_t)*(const uint64_t *)p)
                  : f->type == F_DBL ? json_real(*(const double *)p) : json_real(*(const float *)p);
        json_object_set_new(o, f->name, v);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* An activation for the MLP: an elementwise op (the fusion pass's pointwise
 * hint) with a gradient, of 1 input or of 2 (the second a learnable
 * per-feature vector, broadcast), that builds without attributes: a trial
 * build on a [2, 3] input decides, so backward helpers such as relu_grad
 * (which need two same-shaped inputs) and ops needing attributes are out. */
static bool activation_ok(const mn_op_def *op)
{
    if (!op || !mn_op_differentiable(op) || (mn_op_flags(op) & MN_OPF_RANDOM) || !op->traits.pointwise)
        return false;
    int n = mn_op_arity(op);
    if (n != 1 && n != 2)
        return false;
    mn_params *P = mn_params_new();
    mn_graph *g = P ? mn_graph_new(P) : NULL;
    bool ok = false;
    if (g) {
        mn_node *in[2] = { mn_input(g, "x", MN_F32, MN_SHAPE(2, 3)), mn_input(g, "a", MN_F32, MN_SHAPE(3)) };
        ok = in[0] && in[1] && mn_op(g, mn_op_name(op), in, n, NULL, 0) != NULL;
    }
    mn_graph_free(g);
    mn_params_free(P);
    return ok;
}

static mn_status check_activation(const char *name)
{
    if (activation_ok(mn_op_find(name))) return MN_OK;
    char list[1024] = "";
    for (int i = 0; i < mn_op_count() && strlen(list) + 40 < sizeof list; i++)
        if (activation_ok(mn_op_at(i)))
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", *list ? ", " : "", mn_op_name(mn_op_at(i)));
    const mn_op_def *op = mn_op_find(name);
    return mn_set_error(MN_ERR_INVALID, "--activation: \"%s\" %s; accepted: %s (a plugin's op needs --plugin)", name,
                        !op ? "is not a registered op" : !mn_op_differentiable(op) ? "has no gradient" : "is not an elementwise op of 1 or 2 inputs",
                        list);
}

mn_status mn_cfg_check(const mn_train_cfg *c)
{
#define RANGE(field, flag, lo, hi) \
    if (!((field) >= (lo) && (field) <= (hi))) \
        return mn_set_error(MN_ERR_INVALID, "--%s: %g is out of range (%g to %g)", flag, (double)(field), (double)(lo), (double)(hi))
    bool known = false;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) known |= !strcmp(c->model, kinds[i]);
    if (!known) return mn_set_error(MN_ERR_INVALID, "--model: unknown model \"%s\" (lstm, gru, rnn, transformer, vae, mlp, tagger)", c->model);
    RANGE(c->epochs, "epochs", 1, INT_MAX);
    RANGE(c->batch, "batch", 1, MN_CFG_MAX_BATCH);
    RANGE(c->seq, "seq", 2, MN_CFG_MAX_SEQ);
    RANGE(c->lr, "lr", 1e-12, 1e6);
    RANGE(c->clip, "clip", 0, 3e38);
    RANGE(c->threads, "threads", 0, INT_MAX);
    RANGE(c->steps, "steps", 0, (double)INT64_MAX);
    RANGE(c->time_limit, "time", 0, 1e12);
    RANGE(c->hidden, "hidden", 1, MN_CFG_MAX_WIDTH);
    RANGE(c->embed, "embed", 1, MN_CFG_MAX_WIDTH);
    RANGE(c->ff, "ff", 1, MN_CFG_MAX_WIDTH);
    RANGE(c->latent, "latent", 1, MN_CFG_MAX_WIDTH);
    RANGE(c->layers, "layers", 1, MN_CFG_MAX_LAYERS);
    RANGE(c->val_batches, "val-batches", 1, INT_MAX);
    RANGE(c->patience, "patience", 0, INT_MAX);
    RANGE(c->val_every, "val-every", 0, INT_MAX);
    RANGE(c->limit, "limit", 0, INT_MAX);
    RANGE(c->weight_decay, "weight-decay", 0, 1e6);
    if (!(c->dropout >= 0 && c->dropout < 1)) return mn_set_error(MN_ERR_INVALID, "--dropout: %g is out of range (0 to below 1)", (double)c->dropout);
    if (!strcmp(c->model, "transformer")) {
        RANGE(c->heads, "heads", 1, c->hidden);
        if (c->hidden % c->heads) return mn_set_error(MN_ERR_INVALID, "--heads: %d does not divide --hidden %d", c->heads, c->hidden);
    }
    if (check_activation(c->activation)) return MN_ERR_INVALID;
    if (!mn_optim_kind_find(c->optim)) return mn_set_error(MN_ERR_INVALID, "--optim: unknown optimizer \"%s\" (sgd, adam, adamw, rmsprop, adagrad, lion)", c->optim);
    static const char *const sched[] = { "constant", "cosine", "warmup_cosine", "linear", "step", "exponential", "plateau" };
    bool ok = false;
    for (size_t i = 0; i < sizeof sched / sizeof *sched; i++) ok |= !strcmp(c->schedule, sched[i]);
    if (!ok) return mn_set_error(MN_ERR_INVALID, "--schedule: unknown schedule \"%s\" (constant, cosine, warmup_cosine, linear, step, exponential, plateau)", c->schedule);
    return MN_OK;
#undef RANGE
}
