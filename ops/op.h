/* ops/op.h: the operator record and the contexts its functions receive.
 * One record per op is the single source of truth: autodiff, the executor,
 * the planner, DOT export, the gradient-check suite and `mnemo ops` read
 * these fields and never switch on op names. Records are const. */
#ifndef MN_OPS_OP_H
#define MN_OPS_OP_H

#include "../core/internal.h"
#include "mnemo_plugin.h"
#include <omp.h>

/* Shared helpers for op files. */
mn_status mn__infer_fail(mn_infer_ctx *c, mn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
mn_status mn__kernel_fail(const mn_kernel_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Checks a shape given as an attribute (fill, normal, uniform): dims in range, none negative. */
mn_status mn__infer_shape_attr(mn_infer_ctx *c, mn_shape s);
/* Builds a node of a built-in op; used by the typed builders and VJPs. */
mn_node *mn__node(mn_graph *g, const mn_op_def *op, mn_node *const *in, int nin, const void *attrs);
/* The graph's node of that op, inputs and attributes if one was built in
 * this pass, else a new one. */
mn_node *mn__node_once(mn_graph *g, const mn_op_def *op, mn_node *const *in, int nin, const void *attrs);
/* ops/index.c's folded gathers: gather(T, idx) op(W) as gather(T op(W),
 * idx), gather(T, idx) + b as gather(T + b, idx), where a's rows are
 * gathered from a table T of fewer rows; NULL where not. */
mn_node *mn__fold_product(mn_graph *g, mn_node *a, mn_node *w, bool trans_b);
mn_node *mn__fold_add(mn_graph *g, mn_node *a, mn_node *b);
bool mn__graph_folds(const mn_graph *g);       /* graph/builder.c: folding on, not building a backward pass */
/* Records the graph's first error (sticky) and this thread's last error. */
mn_status mn__graph_fail(mn_graph *g, mn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Checks a record against the registry's rules (see registry.c); the detail goes to msg. */
mn_status mn__op_check(const mn_op_def *op, char *msg, size_t n);
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
/* Runs an op's pointwise function over its (same-sized) inputs, split in
 * chunks over threads above MN_GRAIN: the forward of most elementwise ops. */
typedef void (*mn__pointwise_fn)(float *out, const float *const *in, int64_t n, const void *attrs);
mn_status mn__pointwise_forward(const mn_kernel_ctx *c, mn__pointwise_fn f);
/* Grain for parallel loops: below it, a loop stays serial. */
#define MN_GRAIN 32768
/* Fixed chunk count for reductions to a scalar: partial sums per chunk,
 * added in order, give the same bits for any thread count. */
#define MN_NCHUNK 64
/* State an executable keeps for one step of a built-in op (ops/dnnl_mm.c:
 * a matmul's oneDNN primitive), made once the step's thread count is known
 * and freed with the executable (its handles: oneDNN keeps what it made in
 * its own primitive cache, the program's to size); the plugin ABI does
 * not see it. What the states of one executable share lives in its
 * mn__op_states, made on first need through *ctx (NULL before): one
 * engine and stream, and per product kind (shape, transposes, accumulate,
 * threads) oneDNN's answer, asked once however often the planner plans,
 * and the primitive, made once for every step of the kind.
 * mn__op_state_bytes: the workspace such a step needs (0: the op keeps no
 * state there); mn__op_state_new: the state, or NULL (the op's own kernel
 * runs), given the workspace planned for it; mn__op_state_forward: the
 * step's kernel with its state (op->forward where the state does not fit
 * the context); mn__op_states_free after the states' mn__op_state_free. */
typedef struct mn__op_state mn__op_state;
typedef struct mn__op_states mn__op_states;
size_t mn__op_state_bytes(mn__op_states **ctx, const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs,
                          bool accumulate, int threads);
mn__op_state *mn__op_state_new(mn__op_states **ctx, const mn_op_def *op, const mn_tdesc *in, int nin, const mn_tdesc *out,
                               const void *attrs, bool accumulate, int threads, size_t work_bytes);
mn_status mn__op_state_forward(mn__op_state *s, const mn_op_def *op, const mn_kernel_ctx *c);
void mn__op_state_free(mn__op_state *s);
void mn__op_states_free(mn__op_states *ctx);
/* For the stats and tests: the descriptors ctx asked of oneDNN and the
 * primitives it made; a state's engine (of its memory objects), stream,
 * primitive and the scratchpad its last run used. */
void mn__op_states_counts(const mn__op_states *ctx, int *descs_asked, int *prims_made);
void mn__op_state_handles(const mn__op_state *s, void *h[4]);
/* Most inputs a node may have (concat over many time steps). */
#define MN_MAX_INPUTS 65536

#endif
