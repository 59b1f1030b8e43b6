/*
 * fuse.c -- fused elementwise programs: a chain of elementwise ops (unary
 * and broadcasting binary ones) run in one pass over the output, block by
 * block, every intermediate living in a small per-thread buffer instead of
 * a tensor of its own; and its backward, which recomputes the chain in the
 * block and sends the output's gradient back to every input in the same
 * pass (summed over the broadcast dims for an input of a smaller shape).
 *
 * glow.autograd builds these programs from the ops a script writes
 * (lua/glow/autograd.lua, "fusion"), so (h + b) * s followed by relu costs
 * one read of h and one write, and its backward one read of h and of the
 * gradient, as a hand-fused kernel does.
 *
 * Each op computes what its unfused kernel in ops.c computes, with the same
 * vmath.h functions, so a program's output equals the unfused ops' to the
 * bit. Gradients of broadcast inputs sum in double over chunks of the
 * output whose bounds depend on the sizes only, merged in chunk order: the
 * result does not depend on the thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glow.h"
#include "vmath.h"

#define BLK 256         /* elements a block: the registers of one thread stay in L1/L2 */
#define CHUNK 16384     /* elements a chunk: the unit of threads and of partial sums */
#define PART_MAX 4194304 /* doubles of partial sums one input may take (else a full gradient) */

/* where a flat output index e falls in an operand of strides st: the
 * odometer digits k and the offset */
static int64_t seek(int nd, const int64_t *shape, const int64_t *st, int64_t e, int64_t *k) {
  int64_t off = 0;
  for (int d = nd - 1; d >= 0; d--) {
    k[d] = e % shape[d];
    e /= shape[d];
    off += k[d] * st[d];
  }
  return off;
}

/* step the odometer over len elements of the last dim (len reaches at most its end) */
static int64_t advance(int nd, const int64_t *shape, const int64_t *st, int64_t *k, int64_t off, int64_t len) {
  int last = nd - 1;
  off += len * st[last];
  k[last] += len;
  for (int d = last; d > 0 && k[d] == shape[d]; d--) {
    off -= shape[d] * st[d];
    k[d] = 0;
    off += st[d - 1];
    k[d - 1]++;
  }
  return off;
}

/* buf[0 .. cnt) = the operand at output elements e0 .. e0 + cnt */
static void gather(const float *p, const int64_t *st, int nd, const int64_t *shape, int64_t e0, int64_t cnt,
                   float *buf) {
  int64_t k[GLOW_MAXDIM];
  int64_t off = seek(nd, shape, st, e0, k);
  int64_t sl = st[nd - 1];
  for (int64_t t = 0; t < cnt;) {
    int64_t len = shape[nd - 1] - k[nd - 1];
    if (len > cnt - t) len = cnt - t;
    if (sl == 1) {
      memcpy(buf + t, p + off, (size_t)len * sizeof(float));
    } else if (sl == 0) {
      float v = p[off];
      for (int64_t j = 0; j < len; j++) buf[t + j] = v;
    } else {
      for (int64_t j = 0; j < len; j++) buf[t + j] = p[off + j * sl];
    }
    t += len;
    if (t < cnt) off = advance(nd, shape, st, k, off, len);
  }
}

/* acc (the operand's own layout) += buf[0 .. cnt) at output elements e0 .. */
static void scatter_add(double *acc, const int64_t *st, int nd, const int64_t *shape, int64_t e0, int64_t cnt,
                        const float *buf) {
  int64_t k[GLOW_MAXDIM];
  int64_t off = seek(nd, shape, st, e0, k);
  int64_t sl = st[nd - 1];
  for (int64_t t = 0; t < cnt;) {
    int64_t len = shape[nd - 1] - k[nd - 1];
    if (len > cnt - t) len = cnt - t;
    if (sl == 1) {
      double *a = acc + off;
      const float *b = buf + t;
      for (int64_t j = 0; j < len; j++) a[j] += b[j];
    } else if (sl == 0) {
      double s = 0;
      for (int64_t j = 0; j < len; j++) s += buf[t + j];
      acc[off] += s;
    } else {
      for (int64_t j = 0; j < len; j++) acc[off + j * sl] += buf[t + j];
    }
    t += len;
    if (t < cnt) off = advance(nd, shape, st, k, off, len);
  }
}

/* pow(x, a) as ops.c's unary_pow computes it, one element */
static inline float pow_el(float v, float a, const glow_vpow_t *p) {
  if (a == 0.0f) return 1.0f;
  if (a == 1.0f) return v;
  if (a == 2.0f) return v * v;
  if (a == -1.0f) return 1.0f / v;
  if (a == 0.5f) return v == -INFINITY ? INFINITY : sqrtf(v) + 0.0f;
  if (isnan(a)) return v == 1.0f ? 1.0f : a;
  if (isinf(a)) {
    float below = a > 0 ? 0.0f : INFINITY, above = a > 0 ? INFINITY : 0.0f;
    return v != v ? v : (fabsf(v) == 1.0f ? 1.0f : (fabsf(v) < 1.0f ? below : above));
  }
  return glow_vpowf(v, *p);
}

static void pow_run(const float *x, float *y, int64_t n, float a, const glow_vpow_t *p) {
  if (a == 2.0f) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
  } else if (a == 0.0f || a == 1.0f || a == -1.0f || a == 0.5f || isnan(a) || isinf(a)) {
    for (int64_t i = 0; i < n; i++) y[i] = pow_el(x[i], a, p);
  } else {
    for (int64_t i = 0; i < n; i++) y[i] = glow_vpowf(x[i], *p);
  }
}

#define LOOP(expr)                                                                                           \
  for (int64_t i = 0; i < n; i++) {                                                                          \
    float u = x[i], w = z ? z[i] : 0.0f;                                                                     \
    (void)w;                                                                                                 \
    r[i] = (expr);                                                                                           \
  }                                                                                                          \
  break

/* r[0 .. n) = op(x, z) for one instruction over a block */
static void run_op(const glow_ew_ins *in, const glow_vpow_t *pp, const float *x, const float *z, float *r,
                   int64_t n) {
  float a = in->p, b = in->q;
  switch (in->op) {
  case GLOW_OP_ADD: LOOP(u + w);
  case GLOW_OP_SUB: LOOP(u - w);
  case GLOW_OP_MUL: LOOP(u * w);
  case GLOW_OP_DIV: LOOP(u / w);
  case GLOW_OP_MAX: LOOP((u > w || u != u) ? u : w);
  case GLOW_OP_MIN: LOOP((u < w || u != u) ? u : w);
  case GLOW_OP_EXP: LOOP(glow_vexpf(u));
  case GLOW_OP_LOG: LOOP(glow_vlogf(u));
  case GLOW_OP_LOG1P: LOOP(glow_vlog1pf(u));
  case GLOW_OP_EXPM1: LOOP(glow_vexpm1f(u));
  case GLOW_OP_SQRT: LOOP(sqrtf(u));
  case GLOW_OP_ABS: LOOP(fabsf(u));
  case GLOW_OP_NEG: LOOP(-u);
  case GLOW_OP_SIGMOID: LOOP(glow_vsigmoidf(u));
  case GLOW_OP_LOG_SIGMOID: LOOP(glow_vlog_sigmoidf(u));
  case GLOW_OP_TANH: LOOP(glow_vtanhf(u));
  case GLOW_OP_SOFTPLUS: LOOP(glow_vsoftplusf(u));
  case GLOW_OP_RELU: LOOP(u > 0 ? u : 0.0f);
  case GLOW_OP_ELU: LOOP(glow_veluf(u, a));
  case GLOW_OP_CLAMP: LOOP(u < a ? a : (u > b ? b : u));
  case GLOW_OP_POW: pow_run(x, r, n, a, pp); break;
  default: LOOP(u + NAN);
  }
}
#undef LOOP

/* the adjoints of one instruction's operands: ga += d/dx, gz += d/dz (either NULL
 * when not wanted); x, z its operands, r its value, g its adjoint. Each is the
 * rule glow.autograd gives the unfused op. */
#define ADJ_LOOP(load, body)                                                                                 \
  for (int64_t i = 0; i < n; i++) {                                                                          \
    float u = x[i], d = g[i];                                                                                \
    (void)u;                                                                                                 \
    load;                                                                                                    \
    body;                                                                                                    \
  }
/* a unary op: ga = or += ea (u its operand, y its value, d its adjoint); sa:
 * the first contribution to ga in this block, which assigns (no zeroing) */
#define ADJ1(ea)                                                                                             \
  if (sa) {                                                                                                  \
    ADJ_LOOP(float y = r[i]; (void)y, ga[i] = (ea))                                                          \
  } else {                                                                                                   \
    ADJ_LOOP(float y = r[i]; (void)y, ga[i] += (ea))                                                         \
  }                                                                                                          \
  break
/* a binary op: the same for ga and gz (w its second operand) */
#define ADJ2_LOOP(body) ADJ_LOOP(float w = z[i]; (void)w, body)
#define ADJ2(ea, ez)                                                                                         \
  if (ga && gz) {                                                                                            \
    if (sa && sz) {                                                                                          \
      ADJ2_LOOP(ga[i] = (ea); gz[i] = (ez))                                                                  \
    } else if (sa) {                                                                                         \
      ADJ2_LOOP(ga[i] = (ea); gz[i] += (ez))                                                                 \
    } else if (sz) {                                                                                         \
      ADJ2_LOOP(ga[i] += (ea); gz[i] = (ez))                                                                 \
    } else {                                                                                                 \
      ADJ2_LOOP(ga[i] += (ea); gz[i] += (ez))                                                                \
    }                                                                                                        \
  } else if (ga) {                                                                                           \
    if (sa) {                                                                                                \
      ADJ2_LOOP(ga[i] = (ea))                                                                                \
    } else {                                                                                                 \
      ADJ2_LOOP(ga[i] += (ea))                                                                               \
    }                                                                                                        \
  } else if (sz) {                                                                                           \
    ADJ2_LOOP(gz[i] = (ez))                                                                                  \
  } else {                                                                                                   \
    ADJ2_LOOP(gz[i] += (ez))                                                                                 \
  }                                                                                                          \
  break

static void adjoint(const glow_ew_ins *in, const glow_vpow_t *pm1, const float *restrict x,
                    const float *restrict z, const float *restrict r, const float *restrict g, float *ga,
                    float *gz, int sa, int sz, int64_t n) {
  float a = in->p;
  switch (in->op) {
  case GLOW_OP_ADD: ADJ2(d, d);
  case GLOW_OP_SUB: ADJ2(d, -d);
  case GLOW_OP_MUL: ADJ2(d * w, d * u);
  case GLOW_OP_DIV: ADJ2(d / w, -(d * u) / (w * w));
  /* ties (and a NaN b) send the gradient to b, as the unfused rule */
  case GLOW_OP_MAX: ADJ2(((u > w || u != u) ? u : w) - w != 0.0f ? d : 0.0f,
                         ((u > w || u != u) ? u : w) - w != 0.0f ? 0.0f : d);
  case GLOW_OP_MIN: ADJ2(((u < w || u != u) ? u : w) - w != 0.0f ? d : 0.0f,
                         ((u < w || u != u) ? u : w) - w != 0.0f ? 0.0f : d);
  case GLOW_OP_EXP: ADJ1(d * y);
  case GLOW_OP_LOG: ADJ1(d / u);
  case GLOW_OP_LOG1P: ADJ1(d / (u + 1.0f));
  case GLOW_OP_EXPM1: ADJ1(d * (y + 1.0f));
  case GLOW_OP_SQRT: ADJ1(d / (y * 2.0f));
  case GLOW_OP_ABS: ADJ1(d * (u / (fabsf(u) + 1e-30f)));
  case GLOW_OP_NEG: ADJ1(-d);
  case GLOW_OP_SIGMOID: ADJ1(d * (y * (1.0f - y)));
  case GLOW_OP_LOG_SIGMOID: ADJ1(d * glow_vsigmoidf(-u));
  case GLOW_OP_TANH: ADJ1(d * (1.0f - y * y));
  case GLOW_OP_SOFTPLUS: ADJ1(d * glow_vsigmoidf(u));
  case GLOW_OP_RELU: ADJ1(y != 0.0f ? d : 0.0f);
  case GLOW_OP_ELU: ADJ1(u > 0.0f ? d : d * (y + a));
  case GLOW_OP_CLAMP: ADJ1(y - u != 0.0f ? 0.0f : d);
  case GLOW_OP_POW: {
    float q = in->q; /* the exponent less one */
    for (int64_t i = 0; i < n; i++) ga[i] = (sa ? 0.0f : ga[i]) + g[i] * (pow_el(x[i], q, pm1) * a);
    break;
  }
  default: ADJ1(d + NAN);
  }
}
#undef ADJ1
#undef ADJ2
#undef ADJ2_LOOP
#undef ADJ_LOOP

/* One thread's registers: nreg blocks of values (and of adjoints). */
typedef struct {
  float *val, *adj;
  const float **v; /* the value of each register for the current block */
  float **a;       /* the adjoint of each register (backward) */
  char *set;       /* no contribution to that adjoint yet in this block */
  float **tile;    /* per input: its period repeated (see periodic), or NULL */
  int64_t *period;
} regs;

#define TILE_MAX 4096 /* the longest period tiled */

/* The period of an input that repeats along the output with no gaps: a
 * number (1), or a vector over the last dim (a per-channel parameter {c}
 * against {n, h, w, c}): its value at output element e is p[e % period].
 * 0 for the others. */
static int64_t periodic(const glow_ew_prog *P, const glow_ew_in *in) {
  if (in->full) return 0;
  int last = P->nd - 1;
  for (int d = 0; d < last; d++)
    if (in->st[d] != 0) return 0;
  if (in->st[last] == 0) return 1;
  if (in->st[last] == 1 && P->shape[last] <= TILE_MAX) return P->shape[last];
  return 0;
}

static int regs_init(const glow_ew_prog *P, regs *R, int backward) {
  int nreg = P->nin + P->nins, ok = 1;
  R->val = glow_alloc_uninit((size_t)nreg * BLK * (backward ? 2 : 1));
  R->v = malloc(sizeof(float *) * (size_t)nreg);
  R->a = malloc(sizeof(float *) * (size_t)nreg);
  R->set = malloc((size_t)nreg);
  R->tile = calloc((size_t)P->nin, sizeof(float *));
  R->period = calloc((size_t)P->nin, sizeof(int64_t));
  R->adj = R->val && backward ? R->val + (size_t)nreg * BLK : NULL;
  if (!(R->val && R->v && R->a && R->set && R->tile && R->period)) return 0;
  /* a periodic input, repeated over a block and one period more: any block
   * reads it in place from offset e0 % period */
  for (int i = 0; i < P->nin && ok; i++) {
    int64_t per = periodic(P, &P->in[i]);
    if (!per) continue;
    R->tile[i] = glow_alloc_uninit((size_t)(BLK + per));
    if (!R->tile[i]) {
      ok = 0;
      break;
    }
    for (int64_t j = 0, k = 0; j < BLK + per; j++) {
      R->tile[i][j] = P->in[i].p[k];
      if (++k == per) k = 0;
    }
    R->period[i] = per;
  }
  return ok;
}

static void regs_free(const glow_ew_prog *P, regs *R) {
  for (int i = 0; R->tile && i < P->nin; i++) glow_free(R->tile[i]);
  free(R->tile);
  free(R->period);
  glow_free(R->val);
  free(R->v);
  free(R->a);
  free(R->set);
}

/* Run the program over output elements e0 .. e0 + cnt: inputs gathered (or
 * read in place when laid out as the output), each instruction into its
 * register. The last one writes into out when given. */
static void eval_block(const glow_ew_prog *P, regs *R, const glow_vpow_t *pp, int64_t e0, int64_t cnt, float *out) {
  for (int i = 0; i < P->nin; i++) {
    const glow_ew_in *in = &P->in[i];
    if (in->full) {
      R->v[i] = in->p + e0;
    } else if (R->tile[i]) {
      R->v[i] = R->tile[i] + e0 % R->period[i];
    } else {
      float *b = R->val + (size_t)i * BLK;
      gather(in->p, in->st, P->nd, P->shape, e0, cnt, b);
      R->v[i] = b;
    }
  }
  for (int k = 0; k < P->nins; k++) {
    const glow_ew_ins *in = &P->code[k];
    int r = P->nin + k;
    float *dst = (out && k == P->nins - 1) ? out : R->val + (size_t)r * BLK;
    run_op(in, &pp[2 * k], R->v[in->a], in->b >= 0 ? R->v[in->b] : NULL, dst, cnt);
    R->v[r] = dst;
  }
}

static void prepare_pow(const glow_ew_prog *P, glow_vpow_t *pp) {
  for (int k = 0; k < P->nins; k++) {
    memset(&pp[2 * k], 0, 2 * sizeof *pp);
    if (P->code[k].op == GLOW_OP_POW) {
      pp[2 * k] = glow_vpow_prepare(P->code[k].p);
      pp[2 * k + 1] = glow_vpow_prepare(P->code[k].q);
    }
  }
}

static int64_t prog_numel(const glow_ew_prog *P) {
  int64_t n = 1;
  for (int d = 0; d < P->nd; d++) n *= P->shape[d];
  return n;
}

/* a program of three or more ops, or with a transcendental one, costs what
 * a transcendental op does */
static int64_t prog_par(const glow_ew_prog *P) {
  if (P->nins >= 3) return glow_par_min(GLOW_PAR_MATH);
  for (int k = 0; k < P->nins; k++) {
    switch (P->code[k].op) {
    case GLOW_OP_EXP: case GLOW_OP_LOG: case GLOW_OP_LOG1P: case GLOW_OP_EXPM1: case GLOW_OP_SIGMOID:
    case GLOW_OP_LOG_SIGMOID: case GLOW_OP_TANH: case GLOW_OP_SOFTPLUS: case GLOW_OP_ELU: case GLOW_OP_POW:
      return glow_par_min(GLOW_PAR_MATH);
    default: break;
    }
  }
  return glow_par_min(GLOW_PAR_CHEAP);
}

int glow_ew_forward(const glow_ew_prog *P, float *y) {
  int64_t n = prog_numel(P), nchunks = (n + CHUNK - 1) / CHUNK;
  int fail = 0;
  glow_vpow_t *pp = malloc(sizeof *pp * (size_t)(2 * P->nins));
  if (!pp) return GLOW_ENOMEM;
  prepare_pow(P, pp);
#pragma omp parallel if (n >= prog_par(P)) reduction(| : fail)
  {
    regs R;
    /* every thread enters the loop (a thread that could not allocate skips
     * its chunks and reports the failure) */
    int ok = regs_init(P, &R, 0);
    if (!ok) fail = 1;
#pragma omp for schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
      if (!ok) continue;
      int64_t c1 = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
      for (int64_t e0 = c * CHUNK; e0 < c1; e0 += BLK) {
        int64_t cnt = c1 - e0 < BLK ? c1 - e0 : BLK;
        eval_block(P, &R, pp, e0, cnt, y + e0);
      }
    }
    regs_free(P, &R);
  }
  free(pp);
  return fail ? GLOW_ENOMEM : GLOW_OK;
}

int glow_ew_unused(const glow_ew_ins *code, int nins, int nin) {
  int nreg = nin + nins;
  char used[GLOW_EW_MAXREG] = {0};
  if (nreg > GLOW_EW_MAXREG || nins < 1) return 0;
  used[nreg - 1] = 1;
  for (int k = nins - 1; k >= 0; k--) {
    if (!used[nin + k]) continue;
    used[code[k].a] = 1;
    if (code[k].b >= 0) used[code[k].b] = 1;
  }
  for (int r = 0; r < nreg; r++)
    if (!used[r]) return r;
  return -1;
}

int glow_ew_partial_ok(const glow_ew_prog *P, int64_t in_numel) {
  int64_t nchunks = (prog_numel(P) + CHUNK - 1) / CHUNK;
  return in_numel <= PART_MAX / (nchunks ? nchunks : 1);
}

int glow_ew_backward(const glow_ew_prog *P, const float *g, float **grad, const int *reduce,
                     const int64_t *in_numel) {
  int64_t n = prog_numel(P), nchunks = (n + CHUNK - 1) / CHUNK;
  int nin = P->nin, nreg = nin + P->nins, fail = 0;
  /* which registers lead to a wanted input: only their adjoints are kept */
  char *dep = calloc((size_t)nreg, 1);
  double **part = calloc((size_t)nin, sizeof(double *));
  glow_vpow_t *pp = malloc(sizeof *pp * (size_t)(2 * P->nins));
  if (!dep || !part || !pp) fail = 1;
  for (int i = 0; i < nin && !fail; i++) {
    dep[i] = grad[i] != NULL;
    if (grad[i] && reduce[i]) {
      part[i] = calloc((size_t)(nchunks * in_numel[i]), sizeof(double));
      if (!part[i]) fail = 1;
    }
  }
  if (fail) goto done;
  prepare_pow(P, pp);
  for (int k = 0; k < P->nins; k++)
    dep[nin + k] = dep[P->code[k].a] || (P->code[k].b >= 0 && dep[P->code[k].b]);
#pragma omp parallel if (n >= prog_par(P)) reduction(| : fail)
  {
    regs R;
    int ok = regs_init(P, &R, 1);
    if (!ok) fail = 1;
    {
#pragma omp for schedule(static)
      for (int64_t c = 0; c < nchunks; c++) {
        if (!ok) continue;
        int64_t c1 = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (int64_t e0 = c * CHUNK; e0 < c1; e0 += BLK) {
          int64_t cnt = c1 - e0 < BLK ? c1 - e0 : BLK;
          eval_block(P, &R, pp, e0, cnt, NULL);
          /* the adjoints: the output's is g itself; a wanted input laid out
           * as the output writes straight into its gradient */
          for (int r = 0; r < nreg; r++) {
            R.a[r] = R.adj + (size_t)r * BLK;
            R.set[r] = 1;
          }
          R.a[nreg - 1] = (float *)(uintptr_t)(g + e0); /* read only: nothing consumes the output */
          for (int i = 0; i < nin; i++)
            if (grad[i] && !reduce[i]) R.a[i] = grad[i] + e0;
          for (int k = P->nins - 1; k >= 0; k--) {
            const glow_ew_ins *in = &P->code[k];
            int r = nin + k;
            if (!dep[r]) continue;
            float *ga = dep[in->a] ? R.a[in->a] : NULL;
            float *gz = in->b >= 0 && dep[in->b] ? R.a[in->b] : NULL;
            if (!ga && !gz) continue;
            int sa = ga && R.set[in->a];
            if (ga) R.set[in->a] = 0;
            int sz = gz && R.set[in->b]; /* after a's: x * x assigns once, then adds */
            if (gz) R.set[in->b] = 0;
            adjoint(in, &pp[2 * k + 1], R.v[in->a], in->b >= 0 ? R.v[in->b] : NULL, R.v[r], R.a[r], ga, gz,
                    sa, sz, cnt);
          }
          for (int i = 0; i < nin; i++)
            if (grad[i] && reduce[i])
              scatter_add(part[i] + c * in_numel[i], P->in[i].st, P->nd, P->shape, e0, cnt, R.a[i]);
        }
      }
    }
    regs_free(P, &R);
  }
  /* the chunks' partial sums, in chunk order */
  for (int i = 0; i < nin && !fail; i++) {
    if (!part[i]) continue;
    for (int64_t j = 0; j < in_numel[i]; j++) {
      double s = 0;
      for (int64_t c = 0; c < nchunks; c++) s += part[i][c * in_numel[i] + j];
      grad[i][j] = (float)s;
    }
  }
done:
  for (int i = 0; part && i < nin; i++) free(part[i]);
  free(part);
  free(dep);
  free(pp);
  return fail ? GLOW_ENOMEM : GLOW_OK;
}
