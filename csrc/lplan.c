/*
 * lplan.c -- the Lua binding of plan.c: plan_forward and plan_backward.
 * glow.autograd (lua/glow/autograd.lua, "plans") builds the plan table from
 * the tape of a glow.autograd.Net:
 *
 *   plan = {dims = {{h, w, c}, ...},  -- slot 1 the input, slot k + 1 node k's output
 *           out = slot,               -- the network's output
 *           nodes = {node, ...}}
 *   node = {kind = 1, x = slot, w = param, b = param or 0, kh, kw, ph, pw, dil}
 *        | {kind = 2, code = {op, a, b, p, q, ...}, ins = {kind, index, ...}, nums = {...}}
 *     (an input kind 1 a slot, 2 a parameter, 3 a number nums[i])
 *
 * plan_forward(plan, x, params [, keep]) -> y [, {stored slot tensors}]
 * plan_backward(plan, x, dy, params, grads [, stored]) -> dx
 * params: the tensors the nodes read; grads: for each a tensor its gradient
 * is added into, or false. Everything is checked before any memory is touched.
 */
#include <lauxlib.h>
#include <lua.h>

#include <string.h>

#include "glow.h"
#include "lglow.h"

#define PLAN_MAXNODES 1024

/* Scratch memory for one call: blocks the collector frees afterwards, kept
 * alive meanwhile by the anchor, a table on the stack. */
typedef struct {
  int idx, n;
} anchor;

static void *scratch(lua_State *L, anchor *a, size_t bytes) {
  void *p = lua_newuserdatauv(L, bytes ? bytes : 1, 0);
  lua_seti(L, a->idx, ++a->n);
  return p;
}

static lua_Integer field_int(lua_State *L, int t, const char *k, const char *what) {
  lua_getfield(L, t, k);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok) lg_fail(L, "%s: field %s must be an integer", what, k);
  lua_pop(L, 1);
  return v;
}

static lua_Integer at_int(lua_State *L, int t, lua_Integer i, const char *what) {
  lua_geti(L, t, i);
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok) lg_fail(L, "%s: entry %I must be an integer", what, i);
  lua_pop(L, 1);
  return v;
}

/* the parameters (argument pi) and, with gi > 0, their gradients */
static glow_plan_param *read_params(lua_State *L, anchor *A, int pi, int gi, int *np, const char *what) {
  luaL_checktype(L, pi, LUA_TTABLE);
  lua_Integer n = luaL_len(L, pi);
  if (n > 4096) lg_fail(L, "%s: %I parameters: at most 4096", what, n);
  glow_plan_param *p = scratch(L, A, sizeof *p * (size_t)n);
  for (lua_Integer i = 0; i < n; i++) {
    lua_geti(L, pi, i + 1);
    Tensor *t = luaL_testudata(L, -1, TNAME);
    if (!t || !t->data) lg_fail(L, "%s: parameter %I must be a glow.Tensor", what, i + 1);
    lua_pop(L, 1);
    if (t->ndim > 4) lg_fail(L, "%s: parameter %I has %d dimensions: at most 4", what, i + 1, t->ndim);
    p[i].data = t->data, p[i].grad = NULL, p[i].numel = t->n, p[i].nd = t->ndim;
    for (int d = 0; d < t->ndim; d++) p[i].shape[d] = t->shape[d];
    if (gi > 0) {
      lua_geti(L, gi, i + 1);
      Tensor *g = luaL_testudata(L, -1, TNAME);
      if (g) {
        if (!g->data || g->n != t->n) lg_fail(L, "%s: gradient %I does not match its parameter", what, i + 1);
        p[i].grad = g->data;
      } else if (lua_toboolean(L, -1)) {
        lg_fail(L, "%s: gradient %I must be a glow.Tensor or false", what, i + 1);
      }
      lua_pop(L, 1);
    }
  }
  *np = (int)n;
  return p;
}

/* whether a {s4} broadcasts to {1, dims} (the batch dim 1) */
static int fits(const int64_t *s4, const int *d) {
  for (int k = 1; k < 4; k++)
    if (s4[k] != 1 && s4[k] != d[k - 1]) return 0;
  return s4[0] == 1;
}

static void read_plan(lua_State *L, anchor *A, int idx, glow_plan *P, glow_plan_param *params, int np,
                      const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "dims");
  int di = lua_gettop(L);
  luaL_checktype(L, di, LUA_TTABLE);
  lua_Integer ns = luaL_len(L, di);
  if (ns < 1 || ns > PLAN_MAXNODES + 1) lg_fail(L, "%s: %I slots: 1 to %d", what, ns, PLAN_MAXNODES + 1);
  int(*dims)[3] = scratch(L, A, sizeof(int[3]) * (size_t)ns);
  for (lua_Integer s = 0; s < ns; s++) {
    lua_geti(L, di, s + 1);
    int t = lua_gettop(L);
    if (!lua_istable(L, t) || luaL_len(L, t) != 3) lg_fail(L, "%s: dims %I must be {h, w, c}", what, s + 1);
    for (int k = 0; k < 3; k++) {
      lua_Integer v = at_int(L, t, k + 1, what);
      if (v < 1 || v > (1 << 24)) lg_fail(L, "%s: dims %I: size %I out of range", what, s + 1, v);
      dims[s][k] = (int)v;
    }
    int64_t one[4] = {1, dims[s][0], dims[s][1], dims[s][2]};
    lg_numel(L, 4, one); /* the size of one image fits */
    lua_pop(L, 1);
  }
  lua_getfield(L, idx, "nodes");
  int ni = lua_gettop(L);
  luaL_checktype(L, ni, LUA_TTABLE);
  lua_Integer nn = luaL_len(L, ni);
  if (nn != ns - 1) lg_fail(L, "%s: %I nodes for %I slots", what, nn, ns);
  glow_plan_node *nodes = scratch(L, A, sizeof *nodes * (size_t)nn);
  for (lua_Integer k = 0; k < nn; k++) {
    lua_geti(L, ni, k + 1);
    int t = lua_gettop(L);
    luaL_checktype(L, t, LUA_TTABLE);
    glow_plan_node *nd = &nodes[k];
    memset(nd, 0, sizeof *nd);
    nd->kind = (int)field_int(L, t, "kind", what);
    nd->out = (int)k + 1;
    const int *od = dims[k + 1];
    if (nd->kind == GLOW_PLAN_CONV) {
      lua_Integer x = field_int(L, t, "x", what) - 1, w = field_int(L, t, "w", what) - 1,
                  b = field_int(L, t, "b", what) - 1;
      lua_Integer g[5] = {field_int(L, t, "kh", what), field_int(L, t, "kw", what), field_int(L, t, "ph", what),
                          field_int(L, t, "pw", what), field_int(L, t, "dil", what)};
      for (int j = 0; j < 5; j++)
        if (g[j] < (j == 2 || j == 3 ? 0 : 1) || g[j] > (1 << 20))
          lg_fail(L, "%s: node %I: kernel, padding or dilation %I out of range", what, k + 1, g[j]);
      nd->kh = (int)g[0], nd->kw = (int)g[1], nd->pad_h = (int)g[2], nd->pad_w = (int)g[3], nd->dil = (int)g[4];
      if (x < 0 || x > k || w < 0 || w >= np || b < -1 || b >= np)
        lg_fail(L, "%s: node %I: slot or parameter out of range", what, k + 1);
      nd->x = (int)x, nd->w = (int)w, nd->b = (int)b;
      const int *xd = dims[x];
      const glow_plan_param *wp = &params[w];
      if (wp->nd != 4 || wp->shape[0] != nd->kh || wp->shape[1] != nd->kw || wp->shape[2] != xd[2] ||
          wp->shape[3] != od[2] || (b >= 0 && params[b].numel != od[2]) || nd->dil < 1 || nd->pad_h < 0 ||
          nd->pad_w < 0 || (int64_t)xd[0] + 2 * nd->pad_h - (int64_t)nd->dil * (nd->kh - 1) != od[0] ||
          (int64_t)xd[1] + 2 * nd->pad_w - (int64_t)nd->dil * (nd->kw - 1) != od[1])
        lg_fail(L, "%s: node %I: the convolution does not fit its slots", what, k + 1);
    } else if (nd->kind == GLOW_PLAN_EW) {
      lua_getfield(L, t, "code");
      lua_getfield(L, t, "ins");
      lua_getfield(L, t, "nums");
      int ci = t + 1, ii = t + 2, mi = t + 3;
      luaL_checktype(L, ci, LUA_TTABLE);
      luaL_checktype(L, ii, LUA_TTABLE);
      luaL_checktype(L, mi, LUA_TTABLE);
      lua_Integer nc = luaL_len(L, ci), nin = luaL_len(L, ii) / 2;
      if (nc < 5 || nc % 5 || nin < 1 || nin + nc / 5 > GLOW_EW_MAXREG)
        lg_fail(L, "%s: node %I: a malformed program", what, k + 1);
      nd->nins = (int)(nc / 5), nd->nin = (int)nin;
      glow_ew_ins *code = scratch(L, A, sizeof *code * (size_t)nd->nins);
      int *kinds = scratch(L, A, sizeof(int) * (size_t)nin), *idxs = scratch(L, A, sizeof(int) * (size_t)nin);
      float *nums = scratch(L, A, sizeof(float) * (size_t)nin);
      for (int i = 0; i < nd->nin; i++) {
        kinds[i] = (int)at_int(L, ii, 2 * i + 1, what);
        lua_Integer v = at_int(L, ii, 2 * i + 2, what);
        nums[i] = 0;
        if (kinds[i] == GLOW_PLAN_SLOT) {
          if (v < 1 || v > k + 1) lg_fail(L, "%s: node %I: input slot %I out of range", what, k + 1, v);
          const int *d = dims[v - 1];
          int64_t s4[4] = {1, d[0], d[1], d[2]};
          if (!fits(s4, od)) lg_fail(L, "%s: node %I: input slot %I does not broadcast", what, k + 1, v);
        } else if (kinds[i] == GLOW_PLAN_PARAM) {
          if (v < 1 || v > np) lg_fail(L, "%s: node %I: parameter %I out of range", what, k + 1, v);
          const glow_plan_param *p = &params[v - 1];
          int64_t s4[4];
          for (int d = 0; d < 4; d++) s4[d] = d < 4 - p->nd ? 1 : p->shape[d - (4 - p->nd)];
          if (!fits(s4, od)) lg_fail(L, "%s: node %I: parameter %I does not broadcast", what, k + 1, v);
        } else if (kinds[i] == GLOW_PLAN_NUMBER) {
          lua_geti(L, mi, i + 1);
          if (lua_type(L, -1) != LUA_TNUMBER) lg_fail(L, "%s: node %I: number %d missing", what, k + 1, i + 1);
          nums[i] = (float)lua_tonumber(L, -1);
          lua_pop(L, 1);
        } else {
          lg_fail(L, "%s: node %I: unknown input kind %d", what, k + 1, kinds[i]);
        }
        idxs[i] = (int)v - 1;
      }
      for (int j = 0; j < nd->nins; j++) {
        int op = (int)at_int(L, ci, 5 * j + 1, what), a = (int)at_int(L, ci, 5 * j + 2, what) - 1,
            b = (int)at_int(L, ci, 5 * j + 3, what) - 1, reg = nd->nin + j;
        lua_geti(L, ci, 5 * j + 4);
        lua_geti(L, ci, 5 * j + 5);
        float p = (float)lua_tonumber(L, -2), q = (float)lua_tonumber(L, -1);
        lua_pop(L, 2);
        int unary = op >= GLOW_OP_EXP && op <= GLOW_OP_POW && op != GLOW_OP_SCALE;
        int binary = op >= GLOW_OP_ADD && op <= GLOW_OP_MIN;
        if ((!unary && !binary) || a < 0 || a >= reg || (binary ? (b < 0 || b >= reg) : b != -1))
          lg_fail(L, "%s: node %I: instruction %d is malformed", what, k + 1, j + 1);
        code[j] = (glow_ew_ins){op, a, binary ? b : -1, p, q};
      }
      int unused = glow_ew_unused(code, nd->nins, nd->nin);
      if (unused >= 0) lg_fail(L, "%s: node %I: register %d does not lead to the output", what, k + 1, unused + 1);
      nd->code = code, nd->in_kind = kinds, nd->in_idx = idxs, nd->in_num = nums;
    } else {
      lg_fail(L, "%s: node %I: unknown kind %d", what, k + 1, nd->kind);
    }
    lua_settop(L, t - 1);
  }
  lua_Integer out = field_int(L, idx, "out", what);
  if (out < 1 || out > ns) lg_fail(L, "%s: output slot %I out of range", what, out);
  P->nslots = (int)ns, P->nnodes = (int)nn, P->nparams = np, P->out = (int)out - 1;
  P->dims = (const int(*)[3])dims, P->nodes = nodes, P->params = params;
}

static Tensor *image(lua_State *L, int i, const glow_plan *P, int s, int n, const char *what, const char *name) {
  Tensor *t = luaL_testudata(L, i, TNAME);
  if (!t || !t->data) lg_fail(L, "%s: %s must be a glow.Tensor", what, name);
  const int *d = P->dims[s];
  if (t->ndim != 4 || (n >= 0 && t->shape[0] != n) || t->shape[1] != d[0] || t->shape[2] != d[1] ||
      t->shape[3] != d[2]) {
    char b[160];
    lg_fail(L, "%s: %s %s does not match {n, %d, %d, %d}", what, name, lg_shapestr(t, b, sizeof b), d[0], d[1],
            d[2]);
  }
  return t;
}

static int l_plan_forward(lua_State *L) {
  const char *what = "plan_forward";
  int keep = lua_toboolean(L, 4);
  lua_settop(L, 3);
  lua_newtable(L);
  anchor A = {lua_gettop(L), 0};
  int np;
  glow_plan P;
  glow_plan_param *params = read_params(L, &A, 3, 0, &np, what);
  read_plan(L, &A, 1, &P, params, np, what);
  Tensor *x = image(L, 2, &P, 0, -1, what, "x");
  int n = (int)x->shape[0];
  const int *od = P.dims[P.out];
  int64_t ys[4] = {n, od[0], od[1], od[2]};
  Tensor *y = lg_newt(L, 4, ys);
  int yi = lua_gettop(L);
  float **store = NULL;
  int si = 0;
  if (keep) {
    /* the convolutions' outputs (but the network's): backward recomputes
     * the elementwise nodes from them in cache */
    store = scratch(L, &A, sizeof(float *) * (size_t)P.nslots);
    lua_createtable(L, P.nslots, 0);
    si = lua_gettop(L);
    for (int s = 0; s < P.nslots; s++) {
      store[s] = NULL;
      if (s == 0 || s == P.out || P.nodes[s - 1].kind != GLOW_PLAN_CONV) continue;
      int64_t ss[4] = {n, P.dims[s][0], P.dims[s][1], P.dims[s][2]};
      store[s] = lg_newt(L, 4, ss)->data;
      lua_seti(L, -2, s + 1);
    }
  }
  lg_checkrc(L, glow_plan_forward(&P, x->data, y->data, store, n), what);
  lua_pushvalue(L, yi);
  if (keep) {
    lua_pushvalue(L, si);
    return 2;
  }
  return 1;
}

static int l_plan_backward(lua_State *L) {
  const char *what = "plan_backward";
  lua_settop(L, 6);
  lua_newtable(L);
  anchor A = {lua_gettop(L), 0};
  int np;
  glow_plan P;
  luaL_checktype(L, 5, LUA_TTABLE);
  glow_plan_param *params = read_params(L, &A, 4, 5, &np, what);
  read_plan(L, &A, 1, &P, params, np, what);
  Tensor *x = image(L, 2, &P, 0, -1, what, "x");
  int n = (int)x->shape[0];
  image(L, 3, &P, P.out, n, what, "dy");
  Tensor *dy = luaL_checkudata(L, 3, TNAME);
  float **stored = NULL;
  if (!lua_isnil(L, 6)) {
    luaL_checktype(L, 6, LUA_TTABLE);
    stored = scratch(L, &A, sizeof(float *) * (size_t)P.nslots);
    stored[0] = NULL;
    for (int s = 1; s < P.nslots; s++) {
      lua_geti(L, 6, s + 1);
      stored[s] = lua_isnil(L, -1) ? NULL : image(L, lua_gettop(L), &P, s, n, what, "a stored slot")->data;
      lua_pop(L, 1);
    }
  }
  Tensor *dx = lg_newlike(L, x);
  lg_checkrc(L, glow_plan_backward(&P, x->data, dy->data, dx->data, stored, n), what);
  return 1;
}

static const luaL_Reg funcs[] = {{"plan_forward", l_plan_forward}, {"plan_backward", l_plan_backward}, {NULL, NULL}};

void lg_open_plan(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
