/* ops/activation.c: activations with PyTorch's definitions and defaults
 * (gelu erf/tanh, softplus, abs, sign, clamp, pow, leaky_relu, elu, silu,
 * reciprocal, rsqrt). Piecewise ones share one backward helper, act_grad,
 * that computes dy * f'(x) in a single pass. */
#include "attrs.h"
#include "op.h"
#include "fastmath.h"
#include <math.h>

extern const mn_op_def mn__op_gelu, mn__op_softplus, mn__op_abs, mn__op_sign, mn__op_clamp, mn__op_pow,
    mn__op_leaky_relu, mn__op_elu, mn__op_silu, mn__op_reciprocal, mn__op_rsqrt, mn__op_act_grad;

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f

static mn_status infer_f32(mn_infer_ctx *c)
{
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input %d must be f32", i);
    if (c->nin == 2 && !mn_shape_eq(c->in[0].shape, c->in[1].shape)) return mn__infer_fail(c, MN_ERR_SHAPE, "inputs must have the same shape");
    c->out = c->in[0];
    return MN_OK;
}

static mn_status infer_clamp(mn_infer_ctx *c)
{
    const mn_act_attrs *a = c->attrs;
    if (a->a > a->b) return mn__infer_fail(c, MN_ERR_INVALID, "min %g > max %g", (double)a->a, (double)a->b);
    return infer_f32(c);
}

static inline __attribute__((always_inline)) float gelu_f(float x, bool tanh_approx)
{
    if (tanh_approx) return 0.5f * x * (1.0f + mn__tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
    return 0.5f * x * (1.0f + mn__erff(x * INV_SQRT2));
}

/* f'(x) for act_grad */
static inline __attribute__((always_inline)) float act_deriv(const mn_act_attrs *a, float x)
{
    switch (a->kind) {
    case MN_ACT_GELU_ERF: return 0.5f * (1.0f + mn__erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * mn__expf(-0.5f * x * x);
    case MN_ACT_GELU_TANH: {
        float u = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x), t = mn__tanhf(u);
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
    }
    case MN_ACT_CLAMP: return x >= a->a && x <= a->b ? 1.0f : 0.0f;
    case MN_ACT_LEAKY_RELU: return x > 0.0f ? 1.0f : a->a;
    case MN_ACT_ELU: return x > 0.0f ? 1.0f : a->a * expf(x);
    case MN_ACT_SILU: { float s = mn__sigmoidf(x); return s * (1.0f + x * (1.0f - s)); }
    }
    return 0.0f;
}

#define ACT_PW(name, EXPR)                                                           \
    static void name##_pw(float *restrict o, const float *const *inp, int64_t n, const void *attrs) \
    {                                                                                \
        const mn_act_attrs *at = attrs;                                              \
        const float *restrict in = inp[0];                                           \
        (void)at;                                                                    \
        for (int64_t i = 0; i < n; i++) { float x = in[i]; o[i] = (EXPR); }          \
    }
#define ACT(name, EXPR)                                                              \
    ACT_PW(name, EXPR)                                                               \
    static mn_status name##_fwd(const mn_kernel_ctx *c) { return mn__pointwise_forward(c, name##_pw); }

ACT_PW(gelu_erf, gelu_f(x, false))
ACT_PW(gelu_tanh, gelu_f(x, true))
static void gelu_pw(float *o, const float *const *in, int64_t n, const void *attrs)
{
    if (((const mn_act_attrs *)attrs)->kind == MN_ACT_GELU_TANH) gelu_tanh_pw(o, in, n, attrs);
    else gelu_erf_pw(o, in, n, attrs);
}
static mn_status gelu_fwd(const mn_kernel_ctx *c) { return mn__pointwise_forward(c, gelu_pw); }
ACT(softplus, x * at->a > at->b ? x : mn__log1pf(mn__expf(at->a * x)) / at->a)
ACT(abs, fabsf(x))
ACT(sign, (float)((x > 0.0f) - (x < 0.0f)))
ACT(clamp, x < at->a ? at->a : x > at->b ? at->b : x)
ACT(pow, powf(x, at->a))
ACT(leaky_relu, x > 0.0f ? x : at->a * x)
ACT(elu, x > 0.0f ? x : at->a * expm1f(x))
ACT(silu, x * mn__sigmoidf(x))
ACT(reciprocal, 1.0f / x)
ACT(rsqrt, 1.0f / sqrtf(x))

/* One loop per kind (the kind switch outside), so each vectorises. */
#define GRAD_LOOP(KIND)                                                                          \
    for (int64_t i = 0; i < n; i++) { mn_act_attrs k = *at; k.kind = KIND; o[i] = dy[i] * act_deriv(&k, x[i]); }

static void act_grad_pw(float *restrict o, const float *const *in, int64_t n, const void *attrs)
{
    const mn_act_attrs *at = attrs;
    const float *restrict x = in[0], *restrict dy = in[1];
    switch (at->kind) {
    case MN_ACT_GELU_ERF: GRAD_LOOP(MN_ACT_GELU_ERF) break;
    case MN_ACT_GELU_TANH: GRAD_LOOP(MN_ACT_GELU_TANH) break;
    case MN_ACT_CLAMP: GRAD_LOOP(MN_ACT_CLAMP) break;
    case MN_ACT_LEAKY_RELU: GRAD_LOOP(MN_ACT_LEAKY_RELU) break;
    case MN_ACT_ELU: GRAD_LOOP(MN_ACT_ELU) break;
    case MN_ACT_SILU: GRAD_LOOP(MN_ACT_SILU) break;
    }
}
static mn_status act_grad_fwd(const mn_kernel_ctx *c) { return mn__pointwise_forward(c, act_grad_pw); }

/* ---- builders ---- */

static mn_node *act(mn_graph *g, const mn_op_def *op, mn_node *x, mn_act_kind k, float a, float b)
{
    mn_act_attrs at = { k, a, b };
    return mn__node(g, op, &x, 1, op->attr_size ? &at : NULL);
}

mn_node *mn_gelu(mn_graph *g, mn_node *x, bool tanh_approx)
{
    return act(g, &mn__op_gelu, x, tanh_approx ? MN_ACT_GELU_TANH : MN_ACT_GELU_ERF, 0, 0);
}
mn_node *mn_softplus(mn_graph *g, mn_node *x, float beta, float threshold) { return act(g, &mn__op_softplus, x, 0, beta, threshold); }
mn_node *mn_abs(mn_graph *g, mn_node *x) { return act(g, &mn__op_abs, x, 0, 0, 0); }
mn_node *mn_sign(mn_graph *g, mn_node *x) { return act(g, &mn__op_sign, x, 0, 0, 0); }
mn_node *mn_clamp(mn_graph *g, mn_node *x, float min, float max) { return act(g, &mn__op_clamp, x, MN_ACT_CLAMP, min, max); }
mn_node *mn_pow(mn_graph *g, mn_node *x, float exponent) { return act(g, &mn__op_pow, x, 0, exponent, 0); }
mn_node *mn_leaky_relu(mn_graph *g, mn_node *x, float slope) { return act(g, &mn__op_leaky_relu, x, MN_ACT_LEAKY_RELU, slope, 0); }
mn_node *mn_elu(mn_graph *g, mn_node *x, float alpha) { return act(g, &mn__op_elu, x, MN_ACT_ELU, alpha, 0); }
mn_node *mn_silu(mn_graph *g, mn_node *x) { return act(g, &mn__op_silu, x, MN_ACT_SILU, 0, 0); }
mn_node *mn_reciprocal(mn_graph *g, mn_node *x) { return act(g, &mn__op_reciprocal, x, 0, 0, 0); }
mn_node *mn_rsqrt(mn_graph *g, mn_node *x) { return act(g, &mn__op_rsqrt, x, 0, 0, 0); }

/* ---- VJPs ---- */

static mn_status vjp_act(mn_vjp_ctx *c)
{
    mn_node *in[2] = { c->in[0], c->dy };
    c->dx[0] = mn__node(c->g, &mn__op_act_grad, in, 2, c->attrs);
    return MN_OK;
}

static mn_status vjp_silu(mn_vjp_ctx *c)
{
    mn_node *in[2] = { c->in[0], c->dy };
    c->dx[0] = mn__node(c->g, &mn__op_act_grad, in, 2, &(mn_act_attrs){ MN_ACT_SILU, 0, 0 });
    return MN_OK;
}

/* softplus: dx = dy sigmoid(beta x) */
static mn_status vjp_softplus(mn_vjp_ctx *c)
{
    c->dx[0] = mn_mul(c->g, c->dy, mn_sigmoid(c->g, mn_scale(c->g, c->in[0], ((const mn_act_attrs *)c->attrs)->a)));
    return MN_OK;
}
static mn_status vjp_abs(mn_vjp_ctx *c) { c->dx[0] = mn_mul(c->g, c->dy, mn_sign(c->g, c->in[0])); return MN_OK; }
/* pow: dx = dy p x^(p-1) */
static mn_status vjp_pow(mn_vjp_ctx *c)
{
    float p = ((const mn_act_attrs *)c->attrs)->a;
    c->dx[0] = mn_mul(c->g, c->dy, mn_scale(c->g, mn_pow(c->g, c->in[0], p - 1.0f), p));
    return MN_OK;
}
/* reciprocal: dx = -dy y^2 */
static mn_status vjp_reciprocal(mn_vjp_ctx *c) { c->dx[0] = mn_neg(c->g, mn_mul(c->g, c->dy, mn_square(c->g, c->out))); return MN_OK; }
/* rsqrt: dx = -dy y^3 / 2 */
static mn_status vjp_rsqrt(mn_vjp_ctx *c)
{
    c->dx[0] = mn_scale(c->g, mn_mul(c->g, c->dy, mn_mul(c->g, c->out, mn_square(c->g, c->out))), -0.5f);
    return MN_OK;
}

static void act_str(const void *p, char *buf, size_t n)
{
    static const char *kinds[] = { "gelu", "gelu_tanh", "clamp", "leaky_relu", "elu", "silu" };
    const mn_act_attrs *a = p;
    snprintf(buf, n, "%s a=%g b=%g", (unsigned)a->kind < 6 ? kinds[a->kind] : "?", (double)a->a, (double)a->b);
}

#define ACT_OP0(nm, dc, fl, vj)                                                              \
    const mn_op_def mn__op_##nm = { MN_OP_RECORD, .name = #nm, .doc = dc, .arity = 1,                        \
        .flags = (fl), .inplace = 0, .infer = infer_f32,    \
        .forward = nm##_fwd, .vjp = vj, .traits.pointwise = nm##_pw };
#define ACT_OP(nm, dc, inf, fl, vj)                                                          \
    const mn_op_def mn__op_##nm = { MN_OP_RECORD, .name = #nm, .doc = dc, .arity = 1, .attr_size = sizeof(mn_act_attrs), \
        .flags = (fl), .inplace = 0, .infer = inf, .forward = nm##_fwd, \
        .vjp = vj, .attr_str = act_str, .traits.pointwise = nm##_pw };

ACT_OP(gelu, "y = x Phi(x) (erf) or 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))); dx = act_grad", infer_f32, 0, vjp_act)
ACT_OP(softplus, "y = log(1 + exp(beta x)) / beta, x where beta x > threshold; dx = dy sigmoid(beta x)", infer_f32, 0, vjp_softplus)
ACT_OP0(abs, "y = |x|; dx = dy sign(x)", 0, vjp_abs)
ACT_OP0(sign, "y = -1, 0 or 1; no gradient (zero almost everywhere)", MN_OPF_NOGRAD, NULL)
ACT_OP(clamp, "y = min(max(x, a), b); dx = dy [a <= x <= b]", infer_clamp, 0, vjp_act)
ACT_OP(pow, "y = x^p (constant p); dx = dy p x^(p-1)", infer_f32, 0, vjp_pow)
ACT_OP(leaky_relu, "y = x > 0 ? x : slope x; dx = dy (x > 0 ? 1 : slope)", infer_f32, 0, vjp_act)
ACT_OP(elu, "y = x > 0 ? x : alpha (exp(x) - 1); dx = dy (x > 0 ? 1 : alpha exp(x))", infer_f32, 0, vjp_act)
ACT_OP0(silu, "y = x sigmoid(x); dx = dy s (1 + x (1 - s)), s = sigmoid(x)", 0, vjp_silu)
ACT_OP0(reciprocal, "y = 1 / x; dx = -dy y^2", 0, vjp_reciprocal)
ACT_OP0(rsqrt, "y = 1 / sqrt(x); dx = -dy y^3 / 2", 0, vjp_rsqrt)
const mn_op_def mn__op_act_grad = { MN_OP_RECORD,
    .name = "act_grad", .doc = "z = dy f'(x) for gelu, clamp, leaky_relu, elu, silu (their backward); no gradient",
    .arity = 2, .attr_size = sizeof(mn_act_attrs), .flags = MN_OPF_NOGRAD,
    .inplace = 1, .infer = infer_f32, .forward = act_grad_fwd, .attr_str = act_str, .traits.pointwise = act_grad_pw,
};
