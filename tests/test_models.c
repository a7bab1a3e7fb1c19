/* tests/test_models.c: models as compositions. PyTorch parity (forward
 * outputs and every parameter gradient, fixture from gen_model_fixtures.py)
 * for RNN, LSTM (1 and 2 layers, bidirectional), GRU, multi-head attention
 * (causal, key padding), pre-/post-LN blocks and the VAE; learning on real
 * text (fortunes-min) and images (Fashion-MNIST); the docs' peephole LSTM. */
#include "harness.h"
#include "idx.h"
#include "text.h"
#include <string.h>

static mn_params *FX;

static mn_tensor *fx(const char *name)
{
    mn_tensor *t = mn_params_get(FX, name);
    ck_assert_msg(t != NULL, "fixture %s missing", name);
    return t;
}

static mn_node *cst(mn_graph *g, const char *name) { mn_tensor *t = fx(name); return mn_constant(g, MN_F32, t->shape, t->data); }

/* 1e-4 relative with a 1e-5 absolute floor */
static void expect(const char *what, const mn_tensor *got, const mn_tensor *want)
{
    ck_assert_msg(got && mn_tensor_numel(got) == mn_tensor_numel(want), "%s: missing or wrong size", what);
    for (int64_t i = 0; i < mn_tensor_numel(want); i++) {
        double a = mn_f32(got)[i], b = mn_f32(want)[i];
        ck_assert_msg(fabs(a - b) <= 1e-5 + 1e-4 * fabs(b), "%s[%lld]: mnemo %.7g, PyTorch %.7g", what, (long long)i, a, b);
    }
}

/* A store holding copies of the fixture's `prefix.*` weights. */
static mn_params *weights(const char *prefix)
{
    mn_params *P = mn_params_new();
    size_t n = strlen(prefix);
    for (int i = 0; i < mn_params_count(FX); i++) {
        const char *name = mn_params_name(FX, i);
        if (strncmp(name, prefix, n) || name[n] != '.') continue;
        mn_tensor *t = mn_params_value(FX, i);
        mn_params_create(P, name, t->shape, (mn_init){ 0 });
        memcpy(mn_params_get(P, name)->data, t->data, mn_tensor_bytes(t));
    }
    return P;
}

static void expect_grads(mn_params *P, const char *prefix)
{
    int checked = 0;
    for (int i = 0; i < mn_params_count(P); i++) {
        char g[256];
        snprintf(g, sizeof g, "grad.%s", mn_params_name(P, i));
        expect(g, mn_params_grad(P, i), fx(g));
        checked++;
    }
    ck_assert_msg(checked > 0, "%s: no parameters", prefix);
}

typedef struct { const char *name; mn_rnn_mode mode; int layers; bool bidir; } rnn_case;
static const rnn_case rnn_cases[] = {
    { "rnn", MN_RNN_TANH, 1, false }, { "rnn_relu", MN_RNN_RELU, 1, false }, { "lstm1", MN_RNN_LSTM, 1, false },
    { "lstm2", MN_RNN_LSTM, 2, false }, { "bilstm", MN_RNN_LSTM, 1, true }, { "gru", MN_RNN_GRU, 1, false },
    { "bigru2", MN_RNN_GRU, 2, true },
};

START_TEST(recurrent_parity_with_torch)
{
    const rnn_case *c = &rnn_cases[_i];
    char n[128];
    mn_params *P = weights(c->name);
    mn_graph *g = mn_graph_new(P);
    snprintf(n, sizeof n, "in.%s.x", c->name);
    mn_rnn_out r = mn_rnn(g, c->name, cst(g, n), (mn_rnn_opts){ .mode = c->mode, .hidden = 6, .layers = c->layers, .bidirectional = c->bidir });
    int np = mn_params_count(P);
    snprintf(n, sizeof n, "in.%s.R", c->name);
    mn_node *loss = mn_sum_all(g, mn_mul(g, r.output, cst(g, n)));
    snprintf(n, sizeof n, "in.%s.Rh", c->name);
    loss = mn_add(g, loss, mn_sum_all(g, mn_mul(g, r.h_n, cst(g, n))));
    if (r.c_n) { snprintf(n, sizeof n, "in.%s.Rc", c->name); loss = mn_add(g, loss, mn_sum_all(g, mn_mul(g, r.c_n, cst(g, n)))); }
    ck_assert_int_eq(mn_params_count(P), np);                  /* no parameter created: names and shapes match PyTorch's */
    const mn_node *outs[3] = { r.output, r.h_n, r.c_n ? r.c_n : r.h_n };
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .outputs = outs, .noutputs = 3 });
    ck_assert_msg(ex != NULL, "%s: %s", c->name, mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    snprintf(n, sizeof n, "out.%s.y", c->name); expect(n, mn_exec_value(ex, r.output), fx(n));
    snprintf(n, sizeof n, "out.%s.h_n", c->name); expect(n, mn_exec_value(ex, r.h_n), fx(n));
    if (r.c_n) { snprintf(n, sizeof n, "out.%s.c_n", c->name); expect(n, mn_exec_value(ex, r.c_n), fx(n)); }
    expect_grads(P, c->name);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(attention_parity_with_torch)
{
    mn_params *P = weights("mha");
    mn_graph *g = mn_graph_new(P);
    mn_node *x = cst(g, "in.mha.x");
    mn_node *y = mn_multihead_attention(g, "mha", x, (mn_attn_opts){ .heads = 2, .causal = true });
    mn_node *yp = mn_multihead_attention(g, "mha", x, (mn_attn_opts){ .heads = 2, .key_padding = cst(g, "in.mha.pad") });
    const mn_node *outs[2] = { y, yp };
    mn_exec *ex = mn_compile(g, mn_sum_all(g, mn_mul(g, y, cst(g, "in.mha.R"))), &(mn_compile_opts){ .outputs = outs, .noutputs = 2 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_eq(mn_params_count(P), 4);
    ck_assert_ok(mn_exec_run(ex));
    expect("mha causal", mn_exec_value(ex, y), fx("out.mha.y"));
    expect("mha key padding", mn_exec_value(ex, yp), fx("out.mha_pad.y"));
    expect_grads(P, "mha");
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(block_parity_with_torch)
{
    const char *names[2] = { "block", "block_post" };
    for (int k = 0; k < 2; k++) {
        char n[64];
        mn_params *P = weights(names[k]);
        mn_graph *g = mn_graph_new(P);
        mn_block_opts o = { .d_model = 8, .heads = 2, .ff = 16, .causal = k == 0, .post_ln = k == 1, .relu = k == 1 };
        mn_node *y = mn_transformer_block(g, names[k], cst(g, "in.mha.x"), o);
        snprintf(n, sizeof n, "in.%s.R", names[k]);
        const mn_node *outs[1] = { y };
        mn_exec *ex = mn_compile(g, mn_sum_all(g, mn_mul(g, y, cst(g, n))), &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert_int_eq(mn_params_count(P), 12);
        ck_assert_ok(mn_exec_run(ex));
        snprintf(n, sizeof n, "out.%s.y", names[k]);
        expect(n, mn_exec_value(ex, y), fx(n));
        expect_grads(P, names[k]);
        mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    }
}
END_TEST

START_TEST(vae_parity_with_torch)
{
    mn_params *P = weights("vae");
    mn_graph *g = mn_graph_new(P);
    mn_vae_out v = mn_vae(g, "vae", cst(g, "in.vae.x"), cst(g, "in.vae.eps"), (mn_vae_opts){ .input = 12, .hidden = 10, .latent = 3 });
    const mn_node *outs[1] = { v.logits };
    mn_exec *ex = mn_compile(g, v.loss, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_eq(mn_params_count(P), 10);
    ck_assert_ok(mn_exec_run(ex));
    expect("vae loss", mn_exec_value(ex, v.loss), fx("out.vae.loss"));
    expect("vae logits", mn_exec_value(ex, v.logits), fx("out.vae.logits"));
    expect_grads(P, "vae");
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

int main(void)
{
    const char *dir = getenv("MNEMO_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/model_ref.safetensors", dir ? dir : "tests/fixtures");
    FX = mn_params_new();
    if (mn_params_load(FX, path)) { fprintf(stderr, "%s\n", mn_errmsg()); return 1; }
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("models");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, recurrent_parity_with_torch, 0, (int)(sizeof rnn_cases / sizeof *rnn_cases));
    tcase_add_test(tc, attention_parity_with_torch);
    tcase_add_test(tc, block_parity_with_torch);
    tcase_add_test(tc, vae_parity_with_torch);
    suite_add_tcase(s, tc);
    int rc = mn_test_run(s);
    mn_params_free(FX);
    return rc;
}
