/* graph/cse.c: the values pass with common-subexpression elimination. Each
 * live node becomes a value, and each live op node a step, in id order
 * (topological) -- unless an earlier op node with the same op, attributes
 * and input values already computes it (random ops excepted). Reads
 * ex->live; writes ex->vals (node, base kind, alias, bytes), ex->val_of,
 * ex->steps (node, out, inputs), ex->keep, ex->cse_count. */
#include "exec.h"
#include "../ops/attrs.h"
#include <stdlib.h>
#include <string.h>

mn_value mn__value_for(mn_node *n)
{
    mn_value v = { .node = n, .alias_of = -1, .def = -1, .storage = -1, .fused_root = -1, .view_of = -1, .into = -1 };
    v.t.dtype = n->desc.dtype;
    v.t.shape = n->desc.shape;
    v.bytes = (size_t)mn_shape_numel(n->desc.shape) * mn_dtype_size(n->desc.dtype);
    switch (n->kind) {
    case MN_NODE_INPUT: v.base = MN_VAL_INPUT; break;
    case MN_NODE_PARAM: v.base = MN_VAL_PARAM; break;
    case MN_NODE_CONST: v.base = MN_VAL_CONST; break;
    case MN_NODE_OP:
        v.base = MN_VAL_ARENA;
        if (n->op->traits.alias_offset) {
            int64_t off = n->op->traits.alias_offset(n->in_desc, n->nin, &n->desc, n->attrs);
            if (off >= 0) { v.base = MN_VAL_ALIAS; v.alias_off = off; }
        }
        break;
    }
    return v;
}

/* Common subexpressions: two op nodes with the same op, attributes and
 * input values compute the same value (random ops excepted: each draws its
 * own numbers). Autodiff makes such twins, e.g. the gradients of two biases
 * added to the same tensor; the second maps to the first's value. */
static uint64_t node_key(const mn_exec *ex, const mn_node *n)
{
    uint64_t h = (uint64_t)(uintptr_t)n->op * 0x9E3779B97F4A7C15ull ^ (uint64_t)n->nin;
    for (int k = 0; k < n->nin; k++) h = (h ^ (uint64_t)ex->val_of[n->in[k]->id]) * 0x100000001B3ull;
    return mn__attrs_hash(n->op, n->attrs, h);      /* field by field: padding never counts */
}

static bool same_node(const mn_exec *ex, const mn_node *a, const mn_node *b)
{
    if (a->op != b->op || a->nin != b->nin || a->desc.dtype != b->desc.dtype || !mn_shape_eq(a->desc.shape, b->desc.shape)) return false;
    for (int k = 0; k < a->nin; k++)
        if (ex->val_of[a->in[k]->id] != ex->val_of[b->in[k]->id]) return false;
    return mn__attrs_equal(a->op, a->attrs, b->attrs);
}

static mn_status build_values(mn_exec *ex, const bool *live)
{
    mn_graph *g = ex->g;
    int hcap = 16;
    while (hcap < 2 * g->n) hcap *= 2;
    int *table = malloc((size_t)hcap * sizeof *table);      /* value indices of op nodes, -1 empty */
    ex->val_of = malloc((size_t)g->n * sizeof *ex->val_of);
    ex->vals = calloc((size_t)g->n, sizeof *ex->vals);
    ex->steps = calloc((size_t)g->n, sizeof *ex->steps);
    if (!table || !ex->val_of || !ex->vals || !ex->steps) { free(table); return mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory"); }
    for (int i = 0; i < hcap; i++) table[i] = -1;
    for (int i = 0; i < g->n; i++) {
        ex->val_of[i] = -1;
        if (!live[i]) continue;
        mn_node *n = g->nodes[i];
        int slot = -1;
        if (n->kind == MN_NODE_OP && !(n->op->flags & MN_OPF_RANDOM)) {
            slot = (int)(node_key(ex, n) & (uint64_t)(hcap - 1));
            while (table[slot] >= 0 && !same_node(ex, ex->vals[table[slot]].node, n)) slot = (slot + 1) & (hcap - 1);
            if (table[slot] >= 0) { ex->val_of[i] = table[slot]; ex->cse_count++; continue; }
        }
        int v = ex->nvals++;
        ex->val_of[i] = v;
        if (slot >= 0) table[slot] = v;
        ex->vals[v] = mn__value_for(n);
        if (n->kind != MN_NODE_OP) continue;
        mn_step *s = &ex->steps[ex->nsteps];
        s->node = n; s->out = v; s->nin = n->nin; s->fused_into = -1;
        s->in = calloc((size_t)(n->nin ? n->nin : 1), sizeof *s->in);
        s->tin = calloc((size_t)(n->nin ? n->nin : 1), sizeof *s->tin);
        if (!s->in || !s->tin) {
            free(s->in);
            free(s->tin);
            s->in = NULL;
            s->tin = NULL;
            free(table);
            return mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory");
        }
        for (int k = 0; k < n->nin; k++) s->in[k] = ex->val_of[n->in[k]->id];
        if (ex->vals[v].base == MN_VAL_ALIAS) ex->vals[v].alias_of = s->in[0];
        ex->vals[v].def = ex->nsteps++;
    }
    free(table);
    return MN_OK;
}


/* The values and steps of the live nodes; then the loss, the outputs and the
 * parameter gradients (sinks) are mapped from nodes to values. */
mn_status mn__pass_cse(mn_exec *ex)
{
    mn_graph *g = ex->g;
    ex->nnodes = g->n;
    mn_status s = build_values(ex, ex->live);
    if (!s && !(ex->keep = calloc((size_t)ex->nvals + 1, sizeof *ex->keep))) s = mn__graph_fail(g, MN_ERR_NOMEM, "compile: out of memory");
    for (int i = 0; !s && i < ex->nkeep; i++) ex->keep[ex->val_of[ex->roots[i]->id]] = true;
    for (int i = 0; !s && i < ex->nsinks; i++) ex->sinks[i].value = ex->val_of[ex->sinks[i].value];
    mn__stat(ex, "cse.merged_nodes", ex->cse_count);
    mn__stat(ex, "cse.values", ex->nvals);
    return s;
}
