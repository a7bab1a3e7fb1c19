/* tests/test_seq2seq.c: sequence-to-sequence models as compositions.
 * PyTorch parity (outputs and every parameter gradient, 1e-4 relative,
 * fixture from gen_seq2seq_fixtures.py) for cross-attention (key padding,
 * kdim/vdim), nn.TransformerDecoderLayer, nn.Transformer with every mask,
 * the whole translation model (tied and shared embeddings); the cached
 * one-step decoder against full recomputation; one LSTM decoder step with
 * additive and multiplicative attention; greedy and beam search
 * (tools/translate.c) against the full model's log-probabilities; shape
 * errors. */
#include "harness.h"
#include "translate.h"
#include <string.h>

static mn_params *FX;

static mn_tensor *fx(const char *name)
{
    mn_tensor *t = mn_params_get(FX, name);
    ck_assert_msg(t != NULL, "fixture %s missing", name);
    return t;
}

static mn_node *cst(mn_graph *g, const char *name)
{
    mn_tensor *t = fx(name);
    return mn_constant(g, MN_F32, t->shape, t->data);
}

/* A fixture of whole numbers stored as floats, as i32 (clamped to max). */
static mn_node *tokens(mn_graph *g, const char *name, int32_t max)
{
    mn_tensor *t = fx(name);
    int64_t n = mn_tensor_numel(t);
    int32_t *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)mn_f32(t)[i] < max ? (int32_t)mn_f32(t)[i] : max;
    mn_node *c = mn_constant(g, MN_I32, t->shape, v);
    free(v);
    return c;
}

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

/* Builds loss = sum(y * in.<name>.R), runs forward and backward, and
 * compares y and every gradient; no parameter may have been created (names
 * and shapes are PyTorch's). */
static void check_parity(const char *name, mn_params *P, mn_graph *g, mn_node *y, int nparams)
{
    char n[128];
    ck_assert_msg(y != NULL, "%s: %s", name, mn_graph_errmsg(g));
    ck_assert_int_eq(mn_params_count(P), nparams);
    snprintf(n, sizeof n, "in.%s.R", name);
    const mn_node *outs[1] = { y };
    mn_exec *ex = mn_compile(g, mn_sum_all(g, mn_mul(g, y, cst(g, n))), &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s: %s", name, mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    snprintf(n, sizeof n, "out.%s.y", name);
    expect(n, mn_exec_value(ex, y), fx(n));
    for (int i = 0; i < mn_params_count(P); i++) {
        snprintf(n, sizeof n, "grad.%s", mn_params_name(P, i));
        expect(n, mn_params_grad(P, i), fx(n));
    }
    mn_exec_free(ex);
}

static int fixture_count(const char *prefix)
{
    mn_params *P = weights(prefix);
    int n = mn_params_count(P);
    mn_params_free(P);
    return n;
}

START_TEST(cross_attention_matches_torch)
{
    mn_params *P = weights("cross");
    mn_graph *g = mn_graph_new(P);
    mn_attn_opts o = { .heads = 2, .key = cst(g, "in.mem"), .key_padding = cst(g, "in.src_pad") };
    check_parity("cross", P, g, mn_multihead_attention(g, "cross", cst(g, "in.x"), o), 4);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(cross_attention_with_kdim_vdim_matches_torch)
{
    mn_params *P = weights("kv");
    mn_graph *g = mn_graph_new(P);
    mn_attn_opts o = { .heads = 2, .key = cst(g, "in.kv.key"), .value = cst(g, "in.kv.value"), .kdim = 6, .vdim = 5,
                       .key_padding = cst(g, "in.src_pad") };
    check_parity("kv", P, g, mn_multihead_attention(g, "kv", cst(g, "in.x"), o), 6);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(decoder_layer_matches_torch)
{
    const char *names[2] = { "dec_pre", "dec_post" };
    for (int k = 0; k < 2; k++) {
        mn_params *P = weights(names[k]);
        mn_graph *g = mn_graph_new(P);
        mn_block_opts o = { .d_model = 8, .heads = 2, .ff = 16, .post_ln = k == 1, .relu = k == 1, .causal = true,
                            .key_padding = cst(g, "in.tgt_pad") };
        mn_node *y = mn_transformer_decoder_layer(g, names[k], cst(g, "in.x"), cst(g, "in.mem"), cst(g, "in.src_pad"), o);
        check_parity(names[k], P, g, y, 18);
        mn_graph_free(g);
        mn_params_free(P);
    }
}
END_TEST

START_TEST(transformer_matches_torch)
{
    const char *names[2] = { "tf_pre", "tf_post" };
    for (int k = 0; k < 2; k++) {
        mn_params *P = weights(names[k]);
        mn_graph *g = mn_graph_new(P);
        mn_tf_opts o = { .d_model = 8, .heads = 2, .enc_layers = 2, .dec_layers = 2, .ff = 16, .post_ln = k == 1, .relu = true };
        mn_node *y = mn_transformer(g, names[k], cst(g, "in.src_x"), cst(g, "in.x"), cst(g, "in.src_pad"), cst(g, "in.tgt_pad"), o);
        check_parity(names[k], P, g, y, 2 * 12 + 2 * 18 + 4);
        mn_graph_free(g);
        mn_params_free(P);
    }
}
END_TEST

static mn_s2s_opts s2s_opts(bool tied)
{
    mn_tf_opts tf = { .d_model = 8, .heads = 2, .enc_layers = 2, .dec_layers = 1, .ff = 16, .post_ln = tied, .relu = true };
    return (mn_s2s_opts){ .src_vocab = tied ? 13 : 11, .tgt_vocab = 13, .max_len = 32, .tf = tf, .tie_weights = tied,
                          .share_embeddings = tied };
}

START_TEST(translation_model_matches_torch)
{
    const char *names[2] = { "s2s", "s2s_tied" };
    for (int k = 0; k < 2; k++) {
        mn_s2s_opts o = s2s_opts(k == 1);
        mn_params *P = weights(names[k]);
        int np = mn_params_count(P);
        ck_assert_int_eq(np, fixture_count(names[k]));
        mn_graph *g = mn_graph_new(P);
        mn_node *y = mn_seq2seq(g, names[k], tokens(g, "in.src", (int32_t)o.src_vocab - 1), tokens(g, "in.tgt", 99),
                                cst(g, "in.src_pad"), cst(g, "in.tgt_pad"), o);
        check_parity(names[k], P, g, y, np);
        mn_graph_free(g);
        mn_params_free(P);
    }
}
END_TEST

/* Teacher-forced logits of the full model against the cached decoder fed
 * the same tokens one position at a time. */
START_TEST(cached_step_equals_full_recomputation)
{
    enum { B = 2, S = 6, T = 5, L = 8, LAYERS = 2 };
    mn_s2s_opts o = s2s_opts(false);
    o.tf.dec_layers = LAYERS;
    o.tf.post_ln = _i == 1;
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 5);
    mn_graph *g = mn_graph_new(P);
    mn_node *src = tokens(g, "in.src", 10), *tgt = tokens(g, "in.tgt", 12), *pad = cst(g, "in.src_pad");
    mn_node *full = mn_seq2seq(g, "m", src, tgt, pad, NULL, o);
    mn_node *memory = mn_seq2seq_encode(g, "m", src, pad, o);
    mn_node *mk[LAYERS], *mv[LAYERS];
    ck_assert_ok(mn_seq2seq_memory_kv(g, "m", memory, o, mk, mv));
    const mn_node *outs[1 + 2 * LAYERS] = { full, mk[0], mk[1], mv[0], mv[1] };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 5 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));

    mn_graph *sg = mn_graph_new(P);
    mn_node *sk[LAYERS], *sv[LAYERS], *nk[LAYERS], *nv[LAYERS], *smk[LAYERS], *smv[LAYERS];
    char n[64];
    for (int l = 0; l < LAYERS; l++) {
        snprintf(n, sizeof n, "sk%d", l); sk[l] = mn_input(sg, n, MN_F32, MN_SHAPE(B, 2, L, 4));
        snprintf(n, sizeof n, "sv%d", l); sv[l] = mn_input(sg, n, MN_F32, MN_SHAPE(B, 2, L, 4));
        snprintf(n, sizeof n, "mk%d", l); smk[l] = mn_input(sg, n, MN_F32, MN_SHAPE(B, 2, S, 4));
        snprintf(n, sizeof n, "mv%d", l); smv[l] = mn_input(sg, n, MN_F32, MN_SHAPE(B, 2, S, 4));
    }
    mn_s2s_step st = { .token = mn_input(sg, "tok", MN_I32, MN_SHAPE(B, 1)), .pos = mn_input(sg, "pos", MN_I32, MN_SHAPE(1)),
                       .self_k = sk, .self_v = sv, .mem_k = smk, .mem_v = smv, .mem_pad = cst(sg, "in.src_pad"),
                       .new_k = nk, .new_v = nv };
    mn_node *logits = mn_seq2seq_step(sg, "m", &st, o);
    ck_assert_int_eq(mn_graph_status(sg), MN_OK);
    const mn_node *souts[1 + 2 * LAYERS] = { logits, nk[0], nk[1], nv[0], nv[1] };
    mn_exec *sx = mn_compile(sg, NULL, &(mn_compile_opts){ .outputs = souts, .noutputs = 5 });
    ck_assert_msg(sx != NULL, "%s", mn_graph_errmsg(sg));
    for (int l = 0; l < LAYERS; l++) {
        snprintf(n, sizeof n, "mk%d", l); ck_assert_ok(mn_exec_feed(sx, n, mn_exec_value(ex, mk[l])));
        snprintf(n, sizeof n, "mv%d", l); ck_assert_ok(mn_exec_feed(sx, n, mn_exec_value(ex, mv[l])));
    }
    /* the cache buffers are the step graph's inputs, filled in place */
    float *ck[LAYERS], *cv[LAYERS];
    for (int i = 0; i < mn_exec_input_count(sx); i++)
        for (int l = 0; l < LAYERS; l++) {
            snprintf(n, sizeof n, "sk%d", l); if (!strcmp(mn_exec_input_name(sx, i), n)) ck[l] = mn_f32(mn_exec_input(sx, i));
            snprintf(n, sizeof n, "sv%d", l); if (!strcmp(mn_exec_input_name(sx, i), n)) cv[l] = mn_f32(mn_exec_input(sx, i));
        }
    for (int l = 0; l < LAYERS; l++) {   /* garbage in the masked slots must not matter */
        for (int i = 0; i < B * 2 * L * 4; i++) ck[l][i] = cv[l][i] = 1e3f;
    }
    const float *tg = NULL;
    mn_tensor *tt = fx("in.tgt");
    tg = mn_f32(tt);
    const float *want = mn_f32(mn_exec_value(ex, full));
    for (int t = 0; t < T; t++) {
        int32_t tok[B], pos = t;
        for (int b = 0; b < B; b++) tok[b] = (int32_t)tg[b * T + t] < 12 ? (int32_t)tg[b * T + t] : 12;
        ck_assert_ok(mn_exec_feed_data(sx, "tok", tok, sizeof tok));
        ck_assert_ok(mn_exec_feed_data(sx, "pos", &pos, sizeof pos));
        ck_assert_ok(mn_exec_run(sx));
        const float *got = mn_f32(mn_exec_value(sx, logits));
        for (int b = 0; b < B; b++)
            for (int v = 0; v < 13; v++) {
                double a = got[b * 13 + v], w = want[(b * T + t) * 13 + v];
                ck_assert_msg(fabs(a - w) <= 1e-5 + 1e-4 * fabs(w), "position %d row %d logit %d: step %.7g, full %.7g", t, b, v, a, w);
            }
        for (int l = 0; l < LAYERS; l++)
            for (int bh = 0; bh < B * 2; bh++) {
                memcpy(ck[l] + (bh * L + t) * 4, mn_f32(mn_exec_value(sx, nk[l])) + bh * 4, 4 * sizeof(float));
                memcpy(cv[l] + (bh * L + t) * 4, mn_f32(mn_exec_value(sx, nv[l])) + bh * 4, 4 * sizeof(float));
            }
    }
    mn_exec_free(sx); mn_graph_free(sg);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* One LSTM decoder step with attention against the PyTorch module written
 * in the fixture generator: additive and multiplicative scores, input
 * feeding, padded encoder positions. */
START_TEST(lstm_attention_step_matches_torch)
{
    static const char *const kinds[2] = { "additive", "general" };
    const char *kind = kinds[_i];
    mn_params *P = weights(kind);
    int np = mn_params_count(P);
    mn_graph *g = mn_graph_new(P);
    mn_rnn_attn_opts o = { .hidden = 7, .score = _i ? MN_SCORE_GENERAL : MN_SCORE_ADDITIVE };
    mn_rnn_attn_step r = mn_rnn_attention_step(g, kind, cst(g, "in.step.yt"), cst(g, "in.step.feed"), cst(g, "in.step.h0"),
                                               cst(g, "in.step.c0"), cst(g, "in.step.enc"), NULL, cst(g, "in.src_pad"), o);
    ck_assert_msg(r.att != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_int_eq(mn_params_count(P), np);
    char n[3][64];
    snprintf(n[0], 64, "in.%s.Ra", kind); snprintf(n[1], 64, "in.%s.Rh", kind); snprintf(n[2], 64, "in.%s.Rc", kind);
    mn_node *loss = mn_add(g, mn_sum_all(g, mn_mul(g, r.att, cst(g, n[0]))), mn_sum_all(g, mn_mul(g, r.h, cst(g, n[1]))));
    loss = mn_add(g, loss, mn_sum_all(g, mn_mul(g, r.c, cst(g, n[2]))));
    const mn_node *outs[4] = { r.att, r.h, r.c, r.weights };
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .outputs = outs, .noutputs = 4 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    static const char *const parts[4] = { "att", "h", "c", "a" };
    for (int k = 0; k < 4; k++) {
        char w[64];
        snprintf(w, sizeof w, "out.%s.%s", kind, parts[k]);
        expect(w, mn_exec_value(ex, outs[k]), fx(w));
    }
    for (int i = 0; i < mn_params_count(P); i++) {
        char gname[128];
        snprintf(gname, sizeof gname, "grad.%s", mn_params_name(P, i));
        expect(gname, mn_params_grad(P, i), fx(gname));
    }
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

/* The LSTM encoder-decoder: teacher-forced logits of the unrolled model
 * against the one-step graph fed its own carried state (h, c, feed). */
START_TEST(lstm_carried_state_equals_full_recomputation)
{
    enum { B = 2, S = 6, T = 5, H = 12, V = 13 };
    mn_rnn_s2s_opts o = { .src_vocab = 11, .tgt_vocab = V, .embed = 8, .enc_hidden = 5, .hidden = H,
                          .score = _i ? MN_SCORE_GENERAL : MN_SCORE_ADDITIVE };
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 9);
    mn_graph *g = mn_graph_new(P);
    mn_node *src = tokens(g, "in.src", 10), *tgt = tokens(g, "in.tgt", 12), *pad = cst(g, "in.src_pad");
    mn_node *full = mn_rnn_seq2seq(g, "m", src, tgt, pad, o);
    mn_rnn_memory m = mn_rnn_seq2seq_encode(g, "m", src, o);
    const mn_node *outs[3] = { full, m.enc, m.keys };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 3 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    mn_graph *sg = mn_graph_new(P);
    mn_rnn_memory sm = { mn_input(sg, "enc", MN_F32, MN_SHAPE(B, S, 10)), mn_input(sg, "keys", MN_F32, MN_SHAPE(B, S, H)) };
    mn_node *h = mn_input(sg, "h", MN_F32, MN_SHAPE(B, H)), *c = mn_input(sg, "c", MN_F32, MN_SHAPE(B, H));
    mn_node *feed = mn_input(sg, "feed", MN_F32, MN_SHAPE(B, H));
    mn_rnn_s2s_step st = mn_rnn_seq2seq_step(sg, "m", mn_input(sg, "tok", MN_I32, MN_SHAPE(B)), h, c, feed, sm, cst(sg, "in.src_pad"), o);
    const mn_node *souts[4] = { st.logits, st.h, st.c, st.feed };
    mn_exec *sx = mn_compile(sg, NULL, &(mn_compile_opts){ .outputs = souts, .noutputs = 4 });
    ck_assert_msg(sx != NULL, "%s", mn_graph_errmsg(sg));
    ck_assert_ok(mn_exec_feed(sx, "enc", mn_exec_value(ex, m.enc)));
    ck_assert_ok(mn_exec_feed(sx, "keys", mn_exec_value(ex, m.keys)));
    float zero[B * H] = { 0 };
    ck_assert_ok(mn_exec_feed_data(sx, "h", zero, sizeof zero));
    ck_assert_ok(mn_exec_feed_data(sx, "c", zero, sizeof zero));
    ck_assert_ok(mn_exec_feed_data(sx, "feed", zero, sizeof zero));
    const float *tg = mn_f32(fx("in.tgt")), *want = mn_f32(mn_exec_value(ex, full));
    for (int t = 0; t < T; t++) {
        int32_t tok[B];
        for (int b = 0; b < B; b++) tok[b] = (int32_t)tg[b * T + t] < 12 ? (int32_t)tg[b * T + t] : 12;
        ck_assert_ok(mn_exec_feed_data(sx, "tok", tok, sizeof tok));
        ck_assert_ok(mn_exec_run(sx));
        const float *got = mn_f32(mn_exec_value(sx, st.logits));
        for (int b = 0; b < B; b++)
            for (int v = 0; v < V; v++) {
                double a = got[b * V + v], w = want[(b * T + t) * V + v];
                ck_assert_msg(fabs(a - w) <= 1e-5 + 1e-4 * fabs(w), "position %d row %d logit %d: step %.7g, full %.7g", t, b, v, a, w);
            }
        float next[3][B * H];
        memcpy(next[0], mn_f32(mn_exec_value(sx, st.h)), sizeof next[0]);
        memcpy(next[1], mn_f32(mn_exec_value(sx, st.c)), sizeof next[1]);
        memcpy(next[2], mn_f32(mn_exec_value(sx, st.feed)), sizeof next[2]);
        ck_assert_ok(mn_exec_feed_data(sx, "h", next[0], sizeof next[0]));
        ck_assert_ok(mn_exec_feed_data(sx, "c", next[1], sizeof next[1]));
        ck_assert_ok(mn_exec_feed_data(sx, "feed", next[2], sizeof next[2]));
    }
    mn_exec_free(sx); mn_graph_free(sg);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
}
END_TEST

START_TEST(gnmt_length_penalty)
{
    ck_assert_close(mn_mt_length_penalty(5, 0.6f), pow(10.0 / 6.0, 0.6), 1e-7);
    ck_assert_close(mn_mt_length_penalty(1, 0.6f), 1.0, 1e-12);
    ck_assert_close(mn_mt_length_penalty(37, 0.0f), 1.0, 1e-12);
    ck_assert_close(mn_mt_length_penalty(13, 1.0f), 3.0, 1e-12);
}
END_TEST

/* A small random translation model; </s> gets a bias so some hypotheses end early. */
static mn_node *model_logits(mn_graph *g, const mn_mt_cfg *c, mn_node *src, mn_node *tgt, mn_node *pad)
{
    if (mn_mt_is_lstm(c)) return mn_rnn_seq2seq(g, MN_MT_PREFIX, src, tgt, pad, mn_mt_rnn_opts(c, false));
    return mn_seq2seq(g, MN_MT_PREFIX, src, tgt, pad, NULL, mn_mt_model_opts(c, false));
}

static mn_params *small_model(mn_mt_cfg *c, bool lstm)
{
    mn_mt_defaults(c);
    if (lstm) snprintf(c->arch, sizeof c->arch, "lstm-attn");
    c->vocab = 300; c->d_model = 16; c->heads = 2; c->enc_layers = 1; c->dec_layers = 2; c->ff = 32; c->max_len = 12;
    c->dropout = 0;
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 3);
    mn_graph *g = mn_graph_new(P);
    mn_node *t = mn_input(g, "t", MN_I32, MN_SHAPE(1, 4));
    ck_assert_ptr_nonnull(model_logits(g, c, t, t, NULL));
    mn_graph_free(g);
    mn_tensor *emb = mn_params_get(P, MN_MT_PREFIX ".tgt_emb.weight");
    for (int64_t i = 0; !lstm && i < mn_tensor_numel(emb); i++) mn_f32(emb)[i] *= 0.25f;   /* flatter, less repetitive outputs */
    mn_f32(mn_params_get(P, MN_MT_PREFIX ".generator.bias"))[MN_BPE_EOS] = lstm ? 0.5f : 2.0f;   /* transformer: some end early, some run to max_len */
    return P;
}

/* log p(hyp [+ </s>] | src) by the full (teacher-forced) model. */
static double full_logprob(mn_params *P, const mn_mt_cfg *c, const int32_t *src, int ns, const int32_t *hyp, int n, bool eos,
                           int32_t *argmax)
{
    mn_graph *g = mn_graph_new(P);
    int32_t tin[16];
    tin[0] = MN_BPE_BOS;
    for (int i = 0; i < n; i++) tin[i + 1] = hyp[i];
    /* the source padded to its length bucket, as training batches are */
    int S = mn_mt_bucket(ns, c->max_len);
    int32_t sp[64] = { 0 };
    float pad[64];
    for (int i = 0; i < S; i++) { sp[i] = i < ns ? src[i] : MN_BPE_PAD; pad[i] = i < ns ? 0.0f : 1.0f; }
    mn_node *s = mn_constant(g, MN_I32, MN_SHAPE(1, S), sp), *t = mn_constant(g, MN_I32, MN_SHAPE(1, n + 1), tin);
    mn_node *lp = mn_log_softmax(g, model_logits(g, c, s, t, mn_constant(g, MN_F32, MN_SHAPE(1, S), pad)), -1);
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = (const mn_node *[]){ lp }, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    const float *v = mn_f32(mn_exec_value(ex, lp));
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i * c->vocab + hyp[i]];
    if (eos) sum += v[n * c->vocab + MN_BPE_EOS];
    for (int i = 0; i <= n; i++) {
        int best = MN_BPE_EOS;
        for (int k = MN_BPE_EOS; k < c->vocab; k++) if (v[i * c->vocab + k] > v[i * c->vocab + best]) best = k;
        argmax[i] = best;
    }
    mn_exec_free(ex);
    mn_graph_free(g);
    return sum;
}

/* Greedy picks the full model's argmax at every position; beam search's
 * reported score is the full model's log-probability of what it returns
 * (over the length penalty); no output is longer than --max-len. */
START_TEST(search_agrees_with_the_full_model)
{
    mn_mt_cfg c;
    mn_params *P = small_model(&c, _i == 1);
    mn_mt_decoder *d = mn_mt_decoder_new(P, &c);
    enum { N = 4 };
    int32_t s0[] = { 7, 90, 44, 2 }, s1[] = { 120, 5, 2 }, s2[] = { 33, 33, 210, 17, 299, 8, 2 }, s3[] = { 2 };
    int32_t *src[N] = { s0, s1, s2, s3 };
    int len[N] = { 4, 3, 7, 1 };
    int beams[3] = { 1, 4, 3 };
    float alphas[3] = { 0.0f, 0.0f, 1.0f };
    int ended = 0, forced = 0;
    for (int k = 0; k < 3; k++) {
        mn_mt_search q = { .beam = beams[k], .alpha = alphas[k], .max_len = 8 };
        int32_t *out[N];
        int olen[N];
        double score[N];
        ck_assert_ok(mn_mt_translate_ids(d, &q, src, len, N, out, olen, score));
        for (int i = 0; i < N; i++) {
            int32_t am[16];
            bool eos = olen[i] < q.max_len;
            ck_assert_int_le(olen[i], q.max_len);
            double lp = full_logprob(P, &c, src[i], len[i], out[i], olen[i], eos, am);
            double want = lp / mn_mt_length_penalty(olen[i] + (eos ? 1 : 0), q.alpha);
            ck_assert_msg(fabs(score[i] - want) <= 1e-4 * fabs(want) + 1e-4, "beam %d sentence %d: score %.6f, full model %.6f",
                          q.beam, i, score[i], want);
            for (int t = 0; q.beam == 1 && t < olen[i]; t++) ck_assert_int_eq(out[i][t], am[t]);
            if (q.beam == 1 && eos) ck_assert_int_eq(am[olen[i]], MN_BPE_EOS);
            ended += eos;
            forced += !eos;
            free(out[i]);
        }
    }
    ck_assert_int_gt(ended, 0);      /* both kinds of hypotheses were checked (the LSTM's all end) */
    ck_assert_int_gt(forced + _i, 0);
    mn_mt_decoder_free(d);
    mn_params_free(P);
}
END_TEST

START_TEST(shape_errors_name_the_layer)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(2, 5, 8));
    mn_node *mem = mn_input(g, "mem", MN_F32, MN_SHAPE(2, 6, 7));
    ck_assert_ptr_null(mn_multihead_attention(g, "dec.cross", x, (mn_attn_opts){ .heads = 2, .key = mem }));
    ck_assert_int_eq(mn_graph_status(g), MN_ERR_SHAPE);
    ck_assert_msg(strstr(mn_graph_errmsg(g), "attention \"dec.cross\": key [2,6,7]") != NULL, "%s", mn_graph_errmsg(g));
    mn_graph_free(g);
    g = mn_graph_new(P);
    mn_node *src = mn_input(g, "src", MN_I32, MN_SHAPE(2, 40));
    ck_assert_ptr_null(mn_seq2seq_encode(g, "m", src, NULL, s2s_opts(false)));
    ck_assert_msg(strstr(mn_graph_errmsg(g), "max_len 32") != NULL, "%s", mn_graph_errmsg(g));
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

int main(void)
{
    const char *dir = getenv("MNEMO_FIXTURES");
    char path[512];
    snprintf(path, sizeof path, "%s/seq2seq_ref.safetensors", dir ? dir : "tests/fixtures");
    FX = mn_params_new();
    if (mn_params_load(FX, path)) { fprintf(stderr, "%s: %s\n", path, mn_errmsg()); return EXIT_FAILURE; }
    Suite *s = suite_create("seq2seq");
    TCase *tc = tcase_create("transformer");
    tcase_add_test(tc, cross_attention_matches_torch);
    tcase_add_test(tc, cross_attention_with_kdim_vdim_matches_torch);
    tcase_add_test(tc, decoder_layer_matches_torch);
    tcase_add_test(tc, transformer_matches_torch);
    tcase_add_test(tc, translation_model_matches_torch);
    tcase_add_loop_test(tc, cached_step_equals_full_recomputation, 0, 2);
    tcase_add_test(tc, shape_errors_name_the_layer);
    tcase_add_test(tc, gnmt_length_penalty);
    tcase_add_loop_test(tc, lstm_attention_step_matches_torch, 0, 2);
    tcase_add_loop_test(tc, lstm_carried_state_equals_full_recomputation, 0, 2);
    tcase_add_loop_test(tc, search_agrees_with_the_full_model, 0, 2);   /* transformer, lstm-attn */
    suite_add_tcase(s, tc);
    int rc = mn_test_run(s);
    mn_params_free(FX);
    return rc;
}
