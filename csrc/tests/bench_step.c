/*
 * bench_step.c -- one time step of one row (streaming, batch 1) against the cache's read rate.
 *
 *     cmake -S . -B build -DFASTRNN_PYTHON=OFF -DFASTRNN_CTESTS=ON -DCMAKE_BUILD_TYPE=Release
 *     cmake --build build && build/bench_step [seconds per figure, default 0.2] [isa [cell [units]]]
 *
 * A step of one row reads every weight once and does two FLOPs per weight: it is bound by
 * the rate at which the core reads the packed weights from the cache that holds them (L2
 * for LSTM 128: 512 KiB of float32).  For LSTM and GRU of 128 and 256 units (float32, depth
 * = units) on every instruction set this CPU runs, this times fr_layer_forward of one step
 * and one row in a C loop, the state fed back, from weights packed once (what fr.Stream.step
 * runs, without Python), and prints microseconds per step and the weights' bytes per second
 * against fr_probe_bandwidth of a buffer of the same size, measured just before on the same
 * core; then the step's time with the input projection forced hoisted and fused (the
 * automatic choice, fr_fused_mode, hoists below 4 rows).  The optional arguments keep one
 * instruction set, cell or size, e.g. for a profiler: `bench_step 1 avx512 lstm 128`.
 * One thread; pin it (taskset -c 0) and keep the machine quiet.  Exit status 0 always: a
 * benchmark, not a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastrnn.h"
#include "fr_probe.h"
#include "test_clock.h"


static float *randoms(size_t n, unsigned *seed)
{
    float *p = malloc(n * sizeof *p);
    size_t i;
    if (!p)
        exit(1);
    for (i = 0; i < n; ++i) {
        *seed = *seed * 1103515245u + 12345u;
        p[i] = ((float)((*seed >> 8) & 0xFFFF) / 65536.0f - 0.5f) * 0.2f;
    }
    return p;
}

/* Microseconds per step (best of 3 timings of `seconds` each); *bytes: the packed weights. */
static double step_us(int cell, int isa, int xproj, ptrdiff_t units, double seconds, size_t *bytes)
{
    const int G = fr_cell_gates(cell);
    const ptrdiff_t K = 2 * units;
    unsigned seed = 7;
    float *kernel = randoms((size_t)(K * G * units), &seed), *bias = randoms((size_t)(G * units), &seed);
    float *ck = cell == FR_CELL_GRU ? randoms((size_t)(K * units), &seed) : NULL;
    float *cb = cell == FR_CELL_GRU ? randoms((size_t)units, &seed) : NULL;
    float *x = randoms((size_t)units, &seed), *h[2], *c[2], *out = randoms((size_t)units, &seed);
    fr_layer L;
    fr_seq S;
    fr_options o;
    void *packed, *work;
    size_t ws;
    double best = 1e30;
    long n = 64, i;
    int trial, p = 0;
    h[0] = randoms((size_t)units, &seed);
    h[1] = randoms((size_t)units, &seed);
    c[0] = randoms((size_t)units, &seed);
    c[1] = randoms((size_t)units, &seed);
    memset(&L, 0, sizeof L);
    L.cell = cell;
    L.dtype = FR_FLOAT32;
    L.activation = FR_ACT_TANH;
    L.depth = L.units = L.proj = units;
    L.kernel = kernel;
    L.bias = bias;
    L.cand_kernel = ck;
    L.cand_bias = cb;
    fr_options_default(&o);
    o.isa = isa;
    o.nthreads = 1;
    o.xproj = xproj;
    *bytes = fr_packed_size(&L, &o);
    packed = malloc(*bytes);
    if (!packed || fr_pack_weights(&L, &o, packed, *bytes) != FR_OK)
        exit(1);
    L.packed = packed;
    L.packed_size = *bytes;
    memset(&S, 0, sizeof S);
    S.batch = S.time = S.time_major = 1;
    S.x = x;
    S.out = out;
    S.h0 = h[0];
    S.h_final = h[1];
    ws = fr_workspace_size(&L, &S, &o);
    work = malloc(ws);
    if (!work)
        exit(1);
    for (trial = -1; trial < 3; ++trial) { /* trial -1: calibrate n to about `seconds` */
        double t = test_now();
        for (i = 0; i < n; ++i, p ^= 1) {
            S.h0 = h[p];
            S.h_final = h[p ^ 1];
            S.c0 = cell == FR_CELL_LSTM ? c[p] : NULL;
            S.c_final = cell == FR_CELL_LSTM ? c[p ^ 1] : NULL;
            if (fr_layer_forward(&L, &S, &o, work, ws) != FR_OK)
                exit(1);
        }
        t = test_now() - t;
        if (trial < 0) {
            n = (long)((double)n * seconds / (t > 1e-6 ? t : 1e-6)) + 1;
            continue;
        }
        if (t / (double)n < best)
            best = t / (double)n;
    }
    free(kernel), free(bias), free(ck), free(cb), free(x), free(out);
    free(h[0]), free(h[1]), free(c[0]), free(c[1]), free(packed), free(work);
    return best * 1e6;
}

int main(int argc, char **argv)
{
    static const char *isa_names[] = {"", "generic", "avx2", "avx512"};
    static const int cells[] = {FR_CELL_LSTM, FR_CELL_GRU};
    static const ptrdiff_t sizes[] = {128, 256};
    const double seconds = argc > 1 ? atof(argv[1]) : 0.2;
    int isa, ci, si;
    printf("one step, one row, float32, one thread: us per step and the packed weights' read rate\n");
    printf("%-8s %-5s %5s %9s %9s %9s %13s %7s %9s %9s\n", "isa", "cell", "units", "weights", "us/step", "GB/s",
           "probe GB/s", "share", "hoisted", "fused");
    for (isa = FR_ISA_GENERIC; isa <= FR_ISA_AVX512; ++isa) {
        if (fr_isa_resolve(isa) != isa || (argc > 2 && strcmp(argv[2], isa_names[isa]) != 0))
            continue;
        for (ci = 0; ci < 2; ++ci) {
            const char *name = cells[ci] == FR_CELL_LSTM ? "lstm" : "gru";
            if (argc > 3 && strcmp(argv[3], name) != 0)
                continue;
            for (si = 0; si < 2; ++si) {
                size_t bytes;
                double us, bw, rate, hoisted, fused;
                if (argc > 4 && atol(argv[4]) != (long)sizes[si])
                    continue;
                us = step_us(cells[ci], isa, FR_XPROJ_AUTO, sizes[si], seconds, &bytes);
                bw = fr_probe_bandwidth(bytes, seconds);
                rate = (double)bytes / us / 1e3;
                hoisted = step_us(cells[ci], isa, FR_XPROJ_HOISTED, sizes[si], seconds, &bytes);
                fused = step_us(cells[ci], isa, FR_XPROJ_FUSED, sizes[si], seconds, &bytes);
                printf("%-8s %-5s %5ld %7zu K %9.2f %9.1f %13.1f %6.0f%% %9.2f %9.2f\n", isa_names[isa], name,
                       (long)sizes[si], bytes / 1024, us, rate, bw, 100.0 * rate / bw, hoisted, fused);
            }
        }
    }
    return 0;
}
