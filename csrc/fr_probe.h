/*
 * fr_probe.h -- what the machine can do, measured on one core (plain C99, no Python.h).
 *
 * The numbers every fastrnn benchmark is held against (see fr_probe.c for how and
 * why each one is measured):
 *
 *   fr_cpu_info            vendor, brand, family/model/stepping, instruction-set
 *                          features (what the CPU has) and the register state the OS
 *                          enables (what may actually run), cache sizes.
 *   fr_probe_fma_peak      GFLOP/s of the calling core: 12 independent multiply-add
 *                          chains held in registers, per instruction set and dtype.
 *   fr_probe_bf16_peak     the same with AVX512_BF16 vdpbf16ps.
 *   fr_probe_amx_peak      AMX tdpbf16ps in a 2x2 tile loop.
 *   fr_probe_bandwidth     GB/s the calling core reads from a buffer of a given size
 *                          (choose the size to land in L1, L2, L3 or memory).
 *   fr_probe_clock_ghz     the calling core's clock, from a chain of dependent adds.
 *
 * Every measuring function returns 0.0 when the CPU or the OS cannot run it (it never
 * executes an instruction the machine lacks), and on every CPU that is not x86-64
 * (where only fr_probe_bandwidth measures).  They run on the calling thread and take
 * about `seconds` each (<= 0: a default of 0.2 s); pin the thread, and keep the other
 * cores quiet, for a stable figure.  Each is safe to call from several threads at once
 * (they then share the core's resources and measure less).
 */
#ifndef FR_PROBE_H
#define FR_PROBE_H

#include <stddef.h>

#include "fastrnn.h" /* fr_dtype */

#ifdef __cplusplus
extern "C" {
#endif

/* The instruction sets of fr_probe_fma_peak; the three named as in fr_isa_name
 * ("generic", "avx2", "avx512") are the ones the kernels are compiled for. */
typedef enum {
    FR_PROBE_SCALAR = 0,  /* one lane: mulss+addss / mulsd+addsd */
    FR_PROBE_GENERIC = 1, /* SSE2, 128 bits: mulps+addps / mulpd+addpd (x86-64 baseline) */
    FR_PROBE_AVX2 = 2,    /* AVX2+FMA3, 256 bits: vfmadd ymm */
    FR_PROBE_AVX512 = 3,  /* AVX-512F, 512 bits: vfmadd zmm */
    FR_PROBE_NISA = 4
} fr_probe_isa;

/* What fr_cpu_info reports.  Feature flags are 1 or 0; "cpu" flags say what CPUID
 * lists, "os" flags what XCR0 (XGETBV) says the OS saves and restores.  An ISA is
 * usable only with both: see fr_probe_isa_usable. */
typedef struct fr_cpu {
    char vendor[13];  /* "GenuineIntel", "AuthenticAMD", ...; "" when not x86-64 */
    char brand[49];   /* CPUID 0x80000002-4, leading blanks stripped; "" if absent */
    int family;       /* display family: base + extended when base == 0xF */
    int model;        /* display model: extended model << 4 added when family is 6 or 0xF */
    int stepping;
    int hypervisor;   /* CPUID.1:ECX[31]: running in a virtual machine */

    /* CPU features (CPUID) */
    int sse2, avx, avx2, fma;
    int avx512f, avx512bw, avx512vl, avx512dq;
    int avx512_bf16;  /* CPUID.(7,1):EAX[5]  vdpbf16ps */
    int avx512_fp16;  /* CPUID.(7,0):EDX[23] */
    int amx_tile;     /* CPUID.(7,0):EDX[24] */
    int amx_bf16;     /* CPUID.(7,0):EDX[22] */
    int amx_int8;     /* CPUID.(7,0):EDX[25] */

    /* OS state (XCR0) */
    int os_avx;       /* XCR0 bits 1, 2: SSE and AVX (ymm) state */
    int os_avx512;    /* ... and bits 5, 6, 7: opmask, zmm0-15 upper halves, zmm16-31 */
    int os_amx;       /* XCR0 bits 17, 18: the kernel manages the tile state (Linux
                       * still traps the first tile instruction until the process has
                       * asked for it: see amx_granted and fr_amx_request) */
    int amx_granted;  /* Linux: this process may use the tile data (ARCH_GET_XCOMP_PERM
                       * lists XFEATURE_XTILEDATA), e.g. after fr_amx_request() */

    /* Caches: bytes of one instance (L1d and L2 are per core on the CPUs of today;
     * L3 is shared by the cores of a complex or socket).  0 when unknown. */
    size_t l1d_bytes, l2_bytes, l3_bytes;
    const char *cache_source; /* "cpuid leaf 4", "cpuid leaf 0x8000001D",
                               * "cpuid leaves 0x80000005/6", "sysconf" or "unknown" */
} fr_cpu;

/* Fill *cpu (never NULL).  CPUID is read once per process; amx_granted is read at
 * every call. */
void fr_cpu_info(fr_cpu *cpu);

/* The same facts as read once per process, without a copy or a system call (amx_granted
 * as of that first read): for the kernels' per-call choices. */
const fr_cpu *fr_cpu_get(void);

/* Linux x86-64: ask once per process for permission to use the AMX tile data
 * (arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18)), as every
 * process must before its first tile instruction.  Thread-safe and idempotent (the
 * request is made once; later calls return its result).  Returns 1 when granted, 0
 * when the CPU or the OS has no AMX, the kernel refuses, or not Linux on x86-64. */
int fr_amx_request(void);

/* 1 when this CPU and OS can run `isa` (an fr_probe_isa), else 0 (also for an
 * unknown isa).  FR_PROBE_SCALAR and FR_PROBE_GENERIC: any x86-64. */
int fr_probe_isa_usable(int isa);
/* "scalar", "generic", "avx2", "avx512"; NULL for an unknown isa. */
const char *fr_probe_isa_name(int isa);

/* GFLOP/s of the calling core in `isa` (fr_probe_isa) and `dtype` (fr_dtype): 12
 * independent chains acc = acc * m + c held in registers, with one FMA (2 flops per
 * lane) per step in AVX2/AVX-512 and a mul + add (also 2 flops per lane) in SSE2 and
 * scalar.  0.0 for an isa the machine cannot run, an unknown isa or dtype. */
double fr_probe_fma_peak(int isa, int dtype, double seconds);

/* GFLOP/s of the calling core with vdpbf16ps zmm (12 chains; one instruction = 32
 * bf16 pairs multiplied and added into 16 floats = 64 flops).  0.0 without
 * AVX512_BF16 (CPU) or AVX-512 state (OS). */
double fr_probe_bf16_peak(double seconds);

/* GFLOP/s of the calling core with AMX tdpbf16ps: a 2x2 tile loop (2 A and 2 B tiles
 * loaded from L1 at every step, 4 accumulator tiles of 16 x 16 floats, K = 32 per
 * step: 65536 flops per step), as MLAS's AMX kernel.  Calls fr_amx_request() first.
 * 0.0 without AMX-TILE and AMX-BF16 (CPU), tile state (OS), permission (Linux), or
 * when the compiler could not build it. */
double fr_probe_amx_peak(double seconds);

/* GB/s the calling core reads from a buffer of `bytes` (rounded down to a multiple
 * of 512; 0.0 below 512 bytes or when it cannot be allocated): the best of several
 * passes summing it with the widest vector loads the machine runs (AVX-512, AVX2,
 * SSE2; plain C off x86-64), 8 accumulators.  The buffer is allocated, written once and freed
 * inside. */
double fr_probe_bandwidth(size_t bytes, double seconds);

/* The calling core's clock in GHz while it runs integer code: a chain of dependent
 * register adds, one cycle each on every x86-64 core.  0.0 when not x86-64. */
double fr_probe_clock_ghz(double seconds);

#ifdef __cplusplus
}
#endif

#endif /* FR_PROBE_H */
