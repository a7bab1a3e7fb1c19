/* tests/test_models.c: models as compositions. PyTorch parity (forward
 * outputs and every parameter gradient, fixture from gen_model_fixtures.py)
 * for RNN, LSTM (1 and 2 layers, bidirectional), GRU, multi-head attention
 * (causal, key padding), pre-/post-LN blocks and the VAE; learning on real
 * text (fortunes-min) and images (Fashion-MNIST); the docs' peephole LSTM. */
#include "harness.h"
#include "idx.h"
#include "text.h"
#include "train.h"
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

/* Options the parity fixtures do not cover: sinusoidal positions, weight
 * tying (one parameter fed by both uses), the encoder stack, dropout in
 * training graphs, a one-step RNN graph matching the unrolled one. */
START_TEST(transformer_variants_build_and_train)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    int32_t tok[2 * 6] = { 1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1 };
    mn_node *x = mn_constant(g, MN_I32, MN_SHAPE(2, 6), tok);
    mn_node *logits = mn_transformer_lm(g, "lm", x, (mn_lm_opts){ .vocab = 7, .d_model = 8, .heads = 2, .layers = 2, .ff = 16,
                                                                   .max_len = 6, .sinusoidal = true, .tie_weights = true,
                                                                   .dropout = 0.1f, .training = true });
    ck_assert_msg(logits != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ptr_null(mn_params_get(P, "lm.pos_emb.weight"));          /* sinusoidal: no position parameters */
    ck_assert_ptr_null(mn_params_get(P, "lm.head.weight"));             /* tied to the token embedding */
    mn_node *y = mn_constant(g, MN_I32, MN_SHAPE(12), tok);
    mn_node *loss = mn_cross_entropy(g, mn_reshape(g, logits, MN_SHAPE(12, 7)), y);
    mn_node *enc = mn_transformer_encoder(g, "enc", mn_embedding(g, "e2", x, 7, 8), 2,
                                          (mn_block_opts){ .d_model = 8, .heads = 2, .ff = 16, .key_padding = mn_constant(g, MN_I32, MN_SHAPE(2, 6), (int32_t[12]){ 0, 0, 0, 0, 1, 1 }) });
    ck_assert_ptr_nonnull(mn_params_get(P, "enc.layers.1.norm2.weight"));
    ck_assert_ptr_nonnull(mn_params_get(P, "enc.norm.weight"));
    loss = mn_add(g, loss, mn_scale(g, mn_mean(g, mn_square(g, enc), 0, NULL, false), 0.01f));
    mn_exec *ex = mn_compile(g, loss, NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    mn_optim *o = mn_adam(P, (mn_adam_opts){ .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f });
    double first = 0, last = 0;
    for (int s = 0; s < 150; s++) {
        ck_assert_ok(mn_exec_run(ex));
        if (!s) {
            first = mn_exec_loss(ex);
            double gsum = 0;                   /* the tied embedding gets gradients from input and output uses */
            for (int64_t i = 0; i < 7 * 8; i++) gsum += fabs(mn_f32(mn_params_get_grad(P, "lm.tok_emb.weight"))[i]);
            ck_assert(gsum > 0);
        }
        last = mn_exec_loss(ex);
        mn_optim_step(o);
        mn_optim_zero_grad(o);
    }
    ck_assert_msg(last < 0.5 * first, "%.3f -> %.3f", first, last);
    mn_optim_free(o); mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(one_step_graph_matches_unrolled)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    float xs[3 * 2 * 4];
    mn_rng_fill_normal(xs, 24, 1, 1, 0, 1);
    mn_rnn_opts o = { .mode = MN_RNN_LSTM, .hidden = 5, .layers = 2 };
    mn_rnn_out full = mn_rnn(g, "rnn", mn_constant(g, MN_F32, MN_SHAPE(3, 2, 4), xs), o);
    mn_node *x1 = mn_input(g, "x1", MN_F32, MN_SHAPE(1, 2, 4));
    o.h0 = mn_input(g, "h0", MN_F32, MN_SHAPE(2, 2, 5));
    o.c0 = mn_input(g, "c0", MN_F32, MN_SHAPE(2, 2, 5));
    mn_rnn_out step = mn_rnn(g, "rnn", x1, o);
    const mn_node *outs[5] = { full.output, full.h_n, step.output, step.h_n, step.c_n };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 5 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    float h[20] = { 0 }, c[20] = { 0 };
    for (int t = 0; t < 3; t++) {
        mn_exec_feed_data(ex, "x1", xs + t * 8, 8 * sizeof(float));
        mn_exec_feed_data(ex, "h0", h, sizeof h);
        mn_exec_feed_data(ex, "c0", c, sizeof c);
        ck_assert_ok(mn_exec_run(ex));
        for (int i = 0; i < 10; i++)
            ck_assert_close(mn_f32(mn_exec_value(ex, step.output))[i], mn_f32(mn_exec_value(ex, full.output))[t * 10 + i], 1e-6);
        memcpy(h, mn_exec_value(ex, step.h_n)->data, sizeof h);
        memcpy(c, mn_exec_value(ex, step.c_n)->data, sizeof c);
    }
    for (int i = 0; i < 20; i++) ck_assert_close(h[i], mn_f32(mn_exec_value(ex, full.h_n))[i], 1e-6);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* The LM's cached step (mn_transformer_lm_step) gives, position after
 * position, the logits of the full model over the whole prefix: two
 * sequences, pre-LN with learned positions and post-LN with sinusoidal
 * positions, ReLU and a tied head; the cache has more slots than are used. */
START_TEST(lm_step_with_cache_matches_full_recomputation)
{
    enum { N = 2, T = 6, L = 8, E = 16, H = 4, DH = E / H, V = 11, LAYERS = 2 };
    mn_lm_opts variants[2] = { { .vocab = V, .d_model = E, .heads = H, .layers = LAYERS, .ff = 32, .max_len = L },
                               { .vocab = V, .d_model = E, .heads = H, .layers = LAYERS, .ff = 32, .max_len = L,
                                 .post_ln = true, .sinusoidal = true, .relu = true, .tie_weights = true } };
    int32_t tokens[N * T];
    for (int i = 0; i < N * T; i++) tokens[i] = (int32_t)((5 * i + 3) % V);
    for (int variant = 0; variant < 2; variant++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        mn_node *full = mn_transformer_lm(g, "lm", mn_constant(g, MN_I32, MN_SHAPE(N, T), tokens), variants[variant]);
        mn_node *ck[LAYERS], *cv[LAYERS], *nk[LAYERS], *nv[LAYERS];
        char n[16];
        for (int l = 0; l < LAYERS; l++) {
            snprintf(n, sizeof n, "k%d", l);
            ck[l] = mn_input(g, n, MN_F32, MN_SHAPE(N, H, L, DH));
            snprintf(n, sizeof n, "v%d", l);
            cv[l] = mn_input(g, n, MN_F32, MN_SHAPE(N, H, L, DH));
        }
        mn_lm_step st = { .token = mn_input(g, "tok", MN_I32, MN_SHAPE(N, 1)), .pos = mn_input(g, "pos", MN_I32, MN_SHAPE(1)),
                          .self_k = ck, .self_v = cv, .new_k = nk, .new_v = nv };
        mn_node *step = mn_transformer_lm_step(g, "lm", &st, variants[variant]);
        ck_assert_msg(step != NULL, "%s", mn_graph_errmsg(g));
        ck_assert(mn_shape_eq(mn_node_shape(step), MN_SHAPE(N, 1, V)));
        const mn_node *outs[2 + 2 * LAYERS] = { full, step };
        for (int l = 0; l < LAYERS; l++) { outs[2 + 2 * l] = nk[l]; outs[3 + 2 * l] = nv[l]; }
        mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 2 + 2 * LAYERS });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        static float kc[LAYERS][N * H * L * DH], vc[LAYERS][N * H * L * DH];
        for (int l = 0; l < LAYERS; l++)
            for (int i = 0; i < N * H * L * DH; i++) kc[l][i] = vc[l][i] = 1e3f;   /* unused slots are masked out */
        for (int t = 0; t < T; t++) {
            int32_t tok[N] = { tokens[t], tokens[T + t] }, pos = t;
            ck_assert_ok(mn_exec_feed_data(ex, "tok", tok, sizeof tok));
            ck_assert_ok(mn_exec_feed_data(ex, "pos", &pos, sizeof pos));
            for (int l = 0; l < LAYERS; l++) {
                snprintf(n, sizeof n, "k%d", l);
                ck_assert_ok(mn_exec_feed_data(ex, n, kc[l], sizeof kc[l]));
                snprintf(n, sizeof n, "v%d", l);
                ck_assert_ok(mn_exec_feed_data(ex, n, vc[l], sizeof vc[l]));
            }
            ck_assert_ok(mn_exec_run(ex));
            const float *want = mn_f32(mn_exec_value(ex, full)), *got = mn_f32(mn_exec_value(ex, step));
            for (int s = 0; s < N; s++)
                for (int j = 0; j < V; j++)
                    ck_assert_msg(fabsf(got[s * V + j] - want[(s * T + t) * V + j]) <= 1e-5f * (1 + fabsf(want[(s * T + t) * V + j])),
                                  "variant %d, sequence %d, position %d, logit %d: step %.7g, full %.7g", variant, s, t, j,
                                  got[s * V + j], want[(s * T + t) * V + j]);
            for (int l = 0; l < LAYERS; l++)
                for (int r = 0; r < N * H; r++) {
                    memcpy(&kc[l][(r * L + t) * DH], mn_f32(mn_exec_value(ex, nk[l])) + r * DH, DH * sizeof(float));
                    memcpy(&vc[l][(r * L + t) * DH], mn_f32(mn_exec_value(ex, nv[l])) + r * DH, DH * sizeof(float));
                }
        }
        mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    }
}
END_TEST

/* ---- learning on real data ---- */

static mn_text TEXT;

/* tokens [T, B] (time major) or [B, T] -> logits [T*B, V] in the same order */
typedef mn_node *(*lm_builder)(mn_graph *g, mn_node *tokens, int64_t V);

static mn_node *lm_lstm(mn_graph *g, mn_node *tok, int64_t V)
{
    mn_node *e = mn_embedding(g, "emb", tok, V, 32);
    mn_rnn_out r = mn_rnn(g, "rnn", e, (mn_rnn_opts){ .mode = MN_RNN_LSTM, .hidden = 128 });
    return mn_linear(g, "head", r.output, V, true);
}

static mn_node *lm_gru(mn_graph *g, mn_node *tok, int64_t V)
{
    mn_node *e = mn_embedding(g, "emb", tok, V, 32);
    mn_rnn_out r = mn_rnn(g, "rnn", e, (mn_rnn_opts){ .mode = MN_RNN_GRU, .hidden = 128 });
    return mn_linear(g, "head", r.output, V, true);
}

static mn_node *lm_transformer(mn_graph *g, mn_node *tok, int64_t V)
{
    return mn_transformer_lm(g, "lm", tok, (mn_lm_opts){ .vocab = V, .d_model = 64, .heads = 4, .layers = 2, .ff = 256, .max_len = 64 });
}

/* Trains on random windows of the fortunes text; returns the mean loss of
 * the last 20 steps (and the first 20 in *first). */
static double train_lm(lm_builder build, bool batch_first, int steps, float lr, double *first)
{
    enum { T = 32, B = 16 };
    int64_t V = TEXT.vocab;
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 5);
    mn_graph *g = mn_graph_new(P);
    mn_shape ts = batch_first ? MN_SHAPE(B, T) : MN_SHAPE(T, B);
    mn_node *x = mn_input(g, "x", MN_I32, ts), *y = mn_input(g, "y", MN_I32, ts);
    mn_node *logits = build(g, x, V);
    mn_node *loss = mn_cross_entropy(g, mn_reshape(g, logits, MN_SHAPE(T * B, V)), mn_reshape(g, y, MN_SHAPE(T * B)));
    mn_exec *ex = mn_compile(g, loss, NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    mn_optim *o = mn_adam(P, (mn_adam_opts){ .lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f });
    int32_t xb[T * B], yb[T * B];
    double f = 0, l = 0;
    for (int s = 0; s < steps; s++) {
        for (int b = 0; b < B; b++) {
            int64_t at = (int64_t)(mn_rng_uniform(9, (uint64_t)s, (uint64_t)b) * (float)(TEXT.n - T - 1));
            for (int t = 0; t < T; t++) {
                int k = batch_first ? b * T + t : t * B + b;
                xb[k] = TEXT.ids[at + t];
                yb[k] = TEXT.ids[at + t + 1];
            }
        }
        mn_exec_feed_data(ex, "x", xb, sizeof xb);
        mn_exec_feed_data(ex, "y", yb, sizeof yb);
        ck_assert_ok(mn_exec_run(ex));
        mn_clip_grad_norm(P, 1.0f, 2.0f);
        ck_assert_ok(mn_optim_step(o));
        mn_optim_zero_grad(o);
        if (s < 20) f += mn_exec_loss(ex) / 20;
        if (s >= steps - 20) l += mn_exec_loss(ex) / 20;
    }
    *first = f;
    mn_optim_free(o); mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    return l;
}

/* Bounds: the text (97,578 characters, 88 distinct) has a unigram entropy
 * of 3.26 nats per character; each model must get well below it, to 2.4,
 * within 400 steps of 16 x 32 characters (measured: lstm 2.08, gru 1.95,
 * transformer 2.22 on the first 20 / last 20 step means). */
START_TEST(char_lm_lstm_learns_fortunes)
{
    double first, last = train_lm(lm_lstm, false, 400, 3e-3f, &first);
    printf("char LM lstm: loss %.3f -> %.3f (400 steps)\n", first, last);
    ck_assert_msg(last < 2.4, "lstm: %.3f", last);
}
END_TEST

START_TEST(char_lm_gru_learns_fortunes)
{
    double first, last = train_lm(lm_gru, false, 400, 3e-3f, &first);
    printf("char LM gru: loss %.3f -> %.3f (400 steps)\n", first, last);
    ck_assert_msg(last < 2.4, "gru: %.3f", last);
}
END_TEST

START_TEST(char_lm_transformer_learns_fortunes)
{
    double first, last = train_lm(lm_transformer, true, 400, 2e-3f, &first);
    printf("char LM transformer: loss %.3f -> %.3f (400 steps)\n", first, last);
    ck_assert_msg(last < 2.4, "transformer: %.3f", last);
}
END_TEST

/* ---- the worked example of docs/models.md: a new recurrent architecture ---- */

/* Minimal gated unit (Zhou et al. 2016): one gate instead of GRU's two.
 *   f = sigmoid(x W_f^T + h U_f^T + b_f)
 *   n = tanh(x W_n^T + (f * h) U_n^T + b_n)
 *   h = h + f * (n - h)
 * x: [T, B, I] -> outputs [T, B, H]. */
static mn_node *mgu(mn_graph *g, const char *prefix, mn_node *x, int64_t H)
{
    mn_shape s = mn_node_shape(x);
    int64_t T = s.d[0], B = s.d[1], I = s.d[2];
    mn_init u = mn_init_like(MN_LIKE_RNN, false, H);            /* as nn.GRU: U(+-1/sqrt(H)) */
    mn_node **hs = calloc((size_t)(T > 0 ? T : 1), sizeof *hs); /* one output per step */
    if (!hs) { mn_graph_fail(g, MN_ERR_NOMEM, "mgu %s: %lld steps", prefix, (long long)T); return NULL; }
    mn_graph_push_scope(g, prefix);                            /* prefix.weight_ih, ... */
    mn_node *w = mn_param(g, "weight_ih", MN_SHAPE(2 * H, I), u); /* [W_f; W_n] */
    mn_node *b = mn_param(g, "bias", MN_SHAPE(2 * H), u);
    mn_node *uf = mn_param(g, "weight_hf", MN_SHAPE(H, H), u);
    mn_node *un = mn_param(g, "weight_hn", MN_SHAPE(H, H), u);
    mn_node *xp = mn_linear_op(g, x, w, b);                    /* all steps at once: [T, B, 2H] */
    mn_node *h = mn_fill(g, MN_SHAPE(B, H), 0.0f, MN_F32);
    for (int64_t t = 0; t < T; t++) {
        mn_node *xt[2];
        mn_chunk(g, mn_squeeze(g, mn_slice(g, xp, 0, t, t + 1, 1), 0), 1, 2, xt);
        mn_node *f = mn_sigmoid(g, mn_add(g, xt[0], mn_matmul(g, h, uf, false, true)));
        mn_node *c = mn_tanh(g, mn_add(g, xt[1], mn_matmul(g, mn_mul(g, f, h), un, false, true)));
        h = hs[t] = mn_add(g, h, mn_mul(g, f, mn_sub(g, c, h)));
    }
    mn_node *out = mn_stack(g, hs, (int)T, 0);                /* [T, B, H] */
    free(hs);
    mn_graph_pop_scope(g);
    return out;
}

static mn_node *lm_mgu(mn_graph *g, mn_node *tok, int64_t V)
{
    mn_node *e = mn_embedding(g, "emb", tok, V, 32);
    return mn_linear(g, "head", mgu(g, "mgu", e, 128), V, true);
}

START_TEST(custom_architecture_learns)
{
    double first, last = train_lm(lm_mgu, false, 400, 3e-3f, &first);
    printf("char LM mgu (docs/models.md example): loss %.3f -> %.3f (400 steps)\n", first, last);
    ck_assert_msg(last < 2.4, "mgu: %.3f", last);
}
END_TEST

/* The example has no cap on the sequence: 100 steps give 100 outputs. */
START_TEST(custom_architecture_any_length)
{
    enum { T = 100, B = 2, I = 3, H = 4 };
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(T, B, I));
    mn_node *y = mgu(g, "mgu", x, H);
    ck_assert_msg(y != NULL, "%s", mn_graph_errmsg(g));
    mn_shape s = mn_node_shape(y);
    ck_assert_int_eq(s.ndim, 3);
    ck_assert_int_eq(s.d[0], T);
    mn_exec *ex = mn_compile(g, mn_sum_all(g, y), NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    float ones[T * B * I];
    for (int i = 0; i < T * B * I; i++) ones[i] = 1.0f;
    ck_assert_ok(mn_exec_feed_data(ex, "x", ones, sizeof ones));
    ck_assert_ok(mn_exec_run(ex));
    const float *out = mn_f32(mn_exec_value(ex, y));
    ck_assert_msg(out[(T - 1) * B * H] != 0.0f && isfinite(out[(T - 1) * B * H]), "step %d: %g", T - 1, out[(T - 1) * B * H]);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* ---- parameter scopes (PyTorch module paths) ---- */

static bool has_param(mn_params *P, const char *name) { return mn_params_find(P, name) >= 0; }

START_TEST(scopes_name_parameters_as_module_paths)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(2, 3));
    ck_assert_ok(mn_graph_push_scope(g, "encoder"));
    mn_node *h = mn_linear(g, "fc", x, 4, true);
    ck_assert_ok(mn_graph_push_scope(g, "layers.0"));
    h = mn_layer_norm(g, "norm", h, true);
    ck_assert_str_eq(mn_graph_scope(g), "encoder.layers.0");
    ck_assert_ok(mn_graph_pop_scope(g));
    ck_assert_str_eq(mn_graph_scope(g), "encoder");
    ck_assert_ptr_nonnull(mn_param_get(g, "fc.weight"));          /* relative to the scope */
    ck_assert_ok(mn_graph_pop_scope(g));
    ck_assert_str_eq(mn_graph_scope(g), "");
    mn_node *y = mn_linear(g, "head", h, 2, false);
    ck_assert_msg(y != NULL, "%s", mn_graph_errmsg(g));
    ck_assert(has_param(P, "encoder.fc.weight"));
    ck_assert(has_param(P, "encoder.fc.bias"));
    ck_assert(has_param(P, "encoder.layers.0.norm.weight"));
    ck_assert(has_param(P, "encoder.layers.0.norm.bias"));
    ck_assert(has_param(P, "head.weight"));
    ck_assert_int_eq(mn_params_count(P), 5);
    ck_assert_ptr_nonnull(mn_param_get(g, "encoder.fc.weight"));  /* full path at the top */
    mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* A built-in model under a scope: every name gains the prefix, and the
 * transformer's tied head finds its embedding inside the scope. */
START_TEST(scoped_builtin_models_keep_their_names_below_the_scope)
{
    mn_params *P = mn_params_new(), *Q = mn_params_new();
    mn_graph *g = mn_graph_new(P), *q = mn_graph_new(Q);
    mn_lm_opts o = { .vocab = 11, .d_model = 8, .heads = 2, .layers = 1, .ff = 16, .max_len = 4, .tie_weights = true };
    ck_assert_ok(mn_graph_push_scope(g, "model"));
    mn_node *a = mn_transformer_lm(g, "lm", mn_input(g, "tok", MN_I32, MN_SHAPE(2, 4)), o);
    ck_assert_ok(mn_graph_pop_scope(g));
    mn_node *b = mn_transformer_lm(q, "lm", mn_input(q, "tok", MN_I32, MN_SHAPE(2, 4)), o);
    ck_assert_msg(a != NULL && b != NULL, "%s %s", mn_graph_errmsg(g), mn_graph_errmsg(q));
    ck_assert_int_eq(mn_params_count(P), mn_params_count(Q));
    for (int i = 0; i < mn_params_count(Q); i++) {
        char want[256];
        snprintf(want, sizeof want, "model.%s", mn_params_name(Q, i));
        ck_assert_str_eq(mn_params_name(P, i), want);
    }
    mn_graph_free(g); mn_graph_free(q); mn_params_free(P); mn_params_free(Q);
}
END_TEST

START_TEST(bad_scope_use_is_a_graph_error)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    ck_assert_int_eq(mn_graph_pop_scope(g), MN_ERR_MISUSE);
    ck_assert_ptr_nonnull(strstr(mn_graph_errmsg(g), "pop_scope: no scope was pushed"));
    mn_graph_free(g);
    g = mn_graph_new(P);
    for (int i = 0; i < 32; i++) ck_assert_ok(mn_graph_push_scope(g, "s"));
    ck_assert_int_eq(mn_graph_push_scope(g, "deep"), MN_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(mn_graph_errmsg(g), "at most 32 deep"));
    mn_graph_free(g);
    g = mn_graph_new(P);
    ck_assert_int_eq(mn_graph_push_scope(g, ""), MN_ERR_INVALID);
    mn_graph_free(g);
    g = mn_graph_new(P);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_assert_ok(mn_graph_push_scope(g, longname));
    ck_assert_ptr_null(mn_param(g, "w", MN_SHAPE(1), (mn_init){ 0 }));
    ck_assert_ptr_nonnull(strstr(mn_graph_errmsg(g), "name longer than 255"));
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(vae_learns_fashion_mnist)
{
    enum { B = 100, EPOCHS = 3 };
    mn_fmnist tr;
    ck_assert_ok(mn_fmnist_load(MN_FMNIST_DIR, "train", 5000, &tr));
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 2);
    mn_graph *g = mn_graph_new(P);
    mn_graph_set_seed(g, 4);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 784));
    mn_vae_out v = mn_vae(g, "vae", x, NULL, (mn_vae_opts){ .input = 784, .hidden = 256, .latent = 16 });
    mn_exec *ex = mn_compile(g, v.loss, NULL);
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    mn_optim *o = mn_adam(P, MN_ADAM_DEFAULTS);
    double first = 0, last = 0;
    int nb = (int)(tr.n / B);
    for (int e = 0; e < EPOCHS; e++) {
        double sum = 0;
        for (int b = 0; b < nb; b++) {
            mn_exec_feed_data(ex, "x", mn_f32(tr.images) + (int64_t)b * B * 784, B * 784 * sizeof(float));
            ck_assert_ok(mn_exec_run(ex));
            sum += mn_exec_loss(ex);
            ck_assert_ok(mn_optim_step(o));
            mn_optim_zero_grad(o);
        }
        if (!e) first = sum / nb;
        last = sum / nb;
    }
    printf("vae: loss per image %.1f (epoch 1) -> %.1f (epoch %d)\n", first, last, EPOCHS);
    /* an untrained decoder scores ~543 (784 ln 2) per image; this VAE gets
     * below 300 within 3 epochs of 5,000 images (measured 289.6) */
    ck_assert_msg(last < 300 && last < 0.8 * first, "vae: %.1f -> %.1f", first, last);
    mn_optim_free(o); mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    mn_fmnist_free(&tr);
}
END_TEST

/* The command's MLP with --dropout: one image of ones, one step. Dropout on
 * hidden units zeroes whole rows of mlp.0.weight's gradient; dropout on
 * pixels would zero whole columns. Without training, dropout changes nothing. */
static double mlp_step(float dropout, bool training, int *zero_rows, int *zero_cols)
{
    mn_train_cfg c;
    ck_assert_ok(mn_cfg_defaults(&c, "mlp"));
    c.batch = 1; c.hidden = 32; c.dropout = dropout;
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 7);
    mn_graph *g = mn_graph_new(P);
    mn_graph_set_seed(g, 3);
    mn_model_graph m = mn_model_build(g, &c, 0, training);
    mn_exec *ex = mn_compile(g, m.loss, &(mn_compile_opts){ .threads = 1, .no_backward = !training });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    mn_tensor *x = mn_tensor_new(MN_F32, MN_SHAPE(1, 784)), *y = mn_tensor_new(MN_I32, MN_SHAPE(1));
    for (int i = 0; i < 784; i++) mn_f32(x)[i] = 1.0f;
    mn_i32(y)[0] = 3;
    ck_assert_ok(mn_exec_feed(ex, "x", x));
    ck_assert_ok(mn_exec_feed(ex, "y", y));
    ck_assert_ok(mn_exec_run(ex));
    double loss = mn_exec_loss(ex);
    const float *gw = training ? mn_f32(mn_params_get_grad(P, "mlp.0.weight")) : NULL;
    *zero_rows = *zero_cols = 0;
    for (int j = 0; gw && j < 32; j++) {
        bool zero = true;
        for (int k = 0; k < 784; k++) zero &= gw[j * 784 + k] == 0.0f;
        *zero_rows += zero;
    }
    for (int k = 0; gw && k < 784; k++) {
        bool zero = true;
        for (int j = 0; j < 32; j++) zero &= gw[j * 784 + k] == 0.0f;
        *zero_cols += zero;
    }
    mn_tensor_free(x); mn_tensor_free(y);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    return loss;
}

START_TEST(mlp_dropout_acts_on_hidden_units_not_pixels)
{
    int rows0, cols0, rows5, cols5, r, k;
    double plain = mlp_step(0, true, &rows0, &cols0), dropped = mlp_step(0.5f, true, &rows5, &cols5);
    ck_assert_int_eq(cols0, 0);
    ck_assert_int_eq(cols5, 0);                      /* no pixel dropped */
    ck_assert_int_ge(rows5, rows0 + 8);              /* about half of 32 hidden units dropped */
    ck_assert(plain != dropped);
    ck_assert(mlp_step(0.5f, false, &r, &k) == mlp_step(0, false, &r, &k));   /* evaluation: no dropout */
}
END_TEST

/* The VAE's dropout acts on its hidden layers when training, never in evaluation. */
START_TEST(vae_dropout_only_when_training)
{
    double loss[3];
    for (int i = 0; i < 3; i++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        mn_graph_set_seed(g, 5);
        mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(4, 16));
        mn_vae_opts o = { .input = 16, .hidden = 32, .latent = 2, .dropout = i ? 0.5f : 0, .training = i == 1 };
        mn_node *l = mn_vae(g, "vae", x, mn_fill(g, MN_SHAPE(4, 2), 0, MN_F32), o).loss;
        mn_exec *ex = mn_compile(g, l, &(mn_compile_opts){ .threads = 1, .no_backward = true });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        mn_tensor *xt = mn_tensor_new(MN_F32, MN_SHAPE(4, 16));
        for (int j = 0; j < 64; j++) mn_f32(xt)[j] = (float)(j % 5) / 5.0f;
        ck_assert_ok(mn_exec_feed(ex, "x", xt));
        ck_assert_ok(mn_exec_run(ex));
        loss[i] = mn_exec_loss(ex);
        mn_tensor_free(xt); mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    }
    ck_assert(loss[1] != loss[0]);                   /* training with dropout 0.5 */
    ck_assert(loss[2] == loss[0]);                   /* dropout 0.5, not training */
}
END_TEST

/* Generation whose graph cannot be built (a transformer config of 0 heads,
 * as a hostile checkpoint holds) returns the graph's error and leaves only
 * the prompt in the output: it never decodes ids that were not drawn. */
START_TEST(generate_reports_graph_error_and_writes_only_drawn_ids)
{
    mn_train_cfg c;
    ck_assert_ok(mn_cfg_defaults(&c, "transformer"));
    c.hidden = 16; c.layers = 1; c.ff = 16; c.seq = 8; c.heads = 0;
    mn_text v;
    ck_assert_ok(mn_vocab_from_json("[10, 32, 97, 98]", &v));
    mn_params *P = mn_params_new();
    char out[64];
    memset(out, 'Z', sizeof out);
    ck_assert_int_ne(mn_lm_generate(P, &c, &v, "ab", 20, 1.0f, 0, 1, out), MN_OK);
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "head"));
    ck_assert_str_eq(out, "ab");
    ck_assert_int_eq(mn_lm_generate(P, &c, &v, "a{", 20, 1.0f, 0, 1, out), MN_ERR_INVALID);   /* '{' is not in the vocabulary */
    ck_assert_ptr_nonnull(strstr(mn_errmsg(), "1 character is not in the model's vocabulary of 4 ('{')"));
    ck_assert_str_eq(out, "");
    mn_params_free(P);
}
END_TEST

/* Greedy sampling (top 1) from the transformer: the characters the full
 * model picks over the whole prefix (the last --seq tokens once longer),
 * whether they come from the cached step (the first --seq) or the window. */
START_TEST(transformer_sampling_with_cache_picks_what_recomputation_picks)
{
    mn_train_cfg c;
    ck_assert_ok(mn_cfg_defaults(&c, "transformer"));
    c.hidden = 16; c.layers = 2; c.ff = 32; c.seq = 6; c.heads = 2; c.threads = 1;
    mn_text v;
    ck_assert_ok(mn_vocab_from_json("[10, 32, 97, 98, 99, 100, 101]", &v));
    mn_lm_opts o = { .vocab = v.vocab, .d_model = c.hidden, .heads = c.heads, .layers = c.layers, .ff = c.ff, .max_len = c.seq };
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 11);
    mn_graph *g0 = mn_graph_new(P);
    ck_assert_ptr_nonnull(mn_transformer_lm(g0, "lm", mn_input(g0, "x", MN_I32, MN_SHAPE(1, c.seq)), o));   /* the weights */
    mn_graph_free(g0);
    enum { NEW = 10 };
    char out[2 + NEW + 1];
    ck_assert_ok(mn_lm_generate(P, &c, &v, "ab", NEW, 1.0f, 1, 5, out));
    int32_t ids[2 + NEW];
    mn_text_encode(&v, out, ids, 2 + NEW);
    for (int i = 2; i < 2 + NEW; i++) {
        int64_t L = i < c.seq ? i : c.seq;
        mn_graph *g = mn_graph_new(P);
        mn_node *logits = mn_transformer_lm(g, "lm", mn_constant(g, MN_I32, MN_SHAPE(1, L), ids + i - L), o);
        const mn_node *outs[1] = { logits };
        mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .threads = 1, .outputs = outs, .noutputs = 1 });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert_ok(mn_exec_run(ex));
        const float *z = mn_f32(mn_exec_value(ex, logits)) + (L - 1) * v.vocab;
        int best = 0;
        for (int j = 1; j < v.vocab; j++) if (z[j] > z[best]) best = j;
        ck_assert_msg(ids[i] == best, "character %d: sampled %d, the full model's top is %d", i, ids[i], best);
        mn_exec_free(ex); mn_graph_free(g);
    }
    mn_params_free(P);
}
END_TEST

/* Folded gathers (ops/index.c, on by default): the recurrent models of the
 * command (embedding 8 of a 40-token vocabulary, 64 tokens a batch) built
 * with folding on and off on one store give the same loss and gradients
 * to float rounding (the table's product rows come from another GEMM
 * call) for fewer FLOPs; and rows gathered from a table plus a vector
 * over them are the unfolded sum bit for bit. */
static float *fold_run(mn_params *P, const char *kind, bool fold, float *loss, double *flops, int64_t *n)
{
    mn_train_cfg c;
    ck_assert_ok(mn_cfg_defaults(&c, kind));
    c.batch = 4; c.seq = 16; c.hidden = 16; c.embed = 8; c.dropout = 0;
    mn_graph *g = mn_graph_new(P);
    mn_graph_set_folding(g, fold);
    mn_model_graph mg = mn_model_build(g, &c, 40, true);
    ck_assert_msg(mg.loss != NULL, "%s: %s", kind, mn_graph_errmsg(g));
    mn_exec *ex = mn_compile(g, mg.loss, &(mn_compile_opts){ .threads = 1 });
    ck_assert_msg(ex != NULL, "%s: %s", kind, mn_graph_errmsg(g));
    for (int i = 0; i < mn_exec_input_count(ex); i++) {
        const mn_tensor *t = mn_exec_input(ex, i);
        for (int64_t k = 0; k < mn_tensor_numel(t); k++) {
            float u = mn_rng_uniform(11, (uint64_t)i, (uint64_t)k);
            if (t->dtype == MN_I32) ((int32_t *)t->data)[k] = (int32_t)(u * 40);
            else ((float *)t->data)[k] = u;
        }
    }
    mn_params_zero_grad(P);
    ck_assert_ok(mn_exec_run(ex));
    *loss = mn_exec_loss(ex);
    *flops = mn_exec_get_stats(ex).flops;
    *n = 0;
    for (int i = 0; i < mn_params_count(P); i++) *n += mn_tensor_numel(mn_params_grad(P, i));
    float *gr = malloc((size_t)*n * sizeof *gr);
    for (int i = 0, at = 0; i < mn_params_count(P); i++) {
        memcpy(gr + at, mn_params_grad(P, i)->data, mn_tensor_bytes(mn_params_grad(P, i)));
        at += (int)mn_tensor_numel(mn_params_grad(P, i));
    }
    mn_exec_free(ex);
    mn_graph_free(g);
    return gr;
}

START_TEST(folded_embedding_projection_matches_the_unfolded)
{
    static const char *const kinds[] = { "lstm", "gru", "rnn" };
    const char *kind = kinds[_i];
    mn_params *P = mn_params_new();
    float l0, l1;
    double f0, f1;
    int64_t n0, n1;
    float *g0 = fold_run(P, kind, false, &l0, &f0, &n0), *g1 = fold_run(P, kind, true, &l1, &f1, &n1);
    ck_assert_int_eq(n0, n1);
    ck_assert_msg(fabs(l0 - l1) <= 1e-6 * fabs(l0), "%s: loss %.9g folded, %.9g not", kind, l1, l0);
    double worst = 0, big = 0;
    for (int64_t i = 0; i < n0; i++) {
        worst = fmax(worst, fabs((double)g0[i] - g1[i]));
        big = fmax(big, fabs((double)g0[i]));
    }
    ck_assert_msg(big > 0 && worst <= 1e-5 * big, "%s: gradients differ by %g (largest %g)", kind, worst, big);
    ck_assert_msg(f1 < f0, "%s: %g FLOPs folded, %g not", kind, f1, f0);
    free(g0); free(g1);
    mn_params_free(P);
}
END_TEST

START_TEST(folded_bias_add_is_bit_exact)
{
    float tab[5 * 3], bias[3];
    int32_t idx[12];
    for (int i = 0; i < 15; i++) tab[i] = mn_rng_uniform(3, 0, (uint64_t)i) * 7 - 3.5f;
    for (int i = 0; i < 3; i++) bias[i] = mn_rng_uniform(3, 1, (uint64_t)i) * 1e-3f;
    for (int i = 0; i < 12; i++) idx[i] = (i * 7) % 5;
    float out[2][12 * 3];
    for (int fold = 0; fold < 2; fold++) {
        mn_params *P = mn_params_new();
        mn_graph *g = mn_graph_new(P);
        mn_graph_set_folding(g, fold);
        mn_node *t = mn_constant(g, MN_F32, MN_SHAPE(5, 3), tab), *ix = mn_constant(g, MN_I32, MN_SHAPE(12), idx);
        mn_node *y = mn_add(g, mn_slice(g, mn_reshape(g, mn_index_select(g, t, 0, ix), MN_SHAPE(6, 2, 3)), 0, 1, 4, 1),
                            mn_constant(g, MN_F32, MN_SHAPE(3), bias));
        ck_assert_msg(!strcmp(mn_node_op(y), fold ? "reshape" : "add"), "folding %d: y is %s", fold, mn_node_op(y));
        mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = (const mn_node *const[]){ y }, .noutputs = 1, .threads = 1 });
        ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
        ck_assert_ok(mn_exec_run(ex));
        const mn_tensor *v = mn_exec_value(ex, y);
        ck_assert_int_eq(mn_tensor_numel(v), 3 * 2 * 3);
        memcpy(out[fold], v->data, mn_tensor_bytes(v));
        mn_exec_free(ex);
        mn_graph_free(g);
        mn_params_free(P);
    }
    for (int r = 0; r < 6; r++)                        /* rows 2..7 of the gather: tokens idx[2..7] */
        for (int j = 0; j < 3; j++) ck_assert_float_eq(out[0][r * 3 + j], tab[idx[r + 2] * 3 + j] + bias[j]);
    ck_assert_msg(memcmp(out[0], out[1], 18 * sizeof(float)) == 0, "folded add differs from the unfolded");
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
    tcase_add_loop_test(tc, folded_embedding_projection_matches_the_unfolded, 0, 3);
    tcase_add_test(tc, folded_bias_add_is_bit_exact);
    tcase_add_test(tc, block_parity_with_torch);
    tcase_add_test(tc, vae_parity_with_torch);
    tcase_add_test(tc, mlp_dropout_acts_on_hidden_units_not_pixels);
    tcase_add_test(tc, vae_dropout_only_when_training);
    tcase_add_test(tc, generate_reports_graph_error_and_writes_only_drawn_ids);
    tcase_add_test(tc, transformer_variants_build_and_train);
    tcase_add_test(tc, one_step_graph_matches_unrolled);
    tcase_add_test(tc, char_lm_lstm_learns_fortunes);
    tcase_add_test(tc, char_lm_gru_learns_fortunes);
    tcase_add_test(tc, char_lm_transformer_learns_fortunes);
    tcase_add_test(tc, vae_learns_fashion_mnist);
    tcase_add_test(tc, custom_architecture_learns);
    tcase_add_test(tc, custom_architecture_any_length);
    tcase_add_test(tc, scopes_name_parameters_as_module_paths);
    tcase_add_test(tc, scoped_builtin_models_keep_their_names_below_the_scope);
    tcase_add_test(tc, bad_scope_use_is_a_graph_error);
    tcase_add_test(tc, lm_step_with_cache_matches_full_recomputation);
    tcase_add_test(tc, transformer_sampling_with_cache_picks_what_recomputation_picks);
    suite_add_tcase(s, tc);
    const char *files[] = { MN_FORTUNES_DIR "/fortunes", MN_FORTUNES_DIR "/literature", MN_FORTUNES_DIR "/riddles", NULL };
    if (mn_text_load(files, &TEXT)) { fprintf(stderr, "%s\n", mn_errmsg()); return 1; }
    int rc = mn_test_run(s);
    mn_text_free(&TEXT);
    mn_params_free(FX);
    return rc;
}
