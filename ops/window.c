/* ops/window.c: sliding windows over 1 to 3 spatial dims: unfold (im2col)
 * and fold (col2im, its adjoint). Convolution is unfold + matmul, transposed
 * convolution matmul + fold, max pooling unfold (pad -inf) + max, average
 * pooling unfold + mean (onnx/table.c builds them), so two kernels give all
 * of them with gradients: the VJP of each is the other.
 * Invariant: both run the same loop nest (geometry from window_geom), one
 * reading the image, the other adding into it; images are disjoint per (n, c). */
#include "op.h"
#include "attrs.h"
#include "window.h"
#include <math.h>
#include <string.h>

/* The window geometry normalised to 3 spatial dims (leading unit dims). */
typedef struct {
    int64_t S[3], K[3], O[3], st[3], dl[3], lo[3];
    int64_t NC, Kp, L, img;      /* images, kernel positions, blocks, elements per image */
} window_geom;

static const mn_attr_field window_fields[] = {
    { "nsp", MN_ATTR_INT, offsetof(mn_window_attrs, nsp) },
    { "kernel", MN_ATTR_DIMS, offsetof(mn_window_attrs, kernel) },
    { "stride", MN_ATTR_DIMS, offsetof(mn_window_attrs, stride) },
    { "dilation", MN_ATTR_DIMS, offsetof(mn_window_attrs, dilation) },
    { "pad_lo", MN_ATTR_DIMS, offsetof(mn_window_attrs, pad_lo) },
    { "pad_hi", MN_ATTR_DIMS, offsetof(mn_window_attrs, pad_hi) },
    { "pad_value", MN_ATTR_FLOAT, offsetof(mn_window_attrs, pad_value) },
    { "image", MN_ATTR_SHAPE, offsetof(mn_window_attrs, image) },
    { NULL, 0, 0 },
};

/* Fills g from an image shape; a message in msg when the attributes do not fit it. */
static bool window_geom_of(const mn_window_attrs *a, mn_shape img, window_geom *g, char *msg, size_t n)
{
    if (a->nsp < 1 || a->nsp > 3) return snprintf(msg, n, "1 to 3 spatial dims, not %d", a->nsp), false;
    if (img.ndim != a->nsp + 2) return snprintf(msg, n, "the image must have %d dims [N, C, spatial...], not %d", a->nsp + 2, img.ndim), false;
    *g = (window_geom){ .NC = img.d[0] * img.d[1], .Kp = 1, .L = 1, .img = 1 };
    for (int i = 0; i < 3; i++) {
        int j = i - (3 - a->nsp);
        bool on = j >= 0;
        g->S[i] = on ? img.d[2 + j] : 1;
        g->K[i] = on ? a->kernel[j] : 1;
        g->st[i] = on ? a->stride[j] : 1;
        g->dl[i] = on ? a->dilation[j] : 1;
        g->lo[i] = on ? a->pad_lo[j] : 0;
        int64_t hi = on ? a->pad_hi[j] : 0;
        if (g->K[i] < 1 || g->st[i] < 1 || g->dl[i] < 1 || g->lo[i] < 0 || hi < 0)
            return snprintf(msg, n, "spatial dim %d: kernel, stride and dilation must be >= 1 and pads >= 0", j), false;
        int64_t span = g->S[i] + g->lo[i] + hi - g->dl[i] * (g->K[i] - 1) - 1;
        if (span < 0) return snprintf(msg, n, "spatial dim %d: the window (%lld with dilation) is larger than the padded image (%lld)", j,
                                      (long long)(g->dl[i] * (g->K[i] - 1) + 1), (long long)(g->S[i] + g->lo[i] + hi)), false;
        g->O[i] = span / g->st[i] + 1;
        g->Kp *= g->K[i];
        g->L *= g->O[i];
        g->img *= g->S[i];
    }
    return true;
}

static mn_status infer_unfold(mn_infer_ctx *c)
{
    window_geom w;
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input must be f32");
    if (!window_geom_of(c->attrs, c->in[0].shape, &w, c->msg, c->msglen)) return MN_ERR_SHAPE;
    mn_shape s = c->in[0].shape;
    c->out = (mn_tdesc){ MN_F32, MN_SHAPE(s.d[0], s.d[1], w.Kp, w.L) };
    return MN_OK;
}

static mn_status infer_fold(mn_infer_ctx *c)
{
    const mn_window_attrs *a = c->attrs;
    window_geom w;
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input must be f32");
    if (!window_geom_of(a, a->image, &w, c->msg, c->msglen)) return MN_ERR_SHAPE;
    mn_shape want = MN_SHAPE(a->image.d[0], a->image.d[1], w.Kp, w.L), s = c->in[0].shape;
    if (!mn_shape_eq(s, want)) {
        char x[64], y[64];
        return mn__infer_fail(c, MN_ERR_SHAPE, "blocks %s do not fit image %s (want %s)", mn_shape_str(s, x, sizeof x),
                              mn_shape_str(a->image, y, sizeof y), mn_shape_str(want, x, sizeof x));
    }
    c->out = (mn_tdesc){ MN_F32, a->image };
    return MN_OK;
}

/* One image's blocks: cols[kk][l] <-> img[s0][s1][s2]; back adds cols into img. */
static void window_run(const window_geom *w, float *restrict img, float *restrict cols, float pad, bool back)
{
    int64_t idx = 0;
    for (int64_t k0 = 0; k0 < w->K[0]; k0++)
    for (int64_t k1 = 0; k1 < w->K[1]; k1++)
    for (int64_t k2 = 0; k2 < w->K[2]; k2++)
    for (int64_t o0 = 0; o0 < w->O[0]; o0++) {
        int64_t s0 = o0 * w->st[0] + k0 * w->dl[0] - w->lo[0];
        bool in0 = s0 >= 0 && s0 < w->S[0];
        for (int64_t o1 = 0; o1 < w->O[1]; o1++) {
            int64_t s1 = o1 * w->st[1] + k1 * w->dl[1] - w->lo[1];
            bool in1 = in0 && s1 >= 0 && s1 < w->S[1];
            float *row = img + (s0 * w->S[1] + s1) * w->S[2];
            for (int64_t o2 = 0; o2 < w->O[2]; o2++, idx++) {
                int64_t s2 = o2 * w->st[2] + k2 * w->dl[2] - w->lo[2];
                bool in = in1 && s2 >= 0 && s2 < w->S[2];
                if (back && in) row[s2] += cols[idx];
                else if (!back) cols[idx] = in ? row[s2] : pad;
            }
        }
    }
}

static mn_status window_forward(const mn_kernel_ctx *c, mn_shape image, bool back)
{
    const mn_window_attrs *a = c->attrs;
    window_geom w;
    char msg[160];
    if (!window_geom_of(a, image, &w, msg, sizeof msg)) return mn__kernel_fail(c, "%s", msg);
    float *img = back ? mn_f32(c->out) : mn_f32(&c->in[0]);
    float *cols = back ? mn_f32(&c->in[0]) : mn_f32(c->out);
    if (back) memset(img, 0, (size_t)(w.NC * w.img) * sizeof *img);
    #pragma omp parallel for if (w.NC * w.Kp * w.L > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t nc = 0; nc < w.NC; nc++)
        window_run(&w, img + nc * w.img, cols + nc * w.Kp * w.L, a->pad_value, back);
    return MN_OK;
}

static mn_status unfold_fwd(const mn_kernel_ctx *c) { return window_forward(c, c->in[0].shape, false); }
static mn_status fold_fwd(const mn_kernel_ctx *c) { return window_forward(c, ((const mn_window_attrs *)c->attrs)->image, true); }

/* dx = fold(dy) into x's shape */
static mn_status vjp_unfold(mn_vjp_ctx *c)
{
    mn_window_attrs a = *(const mn_window_attrs *)c->attrs;
    a.image = mn_node_shape(c->in[0]);
    a.pad_value = 0;
    c->dx[0] = mn_op(c->g, "fold", &c->dy, 1, &a, sizeof a);
    return MN_OK;
}

/* dx = unfold(dy) with zero padding */
static mn_status vjp_fold(mn_vjp_ctx *c)
{
    mn_window_attrs a = *(const mn_window_attrs *)c->attrs;
    a.pad_value = 0;
    a.image = (mn_shape){ 0 };
    c->dx[0] = mn_op(c->g, "unfold", &c->dy, 1, &a, sizeof a);
    return MN_OK;
}

const mn_op_def mn__op_unfold = { MN_OP_RECORD,
    .name = "unfold", .doc = "y[n,c,k,l] = x at window l, kernel position k (im2col; pad_value outside); dx = fold(dy)",
    .arity = 1, .attr_size = sizeof(mn_window_attrs), .attr_fields = window_fields, .inplace = -1,
    .infer = infer_unfold, .forward = unfold_fwd, .vjp = vjp_unfold,
};
const mn_op_def mn__op_fold = { MN_OP_RECORD,
    .name = "fold", .doc = "y = image of shape `image` with each block of x added at its window (col2im); dx = unfold(dy)",
    .arity = 1, .attr_size = sizeof(mn_window_attrs), .attr_fields = window_fields, .inplace = -1,
    .infer = infer_fold, .forward = fold_fwd, .vjp = vjp_fold,
};
