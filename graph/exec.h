/* graph/exec.h: the compiled representation: values (one per live node)
 * bound to storage, and a schedule of kernel steps reading and writing
 * those values. The passes of compile.c's table fill it in order (each
 * field's comment names the pass that writes it; later passes only read
 * it, except where a comment says otherwise); run.c, profile.c and dot.c read it. */
#ifndef MN_GRAPH_EXEC_H
#define MN_GRAPH_EXEC_H

#include "graph.h"
#include "../ops/gemm.h"

typedef enum {
    MN_VAL_ARENA,     /* planned: offset into the activation arena */
    MN_VAL_ALIAS,     /* same bytes as another value (reshape) */
    MN_VAL_INPUT,     /* exec-owned buffer filled by mn_exec_feed */
    MN_VAL_PARAM,     /* the store's tensor */
    MN_VAL_CONST,     /* the graph's constant data */
    MN_VAL_FUSED,     /* computed inside a fused step's tiles: no storage, no data */
    MN_VAL_GRAD,      /* a parameter gradient its step adds straight into the store's gradient */
} mn_val_kind;

typedef struct mn_fused mn_fused;   /* fuse.c: a fused step's program */

typedef struct {
    mn_node *node;
    mn_val_kind base;     /* cse: what the node is (INPUT, PARAM, CONST; ARENA for an op's output, ALIAS for a view op).
                             The kind later passes' decisions give it is mn__kind(): read that, never this */
    int alias_of;         /* cse: base ALIAS: value index */
    int64_t alias_off;    /* cse: base ALIAS: byte offset into alias_of's bytes */
    size_t bytes;         /* cse */
    int def;              /* step that writes it (-1: before the run); re-derived by mn__set_defs whenever steps move */
    int fused_root;       /* fuse: member of a fused group: the value of its root (DOT clusters), else -1 */
    bool in_tile;         /* fuse: computed inside a fused step's tiles: no storage, no data (MN_VAL_FUSED) */
    bool direct;          /* direct: a parameter gradient its step adds straight into the store (MN_VAL_GRAD) */
    int grad_param;       /* direct: ... the parameter whose gradient it is */
    /* plan: */
    int group;            /* the value whose bytes it shares (itself, or its alias root) */
    int storage;          /* arena storage index, -1 outside the arena */
    int into;             /* written straight into this value's bytes (a concat piece), or -1 */
    int64_t sub_off;      /* ... at this byte offset */
    bool host;            /* concat pieces are written into it */
    bool made_view;       /* a concat the planner turned into a view of a host (MN_VAL_ALIAS) */
    int view_of;          /* ... the host's value */
    int64_t view_off;     /* ... at this byte offset */
    bool scatter;         /* a strided concat piece its fused step scatters */
    int64_t scatter_st[MN_MAX_DIMS];  /* ... with these element strides over its own shape */
    mn_tensor t;          /* view bound to storage */
} mn_value;

/* The steps array: built by cse, compacted and re-sorted by fuse (a fused
 * root's in/nin become the group's inputs), sorted by level by schedule. */
typedef struct {
    mn_node *node;        /* cse */
    int out;              /* cse: value index */
    int nin;              /* cse (fuse: a fused root's) */
    int *in;              /* cse (fuse: a fused root's): value indices */
    mn_tensor *tin;       /* plan: bound input views */
    int level;            /* schedule: steps of one level have no dependency between them */
    bool big;             /* schedule: a big step (cost), see level_split */
    bool solo;            /* schedule: runs alone with every thread (else one thread, beside the level's other such steps) */
    bool caller;          /* schedule: not solo, but its level's one-thread steps are too small to fork for: one thread, in order, on the calling thread */
    double flops;         /* schedule: the registry's cost estimate for one run */
    int work;             /* plan: workspace storage index, -1 if none */
    size_t work_bytes;    /* plan */
    mn__op_state *state;  /* plan (bind): the op's state for this step (ops/dnnl_mm.c), or NULL; owned */
    mn_fused *fused;      /* fuse: non-NULL: runs a fused elementwise group (in = the group's inputs) */
    int nxout, *xout;     /* fuse: a fused step's extra outputs (values read outside the group) */
    int fused_into;       /* fuse: during fusion, the root step absorbing this one, or -1 */
    bool accumulate;      /* direct: adds into its output (an MN_VAL_GRAD value) */
    bool clone;           /* recompute: a copy of a forward step run again in the backward pass (shares node and fused program;
                             mirror.c's: one node of it, unfused) */
    int *ctrl, nctrl;     /* recompute (split.c, mirror.c): values whose producing steps must run at an earlier level (no data read) */
} mn_step;

/* A value's kind as the passes' decisions leave it: fuse's in_tile, then
 * direct's gradients, then the planner's views, else what cse found. */
static inline mn_val_kind mn__kind(const mn_value *x)
{
    if (x->in_tile) return MN_VAL_FUSED;
    if (x->direct) return MN_VAL_GRAD;
    if (x->made_view) return MN_VAL_ALIAS;
    return x->base;
}

/* An MN_VAL_ALIAS value's source value and byte offset into it. */
static inline int mn__alias_src(const mn_value *x, int64_t *off)
{
    *off = x->made_view ? x->view_off : x->alias_off;
    return x->made_view ? x->view_of : x->alias_of;
}

/* The input slot whose bytes a step's output may reuse, or -1: the op's
 * declared pair, a fused program's choice, none for a step adding into the store. */
int mn__step_inplace(const mn_step *st);

/* A block of the arena: one value, or several that share bytes in place
 * or by aliasing. Live over levels [start, end] (inclusive). */
typedef struct {
    int64_t offset, bytes;
    int start, end;
} mn_storage;

/* A parameter gradient: added into the store's gradient at the end of the
 * level that computes it, so its arena bytes free up right away; or, when
 * direct, added by its own step (MN_VAL_GRAD). */
typedef struct { int value; int param; int level; bool direct; int param_slot; } mn_sink;

/* run.c: where a gradient's values before the run are kept (float offset
 * into mn_exec.backup) and whether this run saved them yet. */
typedef struct { size_t offset; bool saved; } mn__backup;

#define MN_MAX_STATS 64   /* named pass counters per executable */

struct mn_exec {
    /* set up by compile.c before the passes */
    mn_graph *g;          /* the compiler's copy of the user's graph, extended by autodiff (owned) */
    mn_graph *user;       /* the caller's graph: never changed by compiling */
    int nuser;            /* its node count at compile: node ids below it are the same in both */
    mn_compile_opts opts; /* the caller's options (outputs only valid during compile) */
    mn_node *loss_node;   /* the caller's loss node, or NULL */
    bool anomaly;         /* opts.detect_anomaly: stop a run at the first non-finite output */
    /* autodiff pass: roots (loss, outputs, gradients) and sinks; dce pass: live nodes (freed after compile) */
    mn_node **roots; int nroots, nkeep;
    /* autodiff pass: the frozen flags it differentiated against, per parameter
       index (NULL: no backward), and the store's freeze generation then */
    unsigned char *frozen_at; int nfrozen_at;
    uint64_t freeze_gen;
    bool *live;
    /* counters by name (mn__stat) and each pass's time */
    struct { const char *name; double value; } stats[MN_MAX_STATS];
    int nstats;
    double pass_ms[16];
    /* run.c: the store's gradients before the current run (restored if it fails) */
    float *backup; size_t backup_floats;
    mn__backup *bak; int nbak;
    int nthreads;
    mn_value *vals; int nvals;
    int *val_of;          /* node id -> value index or -1 */
    int nnodes;           /* graph size at compile time */
    mn_step *steps; int nsteps;
    mn_sink *sinks; int nsinks;
    int loss;             /* value index or -1 */
    uint64_t step;        /* runs so far: with the graph seed, keys random ops */
    int nlevels;
    int *level_start;     /* steps of level L: [level_start[L], level_start[L + 1]) */
    bool *level_split;    /* level L's big steps run side by side, threads split between them */
    int *team_end;        /* run.c: levels [L, team_end[L]) run in one OpenMP region (a chain), 0 when L starts none */
    bool *team_free;      /* run.c: in a chain, level L needs no barrier after it (no thread reads or writes bytes another
                             thread touched since the last barrier) */
    mn__span *win;        /* window.c: prefetch windows, step S's part T's [win_at[S W + T], win_at[S W + T + 1]) */
    int *win_at;
    int win_parts;        /* W: 1 on one thread, else nthreads (windows only in chains, one per thread's part) */
    bool serial;
    bool tiny;            /* schedule: forward-only and too small to share: nthreads and blas_threads are 1 */
    bool *keep;           /* per value: read after the run (loss, gradients, outputs) */
    mn_storage *stores; int nstores;
    mn__op_states *op_states;   /* plan: what the steps' op states share (ops/op.h), made on first need; owned */
    int inplace_count, placed_count;
    unsigned char *arena;
    int64_t arena_bytes, naive_bytes, lower_bound;
    double flops;
    bool fuse;            /* run the fusion pass (default; off with mn_compile_opts.no_fuse) */
    bool bind;            /* mn_compile_opts.bind_threads */
    int blas_threads;     /* OpenBLAS's team size during a run */
    int fused_groups, fused_nodes;
    int cse_count;        /* op nodes that reuse an identical node's value */
    int direct_grads;     /* parameter gradients added by their own step (no arena bytes, no extra pass) */
    int recomputed_values, recompute_steps;   /* recompute: values dropped and rebuilt, clone steps */
    double recompute_flops;                   /* recompute: the clones' FLOPs per run */
    int recompute_candidates, recompute_probes;   /* recompute: segment counts estimated; full plans (the plain one too) */
    bool probe;           /* recompute: schedule and plan for a size only (no arena is bound) */
    signed char *pin_solo;/* recompute: per node id, the solo decision of the plan without recomputation (-1: none),
                             so each kernel keeps its thread count and its bits (a GEMM's depend on it) */
    /* profiling (mn_exec_set_profiling): seconds per step, per level, runs */
    double *prof_step, *prof_level, prof_sinks, prof_wall;
    int prof_runs;
    /* mn_exec_set_level_hook: called after each level's gradient sinks (run.c) */
    mn_level_fn level_hook; void *level_ctx;
    char msg[1024];
};

/* cse.c: a node's value before any pass decides (kind, alias, bytes). */
mn_value mn__value_for(mn_node *n);
/* The passes (compile.c's table), one file each. */
mn_status mn__pass_autodiff(mn_exec *ex);   /* autodiff.c */
mn_status mn__pass_dce(mn_exec *ex);        /* dce.c */
mn_status mn__pass_cse(mn_exec *ex);        /* cse.c */
mn_status mn__pass_direct(mn_exec *ex);     /* direct.c */
mn_status mn__pass_recompute(mn_exec *ex);  /* recompute.c */
/* split.c: room for `extra` more values (vals, keep) and nodes (val_of); false when out of memory. */
bool mn__exec_grow(mn_exec *ex, int extra);
/* split.c: values computed row by row and read by row views, computed per view (recompute.c applies it); *n split. */
mn_status mn__split_rows(mn_exec *ex, int *n);
/* blocks.c: seg[s] for each step (-1 backward) cutting the forward steps at
 * the graph's narrow points (every stride-th, counted down from the last but
 * `tail`: the steps after it form the final segment); returns the segment
 * count, 0 with no cut, -1 out of memory. */
int mn__block_segments(const mn_exec *ex, int stride, int tail, int *seg);
/* mirror.c: cheap forward values the backward pass reads are computed again
 * from kept ones before their first backward reader, by at most
 * MN_MIRROR_CHAIN new steps and values per backward input; returns how many, -1 out of memory. */
#define MN_MIRROR_CHAIN 4
int mn__mirror(mn_exec *ex);
/* fuse.c: re-sorts the steps topologically over inputs and ctrl edges,
 * smallest position first; MN_ERR_INVALID if they form a cycle. */
mn_status mn__topo_order(mn_exec *ex);
/* schedule.c: the registry's cost estimate of a node's op (FLOPs per run). */
double mn__step_flops(const mn_node *n);
/* autodiff.c: MN_ERR_MISUSE naming a parameter whose frozen flag changed
 * since ex was compiled (mn_params_freeze): ex would compute the wrong
 * gradients. Cheap unless the store's freeze generation moved. */
mn_status mn__exec_check_frozen(mn_exec *ex);
/* run.c: allocates the gradient backup (after the passes). */
mn_status mn__run_prepare(mn_exec *ex);
/* window.c: each step with a window kernel (ops/gemm.h) gets the spans the
 * next level reads and writes, less its own (ex->win, ex->win_at); on
 * several threads, in chains, per part: what the same thread's part of the
 * next level touches. After run.c's chains. */
#define MN_SPANS_MAX 64
mn_status mn__find_windows(mn_exec *ex);
/* run.c: the spans of step st's part t of n as a chain runs it, or -1. */
int mn__chain_part_spans(mn_exec *ex, const mn_step *st, int t, int n, mn__span *sp, int max);
/* Records a named counter of the running pass ("<pass>.<counter>"). */
void mn__stat(mn_exec *ex, const char *name, double value);

/* fuse.c: groups chains of pointwise ops into single steps (before scheduling). */
#define MN_FUSE_MAX_MEMBERS 32    /* op nodes in one fused step (so at most 31 extra outputs) */
mn_status mn__fuse(mn_exec *ex);
/* fuse.c: fuses a chain of pointwise steps made after the pass (split.c). */
bool mn__fuse_chain(mn_exec *ex, const int *mem, int n);
/* fuse.c: products take the [N] bias adds after them into their epilogue
 * (the pass's first step; again after split.c). The adds absorbed, or -1. */
int mn__bias_epilogues(mn_exec *ex);
/* copies.c: a copy of a pointwise value for each further concat placing
 * it (the fusion pass's first step), so that every concat can hold it. */
mn_status mn__piece_copies(mn_exec *ex);
/* Runs a fused step: xout[k] is extra output k's data; scat[slot] (slot 0
 * the root, 1 + k extra output k) is NULL or the element strides the
 * planner chose to scatter that output into a concat's bytes; nxout
 * extra outputs. */
mn_status mn__fused_forward(const mn_fused *f, const mn_kernel_ctx *c, float *const *xout, const int64_t *const *scat, int nxout);
/* Part `part` of `nparts` of it, called by every thread of a team (nparts 0: the whole step). */
mn_status mn__fused_forward_part(const mn_fused *f, const mn_kernel_ctx *c, float *const *xout, const int64_t *const *scat,
                                 int nxout, int part, int nparts);
/* The bytes that part reads and writes (mn__spans_fn's contract, ops/gemm.h). */
int mn__fused_part_spans(const mn_fused *f, const mn_kernel_ctx *c, float *const *xout, const int64_t *const *scat,
                         int nxout, int part, int nparts, mn__span *sp, int max);
/* How many of a fused step's inputs and outputs its tiles copy (gathered
 * or scattered) rather than read or write in place, for these scatters. */
int mn__fused_copies(const mn_fused *f, const int64_t *const *scat, int nxout);
/* The group input whose bytes the fused output may overwrite, or -1. */
int mn__fused_inplace(const mn_fused *f);
void mn__set_defs(mn_exec *ex);
/* Reads of each value: by steps, by gradient sinks, and 1 if read after the run. */
void mn__count_reads(const mn_exec *ex, int *n);
/* Is value v, through views, an input, parameter or constant (outside the arena whatever the plan)? */
bool mn__outside_arena(const mn_exec *ex, int v);
void mn__fused_free(mn_fused *f);
/* The bytes of one fused step's program (compile.c counts the tables). */
size_t mn__fused_bytes(void);
/* schedule.c: levels (ASAP), steps sorted by level, big/small steps. */
mn_status mn__schedule(mn_exec *ex);
/* plan.c: lifetimes over levels, in-place reuse, offsets, binding. */
mn_status mn__plan(mn_exec *ex);
mn_status mn__plan_estimate(mn_exec *ex, int64_t *estimate);
/* verify.c: checks that no two values sharing bytes can be live at once. */
mn_status mn__plan_verify(const mn_exec *ex, char *msg, size_t n);
/* plan.c: the level a value is produced at (-1: before the run), and the
 * outermost concat host holding v with v's byte offset in it. */
int mn__value_level(const mn_exec *ex, int v);
int mn__top_host(const mn_exec *ex, int v, int64_t *off);

#endif
