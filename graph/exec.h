/* graph/exec.h: the compiled form of a graph: values (one per live node)
 * bound to storage, and a schedule of kernel steps reading and writing
 * those values. Shared by the compiler, the executor and DOT export. */
#ifndef MN_GRAPH_EXEC_H
#define MN_GRAPH_EXEC_H

#include "graph.h"

typedef enum {
    MN_VAL_ARENA,     /* planned: offset into the activation arena */
    MN_VAL_ALIAS,     /* same bytes as another value (reshape) */
    MN_VAL_INPUT,     /* exec-owned buffer filled by mn_exec_feed */
    MN_VAL_PARAM,     /* the store's tensor */
    MN_VAL_CONST,     /* the graph's constant data */
} mn_val_kind;

typedef struct {
    mn_node *node;
    mn_val_kind kind;
    int alias_of;         /* MN_VAL_ALIAS: value index */
    int64_t offset;       /* MN_VAL_ARENA */
    size_t bytes;
    int def, last_use;    /* step that writes it (-1: before run), last step reading it */
    mn_tensor t;          /* view bound to storage */
} mn_value;

typedef struct {
    mn_node *node;
    int out;              /* value index */
    int nin;
    int *in;              /* value indices */
    mn_tensor *tin;       /* bound input views */
} mn_step;

typedef struct { int value; int param; } mn_sink;  /* grad value -> store gradient */

struct mn_exec {
    mn_graph *g;
    int nthreads;
    mn_value *vals; int nvals;
    int *val_of;          /* node id -> value index or -1 */
    int nnodes;           /* graph size at compile time */
    mn_step *steps; int nsteps;
    mn_sink *sinks; int nsinks;
    int loss;             /* value index or -1 */
    uint64_t step;        /* runs so far: with the graph seed, keys random ops */
    unsigned char *arena;
    int64_t arena_bytes, naive_bytes, lower_bound;
    double flops;
    char msg[1024];
};

#endif
