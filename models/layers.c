/* models/layers.c: basic layers as compositions of graph ops. Each creates
 * its parameters in the store under PyTorch's names (prefix.weight,
 * prefix.bias) with PyTorch's default initialisation; no layer has a kernel. */
#include "blocks.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The blocks of steps of time-major outputs [T, B, ...]: block b is steps
 * [cut[b], cut[b + 1]); returns the count (cut has room for T + 1). S =
 * MN_STEP_BLOCK_ROWS / B steps (rounded up) a block, the first one fewer:
 * a recurrent step's product reads the previous step's h, so the blocks of
 * the W_hh gradient (S products each, ops/matmul.c's join_blocks) read
 * exactly one block of hidden states each (after the first). models/rnn.c
 * stacks its outputs in these blocks, mn_linear_steps reads them. */
int mn__step_cuts(int64_t T, int64_t B, int64_t *cut)
{
    int64_t S = B >= MN_STEP_BLOCK_ROWS ? 1 : (MN_STEP_BLOCK_ROWS + B - 1) / (B > 0 ? B : 1);
    int n = 0;
    cut[0] = 0;
    for (int64_t t = S > 1 ? S - 1 : S; cut[n] < T; t += S) cut[++n] = t < T ? t : T;
    return n;
}

/* x [T, B, in] times w^T, one per_step product per block of steps
 * (mn__step_cuts; one per step would be up to 1.9x slower at a head's 96 columns),
 * joined along the steps. Each block reads its own rows of x (a slice,
 * which is the block itself where x is a concat of such blocks, as
 * models/rnn.c's outputs are): no step reads the whole of x, so a memory
 * budget can free and rebuild x block by block; w's gradient is one GEMM a
 * block, added in a fixed order (ops/matmul.c, join_blocks), the same with
 * and without a budget. */
static mn_node *steps_product(mn_graph *g, mn_node *x, mn_node *w, int64_t out_features)
{
    mn_shape xs = mn_node_shape(x);
    int64_t in = xs.ndim ? xs.d[xs.ndim - 1] : 0;
    if (xs.ndim != 3) return mn_matmul_steps(g, x, w, true);
    int64_t *cut = malloc(((size_t)xs.d[0] + 2) * sizeof *cut);
    mn_node **ys = malloc(((size_t)xs.d[0] + 1) * sizeof *ys);
    if (!cut || !ys) { free(cut); free(ys); mn_graph_fail(g, MN_ERR_NOMEM, "linear: out of memory"); return NULL; }
    int nb = mn__step_cuts(xs.d[0], xs.d[1], cut);
    for (int b = 0; b < nb; b++) {
        mn_node *xb = mn_slice(g, x, 0, cut[b], cut[b + 1], 1);
        ys[b] = mn_matmul_steps(g, mn_reshape(g, xb, MN_SHAPE(1, (cut[b + 1] - cut[b]) * xs.d[1], in)), w, true);
    }
    mn_node *y = nb == 1 ? ys[0] : mn_concat(g, ys, nb, 1);
    free(cut);
    free(ys);
    return mn_reshape(g, y, MN_SHAPE(xs.d[0], xs.d[1], out_features));
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
