/*
 * fr_mathf.h -- branch-free float32 exp / sigmoid / tanh for the kernels.
 *
 * Why: the fused gate pass evaluates 3-4 transcendental functions per unit and
 * step; scalar libm calls (expf, tanhf) would dominate a small-batch LSTM.
 * These are written without branches or calls (selects, integer bit tricks) so
 * that loops over them auto-vectorize for whatever ISA the including file is
 * compiled for.  float64 uses the same structure at double precision (below).
 *
 * Accuracy (tests/test_activations.py checks a dense grid against float64):
 *   expf   Cephes' range reduction exp(x) = 2^n exp(r), |r| <= ln2/2, degree-6
 *          polynomial: <= 2 ulp on [-86.5, 88]; clamped outside that range
 *          (absolute error < 3e-38 below it; saturates at exp(88) above).
 *   sigmoid 1 / (1 + exp(-x)): relative error < 3e-7.
 *   tanh   |x| < 0.625: Cephes' odd polynomial; else 1 - 2/(exp(2|x|) + 1) with
 *          the sign of x: relative error < 3e-7.
 * NaN propagates through all three; +-inf give the limits (sigmoid(-inf) within
 * 1e-38 of 0: the clamped exp).
 */
#ifndef FR_MATHF_H
#define FR_MATHF_H

#include <math.h>
#include <stdint.h>

/* Bit casts through a union (defined behaviour in C99, and vectorizable). */
#define FR_DEFINE_BITCAST(name, From, To)          \
    static inline To name(From x)                  \
    {                                              \
        union { From from; To to; } v;             \
        v.from = x;                                \
        return v.to;                               \
    }
FR_DEFINE_BITCAST(fr_f32_bits, float, uint32_t)
FR_DEFINE_BITCAST(fr_bits_f32, uint32_t, float)
FR_DEFINE_BITCAST(fr_f64_bits, double, uint64_t)
FR_DEFINE_BITCAST(fr_bits_f64, uint64_t, double)
#undef FR_DEFINE_BITCAST

static inline float fr_expf_fast(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: x + magic rounds x to an integer */
    float xc, t, n, r, y;
    uint32_t ni;
    xc = x < -86.5f ? -86.5f : x; /* keeps 2^n normal ... */
    xc = xc > 88.0f ? 88.0f : xc; /* ... and finite; NaN passes both */
    t = xc * 1.44269504088896341f + magic;
    n = t - magic;
    ni = fr_f32_bits(t) - 0x4B400000u; /* n as a two's-complement integer */
    r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    y = fr_bits_f32(fr_f32_bits(y) + (ni << 23)); /* y * 2^n */
    return x != x ? x : y;
}

static inline float fr_sigmoidf_fast(float x)
{
    return 1.0f / (1.0f + fr_expf_fast(-x));
}

static inline float fr_tanhf_fast(float x)
{
    const float ax = fabsf(x);
    const float z = x * x;
    float p, q;
    p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    p = p * z * x + x;
    q = 1.0f - 2.0f / (fr_expf_fast(2.0f * ax) + 1.0f);
    q = x < 0.0f ? -q : q;
    return ax < 0.625f ? p : q;
}

/* ---- float64: the same structure with Cephes' double-precision algorithms ----
 * exp: exp(r) = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2)) (Pade), |r| <= ln2/2, range
 * reduced in two parts of ln2: <= 1 ulp on [-708, 709] (clamped outside: below,
 * where the result is subnormal, the absolute error is < 3e-308).
 * tanh: |x| < 0.625: x + x^3 P(x^2) / Q(x^2), else 1 - 2/(exp(2|x|) + 1).
 * Measured against extended precision (tests/test_activations.py): tanh <= 2 ulp,
 * sigmoid <= 2.5 ulp -- the bounds glibc's libm meets for the same formulas. */

static inline double fr_exp_fast64(double x)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double xc, t, n, r, rr, px, y;
    uint64_t ni;
    xc = x < -708.0 ? -708.0 : x;
    xc = xc > 709.0 ? 709.0 : xc;
    t = xc * 1.4426950408889634073599 + magic;
    n = t - magic;
    ni = fr_f64_bits(t) - fr_f64_bits(magic);
    r = xc - n * 6.93145751953125e-1;
    r = r - n * 1.42860682030941723212e-6;
    rr = r * r;
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr + 9.99999999999999999910e-1);
    y = px / ((((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr +
                2.27265548208155028766e-1) * rr + 2.00000000000000000009e0) - px);
    y = 1.0 + 2.0 * y;
    y = fr_bits_f64(fr_f64_bits(y) + (ni << 52)); /* y * 2^n */
    return x != x ? x : y;
}

static inline double fr_sigmoid_f64(double x)
{
    return 1.0 / (1.0 + fr_exp_fast64(-x));
}

static inline double fr_tanh_f64(double x)
{
    const double ax = fabs(x);
    const double z = x * x;
    double p, q;
    p = ((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3) /
        (((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3);
    p = x + x * z * p;
    q = 1.0 - 2.0 / (fr_exp_fast64(2.0 * ax) + 1.0);
    q = x < 0.0 ? -q : q;
    return ax < 0.625 ? p : q;
}

#endif /* FR_MATHF_H */
