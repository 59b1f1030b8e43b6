/*
 * linalg.c -- the general linear-algebra ops over raw float pointers:
 *
 *   glow_matmul      batched matrix products with broadcast (and reduced)
 *                    operands, through glow_sgemm
 *   glow_conv_*      stride-1 2D convolution with any odd kernel, padding
 *                    and dilation: im2col of a few images at a time + sgemm,
 *                    and direct-loop references for the tests
 *   avg_pool2, upsample2 (nearest, bilinear) and their adjoints
 *
 * conv.c keeps the fast "same" 1x1 / 3x3 kernels of the built-in layers;
 * these are the building blocks of networks written in Lua.
 *
 * Threads: a batch of small products runs one product per OpenMP thread,
 * each a single-threaded sgemm (the OpenMP build of OpenBLAS runs inside a
 * parallel region on the calling thread); large products, and the
 * convolution's products, run one after another on OpenBLAS's own threads,
 * so the two never oversubscribe the cores. Every result depends on the
 * thread count only.
 */
#include "glow.h"

#include <stdlib.h>
#include <string.h>

/* a product of at most this many multiply-adds is run one per thread */
#define GLOW_MATMUL_SMALL ((double)(1 << 24))
/* largest im2col buffer, in floats, before the batch is cut into chunks */
#define GLOW_CONV_COL_BUDGET ((size_t)1 << 22)
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

/* ------------------------------------------------------------------ conv */
void glow_conv_out_size(const glow_conv_geom *g, int64_t *ho, int64_t *wo) {
  *ho = (int64_t)g->h + 2 * (int64_t)g->pad_h - (int64_t)g->dil * (g->kh - 1);
  *wo = (int64_t)g->w + 2 * (int64_t)g->pad_w - (int64_t)g->dil * (g->kw - 1);
}

/* col {nb * ho * wo, kh * kw * cin}: row (b, oi, oj) holds the taps (di, dj) of
 * that output pixel, each cin channels, zero where a tap falls in the padding */
static void im2col(const glow_conv_geom *g, const float *x, float *col, int nb, int ho, int wo) {
  int h = g->h, w = g->w, cin = g->cin;
  size_t kk = (size_t)g->kh * g->kw * cin;
#pragma omp parallel for collapse(2) if ((size_t)nb * ho * wo * kk > GLOW_PAR_MIN)
  for (int b = 0; b < nb; b++)
    for (int oi = 0; oi < ho; oi++)
      for (int oj = 0; oj < wo; oj++) {
        float *row = col + (((size_t)b * ho + oi) * wo + oj) * kk;
        for (int di = 0; di < g->kh; di++) {
          int ii = oi - g->pad_h + di * g->dil;
          for (int dj = 0; dj < g->kw; dj++) {
            int jj = oj - g->pad_w + dj * g->dil;
            float *dst = row + ((size_t)di * g->kw + dj) * cin;
            if (ii < 0 || ii >= h || jj < 0 || jj >= w)
              memset(dst, 0, sizeof(float) * cin);
            else
              memcpy(dst, x + (((size_t)b * h + ii) * w + jj) * cin, sizeof(float) * cin);
          }
        }
      }
}

/* the adjoint of im2col, dx overwritten: each input pixel gathers the taps
 * that read it (race-free over input pixels) */
static void col2im(const glow_conv_geom *g, const float *col, float *dx, int nb, int ho, int wo) {
  int h = g->h, w = g->w, cin = g->cin;
  size_t kk = (size_t)g->kh * g->kw * cin;
#pragma omp parallel for collapse(2) if ((size_t)nb * h * w * kk > GLOW_PAR_MIN)
  for (int b = 0; b < nb; b++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w; j++) {
        float *dst = dx + (((size_t)b * h + i) * w + j) * cin;
        memset(dst, 0, sizeof(float) * cin);
        for (int di = 0; di < g->kh; di++) {
          int oi = i + g->pad_h - di * g->dil;
          if (oi < 0 || oi >= ho) continue;
          for (int dj = 0; dj < g->kw; dj++) {
            int oj = j + g->pad_w - dj * g->dil;
            if (oj < 0 || oj >= wo) continue;
            const float *src =
                col + (((size_t)b * ho + oi) * wo + oj) * kk + ((size_t)di * g->kw + dj) * cin;
            for (int c = 0; c < cin; c++) dst[c] += src[c];
          }
        }
      }
}

/* images per im2col chunk */
static int conv_chunk(const glow_conv_geom *g, int64_t ho, int64_t wo) {
  size_t pix = (size_t)ho * wo, per = pix * g->kh * g->kw * g->cin;
  size_t c = per ? GLOW_CONV_COL_BUDGET / per : (size_t)g->n;
  if (pix && c > (size_t)0x7fffffff / pix) c = (size_t)0x7fffffff / pix; /* sgemm's int m */
  if (c < 1) c = 1;
  if (c > (size_t)g->n) c = (size_t)g->n;
  return (int)c;
}

/* a 1x1 kernel without padding reads x itself: no im2col */
static int conv_is_plain(const glow_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->pad_h == 0 && g->pad_w == 0;
}

int glow_conv_forward(const glow_conv_geom *g, const float *x, const float *wt, const float *b,
                      float *y) {
  int64_t ho, wo;
  glow_conv_out_size(g, &ho, &wo);
  size_t pix = (size_t)ho * wo, xpix = (size_t)g->h * g->w, rows = (size_t)g->n * pix;
  int kk = g->kh * g->kw * g->cin, cout = g->cout, chunk = conv_chunk(g, ho, wo);
  int plain = conv_is_plain(g);
  float *col = plain ? NULL : glow_alloc_uninit((size_t)chunk * pix * kk);
  if (!plain && !col) return GLOW_ENOMEM;
  for (int b0 = 0; b0 < g->n; b0 += chunk) {
    int nb = g->n - b0 < chunk ? g->n - b0 : chunk;
    const float *src = x + (size_t)b0 * xpix * g->cin;
    if (!plain) {
      im2col(g, src, col, nb, (int)ho, (int)wo);
      src = col;
    }
    glow_sgemm(0, 0, (int)(nb * pix), cout, kk, 1.0f, src, kk, wt, cout, 0.0f,
               y + (size_t)b0 * pix * cout, cout);
  }
  glow_free(col);
  if (b) {
#pragma omp parallel for if (rows * cout > GLOW_PAR_MIN)
    for (size_t r = 0; r < rows; r++)
      for (int o = 0; o < cout; o++) y[r * cout + o] += b[o];
  }
  return GLOW_OK;
}

int glow_conv_backward(const glow_conv_geom *g, const float *x, const float *wt, const float *dy,
                       float *dx, float *dwt, float *db) {
  int64_t ho, wo;
  glow_conv_out_size(g, &ho, &wo);
  size_t pix = (size_t)ho * wo, xpix = (size_t)g->h * g->w, rows = (size_t)g->n * pix;
  int kk = g->kh * g->kw * g->cin, cout = g->cout, chunk = conv_chunk(g, ho, wo);
  int plain = conv_is_plain(g);
  /* everything that can fail first: no partial accumulation on failure */
  float *col = plain || (!dx && !dwt) ? NULL : glow_alloc_uninit((size_t)chunk * pix * kk);
  double *s = db ? malloc(sizeof(double) * (size_t)cout) : NULL;
  if ((!plain && (dx || dwt) && !col) || (db && !s)) {
    glow_free(col);
    free(s);
    return GLOW_ENOMEM;
  }
  if (db) {
    glow_channel_reduce(dy, NULL, 0, NULL, NULL, s, NULL, rows, cout);
    for (int o = 0; o < cout; o++) db[o] += (float)s[o];
    free(s);
  }
  for (int b0 = 0; b0 < g->n && (dx || dwt); b0 += chunk) {
    int nb = g->n - b0 < chunk ? g->n - b0 : chunk, m = (int)(nb * pix);
    const float *xb = x + (size_t)b0 * xpix * g->cin, *dyb = dy + (size_t)b0 * pix * cout;
    float *dxb = dx ? dx + (size_t)b0 * xpix * g->cin : NULL;
    if (plain) {
      if (dwt) glow_sgemm(1, 0, kk, cout, m, 1.0f, xb, kk, dyb, cout, 1.0f, dwt, cout);
      if (dxb) glow_sgemm(0, 1, m, kk, cout, 1.0f, dyb, cout, wt, cout, 0.0f, dxb, kk);
      continue;
    }
    if (dwt) {
      im2col(g, xb, col, nb, (int)ho, (int)wo);
      glow_sgemm(1, 0, kk, cout, m, 1.0f, col, kk, dyb, cout, 1.0f, dwt, cout);
    }
    if (dxb) {
      glow_sgemm(0, 1, m, kk, cout, 1.0f, dyb, cout, wt, cout, 0.0f, col, kk);
      col2im(g, col, dxb, nb, (int)ho, (int)wo);
    }
  }
  glow_free(col);
  return GLOW_OK;
}

void glow_conv_forward_naive(const glow_conv_geom *g, const float *x, const float *wt,
                             const float *b, float *y) {
  int64_t ho, wo;
  glow_conv_out_size(g, &ho, &wo);
  int h = g->h, w = g->w, cin = g->cin, cout = g->cout;
  for (int bi = 0; bi < g->n; bi++)
    for (int64_t oi = 0; oi < ho; oi++)
      for (int64_t oj = 0; oj < wo; oj++)
        for (int o = 0; o < cout; o++) {
          double s = b ? b[o] : 0.0;
          for (int di = 0; di < g->kh; di++)
            for (int dj = 0; dj < g->kw; dj++) {
              int64_t ii = oi - g->pad_h + (int64_t)di * g->dil;
              int64_t jj = oj - g->pad_w + (int64_t)dj * g->dil;
              if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
              for (int c = 0; c < cin; c++)
                s += (double)x[(((size_t)bi * h + ii) * w + jj) * cin + c] *
                     wt[(((size_t)di * g->kw + dj) * cin + c) * cout + o];
            }
          y[(((size_t)bi * ho + oi) * wo + oj) * cout + o] = (float)s;
        }
}

void glow_conv_backward_naive(const glow_conv_geom *g, const float *x, const float *wt,
                              const float *dy, float *dx, float *dwt, float *db) {
  int64_t ho, wo;
  glow_conv_out_size(g, &ho, &wo);
  int h = g->h, w = g->w, cin = g->cin, cout = g->cout;
  if (dx) memset(dx, 0, sizeof(float) * (size_t)g->n * h * w * cin);
  for (int bi = 0; bi < g->n; bi++)
    for (int64_t oi = 0; oi < ho; oi++)
      for (int64_t oj = 0; oj < wo; oj++)
        for (int o = 0; o < cout; o++) {
          float d = dy[(((size_t)bi * ho + oi) * wo + oj) * cout + o];
          if (db) db[o] += d;
          for (int di = 0; di < g->kh; di++)
            for (int dj = 0; dj < g->kw; dj++) {
              int64_t ii = oi - g->pad_h + (int64_t)di * g->dil;
              int64_t jj = oj - g->pad_w + (int64_t)dj * g->dil;
              if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
              for (int c = 0; c < cin; c++) {
                size_t xi = (((size_t)bi * h + ii) * w + jj) * cin + c;
                size_t wi = (((size_t)di * g->kw + dj) * cin + c) * cout + o;
                if (dwt) dwt[wi] += d * x[xi];
                if (dx) dx[xi] += d * wt[wi];
              }
            }
        }
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
