/* tools/train.h: what the train, sample, eval and graph subcommands share:
 * the effective configuration (defaults per model, a JSON file, flags),
 * the data sets and the model graphs built from a configuration. */
#ifndef MN_TOOLS_TRAIN_H
#define MN_TOOLS_TRAIN_H

#include "mnemo.h"
#include <stdio.h>
#include "text.h"
#include "idx.h"

typedef struct {
    char model[16];          /* lstm gru rnn transformer vae mlp tagger */
    char data[512];          /* "" = the model's default data set */
    char optim[16], schedule[24], out[512], resume[512], metrics[512];
    char activation[64];     /* mlp hidden activation: relu or any op by name (e.g. a plugin's) */
    int epochs, batch, seq, threads, val_every, patience, val_batches, limit;
    int64_t steps;           /* 0: no limit besides epochs and time */
    double time_limit;       /* seconds, 0: none */
    int64_t memory_budget;   /* the training graph's arena limit in bytes (recompute pass), 0: none */
    float lr, clip, dropout, weight_decay;
    uint64_t seed;
    int embed, hidden, layers, heads, ff, latent;
    /* fine-tuning (finetune.h): the start, rename rules, frozen and lr-group globs */
    char init_from[512], init_map[512], freeze[512], lr_groups[512];
    char onnx[512];          /* an ONNX model trained in place of --model's own (its data reader stays) */
} mn_train_cfg;

/* Defaults for a model kind; MN_ERR_INVALID for an unknown kind. */
mn_status mn_cfg_defaults(mn_train_cfg *c, const char *model);
/* Bounds of mn_cfg_check: they keep every size product far from overflow. */
enum { MN_CFG_MAX_BATCH = 1 << 16, MN_CFG_MAX_SEQ = 4096, MN_CFG_MAX_WIDTH = 1 << 16, MN_CFG_MAX_LAYERS = 256 };

/* Reads a JSON object of config keys (unknown keys are errors; a number
 * that does not fit its field is an error, never truncated). */
mn_status mn_cfg_load_json(mn_train_cfg *c, const char *json_text, const char *origin);
/* Who picks the model when a JSON config is applied over c. */
typedef enum { MN_CFG_MODEL_FROM_JSON, MN_CFG_MODEL_FLAG, MN_CFG_MODEL_CHECKPOINT } mn_cfg_model_rule;
mn_status mn_cfg_apply_json(mn_train_cfg *c, const char *json_text, const char *origin, mn_cfg_model_rule rule);
/* A flag's integer: decimal digits only, within [lo, hi]; prints why not. */
bool      mn_cfg_parse_int(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out);
bool      mn_cfg_parse_bytes(const char *cmd, const char *flag, const char *v, int64_t *out);   /* 256M, 1.5G */
bool      mn_cfg_parse_u64(const char *cmd, const char *flag, const char *v, uint64_t *out);
/* The config as a JSON string (caller frees). */
char     *mn_cfg_to_json(const mn_train_cfg *c);
/* "config: {...}": the effective config a run starts with (a --config file). */
void      mn_cfg_print(FILE *f, const mn_train_cfg *c);
/* Checks ranges, the activation, optimizer and schedule; names the bad
 * field and says what it takes. The one check of a config from flags,
 * --config or a checkpoint: mn_cfg_check names the flag (--val-every),
 * mn_cfg_check_keys the JSON key ("val_every") for a file's config. */
mn_status mn_cfg_check(const mn_train_cfg *c);
mn_status mn_cfg_check_keys(const mn_train_cfg *c);
#define MN_CFG_OPTIMIZERS "sgd, adam, adamw, rmsprop, adagrad or lion"
#define MN_CFG_SCHEDULES "constant, cosine, warmup_cosine, linear, step, exponential or plateau"
/* The ops --activation accepts, comma separated (plugins' included). */
void      mn_cfg_activations(char *list, size_t n);
/* --help's list of the config flags: each with its meaning and its
 * default for every model kind (from mn_cfg_defaults). */
void      mn_cfg_print_help(FILE *f);
bool      mn_cfg_is_lm(const mn_train_cfg *c);

/* ---- data ---- */
typedef enum { MN_DATA_TEXT, MN_DATA_IMAGES, MN_DATA_TAGS } mn_data_kind;
typedef struct {
    mn_data_kind kind;
    /* text: ids of train and validation splits */
    mn_text text;
    int64_t split;                 /* text: first validation char */
    /* images */
    mn_fmnist train, test;
    int64_t ntrain;                /* images or sentences used for training (the first ntrain; --limit) */
    /* tags: sentences as word and tag ids, [n, seq] padded (-100 tags, 0 words) */
    int32_t *words, *tags;
    int64_t nsent, nval;           /* the last nval sentences (images of train) are validation */
    int nwords, ntags;
    char **vocab;                  /* word strings (nwords) */
    const char *const *tagnames;
    char source[700];
    int64_t unknown;               /* words / characters outside a given vocabulary */
} mn_data;

/* The data set of c's model; MN_ERR_FORMAT (naming the sizes) when a split
 * holds less than one batch. Frees what it read on failure. */
mn_status mn_data_load(mn_data *d, const mn_train_cfg *c);
/* The same with a checkpoint's vocabulary (its "mnemo.vocab" JSON): words
 * outside it get the unknown id 1, characters outside it the unknown
 * symbol (mn_text_unknown_id); d->unknown counts them. */
mn_status mn_data_load_vocab(mn_data *d, const mn_train_cfg *c, const char *vocab_json);
/* For eval, where the last batch holds the rest: one item in the evaluated
 * split is enough; whole_text: a text model's file is all evaluated (split
 * 0; at least one window of seq + 1 characters). */
mn_status mn_data_load_eval(mn_data *d, const mn_train_cfg *c, const char *vocab_json, bool whole_text);
void      mn_data_free(mn_data *d);
/* Batches of an epoch (training split) and of the validation split. */
int64_t   mn_data_train_batches(const mn_data *d, const mn_train_cfg *c);
int64_t   mn_data_val_batches(const mn_data *d, const mn_train_cfg *c);
/* Items (text windows, images, sentences) of the training or validation split. */
int64_t   mn_data_items(const mn_data *d, const mn_train_cfg *c, bool val);
/* Fills the executable's inputs (x, then y) with the batch of items `it`
 * (c->batch indices into the split). */
mn_status mn_data_fill_items(const mn_data *d, const mn_train_cfg *c, mn_exec *ex, const int64_t *it, bool val);
/* The text vocabulary as metadata (JSON array of byte values) and back. */
char     *mn_data_vocab_json(const mn_data *d);

/* ---- models ---- */
typedef struct {
    mn_node *loss, *logits;        /* logits: [N, classes] in target order (NULL for vae) */
    mn_node *targets;              /* i32 [N] */
    int64_t classes;
} mn_model_graph;

/* The training (or evaluation) graph of c's model for a batch. */
mn_model_graph mn_model_build(mn_graph *g, const mn_train_cfg *c, int64_t vocab, bool training);
/* The same for c->onnx (cmd_onnx.c): the ONNX model's one input is "x"
 * as --model's reader gives it, its first output the logits. */
mn_model_graph mn_model_onnx(mn_graph *g, const mn_train_cfg *c, int64_t vocab);
/* Whether P (a checkpoint's store) holds exactly c's parameters (message names
 * the missing, misshapen and unused ones); P is strict afterwards. */
mn_status mn_model_check_params(mn_params *P, const mn_train_cfg *c, int64_t vocab);

/* ---- evaluation over every item (evaluate.c) ---- */
/* What a model function needs to build c's model for any batch size. */
typedef struct {
    mn_train_cfg c;                /* c.batch: the full batch */
    int64_t vocab;
    int64_t classes;               /* set by a build (0 for the vae) */
} mn_model_ctx;
typedef struct {
    double loss;                   /* mean over targets (per image for the vae) */
    int64_t items, batches;        /* evaluated */
    int64_t full, rest;            /* batches of c.batch, and the items of the last smaller one */
    int64_t targets, correct;      /* non-ignored targets and argmax hits (classifiers and LMs) */
} mn_eval_result;
/* mc's model compiled (forward only) for any batch size on P; mc must
 * outlive it. */
mn_rebatch *mn_model_rebatch(mn_params *P, mn_model_ctx *mc, bool detect_anomaly);
/* Evaluates items 0 .. items-1 of d's validation split (eval: the test
 * split) in batches of mc->c.batch, the last holding the rest; conf
 * (classes x classes, rows: truth) counts predictions when not NULL;
 * progress: a live line on a terminal. */
mn_status mn_eval_items(mn_rebatch *r, mn_model_ctx *mc, const mn_data *d, int64_t items, int64_t *conf, bool progress,
                        mn_eval_result *out);
/* The same over items first .. first+items-1 (a rank's shard under mpirun). */
mn_status mn_eval_range(mn_rebatch *r, mn_model_ctx *mc, const mn_data *d, int64_t first, int64_t items, int64_t *conf,
                        bool progress, mn_eval_result *out);

/* ---- sampling ---- */
mn_status mn_vocab_from_json(const char *json, mn_text *v);
mn_status mn_lm_generate(mn_params *P, const mn_train_cfg *c, const mn_text *v, const char *prompt, int n,
                         float temperature, int top_k, uint64_t seed, char *out);

/* ---- checkpoints (cmd_train.c) ---- */
/* Loads a checkpoint written by `mnemo train`: the store and the config
 * (and the vocabulary JSON, borrowed from the store's metadata). */
mn_status mn_ckpt_open(const char *path, mn_params **P, mn_train_cfg *c);

/* ---- train's own files (train_files.c) ---- */
/* The loop state stored in a checkpoint (metadata "mnemo.train_state"). */
typedef struct {
    int64_t step;                  /* optimizer steps done */
    int64_t epoch;                 /* epochs done */
    int64_t example;               /* items of this epoch's permutation done */
    int64_t examples;              /* training items per epoch when saved; -1: not stored (older mnemo) */
    double best;                   /* best validation loss; INFINITY: none yet */
    int bad;                       /* validations since the best */
    int batch, seq, limit;         /* of the config stored beside it */
} mn_train_state;

#define MN_TRAIN_MAX_STEP ((int64_t)1 << 40)

/* The state as the JSON stored in a checkpoint (into buf of n bytes). */
void      mn_train_state_json(const mn_train_state *s, char *buf, size_t n);
/* Parses and range-checks a stored state (and the batch, seq and limit of
 * the stored config); the message names the checkpoint `path` and the field. */
mn_status mn_train_state_parse(const char *state_json, const char *config_json, const char *path, mn_train_state *s);
/* Checks that a run with `items` training items per epoch and config c can
 * continue from s: the items must be those the state counted (--seq,
 * --limit and --data as saved; --batch may change). */
mn_status mn_train_state_fit(const mn_train_state *s, const char *path, int64_t items, const mn_train_cfg *c);

/* MN_OK when `path` may receive a file by rename: absent, or a regular
 * file (never a device, pipe, directory or symbolic link). */
mn_status mn_out_check_regular(const char *path);
/* MN_OK when the folder of `path` exists and is writable (checked before
 * any data is read, so a typo in --out costs nothing). */
mn_status mn_out_check_dir(const char *path);
/* Removes `path`.tmp.PID files whose process is gone; returns how many. */
int       mn_out_clean_stale(const char *path);
/* Drops the lines of a metrics file whose "step" is after `step` (a
 * resumed run redoes them); returns how many (-1 and an error on failure). */
int64_t   mn_metrics_truncate(const char *path, int64_t step);
/* ---- the plot (plot.c) ---- */
/* Draws a metrics file into `png` with gnuplot run directly (no shell):
 * train loss per step (faint) and smoothed, validation loss, and a second
 * panel for other val_* figures (accuracy). The gnuplot input (script and
 * data) is kept beside it (mn_plot_script_path: X.loss.png -> X.loss.gp)
 * and given to gnuplot as its standard input. MN_OK only when png was
 * written; MN_ERR_NOTFOUND when gnuplot is not installed. */
mn_status mn_plot_losses(const char *metrics, const char *png);
void      mn_plot_script_path(const char *png, char *gp, size_t n);

#endif
