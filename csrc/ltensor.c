/*
 * ltensor.c -- the Lua class "glow.Tensor": a float32, contiguous, row-major
 * array of up to 8 dimensions (core.tensor, core.from, core.randn,
 * core.rand), its methods and metatable, views (t:view, core.view_range) and
 * long-lived tensors outside Lua's heap (core.arena, over a "glow.Block"), and
 * copies kept outside it until taken back (core.stash, core.unstash).
 *
 * A tensor either owns its memory (inside its userdata) or is a view into
 * another tensor's memory or into an arena block; the owner is kept alive as
 * the view's user value. __close marks a tensor closed (the argument checks
 * refuse it from then on); its memory goes with its userdata.
 */
#include <lauxlib.h>
#include <lua.h>

#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>

#include "glow.h"
#include "lglow.h"

/* ------------------------------------------------------------------ tensor: construction */
static int t_new(lua_State *L) {
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 1, shape);
  lg_newt_(L, nd, shape, 1);
  return 1;
}

static int t_from(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int64_t shape[MAXDIM];
  int nd;
  if (lua_isnoneornil(L, 2)) {
    shape[0] = (int64_t)luaL_len(L, 1);
    nd = 1;
    if (shape[0] < 1) luaL_argerror(L, 1, "empty table");
  } else {
    nd = lg_readshape(L, 2, shape);
  }
  Tensor *t = lg_newt(L, nd, shape);
  if ((int64_t)luaL_len(L, 1) != t->n) {
    char b[128];
    lg_fail(L, "Tensor.from: %I values do not fill shape %s", (lua_Integer)luaL_len(L, 1),
               lg_shapestr(t, b, sizeof b));
  }
  for (int64_t i = 0; i < t->n; i++) {
    lua_geti(L, 1, i + 1);
    int isnum;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    if (!isnum) lg_fail(L, "Tensor.from: value %I is not a number", (lua_Integer)i + 1);
    t->data[i] = (float)v;
    lua_pop(L, 1);
  }
  return 1;
}

static int t_randn(lua_State *L) {
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 1, shape);
  uint64_t seed = (uint64_t)luaL_optinteger(L, 2, 0);
  float std = (float)luaL_optnumber(L, 3, 1.0);
  Tensor *t = lg_newt(L, nd, shape);
  glow_rng r;
  glow_rng_seed(&r, seed);
  glow_randn(&r, t->data, (size_t)t->n, std);
  return 1;
}

static int t_rand(lua_State *L) {
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 1, shape);
  uint64_t seed = (uint64_t)luaL_optinteger(L, 2, 0);
  Tensor *t = lg_newt(L, nd, shape);
  glow_rng r;
  glow_rng_seed(&r, seed);
  glow_rand_uniform(&r, t->data, (size_t)t->n);
  return 1;
}

/* ------------------------------------------------------------------ tensor: methods */
static int t_shape(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  lua_createtable(L, t->ndim, 0);
  for (int d = 0; d < t->ndim; d++) {
    lua_pushinteger(L, t->shape[d]);
    lua_rawseti(L, -2, d + 1);
  }
  return 1;
}

static int t_numel(lua_State *L) {
  lua_pushinteger(L, lg_checkt(L, 1)->n);
  return 1;
}

static int t_totable(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  lua_createtable(L, (int)t->n, 0);
  for (int64_t i = 0; i < t->n; i++) {
    lua_pushnumber(L, t->data[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int64_t checkindex(lua_State *L, Tensor *t, int i) {
  lua_Integer k = luaL_checkinteger(L, i);
  if (k < 1 || k > t->n)
    lg_fail(L, "index %I out of range [1, %I]", (lua_Integer)k, (lua_Integer)t->n);
  return k - 1;
}

static int t_get(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  lua_pushnumber(L, t->data[checkindex(L, t, 2)]);
  return 1;
}

static int t_set(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  int64_t k = checkindex(L, t, 2);
  t->data[k] = (float)luaL_checknumber(L, 3);
  lua_settop(L, 1);
  return 1;
}

static int t_add(lua_State *L) {
  Tensor *t = lg_checkt(L, 1), *o = lg_checkt(L, 2);
  float alpha = (float)luaL_optnumber(L, 3, 1.0);
  lg_samenumel(L, t, o, "add_");
  for (int64_t i = 0; i < t->n; i++) t->data[i] += alpha * o->data[i];
  lua_settop(L, 1);
  return 1;
}

static int t_mul(lua_State *L) {
  Tensor *t = lg_checkt(L, 1), *o = lg_checkt(L, 2);
  lg_samenumel(L, t, o, "mul_");
  for (int64_t i = 0; i < t->n; i++) t->data[i] *= o->data[i];
  lua_settop(L, 1);
  return 1;
}

static int t_scale(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  float a = (float)luaL_checknumber(L, 2);
  for (int64_t i = 0; i < t->n; i++) t->data[i] *= a;
  lua_settop(L, 1);
  return 1;
}

static int t_fill(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  float a = (float)luaL_checknumber(L, 2);
  for (int64_t i = 0; i < t->n; i++) t->data[i] = a;
  lua_settop(L, 1);
  return 1;
}

static int t_copy(lua_State *L) {
  Tensor *t = lg_checkt(L, 1), *o = lg_checkt(L, 2);
  lg_samenumel(L, t, o, "copy_");
  memmove(t->data, o->data, sizeof(float) * (size_t)t->n);
  lua_settop(L, 1);
  return 1;
}

static int t_zero(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  memset(t->data, 0, sizeof(float) * (size_t)t->n);
  lua_settop(L, 1);
  return 1;
}

static int t_clone(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  Tensor *c = lg_newlike(L, t);
  memcpy(c->data, t->data, sizeof(float) * (size_t)t->n);
  return 1;
}

/* push a view of the tensor at stack index 1 over data: it keeps the memory's
 * owner alive (the tensor itself, or the owner of a view) as its user value */
static int push_view(lua_State *L, const Tensor *t, float *data, int64_t n, int nd,
                     const int64_t *shape) {
  Tensor *v = (Tensor *)lua_newuserdatauv(L, sizeof(Tensor), 1);
  *v = *t;
  v->data = data;
  v->n = n;
  v->owns = 0;
  v->ndim = nd;
  for (int d = 0; d < nd; d++) v->shape[d] = shape[d];
  luaL_setmetatable(L, TNAME);
  if (t->owns)
    lua_pushvalue(L, 1);
  else
    lua_getiuservalue(L, 1, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* a view with another shape over the same memory */
static int t_view(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 2, shape);
  int64_t n = lg_numel(L, nd, shape);
  if (n != t->n) {
    char b[128];
    lg_fail(L, "view: shape %s has %I elements, the new shape %I", lg_shapestr(t, b, sizeof b),
               (lua_Integer)t->n, (lua_Integer)n);
  }
  return push_view(L, t, t->data, n, nd, shape);
}

/* view_range(base, offset, shape): a view of shape's size starting at element
 * offset (0-based) of base; the arena's parameters and gradients are these */
static int t_view_range(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2);
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 3, shape);
  int64_t n = lg_numel(L, nd, shape);
  if (off < 0 || n > t->n || off > t->n - n)
    return lg_fail(L, "view_range: elements [%I, %I) lie outside a tensor of %I", (lua_Integer)off,
                   (lua_Integer)(off + n), (lua_Integer)t->n);
  return push_view(L, t, t->data + off, n, nd, shape);
}

static int t_dot(lua_State *L) {
  Tensor *t = lg_checkt(L, 1), *o = lg_checkt(L, 2);
  lg_samenumel(L, t, o, "dot");
  lua_pushnumber(L, glow_dot(t->data, o->data, (size_t)t->n));
  return 1;
}

static int t_sum(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  double s = 0;
  for (int64_t i = 0; i < t->n; i++) s += t->data[i];
  lua_pushnumber(L, s);
  return 1;
}

static int t_max_abs(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  double m = 0;
  for (int64_t i = 0; i < t->n; i++) {
    double a = fabs((double)t->data[i]);
    if (a > m || isnan(a)) m = a;
  }
  lua_pushnumber(L, m);
  return 1;
}

static int t_max_abs_diff(lua_State *L) {
  Tensor *t = lg_checkt(L, 1), *o = lg_checkt(L, 2);
  lg_samenumel(L, t, o, "max_abs_diff");
  double m = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < t->n; i++) {
    double a = fabs((double)t->data[i] - o->data[i]);
    if (a > m || isnan(a)) {
      m = a;
      at = i;
    }
  }
  lua_pushnumber(L, m);
  lua_pushinteger(L, at + 1);
  return 2;
}

static int t_all_finite(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  lua_pushboolean(L, glow_all_finite(t->data, (size_t)t->n));
  return 1;
}

/* t:finite_range() -> all finite (boolean), min, max (NaNs ignored) */
static int t_finite_range(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  float lo, hi;
  lua_pushboolean(L, glow_finite_range(t->data, (size_t)t->n, &lo, &hi));
  lua_pushnumber(L, lo);
  lua_pushnumber(L, hi);
  return 3;
}

/* tostring(t), print(t): the shape and the values in row-major order, each
 * with %.4g (NaN as "nan"): all of them up to TOSTRING_ALL, else the first
 * and last TOSTRING_EDGE around "...", as torch summarizes a large tensor:
 *   glow.Tensor{2, 3}: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
 *   glow.Tensor{1000}: [0.1, 0.2, 0.3, ..., 998, 999, 1000] */
#define TOSTRING_ALL 8
#define TOSTRING_EDGE 3
static int t_tostring(lua_State *L) {
  Tensor *t = (Tensor *)luaL_checkudata(L, 1, TNAME);
  if (!t->data) {
    lua_pushliteral(L, "glow.Tensor (closed)");
    return 1;
  }
  char b[128], v[32];
  luaL_Buffer buf;
  luaL_buffinit(L, &buf);
  luaL_addstring(&buf, "glow.Tensor");
  luaL_addstring(&buf, lg_shapestr(t, b, sizeof b));
  luaL_addstring(&buf, ": [");
  int all = t->n <= TOSTRING_ALL;
  for (int64_t i = 0; i < t->n; i++) {
    if (!all && i == TOSTRING_EDGE) {
      luaL_addstring(&buf, ", ...");
      i = t->n - TOSTRING_EDGE;
    }
    double x = t->data[i];
    if (isnan(x)) /* printf's sign of a NaN differs between C libraries */
      snprintf(v, sizeof v, "%snan", i ? ", " : "");
    else
      snprintf(v, sizeof v, "%s%.4g", i ? ", " : "", x);
    luaL_addstring(&buf, v);
  }
  luaL_addstring(&buf, "]");
  luaL_pushresult(&buf);
  return 1;
}

/* t:is_closed(): true once the tensor was closed (to-be-closed variable) */
static int t_is_closed(lua_State *L) {
  lua_pushboolean(L, ((Tensor *)luaL_checkudata(L, 1, TNAME))->data == NULL);
  return 1;
}

static int t_len(lua_State *L) {
  lua_pushinteger(L, lg_checkt(L, 1)->n);
  return 1;
}

/* __close only: the buffer belongs to the userdata block and goes with it.
 * There is deliberately no __gc: a finalizer would make every dead tensor
 * wait one more collection cycle before its memory is freed. */
static int t_close(lua_State *L) {
  Tensor *t = (Tensor *)luaL_checkudata(L, 1, TNAME);
  t->data = NULL;
  t->owns = 0;
  t->n = 0;
  t->ndim = 1;
  t->shape[0] = 0;
  return 0;
}

/* ------------------------------------------------------------------ tensor: long-lived state */
/* core.arena(shape) -> a zeroed tensor whose buffer is allocated outside
 * Lua's heap, for state that lives as long as a model: parameters, their
 * gradients, optimizer moments. Lua's collector starts a cycle when its heap
 * has grown by a factor over what survived the last one; with gigabytes of
 * parameters inside that heap it would let as much garbage pile up first.
 * Outside it, the collector paces itself by the short-lived tensors alone.
 * The tensor is a view of a block whose __gc frees the buffer. */
#define BLOCKNAME "glow.Block"
#define STASHNAME "glow.Stash"
#ifndef STASH_MMAP
#define STASH_MMAP ((size_t)256 << 10) /* bytes from which a stash is mapped on its own */
#endif
typedef struct {
  float *p;
} Block;

static int block_gc(lua_State *L) {
  Block *b = (Block *)luaL_checkudata(L, 1, BLOCKNAME);
  glow_free(b->p);
  b->p = NULL;
  return 0;
}

static int t_arena(lua_State *L) {
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 1, shape);
  int64_t n = lg_numel(L, nd, shape);
  Block *b = (Block *)lua_newuserdatauv(L, sizeof(Block), 0);
  b->p = NULL;
  luaL_setmetatable(L, BLOCKNAME);
  b->p = glow_alloc((size_t)n);
  if (!b->p) return lg_fail(L, "arena: out of memory for %I floats", (lua_Integer)n);
  /* the collector does not see this memory: let its size advance the
   * collection as if it had been allocated in Lua's heap, so the blocks of
   * dead models (a script that builds many) are found and freed */
  lua_gc(L, LUA_GCSTEP, (int)(n / 256 > INT_MAX ? INT_MAX : n / 256));
  Tensor *t = (Tensor *)lua_newuserdatauv(L, sizeof(Tensor), 1);
  t->data = b->p;
  t->owns = 0;
  t->ndim = nd;
  t->n = n;
  for (int d = 0; d < nd; d++) t->shape[d] = shape[d];
  luaL_setmetatable(L, TNAME);
  lua_pushvalue(L, -2);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* ------------------------------------------------------------------ stashes */
/* core.stash(t) -> a "glow.Stash": a copy of t kept outside Lua's heap, and
 * core.unstash(s) -> the copy as a new tensor, the stash's memory freed at
 * once (a second unstash is an error). A training forward keeps what its
 * backward needs this way: the collector then paces itself on the garbage of
 * one step only, not on everything kept over the whole depth of a model (a
 * kept tensor in the heap would double as allowance for as much garbage again
 * before a cycle starts), and the memory goes back the moment backward takes
 * it, not a cycle later. Nothing but unstash reads a stash, so freeing it
 * early leaves nothing dangling. A stash of STASH_MMAP bytes or more is
 * mapped on its own (mmap), not taken from malloc's heap: the heap keeps what
 * is freed in it (glow sets a high trim threshold), and large stashes made
 * during a forward pass between the pass's own temporaries left it larger at
 * every depth (cifar-paper, reversible: depth 32 against 8, 1.15 from the
 * heap, 1.06 mapped). Smaller ones come from the heap: a fresh mapping for
 * each, page-faulted in every step, cost fmnist-small training about 5%. */
typedef struct {
  float *p;
  size_t bytes; /* the mapping's size */
  int64_t n;
  int ndim;
  int64_t shape[MAXDIM];
} Stash;

static void stash_free(Stash *s) {
  if (s->p) {
    if (s->bytes >= STASH_MMAP) munmap(s->p, s->bytes);
    else glow_free(s->p);
  }
  s->p = NULL;
}

static int stash_gc(lua_State *L) {
  stash_free((Stash *)luaL_checkudata(L, 1, STASHNAME));
  return 0;
}

static int t_stash(lua_State *L) {
  Tensor *t = lg_checkt(L, 1);
  Stash *s = (Stash *)lua_newuserdatauv(L, sizeof(Stash), 0);
  s->p = NULL;
  luaL_setmetatable(L, STASHNAME);
  s->bytes = (size_t)(t->n ? t->n : 1) * sizeof(float);
  void *p = s->bytes >= STASH_MMAP
                ? mmap(NULL, s->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                : (void *)glow_alloc_uninit(s->bytes / sizeof(float));
  if (p == MAP_FAILED || !p) return lg_fail(L, "stash: out of memory for %I floats", (lua_Integer)t->n);
  s->p = (float *)p;
  memcpy(s->p, t->data, (size_t)t->n * sizeof(float));
  s->n = t->n;
  s->ndim = t->ndim;
  for (int d = 0; d < t->ndim; d++) s->shape[d] = t->shape[d];
  return 1;
}

void lg_unstash_into(lua_State *L, int idx, float *dst, int64_t n, const char *what) {
  Stash *s = (Stash *)luaL_checkudata(L, idx, STASHNAME);
  if (!s->p) lg_fail(L, "%s: this stash was already taken", what);
  if (s->n != n) lg_fail(L, "%s: %I values kept, %I expected", what, (lua_Integer)s->n, (lua_Integer)n);
  memcpy(dst, s->p, (size_t)n * sizeof(float));
  stash_free(s);
}

static int t_unstash(lua_State *L) {
  Stash *s = (Stash *)luaL_checkudata(L, 1, STASHNAME);
  if (!s->p) return luaL_error(L, "unstash: this stash was already taken");
  Tensor *t = lg_newt(L, s->ndim, s->shape);
  memcpy(t->data, s->p, (size_t)s->n * sizeof(float));
  stash_free(s);
  return 1;
}

static const luaL_Reg tensor_methods[] = {
    {"shape", t_shape},       {"numel", t_numel},
    {"totable", t_totable},   {"get", t_get},
    {"set", t_set},           {"add_", t_add},
    {"mul_", t_mul},          {"scale_", t_scale},
    {"fill_", t_fill},        {"copy_", t_copy},
    {"zero_", t_zero},
    {"clone", t_clone},       {"view", t_view},
    {"dot", t_dot},           {"sum", t_sum},
    {"max_abs", t_max_abs},   {"max_abs_diff", t_max_abs_diff},
    {"all_finite", t_all_finite}, {"finite_range", t_finite_range}, {"is_closed", t_is_closed},
    {NULL, NULL}};

static const luaL_Reg tensor_meta[] = {{"__tostring", t_tostring},
                                       {"__len", t_len},
                                       {"__close", t_close},
                                       {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"tensor", t_new},
    {"arena", t_arena},
    {"stash", t_stash},
    {"unstash", t_unstash},
    {"view_range", t_view_range},
    {"from", t_from},
    {"randn", t_randn},
    {"rand", t_rand},
    {NULL, NULL}};

/* the metatables "glow.Block" and "glow.Tensor" (also core.Tensor_mt) and the
 * constructors, into the module table on top of the stack */
void lg_open_tensor(lua_State *L) {
  if (luaL_newmetatable(L, BLOCKNAME)) {
    lua_pushcfunction(L, block_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, STASHNAME)) {
    lua_pushcfunction(L, stash_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, TNAME)) {
    luaL_setfuncs(L, tensor_meta, 0);
    luaL_newlib(L, tensor_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_setfield(L, -2, "Tensor_mt");
  luaL_setfuncs(L, funcs, 0);
}
