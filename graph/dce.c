/* graph/dce.c: the dead-code pass. Only nodes that the loss, the requested
 * outputs or a parameter gradient (the roots, from the autodiff pass) read,
 * directly or not, stay live. Reads ex->roots; writes ex->live (one flag
 * per node of ex->g). Ids are a topological order, so one sweep from the
 * last node down marks everything. */
#include "exec.h"
#include <stdlib.h>

static void mark_live(mn_graph *g, mn_node **roots, int nroots, bool *live)
{
    for (int i = 0; i < nroots; i++)
        if (roots[i]) live[roots[i]->id] = true;
    for (int i = g->n - 1; i >= 0; i--) {
        if (!live[i]) continue;
        mn_node *n = g->nodes[i];
        for (int k = 0; k < n->nin; k++) live[n->in[k]->id] = true;
    }
}

mn_status mn__pass_dce(mn_exec *ex)
{
    mn_graph *g = ex->g;
    if (!(ex->live = calloc((size_t)g->n + 1, sizeof *ex->live))) return mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory");
    mark_live(g, ex->roots, ex->nroots, ex->live);
    int dead = 0;
    for (int i = 0; i < g->n; i++) dead += !ex->live[i];
    mn__stat(ex, "dce.removed_nodes", dead);
    return MN_OK;
}
