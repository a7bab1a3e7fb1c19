/* ops/registry.c: the operator registry. Built-in records come from the
 * op family files, listed once in builtin[]; later additions (plugins)
 * append to the same id space. Ids are stable for the process's life. */
#include "op.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MN__OPS(X)                                                             \
    X(add) X(sub) X(mul) X(div) X(maximum) X(minimum) X(gt) X(ge) X(lt) X(le)  \
    X(eq) X(ne) X(neg) X(scale) X(exp) X(log) X(sqrt) X(square) X(tanh)       \
    X(sigmoid) X(relu) X(relu_grad) X(tanh_grad) X(sigmoid_grad) X(gelu)       \
    X(softplus) X(abs) X(sign) X(clamp) X(pow) X(leaky_relu) X(elu) X(silu)    \
    X(reciprocal) X(rsqrt) X(act_grad) X(matmul) X(linear) X(permute)          \
    X(matmul_acc)                                                             \
    X(reshape) X(expand) X(squeeze) X(unsqueeze) X(slice) X(slice_backward)    \
    X(concat) X(stack) X(index_select) X(index_select_backward) X(gather)      \
    X(gather_backward) X(embedding) X(where) X(sum) X(mean) X(max) X(min)      \
    X(argmax) X(argmin) X(logsumexp) X(var) X(std) X(softmax) X(log_softmax)  \
    X(softmax_grad) X(log_softmax_grad) X(layer_norm_stats) X(layer_norm)      \
    X(layer_norm_backward) X(dropout) X(normal) X(uniform) X(cross_entropy)    \
    X(cross_entropy_grad) X(nll_loss) X(nll_loss_grad) X(bce_with_logits)      \
    X(kl_div) X(gaussian_kl) X(mse_loss) X(smooth_l1) X(huber) X(one_hot)      \
    X(cast) X(fill) X(zeros_like) X(ones_like) X(arange)                      \
    X(crf_nll) X(crf_nll_grad) X(erf)                                         \
    X(unfold) X(fold) X(topk) X(self_attention) X(self_attention_grad)  \
    X(layer_norm_param_grad) X(pack_weight) X(matmul_packed)     \
    X(cross_entropy_stats)

#define MN__DECL(n) extern const mn_op_def mn__op_##n;
MN__OPS(MN__DECL)
#undef MN__DECL

static const mn_op_def *const builtin[] = {
#define MN__REF(n) &mn__op_##n,
    MN__OPS(MN__REF)
#undef MN__REF
};

/* Ops added by plugins, after the built-ins, with the plugin that added them. */
typedef struct { const mn_op_def *op; int plugin; } extra_op;
static extra_op *extra;
static int nextra, capextra;

int mn_op_count(void) { return (int)MN__ARRAY_LEN(builtin) + nextra; }

const mn_op_def *mn_op_at(int id)
{
    int nb = (int)MN__ARRAY_LEN(builtin);
    if (id < 0 || id >= nb + nextra) return NULL;
    return id < nb ? builtin[id] : extra[id - nb].op;
}

const mn_op_def *mn_op_find(const char *name)
{
    for (int i = 0; name && i < mn_op_count(); i++)
        if (strcmp(mn_op_at(i)->name, name) == 0) return mn_op_at(i);
    return NULL;
}

int mn__op_plugin_of(const mn_op_def *op)
{
    for (int i = 0; i < nextra; i++) if (extra[i].op == op) return extra[i].plugin;
    return -1;
}

mn_status mn__op_append(const mn_op_def *op, int plugin)
{
    if (nextra == capextra) {
        int cap = capextra ? 2 * capextra : 32;
        extra_op *e = realloc(extra, (size_t)cap * sizeof *e);
        if (!e) return mn__error(MN_ERR_NOMEM, "registry: out of memory");
        extra = e; capextra = cap;
    }
    extra[nextra++] = (extra_op){ op, plugin };
    return MN_OK;
}

int mn__op_extra_count(void) { return nextra; }

void mn__op_truncate(int n)
{
    if (n >= 0 && n < nextra) nextra = n;
    if (!nextra) { free(extra); extra = NULL; capextra = 0; }
}

/* The rules every record obeys, built-in or plugin: a kernel and shape
 * inference (or a composition), a VJP unless flagged NOGRAD (an op with
 * neither would silently stop gradients), an in-place input within its
 * arity, and the size and ABI version of this header (MN_OP_RECORD; a
 * plugin's older record is widened first, see plugin.c). Plugins are
 * checked when they register, built-ins by the ops suite. */
mn_status mn__op_check(const mn_op_def *op, char *msg, size_t n)
{
    if (!op || !op->name) return snprintf(msg, n, "NULL op record"), MN_ERR_INVALID;
    if (op->size != sizeof *op || op->abi_version != MN_PLUGIN_ABI_VERSION)
        return snprintf(msg, n, "op \"%s\": record of %u bytes for ABI %u.%u, this mnemo has %zu bytes, ABI %d.%d (use MN_OP_RECORD)",
                        op->name, op->size, op->abi_version >> 16, op->abi_version & 0xffff, sizeof *op, MN_PLUGIN_ABI_MAJOR,
                        MN_PLUGIN_ABI_MINOR), MN_ERR_UNSUPPORTED;
    if (!op->compose && (!op->infer || !op->forward))
        return snprintf(msg, n, "op \"%s\" needs infer and forward (or compose)", op->name), MN_ERR_INVALID;
    if (!op->compose && !op->vjp && !(op->flags & MN_OPF_NOGRAD))
        return snprintf(msg, n, "op \"%s\" has no VJP and is not flagged nograd", op->name), MN_ERR_INVALID;
    if (op->inplace >= (op->arity < 0 ? MN_MAX_INPUTS : op->arity))
        return snprintf(msg, n, "op \"%s\" declares in-place input %d of %d", op->name, op->inplace, op->arity), MN_ERR_INVALID;
    return MN_OK;
}

const char *mn_op_name(const mn_op_def *op) { return op ? op->name : NULL; }
int mn_op_arity(const mn_op_def *op) { return op ? op->arity : 0; }
bool mn_op_differentiable(const mn_op_def *op) { return op && !(op->flags & MN_OPF_NOGRAD) && (op->vjp || op->compose); }
const char *mn_op_doc(const mn_op_def *op) { return op ? op->doc : NULL; }
unsigned mn_op_flags(const mn_op_def *op) { return op ? op->flags : 0; }

mn_status mn__infer_fail(mn_infer_ctx *c, mn_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msglen, fmt, ap);
    va_end(ap);
    return code;
}

mn_status mn__kernel_fail(const mn_kernel_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msglen, fmt, ap);
    va_end(ap);
    return MN_ERR_RUNTIME;
}

int mn__axis(int axis, int ndim)
{
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

mn__split3 mn__split_at(mn_shape s, int axis)
{
    mn__split3 r = { 1, 1, 1 };
    for (int i = 0; i < s.ndim; i++) {
        if (i < axis) r.outer *= s.d[i];
        else if (i == axis) r.dim = s.d[i];
        else r.inner *= s.d[i];
    }
    return r;
}

mn_status mn__infer_shape_attr(mn_infer_ctx *c, mn_shape s)
{
    if (s.ndim < 0 || s.ndim > MN_MAX_DIMS) return mn__infer_fail(c, MN_ERR_SHAPE, "%d dims (at most %d)", s.ndim, MN_MAX_DIMS);
    for (int i = 0; i < s.ndim; i++)
        if (s.d[i] < 0) return mn__infer_fail(c, MN_ERR_SHAPE, "negative dim %lld", (long long)s.d[i]);
    return MN_OK;
}
