/*
 * invconv.c -- the invertible 1x1 convolution and the small dense linear
 * algebra it needs, in double: log|det|, inverse, a seeded random rotation
 * (QR of a Gaussian matrix) and LU with partial pivoting.
 *
 * Plain form: y = W x at every pixel, logdet = hw * log|det W|.
 * LU form: W = P L (U + diag(sign * exp(log_s))), logdet = hw * sum(log_s);
 * L and U are stored as full c x c matrices and masked on use, so entries
 * outside the masks never influence W and get no gradient.
 */
#include "glow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LU with partial pivoting of a copy of a; piv[i] = original row now at i */
static int lu_factor(double *a, int *piv, int c) {
  for (int i = 0; i < c; i++) piv[i] = i;
  for (int j = 0; j < c; j++) {
    int p = j;
    for (int r = j + 1; r < c; r++)
      if (fabs(a[r * c + j]) > fabs(a[p * c + j])) p = r;
    if (a[p * c + j] == 0.0) return GLOW_ESINGULAR;
    if (p != j) {
      for (int k = 0; k < c; k++) {
        double t = a[j * c + k];
        a[j * c + k] = a[p * c + k];
        a[p * c + k] = t;
      }
      int t = piv[j];
      piv[j] = piv[p];
      piv[p] = t;
    }
    for (int r = j + 1; r < c; r++) {
      double f = a[r * c + j] /= a[j * c + j];
      for (int k = j + 1; k < c; k++) a[r * c + k] -= f * a[j * c + k];
    }
  }
  return GLOW_OK;
}

int glow_slogdet(const double *a, int c, double *logabsdet, int *sign) {
  double *m = malloc(sizeof(double) * c * c);
  int *piv = malloc(sizeof(int) * (c ? c : 1));
  if (!m || !piv) {
    free(m);
    free(piv);
    return GLOW_ENOMEM;
  }
  memcpy(m, a, sizeof(double) * c * c);
  int rc = lu_factor(m, piv, c);
  double ld = 0;
  int sg = 1;
  if (rc == GLOW_OK) {
    for (int i = 0; i < c; i++) {
      double d = m[i * c + i];
      if (d < 0) sg = -sg;
      ld += log(fabs(d));
    }
    /* parity of the permutation */
    int *seen = calloc(c ? c : 1, sizeof(int));
    if (seen) {
      for (int i = 0; i < c; i++) {
        if (seen[i]) continue;
        int len = 0;
        for (int j = i; !seen[j]; j = piv[j]) {
          seen[j] = 1;
          len++;
        }
        if (len % 2 == 0) sg = -sg;
      }
      free(seen);
    }
  } else {
    ld = -INFINITY;
    sg = 0;
  }
  *logabsdet = ld;
  *sign = sg;
  free(m);
  free(piv);
  return rc;
}

int glow_inverse(const double *a, double *ainv, int c) {
  double *m = malloc(sizeof(double) * c * c);
  int *piv = malloc(sizeof(int) * (c ? c : 1));
  if (!m || !piv) {
    free(m);
    free(piv);
    return GLOW_ENOMEM;
  }
  memcpy(m, a, sizeof(double) * c * c);
  int rc = lu_factor(m, piv, c);
  if (rc == GLOW_OK) {
    /* solve (P a) X = P I column by column: L U x = e_piv */
    for (int col = 0; col < c; col++) {
      double *x = ainv; /* write column col of the inverse */
      for (int i = 0; i < c; i++) {
        double s = (piv[i] == col) ? 1.0 : 0.0;
        for (int k = 0; k < i; k++) s -= m[i * c + k] * x[k * c + col];
        x[i * c + col] = s;
      }
      for (int i = c - 1; i >= 0; i--) {
        double s = x[i * c + col];
        for (int k = i + 1; k < c; k++) s -= m[i * c + k] * x[k * c + col];
        x[i * c + col] = s / m[i * c + i];
      }
    }
  }
  free(m);
  free(piv);
  return rc;
}

void glow_random_rotation(double *q, int c, uint64_t seed) {
  glow_rng r;
  glow_rng_seed(&r, seed);
  float *g = glow_alloc((size_t)c * c);
  if (!g) {
    for (int i = 0; i < c * c; i++) q[i] = (i / c == i % c);
    return;
  }
  glow_randn(&r, g, (size_t)c * c, 1.0f);
  for (int i = 0; i < c * c; i++) q[i] = g[i];
  glow_free(g);
  /* modified Gram-Schmidt over the columns, twice for orthogonality */
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < c; j++) {
      for (int k = 0; k < j; k++) {
        double d = 0;
        for (int i = 0; i < c; i++) d += q[i * c + k] * q[i * c + j];
        for (int i = 0; i < c; i++) q[i * c + j] -= d * q[i * c + k];
      }
      double nrm = 0;
      for (int i = 0; i < c; i++) nrm += q[i * c + j] * q[i * c + j];
      nrm = sqrt(nrm);
      for (int i = 0; i < c; i++) q[i * c + j] /= nrm;
    }
}

int glow_lu(const double *w, int *perm, double *l, double *u, int c) {
  double *m = malloc(sizeof(double) * c * c);
  int *piv = malloc(sizeof(int) * (c ? c : 1));
  if (!m || !piv) {
    free(m);
    free(piv);
    return GLOW_ENOMEM;
  }
  memcpy(m, w, sizeof(double) * c * c);
  int rc = lu_factor(m, piv, c);
  for (int i = 0; i < c; i++) {
    for (int j = 0; j < c; j++) {
      l[i * c + j] = i > j ? m[i * c + j] : (i == j ? 1.0 : 0.0);
      u[i * c + j] = i <= j ? m[i * c + j] : 0.0;
    }
    perm[piv[i]] = i; /* row piv[i] of w is row i of L U */
  }
  free(m);
  free(piv);
  return rc;
}

/* ------------------------------------------------------------------ kernels */
void glow_invconv_forward(const float *x, const float *w, float *y, size_t rows, int c) {
  glow_sgemm(0, 1, (int)rows, c, c, 1.0f, x, c, w, c, 0.0f,
              y, c);
}

void glow_invconv_inverse(const float *y, const float *winv, float *x, size_t rows, int c) {
  glow_sgemm(0, 1, (int)rows, c, c, 1.0f, y, c, winv, c,
              0.0f, x, c);
}

void glow_invconv_backward(const float *x, const float *w, const float *winv, const float *dy,
                           float *dx, float *dw, float dlogdet_scale, size_t rows, int c) {
  if (dx)
    glow_sgemm(0, 0, (int)rows, c, c, 1.0f, dy, c, w, c,
                0.0f, dx, c);
  if (dw) {
    glow_sgemm(1, 0, c, c, (int)rows, 1.0f, dy, c, x, c,
                1.0f, dw, c);
    if (winv)
      for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) dw[i * c + j] += dlogdet_scale * winv[j * c + i];
  }
}

void glow_lu_weight(const float *l, const float *u, const float *log_s, const float *sign,
                    const int *perm, float *w, int c) {
  /* W[i] = M[perm[i]] */
  for (int i = 0; i < c; i++) {
    int r = perm[i];
    for (int j = 0; j < c; j++) {
      double s = 0;
      for (int k = 0; k <= r && k <= j; k++) {
        double a = k == r ? 1.0 : l[r * c + k];
        double b = k == j ? sign[k] * exp(log_s[k]) : u[k * c + j];
        s += a * b;
      }
      w[i * c + j] = (float)s;
    }
  }
}

void glow_lu_weight_backward(const float *l, const float *u, const float *log_s,
                             const float *sign, const int *perm, const float *dw, float *dl,
                             float *du, float *dlog_s, float dlogdet_scale, int c) {
  double *dm = calloc((size_t)c * c, sizeof(double));
  if (!dm) return;
  for (int i = 0; i < c; i++)
    for (int j = 0; j < c; j++) dm[(size_t)perm[i] * c + j] = dw[i * c + j];
  /* dA = dM B^T (strict lower part), dB = A^T dM (upper part) */
  for (int i = 0; i < c; i++)
    for (int j = 0; j < i; j++) {
      double s = 0;
      for (int k = j; k < c; k++) {
        double b = k == j ? sign[j] * exp(log_s[j]) : u[j * c + k];
        s += dm[i * c + k] * b;
      }
      dl[i * c + j] += (float)s;
    }
  for (int i = 0; i < c; i++)
    for (int j = i; j < c; j++) {
      double s = 0;
      for (int k = i; k < c; k++) {
        double a = k == i ? 1.0 : l[k * c + i];
        s += a * dm[k * c + j];
      }
      if (j > i)
        du[i * c + j] += (float)s;
      else
        dlog_s[i] += (float)(s * sign[i] * exp(log_s[i]) + dlogdet_scale);
    }
  free(dm);
}
