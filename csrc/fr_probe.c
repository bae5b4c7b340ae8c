/*
 * fr_probe.c -- the machine probe: what one core of this CPU can do (API: fr_probe.h).
 *
 * Every benchmark of fastrnn is read as a share of what the core can do at best, so
 * that a kernel tuned on one CPU is judged fairly on another: x86 server cores differ
 * by 2x in FMA width (the project's kernel notes).  The numbers, and why each is measured this way:
 *
 * FMA peak (fr_probe_fma_peak): 12 independent chains acc = acc * m + c, each held
 *   in its own register, in one inline-asm loop that holds nothing else but the loop
 *   counter (check: objdump -d, the loop of each fr_chains_* function).  Registers
 *   only, so no load or cache can limit it: it is the ceiling of the multiply-add
 *   units alone, the per-core limit every GEMM tile is held against.  12 chains,
 *   because a core must keep (FMA latency) x (FMA ports) operations in flight to be
 *   busy: 4 x 2 = 8 on Zen 4 and Sapphire Rapids; 12 also covers SSE2's mul then add
 *   (3 + 3 cycles on Zen 4, x 2 pairs a cycle).  Inline asm, because a compiler may
 *   merge or contract chains, keep them in memory, or drop them; asm volatile with
 *   the accumulators as early-clobbered in/out operands leaves exactly the 12 FMAs
 *   (or 12 muls and 12 adds) and the loop counter.
 *   What it shows, per cycle of one core (f32; f64 has half the lanes):
 *     Zen 4: two 256-bit FMA pipes; a zmm FMA takes both, so 1 zmm or 2 ymm FMA a
 *       cycle = 32 flops: AVX-512 is no faster than AVX2 here.
 *     Sapphire Rapids: two 512-bit FMA ports: 2 zmm FMA = 64 flops a cycle, twice
 *       its AVX2 rate (measured there: 247 GFLOP/s per core).
 *   (Measured on the project's Zen 4 VM: 117 GFLOP/s f32 with zmm and with ymm at
 *   3.66 GHz, i.e. 32 flops a cycle; vdpbf16ps 234, twice that.)
 *   "generic" is the x86-64 baseline the generic kernels are built for: SSE2 has no
 *   FMA, so a step is mulps + addps, counted as 2 flops per lane like an FMA;
 *   "scalar" is the same on one lane (the ceiling of code that did not vectorise).
 * bf16 peak (fr_probe_bf16_peak): the same 12 chains with vdpbf16ps zmm (AVX512_BF16:
 *   32 bf16 products summed in pairs into 16 floats = 64 flops an instruction).
 * AMX peak (fr_probe_amx_peak): tdpbf16ps in MLAS's 2x2 tile loop: each step loads 2 A
 *   and 2 B tiles (from L1) and runs 4 tdpbf16ps into 4 accumulator tiles of 16 x 16
 *   floats, K = 32: 4 x 16 x 16 x 32 x 2 = 65536 flops a step.  The loads are part of
 *   it, as in a real kernel: this is what a bf16 GEMM on AMX can reach, not only what
 *   the tile unit does on its own registers.  On Linux a process must ask for the tile
 *   state before its first tile instruction (fr_amx_request), else it gets SIGILL.
 * Bandwidth (fr_probe_bandwidth): the calling core sums a buffer of the given size
 *   (written first, so every page exists) into 8 vector accumulators, so that the add
 *   latency never limits it, with the widest loads the machine runs, in inline asm
 *   again (a compiled loop would measure the build type or the sanitizers).  The size
 *   picks the level: half of L1d, half of L2, a few times L2 (L3), far beyond L3
 *   (memory).  Read only, because a recurrent step mostly reads: its weights, every
 *   step.
 * Clock (fr_probe_clock_ghz): a chain of dependent register adds, one cycle each on
 *   every x86-64 core: adds per second = cycles per second.  Peak / clock / (flops
 *   per FMA) is the FMAs per cycle the core sustains; no performance counters needed
 *   (virtual machines often have none).
 *
 * Timing (fr_best_rate): CLOCK_MONOTONIC; the kernel first runs for a fifth of the
 * time (warm-up: Intel cores change their clock for heavy AVX-512 or AMX use, "the
 * frequency licence", and any core's turbo takes a while to settle), then as many
 * runs of 2 ms as fit, and the best counts: noise on a shared machine only ever slows
 * a run down, and a short run has the best chance to escape it.
 *
 * Safety: every instruction beyond the x86-64 baseline runs only after CPUID says the
 * CPU has it and XCR0 says the OS saves its registers (and, for AMX, Linux granted the
 * tile state); the functions holding them are compiled with GCC's target attribute, so
 * this file needs no special flags.  vdpbf16ps and the AMX kernel are compiled only when
 * the toolchain can assemble them (CMake defines FR_BUILD_PROBE_BF16 /
 * FR_BUILD_PROBE_AMX); otherwise their peaks are 0.0.  Off x86-64 only the plain C
 * bandwidth measures, everything else reports "no".
 */
#define _GNU_SOURCE /* syscall, clock_gettime, posix_memalign, sysconf cache sizes */

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fr_probe.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define FR_PROBE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define FR_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FR_TARGET_AVX512 __attribute__((target("avx512f")))
#define FR_TARGET_AMX __attribute__((target("amx-tile,amx-bf16")))
#if defined(__linux__)
#include <sys/syscall.h>
#define FR_ARCH_GET_XCOMP_PERM 0x1022
#define FR_ARCH_REQ_XCOMP_PERM 0x1023
#define FR_XFEATURE_XTILEDATA 18
#endif
#else
#define FR_PROBE_X86 0
#endif

#define FR_DEFAULT_SECONDS 0.2
#define FR_TRIAL_SECONDS 0.002 /* one timed run (shorter when `seconds` is below 40 ms) */
#define FR_MIN_TRIALS 3

/* ------------------------------------------------------------------ timing */

/* A measured kernel: runs n units of work (loop iterations, passes) on ctx and
 * returns a value computed from its results, which the caller keeps. */
typedef double (*fr_kernel_fn)(void *ctx, long n);

static double fr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The best rate (work per second) of fn over about `seconds`: n doubled until one run
 * takes FR_TRIAL_SECONDS, runs of that n until a fifth of the time is spent (the
 * warm-up), then runs of about FR_TRIAL_SECONDS (at least FR_MIN_TRIALS) until the
 * time is up.  Short runs, many of them: on a shared machine some run will have
 * had the core to itself, while a long one is sure to be interrupted. */
static double fr_best_rate(fr_kernel_fn fn, void *ctx, double work_per_n, double seconds)
{
    const double budget = seconds > 0.0 ? seconds : FR_DEFAULT_SECONDS;
    const double trial = budget / 20 < FR_TRIAL_SECONDS ? budget / 20 : FR_TRIAL_SECONDS;
    const double start = fr_now();
    volatile double sink = 0.0; /* the kernels' results are kept */
    double t, best = 0.0;
    long n = 1;
    int k;
    for (;;) {
        const double t0 = fr_now();
        sink += fn(ctx, n);
        t = fr_now() - t0;
        if (t >= trial && fr_now() - start >= budget / 5) {
            break;
        }
        if (t < trial && n <= LONG_MAX / 2) {
            n *= 2;
        }
    }
    if (t > 0.0 && trial / t * (double)n < (double)LONG_MAX) {
        n = (long)(trial / t * (double)n);
    }
    if (n < 1) {
        n = 1;
    }
    for (k = 0; k < FR_MIN_TRIALS || fr_now() - start < budget; ++k) {
        const double t0 = fr_now();
        sink += fn(ctx, n);
        t = fr_now() - t0;
        if (t > 0.0 && work_per_n * (double)n / t > best) {
            best = work_per_n * (double)n / t;
        }
    }
    (void)sink;
    return best;
}

/* ------------------------------------------------------------------ CPUID */

static fr_cpu fr_cpu_cached;
static pthread_once_t fr_cpu_once = PTHREAD_ONCE_INIT;

/* Fill the cache sizes that are still 0 from sysconf (glibc; elsewhere no-op). */
static void fr_cache_sysconf(fr_cpu *c)
{
    int used = 0;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
    const int names[3] = {_SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE};
    size_t *fields[3];
    int i;
    fields[0] = &c->l1d_bytes;
    fields[1] = &c->l2_bytes;
    fields[2] = &c->l3_bytes;
    for (i = 0; i < 3; ++i) {
        if (*fields[i] == 0) {
            const long v = sysconf(names[i]);
            if (v > 0) {
                *fields[i] = (size_t)v;
                used = 1;
            }
        }
    }
#endif
    if (used && c->l1d_bytes > 0 && strcmp(c->cache_source, "unknown") == 0) {
        c->cache_source = "sysconf";
    }
}

#if FR_PROBE_X86
static void fr_cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

/* Deterministic cache parameters (Intel leaf 4 and AMD leaf 0x8000001D share the
 * format): one subleaf per cache until type 0; size = ways x partitions x line x sets. */
static void fr_cache_leaf(fr_cpu *c, unsigned leaf)
{
    unsigned sub, r[4];
    for (sub = 0; sub < 16; ++sub) {
        unsigned type, level;
        size_t size;
        fr_cpuid(leaf, sub, r);
        type = r[0] & 0x1fu; /* 1 data, 2 instruction, 3 unified */
        level = (r[0] >> 5) & 0x7u;
        if (type == 0) {
            break;
        }
        size = (size_t)((r[1] >> 22) + 1) * (size_t)(((r[1] >> 12) & 0x3ffu) + 1) *
               (size_t)((r[1] & 0xfffu) + 1) * ((size_t)r[2] + 1);
        if (level == 1 && type == 1) {
            c->l1d_bytes = size;
        } else if (level == 2 && type != 2) {
            c->l2_bytes = size;
        } else if (level == 3 && type != 2) {
            c->l3_bytes = size;
        }
    }
}

static unsigned long long fr_xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0u));
    return ((unsigned long long)hi << 32) | lo;
}

static void fr_cpu_read(void)
{
    fr_cpu *c = &fr_cpu_cached;
    unsigned r[4], max_leaf, max_ext, sig, fam, mod;
    memset(c, 0, sizeof *c);
    c->cache_source = "unknown";
    max_leaf = __get_cpuid_max(0, NULL);
    max_ext = __get_cpuid_max(0x80000000u, NULL);
    fr_cpuid(0, 0, r);
    memcpy(c->vendor, &r[1], 4);
    memcpy(c->vendor + 4, &r[3], 4);
    memcpy(c->vendor + 8, &r[2], 4);
    c->vendor[12] = '\0';

    if (max_ext >= 0x80000004u) {
        unsigned leaf;
        size_t start = 0, end;
        for (leaf = 0; leaf < 3; ++leaf) {
            fr_cpuid(0x80000002u + leaf, 0, r);
            memcpy(c->brand + 16 * leaf, r, 16);
        }
        c->brand[48] = '\0';
        while (c->brand[start] == ' ') {
            ++start;
        }
        memmove(c->brand, c->brand + start, strlen(c->brand + start) + 1);
        end = strlen(c->brand);
        while (end > 0 && c->brand[end - 1] == ' ') {
            c->brand[--end] = '\0';
        }
    }

    if (max_leaf >= 1) {
        fr_cpuid(1, 0, r);
        sig = r[0];
        fam = (sig >> 8) & 0xfu;
        mod = (sig >> 4) & 0xfu;
        c->stepping = (int)(sig & 0xfu);
        c->family = (int)(fam == 0xfu ? fam + ((sig >> 20) & 0xffu) : fam);
        c->model = (int)(fam == 0x6u || fam == 0xfu ? (((sig >> 16) & 0xfu) << 4) + mod : mod);
        c->sse2 = (int)((r[3] >> 26) & 1u);
        c->fma = (int)((r[2] >> 12) & 1u);
        c->avx = (int)((r[2] >> 28) & 1u);
        c->hypervisor = (int)((r[2] >> 31) & 1u);
        /* XGETBV exists only when the OS has set CR4.OSXSAVE (CPUID.1:ECX[27]) */
        if ((r[2] >> 27) & 1u) {
            const unsigned long long xcr0 = fr_xgetbv0();
            c->os_avx = (xcr0 & 0x6u) == 0x6u;
            c->os_avx512 = c->os_avx && (xcr0 & 0xe0u) == 0xe0u;
            c->os_amx = (xcr0 & 0x60000ull) == 0x60000ull;
        }
    }
    if (max_leaf >= 7) {
        unsigned sub1;
        fr_cpuid(7, 0, r);
        sub1 = r[0];
        c->avx2 = (int)((r[1] >> 5) & 1u);
        c->avx512f = (int)((r[1] >> 16) & 1u);
        c->avx512dq = (int)((r[1] >> 17) & 1u);
        c->avx512bw = (int)((r[1] >> 30) & 1u);
        c->avx512vl = (int)((r[1] >> 31) & 1u);
        c->avx512_fp16 = (int)((r[3] >> 23) & 1u);
        c->amx_bf16 = (int)((r[3] >> 22) & 1u);
        c->amx_tile = (int)((r[3] >> 24) & 1u);
        c->amx_int8 = (int)((r[3] >> 25) & 1u);
        if (sub1 >= 1) {
            fr_cpuid(7, 1, r);
            c->avx512_bf16 = (int)((r[0] >> 5) & 1u);
        }
    }

    /* caches: Intel leaf 4; AMD (and Hygon) leaf 0x8000001D with TOPOEXT, else the
     * legacy AMD leaves 0x80000005 (L1d KiB in ECX[31:24]) and 0x80000006 (L2 KiB in
     * ECX[31:16], L3 in 512 KiB units in EDX[31:18]) */
    if (strcmp(c->vendor, "AuthenticAMD") == 0 || strcmp(c->vendor, "HygonGenuine") == 0) {
        unsigned topoext = 0;
        if (max_ext >= 0x80000001u) {
            fr_cpuid(0x80000001u, 0, r);
            topoext = (r[2] >> 22) & 1u;
        }
        if (topoext && max_ext >= 0x8000001du) {
            fr_cache_leaf(c, 0x8000001du);
            c->cache_source = "cpuid leaf 0x8000001D";
        }
        if (c->l1d_bytes == 0 && max_ext >= 0x80000006u) {
            fr_cpuid(0x80000005u, 0, r);
            c->l1d_bytes = (size_t)(r[2] >> 24) * 1024;
            fr_cpuid(0x80000006u, 0, r);
            c->l2_bytes = (size_t)(r[2] >> 16) * 1024;
            c->l3_bytes = (size_t)(r[3] >> 18) * 512 * 1024;
            c->cache_source = "cpuid leaves 0x80000005/6";
        }
    } else if (max_leaf >= 4) {
        fr_cache_leaf(c, 4);
        c->cache_source = "cpuid leaf 4";
    }
    if (c->l1d_bytes == 0) {
        c->cache_source = "unknown";
    }
    fr_cache_sysconf(c);
}

/* Linux: the process may use the tile data (a read-only query, no side effect). */
static int fr_amx_permitted(void)
{
#if defined(__linux__)
    unsigned long long mask = 0;
    if (!fr_cpu_cached.amx_tile || !fr_cpu_cached.os_amx) {
        return 0;
    }
    if (syscall(SYS_arch_prctl, FR_ARCH_GET_XCOMP_PERM, &mask) != 0) {
        return 0;
    }
    return (int)((mask >> FR_XFEATURE_XTILEDATA) & 1u);
#else
    return 0;
#endif
}

static int fr_amx_granted;
static pthread_once_t fr_amx_once = PTHREAD_ONCE_INIT;

static void fr_amx_request_once(void)
{
    pthread_once(&fr_cpu_once, fr_cpu_read);
#if defined(__linux__)
    if (fr_cpu_cached.amx_tile && fr_cpu_cached.os_amx &&
        syscall(SYS_arch_prctl, FR_ARCH_REQ_XCOMP_PERM, FR_XFEATURE_XTILEDATA) == 0) {
        fr_amx_granted = fr_amx_permitted();
    }
#endif
}
#else /* not x86-64 */
static void fr_cpu_read(void)
{
    memset(&fr_cpu_cached, 0, sizeof fr_cpu_cached);
    fr_cpu_cached.cache_source = "unknown";
    fr_cache_sysconf(&fr_cpu_cached);
}

static int fr_amx_permitted(void)
{
    return 0;
}

static int fr_amx_granted;
static pthread_once_t fr_amx_once = PTHREAD_ONCE_INIT;

static void fr_amx_request_once(void)
{
}
#endif

const fr_cpu *fr_cpu_get(void)
{
    pthread_once(&fr_cpu_once, fr_cpu_read);
    return &fr_cpu_cached;
}

void fr_cpu_info(fr_cpu *cpu)
{
    *cpu = *fr_cpu_get();
    cpu->amx_granted = fr_amx_permitted();
}

int fr_amx_request(void)
{
    pthread_once(&fr_amx_once, fr_amx_request_once);
    return fr_amx_granted;
}

int fr_probe_isa_usable(int isa)
{
    const fr_cpu *c = fr_cpu_get();
    switch (isa) {
    case FR_PROBE_SCALAR:
    case FR_PROBE_GENERIC:
        return FR_PROBE_X86 && c->sse2;
    case FR_PROBE_AVX2:
        return FR_PROBE_X86 && c->avx && c->avx2 && c->fma && c->os_avx;
    case FR_PROBE_AVX512:
        return FR_PROBE_X86 && c->avx512f && c->os_avx512;
    default:
        return 0;
    }
}

const char *fr_probe_isa_name(int isa)
{
    static const char *const names[FR_PROBE_NISA] = {"scalar", "generic", "avx2", "avx512"};
    return isa >= 0 && isa < FR_PROBE_NISA ? names[isa] : NULL;
}

/* ------------------------------------------------------------------ FMA chains */

#if FR_PROBE_X86
#define FR_REP12(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)

/* The loop every chain kernel runs.  Operands: %0-%11 the 12 accumulators, %12 the
 * loop counter, %13 the multiplier m, %14 the addend c; BODY advances every chain once. */
#define FR_CHAINS_ASM(BODY) ".p2align 5\n" "1:\n\t" BODY "sub $1, %12\n\t" "jnz 1b\n\t"

/* acc = m * acc + c in one instruction (FMA: vfmadd213 is dst = src2 * dst + src3;
 * vdpbf16ps: dst += pairwise products of src2 and src3); AT&T order, r names the
 * register width (x, t, g: xmm, ymm, zmm). */
#define FR_FMA3(ins, r, i) ins " %" r "14, %" r "13, %" r #i "\n\t"
#define FR_Z_PS(i) FR_FMA3("vfmadd213ps", "g", i)
#define FR_Z_PD(i) FR_FMA3("vfmadd213pd", "g", i)
#define FR_Y_PS(i) FR_FMA3("vfmadd213ps", "t", i)
#define FR_Y_PD(i) FR_FMA3("vfmadd213pd", "t", i)
#define FR_BF16(i) FR_FMA3("vdpbf16ps", "g", i)
/* acc = acc * m, then acc = acc + c: the same recurrence without FMA.  All 12
 * multiplies come first, then the 12 adds: interleaved mul, add, mul, add, ... the same
 * chains reached only 1.6 of Zen 4's 2 mul + 2 add a cycle (the 6-cycle mul-add
 * latency x 2 pairs a cycle leaves no slack for the oldest-first scheduler); in two
 * blocks, 2.0. */
#define FR_MUL2(ins, i) ins " %x13, %x" #i "\n\t"
#define FR_ADD2(ins, i) ins " %x14, %x" #i "\n\t"
#define FR_MULPS(i) FR_MUL2("mulps", i)
#define FR_ADDPS(i) FR_ADD2("addps", i)
#define FR_MULPD(i) FR_MUL2("mulpd", i)
#define FR_ADDPD(i) FR_ADD2("addpd", i)
#define FR_MULSS(i) FR_MUL2("mulss", i)
#define FR_ADDSS(i) FR_ADD2("addss", i)
#define FR_MULSD(i) FR_MUL2("mulsd", i)
#define FR_ADDSD(i) FR_ADD2("addsd", i)

/* An accumulator operand: in/out and early-clobbered, so that it never shares its
 * register with m or c (without "&" GCC may give an output the register of an input
 * with the same value -- it did, for a chain starting at m's value 0.5). */
#define FR_ACC(cons, a) "+&" cons(a)

/* One chain kernel: n (>= 1) iterations of the loop above.  vec: the register type;
 * elem: its element; cons: the register constraint; BODY: one step of the 12 chains;
 * SET1: broadcast an elem; M, C: the multiplier and addend registers.  Returns the first element of the accumulators'
 * sum, so that their results are used. */
#define FR_CHAIN_KERNEL(name, attr, vec, elem, cons, BODY, SET1, M, C)                          \
    attr static double name(void *ctx, long n)                                                 \
    {                                                                                          \
        vec a0 = SET1((elem)0.0), a1 = SET1((elem)0.0625), a2 = SET1((elem)0.125);             \
        vec a3 = SET1((elem)0.1875), a4 = SET1((elem)0.25), a5 = SET1((elem)0.3125);           \
        vec a6 = SET1((elem)0.375), a7 = SET1((elem)0.4375), a8 = SET1((elem)0.5);             \
        vec a9 = SET1((elem)0.5625), a10 = SET1((elem)0.625), a11 = SET1((elem)0.6875);        \
        const vec m = M, c = C;                                                                \
        vec s;                                                                                 \
        elem first;                                                                            \
        (void)ctx;                                                                             \
        __asm__ volatile(FR_CHAINS_ASM(BODY)                                                   \
                         : FR_ACC(cons, a0), FR_ACC(cons, a1), FR_ACC(cons, a2),              \
                           FR_ACC(cons, a3), FR_ACC(cons, a4), FR_ACC(cons, a5),              \
                           FR_ACC(cons, a6), FR_ACC(cons, a7), FR_ACC(cons, a8),              \
                           FR_ACC(cons, a9), FR_ACC(cons, a10), FR_ACC(cons, a11), "+&r"(n)   \
                         : cons(m), cons(c)                                                    \
                         : "cc");                                                              \
        s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));     \
        memcpy(&first, &s, sizeof first);                                                      \
        return (double)first;                                                                  \
    }

#define FR_SCALAR(x) (x)
/* m = 0.5, c = 1: every chain tends to 2, never overflows nor becomes denormal */
FR_CHAIN_KERNEL(fr_chains_avx512_f32, FR_TARGET_AVX512, __m512, float, "v", FR_REP12(FR_Z_PS),
                _mm512_set1_ps, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f))
FR_CHAIN_KERNEL(fr_chains_avx512_f64, FR_TARGET_AVX512, __m512d, double, "v", FR_REP12(FR_Z_PD),
                _mm512_set1_pd, _mm512_set1_pd(0.5), _mm512_set1_pd(1.0))
FR_CHAIN_KERNEL(fr_chains_avx2_f32, FR_TARGET_AVX2, __m256, float, "x", FR_REP12(FR_Y_PS),
                _mm256_set1_ps, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f))
FR_CHAIN_KERNEL(fr_chains_avx2_f64, FR_TARGET_AVX2, __m256d, double, "x", FR_REP12(FR_Y_PD),
                _mm256_set1_pd, _mm256_set1_pd(0.5), _mm256_set1_pd(1.0))
FR_CHAIN_KERNEL(fr_chains_generic_f32, , __m128, float, "x", FR_REP12(FR_MULPS) FR_REP12(FR_ADDPS),
                _mm_set1_ps, _mm_set1_ps(0.5f), _mm_set1_ps(1.0f))
FR_CHAIN_KERNEL(fr_chains_generic_f64, , __m128d, double, "x", FR_REP12(FR_MULPD) FR_REP12(FR_ADDPD),
                _mm_set1_pd, _mm_set1_pd(0.5), _mm_set1_pd(1.0))
FR_CHAIN_KERNEL(fr_chains_scalar_f32, , float, float, "x", FR_REP12(FR_MULSS) FR_REP12(FR_ADDSS),
                FR_SCALAR, 0.5f, 1.0f)
FR_CHAIN_KERNEL(fr_chains_scalar_f64, , double, double, "x", FR_REP12(FR_MULSD) FR_REP12(FR_ADDSD),
                FR_SCALAR, 0.5, 1.0)
#if defined(FR_BUILD_PROBE_BF16)
/* bf16 pairs: m = (1, 1), c = (2^-10, 2^-10): each step adds 1/32 to every float */
FR_CHAIN_KERNEL(fr_chains_bf16, FR_TARGET_AVX512, __m512, float, "v", FR_REP12(FR_BF16),
                _mm512_set1_ps, _mm512_castsi512_ps(_mm512_set1_epi32(0x3F803F80)),
                _mm512_castsi512_ps(_mm512_set1_epi32(0x3A803A80)))
#endif

/* per fr_probe_isa: the f32 and f64 kernels and their lanes */
static const struct {
    fr_kernel_fn fn[2];
    int lanes[2];
} fr_chain_table[FR_PROBE_NISA] = {
    {{fr_chains_scalar_f32, fr_chains_scalar_f64}, {1, 1}},
    {{fr_chains_generic_f32, fr_chains_generic_f64}, {4, 2}},
    {{fr_chains_avx2_f32, fr_chains_avx2_f64}, {8, 4}},
    {{fr_chains_avx512_f32, fr_chains_avx512_f64}, {16, 8}},
};
#endif /* FR_PROBE_X86 */

#define FR_CHAINS 12

double fr_probe_fma_peak(int isa, int dtype, double seconds)
{
    if ((dtype != FR_FLOAT32 && dtype != FR_FLOAT64) || !fr_probe_isa_usable(isa)) {
        return 0.0;
    }
#if FR_PROBE_X86
    return fr_best_rate(fr_chain_table[isa].fn[dtype], NULL,
                        FR_CHAINS * 2.0 * fr_chain_table[isa].lanes[dtype], seconds) * 1e-9;
#else
    (void)seconds;
    return 0.0;
#endif
}

double fr_probe_bf16_peak(double seconds)
{
#if FR_PROBE_X86 && defined(FR_BUILD_PROBE_BF16)
    const fr_cpu *c = fr_cpu_get();
    if (c->avx512f && c->avx512_bf16 && c->os_avx512) {
        return fr_best_rate(fr_chains_bf16, NULL, FR_CHAINS * 64.0, seconds) * 1e-9;
    }
#endif
    (void)seconds;
    return 0.0;
}

/* ------------------------------------------------------------------ AMX */

#if FR_PROBE_X86 && defined(FR_BUILD_PROBE_AMX)
/* 8 tiles of 16 rows x 64 bytes: tmm0-3 the accumulators (16 x 16 floats), tmm4-5 A
 * (16 x 32 bf16), tmm6-7 B (16 rows of 16 bf16 pairs: VNNI layout, K = 32). */
typedef struct fr_amx_ctx {
    unsigned char cfg[64];  /* palette 1: byte 0 palette, bytes 16+2i colsb[i], 48+i rows[i] */
    uint16_t a[2][16 * 32]; /* bf16 1.0 */
    uint16_t b[2][16 * 32]; /* bf16 2^-10 */
    float c[16 * 16];
} fr_amx_ctx;

FR_TARGET_AMX static double fr_amx_kernel(void *ctx, long n)
{
    fr_amx_ctx *x = (fr_amx_ctx *)ctx;
    long i;
    /* the tile instructions are asm without memory operands: finish the caller's stores */
    __asm__ volatile("" ::: "memory");
    _tile_loadconfig(x->cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (i = 0; i < n; ++i) {
        _tile_loadd(4, x->a[0], 64);
        _tile_loadd(5, x->a[1], 64);
        _tile_loadd(6, x->b[0], 64);
        _tile_loadd(7, x->b[1], 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, x->c, 64);
    _tile_release();
    return (double)x->c[0];
}
#endif

double fr_probe_amx_peak(double seconds)
{
#if FR_PROBE_X86 && defined(FR_BUILD_PROBE_AMX)
    const fr_cpu *c = fr_cpu_get();
    fr_amx_ctx *x;
    double rate;
    int i;
    if (!(c->amx_tile && c->amx_bf16 && c->os_amx) || !fr_amx_request()) {
        return 0.0;
    }
    if (posix_memalign((void **)&x, 64, sizeof *x) != 0) {
        return 0.0;
    }
    memset(x, 0, sizeof *x);
    x->cfg[0] = 1;
    for (i = 0; i < 8; ++i) {
        x->cfg[16 + 2 * i] = 64; /* colsb, little-endian uint16 */
        x->cfg[48 + i] = 16;     /* rows */
    }
    for (i = 0; i < 16 * 32; ++i) {
        x->a[0][i] = x->a[1][i] = 0x3F80;
        x->b[0][i] = x->b[1][i] = 0x3A80;
    }
    rate = fr_best_rate(fr_amx_kernel, x, 4.0 * 16 * 16 * 32 * 2, seconds);
    free(x);
    return rate * 1e-9;
#else
    (void)seconds;
    return 0.0;
#endif
}

/* ------------------------------------------------------------------ bandwidth */

typedef struct fr_buffer {
    const float *data; /* 64-byte aligned */
    size_t floats;     /* a multiple of 128 (512 bytes) */
} fr_buffer;

#if FR_PROBE_X86
#define FR_REP8(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7)
/* accumulator i += the i-th vector of the 8 at %8 */
#define FR_RD_Z(i) "vaddps " #i "*64(%8), %g" #i ", %g" #i "\n\t"
#define FR_RD_Y(i) "vaddps " #i "*32(%8), %t" #i ", %t" #i "\n\t"
#define FR_RD_X(i) "addps " #i "*16(%8), %x" #i "\n\t"

/* Sum the buffer `passes` times into 8 accumulators of vec, 8 vectors (STEP_BYTES) a
 * step.  The pass is inline asm, like the FMA chains: a compiled loop would time the
 * build type (at -O0 every accumulator goes through the stack) or the sanitizers'
 * checks of every load, not the cache. */
#define FR_READ_KERNEL(name, attr, vec, cons, ZERO, STEP, STEP_BYTES)                        \
    attr static double name(void *ctx, long passes)                                        \
    {                                                                                      \
        const fr_buffer *buf = (const fr_buffer *)ctx;                                     \
        const char *const end = (const char *)(buf->data + buf->floats);                   \
        vec s0 = ZERO, s1 = ZERO, s2 = ZERO, s3 = ZERO, s4 = ZERO, s5 = ZERO, s6 = ZERO,   \
            s7 = ZERO, s;                                                                  \
        float first;                                                                       \
        long r;                                                                            \
        for (r = 0; r < passes; ++r) {                                                     \
            const char *p = (const char *)buf->data;                                       \
            __asm__ volatile(".p2align 5\n" "1:\n\t" FR_REP8(STEP) "add $" STEP_BYTES    \
                             ", %8\n\t" "cmp %9, %8\n\t" "jb 1b\n\t"                      \
                             : FR_ACC(cons, s0), FR_ACC(cons, s1), FR_ACC(cons, s2),       \
                               FR_ACC(cons, s3), FR_ACC(cons, s4), FR_ACC(cons, s5),       \
                               FR_ACC(cons, s6), FR_ACC(cons, s7), "+&r"(p)                \
                             : "r"(end)                                                    \
                             : "cc", "memory");                                            \
        }                                                                                  \
        s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));                             \
        memcpy(&first, &s, sizeof first);                                                  \
        return (double)first;                                                              \
    }

FR_READ_KERNEL(fr_read_avx512, FR_TARGET_AVX512, __m512, "v", _mm512_setzero_ps(), FR_RD_Z, "512")
FR_READ_KERNEL(fr_read_avx2, FR_TARGET_AVX2, __m256, "x", _mm256_setzero_ps(), FR_RD_Y, "256")
FR_READ_KERNEL(fr_read_base, , __m128, "x", _mm_setzero_ps(), FR_RD_X, "128")
#else
/* elsewhere, plain C with 8 accumulators */
static double fr_read_base(void *ctx, long passes)
{
    const fr_buffer *buf = (const fr_buffer *)ctx;
    const float *p = buf->data;
    float s[8] = {0};
    long r;
    size_t i;
    int k;
    for (r = 0; r < passes; ++r) {
        for (i = 0; i < buf->floats; i += 8) {
            for (k = 0; k < 8; ++k) {
                s[k] += p[i + k];
            }
        }
    }
    return (double)(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
}
#endif

double fr_probe_bandwidth(size_t bytes, double seconds)
{
    fr_buffer buf;
    fr_kernel_fn fn = fr_read_base;
    void *mem;
    float *data;
    double rate;
    size_t i;
    bytes -= bytes % 512;
    if (bytes == 0 || posix_memalign(&mem, 64, bytes) != 0) {
        return 0.0;
    }
    data = (float *)mem;
    buf.data = data;
    buf.floats = bytes / sizeof(float);
    for (i = 0; i < buf.floats; ++i) {
        data[i] = 1e-3f * (float)(i % 7);
    }
#if FR_PROBE_X86
    if (fr_probe_isa_usable(FR_PROBE_AVX512)) {
        fn = fr_read_avx512;
    } else if (fr_probe_isa_usable(FR_PROBE_AVX2)) {
        fn = fr_read_avx2;
    }
#endif
    rate = fr_best_rate(fn, &buf, (double)bytes, seconds);
    free(mem);
    return rate * 1e-9;
}

/* ------------------------------------------------------------------ clock */

#if FR_PROBE_X86
#define FR_DEP_ADD(i) "add %2, %0\n\t"
#define FR_CLOCK_ADDS 48 /* dependent adds (cycles) per loop iteration */

static double fr_clock_kernel(void *ctx, long n)
{
    unsigned long x = 0, one = 1;
    (void)ctx;
    /* register adds, not immediate ones: some cores fold chains of add-immediate at rename */
    __asm__ volatile(".p2align 5\n" "1:\n\t" FR_REP12(FR_DEP_ADD) FR_REP12(FR_DEP_ADD)
                     FR_REP12(FR_DEP_ADD) FR_REP12(FR_DEP_ADD) "sub $1, %1\n\t" "jnz 1b\n\t"
                     : "+r"(x), "+r"(n)
                     : "r"(one)
                     : "cc");
    return (double)x;
}
#endif

double fr_probe_clock_ghz(double seconds)
{
#if FR_PROBE_X86
    return fr_best_rate(fr_clock_kernel, NULL, FR_CLOCK_ADDS, seconds) * 1e-9;
#else
    (void)seconds;
    return 0.0;
#endif
}
