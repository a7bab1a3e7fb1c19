/* bench/workloads.c: benchmark workloads as graph compositions. Shapes are
 * those of WORKLOADS.md; lstm_cells is the 1-layer char-LM LSTM unrolled
 * from primitive ops (torch_ref.py's lstm_cells). */
#include "workloads.h"
#include <stdlib.h>
#include <string.h>

const char *const mn_workload_names[] = { "mlp", "lstm_cells", NULL };

static double lin(double m, double k, double n, bool dx, double *train)
{
    double f = 2 * m * k * n;
    *train += f + f + (dx ? f : 0);
    return f;
}

static mn_status build_mlp(mn_workload *w)
{
    const int64_t B = 128;
    mn_node *x = mn_input(w->g, "x", MN_F32, MN_SHAPE(B, 784)), *y = mn_input(w->g, "y", MN_I32, MN_SHAPE(B));
    int64_t widths[3] = { 512, 512, 10 };
    w->loss = mn_cross_entropy(w->g, mn_mlp(w->g, "mlp", x, 3, widths), y);
    w->classes = 10;
    w->fwd_flops = lin(B, 784, 512, false, &w->train_flops) + lin(B, 512, 512, true, &w->train_flops) +
                   lin(B, 512, 10, true, &w->train_flops);
    return mn_graph_status(w->g);
}

/* embedding 96x64 -> LSTM 256 unrolled over 64 steps -> linear 256->96, CE every step */
static mn_status build_lstm_cells(mn_workload *w)
{
    const int64_t V = 96, E = 64, H = 256, T = 64, B = 32;
    mn_graph *g = w->g;
    float k = 1.0f / 16.0f;                                      /* 1/sqrt(H), nn.LSTM's init */
    mn_init u = { .kind = MN_INIT_UNIFORM, .a = -k, .b = k };
    mn_node *x = mn_input(g, "x", MN_I32, MN_SHAPE(T, B)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(T, B));
    mn_node *emb = mn_embedding(g, x, mn_param(g, "emb.weight", MN_SHAPE(V, E), (mn_init){ .kind = MN_INIT_NORMAL, .b = 1 }));
    mn_node *wih = mn_param(g, "rnn.weight_ih_l0", MN_SHAPE(4 * H, E), u), *whh = mn_param(g, "rnn.weight_hh_l0", MN_SHAPE(4 * H, H), u);
    mn_node *bih = mn_param(g, "rnn.bias_ih_l0", MN_SHAPE(4 * H), u), *bhh = mn_param(g, "rnn.bias_hh_l0", MN_SHAPE(4 * H), u);
    mn_node *gx = mn_add(g, mn_linear_op(g, emb, wih, bih), bhh);
    mn_node *h = mn_fill(g, MN_SHAPE(B, H), 0, MN_F32), *c = h;
    mn_node **hs = malloc((size_t)T * sizeof *hs);
    if (!hs) return MN_ERR_NOMEM;
    for (int64_t t = 0; t < T; t++) {
        mn_node *q[4];
        mn_node *gt = mn_add(g, mn_squeeze(g, mn_slice(g, gx, 0, t, t + 1, 1), 0), mn_matmul(g, h, whh, false, true));
        mn_chunk(g, gt, 1, 4, q);
        c = mn_add(g, mn_mul(g, mn_sigmoid(g, q[1]), c), mn_mul(g, mn_sigmoid(g, q[0]), mn_tanh(g, q[2])));
        h = hs[t] = mn_mul(g, mn_sigmoid(g, q[3]), mn_tanh(g, c));
    }
    mn_node *out = mn_stack(g, hs, (int)T, 0);
    free(hs);
    mn_node *logits = mn_linear(g, "head", out, V, true);
    w->loss = mn_cross_entropy(g, mn_reshape(g, logits, MN_SHAPE(T * B, V)), mn_reshape(g, y, MN_SHAPE(T * B)));
    w->classes = V;
    w->fwd_flops = lin(T * B, E, 4 * H, true, &w->train_flops) + lin(T * B, H, 4 * H, true, &w->train_flops) +
                   lin(T * B, H, V, true, &w->train_flops);
    return mn_graph_status(g);
}

mn_status mn_workload_build(const char *name, mn_workload *w)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->P = mn_params_new();
    w->g = mn_graph_new(w->P);
    mn_params_set_seed(w->P, 1);
    if (!strcmp(name, "mlp")) return build_mlp(w);
    if (!strcmp(name, "lstm_cells")) return build_lstm_cells(w);
    return mn_set_error(MN_ERR_NOTFOUND, "bench: no workload \"%s\"", name);
}

mn_status mn_workload_feed(const mn_workload *w, mn_exec *ex, uint64_t seed)
{
    for (int k = 0; k < mn_exec_input_count(ex); k++) {
        const mn_tensor *t = mn_exec_input(ex, k);
        int64_t n = mn_tensor_numel(t);
        for (int64_t i = 0; i < n; i++) {
            float u = mn_rng_uniform(seed, (uint64_t)k, (uint64_t)i);
            if (t->dtype == MN_I32) mn_i32(t)[i] = (int32_t)(u * (float)w->classes);
            else mn_f32(t)[i] = mn_rng_normal(seed, (uint64_t)k, (uint64_t)i);
        }
    }
    return MN_OK;
}

void mn_workload_free(mn_workload *w)
{
    mn_graph_free(w->g);
    mn_params_free(w->P);
    memset(w, 0, sizeof *w);
}
