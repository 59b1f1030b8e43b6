/*
 * optim.c -- the optimizer update loops over one flat parameter arena:
 * SGD with momentum, Adam and Adamax with bias correction, decoupled weight
 * decay, the global gradient norm for clipping, and the exponential moving
 * average of the weights (Polyak averaging). Each is one pass over the
 * arena; the learning rate comes from a schedule composed in Lua.
 */
#include "glow.h"

#include <math.h>

double glow_norm2(const float *g, size_t n) {
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
  for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
  return s;
}

void glow_scale_inplace(float *g, size_t n, float a) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) g[i] *= a;
}

void glow_sgd_update(float *w, const float *g, float *buf, size_t n, float lr, float momentum,
                     float wd, int nesterov) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    float d = gi;
    if (buf) {
      buf[i] = momentum * buf[i] + gi;
      d = nesterov ? gi + momentum * buf[i] : buf[i];
    }
    w[i] -= lr * (d + wd * w[i]);
  }
}

void glow_adam_update(float *w, const float *g, float *m, float *v, size_t n, float lr, float b1,
                      float b2, float eps, float wd, int64_t step) {
  double c1 = 1.0 - pow(b1, (double)step), c2 = 1.0 - pow(b2, (double)step);
  float a = (float)(lr / c1), s2 = (float)(1.0 / sqrt(c2));
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    m[i] = b1 * m[i] + (1.0f - b1) * gi;
    v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
    w[i] -= a * m[i] / (sqrtf(v[i]) * s2 + eps) + lr * wd * w[i];
  }
}

void glow_adamax_update(float *w, const float *g, float *m, float *u, size_t n, float lr, float b1,
                        float b2, float eps, float wd, int64_t step) {
  float a = (float)(lr / (1.0 - pow(b1, (double)step)));
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    m[i] = b1 * m[i] + (1.0f - b1) * gi;
    float ag = fabsf(gi), bu = b2 * u[i];
    u[i] = bu > ag ? bu : ag;
    w[i] -= a * m[i] / (u[i] + eps) + lr * wd * w[i];
  }
}

void glow_ema_update(float *ema, const float *w, size_t n, float decay) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) ema[i] = decay * ema[i] + (1.0f - decay) * w[i];
}
