/* ops/fastmath.h: exp, tanh and sigmoid written so that loops over them
 * vectorise (no libm calls, no branches): Cody-Waite range reduction and
 * Cephes' degree-6 polynomial (fused multiply-adds where the target has
 * FMA), rounding by the 1.5 * 2^23 trick (SSE2 has no round instruction).
 * Relative error of mn__expf is about 1.5e-7 over its range; tanh and
 * sigmoid inherit it (tanh near 0 has an absolute error of about 6e-8).
 * Below -87 it returns 0; above 88 it saturates at e^88 (no inf); NaN
 * inputs propagate. tanh and sigmoid clamp their own arguments and call
 * the unchecked core (an LSTM cell's fused kernel: 24 -> 15 us hot). */
#ifndef MN_OPS_FASTMATH_H
#define MN_OPS_FASTMATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* a * b + c, fused (one rounding) where the target has FMA: the
 * polynomials below are then shorter dependency chains. */
#if defined(__FMA__)
#define MN__MADD(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define MN__MADD(a, b, c) ((a) * (b) + (c))
#endif

/* e^c for c in [-87, 88] (a NaN gives a NaN): no range checks, so the
 * activations, which clamp their own arguments, skip them. The scale 2^n
 * comes from the bits of the rounded t (its low bits hold n + 0x400000
 * after the 1.5 * 2^23 shift), so no float-to-int conversion is needed. */
/* The core's constants, shared with its 16-lane form below. */
#define MN__EXP_LOG2E 1.44269504088896341f
#define MN__EXP_SHIFT 12582912.0f                               /* 1.5 * 2^23 */
#define MN__EXP_LN2_HI -0.693359375f
#define MN__EXP_LN2_LO 2.12194440e-4f
#define MN__EXP_P0 1.9875691500e-4f
#define MN__EXP_P1 1.3981999507e-3f
#define MN__EXP_P2 8.3334519073e-3f
#define MN__EXP_P3 4.1665795894e-2f
#define MN__EXP_P4 1.6666665459e-1f
#define MN__EXP_P5 5.0000001201e-1f

static inline float mn__exp_core(float c)
{
    float t = MN__MADD(c, MN__EXP_LOG2E, MN__EXP_SHIFT);        /* round to nearest */
    float n = t - MN__EXP_SHIFT;
    float r = MN__MADD(n, MN__EXP_LN2_LO, MN__MADD(n, MN__EXP_LN2_HI, c));
    float p = MN__EXP_P0;
    p = MN__MADD(p, r, MN__EXP_P1);
    p = MN__MADD(p, r, MN__EXP_P2);
    p = MN__MADD(p, r, MN__EXP_P3);
    p = MN__MADD(p, r, MN__EXP_P4);
    p = MN__MADD(p, r, MN__EXP_P5);
    p = MN__MADD(p, r * r, r) + 1.0f;
    uint32_t tb, e;
    memcpy(&tb, &t, sizeof tb);
    e = (tb - 0x4b400000u + 127u) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

#if defined(__AVX512F__)
#include <immintrin.h>
/* mn__exp_core on 16 lanes, step for step (the same bits: every MN__MADD
 * an FMA, as under __FMA__, which AVX-512 targets have). */
static inline __m512 mn__exp_core16(__m512 c)
{
    __m512 t = _mm512_fmadd_ps(c, _mm512_set1_ps(MN__EXP_LOG2E), _mm512_set1_ps(MN__EXP_SHIFT));
    __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(MN__EXP_SHIFT));
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(MN__EXP_LN2_LO), _mm512_fmadd_ps(n, _mm512_set1_ps(MN__EXP_LN2_HI), c));
    __m512 p = _mm512_set1_ps(MN__EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MN__EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MN__EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MN__EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MN__EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(MN__EXP_P5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32((int)(127u - 0x4b400000u))), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}
#endif

static inline float mn__expf(float x)
{
    float c = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float y = x < -87.0f ? 0.0f : mn__exp_core(c);            /* underflow (and -inf) to 0 */
    return x != x ? x : y;
}

/* 1 / (1 + e^-x), e^-x clamped to [e^-87, e^88] (sigmoid(-100) is 6e-39, not 0). */
static inline float mn__sigmoidf(float x)
{
    float c = -x < -87.0f ? -87.0f : -x > 88.0f ? 88.0f : -x;
    return 1.0f / (1.0f + mn__exp_core(c));
}

static inline float mn__tanhf(float x)
{
    float c = x < -9.0f ? -9.0f : x > 9.0f ? 9.0f : x;
    float e = mn__exp_core(2.0f * c);
    return (e - 1.0f) / (e + 1.0f);
}

/* erf by Abramowitz and Stegun 7.1.26 (absolute error <= 1.5e-7). */
static inline float mn__erff(float x)
{
    float a = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    float r = 1.0f - p * mn__expf(-a * a);
    return x < 0 ? -r : r;
}

/* max(a, b) ignoring a NaN in either (as fmaxf) */
static inline float mn__fmaxf(float a, float b) { return a > b || b != b ? a : b; }

/* log for x > 0 (Cephes' logf polynomial on m in [sqrt(1/2), sqrt(2)),
 * relative error about 1e-7; denormals scaled first); log(0) = -inf,
 * log(inf) = inf, negative or NaN give NaN. Branch-free: loops vectorise. */
static inline float mn__logf(float x)
{
    float sub = x < 1.17549435e-38f ? 8388608.0f : 1.0f;    /* 2^23 lifts denormals */
    float xs = x * sub;
    int32_t ix;
    memcpy(&ix, &xs, sizeof ix);
    int32_t mi = (ix & 0x007fffff) | 0x3f800000;
    float m, e = (float)(((ix >> 23) & 0xff) - 127) - (sub > 1.0f ? 23.0f : 0.0f);
    memcpy(&m, &mi, sizeof m);
    bool hi = m > 1.41421356f;
    m = hi ? 0.5f * m : m;
    e = hi ? e + 1.0f : e;
    float f = m - 1.0f, z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z - 2.12194440e-4f * e - 0.5f * z;
    float r = f + y + 0.693359375f * e;
    float bad = x == 0.0f ? -INFINITY : NAN;                 /* 0, or negative or NaN */
    r = x < INFINITY ? r : x;
    return x > 0.0f ? r : bad;
}

/* log(1 + u) for u >= -1, accurate for small u (Goldberg: log(w) u / (w - 1), w = 1 + u). */
static inline float mn__log1pf(float u)
{
    float w = 1.0f + u, d = w - 1.0f;
    float r = mn__logf(w) * (u / (d == 0.0f ? 1.0f : d));
    return d == 0.0f ? u : w == INFINITY ? w : r;
}

/* softplus(x) = log(1 + exp(x)), stable for any x. */
static inline float mn__softplusf(float x)
{
    float a = x < 0.0f ? -x : x;
    return mn__log1pf(mn__expf(-a)) + (x > 0.0f ? x : 0.0f);
}

/* Row reductions over contiguous floats in fixed lanes: they vectorise, and
 * the order of additions depends on n only (the same bits for any thread
 * count). The max uses GCC/Clang vector types (any SIMD width; NaN propagates). */
typedef float mn__vf16 __attribute__((vector_size(64)));
typedef int32_t mn__vi16 __attribute__((vector_size(64)));
static inline float mn__row_max(const float *x, int64_t n)
{
    mn__vf16 acc, nanv = { 0 };
    for (int j = 0; j < 16; j++) acc[j] = -INFINITY;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        mn__vf16 v;
        memcpy(&v, x + i, sizeof v);
        mn__vi16 gt = v > acc, nn = v != v;
        acc = (mn__vf16)(((mn__vi16)v & gt) | ((mn__vi16)acc & ~gt));
        nanv = (mn__vf16)(((mn__vi16)v & nn) | ((mn__vi16)nanv & ~nn));
    }
    float m = -INFINITY;
    for (; i < n; i++) m = x[i] > m || x[i] != x[i] ? x[i] : m;
    for (int j = 0; j < 16; j++) {
        m = acc[j] > m ? acc[j] : m;
        m = nanv[j] != nanv[j] ? nanv[j] : m;
    }
    return m;
}

static inline double mn__row_sum(const float *x, int64_t n)
{
    double acc[8] = { 0 }, s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j];
    for (; i < n; i++) s += x[i];
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

static inline double mn__row_dot(const float *x, const float *y, int64_t n)
{
    double acc[8] = { 0 }, s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * (double)y[i + j];
    for (; i < n; i++) s += (double)x[i] * y[i];
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

/* sum of (x - m)^2 over a contiguous row (m: the row's mean) */
static inline double mn__row_sqdev(const float *x, int64_t n, double m)
{
    double acc[8] = { 0 }, s = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (x[i + j] - m) * (x[i + j] - m);
    for (; i < n; i++) s += (x[i] - m) * (x[i] - m);
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

/* sum of exp(x - m) over a contiguous row: exponentials of a block into a
 * buffer (a plain loop that vectorises), then their lane sum. */
static inline double mn__row_sumexp(const float *x, int64_t n, float m)
{
    float e[256];
    double s = 0;
    for (int64_t i = 0; i < n; i += 256) {
        int64_t b = n - i < 256 ? n - i : 256;
        for (int64_t k = 0; k < b; k++) e[k] = mn__expf(x[i + k] - m);
        s += mn__row_sum(e, b);
    }
    return s;
}

#endif
