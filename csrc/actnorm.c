/*
 * actnorm.c -- ActNorm: a per-channel affine map y = (x + b) * exp(s) with
 * data-dependent initialization (b = -mean, s = -log(std + 1e-6) from one
 * batch). The same kernels serve the flow layer (which adds hw * sum(s) to
 * the log-determinant) and the ActNorm inside a coupling network.
 */
#include "glow.h"

#include <math.h>

void glow_actnorm_forward(const float *x, const float *b, const float *s, float *y, size_t rows,
                          int c) {
  float e[c];
  for (int k = 0; k < c; k++) e[k] = expf(s[k]);
#pragma omp parallel for if (rows * c > 65536)
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < c; k++) y[r * c + k] = (x[r * c + k] + b[k]) * e[k];
}

void glow_actnorm_inverse(const float *y, const float *b, const float *s, float *x, size_t rows,
                          int c) {
  float e[c];
  for (int k = 0; k < c; k++) e[k] = expf(-s[k]);
#pragma omp parallel for if (rows * c > 65536)
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < c; k++) x[r * c + k] = y[r * c + k] * e[k] - b[k];
}

void glow_actnorm_relu_forward(const float *x, const float *b, const float *s, float *y,
                               size_t rows, int c) {
  float e[c];
  for (int k = 0; k < c; k++) e[k] = expf(s[k]);
#pragma omp parallel for if (rows * c > 65536)
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < c; k++) {
      float v = (x[r * c + k] + b[k]) * e[k];
      y[r * c + k] = v > 0 ? v : 0;
    }
}

/* both backward passes are one glow_channel_reduce sweep over dy and y:
 * dx = dy * e (masked by y > 0 after a ReLU), sum dy and sum dy * y */
static void backward(const float *y, const float *s, const float *dy, float *dx, float *db,
                     float *ds, float dlogdet_scale, size_t rows, int c, int relu) {
  if (c <= 0) return;
  float e[c];
  double sb[c], ss[c];
  for (int k = 0; k < c; k++) e[k] = expf(s[k]);
  glow_channel_reduce(dy, y, relu, e, dx, db ? sb : NULL, ds ? ss : NULL, rows, c);
  for (int k = 0; k < c; k++) {
    if (db) db[k] += (float)(sb[k] * e[k]);
    if (ds) ds[k] += (float)(ss[k] + dlogdet_scale);
  }
}

void glow_actnorm_backward(const float *y, const float *b, const float *s, const float *dy,
                           float *dx, float *db, float *ds, float dlogdet_scale, size_t rows,
                           int c) {
  (void)b;
  backward(y, s, dy, dx, db, ds, dlogdet_scale, rows, c, 0);
}

void glow_actnorm_backward_rebuild(const float *y, const float *b, const float *s, const float *dy,
                                   float *x, float *dx, float *db, float *ds, float dlogdet_scale,
                                   size_t rows, int c) {
  if (c <= 0) return;
  float e[c], einv[c];
  double sb[c], ss[c];
  for (int k = 0; k < c; k++) {
    e[k] = expf(s[k]);
    einv[k] = expf(-s[k]);
  }
  glow_channel_reduce_rebuild(dy, y, e, dx, db ? sb : NULL, ds ? ss : NULL, einv, b, x, rows, c);
  for (int k = 0; k < c; k++) {
    if (db) db[k] += (float)(sb[k] * e[k]);
    if (ds) ds[k] += (float)(ss[k] + dlogdet_scale);
  }
}

void glow_actnorm_relu_backward(const float *y, const float *s, const float *dy, float *dx,
                                float *db, float *ds, size_t rows, int c) {
  backward(y, s, dy, dx, db, ds, 0.0f, rows, c, 1);
}

void glow_actnorm_init(const float *x, float *b, float *s, size_t rows, int c) {
  double m[c], v[c];
  for (int k = 0; k < c; k++) m[k] = v[k] = 0;
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < c; k++) m[k] += x[r * c + k];
  for (int k = 0; k < c; k++) m[k] /= (double)(rows ? rows : 1);
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < c; k++) {
      double d = x[r * c + k] - m[k];
      v[k] += d * d;
    }
  for (int k = 0; k < c; k++) {
    double sd = sqrt(v[k] / (double)(rows ? rows : 1));
    b[k] = (float)-m[k];
    s[k] = (float)-log(sd + 1e-6);
  }
}
