/*
 * lnn.c -- the Lua binding of the layers inside a coupling network (conv.c,
 * net.c, actnorm.c, relu from tensor.c): conv2d (and its naive reference),
 * scale_exp, relu, the fused network net_forward/net_backward, and actnorm
 * (with actnorm_relu and the data-dependent actnorm_init).
 * Each wrapper checks the element counts of its arguments before it touches
 * memory, raises a Lua error that names the argument and the shapes on
 * misuse, and allocates its outputs as new tensors.
 */
#include <lauxlib.h>
#include <lua.h>

#include "glow.h"
#include "lglow.h"

/* ------------------------------------------------------------------ conv */
/* conv2d_forward(x {n,h,w,cin}, wt {k,k,cin,cout}, b {cout} | nil) -> y {n,h,w,cout} */
static int conv_forward_impl(lua_State *L, int naive) {
  int n, h, w, cin;
  Tensor *x = lg_checkimg(L, 1, "conv2d: input x", &n, &h, &w, &cin);
  Tensor *wt = lg_checkt(L, 2);
  Tensor *b = lg_optt(L, 3);
  lg_needdims(L, wt, 4, "conv2d: weight");
  int k = (int)wt->shape[0], cout = (int)wt->shape[3];
  if (cout > MAXCHAN || cin > MAXCHAN) return lg_fail(L, "conv2d: at most %d channels", MAXCHAN);
  if ((k != 1 && k != 3) || wt->shape[1] != k || wt->shape[2] != cin) {
    char s1[128], s2[128];
    lg_fail(L, "conv2d: weight %s does not fit input %s (expected {k, k, %d, cout}, k = 1 or 3)",
               lg_shapestr(wt, s1, sizeof s1), lg_shapestr(x, s2, sizeof s2), cin);
  }
  if (b) lg_neednumel(L, b, cout, "conv2d: bias");
  int64_t shape[4] = {n, h, w, cout};
  Tensor *y = lg_newt(L, 4, shape);
  glow_conv_geom g = glow_conv_same(n, h, w, cin, cout, k);
  if (naive)
    glow_conv_forward_naive(&g, x->data, wt->data, b ? b->data : NULL, y->data);
  else
    lg_checkrc(L, glow_conv_forward(&g, x->data, wt->data, b ? b->data : NULL, y->data), "conv2d");
  return 1;
}

/* conv2d_backward(x, wt, dy, dwt | nil, db | nil [, want_dx = true]) -> dx | nil */
static int conv_backward_impl(lua_State *L, int naive) {
  int n, h, w, cin;
  Tensor *x = lg_checkimg(L, 1, "conv2d backward: input x", &n, &h, &w, &cin);
  Tensor *wt = lg_checkt(L, 2), *dy = lg_checkt(L, 3), *dwt = lg_optt(L, 4), *db = lg_optt(L, 5);
  int want_dx = lua_isnone(L, 6) ? 1 : lua_toboolean(L, 6);
  lg_needdims(L, wt, 4, "conv2d backward: weight");
  int k = (int)wt->shape[0], cout = (int)wt->shape[3];
  if (cout > MAXCHAN || cin > MAXCHAN) return lg_fail(L, "conv2d: at most %d channels", MAXCHAN);
  if ((k != 1 && k != 3) || wt->shape[1] != k || wt->shape[2] != cin)
    lg_fail(L, "conv2d backward: weight does not fit the input's %d channels", cin);
  lg_neednumel(L, dy, (int64_t)n * h * w * cout, "conv2d backward: dy");
  if (dwt) lg_neednumel(L, dwt, wt->n, "conv2d backward: weight grad");
  if (db) lg_neednumel(L, db, cout, "conv2d backward: bias grad");
  float *dx = NULL;
  if (want_dx)
    dx = lg_newlike(L, x)->data;
  else
    lua_pushnil(L);
  glow_conv_geom g = glow_conv_same(n, h, w, cin, cout, k);
  if (naive) {
    glow_conv_backward_naive(&g, x->data, wt->data, dy->data, dx, dwt ? dwt->data : NULL,
                             db ? db->data : NULL);
  } else {
    int rc = glow_conv_backward(&g, x->data, wt->data, dy->data, dx, dwt ? dwt->data : NULL,
                                db ? db->data : NULL);
    lg_checkrc(L, rc, "conv2d backward");
  }
  return 1;
}

static int l_conv2d_forward(lua_State *L) { return conv_forward_impl(L, 0); }
static int l_conv2d_forward_naive(lua_State *L) { return conv_forward_impl(L, 1); }
static int l_conv2d_backward(lua_State *L) { return conv_backward_impl(L, 0); }
static int l_conv2d_backward_naive(lua_State *L) { return conv_backward_impl(L, 1); }

/* scale_exp_forward(x {.., c}, g {c}, factor) -> y */
static int l_scale_exp_forward(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *g = lg_checkt(L, 2);
  float f = (float)luaL_checknumber(L, 3);
  int64_t c = lg_chan(L, x, "scale_exp");
  lg_neednumel(L, g, c, "scale_exp: g");
  Tensor *y = lg_newlike(L, x);
  glow_scale_exp_forward(x->data, g->data, f, y->data, (size_t)(x->n / c), (int)c);
  return 1;
}

/* scale_exp_backward(y, g, factor, dy, dg | nil) -> dx */
static int l_scale_exp_backward(lua_State *L) {
  Tensor *y = lg_checkt(L, 1), *g = lg_checkt(L, 2);
  float f = (float)luaL_checknumber(L, 3);
  Tensor *dy = lg_checkt(L, 4), *dg = lg_optt(L, 5);
  int64_t c = lg_chan(L, y, "scale_exp backward");
  lg_neednumel(L, g, c, "scale_exp backward: g");
  lg_neednumel(L, dy, y->n, "scale_exp backward: dy");
  if (dg) lg_neednumel(L, dg, c, "scale_exp backward: dg");
  Tensor *dx = lg_newlike(L, y);
  glow_scale_exp_backward(y->data, g->data, f, dy->data, dx->data, dg ? dg->data : NULL,
                          (size_t)(y->n / c), (int)c);
  return 1;
}

static int l_relu_forward(lua_State *L) {
  Tensor *x = lg_checkt(L, 1);
  Tensor *y = lg_newlike(L, x);
  glow_relu_forward(x->data, y->data, (size_t)x->n);
  return 1;
}

static int l_relu_backward(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *dy = lg_checkt(L, 2);
  lg_samenumel(L, x, dy, "relu backward");
  Tensor *dx = lg_newlike(L, x);
  glow_relu_backward(x->data, dy->data, dx->data, (size_t)x->n);
  return 1;
}

/* ------------------------------------------------------------------ fused coupling network */
/* the 9 tensors of the table at idx, checked against the shapes net.c expects */
static const char *const NET_NAMES[9] = {"conv3x3 weight", "actnorm1 bias", "actnorm1 logs",
                                         "conv1x1 weight", "actnorm2 bias", "actnorm2 logs",
                                         "zeroconv weight", "zeroconv bias", "zeroconv logscale"};

static void net_tensors(lua_State *L, int idx, Tensor **t, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  for (int i = 0; i < 9; i++) {
    lua_geti(L, idx, i + 1);
    t[i] = luaL_testudata(L, -1, TNAME);
    if (!t[i]) lg_fail(L, "net: %s %d (%s) is not a tensor", what, i + 1, NET_NAMES[i]);
    lua_pop(L, 1); /* the table keeps it alive */
  }
}

static void net_check(lua_State *L, Tensor **t, int cin, int width, int cout, const char *what) {
  const int64_t want[9] = {9LL * cin * width, width, width, (int64_t)width * width, width, width,
                           9LL * width * cout, cout, cout};
  for (int i = 0; i < 9; i++)
    if (t[i]->n != want[i])
      lg_fail(L, "net: %s %d (%s) has %d elements, expected %d", what, i + 1, NET_NAMES[i],
              (int)t[i]->n, (int)want[i]);
}

/* the parameters of net_forward/net_backward: x, params table, factor */
static void net_params(lua_State *L, Tensor *x, int pidx, int fidx, glow_net *p, int cin) {
  Tensor *t[9];
  net_tensors(L, pidx, t, "parameter");
  if (t[0]->ndim != 4 || t[6]->ndim != 4)
    lg_fail(L, "net: the conv weights must be {k, k, cin, cout}");
  p->cin = cin;
  p->width = (int)t[0]->shape[3];
  p->cout = (int)t[6]->shape[3];
  if (cin < 1 || p->width < 1 || p->cout < 1 || cin > MAXCHAN || p->width > MAXCHAN ||
      p->cout > MAXCHAN)
    lg_fail(L, "net: channels must be in 1..%d (input %d, width %d, output %d)", MAXCHAN, cin,
            p->width, p->cout);
  if (t[0]->shape[2] != cin) {
    char b[64];
    lg_fail(L, "net: input x %s has %d channels, the conv3x3 weight expects %d",
            lg_shapestr(x, b, sizeof b), cin, (int)t[0]->shape[2]);
  }
  net_check(L, t, p->cin, p->width, p->cout, "parameter");
  p->w1 = t[0]->data, p->an1_b = t[1]->data, p->an1_s = t[2]->data, p->w2 = t[3]->data;
  p->an2_b = t[4]->data, p->an2_s = t[5]->data, p->w3 = t[6]->data, p->b3 = t[7]->data;
  p->g3 = t[8]->data;
  p->factor = (float)luaL_checknumber(L, fidx);
}

/* net_forward(x, params, factor [, keep]) -> y [, a1, a2]: with keep, also the two hidden
 * activations for net_backward */
static int l_net_forward(lua_State *L) {
  int n, h, w, cin;
  Tensor *x = lg_checkimg(L, 1, "net: input x", &n, &h, &w, &cin);
  glow_net p;
  net_params(L, x, 2, 3, &p, cin);
  int keep = lua_toboolean(L, 4);
  int64_t shape[4] = {n, h, w, p.cout}, hshape[4] = {n, h, w, p.width};
  Tensor *y = lg_newt(L, 4, shape);
  Tensor *a1 = keep ? lg_newt(L, 4, hshape) : NULL, *a2 = keep ? lg_newt(L, 4, hshape) : NULL;
  lg_checkrc(L, glow_net_forward(&p, x->data, y->data, a1 ? a1->data : NULL, a2 ? a2->data : NULL,
                                 n, h, w),
             "net forward");
  return keep ? 3 : 1;
}

/* net_backward(x, dy, y | nil, params, grads, factor [, a1, a2]) -> dx; the grads accumulate */
static int l_net_backward(lua_State *L) {
  int n, h, w, cin;
  Tensor *x = lg_checkimg(L, 1, "net backward: input x", &n, &h, &w, &cin);
  Tensor *dy = lg_checkt(L, 2), *y = lg_optt(L, 3);
  glow_net p;
  net_params(L, x, 4, 6, &p, cin);
  Tensor *g[9];
  net_tensors(L, 5, g, "gradient");
  net_check(L, g, p.cin, p.width, p.cout, "gradient");
  int64_t out = (int64_t)n * h * w * p.cout;
  lg_neednumel(L, dy, out, "net backward: dy");
  if (y) lg_neednumel(L, y, out, "net backward: y");
  Tensor *a1 = lg_optt(L, 7), *a2 = lg_optt(L, 8);
  if (a1) lg_neednumel(L, a1, (int64_t)n * h * w * p.width, "net backward: a1");
  if (a2) lg_neednumel(L, a2, (int64_t)n * h * w * p.width, "net backward: a2");
  glow_net_grad gr = {g[0]->data, g[1]->data, g[2]->data, g[3]->data, g[4]->data,
                      g[5]->data, g[6]->data, g[7]->data, g[8]->data};
  Tensor *dx = lg_newlike(L, x);
  lg_checkrc(L, glow_net_backward(&p, &gr, x->data, y ? y->data : NULL,
                                   a1 ? a1->data : NULL, a2 ? a2->data : NULL, dy->data,
                                   dx->data, n, h, w),
             "net backward");
  return 1;
}

/* ------------------------------------------------------------------ actnorm */
static int64_t checkchan(lua_State *L, Tensor *x, Tensor *b, Tensor *s, const char *what) {
  int64_t c = lg_chan(L, x, what);
  lg_neednumel(L, b, c, what);
  lg_neednumel(L, s, c, what);
  return c;
}

static int l_actnorm_forward(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *b = lg_checkt(L, 2), *s = lg_checkt(L, 3);
  int64_t c = checkchan(L, x, b, s, "actnorm: parameters vs input channels");
  Tensor *y = lg_newlike(L, x);
  glow_actnorm_forward(x->data, b->data, s->data, y->data, (size_t)(x->n / c), (int)c);
  return 1;
}

static int l_actnorm_inverse(lua_State *L) {
  Tensor *y = lg_checkt(L, 1), *b = lg_checkt(L, 2), *s = lg_checkt(L, 3);
  int64_t c = checkchan(L, y, b, s, "actnorm inverse: parameters vs input channels");
  Tensor *x = lg_newlike(L, y);
  glow_actnorm_inverse(y->data, b->data, s->data, x->data, (size_t)(y->n / c), (int)c);
  return 1;
}

/* actnorm_backward(y, b, s, dy, db, ds, dlogdet_scale) -> dx */
static int l_actnorm_backward(lua_State *L) {
  Tensor *y = lg_checkt(L, 1), *b = lg_checkt(L, 2), *s = lg_checkt(L, 3), *dy = lg_checkt(L, 4);
  Tensor *db = lg_optt(L, 5), *ds = lg_optt(L, 6);
  float sc = (float)luaL_optnumber(L, 7, 0.0);
  int64_t c = checkchan(L, y, b, s, "actnorm backward: parameters vs input channels");
  lg_neednumel(L, dy, y->n, "actnorm backward: dy");
  if (db) lg_neednumel(L, db, c, "actnorm backward: db");
  if (ds) lg_neednumel(L, ds, c, "actnorm backward: ds");
  Tensor *dx = lg_newlike(L, y);
  glow_actnorm_backward(y->data, b->data, s->data, dy->data, dx->data, db ? db->data : NULL,
                        ds ? ds->data : NULL, sc, (size_t)(y->n / c), (int)c);
  return 1;
}

/* The flow layer's three calls, one crossing each (docs/ARCHITECTURE.md,
 * "Calls into C"): the input checked as {n, h, w, c} with c = #b.
 * actnorm_step_forward(x, b, s) -> y, logdet {n} = h*w*sum(s) each */
static int l_actnorm_step_forward(lua_State *L) {
  Tensor *b = lg_checkt(L, 2), *s = lg_checkt(L, 3);
  Tensor *x = lg_checkchannels(L, 1, b->n, "actnorm: input");
  lg_neednumel(L, s, b->n, "actnorm: logs");
  int64_t c = b->n, n = x->shape[0];
  Tensor *y = lg_newlike(L, x);
  glow_actnorm_forward(x->data, b->data, s->data, y->data, (size_t)(x->n / c), (int)c);
  double sum = 0;
  for (int64_t k = 0; k < c; k++) sum += s->data[k];
  int64_t one[1] = {n};
  Tensor *ld = lg_newt(L, 1, one);
  float v = (float)((double)(x->shape[1] * x->shape[2]) * sum);
  for (int64_t i = 0; i < n; i++) ld->data[i] = v;
  return 2;
}

/* actnorm_step_inverse(y, b, s) -> x */
static int l_actnorm_step_inverse(lua_State *L) {
  Tensor *b = lg_checkt(L, 2), *s = lg_checkt(L, 3);
  Tensor *y = lg_checkchannels(L, 1, b->n, "actnorm: input");
  lg_neednumel(L, s, b->n, "actnorm: logs");
  Tensor *x = lg_newlike(L, y);
  glow_actnorm_inverse(y->data, b->data, s->data, x->data, (size_t)(y->n / b->n), (int)b->n);
  return 1;
}

/* actnorm_step_backward(y, b, s, dy, db, ds, dlogdet) -> x, dx: one sweep over y
 * and dy rebuilds x, writes dx and accumulates the gradients; dlogdet as in
 * the protocol (nil, a number, or a tensor {n}) */
static int l_actnorm_step_backward(lua_State *L) {
  Tensor *b = lg_checkt(L, 2), *s = lg_checkt(L, 3);
  Tensor *y = lg_checkchannels(L, 1, b->n, "actnorm: input");
  Tensor *dy = lg_checkt(L, 4), *db = lg_checkt(L, 5), *ds = lg_checkt(L, 6);
  int64_t c = b->n;
  lg_neednumel(L, s, c, "actnorm: logs");
  lg_neednumel(L, dy, y->n, "actnorm backward: dy");
  lg_neednumel(L, db, c, "actnorm backward: db");
  lg_neednumel(L, ds, c, "actnorm backward: ds");
  double dsum = lg_dlogdet_sum(L, 7, y->shape[0]);
  float sc = (float)((double)(y->shape[1] * y->shape[2]) * dsum);
  Tensor *x = lg_newlike(L, y);
  Tensor *dx = lg_newlike(L, y);
  glow_actnorm_backward_rebuild(y->data, b->data, s->data, dy->data, x->data, dx->data, db->data,
                                ds->data, sc, (size_t)(y->n / c), (int)c);
  return 2;
}

/* actnorm_relu_forward(x, b, s) -> max(0, actnorm(x)) */
static int l_actnorm_relu_forward(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *b = lg_checkt(L, 2), *s = lg_checkt(L, 3);
  int64_t c = checkchan(L, x, b, s, "actnorm+relu: parameters vs input channels");
  Tensor *y = lg_newlike(L, x);
  glow_actnorm_relu_forward(x->data, b->data, s->data, y->data, (size_t)(x->n / c), (int)c);
  return 1;
}

/* actnorm_relu_backward(y, b, s, dy, db, ds) -> dx, from the output y */
static int l_actnorm_relu_backward(lua_State *L) {
  Tensor *y = lg_checkt(L, 1), *b = lg_checkt(L, 2), *s = lg_checkt(L, 3), *dy = lg_checkt(L, 4);
  Tensor *db = lg_optt(L, 5), *ds = lg_optt(L, 6);
  int64_t c = checkchan(L, y, b, s, "actnorm+relu backward: parameters vs input channels");
  lg_neednumel(L, dy, y->n, "actnorm+relu backward: dy");
  if (db) lg_neednumel(L, db, c, "actnorm+relu backward: db");
  if (ds) lg_neednumel(L, ds, c, "actnorm+relu backward: ds");
  Tensor *dx = lg_newlike(L, y);
  glow_actnorm_relu_backward(y->data, s->data, dy->data, dx->data, db ? db->data : NULL,
                             ds ? ds->data : NULL, (size_t)(y->n / c), (int)c);
  return 1;
}

static int l_actnorm_init(lua_State *L) {
  Tensor *x = lg_checkt(L, 1), *b = lg_checkt(L, 2), *s = lg_checkt(L, 3);
  int64_t c = checkchan(L, x, b, s, "actnorm init: parameters vs input channels");
  glow_actnorm_init(x->data, b->data, s->data, (size_t)(x->n / c), (int)c);
  return 0;
}

static const luaL_Reg funcs[] = {
    {"conv2d_forward", l_conv2d_forward},
    {"conv2d_backward", l_conv2d_backward},
    {"conv2d_forward_naive", l_conv2d_forward_naive},
    {"conv2d_backward_naive", l_conv2d_backward_naive},
    {"scale_exp_forward", l_scale_exp_forward},
    {"scale_exp_backward", l_scale_exp_backward},
    {"relu_forward", l_relu_forward},
    {"relu_backward", l_relu_backward},
    {"net_forward", l_net_forward},
    {"net_backward", l_net_backward},
    {"actnorm_forward", l_actnorm_forward},
    {"actnorm_inverse", l_actnorm_inverse},
    {"actnorm_backward", l_actnorm_backward},
    {"actnorm_step_forward", l_actnorm_step_forward},
    {"actnorm_step_inverse", l_actnorm_step_inverse},
    {"actnorm_step_backward", l_actnorm_step_backward},
    {"actnorm_relu_forward", l_actnorm_relu_forward},
    {"actnorm_relu_backward", l_actnorm_relu_backward},
    {"actnorm_init", l_actnorm_init},
    {NULL, NULL}};

void lg_open_nn(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
