/*
 * loptim.c -- the Lua binding of the optimizer loops (optim.c). Each takes
 * the flat arena tensors (weights, gradients, moments) of one model.
 */
#include "glow.h"
#include "lglow.h"

static void same(lua_State *L, Tensor *w, Tensor *o, const char *what) {
  if (o && o->n != w->n)
    lg_fail(L, "%s: %I elements, the weights have %I", what, (lua_Integer)o->n, (lua_Integer)w->n);
}

/* norm2(g) -> sum of squares (double) */
static int l_norm2(lua_State *L) {
  Tensor *g = lg_checkt(L, 1);
  lua_pushnumber(L, glow_norm2(g->data, (size_t)g->n));
  return 1;
}

/* sgd_update(w, g, buf | nil, lr, momentum, wd, nesterov) */
static int l_sgd_update(lua_State *L) {
  Tensor *w = lg_checkt(L, 1), *g = lg_checkt(L, 2), *buf = lg_optt(L, 3);
  same(L, w, g, "sgd: gradients");
  same(L, w, buf, "sgd: momentum buffer");
  glow_sgd_update(w->data, g->data, buf ? buf->data : NULL, (size_t)w->n,
                  (float)luaL_checknumber(L, 4), (float)luaL_optnumber(L, 5, 0),
                  (float)luaL_optnumber(L, 6, 0), lua_toboolean(L, 7));
  return 0;
}

/* adam_update(w, g, m, v, lr, b1, b2, eps, wd, step) and adamax_update(...) alike */
static int adam_like(lua_State *L, int maxnorm) {
  Tensor *w = lg_checkt(L, 1), *g = lg_checkt(L, 2), *m = lg_checkt(L, 3), *v = lg_checkt(L, 4);
  same(L, w, g, "adam: gradients");
  same(L, w, m, "adam: first moment");
  same(L, w, v, "adam: second moment");
  float lr = (float)luaL_checknumber(L, 5), b1 = (float)luaL_checknumber(L, 6),
        b2 = (float)luaL_checknumber(L, 7), eps = (float)luaL_checknumber(L, 8),
        wd = (float)luaL_checknumber(L, 9);
  lua_Integer step = luaL_checkinteger(L, 10);
  if (step < 1) return lg_fail(L, "adam: step must be >= 1, got %I", step);
  if (maxnorm)
    glow_adamax_update(w->data, g->data, m->data, v->data, (size_t)w->n, lr, b1, b2, eps, wd,
                       (int64_t)step);
  else
    glow_adam_update(w->data, g->data, m->data, v->data, (size_t)w->n, lr, b1, b2, eps, wd,
                     (int64_t)step);
  return 0;
}

static int l_adam_update(lua_State *L) { return adam_like(L, 0); }
static int l_adamax_update(lua_State *L) { return adam_like(L, 1); }

/* ema_update(ema, w, decay) */
static int l_ema_update(lua_State *L) {
  Tensor *e = lg_checkt(L, 1), *w = lg_checkt(L, 2);
  same(L, w, e, "ema");
  glow_ema_update(e->data, w->data, (size_t)w->n, (float)luaL_checknumber(L, 3));
  return 0;
}

static const luaL_Reg funcs[] = {{"norm2", l_norm2},
                                 {"sgd_update", l_sgd_update},
                                 {"adam_update", l_adam_update},
                                 {"adamax_update", l_adamax_update},
                                 {"ema_update", l_ema_update},
                                 {NULL, NULL}};

void lg_open_optim(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
