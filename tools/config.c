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
/* One row per config key: its C field, the range mn_cfg_check enforces
 * (lo == hi == 0: no range from the table), and its --help line (the flag
 * is the key with '-' for '_', except where `flag` says). */
typedef struct {
    const char *name;
    ftype type;
    size_t off, size;
    double lo, hi;
    const char *meta, *help, *flag;
} field;

#define OFF(n) offsetof(mn_train_cfg, n)
#define S(n) { #n, F_STR, OFF(n), sizeof(((mn_train_cfg *)0)->n), 0, 0, NULL, NULL, NULL }
#define I(n) { #n, F_INT, OFF(n), 0, 0, 0, NULL, NULL, NULL }
/* rows with help: STR(key, METAVAR, help), NUM(key, type, lo, hi, METAVAR, help) */
#define STR(n, meta, help) { #n, F_STR, OFF(n), sizeof(((mn_train_cfg *)0)->n), 0, 0, meta, help, NULL }
#define NUM(n, t, lo, hi, meta, help) { #n, t, OFF(n), 0, lo, hi, meta, help, NULL }
static const field fields[] = {
    STR(model, "KIND", "the model: lstm, gru, rnn, transformer (text), mlp, vae (Fashion-MNIST), tagger (Brown)"),
    STR(data, "PATH", "a text file (text models; default the KJV) or a folder (IDX files: mlp, vae; Brown files: tagger)"),
    STR(optim, "NAME", "optimizer: sgd (momentum 0.9), adam, adamw, rmsprop, adagrad, lion"),
    STR(schedule, "NAME", "learning-rate schedule over the run: constant, cosine, warmup_cosine, linear, step, exponential, plateau"),
    STR(out, "CKPT", "the best checkpoint (CKPT.last: the latest; CKPT.metrics.jsonl, CKPT.loss.png)"),
    STR(resume, "CKPT", "continue a run from its checkpoint (flags given beside it override its config)"),
    STR(metrics, "FILE", "metrics as JSON lines (default CKPT.metrics.jsonl)"),
    STR(activation, "OP", "the mlp's hidden activation: an elementwise op with a gradient (list: see below)"),
    NUM(epochs, F_INT, 1, INT_MAX, "N", "passes over the training items"),
    NUM(batch, F_INT, 1, MN_CFG_MAX_BATCH, "N", "items per step (text: windows of --seq characters)"),
    NUM(seq, F_INT, 2, MN_CFG_MAX_SEQ, "N", "characters per window (text); words per sentence, longer ones cut (tagger)"),
    NUM(threads, F_INT, 0, INT_MAX, "N", "threads (0: OpenMP's default); capped at the CPUs unless --oversubscribe"),
    NUM(val_every, F_INT, 0, INT_MAX, "STEPS", "validate every STEPS steps (0: at the end of each epoch)"),
    NUM(patience, F_INT, 0, INT_MAX, "N", "stop at the N-th validation in a row without a new best (0: never)"),
    NUM(val_batches, F_INT, 1, INT_MAX, "N", "batches of the validation split per validation (all: eval)"),
    NUM(limit, F_INT, 0, INT_MAX, "N", "keep the first N training characters, images or sentences (0: all)"),
    NUM(steps, F_I64, 0, 9.2e18, "N", "stop after N optimizer steps (0: no limit besides --epochs and --time)"),
    { "time_limit", F_DBL, OFF(time_limit), 0, 0, 1e12, "SECONDS", "stop after this long (0: no limit)", "time" },
    NUM(memory_budget, F_I64, 0, 9.2e18, "BYTES", "recompute forward values so the arena fits (256M, 1.5G; same bits; 0: no limit)"),
    NUM(lr, F_FLT, 1e-12f, 1e6, "X", "learning rate"),
    NUM(clip, F_FLT, 0, 3e38, "X", "clip the gradients' global norm to X (0: no clipping)"),
    NUM(dropout, F_FLT, 0, 0, "P", "dropout on hidden outputs when training, 0 <= P < 1"),
    NUM(weight_decay, F_FLT, 0, 1e6, "X", "weight decay (adamw: decoupled; default 0.01 for adamw)"),
    NUM(seed, F_U64, 0, 0, "N", "seed of initialisation, shuffling and dropout"),
    NUM(embed, F_INT, 1, MN_CFG_MAX_WIDTH, "N", "embedding width (text RNNs, tagger)"),
    NUM(hidden, F_INT, 1, MN_CFG_MAX_WIDTH, "N", "hidden width (d_model of the transformer)"),
    NUM(layers, F_INT, 1, MN_CFG_MAX_LAYERS, "N", "layers (RNN stack, transformer blocks, mlp hidden layers)"),
    NUM(heads, F_INT, 1, MN_CFG_MAX_WIDTH, "N", "attention heads (transformer; must divide --hidden)"),
    NUM(ff, F_INT, 1, MN_CFG_MAX_WIDTH, "N", "feed-forward width (transformer)"),
    NUM(latent, F_INT, 1, MN_CFG_MAX_WIDTH, "N", "latent size (vae)"),
    STR(init_from, "CKPT", "start from another checkpoint's weights (same names, or renamed by --init-map; docs/finetuning.md)"),
    STR(init_map, "FILE", "rename rules \"FROM -> TO\" (globs) applied to --init-from's names"),
    STR(freeze, "PATTERNS", "keep the parameters matching these comma-separated globs fixed (no gradient)"),
    STR(lr_groups, "GROUPS", "'PATTERN=LR,...': a learning rate of their own for the parameters matching each glob"),
    STR(onnx, "MODEL.onnx", "train this ONNX model (one input, logits out) in place of --model's; --model picks the data (docs/onnx.md)"),
};
enum { NFIELDS = sizeof fields / sizeof *fields };

/* How a check names a field: "--flag" (origin NULL) or "\"key\"" of a JSON
 * config (the caller names the file). */
static const char *field_name(const field *f, bool key, char *buf, size_t n)
{
    if (key) {
        snprintf(buf, n, "\"%s\"", f->name);
        return buf;
    }
    snprintf(buf, n, "--%s", f->flag ? f->flag : f->name);
    for (char *p = buf + 2; *p; p++) if (*p == '_') *p = '-';
    return buf;
}

static const field *field_of(const char *key)
{
    for (size_t i = 0; i < NFIELDS; i++) if (!strcmp(fields[i].name, key)) return &fields[i];
    return NULL;
}

static double field_value(const mn_train_cfg *c, const field *f)
{
    const char *p = (const char *)c + f->off;
    switch (f->type) {
    case F_INT: return *(const int *)p;
    case F_I64: return (double)*(const int64_t *)p;
    case F_U64: return (double)*(const uint64_t *)p;
    case F_DBL: return *(const double *)p;
    case F_FLT: return *(const float *)p;
    case F_STR: break;
    }
    return 0;
}

static const char *const kinds[] = { "lstm", "gru", "rnn", "transformer", "vae", "mlp", "tagger" };
static const char *const schedules[] = { "constant", "cosine", "warmup_cosine", "linear", "step", "exponential", "plateau" };

/* "lstm, gru, ..." from kinds[]: a new kind is named wherever a model is asked for. */
static const char *kinds_list(char *buf, size_t n)
{
    buf[0] = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", i ? ", " : "", kinds[i]);
    return buf;
}

bool mn_cfg_is_lm(const mn_train_cfg *c)
{
    return !strcmp(c->model, "lstm") || !strcmp(c->model, "gru") || !strcmp(c->model, "rnn") || !strcmp(c->model, "transformer");
}

mn_status mn_cfg_defaults(mn_train_cfg *c, const char *model)
{
    bool known = false;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) known |= !strcmp(model, kinds[i]);
    char list[256];
    if (!known) return mn_set_error(MN_ERR_INVALID, "unknown model \"%s\" (%s)", model, kinds_list(list, sizeof list));
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
        if (lo <= INT_MIN)                /* the caller checks the range: say what a value looks like */
            fprintf(stderr, "mnemo %s: --%s: bad value \"%s\" (a whole number: decimal digits)\n", cmd, flag, v);
        else
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

static json_t *cfg_object(const mn_train_cfg *c)
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
    return o;
}

char *mn_cfg_to_json(const mn_train_cfg *c)
{
    json_t *o = cfg_object(c);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

void mn_cfg_print(FILE *f, const mn_train_cfg *c)
{
    json_t *o = cfg_object(c);
    char *s = json_dumps(o, JSON_REAL_PRECISION(7));     /* floats as given (3e-3 is 0.003, not 0.0030000000260770321) */
    fprintf(f, "config: %s\n", s ? s : "?");
    free(s);
    json_decref(o);
}

/* One kind's default of a field, as --help shows it (the kind's own name
 * in a string replaced by <model>: "<model>.safetensors"). */
static void default_str(const field *f, const char *kind, char *buf, size_t n)
{
    mn_train_cfg c;
    mn_cfg_defaults(&c, kind);
    const char *p = (const char *)&c + f->off;
    if (f->type != F_STR) { snprintf(buf, n, "%g", field_value(&c, f)); return; }
    size_t k = strlen(kind);
    if (!strncmp(p, kind, k) && strcmp(p, kind)) snprintf(buf, n, "<model>%s", p + k);
    else snprintf(buf, n, "%s", *p ? p : "\"\"");
}

/* "default 32 (lstm gru rnn tagger); 16 (transformer); ..." or "default 1" */
static void print_defaults(FILE *out, const field *f)
{
    enum { K = sizeof kinds / sizeof *kinds };
    char vals[K][64];
    bool done[K] = { false }, same = true;
    for (size_t i = 0; i < K; i++) default_str(f, kinds[i], vals[i], sizeof vals[i]);
    for (size_t i = 1; i < K; i++) same &= !strcmp(vals[i], vals[0]);
    if (same && !strcmp(vals[0], "\"\"")) return;             /* an option that is off unless given */
    fprintf(out, "%24sdefault", "");
    for (size_t i = 0; i < K; i++) {
        if (done[i]) continue;
        fprintf(out, "%s %s", i ? ";" : "", vals[i]);
        if (same) break;
        fprintf(out, " (");
        for (size_t j = i; j < K; j++)
            if (!done[j] && !strcmp(vals[j], vals[i])) { fprintf(out, "%s%s", j == i ? "" : " ", kinds[j]); done[j] = true; }
        fprintf(out, ")");
    }
    fprintf(out, "\n");
}

void mn_cfg_print_help(FILE *out)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *f = &fields[i];
        char flag[64], meta[80];
        field_name(f, false, flag, sizeof flag);
        snprintf(meta, sizeof meta, "%s %s", flag, f->meta ? f->meta : "VALUE");
        fprintf(out, "  %-21s %s\n", meta, f->help ? f->help : "");
        if (strcmp(f->name, "model") && strcmp(f->name, "data") && strcmp(f->name, "resume") && strcmp(f->name, "metrics"))
            print_defaults(out, f);
    }
    char list[1024];
    mn_cfg_activations(list, sizeof list);
    fprintf(out, "  --activation takes: %s\n", list);
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

void mn_cfg_activations(char *list, size_t n)
{
    list[0] = 0;
    for (int i = 0; i < mn_op_count() && strlen(list) + 40 < n; i++)
        if (activation_ok(mn_op_at(i)))
            snprintf(list + strlen(list), n - strlen(list), "%s%s", *list ? ", " : "", mn_op_name(mn_op_at(i)));
}

static mn_status check_activation(const char *name, const char *what)
{
    if (activation_ok(mn_op_find(name))) return MN_OK;
    char list[1024];
    mn_cfg_activations(list, sizeof list);
    const mn_op_def *op = mn_op_find(name);
    return mn_set_error(MN_ERR_INVALID, "%s: \"%s\" %s; accepted: %s (a plugin's op needs --plugin)", what, name,
                        !op ? "is not a registered op" : !mn_op_differentiable(op) ? "has no gradient" : "is not an elementwise op of 1 or 2 inputs",
                        list);
}

/* What a numeric field takes, in words: "a whole number from 1 to 65536". */
static void allowed(const field *f, double lo, double hi, char *buf, size_t n)
{
    bool whole = f->type == F_INT || f->type == F_I64 || f->type == F_U64;
    const char *what = whole ? "a whole number" : "a number";
    if (hi >= INT_MAX) snprintf(buf, n, "%s from %g up", what, lo);
    else snprintf(buf, n, "%s from %g to %g", what, lo, hi);
}

/* MN_ERR_INVALID "NAME: VALUE is not allowed; it takes ..." */
static mn_status out_of_range(const mn_train_cfg *c, const field *f, bool key, double lo, double hi)
{
    char name[64], what[96];
    allowed(f, lo, hi, what, sizeof what);
    return mn_set_error(MN_ERR_INVALID, "%s: %.9g is not allowed; it takes %s", field_name(f, key, name, sizeof name),
                        field_value(c, f), what);
}

/* The one check of a config; key: name JSON keys instead of flags. */
static mn_status check(const mn_train_cfg *c, bool key)
{
    char name[64];
    bool known = false;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) known |= !strcmp(c->model, kinds[i]);
    char list[256];
    if (!known) return mn_set_error(MN_ERR_INVALID, "%s: unknown model \"%s\"; it takes %s",
                                    field_name(field_of("model"), key, name, sizeof name), c->model, kinds_list(list, sizeof list));
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *f = &fields[i];
        double v = field_value(c, f);
        if (f->type != F_STR && f->lo < f->hi && !(v >= f->lo && v <= f->hi)) return out_of_range(c, f, key, f->lo, f->hi);
    }
    if (!(c->dropout >= 0 && c->dropout < 1))
        return mn_set_error(MN_ERR_INVALID, "%s: %g is not allowed; it takes a number from 0 to below 1",
                            field_name(field_of("dropout"), key, name, sizeof name), (double)c->dropout);
    if (!strcmp(c->model, "transformer") && c->heads > c->hidden) return out_of_range(c, field_of("heads"), key, 1, c->hidden);
    if (!strcmp(c->model, "transformer") && c->hidden % c->heads) {
        char hn[64];
        return mn_set_error(MN_ERR_INVALID, "%s: %d does not divide %s %d; it takes a divisor of the hidden width",
                            field_name(field_of("heads"), key, name, sizeof name), c->heads,
                            field_name(field_of("hidden"), key, hn, sizeof hn), c->hidden);
    }
    if (check_activation(c->activation, field_name(field_of("activation"), key, name, sizeof name))) return MN_ERR_INVALID;
    if (!mn_optim_kind_find(c->optim))
        return mn_set_error(MN_ERR_INVALID, "%s: unknown optimizer \"%s\"; it takes %s", field_name(field_of("optim"), key, name, sizeof name),
                            c->optim, MN_CFG_OPTIMIZERS);
    bool ok = false;
    for (size_t i = 0; i < sizeof schedules / sizeof *schedules; i++) ok |= !strcmp(c->schedule, schedules[i]);
    if (!ok)
        return mn_set_error(MN_ERR_INVALID, "%s: unknown schedule \"%s\"; it takes %s", field_name(field_of("schedule"), key, name, sizeof name),
                            c->schedule, MN_CFG_SCHEDULES);
    return MN_OK;
}

mn_status mn_cfg_check(const mn_train_cfg *c) { return check(c, false); }
mn_status mn_cfg_check_keys(const mn_train_cfg *c) { return check(c, true); }
