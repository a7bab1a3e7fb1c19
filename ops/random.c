/* ops/random.c: ops that draw from the counter-based RNG: dropout and
 * normal/uniform sampling. A value depends only on (run seed, the op's
 * stream, element index), never on thread count; the executor derives the
 * run seed from the graph seed and its step counter, so every run draws
 * fresh numbers and the backward of a run sees the forward's mask. */
#include "attrs.h"
#include "op.h"
#include <string.h>

extern const mn_op_def mn__op_dropout, mn__op_normal, mn__op_uniform;

static mn_status infer_dropout(mn_infer_ctx *c)
{
    const mn_dropout_attrs *a = c->attrs;
    if (c->in[0].dtype != MN_F32) return mn__infer_fail(c, MN_ERR_DTYPE, "input must be f32");
    if (!(a->p >= 0.0f && a->p <= 1.0f)) return mn__infer_fail(c, MN_ERR_INVALID, "p %g outside [0, 1]", (double)a->p);
    c->out = c->in[0];
    return MN_OK;
}

/* y = x [u >= p] / (1 - p), u ~ U[0,1) per element; identity in eval mode */
static mn_status dropout_fwd(const mn_kernel_ctx *c)
{
    const mn_dropout_attrs *a = c->attrs;
    const float *x = mn_f32(&c->in[0]);
    float *y = mn_f32(c->out);
    int64_t n = mn_tensor_numel(c->out);
    if (!a->training || a->p == 0.0f) {
        if (y != x) memcpy(y, x, (size_t)n * sizeof *y);
        return MN_OK;
    }
    float scale = a->p < 1.0f ? 1.0f / (1.0f - a->p) : 0.0f;
    enum { CHUNK = 1024 };
    #pragma omp parallel for if (n > MN_GRAIN / 4) num_threads(c->nthreads) schedule(static)
    for (int64_t b = 0; b < n; b += CHUNK) {
        float u[CHUNK];
        int64_t m = n - b < CHUNK ? n - b : CHUNK;
        mn__rng_uniform_n(c->seed, a->stream, (uint64_t)b, m, u);
        for (int64_t i = 0; i < m; i++) y[b + i] = u[i] >= a->p ? x[b + i] * scale : 0.0f;
    }
    return MN_OK;
}

mn_node *mn_dropout(mn_graph *g, mn_node *x, float p, bool training)
{
    mn_dropout_attrs a = { p, training, (uint32_t)mn_graph_node_count(g) };
    return mn__node(g, &mn__op_dropout, &x, 1, &a);
}

/* The same mask applied to dy: same attrs, so the same stream. */
static mn_status vjp_dropout(mn_vjp_ctx *c)
{
    c->dx[0] = mn__node(c->g, &mn__op_dropout, &c->dy, 1, c->attrs);
    return MN_OK;
}

static mn_status infer_random(mn_infer_ctx *c)
{
    const mn_random_attrs *a = c->attrs;
    c->out = (mn_tdesc){ MN_F32, a->shape };
    return mn__infer_shape_attr(c, a->shape);
}

static mn_status infer_normal(mn_infer_ctx *c)
{
    if (!(((const mn_random_attrs *)c->attrs)->b >= 0)) return mn__infer_fail(c, MN_ERR_INVALID, "std must be >= 0");
    return infer_random(c);
}

static mn_status infer_uniform(mn_infer_ctx *c)
{
    const mn_random_attrs *a = c->attrs;
    if (!(a->a <= a->b)) return mn__infer_fail(c, MN_ERR_INVALID, "low %g > high %g", (double)a->a, (double)a->b);
    return infer_random(c);
}

static mn_status normal_fwd(const mn_kernel_ctx *c)
{
    const mn_random_attrs *a = c->attrs;
    int64_t n = mn_tensor_numel(c->out);
    float *y = mn_f32(c->out);
    #pragma omp parallel for if (n > MN_GRAIN / 4) num_threads(c->nthreads) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = a->a + a->b * mn_rng_normal(c->seed, a->stream, (uint64_t)i);
    return MN_OK;
}

static mn_status uniform_fwd(const mn_kernel_ctx *c)
{
    const mn_random_attrs *a = c->attrs;
    int64_t n = mn_tensor_numel(c->out);
    float *y = mn_f32(c->out);
    #pragma omp parallel for if (n > MN_GRAIN / 4) num_threads(c->nthreads) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = a->a + (a->b - a->a) * mn_rng_uniform(c->seed, a->stream, (uint64_t)i);
    return MN_OK;
}

mn_node *mn_randn(mn_graph *g, mn_shape shape, float mean, float std)
{
    mn_random_attrs a = { shape, mean, std, (uint32_t)mn_graph_node_count(g) };
    return mn__node(g, &mn__op_normal, NULL, 0, &a);
}

mn_node *mn_rand(mn_graph *g, mn_shape shape, float low, float high)
{
    mn_random_attrs a = { shape, low, high, (uint32_t)mn_graph_node_count(g) };
    return mn__node(g, &mn__op_uniform, NULL, 0, &a);
}

static void dropout_str(const void *p, char *buf, size_t n)
{
    const mn_dropout_attrs *a = p;
    snprintf(buf, n, "p=%g %s", (double)a->p, a->training ? "train" : "eval");
}

static void random_str(const void *p, char *buf, size_t n)
{
    const mn_random_attrs *a = p;
    snprintf(buf, n, "%g, %g", (double)a->a, (double)a->b);
}

const mn_op_def mn__op_dropout = { MN_OP_RECORD,
    .name = "dropout", .doc = "y = x [u >= p] / (1 - p) in training, x in eval (u counter-based per element); dx = same mask on dy",
    .arity = 1, .attr_size = sizeof(mn_dropout_attrs), MN__FIELDS(mn_dropout_attrs), .inplace = 0,
    .flags = MN_OPF_RANDOM, .infer = infer_dropout, .forward = dropout_fwd,
    .vjp = vjp_dropout, .attr_str = dropout_str,
};
const mn_op_def mn__op_normal = { MN_OP_RECORD,
    .name = "normal", .doc = "y ~ N(mean, std^2) of a given shape, seeded per run; no inputs, no gradient",
    .arity = 0, .attr_size = sizeof(mn_random_attrs), MN__FIELDS(mn_random_attrs), .inplace = -1, .flags = MN_OPF_RANDOM | MN_OPF_NOGRAD,
    .infer = infer_normal, .forward = normal_fwd, .attr_str = random_str,
};
const mn_op_def mn__op_uniform = { MN_OP_RECORD,
    .name = "uniform", .doc = "y ~ U[low, high) of a given shape, seeded per run; no inputs, no gradient",
    .arity = 0, .attr_size = sizeof(mn_random_attrs), MN__FIELDS(mn_random_attrs), .inplace = -1, .flags = MN_OPF_RANDOM | MN_OPF_NOGRAD,
    .infer = infer_uniform, .forward = uniform_fwd, .attr_str = random_str,
};
