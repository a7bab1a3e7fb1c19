/* onnx/export.c: placeholder, replaced below. */
#include "internal.h"
mn_status mn_onnx_export(mn_graph *g, mn_node *const *outputs, int n, const char *path)
{
    (void)g; (void)outputs; (void)n; (void)path;
    return mn_set_error(MN_ERR_UNSUPPORTED, "onnx export: not yet");
}
