/* graph/verify.c: the plan verifier (the last pass, when asked, and
 * mn_exec_verify). It recomputes lifetimes from the steps and the bound
 * pointers, independently of the planner's bookkeeping, and fails if two
 * values or workspaces that share bytes may be live at the same time. */
#include "exec.h"
#include <stdio.h>
#include <stdlib.h>

typedef struct { uintptr_t lo, hi; int def_level, def_step, group; } span;

static int by_lo(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* May `later` (produced at step ps) overwrite group g's bytes? Only if every
 * reader of g is at an earlier level, or it is ps itself reading g through
 * its declared in-place input while no other step reads g at that level or after. */
static bool may_reuse(const mn_exec *ex, int g, int ps, const int *glast_any)
{
    const mn_step *p = &ex->steps[ps];
    if (glast_any[g] < p->level) return true;
    if (glast_any[g] > p->level) return false;
    int k = mn__step_inplace(p);
    if (k < 0 || k >= p->nin || ex->vals[p->in[k]].group != g) return false;
    if (ex->vals[p->in[k]].bytes != ex->vals[p->out].bytes) return false;   /* a broadcast input cannot be overwritten */
    for (int s = ex->level_start[p->level]; s < ex->level_start[p->level + 1]; s++) {
        if (s == ps) continue;
        for (int j = 0; j < ex->steps[s].nin; j++)
            if (ex->vals[ex->steps[s].in[j]].group == g) return false;
    }
    return true;
}

mn_status mn__plan_verify(const mn_exec *ex, char *msg, size_t mlen)
{
    int n = ex->nvals + ex->nsteps;
    span *sp = malloc((size_t)(n ? n : 1) * sizeof *sp);
    int *glast = malloc((size_t)(ex->nvals ? ex->nvals : 1) * sizeof *glast);
    if (!sp || !glast) { free(sp); free(glast); return MN_ERR_NOMEM; }
    for (int v = 0; v < ex->nvals; v++) glast[v] = mn__value_level(ex, v);
    for (int v = 0; v < ex->nvals; v++) if (ex->keep[v]) glast[ex->vals[v].group] = ex->nlevels;
    for (int s = 0; s < ex->nsteps; s++)
        for (int k = 0; k < ex->steps[s].nin; k++) {
            int g = ex->vals[ex->steps[s].in[k]].group;
            if (ex->steps[s].level > glast[g]) glast[g] = ex->steps[s].level;
        }
    int m = 0;
    uintptr_t base = (uintptr_t)ex->arena, end = base + (uintptr_t)ex->arena_bytes;
    mn_status st = MN_OK;
    for (int v = 0; v < ex->nvals; v++) {
        const mn_value *x = &ex->vals[v];
        if (mn__kind(x) != MN_VAL_ARENA || !x->bytes) continue;
        uintptr_t lo = (uintptr_t)x->t.data;
        int64_t in_host;
        mn__top_host(ex, v, &in_host);
        if (lo < base || lo + x->bytes > end || (lo - (uintptr_t)in_host) % MN_ALIGN) {   /* a storage starts aligned */
            snprintf(msg, mlen, "value \"%s\" lies outside the arena or is misaligned", x->node->name);
            st = MN_ERR_INVALID;
        }
        sp[m++] = (span){ lo, lo + x->bytes, mn__value_level(ex, v), x->def, x->group };
    }
    for (int s = 0; s < ex->nsteps; s++)
        if (ex->steps[s].work >= 0) {
            uintptr_t lo = base + (uintptr_t)ex->stores[ex->steps[s].work].offset;
            sp[m++] = (span){ lo, lo + ex->steps[s].work_bytes, ex->steps[s].level, s, -1 - s };
        }
    qsort(sp, (size_t)m, sizeof *sp, by_lo);
    for (int i = 0; i < m && !st; i++)
        for (int j = i + 1; j < m && sp[j].lo < sp[i].hi && !st; j++) {
            const span *a = &sp[i], *b = &sp[j];
            if (a->group == b->group) continue;
            const span *early = a->def_step <= b->def_step ? a : b, *late = early == a ? b : a;
            bool ok;
            if (early->group < 0 && late->group < 0) ok = early->def_level != late->def_level;   /* two workspaces */
            else if (early->group < 0) ok = late->def_level > early->def_level;                  /* workspace, then a value */
            else if (late->group < 0) ok = glast[early->group] < late->def_level;               /* a value, then a workspace */
            else ok = may_reuse(ex, early->group, late->def_step, glast);
            if (!ok) {
                snprintf(msg, mlen, "\"%s\" and \"%s\" share bytes while both may be live (levels %d and %d)",
                         early->group >= 0 ? ex->vals[early->group].node->name : "workspace",
                         late->group >= 0 ? ex->vals[late->group].node->name : "workspace", early->def_level, late->def_level);
                st = MN_ERR_INVALID;
            }
        }
    free(sp); free(glast);
    return st;
}
