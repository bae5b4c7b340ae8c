/*
 * test_kernels.c -- standalone C test of the fastrnn kernels.
 *
 * (a) the portable GEMM (fr_gemm_ref_*) against a naive triple loop, all four
 *     transpose combinations, odd and zero sizes, padded leading dimensions,
 *     beta == 0 with NaN in C (must not be read), untouched padding; and the
 *     row-major helper / recurrent GEMM through NULL, half-NULL and a
 *     test-provided Fortran-convention BLAS table (checks the operand swap).
 * (b) fr_layer_forward for every cell family and option, float and double,
 *     batch/time-major, reverse on/off, lengths NULL / ragged / with zeros,
 *     against ref_forward() below: a deliberately naive per-step
 *     implementation in double precision that loops over t and b,
 *     concatenates [x, h], multiplies by the full kernel, applies the TF 1.x
 *     equations and masks.
 * (c) argument checking: FR_ERR_ARG, FR_ERR_WORKSPACE, FR_ERR_ISA,
 *     fr_workspace_size == 0, options out of range.
 * (d) the caller's floating-point state: modes restored, raised flags kept.
 * (e) weights packed by fr_pack_weights: used when they match the layer and ISA,
 *     ignored (never misread) when they belong to another layer or ISA.
 * (f) cancellation through fr_options.poll, on every schedule.
 * The library reads no environment; this harness does, to choose the fr_options of
 * every call: FASTRNN_ISA, FASTRNN_XPROJ, FASTRNN_SCHEDULE, FASTRNN_NUM_THREADS,
 * FASTRNN_TILE_ROWS (.ci/run runs it under each).
 *
 * Every output and workspace buffer is malloc'ed at its exact size, so an
 * ASan build catches any out-of-bounds write.  Last line: "N passed, N failed";
 * exit status non-zero on any failure.
 */
#include <fenv.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "../fastrnn.h"
#include "../fr_internal.h"
#include "test_clock.h"

static int g_pass, g_fail;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (cond) {                                        \
            g_pass++;                                      \
        } else {                                           \
            g_fail++;                                      \
            if (g_fail <= 50) {                            \
                printf("FAIL %s:%d: ", __FILE__, __LINE__); \
                printf(__VA_ARGS__);                       \
                printf("\n");                              \
            }                                              \
        }                                                  \
    } while (0)

/* ---------------------------------------------------------------- helpers */

static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;

/* uniform in [-1, 1) from a 64-bit LCG (Knuth's MMIX constants) */
static double urand(void)
{
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(g_rng >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static int irand(int n) /* in [0, n) */
{
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int)((g_rng >> 33) % (uint64_t)n);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Random doubles, rounded through float when dtype is float32 so that the
 * kernel and the reference see exactly the same values. */
static double *rand_arr(size_t n, double scale, int dtype)
{
    double *a = (double *)xmalloc(n * sizeof(double));
    size_t i;
    for (i = 0; i < n; ++i) {
        a[i] = urand() * scale;
        if (dtype == FR_FLOAT32)
            a[i] = (double)(float)a[i];
    }
    return a;
}

/* A copy in the kernel's dtype; NULL for an empty array (the kernel must
 * accept NULL for empty arrays). */
static void *to_dtype(const double *src, size_t n, int dtype)
{
    size_t i;
    if (!src || n == 0)
        return NULL;
    if (dtype == FR_FLOAT32) {
        float *f = (float *)xmalloc(n * sizeof(float));
        for (i = 0; i < n; ++i)
            f[i] = (float)src[i];
        return f;
    } else {
        double *d = (double *)xmalloc(n * sizeof(double));
        memcpy(d, src, n * sizeof(double));
        return d;
    }
}

static void *alloc_fill(size_t n, int dtype, double v)
{
    size_t i;
    if (n == 0)
        return NULL;
    if (dtype == FR_FLOAT32) {
        float *f = (float *)xmalloc(n * sizeof(float));
        for (i = 0; i < n; ++i)
            f[i] = (float)v;
        return f;
    } else {
        double *d = (double *)xmalloc(n * sizeof(double));
        for (i = 0; i < n; ++i)
            d[i] = v;
        return d;
    }
}

static double get(const void *p, size_t i, int dtype)
{
    return dtype == FR_FLOAT32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static int same_as(const void *buf, const double *ref, size_t n, int dtype)
{
    size_t i;
    for (i = 0; i < n; ++i)
        if (get(buf, i, dtype) != ref[i])
            return 0;
    return 1;
}

static double g_rtol, g_atol;
static int g_bf16; /* 0: the dtype's arithmetic; else the fr_bf16_path run_case uses */

/* A product operand or weight as the bfloat16 paths see it: rounded to bfloat16. */
static double rbf(double v)
{
    return g_bf16 ? (double)fr_bf16_to_f32(fr_bf16_round((float)v)) : v;
}

/* max over i of |got-ref| / (rtol*|ref| + atol); <= 1 passes. */
static double worst(const void *got, const double *ref, size_t n, int dtype, size_t *where)
{
    double w = 0.0;
    size_t i;
    *where = 0;
    for (i = 0; i < n; ++i) {
        const double g = get(got, i, dtype);
        const double e = fabs(g - ref[i]) / (g_rtol * fabs(ref[i]) + g_atol);
        if (!(e <= w)) { /* also catches NaN */
            w = (e == e) ? e : INFINITY;
            *where = i;
        }
    }
    return w;
}

static void set_tol(int dtype)
{
    if (dtype == FR_FLOAT32) {
        g_rtol = 1e-5;
        g_atol = 1e-6;
    } else {
        g_rtol = 1e-12;
        g_atol = 1e-13;
    }
}

/* ----------------------------------------- a test BLAS (Fortran convention) */

static long g_blas_calls;

#define NAIVE_FORTRAN_GEMM(NAME, T)                                                  \
    static void NAME(char *transa, char *transb, int *m, int *n, int *k, T *alpha, \
                     T *a, int *lda, T *b, int *ldb, T *beta, T *c, int *ldc)      \
    {                                                                             \
        int i, j, l;                                                              \
        const int ta = (*transa == 'T' || *transa == 't');                        \
        const int tb = (*transb == 'T' || *transb == 't');                        \
        g_blas_calls++;                                                           \
        for (j = 0; j < *n; ++j)                                                  \
            for (i = 0; i < *m; ++i) {                                            \
                T s = 0;                                                          \
                for (l = 0; l < *k; ++l) {                                        \
                    T av = ta ? a[l + (ptrdiff_t)i * *lda] : a[i + (ptrdiff_t)l * *lda]; \
                    T bv = tb ? b[j + (ptrdiff_t)l * *ldb] : b[l + (ptrdiff_t)j * *ldb]; \
                    s += av * bv;                                                 \
                }                                                                 \
                c[i + (ptrdiff_t)j * *ldc] = *beta == 0 ? *alpha * s               \
                    : *alpha * s + *beta * c[i + (ptrdiff_t)j * *ldc];            \
            }                                                                     \
    }

NAIVE_FORTRAN_GEMM(test_sgemm, float)
NAIVE_FORTRAN_GEMM(test_dgemm, double)

static const fr_blas g_blas_null_entries = {NULL, NULL};
static const fr_blas g_blas_test = {test_sgemm, test_dgemm};

/* The options of every call (from the environment, see the top of this file). */
static fr_options g_opt;

/* g_opt with the GEMM of a BLAS table: NULL -> the packed GEMM, &g_blas_null_entries ->
 * the portable C GEMM, &g_blas_test -> the test's own BLAS. */
static fr_options opts_with(const fr_blas *blas)
{
    fr_options o = g_opt;
    o.gemm = blas == NULL ? FR_GEMM_PACKED : blas == &g_blas_test ? FR_GEMM_BLAS : FR_GEMM_PORTABLE;
    o.blas = blas == &g_blas_test ? blas : NULL;
    return o;
}

/* One of `names` (index = enum value) from the environment variable, or `dflt`. */
static int env_choice(const char *var, const char *const *names, int n, int dflt)
{
    const char *v = getenv(var);
    int i;
    if (!v || !v[0])
        return dflt;
    for (i = 0; i < n; ++i)
        if (names[i] && strcmp(v, names[i]) == 0)
            return i;
    fprintf(stderr, "%s=%s: unknown value\n", var, v);
    exit(2);
}

static void options_from_env(void)
{
    static const char *const isas[] = {"auto", "generic", "avx2", "avx512"};
    static const char *const xproj[] = {"auto", "hoisted", "fused"};
    static const char *const sched[] = {"auto", "columns", "rows"};
    const char *threads = getenv("FASTRNN_NUM_THREADS");
    const char *tile = getenv("FASTRNN_TILE_ROWS");
    fr_options_default(&g_opt);
    g_opt.isa = env_choice("FASTRNN_ISA", isas, 4, FR_ISA_AUTO);
    g_opt.xproj = env_choice("FASTRNN_XPROJ", xproj, 3, FR_XPROJ_AUTO);
    g_opt.schedule = env_choice("FASTRNN_SCHEDULE", sched, 3, FR_SCHED_AUTO);
    if (threads && threads[0])
        g_opt.nthreads = atoi(threads);
    if (tile && tile[0])
        g_opt.tile_rows = atoi(tile);
    if (fr_isa_resolve(g_opt.isa) < 0 || g_opt.nthreads < 1) {
        fprintf(stderr, "FASTRNN_ISA / FASTRNN_NUM_THREADS: not available or invalid here\n");
        exit(2);
    }
    printf("options: isa %s (%s), xproj %d, schedule %d, threads %d, tile rows %d\n", fr_isa_name(g_opt.isa),
           fr_isa_name(fr_isa_resolve(g_opt.isa)), g_opt.xproj, g_opt.schedule, g_opt.nthreads, g_opt.tile_rows);
}

/* ------------------------------------------------------------ (a) GEMM tests */

/* column-major element (i, j) of op(X), X stored with leading dimension ld */
static double opget(const double *x, int trans, int i, int j, int ld)
{
    return trans ? x[j + (ptrdiff_t)i * ld] : x[i + (ptrdiff_t)j * ld];
}

static void test_gemm_ref_one(int dtype, int ta, int tb, int m, int n, int k,
                              double alpha, double beta)
{
    /* op(A) is m x k, op(B) is k x n; stored with padded leading dims */
    const int arows = ta ? k : m, acols = ta ? m : k;
    const int brows = tb ? n : k, bcols = tb ? k : n;
    const int lda = arows + 2, ldb = brows + 1, ldc = m + 3;
    const size_t na = (size_t)lda * (size_t)(acols > 0 ? acols : 1);
    const size_t nb = (size_t)ldb * (size_t)(bcols > 0 ? bcols : 1);
    const size_t nc = (size_t)ldc * (size_t)(n > 0 ? n : 1);
    double *A = rand_arr(na, 1.0, dtype), *Bm = rand_arr(nb, 1.0, dtype);
    double *C0 = rand_arr(nc, 1.0, dtype), *R = (double *)xmalloc(nc * sizeof(double));
    void *a = to_dtype(A, na, dtype), *b = to_dtype(Bm, nb, dtype), *c;
    int i, j, l, ok_pad = 1;
    size_t where;
    double w;

    if (beta == 0.0) /* C must not be read: poison the block with NaN */
        for (j = 0; j < n; ++j)
            for (i = 0; i < m; ++i)
                C0[i + (ptrdiff_t)j * ldc] = NAN;
    c = to_dtype(C0, nc, dtype);

    for (i = 0; i < (int)nc; ++i)
        R[i] = C0[i];
    for (j = 0; j < n; ++j)
        for (i = 0; i < m; ++i) {
            double s = 0.0;
            for (l = 0; l < k; ++l)
                s += opget(A, ta, i, l, lda) * opget(Bm, tb, l, j, ldb);
            R[i + (ptrdiff_t)j * ldc] =
                alpha * s + (beta == 0.0 ? 0.0 : beta * C0[i + (ptrdiff_t)j * ldc]);
        }

    if (dtype == FR_FLOAT32)
        fr_gemm_ref_f32(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, (float)alpha,
                        (const float *)a, lda, (const float *)b, ldb, (float)beta,
                        (float *)c, ldc);
    else
        fr_gemm_ref_f64(ta ? 't' : 'n', tb ? 't' : 'n', m, n, k, alpha,
                        (const double *)a, lda, (const double *)b, ldb, beta,
                        (double *)c, ldc);

    /* padding rows of C (i >= m) must be untouched, bit for bit */
    for (j = 0; j < n; ++j)
        for (i = m; i < ldc; ++i)
            if (get(c, (size_t)i + (size_t)j * (size_t)ldc, dtype) != C0[i + (ptrdiff_t)j * ldc])
                ok_pad = 0;
    for (j = 0; j < n; ++j) /* only compare the m x n block */
        for (i = m; i < ldc; ++i)
            R[i + (ptrdiff_t)j * ldc] = get(c, (size_t)i + (size_t)j * (size_t)ldc, dtype);
    w = worst(c, R, (size_t)ldc * (size_t)n, dtype, &where);
    CHECK(w <= 1.0 && ok_pad,
          "gemm_ref %s trans=%c%c m=%d n=%d k=%d alpha=%g beta=%g: err %g at %zu, pad %d",
          dtype == FR_FLOAT32 ? "f32" : "f64", ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k,
          alpha, beta, w, where, ok_pad);

    free(A); free(Bm); free(C0); free(R); free(a); free(b); free(c);
}

/* row-major helper through each kind of table (recurrent: the step products' alpha 1, beta 0) */
static void test_gemm_rm_one(int dtype, int M, int N, int K, double alpha, double beta,
                             const fr_blas *blas, int recurrent)
{
    const int lda = K + 1, ldb = N + 2, ldc = N + 1;
    const size_t na = (size_t)M * lda, nb = (size_t)K * ldb, nc = (size_t)M * ldc;
    double *A = rand_arr(na, 1.0, dtype), *Bm = rand_arr(nb, 1.0, dtype);
    double *C0 = rand_arr(nc, 1.0, dtype), *R = (double *)xmalloc((nc ? nc : 1) * sizeof(double));
    void *a, *b, *c;
    int i, j, l;
    size_t where;
    double w;
    long calls0 = g_blas_calls;

    if (recurrent) {
        alpha = 1.0;
        beta = 0.0;
    }
    if (beta == 0.0)
        for (i = 0; i < M; ++i)
            for (j = 0; j < N; ++j)
                C0[(size_t)i * ldc + j] = NAN;
    a = to_dtype(A, na, dtype);
    b = to_dtype(Bm, nb, dtype);
    c = to_dtype(C0, nc, dtype);
    for (i = 0; i < (int)nc; ++i)
        R[i] = C0[i];
    for (i = 0; i < M; ++i)
        for (j = 0; j < N; ++j) {
            double s = 0.0;
            for (l = 0; l < K; ++l)
                s += A[(size_t)i * lda + l] * Bm[(size_t)l * ldb + j];
            R[(size_t)i * ldc + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * C0[(size_t)i * ldc + j]);
        }
    if (dtype == FR_FLOAT32)
        fr_gemm_rm_f32(blas, M, N, K, (float)alpha, (const float *)a, lda,
                       (const float *)b, ldb, (float)beta, (float *)c, ldc);
    else
        fr_gemm_rm_f64(blas, M, N, K, alpha, (const double *)a, lda, (const double *)b,
                       ldb, beta, (double *)c, ldc);
    w = nc ? worst(c, R, nc, dtype, &where) : 0.0;
    CHECK(w <= 1.0, "gemm_rm %s M=%d N=%d K=%d rec=%d table=%s: err %g",
          dtype == FR_FLOAT32 ? "f32" : "f64", M, N, K, recurrent,
          blas == NULL ? "NULL" : blas == &g_blas_test ? "test" : "null-entries", w);
    if (blas == &g_blas_test && M > 0 && N > 0)
        CHECK(g_blas_calls > calls0, "table entry not used");
    if (blas != &g_blas_test)
        CHECK(g_blas_calls == calls0, "table entry used unexpectedly");
    free(A); free(Bm); free(C0); free(R); free(a); free(b); free(c);
}

static void test_gemm(void)
{
    static const int sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {7, 3, 2}, {5, 9, 1}, {1, 6, 4},
                                   {13, 11, 17}, {0, 4, 3}, {4, 0, 3}, {6, 4, 0}};
    static const double ab[][2] = {{1.0, 0.0}, {0.7, -1.3}, {0.0, 0.5}, {1.0, 1.0}, {-2.0, 0.0}};
    const fr_blas *tables[3];
    int dt, ta, tb, s, q, tbl, rec;
    tables[0] = NULL;
    tables[1] = &g_blas_null_entries;
    tables[2] = &g_blas_test;
    for (dt = 0; dt < 2; ++dt) {
        set_tol(dt);
        for (ta = 0; ta < 2; ++ta)
            for (tb = 0; tb < 2; ++tb)
                for (s = 0; s < (int)(sizeof sizes / sizeof sizes[0]); ++s)
                    for (q = 0; q < (int)(sizeof ab / sizeof ab[0]); ++q)
                        test_gemm_ref_one(dt, ta, tb, sizes[s][0], sizes[s][1], sizes[s][2],
                                          ab[q][0], ab[q][1]);
        for (tbl = 0; tbl < 3; ++tbl)
            for (rec = 0; rec < 2; ++rec)
                for (s = 0; s < (int)(sizeof sizes / sizeof sizes[0]); ++s)
                    if (sizes[s][2] > 0)
                        for (q = 0; q < (int)(sizeof ab / sizeof ab[0]); ++q)
                            test_gemm_rm_one(dt, sizes[s][0], sizes[s][1], sizes[s][2],
                                             ab[q][0], ab[q][1], tables[tbl], rec);
    }
}

/* -------------------------------------------- (b) naive reference forward */

typedef struct {
    const char *name;
    int cell, act;
    int peep, cell_clip, proj, proj_clip;
    double forget_bias;
} cfg_t;

typedef struct {
    double *kernel, *bias, *cand_kernel, *cand_bias, *wi, *wf, *wo, *projk;
    double *x, *h0, *c0;
    double cell_clip, proj_clip;
} params_t;

static double r_sig(double v) { return 1.0 / (1.0 + exp(-v)); }

static double r_act(double v, int act)
{
    switch (act) {
    case FR_ACT_TANH: return tanh(v);
    case FR_ACT_SIGMOID: return r_sig(v);
    case FR_ACT_RELU: return v > 0.0 ? v : 0.0;
    default: return v;
    }
}

static double r_clip(double v, double lim) { return v < -lim ? -lim : v > lim ? lim : v; }

/* The obviously-correct version: for every t, for every b, either a full
 * TF 1.x cell step on concat([x, h]) with the whole kernel, or (t >= len) a
 * zero output and an unchanged state. */
static void ref_forward(const cfg_t *cfg, const params_t *pr, ptrdiff_t B, ptrdiff_t T,
                        ptrdiff_t D, ptrdiff_t U, ptrdiff_t P, int time_major, int reverse,
                        const int64_t *lengths, double *out, double *hf, double *cf)
{
    const ptrdiff_t G = cfg->cell == FR_CELL_LSTM ? 4 : cfg->cell == FR_CELL_GRU ? 2 : 1;
    double *h = (double *)xmalloc((size_t)(B * P + 1) * sizeof(double));
    double *c = (double *)xmalloc((size_t)(B * U + 1) * sizeof(double));
    double *v = (double *)xmalloc((size_t)(D + P) * sizeof(double));
    double *z = (double *)xmalloc((size_t)(G * U) * sizeof(double));
    double *m = (double *)xmalloc((size_t)U * sizeof(double));
    double *hn = (double *)xmalloc((size_t)P * sizeof(double));
    ptrdiff_t t, b, k, n, q;

    memcpy(h, pr->h0, (size_t)(B * P) * sizeof(double));
    if (cfg->cell == FR_CELL_LSTM)
        memcpy(c, pr->c0, (size_t)(B * U) * sizeof(double));

    for (t = 0; t < T; ++t) {
        for (b = 0; b < B; ++b) {
            const ptrdiff_t len = lengths ? (ptrdiff_t)lengths[b] : T;
            const ptrdiff_t tt = (t < len && reverse) ? len - 1 - t : t;
            const ptrdiff_t row = time_major ? tt * B + b : b * T + tt;
            double *hb = h + b * P, *cb = c + b * U, *o = out + row * P;
            if (t >= len) { /* masked: zero output, state copied through */
                for (q = 0; q < P; ++q)
                    o[q] = 0.0;
                continue;
            }
            /* v = concat([x_t, h]) (bfloat16: the operands and weights rounded) */
            for (k = 0; k < D; ++k)
                v[k] = rbf(pr->x[row * D + k]);
            for (k = 0; k < P; ++k)
                v[D + k] = rbf(hb[k]);
            /* z = v . kernel + bias */
            for (n = 0; n < G * U; ++n) {
                double s = pr->bias[n];
                for (k = 0; k < D + P; ++k)
                    s += v[k] * rbf(pr->kernel[k * G * U + n]);
                z[n] = s;
            }
            if (cfg->cell == FR_CELL_RNN) {
                for (n = 0; n < U; ++n)
                    hn[n] = r_act(z[n], cfg->act);
            } else if (cfg->cell == FR_CELL_LSTM) {
                for (n = 0; n < U; ++n) {
                    const double i = z[n], j = z[U + n], f = z[2 * U + n], og = z[3 * U + n];
                    const double cp = cb[n];
                    double cn;
                    if (cfg->peep)
                        cn = r_sig(f + cfg->forget_bias + pr->wf[n] * cp) * cp +
                             r_sig(i + pr->wi[n] * cp) * r_act(j, cfg->act);
                    else
                        cn = r_sig(f + cfg->forget_bias) * cp + r_sig(i) * r_act(j, cfg->act);
                    if (cfg->cell_clip)
                        cn = r_clip(cn, pr->cell_clip);
                    if (cfg->peep)
                        m[n] = r_sig(og + pr->wo[n] * cn) * r_act(cn, cfg->act);
                    else
                        m[n] = r_sig(og) * r_act(cn, cfg->act);
                    cb[n] = cn;
                }
                if (cfg->proj) {
                    for (q = 0; q < P; ++q) {
                        double s = 0.0;
                        for (n = 0; n < U; ++n)
                            s += rbf(m[n]) * rbf(pr->projk[n * P + q]);
                        hn[q] = cfg->proj_clip ? r_clip(s, pr->proj_clip) : s;
                    }
                } else {
                    for (n = 0; n < U; ++n)
                        hn[n] = m[n];
                }
            } else { /* GRU */
                double *zc = (double *)xmalloc((size_t)U * sizeof(double));
                for (k = 0; k < P; ++k) /* v = concat([x_t, r * h]) */
                    v[D + k] = rbf(r_sig(z[k]) * hb[k]);
                for (n = 0; n < U; ++n) {
                    double s = pr->cand_bias[n];
                    for (k = 0; k < D + U; ++k)
                        s += v[k] * rbf(pr->cand_kernel[k * U + n]);
                    zc[n] = s;
                }
                for (n = 0; n < U; ++n) {
                    const double u = r_sig(z[U + n]);
                    hn[n] = u * hb[n] + (1.0 - u) * r_act(zc[n], cfg->act);
                }
                free(zc);
            }
            for (q = 0; q < P; ++q) {
                hb[q] = hn[q];
                o[q] = hn[q];
            }
        }
    }
    memcpy(hf, h, (size_t)(B * P) * sizeof(double));
    if (cfg->cell == FR_CELL_LSTM)
        memcpy(cf, c, (size_t)(B * U) * sizeof(double));
    free(h); free(c); free(v); free(z); free(m); free(hn);
}

/* ----------------------------------------------------- (b) forward tests */

static int g_case;

static void run_case(const cfg_t *cfg, int dtype, ptrdiff_t B, ptrdiff_t T, ptrdiff_t D,
                     ptrdiff_t U, int time_major, int reverse, int lenmode)
{
    const ptrdiff_t P = cfg->proj ? 3 : U;
    const ptrdiff_t G = cfg->cell == FR_CELL_LSTM ? 4 : cfg->cell == FR_CELL_GRU ? 2 : 1;
    const size_t nk = (size_t)((D + P) * G * U), nx = (size_t)(B * T * D);
    const size_t nout = (size_t)(B * T * P), nh = (size_t)(B * P), nc = (size_t)(B * U);
    const int is_lstm = cfg->cell == FR_CELL_LSTM, is_gru = cfg->cell == FR_CELL_GRU;
    const double wscale = 1.5 / sqrt((double)(D + P));
    params_t pr;
    int64_t *lengths = NULL;
    double *rout, *rh, *rc;
    fr_layer L;
    fr_seq S;
    void *kernel, *bias, *ck = NULL, *cbias = NULL, *wi = NULL, *wf = NULL, *wo = NULL,
         *pk = NULL, *x, *h0, *c0 = NULL, *out, *hf, *cf = NULL;
    size_t wsize, off, where;
    unsigned char *wbuf;
    const fr_blas *blas;
    fr_options opt;
    int st;
    double w;
    ptrdiff_t b;
    char desc[256];

    memset(&pr, 0, sizeof pr);
    g_case++;
    /* NULL: fastrnn's packed GEMM; null entries: the portable C GEMM; test: a BLAS-like table */
    blas = (g_case % 3 == 0) ? NULL : (g_case % 3 == 1) ? &g_blas_null_entries : &g_blas_test;
    if (g_bf16) /* bfloat16 runs on the packed GEMM only */
        blas = NULL;
    opt = opts_with(blas);
    if (g_bf16) {
        opt.precision = FR_PREC_BF16;
        opt.bf16_path = g_bf16;
    }

    pr.kernel = rand_arr(nk, wscale, dtype);
    pr.bias = rand_arr((size_t)(G * U), 0.5, dtype);
    if (is_gru) {
        pr.cand_kernel = rand_arr((size_t)((D + U) * U), 1.5 / sqrt((double)(D + U)), dtype);
        pr.cand_bias = rand_arr((size_t)U, 0.5, dtype);
    }
    if (is_lstm && cfg->peep) {
        pr.wi = rand_arr((size_t)U, 0.7, dtype);
        pr.wf = rand_arr((size_t)U, 0.7, dtype);
        pr.wo = rand_arr((size_t)U, 0.7, dtype);
    }
    if (is_lstm && cfg->proj)
        pr.projk = rand_arr((size_t)(U * P), 1.2 / sqrt((double)U), dtype);
    pr.x = rand_arr(nx, 1.0, dtype);
    pr.h0 = rand_arr(nh, 0.8, dtype);
    if (is_lstm)
        pr.c0 = rand_arr(nc, 1.5, dtype);
    pr.cell_clip = dtype == FR_FLOAT32 ? (double)0.6f : 0.6;
    pr.proj_clip = dtype == FR_FLOAT32 ? (double)0.3f : 0.3;

    if (lenmode != 0 && B > 0) {
        lengths = (int64_t *)xmalloc((size_t)B * sizeof(int64_t));
        for (b = 0; b < B; ++b) {
            if (lenmode == 1) /* ragged, all >= 1 (when T > 0), one full */
                lengths[b] = T > 0 ? 1 + irand((int)T) : 0;
            else /* ragged with zeros */
                lengths[b] = irand((int)T + 1);
        }
        if (lenmode == 1)
            lengths[B / 2] = T;
        else
            lengths[0] = 0;
    }

    /* reference */
    rout = (double *)xmalloc((nout + 1) * sizeof(double));
    rh = (double *)xmalloc((nh + 1) * sizeof(double));
    rc = (double *)xmalloc((nc + 1) * sizeof(double));
    ref_forward(cfg, &pr, B, T, D, U, P, time_major, reverse, lengths, rout, rh, rc);

    /* kernel */
    kernel = to_dtype(pr.kernel, nk, dtype);
    bias = to_dtype(pr.bias, (size_t)(G * U), dtype);
    if (is_gru) {
        ck = to_dtype(pr.cand_kernel, (size_t)((D + U) * U), dtype);
        cbias = to_dtype(pr.cand_bias, (size_t)U, dtype);
    }
    if (pr.wi) {
        wi = to_dtype(pr.wi, (size_t)U, dtype);
        wf = to_dtype(pr.wf, (size_t)U, dtype);
        wo = to_dtype(pr.wo, (size_t)U, dtype);
    }
    if (pr.projk)
        pk = to_dtype(pr.projk, (size_t)(U * P), dtype);
    x = to_dtype(pr.x, nx, dtype);
    h0 = to_dtype(pr.h0, nh, dtype);
    out = alloc_fill(nout, dtype, 777.0); /* sentinel: every element must be written */
    hf = alloc_fill(nh, dtype, 777.0);
    if (is_lstm) {
        c0 = to_dtype(pr.c0, nc, dtype);
        cf = alloc_fill(nc, dtype, 777.0);
    }

    memset(&L, 0, sizeof L);
    L.cell = cfg->cell;
    L.dtype = dtype;
    L.activation = cfg->act;
    L.depth = D;
    L.units = U;
    L.proj = P;
    L.kernel = kernel;
    L.bias = bias;
    L.cand_kernel = ck;
    L.cand_bias = cbias;
    L.w_i_diag = wi;
    L.w_f_diag = wf;
    L.w_o_diag = wo;
    L.proj_kernel = pk;
    L.forget_bias = cfg->forget_bias;
    L.has_cell_clip = cfg->cell_clip;
    L.cell_clip = pr.cell_clip;
    L.has_proj_clip = cfg->proj_clip;
    L.proj_clip = pr.proj_clip;

    memset(&S, 0, sizeof S);
    S.batch = B;
    S.time = T;
    S.time_major = time_major;
    S.reverse = reverse;
    S.x = x;
    S.lengths = lengths;
    S.h0 = h0;
    S.c0 = c0;
    S.out = out;
    S.h_final = hf;
    S.c_final = cf;

    /* exact-size workspace at a varying misalignment: ASan sees any overrun */
    wsize = fr_workspace_size(&L, &S, &opt);
    off = (size_t)(g_case % 8) * 3;
    wbuf = (unsigned char *)xmalloc(wsize + off);
    memset(wbuf, 0xFF, wsize + off); /* NaN bytes, not zeros: a read of what was not written shows */

    snprintf(desc, sizeof desc,
             "%s %s B=%ld T=%ld D=%ld U=%ld P=%ld tm=%d rev=%d len=%d blas=%s bf16=%s",
             cfg->name, dtype == FR_FLOAT32 ? "f32" : "f64", (long)B, (long)T, (long)D,
             (long)U, (long)P, time_major, reverse, lenmode,
             blas == NULL ? "NULL" : blas == &g_blas_test ? "test" : "null-entries",
             g_bf16 ? fr_bf16_name(g_bf16) : "no");

    CHECK(wsize > 0, "%s: workspace size 0", desc);
    st = fr_layer_forward(&L, &S, &opt, wbuf + off, wsize);
    CHECK(st == FR_OK, "%s: status %d (%s)", desc, st, fr_strerror(st));

    if (st == FR_OK) {
        w = worst(out, rout, nout, dtype, &where);
        CHECK(w <= 1.0, "%s: out err %g at %zu (got %.9g want %.9g)", desc, w, where,
              nout ? get(out, where, dtype) : 0.0, nout ? rout[where] : 0.0);
        w = worst(hf, rh, nh, dtype, &where);
        CHECK(w <= 1.0, "%s: h_final err %g at %zu (got %.9g want %.9g)", desc, w, where,
              nh ? get(hf, where, dtype) : 0.0, nh ? rh[where] : 0.0);
        if (is_lstm) {
            w = worst(cf, rc, nc, dtype, &where);
            CHECK(w <= 1.0, "%s: c_final err %g at %zu", desc, w, where);
        }
        /* inputs are const: untouched, bit for bit */
        CHECK(same_as(x, pr.x, nx, dtype) && same_as(h0, pr.h0, nh, dtype) &&
                  same_as(kernel, pr.kernel, nk, dtype) &&
                  (!is_lstm || same_as(c0, pr.c0, nc, dtype)),
              "%s: an input was modified", desc);
    }

    /* the same call with one byte less of workspace must be refused */
    st = fr_layer_forward(&L, &S, &opt, wbuf + off, wsize - 1);
    CHECK(st == FR_ERR_WORKSPACE, "%s: short workspace gave %d", desc, st);

    free(wbuf);
    free(pr.kernel); free(pr.bias); free(pr.cand_kernel); free(pr.cand_bias);
    free(pr.wi); free(pr.wf); free(pr.wo); free(pr.projk);
    free(pr.x); free(pr.h0); free(pr.c0);
    free(lengths); free(rout); free(rh); free(rc);
    free(kernel); free(bias); free(ck); free(cbias); free(wi); free(wf); free(wo); free(pk);
    free(x); free(h0); free(c0); free(out); free(hf); free(cf);
}

static const cfg_t g_cfgs[] = {
    {"rnn-tanh", FR_CELL_RNN, FR_ACT_TANH, 0, 0, 0, 0, 1.0},
    {"rnn-sigmoid", FR_CELL_RNN, FR_ACT_SIGMOID, 0, 0, 0, 0, 1.0},
    {"rnn-relu", FR_CELL_RNN, FR_ACT_RELU, 0, 0, 0, 0, 1.0},
    {"rnn-linear", FR_CELL_RNN, FR_ACT_LINEAR, 0, 0, 0, 0, 1.0},
    {"lstm-basic", FR_CELL_LSTM, FR_ACT_TANH, 0, 0, 0, 0, 1.0},
    {"lstm-fb0.3", FR_CELL_LSTM, FR_ACT_TANH, 0, 0, 0, 0, 0.3},
    {"lstm-peep", FR_CELL_LSTM, FR_ACT_TANH, 1, 0, 0, 0, 1.0},
    {"lstm-cellclip", FR_CELL_LSTM, FR_ACT_TANH, 0, 1, 0, 0, 1.0},
    {"lstm-proj", FR_CELL_LSTM, FR_ACT_TANH, 0, 0, 1, 0, 1.0},
    {"lstm-proj-clip", FR_CELL_LSTM, FR_ACT_TANH, 0, 0, 1, 1, 1.0},
    {"lstm-all", FR_CELL_LSTM, FR_ACT_TANH, 1, 1, 1, 1, -0.5},
    {"lstm-relu-peep-clip", FR_CELL_LSTM, FR_ACT_RELU, 1, 1, 0, 0, 1.0},
    {"lstm-sigmoid-proj", FR_CELL_LSTM, FR_ACT_SIGMOID, 0, 0, 1, 0, 2.0},
    {"gru-tanh", FR_CELL_GRU, FR_ACT_TANH, 0, 0, 0, 0, 1.0},
    {"gru-relu", FR_CELL_GRU, FR_ACT_RELU, 0, 0, 0, 0, 1.0},
    {"gru-linear", FR_CELL_GRU, FR_ACT_LINEAR, 0, 0, 0, 0, 1.0},
};

static void test_forward(void)
{
    static const ptrdiff_t batches[] = {0, 1, 3, 7}, times[] = {0, 1, 5};
    static const ptrdiff_t depths[] = {1, 3, 6}, units[] = {1, 5, 9};
    size_t ci, bi, ti, di, ui;
    int dt, tm, rev, lm;
    for (ci = 0; ci < sizeof g_cfgs / sizeof g_cfgs[0]; ++ci)
        for (dt = 0; dt < 2; ++dt) {
            set_tol(dt);
            for (bi = 0; bi < sizeof batches / sizeof batches[0]; ++bi)
                for (ti = 0; ti < sizeof times / sizeof times[0]; ++ti)
                    for (di = 0; di < sizeof depths / sizeof depths[0]; ++di)
                        for (ui = 0; ui < sizeof units / sizeof units[0]; ++ui)
                            for (tm = 0; tm < 2; ++tm)
                                for (rev = 0; rev < 2; ++rev)
                                    for (lm = 0; lm < 3; ++lm)
                                        run_case(&g_cfgs[ci], dt, batches[bi], times[ti],
                                                 depths[di], units[ui], tm, rev, lm);
        }
    /* a longer, wider ragged run */
    set_tol(FR_FLOAT32);
    run_case(&g_cfgs[10], FR_FLOAT32, 17, 23, 11, 13, 0, 1, 2);
    run_case(&g_cfgs[13], FR_FLOAT32, 17, 23, 11, 13, 1, 0, 1);
    set_tol(FR_FLOAT64);
    run_case(&g_cfgs[10], FR_FLOAT64, 17, 23, 11, 13, 1, 1, 1);
    run_case(&g_cfgs[13], FR_FLOAT64, 17, 23, 11, 13, 0, 0, 2);
    /* large enough for the threads (the kernels run small calls on one thread), the
     * automatic row split (a register tile of rows per thread), more than one 96-row
     * GEMM block and several SIMD panels of units with a remainder */
    for (dt = 0; dt < 2; ++dt) {
        static const int big[] = {0, 8, 10, 13};
        set_tol(dt);
        for (ci = 0; ci < sizeof big / sizeof big[0]; ++ci)
            run_case(&g_cfgs[big[ci]], dt, 130, 9, 33, 70, (int)ci % 2, (int)ci / 2 % 2, 1 + (int)ci % 2);
    }
}

/* -------------------------------------------------- (c) argument checking */

/* precision=bfloat16 on every path this machine runs (the portable one always), float32
 * layers, against the reference rounding the same operands.  Tolerance 1e-2: a float32
 * value that lands on a bfloat16 rounding boundary (after sums in another order than
 * the reference's) rounds the other way, which moves later values by ~2^-9 of a term;
 * wrong packing or a missed operand gives errors of order 1 (the Python tests check the
 * rounding itself exactly). */
static void test_forward_bf16(void)
{
    static const ptrdiff_t batches[] = {1, 5, 18}, units[] = {1, 9, 37};
    int path, isa = fr_isa_resolve(g_opt.isa);
    size_t ci, bi, ui;
    for (path = FR_BF16_PORTABLE; path <= FR_BF16_AMX; ++path) {
        if (fr_bf16_resolve(path, isa, 1) != path) {
            printf("bfloat16 %s: not available here (CPU, OS permission or build), skipped\n", fr_bf16_name(path));
            continue;
        }
        g_bf16 = path;
        g_rtol = g_atol = 1e-2;
        for (ci = 0; ci < sizeof g_cfgs / sizeof g_cfgs[0]; ++ci)
            for (bi = 0; bi < sizeof batches / sizeof batches[0]; ++bi)
                for (ui = 0; ui < sizeof units / sizeof units[0]; ++ui)
                    run_case(&g_cfgs[ci], FR_FLOAT32, batches[bi], 6, 3 + (ptrdiff_t)ci % 5, units[ui],
                             (int)(ci + bi) % 2, (int)(bi + ui) % 2, (int)(ci + ui) % 3);
        g_bf16 = 0;
    }
}

static void test_args(void)
{
    float kernel[(3 + 5) * 4 * 5], bias[4 * 5], ck[(3 + 5) * 5], cb[5], peep[5], pk[5 * 3];
    float x[4 * 2 * 3], h0[4 * 5], c0[4 * 5], out[4 * 2 * 5], hf[4 * 5], cf[4 * 5];
    int64_t lens[4] = {2, 0, 1, 2};
    fr_layer L, L0;
    fr_seq S, S0;
    fr_options O;
    size_t ws;
    unsigned char *work;
    int i;

    memset(kernel, 0, sizeof kernel);
    memset(bias, 0, sizeof bias);
    memset(ck, 0, sizeof ck);
    memset(cb, 0, sizeof cb);
    memset(peep, 0, sizeof peep);
    memset(pk, 0, sizeof pk);
    memset(x, 0, sizeof x);
    memset(h0, 0, sizeof h0);
    memset(c0, 0, sizeof c0);

    memset(&L0, 0, sizeof L0);
    L0.cell = FR_CELL_LSTM;
    L0.dtype = FR_FLOAT32;
    L0.activation = FR_ACT_TANH;
    L0.depth = 3;
    L0.units = 5;
    L0.proj = 5;
    L0.kernel = kernel;
    L0.bias = bias;
    L0.forget_bias = 1.0;
    memset(&S0, 0, sizeof S0);
    S0.batch = 4;
    S0.time = 2;
    S0.x = x;
    S0.lengths = lens;
    S0.h0 = h0;
    S0.c0 = c0;
    S0.out = out;
    S0.h_final = hf;
    S0.c_final = cf;

    ws = fr_workspace_size(&L0, &S0, &g_opt);
    CHECK(ws > 0, "baseline workspace size is 0");
    work = (unsigned char *)xmalloc(ws);
    CHECK(fr_layer_forward(&L0, &S0, &g_opt, work, ws) == FR_OK, "baseline call failed");
    CHECK(fr_layer_forward(&L0, &S0, &g_opt, NULL, ws) == FR_ERR_WORKSPACE, "NULL work accepted");
    CHECK(fr_layer_forward(&L0, &S0, &g_opt, work, ws - 1) == FR_ERR_WORKSPACE, "short work accepted");
    CHECK(fr_layer_forward(&L0, &S0, &g_opt, work, 0) == FR_ERR_WORKSPACE, "zero work accepted");
    /* masked outputs were zeroed, lengths[1] == 0 -> final state = initial state */
    CHECK(hf[5] == 0.0f && cf[5] == 0.0f, "zero-length row state");
    for (i = 0; i < 5; ++i)
        CHECK(out[(1 * 2 + 0) * 5 + i] == 0.0f && out[(2 * 2 + 1) * 5 + i] == 0.0f,
              "masked output not zero");

#define EXPECT_ARG(what, stmt_l, stmt_s)                                               \
    do {                                                                                \
        L = L0;                                                                         \
        S = S0;                                                                         \
        O = g_opt;                                                                      \
        stmt_l;                                                                         \
        stmt_s;                                                                         \
        CHECK(fr_layer_forward(&L, &S, &O, work, ws) == FR_ERR_ARG, "%s accepted", what); \
    } while (0)
#define EXPECT_ARG_NOWS(what, stmt_l, stmt_s)                                          \
    do {                                                                                \
        EXPECT_ARG(what, stmt_l, stmt_s);                                               \
        CHECK(fr_workspace_size(&L, &S, &O) == 0, "%s: workspace size not 0", what);    \
    } while (0)

    CHECK(fr_layer_forward(NULL, &S0, &g_opt, work, ws) == FR_ERR_ARG, "NULL layer accepted");
    CHECK(fr_layer_forward(&L0, NULL, &g_opt, work, ws) == FR_ERR_ARG, "NULL seq accepted");
    CHECK(fr_layer_forward(&L0, &S0, NULL, work, ws) == FR_ERR_ARG, "NULL options accepted");
    CHECK(fr_workspace_size(NULL, &S0, &g_opt) == 0 && fr_workspace_size(&L0, NULL, &g_opt) == 0 &&
              fr_workspace_size(&L0, &S0, NULL) == 0,
          "workspace size of NULL");
    /* options out of range: never a silent default */
    EXPECT_ARG_NOWS("isa 4", O.isa = 4, (void)0);
    EXPECT_ARG_NOWS("isa -1", O.isa = -1, (void)0);
    EXPECT_ARG_NOWS("xproj 3", O.xproj = 3, (void)0);
    EXPECT_ARG_NOWS("schedule 3", O.schedule = 3, (void)0);
    EXPECT_ARG_NOWS("gemm 3", O.gemm = 3, (void)0);
    EXPECT_ARG_NOWS("BLAS gemm without a table", (O.gemm = FR_GEMM_BLAS, O.blas = NULL), (void)0);
    EXPECT_ARG_NOWS("0 threads", O.nthreads = 0, (void)0);
    EXPECT_ARG_NOWS("tile rows 9", O.tile_rows = 9, (void)0);
    EXPECT_ARG_NOWS("tile rows -1", O.tile_rows = -1, (void)0);
    CHECK(fr_isa_resolve(FR_ISA_AUTO) >= FR_ISA_GENERIC && fr_isa_resolve(FR_ISA_GENERIC) == FR_ISA_GENERIC &&
              fr_isa_resolve(9) == -FR_ERR_ARG && fr_isa_name(9) == NULL &&
              strcmp(fr_isa_name(FR_ISA_AVX512), "avx512") == 0,
          "fr_isa_resolve / fr_isa_name");
    {   /* an instruction set this CPU or build lacks is refused, never replaced */
        int isa;
        for (isa = FR_ISA_GENERIC; isa <= FR_ISA_AVX512; ++isa) {
            const int have = fr_isa_resolve(isa) == isa;
            size_t wsi;
            void *wi;
            L = L0;
            S = S0;
            O = g_opt;
            O.isa = isa;
            wsi = fr_workspace_size(&L, &S, &O); /* panel widths, so sizes, follow the ISA */
            CHECK((wsi > 0) == have, "isa %s: workspace size %zu", fr_isa_name(isa), wsi);
            wi = xmalloc(wsi > 0 ? wsi : ws);
            CHECK(fr_layer_forward(&L, &S, &O, wi, wsi > 0 ? wsi : ws) == (have ? FR_OK : FR_ERR_ISA),
                  "isa %s: status", fr_isa_name(isa));
            free(wi);
        }
    }
    CHECK(fr_cell_gates(FR_CELL_RNN) == 1 && fr_cell_gates(FR_CELL_LSTM) == 4 && fr_cell_gates(FR_CELL_GRU) == 2 &&
              fr_cell_gates(7) == 0,
          "fr_cell_gates");
    EXPECT_ARG_NOWS("cell 3", L.cell = 3, (void)0);
    EXPECT_ARG_NOWS("cell -1", L.cell = -1, (void)0);
    EXPECT_ARG_NOWS("dtype 2", L.dtype = 2, (void)0);
    EXPECT_ARG_NOWS("activation 4", L.activation = 4, (void)0);
    EXPECT_ARG_NOWS("activation -1", L.activation = -1, (void)0);
    EXPECT_ARG_NOWS("units 0", (L.units = 0, L.proj = 0), (void)0);
    EXPECT_ARG_NOWS("depth 0", L.depth = 0, (void)0);
    EXPECT_ARG_NOWS("proj 0", L.proj = 0, (void)0);
    EXPECT_ARG_NOWS("proj != units without projection", L.proj = 3, (void)0);
    EXPECT_ARG_NOWS("batch < 0", (void)0, S.batch = -1);
    EXPECT_ARG_NOWS("time < 0", (void)0, S.time = -1);
    EXPECT_ARG_NOWS("NULL kernel", L.kernel = NULL, (void)0);
    EXPECT_ARG_NOWS("NULL bias", L.bias = NULL, (void)0);
    EXPECT_ARG_NOWS("partial peepholes", (L.w_i_diag = peep, L.w_f_diag = peep), (void)0);
    EXPECT_ARG_NOWS("GRU without cand_kernel",
                    (L.cell = FR_CELL_GRU, L.cand_bias = cb), (S.c0 = NULL, S.c_final = NULL));
    EXPECT_ARG_NOWS("GRU without cand_bias",
                    (L.cell = FR_CELL_GRU, L.cand_kernel = ck), (S.c0 = NULL, S.c_final = NULL));
    EXPECT_ARG_NOWS("RNN with proj != units", (L.cell = FR_CELL_RNN, L.proj_kernel = pk, L.proj = 3),
                    (S.c0 = NULL, S.c_final = NULL));
    EXPECT_ARG_NOWS("units*4 > INT_MAX", (L.units = INT_MAX / 4 + 1, L.proj = L.units), (void)0);
    EXPECT_ARG_NOWS("depth > INT_MAX", L.depth = (ptrdiff_t)INT_MAX + 1, (void)0);
    EXPECT_ARG_NOWS("batch*time > INT_MAX", (void)0, (S.batch = 65536, S.time = 65536));
    EXPECT_ARG_NOWS("batch > INT_MAX", (void)0, (S.batch = PTRDIFF_MAX / 2, S.time = 0));
    EXPECT_ARG_NOWS("time > INT_MAX", (void)0, (S.batch = 0, S.time = PTRDIFF_MAX));
    /* xproj, whose size overflows here, exists in the hoisted mode only */
    EXPECT_ARG_NOWS("size_t overflow of xproj",
                    (L.dtype = FR_FLOAT64, L.units = INT_MAX / 4, L.proj = L.units, O.xproj = FR_XPROJ_HOISTED),
                    (S.batch = 1 << 15, S.time = (1 << 16) - 1));
    EXPECT_ARG_NOWS("workspace > PTRDIFF_MAX", (L.dtype = FR_FLOAT64, L.cell = FR_CELL_GRU, L.cand_kernel = ck,
                    L.cand_bias = cb, L.units = INT_MAX / 4, L.proj = L.units, O.xproj = FR_XPROJ_HOISTED),
                    (S.c0 = NULL, S.c_final = NULL, S.batch = 1 << 15, S.time = 1 << 15));
    /* pointer / lengths checks (workspace size itself is fine) */
    EXPECT_ARG("LSTM without c0", (void)0, S.c0 = NULL);
    EXPECT_ARG("LSTM without c_final", (void)0, S.c_final = NULL);
    EXPECT_ARG("RNN with c0", L.cell = FR_CELL_RNN, S.c_final = NULL);
    EXPECT_ARG("RNN with c_final", L.cell = FR_CELL_RNN, S.c0 = NULL);
    EXPECT_ARG("NULL x", (void)0, S.x = NULL);
    EXPECT_ARG("NULL out", (void)0, S.out = NULL);
    EXPECT_ARG("NULL h0", (void)0, S.h0 = NULL);
    EXPECT_ARG("NULL h_final", (void)0, S.h_final = NULL);
    lens[2] = -1;
    EXPECT_ARG("negative length", (void)0, (void)0);
    lens[2] = 3;
    EXPECT_ARG("length > time", (void)0, (void)0);
    lens[2] = 1;
    CHECK(fr_layer_forward(&L0, &S0, &g_opt, work, ws) == FR_OK, "baseline call failed again");

    /* batch == 0 / time == 0 with NULL pointers for the empty arrays */
    L = L0;
    S = S0;
    S.batch = 0;
    S.x = S.out = S.h_final = S.c_final = NULL;
    S.h0 = S.c0 = NULL;
    S.lengths = NULL;
    CHECK(fr_workspace_size(&L, &S, &g_opt) > 0, "batch 0 workspace size");
    CHECK(fr_layer_forward(&L, &S, &g_opt, work, fr_workspace_size(&L, &S, &g_opt)) == FR_OK,
          "batch 0 with NULL arrays");
    S = S0;
    S.time = 0;
    S.x = S.out = NULL;
    S.lengths = NULL;
    CHECK(fr_layer_forward(&L, &S, &g_opt, work, fr_workspace_size(&L, &S, &g_opt)) == FR_OK,
          "time 0 with NULL x/out");

    /* strerror */
    CHECK(strlen(fr_strerror(FR_OK)) > 0 && strlen(fr_strerror(FR_ERR_ARG)) > 0 &&
              strlen(fr_strerror(FR_ERR_WORKSPACE)) > 0 && strlen(fr_strerror(FR_ERR_ISA)) > 0 &&
              strlen(fr_strerror(12345)) > 0 &&
              strcmp(fr_strerror(FR_ERR_ARG), fr_strerror(FR_ERR_WORKSPACE)) != 0,
          "fr_strerror");

    free(work);
#undef EXPECT_ARG
#undef EXPECT_ARG_NOWS
}

/* -------------------------------------------- (d) the caller's floating-point state */

/* The kernels flush denormals while they run and then give the caller its modes back,
 * keeping the exception flags they raised (an overflow to inf stays visible). */
static void test_fp_state(void)
{
    const float kernel[2] = {1e30f, 0.0f}, bias[1] = {0.0f}, x[1] = {1e30f}, h0[1] = {0.0f};
    float out[1], hf[1];
    volatile float tiny = 1.5e-38f, half = 0.5f;
    fr_layer L;
    fr_seq S;
    fr_options O = g_opt;
    unsigned char work[4096];
    int st;
    memset(&L, 0, sizeof L);
    memset(&S, 0, sizeof S);
    L.cell = FR_CELL_RNN;
    L.dtype = FR_FLOAT32;
    L.activation = FR_ACT_LINEAR;
    L.depth = L.units = L.proj = 1;
    L.kernel = kernel;
    L.bias = bias;
    S.batch = S.time = 1;
    S.x = x;
    S.h0 = h0;
    S.out = out;
    S.h_final = hf;
    O.nthreads = 1; /* on this thread, whose flags we read (they are per thread) */
    O.schedule = FR_SCHED_AUTO;
    CHECK(fr_workspace_size(&L, &S, &O) <= sizeof work, "fp state: workspace %zu", fr_workspace_size(&L, &S, &O));
    feclearexcept(FE_ALL_EXCEPT);
    st = fr_layer_forward(&L, &S, &O, work, sizeof work); /* 1e30 * 1e30: inf */
    CHECK(st == FR_OK && isinf(out[0]), "fp state: status %d, out %g", st, (double)out[0]);
#if defined(__x86_64__)
    CHECK(fetestexcept(FE_OVERFLOW) != 0, "fp state: the kernel's overflow flag was cleared");
#endif
    CHECK(tiny * half != 0.0f, "fp state: the caller's thread flushes denormals after a call");
}

/* -------------------------------------------- (e) weights packed once by fr_pack_weights */

/* A GRU layer of `units` units over depth 3 with weights from the test's RNG. */
typedef struct {
    double kernel[(3 + 9) * 2 * 9], bias[2 * 9], ck[(3 + 9) * 9], cb[9];
    fr_layer L;
} gru_t;

static void gru_make(gru_t *g, ptrdiff_t units)
{
    size_t i;
    memset(g, 0, sizeof *g);
    for (i = 0; i < sizeof g->kernel / sizeof g->kernel[0]; ++i)
        g->kernel[i] = urand();
    for (i = 0; i < sizeof g->ck / sizeof g->ck[0]; ++i)
        g->ck[i] = urand();
    for (i = 0; i < 9; ++i)
        g->cb[i] = urand();
    for (i = 0; i < 18; ++i)
        g->bias[i] = urand();
    g->L.cell = FR_CELL_GRU;
    g->L.dtype = FR_FLOAT64;
    g->L.activation = FR_ACT_TANH;
    g->L.depth = 3;
    g->L.units = g->L.proj = units;
    g->L.kernel = g->kernel;
    g->L.bias = g->bias;
    g->L.cand_kernel = g->ck;
    g->L.cand_bias = g->cb;
}

/* Run `L` on fixed inputs; out receives [2 * 4 * units] outputs. */
static int gru_run(const fr_layer *L, double *out)
{
    double x[2 * 4 * 3], h0[2 * 9], hf[2 * 9];
    fr_seq S;
    size_t ws;
    void *work;
    int i, st;
    for (i = 0; i < 2 * 4 * 3; ++i)
        x[i] = 0.1 * (i % 7) - 0.3;
    for (i = 0; i < 2 * 9; ++i)
        h0[i] = 0.05 * (i % 5);
    memset(&S, 0, sizeof S);
    S.batch = 2;
    S.time = 4;
    S.x = x;
    S.h0 = h0;
    S.out = out;
    S.h_final = hf;
    ws = fr_workspace_size(L, &S, &g_opt);
    work = xmalloc(ws);
    st = fr_layer_forward(L, &S, &g_opt, work, ws);
    free(work);
    return st;
}

static void test_packed(void)
{
    gru_t a, b;
    double want[2 * 4 * 9], got[2 * 4 * 9];
    unsigned char *pa, *pb;
    size_t na, nb;
    fr_options other = g_opt;
    gru_make(&a, 9);
    gru_make(&b, 5);
    na = fr_packed_size(&a.L, &g_opt);
    nb = fr_packed_size(&b.L, &g_opt);
    CHECK(na > 0 && nb > 0, "packed sizes %zu %zu", na, nb);
    pa = (unsigned char *)xmalloc(na);
    pb = (unsigned char *)xmalloc(nb);
    CHECK(fr_pack_weights(&a.L, &g_opt, pa, na - 1) == FR_ERR_WORKSPACE, "short packing buffer accepted");
    CHECK(fr_pack_weights(&a.L, &g_opt, pa, na) == FR_OK && fr_pack_weights(&b.L, &g_opt, pb, nb) == FR_OK,
          "packing failed");
    CHECK(gru_run(&b.L, want) == FR_OK, "unpacked run");
    /* b's own packing: used, same bits as packing in the call */
    b.L.packed = pb;
    b.L.packed_size = nb;
    CHECK(gru_run(&b.L, got) == FR_OK && memcmp(got, want, sizeof(double) * 2 * 4 * 5) == 0,
          "prepacked weights change the result");
    /* a's packing (another layer): ignored, never read as b's */
    b.L.packed = pa;
    b.L.packed_size = na;
    CHECK(gru_run(&b.L, got) == FR_OK && memcmp(got, want, sizeof(double) * 2 * 4 * 5) == 0,
          "packed weights of another layer were used");
    /* b's packing with a corrupted header, or too short: ignored */
    pb[0] ^= 0xFF;
    b.L.packed = pb;
    b.L.packed_size = nb;
    CHECK(gru_run(&b.L, got) == FR_OK && memcmp(got, want, sizeof(double) * 2 * 4 * 5) == 0,
          "packed weights with a bad header were used");
    pb[0] ^= 0xFF;
    b.L.packed_size = nb - 1;
    CHECK(gru_run(&b.L, got) == FR_OK && memcmp(got, want, sizeof(double) * 2 * 4 * 5) == 0,
          "a short packed buffer was used");
    /* packed for another instruction set: ignored (its panel layout may differ) */
    other.isa = fr_isa_resolve(g_opt.isa) == FR_ISA_GENERIC ? FR_ISA_AUTO : FR_ISA_GENERIC;
    if (fr_isa_resolve(other.isa) != fr_isa_resolve(g_opt.isa)) {
        const size_t no = fr_packed_size(&b.L, &other); /* its panels may be wider or narrower */
        free(pb);
        pb = (unsigned char *)xmalloc(no > nb ? no : nb);
        CHECK(fr_pack_weights(&b.L, &other, pb, no) == FR_OK, "packing for another ISA");
        b.L.packed = pb;
        b.L.packed_size = no > nb ? no : nb;
        CHECK(gru_run(&b.L, got) == FR_OK && memcmp(got, want, sizeof(double) * 2 * 4 * 5) == 0,
              "weights packed for another instruction set were used");
    }
    free(pa);
    free(pb);
}

/* -------------------------------------------- (f) cancellation through fr_options.poll */

static int g_polls;
static int poll_stop_at_3(void *ctx)
{
    (void)ctx;
    return ++g_polls >= 3;
}

/* A long call (an LSTM of 128 units, batch 4, over 30,000 steps: ~18 GFLOP, 0.1-1 s) is stopped by a poll that says
 * stop on its third call (~30 ms in): FR_ERR_CANCELLED well before the end, on one thread and
 * three, in each schedule and input-projection mode; the next call runs in full. */
static void test_cancel(void)
{
    enum { B = 4, T = 30000, D = 16, U = 128 };
    static const int scheds[] = {FR_SCHED_AUTO, FR_SCHED_COLUMNS, FR_SCHED_ROWS};
    float *kernel = (float *)xmalloc(sizeof(float) * (D + U) * 4 * U), *bias = (float *)xmalloc(sizeof(float) * 4 * U);
    float *x = (float *)xmalloc(sizeof(float) * B * T * D), *out = (float *)xmalloc(sizeof(float) * B * T * U);
    float h0[B * U], c0[B * U], hf[B * U], cf[B * U];
    fr_layer L;
    fr_seq S;
    fr_options O;
    size_t i, ws;
    void *work;
    int si, thr, xp;
    for (i = 0; i < (size_t)(D + U) * 4 * U; ++i)
        kernel[i] = (float)(0.1 * urand());
    for (i = 0; i < (size_t)4 * U; ++i)
        bias[i] = 0.0f;
    for (i = 0; i < (size_t)B * T * D; ++i)
        x[i] = (float)urand();
    for (i = 0; i < (size_t)B * U; ++i)
        h0[i] = c0[i] = 0.0f;
    memset(&L, 0, sizeof L);
    L.cell = FR_CELL_LSTM;
    L.dtype = FR_FLOAT32;
    L.activation = FR_ACT_TANH;
    L.depth = D;
    L.units = L.proj = U;
    L.kernel = kernel;
    L.bias = bias;
    L.forget_bias = 1.0;
    memset(&S, 0, sizeof S);
    S.batch = B;
    S.time = T;
    S.x = x;
    S.h0 = h0;
    S.c0 = c0;
    S.out = out;
    S.h_final = hf;
    S.c_final = cf;
    for (si = 0; si < 3; ++si)
        for (thr = 1; thr <= 3; thr += 2)
            for (xp = FR_XPROJ_HOISTED; xp <= FR_XPROJ_FUSED; ++xp) {
                O = g_opt;
                O.schedule = scheds[si];
                O.nthreads = thr;
                O.xproj = xp;
                O.poll = poll_stop_at_3;
                ws = fr_workspace_size(&L, &S, &O);
                work = xmalloc(ws);
                g_polls = 0;
                CHECK(fr_layer_forward(&L, &S, &O, work, ws) == FR_ERR_CANCELLED && g_polls == 3,
                      "cancel: schedule %d threads %d xproj %d: not cancelled (%d polls)", scheds[si], thr, xp,
                      g_polls);
                O.poll = NULL; /* and the next call, short, runs in full */
                S.time = 3;
                CHECK(fr_layer_forward(&L, &S, &O, work, ws) == FR_OK, "cancel: the next call failed");
                S.time = T;
                free(work);
            }
    free(kernel);
    free(bias);
    free(x);
    free(out);
}

/* fr_serial_*: a waiter returns at once when no other thread is in a serial section (or its
 * section is older than the wait's bound), waits while one is in a fresh section, and returns
 * as soon as that one leaves -- and never much longer than its bound. */
static struct {
    int phase;      /* atomic: 1 = the other thread entered, 2 = leave now, 3 = left */
    double entered; /* when it entered (before phase 1) */
} g_serial;

static void *serial_other(void *arg)
{
    (void)arg;
    g_serial.entered = test_now();
    fr_serial_enter();
    __atomic_store_n(&g_serial.phase, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&g_serial.phase, __ATOMIC_SEQ_CST) != 2)
        ;
    fr_serial_leave();
    __atomic_store_n(&g_serial.phase, 3, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *serial_exits(void *arg)
{
    (void)arg;
    fr_serial_enter(); /* and never leaves */
    return NULL;
}

static void test_serial(void)
{
    pthread_t other;
    double t;
    int k;
    fr_serial_enter(); /* the caller's own section is never waited for */
    t = test_now();
    fr_serial_wait(200000000L);
    CHECK(test_now() - t < 0.05, "serial: waited %.3f s for its own section", test_now() - t);
    fr_serial_leave();

    g_serial.phase = 0;
    CHECK(pthread_create(&other, NULL, serial_other, NULL) == 0, "serial: pthread_create");
    while (__atomic_load_n(&g_serial.phase, __ATOMIC_SEQ_CST) != 1)
        ;
    t = test_now(); /* another thread in a fresh section: a short bound runs out (2 ms after it entered) */
    fr_serial_wait(2000000L);
    CHECK(test_now() - g_serial.entered >= 0.0019 && test_now() - t < 0.5, "serial: a 2 ms wait ended %.4f s after "
          "the section began", test_now() - g_serial.entered);
    t = test_now(); /* ... and a section older than the bound is not waited for */
    fr_serial_wait(1000000L);
    CHECK(test_now() - t < 0.05, "serial: waited %.3f s for a section older than the bound", test_now() - t);
    __atomic_store_n(&g_serial.phase, 2, __ATOMIC_SEQ_CST); /* it leaves: a long wait ends with it */
    t = test_now();
    fr_serial_wait(10000000000L);
    t = test_now() - t;
    CHECK(t < 5.0, "serial: a wait outlived the section it waited for by %.3f s", t);
    pthread_join(other, NULL);

    g_serial.phase = 0; /* a thread that exits inside its section gives its slot back */
    CHECK(pthread_create(&other, NULL, serial_exits, NULL) == 0, "serial: pthread_create");
    pthread_join(other, NULL);
    t = test_now();
    fr_serial_wait(10000000000L);
    CHECK(test_now() - t < 5.0, "serial: waited %.3f s for a thread that had exited", test_now() - t);
    for (k = 0; k < 200; ++k) { /* more threads than slots over time: each exit frees its slot, */
        CHECK(pthread_create(&other, NULL, serial_exits, NULL) == 0, "serial: pthread_create");
        pthread_join(other, NULL);
    }
    g_serial.phase = 0; /* so the next one still takes part: it is waited for */
    CHECK(pthread_create(&other, NULL, serial_other, NULL) == 0, "serial: pthread_create");
    while (__atomic_load_n(&g_serial.phase, __ATOMIC_SEQ_CST) != 1)
        ;
    fr_serial_wait(2000000L);
    CHECK(test_now() - g_serial.entered >= 0.0019, "serial: the 201st thread had no slot (the wait ended %.4f s "
          "after its section began)", test_now() - g_serial.entered);
    __atomic_store_n(&g_serial.phase, 2, __ATOMIC_SEQ_CST);
    pthread_join(other, NULL);
}

int main(void)
{
    options_from_env();
    test_gemm();
    test_args();
    test_forward();
    test_forward_bf16();
    test_fp_state();
    test_packed();
    test_cancel();
    test_serial();
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail != 0;
}
