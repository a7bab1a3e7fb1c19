/* tools/config.c: the training configuration: one table of fields drives
 * the defaults, the JSON reader and writer, so a config file, the flags and
 * the copy stored in a checkpoint always have the same keys. */
#include "train.h"
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
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

static mn_status set_field(mn_train_cfg *c, const field *f, json_t *v, const char *origin)
{
    char *p = (char *)c + f->off;
    bool ok = f->type == F_STR ? json_is_string(v) : f->type == F_DBL || f->type == F_FLT ? json_is_number(v) : json_is_integer(v);
    if (!ok) return mn_set_error(MN_ERR_INVALID, "%s: \"%s\" must be %s", origin, f->name,
                                 f->type == F_STR ? "a string" : f->type == F_DBL || f->type == F_FLT ? "a number" : "an integer");
    switch (f->type) {
    case F_STR:
        if (strlen(json_string_value(v)) >= f->size) return mn_set_error(MN_ERR_INVALID, "%s: \"%s\" is too long", origin, f->name);
        snprintf(p, f->size, "%s", json_string_value(v));
        break;
    case F_INT: *(int *)p = (int)json_integer_value(v); break;
    case F_I64: *(int64_t *)p = json_integer_value(v); break;
    case F_U64: *(uint64_t *)p = (uint64_t)json_integer_value(v); break;
    case F_DBL: *(double *)p = json_number_value(v); break;
    case F_FLT: *(float *)p = (float)json_number_value(v); break;
    }
    return MN_OK;
}

mn_status mn_cfg_load_json(mn_train_cfg *c, const char *text, const char *origin)
{
    json_error_t err;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!o) return mn_set_error(MN_ERR_FORMAT, "%s: JSON: %s (line %d, column %d)", origin, err.text, err.line, err.column);
    if (!json_is_object(o)) { json_decref(o); return mn_set_error(MN_ERR_FORMAT, "%s: not a JSON object", origin); }
    /* the model first: its defaults under the other keys */
    json_t *m = json_object_get(o, "model");
    mn_status s = MN_OK;
    if (m && json_is_string(m) && strcmp(json_string_value(m), c->model)) s = mn_cfg_defaults(c, json_string_value(m));
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (s) break;
        const field *f = NULL;
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) if (!strcmp(fields[i].name, k)) f = &fields[i];
        s = f ? set_field(c, f, v, origin) : mn_set_error(MN_ERR_INVALID, "%s: unknown key \"%s\"", origin, k);
    }
    json_decref(o);
    return s;
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

mn_status mn_cfg_check(const mn_train_cfg *c)
{
#define NEED(cond, what) if (!(cond)) return mn_set_error(MN_ERR_INVALID, "--%s: %s", what, #cond)
    NEED(c->epochs > 0, "epochs"); NEED(c->batch > 0, "batch"); NEED(c->seq > 1 && c->seq <= 4096, "seq");
    NEED(c->lr > 0, "lr"); NEED(c->clip >= 0, "clip"); NEED(c->threads >= 0, "threads"); NEED(c->steps >= 0, "steps");
    NEED(c->time_limit >= 0, "time"); NEED(c->hidden > 0, "hidden"); NEED(c->layers > 0, "layers"); NEED(c->embed > 0, "embed");
    NEED(c->dropout >= 0 && c->dropout < 1, "dropout"); NEED(c->val_batches > 0, "val-batches"); NEED(c->patience >= 0, "patience");
    NEED(c->val_every >= 0, "val-every"); NEED(c->limit >= 0, "limit"); NEED(c->weight_decay >= 0, "weight-decay");
    if (!strcmp(c->model, "transformer")) { NEED(c->heads > 0 && c->hidden % c->heads == 0, "heads"); NEED(c->ff > 0, "ff"); }
    const mn_op_def *act = mn_op_find(c->activation);
    if (!act || mn_op_arity(act) < 1 || mn_op_arity(act) > 2)
        return mn_set_error(MN_ERR_INVALID, "--activation: \"%s\" is not a registered op of 1 or 2 inputs (a plugin's needs --plugin)", c->activation);
    if (!mn_optim_kind_find(c->optim)) return mn_set_error(MN_ERR_INVALID, "--optim: unknown optimizer \"%s\" (sgd, adam, adamw, rmsprop, adagrad, lion)", c->optim);
    static const char *const sched[] = { "constant", "cosine", "warmup_cosine", "linear", "step", "exponential", "plateau" };
    bool ok = false;
    for (size_t i = 0; i < sizeof sched / sizeof *sched; i++) ok |= !strcmp(c->schedule, sched[i]);
    if (!ok) return mn_set_error(MN_ERR_INVALID, "--schedule: unknown schedule \"%s\" (constant, cosine, warmup_cosine, linear, step, exponential, plateau)", c->schedule);
    return MN_OK;
#undef NEED
}
