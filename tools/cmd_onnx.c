/* tools/cmd_onnx.c: `mnemo import` (an ONNX model into a graph: summary,
 * its initializers saved as safetensors, its forward graph as DOT, the
 * importer's op table) and `mnemo export` (a `mnemo train` model's forward
 * graph, with trained weights, as ONNX). The library does the work
 * (onnx/); this file parses flags and prints. */
#include "cmds.h"
#include "train.h"
#include "env.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BINDS 16

static void import_usage(FILE *f)
{
    fprintf(f, "usage: mnemo import MODEL.onnx [-o WEIGHTS.safetensors] [--shape NAME=D1xD2...]... [--constants] [--dot FILE]\n"
               "       mnemo import --ops\n"
               "  builds the ONNX model's graph (initializers become trainable parameters, --constants: constants),\n"
               "  prints its inputs, outputs and parameters, saves the parameters (-o) and draws the forward graph (--dot).\n"
               "  --shape fixes an input's dynamic dims; --ops prints the supported ONNX ops as a Markdown table.\n");
}

/* "x=3x8" -> name and shape. */
static bool parse_shape(const char *arg, char *name, size_t nlen, mn_shape *s)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= nlen) return false;
    memcpy(name, arg, (size_t)(eq - arg));
    name[eq - arg] = 0;
    s->ndim = 0;
    const char *p = eq + 1;
    while (*p) {
        char *end;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 1 || d > (1LL << 31) || s->ndim == MN_MAX_DIMS) return false;
        s->d[s->ndim++] = d;
        if (*end == 'x') end++;
        else if (*end) return false;
        p = end;
    }
    return s->ndim > 0;
}

static int print_ops_table(void)
{
    if (!mn_onnx_available()) {
        mn_onnx_op_info(0, NULL, NULL, NULL);
        fprintf(stderr, "mnemo import: %s\n", mn_errmsg());
        return MN_EXIT_RUNTIME;
    }
    printf("| ONNX op | mnemo ops | limits |\n|---|---|---|\n");
    for (int i = 0; i < mn_onnx_op_count(); i++) {
        const char *op, *ops, *note;
        if (mn_onnx_op_info(i, &op, &ops, &note)) continue;
        printf("| %s | %s | %s |\n", op, ops, note);
    }
    return MN_EXIT_OK;
}

static void print_summary(const char *path, const mn_onnx *m, mn_graph *g)
{
    char buf[128];
    printf("%s: opset %d, %d graph nodes, %d parameters (%lld elements)\n", path, mn_onnx_opset(m), mn_graph_node_count(g),
           mn_params_count(mn_graph_params(g)), (long long)mn_params_numel(mn_graph_params(g)));
    for (int i = 0; i < mn_onnx_input_count(m); i++) {
        const mn_node *n = mn_onnx_input(m, i);
        if (n) printf("input  %s %s %s\n", mn_onnx_input_name(m, i), mn_dtype_name(mn_node_dtype(n)), mn_shape_str(mn_node_shape(n), buf, sizeof buf));
        else printf("input  %s (bound as a constant)\n", mn_onnx_input_name(m, i));
    }
    for (int i = 0; i < mn_onnx_output_count(m); i++) {
        const mn_node *n = mn_onnx_output(m, i);
        printf("output %s %s %s\n", mn_onnx_output_name(m, i), mn_dtype_name(mn_node_dtype(n)), mn_shape_str(mn_node_shape(n), buf, sizeof buf));
    }
}

static int write_dot(mn_graph *g, const mn_onnx *m, const char *path)
{
    const mn_node *outs[64];
    int n = mn_onnx_output_count(m) < 64 ? mn_onnx_output_count(m) : 64;
    for (int i = 0; i < n; i++) outs[i] = mn_onnx_output(m, i);
    mn_exec *ex = mn_compile(g, NULL, mn_tools_compile_opts(&(mn_compile_opts){ .outputs = outs, .noutputs = n, .no_backward = true }));
    FILE *f = ex ? fopen(path, "w") : NULL;
    int rc = ex && f && !mn_exec_write_dot(ex, f) ? MN_EXIT_OK : MN_EXIT_RUNTIME;
    if (f && fclose(f)) rc = MN_EXIT_RUNTIME;
    if (rc) fprintf(stderr, "mnemo import: --dot %s: %s\n", path, ex ? "cannot write" : mn_graph_errmsg(g));
    mn_exec_free(ex);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    static const struct option lo[] = { { "output", 1, 0, 'o' }, { "shape", 1, 0, 's' }, { "constants", 0, 0, 'c' },
                                        { "dot", 1, 0, 'd' }, { "ops", 0, 0, 'p' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
    const char *out = NULL, *dot = NULL;
    char names[MAX_BINDS][128];
    mn_tensor *shapes[MAX_BINDS];
    mn_onnx_bind binds[MAX_BINDS];
    mn_onnx_opts opts = { .binds = binds };
    int c, rc = MN_EXIT_OK;
    bool ops = false, help = false;
    opterr = 0;
    optind = 1;
    while (rc == MN_EXIT_OK && (c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        mn_shape s;
        switch (c) {
        case 'o': out = optarg; break;
        case 'd': dot = optarg; break;
        case 'c': opts.constants = true; break;
        case 'p': ops = true; break;
        case 'h': help = true; break;
        case 's':
            if (opts.nbinds == MAX_BINDS || !parse_shape(optarg, names[opts.nbinds], sizeof names[0], &s)) {
                fprintf(stderr, "mnemo import: --shape \"%s\": expected NAME=D1xD2... (at most %d)\n", optarg, MAX_BINDS);
                rc = MN_EXIT_USAGE;
                break;
            }
            shapes[opts.nbinds] = mn_tensor_new(MN_F32, s);
            binds[opts.nbinds] = (mn_onnx_bind){ names[opts.nbinds], shapes[opts.nbinds], false };
            opts.nbinds++;
            break;
        default: fprintf(stderr, "mnemo import: unknown or incomplete option \"%s\"\n", argv[optind - 1]); rc = MN_EXIT_USAGE;
        }
    }
    if (rc == MN_EXIT_OK && (ops || help)) {
        if (help) import_usage(stdout);
        else rc = print_ops_table();
        for (int i = 0; i < opts.nbinds; i++) mn_tensor_free(shapes[i]);
        return rc;
    }
    if (rc == MN_EXIT_OK && optind != argc - 1) {
        import_usage(stderr);
        rc = MN_EXIT_USAGE;
    }
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_onnx *m = rc ? NULL : mn_onnx_import(g, argv[optind], &opts);
    if (!rc && !m) {
        fprintf(stderr, "mnemo import: %s\n", mn_graph_errmsg(g));
        rc = MN_EXIT_RUNTIME;
    }
    if (m) print_summary(argv[optind], m, g);
    if (m && out && mn_params_save(P, out)) {
        fprintf(stderr, "mnemo import: -o: %s\n", mn_errmsg());
        rc = MN_EXIT_RUNTIME;
    }
    if (m && !rc && dot) rc = write_dot(g, m, dot);
    for (int i = 0; i < opts.nbinds; i++) mn_tensor_free(shapes[i]);
    mn_onnx_free(m);
    mn_graph_free(g);
    mn_params_free(P);
    return rc;
}

static void export_usage(FILE *f)
{
    fprintf(f, "usage: mnemo export --model mlp|lstm|gru|rnn|transformer|tagger [--weights CKPT.safetensors] [--batch N] -o|--onnx OUT.onnx\n"
               "  writes the model's forward graph (inputs -> logits, as `mnemo train` builds it, default sizes)\n"
               "  as an ONNX model (opset 17) with the checkpoint's weights (fresh ones without --weights).\n");
}

int cmd_export(int argc, char **argv)
{
    static const struct option lo[] = { { "model", 1, 0, 'm' }, { "weights", 1, 0, 'w' }, { "batch", 1, 0, 'b' },
                                        { "output", 1, 0, 'o' }, { "onnx", 1, 0, 'o' },
                                        { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
    const char *model = "mlp", *weights = NULL, *out = NULL;
    int64_t B = 0;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'w': weights = optarg; break;
        case 'o': out = optarg; break;
        case 'b': if (!mn_cfg_parse_int("export", "batch", optarg, 1, MN_CFG_MAX_BATCH, &B)) return MN_EXIT_USAGE; break;
        case 'h': export_usage(stdout); return MN_EXIT_OK;
        default: fprintf(stderr, "mnemo export: unknown or incomplete option \"%s\"\n", argv[optind - 1]); return MN_EXIT_USAGE;
        }
    }
    mn_train_cfg cfg;
    if (!out || optind != argc) { export_usage(stderr); return MN_EXIT_USAGE; }
    if (mn_cfg_defaults(&cfg, model)) { fprintf(stderr, "mnemo export: --model: %s\n", mn_errmsg()); return MN_EXIT_USAGE; }
    if (!strcmp(model, "vae")) { fprintf(stderr, "mnemo export: --model vae has no logits output to export\n"); return MN_EXIT_USAGE; }
    if (B) cfg.batch = (int)B;
    int64_t vocab = !strcmp(model, "tagger") ? 10000 : 96;
    mn_params *P = mn_params_new();
    int rc = MN_EXIT_OK;
    if (weights && mn_params_load(P, weights)) {
        fprintf(stderr, "mnemo export: --weights: %s\n", mn_errmsg());
        rc = MN_EXIT_RUNTIME;
    }
    if (!rc && weights && mn_model_check_params(P, &cfg, vocab)) {
        fprintf(stderr, "mnemo export: --weights: %s\n", mn_errmsg());
        rc = MN_EXIT_RUNTIME;
    }
    mn_graph *g = mn_graph_new(P);
    mn_model_graph mg = rc ? (mn_model_graph){ 0 } : mn_model_build(g, &cfg, vocab, false);
    if (!rc && (!mg.logits || mn_onnx_export(g, &mg.logits, 1, out))) {
        fprintf(stderr, "mnemo export: %s\n", mn_graph_status(g) ? mn_graph_errmsg(g) : mn_errmsg());
        rc = MN_EXIT_RUNTIME;
    }
    if (!rc) printf("wrote %s: %s model, %lld parameters, output \"%s\"\n", out, model, (long long)mn_params_numel(P), mn_node_name(mg.logits));
    mn_graph_free(g);
    mn_params_free(P);
    return rc;
}
