/*
 * resize.c -- pixel conversion and resizing of uint8 images (HWC).
 *
 * Channels: gray -> RGB replicates the value; RGB -> gray is ITU-R 601 luma,
 * (299 R + 587 G + 114 B + 500) / 1000 in integers (rounded half up).
 *
 * Resizing is separable: each axis is resampled on its own, by a weight
 * table of (first source index, taps, weights) per output index.
 *   - an axis that shrinks: AREA, output o covers the source interval
 *     [o * in / out, (o + 1) * in / out) and averages it, each source pixel
 *     weighted by the length of its overlap (exact integer overlaps / in);
 *   - an axis that grows: BILINEAR with half-pixel centres (align_corners =
 *     False): s = (o + 0.5) * in / out - 0.5, clamped to [0, in - 1];
 *   - an axis of equal size: the identity.
 * Each source row is resampled along x into a float row, then added, with
 * its weight, to the float sum of every output row it falls in (in source
 * order); an output row whose last source row has come is rounded half up
 * (a value within 1/1024 below a half counts as the half), clamped to
 * [0, 255] and written. So the source can be fed one row at a time as a
 * decoder makes it (glow_fitter), never held whole; glow_resize feeds it
 * from a buffer. The naive
 * reference (glow_resize_naive) computes each output pixel as the full 2-D
 * sum over the region with weights from the definitions above (in double).
 *
 * "Fit" (glow_fit_region) scales an image to cover dh x dw keeping its
 * aspect ratio, then crops the centre: the crop is computed in source
 * coordinates (a whole number of source pixels, the centre of the longer
 * side) and only that region is resized.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "glow.h"

void glow_convert_channels(const uint8_t *src, int cin, uint8_t *dst, int cout, size_t pixels) {
  if (cin == cout) {
    memmove(dst, src, pixels * (size_t)cin);
  } else if (cin == 1) { /* gray -> RGB; dst may not alias src */
    for (size_t p = 0; p < pixels; p++) dst[3 * p] = dst[3 * p + 1] = dst[3 * p + 2] = src[p];
  } else { /* RGB -> gray; in place is fine (p <= 3 p) */
    for (size_t p = 0; p < pixels; p++) {
      const uint8_t *s = src + 3 * p;
      dst[p] = (uint8_t)((299u * s[0] + 587u * s[1] + 114u * s[2] + 500u) / 1000u);
    }
  }
}

void glow_fit_region(int sh, int sw, int dh, int dw, int *y0, int *x0, int *rh, int *rw) {
  /* cover: scale = max(dh / sh, dw / sw); the region is dh x dw / scale */
  int h = sh, w = sw;
  if ((int64_t)dh * sw >= (int64_t)dw * sh) { /* height limits: keep all rows */
    w = (int)(((int64_t)2 * sh * dw + dh) / (2 * (int64_t)dh)); /* round(sh * dw / dh) */
    if (w < 1) w = 1;
    if (w > sw) w = sw;
  } else {
    h = (int)(((int64_t)2 * sw * dh + dw) / (2 * (int64_t)dw));
    if (h < 1) h = 1;
    if (h > sh) h = sh;
  }
  *rh = h;
  *rw = w;
  *y0 = (sh - h) / 2;
  *x0 = (sw - w) / 2;
}

/* ------------------------------------------------------------------ weight tables */
typedef struct {
  int *first, *taps; /* {out} */
  int *off;          /* {out}: where o's weights start in w */
  float *w;
} axis_table;

static void table_free(axis_table *t) {
  free(t->first);
  free(t->taps);
  free(t->off);
  free(t->w);
}

static int table_make(axis_table *t, int in, int out) {
  memset(t, 0, sizeof *t);
  int maxtaps = in > out ? in / out + 2 : 2;
  t->first = (int *)malloc(sizeof(int) * (size_t)out);
  t->taps = (int *)malloc(sizeof(int) * (size_t)out);
  t->off = (int *)malloc(sizeof(int) * (size_t)out);
  t->w = (float *)malloc(sizeof(float) * (size_t)out * (size_t)maxtaps);
  if (!t->first || !t->taps || !t->off || !t->w) {
    table_free(t);
    return GLOW_ENOMEM;
  }
  size_t k = 0;
  for (int o = 0; o < out; o++) {
    t->off[o] = (int)k;
    if (in == out) {
      t->first[o] = o;
      t->taps[o] = 1;
      t->w[k++] = 1.0f;
    } else if (in > out) { /* AREA: overlaps in units of 1/out */
      int64_t a = (int64_t)o * in, b = (int64_t)(o + 1) * in;
      int i0 = (int)(a / out), i1 = (int)((b - 1) / out);
      t->first[o] = i0;
      t->taps[o] = i1 - i0 + 1;
      for (int i = i0; i <= i1; i++) {
        int64_t lo = (int64_t)i * out, hi = (int64_t)(i + 1) * out;
        int64_t ov = (hi < b ? hi : b) - (lo > a ? lo : a);
        t->w[k++] = (float)((double)ov / (double)in);
      }
    } else { /* BILINEAR, half-pixel centres, clamped */
      double s = ((double)o + 0.5) * in / out - 0.5;
      if (s < 0) s = 0;
      if (s > in - 1) s = in - 1;
      int i0 = (int)floor(s);
      double f = s - i0;
      t->first[o] = i0;
      if (i0 + 1 < in) {
        t->taps[o] = 2;
        t->w[k++] = (float)(1.0 - f);
        t->w[k++] = (float)f;
      } else {
        t->taps[o] = 1;
        t->w[k++] = 1.0f;
      }
    }
  }
  return GLOW_OK;
}

/* half up; a value within 1/1024 below a half counts as the half, so that
   exact halves (frequent: the weights are simple fractions) round the same
   way whether the sums ran in float or in double */
static uint8_t round_byte(double v) {
  v = floor(v + 0.5 + 1.0 / 1024);
  if (!(v > 0)) return 0;
  if (v > 255) return 255;
  return (uint8_t)v;
}

/* ------------------------------------------------------------------ row by row */
/* The same computation, fed one source row at a time (a decoder's rows), so
 * no whole source image is ever held. Output row o sums source rows
 * ty.first[o] .. last(o) = first + taps - 1 in that order, each weighted, into
 * its own float accumulator, exactly as glow_resize's column pass did; first
 * and last never decrease with o, so the rows being summed at any time are a
 * run [emitted, opened), kept in a ring of `window` accumulators. */
struct glow_fitter {
  int c, sw, y0, x0, rh, rw, dh, dw;
  int copy;      /* the identity: region rows copied to dst */
  int in;        /* source rows pushed so far */
  int opened;    /* output rows whose accumulator has been started */
  int emitted;   /* output rows written to dst */
  int window;    /* ring size */
  axis_table ty, tx;
  float *hrow;   /* {dw * c}: the current row resampled along x */
  float *acc;    /* {window, dw * c} */
  uint8_t *dst;  /* {dh, dw, c} */
};

static int ty_last(const axis_table *t, int o) { return t->first[o] + t->taps[o] - 1; }

/* the largest number of output rows summed at once (the ring's size) */
static int fitter_window(const axis_table *t, int in, int out) {
  int best = 1, lo = 0, hi = 0;
  for (int i = 0; i < in; i++) {
    while (hi < out && t->first[hi] <= i) hi++;
    while (lo < hi && ty_last(t, lo) < i) lo++;
    if (hi - lo > best) best = hi - lo;
  }
  return best;
}

size_t glow_fitter_bytes(int rh, int rw, int c, int dh, int dw) {
  if (rh == dh && rw == dw) return sizeof(glow_fitter);
  size_t row = (size_t)dw * (size_t)c * sizeof(float);
  /* the tables: 3 ints and up to in / out + 2 weights per output index */
  size_t ty = (size_t)dh * (3 * sizeof(int) + sizeof(float) * (size_t)(rh > dh ? rh / dh + 2 : 2));
  size_t tx = (size_t)dw * (3 * sizeof(int) + sizeof(float) * (size_t)(rw > dw ? rw / dw + 2 : 2));
  /* the ring holds at most in / out + 2 rows when shrinking, 2 out / in + 2 growing */
  size_t window = (size_t)(rh > dh ? rh / dh + 2 : 2 * (dh / (rh > 0 ? rh : 1)) + 2);
  if (window > (size_t)dh) window = (size_t)dh;
  return sizeof(glow_fitter) + ty + tx + row * (1 + window);
}

void glow_fitter_free(glow_fitter *f) {
  if (!f) return;
  table_free(&f->ty);
  table_free(&f->tx);
  free(f->hrow);
  free(f->acc);
  free(f);
}

glow_fitter *glow_fitter_new(int sh, int sw, int c, int y0, int x0, int rh, int rw, uint8_t *dst,
                             int dh, int dw) {
  (void)sh;
  glow_fitter *f = (glow_fitter *)calloc(1, sizeof *f);
  if (!f) return NULL;
  f->c = c;
  f->sw = sw;
  f->y0 = y0;
  f->x0 = x0;
  f->rh = rh;
  f->rw = rw;
  f->dh = dh;
  f->dw = dw;
  f->dst = dst;
  f->copy = rh == dh && rw == dw;
  if (f->copy) return f;
  if (table_make(&f->ty, rh, dh) || table_make(&f->tx, rw, dw)) {
    glow_fitter_free(f);
    return NULL;
  }
  f->window = fitter_window(&f->ty, rh, dh);
  size_t drow = (size_t)dw * c;
  f->hrow = (float *)malloc(sizeof(float) * drow);
  f->acc = (float *)malloc(sizeof(float) * drow * (size_t)f->window);
  if (!f->hrow || !f->acc) {
    glow_fitter_free(f);
    return NULL;
  }
  return f;
}

void glow_fitter_push(glow_fitter *f, const uint8_t *srcrow) {
  int i = f->in++ - f->y0; /* the row within the region */
  if (i < 0 || i >= f->rh) return;
  int c = f->c, dw = f->dw;
  size_t drow = (size_t)dw * c;
  const uint8_t *row = srcrow + (size_t)f->x0 * c;
  if (f->copy) {
    memcpy(f->dst + (size_t)i * drow, row, drow);
    return;
  }
  /* along x: hrow {dw, c} */
  const axis_table *tx = &f->tx, *ty = &f->ty;
  float *out = f->hrow;
  for (int o = 0; o < dw; o++) {
    const float *wt = tx->w + tx->off[o];
    const uint8_t *s = row + (size_t)tx->first[o] * c;
    for (int ch = 0; ch < c; ch++) {
      float v = 0;
      for (int t = 0; t < tx->taps[o]; t++) v += wt[t] * (float)s[(size_t)t * c + ch];
      out[(size_t)o * c + ch] = v;
    }
  }
  /* along y: start the output rows that begin here, add this row to every
     open one, write those that end here */
  while (f->opened < f->dh && ty->first[f->opened] <= i) {
    float *acc = f->acc + (size_t)(f->opened % f->window) * drow;
    for (size_t j = 0; j < drow; j++) acc[j] = 0;
    f->opened++;
  }
  for (int o = f->emitted; o < f->opened; o++) {
    float *acc = f->acc + (size_t)(o % f->window) * drow;
    float wv = ty->w[ty->off[o] + (i - ty->first[o])];
    for (size_t j = 0; j < drow; j++) acc[j] += wv * out[j];
  }
  while (f->emitted < f->opened && ty_last(ty, f->emitted) <= i) {
    const float *acc = f->acc + (size_t)(f->emitted % f->window) * drow;
    uint8_t *d = f->dst + (size_t)f->emitted * drow;
    for (size_t j = 0; j < drow; j++) d[j] = round_byte(acc[j]);
    f->emitted++;
  }
}

int glow_resize(const uint8_t *src, int sh, int sw, int c, int y0, int x0, int rh, int rw,
                uint8_t *dst, int dh, int dw) {
  glow_fitter *f = glow_fitter_new(sh, sw, c, y0, x0, rh, rw, dst, dh, dw);
  if (!f) return GLOW_ENOMEM;
  size_t sstride = (size_t)sw * c;
  /* only the region's rows: the fitter counts rows from the top */
  f->in = y0;
  for (int i = 0; i < rh; i++) glow_fitter_push(f, src + (size_t)(y0 + i) * sstride);
  glow_fitter_free(f);
  return GLOW_OK;
}

/* the weight of source index i in output index o, from the definitions */
static double naive_weight(int o, int i, int in, int out) {
  if (in == out) return o == i;
  if (in > out) {
    double a = (double)o * in / out, b = (double)(o + 1) * in / out;
    double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
    return hi > lo ? (hi - lo) / ((double)in / out) : 0;
  }
  double s = ((double)o + 0.5) * in / out - 0.5;
  if (s < 0) s = 0;
  if (s > in - 1) s = in - 1;
  double d = fabs(s - i);
  return d < 1 ? 1 - d : 0;
}

void glow_resize_naive(const uint8_t *src, int sh, int sw, int c, int y0, int x0, int rh, int rw,
                       uint8_t *dst, int dh, int dw) {
  (void)sh;
  for (int oy = 0; oy < dh; oy++)
    for (int ox = 0; ox < dw; ox++)
      for (int ch = 0; ch < c; ch++) {
        double v = 0;
        for (int i = 0; i < rh; i++) {
          double wy = naive_weight(oy, i, rh, dh);
          if (wy == 0) continue;
          for (int j = 0; j < rw; j++) {
            double wx = naive_weight(ox, j, rw, dw);
            v += wy * wx * src[((size_t)(y0 + i) * sw + (size_t)(x0 + j)) * c + ch];
          }
        }
        dst[((size_t)oy * dw + ox) * c + ch] = round_byte(v);
      }
}

int glow_fit(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw) {
  int y0, x0, rh, rw;
  glow_fit_region(sh, sw, dh, dw, &y0, &x0, &rh, &rw);
  return glow_resize(src, sh, sw, c, y0, x0, rh, rw, dst, dh, dw);
}
