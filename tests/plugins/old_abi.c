/* tests/plugins/old_abi.c: a plugin built against the frozen ABI 2.0 header
 * (tests/plugins/abi2/mnemo_plugin.h, first on the include path). This mnemo
 * must refuse it, naming both ABI versions; the same source built against
 * the current header (-DCURRENT_ABI) must load. */
#include <mnemo_plugin.h>

static mn_status infer_id(mn_infer_ctx *c) { c->out = c->in[0]; return MN_OK; }
static mn_status fwd_copy(const mn_kernel_ctx *c)
{
    for (int64_t i = 0; i < mn_p_numel(c->out->shape); i++) mn_f32(c->out)[i] = mn_f32(&c->in[0])[i];
    return MN_OK;
}

#ifdef CURRENT_ABI
static const struct mn_op_def op_id = { MN_OP_RECORD, .name = NAME ".id", .doc = "y = x; no gradient", .arity = 1,
                                        .flags = MN_OPF_NOGRAD, .inplace = -1, .infer = infer_id, .forward = fwd_copy };
#else
static const struct mn_op_def op_id = { .name = NAME ".id", .doc = "y = x; no gradient", .arity = 1,
                                        .flags = MN_OPF_NOGRAD, .inplace = -1, .infer = infer_id, .forward = fwd_copy };
#endif

static mn_status init(const mn_plugin_host *h, mn_plugin_ctx *ctx) { return h->register_op(ctx, &op_id); }

MN_PLUGIN_DEFINE(NAME, "1.0", init)
