/*
 * net.c -- the default coupling network as one fused kernel:
 *
 *   h = ZeroConv3x3(ReLU(ActNorm2(Conv1x1(ReLU(ActNorm1(Conv3x3(x)))))))
 *
 * A few images at a time go through all of it, so the width-channel
 * activations live in cache-sized buffers and never make a round trip to
 * memory. The threads split the batch by images, each with its own buffers
 * and its own parameter-gradient copy; the copies are added in thread order,
 * so results depend on the thread count only. OpenBLAS runs single-threaded
 * inside the parallel region.
 *
 * Forward can write the two hidden activations out for backward to use
 * (memory = "store"); without them backward recomputes each chunk's
 * activations, and the network needs no memory that grows with the batch
 * beyond its input, output and gradients.
 */
#include "glow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* floats of one width-channel activation buffer per chunk: four of them
 * (256 KiB each) stay within a core's L2; a smaller chunk makes the 1x1
 * convolution's sgemm too short, a larger one measured slower here */
#define GLOW_NET_CHUNK_FLOATS ((size_t)1 << 16)

static int chunk_of(const glow_net *p, int h, int w) {
  size_t pix = (size_t)h * w;
  size_t per = pix * (size_t)(p->width > p->cout ? p->width : p->cout);
  size_t c = per ? GLOW_NET_CHUNK_FLOATS / per : 1;
  return c < 1 ? 1 : (int)c;
}

static int threads_for(int n) {
  int nt = 1;
#ifdef _OPENMP
  nt = omp_get_max_threads();
#endif
  return nt < 1 ? 1 : nt > n ? n : nt;
}

/* the two hidden layers of a chunk: a1 = relu(an1(conv3x3(x))), a2 = relu(an2(conv1x1(a1))) */
static int hidden(const glow_net *p, const float *x, float *a1, float *a2, int nb, int h, int w) {
  size_t rows = (size_t)nb * h * w;
  glow_conv_geom g1 = glow_conv_same(nb, h, w, p->cin, p->width, 3);
  glow_conv_geom g2 = glow_conv_same(nb, h, w, p->width, p->width, 1);
  int rc = glow_conv_forward(&g1, x, p->w1, NULL, a1);
  if (rc) return rc;
  glow_actnorm_relu_forward(a1, p->an1_b, p->an1_s, a1, rows, p->width);
  rc = glow_conv_forward(&g2, a1, p->w2, NULL, a2);
  if (rc) return rc;
  glow_actnorm_relu_forward(a2, p->an2_b, p->an2_s, a2, rows, p->width);
  return GLOW_OK;
}

static int out_layer(const glow_net *p, const float *a2, float *y, int nb, int h, int w) {
  glow_conv_geom g3 = glow_conv_same(nb, h, w, p->width, p->cout, 3);
  int rc = glow_conv_forward(&g3, a2, p->w3, p->b3, y);
  if (rc) return rc;
  glow_scale_exp_forward(y, p->g3, p->factor, y, (size_t)nb * h * w, p->cout);
  return GLOW_OK;
}

int glow_net_forward(const glow_net *p, const float *x, float *y, float *a1s, float *a2s, int n,
                     int h, int w) {
  if (n <= 0) return GLOW_OK;
  size_t pix = (size_t)h * w;
  int chunk = chunk_of(p, h, w), nt = threads_for(n), err = GLOW_OK;
#pragma omp parallel num_threads(nt)
  {
    int t, tn;
    glow_thread_share(&t, &tn);
    int i0 = (int)((long)n * t / tn), i1 = (int)((long)n * (t + 1) / tn);
    size_t cap = (size_t)chunk * pix * p->width;
    float *a1 = a1s ? NULL : glow_alloc_uninit(cap), *a2 = a2s ? NULL : glow_alloc_uninit(cap);
    int rc = (a1s || a1) && (a2s || a2) ? GLOW_OK : GLOW_ENOMEM;
    for (int b0 = i0; b0 < i1 && !rc; b0 += chunk) {
      int nb = i1 - b0 < chunk ? i1 - b0 : chunk;
      size_t oa = (size_t)b0 * pix * p->width;
      float *c1 = a1s ? a1s + oa : a1, *c2 = a2s ? a2s + oa : a2;
      rc = hidden(p, x + (size_t)b0 * pix * p->cin, c1, c2, nb, h, w);
      if (!rc) rc = out_layer(p, c2, y + (size_t)b0 * pix * p->cout, nb, h, w);
    }
    glow_free(a1);
    glow_free(a2);
    if (rc) {
#pragma omp critical(glow_net_err)
      err = rc;
    }
  }
  return err;
}

/* offsets of the parameter gradients inside one thread's flat copy */
typedef struct { size_t w1, an1_b, an1_s, w2, an2_b, an2_s, w3, b3, g3, total; } layout;

static layout layout_of(const glow_net *p) {
  layout l;
  size_t o = 0, wd = (size_t)p->width;
  l.w1 = o, o += 9 * (size_t)p->cin * wd;
  l.an1_b = o, o += wd;
  l.an1_s = o, o += wd;
  l.w2 = o, o += wd * wd;
  l.an2_b = o, o += wd;
  l.an2_s = o, o += wd;
  l.w3 = o, o += 9 * wd * (size_t)p->cout;
  l.b3 = o, o += (size_t)p->cout;
  l.g3 = o, o += (size_t)p->cout;
  l.total = o;
  return l;
}

/* a ReLU-masked ActNorm backward: dp = (a > 0) * da * e; db += e * sum, ds += sum da * a */
static void an_relu_back(const float *a, const float *s, const float *da, float *dp, float *db,
                         float *ds, size_t rows, int c, double *s1, double *s2) {
  if (c <= 0) return;
  float e[c];
  for (int k = 0; k < c; k++) e[k] = expf(s[k]);
  glow_channel_reduce(da, a, 1, e, dp, s1, s2, rows, c);
  for (int k = 0; k < c; k++) {
    db[k] += (float)(s1[k] * e[k]);
    ds[k] += (float)s2[k];
  }
}

static int backward_chunk(const glow_net *p, const layout *l, float *g, const float *x,
                          const float *y, const float *dy, float *dx, int nb, int h, int w,
                          float *a1, float *a2, int stored, float *da, float *dp, float *yb,
                          double *s1, double *s2) {
  size_t rows = (size_t)nb * h * w;
  int wd = p->width, co = p->cout;
  int rc = stored ? GLOW_OK : hidden(p, x, a1, a2, nb, h, w);
  if (rc) return rc;
  if (!y) {
    rc = out_layer(p, a2, yb, nb, h, w);
    if (rc) return rc;
    y = yb;
  }
  /* output scale: dh3 = dy * exp(factor g3); dg3 += factor * sum dy * y */
  if (co <= 0) return GLOW_OK;
  float e3[co];
  for (int k = 0; k < co; k++) e3[k] = expf(p->factor * p->g3[k]);
  float *dh3 = dp; /* dp is free until the ActNorm2 backward; rows * cout <= its size */
  glow_channel_reduce(dy, y, 0, e3, dh3, NULL, s2, rows, co);
  for (int k = 0; k < co; k++) g[l->g3 + k] += (float)(p->factor * s2[k]);
  glow_conv_geom g3 = glow_conv_same(nb, h, w, wd, co, 3);
  glow_conv_geom g2 = glow_conv_same(nb, h, w, wd, wd, 1);
  glow_conv_geom g1 = glow_conv_same(nb, h, w, p->cin, wd, 3);
  rc = glow_conv_backward(&g3, a2, p->w3, dh3, da, g + l->w3, g + l->b3);
  if (rc) return rc;
  an_relu_back(a2, p->an2_s, da, dp, g + l->an2_b, g + l->an2_s, rows, wd, s1, s2);
  rc = glow_conv_backward(&g2, a1, p->w2, dp, da, g + l->w2, NULL);
  if (rc) return rc;
  an_relu_back(a1, p->an1_s, da, dp, g + l->an1_b, g + l->an1_s, rows, wd, s1, s2);
  return glow_conv_backward(&g1, x, p->w1, dp, dx, g + l->w1, NULL);
}

int glow_net_backward(const glow_net *p, glow_net_grad *gr, const float *x, const float *y,
                      const float *a1s, const float *a2s, const float *dy, float *dx, int n, int h,
                      int w) {
  if (n <= 0) return GLOW_OK;
  size_t pix = (size_t)h * w;
  int chunk = chunk_of(p, h, w), nt = threads_for(n), err = GLOW_OK, stored = a1s && a2s;
  layout l = layout_of(p);
  float *gall = glow_alloc(l.total * (size_t)nt); /* zeroed: one gradient copy per thread */
  if (!gall) return GLOW_ENOMEM;
  int used = 1;
#pragma omp parallel num_threads(nt)
  {
    int t, tn;
    glow_thread_share(&t, &tn);
    if (t == 0) used = tn;
    int i0 = (int)((long)n * t / tn), i1 = (int)((long)n * (t + 1) / tn);
    size_t cap = (size_t)chunk * pix * p->width;
    int wide = p->width > p->cout ? p->width : p->cout;
    float *a1 = stored ? NULL : glow_alloc_uninit(cap), *a2 = stored ? NULL : glow_alloc_uninit(cap);
    float *da = glow_alloc_uninit(cap), *dp = glow_alloc_uninit((size_t)chunk * pix * wide);
    float *yb = y ? NULL : glow_alloc_uninit((size_t)chunk * pix * p->cout);
    double *s1 = malloc(sizeof(double) * wide), *s2 = malloc(sizeof(double) * wide);
    int rc = (stored || (a1 && a2)) && da && dp && (y || yb) && s1 && s2 ? GLOW_OK : GLOW_ENOMEM;
    for (int b0 = i0; b0 < i1 && !rc; b0 += chunk) {
      int nb = i1 - b0 < chunk ? i1 - b0 : chunk;
      size_t ox = (size_t)b0 * pix * p->cin, oy = (size_t)b0 * pix * p->cout;
      size_t oa = (size_t)b0 * pix * p->width;
      /* stored activations are only read (backward_chunk writes them when not stored) */
      float *c1 = stored ? (float *)(a1s + oa) : a1, *c2 = stored ? (float *)(a2s + oa) : a2;
      rc = backward_chunk(p, &l, gall + l.total * t, x + ox, y ? y + oy : NULL, dy + oy, dx + ox,
                          nb, h, w, c1, c2, stored, da, dp, yb, s1, s2);
    }
    glow_free(a1);
    glow_free(a2);
    glow_free(da);
    glow_free(dp);
    glow_free(yb);
    free(s1);
    free(s2);
    if (rc) {
#pragma omp critical(glow_net_err)
      err = rc;
    }
  }
  if (!err) {
    struct { float *dst; size_t off, len; } parts[] = {
        {gr->w1, l.w1, l.an1_b - l.w1},       {gr->an1_b, l.an1_b, (size_t)p->width},
        {gr->an1_s, l.an1_s, (size_t)p->width}, {gr->w2, l.w2, l.an2_b - l.w2},
        {gr->an2_b, l.an2_b, (size_t)p->width}, {gr->an2_s, l.an2_s, (size_t)p->width},
        {gr->w3, l.w3, l.b3 - l.w3},          {gr->b3, l.b3, (size_t)p->cout},
        {gr->g3, l.g3, (size_t)p->cout}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
      for (int t = 0; t < used; t++) {
        const float *src = gall + l.total * t + parts[i].off;
        for (size_t j = 0; j < parts[i].len; j++) parts[i].dst[j] += src[j];
      }
  }
  glow_free(gall);
  return err;
}
