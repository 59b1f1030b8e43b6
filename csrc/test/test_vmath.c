/*
 * test_vmath.c -- the vectorized elementwise functions of glow_unary
 * (csrc/vmath.h) against the double-precision libm result, over every 97th
 * float bit pattern (the whole range: both signs, denormals, infinities and
 * NaNs; for pow, every 1552nd for each of its exponents) plus a list of
 * special values and their neighbours. For each
 * function it prints the largest error in ulps (and the largest relative
 * error among normal results), and asserts the bound stated beside the
 * kernel in vmath.h; glow_unary_naive (libm in float, the old kernels) is
 * measured the same way on a sparser sweep, for comparison.
 *
 * The error of a result y against the exact value r (libm in double) is
 * |y - r| / ulp(r), ulp(r) being the spacing of floats at |r| (2^-149 among
 * the denormals): near a zero crossing (log1p, expm1, tanh, log near 1) it
 * is a relative error, so no absolute slack hides a loss of precision there.
 * A special result (NaN, ±inf, ±0 where libm gives an exact zero) must
 * match exactly, and so must every result of floor, ceil, round and sign
 * (bound 0); sqrt, x^2 and 1/x are correctly rounded (bound 0.5), the sign
 * of a zero included where libm defines it. A result that overflows counts
 * as 2^128, so an overflow one ulp early counts as about one ulp.
 *
 *   test_vmath [stride]   (default 97; 1 sweeps all 2^32 patterns)
 * Prints "N passed, N failed".
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "glow.h"

typedef double (*ref_fn)(double x, double a);

/* e^x for the references: the argument kept in [-700, 700], where double
 * neither overflows nor underflows (libm's slow path, half the bit patterns);
 * beyond, every float result is 0, 1 or inf either way */
static double ex(double x) { return exp(x < -700 ? -700 : (x > 700 ? 700 : x)); }

static double r_exp(double x, double a) { (void)a; return ex(x); }
static double r_log(double x, double a) { (void)a; return log(x); }
static double r_log1p(double x, double a) { (void)a; return log1p(x); }
static double r_expm1(double x, double a) { (void)a; return expm1(x < -700 ? -700 : (x > 700 ? 700 : x)); }
static double r_tanh(double x, double a) { (void)a; return tanh(x); }
static double r_sqrt(double x, double a) { (void)a; return sqrt(x); }
static double r_sigmoid(double x, double a) {
  (void)a;
  return x >= 0 ? 1 / (1 + ex(-x)) : ex(x) / (1 + ex(x));
}
static double r_log_sigmoid(double x, double a) {
  (void)a;
  return x < 0 ? x - log1p(ex(x)) : -log1p(ex(-x));
}
static double r_softplus(double x, double a) {
  (void)a;
  return x > 0 ? x + log1p(ex(-x)) : log1p(ex(x));
}
static double r_elu(double x, double a) { return x > 0 ? x : a * expm1(x < -700 ? -700 : x); }
static double r_pow(double x, double a) { return pow(x, a); }
static double r_floor(double x, double a) { (void)a; return floor(x); }
static double r_ceil(double x, double a) { (void)a; return ceil(x); }
static double r_rint(double x, double a) { (void)a; return rint(x); }
static double r_sign(double x, double a) { (void)a; return x > 0 ? 1.0 : (x < 0 ? -1.0 : x); }

/* The cases: op, its parameter a, the reference, the asserted bound in
 * ulps (0: exact), whether the sign of a zero result counts. The bounds
 * are those stated in vmath.h: above the largest error that a sweep of
 * every 13th pattern found on each of the three ISA copies (AMD EPYC; the
 * copies with FMA round a little differently from SSE2). */
typedef struct {
  const char *name;
  int op;
  float a;
  ref_fn ref;
  double bound;
  int zero_sign;
} fcase;

static const fcase CASES[] = {
    {"exp", GLOW_OP_EXP, 0, r_exp, 1.5, 1},
    {"log", GLOW_OP_LOG, 0, r_log, 1, 1},
    {"log1p", GLOW_OP_LOG1P, 0, r_log1p, 2, 1},
    {"expm1", GLOW_OP_EXPM1, 0, r_expm1, 2, 1},
    {"tanh", GLOW_OP_TANH, 0, r_tanh, 3, 1},
    {"sigmoid", GLOW_OP_SIGMOID, 0, r_sigmoid, 2.5, 0},
    {"log_sigmoid", GLOW_OP_LOG_SIGMOID, 0, r_log_sigmoid, 2.5, 0},
    {"softplus", GLOW_OP_SOFTPLUS, 0, r_softplus, 2.5, 0},
    {"elu", GLOW_OP_ELU, 1.0f, r_elu, 1.5, 1},
    {"elu alpha 0.7", GLOW_OP_ELU, 0.7f, r_elu, 2, 1},
    {"sqrt", GLOW_OP_SQRT, 0, r_sqrt, 0.5, 1},
    {"floor", GLOW_OP_FLOOR, 0, r_floor, 0, 1},
    {"ceil", GLOW_OP_CEIL, 0, r_ceil, 0, 1},
    {"round", GLOW_OP_ROUND, 0, r_rint, 0, 1},
    {"sign", GLOW_OP_SIGN, 0, r_sign, 0, 1},
    {"pow 0", GLOW_OP_POW, 0.0f, r_pow, 0, 1},
    {"pow 1", GLOW_OP_POW, 1.0f, r_pow, 0, 1},
    {"pow 2", GLOW_OP_POW, 2.0f, r_pow, 0.5, 1},
    {"pow -1", GLOW_OP_POW, -1.0f, r_pow, 0.5, 1},
    {"pow 0.5", GLOW_OP_POW, 0.5f, r_pow, 0.5, 1},
    {"pow 3", GLOW_OP_POW, 3.0f, r_pow, 1, 1},
    {"pow -2", GLOW_OP_POW, -2.0f, r_pow, 1, 1},
    {"pow 7", GLOW_OP_POW, 7.0f, r_pow, 1, 1},
    {"pow -7", GLOW_OP_POW, -7.0f, r_pow, 1, 1},
    {"pow 1.5", GLOW_OP_POW, 1.5f, r_pow, 1, 1},
    {"pow -0.5", GLOW_OP_POW, -0.5f, r_pow, 1, 1},
    {"pow 1/3", GLOW_OP_POW, 1.0f / 3.0f, r_pow, 1, 1},
    {"pow 0.1", GLOW_OP_POW, 0.1f, r_pow, 1, 1},
    {"pow 2.5", GLOW_OP_POW, 2.5f, r_pow, 1, 1},
    {"pow 10.5", GLOW_OP_POW, 10.5f, r_pow, 1, 1},
    {"pow 100", GLOW_OP_POW, 100.0f, r_pow, 1, 1},
    {"pow -100.25", GLOW_OP_POW, -100.25f, r_pow, 1, 1},
    {"pow 1e10", GLOW_OP_POW, 1e10f, r_pow, 1, 1},
    {"pow 1e-10", GLOW_OP_POW, 1e-10f, r_pow, 1, 1},
    {"pow inf", GLOW_OP_POW, INFINITY, r_pow, 0, 1},
    {"pow -inf", GLOW_OP_POW, -INFINITY, r_pow, 0, 1},
    {"pow nan", GLOW_OP_POW, NAN, r_pow, 0, 1},
};

/* the error of y against r in ulps of r; INFINITY for a wrong special */
static double ulp_error(float y, double r, int zero_sign) {
  if (isnan(r) || isnan(y)) return isnan(r) && isnan(y) ? 0 : INFINITY;
  if (isinf(r)) return (double)y == r ? 0 : INFINITY;
  if (r == 0) return y == 0 && (!zero_sign || !signbit(y) == !signbit(r)) ? 0 : INFINITY;
  float rf = (float)r; /* the correctly rounded result */
  if (isinf(rf) && (double)y == (double)rf) return 0;
  if (rf == 0 && y == 0) return zero_sign && !signbit(y) != !signbit(r) ? INFINITY : 0;
  double yd = isinf(y) ? copysign(0x1p128, y) : (double)y;
  if (yd == r) return 0;
  /* times 1 / ulp, a power of 2: 2^(23 - e) for |r| = m 2^e, m in [1, 2) */
  double ar = fabs(r), inv;
  if (ar < 0x1p-126) inv = 0x1p149;
  else if (ar >= 0x1p128) inv = 0x1p-104;
  else {
    uint64_t u;
    memcpy(&u, &ar, sizeof u);
    u = (2069 - (u >> 52)) << 52;
    memcpy(&inv, &u, sizeof u);
  }
  return fabs(yd - r) * inv;
}

typedef struct {
  double ulp, rel;  /* the largest errors */
  float at;         /* where the largest ulp error is */
  double ref;       /* the reference there */
  float got;        /* the result there */
} stats;

static void merge(stats *s, const stats *t) {
  if (t->ulp > s->ulp || (isnan(t->ulp) && !isnan(s->ulp)))
    s->ulp = t->ulp, s->at = t->at, s->ref = t->ref, s->got = t->got;
  if (t->rel > s->rel) s->rel = t->rel;
}

/* the references in double are the slow part: threads take slices */
static void measure(const fcase *c, const float *x, const float *y, size_t n, stats *s) {
#pragma omp parallel
  {
    stats t = *s;
#pragma omp for schedule(static)
    for (size_t i = 0; i < n; i++) {
      double r = c->ref((double)x[i], (double)c->a);
      double e = ulp_error(y[i], r, c->zero_sign);
      if (e > t.ulp || (isnan(e) && !isnan(t.ulp))) t.ulp = e, t.at = x[i], t.ref = r, t.got = y[i];
      if (isfinite(r) && fabs(r) >= 0x1p-126 && fabs(r) < FLT_MAX && isfinite(y[i])) {
        double rel = fabs((double)y[i] - r) / fabs(r);
        if (rel > t.rel) t.rel = rel;
      }
    }
#pragma omp critical
    merge(s, &t);
  }
}

/* special values and their neighbours (3 floats either side) */
static size_t specials(float *out) {
  static const float base[] = {
      0.0f, 1.0f, 2.0f, 0.5f, 1.5f, 2.5f, 3.5f, 0.25f, 0.75f, 3.0f, 7.0f, 10.0f, 100.0f, 1e-8f, 1e-30f,
      1e-38f, 1e-40f, 1e-45f, 0x1p-24f, 0x1p-12f, 0x1p-126f, 0x1p-149f, FLT_MAX, 1e30f, 1e38f,
      88.72283f, 88.7228394f, 88.72284f, 89.0f, 87.33654f, 103.972084f, 103.27893f, 104.0f, 150.0f,
      9.01f, 8.66f, 9.1f, 17.3286f, 18.0f, 16.6355f, 0.34657359f, 0.6931472f, 1.0397208f, 20.0f, 44.36f,
      15.942385f, 0.2876821f, 0.4054651f, 8388607.5f, 8388608.0f, 8388609.0f, 4194303.5f, 4194304.5f,
      16777216.0f, 0.49999997f, 0.50000006f, 1.41421356f, 0.70710678f, 2.7182817f, 1.0e-3f, 3.0e-4f};
  size_t k = 0;
  for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
    for (int s = -1; s <= 1; s += 2) {
      float v = (float)s * base[i];
      out[k++] = v;
      float up = v, down = v;
      for (int j = 0; j < 3; j++) {
        up = nextafterf(up, INFINITY);
        down = nextafterf(down, -INFINITY);
        out[k++] = up;
        out[k++] = down;
      }
    }
  out[k++] = INFINITY;
  out[k++] = -INFINITY;
  out[k++] = NAN;
  out[k++] = -NAN;
  return k;
}

#define BATCH ((size_t)1 << 20)

int main(int argc, char **argv) {
  uint64_t stride = argc > 1 ? strtoull(argv[1], NULL, 10) : 97;
  if (stride < 1) stride = 97;
  float *x = glow_alloc(BATCH), *y = glow_alloc(BATCH), *z = glow_alloc(BATCH);
  if (!x || !y || !z) {
    check(0, "out of memory");
    return check_report("test_vmath");
  }
  printf("every %llu-th float bit pattern and the special values; ulps of the exact result "
         "(relative error among normal results)\n",
         (unsigned long long)stride);
  printf("%-16s %12s %10s   %-44s %14s\n", "function", "vmath ulp", "rel", "worst at (x: got, exact)",
         "libm-float ulp");
  for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
    const fcase *c = &CASES[ci];
    stats fast = {0}, naive = {0};
    size_t n = specials(x);
    glow_unary(c->op, x, y, (int64_t)n, c->a, 0);
    measure(c, x, y, n, &fast);
    glow_unary_naive(c->op, x, z, (int64_t)n, c->a, 0);
    measure(c, x, z, n, &naive);
    /* the sweep: fast on every stride-th pattern (pow, whose double
     * reference is slow, every 16 stride-th for each of its many exponents),
     * libm-float on every 13th of those */
    uint64_t b = 0, step = c->op == GLOW_OP_POW ? 16 * stride : stride;
    while (b < ((uint64_t)1 << 32)) {
      n = 0;
      while (n < BATCH && b < ((uint64_t)1 << 32)) {
        uint32_t u = (uint32_t)b;
        memcpy(&x[n++], &u, sizeof u);
        b += step;
      }
      glow_unary(c->op, x, y, (int64_t)n, c->a, 0);
      measure(c, x, y, n, &fast);
      size_t m = 0;
      for (size_t i = 0; i < n; i += 13) x[m++] = x[i];
      glow_unary_naive(c->op, x, z, (int64_t)m, c->a, 0);
      measure(c, x, z, m, &naive);
    }
    char where[96];
    snprintf(where, sizeof where, "%.9g: %.9g, %.9g", (double)fast.at, (double)fast.got, fast.ref);
    printf("%-16s %12.3f %10.3g   %-44s %14.3f\n", c->name, fast.ulp, fast.rel, where, naive.ulp);
    char what[160];
    snprintf(what, sizeof what, "%s: %.3f ulp at x = %.9g (got %.9g, exact %.9g), bound %g", c->name, fast.ulp,
             (double)fast.at, (double)fast.got, fast.ref, c->bound);
    check(fast.ulp <= c->bound, what);
  }
  glow_free(x);
  glow_free(y);
  glow_free(z);
  return check_report("test_vmath");
}
