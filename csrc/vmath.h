/*
 * vmath.h -- float elementary functions that vectorize: exp, log, log1p,
 * expm1, tanh, sigmoid, log_sigmoid, softplus, elu, pow, floor, ceil, rint
 * (half to even) and sign, as static inline functions for the loops of
 * ops.c (and the other kernels that call exp in a loop).
 *
 * libm's expf, log1pf, tanhf, ... are calls GCC cannot vectorize. These are
 * branch-free: a range reduction done with bit manipulation (through memcpy,
 * which the compiler turns into a register move), a polynomial, and the
 * special cases (±inf, NaN, ±0, denormals, overflow, underflow) chosen at
 * the end by selects, so that a loop over them compiles, at -O3, to vector
 * code on each ISA copy of the core (SSE2, AVX2 + FMA, AVX-512). They follow
 * C's libm in every special case (signed zeros included). pow works in
 * double (its error grows with |a log x| in float).
 *
 * The error bounds beside each function are asserted by csrc/test/
 * test_vmath.c against the double-precision libm result over every 97th
 * float bit pattern plus the special values, on each ISA copy; the
 * "measured" figures are the largest errors of a denser sweep (every 13th
 * pattern; pow every 208th) on the AMD EPYC these were written on (the
 * copies with FMA round a little differently from SSE2). An ulp is the
 * spacing of floats at the exact result (2^-149 among the denormals). They
 * are listed in docs/PROTOTYPING.md.
 */
#ifndef GLOW_VMATH_H
#define GLOW_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t vm_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static inline float vm_float(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

static inline uint64_t vm_bits_d(double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static inline double vm_double(uint64_t u) {
  double x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* 2^k for an integer k in [-126, 127] */
static inline float vm_pow2i(int32_t k) { return vm_float((uint32_t)(k + 127) << 23); }

/* the nearest integer to x (ties to even) for |x| < 2^22, as a float: adding
 * 1.5 * 2^23 pushes the fraction bits out */
#define VM_ROUNDER 12582912.0f

/* ln 2 in two parts: n * VM_LN2_HI is exact for |n| < 2^15 */
#define VM_LN2_HI 0.693359375f
#define VM_LN2_LO -2.12194440e-4f
#define VM_LOG2E 1.44269504088896341f

/* ------------------------------------------------------------------ exp */
/* e^x: n = round(x / ln 2), r = x - n ln 2 in [-0.35, 0.35], e^r by the
 * Cephes polynomial, times 2^n as two factors 2^(n/2) 2^(n - n/2) so that
 * results that overflow or fall among the denormals round once, as libm's.
 * Error: at most 1.5 ulp (measured 1.004 on the FMA copies, 0.976 on SSE2). */
static inline float glow_vexpf(float x) {
  /* n stays in [-150, 128]: below -104 the result rounds to 0, above 89 it
   * overflows (NaN takes -104 here and is put back at the end) */
  float xc = x > -104.0f ? x : -104.0f;
  xc = xc < 89.0f ? xc : 89.0f;
  float n = (xc * VM_LOG2E + VM_ROUNDER) - VM_ROUNDER;
  int32_t k = (int32_t)n;
  float r = xc - n * VM_LN2_HI;
  r = r - n * VM_LN2_LO;
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  int32_t k1 = k / 2;
  float y = p * vm_pow2i(k1) * vm_pow2i(k - k1);
  return x != x ? x : y;
}

/* ------------------------------------------------------------------ log */
/* log(m) + e log 2 for x = m 2^e, m in [sqrt(1/2), sqrt(2)): the Cephes
 * polynomial in f = m - 1 (exact). x must be positive and finite (a
 * denormal is scaled up first); the callers select the special cases. */
static inline float vm_log_pos(float x) {
  /* (the selects pick constants and every product is computed either way:
   * the compiler then turns them into blends, not branches) */
  int tiny = x < 0x1p-126f;
  float xs = x * (tiny ? 0x1p23f : 1.0f);
  uint32_t u = vm_bits(xs);
  int32_t e = (int32_t)(u >> 23) - (tiny ? 150 : 127);
  float m = vm_float((u & 0x7fffffu) | 0x3f800000u); /* [1, 2) */
  int big = m > 1.41421356f;
  m = m * (big ? 0.5f : 1.0f);
  e += big;
  float f = m - 1.0f, ef = (float)e;
  float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float y = p * f * z;
  y = y + VM_LN2_LO * ef;
  y = y - 0.5f * z;
  return (f + y) + VM_LN2_HI * ef;
}

/* log(x): -inf at ±0, NaN below 0, +inf at +inf. Error: at most 1 ulp
 * (measured 0.804 FMA, 0.817 SSE2). */
static inline float glow_vlogf(float x) {
  float y = vm_log_pos(x);
  y = x == 0.0f ? -INFINITY : y;
  y = x < 0.0f ? NAN : y;
  return (x != x || x == INFINITY) ? x : y;
}

/* ------------------------------------------------------------------ log1p */
/* log(1 + x) for x > -1 finite: u = 1 + x rounds; log(u) + (x - (u - 1)) / u
 * puts back what the rounding lost (Goldberg, 1991). */
static inline float vm_log1p_pos(float x) {
  float u = 1.0f + x;
  float c = (x - (u - 1.0f)) / u;
  return vm_log_pos(u) + c;
}

/* log1p(x): ±0 kept, -inf at -1, NaN below -1. Error: at most 2 ulp
 * (measured 1.437), relative near 0. */
static inline float glow_vlog1pf(float x) {
  float y = vm_log1p_pos(x);
  y = x == -1.0f ? -INFINITY : y;
  y = x < -1.0f ? NAN : y;
  return (x != x || x == INFINITY || x == 0.0f) ? x : y;
}

/* ------------------------------------------------------------------ expm1 */
/* e^x - 1 = 2^n (p + 1 - 2^-n), p = e^r - 1 by its Taylor series to r^7
 * (relative error below 2^-26 on |r| <= 0.35): no cancellation near 0, and
 * 1 - 2^-n is exact for n <= 24 (beyond, it rounds to 1 and the -1 is
 * below half an ulp). Error: at most 2 ulp (measured 1.617 FMA, 1.747 SSE2),
 * relative near 0. */
static inline float glow_vexpm1f(float x) {
  /* below -18 the result rounds to -1; above 89 it overflows */
  float xc = x > -18.0f ? x : -18.0f;
  xc = xc < 89.0f ? xc : 89.0f;
  float n = (xc * VM_LOG2E + VM_ROUNDER) - VM_ROUNDER;
  int32_t k = (int32_t)n;
  float r = xc - n * VM_LN2_HI;
  r = r - n * VM_LN2_LO;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * (r * r) + r;
  int32_t kc = k < 25 ? k : 25;
  float c = 1.0f - vm_pow2i(-kc);
  int32_t k1 = k / 2;
  float y = (p + c) * vm_pow2i(k1) * vm_pow2i(k - k1);
  return (x != x || x == 0.0f) ? x : y;
}

/* ------------------------------------------------------------------ tanh */
/* tanh|x| = -t / (2 + t) with t = expm1(-2|x|) in (-1, 0]: never overflows,
 * and keeps its relative accuracy near 0; the sign put back. Error: at most
 * 3 ulp (measured 2.494). */
static inline float glow_vtanhf(float x) {
  /* (expm1 takes its argument below -18 as -18: tanh is 1 in float from 9.1) */
  float t = glow_vexpm1f(-2.0f * fabsf(x));
  float y = copysignf(-t / (t + 2.0f), x);
  return x != x ? x : y;
}

/* ------------------------------------------------------------------ sigmoid family */
/* 1 / (1 + e^-x) from e = e^-|x| (never overflows): 1 / (1 + e) for x >= 0,
 * e / (1 + e) below, so the tail keeps its relative precision down to the
 * denormals. Error: at most 2.5 ulp (measured 2.339). */
static inline float glow_vsigmoidf(float x) {
  float e = glow_vexpf(-fabsf(x));
  float num = x >= 0.0f ? 1.0f : e;
  return num / (1.0f + e);
}

/* log sigmoid(x) = min(x, 0) - log1p(e^-|x|). Error: at most 2.5 ulp
 * (measured 1.936). */
static inline float glow_vlog_sigmoidf(float x) {
  float l = vm_log1p_pos(glow_vexpf(-fabsf(x)));
  return (x < 0.0f ? x : 0.0f) - l;
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|). Error: at most
 * 2.5 ulp (measured 1.917). */
static inline float glow_vsoftplusf(float x) {
  float l = vm_log1p_pos(glow_vexpf(-fabsf(x)));
  return (x > 0.0f ? x : 0.0f) + l;
}

/* elu(x) = x for x > 0, alpha (e^x - 1) otherwise. Error: at most 1.5 ulp
 * for alpha = 1 (measured 0.881), 2 for alpha = 0.7 (measured 1.624; the
 * product rounds once more). */
static inline float glow_veluf(float x, float alpha) {
  float m = alpha * glow_vexpm1f(x);
  return x > 0.0f ? x : m;
}

/* ------------------------------------------------------------------ pow, in double */
/* log x in double for a positive finite float x (a denormal scaled up):
 * x = m 2^e, m in [sqrt(1/2), sqrt(2)), s = (m - 1) / (m + 1), log m =
 * 2 atanh s by its series to s^13 (|s| <= 0.172: relative error below
 * 2^-39) */
static inline double vm_log_d(float x) {
  int tiny = x < 0x1p-126f;
  float xs = x * (tiny ? 0x1p23f : 1.0f);
  uint32_t u = vm_bits(xs);
  int32_t e = (int32_t)(u >> 23) - (tiny ? 150 : 127);
  float mf = vm_float((u & 0x7fffffu) | 0x3f800000u);
  int big = mf > 1.41421356f;
  double m = (double)(mf * (big ? 0.5f : 1.0f));
  e += big;
  double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  double p = 2.0 / 13;
  p = p * s2 + 2.0 / 11;
  p = p * s2 + 2.0 / 9;
  p = p * s2 + 2.0 / 7;
  p = p * s2 + 2.0 / 5;
  p = p * s2 + 2.0 / 3;
  p = p * s2 + 2.0;
  return (double)e * 0.69314718055994530942 + p * s;
}

/* e^y in double for y in [-160, 130]: n = round(y / ln 2) from the bits of
 * y / ln 2 + 1.5 * 2^52, r = y - n ln 2 (ln 2 in two parts, fdlibm's), e^r
 * by its Taylor series to r^9 (relative error below 2^-37), times 2^n
 * built in the exponent bits */
static inline double vm_exp_d(double y) {
  const double rounder = 6755399441055744.0; /* 1.5 * 2^52 */
  double t = y * 1.44269504088896338700 + rounder;
  double n = t - rounder;
  int64_t k = (int64_t)(vm_bits_d(t) - vm_bits_d(rounder));
  double r = y - n * 6.93147180369123816490e-01;
  r = r - n * 1.90821492927058770002e-10;
  double p = 1.0 / 362880;
  p = p * r + 1.0 / 40320;
  p = p * r + 1.0 / 5040;
  p = p * r + 1.0 / 720;
  p = p * r + 1.0 / 120;
  p = p * r + 1.0 / 24;
  p = p * r + 1.0 / 6;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return p * vm_double((uint64_t)(k + 1023) << 52);
}

/* |x|^a = e^(a log|x|) in double, rounded once to float (so overflow and
 * denormal results round as libm's): a log|x| is clamped to [-160, 130],
 * beyond which the float result is 0 or inf anyway. */
static inline float vm_pow_abs(float x, double a) {
  float ax = fabsf(x);
  double y = a * vm_log_d(ax);
  y = y > -160.0 ? y : -160.0;
  y = y < 130.0 ? y : 130.0;
  float r = (float)vm_exp_d(y);
  /* |x| = 0 or inf: log is not defined there; the limit is 0 or inf by the
   * sign of a (y = ±inf before the clamp) */
  float lim = (ax == 0.0f) == (a > 0) ? 0.0f : INFINITY;
  return (ax == 0.0f || ax == INFINITY) ? lim : r;
}

/* The parameters of pow(x, a) for one exponent a, worked out once per loop. */
typedef struct {
  double a;
  int integer, odd; /* a is an integer; an odd one */
} glow_vpow_t;

static inline glow_vpow_t glow_vpow_prepare(float a) {
  glow_vpow_t p;
  p.a = a;
  p.integer = isfinite(a) && a == floorf(a);
  p.odd = p.integer && fmodf(fabsf(a), 2.0f) == 1.0f;
  return p;
}

/* pow(x, a) for a finite a not 0 (the caller handles those): C's rules
 * for x < 0 (NaN for a finite x and a non-integer a; the sign kept for an
 * odd a), ±0 and ±inf. Error: at most 1 ulp (measured 0.500 over 16
 * exponents from -100.25 to 1e10: one rounding of a double result). */
static inline float glow_vpowf(float x, glow_vpow_t p) {
  float r = vm_pow_abs(x, p.a);
  r = p.odd ? copysignf(r, x) : r;
  int nan = x < 0.0f && x != -INFINITY && !p.integer;
  r = nan ? NAN : r;
  return x != x ? x : r;
}

/* ------------------------------------------------------------------ rounding */
/* For |x| < 2^23 adding and taking away 2^23 rounds to an integer (ties to
 * even, the default rounding); larger floats are integers already. The
 * sign is put back so that -0.3 gives -0, as rintf. Exact. */
static inline float glow_vrintf(float x) {
  float a = fabsf(x);
  float r = copysignf((a + 8388608.0f) - 8388608.0f, x);
  return a < 8388608.0f ? r : x;
}

/* floor and ceil from rint, one step back where it went the wrong way; the
 * sign of x put back (floor(-0) = -0, ceil(-0.5) = -0). Exact. */
static inline float glow_vfloorf(float x) {
  float r = glow_vrintf(x);
  r = r > x ? r - 1.0f : r;
  return copysignf(r, x);
}

static inline float glow_vceilf(float x) {
  float r = glow_vrintf(x);
  r = r < x ? r + 1.0f : r;
  return copysignf(r, x);
}

/* sign: -1, 1, or x itself for ±0 and NaN */
static inline float glow_vsignf(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }

#endif
