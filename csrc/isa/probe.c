/*
 * probe.c -- run once by CMake when it configures: prints the x86-64 levels
 * the build machine runs (the features of each level, as -march=x86-64-vN
 * enables them), so that the C tests of the other levels are not
 * registered with ctest.
 */
#include <stdio.h>

#include "cpu.h"

int main(void) {
  const char *v2 = "sse3 ssse3 sse4.1 sse4.2 popcnt cx16 lahf_lm";
  const char *v3 = "avx avx2 bmi bmi2 f16c fma lzcnt movbe";
  const char *v4 = "avx512f avx512bw avx512cd avx512dq avx512vl";
  printf("x86-64");
  if (glow_cpu_has_all(v2)) {
    printf(";x86-64-v2");
    if (glow_cpu_has_all(v3)) {
      printf(";x86-64-v3");
      if (glow_cpu_has_all(v4)) printf(";x86-64-v4");
    }
  }
  return 0;
}
