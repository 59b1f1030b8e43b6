/*
 * test_linalg.c -- the kernels of linalg.c against references: batched,
 * broadcast and reduced matmul against a naive triple loop; and the 2x
 * resampling backward passes against their forward ones by the adjoint
 * identity <A x, y> = <x, A^T y>. (The convolution is tested in
 * test_kernels.c.) Prints "N passed, N failed".
 *
 * Tolerances as in test_kernels.c: a sum of n float32 terms computed in two
 * orders differs by about sqrt(n) * FLT_EPSILON times the sum of the terms'
 * sizes, so each value is compared against RTOL(n) * mag, mag being the same
 * computation on the absolute values of the inputs.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "glow.h"


static float *randn(glow_rng *r, size_t n, float std) {
  float *p = glow_alloc(n);
  if (p) glow_randn(r, p, n, std);
  return p;
}

/* ------------------------------------------------------------------ matmul */
/* c[ci[i]] += op(a[ai[i]]) op(b[bi[i]]) in double; identity maps when NULL */
static void matmul_naive(const float *a, const int64_t *ai, int ta, const float *b,
                         const int64_t *bi, int tb, double *c, const int64_t *ci, int64_t nb,
                         int64_t nc, int m, int n, int k, int absval) {
  memset(c, 0, sizeof(double) * (size_t)nc * m * n);
  for (int64_t i = 0; i < nb; i++) {
    const float *ap = a + (size_t)(ai ? ai[i] : i) * m * k;
    const float *bp = b + (size_t)(bi ? bi[i] : i) * k * n;
    double *cp = c + (size_t)(ci ? ci[i] : i) * m * n;
    for (int r = 0; r < m; r++)
      for (int s = 0; s < n; s++)
        for (int q = 0; q < k; q++) {
          double u = ta ? ap[(size_t)q * m + r] : ap[(size_t)r * k + q];
          double v = tb ? bp[(size_t)s * k + q] : bp[(size_t)q * n + s];
          cp[(size_t)r * n + s] += absval ? fabs(u * v) : u * v;
        }
  }
}

static void matmul_case(int64_t nb, int64_t nc, int na, int nbm, int m, int n, int k, int ta,
                        int tb, int reduce) {
  glow_rng r;
  glow_rng_seed(&r, (uint64_t)(nb * 1000 + m * 100 + n * 10 + k + ta * 3 + tb * 5));
  int64_t *ai = malloc(sizeof(int64_t) * nb), *bi = malloc(sizeof(int64_t) * nb);
  int64_t *ci = reduce ? malloc(sizeof(int64_t) * nb) : NULL;
  for (int64_t i = 0; i < nb; i++) {
    ai[i] = i % na;
    bi[i] = (i * 7) % nbm;
    if (ci) ci[i] = (i * 3) % nc;
  }
  if (!reduce) nc = nb;
  size_t sc = (size_t)nc * m * n;
  float *a = randn(&r, (size_t)na * m * k, 1), *b = randn(&r, (size_t)nbm * k * n, 1);
  float *c = glow_alloc(sc), *cf = glow_alloc(sc), *cm = glow_alloc(sc);
  double *ref = malloc(sizeof(double) * sc), *mag = malloc(sizeof(double) * sc);
  int rc = glow_matmul(a, ai, ta, b, bi, tb, c, ci, nb, nc, m, n, k);
  matmul_naive(a, ai, ta, b, bi, tb, ref, ci, nb, nc, m, n, k, 0);
  matmul_naive(a, ai, ta, b, bi, tb, mag, ci, nb, nc, m, n, k, 1);
  for (size_t i = 0; i < sc; i++) cf[i] = (float)ref[i], cm[i] = (float)mag[i];
  int64_t per = reduce ? (nb + nc - 1) / nc : 1; /* products summed into one matrix, at most */
  double e = worst_ratio(c, cf, cm, sc, RTOL(k * per) + FLT_EPSILON);
  char what[160];
  snprintf(what, sizeof what, "matmul nb=%lld nc=%lld m=%d n=%d k=%d ta=%d tb=%d reduce=%d",
           (long long)nb, (long long)nc, m, n, k, ta, tb, reduce);
  if (rc != GLOW_OK || e > 1) printf("  %s: rc %d, %.3g x the allowed\n", what, rc, e);
  check(rc == GLOW_OK && e <= 1, what);
  free(ai), free(bi), free(ci), free(ref), free(mag);
  glow_free(a), glow_free(b), glow_free(c), glow_free(cf), glow_free(cm);
}

static void test_matmul(void) {
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      matmul_case(1, 1, 1, 1, 5, 7, 3, ta, tb, 0);
      matmul_case(6, 6, 6, 1, 4, 3, 5, ta, tb, 0);  /* b shared */
      matmul_case(6, 6, 3, 2, 2, 9, 4, ta, tb, 0);  /* both broadcast */
      matmul_case(12, 3, 4, 6, 3, 2, 5, ta, tb, 1); /* reduced into 3 matrices */
      matmul_case(5, 7, 5, 5, 3, 3, 3, ta, tb, 1);  /* two matrices get no product: zero */
    }
  matmul_case(3, 3, 3, 3, 300, 200, 250, 0, 1, 0); /* large: one after another */
}

/* ------------------------------------------------------------------ resampling */
static double dotd(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

static double dotmag(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m += fabs((double)a[i] * b[i]);
  return m;
}

/* <up(x), y> = <x, up^T(y)>, <pool(X), Y> = <X, pool^T(Y)> */
static void resample_case(int n, int h, int w, int c) {
  glow_rng r;
  glow_rng_seed(&r, (uint64_t)(n * 100 + h * 10 + w + c));
  size_t ns = (size_t)n * h * w * c, nl = 4 * ns;
  float *x = randn(&r, ns, 1), *y = randn(&r, nl, 1), *ux = glow_alloc(nl), *uty = glow_alloc(ns);
  float *big = randn(&r, nl, 1), *small = randn(&r, ns, 1), *pb = glow_alloc(ns),
        *pts = glow_alloc(nl);
  const char *names[2] = {"nearest", "bilinear"};
  for (int mode = 0; mode < 2; mode++) {
    glow_upsample2_forward(x, ux, n, h, w, c, mode);
    glow_upsample2_backward(y, uty, n, h, w, c, mode);
    double l = dotd(ux, y, nl), rr = dotd(x, uty, ns);
    /* every term of either side sums at most 16 products */
    double tol = 16 * RTOL(nl) * (dotmag(ux, y, nl) + dotmag(x, uty, ns));
    char what[120];
    snprintf(what, sizeof what, "upsample2 %s %dx%dx%dx%d: backward is the adjoint", names[mode],
             n, h, w, c);
    if (fabs(l - rr) > tol) printf("  %s: %.9g vs %.9g\n", what, l, rr);
    check(fabs(l - rr) <= tol, what);
  }
  glow_avg_pool2_forward(big, pb, n, h, w, c);
  glow_avg_pool2_backward(small, pts, n, h, w, c);
  double l = dotd(pb, small, ns), rr = dotd(big, pts, nl);
  double tol = 4 * RTOL(nl) * (dotmag(pb, small, ns) + dotmag(big, pts, nl));
  check(fabs(l - rr) <= tol, "avg_pool2: backward is the adjoint");
  /* nearest upsampling then pooling is the identity */
  glow_upsample2_forward(x, ux, n, h, w, c, GLOW_UPSAMPLE_NEAREST);
  glow_avg_pool2_forward(ux, uty, n, h, w, c);
  int same = 1;
  for (size_t i = 0; i < ns; i++) same &= uty[i] == x[i];
  check(same, "avg_pool2(upsample2 nearest(x)) = x");
  float *ps[] = {x, y, ux, uty, big, small, pb, pts};
  for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) glow_free(ps[i]);
}

int main(void) {
  if (glow_blas_init() != GLOW_OK) {
    printf("OpenBLAS: %s\n0 passed, 1 failed\n", glow_blas_error());
    return 1;
  }
  test_matmul();
  resample_case(1, 1, 1, 1);
  resample_case(2, 3, 5, 4);
  resample_case(3, 17, 9, 70); /* large enough for threads */
  return check_report(NULL);
}
