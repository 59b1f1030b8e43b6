/*
 * linalg.c -- the general linear-algebra ops over raw float pointers:
 *
 *   glow_matmul      batched matrix products with broadcast (and reduced)
 *                    operands, through glow_sgemm
 *   avg_pool2, upsample2 (nearest, bilinear) and their adjoints
 *
 * (The convolution, every geometry of it, is conv.c's.)
 *
 * Threads: a batch of small products runs one product per OpenMP thread,
 * each a single-threaded sgemm (the OpenMP build of OpenBLAS runs inside a
 * parallel region on the calling thread); large products run one after
 * another on OpenBLAS's own threads, so the two never oversubscribe the
 * cores. Every result depends on the thread count only.
 */
#include "glow.h"

#include <stdlib.h>
#include <string.h>

/* a product of at most this many multiply-adds is run one per thread */
#define GLOW_MATMUL_SMALL ((double)(1 << 24))
/* elementwise loops run in parallel above this many floats */
#define GLOW_PAR_MIN ((size_t)65536)

/* ------------------------------------------------------------------ matmul */
int glow_matmul(const float *a, const int64_t *ai, int ta, const float *b, const int64_t *bi,
                int tb, float *c, const int64_t *ci, int64_t nb, int64_t nc, int m, int n, int k) {
  size_t sa = (size_t)m * k, sb = (size_t)k * n, sc = (size_t)m * n;
  int lda = ta ? m : k, ldb = tb ? k : n;
  int64_t *start = NULL, *order = NULL;
  if (ci) {
    /* the products of each output matrix, in the order of i (a counting sort) */
    start = calloc((size_t)nc + 1, sizeof *start);
    order = malloc(sizeof *order * (size_t)(nb ? nb : 1));
    if (!start || !order) {
      free(start);
      free(order);
      return GLOW_ENOMEM;
    }
    for (int64_t i = 0; i < nb; i++) start[ci[i] + 1]++;
    for (int64_t t = 0; t < nc; t++) start[t + 1] += start[t];
    int64_t *fill = calloc((size_t)nc + 1, sizeof *fill);
    if (!fill) {
      free(start);
      free(order);
      return GLOW_ENOMEM;
    }
    for (int64_t i = 0; i < nb; i++) order[start[ci[i]] + fill[ci[i]]++] = i;
    free(fill);
  } else {
    nc = nb;
  }
  int par = nc > 1 && (double)m * n * k <= GLOW_MATMUL_SMALL;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t t = 0; t < nc; t++) {
    float *ct = c + (size_t)t * sc;
    int64_t lo = ci ? start[t] : t, hi = ci ? start[t + 1] : t + 1;
    if (lo == hi) memset(ct, 0, sizeof(float) * sc);
    for (int64_t q = lo; q < hi; q++) {
      int64_t i = ci ? order[q] : q;
      const float *ap = a + (size_t)(ai ? ai[i] : i) * sa;
      const float *bp = b + (size_t)(bi ? bi[i] : i) * sb;
      glow_sgemm(ta, tb, m, n, k, 1.0f, ap, lda, bp, ldb, q == lo ? 0.0f : 1.0f, ct, n);
    }
  }
  free(start);
  free(order);
  return GLOW_OK;
}

/* ------------------------------------------------------------------ 2x resampling */
void glow_avg_pool2_forward(const float *x, float *y, int n, int h, int w, int c) {
  size_t rs = (size_t)2 * w * c; /* one row of x */
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * c > GLOW_PAR_MIN)
  for (int b = 0; b < n; b++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w; j++) {
        const float *p = x + (((size_t)b * 2 * h + 2 * i) * 2 * w + 2 * j) * c;
        float *q = y + (((size_t)b * h + i) * w + j) * c;
        for (int k = 0; k < c; k++) q[k] = 0.25f * ((p[k] + p[k + c]) + (p[rs + k] + p[rs + c + k]));
      }
}

/* dx[b, oi, oj] = scale * dy[b, oi/2, oj/2]: nearest upsampling times scale */
static void spread2(const float *dy, float *dx, int n, int h, int w, int c, float scale) {
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * c > GLOW_PAR_MIN / 4)
  for (int b = 0; b < n; b++)
    for (int oi = 0; oi < 2 * h; oi++)
      for (int oj = 0; oj < 2 * w; oj++) {
        const float *p = dy + (((size_t)b * h + oi / 2) * w + oj / 2) * c;
        float *q = dx + (((size_t)b * 2 * h + oi) * 2 * w + oj) * c;
        for (int k = 0; k < c; k++) q[k] = scale * p[k];
      }
}

void glow_avg_pool2_backward(const float *dy, float *dx, int n, int h, int w, int c) {
  spread2(dy, dx, n, h, w, c, 0.25f);
}

/* the two source indices and weights of output index o along an axis of
 * length len (bilinear, align_corners = False, as PyTorch computes them) */
static inline void bilinear_taps(int o, int len, int *i0, int *i1, float *w0, float *w1) {
  int i = o >> 1;
  if (o & 1) {
    *i0 = i, *w0 = 0.75f, *i1 = i + 1 < len ? i + 1 : len - 1, *w1 = 0.25f;
  } else {
    *i0 = i > 0 ? i - 1 : 0, *w0 = 0.25f, *i1 = i, *w1 = 0.75f;
  }
}

/* the adjoint's view: the four outputs along an axis that read input index i,
 * with their weights (an edge output reads i twice: it appears twice) */
static inline void bilinear_readers(int i, int len, int *o, float *wt) {
  o[0] = 2 * i, wt[0] = 0.75f;
  o[1] = 2 * i + 1, wt[1] = 0.75f;
  o[2] = i + 1 < len ? 2 * i + 2 : 2 * i + 1, wt[2] = 0.25f;
  o[3] = i > 0 ? 2 * i - 1 : 2 * i, wt[3] = 0.25f;
}

void glow_upsample2_forward(const float *x, float *y, int n, int h, int w, int c, int mode) {
  if (mode == GLOW_UPSAMPLE_NEAREST) {
    spread2(x, y, n, h, w, c, 1.0f);
    return;
  }
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * c > GLOW_PAR_MIN / 4)
  for (int b = 0; b < n; b++)
    for (int oi = 0; oi < 2 * h; oi++) {
      int r0, r1;
      float wr0, wr1;
      bilinear_taps(oi, h, &r0, &r1, &wr0, &wr1);
      const float *x0 = x + ((size_t)b * h + r0) * w * c, *x1 = x + ((size_t)b * h + r1) * w * c;
      for (int oj = 0; oj < 2 * w; oj++) {
        int c0, c1;
        float wc0, wc1;
        bilinear_taps(oj, w, &c0, &c1, &wc0, &wc1);
        float *q = y + (((size_t)b * 2 * h + oi) * 2 * w + oj) * c;
        const float *p00 = x0 + (size_t)c0 * c, *p01 = x0 + (size_t)c1 * c;
        const float *p10 = x1 + (size_t)c0 * c, *p11 = x1 + (size_t)c1 * c;
        for (int k = 0; k < c; k++)
          q[k] = wr0 * (wc0 * p00[k] + wc1 * p01[k]) + wr1 * (wc0 * p10[k] + wc1 * p11[k]);
      }
    }
}

void glow_upsample2_backward(const float *dy, float *dx, int n, int h, int w, int c, int mode) {
  size_t rs = (size_t)2 * w * c; /* one row of dy */
  if (mode == GLOW_UPSAMPLE_NEAREST) {
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * c > GLOW_PAR_MIN)
    for (int b = 0; b < n; b++)
      for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
          const float *p = dy + (((size_t)b * 2 * h + 2 * i) * 2 * w + 2 * j) * c;
          float *q = dx + (((size_t)b * h + i) * w + j) * c;
          for (int k = 0; k < c; k++) q[k] = (p[k] + p[k + c]) + (p[rs + k] + p[rs + c + k]);
        }
    return;
  }
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * c > GLOW_PAR_MIN / 16)
  for (int b = 0; b < n; b++)
    for (int i = 0; i < h; i++) {
      int orow[4], ocol[4];
      float wr[4], wc[4];
      bilinear_readers(i, h, orow, wr);
      for (int j = 0; j < w; j++) {
        bilinear_readers(j, w, ocol, wc);
        float *q = dx + (((size_t)b * h + i) * w + j) * c;
        memset(q, 0, sizeof(float) * c);
        for (int pr = 0; pr < 4; pr++) {
          const float *row = dy + ((size_t)b * 2 * h + orow[pr]) * rs;
          for (int pc = 0; pc < 4; pc++) {
            const float *p = row + (size_t)ocol[pc] * c;
            float wgt = wr[pr] * wc[pc];
            for (int k = 0; k < c; k++) q[k] += wgt * p[k];
          }
        }
      }
    }
}
