/* ops/elementwise.c: unary and broadcasting binary elementwise ops and the
 * activation-gradient helpers their VJPs emit. Kernels coalesce dims so
 * the inner loop is as long as possible, then split rows (or chunks of a
 * flat array) over threads once the op is larger than MN_GRAIN. */
#include "attrs.h"
#include "op.h"
#include "fastmath.h"
#include <math.h>

/* ---- inference ---- */

static mn_status need_f32(mn_infer_ctx *c)
{
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dtype != MN_F32)
            return mn__infer_fail(c, MN_ERR_DTYPE, "input %d is %s, expected f32", i, mn_dtype_name(c->in[i].dtype));
    return MN_OK;
}

static mn_status infer_unary(mn_infer_ctx *c)
{
    mn_status s = need_f32(c);
    if (!s) c->out = c->in[0];
    return s;
}

static mn_status infer_binary(mn_infer_ctx *c)
{
    mn_status s = need_f32(c);
    if (s) return s;
    c->out.dtype = MN_F32;
    if (mn_shape_broadcast(c->in[0].shape, c->in[1].shape, &c->out.shape)) {
        char a[96], b[96];
        return mn__infer_fail(c, MN_ERR_SHAPE, "shapes %s and %s do not broadcast",
                              mn_shape_str(c->in[0].shape, a, sizeof a), mn_shape_str(c->in[1].shape, b, sizeof b));
    }
    return MN_OK;
}

/* Same shape for both inputs (the gradient helpers). */
static mn_status infer_same(mn_infer_ctx *c)
{
    mn_status s = need_f32(c);
    if (s) return s;
    if (!mn_shape_eq(c->in[0].shape, c->in[1].shape))
        return mn__infer_fail(c, MN_ERR_SHAPE, "inputs must have the same shape");
    c->out = c->in[0];
    return MN_OK;
}

/* ---- kernel drivers ---- */

typedef void (*row2_fn)(float *o, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n);

void mn__bcast_strides(mn_shape s, mn_shape o, int64_t *st)
{
    int64_t acc = 1;
    for (int i = o.ndim - 1; i >= 0; i--) {
        int j = s.ndim - o.ndim + i;
        int64_t d = j >= 0 ? s.d[j] : 1;
        st[i] = d == 1 ? 0 : acc;
        acc *= d;
    }
}

/* Merges adjacent dims where both inputs are contiguous in the same way. */
static int coalesce(int nd, int64_t *dims, int64_t *sa, int64_t *sb)
{
    int k = 0;
    for (int i = 1; i < nd; i++) {
        bool ma = sa[k] == sa[i] * dims[i] || (sa[k] == 0 && sa[i] == 0);
        bool mb = sb[k] == sb[i] * dims[i] || (sb[k] == 0 && sb[i] == 0);
        if (ma && mb) { dims[k] *= dims[i]; sa[k] = sa[i]; sb[k] = sb[i]; }
        else { k++; dims[k] = dims[i]; sa[k] = sa[i]; sb[k] = sb[i]; }
    }
    return nd ? k + 1 : 0;
}

/* Row r of a coalesced binary op (dims, strides sa and sb of nd dims). */
static void binary_row(row2_fn f, float *o, const float *a, const float *b, int nd, const int64_t *dims, const int64_t *sa,
                       const int64_t *sb, int64_t inner, int64_t r)
{
    int64_t rem = r, ao = 0, bo = 0;
    for (int d = nd - 2; d >= 0; d--) {
        int64_t i = rem % dims[d];
        rem /= dims[d];
        ao += i * sa[d]; bo += i * sb[d];
    }
    f(o + r * inner, a + ao, sa[nd - 1], b + bo, sb[nd - 1], inner);
}

static void run_binary(const mn_kernel_ctx *c, row2_fn f)
{
    const float *a = mn_f32(&c->in[0]), *b = mn_f32(&c->in[1]);
    float *o = mn_f32(c->out);
    mn_shape os = c->out->shape;
    int64_t n = mn_shape_numel(os), dims[MN_MAX_DIMS], sa[MN_MAX_DIMS], sb[MN_MAX_DIMS];
    if (n == 0) return;
    mn__bcast_strides(c->in[0].shape, os, sa);
    mn__bcast_strides(c->in[1].shape, os, sb);
    for (int i = 0; i < os.ndim; i++) dims[i] = os.d[i];
    int nd = coalesce(os.ndim, dims, sa, sb);
    if (nd <= 1) {
        int64_t as = nd ? sa[0] : 0, bs = nd ? sb[0] : 0, chunk = 8192;
        if (mn__serial(c->nthreads, n > MN_GRAIN)) {
            for (int64_t s = 0; s < n; s += chunk) f(o + s, a + s * as, as, b + s * bs, bs, n - s < chunk ? n - s : chunk);
            return;
        }
        #pragma omp parallel for num_threads(c->nthreads) schedule(static)
        for (int64_t s = 0; s < n; s += chunk) {
            int64_t len = n - s < chunk ? n - s : chunk;
            f(o + s, a + s * as, as, b + s * bs, bs, len);
        }
        return;
    }
    int64_t inner = dims[nd - 1], rows = n / inner;
    if (mn__serial(c->nthreads, n > MN_GRAIN)) {
        for (int64_t r = 0; r < rows; r++) binary_row(f, o, a, b, nd, dims, sa, sb, inner, r);
        return;
    }
    #pragma omp parallel for num_threads(c->nthreads) schedule(static)
    for (int64_t r = 0; r < rows; r++) binary_row(f, o, a, b, nd, dims, sa, sb, inner, r);
}

static void pointwise_chunk(const mn_kernel_ctx *c, mn__pointwise_fn f, float *o, int64_t s, int64_t len)
{
    const float *in[8];
    for (int k = 0; k < c->nin && k < 8; k++) in[k] = mn_f32(&c->in[k]) + s;
    f(o + s, in, len, c->attrs);
}

mn_status mn__pointwise_forward(const mn_kernel_ctx *c, mn__pointwise_fn f)
{
    int64_t n = mn_tensor_numel(c->out), chunk = 8192;
    float *o = mn_f32(c->out);
    if (mn__serial(c->nthreads, n > MN_GRAIN)) {
        for (int64_t s = 0; s < n; s += chunk) pointwise_chunk(c, f, o, s, n - s < chunk ? n - s : chunk);
        return MN_OK;
    }
    #pragma omp parallel for num_threads(c->nthreads) schedule(static)
    for (int64_t s = 0; s < n; s += chunk) pointwise_chunk(c, f, o, s, n - s < chunk ? n - s : chunk);
    return MN_OK;
}

/* A row function specialised for the three stride patterns so that the
 * common ones vectorise; the pointwise form serves the fusion pass. */
#define ROW2(name, EXPR)                                                              \
    static void name##_row(float *o, const float *a, int64_t sa, const float *b,     \
                           int64_t sb, int64_t n)                                    \
    {                                                                                 \
        if (sa == 1 && sb == 1)                                                       \
            for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = (EXPR); } \
        else if (sa == 1 && sb == 0) {                                                \
            float y = b[0];                                                           \
            for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = (EXPR); }        \
        } else                                                                        \
            for (int64_t i = 0; i < n; i++) { float x = a[i * sa], y = b[i * sb]; o[i] = (EXPR); } \
    }                                                                                 \
    static mn_status name##_fwd(const mn_kernel_ctx *c) { run_binary(c, name##_row); return MN_OK; } \
    static void name##_pw(float *restrict o, const float *const *in, int64_t n, const void *attrs) \
    {                                                                                 \
        const float *restrict a = in[0], *restrict b = in[1];                         \
        (void)attrs;                                                                  \
        for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = (EXPR); } \
    }

ROW2(add, x + y)
ROW2(sub, x - y)
ROW2(mul, x * y)
ROW2(div, x / y)
ROW2(relu_grad, x > 0.0f ? y : 0.0f)          /* x = y_relu, y = dy */
ROW2(tanh_grad, y * (1.0f - x * x))           /* x = y_tanh */
ROW2(sigmoid_grad, y * x * (1.0f - x))        /* x = y_sigmoid */
ROW2(maximum, (x > y || x != x) ? x : y)      /* NaN propagates, as torch.maximum */
ROW2(minimum, (x < y || x != x) ? x : y)
ROW2(gt, x > y ? 1.0f : 0.0f)
ROW2(ge, x >= y ? 1.0f : 0.0f)
ROW2(lt, x < y ? 1.0f : 0.0f)
ROW2(le, x <= y ? 1.0f : 0.0f)
ROW2(eq, x == y ? 1.0f : 0.0f)
ROW2(ne, x != y ? 1.0f : 0.0f)

#define UNARY(name, EXPR)                                                           \
    static void name##_pw(float *restrict o, const float *const *inp, int64_t n, const void *attrs) \
    {                                                                               \
        const float *restrict in = inp[0];                                          \
        const float s = attrs ? ((const mn_scale_attrs *)attrs)->s : 0.0f;          \
        (void)s;                                                                    \
        for (int64_t i = 0; i < n; i++) { float x = in[i]; o[i] = (EXPR); }         \
    }                                                                               \
    static mn_status name##_fwd(const mn_kernel_ctx *c) { return mn__pointwise_forward(c, name##_pw); }

UNARY(neg, -x)
UNARY(scale, s * x)
UNARY(exp, mn__expf(x))
UNARY(log, mn__logf(x))
UNARY(sqrt, sqrtf(x))
UNARY(square, x * x)
#if defined(__AVX512F__)
/* tanh and sigmoid by 16 lanes: fastmath.h's formulas step for step (the
 * same bits: the clamps keep a NaN, as the scalar ternaries do, since
 * vmaxps/vminps return their second operand when one is NaN, and -x is a
 * sign flip; mn__exp_core16 is fastmath.h's core on 16 lanes), the tail
 * by a masked load and store. GCC 12's vectorisation
 * of the scalar loop (blends for the clamps) ran 16-21% slower: 4096
 * elements, one core, sigmoid 961 -> 761 ns, tanh 1001 -> 842 ns; the
 * LSTM cell has three sigmoids and two tanh (docs/performance.md,
 * "### l2t (session 14)"). */
static inline __mmask16 lanes(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

static void sigmoid_pw(float *restrict o, const float *const *inp, int64_t n, const void *attrs)
{
    const float *restrict x = inp[0];
    (void)attrs;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = lanes(n - i);
        __m512 v = _mm512_xor_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_set1_ps(-0.0f));
        __m512 c = _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_max_ps(_mm512_set1_ps(-87.0f), v));
        _mm512_mask_storeu_ps(o + i, m, _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), mn__exp_core16(c))));
    }
}

static void tanh_pw(float *restrict o, const float *const *inp, int64_t n, const void *attrs)
{
    const float *restrict x = inp[0];
    (void)attrs;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = lanes(n - i);
        __m512 c = _mm512_min_ps(_mm512_set1_ps(9.0f), _mm512_max_ps(_mm512_set1_ps(-9.0f), _mm512_maskz_loadu_ps(m, x + i)));
        __m512 e = mn__exp_core16(_mm512_mul_ps(_mm512_set1_ps(2.0f), c));
        _mm512_mask_storeu_ps(o + i, m, _mm512_div_ps(_mm512_sub_ps(e, _mm512_set1_ps(1.0f)), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    }
}
static mn_status tanh_fwd(const mn_kernel_ctx *c) { return mn__pointwise_forward(c, tanh_pw); }
static mn_status sigmoid_fwd(const mn_kernel_ctx *c) { return mn__pointwise_forward(c, sigmoid_pw); }
#else
UNARY(tanh, mn__tanhf(x))
UNARY(sigmoid, mn__sigmoidf(x))
#endif
UNARY(relu, x > 0.0f ? x : 0.0f)

/* ---- builders ---- */

#define BUILD2(name)                                                                 \
    mn_node *mn_##name(mn_graph *g, mn_node *a, mn_node *b)                          \
    {                                                                                \
        mn_node *in[2] = { a, b };                                                   \
        return mn__node(g, &mn__op_##name, in, 2, NULL);                             \
    }
#define BUILD1(name)                                                                 \
    mn_node *mn_##name(mn_graph *g, mn_node *x) { return mn__node(g, &mn__op_##name, &x, 1, NULL); }

extern const mn_op_def mn__op_add, mn__op_sub, mn__op_mul, mn__op_div, mn__op_neg, mn__op_scale,
    mn__op_exp, mn__op_log, mn__op_sqrt, mn__op_square, mn__op_tanh, mn__op_sigmoid, mn__op_relu,
    mn__op_relu_grad, mn__op_tanh_grad, mn__op_sigmoid_grad, mn__op_maximum, mn__op_minimum,
    mn__op_gt, mn__op_ge, mn__op_lt, mn__op_le, mn__op_eq, mn__op_ne;

/* add: rows gathered from a small table plus a vector over them is the
 * table plus the vector, gathered (ops/index.c: the same bits). */
mn_node *mn_add(mn_graph *g, mn_node *a, mn_node *b)
{
    mn_node *f = mn__fold_add(g, a, b);
    if (!f) f = mn__fold_add(g, b, a);
    if (f) return f;
    mn_node *in[2] = { a, b };
    return mn__node(g, &mn__op_add, in, 2, NULL);
}
BUILD2(sub) BUILD2(mul) BUILD2(div) BUILD2(maximum) BUILD2(minimum)
BUILD2(gt) BUILD2(ge) BUILD2(lt) BUILD2(le) BUILD2(eq) BUILD2(ne)
BUILD1(neg) BUILD1(exp) BUILD1(log) BUILD1(sqrt) BUILD1(square) BUILD1(tanh) BUILD1(sigmoid) BUILD1(relu)

mn_node *mn_scale(mn_graph *g, mn_node *x, float s)
{
    mn_scale_attrs a = { s };
    return mn__node(g, &mn__op_scale, &x, 1, &a);
}

static mn_node *grad_helper(mn_graph *g, const mn_op_def *op, mn_node *y, mn_node *dy)
{
    mn_node *in[2] = { y, dy };
    return mn__node(g, op, in, 2, NULL);
}

/* ---- VJPs ---- */

static mn_status vjp_add(mn_vjp_ctx *c)
{
    for (int i = 0; i < 2; i++)
        if (c->needs[i]) c->dx[i] = mn_sum_to(c->g, c->dy, mn_node_shape(c->in[i]));
    return MN_OK;
}

static mn_status vjp_sub(mn_vjp_ctx *c)
{
    if (c->needs[0]) c->dx[0] = mn_sum_to(c->g, c->dy, mn_node_shape(c->in[0]));
    if (c->needs[1]) c->dx[1] = mn_sum_to(c->g, mn_neg(c->g, c->dy), mn_node_shape(c->in[1]));
    return MN_OK;
}

static mn_status vjp_mul(mn_vjp_ctx *c)
{
    if (c->needs[0]) c->dx[0] = mn_sum_to(c->g, mn_mul(c->g, c->dy, c->in[1]), mn_node_shape(c->in[0]));
    if (c->needs[1]) c->dx[1] = mn_sum_to(c->g, mn_mul(c->g, c->dy, c->in[0]), mn_node_shape(c->in[1]));
    return MN_OK;
}

/* y = a / b: da = dy / b, db = -dy * y / b */
static mn_status vjp_div(mn_vjp_ctx *c)
{
    if (c->needs[0]) c->dx[0] = mn_sum_to(c->g, mn_div(c->g, c->dy, c->in[1]), mn_node_shape(c->in[0]));
    if (c->needs[1])
        c->dx[1] = mn_sum_to(c->g, mn_neg(c->g, mn_div(c->g, mn_mul(c->g, c->dy, c->out), c->in[1])),
                             mn_node_shape(c->in[1]));
    return MN_OK;
}

static mn_status vjp_neg(mn_vjp_ctx *c) { c->dx[0] = mn_neg(c->g, c->dy); return MN_OK; }
static mn_status vjp_scale(mn_vjp_ctx *c)
{
    c->dx[0] = mn_scale(c->g, c->dy, ((const mn_scale_attrs *)c->attrs)->s);
    return MN_OK;
}
static mn_status vjp_exp(mn_vjp_ctx *c) { c->dx[0] = mn_mul(c->g, c->dy, c->out); return MN_OK; }
static mn_status vjp_log(mn_vjp_ctx *c) { c->dx[0] = mn_div(c->g, c->dy, c->in[0]); return MN_OK; }
static mn_status vjp_sqrt(mn_vjp_ctx *c) { c->dx[0] = mn_div(c->g, mn_scale(c->g, c->dy, 0.5f), c->out); return MN_OK; }
static mn_status vjp_square(mn_vjp_ctx *c) { c->dx[0] = mn_mul(c->g, c->dy, mn_scale(c->g, c->in[0], 2.0f)); return MN_OK; }
static mn_status vjp_tanh(mn_vjp_ctx *c) { c->dx[0] = grad_helper(c->g, &mn__op_tanh_grad, c->out, c->dy); return MN_OK; }
static mn_status vjp_sigmoid(mn_vjp_ctx *c) { c->dx[0] = grad_helper(c->g, &mn__op_sigmoid_grad, c->out, c->dy); return MN_OK; }
static mn_status vjp_relu(mn_vjp_ctx *c) { c->dx[0] = grad_helper(c->g, &mn__op_relu_grad, c->out, c->dy); return MN_OK; }

/* relu_grad(y, dy): d/dy is zero almost everywhere; d/d dy = relu_grad(y, g). */
static mn_status vjp_relu_grad(mn_vjp_ctx *c)
{
    if (c->needs[1]) c->dx[1] = grad_helper(c->g, &mn__op_relu_grad, c->in[0], c->dy);
    return MN_OK;
}

/* tanh_grad(y, d) = d (1 - y^2): d/dy = -2 g d y, d/dd = tanh_grad(y, g). */
static mn_status vjp_tanh_grad(mn_vjp_ctx *c)
{
    if (c->needs[0]) c->dx[0] = mn_mul(c->g, mn_mul(c->g, c->dy, c->in[1]), mn_scale(c->g, c->in[0], -2.0f));
    if (c->needs[1]) c->dx[1] = grad_helper(c->g, &mn__op_tanh_grad, c->in[0], c->dy);
    return MN_OK;
}

/* sigmoid_grad(y, d) = d y (1 - y): d/dy = g d (1 - 2y), d/dd = sigmoid_grad(y, g). */
static mn_status vjp_sigmoid_grad(mn_vjp_ctx *c)
{
    if (c->needs[0]) {
        mn_node *t = mn_mul(c->g, c->dy, c->in[1]);
        c->dx[0] = mn_sub(c->g, t, mn_scale(c->g, mn_mul(c->g, t, c->in[0]), 2.0f));
    }
    if (c->needs[1]) c->dx[1] = grad_helper(c->g, &mn__op_sigmoid_grad, c->in[0], c->dy);
    return MN_OK;
}

/* maximum: da = sum_to(dy w), w = 1 where a > b, 1/2 on ties (as PyTorch), 0 else;
 * db gets dy (1 - w). minimum mirrors it. */
static mn_status vjp_extremum(mn_vjp_ctx *c, bool max)
{
    mn_graph *g = c->g;
    mn_node *a = c->in[0], *b = c->in[1];
    mn_node *w = mn_scale(g, mn_add(g, max ? mn_ge(g, a, b) : mn_le(g, a, b), max ? mn_gt(g, a, b) : mn_lt(g, a, b)), 0.5f);
    mn_node *da = mn_mul(g, c->dy, w);
    if (c->needs[0]) c->dx[0] = mn_sum_to(g, da, mn_node_shape(a));
    if (c->needs[1]) c->dx[1] = mn_sum_to(g, mn_sub(g, c->dy, da), mn_node_shape(b));
    return MN_OK;
}
static mn_status vjp_maximum(mn_vjp_ctx *c) { return vjp_extremum(c, true); }
static mn_status vjp_minimum(mn_vjp_ctx *c) { return vjp_extremum(c, false); }

static void scale_str(const void *a, char *buf, size_t n) { snprintf(buf, n, "s=%g", (double)((const mn_scale_attrs *)a)->s); }

/* ---- records ---- */


/* Each element on its own: the output's rows come from the same rows of
 * the operand of the output's shape when the other has fewer dims (a bias
 * broadcast over the rows). */
static int binary_rows(const mn_tdesc *in, int nin, const mn_tdesc *out, const void *attrs)
{
    (void)attrs;
    for (int k = 0; k < 2 && nin == 2; k++)
        if (mn_shape_eq(in[k].shape, out->shape) && in[1 - k].shape.ndim < out->shape.ndim) return k;
    return -1;
}

#define BINARY_OP(nm, dc, extra, vj)                                                 \
    const mn_op_def mn__op_##nm = { MN_OP_RECORD, .name = #nm, .doc = dc, .arity = 2,              \
        .flags = (extra), .inplace = 0, .infer = infer_binary, \
        .forward = nm##_fwd, .vjp = vj, .traits.pointwise = nm##_pw, .traits.row_input = binary_rows };
#define UNARY_OP(nm, dc, vj)                                                         \
    const mn_op_def mn__op_##nm = { MN_OP_RECORD, .name = #nm, .doc = dc, .arity = 1, \
        .inplace = 0, .infer = infer_unary, .forward = nm##_fwd, .vjp = vj, .traits.pointwise = nm##_pw };
#define HELPER_OP(nm, dc, vj)                                                        \
    const mn_op_def mn__op_##nm = { MN_OP_RECORD, .name = #nm, .doc = dc, .arity = 2,              \
         .inplace = 1, .infer = infer_same,            \
        .forward = nm##_fwd, .vjp = vj, .traits.pointwise = nm##_pw };

BINARY_OP(add, "y = a + b; da = sum_to(dy), db = sum_to(dy)", 0, vjp_add)
BINARY_OP(sub, "y = a - b; da = sum_to(dy), db = -sum_to(dy)", 0, vjp_sub)
BINARY_OP(mul, "y = a * b; da = sum_to(dy b), db = sum_to(dy a)", 0, vjp_mul)
BINARY_OP(div, "y = a / b; da = sum_to(dy / b), db = -sum_to(dy y / b)", 0, vjp_div)
BINARY_OP(maximum, "y = max(a, b) elementwise; da = sum_to(dy [a > b] + dy/2 [a = b]), db = the rest", 0, vjp_maximum)
BINARY_OP(minimum, "y = min(a, b) elementwise; da = sum_to(dy [a < b] + dy/2 [a = b]), db = the rest", 0, vjp_minimum)
BINARY_OP(gt, "y = [a > b] as 0/1; no gradient", MN_OPF_NOGRAD, NULL)
BINARY_OP(ge, "y = [a >= b] as 0/1; no gradient", MN_OPF_NOGRAD, NULL)
BINARY_OP(lt, "y = [a < b] as 0/1; no gradient", MN_OPF_NOGRAD, NULL)
BINARY_OP(le, "y = [a <= b] as 0/1; no gradient", MN_OPF_NOGRAD, NULL)
BINARY_OP(eq, "y = [a == b] as 0/1; no gradient", MN_OPF_NOGRAD, NULL)
BINARY_OP(ne, "y = [a != b] as 0/1; no gradient", MN_OPF_NOGRAD, NULL)
UNARY_OP(neg, "y = -x; dx = -dy", vjp_neg)
const mn_op_def mn__op_scale = { MN_OP_RECORD, .name = "scale", .doc = "y = s x; dx = s dy", .arity = 1,
    .attr_size = sizeof(mn_scale_attrs), MN__FIELDS(mn_scale_attrs),  .inplace = 0, .infer = infer_unary,
    .forward = scale_fwd, .vjp = vjp_scale, .attr_str = scale_str, .traits.pointwise = scale_pw };
UNARY_OP(exp, "y = exp(x); dx = dy y", vjp_exp)
UNARY_OP(log, "y = log(x); dx = dy / x", vjp_log)
UNARY_OP(sqrt, "y = sqrt(x); dx = dy / (2 y)", vjp_sqrt)
UNARY_OP(square, "y = x^2; dx = 2 x dy", vjp_square)
UNARY_OP(tanh, "y = tanh(x); dx = dy (1 - y^2)", vjp_tanh)
UNARY_OP(sigmoid, "y = 1 / (1 + exp(-x)); dx = dy y (1 - y)", vjp_sigmoid)
UNARY_OP(relu, "y = max(x, 0); dx = dy [y > 0]", vjp_relu)
HELPER_OP(relu_grad, "z = d [y > 0] (relu backward); dd = g [y > 0]", vjp_relu_grad)
HELPER_OP(tanh_grad, "z = d (1 - y^2) (tanh backward); dy = -2 g d y, dd = g (1 - y^2)", vjp_tanh_grad)
HELPER_OP(sigmoid_grad, "z = d y (1 - y) (sigmoid backward); dy = g d (1 - 2y), dd = g y (1 - y)", vjp_sigmoid_grad)
