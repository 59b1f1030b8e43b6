/*
 * lops.c -- the Lua binding of ops.c: elementwise functions, binary ops and
 * where with numpy-style broadcasting, reductions over chosen dimensions,
 * shape ops (permute, expand, sum_to, narrow, narrow_add, cat), row and
 * element selection (index_select, index_add, gather, scatter_add) and the
 * mask makers (checkerboard, one_hot). lua/glow/tensor.lua installs them as
 * glow.Tensor methods, operators and glow.* functions. The comparisons (lt,
 * le, gt, ge, eq, ne) broadcast like the arithmetic and give 0/1 tensors.
 *
 * Before a strided kernel runs, its dimensions are coalesced: dims of size 1
 * dropped, neighbours merged where every operand steps through them as one,
 * so {n, h, w, c} + {c} loops as {n*h*w, c} and same-shape operands as one
 * flat run.
 *
 * Dimensions are 1-based here, as in Lua; a negative one counts from the
 * end. Every op checks shapes before it touches memory and names itself and
 * the shapes in its error messages; every op returns a new tensor, except
 * narrow_add, index_add and scatter_add, which add into their first argument.
 */
#include <lauxlib.h>
#include <lua.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "glow.h"
#include "lglow.h"

/* ------------------------------------------------------------------ helpers */
/* dimension d (1-based, negative from the end) of nd, 0-based */
static int dimof(lua_State *L, lua_Integer d, int nd, const char *what) {
  lua_Integer k = d < 0 ? d + nd + 1 : d;
  if (k < 1 || k > nd) return lg_fail(L, "%s: dimension %I out of range for %d dimensions", what, d, nd);
  return (int)k - 1;
}

/* an integer at stack index idx, or an error naming what and the value */
static lua_Integer checkint(lua_State *L, int idx, const char *what, const char *name) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint) {
    const char *got = lua_type(L, idx) == LUA_TNUMBER ? luaL_tolstring(L, idx, NULL) : luaL_typename(L, idx);
    return lg_fail(L, "%s: %s must be an integer, got %s", what, name, got);
  }
  return v;
}

static int checkdim(lua_State *L, int idx, int nd, const char *what) {
  return dimof(L, checkint(L, idx, what, "a dimension"), nd, what);
}

/* an optional dimension: def (0-based) when absent */
static int optdim(lua_State *L, int idx, int nd, int def, const char *what) {
  return lua_isnoneornil(L, idx) ? def : checkdim(L, idx, nd, what);
}

/* a tensor argument, or an error naming the op */
static Tensor *checkt(lua_State *L, int idx, const char *what) {
  Tensor *t = luaL_testudata(L, idx, TNAME);
  if (!t) lg_fail(L, "%s: argument %d must be a glow.Tensor, got %s", what, idx, luaL_typename(L, idx));
  if (!t->data) lg_fail(L, "%s: argument %d is a closed tensor", what, idx);
  return t;
}

/* outer, size and inner of t around dimension d (0-based) */
static void around(const Tensor *t, int d, int64_t *outer, int64_t *inner) {
  *outer = 1, *inner = 1;
  for (int i = 0; i < d; i++) *outer *= t->shape[i];
  for (int i = d + 1; i < t->ndim; i++) *inner *= t->shape[i];
}

static void contiguous_strides(int nd, const int64_t *shape, int64_t *s) {
  int64_t k = 1;
  for (int d = nd - 1; d >= 0; d--) {
    s[d] = k;
    k *= shape[d];
  }
}

/* An operand of a broadcasting op: a tensor or a number. */
typedef struct {
  const float *p;
  float num;
  int nd;
  const int64_t *shape;
  int64_t one;
} operand;

/* a number's p and shape point into the operand itself: fill it in place */
static void getop(lua_State *L, int idx, const char *what, operand *o) {
  memset(o, 0, sizeof *o);
  if (lua_type(L, idx) == LUA_TNUMBER) {
    o->num = (float)lua_tonumber(L, idx);
    o->p = &o->num;
    o->nd = 0;
    o->one = 1;
    o->shape = &o->one;
    return;
  }
  Tensor *t = luaL_testudata(L, idx, TNAME);
  if (!t) {
    lg_fail(L, "%s: argument %d must be a glow.Tensor or a number, got %s", what, idx, luaL_typename(L, idx));
    return;
  }
  o->p = t->data, o->nd = t->ndim, o->shape = t->shape;
}

static const char *opshape(const operand *o, char *buf, size_t len) {
  if (o->nd == 0) return "a number";
  size_t k = 0;
  k += (size_t)snprintf(buf, len, "{");
  for (int d = 0; d < o->nd && k < len; d++)
    k += (size_t)snprintf(buf + k, len - k, d ? ", %lld" : "%lld", (long long)o->shape[d]);
  if (k < len) snprintf(buf + k, len - k, "}");
  return buf;
}

/* Coalesce the dims of a strided loop over shape (nd dims) with count
 * operands' strides, in place: dims of size 1 go, and dim d merges into d+1
 * where every operand's stride along d is its stride along d+1 times that
 * dim's size. Returns the new nd (at least 1). */
static int coalesce(int nd, int64_t *shape, int64_t (*st)[GLOW_MAXDIM], int count) {
  int m = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;
    int merge = m > 0;
    for (int k = 0; merge && k < count; k++)
      if (st[k][m - 1] != st[k][d] * shape[d]) merge = 0;
    if (merge) {
      shape[m - 1] *= shape[d];
      for (int k = 0; k < count; k++) st[k][m - 1] = st[k][d];
    } else {
      shape[m] = shape[d];
      for (int k = 0; k < count; k++) st[k][m] = st[k][d];
      m++;
    }
  }
  if (m == 0) {
    shape[0] = 1;
    for (int k = 0; k < count; k++) st[k][0] = 0;
    m = 1;
  }
  return m;
}

/* the broadcast shape of the operands; strides of each aligned to it */
static int broadcast(lua_State *L, operand *ops, int count, const char *what, int64_t *shape,
                     int64_t strides[][GLOW_MAXDIM]) {
  int nd = 0;
  for (int k = 0; k < count; k++) nd = ops[k].nd > nd ? ops[k].nd : nd;
  for (int d = 0; d < nd; d++) shape[d] = 1;
  for (int k = 0; k < count; k++) {
    for (int d = 0; d < ops[k].nd; d++) {
      int od = nd - ops[k].nd + d;
      int64_t v = ops[k].shape[d];
      if (shape[od] == 1) shape[od] = v;
      else if (v != 1 && v != shape[od]) {
        /* the earlier operand that set this dim */
        char b1[160], b2[160];
        int other = 0;
        for (int j = 0; j < k; j++) {
          int jd = od - (nd - ops[j].nd);
          if (jd >= 0 && ops[j].shape[jd] == shape[od]) {
            other = j;
            break;
          }
        }
        return lg_fail(L, "%s: shapes %s and %s do not broadcast", what, opshape(&ops[other], b1, sizeof b1),
                       opshape(&ops[k], b2, sizeof b2));
      }
    }
  }
  for (int k = 0; k < count; k++) {
    int64_t own[GLOW_MAXDIM];
    contiguous_strides(ops[k].nd, ops[k].shape, own);
    for (int d = 0; d < nd; d++) {
      int od = d - (nd - ops[k].nd);
      strides[k][d] = (od < 0 || ops[k].shape[od] == 1) ? 0 : own[od];
    }
  }
  return nd;
}

/* ------------------------------------------------------------------ elementwise */
/* a number argument, or def when absent and def is not NAN */
static float checknum(lua_State *L, int idx, float def, const char *what, const char *name) {
  if (lua_isnoneornil(L, idx) && !isnan(def)) return def;
  if (lua_type(L, idx) != LUA_TNUMBER)
    lg_fail(L, "%s: %s must be a number, got %s", what, name, luaL_typename(L, idx));
  return (float)lua_tonumber(L, idx);
}

static int l_unary(lua_State *L) {
  int op = (int)lua_tointeger(L, lua_upvalueindex(1));
  const char *what = lua_tostring(L, lua_upvalueindex(2));
  Tensor *x = checkt(L, 1, what);
  float a = 0, b = 0;
  if (op == GLOW_OP_ELU) a = checknum(L, 2, 1.0f, what, "alpha");
  if (op == GLOW_OP_POW) a = checknum(L, 2, NAN, what, "the exponent");
  if (op == GLOW_OP_CLAMP) {
    a = checknum(L, 2, -INFINITY, what, "the lower bound");
    b = checknum(L, 3, INFINITY, what, "the upper bound");
  }
  Tensor *y = lg_newlike(L, x);
  glow_unary(op, x->data, y->data, x->n, a, b);
  return 1;
}

/* ------------------------------------------------------------------ broadcasting */
static int l_binary(lua_State *L) {
  int op = (int)lua_tointeger(L, lua_upvalueindex(1));
  const char *what = lua_tostring(L, lua_upvalueindex(2));
  operand ops[2];
  getop(L, 1, what, &ops[0]);
  getop(L, 2, what, &ops[1]);
  int64_t shape[GLOW_MAXDIM], st[2][GLOW_MAXDIM];
  int nd = broadcast(L, ops, 2, what, shape, st);
  if (nd == 0) { /* two numbers: a number */
    float r;
    int64_t one = 1, z = 0;
    glow_binary(op, ops[0].p, &z, ops[1].p, &z, &r, 1, &one);
    lua_pushnumber(L, r);
    return 1;
  }
  Tensor *y = lg_newt(L, nd, shape);
  nd = coalesce(nd, shape, st, 2);
  glow_binary(op, ops[0].p, st[0], ops[1].p, st[1], y->data, nd, shape);
  return 1;
}

static int l_where(lua_State *L) {
  operand ops[3];
  for (int k = 0; k < 3; k++) getop(L, k + 1, "where", &ops[k]);
  int64_t shape[GLOW_MAXDIM], st[3][GLOW_MAXDIM];
  int nd = broadcast(L, ops, 3, "where", shape, st);
  if (nd == 0) return lg_fail(L, "where: at least one argument must be a tensor");
  Tensor *y = lg_newt(L, nd, shape);
  nd = coalesce(nd, shape, st, 3);
  glow_where(ops[0].p, st[0], ops[1].p, st[1], ops[2].p, st[2], y->data, nd, shape);
  return 1;
}

/* expand(t, shape): t broadcast to shape (a copy) */
static int l_expand(lua_State *L) {
  Tensor *t = checkt(L, 1, "expand");
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 2, shape);
  lg_numel(L, nd, shape);
  char b1[160], b2[160];
  if (nd < t->ndim) goto bad;
  int64_t own[MAXDIM], st[1][GLOW_MAXDIM];
  contiguous_strides(t->ndim, t->shape, own);
  for (int d = 0; d < nd; d++) {
    int od = d - (nd - t->ndim);
    if (od < 0) st[0][d] = 0;
    else if (t->shape[od] == shape[d]) st[0][d] = own[od];
    else if (t->shape[od] == 1) st[0][d] = 0;
    else goto bad;
  }
  Tensor *y = lg_newt(L, nd, shape);
  nd = coalesce(nd, shape, st, 1);
  glow_strided_copy(t->data, st[0], y->data, nd, shape);
  return 1;
bad: {
  Tensor tmp = {0};
  tmp.ndim = nd;
  memcpy(tmp.shape, shape, sizeof(int64_t) * (size_t)nd);
  return lg_fail(L, "expand: shape %s does not broadcast to %s", lg_shapestr(t, b1, sizeof b1),
                 lg_shapestr(&tmp, b2, sizeof b2));
}
}

/* ------------------------------------------------------------------ reductions */
/* reduce dims (flags per dim) of t with op (GLOW_OP_ADD, GLOW_OP_MAX or
 * GLOW_OP_SUMEXP for log-sum-exp), one run of neighbouring dims at a time:
 * each of those ops composes over runs. Pushes the result, the reduced dims
 * kept as 1. */
static Tensor *reduce_dims(lua_State *L, Tensor *t, const int *red, int op) {
  int64_t shape[MAXDIM];
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  const float *src = t->data;
  Tensor *cur = NULL;
  int d = 0, pushed = 0;
  while (d < t->ndim) {
    if (!red[d] || shape[d] == 1) {
      d++;
      continue;
    }
    int e = d;
    while (e + 1 < t->ndim && red[e + 1]) e++;
    int64_t outer = 1, mid = 1, inner = 1;
    for (int i = 0; i < d; i++) outer *= shape[i];
    for (int i = d; i <= e; i++) mid *= shape[i];
    for (int i = e + 1; i < t->ndim; i++) inner *= shape[i];
    for (int i = d; i <= e; i++) shape[i] = 1;
    Tensor *next = lg_newt(L, t->ndim, shape);
    if (op == GLOW_OP_SUMEXP) {
      Tensor *m = lg_newt(L, t->ndim, shape); /* scratch */
      glow_logsumexp(src, m->data, next->data, outer, mid, inner);
      lua_pop(L, 1);
    } else {
      glow_reduce(op, src, NULL, next->data, outer, mid, inner);
    }
    if (pushed) lua_remove(L, -2); /* drop the previous intermediate */
    pushed = 1;
    cur = next, src = next->data;
    d = e + 1;
  }
  if (!pushed) { /* nothing to reduce: a copy */
    cur = lg_newt(L, t->ndim, shape);
    memcpy(cur->data, t->data, sizeof(float) * (size_t)t->n);
  }
  return cur;
}

/* read dims (nil: all; an integer; an array of integers) into a 0/1 flag per
 * dimension; a dim given twice is an error */
static void readdims(lua_State *L, int idx, int nd, int *red, const char *what) {
  int all = lua_isnoneornil(L, idx);
  for (int d = 0; d < nd; d++) red[d] = all;
  if (all) return;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    red[checkdim(L, idx, nd, what)] = 1;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE)
    lg_fail(L, "%s: dims must be an integer or an array of integers, got %s", what, luaL_typename(L, idx));
  lua_Integer k = luaL_len(L, idx);
  for (lua_Integer i = 1; i <= k; i++) {
    lua_geti(L, idx, i);
    int d = checkdim(L, lua_gettop(L), nd, what);
    lua_pop(L, 1);
    if (red[d]) lg_fail(L, "%s: dimension %d appears twice in dims", what, d + 1);
    red[d] = 1;
  }
}

/* reduce(t [, dims [, keepdim]]): sum, mean, max or logsumexp over dims
 * (nil: all); the reduced dims removed unless keepdim, shape {1} when none
 * is left */
static int l_reduce(lua_State *L) {
  int op = (int)lua_tointeger(L, lua_upvalueindex(1));
  const char *what = lua_tostring(L, lua_upvalueindex(2));
  int mean = strcmp(what, "mean") == 0;
  Tensor *t = checkt(L, 1, what);
  int red[MAXDIM];
  readdims(L, 2, t->ndim, red, what);
  int keep = lua_toboolean(L, 3);
  Tensor *y = reduce_dims(L, t, red, op);
  if (mean) {
    int64_t count = 1;
    for (int d = 0; d < t->ndim; d++)
      if (red[d]) count *= t->shape[d];
    glow_unary(GLOW_OP_SCALE, y->data, y->data, y->n, (float)(1.0 / (double)count), 0);
  }
  if (!keep) {
    int nd = 0;
    for (int d = 0; d < t->ndim; d++)
      if (!red[d]) y->shape[nd++] = t->shape[d];
    if (nd == 0) y->shape[nd++] = 1;
    y->ndim = nd;
  }
  return 1;
}

/* sum_to(t, shape): the sum of t over the dimensions broadcast from shape */
static int l_sum_to(lua_State *L) {
  Tensor *t = checkt(L, 1, "sum_to");
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 2, shape);
  char b1[160], b2[160];
  Tensor want = {0};
  want.ndim = nd;
  memcpy(want.shape, shape, sizeof(int64_t) * (size_t)nd);
  if (nd > t->ndim) goto bad;
  int red[MAXDIM];
  for (int d = 0; d < t->ndim; d++) {
    int od = d - (t->ndim - nd);
    if (od < 0) red[d] = 1;
    else if (shape[od] == t->shape[d]) red[d] = 0;
    else if (shape[od] == 1) red[d] = 1;
    else goto bad;
  }
  Tensor *y = reduce_dims(L, t, red, GLOW_OP_ADD);
  y->ndim = nd;
  memcpy(y->shape, shape, sizeof(int64_t) * (size_t)nd);
  return 1;
bad:
  return lg_fail(L, "sum_to: shape %s does not broadcast to %s", lg_shapestr(&want, b1, sizeof b1),
                 lg_shapestr(t, b2, sizeof b2));
}

/* ------------------------------------------------------------------ shape */
/* y = t with its dims in the order perm (0-based) */
static int permuted(lua_State *L, Tensor *t, const int *perm) {
  int nd = t->ndim;
  int64_t own[MAXDIM], st[1][GLOW_MAXDIM], shape[MAXDIM];
  contiguous_strides(nd, t->shape, own);
  for (int d = 0; d < nd; d++) shape[d] = t->shape[perm[d]], st[0][d] = own[perm[d]];
  Tensor *y = lg_newt(L, nd, shape);
  nd = coalesce(nd, shape, st, 1);
  glow_strided_copy(t->data, st[0], y->data, nd, shape);
  return 1;
}

static int l_permute(lua_State *L) {
  Tensor *t = checkt(L, 1, "permute");
  int nd = t->ndim, seen[MAXDIM] = {0}, perm[MAXDIM];
  char b[160];
  if (lua_type(L, 2) != LUA_TTABLE || luaL_len(L, 2) != nd)
    return lg_fail(L, "permute: a permutation of the %d dimensions of %s is needed", nd, lg_shapestr(t, b, sizeof b));
  for (int d = 0; d < nd; d++) {
    lua_geti(L, 2, d + 1);
    int p = checkdim(L, lua_gettop(L), nd, "permute");
    lua_pop(L, 1);
    if (seen[p]) return lg_fail(L, "permute: dimension %d appears twice", p + 1);
    seen[p] = 1, perm[d] = p;
  }
  return permuted(L, t, perm);
}

/* transpose(t, i, j): a copy with dims i and j swapped */
static int l_transpose(lua_State *L) {
  Tensor *t = checkt(L, 1, "transpose");
  int i = checkdim(L, 2, t->ndim, "transpose"), j = checkdim(L, 3, t->ndim, "transpose"), perm[MAXDIM];
  for (int d = 0; d < t->ndim; d++) perm[d] = d;
  perm[i] = j, perm[j] = i;
  return permuted(L, t, perm);
}

/* narrow(t, dim, start, length): a copy of the slice */
static int l_narrow(lua_State *L) {
  Tensor *t = checkt(L, 1, "narrow");
  int d = checkdim(L, 2, t->ndim, "narrow");
  lua_Integer start = checkint(L, 3, "narrow", "start"), len = checkint(L, 4, "narrow", "length");
  char b[160];
  if (start < 1 || len < 1 || start - 1 + len > t->shape[d])
    return lg_fail(L, "narrow: elements %I..%I of dimension %d lie outside %s", start, start + len - 1, d + 1,
                   lg_shapestr(t, b, sizeof b));
  int64_t outer, inner, shape[MAXDIM];
  around(t, d, &outer, &inner);
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  shape[d] = len;
  Tensor *y = lg_newt(L, t->ndim, shape);
  glow_rows(t->data, t->shape[d], start - 1, y->data, len, 0, len, outer, inner, 0);
  return 1;
}

/* chunk(t, n [, dim = 1]): a Lua array of copies, each ceil(size / n) long
 * along dim but the last, which takes the rest; fewer than n when the size
 * runs out first (as torch.chunk) */
static int l_chunk(lua_State *L) {
  Tensor *t = checkt(L, 1, "chunk");
  lua_Integer n = checkint(L, 2, "chunk", "the number of chunks");
  int d = optdim(L, 3, t->ndim, 0, "chunk");
  if (n < 1) return lg_fail(L, "chunk: the number of chunks must be at least 1, got %I", n);
  int64_t size = t->shape[d], step = (size + n - 1) / n, outer, inner, shape[MAXDIM];
  around(t, d, &outer, &inner);
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  lua_createtable(L, (int)((size + step - 1) / step), 0);
  int k = 0;
  for (int64_t start = 0; start < size; start += step) {
    int64_t len = size - start < step ? size - start : step;
    shape[d] = len;
    Tensor *y = lg_newt(L, t->ndim, shape);
    glow_rows(t->data, size, start, y->data, len, 0, len, outer, inner, 0);
    lua_rawseti(L, -2, ++k);
  }
  return 1;
}

/* narrow_add(t, dim, start, src): t's slice += src, in place; returns t */
static int l_narrow_add(lua_State *L) {
  Tensor *t = checkt(L, 1, "narrow_add");
  int d = checkdim(L, 2, t->ndim, "narrow_add");
  lua_Integer start = checkint(L, 3, "narrow_add", "start");
  Tensor *s = checkt(L, 4, "narrow_add");
  char b1[160], b2[160];
  int ok = s->ndim == t->ndim && start >= 1 && start - 1 + s->shape[d] <= t->shape[d];
  for (int i = 0; ok && i < t->ndim; i++)
    if (i != d && s->shape[i] != t->shape[i]) ok = 0;
  if (!ok)
    return lg_fail(L, "narrow_add: %s does not fit in %s at element %I of dimension %d",
                   lg_shapestr(s, b1, sizeof b1), lg_shapestr(t, b2, sizeof b2), start, d + 1);
  int64_t outer, inner;
  around(t, d, &outer, &inner);
  glow_rows(s->data, s->shape[d], 0, t->data, t->shape[d], start - 1, s->shape[d], outer, inner, 1);
  lua_settop(L, 1);
  return 1;
}

/* element i of the list at stack index 1, a live tensor (left on the stack) */
static Tensor *listt(lua_State *L, lua_Integer i, const char *what) {
  lua_geti(L, 1, i);
  Tensor *t = luaL_testudata(L, -1, TNAME);
  if (!t) lg_fail(L, "%s: element %I of the list is not a glow.Tensor", what, i);
  if (!t->data) lg_fail(L, "%s: element %I of the list is a closed tensor", what, i);
  return t;
}

/* cat(list [, dim = 1]) */
static int l_cat(lua_State *L) {
  if (lua_type(L, 1) != LUA_TTABLE)
    return lg_fail(L, "cat: expected a list of tensors, got %s", luaL_typename(L, 1));
  lua_Integer k = luaL_len(L, 1);
  if (k < 1) return lg_fail(L, "cat: the list is empty");
  Tensor *first = listt(L, 1, "cat");
  lua_pop(L, 1);
  int d = optdim(L, 2, first->ndim, 0, "cat");
  int64_t shape[MAXDIM];
  memcpy(shape, first->shape, sizeof(int64_t) * (size_t)first->ndim);
  shape[d] = 0;
  for (lua_Integer i = 1; i <= k; i++) {
    Tensor *t = listt(L, i, "cat");
    int ok = t->ndim == first->ndim;
    for (int j = 0; ok && j < t->ndim; j++)
      if (j != d && t->shape[j] != first->shape[j]) ok = 0;
    if (!ok) {
      char b1[160], b2[160];
      return lg_fail(L, "cat: shapes %s and %s differ outside dimension %d", lg_shapestr(first, b1, sizeof b1),
                     lg_shapestr(t, b2, sizeof b2), d + 1);
    }
    shape[d] += t->shape[d];
    lua_pop(L, 1);
  }
  Tensor *y = lg_newt(L, first->ndim, shape);
  int64_t outer, inner, off = 0;
  around(y, d, &outer, &inner);
  for (lua_Integer i = 1; i <= k; i++) {
    lua_geti(L, 1, i);
    Tensor *t = lg_checkt(L, -1);
    glow_rows(t->data, t->shape[d], 0, y->data, shape[d], off, t->shape[d], outer, inner, 0);
    off += t->shape[d];
    lua_pop(L, 1);
  }
  return 1;
}

/* ------------------------------------------------------------------ indexing */
/* indices from a Lua array or a tensor of integral values, 1-based, each in
 * [1, size]; returned 0-based in a userdata anchored on the stack */
static int64_t *readindex(lua_State *L, int idx, int64_t *count, int64_t size, const char *what) {
  Tensor *t = luaL_testudata(L, idx, TNAME);
  if (t && !t->data) lg_fail(L, "%s: the index is a closed tensor", what);
  if (!t && lua_type(L, idx) != LUA_TTABLE)
    lg_fail(L, "%s: the index must be a Lua array or a glow.Tensor, got %s", what, luaL_typename(L, idx));
  int64_t n = t ? t->n : (int64_t)luaL_len(L, idx);
  if (n < 1) lg_fail(L, "%s: no indices", what);
  int64_t *out = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(n > 0 ? n : 1), 0);
  for (int64_t i = 0; i < n; i++) {
    double v;
    if (t) v = t->data[i];
    else {
      lua_geti(L, idx, i + 1);
      v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
      lua_pop(L, 1);
    }
    if (v != floor(v) || v < 1 || v > (double)size) {
      char b[64];
      snprintf(b, sizeof b, "%g", v);
      lg_fail(L, "%s: index %s at position %I is not an integer in 1..%I", what, b, (lua_Integer)(i + 1),
              (lua_Integer)size);
    }
    out[i] = (int64_t)v - 1;
  }
  *count = n;
  return out;
}

static int l_index_select(lua_State *L) {
  Tensor *t = checkt(L, 1, "index_select");
  int d = checkdim(L, 2, t->ndim, "index_select");
  int64_t n;
  int64_t *idx = readindex(L, 3, &n, t->shape[d], "index_select");
  int64_t outer, inner, shape[MAXDIM];
  around(t, d, &outer, &inner);
  memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  shape[d] = n;
  Tensor *y = lg_newt(L, t->ndim, shape);
  glow_index_rows(t->data, t->shape[d], y->data, idx, n, outer, inner, 0);
  return 1;
}

/* index_add(t, dim, idx, src): t[.., idx[j], ..] += src[.., j, ..], in place */
static int l_index_add(lua_State *L) {
  Tensor *t = checkt(L, 1, "index_add");
  int d = checkdim(L, 2, t->ndim, "index_add");
  int64_t n;
  int64_t *idx = readindex(L, 3, &n, t->shape[d], "index_add");
  Tensor *s = checkt(L, 4, "index_add");
  int ok = s->ndim == t->ndim && s->shape[d] == n;
  for (int i = 0; ok && i < t->ndim; i++)
    if (i != d && s->shape[i] != t->shape[i]) ok = 0;
  if (!ok) {
    char b1[160], b2[160];
    return lg_fail(L, "index_add: source %s does not fit %s with %I indices along dimension %d",
                   lg_shapestr(s, b1, sizeof b1), lg_shapestr(t, b2, sizeof b2), (lua_Integer)n, d + 1);
  }
  int64_t outer, inner;
  around(t, d, &outer, &inner);
  glow_index_rows(s->data, t->shape[d], t->data, idx, n, outer, inner, 1);
  lua_settop(L, 1);
  return 1;
}

/* the gather/scatter index: a tensor of t's rank, each dim <= t's except d */
static int64_t *gather_index(lua_State *L, Tensor *t, int d, Tensor *ix, const char *what) {
  char b1[160], b2[160];
  int ok = ix->ndim == t->ndim;
  for (int i = 0; ok && i < t->ndim; i++)
    if (i != d && ix->shape[i] > t->shape[i]) ok = 0;
  if (!ok)
    lg_fail(L, "%s: index %s does not fit %s", what, lg_shapestr(ix, b1, sizeof b1), lg_shapestr(t, b2, sizeof b2));
  int64_t n;
  return readindex(L, 3, &n, t->shape[d], what);
}

static int l_gather(lua_State *L) {
  Tensor *t = checkt(L, 1, "gather");
  int d = checkdim(L, 2, t->ndim, "gather");
  Tensor *ix = checkt(L, 3, "gather");
  int64_t *idx = gather_index(L, t, d, ix, "gather");
  Tensor *y = lg_newt(L, ix->ndim, ix->shape);
  glow_gather(t->data, t->shape, idx, ix->shape, t->ndim, d, y->data, 0);
  return 1;
}

/* scatter_add(t, dim, index, src): t[.. index ..] += src, in place */
static int l_scatter_add(lua_State *L) {
  Tensor *t = checkt(L, 1, "scatter_add");
  int d = checkdim(L, 2, t->ndim, "scatter_add");
  Tensor *ix = checkt(L, 3, "scatter_add");
  Tensor *s = checkt(L, 4, "scatter_add");
  int64_t *idx = gather_index(L, t, d, ix, "scatter_add");
  int same = s->ndim == ix->ndim;
  for (int i = 0; same && i < s->ndim; i++) same = s->shape[i] == ix->shape[i];
  if (!same) {
    char b1[160], b2[160];
    return lg_fail(L, "scatter_add: source %s and index %s differ in shape", lg_shapestr(s, b1, sizeof b1),
                   lg_shapestr(ix, b2, sizeof b2));
  }
  glow_gather(t->data, t->shape, idx, ix->shape, t->ndim, d, s->data, 1);
  lua_settop(L, 1);
  return 1;
}

/* scatter(t, dim, index, src): a copy of t with t[.. index ..] = src (where
 * an index repeats, one of the sources wins) */
static int l_scatter(lua_State *L) {
  Tensor *t = checkt(L, 1, "scatter");
  int d = checkdim(L, 2, t->ndim, "scatter");
  Tensor *ix = checkt(L, 3, "scatter");
  Tensor *s = checkt(L, 4, "scatter");
  int64_t *idx = gather_index(L, t, d, ix, "scatter");
  int same = s->ndim == ix->ndim;
  for (int i = 0; same && i < s->ndim; i++) same = s->shape[i] == ix->shape[i];
  if (!same) {
    char b1[160], b2[160];
    return lg_fail(L, "scatter: source %s and index %s differ in shape", lg_shapestr(s, b1, sizeof b1),
                   lg_shapestr(ix, b2, sizeof b2));
  }
  Tensor *y = lg_newlike(L, t);
  memcpy(y->data, t->data, sizeof(float) * (size_t)t->n);
  glow_gather(y->data, y->shape, idx, ix->shape, t->ndim, d, s->data, 2);
  return 1;
}

/* ------------------------------------------------------------------ masks */
/* checkerboard(shape, parity): shape {h, w, c} or {n, h, w, c} */
static int l_checkerboard(lua_State *L) {
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 1, shape);
  lua_Integer parity = lua_isnoneornil(L, 2) ? 0 : checkint(L, 2, "checkerboard", "parity");
  if (nd != 3 && nd != 4) return lg_fail(L, "checkerboard: shape must be {h, w, c} or {n, h, w, c}, got %d dimensions", nd);
  if (parity != 0 && parity != 1) return lg_fail(L, "checkerboard: parity must be 0 or 1, got %I", parity);
  lg_numel(L, nd, shape);
  Tensor *y = lg_newt(L, nd, shape);
  int64_t n = nd == 4 ? shape[0] : 1;
  const int64_t *s = shape + (nd == 4);
  glow_checkerboard(y->data, n, s[0], s[1], s[2], (int)parity);
  return 1;
}

/* one_hot(labels, k): labels a Lua array of 0-based integers */
static int l_one_hot(lua_State *L) {
  if (lua_type(L, 1) != LUA_TTABLE)
    return lg_fail(L, "one_hot: labels must be a Lua array of 0-based integers, got %s", luaL_typename(L, 1));
  lua_Integer k = checkint(L, 2, "one_hot", "k");
  if (k < 1 || k > INT_MAX) return lg_fail(L, "one_hot: k must be in 1..%d, got %I", INT_MAX, k);
  lua_Integer n = luaL_len(L, 1);
  if (n < 1) return lg_fail(L, "one_hot: the labels are empty");
  int *lab = (int *)lg_readints(L, 1, n, 0, (int)k, "one_hot: labels");
  Tensor *y = lg_newt(L, 2, (int64_t[]){n, k});
  glow_one_hot(lab, n, k, y->data);
  return 1;
}

/* ------------------------------------------------------------------ fused programs */
/* A program from Lua: code {op, a, b, p, q, ...} five numbers an
 * instruction, registers 1-based (inputs first, b = 0 for a unary op);
 * inputs {tensor or number, ...}. Fills P (its code in ins, its inputs in
 * in, the operands in ops, which hold the numbers) or raises an error. */
static int ew_read(lua_State *L, const char *what, glow_ew_prog *P, glow_ew_ins *ins, glow_ew_in *in,
                   operand *ops, int64_t *oshape) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer ncode = luaL_len(L, 1), nin = luaL_len(L, 2);
  if (ncode < 5 || ncode % 5 != 0) lg_fail(L, "%s: code must hold 5 numbers an instruction, got %I", what, ncode);
  if (nin < 1 || nin + ncode / 5 > GLOW_EW_MAXREG)
    lg_fail(L, "%s: %I inputs and %I instructions: at most %d registers", what, nin, ncode / 5, GLOW_EW_MAXREG);
  P->nin = (int)nin, P->nins = (int)(ncode / 5);
  for (int i = 0; i < P->nin; i++) {
    lua_geti(L, 2, i + 1);
    getop(L, lua_gettop(L), what, &ops[i]);
    if (ops[i].nd == 0) ops[i].p = &ops[i].num; /* the copy in ops[] holds the number */
    lua_pop(L, 1);
  }
  for (int k = 0; k < P->nins; k++) {
    double f[5];
    for (int j = 0; j < 5; j++) {
      lua_geti(L, 1, 5 * k + j + 1);
      if (lua_type(L, -1) != LUA_TNUMBER) lg_fail(L, "%s: code entry %d is not a number", what, 5 * k + j + 1);
      f[j] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    int op = (int)f[0], a = (int)f[1] - 1, b = (int)f[2] - 1, reg = P->nin + k;
    int unary = op >= GLOW_OP_EXP && op <= GLOW_OP_POW && op != GLOW_OP_SCALE;
    int binary = op >= GLOW_OP_ADD && op <= GLOW_OP_MIN;
    if (!unary && !binary) lg_fail(L, "%s: instruction %d: unknown op %d", what, k + 1, op);
    if (a < 0 || a >= reg || (binary ? (b < 0 || b >= reg) : b != -1))
      lg_fail(L, "%s: instruction %d: bad registers %d, %d", what, k + 1, a + 1, b + 1);
    ins[k] = (glow_ew_ins){op, a, binary ? b : -1, (float)f[3], (float)f[4]};
  }
  int unused = glow_ew_unused(ins, P->nins, P->nin);
  if (unused >= 0) lg_fail(L, "%s: register %d does not lead to the output", what, unused + 1);
  int64_t st[GLOW_EW_MAXREG][GLOW_MAXDIM], own[GLOW_MAXDIM];
  int nd = broadcast(L, ops, P->nin, what, P->shape, st);
  if (nd == 0) lg_fail(L, "%s: at least one input must be a tensor", what);
  lg_numel(L, nd, P->shape);
  memcpy(oshape, P->shape, sizeof(int64_t) * (size_t)nd); /* the output's shape, before coalescing */
  P->nd = coalesce(nd, P->shape, st, P->nin);
  contiguous_strides(P->nd, P->shape, own);
  int64_t n = 1;
  for (int d = 0; d < P->nd; d++) n *= P->shape[d];
  for (int i = 0; i < P->nin; i++) {
    in[i].p = ops[i].p;
    memcpy(in[i].st, st[i], sizeof in[i].st);
    int64_t m = 1;
    for (int d = 0; d < ops[i].nd; d++) m *= ops[i].shape[d];
    in[i].full = m == n && memcmp(st[i], own, sizeof(int64_t) * (size_t)P->nd) == 0;
  }
  P->code = ins;
  P->in = in;
  return nd;
}

/* ew_forward(code, inputs) -> the output of the program (the broadcast shape) */
static int l_ew_forward(lua_State *L) {
  glow_ew_prog P;
  glow_ew_ins ins[GLOW_EW_MAXREG];
  glow_ew_in in[GLOW_EW_MAXREG];
  operand ops[GLOW_EW_MAXREG];
  int64_t shape[GLOW_MAXDIM];
  int nd = ew_read(L, "ew_forward", &P, ins, in, ops, shape);
  Tensor *y = lg_newt(L, nd, shape);
  if (glow_ew_forward(&P, y->data) != GLOW_OK) return lg_fail(L, "ew_forward: out of memory");
  return 1;
}

/* ew_backward(code, inputs, g, want) -> {gradient of input i where want[i]}:
 * the input's shape, or the output's when summing it here would take too much
 * memory (then the caller sums it with sum_to) */
static int l_ew_backward(lua_State *L) {
  glow_ew_prog P;
  glow_ew_ins ins[GLOW_EW_MAXREG];
  glow_ew_in in[GLOW_EW_MAXREG];
  operand ops[GLOW_EW_MAXREG];
  int64_t shape[GLOW_MAXDIM];
  int nd = ew_read(L, "ew_backward", &P, ins, in, ops, shape);
  Tensor *g = checkt(L, 3, "ew_backward");
  luaL_checktype(L, 4, LUA_TTABLE);
  int64_t n = 1;
  for (int d = 0; d < P.nd; d++) n *= P.shape[d];
  if (g->n != n) return lg_fail(L, "ew_backward: the gradient has %I elements, the output %I", (lua_Integer)g->n,
                                (lua_Integer)n);
  float *grad[GLOW_EW_MAXREG];
  int reduce[GLOW_EW_MAXREG];
  int64_t numel[GLOW_EW_MAXREG];
  lua_createtable(L, P.nin, 0);
  int out = lua_gettop(L);
  for (int i = 0; i < P.nin; i++) {
    grad[i] = NULL, reduce[i] = 0, numel[i] = 1;
    for (int d = 0; d < ops[i].nd; d++) numel[i] *= ops[i].shape[d];
    lua_geti(L, 4, i + 1);
    int want = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!want || ops[i].nd == 0) continue;
    Tensor *t;
    if (in[i].full) {
      t = lg_newt(L, ops[i].nd, ops[i].shape);
    } else if (glow_ew_partial_ok(&P, numel[i])) {
      t = lg_newt(L, ops[i].nd, ops[i].shape);
      reduce[i] = 1;
    } else {
      t = lg_newt(L, nd, shape);
    }
    grad[i] = t->data;
    lua_seti(L, out, i + 1);
  }
  if (glow_ew_backward(&P, g->data, grad, reduce, numel) != GLOW_OK) return lg_fail(L, "ew_backward: out of memory");
  return 1;
}

/* ------------------------------------------------------------------ registration */
static const struct {
  const char *name;
  int op;
} UNARY[] = {{"exp", GLOW_OP_EXP},         {"log", GLOW_OP_LOG},
             {"log1p", GLOW_OP_LOG1P},     {"expm1", GLOW_OP_EXPM1},
             {"sqrt", GLOW_OP_SQRT},       {"abs", GLOW_OP_ABS},
             {"neg", GLOW_OP_NEG},         {"sigmoid", GLOW_OP_SIGMOID},
             {"log_sigmoid", GLOW_OP_LOG_SIGMOID}, {"tanh", GLOW_OP_TANH},
             {"softplus", GLOW_OP_SOFTPLUS}, {"relu", GLOW_OP_RELU},
             {"elu", GLOW_OP_ELU},         {"clamp", GLOW_OP_CLAMP},
             {"pow", GLOW_OP_POW},         {"floor", GLOW_OP_FLOOR},
             {"ceil", GLOW_OP_CEIL},       {"round", GLOW_OP_ROUND},
             {"sign", GLOW_OP_SIGN}},
  BINARY[] = {{"add", GLOW_OP_ADD}, {"sub", GLOW_OP_SUB},     {"mul", GLOW_OP_MUL},
              {"div", GLOW_OP_DIV}, {"maximum", GLOW_OP_MAX}, {"minimum", GLOW_OP_MIN},
              {"lt", GLOW_OP_LT},   {"le", GLOW_OP_LE},       {"gt", GLOW_OP_GT},
              {"ge", GLOW_OP_GE},   {"eq", GLOW_OP_EQ},       {"ne", GLOW_OP_NE}},
  REDUCE[] = {{"sum", GLOW_OP_ADD}, {"mean", GLOW_OP_ADD}, {"max", GLOW_OP_MAX}, {"logsumexp", GLOW_OP_SUMEXP}};

static const luaL_Reg funcs[] = {{"where", l_where},
                                 {"expand", l_expand},
                                 {"sum_to", l_sum_to},
                                 {"permute", l_permute},
                                 {"transpose", l_transpose},
                                 {"narrow", l_narrow},
                                 {"chunk", l_chunk},
                                 {"narrow_add", l_narrow_add},
                                 {"cat", l_cat},
                                 {"index_select", l_index_select},
                                 {"index_add", l_index_add},
                                 {"gather", l_gather},
                                 {"scatter_add", l_scatter_add},
                                 {"scatter", l_scatter},
                                 {"checkerboard", l_checkerboard},
                                 {"one_hot", l_one_hot},
                                 {"ew_forward", l_ew_forward},
                                 {"ew_backward", l_ew_backward},
                                 {NULL, NULL}};

void lg_open_ops(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
  /* the op codes of fused programs: ew_ops.exp, ..., ew_ops.add, ... */
  lua_newtable(L);
  for (size_t i = 0; i < sizeof UNARY / sizeof UNARY[0]; i++) {
    lua_pushinteger(L, UNARY[i].op);
    lua_setfield(L, -2, UNARY[i].name);
  }
  for (size_t i = 0; i < sizeof BINARY / sizeof BINARY[0]; i++) {
    lua_pushinteger(L, BINARY[i].op);
    lua_setfield(L, -2, BINARY[i].name);
  }
  lua_setfield(L, -2, "ew_ops");
  for (size_t i = 0; i < sizeof UNARY / sizeof UNARY[0]; i++) {
    lua_pushinteger(L, UNARY[i].op);
    lua_pushstring(L, UNARY[i].name);
    lua_pushcclosure(L, l_unary, 2);
    lua_setfield(L, -2, UNARY[i].name);
  }
  for (size_t i = 0; i < sizeof BINARY / sizeof BINARY[0]; i++) {
    lua_pushinteger(L, BINARY[i].op);
    lua_pushstring(L, BINARY[i].name);
    lua_pushcclosure(L, l_binary, 2);
    lua_setfield(L, -2, BINARY[i].name);
  }
  for (size_t i = 0; i < sizeof REDUCE / sizeof REDUCE[0]; i++) {
    char key[32];
    snprintf(key, sizeof key, "reduce_%s", REDUCE[i].name);
    lua_pushinteger(L, REDUCE[i].op);
    lua_pushstring(L, REDUCE[i].name);
    lua_pushcclosure(L, l_reduce, 2);
    lua_setfield(L, -2, key);
  }
}
