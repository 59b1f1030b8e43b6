/*
 * lhelpers.c -- what every binding file uses to read its arguments and make
 * its results: raising errors without a position, checking tensor arguments
 * (live, element counts, dimensions, image shapes, channel counts), reading
 * shapes and integer arrays from Lua tables, and allocating new tensors.
 * It depends on lglow.h and glow.h only; the other binding files depend on
 * it, never the other way.
 */
#include <lauxlib.h>
#include <lua.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "glow.h"
#include "lglow.h"

/* raise a Lua error without a position prefix (luaL_error would add the
 * calling Lua line, which points into the package, not at the user's code) */
int lg_fail(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

/* a live tensor: a closed one (after __close) is refused */
Tensor *lg_checkt(lua_State *L, int i) {
  Tensor *t = (Tensor *)luaL_checkudata(L, i, TNAME);
  if (!t->data) lg_fail(L, "bad argument #%d: the tensor is closed", i);
  return t;
}

Tensor *lg_optt(lua_State *L, int i) {
  if (lua_isnoneornil(L, i)) return NULL;
  return lg_checkt(L, i);
}

const char *lg_shapestr(const Tensor *t, char *buf, size_t len) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, len - o, "{");
  for (int d = 0; d < t->ndim && o < len; d++)
    o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)t->shape[d]);
  if (o < len) snprintf(buf + o, len - o, "}");
  return buf;
}

/* A new tensor's buffer lives inside its userdata block, 64-byte aligned, so
 * Lua's collector counts its full size and frees dead tensors at the pace new
 * ones are made (a buffer held outside would be invisible to it, and
 * gigabytes of garbage could pile up within one training step). Only
 * long-lived state goes outside, through core.arena (ltensor.c). */
Tensor *lg_newt_(lua_State *L, int ndim, const int64_t *shape, int zero) {
  static const int64_t one[1] = {1};
  if (ndim < 1) { /* a scalar (a 0-d safetensors entry) is a 1-element vector here */
    ndim = 1;
    shape = one;
  }
  int64_t n = lg_numel(L, ndim, shape);
  size_t bytes = (size_t)(n ? n : 1) * sizeof(float);
  Tensor *t = (Tensor *)lua_newuserdatauv(L, sizeof(Tensor) + bytes + 64, 1);
  uintptr_t p = ((uintptr_t)(t + 1) + 63) & ~(uintptr_t)63;
  t->data = (float *)p;
  t->owns = 1;
  t->ndim = ndim;
  t->n = n;
  for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
  if (zero) memset(t->data, 0, bytes);
  luaL_setmetatable(L, TNAME);
  return t;
}

/* kernel outputs: every element is written by the kernel */
Tensor *lg_newt(lua_State *L, int ndim, const int64_t *shape) {
  return lg_newt_(L, ndim, shape, 0);
}

Tensor *lg_newlike(lua_State *L, const Tensor *src) { return lg_newt(L, src->ndim, src->shape); }

int lg_readshape(lua_State *L, int idx, int64_t *shape) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int nd = (int)luaL_len(L, idx);
  if (nd < 1 || nd > MAXDIM) lg_fail(L, "shape: expected 1 to %d dimensions, got %d", MAXDIM, nd);
  for (int d = 0; d < nd; d++) {
    lua_geti(L, idx, d + 1);
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < 1) lg_fail(L, "shape: dimension %d must be a positive integer", d + 1);
    if (v > INT_MAX) lg_fail(L, "shape: dimension %d is too large (%I)", d + 1, v);
    shape[d] = v;
    lua_pop(L, 1);
  }
  lg_numel(L, nd, shape);
  return nd;
}

/* the element count of a shape, refusing one that overflows what a tensor
 * can address */
int64_t lg_numel(lua_State *L, int nd, const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < nd; d++)
    if (shape[d] < 1 || shape[d] > INT_MAX || __builtin_mul_overflow(n, shape[d], &n) ||
        n > ((int64_t)1 << 40))
      lg_fail(L, "shape: too many elements");
  return n;
}

void lg_neednumel(lua_State *L, const Tensor *t, int64_t n, const char *what) {
  if (t->n != n) {
    char b[128];
    lg_fail(L, "%s: expected %I elements, got shape %s", what, (lua_Integer)n,
               lg_shapestr(t, b, sizeof b));
  }
}

void lg_needdims(lua_State *L, const Tensor *t, int nd, const char *what) {
  if (t->ndim != nd) {
    char b[128];
    lg_fail(L, "%s: expected %d dimensions, got shape %s", what, nd, lg_shapestr(t, b, sizeof b));
  }
}

/* an image tensor {n, h, w, c} */
Tensor *lg_checkimg(lua_State *L, int i, const char *what, int *n, int *h, int *w, int *c) {
  Tensor *t = lg_checkt(L, i);
  lg_needdims(L, t, 4, what);
  *n = (int)t->shape[0];
  *h = (int)t->shape[1];
  *w = (int)t->shape[2];
  *c = (int)t->shape[3];
  return t;
}

/* A flow piece's input: a tensor {n, h, w, c} with c channels, or the error
 * util.check_image raises in Lua ("<what>: got shape {..}, expected {n, h, w, c}"). */
Tensor *lg_checkchannels(lua_State *L, int i, int64_t c, const char *what) {
  Tensor *t = luaL_testudata(L, i, TNAME);
  if (!t) lg_fail(L, "%s: expected a glow.Tensor, got %s", what, luaL_typename(L, i));
  t = lg_checkt(L, i); /* refuses a closed tensor */
  if (t->ndim != 4 || t->shape[3] != c) {
    char b[128];
    lg_fail(L, "%s: got shape %s, expected {n, h, w, %I}", what, lg_shapestr(t, b, sizeof b),
            (lua_Integer)c);
  }
  return t;
}

/* dL/dlogdet of n images (nil, a number for each, or a tensor {n}) summed over them */
double lg_dlogdet_sum(lua_State *L, int i, int64_t n) {
  if (lua_isnoneornil(L, i)) return 0;
  if (lua_type(L, i) == LUA_TNUMBER) return lua_tonumber(L, i) * (double)n;
  Tensor *d = lg_checkt(L, i);
  if (d->n != n) lg_fail(L, "dlogdet: expected %I values, got %I", (lua_Integer)n, (lua_Integer)d->n);
  double s = 0;
  for (int64_t k = 0; k < d->n; k++) s += d->data[k];
  return s;
}

int64_t lg_lastdim(const Tensor *t) { return t->shape[t->ndim - 1]; }

/* the channel count of a per-channel kernel's input, refused above MAXCHAN */
int64_t lg_chan(lua_State *L, const Tensor *t, const char *what) {
  int64_t c = lg_lastdim(t);
  if (c > MAXCHAN) lg_fail(L, "%s: %I channels, at most %d", what, (lua_Integer)c, MAXCHAN);
  return c;
}

/* a Lua array of integers, 0-based as stored, checked to lie in [lo, hi) */
int *lg_readints(lua_State *L, int idx, int64_t count, int lo, int hi, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  if ((int64_t)luaL_len(L, idx) != count)
    lg_fail(L, "%s: expected %I entries, got %I", what, (lua_Integer)count,
               (lua_Integer)luaL_len(L, idx));
  int *v = (int *)lua_newuserdatauv(L, sizeof(int) * (size_t)(count ? count : 1), 0);
  for (int64_t i = 0; i < count; i++) {
    lua_geti(L, idx, i + 1);
    int isnum;
    lua_Integer x = lua_tointegerx(L, -1, &isnum);
    if (!isnum || x < lo || x >= hi)
      lg_fail(L, "%s: entry %I must be an integer in [%d, %d)", what, (lua_Integer)i + 1, lo,
                 hi);
    v[i] = (int)x;
    lua_pop(L, 1);
  }
  return v; /* anchored on the stack as a userdata until the function returns */
}

void lg_checkrc(lua_State *L, int rc, const char *what) {
  if (rc == GLOW_ENOMEM) lg_fail(L, "%s: out of memory", what);
  if (rc == GLOW_ESINGULAR) lg_fail(L, "%s: singular matrix", what);
}

void lg_samenumel(lua_State *L, Tensor *a, Tensor *b, const char *what) {
  if (a->n != b->n) {
    char s1[128], s2[128];
    lg_fail(L, "%s: shapes %s and %s differ in size", what, lg_shapestr(a, s1, sizeof s1),
               lg_shapestr(b, s2, sizeof s2));
  }
}
