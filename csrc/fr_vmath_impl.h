/*
 * fr_vmath_impl.h -- exp / sigmoid / tanh / relu / clip on SIMD vectors, for the cells'
 * pointwise math.  Template body: included per dtype by fr_forward_body.h (after
 * fr_tile_impl.h, which defines FR_VL and the vector type), so compiled once per ISA;
 * FR_F64 is 1 for double, 0 for float.
 *
 * Why vectors and not scalar loops: the cells update one vector of units right after
 * each register tile (fr_cells_impl.h), and loops of 16 elements left to the
 * auto-vectorizer came out partly scalar once inlined (measured: the update took 22% of
 * an LSTM call instead of ~10%).  Written with GCC vector extensions, branch-free:
 * selects are bit masks from vector comparisons.
 *
 * Algorithms (the same as the scalar ones they replace; tests/test_activations.py
 * checks dense grids against float64 / extended precision on every ISA):
 *   float32 exp  Cephes' range reduction exp(x) = 2^n exp(r), |r| <= ln2/2, degree-6
 *                polynomial: <= 2 ulp on [-86.5, 88]; clamped outside that range
 *                (absolute error < 3e-38 below it; saturates at exp(88) above).
 *   sigmoid      1 / (1 + exp(-x)): relative error < 3e-7 (float32).
 *   tanh         |x| < 0.625: Cephes' odd polynomial (float32) / rational function
 *                (float64); else 1 - 2/(exp(2|x|) + 1) with the sign of x.
 *   float64 exp  Cephes' Pade form exp(r) = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2)), range
 *                reduced in two parts of ln2: <= 1 ulp on [-708, 709] (clamped outside).
 *                Measured: tanh <= 2 ulp, sigmoid <= 2.5 ulp -- libm's bounds.
 * NaN propagates through all of them; +-inf give the limits.
 */

#if FR_F64
typedef int64_t FR_FN(fr_ivec) __attribute__((vector_size(FR_VBYTES)));
#define FR_SIGN_MASK INT64_MIN
#else
typedef int32_t FR_FN(fr_ivec) __attribute__((vector_size(FR_VBYTES)));
#define FR_SIGN_MASK INT32_MIN
#endif

#define FR_VEC FR_FN(fr_vec)
#define FR_IVEC FR_FN(fr_ivec)
#define FR_VINLINE static inline __attribute__((always_inline))

/* m ? a : b, lane by lane, for a mask m from a vector comparison (all ones or zeros) */
FR_VINLINE FR_VEC FR_FN(fr_vsel)(FR_IVEC m, FR_VEC a, FR_VEC b)
{
    return (FR_VEC)((m & (FR_IVEC)a) | (~m & (FR_IVEC)b));
}

FR_VINLINE FR_VEC FR_FN(fr_vabs)(FR_VEC x)
{
    return (FR_VEC)((FR_IVEC)x & ~((FR_IVEC){0} + FR_SIGN_MASK));
}

FR_VINLINE FR_VEC FR_FN(fr_vexp)(FR_VEC x)
{
    FR_VEC xc, t, n, r, y;
    FR_IVEC ni;
#if FR_F64
    const FR_VEC magic = (FR_VEC){0} + 6755399441055744.0; /* 1.5 * 2^52: x + magic rounds x */
    FR_VEC rr, px;
    xc = FR_FN(fr_vsel)(x < -708.0, (FR_VEC){0} - 708.0, x); /* keeps 2^n normal ... */
    xc = FR_FN(fr_vsel)(xc > 709.0, (FR_VEC){0} + 709.0, xc); /* ... and finite; NaN passes */
    t = xc * 1.4426950408889634073599 + magic;
    n = t - magic;
    ni = (FR_IVEC)t - (FR_IVEC)magic; /* n as a two's-complement integer */
    r = xc - n * 6.93145751953125e-1;
    r = r - n * 1.42860682030941723212e-6;
    rr = r * r;
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr + 9.99999999999999999910e-1);
    y = px / ((((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr +
                2.27265548208155028766e-1) * rr + 2.00000000000000000009e0) - px);
    y = 1.0 + 2.0 * y;
    y = (FR_VEC)((FR_IVEC)y + (ni << 52)); /* y * 2^n */
#else
    const FR_VEC magic = (FR_VEC){0} + 12582912.0f; /* 1.5 * 2^23: x + magic rounds x */
    xc = FR_FN(fr_vsel)(x < -86.5f, (FR_VEC){0} - 86.5f, x);
    xc = FR_FN(fr_vsel)(xc > 88.0f, (FR_VEC){0} + 88.0f, xc);
    t = xc * 1.44269504088896341f + magic;
    n = t - magic;
    ni = (FR_IVEC)t - 0x4B400000;
    r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    y = 1.9875691500e-4f + (FR_VEC){0};
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    y = (FR_VEC)((FR_IVEC)y + (ni << 23));
#endif
    return FR_FN(fr_vsel)(x != x, x, y);
}

/* 1 / d.  AVX-512 float32: rcp14 (relative error < 2^-14) and one Newton step in FMAs (< 1 ulp
 * more than the division; d is in [1, inf] here, where rcp14 is exact at the ends) instead of a
 * division, which takes several times as long on these cores. */
FR_VINLINE FR_VEC FR_FN(fr_vrecip)(FR_VEC d)
{
#if !FR_F64 && FR_VBYTES == 64 && defined(__AVX512F__)
    const FR_VEC r = (FR_VEC)_mm512_rcp14_ps((__m512)d);
    const FR_VEC e = (FR_T)1 - d * r;
    return FR_FN(fr_vsel)((FR_IVEC)(d == d), r + r * e, d); /* NaN passes */
#else
    return (FR_T)1 / d;
#endif
}

FR_VINLINE FR_VEC FR_FN(fr_vsigmoid1)(FR_VEC x)
{
    return FR_FN(fr_vrecip)((FR_T)1 + FR_FN(fr_vexp)(-x));
}

FR_VINLINE FR_VEC FR_FN(fr_vtanh1)(FR_VEC x)
{
    const FR_VEC ax = FR_FN(fr_vabs)(x);
    const FR_VEC z = x * x;
    FR_VEC p, q;
#if FR_F64
    p = ((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3) /
        (((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3);
    p = x + x * z * p;
    q = 1.0 - 2.0 / (FR_FN(fr_vexp)(2.0 * ax) + 1.0);
    q = FR_FN(fr_vsel)(x < 0.0, -q, q);
    return FR_FN(fr_vsel)(ax < 0.625, p, q);
#else
    p = -5.70498872745e-3f + (FR_VEC){0};
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    p = p * z * x + x;
    q = 1.0f - 2.0f * FR_FN(fr_vrecip)(FR_FN(fr_vexp)(2.0f * ax) + 1.0f);
    q = FR_FN(fr_vsel)(x < 0.0f, -q, q);
    return FR_FN(fr_vsel)(ax < 0.625f, p, q);
#endif
}

/* the cell's activation (fr_activation) */
FR_VINLINE FR_VEC FR_FN(fr_vact1)(FR_VEC x, int act)
{
    switch (act) {
    case FR_ACT_TANH:
        return FR_FN(fr_vtanh1)(x);
    case FR_ACT_SIGMOID:
        return FR_FN(fr_vsigmoid1)(x);
    case FR_ACT_RELU:
        return FR_FN(fr_vsel)(x < (FR_T)0, (FR_VEC){0}, x); /* NaN propagates */
    default: /* FR_ACT_LINEAR */
        return x;
    }
}

/* clip_by_value(x, -lim, lim); NaN propagates */
FR_VINLINE FR_VEC FR_FN(fr_vclip1)(FR_VEC x, FR_T lim)
{
    const FR_VEC v = FR_FN(fr_vsel)(x < -lim, (FR_VEC){0} - lim, x);
    return FR_FN(fr_vsel)(v > lim, (FR_VEC){0} + lim, v);
}

/* n <= VL values at p as a vector, zero-filled (n == VL: one load) */
FR_VINLINE FR_VEC FR_FN(fr_vld)(const FR_T *p, ptrdiff_t n)
{
    FR_VEC v = {0};
    memcpy(&v, p, (size_t)n * sizeof(FR_T));
    return v;
}

/* the first n <= VL lanes of v to p */
FR_VINLINE void FR_FN(fr_vst)(FR_T *p, FR_VEC v, ptrdiff_t n)
{
    memcpy(p, &v, (size_t)n * sizeof(FR_T));
}

/* Entry point for accuracy tests: the activation exactly as the kernels apply it
 * (act < 0 selects the gates' logistic sigmoid), VL values at a time. */
void FR_ENTRY(fr_apply_activation)(FR_T *x, ptrdiff_t n, int act)
{
    ptrdiff_t i;
    for (i = 0; i < n; i += FR_VL) {
        const ptrdiff_t k = n - i < FR_VL ? n - i : FR_VL;
        FR_VEC v = FR_FN(fr_vld)(x + i, k);
        v = act < 0 ? FR_FN(fr_vsigmoid1)(v) : FR_FN(fr_vact1)(v, act);
        FR_FN(fr_vst)(x + i, v, k);
    }
}

#undef FR_SIGN_MASK
#undef FR_VEC
#undef FR_IVEC
#undef FR_VINLINE
