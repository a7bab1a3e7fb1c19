/* ops/fastmath.h: exp, tanh and sigmoid written so that loops over them
 * vectorise (no libm calls, no branches): Cody-Waite range reduction and
 * Cephes' degree-6 polynomial, rounding by the 1.5 * 2^23 trick (SSE2 has
 * no round instruction). Relative error of mn__expf is about 1.5e-7 over
 * its range; tanh and sigmoid inherit it (tanh near 0 has an absolute
 * error of about 6e-8). Below -87 it returns 0; above 88 it saturates at
 * e^88 (no inf); NaN inputs propagate. */
#ifndef MN_OPS_FASTMATH_H
#define MN_OPS_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float mn__expf(float x)
{
    float c = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    c = x != x ? x : c;
    float t = c * 1.44269504088896341f + 12582912.0f;       /* round to nearest */
    float n = t - 12582912.0f;
    float r = c - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return x < -87.0f ? 0.0f : p * s;                         /* underflow (and -inf) to 0 */
}

static inline float mn__sigmoidf(float x) { return 1.0f / (1.0f + mn__expf(-x)); }

static inline float mn__tanhf(float x)
{
    float c = x < -9.0f ? -9.0f : x > 9.0f ? 9.0f : x;
    float e = mn__expf(2.0f * c);
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

static inline float mn__fmaxf(float a, float b) { return a > b || b != b ? a : b; }

#endif
