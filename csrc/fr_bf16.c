/*
 * fr_bf16.c -- the bfloat16 products: rounding, packing, and the two hardware tiles.
 *
 * Design note
 * -----------
 * precision=bfloat16 rounds the weights and every product's operands to bfloat16 (round
 * to nearest even, the hardware's rules: a subnormal becomes a zero of its sign, a NaN
 * stays a quiet NaN) and sums the products in float32.  Three paths compute that:
 *
 *   portable  every x86-64 CPU: the float32 tile of fr_tile_impl.h on weights packed as
 *             bfloat16-rounded floats (FR_PACK_ROUNDED) and operands rounded the same way.
 *   AVX512-BF16  `vdpbf16ps` (AMD Zen 4, Intel Cooper Lake and later): weights packed in
 *             VNNI pairs (FR_PACK_VNNI: for each pair of rows k = 2p, 2p+1, every column's
 *             two values side by side, so one 64-byte vector holds 16 columns of a pair),
 *             operands as bfloat16 rows; a pair of an operand row is broadcast as one
 *             32-bit lane.  Same register tiles as float32: R rows x 3-4 vectors.
 *   AMX       `tdpbf16ps` (Intel Sapphire Rapids and later): weights packed in 1 KiB B
 *             tiles (FR_PACK_AMX: per panel, per block of 32 rows, per strip of 16
 *             columns: 16 pairs of rows x 16 columns), operands as bfloat16 rows read as A
 *             tiles of R rows x 32 values; the 3-4 C tiles of a panel are its gates.
 *
 * The K axis of a matrix is two segments (the inputs' rows, then the recurrent rows),
 * each padded with zero rows to the path's granularity (2 for VNNI pairs, 32 for AMX
 * tiles), so that the input rows and the recurrent rows are separate, aligned views of
 * one packed copy; operand rows are padded the same way (fr_mat_layout.kseg, gran).
 *
 * Every path sums an element in a fixed order (vdpbf16ps: each pair's odd product, then
 * its even one; AMX: its own), so results are reproducible on a given path; which path
 * runs is chosen by the whole batch, never by how threads split it (fr_bf16_resolve).
 * AMX needs the OS's permission (arch_prctl, once per process; fr_amx_request) and a
 * tile configuration per thread (loaded lazily, released after each layer call).
 */
#include <stdint.h>
#include <string.h>

#include "fr_internal.h"
#include "fr_probe.h"

#if defined(__x86_64__) && (defined(FR_BUILD_BF16) || defined(FR_BUILD_AMX))
#include <immintrin.h>
#endif

/* ---- rounding ---- */

uint16_t fr_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7F800000u) == 0) /* zero or subnormal: a zero of its sign */
        return (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) /* NaN: quiet, sign and top payload kept */
        return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); /* ties to even; overflow: inf */
}

float fr_bf16_to_f32(uint16_t b)
{
    const uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void fr_bf16_row(const float *src, uint16_t *dst, ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; ++j)
        dst[j] = fr_bf16_round(src[j]);
}

void fr_bf16_round_row(const float *src, float *dst, ptrdiff_t n)
{
    ptrdiff_t j;
    for (j = 0; j < n; ++j)
        dst[j] = fr_bf16_to_f32(fr_bf16_round(src[j]));
}

/* ---- packing ---- */

/* Source row of packed row kp (padded segments), or -1 for a padding row. */
ptrdiff_t fr_mat_src_row(const fr_mat_layout *lay, ptrdiff_t kp)
{
    const ptrdiff_t k0 = (lay->kseg + lay->gran - 1) / lay->gran * lay->gran;
    if (kp < k0)
        return kp < lay->kseg ? kp : -1;
    return kp - k0 < lay->K - lay->kseg ? lay->kseg + (kp - k0) : -1;
}

/* Element (packed row kp, panel column c) of panel q of a float32 matrix (0 for padding). */
static float fr_mat_value(const fr_mat_layout *lay, ptrdiff_t q, ptrdiff_t kp, ptrdiff_t c, ptrdiff_t vl)
{
    const ptrdiff_t k = fr_mat_src_row(lay, kp);
    const ptrdiff_t blk = c / (lay->G * vl), g = (c / vl) % lay->G, u = (q * lay->ubp + blk) * vl + c % vl;
    if (k < 0 || u >= lay->units)
        return 0.0f;
    return ((const float *)lay->src[g])[k * lay->ld[g] + u];
}

void fr_bf16_pack_panel(const fr_mat_layout *lay, ptrdiff_t q, void *out, ptrdiff_t vl)
{
    const ptrdiff_t Kp = lay->Kp, pw = lay->pw;
    ptrdiff_t kp, c, kb, s, p, j;
    switch (lay->format) {
    case FR_PACK_VNNI: { /* [pair][column][2] */
        uint16_t *d = (uint16_t *)out + q * Kp * pw;
        for (p = 0; p < Kp / 2; ++p)
            for (c = 0; c < pw; ++c) {
                d[(p * pw + c) * 2] = fr_bf16_round(fr_mat_value(lay, q, 2 * p, c, vl));
                d[(p * pw + c) * 2 + 1] = fr_bf16_round(fr_mat_value(lay, q, 2 * p + 1, c, vl));
            }
        break;
    }
    case FR_PACK_AMX: { /* [block of 32 rows][strip of 16 columns][pair][16 columns][2] */
        uint16_t *d = (uint16_t *)out + q * Kp * pw;
        const ptrdiff_t ns = pw / 16;
        for (kb = 0; kb < Kp / 32; ++kb)
            for (s = 0; s < ns; ++s)
                for (p = 0; p < 16; ++p)
                    for (j = 0; j < 16; ++j) {
                        uint16_t *e = d + ((kb * ns + s) * 16 + p) * 32 + 2 * j;
                        e[0] = fr_bf16_round(fr_mat_value(lay, q, kb * 32 + 2 * p, s * 16 + j, vl));
                        e[1] = fr_bf16_round(fr_mat_value(lay, q, kb * 32 + 2 * p + 1, s * 16 + j, vl));
                    }
        break;
    }
    default: { /* FR_PACK_ROUNDED: float32 panels of bfloat16-rounded values */
        float *d = (float *)out + q * Kp * pw;
        for (kp = 0; kp < Kp; ++kp)
            for (c = 0; c < pw; ++c)
                d[kp * pw + c] = fr_bf16_to_f32(fr_bf16_round(fr_mat_value(lay, q, kp, c, vl)));
    }
    }
}

/* ---- availability ---- */

int fr_cpu_has_avx512bf16(void)
{
#if defined(__x86_64__) && defined(FR_BUILD_BF16)
    const fr_cpu *c = fr_cpu_get();
    return c->avx512f && c->avx512_bf16 && c->os_avx512;
#else
    return 0;
#endif
}

int fr_cpu_has_amx(void)
{
#if defined(__x86_64__) && defined(FR_BUILD_AMX)
    const fr_cpu *c = fr_cpu_get();
    return c->amx_tile && c->amx_bf16 && c->os_amx && c->avx512f && c->os_avx512 && fr_amx_request();
#else
    return 0;
#endif
}

/* ---- AVX512-BF16 tile ---- */

#if defined(__x86_64__) && defined(FR_BUILD_BF16)
#define FR_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* C[0:R, 0:np*nv*16] = A[0:R, 0:2*P] . VNNI panels (np adjacent, the second at B + bs),
 * for compile-time R, NV, NP (always inlined into the switch below). */
static inline __attribute__((always_inline)) FR_TARGET_BF16 void
fr_bf16_tile_n(const int R, const int NV, const int NP, ptrdiff_t P, const uint16_t *A, ptrdiff_t lda,
               const uint16_t *B, ptrdiff_t bs, ptrdiff_t pw, float *C, ptrdiff_t ldc)
{
    __m512 acc[8][8];
    ptrdiff_t p;
    int r, v, k;
    for (r = 0; r < R; ++r)
        for (v = 0; v < NP * NV; ++v)
            acc[r][v] = _mm512_setzero_ps();
    for (p = 0; p < P; ++p) {
        __m512i b[8];
        for (k = 0; k < NP; ++k)
            for (v = 0; v < NV; ++v)
                b[k * NV + v] = _mm512_loadu_si512((const void *)(B + k * bs + p * 2 * pw + v * 32));
        for (r = 0; r < R; ++r) {
            int32_t pair;
            memcpy(&pair, A + r * lda + 2 * p, sizeof pair);
            {
                const __m512i a = _mm512_set1_epi32(pair);
                for (v = 0; v < NP * NV; ++v)
                    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)b[v], (__m512bh)a);
            }
        }
    }
    for (r = 0; r < R; ++r)
        for (v = 0; v < NP * NV; ++v)
            _mm512_storeu_ps(C + r * ldc + v * 16, acc[r][v]);
}

FR_TARGET_BF16 void fr_bf16_tile_avx512(int R, int nv, int np, ptrdiff_t Kp, const uint16_t *A, ptrdiff_t lda,
                                        const uint16_t *B, ptrdiff_t bs, ptrdiff_t pw, float *C, ptrdiff_t ldc)
{
    const ptrdiff_t P = Kp / 2;
#define FR_BCASE(nv_, np_, r)                                                         \
    case (nv_) * 100 + (np_) * 10 + (r):                                              \
        fr_bf16_tile_n(r, nv_, np_, P, A, lda, B, bs, pw, C, ldc);                    \
        return;
    switch (nv * 100 + np * 10 + R) {
        FR_BCASE(3, 2, 1)
        FR_BCASE(4, 2, 1)
        FR_BCASE(3, 1, 1)
        FR_BCASE(3, 1, 2)
        FR_BCASE(3, 1, 3)
        FR_BCASE(3, 1, 4)
        FR_BCASE(3, 1, 5)
        FR_BCASE(3, 1, 6)
        FR_BCASE(3, 1, 7)
        FR_BCASE(3, 1, 8)
        FR_BCASE(4, 1, 1)
        FR_BCASE(4, 1, 2)
        FR_BCASE(4, 1, 3)
        FR_BCASE(4, 1, 4)
        FR_BCASE(4, 1, 5)
        FR_BCASE(4, 1, 6)
    default: /* not unrolled (never chosen by the driver): the same sums, one lane at a time */
        {
            ptrdiff_t p, c;
            int r, k;
            for (r = 0; r < R; ++r)
                for (k = 0; k < np; ++k)
                    for (c = 0; c < pw; ++c) {
                        float s = 0.0f;
                        for (p = 0; p < P; ++p) {
                            const uint16_t *b = B + k * bs + (p * pw + c) * 2;
                            s += fr_bf16_to_f32(A[r * lda + 2 * p + 1]) * fr_bf16_to_f32(b[1]);
                            s += fr_bf16_to_f32(A[r * lda + 2 * p]) * fr_bf16_to_f32(b[0]);
                        }
                        C[r * ldc + k * pw + c] = s;
                    }
        }
        return;
    }
#undef FR_BCASE
}
#else
void fr_bf16_tile_avx512(int R, int nv, int np, ptrdiff_t Kp, const uint16_t *A, ptrdiff_t lda, const uint16_t *B,
                         ptrdiff_t bs, ptrdiff_t pw, float *C, ptrdiff_t ldc)
{
    /* never called: fr_bf16_resolve refuses the path without FR_BUILD_BF16 */
    (void)R, (void)nv, (void)np, (void)Kp, (void)A, (void)lda, (void)B, (void)bs, (void)pw, (void)C, (void)ldc;
}
#endif

/* ---- AMX tile ---- */

#if defined(__x86_64__) && defined(FR_BUILD_AMX)
#define FR_TARGET_AMX __attribute__((target("amx-tile,amx-bf16")))

/* The calling thread's tile configuration: the rows of its A and C tiles (0: none
 * loaded).  Tiles: tmm0 A (rows x 64 bytes = 32 bfloat16), tmm1-3 B (16 pairs of rows x
 * 16 columns), tmm4-7 C (rows x 16 floats). */
static __thread int fr_amx_rows = 0;

FR_TARGET_AMX static void fr_amx_configure(int rows)
{
    unsigned char cfg[64];
    int i;
    memset(cfg, 0, sizeof cfg);
    cfg[0] = 1; /* palette 1 */
    for (i = 0; i < 8; ++i) {
        const int b = i >= 1 && i <= 3; /* the B tiles: 16 rows */
        cfg[16 + 2 * i] = 64;            /* bytes per row (colsb, little-endian uint16) */
        cfg[48 + i] = (unsigned char)(b ? 16 : rows);
    }
    __asm__ volatile("" ::: "memory");
    _tile_loadconfig(cfg);
    fr_amx_rows = rows;
}

void fr_amx_release(void)
{
    if (fr_amx_rows) {
        __asm__ volatile("tilerelease" ::: "memory");
        fr_amx_rows = 0;
    }
}

/* C[0:R, 0:nv*16] = A[0:R, 0:Kp] . one AMX panel (nv strips of 16 columns), R <= 16. */
FR_TARGET_AMX void fr_bf16_tile_amx(int R, int nv, ptrdiff_t Kp, const uint16_t *A, ptrdiff_t lda, const uint16_t *B,
                                    float *C, ptrdiff_t ldc)
{
    ptrdiff_t kb;
    const ptrdiff_t nb = Kp / 32;
    if (fr_amx_rows != R)
        fr_amx_configure(R);
    __asm__ volatile("" ::: "memory"); /* the operand rows were just written with plain stores */
    _tile_zero(4);
    _tile_zero(5);
    _tile_zero(6);
    _tile_zero(7);
    for (kb = 0; kb < nb; ++kb) {
        const uint16_t *b = B + kb * nv * 512; /* 512 bfloat16 = one 1 KiB tile */
        _tile_loadd(0, A + kb * 32, lda * 2);
        _tile_loadd(1, b, 64);
        _tile_dpbf16ps(4, 0, 1);
        _tile_loadd(2, b + 512, 64);
        _tile_dpbf16ps(5, 0, 2);
        _tile_loadd(3, b + 1024, 64);
        _tile_dpbf16ps(6, 0, 3);
        if (nv == 4) {
            _tile_loadd(1, b + 1536, 64);
            _tile_dpbf16ps(7, 0, 1);
        }
    }
    _tile_stored(4, C, ldc * 4);
    _tile_stored(5, C + 16, ldc * 4);
    _tile_stored(6, C + 32, ldc * 4);
    if (nv == 4)
        _tile_stored(7, C + 48, ldc * 4);
    __asm__ volatile("" ::: "memory"); /* C is read with plain loads next */
}
#else
void fr_amx_release(void)
{
}

void fr_bf16_tile_amx(int R, int nv, ptrdiff_t Kp, const uint16_t *A, ptrdiff_t lda, const uint16_t *B, float *C,
                      ptrdiff_t ldc)
{
    /* never called: fr_bf16_resolve refuses the path without FR_BUILD_AMX */
    (void)R, (void)nv, (void)Kp, (void)A, (void)lda, (void)B, (void)C, (void)ldc;
}
#endif
