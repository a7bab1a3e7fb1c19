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
typedef struct { int axis; } mn_axis_attrs;                         /* softmax, log_softmax (+ grads) */
typedef struct { mn_ce_opts o; } mn_ce_attrs;                       /* cross_entropy (+ grad) */
typedef struct { mn_reduction reduction; } mn_mse_attrs;            /* mse_loss */

#endif
