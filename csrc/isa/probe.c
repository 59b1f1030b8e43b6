/*
 * probe.c -- run once by CMake when it configures: prints the ISA levels of
 * this build's list that the build machine runs, so that the C tests of the
 * other levels are not registered with ctest.
 */
#include <stdio.h>

int main(void) {
  __builtin_cpu_init();
  printf("x86-64");
  if (__builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt"))
    printf(";x86-64-v2");
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
      __builtin_cpu_supports("f16c") && __builtin_cpu_supports("movbe") &&
      __builtin_cpu_supports("lzcnt"))
    printf(";x86-64-v3");
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    printf(";x86-64-v4");
  return 0;
}
