/* tools/cmd_train.c: `mnemo train` and `mnemo graph` for the MLP classifier
 * on Fashion-MNIST (the models and optimizers issues widen both). Training
 * is plain SGD on the store's gradients; evaluation uses a second,
 * forward-only graph over the same parameters. */
#include "cmds.h"
#include "idx.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

mn_node *mn_tools_mlp(mn_graph *g, mn_node *x, int nhidden, const int64_t *hidden, int64_t classes)
{
    int64_t widths[16];
    for (int i = 0; i < nhidden && i < 15; i++) widths[i] = hidden[i];
    widths[nhidden] = classes;
    return mn_mlp(g, "mlp", x, nhidden + 1, widths);
}

typedef struct {
    const char *model, *data, *out;
    int epochs, batch, threads, hidden;
    int64_t train_limit;
    float lr;
    uint64_t seed;
} train_opts;

static void train_usage(FILE *f)
{
    fprintf(f,
        "usage: mnemo train [--model mlp] [--data DIR] [--epochs N] [--batch N] [--lr X]\n"
        "                   [--hidden N] [--train-limit N] [--threads N] [--seed N] [--out CKPT]\n"
        "  Trains a 784-H-10 ReLU MLP (cross-entropy, plain SGD) on Fashion-MNIST from DIR\n"
        "  (default " MN_FMNIST_DIR "), prints the loss and test accuracy per epoch\n"
        "  and saves the parameters as safetensors to CKPT.\n");
}

static int parse_train(int argc, char **argv, train_opts *o)
{
    static const struct option lo[] = {
        { "model", 1, 0, 'm' }, { "data", 1, 0, 'd' }, { "epochs", 1, 0, 'e' }, { "batch", 1, 0, 'b' },
        { "lr", 1, 0, 'l' }, { "hidden", 1, 0, 'H' }, { "train-limit", 1, 0, 'n' }, { "threads", 1, 0, 't' },
        { "seed", 1, 0, 's' }, { "out", 1, 0, 'o' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'd': o->data = optarg; break;
        case 'e': o->epochs = atoi(optarg); break;
        case 'b': o->batch = atoi(optarg); break;
        case 'l': o->lr = strtof(optarg, NULL); break;
        case 'H': o->hidden = atoi(optarg); break;
        case 'n': o->train_limit = atoll(optarg); break;
        case 't': o->threads = atoi(optarg); break;
        case 's': o->seed = strtoull(optarg, NULL, 10); break;
        case 'o': o->out = optarg; break;
        case 'h': train_usage(stdout); return -1;
        default: train_usage(stderr); return MN_EXIT_USAGE;
        }
    }
    if (optind < argc) { fprintf(stderr, "mnemo train: unexpected argument %s\n", argv[optind]); return MN_EXIT_USAGE; }
    if (strcmp(o->model, "mlp") != 0) { fprintf(stderr, "mnemo train: model \"%s\" is not available yet (mlp)\n", o->model); return MN_EXIT_USAGE; }
    if (o->epochs <= 0 || o->batch <= 0 || o->hidden <= 0 || !(o->lr > 0)) {
        fprintf(stderr, "mnemo train: --epochs, --batch, --hidden and --lr must be positive\n");
        return MN_EXIT_USAGE;
    }
    return MN_EXIT_OK;
}

/* Seeded Fisher-Yates with the counter-based RNG. */
static void shuffle(int64_t *idx, int64_t n, uint64_t seed, uint64_t epoch)
{
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mn_rng_uniform(seed, 0x5348554646ull + epoch, (uint64_t)i) * (float)(i + 1));
        if (j > i) j = i;
        int64_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}

static void sgd(mn_params *P, float lr)
{
    for (int i = 0; i < mn_params_count(P); i++) {
        mn_tensor *g = mn_params_grad(P, i);
        if (!g) continue;
        float *w = mn_f32(mn_params_value(P, i)), *d = mn_f32(g);
        int64_t n = mn_tensor_numel(g);
        for (int64_t k = 0; k < n; k++) w[k] -= lr * d[k];
    }
    mn_params_zero_grad(P);
}

static double accuracy(mn_params *P, const mn_fmnist *test, const train_opts *o)
{
    int64_t eb = 1000, hid = o->hidden, correct = 0;
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(eb, 784));
    mn_node *logits = mn_tools_mlp(g, x, 1, &hid, 10);
    const mn_node *outs[1] = { logits };
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .threads = o->threads, .outputs = outs, .noutputs = 1 });
    if (!ex) { fprintf(stderr, "mnemo train: %s\n", mn_graph_errmsg(g)); mn_graph_free(g); return -1; }
    int64_t n = test->n / eb * eb;
    for (int64_t s = 0; s < n; s += eb) {
        mn_exec_feed_data(ex, "x", mn_f32(test->images) + s * 784, (size_t)(eb * 784) * sizeof(float));
        if (mn_exec_run(ex)) break;
        const float *l = mn_f32(mn_exec_value(ex, logits));
        for (int64_t i = 0; i < eb; i++) {
            int best = 0;
            for (int k = 1; k < 10; k++) if (l[i * 10 + k] > l[i * 10 + best]) best = k;
            correct += best == mn_i32(test->labels)[s + i];
        }
    }
    mn_exec_free(ex);
    mn_graph_free(g);
    return n ? (double)correct / (double)n : 0.0;
}

static int train_loop(mn_params *P, const mn_fmnist *tr, const mn_fmnist *te, const train_opts *o)
{
    int64_t B = o->batch, hid = o->hidden, nb = tr->n / B;
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 784)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(B));
    mn_node *loss = mn_cross_entropy(g, mn_tools_mlp(g, x, 1, &hid, 10), y);
    mn_exec *ex = mn_compile(g, loss, &(mn_compile_opts){ .threads = o->threads });
    float *xb = malloc((size_t)B * 784 * sizeof *xb);
    int32_t *yb = malloc((size_t)B * sizeof *yb);
    int64_t *idx = malloc((size_t)tr->n * sizeof *idx);
    int rc = MN_EXIT_OK;
    if (!ex || !xb || !yb || !idx) { fprintf(stderr, "mnemo train: %s\n", mn_graph_errmsg(g)); rc = MN_EXIT_RUNTIME; }
    for (int e = 0; rc == MN_EXIT_OK && e < o->epochs; e++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        shuffle(idx, tr->n, o->seed, (uint64_t)e);
        double sum = 0;
        for (int64_t b = 0; b < nb && rc == MN_EXIT_OK; b++) {
            for (int64_t i = 0; i < B; i++) {
                int64_t r = idx[b * B + i];
                memcpy(xb + i * 784, mn_f32(tr->images) + r * 784, 784 * sizeof *xb);
                yb[i] = mn_i32(tr->labels)[r];
            }
            mn_exec_feed_data(ex, "x", xb, (size_t)B * 784 * sizeof *xb);
            mn_exec_feed_data(ex, "y", yb, (size_t)B * sizeof *yb);
            if (mn_exec_run(ex)) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); rc = MN_EXIT_RUNTIME; }
            sum += mn_exec_loss(ex);
            sgd(P, o->lr);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        double acc = rc ? 0 : accuracy(P, te, o);
        if (acc < 0) rc = MN_EXIT_RUNTIME;
        else printf("epoch %d  loss %.4f  test accuracy %.2f%%  (%.0f samples/s)\n", e + 1, sum / (double)nb,
                    100.0 * acc, (double)(nb * B) / secs);
        fflush(stdout);
    }
    free(xb); free(yb); free(idx);
    mn_exec_free(ex);
    mn_graph_free(g);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    train_opts o = { .model = "mlp", .data = MN_FMNIST_DIR, .epochs = 5, .batch = 64, .lr = 0.1f,
                     .hidden = 256, .train_limit = 0, .seed = 1 };
    int rc = parse_train(argc, argv, &o);
    if (rc) return rc < 0 ? MN_EXIT_OK : rc;
    mn_fmnist tr, te;
    if (mn_fmnist_load(o.data, "train", o.train_limit, &tr) || mn_fmnist_load(o.data, "t10k", 0, &te)) {
        fprintf(stderr, "mnemo train: %s\n", mn_errmsg());
        return MN_EXIT_RUNTIME;
    }
    printf("mlp 784-%d-10 on %lld Fashion-MNIST images, batch %d, SGD lr %g, %d threads\n", o.hidden,
           (long long)tr.n, o.batch, (double)o.lr, mn_get_num_threads());
    mn_params *P = mn_params_new();
    mn_params_set_seed(P, o.seed);
    rc = train_loop(P, &tr, &te, &o);
    if (!rc && o.out) {
        mn_params_set_meta(P, "mnemo.model", "mlp");
        if (mn_params_save(P, o.out)) { fprintf(stderr, "mnemo train: %s\n", mn_errmsg()); rc = MN_EXIT_RUNTIME; }
        else printf("saved %s\n", o.out);
    }
    mn_params_free(P);
    mn_fmnist_free(&tr); mn_fmnist_free(&te);
    return rc;
}

int cmd_graph(int argc, char **argv)
{
    static const struct option lo[] = { { "model", 1, 0, 'm' }, { "batch", 1, 0, 'b' }, { "format", 1, 0, 'f' },
                                        { "output", 1, 0, 'o' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
    const char *model = "mlp", *format = "dot", *out = NULL;
    int64_t B = 64, hid = 256;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'b': B = atoll(optarg); break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 'h': printf("usage: mnemo graph [--model mlp] [--batch N] [--format dot|stats] [-o FILE]\n"
                         "  compiles the model's training graph (forward + backward) and prints it\n"
                         "  as Graphviz DOT, or its step counts, FLOPs and memory plan figures.\n");
                  return MN_EXIT_OK;
        default: return MN_EXIT_USAGE;
        }
    }
    if (strcmp(model, "mlp") || B <= 0 || (strcmp(format, "dot") && strcmp(format, "stats"))) {
        fprintf(stderr, "mnemo graph: bad --model (mlp), --batch or --format (dot|stats)\n");
        return MN_EXIT_USAGE;
    }
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_node *x = mn_input(g, "x", MN_F32, MN_SHAPE(B, 784)), *y = mn_input(g, "y", MN_I32, MN_SHAPE(B));
    mn_exec *ex = mn_compile(g, mn_cross_entropy(g, mn_tools_mlp(g, x, 1, &hid, 10), y), NULL);
    int rc = MN_EXIT_OK;
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!ex || !f) { fprintf(stderr, "mnemo graph: %s\n", ex ? "cannot open the output file" : mn_graph_errmsg(g)); rc = MN_EXIT_RUNTIME; }
    else if (!strcmp(format, "dot")) rc = mn_exec_write_dot(ex, f) ? MN_EXIT_RUNTIME : MN_EXIT_OK;
    else {
        mn_exec_stats s = mn_exec_get_stats(ex);
        fprintf(f, "nodes %d\nsteps %d (backward %d)\nflops %.0f\nnaive_bytes %lld\nlower_bound_bytes %lld\narena_bytes %lld\n",
                s.nodes_total, s.steps, s.backward_steps, s.flops, (long long)s.naive_bytes,
                (long long)s.lower_bound_bytes, (long long)s.arena_bytes);
    }
    if (f && f != stdout) fclose(f);
    mn_exec_free(ex); mn_graph_free(g); mn_params_free(P);
    return rc;
}
