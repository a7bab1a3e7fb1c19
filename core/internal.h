/* core/internal.h: helpers shared by every folder of libmnemo and never
 * installed: error raising, the bump arena for graph metadata, aligned
 * buffers and thread defaults. Names use the private mn__ prefix. */
#ifndef MN_CORE_INTERNAL_H
#define MN_CORE_INTERNAL_H

#include "mnemo.h"
#include <omp.h>
#include <stdarg.h>

#define MN_ALIGN 64
#define MN__ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((size_t)(a) - 1))
#define MN__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Sets this thread's last error (code + formatted detail) and returns code. */
mn_status mn__error(mn_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
mn_status mn__verror(mn_status code, const char *fmt, va_list ap);

/* 64-byte aligned heap buffers (freed with free()). */
void *mn__aligned_alloc(size_t bytes);

/* Bump allocator in 64-byte aligned chunks; freed all at once. */
typedef struct mn__arena_chunk mn__arena_chunk;
typedef struct { mn__arena_chunk *head; size_t used_total, held_total; } mn__arena;   /* held: the chunks' bytes */
void *mn__arena_alloc(mn__arena *a, size_t bytes);            /* zeroed */
char *mn__arena_strdup(mn__arena *a, const char *s);
void  mn__arena_free(mn__arena *a);

/* FNV-1a hash, used to derive RNG streams from names. */
uint64_t mn__hash_str(const char *s);

/* The seed random ops see in run `step` of a graph seeded `seed`. */
static inline uint64_t mn__run_seed(uint64_t seed, uint64_t step)
{
    return seed ^ ((step + 1) * 0x9E3779B97F4A7C15ull);
}

/* Bumped by every change of a parameter's frozen flag (params.c): an
 * optimizer binds its parameters again when it moves. */
uint64_t mn__params_freeze_gen(const mn_params *P);

/* Effective thread count for a request (0 = OpenMP's default for this thread). */
int mn__threads(int requested);
/* OpenBLAS's team size for the calling thread until the matching pop
 * (push returns the previous value to pass to pop). */
int mn__blas_threads_push(int n);
void mn__blas_threads_pop(int old);
/* mn_rng_uniform(seed, stream, start + i) for i < n into u, vectorised (core/rng.c). */
void mn__rng_uniform_n(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, float *u);
/* Pins a team of n threads that uses every allowed CPU, once per calling thread (threads.c). */
void mn__bind_team(int n);
/* Does a loop (a kernel, a gradient sink, the optimizer) for `threads`
 * threads run as a plain loop: on one thread, below its grain (`worth`
 * false) or inside a parallel region? An OpenMP
 * region costs 3.5-5.7 us even with one thread or an if(0) clause here
 * (libgomp makes and ends a team; a futex call, expensive in this VM):
 * as much as a [32, 256] kernel, hundreds of times per recurrent step. */
static inline bool mn__serial(int threads, bool worth) { return threads <= 1 || !worth || omp_in_parallel(); }

#endif
