/* tests/onnx/conformance.c: runs ONNX backend tests (libonnx-testdata:
 * DIR/<test>/model.onnx + test_data_set_N/{input,output}_K.pb) through
 * mn_onnx_import and a forward run, and compares every output with
 * ONNX's tolerances (rtol 1e-3, atol 1e-7). Prints "N passed, M failed,
 * K unsupported" per folder; with --expect FILE it runs only the tests
 * listed there and exits 1 unless every one passes (the suite's guard).
 *   onnx_conformance [-v] [--expect FILE] [--passes OUT] DIR... */
#include "mnemo.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PASS, FAIL, UNSUPPORTED };
#define MAXT 32

typedef struct {
    mn_tensor *in[MAXT], *out[MAXT];
    char in_name[MAXT][256];
    int nin, nout;
} test_data;

static void data_free(test_data *d)
{
    for (int i = 0; i < d->nin; i++) mn_tensor_free(d->in[i]);
    for (int i = 0; i < d->nout; i++) mn_tensor_free(d->out[i]);
}

/* Loads input_K.pb / output_K.pb of one data set; UNSUPPORTED for dtypes mnemo lacks. */
static int load_set(const char *dir, test_data *d, char *why, size_t wlen)
{
    char path[4096];
    memset(d, 0, sizeof *d);
    for (int k = 0; k < MAXT; k++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", dir, k);
        FILE *f = fopen(path, "rb");
        if (!f) break;
        fclose(f);
        d->in[k] = mn_onnx_load_tensor(path, d->in_name[k], sizeof d->in_name[k]);
        if (!d->in[k]) {
            snprintf(why, wlen, "%s", mn_errmsg());
            return UNSUPPORTED;
        }
        d->nin = k + 1;
    }
    for (int k = 0; k < MAXT; k++) {
        snprintf(path, sizeof path, "%s/output_%d.pb", dir, k);
        FILE *f = fopen(path, "rb");
        if (!f) break;
        fclose(f);
        d->out[k] = mn_onnx_load_tensor(path, NULL, 0);
        if (!d->out[k]) {
            snprintf(why, wlen, "%s", mn_errmsg());
            return UNSUPPORTED;
        }
        d->nout = k + 1;
    }
    return PASS;
}

static double at(const mn_tensor *t, int64_t i)
{
    return t->dtype == MN_F32 ? (double)mn_f32(t)[i] : (double)mn_i32(t)[i];
}

static int compare(const mn_tensor *got, const mn_tensor *want, int k, char *why, size_t wlen)
{
    if (!mn_shape_eq(got->shape, want->shape)) {
        char a[64], b[64];
        snprintf(why, wlen, "output %d: shape %s, expected %s", k, mn_shape_str(got->shape, a, sizeof a), mn_shape_str(want->shape, b, sizeof b));
        return FAIL;
    }
    for (int64_t i = 0; i < mn_tensor_numel(want); i++) {
        double x = at(got, i), y = at(want, i);
        if (isnan(x) && isnan(y)) continue;
        if (isinf(y) && x == y) continue;
        if (!(fabs(x - y) <= 1e-7 + 1e-3 * fabs(y))) {
            snprintf(why, wlen, "output %d: element %lld is %.9g, expected %.9g", k, (long long)i, x, y);
            return FAIL;
        }
    }
    return PASS;
}

/* Feeds t into the executable's input `name`, converting i32 <-> f32 to its dtype. */
static mn_status feed(mn_exec *ex, const char *name, const mn_tensor *t)
{
    for (int i = 0; i < mn_exec_input_count(ex); i++) {
        if (strcmp(mn_exec_input_name(ex, i), name)) continue;
        const mn_tensor *b = mn_exec_input(ex, i);
        if (!mn_shape_eq(b->shape, t->shape)) return mn_set_error(MN_ERR_SHAPE, "input %s: shape differs", name);
        for (int64_t j = 0; j < mn_tensor_numel(t); j++) {
            if (b->dtype == MN_F32) mn_f32(b)[j] = (float)at(t, j);
            else mn_i32(b)[j] = (int32_t)at(t, j);
        }
        return MN_OK;
    }
    return MN_OK;    /* not read by the compiled graph */
}

/* Older test data has unnamed tensors: input_K is the model's K-th input
 * (initializers excluded), read from a first import without bindings. */
static void name_unnamed(const char *model, test_data *d)
{
    bool unnamed = false;
    for (int i = 0; i < d->nin; i++) unnamed = unnamed || !d->in_name[i][0];
    if (!unnamed) return;
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_onnx *m = mn_onnx_import(g, model, NULL);
    for (int i = 0; m && i < d->nin && i < mn_onnx_input_count(m); i++)
        if (!d->in_name[i][0]) snprintf(d->in_name[i], sizeof d->in_name[i], "%s", mn_onnx_input_name(m, i));
    mn_onnx_free(m);
    mn_graph_free(g);
    mn_params_free(P);
}

/* all_const: every input a constant (for models whose Clip bounds, Pow
 * exponents or Range limits are graph inputs). */
static int run_set(const char *model, const char *setdir, bool all_const, char *why, size_t wlen)
{
    test_data d;
    int r = load_set(setdir, &d, why, wlen);
    if (r != PASS) {
        data_free(&d);
        return r;
    }
    name_unnamed(model, &d);
    mn_onnx_bind binds[MAXT];
    for (int i = 0; i < d.nin; i++)
        binds[i] = (mn_onnx_bind){ .name = d.in_name[i], .value = d.in[i], .constant = all_const || d.in[i]->dtype == MN_I32 };
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_onnx *m = mn_onnx_import(g, model, &(mn_onnx_opts){ .binds = binds, .nbinds = d.nin });
    mn_exec *ex = NULL;
    if (!m) {
        mn_status s = mn_graph_status(g);
        r = s == MN_ERR_UNSUPPORTED || s == MN_ERR_DTYPE ? UNSUPPORTED : FAIL;
        snprintf(why, wlen, "%s", mn_graph_errmsg(g));
    } else if (mn_onnx_output_count(m) != d.nout) {
        r = FAIL;
        snprintf(why, wlen, "%d outputs, %d expected", mn_onnx_output_count(m), d.nout);
    } else {
        const mn_node *outs[MAXT];
        for (int k = 0; k < d.nout; k++) outs[k] = mn_onnx_output(m, k);
        ex = mn_compile(g, NULL, &(mn_compile_opts){ .threads = 1, .outputs = outs, .noutputs = d.nout, .no_backward = true });
        if (!ex) {
            r = FAIL;
            snprintf(why, wlen, "compile: %s", mn_graph_errmsg(g));
        }
        for (int i = 0; ex && r == PASS && i < d.nin; i++)
            if (feed(ex, d.in_name[i], d.in[i])) {
                r = FAIL;
                snprintf(why, wlen, "%s", mn_errmsg());
            }
        if (ex && r == PASS && mn_exec_run(ex)) {
            r = FAIL;
            snprintf(why, wlen, "run: %s", mn_exec_errmsg(ex));
        }
        for (int k = 0; ex && r == PASS && k < d.nout; k++) r = compare(mn_exec_value(ex, outs[k]), d.out[k], k, why, wlen);
    }
    mn_exec_free(ex);
    mn_onnx_free(m);
    mn_graph_free(g);
    mn_params_free(P);
    data_free(&d);
    return r;
}

/* Every data set of one test must pass. */
static int run_test(const char *dir, char *why, size_t wlen)
{
    char model[4096], set[4096];
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    int r = PASS, sets = 0;
    for (int s = 0; s < 16 && r == PASS; s++) {
        snprintf(set, sizeof set, "%s/test_data_set_%d", dir, s);
        DIR *dd = opendir(set);
        if (!dd) break;
        closedir(dd);
        sets++;
        r = run_set(model, set, false, why, wlen);
        if (r == UNSUPPORTED && strstr(why, "must be fixed at import")) {
            why[0] = 0;
            r = run_set(model, set, true, why, wlen);
        }
    }
    if (!sets) {
        snprintf(why, wlen, "no test_data_set_0");
        return UNSUPPORTED;
    }
    return r;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool listed(char **list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return true;
    return false;
}

int main(int argc, char **argv)
{
    bool verbose = false;
    const char *expect = NULL, *passes = NULL;
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "-v")) verbose = true;
        else if (!strcmp(argv[a], "--expect") && a + 1 < argc) expect = argv[++a];
        else if (!strcmp(argv[a], "--passes") && a + 1 < argc) passes = argv[++a];
        else {
            fprintf(stderr, "usage: onnx_conformance [-v] [--expect FILE] [--passes OUT] DIR...\n");
            return 2;
        }
    }
    char *want[4096];
    int nwant = 0;
    if (expect) {
        FILE *f = fopen(expect, "r");
        char line[512];
        if (!f) {
            fprintf(stderr, "onnx_conformance: cannot open %s\n", expect);
            return 2;
        }
        while (nwant < 4096 && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n#")] = 0;
            if (line[0]) want[nwant++] = strdup(line);
        }
        fclose(f);
    }
    FILE *pf = passes ? fopen(passes, "w") : NULL;
    int bad_expect = 0, found_expect = 0;
    for (; a < argc; a++) {
        DIR *dd = opendir(argv[a]);
        if (!dd) {
            fprintf(stderr, "onnx_conformance: cannot open %s\n", argv[a]);
            return 2;
        }
        char *names[4096];
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dd)) && n < 4096)
            if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
        closedir(dd);
        qsort(names, (size_t)n, sizeof names[0], cmp_str);
        int count[3] = { 0 };
        for (int i = 0; i < n; i++) {
            if (expect && !listed(want, nwant, names[i])) {
                free(names[i]);
                continue;
            }
            char dir[4096], why[1024] = "";
            snprintf(dir, sizeof dir, "%s/%s", argv[a], names[i]);
            int r = run_test(dir, why, sizeof why);
            count[r]++;
            if (expect) found_expect++;
            if (expect && r != PASS) {
                bad_expect++;
                printf("REGRESSION %s: %s\n", names[i], why);
            }
            if (verbose) printf("%s %s%s%s\n", r == PASS ? "pass" : r == FAIL ? "FAIL" : "unsupported", names[i], why[0] ? ": " : "", why);
            if (pf && r == PASS) fprintf(pf, "%s\n", names[i]);
            free(names[i]);
        }
        printf("%s: %d passed, %d failed, %d unsupported\n", argv[a], count[PASS], count[FAIL], count[UNSUPPORTED]);
    }
    if (pf) fclose(pf);
    for (int i = 0; i < nwant; i++) free(want[i]);
    if (expect && found_expect != nwant) {
        printf("%d of the %d expected tests were not found\n", nwant - found_expect, nwant);
        return 1;
    }
    return bad_expect ? 1 : 0;
}
