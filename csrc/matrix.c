/*
 * matrix.c -- small dense square matrices in batches ({..., n, n}, float32
 * in and out): an LU factorization with partial pivoting in double, and
 * from it the log-determinant with its sign, the inverse and the solution
 * of A X = B. Each matrix of the batch is independent: threads take whole
 * matrices, so results do not depend on the thread count.
 *
 * A singular matrix (a zero pivot) gives log|det| = -inf with sign 0; its
 * inverse and solve fill NaN and report GLOW_ESINGULAR, so the binding can
 * name the matrix.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glow.h"

/* in place: a = P L U (L unit lower and U in a), piv the row order; the
 * permutation's parity in *odd. Returns 0, or 1 for a zero pivot. */
static int lu(double *a, int64_t *piv, int64_t n, int *odd) {
  *odd = 0;
  for (int64_t i = 0; i < n; i++) piv[i] = i;
  for (int64_t j = 0; j < n; j++) {
    int64_t p = j;
    double best = fabs(a[j * n + j]);
    for (int64_t r = j + 1; r < n; r++)
      if (fabs(a[r * n + j]) > best) best = fabs(a[r * n + j]), p = r;
    if (best == 0.0 || best != best) return 1;
    if (p != j) {
      for (int64_t k = 0; k < n; k++) {
        double t = a[j * n + k];
        a[j * n + k] = a[p * n + k];
        a[p * n + k] = t;
      }
      int64_t t = piv[j];
      piv[j] = piv[p];
      piv[p] = t;
      *odd ^= 1;
    }
    for (int64_t r = j + 1; r < n; r++) {
      double f = a[r * n + j] /= a[j * n + j];
      for (int64_t k = j + 1; k < n; k++) a[r * n + k] -= f * a[j * n + k];
    }
  }
  return 0;
}

/* x (n x k, row-major) = A^-1 b given A's LU and pivots */
static void lu_solve(const double *a, const int64_t *piv, int64_t n, const double *b, double *x, int64_t k) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t c = 0; c < k; c++) x[i * k + c] = b[piv[i] * k + c];
  for (int64_t i = 0; i < n; i++) /* L y = P b */
    for (int64_t r = 0; r < i; r++) {
      double f = a[i * n + r];
      for (int64_t c = 0; c < k; c++) x[i * k + c] -= f * x[r * k + c];
    }
  for (int64_t i = n - 1; i >= 0; i--) { /* U x = y */
    for (int64_t r = i + 1; r < n; r++) {
      double f = a[i * n + r];
      for (int64_t c = 0; c < k; c++) x[i * k + c] -= f * x[r * k + c];
    }
    for (int64_t c = 0; c < k; c++) x[i * k + c] /= a[i * n + i];
  }
}

/* one batch loop for the three: mode 0 slogdet (ld, sign), 1 inverse (x),
 * 2 solve (x = A^-1 b, b {n, k} per matrix) */
static int batch(int mode, const float *A, const float *B, float *X, float *ld, float *sign, int64_t batch_n,
                 int64_t n, int64_t k) {
  int rc = GLOW_OK;
  int64_t cols = mode == 1 ? n : k;
#pragma omp parallel if (batch_n > 1 && batch_n * n * n * n >= 262144)
  {
    double *a = malloc(sizeof(double) * (size_t)(n * n + 2 * n * cols + 1));
    int64_t *piv = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!a || !piv) {
#pragma omp atomic write
      rc = GLOW_ENOMEM;
    }
#pragma omp for schedule(static)
    for (int64_t m = 0; m < batch_n; m++) {
      if (!a || !piv) continue;
      double *b = a + n * n, *x = b + n * cols;
      for (int64_t i = 0; i < n * n; i++) a[i] = A[m * n * n + i];
      int odd, singular = lu(a, piv, n, &odd);
      if (mode == 0) {
        double s = odd ? -1.0 : 1.0, l = 0.0;
        if (singular) {
          s = 0.0, l = -INFINITY;
        } else {
          for (int64_t i = 0; i < n; i++) {
            double d = a[i * n + i];
            if (d < 0) s = -s;
            l += log(fabs(d));
          }
        }
        ld[m] = (float)l, sign[m] = (float)s;
        continue;
      }
      float *xm = X + m * n * cols;
      if (singular) {
        for (int64_t i = 0; i < n * cols; i++) xm[i] = NAN;
#pragma omp atomic write
        rc = GLOW_ESINGULAR;
        continue;
      }
      if (mode == 1) {
        memset(b, 0, sizeof(double) * (size_t)(n * n));
        for (int64_t i = 0; i < n; i++) b[i * n + i] = 1.0;
      } else {
        for (int64_t i = 0; i < n * k; i++) b[i] = B[m * n * k + i];
      }
      lu_solve(a, piv, n, b, x, cols);
      for (int64_t i = 0; i < n * cols; i++) xm[i] = (float)x[i];
    }
    free(a);
    free(piv);
  }
  return rc;
}

int glow_batch_slogdet(const float *A, float *logabsdet, float *sign, int64_t batch_n, int64_t n) {
  return batch(0, A, NULL, NULL, logabsdet, sign, batch_n, n, 0);
}

int glow_batch_inverse(const float *A, float *X, int64_t batch_n, int64_t n) {
  return batch(1, A, NULL, X, NULL, NULL, batch_n, n, n);
}

int glow_batch_solve(const float *A, const float *B, float *X, int64_t batch_n, int64_t n, int64_t k) {
  return batch(2, A, B, X, NULL, NULL, batch_n, n, k);
}
