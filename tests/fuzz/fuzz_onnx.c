/* tests/fuzz/fuzz_onnx.c: the ONNX importer. The input is a model handed
 * to mn_onnx_import_buffer; a model that imports is compiled forward and
 * run on zero inputs, then exported and the export imported again (the
 * exporter must write only what the importer reads back). */
#include "fuzz.h"
#include "mnemo.h"
#include <stdlib.h>
#include <string.h>

static void run_forward(mn_graph *g, const mn_onnx *m)
{
    mn_node *outs[8];
    int n = mn_onnx_output_count(m) < 8 ? mn_onnx_output_count(m) : 8;
    for (int i = 0; i < n; i++) outs[i] = mn_onnx_output(m, i);
    mn_exec *ex = mn_compile(g, NULL, &(mn_compile_opts){ .threads = 1, .outputs = (const mn_node *const *)outs, .noutputs = n, .no_backward = true });
    if (ex) mn_exec_run(ex);
    mn_exec_free(ex);
    char path[640];
    fuzz_write(path, sizeof path, "export.onnx", "", 0);
    if (n > 0 && !mn_onnx_export(g, outs, n, path)) {
        mn_params *P = mn_params_new();
        mn_graph *g2 = mn_graph_new(P);
        mn_onnx *m2 = mn_onnx_import(g2, path, NULL);
        if (!m2 && mn_graph_status(g2) == MN_ERR_FORMAT) abort();   /* the exporter wrote a malformed file */
        mn_onnx_free(m2);
        mn_graph_free(g2);
        mn_params_free(P);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mn_params *P = mn_params_new();
    mn_graph *g = mn_graph_new(P);
    mn_onnx *m = mn_onnx_import_buffer(g, data, size, NULL);
    if (m) run_forward(g, m);
    else if (mn_graph_status(g) == MN_OK) abort();                 /* a failure must leave a message */
    mn_onnx_free(m);
    mn_graph_free(g);
    mn_params_free(P);
    return 0;
}
