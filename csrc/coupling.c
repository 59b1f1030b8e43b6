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

#include <math.h>

/* sigmoid(a) from exp(-|a|): no overflow for large |a|. The forward, the
 * inverse and the backward all use this one formula, so the inverse undoes
 * exactly the scale the forward applied. */
static inline float sigmoidf_(float a) {
  float t = expf(-fabsf(a));
  return a >= 0 ? 1.0f / (1.0f + t) : t / (1.0f + t);
}

/* sigmoid(a) and log(sigmoid(a)) from one exp */
static inline float sigmoid_log(float a, float *logs) {
  float t = expf(-fabsf(a));
  float l = log1pf(t);
  if (a >= 0) {
    *logs = -l;
    return 1.0f / (1.0f + t);
  }
  *logs = a - l;
  return t / (1.0f + t);
}

/* these loops spend tens of cycles per element in exp and log: worth
 * threads at a smaller size than the memory-bound ones */
#define GLOW_AFFINE_PAR 8192

void glow_affine_forward(const float *z2, const float *hnet, float *y2, float *logdet, size_t n,
                         size_t pix, int c2) {
#pragma omp parallel for if (n * pix * c2 > GLOW_AFFINE_PAR)
  for (size_t b = 0; b < n; b++) {
    double ld = 0;
    for (size_t p = 0; p < pix; p++) {
      size_t r = b * pix + p;
      const float *h = hnet + r * 2 * c2;
      for (int k = 0; k < c2; k++) {
        float l, s = sigmoid_log(h[c2 + k] + 2.0f, &l);
        y2[r * c2 + k] = (z2[r * c2 + k] + h[k]) * s;
        ld += l;
      }
    }
    if (logdet) logdet[b] += (float)ld;
  }
}

void glow_affine_inverse(const float *y2, const float *hnet, float *z2, size_t n, size_t pix,
                         int c2) {
  size_t rows = n * pix;
#pragma omp parallel for if (rows * c2 > GLOW_AFFINE_PAR)
  for (size_t r = 0; r < rows; r++) {
    const float *h = hnet + r * 2 * c2;
    for (int k = 0; k < c2; k++)
      z2[r * c2 + k] = y2[r * c2 + k] / sigmoidf_(h[c2 + k] + 2.0f) - h[k];
  }
}

void glow_affine_backward(const float *y2, const float *hnet, const float *dy2,
                          const float *dlogdet, float *z2, float *dz2, float *dhnet, size_t n,
                          size_t pix, int c2) {
#pragma omp parallel for if (n * pix * c2 > GLOW_AFFINE_PAR)
  for (size_t b = 0; b < n; b++) {
    float dld = dlogdet ? dlogdet[b] : 0.0f;
    for (size_t p = 0; p < pix; p++) {
      size_t r = b * pix + p;
      const float *h = hnet + r * 2 * c2;
      float *dh = dhnet + r * 2 * c2;
      for (int k = 0; k < c2; k++) {
        float s = sigmoidf_(h[c2 + k] + 2.0f);
        float y = y2[r * c2 + k], g = dy2[r * c2 + k];
        if (z2) z2[r * c2 + k] = y / s - h[k];
        if (dz2) dz2[r * c2 + k] = g * s;
        dh[k] = g * s;
        dh[c2 + k] = (g * y + dld) * (1.0f - s);
      }
    }
  }
}
