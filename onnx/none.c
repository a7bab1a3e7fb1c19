/* onnx/none.c: the ONNX entry points of a build without protobuf-c or
 * onnx.proto (-Donnx=disabled, or the packages absent): each fails with
 * MN_ERR_UNSUPPORTED saying how to get the importer. */
#include "mnemo.h"

#define WHY "ONNX support was not built (install protobuf-c-compiler libprotobuf-c-dev libonnx-dev, reconfigure with -Donnx=enabled)"

bool mn_onnx_available(void) { return false; }

mn_onnx *mn_onnx_import_buffer(mn_graph *g, const void *data, size_t len, const mn_onnx_opts *opts)
{
    (void)data;
    (void)len;
    (void)opts;
    if (g) mn_graph_fail(g, MN_ERR_UNSUPPORTED, WHY);
    return NULL;
}

mn_onnx *mn_onnx_import(mn_graph *g, const char *path, const mn_onnx_opts *opts)
{
    (void)path;
    return mn_onnx_import_buffer(g, NULL, 0, opts);
}

void mn_onnx_free(mn_onnx *m) { (void)m; }
int mn_onnx_opset(const mn_onnx *m) { (void)m; return 0; }
int mn_onnx_input_count(const mn_onnx *m) { (void)m; return 0; }
int mn_onnx_output_count(const mn_onnx *m) { (void)m; return 0; }
const char *mn_onnx_input_name(const mn_onnx *m, int i) { (void)m; (void)i; return NULL; }
mn_node *mn_onnx_input(const mn_onnx *m, int i) { (void)m; (void)i; return NULL; }
const char *mn_onnx_output_name(const mn_onnx *m, int i) { (void)m; (void)i; return NULL; }
mn_node *mn_onnx_output(const mn_onnx *m, int i) { (void)m; (void)i; return NULL; }
int mn_onnx_op_count(void) { return 0; }

mn_status mn_onnx_op_info(int i, const char **onnx_op, const char **mnemo_ops, const char **note)
{
    (void)i;
    (void)onnx_op;
    (void)mnemo_ops;
    (void)note;
    return mn_set_error(MN_ERR_UNSUPPORTED, WHY);
}

mn_tensor *mn_onnx_load_tensor(const char *path, char *name, size_t namelen)
{
    (void)path;
    (void)name;
    (void)namelen;
    mn_set_error(MN_ERR_UNSUPPORTED, WHY);
    return NULL;
}

mn_status mn_onnx_export(mn_graph *g, mn_node *const *outputs, int n, const char *path)
{
    (void)g;
    (void)outputs;
    (void)n;
    (void)path;
    return mn_set_error(MN_ERR_UNSUPPORTED, WHY);
}
