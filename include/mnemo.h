/* mnemo.h: the one public header of mnemo, a static-graph reverse-mode
 * autodiff library for the CPU.
 * Ownership: every mn_*_new has a mn_*_free; handles are opaque; fallible
 * calls return mn_status and leave a message in mn_errmsg() (per thread) or
 * mn_graph_errmsg() (per graph). Nothing here aborts on user input. */
#ifndef MNEMO_H
#define MNEMO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MN_VERSION_MAJOR 0
#define MN_VERSION_MINOR 2
#define MN_VERSION_PATCH 0
const char *mn_version(void);

/* ---- status codes: one X-macro gives the enum, names and messages ---- */
#define MN_STATUS_LIST(X)                                                  \
    X(MN_OK,              "ok",          "success")                       \
    X(MN_ERR_NOMEM,       "nomem",       "out of memory")                 \
    X(MN_ERR_INVALID,     "invalid",     "invalid argument")              \
    X(MN_ERR_MISUSE,      "misuse",      "NULL or stale handle")          \
    X(MN_ERR_SHAPE,       "shape",       "incompatible shapes")           \
    X(MN_ERR_DTYPE,       "dtype",       "wrong dtype")                   \
    X(MN_ERR_NOTFOUND,    "notfound",    "no such name")                  \
    X(MN_ERR_EXISTS,      "exists",      "name already exists")           \
    X(MN_ERR_IO,          "io",          "input/output error")            \
    X(MN_ERR_FORMAT,      "format",      "malformed file")                \
    X(MN_ERR_UNSUPPORTED, "unsupported", "not supported")                 \
    X(MN_ERR_RUNTIME,     "runtime",     "kernel reported an error")      \
    X(MN_ERR_GRAPH,       "graph",       "graph is in an error state")    \
    X(MN_ERR_NONFINITE,   "nonfinite",   "a value is not finite")

typedef enum {
#define MN__ENUM(code, name, msg) code,
    MN_STATUS_LIST(MN__ENUM)
#undef MN__ENUM
    MN_STATUS_COUNT
} mn_status;

const char *mn_status_name(mn_status s);     /* "shape" */
const char *mn_status_message(mn_status s);  /* "incompatible shapes" */
/* Detail of the last error raised on this thread; never NULL. */
const char *mn_errmsg(void);
mn_status   mn_last_status(void);
void        mn_clear_error(void);
/* Raises an error on this thread (for tools and plugins); returns code. */
mn_status   mn_set_error(mn_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Opens a file a user named for reading ("rb") if it is a regular file. A
 * FIFO, device or directory is refused without blocking: NULL with the
 * error "WHAT PATH: not a regular file" (or the open's reason). Every
 * reader of checkpoints, configs and models opens through it. */
FILE *mn_fopen_regular(const char *path, const char *what);

/* ---- dtypes, shapes, tensors ---- */
typedef enum { MN_F32 = 0, MN_I32 = 1 } mn_dtype;
const char *mn_dtype_name(mn_dtype t);       /* "f32", "i32" */
size_t      mn_dtype_size(mn_dtype t);

#define MN_MAX_DIMS 8
typedef struct { int ndim; int64_t d[MN_MAX_DIMS]; } mn_shape;
/* MN_SHAPE(32, 784) -> a 2-D shape; MN_SCALAR is the 0-D shape. */
#define MN_SHAPE(...) ((mn_shape){ .ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .d = { __VA_ARGS__ } })
#define MN_SCALAR ((mn_shape){ .ndim = 0 })

int64_t mn_shape_numel(mn_shape s);
bool    mn_shape_eq(mn_shape a, mn_shape b);
/* Writes "[32,784]" into buf (always terminated); returns buf. */
char   *mn_shape_str(mn_shape s, char *buf, size_t n);
/* NumPy broadcasting of a and b into *out; MN_ERR_SHAPE if incompatible. */
mn_status mn_shape_broadcast(mn_shape a, mn_shape b, mn_shape *out);

/* A dense, row-major, contiguous tensor. `data` is owned when created by
 * mn_tensor_new, borrowed when the tensor is a view handed out by mnemo. */
typedef struct {
    mn_dtype dtype;
    mn_shape shape;
    void    *data;
} mn_tensor;

mn_tensor *mn_tensor_new(mn_dtype dtype, mn_shape shape);   /* zero-filled, 64-byte aligned */
void       mn_tensor_free(mn_tensor *t);
int64_t    mn_tensor_numel(const mn_tensor *t);
size_t     mn_tensor_bytes(const mn_tensor *t);
static inline float   *mn_f32(const mn_tensor *t) { return (float *)t->data; }
static inline int32_t *mn_i32(const mn_tensor *t) { return (int32_t *)t->data; }

/* ---- threads ----
 * The library keeps no thread settings of its own: each executable takes
 * its threads, OpenBLAS threads and binding from mn_compile_opts. */
/* OpenMP's default team size for the calling thread (what threads = 0 means). */
int  mn_get_num_threads(void);
/* The OpenBLAS build loaded: "openmp", "pthread" (oversubscribes the cores
 * when mixed with mnemo's OpenMP loops) or "serial". */
const char *mn_blas_threading(void);

/* ---- counter-based RNG (Philox4x32-10) ----
 * The value for element i depends only on (seed, stream, i): fills are
 * identical whatever the thread count or order. */
void  mn_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);
float mn_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);  /* [0,1) */
float mn_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);   /* N(0,1) */
void  mn_rng_fill_uniform(float *x, int64_t n, uint64_t seed, uint64_t stream, float lo, float hi);
void  mn_rng_fill_normal(float *x, int64_t n, uint64_t seed, uint64_t stream, float mean, float std);

/* ---- parameter store: named f32 tensors, each with a gradient ---- */
typedef struct mn_params mn_params;

typedef enum {
    MN_INIT_ZEROS, MN_INIT_ONES, MN_INIT_CONSTANT,
    MN_INIT_UNIFORM,          /* U(a, b) */
    MN_INIT_NORMAL,           /* N(a = mean, b = std) */
    MN_INIT_XAVIER_UNIFORM,   /* gain * sqrt(6 / (fan_in + fan_out)) bound */
    MN_INIT_XAVIER_NORMAL,    /* gain * sqrt(2 / (fan_in + fan_out)) std */
    MN_INIT_KAIMING_UNIFORM,  /* gain(nonlin, a) * sqrt(3 / fan) bound */
    MN_INIT_KAIMING_NORMAL,   /* gain(nonlin, a) / sqrt(fan) std */
    MN_INIT_NONE,             /* mn_init_like's answer to bad arguments: filling fails */
} mn_init_kind;

typedef enum { MN_FAN_IN = 0, MN_FAN_OUT = 1 } mn_fan_mode;
typedef enum {
    MN_NONLIN_LEAKY_RELU = 0,  /* PyTorch's default for kaiming_* */
    MN_NONLIN_LINEAR, MN_NONLIN_SIGMOID, MN_NONLIN_TANH, MN_NONLIN_RELU,
} mn_nonlin;

/* Fields as in torch.nn.init: a/b are the bounds (uniform), mean/std
 * (normal), the value (constant, in a) or the negative slope (kaiming). */
typedef struct {
    mn_init_kind kind;
    float a, b;
    float gain;          /* xavier; 0 means 1 */
    mn_fan_mode mode;    /* kaiming */
    mn_nonlin nonlin;    /* kaiming */
} mn_init;

/* PyTorch's torch.nn.init.calculate_gain. */
float mn_init_gain(mn_nonlin nonlin, float param);
/* fan_in / fan_out as in PyTorch: dims 0,1 and the product of the rest. */
mn_status mn_init_fans(mn_shape s, int64_t *fan_in, int64_t *fan_out);
/* PyTorch modules' default initialisers by module name, for a parameter
 * of that role (bias false: the weight). fan: in_features for a Linear
 * bias, hidden_size for the RNNs, unused otherwise.
 *   MN_LIKE_LINEAR      nn.Linear: weight kaiming_uniform(a = sqrt(5)),
 *                       i.e. U(-1/sqrt(in), 1/sqrt(in)); bias the same bound
 *   MN_LIKE_EMBEDDING   nn.Embedding: weight N(0, 1) (no bias)
 *   MN_LIKE_RNN         nn.RNN, nn.LSTM, nn.GRU: every weight and bias
 *                       U(-1/sqrt(hidden), 1/sqrt(hidden))
 *   MN_LIKE_LAYER_NORM  nn.LayerNorm: weight 1, bias 0
 * Bad arguments give kind MN_INIT_NONE, which mn_init_fill rejects. */
typedef enum { MN_LIKE_LINEAR, MN_LIKE_EMBEDDING, MN_LIKE_RNN, MN_LIKE_LAYER_NORM } mn_like;
mn_init mn_init_like(mn_like module, bool bias, int64_t fan);
/* Fill t by the initialiser with counter-based randomness (seed, stream). */
mn_status mn_init_fill(mn_tensor *t, mn_init init, uint64_t seed, uint64_t stream);

mn_params *mn_params_new(void);
void       mn_params_free(mn_params *P);
void       mn_params_set_seed(mn_params *P, uint64_t seed);   /* default 0 */
/* Creates the parameter (value initialised, gradient zeroed). Each
 * parameter's randomness is keyed by the store seed and its name, so the
 * creation order does not change values. MN_ERR_EXISTS if present. */
mn_status  mn_params_create(mn_params *P, const char *name, mn_shape shape, mn_init init);
/* Adds a tensor with no gradient (e.g. optimizer state), zero-filled. */
mn_status  mn_params_create_state(mn_params *P, const char *name, mn_shape shape);
/* Strict mode, for a loaded model: mn_params_create (and so mn_param)
 * creates nothing and fails with MN_ERR_NOTFOUND naming the parameter. */
void       mn_params_set_strict(mn_params *P, bool strict);
/* Whether P (a loaded store) holds exactly the trainable parameters of
 * `model` (a store the same graphs were built on from scratch):
 * MN_ERR_NOTFOUND names the missing ones, MN_ERR_SHAPE those of another
 * shape, MN_ERR_INVALID P's trainable tensors that the model does not use. */
mn_status  mn_params_match(const mn_params *P, const mn_params *model);
int        mn_params_count(const mn_params *P);
int        mn_params_find(const mn_params *P, const char *name);   /* index or -1 */
const char *mn_params_name(const mn_params *P, int i);
mn_tensor *mn_params_value(mn_params *P, int i);
mn_tensor *mn_params_grad(mn_params *P, int i);                  /* NULL for state */
mn_tensor *mn_params_get(mn_params *P, const char *name);        /* value or NULL */
mn_tensor *mn_params_get_grad(mn_params *P, const char *name);
void       mn_params_zero_grad(mn_params *P);
int64_t    mn_params_numel(const mn_params *P);                  /* trainable elements */
/* Free-form string metadata written to safetensors' __metadata__. */
mn_status   mn_params_set_meta(mn_params *P, const char *key, const char *value);
const char *mn_params_get_meta(const mn_params *P, const char *key);
int         mn_params_meta_count(const mn_params *P);
/* The i-th metadata pair in insertion order; MN_ERR_INVALID if out of range. */
mn_status   mn_params_meta_at(const mn_params *P, int i, const char **key, const char **value);

/* Freezing (fine-tuning). A frozen parameter keeps its value: a graph
 * compiled while it is frozen computes no gradient for it, nor any work
 * that only feeds such gradients, and optimizers skip it. `patterns` are
 * comma-separated fnmatch globs ("emb.*,rnn.*_l0"); each must match a
 * trainable parameter (MN_ERR_NOTFOUND names the first that does not, and
 * nothing changes). *matched (may be NULL): parameters matched. An
 * executable compiled before a change would keep its gradients: running
 * it then fails with MN_ERR_MISUSE naming the first of its parameters
 * whose flag changed ("was frozen/unfrozen after this executable was
 * compiled"); compile again after freezing or unfreezing (a change undone
 * before the next run, or one to parameters it does not use, is fine). */
mn_status mn_params_freeze(mn_params *P, const char *patterns, bool frozen, int *matched);
bool      mn_params_is_frozen(const mn_params *P, int i);
int64_t   mn_params_frozen_numel(const mn_params *P);            /* frozen trainable elements */

/* Partial loads (PyTorch's load_state_dict(strict=False)): copy the
 * trainable tensors a store has in common with a file (or another store),
 * by name or through rename rules, one per line (or ';'-separated):
 *     rnn.* -> encoder.rnn.*      '*' spans match in order (shortest first)
 *     head.* -> -                 '-': not loaded (reported unexpected)
 *     # a comment
 * The first rule matching a source name applies; other names stay as they
 * are. Tensors without gradient (optimizer state) on either side are left
 * out. A shape mismatch fails with MN_ERR_SHAPE and copies nothing, unless
 * skip_mismatched. Two sources renamed to one name: MN_ERR_INVALID. */
typedef enum {
    MN_LOAD_LOADED,          /* store names copied */
    MN_LOAD_MISSING,         /* store parameters nothing was copied to */
    MN_LOAD_UNEXPECTED,      /* source names (before renaming) with no place in the store */
    MN_LOAD_MISMATCHED,      /* store names whose source has another shape */
    MN_LOAD_KINDS
} mn_load_kind;
typedef struct {
    int count[MN_LOAD_KINDS];
    char **names[MN_LOAD_KINDS];
} mn_load_report;
typedef struct {
    const char *rename;      /* rules as above; NULL or "": names as they are */
    bool skip_mismatched;    /* copy the rest; report mismatches instead of failing */
    /* Since 0.2: source names the load leaves alone (a caller that copies
     * them its own way), NULL-terminated (NULL: none). Each is compared
     * whole, byte for byte, with the source's names, never read as a rule
     * or a pattern; a skipped tensor is neither copied nor reported. */
    const char *const *skip;
} mn_load_opts;
/* report (may be NULL) is filled on success and on MN_ERR_SHAPE; free it
 * with mn_load_report_free. opts may be NULL (strict shapes, no rules).
 * The calls pass sizeof(mn_load_opts) of the caller's header: a size this
 * library does not know (a caller built against a newer header) is
 * MN_ERR_MISUSE naming both sizes, and nothing is loaded; a caller built
 * against 0.1 (no skip list) reaches the unsized symbols, still exported. */
mn_status mn_params_load_partial_sized(size_t opts_size, mn_params *P, const char *path, const mn_load_opts *opts,
                                       mn_load_report *report);
mn_status mn_params_copy_partial_sized(size_t opts_size, mn_params *P, const mn_params *src, const mn_load_opts *opts,
                                       mn_load_report *report);
/* (P, path or src, opts, report); variadic: an opts compound literal holds commas */
#define mn_params_load_partial(...) mn_params_load_partial_sized(sizeof(mn_load_opts), __VA_ARGS__)
#define mn_params_copy_partial(...) mn_params_copy_partial_sized(sizeof(mn_load_opts), __VA_ARGS__)
void      mn_load_report_free(mn_load_report *r);
/* The store name the rules give a source name (out: "" when a rule drops
 * it, the name itself when no rule matches); MN_ERR_INVALID for a bad rule
 * or a result of cap bytes or more. */
mn_status mn_params_rename(const char *rename, const char *name, char *out, size_t cap);

/* Safetensors. Save writes a temporary file beside `path`, fsyncs and
 * renames it over `path`, which must be absent or a regular file
 * (MN_ERR_IO: a device, pipe or link is never replaced). Load validates the whole file first and changes
 * nothing on failure; tensors present in the store must keep their shape. */
mn_status mn_params_save(const mn_params *P, const char *path);
mn_status mn_params_load(mn_params *P, const char *path);
/* The file's metadata only (mn_params_get_meta), its header checked as
 * mn_params_load checks it; no tensor is read or added. */
mn_status mn_params_load_meta(mn_params *P, const char *path);

/* ---- graph builder ---- */
typedef struct mn_graph mn_graph;
typedef struct mn_node mn_node;
typedef struct mn_exec mn_exec;

mn_graph  *mn_graph_new(mn_params *P);
void       mn_graph_free(mn_graph *g);
mn_status  mn_graph_status(const mn_graph *g);
const char *mn_graph_errmsg(const mn_graph *g);
mn_params *mn_graph_params(mn_graph *g);
/* Puts the graph in its error state (the first error sticks): for model
 * builders and plugins that validate their own arguments. Returns code. */
mn_status  mn_graph_fail(mn_graph *g, mn_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int        mn_graph_node_count(const mn_graph *g);
/* Scopes name what is built under them, as PyTorch's module paths: after
 * mn_graph_push_scope(g, "encoder"), mn_linear(g, "fc", ...) creates the
 * parameters encoder.fc.weight and encoder.fc.bias, and unnamed nodes are
 * named encoder.<op>#<id>. mn_param and mn_param_get take names relative to
 * the scope; input names are not scoped. Each pop undoes one push (at most
 * 32 deep; a bad push or pop is the graph's error). mn_graph_set_scope
 * replaces the whole stack with one scope (NULL: none); mn_graph_scope is
 * the current path ("" at the top). */
mn_status  mn_graph_push_scope(mn_graph *g, const char *name);
mn_status  mn_graph_pop_scope(mn_graph *g);
void       mn_graph_set_scope(mn_graph *g, const char *scope);
const char *mn_graph_scope(const mn_graph *g);
/* Seed for random ops of this graph (dropout, sampling). */
void       mn_graph_set_seed(mn_graph *g, uint64_t seed);
/* Folded gathers (on by default): rows gathered from a table of fewer rows
 * (an embedding) and then multiplied by a weight as a per-step product
 * (mn_matmul_packed, mn_matmul_steps: an RNN's input projection) or added
 * a vector over their rows are built as the table's product or sum,
 * gathered: the same values (the sums bit for bit, the product's rows from
 * another GEMM call) at the table's rows' cost. Off: nodes built from then
 * on are the ops as called (comparisons, tests of the unfolded graph). */
void       mn_graph_set_folding(mn_graph *g, bool on);

mn_node *mn_input(mn_graph *g, const char *name, mn_dtype dtype, mn_shape shape);
/* The parameter `name` of the store, created with `init` if absent (an
 * existing one must have the same shape). */
mn_node *mn_param(mn_graph *g, const char *name, mn_shape shape, mn_init init);
/* The existing parameter `name`; MN_ERR_NOTFOUND if absent. */
mn_node *mn_param_get(mn_graph *g, const char *name);
mn_node *mn_constant(mn_graph *g, mn_dtype dtype, mn_shape shape, const void *data);
mn_node *mn_scalar(mn_graph *g, float value);
/* Any registered op by name; attrs points to the op's attribute struct. */
mn_node *mn_op(mn_graph *g, const char *op, mn_node *const *inputs, int n,
               const void *attrs, size_t attrs_size);
/* Any op by name with its attributes by name (for importers and bindings):
 * each value is written into the field of that name of the op's attribute
 * struct through its schema (numbers in `value`; shapes and permutations in
 * `shape`); fields not given are zero. An unknown name, or a value the
 * field's type cannot hold, fails the graph naming op and attribute.
 *   mn_op_named(g, "slice", &x, 1, (mn_attr_value[]){ { "axis", 1 }, { "start", 0 },
 *               { "stop", 4 }, { "step", 1 } }, 4)                                   */
typedef struct { const char *name; double value; mn_shape shape; } mn_attr_value;
mn_node *mn_op_named(mn_graph *g, const char *op, mn_node *const *inputs, int n, const mn_attr_value *values, int nvalues);

mn_shape    mn_node_shape(const mn_node *n);
mn_dtype    mn_node_dtype(const mn_node *n);
const char *mn_node_name(const mn_node *n);
const char *mn_node_op(const mn_node *n);       /* "input", "param", "const" or the op name */
int         mn_node_id(const mn_node *n);
/* Renames the node (returns it, for chaining). */
mn_node    *mn_node_set_name(mn_node *n, const char *name);

/* ---- built-in op builders (see ops/ and docs/ops.md for formulas) ---- */
/* batchmean (sum / batch size) is accepted by kl_div only, as in PyTorch. */
typedef enum { MN_REDUCE_NONE = 0, MN_REDUCE_MEAN = 1, MN_REDUCE_SUM = 2, MN_REDUCE_BATCHMEAN = 3 } mn_reduction;

mn_node *mn_add(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_sub(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_mul(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_div(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_neg(mn_graph *g, mn_node *x);
mn_node *mn_scale(mn_graph *g, mn_node *x, float s);
mn_node *mn_exp(mn_graph *g, mn_node *x);
mn_node *mn_log(mn_graph *g, mn_node *x);
mn_node *mn_sqrt(mn_graph *g, mn_node *x);
mn_node *mn_square(mn_graph *g, mn_node *x);
mn_node *mn_tanh(mn_graph *g, mn_node *x);
mn_node *mn_sigmoid(mn_graph *g, mn_node *x);
mn_node *mn_relu(mn_graph *g, mn_node *x);
/* C = op(A) op(B) over the last two dims; leading dims broadcast. */
mn_node *mn_matmul(mn_graph *g, mn_node *a, mn_node *b, bool trans_a, bool trans_b);
/* The same product of a [T, ...] (b 2-D, a not transposed), computed one
 * index of a's first dim at a time: any slice of a over that dim (a segment
 * of time steps recomputed under a memory budget) gives the same bits. */
mn_node *mn_matmul_steps(mn_graph *g, mn_node *a, mn_node *b, bool trans_b);
/* A recurrent weight used by many products: w packed once per run
 * (mn_pack_weight), then each C = a op(w) (op(w) = w^T if trans_b) reads the
 * packed copy (mn_matmul_packed, `packed` from mn_pack_weight(g, w, trans_b)).
 * Gradients flow to w; each row's bits do not depend on the row count. */
mn_node *mn_pack_weight(mn_graph *g, mn_node *w, bool trans_b);
mn_node *mn_matmul_packed(mn_graph *g, mn_node *a, mn_node *w, mn_node *packed, bool trans_b);
/* Rows per block of a sum of products over time steps (an RNN's weight
 * gradients): the gradient of a weight shared by n products is one GEMM per
 * run of whole products reaching this many contraction rows, added in a
 * fixed order (so a memory budget can free each block's inputs early and
 * keep the bits); models/rnn.c projects its inputs in blocks of as many steps. */
#define MN_STEP_BLOCK_ROWS 1024
mn_node *mn_transpose(mn_graph *g, mn_node *x, int dim0, int dim1);
mn_node *mn_permute(mn_graph *g, mn_node *x, int ndim, const int *perm);
mn_node *mn_reshape(mn_graph *g, mn_node *x, mn_shape shape);  /* one -1 allowed */
mn_node *mn_expand(mn_graph *g, mn_node *x, mn_shape shape);   /* broadcast_to */
/* Sum/mean over the axes in `axes` (negative counts from the end; n = 0
 * reduces every axis). */
mn_node *mn_sum(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim);
mn_node *mn_mean(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim);
mn_node *mn_sum_all(mn_graph *g, mn_node *x);
/* Sum x down to `shape` (the inverse of broadcasting). */
mn_node *mn_sum_to(mn_graph *g, mn_node *x, mn_shape shape);
mn_node *mn_softmax(mn_graph *g, mn_node *x, int axis);
mn_node *mn_log_softmax(mn_graph *g, mn_node *x, int axis);

typedef struct {
    int ignore_index;        /* default -100 */
    mn_reduction reduction;  /* default mean (over non-ignored targets) */
    float label_smoothing;   /* default 0 */
} mn_ce_opts;
#define MN_CE_DEFAULTS ((mn_ce_opts){ .ignore_index = -100, .reduction = MN_REDUCE_MEAN, .label_smoothing = 0.0f })
/* logits [N, C] or [N, C, d...], targets i32 [N] or [N, d...]. */
mn_node *mn_cross_entropy(mn_graph *g, mn_node *logits, mn_node *targets);
mn_node *mn_cross_entropy_ex(mn_graph *g, mn_node *logits, mn_node *targets, mn_ce_opts o);
mn_node *mn_mse_loss(mn_graph *g, mn_node *x, mn_node *target, mn_reduction r);

mn_node *mn_maximum(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_minimum(mn_graph *g, mn_node *a, mn_node *b);
/* Comparisons (broadcasting) give f32 0/1 and no gradient. */
mn_node *mn_gt(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_ge(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_lt(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_le(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_eq(mn_graph *g, mn_node *a, mn_node *b);
mn_node *mn_ne(mn_graph *g, mn_node *a, mn_node *b);

/* Activations (torch.nn.functional names and defaults: softplus beta 1,
 * threshold 20; leaky_relu slope 0.01; elu alpha 1). */
mn_node *mn_gelu(mn_graph *g, mn_node *x, bool tanh_approx);
mn_node *mn_softplus(mn_graph *g, mn_node *x, float beta, float threshold);
mn_node *mn_abs(mn_graph *g, mn_node *x);
mn_node *mn_sign(mn_graph *g, mn_node *x);
mn_node *mn_clamp(mn_graph *g, mn_node *x, float min, float max);   /* +-INFINITY for none */
mn_node *mn_pow(mn_graph *g, mn_node *x, float exponent);
mn_node *mn_leaky_relu(mn_graph *g, mn_node *x, float negative_slope);
mn_node *mn_elu(mn_graph *g, mn_node *x, float alpha);
mn_node *mn_silu(mn_graph *g, mn_node *x);
mn_node *mn_reciprocal(mn_graph *g, mn_node *x);
mn_node *mn_rsqrt(mn_graph *g, mn_node *x);

/* Shape and indexing. slice: Python semantics (negative and out-of-range
 * bounds clamp), step > 0. */
mn_node *mn_slice(mn_graph *g, mn_node *x, int axis, int64_t start, int64_t stop, int64_t step);
mn_node *mn_concat(mn_graph *g, mn_node *const *xs, int n, int axis);
mn_node *mn_stack(mn_graph *g, mn_node *const *xs, int n, int axis);
/* split into n parts of the given sizes (must sum to the dim); out[n]. */
mn_status mn_split(mn_graph *g, mn_node *x, int axis, int n, const int64_t *sizes, mn_node **out);
/* torch.chunk: up to n parts of ceil(dim / n); returns the part count. */
int      mn_chunk(mn_graph *g, mn_node *x, int axis, int n, mn_node **out);
mn_node *mn_squeeze(mn_graph *g, mn_node *x, int axis);
mn_node *mn_squeeze_all(mn_graph *g, mn_node *x);
mn_node *mn_unsqueeze(mn_graph *g, mn_node *x, int axis);
mn_node *mn_index_select(mn_graph *g, mn_node *x, int axis, mn_node *index);  /* index: i32 [n] */
mn_node *mn_gather(mn_graph *g, mn_node *x, int axis, mn_node *index);        /* torch.gather */
/* F.embedding(indices i32 [...], weight [V, D]) -> [..., D] */
mn_node *mn_embedding_op(mn_graph *g, mn_node *indices, mn_node *weight);
/* cond (f32 or i32, nonzero = true) ? a : b, broadcasting */
mn_node *mn_where(mn_graph *g, mn_node *cond, mn_node *a, mn_node *b);

/* Reductions over one axis; max/min send the gradient to the first
 * extremal element only; argmax/argmin give i32 and no gradient. */
mn_node *mn_max(mn_graph *g, mn_node *x, int axis, bool keepdim);
mn_node *mn_min(mn_graph *g, mn_node *x, int axis, bool keepdim);
mn_node *mn_argmax(mn_graph *g, mn_node *x, int axis, bool keepdim);
mn_node *mn_argmin(mn_graph *g, mn_node *x, int axis, bool keepdim);
mn_node *mn_logsumexp(mn_graph *g, mn_node *x, int axis, bool keepdim);
/* var/std over axes (n = 0: all); correction 1 = unbiased (PyTorch's default), 0 = biased. */
mn_node *mn_var(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim, float correction);
mn_node *mn_std(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim, float correction);

/* Neural-network ops. softmax_masked: mask (may be NULL) is added and
 * broadcasts to x; causal sets key j > query i to -inf over the last two
 * dims (top-left aligned as PyTorch's is_causal); a fully masked row gives
 * zeros (softmax) / -inf (log_softmax). Both need axis = last. */
mn_node *mn_softmax_masked(mn_graph *g, mn_node *x, int axis, mn_node *mask, bool causal);
mn_node *mn_log_softmax_masked(mn_graph *g, mn_node *x, int axis, mn_node *mask, bool causal);
/* Self-attention over a packed projection (ops/attention_block.c): qkv
 * [B, T, 3E] holds q, k, v side by side, each [B, T, E] with `heads` heads
 * of E/heads; softmax(q k^T / sqrt(E/heads) (+ masks)) v per head
 * -> [B, T, E] with the heads side by side. key_padding: NULL or [B, T]
 * (f32 or i32), nonzero marking a key every query ignores. dropout: on
 * the probabilities (0: none; pass it only when training), masks drawn
 * from the counter-based RNG like mn_dropout's. */
mn_node *mn_self_attention(mn_graph *g, mn_node *qkv, int64_t heads, bool causal, mn_node *key_padding, float dropout);
/* layer_norm over the last ndims dims; weight/bias NULL for no affine
 * (bias needs weight). Builds a layer_norm_stats node (mean, rstd per row)
 * that the backward reuses. */
mn_node *mn_layer_norm_op(mn_graph *g, mn_node *x, int ndims, mn_node *weight, mn_node *bias, float eps);
mn_node *mn_layer_norm_stats(mn_graph *g, mn_node *x, int ndims, float eps);
/* Inverted dropout; the mask depends on the run seed (mn_graph_set_seed and
 * the executable's step), the node and the element index only. */
mn_node *mn_dropout(mn_graph *g, mn_node *x, float p, bool training);
/* x W^T + b with given weight/bias nodes (bias may be NULL); x [..., in] or [in]. */
mn_node *mn_linear_op(mn_graph *g, mn_node *x, mn_node *weight, mn_node *bias);
/* Sampling as graph ops (no gradient into the noise). */
mn_node *mn_randn(mn_graph *g, mn_shape shape, float mean, float std);
mn_node *mn_rand(mn_graph *g, mn_shape shape, float low, float high);

/* Losses (torch.nn.functional semantics). */
mn_node *mn_bce_with_logits(mn_graph *g, mn_node *logits, mn_node *targets, mn_node *pos_weight, mn_reduction r);
mn_node *mn_nll_loss(mn_graph *g, mn_node *log_probs, mn_node *targets, int ignore_index, mn_reduction r);
/* input = log-probabilities; reduction none/mean/sum/batchmean */
mn_node *mn_kl_div(mn_graph *g, mn_node *input, mn_node *target, mn_reduction r, bool log_target);
/* KL(N(mu, exp(logvar)) || N(0, 1)) per element, reduced */
mn_node *mn_gaussian_kl(mn_graph *g, mn_node *mu, mn_node *logvar, mn_reduction r);
mn_node *mn_smooth_l1(mn_graph *g, mn_node *x, mn_node *target, mn_reduction r, float beta);
mn_node *mn_huber(mn_graph *g, mn_node *x, mn_node *target, mn_reduction r, float delta);
/* Linear-chain CRF (ops/crf.c). emissions [T, B, K] f32, transitions
 * [K + 2, K] f32 (row i, column j: score of tag i followed by j; row K:
 * start scores, row K + 1: end scores), tags [T, B] i32, lengths [B] i32
 * in [0, T] (steps past a length are padding, never read). The loss per
 * sentence is log Z - score(tags) (forward algorithm); reduction none
 * gives [B], mean divides the sum by B. */
mn_node *mn_crf_nll(mn_graph *g, mn_node *emissions, mn_node *transitions, mn_node *tags, mn_node *lengths, mn_reduction r);
/* The highest-scoring tag path of each sentence under the same layout;
 * tags [T, B] gets -1 past each length. MN_ERR_INVALID for a bad length. */
mn_status mn_crf_viterbi(const float *emissions, int64_t T, int64_t B, int64_t K, const float *transitions, const int32_t *lengths,
                         int32_t *tags);

/* Utility. */
mn_node *mn_one_hot(mn_graph *g, mn_node *indices, int num_classes, mn_dtype dtype);
mn_node *mn_cast(mn_graph *g, mn_node *x, mn_dtype dtype);
mn_node *mn_fill(mn_graph *g, mn_shape shape, float value, mn_dtype dtype);
mn_node *mn_zeros_like(mn_graph *g, mn_node *x);
mn_node *mn_ones_like(mn_graph *g, mn_node *x);
mn_node *mn_arange(mn_graph *g, double start, double end, double step, mn_dtype dtype);

/* ---- layers (models/) ---- */
/* y = x W^T + b, W [out, in] named prefix.weight, b prefix.bias, PyTorch's
 * nn.Linear initialisation. */
mn_node *mn_linear(mn_graph *g, const char *prefix, mn_node *x, int64_t out_features, bool bias);
/* mn_linear over time-major x [T, B, in] with one product per block of
 * steps (mn_matmul_steps over [T/S, S B, in], S the most steps dividing T
 * within MN_STEP_BLOCK_ROWS rows): the same parameters and values up to
 * rounding (a block's rows never depend on the others'), so under a
 * memory budget the input gradient of each block can be made on its own,
 * late, with the same bits (a sequence model's head). */
mn_node *mn_linear_steps(mn_graph *g, const char *prefix, mn_node *x, int64_t out_features, bool bias);
/* Linear layers of the given widths with ReLU between them (none after the
 * last); layer k is named prefix.k. */
mn_node *mn_mlp(mn_graph *g, const char *prefix, mn_node *x, int nlayers, const int64_t *widths);
/* nn.Embedding: prefix.weight [num, dim] ~ N(0, 1); indices i32 [...] -> [..., dim] */
mn_node *mn_embedding(mn_graph *g, const char *prefix, mn_node *indices, int64_t num, int64_t dim);
/* nn.LayerNorm over the last dim: prefix.weight = 1, prefix.bias = 0, eps 1e-5 */
mn_node *mn_layer_norm(mn_graph *g, const char *prefix, mn_node *x, bool affine);

/* Recurrent networks with nn.RNN / nn.LSTM / nn.GRU's parameters (names,
 * shapes, gate order i,f,g,o and r,z,n; init U(-1/sqrt(H), 1/sqrt(H))),
 * unrolled over time. x: [T, B, input]; output [T, B, dirs * hidden];
 * h_n (and c_n for LSTM) [layers * dirs, B, hidden]. The input projection
 * of all steps is one matmul per layer and direction; each step adds one
 * matmul and elementwise ops. h0/c0 (optional) are [layers * dirs, B, H]
 * nodes, e.g. inputs of a one-step sampling graph (T = 1). */
typedef enum { MN_RNN_TANH, MN_RNN_RELU, MN_RNN_LSTM, MN_RNN_GRU } mn_rnn_mode;
typedef struct {
    mn_rnn_mode mode;
    int64_t hidden;
    int layers;              /* 0 means 1 */
    bool bidirectional;
    bool no_bias;            /* bias=False */
    float dropout;           /* between layers, when training */
    bool training;
    mn_node *h0, *c0;
    int first_layer;         /* parameter names count layers from here (one layer of a stack built by the caller) */
} mn_rnn_opts;
typedef struct { mn_node *output, *h_n, *c_n; } mn_rnn_out;
mn_rnn_out mn_rnn(mn_graph *g, const char *prefix, mn_node *x, mn_rnn_opts opts);

/* VAE: encoder fc1 (ReLU) -> fc_mu, fc_logvar; z = mu + exp(logvar / 2) eps;
 * decoder fc3 (ReLU) -> fc4 logits. eps: a [B, latent] node (NULL: a
 * normal op). loss = (BCE-with-logits(logits, x, sum) + KL(mu, logvar, sum)) / B.
 * dropout (when training) acts on the two hidden layers' outputs. */
typedef struct { int64_t input, hidden, latent; float dropout; bool training; } mn_vae_opts;
typedef struct { mn_node *logits, *mu, *logvar, *z, *loss; } mn_vae_out;
mn_vae_out mn_vae(mn_graph *g, const char *prefix, mn_node *x, mn_node *eps, mn_vae_opts opts);
/* The decoder alone: z [N, latent] -> logits [N, input] (sampling from the prior). */
mn_node *mn_vae_decode(mn_graph *g, const char *prefix, mn_node *z, mn_vae_opts opts);

/* BiLSTM-CRF sequence tagger (Lample et al. 2016) with a character CNN per
 * word (Ma and Hovy 2016), models/tagger.c. words [T, B] i32 (0 padding);
 * chars [T * B, W] i32 character ids of each word (0 padding), or NULL when
 * char_filters is 0; tags [T, B] i32 (-100 on padding); lengths [B] i32.
 * Word embedding (prefix.words.weight [words, word_dim]) and the max over
 * positions of tanh(conv(char embeddings, width 3)) (prefix.chars.weight,
 * prefix.char_conv.weight [char_filters, 3 * char_dim], .bias), joined,
 * dropout, a bidirectional LSTM of `layers` layers (prefix.lstm, PyTorch's
 * names; dropout between layers; every layer's backward direction starts
 * at each sentence's last token, as over a packed sequence), dropout,
 * a linear layer to K emission scores (prefix.out). With crf: the loss is
 * the CRF's mean negative log-likelihood per sentence (transitions
 * prefix.crf.transitions [K + 2, K] ~ U(-0.1, 0.1), plus `constraints`, a
 * constant [K + 2, K] of 0 or large negative scores for forbidden moves,
 * when given); without: mean token cross-entropy. */
typedef struct {
    int64_t words, chars, tags;        /* vocabulary sizes and K */
    int64_t word_dim, char_dim, char_filters, hidden;
    int layers;                        /* 0 means 1 */
    float dropout;
    bool training, crf;
    const float *constraints;          /* [K + 2, K] or NULL */
} mn_tagger_opts;
typedef struct {
    mn_node *loss;
    mn_node *emissions;                /* [T, B, K] */
    mn_node *transitions;              /* [K + 2, K] with the constraints added; NULL without crf */
} mn_tagger_out;
mn_tagger_out mn_bilstm_crf(mn_graph *g, const char *prefix, mn_node *words, mn_node *chars, mn_node *tags, mn_node *lengths,
                            mn_tagger_opts opts);

/* Transformer with nn.MultiheadAttention's layout (prefix.in_proj_weight
 * [3E, E], in_proj_bias, out_proj.weight, out_proj.bias). x: [B, T, E].
 * key_padding: optional [B, T] (nonzero = padding, f32 or i32). */
typedef struct {
    int64_t heads;
    bool causal;
    mn_node *key_padding;
    float dropout;
    bool training;
    /* Cross-attention (models/attention.c): key [B, Tk, kdim] and value
     * [B, Tk, vdim] (value NULL: the key); kdim/vdim 0 mean E, and any
     * other size gives q_proj_weight, k_proj_weight, v_proj_weight as
     * nn.MultiheadAttention. attn_mask: additive, broadcast to [B, H, Tq, Tk]. */
    mn_node *key, *value;
    int64_t kdim, vdim;
    mn_node *attn_mask;
} mn_attn_opts;
mn_node *mn_multihead_attention(mn_graph *g, const char *prefix, mn_node *x, mn_attn_opts opts);

typedef struct {
    int64_t d_model, heads, ff;
    bool post_ln;            /* default pre-LN */
    bool relu;               /* default GELU */
    bool causal;
    mn_node *key_padding;
    float dropout;
    bool training;
} mn_block_opts;
/* One encoder layer as nn.TransformerEncoderLayer: prefix.self_attn,
 * prefix.linear1, prefix.linear2, prefix.norm1, prefix.norm2. */
mn_node *mn_transformer_block(mn_graph *g, const char *prefix, mn_node *x, mn_block_opts opts);

typedef struct {
    int64_t vocab, d_model, heads, layers, ff, max_len;
    bool post_ln, relu, sinusoidal, tie_weights;
    float dropout;
    bool training;
} mn_lm_opts;
/* Decoder-only LM: tokens i32 [B, T] -> logits [B, T, vocab]; causal blocks
 * prefix.blocks.k, learned (prefix.pos_emb) or sinusoidal positions, final
 * prefix.ln_f, head prefix.head (or tied to prefix.tok_emb). */
mn_node *mn_transformer_lm(mn_graph *g, const char *prefix, mn_node *tokens, mn_lm_opts opts);
/* One position of mn_transformer_lm for N sequences, with a key/value
 * cache (models/lm_step.c): token i32 [N, 1] at position pos (i32 [1],
 * below max_len); self_k/self_v[l] [N, heads, max_len, d_model/heads] hold
 * the keys and values of positions 0..pos-1 in slots 0..pos-1 (later slots
 * are masked). Sets new_k/new_v[l] [N, heads, 1, d_model/heads] (the
 * caller stores them in slot pos) and returns logits [N, 1, vocab]: what
 * mn_transformer_lm gives at position pos for the same tokens and
 * parameters. Arrays hold `layers` entries, owned by the caller. */
typedef struct {
    mn_node *token, *pos;
    mn_node **self_k, **self_v;
    mn_node **new_k, **new_v;
} mn_lm_step;
mn_node *mn_transformer_lm_step(mn_graph *g, const char *prefix, mn_lm_step *step, mn_lm_opts opts);
/* Encoder stack for tagging/classification: x [B, T, E] -> [B, T, E]
 * (prefix.layers.k, final prefix.norm when pre-LN). */
mn_node *mn_transformer_encoder(mn_graph *g, const char *prefix, mn_node *x, int layers, mn_block_opts opts);

/* ---- sequence to sequence (models/attention.c, models/seq2seq.c) ---- */
/* Attention in pieces, for decoders that cache keys and values (E = the
 * query's embedding size): mn_attention_query: [B, Tq, E] -> [B, H, Tq, E/H];
 * mn_attention_key_value: key [B, Tk, kdim], value (NULL: key) [B, Tk, vdim]
 * -> k, v [B, H, Tk, E/H]; mn_attention_context: softmax(q k^T / sqrt(E/H)
 * + opts' masks) v through prefix.out_proj -> [B, Tq, E]. mn_attention is
 * the three in a row over opts.key/value (NULL: self-attention). */
mn_node  *mn_attention_query(mn_graph *g, const char *prefix, mn_node *x, int64_t E, mn_attn_opts opts);
mn_status mn_attention_key_value(mn_graph *g, const char *prefix, mn_node *key, mn_node *value, int64_t E, mn_attn_opts opts,
                                 mn_node **k, mn_node **v);
mn_node  *mn_attention_context(mn_graph *g, const char *prefix, mn_node *q, mn_node *k, mn_node *v, int64_t E, mn_attn_opts opts);
mn_node  *mn_attention(mn_graph *g, const char *prefix, mn_node *query, mn_attn_opts opts);

/* nn.TransformerDecoderLayer: prefix.self_attn (opts.causal, opts.key_padding
 * = target padding), prefix.multihead_attn over memory [B, S, E]
 * (memory_pad [B, S], nonzero = padding, may be NULL), linear1, linear2,
 * norm1..3; pre-LN unless opts.post_ln. */
mn_node *mn_transformer_decoder_layer(mn_graph *g, const char *prefix, mn_node *x, mn_node *memory, mn_node *memory_pad,
                                      mn_block_opts opts);
typedef struct {
    int64_t d_model, heads, enc_layers, dec_layers, ff;
    bool post_ln;            /* default pre-LN (norm_first) */
    bool relu;               /* default GELU */
    float dropout;
    bool training;
} mn_tf_opts;
/* nn.Transformer, batch first: prefix.encoder.layers.k + prefix.encoder.norm,
 * prefix.decoder.layers.k + prefix.decoder.norm (both final norms exist for
 * pre- and post-LN, as PyTorch builds them). The decoder is causal; pads
 * are [B, S] / [B, T] (nonzero = padding, NULL for none); src_pad also
 * masks the memory. */
mn_node *mn_transformer_encode(mn_graph *g, const char *prefix, mn_node *src, mn_node *src_pad, mn_tf_opts opts);
mn_node *mn_transformer_decode(mn_graph *g, const char *prefix, mn_node *tgt, mn_node *memory, mn_node *tgt_pad,
                               mn_node *memory_pad, mn_tf_opts opts);
mn_node *mn_transformer(mn_graph *g, const char *prefix, mn_node *src, mn_node *tgt, mn_node *src_pad, mn_node *tgt_pad,
                        mn_tf_opts opts);

typedef struct {
    int64_t src_vocab, tgt_vocab, max_len;
    mn_tf_opts tf;
    bool tie_weights;        /* generator weight = prefix.tgt_emb.weight (+ prefix.generator.bias) */
    bool share_embeddings;   /* the source reads prefix.tgt_emb too (joint vocabulary) */
} mn_s2s_opts;
/* Translation model: tokens i32 [B, S] / [B, T] embedded (prefix.src_emb,
 * prefix.tgt_emb) times sqrt(d_model) plus sinusoidal positions, then
 * prefix.transformer (mn_transformer) and prefix.generator -> logits
 * [B, T, tgt_vocab]. mn_seq2seq_encode gives the memory [B, S, E]. */
mn_node *mn_seq2seq(mn_graph *g, const char *prefix, mn_node *src, mn_node *tgt, mn_node *src_pad, mn_node *tgt_pad,
                    mn_s2s_opts opts);
mn_node *mn_seq2seq_encode(mn_graph *g, const char *prefix, mn_node *src, mn_node *src_pad, mn_s2s_opts opts);
/* The cross-attention keys and values of every decoder layer for a memory
 * (k[l], v[l]: [B, H, S, E/H]), computed once per sentence. */
mn_status mn_seq2seq_memory_kv(mn_graph *g, const char *prefix, mn_node *memory, mn_s2s_opts opts, mn_node **k, mn_node **v);
/* One decoder position for N hypotheses: token i32 [N, 1] at position pos
 * (i32 [1]); self_k/self_v[l] [N, H, L, E/H] hold the keys and values of
 * positions 0..pos-1 in slots 0..pos-1 (later slots are masked); mem_k/
 * mem_v[l] from mn_seq2seq_memory_kv, mem_pad [N, S]. Sets new_k/new_v[l]
 * [N, H, 1, E/H] (the caller stores them in slot pos) and returns logits
 * [N, 1, tgt_vocab]. Arrays hold dec_layers entries, owned by the caller. */
typedef struct {
    mn_node *token, *pos;
    mn_node **self_k, **self_v, **mem_k, **mem_v;
    mn_node *mem_pad;
    mn_node **new_k, **new_v;
} mn_s2s_step;
mn_node *mn_seq2seq_step(mn_graph *g, const char *prefix, mn_s2s_step *step, mn_s2s_opts opts);

/* One step of an LSTM decoder with attention (models/rnn_attention.c):
 * nn.LSTMCell prefix.cell (input [y; feed], Luong's input feeding; state
 * h, c [B, hidden]), scores of the new h against the encoder outputs enc
 * [B, S, He] -- additive (Bahdanau: prefix.query.weight, prefix.key.weight
 * + bias, prefix.v.weight) or multiplicative (Luong's general: h^T
 * prefix.key.weight e) -- masked where enc_pad [B, S] is nonzero, the
 * context, and att = tanh(prefix.out.weight [ctx; h]) [B, hidden], the next
 * step's feed. keys: mn_rnn_attention_keys of enc, computed once per
 * sentence (NULL: computed here). */
typedef enum { MN_SCORE_ADDITIVE, MN_SCORE_GENERAL } mn_rnn_score;
typedef struct { int64_t hidden; mn_rnn_score score; } mn_rnn_attn_opts;
typedef struct { mn_node *att, *h, *c, *weights; } mn_rnn_attn_step;   /* weights [B, S] */
mn_node *mn_rnn_attention_keys(mn_graph *g, const char *prefix, mn_node *enc, int64_t hidden, mn_rnn_score score);
mn_rnn_attn_step mn_rnn_attention_step(mn_graph *g, const char *prefix, mn_node *y, mn_node *feed, mn_node *h, mn_node *c,
                                       mn_node *enc, mn_node *keys, mn_node *enc_pad, mn_rnn_attn_opts opts);

/* LSTM encoder-decoder with attention: prefix.src_emb / prefix.tgt_emb
 * (share_embeddings: tgt_emb for both), a bidirectional nn.LSTM
 * prefix.encoder (enc_hidden per direction), the decoder step above as
 * prefix.decoder (zero initial state and feed) and prefix.generator
 * (nn.Linear hidden -> tgt_vocab). Padding is not packed: the reverse
 * direction reads a sentence's padding first, as nn.LSTM on a padded batch.
 * mn_rnn_seq2seq: src [B, S], tgt [B, T] i32 -> logits [B, T, tgt_vocab];
 * the encoder and one step (token i32 [N]) for incremental decoding. */
typedef struct {
    int64_t src_vocab, tgt_vocab, embed, enc_hidden, hidden;
    mn_rnn_score score;
    bool share_embeddings;
    float dropout;
    bool training;
} mn_rnn_s2s_opts;
typedef struct { mn_node *enc, *keys; } mn_rnn_memory;             /* [B, S, 2 enc_hidden], [B, S, hidden] */
typedef struct { mn_node *logits, *h, *c, *feed; } mn_rnn_s2s_step;
mn_rnn_memory   mn_rnn_seq2seq_encode(mn_graph *g, const char *prefix, mn_node *src, mn_rnn_s2s_opts opts);
mn_rnn_s2s_step mn_rnn_seq2seq_step(mn_graph *g, const char *prefix, mn_node *token, mn_node *h, mn_node *c, mn_node *feed,
                                    mn_rnn_memory memory, mn_node *src_pad, mn_rnn_s2s_opts opts);
mn_node        *mn_rnn_seq2seq(mn_graph *g, const char *prefix, mn_node *src, mn_node *tgt, mn_node *src_pad, mn_rnn_s2s_opts opts);

/* Gradients as graph nodes: grads[i] = d y / d wrt[i] for a f32 scalar y
 * and any f32 nodes of its graph (parameters, inputs, intermediate values),
 * built into g as ordinary nodes, so they can be outputs, enter a loss
 * (gradient penalties) or be differentiated again (Hessian-vector
 * products). A node y does not depend on gets zeros. Errors stick to g. */
mn_status mn_grad(mn_graph *g, mn_node *y, mn_node *const *wrt, int n, mn_node **grads);

/* ---- compile and run ---- */
typedef struct {
    int threads;                  /* 0: mn_get_num_threads() of the compiling thread */
    const mn_node *const *outputs;/* extra values to keep readable after run */
    int noutputs;
    bool no_backward;             /* forward only even when a loss is given */
    bool serial;                  /* debugging: one step at a time, one thread */
    bool verify;                  /* check the memory plan after planning (a compile error if unsafe) */
    bool no_fuse;                 /* keep every elementwise op a step of its own */
    /* Pin the run's threads one per CPU (the calling thread on the first),
     * once per calling thread, when `threads` equals the number of CPUs the
     * process may use. Off by default: the program decides (docs/api.md). */
    bool bind_threads;
    int blas_threads;             /* OpenBLAS's team for one big GEMM; 0: `threads` */
    /* After each level, check every step's f32 output: the first one that is
     * not finite stops the run with MN_ERR_NONFINITE and a message naming
     * the run, the op and the node (slower: a debugging aid). */
    bool detect_anomaly;
    /* Bytes the activation arena may take (0: no limit). Over it, the
     * compiler drops forward values and recomputes them in the backward
     * pass (segment checkpointing, fewest added FLOPs among plans that fit);
     * gradients stay bit-identical. A budget no plan meets is a compile
     * error naming the smallest arena reached. */
    int64_t memory_budget;
} mn_compile_opts;

/* Differentiates `loss` (a f32 scalar, or NULL for a forward-only graph)
 * with respect to every parameter it depends on, then eliminates dead
 * nodes, schedules and plans memory. NULL on failure: see mn_graph_errmsg. */
mn_exec  *mn_compile(mn_graph *g, mn_node *loss, const mn_compile_opts *opts);
void      mn_exec_free(mn_exec *ex);
/* Copies t (dtype and shape must match the input) into the input `name`. */
mn_status mn_exec_feed(mn_exec *ex, const char *name, const mn_tensor *t);
mn_status mn_exec_feed_data(mn_exec *ex, const char *name, const void *data, size_t bytes);
/* The inputs the executable reads, in graph order; the tensor is its
 * buffer and may also be filled in place. */
int              mn_exec_input_count(const mn_exec *ex);
const char      *mn_exec_input_name(const mn_exec *ex, int i);
const mn_tensor *mn_exec_input(const mn_exec *ex, int i);
/* Runs forward (and backward: parameter gradients are added to the store's
 * gradients, so they accumulate until mn_params_zero_grad). */
mn_status mn_exec_run(mn_exec *ex);
float     mn_exec_loss(const mn_exec *ex);
/* Runs so far. Random ops (dropout, sampling) draw from the graph seed and
 * this counter, so each run gets fresh numbers and a resumed run that sets
 * the step continues exactly. */
void      mn_exec_set_step(mn_exec *ex, uint64_t step);
uint64_t  mn_exec_get_step(const mn_exec *ex);
/* A view of a node's value after the last run (loss, inputs, outputs). */
const mn_tensor *mn_exec_value(const mn_exec *ex, const mn_node *n);
const char *mn_exec_errmsg(const mn_exec *ex);
/* A level hook (data parallelism: mnemo_dist.h): during mn_exec_run, fn(ctx, L)
 * runs on the calling thread after level L of the schedule, once the
 * gradients that level completes are in the store, and once more with
 * L = mn_exec_level_count(ex) at the end. A nonzero status stops the run,
 * which then fails and rolls back. fn NULL removes it. mn_exec_grad_level:
 * the L after which a run has added all it adds to parameter p's gradient
 * (the same on every process running the same graph), -1 if it adds none. */
typedef mn_status (*mn_level_fn)(void *ctx, int level);
mn_status mn_exec_set_level_hook(mn_exec *ex, mn_level_fn fn, void *ctx);
int       mn_exec_level_count(const mn_exec *ex);
int       mn_exec_grad_level(const mn_exec *ex, int param);

typedef struct {
    int     nodes_total;     /* nodes in the graph, forward + backward */
    int     steps;           /* scheduled kernel steps */
    int     backward_steps;
    int64_t naive_bytes;     /* every value its own buffer */
    int64_t lower_bound_bytes;
    int64_t arena_bytes;
    double  flops;           /* per run, from the registry's cost estimates */
    int     levels;          /* parallel schedule depth: steps of a level may run at once */
    int     inplace;         /* outputs written over a dying input */
    int     fused_groups;    /* fused elementwise steps ... */
    int     fused_nodes;     /* ... and the op nodes they run */
    int     cse;             /* op nodes dropped as duplicates of an identical node */
    int     placed;          /* values written straight into a concat's bytes (or concats made views) */
    int     direct_grads;    /* parameter gradients their step adds straight into the store (GEMM beta = 1) */
} mn_exec_stats;
/* Re-checks that no two values sharing arena bytes can be live at once
 * under the parallel schedule; MN_ERR_INVALID with the two names if not. */
mn_status mn_exec_verify(const mn_exec *ex);
mn_exec_stats mn_exec_get_stats(const mn_exec *ex);
/* Every compiler pass's counters by name, "<pass>.<counter>" (e.g.
 * "cse.merged_nodes", "plan.arena_bytes"), then each pass's time
 * "<pass>.ms", in pipeline order. The list grows with the compiler without
 * breaking callers; mn_exec_stat gives NAN for an unknown name. */
int         mn_exec_stat_count(const mn_exec *ex);
const char *mn_exec_stat_name(const mn_exec *ex, int i);
double      mn_exec_stat_value(const mn_exec *ex, int i);
double      mn_exec_stat(const mn_exec *ex, const char *name);
/* Profiling: mn_exec_set_profiling(ex, true) clears the counters and times
 * every kernel of the following runs (a few clock reads per step). */
typedef struct { const char *op; int calls; double ms; } mn_op_time;   /* per run */
typedef struct {
    int    runs, ops;        /* runs timed; distinct ops (rows available) */
    double wall_ms;          /* per run, mn_exec_run as a whole */
    double kernel_ms;        /* critical path through kernels: per level, big steps
                                plus small steps' time spread over the threads */
    double sync_ms;          /* level time beyond that: barriers, imbalance, dispatch */
    double sinks_ms;         /* adding parameter gradients into the store */
} mn_profile_summary;
mn_status mn_exec_set_profiling(mn_exec *ex, bool on);
/* Fills up to max rows, slowest op first (ms = summed kernel time per run;
 * small steps of one level overlap); returns the count written. */
int mn_exec_profile(const mn_exec *ex, mn_op_time *rows, int max, mn_profile_summary *summary);
/* One tab-separated line per step in schedule order, after a header: level,
 * step, op ("fused" for a fused group), node name, output shape, big (runs
 * with every thread), split (its level's big steps side by side), ms per run
 * of the step and of its level. scripts/profile-compare.py compares two. */
mn_status mn_exec_profile_steps(const mn_exec *ex, FILE *f);
/* Graphviz DOT of the compiled graph: forward and backward nodes, op names, shapes. */
mn_status mn_exec_write_dot(const mn_exec *ex, FILE *f);

/* ---- one model at several batch sizes (graph/rebatch.c) ----
 * Shapes are static: evaluating N items in batches of B needs a second
 * executable for the N % B left over. A model function builds the graph of
 * `batch` items; mn_rebatch_get compiles it for each batch size it is asked
 * for (once: later calls return the same executable), every graph on the
 * store given to mn_rebatch_new, so all of them share the parameters. The
 * compile options apply to every batch size (outputs come from the model
 * function). A graph error comes back as NULL with mn_errmsg() naming the
 * batch size. */
enum { MN_MODEL_MAX_OUTPUTS = 8 };
typedef struct {
    mn_node *loss;                                   /* differentiated unless opts.no_backward; NULL: forward only */
    const mn_node *outputs[MN_MODEL_MAX_OUTPUTS];    /* kept readable after a run (mn_exec_value) */
    int noutputs;
} mn_model_nodes;
typedef mn_model_nodes (*mn_model_fn)(mn_graph *g, int64_t batch, void *ctx);
typedef struct mn_rebatch mn_rebatch;
mn_rebatch *mn_rebatch_new(mn_params *P, mn_model_fn build, void *ctx, const mn_compile_opts *opts);
/* The executable for `batch` items; *nodes (if not NULL) gets its nodes. */
mn_exec    *mn_rebatch_get(mn_rebatch *r, int64_t batch, const mn_model_nodes **nodes);
int         mn_rebatch_count(const mn_rebatch *r);  /* batch sizes compiled so far */
void        mn_rebatch_free(mn_rebatch *r);

/* ---- optimizers (optim/) ----
 * An optimizer updates every trainable parameter of a store (frozen ones
 * excepted: mn_params_freeze) from its
 * gradient. Its state lives in the store as tensors named
 * optim.<param>.<state> (e.g. optim.fc.weight.exp_avg, optim.fc.weight.step),
 * so a checkpoint holds it and a resumed run continues exactly. Formulas and
 * defaults are torch.optim's. A step allocates nothing once every parameter
 * has its state (the first step creates it). */
typedef struct mn_optim mn_optim;

/* One optimizer algorithm: a hyper-parameter struct that starts with
 * `float lr`, named state tensors, and an elementwise step over [0, n)
 * (the framework splits tensors over threads). See docs/optimizers.md. */
typedef struct mn_optim_kind {
    const char *name;
    size_t hyper_size;
    int nstate;                                   /* at most 4 */
    const char *state_names[4];
    mn_status (*check)(const void *hyper);        /* reject bad values via mn_set_error */
    /* bit k set: state k is used with these hyper-parameters (NULL: all);
     * unused states are neither stored nor passed (NULL pointer) */
    unsigned (*used)(const void *hyper);
    /* state initial values (NULL: zeros) */
    void (*init)(const void *hyper, float *const *state, int64_t n);
    /* t: this parameter's step count, 1 on the first step */
    void (*step)(const void *hyper, int64_t t, float *p, const float *g, float *const *state, int64_t n);
    /* fills the fields left 0 whose 0 is not a usable value with the
     * PyTorch default (NULL: none); runs before check */
    void (*defaults)(void *hyper);
} mn_optim_kind;

/* Options structs: a field left 0 takes PyTorch's default wherever 0 is
 * not a value people use, so `(mn_adam_opts){ .lr = 1e-3f }` is Adam's
 * defaults. Fields where 0 means something (weight_decay, momentum,
 * dampening, lr_decay, initial_accumulator_value) stay 0. A defaulted
 * float field set to MN_ZERO (-0.0f) is a true 0 (e.g. beta1 = MN_ZERO). */
#define MN_ZERO (-0.0f)
/* For a kind's `defaults`: *field = def if *field is +0 (not MN_ZERO). */
void mn_opt_default(float *field, float def);

typedef struct { float lr, momentum, dampening, weight_decay; bool nesterov; } mn_sgd_opts;
typedef struct { float lr, beta1, beta2, eps, weight_decay; bool amsgrad; } mn_adam_opts;      /* adam, adamw */
typedef struct { float lr, alpha, eps, weight_decay, momentum; bool centered; } mn_rmsprop_opts;
typedef struct { float lr, lr_decay, weight_decay, initial_accumulator_value, eps; } mn_adagrad_opts;
typedef struct { float lr, beta1, beta2, weight_decay; } mn_lion_opts;
#define MN_SGD_DEFAULTS     ((mn_sgd_opts){ .lr = 1e-3f })
#define MN_ADAM_DEFAULTS    ((mn_adam_opts){ .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f })
#define MN_ADAMW_DEFAULTS   ((mn_adam_opts){ .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-2f })
#define MN_RMSPROP_DEFAULTS ((mn_rmsprop_opts){ .lr = 1e-2f, .alpha = 0.99f, .eps = 1e-8f })
#define MN_ADAGRAD_DEFAULTS ((mn_adagrad_opts){ .lr = 1e-2f, .eps = 1e-10f })
#define MN_LION_DEFAULTS    ((mn_lion_opts){ .lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.99f })

extern const mn_optim_kind mn_optim_sgd, mn_optim_adam, mn_optim_adamw, mn_optim_rmsprop,
    mn_optim_adagrad, mn_optim_lion;
/* Built-in kinds by name ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lion"). */
const mn_optim_kind *mn_optim_kind_find(const char *name);

/* hyper: the kind's struct (NULL: its defaults), copied. NULL on bad values. */
mn_optim *mn_optim_new(mn_params *P, const mn_optim_kind *kind, const void *hyper);
mn_optim *mn_sgd(mn_params *P, mn_sgd_opts o);
mn_optim *mn_adam(mn_params *P, mn_adam_opts o);
mn_optim *mn_adamw(mn_params *P, mn_adam_opts o);
mn_optim *mn_rmsprop(mn_params *P, mn_rmsprop_opts o);
mn_optim *mn_adagrad(mn_params *P, mn_adagrad_opts o);
mn_optim *mn_lion(mn_params *P, mn_lion_opts o);
void      mn_optim_free(mn_optim *o);
/* A parameter group: parameters whose name matches one of the
 * comma-separated glob patterns (fnmatch: "*.bias,*norm*.weight") take
 * these hyper-parameters. The first matching group wins; the rest use the
 * optimizer's own. Returns the group index (>= 1) or -1. */
int       mn_optim_add_group(mn_optim *o, const char *patterns, const void *hyper);
/* The same group with the default group's hyper-parameters but lr. */
int       mn_optim_add_group_lr(mn_optim *o, const char *patterns, float lr);
int       mn_optim_group_of(mn_optim *o, const char *param);
int       mn_optim_group_count(const mn_optim *o);            /* default group included */
float     mn_optim_get_lr(const mn_optim *o, int group);      /* group 0: the default */
void      mn_optim_set_lr(mn_optim *o, int group, float lr);  /* group -1: every group */
/* Applies one update from the gradients (with accumulation n, acts on every
 * n-th call, on the mean of the n gradients). */
mn_status mn_optim_step(mn_optim *o);
/* Zeroes the gradients of the optimizer's parameters (with accumulation,
 * only after a step that updated). */
void      mn_optim_zero_grad(mn_optim *o);
mn_status mn_optim_set_accumulation(mn_optim *o, int n);
int64_t   mn_optim_updates(const mn_optim *o);                /* updates applied so far */
void      mn_optim_set_threads(mn_optim *o, int threads);

/* Gradient clipping over every trainable parameter of the store, as
 * torch.nn.utils: clip_grad_norm_ returns the total norm before clipping
 * (norm_type 2, 1 or INFINITY); coefficient max_norm / (norm + 1e-6). */
float     mn_clip_grad_norm(mn_params *P, float max_norm, float norm_type);
void      mn_clip_grad_value(mn_params *P, float clip_value);

/* ---- learning-rate schedules (torch.optim.lr_scheduler) ----
 * A schedule owns nothing but its counter: mn_sched_step sets the lr of
 * every group of the optimizer from each group's base lr (the lr when the
 * schedule was made), as the PyTorch scheduler of the same name. */
typedef struct mn_sched mn_sched;
typedef enum {
    MN_SCHED_CONSTANT,      /* ConstantLR(factor, total_iters) */
    MN_SCHED_STEP,          /* StepLR(step_size, gamma) */
    MN_SCHED_MULTISTEP,     /* MultiStepLR(milestones, gamma) */
    MN_SCHED_EXPONENTIAL,   /* ExponentialLR(gamma) */
    MN_SCHED_COSINE,        /* CosineAnnealingLR(T_max, eta_min) */
    MN_SCHED_LINEAR,        /* LinearLR(start_factor, end_factor, total_iters) */
    MN_SCHED_WARMUP_COSINE, /* SequentialLR(LinearLR(start_factor, 1, warmup), CosineAnnealingLR(T_max - warmup, eta_min)) */
    MN_SCHED_WARMUP_LINEAR, /* SequentialLR(LinearLR(start_factor, 1, warmup), LinearLR(1, end_factor, total_iters - warmup)) */
    MN_SCHED_PLATEAU,       /* ReduceLROnPlateau(mode min, factor, patience, threshold rel, cooldown, min_lr) */
} mn_sched_kind;
typedef struct {
    mn_sched_kind kind;
    float factor, gamma, eta_min, start_factor, end_factor, threshold, min_lr;
    int64_t step_size, total_iters, t_max, warmup, patience, cooldown;
    int nmilestones;
    int64_t milestones[16];
} mn_sched_opts;
/* Defaults of each PyTorch class. mn_sched_new fills the fields left 0
 * whose 0 is not usable (gamma, start_factor, factor; LinearLR's
 * total_iters) the same way; MN_ZERO sets a defaulted float to 0. */
mn_sched_opts mn_sched_defaults(mn_sched_kind kind);
mn_sched *mn_sched_new(mn_optim *o, mn_sched_opts opts);
void      mn_sched_free(mn_sched *s);
mn_status mn_sched_step(mn_sched *s);                       /* after each epoch (or step) */
mn_status mn_sched_step_metric(mn_sched *s, float metric);  /* plateau: the monitored value */
int64_t   mn_sched_epoch(const mn_sched *s);
/* lr of group 0 after `epoch` steps, without changing anything (not for plateau). */
float     mn_sched_lr_at(const mn_sched *s, int64_t epoch);
/* Restores the counter (and plateau state) of a resumed run. */
void      mn_sched_set_epoch(mn_sched *s, int64_t epoch);

/* ---- operator registry (read-only view; records live in ops/) ---- */
typedef struct mn_op_def mn_op_def;
int         mn_op_count(void);
const mn_op_def *mn_op_at(int id);
const mn_op_def *mn_op_find(const char *name);
const char *mn_op_name(const mn_op_def *op);
int         mn_op_arity(const mn_op_def *op);          /* -1: variadic */
bool        mn_op_differentiable(const mn_op_def *op);
const char *mn_op_doc(const mn_op_def *op);
unsigned    mn_op_flags(const mn_op_def *op);
/* The plugin that registered the op, NULL for built-ins. */
const char *mn_op_plugin(const mn_op_def *op);

/* ---- op plugins (include/mnemo_plugin.h for writing one) ----
 * Loads a shared object exporting mn_plugin_entry; its ops become
 * "<plugin>.<op>" in the registry. On any failure (missing file, not a
 * shared object, no entry point, ABI or fingerprint mismatch, duplicate
 * names, init error) the registry is left as it was and the library
 * closed; mn_errmsg() names the plugin. Load before building graphs. */
mn_status   mn_plugin_load(const char *path);
int         mn_plugin_count(void);
const char *mn_plugin_name(int i);
const char *mn_plugin_path(int i);
const char *mn_plugin_version(int i);
/* Unregisters every plugin op and closes the libraries (no graph may use them). */
void        mn_plugins_unload(void);

/* ---- ONNX import and export (onnx/; docs/onnx.md) ----
 * Built when protobuf-c and onnx.proto are present (-Donnx=auto);
 * otherwise every call fails with MN_ERR_UNSUPPORTED. */
bool mn_onnx_available(void);
/* An input fixed at import: with `constant` its value becomes a constant
 * of the graph (shapes, axes, token ids known in advance); otherwise only
 * its shape is taken, which fixes the input's dynamic dims. A NULL name
 * binds the model's first graph input (not an initializer). */
typedef struct { const char *name; const mn_tensor *value; bool constant; } mn_onnx_bind;
typedef struct {
    bool constants;              /* float initializers become constants, not trainable parameters */
    const mn_onnx_bind *binds;
    int nbinds;
} mn_onnx_opts;
typedef struct mn_onnx mn_onnx;
/* Builds the model's graph into g: inputs (mn_input, named as in the
 * model), initializers as parameters of the store under their ONNX names
 * (an existing parameter of the same shape keeps its value), nodes through
 * the registry by the mapping table. NULL on failure with the message on
 * the graph (mn_graph_errmsg) naming the node and op, the dtype, the
 * dynamic dim or what is malformed. opts may be NULL. */
mn_onnx    *mn_onnx_import(mn_graph *g, const char *path, const mn_onnx_opts *opts);
mn_onnx    *mn_onnx_import_buffer(mn_graph *g, const void *data, size_t len, const mn_onnx_opts *opts);
void        mn_onnx_free(mn_onnx *m);
int         mn_onnx_opset(const mn_onnx *m);
/* The model's graph inputs that are not initializers; the node is NULL for
 * an input bound as a constant. */
int         mn_onnx_input_count(const mn_onnx *m);
const char *mn_onnx_input_name(const mn_onnx *m, int i);
mn_node    *mn_onnx_input(const mn_onnx *m, int i);
int         mn_onnx_output_count(const mn_onnx *m);
const char *mn_onnx_output_name(const mn_onnx *m, int i);
mn_node    *mn_onnx_output(const mn_onnx *m, int i);
/* One TensorProto file (the test data's input_0.pb): f32 for float, i32
 * for int32/int64/bool. NULL on error (mn_errmsg). name (may be NULL)
 * receives the tensor's name. */
mn_tensor  *mn_onnx_load_tensor(const char *path, char *name, size_t namelen);
/* The mapping table: ONNX op i, the mnemo ops it becomes, what is not supported (or ""). */
int         mn_onnx_op_count(void);
mn_status   mn_onnx_op_info(int i, const char **onnx_op, const char **mnemo_ops, const char **note);
/* Writes the forward graph that computes `outputs` (inputs, parameters
 * with their values as initializers, constants, ops) as an ONNX model
 * (opset 17). MN_ERR_UNSUPPORTED names an op without an ONNX form. */
mn_status   mn_onnx_export(mn_graph *g, mn_node *const *outputs, int n, const char *path);

#ifdef __cplusplus
}
#endif
#endif
