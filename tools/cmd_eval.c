/* tools/cmd_eval.c: `mnemo sample` and `mnemo eval` over a checkpoint
 * written by `mnemo train`. sample: text from the language models (prompt,
 * temperature, top-k, seed), a PNG grid of prior samples and test
 * reconstructions for the VAE. eval: loss and bits per character for the
 * LMs, the ELBO for the VAE, accuracy and a per-class report for the MLP
 * and the tagger. */
#include "cmds.h"
#include "train.h"
#include "env.h"
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef MNEMO_HAVE_PNG
#include <png.h>
#endif

static int bad_option(const char *cmd, char **argv)
{
    fprintf(stderr, "mnemo %s: unknown or incomplete option \"%s\"\n", cmd, argv[optind - 1]);
    return MN_EXIT_USAGE;
}

/* Words after the options: none is expected (a prompt goes in --prompt). */
static bool extra_args(const char *cmd, int argc, char **argv)
{
    if (optind >= argc) return false;
    fprintf(stderr, "mnemo %s: unexpected argument \"%s\"%s (every value follows its flag: see mnemo %s --help)\n", cmd, argv[optind],
            argc - optind > 1 ? " and more" : "", cmd);
    return true;
}

/* A checkpoint as sample and eval open it: its stored config passes the
 * one check train applies to every config. */
static int open_checked(const char *cmd, const char *ckpt, mn_params **P, mn_train_cfg *c)
{
    if (mn_ckpt_open(ckpt, P, c)) { fprintf(stderr, "mnemo %s: %s\n", cmd, mn_errmsg()); return MN_EXIT_RUNTIME; }
    if (!mn_cfg_check_keys(c)) return MN_EXIT_OK;
    fprintf(stderr, "mnemo %s: %s: its stored config is invalid: %s\n", cmd, ckpt, mn_errmsg());
    mn_params_free(*P);
    *P = NULL;
    return MN_EXIT_RUNTIME;
}

/* Every parameter of c's model must come from the checkpoint (strict). */
static int check_params(const char *cmd, const char *ckpt, mn_params *P, const mn_train_cfg *c, int64_t vocab)
{
    if (!mn_model_check_params(P, c, vocab)) return MN_EXIT_OK;
    fprintf(stderr, "mnemo %s: %s: %s\n", cmd, ckpt, mn_errmsg());
    return MN_EXIT_RUNTIME;
}

/* ---- VAE images ---- */

/* A gray image being drawn: W x H bytes, row major. */
typedef struct { int W, H; unsigned char *px; } canvas;

/* 5 x 7 glyphs (bit 4 = leftmost column) of the letters the labels use. */
static const struct { char c; unsigned char rows[7]; } glyphs[] = {
    { 'A', { 14, 17, 17, 31, 17, 17, 17 } }, { 'C', { 14, 17, 16, 16, 16, 17, 14 } }, { 'E', { 31, 16, 16, 30, 16, 16, 31 } },
    { 'F', { 31, 16, 16, 30, 16, 16, 16 } }, { 'G', { 14, 17, 16, 23, 17, 17, 15 } }, { 'H', { 17, 17, 17, 31, 17, 17, 17 } },
    { 'I', { 14, 4, 4, 4, 4, 4, 14 } },      { 'L', { 16, 16, 16, 16, 16, 16, 31 } }, { 'M', { 17, 27, 21, 21, 17, 17, 17 } },
    { 'N', { 17, 25, 21, 19, 17, 17, 17 } }, { 'O', { 14, 17, 17, 17, 17, 17, 14 } }, { 'P', { 30, 17, 17, 30, 16, 16, 16 } },
    { 'R', { 30, 17, 17, 30, 20, 18, 17 } }, { 'S', { 15, 16, 16, 14, 1, 1, 30 } },   { 'T', { 31, 4, 4, 4, 4, 4, 4 } },
    { 'U', { 17, 17, 17, 17, 17, 17, 14 } }, { '/', { 1, 1, 2, 4, 8, 16, 16 } },     { ',', { 0, 0, 0, 0, 12, 4, 8 } },
    { ':', { 0, 12, 12, 0, 12, 12, 0 } },
};

/* Text in white at (x, y), each glyph pixel a scale x scale square; unknown characters are blanks. */
static void draw_text(canvas *cv, int x, int y, int scale, const char *text)
{
    for (; *text; text++, x += 6 * scale) {
        const unsigned char *rows = NULL;
        for (size_t g = 0; g < sizeof glyphs / sizeof *glyphs; g++) if (glyphs[g].c == *text) rows = glyphs[g].rows;
        for (int r = 0; rows && r < 7; r++)
            for (int col = 0; col < 5; col++) {
                if (!(rows[r] & (16 >> col))) continue;
                for (int dy = 0; dy < scale; dy++)
                    for (int dx = 0; dx < scale; dx++) {
                        int px = x + col * scale + dx, py = y + r * scale + dy;
                        if (px < cv->W && py < cv->H) cv->px[py * cv->W + px] = 255;
                    }
            }
    }
}

/* Image i of pix (28 x 28 in [0, 1]) at (x, y), each pixel scale x scale. */
static void draw_image(canvas *cv, const float *img, int x, int y, int scale)
{
    for (int r = 0; r < 28 * scale; r++)
        for (int c = 0; c < 28 * scale; c++) {
            float v = img[(r / scale) * 28 + c / scale];
            cv->px[(y + r) * cv->W + x + c] = (unsigned char)lrintf(255.0f * (v < 0 ? 0 : v > 1 ? 1 : v));
        }
}

static int write_png(const char *path, const canvas *cv)
{
#ifdef MNEMO_HAVE_PNG
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "mnemo sample: cannot write %s\n", path); return MN_EXIT_RUNTIME; }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info); fclose(f);
        fprintf(stderr, "mnemo sample: libpng failed writing %s\n", path);
        return MN_EXIT_RUNTIME;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)cv->W, (png_uint_32)cv->H, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < cv->H; y++) png_write_row(png, cv->px + (size_t)y * cv->W);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return MN_EXIT_OK;
#else
    (void)cv;
    fprintf(stderr, "mnemo sample: built without libpng; cannot write %s\n", path);
    return MN_EXIT_RUNTIME;
#endif
}

enum { GRID_SCALE = 3, GRID_CELL = 28 * GRID_SCALE + 4, GRID_LABEL = 30 };

/* The 8 x 8 grid at 3x (84 px images, 4 px apart) under two labelled
 * bands: 32 prior samples, then 16 pairs of test image and reconstruction. */
static int write_grid(const char *path, const float *pix)
{
    canvas cv = { .W = 8 * GRID_CELL, .H = 2 * GRID_LABEL + 8 * GRID_CELL };
    cv.px = calloc((size_t)cv.W * (size_t)cv.H, 1);
    if (!cv.px) { fprintf(stderr, "mnemo sample: out of memory\n"); return MN_EXIT_RUNTIME; }
    memset(cv.px, 64, (size_t)cv.W * (size_t)cv.H);
    draw_text(&cv, 8, 8, 2, "SAMPLES FROM THE PRIOR");
    draw_text(&cv, 8, GRID_LABEL + 4 * GRID_CELL + 8, 2, "PAIRS: TEST IMAGE, RECONSTRUCTION");
    for (int i = 0; i < 64; i++) {
        int row = i / 8, top = (row < 4 ? GRID_LABEL : 2 * GRID_LABEL) + row * GRID_CELL + 2;
        draw_image(&cv, pix + (size_t)i * 784, (i % 8) * GRID_CELL + 2, top, GRID_SCALE);
    }
    int rc = write_png(path, &cv);
    free(cv.px);
    return rc;
}

/* 8 x 8 grid: rows 0-3 prior samples, rows 4-7 pairs of test image / reconstruction */
static int sample_vae(mn_params *P, const mn_train_cfg *c, uint64_t seed, const char *out)
{
    enum { N = 32 };
    mn_vae_opts vo = { .input = 784, .hidden = c->hidden, .latent = c->latent };
    mn_fmnist te;
    if (mn_fmnist_load(c->data[0] ? c->data : MN_FMNIST_DIR, "t10k", 16, &te)) { fprintf(stderr, "mnemo sample: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    mn_graph *g = mn_graph_new(P);
    mn_graph_set_seed(g, seed);
    mn_node *prior = mn_sigmoid(g, mn_vae_decode(g, "vae", mn_randn(g, MN_SHAPE(N, c->latent), 0, 1), vo));
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(16, 784));
    mn_vae_out v = mn_vae(g, "vae", x, mn_fill(g, MN_SHAPE(16, c->latent), 0, MN_F32), vo);   /* reconstruct from the mean */
    mn_node *rec = mn_sigmoid(g, v.logits);
    const mn_node *outs[2] = { prior, rec };
    mn_exec *ex = mn_compile(g, NULL, mn_tools_compile_opts(&(mn_compile_opts){ .threads = c->threads, .outputs = outs, .noutputs = 2 }));
    int rc = MN_EXIT_RUNTIME;
    float *pix = malloc(64 * 784 * sizeof *pix);
    if (ex && pix && !mn_exec_feed(ex, "x", te.images) && !mn_exec_run(ex)) {
        memcpy(pix, mn_f32(mn_exec_value(ex, prior)), N * 784 * sizeof *pix);
        for (int i = 0; i < 16; i++) {
            memcpy(pix + (N + 2 * i) * 784, mn_f32(te.images) + i * 784, 784 * sizeof *pix);
            memcpy(pix + (N + 2 * i + 1) * 784, mn_f32(mn_exec_value(ex, rec)) + i * 784, 784 * sizeof *pix);
        }
        rc = write_grid(out, pix);
        if (!rc) printf("wrote %s: 32 samples from the prior (top half), 16 test images each beside its reconstruction (bottom half)\n", out);
    } else fprintf(stderr, "mnemo sample: %s\n", ex ? mn_errmsg() : mn_graph_errmsg(g));
    free(pix);
    mn_exec_free(ex); mn_graph_free(g); mn_fmnist_free(&te);
    return rc;
}

int cmd_sample(int argc, char **argv)
{
    static const struct option lo[] = { { "ckpt", 1, 0, 'c' }, { "prompt", 1, 0, 'p' }, { "temperature", 1, 0, 'T' },
                                        { "top-k", 1, 0, 'k' }, { "seed", 1, 0, 's' }, { "out", 1, 0, 'o' }, { "threads", 1, 0, 't' },
                                        { "help", 0, 0, 'h' },
                                        { 0, 0, 0, 0 } };
    const char *ckpt = NULL, *prompt = "", *out = "vae_samples.png";
    long n = 400;
    int64_t topk = 0, threads = 0;
    double temp = 0.8;
    uint64_t seed = 1;
    int o;
    char *e;
    opterr = 0; optind = 1;
    while ((o = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
        switch (o) {
        case 'c': ckpt = optarg; break;
        case 'p': prompt = optarg; break;
        case 'o': out = optarg; break;
        case 'n': n = strtol(optarg, &e, 10); if (*e || n < 1 || n > 1000000) { fprintf(stderr, "mnemo sample: -n: bad value \"%s\"\n", optarg); return MN_EXIT_USAGE; } break;
        case 'k': if (!mn_cfg_parse_int("sample", "top-k", optarg, 0, 256, &topk)) return MN_EXIT_USAGE; break;
        case 'T': temp = strtod(optarg, &e); if (*e || !(temp > 0)) { fprintf(stderr, "mnemo sample: --temperature: bad value \"%s\"\n", optarg); return MN_EXIT_USAGE; } break;
        case 's': if (!mn_cfg_parse_u64("sample", "seed", optarg, &seed)) return MN_EXIT_USAGE; break;
        case 't': if (!mn_cfg_parse_int("sample", "threads", optarg, 0, INT_MAX, &threads)) return MN_EXIT_USAGE; break;
        case 'h': printf("usage: mnemo sample --ckpt CKPT [--prompt TEXT] [-n N] [--temperature T] [--top-k K] [--seed N] [--out FILE.png] [--threads N]\n"
                         "  language models: prints the prompt and N generated characters;\n"
                         "  vae: writes a PNG grid of samples from the prior and test reconstructions.\n");
                  return MN_EXIT_OK;
        default: return bad_option("sample", argv);
        }
    }
    if (extra_args("sample", argc, argv)) return MN_EXIT_USAGE;
    if (!ckpt) { fprintf(stderr, "mnemo sample: --ckpt CKPT is required\n"); return MN_EXIT_USAGE; }
    mn_params *P;
    mn_train_cfg c;
    int rc = open_checked("sample", ckpt, &P, &c);
    if (rc) return rc;
    c.threads = (int)threads;                                   /* this machine's, not the training run's */
    if (!strcmp(c.model, "vae")) {
        rc = check_params("sample", ckpt, P, &c, 0);
        if (!rc) rc = sample_vae(P, &c, seed, out);
    } else if (!mn_cfg_is_lm(&c) || c.onnx[0]) {
        fprintf(stderr, "mnemo sample: a %s checkpoint cannot generate; use mnemo eval\n", c.onnx[0] ? "--onnx" : c.model);
        rc = MN_EXIT_USAGE;
    }
    else {
        mn_text v;
        char *buf = malloc(strlen(prompt) + (size_t)n + 1);
        if (!buf || mn_vocab_from_json(mn_params_get_meta(P, "mnemo.vocab"), &v)) {
            fprintf(stderr, "mnemo sample: %s: %s\n", ckpt, buf ? mn_errmsg() : "out of memory");
            rc = MN_EXIT_RUNTIME;
        } else if (!(rc = check_params("sample", ckpt, P, &c, v.vocab)) &&
                   mn_lm_generate(P, &c, &v, prompt, (int)n, (float)temp, (int)topk, seed, buf)) {
            if (strlen(buf) > strlen(prompt)) printf("%s\n", buf);
            fprintf(stderr, "mnemo sample: %s\n", mn_errmsg());
            rc = MN_EXIT_RUNTIME;
        } else if (!rc) printf("%s\n", buf);
        free(buf);
    }
    mn_params_free(P);
    return rc;
}

/* ---- eval ---- */

static void report(const int64_t *conf, int K, const char *const *names)
{
    int64_t total = 0, correct = 0;
    for (int i = 0; i < K * K; i++) total += conf[i];
    for (int i = 0; i < K; i++) correct += conf[i * K + i];
    printf("accuracy %.4f (%lld of %lld)\n\n%-10s %9s %9s %9s %9s\n", total ? (double)correct / (double)total : 0, (long long)correct,
           (long long)total, "class", "precision", "recall", "f1", "support");
    double mp = 0, mr = 0, mf = 0, wp = 0, wr = 0, wf = 0;
    int present = 0;
    for (int k = 0; k < K; k++) {
        int64_t tp = conf[k * K + k], pred = 0, sup = 0;
        for (int j = 0; j < K; j++) { pred += conf[j * K + k]; sup += conf[k * K + j]; }
        double p = pred ? (double)tp / (double)pred : 0, r = sup ? (double)tp / (double)sup : 0, f = p + r > 0 ? 2 * p * r / (p + r) : 0;
        printf("%-10s %9.4f %9.4f %9.4f %9lld\n", names[k], p, r, f, (long long)sup);
        mp += p; mr += r; mf += f; present++;
        wp += p * (double)sup; wr += r * (double)sup; wf += f * (double)sup;
    }
    double acc = total ? (double)correct / (double)total : 0;
    printf("\n%-10s %9.4f %9.4f %9.4f %9lld\n", "micro avg", acc, acc, acc, (long long)total);
    printf("%-10s %9.4f %9.4f %9.4f %9lld\n", "macro avg", mp / present, mr / present, mf / present, (long long)total);
    printf("%-10s %9.4f %9.4f %9.4f %9lld\n", "weighted", total ? wp / (double)total : 0, total ? wr / (double)total : 0,
           total ? wf / (double)total : 0, (long long)total);
}

static const char *const fashion[] = { "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot" };

/* "all 10000 test images: 312 batches of 32 and one of 16" */
static void evaluated(const mn_data *d, const mn_train_cfg *c, const mn_eval_result *r)
{
    const char *unit = d->kind == MN_DATA_IMAGES ? "test images" : d->kind == MN_DATA_TAGS ? "held-out sentences" : "windows";
    printf("evaluated all %lld %s", (long long)r->items, unit);
    if (d->kind == MN_DATA_TEXT) printf(" of %d characters", c->seq);
    if (r->full) printf(": %lld batch%s of %d", (long long)r->full, r->full == 1 ? "" : "es", c->batch);
    if (r->rest) printf("%s of %lld", r->full ? " and one" : ": one batch", (long long)r->rest);
    if (d->kind == MN_DATA_TEXT) {
        int64_t chars = d->text.n - d->split, left = chars - 1 - r->items * c->seq;
        if (left > 0) printf(" (the last %lld of %lld characters do not fill a window)", (long long)left, (long long)chars);
    }
    printf("\n");
}

/* Every item of the evaluated split, then the report of the model kind. */
static int evaluate(const char *ckpt, mn_params *P, mn_model_ctx *mc, const mn_data *d)
{
    const mn_train_cfg *c = &mc->c;
    int64_t items = mn_data_items(d, c, true);
    mn_rebatch *r = mn_model_rebatch(P, mc, false);
    bool ok = r && mn_rebatch_get(r, items < c->batch ? items : c->batch, NULL);   /* sets mc->classes */
    int64_t K = mc->classes;
    int64_t *conf = ok ? calloc((size_t)(K * K + 1), sizeof *conf) : NULL;
    mn_eval_result res;
    if (!conf || mn_eval_items(r, mc, d, items, K ? conf : NULL, true, &res)) {
        fprintf(stderr, "mnemo eval: %s\n", ok && !conf ? "out of memory" : mn_errmsg());
        free(conf);
        mn_rebatch_free(r);
        return MN_EXIT_RUNTIME;
    }
    double loss = res.loss;
    printf("%s checkpoint %s on %s\n", c->model, ckpt, d->source);
    evaluated(d, c, &res);
    if (d->kind == MN_DATA_TEXT) printf("loss %.4f nats per character, %.4f bits per character, perplexity %.3f\n", loss, loss / log(2.0), exp(loss));
    else if (!K) printf("loss (negative ELBO) %.2f per test image\n", loss);
    else { printf("loss %.4f\n", loss); report(conf, (int)K, d->kind == MN_DATA_TAGS ? d->tagnames : fashion); }
    free(conf);
    mn_rebatch_free(r);
    return MN_EXIT_OK;
}

int cmd_eval(int argc, char **argv)
{
    if (mn_mt_is_checkpoint(argc, argv)) return cmd_eval_translate(argc, argv);   /* tools/cmd_translate.c */
    static const struct option lo[] = { { "ckpt", 1, 0, 'c' }, { "data", 1, 0, 'd' }, { "threads", 1, 0, 't' }, { "help", 0, 0, 'h' },
                                        { 0, 0, 0, 0 } };
    const char *ckpt = NULL, *data = NULL;
    int64_t threads = 0;
    int o;
    opterr = 0; optind = 1;
    while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (o == 'c') ckpt = optarg;
        else if (o == 'd') data = optarg;
        else if (o == 't') { if (!mn_cfg_parse_int("eval", "threads", optarg, 0, INT_MAX, &threads)) return MN_EXIT_USAGE; }
        else if (o == 'h') {
            printf("usage: mnemo eval --ckpt CKPT [--data PATH] [--threads N]\n  language models: loss and bits per character on the validation split\n"
                   "  (or all of --data); vae: loss (negative ELBO) per test image; mlp: accuracy and a per-class\n"
                   "  report on the test set; tagger: token accuracy and a per-tag report on held-out sentences.\n"
                   "  Every item is evaluated (the last batch holds the rest) and the report says how many.\n");
            return MN_EXIT_OK;
        } else return bad_option("eval", argv);
    }
    if (extra_args("eval", argc, argv)) return MN_EXIT_USAGE;
    if (!ckpt) { fprintf(stderr, "mnemo eval: --ckpt CKPT is required\n"); return MN_EXIT_USAGE; }
    if (mn_ner_is_checkpoint(ckpt)) return mn_cmd_eval_ner(ckpt, data, (int)threads);   /* cmd_ner.c */
    mn_params *P;
    mn_train_cfg c;
    if (open_checked("eval", ckpt, &P, &c)) return MN_EXIT_RUNTIME;
    if (data) snprintf(c.data, sizeof c.data, "%s", data);
    c.threads = (int)threads;                                   /* this machine's, not the training run's */
    mn_data d;
    const char *vocab = strcmp(c.model, "vae") && strcmp(c.model, "mlp") ? mn_params_get_meta(P, "mnemo.vocab") : NULL;
    if (mn_data_load_eval(&d, &c, vocab, data != NULL)) { fprintf(stderr, "mnemo eval: %s\n", mn_errmsg()); mn_params_free(P); return MN_EXIT_RUNTIME; }
    if (d.unknown && d.kind == MN_DATA_TEXT)
        fprintf(stderr, "mnemo eval: %lld characters outside the checkpoint's vocabulary, read as byte %d (its unknown symbol)\n",
                (long long)d.unknown, d.text.chars[mn_text_unknown_id(&d.text)]);
    if (d.unknown && d.kind == MN_DATA_TAGS)
        fprintf(stderr, "mnemo eval: %lld words outside the checkpoint's vocabulary, read as <unk>\n", (long long)d.unknown);
    if (d.kind == MN_DATA_IMAGES) { mn_fmnist_free(&d.train); d.train = d.test; memset(&d.test, 0, sizeof d.test); d.ntrain = 0; d.nval = d.train.n; }
    mn_model_ctx mc = { .c = c, .vocab = d.kind == MN_DATA_TEXT ? d.text.vocab : d.nwords };
    int rc = check_params("eval", ckpt, P, &c, mc.vocab);
    if (!rc) rc = evaluate(ckpt, P, &mc, &d);
    mn_data_free(&d);
    mn_params_free(P);
    return rc;
}
