/*
 * lscan.c -- the Lua binding of scan.c and matrix.c: cumsum, cumprod (and
 * its gradient), sort, searchsorted, softmax and log_softmax along a
 * dimension; pad and its inverse crop, flip, tril and triu; the makers
 * range and eye; batched slogdet, inverse and solve of small matrices.
 * lua/glow/tensor.lua installs them as glow.Tensor methods and glow.*
 * functions, and lua/glow/autograd.lua gives them gradients.
 *
 * Dimensions are 1-based, a negative one counting from the end. Every
 * function checks its arguments before it touches memory, names itself in
 * its errors and returns new tensors.
 */
#include <lauxlib.h>
#include <lua.h>

#include <math.h>
#include <string.h>

#include "glow.h"
#include "lglow.h"

static Tensor *arg(lua_State *L, int idx, const char *what) {
  Tensor *t = luaL_testudata(L, idx, TNAME);
  if (!t) lg_fail(L, "%s: argument %d must be a glow.Tensor, got %s", what, idx, luaL_typename(L, idx));
  if (!t->data) lg_fail(L, "%s: argument %d is a closed tensor", what, idx);
  return t;
}

static lua_Integer intarg(lua_State *L, int idx, const char *what, const char *name) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint) lg_fail(L, "%s: %s must be an integer, got %s", what, name, luaL_typename(L, idx));
  return v;
}

/* dimension argument idx of t (1-based or negative), 0-based; def when absent (-1: required) */
static int dimarg(lua_State *L, int idx, const Tensor *t, int def, const char *what) {
  if (lua_isnoneornil(L, idx)) {
    if (def >= 0) return def;
    return lg_fail(L, "%s: a dimension is required", what);
  }
  lua_Integer d = intarg(L, idx, what, "the dimension");
  lua_Integer k = d < 0 ? d + t->ndim + 1 : d;
  if (k < 1 || k > t->ndim) return lg_fail(L, "%s: dimension %I out of range for %d dimensions", what, d, t->ndim);
  return (int)k - 1;
}

static void around(const Tensor *t, int d, int64_t *outer, int64_t *n, int64_t *inner) {
  *outer = 1, *inner = 1, *n = t->shape[d];
  for (int i = 0; i < d; i++) *outer *= t->shape[i];
  for (int i = d + 1; i < t->ndim; i++) *inner *= t->shape[i];
}

/* ------------------------------------------------------------------ along a dim */
/* cumsum(t, dim [, reverse]) / cumprod(t, dim [, reverse]) */
static int cumulative(lua_State *L, int prod, const char *what) {
  Tensor *t = arg(L, 1, what);
  int d = dimarg(L, 2, t, -1, what);
  int reverse = lua_toboolean(L, 3);
  int64_t outer, n, inner;
  around(t, d, &outer, &n, &inner);
  Tensor *y = lg_newlike(L, t);
  glow_cumulative(prod, reverse, t->data, y->data, outer, n, inner);
  return 1;
}
static int l_cumsum(lua_State *L) { return cumulative(L, 0, "cumsum"); }
static int l_cumprod(lua_State *L) { return cumulative(L, 1, "cumprod"); }

static void sameshape(lua_State *L, const Tensor *a, const Tensor *b, const char *what) {
  int same = a->ndim == b->ndim;
  for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
  if (!same) {
    char s1[160], s2[160];
    lg_fail(L, "%s: shapes %s and %s differ", what, lg_shapestr(a, s1, sizeof s1), lg_shapestr(b, s2, sizeof s2));
  }
}

/* cumprod_backward(x, g, dim) -> dx */
static int l_cumprod_backward(lua_State *L) {
  Tensor *x = arg(L, 1, "cumprod_backward"), *g = arg(L, 2, "cumprod_backward");
  sameshape(L, x, g, "cumprod_backward");
  int d = dimarg(L, 3, x, -1, "cumprod_backward");
  int64_t outer, n, inner;
  around(x, d, &outer, &n, &inner);
  Tensor *dx = lg_newlike(L, x);
  glow_cumprod_backward(x->data, g->data, dx->data, outer, n, inner);
  return 1;
}

/* sort(t [, dim = -1 [, descending]]) -> values, indices (1-based positions along dim) */
static int l_sort(lua_State *L) {
  Tensor *t = arg(L, 1, "sort");
  int d = dimarg(L, 2, t, t->ndim - 1, "sort");
  int desc = lua_toboolean(L, 3);
  int64_t outer, n, inner;
  around(t, d, &outer, &n, &inner);
  Tensor *y = lg_newlike(L, t);
  Tensor *ix = lg_newlike(L, t);
  lg_checkrc(L, glow_sort(t->data, y->data, ix->data, outer, n, inner, desc), "sort");
  return 2;
}

/* softmax(t, dim) / log_softmax(t, dim) */
static int softmax(lua_State *L, int log_out, const char *what) {
  Tensor *t = arg(L, 1, what);
  int d = dimarg(L, 2, t, -1, what);
  int64_t outer, n, inner;
  around(t, d, &outer, &n, &inner);
  Tensor *y = lg_newlike(L, t);
  int64_t ms[1] = {2 * outer * inner};
  Tensor *scratch = lg_newt(L, 1, ms);
  glow_softmax(t->data, y->data, scratch->data, scratch->data + outer * inner, outer, n, inner, log_out);
  lua_pop(L, 1);
  return 1;
}
static int l_softmax(lua_State *L) { return softmax(L, 0, "softmax"); }
static int l_log_softmax(lua_State *L) { return softmax(L, 1, "log_softmax"); }

/* searchsorted(boundaries, values [, right]): boundaries {nb} (shared by
 * every value) or {..., nb} with values {..., nv} (the same leading dims);
 * the result has values' shape and holds counts 0..nb */
static int l_searchsorted(lua_State *L) {
  Tensor *b = arg(L, 1, "searchsorted"), *v = arg(L, 2, "searchsorted");
  int right = lua_toboolean(L, 3);
  int64_t nb = b->shape[b->ndim - 1];
  int shared = b->ndim == 1;
  int64_t outer = 1, nv = v->n;
  if (!shared) {
    int ok = v->ndim == b->ndim;
    for (int i = 0; ok && i < b->ndim - 1; i++) ok = v->shape[i] == b->shape[i];
    if (!ok) {
      char s1[160], s2[160];
      return lg_fail(L, "searchsorted: boundaries %s and values %s: give boundaries {nb}, or the values' leading "
                     "dimensions and then nb",
                     lg_shapestr(b, s1, sizeof s1), lg_shapestr(v, s2, sizeof s2));
    }
    nv = v->shape[v->ndim - 1];
    outer = v->n / nv;
  }
  for (int64_t i = 0; i < b->n; i++)
    if (isnan(b->data[i])) return lg_fail(L, "searchsorted: the boundaries hold NaN at position %I", (lua_Integer)i + 1);
  /* sorted check: each row ascending */
  for (int64_t i = 0; i + 1 < b->n; i++)
    if ((i + 1) % nb != 0 && b->data[i] > b->data[i + 1])
      return lg_fail(L, "searchsorted: the boundaries must be sorted ascending along their last dimension "
                     "(position %I: %f > %f)", (lua_Integer)i + 1, (double)b->data[i], (double)b->data[i + 1]);
  Tensor *y = lg_newlike(L, v);
  glow_searchsorted(b->data, nb, shared, v->data, y->data, outer, nv, right);
  return 1;
}

/* ------------------------------------------------------------------ copies */
/* the pads argument at idx: an array of {before, after} per dim from dim 1
 * (missing trailing dims: none); fills off and the padded shape */
static void readpads(lua_State *L, int idx, const Tensor *t, int64_t *before, int64_t *big, const char *what) {
  if (lua_type(L, idx) != LUA_TTABLE)
    lg_fail(L, "%s: the padding must be an array of {before, after} per dimension, got %s", what,
            luaL_typename(L, idx));
  lua_Integer np = luaL_len(L, idx);
  if (np > t->ndim) lg_fail(L, "%s: %I paddings for %d dimensions", what, np, t->ndim);
  for (int d = 0; d < t->ndim; d++) {
    before[d] = 0, big[d] = t->shape[d];
    if (d >= np) continue;
    lua_geti(L, idx, d + 1);
    if (lua_type(L, -1) != LUA_TTABLE) lg_fail(L, "%s: padding %d must be {before, after}", what, d + 1);
    int64_t ba[2];
    for (int k = 0; k < 2; k++) {
      lua_geti(L, -1, k + 1);
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint || v < 0 || v > ((int64_t)1 << 40))
        lg_fail(L, "%s: padding %d must be {before, after}, two integers >= 0", what, d + 1);
      ba[k] = v;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    before[d] = ba[0];
    big[d] = t->shape[d] + ba[0] + ba[1];
  }
}

/* pad(t, pads [, value = 0]) */
static int l_pad(lua_State *L) {
  Tensor *t = arg(L, 1, "pad");
  int64_t off[MAXDIM], big[MAXDIM];
  readpads(L, 2, t, off, big, "pad");
  double value = luaL_optnumber(L, 3, 0.0);
  lg_numel(L, t->ndim, big);
  Tensor *y = lg_newt(L, t->ndim, big);
  for (int64_t i = 0; i < y->n; i++) y->data[i] = (float)value;
  glow_pad(y->data, y->shape, t->data, t->shape, off, t->ndim, 0);
  return 1;
}

/* crop(t, pads): the inverse of pad (removes the given before/after) */
static int l_crop(lua_State *L) {
  Tensor *t = arg(L, 1, "crop");
  int64_t off[MAXDIM], big[MAXDIM], small[MAXDIM];
  readpads(L, 2, t, off, big, "crop");
  for (int d = 0; d < t->ndim; d++) {
    small[d] = 2 * t->shape[d] - big[d]; /* shape - before - after */
    if (small[d] < 1) {
      char b[160];
      return lg_fail(L, "crop: removes all of dimension %d of %s", d + 1, lg_shapestr(t, b, sizeof b));
    }
  }
  Tensor *y = lg_newt(L, t->ndim, small);
  glow_pad(t->data, t->shape, y->data, small, off, t->ndim, 1);
  return 1;
}

/* flip(t, dims): dims an integer or an array */
static int l_flip(lua_State *L) {
  Tensor *t = arg(L, 1, "flip");
  int flip[MAXDIM] = {0};
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_Integer k = luaL_len(L, 2);
    for (lua_Integer i = 1; i <= k; i++) {
      lua_geti(L, 2, i);
      flip[dimarg(L, lua_gettop(L), t, -1, "flip")] = 1;
      lua_pop(L, 1);
    }
  } else {
    flip[dimarg(L, 2, t, -1, "flip")] = 1;
  }
  int64_t s[MAXDIM], k = 1, base = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    s[d] = flip[d] ? -k : k;
    if (flip[d]) base += (t->shape[d] - 1) * k;
    k *= t->shape[d];
  }
  Tensor *y = lg_newlike(L, t);
  glow_strided_copy(t->data + base, s, y->data, t->ndim, t->shape);
  return 1;
}

/* tril(t [, k = 0]) / triu(t [, k = 0]) over the last two dims */
static int tri(lua_State *L, int upper, const char *what) {
  Tensor *t = arg(L, 1, what);
  lua_Integer k = lua_isnoneornil(L, 2) ? 0 : intarg(L, 2, what, "the diagonal");
  if (t->ndim < 2) return lg_fail(L, "%s: needs a matrix (2 or more dimensions), got %d", what, t->ndim);
  int64_t r = t->shape[t->ndim - 2], c = t->shape[t->ndim - 1];
  Tensor *y = lg_newlike(L, t);
  glow_tri(t->data, y->data, t->n / (r * c), r, c, k, upper);
  return 1;
}
static int l_tril(lua_State *L) { return tri(L, 0, "tril"); }
static int l_triu(lua_State *L) { return tri(L, 1, "triu"); }

/* range(n, start, step): {n} */
static int l_range(lua_State *L) {
  lua_Integer n = intarg(L, 1, "range", "the count");
  double start = luaL_checknumber(L, 2), step = luaL_checknumber(L, 3);
  if (n < 1 || n > ((lua_Integer)1 << 40)) return lg_fail(L, "range: the count must be in 1..2^40, got %I", n);
  Tensor *y = lg_newt(L, 1, (int64_t[]){n});
  glow_range(y->data, n, start, step);
  return 1;
}

/* eye(n [, m]) */
static int l_eye(lua_State *L) {
  lua_Integer n = intarg(L, 1, "eye", "the row count");
  lua_Integer m = lua_isnoneornil(L, 2) ? n : intarg(L, 2, "eye", "the column count");
  if (n < 1 || m < 1) return lg_fail(L, "eye: sizes must be positive, got %I x %I", n, m);
  int64_t shape[2] = {n, m};
  lg_numel(L, 2, shape);
  Tensor *y = lg_newt(L, 2, shape);
  glow_eye(y->data, 1, n, m);
  return 1;
}

/* ------------------------------------------------------------------ small matrices */
/* a {..., n, n} argument: its batch count and n */
static int64_t square(lua_State *L, const Tensor *a, const char *what, int64_t *n) {
  char b[160];
  if (a->ndim < 2 || a->shape[a->ndim - 1] != a->shape[a->ndim - 2])
    lg_fail(L, "%s: expected square matrices {..., n, n}, got %s", what, lg_shapestr(a, b, sizeof b));
  *n = a->shape[a->ndim - 1];
  return a->n / (*n * *n);
}

static int64_t batch_shape(const Tensor *a, int64_t *shape) {
  int nd = a->ndim - 2;
  for (int d = 0; d < nd; d++) shape[d] = a->shape[d];
  if (nd == 0) shape[nd++] = 1;
  return nd;
}

/* slogdet(A) -> logabsdet, sign: each {...} (a single matrix: {1}) */
static int l_slogdet_batch(lua_State *L) {
  Tensor *a = arg(L, 1, "slogdet");
  int64_t n, shape[MAXDIM];
  int64_t bn = square(L, a, "slogdet", &n);
  int nd = (int)batch_shape(a, shape);
  Tensor *ld = lg_newt(L, nd, shape), *sg = lg_newt(L, nd, shape);
  lg_checkrc(L, glow_batch_slogdet(a->data, ld->data, sg->data, bn, n), "slogdet");
  return 2;
}

static int l_inverse_batch(lua_State *L) {
  Tensor *a = arg(L, 1, "inverse");
  int64_t n;
  int64_t bn = square(L, a, "inverse", &n);
  Tensor *x = lg_newlike(L, a);
  int rc = glow_batch_inverse(a->data, x->data, bn, n);
  if (rc == GLOW_ESINGULAR) return lg_fail(L, "inverse: a matrix is singular (a zero pivot)");
  lg_checkrc(L, rc, "inverse");
  return 1;
}

/* solve(A, B): A {..., n, n}, B {..., n, k} with the same leading dims (or {n, k}/{n} for one A) */
static int l_solve(lua_State *L) {
  Tensor *a = arg(L, 1, "solve"), *b = arg(L, 2, "solve");
  int64_t n;
  int64_t bn = square(L, a, "solve", &n);
  int vec = b->ndim == a->ndim - 1;
  int ok = vec || b->ndim == a->ndim;
  for (int i = 0; ok && i < a->ndim - 2; i++) ok = b->shape[i] == a->shape[i];
  ok = ok && b->shape[a->ndim - 2] == n;
  if (!ok) {
    char s1[160], s2[160];
    return lg_fail(L, "solve: A %s and B %s: B must be {..., n, k} or {..., n} with A's leading dimensions",
                   lg_shapestr(a, s1, sizeof s1), lg_shapestr(b, s2, sizeof s2));
  }
  int64_t k = vec ? 1 : b->shape[b->ndim - 1];
  Tensor *x = lg_newlike(L, b);
  int rc = glow_batch_solve(a->data, b->data, x->data, bn, n, k);
  if (rc == GLOW_ESINGULAR) return lg_fail(L, "solve: a matrix is singular (a zero pivot)");
  lg_checkrc(L, rc, "solve");
  return 1;
}

static const luaL_Reg funcs[] = {{"cumsum", l_cumsum},
                                 {"cumprod", l_cumprod},
                                 {"cumprod_backward", l_cumprod_backward},
                                 {"sort", l_sort},
                                 {"softmax", l_softmax},
                                 {"log_softmax", l_log_softmax},
                                 {"searchsorted", l_searchsorted},
                                 {"pad", l_pad},
                                 {"crop", l_crop},
                                 {"flip", l_flip},
                                 {"tril", l_tril},
                                 {"triu", l_triu},
                                 {"range", l_range},
                                 {"eye", l_eye},
                                 {"slogdet_batch", l_slogdet_batch},
                                 {"inverse_batch", l_inverse_batch},
                                 {"solve", l_solve},
                                 {NULL, NULL}};

void lg_open_scan(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
