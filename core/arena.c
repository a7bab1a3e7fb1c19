/* core/arena.c: a bump allocator for graph metadata (nodes, attributes,
 * names) in 64-byte aligned chunks, released at once, plus aligned heap
 * buffers. Invariant: every pointer handed out is 64-byte aligned and zeroed. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

struct mn__arena_chunk {
    mn__arena_chunk *next;
    size_t cap, used;
    _Alignas(MN_ALIGN) unsigned char data[];
};

void *mn__aligned_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - MN_ALIGN) return NULL;            /* rounding up would wrap */
    size_t n = MN__ALIGN_UP(bytes ? bytes : 1, MN_ALIGN);
    return aligned_alloc(MN_ALIGN, n);
}

void *mn__arena_alloc(mn__arena *a, size_t bytes)
{
    if (bytes > SIZE_MAX / 2) return NULL;                     /* rounding up would wrap */
    size_t need = MN__ALIGN_UP(bytes ? bytes : 1, MN_ALIGN);
    mn__arena_chunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > 16384 ? need : 16384;
        c = aligned_alloc(MN_ALIGN, MN__ALIGN_UP(sizeof *c + cap, MN_ALIGN));
        if (!c) return NULL;
        c->cap = cap; c->used = 0; c->next = a->head;
        a->head = c;
        a->held_total += MN__ALIGN_UP(sizeof *c + cap, MN_ALIGN);
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used_total += need;
    memset(p, 0, need);
    return p;
}

char *mn__arena_strdup(mn__arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = mn__arena_alloc(a, n);
    if (p) memcpy(p, s, n);
    return p;
}

void mn__arena_free(mn__arena *a)
{
    mn__arena_chunk *c = a->head;
    while (c) { mn__arena_chunk *n = c->next; free(c); c = n; }
    a->head = NULL;
    a->used_total = 0;
    a->held_total = 0;
}

uint64_t mn__hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}
