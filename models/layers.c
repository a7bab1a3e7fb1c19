/* models/layers.c: basic layers as compositions of graph ops. Each creates
 * its parameters in the store under PyTorch's names (prefix.weight,
 * prefix.bias) with PyTorch's default initialisation; no layer has a kernel. */
#include "mnemo.h"
#include <math.h>
#include <stdio.h>

/* Steps per block: the most steps dividing T whose rows stay within
 * MN_STEP_BLOCK_ROWS (at least one). */
static int64_t block_steps(int64_t T, int64_t B)
{
    int64_t s = 1;
    for (int64_t d = 2; d <= T; d++)
        if (T % d == 0 && d * B <= MN_STEP_BLOCK_ROWS) s = d;
    return s;
}

/* x [T, B, in] times w^T by a per_step product over blocks of S steps: one
 * GEMM of S B rows per block (one per step would be up to 1.9x slower at a
 * head's 96 columns). */
static mn_node *steps_product(mn_graph *g, mn_node *x, mn_node *w, int64_t out_features)
{
    mn_shape xs = mn_node_shape(x);
    int64_t in = xs.ndim ? xs.d[xs.ndim - 1] : 0;
    int64_t S = xs.ndim == 3 ? block_steps(xs.d[0], xs.d[1]) : 1;
    mn_node *xb = S > 1 ? mn_reshape(g, x, MN_SHAPE(xs.d[0] / S, S * xs.d[1], in)) : x;
    mn_node *y = mn_matmul_steps(g, xb, w, true);
    return S > 1 ? mn_reshape(g, y, MN_SHAPE(xs.d[0], xs.d[1], out_features)) : y;
}

/* nn.Linear: weight kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), bias the same bound
 * (mn_init_like, core/params.c). steps > 0: a per_step product over blocks
 * of `steps` time steps (x [T, B, in], mn_linear_steps). */
static mn_node *linear(mn_graph *g, const char *prefix, mn_node *x, int64_t out_features, bool bias, bool per_step)
{
    if (!x) return mn_matmul(g, x, x, false, true);      /* propagates the graph's error */
    mn_shape xs = mn_node_shape(x);
    int64_t in = xs.ndim ? xs.d[xs.ndim - 1] : 0;
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    mn_node *w = mn_param(g, name, MN_SHAPE(out_features, in), mn_init_like(MN_LIKE_LINEAR, false, in));
    mn_node *y = per_step ? steps_product(g, x, w, out_features) : mn_matmul(g, x, w, false, true);
    if (!bias) return y;
    snprintf(name, sizeof name, "%s.bias", prefix);
    mn_node *b = mn_param(g, name, MN_SHAPE(out_features), mn_init_like(MN_LIKE_LINEAR, true, in));
    return mn_add(g, y, b);
}

mn_node *mn_linear(mn_graph *g, const char *prefix, mn_node *x, int64_t out_features, bool bias)
{
    return linear(g, prefix, x, out_features, bias, false);
}

/* mn_linear with a per_step product over blocks of steps: x must be [T, B, in] (steps first). */
mn_node *mn_linear_steps(mn_graph *g, const char *prefix, mn_node *x, int64_t out_features, bool bias)
{
    return linear(g, prefix, x, out_features, bias, true);
}

mn_node *mn_mlp(mn_graph *g, const char *prefix, mn_node *x, int nlayers, const int64_t *widths)
{
    char name[256];
    for (int i = 0; i < nlayers; i++) {
        snprintf(name, sizeof name, "%s.%d", prefix, i);
        x = mn_linear(g, name, x, widths[i], true);
        if (i + 1 < nlayers) x = mn_relu(g, x);
    }
    return x;
}

mn_node *mn_embedding(mn_graph *g, const char *prefix, mn_node *indices, int64_t num, int64_t dim)
{
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    return mn_embedding_op(g, indices, mn_param(g, name, MN_SHAPE(num, dim), mn_init_like(MN_LIKE_EMBEDDING, false, 0)));
}

mn_node *mn_layer_norm(mn_graph *g, const char *prefix, mn_node *x, bool affine)
{
    mn_shape s = mn_node_shape(x);
    int64_t d = s.ndim ? s.d[s.ndim - 1] : 1;
    if (!affine) return mn_layer_norm_op(g, x, 1, NULL, NULL, 1e-5f);
    char w[256], b[256];
    snprintf(w, sizeof w, "%s.weight", prefix);
    snprintf(b, sizeof b, "%s.bias", prefix);
    return mn_layer_norm_op(g, x, 1, mn_param(g, w, MN_SHAPE(d), mn_init_like(MN_LIKE_LAYER_NORM, false, 0)),
                         mn_param(g, b, MN_SHAPE(d), mn_init_like(MN_LIKE_LAYER_NORM, true, 0)), 1e-5f);
}
