/* tests/test_crf.c: the linear-chain CRF against a PyTorch CRF (the
 * fixture of tests/fixtures/gen_crf_fixtures.py: per-sentence losses,
 * their gradients and Viterbi paths), Viterbi against brute force over
 * every path, padding never read, and bad lengths or tags reported; the
 * whole BiLSTM-CRF tagger against PyTorch (gen_tagger_fixtures.py:
 * emissions, loss and every parameter's gradient), the IOB2 and IOBES
 * constraints, and padding invariance with one and two LSTM layers.
 * (Forward values and gradients against brute force and finite differences
 * are in the ops suite, driven by the registry.) */
#include "harness.h"
#include "tools/ner_train.h"
#include <string.h>

static mn_params *FX, *TX;

static const float *fx(const char *name, int64_t *n)
{
    mn_tensor *t = mn_params_get(FX, name);
    ck_assert_msg(t != NULL, "fixture tensor %s missing", name);
    if (n) *n = mn_tensor_numel(t);
    return mn_f32(t);
}

typedef struct { int64_t T, B, K; int32_t tags[64], len[8]; } fx_dims;

static fx_dims dims(void)
{
    fx_dims d;
    mn_shape s = mn_params_get(FX, "emissions")->shape;
    d.T = s.d[0]; d.B = s.d[1]; d.K = s.d[2];
    const float *t = fx("tags", NULL), *l = fx("lengths", NULL);
    for (int64_t i = 0; i < d.T * d.B; i++) d.tags[i] = (int32_t)t[i];
    for (int64_t b = 0; b < d.B; b++) d.len[b] = (int32_t)l[b];
    return d;
}

/* The loss summed over sentences, and its gradients, equal PyTorch's (float64 there). */
START_TEST(nll_and_gradients_match_pytorch)
{
    fx_dims d = dims();
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *e = mn_param(g, "e", MN_SHAPE(d.T, d.B, d.K), (mn_init){ 0 });
    mn_node *a = mn_param(g, "a", MN_SHAPE(d.K + 2, d.K), (mn_init){ 0 });
    mn_node *y = mn_constant(g, MN_I32, MN_SHAPE(d.T, d.B), d.tags), *l = mn_constant(g, MN_I32, MN_SHAPE(d.B), d.len);
    int64_t ne = 0, na = 0, nb = 0;
    const float *e0 = fx("emissions", &ne), *a0 = fx("transitions", &na);
    memcpy(mn_f32(mn_params_get(P, "e")), e0, (size_t)ne * sizeof(float));
    memcpy(mn_f32(mn_params_get(P, "a")), a0, (size_t)na * sizeof(float));
    mn_node *per = mn_crf_nll(g, e, a, y, l, MN_REDUCE_NONE);
    mn_node *loss = mn_sum_all(g, per);
    const mn_node *outs[1] = { per };
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    const float *want = fx("nll", &nb), *de = fx("d_emissions", NULL), *da = fx("d_transitions", NULL);
    const float *got = mn_f32(mn_exec_value(ex, per));
    for (int64_t b = 0; b < nb; b++) ck_assert_close(got[b], want[b], 1e-4 * (1 + fabs(want[b])));
    const float *ge = mn_f32(mn_params_get_grad(P, "e")), *ga = mn_f32(mn_params_get_grad(P, "a"));
    for (int64_t i = 0; i < ne; i++) ck_assert_close(ge[i], de[i], 1e-5);
    for (int64_t i = 0; i < na; i++) ck_assert_close(ga[i], da[i], 1e-5);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

START_TEST(viterbi_matches_pytorch)
{
    fx_dims d = dims();
    int32_t out[64];
    const float *want = fx("viterbi", NULL);
    ck_assert_ok(mn_crf_viterbi(fx("emissions", NULL), d.T, d.B, d.K, fx("transitions", NULL), d.len, out));
    for (int64_t i = 0; i < d.T * d.B; i++) ck_assert_int_eq(out[i], (int32_t)want[i]);
}
END_TEST

static double path_score(const float *E, const float *A, const int32_t *p, int64_t B, int64_t K, int64_t b, int64_t L)
{
    double s = A[K * K + p[0]] + (double)A[(K + 1) * K + p[L - 1]];
    for (int64_t t = 0; t < L; t++) s += E[(t * B + b) * K + p[t]] + (t ? A[p[t - 1] * K + p[t]] : 0.0);
    return s;
}

/* No path of any sentence scores above the decoded one (5^5 paths each). */
START_TEST(viterbi_beats_every_path)
{
    enum { T = 5, B = 4, K = 5 };
    float E[T * B * K], A[(K + 2) * K];
    mn_rng_fill_uniform(E, T * B * K, 3, 1, -2.0f, 2.0f);
    mn_rng_fill_uniform(A, (K + 2) * K, 3, 2, -2.0f, 2.0f);
    int32_t len[B] = { 5, 2, 0, 4 }, out[T * B];
    ck_assert_ok(mn_crf_viterbi(E, T, B, K, A, len, out));
    for (int64_t b = 0; b < B; b++) {
        int32_t mine[T], p[T];
        for (int64_t t = 0; t < T; t++) mine[t] = out[t * B + b];
        for (int64_t t = len[b]; t < T; t++) ck_assert_int_eq(mine[t], -1);
        if (!len[b]) continue;
        double best = path_score(E, A, mine, B, K, b, len[b]);
        int64_t npath = 1;
        for (int t = 0; t < len[b]; t++) npath *= K;
        for (int64_t q = 0; q < npath; q++) {
            for (int64_t t = 0, r = q; t < len[b]; t++, r /= K) p[t] = (int32_t)(r % K);
            ck_assert_msg(path_score(E, A, p, B, K, b, len[b]) <= best + 1e-9, "sentence %lld: path %lld beats Viterbi's", (long long)b,
                          (long long)q);
        }
    }
}
END_TEST

/* Padding emissions and tags past a length change nothing (NaN there would show). */
START_TEST(padding_is_never_read)
{
    enum { T = 4, B = 2, K = 3 };
    float E[T * B * K], A[(K + 2) * K];
    mn_rng_fill_uniform(E, T * B * K, 9, 1, -1.0f, 1.0f);
    mn_rng_fill_uniform(A, (K + 2) * K, 9, 2, -1.0f, 1.0f);
    int32_t tags[T * B] = { 0, 1, 2, 2, 1, -100, 0, -100 }, len[B] = { 4, 2 }, out[T * B];
    for (int t = 2; t < T; t++) for (int k = 0; k < K; k++) E[(t * B + 1) * K + k] = NAN;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *loss = mn_crf_nll(g, mn_constant(g, MN_F32, MN_SHAPE(T, B, K), E), mn_constant(g, MN_F32, MN_SHAPE(K + 2, K), A),
                               mn_constant(g, MN_I32, MN_SHAPE(T, B), tags), mn_constant(g, MN_I32, MN_SHAPE(B), len), MN_REDUCE_MEAN);
    const mn_node *outs[1] = { loss };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_ok(mn_exec_run(ex));
    ck_assert(isfinite(mn_f32(mn_exec_value(ex, loss))[0]) && mn_f32(mn_exec_value(ex, loss))[0] > 0);
    ck_assert_ok(mn_crf_viterbi(E, T, B, K, A, len, out));
    ck_assert_int_eq(out[2 * B + 1], -1);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

/* A length past T or a tag outside [0, K) is a runtime error naming it. */
START_TEST(bad_lengths_and_tags_are_reported)
{
    enum { T = 3, B = 2, K = 3 };
    float E[T * B * K] = { 0 }, A[(K + 2) * K] = { 0 };
    int32_t tags[T * B] = { 0 }, len[B] = { 3, 4 }, out[T * B];
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *y = mn_input(g, "y", MN_I32, MN_SHAPE(T, B)), *l = mn_input(g, "l", MN_I32, MN_SHAPE(B));
    mn_node *loss = mn_crf_nll(g, mn_constant(g, MN_F32, MN_SHAPE(T, B, K), E), mn_constant(g, MN_F32, MN_SHAPE(K + 2, K), A), y, l,
                               MN_REDUCE_SUM);
    const mn_node *outs[1] = { loss };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_ok(mn_exec_feed_data(ex, "y", tags, sizeof tags));
    ck_assert_ok(mn_exec_feed_data(ex, "l", len, sizeof len));
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_RUNTIME);
    ck_assert_msg(strstr(mn_errmsg(), "length 4 of sentence 1 is outside [0, 3]"), "%s", mn_errmsg());
    len[1] = 1;
    tags[3] = 3;                                  /* step 1 of sentence 1: padding, not read */
    tags[2] = 5;                                  /* step 1 of sentence 0 */
    ck_assert_ok(mn_exec_feed_data(ex, "y", tags, sizeof tags));
    ck_assert_ok(mn_exec_feed_data(ex, "l", len, sizeof len));
    ck_assert_int_eq(mn_exec_run(ex), MN_ERR_RUNTIME);
    ck_assert_msg(strstr(mn_errmsg(), "tag 5 at step 1 of sentence 0 is outside [0, 3)"), "%s", mn_errmsg());
    len[1] = 4;
    ck_assert_int_eq(mn_crf_viterbi(E, T, B, K, A, len, out), MN_ERR_INVALID);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
    /* shapes are checked when the node is built */
    P = mn_params_new();
    g = mn_graph_new(P);
    ck_assert_ptr_null(mn_crf_nll(g, mn_constant(g, MN_F32, MN_SHAPE(T, B, K), E), mn_constant(g, MN_F32, MN_SHAPE(K, K), A),
                                  mn_constant(g, MN_I32, MN_SHAPE(T, B), tags), mn_constant(g, MN_I32, MN_SHAPE(B), len), MN_REDUCE_SUM));
    ck_assert_msg(strstr(mn_graph_errmsg(g), "[K + 2, K]"), "%s", mn_graph_errmsg(g));
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

/* The BiLSTM-CRF learns a toy task whose tag depends on the word and on the
 * tag before it (word 2 is tag 1 after tag 0, tag 2 after another tag), so
 * the transitions matter; the constraint (0 -> 2 forbidden) is in the decoded table. */
START_TEST(bilstm_crf_learns_a_toy_task)
{
    enum { T = 6, B = 8, K = 3, W = 5 };
    int32_t words[T * B], tags[T * B], chars[T * B * W], len[B];
    float cons[(K + 2) * K] = { 0 };
    cons[0 * K + 2] = -1e4f;                               /* tag 0 -> tag 2 is forbidden */
    for (int b = 0; b < B; b++) {
        len[b] = T - b % 3;
        int prev = 1;
        for (int t = 0; t < T; t++) {
            int w = (int)(mn_rng_uniform(4, (uint64_t)b, (uint64_t)t) * 3) + 2, y = w == 2 ? (prev == 0 ? 1 : 2) : w == 3 ? 0 : 1;
            bool pad = t >= len[b];
            words[t * B + b] = pad ? 0 : w;
            tags[t * B + b] = pad ? -100 : y;
            for (int k = 0; k < W; k++) chars[(t * B + b) * W + k] = pad ? 0 : k == 1 ? w + 3 : 1;
            if (!pad) prev = y;
        }
    }
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 1);
    mn_graph *g = mn_graph_new(P);
    mn_node *wn = mn_constant(g, MN_I32, MN_SHAPE(T, B), words), *cn = mn_constant(g, MN_I32, MN_SHAPE(T * B, W), chars);
    mn_node *yn = mn_constant(g, MN_I32, MN_SHAPE(T, B), tags), *ln = mn_constant(g, MN_I32, MN_SHAPE(B), len);
    mn_tagger_out m = mn_bilstm_crf(g, "ner", wn, cn, yn, ln, (mn_tagger_opts){ .words = 6, .chars = 10, .tags = K, .word_dim = 8,
        .char_dim = 4, .char_filters = 6, .hidden = 8, .training = true, .crf = true, .constraints = cons });
    ck_assert_msg(m.loss != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ptr_nonnull(mn_params_get(P, "ner.crf.transitions"));
    ck_assert_ptr_nonnull(mn_params_get(P, "ner.lstm.weight_hh_l0_reverse"));
    ck_assert_ptr_nonnull(mn_params_get(P, "ner.char_conv.weight"));
    const mn_node *outs[2] = { m.emissions, m.transitions };
    mn_exec *ex = mn_compile(g, m.loss, &(mn_compile_opts){ .outputs = outs, .noutputs = 2 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    mn_adam_opts ao = MN_ADAM_DEFAULTS;
    ao.lr = 0.05f;
    mn_optim *opt = mn_adam(P, ao);
    double first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        ck_assert_ok(mn_exec_run(ex));
        last = mn_exec_loss(ex);
        if (!step) first = last;
        mn_optim_step(opt);
        mn_optim_zero_grad(opt);
    }
    ck_assert_msg(last < 0.05 * first, "loss %g -> %g", first, last);
    ck_assert_ok(mn_exec_run(ex));
    ck_assert(mn_f32(mn_exec_value(ex, m.transitions))[0 * K + 2] < -1000);
    int32_t out[T * B];
    ck_assert_ok(mn_crf_viterbi(mn_f32(mn_exec_value(ex, m.emissions)), T, B, K, mn_f32(mn_exec_value(ex, m.transitions)), len, out));
    for (int i = 0; i < T * B; i++) ck_assert_int_eq(out[i], tags[i] == -100 ? -1 : tags[i]);
    mn_optim_free(opt);
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

/* The IOB2 constraints of `mnemo train --model ner`: I-X only after B-X or
 * I-X (never first), any tag may end, tags of other prefixes never occur. */
START_TEST(iob2_constraints)
{
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    const char *names[] = { "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-PER" };
    int32_t id[6];
    for (int i = 0; i < 6; i++) ck_assert_ok(mn_tagset_add(&ts, names[i], &id[i]));
    enum { K = 6 };
    float c[(K + 2) * K];
    ck_assert_ok(mn_ner_constraints(&ts, MN_SCHEME_IOB2, c));
#define AT(i, j) c[(i) * K + (j)]
    ck_assert(AT(id[1], id[2]) == 0 && AT(id[2], id[2]) == 0 && AT(id[0], id[1]) == 0 && AT(id[4], id[0]) == 0);
    ck_assert(AT(id[0], id[2]) < -1000 && AT(id[3], id[2]) < -1000 && AT(id[4], id[2]) < -1000 && AT(id[1], id[4]) < -1000);
    ck_assert(AT(K, id[2]) < -1000 && AT(K, id[1]) == 0 && AT(K + 1, id[2]) == 0 && AT(K + 1, id[0]) == 0);
    for (int i = 0; i < K + 2; i++) ck_assert(AT(i, id[5]) < -1000);
#undef AT
    mn_tagset_free(&ts);
}
END_TEST

/* IOBES: after B-X or I-X only I-X or E-X; after O, E-, S- or at the
 * start only O, B- or S-; a sentence ends on O, E- or S-; other schemes refused. */
START_TEST(iobes_constraints)
{
    mn_tagset ts;
    ck_assert_ok(mn_tagset_init(&ts));
    const char *names[] = { "O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "E-LOC", "S-LOC" };
    enum { K = 8, O = 0, BP, IP, EP, SP, BL, EL, SL };
    int32_t id[K];
    for (int i = 0; i < K; i++) ck_assert_ok(mn_tagset_add(&ts, names[i], &id[i]));
    float c[(K + 2) * K];
    ck_assert_ok(mn_ner_constraints(&ts, MN_SCHEME_IOBES, c));
#define OK(i, j) ck_assert_msg(c[(i) * K + (j)] == 0, "%s -> %s should be allowed", i < K ? names[i] : i == K ? "start" : "end", names[j])
#define NO(i, j) ck_assert_msg(c[(i) * K + (j)] < -1000, "%s -> %s should be forbidden", i < K ? names[i] : i == K ? "start" : "end", names[j])
    OK(BP, IP); OK(BP, EP); OK(IP, IP); OK(IP, EP); OK(EP, O); OK(EP, BL); OK(SP, SL); OK(O, SP); OK(O, BP); OK(K, BP); OK(K, SL); OK(K, O);
    NO(BP, O); NO(BP, BP); NO(BP, SP); NO(BP, EL); NO(IP, O); NO(IP, BL); NO(O, IP); NO(O, EP); NO(EP, IP); NO(SP, EP); NO(K, IP); NO(K, EL);
    OK(K + 1, O); OK(K + 1, EP); OK(K + 1, SL); NO(K + 1, BP); NO(K + 1, IP); NO(K + 1, BL);
#undef OK
#undef NO
    /* the IOB2 table of the same tags forbids E- and S- everywhere */
    ck_assert_ok(mn_ner_constraints(&ts, MN_SCHEME_IOB2, c));
    for (int i = 0; i < K + 2; i++) ck_assert(c[i * K + EP] < -1000 && c[i * K + SL] < -1000);
    ck_assert_int_eq(mn_ner_constraints(&ts, MN_SCHEME_IOE2, c), MN_ERR_INVALID);
    ck_assert_msg(strstr(mn_errmsg(), "IOB2 or IOBES, not IOE2"), "%s", mn_errmsg());
    mn_tagset_free(&ts);
}
END_TEST

/* The whole tagger equals the PyTorch one of gen_tagger_fixtures.py (two
 * layers over a packed batch, the character CNN, the CRF with constraints):
 * the emissions of every real token, the mean loss and the gradient of
 * every parameter. */
START_TEST(tagger_matches_pytorch)
{
    enum { T = 6, B = 4, W = 5, K = 5 };
    int32_t words[T * B], chars[T * B * W], tags[T * B], len[B];
    const float *fw = mn_f32(mn_params_get(TX, "words")), *fc = mn_f32(mn_params_get(TX, "chars"));
    const float *ft = mn_f32(mn_params_get(TX, "tags")), *fl = mn_f32(mn_params_get(TX, "lengths"));
    for (int i = 0; i < T * B; i++) { words[i] = (int32_t)fw[i]; tags[i] = (int32_t)ft[i]; }
    for (int i = 0; i < T * B * W; i++) chars[i] = (int32_t)fc[i];
    for (int b = 0; b < B; b++) len[b] = (int32_t)fl[b];
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_tagger_out m = mn_bilstm_crf(g, "ner", mn_constant(g, MN_I32, MN_SHAPE(T, B), words), mn_constant(g, MN_I32, MN_SHAPE(T * B, W), chars),
                                    mn_constant(g, MN_I32, MN_SHAPE(T, B), tags), mn_constant(g, MN_I32, MN_SHAPE(B), len),
                                    (mn_tagger_opts){ .words = 9, .chars = 12, .tags = K, .word_dim = 5, .char_dim = 3, .char_filters = 4,
                                                      .hidden = 4, .layers = 2, .dropout = 0.5f, .crf = true,
                                                      .constraints = mn_f32(mn_params_get(TX, "constraints")) });
    ck_assert_msg(m.loss != NULL, "%s", mn_graph_errmsg(g));
    int n = 0;
    for (int i = 0; i < mn_params_count(P); i++) {
        mn_tensor *want = mn_params_get(TX, mn_params_name(P, i)), *v = mn_params_value(P, i);
        ck_assert_msg(want && mn_shape_eq(want->shape, v->shape), "parameter %s: not in the fixture or of another shape", mn_params_name(P, i));
        memcpy(mn_f32(v), mn_f32(want), mn_tensor_bytes(v));
        n++;
    }
    ck_assert_int_eq(n, 7 + 16);                  /* 7 tensors of the embeddings, CNN, output and CRF; 16 of the 2-layer BiLSTM */
    const mn_node *outs[1] = { m.emissions };
    mn_exec *ex = mn_compile(g, m.loss, &(mn_compile_opts){ .outputs = outs, .noutputs = 1 });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    const float *e = mn_f32(mn_exec_value(ex, m.emissions)), *we = mn_f32(mn_params_get(TX, "emissions"));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < len[b]; t++)
            for (int k = 0; k < K; k++)
                ck_assert_msg(fabsf(e[(t * B + b) * K + k] - we[(t * B + b) * K + k]) < 1e-4f, "emission t %d b %d k %d: %g, PyTorch %g", t, b, k,
                              e[(t * B + b) * K + k], we[(t * B + b) * K + k]);
    ck_assert_close(mn_exec_loss(ex), mn_f32(mn_params_get(TX, "loss"))[0], 1e-4);
    for (int i = 0; i < mn_params_count(P); i++) {
        char name[300];
        snprintf(name, sizeof name, "grad.%s", mn_params_name(P, i));
        mn_tensor *want = mn_params_get(TX, name), *got = mn_params_grad(P, i);
        ck_assert_msg(want && got, "no gradient for %s", mn_params_name(P, i));
        float worst = 0, scale = 0;
        for (int64_t j = 0; j < mn_tensor_numel(got); j++) {
            worst = fmaxf(worst, fabsf(mn_f32(got)[j] - mn_f32(want)[j]));
            scale = fmaxf(scale, fabsf(mn_f32(want)[j]));
        }
        ck_assert_msg(worst <= 1e-4f * (1 + scale), "gradient of %s differs from PyTorch's by %g (largest %g)", mn_params_name(P, i), worst, scale);
    }
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}
END_TEST

/* A sentence's emission scores do not depend on how much padding its batch
 * has: every layer's backward LSTM starts at the sentence's last token. */
static void emissions_for(int T, int layers, float *out)
{
    enum { B = 2, W = 4, K = 3, L0 = 3, L1 = 2 };
    int32_t words[8 * B] = { 0 }, tags[8 * B], chars[8 * B * W] = { 0 }, len[B] = { L0, L1 };
    for (int i = 0; i < T * B; i++) tags[i] = -100;
    for (int t = 0; t < L0; t++) { words[t * B] = 2 + t; tags[t * B] = t % K; }
    for (int t = 0; t < L1; t++) { words[t * B + 1] = 5 - t; tags[t * B + 1] = 1; }
    for (int i = 0; i < T * B; i++) if (words[i]) { chars[i * W] = 1; chars[i * W + 1] = words[i] + 3; chars[i * W + 2] = 2; }
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, 5);
    mn_graph *g = mn_graph_new(P);
    mn_tagger_out m = mn_bilstm_crf(g, "ner", mn_constant(g, MN_I32, MN_SHAPE(T, B), words), mn_constant(g, MN_I32, MN_SHAPE(T * B, W), chars),
                                    mn_constant(g, MN_I32, MN_SHAPE(T, B), tags), mn_constant(g, MN_I32, MN_SHAPE(B), len),
                                    (mn_tagger_opts){ .words = 8, .chars = 12, .tags = K, .word_dim = 4, .char_dim = 3, .char_filters = 2,
                                                      .hidden = 5, .layers = layers, .crf = true });
    const mn_node *outs[1] = { m.emissions };
    mn_exec *ex = mn_compile(g, m.loss, &(mn_compile_opts){ .outputs = outs, .noutputs = 1, .no_backward = true });
    ck_assert_msg(ex != NULL, "%s", mn_graph_errmsg(g));
    ck_assert_ok(mn_exec_run(ex));
    const float *e = mn_f32(mn_exec_value(ex, m.emissions));
    for (int t = 0; t < L0; t++) for (int b = 0; b < B; b++) for (int k = 0; k < K; k++) out[(t * B + b) * K + k] = e[(t * B + b) * K + k];
    mn_exec_free(ex);
    mn_graph_free(g);
    mn_params_free(P);
}

START_TEST(padding_does_not_change_emissions)
{
    float a[18], b[18];
    emissions_for(3, _i + 1, a);
    emissions_for(8, _i + 1, b);
    for (int i = 0; i < 18; i++) {
        if (i / 3 % 2 == 1 && i / 6 >= 2) continue;             /* step 2 of sentence 1 (length 2) is padding */
        ck_assert_msg(fabsf(a[i] - b[i]) < 1e-5f, "%d layers, emission %d: %g with T = 3, %g with T = 8", _i + 1, i, a[i], b[i]);
    }
}
END_TEST

int main(void)
{
    const char *dir = getenv("MNEMO_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/crf_ref.safetensors", dir ? dir : "tests/fixtures");
    FX = mn_params_new();
    if (mn_params_load(FX, path)) { fprintf(stderr, "%s\n", mn_errmsg()); return 1; }
    snprintf(path, sizeof path, "%s/tagger_ref.safetensors", dir ? dir : "tests/fixtures");
    TX = mn_params_new();
    if (mn_params_load(TX, path)) { fprintf(stderr, "%s\n", mn_errmsg()); return 1; }
    Suite *s = suite_create("crf");
    TCase *tc = tcase_create("crf");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, nll_and_gradients_match_pytorch);
    tcase_add_test(tc, viterbi_matches_pytorch);
    tcase_add_test(tc, viterbi_beats_every_path);
    tcase_add_test(tc, padding_is_never_read);
    tcase_add_test(tc, bad_lengths_and_tags_are_reported);
    tcase_add_test(tc, bilstm_crf_learns_a_toy_task);
    tcase_add_test(tc, iob2_constraints);
    tcase_add_loop_test(tc, padding_does_not_change_emissions, 0, 2);
    tcase_add_test(tc, iobes_constraints);
    tcase_add_test(tc, tagger_matches_pytorch);
    suite_add_tcase(s, tc);
    int rc = mn_test_run(s);
    mn_params_free(FX);
    mn_params_free(TX);
    return rc;
}
