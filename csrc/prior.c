/*
 * prior.c -- Gaussian log-densities and sampling, the top prior's
 * parameters (learned and class-conditional) and the classification head.
 *
 * log N(z; mean, logs) = sum -0.5 log(2 pi) - logs - 0.5 (z - mean)^2 exp(-2 logs)
 * Sampling at temperature t: z = mean + t * exp(logs) * eps.
 */
#include "glow.h"

#include <math.h>
#include <string.h>

#define HALF_LOG_2PI 0.91893853320467274178

void glow_gaussian_logp(const float *z, const float *mean, const float *logs, float *lp,
                        size_t n, size_t d) {
#pragma omp parallel for if (n * d > 65536)
  for (size_t b = 0; b < n; b++) {
    double s = 0;
    for (size_t i = b * d; i < (b + 1) * d; i++) {
      double m = mean ? mean[i] : 0.0, ls = logs ? logs[i] : 0.0;
      double e = z[i] - m;
      s += -HALF_LOG_2PI - ls - 0.5 * e * e * exp(-2.0 * ls);
    }
    lp[b] = (float)s;
  }
}

void glow_gaussian_logp_backward(const float *z, const float *mean, const float *logs,
                                 const float *dlp, float *dz, float *dmean, float *dlogs,
                                 size_t n, size_t d) {
#pragma omp parallel for if (n * d > 65536)
  for (size_t b = 0; b < n; b++) {
    float g = dlp[b];
    for (size_t i = b * d; i < (b + 1) * d; i++) {
      float m = mean ? mean[i] : 0.0f, ls = logs ? logs[i] : 0.0f;
      float e = z[i] - m, iv = expf(-2.0f * ls);
      float gz = -g * e * iv;
      if (dz) dz[i] = gz;
      if (dmean) dmean[i] -= gz;
      if (dlogs) dlogs[i] += g * (e * e * iv - 1.0f);
    }
  }
}

void glow_gaussian_sample(const float *mean, const float *logs, float t, float *z, size_t count,
                          glow_rng *r) {
  glow_randn(r, z, count, 1.0f);
  for (size_t i = 0; i < count; i++) {
    float m = mean ? mean[i] : 0.0f, ls = logs ? logs[i] : 0.0f;
    z[i] = m + t * expf(ls) * z[i];
  }
}

void glow_top_prior_params(const float *base_mean, const float *base_logs, const float *cls,
                           const int *y, float *mean, float *logs, size_t n, size_t pix, int c) {
  for (size_t b = 0; b < n; b++)
    for (size_t p = 0; p < pix; p++)
      for (int k = 0; k < c; k++) {
        size_t e = p * c + k, i = (b * pix + p) * c + k;
        float m = base_mean ? base_mean[e] : 0.0f, ls = base_logs ? base_logs[e] : 0.0f;
        if (cls) {
          m += cls[(size_t)y[b] * 2 * c + k];
          ls += cls[(size_t)y[b] * 2 * c + c + k];
        }
        mean[i] = m;
        logs[i] = ls;
      }
}

void glow_top_prior_backward(const float *dmean, const float *dlogs, const int *y,
                             float *dbase_mean, float *dbase_logs, float *dcls, size_t n,
                             size_t pix, int c) {
  for (size_t b = 0; b < n; b++)
    for (size_t p = 0; p < pix; p++)
      for (int k = 0; k < c; k++) {
        size_t e = p * c + k, i = (b * pix + p) * c + k;
        if (dbase_mean) dbase_mean[e] += dmean[i];
        if (dbase_logs) dbase_logs[e] += dlogs[i];
        if (dcls) {
          dcls[(size_t)y[b] * 2 * c + k] += dmean[i];
          dcls[(size_t)y[b] * 2 * c + c + k] += dlogs[i];
        }
      }
}

void glow_classifier_forward(const float *z, const float *w, const float *b, float *logits,
                             size_t n, size_t pix, int c, int k) {
  float feat[c];
  for (size_t i = 0; i < n; i++) {
    for (int ch = 0; ch < c; ch++) feat[ch] = 0;
    for (size_t p = 0; p < pix; p++)
      for (int ch = 0; ch < c; ch++) feat[ch] += z[(i * pix + p) * c + ch];
    for (int ch = 0; ch < c; ch++) feat[ch] /= (float)pix;
    for (int j = 0; j < k; j++) {
      double s = b ? b[j] : 0.0;
      for (int ch = 0; ch < c; ch++) s += (double)feat[ch] * w[ch * k + j];
      logits[i * k + j] = (float)s;
    }
  }
}

void glow_classifier_backward(const float *z, const float *w, const float *dlogits, float *dz,
                              float *dw, float *db, size_t n, size_t pix, int c, int k) {
  float feat[c], dfeat[c];
  for (size_t i = 0; i < n; i++) {
    for (int ch = 0; ch < c; ch++) feat[ch] = 0;
    for (size_t p = 0; p < pix; p++)
      for (int ch = 0; ch < c; ch++) feat[ch] += z[(i * pix + p) * c + ch];
    for (int ch = 0; ch < c; ch++) {
      feat[ch] /= (float)pix;
      double s = 0;
      for (int j = 0; j < k; j++) {
        float g = dlogits[i * k + j];
        if (dw) dw[ch * k + j] += g * feat[ch];
        s += (double)g * w[ch * k + j];
      }
      dfeat[ch] = (float)(s / (double)pix);
    }
    if (db)
      for (int j = 0; j < k; j++) db[j] += dlogits[i * k + j];
    if (dz)
      for (size_t p = 0; p < pix; p++)
        for (int ch = 0; ch < c; ch++) dz[(i * pix + p) * c + ch] = dfeat[ch];
  }
}

double glow_log_softmax_xent(const float *logits, const int *y, float *logp, float *dlogits,
                             float scale, size_t n, int k) {
  double total = 0;
  for (size_t i = 0; i < n; i++) {
    const float *l = logits + i * k;
    double mx = l[0], s = 0;
    for (int j = 1; j < k; j++)
      if (l[j] > mx) mx = l[j];
    for (int j = 0; j < k; j++) s += exp(l[j] - mx);
    double lse = mx + log(s);
    for (int j = 0; j < k; j++) {
      double lp = l[j] - lse;
      if (logp) logp[i * k + j] = (float)lp;
      if (dlogits && y)
        dlogits[i * k + j] = (float)(scale * (exp(lp) - (j == y[i])) / (double)n);
    }
    if (y) total -= l[y[i]] - lse;
  }
  return n ? total / (double)n : 0.0;
}
