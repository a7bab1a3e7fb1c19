/* ops/window.h: the attributes of the sliding-window ops (ops/window.c:
 * unfold, fold) and of topk (ops/topk.c). Convolutions and pooling are
 * compositions over unfold/fold (reshape, matmul, max, mean), so these two
 * kernels and their VJPs (each other) are all the windows need. Kept out of
 * the public header: builders go through mn_op_named and the schemas. */
#ifndef MN_OPS_WINDOW_H
#define MN_OPS_WINDOW_H

#include "mnemo_plugin.h"

/* unfold: x [N, C, S1..Sk] -> [N, C, K1*..*Kk, O1*..*Ok] (im2col): element
 * (n, c, kk, o) is x at s_i = o_i * stride_i + k_i * dilation_i - pad_lo_i,
 * or pad_value outside the image. fold is its adjoint (col2im): the blocks
 * summed back into an image of shape `image` ([N, C, S1..Sk]).
 * k = nsp spatial dims, 1 to 3; O_i = (S_i + lo + hi - d (K - 1) - 1) / s + 1. */
typedef struct {
    int nsp;
    int kernel[MN_MAX_DIMS], stride[MN_MAX_DIMS], dilation[MN_MAX_DIMS];
    int pad_lo[MN_MAX_DIMS], pad_hi[MN_MAX_DIMS];
    float pad_value;        /* unfold: value of positions outside the image (0; -inf for max pooling) */
    mn_shape image;         /* fold: the image's shape */
} mn_window_attrs;

/* topk: i32 indices of the k largest (or smallest) values along axis,
 * sorted by value, ties by lower index first (ONNX TopK). */
typedef struct { int axis, k; bool largest; } mn_topk_attrs;

#endif
