/* ops/op.h: the operator record and the contexts its functions receive.
 * One record per op is the single source of truth: autodiff, the executor,
 * the planner, DOT export, the gradient-check suite and `mnemo ops` read
 * these fields and never switch on op names. Records are const. */
#ifndef MN_OPS_OP_H
#define MN_OPS_OP_H

#include "../core/internal.h"

enum {
    MN_OPF_ELEMENTWISE = 1u << 0,  /* out[i] depends on in[k][i] only (after broadcasting) */
    MN_OPF_BROADCAST   = 1u << 1,  /* inputs broadcast NumPy-style */
    MN_OPF_RANDOM      = 1u << 2,  /* draws from the counter-based RNG */
    MN_OPF_NOGRAD      = 1u << 3,  /* no VJP: gradients stop here */
    MN_OPF_CHEAP       = 1u << 4,  /* cheap to recompute */
    MN_OPF_ALIAS       = 1u << 5,  /* output is input 0's bytes reinterpreted (reshape) */
    MN_OPF_BACKWARD    = 1u << 6,  /* helper emitted by VJPs (e.g. relu_grad) */
    MN_OPF_COMPOSITE   = 1u << 7,  /* built from other ops by `compose`; no kernel */
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

struct mn_op_def {
    const char *name;
    const char *doc;        /* "y = a + b; da = sum_to(dy), db = sum_to(dy)" */
    int arity;              /* -1: variadic */
    size_t attr_size;       /* sizeof the typed attribute struct, 0 if none */
    unsigned flags;
    int inplace;            /* input whose buffer the output may reuse, -1 none */
    mn_status (*infer)(mn_infer_ctx *c);
    mn_status (*forward)(const mn_kernel_ctx *c);
    mn_status (*vjp)(mn_vjp_ctx *c);            /* NULL iff MN_OPF_NOGRAD */
    /* FLOPs and bytes moved for one run; NULL: numel(out) FLOPs, all bytes. */
    void (*cost)(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                 double *flops, double *bytes);
    /* Scratch bytes the kernel needs (planned as a short-lived arena value); NULL: none. */
    size_t (*workspace)(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs);
    /* Attributes for DOT labels and listings; NULL if none. */
    void (*attr_str)(const void *attrs, char *buf, size_t n);
    /* Sums n >= 2 gradient contributions that are all outputs of this op
     * more cheaply than a chain of adds (disjoint slice_backward pieces ->
     * one concat); NULL result: autodiff adds them. */
    mn_node *(*merge_grads)(mn_graph *g, mn_node *const *parts, int n);
    /* Composite ops: builds the result from other ops (their VJPs give the
     * gradient). `infer`, if set, validates first for a clear message. */
    mn_node *(*compose)(mn_graph *g, mn_node *const *in, int nin, const void *attrs);
};

/* Shared helpers for op files. */
mn_status mn__infer_fail(mn_infer_ctx *c, mn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
mn_status mn__kernel_fail(const mn_kernel_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Builds a node of a built-in op; used by the typed builders and VJPs. */
mn_node *mn__node(mn_graph *g, const mn_op_def *op, mn_node *const *in, int nin, const void *attrs);
/* Records the graph's first error (sticky) and this thread's last error. */
mn_status mn__graph_fail(mn_graph *g, mn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Read access to a built node for merge_grads rules. */
const void *mn__node_attrs(const mn_node *n);
mn_node *mn__node_input(const mn_node *n, int k);
const mn_op_def *mn__node_opdef(const mn_node *n);
/* Normalises an axis against ndim (negative counts from the end); -1 if out of range. */
int mn__axis(int axis, int ndim);
/* Element strides of shape `s` read as broadcast to shape `o` (0 on
 * broadcast dims); st has o.ndim entries. */
void mn__bcast_strides(mn_shape s, mn_shape o, int64_t *st);
/* [outer, dim, inner] view of a shape around `axis`. */
typedef struct { int64_t outer, dim, inner; } mn__split3;
mn__split3 mn__split_at(mn_shape s, int axis);
/* Grain for parallel loops: below it, a loop stays serial. */
#define MN_GRAIN 32768
/* Fixed chunk count for reductions to a scalar: partial sums per chunk,
 * added in order, give the same bits for any thread count. */
#define MN_NCHUNK 64
/* Most inputs a node may have (concat over many time steps). */
#define MN_MAX_INPUTS 65536

#endif
