/*
 * l2_bandwidth.c -- how fast one core reads a buffer that lives in its L2 cache: the bound
 * on a batch-1 RNN step, which must read all of W_h (more than the L1) at every step.
 *
 *     cc -O2 -mavx512f -o /tmp/l2bw tools/l2_bandwidth.c && /tmp/l2bw 128 && /tmp/l2bw 256
 *     (/tmp/l2bw 128 & /tmp/l2bw 128; wait)      # both cores at once
 *
 * Prints GB/s and the time of one pass over the buffer (best of 5 trials).
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    size_t kb = argc > 1 ? atoi(argv[1]) : 256, n = kb * 1024 / 4, reps = 20000 * 256 / kb;
    float *a = aligned_alloc(64, n * 4);
    for (size_t i = 0; i < n; ++i) a[i] = 1e-3f * (i % 7);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    double best = 1e9;
    for (int trial = 0; trial < 5; ++trial) {
        double t0 = now();
        for (size_t r = 0; r < reps; ++r)
            for (size_t i = 0; i < n; i += 64) {
                s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
                s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
                s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
                s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
            }
        double t = now() - t0;
        if (t < best) best = t;
    }
    float out[16]; _mm512_storeu_ps(out, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    printf("%zu KiB: %.1f GB/s  (%.2f us per pass)  [%g]\n", kb, (double)n * 4 * reps / best / 1e9, best / reps * 1e6, out[0]);
    return 0;
}
