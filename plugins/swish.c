/* plugins/swish.c: swish with a learnable beta (Ramachandran et al. 2017),
 * an example op plugin with forward and VJP kernels of its own.
 *   swish.swish(x, beta) = x sigmoid(beta x); beta is [1] or [last dim of x]
 *   dx = dy (s + beta x s (1 - s)),  dbeta = sum over x's other dims of dy x^2 s (1 - s) */
#include <mnemo_plugin.h>
#include <math.h>
#include <stdio.h>

static const mn_plugin_host *H;
static const struct mn_op_def swish_op, swish_dx_op, swish_dbeta_op;

static mn_status infer(mn_infer_ctx *c)
{
    mn_shape x = c->in[0].shape, b = c->in[1].shape;
    int64_t d = x.ndim ? x.d[x.ndim - 1] : 1;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dtype != MN_F32) { snprintf(c->msg, c->msglen, "input %d must be f32", i); return MN_ERR_DTYPE; }
    if (b.ndim != 1 || (b.d[0] != 1 && b.d[0] != d)) {
        snprintf(c->msg, c->msglen, "beta must be [1] or [%lld]", (long long)d);
        return MN_ERR_SHAPE;
    }
    if (c->nin == 3 && !mn_p_shape_eq(c->in[2].shape, x)) { snprintf(c->msg, c->msglen, "dy must have x's shape"); return MN_ERR_SHAPE; }
    c->out = c->in[0];
    return MN_OK;
}

/* which: 0 forward, 1 dx, 2 dbeta-per-element */
static inline float f(int which, float x, float be, float dy)
{
    float s = 1.0f / (1.0f + expf(-be * x));
    return which == 0 ? x * s : which == 1 ? dy * (s + be * x * s * (1 - s)) : dy * x * x * s * (1 - s);
}

static mn_status run(const mn_kernel_ctx *c, int which)
{
    const float *x = mn_f32(&c->in[0]), *b = mn_f32(&c->in[1]), *dy = c->nin == 3 ? mn_f32(&c->in[2]) : NULL;
    float *y = mn_f32(c->out);
    int64_t n = mn_p_numel(c->out->shape), nb = mn_p_numel(c->in[1].shape);
    #pragma omp parallel for if (n > 32768) num_threads(c->nthreads) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = f(which, x[i], b[nb == 1 ? 0 : i % nb], dy ? dy[i] : 0.0f);
    return MN_OK;
}

static mn_status fwd(const mn_kernel_ctx *c) { return run(c, 0); }
static mn_status dx_fwd(const mn_kernel_ctx *c) { return run(c, 1); }
static mn_status dbeta_fwd(const mn_kernel_ctx *c) { return run(c, 2); }

/* The same math on blocks with beta already broadcast: lets mnemo's fusion
 * pass run these ops inside a chain of elementwise ops. */
static void fwd_pw(float *o, const float *const *in, int64_t n, const void *a)
{
    (void)a;
    for (int64_t i = 0; i < n; i++) o[i] = f(0, in[0][i], in[1][i], 0.0f);
}
static void dx_pw(float *o, const float *const *in, int64_t n, const void *a)
{
    (void)a;
    for (int64_t i = 0; i < n; i++) o[i] = f(1, in[0][i], in[1][i], in[2][i]);
}
static void dbeta_pw(float *o, const float *const *in, int64_t n, const void *a)
{
    (void)a;
    for (int64_t i = 0; i < n; i++) o[i] = f(2, in[0][i], in[1][i], in[2][i]);
}

static mn_status vjp(mn_vjp_ctx *c)
{
    mn_node *in[3] = { c->in[0], c->in[1], c->dy };
    if (c->needs[0]) c->dx[0] = H->op(c->g, "swish.swish_dx", in, 3, NULL, 0);
    if (c->needs[1]) c->dx[1] = H->sum_to(c->g, H->op(c->g, "swish.swish_dbeta", in, 3, NULL, 0), H->node_shape(c->in[1]));
    return MN_OK;
}

static const struct mn_op_def swish_op = { MN_OP_RECORD,
    .name = "swish.swish", .doc = "y = x sigmoid(beta x), learnable beta; dx = swish_dx, dbeta = sum(swish_dbeta)",
    .arity = 2, .inplace = -1, .infer = infer, .forward = fwd, .vjp = vjp, .traits.pointwise = fwd_pw,
};
static const struct mn_op_def swish_dx_op = { MN_OP_RECORD,
    .name = "swish.swish_dx", .doc = "dx = dy (s + beta x s (1 - s)), s = sigmoid(beta x) (swish backward); no gradient",
    .arity = 3, .flags = MN_OPF_NOGRAD, .inplace = 2, .infer = infer, .forward = dx_fwd, .traits.pointwise = dx_pw,
};
static const struct mn_op_def swish_dbeta_op = { MN_OP_RECORD,
    .name = "swish.swish_dbeta", .doc = "g = dy x^2 s (1 - s) per element (swish backward for beta); no gradient",
    .arity = 3, .flags = MN_OPF_NOGRAD, .inplace = 2, .infer = infer, .forward = dbeta_fwd, .traits.pointwise = dbeta_pw,
};

static mn_status init(const mn_plugin_host *host, mn_plugin_ctx *ctx)
{
    H = host;
    mn_status s = host->register_op(ctx, &swish_op);
    if (!s) s = host->register_op(ctx, &swish_dx_op);
    if (!s) s = host->register_op(ctx, &swish_dbeta_op);
    return s;
}

MN_PLUGIN_DEFINE("swish", "1.0", init)
