/*
 * check.h -- the harness the C tests share: a pass/fail count, check(), and
 * the float tolerance of spec/helper.lua. A sum of n float32 terms computed
 * in two orders differs by about sqrt(n) * FLT_EPSILON times the sum of the
 * terms' sizes, so a value is compared against RTOL(n) * mag, mag being the
 * same computation on the absolute values of the inputs; RTOL(n) = 4
 * FLT_EPSILON sqrt(n) (two codes rounding independently, a factor 2 to
 * spare). Each test's main ends with check_report(name).
 */
#ifndef GLOW_TEST_CHECK_H
#define GLOW_TEST_CHECK_H
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>

static int passed, failed;

static inline void check(int ok, const char *what) {
  if (ok)
    passed++;
  else {
    failed++;
    printf("FAIL: %s\n", what);
  }
}

#define RTOL(n) (4.0 * FLT_EPSILON * sqrt((double)(n)))

/* the largest |a - ref| / (rtol * mag) over n elements: <= 1 passes; a
 * zero mag allows no difference */
static inline double worst_ratio(const float *a, const float *ref, const float *mag, size_t n,
                                 double rtol) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - ref[i]), allowed = rtol * mag[i];
    double r = d == 0 ? 0 : allowed > 0 ? d / allowed : INFINITY;
    if (r > m || isnan(r)) m = r;
  }
  return m;
}

/* print "[name: ]N passed, N failed"; the exit code */
static inline int check_report(const char *name) {
  printf("%s%s%d passed, %d failed\n", name ? name : "", name ? ": " : "", passed, failed);
  return failed ? 1 : 0;
}
#endif
