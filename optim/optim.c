/* optim/optim.c: the generic optimizer: parameter groups by name pattern,
 * binding of every trainable parameter to its state tensors in the store
 * (optim.<param>.<state>, optim.<param>.step), gradient accumulation, and
 * a parallel elementwise step that calls the kind's serial loop on chunks.
 * Invariant: once bound, mn_optim_step allocates nothing; it rebinds only
 * when the store gained parameters. */
#include "../core/internal.h"
#include <fnmatch.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 16
#define HYPER_MAX 64
#define CHUNK 16384

typedef struct {
    char *patterns;                       /* NULL for the default group */
    _Alignas(8) unsigned char hyper[HYPER_MAX];
} group;

typedef struct {
    int param, group;
    float *p, *g, *step;
    float *state[4];
    int64_t n;
    int64_t first_chunk;                  /* chunks of all bound params before this one */
    int64_t t;                            /* this update's step count */
} bound;

struct mn_optim {
    mn_params *P;
    const mn_optim_kind *kind;
    group groups[MAX_GROUPS];
    int ngroups;
    bound *b;
    int nb, seen;                         /* bound params; store size at binding */
    uint64_t seen_frozen;                 /* the store's freeze generation at binding */
    int accum, pending;                   /* accumulation window and calls in it */
    bool updated;
    int64_t updates;
    int nthreads;
};

static const mn_optim_kind *const kinds[] = { &mn_optim_sgd, &mn_optim_adam, &mn_optim_adamw, &mn_optim_rmsprop,
                                              &mn_optim_adagrad, &mn_optim_lion };

const mn_optim_kind *mn_optim_kind_find(const char *name)
{
    for (size_t i = 0; name && i < MN__ARRAY_LEN(kinds); i++)
        if (!strcmp(kinds[i]->name, name)) return kinds[i];
    return NULL;
}

void mn_opt_default(float *field, float def)
{
    if (*field == 0.0f && !signbit(*field)) *field = def;
}

/* Copies the caller's hyper-parameters to `out`, fills the defaulted
 * zeros, then checks them. */
static mn_status check_hyper(const mn_optim_kind *k, const void *hyper, unsigned char *out)
{
    memcpy(out, hyper, k->hyper_size);
    if (k->defaults) k->defaults(out);
    float lr = *(const float *)out;
    if (!(lr >= 0.0f) || !isfinite(lr)) return mn__error(MN_ERR_INVALID, "%s: invalid learning rate %g", k->name, (double)lr);
    return k->check ? k->check(out) : MN_OK;
}

mn_optim *mn_optim_new(mn_params *P, const mn_optim_kind *kind, const void *hyper)
{
    if (!P || !kind || !kind->step) { mn__error(MN_ERR_MISUSE, "optim_new: NULL store or kind"); return NULL; }
    if (kind->hyper_size > HYPER_MAX || kind->hyper_size < sizeof(float) || kind->nstate < 0 || kind->nstate > 4) {
        mn__error(MN_ERR_INVALID, "optim %s: hyper-parameters of %zu bytes (at most %d) or %d states", kind->name,
                  kind->hyper_size, HYPER_MAX, kind->nstate);
        return NULL;
    }
    if (!hyper) { mn__error(MN_ERR_MISUSE, "optim %s: NULL hyper-parameters", kind->name); return NULL; }
    _Alignas(8) unsigned char h[HYPER_MAX];
    if (check_hyper(kind, hyper, h)) return NULL;
    mn_optim *o = calloc(1, sizeof *o);
    if (!o) { mn__error(MN_ERR_NOMEM, "optim: out of memory"); return NULL; }
    o->P = P; o->kind = kind; o->ngroups = 1; o->accum = 1;
    memcpy(o->groups[0].hyper, h, kind->hyper_size);
    return o;
}

void mn_optim_free(mn_optim *o)
{
    if (!o) return;
    for (int i = 0; i < o->ngroups; i++) free(o->groups[i].patterns);
    free(o->b);
    free(o);
}

int mn_optim_add_group(mn_optim *o, const char *patterns, const void *hyper)
{
    if (!o || !patterns || !hyper) { mn__error(MN_ERR_MISUSE, "optim_add_group: NULL argument"); return -1; }
    if (o->ngroups == MAX_GROUPS) { mn__error(MN_ERR_INVALID, "optim: at most %d groups", MAX_GROUPS); return -1; }
    _Alignas(8) unsigned char h[HYPER_MAX];
    if (check_hyper(o->kind, hyper, h)) return -1;
    group *g = &o->groups[o->ngroups];
    if (!(g->patterns = strdup(patterns))) { mn__error(MN_ERR_NOMEM, "optim: out of memory"); return -1; }
    memcpy(g->hyper, h, o->kind->hyper_size);
    o->seen = -1;                         /* regroup at the next step */
    return o->ngroups++;
}

int mn_optim_add_group_lr(mn_optim *o, const char *patterns, float lr)
{
    if (!o) { mn__error(MN_ERR_MISUSE, "optim_add_group_lr: NULL optimizer"); return -1; }
    _Alignas(8) unsigned char h[HYPER_MAX];
    memcpy(h, o->groups[0].hyper, o->kind->hyper_size);
    *(float *)h = lr;                     /* every kind's hyper-parameters start with lr */
    return mn_optim_add_group(o, patterns, h);
}

static bool matches(const char *patterns, const char *name)
{
    char buf[256];
    for (const char *p = patterns; *p;) {
        size_t len = strcspn(p, ",");
        if (len < sizeof buf) {
            memcpy(buf, p, len);
            buf[len] = 0;
            if (fnmatch(buf, name, 0) == 0) return true;
        }
        p += len + (p[len] == ',');
    }
    return false;
}

int mn_optim_group_of(mn_optim *o, const char *param)
{
    for (int i = 1; o && param && i < o->ngroups; i++)
        if (matches(o->groups[i].patterns, param)) return i;
    return 0;
}

float mn_optim_get_lr(const mn_optim *o, int group)
{
    return o && group >= 0 && group < o->ngroups ? *(const float *)o->groups[group].hyper : 0.0f;
}

void mn_optim_set_lr(mn_optim *o, int group, float lr)
{
    for (int i = 0; o && i < o->ngroups; i++)
        if (group < 0 || group == i) *(float *)o->groups[i].hyper = lr;
}

int mn_optim_group_count(const mn_optim *o) { return o ? o->ngroups : 0; }

void mn_optim_set_threads(mn_optim *o, int threads) { if (o) o->nthreads = threads; }
int64_t mn_optim_updates(const mn_optim *o) { return o ? o->updates : 0; }

mn_status mn_optim_set_accumulation(mn_optim *o, int n)
{
    if (!o) return mn__error(MN_ERR_MISUSE, "optim_set_accumulation: NULL optimizer");
    if (n < 1) return mn__error(MN_ERR_INVALID, "optim: accumulation over %d micro-batches", n);
    o->accum = n; o->pending = 0;
    return MN_OK;
}

/* The state tensor optim.<param>.<what>, created (and initialised) if absent. */
static float *state_tensor(mn_optim *o, int param, const char *what, int64_t numel, bool scalar, bool *fresh)
{
    char name[512];
    snprintf(name, sizeof name, "optim.%s.%s", mn_params_name(o->P, param), what);
    mn_tensor *t = mn_params_get(o->P, name);
    if (t && mn_tensor_numel(t) != (scalar ? 1 : numel)) {
        mn__error(MN_ERR_SHAPE, "optim: state %s has %lld elements, expected %lld", name,
                  (long long)mn_tensor_numel(t), (long long)(scalar ? 1 : numel));
        return NULL;
    }
    if (!t) {
        if (mn_params_create_state(o->P, name, scalar ? MN_SCALAR : mn_params_value(o->P, param)->shape)) return NULL;
        t = mn_params_get(o->P, name);
        *fresh = true;
    }
    return mn_f32(t);
}

static mn_status bind(mn_optim *o)
{
    int n = mn_params_count(o->P), nb = 0;
    bound *b = calloc((size_t)(n ? n : 1), sizeof *b);
    if (!b) return mn__error(MN_ERR_NOMEM, "optim: out of memory");
    for (int i = 0; i < n; i++) {
        const char *name = mn_params_name(o->P, i);
        if (!mn_params_grad(o->P, i) || !strncmp(name, "optim.", 6) || mn_params_is_frozen(o->P, i)) continue;
        bound *x = &b[nb];
        bool fresh = false;
        x->param = i;
        x->group = mn_optim_group_of(o, name);
        x->n = mn_tensor_numel(mn_params_value(o->P, i));
        x->p = mn_f32(mn_params_value(o->P, i));
        x->g = mn_f32(mn_params_grad(o->P, i));
        if (!(x->step = state_tensor(o, i, "step", 1, true, &fresh))) { free(b); return mn_last_status(); }
        fresh = false;
        const void *hyper = o->groups[x->group].hyper;
        unsigned used = o->kind->used ? o->kind->used(hyper) : ~0u;
        for (int k = 0; k < o->kind->nstate; k++)
            if ((used >> k & 1u) && !(x->state[k] = state_tensor(o, i, o->kind->state_names[k], x->n, false, &fresh))) {
                free(b);
                return mn_last_status();
            }
        if (fresh && o->kind->init) o->kind->init(o->groups[x->group].hyper, x->state, x->n);
        nb++;
    }
    free(o->b);
    o->b = b; o->nb = nb;
    o->seen = mn_params_count(o->P);      /* state tensors added above count too */
    o->seen_frozen = mn__params_freeze_gen(o->P);
    return MN_OK;
}

/* One chunk of one parameter: scale an accumulated gradient, then the rule. */
static void update_chunk(mn_optim *o, const bound *x, int64_t c, float gscale)
{
    int64_t off = c * CHUNK, len = x->n - off < CHUNK ? x->n - off : CHUNK;
    float *st[4] = { 0 };
    if (gscale != 1.0f)
        for (int64_t i = off; i < off + len; i++) x->g[i] *= gscale;
    for (int k = 0; k < o->kind->nstate; k++) st[k] = x->state[k] ? x->state[k] + off : NULL;
    o->kind->step(o->groups[x->group].hyper, x->t, x->p + off, x->g + off, st, len);
}

/* Chunk c of all parameters' chunks (first_chunk set). */
static void update_nth(mn_optim *o, int64_t c, float gscale)
{
    int lo = 0, hi = o->nb - 1;                   /* the parameter holding chunk c */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (o->b[mid].first_chunk <= c) lo = mid; else hi = mid - 1;
    }
    update_chunk(o, &o->b[lo], c - o->b[lo].first_chunk, gscale);
}

/* Every parameter's chunks in one parallel loop (one region per step, and
 * small tensors share threads with large ones); element results do not
 * depend on the split. */
static void update_all(mn_optim *o, int threads, float gscale)
{
    int64_t total = 0;
    for (int i = 0; i < o->nb; i++) {
        bound *x = &o->b[i];
        x->t = (int64_t)x->step[0] + 1;
        x->step[0] = (float)x->t;
        x->first_chunk = total;
        total += (x->n + CHUNK - 1) / CHUNK;
    }
    if (mn__serial(threads, total > 1)) {
        for (int64_t c = 0; c < total; c++) update_nth(o, c, gscale);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < total; c++) update_nth(o, c, gscale);
}

mn_status mn_optim_step(mn_optim *o)
{
    if (!o) return mn__error(MN_ERR_MISUSE, "optim_step: NULL optimizer");
    o->updated = false;
    if (++o->pending < o->accum) return MN_OK;
    o->pending = 0;
    if (o->seen != mn_params_count(o->P) || o->seen_frozen != mn__params_freeze_gen(o->P)) {
        mn_status s = bind(o);
        if (s) return s;
    }
    int threads = mn__threads(o->nthreads);
    update_all(o, threads, 1.0f / (float)o->accum);
    o->updated = true;
    o->updates++;
    return MN_OK;
}

static void zero_grad_of(mn_params *P, int i)
{
    mn_tensor *g = mn_params_grad(P, i);
    if (g) memset(g->data, 0, mn_tensor_bytes(g));
}

void mn_optim_zero_grad(mn_optim *o)
{
    if (!o || (o->accum > 1 && !o->updated)) return;
    int n = mn_params_count(o->P);
    int threads = mn__threads(o->nthreads);
    bool big = n > 1 && mn_params_numel(o->P) > CHUNK;      /* a parallel region only where it pays */
    if (mn__serial(threads, big)) {
        for (int i = 0; i < n; i++) zero_grad_of(o->P, i);
        return;
    }
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int i = 0; i < n; i++) zero_grad_of(o->P, i);
}

/* ---- clipping ---- */

/* The sum runs element by element in store order, in double (the same
 * bits on every rank of a data-parallel run); the size and the data
 * pointer are read once per tensor (per element, the calls cost 1.2 ms of
 * a 30 ms lstm step on every rank). */
float mn_clip_grad_norm(mn_params *P, float max_norm, float norm_type)
{
    double total = 0;
    bool inf = isinf(norm_type);
    for (int i = 0; i < mn_params_count(P); i++) {
        mn_tensor *g = mn_params_grad(P, i);
        int64_t n = g ? mn_tensor_numel(g) : 0;
        const float *x = g ? mn_f32(g) : NULL;
        for (int64_t k = 0; k < n; k++) {
            double v = fabs((double)x[k]);
            if (inf) total = v > total || v != v ? v : total;
            else total += norm_type == 2.0f ? v * v : pow(v, norm_type);
        }
    }
    if (!inf) total = norm_type == 2.0f ? sqrt(total) : pow(total, 1.0 / norm_type);
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0)
        for (int i = 0; i < mn_params_count(P); i++) {
            mn_tensor *g = mn_params_grad(P, i);
            int64_t n = g ? mn_tensor_numel(g) : 0;
            float *x = g ? mn_f32(g) : NULL;
            for (int64_t k = 0; k < n; k++) x[k] = (float)(x[k] * coef);
        }
    return (float)total;
}

void mn_clip_grad_value(mn_params *P, float c)
{
    for (int i = 0; i < mn_params_count(P); i++) {
        mn_tensor *g = mn_params_grad(P, i);
        for (int64_t k = 0; g && k < mn_tensor_numel(g); k++) {
            float *v = &mn_f32(g)[k];
            *v = *v < -c ? -c : *v > c ? c : *v;
        }
    }
}
