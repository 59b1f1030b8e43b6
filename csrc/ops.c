/*
 * ops.c -- general tensor maths over raw float arrays: elementwise
 * functions, binary ops and a select with broadcasting (given as strides,
 * 0 along a broadcast dimension), reductions of the middle of an
 * [outer, red, inner] layout (sum, max, log-sum-exp), strided copies
 * (permute, expand), row blocks
 * (narrow, cat, their gradient), row selection (index_select, index_add),
 * gather and scatter_add, and two mask makers (checkerboard, one_hot).
 *
 * The binding (lops.c) works out shapes and strides; these kernels only
 * loop. Big loops run on OpenMP threads; small ones stay on one thread.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "glow.h"
#include "vmath.h"

/* The sizes (elements) from which a loop runs on threads, per class of op.
 * A parallel region costs a few microseconds to open and close when the
 * other core is idle (and a whole time slice, milliseconds, when other work
 * holds it: then glow.set_threads(1) is the answer), so it pays only for
 * loops that take several times that. Measured with bench/par.lua (every
 * loop forced onto threads, 1 against 2 threads, the least of many calls
 * over 3 passes) on a 2-core AMD EPYC (AVX-512, x86-64-v4 copy), shared
 * with other work, so the figures are rough:
 *   cheap: same-shape add and lt never won up to 1M (0.9-1.0x: memory
 *     bound); add {n/64, 64} + {64} 1.2x at 65,536, 1.5x at 262,144; relu
 *     1.7x at 131,072; transpose 1.9x and cat 1.5x at 262,144
 *   math: exp (the cheapest, 0.3 ns an element) 1.1x at 16,384, 1.4x at
 *     32,768, 1.6x at 65,536; softplus 1.6x at 16,384; pow 1.9x at 65,536
 *   reduce: at 65,536 the chunked long sum 1.5x, rows 1.5x, columns 1.1x
 *     (1.3x at 131,072), logsumexp over rows 1.4x; at 32,768 1.1-1.3x
 *   gather: gather and scatter_add (about 6 ns an element, index
 *     arithmetic) 1.4x at 4,096, 1.6x at 65,536; index_select and
 *     index_add copy whole rows and never won up to 1M, like a copy
 * GLOW_PAR_ALWAYS (bench/par.sh) puts every loop on threads, to measure. */
#ifdef GLOW_PAR_ALWAYS
#define PAR_CHEAP 1
#define PAR_MATH 1
#define PAR_REDUCE 1
#define PAR_GATHER 1
#else
#define PAR_CHEAP 262144 /* binary ops, comparisons, where, copies, cheap unary ops, row copies */
#define PAR_MATH 32768   /* the transcendental unary ops (vmath.h) */
#define PAR_REDUCE 65536 /* sum, max, logsumexp (DEFINE_REDUCE) */
#define PAR_GATHER 16384 /* gather, scatter_add */
#endif

int64_t glow_par_min(int cls) {
  switch (cls) {
  case GLOW_PAR_MATH: return PAR_MATH;
  case GLOW_PAR_REDUCE: return PAR_REDUCE;
  case GLOW_PAR_GATHER: return PAR_GATHER;
  default: return PAR_CHEAP;
  }
}

/* One loop per op, the switch outside it, so each loop vectorizes: the
 * transcendental functions are vmath.h's branch-free kernels. */
#define ELEMENTWISE(par, expr)                                                                               \
  do {                                                                                                       \
    const int64_t par_ = (par);                                                                              \
    _Pragma("omp parallel for schedule(static) if (n >= par_)") for (int64_t i = 0; i < n; i++) {            \
      float v = x[i];                                                                                        \
      y[i] = (expr);                                                                                         \
    }                                                                                                        \
  } while (0)
#define UNARY_LOOP(par, expr)                                                                                \
  ELEMENTWISE(par, expr);                                                                                    \
  break

/* pow(x, a): the exponents with an exact shortcut, the limits of an
 * infinite or NaN exponent, and the rest through glow_vpowf */
static void unary_pow(const float *x, float *y, int64_t n, float a) {
  if (a == 0.0f) { /* 1 even for NaN, as C's pow */
    ELEMENTWISE(PAR_CHEAP, ((void)v, 1.0f));
  } else if (a == 1.0f) {
    ELEMENTWISE(PAR_CHEAP, v);
  } else if (a == 2.0f) {
    ELEMENTWISE(PAR_CHEAP, v * v);
  } else if (a == -1.0f) {
    ELEMENTWISE(PAR_CHEAP, 1.0f / v);
  } else if (a == 0.5f) { /* pow(-0, 0.5) = +0 and pow(-inf, 0.5) = +inf, unlike sqrt */
    ELEMENTWISE(PAR_CHEAP, v == -INFINITY ? INFINITY : sqrtf(v) + 0.0f);
  } else if (isnan(a)) {
    ELEMENTWISE(PAR_CHEAP, v == 1.0f ? 1.0f : a);
  } else if (isinf(a)) { /* |x| = 1 gives 1; |x| < 1 gives 0 for +inf; NaN stays */
    float below = a > 0 ? 0.0f : INFINITY, above = a > 0 ? INFINITY : 0.0f;
    ELEMENTWISE(PAR_CHEAP, v != v ? v : (fabsf(v) == 1.0f ? 1.0f : (fabsf(v) < 1.0f ? below : above)));
  } else {
    glow_vpow_t p = glow_vpow_prepare(a);
    ELEMENTWISE(PAR_MATH, glow_vpowf(v, p));
  }
}

void glow_unary(int op, const float *x, float *y, int64_t n, float a, float b) {
  switch (op) {
  case GLOW_OP_EXP: UNARY_LOOP(PAR_MATH, glow_vexpf(v));
  case GLOW_OP_LOG: UNARY_LOOP(PAR_MATH, glow_vlogf(v));
  case GLOW_OP_LOG1P: UNARY_LOOP(PAR_MATH, glow_vlog1pf(v));
  case GLOW_OP_EXPM1: UNARY_LOOP(PAR_MATH, glow_vexpm1f(v));
  case GLOW_OP_SQRT: UNARY_LOOP(PAR_CHEAP, sqrtf(v));
  case GLOW_OP_ABS: UNARY_LOOP(PAR_CHEAP, fabsf(v));
  case GLOW_OP_NEG: UNARY_LOOP(PAR_CHEAP, -v);
  case GLOW_OP_SIGMOID: UNARY_LOOP(PAR_MATH, glow_vsigmoidf(v));
  case GLOW_OP_LOG_SIGMOID: UNARY_LOOP(PAR_MATH, glow_vlog_sigmoidf(v));
  case GLOW_OP_TANH: UNARY_LOOP(PAR_MATH, glow_vtanhf(v));
  case GLOW_OP_SOFTPLUS: UNARY_LOOP(PAR_MATH, glow_vsoftplusf(v));
  case GLOW_OP_RELU: UNARY_LOOP(PAR_CHEAP, v > 0 ? v : 0.0f);
  case GLOW_OP_ELU: UNARY_LOOP(PAR_MATH, glow_veluf(v, a));
  case GLOW_OP_CLAMP: UNARY_LOOP(PAR_CHEAP, v < a ? a : (v > b ? b : v));
  case GLOW_OP_POW: unary_pow(x, y, n, a); break;
  case GLOW_OP_SCALE: UNARY_LOOP(PAR_CHEAP, v * a);
  case GLOW_OP_FLOOR: UNARY_LOOP(PAR_CHEAP, glow_vfloorf(v));
  case GLOW_OP_CEIL: UNARY_LOOP(PAR_CHEAP, glow_vceilf(v));
  case GLOW_OP_ROUND: UNARY_LOOP(PAR_CHEAP, glow_vrintf(v));
  case GLOW_OP_SIGN: UNARY_LOOP(PAR_CHEAP, glow_vsignf(v));
  default: UNARY_LOOP(PAR_CHEAP, v + NAN);
  }
}

/* The reference: libm per element, one thread (the old glow_unary). */
void glow_unary_naive(int op, const float *x, float *y, int64_t n, float a, float b) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i], r;
    switch (op) {
    case GLOW_OP_EXP: r = expf(v); break;
    case GLOW_OP_LOG: r = logf(v); break;
    case GLOW_OP_LOG1P: r = log1pf(v); break;
    case GLOW_OP_EXPM1: r = expm1f(v); break;
    case GLOW_OP_SQRT: r = sqrtf(v); break;
    case GLOW_OP_ABS: r = fabsf(v); break;
    case GLOW_OP_NEG: r = -v; break;
    /* e = e^-|v| never overflows; 1 / (1 + e) or e / (1 + e) by the sign of v */
    case GLOW_OP_SIGMOID: r = v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v)); break;
    case GLOW_OP_LOG_SIGMOID: r = fminf(v, 0.0f) - log1pf(expf(-fabsf(v))); break;
    case GLOW_OP_TANH: r = tanhf(v); break;
    case GLOW_OP_SOFTPLUS: r = fmaxf(v, 0.0f) + log1pf(expf(-fabsf(v))); break;
    case GLOW_OP_RELU: r = v > 0 ? v : 0.0f; break;
    case GLOW_OP_ELU: r = v > 0 ? v : a * expm1f(v); break;
    case GLOW_OP_CLAMP: r = v < a ? a : (v > b ? b : v); break;
    case GLOW_OP_POW: r = powf(v, a); break;
    case GLOW_OP_SCALE: r = v * a; break;
    case GLOW_OP_FLOOR: r = floorf(v); break;
    case GLOW_OP_CEIL: r = ceilf(v); break;
    case GLOW_OP_ROUND: r = rintf(v); break;
    case GLOW_OP_SIGN: r = v > 0 ? 1.0f : (v < 0 ? -1.0f : v); break;
    default: r = v + NAN; break;
    }
    y[i] = r;
  }
}

/* the offsets of flat output index i in operands with strides s (nd dims) */
static int64_t offset_of(int64_t i, int nd, const int64_t *shape, const int64_t *s) {
  int64_t off = 0;
  for (int d = nd - 1; d >= 0; d--) {
    int64_t k = i % shape[d];
    i /= shape[d];
    off += k * s[d];
  }
  return off;
}

/* Elementwise over the output shape with up to three broadcast operands:
 * threads take blocks of runs along the last dimension (its strides fixed);
 * a block finds its first run's offsets by division and steps the others
 * like an odometer. The op's switch sits outside the run's loop, and a run
 * of unit or zero strides is its own loop. */
#define RUN(expr)                                                                                            \
  if (i0 == 1 && i1 == 1)                                                                                    \
    for (int64_t j = 0; j < inner; j++) {                                                                    \
      float u = a[j], w = b[j];                                                                              \
      out[j] = (expr);                                                                                       \
    }                                                                                                        \
  else if (i0 == 1 && i1 == 0) {                                                                             \
    float w = b[0];                                                                                          \
    for (int64_t j = 0; j < inner; j++) {                                                                    \
      float u = a[j];                                                                                        \
      out[j] = (expr);                                                                                       \
    }                                                                                                        \
  } else if (i0 == 0 && i1 == 1) {                                                                           \
    float u = a[0];                                                                                          \
    for (int64_t j = 0; j < inner; j++) {                                                                    \
      float w = b[j];                                                                                        \
      out[j] = (expr);                                                                                       \
    }                                                                                                        \
  } else                                                                                                     \
    for (int64_t j = 0; j < inner; j++) {                                                                    \
      float u = a[j * i0], w = b[j * i1];                                                                    \
      out[j] = (expr);                                                                                       \
    }                                                                                                        \
  break

/* one run of the output: kind 0 a binary op, 1 a select (a the mask), 2 a copy of a */
static void step_run(int op, int kind, const float *a, int64_t i0, const float *b, int64_t i1, const float *c,
                     int64_t i2, float *out, int64_t inner) {
  if (kind == 2) { /* a copy */
    if (i0 == 1)
      memcpy(out, a, (size_t)inner * sizeof(float));
    else
      for (int64_t j = 0; j < inner; j++) out[j] = a[j * i0];
    return;
  }
  if (kind == 1) {
    if (i0 == 1 && i1 == 1 && i2 == 0) {
      float w = c[0];
      for (int64_t j = 0; j < inner; j++) out[j] = a[j] != 0.0f ? b[j] : w;
    } else if (i0 == 1 && i1 == 0 && i2 == 1) {
      float w = b[0];
      for (int64_t j = 0; j < inner; j++) out[j] = a[j] != 0.0f ? w : c[j];
    } else if (i0 == 1 && i1 == 1 && i2 == 1) {
      for (int64_t j = 0; j < inner; j++) out[j] = a[j] != 0.0f ? b[j] : c[j];
    } else {
      for (int64_t j = 0; j < inner; j++) out[j] = a[j * i0] != 0.0f ? b[j * i1] : c[j * i2];
    }
    return;
  }
  switch (op) {
  case GLOW_OP_ADD: RUN(u + w);
  case GLOW_OP_SUB: RUN(u - w);
  case GLOW_OP_MUL: RUN(u * w);
  case GLOW_OP_DIV: RUN(u / w);
  case GLOW_OP_MAX: RUN((u > w || u != u) ? u : w); /* NaN wins, as in torch */
  case GLOW_OP_MIN: RUN((u < w || u != u) ? u : w);
  /* comparisons: 1 or 0; NaN compares false except in ne */
  case GLOW_OP_LT: RUN(u < w ? 1.0f : 0.0f);
  case GLOW_OP_LE: RUN(u <= w ? 1.0f : 0.0f);
  case GLOW_OP_GT: RUN(u > w ? 1.0f : 0.0f);
  case GLOW_OP_GE: RUN(u >= w ? 1.0f : 0.0f);
  case GLOW_OP_EQ: RUN(u == w ? 1.0f : 0.0f);
  case GLOW_OP_NE: RUN(u != w ? 1.0f : 0.0f);
  default: RUN(u + w + NAN);
  }
}

static void broadcast3(int op, int kind, const float *p0, const int64_t *s0, const float *p1,
                       const int64_t *s1, const float *p2, const int64_t *s2, float *y, int nd,
                       const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < nd; d++) n *= shape[d];
  int64_t inner = nd > 0 ? shape[nd - 1] : 1;
  int64_t runs = inner > 0 ? n / inner : 0;
  int64_t i0 = nd > 0 ? s0[nd - 1] : 0, i1 = nd > 0 ? s1[nd - 1] : 0,
          i2 = (nd > 0 && s2) ? s2[nd - 1] : 0;
  int64_t per = inner >= 4096 ? 1 : 4096 / inner; /* runs per block */
  int64_t blocks = (runs + per - 1) / per;
  int od = nd - 1; /* the dims the odometer steps: 0 .. od-1 */
#pragma omp parallel for schedule(static) if (n >= PAR_CHEAP)
  for (int64_t blk = 0; blk < blocks; blk++) {
    int64_t r0 = blk * per, r1 = r0 + per < runs ? r0 + per : runs;
    int64_t k[GLOW_MAXDIM], rest = r0;
    for (int d = od - 1; d >= 0; d--) {
      k[d] = rest % shape[d];
      rest /= shape[d];
    }
    int64_t o0 = offset_of(r0 * inner, nd, shape, s0), o1 = offset_of(r0 * inner, nd, shape, s1);
    int64_t o2 = s2 ? offset_of(r0 * inner, nd, shape, s2) : 0;
    for (int64_t r = r0; r < r1; r++) {
      if (r > r0) /* step to run r */
        for (int d = od - 1; d >= 0; d--) {
          o0 += s0[d], o1 += s1[d], o2 += s2 ? s2[d] : 0;
          if (++k[d] < shape[d]) break;
          o0 -= s0[d] * shape[d], o1 -= s1[d] * shape[d], o2 -= s2 ? s2[d] * shape[d] : 0;
          k[d] = 0;
        }
      step_run(op, kind, p0 + o0, i0, p1 + o1, i1, s2 ? p2 + o2 : NULL, i2, y + r * inner, inner);
    }
  }
}

void glow_binary(int op, const float *a, const int64_t *sa, const float *b, const int64_t *sb, float *y,
                 int nd, const int64_t *shape) {
  broadcast3(op, 0, a, sa, b, sb, NULL, NULL, y, nd, shape);
}

void glow_where(const float *m, const int64_t *sm, const float *a, const int64_t *sa, const float *b,
                const int64_t *sb, float *y, int nd, const int64_t *shape) {
  broadcast3(0, 1, m, sm, a, sa, b, sb, y, nd, shape);
}

void glow_strided_copy(const float *x, const int64_t *sx, float *y, int nd, const int64_t *shape) {
  static const int64_t zero[GLOW_MAXDIM] = {0};
  broadcast3(0, 2, x, sx, x, zero, NULL, NULL, y, nd, shape);
}

/* One reduction per op, each instantiated from the macro below so its loops
 * vectorize. ACC(a, v, s) folds element v into accumulator a, s being the
 * shift of its output (sum of exp only); COMB(a, b) merges two partials.
 *
 * Three layouts: a long reduction into few outputs (outer 1, inner < 64) is
 * cut into a fixed number of row chunks that depends on the sizes only, the
 * chunks' partials merged in chunk order, so the result is the same for any
 * thread count and from run to run; a wide one (outer 1) splits the columns
 * between threads; otherwise threads take whole outer slices. */
#define MAXV(a, v) (((v) > (a) || (v) != (v)) ? (v) : (a)) /* max, NaN wins */
#define CHUNKS 64
#define CHUNK_MIN 16384    /* elements per chunk, at least */
#define CHUNKED_MIN 32768 /* the size from which a long reduction is cut in chunks */
#define DEFINE_REDUCE(fname, INIT, ACC, COMB)                                                                \
  static void fname(const float *x, const float *sh, float *y, int64_t outer, int64_t red, int64_t inner) { \
    (void)sh;                                                                                                \
    if (outer == 1 && inner < 64 && red * inner >= CHUNKED_MIN) {                                            \
      int64_t nc = (red * inner + CHUNK_MIN - 1) / CHUNK_MIN;                                                \
      if (nc > CHUNKS) nc = CHUNKS;                                                                          \
      int64_t per = (red + nc - 1) / nc;                                                                     \
      float part[CHUNKS][64];                                                                                \
      _Pragma("omp parallel for schedule(static) if (red * inner >= PAR_REDUCE)")                            \
      for (int64_t c = 0; c < nc; c++) {                                                                     \
        float *p = part[c];                                                                                  \
        for (int64_t j = 0; j < inner; j++) p[j] = (INIT);                                                   \
        int64_t r1 = (c + 1) * per < red ? (c + 1) * per : red;                                              \
        for (int64_t r = c * per; r < r1; r++) {                                                             \
          const float *row = x + r * inner;                                                                  \
          for (int64_t j = 0; j < inner; j++) {                                                              \
            float a = p[j], v = row[j], s = sh ? sh[j] : 0.0f;                                               \
            (void)s;                                                                                         \
            p[j] = (ACC);                                                                                    \
          }                                                                                                  \
        }                                                                                                    \
      }                                                                                                      \
      for (int64_t j = 0; j < inner; j++) {                                                                  \
        float a = part[0][j];                                                                                \
        for (int64_t c = 1; c < nc; c++) {                                                                   \
          float b = part[c][j];                                                                              \
          a = (COMB);                                                                                        \
        }                                                                                                    \
        y[j] = a;                                                                                            \
      }                                                                                                      \
      return;                                                                                                \
    }                                                                                                        \
    if (outer == 1 && red * inner >= PAR_REDUCE) {                                                           \
      _Pragma("omp parallel for schedule(static)") for (int64_t j0 = 0; j0 < inner; j0 += 64) {              \
        int64_t j1 = j0 + 64 < inner ? j0 + 64 : inner;                                                      \
        for (int64_t j = j0; j < j1; j++) y[j] = (INIT);                                                     \
        for (int64_t r = 0; r < red; r++) {                                                                  \
          const float *row = x + r * inner;                                                                  \
          for (int64_t j = j0; j < j1; j++) {                                                                \
            float a = y[j], v = row[j], s = sh ? sh[j] : 0.0f;                                               \
            (void)s;                                                                                         \
            y[j] = (ACC);                                                                                    \
          }                                                                                                  \
        }                                                                                                    \
      }                                                                                                      \
      return;                                                                                                \
    }                                                                                                        \
    if (inner == 1) { /* each output a contiguous row of red */                                             \
      _Pragma("omp parallel for schedule(static) if (outer * red >= PAR_REDUCE)")                            \
      for (int64_t o = 0; o < outer; o++) {                                                                  \
        const float *row = x + o * red;                                                                      \
        float a = (INIT), s = sh ? sh[o] : 0.0f;                                                             \
        (void)s;                                                                                             \
        for (int64_t r = 0; r < red; r++) {                                                                  \
          float v = row[r];                                                                                  \
          a = (ACC);                                                                                         \
        }                                                                                                    \
        y[o] = a;                                                                                            \
      }                                                                                                      \
      return;                                                                                                \
    }                                                                                                        \
    _Pragma("omp parallel for schedule(static) if (outer * red * inner >= PAR_REDUCE)")                      \
    for (int64_t o = 0; o < outer; o++) {                                                                    \
      float *out = y + o * inner;                                                                            \
      const float *so = sh ? sh + o * inner : NULL;                                                          \
      for (int64_t j = 0; j < inner; j++) out[j] = (INIT);                                                   \
      for (int64_t r = 0; r < red; r++) {                                                                    \
        const float *row = x + (o * red + r) * inner;                                                        \
        for (int64_t j = 0; j < inner; j++) {                                                                \
          float a = out[j], v = row[j], s = so ? so[j] : 0.0f;                                               \
          (void)s;                                                                                           \
          out[j] = (ACC);                                                                                    \
        }                                                                                                    \
      }                                                                                                      \
    }                                                                                                        \
  }

DEFINE_REDUCE(reduce_sum, 0.0f, a + v, a + b)
DEFINE_REDUCE(reduce_max, -INFINITY, MAXV(a, v), MAXV(a, b))
DEFINE_REDUCE(reduce_sumexp, 0.0f, a + glow_vexpf(v - s), a + b)

void glow_reduce(int op, const float *x, const float *shift, float *y, int64_t outer, int64_t red,
                 int64_t inner) {
  switch (op) {
  case GLOW_OP_MAX: reduce_max(x, NULL, y, outer, red, inner); break;
  case GLOW_OP_SUMEXP: reduce_sumexp(x, shift, y, outer, red, inner); break;
  default: reduce_sum(x, NULL, y, outer, red, inner); break;
  }
}

/* log sum exp(x - m) + m with m the maximum, or 0 where the maximum is
 * infinite: all -inf gives -inf, any +inf gives +inf, as the limits do */
void glow_logsumexp(const float *x, float *m, float *y, int64_t outer, int64_t red, int64_t inner) {
  int64_t n = outer * inner;
  reduce_max(x, NULL, m, outer, red, inner);
#pragma omp parallel for schedule(static) if (n >= PAR_CHEAP)
  for (int64_t i = 0; i < n; i++)
    if (isinf(m[i])) m[i] = 0.0f;
  reduce_sumexp(x, m, y, outer, red, inner);
#pragma omp parallel for schedule(static) if (n >= PAR_MATH)
  for (int64_t i = 0; i < n; i++) y[i] = glow_vlogf(y[i]) + m[i];
}

void glow_rows(const float *src, int64_t srows, int64_t soff, float *dst, int64_t drows, int64_t doff,
               int64_t rows, int64_t outer, int64_t inner, int add) {
#pragma omp parallel for schedule(static) if (outer * rows * inner >= PAR_CHEAP)
  for (int64_t o = 0; o < outer; o++) {
    const float *s = src + (o * srows + soff) * inner;
    float *d = dst + (o * drows + doff) * inner;
    if (add)
      for (int64_t k = 0; k < rows * inner; k++) d[k] += s[k];
    else
      memcpy(d, s, (size_t)(rows * inner) * sizeof(float));
  }
}

void glow_index_rows(const float *x, int64_t xrows, float *y, const int64_t *idx, int64_t nidx,
                     int64_t outer, int64_t inner, int add) {
  if (add) { /* y[o, idx[j]] += x[o, j]: rows may repeat, so one thread per outer slice */
#pragma omp parallel for schedule(static) if (outer * nidx * inner >= PAR_CHEAP && outer > 1)
    for (int64_t o = 0; o < outer; o++)
      for (int64_t j = 0; j < nidx; j++) {
        const float *s = x + (o * nidx + j) * inner;
        float *d = y + (o * xrows + idx[j]) * inner;
        for (int64_t k = 0; k < inner; k++) d[k] += s[k];
      }
    return;
  }
#pragma omp parallel for schedule(static) if (outer * nidx * inner >= PAR_CHEAP)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < nidx; j++)
      memcpy(y + (o * nidx + j) * inner, x + (o * xrows + idx[j]) * inner, (size_t)inner * sizeof(float));
}

/* Threads take slices along the first dimension of the index. A gather
 * never collides; a scatter may add into one element twice, except across
 * those slices when dim is not the first (each slice then writes its own
 * slice of x), so only then does it run in parallel. */
void glow_gather(float *x, const int64_t *xshape, const int64_t *idx, const int64_t *ishape, int nd, int dim,
                 float *y, int scatter) {
  int64_t n = 1, xs[GLOW_MAXDIM];
  for (int d = 0; d < nd; d++) n *= ishape[d];
  xs[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; d--) xs[d] = xs[d + 1] * xshape[d + 1];
  int64_t slices = ishape[0], per = n / ishape[0];
  int par = n >= PAR_GATHER && slices > 1 && (!scatter || dim != 0);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t s0 = 0; s0 < slices; s0++)
    for (int64_t i = s0 * per; i < (s0 + 1) * per; i++) {
      int64_t rest = i, off = 0;
      for (int d = nd - 1; d >= 0; d--) {
        int64_t k = rest % ishape[d];
        rest /= ishape[d];
        off += (d == dim ? idx[i] : k) * xs[d];
      }
      if (scatter == 2)
        x[off] = y[i];
      else if (scatter)
        x[off] += y[i];
      else
        y[i] = x[off];
    }
}

void glow_checkerboard(float *y, int64_t n, int64_t h, int64_t w, int64_t c, int parity) {
#pragma omp parallel for collapse(2) schedule(static) if (n * h * w * c >= PAR_CHEAP)
  for (int64_t b = 0; b < n; b++)
    for (int64_t i = 0; i < h; i++)
      for (int64_t j = 0; j < w; j++) {
        float v = ((i + j + parity) % 2 == 0) ? 1.0f : 0.0f;
        float *p = y + ((b * h + i) * w + j) * c;
        for (int64_t k = 0; k < c; k++) p[k] = v;
      }
}

void glow_one_hot(const int *labels, int64_t n, int64_t k, float *y) {
  memset(y, 0, (size_t)(n * k) * sizeof(float));
  for (int64_t i = 0; i < n; i++) y[i * k + labels[i]] = 1.0f;
}
