/*
 * test_kernels.c -- each fast kernel against its naive reference, and the
 * small linear algebra against identities. Prints "N passed, N failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glow.h"

static int passed, failed;

static void check(int ok, const char *what) {
  if (ok)
    passed++;
  else {
    failed++;
    printf("FAIL: %s\n", what);
  }
}

static double maxdiff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > m || isnan(d)) m = d;
  }
  return m;
}

/* fast conv vs naive, forward and backward, one shape */
static void conv_case(int n, int h, int w, int cin, int cout, int k, int bias) {
  glow_rng r;
  glow_rng_seed(&r, (uint64_t)(n * 1000 + h * 100 + w * 10 + cin + cout * 7 + k));
  size_t nx = (size_t)n * h * w * cin, ny = (size_t)n * h * w * cout, nw = (size_t)k * k * cin * cout;
  float *x = glow_alloc(nx), *wt = glow_alloc(nw), *b = glow_alloc(cout), *dy = glow_alloc(ny);
  float *y1 = glow_alloc(ny), *y2 = glow_alloc(ny);
  float *dx1 = glow_alloc(nx), *dx2 = glow_alloc(nx), *dw1 = glow_alloc(nw), *dw2 = glow_alloc(nw);
  float *db1 = glow_alloc(cout), *db2 = glow_alloc(cout);
  glow_randn(&r, x, nx, 1.0f);
  glow_randn(&r, wt, nw, 0.3f);
  glow_randn(&r, b, cout, 1.0f);
  glow_randn(&r, dy, ny, 1.0f);
  /* accumulation: start both parameter grads from the same nonzero values */
  glow_randn(&r, dw1, nw, 1.0f);
  memcpy(dw2, dw1, nw * sizeof(float));
  glow_conv2d_forward(x, wt, bias ? b : NULL, y1, n, h, w, cin, cout, k);
  glow_conv2d_forward_naive(x, wt, bias ? b : NULL, y2, n, h, w, cin, cout, k);
  glow_conv2d_backward(x, wt, dy, dx1, dw1, bias ? db1 : NULL, n, h, w, cin, cout, k);
  glow_conv2d_backward_naive(x, wt, dy, dx2, dw2, bias ? db2 : NULL, n, h, w, cin, cout, k);
  char what[160];
  double tol = 1e-4 * (1 + sqrt((double)k * k * cin));
  snprintf(what, sizeof what, "conv%dx%d n=%d %dx%d cin=%d cout=%d bias=%d", k, k, n, h, w, cin,
           cout, bias);
  double e1 = maxdiff(y1, y2, ny), e2 = maxdiff(dx1, dx2, nx),
         e3 = maxdiff(dw1, dw2, nw) / (1 + sqrt((double)n * h * w)),
         e4 = maxdiff(db1, db2, cout) / (1 + sqrt((double)n * h * w));
  if (!(e1 < tol && e2 < tol && e3 < tol && e4 < tol))
    printf("  %s: forward %.3g, dx %.3g, dw %.3g, db %.3g (tol %.3g)\n", what, e1, e2, e3, e4, tol);
  check(e1 < tol && e2 < tol && e3 < tol && e4 < tol, what);
  float *ps[] = {x, wt, b, dy, y1, y2, dx1, dx2, dw1, dw2, db1, db2};
  for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) glow_free(ps[i]);
}

static void test_conv(void) {
  int chans[] = {1, 3, 5, 7, 130};
  int sizes[][2] = {{1, 1}, {2, 3}, {5, 5}, {9, 7}};
  for (int k = 1; k <= 3; k += 2)
    for (int a = 0; a < 5; a++)
      for (int s = 0; s < 4; s++) {
        int cin = chans[a], cout = chans[(a + 2) % 5];
        conv_case(2, sizes[s][0], sizes[s][1], cin, cout, k, (a + s) % 2);
      }
  /* a batch large enough to be cut into im2col chunks */
  conv_case(70, 16, 16, 130, 5, 3, 1);
  /* the direct kernel: channels past the 64-wide tiles in groups of 16
   * (37 = 16 + 16 + 5; 100 = 64 + 16 + 16 + 4), large enough for threads */
  conv_case(3, 6, 5, 4, 37, 3, 0);
  conv_case(2, 5, 4, 3, 100, 3, 1);
  conv_case(16, 14, 14, 2, 4, 3, 1);
}

static void test_linalg(void) {
  int c = 7;
  double q[49], qi[49], l[49], u[49], w[49];
  int perm[7];
  glow_random_rotation(q, c, 3);
  double ld;
  int sg;
  glow_slogdet(q, c, &ld, &sg);
  check(fabs(ld) < 1e-10 && (sg == 1 || sg == -1), "a rotation has |det| 1");
  glow_inverse(q, qi, c);
  double e = 0;
  for (int i = 0; i < c; i++)
    for (int j = 0; j < c; j++) e = fmax(e, fabs(qi[i * c + j] - q[j * c + i]));
  check(e < 1e-10, "the inverse of a rotation is its transpose");
  glow_lu(q, perm, l, u, c);
  /* W[i] = (L U)[perm[i]] */
  e = 0;
  for (int i = 0; i < c; i++)
    for (int j = 0; j < c; j++) {
      double s = 0;
      for (int k = 0; k < c; k++) s += l[perm[i] * c + k] * u[k * c + j];
      w[i * c + j] = s;
      e = fmax(e, fabs(s - q[i * c + j]));
    }
  check(e < 1e-10, "P L U reproduces the matrix");
  /* glow_lu_weight from the float parameters */
  float lf[49], uf[49], ls[7], sgn[7], wf[49];
  for (int i = 0; i < 49; i++) {
    lf[i] = (float)l[i];
    uf[i] = (float)u[i];
  }
  for (int i = 0; i < c; i++) {
    sgn[i] = u[i * c + i] < 0 ? -1.0f : 1.0f;
    ls[i] = (float)log(fabs(u[i * c + i]));
  }
  glow_lu_weight(lf, uf, ls, sgn, perm, wf, c);
  e = 0;
  for (int i = 0; i < 49; i++) e = fmax(e, fabs(wf[i] - w[i]));
  check(e < 1e-5, "the LU weight equals P L U");
}

static void test_squeeze(void) {
  int n = 2, h = 4, w = 6, c = 3;
  size_t sz = (size_t)n * h * w * c;
  float *x = glow_alloc(sz), *y = glow_alloc(sz), *x2 = glow_alloc(sz);
  for (size_t i = 0; i < sz; i++) x[i] = (float)i;
  glow_squeeze(x, y, n, h, w, c);
  /* out[n, i, j, k*4 + dy*2 + dx] = in[n, 2i+dy, 2j+dx, k] at n=1, i=1, j=2, k=2, dy=1, dx=0 */
  size_t o = (((size_t)1 * 2 + 1) * 3 + 2) * 12 + 2 * 4 + 1 * 2 + 0;
  size_t in = (((size_t)1 * h + 3) * w + 4) * c + 2;
  check(y[o] == x[in], "squeeze follows the NHWC convention");
  glow_unsqueeze(y, x2, n, h, w, c);
  check(maxdiff(x, x2, sz) == 0, "unsqueeze inverts squeeze");
  glow_free(x);
  glow_free(y);
  glow_free(x2);
}

/* glow_channel_reduce against plain loops, below and above the size where it goes parallel,
 * with and without the mask; and the fused ActNorm+ReLU against ActNorm then ReLU */
static void reduce_case(size_t rows, int c, int mask) {
  glow_rng r;
  glow_rng_seed(&r, rows * 31 + (size_t)c + (size_t)mask);
  size_t n = rows * (size_t)c;
  float *a = glow_alloc(n), *m = glow_alloc(n), *out = glow_alloc(n), *ref = glow_alloc(n);
  float *scale = glow_alloc((size_t)c);
  double *s1 = calloc((size_t)c, sizeof(double)), *s2 = calloc((size_t)c, sizeof(double));
  double *r1 = calloc((size_t)c, sizeof(double)), *r2 = calloc((size_t)c, sizeof(double));
  glow_randn(&r, a, n, 1.0f);
  glow_randn(&r, m, n, 1.0f);
  glow_randn(&r, scale, (size_t)c, 1.0f);
  for (size_t i = 0; i < rows; i++)
    for (int k = 0; k < c; k++) {
      size_t j = i * (size_t)c + (size_t)k;
      float g = !mask || m[j] > 0 ? a[j] : 0.0f;
      r1[k] += g;
      r2[k] += (double)g * m[j];
      ref[j] = g * scale[k];
    }
  glow_channel_reduce(a, m, mask, scale, out, s1, s2, rows, c);
  double e1 = 0, e2 = 0;
  for (int k = 0; k < c; k++) {
    e1 = fmax(e1, fabs(s1[k] - r1[k]) / (1 + fabs(r1[k])));
    e2 = fmax(e2, fabs(s2[k] - r2[k]) / (1 + fabs(r2[k])));
  }
  char what[128];
  snprintf(what, sizeof what, "channel_reduce rows %zu c %d mask %d: sums and output", rows, c,
           mask);
  check(e1 < 1e-9 && e2 < 1e-9 && maxdiff(out, ref, n) == 0, what);
  glow_free(a);
  glow_free(m);
  glow_free(out);
  glow_free(ref);
  glow_free(scale);
  free(s1);
  free(s2);
  free(r1);
  free(r2);
}

static void test_actnorm_relu(void) {
  size_t rows = 3000;
  int c = 40;
  size_t n = rows * (size_t)c;
  glow_rng r;
  glow_rng_seed(&r, 5);
  float *x = glow_alloc(n), *dy = glow_alloc(n), *y1 = glow_alloc(n), *y2 = glow_alloc(n);
  float *dx1 = glow_alloc(n), *dx2 = glow_alloc(n), *t = glow_alloc(n);
  float b[40], s[40], db1[40] = {0}, ds1[40] = {0}, db2[40] = {0}, ds2[40] = {0};
  glow_randn(&r, x, n, 1.0f);
  glow_randn(&r, dy, n, 1.0f);
  glow_randn(&r, b, (size_t)c, 0.5f);
  glow_randn(&r, s, (size_t)c, 0.5f);
  glow_actnorm_forward(x, b, s, t, rows, c);
  glow_relu_forward(t, y1, n);
  glow_actnorm_relu_forward(x, b, s, y2, rows, c);
  check(maxdiff(y1, y2, n) == 0, "actnorm_relu_forward equals actnorm then relu");
  glow_relu_backward(t, dy, dx2, n); /* dx2: the gradient at the relu's input */
  glow_actnorm_backward(t, b, s, dx2, dx1, db1, ds1, 0.0f, rows, c);
  glow_actnorm_relu_backward(y2, s, dy, dx2, db2, ds2, rows, c);
  check(maxdiff(dx1, dx2, n) == 0 && maxdiff(db1, db2, (size_t)c) < 1e-3 &&
            maxdiff(ds1, ds2, (size_t)c) < 1e-3,
        "actnorm_relu_backward equals relu then actnorm backward");
  glow_free(x);
  glow_free(dy);
  glow_free(y1);
  glow_free(y2);
  glow_free(dx1);
  glow_free(dx2);
  glow_free(t);
}

int main(void) {
  if (glow_blas_init() != GLOW_OK) {
    printf("OpenBLAS: %s\n0 passed, 1 failed\n", glow_blas_error());
    return 1;
  }
  printf("OpenBLAS %s, kernel %s, %d threads\n", glow_blas_library(), glow_blas_kernel(),
         glow_blas_threads());
  test_conv();
  test_linalg();
  test_squeeze();
  reduce_case(7, 5, 0);
  reduce_case(7, 5, 1);
  reduce_case(5000, 33, 0);
  reduce_case(5000, 33, 1);
  reduce_case(70000, 1, 1);
  test_actnorm_relu();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
