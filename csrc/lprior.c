/*
 * lprior.c -- the Lua binding of prior.c: the diagonal Gaussian
 * (gaussian_logp and its backward, gaussian_sample), the top prior's
 * parameters (learned and class-conditional) and their backward, the
 * classifier head and log_softmax_xent.
 * Each wrapper checks the element counts of its arguments before it touches
 * memory, raises a Lua error that names the argument and the shapes on
 * misuse, and allocates its outputs as new tensors.
 */
#include <lauxlib.h>
#include <lua.h>

#include "glow.h"
#include "lglow.h"

/* ------------------------------------------------------------------ gaussian */
static void checkmoments(lua_State *L, Tensor *z, Tensor *m, Tensor *s, const char *what) {
  if (m) lg_neednumel(L, m, z->n, what);
  if (s) lg_neednumel(L, s, z->n, what);
}

/* gaussian_logp(z {n, ...}, mean | nil, logs | nil) -> lp {n} */
static int l_gaussian_logp(lua_State *L) {
  Tensor *z = lg_checkt(L, 1), *m = lg_optt(L, 2), *s = lg_optt(L, 3);
  checkmoments(L, z, m, s, "gaussian_logp: mean/logs vs z");
  int64_t n = z->shape[0];
  Tensor *lp = lg_newt(L, 1, &n);
  glow_gaussian_logp(z->data, m ? m->data : NULL, s ? s->data : NULL, lp->data, (size_t)n,
                     (size_t)(z->n / n));
  return 1;
}

/* gaussian_logp_backward(z, mean | nil, logs | nil, dlp {n}, dmean | nil, dlogs | nil) -> dz */
static int l_gaussian_logp_backward(lua_State *L) {
  Tensor *z = lg_checkt(L, 1), *m = lg_optt(L, 2), *s = lg_optt(L, 3), *dlp = lg_checkt(L, 4);
  Tensor *dm = lg_optt(L, 5), *ds = lg_optt(L, 6);
  checkmoments(L, z, m, s, "gaussian_logp backward: mean/logs vs z");
  checkmoments(L, z, dm, ds, "gaussian_logp backward: dmean/dlogs vs z");
  int64_t n = z->shape[0];
  lg_neednumel(L, dlp, n, "gaussian_logp backward: dlp");
  Tensor *dz = lg_newlike(L, z);
  glow_gaussian_logp_backward(z->data, m ? m->data : NULL, s ? s->data : NULL, dlp->data,
                              dz->data, dm ? dm->data : NULL, ds ? ds->data : NULL, (size_t)n,
                              (size_t)(z->n / n));
  return 1;
}

/* gaussian_sample(shape, mean | nil, logs | nil, t, seed) -> z */
static int l_gaussian_sample(lua_State *L) {
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 1, shape);
  Tensor *m = lg_optt(L, 2), *s = lg_optt(L, 3);
  float t = (float)luaL_checknumber(L, 4);
  uint64_t seed = (uint64_t)luaL_optinteger(L, 5, 0);
  Tensor *z = lg_newt(L, nd, shape);
  checkmoments(L, z, m, s, "gaussian_sample: mean/logs vs shape");
  glow_rng r;
  glow_rng_seed(&r, seed);
  glow_gaussian_sample(m ? m->data : NULL, s ? s->data : NULL, t, z->data, (size_t)z->n, &r);
  return 1;
}

/* ------------------------------------------------------------------ priors and heads */
/* top_prior_params(shape {n,h,w,c}, base_mean | nil, base_logs | nil, cls | nil, y | nil)
 *   -> mean, logs */
static int l_top_prior_params(lua_State *L) {
  int64_t shape[MAXDIM];
  int nd = lg_readshape(L, 1, shape);
  if (nd != 4) lg_fail(L, "top prior: expected an image shape {n, h, w, c}");
  Tensor *bm = lg_optt(L, 2), *bl = lg_optt(L, 3), *cls = lg_optt(L, 4);
  size_t n = (size_t)shape[0], pix = (size_t)(shape[1] * shape[2]);
  int c = (int)shape[3];
  if (bm) lg_neednumel(L, bm, (int64_t)pix * c, "top prior: learned mean");
  if (bl) lg_neednumel(L, bl, (int64_t)pix * c, "top prior: learned logs");
  int *y = NULL;
  if (cls) {
    lg_needdims(L, cls, 2, "top prior: class map");
    if (cls->shape[1] != 2 * c) lg_fail(L, "top prior: class map must have %d columns", 2 * c);
    y = lg_readints(L, 5, (int64_t)n, 0, (int)cls->shape[0], "labels y");
  }
  Tensor *m = lg_newt(L, 4, shape);
  Tensor *s = lg_newt(L, 4, shape);
  glow_top_prior_params(bm ? bm->data : NULL, bl ? bl->data : NULL, cls ? cls->data : NULL, y,
                        m->data, s->data, n, pix, c);
  return 2;
}

/* top_prior_backward(dmean, dlogs, y | nil, dbase_mean | nil, dbase_logs | nil, dcls | nil) */
static int l_top_prior_backward(lua_State *L) {
  Tensor *dm = lg_checkt(L, 1), *dl = lg_checkt(L, 2);
  lg_needdims(L, dm, 4, "top prior backward: dmean");
  lg_samenumel(L, dm, dl, "top prior backward");
  Tensor *dbm = lg_optt(L, 4), *dbl = lg_optt(L, 5), *dcls = lg_optt(L, 6);
  size_t n = (size_t)dm->shape[0], pix = (size_t)(dm->shape[1] * dm->shape[2]);
  int c = (int)dm->shape[3];
  if (dbm) lg_neednumel(L, dbm, (int64_t)pix * c, "top prior backward: dmean grad");
  if (dbl) lg_neednumel(L, dbl, (int64_t)pix * c, "top prior backward: dlogs grad");
  int *y = NULL;
  if (dcls) {
    lg_needdims(L, dcls, 2, "top prior backward: class map grad");
    if (dcls->shape[1] != 2 * c) lg_fail(L, "top prior backward: class map must have %d columns", 2 * c);
    y = lg_readints(L, 3, (int64_t)n, 0, (int)dcls->shape[0], "labels y");
  }
  glow_top_prior_backward(dm->data, dl->data, y, dbm ? dbm->data : NULL, dbl ? dbl->data : NULL,
                          dcls ? dcls->data : NULL, n, pix, c);
  return 0;
}

/* classifier_forward(z {n,h,w,c}, w {c,k}, b {k}) -> logits {n,k} */
static int l_classifier_forward(lua_State *L) {
  int n, h, wd, c;
  Tensor *z = lg_checkimg(L, 1, "classifier: z", &n, &h, &wd, &c);
  lg_chan(L, z, "classifier");
  Tensor *w = lg_checkt(L, 2), *b = lg_checkt(L, 3);
  lg_needdims(L, w, 2, "classifier: weight");
  if (w->shape[0] != c) lg_fail(L, "classifier: weight must have %d rows", c);
  int k = (int)w->shape[1];
  lg_neednumel(L, b, k, "classifier: bias");
  int64_t shape[2] = {n, k};
  Tensor *lo = lg_newt(L, 2, shape);
  glow_classifier_forward(z->data, w->data, b->data, lo->data, (size_t)n, (size_t)h * wd, c, k);
  return 1;
}

/* classifier_backward(z, w, dlogits, dw, db) -> dz */
static int l_classifier_backward(lua_State *L) {
  int n, h, wd, c;
  Tensor *z = lg_checkimg(L, 1, "classifier backward: z", &n, &h, &wd, &c);
  lg_chan(L, z, "classifier backward");
  Tensor *w = lg_checkt(L, 2), *dlo = lg_checkt(L, 3), *dw = lg_optt(L, 4), *db = lg_optt(L, 5);
  lg_needdims(L, w, 2, "classifier backward: weight");
  if (w->shape[0] != c) lg_fail(L, "classifier backward: weight must have %d rows", c);
  int k = (int)w->shape[1];
  lg_neednumel(L, dlo, (int64_t)n * k, "classifier backward: dlogits");
  if (dw) lg_neednumel(L, dw, w->n, "classifier backward: dw");
  if (db) lg_neednumel(L, db, k, "classifier backward: db");
  Tensor *dz = lg_newlike(L, z);
  glow_classifier_backward(z->data, w->data, dlo->data, dz->data, dw ? dw->data : NULL,
                           db ? db->data : NULL, (size_t)n, (size_t)h * wd, c, k);
  return 1;
}

/* log_softmax_xent(logits {n,k}, y | nil, scale) -> logp {n,k}, mean CE, dlogits | nil */
static int l_log_softmax_xent(lua_State *L) {
  Tensor *lo = lg_checkt(L, 1);
  lg_needdims(L, lo, 2, "log_softmax: logits");
  int n = (int)lo->shape[0], k = (int)lo->shape[1];
  float scale = (float)luaL_optnumber(L, 3, 1.0);
  lua_settop(L, 3);
  int *y = lua_isnoneornil(L, 2) ? NULL : lg_readints(L, 2, n, 0, k, "labels y");
  int top = lua_gettop(L);
  Tensor *lp = lg_newlike(L, lo);
  float *dl = NULL;
  if (y) dl = lg_newlike(L, lo)->data;
  double ce = glow_log_softmax_xent(lo->data, y, lp->data, dl, scale, (size_t)n, k);
  lua_pushvalue(L, top + 1);
  lua_pushnumber(L, ce);
  if (y)
    lua_pushvalue(L, top + 2);
  else
    lua_pushnil(L);
  return 3;
}

static const luaL_Reg funcs[] = {
    {"gaussian_logp", l_gaussian_logp},
    {"gaussian_logp_backward", l_gaussian_logp_backward},
    {"gaussian_sample", l_gaussian_sample},
    {"top_prior_params", l_top_prior_params},
    {"top_prior_backward", l_top_prior_backward},
    {"classifier_forward", l_classifier_forward},
    {"classifier_backward", l_classifier_backward},
    {"log_softmax_xent", l_log_softmax_xent},
    {NULL, NULL}};

void lg_open_prior(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
