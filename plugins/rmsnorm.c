/* plugins/rmsnorm.c: RMSNorm (Zhang and Sennrich 2019) over the last dim,
 * an example op plugin whose VJP is a composition of built-in graph ops.
 *   rmsnorm.rmsnorm(x, w) = x r w,  r = 1 / sqrt(mean(x^2) + eps)
 *   dx = r g - x r^3 mean(g x),  g = dy w;  dw = sum over rows of dy x r */
#include <mnemo_plugin.h>
#include <math.h>
#include <stdio.h>

typedef struct { float eps; } rms_attrs;
static const mn_plugin_host *H;

static mn_status infer(mn_infer_ctx *c)
{
    mn_shape x = c->in[0].shape, w = c->in[1].shape;
    const rms_attrs *a = c->attrs;
    if (c->in[0].dtype != MN_F32 || c->in[1].dtype != MN_F32) { snprintf(c->msg, c->msglen, "inputs must be f32"); return MN_ERR_DTYPE; }
    if (x.ndim < 1 || w.ndim != 1 || w.d[0] != x.d[x.ndim - 1]) {
        snprintf(c->msg, c->msglen, "weight must be [%lld], the last dim of x", (long long)(x.ndim ? x.d[x.ndim - 1] : 0));
        return MN_ERR_SHAPE;
    }
    if (!(a->eps > 0)) { snprintf(c->msg, c->msglen, "eps must be > 0"); return MN_ERR_INVALID; }
    c->out = c->in[0];
    return MN_OK;
}

static mn_status fwd(const mn_kernel_ctx *c)
{
    const rms_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]), *w = mn_f32(&c->in[1]);
    float *y = mn_f32(c->out);
    int64_t D = c->in[1].shape.d[0], R = D ? mn_p_numel(c->in[0].shape) / D : 0;
    #pragma omp parallel for if (R * D > 32768) num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        double s = 0;
        for (int64_t i = 0; i < D; i++) s += (double)x[r * D + i] * x[r * D + i];
        float inv = (float)(1.0 / sqrt(s / (double)D + a->eps));
        for (int64_t i = 0; i < D; i++) y[r * D + i] = x[r * D + i] * inv * w[i];
    }
    return MN_OK;
}

/* The VJP builds graph nodes only: everything it reads is an edge. */
static mn_status vjp(mn_vjp_ctx *c)
{
    const rms_attrs *a = c->attrs;
    mn_graph *g = c->g;
    mn_node *x = c->in[0], *w = c->in[1], *dy = c->dy;
    int last = -1;
    mn_node *r = H->rsqrt(g, H->add(g, H->mean(g, H->square(g, x), 1, &last, true), H->scalar(g, a->eps)));
    if (c->needs[0]) {
        mn_node *gw = H->mul(g, dy, w);
        mn_node *m = H->mean(g, H->mul(g, gw, x), 1, &last, true);
        mn_node *r3 = H->mul(g, r, H->square(g, r));
        c->dx[0] = H->sub(g, H->mul(g, r, gw), H->mul(g, x, H->mul(g, r3, m)));
    }
    if (c->needs[1]) c->dx[1] = H->sum_to(g, H->mul(g, dy, H->mul(g, x, r)), H->node_shape(w));
    return MN_OK;
}

static void attr_str(const void *p, char *buf, size_t n) { snprintf(buf, n, "eps=%g", (double)((const rms_attrs *)p)->eps); }

static const struct mn_op_def rmsnorm_op = { MN_OP_RECORD,
    .name = "rmsnorm.rmsnorm", .doc = "y = x w / sqrt(mean(x^2) + eps) over the last dim; VJP composed of built-in ops",
    .arity = 2, .attr_size = sizeof(rms_attrs), .inplace = -1, .infer = infer, .forward = fwd, .vjp = vjp, .attr_str = attr_str,
};

static mn_status init(const mn_plugin_host *host, mn_plugin_ctx *ctx)
{
    H = host;
    return host->register_op(ctx, &rmsnorm_op);
}

MN_PLUGIN_DEFINE("rmsnorm", "1.0", init)
