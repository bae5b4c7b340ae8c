/*
 * test_probe.c -- standalone test of the machine probe (fr_probe.h), and its report.
 *
 *     test_probe [seconds]     (seconds per measurement, default 0.2)
 *
 * Prints what the probe finds on this machine (CPU, features, OS state, caches, clock,
 * the FMA peak of one core per instruction set and dtype, bf16 and AMX peaks, read
 * bandwidth from each cache level), then checks that it is sane:
 *   - the CPU identity is filled (x86-64: vendor, brand, family) and the features are
 *     consistent (avx512f implies avx2 implies avx; OS state implies the CPU feature);
 *   - every peak is > 0 for an instruction set this CPU and OS run, and exactly 0 for
 *     one they do not (so nothing ever faults), also bf16 and AMX;
 *   - f64 runs at about half the f32 rate on vector ISAs (the same on scalar);
 *   - no peak exceeds what 2 FMA units a cycle could do at the measured clock (a loop
 *     the compiler emptied would), L1 reads beat reads from beyond L2;
 *   - invalid arguments give 0, fr_amx_request is idempotent.
 * Last line: "N passed, N failed"; exit status non-zero on any failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "../fr_probe.h"

static int g_pass, g_fail;

static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    if (ok) {
        g_pass++;
        return;
    }
    g_fail++;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static const char *yes(int flag)
{
    return flag ? "yes" : "no";
}

/* "32 KiB", "1 MiB", ..., "unknown" for 0 */
static const char *size_str(size_t bytes, char *out, size_t n)
{
    if (bytes == 0) {
        snprintf(out, n, "unknown");
    } else if (bytes >= ((size_t)1 << 20) && bytes % ((size_t)1 << 20) == 0) {
        snprintf(out, n, "%zu MiB", bytes >> 20);
    } else {
        snprintf(out, n, "%zu KiB", bytes >> 10);
    }
    return out;
}

static void report_cpu(const fr_cpu *c)
{
    char l1[32], l2[32], l3[32];
    printf("CPU       %s \"%s\"  family %d model %d stepping %d%s\n", c->vendor, c->brand,
           c->family, c->model, c->stepping, c->hypervisor ? "  (virtual machine)" : "");
    printf("features  sse2 %s, avx %s, avx2 %s, fma %s, avx512f %s, avx512bw %s, avx512vl %s,\n"
           "          avx512dq %s, avx512_bf16 %s, avx512_fp16 %s, amx_tile %s, amx_bf16 %s,"
           " amx_int8 %s\n",
           yes(c->sse2), yes(c->avx), yes(c->avx2), yes(c->fma), yes(c->avx512f),
           yes(c->avx512bw), yes(c->avx512vl), yes(c->avx512dq), yes(c->avx512_bf16),
           yes(c->avx512_fp16), yes(c->amx_tile), yes(c->amx_bf16), yes(c->amx_int8));
    printf("OS state  avx %s, avx-512 %s, amx tiles (XCR0) %s, amx granted to this process %s\n",
           yes(c->os_avx), yes(c->os_avx512), yes(c->os_amx), yes(c->amx_granted));
    printf("caches    L1d %s, L2 %s, L3 %s per instance (%s)\n", size_str(c->l1d_bytes, l1, 32),
           size_str(c->l2_bytes, l2, 32), size_str(c->l3_bytes, l3, 32), c->cache_source);
}

static void test_cpu(const fr_cpu *c)
{
#if defined(__x86_64__)
    check(c->vendor[0] != '\0', "vendor empty");
    check(c->brand[0] != '\0', "brand empty");
    check(c->family > 0, "family %d", c->family);
    check(c->sse2, "x86-64 without sse2");
    check(c->l1d_bytes > 0, "L1d size unknown");
#endif
    check(!c->avx512f || c->avx2, "avx512f without avx2");
    check(!c->avx2 || c->avx, "avx2 without avx");
    check(!c->os_avx512 || c->os_avx, "OS avx-512 state without avx state");
    check(!c->os_avx512 || c->avx512f, "OS avx-512 state on a CPU without avx512f");
    check(!c->amx_granted || (c->amx_tile && c->os_amx), "AMX granted without AMX");
    check(c->l2_bytes == 0 || c->l2_bytes > c->l1d_bytes, "L2 %zu <= L1d %zu", c->l2_bytes,
          c->l1d_bytes);
    check(c->cache_source != NULL, "cache_source NULL");
    check(fr_probe_isa_usable(-1) == 0 && fr_probe_isa_usable(FR_PROBE_NISA) == 0,
          "unknown isa usable");
    check(fr_probe_isa_name(-1) == NULL && fr_probe_isa_name(FR_PROBE_NISA) == NULL,
          "unknown isa named");
    check(!fr_probe_isa_usable(FR_PROBE_AVX512) || fr_probe_isa_usable(FR_PROBE_AVX2) ||
              !c->avx2,
          "avx512 usable, avx2 not");
}

/* FMA peaks: report, and check against the features and the clock */
static void test_fma(double seconds, double ghz)
{
    static const char *what[FR_PROBE_NISA] = {"(mul+add, 1 lane)", "(SSE2 mul+add)",
                                              "(ymm FMA)", "(zmm FMA)"};
    static const int lanes_f32[FR_PROBE_NISA] = {1, 4, 8, 16};
    int isa;
    printf("FMA peak of one core, 12 chains   f32 GFLOP/s  f64 GFLOP/s   f32 flop/cycle  "
           "f32 instr/cycle\n");
    for (isa = FR_PROBE_AVX512; isa >= FR_PROBE_SCALAR; --isa) {
        const int usable = fr_probe_isa_usable(isa);
        const double f32 = fr_probe_fma_peak(isa, FR_FLOAT32, seconds);
        const double f64 = fr_probe_fma_peak(isa, FR_FLOAT64, seconds);
        const double ratio = f32 > 0.0 ? f64 / f32 : 0.0;
        const double per_cycle = ghz > 0.0 ? f32 / ghz : 0.0;
        if (usable) {
            printf("  %-8s %-22s %9.1f  %11.1f   %14.1f  %15.2f\n", fr_probe_isa_name(isa),
                   what[isa], f32, f64, per_cycle, per_cycle / (2.0 * lanes_f32[isa]));
        } else {
            printf("  %-8s %-22s %9s  %11s\n", fr_probe_isa_name(isa), what[isa], "n/a", "n/a");
        }
        if (!usable) {
            check(f32 == 0.0 && f64 == 0.0, "%s not usable but peak %g / %g", fr_probe_isa_name(isa),
                  f32, f64);
            continue;
        }
        check(f32 > 0.0 && f64 > 0.0, "%s peak %g / %g", fr_probe_isa_name(isa), f32, f64);
        if (isa == FR_PROBE_SCALAR) {
            check(ratio > 0.6 && ratio < 1.6, "scalar f64/f32 = %.2f, expected ~1", ratio);
        } else {
            check(ratio > 0.3 && ratio < 0.8, "%s f64/f32 = %.2f, expected ~0.5",
                  fr_probe_isa_name(isa), ratio);
        }
        /* at most 2 vector multiply-adds a cycle (with room for a noisy clock): more
         * would mean the loop does not do the work it is counted for */
        check(ghz <= 0.0 || per_cycle <= 1.5 * 2 * 2 * lanes_f32[isa],
              "%s: %.1f f32 flops/cycle at %.2f GHz", fr_probe_isa_name(isa), per_cycle, ghz);
    }
    check(fr_probe_fma_peak(FR_PROBE_SCALAR, 2, seconds) == 0.0, "unknown dtype measured");
    check(fr_probe_fma_peak(FR_PROBE_NISA, FR_FLOAT32, seconds) == 0.0, "unknown isa measured");
}

static void test_bf16_amx(const fr_cpu *c, double seconds, double ghz)
{
    const double bf16 = fr_probe_bf16_peak(seconds);
    const int granted = fr_amx_request();
    const double amx = fr_probe_amx_peak(seconds);
    fr_cpu after;
    if (bf16 > 0.0) {
        printf("  bf16     (vdpbf16ps zmm)        %9.1f  %11s   %14.1f  %15.2f\n", bf16, "",
               ghz > 0.0 ? bf16 / ghz : 0.0, ghz > 0.0 ? bf16 / ghz / 64.0 : 0.0);
    } else {
        printf("  bf16     (vdpbf16ps zmm)        %9s   (CPU %s, OS %s)\n", "n/a",
               yes(c->avx512_bf16), yes(c->os_avx512));
    }
    if (amx > 0.0) {
        printf("  amx      (tdpbf16ps 2x2 tiles)  %9.1f  %11s   %14.1f\n", amx, "",
               ghz > 0.0 ? amx / ghz : 0.0);
    } else {
        printf("  amx      (tdpbf16ps 2x2 tiles)  %9s   (CPU tile %s, bf16 %s; OS %s; granted %s)\n",
               "n/a", yes(c->amx_tile), yes(c->amx_bf16), yes(c->os_amx), yes(granted));
    }
    check(fr_amx_request() == granted, "fr_amx_request not idempotent");
    check(!granted || (c->amx_tile && c->os_amx), "AMX granted on a CPU/OS without it");
    fr_cpu_info(&after);
    check(after.amx_granted == granted, "amx_granted %d after fr_amx_request() = %d",
          after.amx_granted, granted);
    if (!(c->avx512_bf16 && c->avx512f && c->os_avx512)) {
        check(bf16 == 0.0, "bf16 peak %g without avx512_bf16", bf16);
    }
#if defined(FR_BUILD_PROBE_BF16)
    else {
        check(bf16 > 0.0, "bf16 peak 0 with avx512_bf16");
    }
#endif
    if (!(c->amx_tile && c->amx_bf16 && c->os_amx && granted)) {
        check(amx == 0.0, "AMX peak %g without AMX", amx);
    }
#if defined(FR_BUILD_PROBE_AMX)
    else {
        check(amx > 0.0, "AMX peak 0 with AMX granted");
    }
#endif
}

static void test_bandwidth(const fr_cpu *c, double seconds)
{
    const size_t l1 = c->l1d_bytes ? c->l1d_bytes : (size_t)32 << 10;
    const size_t l2 = c->l2_bytes ? c->l2_bytes : (size_t)1 << 20;
    size_t l3 = c->l3_bytes ? c->l3_bytes : (size_t)32 << 20;
    size_t sizes[4];
    const char *what[4] = {"L1d: half of it", "L2: half of it", "beyond L2: 4 x L2", "memory: 4 x L3"};
    double gbs[4];
    char s[32];
    int k;
    if (l3 < 16 * l2) {
        l3 = 16 * l2;
    }
    sizes[0] = l1 / 2;
    sizes[1] = l2 / 2;
    sizes[2] = 4 * l2;
    sizes[3] = 4 * l3 < ((size_t)1 << 30) ? 4 * l3 : (size_t)1 << 30;
    printf("read bandwidth of one core\n");
    for (k = 0; k < 4; ++k) {
        gbs[k] = fr_probe_bandwidth(sizes[k], seconds);
        printf("  %-8s (%-18s)  %7.1f GB/s\n", size_str(sizes[k], s, sizeof s), what[k], gbs[k]);
        check(gbs[k] > 0.0, "bandwidth over %zu bytes: %g", sizes[k], gbs[k]);
    }
    check(gbs[0] > gbs[2], "L1 %.1f GB/s <= beyond L2 %.1f GB/s", gbs[0], gbs[2]);
    check(fr_probe_bandwidth(0, seconds) == 0.0 && fr_probe_bandwidth(511, seconds) == 0.0,
          "bandwidth of less than 512 bytes measured");
}

int main(int argc, char **argv)
{
    const double seconds = argc > 1 ? atof(argv[1]) : 0.2;
    fr_cpu cpu;
    double ghz;
    fr_cpu_info(&cpu);
    printf("fastrnn machine probe: one core, %.2f s a measurement\n", seconds);
    report_cpu(&cpu);
    test_cpu(&cpu);
    ghz = fr_probe_clock_ghz(seconds);
    printf("clock     %.2f GHz (dependent register adds)\n", ghz);
#if defined(__x86_64__)
    check(ghz > 0.2 && ghz < 10.0, "clock %g GHz", ghz);
#endif
    test_fma(seconds, ghz);
    test_bf16_amx(&cpu, seconds, ghz);
    test_bandwidth(&cpu, seconds);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
