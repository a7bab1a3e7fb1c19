/* mnemo_plugin.h: the operator record and the plugin ABI. Built-in ops and
 * plugin ops are the same record (struct mn_op_def); a plugin is a shared
 * object exporting one function, mn_plugin_entry, that describes it.
 *
 * ABI rules:
 *  - MN_PLUGIN_ABI_MAJOR changes when anything here changes incompatibly
 *    (a field moves, a type changes size or signature); the host refuses
 *    other majors, naming both versions.
 *  - MN_PLUGIN_ABI_MINOR grows when something is appended: a field at the
 *    end of mn_op_traits or of mn_plugin_host, a new flag. The host accepts
 *    plugins of its minor or older, and refuses a newer minor (the plugin
 *    may call what the host lacks).
 *  - struct mn_op_def starts with its size and ABI version (MN_OP_RECORD
 *    fills both). The core fields before `traits` never move; the compiler
 *    hints in `traits` only grow at the end, and the host reads a hint only
 *    when the record's size covers it (an older plugin's missing hints are
 *    NULL). The _Static_asserts below pin sizes and offsets on LP64.
 *  - MN_PLUGIN_FINGERPRINT hashes the sizes of the contexts a plugin and
 *    the host exchange; both must agree (mismatched compilers/ABIs). It
 *    leaves out the op record, which carries its own size (since 4.0: the
 *    3.x fingerprint hashed it, so appending a hint refused every older
 *    plugin, which is why the row_input hint made 4.0 a major).
 *  - mn_plugin_host only grows at the end; no field is ever removed. */
#ifndef MNEMO_PLUGIN_H
#define MNEMO_PLUGIN_H

#include "mnemo.h"
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MN_PLUGIN_ABI_MAJOR 4
#define MN_PLUGIN_ABI_MINOR 0
#define MN_PLUGIN_ABI_VERSION ((uint32_t)MN_PLUGIN_ABI_MAJOR << 16 | (uint32_t)MN_PLUGIN_ABI_MINOR)

/* Flags the compiler reads (bits 0, 1, 4, 5, 6 belonged to flags of ABI 2
 * that nothing read; they stay unused). */
enum {
    MN_OPF_RANDOM      = 1u << 2,  /* draws from the counter-based RNG: never merged by CSE, never fused */
    MN_OPF_NOGRAD      = 1u << 3,  /* no VJP: gradients stop here */
    MN_OPF_COMPOSITE   = 1u << 7,  /* built from other ops by `compose`; no kernel */
    MN_OPF_ACCUMULATE  = 1u << 8,  /* forward can add into its output instead of overwriting it (ctx->accumulate) */
};

typedef struct { mn_dtype dtype; mn_shape shape; } mn_tdesc;

/* Shape/dtype inference. On failure write a detail (e.g. "inner dims 256
 * and 128 differ") into msg and return an error code. */
typedef struct {
    int nin;
    const mn_tdesc *in;
    const void *attrs;
    mn_tdesc out;           /* to fill */
    char *msg; size_t msglen;
} mn_infer_ctx;

typedef struct {
    int nin;
    const mn_tensor *in;    /* input views */
    mn_tensor *out;         /* output view, preallocated */
    const void *attrs;
    int nthreads;
    uint64_t seed;          /* graph seed; with node_id keys random ops */
    int node_id;
    void *work;             /* workspace planned in the arena (op->workspace bytes) */
    size_t work_bytes;
    char *msg; size_t msglen; /* runtime error detail */
    bool accumulate;        /* MN_OPF_ACCUMULATE ops: add the result into *out (a parameter gradient) */
} mn_kernel_ctx;

/* A VJP appends graph nodes computing dx[i] = dy * d out / d in[i] for
 * every input with needs[i]; whatever it reads is an edge of the graph. */
typedef struct {
    mn_graph *g;
    mn_node *out;           /* the forward node */
    mn_node *const *in;
    int nin;
    const void *attrs;
    mn_node *dy;            /* gradient of out, same shape */
    const bool *needs;
    mn_node **dx;           /* to fill (NULL = zero / not needed) */
} mn_vjp_ctx;

/* Attribute schemas: each field of an op's attribute struct by name, type
 * and byte offset, ending with a { NULL } entry. The compiler compares and
 * hashes attributes field by field (never padding bytes), DOT prints them,
 * and mn_op_named builds an op from named values through them. */
typedef enum {
    MN_ATTR_BOOL,       /* bool */
    MN_ATTR_INT,        /* int (and enums: reductions, activation kinds) */
    MN_ATTR_UINT,       /* unsigned / uint32_t (axis bit masks, RNG streams) */
    MN_ATTR_INT64,      /* int64_t */
    MN_ATTR_FLOAT,      /* float */
    MN_ATTR_DOUBLE,     /* double */
    MN_ATTR_DTYPE,      /* mn_dtype */
    MN_ATTR_SHAPE,      /* mn_shape: ndim and its dims */
    MN_ATTR_DIMS,       /* int[MN_MAX_DIMS] (a permutation) */
} mn_attr_type;
typedef struct { const char *name; mn_attr_type type; size_t offset; } mn_attr_field;

/* The attribute structs of the built-in ops (mn_op / mn_op_named take them). */
typedef struct { float s; } mn_scale_attrs;                        /* scale */
/* matmul; per_step (ABI 4.0): A [T, ...] (batch dims, B without) is computed one
 * index of its first dim at a time (one GEMM per time step), so a slice of A
 * over that dim gives the same bits as the whole product (mn_matmul_steps). */
typedef struct { bool trans_a, trans_b, per_step; } mn_matmul_attrs;
typedef struct { int ndim; int perm[MN_MAX_DIMS]; } mn_permute_attrs; /* permute */
typedef struct { mn_shape shape; } mn_shape_attrs;                  /* reshape, expand */
typedef struct { unsigned axes; bool keepdim; } mn_reduce_attrs;    /* sum, mean: axes bit mask */
/* softmax, log_softmax (+ grads): causal masks key j > query i over the
 * last two dims (top-left aligned, as PyTorch's is_causal). */
typedef struct { int axis; bool causal; } mn_axis_attrs;
typedef struct { mn_ce_opts o; } mn_ce_attrs;                       /* cross_entropy (+ grad) */
typedef struct { mn_reduction reduction; } mn_mse_attrs;            /* mse_loss */
/* slice: PyTorch's x.narrow-like slicing, start/stop may be negative or out
 * of range (clamped as in Python), step > 0. */
typedef struct { int axis; int64_t start, stop, step; } mn_slice_attrs;
typedef struct { mn_slice_attrs s; mn_shape in_shape; } mn_slice_back_attrs; /* slice_backward */
typedef struct { int axis; } mn_cat_attrs;                          /* concat, stack, index_select, gather */
typedef struct { int axis; mn_shape in_shape; } mn_scatter_attrs;   /* index_select_backward, gather_backward */
typedef struct { int axis; bool all; } mn_squeeze_attrs;            /* squeeze, unsqueeze */
/* Parametrised activations and their shared backward helper act_grad. */
typedef enum {
    MN_ACT_GELU_ERF, MN_ACT_GELU_TANH, MN_ACT_CLAMP, MN_ACT_LEAKY_RELU, MN_ACT_ELU, MN_ACT_SILU,
} mn_act_kind;
typedef struct { mn_act_kind kind; float a, b; } mn_act_attrs;     /* gelu, softplus, clamp, pow, leaky_relu, elu, act_grad */
typedef struct { int axis; bool keepdim; } mn_axis_reduce_attrs;  /* max, min, argmax, argmin, logsumexp */
typedef struct { unsigned axes; bool keepdim; float correction; } mn_var_attrs; /* var, std */
typedef struct { int ndims; float eps; } mn_ln_attrs;             /* layer_norm_stats, layer_norm, layer_norm_backward */
/* dropout, normal, uniform: `stream` keys the RNG (the builder sets the
 * node's id), so a VJP reproducing a mask uses the same stream. */
typedef struct { float p; bool training; uint32_t stream; } mn_dropout_attrs;
typedef struct { mn_shape shape; float a, b; uint32_t stream; } mn_random_attrs; /* normal (mean, std), uniform (lo, hi) */
typedef struct { mn_shape shape; float value; mn_dtype dtype; } mn_fill_attrs;  /* fill */
typedef struct { double start, end, step; mn_dtype dtype; } mn_arange_attrs;    /* arange */
typedef struct { int num_classes; mn_dtype dtype; } mn_one_hot_attrs;          /* one_hot */
typedef struct { mn_dtype dtype; } mn_cast_attrs;                               /* cast, zeros_like, ones_like */
/* losses: bce_with_logits, nll_loss (ignore_index), kl_div (log_target,
 * batchmean), smooth_l1 (beta), huber (beta = delta), gaussian_kl */
typedef struct { mn_reduction reduction; float beta; int ignore_index; bool log_target; } mn_loss_attrs;
typedef struct { mn_reduction reduction; int wrt; } mn_crf_attrs;
/* self_attention (+ grad): heads of qkv [B, T, 3E], causal mask, score scale (1/sqrt(E/heads)),
 * dropout on the probabilities (0: none) keyed by `stream` (as mn_dropout_attrs) */
typedef struct { int64_t heads; bool causal; float scale, dropout; uint32_t stream; } mn_attention_attrs; /* crf_nll, crf_nll_grad (wrt 0: emissions, 1: transitions) */

/* Compiler hints: optional (NULL: never), each read only when the record's
 * size covers it. New hints are appended here (a minor version). */
typedef struct {
    /* The output may be a view of input 0: its byte offset there, or -1
     * (reshape: always 0; slice: when the slice is one contiguous block). */
    int64_t (*alias_offset)(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs);
    /* Sums n >= 2 gradient contributions that are all outputs of this op
     * more cheaply than a chain of adds (disjoint slice_backward pieces ->
     * one concat); NULL result: autodiff adds them. */
    mn_node *(*merge_grads)(mn_graph *g, mn_node *const *parts, int n);
    /* Elementwise f32 ops (not random) may give their math on contiguous
     * blocks: out[i] = f(in[0][i], .., in[nin-1][i]) for i < n, every input
     * already broadcast to the output's shape. The compiler's fusion pass
     * runs chains of such ops as one kernel over cache-sized tiles, without
     * intermediate buffers. */
    void (*pointwise)(float *out, const float *const *in, int64_t n, const void *attrs);
    /* Input k appears unchanged in the output as a strided view: the element
     * offset of its first element and, for each of input k's dims, the
     * element stride in the output (concat: the output's own strides); false
     * when it does not. The memory planner may then let input k's producer
     * write there directly (a contiguous piece: any producer; a strided one:
     * a fused elementwise step, when the op is its only reader), and the
     * kernel must skip that copy: its source already is its destination. */
    bool (*input_view)(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, int k, int64_t *offset,
                       int64_t *strides);
    /* The output is a strided view of input 0: fills the element offset and,
     * for each output dim, the element stride into input 0 (a slice with any
     * step, expand); false when it is not. Lets the fusion pass read input 0
     * in place of the copy. */
    bool (*view)(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs, int64_t *offset, int64_t *strides);
    /* Scratch bytes the kernel needs (planned as a short-lived arena value). */
    size_t (*workspace)(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs);
    /* ABI 4.0. Rows along dim 0 of the output come from the same rows of
     * input k alone, bit for bit, whatever rows a call computes: returns k,
     * or -1 (the other inputs are read whole, e.g. a bias broadcast over
     * rows). A per_step matmul's A; an elementwise op's operand of the
     * output's shape beside one of fewer dims. The recompute pass then
     * computes such a value per row range (graph/split.c). */
    int (*row_input)(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs);
} mn_op_traits;

struct mn_op_def {
    uint32_t size;          /* sizeof(struct mn_op_def) the record was compiled with (MN_OP_RECORD) */
    uint32_t abi_version;   /* MN_PLUGIN_ABI_VERSION it was compiled with (MN_OP_RECORD) */
    const char *name;
    const char *doc;        /* "y = a + b; da = sum_to(dy), db = sum_to(dy)" */
    int arity;              /* -1: variadic */
    unsigned flags;
    size_t attr_size;       /* sizeof the typed attribute struct, 0 if none */
    int inplace;            /* input whose buffer the output may reuse, -1 none */
    mn_status (*infer)(mn_infer_ctx *c);
    mn_status (*forward)(const mn_kernel_ctx *c);
    mn_status (*vjp)(mn_vjp_ctx *c);            /* NULL iff MN_OPF_NOGRAD (or a composite) */
    /* FLOPs and bytes moved for one run; NULL: numel(out) FLOPs, all bytes. */
    void (*cost)(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                 double *flops, double *bytes);
    /* Attributes for DOT labels and listings; NULL if none. */
    void (*attr_str)(const void *attrs, char *buf, size_t n);
    /* Composite ops: builds the result from other ops (their VJPs give the
     * gradient). `infer`, if set, validates first for a clear message. */
    mn_node *(*compose)(mn_graph *g, mn_node *const *in, int nin, const void *attrs);
    /* The attribute struct's fields, { NULL }-terminated; NULL when the op
     * has no attributes (a plugin op with attributes but no schema is
     * compared byte by byte and cannot be built by mn_op_named). */
    const mn_attr_field *attr_fields;
    mn_op_traits traits;    /* last: grows at the end */
};

/* Opens a record: `static const struct mn_op_def op = { MN_OP_RECORD, .name = ... };` */
#define MN_OP_RECORD .size = sizeof(struct mn_op_def), .abi_version = MN_PLUGIN_ABI_VERSION

/* What must not move (LP64, the only ABI mnemo builds for). */
#if defined(__LP64__) || defined(_LP64)
_Static_assert(offsetof(struct mn_op_def, size) == 0, "mn_op_def: size first");
_Static_assert(offsetof(struct mn_op_def, abi_version) == 4, "mn_op_def: version second");
_Static_assert(offsetof(struct mn_op_def, name) == 8, "mn_op_def: core fields fixed");
_Static_assert(offsetof(struct mn_op_def, infer) == 48, "mn_op_def: core fields fixed");
_Static_assert(offsetof(struct mn_op_def, compose) == 88, "mn_op_def: core fields fixed");
_Static_assert(offsetof(struct mn_op_def, attr_fields) == 96, "mn_op_def: core fields fixed");
_Static_assert(offsetof(struct mn_op_def, traits) == 104, "mn_op_def: traits after the core");
_Static_assert(sizeof(mn_op_traits) == 7 * sizeof(void *), "mn_op_traits: ABI 4.0 has 7 hints; append only");
_Static_assert(sizeof(mn_tdesc) == 80 && sizeof(mn_shape) == 72, "tensor descriptors fixed");
#endif

#define MN_PLUGIN_FINGERPRINT                                                                  \
    ((uint32_t)(sizeof(mn_infer_ctx) * 131u + sizeof(mn_kernel_ctx) * 1031u + \
                sizeof(mn_vjp_ctx) * 8191u + sizeof(mn_tensor) * 65521u + sizeof(mn_tdesc) * 524287u +     \
                (uint32_t)MN_MAX_DIMS * 16777213u))

typedef struct mn_plugin_ctx mn_plugin_ctx;

/* What the host offers a plugin (append-only). */
typedef struct {
    uint32_t abi_major, abi_minor, fingerprint, size;   /* size: sizeof(mn_plugin_host) of the host */
    /* Registers an op named "<plugin>.<op>"; the record must outlive the plugin's use. */
    mn_status (*register_op)(mn_plugin_ctx *ctx, const struct mn_op_def *op);
    /* Graph building for VJPs and compositions (the public API's functions). */
    mn_node *(*op)(mn_graph *g, const char *name, mn_node *const *inputs, int n, const void *attrs, size_t attrs_size);
    mn_node *(*sum_to)(mn_graph *g, mn_node *x, mn_shape shape);
    mn_node *(*scalar)(mn_graph *g, float value);
    mn_shape (*node_shape)(const mn_node *n);
    mn_dtype (*node_dtype)(const mn_node *n);
    mn_status (*graph_fail)(mn_graph *g, mn_status code, const char *fmt, ...);
    mn_status (*set_error)(mn_status code, const char *fmt, ...);
    /* Builders VJPs compose most (the same functions as in mnemo.h). */
    mn_node *(*add)(mn_graph *g, mn_node *a, mn_node *b);
    mn_node *(*sub)(mn_graph *g, mn_node *a, mn_node *b);
    mn_node *(*mul)(mn_graph *g, mn_node *a, mn_node *b);
    mn_node *(*div)(mn_graph *g, mn_node *a, mn_node *b);
    mn_node *(*neg)(mn_graph *g, mn_node *x);
    mn_node *(*scale)(mn_graph *g, mn_node *x, float s);
    mn_node *(*square)(mn_graph *g, mn_node *x);
    mn_node *(*rsqrt)(mn_graph *g, mn_node *x);
    mn_node *(*sigmoid)(mn_graph *g, mn_node *x);
    mn_node *(*sum)(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim);
    mn_node *(*mean)(mn_graph *g, mn_node *x, int n, const int *axes, bool keepdim);
    mn_node *(*reshape)(mn_graph *g, mn_node *x, mn_shape shape);
    mn_node *(*expand)(mn_graph *g, mn_node *x, mn_shape shape);
} mn_plugin_host;

typedef struct {
    uint32_t abi_major, abi_minor, fingerprint;
    const char *name;            /* namespace of its ops: [a-z0-9_]+ */
    const char *version;
    /* Registers the plugin's ops; an error undoes every registration. */
    mn_status (*init)(const mn_plugin_host *host, mn_plugin_ctx *ctx);
} mn_plugin_info;

/* Helpers a plugin may use without linking libmnemo (plugins call the
 * library only through mn_plugin_host). */
static inline int64_t mn_p_numel(mn_shape s)
{
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}
static inline bool mn_p_shape_eq(mn_shape a, mn_shape b)
{
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; i++) if (a.d[i] != b.d[i]) return false;
    return true;
}

/* The one symbol a plugin exports. */
typedef const mn_plugin_info *(*mn_plugin_entry_fn)(void);
#define MN_PLUGIN_ENTRY "mn_plugin_entry"
/* In a plugin: MN_PLUGIN_DEFINE("swish", "1.0", init) */
#define MN_PLUGIN_DEFINE(pname, pversion, pinit)                                               \
    const mn_plugin_info *mn_plugin_entry(void);                                               \
    const mn_plugin_info *mn_plugin_entry(void)                                                \
    {                                                                                          \
        static const mn_plugin_info info = { MN_PLUGIN_ABI_MAJOR, MN_PLUGIN_ABI_MINOR,         \
                                             MN_PLUGIN_FINGERPRINT, pname, pversion, pinit };   \
        return &info;                                                                          \
    }

#ifdef __cplusplus
}
#endif
#endif
