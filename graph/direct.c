/* graph/direct.c: the direct-gradients pass. A parameter gradient whose
 * producing GEMM can add into its output is written straight into the
 * store's gradient (no arena bytes, no separate accumulation). Reads the
 * steps and sinks; writes value.direct and grad_param (MN_VAL_GRAD),
 * step.accumulate and sink.direct, nothing else. */
#include "exec.h"
#include <stdlib.h>

/* A parameter gradient computed by an op that can add into its output
 * (MN_OPF_ACCUMULATE: matmul, e.g. a weight gradient), read by nothing
 * else and the only gradient in its value, is added by that step straight
 * into the store's gradient (GEMM with beta = 1): no arena bytes, no
 * separate pass adding it. */
static void direct_sinks(mn_exec *ex)
{
    int *nread = malloc(((size_t)ex->nvals + 1) * sizeof *nread);
    if (!nread) return;                     /* an optimisation only */
    mn__count_reads(ex, nread);
    for (int i = 0; i < ex->nsinks; i++) {
        mn_sink *k = &ex->sinks[i];
        mn_value *v = &ex->vals[k->value];
        const mn_tensor *gt = mn_params_grad(ex->g->P, k->param);
        /* one read in all: this sink (no step, no second parameter, not kept) */
        if (mn__kind(v) != MN_VAL_ARENA || v->def < 0 || nread[k->value] != 1 || !gt) continue;
        mn_step *st = &ex->steps[v->def];
        if (st->fused || st->out != k->value || !(st->node->op->flags & MN_OPF_ACCUMULATE)) continue;
        if (gt->dtype != v->t.dtype || !mn_shape_eq(gt->shape, v->t.shape)) continue;
        v->direct = true;
        v->grad_param = k->param;
        st->accumulate = true;
        k->direct = true;
        ex->direct_grads++;
    }
    free(nread);
}

mn_status mn__pass_direct(mn_exec *ex)
{
    direct_sinks(ex);
    mn__stat(ex, "direct.gradients", ex->direct_grads);
    return MN_OK;
}
