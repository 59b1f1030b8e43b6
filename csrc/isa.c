/*
 * isa.c -- which instruction-set level this copy of the core was compiled
 * for, and the CPU features its code needs.
 *
 * The default build compiles the core once per x86-64 level (CMakeLists.txt:
 * x86-64, x86-64-v3, x86-64-v4) and glow/core.so loads the best copy the CPU
 * runs. glow_isa_required lists, from the compiler's own macros, every
 * feature the compiler was allowed to use here, by the names of
 * csrc/isa/cpu.h; the loader checks each before it runs any of this copy's
 * code. It is data, not code, so reading it is safe on any CPU.
 *
 * The list covers the instruction sets GCC and clang generate code for on
 * their own (SSE to AVX-512, FMA, FMA4/XOP/TBM, BMI, LZCNT, MOVBE, F16C,
 * ...). Instructions reached only through intrinsics the core does not use
 * (AMX, say) are not listed.
 */
#include "glow.h"

#ifndef GLOW_ISA_NAME
#define GLOW_ISA_NAME "generic"
#endif

#if defined(__GNUC__)
#define GLOW_EXPORT __attribute__((visibility("default")))
#else
#define GLOW_EXPORT
#endif

GLOW_EXPORT const char glow_isa_required[] = "" /* the x86-64 baseline (SSE2) needs no check */
#ifdef __SSE3__
    " sse3"
#endif
#ifdef __SSSE3__
    " ssse3"
#endif
#ifdef __SSE4_1__
    " sse4.1"
#endif
#ifdef __SSE4_2__
    " sse4.2"
#endif
#ifdef __SSE4A__
    " sse4a"
#endif
#ifdef __POPCNT__
    " popcnt"
#endif
#ifdef __AES__
    " aes"
#endif
#ifdef __PCLMUL__
    " pclmul"
#endif
#ifdef __AVX__
    " avx"
#endif
#ifdef __AVX2__
    " avx2"
#endif
#ifdef __FMA__
    " fma"
#endif
#ifdef __F16C__
    " f16c"
#endif
#ifdef __BMI__
    " bmi"
#endif
#ifdef __BMI2__
    " bmi2"
#endif
#ifdef __LZCNT__
    " lzcnt"
#endif
#ifdef __MOVBE__
    " movbe"
#endif
#ifdef __ADX__
    " adx"
#endif
#ifdef __SHA__
    " sha"
#endif
#ifdef __AVXVNNI__
    " avxvnni"
#endif
#ifdef __AVX512F__
    " avx512f"
#endif
#ifdef __AVX512BW__
    " avx512bw"
#endif
#ifdef __AVX512CD__
    " avx512cd"
#endif
#ifdef __AVX512DQ__
    " avx512dq"
#endif
#ifdef __AVX512VL__
    " avx512vl"
#endif
#ifdef __AVX512IFMA__
    " avx512ifma"
#endif
#ifdef __AVX512VBMI__
    " avx512vbmi"
#endif
#ifdef __AVX512VBMI2__
    " avx512vbmi2"
#endif
#ifdef __AVX512VNNI__
    " avx512vnni"
#endif
#ifdef __AVX512BITALG__
    " avx512bitalg"
#endif
#ifdef __AVX512VPOPCNTDQ__
    " avx512vpopcntdq"
#endif
#ifdef __AVX512BF16__
    " avx512bf16"
#endif
#ifdef __AVX512VP2INTERSECT__
    " avx512vp2intersect"
#endif
#ifdef __GFNI__
    " gfni"
#endif
#ifdef __VAES__
    " vaes"
#endif
#ifdef __VPCLMULQDQ__
    " vpclmulqdq"
#endif
#ifdef __FMA4__
    " fma4"
#endif
#ifdef __XOP__
    " xop"
#endif
#ifdef __TBM__
    " tbm"
#endif
#ifdef __AVX512ER__
    " avx512er"
#endif
#ifdef __AVX512PF__
    " avx512pf"
#endif
#ifdef __AVX512FP16__
    " avx512fp16"
#endif
#ifdef __GCC_HAVE_SYNC_COMPARE_AND_SWAP_16
    " cx16"
#endif
#ifdef __LAHF_SAHF__
    " lahf_lm"
#endif
    ;

const char *glow_isa_name(void) { return GLOW_ISA_NAME; }
