/* onnx/window.c: the converters of the windowed ONNX ops (Conv,
 * ConvTranspose, MaxPool, AveragePool), Pad and TopK, rows of the mapping
 * table in onnx/table.c. Windows become ops/window.c's unfold/fold with
 * reshapes and matmuls (grouped products as batched matmuls), pooling a max
 * or sum over the kernel axis, Pad one index_select (and where) per padded
 * axis, TopK the topk op and a gather. Everything fixed at import (kernel,
 * pads, average divisors, pad index maps) is computed here in plain C. */
#include "internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kernel sizes, strides, dilations and pads above this are refused (they
 * are ints in the window ops' attributes; sums of them stay far from overflow). */
#define OX_WIN_MAX ((int64_t)1 << 24)

/* The geometry of one windowed node, ONNX attributes resolved. */
typedef struct {
    int nsp;
    int64_t S[MN_MAX_DIMS], K[MN_MAX_DIMS], st[MN_MAX_DIMS], dl[MN_MAX_DIMS], lo[MN_MAX_DIMS], hi[MN_MAX_DIMS];
    int64_t extra[MN_MAX_DIMS];     /* ceil_mode: padding past hi that only completes the last window */
} win;

static mn_status status_of(mn_graph *g, mn_node *y)
{
    if (y) return MN_OK;
    return mn_graph_status(g) ? mn_graph_status(g) : MN_ERR_INVALID;
}

static mn_node *need(mn_graph *g, ox_val *const *in, int nin, int i)
{
    if (i < nin && in[i] && in[i]->node) return in[i]->node;
    mn_graph_fail(g, MN_ERR_FORMAT, "input %d is missing", i);
    return NULL;
}

static const mn_tensor *known(mn_graph *g, ox_val *const *in, int nin, int i)
{
    if (i < nin && in[i] && in[i]->known) return in[i]->known;
    if (i < nin && in[i])
        mn_graph_fail(g, MN_ERR_UNSUPPORTED, "input \"%s\" (%d) must be fixed at import (an initializer, a Constant or a bound input)",
                      in[i]->name, i);
    else mn_graph_fail(g, MN_ERR_FORMAT, "input %d is missing", i);
    return NULL;
}

static int64_t known_int(const mn_tensor *t, int64_t i)
{
    return t->dtype == MN_I32 ? mn_i32(t)[i] : (int64_t)mn_f32(t)[i];
}

/* An ints attribute of exactly k entries into v (def when absent). */
static bool ints_attr(mn_graph *g, const Onnx__NodeProto *n, const char *name, int k, int64_t def, int64_t *v)
{
    size_t len = 0;
    const int64_t *a = mn__ox_attr_ints(n, name, &len);
    for (int i = 0; i < k; i++) v[i] = a ? 0 : def;
    if (!a) return true;
    if ((int)len != k) {
        mn_graph_fail(g, MN_ERR_INVALID, "attribute %s has %zu entries, not %d", name, len, k);
        return false;
    }
    for (int i = 0; i < k; i++) v[i] = a[i];
    return true;
}

/* Pads of auto_pad SAME_*: the output is ceil(S / stride). */
static void same_pads(win *w, int i, bool upper)
{
    int64_t out = (w->S[i] + w->st[i] - 1) / w->st[i];
    int64_t total = (out - 1) * w->st[i] + (w->K[i] - 1) * w->dl[i] + 1 - w->S[i];
    if (total < 0) total = 0;
    w->lo[i] = upper ? total / 2 : total - total / 2;
    w->hi[i] = total - w->lo[i];
}

/* Kernel from kernel_shape (or kdims when absent), strides, dilations, pads, auto_pad, ceil_mode. */
static bool win_of(mn_graph *g, const Onnx__NodeProto *n, mn_shape xs, const int64_t *kdims, win *w)
{
    memset(w, 0, sizeof *w);
    w->nsp = xs.ndim - 2;
    if (w->nsp < 1 || w->nsp > 3) {
        mn_graph_fail(g, MN_ERR_UNSUPPORTED, "input of %d dims (1 to 3 spatial dims after N and C)", xs.ndim);
        return false;
    }
    int k = w->nsp;
    int64_t pads[2 * MN_MAX_DIMS];
    if (!ints_attr(g, n, "kernel_shape", k, 0, w->K) || !ints_attr(g, n, "strides", k, 1, w->st) ||
        !ints_attr(g, n, "dilations", k, 1, w->dl) || !ints_attr(g, n, "pads", 2 * k, 0, pads)) return false;
    char ap[32];
    mn__ox_attr_str(n, "auto_pad", ap, sizeof ap);
    bool ceil_mode = mn__ox_attr_int(n, "ceil_mode", 0) != 0;
    for (int i = 0; i < k; i++) {
        w->S[i] = xs.d[2 + i];
        if (!mn__ox_attr(n, "kernel_shape") && kdims) w->K[i] = kdims[i];
        w->lo[i] = pads[i];
        w->hi[i] = pads[k + i];
        if (w->K[i] < 1 || w->st[i] < 1 || w->dl[i] < 1 || w->lo[i] < 0 || w->hi[i] < 0 || w->K[i] > OX_WIN_MAX ||
            w->st[i] > OX_WIN_MAX || w->dl[i] > OX_WIN_MAX || w->lo[i] > OX_WIN_MAX || w->hi[i] > OX_WIN_MAX) {
            mn_graph_fail(g, MN_ERR_INVALID, "spatial dim %d: kernel %lld, stride %lld, dilation %lld, pads %lld/%lld", i,
                          (long long)w->K[i], (long long)w->st[i], (long long)w->dl[i], (long long)w->lo[i], (long long)w->hi[i]);
            return false;
        }
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) same_pads(w, i, ap[5] == 'U');
        else if (!strcmp(ap, "VALID")) w->lo[i] = w->hi[i] = 0;
        else if (ap[0] && strcmp(ap, "NOTSET")) {
            mn_graph_fail(g, MN_ERR_INVALID, "auto_pad \"%s\" (NOTSET, SAME_UPPER, SAME_LOWER, VALID)", ap);
            return false;
        }
        int64_t span = w->S[i] + w->lo[i] + w->hi[i] - w->dl[i] * (w->K[i] - 1) - 1;
        if (span < 0) {
            mn_graph_fail(g, MN_ERR_SHAPE, "spatial dim %d: window %lld is larger than the padded input %lld", i,
                          (long long)(w->dl[i] * (w->K[i] - 1) + 1), (long long)(w->S[i] + w->lo[i] + w->hi[i]));
            return false;
        }
        if (!ceil_mode || span % w->st[i] == 0) continue;
        int64_t out = span / w->st[i] + 2;                     /* ceil: one more window ... */
        if ((out - 1) * w->st[i] >= w->S[i] + w->lo[i]) out--; /* ... if it starts inside the input or the low pad */
        w->extra[i] = (out - 1) * w->st[i] + w->dl[i] * (w->K[i] - 1) + 1 - (w->S[i] + w->lo[i] + w->hi[i]);
        if (w->extra[i] < 0) w->extra[i] = 0;
    }
    return true;
}

static int64_t win_out(const win *w, int i)
{
    return (w->S[i] + w->lo[i] + w->hi[i] + w->extra[i] - w->dl[i] * (w->K[i] - 1) - 1) / w->st[i] + 1;
}

static mn_shape dims(int k, const int64_t *v)
{
    mn_shape s = { .ndim = k };
    for (int i = 0; i < k; i++) s.d[i] = v[i];
    return s;
}

/* unfold (or fold into `image`) of x through the registry, by attribute names. */
static mn_node *window_op(mn_graph *g, const char *op, mn_node *x, const win *w, float pad_value, mn_shape image)
{
    int64_t hi[MN_MAX_DIMS];
    for (int i = 0; i < w->nsp; i++) hi[i] = w->hi[i] + w->extra[i];
    mn_attr_value v[] = {
        { "nsp", w->nsp, { 0 } }, { "kernel", 0, dims(w->nsp, w->K) }, { "stride", 0, dims(w->nsp, w->st) },
        { "dilation", 0, dims(w->nsp, w->dl) }, { "pad_lo", 0, dims(w->nsp, w->lo) }, { "pad_hi", 0, dims(w->nsp, hi) },
        { "pad_value", pad_value, { 0 } }, { "image", 0, image },
    };
    return mn_op_named(g, op, &x, 1, v, 8);
}

static int64_t kernel_positions(const win *w)
{
    int64_t p = 1;
    for (int i = 0; i < w->nsp; i++) p *= w->K[i];
    return p;
}

/* [N, C', O1..Ok] from blocks [.., L]: the output image shape. */
static mn_shape image_shape(int64_t N, int64_t C, const win *w)
{
    mn_shape s = MN_SHAPE(N, C);
    s.ndim = 2 + w->nsp;
    for (int i = 0; i < w->nsp; i++) s.d[2 + i] = win_out(w, i);
    return s;
}

static mn_node *as_f32(mn_graph *g, mn_node *x) { return x && mn_node_dtype(x) == MN_I32 ? mn_cast(g, x, MN_F32) : x; }

static mn_node *add_bias(mn_graph *g, mn_node *y, ox_val *const *in, int nin, int r)
{
    if (nin < 3 || !in[2] || !in[2]->node || !y) return y;
    mn_shape s = { .ndim = r - 1 };
    s.d[0] = mn_shape_numel(mn_node_shape(in[2]->node));
    for (int i = 1; i < r - 1; i++) s.d[i] = 1;
    return mn_add(g, y, mn_reshape(g, in[2]->node, s));
}

/* Conv: y = W' x' + b with x' = unfold(x) as [N, G, C/G * Kp, L], W' = W as [G, M/G, C/G * Kp]. */
mn_status mn__ox_conv(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out,
                      mn_tensor **out_known, int *out_elem, int nout)
{
    (void)cx; (void)out_known; (void)out_elem; (void)nout;
    mn_node *x = as_f32(g, need(g, in, nin, 0)), *w = need(g, in, nin, 1);
    if (!x || !w) return mn_graph_status(g);
    mn_shape xs = mn_node_shape(x), ws = mn_node_shape(w);
    int64_t G = mn__ox_attr_int(n, "group", 1);
    if (ws.ndim != xs.ndim || xs.ndim < 3) return mn_graph_fail(g, MN_ERR_SHAPE, "weight has %d dims, input %d", ws.ndim, xs.ndim);
    if (G < 1 || xs.d[1] % G || ws.d[0] % G || ws.d[1] * G != xs.d[1])
        return mn_graph_fail(g, MN_ERR_SHAPE, "group %lld does not fit %lld input and %lld output channels (weight dim 1: %lld)",
                             (long long)G, (long long)xs.d[1], (long long)ws.d[0], (long long)ws.d[1]);
    win wd;
    if (!win_of(g, n, xs, ws.d + 2, &wd)) return mn_graph_status(g);
    for (int i = 0; i < wd.nsp; i++)
        if (wd.K[i] != ws.d[2 + i]) return mn_graph_fail(g, MN_ERR_SHAPE, "kernel_shape %lld differs from the weight's %lld", (long long)wd.K[i], (long long)ws.d[2 + i]);
    mn_shape ys = image_shape(xs.d[0], ws.d[0], &wd);
    int64_t CK = ws.d[1] * kernel_positions(&wd), L = mn_shape_numel(ys) / (ys.d[0] * ys.d[1]);
    mn_node *cols = mn_reshape(g, window_op(g, "unfold", x, &wd, 0.0f, (mn_shape){ 0 }), MN_SHAPE(xs.d[0], G, CK, L));
    mn_node *wm = mn_reshape(g, w, MN_SHAPE(G, ws.d[0] / G, CK));
    mn_node *y = mn_reshape(g, mn_matmul(g, wm, cols, false, false), ys);
    out[0] = add_bias(g, y, in, nin, xs.ndim);
    return status_of(g, out[0]);
}

/* ConvTranspose: y = fold(W'^T x') with x' [N, G, C/G, L], W' [G, C/G, M/G * Kp];
 * the output size from output_shape or s (I - 1) + op + d (K - 1) + 1 - pads. */
mn_status mn__ox_conv_transpose(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out,
                                mn_tensor **out_known, int *out_elem, int nout)
{
    (void)cx; (void)out_known; (void)out_elem; (void)nout;
    mn_node *x = as_f32(g, need(g, in, nin, 0)), *w = need(g, in, nin, 1);
    if (!x || !w) return mn_graph_status(g);
    mn_shape xs = mn_node_shape(x), ws = mn_node_shape(w);
    int64_t G = mn__ox_attr_int(n, "group", 1);
    if (ws.ndim != xs.ndim || xs.ndim < 3 || xs.ndim > 5) return mn_graph_fail(g, MN_ERR_SHAPE, "weight has %d dims, input %d", ws.ndim, xs.ndim);
    if (G < 1 || xs.d[1] % G || ws.d[0] != xs.d[1])
        return mn_graph_fail(g, MN_ERR_SHAPE, "group %lld does not fit %lld input channels (weight dim 0: %lld)", (long long)G,
                             (long long)xs.d[1], (long long)ws.d[0]);
    int k = xs.ndim - 2;
    win wd = { .nsp = k };
    int64_t pads[2 * MN_MAX_DIMS], op[MN_MAX_DIMS], os[MN_MAX_DIMS];
    size_t nos = 0;
    const int64_t *oshape = mn__ox_attr_ints(n, "output_shape", &nos);
    if (!ints_attr(g, n, "strides", k, 1, wd.st) || !ints_attr(g, n, "dilations", k, 1, wd.dl) || !ints_attr(g, n, "pads", 2 * k, 0, pads) ||
        !ints_attr(g, n, "output_padding", k, 0, op)) return mn_graph_status(g);
    char ap[32];
    mn__ox_attr_str(n, "auto_pad", ap, sizeof ap);
    mn_shape ys = MN_SHAPE(xs.d[0], ws.d[1] * G);
    ys.ndim = 2 + k;
    if (oshape && (int)nos < k) return mn_graph_fail(g, MN_ERR_INVALID, "output_shape has %zu entries for %d spatial dims", nos, k);
    for (int i = 0; i < k; i++) {
        wd.K[i] = ws.d[2 + i];
        bool big = wd.st[i] > OX_WIN_MAX || wd.dl[i] > OX_WIN_MAX || op[i] > OX_WIN_MAX || pads[i] > OX_WIN_MAX || pads[k + i] > OX_WIN_MAX ||
                   pads[i] < -OX_WIN_MAX || pads[k + i] < -OX_WIN_MAX || (oshape && (oshape[(int)nos - k + i] > OX_WIN_MAX || oshape[(int)nos - k + i] < 0));
        if (big) return mn_graph_fail(g, MN_ERR_INVALID, "spatial dim %d: strides, dilations, pads or output sizes beyond %lld", i, (long long)OX_WIN_MAX);
        int64_t full = wd.st[i] * (xs.d[2 + i] - 1) + op[i] + wd.dl[i] * (wd.K[i] - 1) + 1;
        wd.lo[i] = pads[i];
        wd.hi[i] = pads[k + i];
        bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
        if (oshape || same) {
            os[i] = oshape ? oshape[(int)nos - k + i] : xs.d[2 + i] * wd.st[i];
            int64_t total = full - os[i];
            bool upper = !strcmp(ap, "SAME_UPPER");
            wd.lo[i] = upper ? total / 2 : total - total / 2;
            wd.hi[i] = total - wd.lo[i];
            if (total < 0) {                                   /* a larger output: zeros after the full one */
                wd.lo[i] = 0;
                wd.hi[i] = total;
            }
        }
        int64_t tail = op[i] - (wd.hi[i] < 0 ? wd.hi[i] : 0);   /* output past the last window */
        if (wd.lo[i] < 0 || op[i] < 0 || wd.st[i] < 1 || wd.dl[i] < 1 || (tail >= wd.st[i] && tail >= wd.dl[i]))
            return mn_graph_fail(g, MN_ERR_UNSUPPORTED, "spatial dim %d: pads %lld/%lld, output_padding %lld (negative padding is not supported)", i,
                                 (long long)wd.lo[i], (long long)wd.hi[i], (long long)op[i]);
        ys.d[2 + i] = full - wd.lo[i] - wd.hi[i];
        wd.hi[i] = wd.hi[i] > op[i] ? wd.hi[i] - op[i] : 0;    /* fold's grid: the output padding is image, not pad */
        if (ys.d[2 + i] < 1) return mn_graph_fail(g, MN_ERR_SHAPE, "spatial dim %d: output size %lld", i, (long long)ys.d[2 + i]);
    }
    int64_t C = xs.d[1], L = mn_shape_numel(xs) / (xs.d[0] * C), MK = ws.d[1] * kernel_positions(&wd);
    mn_node *xm = mn_reshape(g, x, MN_SHAPE(xs.d[0], G, C / G, L));
    mn_node *wm = mn_reshape(g, w, MN_SHAPE(G, C / G, MK));
    mn_node *cols = mn_reshape(g, mn_matmul(g, wm, xm, true, false), MN_SHAPE(xs.d[0], ys.d[1], kernel_positions(&wd), L));
    out[0] = add_bias(g, window_op(g, "fold", cols, &wd, 0.0f, ys), in, nin, xs.ndim);
    return status_of(g, out[0]);
}

/* AveragePool's divisor per output position: the window positions inside
 * the input (count_include_pad 0) or inside input + declared pads (1). */
static mn_node *avg_divisor(mn_graph *g, const win *w, bool include_pad)
{
    int64_t O[MN_MAX_DIMS], total = 1;
    for (int i = 0; i < w->nsp; i++) total *= (O[i] = win_out(w, i));
    float *d = malloc((size_t)total * sizeof *d);
    if (!d) return mn_graph_fail(g, MN_ERR_NOMEM, "out of memory"), NULL;
    for (int64_t e = 0; e < total; e++) {
        double cnt = 1;
        int64_t rest = e;
        for (int i = w->nsp - 1; i >= 0; i--) {
            int64_t oi = rest % O[i], c = 0;
            rest /= O[i];
            for (int64_t q = 0; q < w->K[i]; q++) {
                int64_t p = oi * w->st[i] + q * w->dl[i] - w->lo[i];
                c += include_pad ? p >= -w->lo[i] && p < w->S[i] + w->hi[i] : p >= 0 && p < w->S[i];
            }
            cnt *= (double)c;
        }
        d[e] = (float)cnt;
    }
    mn_node *c = mn_constant(g, MN_F32, dims(w->nsp, O), d);
    free(d);
    return c;
}

/* MaxPool: max over unfold(x, -inf) ; AveragePool: sum over unfold(x, 0) / divisor. */
/* The source position of kernel offset k for output position l: the flat
 * spatial index in x (row-major, or column-major with storage_order 1),
 * or -1 in the padding. */
static int64_t source_position(const win *w, int64_t k, int64_t l, const int64_t *O, bool col_major)
{
    int64_t p[MN_MAX_DIMS], pos = 0;
    for (int i = w->nsp - 1; i >= 0; i--) {
        p[i] = (l % O[i]) * w->st[i] + (k % w->K[i]) * w->dl[i] - w->lo[i];
        k /= w->K[i];
        l /= O[i];
        if (p[i] < 0 || p[i] >= w->S[i]) return -1;
    }
    for (int j = 0; j < w->nsp; j++) {
        int i = col_major ? w->nsp - 1 - j : j;
        pos = pos * w->S[i] + p[i];
    }
    return pos;
}

/* MaxPool's Indices: the flat position in x (over N, C and the spatial dims)
 * of each window's first maximum (argmax over the unfolded kernel axis),
 * read from a constant table of source positions [Kp, L] by gather, plus
 * (n C + c) times the image size. Exact in f32 below 2^24 positions. */
static mn_node *pool_indices(mn_graph *g, mn_node *cols, const win *w, mn_shape xs, mn_shape ys, bool col_major)
{
    int64_t Kp = kernel_positions(w), L = 1, S = 1, NC = xs.d[0] * xs.d[1], O[MN_MAX_DIMS];
    for (int i = 0; i < w->nsp; i++) {
        L *= (O[i] = win_out(w, i));
        S *= w->S[i];
    }
    if (NC * S > ((int64_t)1 << 24) || Kp * L > ((int64_t)1 << 24))
        return mn_graph_fail(g, MN_ERR_UNSUPPORTED, "Indices of more than 2^24 positions"), NULL;
    float *tbl = malloc((size_t)(Kp * L) * sizeof *tbl), *base = malloc((size_t)NC * sizeof *base);
    for (int64_t k = 0; tbl && k < Kp; k++)
        for (int64_t l = 0; l < L; l++) tbl[k * L + l] = (float)source_position(w, k, l, O, col_major);
    for (int64_t i = 0; base && i < NC; i++) base[i] = (float)(i * S);
    mn_node *t = tbl ? mn_constant(g, MN_F32, MN_SHAPE(1, 1, Kp, L), tbl) : NULL;
    mn_node *b = base ? mn_constant(g, MN_F32, MN_SHAPE(xs.d[0], xs.d[1], 1), base) : NULL;
    free(tbl);
    free(base);
    if (!t || !b) return mn_graph_status(g) ? NULL : (mn_graph_fail(g, MN_ERR_NOMEM, "out of memory"), NULL);
    mn_node *am = mn_argmax(g, cols, 2, true);                                          /* [N, C, 1, L] */
    mn_node *sel = mn_gather(g, mn_expand(g, t, MN_SHAPE(xs.d[0], xs.d[1], Kp, L)), 2, am);
    mn_node *idx = mn_add(g, mn_reshape(g, sel, MN_SHAPE(xs.d[0], xs.d[1], L)), b);
    return mn_cast(g, mn_reshape(g, idx, ys), MN_I32);
}

static mn_status pool(bool is_max, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out, int nout,
                      int *out_elem)
{
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    bool indices = is_max && nout > 1 && n->output[1][0];
    int64_t order = mn__ox_attr_int(n, "storage_order", 0);
    if (indices && order != 0 && order != 1) return mn_graph_fail(g, MN_ERR_INVALID, "storage_order %lld (0 or 1)", (long long)order);
    bool was_int = mn_node_dtype(x) == MN_I32;
    x = as_f32(g, x);
    mn_shape xs = mn_node_shape(x);
    win wd;
    if (!win_of(g, n, xs, NULL, &wd)) return mn_graph_status(g);
    if (!mn__ox_attr(n, "kernel_shape")) return mn_graph_fail(g, MN_ERR_INVALID, "kernel_shape is required");
    mn_shape ys = image_shape(xs.d[0], xs.d[1], &wd);
    mn_node *cols = window_op(g, "unfold", x, &wd, is_max ? -INFINITY : 0.0f, (mn_shape){ 0 });
    mn_node *y;
    if (is_max) y = mn_max(g, cols, 2, false);
    else {
        int ax = 2;
        y = mn_div(g, mn_reshape(g, mn_sum(g, cols, 1, &ax, false), ys), avg_divisor(g, &wd, mn__ox_attr_int(n, "count_include_pad", 0) != 0));
    }
    y = mn_reshape(g, y, ys);
    if (y && was_int) y = mn_cast(g, y, MN_I32);
    out[0] = y;
    if (indices && y) {
        out[1] = pool_indices(g, cols, &wd, xs, ys, order == 1);
        out_elem[1] = OX_INT64;
        return status_of(g, out[1]);
    }
    return status_of(g, y);
}

mn_status mn__ox_max_pool(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out,
                          mn_tensor **out_known, int *out_elem, int nout)
{
    (void)cx; (void)out_known;
    return pool(true, g, n, in, nin, out, nout, out_elem);
}

mn_status mn__ox_average_pool(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out,
                              mn_tensor **out_known, int *out_elem, int nout)
{
    (void)cx; (void)out_known;
    return pool(false, g, n, in, nin, out, nout, out_elem);
}

/* The source index of padded position i (from -b) on an axis of n, or -1 (constant). */
static int64_t pad_source(int64_t i, int64_t n, const char *mode)
{
    if (i >= 0 && i < n) return i;
    if (!strcmp(mode, "edge")) return i < 0 ? 0 : n - 1;
    if (!strcmp(mode, "wrap")) return ((i % n) + n) % n;
    if (!strcmp(mode, "reflect")) {
        if (n == 1) return 0;
        int64_t p = 2 * (n - 1);
        i = ((i % p) + p) % p;
        return i < n ? i : p - i;
    }
    return -1;
}

/* One axis of Pad: negative pads slice, positive ones gather by a fixed index map. */
static mn_node *pad_axis(mn_graph *g, mn_node *x, int a, int64_t b, int64_t e, const char *mode, float value)
{
    int64_t n = mn_node_shape(x).d[a];
    if (b < 0 || e < 0) {
        x = mn_slice(g, x, a, b < 0 ? -b : 0, e < 0 ? n + e : n, 1);
        n = x ? mn_node_shape(x).d[a] : 0;
        b = b < 0 ? 0 : b;
        e = e < 0 ? 0 : e;
    }
    if (!x || (b == 0 && e == 0)) return x;
    if (n == 0 && strcmp(mode, "constant")) return mn_graph_fail(g, MN_ERR_SHAPE, "%s padding of an empty axis", mode), NULL;
    int64_t len = n + b + e;
    int32_t *idx = malloc((size_t)len * sizeof *idx);
    float *mask = malloc((size_t)len * sizeof *mask);
    if (!idx || !mask) { free(idx); free(mask); return mn_graph_fail(g, MN_ERR_NOMEM, "out of memory"), NULL; }
    for (int64_t i = 0; i < len; i++) {
        int64_t s = pad_source(i - b, n, mode);
        idx[i] = (int32_t)(s < 0 ? 0 : s);
        mask[i] = s >= 0;
    }
    mn_node *y = n ? mn_index_select(g, x, a, mn_constant(g, MN_I32, MN_SHAPE(len), idx)) : NULL;
    if (!strcmp(mode, "constant")) {
        int r = mn_node_shape(x).ndim;
        mn_shape ms = { .ndim = r - a };
        ms.d[0] = len;
        for (int i = 1; i < r - a; i++) ms.d[i] = 1;
        mn_node *fill = mn_scalar(g, value);
        y = y ? mn_where(g, mn_constant(g, MN_F32, ms, mask), y, fill) : NULL;
        if (!n) {
            mn_shape s = mn_node_shape(x);
            s.d[a] = len;
            y = mn_expand(g, fill, s);
        }
    }
    free(idx);
    free(mask);
    return y;
}

/* Pad: pads (and the constant value, axes at opset 18) from attributes (opset < 11) or inputs fixed at import. */
mn_status mn__ox_pad(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out,
                     mn_tensor **out_known, int *out_elem, int nout)
{
    (void)cx; (void)out_known; (void)out_elem; (void)nout;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int r = mn_node_shape(x).ndim;
    char mode[16];
    mn__ox_attr_str(n, "mode", mode, sizeof mode);
    if (!mode[0]) snprintf(mode, sizeof mode, "constant");
    if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge") && strcmp(mode, "wrap"))
        return mn_graph_fail(g, MN_ERR_INVALID, "mode \"%s\" (constant, reflect, edge, wrap)", mode);
    int64_t pads[2 * MN_MAX_DIMS], axes[MN_MAX_DIMS];
    size_t np = 0;
    const int64_t *ap = mn__ox_attr_ints(n, "pads", &np);
    if (!ap) ap = mn__ox_attr_ints(n, "paddings", &np);
    float value = mn__ox_attr_float(n, "value", 0.0f);
    const mn_tensor *tp = ap ? NULL : known(g, in, nin, 1);
    if (!ap && !tp) return mn_graph_status(g);
    int64_t k = ap ? (int64_t)np : mn_tensor_numel(tp);
    int na = r;
    for (int i = 0; i < r; i++) axes[i] = i;
    if (nin > 3 && in[3]) {
        const mn_tensor *ta = known(g, in, nin, 3);
        if (!ta) return mn_graph_status(g);
        na = (int)mn_tensor_numel(ta);
        for (int i = 0; i < na && i < MN_MAX_DIMS; i++) axes[i] = known_int(ta, i) < 0 ? known_int(ta, i) + r : known_int(ta, i);
    }
    if (na > r || k != 2 * na) return mn_graph_fail(g, MN_ERR_INVALID, "pads has %lld entries for %d axes", (long long)k, na);
    for (int64_t i = 0; i < k; i++) {
        pads[i] = ap ? ap[i] : known_int(tp, i);
        if (pads[i] > OX_WIN_MAX || pads[i] < -OX_WIN_MAX) return mn_graph_fail(g, MN_ERR_INVALID, "pad %lld is beyond %lld", (long long)pads[i], (long long)OX_WIN_MAX);
    }
    if (nin > 2 && in[2]) {
        const mn_tensor *tv = known(g, in, nin, 2);
        if (!tv) return mn_graph_status(g);
        value = mn_tensor_numel(tv) ? (tv->dtype == MN_I32 ? (float)mn_i32(tv)[0] : mn_f32(tv)[0]) : 0.0f;
    }
    bool was_int = mn_node_dtype(x) == MN_I32;
    mn_node *y = as_f32(g, x);
    for (int i = 0; y && i < na; i++) {
        if (axes[i] < 0 || axes[i] >= r) return mn_graph_fail(g, MN_ERR_INVALID, "axis %lld out of range for rank %d", (long long)axes[i], r);
        y = pad_axis(g, y, (int)axes[i], pads[i], pads[na + i], mode, value);
    }
    if (y && was_int) y = mn_cast(g, y, MN_I32);
    out[0] = y;
    return status_of(g, y);
}

/* TopK: indices by the topk op (k fixed at import), values gathered from them. */
mn_status mn__ox_topk(ox_ctx *cx, mn_graph *g, const Onnx__NodeProto *n, ox_val *const *in, int nin, mn_node **out,
                      mn_tensor **out_known, int *out_elem, int nout)
{
    (void)out_known;
    mn_node *x = need(g, in, nin, 0);
    if (!x) return mn_graph_status(g);
    int64_t k = mn__ox_attr_int(n, "k", -1);
    if (cx->opset >= 10) {
        const mn_tensor *tk = known(g, in, nin, 1);
        if (!tk) return mn_graph_status(g);
        if (mn_tensor_numel(tk) != 1) return mn_graph_fail(g, MN_ERR_INVALID, "K must hold one value, not %lld", (long long)mn_tensor_numel(tk));
        k = known_int(tk, 0);
    }
    if (k < 1) return mn_graph_fail(g, MN_ERR_UNSUPPORTED, "k = %lld (empty tensors are not supported)", (long long)k);
    bool was_int = mn_node_dtype(x) == MN_I32;
    int axis = (int)mn__ox_attr_int(n, "axis", -1);
    mn_attr_value v[] = { { "axis", axis, { 0 } }, { "k", (double)k, { 0 } }, { "largest", mn__ox_attr_int(n, "largest", 1) != 0, { 0 } } };
    mn_node *xf = as_f32(g, x);
    mn_node *idx = mn_op_named(g, "topk", &xf, 1, v, 3);
    mn_node *vals = idx ? mn_gather(g, xf, axis, idx) : NULL;
    if (vals && was_int) vals = mn_cast(g, vals, MN_I32);
    out[0] = vals;
    if (nout > 1) {
        out[1] = idx;
        out_elem[1] = OX_INT64;
    }
    return status_of(g, vals);
}
