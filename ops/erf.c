/* ops/erf.c: the error function as an op of its own (ONNX's Erf, which
 * PyTorch's exact GELU exports to). Pointwise, f32; its gradient is built
 * from registry ops: dx = dy 2/sqrt(pi) exp(-x^2). */
#include "op.h"
#include <math.h>

static mn_status infer_erf(mn_infer_ctx *c)
{
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input 0 must be f32");
    c->out = c->in[0];
    return MN_OK;
}

static void erf_pw(float *o, const float *const *in, int64_t n, const void *attrs)
{
    (void)attrs;
    const float *restrict x = in[0];
    for (int64_t i = 0; i < n; i++) o[i] = erff(x[i]);
}

static mn_status erf_fwd(const mn_kernel_ctx *c) { return mn__pointwise_forward(c, erf_pw); }

/* dx = dy 2/sqrt(pi) exp(-x^2) */
static mn_status vjp_erf(mn_vjp_ctx *c)
{
    mn_node *d = mn_exp(c->g, mn_neg(c->g, mn_square(c->g, c->in[0])));
    c->dx[0] = mn_mul(c->g, c->dy, mn_scale(c->g, d, 1.1283791670955126f));
    return MN_OK;
}

const mn_op_def mn__op_erf = { MN_OP_RECORD, .name = "erf", .doc = "y = erf(x); dx = dy 2/sqrt(pi) exp(-x^2)", .arity = 1,
    .infer = infer_erf, .forward = erf_fwd, .vjp = vjp_erf, .traits.pointwise = erf_pw };
