/*
 * llinalg.c -- the Lua binding of linalg.c: matmul (with broadcast batch
 * dimensions and transposed operands) and its backward, avg_pool2 and
 * upsample2 with their adjoints; and conv2d of any geometry (any odd kernel,
 * padding, dilation) and its gradients, through conv.c's one entry, which
 * picks the kernel.
 *
 * Each function checks its arguments' shapes before it touches memory,
 * raises a Lua error that names the op and prints the shapes on misuse, and
 * returns new tensors.
 */
#include <lauxlib.h>
#include <lua.h>

#include <limits.h>
#include <string.h>

#include "glow.h"
#include "lglow.h"

/* ------------------------------------------------------------------ matmul */
/* "{2, 3}", or "{3, 2}^T" for an operand used transposed */
static const char *opstr(const Tensor *t, int trans, char *buf, size_t len) {
  lg_shapestr(t, buf, len - 2);
  if (trans) strcat(buf, "^T");
  return buf;
}

/* The shapes of a product op(a) op(b) with broadcast batch dimensions: the
 * output's shape and, for each output matrix i, the matrices ai[i] of a and
 * bi[i] of b it multiplies (anchored on the stack as userdata). When b is
 * shared by every batch and a is not broadcast (nor transposed), the batch
 * folds into one product of m * batch rows: then *fold is set and ai, bi are
 * NULL. */
typedef struct {
  int64_t m, n, k, nb, na, nbm; /* product dims; output, a and b matrix counts */
  int ta, tb, fold, nd;
  int64_t shape[MAXDIM];
  int64_t *ai, *bi;
} mm_plan;

static void mm_plan_make(lua_State *L, Tensor *a, Tensor *b, int ta, int tb, const char *what,
                         mm_plan *p) {
  char s1[140], s2[140];
  if (a->ndim < 2 || b->ndim < 2)
    lg_fail(L, "%s: shapes %s and %s: both operands need at least 2 dimensions", what,
            opstr(a, ta, s1, sizeof s1), opstr(b, tb, s2, sizeof s2));
  int64_t a0 = a->shape[a->ndim - 2], a1 = a->shape[a->ndim - 1];
  int64_t b0 = b->shape[b->ndim - 2], b1 = b->shape[b->ndim - 1];
  p->ta = ta, p->tb = tb;
  p->m = ta ? a1 : a0, p->k = ta ? a0 : a1, p->n = tb ? b0 : b1;
  int64_t bk = tb ? b1 : b0;
  if (p->k != bk)
    lg_fail(L, "%s: shapes %s and %s: inner dimensions %I and %I differ", what,
            opstr(a, ta, s1, sizeof s1), opstr(b, tb, s2, sizeof s2), (lua_Integer)p->k,
            (lua_Integer)bk);
  int da = a->ndim - 2, db = b->ndim - 2, dn = da > db ? da : db;
  int64_t sa[MAXDIM], sb[MAXDIM]; /* batch shapes aligned to the right, 1 where missing */
  p->nb = p->na = p->nbm = 1;
  for (int d = 0; d < dn; d++) {
    sa[d] = d - (dn - da) >= 0 ? a->shape[d - (dn - da)] : 1;
    sb[d] = d - (dn - db) >= 0 ? b->shape[d - (dn - db)] : 1;
    if (sa[d] != sb[d] && sa[d] != 1 && sb[d] != 1)
      lg_fail(L, "%s: shapes %s and %s: batch dimensions %I and %I do not broadcast", what,
              opstr(a, ta, s1, sizeof s1), opstr(b, tb, s2, sizeof s2), (lua_Integer)sa[d],
              (lua_Integer)sb[d]);
    p->shape[d] = sa[d] > sb[d] ? sa[d] : sb[d];
    p->nb *= p->shape[d], p->na *= sa[d], p->nbm *= sb[d];
  }
  p->nd = dn + 2;
  p->shape[dn] = p->m, p->shape[dn + 1] = p->n;
  lg_numel(L, p->nd, p->shape);
  p->ai = p->bi = NULL;
  p->fold = p->nbm == 1 && p->na == p->nb && !ta && p->nb * p->m <= INT_MAX;
  if (p->fold) return;
  p->ai = (int64_t *)lua_newuserdatauv(L, sizeof(int64_t) * (size_t)p->nb, 0);
  p->bi = (int64_t *)lua_newuserdatauv(L, sizeof(int64_t) * (size_t)p->nb, 0);
  int64_t idx[MAXDIM] = {0};
  for (int64_t i = 0; i < p->nb; i++) {
    int64_t ia = 0, ib = 0;
    for (int d = 0; d < dn; d++) {
      ia = ia * sa[d] + (sa[d] == 1 ? 0 : idx[d]);
      ib = ib * sb[d] + (sb[d] == 1 ? 0 : idx[d]);
    }
    p->ai[i] = ia, p->bi[i] = ib;
    for (int d = dn - 1; d >= 0; d--) { /* the next output index, row-major */
      if (++idx[d] < p->shape[d]) break;
      idx[d] = 0;
    }
  }
}

/* matmul(a {..., m, k}, b {..., k, n} [, ta, tb]) -> {..., m, n}; ta / tb: use the
 * transpose of a's / b's last two dimensions; the batch dimensions broadcast */
static int l_matmul(lua_State *L) {
  Tensor *a = lg_checkt(L, 1), *b = lg_checkt(L, 2);
  mm_plan p;
  mm_plan_make(L, a, b, lua_toboolean(L, 3), lua_toboolean(L, 4), "matmul", &p);
  Tensor *c = lg_newt(L, p.nd, p.shape);
  int rc = p.fold ? glow_matmul(a->data, NULL, 0, b->data, NULL, p.tb, c->data, NULL, 1, 1,
                                (int)(p.nb * p.m), (int)p.n, (int)p.k)
                  : glow_matmul(a->data, p.ai, p.ta, b->data, p.bi, p.tb, c->data, NULL, p.nb,
                                p.nb, (int)p.m, (int)p.n, (int)p.k);
  lg_checkrc(L, rc, "matmul");
  return 1;
}

/* matmul_backward(a, b, dy [, ta, tb]) -> da, db: the gradients of matmul(a, b, ta, tb)
 * for dy of its output's shape, each of its operand's shape (summed over the batch
 * dimensions where that operand was broadcast) */
static int l_matmul_backward(lua_State *L) {
  Tensor *a = lg_checkt(L, 1), *b = lg_checkt(L, 2), *dy = lg_checkt(L, 3);
  mm_plan p;
  int ta = lua_toboolean(L, 4), tb = lua_toboolean(L, 5);
  mm_plan_make(L, a, b, ta, tb, "matmul backward", &p);
  int64_t out = lg_numel(L, p.nd, p.shape);
  if (dy->n != out) {
    char s1[140], s2[140];
    Tensor o = {.ndim = p.nd};
    memcpy(o.shape, p.shape, sizeof p.shape);
    lg_fail(L, "matmul backward: dy %s does not match the output %s", lg_shapestr(dy, s1, sizeof s1),
            lg_shapestr(&o, s2, sizeof s2));
  }
  Tensor *da = lg_newlike(L, a), *db = lg_newlike(L, b);
  int m = (int)p.m, n = (int)p.n, k = (int)p.k, rc;
  int64_t nb = p.nb, na = p.na, nbm = p.nbm;
  if (p.fold) m = (int)(p.nb * p.m), nb = na = nbm = 1;
  /* dop(a) = dy op(b)^T {m, k}; stored transposed when ta */
  if (!ta)
    rc = glow_matmul(dy->data, NULL, 0, b->data, p.bi, !tb, da->data, p.ai, nb, na, m, k, n);
  else
    rc = glow_matmul(b->data, p.bi, tb, dy->data, NULL, 1, da->data, p.ai, nb, na, k, m, n);
  lg_checkrc(L, rc, "matmul backward");
  /* dop(b) = op(a)^T dy {k, n}; stored transposed when tb */
  if (!tb)
    rc = glow_matmul(a->data, p.ai, !ta, dy->data, NULL, 0, db->data, p.bi, nb, nbm, k, n, m);
  else
    rc = glow_matmul(dy->data, NULL, 1, a->data, p.ai, ta, db->data, p.bi, nb, nbm, n, k, m);
  lg_checkrc(L, rc, "matmul backward");
  return 2;
}

/* ------------------------------------------------------------------ conv2d */
/* an integer option of the table at idx (absent: dflt), at least lo */
static int64_t opt_int(lua_State *L, int idx, const char *key, int64_t dflt, int64_t lo,
                       const char *what) {
  if (lua_isnoneornil(L, idx)) return dflt;
  lua_getfield(L, idx, key);
  int64_t v = dflt;
  if (!lua_isnil(L, -1)) {
    int isnum;
    v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < lo || v > INT_MAX)
      lg_fail(L, "%s: option %s must be an integer >= %d", what, key, (int)lo);
  }
  lua_pop(L, 1);
  return v;
}

/* The geometry of conv2d(x, wt, ..., opts at oidx): opts.padding (a number, {ph, pw}
 * or "same", the default: (k - 1) / 2 * dilation) and opts.dilation (default 1). */
static void conv_geom(lua_State *L, Tensor *x, Tensor *wt, int oidx, const char *what,
                      glow_conv_geom *g, int64_t *ho, int64_t *wo) {
  char s1[128], s2[128];
  if (x->ndim != 4)
    lg_fail(L, "%s: input x %s: expected 4 dimensions {n, h, w, cin}", what,
            lg_shapestr(x, s1, sizeof s1));
  if (wt->ndim != 4 || wt->shape[2] != x->shape[3])
    lg_fail(L, "%s: weight %s does not fit input %s: expected {kh, kw, %I, cout}", what,
            lg_shapestr(wt, s1, sizeof s1), lg_shapestr(x, s2, sizeof s2),
            (lua_Integer)x->shape[3]);
  int64_t kh = wt->shape[0], kw = wt->shape[1];
  if (kh % 2 == 0 || kw % 2 == 0)
    lg_fail(L, "%s: weight %s: kernel %Ix%I, its sizes must be odd", what,
            lg_shapestr(wt, s1, sizeof s1), (lua_Integer)kh, (lua_Integer)kw);
  if (kh * kw * wt->shape[2] > INT_MAX)
    lg_fail(L, "%s: weight %s: too many taps", what, lg_shapestr(wt, s1, sizeof s1));
  if (!lua_isnoneornil(L, oidx)) luaL_checktype(L, oidx, LUA_TTABLE);
  int64_t dil = opt_int(L, oidx, "dilation", 1, 1, what);
  int64_t ph = (kh - 1) / 2 * dil, pw = (kw - 1) / 2 * dil;
  if (!lua_isnoneornil(L, oidx)) {
    lua_getfield(L, oidx, "padding");
    int isnum;
    if (lua_istable(L, -1)) {
      lua_geti(L, -1, 1);
      lua_geti(L, -2, 2);
      int ok1, ok2;
      ph = lua_tointegerx(L, -2, &ok1), pw = lua_tointegerx(L, -1, &ok2);
      if (!ok1 || !ok2 || luaL_len(L, -3) != 2 || ph < 0 || pw < 0)
        lg_fail(L, "%s: option padding must be an integer >= 0, {ph, pw} or \"same\"", what);
      lua_pop(L, 2);
    } else if (lua_type(L, -1) == LUA_TNUMBER) {
      ph = pw = lua_tointegerx(L, -1, &isnum);
      if (!isnum || ph < 0)
        lg_fail(L, "%s: option padding must be an integer >= 0, {ph, pw} or \"same\"", what);
    } else if (!lua_isnil(L, -1) &&
               !(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "same") == 0)) {
      lg_fail(L, "%s: option padding must be an integer >= 0, {ph, pw} or \"same\"", what);
    }
    lua_pop(L, 1);
  }
  /* every index the kernels compute fits an int */
  if (x->shape[1] + 2 * ph > INT_MAX || x->shape[2] + 2 * pw > INT_MAX)
    lg_fail(L, "%s: padding %I, %I is too large", what, (lua_Integer)ph, (lua_Integer)pw);
  g->n = (int)x->shape[0], g->h = (int)x->shape[1], g->w = (int)x->shape[2];
  g->cin = (int)x->shape[3], g->cout = (int)wt->shape[3];
  g->kh = (int)kh, g->kw = (int)kw, g->pad_h = (int)ph, g->pad_w = (int)pw, g->dil = (int)dil;
  glow_conv_out_size(g, ho, wo);
  if (*ho < 1 || *wo < 1)
    lg_fail(L, "%s: input %s, weight %s, padding %I, %I, dilation %I: the output would be %I x %I",
            what, lg_shapestr(x, s1, sizeof s1), lg_shapestr(wt, s2, sizeof s2), (lua_Integer)ph,
            (lua_Integer)pw, (lua_Integer)dil, (lua_Integer)*ho, (lua_Integer)*wo);
}

/* conv2d(x {n, h, w, cin}, wt {kh, kw, cin, cout}, b {cout} | nil, opts) -> y {n, ho, wo, cout} */
static int l_conv2d(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *wt = lg_checkt(L, 2), *b = lg_optt(L, 3);
  glow_conv_geom g;
  int64_t ho, wo;
  conv_geom(L, x, wt, 4, "conv2d", &g, &ho, &wo);
  if (b) lg_neednumel(L, b, g.cout, "conv2d: bias");
  int64_t shape[4] = {g.n, ho, wo, g.cout};
  Tensor *y = lg_newt(L, 4, shape);
  lg_checkrc(L, glow_conv_forward(&g, x->data, wt->data, b ? b->data : NULL, y->data), "conv2d");
  return 1;
}

/* conv2d_size(xshape, wshape, opts [, b]) -> ho, wo: the output size conv2d
 * gives (the same checks), from shapes only: a plan's trace (glow.autograd) */
static int l_conv2d_size(lua_State *L) {
  Tensor x = {0}, wt = {0};
  x.ndim = lg_readshape(L, 1, x.shape);
  wt.ndim = lg_readshape(L, 2, wt.shape);
  Tensor *b = lg_optt(L, 4);
  glow_conv_geom g;
  int64_t ho, wo;
  conv_geom(L, &x, &wt, 3, "conv2d", &g, &ho, &wo);
  if (b) lg_neednumel(L, b, g.cout, "conv2d: bias");
  lua_pushinteger(L, (lua_Integer)ho);
  lua_pushinteger(L, (lua_Integer)wo);
  return 2;
}

/* conv2d_grad(x, wt, dy, opts [, need_b]) -> dx, dwt [, db]: new tensors */
static int l_conv2d_grad(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *wt = lg_checkt(L, 2), *dy = lg_checkt(L, 3);
  int need_b = lua_toboolean(L, 5);
  glow_conv_geom g;
  int64_t ho, wo;
  conv_geom(L, x, wt, 4, "conv2d_grad", &g, &ho, &wo);
  if (dy->ndim != 4 || dy->shape[0] != g.n || dy->shape[1] != ho || dy->shape[2] != wo ||
      dy->shape[3] != g.cout) {
    char s1[128];
    lg_fail(L, "conv2d_grad: dy %s does not match the output {%d, %I, %I, %d}",
            lg_shapestr(dy, s1, sizeof s1), g.n, (lua_Integer)ho, (lua_Integer)wo, g.cout);
  }
  Tensor *dx = lg_newlike(L, x);
  Tensor *dwt = lg_newt_(L, wt->ndim, wt->shape, 1);
  int64_t bshape[1] = {g.cout};
  Tensor *db = need_b ? lg_newt_(L, 1, bshape, 1) : NULL;
  lg_checkrc(L,
             glow_conv_backward(&g, x->data, wt->data, dy->data, dx->data, dwt->data,
                                db ? db->data : NULL),
             "conv2d_grad");
  return need_b ? 3 : 2;
}

/* ------------------------------------------------------------------ 2x resampling */
/* an image {n, h, w, c}; with even, h and w must be even */
static Tensor *check_img(lua_State *L, int i, const char *what, int even) {
  Tensor *t = lg_checkt(L, i);
  char s[128];
  if (t->ndim != 4)
    lg_fail(L, "%s: input %s: expected 4 dimensions {n, h, w, c}", what,
            lg_shapestr(t, s, sizeof s));
  if (even && (t->shape[1] % 2 || t->shape[2] % 2))
    lg_fail(L, "%s: input %s: height and width must be even", what, lg_shapestr(t, s, sizeof s));
  if (!even && (t->shape[1] > INT_MAX / 2 || t->shape[2] > INT_MAX / 2))
    lg_fail(L, "%s: input %s is too large to double", what, lg_shapestr(t, s, sizeof s));
  return t;
}

/* the image {n, h * f, w * f, c} (f = 2 or 1/2) of t's batch and channels, pushed */
static Tensor *new_scaled(lua_State *L, const Tensor *t, int up) {
  int64_t shape[4] = {t->shape[0], up ? t->shape[1] * 2 : t->shape[1] / 2,
                      up ? t->shape[2] * 2 : t->shape[2] / 2, t->shape[3]};
  return lg_newt(L, 4, shape);
}

static int check_mode(lua_State *L, int i, const char *what) {
  const char *m = luaL_optstring(L, i, "nearest");
  if (strcmp(m, "nearest") == 0) return GLOW_UPSAMPLE_NEAREST;
  if (strcmp(m, "bilinear") == 0) return GLOW_UPSAMPLE_BILINEAR;
  return lg_fail(L, "%s: unknown mode \"%s\" (expected \"nearest\" or \"bilinear\")", what, m);
}

#define DIMS(t, h, w) (int)(t)->shape[0], (int)(h), (int)(w), (int)(t)->shape[3]

/* avg_pool2(x {n, h, w, c}) -> {n, h/2, w/2, c}: the mean of each 2x2 block */
static int l_avg_pool2(lua_State *L) {
  Tensor *x = check_img(L, 1, "avg_pool2", 1);
  Tensor *y = new_scaled(L, x, 0);
  glow_avg_pool2_forward(x->data, y->data, DIMS(x, y->shape[1], y->shape[2]));
  return 1;
}

/* avg_pool2_backward(dy {n, h, w, c}) -> dx {n, 2h, 2w, c} */
static int l_avg_pool2_backward(lua_State *L) {
  Tensor *dy = check_img(L, 1, "avg_pool2_backward", 0);
  Tensor *dx = new_scaled(L, dy, 1);
  glow_avg_pool2_backward(dy->data, dx->data, DIMS(dy, dy->shape[1], dy->shape[2]));
  return 1;
}

/* upsample2(x {n, h, w, c} [, mode = "nearest" | "bilinear"]) -> {n, 2h, 2w, c} */
static int l_upsample2(lua_State *L) {
  Tensor *x = check_img(L, 1, "upsample2", 0);
  int mode = check_mode(L, 2, "upsample2");
  Tensor *y = new_scaled(L, x, 1);
  glow_upsample2_forward(x->data, y->data, DIMS(x, x->shape[1], x->shape[2]), mode);
  return 1;
}

/* upsample2_backward(dy {n, 2h, 2w, c} [, mode]) -> dx {n, h, w, c} */
static int l_upsample2_backward(lua_State *L) {
  Tensor *dy = check_img(L, 1, "upsample2_backward", 1);
  int mode = check_mode(L, 2, "upsample2_backward");
  Tensor *dx = new_scaled(L, dy, 0);
  glow_upsample2_backward(dy->data, dx->data, DIMS(dx, dx->shape[1], dx->shape[2]), mode);
  return 1;
}

static const luaL_Reg funcs[] = {
    {"matmul", l_matmul},
    {"matmul_backward", l_matmul_backward},
    {"conv2d", l_conv2d},
    {"conv2d_grad", l_conv2d_grad},
    {"conv2d_size", l_conv2d_size},
    {"avg_pool2", l_avg_pool2},
    {"avg_pool2_backward", l_avg_pool2_backward},
    {"upsample2", l_upsample2},
    {"upsample2_backward", l_upsample2_backward},
    {NULL, NULL}};

void lg_open_linalg(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
