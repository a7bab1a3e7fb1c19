/* graph/graph.h: the graph's internal structures, shared by the builder,
 * autodiff, the compiler/executor and DOT export. Invariant: nodes[i]->id
 * == i and every input of a node has a smaller id (ids are a topological
 * order), because a node can only be built from existing nodes. */
#ifndef MN_GRAPH_GRAPH_H
#define MN_GRAPH_GRAPH_H

#include "../ops/op.h"

typedef enum { MN_NODE_INPUT, MN_NODE_PARAM, MN_NODE_CONST, MN_NODE_OP } mn_node_kind;

struct mn_node {
    mn_graph *g;
    int id;
    mn_node_kind kind;
    const mn_op_def *op;    /* MN_NODE_OP */
    int nin;
    mn_node **in;
    mn_tdesc *in_desc;      /* the inputs' dtypes and shapes, as the op's functions take them */
    void *attrs;            /* copy of the op's attribute struct */
    mn_tdesc desc;
    char *name;
    int param;              /* MN_NODE_PARAM: index in the store */
    void *cdata;            /* MN_NODE_CONST: the data */
    bool backward;          /* built by autodiff */
};

#define MN_SCOPE_MAX 32

struct mn_graph {
    mn_params *P;
    mn__arena arena;
    mn_node **nodes;
    int n, cap;
    mn_status status;
    char msg[1024];
    char *scope;                          /* the pushed scopes joined by '.', NULL: none */
    int scope_depth;
    size_t scope_len[MN_SCOPE_MAX];       /* strlen(scope) before each push */
    uint64_t seed;
    bool building_backward;
    bool no_fold;                         /* mn_graph_set_folding(g, false); the compiler's copy never folds */
};

/* The compiler's private copy of g (graph.c): same ids; shares g's names,
 * attributes and constant data. NULL when out of memory. */
mn_graph *mn__graph_clone(const mn_graph *g);

/* A scalar or filled constant of the given shape. */
mn_node *mn__fill(mn_graph *g, mn_shape shape, float value);

/* Reverse-mode autodiff: appends backward nodes; for every node id i <=
 * y->id with wrt[i], fills grads[i] with the node holding d y / d node i
 * (NULL when y does not depend on it through differentiable ops). */
mn_status mn__autodiff(mn_graph *g, mn_node *y, const bool *wrt, mn_node **grads);

#endif
