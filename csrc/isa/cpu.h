/*
 * cpu.h -- does this CPU have a feature, by the name glow_isa_required
 * (csrc/isa.c) gives it. Included by the loader (lcore.c) and by the probe
 * CMake runs (probe.c); both are compiled for the x86-64 baseline.
 *
 * Most names go to __builtin_cpu_supports (GCC and clang; for the AVX
 * families it also checks that the operating system saves the registers).
 * It takes only string literals, hence one line per name. The names that
 * clang 14 does not know are read from CPUID here, with the same check that
 * the OS saves the registers the feature uses (XCR0: the AVX or AVX-512
 * state).
 */
#ifndef GLOW_ISA_CPU_H
#define GLOW_ISA_CPU_H

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

#define GLOW_CPU_BUILTIN(X)                                                                      \
  X("sse3") X("ssse3") X("sse4.1") X("sse4.2") X("sse4a") X("popcnt") X("aes") X("pclmul")      \
  X("avx") X("avx2") X("fma") X("bmi") X("bmi2") X("avx512f") X("avx512bw") X("avx512cd")        \
  X("avx512dq") X("avx512vl") X("avx512ifma") X("avx512vbmi") X("avx512vbmi2") X("avx512vnni")   \
  X("avx512bitalg") X("avx512vpopcntdq") X("avx512bf16") X("avx512vp2intersect") X("gfni")      \
  X("vpclmulqdq") X("fma4") X("xop") X("avx512er") X("avx512pf")

/* name, CPUID leaf, subleaf, register (0 eax, 1 ebx, 2 ecx, 3 edx), bit, and the XCR0
 * bits the OS must set: 0 none, AVX (SSE and AVX state), AVX512 (also opmask and zmm) */
#define GLOW_XCR0_AVX 0x6u
#define GLOW_XCR0_AVX512 0xE6u
#define GLOW_CPU_CPUID(X)                                                                        \
  X("f16c", 1u, 0u, 2, 29, GLOW_XCR0_AVX) X("movbe", 1u, 0u, 2, 22, 0)                           \
  X("cx16", 1u, 0u, 2, 13, 0) X("lzcnt", 0x80000001u, 0u, 2, 5, 0)                               \
  X("lahf_lm", 0x80000001u, 0u, 2, 0, 0) X("tbm", 0x80000001u, 0u, 2, 21, 0)                     \
  X("adx", 7u, 0u, 1, 19, 0) X("sha", 7u, 0u, 1, 29, 0) X("vaes", 7u, 0u, 2, 9, GLOW_XCR0_AVX)   \
  X("avxvnni", 7u, 1u, 0, 4, GLOW_XCR0_AVX) X("avx512fp16", 7u, 0u, 3, 23, GLOW_XCR0_AVX512)

static inline int glow_cpuid_bit(unsigned leaf, unsigned sub, int reg, int bit) {
  unsigned r[4];
  if (!__get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3])) return 0;
  return (int)((r[reg] >> bit) & 1u);
}

/* the OS saves the registers of the mask's XCR0 bits (OSXSAVE, then XCR0) */
static inline int glow_os_saves(unsigned mask) {
  if (mask == 0) return 1;
  if (!glow_cpuid_bit(1u, 0u, 2, 27)) return 0;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  (void)hi;
  return (lo & mask) == mask;
}

/* 1 when the CPU has the feature, 0 when not, -1 for a name not known here */
static inline int glow_cpu_has(const char *name) {
  __builtin_cpu_init();
#define GLOW_BUILTIN(f)                                                                          \
  if (strcmp(name, f) == 0) return __builtin_cpu_supports(f) ? 1 : 0;
  GLOW_CPU_BUILTIN(GLOW_BUILTIN)
#undef GLOW_BUILTIN
#define GLOW_CPUID(f, leaf, sub, reg, bit, xcr0)                                                 \
  if (strcmp(name, f) == 0) return glow_cpuid_bit(leaf, sub, reg, bit) && glow_os_saves(xcr0);
  GLOW_CPU_CPUID(GLOW_CPUID)
#undef GLOW_CPUID
  return -1;
}

#else
static inline int glow_cpu_has(const char *name) {
  (void)name;
  return -1;
}
#endif

/* 1 when the CPU has every feature of the space-separated list */
static inline int glow_cpu_has_all(const char *list) {
  char word[64];
  while (*list) {
    while (*list == ' ') list++;
    size_t k = strcspn(list, " ");
    if (k == 0) break;
    if (k >= sizeof word) return 0;
    memcpy(word, list, k);
    word[k] = 0;
    list += k;
    if (glow_cpu_has(word) != 1) return 0;
  }
  return 1;
}

#endif
