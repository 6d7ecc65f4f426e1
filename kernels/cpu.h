/* What this CPU can run, found by charrnn itself so that GCC, Clang and MSVC builds all
 * choose the same way (no __builtin_cpu_supports, no ifunc: musl, macOS and Windows have
 * neither). x86: cpuid for what the CPU has, xgetbv for what the OS saves on a context
 * switch -- an instruction set whose registers the OS does not save is not usable, and
 * cpuid alone does not say so. arm64: NEON (Advanced SIMD) is part of the base ISA.
 *
 * Tiers, each a superset of the one before on its architecture:
 *   scalar  plain C, any CPU and compiler (the readable statement of every kernel)
 *   avx2    AVX2 + FMA, with the OS saving YMM state                (x86-64-v3)
 *   avx512  AVX-512 F/DQ/BW/VL, with the OS saving ZMM and mask state (x86-64-v4)
 *   neon    arm64 Advanced SIMD
 *
 * Not a tier but a capability of one, for mixed-precision products (sgemm_bf16.h):
 * bf16 dot products, x86 AVX512_BF16 (cpuid leaf 7 subleaf 1, EAX bit 5, on top of the
 * avx512 tier's features and ZMM state) or Arm FEAT_BF16 (Linux: getauxval(AT_HWCAP2) &
 * HWCAP2_BF16; macOS: sysctl hw.optional.arm.FEAT_BF16; FreeBSD: elf_aux_info). Windows
 * on Arm is not asked (no documented flag to ask): there it reads as absent.
 */
#ifndef CHARRNN_CPU_H
#define CHARRNN_CPU_H

#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#define CR_X86 1
#else
#define CR_X86 0
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define CR_ARM64 1
#else
#define CR_ARM64 0
#endif

/* Each kernel module uses only some of the static functions of these headers (the ones
 * importing their kernels from charrnn._isa none of this file's). */
#if defined(__GNUC__)
#define CR_UNUSED __attribute__((unused))
#else
#define CR_UNUSED
#endif

enum { CR_ISA_SCALAR = 0, CR_ISA_AVX2 = 1, CR_ISA_AVX512 = 2, CR_ISA_NEON = 3, CR_ISA_COUNT = 4 };

/* Feature bits reported by cr_cpu_features(). */
enum {
    CR_F_SSE2 = 1 << 0, CR_F_AVX = 1 << 1, CR_F_FMA = 1 << 2, CR_F_AVX2 = 1 << 3,
    CR_F_AVX512F = 1 << 4, CR_F_AVX512DQ = 1 << 5, CR_F_AVX512BW = 1 << 6,
    CR_F_AVX512VL = 1 << 7, CR_F_OS_YMM = 1 << 8, CR_F_OS_ZMM = 1 << 9, CR_F_NEON = 1 << 10,
    CR_F_AVX512BF16 = 1 << 11, CR_F_ARM_BF16 = 1 << 12
};

#if CR_X86
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static void cr_cpuid(int leaf, int sub, unsigned r[4])
{
    int t[4];
    __cpuidex(t, leaf, sub);
    r[0] = (unsigned)t[0]; r[1] = (unsigned)t[1]; r[2] = (unsigned)t[2]; r[3] = (unsigned)t[3];
}
static unsigned long long cr_xcr0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void cr_cpuid(int leaf, int sub, unsigned r[4])
{
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
/* xgetbv by its opcode: the _xgetbv intrinsic would need the build to enable XSAVE. */
static unsigned long long cr_xcr0(void)
{
    unsigned lo, hi;
    __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
/* macOS enables AVX-512 state per thread on first use, so XCR0 lacks the ZMM bits until
 * then; the kernel says whether it will through this sysctl (what NumPy also asks). */
static int cr_macos_avx512(void)
{
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname("hw.optional.avx512f", &v, &n, NULL, 0) == 0 && v == 1;
}
#else
static int cr_macos_avx512(void) { return 0; }
#endif

static unsigned cr_detect_features(void)
{
    unsigned r[4], f = 0;
    cr_cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    cr_cpuid(1, 0, r);
    if (r[3] & (1u << 26)) f |= CR_F_SSE2;
    if (r[2] & (1u << 28)) f |= CR_F_AVX;
    if (r[2] & (1u << 12)) f |= CR_F_FMA;
    int osxsave = (r[2] >> 27) & 1;
    if (max_leaf >= 7) {
        cr_cpuid(7, 0, r);
        unsigned max_sub = r[0];
        if (r[1] & (1u << 5)) f |= CR_F_AVX2;
        if (r[1] & (1u << 16)) f |= CR_F_AVX512F;
        if (r[1] & (1u << 17)) f |= CR_F_AVX512DQ;
        if (r[1] & (1u << 30)) f |= CR_F_AVX512BW;
        if (r[1] & (1u << 31)) f |= CR_F_AVX512VL;
        if (max_sub >= 1) {
            cr_cpuid(7, 1, r);
            if (r[0] & (1u << 5)) f |= CR_F_AVX512BF16;
        }
    }
    if (osxsave) {
        unsigned long long xcr0 = cr_xcr0();
        if ((xcr0 & 0x6) == 0x6) f |= CR_F_OS_YMM;            /* XMM and YMM state */
        if ((xcr0 & 0xe6) == 0xe6) f |= CR_F_OS_ZMM;          /* + opmask, ZMM0-15 hi, ZMM16-31 */
        else if ((f & CR_F_OS_YMM) && (f & CR_F_AVX512F) && cr_macos_avx512()) f |= CR_F_OS_ZMM;
    }
    return f;
}
#elif CR_ARM64
#if defined(__linux__) || defined(__ANDROID__)
#include <sys/auxv.h>
#ifndef AT_HWCAP2
#define AT_HWCAP2 26
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1 << 14)
#endif
static int cr_arm_bf16(void) { return (getauxval(AT_HWCAP2) & HWCAP2_BF16) != 0; }
#elif defined(__APPLE__)
#include <sys/sysctl.h>
static int cr_arm_bf16(void)
{
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname("hw.optional.arm.FEAT_BF16", &v, &n, NULL, 0) == 0 && v == 1;
}
#elif defined(__FreeBSD__)
#include <sys/auxv.h>
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1 << 14)
#endif
static int cr_arm_bf16(void)
{
    unsigned long hwcap2 = 0;
    return elf_aux_info(AT_HWCAP2, &hwcap2, sizeof hwcap2) == 0 && (hwcap2 & HWCAP2_BF16);
}
#else
static int cr_arm_bf16(void) { return 0; }
#endif
static unsigned cr_detect_features(void) { return CR_F_NEON | (cr_arm_bf16() ? CR_F_ARM_BF16 : 0); }
#else
static unsigned cr_detect_features(void) { return 0; }
#endif

/* Cached; a race between threads only computes it twice. */
CR_UNUSED static unsigned cr_cpu_features(void)
{
    static unsigned known = 0, have = 0;
    if (!known) {
        have = cr_detect_features();
        known = 1;
    }
    return have;
}

/* 1 if this CPU (and its OS) can run tier isa; whether it was built is cr_isa_built's. */
CR_UNUSED static int cr_cpu_has(int isa)
{
    unsigned f = cr_cpu_features();
    const unsigned avx2 = CR_F_AVX | CR_F_AVX2 | CR_F_FMA | CR_F_OS_YMM;
    const unsigned avx512 = avx2 | CR_F_AVX512F | CR_F_AVX512DQ | CR_F_AVX512BW | CR_F_AVX512VL
                            | CR_F_OS_ZMM;
    switch (isa) {
    case CR_ISA_SCALAR: return 1;
    case CR_ISA_AVX2: return CR_X86 && (f & avx2) == avx2;
    case CR_ISA_AVX512: return CR_X86 && (f & avx512) == avx512;
    case CR_ISA_NEON: return CR_ARM64 && (f & CR_F_NEON) != 0;
    default: return 0;
    }
}

/* 1 on an Intel x86 CPU (CPUID leaf 0: "GenuineIntel"): its VDPBF16PS issues on one port
 * where float32 FMAs issue on two, so it is no faster than float32 there. */
CR_UNUSED static int cr_cpu_intel(void)
{
#if CR_X86
    unsigned r[4];
    cr_cpuid(0, 0, r);
    return r[1] == 0x756e6547u && r[3] == 0x49656e69u && r[2] == 0x6c65746eu;
#else
    return 0;
#endif
}

/* 1 if this CPU (and its OS) has bf16 dot products: AVX512_BF16 with the avx512 tier's
 * features, or Arm FEAT_BF16. Whether a kernel uses them is the tier table's business
 * (dispatch.h: bf16_native). */
CR_UNUSED static int cr_cpu_has_bf16(void)
{
    unsigned f = cr_cpu_features();
    if (CR_X86)
        return cr_cpu_has(CR_ISA_AVX512) && (f & CR_F_AVX512BF16) != 0;
    return CR_ARM64 && (f & CR_F_ARM_BF16) != 0;
}

#endif
