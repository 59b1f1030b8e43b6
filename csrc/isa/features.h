/*
 * features.h -- the CPU features glow_isa_required (csrc/isa.c) may name,
 * each with the run-time check for it. __builtin_cpu_supports takes only
 * string literals, hence one line per feature. The checks of the AVX
 * families include the operating system's support (XCR0), as libgcc's do.
 */
#ifndef GLOW_ISA_FEATURES_H
#define GLOW_ISA_FEATURES_H

#define GLOW_CPU_FEATURES(X)                                                                     \
  X("sse3") X("ssse3") X("sse4.1") X("sse4.2") X("sse4a") X("popcnt") X("aes") X("pclmul")      \
  X("avx") X("avx2") X("fma") X("f16c") X("bmi") X("bmi2") X("lzcnt") X("movbe") X("adx")        \
  X("sha") X("avxvnni") X("avx512f") X("avx512bw") X("avx512cd") X("avx512dq") X("avx512vl")     \
  X("avx512ifma") X("avx512vbmi") X("avx512vbmi2") X("avx512vnni") X("avx512bitalg")             \
  X("avx512vpopcntdq") X("avx512bf16") X("avx512vp2intersect") X("gfni") X("vaes")              \
  X("vpclmulqdq")

#endif
