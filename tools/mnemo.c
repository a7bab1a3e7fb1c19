/* tools/mnemo.c: the `mnemo` command: dispatch to subcommands, and the small
 * ones (ops, inspect, version). Exit codes: 0 ok, 1 runtime error, 2 usage
 * error; errors go to stderr. */
#include "cmds.h"
#include "finetune.h"
#include "mnemo_plugin.h"
#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mnemo <command> [options]\n\n"
        "commands:\n"
        "  train     train a model (lstm, gru, rnn, transformer on text; mlp, vae on Fashion-MNIST; tagger on Brown)\n"
        "  sample    generate text from a language model, or VAE images\n"
        "  translate translate sentences with a `train --model translate` checkpoint\n"
        "  eval      loss, bits per character, accuracy and per-class report of a checkpoint\n"
        "  graph     compile a model's training graph; print DOT or memory stats\n"
        "  ops       list the registered operators\n"
        "  bench     time training steps of the benchmark workloads\n"
        "  inspect   list the tensors and metadata of a safetensors file\n"
        "  import    build an ONNX model's graph; save its weights, draw it, list the supported ONNX ops\n"
        "  export    write a model's forward graph and weights as ONNX\n"
        "  version   print the version\n\n"
        "`mnemo <command> --help` describes each command.\n"
        "every command takes --plugin PATH (repeatable) to load op plugins first.\n"
        "exit codes: 0 ok, 1 runtime error, 2 usage error\n");
}

static void flags_str(unsigned fl, char *buf, size_t n)
{
    static const char *names[] = { "elementwise", "broadcast", "random", "nograd", "cheap", "alias", "backward", "composite" };
    size_t k = 0;
    buf[0] = 0;
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
        if (fl & (1u << i)) k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? "," : "", names[i]);
}

/* An op's attributes from its schema (struct mn_op_def.attr_fields): "axis int, start int64"; "" when none. */
static void attrs_str(const mn_op_def *op, char *buf, size_t n)
{
    static const char *const types[] = { "bool", "int", "uint", "int64", "float", "double", "dtype", "shape", "dims" };
    size_t k = 0;
    buf[0] = 0;
    for (const mn_attr_field *f = op->attr_fields; f && f->name && k < n; f++) {
        const char *t = (unsigned)f->type < sizeof types / sizeof *types ? types[f->type] : "?";
        k += (size_t)snprintf(buf + k, n - k, "%s%s %s", k ? ", " : "", f->name, t);
    }
}

static int cmd_ops(int argc, char **argv)
{
    int verbose = 0, markdown = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) verbose = 1;
        else if (!strcmp(argv[i], "--markdown")) markdown = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: mnemo ops [-v] [--markdown]\n  lists every registered op: name, arity, differentiable, flags;\n"
                   "  -v adds the formula and gradient of each and its attributes (name and type, from the op's schema);\n"
                   "  --markdown prints the table of docs/ops.md.\n");
            return MN_EXIT_OK;
        } else { fprintf(stderr, "mnemo ops: unknown option %s\n", argv[i]); return MN_EXIT_USAGE; }
    }
    if (markdown) {
        printf("| op | arity | differentiable | flags | attributes | forward; gradient |\n|---|---|---|---|---|---|\n");
        for (int i = 0; i < mn_op_count(); i++) {
            const mn_op_def *op = mn_op_at(i);
            char fl[128], at[512];
            flags_str(mn_op_flags(op), fl, sizeof fl);
            attrs_str(op, at, sizeof at);
            if (mn_op_arity(op) < 0) printf("| %s | n |", mn_op_name(op));
            else printf("| %s | %d |", mn_op_name(op), mn_op_arity(op));
            printf(" %s | %s | %s | %s |\n", mn_op_differentiable(op) ? "yes" : "no", fl, at, mn_op_doc(op));
        }
        return MN_EXIT_OK;
    }
    printf("%-22s %-6s %-15s %-10s %s\n", "op", "arity", "differentiable", "plugin", "flags");
    for (int i = 0; i < mn_op_count(); i++) {
        const mn_op_def *op = mn_op_at(i);
        char ar[16], fl[128];
        if (mn_op_arity(op) < 0) snprintf(ar, sizeof ar, "n");
        else snprintf(ar, sizeof ar, "%d", mn_op_arity(op));
        flags_str(mn_op_flags(op), fl, sizeof fl);
        printf("%-22s %-6s %-15s %-10s %s\n", mn_op_name(op), ar, mn_op_differentiable(op) ? "yes" : "no",
               mn_op_plugin(op) ? mn_op_plugin(op) : "-", fl);
        if (!verbose) continue;
        char at[512];
        attrs_str(op, at, sizeof at);
        printf("    %s\n    attributes: %s\n", mn_op_doc(op), at[0] ? at : "none");
    }
    printf("%d ops", mn_op_count());
    for (int i = 0; i < mn_plugin_count(); i++) printf("%s plugin %s %s (%s)", i ? "," : ";", mn_plugin_name(i), mn_plugin_version(i), mn_plugin_path(i));
    printf("\n");
    return MN_EXIT_OK;
}

/* Writes text to out with every control byte a terminal would act on shown
 * as \xNN: C0 controls but newline and tab, DEL, and C1 controls in their
 * UTF-8 form. Names and metadata come from the file, so an escape sequence
 * in a checkpoint must not reach the terminal. */
static void write_escaped(const char *text, size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        bool c1 = c == 0xc2 && i + 1 < n && (unsigned char)text[i + 1] >= 0x80 && (unsigned char)text[i + 1] <= 0x9f;
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) fprintf(out, "\\x%02x", c);
        else if (c1) fprintf(out, "\\x%02x", (unsigned char)text[++i]);
        else fputc(c, out);
    }
}

static void inspect_print(mn_params *P, FILE *f)
{
    int64_t total = 0;
    fprintf(f, "%-40s %-6s %-20s %s\n", "tensor", "dtype", "shape", "bytes");
    for (int i = 0; i < mn_params_count(P); i++) {
        mn_tensor *t = mn_params_value(P, i);
        char s[96];
        fprintf(f, "%-40s %-6s %-20s %zu%s\n", mn_params_name(P, i), "F32", mn_shape_str(t->shape, s, sizeof s),
                mn_tensor_bytes(t), mn_params_grad(P, i) ? "" : "  (state)");
        total += mn_tensor_numel(t);
    }
    fprintf(f, "%d tensors, %lld elements\n", mn_params_count(P), (long long)total);
    for (int i = 0; i < mn_params_meta_count(P); i++) {
        const char *k, *v;
        if (!mn_params_meta_at(P, i, &k, &v)) fprintf(f, "metadata %s = %s\n", k, v);
    }
    mn_ft_describe(P, f);
}

static int cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: mnemo inspect FILE.safetensors\n");
        return argc == 2 ? MN_EXIT_OK : MN_EXIT_USAGE;
    }
    mn_params *P = mn_params_new();
    if (!P || mn_params_load(P, argv[1])) {
        fprintf(stderr, "mnemo inspect: %s\n", mn_errmsg());
        mn_params_free(P);
        return MN_EXIT_RUNTIME;
    }
    char *text = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&text, &n);
    if (mem) inspect_print(P, mem);
    bool ok = mem && fclose(mem) == 0;
    if (ok) write_escaped(text, n, stdout);
    else fprintf(stderr, "mnemo inspect: out of memory\n");
    free(text);
    mn_params_free(P);
    return ok ? MN_EXIT_OK : MN_EXIT_RUNTIME;
}

/* libgomp reads its wait policy when it loads, before main. Its default
 * spins ~300k iterations between parallel regions, and passive waiting puts
 * threads to sleep at once; with one region per schedule level both cost
 * the executor on 2 cores (lstm train step: 102 ms passive, 66 ms with a
 * 5,000-iteration spin, measured). Unless the user chose, run again with
 * GOMP_SPINCOUNT=5000. Not when OMP_PROC_BIND or OMP_PLACES is set: libgomp
 * has pinned this thread to the first place by then, and the new process
 * would inherit that one CPU as its whole mask. */
static void ensure_wait_policy(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("MNEMO_NO_REEXEC")) return;
    if (getenv("OMP_PROC_BIND") || getenv("OMP_PLACES")) return;
    setenv("GOMP_SPINCOUNT", "5000", 1);
    setenv("MNEMO_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}

/* --plugin PATH (or --plugin=PATH), repeatable, on every subcommand: loaded
 * first, then removed from argv. */
static int load_plugins(int *argc, char **argv)
{
    int k = 0;
    for (int i = 0; i < *argc; i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--plugin")) {
            if (i + 1 >= *argc) { fprintf(stderr, "mnemo: --plugin needs a path\n"); return MN_EXIT_USAGE; }
            path = argv[++i];
        } else if (!strncmp(argv[i], "--plugin=", 9)) path = argv[i] + 9;
        if (!path) { argv[k++] = argv[i]; continue; }
        if (mn_plugin_load(path)) { fprintf(stderr, "mnemo: %s\n", mn_errmsg()); return MN_EXIT_RUNTIME; }
    }
    argv[k] = NULL;
    *argc = k;
    return MN_EXIT_OK;
}

int main(int argc, char **argv)
{
    ensure_wait_policy(argv);
    int prc = load_plugins(&argc, argv);
    if (prc) return prc;
    if (argc < 2) { usage(stderr); return MN_EXIT_USAGE; }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) { usage(stdout); return MN_EXIT_OK; }
    if (!strcmp(c, "version") || !strcmp(c, "--version")) { printf("mnemo %s\n", mn_version()); return MN_EXIT_OK; }
    if (!strcmp(c, "ops")) return cmd_ops(argc - 1, argv + 1);
    if (!strcmp(c, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(c, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(c, "graph")) return cmd_graph(argc - 1, argv + 1);
    if (!strcmp(c, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(c, "sample")) return cmd_sample(argc - 1, argv + 1);
    if (!strcmp(c, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(c, "translate")) return cmd_translate(argc - 1, argv + 1);
    if (!strcmp(c, "import")) return cmd_import(argc - 1, argv + 1);
    if (!strcmp(c, "export")) return cmd_export(argc - 1, argv + 1);
    fprintf(stderr, "mnemo: unknown command \"%s\"\n", c);
    usage(stderr);
    return MN_EXIT_USAGE;
}
