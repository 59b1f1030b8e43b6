/*
 * ldata.c -- the Lua binding of data.c: the "glow.Dataset" userdata.
 *
 * A dataset userdata owns a glow_dataset (uint8 images NHWC, int labels).
 * Construction is two-phase: the userdata is made empty with its metatable
 * first, then filled by a loader, so a Lua error at any point leaves nothing
 * unowned. Loaders report I/O failure as nil, message (io.open's
 * convention); misuse raises an error. lua/glow/data.lua wraps the userdata
 * with the options, the shuffle and the batch iterator.
 */
#include <stdlib.h>
#include <string.h>

#include "glow.h"
#include "lglow.h"

#define DNAME "glow.Dataset"

typedef struct {
  glow_dataset ds;
} Dataset;

static Dataset *checkds(lua_State *L, int i) { return (Dataset *)luaL_checkudata(L, i, DNAME); }

static Dataset *newds(lua_State *L) {
  Dataset *d = (Dataset *)lua_newuserdatauv(L, sizeof(Dataset), 0);
  memset(d, 0, sizeof *d);
  luaL_setmetatable(L, DNAME);
  return d;
}

/* the filled userdata on top, or nil, message */
static int loaded(lua_State *L, Dataset *d, int rc, const char *err) {
  if (rc == GLOW_OK) return 1;
  glow_dataset_free(&d->ds);
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

/* load_idx(images_path, labels_path) -> dataset | nil, message */
static int l_load_idx(lua_State *L) {
  const char *ip = luaL_checkstring(L, 1), *lp = luaL_checkstring(L, 2);
  char err[512];
  Dataset *d = newds(L);
  return loaded(L, d, glow_load_idx(ip, lp, &d->ds, err, sizeof err), err);
}

/* load_cifar10({paths...}) -> dataset | nil, message */
static int l_load_cifar10(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  if (n < 1) lg_fail(L, "cifar10: expected a non-empty list of files");
  const char **paths = (const char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)n, 0);
  for (int k = 0; k < n; k++) {
    lua_geti(L, 1, k + 1);
    if (lua_type(L, -1) != LUA_TSTRING) lg_fail(L, "cifar10: file %d must be a string", k + 1);
    paths[k] = lua_tostring(L, -1); /* anchored by the table */
    lua_pop(L, 1);
  }
  char err[512];
  Dataset *d = newds(L);
  return loaded(L, d, glow_load_cifar10(paths, n, &d->ds, err, sizeof err), err);
}

/* load_images(dir, size) -> dataset | nil, message; size 0: any */
static int l_load_images(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  lua_Integer size = luaL_optinteger(L, 2, 0);
  if (size < 0 || size > 1 << 20) lg_fail(L, "images: size must be a positive integer");
  char err[512];
  Dataset *d = newds(L);
  return loaded(L, d, glow_load_images(dir, (int)size, &d->ds, err, sizeof err), err);
}

/* permutation(n, seed, epoch) -> a Lua array holding 1..n shuffled */
static int l_permutation(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  uint64_t seed = (uint64_t)luaL_checkinteger(L, 2), epoch = (uint64_t)luaL_checkinteger(L, 3);
  if (n < 0) lg_fail(L, "permutation: n must be >= 0, got %I", n);
  int64_t *p = (int64_t *)lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(n ? n : 1), 0);
  glow_permutation(p, n, seed, epoch);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushinteger(L, p[i] + 1);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ------------------------------------------------------------------ methods */
static int d_size(lua_State *L) {
  lua_pushinteger(L, checkds(L, 1)->ds.n);
  return 1;
}

static int d_shape(lua_State *L) {
  Dataset *d = checkds(L, 1);
  lua_createtable(L, 3, 0);
  lua_pushinteger(L, d->ds.h);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, d->ds.w);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, d->ds.c);
  lua_rawseti(L, -2, 3);
  return 1;
}

/* classes() -> number of classes (nil when unlabelled), class names (or nil) */
static int d_classes(lua_State *L) {
  Dataset *d = checkds(L, 1);
  if (!d->ds.y) return 0;
  lua_pushinteger(L, d->ds.classes);
  if (!d->ds.class_names) return 1;
  lua_createtable(L, d->ds.classes, 0);
  for (int k = 0; k < d->ds.classes; k++) {
    lua_pushstring(L, d->ds.class_names[k]);
    lua_rawseti(L, -2, k + 1);
  }
  return 2;
}

/* set_classes(k): declare the number of classes (the loaders' labels all lie below it) */
static int d_set_classes(lua_State *L) {
  Dataset *d = checkds(L, 1);
  lua_Integer k = luaL_checkinteger(L, 2);
  if (d->ds.y && k >= d->ds.classes && k < 1 << 30) d->ds.classes = (int)k;
  return 0;
}

/* labels(i, j) -> Lua array of the 0-based labels of images i..j (1-based, inclusive) */
static int d_labels(lua_State *L) {
  Dataset *d = checkds(L, 1);
  lua_Integer i = luaL_optinteger(L, 2, 1), j = luaL_optinteger(L, 3, d->ds.n);
  if (i < 1 || j > d->ds.n || j < i - 1)
    lg_fail(L, "labels: range [%I, %I] lies outside the dataset's %I images", i, j,
            (lua_Integer)d->ds.n);
  if (!d->ds.y) return 0;
  lua_createtable(L, (int)(j - i + 1), 0);
  for (lua_Integer k = i; k <= j; k++) {
    lua_pushinteger(L, d->ds.y[k - 1]);
    lua_rawseti(L, -2, k - i + 1);
  }
  return 1;
}

/* batch(indices, n_bits, seed, epoch, noise) -> x {b, h, w, c}, y | nil;
 * indices: a Lua array of 1-based image indices */
static int d_batch(lua_State *L) {
  Dataset *d = checkds(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer nb = luaL_checkinteger(L, 3);
  uint64_t seed = (uint64_t)luaL_optinteger(L, 4, 0), epoch = (uint64_t)luaL_optinteger(L, 5, 0);
  int noise = lua_isnone(L, 6) ? 1 : lua_toboolean(L, 6);
  if (nb < 1 || nb > 8) lg_fail(L, "batch: n_bits must be an integer in 1..8, got %I", nb);
  lua_Integer b = luaL_len(L, 2);
  if (b < 1) lg_fail(L, "batch: expected a non-empty array of image indices");
  int64_t *idx = (int64_t *)lua_newuserdatauv(L, sizeof(int64_t) * (size_t)b, 0);
  for (lua_Integer k = 0; k < b; k++) {
    lua_geti(L, 2, k + 1);
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < 1 || v > d->ds.n)
      lg_fail(L, "batch: index %I must be an integer in [1, %I], got %s", k + 1,
              (lua_Integer)d->ds.n, luaL_tolstring(L, -1, NULL));
    idx[k] = v - 1;
    lua_pop(L, 1);
  }
  int *y = d->ds.y ? (int *)lua_newuserdatauv(L, sizeof(int) * (size_t)b, 0) : NULL;
  int64_t shape[4] = {b, d->ds.h, d->ds.w, d->ds.c};
  lg_newt(L, 4, shape);
  Tensor *x = lg_checkt(L, -1);
  glow_dataset_batch(&d->ds, idx, b, (int)nb, seed, epoch, noise, x->data, y);
  if (!y) return 1;
  lua_createtable(L, (int)b, 0);
  for (lua_Integer k = 0; k < b; k++) {
    lua_pushinteger(L, y[k]);
    lua_rawseti(L, -2, k + 1);
  }
  return 2;
}

/* idempotent: __gc and __close may both run */
static int d_gc(lua_State *L) {
  glow_dataset_free(&checkds(L, 1)->ds);
  return 0;
}

static int d_tostring(lua_State *L) {
  Dataset *d = checkds(L, 1);
  lua_pushfstring(L, "glow.Dataset(%I images of %dx%dx%d)", (lua_Integer)d->ds.n, d->ds.h,
                  d->ds.w, d->ds.c);
  return 1;
}

static const luaL_Reg methods[] = {{"size", d_size},     {"shape", d_shape},
                                   {"classes", d_classes}, {"set_classes", d_set_classes},
                                   {"labels", d_labels}, {"batch", d_batch},
                                   {NULL, NULL}};

static const luaL_Reg meta[] = {
    {"__gc", d_gc}, {"__close", d_gc}, {"__tostring", d_tostring}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"load_idx", l_load_idx},
                                 {"load_cifar10", l_load_cifar10},
                                 {"load_images", l_load_images},
                                 {"permutation", l_permutation},
                                 {NULL, NULL}};

void lg_open_data(lua_State *L) {
  if (luaL_newmetatable(L, DNAME)) {
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
