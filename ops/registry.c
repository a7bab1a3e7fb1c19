/* ops/registry.c: the operator registry. Built-in records come from the
 * op family files, listed once in builtin[]; later additions (plugins)
 * append to the same id space. Ids are stable for the process's life. */
#include "op.h"
#include <stdio.h>
#include <string.h>

#define MN__OPS(X)                                                             \
    X(add) X(sub) X(mul) X(div) X(neg) X(scale) X(exp) X(log) X(sqrt)          \
    X(square) X(tanh) X(sigmoid) X(relu) X(relu_grad) X(tanh_grad)             \
    X(sigmoid_grad) X(matmul) X(permute) X(reshape) X(expand) X(sum) X(mean)   \
    X(softmax) X(log_softmax) X(softmax_grad) X(log_softmax_grad)              \
    X(cross_entropy) X(cross_entropy_grad) X(mse_loss)

#define MN__DECL(n) extern const mn_op_def mn__op_##n;
MN__OPS(MN__DECL)
#undef MN__DECL

static const mn_op_def *const builtin[] = {
#define MN__REF(n) &mn__op_##n,
    MN__OPS(MN__REF)
#undef MN__REF
};

int mn_op_count(void) { return (int)MN__ARRAY_LEN(builtin); }
const mn_op_def *mn_op_at(int id) { return id >= 0 && id < mn_op_count() ? builtin[id] : NULL; }

const mn_op_def *mn_op_find(const char *name)
{
    for (int i = 0; name && i < mn_op_count(); i++)
        if (strcmp(builtin[i]->name, name) == 0) return builtin[i];
    return NULL;
}

const char *mn_op_name(const mn_op_def *op) { return op ? op->name : NULL; }
int mn_op_arity(const mn_op_def *op) { return op ? op->arity : 0; }
bool mn_op_differentiable(const mn_op_def *op) { return op && !(op->flags & MN_OPF_NOGRAD) && op->vjp; }
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
