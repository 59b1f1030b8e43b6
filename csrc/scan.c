/*
 * scan.c -- ops along one dimension of an [outer, n, inner] layout:
 * cumulative sums and products (and the product's gradient), a stable sort
 * that also gives the permutation, softmax and log-softmax; searching
 * sorted boundaries (searchsorted); and the copies that pad, crop and
 * keep a triangle of matrices, fill a range or an identity.
 *
 * The binding (lscan.c) works out the layout and checks the shapes; these
 * kernels only loop. Threads take outer slices when the work is large
 * enough (the per-class sizes of ops.c), so every output element is computed
 * by one thread in one order: the results do not depend on the thread
 * count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glow.h"
#include "vmath.h"

/* the sizes from which a loop goes on threads, per class of op (ops.c,
 * measured with bench/par.sh): copies and sums are cheap per element, the
 * softmax's exp is maths, a sort or a binary search costs like a gather */
#define PAR_CHEAP glow_par_min(GLOW_PAR_CHEAP)
#define PAR_MATH glow_par_min(GLOW_PAR_MATH)
#define PAR_SEARCH glow_par_min(GLOW_PAR_GATHER)

/* ------------------------------------------------------------------ cumulative */
void glow_cumulative(int prod, int reverse, const float *x, float *y, int64_t outer, int64_t n, int64_t inner) {
#pragma omp parallel for schedule(static) if (outer * n * inner >= PAR_CHEAP && outer > 1)
  for (int64_t o = 0; o < outer; o++) {
    const float *xo = x + o * n * inner;
    float *yo = y + o * n * inner;
    for (int64_t k = 0; k < n; k++) {
      int64_t r = reverse ? n - 1 - k : k, prev = reverse ? r + 1 : r - 1;
      const float *xr = xo + r * inner;
      float *yr = yo + r * inner;
      if (k == 0) {
        memcpy(yr, xr, (size_t)inner * sizeof(float));
      } else if (prod) {
        const float *yp = yo + prev * inner;
        for (int64_t j = 0; j < inner; j++) yr[j] = yp[j] * xr[j];
      } else {
        const float *yp = yo + prev * inner;
        for (int64_t j = 0; j < inner; j++) yr[j] = yp[j] + xr[j];
      }
    }
  }
}

/* d/dx_i of sum_j g_j y_j, y = cumprod(x): sum_{j >= i} g_j prod_{k <= j, k != i} x_k.
 * Exact with zeros in x: before the first zero z, that is (sum_{i <= j < z} g_j y_j) / x_i;
 * at z, P_{z-1} * sum_{j >= z} g_j prod_{z < k <= j} x_k; after z, 0. Sums in double. */
void glow_cumprod_backward(const float *x, const float *g, float *dx, int64_t outer, int64_t n, int64_t inner) {
#pragma omp parallel for schedule(static) if (outer * n * inner >= PAR_CHEAP && outer * inner > 1)
  for (int64_t s = 0; s < outer * inner; s++) {
    int64_t o = s / inner, j = s % inner;
    const float *xs = x + o * n * inner + j, *gs = g + o * n * inner + j;
    float *ds = dx + o * n * inner + j;
    int64_t z = n;
    for (int64_t r = 0; r < n; r++)
      if (xs[r * inner] == 0.0f) {
        z = r;
        break;
      }
    /* before z: a suffix sum of g_j y_j, y_j = prod_{k <= j} x_k */
    double p = 1.0, acc = 0.0;
    /* g_j y_j for j < z, forward into dx; then the suffix sums backward */
    for (int64_t r = 0; r < z; r++) {
      p *= xs[r * inner];
      ds[r * inner] = (float)(gs[r * inner] * p); /* g_j y_j, temporarily */
    }
    double pz = p; /* P_{z-1} */
    for (int64_t r = z - 1; r >= 0; r--) {
      acc += ds[r * inner];
      ds[r * inner] = (float)(acc / xs[r * inner]);
    }
    if (z < n) {
      double q = 1.0, sum = 0.0;
      for (int64_t r = z; r < n; r++) {
        if (r > z) q *= xs[r * inner];
        sum += gs[r * inner] * q;
      }
      ds[z * inner] = (float)(pz * sum);
      for (int64_t r = z + 1; r < n; r++) ds[r * inner] = 0.0f;
    }
  }
}

/* ------------------------------------------------------------------ sort */
typedef struct {
  float v;
  int64_t i;
} keyed;

/* ascending, NaN after every number, ties by position (stable) */
static int cmp_up(const void *pa, const void *pb) {
  const keyed *a = pa, *b = pb;
  int an = isnan(a->v), bn = isnan(b->v);
  if (an != bn) return an - bn;
  if (!an && a->v != b->v) return a->v < b->v ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

/* descending, NaN before every number (as torch), ties by position */
static int cmp_down(const void *pa, const void *pb) {
  const keyed *a = pa, *b = pb;
  int an = isnan(a->v), bn = isnan(b->v);
  if (an != bn) return bn - an;
  if (!an && a->v != b->v) return a->v > b->v ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

int glow_sort(const float *x, float *y, float *idx, int64_t outer, int64_t n, int64_t inner, int descending) {
  int rc = GLOW_OK;
#pragma omp parallel if (outer * inner > 1 && outer * n * inner >= PAR_SEARCH)
  {
    keyed *buf = malloc(sizeof(keyed) * (size_t)(n > 0 ? n : 1));
    if (!buf) {
#pragma omp atomic write
      rc = GLOW_ENOMEM;
    }
#pragma omp for schedule(static)
    for (int64_t s = 0; s < outer * inner; s++) {
      if (!buf) continue;
      int64_t o = s / inner, j = s % inner, base = o * n * inner + j;
      for (int64_t r = 0; r < n; r++) buf[r] = (keyed){x[base + r * inner], r};
      qsort(buf, (size_t)n, sizeof(keyed), descending ? cmp_down : cmp_up);
      for (int64_t r = 0; r < n; r++) {
        y[base + r * inner] = buf[r].v;
        if (idx) idx[base + r * inner] = (float)(buf[r].i + 1);
      }
    }
    free(buf);
  }
  return rc;
}

/* ------------------------------------------------------------------ searchsorted */
/* the number of b[0..nb) below v (right: at most v); NaN counts above all */
static int64_t count_below(const float *b, int64_t nb, float v, int right) {
  if (isnan(v)) return nb;
  int64_t lo = 0, hi = nb;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int below = right ? !(b[mid] > v) : b[mid] < v;
    if (below)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

void glow_searchsorted(const float *b, int64_t nb, int shared, const float *v, float *out, int64_t outer,
                       int64_t nv, int right) {
#pragma omp parallel for schedule(static) if (outer * nv >= PAR_SEARCH)
  for (int64_t i = 0; i < outer * nv; i++) {
    const float *bo = shared ? b : b + (i / nv) * nb;
    out[i] = (float)count_below(bo, nb, v[i], right);
  }
}

/* ------------------------------------------------------------------ softmax */
/* y = softmax (or log-softmax) of x along n; m, s are {outer, inner} scratch */
void glow_softmax(const float *x, float *y, float *m, float *s, int64_t outer, int64_t n, int64_t inner,
                  int log_out) {
#pragma omp parallel for schedule(static) if (outer * n * inner >= PAR_MATH && outer > 1)
  for (int64_t o = 0; o < outer; o++) {
    const float *xo = x + o * n * inner;
    float *yo = y + o * n * inner, *mo = m + o * inner, *so = s + o * inner;
    for (int64_t j = 0; j < inner; j++) mo[j] = -INFINITY, so[j] = 0.0f;
    for (int64_t r = 0; r < n; r++)
      for (int64_t j = 0; j < inner; j++) {
        float v = xo[r * inner + j];
        mo[j] = (v > mo[j] || v != v) ? v : mo[j];
      }
    for (int64_t j = 0; j < inner; j++)
      if (isinf(mo[j])) mo[j] = mo[j] > 0 ? mo[j] : 0.0f; /* all -inf: exp(-inf - 0) = 0 */
    for (int64_t r = 0; r < n; r++)
      for (int64_t j = 0; j < inner; j++) {
        float e = glow_vexpf(xo[r * inner + j] - mo[j]);
        so[j] += e;
        if (!log_out) yo[r * inner + j] = e;
      }
    if (log_out) {
      for (int64_t j = 0; j < inner; j++) so[j] = glow_vlogf(so[j]) + mo[j];
      for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < inner; j++) yo[r * inner + j] = xo[r * inner + j] - so[j];
    } else {
      for (int64_t j = 0; j < inner; j++) so[j] = 1.0f / so[j];
      for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < inner; j++) yo[r * inner + j] *= so[j];
    }
  }
}

/* ------------------------------------------------------------------ copies */
/* The small tensor's rows (its last dim) against the big one's at offset
 * off: crop 0 writes small into big (padding), crop 1 reads it back. */
void glow_pad(float *big, const int64_t *bshape, float *small, const int64_t *sshape, const int64_t *off, int nd,
              int crop) {
  int64_t rows = 1, bs[GLOW_MAXDIM];
  for (int d = 0; d < nd - 1; d++) rows *= sshape[d];
  bs[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; d--) bs[d] = bs[d + 1] * bshape[d + 1];
  int64_t len = sshape[nd - 1];
#pragma omp parallel for schedule(static) if (rows * len >= PAR_CHEAP)
  for (int64_t r = 0; r < rows; r++) {
    int64_t rest = r, o = off[nd - 1];
    for (int d = nd - 2; d >= 0; d--) {
      o += (rest % sshape[d] + off[d]) * bs[d];
      rest /= sshape[d];
    }
    if (crop)
      memcpy(small + r * len, big + o, (size_t)len * sizeof(float));
    else
      memcpy(big + o, small + r * len, (size_t)len * sizeof(float));
  }
}

/* y = x where j - i >= k (upper) or j - i <= k (lower), else 0, over batch r x c matrices */
void glow_tri(const float *x, float *y, int64_t batch, int64_t r, int64_t c, int64_t k, int upper) {
#pragma omp parallel for schedule(static) if (batch * r * c >= PAR_CHEAP)
  for (int64_t b = 0; b < batch; b++)
    for (int64_t i = 0; i < r; i++) {
      const float *xi = x + (b * r + i) * c;
      float *yi = y + (b * r + i) * c;
      for (int64_t j = 0; j < c; j++) {
        int keep = upper ? j - i >= k : j - i <= k;
        yi[j] = keep ? xi[j] : 0.0f;
      }
    }
}

/* y[i] = start + i * step, in double so the last value is as near as float allows */
void glow_range(float *y, int64_t n, double start, double step) {
#pragma omp parallel for schedule(static) if (n >= PAR_CHEAP)
  for (int64_t i = 0; i < n; i++) y[i] = (float)(start + (double)i * step);
}

/* batch identity-like r x c matrices: 1 on the diagonal, 0 elsewhere */
void glow_eye(float *y, int64_t batch, int64_t r, int64_t c) {
  memset(y, 0, sizeof(float) * (size_t)(batch * r * c));
  int64_t m = r < c ? r : c;
  for (int64_t b = 0; b < batch; b++)
    for (int64_t i = 0; i < m; i++) y[(b * r + i) * c + i] = 1.0f;
}
