/* onnx/rnn.c: ONNX's LSTM, GRU and RNN as compositions of registry ops,
 * unrolled over the (static) sequence length: one matmul for the input
 * projection of all steps per direction, then per step one matmul with the
 * recurrent weights and elementwise gates (ONNX gate orders: LSTM i,o,f,c;
 * GRU z,r,h). Outputs Y [T, dirs, B, H], Y_h and Y_c [dirs, B, H]. */
#include "internal.h"
#include <stdio.h>
#include <string.h>

typedef struct {
    char kind;                  /* 'L', 'G', 'R' */
    int gates;                  /* 4, 3, 1 */
    int64_t T, B, I, H;
    float clip;                 /* 0: none */
    bool lbr;                   /* GRU linear_before_reset */
    char act[2][3][16];         /* per direction: f, g, h */
} rnn_spec;

static mn_node *act(mn_graph *g, const char *name, mn_node *x, float clip)
{
    if (clip > 0) x = mn_clamp(g, x, -clip, clip);
    if (!strcmp(name, "Sigmoid")) return mn_sigmoid(g, x);
    if (!strcmp(name, "Tanh")) return mn_tanh(g, x);
    return mn_relu(g, x);
}

/* Gate k of a [B, G*H] value or a [G*H] bias (the last axis). */
static mn_node *gate(mn_graph *g, mn_node *x, int k, int64_t H)
{
    return mn_slice(g, x, mn_node_shape(x).ndim - 1, k * H, (k + 1) * H, 1);
}

/* Direction d's slice of a [dirs, ...] tensor as [...]. */
static mn_node *dir_of(mn_graph *g, mn_node *w, int d)
{
    mn_shape s = mn_node_shape(w), t = { .ndim = s.ndim - 1 };
    for (int i = 1; i < s.ndim; i++) t.d[i - 1] = s.d[i];
    return mn_reshape(g, mn_slice(g, w, 0, d, d + 1, 1), t);
}

/* One time step: new h (and c through *c). xw [B, G*H] holds x W^T + Wb. */
static mn_node *step(mn_graph *g, const rnn_spec *s, int d, mn_node *xw, mn_node *h, mn_node **c, mn_node *R, mn_node *rb, mn_node *P)
{
    const char (*a)[16] = s->act[d];
    int64_t H = s->H;
    mn_node *hr = mn_matmul(g, h, R, false, true);
    if (s->kind == 'G') {
        mn_node *hz = gate(g, hr, 0, H), *hrr = gate(g, hr, 1, H), *hh = gate(g, hr, 2, H);
        if (rb) {
            hz = mn_add(g, hz, gate(g, rb, 0, H));
            hrr = mn_add(g, hrr, gate(g, rb, 1, H));
        }
        mn_node *z = act(g, a[0], mn_add(g, gate(g, xw, 0, H), hz), s->clip);
        mn_node *r = act(g, a[0], mn_add(g, gate(g, xw, 1, H), hrr), s->clip);
        mn_node *cand;
        if (s->lbr) {
            if (rb) hh = mn_add(g, hh, gate(g, rb, 2, H));
            cand = mn_add(g, gate(g, xw, 2, H), mn_mul(g, r, hh));
        } else {
            mn_node *Rh = mn_slice(g, R, 0, 2 * H, 3 * H, 1);
            mn_node *rh = mn_matmul(g, mn_mul(g, r, h), Rh, false, true);
            if (rb) rh = mn_add(g, rh, gate(g, rb, 2, H));
            cand = mn_add(g, gate(g, xw, 2, H), rh);
        }
        mn_node *n = act(g, a[1], cand, s->clip);
        return mn_add(g, mn_mul(g, mn_sub(g, mn_scalar(g, 1.0f), z), n), mn_mul(g, z, h));
    }
    mn_node *pre = mn_add(g, xw, hr);
    if (rb) pre = mn_add(g, pre, rb);
    if (s->kind == 'R') return act(g, a[0], pre, s->clip);
    mn_node *pi = gate(g, pre, 0, H), *po = gate(g, pre, 1, H), *pf = gate(g, pre, 2, H), *pc = gate(g, pre, 3, H);
    if (P) {
        pi = mn_add(g, pi, mn_mul(g, mn_slice(g, P, 0, 0, H, 1), *c));
        pf = mn_add(g, pf, mn_mul(g, mn_slice(g, P, 0, 2 * H, 3 * H, 1), *c));
    }
    mn_node *i = act(g, a[0], pi, s->clip), *f = act(g, a[0], pf, s->clip), *cc = act(g, a[1], pc, s->clip);
    *c = mn_add(g, mn_mul(g, f, *c), mn_mul(g, i, cc));
    if (P) po = mn_add(g, po, mn_mul(g, mn_slice(g, P, 0, H, 2 * H, 1), *c));
    mn_node *o = act(g, a[0], po, s->clip);
    return mn_mul(g, o, act(g, a[2], *c, 0));
}

/* Reads activations (per direction, defaults by kind); false if unsupported. */
static bool read_acts(const Onnx__NodeProto *n, rnn_spec *s, int dirs, char *bad, size_t badlen)
{
    static const char *def[3][3] = { { "Sigmoid", "Tanh", "Tanh" }, { "Sigmoid", "Tanh", "" }, { "Tanh", "", "" } };
    int k = s->kind == 'L' ? 0 : s->kind == 'G' ? 1 : 2, per = s->kind == 'L' ? 3 : s->kind == 'G' ? 2 : 1;
    const Onnx__AttributeProto *a = mn__ox_attr(n, "activations");
    if (a && (int)a->n_strings != per * dirs) {
        snprintf(bad, badlen, "activations lists %zu names for %d", a->n_strings, per * dirs);
        return false;
    }
    for (int d = 0; d < dirs; d++)
        for (int j = 0; j < 3; j++) {
            const char *src = def[k][j];
            char buf[16] = "";
            if (a && j < per) {
                size_t len = a->strings[d * per + j].len < 15 ? a->strings[d * per + j].len : 15;
                memcpy(buf, a->strings[d * per + j].data, len);
                buf[len] = 0;
                src = buf;
                if (strcmp(src, "Sigmoid") && strcmp(src, "Tanh") && strcmp(src, "Relu")) {
                    snprintf(bad, badlen, "activation %s (Sigmoid, Tanh, Relu)", src);
                    return false;
                }
            }
            snprintf(s->act[d][j], sizeof s->act[d][j], "%s", src);
        }
    return true;
}

static mn_status rnn_fail(mn_graph *g, mn_status code, const char *what)
{
    return mn_graph_fail(g, code, "%s", what);
}

/* One direction over all steps: fills hs[t] (time order) and the final h, c. */
static void run_dir(mn_graph *g, const rnn_spec *s, int d, bool rev, mn_node *X, ox_val *const *in, int nin,
                    mn_node **hs, mn_node **hT, mn_node **cT)
{
    int64_t G = s->gates, H = s->H;
    mn_node *W = dir_of(g, in[1]->node, d), *R = dir_of(g, in[2]->node, d);
    mn_node *wb = NULL, *rb = NULL, *P = NULL;
    if (nin > 3 && in[3] && in[3]->node) {
        mn_node *b = dir_of(g, in[3]->node, d);
        wb = mn_slice(g, b, 0, 0, G * H, 1);
        rb = mn_slice(g, b, 0, G * H, 2 * G * H, 1);
    }
    if (s->kind == 'L' && nin > 7 && in[7] && in[7]->node) P = dir_of(g, in[7]->node, d);
    mn_node *xw = mn_matmul(g, mn_reshape(g, X, MN_SHAPE(s->T * s->B, s->I)), W, false, true);
    if (wb) xw = mn_add(g, xw, wb);
    mn_node *h = nin > 5 && in[5] && in[5]->node ? dir_of(g, in[5]->node, d) : mn_fill(g, MN_SHAPE(s->B, H), 0.0f, MN_F32);
    mn_node *c = nin > 6 && in[6] && in[6]->node ? dir_of(g, in[6]->node, d) : mn_fill(g, MN_SHAPE(s->B, H), 0.0f, MN_F32);
    for (int64_t k = 0; k < s->T && h; k++) {
        int64_t t = rev ? s->T - 1 - k : k;
        mn_node *xt = mn_slice(g, xw, 0, t * s->B, (t + 1) * s->B, 1);
        h = step(g, s, d, xt, h, &c, R, rb, P);
        hs[t] = h;
    }
    *hT = h;
    *cT = c;
}

/* kind: 'L' (LSTM), 'G' (GRU) or 'R' (RNN), chosen by the table's row. */
static mn_status recurrent(char kind, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out, int nout)
{
    rnn_spec s = { .kind = kind };
    s.gates = s.kind == 'L' ? 4 : s.kind == 'G' ? 3 : 1;
    if (nin < 3 || !in[0] || !in[1] || !in[2] || !in[0]->node || !in[1]->node || !in[2]->node)
        return rnn_fail(g, MN_ERR_FORMAT, "inputs X, W and R are required");
    char dir[32];
    mn__ox_attr_str(n, "direction", dir, sizeof dir);
    int dirs = !strcmp(dir, "bidirectional") ? 2 : 1;
    bool rev = !strcmp(dir, "reverse");
    if (dir[0] && strcmp(dir, "forward") && !rev && dirs == 1) return rnn_fail(g, MN_ERR_INVALID, "unknown direction");
    if (mn__ox_attr_int(n, "input_forget", 0)) return rnn_fail(g, MN_ERR_UNSUPPORTED, "input_forget=1");
    if (nin > 4 && in[4] && in[4]->node) {
        const mn_tensor *sl = in[4]->known;
        bool full = sl != NULL;
        int64_t T = mn_node_shape(in[0]->node).d[mn__ox_attr_int(n, "layout", 0) ? 1 : 0];
        for (int64_t i = 0; sl && i < mn_tensor_numel(sl); i++) full = full && mn_i32(sl)[i] == T;
        if (!full) return rnn_fail(g, MN_ERR_UNSUPPORTED, "sequence_lens other than the full length");
    }
    char bad[128];
    if (!read_acts(n, &s, dirs, bad, sizeof bad)) return rnn_fail(g, MN_ERR_UNSUPPORTED, bad);
    bool layout = mn__ox_attr_int(n, "layout", 0) != 0;
    mn_node *X = in[0]->node;
    mn_shape xs = mn_node_shape(X), ws = mn_node_shape(in[1]->node);
    if (xs.ndim != 3 || ws.ndim != 3 || ws.d[0] != dirs) return rnn_fail(g, MN_ERR_SHAPE, "X must be 3-D and W [num_directions, gates*hidden, input]");
    if (layout) X = mn_permute(g, X, 3, (int[]){ 1, 0, 2 });
    xs = mn_node_shape(X);
    s.T = xs.d[0];
    s.B = xs.d[1];
    s.I = xs.d[2];
    s.H = mn__ox_attr_int(n, "hidden_size", ws.d[1] / s.gates);
    s.clip = mn__ox_attr_float(n, "clip", 0.0f);
    s.lbr = mn__ox_attr_int(n, "linear_before_reset", 0) != 0;
    if (s.T < 1 || s.T > 4096 || s.H < 1 || ws.d[1] != s.gates * s.H) return rnn_fail(g, MN_ERR_SHAPE, "bad sequence length or hidden_size");
    mn_node *hs[2][4096], *hT[2], *cT[2], *ys[2];
    for (int d = 0; d < dirs; d++) {
        run_dir(g, &s, d, rev || d == 1, X, in, nin, hs[d], &hT[d], &cT[d]);
        if (mn_graph_status(g)) return mn_graph_status(g);
        ys[d] = mn_stack(g, hs[d], (int)s.T, 0);                 /* [T, B, H] */
    }
    mn_node *Y = mn_stack(g, ys, dirs, 1);                      /* [T, dirs, B, H] */
    mn_node *Yh = mn_stack(g, hT, dirs, 0), *Yc = mn_stack(g, cT, dirs, 0);
    if (layout) {
        Y = mn_permute(g, Y, 4, (int[]){ 2, 0, 1, 3 });
        Yh = mn_permute(g, Yh, 3, (int[]){ 1, 0, 2 });
        Yc = mn_permute(g, Yc, 3, (int[]){ 1, 0, 2 });
    }
    out[0] = Y;
    if (nout > 1) out[1] = Yh;
    if (nout > 2 && s.kind == 'L') out[2] = Yc;
    return mn_graph_status(g);
}

#define RNN_CONV(fn, kind) \
    mn_status fn(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out, \
                 mn_tensor **out_known, int *out_elem, int nout) \
    { \
        (void)cx; \
        (void)out_known; \
        (void)out_elem; \
        return recurrent(kind, g, n, in, nin, out, nout); \
    }
RNN_CONV(mn__ox_lstm, 'L')
RNN_CONV(mn__ox_gru, 'G')
RNN_CONV(mn__ox_rnn, 'R')
