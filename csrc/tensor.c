/*
 * tensor.c -- memory, the seeded random generator, and the elementwise and
 * layout kernels every layer shares: finiteness checks, ReLU, channel
 * split/concat/permutation and the 2x2 squeeze of NHWC images.
 */
#include "glow.h"

#include <malloc.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float *glow_alloc_uninit(size_t n) {
  size_t bytes = (n ? n : 1) * sizeof(float);
  bytes = (bytes + 63) & ~(size_t)63;
  return aligned_alloc(64, bytes);
}

float *glow_alloc(size_t n) {
  float *p = glow_alloc_uninit(n);
  if (p) memset(p, 0, (n ? n : 1) * sizeof(float));
  return p;
}

int glow_error(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

void glow_memory_setup(void) {
  mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's largest allowed value */
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void glow_free(float *p) { free(p); }

/* ------------------------------------------------------------------ rng */
/* the seed goes through the splitmix64 finalizer first: nearby seeds then
 * start far apart, instead of one stream being the other shifted by a draw */
void glow_rng_seed(glow_rng *r, uint64_t seed) {
  uint64_t z = seed ^ 0x6A09E667F3BCC909ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  r->state = z ^ (z >> 31);
}

uint64_t glow_rng_next(glow_rng *r) {
  uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double glow_rng_uniform(glow_rng *r) { return (double)(glow_rng_next(r) >> 11) * 0x1.0p-53; }

void glow_randn(glow_rng *r, float *out, size_t n, float std) {
  const double two_pi = 6.283185307179586;
  for (size_t i = 0; i < n; i += 2) {
    double u1 = 1.0 - glow_rng_uniform(r); /* (0, 1] */
    double u2 = glow_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    out[i] = (float)(std * rad * cos(two_pi * u2));
    if (i + 1 < n) out[i + 1] = (float)(std * rad * sin(two_pi * u2));
  }
}

void glow_rand_uniform(glow_rng *r, float *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float u = (float)glow_rng_uniform(r);
    out[i] = u < 1.0f ? u : 0x1.fffffep-1f;
  }
}

/* ------------------------------------------------------------------ elementwise */
int glow_all_finite(const float *x, size_t n) {
  int ok = 1;
#pragma omp parallel for reduction(&& : ok) if (n > 65536)
  for (size_t i = 0; i < n; i++) ok = ok && isfinite(x[i]);
  return ok;
}

int glow_finite_range(const float *x, size_t n, float *lo, float *hi) {
  int ok = 1;
  float a = INFINITY, b = -INFINITY;
#pragma omp parallel for reduction(&& : ok) reduction(min : a) reduction(max : b) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    ok = ok && isfinite(x[i]);
    a = fminf(a, x[i]);
    b = fmaxf(b, x[i]);
  }
  *lo = a;
  *hi = b;
  return ok;
}

double glow_dot(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

void glow_relu_forward(const float *x, float *y, size_t n) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

void glow_relu_backward(const float *x, const float *dy, float *dx, size_t n) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
}

void glow_thread_share(int *t, int *tn) {
#ifdef _OPENMP
  *t = omp_get_thread_num();
  *tn = omp_get_num_threads();
#else
  *t = 0;
  *tn = 1;
#endif
}

/* the optional third output of glow_channel_reduce_rebuild: xo = m * scale - shift */
typedef struct {
  const float *scale, *shift;
  float *out;
} rebuild;

/* one thread's share of glow_channel_reduce, accumulated into s1, s2 */
static void reduce_rows(const float *restrict a, const float *restrict m, int mask,
                        const float *restrict scale, float *restrict out, double *restrict s1,
                        double *restrict s2, const rebuild *rb, size_t r0, size_t r1, int c) {
  for (size_t r = r0; r < r1; r++) {
    if (rb && m) {
      const float *mr = m + r * c;
      float *xr = rb->out + r * c;
      for (int k = 0; k < c; k++) xr[k] = mr[k] * rb->scale[k] - rb->shift[k];
    }
    const float *ar = a + r * c, *mr = m ? m + r * c : NULL;
    float *orow = out ? out + r * c : NULL;
    if (mask && mr) {
      for (int k = 0; k < c; k++) {
        float g = mr[k] > 0 ? ar[k] : 0.0f;
        if (s1) s1[k] += g;
        if (s2) s2[k] += (double)g * mr[k];
        if (orow) orow[k] = scale ? g * scale[k] : g;
      }
    } else {
      if (s1)
        for (int k = 0; k < c; k++) s1[k] += ar[k];
      if (s2 && mr)
        for (int k = 0; k < c; k++) s2[k] += (double)ar[k] * mr[k];
      if (orow && scale)
        for (int k = 0; k < c; k++) orow[k] = ar[k] * scale[k];
      else if (orow)
        memcpy(orow, ar, sizeof(float) * c);
    }
  }
}

static void channel_reduce(const float *a, const float *m, int mask, const float *scale, float *out,
                           double *s1, double *s2, const rebuild *rb, size_t rows, int c) {
  for (int k = 0; k < c; k++) {
    if (s1) s1[k] = 0;
    if (s2) s2[k] = 0;
  }
  if (!m) s2 = NULL; /* (zeroed above, as promised) */
  int nt = 1;
#ifdef _OPENMP
  /* inside a parallel region (the fused network's threads) it runs on the
   * calling thread */
  if (rows * (size_t)c > 65536 && rows > 1 && !omp_in_parallel()) nt = omp_get_max_threads();
#endif
  if (nt > (int)rows) nt = (int)rows;
  double *part = nt > 1 ? calloc(2 * (size_t)c * nt, sizeof(double)) : NULL;
  if (!part) { /* one thread (or no memory for the shares): straight into s1, s2 */
    reduce_rows(a, m, mask, scale, out, s1, s2, rb, 0, rows, c);
    return;
  }
  int used = 1; /* the runtime may give fewer threads than asked */
#pragma omp parallel num_threads(nt)
  {
    int t, tn;
    glow_thread_share(&t, &tn);
    if (t == 0) used = tn;
    double *p = part + 2 * (size_t)c * t;
    reduce_rows(a, m, mask, scale, out, s1 ? p : NULL, s2 ? p + c : NULL, rb, rows * t / tn,
                rows * (t + 1) / tn, c);
  }
  for (int t = 0; t < used; t++) {
    const double *p = part + 2 * (size_t)c * t;
    for (int k = 0; k < c; k++) {
      if (s1) s1[k] += p[k];
      if (s2) s2[k] += p[c + k];
    }
  }
  free(part);
}

void glow_channel_reduce(const float *a, const float *m, int mask, const float *scale, float *out,
                         double *s1, double *s2, size_t rows, int c) {
  channel_reduce(a, m, mask, scale, out, s1, s2, NULL, rows, c);
}

void glow_channel_reduce_rebuild(const float *a, const float *m, const float *scale, float *out,
                                 double *s1, double *s2, const float *rscale, const float *rshift,
                                 float *xo, size_t rows, int c) {
  rebuild rb = {rscale, rshift, xo};
  channel_reduce(a, m, 0, scale, out, s1, s2, m && xo ? &rb : NULL, rows, c);
}

/* ------------------------------------------------------------------ channel layout */
void glow_split_channels(const float *x, float *a, float *b, size_t rows, int c, int c1) {
  int c2 = c - c1;
#pragma omp parallel for if (rows * c > 65536)
  for (size_t r = 0; r < rows; r++) {
    memcpy(a + r * c1, x + r * c, sizeof(float) * c1);
    memcpy(b + r * c2, x + r * c + c1, sizeof(float) * c2);
  }
}

void glow_concat_channels(const float *a, const float *b, float *x, size_t rows, int c, int c1) {
  int c2 = c - c1;
#pragma omp parallel for if (rows * c > 65536)
  for (size_t r = 0; r < rows; r++) {
    memcpy(x + r * c, a + r * c1, sizeof(float) * c1);
    memcpy(x + r * c + c1, b + r * c2, sizeof(float) * c2);
  }
}

void glow_permute_channels(const float *x, float *y, const int *perm, size_t rows, int c) {
#pragma omp parallel for if (rows * c > 65536)
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < c; k++) y[r * c + k] = x[r * c + perm[k]];
}

/* ------------------------------------------------------------------ squeeze */
void glow_squeeze(const float *x, float *y, int n, int h, int w, int c) {
  int h2 = h / 2, w2 = w / 2;
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * c > 65536)
  for (int b = 0; b < n; b++)
    for (int i = 0; i < h2; i++)
      for (int j = 0; j < w2; j++) {
        float *out = y + (((size_t)b * h2 + i) * w2 + j) * 4 * c;
        for (int dy = 0; dy < 2; dy++)
          for (int dx = 0; dx < 2; dx++) {
            const float *in = x + (((size_t)b * h + 2 * i + dy) * w + 2 * j + dx) * c;
            for (int k = 0; k < c; k++) out[k * 4 + dy * 2 + dx] = in[k];
          }
      }
}

void glow_unsqueeze(const float *y, float *x, int n, int h, int w, int c) {
  int h2 = h / 2, w2 = w / 2;
#pragma omp parallel for collapse(2) if ((size_t)n * h * w * c > 65536)
  for (int b = 0; b < n; b++)
    for (int i = 0; i < h2; i++)
      for (int j = 0; j < w2; j++) {
        const float *in = y + (((size_t)b * h2 + i) * w2 + j) * 4 * c;
        for (int dy = 0; dy < 2; dy++)
          for (int dx = 0; dx < 2; dx++) {
            float *out = x + (((size_t)b * h + 2 * i + dy) * w + 2 * j + dx) * c;
            for (int k = 0; k < c; k++) out[k] = in[k * 4 + dy * 2 + dx];
          }
      }
}
