/* graph/fuse.c: the elementwise fusion pass and the fused kernel.
 *
 * A fusible step is an f32 op whose record has a `pointwise` function. A
 * group grows backwards from a root step: a producer joins when it is
 * fusible and has the root's shape. If every reader of its value is in the
 * group (and it is not read after the run), the value never touches memory
 * (MN_VAL_FUSED); otherwise it is an extra output of the fused step, written
 * tile by tile like the root (an LSTM's gate activations, kept for the
 * backward pass, are computed in the same kernel as the cell update). Every
 * member is an ancestor of the root; a producer whose value escapes joins
 * only if no step reading it from outside leads back into the group, and
 * nothing those readers lead to may join later, so the group is one step
 * without creating a cycle.
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
#define MN_FUSE_MAX_EXT 16
#define MN_FUSE_MAX_ARITY 4

typedef struct {
    const mn_op_def *op;
    const void *attrs;
    int nin;
    int src[MN_FUSE_MAX_ARITY];     /* >= 0: member's tile; < 0: group input -1 - src */
    int dst;                        /* -1: a tile buffer; -2: the root's output; k >= 0: extra output k */
} mn_fused_member;

struct mn_fused {
    int nmem, next;
    mn_fused_member mem[MN_FUSE_MAX_MEMBERS];   /* topological order; the last is the root */
    bool bcast[MN_FUSE_MAX_EXT];                /* broadcast or a strided view: gathered per tile */
    int64_t base[MN_FUSE_MAX_EXT];              /* element offset of a view */
    int64_t st[MN_FUSE_MAX_EXT][MN_MAX_DIMS];   /* element strides over the output's dims */
    mn_shape shape;
    int inplace;                                /* group input the output may overwrite, or -1 */
};

int mn__fused_inplace(const mn_fused *f) { return f->inplace; }

/* Copies n elements between a flat tile and a strided tensor (element
 * strides st over shape s), starting at flat index i0 of s: to the tile
 * (gather: a broadcast or viewed input) or from it (scatter: an output
 * placed in a concat). Runs along the last dim are one memcpy when dense. */
static void strided_copy(float *tile, float *strided, const int64_t *st, mn_shape s, int64_t i0, int64_t n, bool to_tile)
{
    int64_t idx[MN_MAX_DIMS], rem = i0, off = 0;
    int last = s.ndim - 1;
    if (s.ndim == 0) { if (to_tile) tile[0] = strided[0]; else strided[0] = tile[0]; return; }
    for (int d = last; d >= 0; d--) { idx[d] = rem % s.d[d]; rem /= s.d[d]; off += idx[d] * st[d]; }
    while (n > 0) {
        int64_t run = s.d[last] - idx[last];
        if (run > n) run = n;
        if (st[last] == 1) {
            if (to_tile) memcpy(tile, strided + off, (size_t)run * sizeof *tile);
            else memcpy(strided + off, tile, (size_t)run * sizeof *tile);
        } else
            for (int64_t k = 0; k < run; k++) {
                if (to_tile) tile[k] = strided[off + k * st[last]];
                else strided[off + k * st[last]] = tile[k];
            }
        tile += run; n -= run;
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

static bool fusible(const mn_exec *ex, const mn_step *st)
{
    const mn_node *n = st->node;
    if (!n->op->traits.pointwise || (n->op->flags & MN_OPF_RANDOM) || n->desc.dtype != MN_F32) return false;
    if (mn__kind(&ex->vals[st->out]) != MN_VAL_ARENA || n->nin < 1 || n->nin > MN_FUSE_MAX_ARITY) return false;
    for (int k = 0; k < n->nin; k++)
        if (n->in_desc[k].dtype != MN_F32) return false;
    return true;
}

/* Where row r (of the output shape s without its last dim), column c0
 * lies in a tensor with element strides st over s. */
static int64_t row_offset(const int64_t *st, mn_shape s, int64_t r, int64_t c0)
{
    int64_t off = c0 * st[s.ndim - 1];
    if (s.ndim == 2) return off + r * st[0];
    for (int d = s.ndim - 2; d >= 0; d--) {
        off += (r % s.d[d]) * st[d];
        r /= s.d[d];
    }
    return off;
}

/* Tiles that stay inside one row of the last dim let the kernel read a
 * view whose rows are dense (a gate's slice of a [B, 4H] product, a bias)
 * and write an output placed in a concat through pointers, with no copy:
 * chosen when some input or output is such a strided tensor and rows hold
 * at least MN_FUSE_ROW_MIN elements (shorter rows: flat tiles, copied). */
#define MN_FUSE_ROW_MIN 64

static bool dense_rows(const int64_t *st, mn_shape s) { return s.ndim > 0 && st && st[s.ndim - 1] == 1; }

static bool row_tiles(const mn_fused *f, const int64_t *const *scat, int nxout)
{
    if (f->shape.ndim == 0 || f->shape.d[f->shape.ndim - 1] < MN_FUSE_ROW_MIN) return false;
    for (int e = 0; e < f->next; e++)
        if (f->bcast[e] && dense_rows(f->st[e], f->shape)) return true;
    for (int k = 0; k <= nxout; k++)
        if (dense_rows(scat[k], f->shape)) return true;
    return false;
}

/* One tile: m elements from column c0 of row r (flat index i0; in flat
 * mode r = 0 and c0 = i0): the members' pointwise functions in order. In
 * row mode the tile lies inside one row, so dense-row views are read and
 * dense-row scatters written in place. */
static void fused_tile(const mn_fused *f, const mn_kernel_ctx *c, float *const *xout, const int64_t *const *scat,
                       int64_t r, int64_t c0, int64_t m, bool rows)
{
    int64_t i0 = rows ? r * f->shape.d[f->shape.ndim - 1] + c0 : c0;
    float buf[MN_FUSE_MAX_MEMBERS][MN_FUSE_TILE] __attribute__((aligned(64)));
    float ebuf[MN_FUSE_MAX_EXT][MN_FUSE_TILE] __attribute__((aligned(64)));
    const float *ext[MN_FUSE_MAX_EXT], *val[MN_FUSE_MAX_MEMBERS];
    float *out = mn_f32(c->out);
    for (int e = 0; e < f->next; e++) {
        const float *src = mn_f32(&c->in[e]);
        if (!f->bcast[e]) ext[e] = src + i0;
        else if (rows && dense_rows(f->st[e], f->shape)) ext[e] = src + f->base[e] + row_offset(f->st[e], f->shape, r, c0);
        else {                                   /* read only: to_tile never writes the source */
            strided_copy(ebuf[e], (float *)src + f->base[e], f->st[e], f->shape, i0, m, true);
            ext[e] = ebuf[e];
        }
    }
    for (int j = 0; j < f->nmem; j++) {
        const mn_fused_member *mb = &f->mem[j];
        const float *in[MN_FUSE_MAX_ARITY];
        for (int k = 0; k < mb->nin; k++) in[k] = mb->src[k] >= 0 ? val[mb->src[k]] : ext[-1 - mb->src[k]];
        int slot = mb->dst == -2 ? 0 : mb->dst >= 0 ? 1 + mb->dst : -1;
        const int64_t *sst = slot >= 0 ? scat[slot] : NULL;
        float *host = slot == 0 ? out : slot > 0 ? xout[mb->dst] : NULL;
        float *dst = slot < 0 ? buf[j] : !sst ? host + i0 : rows && dense_rows(sst, f->shape) ? host + row_offset(sst, f->shape, r, c0) : buf[j];
        mb->op->traits.pointwise(dst, in, m, mb->attrs);
        if (sst && dst == buf[j]) strided_copy(dst, host, sst, f->shape, i0, m, false);
        val[j] = dst;
    }
}

int mn__fused_copies(const mn_fused *f, const int64_t *const *scat, int nxout)
{
    bool rows = row_tiles(f, scat, nxout);
    int n = 0;
    for (int e = 0; e < f->next; e++) n += f->bcast[e] && !(rows && dense_rows(f->st[e], f->shape));
    for (int k = 0; k <= nxout; k++) n += scat[k] && !(rows && dense_rows(scat[k], f->shape));
    return n;
}

/* Tiles [t0, t1) of a fused step (row mode: `per` tiles a row of len). */
static void fused_tiles(const mn_fused *f, const mn_kernel_ctx *c, float *const *xout, const int64_t *const *scat,
                        bool rows, int64_t len, int64_t per, int64_t t0, int64_t t1)
{
    for (int64_t t = t0; t < t1; t++) {
        int64_t c0 = t % per * MN_FUSE_TILE;
        fused_tile(f, c, xout, scat, t / per, c0, len - c0 < MN_FUSE_TILE ? len - c0 : MN_FUSE_TILE, rows);
    }
}

/* How a fused step is tiled: row mode, tiles of a row (per), tiles in all
 * (ntiles), and whether its threads share them (else one computes all). */
typedef struct { bool rows, shared; int64_t n, len, per, ntiles; } tiling;

static tiling tiling_of(const mn_fused *f, const mn_kernel_ctx *c, const int64_t *const *scat, int nxout)
{
    tiling g = { .rows = row_tiles(f, scat, nxout), .n = mn_tensor_numel(c->out) };
    g.len = g.rows ? f->shape.d[f->shape.ndim - 1] : g.n;          /* a tile never crosses a multiple of len */
    g.per = (g.len + MN_FUSE_TILE - 1) / MN_FUSE_TILE;
    g.ntiles = g.len ? g.n / g.len * g.per : 0;
    /* Every member is a pass over the tile: the work is n times the members. */
    g.shared = c->nthreads > 1 && g.n * f->nmem > MN_GRAIN && g.ntiles > 1;
    return g;
}

/* Part `part` of `nparts`'s tiles [*t0, *t1): a static split, or part 0
 * all. In a chain's team (nparts > 1, graph/run.c) a step too small to
 * share on its own is cut too: the team's threads run anyway, and each
 * then reads the rows it wrote the level before, so the barrier between
 * can go (a vanilla RNN's [32, 256] cell after its product). */
static void part_tiles(const tiling *g, int part, int nparts, int64_t *t0, int64_t *t1)
{
    bool split = g->shared || (nparts > 1 && g->ntiles > 1);
    *t0 = split ? g->ntiles * part / nparts : part ? g->ntiles : 0;
    *t1 = split ? g->ntiles * (part + 1) / nparts : g->ntiles;
}

/* Part `part` of `nparts` (nparts 0: the whole step, its own threads): the
 * tiles a static split gives that thread, as one thread of a team the
 * executor keeps across levels (graph/run.c); a step too small to share
 * is computed whole by part 0. Tiles are independent: same bits. */
mn_status mn__fused_forward_part(const mn_fused *f, const mn_kernel_ctx *c, float *const *xout, const int64_t *const *scat,
                                 int nxout, int part, int nparts)
{
    tiling g = tiling_of(f, c, scat, nxout);
    int64_t t0, t1;
    if (nparts > 0) {
        part_tiles(&g, part, nparts, &t0, &t1);
        fused_tiles(f, c, xout, scat, g.rows, g.len, g.per, t0, t1);
        return MN_OK;
    }
    if (mn__serial(c->nthreads, g.shared)) {
        fused_tiles(f, c, xout, scat, g.rows, g.len, g.per, 0, g.ntiles);
        return MN_OK;
    }
    #pragma omp parallel num_threads(c->nthreads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        fused_tiles(f, c, xout, scat, g.rows, g.len, g.per, g.ntiles * t / nt, g.ntiles * (t + 1) / nt);
    }
    return MN_OK;
}

/* The flat index of tile t's first element (n past the last tile). */
static int64_t tile_start(const tiling *g, int64_t t)
{
    int64_t i = t / g->per * g->len + t % g->per * MN_FUSE_TILE;
    return i < g->n ? i : g->n;
}

/* The bytes of a tensor with element strides st over shape s (from data +
 * base floats) that flat indices [e0, e1) of s reach: a bound over the
 * dims where the first and last index differ, any stride sign. */
static mn__span strided_span(const float *data, int64_t base, const int64_t *st, mn_shape s, int64_t e0, int64_t e1, bool write)
{
    int64_t i0[MN_MAX_DIMS], i1[MN_MAX_DIMS], r0 = e0, r1 = e1 - 1, lo = base, hi = base;
    for (int d = s.ndim - 1; d >= 0; d--) { i0[d] = r0 % s.d[d]; r0 /= s.d[d]; i1[d] = r1 % s.d[d]; r1 /= s.d[d]; }
    bool apart = false;
    for (int d = 0; d < s.ndim; d++) {
        int64_t a = apart ? 0 : i0[d] * st[d], b = apart ? (s.d[d] - 1) * st[d] : i1[d] * st[d];
        lo += a < b ? a : b;
        hi += a < b ? b : a;
        apart |= i0[d] != i1[d];
    }
    uintptr_t at = (uintptr_t)data;
    return (mn__span){ at + (uintptr_t)(lo * (int64_t)sizeof(float)), at + (uintptr_t)((hi + 1) * (int64_t)sizeof(float)), write };
}

/* Output slot k (0 the root, 1 + j extra output j) of flat indices [e0, e1). */
static mn__span out_span(const mn_fused *f, float *host, const int64_t *sst, int64_t e0, int64_t e1)
{
    if (!sst) return (mn__span){ (uintptr_t)(host + e0), (uintptr_t)(host + e1), true };
    return strided_span(host, 0, sst, f->shape, e0, e1, true);
}

/* The bytes part `part` of `nparts` of a fused step reads and writes (as
 * mn__part_spans says for an op's part kernel): its tiles' flat indices
 * through each input's and output's strides. */
int mn__fused_part_spans(const mn_fused *f, const mn_kernel_ctx *c, float *const *xout, const int64_t *const *scat,
                         int nxout, int part, int nparts, mn__span *sp, int max)
{
    tiling g = tiling_of(f, c, scat, nxout);
    int64_t t0, t1, n = 0;
    if (g.ntiles == 0) return 0;
    part_tiles(&g, part, nparts, &t0, &t1);
    int64_t e0 = tile_start(&g, t0), e1 = tile_start(&g, t1);
    if (e0 >= e1) return 0;
    if (f->next + nxout + 1 > max) return -1;
    for (int e = 0; e < f->next; e++) {
        const float *src = mn_f32(&c->in[e]);
        sp[n++] = !f->bcast[e] ? (mn__span){ (uintptr_t)(src + e0), (uintptr_t)(src + e1), false }
                               : strided_span(src, f->base[e], f->st[e], f->shape, e0, e1, false);
    }
    sp[n++] = out_span(f, mn_f32(c->out), scat[0], e0, e1);
    for (int k = 0; k < nxout; k++) sp[n++] = out_span(f, xout[k], scat[1 + k], e0, e1);
    return (int)n;
}

mn_status mn__fused_forward(const mn_fused *f, const mn_kernel_ctx *c, float *const *xout, const int64_t *const *scat, int nxout)
{
    return mn__fused_forward_part(f, c, xout, scat, nxout, 0, 0);
}

typedef struct {
    int *uses;        /* per value: reads by steps, + 1 if read after the run */
    int *group;       /* per step: root step of its group, or -1 (values' def is their step until compaction) */
    int *rstart, *rlist;  /* per value: the steps reading it (CSR) */
    int *mark, stamp;     /* per step: reached from an escaping member's outside reader */
    int *visit, vstamp;   /* per step: seen by the current search */
    int *from;            /* per step: the step the current search reached it from (-1: a reader of the value) */
    int *leads;           /* per step: == stamp: known to lead into the current group (a failed search's path) */
    int *stack, *seen;
    int *gstart, *gcount, *gpool, npool;  /* per root step: its group's members in gpool */
} fuse_ctx;

/* How many reads of value v the n member steps make. */
static int reads_in_group(const mn_exec *ex, int v, const int *mem, int n)
{
    int inside = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ex->steps[mem[i]].nin; k++) inside += ex->steps[mem[i]].in[k] == v;
    return inside;
}

static void visit(fuse_ctx *fc, int r, int from, int *sp, int *nseen)
{
    fc->visit[r] = fc->vstamp;
    fc->from[r] = from;
    fc->seen[(*nseen)++] = fc->stack[(*sp)++] = r;
}

/* A search reached root's group from step s: s and the steps it was
 * reached through lead into the group, for as long as the group grows
 * (members are only added), so a later search reaching one of them fails
 * at once, with the answer the whole search would give. */
static bool leads_in(fuse_ctx *fc, int s)
{
    for (int x = s; x >= 0 && fc->leads[x] != fc->stamp; x = fc->from[x]) fc->leads[x] = fc->stamp;
    return false;
}

/* Explores every step reachable from the outside readers of v (no bound by
 * position: a fused group may hold steps on both sides of root). A step of
 * an already fused group stands for the whole group (all its outputs come
 * after all its inputs), so reaching one reaches all its
 * members. If that reaches a member of root's group, returns false and
 * changes nothing; else adds what it reached to the set that may not join
 * (marked with the group's stamp; a marked step's descendants are all
 * marked, so the search need not enter it again). */
static bool reach_outside(const mn_exec *ex, fuse_ctx *fc, int v, int root)
{
    int sp = 0, nseen = 0;
    fc->vstamp++;
    for (int i = fc->rstart[v]; i < fc->rstart[v + 1]; i++) {
        int r = fc->rlist[i];
        if (fc->group[r] == root || fc->mark[r] == fc->stamp || fc->visit[r] == fc->vstamp) continue;
        if (fc->leads[r] == fc->stamp) return false;
        visit(fc, r, -1, &sp, &nseen);
    }
    while (sp > 0) {
        int s = fc->stack[--sp], g = fc->group[s];
        if (g >= 0 && g != root)                      /* the rest of that fused group */
            for (int i = 0; i < fc->gcount[g]; i++) {
                int m = fc->gpool[fc->gstart[g] + i];
                if (fc->visit[m] == fc->vstamp || fc->mark[m] == fc->stamp) continue;
                if (fc->leads[m] == fc->stamp) return leads_in(fc, s);
                visit(fc, m, s, &sp, &nseen);
            }
        int o = ex->steps[s].out;
        for (int i = fc->rstart[o]; i < fc->rstart[o + 1]; i++) {
            int r = fc->rlist[i];
            if (fc->mark[r] == fc->stamp || fc->visit[r] == fc->vstamp) continue;
            if (fc->group[r] == root || fc->leads[r] == fc->stamp) return leads_in(fc, s);
            visit(fc, r, s, &sp, &nseen);
        }
    }
    for (int i = 0; i < nseen; i++) fc->mark[fc->seen[i]] = fc->stamp;
    return true;
}

/* How many distinct values the n member steps read from outside. */
static int outside_inputs(const mn_exec *ex, const fuse_ctx *fc, const int *mem, int n, int root)
{
    int vals[MN_FUSE_MAX_MEMBERS * MN_FUSE_MAX_ARITY], nv = 0;
    for (int i = 0; i < n; i++) {
        const mn_step *st = &ex->steps[mem[i]];
        for (int k = 0; k < st->nin; k++) {
            int v = st->in[k], p = ex->vals[v].def, j = 0;
            if (p >= 0 && fc->group[p] == root) continue;
            while (j < nv && vals[j] != v) j++;
            if (j == nv) vals[nv++] = v;
        }
    }
    return nv;
}

/* May reader q of a member join the group as one more output? It must be
 * fusible with the group's shape, and its inputs from outside must not
 * depend on the group: their steps are not marked (every step reachable
 * from the group's escaping values is, see reach_outside). Then nothing
 * reading q may lead back into the group, and the kernel must still take
 * all the inputs. */
static bool reader_joins(const mn_exec *ex, fuse_ctx *fc, int root, int q, const int *mem, int n)
{
    const mn_step *st = &ex->steps[q];
    if (fc->group[q] >= 0 || st->nctrl > 0 || !fusible(ex, st)) return false;
    if (!mn_shape_eq(st->node->desc.shape, ex->steps[root].node->desc.shape)) return false;
    for (int k = 0; k < st->nin; k++) {
        int p = ex->vals[st->in[k]].def;
        if (p >= 0 && fc->group[p] != root && fc->mark[p] == fc->stamp) return false;
    }
    fc->group[q] = root;
    int nmem = n + 1, all[MN_FUSE_MAX_MEMBERS + 1];
    memcpy(all, mem, (size_t)n * sizeof *all);
    all[n] = q;
    if (outside_inputs(ex, fc, all, nmem, root) > MN_FUSE_MAX_EXT || !reach_outside(ex, fc, st->out, root)) {
        fc->group[q] = -1;
        return false;
    }
    return true;
}

/* Sibling fusion: after the group has grown backwards from its root, the
 * readers of its members' values join it as further outputs when they
 * qualify (reader_joins) -- an LSTM's backward cell is then one step
 * writing all four gate gradients, not four. The root's own readers are
 * marked first. (Readers of the values the group reads from outside are
 * left alone: joining those changed which projections the recompute pass
 * can split.) */
static int absorb_readers(const mn_exec *ex, fuse_ctx *fc, int root, int *mem, int n)
{
    if (!reach_outside(ex, fc, ex->steps[root].out, root)) return n;   /* cannot happen: nothing leads back to an ancestor */
    for (int m = 0; m != n;) {
        m = n;
        for (int i = 0; i < n && n < MN_FUSE_MAX_MEMBERS; i++) {
            int v = ex->steps[mem[i]].out;
            for (int r = fc->rstart[v]; r < fc->rstart[v + 1] && n < MN_FUSE_MAX_MEMBERS; r++)
                if (reader_joins(ex, fc, root, fc->rlist[r], mem, n)) mem[n++] = fc->rlist[r];
        }
    }
    return n;
}

/* Grows a group from root; returns its member steps in topological order. */
static int grow(const mn_exec *ex, fuse_ctx *fc, int root, int *mem)
{
    const mn_shape shape = ex->steps[root].node->desc.shape;
    int n = 1;
    mem[0] = root;
    fc->group[root] = root;
    fc->stamp++;
    for (bool changed = true; changed && n < MN_FUSE_MAX_MEMBERS;) {
        changed = false;
        for (int i = 0; i < n && n < MN_FUSE_MAX_MEMBERS; i++) {
            const mn_step *st = &ex->steps[mem[i]];
            for (int k = 0; k < st->nin && n < MN_FUSE_MAX_MEMBERS; k++) {
                int v = st->in[k], p = ex->vals[v].def;
                if (p < 0 || fc->group[p] >= 0 || !fusible(ex, &ex->steps[p])) continue;
                if (!mn_shape_eq(ex->steps[p].node->desc.shape, shape)) continue;
                if (fc->mark[p] == fc->stamp) continue;              /* reached from an escaping value's reader */
                fc->group[p] = root;
                if (reads_in_group(ex, v, mem, n) < fc->uses[v] && !reach_outside(ex, fc, v, root)) {
                    fc->group[p] = -1;                                /* would close a cycle */
                    continue;
                }
                mem[n++] = p;
                changed = true;
            }
        }
    }
    n = absorb_readers(ex, fc, root, mem, n);
    /* members in schedule (id) order: producers before readers */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && mem[j - 1] > mem[j]; j--) { int t = mem[j]; mem[j] = mem[j - 1]; mem[j - 1] = t; }
    return n;
}

/* Turns the group's root step into the fused step; members read only
 * inside are in_tile (MN_VAL_FUSED), the others extra outputs. Returns false (and
 * leaves the group unfused) when the group has more distinct inputs than
 * the kernel takes. */
static bool build(mn_exec *ex, fuse_ctx *fc, const int *mem, int n)
{
    mn_fused *f = calloc(1, sizeof *f);
    int ext[MN_FUSE_MAX_EXT], next = 0, xout[MN_FUSE_MAX_MEMBERS], nx = 0;
    if (!f) return false;
    f->nmem = n;
    f->shape = ex->steps[mem[n - 1]].node->desc.shape;
    for (int j = 0; j < n; j++) {
        const mn_step *st = &ex->steps[mem[j]];
        mn_fused_member *mb = &f->mem[j];
        *mb = (mn_fused_member){ .op = st->node->op, .attrs = st->node->attrs, .nin = st->nin, .dst = -1 };
        if (j == n - 1) mb->dst = -2;
        else if (reads_in_group(ex, st->out, mem, n) < fc->uses[st->out]) { mb->dst = nx; xout[nx++] = st->out; }
        for (int k = 0; k < st->nin; k++) {
            int v = st->in[k], p = ex->vals[v].def, src = -1;
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
    int *in = calloc((size_t)next, sizeof *in), *xo = calloc((size_t)nx + 1, sizeof *xo);
    mn_tensor *tin = calloc((size_t)next, sizeof *tin);
    if (!in || !tin || !xo) { free(in); free(tin); free(xo); free(f); return false; }
    f->inplace = -1;
    for (int e = 0; e < next; e++) {
        const mn_value *x = &ex->vals[ext[e]];
        in[e] = ext[e];
        f->bcast[e] = !mn_shape_eq(x->t.shape, f->shape);
        mn__bcast_strides(x->t.shape, f->shape, f->st[e]);
        int p = ex->vals[ext[e]].def;
        int64_t off, vst[MN_MAX_DIMS];
        const mn_node *pn = p >= 0 ? ex->steps[p].node : NULL;
        /* a copy (slice, expand) that only this group reads: read its source in place of it */
        if (pn && !ex->steps[p].fused && mn__kind(x) == MN_VAL_ARENA && pn->op->traits.view && pn->nin >= 1 && pn->in_desc[0].dtype == MN_F32 &&
            reads_in_group(ex, ext[e], mem, n) == fc->uses[ext[e]] && pn->op->traits.view(pn->in_desc, pn->nin, &pn->desc, pn->attrs, &off, vst)) {
            for (int d = 0; d < f->shape.ndim; d++) {
                int j = x->t.shape.ndim - f->shape.ndim + d;
                f->st[e][d] = j < 0 || (x->t.shape.d[j] == 1 && f->shape.d[d] != 1) ? 0 : vst[j];
            }
            f->base[e] = off;
            f->bcast[e] = true;
            in[e] = ex->steps[p].in[0];
            fc->uses[ext[e]] = 0;
            ex->vals[ext[e]].in_tile = true;
            ex->steps[p].fused_into = mem[n - 1];
            fc->group[p] = mem[n - 1];
        }
        /* read and written tile by tile at the same positions: a same-sized input may be overwritten */
        if (!f->bcast[e] && f->inplace < 0) f->inplace = e;
    }
    free(root->in); free(root->tin);
    root->in = in; root->tin = tin; root->nin = next;
    memcpy(xo, xout, (size_t)nx * sizeof *xo);
    root->xout = xo; root->nxout = nx;
    root->fused = f;
    for (int j = 0; j < n; j++) ex->vals[ex->steps[mem[j]].out].fused_root = root->out;
    for (int j = 0; j < n - 1; j++) {
        if (f->mem[j].dst == -1) ex->vals[ex->steps[mem[j]].out].in_tile = true;
        ex->steps[mem[j]].fused_into = mem[n - 1];
    }
    return true;
}

/* A chain built after the pass (split.c's per-step rows): mem[0..n) are
 * fusible steps of the root's shape in topological order, the last the
 * root, each member's value read only by members after it. They become
 * one step as the pass would make them (build); the caller drops the
 * absorbed steps (fused_into >= 0). False, nothing changed, if not. */
bool mn__fuse_chain(mn_exec *ex, const int *mem, int n)
{
    if (n < 2 || n > MN_FUSE_MAX_MEMBERS) return false;
    const mn_shape shape = ex->steps[mem[n - 1]].node->desc.shape;
    for (int j = 0; j < n; j++)
        if (!fusible(ex, &ex->steps[mem[j]]) || !mn_shape_eq(ex->steps[mem[j]].node->desc.shape, shape)) return false;
    fuse_ctx fc = { .uses = malloc(((size_t)ex->nvals + 1) * sizeof(int)), .group = malloc(((size_t)ex->nsteps + 1) * sizeof(int)) };
    bool ok = fc.uses && fc.group;
    if (ok) {
        mn__count_reads(ex, fc.uses);
        for (int s = 0; s < ex->nsteps; s++) fc.group[s] = -1;
        for (int j = 0; j < n; j++) fc.group[mem[j]] = mem[n - 1];
        for (int j = 0; j < n - 1 && ok; j++) ok = reads_in_group(ex, ex->steps[mem[j]].out, mem, n) == fc.uses[ex->steps[mem[j]].out];
    }
    ok = ok && build(ex, &fc, mem, n);
    free(fc.uses);
    free(fc.group);
    return ok;
}

/* A fused step sits where its root was; a step reading one of its extra
 * outputs may come earlier in id order. Re-sorts the steps topologically
 * (Kahn's algorithm, smallest original position first, so an unchanged
 * graph keeps its order) for the scheduler, which needs producers first. */
static void heap_push(int *h, int *n, int x)
{
    int i = (*n)++;
    h[i] = x;
    while (i > 0 && h[(i - 1) / 2] > h[i]) { int p = (i - 1) / 2, t = h[p]; h[p] = h[i]; h[i] = t; i = p; }
}
static int heap_pop(int *h, int *n)
{
    int top = h[0], i = 0;
    h[0] = h[--(*n)];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l] < h[m]) m = l;
        if (r < *n && h[r] < h[m]) m = r;
        if (m == i) break;
        int t = h[m]; h[m] = h[i]; h[i] = t; i = m;
    }
    return top;
}

/* Edge i of a step: its inputs, then its ctrl values (recompute.c). */
static int edge_count(const mn_step *st) { return st->nin + st->nctrl; }
static int edge(const mn_step *st, int i) { return i < st->nin ? st->in[i] : st->ctrl[i - st->nin]; }

mn_status mn__topo_order(mn_exec *ex)
{
    int n = ex->nsteps, *indeg = calloc((size_t)n + 1, sizeof *indeg), *heap = malloc(((size_t)n + 1) * sizeof *heap);
    int *start = calloc((size_t)n + 2, sizeof *start), *succ = NULL, total = 0, nh = 0, done = 0;
    mn_step *sorted = malloc(((size_t)n + 1) * sizeof *sorted);
    bool ok = indeg && heap && start && sorted;
    for (int s = 0; ok && s < n; s++)
        for (int k = 0; k < edge_count(&ex->steps[s]); k++) {
            int d = ex->vals[edge(&ex->steps[s], k)].def;
            if (d < 0) continue;
            indeg[s]++;
            start[d + 1]++;
            total++;
        }
    if (ok && !(succ = malloc(((size_t)total + 1) * sizeof *succ))) ok = false;
    if (ok) {
        for (int s = 0; s < n; s++) start[s + 1] += start[s];
        int *fill = calloc((size_t)n + 1, sizeof *fill);
        if (!fill) ok = false;
        for (int s = 0; ok && s < n; s++)
            for (int k = 0; k < edge_count(&ex->steps[s]); k++) {
                int d = ex->vals[edge(&ex->steps[s], k)].def;
                if (d >= 0) succ[start[d] + fill[d]++] = s;
            }
        free(fill);
    }
    for (int s = 0; ok && s < n; s++) if (!indeg[s]) heap_push(heap, &nh, s);
    while (ok && nh > 0) {
        int s = heap_pop(heap, &nh);
        sorted[done++] = ex->steps[s];
        for (int i = start[s]; i < start[s + 1]; i++) if (--indeg[succ[i]] == 0) heap_push(heap, &nh, succ[i]);
    }
    mn_status st = !ok ? MN_ERR_NOMEM : done != n ? MN_ERR_INVALID : MN_OK;
    if (!st) { memcpy(ex->steps, sorted, (size_t)n * sizeof *sorted); mn__set_defs(ex); }
    free(indeg); free(heap); free(start); free(succ); free(sorted);
    return st;
}

/* The bias epilogue: a product step whose op adds bias vectors after its
 * products (ops/gemm.h's mn__bias_epilogue: matmul_packed, an RNN's input
 * projection) takes over the adds of [N] vectors that follow it, when each
 * value on the way has that add as its one reader (an lstm block's
 * (x W_ih^T + b_ih) + b_hh, a gru's + b): the step reads the vectors as
 * extra inputs and writes the last add's value; the values between are
 * computed in its registers (in_tile, no storage) and the adds go. Same
 * bits: each add still rounds once after the element's whole product, in
 * the same order. Saves a pass over the projection (4 MiB a block of 1024
 * rows at 4H = 1024) and, on several threads, a level. Runs before the
 * pointwise groups, on plain steps, and again after split.c has made a
 * product per time step (graph/split.c). A product that waits (ctrl edges)
 * keeps its waits; an add may wait only for what the product waits for.
 * Returns the adds absorbed, or -1 out of memory (the re-sort cannot find
 * a cycle: the rewrite adds only edges from a bias's producer, which
 * precedes the add that read it, and every reader of the adds' value
 * already came after them). */
static bool same_waits(const mn_step *a, const mn_step *b)
{
    if (!b->nctrl) return true;
    if (a->nctrl != b->nctrl) return false;
    for (int i = 0; i < a->nctrl; i++) if (a->ctrl[i] != b->ctrl[i]) return false;
    return true;
}

int mn__bias_epilogues(mn_exec *ex)
{
    int nv = ex->nvals, *uses = malloc(((size_t)nv + 1) * sizeof *uses), *reader = malloc(((size_t)nv + 1) * sizeof *reader);
    bool *gone = calloc((size_t)ex->nsteps + 1, sizeof *gone);
    int absorbed = 0;
    if (!uses || !reader || !gone) { free(uses); free(reader); free(gone); return -1; }
    mn__count_reads(ex, uses);
    for (int v = 0; v < nv; v++) reader[v] = -1;
    for (int st = 0; st < ex->nsteps; st++)
        for (int k = 0; k < ex->steps[st].nin; k++) reader[ex->steps[st].in[k]] = st;
    for (int si = 0; si < ex->nsteps; si++) {
        mn_step *st = &ex->steps[si];
        int most = mn__bias_epilogue(st->node->op), b[2], by[2], nb = 0, v = st->out;
        if (!most || st->fused || st->nxout || st->nin != st->node->nin || ex->vals[v].base != MN_VAL_ARENA) continue;
        while (nb < most && nb < 2 && uses[v] == 1 && !ex->keep[v] && reader[v] >= 0) {
            const mn_step *rt = &ex->steps[reader[v]];
            int k = rt->fused || rt->nxout || !same_waits(st, rt) || rt->nin != 2 || rt->node->nin != 2 ? -1
                  : mn__row_bias(rt->node->op, rt->node->in_desc, 2, &rt->node->desc);
            if (k < 0 || rt->in[1 - k] != v || rt->in[k] == v || ex->vals[rt->out].base != MN_VAL_ARENA ||
                !mn_shape_eq(ex->vals[rt->out].node->desc.shape, ex->vals[v].node->desc.shape))
                break;
            b[nb] = rt->in[k];
            by[nb++] = reader[v];
            v = rt->out;
        }
        if (!nb) continue;
        int *in = realloc(st->in, ((size_t)st->nin + (size_t)nb + 1) * sizeof *in);
        if (in) st->in = in;
        mn_tensor *tin = in ? realloc(st->tin, ((size_t)st->nin + (size_t)nb + 1) * sizeof *tin) : NULL;
        if (!tin) { free(uses); free(reader); free(gone); return -1; }
        st->tin = tin;
        memset(st->tin + st->nin, 0, ((size_t)nb + 1) * sizeof *tin);
        int last = v;
        for (int j = 0; j < nb; j++) {
            int mid = j == 0 ? st->out : ex->steps[by[j - 1]].out;   /* the product, the adds but the last */
            ex->vals[mid].in_tile = true;                          /* in the product's registers */
            ex->vals[mid].fused_root = last;
            st->in[st->nin + j] = b[j];
            gone[by[j]] = true;
        }
        ex->vals[last].fused_root = last;
        st->nin += nb;
        st->out = last;
        absorbed += nb;
    }
    int w = 0;
    for (int st = 0; st < ex->nsteps; st++) {
        if (gone[st]) { free(ex->steps[st].in); free(ex->steps[st].tin); free(ex->steps[st].ctrl); continue; }
        ex->steps[w++] = ex->steps[st];
    }
    ex->nsteps = w;
    mn__set_defs(ex);
    free(uses); free(reader); free(gone);
    /* a bias made after the product (in step order) is now its input: producers first again */
    return absorbed && mn__topo_order(ex) ? -1 : absorbed;
}

mn_status mn__fuse(mn_exec *ex)
{
    mn_status s = mn__piece_copies(ex);
    if (s) return mn__graph_fail(ex->g, s, "fuse: out of memory copying concat pieces");
    int epi = mn__bias_epilogues(ex);
    if (epi < 0) return mn__graph_fail(ex->g, MN_ERR_NOMEM, "fuse: out of memory (bias epilogues)");
    mn__stat(ex, "fuse.epilogue_adds", epi);
    size_t nv = (size_t)ex->nvals + 1, ns = (size_t)ex->nsteps + 1;
    fuse_ctx fc = { .uses = calloc(nv, sizeof(int)), .group = malloc(ns * sizeof(int)),
                    .rstart = calloc(nv + 1, sizeof(int)), .mark = calloc(ns, sizeof(int)), .visit = calloc(ns, sizeof(int)),
                    .from = malloc(ns * sizeof(int)), .leads = calloc(ns, sizeof(int)),
                    .stack = malloc(ns * sizeof(int)), .seen = malloc(ns * sizeof(int)),
                    .gstart = calloc(ns, sizeof(int)), .gcount = calloc(ns, sizeof(int)), .gpool = malloc(ns * sizeof(int)) };
    int *mem = malloc(MN_FUSE_MAX_MEMBERS * sizeof *mem), nreads = 0;
    for (int st = 0; st < ex->nsteps; st++) nreads += ex->steps[st].nin;
    fc.rlist = malloc(((size_t)nreads + 1) * sizeof(int));
    if (!fc.uses || !fc.group || !fc.rstart || !fc.rlist || !fc.mark || !fc.visit || !fc.from || !fc.leads || !fc.stack || !fc.seen || !fc.gstart || !fc.gcount || !fc.gpool || !mem) {
        s = mn__graph_fail(ex->g, MN_ERR_NOMEM, "fuse: out of memory");
        goto out;
    }
    mn__count_reads(ex, fc.uses);
    for (int st = 0; st < ex->nsteps; st++) {
        fc.group[st] = -1;
        ex->steps[st].fused_into = -1;
        for (int k = 0; k < ex->steps[st].nin; k++) fc.rstart[ex->steps[st].in[k] + 1]++;
    }
    for (int v = 0; v < ex->nvals; v++) fc.rstart[v + 1] += fc.rstart[v];
    {
        int *fill = calloc(nv, sizeof(int));
        if (!fill) { s = mn__graph_fail(ex->g, MN_ERR_NOMEM, "fuse: out of memory"); goto out; }
        for (int st = 0; st < ex->nsteps; st++)
            for (int k = 0; k < ex->steps[st].nin; k++) {
                int v = ex->steps[st].in[k];
                fc.rlist[fc.rstart[v] + fill[v]++] = st;
            }
        free(fill);
    }
    for (int r = ex->nsteps - 1; r >= 0; r--) {
        if (fc.group[r] >= 0 || !fusible(ex, &ex->steps[r])) continue;
        int n = grow(ex, &fc, r, mem);
        if (n < 2 || !build(ex, &fc, mem, n)) {
            for (int j = 0; j < n; j++) fc.group[mem[j]] = -1;
            continue;
        }
        fc.gstart[r] = fc.npool;
        fc.gcount[r] = n;
        for (int j = 0; j < n; j++) fc.gpool[fc.npool++] = mem[j];
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
    mn__set_defs(ex);
    if (!s) s = mn__topo_order(ex);
    if (s == MN_ERR_NOMEM) s = mn__graph_fail(ex->g, s, "fuse: out of memory");
    else if (s) s = mn__graph_fail(ex->g, MN_ERR_INVALID, "fuse: the fused steps form a cycle (a bug)");
out:
    free(fc.uses); free(fc.group); free(fc.rstart); free(fc.rlist); free(fc.mark); free(fc.visit); free(fc.from); free(fc.leads); free(fc.stack); free(fc.seen);
    free(fc.gstart); free(fc.gcount); free(fc.gpool); free(mem);
    return s;
}

/* Every value's def: the step writing it (its output or an extra output), or -1. */
void mn__set_defs(mn_exec *ex)
{
    for (int v = 0; v < ex->nvals; v++) ex->vals[v].def = -1;
    for (int st = 0; st < ex->nsteps; st++) {
        ex->vals[ex->steps[st].out].def = st;
        for (int k = 0; k < ex->steps[st].nxout; k++) ex->vals[ex->steps[st].xout[k]].def = st;
    }
}

void mn__fused_free(mn_fused *f) { free(f); }

size_t mn__fused_bytes(void) { return sizeof(mn_fused); }
