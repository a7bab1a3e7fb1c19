/* core/rng.c: Philox4x32-10 (Salmon et al., SC'11), a counter-based RNG.
 * The value for element i is a pure function of (seed, stream, i), so any
 * split of a fill over threads gives the same numbers. */
#include "internal.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void mn_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    uint32_t k0 = key[0], k1 = key[1];
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1; c3 = (uint32_t)p0;
        c0 = n0; c2 = n2;
        k0 += PHILOX_W0; k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static void block(uint64_t seed, uint64_t stream, uint64_t index, uint32_t out[4])
{
    uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
    uint32_t ctr[4] = { (uint32_t)index, (uint32_t)(index >> 32),
                        (uint32_t)stream, (uint32_t)(stream >> 32) };
    mn_philox4x32(key, ctr, out);
}

/* 24 random bits -> [0, 1) exactly representable in f32. */
static inline float u01(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float mn_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t o[4];
    block(seed, stream, index, o);
    return u01(o[0]);
}

/* mn_rng_uniform of indices start .. start + n - 1 into u: the same
 * values, 16 lanes at a time (two 8-lane GCC vector types) (32-bit words in 64-bit
 * lanes, so the 32 x 32 -> 64 products are lane-wise); one call per element
 * costs ~15-30 ns and dropout draws one per activation. */
typedef uint64_t mn__v8u __attribute__((vector_size(64)));

static inline void philox_round(mn__v8u *c0, mn__v8u *c1, mn__v8u *c2, mn__v8u *c3, uint64_t a0, uint64_t a1)
{
    const uint64_t lo = 0xFFFFFFFFu;
    mn__v8u p0 = PHILOX_M0 * *c0, p1 = PHILOX_M1 * *c2;
    *c0 = (p1 >> 32) ^ *c1 ^ a0;
    *c2 = (p0 >> 32) ^ *c3 ^ a1;
    *c1 = p1 & lo;
    *c3 = p0 & lo;
}

void mn__rng_uniform_n(uint64_t seed, uint64_t stream, uint64_t start, int64_t n, float *u)
{
    enum { W = 8 };
    const uint64_t lo = 0xFFFFFFFFu;
    for (int64_t i = 0; i < n; i += 2 * W) {
        mn__v8u x0, x1, c1a, c1b, c2a, c2b, c3a, c3b;
        for (int j = 0; j < W; j++) {
            x0[j] = start + (uint64_t)(i + j);
            x1[j] = start + (uint64_t)(i + W + j);
        }
        c1a = x0 >> 32;
        c1b = x1 >> 32;
        x0 &= lo;
        x1 &= lo;
        c2a = (mn__v8u){ 0 } + (stream & lo);
        c2b = c2a;
        c3a = (mn__v8u){ 0 } + (stream >> 32);
        c3b = c3a;
        uint64_t a0 = seed & lo, a1 = seed >> 32;
        for (int r = 0; r < 10; r++) {
            philox_round(&x0, &c1a, &c2a, &c3a, a0, a1);
            philox_round(&x1, &c1b, &c2b, &c3b, a0, a1);
            a0 = (a0 + PHILOX_W0) & lo;
            a1 = (a1 + PHILOX_W1) & lo;
        }
        int64_t m = n - i < 2 * W ? n - i : 2 * W;
        for (int64_t j = 0; j < m; j++) u[i + j] = u01((uint32_t)(j < W ? x0[j] : x1[j - W]));
    }
}

/* Box-Muller on two 32-bit words of the element's own block. */
float mn_rng_normal(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t o[4];
    block(seed, stream, index, o);
    double u1 = ((double)o[0] + 1.0) / 4294967297.0;   /* (0, 1) */
    double u2 = (double)o[1] / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void mn_rng_fill_uniform(float *x, int64_t n, uint64_t seed, uint64_t stream, float lo, float hi)
{
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * mn_rng_uniform(seed, stream, (uint64_t)i);
}

void mn_rng_fill_normal(float *x, int64_t n, uint64_t seed, uint64_t stream, float mean, float std)
{
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++)
        x[i] = mean + std * mn_rng_normal(seed, stream, (uint64_t)i);
}
