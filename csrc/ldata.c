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

/* The files a loader skipped, held by a userdata whose __gc frees them, so
 * a Lua error while they are turned into a table leaks nothing. */
#define SKNAME "glow.Skips"

static int sk_gc(lua_State *L) {
  glow_skips_free((glow_skips *)luaL_checkudata(L, 1, SKNAME));
  return 0;
}

static glow_skips *newskips(lua_State *L) {
  glow_skips *s = (glow_skips *)lua_newuserdatauv(L, sizeof(glow_skips), 0);
  memset(s, 0, sizeof *s);
  if (luaL_newmetatable(L, SKNAME)) {
    lua_pushcfunction(L, sk_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return s;
}

/* push {{path = ..., reason = ..., kind = "corrupt" | "format" | "duplicate"}, ...}
 * and the number of image files found */
static void push_skips(lua_State *L, const glow_skips *s) {
  static const char *const kinds[] = {"corrupt", "format", "duplicate"};
  lua_createtable(L, (int)s->n, 0);
  for (int64_t i = 0; i < s->n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, s->path[i]);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, s->reason[i]);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, kinds[s->kind[i] >= 0 && s->kind[i] <= 2 ? s->kind[i] : 0]);
    lua_setfield(L, -2, "kind");
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, s->total);
}

/* the background colour 0xRRGGBB at argument i (default white) into bg */
static void background(lua_State *L, int i, uint8_t bg[3], const char *what) {
  lua_Integer v = luaL_optinteger(L, i, 0xFFFFFF);
  if (v < 0 || v > 0xFFFFFF) lg_fail(L, "%s: the background must be 0xRRGGBB, got %I", what, v);
  bg[0] = (uint8_t)(v >> 16);
  bg[1] = (uint8_t)(v >> 8);
  bg[2] = (uint8_t)v;
}

/* h, w, c and strict at arguments i..i+3 (0 means "the first image's"),
 * the background 0xRRGGBB at argument bgi, max_pixels at argument mpi
 * (default GLOW_MAX_PIXELS) */
static glow_image_opts image_opts(lua_State *L, int i, int bgi, int mpi, const char *what) {
  glow_image_opts o;
  memset(&o, 0, sizeof o);
  background(L, bgi, o.bg, what);
  lua_Integer h = luaL_optinteger(L, i, 0), w = luaL_optinteger(L, i + 1, 0);
  lua_Integer c = luaL_optinteger(L, i + 2, 0);
  if (h < 0 || w < 0 || h > 65535 || w > 65535 || (h == 0) != (w == 0))
    lg_fail(L, "%s: the size must be positive integers up to 65535, got %Ix%I", what, h, w);
  if (c != 0 && c != 1 && c != 3) lg_fail(L, "%s: channels must be 1 or 3, got %I", what, c);
  o.h = (int)h;
  o.w = (int)w;
  o.c = (int)c;
  o.strict = lua_isnoneornil(L, i + 3) ? 1 : lua_toboolean(L, i + 3);
  lua_Integer mp = luaL_optinteger(L, mpi, GLOW_MAX_PIXELS);
  if (mp < 1) lg_fail(L, "%s: max_pixels must be a positive integer, got %I", what, mp);
  o.max_pixels = (int64_t)mp;
  return o;
}

/* load_images(dir, h, w, c, strict, bg, max_pixels) -> dataset, skips, files | nil,
 * message; h, w, c 0: the first readable image's; bg 0xRRGGBB (default white) */
static int l_load_images(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  glow_image_opts o = image_opts(L, 2, 6, 7, "images");
  char err[512];
  glow_skips *sk = newskips(L);
  Dataset *d = newds(L);
  int rc = glow_load_images(dir, &o, &d->ds, sk, err, sizeof err);
  if (rc != GLOW_OK) return loaded(L, d, rc, err);
  push_skips(L, sk);
  glow_skips_free(sk);
  return 3;
}

/* pack_images(dir, path, h, w, c, strict, limit, bg, max_pixels) -> n, skips, files | nil,
 * message */
static int l_pack_images(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
  glow_image_opts o = image_opts(L, 3, 8, 9, "pack");
  lua_Integer limit = luaL_optinteger(L, 7, 0);
  char err[512];
  glow_skips *sk = newskips(L);
  int64_t written = 0;
  int rc = glow_pack_images(dir, &o, limit > 0 ? (int64_t)limit : 0, path, sk, &written, err,
                            sizeof err);
  if (rc != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushinteger(L, written);
  push_skips(L, sk);
  glow_skips_free(sk);
  return 3;
}

/* pack_dataset(ds, path, names | nil, h, w, c, repeat, flip, limit) -> n | nil, message */
static int l_pack_dataset(lua_State *L) {
  Dataset *d = checkds(L, 1);
  const char *path = luaL_checkstring(L, 2);
  char **names = NULL;
  if (!lua_isnoneornil(L, 3) && d->ds.y) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if (luaL_len(L, 3) != d->ds.classes)
      lg_fail(L, "pack: %d class names expected, got %I", d->ds.classes, luaL_len(L, 3));
    names = (char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(d->ds.classes + 1), 0);
    for (int k = 0; k < d->ds.classes; k++) {
      lua_geti(L, 3, k + 1);
      if (lua_type(L, -1) != LUA_TSTRING) lg_fail(L, "pack: class name %d must be a string", k + 1);
      names[k] = (char *)lua_tostring(L, -1); /* anchored by the table */
      lua_pop(L, 1);
    }
  }
  lua_Integer h = luaL_optinteger(L, 4, 0), w = luaL_optinteger(L, 5, 0);
  lua_Integer c = luaL_optinteger(L, 6, 0), rep = luaL_optinteger(L, 7, 1);
  int flip = lua_toboolean(L, 8);
  lua_Integer limit = luaL_optinteger(L, 9, 0);
  if (h < 0 || w < 0 || h > 65535 || w > 65535 || (h == 0) != (w == 0))
    lg_fail(L, "pack: the size must be positive integers up to 65535, got %Ix%I", h, w);
  if (c != 0 && c != 1 && c != 3) lg_fail(L, "pack: channels must be 1 or 3, got %I", c);
  if (rep < 1 || rep > 1 << 20) lg_fail(L, "pack: repeat must be an integer >= 1, got %I", rep);
  char err[512];
  int64_t written = 0;
  int rc = glow_pack_dataset(&d->ds, names, (int)h, (int)w, (int)c, (int)rep, flip,
                             limit > 0 ? (int64_t)limit : 0, path, &written, err, sizeof err);
  if (rc != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushinteger(L, written);
  return 1;
}

/* open_pack(path) -> dataset | nil, message */
static int l_open_pack(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char err[512];
  Dataset *d = newds(L);
  return loaded(L, d, glow_open_pack(path, &d->ds, err, sizeof err), err);
}

/* pack_remove_stale(path) -> {{path = ..., reason = ...}, ...} | nil, message:
 * the stale temporary files of packs beside path, removed */
static int l_pack_remove_stale(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char err[512];
  glow_skips *sk = newskips(L);
  if (glow_pack_remove_stale(path, sk, err, sizeof err) != GLOW_OK) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  push_skips(L, sk);
  lua_pop(L, 1); /* the count */
  glow_skips_free(sk);
  return 1;
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

static int push_shape(lua_State *L, int h, int w, int c) {
  lua_createtable(L, 3, 0);
  lua_pushinteger(L, h);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, w);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, c);
  lua_rawseti(L, -2, 3);
  return 1;
}

/* shape() -> {h, w, c} of a batch's images (the window) */
static int d_shape(lua_State *L) {
  Dataset *d = checkds(L, 1);
  return push_shape(L, d->ds.oh ? d->ds.oh : d->ds.h, d->ds.ow ? d->ds.ow : d->ds.w, d->ds.c);
}

/* stored_shape() -> {h, w, c} of the stored images */
static int d_stored_shape(lua_State *L) {
  Dataset *d = checkds(L, 1);
  return push_shape(L, d->ds.h, d->ds.w, d->ds.c);
}

/* set_window(h, w): the size of a batch's images, at most the stored size */
static int d_set_window(lua_State *L) {
  Dataset *d = checkds(L, 1);
  lua_Integer h = luaL_checkinteger(L, 2), w = luaL_checkinteger(L, 3);
  if (h < 1 || w < 1 || h > d->ds.h || w > d->ds.w)
    lg_fail(L, "the size %Ix%I must lie within the stored size %dx%d", h, w, d->ds.h, d->ds.w);
  d->ds.oh = (int)h;
  d->ds.ow = (int)w;
  return 0;
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

/* paths() -> the file of each image (a Lua array), or nil when the
   dataset was not loaded from a folder */
static int d_paths(lua_State *L) {
  Dataset *d = checkds(L, 1);
  if (!d->ds.paths) return 0;
  lua_createtable(L, (int)d->ds.n, 0);
  for (int64_t i = 0; i < d->ds.n; i++) {
    lua_pushstring(L, d->ds.paths[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
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

/* batch(indices, n_bits, seed, epoch, noise, flip, crop_random) -> x {b, h, w, c}, y | nil;
 * indices: a Lua array of 1-based image indices; h, w the window's size */
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
  int flip = lua_toboolean(L, 7), crop_random = lua_toboolean(L, 8);
  int64_t shape[4] = {b, d->ds.oh ? d->ds.oh : d->ds.h, d->ds.ow ? d->ds.ow : d->ds.w, d->ds.c};
  lg_newt(L, 4, shape);
  Tensor *x = lg_checkt(L, -1);
  char err[512];
  int rc = glow_dataset_batch_aug(&d->ds, idx, b, (int)nb, seed, epoch, noise, flip, crop_random,
                                  x->data, y, err, sizeof err);
  /* a pack's file that cannot be read or changed under it: its message
     alone, one line naming the file */
  if (rc == GLOW_ENOMEM) lg_fail(L, "batch: %s", err);
  if (rc != GLOW_OK) lg_fail(L, "%s", err);
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
  lua_pushfstring(L, "glow.Dataset(%I images of %dx%dx%d%s)", (lua_Integer)d->ds.n, d->ds.h,
                  d->ds.w, d->ds.c, d->ds.pack ? ", packed" : "");
  return 1;
}

static const luaL_Reg methods[] = {{"size", d_size},
                                   {"shape", d_shape},
                                   {"stored_shape", d_stored_shape},
                                   {"set_window", d_set_window},
                                   {"classes", d_classes}, {"paths", d_paths},
                                   {"set_classes", d_set_classes},
                                   {"labels", d_labels},
                                   {"batch", d_batch},
                                   {NULL, NULL}};

static const luaL_Reg meta[] = {
    {"__gc", d_gc}, {"__close", d_gc}, {"__tostring", d_tostring}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"load_idx", l_load_idx},
                                 {"load_cifar10", l_load_cifar10},
                                 {"load_images", l_load_images},
                                 {"pack_images", l_pack_images},
                                 {"pack_dataset", l_pack_dataset},
                                 {"open_pack", l_open_pack},
                                 {"pack_remove_stale", l_pack_remove_stale},
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
