/*
 * lflow.c -- the Lua binding of the flow steps' kernels (invconv.c,
 * coupling.c, the layout kernels of tensor.c): the small matrix routines
 * (slogdet, inverse, random_rotation, the LU parametrization lu, lu_weight,
 * lu_weight_backward), the invertible 1x1 convolution, channel permutation,
 * the layout moves (split/concat channels, squeeze/unsqueeze) and the affine
 * coupling.
 * Each wrapper checks the element counts of its arguments before it touches
 * memory, raises a Lua error that names the argument and the shapes on
 * misuse, and allocates its outputs as new tensors.
 */
#include <lauxlib.h>
#include <lua.h>

#include <string.h>

#include "glow.h"
#include "lglow.h"

/* ------------------------------------------------------------------ matrices */
static int64_t checksquare(lua_State *L, Tensor *m, const char *what) {
  if (m->ndim != 2 || m->shape[0] != m->shape[1]) {
    char b[128];
    lg_fail(L, "%s: expected a square matrix, got shape %s", what, lg_shapestr(m, b, sizeof b));
  }
  /* the matrix kernels index with int: c * c must fit */
  if (m->shape[0] > GLOW_MAX_SQUARE)
    lg_fail(L, "%s: a %I x %I matrix is larger than the %d x %d these kernels take", what,
            (lua_Integer)m->shape[0], (lua_Integer)m->shape[0], GLOW_MAX_SQUARE, GLOW_MAX_SQUARE);
  return m->shape[0];
}

static double *todouble(lua_State *L, Tensor *m) {
  double *d = (double *)lua_newuserdatauv(L, sizeof(double) * (size_t)m->n, 0);
  for (int64_t i = 0; i < m->n; i++) d[i] = m->data[i];
  return d;
}

static int l_slogdet(lua_State *L) {
  Tensor *m = lg_checkt(L, 1);
  int c = (int)checksquare(L, m, "slogdet");
  double *a = todouble(L, m);
  double ld;
  int sg;
  int rc = glow_slogdet(a, c, &ld, &sg);
  if (rc == GLOW_ENOMEM) lg_checkrc(L, rc, "slogdet");
  lua_pushnumber(L, ld);
  lua_pushinteger(L, sg);
  return 2;
}

static int l_inverse(lua_State *L) {
  Tensor *m = lg_checkt(L, 1);
  int c = (int)checksquare(L, m, "inverse");
  double *a = todouble(L, m);
  double *ai = (double *)lua_newuserdatauv(L, sizeof(double) * (size_t)m->n, 0);
  lg_checkrc(L, glow_inverse(a, ai, c), "inverse");
  Tensor *r = lg_newlike(L, m);
  for (int64_t i = 0; i < m->n; i++) r->data[i] = (float)ai[i];
  return 1;
}

static int l_random_rotation(lua_State *L) {
  lua_Integer cl = luaL_checkinteger(L, 1);
  int c = cl < 1 || cl > GLOW_MAX_SQUARE ? 0 : (int)cl;
  uint64_t seed = (uint64_t)luaL_optinteger(L, 2, 0);
  if (c < 1 || c > GLOW_MAX_SQUARE)
    luaL_argerror(L, 1, "channel count must be in 1..46340 (c * c must fit an int)");
  double *q = (double *)lua_newuserdatauv(L, sizeof(double) * (size_t)c * c, 0);
  glow_random_rotation(q, c, seed);
  int64_t shape[2] = {c, c};
  Tensor *r = lg_newt(L, 2, shape);
  for (int i = 0; i < c * c; i++) r->data[i] = (float)q[i];
  return 1;
}

/* lu(W) -> perm (1-based Lua array), L {c,c}, U {c,c} */
static int l_lu(lua_State *L) {
  Tensor *m = lg_checkt(L, 1);
  int c = (int)checksquare(L, m, "lu");
  double *a = todouble(L, m);
  double *l = (double *)lua_newuserdatauv(L, sizeof(double) * (size_t)c * c, 0);
  double *u = (double *)lua_newuserdatauv(L, sizeof(double) * (size_t)c * c, 0);
  int *perm = (int *)lua_newuserdatauv(L, sizeof(int) * (size_t)c, 0);
  lg_checkrc(L, glow_lu(a, perm, l, u, c), "lu");
  lua_createtable(L, c, 0);
  for (int i = 0; i < c; i++) {
    lua_pushinteger(L, perm[i] + 1);
    lua_rawseti(L, -2, i + 1);
  }
  int64_t shape[2] = {c, c};
  Tensor *lt = lg_newt(L, 2, shape);
  for (int i = 0; i < c * c; i++) lt->data[i] = (float)l[i];
  Tensor *ut = lg_newt(L, 2, shape);
  for (int i = 0; i < c * c; i++) ut->data[i] = (float)u[i];
  return 3;
}

/* a 1-based permutation table of length c -> 0-based ints */
static int *readperm(lua_State *L, int idx, int c) {
  int *p = lg_readints(L, idx, c, 1, c + 1, "permutation");
  int *seen = (int *)lua_newuserdatauv(L, sizeof(int) * (size_t)c, 0);
  memset(seen, 0, sizeof(int) * (size_t)c);
  for (int i = 0; i < c; i++) {
    p[i] -= 1;
    if (seen[p[i]]++) lg_fail(L, "permutation: %d appears twice", p[i] + 1);
  }
  lua_pop(L, 1);
  return p;
}

/* lu_weight(l, u, log_s, sign, perm) -> W {c,c} */
static int l_lu_weight(lua_State *L) {
  Tensor *l = lg_checkt(L, 1), *u = lg_checkt(L, 2), *ls = lg_checkt(L, 3), *sg = lg_checkt(L, 4);
  int c = (int)checksquare(L, l, "lu_weight: l");
  lg_neednumel(L, u, (int64_t)c * c, "lu_weight: u");
  lg_neednumel(L, ls, c, "lu_weight: log_s");
  lg_neednumel(L, sg, c, "lu_weight: sign");
  int *perm = readperm(L, 5, c);
  int64_t shape[2] = {c, c};
  Tensor *w = lg_newt(L, 2, shape);
  glow_lu_weight(l->data, u->data, ls->data, sg->data, perm, w->data, c);
  return 1;
}

/* lu_weight_backward(l, u, log_s, sign, perm, dW, dl, du, dlog_s, dlogdet_scale) */
static int l_lu_weight_backward(lua_State *L) {
  Tensor *l = lg_checkt(L, 1), *u = lg_checkt(L, 2), *ls = lg_checkt(L, 3), *sg = lg_checkt(L, 4);
  int c = (int)checksquare(L, l, "lu_weight backward: l");
  Tensor *dw = lg_checkt(L, 6), *dl = lg_checkt(L, 7), *du = lg_checkt(L, 8), *dls = lg_checkt(L, 9);
  float sc = (float)luaL_optnumber(L, 10, 0.0);
  lua_settop(L, 10);
  int *perm = readperm(L, 5, c);
  lg_neednumel(L, u, (int64_t)c * c, "lu_weight backward: u");
  lg_neednumel(L, ls, c, "lu_weight backward: log_s");
  lg_neednumel(L, sg, c, "lu_weight backward: sign");
  lg_neednumel(L, dw, (int64_t)c * c, "lu_weight backward: dW");
  lg_neednumel(L, dl, (int64_t)c * c, "lu_weight backward: dl");
  lg_neednumel(L, du, (int64_t)c * c, "lu_weight backward: du");
  lg_neednumel(L, dls, c, "lu_weight backward: dlog_s");
  glow_lu_weight_backward(l->data, u->data, ls->data, sg->data, perm, dw->data, dl->data,
                          du->data, dls->data, sc, c);
  return 0;
}

/* ------------------------------------------------------------------ invconv */
static int64_t checkw(lua_State *L, Tensor *x, Tensor *w, const char *what) {
  int64_t c = lg_lastdim(x);
  if (w->ndim != 2 || w->shape[0] != c || w->shape[1] != c) {
    char s1[128], s2[128];
    lg_fail(L, "%s: weight %s does not fit input %s", what, lg_shapestr(w, s1, sizeof s1),
               lg_shapestr(x, s2, sizeof s2));
  }
  return c;
}

static int l_invconv_forward(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *w = lg_checkt(L, 2);
  int64_t c = checkw(L, x, w, "invconv");
  Tensor *y = lg_newlike(L, x);
  glow_invconv_forward(x->data, w->data, y->data, (size_t)(x->n / c), (int)c);
  return 1;
}

static int l_invconv_inverse(lua_State *L) {
  Tensor *y = lg_checkt(L, 1), *wi = lg_checkt(L, 2);
  int64_t c = checkw(L, y, wi, "invconv inverse");
  Tensor *x = lg_newlike(L, y);
  glow_invconv_inverse(y->data, wi->data, x->data, (size_t)(y->n / c), (int)c);
  return 1;
}

/* invconv_backward(x, W, Winv | nil, dy, dW, dlogdet_scale) -> dx */
static int l_invconv_backward(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *w = lg_checkt(L, 2), *wi = lg_optt(L, 3), *dy = lg_checkt(L, 4);
  Tensor *dw = lg_checkt(L, 5);
  float sc = (float)luaL_optnumber(L, 6, 0.0);
  int64_t c = checkw(L, x, w, "invconv backward");
  if (wi) checkw(L, x, wi, "invconv backward: inverse");
  lg_neednumel(L, dy, x->n, "invconv backward: dy");
  lg_neednumel(L, dw, c * c, "invconv backward: dW");
  Tensor *dx = lg_newlike(L, x);
  glow_invconv_backward(x->data, w->data, wi ? wi->data : NULL, dy->data, dx->data, dw->data, sc,
                        (size_t)(x->n / c), (int)c);
  return 1;
}

/* The flow layer's three calls, one crossing each (docs/ARCHITECTURE.md,
 * "Calls into C"). Plain: W itself; LU: W = lu_weight(l, u, log_s, sign,
 * perm). The input is checked as {n, h, w, c}; dlogdet as in the protocol.
 * The same kernels in the same order as the piece's former sequence of calls,
 * so the results are bitwise those. */
typedef struct {
  int lu, c;
  Tensor *w, *l, *u, *ls, *sg; /* w: plain; l, u, ls, sg: LU */
  int *perm;
  float *wm; /* W */
} invconv_args;

/* reads W (plain, at index i) or l, u, log_s, sign, perm (LU, from index i);
 * returns the index after them */
static int invconv_read(lua_State *L, int lu, int i, invconv_args *a) {
  a->lu = lu;
  if (!lu) {
    a->w = lg_checkt(L, i);
    a->c = (int)checksquare(L, a->w, "invconv: weight");
    a->wm = a->w->data;
    return i + 1;
  }
  a->l = lg_checkt(L, i), a->u = lg_checkt(L, i + 1), a->ls = lg_checkt(L, i + 2), a->sg = lg_checkt(L, i + 3);
  a->c = (int)checksquare(L, a->l, "invconv: l");
  lg_neednumel(L, a->u, (int64_t)a->c * a->c, "invconv: u");
  lg_neednumel(L, a->ls, a->c, "invconv: log_s");
  lg_neednumel(L, a->sg, a->c, "invconv: sign");
  a->perm = readperm(L, i + 4, a->c);
  /* W lives in a userdata left on the stack until the call returns */
  float *w = (float *)lua_newuserdatauv(L, sizeof(float) * (size_t)a->c * a->c, 0);
  a->wm = w;
  glow_lu_weight(a->l->data, a->u->data, a->ls->data, a->sg->data, a->perm, w, a->c);
  return i + 5;
}

/* W^-1 in float, through double as core.inverse computes it */
static float *invconv_winv(lua_State *L, const invconv_args *a) {
  int c = a->c;
  double *d = (double *)lua_newuserdatauv(L, sizeof(double) * (size_t)c * c * 2, 0);
  for (int i = 0; i < c * c; i++) d[i] = a->wm[i];
  lg_checkrc(L, glow_inverse(d, d + (size_t)c * c, c), "invconv: inverse");
  float *wi = (float *)d; /* the doubles are read before each float is written over them */
  for (int i = 0; i < c * c; i++) wi[i] = (float)d[(size_t)c * c + i];
  return wi;
}

static int invconv_step_forward(lua_State *L, int lu) {
  invconv_args a;
  invconv_read(L, lu, 2, &a);
  Tensor *x = lg_checkchannels(L, 1, a.c, "invconv: input");
  double per;
  if (lu) {
    per = 0;
    for (int k = 0; k < a.c; k++) per += a.ls->data[k];
  } else {
    double *d = todouble(L, a.w);
    int sg;
    int rc = glow_slogdet(d, a.c, &per, &sg);
    if (rc == GLOW_ENOMEM) lg_checkrc(L, rc, "invconv: slogdet");
  }
  Tensor *y = lg_newlike(L, x);
  glow_invconv_forward(x->data, a.wm, y->data, (size_t)(x->n / a.c), a.c);
  int64_t n = x->shape[0], one[1] = {n};
  Tensor *ld = lg_newt(L, 1, one);
  float v = (float)((double)(x->shape[1] * x->shape[2]) * per);
  for (int64_t i = 0; i < n; i++) ld->data[i] = v;
  return 2;
}

static int invconv_step_inverse(lua_State *L, int lu) {
  invconv_args a;
  invconv_read(L, lu, 2, &a);
  Tensor *y = lg_checkchannels(L, 1, a.c, "invconv: input");
  float *wi = invconv_winv(L, &a);
  Tensor *x = lg_newlike(L, y);
  glow_invconv_inverse(y->data, wi, x->data, (size_t)(y->n / a.c), a.c);
  return 1;
}

/* plain: (y, W, dy, dW, dlogdet); LU: (y, l, u, log_s, sign, perm, dy, dl, du, dlog_s, dlogdet) */
static int invconv_step_backward(lua_State *L, int lu) {
  invconv_args a;
  int i = invconv_read(L, lu, 2, &a);
  int c = a.c;
  Tensor *y = lg_checkchannels(L, 1, c, "invconv: input");
  Tensor *dy = lg_checkt(L, i);
  lg_neednumel(L, dy, y->n, "invconv backward: dy");
  Tensor *dw = NULL, *dl = NULL, *du = NULL, *dls = NULL;
  int di;
  if (!lu) {
    dw = lg_checkt(L, i + 1);
    lg_neednumel(L, dw, (int64_t)c * c, "invconv backward: dW");
    di = i + 2;
  } else {
    dl = lg_checkt(L, i + 1), du = lg_checkt(L, i + 2), dls = lg_checkt(L, i + 3);
    lg_neednumel(L, dl, (int64_t)c * c, "invconv backward: dl");
    lg_neednumel(L, du, (int64_t)c * c, "invconv backward: du");
    lg_neednumel(L, dls, c, "invconv backward: dlog_s");
    di = i + 4;
  }
  double dsum = lg_dlogdet_sum(L, di, y->shape[0]);
  float sc = (float)((double)(y->shape[1] * y->shape[2]) * dsum);
  float *wi = invconv_winv(L, &a);
  size_t rows = (size_t)(y->n / c);
  float *g = NULL; /* LU: dW, zeroed, before the chain rule to l, u, log_s */
  if (lu) {
    g = (float *)lua_newuserdatauv(L, sizeof(float) * (size_t)c * c, 0);
    memset(g, 0, sizeof(float) * (size_t)c * c);
  }
  Tensor *x = lg_newlike(L, y);
  glow_invconv_inverse(y->data, wi, x->data, rows, c);
  Tensor *dx = lg_newlike(L, y); /* x and dx are the top two values: returned */
  if (!lu) {
    glow_invconv_backward(x->data, a.wm, wi, dy->data, dx->data, dw->data, sc, rows, c);
  } else {
    glow_invconv_backward(x->data, a.wm, NULL, dy->data, dx->data, g, 0.0f, rows, c);
    glow_lu_weight_backward(a.l->data, a.u->data, a.ls->data, a.sg->data, a.perm, g, dl->data,
                            du->data, dls->data, sc, c);
  }
  return 2;
}

static int l_invconv_step_forward(lua_State *L) { return invconv_step_forward(L, 0); }
static int l_invconv_step_inverse(lua_State *L) { return invconv_step_inverse(L, 0); }
static int l_invconv_step_backward(lua_State *L) { return invconv_step_backward(L, 0); }
static int l_invconv_lu_step_forward(lua_State *L) { return invconv_step_forward(L, 1); }
static int l_invconv_lu_step_inverse(lua_State *L) { return invconv_step_inverse(L, 1); }
static int l_invconv_lu_step_backward(lua_State *L) { return invconv_step_backward(L, 1); }

/* permute_channels(x, perm) -> y, y[.., k] = x[.., perm[k]] (perm 1-based) */
static int l_permute_channels(lua_State *L) {
  Tensor *x = lg_checkt(L, 1);
  int c = (int)lg_lastdim(x);
  int *perm = readperm(L, 2, c);
  Tensor *y = lg_newlike(L, x);
  glow_permute_channels(x->data, y->data, perm, (size_t)(x->n / c), c);
  return 1;
}

/* ------------------------------------------------------------------ layout */
/* split_channels(x {.., c}, c1) -> a {.., c1}, b {.., c - c1} */
static int l_split_channels(lua_State *L) {
  Tensor *x = lg_checkt(L, 1);
  int c = (int)lg_lastdim(x);
  int c1 = (int)luaL_checkinteger(L, 2);
  if (c1 < 1 || c1 >= c) lg_fail(L, "split_channels: cannot split %d channels at %d", c, c1);
  int64_t shape[MAXDIM];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = c1;
  Tensor *a = lg_newt(L, x->ndim, shape);
  shape[x->ndim - 1] = c - c1;
  Tensor *b = lg_newt(L, x->ndim, shape);
  glow_split_channels(x->data, a->data, b->data, (size_t)(x->n / c), c, c1);
  return 2;
}

static int l_concat_channels(lua_State *L) {
  Tensor *a = lg_checkt(L, 1), *b = lg_checkt(L, 2);
  int c1 = (int)lg_lastdim(a), c2 = (int)lg_lastdim(b);
  int ok = a->ndim == b->ndim;
  for (int d = 0; ok && d < a->ndim - 1; d++) ok = a->shape[d] == b->shape[d];
  if (!ok) {
    char s1[128], s2[128];
    lg_fail(L, "concat_channels: shapes %s and %s differ outside the channels",
               lg_shapestr(a, s1, sizeof s1), lg_shapestr(b, s2, sizeof s2));
  }
  int64_t shape[MAXDIM];
  memcpy(shape, a->shape, sizeof shape);
  shape[a->ndim - 1] = c1 + c2;
  Tensor *x = lg_newt(L, a->ndim, shape);
  glow_concat_channels(a->data, b->data, x->data, (size_t)(a->n / c1), c1 + c2, c1);
  return 1;
}

static int l_squeeze(lua_State *L) {
  int n, h, w, c;
  Tensor *x = lg_checkimg(L, 1, "squeeze: input", &n, &h, &w, &c);
  if (h % 2 || w % 2) {
    char b[128];
    lg_fail(L, "squeeze: height and width must be even, got shape %s", lg_shapestr(x, b, sizeof b));
  }
  int64_t shape[4] = {n, h / 2, w / 2, 4 * c};
  Tensor *y = lg_newt(L, 4, shape);
  glow_squeeze(x->data, y->data, n, h, w, c);
  return 1;
}

static int l_unsqueeze(lua_State *L) {
  int n, h2, w2, c4;
  Tensor *y = lg_checkimg(L, 1, "unsqueeze: input", &n, &h2, &w2, &c4);
  if (c4 % 4) {
    char b[128];
    lg_fail(L, "unsqueeze: channels must be a multiple of 4, got shape %s",
               lg_shapestr(y, b, sizeof b));
  }
  int64_t shape[4] = {n, 2 * h2, 2 * w2, c4 / 4};
  Tensor *x = lg_newt(L, 4, shape);
  glow_unsqueeze(y->data, x->data, n, 2 * h2, 2 * w2, c4 / 4);
  return 1;
}

/* ------------------------------------------------------------------ coupling */
/* affine_forward(z2 {n,h,w,c2}, hnet {n,h,w,2c2}) -> y2, logdet {n} */
static int l_affine_forward(lua_State *L) {
  int n, h, w, c2;
  Tensor *z2 = lg_checkimg(L, 1, "affine coupling: z2", &n, &h, &w, &c2);
  Tensor *hn = lg_checkt(L, 2);
  lg_neednumel(L, hn, 2 * z2->n, "affine coupling: network output (2 x z2's channels)");
  Tensor *y2 = lg_newlike(L, z2);
  int64_t s1[1] = {n};
  Tensor *ld = lg_newt_(L, 1, s1, 1); /* accumulated into */
  glow_affine_forward(z2->data, hn->data, y2->data, ld->data, (size_t)n, (size_t)h * w, c2);
  return 2;
}

static int l_affine_inverse(lua_State *L) {
  int n, h, w, c2;
  Tensor *y2 = lg_checkimg(L, 1, "affine coupling inverse: y2", &n, &h, &w, &c2);
  Tensor *hn = lg_checkt(L, 2);
  lg_neednumel(L, hn, 2 * y2->n, "affine coupling inverse: network output");
  Tensor *z2 = lg_newlike(L, y2);
  glow_affine_inverse(y2->data, hn->data, z2->data, (size_t)n, (size_t)h * w, c2);
  return 1;
}

/* affine_backward(y2, hnet, dy2, dlogdet {n} | nil) -> z2, dz2, dhnet */
static int l_affine_backward(lua_State *L) {
  int n, h, w, c2;
  Tensor *y2 = lg_checkimg(L, 1, "affine coupling backward: y2", &n, &h, &w, &c2);
  Tensor *hn = lg_checkt(L, 2), *dy2 = lg_checkt(L, 3), *dld = lg_optt(L, 4);
  lg_neednumel(L, hn, 2 * y2->n, "affine coupling backward: network output");
  lg_neednumel(L, dy2, y2->n, "affine coupling backward: dy2");
  if (dld) lg_neednumel(L, dld, n, "affine coupling backward: dlogdet");
  Tensor *z2 = lg_newlike(L, y2);
  Tensor *dz2 = lg_newlike(L, y2);
  Tensor *dh = lg_newlike(L, hn);
  glow_affine_backward(y2->data, hn->data, dy2->data, dld ? dld->data : NULL, z2->data, dz2->data,
                       dh->data, (size_t)n, (size_t)h * w, c2);
  return 3;
}

/* The affine coupling's own part of a step in one call each, on the whole
 * input x = [z1 | z2] (or output y = [y1 | y2]) instead of its halves, the
 * halves' copies made inside (docs/ARCHITECTURE.md, "Calls into C"). The
 * same kernel in the same order as split_channels, affine_* and
 * concat_channels, so the results are bitwise those. */

/* src {rows, cs} into the channels [off, off + cs) of dst {rows, c}, or back (get) */
static void channels_put(float *dst, int c, int off, const float *src, int cs, size_t rows) {
#pragma omp parallel for if (rows * (size_t)c > 65536)
  for (size_t r = 0; r < rows; r++) memcpy(dst + r * c + off, src + r * cs, sizeof(float) * (size_t)cs);
}

static void channels_get(float *dst, int cs, const float *src, int c, int off, size_t rows) {
#pragma omp parallel for if (rows * (size_t)c > 65536)
  for (size_t r = 0; r < rows; r++) memcpy(dst + r * cs, src + r * c + off, sizeof(float) * (size_t)cs);
}

/* scratch floats that live until the call returns (a userdata left on the stack) */
static float *scratch(lua_State *L, size_t n) {
  return (float *)lua_newuserdatauv(L, sizeof(float) * (n ? n : 1), 0);
}

/* (x, h, c1, c): x {n, h, w, c} checked with the coupling's message; h {.., hmul c2} */
static Tensor *coupling_args_(lua_State *L, int *c1, int *c2, Tensor **hn, int hmul) {
  int64_t c = luaL_checkinteger(L, 4);
  Tensor *x = lg_checkchannels(L, 1, c, "coupling: input");
  *c1 = (int)luaL_checkinteger(L, 3);
  if (*c1 < 1 || *c1 >= c) lg_fail(L, "coupling: cannot split %d channels at %d", (int)c, *c1);
  *c2 = (int)c - *c1;
  *hn = lg_checkt(L, 2);
  lg_neednumel(L, *hn, x->n / c * hmul * *c2,
               hmul == 2 ? "affine coupling: network output (2 x z2's channels)"
                         : "additive coupling: network output (z2's channels)");
  return x;
}

static Tensor *coupling_args(lua_State *L, int *c1, int *c2, Tensor **hn) {
  return coupling_args_(L, c1, c2, hn, 2);
}

/* affine_step_forward(x, h, c1, c [, z2]) -> y, logdet {n}; z2: x's second
 * half as split_channels gave it, which saves gathering it again */
static int l_affine_step_forward(lua_State *L) {
  int c1, c2;
  Tensor *hn;
  Tensor *x = coupling_args(L, &c1, &c2, &hn);
  int c = c1 + c2, n = (int)x->shape[0];
  size_t rows = (size_t)(x->n / c), pix = (size_t)x->shape[1] * x->shape[2];
  Tensor *given = lg_optt(L, 5);
  if (given) lg_neednumel(L, given, (int64_t)rows * c2, "affine coupling: z2");
  float *z2 = given ? given->data : scratch(L, rows * c2), *y2 = scratch(L, rows * c2);
  if (!given) channels_get(z2, c2, x->data, c, c1, rows);
  Tensor *y = lg_newlike(L, x);
  int64_t s1[1] = {n};
  Tensor *ld = lg_newt_(L, 1, s1, 1); /* accumulated into */
  glow_affine_forward(z2, hn->data, y2, ld->data, (size_t)n, pix, c2);
  for (size_t r = 0; r < rows; r++) memcpy(y->data + r * c, x->data + r * c, sizeof(float) * (size_t)c1);
  channels_put(y->data, c, c1, y2, c2, rows);
  return 2;
}

/* affine_step_inverse(y, h, c1, c [, y2]) -> x; y2: y's second half as
 * split_channels gave it */
static int l_affine_step_inverse(lua_State *L) {
  int c1, c2;
  Tensor *hn;
  Tensor *y = coupling_args(L, &c1, &c2, &hn);
  int c = c1 + c2, n = (int)y->shape[0];
  size_t rows = (size_t)(y->n / c), pix = (size_t)y->shape[1] * y->shape[2];
  Tensor *given = lg_optt(L, 5);
  if (given) lg_neednumel(L, given, (int64_t)rows * c2, "affine coupling inverse: y2");
  float *y2 = given ? given->data : scratch(L, rows * c2), *z2 = scratch(L, rows * c2);
  if (!given) channels_get(y2, c2, y->data, c, c1, rows);
  glow_affine_inverse(y2, hn->data, z2, (size_t)n, pix, c2);
  Tensor *x = lg_newlike(L, y);
  for (size_t r = 0; r < rows; r++) memcpy(x->data + r * c, y->data + r * c, sizeof(float) * (size_t)c1);
  channels_put(x->data, c, c1, z2, c2, rows);
  return 1;
}

/* affine_step_backward(y, h, c1, c, dy, dlogdet, kept [, z1]) -> x, dx, dh: dx
 * holds dy1 in its first c1 channels (the network's dz1 is added by
 * add_channels_); kept: the stash of z2 a training forward made (core.stash),
 * taken and freed here, or nil to rebuild z2 from y; z1: the input half the
 * forward kept (memory "store"), else x's first channels are y's */
static int l_affine_step_backward(lua_State *L) {
  int c1, c2;
  Tensor *hn;
  Tensor *y = coupling_args(L, &c1, &c2, &hn);
  int c = c1 + c2, n = (int)y->shape[0];
  size_t rows = (size_t)(y->n / c), pix = (size_t)y->shape[1] * y->shape[2];
  Tensor *dy = lg_checkt(L, 5);
  lg_neednumel(L, dy, y->n, "affine coupling backward: dy");
  float *dld = NULL;
  if (lua_type(L, 6) == LUA_TNUMBER) {
    dld = scratch(L, (size_t)n);
    float v = (float)lua_tonumber(L, 6);
    for (int i = 0; i < n; i++) dld[i] = v;
  } else if (!lua_isnoneornil(L, 6)) {
    Tensor *d = lg_checkt(L, 6);
    if (d->n != n) lg_fail(L, "dlogdet: expected %d values, got %I", n, (lua_Integer)d->n);
    dld = d->data;
  }
  int kept = !lua_isnoneornil(L, 7);
  Tensor *z1 = lg_optt(L, 8);
  if (z1) lg_neednumel(L, z1, (int64_t)rows * c1, "affine coupling backward: kept z1");
  float *y2 = scratch(L, rows * c2), *dy2 = scratch(L, rows * c2), *z2 = scratch(L, rows * c2);
  float *dz2 = scratch(L, rows * c2);
  if (kept) lg_unstash_into(L, 7, z2, (int64_t)rows * c2, "affine coupling backward: kept z2");
  channels_get(y2, c2, y->data, c, c1, rows);
  channels_get(dy2, c2, dy->data, c, c1, rows);
  Tensor *x = lg_newlike(L, y);
  Tensor *dx = lg_newlike(L, y);
  Tensor *dh = lg_newlike(L, hn);
  glow_affine_backward(y2, hn->data, dy2, dld, kept ? NULL : z2, dz2, dh->data, (size_t)n, pix, c2);
  for (size_t r = 0; r < rows; r++) {
    memcpy(x->data + r * c, z1 ? z1->data + r * c1 : y->data + r * c, sizeof(float) * (size_t)c1);
    memcpy(dx->data + r * c, dy->data + r * c, sizeof(float) * (size_t)c1);
  }
  channels_put(x->data, c, c1, z2, c2, rows);
  channels_put(dx->data, c, c1, dz2, c2, rows);
  return 3;
}

/* The additive coupling's own part, one call each: y2 = z2 + h.
 * additive_step_forward(x, h, c1, c, z2) -> y, logdet {n} (zeros); z2: x's
 * second half as split_channels gave it */
static int l_additive_step_forward(lua_State *L) {
  int c1, c2;
  Tensor *hn;
  Tensor *x = coupling_args_(L, &c1, &c2, &hn, 1);
  int c = c1 + c2;
  size_t rows = (size_t)(x->n / c);
  Tensor *z2 = lg_checkt(L, 5);
  lg_neednumel(L, z2, (int64_t)rows * c2, "additive coupling: z2");
  Tensor *y = lg_newlike(L, x);
  for (size_t r = 0; r < rows; r++) {
    memcpy(y->data + r * c, x->data + r * c, sizeof(float) * (size_t)c1);
    for (int k = 0; k < c2; k++) y->data[r * c + c1 + k] = z2->data[r * c2 + k] + hn->data[r * c2 + k];
  }
  int64_t s1[1] = {x->shape[0]};
  lg_newt_(L, 1, s1, 1);
  return 2;
}

/* additive_step_inverse(y, h, c1, c) -> x */
static int l_additive_step_inverse(lua_State *L) {
  int c1, c2;
  Tensor *hn;
  Tensor *y = coupling_args_(L, &c1, &c2, &hn, 1);
  int c = c1 + c2;
  size_t rows = (size_t)(y->n / c);
  Tensor *x = lg_newlike(L, y);
  for (size_t r = 0; r < rows; r++) {
    memcpy(x->data + r * c, y->data + r * c, sizeof(float) * (size_t)c1);
    for (int k = 0; k < c2; k++) x->data[r * c + c1 + k] = y->data[r * c + c1 + k] + -1.0f * hn->data[r * c2 + k];
  }
  return 1;
}

/* additive_step_backward(y, h, c1, c, dy, kept [, z1]) -> x, dx, dy2: x from
 * the kept z2 (a stash, taken and freed here) or y2 - h, its first half from
 * z1 when given; dx holds dy (the network's dz1 is added by add_channels_);
 * dy2, the second half of dy, is the network's output gradient */
static int l_additive_step_backward(lua_State *L) {
  int c1, c2;
  Tensor *hn;
  Tensor *y = coupling_args_(L, &c1, &c2, &hn, 1);
  int c = c1 + c2;
  size_t rows = (size_t)(y->n / c);
  Tensor *dy = lg_checkt(L, 5);
  lg_neednumel(L, dy, y->n, "additive coupling backward: dy");
  int kept = !lua_isnoneornil(L, 6);
  Tensor *z1 = lg_optt(L, 7);
  if (z1) lg_neednumel(L, z1, (int64_t)rows * c1, "additive coupling backward: kept z1");
  float *z2 = scratch(L, rows * c2);
  if (kept) lg_unstash_into(L, 6, z2, (int64_t)rows * c2, "additive coupling backward: kept z2");
  else
    for (size_t r = 0; r < rows; r++)
      for (int k = 0; k < c2; k++) z2[r * c2 + k] = y->data[r * c + c1 + k] + -1.0f * hn->data[r * c2 + k];
  Tensor *x = lg_newlike(L, y);
  Tensor *dx = lg_newlike(L, y);
  Tensor *dy2 = lg_newlike(L, hn);
  for (size_t r = 0; r < rows; r++)
    memcpy(x->data + r * c, z1 ? z1->data + r * c1 : y->data + r * c, sizeof(float) * (size_t)c1);
  channels_put(x->data, c, c1, z2, c2, rows);
  memcpy(dx->data, dy->data, sizeof(float) * (size_t)y->n);
  channels_get(dy2->data, c2, dy->data, c, c1, rows);
  return 3;
}

/* add_channels_(x, a) -> x: x[.., 0:ca] += a, a {.., ca} with x's other dims; in place */
static int l_add_channels(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *a = lg_checkt(L, 2);
  int c = (int)lg_lastdim(x), ca = (int)lg_lastdim(a);
  if (a->ndim != x->ndim || ca < 1 || ca > c || a->n / ca != x->n / c) {
    char s1[128], s2[128];
    lg_fail(L, "add_channels_: %s does not fit the first channels of %s", lg_shapestr(a, s1, sizeof s1),
            lg_shapestr(x, s2, sizeof s2));
  }
  size_t rows = (size_t)(x->n / c);
#pragma omp parallel for if (rows * (size_t)c > 65536)
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < ca; k++) x->data[r * c + k] = a->data[r * ca + k] + x->data[r * c + k];
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
    {"affine_step_forward", l_affine_step_forward},
    {"affine_step_inverse", l_affine_step_inverse},
    {"affine_step_backward", l_affine_step_backward},
    {"add_channels_", l_add_channels},
    {"additive_step_forward", l_additive_step_forward},
    {"additive_step_inverse", l_additive_step_inverse},
    {"additive_step_backward", l_additive_step_backward},
    {"invconv_step_forward", l_invconv_step_forward},
    {"invconv_step_inverse", l_invconv_step_inverse},
    {"invconv_step_backward", l_invconv_step_backward},
    {"invconv_lu_step_forward", l_invconv_lu_step_forward},
    {"invconv_lu_step_inverse", l_invconv_lu_step_inverse},
    {"invconv_lu_step_backward", l_invconv_lu_step_backward},
    {"slogdet", l_slogdet},
    {"inverse", l_inverse},
    {"random_rotation", l_random_rotation},
    {"lu", l_lu},
    {"lu_weight", l_lu_weight},
    {"lu_weight_backward", l_lu_weight_backward},
    {"invconv_forward", l_invconv_forward},
    {"invconv_inverse", l_invconv_inverse},
    {"invconv_backward", l_invconv_backward},
    {"permute_channels", l_permute_channels},
    {"split_channels", l_split_channels},
    {"concat_channels", l_concat_channels},
    {"squeeze", l_squeeze},
    {"unsqueeze", l_unsqueeze},
    {"affine_forward", l_affine_forward},
    {"affine_inverse", l_affine_inverse},
    {"affine_backward", l_affine_backward},
    {NULL, NULL}};

void lg_open_flow(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
