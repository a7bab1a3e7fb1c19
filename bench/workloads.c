/* bench/workloads.c: the benchmark workloads as model compositions, with
 * the shapes of WORKLOADS.md and torch_ref.py's FLOP counts (matrix
 * products only). lstm_cells is the same graph as lstm: mnemo's LSTM is
 * always unrolled from primitive ops, like torch_ref.py's lstm_cells. */
#include "workloads.h"
#include "../ops/gemm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const mn_workload_names[] = { "mlp", "rnn", "lstm", "lstm_2layer", "gru", "bilstm_tagger", "vae",
                                           "transformer", "lstm_cells", "ner", NULL };
/* Built on request only (mnemo bench --compile; lstm_long and seq2seq also by
 * name in mnemo bench): the lstm over 512 steps, issue 17's long sequence, and
 * seq2seq: a step of the default translation Transformer (issue 19/22). */
const char *const mn_workload_extra_names[] = { "lstm_t512", "lstm_long", "seq2seq", NULL };

/* FLOPs of an (m x k) @ (k x n) product with a trainable weight: forward,
 * and added to *train: forward + weight gradient (+ input gradient). */
static double lin(double m, double k, double n, bool dx, double *train)
{
    double f = 2 * m * k * n;
    *train += f + f + (dx ? f : 0);
    return f;
}

static mn_status build_mlp(mn_workload *w)
{
    const int64_t B = 128;
    mn_node *x = mn_input(w->g, "x", MN_F32, MN_SHAPE(B, 784)), *y = mn_input(w->g, "y", MN_I32, MN_SHAPE(B));
    int64_t widths[3] = { 512, 512, 10 };
    w->loss = mn_cross_entropy(w->g, mn_mlp(w->g, "mlp", x, 3, widths), y);
    w->classes = 10;
    w->fwd_flops = lin(B, 784, 512, false, &w->train_flops) + lin(B, 512, 512, true, &w->train_flops) +
                   lin(B, 512, 10, true, &w->train_flops);
    return mn_graph_status(w->g);
}

/* Time-major sequence model: embedding V x E -> recurrent net -> linear to
 * K classes per step, cross-entropy over all T x B positions. */
static mn_status seq_model(mn_workload *w, int64_t V, int64_t E, int64_t K, int64_t T, int64_t B, mn_rnn_opts o)
{
    mn_graph *g = w->g;
    mn_node *x = mn_input(g, "x", MN_I32, MN_SHAPE(T, B)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(T, B));
    mn_rnn_out r = mn_rnn(g, "rnn", mn_embedding(g, "emb", x, V, E), o);
    mn_node *logits = mn_linear_steps(g, "head", r.output, K, true);   /* per step: dY step by step under a budget */
    w->loss = mn_cross_entropy(g, mn_reshape(g, logits, MN_SHAPE(T * B, K)), mn_reshape(g, y, MN_SHAPE(T * B)));
    w->classes = K < V ? K : V;                       /* random tokens and targets both below it */
    return mn_graph_status(g);
}

/* char LM: embedding 96x64 -> recurrent 256 (1 or 2 layers) -> linear 256->96, CE every step; seq 64, batch 32 */
static mn_status build_char_lm_sized(mn_workload *w, mn_rnn_mode mode, int layers, int64_t H, int64_t T, int64_t B)
{
    const int64_t V = 96, E = 64;
    double G = mode == MN_RNN_LSTM ? 4 : mode == MN_RNN_GRU ? 3 : 1;
    w->fwd_flops = lin(T * B, E, G * H, true, &w->train_flops) + lin(T * B, H, V, true, &w->train_flops);
    for (int l = 0; l < 2 * layers - 1; l++) w->fwd_flops += lin(T * B, H, G * H, true, &w->train_flops);
    return seq_model(w, V, E, V, T, B, (mn_rnn_opts){ .mode = mode, .hidden = H, .layers = layers });
}

static mn_status build_char_lm(mn_workload *w, mn_rnn_mode mode, int layers) { return build_char_lm_sized(w, mode, layers, 256, 64, 32); }

/* embedding 10000x100 -> bidirectional LSTM 128 -> linear 256->9 per token, CE; seq 40, batch 32 */
static mn_status build_tagger(mn_workload *w)
{
    const int64_t V = 10000, E = 100, H = 128, K = 9, T = 40, B = 32;
    for (int d = 0; d < 2; d++) w->fwd_flops += lin(T * B, E, 4 * H, true, &w->train_flops) + lin(T * B, H, 4 * H, true, &w->train_flops);
    w->fwd_flops += lin(T * B, 2 * H, K, true, &w->train_flops);
    return seq_model(w, V, E, K, T, B, (mn_rnn_opts){ .mode = MN_RNN_LSTM, .hidden = H, .bidirectional = true });
}

/* 784-400-(20, 20)-400-784, BCE-with-logits (sum) + KL, / batch; batch 128 */
static mn_status build_vae(mn_workload *w)
{
    const int64_t B = 128;
    mn_node *x = mn_input(w->g, "x", MN_F32, MN_SHAPE(B, 784));
    w->loss = mn_vae(w->g, "vae", x, NULL, (mn_vae_opts){ .input = 784, .hidden = 400, .latent = 20 }).loss;
    w->uniform_inputs = true;
    w->fwd_flops = lin(B, 784, 400, false, &w->train_flops) + lin(B, 400, 20, true, &w->train_flops) +
                   lin(B, 400, 20, true, &w->train_flops) + lin(B, 20, 400, true, &w->train_flops) +
                   lin(B, 400, 784, true, &w->train_flops);
    return mn_graph_status(w->g);
}

/* decoder-only LM: vocab 96, d 256, 4 heads, 4 layers, FF 1024, pre-LN, GELU, learned positions; seq 128, batch 8 */
static mn_status build_transformer(mn_workload *w)
{
    const int64_t V = 96, D = 256, NH = 4, L = 4, FF = 1024, T = 128, B = 8, n = B * T, dh = D / NH;
    mn_graph *g = w->g;
    mn_node *x = mn_input(g, "x", MN_I32, MN_SHAPE(B, T)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(B, T));
    mn_node *logits = mn_transformer_lm(g, "lm", x, (mn_lm_opts){ .vocab = V, .d_model = D, .heads = NH, .layers = L,
                                                                 .ff = FF, .max_len = T });
    w->loss = mn_cross_entropy(g, mn_reshape(g, logits, MN_SHAPE(n, V)), mn_reshape(g, y, MN_SHAPE(n)));
    w->classes = V;
    double att = 2.0 * (double)(B * NH * T) * (double)dh * (double)T;
    for (int l = 0; l < L; l++) {
        w->fwd_flops += lin(n, D, 3 * D, true, &w->train_flops) + 2 * att + lin(n, D, D, true, &w->train_flops) +
                        lin(n, D, FF, true, &w->train_flops) + lin(n, FF, D, true, &w->train_flops);
        w->train_flops += 2 * 3 * att;
    }
    w->fwd_flops += lin(n, D, V, true, &w->train_flops);
    return mn_graph_status(g);
}

/* `mnemo train --model ner` at its default sizes (tools/cmd_ner.c) on one
 * batch of its longest bucket: words [64, 16] of 10,000 (about the Brown
 * split's vocabulary), characters [1024, 22] of 259, character CNN 25 -> 30,
 * BiLSTM 100 per direction, dropout 0.5, linear to 5 tags, CRF loss;
 * sentence lengths 34-64 (max_len - (3 b mod max_len / 2)). scripts/torch_workloads.py has its twin. */
static mn_status build_ner(mn_workload *w)
{
    const int64_t V = 10000, NC = 259, E = 100, C = 25, F = 30, H = 100, K = 5, T = 64, B = 16, W = 22, N = T * B;
    mn_graph *g = w->g;
    mn_node *words = mn_input(g, "words", MN_I32, MN_SHAPE(T, B)), *tags = mn_input(g, "tags", MN_I32, MN_SHAPE(T, B));
    mn_node *lengths = mn_input(g, "lengths", MN_I32, MN_SHAPE(B)), *chars = mn_input(g, "chars", MN_I32, MN_SHAPE(N, W));
    w->loss = mn_bilstm_crf(g, "ner", words, chars, tags, lengths, (mn_tagger_opts){ .words = V, .chars = NC, .tags = K,
        .word_dim = E, .char_dim = C, .char_filters = F, .hidden = H, .layers = 1, .dropout = 0.5f, .training = true, .crf = true }).loss;
    w->classes = V;
    w->ranges[0].input = "tags", w->ranges[0].classes = K;
    w->ranges[1].input = "chars", w->ranges[1].classes = NC;
    w->max_len = T;
    w->fwd_flops = lin(N * (W - 2), 3 * C, F, true, &w->train_flops);
    for (int d = 0; d < 2; d++) w->fwd_flops += lin(N, E + F, 4 * H, true, &w->train_flops) + lin(N, H, 4 * H, true, &w->train_flops);
    w->fwd_flops += lin(N, 2 * H, K, true, &w->train_flops);
    return mn_graph_status(g);
}

/* a step of `mnemo train --model translate`'s default Transformer (tools/translate.c):
 * joint vocab 4000 tied, d 128, 4 heads, 2 + 2 layers pre-LN, FF 512 ReLU, dropout 0.1,
 * label smoothing 0.1; 32 sentences of 64 tokens (a 2,048-token batch), no padding */
static mn_status build_seq2seq(mn_workload *w)
{
    const int64_t V = 4000, D = 128, NH = 4, L = 2, FF = 512, T = 64, B = 32, n = B * T, dh = D / NH;
    mn_graph *g = w->g;
    mn_node *src = mn_input(g, "src", MN_I32, MN_SHAPE(B, T)), *pad = mn_input(g, "src_pad", MN_F32, MN_SHAPE(B, T));
    mn_node *tin = mn_input(g, "tgt_in", MN_I32, MN_SHAPE(B, T)), *tout = mn_input(g, "tgt_out", MN_I32, MN_SHAPE(n));
    mn_tf_opts tf = { .d_model = D, .heads = NH, .enc_layers = L, .dec_layers = L, .ff = FF, .relu = true, .dropout = 0.1f,
                      .training = true };
    mn_s2s_opts o = { .src_vocab = V, .tgt_vocab = V, .max_len = 80, .tf = tf, .tie_weights = true, .share_embeddings = true };
    mn_node *logits = mn_seq2seq(g, "s2s", src, tin, pad, NULL, o);
    mn_ce_opts ce = { .ignore_index = -100, .reduction = MN_REDUCE_MEAN, .label_smoothing = 0.1f };
    w->loss = mn_cross_entropy_ex(g, mn_reshape(g, logits, MN_SHAPE(n, V)), tout, ce);
    w->classes = V;
    w->zero_f32_inputs = true;
    double att = 2.0 * (double)(B * NH * T) * (double)dh * (double)T;
    for (int l = 0; l < L; l++)   /* encoder layer: self-attention, FF */
        w->fwd_flops += lin(n, D, 3 * D, true, &w->train_flops) + 2 * att + lin(n, D, D, true, &w->train_flops) +
                        lin(n, D, FF, true, &w->train_flops) + lin(n, FF, D, true, &w->train_flops);
    for (int l = 0; l < L; l++)   /* decoder layer: self-attention, cross-attention (q; k, v of the memory), FF */
        w->fwd_flops += lin(n, D, 3 * D, true, &w->train_flops) + 2 * att + lin(n, D, D, true, &w->train_flops) +
                        lin(n, D, D, true, &w->train_flops) + lin(n, D, 2 * D, true, &w->train_flops) + 2 * att +
                        lin(n, D, D, true, &w->train_flops) + lin(n, D, FF, true, &w->train_flops) +
                        lin(n, FF, D, true, &w->train_flops);
    w->train_flops += 2 * 3 * att * 3 * L;
    w->fwd_flops += lin(n, D, V, true, &w->train_flops);
    return mn_graph_status(g);
}

mn_status mn_workload_build(const char *name, mn_workload *w)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->P = mn_params_new();
    w->g = mn_graph_new(w->P);
    mn_params_set_seed(w->P, 1);
    if (!strcmp(name, "mlp")) return build_mlp(w);
    if (!strcmp(name, "rnn")) return build_char_lm(w, MN_RNN_TANH, 1);
    if (!strcmp(name, "lstm") || !strcmp(name, "lstm_cells")) return build_char_lm(w, MN_RNN_LSTM, 1);
    if (!strcmp(name, "lstm_2layer")) return build_char_lm(w, MN_RNN_LSTM, 2);
    /* by name only (not in `all`: its arena is about 1.6 GB): a long sequence for --memory-budget (issue 17) */
    if (!strcmp(name, "lstm_long")) return build_char_lm_sized(w, MN_RNN_LSTM, 1, 512, 512, 64);
    if (!strcmp(name, "gru")) return build_char_lm(w, MN_RNN_GRU, 1);
    /* by name only (in --compile's all, not in bench's all): the lstm over 512 steps, for compile time (issue 22) */
    if (!strcmp(name, "lstm_t512")) return build_char_lm_sized(w, MN_RNN_LSTM, 1, 256, 512, 32);
    if (!strcmp(name, "bilstm_tagger")) return build_tagger(w);
    if (!strcmp(name, "vae")) return build_vae(w);
    if (!strcmp(name, "transformer")) return build_transformer(w);
    if (!strcmp(name, "ner")) return build_ner(w);
    if (!strcmp(name, "seq2seq")) return build_seq2seq(w);
    return mn_set_error(MN_ERR_NOTFOUND, "bench: no workload \"%s\"", name);
}

/* The range of i32 input `name`: its own (ranges) or the workload's classes. */
static int64_t classes_of(const mn_workload *w, const char *name)
{
    for (int r = 0; r < 3; r++)
        if (w->ranges[r].input && name && !strcmp(w->ranges[r].input, name)) return w->ranges[r].classes;
    return w->classes;
}

mn_status mn_workload_feed(const mn_workload *w, mn_exec *ex, uint64_t seed)
{
    for (int k = 0; k < mn_exec_input_count(ex); k++) {
        const mn_tensor *t = mn_exec_input(ex, k);
        const char *name = mn_exec_input_name(ex, k);
        int64_t n = mn_tensor_numel(t), classes = classes_of(w, name);
        bool lengths = w->max_len > 0 && name && !strcmp(name, "lengths");
        for (int64_t i = 0; i < n; i++) {
            float u = mn_rng_uniform(seed, (uint64_t)k, (uint64_t)i);
            if (lengths) mn_i32(t)[i] = (int32_t)(w->max_len - (3 * i) % (w->max_len / 2));
            else if (t->dtype == MN_I32) mn_i32(t)[i] = (int32_t)(u * (float)classes);
            else if (w->zero_f32_inputs) mn_f32(t)[i] = 0.0f;
            else mn_f32(t)[i] = w->uniform_inputs ? u : mn_rng_normal(seed, (uint64_t)k, (uint64_t)i);
        }
    }
    return MN_OK;
}

void mn_workload_free(mn_workload *w)
{
    mn_graph_free(w->g);
    mn_params_free(w->P);
    memset(w, 0, sizeof *w);
}

/* The first "model name" of /proc/cpuinfo and which of the vector
 * extensions that matter to the kernels its "flags" list. */
void mn_bench_cpu(char *model, size_t model_size, char *ext, size_t ext_size)
{
    static const char *const wanted[] = { "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                          "avx512_vnni", "avx512_bf16", "amx_tile", NULL };
    char line[4096];
    snprintf(model, model_size, "unknown");
    ext[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    bool got_model = false, got_flags = false;
    while (f && (!got_model || !got_flags) && fgets(line, sizeof line, f)) {
        char *v = strchr(line, ':');
        if (!v) continue;
        v += v[1] == ' ' ? 2 : 1;
        v[strcspn(v, "\n")] = 0;
        if (!got_model && !strncmp(line, "model name", 10)) { snprintf(model, model_size, "%s", v); got_model = true; }
        if (got_flags || strncmp(line, "flags", 5)) continue;
        got_flags = true;
        for (int i = 0; wanted[i]; i++) {
            size_t n = strlen(wanted[i]);
            for (char *p = strstr(v, wanted[i]); p; p = strstr(p + 1, wanted[i]))
                if ((p == v || p[-1] == ' ') && (p[n] == ' ' || !p[n])) {
                    size_t used = strlen(ext);
                    snprintf(ext + used, ext_size - used, "%s%s", used ? " " : "", wanted[i]);
                    break;
                }
        }
    }
    if (f) fclose(f);
}

char *openblas_get_corename(void);   /* OpenBLAS's (cblas.h declares it too) */

/* The kernel family OpenBLAS picked for this CPU ("SkylakeX", "Haswell", "Zen", ...):
 * ops/matmul.c's column-block rule applies to the AVX-512 ones only. */
const char *mn_bench_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

/* Which library computes the products (ops/matmul.c's rule): "onednn" when
 * mnemo was built with oneDNN and its JIT is wider than OpenBLAS's kernels,
 * else "openblas". */
const char *mn_bench_gemm(void)
{
    return mn__gemm_use_dnnl(mn__gemm_detect()) ? "onednn" : "openblas";
}
