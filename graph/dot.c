/* graph/dot.c: Graphviz export of a compiled graph. Every live node is a
 * box labelled with its name, op (and attributes) and dtype/shape; inputs,
 * parameters and constants are ellipses; backward nodes are shaded. */
#include "exec.h"
#include "../ops/attrs.h"
#include <string.h>

static void escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

static void node_line(FILE *f, const mn_exec *ex, const mn_value *v, int idx)
{
    const mn_node *n = v->node;
    char shape[96], attrs[256] = "";
    mn_shape_str(n->desc.shape, shape, sizeof shape);
    if (n->kind == MN_NODE_OP) mn__attrs_str(n->op, n->attrs, attrs, sizeof attrs);
    const char *style = n->kind == MN_NODE_INPUT ? "shape=ellipse, style=filled, fillcolor=\"#c8e6c9\""
                      : n->kind == MN_NODE_PARAM ? "shape=ellipse, style=filled, fillcolor=\"#fff59d\""
                      : n->kind == MN_NODE_CONST ? "shape=ellipse, style=filled, fillcolor=\"#eeeeee\""
                      : mn__kind(v) == MN_VAL_FUSED ? (n->backward ? "shape=box, style=\"filled,dashed\", fillcolor=\"#bbdefb\""
                                                               : "shape=box, style=dashed")
                      : n->backward ? "shape=box, style=filled, fillcolor=\"#bbdefb\""
                      : "shape=box";
    fprintf(f, "  v%d [%s, label=\"", idx, style);
    escape(f, n->name);
    fprintf(f, "\\n%s%s", mn_node_op(n), attrs[0] ? " " : "");
    escape(f, attrs);
    fprintf(f, "\\n%s %s\"];\n", mn_dtype_name(n->desc.dtype), shape);
    (void)ex;
}

#define MN_DOT_CLUSTER_VALUES 1000

mn_status mn_exec_write_dot(const mn_exec *ex, FILE *f)
{
    if (!ex || !f) return mn__error(MN_ERR_MISUSE, "write_dot: NULL argument");
    fprintf(f, "digraph mnemo {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
    for (int v = 0; v < ex->nvals; v++)
        if (ex->vals[v].fused_root < 0 || ex->nvals > MN_DOT_CLUSTER_VALUES) node_line(f, ex, &ex->vals[v], v);
    /* a fused elementwise group: one kernel, drawn as a cluster (dashed:
     * never stored). Above MN_DOT_CLUSTER_VALUES values the members are
     * drawn loose, outlined in the clusters' colour: Graphviz's dot (2.42,
     * Debian 12) gives up ("trouble in init_rank") on some large clustered
     * graphs (the default gru's training graph, 2,950 values), and a graph
     * that size is no drawing to read anyway (docs/cli.md). */
    bool clusters = ex->nvals <= MN_DOT_CLUSTER_VALUES;
    for (int r = 0; r < ex->nvals; r++) {
        if (ex->vals[r].fused_root != r) continue;
        if (!clusters) {
            for (int v = 0; v < ex->nvals; v++)
                if (ex->vals[v].fused_root == r) fprintf(f, "  v%d [color=\"#7b1fa2\", tooltip=\"fused group %d\"];\n", v, r);
            continue;
        }
        fprintf(f, "  subgraph cluster_f%d {\n    label=\"fused\"; style=rounded; color=\"#7b1fa2\";\n", r);
        for (int v = 0; v < ex->nvals; v++)
            if (ex->vals[v].fused_root == r) { fputs("  ", f); node_line(f, ex, &ex->vals[v], v); }
        fprintf(f, "  }\n");
    }
    /* the dataflow of the nodes themselves (through fused groups too) */
    for (int v = 0; v < ex->nvals; v++) {
        const mn_node *n = ex->vals[v].node;
        if (n->kind != MN_NODE_OP || ex->val_of[n->id] != v) continue;
        for (int k = 0; k < n->nin; k++) fprintf(f, "  v%d -> v%d;\n", ex->val_of[n->in[k]->id], v);
    }
    for (int i = 0; i < ex->nsinks; i++) {
        fprintf(f, "  g%d [shape=note, label=\"grad of ", i);
        escape(f, mn_params_name(ex->g->P, ex->sinks[i].param));
        fprintf(f, "\"];\n  v%d -> g%d [style=dashed];\n", ex->sinks[i].value, i);
    }
    fprintf(f, "}\n");
    return ferror(f) ? mn__error(MN_ERR_IO, "write_dot: write failed") : MN_OK;
}
