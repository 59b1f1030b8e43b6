/*
 * conv.c -- zero-padded stride-1 2D convolution over NHWC images, k = 1 or 3.
 *
 * The fast path lowers a chunk of images to an im2col matrix
 * {rows, k*k*cin} (a 1x1 conv uses x itself) and multiplies it by the weight
 * {k*k*cin, cout} with OpenBLAS sgemm. The backward pass is the two
 * transposed products plus col2im. The naive references beside them are
 * direct loops, used by the tests to check the fast path.
 * Also here: the per-channel exp(factor*g) output scale of ZeroConv2d.
 */
#include "glow.h"

#include <math.h>
#include <string.h>

/* largest im2col buffer, in floats, before the batch is cut into chunks */
#define GLOW_COL_BUDGET ((size_t)1 << 22)
/* rows per sgemm call for 1x1 convolutions */
#define GLOW_ROW_BLOCK ((size_t)2048)

static void im2col(const float *x, float *col, int n, int h, int w, int cin, int k) {
  int p = k / 2;
  size_t kk = (size_t)k * k * cin;
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * kk > 65536)
  for (int b = 0; b < n; b++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w; j++) {
        float *row = col + (((size_t)b * h + i) * w + j) * kk;
        for (int di = 0; di < k; di++)
          for (int dj = 0; dj < k; dj++) {
            int ii = i + di - p, jj = j + dj - p;
            float *dst = row + ((size_t)di * k + dj) * cin;
            if (ii < 0 || ii >= h || jj < 0 || jj >= w)
              memset(dst, 0, sizeof(float) * cin);
            else
              memcpy(dst, x + (((size_t)b * h + ii) * w + jj) * cin, sizeof(float) * cin);
          }
      }
}

/* dx (overwritten) from dcol */
static void col2im(const float *col, float *dx, int n, int h, int w, int cin, int k) {
  int p = k / 2;
  size_t kk = (size_t)k * k * cin;
  /* gather form: each output pixel sums the columns that read it, so the
   * loop over output pixels is race-free */
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * kk > 65536)
  for (int b = 0; b < n; b++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w; j++) {
        float *dst = dx + (((size_t)b * h + i) * w + j) * cin;
        memset(dst, 0, sizeof(float) * cin);
        for (int di = 0; di < k; di++)
          for (int dj = 0; dj < k; dj++) {
            int oi = i - di + p, oj = j - dj + p; /* output pixel that read (i, j) via (di, dj) */
            if (oi < 0 || oi >= h || oj < 0 || oj >= w) continue;
            const float *src =
                col + (((size_t)b * h + oi) * w + oj) * kk + ((size_t)di * k + dj) * cin;
            for (int ci = 0; ci < cin; ci++) dst[ci] += src[ci];
          }
      }
}

static int chunk_images(int n, int h, int w, int cin, int k) {
  size_t per = (size_t)h * w * k * k * cin;
  size_t c = per ? GLOW_COL_BUDGET / per : (size_t)n;
  if (c < 1) c = 1;
  if (c > (size_t)n) c = (size_t)n;
  return (int)c;
}

/* The 3x3 case takes one of two lowerings, whichever needs the smaller buffer:
 *  - im2col (cin <= cout): col = im2col(x) {rows, 9 cin}; y = col W.
 *  - taps (cout < cin): z = x Wf {rows, 9 cout} with Wf[ci, t cout + co] =
 *    W[8 - t, ci, co] (the taps flipped), then y = col2im(z): each output
 *    pixel gathers its 9 taps. A ZeroConv with few output channels then
 *    runs one well-shaped product instead of a huge im2col with N = cout.
 * The backward passes mirror them. */
static float *flip_taps(const float *wt, int cin, int cout, int k) {
  int kk = k * k;
  float *wf = glow_alloc_uninit((size_t)cin * kk * cout);
  if (!wf) return NULL;
  for (int t = 0; t < kk; t++)
    for (int ci = 0; ci < cin; ci++)
      memcpy(wf + (size_t)ci * kk * cout + (size_t)t * cout,
             wt + ((size_t)(kk - 1 - t) * cin + ci) * cout, sizeof(float) * cout);
  return wf;
}

static void add_bias(float *y, const float *b, size_t rows, int cout) {
#pragma omp parallel for if (rows * cout > 65536)
  for (size_t r = 0; r < rows; r++)
    for (int o = 0; o < cout; o++) y[r * cout + o] += b[o];
}

/* Few input channels (k*k*cin <= 64): a product with so short an inner
 * dimension is bound by memory traffic (sgemm zeroes C in one pass and
 * accumulates in another), so each output pixel is computed directly into
 * local accumulators and written once. Bias included.
 *
 * The accumulators are GCC vectors of the width this copy of the core was
 * compiled for (csrc/isa.c): VW = 16 floats with AVX-512, 8 with AVX, 4 with
 * SSE. (A vector wider than the machine's registers is not split into
 * registers by GCC but kept in memory: a 16-float accumulator in an
 * x86-64-v3 build ran this kernel at a fraction of the speed.) A block of
 * PB neighbouring output pixels shares each weight vector it loads, so one
 * load feeds PB multiply-adds instead of one: NA vectors (a tile of TILE =
 * NA * VW output channels) for each of PB pixels, NA * PB accumulators,
 * sized to the register file (32 registers with AVX-512, 16 below). Pixels
 * whose taps reach past the image's left or right edge go one at a time. */
#if defined(__AVX512F__)
#define VW 16
#define PB 4
#elif defined(__AVX__)
#define VW 8
#define PB 3
#else
#define VW 4
#define PB 3
#endif
#define NA 4
typedef float vf __attribute__((vector_size(VW * sizeof(float)), aligned(4)));
enum { TILE = VW * NA };

/* output pixels j0 .. j0 + npx - 1 of row i of image bi, channels o0 .. o0 +
 * TILE - 1; npx is PB (every tap inside the row) or 1 (taps checked) */
static inline __attribute__((always_inline)) void direct_tile(const float *x, const float *wt,
                                                              const float *b, float *y, int bi,
                                                              int i, int j0, const int npx, int h,
                                                              int w, int cin, int cout, int k,
                                                              int o0) {
  int p = k / 2;
  vf acc[PB][NA];
#pragma GCC unroll 8
  for (int q = 0; q < npx; q++)
#pragma GCC unroll 8
    for (int a = 0; a < NA; a++) acc[q][a] = b ? *(const vf *)(b + o0 + a * VW) : (vf){0};
  for (int di = 0; di < k; di++) {
    int ii = i + di - p;
    if (ii < 0 || ii >= h) continue;
    for (int dj = 0; dj < k; dj++) {
      int jj = j0 + dj - p;
      if (npx == 1 && (jj < 0 || jj >= w)) continue;
      const float *xp = x + (((size_t)bi * h + ii) * w + jj) * cin;
      const float *wp = wt + ((size_t)di * k + dj) * cin * cout + o0;
      for (int ci = 0; ci < cin; ci++) {
        vf wv[NA];
#pragma GCC unroll 8
        for (int a = 0; a < NA; a++) wv[a] = *(const vf *)(wp + (size_t)ci * cout + a * VW);
#pragma GCC unroll 8
        for (int q = 0; q < npx; q++) {
          float xv = xp[(size_t)q * cin + ci];
#pragma GCC unroll 8
          for (int a = 0; a < NA; a++) acc[q][a] += xv * wv[a];
        }
      }
    }
  }
  float *yp = y + (((size_t)bi * h + i) * w + j0) * cout + o0;
#pragma GCC unroll 8
  for (int q = 0; q < npx; q++)
#pragma GCC unroll 8
    for (int a = 0; a < NA; a++) *(vf *)(yp + (size_t)q * cout + a * VW) = acc[q][a];
}

static void conv3_direct(const float *x, const float *wt, const float *b, float *y, int n, int h,
                         int w, int cin, int cout, int k) {
  int p = k / 2;
  /* the channels past the last full tile, zero-padded to VW per group:
   * wpad[((tap * cin + ci) * nsub + sb) * VW + j] (k*k*cin <= 64 taps, fewer
   * than TILE channels: at most 64 * TILE floats) */
  int orem = cout / TILE * TILE, nsub = (cout - orem + VW - 1) / VW;
  float wpad[64 * TILE];
  for (int t = 0; t < k * k * cin; t++)
    for (int sb = 0; sb < nsub; sb++)
      for (int j = 0; j < VW; j++) {
        int o = orem + VW * sb + j;
        wpad[((size_t)t * nsub + sb) * VW + j] = o < cout ? wt[(size_t)t * cout + o] : 0.0f;
      }
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * cout * k * k * cin > 262144)
  for (int bi = 0; bi < n; bi++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w;) {
        /* a block of PB pixels whose taps all lie inside the row, or one pixel */
        int npx = j - p >= 0 && j + PB - 1 + p <= w - 1 ? PB : 1;
        for (int o0 = 0; o0 + TILE <= cout; o0 += TILE) {
          if (npx == PB)
            direct_tile(x, wt, b, y, bi, i, j, PB, h, w, cin, cout, k, o0);
          else
            direct_tile(x, wt, b, y, bi, i, j, 1, h, w, cin, cout, k, o0);
        }
        /* the remaining channels, VW at a time, from the zero-padded copy */
        for (int q = 0; q < npx; q++) {
          float *yp = y + (((size_t)bi * h + i) * w + j + q) * cout;
          for (int sb = 0; sb < nsub; sb++) {
            int o = orem + VW * sb, nt = cout - o < VW ? cout - o : VW;
            vf a = {0};
            if (b) memcpy(&a, b + o, sizeof(float) * nt);
            for (int di = 0; di < k; di++) {
              int ii = i + di - p;
              if (ii < 0 || ii >= h) continue;
              for (int dj = 0; dj < k; dj++) {
                int jj = j + q + dj - p;
                if (jj < 0 || jj >= w) continue;
                const float *xp = x + (((size_t)bi * h + ii) * w + jj) * cin;
                const float *wp = wpad + (((size_t)di * k + dj) * cin * nsub + sb) * VW;
                for (int ci = 0; ci < cin; ci++)
                  a += xp[ci] * *(const vf *)(wp + (size_t)ci * nsub * VW);
              }
            }
            memcpy(yp + o, &a, sizeof(float) * nt);
          }
        }
        j += npx;
      }
}

int glow_conv2d_forward(const float *x, const float *wt, const float *b, float *y, int n, int h,
                        int w, int cin, int cout, int k) {
  size_t pix = (size_t)h * w, rows = (size_t)n * pix;
  if (k * k * cin <= 64) {
    conv3_direct(x, wt, b, y, n, h, w, cin, cout, k);
    return GLOW_OK;
  }
  if (k == 1) {
    /* row blocks that stay in cache between sgemm's zeroing of C and its
     * accumulation into it */
    for (size_t r0 = 0; r0 < rows; r0 += GLOW_ROW_BLOCK) {
      int m = (int)(rows - r0 < GLOW_ROW_BLOCK ? rows - r0 : GLOW_ROW_BLOCK);
      glow_sgemm(0, 0, m, cout, cin, 1.0f, x + r0 * cin, cin, wt, cout, 0.0f, y + r0 * cout, cout);
    }
  } else if (cin <= cout) {
    size_t kk = (size_t)k * k * cin;
    int chunk = chunk_images(n, h, w, cin, k);
    float *col = glow_alloc_uninit((size_t)chunk * pix * kk);
    if (!col) return GLOW_ENOMEM;
    for (int b0 = 0; b0 < n; b0 += chunk) {
      int nb = n - b0 < chunk ? n - b0 : chunk;
      im2col(x + (size_t)b0 * pix * cin, col, nb, h, w, cin, k);
      glow_sgemm(0, 0, (int)(nb * pix), cout, (int)kk, 1.0f, col, (int)kk, wt, cout, 0.0f,
                 y + (size_t)b0 * pix * cout, cout);
    }
    glow_free(col);
  } else {
    int kc = k * k * cout;
    int chunk = chunk_images(n, h, w, cout, k);
    float *z = glow_alloc_uninit((size_t)chunk * pix * kc);
    float *wf = flip_taps(wt, cin, cout, k);
    if (!z || !wf) {
      glow_free(z);
      glow_free(wf);
      return GLOW_ENOMEM;
    }
    for (int b0 = 0; b0 < n; b0 += chunk) {
      int nb = n - b0 < chunk ? n - b0 : chunk;
      glow_sgemm(0, 0, (int)(nb * pix), kc, cin, 1.0f, x + (size_t)b0 * pix * cin, cin, wf, kc,
                 0.0f, z, kc);
      col2im(z, y + (size_t)b0 * pix * cout, nb, h, w, cout, k);
    }
    glow_free(z);
    glow_free(wf);
  }
  if (b) add_bias(y, b, rows, cout);
  return GLOW_OK;
}

static void bias_grad(const float *dy, float *db, size_t rows, int cout) {
  double s[cout];
  glow_channel_reduce(dy, NULL, 0, NULL, NULL, s, NULL, rows, cout);
  for (int o = 0; o < cout; o++) db[o] += (float)s[o];
}

int glow_conv2d_backward(const float *x, const float *wt, const float *dy, float *dx, float *dwt,
                         float *db, int n, int h, int w, int cin, int cout, int k) {
  size_t pix = (size_t)h * w, rows = (size_t)n * pix;
  /* the bias gradient is added once nothing can fail any more (no partial
   * accumulation on an allocation failure) */
  if (k == 1) {
    if (db) bias_grad(dy, db, rows, cout);
    if (dwt) glow_sgemm(1, 0, cin, cout, (int)rows, 1.0f, x, cin, dy, cout, 1.0f, dwt, cout);
    if (dx) glow_sgemm(0, 1, (int)rows, cin, cout, 1.0f, dy, cout, wt, cout, 0.0f, dx, cin);
    return GLOW_OK;
  }
  if (cin <= cout) {
    size_t kk = (size_t)k * k * cin;
    int chunk = chunk_images(n, h, w, cin, k);
    float *col = glow_alloc_uninit((size_t)chunk * pix * kk);
    if (!col) return GLOW_ENOMEM;
    if (db) bias_grad(dy, db, rows, cout);
    for (int b0 = 0; b0 < n; b0 += chunk) {
      int nb = n - b0 < chunk ? n - b0 : chunk;
      int m = (int)(nb * pix);
      const float *dyb = dy + (size_t)b0 * pix * cout;
      if (dwt) {
        im2col(x + (size_t)b0 * pix * cin, col, nb, h, w, cin, k);
        glow_sgemm(1, 0, (int)kk, cout, m, 1.0f, col, (int)kk, dyb, cout, 1.0f, dwt, cout);
      }
      if (dx) {
        glow_sgemm(0, 1, m, (int)kk, cout, 1.0f, dyb, cout, wt, cout, 0.0f, col, (int)kk);
        col2im(col, dx + (size_t)b0 * pix * cin, nb, h, w, cin, k);
      }
    }
    glow_free(col);
    return GLOW_OK;
  }
  /* taps: dycol = im2col(dy) {rows, 9 cout}; dx = dycol Wf^T; dWf += x^T dycol */
  int kk = k * k, kc = kk * cout;
  int chunk = chunk_images(n, h, w, cout, k);
  float *col = glow_alloc_uninit((size_t)chunk * pix * kc);
  float *wf = flip_taps(wt, cin, cout, k);
  float *dwf = dwt ? glow_alloc((size_t)cin * kc) : NULL;
  if (!col || !wf || (dwt && !dwf)) {
    glow_free(col);
    glow_free(wf);
    glow_free(dwf);
    return GLOW_ENOMEM;
  }
  if (db) bias_grad(dy, db, rows, cout);
  for (int b0 = 0; b0 < n; b0 += chunk) {
    int nb = n - b0 < chunk ? n - b0 : chunk;
    int m = (int)(nb * pix);
    im2col(dy + (size_t)b0 * pix * cout, col, nb, h, w, cout, k);
    if (dwf) glow_sgemm(1, 0, cin, kc, m, 1.0f, x + (size_t)b0 * pix * cin, cin, col, kc, 1.0f,
                        dwf, kc);
    if (dx) glow_sgemm(0, 1, m, cin, kc, 1.0f, col, kc, wf, kc, 0.0f, dx + (size_t)b0 * pix * cin,
                       cin);
  }
  if (dwf)
    for (int t = 0; t < kk; t++)
      for (int ci = 0; ci < cin; ci++) {
        float *dst = dwt + ((size_t)(kk - 1 - t) * cin + ci) * cout;
        const float *src = dwf + (size_t)ci * kc + (size_t)t * cout;
        for (int o = 0; o < cout; o++) dst[o] += src[o];
      }
  glow_free(col);
  glow_free(wf);
  glow_free(dwf);
  return GLOW_OK;
}

/* ------------------------------------------------------------------ naive references */
void glow_conv2d_forward_naive(const float *x, const float *wt, const float *b, float *y, int n,
                               int h, int w, int cin, int cout, int k) {
  int p = k / 2;
  for (int bi = 0; bi < n; bi++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w; j++)
        for (int o = 0; o < cout; o++) {
          double s = b ? b[o] : 0.0;
          for (int di = 0; di < k; di++)
            for (int dj = 0; dj < k; dj++) {
              int ii = i + di - p, jj = j + dj - p;
              if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
              for (int ci = 0; ci < cin; ci++)
                s += (double)x[(((size_t)bi * h + ii) * w + jj) * cin + ci] *
                     wt[(((size_t)di * k + dj) * cin + ci) * cout + o];
            }
          y[(((size_t)bi * h + i) * w + j) * cout + o] = (float)s;
        }
}

void glow_conv2d_backward_naive(const float *x, const float *wt, const float *dy, float *dx,
                                float *dwt, float *db, int n, int h, int w, int cin, int cout,
                                int k) {
  int p = k / 2;
  if (dx) memset(dx, 0, sizeof(float) * (size_t)n * h * w * cin);
  for (int bi = 0; bi < n; bi++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w; j++)
        for (int o = 0; o < cout; o++) {
          float g = dy[(((size_t)bi * h + i) * w + j) * cout + o];
          if (db) db[o] += g;
          for (int di = 0; di < k; di++)
            for (int dj = 0; dj < k; dj++) {
              int ii = i + di - p, jj = j + dj - p;
              if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
              for (int ci = 0; ci < cin; ci++) {
                size_t xi = (((size_t)bi * h + ii) * w + jj) * cin + ci;
                size_t wi = (((size_t)di * k + dj) * cin + ci) * cout + o;
                if (dwt) dwt[wi] += g * x[xi];
                if (dx) dx[xi] += g * wt[wi];
              }
            }
        }
}

/* ------------------------------------------------------------------ ZeroConv output scale */
void glow_scale_exp_forward(const float *x, const float *g, float factor, float *y, size_t rows,
                            int c) {
  float e[c];
  for (int k = 0; k < c; k++) e[k] = expf(factor * g[k]);
#pragma omp parallel for if (rows * c > 65536)
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < c; k++) y[r * c + k] = x[r * c + k] * e[k];
}

void glow_scale_exp_backward(const float *y, const float *g, float factor, const float *dy,
                             float *dx, float *dg, size_t rows, int c) {
  if (c <= 0) return;
  float e[c];
  double s[c];
  for (int k = 0; k < c; k++) e[k] = expf(factor * g[k]);
  glow_channel_reduce(dy, y, 0, e, dx, NULL, dg ? s : NULL, rows, c);
  if (dg)
    for (int k = 0; k < c; k++) dg[k] += (float)(factor * s[k]);
}
