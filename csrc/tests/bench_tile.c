/*
 * bench_tile.c -- the packed GEMM's register tile alone, against the core's FMA peak.
 *
 *     cmake -S . -B build -DFASTRNN_PYTHON=OFF -DFASTRNN_CTESTS=ON -DCMAKE_BUILD_TYPE=Release
 *     cmake --build build && build/bench_tile [seconds per figure, default 0.2]
 *
 * For every instruction set this CPU runs, both dtypes and every tile shape the kernels have
 * (R rows x NV vectors of accumulators; a one-row tile takes two panels), it times passes of
 * tiles over packed panels of K = 512 rows held in L2 (the steady state: a tile's setup and
 * stores spread over 512 rows of loads, broadcasts and FMAs; 128 KiB panels, as a step's
 * product streams them when the weights do not fit L1) and of K = 32 rows in L1 (short
 * tiles: what their setup and stores cost), and prints GFLOP/s and the share of fr_probe_fma_peak in the same ISA and
 * dtype, measured just before on the same core.  The row marked '*' is the tile the kernels
 * take for many rows.  One thread; pin it (taskset -c 0) and keep the machine quiet.
 * Exit status 0 always: a benchmark, not a test (csrc/tests/test_kernels.c checks the sums).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastrnn.h"
#include "fr_internal.h"
#include "fr_probe.h"
#include "test_clock.h"


/* GFLOP/s of the tile: repeat passes until `seconds` have gone by; the best of 3 timings. */
static double rate(int isa, int dtype, int R, int nv, long K, long npanels, const void *A, const void *B, void *C,
                   double seconds)
{
    double best = 0.0;
    long reps = 1;
    int trial;
    for (;;) { /* calibrate: ~1/10 of the time per timing */
        double t = test_now(), f = fr_tile_flops(isa, dtype, R, nv, K, npanels, reps, A, B, C);
        t = test_now() - t;
        if (f <= 0.0)
            return f;
        if (t > seconds / 10)
            break;
        reps *= 2;
    }
    for (trial = 0; trial < 3; ++trial) {
        double t = test_now(), f = fr_tile_flops(isa, dtype, R, nv, K, npanels, reps, A, B, C);
        t = test_now() - t;
        if (f / t / 1e9 > best)
            best = f / t / 1e9;
    }
    return best;
}

int main(int argc, char **argv)
{
    static const char *isa_names[] = {"", "generic", "avx2", "avx512"};
    static const int accs[] = {0, 10, 10, 24}; /* FR_ACC of each ISA's kernels */
    const double seconds = argc > 1 ? atof(argv[1]) : 0.2;
    const size_t bytes = (size_t)8 * 512 * 4 * 64 * 8; /* the largest B: 8 panels, K 512, 4 x 64-byte vectors of f64 */
    double *A = (double *)calloc(8 * 512, sizeof(double)), *C = (double *)calloc(16 * 64, sizeof(double));
    char *B = (char *)aligned_alloc(64, bytes);
    int isa, dt, nv, R, mem;
    size_t i;
    if (!A || !B || !C) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (i = 0; i < 8 * 512; ++i)
        A[i] = 0.25; /* (f64 bits; as f32 data these are small numbers too) */
    for (i = 0; i < bytes / sizeof(float); ++i)
        ((float *)(void *)B)[i] = 1e-3f;
    printf("tile alone, one thread: GFLOP/s and share of the FMA peak (12 chains) in the same ISA/dtype\n");
    for (isa = FR_ISA_GENERIC; isa <= FR_ISA_AVX512; ++isa) {
        if (fr_isa_resolve(isa) != isa) {
            printf("\n%s: not on this CPU or not in this build\n", isa_names[isa]);
            continue;
        }
        for (dt = FR_FLOAT32; dt <= FR_FLOAT64; ++dt) {
            const double peak = fr_probe_fma_peak(isa, dt, seconds); /* fr_probe_isa shares the codes */
            printf("\n%s %s: peak %.1f GFLOP/s\n", isa_names[isa], dt == FR_FLOAT32 ? "float32" : "float64", peak);
            printf("  tile (rows x vectors)  K=32, L1 GFLOP/s  %%peak   K=512, L2 GFLOP/s  %%peak\n");
            for (nv = 4; nv >= 3; --nv) {
                const int rmax = accs[isa] / nv < 8 ? accs[isa] / nv : 8;
                for (R = 1; R <= rmax; ++R) {
                    double g[2];
                    for (mem = 0; mem < 2; ++mem) {
                        const long K = mem ? 512 : 32;
                        /* L1: 2 panels of K 32 (<= 16 KiB); L2: 4 panels of K 512 (<= 512 KiB) */
                        const long npanels = mem ? 4 : 2;
                        g[mem] = rate(isa, dt, R, nv, K, npanels, A, B, C, seconds);
                    }
                    printf("  %c %d x %d%s            %8.1f        %5.1f%%   %8.1f           %5.1f%%\n",
                           R == rmax ? '*' : ' ', R, nv, R == 1 ? " (2 panels)" : "          ", g[0],
                           peak > 0 ? 100 * g[0] / peak : 0.0, g[1], peak > 0 ? 100 * g[1] / peak : 0.0);
                }
            }
        }
    }
    free(A);
    free(B);
    free(C);
    return 0;
}
