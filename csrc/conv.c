/*
 * conv.c -- the one 2D convolution of the core: stride 1 over NHWC images,
 * any odd kernel kh x kw, zero padding and dilation (the cross-correlation of
 * PyTorch's Conv2d). The entry points glow_conv_forward / glow_conv_backward
 * pick the kernel from the geometry, so every caller (the fused coupling
 * network, the nn pieces, the ops) gets the fast one without asking:
 *
 *   direct   forward with kh*kw*cin <= 64 taps: each output pixel computed
 *            into vector accumulators and written once (a product with so
 *            short an inner dimension is bound by memory traffic)
 *   plain    a 1x1 kernel without padding: x itself is the left operand of
 *            sgemm (forward in cache-sized row blocks)
 *   im2col   otherwise, when its column buffer is the smaller one:
 *            col = im2col(x) {rows, kh kw cin}; y = col W
 *   taps     otherwise (few output channels): z = x Wf {pixels, kh kw cout},
 *            Wf the taps flipped, then y = col2im(z) over the transposed
 *            geometry: each output pixel gathers its taps
 *
 * The backward passes mirror them (plain, im2col or taps; no direct one).
 * There is one im2col and one col2im (its adjoint), over any geometry, used
 * by both lowerings, and one naive reference of each pass (direct loops,
 * sums in double) that the tests check every path against.
 * Also here: the per-channel exp(factor*g) output scale of ZeroConv2d.
 */
#include "glow.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* largest column buffer, in floats, before the batch is cut into chunks */
#define GLOW_COL_BUDGET ((size_t)1 << 22)
/* rows per sgemm call for 1x1 convolutions */
#define GLOW_ROW_BLOCK ((size_t)2048)
/* elementwise loops run in parallel above this many floats */
#define GLOW_PAR_MIN ((size_t)65536)
/* the direct kernel's limit on kh * kw * cin */
#define GLOW_DIRECT_TAPS 64

glow_conv_geom glow_conv_same(int n, int h, int w, int cin, int cout, int k) {
  glow_conv_geom g = {n, h, w, cin, cout, k, k, k / 2, k / 2, 1};
  return g;
}

void glow_conv_out_size(const glow_conv_geom *g, int64_t *ho, int64_t *wo) {
  *ho = (int64_t)g->h + 2 * (int64_t)g->pad_h - (int64_t)g->dil * (g->kh - 1);
  *wo = (int64_t)g->w + 2 * (int64_t)g->pad_w - (int64_t)g->dil * (g->kw - 1);
}

/* ------------------------------------------------------------------ im2col */
/* One side of a lowering: images {nb, h, w, c} read through a kh x kw kernel
 * with dilation dil, whose first tap lies pad_h rows and pad_w columns before
 * the output pixel (negative: after it), at ho x wo output pixels. A
 * convolution's own lowering reads x (c = cin); the taps lowering reads its
 * output side through the transposed geometry (see taps_side). */
typedef struct {
  int h, w, c, ho, wo, kh, kw, pad_h, pad_w, dil;
} side;

static side x_side(const glow_conv_geom *g, int ho, int wo) {
  side s = {g->h, g->w, g->cin, ho, wo, g->kh, g->kw, g->pad_h, g->pad_w, g->dil};
  return s;
}

/* The taps lowering: z = x Wf holds at each pixel i of x its product with
 * every tap, flipped (z[i, t'] = x[i] W[kk - 1 - t']). The output
 * y[o] = sum_t x[o - pad + t dil] W[t] then gathers from z as col2im does,
 * over the images {ho, wo, cout} read from x's h x w pixels with padding
 * (k - 1) dil - pad per axis (negative when pad reaches past the kernel). */
static side taps_side(const glow_conv_geom *g, int ho, int wo) {
  side s = {ho,     wo,     g->cout, g->h, g->w, g->kh, g->kw, (g->kh - 1) * g->dil - g->pad_h,
            (g->kw - 1) * g->dil - g->pad_w, g->dil};
  return s;
}

/* col {nb * ho * wo, kh * kw * c}: row (b, oi, oj) holds the taps (di, dj) of
 * that output pixel, c channels each, zero where a tap falls outside x
 * (the geometry is copied to locals: read through the pointer inside the
 * loop, it ran this a third slower on few channels) */
static void im2col(const side *s, const float *x, float *col, int nb) {
  const int h = s->h, w = s->w, c = s->c, ho = s->ho, wo = s->wo, kh = s->kh, kw = s->kw;
  const int ph = s->pad_h, pw = s->pad_w, dil = s->dil;
  const size_t kk = (size_t)kh * kw * c;
#pragma omp parallel for collapse(2) if ((size_t)nb * ho * wo * kk > GLOW_PAR_MIN)
  for (int b = 0; b < nb; b++)
    for (int oi = 0; oi < ho; oi++)
      for (int oj = 0; oj < wo; oj++) {
        float *row = col + (((size_t)b * ho + oi) * wo + oj) * kk;
        for (int di = 0; di < kh; di++) {
          int ii = oi - ph + di * dil;
          for (int dj = 0; dj < kw; dj++) {
            int jj = oj - pw + dj * dil;
            float *dst = row + ((size_t)di * kw + dj) * c;
            if (ii < 0 || ii >= h || jj < 0 || jj >= w)
              memset(dst, 0, sizeof(float) * c);
            else
              memcpy(dst, x + (((size_t)b * h + ii) * w + jj) * c, sizeof(float) * c);
          }
        }
      }
}

/* the adjoint of im2col, x {nb, h, w, c} overwritten: each pixel gathers the
 * taps that read it (race-free over pixels) */
static void col2im(const side *s, const float *col, float *x, int nb) {
  const int h = s->h, w = s->w, c = s->c, ho = s->ho, wo = s->wo, kh = s->kh, kw = s->kw;
  const int ph = s->pad_h, pw = s->pad_w, dil = s->dil;
  const size_t kk = (size_t)kh * kw * c;
#pragma omp parallel for collapse(2) if ((size_t)nb * h * w * kk > GLOW_PAR_MIN)
  for (int b = 0; b < nb; b++)
    for (int i = 0; i < h; i++)
      for (int j = 0; j < w; j++) {
        float *dst = x + (((size_t)b * h + i) * w + j) * c;
        memset(dst, 0, sizeof(float) * c);
        for (int di = 0; di < kh; di++) {
          int oi = i + ph - di * dil; /* the output row that read row i through tap di */
          if (oi < 0 || oi >= ho) continue;
          for (int dj = 0; dj < kw; dj++) {
            int oj = j + pw - dj * dil;
            if (oj < 0 || oj >= wo) continue;
            const float *src =
                col + (((size_t)b * ho + oi) * wo + oj) * kk + ((size_t)di * kw + dj) * c;
            for (int k = 0; k < c; k++) dst[k] += src[k];
          }
        }
      }
}

/* images per chunk: pix rows per image of per floats each, within the budget
 * and sgemm's int m */
static int chunk_images(int n, size_t pix, size_t per) {
  size_t c = pix * per > 0 ? GLOW_COL_BUDGET / (pix * per) : (size_t)n;
  if (pix && c > (size_t)INT_MAX / pix) c = (size_t)INT_MAX / pix;
  if (c < 1) c = 1;
  if (c > (size_t)n) c = (size_t)n;
  return (int)c;
}

/* the taps lowering when its buffer {h w, kh kw cout} per image is smaller
 * than im2col's {ho wo, kh kw cin} (a "same" geometry: cout < cin) */
static int use_taps(const glow_conv_geom *g, int64_t ho, int64_t wo) {
  return (double)g->h * g->w * g->cout < (double)ho * wo * g->cin;
}

static int is_plain(const glow_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->pad_h == 0 && g->pad_w == 0;
}

/* Wf {cin, kk cout}: Wf[ci, t cout + co] = W[kk - 1 - t, ci, co] */
static float *flip_taps(const float *wt, int cin, int cout, int kk) {
  float *wf = glow_alloc_uninit((size_t)cin * kk * cout);
  if (!wf) return NULL;
  for (int t = 0; t < kk; t++)
    for (int ci = 0; ci < cin; ci++)
      memcpy(wf + (size_t)ci * kk * cout + (size_t)t * cout,
             wt + ((size_t)(kk - 1 - t) * cin + ci) * cout, sizeof(float) * cout);
  return wf;
}

static void add_bias(float *y, const float *b, size_t rows, int cout) {
#pragma omp parallel for if (rows * cout > GLOW_PAR_MIN)
  for (size_t r = 0; r < rows; r++)
    for (int o = 0; o < cout; o++) y[r * cout + o] += b[o];
}

/* ------------------------------------------------------------------ direct */
/* Few taps (kh*kw*cin <= 64): each output pixel is computed directly into
 * local accumulators and written once, bias included.
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

/* the geometry as the direct kernel reads it, passed by value (a private
 * copy in each thread, whose fields the compiler keeps in registers). The
 * dilation is a parameter of its own: the rows of an undilated kernel are
 * computed with the constant 1 (a dilation read at run time made the
 * undilated 3x3 kernels 6-10% slower). */
typedef struct {
  int h, w, cin, cout, ho, wo, kh, kw, ph, pw;
} dgeom;

/* output pixels j0 .. j0 + npx - 1 of row i of image bi, channels o0 .. o0 +
 * TILE - 1; npx is PB (every tap inside the row) or 1 (taps checked) */
static inline __attribute__((always_inline)) void direct_tile(const dgeom d, const int dil,
                                                              const float *x, const float *wt,
                                                              const float *b, float *y, int bi,
                                                              int i, int j0, const int npx,
                                                              int o0) {
  vf acc[PB][NA];
#pragma GCC unroll 8
  for (int q = 0; q < npx; q++)
#pragma GCC unroll 8
    for (int a = 0; a < NA; a++) acc[q][a] = b ? *(const vf *)(b + o0 + a * VW) : (vf){0};
  for (int di = 0; di < d.kh; di++) {
    int ii = i - d.ph + di * dil;
    if (ii < 0 || ii >= d.h) continue;
    for (int dj = 0; dj < d.kw; dj++) {
      int jj = j0 - d.pw + dj * dil;
      if (npx == 1 && (jj < 0 || jj >= d.w)) continue;
      const float *xp = x + (((size_t)bi * d.h + ii) * d.w + jj) * d.cin;
      const float *wp = wt + ((size_t)di * d.kw + dj) * d.cin * d.cout + o0;
      for (int ci = 0; ci < d.cin; ci++) {
        vf wv[NA];
#pragma GCC unroll 8
        for (int a = 0; a < NA; a++) wv[a] = *(const vf *)(wp + (size_t)ci * d.cout + a * VW);
#pragma GCC unroll 8
        for (int q = 0; q < npx; q++) {
          float xv = xp[(size_t)q * d.cin + ci];
#pragma GCC unroll 8
          for (int a = 0; a < NA; a++) acc[q][a] += xv * wv[a];
        }
      }
    }
  }
  float *yp = y + (((size_t)bi * d.ho + i) * d.wo + j0) * d.cout + o0;
#pragma GCC unroll 8
  for (int q = 0; q < npx; q++)
#pragma GCC unroll 8
    for (int a = 0; a < NA; a++) *(vf *)(yp + (size_t)q * d.cout + a * VW) = acc[q][a];
}

/* the channels o0 .. o0 + nt - 1 (nt <= VW) of output pixel (bi, i, j), from
 * wpad: the weights of those channels zero-padded to VW, nsub groups */
static inline __attribute__((always_inline)) void direct_rest(const dgeom d, const int dil,
                                                              const float *x, const float *wpad,
                                                              int nsub, const float *b, float *y,
                                                              int bi, int i, int j, int sb, int o0,
                                                              int nt) {
  vf a = {0};
  if (b) memcpy(&a, b + o0, sizeof(float) * nt);
  for (int di = 0; di < d.kh; di++) {
    int ii = i - d.ph + di * dil;
    if (ii < 0 || ii >= d.h) continue;
    for (int dj = 0; dj < d.kw; dj++) {
      int jj = j - d.pw + dj * dil;
      if (jj < 0 || jj >= d.w) continue;
      const float *xp = x + (((size_t)bi * d.h + ii) * d.w + jj) * d.cin;
      const float *wp = wpad + (((size_t)di * d.kw + dj) * d.cin * nsub + sb) * VW;
      for (int ci = 0; ci < d.cin; ci++) a += xp[ci] * *(const vf *)(wp + (size_t)ci * nsub * VW);
    }
  }
  memcpy(y + (((size_t)bi * d.ho + i) * d.wo + j) * d.cout + o0, &a, sizeof(float) * nt);
}

/* output row i of image bi: blocks of PB pixels whose taps all lie inside
 * the row (jlo <= j <= jhi), single pixels near the edges */
static inline __attribute__((always_inline)) void direct_row(const dgeom d, const int dil,
                                                             const float *x, const float *wt,
                                                             const float *wpad, int orem, int nsub,
                                                             const float *b, float *y, int bi,
                                                             int i) {
  const int jlo = d.pw, jhi = d.w - 1 + d.pw - (d.kw - 1) * dil - (PB - 1);
  for (int j = 0; j < d.wo;) {
    int npx = j >= jlo && j <= jhi ? PB : 1;
    for (int o0 = 0; o0 + TILE <= d.cout; o0 += TILE) {
      if (npx == PB)
        direct_tile(d, dil, x, wt, b, y, bi, i, j, PB, o0);
      else
        direct_tile(d, dil, x, wt, b, y, bi, i, j, 1, o0);
    }
    /* the remaining channels, VW at a time, from the zero-padded copy */
    for (int q = 0; q < npx; q++)
      for (int sb = 0; sb < nsub; sb++) {
        int o = orem + VW * sb, nt = d.cout - o < VW ? d.cout - o : VW;
        direct_rest(d, dil, x, wpad, nsub, b, y, bi, i, j + q, sb, o, nt);
      }
    j += npx;
  }
}

static void conv_direct(const glow_conv_geom *g, int ho, int wo, const float *x, const float *wt,
                        const float *b, float *y) {
  const dgeom d = {g->h, g->w, g->cin, g->cout, ho, wo, g->kh, g->kw, g->pad_h, g->pad_w};
  const int n = g->n, cout = d.cout, taps = d.kh * d.kw * d.cin, dil = g->dil;
  /* the channels past the last full tile, zero-padded to VW per group:
   * wpad[((tap * cin + ci) * nsub + sb) * VW + j] (at most 64 taps, fewer
   * than TILE channels: at most 64 * TILE floats) */
  int orem = cout / TILE * TILE, nsub = (cout - orem + VW - 1) / VW;
  float wpad[GLOW_DIRECT_TAPS * TILE];
  for (int t = 0; t < taps; t++)
    for (int sb = 0; sb < nsub; sb++)
      for (int j = 0; j < VW; j++) {
        int o = orem + VW * sb + j;
        wpad[((size_t)t * nsub + sb) * VW + j] = o < cout ? wt[(size_t)t * cout + o] : 0.0f;
      }
#pragma omp parallel for collapse(2) firstprivate(d) if ((size_t)n * ho * wo * cout * taps > 262144)
  for (int bi = 0; bi < n; bi++)
    for (int i = 0; i < ho; i++) {
      if (dil == 1)
        direct_row(d, 1, x, wt, wpad, orem, nsub, b, y, bi, i);
      else
        direct_row(d, dil, x, wt, wpad, orem, nsub, b, y, bi, i);
    }
}

/* ------------------------------------------------------------------ the entry */
int glow_conv_forward(const glow_conv_geom *g, const float *x, const float *wt, const float *b,
                      float *y) {
  int64_t ho64, wo64;
  glow_conv_out_size(g, &ho64, &wo64);
  int ho = (int)ho64, wo = (int)wo64, n = g->n, cin = g->cin, cout = g->cout;
  int kk = g->kh * g->kw;
  size_t pix = (size_t)ho * wo, xpix = (size_t)g->h * g->w, rows = (size_t)n * pix;
  if (rows == 0 || cout <= 0) return GLOW_OK;
  if ((size_t)kk * cin <= GLOW_DIRECT_TAPS) {
    conv_direct(g, ho, wo, x, wt, b, y);
    return GLOW_OK;
  }
  if (is_plain(g)) {
    /* row blocks that stay in cache between sgemm's zeroing of C and its
     * accumulation into it */
    for (size_t r0 = 0; r0 < rows; r0 += GLOW_ROW_BLOCK) {
      int m = (int)(rows - r0 < GLOW_ROW_BLOCK ? rows - r0 : GLOW_ROW_BLOCK);
      glow_sgemm(0, 0, m, cout, cin, 1.0f, x + r0 * cin, cin, wt, cout, 0.0f, y + r0 * cout, cout);
    }
  } else if (!use_taps(g, ho, wo)) {
    side s = x_side(g, ho, wo);
    int kc = kk * cin, chunk = chunk_images(n, pix, (size_t)kc);
    float *col = glow_alloc_uninit((size_t)chunk * pix * kc);
    if (!col) return GLOW_ENOMEM;
    for (int b0 = 0; b0 < n; b0 += chunk) {
      int nb = n - b0 < chunk ? n - b0 : chunk;
      im2col(&s, x + (size_t)b0 * xpix * cin, col, nb);
      glow_sgemm(0, 0, (int)(nb * pix), cout, kc, 1.0f, col, kc, wt, cout, 0.0f,
                 y + (size_t)b0 * pix * cout, cout);
    }
    glow_free(col);
  } else {
    side s = taps_side(g, ho, wo);
    int kc = kk * cout, chunk = chunk_images(n, xpix, (size_t)kc);
    float *z = glow_alloc_uninit((size_t)chunk * xpix * kc);
    float *wf = flip_taps(wt, cin, cout, kk);
    if (!z || !wf) {
      glow_free(z);
      glow_free(wf);
      return GLOW_ENOMEM;
    }
    for (int b0 = 0; b0 < n; b0 += chunk) {
      int nb = n - b0 < chunk ? n - b0 : chunk;
      glow_sgemm(0, 0, (int)(nb * xpix), kc, cin, 1.0f, x + (size_t)b0 * xpix * cin, cin, wf, kc,
                 0.0f, z, kc);
      col2im(&s, z, y + (size_t)b0 * pix * cout, nb);
    }
    glow_free(z);
    glow_free(wf);
  }
  if (b) add_bias(y, b, rows, cout);
  return GLOW_OK;
}

int glow_conv_backward(const glow_conv_geom *g, const float *x, const float *wt, const float *dy,
                       float *dx, float *dwt, float *db) {
  int64_t ho64, wo64;
  glow_conv_out_size(g, &ho64, &wo64);
  int ho = (int)ho64, wo = (int)wo64, n = g->n, cin = g->cin, cout = g->cout;
  int kk = g->kh * g->kw;
  size_t pix = (size_t)ho * wo, xpix = (size_t)g->h * g->w, rows = (size_t)n * pix;
  if (dx && (rows == 0 || cout <= 0)) memset(dx, 0, sizeof(float) * (size_t)n * xpix * cin);
  if (rows == 0 || cout <= 0) return GLOW_OK;
  int plain = is_plain(g), taps = !plain && use_taps(g, ho, wo), want = dx || dwt;
  /* everything that can fail first: no partial accumulation on failure */
  int kc = kk * (taps ? cout : cin);
  int chunk = taps ? chunk_images(n, xpix, (size_t)kc) : chunk_images(n, pix, (size_t)kc);
  size_t ncol = (size_t)chunk * (taps ? xpix : pix) * kc;
  float *col = want && !plain ? glow_alloc_uninit(ncol) : NULL;
  float *wf = taps && dx ? flip_taps(wt, cin, cout, kk) : NULL;
  float *dwf = taps && dwt ? glow_alloc((size_t)cin * kc) : NULL;
  double *s = db ? malloc(sizeof(double) * (size_t)cout) : NULL;
  if ((want && !plain && !col) || (taps && dx && !wf) || (taps && dwt && !dwf) || (db && !s)) {
    glow_free(col);
    glow_free(wf);
    glow_free(dwf);
    free(s);
    return GLOW_ENOMEM;
  }
  if (db) {
    glow_channel_reduce(dy, NULL, 0, NULL, NULL, s, NULL, rows, cout);
    for (int o = 0; o < cout; o++) db[o] += (float)s[o];
    free(s);
  }
  if (plain) {
    /* one product over all rows (pieces only past sgemm's int m) */
    for (size_t r0 = 0; r0 < rows && want; r0 += INT_MAX) {
      int m = (int)(rows - r0 < INT_MAX ? rows - r0 : INT_MAX);
      if (dwt)
        glow_sgemm(1, 0, cin, cout, m, 1.0f, x + r0 * cin, cin, dy + r0 * cout, cout, 1.0f, dwt,
                   cout);
      if (dx)
        glow_sgemm(0, 1, m, cin, cout, 1.0f, dy + r0 * cout, cout, wt, cout, 0.0f, dx + r0 * cin,
                   cin);
    }
    return GLOW_OK;
  }
  if (!taps) {
    /* dwt += col^T dy; dcol = dy W^T, dx = col2im(dcol) */
    side sd = x_side(g, ho, wo);
    for (int b0 = 0; b0 < n && want; b0 += chunk) {
      int nb = n - b0 < chunk ? n - b0 : chunk, m = (int)(nb * pix);
      const float *dyb = dy + (size_t)b0 * pix * cout;
      if (dwt) {
        im2col(&sd, x + (size_t)b0 * xpix * cin, col, nb);
        glow_sgemm(1, 0, kc, cout, m, 1.0f, col, kc, dyb, cout, 1.0f, dwt, cout);
      }
      if (dx) {
        glow_sgemm(0, 1, m, kc, cout, 1.0f, dyb, cout, wt, cout, 0.0f, col, kc);
        col2im(&sd, col, dx + (size_t)b0 * xpix * cin, nb);
      }
    }
    glow_free(col);
    return GLOW_OK;
  }
  /* taps: dycol = im2col(dy) over the transposed geometry {pixels of x,
   * kk cout}; dx = dycol Wf^T; dWf += x^T dycol, added to dwt unflipped */
  side st = taps_side(g, ho, wo);
  for (int b0 = 0; b0 < n && want; b0 += chunk) {
    int nb = n - b0 < chunk ? n - b0 : chunk, m = (int)(nb * xpix);
    im2col(&st, dy + (size_t)b0 * pix * cout, col, nb);
    if (dwf)
      glow_sgemm(1, 0, cin, kc, m, 1.0f, x + (size_t)b0 * xpix * cin, cin, col, kc, 1.0f, dwf, kc);
    if (dx)
      glow_sgemm(0, 1, m, cin, kc, 1.0f, col, kc, wf, kc, 0.0f, dx + (size_t)b0 * xpix * cin, cin);
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
