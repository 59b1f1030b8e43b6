/*
 * test_kernels.c -- each fast kernel against its naive reference (the one
 * convolution entry over a sweep of geometries, every kernel it picks), and
 * the small linear algebra against identities. Prints "N passed, N failed".
 *
 * Tolerances (as in spec/helper.lua): a sum of n float32 terms computed in
 * two orders differs by about sqrt(n) * FLT_EPSILON times the sum of the
 * terms' sizes, whatever the sum itself (cancellation may bring it near 0).
 * So a kernel's result is compared element by element against
 * RTOL(n) * mag, where mag is the same computation on the absolute values of
 * its inputs (the naive kernel gives it), RTOL(n) = 4 FLT_EPSILON sqrt(n)
 * (two codes rounding independently, a factor 2 to spare). The double
 * reductions use DBL_EPSILON the same way. Exact equality stays where two
 * kernels evaluate the same expression per element, with no sum, and where
 * a kernel promises the same result for any thread count.
 */
#include <float.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "glow.h"


static void abs_copy(const float *a, float *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = fabsf(a[i]);
}

static double maxdiff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > m || isnan(d)) m = d;
  }
  return m;
}

/* ------------------------------------------------------------------ conv */
/* The one convolution entry against the one naive reference, forward and
 * backward, one geometry. Parameter gradients accumulate: both start from
 * the same nonzero values. The backward also runs without dx and without
 * dwt, each of which must leave the other result exactly as it was. */
static int conv_cases;

static float *randn_alloc(glow_rng *r, size_t n, float std) {
  float *p = glow_alloc(n);
  if (p) glow_randn(r, p, n, std);
  return p;
}

static float *absdup(const float *a, size_t n) {
  float *o = glow_alloc(n);
  if (o) abs_copy(a, o, n);
  return o;
}

static void conv_case(int n, int h, int w, int cin, int cout, int kh, int kw, int pad_h, int pad_w,
                      int dil, int bias) {
  glow_conv_geom g = {n, h, w, cin, cout, kh, kw, pad_h, pad_w, dil};
  int64_t ho, wo;
  glow_conv_out_size(&g, &ho, &wo);
  glow_rng r;
  glow_rng_seed(&r, (uint64_t)(n * 7919 + h * 131 + w * 31 + cin * 17 + cout * 7 + kh * 3 + kw +
                               pad_h * 101 + pad_w * 37 + dil * 1009));
  size_t nx = (size_t)n * h * w * cin, ny = (size_t)n * ho * wo * cout;
  size_t nw = (size_t)kh * kw * cin * cout;
  float *x = randn_alloc(&r, nx, 1), *wt = randn_alloc(&r, nw, 0.3f), *b = randn_alloc(&r, cout, 1);
  float *dy = randn_alloc(&r, ny, 1), *dw0 = randn_alloc(&r, nw, 1);
  float *db0 = randn_alloc(&r, cout, 1);
  float *y1 = glow_alloc(ny), *y2 = glow_alloc(ny), *dx1 = glow_alloc(nx), *dx2 = glow_alloc(nx);
  float *dw1 = glow_alloc(nw), *dw2 = glow_alloc(nw), *db1 = glow_alloc(cout),
        *db2 = glow_alloc(cout), *dx3 = glow_alloc(nx), *dw3 = glow_alloc(nw);
  float *ax = absdup(x, nx), *aw = absdup(wt, nw), *ab = absdup(b, cout), *ady = absdup(dy, ny);
  float *my = glow_alloc(ny), *mx = glow_alloc(nx), *mw = absdup(dw0, nw), *mb = absdup(db0, cout);
  float *ps[] = {x,   wt,  b,   dy, dw0, db0, y1, y2, dx1, dx2, dw1, dw2, db1,
                 db2, dx3, dw3, ax, aw,  ab,  ady, my, mx, mw,  mb};
  size_t np = sizeof ps / sizeof *ps;
  for (size_t i = 0; i < np; i++)
    if (!ps[i]) {
      check(0, "conv_case: out of memory");
      for (size_t j = 0; j < np; j++) glow_free(ps[j]);
      return;
    }
  memcpy(dw1, dw0, nw * sizeof(float));
  memcpy(dw2, dw0, nw * sizeof(float));
  memcpy(db1, db0, cout * sizeof(float));
  memcpy(db2, db0, cout * sizeof(float));
  int rc = glow_conv_forward(&g, x, wt, bias ? b : NULL, y1);
  rc |= glow_conv_backward(&g, x, wt, dy, dx1, dw1, bias ? db1 : NULL);
  glow_conv_forward_naive(&g, x, wt, bias ? b : NULL, y2);
  glow_conv_backward_naive(&g, x, wt, dy, dx2, dw2, bias ? db2 : NULL);
  /* the sizes of the terms behind each value: the naive kernels on |inputs|
   * (dw and db start from |dw0| and |db0|, accumulated into) */
  glow_conv_forward_naive(&g, ax, aw, bias ? ab : NULL, my);
  glow_conv_backward_naive(&g, ax, aw, ady, mx, mw, bias ? mb : NULL);
  char what[200];
  snprintf(what, sizeof what,
           "conv %dx%d n=%d %dx%d cin=%d cout=%d pad=%d,%d dil=%d bias=%d -> %lldx%lld", kh, kw, n,
           h, w, cin, cout, pad_h, pad_w, dil, bias, (long long)ho, (long long)wo);
  /* y sums kh*kw*cin products (and the bias), dx kh*kw*cout, dw and db the
   * n*ho*wo pixels (and the value they started from) */
  size_t pixels = (size_t)n * ho * wo;
  double e1 = worst_ratio(y1, y2, my, ny, RTOL(kh * kw * cin + 1)),
         e2 = worst_ratio(dx1, dx2, mx, nx, RTOL(kh * kw * cout)),
         e3 = worst_ratio(dw1, dw2, mw, nw, RTOL(pixels + 1)),
         e4 = bias ? worst_ratio(db1, db2, mb, cout, RTOL(pixels + 1)) : 0;
  int ok = rc == GLOW_OK && e1 <= 1 && e2 <= 1 && e3 <= 1 && e4 <= 1;
  if (!ok)
    printf("  %s: rc %d, forward %.3g, dx %.3g, dw %.3g, db %.3g x the allowed\n", what, rc, e1,
           e2, e3, e4);
  check(ok, what);
  /* dx alone, dwt alone, db alone: the same values as all three together */
  memcpy(dw3, dw0, nw * sizeof(float));
  rc = glow_conv_backward(&g, x, wt, dy, dx3, NULL, NULL);
  rc |= glow_conv_backward(&g, x, wt, dy, NULL, dw3, NULL);
  int same = maxdiff(dx3, dx1, nx) == 0 && maxdiff(dw3, dw1, nw) == 0;
  if (bias) {
    memcpy(db2, db0, cout * sizeof(float));
    rc |= glow_conv_backward(&g, x, wt, dy, NULL, NULL, db2);
    same &= maxdiff(db2, db1, cout) == 0;
  }
  snprintf(what, sizeof what, "conv %dx%d n=%d cin=%d cout=%d pad=%d,%d dil=%d: dx, dw, db apart",
           kh, kw, n, cin, cout, pad_h, pad_w, dil);
  check(rc == GLOW_OK && same, what);
  conv_cases++;
  for (size_t i = 0; i < np; i++) glow_free(ps[i]);
}

/* a k x k kernel with the "same" padding (k - 1) / 2 * dil */
static void conv_same(int n, int h, int w, int cin, int cout, int k, int bias) {
  conv_case(n, h, w, cin, cout, k, k, k / 2, k / 2, 1, bias);
}

static void test_conv(void) {
  /* The sweep: kernels 1, 3, 5; padding "same" ((k - 1) / 2 * dil), 0 to 3;
   * dilation 1, 2; batches of 1 to 3; channel pairs that take each kernel
   * of the entry: few input channels (direct loops: kh*kw*cin <= 64),
   * cin <= cout (im2col), cout < cin (taps), and past 64 channels (a 1x1
   * kernel without padding reads x itself; with padding, the taps lowering
   * runs with a negative transposed padding) */
  int ks[] = {1, 3, 5}, pads[] = {-1, 0, 1, 2, 3}, dils[] = {1, 2};
  int chans[][2] = {{1, 4}, {3, 2}, {5, 1}, {2, 7}, {9, 11}, {13, 3}, {67, 5}, {65, 71}};
  int images[][3] = {{1, 9, 11}, {2, 7, 6}, {3, 5, 9}};
  int nch = sizeof chans / sizeof *chans, i = 0;
  for (int a = 0; a < 3; a++)
    for (int p = 0; p < 5; p++)
      for (int d = 0; d < 2; d++)
        for (int c = 0; c < nch; c++, i++) {
          int k = ks[a], dil = dils[d], pad = pads[p] < 0 ? (k - 1) / 2 * dil : pads[p];
          const int *im = images[i % 3];
          int n = im[0], h = im[1], w = im[2];
          if (h + 2 * pad - dil * (k - 1) < 1 || w + 2 * pad - dil * (k - 1) < 1) continue;
          conv_case(n, h, w, chans[c][0], chans[c][1], k, k, pad, pad, dil, i % 2);
        }
  check(conv_cases >= 220, "conv: enough geometry cases");
  /* "same" 1x1 and 3x3 kernels, the coupling network's, over odd sizes */
  int same_chans[] = {1, 3, 5, 7, 130};
  int sizes[][2] = {{1, 1}, {2, 3}, {5, 5}, {9, 7}};
  for (int k = 1; k <= 3; k += 2)
    for (int a = 0; a < 5; a++)
      for (int s = 0; s < 4; s++)
        conv_same(2, sizes[s][0], sizes[s][1], same_chans[a], same_chans[(a + 2) % 5], k,
                  (a + s) % 2);
  /* a batch large enough to be cut into chunks, both lowerings */
  conv_same(70, 16, 16, 130, 5, 3, 1);
  conv_same(40, 16, 16, 20, 40, 3, 0);
  conv_case(40, 24, 24, 40, 3, 5, 5, 2, 2, 1, 1);
  /* the direct kernel: channels past the 64-wide tiles in groups of 16
   * (37 = 16 + 16 + 5; 100 = 64 + 16 + 16 + 4), large enough for threads */
  conv_same(3, 6, 5, 4, 37, 3, 0);
  conv_same(2, 5, 4, 3, 100, 3, 1);
  conv_case(2, 9, 12, 2, 100, 5, 5, 3, 1, 2, 1);
  /* exactly one tile on AVX and AVX-512 (64), two on SSE (32) */
  conv_same(2, 5, 4, 3, 64, 3, 0);
  conv_same(16, 14, 14, 2, 4, 3, 1);
  /* kh != kw, unequal paddings */
  conv_case(2, 6, 8, 3, 5, 3, 5, 1, 2, 1, 1);
  conv_case(2, 6, 8, 3, 5, 5, 1, 0, 0, 1, 0);
  conv_case(1, 9, 9, 2, 3, 1, 3, 2, 0, 2, 1);
  conv_case(2, 8, 9, 17, 6, 3, 5, 0, 2, 1, 1);
  conv_case(2, 8, 9, 6, 17, 5, 3, 2, 0, 2, 0);
  /* a 1x1 kernel with and without padding, either side of 64 channels */
  conv_case(3, 4, 5, 6, 7, 1, 1, 0, 0, 1, 1);
  conv_case(3, 4, 5, 6, 7, 1, 1, 1, 1, 1, 1);
  conv_case(3, 4, 5, 70, 7, 1, 1, 0, 0, 1, 1);
  conv_case(3, 4, 5, 70, 7, 1, 1, 2, 1, 1, 0);
  /* more channels, and padding past the kernel's reach (output larger than x) */
  conv_case(2, 6, 6, 40, 33, 3, 3, 1, 1, 1, 1);
  conv_case(2, 4, 5, 30, 3, 3, 3, 3, 3, 1, 1);
  conv_case(1, 4, 5, 3, 30, 3, 3, 3, 3, 1, 0);
}

static void test_linalg(void) {
  int c = 7;
  double q[49], qi[49], l[49], u[49], w[49];
  int perm[7];
  glow_random_rotation(q, c, 3);
  double ld;
  int sg;
  glow_slogdet(q, c, &ld, &sg);
  /* a rotation's entries, determinant and inverse are O(1) (in double):
   * absolute bounds */
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
  /* float32 factors of a rotation (entries at most 1), products of 7 */
  check(e < RTOL(7) * 7, "the LU weight equals P L U");
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
  double *a1 = calloc((size_t)c, sizeof(double)), *a2 = calloc((size_t)c, sizeof(double));
  glow_randn(&r, a, n, 1.0f);
  glow_randn(&r, m, n, 1.0f);
  glow_randn(&r, scale, (size_t)c, 1.0f);
  for (size_t i = 0; i < rows; i++)
    for (int k = 0; k < c; k++) {
      size_t j = i * (size_t)c + (size_t)k;
      float g = !mask || m[j] > 0 ? a[j] : 0.0f;
      r1[k] += g;
      r2[k] += (double)g * m[j];
      a1[k] += fabs(g);
      a2[k] += fabs((double)g * m[j]);
      ref[j] = g * scale[k];
    }
  glow_channel_reduce(a, m, mask, scale, out, s1, s2, rows, c);
  /* double sums of exact terms over the rows, in another order */
  double e1 = 0, e2 = 0, rtol = 4.0 * DBL_EPSILON * sqrt((double)rows);
  for (int k = 0; k < c; k++) {
    double r1k = fabs(s1[k] - r1[k]) / (rtol * a1[k] + DBL_MIN);
    double r2k = fabs(s2[k] - r2[k]) / (rtol * a2[k] + DBL_MIN);
    if (!(r1k <= e1)) e1 = r1k; /* a NaN sticks */
    if (!(r2k <= e2)) e2 = r2k;
  }
  char what[128];
  snprintf(what, sizeof what, "channel_reduce rows %zu c %d mask %d: sums and output", rows, c,
           mask);
  /* out is one product per element, as the reference computes it: exact */
  check(e1 <= 1 && e2 <= 1 && maxdiff(out, ref, n) == 0, what);
  glow_free(a);
  glow_free(m);
  glow_free(out);
  glow_free(ref);
  glow_free(scale);
  free(s1);
  free(s2);
  free(r1);
  free(r2);
  free(a1);
  free(a2);
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
  /* db and ds sum over the rows: against the sums of |dy exp(s)| and |dy y| */
  float mb[40] = {0}, ms[40] = {0};
  for (size_t i = 0; i < rows; i++)
    for (int k = 0; k < c; k++) {
      size_t j = i * (size_t)c + (size_t)k;
      mb[k] += fabsf(dy[j]) * expf(s[k]);
      ms[k] += fabsf(dy[j] * t[j]);
    }
  check(maxdiff(dx1, dx2, n) == 0 && worst_ratio(db1, db2, mb, (size_t)c, RTOL(rows)) <= 1 &&
            worst_ratio(ds1, ds2, ms, (size_t)c, RTOL(rows)) <= 1,
        "actnorm_relu_backward equals relu then actnorm backward");
  glow_free(x);
  glow_free(dy);
  glow_free(y1);
  glow_free(y2);
  glow_free(dx1);
  glow_free(dx2);
  glow_free(t);
}

/* glow_reduce (sum, max) and glow_logsumexp over x {outer, red, inner}
 * against loops in double, in each of the reduction's layouts; and the same
 * bits for 1 and 3 threads (the result depends on the sizes only) */
static void ops_reduce_case(int64_t outer, int64_t red, int64_t inner) {
  size_t n = (size_t)(outer * red * inner), m = (size_t)(outer * inner);
  float *x = glow_alloc(n), *y = glow_alloc(m), *y3 = glow_alloc(m), *ref = glow_alloc(m),
        *mag = glow_alloc(m), *scratch = glow_alloc(m);
  glow_rng r;
  glow_rng_seed(&r, (uint64_t)(outer * 7 + red * 3 + inner));
  glow_randn(&r, x, n, 1.0f);
  char what[128];
#ifdef _OPENMP
  int threads = omp_get_max_threads();
#endif
  for (int op = 0; op < 3; op++) {
    for (int64_t o = 0; o < outer; o++)
      for (int64_t j = 0; j < inner; j++) {
        double s = 0, a = 0, mx = -INFINITY;
        for (int64_t k = 0; k < red; k++) {
          double v = x[(o * red + k) * inner + j];
          s += v, a += fabs(v), mx = v > mx ? v : mx;
        }
        double e = 0;
        for (int64_t k = 0; k < red; k++) e += exp(x[(o * red + k) * inner + j] - mx);
        size_t i = (size_t)(o * inner + j);
        /* a sum against the sum of its terms' sizes; log-sum-exp within
         * RTOL(red) of 1 (the relative error of its sum of positive terms)
         * plus a rounding of the result */
        ref[i] = (float)(op == 0 ? s : op == 1 ? mx : log(e) + mx);
        mag[i] = (float)(op == 0 ? a : op == 1 ? 0 : 1 + fabs(log(e) + mx) / sqrt((double)red));
      }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    if (op == 2)
      glow_logsumexp(x, scratch, y, outer, red, inner);
    else
      glow_reduce(op == 0 ? GLOW_OP_ADD : GLOW_OP_MAX, x, NULL, y, outer, red, inner);
#ifdef _OPENMP
    omp_set_num_threads(3);
#endif
    if (op == 2)
      glow_logsumexp(x, scratch, y3, outer, red, inner);
    else
      glow_reduce(op == 0 ? GLOW_OP_ADD : GLOW_OP_MAX, x, NULL, y3, outer, red, inner);
    const char *name = op == 0 ? "sum" : op == 1 ? "max" : "logsumexp";
    snprintf(what, sizeof what, "reduce %s {%lld, %lld, %lld} against loops in double", name,
             (long long)outer, (long long)red, (long long)inner);
    check(op == 1 ? maxdiff(y, ref, m) == 0 : worst_ratio(y, ref, mag, m, RTOL(red)) <= 1, what);
    snprintf(what, sizeof what, "reduce %s {%lld, %lld, %lld}: the same bits on 1 and 3 threads", name,
             (long long)outer, (long long)red, (long long)inner);
    check(memcmp(y, y3, m * sizeof(float)) == 0, what);
  }
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  glow_free(x);
  glow_free(y);
  glow_free(y3);
  glow_free(ref);
  glow_free(mag);
  glow_free(scratch);
}

static void test_ops_reduce(void) {
  ops_reduce_case(2, 3, 5);         /* small: one thread */
  ops_reduce_case(1, 300000, 1);    /* a long reduction into one output: row chunks */
  ops_reduce_case(1, 40000, 3);     /* into few outputs: row chunks */
  ops_reduce_case(1, 400, 100);     /* wide: threads split the columns */
  ops_reduce_case(3, 20000, 1);     /* one contiguous row per output */
  ops_reduce_case(4, 5000, 3);      /* outer slices */
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
  test_ops_reduce();
  return check_report(NULL);
}
