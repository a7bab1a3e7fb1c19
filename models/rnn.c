/* models/rnn.c: RNN (tanh/relu), LSTM and GRU as compositions, with
 * PyTorch's parameter names, shapes, gate orders and initialisation.
 * Per layer and direction: the input projection of a block of steps
 * (MN_STEP_BLOCK_ROWS rows) is one product with W_ih (packed once for all
 * blocks); each step slices it and adds one product with W_hh (packed
 * once for all steps), then the gate math. The reverse direction walks
 * t = T-1..0 and writes its outputs back in time order. Embedded tokens
 * from a table of fewer rows than a block's: the product builder folds
 * the projection and its bias adds into the table's (ops/index.c), each
 * block a gather of its rows. */
#include "blocks.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    mn_node *wih, *whh, *bih, *bhh;
    mn_node *bhn;       /* GRU: b_hh's n part [T, H], one row per step, added inside r * (.) */
    mn_node *whp;       /* W_hh packed once for all steps (NULL: plain matmul) */
} cell_params;

static int gates_of(mn_rnn_mode m) { return m == MN_RNN_LSTM ? 4 : m == MN_RNN_GRU ? 3 : 1; }

static cell_params make_params(mn_graph *g, const char *prefix, int layer, bool rev, int64_t in, const mn_rnn_opts *o)
{
    int64_t G = gates_of(o->mode) * o->hidden;
    mn_init u = mn_init_like(MN_LIKE_RNN, false, o->hidden);     /* U(-1/sqrt(hidden), 1/sqrt(hidden)) */
    const char *sfx = rev ? "_reverse" : "";
    char n[256];
    cell_params c = { 0 };
    snprintf(n, sizeof n, "%s.weight_ih_l%d%s", prefix, layer, sfx); c.wih = mn_param(g, n, MN_SHAPE(G, in), u);
    snprintf(n, sizeof n, "%s.weight_hh_l%d%s", prefix, layer, sfx); c.whh = mn_param(g, n, MN_SHAPE(G, o->hidden), u);
    if (!o->no_bias) {
        snprintf(n, sizeof n, "%s.bias_ih_l%d%s", prefix, layer, sfx); c.bih = mn_param(g, n, MN_SHAPE(G), u);
        snprintf(n, sizeof n, "%s.bias_hh_l%d%s", prefix, layer, sfx); c.bhh = mn_param(g, n, MN_SHAPE(G), u);
    }
    return c;
}

/* Initial state k of [L*D, B, H] (or zeros). */
static mn_node *initial(mn_graph *g, mn_node *s0, int k, int64_t B, int64_t H)
{
    if (!s0) return mn_fill(g, MN_SHAPE(B, H), 0.0f, MN_F32);
    return mn_squeeze(g, mn_slice(g, s0, 0, k, k + 1, 1), 0);
}

/* One step of the cell: xt [B, G*H] (input projection incl. biases, except
 * GRU's b_hn), h (and c) [B, H]; returns the new h, updates *c. The
 * recurrent product is split into gates before it meets xt: every gate's
 * add then has one reader and fuses into the cell's elementwise kernel
 * (an add of the whole [B, G*H] first would be a step of its own per time
 * step, read by four slices). */
static mn_node *cell(mn_graph *g, const mn_rnn_opts *o, const cell_params *p, int64_t t, mn_node *xt, mn_node *h, mn_node **c)
{
    mn_node *hp = p->whp ? mn_matmul_packed(g, h, p->whh, p->whp, true) : mn_matmul(g, h, p->whh, false, true);
    if (o->mode == MN_RNN_TANH) return mn_tanh(g, mn_add(g, xt, hp));
    if (o->mode == MN_RNN_RELU) return mn_relu(g, mn_add(g, xt, hp));
    mn_node *xs[4], *hs[4];
    int G = gates_of(o->mode);
    mn_chunk(g, xt, 1, G, xs);
    mn_chunk(g, hp, 1, G, hs);
    if (o->mode == MN_RNN_GRU) {
        if (p->bhn) hs[2] = mn_add(g, hs[2], mn_slice(g, p->bhn, 0, t, t + 1, 1));
        mn_node *r = mn_sigmoid(g, mn_add(g, xs[0], hs[0])), *z = mn_sigmoid(g, mn_add(g, xs[1], hs[1]));
        mn_node *n = mn_tanh(g, mn_add(g, xs[2], mn_mul(g, r, hs[2])));
        return mn_add(g, n, mn_mul(g, z, mn_sub(g, h, n)));            /* (1 - z) n + z h */
    }
    mn_node *q[4];
    for (int k = 0; k < 4; k++) q[k] = mn_add(g, xs[k], hs[k]);
    *c = mn_add(g, mn_mul(g, mn_sigmoid(g, q[1]), *c), mn_mul(g, mn_sigmoid(g, q[0]), mn_tanh(g, q[2])));
    return mn_mul(g, mn_sigmoid(g, q[3]), mn_tanh(g, *c));
}

/* The bias of the input projection of all steps: b_ih, and for the GRU
 * also b_hh's r and z parts (its n part sits inside r * (.) and is added
 * per step, p->bhn). Adding those per step would cost a sum per step in
 * the backward pass; here they share b_ih's one sum over all steps. (The
 * other cells add b_hh to the projection of all steps, in the same fused
 * kernel as b_ih.) b_hn is broadcast to [T, H] once and step t reads row
 * t: its per-step gradients (a sum over the batch each) land side by side
 * in one [T, H] concat, summed once, instead of a chain of T - 1 adds,
 * each a one-thread step beside the next cell that kept the cell off the
 * team on 2 threads (docs/performance.md, ### small2t). */
static mn_node *input_bias(mn_graph *g, const mn_rnn_opts *o, cell_params *p, int64_t T)
{
    if (!p->bhh || o->mode != MN_RNN_GRU) return p->bih;
    mn_node *bs[3];
    mn_chunk(g, p->bhh, 0, 3, bs);
    p->bhn = mn_expand(g, mn_reshape(g, bs[2], MN_SHAPE(1, o->hidden)), MN_SHAPE(T, o->hidden));
    bs[2] = mn_fill(g, MN_SHAPE(o->hidden), 0.0f, MN_F32);
    return mn_add(g, p->bih, mn_concat(g, bs, 3, 0));
}

/* Steps [*t0, *t1) of block b of S steps, counted in the direction's order
 * (the reverse direction's first block ends at T), as the backward pass
 * completes them and the weight gradients' blocks cut them (ops/matmul.c). */
static void block_steps(int64_t T, int64_t S, int64_t b, bool rev, int64_t *t0, int64_t *t1)
{
    *t0 = rev ? (T - b * S - S > 0 ? T - b * S - S : 0) : b * S;
    *t1 = rev ? T - b * S : (b * S + S < T ? b * S + S : T);
}

/* The outputs [T, B, H]: the hidden states stacked in blocks of the steps
 * a per-step head reads at once (mn__step_block), the blocks joined. A
 * reader of one block (mn_linear_steps' slices) reads that block's value,
 * so no step needs every hidden state at once and a memory budget can drop
 * and rebuild them block by block. */
static mn_node *stack_blocks(mn_graph *g, mn_node **hs, int64_t T, int64_t B)
{
    int64_t *cut = malloc(((size_t)T + 2) * sizeof *cut);
    mn_node **blk = malloc(((size_t)T + 1) * sizeof *blk), *out = NULL;
    if (!cut || !blk) { free(cut); free(blk); mn_graph_fail(g, MN_ERR_NOMEM, "rnn: out of memory"); return NULL; }
    int nb = mn__step_cuts(T, B, cut);
    for (int b = 0; b < nb; b++) blk[b] = mn_stack(g, hs + cut[b], (int)(cut[b + 1] - cut[b]), 0);
    out = nb == 1 ? blk[0] : mn_concat(g, blk, nb, 0);
    free(cut);
    free(blk);
    return out;
}

/* One layer in one direction over x [T, B, I]; returns [T, B, H]. */
static mn_node *run_direction(mn_graph *g, const mn_rnn_opts *o, cell_params *p, mn_node *x, bool rev,
                              mn_node *h, mn_node *c, mn_node **h_last, mn_node **c_last)
{
    mn_shape xs = mn_node_shape(x);
    int64_t T = xs.d[0], G = gates_of(o->mode) * o->hidden;
    /* the input projection in blocks of S steps (S B >= MN_STEP_BLOCK_ROWS):
     * each block's gate gradients meet the weight-gradient GEMMs and bias
     * sums on their own, so a memory budget can free them block by block */
    int64_t S = xs.d[1] >= MN_STEP_BLOCK_ROWS ? 1 : (MN_STEP_BLOCK_ROWS + xs.d[1] - 1) / (xs.d[1] ? xs.d[1] : 1);
    int64_t nb = T ? (T + S - 1) / S : 0;
    mn_node *bias = input_bias(g, o, p, T);
    /* Two or more steps and inputs of 16 features or more: W_ih packed
     * once per run too; each block's projection reads it (its rows, as a
     * per-step product's, do not depend on the call: a recomputed segment
     * replays them bit for bit). Narrower inputs keep the per-step product:
     * the backward's copy packed the other way has panels of 16 input
     * columns, mostly padding there. One step: the plain product. */
    mn_node *wip = T > 1 && xs.d[2] >= 16 ? mn_pack_weight(g, p->wih, true) : NULL;
    mn_node **hs = malloc((size_t)(T ? T : 1) * sizeof *hs), **xp = malloc((size_t)(nb ? nb : 1) * sizeof *xp);
    if (!hs || !xp) { free(hs); free(xp); mn_graph_fail(g, MN_ERR_NOMEM, "rnn: out of memory"); return NULL; }
    for (int64_t b = 0; b < nb; b++) {
        int64_t t0, t1;
        block_steps(T, S, b, rev, &t0, &t1);
        mn_node *xb = nb == 1 ? x : mn_slice(g, x, 0, t0, t1, 1);
        xp[b] = wip ? mn_matmul_packed(g, xb, p->wih, wip, true)    /* [S, B, G], rows per step (recompute) */
                    : mn_matmul_steps(g, xb, p->wih, true);
        if (bias) xp[b] = mn_add(g, xp[b], bias);
        if (p->bhh && o->mode != MN_RNN_GRU) xp[b] = mn_add(g, xp[b], p->bhh);
    }
    /* Two or more steps: W_hh packed once per run, every step's product
     * reads the packed copy (a GEMM call would pack it again, about 20% of
     * a 32-row product). One step (a sampling graph): a plain product. */
    p->whp = T > 1 ? mn_pack_weight(g, p->whh, true) : NULL;
    for (int64_t i = 0; i < T; i++) {
        int64_t t = rev ? T - 1 - i : i, t0, t1;
        block_steps(T, S, i / S, rev, &t0, &t1);
        mn_node *xt = mn_reshape(g, mn_slice(g, xp[i / S], 0, t - t0, t - t0 + 1, 1), MN_SHAPE(xs.d[1], G));
        h = hs[t] = cell(g, o, p, t, xt, h, &c);
    }
    *h_last = h; *c_last = c;
    mn_node *out = stack_blocks(g, hs, T, xs.d[1]);
    free(hs);
    free(xp);
    return out;
}

mn_rnn_out mn_rnn(mn_graph *g, const char *prefix, mn_node *x, mn_rnn_opts o)
{
    mn_rnn_out r = { 0 };
    mn_shape xs = mn_node_shape(x);
    int L = o.layers > 0 ? o.layers : 1, D = o.bidirectional ? 2 : 1;
    if (mn_graph_status(g)) return r;
    if (!x || xs.ndim != 3 || o.hidden <= 0 || o.layers < 0 || !(o.dropout >= 0 && o.dropout < 1)) {
        char sh[96];
        mn_graph_fail(g, MN_ERR_SHAPE, "rnn \"%s\": input %s must be [T, B, features], hidden > 0, 0 <= dropout < 1",
                      prefix, mn_shape_str(xs, sh, sizeof sh));
        return r;
    }
    int64_t B = xs.d[1], H = o.hidden;
    mn_node **hn = malloc((size_t)(L * D) * sizeof *hn), **cn = malloc((size_t)(L * D) * sizeof *cn);
    if (!hn || !cn) { free(hn); free(cn); mn_graph_fail(g, MN_ERR_NOMEM, "rnn \"%s\": out of memory", prefix); return r; }
    mn_node *in = x;
    for (int l = 0; l < L; l++) {
        mn_node *outs[2];
        int64_t isz = mn_node_shape(in).d[2];
        for (int d = 0; d < D; d++) {
            cell_params p = make_params(g, prefix, o.first_layer + l, d == 1, isz, &o);
            int k = l * D + d;
            mn_node *h0 = initial(g, o.h0, k, B, H), *c0 = o.mode == MN_RNN_LSTM ? initial(g, o.c0, k, B, H) : NULL;
            outs[d] = run_direction(g, &o, &p, in, d == 1, h0, c0, &hn[k], &cn[k]);
        }
        in = D == 2 ? mn_concat(g, outs, 2, 2) : outs[0];
        if (l + 1 < L && o.dropout > 0 && o.training) in = mn_dropout(g, in, o.dropout, true);
    }
    r.output = in;
    r.h_n = mn_stack(g, hn, L * D, 0);
    if (o.mode == MN_RNN_LSTM) r.c_n = mn_stack(g, cn, L * D, 0);
    free(hn); free(cn);
    return r;
}
