/* tests/plugins/bad.c: plugins that fail on purpose, one per -DKIND, for
 * tests/test_plugins.c. Each must leave the registry as it was. */
#include <mnemo_plugin.h>
#include <stdio.h>

/* each variant uses a subset of these */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-const-variable"

static mn_status infer_id(mn_infer_ctx *c) { c->out = c->in[0]; return MN_OK; }
static mn_status infer_reject(mn_infer_ctx *c) { snprintf(c->msg, c->msglen, "this op rejects every shape"); return MN_ERR_SHAPE; }
static mn_status fwd_copy(const mn_kernel_ctx *c)
{
    for (int64_t i = 0; i < mn_p_numel(c->out->shape); i++) mn_f32(c->out)[i] = mn_f32(&c->in[0])[i];
    return MN_OK;
}
static mn_status fwd_explode(const mn_kernel_ctx *c) { snprintf(c->msg, c->msglen, "the kernel failed on purpose"); return MN_ERR_RUNTIME; }

#define OP(n, inf, fw) { MN_OP_RECORD, .name = n, .doc = "test op", .arity = 1, .inplace = -1, .flags = MN_OPF_NOGRAD, .infer = inf, .forward = fw }

#if KIND == 1                                  /* no entry point */
const int not_an_entry = 1;
#else
static const struct mn_op_def op_x = OP(NAME ".x", infer_id, fwd_copy), op_add = OP("add", infer_id, fwd_copy);
static const struct mn_op_def op_novjp = { MN_OP_RECORD, .name = NAME ".x", .doc = "test op", .arity = 1, .inplace = -1, .infer = infer_id, .forward = fwd_copy };
/* records claiming fewer bytes: below the core (refused), and the core only
 * (accepted: its hints, though set in memory, lie beyond its size and are not read) */
static void pw_copy(float *out, const float *const *in, int64_t n, const void *attrs) { (void)attrs; for (int64_t i = 0; i < n; i++) out[i] = in[0][i]; }
static const struct mn_op_def op_tiny = { .size = 16, .abi_version = MN_PLUGIN_ABI_VERSION, .name = NAME ".x", .arity = 1,
                                          .inplace = -1, .flags = MN_OPF_NOGRAD, .infer = infer_id, .forward = fwd_copy };
static const struct mn_op_def op_core = { .size = offsetof(struct mn_op_def, traits), .abi_version = MN_PLUGIN_ABI_VERSION,
                                          .name = NAME ".x", .doc = "test op", .arity = 1, .inplace = -1, .flags = MN_OPF_NOGRAD,
                                          .infer = infer_id, .forward = fwd_copy, .traits.pointwise = pw_copy };
static const struct mn_op_def op_reject = OP(NAME ".reject", infer_reject, fwd_copy), op_explode = OP(NAME ".explode", infer_id, fwd_explode);

/* faulty.late: the identity whose gradient is a faulty.explode node, so a
 * training run fails in its backward pass, after earlier gradients were added. */
static const mn_plugin_host *host;
static mn_status vjp_late(mn_vjp_ctx *c)
{
    mn_node *dy = c->dy;
    c->dx[0] = host->op(c->g, NAME ".explode", &dy, 1, NULL, 0);
    return c->dx[0] ? MN_OK : MN_ERR_GRAPH;
}
static const struct mn_op_def op_late = { MN_OP_RECORD, .name = NAME ".late", .doc = "test op", .arity = 1, .inplace = -1,
                                          .infer = infer_id, .forward = fwd_copy, .vjp = vjp_late };

static mn_status init(const mn_plugin_host *h, mn_plugin_ctx *ctx)
{
    host = h;
#if KIND == 5                                  /* duplicate op name: the second registration fails */
    mn_status s = h->register_op(ctx, &op_x);
    return s ? s : h->register_op(ctx, &op_x);
#elif KIND == 6                                /* not namespaced: a built-in's name */
    return h->register_op(ctx, &op_add);
#elif KIND == 7                                /* init fails after registering an op */
    h->register_op(ctx, &op_x);
    return h->set_error(MN_ERR_RUNTIME, "init failed on purpose");
#elif KIND == 9                                /* neither a VJP nor the NOGRAD flag */
    return h->register_op(ctx, &op_novjp);
#elif KIND == 10                               /* a record smaller than the core fields */
    return h->register_op(ctx, &op_tiny);
#elif KIND == 11                               /* the core fields only: loads, no hints */
    return h->register_op(ctx, &op_core);
#else                                          /* faulty: ops that fail at build or run time */
    mn_status s = h->register_op(ctx, &op_reject);
    s = s ? s : h->register_op(ctx, &op_late);
    return s ? s : h->register_op(ctx, &op_explode);
#endif
}

#if KIND == 2
const mn_plugin_info *mn_plugin_entry(void);
const mn_plugin_info *mn_plugin_entry(void) { static const mn_plugin_info i = { 99, 0, MN_PLUGIN_FINGERPRINT, NAME, "1", init }; return &i; }
#elif KIND == 3
const mn_plugin_info *mn_plugin_entry(void);
const mn_plugin_info *mn_plugin_entry(void) { static const mn_plugin_info i = { MN_PLUGIN_ABI_MAJOR, MN_PLUGIN_ABI_MINOR + 1, MN_PLUGIN_FINGERPRINT, NAME, "1", init }; return &i; }
#elif KIND == 4
const mn_plugin_info *mn_plugin_entry(void);
const mn_plugin_info *mn_plugin_entry(void) { static const mn_plugin_info i = { MN_PLUGIN_ABI_MAJOR, MN_PLUGIN_ABI_MINOR, MN_PLUGIN_FINGERPRINT ^ 1u, NAME, "1", init }; return &i; }
#else
MN_PLUGIN_DEFINE(NAME, "1.0", init)
#endif
#endif
