/* graph/fuse.c: the elementwise fusion pass and the fused kernel.
 *
 * A fusible step is an f32 op whose record has a `pointwise` function. A
 * group grows backwards from a root step: a producer joins when it is
 * fusible, has the root's shape, is not read after the run (loss, output,
 * gradient sink) and every one of its readers is already in the group. So
 * only the root's value leaves the group; the others never touch memory
 * (MN_VAL_FUSED). Every member is an ancestor of the root, and no outside
 * step reads a non-root member, so no path leaves the group and comes back:
 * the group is one step without creating a cycle.
 *
 * The fused kernel walks the output in tiles of MN_FUSE_TILE elements; per
 * tile it runs the members' pointwise functions in topological order over
 * tile-sized buffers (in L1), reading the group's inputs in place (or
 * gathered, when broadcast) and writing the root's tile to the output. Each
 * element sees exactly the float operations the unfused kernels apply, so
 * results are bit-identical with or without fusion. */
#include "exec.h"
#include <stdlib.h>
#include <string.h>

#define MN_FUSE_TILE 512
#define MN_FUSE_MAX_MEMBERS 32
#define MN_FUSE_MAX_EXT 16
#define MN_FUSE_MAX_ARITY 4

typedef struct {
    const mn_op_def *op;
    const void *attrs;
    int nin;
    int src[MN_FUSE_MAX_ARITY];     /* >= 0: member's tile; < 0: group input -1 - src */
} mn_fused_member;

struct mn_fused {
    int nmem, next;
    mn_fused_member mem[MN_FUSE_MAX_MEMBERS];   /* topological order; the last is the root */
    bool bcast[MN_FUSE_MAX_EXT];                /* input smaller than the output: gathered per tile */
    int64_t st[MN_FUSE_MAX_EXT][MN_MAX_DIMS];   /* its element strides over the output's dims */
    mn_shape shape;
};

static bool fusible(const mn_exec *ex, const mn_step *st)
{
    const mn_node *n = st->node;
    if (!n->op->pointwise || (n->op->flags & MN_OPF_RANDOM) || n->desc.dtype != MN_F32) return false;
    if (ex->vals[st->out].kind != MN_VAL_ARENA || n->nin < 1 || n->nin > MN_FUSE_MAX_ARITY) return false;
    for (int k = 0; k < n->nin; k++)
        if (n->in_desc[k].dtype != MN_F32) return false;
    return true;
}

/* Gathers n elements of a broadcast input starting at flat output index i0. */
static void gather(float *dst, const float *src, const int64_t *st, mn_shape s, int64_t i0, int64_t n)
{
    int64_t idx[MN_MAX_DIMS], rem = i0, off = 0;
    int nd = s.ndim, last = nd - 1;
    for (int d = last; d >= 0; d--) { idx[d] = rem % s.d[d]; rem /= s.d[d]; off += idx[d] * st[d]; }
    while (n > 0) {
        int64_t run = s.d[last] - idx[last];
        if (run > n) run = n;
        if (st[last] == 1) memcpy(dst, src + off, (size_t)run * sizeof *dst);
        else for (int64_t k = 0; k < run; k++) dst[k] = src[off + k * st[last]];
        dst += run; n -= run;
        off += run * st[last];
        idx[last] += run;
        for (int d = last; d > 0 && idx[d] == s.d[d]; d--) {   /* carry */
            off -= idx[d] * st[d];
            idx[d] = 0;
            idx[d - 1]++;
            off += st[d - 1];
        }
    }
}

mn_status mn__fused_forward(const mn_fused *f, const mn_kernel_ctx *c)
{
    int64_t n = mn_tensor_numel(c->out), ntiles = (n + MN_FUSE_TILE - 1) / MN_FUSE_TILE;
    float *out = mn_f32(c->out);
    #pragma omp parallel for if (n > MN_GRAIN) num_threads(c->nthreads) schedule(static)
    for (int64_t t = 0; t < ntiles; t++) {
        float buf[MN_FUSE_MAX_MEMBERS][MN_FUSE_TILE] __attribute__((aligned(64)));
        float ebuf[MN_FUSE_MAX_EXT][MN_FUSE_TILE] __attribute__((aligned(64)));
        const float *ext[MN_FUSE_MAX_EXT];
        int64_t i0 = t * MN_FUSE_TILE, m = n - i0 < MN_FUSE_TILE ? n - i0 : MN_FUSE_TILE;
        for (int e = 0; e < f->next; e++) {
            const float *src = mn_f32(&c->in[e]);
            if (!f->bcast[e]) ext[e] = src + i0;
            else { gather(ebuf[e], src, f->st[e], f->shape, i0, m); ext[e] = ebuf[e]; }
        }
        for (int j = 0; j < f->nmem; j++) {
            const mn_fused_member *mb = &f->mem[j];
            const float *in[MN_FUSE_MAX_ARITY];
            for (int k = 0; k < mb->nin; k++) in[k] = mb->src[k] >= 0 ? buf[mb->src[k]] : ext[-1 - mb->src[k]];
            mb->op->pointwise(j == f->nmem - 1 ? out + i0 : buf[j], in, m, mb->attrs);
        }
    }
    return MN_OK;
}

typedef struct {
    int *uses;        /* per value: reads by steps, + 1 if read after the run */
    int *group;       /* per step: root step of its group, or -1 */
    int *owner;       /* per value: the step defining it (before compaction) */
} fuse_ctx;

/* Is every read of value v by one of the n member steps? */
static bool all_reads_in_group(const mn_exec *ex, const fuse_ctx *fc, int v, const int *mem, int n)
{
    int inside = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ex->steps[mem[i]].nin; k++) inside += ex->steps[mem[i]].in[k] == v;
    return inside == fc->uses[v];
}

/* Grows a group from root; returns its member steps in topological order. */
static int grow(const mn_exec *ex, fuse_ctx *fc, int root, int *mem)
{
    const mn_shape shape = ex->steps[root].node->desc.shape;
    int n = 1;
    mem[0] = root;
    fc->group[root] = root;
    for (bool changed = true; changed && n < MN_FUSE_MAX_MEMBERS;) {
        changed = false;
        for (int i = 0; i < n && n < MN_FUSE_MAX_MEMBERS; i++) {
            const mn_step *st = &ex->steps[mem[i]];
            for (int k = 0; k < st->nin && n < MN_FUSE_MAX_MEMBERS; k++) {
                int v = st->in[k], p = fc->owner[v];
                if (p < 0 || fc->group[p] >= 0 || !fusible(ex, &ex->steps[p])) continue;
                if (!mn_shape_eq(ex->steps[p].node->desc.shape, shape)) continue;
                if (!all_reads_in_group(ex, fc, v, mem, n)) continue;
                fc->group[p] = root;
                mem[n++] = p;
                changed = true;
            }
        }
    }
    /* members in schedule (id) order: producers before readers */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && mem[j - 1] > mem[j]; j--) { int t = mem[j]; mem[j] = mem[j - 1]; mem[j - 1] = t; }
    return n;
}

/* Turns the group's root step into the fused step; members' values become
 * MN_VAL_FUSED. Returns false (and leaves the group unfused) when the
 * group has more distinct inputs than the kernel takes. */
static bool build(mn_exec *ex, fuse_ctx *fc, const int *mem, int n)
{
    mn_fused *f = calloc(1, sizeof *f);
    int ext[MN_FUSE_MAX_EXT], next = 0;
    if (!f) return false;
    f->nmem = n;
    f->shape = ex->steps[mem[n - 1]].node->desc.shape;
    for (int j = 0; j < n; j++) {
        const mn_step *st = &ex->steps[mem[j]];
        mn_fused_member *mb = &f->mem[j];
        *mb = (mn_fused_member){ .op = st->node->op, .attrs = st->node->attrs, .nin = st->nin };
        for (int k = 0; k < st->nin; k++) {
            int v = st->in[k], p = fc->owner[v], src = -1;
            for (int i = 0; i < j && src < 0; i++) if (mem[i] == p) src = i;
            if (src >= 0) { mb->src[k] = src; continue; }
            int e = 0;
            while (e < next && ext[e] != v) e++;
            if (e == next) {
                if (next == MN_FUSE_MAX_EXT) { free(f); return false; }
                ext[next++] = v;
            }
            mb->src[k] = -1 - e;
        }
    }
    f->next = next;
    mn_step *root = &ex->steps[mem[n - 1]];
    int *in = calloc((size_t)next, sizeof *in);
    mn_tensor *tin = calloc((size_t)next, sizeof *tin);
    if (!in || !tin) { free(in); free(tin); free(f); return false; }
    root->inplace = -1;
    for (int e = 0; e < next; e++) {
        const mn_value *x = &ex->vals[ext[e]];
        in[e] = ext[e];
        f->bcast[e] = !mn_shape_eq(x->t.shape, f->shape);
        mn__bcast_strides(x->t.shape, f->shape, f->st[e]);
        /* read and written tile by tile at the same positions: a same-sized input may be overwritten */
        if (!f->bcast[e] && root->inplace < 0) root->inplace = e;
    }
    free(root->in); free(root->tin);
    root->in = in; root->tin = tin; root->nin = next;
    root->fused = f;
    for (int j = 0; j < n - 1; j++) {
        ex->vals[ex->steps[mem[j]].out].kind = MN_VAL_FUSED;
        ex->steps[mem[j]].fused_into = mem[n - 1];
    }
    return true;
}

mn_status mn__fuse(mn_exec *ex)
{
    fuse_ctx fc = { calloc((size_t)ex->nvals + 1, sizeof(int)), malloc(((size_t)ex->nsteps + 1) * sizeof(int)),
                    malloc(((size_t)ex->nvals + 1) * sizeof(int)) };
    int *mem = malloc(MN_FUSE_MAX_MEMBERS * sizeof *mem);
    mn_status s = MN_OK;
    if (!fc.uses || !fc.group || !fc.owner || !mem) { s = mn__graph_fail(ex->g, MN_ERR_NOMEM, "fuse: out of memory"); goto out; }
    for (int v = 0; v < ex->nvals; v++) { fc.owner[v] = -1; fc.uses[v] = ex->keep[v] ? 1 : 0; }
    for (int i = 0; i < ex->nsinks; i++) fc.uses[ex->sinks[i].value]++;
    for (int st = 0; st < ex->nsteps; st++) {
        fc.group[st] = -1;
        ex->steps[st].fused_into = -1;
        fc.owner[ex->steps[st].out] = st;
        for (int k = 0; k < ex->steps[st].nin; k++) fc.uses[ex->steps[st].in[k]]++;
    }
    for (int r = ex->nsteps - 1; r >= 0; r--) {
        if (fc.group[r] >= 0 || !fusible(ex, &ex->steps[r])) continue;
        int n = grow(ex, &fc, r, mem);
        if (n < 2 || !build(ex, &fc, mem, n)) {
            for (int j = 0; j < n; j++) fc.group[mem[j]] = -1;
            continue;
        }
        ex->fused_groups++;
        ex->fused_nodes += n;
    }
    /* drop the absorbed steps; values keep pointing at their defining step */
    int w = 0;
    for (int st = 0; st < ex->nsteps; st++) {
        if (ex->steps[st].fused_into >= 0) { free(ex->steps[st].in); free(ex->steps[st].tin); continue; }
        ex->steps[w++] = ex->steps[st];
    }
    ex->nsteps = w;
    for (int v = 0; v < ex->nvals; v++) ex->vals[v].def = -1;
    for (int st = 0; st < ex->nsteps; st++) ex->vals[ex->steps[st].out].def = st;
out:
    free(fc.uses); free(fc.group); free(fc.owner); free(mem);
    return s;
}

void mn__fused_free(mn_fused *f) { free(f); }
