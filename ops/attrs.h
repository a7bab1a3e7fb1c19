/* ops/attrs.h: the typed attribute struct of every built-in op that has
 * attributes. A node stores a copy; kernels, VJPs and inference read it.
 * (To become part of the public plugin/mn_op surface with the plugin ABI.) */
#ifndef MN_OPS_ATTRS_H
#define MN_OPS_ATTRS_H

#include "mnemo.h"

typedef struct { float s; } mn_scale_attrs;                        /* scale */
typedef struct { bool trans_a, trans_b; } mn_matmul_attrs;          /* matmul */
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

#endif
