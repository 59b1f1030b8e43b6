/*
 * coupling.c -- the elementwise part of the affine coupling layer.
 *
 * With hnet = NN(z1) split into [shift | raw] along channels:
 *   scale = sigmoid(raw + 2),  y2 = (z2 + shift) * scale,
 *   logdet[img] += sum log(scale).
 * The network itself is composed from conv/actnorm/relu kernels (the Lua
 * package wires it), so any network can drive these kernels. The additive
 * coupling needs only tensor addition.
 */
#include "glow.h"
#include "vmath.h"

#include <math.h>

/* sigmoid(a) from e = exp(-|a|): no overflow for large |a|. The forward,
 * the inverse and the backward all use this one formula (vmath.h's exp, so
 * the loops vectorize), so the inverse undoes exactly the scale the forward
 * applied. */
static inline float sigmoidf_(float a) {
  float t = glow_vexpf(-fabsf(a));
  return (a >= 0 ? 1.0f : t) / (1.0f + t);
}

/* sigmoid(a) and log(sigmoid(a)) from one exp: log sigmoid(a) = min(a, 0) -
 * log1p(e) */
static inline float sigmoid_log(float a, float *logs) {
  float t = glow_vexpf(-fabsf(a));
  *logs = (a < 0 ? a : 0.0f) - vm_log1p_pos(t);
  return (a >= 0 ? 1.0f : t) / (1.0f + t);
}

/* these loops spend a few nanoseconds per element in exp and log: worth
 * threads at a smaller size than the memory-bound ones */
#define GLOW_AFFINE_PAR 8192
/* the channels of a pixel go through the vectorized functions in blocks of
 * this many, their values kept in a buffer on the stack */
#define BLOCK 256

/* Few channels (c2 < NARROW, as in the first levels of small models): a pixel's
 * c2 values are too few for the vector units, so the exp and log run over
 * blocks of whole pixels gathered into one buffer instead. Every element is
 * computed by the same formula and the log-determinant summed in the same
 * order, so both paths give the same bits. */
#define NARROW 32

/* the scales of rows [q, q + np) into sb (and their logs into lb when given),
 * np * c2 <= BLOCK values */
static void scales_of(const float *hnet, size_t q, size_t np, int c2, float *sb, float *lb) {
  float ab[BLOCK];
  for (size_t p = 0; p < np; p++)
    for (int k = 0; k < c2; k++) ab[p * c2 + k] = hnet[(q + p) * 2 * c2 + c2 + k] + 2.0f;
  int m = (int)np * c2;
  if (lb)
    for (int j = 0; j < m; j++) sb[j] = sigmoid_log(ab[j], &lb[j]);
  else
    for (int j = 0; j < m; j++) sb[j] = sigmoidf_(ab[j]);
}

static double forward_narrow(const float *z2, const float *hnet, float *y2, size_t r0, size_t r1, int c2) {
  float sb[BLOCK], lb[BLOCK];
  size_t per = BLOCK / (size_t)c2;
  double ld = 0;
  for (size_t q = r0; q < r1; q += per) {
    size_t np = r1 - q < per ? r1 - q : per;
    scales_of(hnet, q, np, c2, sb, lb);
    for (size_t p = 0; p < np; p++) {
      size_t r = q + p;
      for (int k = 0; k < c2; k++) y2[r * c2 + k] = (z2[r * c2 + k] + hnet[r * 2 * c2 + k]) * sb[p * c2 + k];
    }
    int m = (int)np * c2;
    for (int j = 0; j < m; j++) ld += lb[j]; /* in order, in double */
  }
  return ld;
}

void glow_affine_forward(const float *z2, const float *hnet, float *y2, float *logdet, size_t n,
                         size_t pix, int c2) {
#pragma omp parallel for if (n * pix * c2 > GLOW_AFFINE_PAR)
  for (size_t b = 0; b < n; b++) {
    if (c2 < NARROW) {
      double ld = forward_narrow(z2, hnet, y2, b * pix, (b + 1) * pix, c2);
      if (logdet) logdet[b] += (float)ld;
      continue;
    }
    double ld = 0;
    float lb[BLOCK];
    for (size_t p = 0; p < pix; p++) {
      size_t r = b * pix + p;
      const float *h = hnet + r * 2 * c2, *z = z2 + r * c2;
      float *y = y2 + r * c2;
      for (int k0 = 0; k0 < c2; k0 += BLOCK) {
        int m = c2 - k0 < BLOCK ? c2 - k0 : BLOCK;
        for (int k = 0; k < m; k++) {
          float l, s = sigmoid_log(h[c2 + k0 + k] + 2.0f, &l);
          y[k0 + k] = (z[k0 + k] + h[k0 + k]) * s;
          lb[k] = l;
        }
        for (int k = 0; k < m; k++) ld += lb[k]; /* in order, in double */
      }
    }
    if (logdet) logdet[b] += (float)ld;
  }
}

void glow_affine_inverse(const float *y2, const float *hnet, float *z2, size_t n, size_t pix,
                         int c2) {
  size_t rows = n * pix;
  if (c2 < NARROW) {
    size_t per = BLOCK / (size_t)c2, blocks = (rows + per - 1) / per;
#pragma omp parallel for if (rows * c2 > GLOW_AFFINE_PAR)
    for (size_t i = 0; i < blocks; i++) {
      float sb[BLOCK];
      size_t q = i * per, np = rows - q < per ? rows - q : per;
      scales_of(hnet, q, np, c2, sb, NULL);
      for (size_t p = 0; p < np; p++) {
        size_t r = q + p;
        for (int k = 0; k < c2; k++) z2[r * c2 + k] = y2[r * c2 + k] / sb[p * c2 + k] - hnet[r * 2 * c2 + k];
      }
    }
    return;
  }
#pragma omp parallel for if (rows * c2 > GLOW_AFFINE_PAR)
  for (size_t r = 0; r < rows; r++) {
    const float *h = hnet + r * 2 * c2, *y = y2 + r * c2;
    float *z = z2 + r * c2;
    for (int k = 0; k < c2; k++) z[k] = y[k] / sigmoidf_(h[c2 + k] + 2.0f) - h[k];
  }
}

void glow_affine_backward(const float *y2, const float *hnet, const float *dy2,
                          const float *dlogdet, float *z2, float *dz2, float *dhnet, size_t n,
                          size_t pix, int c2) {
#pragma omp parallel for if (n * pix * c2 > GLOW_AFFINE_PAR)
  for (size_t b = 0; b < n; b++) {
    float dld = dlogdet ? dlogdet[b] : 0.0f;
    float sb[BLOCK];
    if (c2 < NARROW) {
      size_t per = BLOCK / (size_t)c2;
      for (size_t q = b * pix; q < (b + 1) * pix; q += per) {
        size_t np = (b + 1) * pix - q < per ? (b + 1) * pix - q : per;
        scales_of(hnet, q, np, c2, sb, NULL);
        for (size_t p = 0; p < np; p++) {
          size_t r = q + p;
          const float *h = hnet + r * 2 * c2, *y = y2 + r * c2, *g = dy2 + r * c2;
          float *dh = dhnet + r * 2 * c2;
          const float *sr = sb + p * c2;
          if (z2)
            for (int k = 0; k < c2; k++) z2[r * c2 + k] = y[k] / sr[k] - h[k];
          if (dz2)
            for (int k = 0; k < c2; k++) dz2[r * c2 + k] = g[k] * sr[k];
          for (int k = 0; k < c2; k++) {
            dh[k] = g[k] * sr[k];
            dh[c2 + k] = (g[k] * y[k] + dld) * (1.0f - sr[k]);
          }
        }
      }
      continue;
    }
    for (size_t p = 0; p < pix; p++) {
      size_t r = b * pix + p;
      const float *h = hnet + r * 2 * c2, *y = y2 + r * c2, *g = dy2 + r * c2;
      float *dh = dhnet + r * 2 * c2;
      for (int k0 = 0; k0 < c2; k0 += BLOCK) {
        int m = c2 - k0 < BLOCK ? c2 - k0 : BLOCK;
        for (int k = 0; k < m; k++) sb[k] = sigmoidf_(h[c2 + k0 + k] + 2.0f);
        if (z2)
          for (int k = 0; k < m; k++) z2[r * c2 + k0 + k] = y[k0 + k] / sb[k] - h[k0 + k];
        if (dz2)
          for (int k = 0; k < m; k++) dz2[r * c2 + k0 + k] = g[k0 + k] * sb[k];
        for (int k = 0; k < m; k++) {
          float s = sb[k];
          dh[k0 + k] = g[k0 + k] * s;
          dh[c2 + k0 + k] = (g[k0 + k] * y[k0 + k] + dld) * (1.0f - s);
        }
      }
    }
  }
}
